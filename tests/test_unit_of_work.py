"""The unit of work's read transactions: they cannot write, and they leave the connection's prepared
statements in place for the writes that share the pool."""

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from api.database import create_pool
from ledger.errors import LedgerUnavailable
from ledger.unit_of_work import UnitOfWork

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
