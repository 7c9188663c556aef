"""Reversing a redemption: a wrong or disputed one is taken back, with a reason, until its settlement period
closes (after that only an adjustment act that references it can correct it; Forus's users asked for
exactly this window). The amount goes from the provider's receivable back to the voucher — which becomes
spendable again, its period usage given back — or to the voucher's fund when the voucher has ended.
One reversal per redemption, idempotent by the reversal's id.
"""

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import psycopg

from ledger.audit.events import json_event
from ledger.audit.inbox import append_events
from ledger.clock import business_date
from ledger.ids import derived_id, is_reserved_id
from ledger.results import CreateTransferResult
from ledger.store import create_transfers
from ledger.timestamps import reserve_timestamps
from ledger.transfer_codes import TransferCode
from ledger.transfers import Transfer
from ledger.vouchers.registry import lock_programmes_shared
from ledger.vouchers.results import ReversalResult
from ledger.vouchers.states import FINAL_STATES, RedemptionPhase, VoucherState

R = ReversalResult
REVERSAL_NAMESPACE: Final = uuid.UUID("c3a8e1f0-5d7b-4e2a-9c6f-1b0d8e4a7f52")
REASON_CHARS_MAX: Final = 500


@dataclass(frozen=True, slots=True)
class RedemptionReversal:
    id: uuid.UUID
    redemption_id: uuid.UUID
    reason: str


class _Row(NamedTuple):
    """A redemption_reversals row, in column order."""

    id: uuid.UUID
    redemption_id: uuid.UUID
    voucher_id: uuid.UUID
    programme_id: uuid.UUID
    provider_id: uuid.UUID
    amount_tiyn: int
    credit_account_id: uuid.UUID
    transfer_id: uuid.UUID
    reason: str
    effective_date: dt.date
    timestamp: int


_KNOWN: Final = (
    "SELECT id, redemption_id FROM redemption_reversals WHERE id = ANY(%s) OR redemption_id = ANY(%s)"
)
_REDEMPTIONS: Final = """
SELECT r.id, r.voucher_id, r.programme_id, r.provider_id, r.phase, r.amount_tiyn, r.units, r.effective_date,
       coalesce(p.receivable_account_id, '00000000-0000-0000-0000-000000000000'::uuid), g.closed_through
  FROM redemptions r
  JOIN voucher_programmes g ON g.id = r.programme_id
  LEFT JOIN programme_providers p ON p.programme_id = r.programme_id AND p.provider_id = r.provider_id
 WHERE r.id = ANY(%s)
"""
_CLOSED_THROUGH: Final = "SELECT id, closed_through FROM voucher_programmes WHERE id = ANY(%s)"
_VOUCHERS: Final = """
SELECT v.id, v.state, v.fund_account_id, v.period_start, v.usage_count, v.usage_tiyn, v.usage_units,
       v.units_used, a.asset
  FROM vouchers v JOIN accounts a ON a.id = v.id
 WHERE v.id = ANY(%s) ORDER BY v.id FOR UPDATE OF v
"""


def reverse_redemptions(
    connection: psycopg.Connection[Any], reversals: Sequence[RedemptionReversal]
) -> list[ReversalResult]:
    """Apply each reversal inside the caller's transaction; one result per reversal."""
    results = [R.ok] * len(reversals)
    if not reversals:
        return results
    now = reserve_timestamps(connection)
    redemption_ids = [r.redemption_id for r in reversals]
    known = {
        row[0]: row[1] for row in connection.execute(_KNOWN, ([r.id for r in reversals], redemption_ids))
    }
    reversed_redemptions = set(known.values())
    found = {row[0]: list(row) for row in connection.execute(_REDEMPTIONS, (redemption_ids,))}
    # Like a redemption, a reversal holds its programme's close lock shared, so a period close either
    # comes after it (and its act leaves the reversed redemption out) or before it (and it is refused).
    programme_ids = sorted({row[2] for row in found.values()})
    lock_programmes_shared(connection, programme_ids)
    closed = dict(connection.execute(_CLOSED_THROUGH, (programme_ids,)).fetchall())
    for row in found.values():
        row[9] = closed.get(row[2])
    redemptions = {key: tuple(row) for key, row in found.items()}
    vouchers = {
        row[0]: list(row)
        for row in connection.execute(_VOUCHERS, (sorted({row[1] for row in redemptions.values()}),))
    }
    transfers: list[Transfer] = []
    rows: list[_Row] = []
    for index, reversal in enumerate(reversals):
        result = _check(reversal, known, reversed_redemptions, redemptions)
        results[index] = result
        if result is not R.ok:
            continue
        redemption = redemptions[reversal.redemption_id]
        voucher = vouchers[redemption[1]]
        transfer = _reversal_transfer(reversal, redemption, voucher, now)
        transfers.append(transfer)
        reversed_redemptions.add(reversal.redemption_id)
        known[reversal.id] = reversal.redemption_id
        day = business_date(now)
        rows.append(
            _Row(reversal.id, reversal.redemption_id, redemption[1], redemption[2], redemption[3],
                 transfer.amount, transfer.credit_account_id, transfer.id, reversal.reason, day, now)
        )  # fmt: skip
    if transfers:
        ledger_results, _ = create_transfers(connection, transfers, release_expired=False)
        assert all(r is CreateTransferResult.ok for r in ledger_results), (
            f"reversal transfers: {ledger_results}"
        )
        _record(connection, rows, vouchers)
    return results


def _check(
    reversal: RedemptionReversal,
    known: dict[uuid.UUID, uuid.UUID],
    reversed_redemptions: set[uuid.UUID],
    redemptions: dict[uuid.UUID, tuple[Any, ...]],
) -> ReversalResult:
    if not isinstance(reversal.id, uuid.UUID) or is_reserved_id(reversal.id):
        return R.id_must_not_be_zero
    if not reversal.reason.strip() or len(reversal.reason) > REASON_CHARS_MAX:
        return R.reason_required
    if reversal.id in known:
        return (
            R.exists if known[reversal.id] == reversal.redemption_id else R.exists_with_different_redemption
        )
    redemption = redemptions.get(reversal.redemption_id)
    if redemption is None:
        return R.redemption_not_found
    if redemption[4] not in (RedemptionPhase.SINGLE, RedemptionPhase.POST):
        return R.redemption_not_reversible
    if reversal.redemption_id in reversed_redemptions:
        return R.already_reversed
    closed_through = redemption[9]
    if closed_through is not None and redemption[7] <= closed_through:
        return R.period_closed
    return R.ok


def _reversal_transfer(
    reversal: RedemptionReversal, redemption: tuple[Any, ...], voucher: list[Any], now: int
) -> Transfer:
    """Back to the voucher while it can still be spent (it becomes active again if it was used up), else to
    its fund. Usage is given back when the redemption counted in the voucher's current period."""
    state = VoucherState(voucher[1])
    to_voucher = state not in FINAL_STATES or state is VoucherState.REDEEMED
    if to_voucher:
        if state is VoucherState.REDEEMED:
            voucher[1] = int(VoucherState.ACTIVE)
        # The current period is the latest one, so a redemption dated on or after its start counted in it.
        if voucher[3] is not None and redemption[7] >= voucher[3] and voucher[4] > 0:
            voucher[4] -= 1
            voucher[5] = max(0, voucher[5] - redemption[5])
            voucher[6] = max(0, voucher[6] - redemption[6])
        voucher[7] = max(0, voucher[7] - redemption[6])
    return Transfer(
        id=derived_id(REVERSAL_NAMESPACE, reversal.id),
        debit_account_id=redemption[8],
        credit_account_id=redemption[1] if to_voucher else voucher[2],
        amount=redemption[5],
        asset=voucher[8],
        code=int(TransferCode.REVERSAL),
        user_data_128=reversal.redemption_id,
        effective_date=business_date(now),
    )


_INSERT: Final = """
INSERT INTO redemption_reversals (id, redemption_id, voucher_id, programme_id, provider_id, amount_tiyn,
                                  credit_account_id, transfer_id, reason, effective_date, "timestamp")
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
_UPDATE_VOUCHER: Final = """
UPDATE vouchers SET state = %s, usage_count = %s, usage_tiyn = %s, usage_units = %s, units_used = %s
 WHERE id = %s
"""


def _record(
    connection: psycopg.Connection[Any], rows: list[_Row], vouchers: dict[uuid.UUID, list[Any]]
) -> None:
    with connection.cursor() as cursor:
        cursor.executemany(_INSERT, rows)
        touched = {row.voucher_id for row in rows}
        cursor.executemany(
            _UPDATE_VOUCHER,
            [
                (v[1], v[4], v[5], v[6], v[7], v[0])
                for voucher_id, v in vouchers.items()
                if voucher_id in touched
            ],
        )
    append_events(
        connection,
        [
            json_event(
                "redemption_reversed",
                {
                    "id": str(row.id),
                    "redemption": str(row.redemption_id),
                    "voucher": str(row.voucher_id),
                    "amount_tiyn": row.amount_tiyn,
                    "credit_account": str(row.credit_account_id),
                    "reason": row.reason,
                    "effective_date": row.effective_date.isoformat(),
                },
            )
            for row in rows
        ],
    )
