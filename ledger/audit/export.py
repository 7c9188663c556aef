"""Export the stored log, its checkpoints and the public keys to a directory (`export_format`) that an
auditor verifies on their own machine with no database."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from ledger.audit.export_format import ExportedCheckpoint, write_export
from ledger.audit.inbox import split_events

HASH_SIZE_BYTES = 32


def export_log(
    connection: psycopg.Connection[Any], directory: Path, origin: str, snapshot: bool = True
) -> int:
    """Write the stored log as it is, the checkpoints and the keys; returns the number of entries. The
    unsigned tail after the last checkpoint is exported too (the verifier says so). With `snapshot`, the
    transaction must be fresh: it reads one REPEATABLE READ snapshot. The export copies what is stored
    without judging it: spotting a damaged log is the offline verifier's job."""
    if snapshot:
        connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
    leaf_hashes: list[bytes] = []

    def entries() -> Iterator[bytes]:
        with connection.cursor(name="audit_export") as cursor:
            cursor.itersize = 64
            cursor.execute(
                "SELECT first_index, entry_count, entries, leaf_hashes"
                " FROM audit_segments ORDER BY first_index"
            )
            for _first_index, _count, blob, hashes in cursor:
                data = bytes(hashes)
                leaf_hashes.extend(
                    data[i : i + HASH_SIZE_BYTES] for i in range(0, len(data), HASH_SIZE_BYTES)
                )
                yield from split_events(bytes(blob))

    checkpoints = [
        ExportedCheckpoint(
            size=int(size),
            note=str(note),
            previous_size=int(previous_size),
            consistency_proof=tuple(
                bytes(proof)[i : i + HASH_SIZE_BYTES] for i in range(0, len(bytes(proof)), HASH_SIZE_BYTES)
            ),
        )
        for size, note, previous_size, proof in connection.execute(
            "SELECT size, note, previous_size, consistency_proof FROM audit_checkpoints ORDER BY size"
        )
    ]
    keys = [
        row[0] for row in connection.execute("SELECT verifier_key FROM audit_signing_keys ORDER BY added_at")
    ]
    # write_export consumes the entries before it reads leaf_hashes, which the generator fills as it goes.
    return write_export(directory, origin, entries(), leaf_hashes, checkpoints, keys)
