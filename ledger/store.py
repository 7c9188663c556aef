"""The set-based SQL behind a ledger request. Every function takes an open psycopg connection inside the
unit of work's transaction and never commits.

A `create_transfers` request costs four round trips whatever its size: (1) the pending transfers it
references and any expired reservations; (2) an id-ordered `SELECT … FOR UPDATE` of the accounts whose
balance limits the decision depends on, a plain read of the other accounts, the existing ids, resolutions
and failed ids, and a block of ledger timestamps; then the in-memory decision (`ledger.batches`); (3) one
multi-row insert of the new transfers and `ledger_apply_deltas`, which locks the touched accounts in id
order, refuses the batch if one was closed meanwhile or if debits and credits differ, and adds the deltas;
(4) the commit. Hot accounts without limits are thus locked only from (3) to the commit.
"""

import uuid
from collections.abc import Sequence
from typing import Any

import psycopg

from ledger.accounts import (
    AccountFlags,
    AccountType,
)
from ledger.audit.events import transfer_events
from ledger.audit.inbox import append_events
from ledger.batches import AccountState, TransferBatch
from ledger.clock import business_date
from ledger.ids import ZERO_ID
from ledger.limits import EXPIRY_PER_BATCH_MAX
from ledger.results import CreateTransferResult
from ledger.transfers import StoredTransfer, Transfer
from ledger.vouchers.spend_rules import load_spend_rules
from ledger.wire import date_array, int2_array, int4_array, int8_array, transfer_copy_data, uuid_array

_CLOSED = int(AccountFlags.CLOSED)
_VOUCHER = int(AccountType.VOUCHER)


def transfer_columns(table: str) -> str:
    """Columns in `StoredTransfer` field order; a missing pending id reads as the zero id."""
    t = table
    return (
        f"{t}.id, {t}.debit_account_id, {t}.credit_account_id, {t}.amount, {t}.asset, {t}.code, {t}.flags, "
        f"coalesce({t}.pending_id, '00000000-0000-0000-0000-000000000000'::uuid), {t}.timeout_s, "
        f'{t}.user_data_128, {t}.user_data_64, {t}.user_data_32, {t}.effective_date, {t}."timestamp"'
    )


TRANSFER_COLUMNS = transfer_columns("transfers")

SELECT_TRANSFERS = f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = ANY(%b::uuid[])"
_SELECT_EXPIRED = f"""
SELECT {transfer_columns("t")}
  FROM pending_timeouts pt JOIN transfers t ON t.id = pt.transfer_id
 WHERE pt.expires_at <= (extract(epoch FROM clock_timestamp()) * 1000000)::bigint * 1000
 ORDER BY pt.expires_at
 LIMIT {EXPIRY_PER_BATCH_MAX}
   FOR UPDATE OF pt SKIP LOCKED
"""
# Accounts whose decisions depend on their balance (a limit flag; those bits never change) are locked,
# in id order, before the batch is decided. The rest are read without a lock: a transfer's outcome on
# them depends only on their asset and closed flag, and their counters change by deltas that commute.
_LOCK_LIMITED_ACCOUNTS = """
SELECT id, asset, code, flags, debits_pending, debits_posted, credits_pending, credits_posted
  FROM accounts WHERE id = ANY(%b::uuid[]) AND flags & 6 <> 0 ORDER BY id FOR UPDATE
"""
_READ_ACCOUNTS = """
SELECT id, asset, code, flags, debits_pending, debits_posted, credits_pending, credits_posted
  FROM accounts WHERE id = ANY(%b::uuid[])
"""
_SELECT_RESOLUTIONS = "SELECT pending_id, flags FROM transfers WHERE pending_id = ANY(%b::uuid[])"
_SELECT_FAILURES = "SELECT id, result FROM transfer_failures WHERE id = ANY(%b::uuid[])"
_RESERVE_TIMESTAMPS = "SELECT ledger_clock_reserve(%s)"
# COPY is the cheapest way in for large batches but costs a round trip of its own; below this many rows a
# multi-row INSERT riding in the write pipeline is faster (coalesced single requests are ~10-30 rows).
COPY_ROWS_MIN = 64
_INSERT_TRANSFERS = """
INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, asset, code, flags, pending_id,
                       timeout_s, user_data_128, user_data_64, user_data_32, effective_date, "timestamp")
SELECT id, debit_account_id, credit_account_id, amount, asset, code, flags, nullif(pending_id, %b::uuid),
       timeout_s, user_data_128, user_data_64, user_data_32, effective_date, "timestamp"
  FROM unnest(%b::uuid[], %b::uuid[], %b::uuid[], %b::bigint[], %b::smallint[], %b::smallint[], %b::int[],
              %b::uuid[], %b::int[], %b::uuid[], %b::bigint[], %b::int[], %b::date[], %b::bigint[])
    AS n(id, debit_account_id, credit_account_id, amount, asset, code, flags, pending_id, timeout_s,
         user_data_128, user_data_64, user_data_32, effective_date, "timestamp")
"""
_COPY_TRANSFERS = """
COPY transfers (id, debit_account_id, credit_account_id, amount, asset, code, flags, pending_id, timeout_s,
                user_data_128, user_data_64, user_data_32, effective_date, "timestamp")
FROM STDIN (FORMAT BINARY)
"""
_APPLY_DELTAS = (
    "SELECT ledger_apply_deltas(%b::uuid[], %b::bigint[], %b::bigint[], %b::bigint[], %b::bigint[],"
    " %b::int[], %b::int[], %b::int[], %b::smallint[])"
)
_INSERT_FAILURES = """
INSERT INTO transfer_failures (id, result, "timestamp")
SELECT id, result, %s FROM unnest(%b::uuid[], %b::smallint[]) AS n(id, result)
ON CONFLICT (id) DO NOTHING
"""
_INSERT_TIMEOUTS = """
INSERT INTO pending_timeouts (transfer_id, expires_at)
SELECT * FROM unnest(%b::uuid[], %b::bigint[])
"""
_DELETE_TIMEOUTS = "DELETE FROM pending_timeouts WHERE transfer_id = ANY(%b::uuid[])"


def _uuid_or_none(value: object) -> uuid.UUID | None:
    return value if isinstance(value, uuid.UUID) and value != ZERO_ID else None


def create_transfers(
    connection: psycopg.Connection[Any],
    events: Sequence[Transfer],
    audit: bool = True,
    release_expired: bool = True,
) -> tuple[list[CreateTransferResult], TransferBatch]:
    """Decide and write one batch; returns one result per event and the decided batch (rows written).
    `release_expired=False` skips looking for timed-out reservations (the caller does it often enough; a
    post or void of one is still refused by its timestamp). `audit=False` exists only so a benchmark can
    measure what the audit log costs; nothing else uses it."""
    event_ids, pending_ids, account_ids = _referenced_ids(events)
    if pending_ids or release_expired:
        transfers, expired_ids = _read_pending_and_expired(connection, pending_ids, release_expired)
    else:
        transfers, expired_ids = {}, []
    for row in transfers.values():
        account_ids.add(row.debit_account_id)
        account_ids.add(row.credit_account_id)
    batch = _lock_and_load(
        connection, event_ids, pending_ids, expired_ids, account_ids, transfers, len(events)
    )
    _load_voucher_rules(connection, batch, events)
    expiry_timestamps = batch.expire(expired_ids)
    results = batch.run(list(events), timestamp_offset=expiry_timestamps)
    _write_batch(connection, batch, expired_ids, audit)
    return results, batch


def _load_voucher_rules(
    connection: psycopg.Connection[Any], batch: TransferBatch, events: Sequence[Transfer]
) -> None:
    """A batch that debits a voucher account reads what that voucher may credit (one more round trip,
    paid only by such batches)."""
    accounts = batch.accounts
    spends = [
        (event.debit_account_id, event.credit_account_id)
        for event in events
        if (debit := accounts.get(event.debit_account_id)) is not None and debit.code == _VOUCHER
    ]
    if spends:
        batch.spend_rules = load_spend_rules(
            connection, [debit for debit, _ in spends], [credit for _, credit in spends]
        )


def _referenced_ids(events: Sequence[Transfer]) -> tuple[list[uuid.UUID], list[uuid.UUID], set[uuid.UUID]]:
    """(event ids, pending ids, account ids) of well-formed fields; malformed ones get their codes later."""
    event_ids: list[uuid.UUID] = []
    pending_ids: list[uuid.UUID] = []
    account_ids: set[uuid.UUID] = set()
    for event in events:
        if isinstance(event.id, uuid.UUID):
            event_ids.append(event.id)
        pending = _uuid_or_none(event.pending_id)
        if pending is not None:
            pending_ids.append(pending)
        for account_id in (event.debit_account_id, event.credit_account_id):
            if _uuid_or_none(account_id) is not None:
                account_ids.add(account_id)
    return event_ids, pending_ids, account_ids


def _read_pending_and_expired(
    connection: psycopg.Connection[Any], pending_ids: list[uuid.UUID], release_expired: bool
) -> tuple[dict[uuid.UUID, StoredTransfer], list[uuid.UUID]]:
    """Round trip 1: the pending transfers the batch names, and reservations whose timeout passed."""
    transfers: dict[uuid.UUID, StoredTransfer] = {}
    with connection.pipeline() as pipeline:
        pending_cursor = (
            connection.execute(SELECT_TRANSFERS, (uuid_array(pending_ids),), binary=True)
            if pending_ids
            else None
        )
        expired_cursor = connection.execute(_SELECT_EXPIRED, binary=True) if release_expired else None
        pipeline.sync()
        for row in pending_cursor.fetchall() if pending_cursor is not None else []:
            transfers[row[0]] = StoredTransfer(*row)
        expired = [StoredTransfer(*row) for row in expired_cursor.fetchall()] if expired_cursor else []
    for row in expired:
        transfers[row.id] = row
    return transfers, [row.id for row in expired]


def _lock_and_load(
    connection: psycopg.Connection[Any],
    event_ids: list[uuid.UUID],
    pending_ids: list[uuid.UUID],
    expired_ids: list[uuid.UUID],
    account_ids: set[uuid.UUID],
    transfers: dict[uuid.UUID, StoredTransfer],
    event_count: int,
) -> TransferBatch:
    """Round trip 2: lock the limited accounts, read the rest, and reserve the batch's timestamps."""
    with connection.pipeline() as pipeline:
        account_list = uuid_array(list(account_ids))
        event_id_array = uuid_array(event_ids)
        locked_cursor = connection.execute(_LOCK_LIMITED_ACCOUNTS, (account_list,), binary=True)
        read_cursor = connection.execute(_READ_ACCOUNTS, (account_list,), binary=True)
        existing_cursor = connection.execute(SELECT_TRANSFERS, (event_id_array,), binary=True)
        resolution_cursor = (
            connection.execute(_SELECT_RESOLUTIONS, (uuid_array(pending_ids + expired_ids),), binary=True)
            if pending_ids or expired_ids
            else None
        )
        failure_cursor = connection.execute(_SELECT_FAILURES, (event_id_array,), binary=True)
        clock_cursor = connection.execute(_RESERVE_TIMESTAMPS, (max(event_count + len(expired_ids), 1),))
        pipeline.sync()
        accounts = {row[0]: AccountState(row) for row in read_cursor.fetchall()}
        for row in locked_cursor.fetchall():  # read under lock: these counters are the current ones
            accounts[row[0]] = AccountState(row)
        for row in existing_cursor.fetchall():
            transfers[row[0]] = StoredTransfer(*row)
        resolutions = dict(resolution_cursor.fetchall()) if resolution_cursor is not None else {}
        failed = dict(failure_cursor.fetchall())
        clock_row = clock_cursor.fetchone()
    assert clock_row is not None
    first_timestamp = int(clock_row[0])
    return TransferBatch(
        accounts=accounts,
        transfers=transfers,
        resolutions=resolutions,
        failed=failed,
        first_timestamp=first_timestamp,
        business_date=business_date(first_timestamp),
    )


def _transfer_columns(rows: list[StoredTransfer]) -> tuple[object, ...]:
    """The parameters of `_INSERT_TRANSFERS`: the zero id (stored as NULL pending_id), then each column."""
    return (
        ZERO_ID,
        uuid_array([r.id for r in rows]),
        uuid_array([r.debit_account_id for r in rows]),
        uuid_array([r.credit_account_id for r in rows]),
        int8_array([r.amount for r in rows]),
        int2_array([r.asset for r in rows]),
        int2_array([r.code for r in rows]),
        int4_array([r.flags for r in rows]),
        uuid_array([r.pending_id for r in rows]),
        int4_array([r.timeout_s for r in rows]),
        uuid_array([r.user_data_128 for r in rows]),
        int8_array([r.user_data_64 for r in rows]),
        int4_array([r.user_data_32 for r in rows]),
        date_array([r.effective_date for r in rows]),
        int8_array([r.timestamp for r in rows]),
    )


def _write_batch(
    connection: psycopg.Connection[Any], batch: TransferBatch, expired_ids: list[uuid.UUID], audit: bool
) -> None:
    rows = batch.inserted
    events = transfer_events(rows) if audit else []
    copied = len(rows) >= COPY_ROWS_MIN
    if copied:
        with connection.cursor().copy(_COPY_TRANSFERS) as copy:
            copy.write(transfer_copy_data(rows, ZERO_ID))
    with connection.pipeline():
        if rows and not copied:
            connection.execute(_INSERT_TRANSFERS, _transfer_columns(rows))
        append_events(connection, events)
        if rows:
            touched_assets = batch.touched_accounts()
            touched = [account_id for account_id, _ in touched_assets]
            changes = [batch.accounts[account_id].changes() for account_id in touched]
            connection.execute(
                _APPLY_DELTAS,
                (
                    uuid_array(touched),
                    int8_array([change[0] for change in changes]),
                    int8_array([change[1] for change in changes]),
                    int8_array([change[2] for change in changes]),
                    int8_array([change[3] for change in changes]),
                    int4_array([batch.accounts[account_id].initial[4] & _CLOSED for account_id in touched]),
                    int4_array([change[4] for change in changes]),
                    int4_array([change[5] for change in changes]),
                    int2_array([asset for _, asset in touched_assets]),
                ),
            )
        if batch.new_failures:
            connection.execute(
                _INSERT_FAILURES,
                (
                    batch.first_timestamp,
                    uuid_array([failure[0] for failure in batch.new_failures]),
                    int2_array([failure[1] for failure in batch.new_failures]),
                ),
            )
        if batch.new_timeouts:
            connection.execute(
                _INSERT_TIMEOUTS,
                (
                    uuid_array([timeout[0] for timeout in batch.new_timeouts]),
                    int8_array([timeout[1] for timeout in batch.new_timeouts]),
                ),
            )
        if expired_ids:
            connection.execute(_DELETE_TIMEOUTS, (uuid_array(expired_ids),))
