"""C2SP signed notes and checkpoints: the Go known-answer note byte for byte, then every way to fail."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.audit.signed_note import (
    CHECKPOINT_SIZE_MAX,
    NOTE_SIGNATURES_MAX,
    Checkpoint,
    CheckpointError,
    NoteError,
    format_checkpoint,
    generate_signer,
    key_id,
    open_note,
    parse_checkpoint,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
)

VECTOR_FILE = Path(__file__).resolve().parents[1].parent / "shared" / "vectors" / "c2sp-note" / "note.json"


@pytest.fixture(scope="module")
def vector() -> dict[str, str]:
    assert VECTOR_FILE.is_file(), f"known-answer note missing at {VECTOR_FILE}"
    data: dict[str, str] = json.loads(VECTOR_FILE.read_text(encoding="utf-8"))
    return data


def test_known_answer_note_is_reproduced_byte_for_byte(vector: dict[str, str]) -> None:
    signer = parse_signer_key(vector["skey"])
    verifier = parse_verifier_key(vector["vkey"])
    assert signer.verifier == verifier
    assert signer.encode() == vector["skey"] and verifier.encode() == vector["vkey"]
    assert verifier.key_id == key_id(verifier.name, verifier.public_key) == bytes.fromhex("c74f20a3")
    signed = sign_note(vector["text"], [signer])
    assert signed.encode("utf-8") == vector["signed_note"].encode("utf-8")
    assert open_note(vector["signed_note"], [verifier]) == (vector["text"], ["PeterNeumann"])


def test_any_one_character_change_to_the_text_fails(vector: dict[str, str]) -> None:
    verifier = parse_verifier_key(vector["vkey"])
    text, signatures = vector["text"], vector["signed_note"][len(vector["text"]) :]
    for position, char in enumerate(text):
        changed = text[:position] + ("Y" if char == "X" else "X") + text[position + 1 :]
        with pytest.raises(NoteError):
            open_note(changed + signatures, [verifier])
    with pytest.raises(NoteError, match="invalid signature"):
        open_note(vector["signed_note"].replace("cryptography", "cryptographY"), [verifier])


def test_generated_keys_sign_and_open() -> None:
    skey, vkey = generate_signer("amiyan.example/log")
    signer, verifier = parse_signer_key(skey), parse_verifier_key(vkey)
    assert signer.verifier == verifier and "seed" not in repr(signer)
    note = sign_note("amiyan.example/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n", [signer])
    assert open_note(note, [verifier])[1] == ["amiyan.example/log"]


def test_unknown_key_alone_is_refused_and_says_unknown_key(vector: dict[str, str]) -> None:
    _, other_vkey = generate_signer("PeterNeumann")  # same name, different key ID: still unknown
    with pytest.raises(NoteError, match=r"no verifiable signature.*unknown key"):
        open_note(vector["signed_note"], [parse_verifier_key(other_vkey)])
    with pytest.raises(NoteError, match="unknown key"):
        open_note(vector["signed_note"], [])


def test_unknown_cosignature_is_ignored_when_a_known_key_signed(vector: dict[str, str]) -> None:
    # The spec: verifiers MUST ignore unknown signatures (witness cosignatures, rotated keys).
    witness_skey, _ = generate_signer("witness.example")
    signed = sign_note(vector["text"], [parse_signer_key(vector["skey"]), parse_signer_key(witness_skey)])
    assert open_note(signed, [parse_verifier_key(vector["vkey"])]) == (vector["text"], ["PeterNeumann"])


def test_bad_signature_by_a_known_key_is_invalid(vector: dict[str, str]) -> None:
    verifier = parse_verifier_key(vector["vkey"])
    text, _, line = vector["signed_note"].rpartition("\n\n")
    name, encoded = line.removeprefix("— ").removesuffix("\n").split(" ")
    raw = bytearray(base64.b64decode(encoded))
    raw[10] ^= 1
    forged = f"{text}\n\n— {name} {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(NoteError, match="invalid signature by PeterNeumann\\+c74f20a3"):
        open_note(forged, [verifier])
    truncated = f"{text}\n\n— {name} {base64.b64encode(bytes(raw[:40])).decode()}\n"
    with pytest.raises(NoteError, match="invalid signature"):
        open_note(truncated, [verifier])


SIGNATURE = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNX"
    "gKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        ("text\n" + SIGNATURE, "no blank line"),
        ("text\n\n", "signature block is empty"),
        ("text\n\n" + SIGNATURE[:-1], "lacks a final newline"),
        ("text\n\n- PeterNeumann AAAA\n", 'does not start with "— "'),
        ("text\n\n—  x08go/ZJ\n", "no valid key name"),
        ("text\n\n— PeterNeumann\n", "no valid key name"),
        ("text\n\n— Peter+Neumann x08go/ZJkuBS9UG\n", "no valid key name"),
        ("text\n\n— PeterNeumann x08go/ZJ!!!\n", "not canonical base64"),
        ("text\n\n— PeterNeumann x08go/ZJkuB\n", "not canonical base64"),
        ("text\n\n— PeterNeumann x08go/Z=\n", "not canonical base64"),  # spare bits set
        ("text\n\n— PeterNeumann x08gow==\n", "too short"),
        ("text\n\n" + SIGNATURE + "\n", "signature block is empty"),  # the last blank line splits
        ("te\txt\n\n" + SIGNATURE, "control character U\\+0009"),
        ("text\r\n\n" + SIGNATURE, "control character U\\+000D"),
        ("te\ud800xt\n\n" + SIGNATURE, "not valid UTF-8"),
        ("text\n\n" + SIGNATURE * (NOTE_SIGNATURES_MAX + 1), "more than 100 signatures"),
    ],
)
def test_malformed_notes(note: str, reason: str, vector: dict[str, str]) -> None:
    with pytest.raises(NoteError, match=reason) as raised:
        open_note(note, [parse_verifier_key(vector["vkey"])])
    assert str(raised.value).startswith("malformed note")


def test_text_with_empty_lines_is_allowed(vector: dict[str, str]) -> None:
    signer, verifier = parse_signer_key(vector["skey"]), parse_verifier_key(vector["vkey"])
    text = "first\n\nthird after an empty line\n"
    assert open_note(sign_note(text, [signer]), [verifier]) == (text, ["PeterNeumann"])


@pytest.mark.parametrize(
    ("text", "reason"),
    [("no final newline", "does not end in a newline"), ("", "does not end"), ("bell\x07\n", "U\\+0007")],
)
def test_sign_refuses_bad_text(text: str, reason: str, vector: dict[str, str]) -> None:
    with pytest.raises(NoteError, match=reason):
        sign_note(text, [parse_signer_key(vector["skey"])])
    with pytest.raises(NoteError, match="no signers"):
        sign_note("fine\n", [])


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda k: k.replace("c74f20a3", "c74f20a4"), "key ID does not match"),
        (lambda k: k.replace("c74f20a3", "C74F20A3"), "8 lowercase hex digits"),
        (lambda k: k.replace("+c74f20a3", "+c74f20a"), "8 lowercase hex digits"),
        (lambda k: k.replace("PeterNeumann", "Peter Neumann"), "holds a space"),
        (lambda k: k.replace("PeterNeumann", ""), "is empty"),
        (lambda k: k.replace("+ARpc", "+Ahpc"), "not Ed25519"),
        (lambda k: k[:-1], "not canonical base64"),
        (lambda k: k[:-4], "Ed25519 key is 29 bytes"),
        (lambda k: k.rpartition("+")[0] + "+AQ==", "Ed25519 key is 0 bytes"),
        (lambda k: "no-pluses-at-all", "8 lowercase hex digits"),
    ],
)
def test_verifier_key_parsing_is_strict(mutate: object, reason: str, vector: dict[str, str]) -> None:
    assert callable(mutate)
    with pytest.raises(NoteError, match=reason):
        parse_verifier_key(mutate(vector["vkey"]))


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda k: k.replace("PRIVATE+KEY+", "PRIVATE+"), 'does not start with "PRIVATE\\+KEY\\+"'),
        (lambda k: k.replace("c74f20a3", "00000000"), "key ID does not match"),
        (lambda k: k.replace("+AYEK", "+AoEK"), "not Ed25519"),
        (lambda k: k.replace("PeterNeumann", "Peter+Neumann"), "key ID|name"),
    ],
)
def test_signer_key_parsing_is_strict(mutate: object, reason: str, vector: dict[str, str]) -> None:
    assert callable(mutate)
    with pytest.raises(NoteError, match=reason):
        parse_signer_key(mutate(vector["skey"]))


# Checkpoints (c2sp.org/tlog-checkpoint)

EMPTY_ROOT_B64 = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

line_text = st.text(st.characters(min_codepoint=0x20, codec="utf-8"), min_size=1)
checkpoints = st.builds(
    Checkpoint,
    origin=line_text,
    size=st.integers(0, CHECKPOINT_SIZE_MAX),
    root_hash=st.binary(min_size=32, max_size=32),
    extensions=st.lists(line_text, max_size=3).map(tuple),
)


@given(checkpoints)
def test_checkpoint_round_trip(checkpoint: Checkpoint) -> None:
    text = format_checkpoint(checkpoint)
    assert text.endswith("\n") and text.count("\n") == 3 + len(checkpoint.extensions)
    assert parse_checkpoint(text) == checkpoint


def test_checkpoint_format_is_the_spec_example() -> None:
    root = base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    checkpoint = Checkpoint("example.com/behind-the-sofa", 20852163, root)
    expected = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    assert format_checkpoint(checkpoint) == expected


def test_signed_checkpoint_opens_and_parses(vector: dict[str, str]) -> None:
    checkpoint = Checkpoint("amiyan.example/log", 0, base64.b64decode(EMPTY_ROOT_B64))
    note = sign_note(format_checkpoint(checkpoint), [parse_signer_key(vector["skey"])])
    text, names = open_note(note, [parse_verifier_key(vector["vkey"])])
    assert parse_checkpoint(text) == checkpoint and names == ["PeterNeumann"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"origin\n5\n{EMPTY_ROOT_B64}", "does not end in a newline"),
        ("origin\n5\n", "2 lines, want at least 3"),
        (f"\n5\n{EMPTY_ROOT_B64}\n", "origin must be a non-empty string"),
        (f"origin\n05\n{EMPTY_ROOT_B64}\n", "leading zeros"),
        (f"origin\n00\n{EMPTY_ROOT_B64}\n", "leading zeros"),
        (f"origin\n-1\n{EMPTY_ROOT_B64}\n", "not a decimal"),
        (f"origin\n+1\n{EMPTY_ROOT_B64}\n", "not a decimal"),
        (f"origin\n 1\n{EMPTY_ROOT_B64}\n", "not a decimal"),
        (f"origin\n\u0661\n{EMPTY_ROOT_B64}\n", "not a decimal"),  # ARABIC-INDIC DIGIT ONE
        (f"origin\n{2**64}\n{EMPTY_ROOT_B64}\n", "outside 0..18446744073709551615"),
        ("origin\n5\nAAAA\n", "root hash is 3 bytes, want 32"),
        ("origin\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\n", "not canonical base64"),
        ("origin\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=\n", "not canonical base64"),
        (f"origin\n5\n{EMPTY_ROOT_B64}\n\n", "extension line 0 must be a non-empty"),
        (f"origin\n5\n{EMPTY_ROOT_B64}\next\x01\n", "control character"),
    ],
)
def test_checkpoint_parsing_is_strict(text: str, reason: str) -> None:
    with pytest.raises(CheckpointError, match=reason):
        parse_checkpoint(text)


def test_checkpoint_values_are_validated_on_construction() -> None:
    root = base64.b64decode(EMPTY_ROOT_B64)
    with pytest.raises(CheckpointError):
        Checkpoint("", 0, root)
    with pytest.raises(CheckpointError):
        Checkpoint("two\nlines", 0, root)
    with pytest.raises(CheckpointError):
        Checkpoint("origin", -1, root)
    with pytest.raises(CheckpointError):
        Checkpoint("origin", True, root)
    with pytest.raises(CheckpointError):
        Checkpoint("origin", 0, root[:31])
    with pytest.raises(CheckpointError):
        Checkpoint("origin", 0, root, ("",))
