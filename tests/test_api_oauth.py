"""OAuth2 client credentials: a client trades its id and secret for a short-lived token that carries its
role and provider binding."""

import base64
import datetime as dt
import time
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.credentials import CredentialKind, Role, revoke_credential
from api.tokens import load_token_authority
from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork
from tests.test_api_support import api_settings, app_of, bearer, issue, provider_routes, running

PROVIDER = new_id()
# Short, so that a revocation shows within a test; the default is seconds.
CLIENT_REMEMBER_S = 0.3


@pytest.fixture(scope="module")
def unit_of_work(pool) -> UnitOfWork:
    return UnitOfWork(pool)


@pytest.fixture(scope="module")
def client(database_url, tmp_path_factory) -> Iterator[TestClient]:
    settings = api_settings(
        database_url, tmp_path_factory.mktemp("oauth"), api_key_remember_s=CLIENT_REMEMBER_S
    )
    with running(settings, provider_routes({})) as test_client:
        yield test_client


def _client_of(unit_of_work: UnitOfWork, role: Role, provider_id: uuid.UUID | None = None) -> tuple[str, str]:
    issued = issue(unit_of_work, role, provider_id, kind=CredentialKind.oauth2_client)
    return issued.credential.client_id, issued.secret


def _token_request(client_id: str, secret: str, grant_type: str = "client_credentials") -> dict[str, str]:
    return {"grant_type": grant_type, "client_id": client_id, "client_secret": secret}


def test_a_client_gets_a_token_and_reads_with_it(client, unit_of_work):
    client_id, secret = _client_of(unit_of_work, Role.auditor)
    answer = client.post("/oauth/token", data=_token_request(client_id, secret))
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    token = answer.json()
    assert token["token_type"] == "Bearer" and token["expires_in"] == 300
    missing_account = client.get(f"/v1/ledger/accounts/{new_id()}", headers=bearer(token["access_token"]))
    assert missing_account.status_code == 404 and missing_account.json()["code"] == "account_not_found"


def test_http_basic_client_authentication_works_too(client, unit_of_work):
    client_id, secret = _client_of(unit_of_work, Role.auditor)
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    answer = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert answer.status_code == 200, answer.text


def test_a_providers_token_carries_its_provider(client, unit_of_work):
    client_id, secret = _client_of(unit_of_work, Role.provider, PROVIDER)
    token = client.post("/oauth/token", data=_token_request(client_id, secret)).json()["access_token"]
    own = client.get(f"/test/providers/{PROVIDER}/receivable", headers=bearer(token))
    other = client.get(f"/test/providers/{new_id()}/receivable", headers=bearer(token))
    assert own.status_code == 200 and other.status_code == 404
    forbidden = client.get(f"/v1/ledger/accounts/{new_id()}", headers=bearer(token))
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "role_forbidden"


@pytest.mark.parametrize(
    ("make_request", "status", "error"),
    [
        (lambda cid, s: _token_request(cid, s + "x"), 401, "invalid_client"),
        (lambda cid, s: _token_request("amc_00000000000000aa", s), 401, "invalid_client"),
        (lambda cid, s: _token_request("not-a-client", s), 401, "invalid_client"),
        (lambda cid, s: {"grant_type": "client_credentials", "client_id": cid}, 401, "invalid_client"),
        (lambda cid, s: _token_request(cid, s, grant_type="password"), 400, "unsupported_grant_type"),
        (lambda cid, s: {"client_id": cid, "client_secret": s}, 400, "unsupported_grant_type"),
    ],
)
def test_a_bad_token_request_is_refused(client, unit_of_work, make_request, status, error):
    client_id, secret = _client_of(unit_of_work, Role.auditor)
    answer = client.post("/oauth/token", data=make_request(client_id, secret))
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["error"] == error and answer.json()["code"] == error
    assert "access_token" not in answer.text


def test_an_api_key_is_not_a_client_secret(client, unit_of_work):
    api_key = issue(unit_of_work, Role.auditor).secret
    client_id, _ = _client_of(unit_of_work, Role.auditor)
    answer = client.post("/oauth/token", data=_token_request(client_id, api_key))
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"


def test_a_token_request_must_be_a_form(client, unit_of_work):
    client_id, secret = _client_of(unit_of_work, Role.auditor)
    answer = client.post("/oauth/token", json=_token_request(client_id, secret))
    assert answer.status_code == 415 and answer.json()["code"] == "unsupported_media_type"


def test_a_revoked_client_gets_no_new_token(client, unit_of_work):
    issued = issue(unit_of_work, Role.auditor, kind=CredentialKind.oauth2_client)
    request = _token_request(issued.credential.client_id, issued.secret)
    assert client.post("/oauth/token", data=request).status_code == 200
    revoke_credential(unit_of_work, issued.credential.id, dt.datetime.now(dt.UTC))
    answer = client.post("/oauth/token", data=request)
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"


def test_a_revoked_clients_tokens_stop_working_too(client, unit_of_work):
    issued = issue(unit_of_work, Role.auditor, kind=CredentialKind.oauth2_client)
    request = _token_request(issued.credential.client_id, issued.secret)
    token = client.post("/oauth/token", data=request).json()["access_token"]
    account = f"/v1/ledger/accounts/{new_id()}"
    assert client.get(account, headers=bearer(token)).status_code == 404  # authenticated; no such account
    revoke_credential(unit_of_work, issued.credential.id, dt.datetime.now(dt.UTC))
    time.sleep(CLIENT_REMEMBER_S)
    for _ in range(2):  # and it is not remembered as usable
        answer = client.get(account, headers=bearer(token))
        assert answer.status_code == 401 and answer.json()["code"] == "credential_revoked"


def test_an_expired_token_is_refused(client, unit_of_work):
    issued = issue(unit_of_work, Role.auditor, kind=CredentialKind.oauth2_client)
    authority = app_of(client).state.token_authority
    ten_minutes_ago = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)  # the lifetime is five
    stale = authority.issue(issued.credential, ten_minutes_ago)
    answer = client.get(f"/v1/ledger/accounts/{new_id()}", headers=bearer(stale))
    assert answer.status_code == 401 and answer.json()["code"] == "token_expired"
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]


def test_a_token_signed_by_another_key_is_refused(client, unit_of_work, database_url, tmp_path):
    issued = issue(unit_of_work, Role.operator, kind=CredentialKind.oauth2_client)
    forger = load_token_authority(api_settings(database_url, tmp_path))  # a key of its own
    forged = forger.issue(issued.credential, dt.datetime.now(dt.UTC))
    answer = client.get(f"/v1/ledger/accounts/{new_id()}", headers=bearer(forged))
    assert answer.status_code == 401 and answer.json()["code"] == "token_invalid"


def test_a_token_whose_claims_were_changed_is_refused(client, unit_of_work):
    client_id, secret = _client_of(unit_of_work, Role.provider, PROVIDER)
    token = client.post("/oauth/token", data=_token_request(client_id, secret)).json()["access_token"]
    header, payload, signature = token.split(".")
    claims = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    promoted = claims.replace(b'"role":"provider"', b'"role":"operator"')
    assert promoted != claims
    forged = ".".join([header, base64.urlsafe_b64encode(promoted).decode().rstrip("="), signature])
    answer = client.get(f"/v1/ledger/accounts/{new_id()}", headers=bearer(forged))
    assert answer.status_code == 401 and answer.json()["code"] == "token_invalid"
