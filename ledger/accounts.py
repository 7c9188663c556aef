"""Accounts: what an account is, its flags and types, and the pure validation of `create_accounts` events.

An account holds four counters (TigerBeetle's model): `debits_pending`, `debits_posted`, `credits_pending`,
`credits_posted`. A balance-limit flag counts pending debits (or credits) too, so a reservation can never be
spent twice. The account's `code` is its type, which later rules (non-cashable vouchers) read.
"""

import uuid
from dataclasses import dataclass
from enum import IntEnum, IntFlag

from ledger.ids import ZERO_ID, is_reserved_id
from ledger.limits import USER_DATA_32_MAX, USER_DATA_64_MAX
from ledger.money import Asset
from ledger.results import CreateAccountResult


class AccountFlags(IntFlag):
    NONE = 0
    # Links this event to the next: the chain commits or fails as a whole.
    LINKED = 1
    # Pending + posted debits may never pass posted credits: the account cannot go negative.
    DEBITS_MUST_NOT_EXCEED_CREDITS = 2
    # Pending + posted credits may never pass posted debits.
    CREDITS_MUST_NOT_EXCEED_DEBITS = 4
    # State, set only by the ledger (a pending transfer with a closing flag): no further transfers.
    CLOSED = 8


ACCOUNT_FLAGS_CLIENT = (
    AccountFlags.LINKED
    | AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
)


class AccountType(IntEnum):
    """The account's `code`: what the money in it is for."""

    TREASURY_BUDGET = 1  # the republican or local budget line money comes from
    CENTRAL_BANK_ISSUANCE = 2  # the National Bank's issuance account (digital KZT only)
    PROGRAMME_FUND = 3  # a support programme's fund
    REGIONAL_FUND = 4  # a region's (akimat's) sub-fund of a national programme
    VOUCHER = 5  # one citizen's voucher: purpose-bound, non-cashable
    PROVIDER_RECEIVABLE = 6  # what the state owes a provider for services rendered
    CLEARING = 7  # transit account between receivable and payout
    PROVIDER_BANK = 8  # the provider's bank account (payout destination)
    OPERATOR = 9  # anything else the operator needs (tests, corrections)


ACCOUNT_TYPES = frozenset(int(member) for member in AccountType)
ASSETS = frozenset(int(member) for member in Asset)


@dataclass(frozen=True, slots=True)
class Account:
    """A `create_accounts` event."""

    id: uuid.UUID
    asset: int
    code: int
    flags: int = 0
    user_data_128: uuid.UUID = ZERO_ID
    user_data_64: int = 0
    user_data_32: int = 0


@dataclass(frozen=True, slots=True)
class AccountBalance:
    """An account as stored: its event fields, counters and the ledger timestamp of its creation."""

    id: uuid.UUID
    asset: int
    code: int
    flags: int
    user_data_128: uuid.UUID
    user_data_64: int
    user_data_32: int
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    timestamp: int

    @property
    def balance_tiyn(self) -> int:
        """Posted credits minus posted debits: what a holder of a credit-normal account has."""
        return self.credits_posted - self.debits_posted

    @property
    def available_tiyn(self) -> int:
        """Posted credits minus posted and pending debits: what can still be spent."""
        return self.credits_posted - self.debits_posted - self.debits_pending


def validate_account(event: Account) -> CreateAccountResult:
    """The first validation failure of an account event on its own, or `ok`."""
    if not isinstance(event.id, uuid.UUID) or is_reserved_id(event.id):
        return CreateAccountResult.id_must_not_be_zero
    if not is_integer(event.flags) or event.flags & ~int(ACCOUNT_FLAGS_CLIENT):
        return CreateAccountResult.flags_reserved
    both_limits = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
    if event.flags & both_limits == both_limits:
        return CreateAccountResult.flags_are_mutually_exclusive
    if not is_integer(event.asset) or event.asset not in ASSETS:
        return CreateAccountResult.asset_invalid
    if not is_integer(event.code) or event.code not in ACCOUNT_TYPES:
        return CreateAccountResult.code_invalid
    if not user_data_in_range(event.user_data_128, event.user_data_64, event.user_data_32):
        return CreateAccountResult.user_data_out_of_range
    return CreateAccountResult.ok


def compare_existing_account(event: Account, existing: AccountBalance) -> CreateAccountResult:
    """`exists` when a retry carries the same fields, else the first field that differs."""
    if (event.flags & ~AccountFlags.LINKED) != (
        existing.flags & ~(AccountFlags.LINKED | AccountFlags.CLOSED)
    ):
        return CreateAccountResult.exists_with_different_flags
    if event.user_data_128 != existing.user_data_128:
        return CreateAccountResult.exists_with_different_user_data_128
    if event.user_data_64 != existing.user_data_64:
        return CreateAccountResult.exists_with_different_user_data_64
    if event.user_data_32 != existing.user_data_32:
        return CreateAccountResult.exists_with_different_user_data_32
    if event.asset != existing.asset:
        return CreateAccountResult.exists_with_different_asset
    if event.code != existing.code:
        return CreateAccountResult.exists_with_different_code
    return CreateAccountResult.exists


def is_integer(value: object) -> bool:
    """An int or an IntEnum member, but not a bool (True would pass as asset 1) nor a float (1.0 == 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def user_data_in_range(user_data_128: object, user_data_64: object, user_data_32: object) -> bool:
    return (
        isinstance(user_data_128, uuid.UUID)
        and type(user_data_64) is int
        and type(user_data_32) is int
        and 0 <= user_data_64 <= USER_DATA_64_MAX
        and 0 <= user_data_32 <= USER_DATA_32_MAX
    )
