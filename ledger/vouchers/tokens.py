"""The voucher token: a PASETO v4.public whose claims say what the voucher is, signed by an issuer key named
in the footer (`{"kid":"k4.pid..."}`).

Claims (RFC 8785 canonical JSON, so the payload is a function of the voucher's stored fields and the token
can be rebuilt exactly from them and the stored 64-byte signature):

    iss "amiyan.kz"   jti voucher id   programme   purpose   holder (base64url of the salted IIN hash; never
    the IIN)   amount_tiyn   units_max   limits {period, uses, tiyn, units} (a key is absent = unlimited)
    items [{code, quantity}] (prescriptions)   iat / nbf / exp (RFC 3339, whole seconds, UTC)

The holder hash lets a terminal or the mobile app check who the voucher is for without learning the IIN.
"""

import base64
import binascii
import datetime as dt
import functools
import json
import uuid
from dataclasses import dataclass
from typing import Final

import nacl.bindings

from ledger.audit.canonical import CanonicalValue, canonical_bytes, parse_canonical
from ledger.clock import NANOSECONDS_PER_SECOND, timestamp_to_datetime
from ledger.vouchers.paseto import (
    HEADER,
    SIGNATURE_BYTES,
    KeyPair,
    TokenError,
    TokenErrorReason,
    decode_footer,
    footer_segment,
    k4_pid,
    pre_auth_encode,
    verify_v4_public,
)
from ledger.vouchers.policy import NO_LIMIT
from ledger.vouchers.signing import Purpose, sign_message

ISSUER: Final = "amiyan.kz"
_HEADER_BYTES: Final = HEADER.encode("ascii")
_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True, slots=True)
class VoucherClaims:
    voucher_id: uuid.UUID
    programme_id: uuid.UUID
    purpose: str
    holder_hash: bytes
    amount_tiyn: int
    units_max: int
    period: str
    period_uses_max: int
    period_tiyn_max: int
    period_units_max: int
    items: tuple[tuple[str, int], ...]
    issued_at_s: int
    not_before_s: int
    expires_at_s: int

    @property
    def not_before(self) -> int:
        return self.not_before_s * NANOSECONDS_PER_SECOND

    @property
    def expires_at(self) -> int:
        return self.expires_at_s * NANOSECONDS_PER_SECOND

    @property
    def issued_at(self) -> int:
        return self.issued_at_s * NANOSECONDS_PER_SECOND


def claims_payload(claims: VoucherClaims) -> bytes:
    limits: dict[str, CanonicalValue] = {"period": claims.period}
    for name, value in (
        ("uses", claims.period_uses_max),
        ("tiyn", claims.period_tiyn_max),
        ("units", claims.period_units_max),
    ):
        if value != NO_LIMIT:
            limits[name] = value
    document: dict[str, CanonicalValue] = {
        "iss": ISSUER,
        "jti": str(claims.voucher_id),
        "programme": str(claims.programme_id),
        "purpose": claims.purpose,
        "holder": _b64url(claims.holder_hash),
        "amount_tiyn": claims.amount_tiyn,
        "limits": limits,
        "iat": _rfc3339(claims.issued_at_s),
        "nbf": _rfc3339(claims.not_before_s),
        "exp": _rfc3339(claims.expires_at_s),
    }
    if claims.units_max != NO_LIMIT:
        document["units_max"] = claims.units_max
    if claims.items:
        # Sorted by code, so the payload does not depend on the order items were listed in.
        document["items"] = [{"code": code, "quantity": quantity} for code, quantity in sorted(claims.items)]
    # Every key and string here is ASCII that needs no escaping (ids, identifiers, base64url, RFC 3339,
    # item codes), and every integer is below 2^53; for such documents json.dumps with sorted keys and no
    # whitespace writes exactly the RFC 8785 bytes (tests/test_voucher_tokens.py checks it against
    # `canonical_bytes`), five times faster: bulk issuance builds a million of these.
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("ascii")


def key_footer(key_id: str) -> bytes:
    return canonical_bytes({"kid": key_id})


class IssuerSigner:
    """An issuer key ready to sign tokens and receipts: the key pair is checked once, not per signature
    (bulk issuance signs a million tokens)."""

    def __init__(self, key_pair: KeyPair) -> None:
        derived = nacl.bindings.crypto_sign_seed_keypair(key_pair.secret_key[:32])
        assert derived[0] == key_pair.public_key, "the secret key's public half does not match its seed"
        self._secret = derived[1]
        self.public_key = key_pair.public_key
        self.key_id = k4_pid(key_pair.public_key)
        self._footer = key_footer(self.key_id)

    def sign(self, claims: VoucherClaims) -> bytes:
        """The 64-byte signature of the voucher's token; `token_text` rebuilds the token from it."""
        return self.sign_payload(claims_payload(claims))

    def sign_payload(self, payload: bytes) -> bytes:
        """`sign` for a payload already made by `claims_payload` (issuance keeps it for the token)."""
        signed = pre_auth_encode((_HEADER_BYTES, payload, self._footer, b""))
        signature: bytes = nacl.bindings.crypto_sign(signed, self._secret)[:SIGNATURE_BYTES]
        return signature

    def sign_message(self, purpose: Purpose, body: bytes) -> bytes:
        """A purpose-tagged signature (receipts), by the same issuer key."""
        return sign_message(self._secret, purpose, body)


def token_text(claims: VoucherClaims, key_id: str, signature: bytes) -> str:
    """The token string, byte for byte what was signed: header, payload ‖ signature, footer."""
    return token_from_payload(claims_payload(claims), key_id, signature)


def token_from_payload(payload: bytes, key_id: str, signature: bytes) -> str:
    """`token_text` for a payload already made by `claims_payload`."""
    return f"{HEADER}{_b64url(payload + signature)}.{_encoded_footer(key_id)}"


@functools.lru_cache(maxsize=64)
def _encoded_footer(key_id: str) -> str:
    return _b64url(key_footer(key_id))


def token_key_id(token: str) -> str:
    """The issuer key id from the footer, read before verifying (to pick the key); raises TokenError."""
    return _footer_key_id(footer_segment(token))


# Every token of an issuer key carries the same footer, so it is decoded and parsed once per key, not per
# token. The key id is a function of the footer text alone and a refusal raises (lru_cache never stores
# it), so a remembered footer yields exactly what reading it again would; another footer is another entry.
@functools.lru_cache(maxsize=64)
def _footer_key_id(footer_text: str) -> str:
    footer = decode_footer(footer_text)
    try:
        value = parse_canonical(footer)
    except ValueError:
        raise TokenError(TokenErrorReason.malformed, "the token footer is not canonical JSON") from None
    if not isinstance(value, dict) or set(value) != {"kid"} or not isinstance(value["kid"], str):
        raise TokenError(TokenErrorReason.malformed, 'the token footer must be {"kid": "k4.pid..."}')
    return value["kid"]


def verify_token(public_key: bytes, token: str) -> VoucherClaims:
    """Verify the signature and read the claims; raises TokenError (bad signature, malformed claims)."""
    return verify_token_signed(public_key, token)[0]


def verify_token_signed(public_key: bytes, token: str) -> tuple[VoucherClaims, bytes]:
    """`verify_token`, and the 64-byte signature it checked (what the voucher row stores), so the token is
    decoded once."""
    verified = verify_v4_public(public_key, token)
    try:
        return parse_claims(verified.payload), verified.signature
    except (ValueError, KeyError, TypeError) as error:
        raise TokenError(
            TokenErrorReason.malformed, f"the token's claims are not a voucher's: {error}"
        ) from None


def parse_claims(payload: bytes) -> VoucherClaims:
    """The claims of a payload whose signature was checked (so the bytes are the issuer's own); every field's
    type is still checked, and anything unexpected raises ValueError."""
    value = json.loads(payload)
    if not isinstance(value, dict) or value.get("iss") != ISSUER:
        raise ValueError("not an amiyan voucher token")
    limits = value["limits"]
    items = value.get("items", [])
    if not isinstance(limits, dict) or not isinstance(items, list):
        raise ValueError("limits must be an object and items a list")
    return VoucherClaims(
        voucher_id=uuid.UUID(_text(value["jti"])),
        programme_id=uuid.UUID(_text(value["programme"])),
        purpose=_text(value["purpose"]),
        holder_hash=_b64url_decode(_text(value["holder"])),
        amount_tiyn=_integer(value["amount_tiyn"]),
        units_max=_integer(value.get("units_max", NO_LIMIT)),
        period=_text(limits["period"]),
        period_uses_max=_integer(limits.get("uses", NO_LIMIT)),
        period_tiyn_max=_integer(limits.get("tiyn", NO_LIMIT)),
        period_units_max=_integer(limits.get("units", NO_LIMIT)),
        items=tuple((_text(item["code"]), _integer(item["quantity"])) for item in items),
        issued_at_s=_seconds(_text(value["iat"])),
        not_before_s=_seconds(_text(value["nbf"])),
        expires_at_s=_seconds(_text(value["exp"])),
    )


# A batch's tokens share a handful of times (issued-at within a second or two, the programme's validity
# bounds), and formatting one costs more than the rest of the payload: bulk issuance formats millions.
@functools.lru_cache(maxsize=4096)
def _rfc3339(seconds: int) -> str:
    return timestamp_to_datetime(seconds * NANOSECONDS_PER_SECOND).strftime(_TIME_FORMAT)


# Tokens issued together share their times (issued-at within a second or two, the programme's validity
# bounds); the result is a function of the text alone, and a refusal raises and is never remembered.
@functools.lru_cache(maxsize=4096)
def _seconds(text: str) -> int:
    """Whole seconds of an RFC 3339 UTC time written as `_rfc3339` writes it (anything else is refused)."""
    # fromisoformat takes many ISO 8601 shapes (a space for the T, offsets, no zone): the time must read
    # back exactly as `_rfc3339` writes it, one time, one spelling.
    try:
        seconds: int | None = int(dt.datetime.fromisoformat(text).timestamp())
    except ValueError:
        seconds = None
    if seconds is None or _rfc3339(seconds) != text:
        raise ValueError(f"not a UTC time YYYY-MM-DDTHH:MM:SSZ: {text!r}")
    return seconds


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise ValueError("holder is not base64url") from None


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return value


def _integer(value: object) -> int:
    if type(value) is not int:
        raise ValueError(f"expected an integer, got {type(value).__name__}")
    return value
