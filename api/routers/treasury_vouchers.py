"""The treasury officers' router for one voucher: read it, and suspend (a fraud check, an appeal, the death
of the holder), resume or revoke it, with a reason.

A suspended voucher cannot be redeemed (a provider's terminal sees `voucher_suspended` at scan time) and
keeps its value; resuming returns it to where it was; revoking gives what is left back to the voucher's
fund, for good. A step's id is derived from the credential and its Idempotency-Key, so a retry is the same
step. The reason is recorded with the step, in the audit log too, followed by the officer's name.

Every route admits only `treasury_officer`; the officer is the credential's name (`Principal.name`).
"""

import uuid
from collections.abc import Callable
from typing import Annotated, Any, Final

import psycopg
from fastapi import APIRouter, Path, Request, Response

from api.auth import Role, TreasuryOfficer, require_role
from api.dependencies import UnitOfWorkDep
from api.etags import conditional_response
from api.idempotency import Idempotent
from api.openapi_examples import AUTHENTICATED, IDEMPOTENT_POST, problem_examples
from api.problems import Problem
from api.schemas.treasury_issuance import OfficerVoucherView, VoucherStepIn
from api.settlement_responses import NOT_MODIFIED
from ledger.ids import derived_id
from ledger.vouchers import lifecycle, views
from ledger.vouchers.lifecycle import VoucherTransition
from ledger.vouchers.results import TransitionResult
from ledger.vouchers.states import TransitionAction

router = APIRouter(
    prefix="/v1/treasury/vouchers",
    tags=["treasury"],
    dependencies=[require_role(Role.treasury_officer)],
    responses=problem_examples(AUTHENTICATED),
)
VoucherId = Annotated[uuid.UUID, Path(description="The voucher's id")]
OFFICER_STEP_NAMESPACE: Final = uuid.UUID("b3d5f7a9-1c2e-4f60-8a2b-4c6e8f0a2b4d")
VOUCHER_NOT_FOUND: Final = ("voucher_not_found", "No such voucher")
_STEP_PROBLEMS: Final = {
    TransitionResult.voucher_not_found: (404, *VOUCHER_NOT_FOUND),
    TransitionResult.illegal_transition: (
        409, "transition_not_allowed", "The voucher's state does not allow it"
    ),
    TransitionResult.exists_with_different_action: (
        409, "idempotency_key_reused", "This Idempotency-Key was used for another step"
    ),
    TransitionResult.exists_with_different_voucher: (
        409, "idempotency_key_reused", "This Idempotency-Key was used for another step"
    ),
}  # fmt: skip
_CONFLICTS: Final = sorted(
    {(code, title) for status, code, title in _STEP_PROBLEMS.values() if status == 409}
)


def _voucher(connection: psycopg.Connection[Any], voucher_id: uuid.UUID) -> OfficerVoucherView:
    found = views.vouchers_by_id(connection, [voucher_id])
    if not found:
        raise Problem(404, *VOUCHER_NOT_FOUND, str(voucher_id))
    return OfficerVoucherView.of(found[0])  # type: ignore[return-value]


@router.get(
    "/{voucher_id}",
    response_model=OfficerVoucherView,
    summary="One voucher: its state and balances (never its holder)",
    responses=problem_examples({404: [VOUCHER_NOT_FOUND]}) | NOT_MODIFIED,
)
def read_voucher(voucher_id: VoucherId, request: Request, unit_of_work: UnitOfWorkDep) -> Response:
    return conditional_response(request, unit_of_work.read(lambda c: _voucher(c, voucher_id)))


def _officer_step(action: TransitionAction) -> Callable[..., Response]:
    def take_step(
        voucher_id: VoucherId,
        body: VoucherStepIn,
        officer: TreasuryOfficer,
        idempotency: Idempotent,
        unit_of_work: UnitOfWorkDep,
    ) -> Response:
        step = VoucherTransition(
            id=derived_id(OFFICER_STEP_NAMESPACE, officer.credential_id, idempotency.key),
            voucher_id=voucher_id,
            action=action,
            reason=f"{body.reason} (officer: {officer.name})",
        )

        def work(connection: psycopg.Connection[Any]) -> Response:
            [result] = lifecycle.transition_vouchers(connection, [step])
            if result not in (TransitionResult.ok, TransitionResult.exists):
                status, code, title = _STEP_PROBLEMS.get(result, (409, result.name, "Not done"))
                raise Problem(status, code, title, str(voucher_id))
            return idempotency.record(connection, 200, _voucher(connection, voucher_id))

        return unit_of_work.run(work)

    return take_step


_STEP_DOCS: Final = {
    TransitionAction.SUSPEND: "Suspend a voucher (a fraud check, an appeal, the death of the holder): it "
    "cannot be redeemed and keeps its value until it is resumed or revoked.",
    TransitionAction.RESUME: "Resume a suspended voucher: it is redeemable again (or, if it was suspended "
    "before activation, waits for activation again).",
    TransitionAction.REVOKE: "Revoke a voucher: what is left goes back to the voucher's fund, for good.",
}
for _action, _doc in _STEP_DOCS.items():
    router.add_api_route(
        f"/{{voucher_id}}/{_action.name.lower()}",
        _officer_step(_action),
        methods=["POST"],
        response_model=OfficerVoucherView,
        summary=_doc.split(" (")[0].split(":")[0],
        description=_doc + " Needs an Idempotency-Key: a retry is the same step and gets the same answer; "
        "a step its state does not allow is 409 `transition_not_allowed`.",
        operation_id=f"{_action.name.lower()}_voucher_by_officer",
        responses=problem_examples(IDEMPOTENT_POST, {404: [VOUCHER_NOT_FOUND], 409: _CONFLICTS}),
    )
