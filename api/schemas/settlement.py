"""Settlement as the API sends it: terms and periods, acts with their state, signature, approvals and
payout, payouts with their payment orders; and what officers and providers send. Amounts are integer
tiyn; dates are business days (Asia/Almaty); times are RFC 3339 UTC. Reconciliation reports are in
`api.schemas.settlement_reconciliation`."""

import datetime as dt
import uuid
from typing import Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import PlainText
from ledger.limits import AMOUNT_TIYN_MAX
from treasury.settlement import ActState
from treasury.settlement.approvals import KEY_NAME_CHARS_MAX, REASON_CHARS_MAX
from treasury.settlement.disallowances import DISALLOWANCES_PER_REQUEST_MAX

ACT_STATE_NAMES: Final = tuple(state.name.lower() for state in ActState)
ActStateName = Literal["issued", "signed", "approved_once", "approved", "paid", "rejected"]
assert get_args(ActStateName) == ACT_STATE_NAMES
Cycle = Literal["month", "week", "day"]
ACT_NUMBER_CHARS_MAX: Final = 100

PROGRAMME: Final = "0192f1c2-2222-7c3d-8e4f-5a6b7c8d9e0f"
PROVIDER: Final = "0192f1c2-1111-7c3d-8e4f-5a6b7c8d9e0f"
ACT: Final = "0193a0b1-6666-7c3d-8e4f-5a6b7c8d9e0f"
ACT_NUMBER: Final = "АКТ-SM-2026-AST-2026-10-17"
OFFICER: Final = "Айгүл Сәрсенова, Комитет казначейства"
SIGNING_KEY: Final = "0193a0b1-7777-7c3d-8e4f-5a6b7c8d9e0f"
PUBLIC_KEY: Final = "oOv1Y0rNl6eJjXe7xT8siL9Gi3T+a/BmRH0KZRp8nLs="
PERIOD_EXAMPLE: Final = {"start": "2026-10-01", "end": "2026-10-31", "label": "2026-10"}
CLOSED_PERIOD_EXAMPLE: Final = {
    "programme_id": PROGRAMME, **PERIOD_EXAMPLE, "cycle": "month", "closed_by": OFFICER,
    "closed_at": "2026-11-02T04:10:00.000001Z",
}  # fmt: skip
ORDER_EXAMPLE: Final = {
    "number": "ПП-SM-2026-AST-12", "attempt": 1, "order_date": "2026-11-09", "amount_tiyn": 4_200_000,
    "kbk": "251 027 015",
    "purpose": f"Оплата по акту № {ACT_NUMBER} от 03.11.2026 за период 01.10.2026–31.10.2026",
    "payee_name": "ТОО «Мектеп асханасы»", "payee_bin": "180440012345", "iban": "KZ86125KZT5004100100",
    "bank_name": "АО «Банк ЦентрКредит»", "bic": "KCJBKZKX", "issued_at": "2026-11-09T05:00:00.000002Z",
    "returned": False, "return_reason": None, "returned_at": None,
}  # fmt: skip
PAYOUT_EXAMPLE: Final = {
    "act_id": ACT, "act_number": ACT_NUMBER, "programme_id": PROGRAMME, "provider_id": PROVIDER,
    "amount_tiyn": 4_200_000, "setoff_tiyn": 0, "paid_at": "2026-11-09T05:00:00.000001Z",
    "orders": [ORDER_EXAMPLE],
}  # fmt: skip
INVOICE_EXAMPLE: Final = {
    "number": "СФ-SM-2026-AST-2026-10-17", "vat_rate": "exempt", "total_without_vat_tiyn": 4_200_000,
    "total_vat_tiyn": 0, "total_with_vat_tiyn": 4_200_000,
}  # fmt: skip
ACT_EXAMPLE: Final = {
    "id": ACT, "number": ACT_NUMBER, "kind": "regular", "corrects": None, "programme_id": PROGRAMME,
    "provider_id": PROVIDER, "period_start": "2026-10-01", "period_end": "2026-10-31",
    "act_date": "2026-11-03", "total_tiyn": 4_200_000, "sha256": "9f2c" * 16, "state": "paid",
    "issued_at": "2026-11-03T04:00:00.000001Z", "invoice": INVOICE_EXAMPLE,
    "signature": {"key_id": SIGNING_KEY, "signed_at": "2026-11-04T09:12:00.000001Z"},
    "approvals": [{"step": 1, "officer": OFFICER, "approved_at": "2026-11-06T06:00:00.000001Z"}],
    "rejection": None, "payout": PAYOUT_EXAMPLE,
}  # fmt: skip


def examples(*values: Any) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(values)})


class PeriodView(BaseModel):
    """A settlement period: inclusive business days; `label` is how numbers and reports name it."""

    model_config = examples(PERIOD_EXAMPLE)
    start: dt.date
    end: dt.date
    label: str = Field(description="2026-10 (month), 2026-W43 (week), 2026-10-27 (day)")


class ClosedPeriodView(PeriodView):
    """A closed period: no redemption or reversal may be dated in it any more; acts may be drawn up."""

    model_config = examples(CLOSED_PERIOD_EXAMPLE)
    programme_id: uuid.UUID
    cycle: Cycle
    closed_by: str
    closed_at: dt.datetime


class SettlementTermsView(BaseModel):
    model_config = examples(
        {"programme_id": PROGRAMME, "cycle": "month", "payout_threshold_tiyn": 500_000_000, "stored": True,
         "next_period": {"start": "2026-11-01", "end": "2026-11-30", "label": "2026-11"}}
    )  # fmt: skip
    programme_id: uuid.UUID
    cycle: Cycle
    payout_threshold_tiyn: int = Field(description="Acts above this total need a second officer's approval")
    stored: bool = Field(description="False: the defaults, fixed when the first period closes")
    next_period: PeriodView = Field(description="The period to close next (once it has ended)")


class SettlementTermsIn(BaseModel):
    """A programme's terms, set once before its first period closes (the same terms again change nothing)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"cycle": "month", "payout_threshold_tiyn": 500_000_000}]},
    )  # fmt: skip
    cycle: Cycle
    payout_threshold_tiyn: int = Field(ge=0, le=AMOUNT_TIYN_MAX)


class ClosePeriodIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"period_start": "2026-10-01"}]}
    )
    period_start: dt.date | None = Field(
        default=None, description="The first day of the period meant: refused unless it is the next one"
    )


class SignatureView(BaseModel):
    model_config = examples(ACT_EXAMPLE["signature"])
    key_id: uuid.UUID = Field(description="The provider's signing key")
    signed_at: dt.datetime


class ApprovalView(BaseModel):
    model_config = examples(ACT_EXAMPLE["approvals"][0])  # type: ignore[index]
    step: int = Field(description="1, or 2 for the second officer above the payout threshold")
    officer: str
    approved_at: dt.datetime


class RejectionView(BaseModel):
    model_config = examples({"officer": OFFICER, "reason": "12 meals on a holiday",
                              "rejected_at": "2026-11-05T06:00:00.000001Z"})  # fmt: skip
    officer: str
    reason: str
    rejected_at: dt.datetime


class PaymentOrderView(BaseModel):
    """A payment order to the provider's bank account. A returned one is followed by the next attempt."""

    model_config = examples(ORDER_EXAMPLE)
    number: str
    attempt: int
    order_date: dt.date
    amount_tiyn: int
    kbk: str = Field(description="The budget classification code the payment comes from")
    purpose: str
    payee_name: str
    payee_bin: str
    iban: str
    bank_name: str
    bic: str
    issued_at: dt.datetime
    returned: bool
    return_reason: str | None
    returned_at: dt.datetime | None


class PayoutView(BaseModel):
    """An act's payout: `amount_tiyn` sent, `setoff_tiyn` deducted for money taken back by adjustment acts."""

    model_config = examples(PAYOUT_EXAMPLE)
    act_id: uuid.UUID
    act_number: str
    programme_id: uuid.UUID
    provider_id: uuid.UUID
    amount_tiyn: int
    setoff_tiyn: int
    paid_at: dt.datetime
    orders: list[PaymentOrderView] = Field(description="Oldest first; none when fully set off")


class InvoiceSummaryView(BaseModel):
    model_config = examples(INVOICE_EXAMPLE)
    number: str
    vat_rate: str = Field(description="exempt, 0, 12 or 16 (%)")
    total_without_vat_tiyn: int
    total_vat_tiyn: int
    total_with_vat_tiyn: int


class ActView(BaseModel):
    """An act of services rendered (form Р-1) with its invoice, where it is in its workflow, and its payout.

    States: issued → signed (by the provider) → approved_once (above the payout threshold a second,
    different officer must approve) → approved → paid; or rejected (before approval)."""

    model_config = examples(ACT_EXAMPLE)
    id: uuid.UUID
    number: str
    kind: Literal["regular", "adjustment"]
    corrects: str | None = Field(description="For an adjustment act: the number of the act it corrects")
    programme_id: uuid.UUID
    provider_id: uuid.UUID
    period_start: dt.date
    period_end: dt.date
    act_date: dt.date
    total_tiyn: int = Field(description="Negative for an adjustment act")
    sha256: str = Field(description="Hex SHA-256 of the act's JSON, as the audit log records it")
    state: ActStateName
    issued_at: dt.datetime
    invoice: InvoiceSummaryView | None
    signature: SignatureView | None
    approvals: list[ApprovalView]
    rejection: RejectionView | None
    payout: PayoutView | None


class IssuedActView(BaseModel):
    model_config = examples(
        {"number": ACT_NUMBER, "invoice_number": INVOICE_EXAMPLE["number"], "provider_id": PROVIDER,
         "kind": "regular", "total_tiyn": 4_200_000, "corrects": None, "sha256": "9f2c" * 16}
    )  # fmt: skip
    number: str
    invoice_number: str
    provider_id: uuid.UUID
    kind: Literal["regular", "adjustment"]
    total_tiyn: int
    corrects: str | None
    sha256: str


class RefusalView(BaseModel):
    model_config = examples({"code": "provider_profile_missing", "message": "no bank account on file"})
    code: str
    message: str


class ProviderActsView(BaseModel):
    """One provider's outcome: the acts issued, or the refusal that stopped it (the others go on)."""

    model_config = examples({"provider_id": PROVIDER, "acts": [], "refusal": None})
    provider_id: uuid.UUID
    acts: list[IssuedActView]
    refusal: RefusalView | None


class DrawUpView(BaseModel):
    model_config = examples(
        {"programme_id": PROGRAMME, "period_start": "2026-10-01", "acts_issued": 0, "providers": []}
    )
    programme_id: uuid.UUID
    period_start: dt.date
    acts_issued: int
    providers: list[ProviderActsView] = Field(description="Providers with anything drawn up or refused")


Reason = PlainText


class ReasonIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "12 meals on a holiday"}]}
    )
    reason: Reason = Field(min_length=1, max_length=REASON_CHARS_MAX, description="Kept in the audit log")


class DisallowIn(BaseModel):
    """Redemptions of closed periods to take back (all or none)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"redemption_ids": ["0192f1c2-4444-7c3d-8e4f-5a6b7c8d9e0f"],
                                         "reason": "the pupil was absent that day"}]},
    )  # fmt: skip
    redemption_ids: list[uuid.UUID] = Field(min_length=1, max_length=DISALLOWANCES_PER_REQUEST_MAX)
    reason: Reason = Field(min_length=1, max_length=REASON_CHARS_MAX)


class DisallowanceView(BaseModel):
    model_config = examples(
        {"id": "0193a0b1-8888-7c3d-8e4f-5a6b7c8d9e0f",
         "redemption_id": "0192f1c2-4444-7c3d-8e4f-5a6b7c8d9e0f",
         "provider_id": PROVIDER, "amount_tiyn": 60_000, "reason": "the pupil was absent that day"}
    )  # fmt: skip
    id: uuid.UUID
    redemption_id: uuid.UUID
    provider_id: uuid.UUID
    amount_tiyn: int
    reason: str


class DisallowancesView(BaseModel):
    model_config = examples({"programme_id": PROGRAMME, "items": []})
    programme_id: uuid.UUID
    items: list[DisallowanceView]


class SigningKeyIn(BaseModel):
    """An Ed25519 key of a person who signs acts for the provider (a director, a chief accountant)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Директор Асқар Нұрланұлы",
                                         "public_key": PUBLIC_KEY}]},
    )  # fmt: skip
    name: PlainText = Field(min_length=1, max_length=KEY_NAME_CHARS_MAX, description="Whose key")
    public_key: str = Field(
        min_length=1, max_length=200, description="The 32-byte public key: base64, or PASERK `k4.public.…`"
    )


class SigningKeyView(BaseModel):
    model_config = examples(
        {"id": SIGNING_KEY, "provider_id": PROVIDER, "name": "Директор Асқар Нұрланұлы",
         "public_key": PUBLIC_KEY, "revoked": False}
    )  # fmt: skip
    id: uuid.UUID = Field(description="Names the key when signing an act")
    provider_id: uuid.UUID
    name: str
    public_key: str = Field(description="base64")
    revoked: bool


class ActSignatureIn(BaseModel):
    """The provider's Ed25519 signature over the act's signing bytes (GET …/signing-bytes), exactly."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"key_id": SIGNING_KEY, "signature": "q83v" * 21 + "qw=="}]},
    )  # fmt: skip
    key_id: uuid.UUID
    signature: str = Field(min_length=1, max_length=200, description="The 64-byte signature in base64")
