"""Result codes of voucher operations, IntEnums in precedence order: the first that applies is reported.
Values are stable and never reused (they are stored for refused redemption ids and sent to terminals)."""

from enum import IntEnum


class RedemptionResult(IntEnum):
    ok = 0
    # The request itself.
    request_malformed = 1
    amount_must_be_positive = 2
    amount_too_large = 3
    terminal_not_found = 4
    terminal_revoked = 5
    terminal_signature_invalid = 6
    # Idempotency: the redemption id was seen before (checked before the request's time, so a late
    # retry still learns what happened).
    exists_with_different_request = 8
    exists = 9
    # The id's first attempt was refused; it stays refused (the stored result is returned with this code).
    id_already_failed = 10
    # The request's own time is too far from the ledger's (online), or in the future (offline).
    request_time_invalid = 7
    # The token.
    token_invalid = 11
    issuer_key_unknown = 12
    issuer_key_revoked = 13
    # Redeemed after the key's redeem_until, or the token claims issue after the key's issue_until.
    issuer_key_expired = 14
    reference_code_not_found = 15
    voucher_not_found = 16
    # A genuine token that is not this voucher's current one (claims differ from the stored voucher).
    token_does_not_match_voucher = 17
    voucher_not_yet_valid = 18
    voucher_expired = 19
    # The voucher's state.
    voucher_offered = 20
    voucher_declined = 21
    voucher_not_activated = 22
    voucher_suspended = 23
    voucher_redeemed = 24
    voucher_revoked = 25
    # The provider and the policy in force.
    provider_not_enrolled = 26
    provider_not_active = 27
    provider_category_not_allowed = 28
    outside_programme_window = 29
    not_a_service_day = 30
    period_closed = 31
    partial_redemption_not_allowed = 32
    amount_differs_from_price = 33
    exceeds_per_use_limit = 34
    # Units missing for a unit-priced voucher (gas), or given for one that is not priced per unit.
    units_invalid = 35
    amount_differs_from_units_price = 36
    items_required = 37
    item_not_prescribed = 38
    item_quantity_exceeded = 39
    items_amount_mismatch = 40
    exceeds_period_uses = 41
    exceeds_period_amount = 42
    exceeds_period_units = 43
    exceeds_voucher_units = 44
    offline_limit_exceeded = 45
    insufficient_balance = 46
    # Two-phase (pharmacy) resolution.
    reservation_not_found = 47
    reservation_of_another_provider = 48
    reservation_already_posted = 49
    reservation_already_voided = 50
    reservation_expired = 51
    exceeds_reserved_amount = 52
    # An offline redemption uploaded after the voucher was already spent (elsewhere or by this terminal).
    offline_double_spend = 53


# Refusals that depend on the ledger's state at the time rather than on the request alone. A retry of the
# same id gets the stored refusal (with id_already_failed) instead of a surprise success later.
REMEMBERED_REDEMPTION_FAILURES = frozenset(RedemptionResult) - {
    RedemptionResult.ok,
    RedemptionResult.request_malformed,
    RedemptionResult.amount_must_be_positive,
    RedemptionResult.amount_too_large,
    RedemptionResult.terminal_not_found,
    RedemptionResult.terminal_revoked,
    RedemptionResult.terminal_signature_invalid,
    RedemptionResult.request_time_invalid,
    RedemptionResult.exists_with_different_request,
    RedemptionResult.exists,
    RedemptionResult.id_already_failed,
    RedemptionResult.token_invalid,
}


class TransitionResult(IntEnum):
    ok = 0
    id_must_not_be_zero = 1
    reason_too_long = 2
    exists_with_different_voucher = 3
    exists_with_different_action = 4
    exists = 5
    voucher_not_found = 6
    # The action is not allowed from the voucher's current state (e.g. activating a declined voucher).
    illegal_transition = 7
    # Consent came after the offer lapsed (its reservation timed out).
    offer_expired = 8
    # Activation outside the days of the month the policy allows (gas vouchers: 7th to 29th).
    outside_activation_days = 9
    # Expiry asked for a voucher whose expiry time has not come.
    not_yet_expired = 10
    # Accept, decline and activate are the holder's choices: made by the holder (the mobile backend passes
    # the holder's hash) or, on the holder's behalf, with a reason on record.
    holder_or_reason_required = 11


class IssueResult(IntEnum):
    ok = 0
    id_must_not_be_zero = 1
    amount_must_be_positive = 2
    amount_too_large = 3
    units_invalid = 4
    items_invalid = 5
    validity_invalid = 6
    holder_invalid = 7
    programme_not_found = 8
    fund_not_of_programme = 9
    exceeds_policy = 10
    exists_with_different_fields = 11
    exists = 12
    # The fund (or sub-fund) cannot cover the voucher.
    insufficient_funds = 13
    issuer_key_unavailable = 14
    outside_programme_window = 15


class RegistryResult(IntEnum):
    """Outcomes of registering programmes, policies, funds, providers, terminals and keys."""

    ok = 0
    exists = 1
    exists_with_different_fields = 2
    programme_not_found = 3
    provider_not_found = 4
    terminal_not_found = 5
    key_not_found = 6
    account_invalid = 7
    asset_invalid = 8
    bin_invalid = 9
    text_invalid = 10
    category_invalid = 11
    public_key_invalid = 12
    policy_invalid = 13
    # A policy version may not take effect in the past: redemptions already judged would change meaning.
    valid_from_in_the_past = 14
    state_invalid = 15
    already_revoked = 16
    # A settlement period closes forward only, and not on a day that has not ended.
    close_date_invalid = 17
    window_invalid = 18


class ReversalResult(IntEnum):
    ok = 0
    id_must_not_be_zero = 1
    reason_required = 2
    exists_with_different_redemption = 3
    exists = 4
    redemption_not_found = 5
    # Reservations and voids moved no value; reverse the post instead.
    redemption_not_reversible = 6
    already_reversed = 7
    # The redemption's settlement period is closed: only an adjustment act that references it can correct it.
    period_closed = 8
