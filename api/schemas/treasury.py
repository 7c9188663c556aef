"""Programmes as treasury officers send and read them: the draft with its paying authority and policy, the
programme with its state and funding, policy versions, the close, the expiry sweep's summary and a
programme's positions. Amounts are integer tiyn; dates are business days (Asia/Almaty); times are
RFC 3339 UTC. Funding and allocation are in `api.schemas.treasury_funding`; bulk issuance, officers'
voucher steps and providers in `api.schemas.treasury_issuance`."""

import datetime as dt
import uuid
from typing import Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.schemas.common import PlainText, at
from api.schemas.settlement import OFFICER, PROGRAMME, examples
from ledger.limits import AMOUNT_TIYN_MAX
from treasury.closing import BudgetReturn
from treasury.programmes import TEXT_CHARS_MAX, PayingAuthority, Programme

AssetName = Literal["KZT", "DIGITAL_KZT"]
ProgrammeStateName = Literal["draft", "open", "closed"]
VatRate = Literal["exempt", "0", "12", "16"]
CUSTOMER_EXAMPLE: Final[dict[str, Any]] = {
    "name": "ГУ «Управление образования города Астаны»", "bin": "010340045216",
    "address": "Астана, ул. Бейбітшілік, 11", "iban": "KZ91070FT00000000012",
    "bank_name": "РГУ «Комитет казначейства Министерства финансов РК»", "bic": "KKMFKZ2A",
}  # fmt: skip
POLICY_EXAMPLE: Final[dict[str, Any]] = {
    "purpose": "school_meals", "provider_categories": ["canteen"], "valid_from": "2026-09-01",
    "valid_until": "2027-05-31", "service": {"name": "Горячее питание", "unit": "порция"},
    "consent_required": True, "activation_required": True, "price_per_use_tiyn": 60_000, "period": "day",
    "period_uses_max": 1, "service_weekdays": [1, 2, 3, 4, 5],
}  # fmt: skip
DRAFT_EXAMPLE: Final[dict[str, Any]] = {
    "code": "SM-2026-AST", "name": "Бесплатное горячее питание учащихся 1–4 классов", "kbk": "251 027 015",
    "region": "Астана", "period_start": "2026-09-01", "period_end": "2027-05-31", "asset": "KZT",
    "budget_ceiling_tiyn": 5_000_000_000, "approval_threshold_tiyn": 1_000_000_000, "vat_rate": "exempt",
    "customer": CUSTOMER_EXAMPLE,
}  # fmt: skip
PROGRAMME_EXAMPLE: Final[dict[str, Any]] = {
    "id": PROGRAMME, **DRAFT_EXAMPLE, "purpose": "school_meals", "state": "open",
    "budget_account_id": "0192f1c2-2223-7c3d-8e4f-5a6b7c8d9e0f",
    "fund_account_id": "0192f1c2-2224-7c3d-8e4f-5a6b7c8d9e0f", "funded_tiyn": 2_500_000_000,
    "created_by": OFFICER, "created_at": "2026-08-20T04:00:00.000001Z",
}  # fmt: skip


class PayingAuthorityIn(BaseModel):
    """The customer on acts and the buyer on invoices: the ministry or akimat that pays providers."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [CUSTOMER_EXAMPLE]})
    name: PlainText = Field(min_length=1, max_length=TEXT_CHARS_MAX)
    bin: PlainText = Field(min_length=1, max_length=20, description="12 digits with its check digit")
    address: PlainText = Field(min_length=1, max_length=TEXT_CHARS_MAX)
    iban: PlainText = Field(min_length=1, max_length=40, description="KZ + 18 characters, mod-97 checked")
    bank_name: PlainText = Field(min_length=1, max_length=TEXT_CHARS_MAX)
    bic: PlainText = Field(min_length=1, max_length=20)

    def to_domain(self) -> PayingAuthority:
        return PayingAuthority(self.name, self.bin, self.address, self.iban, self.bank_name, self.bic)


class PayingAuthorityView(BaseModel):
    model_config = examples(CUSTOMER_EXAMPLE)
    name: str
    bin: str
    address: str
    iban: str
    bank_name: str
    bic: str


class ProgrammeIn(BaseModel):
    """A programme to create as a draft: its budget line, ceiling, the threshold above which a funding order
    needs a second officer, its paying authority, and the policy its vouchers carry (a JSON document, see
    `ledger.vouchers.policy`: purpose, provider categories, window, prices and limits, consent, ...)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [DRAFT_EXAMPLE | {"policy": POLICY_EXAMPLE}]}
    )
    code: PlainText = Field(
        min_length=2, max_length=40, description="2-40 capital letters, digits and dashes"
    )
    name: PlainText = Field(min_length=1, max_length=TEXT_CHARS_MAX)
    kbk: PlainText = Field(
        min_length=1, max_length=20, description="Budget classification code: '251 027 015'"
    )
    region: PlainText = Field(min_length=1, max_length=TEXT_CHARS_MAX, description="'national' or a region")
    period_start: dt.date
    period_end: dt.date
    asset: AssetName = Field(description="KZT (treasury tenge) or DIGITAL_KZT (the National Bank's CBDC)")
    budget_ceiling_tiyn: int = Field(ge=1, le=AMOUNT_TIYN_MAX)
    approval_threshold_tiyn: int = Field(ge=0, le=AMOUNT_TIYN_MAX)
    vat_rate: VatRate = Field(description="On the providers' invoices: exempt, 0, 12 or 16 (%)")
    customer: PayingAuthorityIn
    policy: dict[str, Any] = Field(description="The policy's JSON document (its first version)")


class ProgrammeView(BaseModel):
    """A programme: draft (funded, not yet issuing) → open (issuing) → closed (its funds returned)."""

    model_config = examples(PROGRAMME_EXAMPLE)
    id: uuid.UUID
    code: str
    name: str
    purpose: str
    kbk: str
    region: str
    period_start: dt.date
    period_end: dt.date
    asset: AssetName
    budget_ceiling_tiyn: int
    approval_threshold_tiyn: int
    vat_rate: VatRate
    customer: PayingAuthorityView
    state: ProgrammeStateName
    budget_account_id: uuid.UUID
    fund_account_id: uuid.UUID
    funded_tiyn: int = Field(description="Funded so far by executed funding orders (never past the ceiling)")
    created_by: str
    created_at: dt.datetime

    @classmethod
    def of(cls, programme: Programme, funded_tiyn: int) -> "ProgrammeView":
        draft = programme.draft
        customer = draft.customer
        return cls(
            id=draft.id, code=draft.code, name=draft.name, purpose=programme.purpose, kbk=draft.kbk,
            region=draft.region, period_start=draft.period_start, period_end=draft.period_end,
            asset=draft.asset.name,  # type: ignore[arg-type]
            budget_ceiling_tiyn=draft.budget_ceiling_tiyn,
            approval_threshold_tiyn=draft.approval_threshold_tiyn,
            vat_rate=draft.vat_rate,  # type: ignore[arg-type]
            customer=PayingAuthorityView(name=customer.name, bin=customer.bin, address=customer.address,
                                         iban=customer.iban, bank_name=customer.bank_name, bic=customer.bic),
            state=programme.state.name.lower(),  # type: ignore[arg-type]
            budget_account_id=draft.budget_account_id, fund_account_id=draft.fund_account_id,
            funded_tiyn=funded_tiyn, created_by=programme.created_by, created_at=at(programme.timestamp),
        )  # fmt: skip


RETURN_EXAMPLE: Final = {
    "account_id": "0192f1c2-2224-7c3d-8e4f-5a6b7c8d9e0f", "amount_tiyn": 120_000_000,
    "transfer_id": "0193a0b1-9999-7c3d-8e4f-5a6b7c8d9e0f",
}  # fmt: skip


class BudgetReturnView(BaseModel):
    """What one fund (the programme fund or a regional sub-fund) gave back to the budget account."""

    model_config = examples(RETURN_EXAMPLE)
    account_id: uuid.UUID
    amount_tiyn: int
    transfer_id: uuid.UUID

    @classmethod
    def of(cls, budget_return: BudgetReturn) -> "BudgetReturnView":
        return cls(
            account_id=budget_return.account_id,
            amount_tiyn=budget_return.amount_tiyn,
            transfer_id=budget_return.transfer_id,
        )


class ProgrammeClosedView(BaseModel):
    model_config = examples(
        {"programme": PROGRAMME_EXAMPLE | {"state": "closed"}, "returned_tiyn": 120_000_000,
         "returns": [RETURN_EXAMPLE]}
    )  # fmt: skip
    programme: ProgrammeView
    returned_tiyn: int = Field(description="Returned to the budget by this request")
    returns: list[BudgetReturnView]


class PolicyVersionIn(BaseModel):
    """A new version of the programme's policy. It takes effect from `valid_from` (now if omitted, never in
    the past): redemptions are judged by the version in force when they happen."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"policy": POLICY_EXAMPLE, "valid_from": "2027-01-01T00:00:00Z"}]},
    )
    policy: dict[str, Any] = Field(description="The whole policy document (not a patch)")
    valid_from: AwareDatetime | None = None


class PolicyVersionView(BaseModel):
    model_config = examples(
        {"programme_id": PROGRAMME, "version": 2, "valid_from": "2027-01-01T00:00:00Z",
         "recorded_at": "2026-12-10T06:00:00.000001Z", "policy": POLICY_EXAMPLE}
    )  # fmt: skip
    programme_id: uuid.UUID
    version: int
    valid_from: dt.datetime
    recorded_at: dt.datetime
    policy: dict[str, Any] = Field(description="The policy document as stored (canonical JSON)")


class SweepView(BaseModel):
    """What one expiry sweep did: offers' reservations released, vouchers expired (what was left went back
    to their funds), and what closed programmes returned to the budget."""

    model_config = examples(
        {"reservations_released": 3, "expired": 41, "other": {"exists": 2}, "returned_to_budget_tiyn": 0}
    )
    reservations_released: int
    expired: int
    other: dict[str, int] = Field(description="Other results by name (exists: another sweep got there first)")
    returned_to_budget_tiyn: int


FIGURES_EXAMPLE: Final = {
    "funded": 2_500_000_000, "allocated": 0, "issued": 1_200_000, "offered": 3_600_000, "redeemed": 180_000,
    "reserved": 0, "expired": 0, "returned": 0, "outstanding": 1_020_000, "unissued": 2_495_220_000,
    "receivable": 180_000, "settled": 0, "paid": 0,
}  # fmt: skip
CHECK_EXAMPLE: Final = {
    "name": "redeemed = receivable + settled", "left": 180_000, "right": 180_000, "difference": 0, "ok": True,
}  # fmt: skip


class FiguresView(BaseModel):
    """Where the programme's money is, in tiyn (see `treasury.positions` for each figure's definition)."""

    model_config = examples(FIGURES_EXAMPLE)
    funded: int
    allocated: int = Field(description="Held by regional sub-funds, net")
    issued: int = Field(description="Into vouchers, accepted offers included")
    offered: int = Field(description="Reserved by offers awaiting the citizen's consent")
    redeemed: int
    reserved: int = Field(description="Pharmacies' reservations not yet posted or voided")
    expired: int = Field(description="Given back by expired or revoked vouchers")
    returned: int = Field(description="Returned to the budget at the close")
    outstanding: int = Field(description="Vouchers' balances")
    unissued: int = Field(description="The fund's and sub-funds' balances")
    receivable: int = Field(description="Owed to providers, not yet settled")
    settled: int
    paid: int


class CheckView(BaseModel):
    model_config = examples(CHECK_EXAMPLE)
    name: str
    left: int
    right: int
    difference: int
    ok: bool


class PositionsView(BaseModel):
    """A programme's positions at the end of a business day (or now), with the three reconciliation checks:
    each holds to the tiyn, or `reconciled` is false and the difference is named."""

    model_config = examples(
        {"programme": "SM-2026-AST", "programme_id": PROGRAMME, "asset": "KZT", "as_of": None,
         "figures": FIGURES_EXAMPLE, "checks": [CHECK_EXAMPLE], "reconciled": True}
    )  # fmt: skip
    programme: str = Field(description="The programme's code")
    programme_id: uuid.UUID
    asset: AssetName
    as_of: dt.date | None = Field(description="The end of this business day; null: now")
    figures: FiguresView
    checks: list[CheckView]
    reconciled: bool
