"""Settlement periods: the stretch of business days (Asia/Almaty) whose redemptions one act settles.

A programme settles by calendar month unless its terms say week (ISO, Monday to Sunday) or day. Periods
follow one another from the one holding the programme's first day; they close in that order and only
once they have ended. Closing a period freezes it in the ledger (`ledger.vouchers.registry.close_period`:
no redemption or reversal may be dated in it any more) and records it here, in one transaction, with its
audit event. Acts are drawn up only for closed periods, so an act is a function of frozen data.
"""

import datetime as dt
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import psycopg

from ledger.audit.events import json_event
from ledger.audit.inbox import append_events
from ledger.clock import business_date
from ledger.limits import AMOUNT_TIYN_MAX
from ledger.timestamps import reserve_timestamps
from ledger.vouchers.registry import close_period as close_ledger_period
from treasury.errors import RefusalKind, Refused
from treasury.programmes import Programme, ProgrammeState, find_programme

OFFICER_CHARS_MAX: Final = 200


class SettlementCycle(StrEnum):
    """How long a settlement period is. Monthly is what acts of services rendered normally cover."""

    MONTH = "month"
    WEEK = "week"
    DAY = "day"


@dataclass(frozen=True, slots=True)
class SettlementPeriod:
    """Inclusive business days; `label` is how numbers and reports name it (2026-10, 2026-W43, 2026-10-27)."""

    start: dt.date
    end: dt.date
    cycle: SettlementCycle

    @property
    def label(self) -> str:
        if self.cycle is SettlementCycle.MONTH:
            return self.start.strftime("%Y-%m")
        if self.cycle is SettlementCycle.WEEK:
            year, week, _ = self.start.isocalendar()
            return f"{year}-W{week:02d}"
        return self.start.isoformat()

    def contains(self, day: dt.date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True, slots=True)
class SettlementTerms:
    """A programme's settlement terms. Acts whose total exceeds `payout_threshold_tiyn` need a second
    officer's approval before they are paid (default: the programme's funding approval threshold)."""

    programme_id: uuid.UUID
    cycle: SettlementCycle
    payout_threshold_tiyn: int
    stored: bool


@dataclass(frozen=True, slots=True)
class ClosedPeriod:
    programme_id: uuid.UUID
    period: SettlementPeriod
    closed_by: str
    timestamp: int


def period_containing(cycle: SettlementCycle, day: dt.date) -> SettlementPeriod:
    """The period of `cycle` that holds business day `day`."""
    if cycle is SettlementCycle.MONTH:
        start = day.replace(day=1)
        following = (start + dt.timedelta(days=32)).replace(day=1)
        return SettlementPeriod(start, following - dt.timedelta(days=1), cycle)
    if cycle is SettlementCycle.WEEK:
        start = day - dt.timedelta(days=day.isoweekday() - 1)
        return SettlementPeriod(start, start + dt.timedelta(days=6), cycle)
    return SettlementPeriod(day, day, cycle)


def require_programme(connection: psycopg.Connection[Any], programme_id: uuid.UUID) -> Programme:
    programme = find_programme(connection, programme_id)
    if programme is None:
        raise Refused("programme_not_found", str(programme_id), RefusalKind.NOT_FOUND)
    return programme


def programme_id_by_code(connection: psycopg.Connection[Any], code: str) -> uuid.UUID:
    """The id of the programme with this code (officers name programmes by code: SM-2026-AST)."""
    row = connection.execute("SELECT id FROM programmes WHERE code = %s", (code,)).fetchone()
    if row is None:
        raise Refused("programme_not_found", code, RefusalKind.NOT_FOUND)
    return uuid.UUID(str(row[0]))


def require_officer(officer: str) -> None:
    if not officer.strip() or len(officer) > OFFICER_CHARS_MAX:
        raise Refused("officer_invalid", f"name the officer in 1 to {OFFICER_CHARS_MAX} characters")


def settlement_terms(connection: psycopg.Connection[Any], programme: Programme) -> SettlementTerms:
    """The programme's stored terms, else the defaults (monthly; the funding approval threshold)."""
    row = connection.execute(
        "SELECT cycle, payout_threshold_tiyn FROM settlement_terms WHERE programme_id = %s", (programme.id,)
    ).fetchone()
    if row is None:
        return SettlementTerms(
            programme.id, SettlementCycle.MONTH, programme.draft.approval_threshold_tiyn, stored=False
        )
    return SettlementTerms(programme.id, SettlementCycle(row[0]), row[1], stored=True)


def set_settlement_terms(
    connection: psycopg.Connection[Any],
    programme_id: uuid.UUID,
    cycle: SettlementCycle,
    payout_threshold_tiyn: int,
    officer: str,
) -> SettlementTerms:
    """Fix a programme's settlement terms, once, before its first period closes (idempotent)."""
    require_officer(officer)
    programme = require_programme(connection, programme_id)
    if not 0 <= payout_threshold_tiyn <= AMOUNT_TIYN_MAX:
        raise Refused("threshold_invalid", f"the payout threshold must be 0 to {AMOUNT_TIYN_MAX} tiyn")
    current = settlement_terms(connection, programme)
    wanted = SettlementTerms(programme_id, SettlementCycle(cycle), payout_threshold_tiyn, stored=True)
    if current.stored:
        if current != wanted:
            raise Refused(
                "terms_fixed", "the programme's settlement terms are set already", RefusalKind.CONFLICT
            )
        return current
    _insert_terms(connection, wanted, officer)
    return wanted


def _insert_terms(connection: psycopg.Connection[Any], terms: SettlementTerms, officer: str) -> None:
    timestamp = reserve_timestamps(connection)
    connection.execute(
        """INSERT INTO settlement_terms (programme_id, cycle, payout_threshold_tiyn, set_by, "timestamp")
           VALUES (%s, %s, %s, %s, %s)""",
        (terms.programme_id, terms.cycle.value, terms.payout_threshold_tiyn, officer, timestamp),
    )
    append_events(
        connection,
        [
            json_event(
                "settlement_terms_set",
                {
                    "programme": str(terms.programme_id),
                    "cycle": terms.cycle.value,
                    "payout_threshold_tiyn": terms.payout_threshold_tiyn,
                    "officer": officer,
                },
            )
        ],
    )


def next_period(connection: psycopg.Connection[Any], programme: Programme) -> SettlementPeriod:
    """The period to close next: the one after the last closed, or the one holding the programme's start."""
    terms = settlement_terms(connection, programme)
    row = connection.execute(
        "SELECT max(period_end) FROM settlement_periods WHERE programme_id = %s", (programme.id,)
    ).fetchone()
    last_end = row[0] if row is not None else None
    first_day = programme.draft.period_start if last_end is None else last_end + dt.timedelta(days=1)
    return period_containing(terms.cycle, first_day)


def close_period(
    connection: psycopg.Connection[Any],
    programme_id: uuid.UUID,
    officer: str,
    period_start: dt.date | None = None,
) -> ClosedPeriod:
    """Close the programme's next period (or check that `period_start` names it). Closing a period that is
    closed already answers it again; a later one, or one that has not ended, is refused."""
    require_officer(officer)
    programme = require_programme(connection, programme_id)
    if programme.state is ProgrammeState.DRAFT:
        raise Refused("programme_draft", "a draft programme has nothing to settle", RefusalKind.CONFLICT)
    if period_start is not None:
        closed = find_closed_period(connection, programme, period_start)
        if closed is not None:
            return closed
    period = next_period(connection, programme)
    if period_start is not None and period_start != period.start:
        raise Refused(
            "period_out_of_order",
            f"periods close in order: the next one to close starts {period.start.isoformat()}",
            RefusalKind.CONFLICT,
        )
    today = business_date(reserve_timestamps(connection))
    if period.end >= today:
        raise Refused(
            "period_not_ended",
            f"the period {period.label} ends {period.end.isoformat()}",
            RefusalKind.CONFLICT,
        )
    outcome = close_ledger_period(connection, programme_id, period.end)
    if not outcome.ok and _ledger_closed_through(connection, programme_id) < period.end:
        raise Refused(f"ledger_{outcome.result.name}", outcome.detail, RefusalKind.CONFLICT)
    terms = settlement_terms(connection, programme)
    if not terms.stored:
        _insert_terms(connection, terms, officer)
    return _record_closed(connection, programme_id, period, officer)


def _ledger_closed_through(connection: psycopg.Connection[Any], programme_id: uuid.UUID) -> dt.date:
    row = connection.execute(
        "SELECT closed_through FROM voucher_programmes WHERE id = %s", (programme_id,)
    ).fetchone()
    return row[0] if row is not None and row[0] is not None else dt.date.min


def _record_closed(
    connection: psycopg.Connection[Any], programme_id: uuid.UUID, period: SettlementPeriod, officer: str
) -> ClosedPeriod:
    timestamp = reserve_timestamps(connection)
    connection.execute(
        """INSERT INTO settlement_periods (programme_id, period_start, period_end, closed_by, "timestamp")
           VALUES (%s, %s, %s, %s, %s)""",
        (programme_id, period.start, period.end, officer, timestamp),
    )
    append_events(
        connection,
        [
            json_event(
                "settlement_period_closed",
                {
                    "programme": str(programme_id),
                    "start": period.start.isoformat(),
                    "end": period.end.isoformat(),
                    "officer": officer,
                },
            )
        ],
    )
    return ClosedPeriod(programme_id, period, officer, timestamp)


def find_closed_period(
    connection: psycopg.Connection[Any], programme: Programme, period_start: dt.date
) -> ClosedPeriod | None:
    row = connection.execute(
        """SELECT period_start, period_end, closed_by, "timestamp" FROM settlement_periods
            WHERE programme_id = %s AND period_start = %s""",
        (programme.id, period_start),
    ).fetchone()
    if row is None:
        return None
    cycle = settlement_terms(connection, programme).cycle
    return ClosedPeriod(programme.id, SettlementPeriod(row[0], row[1], cycle), row[2], row[3])


def require_closed_period(
    connection: psycopg.Connection[Any], programme: Programme, period_start: dt.date
) -> ClosedPeriod:
    closed = find_closed_period(connection, programme, period_start)
    if closed is None:
        raise Refused(
            "period_not_closed",
            f"no closed period of the programme starts {period_start.isoformat()}",
            RefusalKind.CONFLICT,
        )
    return closed


def closed_periods(connection: psycopg.Connection[Any], programme: Programme) -> list[ClosedPeriod]:
    cycle = settlement_terms(connection, programme).cycle
    rows = connection.execute(
        """SELECT period_start, period_end, closed_by, "timestamp" FROM settlement_periods
            WHERE programme_id = %s ORDER BY period_start""",
        (programme.id,),
    ).fetchall()
    return [ClosedPeriod(programme.id, SettlementPeriod(r[0], r[1], cycle), r[2], r[3]) for r in rows]
