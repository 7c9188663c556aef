"""Reading the stored audit log: entries, leaf hashes and subtree hashes, straight from PostgreSQL.

`StoredSubtrees` serves `ledger.audit.merkle`'s proof generators: subtrees of 2^8 leaves and more come
from `audit_nodes` (one lookup each); smaller ones are folded from the segments' leaf hashes, so any
inclusion or consistency proof costs O(log n) lookups.
"""

from typing import Any, Final

import psycopg

from ledger.audit.inbox import split_events
from ledger.audit.merkle import consistency_proof, inclusion_proof, root_from_leaf_hashes

STORED_NODE_LEVEL_MIN: Final = 8
HASH_SIZE_BYTES: Final = 32

# The segments holding entries start .. end - 1; {column} is leaf_hashes or entries.
_SEGMENTS_COVERING = """
SELECT first_index, entry_count, {column} FROM audit_segments
 WHERE first_index >= coalesce(
           (SELECT max(first_index) FROM audit_segments WHERE first_index <= %(start)s), 0)
   AND first_index < %(end)s
 ORDER BY first_index
"""
_SEGMENT_LEAF_HASHES = _SEGMENTS_COVERING.format(column="leaf_hashes")
_SEGMENT_ENTRIES = _SEGMENTS_COVERING.format(column="entries")


class StoredSubtrees:
    """Subtree hashes of the stored log, memoised for the life of one request."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection
        self._memo: dict[tuple[int, int], bytes] = {}

    def subtree_hash(self, level: int, index: int) -> bytes:
        key = (level, index)
        cached = self._memo.get(key)
        if cached is not None:
            return cached
        if level >= STORED_NODE_LEVEL_MIN:
            row = self.connection.execute(
                "SELECT hash FROM audit_nodes WHERE level = %s AND index = %s", (level, index)
            ).fetchone()
            if row is None:
                raise LookupError(f"no stored subtree ({level}, {index}): is the log that large?")
            value = bytes(row[0])
        else:
            start = index << level
            value = root_from_leaf_hashes(self.leaf_hashes(start, start + (1 << level)))
        self._memo[key] = value
        return value

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """Leaf hashes of entries start .. end - 1."""
        if start >= end:
            return []
        rows = self.connection.execute(_SEGMENT_LEAF_HASHES, {"start": start, "end": end}).fetchall()
        hashes: list[bytes] = []
        for first_index, count, blob in rows:
            low, high = max(start, first_index), min(end, first_index + count)
            data = bytes(blob)
            hashes.extend(
                data[i * HASH_SIZE_BYTES : (i + 1) * HASH_SIZE_BYTES]
                for i in range(low - first_index, high - first_index)
            )
        if len(hashes) != end - start:
            raise LookupError(f"the stored log does not hold entries {start}..{end - 1}")
        return hashes


def tree_size(connection: psycopg.Connection[Any]) -> int:
    row = connection.execute("SELECT size FROM audit_tree").fetchone()
    assert row is not None
    return int(row[0])


def read_entries(connection: psycopg.Connection[Any], start: int, end: int) -> list[bytes]:
    """Entries start .. end - 1 exactly as stored."""
    if start >= end:
        return []
    rows = connection.execute(_SEGMENT_ENTRIES, {"start": start, "end": end}).fetchall()
    entries: list[bytes] = []
    for first_index, count, blob in rows:
        events = split_events(bytes(blob))
        assert len(events) == count, "a segment's entry count disagrees with its entries"
        low, high = max(start, first_index), min(end, first_index + count)
        entries.extend(events[low - first_index : high - first_index])
    return entries


def prove_inclusion(connection: psycopg.Connection[Any], index: int, size: int) -> list[bytes]:
    """The audit path of entry `index` in the tree of the first `size` entries."""
    return inclusion_proof(StoredSubtrees(connection), index, size)


def prove_consistency(connection: psycopg.Connection[Any], size1: int, size2: int) -> list[bytes]:
    """Proof that the tree of size1 is a prefix of the tree of size2."""
    return consistency_proof(StoredSubtrees(connection), size1, size2)
