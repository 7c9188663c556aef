"""What a transfer is for: its `code`. One enumeration for every layer, so a transfer read back from the
ledger or the audit log says why it moved money. Values are stable and never reused."""

from enum import IntEnum


class TransferCode(IntEnum):
    # Budget (or the National Bank's issuance account) → programme fund, after approval.
    FUND = 1
    # Programme fund → a region's sub-fund (akimat).
    ALLOCATE = 2
    # Fund → voucher: the citizen's entitlement (pending while an offer awaits consent).
    ISSUE = 3
    # Voucher → provider receivable: a service rendered (pending while a pharmacy reserves).
    REDEEM = 4
    # Voucher → its fund: what is left after expiry, revocation or a declined offer.
    RETURN = 5
    # Provider receivable → clearing: an approved act being paid.
    PAYOUT_CLEARING = 6
    # Clearing → provider bank account: the payment order executed.
    PAYOUT_BANK = 7
    # Provider receivable → voucher: a redemption reversed before its period closed.
    REVERSAL = 8
    # Programme fund → budget: what is unspent when a programme closes.
    CLOSE_RETURN = 9
    # Sub-fund → programme fund: a regional allocation taken back.
    DEALLOCATE = 10
    # Anything else an operator records (tests, opening balances).
    OPERATOR = 99
