"""The expiry sweep and the programme close: what no citizen can spend any more goes back to the fund, and
at close everything left goes back to the budget — each tiyn once, however often the sweep runs."""

import time

import pytest

from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.issuance import VoucherOrder
from ledger.vouchers.lifecycle import VoucherTransition, transition_vouchers
from ledger.vouchers.results import IssueResult, TransitionResult
from ledger.vouchers.states import TransitionAction, VoucherState
from tests.treasury_operations_world import MAKER, balances, fresh_iins, fund, open_programme
from tests.voucher_world import World, holder_hash
from treasury.allocation import AllocationDirection, move_between_funds, open_sub_fund
from treasury.closing import close_programme
from treasury.errors import Refused
from treasury.expiry import expiry_transition_id, sweep
from treasury.positions import programme_positions

SECOND_NS = 1_000_000_000


def _world(ledger, voucher_ledger, programme) -> World:
    world = World(ledger, voucher_ledger, programme.id, programme.draft.fund_account_id, terminal=None)
    world.terminal = world.add_provider()
    return world


def _state(voucher_ledger, voucher_id) -> VoucherState:
    return voucher_ledger.vouchers([voucher_id])[0].state


def _return_transfers(unit_of_work, account_id) -> int:
    [count] = unit_of_work.read(
        lambda c: c.execute(
            "SELECT count(*) FROM transfers WHERE credit_account_id = %s AND code = 5", (account_id,)
        ).fetchone()
    )
    return count


def test_expired_vouchers_give_back_what_is_left_once_however_often_the_sweep_runs(
    pool, ledger, voucher_ledger
):
    unit_of_work = UnitOfWork(pool)
    programme = open_programme(unit_of_work)
    fund(unit_of_work, programme, 1_000_000)
    world = _world(ledger, voucher_ledger, programme)
    soon = voucher_ledger.now() + 2 * SECOND_NS
    untouched, half_spent, lasting = new_id(), new_id(), new_id()
    orders = [
        VoucherOrder(untouched, programme.id, holder_hash(fresh_iins(1)[0]), 300_000, expires_at=soon),
        VoucherOrder(half_spent, programme.id, holder_hash(fresh_iins(1)[0]), 200_000, expires_at=soon),
        VoucherOrder(lasting, programme.id, holder_hash(fresh_iins(1)[0]), 100_000),
    ]
    assert voucher_ledger.issue(orders)[0] == [IssueResult.ok] * 3
    assert world.redeem(world.request(half_spent, amount=120_000))[0].result.name == "ok"
    fund_account = programme.draft.fund_account_id
    assert balances(unit_of_work, fund_account) == [400_000]
    time.sleep(max(0.0, (soon - voucher_ledger.now()) / SECOND_NS) + 0.1)

    summary = sweep(unit_of_work, batch_size=2)
    assert summary.expired >= 2
    states = [_state(voucher_ledger, v) for v in (untouched, half_spent, lasting)]
    assert states == [VoucherState.EXPIRED, VoucherState.EXPIRED, VoucherState.ACTIVE]
    assert balances(unit_of_work, fund_account, untouched, half_spent) == [400_000 + 300_000 + 80_000, 0, 0]
    returns = _return_transfers(unit_of_work, fund_account)

    sweep(unit_of_work)
    assert balances(unit_of_work, fund_account) == [780_000]
    assert _return_transfers(unit_of_work, fund_account) == returns == 2
    replay = [
        VoucherTransition(expiry_transition_id(v), v, TransitionAction.EXPIRE, "expired")
        for v in (untouched,)
    ]
    assert unit_of_work.run(lambda c: transition_vouchers(c, replay)) == [TransitionResult.exists]


def test_closing_returns_the_fund_and_sub_funds_to_the_budget_once(pool, voucher_ledger):
    unit_of_work = UnitOfWork(pool)
    programme = open_programme(unit_of_work, region="national")
    fund(unit_of_work, programme, 1_000_000)
    region = new_id()
    unit_of_work.run(lambda c: open_sub_fund(c, programme.id, region, "Алматы", MAKER))
    unit_of_work.run(
        lambda c: move_between_funds(c, new_id(), region, AllocationDirection.ALLOCATE, 300_000, MAKER)
    )
    outstanding = new_id()
    order = VoucherOrder(
        outstanding, programme.id, holder_hash(fresh_iins(1)[0]), 50_000, fund_account_id=region
    )
    assert voucher_ledger.issue([order])[0] == [IssueResult.ok]
    draft = programme.draft

    returns = unit_of_work.run(lambda c: close_programme(c, programme.id, MAKER))
    assert sorted(r.amount_tiyn for r in returns) == [250_000, 700_000]
    assert balances(unit_of_work, draft.fund_account_id, region, draft.budget_account_id) == [0, 0, -50_000]
    assert unit_of_work.run(lambda c: close_programme(c, programme.id, MAKER)) == []
    with pytest.raises(Refused) as refused:
        unit_of_work.run(
            lambda c: move_between_funds(c, new_id(), region, AllocationDirection.TAKE_BACK, 1, MAKER)
        )
    assert refused.value.code == "programme_closed"

    # Value that comes back after the close (a revoked voucher) goes to the budget with the next sweep.
    revoke = [VoucherTransition(new_id(), outstanding, TransitionAction.REVOKE, "holder moved abroad")]
    assert unit_of_work.run(lambda c: transition_vouchers(c, revoke)) == [TransitionResult.ok]
    assert balances(unit_of_work, region) == [50_000]
    assert sweep(unit_of_work).returned_to_budget_tiyn >= 50_000
    assert balances(unit_of_work, region, draft.budget_account_id) == [0, 0]
    positions = unit_of_work.read(lambda c: programme_positions(c, programme.id))
    assert positions.reconciled
    assert (positions.figures["funded"], positions.figures["returned"], positions.figures["expired"]) == (
        1_000_000,
        1_000_000,
        50_000,
    )


def test_an_offer_pending_at_the_close_is_returned_once_the_citizen_declines(pool, voucher_ledger):
    unit_of_work = UnitOfWork(pool)
    programme = open_programme(unit_of_work, policy={"consent_required": True})
    fund(unit_of_work, programme, 500_000)
    offer = new_id()
    assert voucher_ledger.issue([VoucherOrder(offer, programme.id, holder_hash(fresh_iins(1)[0]), 200_000)])[
        0
    ] == [IssueResult.ok]
    returns = unit_of_work.run(lambda c: close_programme(c, programme.id, MAKER))
    assert [r.amount_tiyn for r in returns] == [300_000]  # the offer's reservation stays until answered
    decline = [VoucherTransition(new_id(), offer, TransitionAction.DECLINE, "declined in eGov Mobile")]
    assert unit_of_work.run(lambda c: transition_vouchers(c, decline)) == [TransitionResult.ok]
    returns = unit_of_work.run(lambda c: close_programme(c, programme.id, MAKER))
    assert [r.amount_tiyn for r in returns] == [200_000]
    assert balances(unit_of_work, programme.draft.budget_account_id, programme.draft.fund_account_id) == [
        0,
        0,
    ]
    assert unit_of_work.read(lambda c: programme_positions(c, programme.id)).reconciled
