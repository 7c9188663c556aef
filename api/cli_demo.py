"""`amiyan demo`: tell the demo story (once), integrate and export the audit log, verify it offline, say
where to look — then serve the demo database (unless `--no-serve`)."""

import os
import shutil
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.console import Console

from api.database import resolve_database_url
from api.demo import DemoReport, demo_database_url, load_demo
from api.demo_story import cast_people
from api.log_keys import load_log_signer
from api.logs import configure_logging
from api.serving import audit_integrator, exit_on_bad_server_cpus, serve_database
from api.settings import Settings
from api.voucher_secrets import load_holder_salt, load_issuer_signer
from ledger.audit.export import export_log
from ledger.audit.verify import verify_export

console = Console(stderr=True, soft_wrap=True)
CREDENTIALS_FILE = "credentials.txt"


def demo_command(
    fresh: Annotated[bool, typer.Option(help="Tell the story again (drops the demo database).")] = False,
    serve: Annotated[bool, typer.Option(help="Serve the demo database afterwards.")] = True,
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
) -> None:
    """A month of the Social Wallet end to end — programmes funded and approved, 1,000 pupils' vouchers,
    a week of canteen meals, a pharmacy, a gas discount in digital tenge, the month settled into acts,
    invoices and payouts, the audit log verified offline — in a database of its own, then served."""
    settings = Settings()
    if serve:
        exit_on_bad_server_cpus(settings)  # now, not after the story
    # The story makes thousands of requests: its log would bury what the demo has to say.
    configure_logging(settings.log_format, "warning" if settings.log_level == "info" else settings.log_level)
    url = demo_database_url(resolve_database_url(settings), settings.demo_database, fresh)
    workdir = settings.data_dir / "demo"
    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    console.print("[bold]Telling the demo story[/bold] (a minute or so the first time)…")
    report = load_demo(settings, url, load_issuer_signer(settings), load_holder_salt(settings), workdir)
    if report.loaded_now:
        _save_credentials(workdir, report.credentials)
    verdict, export_dir, verifier_key = _audit(settings, url, workdir)
    _print(settings, report, workdir, verdict, export_dir, verifier_key, host, port)
    if serve:
        serve_database(settings, url, host, port)


def _audit(settings: Settings, url: str, workdir: Path) -> tuple[str, Path, str]:
    """Integrate everything into the log, sign a checkpoint, export, and verify with no database."""
    from api.database import create_pool

    pool = create_pool(url, settings.database_role, 2)
    try:
        integrator = audit_integrator(settings, pool)
        while integrator.integrate_once(checkpoint=False).entries:
            pass
        integrator.integrate_once(checkpoint=True)
    finally:
        pool.close()
    export_dir = workdir / "audit-export"
    if export_dir.exists():
        shutil.rmtree(export_dir)
    with psycopg.connect(url) as connection:
        export_log(connection, export_dir, settings.log_origin)
    _, verifier_key = load_log_signer(settings)
    verdict = verify_export(export_dir, [verifier_key], workdir / "audit-state")
    return verdict.message, export_dir, verifier_key


def _save_credentials(workdir: Path, credentials: dict[str, str]) -> None:
    path = workdir / CREDENTIALS_FILE
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.writelines(f"{role}\t{secret}\n" for role, secret in credentials.items())


def _credentials(workdir: Path) -> dict[str, str]:
    path = workdir / CREDENTIALS_FILE
    if not path.exists():
        return {}
    return dict(line.split("\t", 1) for line in path.read_text(encoding="utf-8").splitlines() if "\t" in line)


def _print(
    settings: Settings,
    report: DemoReport,
    workdir: Path,
    verdict: str,
    export_dir: Path,
    verifier_key: str,
    host: str | None,
    port: int | None,
) -> None:
    base = f"http://{host or settings.host}:{port or settings.port}"
    credentials = _credentials(workdir)
    pupil = cast_people()[0][0]
    console.print()
    for fact in report.facts:
        console.print(f"  • {fact}")
    console.print("\n[bold]Programme positions[/bold] (every figure from the ledger)")
    for line in report.positions:
        console.print(f"  {line}")
    console.print(f"\n[bold]Audit log[/bold]: {verdict}")
    console.print(f"  verify it yourself: amiyan audit verify {export_dir} --key '{verifier_key}'")
    if report.documents is not None:
        console.print(f"\n[bold]Acts and invoices (PDF)[/bold]: {report.documents}")
    console.print(f"\n[bold]The API[/bold]: {base}/docs   (the demo database's clock runs a month ahead)")
    for role, secret in credentials.items():
        console.print(f"  {role:20s} Authorization: Bearer {secret}")
    if "mobile_backend" in credentials:
        console.print(
            f"  a pupil's vouchers:  curl -H 'Authorization: Bearer {credentials['mobile_backend']}'"
            f" -H 'X-Citizen-IIN: {pupil}' {base}/v1/mobile/vouchers"
        )
    if "auditor" in credentials:
        console.print(
            f"  the latest checkpoint: curl -H 'Authorization: Bearer {credentials['auditor']}'"
            f" {base}/v1/audit/checkpoint"
        )
    console.print(f"  (credentials kept in {workdir / CREDENTIALS_FILE})\n")
