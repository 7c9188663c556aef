"""What a replay remembers between audits, and its JSON-able form.

    Books            the records `ledger.audit.replay.Replay` keeps: accounts, open pendings, resolutions,
                     transfer ids and timestamps seen, JSON kinds counted, entries applied
    encode, decode   Books <-> a dict of JSON values

The dict (format "amiyan-replay/1"):
    size            entries applied
    accounts        [[id hex, asset, flags, debits_pending, debits_posted, credits_pending, credits_posted,
                      last timestamp], ...] sorted by id
    pending         [[id hex, debit hex, credit hex, amount, flags, asset, timestamp, timeout_s], ...] sorted
    resolved        base64 of sorted (pending id 16 bytes, resolving flags u32, entry index u64) records
    transfer_ids    base64 of the sorted 16-byte ids, concatenated
    timestamps      base64 of the sorted timestamps as big-endian i64
    json_kinds      {kind: count}
The sets that grow with the log are packed binary (a million transfers: about 16 MB of ids), the rest is
plain JSON so a person can read an account's counters in the file.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, NamedTuple

__all__ = ["STATE_FORMAT", "AccountCounters", "Books", "Pending", "decode", "encode"]

STATE_FORMAT: Final = "amiyan-replay/1"
_ID_SIZE_BYTES: Final = 16
_RESOLVED: Final = struct.Struct(">16sIQ")
_TIMESTAMP: Final = struct.Struct(">q")
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


@dataclass(slots=True)
class Books:
    """Everything a replay knows; `Replay` works on these records directly."""

    size: int = 0
    accounts: dict[bytes, AccountCounters] = field(default_factory=dict)
    pending: dict[bytes, Pending] = field(default_factory=dict)
    # pending id -> (flags of the row that resolved it, its entry index)
    resolved: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    transfer_ids: set[bytes] = field(default_factory=set)
    timestamps: set[int] = field(default_factory=set)
    json_kinds: Counter[str] = field(default_factory=Counter)


def encode(books: Books) -> dict[str, object]:
    """The books as JSON values; deterministic (everything sorted), so equal books give equal files."""
    accounts = [
        [account_id.hex(), a.asset, a.flags, a.debits_pending, a.debits_posted, a.credits_pending,
         a.credits_posted, a.last_timestamp]
        for account_id, a in sorted(books.accounts.items(), key=_first)
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
        for pending_id, p in sorted(books.pending.items(), key=_first)
    ]
    resolved = b"".join(
        _RESOLVED.pack(pending_id, flags, index)
        for pending_id, (flags, index) in sorted(books.resolved.items())
    )
    stamps = sorted(books.timestamps)
    return {
        "format": STATE_FORMAT,
        "size": books.size,
        "accounts": accounts,
        "pending": pending,
        "resolved": _b64(resolved),
        "transfer_ids": _b64(b"".join(sorted(books.transfer_ids))),
        "timestamps": _b64(struct.pack(f">{len(stamps)}q", *stamps)),
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
    ids_blob = _blob(state, "transfer_ids", _ID_SIZE_BYTES)
    books.transfer_ids = {ids_blob[i : i + _ID_SIZE_BYTES] for i in range(0, len(ids_blob), _ID_SIZE_BYTES)}
    stamps_blob = _blob(state, "timestamps", _TIMESTAMP.size)
    books.timestamps = set(struct.unpack(f">{len(stamps_blob) // _TIMESTAMP.size}q", stamps_blob))
    kinds = state.get("json_kinds")
    if not isinstance(kinds, dict) or not all(isinstance(k, str) for k in kinds):
        raise ValueError("replay state: json_kinds is not an object")
    books.json_kinds = Counter({kind: _natural(count, "json_kinds") for kind, count in kinds.items()})
    return books


def _first(item: tuple[bytes, object]) -> bytes:
    return item[0]


def _rows(state: Mapping[str, object], name: str, width: int) -> list[list[object]]:
    rows = state.get(name)
    if not isinstance(rows, list) or not all(isinstance(row, list) and len(row) == width for row in rows):
        raise ValueError(f"replay state: {name} is not a list of {width}-member rows")
    return rows


def _blob(state: Mapping[str, object], name: str, record_size: int) -> bytes:
    text = state.get(name)
    if not isinstance(text, str):
        raise ValueError(f"replay state: {name} is not a base64 string")
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError(f"replay state: {name} is not base64") from None
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


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
