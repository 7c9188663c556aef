"""Closing a programme: no more issuing, and what is left in its fund and sub-funds goes back to the
budget account it came from (CLOSE_RETURN; for digital tenge, back to the National Bank's issuance account).

Value can still come back after the close: an offer declined or lapsed, a voucher expired or revoked
returns its value to its fund. `return_to_budget` therefore runs again on every expiry sweep, and moves
only what is there now: each return's transfer id is derived from the fund account and how much had been
debited from it before (its `debits_posted`), so a retried return is the same transfer (`exists`) and a
later one is a new transfer. Value still reserved by pending offers stays until they are answered.
"""

import uuid
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from ledger.audit.events import json_event
from ledger.audit.inbox import append_events
from ledger.ids import derived_id
from ledger.transfer_codes import TransferCode
from ledger.transfers import Transfer
from treasury.errors import RefusalKind, Refused
from treasury.moves import move_money
from treasury.officers import officer_name
from treasury.programmes import Programme, ProgrammeState, find_programme, set_programme_state

CLOSE_NAMESPACE: Final = uuid.UUID("2a9b8c7d-6e5f-4a1b-8c2d-3e4f5a6b7c8d")


@dataclass(frozen=True, slots=True)
class BudgetReturn:
    account_id: uuid.UUID
    amount_tiyn: int
    transfer_id: uuid.UUID


def close_programme(
    connection: psycopg.Connection[Any], programme_id: uuid.UUID, officer: str
) -> list[BudgetReturn]:
    """Close an open programme (waiting for issuing batches in flight) and return its funds' balances to the
    budget. Closing a closed programme again only returns what came back since."""
    who = officer_name(officer)
    before = find_programme(connection, programme_id)
    programme = set_programme_state(connection, programme_id, ProgrammeState.CLOSED)
    if before is not None and before.state is not ProgrammeState.CLOSED:
        append_events(
            connection, [json_event("programme_closed", {"programme": str(programme_id), "officer": who})]
        )
    return return_to_budget(connection, programme)


def return_to_budget(connection: psycopg.Connection[Any], programme: Programme) -> list[BudgetReturn]:
    """Move the available balance of a closed programme's fund and sub-funds to its budget account."""
    if programme.state is not ProgrammeState.CLOSED:
        raise Refused(
            "programme_not_closed", "only a closed programme returns its funds", RefusalKind.CONFLICT
        )
    draft = programme.draft
    rows = connection.execute(
        """SELECT a.id, a.credits_posted - a.debits_posted - a.debits_pending, a.debits_posted
             FROM voucher_funds f JOIN accounts a ON a.id = f.account_id
            WHERE f.programme_id = %s ORDER BY a.id FOR UPDATE OF a""",
        (programme.id,),
    ).fetchall()
    returns = [
        BudgetReturn(account_id, available, derived_id(CLOSE_NAMESPACE, account_id, debited))
        for account_id, available, debited in rows
        if available > 0
    ]
    move_money(connection, [
        Transfer(r.transfer_id, r.account_id, draft.budget_account_id, r.amount_tiyn, int(draft.asset),
                 int(TransferCode.CLOSE_RETURN), user_data_128=programme.id)
        for r in returns
    ])  # fmt: skip
    if returns:
        append_events(connection, [json_event("programme_funds_returned", {
            "programme": str(programme.id), "budget_account": str(draft.budget_account_id),
            "returns": [
                {"account": str(r.account_id), "amount_tiyn": r.amount_tiyn, "transfer": str(r.transfer_id)}
                for r in returns
            ],
        })])  # fmt: skip
    return returns


def closed_programme_ids(connection: psycopg.Connection[Any]) -> list[uuid.UUID]:
    rows = connection.execute(
        "SELECT id FROM programmes WHERE state = %s ORDER BY code", (int(ProgrammeState.CLOSED),)
    )
    return [row[0] for row in rows]
