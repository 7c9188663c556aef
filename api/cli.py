"""`amiyan`: the command line. Settings are read once here and passed down."""

import json
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import structlog
import typer
from psycopg_pool import ConnectionPool
from rich.console import Console

from api.cli_demo import demo_command
from api.cli_settlement import settlement_app
from api.cli_treasury import treasury_app
from api.credentials_cli import credentials_app
from api.database import create_pool, downgrade_database, resolve_database_url, upgrade_database
from api.logs import configure_logging
from api.serving import audit_integrator, exit_on_bad_server_cpus, serve_database
from api.settings import Settings
from ledger.service import Ledger
from ledger.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    pass

app = typer.Typer(
    help="Amiyan: the Social Wallet's voucher ledger.",
    no_args_is_help=True,
    # Docstrings are wrapped for the source; markdown joins their lines again for the terminal.
    rich_markup_mode="markdown",
)
db_app = typer.Typer(help="Database schema (Alembic).", no_args_is_help=True)
ledger_app = typer.Typer(help="Ledger checks.", no_args_is_help=True)
audit_app = typer.Typer(
    help="The verifiable audit log: integrate, export, verify offline.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(ledger_app, name="ledger")
app.add_typer(audit_app, name="audit")
app.add_typer(credentials_app, name="credentials")
app.add_typer(settlement_app, name="settlement")
app.add_typer(treasury_app, name="treasury")
app.command(name="demo")(demo_command)
console = Console(stderr=True)
log = structlog.get_logger("amiyan")


def _prepare(settings: Settings) -> str:
    configure_logging(settings.log_format, settings.log_level)
    url = resolve_database_url(settings)
    upgrade_database(url)
    return url


def _ledger(settings: Settings, url: str) -> tuple[Ledger, ConnectionPool[Any]]:
    pool = create_pool(url, settings.database_role, settings.pool_size_max)
    return Ledger(UnitOfWork(pool)), pool


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, max=32, help="Server processes (default 1: AMIYAN_SERVER_WORKERS).")
    ] = None,
) -> None:
    """Start the HTTP API and the audit integrator (migrations apply first; embedded PostgreSQL unless
    AMIYAN_DATABASE_URL is set). `amiyan demo` serves a database with a month of business in it."""
    settings = Settings()
    exit_on_bad_server_cpus(settings)
    serve_database(settings, _prepare(settings), host, port, workers)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration."""
    settings = Settings()
    _prepare(settings)
    console.print("database at head")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument()] = "base") -> None:
    """Revert migrations down to REVISION (default: base, an empty schema)."""
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    downgrade_database(resolve_database_url(settings), revision)
    console.print(f"database at {revision}")


@ledger_app.command("check")
def ledger_check() -> None:
    """Recompute every account from its transfers and check the zero sum; exit 1 on any violation."""
    settings = Settings()
    url = _prepare(settings)
    ledger, pool = _ledger(settings, url)
    problems = ledger.invariant_violations()
    pool.close()
    for problem in problems:
        console.print(f"[red]{problem}[/red]")
    if problems:
        raise typer.Exit(1)
    console.print("ledger sound: zero sum holds and every account equals the sums of its transfers")


@audit_app.command("integrate")
def audit_integrate() -> None:
    """Move everything waiting in the inbox into the log and sign a checkpoint."""
    settings = Settings()
    url = _prepare(settings)
    _, pool = _ledger(settings, url)
    integrator = audit_integrator(settings, pool)
    total = 0
    while (result := integrator.integrate_once(checkpoint=False)).entries:
        total += result.entries
    final = integrator.integrate_once(checkpoint=True)
    pool.close()
    console.print(f"integrated {total} entries; log size {final.size}; checkpoint at {final.checkpoint_size}")


@audit_app.command("key")
def audit_key() -> None:
    """Print the log's public verifier key (C2SP format): what auditors pin."""
    from api.log_keys import load_log_signer

    settings = Settings()
    _, verifier_key = load_log_signer(settings)
    typer.echo(verifier_key)


@audit_app.command("export")
def audit_export(
    directory: Annotated[Path, typer.Argument(help="Directory to write (created if missing).")],
) -> None:
    """Write the log, its checkpoints and public keys for offline verification."""
    from ledger.audit.export import export_log

    settings = Settings()
    url = _prepare(settings)
    _, pool = _ledger(settings, url)
    count = UnitOfWork(pool).read(lambda c: export_log(c, directory, settings.log_origin))
    pool.close()
    console.print(f"exported {count} entries to {directory}")


@audit_app.command("verify")
def audit_verify(
    directory: Annotated[Path, typer.Argument(help="An export written by `amiyan audit export`.")],
    key: Annotated[list[str], typer.Option("--key", help="Pinned verifier key (C2SP); repeatable.")],
    state: Annotated[Path | None, typer.Option(help="Where to keep what was verified between runs.")] = None,
    incremental: Annotated[bool, typer.Option(help="Verify only what is new since the last run.")] = False,
) -> None:
    """Verify an export with no database: leaves, tree, checkpoints, no rollback, and a replay of every
    event. Prints a one-line verdict; exits 1 on any failure."""
    from ledger.audit.verify import verify_export

    # By default the auditor's memory is kept per log (its origin), not per export directory: exporting
    # to a new directory every day must not forget the checkpoints seen before (rollback, fork).
    state_path = (
        state or Settings().data_dir / "audit-state" / f"{_safe_name(_export_origin(directory))}.state"
    )
    state_path.parent.mkdir(parents=True, exist_ok=True)
    verdict = verify_export(directory, key, state_path, incremental=incremental)
    typer.echo(verdict.message)
    if not verdict.ok:
        raise typer.Exit(1)


def _export_origin(directory: Path) -> str:
    """The log origin an export declares (its manifest); the directory itself if it has none, and the
    verifier then says what is wrong with it."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        return str(manifest["origin"])
    except (OSError, ValueError, KeyError, TypeError):
        return str(directory.resolve())


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)[-120:]


def main() -> None:
    # SIGTERM (docker stop, systemd, kill) ends the process like Ctrl-C does: `finally` blocks and exit
    # handlers run, so pools close and an embedded PostgreSQL this process started is stopped. Python's
    # default is to die on the spot; uvicorn hands the signal back once it has shut down gracefully.
    signal.signal(signal.SIGTERM, _end_on_request)
    app()


def _end_on_request(signal_number: int, frame: object) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    main()
