"""Alembic environment. The URL is given by the caller (`api.database.upgrade_database`) through
`config.attributes["database_url"]`, else read from AMIYAN_DATABASE_URL, else the embedded server."""

import psycopg
from alembic import context
from sqlalchemy import create_engine, pool

from ledger.schema import metadata

config = context.config


def _database_url() -> str:
    url = config.attributes.get("database_url")
    if url is None:
        from api.database import resolve_database_url
        from api.settings import Settings

        url = resolve_database_url(Settings())
    return str(url)


def run_migrations_online() -> None:
    # psycopg parses both URL and key=value forms (the embedded server gives a socket URL); SQLAlchemy only
    # needs the dialect, so the connection is made by psycopg itself.
    url = _database_url()
    engine = create_engine(
        "postgresql+psycopg://", creator=lambda: psycopg.connect(url), poolclass=pool.NullPool
    )
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
