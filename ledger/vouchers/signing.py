"""Purpose-tagged Ed25519 signatures, as GNU Taler does them: every signed message begins with a tag
naming what it is, so a signature made for one kind of message can never be replayed as another
(a terminal's redemption request as a batch, a receipt as an act). The body is canonical JSON."""

from enum import StrEnum

import nacl.bindings
import nacl.exceptions

SIGNATURE_BYTES = 64
PUBLIC_KEY_BYTES = 32


class Purpose(StrEnum):
    REDEMPTION_REQUEST = "amiyan.kz/redemption-request/v1"
    REDEMPTION_BATCH = "amiyan.kz/redemption-batch/v1"
    REDEMPTION_RECEIPT = "amiyan.kz/redemption-receipt/v1"
    SERVICE_ACT = "amiyan.kz/service-act/v1"


def tagged(purpose: Purpose, body: bytes) -> bytes:
    """The bytes actually signed: the purpose tag, a newline, the body."""
    return purpose.value.encode("ascii") + b"\n" + body


def sign_message(secret_key: bytes, purpose: Purpose, body: bytes) -> bytes:
    """Sign with a 64-byte libsodium secret key (seed ‖ public key); returns the 64-byte signature."""
    signature: bytes = nacl.bindings.crypto_sign(tagged(purpose, body), secret_key)[:SIGNATURE_BYTES]
    return signature


def verify_message(public_key: bytes, purpose: Purpose, body: bytes, signature: bytes) -> bool:
    """True when `signature` is `public_key`'s over this purpose and body; never raises on bad input."""
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + tagged(purpose, body), public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, nacl.exceptions.TypeError):
        return False
    return True
