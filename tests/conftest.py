"""Every test talks to a real PostgreSQL: the server named by AMIYAN_DATABASE_URL, else the embedded one.

The session creates a scratch database on that server, migrates it to head, and drops it at the end.
History tables refuse DELETE and TRUNCATE, so tests never clean up: each makes its own ids and accounts.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from api.database import create_pool, scratch_database, start_embedded_server, upgrade_database
from api.logs import configure_logging
from api.settings import Settings
from ledger.service import Ledger
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.paseto import keypair_from_seed
from ledger.vouchers.service import VoucherLedger
from ledger.vouchers.tokens import IssuerSigner

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _server_url() -> str:
    settings = Settings()  # AMIYAN_DATABASE_URL, else the embedded server in AMIYAN_DATA_DIR
    if settings.database_url:
        return settings.database_url
    return start_embedded_server(settings.data_dir, settings.embedded_database)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    configure_logging("json", "warning")
    with scratch_database(_server_url(), "amiyan_test") as url:
        upgrade_database(url)
        yield url


@pytest.fixture(scope="session")
def pool(database_url: str) -> Iterator[ConnectionPool[Any]]:
    connection_pool = create_pool(database_url, "amiyan_app", size_max=40)
    yield connection_pool
    connection_pool.close()


@pytest.fixture(scope="session")
def ledger(pool: ConnectionPool[Any]) -> Ledger:
    return Ledger(UnitOfWork(pool))


@pytest.fixture(scope="session")
def voucher_ledger(pool: ConnectionPool[Any]) -> Iterator[VoucherLedger]:
    """The voucher service with an issuer key introduced for a year of issuing and two of redeeming."""
    signer = IssuerSigner(keypair_from_seed(b"amiyan-test-issuer-key-seed-0001"))
    vouchers = VoucherLedger(UnitOfWork(pool), signer)
    now = vouchers.now()
    year = 365 * 24 * 3600 * 10**9
    assert vouchers.introduce_signer(now + year, now + 2 * year).ok
    yield vouchers
    vouchers.close()


@pytest.fixture
def owner_connection(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection as the schema owner (not the application role), for tests that go around Python."""
    with psycopg.connect(database_url) as connection:
        yield connection
