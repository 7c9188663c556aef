"""Every redemption rule, one broken at a time: each refusal has its own result code, and a refused
request moves nothing. Written as a table an officer can read: the world it needs, what is done, the code."""

import dataclasses
import datetime as dt
import time
import unicodedata
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.audit.canonical import canonical_bytes
from ledger.clock import business_date
from ledger.ids import new_id
from ledger.vouchers.requests import (
    RedemptionItem,
    RedemptionRequest,
    parse_request,
    parse_request_bytes,
    request_bytes,
    request_document,
)
from ledger.vouchers.results import RedemptionResult as R
from ledger.vouchers.states import ProviderCategory, ProviderState, RedemptionPhase, TransitionAction
from tests.voucher_world import World, build_world


def _rebuilt(request, **changes):
    """The request with fields changed, re-encoded (so its bytes, hash and signature match the change)."""
    return parse_request_bytes(request_bytes(dataclasses.replace(request, **changes)))


def _assert_refused(world: World, voucher, request, expected, terminal=None):
    before = world.vouchers.vouchers([voucher])[0] if voucher else None
    outcome, receipt = world.redeem(request, terminal)
    assert outcome.result is expected, (outcome.result, outcome.detail)
    assert receipt.document()["results"][0]["result"] == expected.name
    if before is not None:
        after = world.vouchers.vouchers([voucher])[0]
        assert (after.available_tiyn, after.spent_tiyn) == (before.available_tiyn, before.spent_tiyn)


def test_a_valid_redemption_is_accepted(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(100_000)
    assert world.redeem(world.request(voucher, amount=10_000))[0].result is R.ok


def test_amount_must_be_positive(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(100_000)
    _assert_refused(world, voucher, world.request(voucher, amount=0), R.amount_must_be_positive)


def test_unknown_terminal(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(100_000)
    stranger = dataclasses.replace(world.terminal, id=new_id())
    request = world.request(voucher, terminal=stranger)
    _assert_refused(world, voucher, request, R.terminal_not_found, stranger)


def test_revoked_terminal(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(100_000)
    assert voucher_ledger.revoke_terminal(world.terminal.id, "stolen").ok
    _assert_refused(world, voucher, world.request(voucher), R.terminal_revoked)


def test_signature_by_another_key_is_refused(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(100_000)
    other = world.add_provider()
    impostor = dataclasses.replace(other, id=world.terminal.id)  # signs with another terminal's key
    outcome, _ = world.vouchers.redeem([world.submission(world.request(voucher), impostor)])[0]
    assert outcome[0].result is R.terminal_signature_invalid


def test_a_request_signed_for_another_purpose_is_refused(ledger, voucher_ledger):
    from ledger.vouchers.redemption import Submission
    from ledger.vouchers.signing import Purpose, sign_message

    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(100_000)
    request = world.request(voucher)
    signature = sign_message(world.terminal.secret_key, Purpose.SERVICE_ACT, request.body)
    submission = Submission(
        world.terminal.id, (request,), request.body, signature, Purpose.REDEMPTION_REQUEST
    )
    [(outcomes, _)] = voucher_ledger.redeem([submission])
    assert outcomes[0].result is R.terminal_signature_invalid


def test_request_time_far_from_the_ledgers(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(100_000)
    an_hour_ago = time.time_ns() // 1_000_000 - 3_600_000
    _assert_refused(
        world, voucher, world.request(voucher, requested_at_ms=an_hour_ago), R.request_time_invalid
    )


def test_a_tampered_token_is_refused(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(100_000)
    request = world.request(voucher)
    token = request.token
    tampered = token[:30] + ("A" if token[30] != "A" else "B") + token[31:]
    _assert_refused(world, voucher, _rebuilt(request, token=tampered), R.token_invalid)


def test_a_token_signed_by_an_unknown_key_is_refused(ledger, voucher_ledger):
    from ledger.vouchers.paseto import keypair_from_seed
    from ledger.vouchers.tokens import IssuerSigner, parse_claims, token_text

    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(100_000)
    request = world.request(voucher)
    claims = parse_claims(_payload(request.token))
    forger = IssuerSigner(keypair_from_seed(b"not-the-issuer-key-seed-00000000"))
    forged = token_text(claims, forger.key_id, forger.sign(claims))
    _assert_refused(world, voucher, _rebuilt(request, token=forged), R.issuer_key_unknown)


def test_a_token_the_issuer_signed_but_not_the_vouchers_own_is_refused(ledger, voucher_ledger):
    from ledger.vouchers.tokens import parse_claims, token_text

    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(100_000)
    request = world.request(voucher)
    claims = parse_claims(_payload(request.token))
    # The issuer's own key, the voucher's own id, another amount: it verifies, names the voucher, and is
    # still not the token the ledger issued for it.
    richer = dataclasses.replace(claims, amount_tiyn=claims.amount_tiyn * 10)
    signer = voucher_ledger.signer
    other = token_text(richer, signer.key_id, signer.sign(richer))
    _assert_refused(world, voucher, _rebuilt(request, token=other), R.token_does_not_match_voucher)
    assert world.redeem(_rebuilt(request, id=new_id()))[0].result is R.ok


def _payload(token: str) -> bytes:
    import base64

    body = token.split(".")[2]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))[:-64]


def test_reference_code_redeems_like_the_token_and_a_wrong_one_is_refused(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(100_000)
    [view] = voucher_ledger.vouchers([voucher])
    typed = view.reference_code.lower()[:4] + " " + view.reference_code[4:]
    assert world.redeem(world.request(None, reference_code=typed))[0].result is R.ok
    wrong = view.reference_code[:-1] + ("0" if view.reference_code[-1] != "0" else "1")
    _assert_refused(world, voucher, world.request(None, reference_code=wrong), R.reference_code_not_found)


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (TransitionAction.SUSPEND, R.voucher_suspended),
        (TransitionAction.REVOKE, R.voucher_revoked),
    ],
)
def test_a_held_or_revoked_voucher_cannot_be_spent(ledger, voucher_ledger, action, expected):
    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(100_000)
    assert world.step(voucher, action).name == "ok"
    _assert_refused(world, voucher, world.request(voucher), expected)


def test_a_voucher_not_yet_valid(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger)
    tomorrow = voucher_ledger.now() + 24 * 3600 * 10**9
    voucher = world.issue(100_000, not_before=tomorrow)
    _assert_refused(world, voucher, world.request(voucher), R.voucher_not_yet_valid)


def test_a_provider_not_enrolled_in_the_programme(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(100_000)
    outsider = world.add_provider(enrol=False)
    request = world.request(voucher, terminal=outsider)
    _assert_refused(world, voucher, request, R.provider_not_enrolled, outsider)


def test_a_suspended_provider_cannot_redeem_but_the_voucher_stays_usable_elsewhere(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(100_000)
    other = world.add_provider()
    assert voucher_ledger.set_provider_state(
        world.programme_id, world.terminal.provider_id, ProviderState.SUSPENDED, "inspection"
    ).ok
    _assert_refused(world, voucher, world.request(voucher), R.provider_not_active)
    assert world.redeem(world.request(voucher, terminal=other), other)[0].result is R.ok


def test_a_provider_of_a_category_the_policy_does_not_pay(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(100_000)
    pharmacy = world.add_provider(ProviderCategory.PHARMACY)
    request = world.request(voucher, terminal=pharmacy)
    outcome, _ = world.redeem(request, pharmacy)
    assert outcome.result is R.provider_category_not_allowed


def test_outside_the_programme_window(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(100_000)
    from ledger.vouchers.policy import parse_policy
    from tests.voucher_world import policy_document

    ended = parse_policy(policy_document(valid_from="2020-01-01", valid_until="2021-01-01"))
    assert voucher_ledger.record_policy(world.programme_id, ended).ok
    _assert_refused(world, voucher, world.request(voucher), R.outside_programme_window)


def test_not_a_service_day(ledger, voucher_ledger):
    today = business_date(voucher_ledger.now())
    # Neither today nor tomorrow (Asia/Almaty): the test may run across midnight there (19:00 UTC).
    closed = {today.isoweekday(), (today + dt.timedelta(days=1)).isoweekday()}
    world = build_world(ledger, voucher_ledger, service_weekdays=[d for d in range(1, 8) if d not in closed])
    voucher = world.issue(100_000)
    _assert_refused(world, voucher, world.request(voucher), R.not_a_service_day)


def test_a_single_use_voucher_must_be_spent_whole(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger, partial_redemption=False)
    voucher = world.issue(100_000)
    _assert_refused(world, voucher, world.request(voucher, amount=40_000), R.partial_redemption_not_allowed)
    assert world.redeem(world.request(voucher, amount=100_000))[0].result is R.ok
    _assert_refused(world, voucher, world.request(voucher, amount=100_000), R.voucher_redeemed)


def test_a_set_price_and_a_per_use_maximum(ledger, voucher_ledger):
    priced = build_world(ledger, voucher_ledger, price_per_use_tiyn=60_000)
    voucher = priced.issue(300_000)
    _assert_refused(priced, voucher, priced.request(voucher, amount=59_999), R.amount_differs_from_price)
    capped = build_world(ledger, voucher_ledger, per_use_tiyn_max=50_000)
    voucher = capped.issue(300_000)
    _assert_refused(capped, voucher, capped.request(voucher, amount=50_001), R.exceeds_per_use_limit)


def test_gas_units_are_priced_and_limited_per_month(ledger, voucher_ledger):
    world = build_world(
        ledger, voucher_ledger, purpose="gas", provider_categories=["gas_utility"], unit_price_tiyn=2_500,
        period="month", period_units_max=150, service={"name": "Скидка на газ", "unit": "м³"},
    )  # fmt: skip
    voucher = world.issue(1_000_000)
    _assert_refused(world, voucher, world.request(voucher, amount=2_500), R.units_invalid)
    _assert_refused(
        world, voucher, world.request(voucher, amount=2_000, units=1), R.amount_differs_from_units_price
    )
    assert world.redeem(world.request(voucher, amount=100 * 2_500, units=100))[0].result is R.ok
    _assert_refused(
        world, voucher, world.request(voucher, amount=51 * 2_500, units=51), R.exceeds_period_units
    )
    assert world.redeem(world.request(voucher, amount=50 * 2_500, units=50))[0].result is R.ok


def test_one_meal_a_day_and_a_monthly_amount(ledger, voucher_ledger):
    daily = build_world(ledger, voucher_ledger, period="day", period_uses_max=1)
    voucher = daily.issue(300_000)
    assert daily.redeem(daily.request(voucher, amount=60_000))[0].result is R.ok
    _assert_refused(daily, voucher, daily.request(voucher, amount=60_000), R.exceeds_period_uses)
    monthly = build_world(ledger, voucher_ledger, period="month", period_tiyn_max=100_000)
    voucher = monthly.issue(300_000)
    assert monthly.redeem(monthly.request(voucher, amount=70_000))[0].result is R.ok
    _assert_refused(monthly, voucher, monthly.request(voucher, amount=30_001), R.exceeds_period_amount)


def test_prescription_items_and_quantities(ledger, voucher_ledger):
    world = build_world(
        ledger, voucher_ledger, purpose="medicines", provider_categories=["pharmacy"], items_required=True,
        service={"name": "Лекарственные средства", "unit": "уп."},
    )  # fmt: skip
    voucher = world.issue(500_000, items=(("ATC-N02BE01", 2), ("ATC-R05CB01", 1)))
    _assert_refused(world, voucher, world.request(voucher, amount=10_000), R.items_required)
    unprescribed = (RedemptionItem("ATC-J01CA04", 1, 10_000),)
    _assert_refused(
        world, voucher, world.request(voucher, amount=10_000, items=unprescribed), R.item_not_prescribed
    )
    too_many = (RedemptionItem("ATC-N02BE01", 3, 30_000),)
    _assert_refused(
        world, voucher, world.request(voucher, amount=30_000, items=too_many), R.item_quantity_exceeded
    )
    two = (RedemptionItem("ATC-N02BE01", 2, 20_000),)
    assert world.redeem(world.request(voucher, amount=20_000, items=two))[0].result is R.ok
    one_more = (RedemptionItem("ATC-N02BE01", 1, 10_000),)
    _assert_refused(
        world, voucher, world.request(voucher, amount=10_000, items=one_more), R.item_quantity_exceeded
    )


def test_insufficient_balance(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(50_000)
    _assert_refused(world, voucher, world.request(voucher, amount=50_001), R.insufficient_balance)


def test_a_malformed_request_in_a_batch_is_refused_alone(ledger, voucher_ledger):
    from ledger.audit.canonical import canonical_bytes
    from ledger.vouchers.redemption import Submission
    from ledger.vouchers.requests import MalformedRequest, parse_request, request_document
    from ledger.vouchers.signing import Purpose, sign_message

    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(100_000)
    good = world.request(voucher, amount=10_000)
    documents = [request_document(good), {"id": "not-a-uuid", "phase": "single"}]
    parsed = []
    for document in documents:
        try:
            parsed.append(parse_request(document))
        except MalformedRequest as error:
            parsed.append(error)
    body = canonical_bytes({"terminal": str(world.terminal.id), "sent_at_ms": 1, "requests": documents})
    signature = sign_message(world.terminal.secret_key, Purpose.REDEMPTION_BATCH, body)
    submission = Submission(world.terminal.id, tuple(parsed), body, signature, Purpose.REDEMPTION_BATCH)
    [(outcomes, receipt)] = voucher_ledger.redeem([submission])
    assert [o.result for o in outcomes] == [R.ok, R.request_malformed]
    assert "id" in outcomes[1].detail
    assert len(receipt.document()["results"]) == 2


def test_a_refused_id_stays_refused_with_its_first_answer(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(50_000)
    request = world.request(voucher, amount=60_000)
    assert world.redeem(request)[0].result is R.insufficient_balance
    again, _ = world.redeem(request)
    assert (again.result, again.original) == (R.id_already_failed, R.insufficient_balance)
    changed = _rebuilt(request, amount_tiyn=10_000)
    assert world.redeem(changed)[0].result is R.exists_with_different_request


def test_a_late_retry_of_a_redemption_still_answers_exists(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(50_000)
    almost_too_old = time.time_ns() // 1_000_000 - 299_000  # the skew allowed is five minutes
    request = world.request(voucher, amount=10_000, requested_at_ms=almost_too_old)
    assert world.redeem(request)[0].result is R.ok
    time.sleep(1.5)  # now the same request is past the skew: as a new request it would be refused
    assert world.redeem(request)[0].result is R.exists
    late = world.request(voucher, amount=10_000, requested_at_ms=almost_too_old)
    assert world.redeem(late)[0].result is R.request_time_invalid


def test_the_close_lock_key_is_the_same_in_python_and_in_sql(owner_connection):
    """Redemptions take a programme's close lock in SQL, a period close takes it from Python: one key."""
    import uuid

    from ledger.vouchers.registry import programme_lock_key

    ids = [uuid.uuid4() for _ in range(50)] + [uuid.UUID(int=2**128 - 1), uuid.UUID(int=1)]
    for programme_id in ids:
        [(in_sql,)] = owner_connection.execute(
            "SELECT (('x' || substr(replace(%s::text, '-', ''), 1, 16))::bit(64) >> 1)::bigint",
            (programme_id,),
        ).fetchall()
        assert in_sql == programme_lock_key(programme_id)


@settings(max_examples=200, deadline=None)
@given(
    phase=st.sampled_from([RedemptionPhase.SINGLE, RedemptionPhase.RESERVE]),
    amount=st.integers(1, 10**12),
    requested_at_ms=st.integers(0, 2**53),
    token=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=8, max_size=64),
    units=st.integers(0, 1000),
    offline=st.booleans(),
)
def test_a_request_parses_the_same_from_its_signed_bytes(
    phase, amount, requested_at_ms, token, units, offline
):
    """The HTTP edge hands the parser the canonical bytes the terminal signed rather than encoding the
    request a second time: the request must come out exactly as when the parser encodes it itself."""
    request = RedemptionRequest(
        id=uuid.UUID(int=amount), terminal_id=uuid.UUID(int=units + 1), phase=phase, amount_tiyn=amount,
        requested_at_ms=requested_at_ms, token=unicodedata.normalize("NFC", token), units=units,
        offline=offline,
    )  # fmt: skip
    document = request_document(request)
    encoded = canonical_bytes(document)
    assert parse_request(document, encoded) == parse_request(document) == parse_request_bytes(encoded)
    assert parse_request(document, encoded).body == encoded
