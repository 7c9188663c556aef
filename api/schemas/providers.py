"""A provider's terminals, receivable and redemption history, as the providers router sends them."""

import datetime as dt
import uuid
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import PlainText, at
from ledger.vouchers.participants import NAME_CHARS_MAX
from ledger.vouchers.states import ProviderState, RedemptionPhase

TERMINAL_EXAMPLE: Final[dict[str, Any]] = {
    "id": "0192f1c2-7a2b-7c3d-8e4f-5a6b7c8d9e0f",
    "provider_id": "0192f1c2-1111-7c3d-8e4f-5a6b7c8d9e0f",
    "name": "Canteen of school No. 12, till 1",
    "public_key": "k4.public.oOv1Y0rNl6eJjXe7xT8siL9Gi3T-a_BmRH0KZRp8nLs",
    "registered_at": "2026-11-30T08:15:02.123456Z",
    "revoked_at": None,
}


class TerminalIn(BaseModel):
    """A point of service to register, with the Ed25519 public key that will sign its redemptions."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Canteen of school No. 12, till 1",
                    "public_key": "k4.public.oOv1Y0rNl6eJjXe7xT8siL9Gi3T-a_BmRH0KZRp8nLs",
                }
            ]
        },
    )
    name: PlainText = Field(
        min_length=1, max_length=NAME_CHARS_MAX, description="Shown to the provider's staff"
    )
    public_key: str = Field(
        min_length=1,
        max_length=200,
        description="The terminal's Ed25519 public key: PASERK `k4.public.…`, or the 32 bytes in base64",
    )


class TerminalRevocationIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "the tablet was stolen on 28 November"}]}
    )
    reason: PlainText = Field(min_length=1, max_length=500, description="Why (kept in the audit log)")


class TerminalView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [TERMINAL_EXAMPLE]})
    id: uuid.UUID = Field(description="Goes into every redemption request as `terminal`")
    provider_id: uuid.UUID
    name: str
    public_key: str = Field(description="PASERK k4.public")
    registered_at: dt.datetime
    revoked_at: dt.datetime | None = Field(description="From then on the terminal's signature is refused")


class ProgrammeReceivableView(BaseModel):
    """What the state owes the provider in one programme: redeemed value not yet paid out."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "programme_id": "0192f1c2-2222-7c3d-8e4f-5a6b7c8d9e0f",
                    "receivable_account_id": "0192f1c2-3333-7c3d-8e4f-5a6b7c8d9e0f",
                    "asset": 1,
                    "provider_state": "active",
                    "owed_tiyn": 4_200_000,
                    "reserved_tiyn": 0,
                    "redeemed_tiyn": 9_000_000,
                    "paid_out_tiyn": 4_800_000,
                }
            ]
        }
    )

    programme_id: uuid.UUID
    receivable_account_id: uuid.UUID
    asset: int = Field(description="1 tenge, 2 digital tenge")
    provider_state: str = Field(json_schema_extra={"enum": [s.name.lower() for s in ProviderState]})
    owed_tiyn: int = Field(description="Redeemed minus paid out")
    reserved_tiyn: int = Field(description="Two-phase reservations not yet posted or voided")
    redeemed_tiyn: int = Field(description="Every redemption posted, ever")
    paid_out_tiyn: int


class ReceivableView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "provider_id": "0192f1c2-1111-7c3d-8e4f-5a6b7c8d9e0f",
                    "programmes": [
                        {
                            "programme_id": "0192f1c2-2222-7c3d-8e4f-5a6b7c8d9e0f",
                            "receivable_account_id": "0192f1c2-3333-7c3d-8e4f-5a6b7c8d9e0f",
                            "asset": 1,
                            "provider_state": "active",
                            "owed_tiyn": 4_200_000,
                            "reserved_tiyn": 0,
                            "redeemed_tiyn": 9_000_000,
                            "paid_out_tiyn": 4_800_000,
                        }
                    ],
                }
            ]
        }
    )
    provider_id: uuid.UUID
    programmes: list[ProgrammeReceivableView]


PHASE_NAMES: Final = {int(phase): phase.name.lower() for phase in RedemptionPhase}
PHASE_SCHEMA: Final[dict[str, Any]] = {"enum": list(PHASE_NAMES.values())}


class RedemptionRecordView(BaseModel):
    """One redemption as the ledger recorded it (a reservation, a post or void of one, or a single)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0192f1c2-4444-7c3d-8e4f-5a6b7c8d9e0f",
                    "voucher_id": "0192f1c2-5555-7c3d-8e4f-5a6b7c8d9e0f",
                    "programme_id": "0192f1c2-2222-7c3d-8e4f-5a6b7c8d9e0f",
                    "terminal_id": "0192f1c2-7a2b-7c3d-8e4f-5a6b7c8d9e0f",
                    "phase": "single",
                    "reserved_id": None,
                    "amount_tiyn": 60_000,
                    "units": 0,
                    "effective_date": "2026-11-30",
                    "offline": False,
                    "recorded_at": "2026-11-30T06:31:12.345678Z",
                }
            ]
        }
    )
    id: uuid.UUID
    voucher_id: uuid.UUID
    programme_id: uuid.UUID
    terminal_id: uuid.UUID
    phase: str = Field(json_schema_extra=PHASE_SCHEMA)
    reserved_id: uuid.UUID | None = Field(description="For a post or void: the reservation it resolves")
    amount_tiyn: int
    units: int
    effective_date: dt.date = Field(description="The business day (Asia/Almaty) it counts for")
    offline: bool
    recorded_at: dt.datetime

    @classmethod
    def of(cls, row: tuple[object, ...]) -> "RedemptionRecordView":
        (id_, voucher, programme, terminal, phase, reserved, amount, units, day, offline, timestamp) = row
        assert isinstance(phase, int) and isinstance(timestamp, int)
        return cls.model_validate(
            {
                "id": id_, "voucher_id": voucher, "programme_id": programme, "terminal_id": terminal,
                "phase": PHASE_NAMES[phase], "reserved_id": reserved, "amount_tiyn": amount, "units": units,
                "effective_date": day, "offline": offline, "recorded_at": at(timestamp),
            }
        )  # fmt: skip
