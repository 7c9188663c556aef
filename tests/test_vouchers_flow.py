"""Worked examples of a voucher's life, end to end against PostgreSQL."""

from ledger.ids import new_id
from ledger.vouchers.issuance import VoucherOrder
from ledger.vouchers.results import IssueResult
from ledger.vouchers.results import RedemptionResult as R
from ledger.vouchers.results import TransitionResult as T
from ledger.vouchers.states import TransitionAction as A
from ledger.vouchers.states import VoucherState
from ledger.vouchers.tokens import verify_token
from tests.voucher_world import build_world, fresh_iin, holder_hash


def test_a_pupil_eats_five_meals_and_the_canteen_is_owed_for_five(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger, price_per_use_tiyn=60_000, period="day", period_uses_max=1)
    voucher = world.issue(amount=300_000)
    outcome, _ = world.redeem(world.request(voucher, amount=60_000))
    assert outcome.result is R.ok, outcome
    [view] = voucher_ledger.vouchers([voucher])
    assert (view.available_tiyn, view.spent_tiyn) == (240_000, 60_000)
    [receivable] = ledger.lookup_accounts([world.terminal.receivable_id])
    assert receivable.credits_posted == 60_000
    second, _ = world.redeem(world.request(voucher, amount=60_000))
    assert second.result is R.exceeds_period_uses  # one meal per school day


def test_consent_then_activation_then_redemption(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger, consent_required=True, activation_required=True)
    voucher = world.issue(amount=100_000)
    assert voucher_ledger.vouchers([voucher])[0].state is VoucherState.OFFERED
    refused, _ = world.redeem(world.request(voucher, amount=10_000))
    assert refused.result is R.voucher_offered
    assert world.step(voucher, A.ACTIVATE) is T.illegal_transition
    assert world.step(voucher, A.ACCEPT) is T.ok
    assert world.redeem(world.request(voucher, amount=10_000))[0].result is R.voucher_not_activated
    assert world.step(voucher, A.ACTIVATE) is T.ok
    assert world.redeem(world.request(voucher, amount=10_000))[0].result is R.ok
    assert voucher_ledger.vouchers([voucher])[0].available_tiyn == 90_000


def test_a_declined_offer_returns_its_value_to_the_fund(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger, consent_required=True, fund_tiyn=1_000_000)
    voucher = world.issue(amount=400_000)
    [fund] = ledger.lookup_accounts([world.fund_id])
    assert fund.debits_pending == 400_000
    assert world.step(voucher, A.DECLINE) is T.ok
    [fund] = ledger.lookup_accounts([world.fund_id])
    assert (fund.debits_pending, fund.debits_posted) == (0, 0)
    assert voucher_ledger.vouchers([voucher])[0].state is VoucherState.DECLINED


def test_a_replayed_request_answers_exists_and_moves_nothing_twice(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(amount=100_000)
    request = world.request(voucher, amount=30_000)
    first, receipt = world.redeem(request)
    again, receipt_again = world.redeem(request)
    assert (first.result, again.result) == (R.ok, R.exists)
    assert (
        receipt.document()["results"][0]["redemption"] == receipt_again.document()["results"][0]["redemption"]
    )
    assert voucher_ledger.vouchers([voucher])[0].available_tiyn == 70_000


def test_revocation_returns_what_is_left(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger, fund_tiyn=500_000)
    voucher = world.issue(amount=200_000)
    assert world.redeem(world.request(voucher, amount=50_000))[0].result is R.ok
    assert world.step(voucher, A.REVOKE) is T.ok
    [fund] = ledger.lookup_accounts([world.fund_id])
    assert fund.credits_posted - fund.debits_posted == 500_000 - 50_000
    assert world.redeem(world.request(voucher, amount=1_000))[0].result is R.voucher_revoked


def test_a_wrong_redemption_is_reversed_back_onto_the_voucher_once(ledger, voucher_ledger, pool):
    from ledger.ids import new_id
    from ledger.unit_of_work import UnitOfWork
    from ledger.vouchers.corrections import RedemptionReversal, reverse_redemptions
    from ledger.vouchers.results import ReversalResult

    world = build_world(ledger, voucher_ledger, partial_redemption=False)
    voucher = world.issue(amount=50_000)
    request = world.request(voucher, amount=50_000)
    assert world.redeem(request)[0].result is R.ok
    assert voucher_ledger.vouchers([voucher])[0].state is VoucherState.REDEEMED
    reversal = RedemptionReversal(new_id(), request.id, "the pupil was absent; meal recorded by mistake")
    unit_of_work = UnitOfWork(pool)
    assert unit_of_work.run(lambda c: reverse_redemptions(c, [reversal])) == [ReversalResult.ok]
    assert unit_of_work.run(lambda c: reverse_redemptions(c, [reversal])) == [ReversalResult.exists]
    again = RedemptionReversal(new_id(), request.id, "twice")
    assert unit_of_work.run(lambda c: reverse_redemptions(c, [again])) == [ReversalResult.already_reversed]
    [view] = voucher_ledger.vouchers([voucher])
    assert (view.state, view.available_tiyn) == (VoucherState.ACTIVE, 50_000)
    [receivable] = ledger.lookup_accounts([world.terminal.receivable_id])
    assert receivable.credits_posted - receivable.debits_posted == 0


def test_the_token_handed_out_at_issue_is_the_one_rebuilt_from_the_stored_voucher(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger, consent_required=True)
    orders = [
        VoucherOrder(new_id(), world.programme_id, holder_hash(fresh_iin()), 100_000 + n) for n in range(3)
    ]
    results, issued = voucher_ledger.issue(orders)
    assert results == [IssueResult.ok] * 3
    for order, voucher in zip(orders, issued, strict=True):
        assert voucher.token == voucher_ledger.token(order.id)
        claims = verify_token(voucher_ledger.signer.public_key, voucher.token)
        assert (claims.voucher_id, claims.amount_tiyn) == (order.id, order.amount_tiyn)
