"""A closed period's reconciliation as the API sends it: the keys and columns of
`treasury.settlement.reconciliation_formats` (the CSV form has the same columns)."""

import datetime as dt
import uuid
from typing import Final

from pydantic import BaseModel, Field

from api.schemas.settlement import ACT_NUMBER, PROGRAMME, PROVIDER, examples

TOTALS_EXAMPLE: Final = {
    "redemptions": 70, "redeemed_tiyn": 4_260_000, "reversed_tiyn": 0, "disallowed_tiyn": 60_000,
    "net_tiyn": 4_200_000, "regular_acted_tiyn": 4_200_000, "adjustment_acted_tiyn": 0,
    "acted_tiyn": 4_200_000,
    "invoiced_tiyn": 4_200_000, "vat_tiyn": 0, "paid_tiyn": 4_200_000, "returned_tiyn": 0, "setoff_tiyn": 0,
    "pending_tiyn": 0, "receivable_tiyn": 0,
}  # fmt: skip
DIFFERENCE_EXAMPLE: Final = {
    "kind": "act_awaiting_payment", "provider_id": PROVIDER, "reference": ACT_NUMBER,
    "amount_tiyn": 4_200_000, "detail": "",
}  # fmt: skip


class ReconciliationTotalsView(BaseModel):
    """redeemed − reversed − disallowed = acted = invoiced (without VAT); regular acts = paid + returned +
    set off + pending. Each figure comes from its own table."""

    model_config = examples(TOTALS_EXAMPLE)
    redemptions: int
    redeemed_tiyn: int
    reversed_tiyn: int
    disallowed_tiyn: int
    net_tiyn: int
    regular_acted_tiyn: int
    adjustment_acted_tiyn: int
    acted_tiyn: int
    invoiced_tiyn: int
    vat_tiyn: int
    paid_tiyn: int
    returned_tiyn: int
    setoff_tiyn: int
    pending_tiyn: int
    receivable_tiyn: int = Field(description="The provider's receivable in the ledger now (all periods)")


class ProviderReconciliationView(ReconciliationTotalsView):
    model_config = examples({"provider_id": PROVIDER, **TOTALS_EXAMPLE})
    provider_id: uuid.UUID


class DifferenceView(BaseModel):
    """What keeps two sides apart: its kind, what it refers to (a redemption id, an act or order number)."""

    model_config = examples(DIFFERENCE_EXAMPLE)
    kind: str
    provider_id: uuid.UUID
    reference: str
    amount_tiyn: int
    detail: str


class PeriodSpanView(BaseModel):
    model_config = examples({"start": "2026-10-01", "end": "2026-10-31"})
    start: dt.date
    end: dt.date


class ReconciliationView(BaseModel):
    """A closed period's reconciliation; `reconciled` when `differences` is empty."""

    model_config = examples(
        {"programme": PROGRAMME, "programme_code": "SM-2026-AST",
         "period": {"start": "2026-10-01", "end": "2026-10-31"}, "reconciled": False,
         "totals": TOTALS_EXAMPLE, "providers": [{"provider_id": PROVIDER, **TOTALS_EXAMPLE}],
         "differences": [DIFFERENCE_EXAMPLE]}
    )  # fmt: skip
    programme: uuid.UUID
    programme_code: str
    period: PeriodSpanView
    reconciled: bool
    totals: ReconciliationTotalsView
    providers: list[ProviderReconciliationView]
    differences: list[DifferenceView]
