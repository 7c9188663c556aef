"""A `create_transfers` request, decided in memory: validate → linked chains → apply → one result per event.

The store has already locked every account the batch can touch (in id order) and loaded what the batch
needs: those accounts, stored transfers with the batch's ids or its pending ids, how those pendings were
resolved, and ids that failed before. `TransferBatch.run` then decides each event in order, exactly as a
sequential ledger would, and returns the rows to write. Nothing here touches the database, so the same code
is the reference the tests compare against and the hot path's decision engine.
"""

import datetime as dt
import uuid
from dataclasses import dataclass, field

from ledger.accounts import AccountFlags, AccountType
from ledger.clock import NANOSECONDS_PER_SECOND
from ledger.limits import COUNTER_TIYN_MAX
from ledger.results import TRANSIENT_TRANSFER_RESULTS
from ledger.results import CreateTransferResult as R
from ledger.transfers import (
    StoredTransfer,
    Transfer,
    TransferFlags,
    compare_existing_transfer,
    validate_transfer,
)
from ledger.vouchers.spend_rules import VoucherSpendRules

# Plain ints: IntFlag arithmetic costs a microsecond per operation on the hot path.
_LINKED = int(TransferFlags.LINKED)
_PENDING = int(TransferFlags.PENDING)
_POST = int(TransferFlags.POST_PENDING)
_VOID = int(TransferFlags.VOID_PENDING)
_EXPIRED = int(TransferFlags.EXPIRED)
_CLOSING_DEBIT = int(TransferFlags.CLOSING_DEBIT)
_CLOSING_CREDIT = int(TransferFlags.CLOSING_CREDIT)
_CLOSED = int(AccountFlags.CLOSED)
_DEBITS_LIMITED = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
_CREDITS_LIMITED = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
_VOUCHER = int(AccountType.VOUCHER)
_OK = R.ok
_EXISTS = R.exists

# A fixed namespace makes the id of the row that releases an expired pending transfer a function of the
# pending id, so two integrators racing to expire it would collide on the primary key, not double-release.
EXPIRY_ID_NAMESPACE = uuid.UUID("6d1e3a52-43f5-4c4f-9a07-3c2f6f6b1a10")


class AccountState:
    """An account's working copy during a batch. Accounts with a balance-limit flag were read under lock,
    so their counters are current; for the others only identity, asset and the closed flag matter, and
    the batch writes what it changed as deltas (`changes`). A plain slotted class: one is built per
    account per batch, and a dataclass constructor costs three times as much."""

    __slots__ = (
        "asset",
        "code",
        "credits_pending",
        "credits_posted",
        "debits_pending",
        "debits_posted",
        "flags",
        "id",
        "initial",
    )

    def __init__(self, row: tuple[uuid.UUID, int, int, int, int, int, int, int]) -> None:
        """Row: id, asset, code, flags, debits_pending, debits_posted, credits_pending, credits_posted."""
        (
            self.id,
            self.asset,
            self.code,
            self.flags,
            self.debits_pending,
            self.debits_posted,
            self.credits_pending,
            self.credits_posted,
        ) = row
        self.initial = (row[4], row[5], row[6], row[7], row[3])

    def changes(self) -> tuple[int, int, int, int, int, int]:
        """Deltas of (debits_pending, debits_posted, credits_pending, credits_posted), flags set, cleared."""
        before = self.initial
        return (
            self.debits_pending - before[0],
            self.debits_posted - before[1],
            self.credits_pending - before[2],
            self.credits_posted - before[3],
            self.flags & ~before[4],
            before[4] & ~self.flags,
        )

    def counters(self) -> tuple[int, int, int, int, int]:
        return (
            self.debits_pending,
            self.debits_posted,
            self.credits_pending,
            self.credits_posted,
            self.flags,
        )

    def restore(self, saved: tuple[int, int, int, int, int]) -> None:
        (self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted, self.flags) = (
            saved
        )


@dataclass(slots=True)
class TransferBatch:
    """One request's view of the ledger and what it decides to write."""

    accounts: dict[uuid.UUID, AccountState]
    # Stored transfers whose id is an event id or a pending id of this batch; grows with this batch's rows.
    transfers: dict[uuid.UUID, StoredTransfer]
    # pending id -> flags of the row that resolved it (post, void, or void|expired).
    resolutions: dict[uuid.UUID, int]
    # ids whose first attempt failed on ledger state -> that result.
    failed: dict[uuid.UUID, int]
    first_timestamp: int
    business_date: dt.date
    inserted: list[StoredTransfer] = field(default_factory=list)
    new_failures: list[tuple[uuid.UUID, int]] = field(default_factory=list)
    new_timeouts: list[tuple[uuid.UUID, int]] = field(default_factory=list)
    # Loaded only when the batch debits a voucher account (see ledger.vouchers.spend_rules).
    spend_rules: VoucherSpendRules | None = None
    # Undo journal of the linked chain in progress: (account, counters before); None outside chains.
    _journal: list[tuple[AccountState, tuple[int, int, int, int, int]]] | None = None

    def expire(self, pending_ids: list[uuid.UUID]) -> int:
        """Release pending transfers whose timeout has passed; returns how many timestamps it used."""
        used = 0
        for pending_id in pending_ids:
            pending = self.transfers.get(pending_id)
            if pending is None or pending_id in self.resolutions:
                continue  # already posted or voided: the timeout row is just garbage now
            timestamp = self.first_timestamp + used
            used += 1
            debit = self.accounts[pending.debit_account_id]
            credit = self.accounts[pending.credit_account_id]
            self._release(pending, debit, credit)
            self._reopen(pending, debit, credit)
            self._append_row(
                StoredTransfer(
                    id=uuid.uuid5(EXPIRY_ID_NAMESPACE, str(pending_id)),
                    debit_account_id=pending.debit_account_id,
                    credit_account_id=pending.credit_account_id,
                    amount=pending.amount,
                    asset=pending.asset,
                    code=pending.code,
                    flags=_VOID | _EXPIRED,
                    pending_id=pending_id,
                    timeout_s=0,
                    user_data_128=pending.user_data_128,
                    user_data_64=pending.user_data_64,
                    user_data_32=pending.user_data_32,
                    effective_date=self.business_date,
                    timestamp=timestamp,
                )
            )
            self.resolutions[pending_id] = _VOID | _EXPIRED
        return used

    def run(self, events: list[Transfer], timestamp_offset: int = 0) -> list[R]:
        """Decide every event in order; linked chains succeed or fail as a whole."""
        results: list[R] = [_OK] * len(events)
        base = self.first_timestamp + timestamp_offset
        count = len(events)
        index = 0
        while index < count:
            end = index
            while end < count and _is_linked(events[end].flags):
                end += 1
            if end == index:  # the common case: a single event, decided before anything is mutated
                results[index] = self._apply(events[index], base + index)
                index += 1
                continue
            self._run_chain(events, index, end, base, results)
            index = end + 1
        return results

    def _run_chain(self, events: list[Transfer], start: int, end: int, base: int, results: list[R]) -> None:
        """Events start..end (end is the first without LINKED, or len(events) if the chain is open)."""
        chain_open = end == len(events)
        last = end - 1 if chain_open else end
        marks = (len(self.inserted), len(self.new_timeouts))
        resolutions_before = dict(self.resolutions)
        self._journal = []
        failed_at, failure = -1, _OK
        for position in range(start, last + 1):
            if chain_open and position == last:
                failed_at, failure = position, R.linked_event_chain_open
                break
            result = self._apply(events[position], base + position)
            results[position] = result
            if result is not _OK and result is not _EXISTS:
                failed_at, failure = position, result
                break
        journal, self._journal = self._journal, None
        if failed_at < 0:
            return
        for account, saved in reversed(journal):
            account.restore(saved)
        for row in self.inserted[marks[0] :]:
            del self.transfers[row.id]
        del self.inserted[marks[0] :]
        del self.new_timeouts[marks[1] :]
        self.resolutions = resolutions_before
        for position in range(start, last + 1):
            results[position] = R.linked_event_failed
        results[failed_at] = failure

    def _apply(self, event: Transfer, timestamp: int) -> R:
        result = validate_transfer(event)
        if result is not _OK:
            return result
        existing = self.transfers.get(event.id)
        if existing is not None:
            return compare_existing_transfer(event, existing)
        if event.id in self.failed:
            return R.id_already_failed
        if event.flags & (_POST | _VOID):
            result = self._post_or_void(event, timestamp)
        else:
            result = self._create(event, timestamp)
        if result in TRANSIENT_TRANSFER_RESULTS:
            self.failed[event.id] = int(result)
            self.new_failures.append((event.id, int(result)))
        return result

    def _create(self, event: Transfer, timestamp: int) -> R:
        debit = self.accounts.get(event.debit_account_id)
        credit = self.accounts.get(event.credit_account_id)
        if debit is None or credit is None:
            return R.account_not_found
        if debit.asset != credit.asset or event.asset != debit.asset:
            return R.different_assets
        if debit.flags & _CLOSED or credit.flags & _CLOSED:
            return R.account_closed
        if debit.code == _VOUCHER and (
            self.spend_rules is None or not self.spend_rules.allows(debit.id, credit.id, timestamp)
        ):
            return R.voucher_credit_not_allowed
        amount = event.amount
        pending = event.flags & _PENDING
        if debit.debits_pending + debit.debits_posted + amount > COUNTER_TIYN_MAX:
            return R.overflows_debits
        if credit.credits_pending + credit.credits_posted + amount > COUNTER_TIYN_MAX:
            return R.overflows_credits
        if debit.flags & _DEBITS_LIMITED and (
            debit.debits_pending + debit.debits_posted + amount > debit.credits_posted
        ):
            return R.exceeds_credits
        if credit.flags & _CREDITS_LIMITED and (
            credit.credits_pending + credit.credits_posted + amount > credit.debits_posted
        ):
            return R.exceeds_debits
        journal = self._journal
        if journal is not None:
            journal.append((debit, debit.counters()))
            journal.append((credit, credit.counters()))
        if pending:
            debit.debits_pending += amount
            credit.credits_pending += amount
            if event.flags & _CLOSING_DEBIT:
                debit.flags |= _CLOSED
            if event.flags & _CLOSING_CREDIT:
                credit.flags |= _CLOSED
            if event.timeout_s:
                self.new_timeouts.append((event.id, timestamp + event.timeout_s * NANOSECONDS_PER_SECOND))
        else:
            debit.debits_posted += amount
            credit.credits_posted += amount
        self._append_row(self._stored(event, event.debit_account_id, event.credit_account_id, timestamp))
        return _OK

    def _post_or_void(self, event: Transfer, timestamp: int) -> R:
        pending = self.transfers.get(event.pending_id)
        if pending is None:
            return R.pending_transfer_not_found
        result = _check_against_pending(event, pending)
        if result is not _OK:
            return result
        resolution = self.resolutions.get(pending.id)
        if resolution is not None:
            if resolution & _EXPIRED:
                return R.pending_transfer_expired
            return (
                R.pending_transfer_already_posted if resolution & _POST else R.pending_transfer_already_voided
            )
        if pending.timeout_s and pending.timestamp + pending.timeout_s * NANOSECONDS_PER_SECOND <= timestamp:
            return R.pending_transfer_expired
        debit = self.accounts[pending.debit_account_id]
        credit = self.accounts[pending.credit_account_id]
        # Posting moves money into or out of a closed account: refused. Voiding only gives back a
        # reservation made before the account closed, so a closed account never strands one.
        if event.flags & _POST and (
            (debit.flags & _CLOSED and not pending.flags & _CLOSING_DEBIT)
            or (credit.flags & _CLOSED and not pending.flags & _CLOSING_CREDIT)
        ):
            return R.account_closed
        journal = self._journal
        if journal is not None:
            journal.append((debit, debit.counters()))
            journal.append((credit, credit.counters()))
        self._release(pending, debit, credit)
        if event.flags & _POST:
            debit.debits_posted += event.amount
            credit.credits_posted += event.amount
        else:
            self._reopen(pending, debit, credit)
        self.resolutions[pending.id] = int(event.flags)
        self._append_row(
            self._stored(event, pending.debit_account_id, pending.credit_account_id, timestamp, pending)
        )
        return _OK

    def _release(self, pending: StoredTransfer, debit: AccountState, credit: AccountState) -> None:
        debit.debits_pending -= pending.amount
        credit.credits_pending -= pending.amount
        assert debit.debits_pending >= 0 and credit.credits_pending >= 0, "released more than was pending"

    @staticmethod
    def _reopen(pending: StoredTransfer, debit: AccountState, credit: AccountState) -> None:
        if pending.flags & _CLOSING_DEBIT:
            debit.flags &= ~_CLOSED
        if pending.flags & _CLOSING_CREDIT:
            credit.flags &= ~_CLOSED

    def _stored(
        self,
        event: Transfer,
        debit_account_id: uuid.UUID,
        credit_account_id: uuid.UUID,
        timestamp: int,
        pending: StoredTransfer | None = None,
    ) -> StoredTransfer:
        return StoredTransfer(
            id=event.id,
            debit_account_id=debit_account_id,
            credit_account_id=credit_account_id,
            amount=event.amount,
            asset=pending.asset if pending is not None else event.asset,
            code=event.code or (pending.code if pending is not None else 0),
            flags=int(event.flags),
            pending_id=event.pending_id,
            timeout_s=event.timeout_s,
            user_data_128=event.user_data_128,
            user_data_64=event.user_data_64,
            user_data_32=event.user_data_32,
            effective_date=event.effective_date or self.business_date,
            timestamp=timestamp,
        )

    def _append_row(self, row: StoredTransfer) -> None:
        self.inserted.append(row)
        self.transfers[row.id] = row

    def touched_accounts(self) -> list[tuple[uuid.UUID, int]]:
        """(account, asset of the rows that move it) for every account the written rows move, in id order.
        Derived from the rows, so a rolled-back chain's accounts are not rewritten with zero deltas. Rows
        that disagree on an account's asset give asset 0, which the database refuses (it never happens
        unless the decision is wrong, and the database is what must not trust that)."""
        assets: dict[uuid.UUID, int] = {}
        for row in self.inserted:
            for account_id in (row.debit_account_id, row.credit_account_id):
                if assets.setdefault(account_id, row.asset) != row.asset:
                    assets[account_id] = 0
        return sorted(assets.items())


def _is_linked(flags: object) -> bool:
    return isinstance(flags, int) and bool(flags & _LINKED)


def _check_against_pending(event: Transfer, pending: StoredTransfer) -> R:
    if not pending.flags & _PENDING:
        return R.pending_transfer_not_pending
    zero = uuid.UUID(int=0)
    if event.debit_account_id not in (zero, pending.debit_account_id):
        return R.pending_transfer_has_different_debit_account_id
    if event.credit_account_id not in (zero, pending.credit_account_id):
        return R.pending_transfer_has_different_credit_account_id
    if event.asset not in (0, pending.asset):
        return R.pending_transfer_has_different_asset
    if event.code not in (0, pending.code):
        return R.pending_transfer_has_different_code
    if event.flags & _POST and event.amount > pending.amount:
        return R.exceeds_pending_amount
    if event.flags & _VOID and event.amount != pending.amount:
        return R.pending_transfer_has_different_amount
    return _OK
