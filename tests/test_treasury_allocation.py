"""Regional sub-funds: a national programme allocates to an akimat's sub-fund and takes it back; nothing
moves that the paying fund does not hold, and a regional programme has no sub-funds."""

import pytest

from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork
from tests.treasury_operations_world import MAKER, balances, fund, open_programme, run_with_events
from treasury.allocation import AllocationDirection, list_sub_funds, move_between_funds, open_sub_fund
from treasury.errors import Refused
from treasury.programmes import ProgrammeState, set_programme_state

ALLOCATE, TAKE_BACK = AllocationDirection.ALLOCATE, AllocationDirection.TAKE_BACK


def _refusal(unit_of_work, work) -> str:
    with pytest.raises(Refused) as refused:
        unit_of_work.run(work)
    return refused.value.code


def test_a_national_programme_allocates_to_a_region_and_takes_it_back(pool):
    unit_of_work = UnitOfWork(pool)
    programme = open_programme(unit_of_work, region="national")
    fund(unit_of_work, programme, 1_000_000)
    almaty, shymkent = new_id(), new_id()
    unit_of_work.run(lambda c: open_sub_fund(c, programme.id, almaty, "Алматы", MAKER))
    unit_of_work.run(lambda c: open_sub_fund(c, programme.id, shymkent, "Шымкент", MAKER))
    assert [f.region for f in unit_of_work.read(lambda c: list_sub_funds(c, programme.id))] == [
        "Алматы",
        "Шымкент",
    ]
    allocation_id = new_id()
    allocation, events = run_with_events(
        unit_of_work, lambda c: move_between_funds(c, allocation_id, almaty, ALLOCATE, 400_000, MAKER)
    )
    assert [e.kind for e in events] == ["fund_allocation"]
    assert events[0].fields["direction"] == "allocate" and events[0].fields["officer"] == MAKER
    unit_of_work.run(lambda c: move_between_funds(c, new_id(), almaty, TAKE_BACK, 150_000, MAKER))
    fund_account = programme.draft.fund_account_id
    assert balances(unit_of_work, fund_account, almaty, shymkent) == [750_000, 250_000, 0]
    # The same allocation again is a retry: nothing moves twice; another one under its id is refused.
    again = unit_of_work.run(lambda c: move_between_funds(c, allocation_id, almaty, ALLOCATE, 400_000, MAKER))
    assert again == allocation
    assert balances(unit_of_work, fund_account, almaty) == [750_000, 250_000]
    assert (
        _refusal(
            unit_of_work, lambda c: move_between_funds(c, allocation_id, shymkent, ALLOCATE, 400_000, MAKER)
        )
        == "allocation_exists"
    )


def test_nothing_moves_past_what_the_paying_fund_holds(pool):
    unit_of_work = UnitOfWork(pool)
    programme = open_programme(unit_of_work, region="national")
    fund(unit_of_work, programme, 100_000)
    region = new_id()
    unit_of_work.run(lambda c: open_sub_fund(c, programme.id, region, "Қарағанды облысы", MAKER))
    too_much = lambda c: move_between_funds(c, new_id(), region, ALLOCATE, 100_001, MAKER)  # noqa: E731
    assert _refusal(unit_of_work, too_much) == "insufficient_funds"
    unit_of_work.run(lambda c: move_between_funds(c, new_id(), region, ALLOCATE, 60_000, MAKER))
    back = lambda c: move_between_funds(c, new_id(), region, TAKE_BACK, 60_001, MAKER)  # noqa: E731
    assert _refusal(unit_of_work, back) == "insufficient_funds"
    assert balances(unit_of_work, programme.draft.fund_account_id, region) == [40_000, 60_000]


def test_only_a_national_open_programme_has_sub_funds_and_one_per_region(pool):
    unit_of_work = UnitOfWork(pool)
    regional = open_programme(unit_of_work, region="Астана")
    assert (
        _refusal(unit_of_work, lambda c: open_sub_fund(c, regional.id, new_id(), "Алматы", MAKER))
        == "programme_not_national"
    )
    national = open_programme(unit_of_work, region="national")
    first = new_id()
    unit_of_work.run(lambda c: open_sub_fund(c, national.id, first, "Алматы", MAKER))
    assert (
        unit_of_work.run(lambda c: open_sub_fund(c, national.id, first, "Алматы", MAKER)).account_id == first
    )
    assert (
        _refusal(unit_of_work, lambda c: open_sub_fund(c, national.id, new_id(), "Алматы", MAKER))
        == "region_has_sub_fund"
    )
    unit_of_work.run(lambda c: set_programme_state(c, national.id, ProgrammeState.CLOSED))
    assert (
        _refusal(unit_of_work, lambda c: move_between_funds(c, new_id(), first, ALLOCATE, 1, MAKER))
        == "programme_closed"
    )
