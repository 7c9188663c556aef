"""Reconciliation of one programme's closed period, provider by provider: redemptions = acts = invoices =
payouts (+ what is pending), with every difference listed.

For each provider, in tiyn:

    redeemed − reversed − disallowed  =  acted (regular + adjustment acts)      once everything is drawn up
    acted                              =  invoiced (without VAT)
    regular acts                       =  paid + returned + set off + pending    (pending: not paid yet)

Each side is computed from its own table, never from the other side, and anything that keeps two sides
apart is a difference with its kind, what it refers to (a redemption id, an act or order number) and its
amount: a redemption on no live act, a take-back no adjustment act carries yet, an act whose entries do
not add up to its total or to the redemptions they name, a missing or unequal invoice, an act awaiting
signature, approval or payment, a returned payment not paid again, an adjustment not yet set off. The
provider's receivable in the ledger is checked against redemptions, take-backs and payouts too (over all
time: a balance that drifted from its journal is named). A period is reconciled when the list is empty.
"""

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg

from treasury.settlement.periods import require_closed_period, require_programme
from treasury.settlement.records import ActKind, ActRecord, ActState, acts_of_period
from treasury.settlement.sources import programme_provider_ids

_PENDING: Final = {
    ActState.ISSUED: "act_awaiting_signature",
    ActState.SIGNED: "act_awaiting_approval",
    ActState.APPROVED_ONCE: "act_awaiting_second_approval",
    ActState.APPROVED: "act_awaiting_payment",
}


@dataclass(frozen=True, slots=True)
class Difference:
    kind: str
    provider_id: uuid.UUID
    reference: str
    amount_tiyn: int
    detail: str = ""


@dataclass(slots=True)
class ProviderReconciliation:
    provider_id: uuid.UUID
    redemptions: int = 0
    redeemed_tiyn: int = 0
    reversed_tiyn: int = 0
    disallowed_tiyn: int = 0
    regular_acted_tiyn: int = 0
    adjustment_acted_tiyn: int = 0
    invoiced_tiyn: int = 0
    vat_tiyn: int = 0
    paid_tiyn: int = 0
    returned_tiyn: int = 0
    setoff_tiyn: int = 0
    pending_tiyn: int = 0
    receivable_tiyn: int = 0

    @property
    def net_tiyn(self) -> int:
        return self.redeemed_tiyn - self.reversed_tiyn - self.disallowed_tiyn

    @property
    def acted_tiyn(self) -> int:
        return self.regular_acted_tiyn + self.adjustment_acted_tiyn


@dataclass(slots=True)
class Reconciliation:
    programme_id: uuid.UUID
    programme_code: str
    period_start: Any
    period_end: Any
    providers: list[ProviderReconciliation] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)

    @property
    def reconciled(self) -> bool:
        return not self.differences


_REDEEMED: Final = """
SELECT r.provider_id, count(*), sum(r.amount_tiyn)::bigint,
       coalesce(sum(r.amount_tiyn) FILTER (WHERE v.redemption_id IS NOT NULL), 0)::bigint,
       coalesce(sum(r.amount_tiyn) FILTER (WHERE d.redemption_id IS NOT NULL), 0)::bigint
  FROM redemptions r
  LEFT JOIN redemption_reversals v ON v.redemption_id = r.id
  LEFT JOIN settlement_disallowances d ON d.redemption_id = r.id
 WHERE r.provider_id = ANY(%(providers)s) AND r.programme_id = %(programme)s
   AND r.effective_date BETWEEN %(start)s AND %(end)s AND r.phase IN (1, 3)
 GROUP BY r.provider_id
"""
_UNSETTLED: Final = """
SELECT r.provider_id, r.id, r.amount_tiyn FROM redemptions r
 WHERE r.provider_id = ANY(%(providers)s) AND r.programme_id = %(programme)s
   AND r.effective_date BETWEEN %(start)s AND %(end)s AND r.phase IN (1, 3)
   AND NOT EXISTS (SELECT 1 FROM settlement_claims c WHERE c.entry_id = r.id)
   AND NOT EXISTS (SELECT 1 FROM redemption_reversals v WHERE v.redemption_id = r.id)
   AND NOT EXISTS (SELECT 1 FROM settlement_disallowances d WHERE d.redemption_id = r.id)
 ORDER BY r.provider_id, r.id
"""
_UNADJUSTED: Final = """
SELECT r.provider_id, t.id, r.amount_tiyn, a.number, s.state
  FROM (SELECT id, redemption_id FROM redemption_reversals WHERE programme_id = %(programme)s
        UNION ALL SELECT id, redemption_id FROM settlement_disallowances WHERE programme_id = %(programme)s) t
  JOIN redemptions r ON r.id = t.redemption_id
  JOIN settlement_claims c ON c.entry_id = r.id
  JOIN settlement_acts a ON a.id = c.act_id
  JOIN settlement_act_states s ON s.act_id = a.id
 WHERE r.effective_date BETWEEN %(start)s AND %(end)s
   AND NOT EXISTS (SELECT 1 FROM settlement_claims x WHERE x.entry_id = t.id)
 ORDER BY r.provider_id, t.id
"""
_ENTRIES: Final = """
SELECT e.act_id, sum(e.amount_tiyn)::bigint, bool_and(abs(e.amount_tiyn) = r.amount_tiyn)
  FROM settlement_act_entries e JOIN redemptions r ON r.id = e.redemption_id
 WHERE e.act_id = ANY(%s) GROUP BY e.act_id
"""
_INVOICES: Final = """
SELECT act_id, number, total_without_vat_tiyn, total_vat_tiyn FROM settlement_invoices WHERE act_id = ANY(%s)
"""
_PAYOUTS: Final = """
SELECT p.act_id, p.amount_tiyn, p.setoff_tiyn,
       (SELECT r.order_id IS NOT NULL FROM payment_orders o LEFT JOIN payment_returns r ON r.order_id = o.id
         WHERE o.act_id = p.act_id ORDER BY o.attempt DESC LIMIT 1),
       (SELECT o.number FROM payment_orders o WHERE o.act_id = p.act_id ORDER BY o.attempt DESC LIMIT 1)
  FROM settlement_payouts p WHERE p.act_id = ANY(%s)
"""
_SET_OFF: Final = """
SELECT adjustment_act_id, sum(amount_tiyn)::bigint FROM settlement_setoffs
 WHERE adjustment_act_id = ANY(%s) GROUP BY adjustment_act_id
"""
_RECEIVABLES: Final = """
SELECT pp.provider_id, a.credits_posted - a.debits_posted,
       (SELECT coalesce(sum(amount_tiyn)::bigint, 0) FROM redemptions
         WHERE provider_id = pp.provider_id AND programme_id = pp.programme_id AND phase IN (1, 3))
     - (SELECT coalesce(sum(amount_tiyn)::bigint, 0) FROM redemption_reversals
         WHERE provider_id = pp.provider_id AND programme_id = pp.programme_id)
     - (SELECT coalesce(sum(amount_tiyn)::bigint, 0) FROM settlement_disallowances
         WHERE provider_id = pp.provider_id AND programme_id = pp.programme_id)
     - (SELECT coalesce(sum(amount_tiyn)::bigint, 0) FROM settlement_payouts
         WHERE provider_id = pp.provider_id AND programme_id = pp.programme_id)
  FROM programme_providers pp JOIN accounts a ON a.id = pp.receivable_account_id
 WHERE pp.programme_id = %s AND pp.provider_id = ANY(%s)
"""


def reconcile_period(
    connection: psycopg.Connection[Any], programme_id: uuid.UUID, period_start: Any
) -> Reconciliation:
    """The reconciliation of a closed period (read only)."""
    programme = require_programme(connection, programme_id)
    period = require_closed_period(connection, programme, period_start).period
    providers = programme_provider_ids(connection, programme_id)
    report = Reconciliation(programme_id, programme.draft.code, period.start, period.end)
    rows: dict[uuid.UUID, ProviderReconciliation] = {p: ProviderReconciliation(p) for p in providers}
    window = {"providers": providers, "programme": programme_id, "start": period.start, "end": period.end}
    for provider_id, count, redeemed, reversed_tiyn, disallowed in connection.execute(_REDEEMED, window):
        row = rows[provider_id]
        row.redemptions, row.redeemed_tiyn = count, redeemed
        row.reversed_tiyn, row.disallowed_tiyn = reversed_tiyn, disallowed
    for provider_id, redemption_id, amount in connection.execute(_UNSETTLED, window):
        report.differences.append(
            Difference("redemption_not_on_act", provider_id, str(redemption_id), amount)
        )
    for provider_id, take_back_id, amount, number, state in connection.execute(_UNADJUSTED, window):
        detail = f"act {number} carries the redemption" + (
            "" if state in (4, 5) else "; it is not approved: reject and redraw it, or approve it first"
        )
        report.differences.append(
            Difference("take_back_not_adjusted", provider_id, str(take_back_id), -amount, detail)
        )
    _reconcile_acts(connection, acts_of_period(connection, programme_id, period.start), rows, report)
    _check_receivables(connection, programme_id, providers, rows, report)
    report.providers = [row for row in rows.values() if _has_activity(row)]
    return report


def _reconcile_acts(
    connection: psycopg.Connection[Any],
    acts: list[ActRecord],
    rows: dict[uuid.UUID, ProviderReconciliation],
    report: Reconciliation,
) -> None:
    live = [act for act in acts if act.state is not ActState.REJECTED]
    ids = [act.id for act in live]
    entries = {r[0]: (r[1], r[2]) for r in connection.execute(_ENTRIES, (ids,))}
    invoices = {r[0]: r[1:] for r in connection.execute(_INVOICES, (ids,))}
    payouts = {r[0]: r[1:] for r in connection.execute(_PAYOUTS, (ids,))}
    set_off = dict(connection.execute(_SET_OFF, (ids,)).fetchall())
    for act in live:
        row = rows[act.provider_id]
        if act.kind is ActKind.REGULAR:
            row.regular_acted_tiyn += act.total_tiyn
        else:
            row.adjustment_acted_tiyn += act.total_tiyn
        entry_total, entries_match = entries.get(act.id, (0, False))
        if entry_total != act.total_tiyn or not entries_match:
            report.differences.append(
                Difference(
                    "act_entries_mismatch",
                    act.provider_id,
                    act.number,
                    act.total_tiyn - entry_total,
                    "entries ≠ total or redemptions",
                )
            )
        _reconcile_invoice(act, invoices.get(act.id), row, report)
        if act.kind is ActKind.REGULAR:
            _reconcile_payout(act, payouts.get(act.id), row, report)
        elif act.state is ActState.APPROVED:
            left = -act.total_tiyn - set_off.get(act.id, 0)
            report.differences.append(
                Difference("adjustment_not_set_off", act.provider_id, act.number, -left)
            )
        elif act.state is not ActState.PAID:
            report.differences.append(
                Difference("adjustment_awaiting_approval", act.provider_id, act.number, act.total_tiyn)
            )


def _reconcile_invoice(
    act: ActRecord, invoice: tuple[Any, ...] | None, row: ProviderReconciliation, report: Reconciliation
) -> None:
    if invoice is None:
        report.differences.append(Difference("invoice_missing", act.provider_id, act.number, act.total_tiyn))
        return
    number, without_vat, vat = invoice
    row.invoiced_tiyn += without_vat
    row.vat_tiyn += vat
    if without_vat != act.total_tiyn:
        report.differences.append(
            Difference("invoice_mismatch", act.provider_id, number, without_vat - act.total_tiyn, act.number)
        )


def _reconcile_payout(
    act: ActRecord, payout: tuple[Any, ...] | None, row: ProviderReconciliation, report: Reconciliation
) -> None:
    if payout is None:
        row.pending_tiyn += act.total_tiyn
        report.differences.append(
            Difference(_PENDING[act.state], act.provider_id, act.number, act.total_tiyn)
        )
        return
    amount, setoff, returned, order_number = payout
    row.setoff_tiyn += setoff
    if returned:
        row.returned_tiyn += amount
        report.differences.append(
            Difference("payment_returned", act.provider_id, order_number, amount, f"act {act.number}")
        )
    else:
        row.paid_tiyn += amount


def _check_receivables(
    connection: psycopg.Connection[Any],
    programme_id: uuid.UUID,
    providers: list[uuid.UUID],
    rows: dict[uuid.UUID, ProviderReconciliation],
    report: Reconciliation,
) -> None:
    for provider_id, balance, expected in connection.execute(_RECEIVABLES, (programme_id, providers)):
        rows[provider_id].receivable_tiyn = balance
        if balance != expected:
            report.differences.append(
                Difference(
                    "receivable_mismatch",
                    provider_id,
                    "ledger",
                    balance - expected,
                    "the receivable differs from redemptions − take-backs − payouts",
                )
            )


def _has_activity(row: ProviderReconciliation) -> bool:
    return bool(
        row.redemptions or row.acted_tiyn or row.invoiced_tiyn or row.paid_tiyn or row.receivable_tiyn
    )


def group_differences(report: Reconciliation) -> dict[str, list[Difference]]:
    grouped: defaultdict[str, list[Difference]] = defaultdict(list)
    for difference in report.differences:
        grouped[difference.kind].append(difference)
    return dict(grouped)
