"""Result codes, one per event, declared in precedence order: validation reports the first that applies.

Values are stable and never reused (they are stored for failed ids and exported to auditors); new codes are
appended with new values even where they sit earlier in precedence. `ok` is the only success; `exists` means
the same event was already applied with the same fields, so a retry is safe.
"""

from enum import IntEnum


class CreateAccountResult(IntEnum):
    ok = 0
    linked_event_failed = 1
    linked_event_chain_open = 2
    id_must_not_be_zero = 3
    flags_reserved = 4
    flags_are_mutually_exclusive = 5
    asset_invalid = 6
    code_invalid = 7
    user_data_out_of_range = 8
    exists_with_different_flags = 9
    exists_with_different_user_data_128 = 10
    exists_with_different_user_data_64 = 11
    exists_with_different_user_data_32 = 12
    exists_with_different_asset = 13
    exists_with_different_code = 14
    exists = 15


class CreateTransferResult(IntEnum):
    ok = 0
    linked_event_failed = 1
    linked_event_chain_open = 2
    id_must_not_be_zero = 3
    flags_reserved = 4
    flags_are_mutually_exclusive = 5
    debit_account_id_must_not_be_zero = 6
    credit_account_id_must_not_be_zero = 7
    accounts_must_be_different = 8
    pending_id_must_be_zero = 9
    pending_id_must_not_be_zero = 10
    pending_id_must_be_different = 11
    timeout_reserved_for_pending_transfer = 12
    timeout_too_large = 13
    closing_transfer_must_be_pending = 14
    amount_must_be_positive = 15
    amount_too_large = 16
    asset_invalid = 17
    code_must_not_be_zero = 18
    user_data_out_of_range = 19
    effective_date_invalid = 20
    exists_with_different_flags = 21
    exists_with_different_pending_id = 22
    exists_with_different_timeout = 23
    exists_with_different_debit_account_id = 24
    exists_with_different_credit_account_id = 25
    exists_with_different_amount = 26
    exists_with_different_user_data_128 = 27
    exists_with_different_user_data_64 = 28
    exists_with_different_user_data_32 = 29
    exists_with_different_asset = 30
    exists_with_different_code = 31
    exists_with_different_effective_date = 32
    exists = 33
    # The id's first attempt failed for a reason that depended on ledger state; it stays failed, so a
    # client retrying an old request can never have it succeed later by surprise.
    id_already_failed = 34
    pending_transfer_not_found = 35
    pending_transfer_not_pending = 36
    pending_transfer_has_different_debit_account_id = 37
    pending_transfer_has_different_credit_account_id = 38
    pending_transfer_has_different_asset = 39
    pending_transfer_has_different_code = 40
    exceeds_pending_amount = 41
    # A void releases the whole reservation; its amount, if given, must be the pending amount.
    pending_transfer_has_different_amount = 42
    pending_transfer_already_posted = 43
    pending_transfer_already_voided = 44
    pending_transfer_expired = 45
    account_not_found = 46
    # The two accounts, or an account and the transfer, are in different assets (KZT vs digital KZT).
    different_assets = 47
    account_closed = 48
    # The debit account is a voucher, and the credit account is neither its fund nor the receivable of a
    # provider its programme's policy in force allows: voucher value is purpose-bound and non-cashable.
    voucher_credit_not_allowed = 53
    overflows_debits = 49
    overflows_credits = 50
    # The debit account has `debits_must_not_exceed_credits` and pending + posted debits would pass credits.
    exceeds_credits = 51
    # The credit account has `credits_must_not_exceed_debits` and pending + posted credits would pass debits.
    exceeds_debits = 52


# Failures that depend on the ledger's state at the time, not on the event alone. Their ids are recorded
# so a retry of the same id answers `id_already_failed` instead of succeeding later.
TRANSIENT_TRANSFER_RESULTS = frozenset(
    {
        CreateTransferResult.pending_transfer_not_found,
        CreateTransferResult.account_not_found,
        CreateTransferResult.account_closed,
        CreateTransferResult.voucher_credit_not_allowed,
        CreateTransferResult.overflows_debits,
        CreateTransferResult.overflows_credits,
        CreateTransferResult.exceeds_credits,
        CreateTransferResult.exceeds_debits,
    }
)


def is_transient(result: CreateTransferResult) -> bool:
    """True when the failure came from ledger state, so the id is remembered as failed."""
    return result in TRANSIENT_TRANSFER_RESULTS
