"""The voucher lifecycle as a table: every action from every state, and only the allowed cells pass."""

import time

import pytest

from ledger.ids import new_id
from ledger.vouchers.lifecycle import VoucherTransition
from ledger.vouchers.results import RedemptionResult as R
from ledger.vouchers.results import TransitionResult as T
from ledger.vouchers.states import TRANSITIONS, TransitionAction, VoucherState
from tests.voucher_world import build_world, fresh_iin, holder_hash

A, S = TransitionAction, VoucherState


def _voucher_in(world, state: VoucherState):
    """A voucher brought to `state` by real steps."""
    voucher = world.issue(amount=100_000)
    path = {
        S.OFFERED: [],
        S.ACCEPTED: [A.ACCEPT],
        S.DECLINED: [A.DECLINE],
        S.ACTIVE: [A.ACCEPT, A.ACTIVATE],
        S.SUSPENDED: [A.ACCEPT, A.ACTIVATE, A.SUSPEND],
        S.REVOKED: [A.REVOKE],
        S.REDEEMED: [A.ACCEPT, A.ACTIVATE],
    }[state]
    for action in path:
        assert world.step(voucher, action) is T.ok
    if state is S.REDEEMED:
        assert world.redeem(world.request(voucher, amount=100_000))[0].result is R.ok
    return voucher


@pytest.fixture(scope="module")
def consent_world(ledger, voucher_ledger):
    return build_world(ledger, voucher_ledger, consent_required=True, activation_required=True)


@pytest.mark.parametrize("action", list(A))
@pytest.mark.parametrize("state", [s for s in S if s is not S.EXPIRED])
def test_only_allowed_transitions_pass(consent_world, voucher_ledger, state, action):
    voucher = _voucher_in(consent_world, state)
    result = consent_world.step(voucher, action)
    allowed_from, _ = TRANSITIONS[action]
    if action is A.EXPIRE and state in allowed_from:
        assert result is T.not_yet_expired  # allowed from this state, but the voucher has not expired
    elif state in allowed_from:
        assert result is T.ok
    else:
        assert result is T.illegal_transition
        assert voucher_ledger.vouchers([voucher])[0].state is state


def test_a_step_is_idempotent_by_its_id(consent_world, voucher_ledger):
    voucher = _voucher_in(consent_world, S.OFFERED)
    step = VoucherTransition(new_id(), voucher, A.ACCEPT, "by the test")
    assert voucher_ledger.transition([step]) == [T.ok]
    assert voucher_ledger.transition([step]) == [T.exists]
    assert voucher_ledger.transition([VoucherTransition(step.id, voucher, A.DECLINE, "x")]) == [
        T.exists_with_different_action
    ]


def test_resume_returns_to_the_state_the_suspension_interrupted(consent_world, voucher_ledger):
    voucher = _voucher_in(consent_world, S.ACCEPTED)
    assert consent_world.step(voucher, A.SUSPEND) is T.ok
    assert consent_world.step(voucher, A.RESUME) is T.ok
    assert voucher_ledger.vouchers([voucher])[0].state is S.ACCEPTED


def test_the_holders_choice_needs_the_holders_hash(consent_world, voucher_ledger):
    iin = fresh_iin()
    voucher = consent_world.issue(amount=10_000, iin=iin)
    stranger = VoucherTransition(new_id(), voucher, A.ACCEPT, holder_hash=holder_hash(fresh_iin()))
    assert voucher_ledger.transition([stranger]) == [T.voucher_not_found]
    holder = VoucherTransition(new_id(), voucher, A.ACCEPT, holder_hash=holder_hash(iin))
    assert voucher_ledger.transition([holder]) == [T.ok]


def test_an_expired_voucher_returns_its_value_to_the_fund(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger, fund_tiyn=1_000_000)
    soon = voucher_ledger.now() + 1_500_000_000
    voucher = world.issue(amount=300_000, expires_at=soon)
    assert world.redeem(world.request(voucher, amount=100_000))[0].result is R.ok
    assert world.step(voucher, A.EXPIRE) is T.not_yet_expired
    time.sleep(1.6)
    assert world.redeem(world.request(voucher, amount=1_000))[0].result is R.voucher_expired
    assert world.step(voucher, A.EXPIRE) is T.ok
    [fund] = ledger.lookup_accounts([world.fund_id])
    assert fund.credits_posted - fund.debits_posted == 1_000_000 - 100_000


def test_gas_vouchers_activate_only_between_the_7th_and_the_29th(ledger, voucher_ledger):
    import datetime as dt

    from ledger.clock import BUSINESS_TIMEZONE

    now = dt.datetime.now(BUSINESS_TIMEZONE)
    # A window that excludes today and tomorrow (the test may run across midnight in Almaty).
    near = {now.day, (now + dt.timedelta(days=1)).day}
    window = [12, 13] if near.isdisjoint({12, 13}) else [20, 21]
    world = build_world(ledger, voucher_ledger, activation_required=True, activation_days=window)
    voucher = world.issue(amount=10_000)
    assert world.step(voucher, A.ACTIVATE) is T.outside_activation_days
