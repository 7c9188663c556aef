"""The unit of work's read transactions: they cannot write, and they leave the connection's prepared
statements in place for the writes that share the pool; and the plans those statements keep."""

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from api.database import create_pool, scratch_database, upgrade_database
from ledger.errors import LedgerUnavailable
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers import redemption_context

_PREPARED = "SELECT count(*) FROM pg_prepared_statements"


@pytest.fixture
def one_connection(database_url: str) -> Iterator[ConnectionPool[Any]]:
    """A pool of exactly one connection, so a read and the writes around it share it."""
    pool = create_pool(database_url, "amiyan_app", size_max=1)
    yield pool
    pool.close()


def _count_prepared(connection: psycopg.Connection[Any]) -> int:
    row = connection.execute(_PREPARED).fetchone()
    assert row is not None
    return int(row[0])


def test_a_read_cannot_write(one_connection):
    unit_of_work = UnitOfWork(one_connection)
    with pytest.raises(LedgerUnavailable, match="read-only transaction"):
        unit_of_work.read(lambda c: c.execute("SELECT ledger_clock_reserve(1)"))
    # The refusal left the connection usable, and writes still work on it.
    assert unit_of_work.run(lambda c: c.execute("SELECT 1").fetchone()) == (1,)


def test_a_read_keeps_the_prepared_statements_of_its_connection(one_connection):
    unit_of_work = UnitOfWork(one_connection)
    for _ in range(6):  # psycopg prepares a statement on its sixth execution
        unit_of_work.run(lambda c: c.execute("SELECT id FROM accounts WHERE id = ANY(%s)", ([],)))
    prepared = unit_of_work.run(_count_prepared)
    assert prepared >= 1

    assert unit_of_work.read(lambda c: c.execute("SELECT 2").fetchone()) == (2,)
    assert unit_of_work.run(_count_prepared) == prepared


def test_a_failed_read_is_rolled_back_and_the_connection_reused(one_connection):
    unit_of_work = UnitOfWork(one_connection)

    def fails(connection: psycopg.Connection[Any]) -> None:
        connection.execute("SELECT 1")
        raise ValueError("not a database error")

    with pytest.raises(ValueError):
        unit_of_work.read(fails)
    # Not left read-only or inside the failed transaction: the next write runs.
    assert unit_of_work.run(lambda c: c.execute("SELECT ledger_clock_reserve(1) > 0").fetchone()) == (True,)


def test_the_redemption_lookups_probe_the_index_under_a_plan_made_before_any_analyze(database_url):
    """A prepared statement keeps the generic plan it got while its table was small until an ANALYZE
    replaces it, which a server without autovacuum never runs: a lookup planned as a scan of the whole
    table then slows every batch as the table grows. With a few rows and no statistics (where
    `id = ANY(...)` is planned as a sequential scan), the lookups of ids seen before are index probes."""
    with scratch_database(database_url, "amiyan_plans") as url:
        upgrade_database(url)
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("SET session_replication_role = replica")  # rows without their parents
            connection.execute(_FEW_REDEMPTIONS)
            connection.execute(_FEW_FAILURES)
            connection.execute("SET plan_cache_mode = force_generic_plan")
            for name, query in (("seen", redemption_context._SEEN), ("refused", redemption_context._REFUSED)):
                connection.execute(f"PREPARE {name}(uuid[]) AS {query.replace('%b::uuid[]', '$1')}")
                plan = "\n".join(
                    row[0] for row in connection.execute(f"EXPLAIN EXECUTE {name}('{{}}'::uuid[])")
                )
                assert "Index Scan" in plan and "Seq Scan" not in plan, plan


_FEW_REDEMPTIONS = """
INSERT INTO redemptions (id, voucher_id, programme_id, provider_id, terminal_id, phase, amount_tiyn, units,
                         requested_at, effective_date, offline, request_hash, "timestamp")
SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), gen_random_uuid(),
       1, 100, 0, 1, date '2026-11-02', false, '\\x00', n
  FROM generate_series(1, 30) n
"""
_FEW_FAILURES = """
INSERT INTO redemption_failures (id, result, request_hash, "timestamp")
SELECT gen_random_uuid(), 2, '\\x00', n FROM generate_series(1, 30) n
"""


def test_a_read_whose_connection_dies_says_the_database_is_unavailable(one_connection):
    unit_of_work = UnitOfWork(one_connection)
    with pytest.raises(LedgerUnavailable):
        unit_of_work.read(lambda c: c.execute("SELECT pg_terminate_backend(pg_backend_pid())"))
    # The pool replaces the lost connection; the next read works.
    assert unit_of_work.read(lambda c: c.execute("SELECT 3").fetchone()) == (3,)
