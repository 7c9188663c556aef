"""Writing a decided redemption batch: one ledger request for every accepted redemption (voucher →
receivable; PENDING for a reservation; POST or VOID resolving one), then the redemption rows, the refused
ids, the vouchers' usage and state, prescription items, and one audit event per redemption.

The judge read the locked vouchers and their balances, so the ledger agrees with every accepted request;
if it does not, the decision was wrong, and the whole batch is rolled back rather than half-applied.
"""

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from ledger.audit.canonical import CanonicalValue, canonical_bytes, parse_canonical
from ledger.audit.events import json_event
from ledger.audit.inbox import append_events
from ledger.clock import business_date
from ledger.ids import ZERO_ID
from ledger.results import CreateTransferResult
from ledger.store import create_transfers
from ledger.transfer_codes import TransferCode
from ledger.transfers import StoredTransfer, Transfer, TransferFlags
from ledger.vouchers.judge import Decision
from ledger.vouchers.receipts import RedemptionOutcome
from ledger.vouchers.redemption_context import IdTexts, RedemptionContext, StoredRedemption, VoucherWorking
from ledger.vouchers.requests import RedemptionRequest
from ledger.vouchers.results import RedemptionResult
from ledger.vouchers.states import RedemptionPhase
from ledger.wire import date_array, int2_array, int4_array, int8_array, uuid_array

_INSERT_REDEMPTIONS: Final = """
INSERT INTO redemptions (id, voucher_id, programme_id, provider_id, terminal_id, phase, reserved_id,
                         amount_tiyn, units, items, requested_at, effective_date, offline, request_hash,
                         "timestamp")
SELECT id, voucher_id, programme_id, provider_id, terminal_id, phase, nullif(reserved_id, %b::uuid),
       amount_tiyn, units, items, requested_at, effective_date, offline, request_hash, "timestamp"
  FROM unnest(%b::uuid[], %b::uuid[], %b::uuid[], %b::uuid[], %b::uuid[], %b::smallint[], %b::uuid[],
              %b::bigint[], %b::bigint[], %s::bytea[], %b::bigint[], %b::date[], %s::boolean[], %s::bytea[],
              %b::bigint[])
    AS n(id, voucher_id, programme_id, provider_id, terminal_id, phase, reserved_id, amount_tiyn, units,
         items, requested_at, effective_date, offline, request_hash, "timestamp")
"""
_UPDATE_VOUCHERS: Final = """
UPDATE vouchers v SET state = u.state, period_start = u.period_start, usage_count = u.usage_count,
       usage_tiyn = u.usage_tiyn, usage_units = u.usage_units, units_used = u.units_used
  FROM unnest(%b::uuid[], %b::smallint[], %b::date[], %b::int[], %b::bigint[], %b::bigint[], %b::bigint[])
       AS u(id, state, period_start, usage_count, usage_tiyn, usage_units, units_used)
 WHERE v.id = u.id
"""
_UPDATE_ITEMS: Final = """
UPDATE voucher_items i SET quantity_used = u.quantity_used
  FROM unnest(%s::uuid[], %s::text[], %s::int[]) AS u(voucher_id, item_code, quantity_used)
 WHERE i.voucher_id = u.voucher_id AND i.item_code = u.item_code
"""
_INSERT_FAILURES: Final = """
INSERT INTO redemption_failures (id, result, request_hash, "timestamp")
SELECT id, result, request_hash, %s FROM unnest(%s::uuid[], %s::smallint[], %s::bytea[])
    AS n(id, result, request_hash)
ON CONFLICT (id) DO NOTHING
"""
_FLAGS: Final = {
    RedemptionPhase.SINGLE: 0,
    RedemptionPhase.RESERVE: int(TransferFlags.PENDING),
    RedemptionPhase.POST: int(TransferFlags.POST_PENDING),
    RedemptionPhase.VOID: int(TransferFlags.VOID_PENDING),
}
Place = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Accepted:
    place: Place
    request: RedemptionRequest
    voucher: VoucherWorking
    decision: Decision | None  # single and reserve
    reservation: StoredRedemption | None  # post and void


def write_redemptions(
    connection: psycopg.Connection[Any],
    context: RedemptionContext,
    accepted: Sequence[Accepted],
    refused: Sequence[tuple[RedemptionRequest, RedemptionResult]],
    now: int,
) -> list[tuple[Place, RedemptionOutcome]]:
    rows: list[StoredRedemption] = []
    if accepted:
        transfers = [_transfer(item, now) for item in accepted]
        results, batch = create_transfers(connection, transfers, release_expired=False)
        unexpected = [
            (t.id, r.name)
            for t, r in zip(transfers, results, strict=True)
            if r is not CreateTransferResult.ok
        ]
        assert not unexpected, f"the ledger refused redemptions the judge accepted: {unexpected}"
        stamped = {row.id: row for row in batch.inserted}
        rows = [_stored(item, stamped[item.request.id], context) for item in accepted]
    # One round trip for every row the batch writes besides the transfers.
    with connection.pipeline():
        if rows:
            connection.execute(_INSERT_REDEMPTIONS, _redemption_columns(rows))
            _update_vouchers(connection, [item.voucher for item in accepted])
        if refused:
            connection.execute(
                _INSERT_FAILURES,
                (
                    now,
                    [r.id for r, _ in refused],
                    [int(result) for _, result in refused],
                    [r.request_hash for r, _ in refused],
                ),
            )
        names = IdTexts()
        events = [
            _redemption_event(row, item.voucher, names) for row, item in zip(rows, accepted, strict=True)
        ]
        events += [_refusal_event(request, result) for request, result in refused]
        append_events(connection, events)
    return [
        (item.place, RedemptionOutcome(item.request.id, RedemptionResult.ok, row))
        for item, row in zip(accepted, rows, strict=True)
    ]


def _transfer(item: Accepted, now: int) -> Transfer:
    request = item.request
    if item.decision is None:
        assert item.reservation is not None
        amount = (
            item.reservation.amount_tiyn if request.phase is RedemptionPhase.VOID else request.amount_tiyn
        )
        return Transfer(
            id=request.id, debit_account_id=ZERO_ID, credit_account_id=ZERO_ID, amount=amount, asset=0,
            code=0, flags=_FLAGS[request.phase], pending_id=item.reservation.id,
            user_data_128=request.terminal_id, effective_date=business_date(now),
        )  # fmt: skip
    decision = item.decision
    return Transfer(
        id=request.id,
        debit_account_id=item.voucher.id,
        credit_account_id=decision.receivable_account_id,
        amount=request.amount_tiyn,
        asset=item.voucher.asset,
        code=int(TransferCode.REDEEM),
        flags=_FLAGS[request.phase],
        timeout_s=decision.policy.reservation_timeout_s if request.phase is RedemptionPhase.RESERVE else 0,
        user_data_128=request.terminal_id,
        effective_date=decision.effective_date,
    )


def _stored(item: Accepted, transfer: StoredTransfer, context: RedemptionContext) -> StoredRedemption:
    request = item.request
    provider = context.terminals[request.terminal_id].provider_id
    return StoredRedemption(
        id=request.id,
        voucher_id=item.voucher.id,
        programme_id=item.voucher.programme_id,
        provider_id=provider,
        terminal_id=request.terminal_id,
        phase=int(request.phase),
        reserved_id=request.reserved_id,
        amount_tiyn=transfer.amount,
        units=request.units,
        items=items_bytes(request),
        requested_at=request.requested_at_ms * 1_000_000,
        effective_date=transfer.effective_date,
        offline=request.offline,
        request_hash=request.request_hash,
        timestamp=transfer.timestamp,
    )


def _update_vouchers(connection: psycopg.Connection[Any], touched: Sequence[VoucherWorking]) -> None:
    vouchers = list({voucher.id: voucher for voucher in touched if voucher.changed}.values())
    if vouchers:
        connection.execute(
            _UPDATE_VOUCHERS,
            (
                uuid_array([v.id for v in vouchers]), int2_array([v.state for v in vouchers]),
                date_array([_started(v) for v in vouchers]), int4_array([v.usage_count for v in vouchers]),
                int8_array([v.usage_tiyn for v in vouchers]), int8_array([v.usage_units for v in vouchers]),
                int8_array([v.units_used for v in vouchers]),
            ),
        )  # fmt: skip
        for voucher in vouchers:
            voucher.changed = False
    items = [(v.id, code, v.items[code][1]) for v in vouchers for code in sorted(v.items_changed)]
    if items:
        connection.execute(
            _UPDATE_ITEMS, ([i[0] for i in items], [i[1] for i in items], [i[2] for i in items])
        )
        for voucher in vouchers:
            voucher.items_changed = frozenset()


def _redemption_columns(rows: list[StoredRedemption]) -> tuple[object, ...]:
    zero = uuid.UUID(int=0)
    return (
        zero, uuid_array([r.id for r in rows]), uuid_array([r.voucher_id for r in rows]),
        uuid_array([r.programme_id for r in rows]), uuid_array([r.provider_id for r in rows]),
        uuid_array([r.terminal_id for r in rows]), int2_array([r.phase for r in rows]),
        uuid_array([r.reserved_id or zero for r in rows]), int8_array([r.amount_tiyn for r in rows]),
        int8_array([r.units for r in rows]), [r.items for r in rows],
        int8_array([r.requested_at for r in rows]), date_array([r.effective_date for r in rows]),
        [r.offline for r in rows], [r.request_hash for r in rows], int8_array([r.timestamp for r in rows]),
    )  # fmt: skip


def _started(voucher: VoucherWorking) -> dt.date:
    assert voucher.period_start is not None, "a voucher a redemption changed has a usage period"
    return voucher.period_start


def items_bytes(request: RedemptionRequest) -> bytes | None:
    """How a request's items are stored: canonical JSON, or NULL when it has none."""
    if not request.items:
        return None
    return canonical_bytes(
        [
            {"code": item.code, "quantity": item.quantity, "amount_tiyn": item.amount_tiyn}
            for item in request.items
        ]
    )


def stored_items(items: bytes | None) -> list[tuple[str, int]]:
    """(code, quantity) of a stored redemption's items."""
    if not items:
        return []
    value = parse_canonical(items)
    assert isinstance(value, list)
    return [(str(entry["code"]), int(entry["quantity"])) for entry in value]


def _redemption_event(row: StoredRedemption, voucher: VoucherWorking, names: IdTexts) -> bytes:
    fields: dict[str, CanonicalValue] = {
        "id": str(row.id),
        "voucher": str(row.voucher_id),
        "programme": names.of(row.programme_id),
        "provider": names.of(row.provider_id),
        "terminal": names.of(row.terminal_id),
        "phase": row.phase,
        "amount_tiyn": row.amount_tiyn,
        "units": row.units,
        "effective_date": row.effective_date.isoformat(),
        "offline": row.offline,
        "request_sha256": row.request_hash.hex(),
        "voucher_state": voucher.state,
        "timestamp": row.timestamp,
    }
    if row.reserved_id is not None:
        fields["reserved_id"] = str(row.reserved_id)
    if row.items is not None:
        fields["items"] = [[code, quantity] for code, quantity in stored_items(row.items)]
    return json_event("redemption", fields)


def _refusal_event(request: RedemptionRequest, result: RedemptionResult) -> bytes:
    return json_event(
        "redemption_refused",
        {"id": str(request.id), "result": result.name, "request_sha256": request.request_hash.hex()},
    )
