"""The demo: a realistic month of the Social Wallet, told end to end in a database of its own.

A school-meals programme funded and approved by two officers, 1,000 pupils offered vouchers (most parents
accept, a few decline), a week of canteen meals, a pharmacy dispensing prescriptions in two phases, a gas
discount paid in digital tenge, the month closed into acts and invoices that providers sign and officers
approve and pay — then the audit log integrated, exported and verified offline. Credentials for every
audience are made so the API can be explored at once.

The story happens next month: the demo database's ledger clock is moved forward through it (see
`api.demo_story`). Loading is done once per demo database; `fresh=True` rebuilds it.
"""

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import conninfo, sql

from api.credentials import CredentialKind, Role, create_credential
from api.database import create_pool, ensure_database, upgrade_database
from api.demo_cast import HOUSEHOLDS, cast_for, gas_policy, meals_policy, medicines_policy
from api.demo_story import (
    Story,
    cast_people,
    consent_and_activate,
    enrol_providers,
    gas_month,
    issue_lists,
    open_programmes,
    pharmacy_week,
    school_week,
    settle_month,
    write_documents,
)
from api.settings import Settings
from ledger.clock import BUSINESS_TIMEZONE
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.service import VoucherLedger
from ledger.vouchers.tokens import IssuerSigner
from treasury.positions import Positions, programme_positions

_LOADED_MARKER = "SELECT 1 FROM programmes WHERE code = 'SM-DEMO-AST'"


@dataclass
class DemoReport:
    database_url: str
    loaded_now: bool
    facts: list[str] = field(default_factory=list)
    credentials: dict[str, str] = field(default_factory=dict)
    documents: Path | None = None
    positions: list[str] = field(default_factory=list)


def demo_database_url(server_url: str, name: str, fresh: bool) -> str:
    """The demo's own database on the same server (made if missing; dropped first when `fresh`)."""
    parts = conninfo.conninfo_to_dict(server_url)
    if fresh:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    ensure_database(server_url, name)
    parts["dbname"] = name
    return conninfo.make_conninfo("", **parts)


def load_demo(
    settings: Settings, url: str, signer: IssuerSigner, holder_salt: bytes, workdir: Path
) -> DemoReport:
    """Tell the story in the database at `url` (migrated here), unless it was told there already."""
    upgrade_database(url)
    report = DemoReport(database_url=url, loaded_now=False)
    with psycopg.connect(url) as connection:
        if connection.execute(_LOADED_MARKER).fetchone() is not None:
            report.facts.append(
                "the demo database was loaded before: nothing reloaded (use --fresh to retell it)"
            )
            return report
    workdir.mkdir(parents=True, exist_ok=True)
    pool = create_pool(url, settings.database_role, size_max=8)
    unit_of_work = UnitOfWork(pool)
    vouchers = VoucherLedger(unit_of_work, signer)
    try:
        now = vouchers.now()
        year = 365 * 24 * 3600 * 10**9
        vouchers.introduce_signer(now + year, now + 2 * year)
        _tell(Story(url, unit_of_work, vouchers, holder_salt, cast_for(_next_month()), workdir), report)
        report.credentials = _credentials(unit_of_work)
    finally:
        vouchers.close()
        pool.close()
    report.loaded_now = True
    return report


def _next_month() -> dt.date:
    today = dt.datetime.now(BUSINESS_TIMEZONE).date()
    return (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)


def _tell(story: Story, report: DemoReport) -> None:
    first = story.cast.meals.period_start
    last = story.cast.meals.period_end
    policies = {
        story.cast.meals.code: meals_policy(first, last),
        story.cast.medicines.code: medicines_policy(first, last),
        story.cast.gas.code: gas_policy(first, last),
    }
    pupils, patients, households = cast_people()
    open_programmes(story, policies)
    enrol_providers(story)
    issue_lists(story, pupils, patients, households)
    monday = first + dt.timedelta(days=(7 - first.weekday()) % 7)
    story.advance_clock(dt.datetime.combine(monday, dt.time(8), BUSINESS_TIMEZONE))
    active = consent_and_activate(story, pupils)
    school_week(story, active, monday)
    pharmacy_week(story, patients)
    gas_month(
        story,
        households[:HOUSEHOLDS],
        dt.datetime.combine(first.replace(day=10), dt.time(9), BUSINESS_TIMEZONE),
    )
    month_after = (first + dt.timedelta(days=32)).replace(day=2)
    story.advance_clock(dt.datetime.combine(month_after, dt.time(9), BUSINESS_TIMEZONE))
    numbers = settle_month(story, first)
    report.documents = write_documents(story, numbers)
    report.facts += story.facts
    for draft in (story.cast.meals, story.cast.medicines, story.cast.gas):
        positions = _positions(story.unit_of_work, draft.id)
        f = {name: _tenge(value) for name, value in positions.figures.items()}
        verdict = "reconciled to the tiyn" if positions.reconciled else "DOES NOT RECONCILE"
        report.positions.append(
            f"{draft.code:13s} {positions.asset:12s} funded {f['funded']}, issued {f['issued']},"
            f" redeemed {f['redeemed']}, paid {f['paid']}: {verdict}"
        )


def _positions(unit_of_work: UnitOfWork, programme_id: uuid.UUID) -> Positions:
    found: Positions = unit_of_work.read(lambda c: programme_positions(c, programme_id))
    return found


def _tenge(tiyn: int) -> str:
    return f"{tiyn // 100:,} ₸".replace(",", " ")


def _credentials(unit_of_work: UnitOfWork) -> dict[str, str]:
    now = dt.datetime.now(dt.UTC)
    made = {}
    for role in (Role.operator, Role.treasury_officer, Role.auditor, Role.mobile_backend):
        made[role.value] = create_credential(
            unit_of_work, CredentialKind.api_key, role, f"demo {role.value}", now
        ).secret
    canteen = cast_for(_next_month()).canteens[0][0]
    made["provider (canteen)"] = create_credential(
        unit_of_work,
        CredentialKind.api_key,
        Role.provider,
        f"demo canteen {secrets.token_hex(2)}",
        now,
        canteen,
    ).secret
    return made
