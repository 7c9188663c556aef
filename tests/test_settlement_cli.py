"""`amiyan settlement …` end to end: an officer closes a period, draws up the acts, the provider signs,
the officer approves and pays, and the reconciliation comes out as JSON and CSV."""

import csv
import json

import pytest
from typer.testing import CliRunner

from api.cli import app as cli
from tests.settlement_world import OFFICER, build_settlement_world, day


@pytest.fixture
def world(ledger, voucher_ledger, pool, database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("AMIYAN_DATABASE_URL", database_url)
    monkeypatch.setenv("AMIYAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AMIYAN_LOG_FORMAT", "json")
    monkeypatch.setenv("AMIYAN_LOG_LEVEL", "warning")
    return build_settlement_world(ledger, voucher_ledger, pool, database_url, days_back=2)


def _invoke(*arguments):
    result = CliRunner().invoke(cli, ["settlement", *arguments])
    return result


def test_an_officer_settles_a_period_from_the_command_line(world, tmp_path):
    served = day(world, 2)
    world.redeem_on(served, 60_000)
    world.redeem_on(served, 60_000)
    programme = ["--programme", world.code]

    closed = _invoke("close-period", *programme, "--officer", OFFICER, "--period", served.isoformat())
    assert closed.exit_code == 0, closed.output
    acts = _invoke(
        "acts", *programme, "--period", served.isoformat(), "--officer", OFFICER, "--out", str(tmp_path)
    )
    assert acts.exit_code == 0, acts.output
    [line] = acts.stdout.strip().splitlines()
    number, invoice_number, _, total = line.split("\t")
    assert total == "120000" and (tmp_path / f"{number}.pdf").read_bytes().startswith(b"%PDF")
    invoice = json.loads((tmp_path / f"{number}.invoice.json").read_text())
    assert invoice["act_number"] == number and invoice["number"] == invoice_number

    seed_file = tmp_path / "seed.hex"
    seed_file.write_text(world.providers[0].signing_secret[:32].hex())
    key = str(world.providers[0].signing_key_id)
    signed = _invoke("sign", "--act", number, "--key-id", key, "--seed-file", str(seed_file))
    assert signed.exit_code == 0, signed.output
    assert _invoke("approve", "--act", number, "--officer", OFFICER).exit_code == 0
    paid = _invoke("pay", "--act", number, "--officer", OFFICER)
    assert paid.exit_code == 0, paid.output
    order = paid.stdout.strip().split("\t")
    assert order[0] == f"ПП-{world.code}-1" and order[2] == "120000" and order[5].startswith("Оплата по акту")

    report_dir = tmp_path / "report"
    reconciled = _invoke(
        "reconcile", *programme, "--period", served.isoformat(), "--out", str(report_dir), "--strict"
    )
    assert reconciled.exit_code == 0, reconciled.output
    document = json.loads((report_dir / "reconciliation.json").read_text())
    assert document["reconciled"] is True and document["totals"]["paid_tiyn"] == 120_000
    with (report_dir / "differences.csv").open() as differences:
        assert list(csv.reader(differences)) == [
            ["kind", "provider_id", "reference", "amount_tiyn", "detail"]
        ]


def test_a_refusal_prints_its_code_and_exits_2(world):
    result = _invoke("approve", "--act", "АКТ-NOPE-1", "--officer", OFFICER)
    assert result.exit_code == 2 and "act_not_found" in result.output
    not_ended = _invoke(
        "close-period", "--programme", world.code, "--officer", OFFICER, "--period", "2099-01"
    )
    assert not_ended.exit_code == 2 and "period_out_of_order" in not_ended.output
    pending = _invoke("reconcile", "--programme", world.code, "--period", day(world, 2).isoformat())
    assert pending.exit_code == 2 and "period_not_closed" in pending.output
