"""OAuth2 access tokens: short-lived JWTs signed with Ed25519 (JWS `EdDSA`, RFC 8037), issued to an OAuth2
client at `POST /oauth/token` and presented as ``Authorization: Bearer <jwt>``.

A token carries the credential's id (`sub`), role, name and provider binding, so it is checked without
the database. The price: revoking a client stops new tokens at once, but a token already issued lives
until it expires (`token_lifetime_s`, five minutes by default).
"""

import base64
import datetime as dt
import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from api.credentials import Credential, Role
from api.settings import Settings
from ledger.ids import new_id

KEY_FILE_NAME: Final = "token-signer.key"
AUDIENCE: Final = "amiyan-api"
ALGORITHM: Final = "EdDSA"
_REQUIRED_CLAIMS: Final = ["exp", "iat", "iss", "aud", "sub", "jti", "role", "name"]


class TokenExpired(Exception):
    pass


class TokenInvalid(Exception):
    pass


@dataclass(frozen=True, slots=True)
class TokenClaims:
    credential_id: uuid.UUID
    role: Role
    name: str
    provider_id: uuid.UUID | None


class TokenAuthority:
    """Issues and verifies this service's access tokens."""

    def __init__(self, private_key: Ed25519PrivateKey, issuer: str, lifetime: dt.timedelta) -> None:
        self._private_key = private_key
        self._public_key: Ed25519PublicKey = private_key.public_key()
        raw_public = self._public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = hashlib.sha256(raw_public).hexdigest()[:16]
        self.issuer = issuer
        self.lifetime = lifetime

    def issue(self, credential: Credential, now: dt.datetime) -> str:
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": str(credential.id),
            "iat": int(now.timestamp()),
            "exp": int((now + self.lifetime).timestamp()),
            "jti": str(new_id()),
            "role": credential.role.value,
            "name": credential.name,
            "client_id": credential.client_id,
        }
        if credential.provider_id is not None:
            claims["provider_id"] = str(credential.provider_id)
        return jwt.encode(claims, self._private_key, algorithm=ALGORITHM, headers={"kid": self.key_id})

    def verify(self, token: str) -> TokenClaims:
        """The claims of a token this authority issued and that has not expired."""
        try:
            if jwt.get_unverified_header(token).get("kid") != self.key_id:
                raise TokenInvalid("signed by another key")
            claims = jwt.decode(
                token,
                self._public_key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=self.issuer,
                options={"require": _REQUIRED_CLAIMS},
            )
            provider = claims.get("provider_id")
            return TokenClaims(
                credential_id=uuid.UUID(claims["sub"]),
                role=Role(claims["role"]),
                name=str(claims["name"]),
                provider_id=uuid.UUID(provider) if provider is not None else None,
            )
        except jwt.ExpiredSignatureError as error:
            raise TokenExpired from error
        except (jwt.InvalidTokenError, ValueError, TypeError) as error:
            raise TokenInvalid(type(error).__name__) from error


def load_token_authority(settings: Settings) -> TokenAuthority:
    seed = settings.token_signing_key or _key_file(settings.data_dir)
    private_key = Ed25519PrivateKey.from_private_bytes(_decode_seed(seed))
    return TokenAuthority(private_key, settings.token_issuer, dt.timedelta(seconds=settings.token_lifetime_s))


def generate_signing_key() -> str:
    """A new key in the settings' format: the base64url Ed25519 seed."""
    raw = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_seed(text: str) -> bytes:
    text = text.strip()
    seed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if len(seed) != 32:
        raise ValueError("the token signing key must be a base64url Ed25519 seed of 32 bytes")
    return seed


def _key_file(data_dir: Path) -> str:
    path = data_dir / KEY_FILE_NAME
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it just now
        return path.read_text(encoding="utf-8").strip()
    key = generate_signing_key()
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    return key
