"""The replay's rules on one account or one pending transfer, and the error every rule raises.

`ledger.audit.replay` walks the log; the checks here are the ones with long messages, kept apart so the
walk stays readable. Flag values are plain ints: IntFlag arithmetic costs a microsecond per operation, and
the replay runs per entry.
"""

from __future__ import annotations

import uuid
from typing import Final

from ledger.accounts import AccountFlags
from ledger.audit.replay_state import AccountCounters, Books, Pending
from ledger.clock import NANOSECONDS_PER_SECOND
from ledger.transfers import TransferFlags

ZERO_ID: Final = bytes(16)
LINKED: Final = int(TransferFlags.LINKED)
PENDING: Final = int(TransferFlags.PENDING)
POST: Final = int(TransferFlags.POST_PENDING)
VOID: Final = int(TransferFlags.VOID_PENDING)
CLOSING_DEBIT: Final = int(TransferFlags.CLOSING_DEBIT)
CLOSING_CREDIT: Final = int(TransferFlags.CLOSING_CREDIT)
EXPIRED: Final = int(TransferFlags.EXPIRED)
TRANSFER_FLAGS_KNOWN: Final = LINKED | PENDING | POST | VOID | CLOSING_DEBIT | CLOSING_CREDIT | EXPIRED
ACCOUNT_LINKED: Final = int(AccountFlags.LINKED)
DEBITS_LIMITED: Final = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
CREDITS_LIMITED: Final = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
LIMITED: Final = DEBITS_LIMITED | CREDITS_LIMITED
CLOSED: Final = int(AccountFlags.CLOSED)
NOT_SINGLE_PHASE: Final = ~LINKED  # any flag but LINKED sends a transfer to the two-phase path

TransferFields = tuple[bytes, bytes, bytes, int, int, int, bytes, int, int]
"""What replay reads of a transfer event: id, debit, credit, amount, asset, flags, pending_id, timeout_s,
timestamp."""


class ReplayError(Exception):
    """The first entry that breaks a ledger rule; `index` is None for a whole-log check at `finish`."""

    def __init__(self, index: int | None, message: str) -> None:
        super().__init__(message if index is None else f"entry {index}: {message}")
        self.index = index
        self.message = message


def check_limits(
    index: int,
    timestamp: int,
    debit_id: bytes,
    debit: AccountCounters,
    credit_id: bytes,
    credit: AccountCounters,
) -> None:
    """After a transfer: each balance-limited side is within its limit, and its timestamps increase.

    Unrolled for the two sides, with the passing case first: the replay calls this for most entries of
    a voucher ledger, whose vouchers are all limited."""
    if debit.flags & LIMITED:
        if not _within_limits(debit, timestamp):
            _raise_limit_broken(index, timestamp, debit_id, debit)
        debit.last_timestamp = timestamp
    if credit.flags & LIMITED:
        if not _within_limits(credit, timestamp):
            _raise_limit_broken(index, timestamp, credit_id, credit)
        credit.last_timestamp = timestamp


def _within_limits(account: AccountCounters, timestamp: int) -> bool:
    flags = account.flags
    return not (
        (flags & DEBITS_LIMITED and account.debits_pending + account.debits_posted > account.credits_posted)
        or (
            flags & CREDITS_LIMITED
            and account.credits_pending + account.credits_posted > account.debits_posted
        )
        or timestamp <= account.last_timestamp
    )


def _raise_limit_broken(index: int, timestamp: int, account_id: bytes, account: AccountCounters) -> None:
    debits = account.debits_pending + account.debits_posted
    if account.flags & DEBITS_LIMITED and debits > account.credits_posted:
        raise ReplayError(
            index,
            f"account {uuid_text(account_id)} breaks debits_must_not_exceed_credits: debits pending + posted"
            f" {debits} > credits posted {account.credits_posted}",
        )
    credits = account.credits_pending + account.credits_posted
    if account.flags & CREDITS_LIMITED and credits > account.debits_posted:
        raise ReplayError(
            index,
            f"account {uuid_text(account_id)} breaks credits_must_not_exceed_debits: credits pending + posted"
            f" {credits} > debits posted {account.debits_posted}",
        )
    raise ReplayError(
        index,
        f"ledger timestamp {timestamp} is not after {account.last_timestamp}, the previous one of"
        f" balance-limited account {uuid_text(account_id)}",
    )


def check_timeout(index: int, what: str, pending: Pending, timestamp: int, *, expiry: bool) -> None:
    # As ledger/batches.py decides: a pending transfer is expired from timestamp + timeout on.
    if not pending.timeout_s:
        if expiry:
            raise ReplayError(index, "expiry of a pending transfer that has no timeout")
        return
    deadline = pending.timestamp + pending.timeout_s * NANOSECONDS_PER_SECOND
    if expiry and timestamp < deadline:
        raise ReplayError(
            index, f"expiry at {timestamp}, before the pending transfer's timeout at {deadline}"
        )
    if not expiry and timestamp >= deadline:
        raise ReplayError(index, f"{what} at {timestamp}, after the pending transfer timed out at {deadline}")


def two_phase(
    books: Books, index: int, fields: TransferFields, debit: AccountCounters, credit: AccountCounters
) -> None:
    """A pending transfer, or the post, void or expiry of one: its flags, then reserve or resolve."""
    flags, pending_id, timeout_s = fields[5], fields[6], fields[7]
    phase = flags & (PENDING | POST | VOID)
    if flags & ~TRANSFER_FLAGS_KNOWN:
        raise ReplayError(index, f"flags 0x{flags:x} hold unknown bits")
    if phase == PENDING and not flags & EXPIRED:
        if pending_id != ZERO_ID:
            raise ReplayError(index, "a pending transfer names a pending id")
        _reserve(books, index, fields, debit, credit)
    elif phase in (POST, VOID) and not flags & (CLOSING_DEBIT | CLOSING_CREDIT):
        if flags & EXPIRED and phase != VOID:
            raise ReplayError(index, "only a void can carry the expired flag")
        if timeout_s:
            raise ReplayError(index, f"a {resolution_name(flags)} carries a timeout ({timeout_s} s)")
        _resolve(books, index, fields, debit, credit)
    elif phase == 0 and not flags & ~LINKED:
        what = "a timeout" if timeout_s else f"pending id {uuid_text(pending_id)}"
        raise ReplayError(index, f"a single-phase transfer carries {what}")
    else:
        raise ReplayError(index, f"flags 0x{flags:x} are not a valid combination")


def _reserve(
    books: Books, index: int, fields: TransferFields, debit: AccountCounters, credit: AccountCounters
) -> None:
    transfer_id, debit_id, credit_id, amount, asset, flags, _, timeout_s, timestamp = fields
    if (debit.flags | credit.flags) & CLOSED:
        raise ReplayError(
            index, f"pending transfer on a closed account: {closed_side(debit_id, debit, credit_id)}"
        )
    debit.debits_pending += amount
    credit.credits_pending += amount
    if flags & CLOSING_DEBIT:
        debit.flags |= CLOSED
    if flags & CLOSING_CREDIT:
        credit.flags |= CLOSED
    books.pending[transfer_id] = Pending(debit_id, credit_id, amount, flags, asset, timestamp, timeout_s)


def _resolve(
    books: Books, index: int, fields: TransferFields, debit: AccountCounters, credit: AccountCounters
) -> None:
    _, debit_id, credit_id, amount, _, flags, pending_id, _, timestamp = fields
    what = resolution_name(flags)
    pending = books.pending.pop(pending_id, None)
    if pending is None:
        raise ReplayError(index, _unresolvable(books, what, pending_id))
    if (debit_id, credit_id) != (pending.debit, pending.credit):
        raise ReplayError(index, f"{what} of {uuid_text(pending_id)} is on other accounts than the pending")
    check_timeout(index, what, pending, timestamp, expiry=bool(flags & EXPIRED))
    if flags & POST and amount > pending.amount:
        raise ReplayError(index, f"post amount {amount} exceeds the pending amount {pending.amount}")
    if flags & VOID and amount != pending.amount:
        raise ReplayError(index, f"{what} amount {amount} differs from the pending amount {pending.amount}")
    # Posting moves money into or out of a closed account: refused (unless this pending closed it). A
    # void or expiry only gives a reservation back, so it is allowed (as ledger/batches.py decides).
    if flags & POST and (
        (debit.flags & CLOSED and not pending.flags & CLOSING_DEBIT)
        or (credit.flags & CLOSED and not pending.flags & CLOSING_CREDIT)
    ):
        side = fields[1] if debit.flags & CLOSED and not pending.flags & CLOSING_DEBIT else fields[2]
        raise ReplayError(index, f"{what} on a closed account: {uuid_text(side)}")
    debit.debits_pending -= pending.amount
    credit.credits_pending -= pending.amount
    if debit.debits_pending < 0 or credit.credits_pending < 0:
        raise ReplayError(index, f"{what} of {uuid_text(pending_id)} leaves a pending counter below zero")
    if flags & POST:
        debit.debits_posted += amount
        credit.credits_posted += amount
    else:
        if pending.flags & CLOSING_DEBIT:
            debit.flags &= ~CLOSED
        if pending.flags & CLOSING_CREDIT:
            credit.flags &= ~CLOSED
    books.resolved[pending_id] = (flags, index)


def _unresolvable(books: Books, what: str, pending_id: bytes) -> str:
    resolution = books.resolved.get(pending_id)
    if resolution is not None:
        flags, at = resolution
        earlier = f"a {resolution_name(flags)} at entry {at}"
        return f"{what} of {uuid_text(pending_id)}, already resolved by {earlier}"
    if pending_id in books.transfer_ids:
        return f"{what} of {uuid_text(pending_id)}, which is not a pending transfer"
    return f"{what} of unknown pending transfer {uuid_text(pending_id)}"


def resolution_name(flags: int) -> str:
    if flags & EXPIRED:
        return "expiry"
    return "post" if flags & POST else "void"


def closed_side(debit_id: bytes, debit: AccountCounters, credit_id: bytes) -> str:
    """The closed one of a transfer's two accounts, for a message."""
    return uuid_text(debit_id if debit.flags & CLOSED else credit_id)


def uuid_text(data: bytes) -> str:
    return str(uuid.UUID(bytes=data))
