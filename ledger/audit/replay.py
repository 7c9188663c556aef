"""Replay of the audit log: recompute every account's counters from the logged events and check the rules.

An auditor holding only an export trusts balances because they can be recomputed from the log. `Replay`
takes events in log order and stops at the FIRST entry that breaks a rule, raising `ReplayError(index,
message)`. What it checks:

    accounts    created once; never with both balance-limit flags
    transfers   id unique over the log; amount > 0; debit != credit; both accounts known and of the transfer's
                asset; nothing but a void or expiry touches a closed account (a post only when its own
                pending closed it); flags a valid combination
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
where the last one stopped. State of registered handlers is the handlers' own business. After a
`ReplayError` the replay is spent: the entry that failed may be half applied.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from ledger.audit.events import (
    ACCOUNT_EVENT,
    ACCOUNT_TAG,
    TRANSFER_EVENT,
    TRANSFER_TAG,
    AccountEvent,
    Event,
    EventFormatError,
    JsonEvent,
    decode_event,
)
from ledger.audit.replay_rules import (
    ACCOUNT_LINKED,
    CLOSED,
    CLOSING_CREDIT,
    CLOSING_DEBIT,
    DEBITS_LIMITED,
    EXPIRED,
    LIMITED,
    LINKED,
    NOT_SINGLE_PHASE,
    PENDING,
    POST,
    TRANSFER_FLAGS_KNOWN,
    VOID,
    ZERO_ID,
    ReplayError,
    check_limits,
    check_timeout,
    closed_side,
    resolution_name,
    uuid_text,
)
from ledger.audit.replay_state import AccountCounters, Books, Pending, decode, encode
from ledger.transfers import StoredTransfer

__all__ = ["JsonHandler", "Replay", "ReplayError"]

# What replay reads of a transfer event: id, debit, credit, amount, asset, flags, pending_id, timeout_s,
# timestamp. Tag, code, user data and effective date are skipped ("x" bytes): fewer objects per entry.
_TRANSFER_FIELDS: Final = struct.Struct(">x16s16s16sqH2xI16sI16x8x4x4xq")
_ACCOUNT_FIELDS: Final = struct.Struct(">x16sH2xI16x8x4xq")  # id, asset, flags, timestamp
assert _TRANSFER_FIELDS.size == TRANSFER_EVENT.size and _ACCOUNT_FIELDS.size == ACCOUNT_EVENT.size

JsonHandler = Callable[[int, Mapping[str, object]], None]
"""A rule for one JSON event kind: called with the entry index and the event's fields (without `kind`)."""

_TransferFields = tuple[bytes, bytes, bytes, int, int, int, bytes, int, int]


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
        try:
            if isinstance(event, StoredTransfer):
                fields: _TransferFields = (
                    event.id.bytes, event.debit_account_id.bytes, event.credit_account_id.bytes, event.amount,
                    event.asset, event.flags, event.pending_id.bytes, event.timeout_s, event.timestamp,
                )  # fmt: skip
                self._transfer(index, fields)
            elif isinstance(event, AccountEvent):
                self._account(index, event.id.bytes, event.asset, event.flags)
            else:
                self._json(index, event)
        except ReplayError:
            self._settle_ids()  # a repeated id at this entry is reported before its other faults
            raise
        self._settle_ids()
        self.size = index + 1

    def apply_entries(self, first_index: int, entries: Iterable[bytes]) -> None:
        """Apply raw log entries from `first_index` on: the fast path (no decoded dataclasses).

        A single-phase transfer between known, open accounts of its asset is applied right here, which is
        most of a ledger's log; anything else, and anything that breaks a rule, goes to `_transfer`, which
        checks every rule in order and so names the first one broken.
        """
        self._expect(first_index)
        unpack, transfer_size = _TRANSFER_FIELDS.unpack, _TRANSFER_FIELDS.size
        transfer, account = self._transfer, self.accounts.get
        stamps = self.timestamps
        add_id, add_id_at = self.transfer_ids.unsettled.append, self.transfer_ids.unsettled_at.append
        add_stamp = stamps.recent.append
        index = first_index
        try:
            for data in entries:
                if len(data) != transfer_size or data[0] != TRANSFER_TAG:
                    self._other_entry(index, data)
                    index += 1
                    continue
                fields = unpack(data)
                transfer_id, debit_id, credit_id, amount, asset, flags, pending_id, timeout_s, timestamp = (
                    fields
                )
                debit, credit = account(debit_id), account(credit_id)
                if (
                    debit is None
                    or credit is None
                    or flags & NOT_SINGLE_PHASE
                    or timeout_s
                    or pending_id != ZERO_ID
                    or amount <= 0
                    or timestamp <= stamps.high  # perhaps a repeat: `SeenTimestamps.add` decides
                    or debit_id == credit_id
                    or asset != debit.asset
                    or asset != credit.asset
                    or (debit.flags | credit.flags) & CLOSED
                ):
                    transfer(index, fields)  # the struct's fields are _TransferFields
                else:
                    add_id(transfer_id)
                    add_id_at(index)
                    stamps.high = timestamp
                    add_stamp(timestamp)
                    debit.debits_posted += amount
                    credit.credits_posted += amount
                    if (debit.flags | credit.flags) & LIMITED:
                        if (  # a voucher spending within its balance: check_limits' passing case, inlined
                            debit.flags == DEBITS_LIMITED
                            and not credit.flags & LIMITED
                            and debit.debits_pending + debit.debits_posted <= debit.credits_posted
                            and timestamp > debit.last_timestamp
                        ):
                            debit.last_timestamp = timestamp
                        else:
                            check_limits(index, timestamp, debit_id, debit, credit_id, credit)
                index += 1
        except ReplayError:
            self._settle_ids()  # a repeated transfer id before (or at) the fault is the first violation
            raise
        finally:
            self.size = index
        self._settle_ids()

    def finish(self) -> None:
        """The whole-log checks: debits equal credits, and pending counters equal the open pendings."""
        accounts = self.accounts.values()
        for account_id, a in self.accounts.items():
            if min(a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted) < 0:
                raise ReplayError(None, f"account {uuid_text(account_id)} has a negative counter")
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

    def _settle_ids(self) -> None:
        repeat = self.transfer_ids.settle()
        if repeat is not None:
            index, transfer_id = repeat
            raise ReplayError(index, f"transfer id {uuid_text(transfer_id)} seen twice") from None

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
            raise ReplayError(index, f"account {uuid_text(account_id)} created twice")
        if flags & LIMITED == LIMITED:
            raise ReplayError(index, f"account {uuid_text(account_id)} has both balance-limit flags")
        if flags & CLOSED:
            raise ReplayError(index, f"account {uuid_text(account_id)} is created closed")
        self.accounts[account_id] = AccountCounters(asset, flags & ~ACCOUNT_LINKED)

    # -- transfers ---------------------------------------------------------------------------------

    def _transfer(self, index: int, fields: _TransferFields) -> None:
        transfer_id, debit_id, credit_id, amount, asset, flags, pending_id, timeout_s, timestamp = fields
        self.transfer_ids.unsettled.append(transfer_id)  # checked for a repeat at `_settle_ids`
        self.transfer_ids.unsettled_at.append(index)
        if not self.timestamps.add(timestamp):
            raise ReplayError(index, f"ledger timestamp {timestamp} was already used by another transfer")
        if amount <= 0:
            raise ReplayError(index, f"amount {amount} is not positive")
        if debit_id == credit_id:
            raise ReplayError(index, f"debit and credit are the same account {uuid_text(debit_id)}")
        debit = self.accounts.get(debit_id)
        credit = self.accounts.get(credit_id)
        if debit is None or credit is None:
            missing = debit_id if debit is None else credit_id
            raise ReplayError(index, f"transfer on unknown account {uuid_text(missing)}")
        if asset != debit.asset or asset != credit.asset:
            raise ReplayError(
                index, f"asset differs: transfer {asset}, debit account {debit.asset}, credit {credit.asset}"
            )
        if flags & NOT_SINGLE_PHASE or timeout_s or pending_id != ZERO_ID:
            self._two_phase(index, fields, debit, credit)
        elif (debit.flags | credit.flags) & CLOSED:
            raise ReplayError(
                index, f"transfer on a closed account: {closed_side(debit_id, debit, credit_id)}"
            )
        else:
            debit.debits_posted += amount
            credit.credits_posted += amount
        if (debit.flags | credit.flags) & LIMITED:
            check_limits(index, timestamp, debit_id, debit, credit_id, credit)

    def _two_phase(
        self, index: int, fields: _TransferFields, debit: AccountCounters, credit: AccountCounters
    ) -> None:
        flags, pending_id, timeout_s = fields[5], fields[6], fields[7]
        phase = flags & (PENDING | POST | VOID)
        if flags & ~TRANSFER_FLAGS_KNOWN:
            raise ReplayError(index, f"flags 0x{flags:x} hold unknown bits")
        if phase == PENDING and not flags & EXPIRED:
            if pending_id != ZERO_ID:
                raise ReplayError(index, "a pending transfer names a pending id")
            self._reserve(index, fields, debit, credit)
        elif phase in (POST, VOID) and not flags & (CLOSING_DEBIT | CLOSING_CREDIT):
            if flags & EXPIRED and phase != VOID:
                raise ReplayError(index, "only a void can carry the expired flag")
            if timeout_s:
                raise ReplayError(index, f"a {resolution_name(flags)} carries a timeout ({timeout_s} s)")
            self._resolve(index, fields, debit, credit)
        elif phase == 0 and not flags & ~LINKED:
            what = "a timeout" if timeout_s else f"pending id {uuid_text(pending_id)}"
            raise ReplayError(index, f"a single-phase transfer carries {what}")
        else:
            raise ReplayError(index, f"flags 0x{flags:x} are not a valid combination")

    def _reserve(
        self, index: int, fields: _TransferFields, debit: AccountCounters, credit: AccountCounters
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
        self.pending[transfer_id] = Pending(debit_id, credit_id, amount, flags, asset, timestamp, timeout_s)

    def _resolve(
        self, index: int, fields: _TransferFields, debit: AccountCounters, credit: AccountCounters
    ) -> None:
        _, debit_id, credit_id, amount, _, flags, pending_id, _, timestamp = fields
        what = resolution_name(flags)
        pending = self.pending.pop(pending_id, None)
        if pending is None:
            raise ReplayError(index, self._unresolvable(what, pending_id))
        if (debit_id, credit_id) != (pending.debit, pending.credit):
            raise ReplayError(
                index, f"{what} of {uuid_text(pending_id)} is on other accounts than the pending"
            )
        check_timeout(index, what, pending, timestamp, expiry=bool(flags & EXPIRED))
        if flags & POST and amount > pending.amount:
            raise ReplayError(index, f"post amount {amount} exceeds the pending amount {pending.amount}")
        if flags & VOID and amount != pending.amount:
            raise ReplayError(
                index, f"{what} amount {amount} differs from the pending amount {pending.amount}"
            )
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
        self.resolved[pending_id] = (flags, index)

    def _unresolvable(self, what: str, pending_id: bytes) -> str:
        resolution = self.resolved.get(pending_id)
        if resolution is not None:
            flags, at = resolution
            earlier = f"a {resolution_name(flags)} at entry {at}"
            return f"{what} of {uuid_text(pending_id)}, already resolved by {earlier}"
        if pending_id in self.transfer_ids:
            return f"{what} of {uuid_text(pending_id)}, which is not a pending transfer"
        return f"{what} of unknown pending transfer {uuid_text(pending_id)}"

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
                    f"account {uuid_text(account_id)}: pending counters differ from its open pendings",
                )
