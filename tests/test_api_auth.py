"""Credentials and roles: who may call, what each role may reach, and that a provider never learns
anything about another provider's data."""

import datetime as dt
import hashlib
import re
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.auth import Principal, VerifiedKeys
from api.cli import app as cli
from api.credentials import CredentialError, CredentialKind, Role, create_credential
from ledger.accounts import Account
from ledger.ids import new_id
from ledger.money import Asset
from ledger.unit_of_work import UnitOfWork
from tests.test_api_support import Terminal, api_settings, bearer, issue, provider_routes, running

# Short, so that a revocation shows within a test; the default is seconds.
API_KEY_REMEMBER_S = 0.3
PROVIDER_A, PROVIDER_B, NEVER_REGISTERED = new_id(), new_id(), new_id()
TERMINAL_OF_A, TERMINAL_OF_B = new_id(), new_id()
TERMINALS = {
    TERMINAL_OF_A: Terminal(id=TERMINAL_OF_A, provider_id=PROVIDER_A),
    TERMINAL_OF_B: Terminal(id=TERMINAL_OF_B, provider_id=PROVIDER_B),
}


@pytest.fixture(scope="module")
def unit_of_work(pool) -> UnitOfWork:
    return UnitOfWork(pool)


@pytest.fixture(scope="module")
def client(database_url, tmp_path_factory) -> Iterator[TestClient]:
    settings = api_settings(
        database_url, tmp_path_factory.mktemp("auth"), api_key_remember_s=API_KEY_REMEMBER_S
    )
    with running(settings, provider_routes(TERMINALS)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def account_id(ledger) -> uuid.UUID:
    account = Account(id=new_id(), asset=int(Asset.KZT), code=1)
    ledger.create_accounts([account])
    return account.id


def _account_url(account_id: uuid.UUID) -> str:
    return f"/v1/ledger/accounts/{account_id}"


def _well_formed_unknown_key() -> str:
    return "amk_0123456789abcdef_" + "A" * 43


def test_operators_and_auditors_read_ledger_accounts(client, unit_of_work, account_id):
    for role in (Role.operator, Role.auditor):
        key = issue(unit_of_work, role).secret
        answer = client.get(_account_url(account_id), headers=bearer(key))
        assert answer.status_code == 200 and answer.json()["id"] == str(account_id)


@pytest.mark.parametrize(
    ("presented", "code"),
    [
        (None, "credential_missing"),
        ("Basic dXNlcjpwYXNz", "credential_invalid"),
        ("Bearer ", "credential_invalid"),
        ("Bearer amk_not-a-key", "credential_invalid"),
        (f"Bearer {_well_formed_unknown_key()}", "credential_invalid"),
        ("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "token_invalid"),
    ],
)
def test_a_missing_or_invalid_credential_is_a_401_problem(client, account_id, presented, code):
    headers = {"Authorization": presented} if presented is not None else {}
    answer = client.get(_account_url(account_id), headers=headers)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == code
    assert answer.headers["www-authenticate"].startswith('Bearer realm="amiyan"')
    assert "credits_posted" not in answer.text


def test_the_right_public_id_with_a_wrong_secret_is_refused(client, unit_of_work, account_id):
    key = issue(unit_of_work, Role.operator).secret
    assert client.get(_account_url(account_id), headers=bearer(key)).status_code == 200  # remembered
    tampered = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    answer = client.get(_account_url(account_id), headers=bearer(tampered))
    assert answer.status_code == 401 and answer.json()["code"] == "credential_invalid"


def test_an_expired_credential_is_refused(client, unit_of_work, account_id):
    two_hours_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    key = issue(unit_of_work, Role.operator, created_at=two_hours_ago, valid_for=dt.timedelta(hours=1)).secret
    for _ in range(2):  # and it is not remembered as valid
        answer = client.get(_account_url(account_id), headers=bearer(key))
        assert answer.status_code == 401 and answer.json()["code"] == "credential_expired"


def test_a_revoked_credential_is_refused_once_its_key_is_no_longer_remembered(
    client, unit_of_work, account_id
):
    from api.credentials import revoke_credential

    issued = issue(unit_of_work, Role.auditor)
    assert client.get(_account_url(account_id), headers=bearer(issued.secret)).status_code == 200
    assert revoke_credential(unit_of_work, issued.credential.id, dt.datetime.now(dt.UTC))
    time.sleep(API_KEY_REMEMBER_S)
    answer = client.get(_account_url(account_id), headers=bearer(issued.secret))
    assert answer.status_code == 401 and answer.json()["code"] == "credential_revoked"
    assert not revoke_credential(unit_of_work, issued.credential.id, dt.datetime.now(dt.UTC))


@pytest.mark.parametrize("role", [Role.treasury_officer, Role.provider, Role.mobile_backend])
def test_other_roles_may_not_read_the_ledger(client, unit_of_work, account_id, role):
    provider_id = PROVIDER_A if role is Role.provider else None
    key = issue(unit_of_work, role, provider_id).secret
    answer = client.get(_account_url(account_id), headers=bearer(key))
    assert answer.status_code == 403
    assert answer.json()["code"] == "role_forbidden"
    assert "credits_posted" not in answer.text


def test_a_provider_sees_its_own_receivable_and_no_one_elses(client, unit_of_work):
    key_a = issue(unit_of_work, Role.provider, PROVIDER_A).secret
    own = client.get(f"/test/providers/{PROVIDER_A}/receivable", headers=bearer(key_a))
    assert own.status_code == 200
    others = client.get(f"/test/providers/{PROVIDER_B}/receivable", headers=bearer(key_a))
    nobody = client.get(f"/test/providers/{NEVER_REGISTERED}/receivable", headers=bearer(key_a))
    assert others.status_code == 404 and others.json()["code"] == "provider_not_found"
    assert others.json() == nobody.json()  # another provider's looks exactly like no provider at all
    operator = issue(unit_of_work, Role.operator).secret
    assert client.get(f"/test/providers/{PROVIDER_B}/receivable", headers=bearer(operator)).status_code == 200


def test_a_provider_cannot_tell_another_providers_terminal_from_a_missing_one(client, unit_of_work):
    key_a = issue(unit_of_work, Role.provider, PROVIDER_A).secret
    assert client.get(f"/test/terminals/{TERMINAL_OF_A}", headers=bearer(key_a)).status_code == 200
    others = client.get(f"/test/terminals/{TERMINAL_OF_B}", headers=bearer(key_a))
    missing = client.get(f"/test/terminals/{new_id()}", headers=bearer(key_a))
    assert others.status_code == missing.status_code == 404
    assert others.json() == missing.json() and others.json()["code"] == "terminal_not_found"


def test_a_provider_credential_names_exactly_one_provider(unit_of_work):
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(CredentialError, match="provider id"):
        create_credential(unit_of_work, CredentialKind.api_key, Role.provider, "pharmacy", now)
    with pytest.raises(CredentialError, match="not bound"):
        create_credential(unit_of_work, CredentialKind.api_key, Role.auditor, "audit", now, PROVIDER_A)


def test_the_database_keeps_bindings_fixed_and_credentials_forever(owner_connection, unit_of_work):
    issued = issue(unit_of_work, Role.provider, PROVIDER_A)
    refused = [
        ("UPDATE api_credentials SET role = 'operator', provider_id = NULL WHERE id = %s", "revoke_only"),
        (f"UPDATE api_credentials SET provider_id = '{PROVIDER_B}' WHERE id = %s", "revoke_only"),
        ("UPDATE api_credentials SET revoked_at = now() - interval '1 day' WHERE id = %s", None),
        ("UPDATE api_credentials SET revoked_at = NULL WHERE id = %s", "revoke_only"),
        ("DELETE FROM api_credentials WHERE id = %s", "permanent"),
    ]
    for statement, constraint in refused:
        if constraint is None:  # revoking, once, is the one change allowed
            owner_connection.execute(statement, (issued.credential.id,))
            continue
        with pytest.raises(psycopg.errors.RestrictViolation) as error:
            owner_connection.execute(statement, (issued.credential.id,))
        assert error.value.diag.constraint_name == f"api_credentials_{constraint}"
        owner_connection.rollback()
    with pytest.raises(psycopg.errors.CheckViolation) as unbound:
        owner_connection.execute(
            "INSERT INTO api_credentials (id, kind, role, name, public_id, secret_sha256, created_at)"
            " VALUES (%s, 'api_key', 'provider', 'x', '00000000000000ff', sha256('x'), now())",
            (new_id(),),
        )
    assert unbound.value.diag.constraint_name == "ck_api_credentials_provider_binding"


def test_only_a_hash_of_the_secret_is_stored(owner_connection, unit_of_work):
    issued = issue(unit_of_work, Role.auditor)
    row = owner_connection.execute(
        "SELECT * FROM api_credentials WHERE id = %s", (issued.credential.id,)
    ).fetchone()
    assert row is not None
    stored = [bytes(v) if isinstance(v, bytes | memoryview) else str(v) for v in row]
    assert not any(issued.secret in str(value) for value in stored)
    assert hashlib.sha256(issued.secret.encode()).digest() in stored


def test_the_cli_creates_lists_and_revokes(client, database_url, tmp_path, monkeypatch, account_id):
    monkeypatch.setenv("AMIYAN_DATABASE_URL", database_url)
    monkeypatch.setenv("AMIYAN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AMIYAN_LOG_LEVEL", "warning")
    runner = CliRunner()
    created = runner.invoke(cli, ["credentials", "create", "--role", "auditor", "--name", "Ainur, audit"])
    assert created.exit_code == 0, created.output
    key = next(line for line in created.stdout.splitlines() if line.startswith("amk_"))
    assert client.get(_account_url(account_id), headers=bearer(key)).status_code == 200
    credential_id = re.search(r"credential ([0-9a-f-]{36})", created.output).group(1)  # type: ignore[union-attr]
    listed = runner.invoke(cli, ["credentials", "list"])
    assert listed.exit_code == 0 and credential_id in listed.output and key not in listed.output
    assert runner.invoke(cli, ["credentials", "revoke", credential_id]).exit_code == 0
    time.sleep(API_KEY_REMEMBER_S)
    assert client.get(_account_url(account_id), headers=bearer(key)).status_code == 401
    unbound = runner.invoke(cli, ["credentials", "create", "--role", "provider", "--name", "Pharmacy 12"])
    assert unbound.exit_code == 2 and "provider id" in unbound.output


class _Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def _principal() -> Principal:
    return Principal(new_id(), Role.provider, "till 1", PROVIDER_A)


def test_a_verified_key_is_remembered_for_its_time_and_no_longer():
    clock, now = _Clock(), dt.datetime.now(dt.UTC)
    keys = VerifiedKeys(remember_s=2.0, monotonic_s=clock)
    principal, key, other_key = _principal(), hashlib.sha256(b"key").digest(), hashlib.sha256(b"x").digest()
    keys.remember(key, principal, expires_at=None)
    clock.now_s += 1.9
    assert keys.principal(key, now) is principal
    assert keys.principal(other_key, now) is None
    clock.now_s += 0.1
    assert keys.principal(key, now) is None


def test_a_remembered_key_whose_credential_expired_since_is_asked_for_again():
    now = dt.datetime.now(dt.UTC)
    keys = VerifiedKeys(remember_s=60.0, monotonic_s=_Clock())
    key = hashlib.sha256(b"key").digest()
    keys.remember(key, _principal(), expires_at=now + dt.timedelta(seconds=1))
    assert keys.principal(key, now) is not None
    assert keys.principal(key, now + dt.timedelta(seconds=1)) is None


def test_remembered_keys_are_bounded_the_oldest_forgotten_first():
    now = dt.datetime.now(dt.UTC)
    keys = VerifiedKeys(remember_s=60.0, remembered_max=2, monotonic_s=_Clock())
    first, second, third = (hashlib.sha256(bytes([n])).digest() for n in range(3))
    for key in (first, second, third):
        keys.remember(key, _principal(), expires_at=None)
    assert keys.principal(first, now) is None
    assert keys.principal(second, now) is not None and keys.principal(third, now) is not None


def test_remembering_for_zero_seconds_remembers_nothing():
    keys = VerifiedKeys(remember_s=0.0)
    key = hashlib.sha256(b"key").digest()
    keys.remember(key, _principal(), expires_at=None)
    assert keys.principal(key, dt.datetime.now(dt.UTC)) is None
