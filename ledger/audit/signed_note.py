"""C2SP signed notes (c2sp.org/signed-note) with Ed25519, and tlog checkpoints (c2sp.org/tlog-checkpoint).

Our checkpoints must be checkable by standard transparency-log tools, so this follows the specs byte for
byte; ``tests/test_signed_note.py`` reproduces the Go reference implementation's known-answer note.

A signed note
    <text: one or more lines, each ending in "\\n"; empty lines allowed>
    "\\n"                                          the blank line: the *last* one in the note
    "— " <key name> " " base64(key ID || signature) "\\n"     one line per signature, at least one

The dash is U+2014 EM DASH. The whole note is UTF-8 with no control character but newline. The signature
is Ed25519 (RFC 8032) over the text's UTF-8 bytes, final newline included.

Keys (the Go ``golang.org/x/mod/sumdb/note`` formats)
    key ID        = SHA-256(name || 0x0A || 0x01 || 32-byte public key)[:4]       0x01 = Ed25519
    verifier key  = name "+" hex8(key ID) "+" base64(0x01 || public key)
    signer key    = "PRIVATE+KEY+" name "+" hex8(key ID) "+" base64(0x01 || 32-byte seed)
A key name is non-empty, with no Unicode space, no "+" and no control character. We accept only the
canonical spellings (lowercase hex, padded base64 with zero spare bits), so one key has one string.

Opening a note (the spec's rules, §Signatures): a signature whose (name, key ID) matches no known
verifier is ignored -- witnesses may cosign our checkpoints, and keys rotate -- but if *no* known key
signed, the note is refused and the message names the unknown keys. A known key whose signature fails
rejects the whole note ("invalid signature"). More than `NOTE_SIGNATURES_MAX` lines is malformed.

A checkpoint is a note whose text is
    <origin>\\n <tree size in decimal, no leading zero>\\n <base64 root hash>\\n [<extension line>\\n ...]
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

import nacl.exceptions
import nacl.signing

NOTE_SIGNATURES_MAX: Final = 100
"""Signature lines past this make a note malformed; the spec asks us to accept at least 16."""

CHECKPOINT_SIZE_MAX: Final = 2**64 - 1
"""Tree sizes are uint64 in every checkpoint verifier we want to interoperate with."""

ROOT_HASH_SIZE_BYTES: Final = 32
ED25519_KEY_SIZE_BYTES: Final = 32
ED25519_SIGNATURE_SIZE_BYTES: Final = 64
KEY_ID_SIZE_BYTES: Final = 4

_KEY_TYPE_ED25519: Final = b"\x01"
_SIGNATURE_PREFIX: Final = "\u2014 "  # EM DASH, space
_PRIVATE_PREFIX: Final = "PRIVATE+KEY+"
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")  # [0-9], not \d: str.isdigit-style digits include "٣" and "³"
_FORBIDDEN_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # every ASCII control character but "\n"


class NoteError(ValueError):
    """A key, note or checkpoint that is malformed or does not verify; the message says which."""


class CheckpointError(NoteError):
    """A checkpoint text or value that breaks c2sp.org/tlog-checkpoint."""


@dataclass(frozen=True, slots=True)
class Verifier:
    """A public key that may sign notes: its name, 4-byte key ID and Ed25519 public key."""

    name: str
    key_id: bytes
    public_key: bytes

    def __post_init__(self) -> None:
        _check_key_fields(self.name, self.key_id, self.public_key, "verifier")

    def encode(self) -> str:
        """The verifier key string, name+keyid+base64(0x01||public key), as published."""
        return f"{self.name}+{self.key_id.hex()}+{_b64(_KEY_TYPE_ED25519 + self.public_key)}"


@dataclass(frozen=True, slots=True)
class Signer:
    """A private key that signs notes. The seed is kept out of repr() so it never reaches a log."""

    name: str
    key_id: bytes
    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_key_fields(self.name, self.key_id, self.seed, "signer")

    @property
    def verifier(self) -> Verifier:
        public_key = bytes(nacl.signing.SigningKey(self.seed).verify_key)
        return Verifier(self.name, self.key_id, public_key)

    def encode(self) -> str:
        """The signer key string, PRIVATE+KEY+name+keyid+base64(0x01||seed). Secret."""
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_id.hex()}+{_b64(_KEY_TYPE_ED25519 + self.seed)}"


def key_id(name: str, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || 0x01 || public key)[:4], the spec's recommended Ed25519 key ID."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + _KEY_TYPE_ED25519 + public_key).digest()[:4]


def generate_signer(name: str) -> tuple[str, str]:
    """A fresh Ed25519 key for `name`: (signer key string, verifier key string)."""
    _check_key_name(name, "signer key")
    signing_key = nacl.signing.SigningKey.generate()
    public_key = bytes(signing_key.verify_key)
    signer = Signer(name, key_id(name, public_key), bytes(signing_key))
    return signer.encode(), signer.verifier.encode()


def parse_verifier_key(vkey: str) -> Verifier:
    """Parse name+keyid+base64(0x01||public key); raise NoteError unless it is exactly well formed."""
    name, _, rest = vkey.partition("+")
    hex_id, _, encoded = rest.partition("+")
    _check_key_name(name, "verifier key")
    key_id_bytes = _parse_key_id(hex_id, "verifier key")
    public_key = _parse_typed_key(encoded, "verifier key")
    if key_id(name, public_key) != key_id_bytes:
        raise NoteError("verifier key: key ID does not match the name and public key")
    return Verifier(name, key_id_bytes, public_key)


def parse_signer_key(skey: str) -> Signer:
    """Parse PRIVATE+KEY+name+keyid+base64(0x01||seed), checking the key ID against the public key."""
    if not skey.startswith(_PRIVATE_PREFIX):
        raise NoteError('signer key: does not start with "PRIVATE+KEY+"')
    name, _, rest = skey[len(_PRIVATE_PREFIX) :].partition("+")
    hex_id, _, encoded = rest.partition("+")
    _check_key_name(name, "signer key")
    key_id_bytes = _parse_key_id(hex_id, "signer key")
    seed = _parse_typed_key(encoded, "signer key")
    public_key = bytes(nacl.signing.SigningKey(seed).verify_key)
    if key_id(name, public_key) != key_id_bytes:
        raise NoteError("signer key: key ID does not match the name and derived public key")
    return Signer(name, key_id_bytes, seed)


def sign_note(text: str, signers: Iterable[Signer]) -> str:
    """Sign `text` with each signer, in order, and return the signed note.

    The text must end in a newline and hold no control character but newline (it may hold empty lines).
    """
    _check_note_characters(text, "note text")
    if not text.endswith("\n"):
        raise NoteError("malformed note: text does not end in a newline")
    message = text.encode("utf-8")
    lines: list[str] = []
    for signer in signers:
        signature = nacl.signing.SigningKey(signer.seed).sign(message).signature
        lines.append(f"{_SIGNATURE_PREFIX}{signer.name} {_b64(signer.key_id + signature)}\n")
    if not lines:
        raise NoteError("malformed note: no signers given")
    return text + "\n" + "".join(lines)


def open_note(note: str, verifiers: Iterable[Verifier]) -> tuple[str, list[str]]:
    """Verify `note` against the known `verifiers`; return its text and the names of the keys that signed.

    Raises NoteError: "malformed note: ..." for anything off-format; "invalid signature ..." when a known
    key's signature fails; "no verifiable signature ... unknown key ..." when no known key signed.
    """
    known = _index_verifiers(verifiers)
    _check_note_characters(note, "malformed note: the note")
    # The text may contain empty lines, and the signature block cannot, so the last blank line splits.
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("malformed note: no blank line before the signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block or not block.endswith("\n"):
        raise NoteError("malformed note: the signature block is empty or lacks a final newline")
    lines = block[:-1].split("\n")
    if len(lines) > NOTE_SIGNATURES_MAX:
        raise NoteError(f"malformed note: more than {NOTE_SIGNATURES_MAX} signatures")
    message = text.encode("utf-8")
    verified: list[str] = []
    seen: set[tuple[str, bytes]] = set()
    unknown: list[str] = []
    for number, line in enumerate(lines, start=1):
        name, id_bytes, signature = _parse_signature_line(line, number)
        verifier = known.get((name, id_bytes))
        if verifier is None:
            unknown.append(f"{name}+{id_bytes.hex()}")
            continue
        if (name, id_bytes) in seen:
            continue  # a repeated signature by one key adds nothing (as the Go implementation does)
        seen.add((name, id_bytes))
        if not _ed25519_verifies(verifier.public_key, message, signature):
            raise NoteError(f"invalid signature by {name}+{id_bytes.hex()}")
        verified.append(name)
    if not verified:
        raise NoteError(f"no verifiable signature: signed only by unknown key(s) {', '.join(unknown)}")
    return text, verified


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed tree head (c2sp.org/tlog-checkpoint): the log's origin, its size and its root hash.

    Validated on construction, so every Checkpoint formats to a text `parse_checkpoint` accepts.
    Extension lines are opaque, non-empty, and discouraged by the spec; we write none.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise CheckpointError(f"checkpoint size must be an int, got {type(self.size).__name__}")
        if not 0 <= self.size <= CHECKPOINT_SIZE_MAX:
            raise CheckpointError(f"checkpoint size {self.size} is outside 0..{CHECKPOINT_SIZE_MAX}")
        if len(self.root_hash) != ROOT_HASH_SIZE_BYTES:
            raise CheckpointError(f"checkpoint root hash is {len(self.root_hash)} bytes, want 32")
        for position, line in enumerate(self.extensions):
            _check_line(line, f"extension line {position}")


def format_checkpoint(checkpoint: Checkpoint) -> str:
    """The note text of `checkpoint`: origin, size, base64 root, extensions, each ending in a newline."""
    lines = [checkpoint.origin, str(checkpoint.size), _b64(checkpoint.root_hash), *checkpoint.extensions]
    return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint note text strictly; raise CheckpointError naming the first line that is wrong."""
    if not text.endswith("\n"):
        raise CheckpointError("checkpoint text does not end in a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError(f"checkpoint has {len(lines)} lines, want at least 3")
    origin, size_line, root_line, *extensions = lines
    if not _DECIMAL.fullmatch(size_line):
        raise CheckpointError(f"checkpoint size {size_line!r} is not a decimal without leading zeros")
    size = int(size_line)
    try:
        root_hash = _b64decode(root_line)
    except ValueError:
        raise CheckpointError(f"checkpoint root hash {root_line!r} is not canonical base64") from None
    return Checkpoint(origin, size, root_hash, tuple(extensions))


def _index_verifiers(verifiers: Iterable[Verifier]) -> dict[tuple[str, bytes], Verifier]:
    known: dict[tuple[str, bytes], Verifier] = {}
    for verifier in verifiers:
        previous = known.setdefault((verifier.name, verifier.key_id), verifier)
        if previous.public_key != verifier.public_key:
            raise NoteError(
                f"ambiguous verifiers: two keys are named {verifier.name}+{verifier.key_id.hex()}"
            )
    return known


def _parse_signature_line(line: str, number: int) -> tuple[str, bytes, bytes]:
    if not line.startswith(_SIGNATURE_PREFIX):
        raise NoteError(f'malformed note: signature line {number} does not start with "— "')
    name, space, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
    if not space or not _is_key_name(name):
        raise NoteError(f"malformed note: signature line {number} has no valid key name")
    try:
        decoded = _b64decode(encoded)
    except ValueError:
        raise NoteError(f"malformed note: signature line {number} is not canonical base64") from None
    if len(decoded) <= KEY_ID_SIZE_BYTES:
        raise NoteError(f"malformed note: signature line {number} is too short")
    return name, decoded[:KEY_ID_SIZE_BYTES], decoded[KEY_ID_SIZE_BYTES:]


def _ed25519_verifies(public_key: bytes, message: bytes, signature: bytes) -> bool:
    if len(signature) != ED25519_SIGNATURE_SIZE_BYTES:
        return False
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


def _check_note_characters(text: str, what: str) -> None:
    # The spec: valid UTF-8 (a str with a lone surrogate is not) and no control character but newline.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError(f"{what} is not valid UTF-8 (lone surrogate)") from None
    found = _FORBIDDEN_CONTROL.search(text)
    if found:
        raise NoteError(f"{what} holds control character U+{ord(found.group()):04X}")


def _check_line(line: str, what: str) -> None:
    if not isinstance(line, str) or not line:
        raise CheckpointError(f"checkpoint {what} must be a non-empty string")
    if "\n" in line:
        raise CheckpointError(f"checkpoint {what} holds a newline")
    try:
        _check_note_characters(line, f"checkpoint {what}")
    except NoteError as error:
        raise CheckpointError(str(error)) from None


def _is_key_name(name: str) -> bool:
    if not name or "+" in name or any(ch.isspace() or ch < " " for ch in name):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_key_fields(name: str, key_id_bytes: bytes, key: bytes, what: str) -> None:
    _check_key_name(name, what)
    if len(key_id_bytes) != KEY_ID_SIZE_BYTES:
        raise NoteError(f"{what}: key ID is {len(key_id_bytes)} bytes, want {KEY_ID_SIZE_BYTES}")
    if len(key) != ED25519_KEY_SIZE_BYTES:
        raise NoteError(f"{what}: Ed25519 key is {len(key)} bytes, want {ED25519_KEY_SIZE_BYTES}")


def _check_key_name(name: str, what: str) -> None:
    if not _is_key_name(name):
        raise NoteError(f"{what}: name {name!r} is empty or holds a space, '+' or a control character")


def _parse_key_id(hex_id: str, what: str) -> bytes:
    if not _KEY_ID_HEX.fullmatch(hex_id):
        raise NoteError(f"{what}: key ID {hex_id!r} is not 8 lowercase hex digits")
    return bytes.fromhex(hex_id)


def _parse_typed_key(encoded: str, what: str) -> bytes:
    try:
        decoded = _b64decode(encoded)
    except ValueError:
        raise NoteError(f"{what}: key is not canonical base64") from None
    if not decoded:
        raise NoteError(f"{what}: key is empty")
    if decoded[:1] != _KEY_TYPE_ED25519:
        raise NoteError(f"{what}: key type 0x{decoded[0]:02x} is not Ed25519 (0x01)")
    if len(decoded) != 1 + ED25519_KEY_SIZE_BYTES:
        raise NoteError(f"{what}: Ed25519 key is {len(decoded) - 1} bytes, want {ED25519_KEY_SIZE_BYTES}")
    return decoded[1:]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str) -> bytes:
    # Only the canonical spelling: RFC 4648 alphabet, padding present, spare bits zero. Decoding then
    # re-encoding is the simplest complete test of all three.
    if not text.isascii():
        raise ValueError("base64 is ASCII")
    try:
        decoded = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("not base64") from None
    if _b64(decoded) != text:
        raise ValueError("not canonical base64")
    return decoded
