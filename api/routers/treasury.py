"""The treasury officers' router for programmes: create one as a draft (with its paying authority and the
first version of its policy), list and read them, open one for issuing, close one (its funds go back to
the budget), read its policy versions and record a new one, read its positions (JSON or CSV), and run
the expiry sweep now.

Funding and allocation are in `api.routers.treasury_funding`, bulk issuance and officers' voucher steps
in `api.routers.treasury_issuance`, providers in `api.routers.treasury_providers`, settlement in
`api.routers.settlement` and `settlement_acts`.

Every route admits only `treasury_officer`; the officer who acts is the credential's name
(`Principal.name`), what the audit log records and the four-eyes rule compares. Every POST needs an
Idempotency-Key. Refusals leave through the one table in `api.problems`, with the domain's stable codes.
"""

import datetime as dt
import uuid
from typing import Annotated, Any, Final, Literal

import psycopg
from fastapi import APIRouter, Path, Query, Request, Response

from api.auth import Role, TreasuryOfficer, require_role
from api.cursors import LEDGER_TIMESTAMP_MAX
from api.dependencies import UnitOfWorkDep
from api.etags import conditional_response
from api.idempotency import Idempotent
from api.openapi_examples import (
    AUTHENTICATED,
    CURSOR_INVALID,
    IDEMPOTENT_POST,
    problem_examples,
    refusal_examples,
)
from api.pagination import Page, PageParams
from api.schemas.settlement import PROGRAMME
from api.schemas.treasury import (
    BudgetReturnView,
    PolicyVersionIn,
    PolicyVersionView,
    PositionsView,
    ProgrammeClosedView,
    ProgrammeIn,
    ProgrammeView,
    SweepView,
)
from api.settlement_responses import NOT_MODIFIED, OFFICER_INVALID, PROGRAMME_NOT_FOUND
from api.treasury_reads import policy_versions, programme_view, require_programme
from ledger.clock import datetime_to_timestamp, timestamp_to_datetime
from ledger.ids import new_id
from ledger.money import Asset
from ledger.vouchers.policy import Policy, parse_policy, policy_bytes
from ledger.vouchers.results import RegistryResult
from treasury.closing import close_programme
from treasury.errors import RefusalKind, Refused
from treasury.expiry import sweep
from treasury.positions import positions_csv, positions_document, programme_positions
from treasury.programmes import (
    ProgrammeDraft,
    create_programme,
    list_programmes,
    open_programme,
    record_programme_policy,
)

router = APIRouter(
    prefix="/v1/treasury",
    tags=["treasury"],
    dependencies=[require_role(Role.treasury_officer)],
    responses=problem_examples(AUTHENTICATED),
)
ProgrammeId = Annotated[uuid.UUID, Path(description="The programme's id", examples=[PROGRAMME])]
CSV_MEDIA_TYPE: Final = "text/csv; charset=utf-8"
# The last moment and business day the ledger's 64-bit nanosecond clock can name (in 2262).
LEDGER_TIME_LAST: Final = timestamp_to_datetime(LEDGER_TIMESTAMP_MAX)
AS_OF_LAST: Final = LEDGER_TIME_LAST.date() - dt.timedelta(days=2)
PROGRAMME_CLOSED: Final = refusal_examples(RefusalKind.CONFLICT, "programme_closed")
POLICY_INVALID: Final = refusal_examples(RefusalKind.INVALID, "policy_invalid")
DRAFT_REFUSALS: Final = refusal_examples(
    RefusalKind.INVALID,
    "code_invalid", "kbk_invalid", "text_invalid", "period_invalid", "ceiling_invalid", "threshold_invalid",
    "customer_bin_check_digit", "customer_iban_check_digits", "policy_invalid",
)  # fmt: skip


def parse_policy_document(document: dict[str, Any]) -> Policy:
    """The policy a JSON document describes, or 422 `policy_invalid` naming the field that is wrong."""
    try:
        policy = parse_policy(document)
        policy_bytes(policy)  # its canonical form must exist: NFC text, integers only
    except ValueError as error:
        raise Refused("policy_invalid", str(error)) from None
    return policy


def _ledger_time(moment: dt.datetime) -> int:
    """An aware datetime as ledger nanoseconds; 422 `valid_from_invalid` past what the ledger can stamp."""
    if moment > LEDGER_TIME_LAST:
        raise Refused("valid_from_invalid", f"a ledger time is at most {LEDGER_TIME_LAST.isoformat()}")
    return datetime_to_timestamp(moment)


def _draft(body: ProgrammeIn) -> ProgrammeDraft:
    return ProgrammeDraft(
        id=new_id(), code=body.code, name=body.name, kbk=body.kbk, region=body.region,
        period_start=body.period_start, period_end=body.period_end, asset=Asset[body.asset],
        budget_ceiling_tiyn=body.budget_ceiling_tiyn, approval_threshold_tiyn=body.approval_threshold_tiyn,
        vat_rate=body.vat_rate, budget_account_id=new_id(), fund_account_id=new_id(),
        customer=body.customer.to_domain(),
    )  # fmt: skip


@router.post(
    "/programmes",
    status_code=201,
    response_model=ProgrammeView,
    summary="Create a programme as a draft, with its paying authority and policy",
    responses=problem_examples(
        IDEMPOTENT_POST,
        OFFICER_INVALID,
        DRAFT_REFUSALS,
        refusal_examples(RefusalKind.CONFLICT, "programme_code_taken"),
    ),
)
def create(
    body: ProgrammeIn, officer: TreasuryOfficer, idempotency: Idempotent, unit_of_work: UnitOfWorkDep
) -> Response:
    """Its budget account and fund are opened in the ledger and its policy's first version registered, so
    its ids are fixed from now on. A draft may be funded; it issues nothing until it is opened. The code
    names it in acts and payment orders and is unique (409 `programme_code_taken`)."""
    policy = parse_policy_document(body.policy)
    draft = _draft(body)

    def work(connection: psycopg.Connection[Any]) -> Response:
        programme = create_programme(connection, draft, policy, officer.name)
        view = programme_view(connection, programme)
        location = f"{router.prefix}/programmes/{programme.id}"
        return idempotency.record(connection, 201, view, {"Location": location})

    return unit_of_work.run(work)


@router.get(
    "/programmes",
    response_model=Page[ProgrammeView],
    summary="List programmes by code",
    responses=problem_examples({400: [CURSOR_INVALID]}) | NOT_MODIFIED,
)
def list_all(page: PageParams, request: Request, unit_of_work: UnitOfWorkDep) -> Response:
    after = page.after("code")
    after_code = after if isinstance(after, str) else ""

    def read(connection: psycopg.Connection[Any]) -> list[ProgrammeView]:
        found = list_programmes(connection, after_code, page.fetch_limit)
        return [programme_view(connection, programme) for programme in found]

    views = unit_of_work.read(read)
    return conditional_response(request, page.of(views, lambda view: {"code": view.code}))


@router.get(
    "/programmes/{programme_id}",
    response_model=ProgrammeView,
    summary="Read one programme with its state and funding",
    responses=problem_examples(PROGRAMME_NOT_FOUND) | NOT_MODIFIED,
)
def read_one(programme_id: ProgrammeId, request: Request, unit_of_work: UnitOfWorkDep) -> Response:
    view = unit_of_work.read(lambda c: programme_view(c, require_programme(c, programme_id)))
    return conditional_response(request, view)


@router.post(
    "/programmes/{programme_id}/open",
    response_model=ProgrammeView,
    summary="Open a draft programme for issuing",
    responses=problem_examples(
        IDEMPOTENT_POST, PROGRAMME_NOT_FOUND, refusal_examples(RefusalKind.CONFLICT, "illegal_state_change")
    ),
)
def open_draft(
    programme_id: ProgrammeId, officer: TreasuryOfficer, idempotency: Idempotent, unit_of_work: UnitOfWorkDep
) -> Response:
    """From now on vouchers may be issued from it; the audit log names the officer. Opening an open
    programme changes nothing; a closed one never opens again (409 `illegal_state_change`)."""

    def work(connection: psycopg.Connection[Any]) -> Response:
        programme = open_programme(connection, programme_id, officer.name)
        return idempotency.record(connection, 200, programme_view(connection, programme))

    return unit_of_work.run(work)


@router.post(
    "/programmes/{programme_id}/close",
    response_model=ProgrammeClosedView,
    summary="Close a programme: no more issuing; its funds go back to the budget",
    responses=problem_examples(
        IDEMPOTENT_POST,
        PROGRAMME_NOT_FOUND,
        OFFICER_INVALID,
        refusal_examples(RefusalKind.CONFLICT, "illegal_state_change"),
    ),
)
def close(
    programme_id: ProgrammeId, officer: TreasuryOfficer, idempotency: Idempotent, unit_of_work: UnitOfWorkDep
) -> Response:
    """Waits for issuing batches in flight, then moves what the fund and its sub-funds hold to the budget
    account (value still reserved by offers comes back later, through the expiry sweep). Closing a closed
    programme again returns only what came back since. A draft is refused (409 `illegal_state_change`)."""

    def work(connection: psycopg.Connection[Any]) -> Response:
        returns = close_programme(connection, programme_id, officer.name)
        view = ProgrammeClosedView(
            programme=programme_view(connection, require_programme(connection, programme_id)),
            returned_tiyn=sum(r.amount_tiyn for r in returns),
            returns=[BudgetReturnView.of(r) for r in returns],
        )
        return idempotency.record(connection, 200, view)

    return unit_of_work.run(work)


@router.get(
    "/programmes/{programme_id}/policies",
    response_model=Page[PolicyVersionView],
    summary="The programme's policy versions, oldest first",
    responses=problem_examples(PROGRAMME_NOT_FOUND, {400: [CURSOR_INVALID]}) | NOT_MODIFIED,
)
def list_policies(
    programme_id: ProgrammeId, page: PageParams, request: Request, unit_of_work: UnitOfWorkDep
) -> Response:
    after = page.after("version")
    after_version = after if isinstance(after, int) else 0

    def read(connection: psycopg.Connection[Any]) -> list[PolicyVersionView]:
        require_programme(connection, programme_id)
        return policy_versions(connection, programme_id, after_version, page.fetch_limit)

    views = unit_of_work.read(read)
    return conditional_response(request, page.of(views, lambda view: {"version": view.version}))


SAME_POLICY: Final[dict[int | str, dict[str, Any]]] = {
    200: {"model": PolicyVersionView, "description": "The same document as the latest version"}
}
_POLICY_REFUSALS: Final = {
    RegistryResult.valid_from_in_the_past: RefusalKind.INVALID,
    RegistryResult.programme_not_found: RefusalKind.NOT_FOUND,
}


@router.post(
    "/programmes/{programme_id}/policies",
    status_code=201,
    response_model=PolicyVersionView,
    summary="Record a new version of the programme's policy",
    responses=SAME_POLICY
    | problem_examples(
        IDEMPOTENT_POST,
        PROGRAMME_NOT_FOUND,
        POLICY_INVALID,
        PROGRAMME_CLOSED,
        refusal_examples(RefusalKind.INVALID, "valid_from_in_the_past", "valid_from_invalid"),
    ),
)
def record_policy_version(
    programme_id: ProgrammeId, body: PolicyVersionIn, idempotency: Idempotent, unit_of_work: UnitOfWorkDep
) -> Response:
    """The whole document, in force from `valid_from` (now if omitted; never earlier: redemptions already
    judged keep their meaning). The same document as the latest version, with no date, answers that
    version (200)."""
    policy = parse_policy_document(body.policy)
    valid_from = _ledger_time(body.valid_from) if body.valid_from is not None else None

    def work(connection: psycopg.Connection[Any]) -> Response:
        outcome = record_programme_policy(connection, programme_id, policy, valid_from)
        if not outcome.ok:
            kind = _POLICY_REFUSALS.get(outcome.result, RefusalKind.CONFLICT)
            raise Refused(outcome.result.name, outcome.detail or outcome.result.name, kind)
        version = int(outcome.detail)
        [view] = policy_versions(connection, programme_id, version - 1, 1)
        return idempotency.record(connection, 201 if outcome.result is RegistryResult.ok else 200, view)

    return unit_of_work.run(work)


@router.get(
    "/programmes/{programme_id}/positions",
    response_model=PositionsView,
    summary="Where every tiyn of the programme is, and whether it reconciles",
    responses={
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "JSON, or CSV: a row per figure, then a row per check with its difference",
        }
    }
    | problem_examples(PROGRAMME_NOT_FOUND, refusal_examples(RefusalKind.INVALID, "as_of_invalid"))
    | NOT_MODIFIED,
)
def read_positions(
    programme_id: ProgrammeId,
    request: Request,
    unit_of_work: UnitOfWorkDep,
    as_of: Annotated[
        dt.date | None, Query(description="At the end of this business day (Asia/Almaty); default: now")
    ] = None,
    format: Annotated[
        Literal["json", "csv"] | None,
        Query(description="json or csv; without it, `Accept: text/csv` asks for CSV"),
    ] = None,
) -> Response:
    """Funded, allocated, issued, offered, redeemed, reserved, expired, returned, outstanding, unissued,
    receivable, settled and paid, every figure from the ledger, and three checks to the tiyn:
    funded = unissued + outstanding + redeemed + returned; issued = outstanding + redeemed + expired;
    redeemed = receivable + settled."""
    if as_of is not None and as_of > AS_OF_LAST:
        raise Refused("as_of_invalid", f"a day is at most {AS_OF_LAST.isoformat()}")
    positions = unit_of_work.read(lambda c: programme_positions(c, programme_id, as_of))
    wants_csv = format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))
    if wants_csv:
        headers = {"Cache-Control": "private, no-cache"}
        return Response(positions_csv(positions), media_type=CSV_MEDIA_TYPE, headers=headers)
    return conditional_response(request, PositionsView.model_validate(positions_document(positions)))


@router.post(
    "/sweeps",
    response_model=SweepView,
    summary="Run the expiry sweep now",
    responses=problem_examples(IDEMPOTENT_POST),
)
def run_sweep(idempotency: Idempotent, unit_of_work: UnitOfWorkDep) -> Response:
    """Offers whose consent window passed release their reservation; vouchers past their expiry and offers
    that lapsed are expired, what was left going back to their funds; closed programmes return what came
    back to the budget. It runs on a schedule too, and running it twice expires nothing twice."""
    summary = sweep(unit_of_work)
    view = SweepView(
        reservations_released=summary.reservations_released,
        expired=summary.expired,
        other=dict(summary.other),
        returned_to_budget_tiyn=summary.returned_to_budget_tiyn,
    )
    return idempotency.respond(200, view)
