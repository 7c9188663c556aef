"""Replay of the audit log: recompute every account's counters from the logged events and check the rules.

An auditor holding only an export trusts balances because they can be recomputed from the log. `Replay`
takes events in log order and stops at the FIRST entry that breaks a rule, raising `ReplayError(index,
message)`. What it checks:

    accounts    created once; never with both balance-limit flags
    transfers   id unique over the log; amount > 0; debit != credit; both accounts known and of the transfer's
                asset; no transfer touches a closed account (except resolving the pending that closed it);
                flags a valid combination
    two-phase   a post/void/expiry names a pending transfer that exists, is pending and is still unresolved
                (no double post or void), on the same accounts; post amount <= pending amount; void and
                expiry amount == pending amount; a post or void comes before the timeout, an expiry after it
    limits      after each event, debits_pending + debits_posted <= credits_posted on an account with
                debits_must_not_exceed_credits (symmetric for credits); no counter below zero
    time        transfer timestamps unique over the log; strictly increasing per account for accounts with a
                balance-limit flag, the only ones the ledger stamps in commit order (see ledger/clock.py)
    totals      `finish`: sum(debits_posted) == sum(credits_posted), sum(debits_pending) ==
                sum(credits_pending), and each account's pending counters equal its open pending transfers

Counters move as `ledger/batches.py` moves them: single-phase adds to the posted counters; PENDING adds to
the pending ones; POST releases the pending amount and posts its own amount; VOID and expiry (VOID|EXPIRED)
release it; a closing flag closes an account while its pending transfer stands, and void or expiry reopens it.

JSON events of any kind are accepted and counted by kind. A rule for a kind (voucher rules, key events) is a
handler registered with `register(kind, handler)`; it raises `ReplayError` itself. `apply_entries` is the fast
path over raw entry bytes: transfer events are unpacked with one precompiled struct, ids stay bytes.

`to_state` / `from_state` make the replay resumable (a JSON-able dict), so an incremental audit continues
where the last one stopped. State of registered handlers is the handlers' own business.
"""

from __future__ import annotations

import struct
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from ledger.accounts import AccountFlags
from ledger.audit.events import (
    ACCOUNT_EVENT,
    ACCOUNT_TAG,
    TRANSFER_EVENT,
    TRANSFER_TAG,
    AccountEvent,
    Event,
    EventFormatError,
    JsonEvent,
    TransferEvent,
    decode_event,
)
from ledger.audit.replay_state import AccountCounters, Books, Pending, decode, encode
from ledger.clock import NANOSECONDS_PER_SECOND
from ledger.transfers import TransferFlags

__all__ = ["JsonHandler", "Replay", "ReplayError"]

# What replay reads of a transfer event: id, debit, credit, amount, asset, flags, pending_id, timeout_s,
# timestamp. Tag, code, user data and effective date are skipped ("x" bytes): fewer objects per entry.
_TRANSFER_FIELDS: Final = struct.Struct(">x16s16s16sqH2xI16sI16x8x4x4xq")
_ACCOUNT_FIELDS: Final = struct.Struct(">x16sH2xI16x8x4xq")  # id, asset, flags, timestamp
assert _TRANSFER_FIELDS.size == TRANSFER_EVENT.size and _ACCOUNT_FIELDS.size == ACCOUNT_EVENT.size

_ZERO_ID: Final = bytes(16)
_LINKED: Final = int(TransferFlags.LINKED)
_PENDING: Final = int(TransferFlags.PENDING)
_POST: Final = int(TransferFlags.POST_PENDING)
_VOID: Final = int(TransferFlags.VOID_PENDING)
_CLOSING_DEBIT: Final = int(TransferFlags.CLOSING_DEBIT)
_CLOSING_CREDIT: Final = int(TransferFlags.CLOSING_CREDIT)
_EXPIRED: Final = int(TransferFlags.EXPIRED)
_TRANSFER_FLAGS_KNOWN: Final = (
    _LINKED | _PENDING | _POST | _VOID | _CLOSING_DEBIT | _CLOSING_CREDIT | _EXPIRED
)
_ACCOUNT_LINKED: Final = int(AccountFlags.LINKED)
_DEBITS_LIMITED: Final = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
_CREDITS_LIMITED: Final = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
_LIMITED: Final = _DEBITS_LIMITED | _CREDITS_LIMITED
_CLOSED: Final = int(AccountFlags.CLOSED)
_NOT_SINGLE_PHASE: Final = ~_LINKED  # any flag but LINKED sends a transfer to the two-phase path

JsonHandler = Callable[[int, Mapping[str, object]], None]
"""A rule for one JSON event kind: called with the entry index and the event's fields (without `kind`)."""

_TransferFields = tuple[bytes, bytes, bytes, int, int, int, bytes, int, int]


class ReplayError(Exception):
    """The first entry that breaks a ledger rule; `index` is None for a whole-log check at `finish`."""

    def __init__(self, index: int | None, message: str) -> None:
        super().__init__(message if index is None else f"entry {index}: {message}")
        self.index = index
        self.message = message


class Replay:
    """The ledger rebuilt from its log, one entry at a time, in log order from entry 0 (or a saved state)."""

    def __init__(self, books: Books | None = None) -> None:
        self._books = books if books is not None else Books()
        # The books' containers, bound once: the hot path reads them for every entry.
        self.accounts = self._books.accounts
        self.pending = self._books.pending
        self.resolved = self._books.resolved
        self.transfer_ids = self._books.transfer_ids
        self.timestamps = self._books.timestamps
        self.json_kinds = self._books.json_kinds
        self.size = self._books.size  # entries applied: the index the next entry must have
        self._handlers: dict[str, JsonHandler] = {}

    def register(self, kind: str, handler: JsonHandler) -> None:
        """Check JSON events of `kind` with `handler` from now on (one handler per kind)."""
        assert kind not in self._handlers, f"a handler for {kind!r} is registered already"
        self._handlers[kind] = handler

    def apply(self, index: int, event: Event) -> None:
        """Apply one decoded event; `index` is its position in the log."""
        self._expect(index)
        if isinstance(event, TransferEvent):
            fields: _TransferFields = (
                event.id.bytes, event.debit_account_id.bytes, event.credit_account_id.bytes, event.amount,
                event.asset, event.flags, event.pending_id.bytes, event.timeout_s, event.timestamp,
            )  # fmt: skip
            self._transfer(index, fields)
        elif isinstance(event, AccountEvent):
            self._account(index, event.id.bytes, event.asset, event.flags)
        else:
            self._json(index, event)
        self.size = index + 1

    def apply_entries(self, first_index: int, entries: Iterable[bytes]) -> None:
        """Apply raw log entries from `first_index` on: the fast path (no decoded dataclasses)."""
        self._expect(first_index)
        unpack = _TRANSFER_FIELDS.unpack
        transfer = self._transfer
        transfer_size = _TRANSFER_FIELDS.size
        index = first_index
        try:
            for data in entries:
                if len(data) == transfer_size and data[0] == TRANSFER_TAG:
                    transfer(index, unpack(data))  # the struct's fields are _TransferFields
                else:
                    self._other_entry(index, data)
                index += 1
        finally:
            self.size = index

    def finish(self) -> None:
        """The whole-log checks: debits equal credits, and pending counters equal the open pendings."""
        accounts = self.accounts.values()
        for account_id, a in self.accounts.items():
            if min(a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted) < 0:
                raise ReplayError(None, f"account {_uuid(account_id)} has a negative counter")
        for what in ("posted", "pending"):
            debits = sum(getattr(a, f"debits_{what}") for a in accounts)
            credits = sum(getattr(a, f"credits_{what}") for a in accounts)
            if debits != credits:
                raise ReplayError(
                    None, f"unbalanced: sum of debits_{what} {debits} != credits_{what} {credits}"
                )
        self._check_open_pendings()

    def to_state(self) -> dict[str, object]:
        """The replay as a JSON-able dict (see `ledger.audit.replay_state`)."""
        self._books.size = self.size
        return encode(self._books)

    @classmethod
    def from_state(cls, state: Mapping[str, object]) -> Replay:
        """Restore a replay saved by `to_state`; raises ValueError naming what is malformed."""
        return cls(decode(state))

    # -- entries -----------------------------------------------------------------------------------

    def _expect(self, index: int) -> None:
        if index != self.size:
            raise ValueError(f"replay expects entry {self.size} next, got {index}")

    def _other_entry(self, index: int, data: bytes) -> None:
        if data[:1] == bytes((ACCOUNT_TAG,)) and len(data) == _ACCOUNT_FIELDS.size:
            account_id, asset, flags, _ = _ACCOUNT_FIELDS.unpack(data)
            self._account(index, account_id, asset, flags)
            return
        try:
            event = decode_event(data)
        except EventFormatError as error:
            raise ReplayError(index, f"undecodable event: {error}") from None
        assert isinstance(event, JsonEvent), "binary events of the right size take the fast path"
        self._json(index, event)

    def _json(self, index: int, event: JsonEvent) -> None:
        self.json_kinds[event.kind] += 1
        handler = self._handlers.get(event.kind)
        if handler is not None:
            handler(index, event.fields)

    def _account(self, index: int, account_id: bytes, asset: int, flags: int) -> None:
        if account_id in self.accounts:
            raise ReplayError(index, f"account {_uuid(account_id)} created twice")
        if flags & _LIMITED == _LIMITED:
            raise ReplayError(index, f"account {_uuid(account_id)} has both balance-limit flags")
        if flags & _CLOSED:
            raise ReplayError(index, f"account {_uuid(account_id)} is created closed")
        self.accounts[account_id] = AccountCounters(asset, flags & ~_ACCOUNT_LINKED)

    # -- transfers ---------------------------------------------------------------------------------

    def _transfer(self, index: int, fields: _TransferFields) -> None:
        transfer_id, debit_id, credit_id, amount, asset, flags, pending_id, timeout_s, timestamp = fields
        ids = self.transfer_ids
        seen = len(ids)
        ids.add(transfer_id)
        if len(ids) == seen:
            raise ReplayError(index, f"transfer id {_uuid(transfer_id)} seen twice")
        stamps = self.timestamps
        seen = len(stamps)
        stamps.add(timestamp)
        if len(stamps) == seen:
            raise ReplayError(index, f"ledger timestamp {timestamp} was already used by another transfer")
        if amount <= 0:
            raise ReplayError(index, f"amount {amount} is not positive")
        if debit_id == credit_id:
            raise ReplayError(index, f"debit and credit are the same account {_uuid(debit_id)}")
        debit = self.accounts.get(debit_id)
        credit = self.accounts.get(credit_id)
        if debit is None or credit is None:
            missing = debit_id if debit is None else credit_id
            raise ReplayError(index, f"transfer on unknown account {_uuid(missing)}")
        if asset != debit.asset or asset != credit.asset:
            raise ReplayError(
                index, f"asset differs: transfer {asset}, debit account {debit.asset}, credit {credit.asset}"
            )
        if flags & _NOT_SINGLE_PHASE or timeout_s or pending_id != _ZERO_ID:
            self._two_phase(index, fields, debit, credit)
        elif (debit.flags | credit.flags) & _CLOSED:
            raise ReplayError(index, f"transfer on a closed account: {_closed_side(fields, debit)}")
        else:
            debit.debits_posted += amount
            credit.credits_posted += amount
        if (debit.flags | credit.flags) & _LIMITED:
            _check_limits(index, timestamp, (debit_id, debit), (credit_id, credit))

    def _two_phase(
        self, index: int, fields: _TransferFields, debit: AccountCounters, credit: AccountCounters
    ) -> None:
        flags, pending_id, timeout_s = fields[5], fields[6], fields[7]
        phase = flags & (_PENDING | _POST | _VOID)
        if flags & ~_TRANSFER_FLAGS_KNOWN:
            raise ReplayError(index, f"flags 0x{flags:x} hold unknown bits")
        if phase == _PENDING and not flags & _EXPIRED:
            if pending_id != _ZERO_ID:
                raise ReplayError(index, "a pending transfer names a pending id")
            self._reserve(index, fields, debit, credit)
        elif phase in (_POST, _VOID) and not flags & (_CLOSING_DEBIT | _CLOSING_CREDIT):
            if flags & _EXPIRED and phase != _VOID:
                raise ReplayError(index, "only a void can carry the expired flag")
            if timeout_s:
                raise ReplayError(index, f"a {_resolution(flags)} carries a timeout ({timeout_s} s)")
            self._resolve(index, fields, debit, credit)
        elif phase == 0 and not flags & ~_LINKED:
            what = "a timeout" if timeout_s else f"pending id {_uuid(pending_id)}"
            raise ReplayError(index, f"a single-phase transfer carries {what}")
        else:
            raise ReplayError(index, f"flags 0x{flags:x} are not a valid combination")

    def _reserve(
        self, index: int, fields: _TransferFields, debit: AccountCounters, credit: AccountCounters
    ) -> None:
        transfer_id, debit_id, credit_id, amount, asset, flags, _, timeout_s, timestamp = fields
        if (debit.flags | credit.flags) & _CLOSED:
            raise ReplayError(index, f"pending transfer on a closed account: {_closed_side(fields, debit)}")
        debit.debits_pending += amount
        credit.credits_pending += amount
        if flags & _CLOSING_DEBIT:
            debit.flags |= _CLOSED
        if flags & _CLOSING_CREDIT:
            credit.flags |= _CLOSED
        self.pending[transfer_id] = Pending(debit_id, credit_id, amount, flags, asset, timestamp, timeout_s)

    def _resolve(
        self, index: int, fields: _TransferFields, debit: AccountCounters, credit: AccountCounters
    ) -> None:
        _, debit_id, credit_id, amount, _, flags, pending_id, _, timestamp = fields
        what = _resolution(flags)
        pending = self.pending.pop(pending_id, None)
        if pending is None:
            raise ReplayError(index, self._unresolvable(what, pending_id))
        if (debit_id, credit_id) != (pending.debit, pending.credit):
            raise ReplayError(index, f"{what} of {_uuid(pending_id)} is on other accounts than the pending")
        _check_timeout(index, what, pending, timestamp, expiry=bool(flags & _EXPIRED))
        if flags & _POST and amount > pending.amount:
            raise ReplayError(index, f"post amount {amount} exceeds the pending amount {pending.amount}")
        if flags & _VOID and amount != pending.amount:
            raise ReplayError(
                index, f"{what} amount {amount} differs from the pending amount {pending.amount}"
            )
        if not flags & _EXPIRED and (
            (debit.flags & _CLOSED and not pending.flags & _CLOSING_DEBIT)
            or (credit.flags & _CLOSED and not pending.flags & _CLOSING_CREDIT)
        ):
            side = fields[1] if debit.flags & _CLOSED and not pending.flags & _CLOSING_DEBIT else fields[2]
            raise ReplayError(index, f"{what} on a closed account: {_uuid(side)}")
        debit.debits_pending -= pending.amount
        credit.credits_pending -= pending.amount
        if debit.debits_pending < 0 or credit.credits_pending < 0:
            raise ReplayError(index, f"{what} of {_uuid(pending_id)} leaves a pending counter below zero")
        if flags & _POST:
            debit.debits_posted += amount
            credit.credits_posted += amount
        else:
            if pending.flags & _CLOSING_DEBIT:
                debit.flags &= ~_CLOSED
            if pending.flags & _CLOSING_CREDIT:
                credit.flags &= ~_CLOSED
        self.resolved[pending_id] = (flags, index)

    def _unresolvable(self, what: str, pending_id: bytes) -> str:
        resolution = self.resolved.get(pending_id)
        if resolution is not None:
            flags, at = resolution
            return f"{what} of {_uuid(pending_id)}, already resolved by a {_resolution(flags)} at entry {at}"
        if pending_id in self.transfer_ids:
            return f"{what} of {_uuid(pending_id)}, which is not a pending transfer"
        return f"{what} of unknown pending transfer {_uuid(pending_id)}"

    def _check_open_pendings(self) -> None:
        debits: Counter[bytes] = Counter()
        credits: Counter[bytes] = Counter()
        for pending in self.pending.values():
            debits[pending.debit] += pending.amount
            credits[pending.credit] += pending.amount
        for account_id, account in self.accounts.items():
            if (account.debits_pending, account.credits_pending) != (debits[account_id], credits[account_id]):
                raise ReplayError(
                    None,
                    f"account {_uuid(account_id)}: pending counters differ from its open pending transfers",
                )


def _check_limits(index: int, timestamp: int, *sides: tuple[bytes, AccountCounters]) -> None:
    for account_id, account in sides:
        flags = account.flags
        if not flags & _LIMITED:
            continue
        debits = account.debits_pending + account.debits_posted
        if flags & _DEBITS_LIMITED and debits > account.credits_posted:
            raise ReplayError(
                index,
                f"account {_uuid(account_id)} breaks debits_must_not_exceed_credits: debits pending + posted"
                f" {debits} > credits posted {account.credits_posted}",
            )
        credits = account.credits_pending + account.credits_posted
        if flags & _CREDITS_LIMITED and credits > account.debits_posted:
            raise ReplayError(
                index,
                f"account {_uuid(account_id)} breaks credits_must_not_exceed_debits: credits pending + posted"
                f" {credits} > debits posted {account.debits_posted}",
            )
        if timestamp <= account.last_timestamp:
            raise ReplayError(
                index,
                f"ledger timestamp {timestamp} is not after {account.last_timestamp}, the previous one of"
                f" balance-limited account {_uuid(account_id)}",
            )
        account.last_timestamp = timestamp


def _check_timeout(index: int, what: str, pending: Pending, timestamp: int, *, expiry: bool) -> None:
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


def _resolution(flags: int) -> str:
    if flags & _EXPIRED:
        return "expiry"
    return "post" if flags & _POST else "void"


def _closed_side(fields: _TransferFields, debit: AccountCounters) -> str:
    return _uuid(fields[1] if debit.flags & _CLOSED else fields[2])


def _uuid(data: bytes) -> str:
    return str(uuid.UUID(bytes=data))
