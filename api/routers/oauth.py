"""OAuth2 client credentials (RFC 6749 §4.4): an OAuth2 client trades its id and secret for a short-lived
access token. The client authenticates with HTTP Basic or with `client_id` and `client_secret` in the
form (one of the two). Errors are problems whose `error` member is RFC 6749's code, so OAuth2 libraries
read them as usual.
"""

import base64
import binascii
import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.credentials import CredentialKind, find_credential, parse_client_id, secret_matches
from api.dependencies import UnitOfWorkDep
from api.problems import Problem, problem_responses
from api.tokens import TokenAuthority

router = APIRouter(tags=["oauth2"])
_ABSENT_SHA256 = bytes(32)


class AccessToken(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int


def _oauth_error(status: int, error: str, description: str) -> Problem:
    headers = {"WWW-Authenticate": 'Basic realm="amiyan"'} if status == 401 else None
    titles = {
        "invalid_request": "The token request is malformed",
        "invalid_client": "Client authentication failed",
        "unsupported_grant_type": "Only the client_credentials grant is supported",
    }
    return Problem(status, error, titles[error], description, headers=headers, error=error)


def _client_from_basic(header: str | None) -> tuple[str, str] | None:
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, separator, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        separator = ""
    if not separator:
        raise _oauth_error(401, "invalid_client", "the Basic credentials are not base64 of id:secret")
    return client_id, secret


@router.post(
    "/oauth/token",
    response_model=AccessToken,
    responses=problem_responses(400, 401, 413, 415, 422),
    summary="Get an access token (client credentials)",
)
def issue_access_token(
    request: Request,
    unit_of_work: UnitOfWorkDep,
    grant_type: Annotated[str | None, Form(examples=["client_credentials"])] = None,
    client_id: Annotated[str | None, Form(examples=["amc_0123456789abcdef"])] = None,
    client_secret: Annotated[str | None, Form()] = None,
) -> JSONResponse:
    basic = _client_from_basic(request.headers.get("authorization"))
    if basic is not None and (client_id is not None or client_secret is not None):
        raise _oauth_error(400, "invalid_request", "authenticate with Basic or with the form, not both")
    presented_id, secret = basic or (client_id or "", client_secret or "")
    if grant_type != "client_credentials":
        raise _oauth_error(400, "unsupported_grant_type", "grant_type must be client_credentials")
    public_id = parse_client_id(presented_id)
    found = (
        unit_of_work.read(lambda c: find_credential(c, CredentialKind.oauth2_client, public_id))
        if public_id is not None
        else None
    )
    credential, stored = found if found is not None else (None, _ABSENT_SHA256)
    if not secret_matches(secret, stored) or credential is None:
        raise _oauth_error(401, "invalid_client", "unknown client or wrong secret")
    now = dt.datetime.now(dt.UTC)
    if credential.revoked_at is not None or credential.expired(now):
        raise _oauth_error(401, "invalid_client", "this client was revoked or has expired")
    authority: TokenAuthority = request.app.state.token_authority
    token = AccessToken(
        access_token=authority.issue(credential, now), expires_in=int(authority.lifetime.total_seconds())
    )
    return JSONResponse(token.model_dump(), headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
