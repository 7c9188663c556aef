"""The sweep's housekeeping: a lapsed pharmacy reservation gives back its usage, and value that reaches an
ended voucher goes back to the fund; running it again changes nothing."""

import time

from ledger.accounts import Account, AccountType
from ledger.ids import new_id
from ledger.money import Asset
from ledger.transfers import Transfer
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.requests import RedemptionItem
from ledger.vouchers.results import RedemptionResult as R
from ledger.vouchers.states import RedemptionPhase as P
from ledger.vouchers.states import TransitionAction as A
from ledger.vouchers.sweeps import release_lapsed_reservations, return_leftovers
from tests.voucher_world import build_world

DRUG = "ATC-N02BE01"


def _pharmacy(ledger, voucher_ledger, timeout_s):
    world = build_world(
        ledger, voucher_ledger, purpose="medicines", provider_categories=["pharmacy"], items_required=True,
        reservation_timeout_s=timeout_s, service={"name": "Лекарства", "unit": "уп."}, fund_tiyn=1_000_000,
    )  # fmt: skip
    return world, world.issue(100_000, items=((DRUG, 2),))


def _nudge_the_ledger_clock(ledger):
    """Any transfer batch lets the ledger release reservations whose timeout passed."""
    a, b = new_id(), new_id()
    ledger.create_accounts(
        [Account(a, Asset.KZT, AccountType.OPERATOR), Account(b, Asset.KZT, AccountType.OPERATOR)]
    )
    ledger.create_transfers([Transfer(new_id(), a, b, 1, Asset.KZT, 99)])


def test_a_lapsed_reservation_gives_back_its_value_and_its_prescription(ledger, voucher_ledger, pool):
    world, voucher = _pharmacy(ledger, voucher_ledger, timeout_s=1)
    reserve = world.request(voucher, amount=20_000, items=(RedemptionItem(DRUG, 2, 20_000),), phase=P.RESERVE)
    assert world.redeem(reserve)[0].result is R.ok
    time.sleep(1.2)
    _nudge_the_ledger_clock(ledger)
    unit_of_work = UnitOfWork(pool)
    assert unit_of_work.run(lambda c: release_lapsed_reservations(c)) >= 1
    assert unit_of_work.run(lambda c: release_lapsed_reservations(c)) == 0
    [view] = voucher_ledger.vouchers([voucher])
    assert (view.available_tiyn, view.reserved_tiyn, view.items) == (100_000, 0, ((DRUG, 2, 0),))
    late = world.request(None, amount=20_000, phase=P.POST, reserved_id=reserve.id)
    assert world.redeem(late)[0].result in (R.reservation_already_voided, R.reservation_expired)


def test_value_voided_back_onto_a_revoked_voucher_returns_to_the_fund(ledger, voucher_ledger, pool):
    world, voucher = _pharmacy(ledger, voucher_ledger, timeout_s=3600)
    reserve = world.request(voucher, amount=30_000, items=(RedemptionItem(DRUG, 1, 30_000),), phase=P.RESERVE)
    assert world.redeem(reserve)[0].result is R.ok
    assert world.step(voucher, A.REVOKE).name == "ok"  # returns the 70,000 not reserved
    void = world.request(None, amount=0, phase=P.VOID, reserved_id=reserve.id)
    assert world.redeem(void)[0].result is R.ok  # the 30,000 lands on the revoked voucher
    unit_of_work = UnitOfWork(pool)
    assert unit_of_work.run(lambda c: return_leftovers(c)) >= 1
    assert unit_of_work.run(lambda c: return_leftovers(c)) == 0
    [fund] = ledger.lookup_accounts([world.fund_id])
    assert fund.credits_posted - fund.debits_posted - fund.debits_pending == 1_000_000
