"""Who is calling, and may they: the `Principal` of every request and the role checks routes declare.

A route reads as its signature::

    def read_receivable(provider_id: OwnProviderId, caller: ProviderPrincipal) -> ...

* `CurrentPrincipal`: any valid credential (an API key or an OAuth2 access token, both as
  ``Authorization: Bearer …``), after its rate limit is charged. Missing, malformed, unknown, expired or
  revoked → 401 problem with ``WWW-Authenticate: Bearer``. A credential found usable in the database
  (an API key, or the client behind an access token) is remembered for `api_key_remember_s`
  (`VerifiedKeys`), so a revocation takes effect within that time, for access tokens too.
* `require_role(...)` / the aliases `TreasuryOfficer`, `ProviderPrincipal`, `Auditor`, `MobileBackend`,
  `Operator`: the role must be one of those named, else 403. No role implies another.
* Provider isolation: a provider never learns that another provider's thing exists. `OwnProviderId` (a
  ``{provider_id}`` path parameter) and `ensure_provider_visible` answer 404, the same problem as for a
  thing that does not exist.
"""

import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import Depends, FastAPI, Request, params
from fastapi.dependencies.models import Dependant
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import HTTPBearer, OAuth2
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State

from api.credentials import (
    API_KEY_PREFIX,
    Credential,
    CredentialKind,
    Role,
    credential_by_id,
    find_credential,
    parse_api_key,
    secret_matches,
)
from api.openapi_examples import ROLE_FORBIDDEN, edit_openapi
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
    "VerifiedKeys",
    "ensure_provider_visible",
    "require_own_provider",
    "require_role",
]
REALM: Final = "amiyan"
API_KEYS_REMEMBERED_MAX: Final = 10_000
# Compared against when no credential has the presented public id, so that case costs the same.
_ABSENT_SHA256: Final = bytes(32)

# For the OpenAPI document (`install_security_schemes`): both schemes read the same Authorization header
# (either one will do).
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


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: Principal
    expires_at: dt.datetime | None  # the credential's own expiry
    forget_at_s: float  # time.monotonic() after which the database is asked again


class VerifiedKeys:
    """API keys verified in the database a moment ago, remembered for `remember_s` seconds so that a
    terminal's every request does not look its key up again (the lookup and its hop to a worker thread
    cost more than the rest of authentication).

    The trade-off: a key revoked in the database keeps working in this process for up to `remember_s`
    (each server process remembers on its own). Only a key that was found, matched and usable is
    remembered; an unknown, wrong, revoked or expired key is looked up every time. A remembered key whose
    credential has expired meanwhile is looked up again (and refused). Entries are keyed by the SHA-256 of
    the presented key, never the key itself; at most `remembered_max`, the oldest forgotten first.
    `remember_s` 0 remembers nothing. Used from the event loop only, so it needs no lock."""

    def __init__(
        self,
        remember_s: float,
        remembered_max: int = API_KEYS_REMEMBERED_MAX,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        assert remember_s >= 0 and remembered_max >= 1
        self.remember_s = remember_s
        self.remembered_max = remembered_max
        self.monotonic_s = monotonic_s
        self._verified: dict[bytes, _Verified] = {}

    def principal(self, key_sha256: bytes, now: dt.datetime) -> Principal | None:
        """The principal of a key verified less than `remember_s` ago and not expired since, else None."""
        verified = self._verified.get(key_sha256)
        if verified is None:
            return None
        if self.monotonic_s() >= verified.forget_at_s or (
            verified.expires_at is not None and verified.expires_at <= now
        ):
            del self._verified[key_sha256]
            return None
        return verified.principal

    def remember(self, key_sha256: bytes, principal: Principal, expires_at: dt.datetime | None) -> None:
        if self.remember_s == 0:
            return
        self._verified.pop(key_sha256, None)  # re-inserted last: the dict's order is the age order
        while len(self._verified) >= self.remembered_max:
            del self._verified[next(iter(self._verified))]
        self._verified[key_sha256] = _Verified(principal, expires_at, self.monotonic_s() + self.remember_s)


def _unauthenticated(code: str, title: str, token_presented: bool = True) -> Problem:
    challenge = f'Bearer realm="{REALM}"' + (', error="invalid_token"' if token_presented else "")
    return Problem(401, code, title, headers={"WWW-Authenticate": challenge})


async def authenticate(request: Request) -> Principal:
    """Every route's credential check. It reads the Authorization header itself: the two security schemes
    are written into the OpenAPI document by `install_security_schemes`, not declared as FastAPI
    dependencies, which FastAPI would resolve (and walk again under each dependency that shares this
    one) on every request for values nothing reads."""
    header = request.headers.get("authorization")
    if not header:
        raise _unauthenticated("credential_missing", "A credential is required", token_presented=False)
    scheme, _, value = header.partition(" ")
    presented = value.strip()
    if scheme.lower() != "bearer" or not presented:
        raise _unauthenticated("credential_invalid", "Send the credential as 'Authorization: Bearer …'")
    now = dt.datetime.now(dt.UTC)
    if presented.startswith(API_KEY_PREFIX):
        principal = await _from_api_key_remembered(request.app.state, presented, now)
    else:
        principal = await _from_access_token_remembered(request.app.state, presented, now)
    _charge_rate_limit(request.app.state.rate_limits, principal)
    request.state.principal = principal  # the request log names the credential
    return principal


async def _from_api_key_remembered(state: State, presented: str, now: dt.datetime) -> Principal:
    verified_keys: VerifiedKeys = state.verified_keys
    key_sha256 = hashlib.sha256(presented.encode("utf-8")).digest()
    remembered = verified_keys.principal(key_sha256, now)
    if remembered is not None:
        return remembered
    # A database lookup: in a worker thread.
    principal, expires_at = await run_in_threadpool(_from_api_key, state.unit_of_work, presented, now)
    verified_keys.remember(key_sha256, principal, expires_at)
    return principal


async def _from_access_token_remembered(state: State, token: str, now: dt.datetime) -> Principal:
    """The token's signature and lifetime, then its client: a revoked or expired client's tokens stop
    working (within `api_key_remember_s`), not only its requests for new ones."""
    principal = _from_access_token(state.token_authority, token)
    verified_keys: VerifiedKeys = state.verified_keys
    # Keyed by the credential's 16-byte id: it cannot collide with an API key's 32-byte SHA-256.
    remembered_as = principal.credential_id.bytes
    if verified_keys.principal(remembered_as, now) is None:
        expires_at = await run_in_threadpool(_usable_client, state.unit_of_work, principal, now)
        verified_keys.remember(remembered_as, principal, expires_at)
    return principal


def _usable_client(unit_of_work: UnitOfWork, principal: Principal, now: dt.datetime) -> dt.datetime | None:
    """When the token's client expires, if it may still be used; else a 401 problem."""
    credential = unit_of_work.read(lambda c: credential_by_id(c, principal.credential_id))
    if credential is None:
        raise _unauthenticated("token_invalid", "The access token is not valid")
    _refuse_unusable(credential, now)
    return credential.expires_at


def _from_api_key(
    unit_of_work: UnitOfWork, presented: str, now: dt.datetime
) -> tuple[Principal, dt.datetime | None]:
    """The principal of a usable key and when its credential expires; else a 401 problem."""
    parsed = parse_api_key(presented)
    if parsed is None:
        raise _unauthenticated("credential_invalid", "The API key is not valid")
    public_id, key = parsed
    found = unit_of_work.read(lambda c: find_credential(c, CredentialKind.api_key, public_id))
    credential, stored = found if found is not None else (None, _ABSENT_SHA256)
    if not secret_matches(key, stored) or credential is None:
        raise _unauthenticated("credential_invalid", "The API key is not valid")
    _refuse_unusable(credential, now)
    principal = Principal(credential.id, credential.role, credential.name, credential.provider_id)
    return principal, credential.expires_at


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


def _role_forbidden(roles: str) -> Problem:
    return Problem(403, *ROLE_FORBIDDEN, f"needs: {roles}")


def _provider_not_found() -> Problem:
    """The same answer whether the provider does not exist or is another's."""
    return Problem(404, "provider_not_found", "No such provider")


def require_role(*roles: Role) -> params.Depends:
    """A dependency that admits only these roles (403 otherwise) and gives the `Principal`."""
    admitted = frozenset(roles)
    names = ", ".join(sorted(admitted))

    async def check_role(principal: CurrentPrincipal) -> Principal:
        if principal.role not in admitted:
            raise _role_forbidden(names)
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


def require_own_provider() -> params.Depends:
    """For a router under ``/v1/providers/{provider_id}`` that only that provider may call: 403 for any
    other role, 404 for another provider's id. One dependency where `require_role(Role.provider)` and
    `OwnProviderId` are two (FastAPI resolves every dependency on every request; the redemption routes are
    the busiest)."""

    async def check_own_provider(provider_id: uuid.UUID, principal: CurrentPrincipal) -> Principal:
        if principal.role is not Role.provider:
            raise _role_forbidden(Role.provider)
        if principal.provider_id != provider_id:
            raise _provider_not_found()
        return principal

    dependency: params.Depends = Depends(check_own_provider)
    return dependency


async def own_provider_id(provider_id: uuid.UUID, principal: CurrentPrincipal) -> uuid.UUID:
    """A ``{provider_id}`` path parameter the caller may see: its own, for a provider (else 404)."""
    if principal.role is Role.provider and principal.provider_id != provider_id:
        raise _provider_not_found()
    return provider_id


OwnProviderId = Annotated[uuid.UUID, Depends(own_provider_id)]


def install_security_schemes(app: FastAPI) -> None:
    """Document the two security schemes, and require one of them on every operation that authenticates
    (whose dependencies include `authenticate`)."""
    schemes = {scheme.scheme_name: scheme for scheme in (api_key_scheme, oauth2_scheme)}
    requirement: list[dict[str, list[str]]] = [{name: []} for name in schemes]

    def add_security(document: dict[str, Any]) -> None:
        document.setdefault("components", {})["securitySchemes"] = {
            name: scheme.model.model_dump(mode="json", by_alias=True, exclude_none=True)
            for name, scheme in schemes.items()
        }
        # The routes as FastAPI's own document generator walks them (included routers' dependencies too).
        for route in iter_route_contexts(app.routes):
            if not isinstance(route.original_route, APIRoute) or not _authenticates(route.dependant):
                continue
            operations = document["paths"].get(route.path_format, {})
            for method in route.methods or ():
                if method.lower() in operations:
                    operations[method.lower()]["security"] = requirement

    edit_openapi(app, add_security)


def _authenticates(dependant: Dependant) -> bool:
    return dependant.call is authenticate or any(_authenticates(d) for d in dependant.dependencies)
