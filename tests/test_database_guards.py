"""Money invariants live in PostgreSQL: these tests go around Python with raw SQL and assert the SQLSTATE
and the constraint name of each refusal."""

import uuid

import psycopg
import pytest

from ledger.accounts import Account, AccountFlags, AccountType
from ledger.ids import new_id
from ledger.money import Asset
from ledger.results import CreateTransferResult
from ledger.transfers import Transfer


@pytest.fixture
def stored_transfer(ledger) -> uuid.UUID:
    a, b = new_id(), new_id()
    ledger.create_accounts(
        [Account(a, Asset.KZT, AccountType.OPERATOR), Account(b, Asset.KZT, AccountType.OPERATOR)]
    )
    transfer_id = new_id()
    assert ledger.create_transfers([Transfer(transfer_id, a, b, 100, Asset.KZT, 1)]) == [
        CreateTransferResult.ok
    ]
    return transfer_id


def _refused(connection, statement: str, params=()) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as caught:
        connection.execute(statement, params)
    connection.rollback()
    return caught.value


@pytest.mark.parametrize(
    ("statement", "sqlstate", "constraint"),
    [
        ("UPDATE transfers SET amount = amount + 1 WHERE id = %s", "23001", "transfers_append_only"),
        ("DELETE FROM transfers WHERE id = %s", "23001", "transfers_append_only"),
        ("TRUNCATE transfers", "23001", "transfers_append_only"),
    ],
)
def test_history_cannot_be_changed_even_by_the_owner(
    owner_connection, stored_transfer, statement, sqlstate, constraint
):
    params = (stored_transfer,) if "%s" in statement else ()
    error = _refused(owner_connection, statement, params)
    assert error.sqlstate == sqlstate
    assert error.diag.constraint_name == constraint
    row = owner_connection.execute(
        "SELECT amount FROM transfers WHERE id = %s", (stored_transfer,)
    ).fetchone()
    assert row == (100,)


def test_the_application_role_may_not_update_transfers_at_all(pool, stored_transfer):
    with pool.connection() as connection:
        error = _refused(connection, "UPDATE transfers SET code = 2 WHERE id = %s", (stored_transfer,))
    assert error.sqlstate == "42501"  # insufficient_privilege: the grant, before any trigger


def test_the_application_role_may_not_rewrite_an_accounts_identity(pool, ledger):
    account = new_id()
    ledger.create_accounts([Account(account, Asset.KZT, AccountType.OPERATOR)])
    with pool.connection() as connection:
        error = _refused(connection, "UPDATE accounts SET asset = 2 WHERE id = %s", (account,))
    assert error.sqlstate == "42501"


def test_an_accounts_identity_is_immutable_even_for_the_owner(owner_connection, ledger):
    account = new_id()
    ledger.create_accounts([Account(account, Asset.KZT, AccountType.OPERATOR)])
    error = _refused(owner_connection, "UPDATE accounts SET code = 3 WHERE id = %s", (account,))
    assert (error.sqlstate, error.diag.constraint_name) == ("23001", "accounts_identity_immutable")
    error = _refused(owner_connection, "DELETE FROM accounts WHERE id = %s", (account,))
    assert (error.sqlstate, error.diag.constraint_name) == ("23001", "accounts_permanent")


def test_applying_a_batchs_deltas_locks_no_account_row_before_updating_it(owner_connection, ledger):
    """Any BEFORE UPDATE row trigger on accounts, whatever its column list, makes PostgreSQL lock each row
    and log that lock before updating it: the identity guard is an AFTER trigger so that the hot path's
    counter updates write one WAL record an account, not two."""
    accounts = sorted([new_id() for _ in range(6)])
    ledger.create_accounts([Account(a, Asset.KZT, AccountType.OPERATOR) for a in accounts])
    owner_connection.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
    owner_connection.commit()
    start = owner_connection.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
    xid = owner_connection.execute("SELECT pg_current_xact_id()::xid::text").fetchone()[0]
    half = len(accounts) // 2
    debits = [5 if n < half else 0 for n in range(len(accounts))]
    zeros = [0] * len(accounts)
    owner_connection.execute(
        "SELECT ledger_apply_deltas(%s::uuid[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[],"
        " %s::int[], %s::int[], %s::int[], %s::smallint[])",
        (accounts, zeros, debits, zeros, debits[::-1], zeros, zeros, zeros, [int(Asset.KZT)] * len(accounts)),
    )
    # Undone, not committed: counters moved without transfers would break the ledger's invariants for
    # every later test. A transaction that writes (a rollback or a read-only commit does not flush the WAL)
    # then flushes the WAL that holds the update's records.
    owner_connection.rollback()
    owner_connection.execute("CREATE TEMPORARY TABLE flush_the_wal ()")
    owner_connection.commit()
    records = owner_connection.execute(
        "SELECT resource_manager, record_type FROM pg_get_wal_records_info(%s, pg_current_wal_flush_lsn())"
        " WHERE xid::text = %s",
        (start, xid),
    ).fetchall()
    heap = sorted(kind for manager, kind in records if manager == "Heap")
    assert heap and set(heap) <= {"HOT_UPDATE", "UPDATE"} and len(heap) == len(accounts), records


def test_amount_must_be_positive_at_the_database(owner_connection, ledger):
    a, b = new_id(), new_id()
    ledger.create_accounts(
        [Account(a, Asset.KZT, AccountType.OPERATOR), Account(b, Asset.KZT, AccountType.OPERATOR)]
    )
    error = _refused(
        owner_connection,
        "INSERT INTO transfers VALUES (%s, %s, %s, 0, 1, 1, 0, NULL, 0, %s, 0, 0, current_date, 42)",
        (new_id(), a, b, uuid.UUID(int=0)),
    )
    assert (error.sqlstate, error.diag.constraint_name) == ("23514", "ck_transfers_amount_positive")


def test_a_balance_limit_holds_at_the_database(owner_connection, ledger):
    account = new_id()
    ledger.create_accounts(
        [Account(account, Asset.KZT, AccountType.VOUCHER, flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)]
    )
    error = _refused(owner_connection, "UPDATE accounts SET debits_posted = 1 WHERE id = %s", (account,))
    assert (error.sqlstate, error.diag.constraint_name) == (
        "23514",
        "ck_accounts_debits_must_not_exceed_credits",
    )


def test_an_unbalanced_batch_is_refused(owner_connection, ledger):
    a, b = new_id(), new_id()
    ledger.create_accounts(
        [Account(a, Asset.KZT, AccountType.OPERATOR), Account(b, Asset.KZT, AccountType.OPERATOR)]
    )
    error = _refused(
        owner_connection,
        "SELECT ledger_apply_deltas(%s, %s, %s, %s, %s, %s, %s, %s, %s::smallint[])",
        ([a, b], [0, 0], [5, 0], [0, 0], [0, 4], [0, 0], [0, 0], [0, 0], [1, 1]),
    )
    assert (error.sqlstate, error.diag.constraint_name) == ("23514", "ledger_zero_sum")


def test_moving_an_account_in_another_asset_is_refused(owner_connection, ledger):
    a, b = new_id(), new_id()
    ledger.create_accounts(
        [Account(a, Asset.KZT, AccountType.OPERATOR), Account(b, Asset.KZT, AccountType.OPERATOR)]
    )
    error = _refused(
        owner_connection,
        "SELECT ledger_apply_deltas(%s, %s, %s, %s, %s, %s, %s, %s, %s::smallint[])",
        ([a, b], [0, 0], [5, 0], [0, 0], [0, 5], [0, 0], [0, 0], [0, 0], [1, int(Asset.DIGITAL_KZT)]),
    )
    assert (error.sqlstate, error.diag.constraint_name) == ("23514", "transfers_same_asset")
    counters = owner_connection.execute(
        "SELECT debits_posted, credits_posted FROM accounts WHERE id = ANY(%s) ORDER BY id", ([a, b],)
    ).fetchall()
    assert counters == [(0, 0), (0, 0)]


def test_one_resolution_per_pending_transfer_at_the_database(owner_connection, ledger):
    a, b = new_id(), new_id()
    ledger.create_accounts(
        [Account(a, Asset.KZT, AccountType.OPERATOR), Account(b, Asset.KZT, AccountType.OPERATOR)]
    )
    pending, post = new_id(), new_id()
    assert ledger.create_transfers(
        [
            Transfer(pending, a, b, 100, Asset.KZT, 1, flags=2),
            Transfer(post, uuid.UUID(int=0), uuid.UUID(int=0), 100, 0, 0, flags=4, pending_id=pending),
        ]
    ) == [CreateTransferResult.ok, CreateTransferResult.ok]
    error = _refused(
        owner_connection,
        "INSERT INTO transfers VALUES (%s, %s, %s, 100, 1, 1, 8, %s, 0, %s, 0, 0, current_date, 43)",
        (new_id(), a, b, pending, uuid.UUID(int=0)),
    )
    assert (error.sqlstate, error.diag.constraint_name) == ("23505", "uq_transfers_pending_id")


def test_ledger_timestamps_are_unique_at_the_database(owner_connection, stored_transfer):
    stamp = owner_connection.execute(
        'SELECT "timestamp" FROM transfers WHERE id = %s', (stored_transfer,)
    ).fetchone()
    row = owner_connection.execute(
        "SELECT debit_account_id, credit_account_id FROM transfers WHERE id = %s", (stored_transfer,)
    ).fetchone()
    error = _refused(
        owner_connection,
        "INSERT INTO transfers VALUES (%s, %s, %s, 5, 1, 1, 0, NULL, 0, %s, 0, 0, current_date, %s)",
        (new_id(), row[0], row[1], uuid.UUID(int=0), stamp[0]),
    )
    assert (error.sqlstate, error.diag.constraint_name) == ("23505", "uq_transfers_timestamp")
