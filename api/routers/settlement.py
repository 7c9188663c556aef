"""The treasury officers' settlement router, programme by programme: settlement terms, periods (closing the
next one), drawing up a closed period's acts and invoices, a period's acts, taking back redemptions of
closed periods, and the period's reconciliation (JSON or CSV). One act's own steps — its documents,
approval, rejection, payment — are in `api.routers.settlement_acts`; the provider's side is in
`api.routers.provider_settlement`.

Every route admits only `treasury_officer`. The officer who acts is the credential's name
(`Principal.name`): it is what closings, approvals and payouts record, and what the four-eyes rule
compares. Refusals leave through the one table in `api.problems`, with the domain's stable codes.
"""

import dataclasses
import datetime as dt
import uuid
from typing import Annotated, Any, Final, Literal

import psycopg
from fastapi import APIRouter, Body, Path, Query, Request, Response

from api.auth import Role, TreasuryOfficer, require_role
from api.cursors import cursor_timestamp_id
from api.dependencies import UnitOfWorkDep
from api.etags import conditional_response
from api.idempotency import Idempotent
from api.openapi_examples import (
    AUTHENTICATED,
    CURSOR_INVALID,
    IDEMPOTENT_POST,
    JSON_BODY,
    problem_examples,
    refusal_examples,
)
from api.pagination import Page, PageParams
from api.problems import Problem
from api.schemas.settlement import (
    PROGRAMME,
    ActView,
    ClosedPeriodView,
    ClosePeriodIn,
    DisallowancesView,
    DisallowanceView,
    DisallowIn,
    DrawUpView,
    IssuedActView,
    PeriodView,
    ProviderActsView,
    RefusalView,
    SettlementTermsIn,
    SettlementTermsView,
)
from api.schemas.settlement_reconciliation import ReconciliationView
from api.settlement_reads import closed_period_view, period_acts
from api.settlement_responses import NOT_MODIFIED, OFFICER_INVALID, PROGRAMME_NOT_FOUND, REASON_REQUIRED
from treasury.errors import RefusalKind
from treasury.programmes import Programme
from treasury.settlement import (
    ActKind,
    ProviderOutcome,
    SettlementCycle,
    close_period,
    closed_periods,
    differences_csv,
    disallow_redemptions,
    issue_period_acts,
    next_period,
    providers_csv,
    reconcile_period,
    set_settlement_terms,
    settlement_terms,
)
from treasury.settlement.periods import find_closed_period, require_programme
from treasury.settlement.reconciliation_formats import reconciliation_document

router = APIRouter(
    prefix="/v1/treasury/programmes/{programme_id}/settlement",
    tags=["settlement"],
    dependencies=[require_role(Role.treasury_officer)],
    responses=problem_examples(AUTHENTICATED, PROGRAMME_NOT_FOUND),
)
ProgrammeId = Annotated[uuid.UUID, Path(description="The programme's id", examples=[PROGRAMME])]
PeriodStart = Annotated[dt.date, Path(description="The period's first day", examples=["2026-10-01"])]
PERIOD_NOT_FOUND: Final = ("period_not_found", "No closed period starts that day")
PERIOD_NOT_CLOSED: Final = refusal_examples(RefusalKind.CONFLICT, "period_not_closed")
CSV_MEDIA_TYPE: Final = "text/csv; charset=utf-8"


def _terms_view(connection: psycopg.Connection[Any], programme: Programme) -> SettlementTermsView:
    terms = settlement_terms(connection, programme)
    period = next_period(connection, programme)
    return SettlementTermsView(
        programme_id=programme.id,
        cycle=terms.cycle.value,
        payout_threshold_tiyn=terms.payout_threshold_tiyn,
        stored=terms.stored,
        next_period=PeriodView(start=period.start, end=period.end, label=period.label),
    )


@router.get(
    "/terms",
    response_model=SettlementTermsView,
    summary="The programme's settlement terms and the next period to close",
    responses=NOT_MODIFIED,
)
def read_terms(programme_id: ProgrammeId, request: Request, unit_of_work: UnitOfWorkDep) -> Response:
    view = unit_of_work.read(lambda c: _terms_view(c, require_programme(c, programme_id)))
    return conditional_response(request, view)


@router.put(
    "/terms",
    response_model=SettlementTermsView,
    summary="Set the programme's settlement terms (once, before its first period closes)",
    responses=problem_examples(
        JSON_BODY,
        OFFICER_INVALID,
        refusal_examples(RefusalKind.INVALID, "threshold_invalid"),
        refusal_examples(RefusalKind.CONFLICT, "terms_fixed"),
    ),
)
def set_terms(
    programme_id: ProgrammeId, body: SettlementTermsIn, officer: TreasuryOfficer, unit_of_work: UnitOfWorkDep
) -> SettlementTermsView:
    """The period length (month, week or day) and the act total above which a second, different officer
    must approve. Setting the same terms again changes nothing; other terms once set are 409
    `terms_fixed`."""

    def work(connection: psycopg.Connection[Any]) -> SettlementTermsView:
        cycle = SettlementCycle(body.cycle)
        set_settlement_terms(connection, programme_id, cycle, body.payout_threshold_tiyn, officer.name)
        return _terms_view(connection, require_programme(connection, programme_id))

    return unit_of_work.run(work)


@router.get(
    "/periods",
    response_model=Page[ClosedPeriodView],
    summary="The programme's closed periods, oldest first",
    responses=problem_examples({400: [CURSOR_INVALID]}) | NOT_MODIFIED,
)
def list_periods(
    programme_id: ProgrammeId, page: PageParams, request: Request, unit_of_work: UnitOfWorkDep
) -> Response:
    after = page.after("after")
    try:
        after_day = dt.date.fromisoformat(after) if isinstance(after, str) else None
    except ValueError:
        raise Problem(400, *CURSOR_INVALID, "start without one") from None
    closed = unit_of_work.read(lambda c: closed_periods(c, require_programme(c, programme_id)))
    views = [closed_period_view(p) for p in closed if after_day is None or p.period.start > after_day]
    return conditional_response(
        request, page.of(views[: page.fetch_limit], lambda view: {"after": view.start.isoformat()})
    )


@router.post(
    "/periods/close",
    response_model=ClosedPeriodView,
    summary="Close the programme's next settlement period",
    responses=problem_examples(
        IDEMPOTENT_POST,
        OFFICER_INVALID,
        refusal_examples(RefusalKind.CONFLICT, "programme_draft", "period_out_of_order", "period_not_ended"),
    ),
)
def close_next_period(
    programme_id: ProgrammeId,
    officer: TreasuryOfficer,
    idempotency: Idempotent,
    unit_of_work: UnitOfWorkDep,
    body: Annotated[ClosePeriodIn | None, Body()] = None,
) -> Response:
    """Periods close in order, once they have ended. From then on no redemption or reversal may be dated in
    the period, and its acts may be drawn up. With `period_start`, only that period is closed (the next
    one, else 409 `period_out_of_order`; one closed already is answered again). Needs an Idempotency-Key:
    a retry does not close a second period."""
    start = body.period_start if body is not None else None

    def work(connection: psycopg.Connection[Any]) -> Response:
        closed = close_period(connection, programme_id, officer.name, start)
        return idempotency.record(connection, 200, closed_period_view(closed))

    return unit_of_work.run(work)


@router.get(
    "/periods/{period_start}",
    response_model=ClosedPeriodView,
    summary="One closed period",
    responses=problem_examples({404: [PERIOD_NOT_FOUND]}) | NOT_MODIFIED,
)
def read_period(
    programme_id: ProgrammeId, period_start: PeriodStart, request: Request, unit_of_work: UnitOfWorkDep
) -> Response:
    closed = unit_of_work.read(
        lambda c: find_closed_period(c, require_programme(c, programme_id), period_start)
    )
    if closed is None:
        raise Problem(404, *PERIOD_NOT_FOUND, period_start.isoformat())
    return conditional_response(request, closed_period_view(closed))


def _outcome_view(outcome: ProviderOutcome) -> ProviderActsView:
    refusal = RefusalView(code=outcome.refusal_code, message=outcome.refusal_message)
    acts = [
        IssuedActView(
            number=act.number,
            invoice_number=act.invoice_number,
            provider_id=act.provider_id,
            kind="regular" if act.kind is ActKind.REGULAR else "adjustment",
            total_tiyn=act.total_tiyn,
            corrects=act.corrects,
            sha256=act.sha256.hex(),
        )
        for act in outcome.acts
    ]
    return ProviderActsView(
        provider_id=outcome.provider_id, acts=acts, refusal=refusal if outcome.refusal_code else None
    )


@router.post(
    "/periods/{period_start}/acts",
    response_model=DrawUpView,
    summary="Draw up the acts and invoices of a closed period, provider by provider",
    responses=problem_examples(IDEMPOTENT_POST, OFFICER_INVALID, PERIOD_NOT_CLOSED),
)
def draw_up_acts(
    programme_id: ProgrammeId,
    period_start: PeriodStart,
    officer: TreasuryOfficer,
    idempotency: Idempotent,
    unit_of_work: UnitOfWorkDep,
) -> Response:
    """Each provider with unsettled redemptions gets a regular act, and an adjustment act for each approved
    act whose redemptions were taken back since; one transaction per provider. A provider that cannot be
    settled (no bank details on file, ...) is listed with its refusal and does not hold up the others.
    Safe to run again: only what is still unsettled is drawn up (this is how a rejected act is
    regenerated, with a new number)."""
    outcomes = issue_period_acts(unit_of_work, programme_id, period_start, officer.name)
    views = [_outcome_view(outcome) for outcome in outcomes]
    issued = sum(len(view.acts) for view in views)
    return idempotency.respond(
        200,
        DrawUpView(programme_id=programme_id, period_start=period_start, acts_issued=issued, providers=views),
    )


@router.get(
    "/periods/{period_start}/acts",
    response_model=Page[ActView],
    summary="A period's acts: state, totals, signature, approvals and payout",
    responses=problem_examples({400: [CURSOR_INVALID]}) | NOT_MODIFIED,
)
def list_period_acts(
    programme_id: ProgrammeId,
    period_start: PeriodStart,
    page: PageParams,
    request: Request,
    unit_of_work: UnitOfWorkDep,
) -> Response:
    """In the order they were issued, rejected ones included (with the rejection)."""
    cursor = cursor_timestamp_id(page.after("ts"), page.after("id"))

    def read(connection: psycopg.Connection[Any]) -> list[tuple[ActView, int]]:
        require_programme(connection, programme_id)
        return period_acts(connection, programme_id, period_start, cursor, page.fetch_limit)

    rows = unit_of_work.read(read)
    timestamps = {view.id: timestamp for view, timestamp in rows}
    listed = page.of([view for view, _ in rows], lambda v: {"ts": timestamps[v.id], "id": str(v.id)})
    return conditional_response(request, listed)


@router.get(
    "/periods/{period_start}/reconciliation",
    response_model=ReconciliationView,
    summary="A closed period's reconciliation: redemptions = acts = invoices = payouts (+ pending)",
    responses={
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "JSON, or CSV (one row per provider, or per difference)",
        }
    }
    | problem_examples(PERIOD_NOT_CLOSED)
    | NOT_MODIFIED,
)
def read_reconciliation(
    programme_id: ProgrammeId,
    period_start: PeriodStart,
    request: Request,
    unit_of_work: UnitOfWorkDep,
    format: Annotated[
        Literal["json", "csv"] | None,
        Query(description="json or csv; without it, `Accept: text/csv` asks for CSV"),
    ] = None,
    table: Annotated[
        Literal["providers", "differences"], Query(description="Which CSV: a row per provider or difference")
    ] = "providers",
) -> Response:
    """Every difference is listed with its kind, what it refers to and its amount; `reconciled` when there
    is none. CSV columns are fixed and named in the first row."""
    report = unit_of_work.read(lambda c: reconcile_period(c, programme_id, period_start))
    wants_csv = format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))
    if not wants_csv:
        return conditional_response(request, reconciliation_document(report))
    text = providers_csv(report) if table == "providers" else differences_csv(report)
    return Response(text, media_type=CSV_MEDIA_TYPE, headers={"Cache-Control": "private, no-cache"})


@router.post(
    "/disallowances",
    response_model=DisallowancesView,
    summary="Take back redemptions of closed periods",
    responses=problem_examples(
        IDEMPOTENT_POST,
        OFFICER_INVALID,
        REASON_REQUIRED,
        refusal_examples(RefusalKind.NOT_FOUND, "redemption_not_found"),
        refusal_examples(RefusalKind.INVALID, "redemption_not_settled", "redemptions_invalid"),
        refusal_examples(RefusalKind.CONFLICT, "redemption_reversed", "period_open"),
    ),
)
def disallow(
    programme_id: ProgrammeId,
    body: DisallowIn,
    officer: TreasuryOfficer,
    idempotency: Idempotent,
    unit_of_work: UnitOfWorkDep,
) -> Response:
    """All or none: each amount moves from the provider's receivable back to the voucher's fund, dated
    today. A redemption on no approved act is simply left out of the next act; one an approved act carries
    is corrected by an adjustment act at the next draw-up and set off against the provider's next payout.
    A redemption of an open period is reversed in the ledger instead (409 `period_open`)."""

    def work(connection: psycopg.Connection[Any]) -> Response:
        done = disallow_redemptions(connection, programme_id, body.redemption_ids, body.reason, officer.name)
        items = [DisallowanceView.model_validate(dataclasses.asdict(d)) for d in done]
        return idempotency.record(connection, 200, DisallowancesView(programme_id=programme_id, items=items))

    return unit_of_work.run(work)
