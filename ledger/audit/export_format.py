"""The audit export: a directory an auditor copies to their own machine and verifies with no database.

    DIR/manifest.json      {"format": "amiyan-audit-export/1", "origin": "<log origin>", "size": N}
    DIR/entries.bin        the N log entries in log order, each as a u32 big-endian length then its bytes
                           (exactly the bytes that were hashed; see ledger.audit.events for layouts)
    DIR/leaf_hashes.bin    N × 32 bytes: the leaf hashes the log stored (the verifier recomputes them)
    DIR/checkpoints.jsonl  one JSON object per line, sizes increasing:
                           {"consistency_proof": [base64, ...], "note": "<C2SP signed checkpoint note>",
                            "previous_size": M, "size": N}
                           the proof shows the tree of size M (the previous checkpoint) is a prefix of N
    DIR/keys.txt           the log's C2SP verifier keys over its life, one per line (informational: the
                           auditor trusts only the key it pins and keys that key's checkpoints introduce)

Nothing here touches a database: the export writer is fed by ledger.audit.export, the reader serves the
offline verifier.
"""

import base64
import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

FORMAT = "amiyan-audit-export/1"
HASH_SIZE_BYTES = 32
_LENGTH = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class ExportedCheckpoint:
    size: int
    note: str
    previous_size: int
    consistency_proof: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class AuditExport:
    origin: str
    entries: list[bytes]
    leaf_hashes: list[bytes]
    checkpoints: list[ExportedCheckpoint]
    verifier_keys: list[str]


class ExportFormatError(ValueError):
    """The directory is not a readable export (missing file, wrong format, truncated data)."""


def write_export(
    directory: Path,
    origin: str,
    entries: Iterable[bytes],
    leaf_hashes: Sequence[bytes],
    checkpoints: Iterable[ExportedCheckpoint],
    verifier_keys: Iterable[str],
) -> int:
    """Write an export; returns the number of entries written."""
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    with (directory / "entries.bin").open("wb") as out:
        for entry in entries:
            out.write(_LENGTH.pack(len(entry)))
            out.write(entry)
            count += 1
    assert count == len(leaf_hashes), "one stored leaf hash per entry"
    (directory / "leaf_hashes.bin").write_bytes(b"".join(leaf_hashes))
    lines = [
        json.dumps(
            {
                "consistency_proof": [base64.b64encode(h).decode() for h in c.consistency_proof],
                "note": c.note,
                "previous_size": c.previous_size,
                "size": c.size,
            },
            sort_keys=True,
            ensure_ascii=False,
        )
        for c in checkpoints
    ]
    (directory / "checkpoints.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    (directory / "keys.txt").write_text("".join(key + "\n" for key in verifier_keys), encoding="utf-8")
    manifest = {"format": FORMAT, "origin": origin, "size": count}
    (directory / "manifest.json").write_text(json.dumps(manifest, sort_keys=True) + "\n", encoding="utf-8")
    return count


def read_export(directory: Path) -> AuditExport:
    """Read an export fully into memory; raises ExportFormatError on any structural problem."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        raw_entries = (directory / "entries.bin").read_bytes()
        raw_hashes = (directory / "leaf_hashes.bin").read_bytes()
        checkpoint_lines = (directory / "checkpoints.jsonl").read_text(encoding="utf-8").splitlines()
        keys = (directory / "keys.txt").read_text(encoding="utf-8").split()
    except (OSError, ValueError) as error:
        raise ExportFormatError(f"cannot read export in {directory}: {error}") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ExportFormatError(f"manifest.json does not declare format {FORMAT}")
    entries = _split_entries(raw_entries)
    if len(raw_hashes) % HASH_SIZE_BYTES:
        raise ExportFormatError("leaf_hashes.bin is not a whole number of 32-byte hashes")
    # A leaf-hash count that differs from the entries is left to the verifier, which can name the entry.
    declared = manifest.get("size")
    if type(declared) is not int or declared != len(entries):
        raise ExportFormatError(
            f"manifest.json declares {declared} entries; entries.bin holds {len(entries)}"
        )
    leaf_hashes = [raw_hashes[i : i + HASH_SIZE_BYTES] for i in range(0, len(raw_hashes), HASH_SIZE_BYTES)]
    return AuditExport(
        origin=str(manifest.get("origin", "")),
        entries=entries,
        leaf_hashes=leaf_hashes,
        checkpoints=[_parse_checkpoint_line(line, n) for n, line in enumerate(checkpoint_lines, 1) if line],
        verifier_keys=keys,
    )


def _split_entries(data: bytes) -> list[bytes]:
    entries: list[bytes] = []
    offset = 0
    unpack = _LENGTH.unpack_from
    while offset < len(data):
        if offset + 4 > len(data):
            raise ExportFormatError(f"entries.bin ends inside a length prefix at byte {offset}")
        (length,) = unpack(data, offset)
        offset += 4
        if offset + length > len(data):
            raise ExportFormatError(f"entries.bin: entry {len(entries)} runs past the end of the file")
        entries.append(data[offset : offset + length])
        offset += length
    return entries


def _parse_checkpoint_line(line: str, number: int) -> ExportedCheckpoint:
    try:
        record = json.loads(line)
        size, previous, note, proof = (
            record["size"],
            record["previous_size"],
            record["note"],
            record["consistency_proof"],
        )
        if not all(type(value) is int and value >= 0 for value in (size, previous)):
            raise ValueError("size and previous_size must be non-negative integers")
        if not isinstance(note, str) or not isinstance(proof, list):
            raise ValueError("note must be a string and consistency_proof a list")
        hashes = tuple(_strict_base64(h) for h in proof)
    except (ValueError, KeyError, TypeError) as error:
        raise ExportFormatError(f"checkpoints.jsonl line {number}: {error}") from error
    return ExportedCheckpoint(size=size, note=note, previous_size=previous, consistency_proof=hashes)


def _strict_base64(text: object) -> bytes:
    """Only the one canonical spelling: what decodes must re-encode to the same text."""
    if not isinstance(text, str):
        raise ValueError("a proof hash must be a base64 string")
    data = base64.b64decode(text, validate=True)
    if base64.b64encode(data).decode() != text or len(data) != HASH_SIZE_BYTES:
        raise ValueError(f"proof hash {text!r} is not canonical base64 of 32 bytes")
    return data
