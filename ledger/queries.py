"""Read-side queries: lookups, an account's transfers page by page, its balance as of a past moment, and
the full-scan invariant check. Each takes an open connection and never writes."""

import uuid
from collections.abc import Iterable
from typing import Any

import psycopg

from ledger.account_store import SELECT_ACCOUNTS
from ledger.accounts import AccountBalance
from ledger.store import SELECT_TRANSFERS, transfer_columns
from ledger.transfers import StoredTransfer
from ledger.wire import uuid_array


def lookup_accounts(connection: psycopg.Connection[Any], ids: Iterable[uuid.UUID]) -> list[AccountBalance]:
    rows = connection.execute(SELECT_ACCOUNTS + " ORDER BY id", (uuid_array(list(ids)),)).fetchall()
    return [AccountBalance(*row) for row in rows]


def lookup_transfers(connection: psycopg.Connection[Any], ids: Iterable[uuid.UUID]) -> list[StoredTransfer]:
    rows = connection.execute(SELECT_TRANSFERS + ' ORDER BY "timestamp"', (uuid_array(list(ids)),)).fetchall()
    return [StoredTransfer(*row) for row in rows]


_SELECT_ACCOUNT_TRANSFERS = f"""
SELECT {transfer_columns("page")} FROM (
    (SELECT * FROM transfers WHERE debit_account_id = %(account)s AND "timestamp" > %(after)s
      ORDER BY "timestamp" LIMIT %(limit)s)
    UNION ALL
    (SELECT * FROM transfers WHERE credit_account_id = %(account)s AND "timestamp" > %(after)s
      ORDER BY "timestamp" LIMIT %(limit)s)
) page ORDER BY "timestamp" LIMIT %(limit)s
"""


def account_transfers(
    connection: psycopg.Connection[Any], account_id: uuid.UUID, after_timestamp: int, limit: int
) -> list[StoredTransfer]:
    """An account's transfers in ledger order, strictly after `after_timestamp` (the cursor)."""
    rows = connection.execute(
        _SELECT_ACCOUNT_TRANSFERS, {"account": account_id, "after": after_timestamp, "limit": limit}
    ).fetchall()
    return [StoredTransfer(*row) for row in rows]


_BALANCE_AS_OF = """
WITH moves AS (
    SELECT t.debit_account_id = %(account)s AS is_debit, t.flags, t.amount, p.amount AS released
      FROM transfers t LEFT JOIN transfers p ON p.id = t.pending_id
     WHERE (t.debit_account_id = %(account)s OR t.credit_account_id = %(account)s)
       AND t."timestamp" <= %(at)s
)
SELECT coalesce(sum(CASE WHEN flags & 2 <> 0 THEN amount ELSE 0 END - coalesce(released, 0))
                FILTER (WHERE is_debit), 0)::bigint,
       coalesce(sum(amount) FILTER (WHERE is_debit AND flags & 10 = 0), 0)::bigint,
       coalesce(sum(CASE WHEN flags & 2 <> 0 THEN amount ELSE 0 END - coalesce(released, 0))
                FILTER (WHERE NOT is_debit), 0)::bigint,
       coalesce(sum(amount) FILTER (WHERE NOT is_debit AND flags & 10 = 0), 0)::bigint
  FROM moves
"""


def balance_as_of(
    connection: psycopg.Connection[Any], account_id: uuid.UUID, timestamp: int
) -> tuple[int, int, int, int]:
    """(debits_pending, debits_posted, credits_pending, credits_posted) including every transfer stamped at
    or before `timestamp`."""
    row = connection.execute(_BALANCE_AS_OF, {"account": account_id, "at": timestamp}).fetchone()
    assert row is not None
    return (int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def invariant_violations(connection: psycopg.Connection[Any]) -> list[str]:
    """Every way the stored ledger breaks its invariants; empty when it is sound. Scans everything."""
    problems: list[str] = []
    row = connection.execute(
        "SELECT coalesce(sum(debits_posted), 0) - coalesce(sum(credits_posted), 0),"
        " coalesce(sum(debits_pending), 0) - coalesce(sum(credits_pending), 0) FROM accounts"
    ).fetchone()
    assert row is not None
    if row[0] != 0 or row[1] != 0:
        problems.append(f"zero sum broken: posted difference {row[0]}, pending difference {row[1]}")
    mismatched = connection.execute(
        "SELECT a.id FROM accounts a JOIN account_transfer_sums s ON s.account_id = a.id"
        " WHERE (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)"
        " <> (s.debits_pending, s.debits_posted, s.credits_pending, s.credits_posted) ORDER BY a.id LIMIT 20"
    ).fetchall()
    problems.extend(f"account {r[0]}: counters differ from the sums of its transfers" for r in mismatched)
    return problems
