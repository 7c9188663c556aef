"""The expiry sweep (`amiyan treasury sweep`, run on a schedule): value that no citizen can spend any more
goes back where it came from.

1. Offers whose consent window passed are released by the ledger (their reservation returns to the fund).
2. Every voucher past its expiry, and every offer that lapsed unanswered, is EXPIRED in batches through
   `ledger.vouchers.lifecycle.transition_vouchers`, which returns what was left to the voucher's fund (the
   programme fund or its regional sub-fund). Each step's id is derived from the voucher ("expire"), so a
   sweep run twice, or two sweeps at once, expire each voucher once.
3. Closed programmes return whatever came back to their funds to the budget (`treasury.closing`).

Each batch is one transaction; a sweep that stops midway is simply run again. Vouchers are picked as of
the moment the sweep starts; those expiring during it are left to the next run.
"""

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

import psycopg
import structlog

from ledger.ids import derived_id
from ledger.store import create_transfers
from ledger.timestamps import reserve_timestamps
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.lifecycle import VoucherTransition, transition_vouchers
from ledger.vouchers.results import TransitionResult
from ledger.vouchers.states import TransitionAction
from treasury.closing import closed_programme_ids, return_to_budget
from treasury.programmes import find_programme

SWEEP_NAMESPACE: Final = uuid.UUID("4f3e2d1c-0b9a-4877-a665-544332211000")
SWEEP_BATCH_DEFAULT: Final = 2000
log = structlog.get_logger("treasury.expiry")

_DUE_EXPIRED: Final = """
SELECT id, expires_at FROM vouchers
 WHERE state IN (1, 2, 4, 5) AND expires_at <= %(now)s AND (expires_at, id) > (%(after_at)s, %(after_id)s)
 ORDER BY expires_at, id LIMIT %(limit)s
"""
# An offer lapses when its reservation's timeout passes (whether or not the ledger released it yet).
_DUE_LAPSED: Final = """
SELECT v.id FROM vouchers v JOIN transfers t ON t.id = v.issue_transfer_id
 WHERE v.state = 1 AND v.id > %(after_id)s AND v.expires_at > %(now)s
   AND t."timestamp" + t.timeout_s::bigint * 1000000000 <= %(now)s
 ORDER BY v.id LIMIT %(limit)s
"""


@dataclass(slots=True)
class SweepSummary:
    reservations_released: int = 0
    expired: int = 0
    # Results other than ok, by name (`exists`: another sweep got there first).
    other: dict[str, int] = field(default_factory=dict)
    returned_to_budget_tiyn: int = 0


def sweep(
    unit_of_work: UnitOfWork,
    batch_size: int = SWEEP_BATCH_DEFAULT,
    on_batch: Callable[[SweepSummary], None] | None = None,
) -> SweepSummary:
    """Run the whole sweep (see the module docstring); returns what it did."""
    started = time.perf_counter()
    summary = SweepSummary()
    summary.reservations_released = _release_lapsed_reservations(unit_of_work)
    now = unit_of_work.run(reserve_timestamps)
    for kind, query in (("expired", _DUE_EXPIRED), ("offer lapsed", _DUE_LAPSED)):
        for batch in _due(unit_of_work, query, now, batch_size):
            steps = _expiries(batch, kind)
            results = unit_of_work.run(partial(transition_vouchers, transitions=steps))
            for result in results:
                if result is TransitionResult.ok:
                    summary.expired += 1
                else:
                    summary.other[result.name] = summary.other.get(result.name, 0) + 1
            log.info("expiry_batch", kind=kind, vouchers=len(batch), expired_total=summary.expired)
            if on_batch is not None:
                on_batch(summary)
    for programme_id in unit_of_work.read(closed_programme_ids):
        summary.returned_to_budget_tiyn += unit_of_work.run(
            partial(_return_closed, programme_id=programme_id)
        )
    log.info("expiry_sweep", reservations_released=summary.reservations_released, expired=summary.expired,
             other=summary.other, returned_to_budget_tiyn=summary.returned_to_budget_tiyn,
             seconds=round(time.perf_counter() - started, 3))  # fmt: skip
    return summary


def expiry_transition_id(voucher_id: uuid.UUID) -> uuid.UUID:
    return derived_id(SWEEP_NAMESPACE, voucher_id, "expire")


def _expiries(voucher_ids: list[uuid.UUID], kind: str) -> list[VoucherTransition]:
    return [VoucherTransition(expiry_transition_id(v), v, TransitionAction.EXPIRE, kind) for v in voucher_ids]


def _due(unit_of_work: UnitOfWork, query: str, now: int, limit: int) -> Iterator[list[uuid.UUID]]:
    """Pages of due voucher ids in a stable order, each read after the previous page was expired."""
    after_at, after_id = -1, uuid.UUID(int=0)
    while True:
        parameters = {"now": now, "after_at": after_at, "after_id": after_id, "limit": limit}
        rows = unit_of_work.read(partial(_rows, query=query, parameters=parameters))
        if not rows:
            return
        yield [row[0] for row in rows]
        after_id = rows[-1][0]
        after_at = rows[-1][1] if len(rows[-1]) > 1 else after_at


def _rows(
    connection: psycopg.Connection[Any], query: str, parameters: dict[str, Any]
) -> list[tuple[Any, ...]]:
    return connection.execute(query, parameters).fetchall()


def _release_lapsed_reservations(unit_of_work: UnitOfWork) -> int:
    """Let the ledger release reservations whose timeout passed (it does so 1000 at a time)."""
    released = 0
    while True:
        count = unit_of_work.run(lambda c: len(create_transfers(c, [], release_expired=True)[1].inserted))
        released += count
        if count == 0:
            return released


def _return_closed(connection: psycopg.Connection[Any], programme_id: uuid.UUID) -> int:
    programme = find_programme(connection, programme_id, lock=" FOR SHARE")
    assert programme is not None
    return sum(r.amount_tiyn for r in return_to_budget(connection, programme))
