"""Redemption requests as a terminal sends them, and the exact bytes it signs.

A request is a JSON object (RFC 8785 canonical bytes are what is signed and hashed):

    id            the redemption id the terminal chose (UUID): its idempotency key, also the transfer id
    terminal      the terminal's id
    phase         "single" | "reserve" | "post" | "void"   (two-phase: pharmacies reserve at scan)
    token         the voucher's PASETO, or
    reference_code  the short code read out by a holder without a smartphone   (single and reserve)
    reserved_id   the reservation a post or void resolves
    amount_tiyn   what the service costs (post: at most what was reserved; void: ignored, may be 0)
    units         unit-priced vouchers (gas, m³)                                  optional, default 0
    items         [{"code", "quantity", "amount_tiyn"}] prescription items          optional
    requested_at_ms  when the terminal served it (Unix milliseconds, UTC)
    offline       true when accepted offline and uploaded later                   optional, default false

A single request is signed alone (purpose `redemption-request`); a batch is `{"terminal", "sent_at_ms",
"requests": [...]}` signed once (purpose `redemption-batch`). Either way each request gets its own result.
"""

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from ledger.audit.canonical import CanonicalError, CanonicalValue, canonical_bytes, parse_canonical
from ledger.limits import AMOUNT_TIYN_MAX
from ledger.vouchers.policy import UNITS_MAX
from ledger.vouchers.states import RedemptionPhase

PHASES: Final = {phase.name.lower(): phase for phase in RedemptionPhase}
BATCH_REQUESTS_MAX: Final = 8189
ITEMS_PER_REQUEST_MAX: Final = 50
REQUEST_BYTES_MAX: Final = 16_384
_FIELDS: Final = frozenset(
    {"id", "terminal", "phase", "token", "reference_code", "reserved_id", "amount_tiyn", "units", "items",
     "requested_at_ms", "offline"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class RedemptionItem:
    code: str
    quantity: int
    amount_tiyn: int


@dataclass(frozen=True, slots=True)
class RedemptionRequest:
    id: uuid.UUID
    terminal_id: uuid.UUID
    phase: RedemptionPhase
    amount_tiyn: int
    requested_at_ms: int
    token: str | None = None
    reference_code: str | None = None
    reserved_id: uuid.UUID | None = None
    units: int = 0
    items: tuple[RedemptionItem, ...] = ()
    offline: bool = False
    # The canonical bytes of the request as received (what a single request's signature covers), and
    # their SHA-256: a replay with another body is told apart from a faithful retry.
    body: bytes = field(default=b"", repr=False)
    request_hash: bytes = b""


class MalformedRequest(ValueError):
    """The request is not a redemption request; the message says which field is wrong."""


def request_document(request: RedemptionRequest) -> dict[str, CanonicalValue]:
    """The JSON form of a request (what a terminal signs); `parse_request` reads it back."""
    document: dict[str, CanonicalValue] = {
        "id": str(request.id),
        "terminal": str(request.terminal_id),
        "phase": request.phase.name.lower(),
        "amount_tiyn": request.amount_tiyn,
        "requested_at_ms": request.requested_at_ms,
    }
    if request.token is not None:
        document["token"] = request.token
    if request.reference_code is not None:
        document["reference_code"] = request.reference_code
    if request.reserved_id is not None:
        document["reserved_id"] = str(request.reserved_id)
    if request.units:
        document["units"] = request.units
    if request.items:
        document["items"] = [
            {"code": item.code, "quantity": item.quantity, "amount_tiyn": item.amount_tiyn}
            for item in request.items
        ]
    if request.offline:
        document["offline"] = True
    return document


def request_bytes(request: RedemptionRequest) -> bytes:
    """The canonical bytes of a request built in code (terminals, tests); parsing them back gives a request
    whose `body` is these bytes."""
    return canonical_bytes(request_document(request))


def parse_request(document: object, encoded: bytes | None = None) -> RedemptionRequest:
    """A request from its JSON form; raises MalformedRequest naming the first wrong field. `encoded`: the
    document's canonical bytes, when the caller has them already (a terminal's signed bytes)."""
    if not isinstance(document, Mapping):
        raise MalformedRequest("a request is a JSON object")
    unknown = sorted(set(document) - _FIELDS)
    if unknown:
        raise MalformedRequest(f"{unknown[0]}: not a request field")
    phase = PHASES.get(str(document.get("phase")))
    if phase is None:
        raise MalformedRequest("phase: must be single, reserve, post or void")
    if encoded is None:
        try:
            encoded = canonical_bytes(dict(document))
        except CanonicalError as error:
            raise MalformedRequest(str(error)) from None
    if len(encoded) > REQUEST_BYTES_MAX:
        raise MalformedRequest(f"a request is at most {REQUEST_BYTES_MAX} bytes")
    request = RedemptionRequest(
        id=_uuid(document, "id"),
        terminal_id=_uuid(document, "terminal"),
        phase=phase,
        amount_tiyn=_integer(document, "amount_tiyn", 0, AMOUNT_TIYN_MAX, required=True),
        requested_at_ms=_integer(document, "requested_at_ms", 0, 2**53, required=True),
        token=_text(document, "token", 8192),
        reference_code=_text(document, "reference_code", 32),
        reserved_id=_uuid(document, "reserved_id") if "reserved_id" in document else None,
        units=_integer(document, "units", 0, UNITS_MAX),
        items=_items(document.get("items")),
        offline=_flag(document, "offline"),
        body=encoded,
        request_hash=hashlib.sha256(encoded).digest(),
    )
    _check_phase_fields(request)
    return request


def parse_request_bytes(data: bytes) -> RedemptionRequest:
    try:
        return parse_request(parse_canonical(data), data)  # canonical, or parse_canonical refused it
    except ValueError as error:
        raise MalformedRequest(str(error)) from None


def batch_document(terminal_id: uuid.UUID, sent_at_ms: int, requests: Sequence[RedemptionRequest]) -> bytes:
    """The canonical bytes a terminal signs for a batch."""
    return canonical_bytes(
        {
            "terminal": str(terminal_id),
            "sent_at_ms": sent_at_ms,
            "requests": [request_document(r) for r in requests],
        }
    )


def _check_phase_fields(request: RedemptionRequest) -> None:
    presents_voucher = request.token is not None or request.reference_code is not None
    if request.phase in (RedemptionPhase.SINGLE, RedemptionPhase.RESERVE):
        if (request.token is None) == (request.reference_code is None):
            raise MalformedRequest("token: give exactly one of token or reference_code")
        if request.reserved_id is not None:
            raise MalformedRequest("reserved_id: only a post or void names a reservation")
    else:
        if request.reserved_id is None:
            raise MalformedRequest("reserved_id: a post or void must name the reservation")
        if presents_voucher or request.items or request.units:
            raise MalformedRequest("token: a post or void carries only the reservation and the amount")
    if request.items and sum(item.amount_tiyn for item in request.items) != request.amount_tiyn:
        raise MalformedRequest("items: the items' amounts must add up to amount_tiyn")


def _uuid(document: Mapping[str, object], name: str) -> uuid.UUID:
    value = document.get(name)
    try:
        parsed = uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.int == 0:
        raise MalformedRequest(f"{name}: must be a non-zero UUID")
    return parsed


def _integer(document: Mapping[str, object], name: str, low: int, high: int, required: bool = False) -> int:
    value = document.get(name)
    if value is None and not required:
        return 0
    if type(value) is not int or not low <= value <= high:
        raise MalformedRequest(f"{name}: must be an integer from {low} to {high}")
    return value


def _text(document: Mapping[str, object], name: str, chars_max: int) -> str | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= chars_max:
        raise MalformedRequest(f"{name}: must be text of 1 to {chars_max} characters")
    return value


def _flag(document: Mapping[str, object], name: str) -> bool:
    value = document.get(name, False)
    if not isinstance(value, bool):
        raise MalformedRequest(f"{name}: must be true or false")
    return value


def _items(value: object) -> tuple[RedemptionItem, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not 0 < len(value) <= ITEMS_PER_REQUEST_MAX:
        raise MalformedRequest(f"items: must be a list of 1 to {ITEMS_PER_REQUEST_MAX} items")
    items = []
    for position, entry in enumerate(value):
        if not isinstance(entry, Mapping) or set(entry) != {"code", "quantity", "amount_tiyn"}:
            raise MalformedRequest(f"items[{position}]: must be {{code, quantity, amount_tiyn}}")
        code = entry["code"]
        if not isinstance(code, str) or not 0 < len(code) <= 64:
            raise MalformedRequest(f"items[{position}].code: must be text of 1 to 64 characters")
        quantity = _integer(entry, "quantity", 1, 10**6, required=True)
        amount = _integer(entry, "amount_tiyn", 1, AMOUNT_TIYN_MAX, required=True)
        items.append(RedemptionItem(code, quantity, amount))
    if len({item.code for item in items}) != len(items):
        raise MalformedRequest("items: each item code at most once")
    return tuple(items)
