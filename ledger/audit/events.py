"""Audit events: the exact bytes that become leaves of the audit log.

Each state change writes one event, in the same database transaction as the change. The bytes are made
once, stored, hashed and exported as they are; nothing is ever re-serialised. The first byte says the
layout:

- `0x01` **transfer created**, 125 bytes, big-endian, fixed layout (`TRANSFER_EVENT`):
  tag u8, id 16, debit_account_id 16, credit_account_id 16, amount i64, asset u16, code u16, flags u32,
  pending_id 16 (all zero when none), timeout_s u32, user_data_128 16, user_data_64 i64, user_data_32 u32,
  effective_date i32 (days since 1970-01-01), timestamp i64 (ledger nanoseconds).
- `0x02` **account created**, 57 bytes: tag u8, id 16, asset u16, code u16, flags u32, user_data_128 16,
  user_data_64 i64, user_data_32 u32, timestamp i64.
- `{` (0x7B) a **JSON event**: RFC 8785 canonical JSON (`ledger.audit.canonical`), an object with a
  `kind` member; integers only, NFC strings. Used for everything that is not a hot-path ledger row
  (vouchers, programmes, policies, keys, documents).

Ids are 128-bit values written as their 16 bytes. The ledger rows use a fixed binary layout because they
are the hot path (thousands per second) and because an auditor's replay can read them without a parser.
"""

import datetime as dt
import struct
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from ledger.accounts import AccountBalance
from ledger.audit.canonical import CanonicalValue, canonical_bytes, parse_canonical
from ledger.transfers import StoredTransfer

TRANSFER_TAG: Final = 0x01
ACCOUNT_TAG: Final = 0x02
JSON_TAG: Final = 0x7B  # "{"

TRANSFER_EVENT = struct.Struct(">B16s16s16sqHHI16sI16sqIiq")
ACCOUNT_EVENT = struct.Struct(">B16sHHI16sqIq")
_UNIX_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def transfer_event(row: StoredTransfer) -> bytes:
    return TRANSFER_EVENT.pack(
        TRANSFER_TAG,
        row.id.bytes,
        row.debit_account_id.bytes,
        row.credit_account_id.bytes,
        row.amount,
        row.asset,
        row.code,
        row.flags,
        row.pending_id.bytes,
        row.timeout_s,
        row.user_data_128.bytes,
        row.user_data_64,
        row.user_data_32,
        row.effective_date.toordinal() - _UNIX_EPOCH_ORDINAL,
        row.timestamp,
    )


def transfer_events(rows: Iterable[StoredTransfer]) -> list[bytes]:
    return [transfer_event(row) for row in rows]


def account_event(row: AccountBalance) -> bytes:
    return ACCOUNT_EVENT.pack(
        ACCOUNT_TAG,
        row.id.bytes,
        row.asset,
        row.code,
        row.flags,
        row.user_data_128.bytes,
        row.user_data_64,
        row.user_data_32,
        row.timestamp,
    )


def json_event(kind: str, fields: Mapping[str, CanonicalValue]) -> bytes:
    """A canonical JSON event: `fields` plus `kind`. Raises ValueError on floats or non-NFC strings."""
    assert "kind" not in fields, "kind is given separately"
    return canonical_bytes({"kind": kind, **fields})


@dataclass(frozen=True, slots=True)
class AccountEvent:
    id: uuid.UUID
    asset: int
    code: int
    flags: int
    user_data_128: uuid.UUID
    user_data_64: int
    user_data_32: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class JsonEvent:
    kind: str
    fields: dict[str, object]


# A transfer event reads back as the StoredTransfer it was made from.
Event = StoredTransfer | AccountEvent | JsonEvent


class EventFormatError(ValueError):
    """The bytes are not an event of any known layout."""


def decode_event(data: bytes) -> Event:
    """Read an event back; raises EventFormatError naming what is wrong."""
    if not data:
        raise EventFormatError("empty event")
    tag = data[0]
    if tag == TRANSFER_TAG:
        if len(data) != TRANSFER_EVENT.size:
            raise EventFormatError(f"transfer event must be {TRANSFER_EVENT.size} bytes, got {len(data)}")
        f = TRANSFER_EVENT.unpack(data)
        return StoredTransfer(
            uuid.UUID(bytes=f[1]), uuid.UUID(bytes=f[2]), uuid.UUID(bytes=f[3]), f[4], f[5], f[6], f[7],
            uuid.UUID(bytes=f[8]), f[9], uuid.UUID(bytes=f[10]), f[11], f[12],
            dt.date.fromordinal(f[13] + _UNIX_EPOCH_ORDINAL), f[14],
        )  # fmt: skip
    if tag == ACCOUNT_TAG:
        if len(data) != ACCOUNT_EVENT.size:
            raise EventFormatError(f"account event must be {ACCOUNT_EVENT.size} bytes, got {len(data)}")
        f = ACCOUNT_EVENT.unpack(data)
        return AccountEvent(uuid.UUID(bytes=f[1]), f[2], f[3], f[4], uuid.UUID(bytes=f[5]), f[6], f[7], f[8])
    if tag == JSON_TAG:
        try:
            value = parse_canonical(data)
        except ValueError as error:
            raise EventFormatError(f"JSON event: {error}") from error
        if not isinstance(value, dict) or not isinstance(value.get("kind"), str):
            raise EventFormatError("JSON event must be an object with a string 'kind'")
        kind = value.pop("kind")
        return JsonEvent(kind, value)
    raise EventFormatError(f"unknown event tag 0x{tag:02x}")
