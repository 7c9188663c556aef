"""A reconciliation as a machine reads it: JSON (the whole report) and CSV (providers, differences).

Amounts are integer tiyn everywhere; ids are lower-case UUIDs; dates ISO 8601. CSV columns are fixed and
named in the first row, so a spreadsheet or a bank-statement matcher can take them as they are.
"""

import csv
import io
import json
from typing import Any, Final

from treasury.settlement.reconciliation import ProviderReconciliation, Reconciliation

PROVIDER_COLUMNS: Final = (
    "provider_id",
    "redemptions",
    "redeemed_tiyn",
    "reversed_tiyn",
    "disallowed_tiyn",
    "net_tiyn",
    "regular_acted_tiyn",
    "adjustment_acted_tiyn",
    "acted_tiyn",
    "invoiced_tiyn",
    "vat_tiyn",
    "paid_tiyn",
    "returned_tiyn",
    "setoff_tiyn",
    "pending_tiyn",
    "receivable_tiyn",
)
DIFFERENCE_COLUMNS: Final = ("kind", "provider_id", "reference", "amount_tiyn", "detail")


def _provider(row: ProviderReconciliation) -> dict[str, Any]:
    return {
        column: (str(value) if column == "provider_id" else value)
        for column in PROVIDER_COLUMNS
        for value in (getattr(row, column),)
    }


def reconciliation_document(report: Reconciliation) -> dict[str, Any]:
    """The report as a JSON-ready dictionary (the same keys as the CSV columns)."""
    totals = {
        column: sum(getattr(row, column) for row in report.providers)
        for column in PROVIDER_COLUMNS
        if column != "provider_id"
    }
    return {
        "programme": str(report.programme_id),
        "programme_code": report.programme_code,
        "period": {"start": report.period_start.isoformat(), "end": report.period_end.isoformat()},
        "reconciled": report.reconciled,
        "totals": totals,
        "providers": [_provider(row) for row in report.providers],
        "differences": [
            {
                "kind": d.kind,
                "provider_id": str(d.provider_id),
                "reference": d.reference,
                "amount_tiyn": d.amount_tiyn,
                "detail": d.detail,
            }
            for d in report.differences
        ],
    }


def reconciliation_json(report: Reconciliation) -> str:
    return json.dumps(reconciliation_document(report), ensure_ascii=False, sort_keys=True, indent=2) + "\n"


def providers_csv(report: Reconciliation) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PROVIDER_COLUMNS)
    for row in report.providers:
        writer.writerow([_provider(row)[column] for column in PROVIDER_COLUMNS])
    return buffer.getvalue()


def differences_csv(report: Reconciliation) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(DIFFERENCE_COLUMNS)
    for d in report.differences:
        writer.writerow([d.kind, str(d.provider_id), d.reference, d.amount_tiyn, d.detail])
    return buffer.getvalue()
