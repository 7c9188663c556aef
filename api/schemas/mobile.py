"""A citizen's vouchers as the eGov Mobile backend receives them: balances, history, presentation codes.
What identifies the holder (IIN, holder hash) is never in an answer."""

import datetime as dt
import uuid
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import at
from ledger.vouchers.states import RedemptionPhase, TransitionAction, VoucherState
from ledger.vouchers.views import VoucherStep, VoucherView

STATE_SCHEMA: Final[dict[str, Any]] = {"enum": [state.name.lower() for state in VoucherState]}
VOUCHER_EXAMPLE: Final[dict[str, Any]] = {
    "id": "0192f1c2-5555-7c3d-8e4f-5a6b7c8d9e0f",
    "programme_id": "0192f1c2-2222-7c3d-8e4f-5a6b7c8d9e0f",
    "purpose": "school_meals",
    "state": "active",
    "amount_tiyn": 3_000_000,
    "available_tiyn": 2_400_000,
    "reserved_tiyn": 0,
    "spent_tiyn": 600_000,
    "valid_from": "2026-09-01T00:00:00Z",
    "expires_at": "2027-05-31T18:59:59Z",
    "issued_at": "2026-08-25T09:00:00.120000Z",
    "items": [],
}


class PrescriptionItemView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"code": "ATX-N02BE01", "prescribed": 20, "used": 10}]}
    )
    code: str
    prescribed: int
    used: int = Field(description="Dispensed or reserved")


class CitizenVoucherView(BaseModel):
    """A voucher (an offer is a voucher in state `offered`) with its balances in tiyn."""

    model_config = ConfigDict(json_schema_extra={"examples": [VOUCHER_EXAMPLE]})
    id: uuid.UUID
    programme_id: uuid.UUID
    purpose: str
    state: str = Field(json_schema_extra=STATE_SCHEMA)
    amount_tiyn: int = Field(description="Issued")
    available_tiyn: int = Field(description="May still be spent")
    reserved_tiyn: int = Field(description="Held by a pharmacy's reservation")
    spent_tiyn: int
    valid_from: dt.datetime
    expires_at: dt.datetime
    issued_at: dt.datetime
    items: list[PrescriptionItemView]

    @classmethod
    def of(cls, voucher: VoucherView) -> "CitizenVoucherView":
        return cls(
            id=voucher.id,
            programme_id=voucher.programme_id,
            purpose=voucher.purpose,
            state=voucher.state.name.lower(),
            amount_tiyn=voucher.amount_tiyn,
            available_tiyn=voucher.available_tiyn,
            reserved_tiyn=voucher.reserved_tiyn,
            spent_tiyn=voucher.spent_tiyn,
            valid_from=at(voucher.not_before),
            expires_at=at(voucher.expires_at),
            issued_at=at(voucher.issued_at),
            items=[PrescriptionItemView(code=c, prescribed=p, used=u) for c, p, u in voucher.items],
        )


def _kind(kind: str) -> str:
    """`transition:1` → `transition:accept`, `redemption:2` → `redemption:reserve`."""
    family, _, number = kind.partition(":")
    if family == "transition" and number.isdigit():
        return f"transition:{TransitionAction(int(number)).name.lower()}"
    if family == "redemption" and number.isdigit():
        return f"redemption:{RedemptionPhase(int(number)).name.lower()}"
    return kind


class VoucherStepView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "at": "2026-09-01T06:31:12.3Z",
                    "kind": "redemption:single",
                    "detail": "0192f1c2-1111-7c3d-8e4f-5a6b7c8d9e0f",
                    "amount_tiyn": 60_000,
                    "effective_date": "2026-09-01",
                }
            ]
        }
    )
    at: dt.datetime
    kind: str = Field(
        description="issued, transition:<accept|decline|activate|suspend|resume|revoke|expire> or "
        "redemption:<single|reserve|post|void>"
    )
    detail: str = Field(description="For a transition: from → to (reason); for a redemption: the provider")
    amount_tiyn: int
    effective_date: dt.date | None

    @classmethod
    def of(cls, step: VoucherStep) -> "VoucherStepView":
        return cls(
            at=at(step.timestamp),
            kind=_kind(step.kind),
            detail=step.detail,
            amount_tiyn=step.amount_tiyn,
            effective_date=step.effective_date,
        )


class VoucherHistoryView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "voucher_id": "0192f1c2-5555-7c3d-8e4f-5a6b7c8d9e0f",
                    "steps": [
                        {"at": "2026-08-25T09:00:00.12Z", "kind": "issued", "detail": "",
                         "amount_tiyn": 3_000_000, "effective_date": None},
                        {"at": "2026-08-26T17:02:11.5Z", "kind": "transition:accept",
                         "detail": "offered → active", "amount_tiyn": 0, "effective_date": None},
                        {"at": "2026-09-01T06:31:12.3Z", "kind": "redemption:single",
                         "detail": "0192f1c2-1111-7c3d-8e4f-5a6b7c8d9e0f", "amount_tiyn": 60_000,
                         "effective_date": "2026-09-01"},
                    ],
                    "next": None,
                }
            ]
        }
    )  # fmt: skip
    voucher_id: uuid.UUID
    steps: list[VoucherStepView] = Field(description="In ledger order, oldest first")
    next: str | None = Field(
        default=None, description="The next page's link (same query, new cursor); null on the last"
    )


class VoucherPresentationView(BaseModel):
    """What the holder shows at the counter: the QR code's payload (the voucher's token) or, without a
    smartphone, the reference code read out. Both let a registered terminal redeem: never cache them."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "voucher_id": "0192f1c2-5555-7c3d-8e4f-5a6b7c8d9e0f",
                    "qr_payload": "v4.public.eyJhbW91bnRfdGl5biI6MzAwMDAwMCwi…",
                    "reference_code": "K7QM-4XTR-9BHX",
                }
            ]
        }
    )
    voucher_id: uuid.UUID
    qr_payload: str = Field(description="The PASETO v4.public token, exactly what the QR code encodes")
    reference_code: str = Field(pattern=r"^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$")
