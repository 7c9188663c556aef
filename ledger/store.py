"""The set-based SQL behind a `create_transfers` request. Every function takes an open psycopg connection
inside the unit of work's transaction and never commits.

A request costs four round trips whatever its size: (1) the pending transfers it references and any
expired reservations; (2) an id-ordered `SELECT … FOR UPDATE` of the accounts whose balance limits the
decision depends on, a plain read of accounts the caller's memory does not hold (ledger.known_accounts),
the failed ids (and the existing ids, unless the caller assumes they are new), resolutions and a block of
ledger timestamps; then the in-memory decision (`ledger.batches`); (3) the writes (`ledger.batch_writes`),
ending in `ledger_apply_deltas`; (4) the commit. Hot accounts without limits are thus locked only from
(3) to the commit.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from ledger.accounts import AccountType
from ledger.batch_writes import write_batch
from ledger.batches import AccountState, TransferBatch
from ledger.clock import business_date
from ledger.known_accounts import KnownAccounts
from ledger.limits import EXPIRY_PER_BATCH_MAX
from ledger.results import CreateTransferResult
from ledger.transfers import StoredTransfer, Transfer
from ledger.vouchers.spend_rules import load_spend_rules
from ledger.wire import uuid_array_of_ints

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
_ANY_STORED = "SELECT 1 FROM transfers WHERE id = ANY(%b::uuid[]) LIMIT 1"


@dataclass(frozen=True, slots=True)
class _Request:
    """What a request references, and the stored transfers round trip 1 found; ids as `UUID.int`."""

    events: Sequence[Transfer]
    event_ids: list[int]
    pending_ids: list[int]
    expired_ids: list[int]
    account_ids: dict[int, uuid.UUID]
    # accounts of the pending transfers the batch resolves or expires: their counters are needed
    must_read: frozenset[int]
    loaded: dict[int, StoredTransfer]


def create_transfers(
    connection: psycopg.Connection[Any],
    events: Sequence[Transfer],
    audit: bool = True,
    release_expired: bool = True,
    *,
    known: KnownAccounts | None = None,
    assume_new_ids: bool = False,
    read_all_accounts: bool = False,
) -> tuple[list[CreateTransferResult], TransferBatch]:
    """Decide and write one batch; returns one result per event and the decided batch (rows written).
    `release_expired=False` skips looking for timed-out reservations (the caller does it often enough; a
    post or void of one is still refused by its timestamp). `audit=False` exists only so a benchmark can
    measure what the audit log costs; nothing else uses it.

    `known`: the caller's memory of accounts (see ledger.known_accounts); None reads every account, and so
    does `read_all_accounts` (a retry), which still teaches the memory what it read.
    `assume_new_ids`: do not look the event ids up among stored transfers. An id that was stored makes
    the insert fail on the primary key, so a caller that sets this must retry that failure without it (the
    `Ledger` does); events refused for a reason an existing id would pre-empt are checked here."""
    event_ids, pending_ids, account_ids = _referenced_ids(events)
    if pending_ids or release_expired:
        loaded, expired_ids = _read_pending_and_expired(connection, pending_ids, release_expired)
    else:
        loaded, expired_ids = {}, []
    must_read = set()
    for row in loaded.values():
        for account_id in (row.debit_account_id, row.credit_account_id):
            account_ids[account_id.int] = account_id
            must_read.add(account_id.int)
    request = _Request(events, event_ids, pending_ids, expired_ids, account_ids, frozenset(must_read), loaded)
    read_all, assume_new = known is None or read_all_accounts, assume_new_ids
    while True:  # at most three passes: each repeat turns one assumption off
        batch, results = _decide(connection, request, known, read_all, assume_new)
        if batch.unsure and not read_all:
            read_all = True
        elif assume_new and _stored_among(connection, events, results):
            assume_new = False
        else:
            break
    write_batch(connection, batch, request.expired_ids, audit, known)
    return results, batch


def _decide(
    connection: psycopg.Connection[Any],
    request: _Request,
    known: KnownAccounts | None,
    read_all: bool,
    assume_new_ids: bool,
) -> tuple[TransferBatch, list[CreateTransferResult]]:
    batch = _lock_and_load(connection, request, known, read_all, assume_new_ids)
    _load_voucher_rules(connection, batch, request.events)
    expiry_timestamps = batch.expire(request.expired_ids)
    return batch, batch.run(list(request.events), timestamp_offset=expiry_timestamps)


# Refusals an id already stored could have pre-empted with `exists…`: every code decided after the stored-id
# check (id_already_failed and the codes after it; new codes get new, larger values), and a failed chain's
# other events, since a stored one among them would have failed the chain there.
_DECIDED_ON_STATE = frozenset(
    {r for r in CreateTransferResult if r >= CreateTransferResult.id_already_failed}
    | {CreateTransferResult.linked_event_failed}
)


def _stored_among(
    connection: psycopg.Connection[Any], events: Sequence[Transfer], results: list[CreateTransferResult]
) -> bool:
    """Whether an event refused on ledger state has an id already stored (its answer is then `exists…`)."""
    refused = [
        event.id.int
        for event, result in zip(events, results, strict=True)
        if result in _DECIDED_ON_STATE and isinstance(event.id, uuid.UUID)
    ]
    if not refused:
        return False
    return connection.execute(_ANY_STORED, (uuid_array_of_ints(refused),), binary=True).fetchone() is not None


def _load_voucher_rules(
    connection: psycopg.Connection[Any], batch: TransferBatch, events: Sequence[Transfer]
) -> None:
    """A batch that debits a voucher account reads what that voucher may credit (one more round trip,
    paid only by such batches)."""
    accounts = batch.accounts
    if not any(state.code == _VOUCHER for state in accounts.values()):
        return
    spends = [
        (debit.id, event.credit_account_id)
        for event in events
        if isinstance(event.debit_account_id, uuid.UUID)
        and (debit := accounts.get(event.debit_account_id.int)) is not None
        and debit.code == _VOUCHER
    ]
    if spends:
        batch.spend_rules = load_spend_rules(
            connection, [debit for debit, _ in spends], [credit for _, credit in spends]
        )


def _referenced_ids(events: Sequence[Transfer]) -> tuple[list[int], list[int], dict[int, uuid.UUID]]:
    """(event ids, pending ids, account ids) of well-formed fields; malformed ones get their codes later."""
    event_ids: list[int] = []
    pending_ids: list[int] = []
    account_ids: dict[int, uuid.UUID] = {}
    for event in events:
        if isinstance(event.id, uuid.UUID):
            event_ids.append(event.id.int)
        pending = event.pending_id
        if isinstance(pending, uuid.UUID) and pending.int:
            pending_ids.append(pending.int)
        debit, credit = event.debit_account_id, event.credit_account_id
        if isinstance(debit, uuid.UUID) and debit.int:
            account_ids[debit.int] = debit
        if isinstance(credit, uuid.UUID) and credit.int:
            account_ids[credit.int] = credit
    return event_ids, pending_ids, account_ids


def _read_pending_and_expired(
    connection: psycopg.Connection[Any], pending_ids: list[int], release_expired: bool
) -> tuple[dict[int, StoredTransfer], list[int]]:
    """Round trip 1: the pending transfers the batch names, and reservations whose timeout passed."""
    transfers: dict[int, StoredTransfer] = {}
    with connection.pipeline():  # leaving the block is the one sync: results are read after it
        pending_cursor = _query(connection, SELECT_TRANSFERS, pending_ids)
        expired_cursor = connection.execute(_SELECT_EXPIRED, binary=True) if release_expired else None
    for row in pending_cursor.fetchall() if pending_cursor is not None else []:
        transfers[row[0].int] = StoredTransfer(*row)
    expired = [StoredTransfer(*row) for row in expired_cursor.fetchall()] if expired_cursor else []
    for row in expired:
        transfers[row.id.int] = row
    return transfers, [row.id.int for row in expired]


def _lock_and_load(
    connection: psycopg.Connection[Any],
    request: _Request,
    known: KnownAccounts | None,
    read_all: bool,
    assume_new_ids: bool,
) -> TransferBatch:
    """Round trip 2: lock the limited accounts, read the ones not remembered, and reserve timestamps."""
    accounts, to_lock, to_read = _remembered_accounts(request, known, read_all)
    event_id_array = uuid_array_of_ints(request.event_ids)
    resolving = request.pending_ids + request.expired_ids
    with connection.pipeline():  # leaving the block is the one sync: results are read after it
        locked_cursor = _query(connection, _LOCK_LIMITED_ACCOUNTS, to_lock)
        read_cursor = _query(connection, _READ_ACCOUNTS, to_read)
        existing_cursor = None if assume_new_ids else _query(connection, SELECT_TRANSFERS, request.event_ids)
        resolution_cursor = _query(connection, _SELECT_RESOLUTIONS, resolving)
        failure_cursor = connection.execute(_SELECT_FAILURES, (event_id_array,), binary=True)
        clock_cursor = connection.execute(
            _RESERVE_TIMESTAMPS, (max(len(request.events) + len(request.expired_ids), 1),)
        )
    read = read_cursor.fetchall() if read_cursor is not None else []
    locked = locked_cursor.fetchall() if locked_cursor is not None else []
    transfers = dict(request.loaded)
    for row in existing_cursor.fetchall() if existing_cursor is not None else []:
        transfers[row[0].int] = StoredTransfer(*row)
    resolutions = {row[0].int: row[1] for row in resolution_cursor.fetchall()} if resolution_cursor else {}
    failed = {row[0].int: row[1] for row in failure_cursor.fetchall()}
    clock_row = clock_cursor.fetchone()
    for row in read + locked:  # locked last: read under lock, these counters are the current ones
        accounts[row[0].int] = AccountState(row)
    if known is not None and (read or locked):
        known.remember_read([(row[0].int, row[1], row[2], row[3]) for row in read + locked])
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


def _remembered_accounts(
    request: _Request, known: KnownAccounts | None, read_all: bool
) -> tuple[dict[int, AccountState], list[int], list[int]]:
    """The accounts the batch decides on from memory, and the ids to lock (if limited) and to read."""
    if known is None or read_all:
        every = list(request.account_ids)
        return {}, every, every
    accounts: dict[int, AccountState] = {}
    to_lock: list[int] = []
    to_read: list[int] = []
    plain, limited, must_read = known.plain, known.limited, request.must_read
    for key, account_id in request.account_ids.items():
        if key in limited:
            to_lock.append(key)
            continue
        identity = plain.get(key)
        if identity is None or key in must_read:
            to_lock.append(key)
            to_read.append(key)
        else:
            accounts[key] = AccountState((account_id, identity[0], identity[1], 0, 0, 0, 0, 0), True)
    return accounts, to_lock, to_read


def _query(connection: psycopg.Connection[Any], statement: str, ids: list[int]) -> psycopg.Cursor[Any] | None:
    """`statement` over `ids` in the pipeline, or nothing when there are no ids."""
    if not ids:
        return None
    return connection.execute(statement, (uuid_array_of_ints(ids),), binary=True)
