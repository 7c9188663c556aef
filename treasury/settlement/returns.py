"""Payments the bank sent back (a wrong or closed account), and paying them again once the IBAN is fixed.

A return moves the amount from the provider's bank account back to clearing (the transfer's
user_data_128 names the order) and records why. The act stays paid — its payout was decided and its
receivable cleared — while its money waits in clearing; `repay_act` issues the next payment order to the
provider's corrected IBAN. Reconciliation lists a returned payment not yet paid again as a difference.
"""

from typing import Any, Final

import psycopg

from ledger.audit.events import json_event
from ledger.audit.inbox import append_events
from ledger.clock import business_date
from ledger.ids import derived_id
from ledger.timestamps import reserve_timestamps
from ledger.transfer_codes import TransferCode
from ledger.transfers import Transfer
from treasury.errors import RefusalKind, Refused
from treasury.settlement.approvals import REASON_CHARS_MAX
from treasury.settlement.parties import provider_iban
from treasury.settlement.payouts import (
    PAYOUT_NAMESPACE,
    Payout,
    book_transfer,
    find_payout,
    send_payment_order,
    settlement_accounts,
)
from treasury.settlement.periods import require_officer, require_programme
from treasury.settlement.records import ActState, find_act, lock_act_state, require_act

_ORDER: Final = """
SELECT o.id, o.act_id, o.attempt, o.amount_tiyn, o.iban, r.order_id IS NOT NULL,
       (SELECT max(attempt) FROM payment_orders WHERE act_id = o.act_id)
  FROM payment_orders o LEFT JOIN payment_returns r ON r.order_id = o.id
 WHERE o.number = %s
"""


def record_payment_return(
    connection: psycopg.Connection[Any], order_number: str, reason: str, officer: str
) -> Payout:
    """The bank returned payment order `order_number`: its money goes back to clearing (idempotent)."""
    require_officer(officer)
    if not reason.strip() or len(reason) > REASON_CHARS_MAX:
        raise Refused("reason_required", f"give the bank's reason in 1 to {REASON_CHARS_MAX} characters")
    found = connection.execute(_ORDER, (order_number,)).fetchone()
    if found is None:
        raise Refused("payment_order_not_found", order_number, RefusalKind.NOT_FOUND)
    act = find_act(connection, act_id=found[1])
    assert act is not None
    lock_act_state(connection, act.id)
    row = connection.execute(_ORDER, (order_number,)).fetchone()
    assert row is not None
    order_id, _, _, amount, _, returned, _ = row
    if returned:
        return find_payout(connection, act)
    programme = require_programme(connection, act.programme_id)
    clearing, bank = settlement_accounts(connection, programme, act.provider_id)
    timestamp = reserve_timestamps(connection)
    transfer_id = derived_id(PAYOUT_NAMESPACE, order_id, "returned")
    book_transfer(
        connection,
        Transfer(
            transfer_id,
            bank,
            clearing,
            amount,
            int(programme.draft.asset),
            int(TransferCode.PAYOUT_BANK),
            user_data_128=order_id,
            effective_date=business_date(timestamp),
        ),
    )
    connection.execute(
        """INSERT INTO payment_returns (order_id, reason, transfer_id, officer, "timestamp")
           VALUES (%s, %s, %s, %s, %s)""",
        (order_id, reason, transfer_id, officer, timestamp),
    )
    append_events(
        connection,
        [
            json_event(
                "payment_returned",
                {
                    "order": str(order_id),
                    "number": order_number,
                    "act": str(act.id),
                    "amount_tiyn": amount,
                    "reason": reason,
                    "officer": officer,
                },
            )
        ],
    )
    return find_payout(connection, act)


def repay_act(connection: psycopg.Connection[Any], act_number: str, officer: str) -> Payout:
    """Send a returned payment again, to the provider's IBAN as it is now (it must have been corrected)."""
    require_officer(officer)
    act = require_act(connection, act_number)
    state = lock_act_state(connection, act.id)
    if state is not ActState.PAID:
        raise Refused("act_not_paid", f"act {act_number} has no payout to repeat", RefusalKind.CONFLICT)
    payout = find_payout(connection, act)
    if not payout.orders:
        raise Refused("payout_without_order", "a payout fully set off sent no money", RefusalKind.CONFLICT)
    last = payout.orders[-1]
    if not last.returned:
        raise Refused("payment_not_returned", f"order {last.number} was not returned", RefusalKind.CONFLICT)
    iban = provider_iban(connection, act.provider_id)
    if iban == last.iban:
        raise Refused(
            "iban_unchanged",
            "the provider's IBAN is the one the bank returned; correct it first",
            RefusalKind.CONFLICT,
        )
    programme = require_programme(connection, act.programme_id)
    send_payment_order(
        connection, programme, act, last.attempt + 1, last.amount_tiyn, iban, last.purpose, officer
    )
    return find_payout(connection, act)
