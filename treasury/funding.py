"""Funding a programme, maker-checker: money moves from the budget account (for digital tenge, the
National Bank's issuance account) into the programme fund, by a funding order an officer makes.

- An order at or below the programme's approval threshold executes at once.
- Above it, the order waits for a second officer: the maker can never approve their own order (refused
  here with `four_eyes`, and by the CHECK `ck_funding_orders_four_eyes` whatever the Python does). Any
  officer, the maker included, may reject a waiting order with a reason (rejecting moves no money).
- Funding never passes the ceiling: executing raises the programme's funded counter with a conditional
  UPDATE in the same transaction as the ledger transfer, and the CHECK `ck_programme_funding_within_ceiling`
  stands behind it, so concurrent approvals can never together fund past it.
- A draft or open programme may be funded (the money usually arrives before issuing starts); a closed one
  may not. The programme row is held FOR SHARE while funding, so a close waits for it or refuses it.

The order id is the officer's idempotency key: making the same order again returns it, another order
under the same id is refused. Every step writes its audit event in its own transaction.
"""

import uuid
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

import psycopg

from ledger.audit.events import json_event
from ledger.audit.inbox import append_events
from ledger.ids import derived_id, is_reserved_id
from ledger.limits import AMOUNT_TIYN_MAX
from ledger.timestamps import reserve_timestamps
from ledger.transfer_codes import TransferCode
from ledger.transfers import Transfer
from treasury.errors import RefusalKind, Refused
from treasury.moves import move_money
from treasury.officers import officer_name, same_officer
from treasury.programmes import Programme, ProgrammeState, find_programme

FUNDING_NAMESPACE: Final = uuid.UUID("6d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6")
REASON_CHARS_MAX: Final = 500


class FundingState(IntEnum):
    AWAITING_APPROVAL = 1
    EXECUTED = 2
    REJECTED = 3


@dataclass(frozen=True, slots=True)
class FundingOrder:
    id: uuid.UUID
    programme_id: uuid.UUID
    amount_tiyn: int
    # The programme's threshold when the order was made: above it, a second officer must approve.
    approval_threshold_tiyn: int
    state: FundingState
    created_by: str
    created_at: int
    approved_by: str | None
    rejected_by: str | None
    rejection_reason: str | None
    decided_at: int | None
    # The ledger's FUND transfer, once executed.
    transfer_id: uuid.UUID | None

    @property
    def needs_approval(self) -> bool:
        return self.amount_tiyn > self.approval_threshold_tiyn


def funding_transfer_id(order_id: uuid.UUID) -> uuid.UUID:
    return derived_id(FUNDING_NAMESPACE, order_id, "fund")


_COLUMNS: Final = """id, programme_id, amount_tiyn, approval_threshold_tiyn, state, created_by, created_at,
    approved_by, rejected_by, rejection_reason, decided_at, transfer_id"""


def create_funding_order(
    connection: psycopg.Connection[Any],
    order_id: uuid.UUID,
    programme_id: uuid.UUID,
    amount_tiyn: int,
    officer: str,
) -> FundingOrder:
    """Make a funding order; at or below the programme's threshold it executes at once."""
    maker = officer_name(officer)
    if not isinstance(order_id, uuid.UUID) or is_reserved_id(order_id):
        raise Refused("order_id_invalid", "an order id is a non-zero UUID chosen by the client")
    if type(amount_tiyn) is not int or not 0 < amount_tiyn <= AMOUNT_TIYN_MAX:
        raise Refused("amount_invalid", f"an amount is 1 to {AMOUNT_TIYN_MAX} tiyn")
    existing = find_funding_order(connection, order_id)
    if existing is not None:
        if (existing.programme_id, existing.amount_tiyn, existing.created_by) != (
            programme_id,
            amount_tiyn,
            maker,
        ):
            raise Refused(
                "order_exists", "an order with this id exists with other fields", RefusalKind.CONFLICT
            )
        return existing
    programme = _fundable_programme(connection, programme_id)
    funded, ceiling = funding_of(connection, programme)
    if funded + amount_tiyn > ceiling:  # a nicer message now; execution checks again under lock
        raise _ceiling_refusal(amount_tiyn, funded, ceiling)
    threshold = programme.draft.approval_threshold_tiyn
    timestamp = reserve_timestamps(connection)
    connection.execute(
        f"""INSERT INTO funding_orders ({_COLUMNS})
            VALUES (%s, %s, %s, %s, %s, %s, %s, NULL, NULL, NULL, NULL, NULL)""",
        (
            order_id,
            programme_id,
            amount_tiyn,
            threshold,
            int(FundingState.AWAITING_APPROVAL),
            maker,
            timestamp,
        ),
    )
    append_events(connection, [json_event("funding_order_created", {
        "order": str(order_id), "programme": str(programme_id), "amount_tiyn": amount_tiyn,
        "approval_threshold_tiyn": threshold, "officer": maker,
    })])  # fmt: skip
    if amount_tiyn <= threshold:
        return _execute(connection, order_id, programme, approved_by=None)
    return _found(connection, order_id)


def approve_funding_order(
    connection: psycopg.Connection[Any], order_id: uuid.UUID, officer: str
) -> FundingOrder:
    """A second officer approves a waiting order, which executes now. Approving again is a no-op."""
    checker = officer_name(officer)
    order = _locked_order(connection, order_id)
    if order.state is FundingState.EXECUTED and order.approved_by == checker:
        return order
    if order.state is not FundingState.AWAITING_APPROVAL:
        raise Refused("order_not_awaiting_approval", f"the order is {order.state.name.lower()}",
                      RefusalKind.CONFLICT)  # fmt: skip
    if same_officer(checker, order.created_by):
        raise Refused("four_eyes", "an officer cannot approve their own funding order", RefusalKind.FORBIDDEN)
    programme = _fundable_programme(connection, order.programme_id)
    return _execute(connection, order_id, programme, approved_by=checker)


def reject_funding_order(
    connection: psycopg.Connection[Any], order_id: uuid.UUID, officer: str, reason: str
) -> FundingOrder:
    """Reject a waiting order, saying why; no money moves. Rejecting again with the same words is a no-op."""
    rejecter = officer_name(officer)
    reason = reason.strip() if isinstance(reason, str) else ""
    if not 0 < len(reason) <= REASON_CHARS_MAX:
        raise Refused("reason_invalid", f"a rejection says why in 1 to {REASON_CHARS_MAX} characters")
    order = _locked_order(connection, order_id)
    if order.state is FundingState.REJECTED and (order.rejected_by, order.rejection_reason) == (
        rejecter,
        reason,
    ):
        return order
    if order.state is not FundingState.AWAITING_APPROVAL:
        raise Refused("order_not_awaiting_approval", f"the order is {order.state.name.lower()}",
                      RefusalKind.CONFLICT)  # fmt: skip
    timestamp = reserve_timestamps(connection)
    connection.execute(
        """UPDATE funding_orders SET state = %s, rejected_by = %s, rejection_reason = %s, decided_at = %s
            WHERE id = %s""",
        (int(FundingState.REJECTED), rejecter, reason, timestamp, order_id),
    )
    append_events(connection, [json_event("funding_order_rejected", {
        "order": str(order_id), "programme": str(order.programme_id), "officer": rejecter, "reason": reason,
    })])  # fmt: skip
    return _found(connection, order_id)


def find_funding_order(
    connection: psycopg.Connection[Any], order_id: uuid.UUID, lock: str = ""
) -> FundingOrder | None:
    row = connection.execute(
        f"SELECT {_COLUMNS} FROM funding_orders WHERE id = %s{lock}", (order_id,)
    ).fetchone()
    return _order(row) if row is not None else None


def list_funding_orders(
    connection: psycopg.Connection[Any],
    programme_id: uuid.UUID,
    state: FundingState | None = None,
    after_created_at: int = 0,
    limit: int = 100,
) -> list[FundingOrder]:
    """A programme's orders, oldest first; page with `after_created_at` = the last order's `created_at`."""
    rows = connection.execute(
        f"""SELECT {_COLUMNS} FROM funding_orders
             WHERE programme_id = %s AND created_at > %s AND (%s::smallint IS NULL OR state = %s)
             ORDER BY created_at LIMIT %s""",
        (programme_id, after_created_at, state, state, max(1, min(limit, 1000))),
    ).fetchall()
    return [_order(row) for row in rows]


def funding_of(connection: psycopg.Connection[Any], programme: Programme) -> tuple[int, int]:
    """(funded so far, ceiling) of a programme, in tiyn."""
    row = connection.execute(
        "SELECT funded_tiyn, ceiling_tiyn FROM programme_funding WHERE programme_id = %s", (programme.id,)
    ).fetchone()
    return (row[0], row[1]) if row is not None else (0, programme.draft.budget_ceiling_tiyn)


def _execute(
    connection: psycopg.Connection[Any], order_id: uuid.UUID, programme: Programme, approved_by: str | None
) -> FundingOrder:
    """Raise the funded counter (refused past the ceiling), move the money, mark the order executed."""
    order = _found(connection, order_id)
    draft = programme.draft
    connection.execute(
        """INSERT INTO programme_funding (programme_id, ceiling_tiyn, funded_tiyn) VALUES (%s, %s, 0)
           ON CONFLICT (programme_id) DO NOTHING""",
        (programme.id, draft.budget_ceiling_tiyn),
    )
    raised = connection.execute(
        """UPDATE programme_funding SET funded_tiyn = funded_tiyn + %(amount)s
            WHERE programme_id = %(programme)s AND funded_tiyn + %(amount)s <= ceiling_tiyn
           RETURNING funded_tiyn, ceiling_tiyn""",
        {"amount": order.amount_tiyn, "programme": programme.id},
    ).fetchone()
    if raised is None:
        funded, ceiling = funding_of(connection, programme)
        raise _ceiling_refusal(order.amount_tiyn, funded, ceiling)
    transfer_id = funding_transfer_id(order_id)
    move_money(connection, [Transfer(
        transfer_id, draft.budget_account_id, draft.fund_account_id, order.amount_tiyn, int(draft.asset),
        int(TransferCode.FUND), user_data_128=programme.id,
    )])  # fmt: skip
    timestamp = reserve_timestamps(connection)
    connection.execute(
        """UPDATE funding_orders SET state = %s, approved_by = %s, decided_at = %s, transfer_id = %s
            WHERE id = %s""",
        (int(FundingState.EXECUTED), approved_by, timestamp, transfer_id, order_id),
    )
    append_events(connection, [json_event("funding_order_executed", {
        "order": str(order_id), "programme": str(programme.id), "amount_tiyn": order.amount_tiyn,
        "approved_by": approved_by, "transfer": str(transfer_id), "funded_tiyn": raised[0],
        "ceiling_tiyn": raised[1],
    })])  # fmt: skip
    return _found(connection, order_id)


def _fundable_programme(connection: psycopg.Connection[Any], programme_id: uuid.UUID) -> Programme:
    programme = find_programme(connection, programme_id, lock=" FOR SHARE")
    if programme is None:
        raise Refused("programme_not_found", str(programme_id), RefusalKind.NOT_FOUND)
    if programme.state is ProgrammeState.CLOSED:
        raise Refused("programme_closed", "a closed programme cannot be funded", RefusalKind.CONFLICT)
    return programme


def _locked_order(connection: psycopg.Connection[Any], order_id: uuid.UUID) -> FundingOrder:
    order = find_funding_order(connection, order_id, lock=" FOR UPDATE")
    if order is None:
        raise Refused("order_not_found", str(order_id), RefusalKind.NOT_FOUND)
    return order


def _found(connection: psycopg.Connection[Any], order_id: uuid.UUID) -> FundingOrder:
    order = find_funding_order(connection, order_id)
    assert order is not None
    return order


def _ceiling_refusal(amount_tiyn: int, funded: int, ceiling: int) -> Refused:
    return Refused(
        "ceiling_exceeded",
        f"funding {amount_tiyn} tiyn would pass the ceiling: {funded} of {ceiling} tiyn already funded",
        RefusalKind.CONFLICT,
    )


def _order(row: tuple[Any, ...]) -> FundingOrder:
    return FundingOrder(
        id=row[0], programme_id=row[1], amount_tiyn=row[2], approval_threshold_tiyn=row[3],
        state=FundingState(row[4]), created_by=row[5], created_at=row[6], approved_by=row[7],
        rejected_by=row[8], rejection_reason=row[9], decided_at=row[10], transfer_id=row[11],
    )  # fmt: skip
