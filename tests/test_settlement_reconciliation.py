"""Reconciliation: redemptions = acts = invoices = payouts (+ pending), and every difference named."""

import csv
import io
import json

import psycopg
import pytest

from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.corrections import RedemptionReversal, reverse_redemptions
from tests.settlement_world import OFFICER, build_settlement_world, day
from treasury.settlement import (
    differences_csv,
    disallow_redemptions,
    providers_csv,
    reconcile_period,
    reconciliation_json,
    record_payment_return,
)


@pytest.fixture
def world(ledger, voucher_ledger, pool, database_url):
    return build_settlement_world(ledger, voucher_ledger, pool, database_url)


def _kinds(report):
    return sorted((d.kind, d.reference, d.amount_tiyn) for d in report.differences)


def test_a_period_settled_end_to_end_reconciles_with_nothing_left_over(world, pool):
    served = day(world, 6)
    canteen, school = world.providers[0], world.add_provider()
    for amount in (60_000, 60_000, 45_000):
        world.redeem_on(served, amount, provider=canteen)
    reversed_meal = world.redeem_on(served, 60_000, provider=school)
    world.redeem_on(served, 70_000, provider=school)
    reversal = RedemptionReversal(new_id(), reversed_meal, "entered twice")
    UnitOfWork(pool).run(lambda c: reverse_redemptions(c, [reversal]))
    world.close_through(served)
    acts = {act.provider_id: act for act in world.issue(served)}

    pending = world.run(lambda c: reconcile_period(c, world.programme_id, served))
    assert _kinds(pending) == sorted(
        ("act_awaiting_signature", acts[p.id].number, acts[p.id].total_tiyn) for p in (canteen, school)
    )
    for provider in (canteen, school):
        world.sign(acts[provider.id].number, provider)
        world.approve(acts[provider.id].number)
        world.pay(acts[provider.id].number)

    report = world.run(lambda c: reconcile_period(c, world.programme_id, served))
    assert report.reconciled, report.differences
    rows = {row.provider_id: row for row in report.providers}
    assert (rows[canteen.id].redeemed_tiyn, rows[canteen.id].acted_tiyn, rows[canteen.id].paid_tiyn) == (
        165_000, 165_000, 165_000,
    )  # fmt: skip
    school_row = rows[school.id]
    assert (school_row.redeemed_tiyn, school_row.reversed_tiyn, school_row.net_tiyn) == (
        130_000,
        60_000,
        70_000,
    )
    assert school_row.acted_tiyn == school_row.invoiced_tiyn == school_row.paid_tiyn == 70_000
    assert school_row.receivable_tiyn == 0 and school_row.redemptions == 2


def test_every_difference_is_listed_with_what_it_refers_to(world):
    served = day(world, 6)
    provider = world.providers[0]
    world.redeem_on(served, 60_000)
    wrong = world.redeem_on(served, 60_000)
    world.close_through(served)
    [act] = world.issue(served)
    world.sign(act.number, provider)
    world.approve(act.number)
    [order] = world.pay(act.number).orders
    world.run(lambda c: record_payment_return(c, order.number, "wrong IBAN", OFFICER))
    [disallowance] = world.run(
        lambda c: disallow_redemptions(c, world.programme_id, [wrong], "absent", OFFICER)
    )

    report = world.run(lambda c: reconcile_period(c, world.programme_id, served))
    assert _kinds(report) == [
        ("payment_returned", order.number, 120_000),
        ("take_back_not_adjusted", str(disallowance.id), -60_000),
    ]
    [adjustment] = world.issue(served)
    report = world.run(lambda c: reconcile_period(c, world.programme_id, served))
    assert _kinds(report) == [
        ("adjustment_awaiting_approval", adjustment.number, -60_000),
        ("payment_returned", order.number, 120_000),
    ]
    world.approve(adjustment.number)
    report = world.run(lambda c: reconcile_period(c, world.programme_id, served))
    assert ("adjustment_not_set_off", adjustment.number, -60_000) in _kinds(report)
    [row] = report.providers
    assert (row.regular_acted_tiyn, row.adjustment_acted_tiyn, row.net_tiyn) == (120_000, -60_000, 60_000)
    assert row.returned_tiyn == 120_000 and row.paid_tiyn == 0


def test_a_redemption_on_no_act_is_a_difference(world):
    served = day(world, 6)
    world.redeem_on(served, 60_000)
    bare = world.add_provider(profile=False)
    stray = world.redeem_on(served, 30_000, provider=bare)
    world.close_through(served)
    world.issue(served)
    report = world.run(lambda c: reconcile_period(c, world.programme_id, served))
    assert ("redemption_not_on_act", str(stray), 30_000) in _kinds(report)


def test_a_receivable_that_drifted_from_its_journal_is_named(world, database_url):
    served = day(world, 6)
    world.redeem_on(served, 60_000)
    world.close_through(served)
    with psycopg.connect(database_url) as owner:  # tampered, then rolled back
        owner.execute(
            "UPDATE accounts SET credits_posted = credits_posted + 1 WHERE id = %s",
            (world.providers[0].terminal.receivable_id,),
        )
        report = reconcile_period(owner, world.programme_id, served)
        owner.rollback()
    assert ("receivable_mismatch", "ledger", 1) in _kinds(report)


def test_the_report_reads_back_as_json_and_csv(world):
    served = day(world, 6)
    world.redeem_on(served, 60_000)
    world.close_through(served)
    [act] = world.issue(served)
    report = world.run(lambda c: reconcile_period(c, world.programme_id, served))

    document = json.loads(reconciliation_json(report))
    assert document["period"] == {"start": served.isoformat(), "end": served.isoformat()}
    assert document["reconciled"] is False and document["totals"]["acted_tiyn"] == 60_000
    assert document["differences"] == [
        {"kind": "act_awaiting_signature", "provider_id": str(act.provider_id), "reference": act.number,
         "amount_tiyn": 60_000, "detail": ""}
    ]  # fmt: skip
    [provider_row] = list(csv.DictReader(io.StringIO(providers_csv(report))))
    assert provider_row["provider_id"] == str(act.provider_id) and provider_row["pending_tiyn"] == "60000"
    [difference] = list(csv.DictReader(io.StringIO(differences_csv(report))))
    assert difference["reference"] == act.number and difference["amount_tiyn"] == "60000"
