"""Redeeming vouchers: a provider's terminal sends signed requests, the ledger answers with a result per
request and a receipt it signs.

* ``POST /v1/providers/{provider_id}/redemptions``: one request, signed alone (purpose
  `amiyan.kz/redemption-request/v1`);
* ``POST /v1/providers/{provider_id}/redemption-batches``: many requests of one terminal, signed once
  (purpose `amiyan.kz/redemption-batch/v1`), e.g. an offline terminal uploading its day.

Two-phase redemption (pharmacies) is the same routes with `phase` reserve, then post or void naming the
reservation. The transaction succeeds or fails as a whole: 200 means every request has its result, and a
refused redemption (`insufficient_balance`, `voucher_suspended`, ...) is a result, not an HTTP error.

No Idempotency-Key here: each request's `id` is its idempotency key, forever. A retry with the same id and
the same bytes answers `exists` with the redemption as first recorded; the same id with other bytes
answers `exists_with_different_request`; an id first refused stays refused (`id_already_failed`).
"""

import uuid
from collections import Counter

import structlog
from fastapi import APIRouter, Request

from api.auth import require_own_provider
from api.edge import BodyLimit, body_limit
from api.metrics import Metrics, MetricsDep
from api.openapi_examples import AUTHENTICATED, INVALID_REQUEST, JSON_BODY, problem_examples
from api.redemption_envelopes import (
    ENVELOPE_INVALID,
    TerminalOwners,
    batch_submission,
    redeem_coalesced,
    redeem_for_provider,
    single_submission,
)
from api.routers.providers import NOT_OURS
from api.schemas.redemptions import RedemptionAnswer, RedemptionBatchIn, SingleRedemptionIn
from api.voucher_dependencies import VoucherLedgerDep
from ledger.vouchers.coalescer import RedemptionCoalescer
from ledger.vouchers.receipts import RedemptionOutcome

router = APIRouter(
    prefix="/v1/providers/{provider_id}",
    tags=["providers"],
    dependencies=[require_own_provider()],  # the provider itself, and no one else
    responses=problem_examples(
        AUTHENTICATED, JSON_BODY, NOT_OURS, {422: [INVALID_REQUEST, ENVELOPE_INVALID]}
    ),
)
log = structlog.get_logger("api.redemptions")


def _count(metrics: Metrics, outcomes: list[RedemptionOutcome]) -> None:
    counter = metrics.counter("amiyan_redemptions", "Redemption requests answered, by result", ["result"])
    for result, count in Counter(outcome.result.name for outcome in outcomes).items():
        counter.labels(result).inc(count)


@router.post(
    "/redemptions",
    response_model=RedemptionAnswer,
    summary="Redeem: one signed request (single, reserve, post or void)",
)
async def redeem(provider_id: uuid.UUID, envelope: SingleRedemptionIn, request: Request) -> RedemptionAnswer:
    """The terminal must be this provider's (else 404 `terminal_not_found`). The answer's `receipt` is the
    ledger's signed account of the result, to keep as proof."""
    # The busiest route reads its collaborators from the app's state rather than as dependencies: FastAPI
    # resolves each dependency on every request, at a cost that showed in the HTTP benchmark.
    state = request.app.state
    owners: TerminalOwners = state.terminal_owners
    coalescer: RedemptionCoalescer = state.redemption_coalescer
    metrics: Metrics = state.metrics
    outcomes, receipt = await redeem_coalesced(owners, coalescer, provider_id, single_submission(envelope))
    _count(metrics, outcomes)
    return RedemptionAnswer.of(outcomes, receipt)


@router.post(
    "/redemption-batches",
    response_model=RedemptionAnswer,
    summary="Redeem: a signed batch of one terminal's requests",
    openapi_extra=body_limit(BodyLimit.bulk_upload),
)
def redeem_batch(
    provider_id: uuid.UUID,
    envelope: RedemptionBatchIn,
    vouchers: VoucherLedgerDep,
    metrics: MetricsDep,
) -> RedemptionAnswer:
    """Up to 8189 requests in one transaction, judged in order (two spends of one voucher see each other);
    one result each, in the order sent, and one receipt over all of them."""
    submission = batch_submission(envelope)
    outcomes, receipt = redeem_for_provider(vouchers, provider_id, submission)
    _count(metrics, outcomes)
    log.info("redemption_batch", requests=len(outcomes), accepted=sum(o.accepted for o in outcomes))
    return RedemptionAnswer.of(outcomes, receipt)
