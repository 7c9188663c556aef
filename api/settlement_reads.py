"""What the settlement routers read: acts with their invoice, signature, approvals, rejection and payout,
and payouts with their payment orders, page by page. Pure reads in the caller's transaction, each list
filtered by what the caller may see (a programme's period, or one provider), so a forged cursor reads
nothing the caller could not read anyway. A page costs three queries, whatever its length."""

import datetime as dt
import uuid
from collections import defaultdict
from typing import Any, Final

import psycopg

from api.schemas.common import at
from api.schemas.settlement import (
    ActView,
    ApprovalView,
    ClosedPeriodView,
    InvoiceSummaryView,
    PaymentOrderView,
    PayoutView,
    RejectionView,
    SignatureView,
)
from treasury.settlement import ActKind, ActState, ClosedPeriod

Cursor = tuple[int, uuid.UUID] | None

_ACTS: Final = """
SELECT a.id, a.number, a.kind, c.number, a.programme_id, a.provider_id, a.period_start, a.period_end,
       a.act_date, a.total_tiyn, a.sha256, s.state, a."timestamp",
       i.number, i.vat_rate, i.total_without_vat_tiyn, i.total_vat_tiyn, i.total_with_vat_tiyn,
       g.key_id, g."timestamp", r.officer, r.reason, r."timestamp"
  FROM settlement_acts a
  JOIN settlement_act_states s ON s.act_id = a.id
  LEFT JOIN settlement_acts c ON c.id = a.corrects_act_id
  LEFT JOIN settlement_invoices i ON i.act_id = a.id
  LEFT JOIN act_signatures g ON g.act_id = a.id
  LEFT JOIN act_rejections r ON r.act_id = a.id
"""
# A period's acts in the order they were issued; the cursor is the last act's (timestamp, id).
_PERIOD_ACTS: Final = (
    _ACTS
    + """ WHERE a.programme_id = %(programme)s AND a.period_start = %(start)s
   AND (%(after)s::bigint IS NULL OR (a."timestamp", a.id) > (%(after)s::bigint, %(after_id)s::uuid))
 ORDER BY a."timestamp", a.id LIMIT %(limit)s"""
)
# A provider's acts, newest first, optionally of one programme or in one state.
_PROVIDER_ACTS: Final = (
    _ACTS
    + """ WHERE a.provider_id = %(provider)s
   AND (%(programme)s::uuid IS NULL OR a.programme_id = %(programme)s::uuid)
   AND (%(state)s::smallint IS NULL OR s.state = %(state)s::smallint)
   AND (%(after)s::bigint IS NULL OR (a."timestamp", a.id) < (%(after)s::bigint, %(after_id)s::uuid))
 ORDER BY a."timestamp" DESC, a.id DESC LIMIT %(limit)s"""
)
_APPROVALS: Final = """
SELECT act_id, step, officer, "timestamp" FROM act_approvals WHERE act_id = ANY(%s) ORDER BY act_id, step
"""
_PAYOUTS: Final = """
SELECT p.act_id, a.number, p.programme_id, p.provider_id, p.amount_tiyn, p.setoff_tiyn, p."timestamp"
  FROM settlement_payouts p JOIN settlement_acts a ON a.id = p.act_id
 WHERE p.act_id = ANY(%s)
"""
_ORDERS: Final = """
SELECT o.act_id, o.number, o.attempt, o.order_date, o.amount_tiyn, o.kbk, o.purpose, o.payee_name,
       o.payee_bin, o.iban, o.bank_name, o.bic, o."timestamp", r.reason, r."timestamp"
  FROM payment_orders o LEFT JOIN payment_returns r ON r.order_id = o.id
 WHERE o.act_id = ANY(%s) ORDER BY o.act_id, o.attempt
"""
_PROVIDER_PAYOUTS: Final = """
SELECT act_id, "timestamp" FROM settlement_payouts
 WHERE provider_id = %(provider)s
   AND (%(programme)s::uuid IS NULL OR programme_id = %(programme)s::uuid)
   AND (%(after)s::bigint IS NULL OR ("timestamp", act_id) < (%(after)s::bigint, %(after_id)s::uuid))
 ORDER BY "timestamp" DESC, act_id DESC LIMIT %(limit)s
"""


def _window(cursor: Cursor, limit: int) -> dict[str, Any]:
    after, after_id = cursor if cursor is not None else (None, None)
    return {"after": after, "after_id": after_id, "limit": limit}


def act_by_number(connection: psycopg.Connection[Any], number: str) -> ActView | None:
    rows = connection.execute(_ACTS + " WHERE a.number = %s", (number,)).fetchall()
    views = _act_views(connection, rows)
    return views[0][0] if views else None


def period_acts(
    connection: psycopg.Connection[Any],
    programme_id: uuid.UUID,
    period_start: dt.date,
    cursor: Cursor,
    limit: int,
) -> list[tuple[ActView, int]]:
    """The acts of a programme's period in the order they were issued, each with its ledger timestamp."""
    window = _window(cursor, limit) | {"programme": programme_id, "start": period_start}
    return _act_views(connection, connection.execute(_PERIOD_ACTS, window).fetchall())


def provider_acts(
    connection: psycopg.Connection[Any],
    provider_id: uuid.UUID,
    programme_id: uuid.UUID | None,
    state: ActState | None,
    cursor: Cursor,
    limit: int,
) -> list[tuple[ActView, int]]:
    """The provider's acts, newest first, each with its ledger timestamp."""
    window = _window(cursor, limit) | {
        "provider": provider_id,
        "programme": programme_id,
        "state": int(state) if state is not None else None,
    }
    return _act_views(connection, connection.execute(_PROVIDER_ACTS, window).fetchall())


def _act_views(connection: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> list[tuple[ActView, int]]:
    ids = [row[0] for row in rows]
    approvals: defaultdict[uuid.UUID, list[ApprovalView]] = defaultdict(list)
    for act_id, step, officer, timestamp in connection.execute(_APPROVALS, (ids,)):
        approvals[act_id].append(ApprovalView(step=step, officer=officer, approved_at=at(timestamp)))
    payouts = payouts_of(connection, ids)
    return [(_act_view(row, approvals[row[0]], payouts.get(row[0])), row[12]) for row in rows]


def _act_view(row: tuple[Any, ...], approvals: list[ApprovalView], payout: PayoutView | None) -> ActView:
    (act_id, number, kind, corrects, programme, provider, start, end, act_date, total, sha256, state,
     timestamp, invoice, vat_rate, without_vat, vat, with_vat, key_id, signed_at, rejected_by, reason,
     rejected_at) = row  # fmt: skip
    return ActView(
        id=act_id,
        number=number,
        kind="regular" if kind == ActKind.REGULAR else "adjustment",
        corrects=corrects,
        programme_id=programme,
        provider_id=provider,
        period_start=start,
        period_end=end,
        act_date=act_date,
        total_tiyn=total,
        sha256=bytes(sha256).hex(),
        state=ActState(state).name.lower(),  # type: ignore[arg-type]
        issued_at=at(timestamp),
        invoice=None
        if invoice is None
        else InvoiceSummaryView(
            number=invoice,
            vat_rate=vat_rate,
            total_without_vat_tiyn=without_vat,
            total_vat_tiyn=vat,
            total_with_vat_tiyn=with_vat,
        ),
        signature=None if key_id is None else SignatureView(key_id=key_id, signed_at=at(signed_at)),
        approvals=approvals,
        rejection=None
        if rejected_by is None
        else RejectionView(officer=rejected_by, reason=reason, rejected_at=at(rejected_at)),
        payout=payout,
    )


def payouts_of(connection: psycopg.Connection[Any], act_ids: list[uuid.UUID]) -> dict[uuid.UUID, PayoutView]:
    """The payouts of these acts (those paid), by act id, with their payment orders oldest first."""
    orders: defaultdict[uuid.UUID, list[PaymentOrderView]] = defaultdict(list)
    for row in connection.execute(_ORDERS, (act_ids,)):
        orders[row[0]].append(_order_view(row))
    return {
        act_id: PayoutView(
            act_id=act_id,
            act_number=number,
            programme_id=programme,
            provider_id=provider,
            amount_tiyn=amount,
            setoff_tiyn=setoff,
            paid_at=at(timestamp),
            orders=orders[act_id],
        )
        for act_id, number, programme, provider, amount, setoff, timestamp in connection.execute(
            _PAYOUTS, (act_ids,)
        )
    }


def _order_view(row: tuple[Any, ...]) -> PaymentOrderView:
    (_, number, attempt, day, amount, kbk, purpose, payee, payee_bin, iban, bank, bic, timestamp, reason,
     returned_at) = row  # fmt: skip
    return PaymentOrderView(
        number=number,
        attempt=attempt,
        order_date=day,
        amount_tiyn=amount,
        kbk=kbk,
        purpose=purpose,
        payee_name=payee,
        payee_bin=payee_bin,
        iban=iban,
        bank_name=bank,
        bic=bic,
        issued_at=at(timestamp),
        returned=returned_at is not None,
        return_reason=reason,
        returned_at=at(returned_at) if returned_at is not None else None,
    )


def provider_payouts(
    connection: psycopg.Connection[Any],
    provider_id: uuid.UUID,
    programme_id: uuid.UUID | None,
    cursor: Cursor,
    limit: int,
) -> list[tuple[PayoutView, int]]:
    """The provider's payouts, newest first, each with its ledger timestamp (the cursor's position)."""
    window = _window(cursor, limit) | {"provider": provider_id, "programme": programme_id}
    rows = connection.execute(_PROVIDER_PAYOUTS, window).fetchall()
    payouts = payouts_of(connection, [act_id for act_id, _ in rows])
    return [(payouts[act_id], timestamp) for act_id, timestamp in rows]


def closed_period_view(closed: ClosedPeriod) -> ClosedPeriodView:
    period = closed.period
    return ClosedPeriodView(
        programme_id=closed.programme_id,
        start=period.start,
        end=period.end,
        label=period.label,
        cycle=period.cycle.value,
        closed_by=closed.closed_by,
        closed_at=at(closed.timestamp),
    )
