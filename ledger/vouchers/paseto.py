"""PASETO v4.public tokens (Ed25519) and PASERK k4 key strings, as the PASETO and PASERK specs define them.

A v4.public token is three or four dot-separated segments::

    v4.public.<base64url(payload ‖ signature)>[.<base64url(footer)>]

- ``v4.public.`` is the header: version 4 (Ed25519 and BLAKE2b), purpose *public*, meaning signed, not
  encrypted. Anyone can read the payload; the signature proves who issued it and that nothing changed.
- The signature is 64 bytes of Ed25519 over ``PAE(header, payload, footer, implicit_assertion)``. It is
  appended to the payload and the two are base64url-encoded together.
- The footer is signed but not hidden: a verifier can read it *before* verifying (:func:`read_footer`) to
  learn which key to verify with. We put the issuer key's ``k4.pid`` there. An empty footer is omitted
  together with its dot.
- The implicit assertion is signed but never sent: signer and verifier must supply the same bytes, which
  binds a token to a context without making it longer.
- base64url is RFC 4648 §5 without ``=`` padding. Only the canonical spelling is accepted, so a token has
  exactly one string form and a changed character never verifies.

PAE (pre-authentication encoding) makes the signed bytes unambiguous: the number of pieces, then each piece
after its length, every integer as 8 bytes little-endian with the top bit cleared::

    PAE([])        = 00 00 00 00 00 00 00 00
    PAE([b""])     = 01 00 00 00 00 00 00 00 | 00 00 00 00 00 00 00 00
    PAE([b"test"]) = 01 00 00 00 00 00 00 00 | 04 00 00 00 00 00 00 00 | "test"

PASERK writes keys as strings::

    k4.public.<base64url(32-byte public key)>
    k4.secret.<base64url(32-byte seed ‖ 32-byte public key)>
    k4.pid.<base64url(BLAKE2b-264("k4.pid." ‖ the k4.public string))>

The last is a key id: it names a public key without revealing it.

Map: :func:`sign_v4_public`, :func:`verify_v4_public`, :func:`read_footer` (:func:`footer_segment` then
:func:`decode_footer`), :func:`pre_auth_encode`; :func:`keypair_from_seed`; :func:`encode_k4_public`,
:func:`decode_k4_public`, :func:`encode_k4_secret`, :func:`decode_k4_secret`, :func:`k4_pid`. Errors:
:class:`TokenError` (a presented token is refused) and :class:`KeyFormatError` (key bytes or a PASERK string
are wrong). v4.local (encrypted tokens) is deliberately absent: a voucher is signed, never encrypted, and a
v4.local token is refused as "not v4.public".
"""

import base64
import binascii
import hashlib
import hmac
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

import nacl.bindings
import nacl.exceptions

HEADER: Final = "v4.public."
_HEADER_BYTES: Final = HEADER.encode("ascii")

SIGNATURE_BYTES: Final = 64
PUBLIC_KEY_BYTES: Final = 32
SEED_BYTES: Final = 32
SECRET_KEY_BYTES: Final = 64  # seed ‖ public key, as libsodium and the PASETO vectors lay it out

# A voucher token must fit in a QR code (at most 2,953 bytes in byte mode). 8 KiB leaves room for other
# carriers and refuses an oversized input before any decoding or hashing.
TOKEN_CHARS_MAX: Final = 8192

K4_PUBLIC_PREFIX: Final = "k4.public."
K4_SECRET_PREFIX: Final = "k4.secret."
K4_PID_PREFIX: Final = "k4.pid."
K4_PID_DIGEST_BYTES: Final = 33  # BLAKE2b-264: 33 bytes encode to 44 base64url characters with no padding

_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]*")
_SEXTETS: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_FROM_URLSAFE: Final = bytes.maketrans(b"-_", b"+/")
# By length mod 4: the last character's bits that carry no data (2 characters hold 1 byte, 3 hold 2).
_UNUSED_BITS: Final = (0, 0, 0b1111, 0b11)
_HEADER_SHAPE: Final = re.compile(r"[a-z0-9]{1,8}\.[a-z0-9-]{1,16}\.")
_TOP_BIT_CLEAR: Final = 0x7FFF_FFFF_FFFF_FFFF


class TokenErrorReason(StrEnum):
    """Why a token was refused, in the order the checks run: the first that applies is reported."""

    too_long = "too_long"
    wrong_header = "wrong_header"
    """The token is not v4.public: another version (v3, …) or purpose (v4.local, …)."""
    malformed = "malformed"
    """Wrong number of dot-separated segments, or an empty footer segment (an empty footer is omitted)."""
    bad_base64 = "bad_base64"
    """Body or footer is not canonical unpadded base64url."""
    too_short = "too_short"
    """The body is shorter than a signature, so there cannot be one."""
    footer_mismatch = "footer_mismatch"
    invalid_signature = "invalid_signature"
    """Wrong key, changed payload or footer, or another implicit assertion: indistinguishable by design."""


class TokenError(ValueError):
    """A refused token: ``reason`` is stable; the message is for people and never quotes the token."""

    def __init__(self, reason: TokenErrorReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class KeyFormatError(ValueError):
    """Key bytes of the wrong size, a seed and public half that disagree, or a malformed PASERK string."""


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """What a verified token carries. The payload is authentic; what it *means* is the caller's to check. The
    signature that proved it is kept too: a verifier may compare it with one it stored."""

    payload: bytes
    footer: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class KeyPair:
    """An Ed25519 key pair: ``secret_key`` is the 64-byte seed ‖ public key, ``public_key`` 32 bytes."""

    secret_key: bytes = field(repr=False)
    public_key: bytes


def pre_auth_encode(pieces: Sequence[bytes]) -> bytes:
    """PAE: the count of pieces, then each piece after its length, all lengths 64-bit little-endian."""
    encoded = [_le64(len(pieces))]
    for piece in pieces:
        encoded.append(_le64(len(piece)))
        encoded.append(piece)
    return b"".join(encoded)


def keypair_from_seed(seed: bytes) -> KeyPair:
    """Derive the Ed25519 key pair from a 32-byte seed (the seed is the whole secret)."""
    if len(seed) != SEED_BYTES:
        raise KeyFormatError(f"an Ed25519 seed is {SEED_BYTES} bytes, got {len(seed)}")
    public_key, secret_key = nacl.bindings.crypto_sign_seed_keypair(seed)
    return KeyPair(secret_key=secret_key, public_key=public_key)


def sign_v4_public(
    secret_key: bytes, payload: bytes, footer: bytes = b"", implicit_assertion: bytes = b""
) -> str:
    """Sign ``payload`` into a v4.public token.

    ``secret_key`` is the 64-byte seed ‖ public key or the 32-byte seed alone. Ed25519 is deterministic: the
    same key and inputs always give the same token. The footer travels in the token; the implicit assertion
    does not, and the verifier must supply the same bytes.
    """
    expanded = _expanded_secret_key(secret_key)
    token_chars = len(HEADER) + _b64url_chars(len(payload) + SIGNATURE_BYTES)
    if footer:
        token_chars += 1 + _b64url_chars(len(footer))
    if token_chars > TOKEN_CHARS_MAX:
        raise TokenError(
            TokenErrorReason.too_long,
            f"the token would be {token_chars} characters, over TOKEN_CHARS_MAX = {TOKEN_CHARS_MAX}",
        )
    signed = pre_auth_encode((_HEADER_BYTES, payload, footer, implicit_assertion))
    # libsodium's combined form returns signature ‖ message; only the signature is wanted.
    signature = nacl.bindings.crypto_sign(signed, expanded)[:SIGNATURE_BYTES]
    token = HEADER + _b64url_encode(payload + signature)
    if footer:
        token += "." + _b64url_encode(footer)
    return token


def verify_v4_public(
    public_key: bytes, token: str, footer: bytes | None = None, implicit_assertion: bytes = b""
) -> VerifiedToken:
    """Verify a v4.public token and return its payload and footer, or raise :class:`TokenError`.

    ``footer=None`` accepts any footer and returns it (the caller read it with :func:`read_footer` to pick the
    key, and the signature covers it); given bytes, the footer must equal them exactly.
    """
    _require_public_key(public_key)
    body_text, footer_text = _split(token)
    body = _b64url_decode(body_text)
    if body is None:
        raise TokenError(TokenErrorReason.bad_base64, "the token body is not canonical unpadded base64url")
    found_footer = _decode_footer(footer_text)
    if len(body) < SIGNATURE_BYTES:
        raise TokenError(
            TokenErrorReason.too_short,
            f"the token body is {len(body)} bytes, shorter than a {SIGNATURE_BYTES}-byte signature",
        )
    # Constant time, as the spec asks: the expected footer may be a secret the caller holds.
    if footer is not None and not hmac.compare_digest(found_footer, footer):
        raise TokenError(TokenErrorReason.footer_mismatch, "the token footer is not the one expected")
    payload, signature = body[:-SIGNATURE_BYTES], body[-SIGNATURE_BYTES:]
    signed = pre_auth_encode((_HEADER_BYTES, payload, found_footer, implicit_assertion))
    try:
        nacl.bindings.crypto_sign_open(signature + signed, public_key)
    except nacl.exceptions.BadSignatureError:
        raise TokenError(
            TokenErrorReason.invalid_signature, "the token signature does not verify with this key"
        ) from None
    return VerifiedToken(payload=payload, footer=found_footer, signature=signature)


def read_footer(token: str) -> bytes:
    """Return a v4.public token's footer (``b""`` if none) WITHOUT verifying anything.

    Untrusted: use it only to choose the key to verify with (our footer names the issuer key by ``k4.pid``),
    then pass that key to :func:`verify_v4_public`, which checks the footer as part of the signature.
    """
    return decode_footer(footer_segment(token))


def footer_segment(token: str) -> str:
    """The footer as it travels (base64url text, ``""`` if none), unverified and undecoded: a verifier that
    sees many tokens of one key can remember what it learnt from one footer string. Raises
    :class:`TokenError` for a token not shaped like v4.public."""
    return _split(token)[1]


def decode_footer(footer_text: str) -> bytes:
    """The footer bytes of a footer segment; raises :class:`TokenError` unless canonical base64url."""
    return _decode_footer(footer_text)


def encode_k4_public(public_key: bytes) -> str:
    """``k4.public.`` + base64url of the 32-byte public key."""
    _require_public_key(public_key)
    return K4_PUBLIC_PREFIX + _b64url_encode(public_key)


def decode_k4_public(paserk: str) -> bytes:
    """The 32-byte public key in a ``k4.public.`` string; any other version, type or size is refused."""
    return _decode_paserk(paserk, K4_PUBLIC_PREFIX, PUBLIC_KEY_BYTES)


def encode_k4_secret(secret_key: bytes) -> str:
    """``k4.secret.`` + base64url of the 64-byte seed ‖ public key (whose halves must agree)."""
    if len(secret_key) != SECRET_KEY_BYTES:
        raise KeyFormatError(f"a k4.secret key is {SECRET_KEY_BYTES} bytes, got {len(secret_key)}")
    _expanded_secret_key(secret_key)
    return K4_SECRET_PREFIX + _b64url_encode(secret_key)


def decode_k4_secret(paserk: str) -> bytes:
    """The 64-byte seed ‖ public key in a ``k4.secret.`` string; refused if the halves disagree."""
    secret_key = _decode_paserk(paserk, K4_SECRET_PREFIX, SECRET_KEY_BYTES)
    _expanded_secret_key(secret_key)
    return secret_key


def k4_pid(public_key: bytes) -> str:
    """The PASERK key id of a public key: ``k4.pid.`` + base64url(BLAKE2b-264("k4.pid." ‖ k4.public string)).

    The prefix is hashed too, so an id of one kind can never equal an id of another (k4.lid, k4.sid, …).
    """
    digest = hashlib.blake2b(
        (K4_PID_PREFIX + encode_k4_public(public_key)).encode("ascii"), digest_size=K4_PID_DIGEST_BYTES
    ).digest()
    return K4_PID_PREFIX + _b64url_encode(digest)


def _le64(n: int) -> bytes:
    # The spec clears the top bit so that languages with only signed 64-bit integers encode the same bytes.
    return struct.pack("<Q", n & _TOP_BIT_CLEAR)


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_chars(n_bytes: int) -> int:
    return (4 * n_bytes + 2) // 3


def _b64url_decode(text: str) -> bytes | None:
    # Python's decoder skips characters outside the alphabet and ignores the unused low bits of the last
    # character; either would let one token have several spellings, so only the canonical one is accepted.
    if len(text) % 4 == 1 or _BASE64URL.fullmatch(text) is None:
        return None
    # Only the alphabet is left, so the one other spelling of the same bytes sets the last character's
    # unused low bits; refusing those is the re-encode-and-compare check without re-encoding the token.
    if text and _SEXTETS.index(text[-1]) & _UNUSED_BITS[len(text) % 4]:
        return None
    return binascii.a2b_base64(text.encode("ascii").translate(_FROM_URLSAFE) + b"=" * (-len(text) % 4))


def _split(token: str) -> tuple[str, str]:
    if len(token) > TOKEN_CHARS_MAX:
        raise TokenError(
            TokenErrorReason.too_long,
            f"the token is {len(token)} characters, over TOKEN_CHARS_MAX = {TOKEN_CHARS_MAX}",
        )
    if not token.startswith(HEADER):
        # Checked before anything is decoded: a token of another version or purpose must never reach
        # Ed25519 (the spec's "algorithm lucidity").
        raise TokenError(
            TokenErrorReason.wrong_header,
            f"the token is not v4.public: {_describe_header(token)}; only v4.public tokens are accepted",
        )
    body_text, dot, footer_text = token[len(HEADER) :].partition(".")
    if dot and not footer_text:
        raise TokenError(
            TokenErrorReason.malformed,
            "the token ends in an empty footer segment; an empty footer is omitted",
        )
    if "." in footer_text:
        raise TokenError(TokenErrorReason.malformed, "the token has more than four dot-separated segments")
    return body_text, footer_text


def _describe_header(token: str) -> str:
    shape = _HEADER_SHAPE.match(token)
    return f"its header is {shape.group(0)!r}" if shape else "it has no recognisable header"


def _decode_footer(footer_text: str) -> bytes:
    found_footer = _b64url_decode(footer_text)
    if found_footer is None:
        raise TokenError(TokenErrorReason.bad_base64, "the token footer is not canonical unpadded base64url")
    return found_footer


def _require_public_key(public_key: bytes) -> None:
    # libsodium reads exactly 32 bytes from the pointer it is given: a shorter key must never reach it.
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise KeyFormatError(f"an Ed25519 public key is {PUBLIC_KEY_BYTES} bytes, got {len(public_key)}")


def _expanded_secret_key(secret_key: bytes) -> bytes:
    """The 64-byte libsodium secret key for a 32-byte seed or a 64-byte seed ‖ public key."""
    if len(secret_key) == SEED_BYTES:
        return keypair_from_seed(secret_key).secret_key
    if len(secret_key) != SECRET_KEY_BYTES:
        raise KeyFormatError(
            f"an Ed25519 secret key is {SEED_BYTES} bytes (seed) or {SECRET_KEY_BYTES} bytes "
            f"(seed ‖ public key), got {len(secret_key)}"
        )
    derived = keypair_from_seed(secret_key[:SEED_BYTES])
    # libsodium signs with the public half it is handed. With a wrong one, two signatures of one message share
    # their nonce but not their challenge, which reveals the private scalar; so the halves must agree.
    if not hmac.compare_digest(derived.public_key, secret_key[SEED_BYTES:]):
        raise KeyFormatError("the secret key's public half does not belong to its seed")
    return derived.secret_key


def _decode_paserk(paserk: str, prefix: str, key_bytes: int) -> bytes:
    if not paserk.startswith(prefix):
        shape = _HEADER_SHAPE.match(paserk)
        found = repr(shape.group(0)) if shape else "no recognisable header"
        raise KeyFormatError(f"expected a {prefix!r} PASERK, found {found}")
    key = _b64url_decode(paserk[len(prefix) :])
    if key is None:
        raise KeyFormatError(f"the {prefix!r} PASERK is not canonical unpadded base64url")
    if len(key) != key_bytes:
        raise KeyFormatError(f"a {prefix!r} PASERK holds {key_bytes} bytes, this one {len(key)}")
    return key
