"""The providers' router: a provider's terminals, its receivable and its redemption history.

Every route is under ``/v1/providers/{provider_id}``, admits only the `provider` role, and only for the
provider its credential is bound to: another provider's id, or a terminal of another provider, is 404,
the same answer as for one that does not exist. Redeeming is in `api.routers.redemptions`. Acts to sign
and payouts received come with settlement.
"""

import uuid
from typing import Annotated, Any, Final

import psycopg
from fastapi import APIRouter, Query, Request, Response

from api.auth import OwnProviderId, Role, require_role
from api.cursors import cursor_id, cursor_timestamp_id
from api.dependencies import UnitOfWorkDep
from api.etags import conditional_response
from api.idempotency import Idempotent
from api.openapi_examples import (
    AUTHENTICATED,
    CURSOR_INVALID,
    IDEMPOTENT_POST,
    INVALID_REQUEST,
    JSON_BODY,
    problem_examples,
)
from api.pagination import Page, PageParams
from api.problems import Problem
from api.provider_reads import provider_receivables, provider_redemptions, provider_terminals, read_terminal
from api.redemption_envelopes import terminal_owner
from api.schemas.common import unb64
from api.schemas.providers import (
    ReceivableView,
    RedemptionRecordView,
    TerminalIn,
    TerminalRevocationIn,
    TerminalView,
)
from ledger.ids import new_id
from ledger.vouchers import participants
from ledger.vouchers.paseto import K4_PUBLIC_PREFIX, KeyFormatError, decode_k4_public
from ledger.vouchers.registry import Outcome
from ledger.vouchers.results import RegistryResult
from ledger.vouchers.signing import PUBLIC_KEY_BYTES

PROVIDER_NOT_FOUND: Final = ("provider_not_found", "No such provider")
TERMINAL_NOT_FOUND: Final = ("terminal_not_found", "No such terminal")
PUBLIC_KEY_INVALID: Final = ("public_key_invalid", "The public key is not an Ed25519 key")
NOT_OURS: Final = {404: [PROVIDER_NOT_FOUND, TERMINAL_NOT_FOUND]}
router = APIRouter(
    prefix="/v1/providers/{provider_id}",
    tags=["providers"],
    dependencies=[require_role(Role.provider)],
    responses=problem_examples(AUTHENTICATED, {404: [PROVIDER_NOT_FOUND]}),
)
NOT_MODIFIED: Final[dict[int | str, dict[str, Any]]] = {
    304: {"description": "Not modified: the copy named by If-None-Match is current"}
}


def _terminal_not_found(terminal_id: uuid.UUID) -> Problem:
    return Problem(404, *TERMINAL_NOT_FOUND, str(terminal_id))


def _public_key(text: str) -> bytes:
    """The terminal's Ed25519 key from PASERK k4.public or base64 (422 otherwise)."""
    try:
        key = decode_k4_public(text) if text.startswith(K4_PUBLIC_PREFIX) else unb64(text)
    except KeyFormatError:
        key = None
    if key is None or len(key) != PUBLIC_KEY_BYTES:
        raise Problem(
            422, *PUBLIC_KEY_INVALID, f"give k4.public.… or base64 of the {PUBLIC_KEY_BYTES}-byte key"
        )
    return key


def _registry_problem(outcome: Outcome) -> Problem:
    if outcome.result is RegistryResult.provider_not_found:
        return Problem(
            404, "provider_not_found", "This provider is not registered in the ledger", outcome.detail
        )
    if outcome.result in (RegistryResult.public_key_invalid, RegistryResult.text_invalid):
        return Problem(422, outcome.result.name, "The terminal cannot be registered", outcome.detail)
    return Problem(409, outcome.result.name, "The terminal cannot be registered", outcome.detail)


@router.post(
    "/terminals",
    status_code=201,
    response_model=TerminalView,
    summary="Register a terminal and its signing key",
    responses=problem_examples(
        IDEMPOTENT_POST,
        {
            404: [PROVIDER_NOT_FOUND],
            422: [INVALID_REQUEST, PUBLIC_KEY_INVALID],
        },
    ),
)
def register_terminal(
    provider_id: OwnProviderId, body: TerminalIn, idempotency: Idempotent, unit_of_work: UnitOfWorkDep
) -> Response:
    """Register a point of service. The answer's `id` goes into every request the terminal signs. Needs an
    Idempotency-Key: a retry with the same key and body gets the same terminal."""
    public_key = _public_key(body.public_key)
    terminal_id = new_id()

    def work(connection: psycopg.Connection[Any]) -> Response:
        outcome = participants.register_terminal(connection, terminal_id, provider_id, public_key, body.name)
        if not outcome.ok:
            raise _registry_problem(outcome)
        view = read_terminal(connection, terminal_id)
        location = f"{router.prefix.format(provider_id=provider_id)}/terminals/{terminal_id}"
        return idempotency.record(connection, 201, view, {"Location": location})

    return unit_of_work.run(work)


@router.get(
    "/terminals",
    response_model=Page[TerminalView],
    summary="List the provider's terminals",
    responses=problem_examples({400: [CURSOR_INVALID]}) | NOT_MODIFIED,
)
def list_terminals(
    provider_id: OwnProviderId, page: PageParams, request: Request, unit_of_work: UnitOfWorkDep
) -> Response:
    after = cursor_id(page.after("after"))
    rows = unit_of_work.read(lambda c: provider_terminals(c, provider_id, after, page.fetch_limit))
    return conditional_response(request, page.of(rows, lambda view: {"after": str(view.id)}))


@router.get(
    "/terminals/{terminal_id}",
    response_model=TerminalView,
    summary="Read one terminal",
    responses=problem_examples(NOT_OURS) | NOT_MODIFIED,
)
def read_one_terminal(
    provider_id: OwnProviderId, terminal_id: uuid.UUID, request: Request, unit_of_work: UnitOfWorkDep
) -> Response:
    view = unit_of_work.read(lambda c: read_terminal(c, terminal_id))
    if view is None or view.provider_id != provider_id:
        raise _terminal_not_found(terminal_id)
    return conditional_response(request, view)


@router.post(
    "/terminals/{terminal_id}/revoke",
    response_model=TerminalView,
    summary="Revoke a terminal (a lost or stolen device)",
    responses=problem_examples(JSON_BODY, NOT_OURS),
)
def revoke_terminal(
    provider_id: OwnProviderId,
    terminal_id: uuid.UUID,
    body: TerminalRevocationIn,
    unit_of_work: UnitOfWorkDep,
) -> TerminalView:
    """From now on the terminal's signature is refused (`terminal_revoked`). Revoking a revoked terminal
    changes nothing and answers the same."""

    def work(connection: psycopg.Connection[Any]) -> TerminalView | None:
        if terminal_owner(connection, terminal_id) != provider_id:
            return None
        participants.revoke_terminal(connection, terminal_id, body.reason)  # ok or already_revoked
        return read_terminal(connection, terminal_id)

    view = unit_of_work.run(work)
    if view is None:
        raise _terminal_not_found(terminal_id)
    return view


@router.get(
    "/receivable",
    response_model=ReceivableView,
    summary="What the state owes the provider, per programme",
    responses=NOT_MODIFIED,
)
def read_receivable(provider_id: OwnProviderId, request: Request, unit_of_work: UnitOfWorkDep) -> Response:
    programmes = unit_of_work.read(lambda c: provider_receivables(c, provider_id))
    return conditional_response(request, ReceivableView(provider_id=provider_id, programmes=programmes))


@router.get(
    "/redemptions",
    response_model=Page[RedemptionRecordView],
    summary="The provider's redemptions, newest first",
    responses=problem_examples({400: [CURSOR_INVALID]}) | NOT_MODIFIED,
)
def list_redemptions(
    provider_id: OwnProviderId,
    page: PageParams,
    request: Request,
    unit_of_work: UnitOfWorkDep,
    programme_id: Annotated[uuid.UUID | None, Query(description="Only this programme's")] = None,
) -> Response:
    before = cursor_timestamp_id(page.after("ts"), page.after("id"))
    rows = unit_of_work.read(
        lambda c: provider_redemptions(c, provider_id, programme_id, before, page.fetch_limit)
    )
    views = [RedemptionRecordView.of(row) for row in rows]
    timestamps = {view.id: row[-1] for view, row in zip(views, rows, strict=True)}
    return conditional_response(
        request, page.of(views, lambda view: {"ts": timestamps[view.id], "id": str(view.id)})
    )
