"""Transfers: the event, its flags, and pure validation of one event on its own (no ledger state).

A transfer moves `amount` tiyn from `debit_account_id` to `credit_account_id` in one asset. Two-phase
transfers reserve with `PENDING` and resolve with `POST_PENDING` (full or partial) or `VOID_PENDING`; a
pending transfer with a timeout is released by the ledger once its time passes. Post and void events may
leave the accounts, asset and code zero to inherit them from the pending transfer.
"""

import datetime as dt
import uuid
from dataclasses import dataclass
from enum import IntFlag
from typing import NamedTuple

from ledger.accounts import ASSETS, is_integer, user_data_in_range
from ledger.ids import MAX_ID, ZERO_ID
from ledger.limits import (
    AMOUNT_TIYN_MAX,
    CODE_MAX,
    PENDING_TIMEOUT_S_MAX,
    USER_DATA_32_MAX,
    USER_DATA_64_MAX,
)
from ledger.money import Asset
from ledger.results import CreateTransferResult as R


class TransferFlags(IntFlag):
    NONE = 0
    LINKED = 1
    PENDING = 2
    POST_PENDING = 4
    VOID_PENDING = 8
    # With PENDING: closes the debit (credit) account while the reservation stands; a void reopens it.
    CLOSING_DEBIT = 16
    CLOSING_CREDIT = 32
    # Set only by the ledger on the row that releases a pending transfer whose timeout passed.
    EXPIRED = 1 << 15


TRANSFER_FLAGS_CLIENT = (
    TransferFlags.LINKED
    | TransferFlags.PENDING
    | TransferFlags.POST_PENDING
    | TransferFlags.VOID_PENDING
    | TransferFlags.CLOSING_DEBIT
    | TransferFlags.CLOSING_CREDIT
)
# Plain ints for the hot path (IntFlag arithmetic is slow).
_CLIENT_FLAGS = int(TRANSFER_FLAGS_CLIENT)
_LINKED = int(TransferFlags.LINKED)
_PENDING = int(TransferFlags.PENDING)
_POST_PENDING = int(TransferFlags.POST_PENDING)
_VOID_PENDING = int(TransferFlags.VOID_PENDING)
_RESOLVING = int(TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING)
_CLOSING = int(TransferFlags.CLOSING_DEBIT | TransferFlags.CLOSING_CREDIT)
_RESERVED_IDS = frozenset({ZERO_ID.int, MAX_ID.int})  # see ledger.ids.is_reserved_id
_PLAIN_ASSET_TYPES = frozenset({int, Asset})
# Effective dates outside this window are typos, not business days.
EFFECTIVE_DATE_MIN = dt.date(2000, 1, 1)
EFFECTIVE_DATE_MAX = dt.date(2199, 12, 31)


@dataclass(frozen=True, slots=True)
class Transfer:
    """A `create_transfers` event. The id is the client's permanent idempotency key."""

    id: uuid.UUID
    debit_account_id: uuid.UUID
    credit_account_id: uuid.UUID
    amount: int
    asset: int
    code: int
    flags: int = 0
    pending_id: uuid.UUID = ZERO_ID
    timeout_s: int = 0
    user_data_128: uuid.UUID = ZERO_ID
    user_data_64: int = 0
    user_data_32: int = 0
    # The business day the transfer counts for; None means the ledger's business date when it is applied.
    effective_date: dt.date | None = None


class StoredTransfer(NamedTuple):
    """A transfer as the ledger recorded it: inherited fields filled in, with its ledger timestamp.
    A NamedTuple, not a frozen dataclass: the hot path makes one per transfer, and this is 4x cheaper."""

    id: uuid.UUID
    debit_account_id: uuid.UUID
    credit_account_id: uuid.UUID
    amount: int
    asset: int
    code: int
    flags: int
    pending_id: uuid.UUID
    timeout_s: int
    user_data_128: uuid.UUID
    user_data_64: int
    user_data_32: int
    effective_date: dt.date
    timestamp: int


def validate_transfer(event: Transfer) -> R:
    """The first failure of a transfer event on its own, in precedence order, or `ok`."""
    return R.ok if _is_plain_and_valid(event) else first_broken_rule(event)


def first_broken_rule(event: Transfer) -> R:
    """`validate_transfer` without its shortcut for the common case."""
    if not isinstance(event.id, uuid.UUID) or event.id.int in _RESERVED_IDS:
        return R.id_must_not_be_zero
    flags = event.flags
    if not is_integer(flags) or flags & ~_CLIENT_FLAGS:
        return R.flags_reserved
    resolving = flags & _RESOLVING
    if resolving == _RESOLVING or (resolving and flags & _PENDING):
        return R.flags_are_mutually_exclusive
    result = _validate_accounts_and_pending(event, bool(resolving))
    if result is not R.ok:
        return result
    if event.timeout_s != 0 and not flags & _PENDING:
        return R.timeout_reserved_for_pending_transfer
    if type(event.timeout_s) is not int or not 0 <= event.timeout_s <= PENDING_TIMEOUT_S_MAX:
        return R.timeout_too_large
    if flags & _CLOSING and not flags & _PENDING:
        return R.closing_transfer_must_be_pending
    return _validate_amounts_and_data(event, bool(resolving))


def _is_plain_and_valid(event: Transfer) -> bool:
    """The common case in one pass: a single-phase transfer with plain field types that breaks no rule.
    False sends the event through the full checks, which find the first rule broken (if any): this only
    ever answers `ok` for an event they would pass."""
    id_, debit, credit = event.id, event.debit_account_id, event.credit_account_id
    amount, asset, code, day = event.amount, event.asset, event.code, event.effective_date
    return (
        type(id_) is uuid.UUID
        and type(debit) is uuid.UUID
        and type(credit) is uuid.UUID
        and event.flags.__class__ is int
        and event.flags | _LINKED == _LINKED
        and id_.int not in _RESERVED_IDS
        and debit.int != 0
        and credit.int != 0
        and debit.int != credit.int
        and event.pending_id is ZERO_ID
        and event.timeout_s.__class__ is int
        and event.timeout_s == 0
        and amount.__class__ is int
        and 0 < amount <= AMOUNT_TIYN_MAX
        and asset.__class__ in _PLAIN_ASSET_TYPES
        and asset in ASSETS
        and code.__class__ is int
        and 0 < code <= CODE_MAX
        and event.user_data_128 is ZERO_ID
        and event.user_data_64.__class__ is int
        and event.user_data_32.__class__ is int
        and 0 <= event.user_data_64 <= USER_DATA_64_MAX
        and 0 <= event.user_data_32 <= USER_DATA_32_MAX
        and (day is None or (day.__class__ is dt.date and EFFECTIVE_DATE_MIN <= day <= EFFECTIVE_DATE_MAX))
    )


def _validate_accounts_and_pending(event: Transfer, resolving: bool) -> R:
    debit, credit = event.debit_account_id, event.credit_account_id
    if not isinstance(debit, uuid.UUID) or not isinstance(credit, uuid.UUID):
        return (
            R.debit_account_id_must_not_be_zero
            if not isinstance(debit, uuid.UUID)
            else (R.credit_account_id_must_not_be_zero)
        )
    # Compared as ints: a UUID's == is a Python method, and this runs for every event.
    debit_int, credit_int = debit.int, credit.int
    if not resolving:
        if not debit_int:
            return R.debit_account_id_must_not_be_zero
        if not credit_int:
            return R.credit_account_id_must_not_be_zero
    if debit_int == credit_int and debit_int:
        return R.accounts_must_be_different
    if not isinstance(event.pending_id, uuid.UUID):
        return R.pending_id_must_not_be_zero if resolving else R.pending_id_must_be_zero
    pending_int = event.pending_id.int
    if resolving:
        if not pending_int:
            return R.pending_id_must_not_be_zero
        if pending_int == event.id.int:
            return R.pending_id_must_be_different
    elif pending_int:
        return R.pending_id_must_be_zero
    return R.ok


def _validate_amounts_and_data(event: Transfer, resolving: bool) -> R:
    amount = event.amount
    if type(amount) is not int or amount <= 0:
        return R.amount_must_be_positive
    if amount > AMOUNT_TIYN_MAX:
        return R.amount_too_large
    # isinstance checks: 1.0 == 1 would otherwise pass as an asset and reach the database.
    asset, code = event.asset, event.code
    if not is_integer(asset) or (asset not in ASSETS and not (resolving and asset == 0)):
        return R.asset_invalid
    if not is_integer(code) or not 0 <= code <= CODE_MAX or (code == 0 and not resolving):
        return R.code_must_not_be_zero
    if not user_data_in_range(event.user_data_128, event.user_data_64, event.user_data_32):
        return R.user_data_out_of_range
    day = event.effective_date
    if day is not None and (type(day) is not dt.date or not EFFECTIVE_DATE_MIN <= day <= EFFECTIVE_DATE_MAX):
        return R.effective_date_invalid
    return R.ok


def compare_existing_transfer(event: Transfer, existing: StoredTransfer) -> R:
    """`exists` for a faithful retry, else the first field that differs. Fields a post or void left zero
    (inherited from the pending transfer) are not compared."""
    if (event.flags & ~_LINKED) != (existing.flags & ~_LINKED):
        return R.exists_with_different_flags
    if event.pending_id != existing.pending_id:
        return R.exists_with_different_pending_id
    if event.timeout_s != existing.timeout_s:
        return R.exists_with_different_timeout
    if event.debit_account_id not in (existing.debit_account_id, ZERO_ID):
        return R.exists_with_different_debit_account_id
    if event.credit_account_id not in (existing.credit_account_id, ZERO_ID):
        return R.exists_with_different_credit_account_id
    if event.amount != existing.amount:
        return R.exists_with_different_amount
    if event.user_data_128 != existing.user_data_128:
        return R.exists_with_different_user_data_128
    if event.user_data_64 != existing.user_data_64:
        return R.exists_with_different_user_data_64
    if event.user_data_32 != existing.user_data_32:
        return R.exists_with_different_user_data_32
    if event.asset not in (existing.asset, 0):
        return R.exists_with_different_asset
    if event.code not in (existing.code, 0):
        return R.exists_with_different_code
    if event.effective_date is not None and event.effective_date != existing.effective_date:
        return R.exists_with_different_effective_date
    return R.exists


def compare_with_pending(event: Transfer, pending: StoredTransfer) -> R:
    """The first way a post or void event disagrees with the pending transfer it resolves, or `ok`."""
    if not pending.flags & _PENDING:
        return R.pending_transfer_not_pending
    debit, credit = event.debit_account_id.int, event.credit_account_id.int
    if debit and debit != pending.debit_account_id.int:
        return R.pending_transfer_has_different_debit_account_id
    if credit and credit != pending.credit_account_id.int:
        return R.pending_transfer_has_different_credit_account_id
    if event.asset not in (0, pending.asset):
        return R.pending_transfer_has_different_asset
    if event.code not in (0, pending.code):
        return R.pending_transfer_has_different_code
    if event.flags & _POST_PENDING and event.amount > pending.amount:
        return R.exceeds_pending_amount
    if event.flags & _VOID_PENDING and event.amount != pending.amount:
        return R.pending_transfer_has_different_amount
    return R.ok
