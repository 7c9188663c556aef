"""Regional sub-funds of a national programme (one per region, run by its akimat) and the money moved
between them and the programme fund.

A sub-fund is a REGIONAL_FUND ledger account registered as one of the programme's funds, so vouchers can
be issued from it (`VoucherOrder.fund_account_id`) and expired vouchers return value to it. Allocating
moves money fund → sub-fund (ALLOCATE); taking it back moves sub-fund → fund (DEALLOCATE). Both refuse to
take more than the paying account holds (the ledger's balance limit counts offers still pending).
Only a national programme has sub-funds; a closed programme moves nothing.
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
from ledger.vouchers.registry import add_fund
from treasury.errors import RefusalKind, Refused
from treasury.moves import move_money
from treasury.officers import officer_name
from treasury.programmes import TEXT_CHARS_MAX, Programme, ProgrammeState, find_programme

NATIONAL: Final = "national"
ALLOCATION_NAMESPACE: Final = uuid.UUID("0b7c6d5e-4f3a-4b2c-9d1e-0f2a3b4c5d6e")


class AllocationDirection(IntEnum):
    ALLOCATE = 1  # programme fund → sub-fund
    TAKE_BACK = 2  # sub-fund → programme fund


@dataclass(frozen=True, slots=True)
class SubFund:
    account_id: uuid.UUID
    programme_id: uuid.UUID
    region: str
    created_by: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class Allocation:
    id: uuid.UUID
    programme_id: uuid.UUID
    sub_fund_account_id: uuid.UUID
    direction: AllocationDirection
    amount_tiyn: int
    officer: str
    transfer_id: uuid.UUID
    timestamp: int


def open_sub_fund(
    connection: psycopg.Connection[Any],
    programme_id: uuid.UUID,
    account_id: uuid.UUID,
    region: str,
    officer: str,
) -> SubFund:
    """Open a region's sub-fund of a national programme. Opening the same one again returns it."""
    who = officer_name(officer)
    region = region.strip() if isinstance(region, str) else ""
    if not 0 < len(region) <= TEXT_CHARS_MAX or region.lower() == NATIONAL:
        raise Refused("region_invalid", f"a region is named by 1 to {TEXT_CHARS_MAX} characters")
    programme = _movable_programme(connection, programme_id)
    if programme.draft.region.lower() != NATIONAL:
        raise Refused("programme_not_national", "only a national programme has regional sub-funds",
                      RefusalKind.CONFLICT)  # fmt: skip
    existing = connection.execute(
        _SELECT_SUB_FUNDS + " WHERE programme_id = %s AND region = %s", (programme_id, region)
    ).fetchone()
    if existing is not None:
        if existing[0] != account_id:
            raise Refused("region_has_sub_fund", f"{region} already has a sub-fund", RefusalKind.CONFLICT)
        return SubFund(*existing)
    if is_reserved_id(account_id) or account_id in (programme.draft.fund_account_id, programme.id):
        raise Refused("account_id_invalid", "a sub-fund needs its own non-zero account id")
    outcome = add_fund(connection, programme_id, account_id)
    if outcome.result.name != "ok":
        raise Refused("account_id_taken", outcome.detail or outcome.result.name, RefusalKind.CONFLICT)
    timestamp = reserve_timestamps(connection)
    connection.execute(
        """INSERT INTO sub_funds (account_id, programme_id, region, created_by, "timestamp")
           VALUES (%s, %s, %s, %s, %s)""",
        (account_id, programme_id, region, who, timestamp),
    )
    append_events(connection, [json_event("sub_fund_opened", {
        "programme": str(programme_id), "account": str(account_id), "region": region, "officer": who,
    })])  # fmt: skip
    return SubFund(account_id, programme_id, region, who, timestamp)


def move_between_funds(
    connection: psycopg.Connection[Any],
    allocation_id: uuid.UUID,
    sub_fund_account_id: uuid.UUID,
    direction: AllocationDirection,
    amount_tiyn: int,
    officer: str,
) -> Allocation:
    """Allocate to a sub-fund, or take money back from it. The id is the idempotency key."""
    who = officer_name(officer)
    if not isinstance(allocation_id, uuid.UUID) or is_reserved_id(allocation_id):
        raise Refused("allocation_id_invalid", "an allocation id is a non-zero UUID chosen by the client")
    if type(amount_tiyn) is not int or not 0 < amount_tiyn <= AMOUNT_TIYN_MAX:
        raise Refused("amount_invalid", f"an amount is 1 to {AMOUNT_TIYN_MAX} tiyn")
    sub_fund = find_sub_fund(connection, sub_fund_account_id)
    if sub_fund is None:
        raise Refused("sub_fund_not_found", str(sub_fund_account_id), RefusalKind.NOT_FOUND)
    fields = (sub_fund_account_id, AllocationDirection(direction), amount_tiyn, who)
    existing = find_allocation(connection, allocation_id)
    if existing is not None:
        if (
            existing.sub_fund_account_id,
            existing.direction,
            existing.amount_tiyn,
            existing.officer,
        ) != fields:
            raise Refused("allocation_exists", "an allocation with this id exists with other fields",
                          RefusalKind.CONFLICT)  # fmt: skip
        return existing
    programme = _movable_programme(connection, sub_fund.programme_id)
    fund = programme.draft.fund_account_id
    allocating = direction is AllocationDirection.ALLOCATE
    debit, credit = (fund, sub_fund_account_id) if allocating else (sub_fund_account_id, fund)
    code = TransferCode.ALLOCATE if allocating else TransferCode.DEALLOCATE
    transfer_id = derived_id(ALLOCATION_NAMESPACE, allocation_id)
    move_money(connection, [Transfer(transfer_id, debit, credit, amount_tiyn, int(programme.draft.asset),
                                     int(code), user_data_128=programme.id)])  # fmt: skip
    timestamp = reserve_timestamps(connection)
    connection.execute(
        """INSERT INTO fund_allocations (id, programme_id, sub_fund_account_id, direction, amount_tiyn,
                                         officer, transfer_id, "timestamp")
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            allocation_id,
            programme.id,
            sub_fund_account_id,
            int(direction),
            amount_tiyn,
            who,
            transfer_id,
            timestamp,
        ),
    )
    append_events(connection, [json_event("fund_allocation", {
        "id": str(allocation_id), "programme": str(programme.id), "sub_fund": str(sub_fund_account_id),
        "direction": AllocationDirection(direction).name.lower(), "amount_tiyn": amount_tiyn, "officer": who,
        "transfer": str(transfer_id),
    })])  # fmt: skip
    return Allocation(allocation_id, programme.id, sub_fund_account_id, AllocationDirection(direction),
                      amount_tiyn, who, transfer_id, timestamp)  # fmt: skip


_SELECT_SUB_FUNDS: Final = 'SELECT account_id, programme_id, region, created_by, "timestamp" FROM sub_funds'


def find_sub_fund(connection: psycopg.Connection[Any], account_id: uuid.UUID) -> SubFund | None:
    row = connection.execute(_SELECT_SUB_FUNDS + " WHERE account_id = %s", (account_id,)).fetchone()
    return SubFund(*row) if row is not None else None


def list_sub_funds(connection: psycopg.Connection[Any], programme_id: uuid.UUID) -> list[SubFund]:
    rows = connection.execute(
        _SELECT_SUB_FUNDS + " WHERE programme_id = %s ORDER BY region", (programme_id,)
    ).fetchall()
    return [SubFund(*row) for row in rows]


def find_allocation(connection: psycopg.Connection[Any], allocation_id: uuid.UUID) -> Allocation | None:
    row = connection.execute(
        """SELECT id, programme_id, sub_fund_account_id, direction, amount_tiyn, officer, transfer_id,
                  "timestamp"
             FROM fund_allocations WHERE id = %s""",
        (allocation_id,),
    ).fetchone()
    if row is None:
        return None
    return Allocation(row[0], row[1], row[2], AllocationDirection(row[3]), *row[4:])


def _movable_programme(connection: psycopg.Connection[Any], programme_id: uuid.UUID) -> Programme:
    programme = find_programme(connection, programme_id, lock=" FOR SHARE")
    if programme is None:
        raise Refused("programme_not_found", str(programme_id), RefusalKind.NOT_FOUND)
    if programme.state is ProgrammeState.CLOSED:
        raise Refused("programme_closed", "a closed programme's funds no longer move", RefusalKind.CONFLICT)
    return programme
