"""What a batch of lifecycle steps reads: transition ids seen before, and the vouchers, locked in id order,
with their balances, the policy in force, when their offer lapses, and the state a suspension interrupted."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg

from ledger.vouchers.policy import Policy, parse_policy_bytes
from ledger.vouchers.states import VoucherState

if TYPE_CHECKING:
    from ledger.vouchers.lifecycle import VoucherTransition


@dataclass(slots=True)
class LockedVoucher:
    id: uuid.UUID
    programme_id: uuid.UUID
    fund_account_id: uuid.UUID
    holder_hash: bytes
    state: int
    expires_at: int
    asset: int
    # What may still be spent (posted credits − posted and pending debits) and what the offer still holds.
    available_tiyn: int
    offer_pending_tiyn: int
    # When the offer's reservation times out (None once posted or voided).
    offer_deadline: int | None
    policy: Policy
    state_before_suspension: VoucherState

    def offer_lapsed(self, now: int) -> bool:
        return self.state == VoucherState.OFFERED and (
            self.offer_deadline is None or self.offer_deadline <= now
        )


_KNOWN = "SELECT id, voucher_id, action FROM voucher_transitions WHERE id = ANY(%s)"
_VOUCHERS = """
SELECT v.id, v.programme_id, v.fund_account_id, v.holder_hash, v.state, v.expires_at, a.asset,
       a.credits_posted - a.debits_posted - a.debits_pending, a.credits_pending,
       CASE WHEN a.credits_pending > 0 AND t.timeout_s > 0
            THEN t."timestamp" + t.timeout_s::bigint * 1000000000 END,
       p.body,
       (SELECT s.from_state FROM voucher_transitions s
         WHERE s.voucher_id = v.id AND s.action = 4 ORDER BY s."timestamp" DESC LIMIT 1)
  FROM vouchers v
  JOIN accounts a ON a.id = v.id
  JOIN transfers t ON t.id = v.issue_transfer_id
  CROSS JOIN LATERAL (SELECT body FROM voucher_policies
                       WHERE programme_id = v.programme_id AND valid_from <= %s
                       ORDER BY valid_from DESC, version DESC LIMIT 1) p
 WHERE v.id = ANY(%s)
"""
# Locked by a statement of its own, so the balance read after it is current (see redemption_context._LOCK).
_LOCK = "SELECT id FROM vouchers WHERE id = ANY(%s) ORDER BY id FOR UPDATE"


def load_transitions(
    connection: psycopg.Connection[Any], transitions: Sequence["VoucherTransition"], now: int
) -> tuple[dict[uuid.UUID, tuple[uuid.UUID, int]], dict[uuid.UUID, LockedVoucher]]:
    voucher_ids = sorted({t.voucher_id for t in transitions})
    with connection.pipeline() as pipeline:
        connection.execute(_LOCK, (voucher_ids,))
        known_rows = connection.execute(_KNOWN, ([t.id for t in transitions],))
        voucher_rows = connection.execute(_VOUCHERS, (now, voucher_ids))
        pipeline.sync()
        known = {row[0]: (row[1], row[2]) for row in known_rows.fetchall()}
        vouchers = {row[0]: _locked(row) for row in voucher_rows.fetchall()}
    return known, vouchers


def _locked(row: tuple[Any, ...]) -> LockedVoucher:
    return LockedVoucher(
        id=row[0], programme_id=row[1], fund_account_id=row[2], holder_hash=bytes(row[3]), state=row[4],
        expires_at=row[5], asset=row[6], available_tiyn=row[7], offer_pending_tiyn=row[8],
        offer_deadline=row[9],
        policy=parse_policy_bytes(bytes(row[10])),
        state_before_suspension=VoucherState(row[11]) if row[11] is not None else VoucherState.ACTIVE,
    )  # fmt: skip
