"""Paying approved acts: receivable → clearing → the provider's bank account with a payment order, never
twice (also when many press the button at once), set-offs for money taken back, returned payments."""

import threading

import psycopg
import pytest

from ledger.accounts import AccountType
from ledger.money import Asset
from tests.settlement_world import OFFICER, build_settlement_world, day, fresh_iban
from treasury.errors import Refused
from treasury.programmes import find_programme
from treasury.settlement import (
    ActState,
    disallow_redemptions,
    find_act,
    pay_act,
    record_payment_return,
    repay_act,
)
from treasury.settlement.payouts import settlement_accounts


@pytest.fixture
def world(ledger, voucher_ledger, pool, database_url):
    return build_settlement_world(ledger, voucher_ledger, pool, database_url)


def _approved_act(world, amounts=(60_000, 60_000, 25_000), days_ago=6, provider=None):
    served = day(world, days_ago)
    ids = [world.redeem_on(served, amount, provider=provider) for amount in amounts]
    world.close_through(served)
    [act] = [a for a in world.issue(served) if provider is None or a.provider_id == provider.id]
    world.sign(act.number, provider or world.providers[0])
    world.approve(act.number)
    return act, ids


def _balances(ledger, world, provider):
    programme = world.run(lambda c: find_programme(c, world.programme_id))
    clearing, bank = world.run(lambda c: settlement_accounts(c, programme, provider.id))
    accounts = ledger.lookup_accounts([provider.terminal.receivable_id, clearing, bank])
    return {a.id: a for a in accounts}, provider.terminal.receivable_id, clearing, bank


def test_an_approved_act_is_paid_through_clearing_to_the_providers_bank_account(world, ledger):
    act, _ = _approved_act(world)
    provider = world.providers[0]
    payout = world.pay(act.number)

    assert (payout.amount_tiyn, payout.setoff_tiyn) == (145_000, 0)
    [order] = payout.orders
    assert (
        order.number == f"ПП-{world.code}-1" and order.amount_tiyn == 145_000 and order.kbk == "251 027 015"
    )
    assert order.purpose.startswith(f"Оплата по акту № {act.number} от ")
    assert order.iban.startswith("KZ") and order.order_date == world.today and not order.returned
    accounts, receivable, clearing, bank = _balances(ledger, world, provider)
    assert accounts[receivable].credits_posted - accounts[receivable].debits_posted == 0
    assert accounts[clearing].credits_posted == accounts[clearing].debits_posted == 145_000
    assert accounts[bank].credits_posted == 145_000
    assert (
        accounts[bank].code == AccountType.PROVIDER_BANK and accounts[clearing].code == AccountType.CLEARING
    )
    assert world.run(lambda c: find_act(c, number=act.number)).state is ActState.PAID
    assert world.pay(act.number) == payout  # paying again answers the same payout


def test_many_officers_paying_one_act_at_once_pay_it_once(world, ledger, database_url):
    act, _ = _approved_act(world)
    payouts, errors = [], []
    barrier = threading.Barrier(8)

    def pay():
        barrier.wait()
        try:
            payouts.append(world.run(lambda c: pay_act(c, act.number, OFFICER)))
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=pay) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(payouts) == 8 and len({p.orders[0].number for p in payouts}) == 1
    accounts, _, _, bank = _balances(ledger, world, world.providers[0])
    assert accounts[bank].credits_posted == act.total_tiyn
    with psycopg.connect(database_url) as owner:
        count = owner.execute("SELECT count(*) FROM payment_orders WHERE act_id = %s", (act.id,)).fetchone()[
            0
        ]
        with pytest.raises(psycopg.errors.UniqueViolation) as refused:
            owner.execute(
                """INSERT INTO settlement_payouts (act_id, programme_id, provider_id, amount_tiyn,
                       setoff_tiyn, clearing_transfer_id, officer, "timestamp")
                   SELECT act_id, programme_id, provider_id, amount_tiyn, setoff_tiyn, clearing_transfer_id,
                          'x', 0
                     FROM settlement_payouts WHERE act_id = %s""",
                (act.id,),
            )
    assert count == 1 and refused.value.diag.constraint_name == "pk_settlement_payouts"


def test_an_act_not_approved_is_not_paid(world):
    served = day(world, 6)
    world.redeem_on(served, 60_000)
    world.close_through(served)
    [act] = world.issue(served)
    with pytest.raises(Refused) as refused:
        world.pay(act.number)
    assert refused.value.code == "act_not_approved"


def test_money_taken_back_after_payment_is_set_off_against_the_next_payout(world, ledger):
    first, ids = _approved_act(world, amounts=(60_000, 60_000), days_ago=6)
    world.pay(first.number)
    world.run(lambda c: disallow_redemptions(c, world.programme_id, [ids[1]], "duplicate meal", OFFICER))
    [adjustment] = world.issue(day(world, 6))
    with pytest.raises(Refused) as refused:
        world.pay(adjustment.number)
    assert refused.value.code == "adjustment_not_paid"
    world.approve(adjustment.number)  # the customer's claim: no provider signature needed
    second, _ = _approved_act(world, amounts=(100_000,), days_ago=5)

    payout = world.pay(second.number)

    assert (payout.amount_tiyn, payout.setoff_tiyn) == (40_000, 60_000)
    assert adjustment.number in payout.orders[0].purpose and "600,00" in payout.orders[0].purpose
    assert world.run(lambda c: find_act(c, number=adjustment.number)).state is ActState.PAID
    accounts, receivable, _, bank = _balances(ledger, world, world.providers[0])
    assert accounts[receivable].credits_posted - accounts[receivable].debits_posted == 0
    assert accounts[bank].credits_posted == 120_000 + 40_000  # paid for what was really served: 160 000


def test_a_payout_fully_set_off_moves_no_money(world):
    first, ids = _approved_act(world, amounts=(60_000, 60_000), days_ago=6)
    world.pay(first.number)
    world.run(lambda c: disallow_redemptions(c, world.programme_id, ids, "both wrong", OFFICER))
    [adjustment] = world.issue(day(world, 6))
    world.approve(adjustment.number)
    second, _ = _approved_act(world, amounts=(50_000,), days_ago=5)
    payout = world.pay(second.number)
    assert (payout.amount_tiyn, payout.setoff_tiyn, payout.orders) == (0, 50_000, ())
    assert world.run(lambda c: find_act(c, number=adjustment.number)).state is ActState.APPROVED  # 700 left


def test_a_returned_payment_is_paid_again_once_the_iban_is_fixed(world, ledger):
    act, _ = _approved_act(world)
    provider = world.providers[0]
    [order] = world.pay(act.number).orders
    with pytest.raises(Refused) as refused:
        world.run(lambda c: repay_act(c, act.number, OFFICER))
    assert refused.value.code == "payment_not_returned"
    returned = world.run(
        lambda c: record_payment_return(c, order.number, "счёт закрыт / account closed", OFFICER)
    )
    assert returned.orders[0].returned
    accounts, _, clearing, bank = _balances(ledger, world, provider)
    assert accounts[bank].credits_posted - accounts[bank].debits_posted == 0
    assert accounts[clearing].credits_posted - accounts[clearing].debits_posted == act.total_tiyn
    with pytest.raises(Refused) as refused:
        world.run(lambda c: repay_act(c, act.number, OFFICER))
    assert refused.value.code == "iban_unchanged"
    new_iban = fresh_iban()
    world.record_profile(provider.id, new_iban)
    repaid = world.run(lambda c: repay_act(c, act.number, OFFICER))
    assert [o.attempt for o in repaid.orders] == [1, 2] and repaid.orders[1].iban == new_iban
    assert repaid.orders[1].purpose == order.purpose and repaid.orders[1].number != order.number
    accounts, _, clearing, bank = _balances(ledger, world, provider)
    assert accounts[bank].credits_posted - accounts[bank].debits_posted == act.total_tiyn
    assert accounts[clearing].credits_posted - accounts[clearing].debits_posted == 0
    again = world.run(lambda c: record_payment_return(c, order.number, "again", OFFICER))
    assert again == repaid  # recording the same return twice changes nothing


def test_a_digital_tenge_programme_pays_in_digital_tenge(ledger, voucher_ledger, pool, database_url):
    world = build_settlement_world(ledger, voucher_ledger, pool, database_url, asset=Asset.DIGITAL_KZT)
    act, _ = _approved_act(world)
    world.pay(act.number)
    accounts, receivable, clearing, bank = _balances(ledger, world, world.providers[0])
    assert {accounts[i].asset for i in (receivable, clearing, bank)} == {Asset.DIGITAL_KZT}
    assert accounts[bank].credits_posted == act.total_tiyn


def test_an_invalid_iban_stops_the_payout_and_changes_nothing(world, database_url):
    act, _ = _approved_act(world)
    with psycopg.connect(database_url) as owner:  # a profile written around Python, with a bad check sum
        owner.execute(
            "UPDATE provider_profiles SET iban = 'KZ00125KZT5004100100' WHERE provider_id = %s",
            (world.providers[0].id,),
        )
    with pytest.raises(Refused) as refused:
        world.pay(act.number)
    assert refused.value.code == "iban_invalid"
    assert world.run(lambda c: find_act(c, number=act.number)).state is ActState.APPROVED
