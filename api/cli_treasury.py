"""`amiyan treasury …`: what a treasury officer runs from a terminal: fund (and approve or reject), issue
vouchers to an eligibility list with a progress bar, sweep expired vouchers, close a programme, read its
positions. Settings are read here and passed down; the treasury functions never read the environment."""

import datetime as dt
import json
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from psycopg_pool import ConnectionPool
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from api.database import create_pool, resolve_database_url, upgrade_database
from api.logs import configure_logging
from api.settings import Settings
from api.voucher_secrets import introduce_issuer_key, load_holder_salt, load_issuer_signer
from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.keys import load_issuer_keys
from ledger.vouchers.service import VoucherLedger
from ledger.vouchers.tokens import IssuerSigner
from treasury.bulk_issuance import BATCH_ROWS_DEFAULT, issue_list
from treasury.closing import close_programme
from treasury.errors import Refused
from treasury.expiry import sweep
from treasury.funding import FundingOrder, approve_funding_order, create_funding_order, reject_funding_order
from treasury.issuance_jobs import IssuanceJob, write_rejection_report
from treasury.issuance_workers import IssuanceWorkers
from treasury.positions import FIGURES, positions_csv, positions_document, programme_positions
from treasury.programmes import Programme, find_programme_by_code

treasury_app = typer.Typer(
    help="Treasury: funding, bulk issuance, expiry sweeps, positions.", no_args_is_help=True
)
console = Console(stderr=True)
T = TypeVar("T")
Officer = Annotated[str, typer.Option(help="Who you are, as the audit log will name you.")]


class _Context:
    """The pool and unit of work of one command, closed at its end."""

    def __init__(self) -> None:
        self.settings = Settings()
        configure_logging(self.settings.log_format, self.settings.log_level)
        self.url = resolve_database_url(self.settings)
        upgrade_database(self.url)
        url = self.url
        self.pool: ConnectionPool[Any] = create_pool(url, self.settings.database_role, 3)
        self.unit_of_work = UnitOfWork(self.pool)

    def run(self, work: Callable[[Any], T]) -> T:
        """Run `work` in a transaction; a treasury refusal ends the command with its code and message."""
        return self.guard(lambda: self.unit_of_work.run(work))

    def guard(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except Refused as refused:
            self.pool.close()
            console.print(f"[red]refused[/red] {refused.code}: {refused.message}")
            raise typer.Exit(1) from None

    def programme(self, code: str) -> Programme:
        found = self.unit_of_work.read(lambda c: find_programme_by_code(c, code))
        if found is None:
            self.pool.close()
            console.print(f"[red]no programme with the code {code}[/red]")
            raise typer.Exit(1)
        return found


def open_worker_unit_of_work(url: str, role: str, log_format: str, log_level: str) -> UnitOfWork:
    """In an issuance worker process: its logging, and a connection pool of its own."""
    configure_logging(log_format, log_level)
    return UnitOfWork(create_pool(url, role, 1))


def issuance_workers(settings: Settings, url: str, processes: int) -> IssuanceWorkers | None:
    """Worker processes for bulk issuance (None: threads of this process)."""
    if processes == 0:
        return None
    role, log_format, log_level = settings.database_role, settings.log_format, settings.log_level
    return IssuanceWorkers(processes, partial(open_worker_unit_of_work, url, role, log_format, log_level))


def _introduce_signer(context: _Context, signer: IssuerSigner) -> None:
    """Put this issuer key in the key set (once, with the windows from settings) and make sure it may
    still sign: the same rule as the HTTP service's start-up."""
    vouchers = VoucherLedger(context.unit_of_work, signer)
    try:
        introduce_issuer_key(vouchers, context.settings)
        key = vouchers.unit_of_work.read(load_issuer_keys).get(signer.key_id)
        if key is None or not key.may_issue(vouchers.now()):
            console.print("[red]the issuer key may no longer sign vouchers: rotate AMIYAN_ISSUER_KEY[/red]")
            raise typer.Exit(1)
    finally:
        vouchers.close()


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rows/s" if speed else "– rows/s", style="progress.data.speed")


@treasury_app.command("issue")
def issue(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="CSV or JSON lines: iin, entitlement; optional units_max, items, region, key (see README).",
        ),
    ],
    programme: Annotated[str, typer.Option(help="The programme's code, e.g. SM-2026-AST.")],
    officer: Officer,
    batch_rows: Annotated[
        int, typer.Option(min=1, max=8000, help="Rows per transaction.")
    ] = BATCH_ROWS_DEFAULT,
    report: Annotated[
        Path | None, typer.Option(help="Rejection report (default: FILE.rejections.csv).")
    ] = None,
    processes: Annotated[int, typer.Option(min=0, max=8, help="Worker processes (0: threads only).")] = 2,
) -> None:
    """Issue vouchers to everyone on an eligibility list; run it again to resume where it stopped."""
    context = _Context()
    signer = load_issuer_signer(context.settings)
    salt = load_holder_salt(context.settings)
    programme_id = context.programme(programme).id
    _introduce_signer(context, signer)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("issuing", total=None)

        def show(job: IssuanceJob) -> None:
            if progress.tasks[task].total is None:  # a resumed job's bar starts where it stopped
                progress.reset(task, total=job.rows_total, completed=job.rows_done)
            counts = f"issued {job.issued:,} · already {job.already_issued:,} · rejected {job.rejected:,}"
            progress.update(task, completed=job.rows_done, description=counts)

        workers = issuance_workers(context.settings, context.url, processes)
        job = context.guard(
            lambda: issue_list(
                context.unit_of_work, signer, salt, programme_id, file, officer, batch_rows, show, workers
            )
        )
    _job_summary(context, job, report or file.with_name(file.name + ".rejections.csv"))


def _job_summary(context: _Context, job: IssuanceJob, report: Path) -> None:
    state = "finished" if job.finished else "stopped"
    console.print(
        f"job {job.id} {state}: {job.rows_done:,} of {job.rows_total:,} rows; issued {job.issued:,} "
        f"({job.issued_tiyn:,} tiyn), already issued {job.already_issued:,}, rejected {job.rejected:,}"
    )
    if job.rejected:
        with report.open("w", encoding="utf-8", newline="") as handle:
            context.unit_of_work.read(lambda c: write_rejection_report(c, job.id, handle))
        console.print(f"rejection report: {report}")
    context.pool.close()


@treasury_app.command("rejections")
def rejections(
    job_id: Annotated[uuid.UUID, typer.Argument(help="The issuance job's id.")],
    out: Annotated[Path, typer.Option(help="Where to write the CSV.")],
) -> None:
    """Write an issuance job's rejection report (row, reason, message, masked holder) as CSV."""
    context = _Context()
    with out.open("w", encoding="utf-8", newline="") as handle:
        count = context.unit_of_work.read(lambda c: write_rejection_report(c, job_id, handle))
    context.pool.close()
    console.print(f"{count} rejected rows written to {out}")


@treasury_app.command("sweep")
def sweep_command(
    batch: Annotated[int, typer.Option(min=1, max=8000, help="Vouchers per transaction.")] = 2000,
) -> None:
    """Expire vouchers past their expiry and lapsed offers (value back to their funds); return closed
    programmes' funds to the budget. Idempotent: run it on a schedule."""
    context = _Context()
    summary = sweep(context.unit_of_work, batch)
    context.pool.close()
    console.print(
        f"reservations released {summary.reservations_released:,}; vouchers expired {summary.expired:,}; "
        f"other {summary.other}; returned to budget {summary.returned_to_budget_tiyn:,} tiyn"
    )


@treasury_app.command("positions")
def positions(
    code: Annotated[str, typer.Argument(help="The programme's code.")],
    date: Annotated[
        str | None, typer.Option(help="As of the end of this day (YYYY-MM-DD); default now.")
    ] = None,
    output: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Funded, allocated, issued, redeemed, expired, returned, outstanding, settled, paid — and whether
    they reconcile to the tiyn. Exit 1 if they do not."""
    as_of = dt.date.fromisoformat(date) if date else None
    context = _Context()
    programme_id = context.programme(code).id
    found = context.run(lambda c: programme_positions(c, programme_id, as_of))
    context.pool.close()
    if output == "json":
        typer.echo(json.dumps(positions_document(found), ensure_ascii=False, indent=2))
    elif output == "csv":
        typer.echo(positions_csv(found), nl=False)
    else:
        table = Table(title=f"{found.code} positions as of {as_of or 'now'} ({found.asset})")
        table.add_column("figure")
        table.add_column("tenge", justify="right")
        table.add_column("tiyn", justify="right")
        for name in FIGURES:
            table.add_row(name, f"{found.figures[name] / 100:,.2f}", f"{found.figures[name]:,}")
        for check in found.checks:
            table.add_row(f"[{'green' if check.ok else 'red'}]{check.name}[/]", "", f"Δ {check.difference:,}")
        Console().print(table)
    if not found.reconciled:
        raise typer.Exit(1)


@treasury_app.command("fund")
def fund(
    code: Annotated[str, typer.Argument(help="The programme's code.")],
    amount_tiyn: Annotated[int, typer.Argument(min=1, help="How much, in tiyn (100 tiyn = 1 tenge).")],
    officer: Officer,
    order_id: Annotated[uuid.UUID | None, typer.Option(help="Idempotency id (default: a new one).")] = None,
) -> None:
    """Make a funding order; above the programme's threshold it waits for another officer's approval."""
    context = _Context()
    programme_id = context.programme(code).id
    the_id = order_id or new_id()
    _print_order(
        context, context.run(lambda c: create_funding_order(c, the_id, programme_id, amount_tiyn, officer))
    )


@treasury_app.command("approve")
def approve(order_id: Annotated[uuid.UUID, typer.Argument()], officer: Officer) -> None:
    """Approve a funding order someone else made; it executes now."""
    context = _Context()
    _print_order(context, context.run(lambda c: approve_funding_order(c, order_id, officer)))


@treasury_app.command("reject")
def reject(
    order_id: Annotated[uuid.UUID, typer.Argument()],
    officer: Officer,
    reason: Annotated[str, typer.Option(help="Why, for the record.")],
) -> None:
    """Reject a funding order awaiting approval."""
    context = _Context()
    _print_order(context, context.run(lambda c: reject_funding_order(c, order_id, officer, reason)))


@treasury_app.command("close")
def close(code: Annotated[str, typer.Argument(help="The programme's code.")], officer: Officer) -> None:
    """Close a programme and return its funds' balances to the budget account."""
    context = _Context()
    programme_id = context.programme(code).id
    returns = context.run(lambda c: close_programme(c, programme_id, officer))
    context.pool.close()
    console.print(f"closed; returned {sum(r.amount_tiyn for r in returns):,} tiyn to the budget")


def _print_order(context: _Context, order: FundingOrder) -> None:
    context.pool.close()
    console.print(f"funding order {order.id}: {order.state.name.lower()}, {order.amount_tiyn:,} tiyn")
    typer.echo(str(order.id))
