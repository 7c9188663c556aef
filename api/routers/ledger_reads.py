"""Read-only views of the ledger: an account with its balance, and its transfers page by page."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from api.auth import Role, require_role
from api.problems import Problem, problem_responses
from ledger.limits import PAGE_TRANSFERS_MAX
from ledger.service import Ledger

router = APIRouter(
    prefix="/v1/ledger",
    tags=["ledger"],
    dependencies=[require_role(Role.operator, Role.auditor)],
    responses=problem_responses(401, 403, 429),
)


def get_ledger(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


LedgerDep = Annotated[Ledger, Depends(get_ledger)]


class AccountView(BaseModel):
    id: uuid.UUID
    asset: int
    code: int
    flags: int
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    balance_tiyn: int
    available_tiyn: int
    timestamp: int


class TransferView(BaseModel):
    id: uuid.UUID
    debit_account_id: uuid.UUID
    credit_account_id: uuid.UUID
    amount: int
    asset: int
    code: int
    flags: int
    pending_id: uuid.UUID
    effective_date: str
    timestamp: int


class TransferPageView(BaseModel):
    transfers: list[TransferView]
    next_cursor: int | None


@router.get("/accounts/{account_id}", response_model=AccountView, responses=problem_responses(404))
def read_account(account_id: uuid.UUID, ledger: LedgerDep) -> AccountView:
    found = ledger.lookup_accounts([account_id])
    if not found:
        raise Problem(404, "account_not_found", "No such account", str(account_id))
    a = found[0]
    return AccountView(
        id=a.id,
        asset=a.asset,
        code=a.code,
        flags=a.flags,
        debits_pending=a.debits_pending,
        debits_posted=a.debits_posted,
        credits_pending=a.credits_pending,
        credits_posted=a.credits_posted,
        balance_tiyn=a.balance_tiyn,
        available_tiyn=a.available_tiyn,
        timestamp=a.timestamp,
    )


@router.get("/accounts/{account_id}/transfers", response_model=TransferPageView)
def read_account_transfers(
    account_id: uuid.UUID,
    ledger: LedgerDep,
    after: Annotated[int | None, Query(ge=0, description="cursor from the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_TRANSFERS_MAX)] = 100,
) -> TransferPageView:
    page = ledger.account_transfers(account_id, after, limit)
    return TransferPageView(
        transfers=[
            TransferView(
                id=t.id,
                debit_account_id=t.debit_account_id,
                credit_account_id=t.credit_account_id,
                amount=t.amount,
                asset=t.asset,
                code=t.code,
                flags=t.flags,
                pending_id=t.pending_id,
                effective_date=t.effective_date.isoformat(),
                timestamp=t.timestamp,
            )
            for t in page.transfers
        ],
        next_cursor=page.next_cursor,
    )
