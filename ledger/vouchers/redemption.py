"""Redeeming vouchers: terminals' signed requests in, value moved from vouchers to providers' receivables,
one result per request, in one transaction (the caller's unit of work).

Submissions from several terminals may share a transaction (single requests are coalesced, as the ledger
does with transfers); each keeps its own results. The order of work:

1. read what the requests name (terminals, keys, ids seen before, reference codes, reservations);
2. check each terminal's signature over its exact bytes and each request's shape, time and id;
3. verify the tokens (Ed25519) and find each request's voucher;
4. lock the vouchers (id order) and read the programmes' close state, policies and enrolments;
5. judge each request in order (`judge.py`), so two spends of one voucher see each other;
6. move the value (`redemption_writes.py`): ledger transfers, redemption rows, voucher usage, audit events.
"""

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg

from ledger.clock import business_date
from ledger.vouchers.judge import apply_resolution, judge_new_spend, judge_resolution
from ledger.vouchers.receipts import RedemptionOutcome
from ledger.vouchers.redemption_context import (
    RedemptionContext,
    StoredRedemption,
    load_references,
    lock_and_load,
)
from ledger.vouchers.redemption_writes import Accepted, items_bytes, stored_items, write_redemptions
from ledger.vouchers.reference import normalise_reference_code
from ledger.vouchers.requests import MalformedRequest, RedemptionRequest
from ledger.vouchers.results import REMEMBERED_REDEMPTION_FAILURES as REMEMBERED
from ledger.vouchers.results import RedemptionResult
from ledger.vouchers.signing import Purpose
from ledger.vouchers.states import RedemptionPhase
from ledger.vouchers.token_checks import TokenVerifier

R = RedemptionResult
# An online request's own clock may differ from the ledger's by this much.
REQUEST_SKEW_MS_MAX: Final = 5 * 60 * 1000
# An offline redemption may be uploaded up to this long after it was served.
OFFLINE_AGE_MS_MAX: Final = 7 * 24 * 3600 * 1000
_MS: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class Submission:
    """One terminal's requests and its signature over `signed_body` (a single request's canonical bytes,
    or a batch's). Requests that failed to parse are kept in place as MalformedRequest."""

    terminal_id: uuid.UUID
    requests: tuple[RedemptionRequest | MalformedRequest, ...]
    signed_body: bytes
    signature: bytes
    purpose: Purpose


@dataclass(slots=True)
class _Work:
    """The batch's requests in order, with where each outcome goes."""

    requests: list[tuple[int, int, RedemptionRequest]] = field(default_factory=list)
    outcomes: list[list[RedemptionOutcome | None]] = field(default_factory=list)

    def refuse(
        self, place: tuple[int, int], request_id: uuid.UUID | None, result: R, detail: str = ""
    ) -> None:
        self.outcomes[place[0]][place[1]] = RedemptionOutcome(request_id, result, detail=detail)


def redeem(
    connection: psycopg.Connection[Any],
    verifier: TokenVerifier,
    submissions: Sequence[Submission],
) -> list[list[RedemptionOutcome]]:
    """Decide and apply every request; one outcome list per submission, in request order."""
    work = _Work(outcomes=[[None] * len(s.requests) for s in submissions])
    context = RedemptionContext()
    parsed = [
        (s_index, r_index, request)
        for s_index, submission in enumerate(submissions)
        for r_index, request in enumerate(submission.requests)
        if isinstance(request, RedemptionRequest)
    ]
    now = load_references(
        connection,
        context,
        terminal_ids=sorted({submission.terminal_id for submission in submissions}),
        request_ids=[request.id for _, _, request in parsed],
        codes=[
            code
            for _, _, r in parsed
            if r.reference_code and (code := normalise_reference_code(r.reference_code))
        ],
        reserved_ids=[request.reserved_id for _, _, request in parsed if request.reserved_id is not None],
    )
    _check_submissions(submissions, context, verifier, now, work)
    live = [entry for entry in parsed if work.outcomes[entry[0]][entry[1]] is None]
    work.requests = _check_requests(live, context, now, work)
    vouchers, signatures = _find_vouchers(work, context, verifier, now)
    offline_days = sorted({_day(request, now) for _, _, request in work.requests if request.offline})
    request_ids = [request.id for _, _, request in work.requests]
    lock_and_load(connection, context, vouchers.values(), request_ids, offline_days)
    _recheck_idempotency(work, context)
    accepted = _judge_all(work, vouchers, signatures, context, now)
    refused = [
        (request, outcome.result)
        for s_index, r_index, request in parsed
        if (outcome := work.outcomes[s_index][r_index]) is not None and outcome.result in REMEMBERED
    ]
    for place, outcome in write_redemptions(connection, context, accepted, refused, now):
        work.outcomes[place[0]][place[1]] = outcome
    return [[_settled(outcome) for outcome in outcomes] for outcomes in work.outcomes]


def _settled(outcome: RedemptionOutcome | None) -> RedemptionOutcome:
    assert outcome is not None, "a request was left without an outcome"
    return outcome


def _check_submissions(
    submissions: Sequence[Submission],
    context: RedemptionContext,
    verifier: TokenVerifier,
    now: int,
    work: _Work,
) -> None:
    signed = verifier.check_messages(
        [
            (terminal.public_key, s.purpose, s.signed_body, s.signature)
            if (terminal := context.terminals.get(s.terminal_id)) is not None
            else (b"", s.purpose, b"", b"")
            for s in submissions
        ]
    )
    for s_index, submission in enumerate(submissions):
        terminal = context.terminals.get(submission.terminal_id)
        if terminal is None:
            failure: R | None = R.terminal_not_found
        elif terminal.revoked_at is not None and terminal.revoked_at <= now:
            failure = R.terminal_revoked
        elif not signed[s_index]:
            failure = R.terminal_signature_invalid
        else:
            failure = None
        for r_index, request in enumerate(submission.requests):
            request_id = request.id if isinstance(request, RedemptionRequest) else None
            if failure is not None:
                work.refuse((s_index, r_index), request_id, failure)
            elif isinstance(request, MalformedRequest):
                work.refuse((s_index, r_index), None, R.request_malformed, str(request))
            elif request.terminal_id != submission.terminal_id:
                work.refuse((s_index, r_index), request_id, R.request_malformed, "terminal: not the signer's")


def _check_requests(
    live: list[tuple[int, int, RedemptionRequest]], context: RedemptionContext, now: int, work: _Work
) -> list[tuple[int, int, RedemptionRequest]]:
    """Shape, time and idempotency; returns the requests still to decide."""
    remaining = []
    in_batch: dict[uuid.UUID, bytes] = {}
    for s_index, r_index, request in live:
        place = (s_index, r_index)
        # A faithful retry answers `exists` however late it comes; only a new request is judged on its time.
        result = _idempotency(request, context, in_batch, work, place)
        if result is R.ok:
            result = _time_and_amount(request, now)
        if result is not R.ok:
            if work.outcomes[s_index][r_index] is None:
                work.refuse(place, request.id, result)
            continue
        in_batch[request.id] = request.request_hash
        remaining.append((s_index, r_index, request))
    return remaining


def _time_and_amount(request: RedemptionRequest, now: int) -> R:
    if request.phase is not RedemptionPhase.VOID and request.amount_tiyn <= 0:
        return R.amount_must_be_positive
    drift_ms = request.requested_at_ms - now // _MS
    if request.offline:
        if request.phase not in (RedemptionPhase.SINGLE, RedemptionPhase.RESERVE):
            return R.request_malformed
        if drift_ms > REQUEST_SKEW_MS_MAX or -drift_ms > OFFLINE_AGE_MS_MAX:
            return R.request_time_invalid
    elif abs(drift_ms) > REQUEST_SKEW_MS_MAX:
        return R.request_time_invalid
    return R.ok


def _idempotency(
    request: RedemptionRequest,
    context: RedemptionContext,
    in_batch: dict[uuid.UUID, bytes],
    work: _Work,
    place: tuple[int, int],
) -> R:
    stored = context.seen.get(request.id)
    if stored is not None:
        if stored.request_hash != request.request_hash:
            return R.exists_with_different_request
        work.outcomes[place[0]][place[1]] = RedemptionOutcome(request.id, R.exists, redemption=stored)
        return R.exists
    refused = context.refused.get(request.id)
    if refused is not None:
        if refused[1] != request.request_hash:
            return R.exists_with_different_request
        work.outcomes[place[0]][place[1]] = RedemptionOutcome(
            request.id, R.id_already_failed, original=R(refused[0])
        )
        return R.id_already_failed
    if request.id in in_batch:
        # The same id twice in one transaction: the second is a retry racing the first; refuse it plainly.
        return R.exists_with_different_request if in_batch[request.id] != request.request_hash else R.exists
    return R.ok


def _recheck_idempotency(work: _Work, context: RedemptionContext) -> None:
    """Requests whose id committed meanwhile (a racing retry) answer from the stored row, like any replay."""
    for s_index, r_index, request in work.requests:
        if work.outcomes[s_index][r_index] is None and (
            request.id in context.seen or request.id in context.refused
        ):
            result = _idempotency(request, context, {}, work, (s_index, r_index))
            if work.outcomes[s_index][r_index] is None:
                work.refuse((s_index, r_index), request.id, result)


def _find_vouchers(
    work: _Work, context: RedemptionContext, verifier: TokenVerifier, now: int
) -> tuple[dict[int, uuid.UUID], dict[int, bytes]]:
    """Position in work.requests → voucher id, for requests whose token, code or reservation names one; and
    → the signature of the verified token that named it."""
    found: dict[int, uuid.UUID] = {}
    signatures: dict[int, bytes] = {}
    positions = [i for i, (_, _, r) in enumerate(work.requests) if r.token is not None]
    with_tokens = [work.requests[i][2] for i in positions]
    checked = verifier.check(
        [request.token for request in with_tokens if request.token is not None],
        context.keys,
        [_moment(request, now) for request in with_tokens],
    )
    for position, (result, voucher_id, _, signature) in zip(positions, checked, strict=True):
        if voucher_id is None:
            s_index, r_index, request = work.requests[position]
            work.refuse((s_index, r_index), request.id, result)
        else:
            found[position] = voucher_id
            signatures[position] = signature
    for position, (s_index, r_index, request) in enumerate(work.requests):
        if request.reference_code is not None:
            code = normalise_reference_code(request.reference_code)
            voucher_id = context.codes.get(code) if code else None
            if voucher_id is None:
                work.refuse((s_index, r_index), request.id, R.reference_code_not_found)
            else:
                found[position] = voucher_id
        elif request.reserved_id is not None and request.reserved_id in context.reservations:
            found[position] = context.reservations[request.reserved_id].voucher_id
    return found, signatures


def _judge_all(
    work: _Work,
    vouchers: dict[int, uuid.UUID],
    signatures: dict[int, bytes],
    context: RedemptionContext,
    now: int,
) -> list[Accepted]:
    accepted: list[Accepted] = []
    for position, (s_index, r_index, request) in enumerate(work.requests):
        if work.outcomes[s_index][r_index] is not None:
            continue
        if request.phase in (RedemptionPhase.POST, RedemptionPhase.VOID):
            result, item = _judge_resolution(request, (s_index, r_index), context, now)
        else:
            voucher_id, signature = vouchers.get(position), signatures.get(position)
            result, item = _judge_spend(request, (s_index, r_index), voucher_id, signature, context, now)
        if item is None:
            work.refuse((s_index, r_index), request.id, result)
        else:
            accepted.append(item)
    return accepted


def _judge_resolution(
    request: RedemptionRequest, place: tuple[int, int], context: RedemptionContext, now: int
) -> tuple[R, Accepted | None]:
    result, reservation = judge_resolution(request, context.terminals[request.terminal_id], context, now)
    if reservation is None:
        return result, None
    voucher = context.vouchers[reservation.voucher_id]
    versions = context.policies.get(voucher.programme_id)
    policy = versions.at(now) if versions is not None else None
    apply_resolution(request, voucher, reservation, policy, stored_items(reservation.items))
    context.resolved[reservation.id] = int(request.phase)  # a second post in this batch sees the first
    return R.ok, Accepted(place, request, voucher, None, reservation)


def _judge_spend(
    request: RedemptionRequest,
    place: tuple[int, int],
    voucher_id: uuid.UUID | None,
    signature: bytes | None,
    context: RedemptionContext,
    now: int,
) -> tuple[R, Accepted | None]:
    """`signature`: that of the verified token that named the voucher (None when no token did)."""
    voucher = context.vouchers.get(voucher_id) if voucher_id is not None else None
    if voucher is None:
        return R.voucher_not_found, None
    # The presented token carries the signature stored for the voucher: it is the token the ledger issued
    # for it (the Ed25519 check already proved the issuer signed it).
    if request.token is not None and signature != voucher.token_signature:
        return R.token_does_not_match_voucher, None
    terminal = context.terminals[request.terminal_id]
    result, decision = judge_new_spend(request, voucher, terminal, context, _moment(request, now))
    if decision is None:
        return result, None
    if request.phase is RedemptionPhase.RESERVE:  # a post or void later in this batch may resolve it
        context.reservations[request.id] = StoredRedemption(
            request.id, voucher.id, voucher.programme_id, terminal.provider_id, terminal.id,
            int(request.phase), None, request.amount_tiyn, request.units, items_bytes(request),
            request.requested_at_ms * _MS, decision.effective_date, request.offline, request.request_hash,
            now,
        )  # fmt: skip
        context.deadlines[request.id] = now + decision.policy.reservation_timeout_s * 1_000_000_000
    return R.ok, Accepted(place, request, voucher, decision, None)


def _moment(request: RedemptionRequest, now: int) -> int:
    return request.requested_at_ms * _MS if request.offline else now


def _day(request: RedemptionRequest, now: int) -> dt.date:
    return business_date(_moment(request, now))
