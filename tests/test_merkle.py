"""The RFC 6962 Merkle tree: every transparency-dev known-answer vector, then properties over random trees."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    LeafHashes,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

VECTORS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "vectors" / "rfc6962"

# The entries behind the vectors: transparency-dev/merkle proof/verify_test.go `leaves`.
KNOWN_ENTRIES = [
    bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657")
] + [bytes.fromhex("606162636465666768696a6b6c6d6e6f")]
KNOWN_ROOT_OF_8 = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


def _vector_files() -> list[Path]:
    files = sorted(VECTORS_DIR.rglob("*.json")) if VECTORS_DIR.is_dir() else []
    # A missing directory must fail the run, not collect zero cases and pass quietly.
    return files or [VECTORS_DIR / "MISSING-VECTORS.json"]


def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _proof(vector: dict[str, Any]) -> list[bytes]:
    return [_b64(h) for h in vector["proof"] or []]


def _vector_id(path: Path) -> str:
    return str(path.relative_to(VECTORS_DIR)) if path.is_relative_to(VECTORS_DIR) else path.name


def test_vectors_directory_is_present_and_complete() -> None:
    assert VECTORS_DIR.is_dir(), f"known-answer vectors missing at {VECTORS_DIR}"
    inclusion = list((VECTORS_DIR / "inclusion").rglob("*.json"))
    consistency = list((VECTORS_DIR / "consistency").rglob("*.json"))
    assert len(inclusion) > 50 and len(consistency) > 50


@pytest.mark.parametrize("path", _vector_files(), ids=_vector_id)
def test_known_answer_vector(path: Path) -> None:
    vector = _load(path)
    if "leafIdx" in vector:
        assert "inclusion" in path.parts

        def check() -> None:
            verify_inclusion(
                _b64(vector["leafHash"]),
                vector["leafIdx"],
                vector["treeSize"],
                _proof(vector),
                _b64(vector["root"]),
            )

    else:
        assert "consistency" in path.parts

        def check() -> None:
            verify_consistency(
                vector["size1"],
                vector["size2"],
                _b64(vector["root1"]),
                _b64(vector["root2"]),
                _proof(vector),
            )

    if vector["wantErr"]:
        with pytest.raises(ProofError):
            check()
    else:
        check()


def test_known_tree_root() -> None:
    leaves = [leaf_hash(entry) for entry in KNOWN_ENTRIES]
    assert root_from_leaf_hashes(leaves).hex() == KNOWN_ROOT_OF_8


@pytest.mark.parametrize(
    "path",
    [p for p in _vector_files() if p.name == "happy-path.json"] or [VECTORS_DIR / "MISSING-VECTORS.json"],
    ids=_vector_id,
)
def test_our_generator_reproduces_every_happy_path_proof(path: Path) -> None:
    vector = _load(path)
    leaves = [leaf_hash(entry) for entry in KNOWN_ENTRIES]
    if "leafIdx" in vector:
        got = inclusion_proof(leaves, vector["leafIdx"], vector["treeSize"])
        assert root_from_leaf_hashes(leaves[: vector["treeSize"]]) == _b64(vector["root"])
    else:
        got = consistency_proof(leaves, vector["size1"], vector["size2"])
        assert root_from_leaf_hashes(leaves[: vector["size2"]]) == _b64(vector["root2"])
    assert got == _proof(vector)


def test_empty_tree_and_single_leaf() -> None:
    assert root_from_leaf_hashes([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    only = leaf_hash(b"data")
    assert root_from_leaf_hashes([only]) == only
    assert CompactRange().root() == EMPTY_ROOT
    verify_inclusion(only, 0, 1, [], only)
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])


@pytest.mark.parametrize(
    ("size1", "size2", "proof_length", "message"),
    [
        (3, 2, 0, "never shrinks"),
        (2, 2, 1, "proof has 1 hashes, want 0"),
        (0, 5, 0, "meaningless"),
        (2, 5, 0, "is empty"),
        (3, 5, 9, "want"),
    ],
)
def test_consistency_failures_say_why(size1: int, size2: int, proof_length: int, message: str) -> None:
    with pytest.raises(ProofError, match=message):
        verify_consistency(size1, size2, bytes(32), bytes(32), [bytes(32)] * proof_length)


def test_inclusion_failures_say_why() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(5)]
    root = root_from_leaf_hashes(leaves)
    proof = inclusion_proof(leaves, 2, 5)
    with pytest.raises(ProofError, match="outside a tree of size 5"):
        verify_inclusion(leaves[2], 5, 5, proof, root)
    with pytest.raises(ProofError, match="want 3"):
        verify_inclusion(leaves[2], 2, 5, [*proof, bytes(32)], root)
    with pytest.raises(ProofError, match="leaf hash is 3 bytes"):
        verify_inclusion(b"abc", 2, 5, proof, root)
    with pytest.raises(ProofError, match="does not lead to the given root"):
        verify_inclusion(leaves[3], 2, 5, proof, root)


def test_generators_refuse_impossible_sizes() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(4)]
    for index, size in [(4, 4), (-1, 4), (0, 0), (0, 5)]:
        with pytest.raises(ValueError):
            inclusion_proof(leaves, index, size)
    for size1, size2 in [(0, 3), (3, 2), (1, 5)]:
        with pytest.raises(ValueError):
            consistency_proof(leaves, size1, size2)


def _reference_root(leaves: list[bytes]) -> bytes:
    """MTH exactly as RFC 9162 §2.1.1 writes it, recursively: the oracle for the fast paths."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    return node_hash(_reference_root(leaves[:split]), _reference_root(leaves[split:]))


leaf_lists = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=70)


@given(leaves=leaf_lists, data=st.data())
@settings(max_examples=200)
def test_inclusion_proofs_verify_and_every_bit_matters(leaves: list[bytes], data: st.DataObject) -> None:
    size = data.draw(st.integers(1, len(leaves)), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    root = root_from_leaf_hashes(leaves[:size])
    assert root == _reference_root(leaves[:size])
    proof = inclusion_proof(leaves, index, size)
    verify_inclusion(leaves[index], index, size, proof, root)
    assert proof == inclusion_proof(LeafHashes(leaves), index, size)

    bit = data.draw(st.integers(0, 255), label="bit")
    flipped_root = _flip(root, bit)
    with pytest.raises(ProofError):
        verify_inclusion(leaves[index], index, size, proof, flipped_root)
    if proof:
        element = data.draw(st.integers(0, len(proof) - 1), label="element")
        bad = list(proof)
        bad[element] = _flip(bad[element], bit)
        with pytest.raises(ProofError):
            verify_inclusion(leaves[index], index, size, bad, root)


@given(leaves=leaf_lists, data=st.data())
@settings(max_examples=200)
def test_consistency_proofs_verify_and_every_bit_matters(leaves: list[bytes], data: st.DataObject) -> None:
    size2 = data.draw(st.integers(1, len(leaves)), label="size2")
    size1 = data.draw(st.integers(1, size2), label="size1")
    root1 = root_from_leaf_hashes(leaves[:size1])
    root2 = root_from_leaf_hashes(leaves[:size2])
    proof = consistency_proof(leaves, size1, size2)
    verify_consistency(size1, size2, root1, root2, proof)

    bit = data.draw(st.integers(0, 255), label="bit")
    with pytest.raises(ProofError):
        verify_consistency(size1, size2, _flip(root1, bit), root2, proof)
    with pytest.raises(ProofError):
        verify_consistency(size1, size2, root1, _flip(root2, bit), proof)
    if proof:
        element = data.draw(st.integers(0, len(proof) - 1), label="element")
        bad = list(proof)
        bad[element] = _flip(bad[element], bit)
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, root1, root2, bad)


@given(leaves=st.lists(st.binary(min_size=32, max_size=32), max_size=70))
def test_compact_range_matches_the_tree_at_every_size(leaves: list[bytes]) -> None:
    compact = CompactRange()
    for size, leaf in enumerate(leaves, start=1):
        compact.append(leaf)
        assert compact.size == size
        assert compact.root() == root_from_leaf_hashes(leaves[:size])
        assert len(compact.hashes) == size.bit_count()
        assert CompactRange.from_bytes(compact.to_bytes()) == compact
        assert CompactRange.from_hashes(compact.size, compact.hashes) == compact
    bulk = CompactRange()
    bulk.extend(leaves)
    assert bulk == compact and bulk.root() == root_from_leaf_hashes(leaves)


def test_compact_range_refuses_damaged_state() -> None:
    compact = CompactRange()
    compact.extend(leaf_hash(bytes([i])) for i in range(5))  # size 5: two hashes
    data = compact.to_bytes()
    assert len(data) == 8 + 2 * 32
    for damaged in (data[:-1], data + bytes(32), data[:7]):
        with pytest.raises(ValueError):
            CompactRange.from_bytes(damaged)
    with pytest.raises(ValueError):
        CompactRange.from_hashes(5, compact.hashes[:1])
    with pytest.raises(ValueError):
        compact.append(b"short")


def _flip(value: bytes, bit: int) -> bytes:
    flipped = bytearray(value)
    flipped[bit // 8 % len(flipped)] ^= 1 << (bit % 8)
    return bytes(flipped)
