"""The treasury officers' router for one act: read it and its documents, approve it (four eyes above the
programme's payout threshold), reject it with a reason, pay it, read its payout, record a payment the
bank returned and pay it again. Acts are named by number (АКТ-<programme>-<period>-<n>), payment orders
by theirs (ПП-<programme>-<n>).

Every route admits only `treasury_officer`; the officer is the credential's name (`Principal.name`). Above
the threshold the second approval must come from a different name: the same officer again is 403
`second_officer_required`. Every step that writes needs an Idempotency-Key, and the domain makes the
effects themselves happen once (an act is paid once, whoever presses the button and however often).
"""

import uuid
from typing import Annotated, Any, Final

import psycopg
from fastapi import APIRouter, Path, Request, Response

from api.auth import Role, TreasuryOfficer, require_role
from api.dependencies import UnitOfWorkDep
from api.etags import conditional_response
from api.idempotency import Idempotent
from api.openapi_examples import AUTHENTICATED, IDEMPOTENT_POST, problem_examples, refusal_examples
from api.schemas.settlement import ACT_NUMBER_CHARS_MAX, ActView, PayoutView, ReasonIn
from api.settlement_reads import act_by_number, payouts_of
from api.settlement_responses import (
    ACT_NOT_FOUND,
    DOCUMENT_NUMBER_PATTERN,
    NOT_MODIFIED,
    OFFICER_INVALID,
    REASON_REQUIRED,
    ActNumber,
    act_not_found,
    add_document_routes,
)
from treasury.errors import RefusalKind, Refused
from treasury.settlement import (
    approve_act,
    pay_act,
    record_payment_return,
    reject_act,
    repay_act,
)

router = APIRouter(
    prefix="/v1/treasury/settlement",
    tags=["settlement"],
    dependencies=[require_role(Role.treasury_officer)],
    responses=problem_examples(AUTHENTICATED),
)
OrderNumber = Annotated[
    str,
    Path(
        min_length=1,
        max_length=ACT_NUMBER_CHARS_MAX,
        pattern=DOCUMENT_NUMBER_PATTERN,
        description="The payment order's number",
        examples=["ПП-SM-2026-AST-12"],
    ),
]
PAYOUT_NOT_FOUND: Final = refusal_examples(RefusalKind.NOT_FOUND, "payout_not_found")
ACT_REJECTED_OR_APPROVED: Final = refusal_examples(
    RefusalKind.CONFLICT, "act_rejected", "act_approved_already"
)
PAYMENT_REFUSALS: Final = refusal_examples(
    RefusalKind.CONFLICT,
    "act_not_approved",
    "adjustment_not_paid",
    "provider_profile_missing",
    "iban_invalid",
)


def read_act(connection: psycopg.Connection[Any], number: str) -> ActView:
    view = act_by_number(connection, number)
    if view is None:
        raise act_not_found(number)
    return view


def read_payout(connection: psycopg.Connection[Any], act_id: uuid.UUID, number: str) -> PayoutView:
    payout = payouts_of(connection, [act_id]).get(act_id)
    if payout is None:
        raise Refused("payout_not_found", f"act {number} is not paid", RefusalKind.NOT_FOUND)
    return payout


@router.get(
    "/acts/{act_number}",
    response_model=ActView,
    summary="One act: state, totals, signature, approvals, payout",
    responses=problem_examples(ACT_NOT_FOUND) | NOT_MODIFIED,
)
def read_one_act(act_number: ActNumber, request: Request, unit_of_work: UnitOfWorkDep) -> Response:
    return conditional_response(request, unit_of_work.read(lambda c: read_act(c, act_number)))


add_document_routes(router, provider_scoped=False)


@router.post(
    "/acts/{act_number}/approve",
    response_model=ActView,
    summary="Approve a signed act (a second, different officer above the payout threshold)",
    responses=problem_examples(
        IDEMPOTENT_POST,
        ACT_NOT_FOUND,
        OFFICER_INVALID,
        ACT_REJECTED_OR_APPROVED,
        refusal_examples(RefusalKind.CONFLICT, "act_not_signed"),
        refusal_examples(RefusalKind.FORBIDDEN, "second_officer_required"),
    ),
)
def approve(
    act_number: ActNumber, officer: TreasuryOfficer, idempotency: Idempotent, unit_of_work: UnitOfWorkDep
) -> Response:
    """A regular act needs the provider's signature first (409 `act_not_signed`); an adjustment act does
    not. Above the programme's payout threshold the first approval leaves the act `approved_once` and a
    second officer must approve: the same officer again is 403 `second_officer_required`."""

    def work(connection: psycopg.Connection[Any]) -> Response:
        approve_act(connection, act_number, officer.name)
        return idempotency.record(connection, 200, read_act(connection, act_number))

    return unit_of_work.run(work)


@router.post(
    "/acts/{act_number}/reject",
    response_model=ActView,
    summary="Reject an act that is not approved yet, with a reason",
    responses=problem_examples(
        IDEMPOTENT_POST,
        ACT_NOT_FOUND,
        OFFICER_INVALID,
        REASON_REQUIRED,
        refusal_examples(RefusalKind.CONFLICT, "act_approved_already"),
    ),
)
def reject(
    act_number: ActNumber,
    body: ReasonIn,
    officer: TreasuryOfficer,
    idempotency: Idempotent,
    unit_of_work: UnitOfWorkDep,
) -> Response:
    """The act's redemptions become free: drawing up the period again issues a new act (a new number)
    after the corrections. An approved act is corrected by an adjustment act instead (409)."""

    def work(connection: psycopg.Connection[Any]) -> Response:
        reject_act(connection, act_number, officer.name, body.reason)
        return idempotency.record(connection, 200, read_act(connection, act_number))

    return unit_of_work.run(work)


@router.post(
    "/acts/{act_number}/pay",
    response_model=PayoutView,
    summary="Pay an approved act: receivable → clearing → the provider's bank account",
    responses=problem_examples(IDEMPOTENT_POST, ACT_NOT_FOUND, OFFICER_INVALID, PAYMENT_REFUSALS),
)
def pay(
    act_number: ActNumber, officer: TreasuryOfficer, idempotency: Idempotent, unit_of_work: UnitOfWorkDep
) -> Response:
    """With a payment order (number, date, amount, КБК, purpose) to the provider's IBAN, in the programme's
    asset, less what approved adjustment acts took back (set off). An act is paid once: paying it again,
    with any Idempotency-Key, answers the same payout."""

    def work(connection: psycopg.Connection[Any]) -> Response:
        pay_act(connection, act_number, officer.name)
        act = read_act(connection, act_number)
        return idempotency.record(connection, 200, read_payout(connection, act.id, act_number))

    return unit_of_work.run(work)


@router.get(
    "/acts/{act_number}/payout",
    response_model=PayoutView,
    summary="An act's payout and its payment orders",
    responses=problem_examples(ACT_NOT_FOUND, PAYOUT_NOT_FOUND) | NOT_MODIFIED,
)
def read_act_payout(act_number: ActNumber, request: Request, unit_of_work: UnitOfWorkDep) -> Response:
    def read(connection: psycopg.Connection[Any]) -> PayoutView:
        return read_payout(connection, read_act(connection, act_number).id, act_number)

    return conditional_response(request, unit_of_work.read(read))


@router.post(
    "/acts/{act_number}/repay",
    response_model=PayoutView,
    summary="Pay a returned payment again, to the provider's corrected IBAN",
    responses=problem_examples(
        IDEMPOTENT_POST,
        ACT_NOT_FOUND,
        OFFICER_INVALID,
        refusal_examples(
            RefusalKind.CONFLICT,
            "act_not_paid",
            "payout_without_order",
            "payment_not_returned",
            "iban_unchanged",
            "provider_profile_missing",
            "iban_invalid",
        ),
    ),
)
def repay(
    act_number: ActNumber, officer: TreasuryOfficer, idempotency: Idempotent, unit_of_work: UnitOfWorkDep
) -> Response:
    """The next payment order, once the last one came back and the provider's IBAN was corrected
    (the same IBAN again is 409 `iban_unchanged`)."""

    def work(connection: psycopg.Connection[Any]) -> Response:
        repay_act(connection, act_number, officer.name)
        act = read_act(connection, act_number)
        return idempotency.record(connection, 200, read_payout(connection, act.id, act_number))

    return unit_of_work.run(work)


@router.post(
    "/payment-orders/{order_number}/return",
    response_model=PayoutView,
    summary="Record a payment the bank returned (its money goes back to clearing)",
    responses=problem_examples(
        IDEMPOTENT_POST,
        OFFICER_INVALID,
        refusal_examples(RefusalKind.NOT_FOUND, "payment_order_not_found"),
        REASON_REQUIRED,
    ),
)
def record_return(
    order_number: OrderNumber,
    body: ReasonIn,
    officer: TreasuryOfficer,
    idempotency: Idempotent,
    unit_of_work: UnitOfWorkDep,
) -> Response:
    """The act stays paid while its money waits in clearing; reconciliation lists it until it is paid
    again (POST …/acts/{act_number}/repay). Recording the same return again changes nothing."""

    def work(connection: psycopg.Connection[Any]) -> Response:
        payout = record_payment_return(connection, order_number, body.reason, officer.name)
        act = read_act(connection, payout.act_number)
        return idempotency.record(connection, 200, read_payout(connection, act.id, act.number))

    return unit_of_work.run(work)
