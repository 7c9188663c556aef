"""Helpers for the treasury operations tests: an open programme, funding it, writing eligibility lists,
reading the audit events a transaction wrote, and reading ledger balances."""

import datetime as dt
import json
import secrets
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from api.database import create_pool
from ledger.audit.events import JsonEvent, decode_event
from ledger.audit.inbox import split_events
from ledger.identity import Sex, make_valid_iin
from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.policy import parse_policy
from tests.treasury_world import programme_draft
from tests.voucher_world import HOLDER_SALT, policy_document
from treasury.funding import FundingState, approve_funding_order, create_funding_order
from treasury.programmes import Programme, ProgrammeState, create_programme, set_programme_state

T = TypeVar("T")
MAKER = "Айгерим Сапарова, treasury"
CHECKER = "Ержан Омаров, treasury"


def open_programme(
    unit_of_work: UnitOfWork, state=ProgrammeState.OPEN, policy: dict | None = None, **draft_fields
) -> Programme:
    draft = programme_draft(**draft_fields)
    programme = unit_of_work.run(
        lambda c: create_programme(c, draft, parse_policy(policy_document(**(policy or {}))), MAKER)
    )
    if state is not ProgrammeState.DRAFT:
        programme = unit_of_work.run(lambda c: set_programme_state(c, draft.id, ProgrammeState.OPEN))
    return programme


def fund(unit_of_work: UnitOfWork, programme: Programme, amount_tiyn: int) -> uuid.UUID:
    """Fund the programme by one executed order (approved by a second officer when it needs it)."""
    order_id = new_id()
    order = unit_of_work.run(lambda c: create_funding_order(c, order_id, programme.id, amount_tiyn, MAKER))
    if order.state is FundingState.AWAITING_APPROVAL:
        order = unit_of_work.run(lambda c: approve_funding_order(c, order_id, CHECKER))
    assert order.state is FundingState.EXECUTED
    return order_id


def run_with_events(unit_of_work: UnitOfWork, work: Callable[[Any], T]) -> tuple[T, list[JsonEvent]]:
    """Run `work` and return the JSON audit events its own transaction wrote."""

    def work_and_events(connection: Any) -> tuple[T, list[JsonEvent]]:
        value = work(connection)
        rows = connection.execute(
            "SELECT events FROM audit_inbox WHERE xmin::text = (pg_current_xact_id()::xid)::text ORDER BY id"
        ).fetchall()
        events = [decode_event(event) for row in rows for event in split_events(bytes(row[0]))]
        return value, [event for event in events if isinstance(event, JsonEvent)]

    return unit_of_work.run(work_and_events)


def open_test_unit_of_work(url: str) -> UnitOfWork:
    """What an issuance worker process opens in tests (module-level: picklable by reference)."""
    return UnitOfWork(create_pool(url, "amiyan_app", 1))


def balances(unit_of_work: UnitOfWork, *account_ids: uuid.UUID) -> list[int]:
    """Posted credits less posted debits of each account."""
    rows = dict(
        unit_of_work.read(
            lambda c: c.execute(
                "SELECT id, credits_posted - debits_posted FROM accounts WHERE id = ANY(%s)",
                (list(account_ids),),
            ).fetchall()
        )
    )
    return [rows.get(account_id, 0) for account_id in account_ids]


def fresh_iins(count: int) -> list[str]:
    """`count` distinct valid IINs, unlikely to have been used by another test."""
    seen: dict[str, None] = {}
    start = dt.date(1950, 1, 1) + dt.timedelta(days=secrets.randbelow(20_000))
    serial = secrets.randbelow(4000) * 2
    step = 0
    while len(seen) < count:
        day = start + dt.timedelta(days=step % 3000)
        seen.setdefault(make_valid_iin(day, Sex.male if step % 2 else Sex.female, serial + step // 3000 * 2))
        step += 1
    return list(seen)


def write_csv(path: Path, rows: list[dict[str, object]], columns=("iin", "entitlement")) -> Path:
    lines = [",".join(columns)]
    lines += [",".join(str(row.get(column, "")) for column in columns) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


__all__ = ["CHECKER", "HOLDER_SALT", "MAKER"]
