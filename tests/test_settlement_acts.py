"""Acts and invoices drawn up from the redemptions of a closed period: worked examples an officer would
recognise, documents that never change, reversals, rejections and adjustment acts."""

import datetime as dt
import hashlib
import io

import psycopg
import pytest
from pypdf import PdfReader

from ledger.audit.inbox import split_events
from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.corrections import RedemptionReversal, reverse_redemptions
from ledger.vouchers.results import ReversalResult
from tests.settlement_world import KAZAKH_SERVICE, OFFICER, build_settlement_world, day
from tests.treasury_world import MINISTRY
from treasury.documents import parse_act_json, parse_invoice_json
from treasury.errors import Refused
from treasury.settlement import (
    ActKind,
    ActState,
    acts_of_period,
    disallow_redemptions,
    document_bytes,
    issue_period_acts,
    reject_act,
)


@pytest.fixture
def world(ledger, voucher_ledger, pool, database_url):
    return build_settlement_world(ledger, voucher_ledger, pool, database_url)


def _audit_events(database_url, needle: bytes) -> list[bytes]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute("SELECT events FROM audit_inbox").fetchall()
    return [event for row in rows for event in split_events(bytes(row[0])) if needle in event]


def test_a_days_meals_make_one_act_whose_lines_sum_the_redemptions(world, database_url):
    served = day(world, 6)
    meals = [world.redeem_on(served, 60_000) for _ in range(3)]
    snack = world.redeem_on(served, 25_000)
    world.redeem_on(day(world, 5), 60_000)  # the next day: not in this act
    world.close_through(served)

    [act] = world.issue(served)

    assert act.kind is ActKind.REGULAR and act.total_tiyn == 3 * 60_000 + 25_000
    assert act.number == f"АКТ-{world.code}-{served.isoformat()}-1"
    assert act.invoice_number == f"СФ-{world.code}-{served.isoformat()}-1"
    document = parse_act_json(world.run(lambda c: document_bytes(c, act.number, "act_json")))
    lines = {(line.service, line.unit, line.quantity, line.unit_price_tiyn): line for line in document.lines}
    assert set(lines) == {(KAZAKH_SERVICE, "порция", 1, 25_000), (KAZAKH_SERVICE, "порция", 3, 60_000)}
    assert set(lines[(KAZAKH_SERVICE, "порция", 3, 60_000)].redemption_ids) == set(meals)
    assert lines[(KAZAKH_SERVICE, "порция", 1, 25_000)].redemption_ids == (snack,)
    assert (document.period_start, document.period_end) == (served, served)
    assert document.customer.bin == MINISTRY.bin and document.customer.name == MINISTRY.name
    assert document.contractor.name == f"Provider {document.contractor.bin}"  # the ledger's provider row
    assert document.contract.number == "Д-17/2026" and document.contract.kbk == "251 027 015"
    invoice = parse_invoice_json(world.run(lambda c: document_bytes(c, act.number, "invoice_json")))
    assert invoice.total_without_vat_tiyn == invoice.total_with_vat_tiyn == act.total_tiyn
    assert invoice.act_number == act.number and invoice.lines[0].vat_rate.value == "exempt"


def test_an_issued_act_is_hashed_into_the_audit_log_and_never_changes(world, database_url):
    served = day(world, 6)
    world.redeem_on(served, 60_000)
    world.close_through(served)
    [act] = world.issue(served)

    body = world.run(lambda c: document_bytes(c, act.number, "act_json"))
    assert hashlib.sha256(body).digest() == act.sha256
    [event] = _audit_events(database_url, act.sha256.hex().encode())
    assert b'"kind":"settlement_act_issued"' in event and act.number.encode() in event
    with psycopg.connect(database_url) as owner, pytest.raises(psycopg.errors.RestrictViolation) as refused:
        owner.execute("UPDATE settlement_acts SET total_tiyn = 1 WHERE number = %s", (act.number,))
    assert refused.value.diag.constraint_name == "settlement_acts_append_only"
    with psycopg.connect(database_url) as owner, pytest.raises(psycopg.errors.CheckViolation) as refused:
        owner.execute(
            """INSERT INTO settlement_acts SELECT %s, programme_id, provider_id, number || '-copy', kind,
                   corrects_act_id, period_start, period_end, act_date, total_tiyn, body || ' '::bytea,
                   sha256, pdf, issued_by, "timestamp" FROM settlement_acts WHERE number = %s""",
            (new_id(), act.number),
        )
    assert refused.value.diag.constraint_name == "ck_settlement_acts_sha256"
    assert world.issue(served) == []  # drawn up already: nothing new


def test_the_pdf_carries_the_kazakh_service_name_and_the_parties(world):
    served = day(world, 6)
    world.redeem_on(served, 60_000)
    world.close_through(served)
    [act] = world.issue(served)
    pdf = world.run(lambda c: document_bytes(c, act.number, "act_pdf"))
    text = " ".join(" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf)).pages)
    assert KAZAKH_SERVICE in text
    assert "Бейбітшілік" in text  # the customer's address, in Kazakh
    assert act.number in text
    invoice_pdf = world.run(lambda c: document_bytes(c, act.number, "invoice_pdf"))
    assert KAZAKH_SERVICE in " ".join(PdfReader(io.BytesIO(invoice_pdf)).pages[0].extract_text().split())


def test_a_redemption_reversed_before_the_close_never_reaches_an_act(world, pool):
    served = day(world, 6)
    kept = world.redeem_on(served, 60_000)
    wrong = world.redeem_on(served, 60_000)
    reversal = RedemptionReversal(new_id(), wrong, "the pupil was absent")
    assert UnitOfWork(pool).run(lambda c: reverse_redemptions(c, [reversal])) == [ReversalResult.ok]
    world.close_through(served)
    [act] = world.issue(served)
    document = parse_act_json(world.run(lambda c: document_bytes(c, act.number, "act_json")))
    assert act.total_tiyn == 60_000 and document.lines[0].redemption_ids == (kept,)


def test_a_provider_without_a_profile_is_reported_and_the_others_are_settled(world):
    served = day(world, 6)
    bare = world.add_provider(profile=False)
    world.redeem_on(served, 60_000)
    world.redeem_on(served, 60_000, provider=bare)
    world.close_through(served)
    outcomes = {
        o.provider_id: o for o in issue_period_acts(world.unit_of_work, world.programme_id, served, OFFICER)
    }
    assert outcomes[bare.id].refusal_code == "provider_profile_missing" and outcomes[bare.id].acts == ()
    assert len(outcomes[world.providers[0].id].acts) == 1
    world.record_profile(bare.id, "KZ86125KZT5004100100")
    [late] = world.issue(served)
    assert late.provider_id == bare.id


def test_acts_are_only_drawn_up_for_closed_periods(world):
    served = day(world, 6)
    world.redeem_on(served, 60_000)
    with pytest.raises(Refused) as refused:
        world.issue(served)
    assert refused.value.code == "period_not_closed"


def test_a_rejected_act_is_drawn_up_again_under_a_new_number_after_the_wrong_meal_is_disallowed(world):
    served = day(world, 6)
    world.redeem_on(served, 60_000)
    wrong = world.redeem_on(served, 60_000)
    world.close_through(served)
    [first] = world.issue(served)
    world.run(lambda c: reject_act(c, first.number, OFFICER, "a meal recorded for an absent pupil"))
    world.run(lambda c: disallow_redemptions(c, world.programme_id, [wrong], "absent pupil", OFFICER))
    [second] = world.issue(served)
    assert second.number != first.number and second.total_tiyn == 60_000
    states = {a.number: a.state for a in world.run(lambda c: acts_of_period(c, world.programme_id, served))}
    assert states == {first.number: ActState.REJECTED, second.number: ActState.ISSUED}


def test_a_redemption_disallowed_after_its_act_was_approved_comes_back_on_an_adjustment_act(world):
    served = day(world, 6)
    world.redeem_on(served, 60_000)
    wrong = world.redeem_on(served, 60_000)
    world.close_through(served)
    [original] = world.issue(served)
    world.sign(original.number, world.providers[0])
    world.approve(original.number)
    world.run(lambda c: disallow_redemptions(c, world.programme_id, [wrong], "duplicate record", OFFICER))

    [adjustment] = world.issue(served)

    assert adjustment.kind is ActKind.ADJUSTMENT and adjustment.corrects == original.number
    assert adjustment.total_tiyn == -60_000
    document = parse_act_json(world.run(lambda c: document_bytes(c, adjustment.number, "act_json")))
    [line] = document.lines
    assert (line.quantity, line.unit_price_tiyn, line.redemption_ids) == (-1, 60_000, (wrong,))
    invoice = parse_invoice_json(world.run(lambda c: document_bytes(c, adjustment.number, "invoice_json")))
    assert invoice.corrects == original.invoice_number and invoice.total_without_vat_tiyn == -60_000
    assert world.issue(served) == []


def test_a_redemption_of_an_open_period_is_reversed_in_the_ledger_not_disallowed(world):
    served = day(world, 6)
    redemption = world.redeem_on(served, 60_000)
    with pytest.raises(Refused) as refused:
        world.run(lambda c: disallow_redemptions(c, world.programme_id, [redemption], "why", OFFICER))
    assert refused.value.code == "period_open"


def test_a_programme_taxed_at_sixteen_percent_invoices_vat_on_top(ledger, voucher_ledger, pool, database_url):
    world = build_settlement_world(ledger, voucher_ledger, pool, database_url, vat_rate="16")
    served = day(world, 6)
    world.redeem_on(served, 60_000)
    world.close_through(served)
    [outcome] = issue_period_acts(world.unit_of_work, world.programme_id, served, OFFICER)
    [act] = outcome.acts
    invoice = parse_invoice_json(world.run(lambda c: document_bytes(c, act.number, "invoice_json")))
    assert invoice.lines[0].vat_rate.value == "16%"
    assert (invoice.total_without_vat_tiyn, invoice.total_vat_tiyn) == (60_000, 9_600)


def test_an_act_is_dated_on_the_day_it_is_drawn_up(world):
    served = day(world, 6)
    world.redeem_on(served, 60_000)
    world.close_through(served)
    [act] = world.issue(served)
    document = parse_act_json(world.run(lambda c: document_bytes(c, act.number, "act_json")))
    assert document.date == world.today and document.date > served
    assert isinstance(document.date, dt.date)
