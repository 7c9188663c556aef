"""The CLI and the HTTP service, end to end on the test database: what a newcomer and an auditor run."""

import uuid

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.cli import app as cli
from api.database import scratch_database
from api.demo import demo_id
from api.settings import Settings


@pytest.fixture
def own_database(database_url):
    """A database of its own: its audit log is signed only by this test's key from the start."""
    with scratch_database(database_url, "amiyan_cli") as url:
        yield url


@pytest.fixture
def environment(own_database, tmp_path, monkeypatch):
    monkeypatch.setenv("AMIYAN_DATABASE_URL", own_database)
    monkeypatch.setenv("AMIYAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AMIYAN_LOG_FORMAT", "json")
    monkeypatch.setenv("AMIYAN_LOG_LEVEL", "warning")
    return tmp_path


def test_demo_then_audit_export_and_offline_verify(environment):
    runner = CliRunner()
    assert runner.invoke(cli, ["demo"]).exit_code == 0
    again = runner.invoke(cli, ["demo"])  # idempotent: the second load creates nothing
    assert again.exit_code == 0 and "transfers created: 0" in again.output
    assert runner.invoke(cli, ["audit", "integrate"]).exit_code == 0
    key = runner.invoke(cli, ["audit", "key"]).output.strip()
    export = environment / "export"
    assert runner.invoke(cli, ["audit", "export", str(export)]).exit_code == 0
    verified = runner.invoke(cli, ["audit", "verify", str(export), "--key", key])
    assert verified.exit_code == 0, verified.output
    assert verified.output.startswith("OK")

    data = bytearray((export / "entries.bin").read_bytes())
    data[10] ^= 0x01  # inside the first entry (bytes 0-3 are its length)
    (export / "entries.bin").write_bytes(bytes(data))
    damaged = runner.invoke(cli, ["audit", "verify", str(export), "--key", key])
    assert damaged.exit_code == 1 and damaged.output.startswith("FAIL")


def test_ledger_check_reports_a_sound_ledger(environment):
    result = CliRunner().invoke(cli, ["ledger", "check"])
    assert result.exit_code == 0, result.output


def test_the_http_service_reads_accounts_and_answers_problems(environment, own_database):
    CliRunner().invoke(cli, ["demo"])
    created = CliRunner().invoke(cli, ["credentials", "create", "--role", "operator", "--name", "newcomer"])
    api_key = created.stdout.strip().splitlines()[-1]
    with TestClient(
        create_app(Settings(), own_database), headers={"Authorization": f"Bearer {api_key}"}
    ) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 200
        canteen = client.get(f"/v1/ledger/accounts/{demo_id('canteen:school-7')}")
        assert canteen.status_code == 200 and canteen.json()["credits_posted"] > 0
        page = client.get(f"/v1/ledger/accounts/{demo_id('canteen:school-7')}/transfers", params={"limit": 7})
        assert len(page.json()["transfers"]) == 7 and page.json()["next_cursor"] is not None
        missing = client.get(f"/v1/ledger/accounts/{uuid.UUID(int=5)}")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["code"] == "account_not_found"
        invalid = client.get("/v1/ledger/accounts/not-an-id")
        assert invalid.status_code == 422 and invalid.json()["code"] == "invalid_request"
