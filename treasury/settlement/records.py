"""Acts and invoices as stored: written once (the tables refuse UPDATE and DELETE), each with its canonical
JSON, the SHA-256 of it (the table checks `sha256 = sha256(body)`), the PDF, and an audit event carrying
the hash. An act's entries say which redemption (or take-back) each line sums, and its claims make sure
no live act settles the same entry twice.
"""

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

import psycopg

from ledger.audit.events import json_event
from ledger.audit.inbox import append_events
from ledger.ids import derived_id
from ledger.timestamps import reserve_timestamps
from treasury.documents import (
    Invoice,
    ServiceAct,
    act_json,
    document_hash,
    invoice_json,
    render_act_pdf,
    render_invoice_pdf,
)
from treasury.errors import RefusalKind, Refused
from treasury.settlement.sources import SettlementEntry


class ActKind(IntEnum):
    REGULAR = 1
    ADJUSTMENT = 2


class ActState(IntEnum):
    """Where an act is in its workflow; the database lets it move only forward."""

    ISSUED = 1
    SIGNED = 2
    APPROVED_ONCE = 3
    """Approved by one officer; above the payout threshold a second, different officer must approve."""
    APPROVED = 4
    PAID = 5
    REJECTED = 9


@dataclass(frozen=True, slots=True)
class ActRecord:
    id: uuid.UUID
    programme_id: uuid.UUID
    provider_id: uuid.UUID
    number: str
    kind: ActKind
    corrects_act_id: uuid.UUID | None
    period_start: dt.date
    period_end: dt.date
    act_date: dt.date
    total_tiyn: int
    sha256: bytes
    state: ActState
    invoice_number: str | None


_ACT_COLUMNS: Final = """
SELECT a.id, a.programme_id, a.provider_id, a.number, a.kind, a.corrects_act_id, a.period_start,
       a.period_end, a.act_date, a.total_tiyn, a.sha256, s.state, i.number
  FROM settlement_acts a
  JOIN settlement_act_states s ON s.act_id = a.id
  LEFT JOIN settlement_invoices i ON i.act_id = a.id
"""


def _record(row: tuple[Any, ...]) -> ActRecord:
    return ActRecord(
        row[0],
        row[1],
        row[2],
        row[3],
        ActKind(row[4]),
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        bytes(row[10]),
        ActState(row[11]),
        row[12],
    )


def store_act(
    connection: psycopg.Connection[Any],
    act_id: uuid.UUID,
    programme_id: uuid.UUID,
    provider_id: uuid.UUID,
    act: ServiceAct,
    entries: Sequence[SettlementEntry],
    officer: str,
    corrects_act_id: uuid.UUID | None = None,
) -> bytes:
    """Write the act, its entries, its claims and its first state; queue its audit event. Returns the
    SHA-256 of its canonical JSON."""
    body = act_json(act)
    digest = document_hash(body)
    kind = ActKind.ADJUSTMENT if act.is_adjustment else ActKind.REGULAR
    timestamp = reserve_timestamps(connection)
    connection.execute(
        """INSERT INTO settlement_acts (id, programme_id, provider_id, number, kind, corrects_act_id,
               period_start, period_end, act_date, total_tiyn, body, sha256, pdf, issued_by, "timestamp")
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            act_id,
            programme_id,
            provider_id,
            act.number,
            int(kind),
            corrects_act_id,
            act.period_start,
            act.period_end,
            act.date,
            act.total_tiyn,
            body,
            digest,
            render_act_pdf(act),
            officer,
            timestamp,
        ),
    )
    _store_entries(connection, act_id, act, entries)
    connection.execute(
        'INSERT INTO settlement_act_states (act_id, state, "timestamp") VALUES (%s, %s, %s)',
        (act_id, int(ActState.ISSUED), timestamp),
    )
    event = {
        "act": str(act_id),
        "number": act.number,
        "act_kind": kind.name.lower(),
        "corrects": act.corrects,
        "programme": str(programme_id),
        "provider": str(provider_id),
        "period_start": act.period_start.isoformat(),
        "period_end": act.period_end.isoformat(),
        "total_tiyn": act.total_tiyn,
        "sha256": digest.hex(),
        "officer": officer,
    }
    append_events(connection, [json_event("settlement_act_issued", event)])
    return digest


def _store_entries(
    connection: psycopg.Connection[Any],
    act_id: uuid.UUID,
    act: ServiceAct,
    entries: Sequence[SettlementEntry],
) -> None:
    line_of = {rid: line.number for line in act.lines for rid in line.redemption_ids}
    by_redemption = {entry.redemption_id: entry for entry in entries}
    settled = [by_redemption[rid] for rid in line_of]
    connection.execute(
        """INSERT INTO settlement_act_entries (act_id, entry_id, redemption_id, line_number, amount_tiyn)
           SELECT %s, e, r, l, a
             FROM unnest(%s::uuid[], %s::uuid[], %s::integer[], %s::bigint[]) AS t(e, r, l, a)""",
        (
            act_id,
            [e.entry_id for e in settled],
            [e.redemption_id for e in settled],
            [line_of[e.redemption_id] for e in settled],
            [e.line.amount_tiyn for e in settled],
        ),
    )
    # A concurrent issuer claiming the same entry loses on pk_settlement_claims; the unit of work retries
    # it, and the retry finds them settled.
    connection.execute(
        "INSERT INTO settlement_claims (entry_id, act_id) SELECT e, %s FROM unnest(%s::uuid[]) AS e",
        (act_id, [e.entry_id for e in settled]),
    )


def store_invoice(connection: psycopg.Connection[Any], act_id: uuid.UUID, invoice: Invoice) -> bytes:
    body = invoice_json(invoice)
    digest = document_hash(body)
    timestamp = reserve_timestamps(connection)
    invoice_id = derived_id(act_id, "invoice")
    connection.execute(
        """INSERT INTO settlement_invoices (id, act_id, number, invoice_date, vat_rate,
               total_without_vat_tiyn, total_vat_tiyn, total_with_vat_tiyn, body, sha256, pdf, "timestamp")
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            invoice_id,
            act_id,
            invoice.number,
            invoice.date,
            invoice.lines[0].vat_rate.value,
            invoice.total_without_vat_tiyn,
            invoice.total_vat_tiyn,
            invoice.total_with_vat_tiyn,
            body,
            digest,
            render_invoice_pdf(invoice),
            timestamp,
        ),
    )
    event = {
        "invoice": str(invoice_id),
        "number": invoice.number,
        "act": str(act_id),
        "act_number": invoice.act_number,
        "corrects": invoice.corrects,
        "total_without_vat_tiyn": invoice.total_without_vat_tiyn,
        "total_vat_tiyn": invoice.total_vat_tiyn,
        "total_with_vat_tiyn": invoice.total_with_vat_tiyn,
        "sha256": digest.hex(),
    }
    append_events(connection, [json_event("settlement_invoice_issued", event)])
    return digest


def find_act(
    connection: psycopg.Connection[Any], *, number: str | None = None, act_id: uuid.UUID | None = None
) -> ActRecord | None:
    """An act by its number or id, with its state and its invoice's number."""
    if number is not None:
        row = connection.execute(_ACT_COLUMNS + " WHERE a.number = %s", (number,)).fetchone()
    else:
        row = connection.execute(_ACT_COLUMNS + " WHERE a.id = %s", (act_id,)).fetchone()
    return _record(row) if row is not None else None


def require_act(connection: psycopg.Connection[Any], number: str) -> ActRecord:
    act = find_act(connection, number=number)
    if act is None:
        raise Refused("act_not_found", number, RefusalKind.NOT_FOUND)
    return act


def lock_act_state(connection: psycopg.Connection[Any], act_id: uuid.UUID) -> ActState:
    """The act's state, its row locked until commit: every workflow step on one act is serialised here."""
    row = connection.execute(
        "SELECT state FROM settlement_act_states WHERE act_id = %s FOR UPDATE", (act_id,)
    ).fetchone()
    assert row is not None, "every act has a state row"
    return ActState(row[0])


def move_act_state(connection: psycopg.Connection[Any], act_id: uuid.UUID, state: ActState) -> None:
    """Move the (locked) act to `state`; the database refuses a move backwards."""
    connection.execute(
        'UPDATE settlement_act_states SET state = %s, "timestamp" = %s WHERE act_id = %s',
        (int(state), reserve_timestamps(connection), act_id),
    )


def acts_of_period(
    connection: psycopg.Connection[Any], programme_id: uuid.UUID, period_start: dt.date
) -> list[ActRecord]:
    rows = connection.execute(
        _ACT_COLUMNS + " WHERE a.programme_id = %s AND a.period_start = %s ORDER BY a.number",
        (programme_id, period_start),
    ).fetchall()
    return [_record(row) for row in rows]


def live_invoice_number(connection: psycopg.Connection[Any], act_id: uuid.UUID) -> str | None:
    row = connection.execute("SELECT number FROM settlement_invoices WHERE act_id = %s", (act_id,)).fetchone()
    return row[0] if row is not None else None


def document_bytes(connection: psycopg.Connection[Any], number: str, what: str) -> bytes:
    """An issued document's stored bytes: `what` is act_json, act_pdf, invoice_json or invoice_pdf;
    `number` is the act's number (its invoice is found through it)."""
    queries = {
        "act_json": "SELECT body FROM settlement_acts WHERE number = %s",
        "act_pdf": "SELECT pdf FROM settlement_acts WHERE number = %s",
        "invoice_json": "SELECT i.body FROM settlement_invoices i JOIN settlement_acts a ON a.id = i.act_id"
        " WHERE a.number = %s",
        "invoice_pdf": "SELECT i.pdf FROM settlement_invoices i JOIN settlement_acts a ON a.id = i.act_id"
        " WHERE a.number = %s",
    }
    if what not in queries:
        raise Refused("document_kind_invalid", f"ask for one of {sorted(queries)}")
    row = connection.execute(queries[what], (number,)).fetchone()
    if row is None:
        raise Refused("act_not_found", number, RefusalKind.NOT_FOUND)
    return bytes(row[0])
