"""The treasury officers' router for money into and within a programme: funding orders (maker-checker)
and regional sub-funds with allocations to them and money taken back.

Funding: an order at or below the programme's approval threshold executes at once; above it, it waits
for a second officer. The maker approving their own order is 403 `four_eyes` (the database's CHECK stands
behind it); funding past the ceiling is 409 `ceiling_exceeded`. An order's id — and an allocation's — is
derived from the credential and its Idempotency-Key, so a retry is the same order even after the stored
answer has expired.

Every route admits only `treasury_officer`; the officer is the credential's name (`Principal.name`).
"""

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
from api.routers.treasury import PROGRAMME_CLOSED, ProgrammeId
from api.schemas.treasury_funding import (
    AllocationIn,
    AllocationView,
    FundingOrderIn,
    FundingOrderView,
    FundingRejectionIn,
    SubFundIn,
    SubFundView,
)
from api.settlement_responses import NOT_MODIFIED, OFFICER_INVALID, PROGRAMME_NOT_FOUND
from api.treasury_reads import require_programme, sub_fund_views
from ledger.ids import derived_id
from treasury.allocation import (
    AllocationDirection,
    find_sub_fund,
    list_sub_funds,
    move_between_funds,
    open_sub_fund,
)
from treasury.errors import RefusalKind, Refused
from treasury.funding import (
    FundingOrder,
    FundingState,
    approve_funding_order,
    create_funding_order,
    find_funding_order,
    list_funding_orders,
    reject_funding_order,
)

router = APIRouter(
    prefix="/v1/treasury",
    tags=["treasury"],
    dependencies=[require_role(Role.treasury_officer)],
    responses=problem_examples(AUTHENTICATED),
)
# Ids the API derives: an order or allocation from (credential, Idempotency-Key); a sub-fund's account from
# (programme, region), so opening a region's sub-fund again finds the same one.
FUNDING_ORDER_NAMESPACE: Final = uuid.UUID("9a1f3c5e-7b2d-4e6f-8a0c-1d3e5f7a9b2c")
ALLOCATION_NAMESPACE: Final = uuid.UUID("2c4e6a8b-0d1f-4a3c-9e5b-7d9f1b3d5e7a")
SUB_FUND_NAMESPACE: Final = uuid.UUID("6e8a0c2d-4f6b-4d8e-8a1c-3e5f7b9d1f3a")
OrderId = Annotated[uuid.UUID, Path(description="The funding order's id")]
SubFundAccountId = Annotated[uuid.UUID, Path(description="The sub-fund's ledger account id")]
ORDER_NOT_FOUND: Final = refusal_examples(RefusalKind.NOT_FOUND, "order_not_found")
NOT_AWAITING: Final = refusal_examples(RefusalKind.CONFLICT, "order_not_awaiting_approval")
SUB_FUND_NOT_FOUND: Final = refusal_examples(RefusalKind.NOT_FOUND, "sub_fund_not_found")


@router.post(
    "/programmes/{programme_id}/funding-orders",
    status_code=201,
    response_model=FundingOrderView,
    summary="Make a funding order: budget → programme fund",
    responses=problem_examples(
        IDEMPOTENT_POST,
        PROGRAMME_NOT_FOUND,
        OFFICER_INVALID,
        refusal_examples(RefusalKind.CONFLICT, "ceiling_exceeded", "programme_closed", "order_exists"),
    ),
)
def create_order(
    programme_id: ProgrammeId,
    body: FundingOrderIn,
    officer: TreasuryOfficer,
    idempotency: Idempotent,
    unit_of_work: UnitOfWorkDep,
) -> Response:
    """At or below the programme's approval threshold the money moves now (`executed`); above it the order
    waits for a second, different officer (`awaiting_approval`). Funding never passes the ceiling
    (409 `ceiling_exceeded`, nothing moves). Draft and open programmes may be funded."""
    order_id = derived_id(FUNDING_ORDER_NAMESPACE, officer.credential_id, idempotency.key)

    def work(connection: psycopg.Connection[Any]) -> Response:
        order = create_funding_order(connection, order_id, programme_id, body.amount_tiyn, officer.name)
        location = f"{router.prefix}/funding-orders/{order.id}"
        return idempotency.record(connection, 201, FundingOrderView.of(order), {"Location": location})

    return unit_of_work.run(work)


@router.get(
    "/programmes/{programme_id}/funding-orders",
    response_model=Page[FundingOrderView],
    summary="The programme's funding orders, oldest first",
    responses=problem_examples(PROGRAMME_NOT_FOUND, {400: [CURSOR_INVALID]}) | NOT_MODIFIED,
)
def list_orders(
    programme_id: ProgrammeId,
    page: PageParams,
    request: Request,
    unit_of_work: UnitOfWorkDep,
    state: Annotated[
        Literal["awaiting_approval", "executed", "rejected"] | None,
        Query(description="Only orders in this state"),
    ] = None,
) -> Response:
    """`state=awaiting_approval` is what a checker has to look at."""
    after = page.after("created_at")
    after_created_at = after if isinstance(after, int) and 0 <= after <= LEDGER_TIMESTAMP_MAX else 0
    wanted = FundingState[state.upper()] if state is not None else None

    def read(connection: psycopg.Connection[Any]) -> list[FundingOrder]:
        require_programme(connection, programme_id)
        return list_funding_orders(connection, programme_id, wanted, after_created_at, page.fetch_limit)

    orders = unit_of_work.read(read)
    created_at = {order.id: order.created_at for order in orders}
    views = [FundingOrderView.of(order) for order in orders]
    return conditional_response(request, page.of(views, lambda view: {"created_at": created_at[view.id]}))


def _order(connection: psycopg.Connection[Any], order_id: uuid.UUID) -> FundingOrderView:
    order = find_funding_order(connection, order_id)
    if order is None:
        raise Refused("order_not_found", str(order_id), RefusalKind.NOT_FOUND)
    return FundingOrderView.of(order)


@router.get(
    "/funding-orders/{order_id}",
    response_model=FundingOrderView,
    summary="Read one funding order",
    responses=problem_examples(ORDER_NOT_FOUND) | NOT_MODIFIED,
)
def read_order(order_id: OrderId, request: Request, unit_of_work: UnitOfWorkDep) -> Response:
    return conditional_response(request, unit_of_work.read(lambda c: _order(c, order_id)))


@router.post(
    "/funding-orders/{order_id}/approve",
    response_model=FundingOrderView,
    summary="Approve a funding order someone else made; it executes now",
    responses=problem_examples(
        IDEMPOTENT_POST,
        ORDER_NOT_FOUND,
        OFFICER_INVALID,
        NOT_AWAITING,
        refusal_examples(RefusalKind.FORBIDDEN, "four_eyes"),
        refusal_examples(RefusalKind.CONFLICT, "ceiling_exceeded", "programme_closed"),
    ),
)
def approve(
    order_id: OrderId, officer: TreasuryOfficer, idempotency: Idempotent, unit_of_work: UnitOfWorkDep
) -> Response:
    """The second officer must be another person: the maker is 403 `four_eyes`. The ceiling is checked
    again as the money moves, so concurrent approvals never fund past it together."""

    def work(connection: psycopg.Connection[Any]) -> Response:
        order = approve_funding_order(connection, order_id, officer.name)
        return idempotency.record(connection, 200, FundingOrderView.of(order))

    return unit_of_work.run(work)


@router.post(
    "/funding-orders/{order_id}/reject",
    response_model=FundingOrderView,
    summary="Reject a funding order awaiting approval, saying why",
    responses=problem_examples(
        IDEMPOTENT_POST, ORDER_NOT_FOUND, OFFICER_INVALID, NOT_AWAITING,
        refusal_examples(RefusalKind.INVALID, "reason_invalid"),
    ),
)  # fmt: skip
def reject(
    order_id: OrderId,
    body: FundingRejectionIn,
    officer: TreasuryOfficer,
    idempotency: Idempotent,
    unit_of_work: UnitOfWorkDep,
) -> Response:
    """Any officer, the maker included, may reject a waiting order; no money moves."""

    def work(connection: psycopg.Connection[Any]) -> Response:
        order = reject_funding_order(connection, order_id, officer.name, body.reason)
        return idempotency.record(connection, 200, FundingOrderView.of(order))

    return unit_of_work.run(work)


@router.post(
    "/programmes/{programme_id}/sub-funds",
    status_code=201,
    response_model=SubFundView,
    summary="Open a region's sub-fund of a national programme",
    responses=problem_examples(
        IDEMPOTENT_POST,
        PROGRAMME_NOT_FOUND,
        OFFICER_INVALID,
        PROGRAMME_CLOSED,
        refusal_examples(RefusalKind.INVALID, "region_invalid"),
        refusal_examples(RefusalKind.CONFLICT, "programme_not_national", "region_has_sub_fund"),
    ),
)
def open_region(
    programme_id: ProgrammeId,
    body: SubFundIn,
    officer: TreasuryOfficer,
    idempotency: Idempotent,
    unit_of_work: UnitOfWorkDep,
) -> Response:
    """One per region; opening the same region's again answers the same sub-fund. Vouchers may then be
    issued from it (an eligibility list's `region` column), and their leftovers return to it."""
    account_id = derived_id(SUB_FUND_NAMESPACE, programme_id, body.region)

    def work(connection: psycopg.Connection[Any]) -> Response:
        sub_fund = open_sub_fund(connection, programme_id, account_id, body.region, officer.name)
        [view] = sub_fund_views(connection, [sub_fund])
        return idempotency.record(connection, 201, view)

    return unit_of_work.run(work)


@router.get(
    "/programmes/{programme_id}/sub-funds",
    response_model=Page[SubFundView],
    summary="The programme's regional sub-funds with their balances",
    responses=problem_examples(PROGRAMME_NOT_FOUND, {400: [CURSOR_INVALID]}) | NOT_MODIFIED,
)
def list_regions(
    programme_id: ProgrammeId, page: PageParams, request: Request, unit_of_work: UnitOfWorkDep
) -> Response:
    """By region name."""
    after = page.after("region")

    def read(connection: psycopg.Connection[Any]) -> list[SubFundView]:
        require_programme(connection, programme_id)
        found = [
            s for s in list_sub_funds(connection, programme_id) if after is None or s.region > f"{after}"
        ]
        return sub_fund_views(connection, found[: page.fetch_limit])

    views = unit_of_work.read(read)
    return conditional_response(request, page.of(views, lambda view: {"region": view.region}))


@router.post(
    "/programmes/{programme_id}/sub-funds/{account_id}/allocations",
    status_code=201,
    response_model=AllocationView,
    summary="Allocate money to a sub-fund, or take it back",
    responses=problem_examples(
        IDEMPOTENT_POST,
        SUB_FUND_NOT_FOUND,
        OFFICER_INVALID,
        PROGRAMME_CLOSED,
        refusal_examples(RefusalKind.CONFLICT, "insufficient_funds", "allocation_exists"),
    ),
)
def allocate(
    programme_id: ProgrammeId,
    account_id: SubFundAccountId,
    body: AllocationIn,
    officer: TreasuryOfficer,
    idempotency: Idempotent,
    unit_of_work: UnitOfWorkDep,
) -> Response:
    """`allocate` moves programme fund → sub-fund, `take_back` sub-fund → programme fund; neither takes
    more than the paying account holds less what pending offers reserve (409 `insufficient_funds`)."""
    allocation_id = derived_id(ALLOCATION_NAMESPACE, officer.credential_id, idempotency.key)
    direction = AllocationDirection[body.direction.upper()]

    def work(connection: psycopg.Connection[Any]) -> Response:
        sub_fund = find_sub_fund(connection, account_id)
        if sub_fund is None or sub_fund.programme_id != programme_id:
            raise Refused("sub_fund_not_found", str(account_id), RefusalKind.NOT_FOUND)
        allocation = move_between_funds(
            connection, allocation_id, account_id, direction, body.amount_tiyn, officer.name
        )
        return idempotency.record(connection, 201, AllocationView.of(allocation))

    return unit_of_work.run(work)
