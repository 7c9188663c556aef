"""What a redemption batch reads before it decides, in a few pipelined round trips:

1. the terminals and their providers, the issuer key set, redemption ids seen before (done or refused),
   vouchers named by reference code, and the reservations that posts and voids resolve;
2. the vouchers themselves, locked FOR UPDATE in id order (this lock is what makes a double spend
   impossible: two redemptions of one voucher are decided one after the other), with their account
   balances and prescription items;
3. each programme's close lock (shared), its closed-through date, its policy versions, the providers'
   enrolments, and the terminals' offline totals for the days concerned.
"""

import bisect
import datetime as dt
import functools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import psycopg

from ledger.vouchers.keys import IssuerKey, load_issuer_keys
from ledger.vouchers.policy import Policy, parse_policy_bytes
from ledger.wire import uuid_array


@dataclass(frozen=True, slots=True)
class TerminalInfo:
    id: uuid.UUID
    provider_id: uuid.UUID
    public_key: bytes
    revoked_at: int | None
    category: int


class StoredRedemption(NamedTuple):
    """A redemption as stored (a NamedTuple: it is written by COPY as it stands)."""

    id: uuid.UUID
    voucher_id: uuid.UUID
    programme_id: uuid.UUID
    provider_id: uuid.UUID
    terminal_id: uuid.UUID
    phase: int
    reserved_id: uuid.UUID | None
    amount_tiyn: int
    units: int
    items: bytes | None
    requested_at: int
    effective_date: dt.date
    offline: bool
    request_hash: bytes
    timestamp: int


class IdTexts(dict[int, str]):
    """Ids written as text, remembered for one batch: its redemptions share their terminals, providers and
    programmes, and str() of a UUID costs four times a lookup by its int."""

    def of(self, id_: uuid.UUID) -> str:
        text = self.get(id_.int)
        if text is None:
            text = self[id_.int] = str(id_)
        return text


@dataclass(slots=True)
class VoucherWorking:
    """A locked voucher's row and balance, changed in memory as the batch decides."""

    id: uuid.UUID
    programme_id: uuid.UUID
    state: int
    amount_tiyn: int
    units_max: int
    not_before: int
    expires_at: int
    period_uses_max: int
    period_tiyn_max: int
    period_units_max: int
    period_start: dt.date | None
    usage_count: int
    usage_tiyn: int
    usage_units: int
    units_used: int
    issuer_key_id: str
    token_signature: bytes
    asset: int
    # From the voucher's ledger account: what may still be spent, and what is reserved.
    available_tiyn: int
    pending_tiyn: int
    items: dict[str, list[int]] = field(default_factory=dict)  # code → [quantity_max, quantity_used]
    changed: bool = False
    # Replaced, never added to: the shared empty default costs no set per voucher (most have no items).
    items_changed: frozenset[str] = frozenset()


@dataclass(slots=True)
class PolicyVersions:
    valid_from: list[int] = field(default_factory=list)
    policies: list[Policy] = field(default_factory=list)

    def at(self, timestamp: int) -> Policy | None:
        position = bisect.bisect_right(self.valid_from, timestamp) - 1
        return self.policies[position] if position >= 0 else None


@dataclass(slots=True)
class RedemptionContext:
    terminals: dict[uuid.UUID, TerminalInfo] = field(default_factory=dict)
    keys: dict[str, IssuerKey] = field(default_factory=dict)
    seen: dict[uuid.UUID, StoredRedemption] = field(default_factory=dict)
    refused: dict[uuid.UUID, tuple[int, bytes]] = field(default_factory=dict)
    codes: dict[str, uuid.UUID] = field(default_factory=dict)
    reservations: dict[uuid.UUID, StoredRedemption] = field(default_factory=dict)
    # reservation id → phase of the post or void that resolved it
    resolved: dict[uuid.UUID, int] = field(default_factory=dict)
    # reservation id → ledger time its pending transfer times out (None: no timeout)
    deadlines: dict[uuid.UUID, int | None] = field(default_factory=dict)
    vouchers: dict[uuid.UUID, VoucherWorking] = field(default_factory=dict)
    closed_through: dict[uuid.UUID, dt.date | None] = field(default_factory=dict)
    policies: dict[uuid.UUID, PolicyVersions] = field(default_factory=dict)
    # (programme, provider) → (receivable account, provider state)
    enrolments: dict[tuple[uuid.UUID, uuid.UUID], tuple[uuid.UUID, int]] = field(default_factory=dict)
    # (terminal, programme, day) → offline amount already accepted
    offline_totals: dict[tuple[uuid.UUID, uuid.UUID, dt.date], int] = field(default_factory=dict)


REDEMPTION_COLUMNS = (
    "id, voucher_id, programme_id, provider_id, terminal_id, phase, reserved_id, amount_tiyn, units, items, "
    'requested_at, effective_date, offline, request_hash, "timestamp"'
)
_TERMINALS = """
SELECT t.id, t.provider_id, t.public_key, t.revoked_at, p.category
  FROM terminals t JOIN providers p ON p.id = t.provider_id WHERE t.id = ANY(%s)
"""
# Ids seen before, each by a primary-key probe (LIMIT 1 keeps the planner from turning it back into a
# join). `id = ANY(...)` let a cached generic plan, made while the table held a few rows and no statistics,
# scan the whole table on every batch for as long as no ANALYZE replaced it: 0.7 ms per lookup after
# 12,000 redemptions.
_SEEN = f"""
SELECT r.* FROM unnest(%b::uuid[]) AS k(id)
 CROSS JOIN LATERAL (SELECT {REDEMPTION_COLUMNS} FROM redemptions WHERE id = k.id LIMIT 1) r
"""
_REFUSED = """
SELECT f.* FROM unnest(%b::uuid[]) AS k(id)
 CROSS JOIN LATERAL (SELECT id, result, request_hash FROM redemption_failures WHERE id = k.id LIMIT 1) f
"""
_CODES = "SELECT reference_code, id FROM vouchers WHERE reference_code = ANY(%s)"
_RESOLUTIONS = "SELECT reserved_id, phase FROM redemptions WHERE reserved_id = ANY(%s)"
_DEADLINES = """
SELECT id, CASE WHEN timeout_s > 0 THEN "timestamp" + timeout_s::bigint * 1000000000 END
  FROM transfers WHERE id = ANY(%s)
"""
# The lock is its own statement: the reads after it take a fresh snapshot in READ COMMITTED, so they see
# whatever the transaction that held the lock before us committed (a join in the locking statement
# would re-check only the locked table's row and could return a stale balance).
_LOCK = "SELECT id FROM vouchers WHERE id = ANY(%b::uuid[]) ORDER BY id FOR UPDATE"
# Each voucher's account by a LATERAL probe of its primary key (LIMIT 1 keeps the planner from turning it
# back into a join): a plain join let stale statistics (a table not analysed since a bulk issuance) pick a
# hash join over a sequential scan of every account, 7 ms per batch at 30,000 accounts and growing with
# the ledger.
_VOUCHERS = """
SELECT v.id, v.programme_id, v.state, v.amount_tiyn, v.units_max, v.not_before, v.expires_at,
       v.period_uses_max, v.period_tiyn_max, v.period_units_max, v.period_start, v.usage_count, v.usage_tiyn,
       v.usage_units, v.units_used, v.issuer_key_id, v.token_signature, a.asset, a.available, a.debits_pending
  FROM vouchers v
 CROSS JOIN LATERAL (
       SELECT asset, credits_posted - debits_posted - debits_pending AS available, debits_pending
         FROM accounts WHERE id = v.id LIMIT 1) a
 WHERE v.id = ANY(%b::uuid[])
"""
_ITEMS = """
SELECT voucher_id, item_code, quantity_max, quantity_used FROM voucher_items
 WHERE voucher_id = ANY(%b::uuid[])
"""
# The programmes of the locked vouchers, found in SQL (one round trip for vouchers and programmes alike).
_OF_VOUCHERS = "(SELECT DISTINCT programme_id FROM vouchers WHERE id = ANY(%b::uuid[]))"
# `registry.programme_lock_key` in SQL: the top 63 bits of the id (tests check the two agree).
_LOCK_PROGRAMMES_SHARED = f"""
SELECT pg_advisory_xact_lock_shared(k)
  FROM (SELECT (('x' || substr(replace(programme_id::text, '-', ''), 1, 16))::bit(64) >> 1)::bigint AS k
          FROM {_OF_VOUCHERS} p ORDER BY 1) keys
"""
_PROGRAMMES = f"SELECT id, closed_through FROM voucher_programmes WHERE id IN {_OF_VOUCHERS}"
_POLICIES = f"""
SELECT programme_id, valid_from, body FROM voucher_policies WHERE programme_id IN {_OF_VOUCHERS}
 ORDER BY programme_id, valid_from, version
"""
_ENROLMENTS = f"""
SELECT programme_id, provider_id, receivable_account_id, state FROM programme_providers
 WHERE programme_id IN {_OF_VOUCHERS} AND provider_id = ANY(%s)
"""
_OFFLINE_TOTALS = """
SELECT terminal_id, programme_id, effective_date, sum(amount_tiyn)::bigint FROM redemptions
 WHERE terminal_id = ANY(%s) AND offline AND effective_date = ANY(%s) AND phase IN (1, 2)
 GROUP BY terminal_id, programme_id, effective_date
"""


def load_references(
    connection: psycopg.Connection[Any],
    context: RedemptionContext,
    terminal_ids: list[uuid.UUID],
    request_ids: list[uuid.UUID],
    codes: list[str],
    reserved_ids: list[uuid.UUID],
) -> int:
    """Round trip 1: a ledger timestamp (the batch's "now") and what the requests name, before anything is
    locked. Returns the timestamp."""
    with connection.pipeline() as pipeline:
        clock = connection.execute("SELECT ledger_clock_reserve(1)")
        terminals = connection.execute(_TERMINALS, (terminal_ids,))
        seen = connection.execute(_SEEN, (uuid_array(request_ids + reserved_ids),))
        refused = connection.execute(_REFUSED, (uuid_array(request_ids),))
        code_rows = connection.execute(_CODES, (codes,)) if codes else None
        resolutions = connection.execute(_RESOLUTIONS, (reserved_ids,)) if reserved_ids else None
        deadlines = connection.execute(_DEADLINES, (reserved_ids,)) if reserved_ids else None
        pipeline.sync()
        context.keys = load_issuer_keys(connection)
        context.terminals = {
            row[0]: TerminalInfo(row[0], row[1], bytes(row[2]), row[3], row[4]) for row in terminals
        }
        stored = [StoredRedemption(*row) for row in seen.fetchall()]
        context.refused = {row[0]: (row[1], bytes(row[2])) for row in refused.fetchall()}
        context.codes = dict(code_rows.fetchall()) if code_rows is not None else {}
        context.resolved = dict(resolutions.fetchall()) if resolutions is not None else {}
        context.deadlines = dict(deadlines.fetchall()) if deadlines is not None else {}
        now = clock.fetchone()
    wanted = set(request_ids)
    context.seen = {row.id: row for row in stored if row.id in wanted}
    reserved = set(reserved_ids)
    context.reservations = {row.id: row for row in stored if row.id in reserved}
    assert now is not None
    return int(now[0])


def lock_and_load(
    connection: psycopg.Connection[Any],
    context: RedemptionContext,
    voucher_ids: Iterable[uuid.UUID],
    request_ids: list[uuid.UUID],
    offline_days: list[dt.date],
) -> None:
    """Round trip 2: the vouchers, locked in id order; then their balances and items; the request ids seen
    again (a racing retry of the same request may have committed while we waited for the lock); and their
    programmes: close locks taken shared, closed periods, policies, enrolments, offline totals."""
    # Id order is the lock order. Keyed by the ids' ints: UUID's own hash and < are Python calls, 10,000 of
    # them to sort a batch of 1000.
    unique = {voucher_id.int: voucher_id for voucher_id in voucher_ids}
    ids = [unique[key] for key in sorted(unique)]
    if not ids:
        return
    id_array, request_array = uuid_array(ids), uuid_array(request_ids)
    providers = sorted({terminal.provider_id for terminal in context.terminals.values()})
    with connection.pipeline() as pipeline:
        connection.execute(_LOCK, (id_array,))
        rows = connection.execute(_VOUCHERS, (id_array,), binary=True)
        items = connection.execute(_ITEMS, (id_array,))
        seen = connection.execute(_SEEN, (request_array,))
        refused = connection.execute(_REFUSED, (request_array,))
        connection.execute(_LOCK_PROGRAMMES_SHARED, (id_array,))  # before the programmes' reads below
        programmes = connection.execute(_PROGRAMMES, (id_array,))
        policies = connection.execute(_POLICIES, (id_array,))
        enrolments = connection.execute(_ENROLMENTS, (id_array, providers))
        totals = (
            connection.execute(_OFFLINE_TOTALS, (list(context.terminals), offline_days))
            if offline_days
            else None
        )
        pipeline.sync()
        for row in rows.fetchall():
            context.vouchers[row[0]] = _working(row)
        for voucher_id, code, quantity_max, quantity_used in items.fetchall():
            context.vouchers[voucher_id].items[code] = [quantity_max, quantity_used]
        context.seen.update((row[0], StoredRedemption(*row)) for row in seen.fetchall())
        context.refused.update((row[0], (row[1], bytes(row[2]))) for row in refused.fetchall())
        context.closed_through = dict(programmes.fetchall())
        for programme_id, valid_from, body in policies.fetchall():
            versions = context.policies.setdefault(programme_id, PolicyVersions())
            versions.valid_from.append(valid_from)
            versions.policies.append(cached_policy(bytes(body)))
        context.enrolments = {(row[0], row[1]): (row[2], row[3]) for row in enrolments.fetchall()}
        if totals is not None:
            context.offline_totals = {(row[0], row[1], row[2]): row[3] for row in totals.fetchall()}


@functools.lru_cache(maxsize=256)
def cached_policy(body: bytes) -> Policy:
    """Policies are immutable once recorded: a version's bytes parse to the same Policy every time."""
    return parse_policy_bytes(body)


def _working(row: tuple[Any, ...]) -> VoucherWorking:
    return VoucherWorking(
        id=row[0], programme_id=row[1], state=row[2], amount_tiyn=row[3], units_max=row[4], not_before=row[5],
        expires_at=row[6], period_uses_max=row[7], period_tiyn_max=row[8], period_units_max=row[9],
        period_start=row[10], usage_count=row[11], usage_tiyn=row[12], usage_units=row[13],
        units_used=row[14], issuer_key_id=row[15], token_signature=bytes(row[16]), asset=row[17],
        available_tiyn=row[18], pending_tiyn=row[19],
    )  # fmt: skip
