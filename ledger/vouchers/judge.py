"""Judging one redemption request against the voucher, the provider and the policy in force: pure, over
what `redemption_context` loaded. Reports the first rule broken (RedemptionResult precedence) or accepts
it and applies its effect to the voucher's working copy, so the next request in the batch sees it.

`moment` is when the service happened: the ledger's time for online requests, the terminal's for offline
ones (validity, key windows, service days and the policy version in force are judged at that moment).
"""

import datetime as dt
import functools
import uuid
from dataclasses import dataclass
from typing import Final

from ledger.clock import business_date
from ledger.vouchers.policy import Policy, period_start
from ledger.vouchers.redemption_context import (
    RedemptionContext,
    StoredRedemption,
    TerminalInfo,
    VoucherWorking,
)
from ledger.vouchers.requests import RedemptionRequest
from ledger.vouchers.results import RedemptionResult
from ledger.vouchers.states import ProviderState, RedemptionPhase, VoucherState

R = RedemptionResult
_STATE_REFUSALS: Final = {
    VoucherState.OFFERED: R.voucher_offered,
    VoucherState.DECLINED: R.voucher_declined,
    VoucherState.ACCEPTED: R.voucher_not_activated,
    VoucherState.SUSPENDED: R.voucher_suspended,
    VoucherState.REDEEMED: R.voucher_redeemed,
    VoucherState.EXPIRED: R.voucher_expired,
    VoucherState.REVOKED: R.voucher_revoked,
}
# Refusals that, for an offline redemption uploaded late, mean the value was already spent.
_SPENT: Final = frozenset({R.voucher_redeemed, R.insufficient_balance})
RESERVATION_MARGIN_NS: Final = 2_000_000_000
# A batch's online requests are all judged at the ledger's one "now": its business day is worked out once
# (a pure function of the timestamp; 2 us through the time zone each time).
_business_day: Final = functools.lru_cache(maxsize=256)(business_date)


@dataclass(slots=True)
class Decision:
    """An accepted request: what the ledger transfer and the stored row need."""

    voucher: VoucherWorking
    receivable_account_id: uuid.UUID
    provider_id: uuid.UUID
    effective_date: dt.date
    policy: Policy
    reservation: StoredRedemption | None = None


def judge_new_spend(
    request: RedemptionRequest,
    voucher: VoucherWorking,
    terminal: TerminalInfo,
    context: RedemptionContext,
    moment: int,
) -> tuple[RedemptionResult, Decision | None]:
    """A single redemption or a reservation: every rule, in precedence order."""
    result, decision = _judge_voucher_and_provider(request, voucher, terminal, context, moment)
    if decision is not None:
        result = _judge_amounts(request, voucher, decision, context)
    if result is not R.ok:
        if request.offline and result in _SPENT:
            return R.offline_double_spend, None
        return result, None
    assert decision is not None
    _apply_spend(request, voucher, decision)
    return R.ok, decision


def _judge_voucher_and_provider(
    request: RedemptionRequest,
    voucher: VoucherWorking,
    terminal: TerminalInfo,
    context: RedemptionContext,
    moment: int,
) -> tuple[RedemptionResult, Decision | None]:
    if moment < voucher.not_before:
        return R.voucher_not_yet_valid, None
    if moment >= voucher.expires_at:
        return R.voucher_expired, None
    if voucher.state != VoucherState.ACTIVE:
        return _STATE_REFUSALS[VoucherState(voucher.state)], None
    enrolment = context.enrolments.get((voucher.programme_id, terminal.provider_id))
    if enrolment is None:
        return R.provider_not_enrolled, None
    receivable, provider_state = enrolment
    if provider_state != ProviderState.ACTIVE:
        return R.provider_not_active, None
    versions = context.policies.get(voucher.programme_id)
    policy = versions.at(moment) if versions is not None else None
    if policy is None or not policy.allows_provider(terminal.category, terminal.provider_id):
        return R.provider_category_not_allowed, None
    day = _business_day(moment)
    if not policy.in_window(day):
        return R.outside_programme_window, None
    if not policy.is_service_day(day):
        return R.not_a_service_day, None
    closed = context.closed_through.get(voucher.programme_id)
    if closed is not None and day <= closed:
        return R.period_closed, None
    return R.ok, Decision(voucher, receivable, terminal.provider_id, day, policy)


def _judge_amounts(
    request: RedemptionRequest, voucher: VoucherWorking, decision: Decision, context: RedemptionContext
) -> RedemptionResult:
    policy, amount = decision.policy, request.amount_tiyn
    if not policy.partial_redemption and amount != voucher.available_tiyn:
        return R.partial_redemption_not_allowed
    if policy.price_per_use_tiyn is not None and amount != policy.price_per_use_tiyn:
        return R.amount_differs_from_price
    if policy.per_use_tiyn_max is not None and amount > policy.per_use_tiyn_max:
        return R.exceeds_per_use_limit
    unit_priced = policy.unit_price_tiyn is not None
    if unit_priced != (request.units > 0):
        return R.units_invalid
    if policy.unit_price_tiyn is not None and amount != request.units * policy.unit_price_tiyn:
        return R.amount_differs_from_units_price
    result = _judge_items(request, voucher, policy)
    if result is not R.ok:
        return result
    result = _judge_period(request, voucher, decision)
    if result is not R.ok:
        return result
    if voucher.units_used + request.units > voucher.units_max:
        return R.exceeds_voucher_units
    if request.offline:
        key = (request.terminal_id, voucher.programme_id, decision.effective_date)
        if context.offline_totals.get(key, 0) + amount > policy.offline_limit_tiyn:
            return R.offline_limit_exceeded
    if amount > voucher.available_tiyn:
        return R.insufficient_balance
    return R.ok


def _judge_items(request: RedemptionRequest, voucher: VoucherWorking, policy: Policy) -> RedemptionResult:
    if policy.items_required and not request.items:
        return R.items_required
    for item in request.items:
        allowance = voucher.items.get(item.code)
        if allowance is None:
            return R.item_not_prescribed
        if allowance[1] + item.quantity > allowance[0]:
            return R.item_quantity_exceeded
    return R.ok


def _judge_period(
    request: RedemptionRequest, voucher: VoucherWorking, decision: Decision
) -> RedemptionResult:
    """Per-period limits: the stricter of the voucher's own (fixed at issue, in its token) and the policy's
    in force. A redemption dated in an earlier period than the voucher's current one is refused rather than
    judged against counters it does not have (`exceeds_period_uses`): that only happens to late offline
    uploads, and the terminal's operator can resolve it by hand."""
    policy = decision.policy
    start = period_start(policy.period, decision.effective_date)
    if voucher.period_start is not None and start < voucher.period_start:
        return R.exceeds_period_uses
    current = voucher.period_start == start
    uses = (voucher.usage_count if current else 0) + 1
    tiyn = (voucher.usage_tiyn if current else 0) + request.amount_tiyn
    units = (voucher.usage_units if current else 0) + request.units
    if uses > min(voucher.period_uses_max, _limit(policy.period_uses_max)):
        return R.exceeds_period_uses
    if tiyn > min(voucher.period_tiyn_max, _limit(policy.period_tiyn_max)):
        return R.exceeds_period_amount
    if units > min(voucher.period_units_max, _limit(policy.period_units_max)):
        return R.exceeds_period_units
    return R.ok


def _apply_spend(request: RedemptionRequest, voucher: VoucherWorking, decision: Decision) -> None:
    start = period_start(decision.policy.period, decision.effective_date)
    if voucher.period_start != start:
        voucher.period_start, voucher.usage_count, voucher.usage_tiyn, voucher.usage_units = start, 0, 0, 0
    voucher.usage_count += 1
    voucher.usage_tiyn += request.amount_tiyn
    voucher.usage_units += request.units
    voucher.units_used += request.units
    for item in request.items:
        voucher.items[item.code][1] += item.quantity
        voucher.items_changed |= {item.code}
    voucher.available_tiyn -= request.amount_tiyn
    if request.phase is RedemptionPhase.RESERVE:
        voucher.pending_tiyn += request.amount_tiyn
    elif not decision.policy.partial_redemption or (
        voucher.available_tiyn == 0 and voucher.pending_tiyn == 0
    ):
        voucher.state = VoucherState.REDEEMED
    voucher.changed = True


def judge_resolution(
    request: RedemptionRequest, terminal: TerminalInfo, context: RedemptionContext, now: int
) -> tuple[RedemptionResult, StoredRedemption | None]:
    """A post or void: the reservation must exist, be this provider's, unresolved and not timed out."""
    assert request.reserved_id is not None
    reservation = context.reservations.get(request.reserved_id)
    if reservation is None or reservation.phase != RedemptionPhase.RESERVE:
        return R.reservation_not_found, None
    if reservation.provider_id != terminal.provider_id:
        return R.reservation_of_another_provider, None
    resolution = context.resolved.get(request.reserved_id)
    if resolution is not None:
        posted = resolution == RedemptionPhase.POST
        return (R.reservation_already_posted if posted else R.reservation_already_voided), None
    deadline = context.deadlines.get(request.reserved_id)
    # A margin, so the ledger (stamping the post a moment later) can never find it expired when we did not.
    if deadline is not None and deadline <= now + RESERVATION_MARGIN_NS:
        return R.reservation_expired, None
    if request.phase is RedemptionPhase.POST:
        if request.amount_tiyn <= 0:
            return R.amount_must_be_positive, None
        if request.amount_tiyn > reservation.amount_tiyn:
            return R.exceeds_reserved_amount, None
    return R.ok, reservation


def apply_resolution(
    request: RedemptionRequest,
    voucher: VoucherWorking,
    reservation: StoredRedemption,
    policy: Policy | None,
    reserved_items: list[tuple[str, int]],
) -> None:
    """Give back what a void (or the unused part of a post) releases: value, and the usage it counted (when
    the reservation counted in the voucher's current period)."""
    voiding = request.phase is RedemptionPhase.VOID
    released = reservation.amount_tiyn - (0 if voiding else request.amount_tiyn)
    voucher.pending_tiyn -= reservation.amount_tiyn
    voucher.available_tiyn += released
    counted_now = policy is not None and voucher.period_start == period_start(
        policy.period, reservation.effective_date
    )
    if counted_now:
        voucher.usage_tiyn -= released
        if voiding:
            voucher.usage_count -= 1
            voucher.usage_units -= reservation.units
    if voiding:
        voucher.units_used -= reservation.units
        for code, quantity in reserved_items:
            voucher.items[code][1] -= quantity
            voucher.items_changed |= {code}
    if voucher.state == VoucherState.ACTIVE and voucher.available_tiyn == 0 and voucher.pending_tiyn == 0:
        voucher.state = VoucherState.REDEEMED
    voucher.changed = True


def _limit(value: int | None) -> int:
    return value if value is not None else 2**62
