"""Who is calling, and may they: the `Principal` of every request and the role checks routes declare.

A route reads as its signature::

    def read_receivable(provider_id: OwnProviderId, caller: ProviderPrincipal) -> ...

* `CurrentPrincipal`: any valid credential (an API key or an OAuth2 access token, both as
  ``Authorization: Bearer …``), after its rate limit is charged. Missing, malformed, unknown, expired or
  revoked → 401 problem with ``WWW-Authenticate: Bearer``.
* `require_role(...)` / the aliases `TreasuryOfficer`, `ProviderPrincipal`, `Auditor`, `MobileBackend`,
  `Operator`: the role must be one of those named, else 403. No role implies another.
* Provider isolation: a provider never learns that another provider's thing exists. `OwnProviderId` (a
  ``{provider_id}`` path parameter) and `ensure_provider_visible` answer 404, the same problem as for a
  thing that does not exist.
"""

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import Depends, Request, Security, params
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, OAuth2
from starlette.concurrency import run_in_threadpool

from api.credentials import (
    API_KEY_PREFIX,
    Credential,
    CredentialKind,
    Role,
    find_credential,
    parse_api_key,
    secret_matches,
)
from api.problems import Problem
from api.rate_limits import TokenBuckets
from api.tokens import TokenAuthority, TokenExpired, TokenInvalid
from ledger.unit_of_work import UnitOfWork

__all__ = [
    "Auditor",
    "CurrentPrincipal",
    "MobileBackend",
    "Operator",
    "OwnProviderId",
    "Principal",
    "ProviderPrincipal",
    "Role",
    "TreasuryOfficer",
    "ensure_provider_visible",
    "require_role",
]
REALM: Final = "amiyan"
# Compared against when no credential has the presented public id, so that case costs the same.
_ABSENT_SHA256: Final = bytes(32)

# For the OpenAPI document: both schemes read the same Authorization header (either one will do).
api_key_scheme = HTTPBearer(
    scheme_name="ApiKey", description="An API key `amk_…` as a bearer token.", auto_error=False
)
oauth2_scheme = OAuth2(
    flows=OAuthFlows(clientCredentials=OAuthFlowClientCredentials(tokenUrl="/oauth/token", scopes={})),
    scheme_name="OAuth2",
    description="An access token from POST /oauth/token (client credentials).",
    auto_error=False,
)


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request: the credential, its role and, for a provider, the provider it acts for."""

    credential_id: uuid.UUID
    role: Role
    name: str
    provider_id: uuid.UUID | None

    @property
    def officer_name(self) -> str | None:
        """For a treasury officer, the officer's name (what approvals record); else None."""
        return self.name if self.role is Role.treasury_officer else None


def _unauthenticated(code: str, title: str, token_presented: bool = True) -> Problem:
    challenge = f'Bearer realm="{REALM}"' + (', error="invalid_token"' if token_presented else "")
    return Problem(401, code, title, headers={"WWW-Authenticate": challenge})


async def authenticate(
    request: Request,
    _api_key: Annotated[HTTPAuthorizationCredentials | None, Security(api_key_scheme)],
    _token: Annotated[str | None, Security(oauth2_scheme)],
) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise _unauthenticated("credential_missing", "A credential is required", token_presented=False)
    scheme, _, value = header.partition(" ")
    presented = value.strip()
    if scheme.lower() != "bearer" or not presented:
        raise _unauthenticated("credential_invalid", "Send the credential as 'Authorization: Bearer …'")
    now = dt.datetime.now(dt.UTC)
    if presented.startswith(API_KEY_PREFIX):  # a database lookup: in a worker thread
        principal = await run_in_threadpool(_from_api_key, request.app.state.unit_of_work, presented, now)
    else:  # a signature check, cheaper than the hop to a thread
        principal = _from_access_token(request.app.state.token_authority, presented)
    _charge_rate_limit(request.app.state.rate_limits, principal)
    request.state.principal = principal  # the request log names the credential
    return principal


def _from_api_key(unit_of_work: UnitOfWork, presented: str, now: dt.datetime) -> Principal:
    parsed = parse_api_key(presented)
    if parsed is None:
        raise _unauthenticated("credential_invalid", "The API key is not valid")
    public_id, key = parsed
    found = unit_of_work.read(lambda c: find_credential(c, CredentialKind.api_key, public_id))
    credential, stored = found if found is not None else (None, _ABSENT_SHA256)
    if not secret_matches(key, stored) or credential is None:
        raise _unauthenticated("credential_invalid", "The API key is not valid")
    _refuse_unusable(credential, now)
    return Principal(credential.id, credential.role, credential.name, credential.provider_id)


def _refuse_unusable(credential: Credential, now: dt.datetime) -> None:
    """Said only to a caller who proved they hold the secret."""
    if credential.revoked_at is not None:
        raise _unauthenticated("credential_revoked", "This credential was revoked")
    if credential.expired(now):
        raise _unauthenticated("credential_expired", "This credential has expired")


def _from_access_token(authority: TokenAuthority, token: str) -> Principal:
    try:
        claims = authority.verify(token)
    except TokenExpired:
        raise _unauthenticated("token_expired", "The access token has expired; get a new one") from None
    except TokenInvalid:
        raise _unauthenticated("token_invalid", "The access token is not valid") from None
    return Principal(claims.credential_id, claims.role, claims.name, claims.provider_id)


def _charge_rate_limit(buckets: TokenBuckets, principal: Principal) -> None:
    wait_s = buckets.take(principal.credential_id)
    if wait_s:
        raise Problem(
            429,
            "rate_limited",
            "Too many requests from this credential",
            f"at most {buckets.rate_per_s:g} requests per second, bursts of {buckets.burst}",
            headers={"Retry-After": str(wait_s)},
        )


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def require_role(*roles: Role) -> params.Depends:
    """A dependency that admits only these roles (403 otherwise) and gives the `Principal`."""
    admitted = frozenset(roles)
    names = ", ".join(sorted(admitted))

    async def check_role(principal: CurrentPrincipal) -> Principal:
        if principal.role not in admitted:
            raise Problem(403, "role_forbidden", "This credential's role may not do that", f"needs: {names}")
        return principal

    dependency: params.Depends = Depends(check_role)
    return dependency


TreasuryOfficer = Annotated[Principal, require_role(Role.treasury_officer)]
ProviderPrincipal = Annotated[Principal, require_role(Role.provider)]
Auditor = Annotated[Principal, require_role(Role.auditor)]
MobileBackend = Annotated[Principal, require_role(Role.mobile_backend)]
Operator = Annotated[Principal, require_role(Role.operator)]


def ensure_provider_visible(
    principal: Principal, owner_provider_id: uuid.UUID | None, not_found: Problem
) -> None:
    """Raise `not_found` when the thing does not exist (`owner_provider_id` None) or when a provider asks
    for another provider's: both answers are the same, so a provider learns nothing about the others.
    Other roles were admitted by their role check and see every provider's things."""
    if owner_provider_id is None:
        raise not_found
    if principal.role is Role.provider and principal.provider_id != owner_provider_id:
        raise not_found


async def own_provider_id(provider_id: uuid.UUID, principal: CurrentPrincipal) -> uuid.UUID:
    """A ``{provider_id}`` path parameter the caller may see: its own, for a provider (else 404)."""
    if principal.role is Role.provider and principal.provider_id != provider_id:
        raise Problem(404, "provider_not_found", "No such provider")
    return provider_id


OwnProviderId = Annotated[uuid.UUID, Depends(own_provider_id)]
