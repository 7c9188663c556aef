"""`amiyan settlement …`: close periods, draw up acts, sign, approve or reject them, pay, record returned
payments, take back redemptions, reconcile. Programmes are named by code, periods by their first day
(`2026-10-01`, or `2026-10` for a month), acts and payment orders by number. A refusal prints its code
and message on standard error and exits 2; everything else goes to standard error too, except what a
script reads (a reconciliation's JSON) on standard output.
"""

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any, TypeVar

import nacl.bindings
import typer
from rich.console import Console

from api.database import create_pool, resolve_database_url, upgrade_database
from api.logs import configure_logging
from api.settings import Settings
from ledger.errors import LedgerError
from ledger.ids import derived_id
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.signing import SIGNATURE_BYTES, Purpose, sign_message
from treasury.errors import Refused
from treasury.settlement import (
    act_signing_bytes,
    approve_act,
    close_period,
    differences_csv,
    disallow_redemptions,
    document_bytes,
    issue_period_acts,
    pay_act,
    programme_id_by_code,
    providers_csv,
    reconcile_period,
    reconciliation_json,
    record_payment_return,
    register_signing_key,
    reject_act,
    repay_act,
    sign_act,
)

settlement_app = typer.Typer(
    help="Settlement: periods, acts and invoices, approvals, payouts, reconciliation.", no_args_is_help=True
)
console = Console(stderr=True)
T = TypeVar("T")

Programme = Annotated[str, typer.Option("--programme", help="The programme's code, e.g. SM-2026-AST.")]
Officer = Annotated[str, typer.Option("--officer", help="Who acts: the officer's name and office.")]
ActNumber = Annotated[str, typer.Option("--act", help="The act's number, e.g. АКТ-SM-2026-AST-2026-10-17.")]
Period = Annotated[str, typer.Option("--period", help="The period's first day (2026-10-01), or 2026-10.")]


def _period_start(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text + "-01" if len(text) == 7 else text)
    except ValueError:
        console.print(f"[red]period: {text!r} is not a date (2026-10-01) or a month (2026-10)[/red]")
        raise typer.Exit(2) from None


@contextmanager
def _unit_of_work() -> Iterator[UnitOfWork]:
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    url = resolve_database_url(settings)
    upgrade_database(url)
    pool = create_pool(url, settings.database_role, 4)
    try:
        yield UnitOfWork(pool)
    except Refused as refusal:
        console.print(f"[red]{refusal.code}: {refusal.message}[/red]")
        raise typer.Exit(2) from None
    except LedgerError as error:
        console.print(f"[red]{error.code}: {error}[/red]")
        raise typer.Exit(2) from None
    finally:
        pool.close()


def _run(work: Callable[[Any], T]) -> T:
    with _unit_of_work() as unit_of_work:
        return unit_of_work.run(work)


@settlement_app.command("close-period")
def close_period_command(
    programme: Programme, officer: Officer, period: Annotated[str | None, typer.Option()] = None
) -> None:
    """Close the programme's next settlement period (it must have ended); --period checks which one."""
    start = _period_start(period) if period else None
    closed = _run(lambda c: close_period(c, programme_id_by_code(c, programme), officer, start))
    console.print(f"closed {closed.period.label}: {closed.period.start} to {closed.period.end}")


@settlement_app.command("acts")
def acts_command(
    programme: Programme,
    period: Period,
    officer: Officer,
    out: Annotated[
        Path | None, typer.Option(help="Write each act's and invoice's JSON and PDF here.")
    ] = None,
) -> None:
    """Draw up the acts and invoices of a closed period, provider by provider (safe to run again)."""
    start = _period_start(period)
    with _unit_of_work() as unit_of_work:
        programme_id = unit_of_work.read(lambda c: programme_id_by_code(c, programme))
        outcomes = issue_period_acts(unit_of_work, programme_id, start, officer)
        for outcome in outcomes:
            if outcome.refusal_code:
                refusal = f"{outcome.refusal_code}[/red] {outcome.refusal_message}"
                console.print(f"[red]provider {outcome.provider_id}: {refusal}")
            for act in outcome.acts:
                corrects = f" corrects {act.corrects}" if act.corrects else ""
                typer.echo(
                    f"{act.number}\t{act.invoice_number}\t{act.provider_id}\t{act.total_tiyn}{corrects}"
                )
                if out is not None:
                    _write_documents(unit_of_work, act.number, out)
    console.print(f"{sum(len(o.acts) for o in outcomes)} acts issued")
    if any(o.refusal_code for o in outcomes):
        raise typer.Exit(1)


def _write_documents(unit_of_work: UnitOfWork, number: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "act_json": ".json",
        "act_pdf": ".pdf",
        "invoice_json": ".invoice.json",
        "invoice_pdf": ".invoice.pdf",
    }
    for what, suffix in files.items():
        data = unit_of_work.read(partial(document_bytes, number=number, what=what))
        (out / f"{number}{suffix}").write_bytes(data)


@settlement_app.command("register-key")
def register_key_command(
    provider: Annotated[uuid.UUID, typer.Option(help="The provider's id.")],
    public_key: Annotated[str, typer.Option(help="The Ed25519 public key, 64 hex digits.")],
    name: Annotated[str, typer.Option(help="Whose key: «Директор», «Главный бухгалтер».")],
    officer: Officer,
) -> None:
    """Register a key that signs the provider's acts; prints the key's id."""
    key_id = derived_id(provider, public_key.lower())
    key = _run(lambda c: register_signing_key(c, key_id, provider, bytes.fromhex(public_key), name, officer))
    typer.echo(str(key.id))


@settlement_app.command("sign")
def sign_command(
    act: ActNumber,
    key_id: Annotated[uuid.UUID, typer.Option(help="The registered signing key's id.")],
    seed_file: Annotated[Path, typer.Option(help="A file holding the key's 32-byte seed as 64 hex digits.")],
) -> None:
    """Sign an act as its provider (for providers without the HTTP API; the seed never leaves this host)."""
    seed = bytes.fromhex(seed_file.read_text().strip())
    _, secret_key = nacl.bindings.crypto_sign_seed_keypair(seed)
    tag = Purpose.SERVICE_ACT.value.encode("ascii") + b"\n"
    with _unit_of_work() as unit_of_work:
        signed = unit_of_work.read(lambda c: act_signing_bytes(c, act))
        signature = sign_message(secret_key, Purpose.SERVICE_ACT, signed[len(tag) :])
        assert len(signature) == SIGNATURE_BYTES
        record = unit_of_work.run(lambda c: sign_act(c, act, key_id, signature))
    console.print(f"{record.number}: {record.state.name.lower()}")


@settlement_app.command("approve")
def approve_command(act: ActNumber, officer: Officer) -> None:
    """Approve an act (a second, different officer approves acts above the payout threshold)."""
    record = _run(lambda c: approve_act(c, act, officer))
    console.print(f"{record.number}: {record.state.name.lower()}")


@settlement_app.command("reject")
def reject_command(
    act: ActNumber, officer: Officer, reason: Annotated[str, typer.Option(help="Why, for the provider.")]
) -> None:
    """Reject an act not yet approved; draw the period up again after the corrections."""
    record = _run(lambda c: reject_act(c, act, officer, reason))
    console.print(f"{record.number}: {record.state.name.lower()}")


@settlement_app.command("pay")
def pay_command(act: ActNumber, officer: Officer) -> None:
    """Pay an approved act (once: paying again shows the payout)."""
    payout = _run(lambda c: pay_act(c, act, officer))
    console.print(f"{payout.act_number}: paid {payout.amount_tiyn} tiyn, set off {payout.setoff_tiyn}")
    for order in payout.orders:
        state = "returned" if order.returned else "sent"
        typer.echo(
            f"{order.number}\t{order.order_date}\t{order.amount_tiyn}\t{order.iban}\t{state}\t{order.purpose}"
        )


@settlement_app.command("return-payment")
def return_payment_command(
    order: Annotated[str, typer.Option(help="The payment order's number.")],
    reason: Annotated[str, typer.Option(help="The bank's reason.")],
    officer: Officer,
) -> None:
    """Record a payment the bank sent back; its money waits in clearing until `repay`."""
    payout = _run(lambda c: record_payment_return(c, order, reason, officer))
    console.print(f"{payout.act_number}: order {order} returned")


@settlement_app.command("repay")
def repay_command(act: ActNumber, officer: Officer) -> None:
    """Pay a returned payment again, to the provider's corrected IBAN."""
    payout = _run(lambda c: repay_act(c, act, officer))
    last = payout.orders[-1]
    typer.echo(f"{last.number}\t{last.order_date}\t{last.amount_tiyn}\t{last.iban}")


@settlement_app.command("disallow")
def disallow_command(
    programme: Programme,
    redemption: Annotated[list[uuid.UUID], typer.Option(help="A redemption id; repeatable.")],
    reason: Annotated[str, typer.Option(help="Why the redemption is taken back.")],
    officer: Officer,
) -> None:
    """Take back redemptions of closed periods (an adjustment act follows when their act was approved)."""
    done = _run(
        lambda c: disallow_redemptions(c, programme_id_by_code(c, programme), redemption, reason, officer)
    )
    for disallowance in done:
        typer.echo(f"{disallowance.redemption_id}\t{disallowance.amount_tiyn}")


@settlement_app.command("reconcile")
def reconcile_command(
    programme: Programme,
    period: Period,
    out: Annotated[
        Path | None, typer.Option(help="Write reconciliation.json, providers.csv, differences.csv.")
    ] = None,
    strict: Annotated[bool, typer.Option(help="Exit 1 when any difference is listed.")] = False,
) -> None:
    """Redemptions = acts = invoices = payouts (+ pending), every difference listed; JSON on stdout."""
    start = _period_start(period)
    with _unit_of_work() as unit_of_work:
        report = unit_of_work.read(lambda c: reconcile_period(c, programme_id_by_code(c, programme), start))
    if out is None:
        typer.echo(reconciliation_json(report), nl=False)
    else:
        out.mkdir(parents=True, exist_ok=True)
        (out / "reconciliation.json").write_text(reconciliation_json(report), encoding="utf-8")
        (out / "providers.csv").write_text(providers_csv(report), encoding="utf-8")
        (out / "differences.csv").write_text(differences_csv(report), encoding="utf-8")
    verdict = "reconciled" if report.reconciled else f"{len(report.differences)} differences"
    console.print(f"{report.programme_code} {report.period_start}–{report.period_end}: {verdict}")
    if strict and not report.reconciled:
        raise typer.Exit(1)
