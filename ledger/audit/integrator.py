"""The integrator: moves inbox rows into the dense log, keeps the Merkle tree, signs checkpoints.

One integrator leads at a time: it holds a session-level PostgreSQL advisory lock on its own connection
for as long as it runs (a crashed leader's connection closes and frees the lock). Even a second one that
ran anyway could not fork the log: each integration locks the `audit_tree` row, and the database refuses
a segment that does not start exactly where the log ends. Each integration is one transaction, so a crash
leaves nothing half-written: the inbox rows are still there, and the next run picks them up.

Business transactions never wait for any of this: they only insert inbox rows.
"""

import hashlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg
import structlog
from psycopg_pool import ConnectionPool

from ledger.audit.events import json_event
from ledger.audit.inbox import append_events, frame_events, split_events
from ledger.audit.log_store import STORED_NODE_LEVEL_MIN, StoredSubtrees
from ledger.audit.merkle import CompactRange, consistency_proof, node_hash, root_from_leaf_hashes
from ledger.audit.signed_note import Checkpoint, Signer, format_checkpoint, sign_note
from ledger.unit_of_work import UnitOfWork

log = structlog.get_logger("ledger.audit")

# Any fixed number distinct from the ledger clock's lock; documented so operators can see the leader.
INTEGRATOR_LOCK_KEY: Final = 7325064102
INBOX_ROWS_PER_INTEGRATION_MAX: Final = 256
ENTRIES_PER_SEGMENT_MAX: Final = 65_536
CHECKPOINT_INTERVAL_S: Final = 1.0
IDLE_POLL_S: Final = 0.02

_LEAF_PREFIX = b"\x00"


@dataclass(frozen=True, slots=True)
class Integration:
    first_index: int
    entries: int
    size: int
    checkpoint_size: int | None
    # For each inbox row integrated: microseconds from its insert to this integration (the log's lag).
    lags_us: tuple[int, ...] = ()


class Integrator:
    def __init__(
        self,
        pool: ConnectionPool[Any],
        origin: str,
        signers: Sequence[Signer],
        checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S,
    ) -> None:
        assert signers, "a log without a signing key cannot publish checkpoints"
        self.unit_of_work = UnitOfWork(pool)
        self.origin = origin
        self.signers = tuple(signers)
        self.checkpoint_interval_s = checkpoint_interval_s
        self._last_checkpoint_at = 0.0

    def integrate_once(self, checkpoint: bool | None = None) -> Integration:
        """Move what is waiting in the inbox into the log, in one transaction. `checkpoint`: True signs
        one now, False never, None when the interval has passed."""
        due = (
            checkpoint
            if checkpoint is not None
            else (time.monotonic() - self._last_checkpoint_at >= self.checkpoint_interval_s)
        )
        result = self.unit_of_work.run(lambda connection: self._integrate(connection, due))
        if result.checkpoint_size is not None:
            self._last_checkpoint_at = time.monotonic()
        return result

    def introduce_keys(self, verifier_keys: Sequence[str]) -> None:
        """Log the signing keys so auditors who pin an earlier key learn the new one (rotation is a log
        entry). Keys already introduced are not logged again."""

        def introduce(connection: psycopg.Connection[Any]) -> None:
            known = {row[0] for row in connection.execute("SELECT verifier_key FROM audit_signing_keys")}
            new = [key for key in verifier_keys if key not in known]
            for key in new:
                connection.execute("INSERT INTO audit_signing_keys (verifier_key) VALUES (%s)", (key,))
            append_events(
                connection,
                [json_event("log_signing_key", {"action": "added", "verifier_key": k}) for k in new],
            )

        self.unit_of_work.run(introduce)

    def run(self, stop: threading.Event, database_url: str) -> None:
        """Lead when no one else does; integrate until `stop` is set."""
        with psycopg.connect(database_url, autocommit=True) as leader:
            while not stop.is_set():
                row = leader.execute("SELECT pg_try_advisory_lock(%s)", (INTEGRATOR_LOCK_KEY,)).fetchone()
                if row is not None and row[0]:
                    break
                stop.wait(1.0)  # someone else leads; take over if they stop
            log.info("integrator_leading", origin=self.origin)
            while not stop.is_set():
                try:
                    result = self.integrate_once()
                except Exception:  # the leader must outlive a failed batch; the rows stay in the inbox
                    log.exception("integration_failed")
                    stop.wait(1.0)
                    continue
                if result.entries == 0:
                    stop.wait(IDLE_POLL_S)

    def _integrate(self, connection: psycopg.Connection[Any], checkpoint_due: bool) -> Integration:
        tree = connection.execute("SELECT size, compact_range FROM audit_tree FOR UPDATE").fetchone()
        assert tree is not None
        size, compact = int(tree[0]), CompactRange.from_bytes(bytes(tree[1]))
        assert compact.size == size, "audit_tree size disagrees with its compact range"
        rows = connection.execute(
            "SELECT id, events, (extract(epoch FROM clock_timestamp() - queued_at) * 1000000)::bigint"
            " FROM audit_inbox"
            " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
            (INBOX_ROWS_PER_INTEGRATION_MAX,),
        ).fetchall()
        entries: list[bytes] = []
        taken: list[int] = []
        lags: list[int] = []
        for inbox_id, blob, lag_us in rows:
            events = split_events(bytes(blob))
            if taken and len(entries) + len(events) > ENTRIES_PER_SEGMENT_MAX:
                break
            entries.extend(events)
            taken.append(inbox_id)
            lags.append(int(lag_us))
        if entries:
            self._append(connection, size, compact, entries)
            connection.execute("DELETE FROM audit_inbox WHERE id = ANY(%s)", (taken,))
        new_size = size + len(entries)
        checkpoint_size = None
        if checkpoint_due:
            checkpoint_size = self._checkpoint(connection, new_size, compact.root())
        return Integration(size, len(entries), new_size, checkpoint_size, tuple(lags))

    def _append(
        self, connection: psycopg.Connection[Any], size: int, compact: CompactRange, entries: list[bytes]
    ) -> None:
        sha256 = hashlib.sha256
        leaves = [sha256(_LEAF_PREFIX + entry).digest() for entry in entries]
        for leaf in leaves:
            compact.append(leaf)
        connection.execute(
            "INSERT INTO audit_segments (first_index, entry_count, entries, leaf_hashes)"
            " VALUES (%s, %s, %b, %b)",
            (size, len(entries), frame_events(entries), b"".join(leaves)),
        )
        _store_completed_nodes(connection, size, compact.size)
        connection.execute(
            "UPDATE audit_tree SET size = %s, compact_range = %b", (compact.size, compact.to_bytes())
        )

    def _checkpoint(self, connection: psycopg.Connection[Any], size: int, root: bytes) -> int | None:
        previous = connection.execute(
            "SELECT size FROM audit_checkpoints ORDER BY size DESC LIMIT 1"
        ).fetchone()
        previous_size = int(previous[0]) if previous is not None else 0
        if size == 0 or size == previous_size:
            return None
        proof = consistency_proof(StoredSubtrees(connection), previous_size, size) if previous_size else []
        note = sign_note(format_checkpoint(Checkpoint(self.origin, size, root, ())), self.signers)
        connection.execute(
            "INSERT INTO audit_checkpoints (size, root_hash, note, previous_size, consistency_proof)"
            " VALUES (%s, %b, %s, %s, %b)",
            (size, root, note, previous_size, b"".join(proof)),
        )
        return size


def _store_completed_nodes(connection: psycopg.Connection[Any], old_size: int, new_size: int) -> None:
    """Store every subtree of 2^level leaves (level >= 8) that the new entries completed, lowest first,
    so each level can read the one below it."""
    subtrees = StoredSubtrees(connection)
    level = STORED_NODE_LEVEL_MIN
    while (1 << level) <= new_size:
        first = old_size >> level  # subtrees that end after old_size ...
        last = (new_size >> level) - 1  # ... and at or before new_size
        for index in range(first, last + 1):
            if level == STORED_NODE_LEVEL_MIN:
                start = index << level
                value = root_from_leaf_hashes(subtrees.leaf_hashes(start, start + (1 << level)))
            else:
                value = node_hash(
                    subtrees.subtree_hash(level - 1, 2 * index),
                    subtrees.subtree_hash(level - 1, 2 * index + 1),
                )
            connection.execute(
                "INSERT INTO audit_nodes (level, index, hash) VALUES (%s, %s, %b)", (level, index, value)
            )
        level += 1
