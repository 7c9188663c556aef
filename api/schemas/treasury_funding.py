"""Funding orders (maker-checker) and regional sub-funds with the money moved between them and the
programme fund, as treasury officers send and read them. Amounts are integer tiyn; times RFC 3339 UTC."""

import datetime as dt
import uuid
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import PlainText, at
from api.schemas.settlement import OFFICER, PROGRAMME, examples
from ledger.limits import AMOUNT_TIYN_MAX
from treasury.allocation import Allocation, SubFund
from treasury.funding import REASON_CHARS_MAX, FundingOrder
from treasury.programmes import TEXT_CHARS_MAX

FundingStateName = Literal["awaiting_approval", "executed", "rejected"]
DirectionName = Literal["allocate", "take_back"]
SECOND_OFFICER: Final = "Нұрлан Әбілов, Комитет казначейства"
ORDER_EXAMPLE: Final = {
    "id": "0193a0b1-1111-7c3d-8e4f-5a6b7c8d9e0f", "programme_id": PROGRAMME, "amount_tiyn": 2_500_000_000,
    "approval_threshold_tiyn": 1_000_000_000, "needs_approval": True, "state": "executed",
    "created_by": OFFICER, "created_at": "2026-08-21T04:00:00.000001Z", "approved_by": SECOND_OFFICER,
    "rejected_by": None, "rejection_reason": None, "decided_at": "2026-08-21T06:30:00.000001Z",
    "transfer_id": "0193a0b1-1112-7c3d-8e4f-5a6b7c8d9e0f",
}  # fmt: skip
SUB_FUND: Final = "0193a0b1-2222-7c3d-8e4f-5a6b7c8d9e0f"


class FundingOrderIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"amount_tiyn": 2_500_000_000}]}
    )
    amount_tiyn: int = Field(ge=1, le=AMOUNT_TIYN_MAX, description="From the budget account into the fund")


class FundingOrderView(BaseModel):
    """A funding order: at or below the programme's threshold it executed at once; above it, it waits for a
    second, different officer (`awaiting_approval`) who approves (`executed`) or rejects it."""

    model_config = examples(ORDER_EXAMPLE)
    id: uuid.UUID
    programme_id: uuid.UUID
    amount_tiyn: int
    approval_threshold_tiyn: int = Field(description="The programme's threshold when the order was made")
    needs_approval: bool
    state: FundingStateName
    created_by: str
    created_at: dt.datetime
    approved_by: str | None
    rejected_by: str | None
    rejection_reason: str | None
    decided_at: dt.datetime | None
    transfer_id: uuid.UUID | None = Field(description="The ledger's FUND transfer, once executed")

    @classmethod
    def of(cls, order: FundingOrder) -> "FundingOrderView":
        return cls(
            id=order.id, programme_id=order.programme_id, amount_tiyn=order.amount_tiyn,
            approval_threshold_tiyn=order.approval_threshold_tiyn, needs_approval=order.needs_approval,
            state=order.state.name.lower(),  # type: ignore[arg-type]
            created_by=order.created_by, created_at=at(order.created_at), approved_by=order.approved_by,
            rejected_by=order.rejected_by, rejection_reason=order.rejection_reason,
            decided_at=at(order.decided_at) if order.decided_at is not None else None,
            transfer_id=order.transfer_id,
        )  # fmt: skip


class FundingRejectionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "the budget line is frozen until March"}]}
    )
    reason: PlainText = Field(min_length=1, max_length=REASON_CHARS_MAX, description="Kept in the audit log")


class SubFundIn(BaseModel):
    """A region's sub-fund of a national programme (one per region)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"region": "Алматы"}]})
    region: PlainText = Field(min_length=1, max_length=TEXT_CHARS_MAX)


class SubFundView(BaseModel):
    model_config = examples(
        {"account_id": SUB_FUND, "programme_id": PROGRAMME, "region": "Алматы", "created_by": OFFICER,
         "opened_at": "2026-08-22T04:00:00.000001Z", "balance_tiyn": 300_000_000}
    )  # fmt: skip
    account_id: uuid.UUID = Field(description="Its ledger account (vouchers may be issued from it)")
    programme_id: uuid.UUID
    region: str
    created_by: str
    opened_at: dt.datetime
    balance_tiyn: int = Field(description="What it holds now, less what pending offers reserve")

    @classmethod
    def of(cls, sub_fund: SubFund, balance_tiyn: int) -> "SubFundView":
        return cls(
            account_id=sub_fund.account_id, programme_id=sub_fund.programme_id, region=sub_fund.region,
            created_by=sub_fund.created_by, opened_at=at(sub_fund.timestamp), balance_tiyn=balance_tiyn,
        )  # fmt: skip


class AllocationIn(BaseModel):
    """Money to move between the programme fund and one of its sub-funds."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"direction": "allocate", "amount_tiyn": 300_000_000}]},
    )
    direction: DirectionName = Field(description="allocate: fund → sub-fund; take_back: sub-fund → fund")
    amount_tiyn: int = Field(ge=1, le=AMOUNT_TIYN_MAX)


class AllocationView(BaseModel):
    model_config = examples(
        {"id": "0193a0b1-3333-7c3d-8e4f-5a6b7c8d9e0f", "programme_id": PROGRAMME,
         "sub_fund_account_id": SUB_FUND, "direction": "allocate", "amount_tiyn": 300_000_000,
         "officer": OFFICER,
         "transfer_id": "0193a0b1-3334-7c3d-8e4f-5a6b7c8d9e0f", "made_at": "2026-08-22T05:00:00.000001Z"}
    )  # fmt: skip
    id: uuid.UUID
    programme_id: uuid.UUID
    sub_fund_account_id: uuid.UUID
    direction: DirectionName
    amount_tiyn: int
    officer: str
    transfer_id: uuid.UUID
    made_at: dt.datetime

    @classmethod
    def of(cls, allocation: Allocation) -> "AllocationView":
        return cls(
            id=allocation.id, programme_id=allocation.programme_id,
            sub_fund_account_id=allocation.sub_fund_account_id,
            direction=allocation.direction.name.lower(),  # type: ignore[arg-type]
            amount_tiyn=allocation.amount_tiyn, officer=allocation.officer,
            transfer_id=allocation.transfer_id, made_at=at(allocation.timestamp),
        )  # fmt: skip
