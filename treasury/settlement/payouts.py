"""Paying an approved act: receivable → the programme's clearing account (PAYOUT_CLEARING) → the provider's
bank account (PAYOUT_BANK), in the programme's asset (digital-tenge programmes pay in digital tenge), with a
payment order (number, date, amount, КБК, purpose text, the payee's IBAN mod-97 checked).

**Once per act.** The act's state row is locked first and `settlement_payouts` has the act as its primary
key, so the same act is never paid twice, however many officers or retries press the button at once; the
ledger transfer ids derive from the act and the order, so even a replayed transfer is answered `exists`.

**Set-off.** An approved adjustment act (a redemption taken back after its act was approved) is not paid:
what it took back is deducted from the provider's next payouts in the programme, oldest first
(`settlement_setoffs`), and the payment order says so. A payout fully set off moves no money.

**Returned payments.** When the bank returns a payment (a wrong IBAN), `record_payment_return` moves the
money back from the provider's bank account to clearing; once the provider's IBAN is fixed,
`repay_act` sends a new order (the next attempt). The database allows attempt n + 1 only after attempt n
came back. (The return is booked with the PAYOUT_BANK code in the opposite direction; see the report.)
"""

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from ledger.accounts import AccountType
from ledger.audit.canonical import CanonicalValue
from ledger.audit.events import json_event
from ledger.audit.inbox import append_events
from ledger.clock import business_date
from ledger.ids import derived_id
from ledger.results import CreateTransferResult
from ledger.service import create_transfers_in
from ledger.timestamps import reserve_timestamps
from ledger.transfer_codes import TransferCode
from ledger.transfers import Transfer
from ledger.vouchers.registry import open_ledger_account
from treasury.documents import format_tenge
from treasury.errors import RefusalKind, Refused
from treasury.programmes import Programme
from treasury.settlement.numbering import NumberKind, lock_provider_settlement, next_number
from treasury.settlement.parties import provider_iban
from treasury.settlement.periods import require_officer, require_programme
from treasury.settlement.records import (
    ActKind,
    ActRecord,
    ActState,
    lock_act_state,
    move_act_state,
    require_act,
)

PAYOUT_NAMESPACE: Final = uuid.UUID("9e4c2b71-6a3f-4d8e-b5c0-2f1a7d9e3c64")
_DONE: Final = (CreateTransferResult.ok, CreateTransferResult.exists)


@dataclass(frozen=True, slots=True)
class PaymentOrder:
    id: uuid.UUID
    act_number: str
    attempt: int
    number: str
    order_date: dt.date
    amount_tiyn: int
    kbk: str
    purpose: str
    payee_name: str
    payee_bin: str
    iban: str
    returned: bool


@dataclass(frozen=True, slots=True)
class Payout:
    act_number: str
    amount_tiyn: int
    setoff_tiyn: int
    orders: tuple[PaymentOrder, ...]


def settlement_accounts(
    connection: psycopg.Connection[Any], programme: Programme, provider_id: uuid.UUID
) -> tuple[uuid.UUID, uuid.UUID]:
    """The programme's clearing account and the provider's bank account in it (opened on first use; their
    ids derive from the programme and provider, so every caller finds the same accounts)."""
    asset = int(programme.draft.asset)
    clearing = derived_id(PAYOUT_NAMESPACE, programme.id, "clearing")
    bank = derived_id(PAYOUT_NAMESPACE, programme.id, provider_id, "bank")
    for account_id, account_type, owner in (
        (clearing, AccountType.CLEARING, programme.id),
        (bank, AccountType.PROVIDER_BANK, provider_id),
    ):
        if not open_ledger_account(connection, account_id, asset, account_type, owner):
            raise Refused(
                "account_invalid", f"account {account_id} exists with other fields", RefusalKind.CONFLICT
            )
    return clearing, bank


def pay_act(connection: psycopg.Connection[Any], number: str, officer: str) -> Payout:
    """Pay an approved regular act (idempotent: an act paid already answers its payout)."""
    require_officer(officer)
    act = require_act(connection, number)
    if act.kind is ActKind.ADJUSTMENT:
        raise Refused(
            "adjustment_not_paid", "an adjustment act is set off against payouts", RefusalKind.CONFLICT
        )
    state = lock_act_state(connection, act.id)
    if state is ActState.PAID:
        return find_payout(connection, act)
    if state is not ActState.APPROVED:
        raise Refused("act_not_approved", f"act {number} is {state.name.lower()}", RefusalKind.CONFLICT)
    programme = require_programme(connection, act.programme_id)
    lock_provider_settlement(connection, act.programme_id, act.provider_id)
    iban = provider_iban(connection, act.provider_id)
    setoffs = _setoffs(connection, act)
    setoff = sum(amount for _, _, amount in setoffs)
    amount = act.total_tiyn - setoff
    clearing_transfer = derived_id(PAYOUT_NAMESPACE, act.id, "clearing") if amount > 0 else None
    timestamp = reserve_timestamps(connection)
    connection.execute(
        """INSERT INTO settlement_payouts (act_id, programme_id, provider_id, amount_tiyn, setoff_tiyn,
                                           clearing_transfer_id, officer, "timestamp")
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
        (act.id, act.programme_id, act.provider_id, amount, setoff, clearing_transfer, officer, timestamp),
    )
    _record_setoffs(connection, act, setoffs)
    if clearing_transfer is not None:
        clearing, _ = settlement_accounts(connection, programme, act.provider_id)
        receivable = _receivable(connection, act)
        book_transfer(
            connection,
            Transfer(
                clearing_transfer,
                receivable,
                clearing,
                amount,
                int(programme.draft.asset),
                int(TransferCode.PAYOUT_CLEARING),
                user_data_128=act.id,
                effective_date=business_date(timestamp),
            ),
        )
        send_payment_order(
            connection, programme, act, 1, amount, iban, payment_purpose(act, setoffs), officer
        )
    move_act_state(connection, act.id, ActState.PAID)
    append_events(
        connection,
        [
            json_event(
                "settlement_payout",
                {
                    "act": str(act.id),
                    "number": number,
                    "amount_tiyn": amount,
                    "setoff_tiyn": setoff,
                    "officer": officer,
                },
            )
        ],
    )
    return find_payout(connection, act)


_OUTSTANDING: Final = """
SELECT a.id, a.number, -a.total_tiyn - coalesce((SELECT sum(o.amount_tiyn)::bigint FROM settlement_setoffs o
                                                  WHERE o.adjustment_act_id = a.id), 0)
  FROM settlement_acts a JOIN settlement_act_states s ON s.act_id = a.id
 WHERE a.programme_id = %s AND a.provider_id = %s AND a.kind = 2 AND s.state = 4
 ORDER BY a."timestamp"
"""


def _setoffs(connection: psycopg.Connection[Any], act: ActRecord) -> list[tuple[uuid.UUID, str, int]]:
    """(adjustment act, its number, amount) to deduct from this payout, oldest first, at most its total."""
    left = act.total_tiyn
    taken = []
    for adjustment_id, adjustment_number, outstanding in connection.execute(
        _OUTSTANDING, (act.programme_id, act.provider_id)
    ).fetchall():
        amount = min(left, outstanding)
        if amount > 0:
            taken.append((adjustment_id, adjustment_number, amount))
            left -= amount
    return taken


def _record_setoffs(
    connection: psycopg.Connection[Any], act: ActRecord, setoffs: list[tuple[uuid.UUID, str, int]]
) -> None:
    for adjustment_id, _, amount in setoffs:
        connection.execute(
            "INSERT INTO settlement_setoffs (act_id, adjustment_act_id, amount_tiyn) VALUES (%s, %s, %s)",
            (act.id, adjustment_id, amount),
        )
        remaining = connection.execute(
            """SELECT -a.total_tiyn - (SELECT sum(amount_tiyn)::bigint FROM settlement_setoffs
                                        WHERE adjustment_act_id = a.id)
                 FROM settlement_acts a WHERE a.id = %s""",
            (adjustment_id,),
        ).fetchone()
        if remaining is not None and remaining[0] == 0:
            lock_act_state(connection, adjustment_id)
            move_act_state(connection, adjustment_id, ActState.PAID)


def _receivable(connection: psycopg.Connection[Any], act: ActRecord) -> uuid.UUID:
    row = connection.execute(
        "SELECT receivable_account_id FROM programme_providers WHERE programme_id = %s AND provider_id = %s",
        (act.programme_id, act.provider_id),
    ).fetchone()
    assert row is not None, "an act's provider is enrolled in its programme"
    return uuid.UUID(str(row[0]))


def book_transfer(connection: psycopg.Connection[Any], transfer: Transfer) -> None:
    [result] = create_transfers_in(connection, [transfer])
    if result not in _DONE:
        raise Refused(
            f"ledger_{result.name}", f"the ledger refused transfer {transfer.id}", RefusalKind.CONFLICT
        )


def send_payment_order(
    connection: psycopg.Connection[Any],
    programme: Programme,
    act: ActRecord,
    attempt: int,
    amount: int,
    iban: str,
    purpose: str,
    officer: str,
) -> None:
    """Issue payment order `attempt` for the act and move its amount from clearing to the bank account."""
    row = connection.execute(
        """SELECT p.name, p.bin, f.bank_name, f.bic
             FROM providers p JOIN provider_profiles f ON f.provider_id = p.id
            WHERE p.id = %s""",
        (act.provider_id,),
    ).fetchone()
    assert row is not None, "the IBAN was read from this profile"
    order_id = derived_id(PAYOUT_NAMESPACE, act.id, "order", attempt)
    number = next_number(connection, programme.id, programme.draft.code, NumberKind.PAYMENT_ORDER)
    timestamp = reserve_timestamps(connection)
    clearing, bank = settlement_accounts(connection, programme, act.provider_id)
    transfer_id = derived_id(PAYOUT_NAMESPACE, order_id, "bank")
    day = business_date(timestamp)
    values = (
        order_id, act.id, attempt, number, day, amount, programme.draft.kbk, purpose, row[0], row[1], iban,
        row[2], row[3], transfer_id, officer, timestamp,
    )  # fmt: skip
    connection.execute(
        """INSERT INTO payment_orders (id, act_id, attempt, number, order_date, amount_tiyn, kbk, purpose,
               payee_name, payee_bin, iban, bank_name, bic, transfer_id, officer, "timestamp")
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        values,
    )
    asset, code = int(programme.draft.asset), int(TransferCode.PAYOUT_BANK)
    transfer = Transfer(
        transfer_id, clearing, bank, amount, asset, code, user_data_128=order_id, effective_date=day
    )
    book_transfer(connection, transfer)
    event: dict[str, CanonicalValue] = {
        "order": str(order_id), "number": number, "act": str(act.id), "attempt": attempt,
        "amount_tiyn": amount, "iban": iban, "kbk": programme.draft.kbk, "purpose": purpose,
    }  # fmt: skip
    append_events(connection, [json_event("payment_order_issued", event)])


def payment_purpose(act: ActRecord, setoffs: list[tuple[uuid.UUID, str, int]]) -> str:
    """The payment order's purpose text, as a Kazakh treasury prints it."""
    period = f"{act.period_start:%d.%m.%Y}–{act.period_end:%d.%m.%Y}"
    text = f"Оплата по акту № {act.number} от {act.act_date:%d.%m.%Y} за период {period}"
    if setoffs:
        numbers = ", ".join(number for _, number, _ in setoffs)
        total = sum(amount for _, _, amount in setoffs)
        text += f", за вычетом {format_tenge(total)} тг по актам корректировки № {numbers}"
    return text


_ORDERS: Final = """
SELECT o.id, o.attempt, o.number, o.order_date, o.amount_tiyn, o.kbk, o.purpose, o.payee_name, o.payee_bin,
       o.iban, r.order_id IS NOT NULL
  FROM payment_orders o LEFT JOIN payment_returns r ON r.order_id = o.id
 WHERE o.act_id = %s ORDER BY o.attempt
"""


def find_payout(connection: psycopg.Connection[Any], act: ActRecord) -> Payout:
    row = connection.execute(
        "SELECT amount_tiyn, setoff_tiyn FROM settlement_payouts WHERE act_id = %s", (act.id,)
    ).fetchone()
    if row is None:
        raise Refused("payout_not_found", f"act {act.number} is not paid", RefusalKind.NOT_FOUND)
    orders = tuple(
        PaymentOrder(r[0], act.number, r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10])
        for r in connection.execute(_ORDERS, (act.id,)).fetchall()
    )
    return Payout(act.number, row[0], row[1], orders)
