"""Column arrays in PostgreSQL's binary array format, built with `struct` in one pass.

psycopg dumps a Python list element by element in Python (about a microsecond each); a batch sends some
twenty arrays of up to 8189 elements, so that alone cost more than the decision. These wrappers carry the
finished bytes and their array type; `register_array_dumpers` tells a connection how to send them.

Binary array layout: ndim, has-nulls flag, element type oid, then (length, lower bound) per dimension,
then each element as a 4-byte length and its bytes. NULL elements are never used here.
"""

import datetime as dt
import struct
import uuid
from collections.abc import Iterable, Sequence

from psycopg.abc import AdaptContext
from psycopg.adapt import Dumper
from psycopg.pq import Format

from ledger.audit.events import TRANSFER_EVENT, TRANSFER_TAG
from ledger.transfers import StoredTransfer

UUID_OID, UUID_ARRAY_OID = 2950, 2951
INT8_OID, INT8_ARRAY_OID = 20, 1016
INT4_OID, INT4_ARRAY_OID = 23, 1007
INT2_OID, INT2_ARRAY_OID = 21, 1005
DATE_OID, DATE_ARRAY_OID = 1082, 1182

_HEADER = struct.Struct(">iiIii")
_UUID_LENGTH = b"\x00\x00\x00\x10"
_INT8 = struct.Struct(">iq")
_INT4 = struct.Struct(">ii")
_INT2 = struct.Struct(">ih")
_POSTGRES_EPOCH = dt.date(2000, 1, 1)
_UNIX_EPOCH = dt.date(1970, 1, 1)
_ZERO_ID_BYTES = bytes(16)


class BinaryArray:
    """Pre-encoded array bytes; the subclass names the PostgreSQL array type."""

    __slots__ = ("data",)
    array_oid = 0

    def __init__(self, data: bytes) -> None:
        self.data = data


class UuidArray(BinaryArray):
    __slots__ = ()
    array_oid = UUID_ARRAY_OID


class Int8Array(BinaryArray):
    __slots__ = ()
    array_oid = INT8_ARRAY_OID


class Int4Array(BinaryArray):
    __slots__ = ()
    array_oid = INT4_ARRAY_OID


class Int2Array(BinaryArray):
    __slots__ = ()
    array_oid = INT2_ARRAY_OID


class DateArray(BinaryArray):
    __slots__ = ()
    array_oid = DATE_ARRAY_OID


def uuid_array(values: Sequence[uuid.UUID]) -> UuidArray:
    body = b"".join([_UUID_LENGTH + value.int.to_bytes(16) for value in values])
    return UuidArray(_HEADER.pack(1, 0, UUID_OID, len(values), 1) + body)


def uuid_array_of_ints(values: Sequence[int]) -> UuidArray:
    """A uuid[] from ids given as their 128-bit integers (`UUID.int`)."""
    body = b"".join([_UUID_LENGTH + value.to_bytes(16) for value in values])
    return UuidArray(_HEADER.pack(1, 0, UUID_OID, len(values), 1) + body)


def int8_array(values: Sequence[int]) -> Int8Array:
    pack = _INT8.pack
    return Int8Array(_HEADER.pack(1, 0, INT8_OID, len(values), 1) + b"".join([pack(8, v) for v in values]))


def int4_array(values: Sequence[int]) -> Int4Array:
    pack = _INT4.pack
    return Int4Array(_HEADER.pack(1, 0, INT4_OID, len(values), 1) + b"".join([pack(4, v) for v in values]))


def int2_array(values: Sequence[int]) -> Int2Array:
    pack = _INT2.pack
    return Int2Array(_HEADER.pack(1, 0, INT2_OID, len(values), 1) + b"".join([pack(2, v) for v in values]))


def date_array(values: Iterable[dt.date]) -> DateArray:
    pack = _INT4.pack
    epoch = _POSTGRES_EPOCH.toordinal()
    days = [pack(4, value.toordinal() - epoch) for value in values]
    return DateArray(_HEADER.pack(1, 0, DATE_OID, len(days), 1) + b"".join(days))


class _BinaryArrayDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: BinaryArray) -> bytes:
        return obj.data


def register_array_dumpers(context: AdaptContext) -> None:
    """Teach a connection (or adapters map) to send the pre-encoded arrays with their own type oids."""
    for kind in (UuidArray, Int8Array, Int4Array, Int2Array, DateArray):
        dumper = type(f"{kind.__name__}Dumper", (_BinaryArrayDumper,), {"oid": kind.array_oid})
        context.adapters.register_dumper(kind, dumper)


# COPY … FROM STDIN (FORMAT BINARY): a signature, flags and header-extension length, then each row as a
# field count and (length, bytes) per field, then -1. Used for the transfers insert, the largest write.
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = b"\xff\xff"
# transfers: id, debit, credit, amount, asset, code, flags, pending_id, timeout_s, user_data_128,
# user_data_64, user_data_32, effective_date, timestamp
_TRANSFER_ROW = struct.Struct(">h i16s i16s i16s iq ih ih ii i16s ii i16s iq ii ii iq".replace(" ", ""))
_TRANSFER_ROW_NO_PENDING = struct.Struct(
    ">h i16s i16s i16s iq ih ih ii i ii i16s iq ii ii iq".replace(" ", "")
)


def encode_transfers(rows: Iterable[StoredTransfer], audit: bool) -> tuple[bytes, list[bytes]]:
    """The binary COPY stream of transfer rows (a zero pending id is written as NULL) and, when `audit`,
    each row's audit event (`ledger.audit.events.transfer_event`, byte for byte). One pass: each id is
    turned into bytes once for both."""
    pg_epoch = _POSTGRES_EPOCH.toordinal()
    unix_epoch = _UNIX_EPOCH.toordinal()
    with_pending = _TRANSFER_ROW.pack
    without_pending = _TRANSFER_ROW_NO_PENDING.pack
    event = TRANSFER_EVENT.pack
    encoded: list[bytes] = []
    events: list[bytes] = []
    last_date, day = None, 0
    for r in rows:
        if r.effective_date is not last_date:
            last_date, day = r.effective_date, r.effective_date.toordinal()
        id_bytes, debit, credit = (
            r.id.int.to_bytes(16),
            r.debit_account_id.int.to_bytes(16),
            r.credit_account_id.int.to_bytes(16),
        )
        pending, user_data_128 = r.pending_id.int.to_bytes(16), r.user_data_128.int.to_bytes(16)
        if pending == _ZERO_ID_BYTES:
            encoded.append(
                without_pending(
                    14, 16, id_bytes, 16, debit, 16, credit, 8, r.amount, 2, r.asset, 2, r.code, 4, r.flags,
                    -1, 4, r.timeout_s, 16, user_data_128, 8, r.user_data_64, 4, r.user_data_32,
                    4, day - pg_epoch, 8, r.timestamp,
                )
            )  # fmt: skip
        else:
            encoded.append(
                with_pending(
                    14, 16, id_bytes, 16, debit, 16, credit, 8, r.amount, 2, r.asset, 2, r.code, 4, r.flags,
                    16, pending, 4, r.timeout_s, 16, user_data_128, 8, r.user_data_64, 4, r.user_data_32,
                    4, day - pg_epoch, 8, r.timestamp,
                )
            )  # fmt: skip
        if audit:
            events.append(
                event(
                    TRANSFER_TAG, id_bytes, debit, credit, r.amount, r.asset, r.code, r.flags, pending,
                    r.timeout_s, user_data_128, r.user_data_64, r.user_data_32, day - unix_epoch, r.timestamp,
                )
            )  # fmt: skip
    return COPY_HEADER + b"".join(encoded) + COPY_TRAILER, events
