"""Settlement periods: calendar arithmetic in Asia/Almaty, closing in order and only once ended, and a
closed period that no redemption can be dated in any more."""

import datetime as dt

import psycopg
import pytest

from ledger.ids import new_id
from ledger.vouchers.policy import parse_policy
from ledger.vouchers.results import RedemptionResult
from tests.settlement_world import OFFICER, build_settlement_world, day
from tests.treasury_world import programme_draft
from tests.voucher_world import policy_document
from treasury.errors import Refused
from treasury.programmes import create_programme, find_programme
from treasury.settlement import (
    SettlementCycle,
    SettlementPeriod,
    close_period,
    closed_periods,
    period_containing,
    set_settlement_terms,
)

M, W, D = SettlementCycle.MONTH, SettlementCycle.WEEK, SettlementCycle.DAY


@pytest.mark.parametrize(
    ("cycle", "day", "start", "end", "label"),
    [
        (M, dt.date(2026, 10, 17), dt.date(2026, 10, 1), dt.date(2026, 10, 31), "2026-10"),
        (M, dt.date(2026, 12, 31), dt.date(2026, 12, 1), dt.date(2026, 12, 31), "2026-12"),
        (M, dt.date(2028, 2, 10), dt.date(2028, 2, 1), dt.date(2028, 2, 29), "2028-02"),  # leap year
        (M, dt.date(2027, 2, 1), dt.date(2027, 2, 1), dt.date(2027, 2, 28), "2027-02"),
        (W, dt.date(2026, 10, 28), dt.date(2026, 10, 26), dt.date(2026, 11, 1), "2026-W44"),  # Wed → Mon..Sun
        (W, dt.date(2027, 1, 1), dt.date(2026, 12, 28), dt.date(2027, 1, 3), "2026-W53"),  # ISO year
        (D, dt.date(2026, 10, 27), dt.date(2026, 10, 27), dt.date(2026, 10, 27), "2026-10-27"),
    ],
)
def test_a_period_holds_its_calendar_days(cycle, day, start, end, label):
    period = period_containing(cycle, day)
    assert period == SettlementPeriod(start, end, cycle)
    assert period.label == label and period.contains(day)
    assert not period.contains(start - dt.timedelta(days=1)) and not period.contains(
        end + dt.timedelta(days=1)
    )


@pytest.fixture
def world(ledger, voucher_ledger, pool, database_url):
    return build_settlement_world(ledger, voucher_ledger, pool, database_url, days_back=3)


def test_periods_close_one_after_another_and_only_once_ended(world):
    first, second = day(world, 3), day(world, 2)
    with pytest.raises(Refused) as refused:
        world.run(lambda c: close_period(c, world.programme_id, OFFICER, second))
    assert refused.value.code == "period_out_of_order"
    closed = world.run(lambda c: close_period(c, world.programme_id, OFFICER, first))
    assert (closed.period.start, closed.period.end) == (first, first)
    again = world.run(lambda c: close_period(c, world.programme_id, OFFICER, first))
    assert again.timestamp == closed.timestamp  # closing a closed period answers it again
    world.close_through(day(world, 1))
    with pytest.raises(Refused) as refused:
        world.run(lambda c: close_period(c, world.programme_id, OFFICER))  # today has not ended
    assert refused.value.code == "period_not_ended"


def test_the_closed_periods_are_listed_in_order(world):
    world.close_through(day(world, 1))
    programme = world.run(lambda c: find_programme(c, world.programme_id))
    periods = world.run(lambda c: closed_periods(c, programme))
    assert [p.period.start for p in periods] == [day(world, 3), day(world, 2), day(world, 1)]


def test_a_redemption_dated_in_a_closed_period_is_refused_by_the_ledger(world):
    closed_day = day(world, 3)
    world.close_through(closed_day)
    voucher = world.voucher()
    outcome = world.try_redeem_on(closed_day, 60_000, voucher=voucher)
    assert outcome.result is RedemptionResult.period_closed
    [view] = world.vouchers_world.vouchers.vouchers([voucher])
    assert view.available_tiyn == 6_000_000  # nothing moved
    assert world.try_redeem_on(day(world, 2), 60_000, voucher=voucher).result is RedemptionResult.ok


def test_the_database_refuses_a_redemption_row_dated_in_a_closed_period(world, database_url):
    """Around Python: the trigger on `redemptions` holds even for a writer that skips the judge."""
    closed_day = day(world, 3)
    world.close_through(closed_day)
    with psycopg.connect(database_url) as owner, pytest.raises(psycopg.errors.CheckViolation) as refused:
        owner.execute(
            """INSERT INTO redemptions (id, voucher_id, programme_id, provider_id, terminal_id, phase,
                   amount_tiyn, units, requested_at, effective_date, offline, request_hash, "timestamp")
               VALUES (%s, %s, %s, %s, %s, 1, 100, 0, 0, %s, true, '\\x00', 0)""",
            (
                new_id(),
                new_id(),
                world.programme_id,
                world.providers[0].id,
                world.providers[0].terminal.id,
                closed_day,
            ),
        )
    assert refused.value.diag.constraint_name == "redemptions_period_open"


def test_the_database_refuses_a_period_that_skips_one(world, database_url):
    world.close_through(day(world, 3))
    with psycopg.connect(database_url) as owner, pytest.raises(psycopg.errors.CheckViolation) as refused:
        owner.execute(
            """INSERT INTO settlement_periods (programme_id, period_start, period_end, closed_by, "timestamp")
               VALUES (%s, %s, %s, 'x', 0)""",
            (world.programme_id, day(world, 1), day(world, 1)),
        )
    assert refused.value.diag.constraint_name == "settlement_periods_in_order"


def test_settlement_terms_are_fixed_once_a_period_closed(world):
    with pytest.raises(Refused) as refused:
        world.run(lambda c: set_settlement_terms(c, world.programme_id, SettlementCycle.MONTH, 0, OFFICER))
    assert refused.value.code == "terms_fixed"
    same = world.run(
        lambda c: set_settlement_terms(c, world.programme_id, SettlementCycle.DAY, 10**12, OFFICER)
    )
    assert same.cycle is SettlementCycle.DAY


def test_a_draft_programme_has_no_period_to_close(world):
    draft = programme_draft()
    world.run(lambda c: create_programme(c, draft, parse_policy(policy_document()), OFFICER))
    with pytest.raises(Refused) as refused:
        world.run(lambda c: close_period(c, draft.id, OFFICER))
    assert refused.value.code == "programme_draft"
