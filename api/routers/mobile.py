"""The eGov Mobile backend's router: a citizen's offers and vouchers with balances and history, their
answer to an offer and activation, and what they show at the counter (QR code, reference code).

Every route admits only the `mobile_backend` role and is about the citizen whose IIN the backend presents
in ``X-Citizen-IIN`` (`api.citizens`): a voucher of anyone else is 404, as if it did not exist. Every read
is recorded in the audit log (`citizen_data_read`) in the reading transaction. Offers are vouchers in
state `offered`; the list holds both.
"""

import dataclasses
import io
import uuid
from collections.abc import Callable
from typing import Any, Final

import psycopg
import segno
from fastapi import APIRouter, Request, Response

from api.auth import Role, require_role
from api.citizens import CITIZEN_IIN_INVALID, CITIZEN_IIN_MISSING, Citizen, CitizenDep, log_citizen_read
from api.cursors import cursor_id, cursor_timestamp
from api.dependencies import UnitOfWorkDep
from api.etags import conditional_response
from api.idempotency import Idempotent
from api.openapi_examples import (
    AUTHENTICATED,
    CURSOR_INVALID,
    IDEMPOTENT_POST,
    INVALID_REQUEST,
    problem_examples,
)
from api.pagination import Page, PageParams
from api.problems import Problem
from api.schemas.mobile import (
    CitizenVoucherView,
    VoucherHistoryView,
    VoucherPresentationView,
    VoucherStepView,
)
from ledger.ids import derived_id
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers import lifecycle, views
from ledger.vouchers.lifecycle import VoucherTransition
from ledger.vouchers.reference import format_reference_code
from ledger.vouchers.results import TransitionResult
from ledger.vouchers.states import TransitionAction
from ledger.vouchers.views import PAGE_VOUCHERS_MAX, VoucherView

router = APIRouter(
    prefix="/v1/mobile",
    tags=["mobile"],
    dependencies=[require_role(Role.mobile_backend)],
    responses=problem_examples(
        AUTHENTICATED, {422: [INVALID_REQUEST, CITIZEN_IIN_MISSING, CITIZEN_IIN_INVALID]}
    ),
)
VOUCHER_NOT_FOUND: Final = ("voucher_not_found", "No such voucher")
NOT_THEIRS: Final = {404: [VOUCHER_NOT_FOUND]}
# A step's id is derived from the credential and its Idempotency-Key: a retry is the same step.
HOLDER_STEP_NAMESPACE: Final = uuid.UUID("5d0c6a8e-3f1b-4e27-9a64-c2b8e1f07d35")
NO_STORE: Final = {"Cache-Control": "no-store"}
NOT_MODIFIED: Final[dict[int | str, dict[str, Any]]] = {304: {"description": "Not modified"}}
QR_SCALE: Final = 4
_TRANSITION_PROBLEMS: Final = {
    TransitionResult.voucher_not_found: (404, "voucher_not_found", "No such voucher"),
    TransitionResult.illegal_transition: (
        409, "transition_not_allowed", "The voucher's state does not allow it"
    ),
    TransitionResult.offer_expired: (409, "offer_expired", "The offer lapsed before the answer"),
    TransitionResult.outside_activation_days: (
        409, "outside_activation_days", "This voucher may be activated only on certain days of the month"
    ),
    TransitionResult.exists_with_different_action: (
        409, "idempotency_key_reused", "This Idempotency-Key was used for another step"
    ),
    TransitionResult.exists_with_different_voucher: (
        409, "idempotency_key_reused", "This Idempotency-Key was used for another step"
    ),
}  # fmt: skip
_STEP_CONFLICTS: Final = sorted(
    {(code, title) for status, code, title in _TRANSITION_PROBLEMS.values() if status == 409}
)


def _voucher_not_found(voucher_id: uuid.UUID) -> Problem:
    return Problem(404, *VOUCHER_NOT_FOUND, str(voucher_id))


def _own_voucher(connection: psycopg.Connection[Any], citizen: Citizen, voucher_id: uuid.UUID) -> VoucherView:
    found = views.vouchers_by_id(connection, [voucher_id])
    if not found or found[0].holder_hash != citizen.holder_hash:
        raise _voucher_not_found(voucher_id)
    return found[0]


@router.get(
    "/vouchers",
    response_model=Page[CitizenVoucherView],
    summary="The citizen's offers and vouchers, with balances",
    responses=problem_examples({400: [CURSOR_INVALID]}) | NOT_MODIFIED,
)
def list_vouchers(
    citizen: CitizenDep, page: PageParams, request: Request, unit_of_work: UnitOfWorkDep
) -> Response:
    """Oldest first, `limit` at most 199 a page. `state` says which are offers (`offered`)."""
    page = dataclasses.replace(page, limit=min(page.limit, PAGE_VOUCHERS_MAX - 1))
    after_id = cursor_id(page.after("after"))

    def work(connection: psycopg.Connection[Any]) -> list[VoucherView]:
        found = views.vouchers_of_holder(connection, citizen.holder_hash, after_id, page.fetch_limit)
        log_citizen_read(connection, citizen, "vouchers", [voucher.id for voucher in found[: page.limit]])
        return found

    found = unit_of_work.run(work)
    listed = page.of([CitizenVoucherView.of(voucher) for voucher in found], lambda v: {"after": str(v.id)})
    return conditional_response(request, listed)


@router.get(
    "/vouchers/{voucher_id}",
    response_model=CitizenVoucherView,
    summary="One voucher with its balances",
    responses=problem_examples(NOT_THEIRS) | NOT_MODIFIED,
)
def read_voucher(
    citizen: CitizenDep, voucher_id: uuid.UUID, request: Request, unit_of_work: UnitOfWorkDep
) -> Response:
    def work(connection: psycopg.Connection[Any]) -> VoucherView:
        voucher = _own_voucher(connection, citizen, voucher_id)
        log_citizen_read(connection, citizen, "voucher", [voucher_id])
        return voucher

    return conditional_response(request, CitizenVoucherView.of(unit_of_work.run(work)))


@router.get(
    "/vouchers/{voucher_id}/history",
    response_model=VoucherHistoryView,
    summary="A voucher's history: issue, steps and redemptions",
    responses=problem_examples(NOT_THEIRS, {400: [CURSOR_INVALID]}) | NOT_MODIFIED,
)
def read_history(
    citizen: CitizenDep,
    voucher_id: uuid.UUID,
    page: PageParams,
    request: Request,
    unit_of_work: UnitOfWorkDep,
) -> Response:
    """Oldest first, `limit` steps a page; `next` continues after the last one."""
    after = cursor_timestamp(page.after("after"))

    def work(connection: psycopg.Connection[Any]) -> list[views.VoucherStep]:
        _own_voucher(connection, citizen, voucher_id)
        log_citizen_read(connection, citizen, "voucher_history", [voucher_id])
        return views.voucher_history(connection, voucher_id, -1 if after is None else after, page.fetch_limit)

    listed = page.of(unit_of_work.run(work), lambda step: {"after": step.timestamp})
    steps = [VoucherStepView.of(step) for step in listed.items]
    return conditional_response(
        request, VoucherHistoryView(voucher_id=voucher_id, steps=steps, next=listed.next)
    )


def _holder_step(action: TransitionAction) -> Callable[..., Response]:
    def take_step(
        citizen: CitizenDep, voucher_id: uuid.UUID, idempotency: Idempotent, unit_of_work: UnitOfWorkDep
    ) -> Response:
        step = VoucherTransition(
            id=derived_id(HOLDER_STEP_NAMESPACE, citizen.credential_id, idempotency.key),
            voucher_id=voucher_id,
            action=action,
            holder_hash=citizen.holder_hash,
        )

        def work(connection: psycopg.Connection[Any]) -> Response:
            [result] = lifecycle.transition_vouchers(connection, [step])
            if result not in (TransitionResult.ok, TransitionResult.exists):
                status, code, title = _TRANSITION_PROBLEMS.get(result, (409, result.name, "Not done"))
                raise Problem(status, code, title, str(voucher_id))
            voucher = _own_voucher(connection, citizen, voucher_id)
            log_citizen_read(connection, citizen, f"voucher_after_{action.name.lower()}", [voucher_id])
            return idempotency.record(connection, 200, CitizenVoucherView.of(voucher))

        return unit_of_work.run(work)

    return take_step


_STEP_DOCS: Final = {
    TransitionAction.ACCEPT: "Accept an offer (the citizen said yes). Where the programme needs no "
    "activation the voucher becomes active at once.",
    TransitionAction.DECLINE: "Decline an offer (the citizen said no): its value returns to the programme.",
    TransitionAction.ACTIVATE: "Activate an accepted voucher so it can be redeemed (some programmes allow "
    "this only on certain days of the month: 409 outside_activation_days).",
}
for _action, _doc in _STEP_DOCS.items():
    router.add_api_route(
        f"/vouchers/{{voucher_id}}/{_action.name.lower()}",
        _holder_step(_action),
        methods=["POST"],
        response_model=CitizenVoucherView,
        summary=_doc.split(" (")[0].split(":")[0],
        description=_doc + " Needs an Idempotency-Key: a retry is the same step and gets the same answer.",
        operation_id=f"{_action.name.lower()}_voucher",
        responses=problem_examples(IDEMPOTENT_POST, NOT_THEIRS, {409: _STEP_CONFLICTS}),
    )


def _presented(
    unit_of_work: UnitOfWork, citizen: Citizen, voucher_id: uuid.UUID, what: str
) -> VoucherPresentationView:
    def work(connection: psycopg.Connection[Any]) -> VoucherPresentationView:
        voucher = _own_voucher(connection, citizen, voucher_id)
        token = views.voucher_token(connection, voucher_id)
        assert token is not None, "a voucher found has its token"
        log_citizen_read(connection, citizen, what, [voucher_id])
        return VoucherPresentationView(
            voucher_id=voucher_id,
            qr_payload=token,
            reference_code=format_reference_code(voucher.reference_code),
        )

    return unit_of_work.run(work)


@router.get(
    "/vouchers/{voucher_id}/presentation",
    response_model=VoucherPresentationView,
    summary="The QR payload (the token) and the reference code",
    responses=problem_examples(NOT_THEIRS),
)
def read_presentation(citizen: CitizenDep, voucher_id: uuid.UUID, unit_of_work: UnitOfWorkDep) -> Response:
    presentation = _presented(unit_of_work, citizen, voucher_id, "voucher_presentation")
    return Response(presentation.model_dump_json(), media_type="application/json", headers=NO_STORE)


def _image(media_type: str) -> dict[int | str, dict[str, Any]]:
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        200: {
            "content": {media_type: binary},
            "description": "The QR code (no-store: it lets a terminal redeem)",
        }
    }


@router.get(
    "/vouchers/{voucher_id}/qr.svg",
    response_class=Response,
    summary="The QR code to show at the counter, as SVG",
    responses=_image("image/svg+xml") | problem_examples(NOT_THEIRS),
)
def read_qr_svg(citizen: CitizenDep, voucher_id: uuid.UUID, unit_of_work: UnitOfWorkDep) -> Response:
    payload = _presented(unit_of_work, citizen, voucher_id, "voucher_qr").qr_payload
    image = io.BytesIO()
    segno.make(payload, micro=False).save(image, kind="svg", scale=QR_SCALE, xmldecl=False)
    return Response(image.getvalue(), media_type="image/svg+xml", headers=NO_STORE)


@router.get(
    "/vouchers/{voucher_id}/qr.png",
    response_class=Response,
    summary="The QR code to show at the counter, as PNG",
    responses=_image("image/png") | problem_examples(NOT_THEIRS),
)
def read_qr_png(citizen: CitizenDep, voucher_id: uuid.UUID, unit_of_work: UnitOfWorkDep) -> Response:
    payload = _presented(unit_of_work, citizen, voucher_id, "voucher_qr").qr_payload
    image = io.BytesIO()
    segno.make(payload, micro=False).save(image, kind="png", scale=QR_SCALE)
    return Response(image.getvalue(), media_type="image/png", headers=NO_STORE)
