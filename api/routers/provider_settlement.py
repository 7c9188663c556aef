"""The providers' settlement router: the acts drawn up for them (to sign), the exact bytes to sign, the
signature, the keys that sign, their documents, and the payouts received with their payment orders.

Every route is under ``/v1/providers/{provider_id}``, admits only the `provider` role, and only for the
provider its credential is bound to: another provider's id, or another provider's act, is 404, the same
answer as for one that does not exist.

Signing. An act is signed by a person who signs paperwork for the provider (a director, a chief
accountant), with an Ed25519 key registered here — not a till's terminal key. The signature is over
``GET …/acts/{act_number}/signing-bytes`` exactly: the purpose tag ``amiyan.kz/service-act/v1``, a
newline, and the act's canonical JSON (the bytes of ``…/act.json``), so no other signed message can pass
for an act.
"""

import uuid
from typing import Annotated, Any, Final

import psycopg
from fastapi import APIRouter, Query, Request, Response

from api.auth import OwnProviderId, ProviderPrincipal, Role, require_role
from api.cursors import cursor_timestamp_id
from api.dependencies import UnitOfWorkDep
from api.etags import conditional_response
from api.idempotency import Idempotent
from api.openapi_examples import (
    AUTHENTICATED,
    CURSOR_INVALID,
    IDEMPOTENT_POST,
    INVALID_REQUEST,
    problem_examples,
    refusal_examples,
)
from api.pagination import Page, PageParams
from api.problems import Problem
from api.routers.providers import PROVIDER_NOT_FOUND
from api.schemas.common import b64, unb64
from api.schemas.settlement import (
    ActSignatureIn,
    ActStateName,
    ActView,
    PayoutView,
    SigningKeyIn,
    SigningKeyView,
)
from api.settlement_reads import act_by_number, provider_acts, provider_payouts
from api.settlement_responses import (
    ACT_NOT_FOUND,
    NOT_MODIFIED,
    ActNumber,
    act_not_found,
    add_document_routes,
    document_response,
    require_own_act,
)
from ledger.ids import new_id
from ledger.vouchers.paseto import K4_PUBLIC_PREFIX, KeyFormatError, decode_k4_public
from ledger.vouchers.signing import PUBLIC_KEY_BYTES, SIGNATURE_BYTES
from treasury.errors import RefusalKind
from treasury.settlement import ActState, act_signing_bytes, register_signing_key, sign_act

router = APIRouter(
    prefix="/v1/providers/{provider_id}",
    tags=["providers"],
    dependencies=[require_role(Role.provider)],
    responses=problem_examples(AUTHENTICATED, {404: [PROVIDER_NOT_FOUND]}),
)
PUBLIC_KEY_INVALID: Final = ("public_key_invalid", "The public key is not an Ed25519 key")
PUBLIC_KEY_REGISTERED: Final = ("public_key_registered", "This public key is registered already")
SIGNATURE_MALFORMED: Final = ("signature_malformed", "The signature is not 64 bytes of base64")


def _public_key(text: str) -> bytes:
    """The signer's Ed25519 key from base64 or PASERK k4.public (422 otherwise)."""
    try:
        key = decode_k4_public(text) if text.startswith(K4_PUBLIC_PREFIX) else unb64(text)
    except KeyFormatError:
        key = None
    if key is None or len(key) != PUBLIC_KEY_BYTES:
        raise Problem(
            422, *PUBLIC_KEY_INVALID, f"give base64 of the {PUBLIC_KEY_BYTES}-byte key, or k4.public.…"
        )
    return key


@router.post(
    "/signing-keys",
    status_code=201,
    response_model=SigningKeyView,
    summary="Register a key that signs the provider's acts",
    responses=problem_examples(
        IDEMPOTENT_POST,
        {422: [INVALID_REQUEST, PUBLIC_KEY_INVALID], 409: [PUBLIC_KEY_REGISTERED]},
        refusal_examples(RefusalKind.INVALID, "key_name_invalid"),
    ),
)
def register_key(
    provider_id: OwnProviderId,
    body: SigningKeyIn,
    caller: ProviderPrincipal,
    idempotency: Idempotent,
    unit_of_work: UnitOfWorkDep,
) -> Response:
    """The answer's `id` names the key when signing. The registration records the credential that made
    it. Needs an Idempotency-Key: a retry gets the same key."""
    public_key = _public_key(body.public_key)
    key_id = new_id()

    def work(connection: psycopg.Connection[Any]) -> Response:
        key = register_signing_key(connection, key_id, provider_id, public_key, body.name, caller.name)
        view = SigningKeyView(
            id=key.id, provider_id=key.provider_id, name=key.name, public_key=b64(key.public_key),
            revoked=key.revoked,
        )  # fmt: skip
        return idempotency.record(connection, 201, view)

    return unit_of_work.run(work)


@router.get(
    "/acts",
    response_model=Page[ActView],
    summary="The provider's acts, newest first (state=issued: those to sign)",
    responses=problem_examples({400: [CURSOR_INVALID]}) | NOT_MODIFIED,
)
def list_acts(
    provider_id: OwnProviderId,
    page: PageParams,
    request: Request,
    unit_of_work: UnitOfWorkDep,
    state: Annotated[ActStateName | None, Query(description="Only acts in this state")] = None,
    programme_id: Annotated[uuid.UUID | None, Query(description="Only this programme's")] = None,
) -> Response:
    cursor = cursor_timestamp_id(page.after("ts"), page.after("id"))
    wanted = ActState[state.upper()] if state is not None else None
    rows = unit_of_work.read(
        lambda c: provider_acts(c, provider_id, programme_id, wanted, cursor, page.fetch_limit)
    )
    timestamps = {view.id: timestamp for view, timestamp in rows}
    listed = page.of([view for view, _ in rows], lambda v: {"ts": timestamps[v.id], "id": str(v.id)})
    return conditional_response(request, listed)


def _own_act(connection: psycopg.Connection[Any], provider_id: uuid.UUID, number: str) -> ActView:
    view = act_by_number(connection, number)
    if view is None or view.provider_id != provider_id:
        raise act_not_found(number)
    return view


@router.get(
    "/acts/{act_number}",
    response_model=ActView,
    summary="One of the provider's acts",
    responses=problem_examples(ACT_NOT_FOUND) | NOT_MODIFIED,
)
def read_act(
    provider_id: OwnProviderId, act_number: ActNumber, request: Request, unit_of_work: UnitOfWorkDep
) -> Response:
    return conditional_response(request, unit_of_work.read(lambda c: _own_act(c, provider_id, act_number)))


@router.get(
    "/acts/{act_number}/signing-bytes",
    response_class=Response,
    summary="Exactly the bytes to sign for the act",
    responses={
        200: {
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            "description": "amiyan.kz/service-act/v1, a newline, the act's canonical JSON",
        }
    }
    | problem_examples(ACT_NOT_FOUND)
    | NOT_MODIFIED,
)
def read_signing_bytes(
    provider_id: OwnProviderId, act_number: ActNumber, request: Request, unit_of_work: UnitOfWorkDep
) -> Response:
    """Sign them as they are with the Ed25519 key registered under …/signing-keys (no hashing, no
    re-encoding), and send the signature to …/signature."""

    def read(connection: psycopg.Connection[Any]) -> bytes:
        require_own_act(connection, act_number, provider_id)
        return act_signing_bytes(connection, act_number)

    body = unit_of_work.read(read)
    return document_response(request, body, "application/octet-stream", f"{act_number}.to-sign")


@router.post(
    "/acts/{act_number}/signature",
    response_model=ActView,
    summary="Sign the act",
    responses=problem_examples(
        IDEMPOTENT_POST,
        ACT_NOT_FOUND,
        {422: [INVALID_REQUEST, SIGNATURE_MALFORMED]},
        refusal_examples(RefusalKind.CONFLICT, "act_rejected", "act_signed_already"),
        refusal_examples(
            RefusalKind.FORBIDDEN, "signing_key_unknown", "signing_key_revoked", "signature_invalid"
        ),
    ),
)
def sign(
    provider_id: OwnProviderId,
    act_number: ActNumber,
    body: ActSignatureIn,
    idempotency: Idempotent,
    unit_of_work: UnitOfWorkDep,
) -> Response:
    """The signature must be one of the provider's registered keys' over the signing bytes (403
    otherwise). The same signature again changes nothing; another one on a signed act is 409."""
    signature = unb64(body.signature)
    if signature is None or len(signature) != SIGNATURE_BYTES:
        raise Problem(422, *SIGNATURE_MALFORMED, f"give the {SIGNATURE_BYTES}-byte signature in base64")

    def work(connection: psycopg.Connection[Any]) -> Response:
        require_own_act(connection, act_number, provider_id)
        sign_act(connection, act_number, body.key_id, signature)
        return idempotency.record(connection, 200, _own_act(connection, provider_id, act_number))

    return unit_of_work.run(work)


add_document_routes(router, provider_scoped=True)


@router.get(
    "/payouts",
    response_model=Page[PayoutView],
    summary="Payouts received, newest first, with their payment orders",
    responses=problem_examples({400: [CURSOR_INVALID]}) | NOT_MODIFIED,
)
def list_payouts(
    provider_id: OwnProviderId,
    page: PageParams,
    request: Request,
    unit_of_work: UnitOfWorkDep,
    programme_id: Annotated[uuid.UUID | None, Query(description="Only this programme's")] = None,
) -> Response:
    cursor = cursor_timestamp_id(page.after("ts"), page.after("id"))
    rows = unit_of_work.read(
        lambda c: provider_payouts(c, provider_id, programme_id, cursor, page.fetch_limit)
    )
    timestamps = {view.act_id: timestamp for view, timestamp in rows}
    listed = page.of([view for view, _ in rows], lambda v: {"ts": timestamps[v.act_id], "id": str(v.act_id)})
    return conditional_response(request, listed)
