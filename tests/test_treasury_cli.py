"""`amiyan treasury …` end to end on a database of its own: fund with four eyes, issue a list with a bad
row (and again: nothing twice), read positions, sweep, close."""

import json

import pytest
from typer.testing import CliRunner

from api.cli import app as cli
from api.database import create_pool, scratch_database, upgrade_database
from ledger.unit_of_work import UnitOfWork
from tests.treasury_operations_world import fresh_iins, open_programme, write_csv


@pytest.fixture
def programme_code(database_url, tmp_path, monkeypatch):
    with scratch_database(database_url, "amiyan_treasury_cli") as url:
        monkeypatch.setenv("AMIYAN_DATABASE_URL", url)
        monkeypatch.setenv("AMIYAN_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("AMIYAN_LOG_FORMAT", "json")
        monkeypatch.setenv("AMIYAN_LOG_LEVEL", "warning")
        upgrade_database(url)
        pool = create_pool(url, "amiyan_app", 2)
        programme = open_programme(
            UnitOfWork(pool), budget_ceiling_tiyn=10_000_000, approval_threshold_tiyn=1_000_000
        )
        pool.close()
        yield programme.draft.code


def test_an_officers_day_at_the_command_line(programme_code, tmp_path):
    runner = CliRunner()
    small = runner.invoke(cli, ["treasury", "fund", programme_code, "900000", "--officer", "Aigerim"])
    assert small.exit_code == 0, small.output
    large = runner.invoke(cli, ["treasury", "fund", programme_code, "2000000", "--officer", "Aigerim"])
    assert large.exit_code == 0 and "awaiting_approval" in large.output
    order_id = large.stdout.strip().splitlines()[-1]
    own = runner.invoke(cli, ["treasury", "approve", order_id, "--officer", "aigerim"])
    assert own.exit_code == 1 and "four_eyes" in own.output
    assert runner.invoke(cli, ["treasury", "approve", order_id, "--officer", "Yerzhan"]).exit_code == 0

    rows = [{"iin": iin, "entitlement": 300_000} for iin in fresh_iins(3)] + [
        {"iin": "123", "entitlement": 1}
    ]
    listing = write_csv(tmp_path / "pupils.csv", rows)
    issued = runner.invoke(
        cli, ["treasury", "issue", str(listing), "--programme", programme_code, "--officer", "A"]
    )
    assert issued.exit_code == 0, issued.output
    assert "issued 3" in issued.output and "rejected 1" in issued.output
    report = (tmp_path / "pupils.csv.rejections.csv").read_text(encoding="utf-8").splitlines()
    assert report[1].startswith("5,iin_length,")
    again = runner.invoke(
        cli, ["treasury", "issue", str(listing), "--programme", programme_code, "--officer", "A"]
    )
    assert again.exit_code == 0 and "issued 3" in again.output  # the finished job, not a second issue

    positions = runner.invoke(cli, ["treasury", "positions", programme_code, "--format", "json"])
    assert positions.exit_code == 0, positions.output
    document = json.loads(positions.stdout)
    assert document["reconciled"] is True
    assert (document["figures"]["funded"], document["figures"]["issued"]) == (2_900_000, 900_000)
    table = runner.invoke(cli, ["treasury", "positions", programme_code])
    assert table.exit_code == 0 and "outstanding" in table.output

    assert runner.invoke(cli, ["treasury", "sweep"]).exit_code == 0
    closed = runner.invoke(cli, ["treasury", "close", programme_code, "--officer", "Yerzhan"])
    assert closed.exit_code == 0 and "returned 2,000,000 tiyn" in closed.output
    csv_lines = runner.invoke(
        cli, ["treasury", "positions", programme_code, "--format", "csv"]
    ).stdout.splitlines()
    assert f"{programme_code},,returned,2000000" in csv_lines
