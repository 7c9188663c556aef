"""A `create_transfers` request, decided in memory: validate → linked chains → apply → one result per event.

The store has locked every account with a balance limit (in id order) and loaded what the batch needs:
the accounts, stored transfers with the batch's ids or its pending ids, how those pendings were resolved,
and ids that failed before. `TransferBatch.run` decides each event in order, exactly as a sequential
ledger would, and returns the rows to write. Nothing here touches the database. Ids are keyed by their
128-bit integer (`UUID.int`): hashing or comparing a `UUID` runs Python code, an int's does not.
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
    compare_with_pending,
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
# A NamedTuple's own constructor is a Python function; this builds the same tuple in C (4x cheaper).
_new_row = tuple.__new__

# A fixed namespace makes the id of the row that releases an expired pending transfer a function of the
# pending id, so two integrators racing to expire it would collide on the primary key, not double-release.
EXPIRY_ID_NAMESPACE = uuid.UUID("6d1e3a52-43f5-4c4f-9a07-3c2f6f6b1a10")


class AccountState:
    """An account's working copy during a batch. Accounts with a balance-limit flag were read under lock,
    so their counters are current; for the others only identity, asset and the closed flag matter, and
    the batch writes what it changed as deltas (`changes`).

    `remembered`: the store knew the account's identity without reading it: open, no limit, counters
    counted from zero (see `TransferBatch.unsure`). A slotted class: a dataclass costs three times more."""

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
        "remembered",
    )

    def __init__(
        self, row: tuple[uuid.UUID, int, int, int, int, int, int, int], remembered: bool = False
    ) -> None:
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
        self.remembered = remembered

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
    """One request's view of the ledger and what it decides to write. Every dict is keyed by `UUID.int`.

    `unsure`: a decision leaned on a remembered account for more than its identity (a refusal that
    `account_closed` would pre-empt, a failed chain that moved one, a release on one); the store decides
    again from a fresh read. Rows written on remembered accounts are safe: `ledger_apply_deltas` refuses
    them if the account was closed meanwhile or would overflow, and the request is retried."""

    accounts: dict[int, AccountState]
    # Stored transfers whose id is an event id or a pending id of this batch; grows with this batch's rows.
    transfers: dict[int, StoredTransfer]
    # pending id -> flags of the row that resolved it (post, void, or void|expired).
    resolutions: dict[int, int]
    # ids whose first attempt failed on ledger state -> that result.
    failed: dict[int, int]
    first_timestamp: int
    business_date: dt.date
    inserted: list[StoredTransfer] = field(default_factory=list)
    new_failures: list[tuple[int, int]] = field(default_factory=list)
    new_timeouts: list[tuple[int, int]] = field(default_factory=list)
    # Loaded only when the batch debits a voucher account (see ledger.vouchers.spend_rules).
    spend_rules: VoucherSpendRules | None = None
    unsure: bool = False
    # Undo journal of the linked chain in progress: (account, counters before); None outside chains.
    _journal: list[tuple[AccountState, tuple[int, int, int, int, int]]] | None = None

    def expire(self, pending_ids: list[int]) -> int:
        """Release pending transfers whose timeout has passed; returns how many timestamps it used."""
        used = 0
        for pending_id in pending_ids:
            pending = self.transfers.get(pending_id)
            if pending is None or pending_id in self.resolutions:
                continue  # already posted or voided: the timeout row is just garbage now
            timestamp = self.first_timestamp + used
            used += 1
            debit = self.accounts[pending.debit_account_id.int]
            credit = self.accounts[pending.credit_account_id.int]
            self._release(pending, debit, credit)
            self._reopen(pending, debit, credit)
            self._append_row(
                pending._replace(
                    id=uuid.uuid5(EXPIRY_ID_NAMESPACE, str(pending.id)),
                    flags=_VOID | _EXPIRED,
                    pending_id=pending.id,
                    timeout_s=0,
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
        apply = self._apply
        while index < count:
            end = index
            while end < count and _is_linked(events[end].flags):
                end += 1
            if end == index:  # the common case: a single event, decided before anything is mutated
                results[index] = apply(events[index], base + index)
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
            if account.remembered:
                self.unsure = True  # had that account been closed, the chain would have failed earlier
        for row in self.inserted[marks[0] :]:
            del self.transfers[row.id.int]
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
        key = event.id.int
        existing = self.transfers.get(key)
        if existing is not None:
            return compare_existing_transfer(event, existing)
        if key in self.failed:
            return R.id_already_failed
        if event.flags & (_POST | _VOID):
            result = self._post_or_void(event, timestamp)
        else:
            result = self._create(event, timestamp)
        if result is not _OK and result in TRANSIENT_TRANSFER_RESULTS:
            self.failed[key] = int(result)
            self.new_failures.append((key, int(result)))
        return result

    def _create(self, event: Transfer, timestamp: int) -> R:
        debit = self.accounts.get(event.debit_account_id.int)
        credit = self.accounts.get(event.credit_account_id.int)
        if debit is None or credit is None:
            return R.account_not_found
        if debit.asset != credit.asset or event.asset != debit.asset:
            return R.different_assets
        if debit.flags & _CLOSED or credit.flags & _CLOSED:
            return R.account_closed
        if debit.code == _VOUCHER and (
            self.spend_rules is None or not self.spend_rules.allows(debit.id, credit.id, timestamp)
        ):
            return self._refuse(R.voucher_credit_not_allowed, debit, credit)
        amount = event.amount
        if debit.debits_pending + debit.debits_posted + amount > COUNTER_TIYN_MAX:
            return self._refuse(R.overflows_debits, debit, credit)
        if credit.credits_pending + credit.credits_posted + amount > COUNTER_TIYN_MAX:
            return self._refuse(R.overflows_credits, debit, credit)
        if debit.flags & _DEBITS_LIMITED and (
            debit.debits_pending + debit.debits_posted + amount > debit.credits_posted
        ):
            return self._refuse(R.exceeds_credits, debit, credit)
        if credit.flags & _CREDITS_LIMITED and (
            credit.credits_pending + credit.credits_posted + amount > credit.debits_posted
        ):
            return self._refuse(R.exceeds_debits, debit, credit)
        journal = self._journal
        if journal is not None:
            journal.append((debit, debit.counters()))
            journal.append((credit, credit.counters()))
        flags = event.flags
        if flags & _PENDING:
            debit.debits_pending += amount
            credit.credits_pending += amount
            if flags & _CLOSING_DEBIT:
                debit.flags |= _CLOSED
            if flags & _CLOSING_CREDIT:
                credit.flags |= _CLOSED
            if event.timeout_s:
                self.new_timeouts.append((event.id.int, timestamp + event.timeout_s * NANOSECONDS_PER_SECOND))
        else:
            debit.debits_posted += amount
            credit.credits_posted += amount
        self._append_row(self._stored(event, event.debit_account_id, event.credit_account_id, timestamp))
        return _OK

    def _refuse(self, result: R, debit: AccountState, credit: AccountState) -> R:
        """A refusal that `account_closed` takes precedence over: sure only on accounts actually read."""
        if debit.remembered or credit.remembered:
            self.unsure = True
        return result

    def _post_or_void(self, event: Transfer, timestamp: int) -> R:
        pending = self.transfers.get(event.pending_id.int)
        if pending is None:
            return R.pending_transfer_not_found
        result = compare_with_pending(event, pending)
        if result is not _OK:
            return result
        resolution = self.resolutions.get(event.pending_id.int)
        if resolution is not None:
            if resolution & _EXPIRED:
                return R.pending_transfer_expired
            return (
                R.pending_transfer_already_posted if resolution & _POST else R.pending_transfer_already_voided
            )
        if pending.timeout_s and pending.timestamp + pending.timeout_s * NANOSECONDS_PER_SECOND <= timestamp:
            return R.pending_transfer_expired
        debit = self.accounts[pending.debit_account_id.int]
        credit = self.accounts[pending.credit_account_id.int]
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
        self.resolutions[event.pending_id.int] = int(event.flags)
        self._append_row(
            self._stored(event, pending.debit_account_id, pending.credit_account_id, timestamp, pending)
        )
        return _OK

    def _release(self, pending: StoredTransfer, debit: AccountState, credit: AccountState) -> None:
        if debit.remembered or credit.remembered:
            self.unsure = True  # a remembered account's counters start at zero: the peak is not the end
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
        asset, code = (
            (event.asset, event.code) if pending is None else (pending.asset, event.code or pending.code)
        )
        row = (
            event.id, debit_account_id, credit_account_id, event.amount, asset, code, int(event.flags),
            event.pending_id, event.timeout_s, event.user_data_128, event.user_data_64, event.user_data_32,
            event.effective_date or self.business_date, timestamp,
        )  # fmt: skip
        return _new_row(StoredTransfer, row)

    def _append_row(self, row: StoredTransfer) -> None:
        self.inserted.append(row)
        self.transfers[row.id.int] = row

    def touched_accounts(self) -> list[tuple[int, int]]:
        """(account, asset of the rows that move it) for every account the written rows move, in id order.
        Derived from the rows, so a rolled-back chain's accounts are not rewritten. Rows that disagree on
        an account's asset give asset 0, which the database refuses (only a wrong decision does that)."""
        assets: dict[int, int] = {}
        for row in self.inserted:
            asset = row.asset
            if assets.setdefault(row.debit_account_id.int, asset) != asset:
                assets[row.debit_account_id.int] = 0
            if assets.setdefault(row.credit_account_id.int, asset) != asset:
                assets[row.credit_account_id.int] = 0
        return sorted(assets.items())


def _is_linked(flags: object) -> bool:
    return isinstance(flags, int) and bool(flags & _LINKED)
