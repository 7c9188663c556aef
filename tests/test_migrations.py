"""Migrations are reversible and the metadata in ledger/schema.py agrees with what they build."""

from collections.abc import Iterator

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, pool

import api.database
from api.database import downgrade_database, scratch_database, upgrade_database
from ledger.schema import metadata
from ledger.vouchers.schema import VOUCHER_TABLES

CORE_TABLES = {
    "accounts",
    "transfers",
    "transfer_failures",
    "pending_timeouts",
    "audit_inbox",
    "audit_segments",
    "audit_nodes",
    "audit_tree",
    "audit_checkpoints",
    "audit_signing_keys",
}
LEDGER_TABLES = CORE_TABLES | VOUCHER_TABLES


@pytest.fixture
def empty_database(database_url: str) -> Iterator[str]:
    with scratch_database(database_url, "amiyan_migrate") as url:
        yield url


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        ).fetchall()
    return {row[0] for row in rows}


def test_upgrade_downgrade_upgrade_on_an_empty_database(empty_database):
    upgrade_database(empty_database)
    assert _tables(empty_database) >= LEDGER_TABLES
    downgrade_database(empty_database, "base")
    assert _tables(empty_database) == set()
    upgrade_database(empty_database)
    assert _tables(empty_database) >= LEDGER_TABLES


def test_an_installed_copy_without_alembic_ini_still_migrates(empty_database, monkeypatch, tmp_path):
    # A wheel or the container image has the migrations package but no alembic.ini beside it.
    monkeypatch.setattr(api.database, "ALEMBIC_INI", tmp_path / "alembic.ini")
    upgrade_database(empty_database)
    assert _tables(empty_database) >= LEDGER_TABLES


def test_schema_metadata_matches_the_migrations(database_url):
    engine = create_engine(
        "postgresql+psycopg://", creator=lambda: psycopg.connect(database_url), poolclass=pool.NullPool
    )
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        differences = [d for d in compare_metadata(context, metadata) if not _is_ignorable(d)]
    engine.dispose()
    assert differences == []


def _is_ignorable(difference: object) -> bool:
    # Only the tables this metadata describes are compared; later migrations add their own metadata.
    if isinstance(difference, tuple) and difference and difference[0] == "remove_table":
        return difference[1].name not in LEDGER_TABLES
    if isinstance(difference, tuple) and difference and difference[0] == "remove_index":
        return difference[1].table.name not in LEDGER_TABLES
    return False
