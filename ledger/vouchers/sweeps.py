"""Housekeeping the expiry sweep runs after expiring vouchers:

- **Lapsed reservations.** A pharmacy reservation that was neither posted nor voided times out in the
  ledger (its pending transfer is released by the ledger clock). The reservation's usage — period counters,
  units, prescription items — must be given back too: the sweep records a void for it (a redemptions row of
  phase VOID, its id derived from the reservation's) and releases the usage.
- **Leftovers.** Value can land on a voucher after it ended (a reservation voided or lapsed after expiry or
  revocation). The sweep returns it to the voucher's fund.

Both are idempotent: ids are derived, and a second run finds nothing to do.
"""

import uuid
from typing import Any, Final

import psycopg

from ledger.audit.events import json_event
from ledger.audit.inbox import append_events
from ledger.clock import business_date
from ledger.ids import derived_id
from ledger.results import CreateTransferResult
from ledger.store import create_transfers
from ledger.timestamps import reserve_timestamps
from ledger.transfer_codes import TransferCode
from ledger.transfers import Transfer, TransferFlags
from ledger.vouchers.redemption_writes import stored_items
from ledger.vouchers.states import RedemptionPhase, VoucherState

SWEEP_NAMESPACE: Final = uuid.UUID("5e7c2b9a-1f4d-4a8e-b6c3-0d9f2e1a7b64")
SWEEP_ROWS_MAX: Final = 5000
_EXPIRED_FLAG: Final = int(TransferFlags.EXPIRED)

_LAPSED = f"""
SELECT r.id, r.voucher_id, r.terminal_id, r.programme_id, r.provider_id, r.amount_tiyn, r.units, r.items,
       r.effective_date
  FROM redemptions r
  JOIN transfers t ON t.pending_id = r.id AND t.flags & {_EXPIRED_FLAG} <> 0
 WHERE r.phase = {int(RedemptionPhase.RESERVE)}
   AND NOT EXISTS (SELECT 1 FROM redemptions x WHERE x.reserved_id = r.id)
 LIMIT %s
"""
_RELEASE_USAGE = """
UPDATE vouchers v
   SET usage_count = CASE WHEN v.period_start <= %(day)s THEN greatest(v.usage_count - 1, 0)
                          ELSE v.usage_count END,
       usage_tiyn = CASE WHEN v.period_start <= %(day)s THEN greatest(v.usage_tiyn - %(amount)s, 0)
                         ELSE v.usage_tiyn END,
       usage_units = CASE WHEN v.period_start <= %(day)s THEN greatest(v.usage_units - %(units)s, 0)
                          ELSE v.usage_units END,
       units_used = greatest(v.units_used - %(units)s, 0)
 WHERE v.id = %(voucher)s
"""
_RELEASE_ITEM = """
UPDATE voucher_items SET quantity_used = greatest(quantity_used - %s, 0)
 WHERE voucher_id = %s AND item_code = %s
"""
_LEFTOVERS = f"""
SELECT v.id, v.fund_account_id, a.asset, a.credits_posted - a.debits_posted - a.debits_pending,
       a.debits_posted
  FROM vouchers v JOIN accounts a ON a.id = v.id
 WHERE v.state IN ({int(VoucherState.EXPIRED)}, {int(VoucherState.REVOKED)}, {int(VoucherState.DECLINED)})
   AND a.credits_posted - a.debits_posted - a.debits_pending > 0
 LIMIT %s
"""


def release_lapsed_reservations(connection: psycopg.Connection[Any], limit: int = SWEEP_ROWS_MAX) -> int:
    """Record a void for every reservation the ledger timed out, and give back its usage. Returns how many."""
    rows = connection.execute(_LAPSED, (min(limit, SWEEP_ROWS_MAX),)).fetchall()
    if not rows:
        return 0
    now = reserve_timestamps(connection, len(rows))
    for offset, row in enumerate(rows):
        reservation_id, voucher_id, terminal_id, programme_id, provider_id, amount, units, items, day = row
        connection.execute("SELECT 1 FROM vouchers WHERE id = %s FOR UPDATE", (voucher_id,))
        void_id = derived_id(SWEEP_NAMESPACE, reservation_id, "lapsed")
        connection.execute(
            """INSERT INTO redemptions (id, voucher_id, programme_id, provider_id, terminal_id, phase,
                   reserved_id, amount_tiyn, units, items, requested_at, effective_date, offline,
                   request_hash, "timestamp")
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, false, %s, %s)""",
            (void_id, voucher_id, programme_id, provider_id, terminal_id, int(RedemptionPhase.VOID),
             reservation_id, amount, units, items, now + offset, business_date(now), bytes(32), now + offset),
        )  # fmt: skip
        connection.execute(
            _RELEASE_USAGE, {"day": day, "amount": amount, "units": units, "voucher": voucher_id}
        )
        for code, quantity in stored_items(items):
            connection.execute(_RELEASE_ITEM, (quantity, voucher_id, code))
        append_events(
            connection,
            [json_event("reservation_lapsed", {"id": str(void_id), "reservation": str(reservation_id),
                                               "voucher": str(voucher_id), "amount_tiyn": amount})],
        )  # fmt: skip
    return len(rows)


def return_leftovers(connection: psycopg.Connection[Any], limit: int = SWEEP_ROWS_MAX) -> int:
    """Return value found on ended vouchers to their funds. Returns how many vouchers gave some back."""
    candidates = connection.execute(_LEFTOVERS, (min(limit, SWEEP_ROWS_MAX),)).fetchall()
    if not candidates:
        return 0
    ids = sorted(row[0] for row in candidates)
    connection.execute("SELECT id FROM vouchers WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (ids,))
    fresh = connection.execute(_LEFTOVERS.replace("LIMIT %s", "AND v.id = ANY(%s)"), (ids,)).fetchall()
    transfers = [
        Transfer(
            id=derived_id(SWEEP_NAMESPACE, voucher_id, "leftover", debits_posted),
            debit_account_id=voucher_id,
            credit_account_id=fund,
            amount=available,
            asset=asset,
            code=int(TransferCode.RETURN),
            user_data_128=voucher_id,
        )
        for voucher_id, fund, asset, available, debits_posted in fresh
    ]
    if not transfers:
        return 0
    results, _ = create_transfers(connection, transfers, release_expired=False)
    assert all(r in (CreateTransferResult.ok, CreateTransferResult.exists) for r in results), results
    append_events(
        connection,
        [
            json_event("leftover_returned", {"voucher": str(t.debit_account_id), "amount_tiyn": t.amount})
            for t in transfers
        ],
    )
    return sum(r is CreateTransferResult.ok for r in results)
