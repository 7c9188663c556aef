"""Redemption envelopes (what a terminal sends, signed) and answers (a result per request and a receipt).

The request objects inside an envelope are taken as the raw JSON the terminal signed: the server computes
their RFC 8785 canonical bytes to check the signature, so they are not re-shaped by a model here. Their
schema below documents them; a request that breaks it still gets its own result (`request_malformed`).

The examples are real: the terminal `0192f1c2-7a2b-…` holds the key `k4.public.oOv1Y0rN…` (seed
``amiyan-openapi-example-terminal!``), and each signature verifies over the purpose tag and the canonical
bytes of the object shown.
"""

import uuid
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from api.schemas.common import b64, enum_names
from api.schemas.providers import PHASE_NAMES, PHASE_SCHEMA
from ledger.limits import AMOUNT_TIYN_MAX
from ledger.vouchers.policy import UNITS_MAX
from ledger.vouchers.receipts import Receipt, RedemptionOutcome
from ledger.vouchers.requests import BATCH_REQUESTS_MAX, ITEMS_PER_REQUEST_MAX
from ledger.vouchers.results import RedemptionResult
from ledger.vouchers.signing import Purpose

_UUID: Final[dict[str, Any]] = {"type": "string", "format": "uuid"}
REQUEST_EXAMPLE: Final[dict[str, Any]] = {
    "id": "0192f1c2-4444-7c3d-8e4f-5a6b7c8d9e0f",
    "terminal": "0192f1c2-7a2b-7c3d-8e4f-5a6b7c8d9e0f",
    "phase": "single",
    "reference_code": "K7QM-4XTR-9BHX",
    "amount_tiyn": 60000,
    "requested_at_ms": 1796027472345,
}
REQUEST_SIGNATURE_EXAMPLE: Final = (
    "9bcNHOUkIBvA1WTonNHy2GkaDVUo3TIWyPrHPV02w6TetO32xZMsL6QxJILotfpliFmDQ/xy6aWgORMDNZSUBQ=="
)
BATCH_EXAMPLE: Final[dict[str, Any]] = {
    "terminal": "0192f1c2-7a2b-7c3d-8e4f-5a6b7c8d9e0f",
    "sent_at_ms": 1796027480000,
    "requests": [
        REQUEST_EXAMPLE,
        {
            "id": "0192f1c2-4445-7c3d-8e4f-5a6b7c8d9e0f",
            "terminal": "0192f1c2-7a2b-7c3d-8e4f-5a6b7c8d9e0f",
            "phase": "void",
            "reserved_id": "0192f1c2-4443-7c3d-8e4f-5a6b7c8d9e0f",
            "amount_tiyn": 0,
            "requested_at_ms": 1796027472345,
        },
    ],
}
BATCH_SIGNATURE_EXAMPLE: Final = (
    "IhoyFdYME3ZyZtbcVuoWfzqj96QSF+fY99TpZliY0xMG4d3P5AGgJm7dOL0SxuM14NutlRUJpVAcni9TR8wgCA=="
)
RECORDED_EXAMPLE: Final[dict[str, Any]] = {
    "voucher_id": "0192f1c2-5555-7c3d-8e4f-5a6b7c8d9e0f",
    "programme_id": "0192f1c2-2222-7c3d-8e4f-5a6b7c8d9e0f",
    "provider_id": "0192f1c2-1111-7c3d-8e4f-5a6b7c8d9e0f",
    "terminal_id": "0192f1c2-7a2b-7c3d-8e4f-5a6b7c8d9e0f",
    "phase": "single",
    "reserved_id": None,
    "amount_tiyn": 60000,
    "units": 0,
    "effective_date": "2026-11-30",
    "offline": False,
    "timestamp": 1796027472351234000,
    "request_sha256": "184882ccc627f833d77cad37c3610e5b66f9ad60afec40dcb5599f1ef94793a1",
}
RECEIPT_EXAMPLE: Final[dict[str, Any]] = {
    "body": "eyJyZXN1bHRzIjpbXSwidGVybWluYWwiOiIuLi4ifQ==",
    "key_id": "k4.pid.uEPSYAlzl9fTn7XCbDh_CG3AcY3JtOoX6n_sBlFRX1SI",
    "signature": "q9b0…base64 of 64 bytes…==",
    "purpose": Purpose.REDEMPTION_RECEIPT.value,
}
REQUEST_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "title": "RedemptionRequest",
    "description": "One redemption as the terminal signed it (ledger/vouchers/requests.py). A single or a "
    "reserve names the voucher by `token` (the QR payload) or `reference_code`; a post or void names "
    "`reserved_id`. `id` is the terminal's choice and the redemption's idempotency key.",
    "properties": {
        "id": _UUID,
        "terminal": _UUID,
        "phase": PHASE_SCHEMA,
        "token": {"type": "string", "maxLength": 8192, "description": "The voucher's PASETO v4.public"},
        "reference_code": {"type": "string", "maxLength": 32, "examples": ["K7QM-4XTR-9BHX"]},
        "reserved_id": _UUID,
        "amount_tiyn": {"type": "integer", "minimum": 0, "maximum": AMOUNT_TIYN_MAX},
        "units": {"type": "integer", "minimum": 0, "maximum": UNITS_MAX},
        "items": {
            "type": "array",
            "minItems": 1,
            "maxItems": ITEMS_PER_REQUEST_MAX,
            "items": {
                "type": "object",
                "properties": {
                    "code": {"type": "string", "minLength": 1, "maxLength": 64},
                    "quantity": {"type": "integer", "minimum": 1, "maximum": 10**6},
                    "amount_tiyn": {"type": "integer", "minimum": 1, "maximum": AMOUNT_TIYN_MAX},
                },
                "required": ["code", "quantity", "amount_tiyn"],
            },
        },
        "requested_at_ms": {"type": "integer", "minimum": 0, "maximum": 2**53},
        "offline": {"type": "boolean"},
    },
    "required": ["id", "terminal", "phase", "amount_tiyn", "requested_at_ms"],
    "examples": [REQUEST_EXAMPLE],
}
BATCH_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "title": "RedemptionBatch",
    "description": "Many requests of one terminal, signed once (purpose `redemption-batch`).",
    "properties": {
        "terminal": _UUID,
        "sent_at_ms": {"type": "integer", "minimum": 0, "maximum": 2**53},
        "requests": {"type": "array", "minItems": 1, "maxItems": BATCH_REQUESTS_MAX, "items": REQUEST_SCHEMA},
    },
    "required": ["terminal", "sent_at_ms", "requests"],
    "additionalProperties": False,
    "examples": [BATCH_EXAMPLE],
}


def _signature_description(purpose: Purpose) -> str:
    return (
        f"Base64 of the terminal's 64-byte Ed25519 signature over `{purpose.value}`, a newline, and the "
        "RFC 8785 canonical bytes of the signed object"
    )


class SingleRedemptionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"request": REQUEST_EXAMPLE, "signature": REQUEST_SIGNATURE_EXAMPLE}]
        },
    )
    request: Annotated[dict[str, Any], WithJsonSchema(REQUEST_SCHEMA)]
    signature: str = Field(max_length=128, description=_signature_description(Purpose.REDEMPTION_REQUEST))


class RedemptionBatchIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"batch": BATCH_EXAMPLE, "signature": BATCH_SIGNATURE_EXAMPLE}]},
    )
    batch: Annotated[dict[str, Any], WithJsonSchema(BATCH_SCHEMA)]
    signature: str = Field(max_length=128, description=_signature_description(Purpose.REDEMPTION_BATCH))


class RecordedRedemption(BaseModel):
    """The redemption as the ledger recorded it (for `ok` and `exists`)."""

    model_config = ConfigDict(json_schema_extra={"examples": [RECORDED_EXAMPLE]})

    voucher_id: uuid.UUID
    programme_id: uuid.UUID
    provider_id: uuid.UUID
    terminal_id: uuid.UUID
    phase: str = Field(json_schema_extra=PHASE_SCHEMA)
    reserved_id: uuid.UUID | None
    amount_tiyn: int
    units: int
    effective_date: str = Field(description="Business day, YYYY-MM-DD (Asia/Almaty)")
    offline: bool
    timestamp: int = Field(description="Ledger time, nanoseconds since the Unix epoch")
    request_sha256: str = Field(description="Hex SHA-256 of the request's canonical bytes")


class RedemptionResultView(BaseModel):
    """What became of one request. `ok` and `exists` moved value (now or the first time); any other
    result is a refusal that moved nothing."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"id": REQUEST_EXAMPLE["id"], "result": "ok", "accepted": True, "original_result": None,
                 "detail": None, "redemption": RECORDED_EXAMPLE},
                {"id": REQUEST_EXAMPLE["id"], "result": "voucher_suspended", "accepted": False,
                 "original_result": None, "detail": None, "redemption": None},
            ]
        }
    )  # fmt: skip

    id: uuid.UUID | None = Field(description="The request's id (null when the request could not be read)")
    result: str = Field(json_schema_extra=enum_names(RedemptionResult))
    accepted: bool = Field(description="True for ok and exists")
    original_result: str | None = Field(
        default=None,
        description="For id_already_failed: the refusal this id got the first time",
        json_schema_extra=enum_names(RedemptionResult, nullable=True),
    )
    detail: str | None = Field(default=None, description="For request_malformed: which field is wrong")
    redemption: RecordedRedemption | None = None

    @classmethod
    def of(cls, outcome: RedemptionOutcome) -> "RedemptionResultView":
        row = outcome.redemption
        recorded = None
        if row is not None:
            recorded = RecordedRedemption(
                voucher_id=row.voucher_id, programme_id=row.programme_id, provider_id=row.provider_id,
                terminal_id=row.terminal_id, phase=PHASE_NAMES[row.phase], reserved_id=row.reserved_id,
                amount_tiyn=row.amount_tiyn, units=row.units, effective_date=row.effective_date.isoformat(),
                offline=row.offline, timestamp=row.timestamp, request_sha256=row.request_hash.hex(),
            )  # fmt: skip
        return cls(
            id=outcome.request_id,
            result=outcome.result.name,
            accepted=outcome.accepted,
            original_result=outcome.original.name if outcome.original is not None else None,
            detail=outcome.detail or None,
            redemption=recorded,
        )


class ReceiptView(BaseModel):
    """The ledger's signed account of the results: verify `signature` with the issuer key `key_id` (see
    GET /v1/keys/issuers) over `purpose`, a newline, and the bytes of `body` (base64 of canonical JSON
    `{"results": [...], "terminal": "…"}`)."""

    model_config = ConfigDict(json_schema_extra={"examples": [RECEIPT_EXAMPLE]})

    body: str
    key_id: str
    signature: str
    purpose: str = Purpose.REDEMPTION_RECEIPT.value

    @classmethod
    def of(cls, receipt: Receipt) -> "ReceiptView":
        return cls(body=b64(receipt.body), key_id=receipt.key_id, signature=receipt.encoded_signature())


class RedemptionAnswer(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "results": [
                        {
                            "id": "0192f1c2-4444-7c3d-8e4f-5a6b7c8d9e0f",
                            "result": "insufficient_balance",
                            "accepted": False,
                            "original_result": None,
                            "detail": None,
                            "redemption": None,
                        }
                    ],
                    "receipt": RECEIPT_EXAMPLE,
                }
            ]
        }
    )
    results: list[RedemptionResultView] = Field(description="One per request, in the order sent")
    receipt: ReceiptView

    @classmethod
    def of(cls, outcomes: list[RedemptionOutcome], receipt: Receipt) -> "RedemptionAnswer":
        return cls(results=[RedemptionResultView.of(o) for o in outcomes], receipt=ReceiptView.of(receipt))
