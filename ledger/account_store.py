"""The SQL behind `create_accounts`: one pipelined read of the ids and a block of ledger timestamps, the
decision in memory (linked chains created or refused as a whole), then one multi-row insert and the
accounts' audit events, inside the unit of work's transaction."""

import uuid
from collections.abc import Sequence
from typing import Any

import psycopg

from ledger.accounts import Account, AccountBalance, AccountFlags, compare_existing_account, validate_account
from ledger.audit.events import account_event
from ledger.audit.inbox import append_events
from ledger.results import CreateAccountResult
from ledger.wire import int2_array, int4_array, int8_array, uuid_array

ACCOUNT_COLUMNS = (
    "id, asset, code, flags, user_data_128, user_data_64, user_data_32, debits_pending, debits_posted, "
    'credits_pending, credits_posted, "timestamp"'
)
_RESERVE_TIMESTAMPS = "SELECT ledger_clock_reserve(%s)"
SELECT_ACCOUNTS = f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ANY(%b::uuid[])"
_INSERT_ACCOUNTS = """
INSERT INTO accounts (id, asset, code, flags, user_data_128, user_data_64, user_data_32,
                      debits_pending, debits_posted, credits_pending, credits_posted, "timestamp")
SELECT id, asset, code, flags, user_data_128, user_data_64, user_data_32, 0, 0, 0, 0, "timestamp"
  FROM unnest(%b::uuid[], %b::smallint[], %b::smallint[], %b::int[], %b::uuid[], %b::bigint[], %b::int[],
              %b::bigint[])
    AS n(id, asset, code, flags, user_data_128, user_data_64, user_data_32, "timestamp")
"""


def create_accounts(
    connection: psycopg.Connection[Any], events: Sequence[Account]
) -> tuple[list[CreateAccountResult], list[AccountBalance]]:
    """Create accounts; one result per event. Linked chains are created or refused as a whole."""
    ids = [event.id for event in events if isinstance(event.id, uuid.UUID)]
    with connection.pipeline() as pipeline:
        existing_cursor = connection.execute(SELECT_ACCOUNTS, (uuid_array(ids),))
        clock_cursor = connection.execute(_RESERVE_TIMESTAMPS, (max(len(events), 1),))
        pipeline.sync()
        existing = {row[0]: AccountBalance(*row) for row in existing_cursor.fetchall()}
        clock_row = clock_cursor.fetchone()
    assert clock_row is not None
    first_timestamp = int(clock_row[0])

    results = [CreateAccountResult.ok] * len(events)
    created: list[AccountBalance] = []
    count = len(events)
    index = 0
    while index < count:
        end = index
        while end < count and _is_linked(events[end].flags):
            end += 1
        chain_open = end == count
        last = count - 1 if chain_open else end
        mark = len(created)
        failed_at, failure = -1, CreateAccountResult.ok
        for position in range(index, last + 1):
            if chain_open and position == last:
                failed_at, failure = position, CreateAccountResult.linked_event_chain_open
                break
            result = _decide_account(events[position], existing, first_timestamp + position, created)
            results[position] = result
            if result is not CreateAccountResult.ok and result is not CreateAccountResult.exists:
                failed_at, failure = position, result
                break
        if failed_at >= 0:
            for row in created[mark:]:
                del existing[row.id]
            del created[mark:]
            for position in range(index, last + 1):
                results[position] = CreateAccountResult.linked_event_failed
            results[failed_at] = failure
        index = last + 1

    if created:
        append_events(connection, [account_event(row) for row in created])
        connection.execute(
            _INSERT_ACCOUNTS,
            (
                uuid_array([a.id for a in created]),
                int2_array([a.asset for a in created]),
                int2_array([a.code for a in created]),
                int4_array([a.flags for a in created]),
                uuid_array([a.user_data_128 for a in created]),
                int8_array([a.user_data_64 for a in created]),
                int4_array([a.user_data_32 for a in created]),
                int8_array([a.timestamp for a in created]),
            ),
        )
    return results, created


def _is_linked(flags: object) -> bool:
    return isinstance(flags, int) and bool(flags & AccountFlags.LINKED)


def _decide_account(
    event: Account, existing: dict[uuid.UUID, AccountBalance], timestamp: int, created: list[AccountBalance]
) -> CreateAccountResult:
    result = validate_account(event)
    if result is not CreateAccountResult.ok:
        return result
    stored = existing.get(event.id)
    if stored is not None:
        return compare_existing_account(event, stored)
    row = AccountBalance(
        id=event.id,
        asset=event.asset,
        code=event.code,
        flags=event.flags & ~AccountFlags.LINKED,
        user_data_128=event.user_data_128,
        user_data_64=event.user_data_64,
        user_data_32=event.user_data_32,
        debits_pending=0,
        debits_posted=0,
        credits_pending=0,
        credits_posted=0,
        timestamp=timestamp,
    )
    existing[event.id] = row
    created.append(row)
    return CreateAccountResult.ok
