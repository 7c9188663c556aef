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
path over raw entries in entries.bin's framing (`FramedEntries`): a run of transfer events is unpacked in
place by one precompiled struct (`iter_unpack`, no bytes object per entry but the ids, which stay bytes).

`to_state` / `from_state` make the replay resumable (a dict of JSON values and bytes), so an incremental
audit continues where the last one stopped. State of registered handlers is the handlers' own business.
After a `ReplayError` the replay is spent: the entry that failed may be half applied.
"""

from __future__ import annotations

import re
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import chain
from typing import Any, Final

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
from ledger.audit.export_format import LENGTH_PREFIX_BYTES, FramedEntries
from ledger.audit.replay_rules import (
    ACCOUNT_LINKED,
    CLOSED,
    DEBITS_LIMITED,
    LIMITED,
    LINKED,
    NOT_SINGLE_PHASE,
    POST,
    VOID,
    ZERO_ID,
    ReplayError,
    TransferFields,
    check_limits,
    closed_side,
    two_phase,
    uuid_text,
)
from ledger.audit.replay_state import AccountCounters, Books, decode, encode
from ledger.audit.voucher_rules import VoucherRules
from ledger.transfers import StoredTransfer

__all__ = ["JsonHandler", "Replay", "ReplayError"]

_ACCOUNT_FIELDS: Final = struct.Struct(">x16sH2xI16x8x4xq")  # id, asset, flags, timestamp
assert _ACCOUNT_FIELDS.size == ACCOUNT_EVENT.size
# What the replay reads of a transfer event, with its length prefix in front as entries.bin frames it: id,
# debit, credit, amount, asset, then flags, pending_id and timeout_s as one 24-byte field (adjacent in the
# event; a single-phase transfer has them all zero, or the LINKED flag only), timestamp. Tag, code, user
# data and effective date are skipped ("x" bytes): fewer objects per entry.
_FRAMED_TRANSFER_BRIEF: Final = struct.Struct(f">{LENGTH_PREFIX_BYTES}xx16s16s16sqH2x24s16x8x4x4xq")
_PHASE: Final = struct.Struct(">I16sI")  # the 24-byte field: flags, pending_id, timeout_s
_SINGLE_PHASE: Final = bytes(24)
_SINGLE_PHASE_LINKED: Final = _PHASE.pack(LINKED, ZERO_ID, 0)
assert _FRAMED_TRANSFER_BRIEF.size == LENGTH_PREFIX_BYTES + TRANSFER_EVENT.size
_NOT_TRANSFER_TAG: Final = re.compile(b"[^%c]" % TRANSFER_TAG)

_Record = tuple[Any, ...]
"""What `Replay._walk` takes per entry: a transfer event's brief fields (7 members, from
`_FRAMED_TRANSFER_BRIEF`), or for any other entry (None, its bytes, None, None, None, None, None)."""
_OTHER_PADDING: Final = (None,) * 5
_STRETCH_ENTRIES_MIN: Final = 1024
"""Runs of fewer transfer events are gathered into lists of records (as are all other entries); a list is
handed over at this length."""

JsonHandler = Callable[[int, Mapping[str, object]], None]
"""A rule for one JSON event kind: called with the entry index and the event's fields (without `kind`)."""


class Replay:
    """The ledger rebuilt from its log, one entry at a time, in log order from entry 0 (or a saved state)."""

    def __init__(self, books: Books | None = None, vouchers: VoucherRules | None = None) -> None:
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
        # The voucher rules read the voucher events; every replay checks them.
        self.vouchers = vouchers if vouchers is not None else VoucherRules()
        for kind, handler in self.vouchers.handlers().items():
            self.register(kind, handler)

    def register(self, kind: str, handler: JsonHandler) -> None:
        """Check JSON events of `kind` with `handler` from now on (one handler per kind)."""
        assert kind not in self._handlers, f"a handler for {kind!r} is registered already"
        self._handlers[kind] = handler

    def apply(self, index: int, event: Event) -> None:
        """Apply one decoded event; `index` is its position in the log."""
        self._expect(index)
        try:
            if isinstance(event, StoredTransfer):
                fields: TransferFields = (
                    event.id.bytes, event.debit_account_id.bytes, event.credit_account_id.bytes, event.amount,
                    event.asset, event.flags, event.pending_id.bytes, event.timeout_s, event.timestamp,
                )  # fmt: skip
                self.transfer_ids.unsettled.append(fields[0])  # checked for a repeat at `_settle_ids`
                self.transfer_ids.unsettled_spans.append((index, 1))
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

        Entries already framed (`FramedEntries`, as the verifier reads entries.bin) are unpacked in place;
        any other iterable is framed first. Every entry is checked exactly as `apply` checks it.
        """
        self._expect(first_index)
        framed = entries if isinstance(entries, FramedEntries) else FramedEntries.of(entries)
        try:
            self._walk(first_index, chain.from_iterable(_stretches(framed)))
        except ReplayError as error:
            self.size = first_index if error.index is None else error.index
            self._settle_ids()  # a repeated transfer id before (or at) the fault is the first violation
            raise
        self._settle_ids()
        self.size = first_index + len(framed)

    def _walk(self, first_index: int, records: Iterable[_Record]) -> None:
        """Apply `records` (see `_stretches`), the first being entry `first_index`.

        A single-phase transfer between known, open accounts of its asset is applied right here, which is
        most of a ledger's log; any other transfer, and any that breaks a rule, goes to `_transfer`, which
        checks every rule in order and so names the first one broken; other entries go to `_other_entry`.
        Every transfer's id is queued for `_settle_ids`.
        """
        transfer, other_entry, account = self._transfer, self._other_entry, self.accounts.get
        vouchers, check_spend = self.vouchers.vouchers, self.vouchers.check_spend
        stamps, ids = self.timestamps, self.transfer_ids
        unsettled, add_stamp = ids.unsettled, stamps.recent.append
        add_id = unsettled.append
        # No entry number is counted: each entry queues one item (its id, or None when it is no transfer),
        # so the entry at hand is number `base + len(unsettled)`, worked out only where it is needed.
        queued_before, high = len(unsettled), stamps.high  # `stamps.high`, kept in a local here
        base = first_index - 1 - queued_before
        single, single_linked = _SINGLE_PHASE, _SINGLE_PHASE_LINKED
        try:
            for transfer_id, debit_id, credit_id, amount, asset, phase, timestamp in records:
                if transfer_id is None:  # another kind of entry: its bytes come second
                    add_id(None)
                    other_entry(base + len(unsettled), debit_id)
                    continue
                add_id(transfer_id)
                debit, credit = account(debit_id), account(credit_id)
                if (
                    debit is None
                    or credit is None
                    or (phase != single and phase != single_linked)  # flags, pending_id, timeout_s
                    or amount <= 0
                    or timestamp <= high  # perhaps a repeat: `SeenTimestamps.add` decides
                    or debit is credit
                    or asset != debit.asset
                    or asset != credit.asset
                    or (both_flags := debit.flags | credit.flags) & CLOSED
                ):
                    stamps.high = high
                    flags, pending_id, timeout_s = _PHASE.unpack(phase)
                    fields = (transfer_id, debit_id, credit_id, amount, asset, flags, pending_id, timeout_s)
                    transfer(base + len(unsettled), (*fields, timestamp))
                    high = stamps.high
                    continue
                high = timestamp
                add_stamp(timestamp)
                debit.debits_posted += amount
                credit.credits_posted += amount
                if both_flags & LIMITED:  # set above: every condition was evaluated to get here
                    if (  # a voucher spending within its balance: check_limits' passing case, inlined
                        debit.flags == DEBITS_LIMITED
                        and not credit.flags & LIMITED
                        and debit.debits_pending + debit.debits_posted <= debit.credits_posted
                        and timestamp > debit.last_timestamp
                    ):
                        debit.last_timestamp = timestamp
                    else:
                        index = base + len(unsettled)
                        check_limits(index, timestamp, debit_id, debit, credit_id, credit)
                    if debit_id in vouchers:  # vouchers are limited accounts: only this branch can spend one
                        check_spend(
                            base + len(unsettled), transfer_id, debit_id, credit_id, amount, timestamp
                        )
        finally:
            stamps.high = max(stamps.high, high)
            ids.unsettled_spans.append((first_index, len(unsettled) - queued_before))

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
        self.vouchers.finish()

    def to_state(self) -> dict[str, object]:
        """The replay as a dict of JSON values and bytes (see `ledger.audit.replay_state`)."""
        self._books.size = self.size
        return {**encode(self._books), "vouchers": self.vouchers.to_state()}

    @classmethod
    def from_state(cls, state: Mapping[str, object]) -> Replay:
        """Restore a replay saved by `to_state`; raises ValueError naming what is malformed."""
        vouchers = state.get("vouchers")
        if not isinstance(vouchers, dict):
            raise ValueError("replay state: vouchers is not an object")
        try:
            rules = VoucherRules.from_state(vouchers)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"replay state: vouchers: {error}") from None
        return cls(decode(state), rules)

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

    def _transfer(self, index: int, fields: TransferFields) -> None:
        # Every rule in order. The caller has queued the transfer id for `_settle_ids`.
        _, debit_id, credit_id, amount, asset, flags, pending_id, timeout_s, timestamp = fields
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
            two_phase(self._books, index, fields, debit, credit)
        elif (debit.flags | credit.flags) & CLOSED:
            raise ReplayError(
                index, f"transfer on a closed account: {closed_side(debit_id, debit, credit_id)}"
            )
        else:
            debit.debits_posted += amount
            credit.credits_posted += amount
        if (debit.flags | credit.flags) & LIMITED:
            check_limits(index, timestamp, debit_id, debit, credit_id, credit)
        if debit_id in self.vouchers.vouchers and not flags & (POST | VOID):
            self.vouchers.check_spend(index, fields[0], debit_id, credit_id, amount, timestamp)

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


def _stretches(framed: FramedEntries) -> Iterator[list[_Record] | Iterator[_Record]]:
    """`framed`'s entries as `_Record`s, in order, a stretch at a time: the transfer events of a long run
    unpacked straight from the framing (`iter_unpack`); the entries of short runs, and of runs of other
    lengths, gathered into lists of at most `_STRETCH_ENTRIES_MIN`."""
    data, view, stride = framed.data, memoryview(framed.data), _FRAMED_TRANSFER_BRIEF.size
    unpack_at, gathered = _FRAMED_TRANSFER_BRIEF.unpack_from, []
    for _, offset, count, length in framed.runs:
        start, step = offset + LENGTH_PREFIX_BYTES, length + LENGTH_PREFIX_BYTES
        if count == 1:  # among entries of other lengths (the cheapest way through for a log of those)
            if length == TRANSFER_EVENT.size and data[start] == TRANSFER_TAG:
                gathered.append(unpack_at(data, offset))
            else:
                gathered.append((None, data[start : start + length], *_OTHER_PADDING))
            if len(gathered) >= _STRETCH_ENTRIES_MIN:
                yield gathered
                gathered = []
            continue
        if length != TRANSFER_EVENT.size or count < _STRETCH_ENTRIES_MIN:
            for at in range(start, start + count * step, step):
                if length == TRANSFER_EVENT.size and data[at] == TRANSFER_TAG:
                    gathered.append(unpack_at(data, at - LENGTH_PREFIX_BYTES))
                else:
                    gathered.append((None, data[at : at + length], *_OTHER_PADDING))
                if len(gathered) >= _STRETCH_ENTRIES_MIN:
                    yield gathered
                    gathered = []
            continue
        if gathered:
            yield gathered
            gathered = []
        # Entries of a transfer event's size are transfers but for one with another tag now and then (a
        # JSON event that happens to be this long, or damage): found among the tags by a regex.
        tags = data[start : offset + count * stride : stride]
        position = 0
        while position < count:
            found = _NOT_TRANSFER_TAG.search(tags, position)
            stop = count if found is None else found.start()
            transfers = view[offset + position * stride : offset + stop * stride]
            yield _FRAMED_TRANSFER_BRIEF.iter_unpack(transfers)
            if found is not None:
                at = start + stop * stride
                yield [(None, data[at : at + length], *_OTHER_PADDING)]
                stop += 1
            position = stop
    if gathered:
        yield gathered
