"""Pharmacy dispensing in two phases: reserve on scan, post on hand-over (in full or less), void on cancel."""

from ledger.ids import new_id
from ledger.vouchers.receipts import verify_receipt
from ledger.vouchers.requests import RedemptionItem
from ledger.vouchers.results import RedemptionResult as R
from ledger.vouchers.states import ProviderCategory
from ledger.vouchers.states import RedemptionPhase as P
from tests.voucher_world import build_world

PARACETAMOL, SALBUTAMOL = "ATC-N02BE01", "ATC-R03AC02"


def _pharmacy_world(ledger, voucher_ledger):
    world = build_world(
        ledger, voucher_ledger, purpose="medicines", provider_categories=["pharmacy"], items_required=True,
        reservation_timeout_s=600, service={"name": "Лекарственные средства", "unit": "уп."},
    )  # fmt: skip
    voucher = world.issue(200_000, items=((PARACETAMOL, 2), (SALBUTAMOL, 1)))
    return world, voucher


def test_reserve_then_post_less_than_reserved_releases_the_rest(ledger, voucher_ledger):
    world, voucher = _pharmacy_world(ledger, voucher_ledger)
    items = (RedemptionItem(PARACETAMOL, 2, 30_000), RedemptionItem(SALBUTAMOL, 1, 50_000))
    reserve = world.request(voucher, amount=80_000, items=items, phase=P.RESERVE)
    assert world.redeem(reserve)[0].result is R.ok
    [view] = voucher_ledger.vouchers([voucher])
    assert (view.available_tiyn, view.reserved_tiyn) == (120_000, 80_000)
    post = world.request(None, amount=70_000, phase=P.POST, reserved_id=reserve.id)
    outcome, receipt = world.redeem(post)
    assert outcome.result is R.ok
    assert verify_receipt(voucher_ledger.signer.public_key, receipt)
    [view] = voucher_ledger.vouchers([voucher])
    assert (view.available_tiyn, view.reserved_tiyn, view.spent_tiyn) == (130_000, 0, 70_000)
    [receivable] = ledger.lookup_accounts([world.terminal.receivable_id])
    assert (receivable.credits_posted, receivable.credits_pending) == (70_000, 0)
    again = world.request(None, amount=1_000, phase=P.POST, reserved_id=reserve.id)
    assert world.redeem(again)[0].result is R.reservation_already_posted


def test_a_cancelled_reservation_gives_back_value_and_prescription(ledger, voucher_ledger):
    world, voucher = _pharmacy_world(ledger, voucher_ledger)
    items = (RedemptionItem(PARACETAMOL, 2, 30_000),)
    reserve = world.request(voucher, amount=30_000, items=items, phase=P.RESERVE)
    assert world.redeem(reserve)[0].result is R.ok
    void = world.request(None, amount=0, phase=P.VOID, reserved_id=reserve.id)
    assert world.redeem(void)[0].result is R.ok
    [view] = voucher_ledger.vouchers([voucher])
    assert (view.available_tiyn, view.reserved_tiyn) == (200_000, 0)
    assert dict((code, used) for code, _, used in view.items) == {PARACETAMOL: 0, SALBUTAMOL: 0}
    redo = world.request(voucher, amount=30_000, items=items, phase=P.RESERVE)
    assert world.redeem(redo)[0].result is R.ok  # the two packs can be dispensed again
    assert world.redeem(world.request(None, amount=0, phase=P.VOID, reserved_id=reserve.id))[0].result is (
        R.reservation_already_voided
    )


def test_another_pharmacy_cannot_post_a_reservation(ledger, voucher_ledger):
    world, voucher = _pharmacy_world(ledger, voucher_ledger)
    other = world.add_provider(ProviderCategory.PHARMACY)
    reserve = world.request(
        voucher, amount=10_000, items=(RedemptionItem(SALBUTAMOL, 1, 10_000),), phase=P.RESERVE
    )
    assert world.redeem(reserve)[0].result is R.ok
    post = world.request(None, amount=10_000, phase=P.POST, reserved_id=reserve.id, terminal=other)
    assert world.redeem(post, other)[0].result is R.reservation_of_another_provider
    unknown = world.request(None, amount=10_000, phase=P.POST, reserved_id=new_id())
    assert world.redeem(unknown)[0].result is R.reservation_not_found
    too_much = world.request(None, amount=10_001, phase=P.POST, reserved_id=reserve.id)
    assert world.redeem(too_much)[0].result is R.exceeds_reserved_amount


def test_a_batch_reserves_and_posts_under_one_signature_each_with_its_own_result(ledger, voucher_ledger):
    from ledger.vouchers.redemption import Submission
    from ledger.vouchers.requests import batch_document
    from ledger.vouchers.signing import Purpose, sign_message

    world, voucher = _pharmacy_world(ledger, voucher_ledger)
    reserve = world.request(
        voucher, amount=30_000, items=(RedemptionItem(PARACETAMOL, 2, 30_000),), phase=P.RESERVE
    )
    post = world.request(None, amount=30_000, phase=P.POST, reserved_id=reserve.id)
    greedy = world.request(voucher, amount=500_000, items=(RedemptionItem(SALBUTAMOL, 1, 500_000),))
    body = batch_document(world.terminal.id, 1, [reserve, post, greedy])
    signature = sign_message(world.terminal.secret_key, Purpose.REDEMPTION_BATCH, body)
    submission = Submission(
        world.terminal.id, (reserve, post, greedy), body, signature, Purpose.REDEMPTION_BATCH
    )
    [(outcomes, receipt)] = voucher_ledger.redeem([submission])
    assert [o.result for o in outcomes] == [R.ok, R.ok, R.insufficient_balance]
    assert [r["result"] for r in receipt.document()["results"]] == ["ok", "ok", "insufficient_balance"]
    assert voucher_ledger.vouchers([voucher])[0].spent_tiyn == 30_000
