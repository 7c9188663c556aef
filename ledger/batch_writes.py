"""The write round trips of a `create_transfers` request, once `ledger.batches` has decided it: the new
transfers (binary COPY for large batches, else a multi-row insert riding in the pipeline), their audit
events in the same transaction, and `ledger_apply_deltas`, which locks the touched accounts in id order,
refuses the batch if one was closed meanwhile, would overflow, or if debits and credits differ, and adds
the deltas; then failed ids and pending timeouts. Never commits.
"""

from contextlib import nullcontext
from typing import Any

import psycopg
from psycopg import pq

from ledger.accounts import AccountFlags
from ledger.audit.events import transfer_events
from ledger.audit.inbox import append_events
from ledger.batches import TransferBatch
from ledger.ids import ZERO_ID
from ledger.known_accounts import KnownAccounts
from ledger.transfers import StoredTransfer
from ledger.wire import (
    date_array,
    encode_transfers,
    int2_array,
    int4_array,
    int8_array,
    uuid_array,
    uuid_array_of_ints,
)

_CLOSED = int(AccountFlags.CLOSED)

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


def write_batch(
    connection: psycopg.Connection[Any],
    batch: TransferBatch,
    expired_ids: list[int],
    audit: bool,
    known: KnownAccounts | None,
) -> None:
    rows = batch.inserted
    # The caller's pipeline may already be open (the unit of work then sends these writes with its
    # commit, in one round trip); COPY cannot run inside one.
    pipelined = connection.pgconn.pipeline_status != pq.PipelineStatus.OFF
    copied = len(rows) >= COPY_ROWS_MIN and not pipelined
    if copied:
        copy_data, events = encode_transfers(rows, audit)
        with connection.cursor().copy(_COPY_TRANSFERS) as copy:
            copy.write(copy_data)
    else:
        events = transfer_events(rows) if audit else []
    with nullcontext() if pipelined else connection.pipeline():
        if rows and not copied:
            connection.execute(_INSERT_TRANSFERS, _transfer_columns(rows))
        append_events(connection, events)
        if rows:
            _apply_deltas(connection, batch, known)
        if batch.new_failures:
            connection.execute(
                _INSERT_FAILURES,
                (
                    batch.first_timestamp,
                    uuid_array_of_ints([failure[0] for failure in batch.new_failures]),
                    int2_array([failure[1] for failure in batch.new_failures]),
                ),
            )
        if batch.new_timeouts:
            connection.execute(
                _INSERT_TIMEOUTS,
                (
                    uuid_array_of_ints([timeout[0] for timeout in batch.new_timeouts]),
                    int8_array([timeout[1] for timeout in batch.new_timeouts]),
                ),
            )
        if expired_ids:
            connection.execute(_DELETE_TIMEOUTS, (uuid_array_of_ints(expired_ids),))


def _apply_deltas(
    connection: psycopg.Connection[Any], batch: TransferBatch, known: KnownAccounts | None
) -> None:
    touched_assets = batch.touched_accounts()
    touched = [account_id for account_id, _ in touched_assets]
    states = [batch.accounts[account_id] for account_id in touched]
    changes = [state.changes() for state in states]
    if known is not None:  # an account this batch closed or reopened is read again next time
        known.forget([key for key, change in zip(touched, changes, strict=True) if change[4] or change[5]])
    connection.execute(
        _APPLY_DELTAS,
        (
            uuid_array_of_ints(touched),
            int8_array([change[0] for change in changes]),
            int8_array([change[1] for change in changes]),
            int8_array([change[2] for change in changes]),
            int8_array([change[3] for change in changes]),
            int4_array([state.initial[4] & _CLOSED for state in states]),
            int4_array([change[4] for change in changes]),
            int4_array([change[5] for change in changes]),
            int2_array([asset for _, asset in touched_assets]),
        ),
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
