"""Reading vouchers back: one voucher with its balance, a holder's vouchers, a voucher's history, and its
token rebuilt exactly from the stored fields and signature. Read-only; each function takes a connection."""

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from ledger.vouchers.policy import parse_policy_bytes
from ledger.vouchers.redemption_context import REDEMPTION_COLUMNS, StoredRedemption
from ledger.vouchers.states import VoucherState
from ledger.vouchers.tokens import VoucherClaims, token_text

PAGE_VOUCHERS_MAX = 200
PAGE_HISTORY_MAX = 1000


@dataclass(frozen=True, slots=True)
class VoucherView:
    id: uuid.UUID
    programme_id: uuid.UUID
    purpose: str
    state: VoucherState
    amount_tiyn: int
    # What may still be spent, what a pharmacy has reserved, what was spent.
    available_tiyn: int
    reserved_tiyn: int
    spent_tiyn: int
    not_before: int
    expires_at: int
    reference_code: str
    holder_hash: bytes
    issued_at: int
    items: tuple[tuple[str, int, int], ...]  # code, prescribed, dispensed or reserved


@dataclass(frozen=True, slots=True)
class VoucherStep:
    """One line of a voucher's history: a lifecycle step or a redemption."""

    timestamp: int
    kind: str
    detail: str
    amount_tiyn: int
    effective_date: dt.date | None


_VIEW = """
SELECT v.id, v.programme_id, v.purpose, v.state, v.amount_tiyn,
       a.credits_posted - a.debits_posted - a.debits_pending, a.debits_pending, v.not_before, v.expires_at,
       v.reference_code, v.holder_hash, v."timestamp",
       coalesce((SELECT sum(r.amount_tiyn) FROM redemptions r
                  WHERE r.voucher_id = v.id AND r.phase IN (1, 3)), 0)
  FROM vouchers v JOIN accounts a ON a.id = v.id
"""
_ITEMS = (
    "SELECT voucher_id, item_code, quantity_max, quantity_used FROM voucher_items WHERE voucher_id = ANY(%s)"
)
_TOKEN_FIELDS = """
SELECT v.id, v.programme_id, v.purpose, v.holder_hash, v.amount_tiyn, v.units_max, p.body, v.period_uses_max,
       v.period_tiyn_max, v.period_units_max, v."timestamp", v.not_before, v.expires_at, v.issuer_key_id,
       v.token_signature
  FROM vouchers v JOIN voucher_policies p ON p.programme_id = v.programme_id AND p.version = v.policy_version
 WHERE v.id = %s
"""


def vouchers_by_id(connection: psycopg.Connection[Any], ids: list[uuid.UUID]) -> list[VoucherView]:
    rows = connection.execute(_VIEW + " WHERE v.id = ANY(%s) ORDER BY v.id", (ids,)).fetchall()
    return _views(connection, rows)


def vouchers_of_holder(
    connection: psycopg.Connection[Any], holder_hash: bytes, after: uuid.UUID | None, limit: int
) -> list[VoucherView]:
    """A holder's vouchers (offers included), oldest first, a page at a time after the cursor id."""
    rows = connection.execute(
        _VIEW + " WHERE v.holder_hash = %s AND v.id > %s ORDER BY v.id LIMIT %s",
        (holder_hash, after or uuid.UUID(int=0), min(limit, PAGE_VOUCHERS_MAX)),
    ).fetchall()
    return _views(connection, rows)


def _views(connection: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> list[VoucherView]:
    items: dict[uuid.UUID, list[tuple[str, int, int]]] = {}
    if rows:
        for voucher_id, code, quantity_max, quantity_used in connection.execute(
            _ITEMS, ([r[0] for r in rows],)
        ):
            items.setdefault(voucher_id, []).append((code, quantity_max, quantity_used))
    return [
        VoucherView(
            id=r[0],
            programme_id=r[1],
            purpose=r[2],
            state=VoucherState(r[3]),
            amount_tiyn=r[4],
            available_tiyn=r[5],
            reserved_tiyn=r[6],
            spent_tiyn=int(r[12]),
            not_before=r[7],
            expires_at=r[8],
            reference_code=r[9],
            holder_hash=bytes(r[10]),
            issued_at=r[11],
            items=tuple(sorted(items.get(r[0], []))),
        )
        for r in rows
    ]


def voucher_history(
    connection: psycopg.Connection[Any], voucher_id: uuid.UUID, after_timestamp: int, limit: int
) -> list[VoucherStep]:
    """Issue, every lifecycle step and every redemption, in ledger order: up to `limit` steps stamped after
    `after_timestamp` (-1 for the first). Every step carries its own ledger timestamp, and ledger timestamps
    are unique, so the last step's timestamp is where the next page starts."""
    assert 1 <= limit <= PAGE_HISTORY_MAX
    steps: list[VoucherStep] = []
    issued = connection.execute(
        'SELECT "timestamp", amount_tiyn FROM vouchers WHERE id = %s AND "timestamp" > %s',
        (voucher_id, after_timestamp),
    ).fetchone()
    if issued is not None:
        steps.append(VoucherStep(issued[0], "issued", "", issued[1], None))
    for timestamp, action, from_state, to_state, reason in connection.execute(
        """SELECT "timestamp", action, from_state, to_state, reason FROM voucher_transitions
            WHERE voucher_id = %s AND "timestamp" > %s ORDER BY "timestamp" LIMIT %s""",
        (voucher_id, after_timestamp, limit),
    ):
        detail = f"{VoucherState(from_state).name.lower()} → {VoucherState(to_state).name.lower()}"
        described = f"{detail} ({reason})" if reason else detail
        steps.append(VoucherStep(timestamp, f"transition:{action}", described, 0, None))
    for row in connection.execute(
        f"""SELECT {REDEMPTION_COLUMNS} FROM redemptions
             WHERE voucher_id = %s AND "timestamp" > %s ORDER BY "timestamp" LIMIT %s""",
        (voucher_id, after_timestamp, limit),
    ):
        redemption = StoredRedemption(*row)
        steps.append(
            VoucherStep(redemption.timestamp, f"redemption:{redemption.phase}", str(redemption.provider_id),
                        redemption.amount_tiyn, redemption.effective_date)
        )  # fmt: skip
    return sorted(steps, key=lambda step: step.timestamp)[:limit]


def voucher_token(connection: psycopg.Connection[Any], voucher_id: uuid.UUID) -> str | None:
    """The voucher's token, byte for byte the one signed at issue (None for an unknown voucher)."""
    row = connection.execute(_TOKEN_FIELDS, (voucher_id,)).fetchone()
    if row is None:
        return None
    items = connection.execute(
        "SELECT item_code, quantity_max FROM voucher_items WHERE voucher_id = %s ORDER BY item_code",
        (voucher_id,),
    ).fetchall()
    policy = parse_policy_bytes(bytes(row[6]))
    claims = VoucherClaims(
        voucher_id=row[0], programme_id=row[1], purpose=row[2], holder_hash=bytes(row[3]), amount_tiyn=row[4],
        units_max=row[5], period=policy.period.value, period_uses_max=row[7], period_tiyn_max=row[8],
        period_units_max=row[9], items=tuple((code, quantity) for code, quantity in items),
        issued_at_s=row[10] // 1_000_000_000, not_before_s=row[11] // 1_000_000_000,
        expires_at_s=row[12] // 1_000_000_000,
    )  # fmt: skip
    return token_text(claims, row[13], bytes(row[14]))
