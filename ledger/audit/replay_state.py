"""What a replay remembers between audits, and its saved form (JSON values and packed bytes).

    Books            the records `ledger.audit.replay.Replay` keeps: accounts, open pendings, resolutions,
                     transfer ids and timestamps seen, JSON kinds counted, entries applied
    encode, decode   Books <-> a dict of JSON values

The dict (format "amiyan-replay/2"):
    size            entries applied
    accounts        [[id hex, asset, flags, debits_pending, debits_posted, credits_pending, credits_posted,
                      last timestamp], ...]
    pending         [[id hex, debit hex, credit hex, amount, flags, asset, timestamp, timeout_s], ...]
    resolved        bytes: (pending id 16 bytes, resolving flags u32, entry index u64) records
    transfer_ids    bytes: the 16-byte ids, concatenated
    timestamps      bytes: the timestamps as big-endian i64
    json_kinds      {kind: count}
Everything is in log order (the order the books met it), which is deterministic without sorting: the same
log gives the same file whether it was replayed in one run or several. (Sorting a million ids costs more
than replaying them.) The records that grow with the log are packed binary (a million transfers: 16 MB of
ids), which the state file (`ledger.audit.verify_state`) stores as binary sections; the rest is plain
JSON so a person can read an account's counters in the file.
"""

from __future__ import annotations

import array
import struct
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final, NamedTuple

__all__ = [
    "STATE_FORMAT",
    "AccountCounters",
    "Books",
    "Pending",
    "SeenIds",
    "SeenTimestamps",
    "decode",
    "encode",
]

STATE_FORMAT: Final = "amiyan-replay/2"
_ID_SIZE_BYTES: Final = 16
_RESOLVED: Final = struct.Struct(">16sIQ")
_TIMESTAMP_SIZE_BYTES: Final = 8
assert array.array("q").itemsize == _TIMESTAMP_SIZE_BYTES
TIMESTAMP_NONE: Final = -(2**63) - 1
"""`last_timestamp` of an account that has none yet: below every i64 ledger timestamp."""


class Pending(NamedTuple):
    """An unresolved pending transfer, as far as resolving it needs."""

    debit: bytes
    credit: bytes
    amount: int
    flags: int
    asset: int
    timestamp: int
    timeout_s: int


class AccountCounters:
    """One account's replayed state. `last_timestamp` is kept for balance-limited accounts only."""

    __slots__ = (
        "asset",
        "credits_pending",
        "credits_posted",
        "debits_pending",
        "debits_posted",
        "flags",
        "last_timestamp",
    )

    def __init__(self, asset: int, flags: int, counters: tuple[int, int, int, int] = (0, 0, 0, 0)) -> None:
        self.asset = asset
        self.flags = flags
        self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted = counters
        self.last_timestamp = TIMESTAMP_NONE


class SeenIds:
    """The transfer ids seen, in log order, checked for repeats a batch at a time.

    A million random 16-byte ids cost ~0.6 s looked up and inserted one at a time from Python, ~0.2 s as
    one `set.update`. So `Replay` appends each id to `unsettled` (None for an entry that is no transfer,
    where that keeps the entries' numbers simple) and where the items came from to `unsettled_spans`
    ((entry index of the first, how many items) for each stretch of consecutive entries), and calls
    `settle` at the end of a batch of entries, and before it reports any other error, so that a repeated
    id is still reported first, at its own entry. Ids restored from a saved state stay one bytes blob.
    """

    __slots__ = ("_saved", "_set", "order", "unsettled", "unsettled_spans")

    def __init__(self, saved: bytes = b"") -> None:
        self._saved = saved  # the ids settled before a restore, concatenated in log order
        self._set = set(_records(saved, _ID_SIZE_BYTES))
        self.order: list[bytes] = []  # ids settled since, in log order
        self.unsettled: list[bytes | None] = []
        self.unsettled_spans: list[tuple[int, int]] = []

    def settle(self) -> tuple[int, bytes] | None:
        """Take the unsettled ids in; the first repeat among them (entry index, id), or None."""
        batch, spans = self.unsettled, self.unsettled_spans
        if not batch:
            return None
        ids = list(filter(None, batch))  # the transfers' ids (an id is 16 bytes, never empty)
        before = len(self._set)
        self._set.update(ids)
        if len(self._set) - before != len(ids):  # a repeat: find the first (error path, rebuilds the set)
            earlier = {*_records(self._saved, _ID_SIZE_BYTES), *self.order}
            indexes = (first + k for first, count in spans for k in range(count))
            for id_, index in zip(batch, indexes, strict=True):
                if id_ is None:
                    continue
                if id_ in earlier:
                    return index, id_
                earlier.add(id_)
        if self.order:
            self.order += ids
        else:  # the first batch (a whole export, in a verification): no copy
            self.order = ids
        batch.clear()
        spans.clear()
        return None

    def to_bytes(self) -> bytes:
        """The settled ids in log order, concatenated."""
        return self._saved + b"".join(self.order)

    def __contains__(self, value: object) -> bool:
        return value in self._set or value in self.unsettled

    def __len__(self) -> int:
        return len(self._set)


class SeenTimestamps:
    """The ledger timestamps seen, in log order, cheap to add to while they increase.

    The ledger clock only moves forward, so in a log nearly every timestamp is above all before it: such a
    value is appended to `recent` and becomes `high`, with no hashing. A value at or below `high` may be a
    repeat: only then is the set of values built (and kept up to date from there on) and asked. Exactly a
    set's answers, at a fraction of a set's cost on a log that is in order; and an incremental run never
    builds the set of the timestamps it restored. Values are 8-byte machine integers in arrays, not an int
    object each. (`Replay._transfers` inlines `add`'s first branch.)
    """

    __slots__ = ("_lookup", "_older", "high", "recent")

    def __init__(self, values: Iterable[int] = ()) -> None:
        self._older = array.array("q", values)  # every value before `recent`, in log order
        self.recent = array.array("q")  # increasing, all above every value in _older
        self.high = max(self._older, default=TIMESTAMP_NONE)
        self._lookup: set[int] | None = None  # the values of _older, built when first needed

    @classmethod
    def from_bytes(cls, data: bytes) -> SeenTimestamps:
        values = array.array("q")
        values.frombytes(data)
        if sys.byteorder == "little":
            values.byteswap()  # stored big-endian
        return cls(values)

    def add(self, value: int) -> bool:
        """Record `value`; False when it was seen before (and nothing changes)."""
        if value > self.high:
            self.high = value
            self.recent.append(value)
            return True
        lookup = self._merged()
        if value in lookup:
            return False
        lookup.add(value)
        self._older.append(value)
        return True

    def __contains__(self, value: object) -> bool:
        return value in self._merged()

    def to_bytes(self) -> bytes:
        """Every value in log order, big-endian i64."""
        values = self._older + self.recent
        if sys.byteorder == "little":
            values.byteswap()
        return values.tobytes()

    def _merged(self) -> set[int]:
        if self._lookup is None:
            self._lookup = set(self._older)
        if self.recent:
            self._lookup.update(self.recent)
            self._older.extend(self.recent)
            del self.recent[:]  # in place: the replay holds `recent.append`
        return self._lookup


def _records(data: bytes, size: int) -> Iterator[bytes]:
    return (data[at : at + size] for at in range(0, len(data), size))


@dataclass(slots=True)
class Books:
    """Everything a replay knows; `Replay` works on these records directly."""

    size: int = 0
    accounts: dict[bytes, AccountCounters] = field(default_factory=dict)
    pending: dict[bytes, Pending] = field(default_factory=dict)
    # pending id -> (flags of the row that resolved it, its entry index)
    resolved: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    transfer_ids: SeenIds = field(default_factory=SeenIds)
    timestamps: SeenTimestamps = field(default_factory=SeenTimestamps)
    json_kinds: Counter[str] = field(default_factory=Counter)


def encode(books: Books) -> dict[str, object]:
    """The books as JSON values and bytes, in log order (see the module docstring)."""
    assert not books.transfer_ids.unsettled, "settle the transfer ids before saving the books"
    accounts = [
        [account_id.hex(), a.asset, a.flags, a.debits_pending, a.debits_posted, a.credits_pending,
         a.credits_posted, a.last_timestamp]
        for account_id, a in books.accounts.items()
    ]  # fmt: skip
    pending = [
        [
            pending_id.hex(),
            p.debit.hex(),
            p.credit.hex(),
            p.amount,
            p.flags,
            p.asset,
            p.timestamp,
            p.timeout_s,
        ]
        for pending_id, p in books.pending.items()
    ]
    resolved = b"".join(
        _RESOLVED.pack(pending_id, flags, index) for pending_id, (flags, index) in books.resolved.items()
    )
    return {
        "format": STATE_FORMAT,
        "size": books.size,
        "accounts": accounts,
        "pending": pending,
        "resolved": resolved,
        "transfer_ids": books.transfer_ids.to_bytes(),
        "timestamps": books.timestamps.to_bytes(),
        "json_kinds": dict(sorted(books.json_kinds.items())),
    }


def decode(state: Mapping[str, object]) -> Books:
    """Books from `encode`'s dict; raises ValueError naming the first malformed member."""
    if state.get("format") != STATE_FORMAT:
        raise ValueError(f"replay state: format is not {STATE_FORMAT!r}")
    books = Books(size=_natural(state.get("size"), "size"))
    for row in _rows(state, "accounts", 8):
        account_id = _hex_id(row[0], "accounts")
        ints = [_integer(value, "accounts") for value in row[1:]]
        account = AccountCounters(ints[0], ints[1], (ints[2], ints[3], ints[4], ints[5]))
        account.last_timestamp = ints[6]
        books.accounts[account_id] = account
    for row in _rows(state, "pending", 8):
        ids = [_hex_id(value, "pending") for value in row[:3]]
        amount, flags, asset, timestamp, timeout_s = (_integer(value, "pending") for value in row[3:])
        books.pending[ids[0]] = Pending(ids[1], ids[2], amount, flags, asset, timestamp, timeout_s)
    for pending_id, flags, index in _RESOLVED.iter_unpack(_blob(state, "resolved", _RESOLVED.size)):
        books.resolved[pending_id] = (flags, index)
    books.transfer_ids = SeenIds(_blob(state, "transfer_ids", _ID_SIZE_BYTES))
    books.timestamps = SeenTimestamps.from_bytes(_blob(state, "timestamps", _TIMESTAMP_SIZE_BYTES))
    kinds = state.get("json_kinds")
    if not isinstance(kinds, dict) or not all(isinstance(k, str) for k in kinds):
        raise ValueError("replay state: json_kinds is not an object")
    books.json_kinds = Counter({kind: _natural(count, "json_kinds") for kind, count in kinds.items()})
    return books


def _rows(state: Mapping[str, object], name: str, width: int) -> list[list[object]]:
    rows = state.get(name)
    if not isinstance(rows, list) or not all(isinstance(row, list) and len(row) == width for row in rows):
        raise ValueError(f"replay state: {name} is not a list of {width}-member rows")
    return rows


def _blob(state: Mapping[str, object], name: str, record_size: int) -> bytes:
    data = state.get(name)
    if not isinstance(data, bytes):
        raise ValueError(f"replay state: {name} is missing (it is binary)")
    if len(data) % record_size:
        raise ValueError(f"replay state: {name} is not a whole number of {record_size}-byte records")
    return data


def _hex_id(value: object, name: str) -> bytes:
    try:
        data = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        data = b""
    if len(data) != _ID_SIZE_BYTES:
        raise ValueError(f"replay state: {name} holds an id that is not 32 hex digits")
    return data


def _integer(value: object, name: str) -> int:
    if type(value) is not int:
        raise ValueError(f"replay state: {name} holds a non-integer {value!r}")
    return value


def _natural(value: object, name: str) -> int:
    number = _integer(value, name)
    if number < 0:
        raise ValueError(f"replay state: {name} is negative")
    return number
