"""The ledger clock moves only forward: advancing it (the demo does, to show a month passing) makes later
timestamps follow the new time; advancing it backwards changes nothing; the application may not do it.
On a database of its own: every other test expects the clock to follow the wall clock."""

import psycopg
import pytest

from api.database import create_pool, scratch_database, upgrade_database
from ledger.clock import NANOSECONDS_PER_SECOND

DAY_NS = 24 * 3600 * NANOSECONDS_PER_SECOND


@pytest.fixture
def own_database(database_url):
    with scratch_database(database_url, "amiyan_clock") as url:
        upgrade_database(url)
        yield url


def test_the_clock_moves_forward_only_and_only_for_the_owner(own_database):
    with psycopg.connect(own_database, autocommit=True) as owner:
        now = owner.execute("SELECT ledger_clock_reserve(1)").fetchone()[0]
        owner.execute("SELECT ledger_clock_advance(%s)", (now + 30 * DAY_NS,))
        later = owner.execute("SELECT ledger_clock_reserve(1)").fetchone()[0]
        assert later > now + 30 * DAY_NS
        owner.execute("SELECT ledger_clock_advance(%s)", (now,))
        assert owner.execute("SELECT ledger_clock_reserve(1)").fetchone()[0] > later
    pool = create_pool(own_database, "amiyan_app", size_max=1)
    try:
        with pool.connection() as connection, pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute("SELECT ledger_clock_advance(1)")
    finally:
        pool.close()
