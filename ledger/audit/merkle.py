"""The RFC 6962 / RFC 9162 Merkle tree of the audit log: hashes, roots, proofs and their verification.

The tree (RFC 9162 §2.1.1)
    leaf hash  = SHA-256(0x00 || event bytes)
    node hash  = SHA-256(0x01 || left || right)
    MTH({})    = SHA-256("")                      the root of the empty tree
    MTH(D[n])  = node(MTH(D[0:k]), MTH(D[k:n]))   k = the largest power of two below n

Every left subtree is *perfect*: (level, index) names the 2**level leaves from leaf index * 2**level.
A proof needs only such nodes, or folds of a few of them on the ragged right edge, so the generators
read hashes through `SubtreeHashes`: a store of perfect-subtree hashes (the integrator's) answers a proof
in O(log n) look-ups, and `LeafHashes` answers from leaf hashes in memory in O(n) hashing at worst.

What is here
    leaf_hash, node_hash, EMPTY_ROOT             the two hash rules and the empty root
    root_from_leaf_hashes                         bulk root, level by level (1,000,000 leaves in ~0.5 s)
    CompactRange                                  the integrator's O(log n) state: append, root, to/from bytes
    inclusion_proof, consistency_proof            RFC 9162 §2.1.3.1 and §2.1.4.1
    verify_inclusion, verify_consistency          RFC 9162 §2.1.3.2 and §2.1.4.2; raise ProofError

Generators take our own data and raise ValueError (a caller bug) on impossible sizes; verifiers take
untrusted proofs and raise `ProofError`, whose message says what failed. Edge cases follow the
transparency-dev/merkle known-answer vectors in ``../shared/vectors/rfc6962/``: a consistency proof from
size 0 to a larger size is refused as meaningless, a tree of size 0 has exactly the root SHA-256(""), and
equal sizes need an empty proof and equal roots.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Final, Protocol, runtime_checkable

HASH_SIZE_BYTES: Final = 32
TREE_SIZE_MAX: Final = 2**64 - 1
"""Tree sizes are uint64 on the wire (checkpoints, RFC 9162); a larger size is an error, not a bigint."""

EMPTY_ROOT: Final = hashlib.sha256(b"").digest()

_LEAF_PREFIX: Final = b"\x00"
_NODE_PREFIX: Final = b"\x01"
_COMPACT_SIZE_BYTES: Final = 8


class ProofError(ValueError):
    """An inclusion or consistency proof that does not verify; the message says why."""


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one log entry (RFC 9162 §2.1.1)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node (RFC 9162 §2.1.1)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of all of `hashes` (leaf hashes, not entries); SHA-256("") when empty.

    Level by level: pair neighbours, and carry an odd last node up unchanged. That is the RFC's
    recursive definition, because its split at the largest power of two makes every left subtree
    perfect, so the only unpaired node on any level is the right edge's.
    """
    if not hashes:
        return EMPTY_ROOT
    if {len(h) for h in hashes} != {HASH_SIZE_BYTES}:
        raise ValueError(f"every leaf hash must be {HASH_SIZE_BYTES} bytes")
    sha256 = hashlib.sha256  # bound locally: this loop runs once per node
    level = list(hashes)
    while len(level) > 1:
        pairs = iter(level)
        upper = [sha256(b"\x01" + left + right).digest() for left, right in zip(pairs, pairs, strict=False)]
        if len(level) & 1:
            upper.append(level[-1])
        level = upper
    return level[0]


@runtime_checkable
class SubtreeHashes(Protocol):
    """A source of perfect-subtree hashes for the proof generators.

    `subtree_hash(level, index)` is the hash of the 2**level leaves starting at leaf index * 2**level;
    level 0 is the leaf hash itself. The generators only ask for subtrees inside the requested tree size.
    """

    def subtree_hash(self, level: int, index: int) -> bytes: ...


class LeafHashes:
    """`SubtreeHashes` over an in-memory sequence of leaf hashes, remembering what it has computed.

    One proof needs disjoint subtrees, so it costs at most n - 1 node hashes; the memo makes later
    proofs over the same leaves cheap (each remembered node is at most one entry per node in the tree).
    """

    __slots__ = ("_leaves", "_memo")

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self._leaves = leaves
        self._memo: dict[tuple[int, int], bytes] = {}

    def subtree_hash(self, level: int, index: int) -> bytes:
        if level == 0:
            return self._leaves[index]
        key = (level, index)
        cached = self._memo.get(key)
        if cached is None:
            start = index << level
            end = start + (1 << level)
            if end > len(self._leaves):
                raise ValueError(f"subtree ({level}, {index}) ends past leaf {len(self._leaves)}")
            cached = root_from_leaf_hashes(self._leaves[start:end])
            self._memo[key] = cached
        return cached


def inclusion_proof(source: Sequence[bytes] | SubtreeHashes, index: int, size: int) -> list[bytes]:
    """The audit path of leaf `index` in the tree of the first `size` leaves (RFC 9162 §2.1.3.1).

    Hashes are ordered from the leaf's sibling up to the root's child, as `verify_inclusion` expects.
    """
    if not 0 <= index < size <= TREE_SIZE_MAX:
        raise ValueError(f"no inclusion proof for index {index} in a tree of size {size}")
    hashes = _as_subtree_hashes(source, size)
    proof: list[bytes] = []
    start, end = 0, size  # the subtree holding the leaf, narrowed from the root down
    while end - start > 1:
        middle = start + _largest_power_of_two_below(end - start)
        if index < middle:
            proof.append(_range_hash(hashes, middle, end))
            end = middle
        else:
            proof.append(_range_hash(hashes, start, middle))
            start = middle
    proof.reverse()
    return proof


def consistency_proof(source: Sequence[bytes] | SubtreeHashes, size1: int, size2: int) -> list[bytes]:
    """The proof that the tree of size `size1` is a prefix of the tree of size `size2` (RFC 9162 §2.1.4.1).

    Empty when the sizes are equal. A proof from size 0 is meaningless (every tree extends the empty
    tree) and is refused, as `verify_consistency` refuses it.
    """
    if not 0 < size1 <= size2 <= TREE_SIZE_MAX:
        raise ValueError(f"no consistency proof from size {size1} to size {size2}")
    hashes = _as_subtree_hashes(source, size2)
    proof: list[bytes] = []
    start, end = 0, size2
    remaining = size1  # leaves of the old tree inside [start, end)
    old_root_is_whole_subtree = True  # SUBPROOF's flag b: the old root needs no hash of its own
    while True:
        width = end - start
        if remaining == width:
            if not old_root_is_whole_subtree:
                proof.append(_range_hash(hashes, start, end))
            break
        half = _largest_power_of_two_below(width)
        if remaining <= half:
            proof.append(_range_hash(hashes, start + half, end))
            end = start + half
        else:
            proof.append(_range_hash(hashes, start, start + half))
            start += half
            remaining -= half
            old_root_is_whole_subtree = False
    proof.reverse()
    return proof


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that `leaf_hash` is leaf `index` of the tree of `size` leaves with root `root`.

    Raises `ProofError` naming the first thing that fails: the index, a hash length, the proof length,
    or the recomputed root.
    """
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    if size > TREE_SIZE_MAX:
        raise ProofError(f"tree size {size} exceeds {TREE_SIZE_MAX}")
    if len(leaf_hash) != HASH_SIZE_BYTES:
        raise ProofError(f"leaf hash is {len(leaf_hash)} bytes, want {HASH_SIZE_BYTES}")
    _check_proof_hashes(proof)
    # The path splits where the leaf's path and the last leaf's path diverge: below that, siblings on
    # either side ("inner"); above it, only left siblings along the right edge ("border").
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    if len(proof) != inner + border:
        raise ProofError(f"inclusion proof has {len(proof)} hashes, want {inner + border}")
    computed = _chain_inner(leaf_hash, proof[:inner], index)
    computed = _chain_border_right(computed, proof[inner:])
    if computed != root:
        raise ProofError("inclusion proof does not lead to the given root")


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]) -> None:
    """Check that the tree of `size1` leaves with `root1` is a prefix of the tree of `size2` with `root2`.

    Raises `ProofError` naming the first thing that fails. Equal sizes need an empty proof and equal
    roots; size 0 needs the empty-tree root; a proof from size 0 to a larger size is meaningless.
    """
    if size2 > TREE_SIZE_MAX:
        raise ProofError(f"tree size {size2} exceeds {TREE_SIZE_MAX}")
    if size1 > size2:
        raise ProofError(f"size1 {size1} is larger than size2 {size2}: a log never shrinks")
    if size1 == size2:
        if proof:
            raise ProofError(f"sizes are equal but the proof has {len(proof)} hashes, want 0")
        if size1 == 0 and (root1 != EMPTY_ROOT or root2 != EMPTY_ROOT):
            raise ProofError('a tree of size 0 must have the root SHA-256("")')
        if root1 != root2:
            raise ProofError(f"sizes are equal ({size1}) but the roots differ")
        return
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree is meaningless")
    if not proof:
        raise ProofError(f"consistency proof from {size1} to {size2} is empty")
    _check_proof_hashes(proof)
    # The proof is the upper part of the inclusion proof of leaf size1 - 1 in the tree of size2, starting
    # at the level of the largest perfect subtree the old tree ends with (2**shift leaves). Its hash is
    # the proof's first element, unless the old tree is exactly that subtree: then it is root1.
    inner = ((size1 - 1) ^ (size2 - 1)).bit_length()
    border = ((size1 - 1) >> inner).bit_count()
    shift = (size1 & -size1).bit_length() - 1
    inner -= shift
    if size1 == 1 << shift:
        seed, path = root1, proof
    else:
        seed, path = proof[0], proof[1:]
    if len(path) != inner + border:
        want = inner + border + (len(proof) - len(path))
        raise ProofError(f"consistency proof has {len(proof)} hashes, want {want}")
    mask = (size1 - 1) >> shift
    old = _chain_inner_right(seed, path[:inner], mask)
    old = _chain_border_right(old, path[inner:])
    if old != root1:
        raise ProofError(f"consistency proof does not lead to root1 of size {size1}")
    new = _chain_inner(seed, path[:inner], mask)
    new = _chain_border_right(new, path[inner:])
    if new != root2:
        raise ProofError(f"consistency proof does not lead to root2 of size {size2}")


class CompactRange:
    """The hashes of the perfect subtrees that make up a tree of `size` leaves: O(log n) state.

    This is what the integrator keeps between batches. There is one hash per set bit of `size`, largest
    subtree (leftmost) first; appending a leaf merges equal-sized subtrees like a binary counter's carry,
    and the root folds them from the right. Store it with `to_bytes` (8-byte big-endian size, then the
    hashes) or as (`size`, `hashes`), and restore it with `from_bytes` / `from_hashes`.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @classmethod
    def from_hashes(cls, size: int, hashes: Iterable[bytes]) -> CompactRange:
        """Restore a range from its size and its subtree hashes (largest subtree first)."""
        stored = list(hashes)
        if not 0 <= size <= TREE_SIZE_MAX:
            raise ValueError(f"compact range size {size} is outside 0..{TREE_SIZE_MAX}")
        if len(stored) != size.bit_count():
            raise ValueError(
                f"a compact range of size {size} has {size.bit_count()} hashes, got {len(stored)}"
            )
        if any(len(h) != HASH_SIZE_BYTES for h in stored):
            raise ValueError(f"every compact range hash must be {HASH_SIZE_BYTES} bytes")
        compact = cls()
        compact._size = size
        compact._hashes = [bytes(h) for h in stored]
        return compact

    @classmethod
    def from_bytes(cls, data: bytes) -> CompactRange:
        """Restore a range written by `to_bytes`."""
        if len(data) < _COMPACT_SIZE_BYTES:
            raise ValueError("compact range bytes are shorter than the 8-byte size")
        size = int.from_bytes(data[:_COMPACT_SIZE_BYTES], "big")
        body = data[_COMPACT_SIZE_BYTES:]
        if len(body) != size.bit_count() * HASH_SIZE_BYTES:
            raise ValueError(f"compact range of size {size} needs {size.bit_count()} hashes")
        hashes = [body[i : i + HASH_SIZE_BYTES] for i in range(0, len(body), HASH_SIZE_BYTES)]
        return cls.from_hashes(size, hashes)

    def to_bytes(self) -> bytes:
        return self._size.to_bytes(_COMPACT_SIZE_BYTES, "big") + b"".join(self._hashes)

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return tuple(self._hashes)

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf hash at index `size`."""
        if len(leaf_hash) != HASH_SIZE_BYTES:
            raise ValueError(f"leaf hash is {len(leaf_hash)} bytes, want {HASH_SIZE_BYTES}")
        if self._size >= TREE_SIZE_MAX:
            raise ValueError(f"compact range is full at {TREE_SIZE_MAX} leaves")
        hashes = self._hashes
        carry = self._size
        merged = leaf_hash
        while carry & 1:  # each trailing 1-bit is a subtree of the new one's size: merge them
            merged = node_hash(hashes.pop(), merged)
            carry >>= 1
        hashes.append(merged)
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Add leaf hashes in order."""
        append = self.append
        for h in leaf_hashes:
            append(h)

    def root(self) -> bytes:
        """The root of the tree of the first `size` leaves; SHA-256("") when empty."""
        if not self._hashes:
            return EMPTY_ROOT
        root = self._hashes[-1]
        for h in reversed(self._hashes[:-1]):
            root = node_hash(h, root)
        return root

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


def _as_subtree_hashes(source: Sequence[bytes] | SubtreeHashes, size: int) -> SubtreeHashes:
    if isinstance(source, SubtreeHashes):
        return source
    if len(source) < size:
        raise ValueError(f"tree size {size} exceeds the {len(source)} leaf hashes given")
    return LeafHashes(source)


def _range_hash(hashes: SubtreeHashes, start: int, end: int) -> bytes:
    # MTH(D[start:end]) for a subtree of the RFC tree: `start` is aligned to a power of two at least the
    # width, so [start, end) splits into perfect subtrees of strictly decreasing size, folded from the right.
    parts: list[bytes] = []
    while start < end:
        level = (end - start).bit_length() - 1
        parts.append(hashes.subtree_hash(level, start >> level))
        start += 1 << level
    result = parts.pop()
    while parts:
        result = node_hash(parts.pop(), result)
    return result


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def _check_proof_hashes(proof: Sequence[bytes]) -> None:
    for position, h in enumerate(proof):
        if len(h) != HASH_SIZE_BYTES:
            raise ProofError(f"proof hash {position} is {len(h)} bytes, want {HASH_SIZE_BYTES}")


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    # Below the split the sibling is on the right when the index bit is 0, on the left when it is 1.
    for level, h in enumerate(proof):
        seed = node_hash(seed, h) if (index >> level) & 1 == 0 else node_hash(h, seed)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    # The same walk using only left siblings: it rebuilds the *old* tree's root, which had nothing to the
    # right of its last leaf.
    for level, h in enumerate(proof):
        if (index >> level) & 1:
            seed = node_hash(h, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    # Above the split the path runs up the right edge, so every sibling is on the left.
    for h in proof:
        seed = node_hash(h, seed)
    return seed
