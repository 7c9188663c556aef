"""Who may call the API: credentials, each bound to one role and, for a provider, to one provider.

Two kinds, one table (`api_credentials`):

* an **API key** ``amk_<public id>_<secret>``, sent as ``Authorization: Bearer amk_…``;
* an **OAuth2 client** ``amc_<public id>`` with a client secret ``amcs_<secret>``, exchanged at
  ``POST /oauth/token`` for a short-lived JWT (`api.tokens`).

The public id (16 hex digits) finds the row; the secret is shown once, when the credential is created,
and stored only as its SHA-256. A plain hash is enough here, unlike for passwords: the secret is 256 bits
from `secrets`, so no dictionary or brute force can reach it from the hash, and a slow hash (bcrypt,
Argon2) would only add tens of milliseconds to every request. Comparison is constant-time.

A credential is never deleted and its binding never changes (a trigger refuses both); it can expire and
it can be revoked, once.
"""

import datetime as dt
import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import psycopg

from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork

API_KEY_PREFIX: Final = "amk_"
CLIENT_ID_PREFIX: Final = "amc_"
CLIENT_SECRET_PREFIX: Final = "amcs_"
PUBLIC_ID_BYTES: Final = 8
SECRET_BYTES: Final = 32
NAME_CHARS_MAX: Final = 200
_PUBLIC_ID: Final = re.compile(r"[0-9a-f]{16}")
_SECRET: Final = re.compile(r"[A-Za-z0-9_-]{43}")
_COLUMNS: Final = (
    "id, kind, role, provider_id, name, public_id, created_at, expires_at, revoked_at, secret_sha256"
)


class Role(StrEnum):
    """What a credential may do. Routes name the roles they admit; no role implies another."""

    treasury_officer = "treasury_officer"
    """A person at the treasury: programmes, funding (a second officer approves), issuance, settlement."""
    provider = "provider"
    """A canteen supplier, pharmacy, QazaqGaz, a club: sees and touches only its own provider's data."""
    auditor = "auditor"
    """Reads the audit log and the ledger; changes nothing."""
    mobile_backend = "mobile_backend"
    """The eGov Mobile backend: a citizen's vouchers, found by the IIN it presents."""
    operator = "operator"
    """Runs the service: credentials, ledger reads, operations."""


class CredentialKind(StrEnum):
    api_key = "api_key"
    oauth2_client = "oauth2_client"


class CredentialError(ValueError):
    """A credential that cannot be created as asked (the message says why)."""


@dataclass(frozen=True, slots=True)
class Credential:
    id: uuid.UUID
    kind: CredentialKind
    role: Role
    provider_id: uuid.UUID | None
    name: str
    public_id: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @property
    def client_id(self) -> str:
        """For an OAuth2 client: the `client_id` it presents."""
        return CLIENT_ID_PREFIX + self.public_id

    def expired(self, now: dt.datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    """A new credential and its secret: the API key, or the OAuth2 client secret. Shown once."""

    credential: Credential
    secret: str


def secret_sha256(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


def secret_matches(secret: str, stored_sha256: bytes) -> bool:
    return hmac.compare_digest(secret_sha256(secret), stored_sha256)


def parse_api_key(text: str) -> tuple[str, str] | None:
    """(public id, the whole key) for a well-formed API key, else None."""
    if not text.startswith(API_KEY_PREFIX):
        return None
    public_id, _, secret = text[len(API_KEY_PREFIX) :].partition("_")
    if not (_PUBLIC_ID.fullmatch(public_id) and _SECRET.fullmatch(secret)):
        return None
    return public_id, text


def parse_client_id(text: str) -> str | None:
    """The public id in an OAuth2 client id, else None."""
    public_id = text.removeprefix(CLIENT_ID_PREFIX)
    return public_id if text.startswith(CLIENT_ID_PREFIX) and _PUBLIC_ID.fullmatch(public_id) else None


def create_credential(
    unit_of_work: UnitOfWork,
    kind: CredentialKind,
    role: Role,
    name: str,
    now: dt.datetime,
    provider_id: uuid.UUID | None = None,
    valid_for: dt.timedelta | None = None,
) -> IssuedCredential:
    """Create a credential and return it with its secret (the only time the secret exists in clear)."""
    name = name.strip()
    if role is Role.provider and provider_id is None:
        raise CredentialError("a provider credential needs the provider id it acts for")
    if role is not Role.provider and provider_id is not None:
        raise CredentialError(f"a {role} credential is not bound to a provider")
    if not 1 <= len(name) <= NAME_CHARS_MAX:
        raise CredentialError(f"the name must have 1 to {NAME_CHARS_MAX} characters")
    if valid_for is not None and valid_for <= dt.timedelta(0):
        raise CredentialError("the validity must be positive")
    expires_at = now + valid_for if valid_for is not None else None

    def insert(connection: psycopg.Connection[Any]) -> IssuedCredential:
        public_id = secrets.token_hex(PUBLIC_ID_BYTES)  # drawn inside: a retry after a clash draws anew
        body = secrets.token_urlsafe(SECRET_BYTES)
        if kind is CredentialKind.api_key:
            secret = f"{API_KEY_PREFIX}{public_id}_{body}"
        else:
            secret = CLIENT_SECRET_PREFIX + body
        credential = Credential(new_id(), kind, role, provider_id, name, public_id, now, expires_at, None)
        connection.execute(
            "INSERT INTO api_credentials (id, kind, role, provider_id, name, public_id, secret_sha256,"
            " created_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (credential.id, kind, role, provider_id, name, public_id, secret_sha256(secret), now, expires_at),
        )
        return IssuedCredential(credential, secret)

    return unit_of_work.run(insert)


def find_credential(
    connection: psycopg.Connection[Any], kind: CredentialKind, public_id: str
) -> tuple[Credential, bytes] | None:
    """The credential with this public id and its stored secret hash."""
    row = connection.execute(
        f"SELECT {_COLUMNS} FROM api_credentials WHERE public_id = %s AND kind = %s", (public_id, kind.value)
    ).fetchone()
    return None if row is None else (_credential(row), bytes(row[9]))


def credential_by_id(connection: psycopg.Connection[Any], credential_id: uuid.UUID) -> Credential | None:
    row = connection.execute(
        f"SELECT {_COLUMNS} FROM api_credentials WHERE id = %s", (credential_id,)
    ).fetchone()
    return None if row is None else _credential(row)


def list_credentials(unit_of_work: UnitOfWork) -> list[Credential]:
    def select(connection: psycopg.Connection[Any]) -> list[Credential]:
        rows = connection.execute(f"SELECT {_COLUMNS} FROM api_credentials ORDER BY created_at, id")
        return [_credential(row) for row in rows]

    return unit_of_work.read(select)


def revoke_credential(unit_of_work: UnitOfWork, credential_id: uuid.UUID, now: dt.datetime) -> bool:
    """Revoke a credential; False when there is no such credential or it was already revoked."""

    def revoke(connection: psycopg.Connection[Any]) -> bool:
        cursor = connection.execute(
            "UPDATE api_credentials SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
            (now, credential_id),
        )
        return cursor.rowcount == 1

    return unit_of_work.run(revoke)


def _credential(row: tuple[Any, ...]) -> Credential:
    return Credential(
        id=row[0],
        kind=CredentialKind(row[1]),
        role=Role(row[2]),
        provider_id=row[3],
        name=row[4],
        public_id=row[5],
        created_at=row[6],
        expires_at=row[7],
        revoked_at=row[8],
    )
