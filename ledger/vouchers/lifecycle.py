"""A voucher's life after issue: the holder accepts or declines the offer and activates the voucher; the
programme suspends, resumes, revokes; the expiry sweep expires it.

    offered ─accept→ accepted ─activate→ active ─(redeemed in full)→ redeemed
       └─decline→ declined            suspended ⇄ (accepted | active)
    any of offered, accepted, active, suspended ─revoke→ revoked, ─expire→ expired

Each step is one ledger operation and one audit event in one transaction, idempotent by the caller's
transition id. Accepting posts the reservation made at issue; declining voids it; revoking and expiring
return what is left to the voucher's fund. Suspension blocks redemption but keeps the value in place.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from ledger.audit.events import json_event
from ledger.audit.inbox import append_events
from ledger.clock import business_date
from ledger.ids import derived_id, is_reserved_id
from ledger.results import CreateTransferResult
from ledger.store import create_transfers
from ledger.timestamps import reserve_timestamps
from ledger.transfer_codes import TransferCode
from ledger.transfers import Transfer, TransferFlags
from ledger.vouchers.issuance import issue_transfer_id
from ledger.vouchers.lifecycle_context import LockedVoucher, load_transitions
from ledger.vouchers.results import TransitionResult
from ledger.vouchers.states import TRANSITIONS, TransitionAction, VoucherState

T = TransitionResult
A = TransitionAction
TRANSITION_NAMESPACE: Final = uuid.UUID("9b2f4c1d-0e6a-4b8f-a3d7-5c1e9f2b7a40")
REASON_CHARS_MAX: Final = 500
_HOLDER_ACTIONS: Final = frozenset({A.ACCEPT, A.DECLINE, A.ACTIVATE})
# Ledger answers that mean an offer's reservation is already gone (timed out, or released by the ledger).
_OFFER_GONE: Final = frozenset(
    {CreateTransferResult.pending_transfer_expired, CreateTransferResult.pending_transfer_already_voided}
)


@dataclass(frozen=True, slots=True)
class VoucherTransition:
    """One step. `holder_hash`, when given (the mobile backend acting for a citizen), must be the voucher's
    holder; a mismatch is answered like an unknown voucher, never revealing it exists."""

    id: uuid.UUID
    voucher_id: uuid.UUID
    action: TransitionAction
    reason: str = ""
    holder_hash: bytes | None = None


@dataclass(slots=True)
class _Planned:
    index: int
    transition: VoucherTransition
    voucher: LockedVoucher
    from_state: VoucherState
    to_state: VoucherState
    transfer: Transfer | None


def transition_vouchers(
    connection: psycopg.Connection[Any], transitions: Sequence[VoucherTransition]
) -> list[TransitionResult]:
    """Apply each step in order inside the caller's transaction; one result per step."""
    results = [T.ok] * len(transitions)
    if not transitions:
        return results
    now = reserve_timestamps(connection, len(transitions))
    known, vouchers = load_transitions(connection, transitions, now)
    planned: list[_Planned] = []
    for index, transition in enumerate(transitions):
        result, plan = _plan(index, transition, known, vouchers, now)
        results[index] = result
        if plan is not None:
            planned.append(plan)
            known[transition.id] = (transition.voucher_id, int(transition.action))
    ledger_results = _move_value(connection, [p.transfer for p in planned if p.transfer is not None])
    done = []
    for plan in planned:
        outcome = ledger_results.get(plan.transfer.id) if plan.transfer is not None else None
        if plan.transition.action is A.ACCEPT and outcome in _OFFER_GONE:
            results[plan.index] = T.offer_expired
            continue
        done.append(plan)
    _record(connection, done, now)
    return results


def _plan(
    index: int,
    transition: VoucherTransition,
    known: dict[uuid.UUID, tuple[uuid.UUID, int]],
    vouchers: dict[uuid.UUID, LockedVoucher],
    now: int,
) -> tuple[TransitionResult, _Planned | None]:
    if not isinstance(transition.id, uuid.UUID) or is_reserved_id(transition.id):
        return T.id_must_not_be_zero, None
    if len(transition.reason) > REASON_CHARS_MAX:
        return T.reason_too_long, None
    seen = known.get(transition.id)
    if seen is not None:
        if seen[0] != transition.voucher_id:
            return T.exists_with_different_voucher, None
        return (T.exists if seen[1] == transition.action else T.exists_with_different_action), None
    voucher = vouchers.get(transition.voucher_id)
    if voucher is None or (
        transition.holder_hash is not None and transition.holder_hash != voucher.holder_hash
    ):
        return T.voucher_not_found, None
    if transition.holder_hash is None and transition.action in _HOLDER_ACTIONS and not transition.reason:
        return T.holder_or_reason_required, None
    allowed_from, to_state = TRANSITIONS[transition.action]
    if voucher.state not in allowed_from:
        return T.illegal_transition, None
    result, to_state = _refine(transition.action, voucher, to_state, now)
    if result is not T.ok:
        return result, None
    transfer = _transfer_for(transition, voucher)
    plan = _Planned(index, transition, voucher, VoucherState(voucher.state), to_state, transfer)
    voucher.state = to_state  # a later step on the same voucher in this call sees this one
    return T.ok, plan


def _refine(
    action: TransitionAction, voucher: LockedVoucher, to_state: VoucherState, now: int
) -> tuple[TransitionResult, VoucherState]:
    policy = voucher.policy
    if action is A.ACCEPT and not policy.activation_required:
        return T.ok, VoucherState.ACTIVE
    if action is A.ACTIVATE and policy.activation_days is not None:
        first, last = policy.activation_days
        if not first <= business_date(now).day <= last:
            return T.outside_activation_days, to_state
    if action is A.RESUME:
        return T.ok, voucher.state_before_suspension
    if action is A.EXPIRE and now < voucher.expires_at and not voucher.offer_lapsed(now):
        return T.not_yet_expired, to_state
    return T.ok, to_state


def _transfer_for(transition: VoucherTransition, voucher: LockedVoucher) -> Transfer | None:
    """The ledger operation of a step: post or void the offer's reservation, or return what is left."""
    transfer_id = derived_id(TRANSITION_NAMESPACE, transition.id)
    offered = voucher.state == VoucherState.OFFERED
    zero = uuid.UUID(int=0)
    if transition.action is A.ACCEPT or (offered and transition.action in (A.DECLINE, A.REVOKE, A.EXPIRE)):
        if voucher.offer_pending_tiyn == 0:
            return None  # the reservation already timed out and went back to the fund
        flags = TransferFlags.POST_PENDING if transition.action is A.ACCEPT else TransferFlags.VOID_PENDING
        return Transfer(transfer_id, zero, zero, voucher.offer_pending_tiyn, 0, 0, flags=int(flags),
                        pending_id=issue_transfer_id(voucher.id))  # fmt: skip
    if transition.action in (A.REVOKE, A.EXPIRE) and voucher.available_tiyn > 0:
        return Transfer(
            transfer_id, voucher.id, voucher.fund_account_id, voucher.available_tiyn, voucher.asset,
            int(TransferCode.RETURN), user_data_128=voucher.programme_id,
        )  # fmt: skip
    return None


def _move_value(
    connection: psycopg.Connection[Any], transfers: list[Transfer]
) -> dict[uuid.UUID, CreateTransferResult]:
    if not transfers:
        return {}
    results, _ = create_transfers(connection, transfers, release_expired=False)
    outcome = {transfer.id: result for transfer, result in zip(transfers, results, strict=True)}
    unexpected = {
        t: r.name for t, r in outcome.items() if r is not CreateTransferResult.ok and r not in _OFFER_GONE
    }
    # The vouchers are locked and their balances were read under that lock: the ledger must agree.
    assert not unexpected, f"the ledger refused lifecycle transfers: {unexpected}"
    return outcome


_INSERT_TRANSITIONS: Final = """
INSERT INTO voucher_transitions
       (id, voucher_id, action, from_state, to_state, transfer_id, reason, "timestamp")
SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::smallint[], %s::smallint[], %s::smallint[], %s::uuid[],
                     %s::text[], %s::bigint[])
"""
_UPDATE_STATES: Final = """
UPDATE vouchers v SET state = u.state
  FROM unnest(%s::uuid[], %s::smallint[]) AS u(id, state) WHERE v.id = u.id
"""


def _record(connection: psycopg.Connection[Any], done: list[_Planned], now: int) -> None:
    if not done:
        return
    connection.execute(
        _INSERT_TRANSITIONS,
        (
            [p.transition.id for p in done], [p.voucher.id for p in done],
            [int(p.transition.action) for p in done],
            [int(p.from_state) for p in done], [int(p.to_state) for p in done],
            [p.transfer.id if p.transfer else None for p in done], [p.transition.reason for p in done],
            [now + position for position in range(len(done))],
        ),
    )  # fmt: skip
    final = {p.voucher.id: p.voucher.state for p in done}
    connection.execute(_UPDATE_STATES, (list(final), [int(state) for state in final.values()]))
    append_events(
        connection,
        [
            json_event(
                "voucher_transition",
                {
                    "id": str(p.transition.id),
                    "voucher": str(p.voucher.id),
                    "action": p.transition.action.name.lower(),
                    "from_state": int(p.from_state),
                    "to_state": int(p.to_state),
                    "transfer": str(p.transfer.id) if p.transfer else None,
                    # What the step moved: a return to the fund, an accepted offer, or 0.
                    "amount_tiyn": p.transfer.amount if p.transfer else 0,
                    "reason": p.transition.reason,
                },
            )
            for p in done
        ],
    )
