"""The treasury officers' router for providers: register one (BIN, name, category), read it, record its
profile for acts, invoices and payment orders (address, IBAN, bank, contract), and enrol it in a
programme (which opens its receivable there). The provider's own routes — terminals, redemptions, acts
to sign — are under /v1/providers and need the provider's own credential.

Ids are derived, so every step is safe to repeat: a provider's from its BIN, its receivable in a programme
from the pair. Every route admits only `treasury_officer`.
"""

import uuid
from typing import Annotated, Any, Final

import psycopg
from fastapi import APIRouter, Path, Request, Response

from api.auth import Role, require_role
from api.dependencies import UnitOfWorkDep
from api.etags import conditional_response
from api.idempotency import Idempotent
from api.openapi_examples import AUTHENTICATED, IDEMPOTENT_POST, JSON_BODY, problem_examples, refusal_examples
from api.routers.treasury import ProgrammeId
from api.schemas.settlement import PROVIDER
from api.schemas.treasury_issuance import (
    EnrolmentIn,
    EnrolmentView,
    ProviderIn,
    ProviderProfileIn,
    ProviderProfileView,
    ProviderView,
)
from api.settlement_responses import NOT_MODIFIED, PROGRAMME_NOT_FOUND
from api.treasury_reads import find_enrolment, provider_view, require_programme
from ledger.identity import IdentityFormatError, validate_bin
from ledger.ids import derived_id
from ledger.vouchers import participants
from ledger.vouchers.registry import Outcome
from ledger.vouchers.results import RegistryResult
from ledger.vouchers.states import PROVIDER_CATEGORY_NAMES
from treasury.errors import RefusalKind, Refused
from treasury.settlement import ProviderProfile, record_provider_profile

router = APIRouter(
    prefix="/v1/treasury",
    tags=["treasury"],
    dependencies=[require_role(Role.treasury_officer)],
    responses=problem_examples(AUTHENTICATED),
)
ProviderId = Annotated[uuid.UUID, Path(description="The provider's id", examples=[PROVIDER])]
PROVIDER_NAMESPACE: Final = uuid.UUID("d5f7b9c1-3e4a-4b6c-8d0e-2f4a6c8e0b1d")
RECEIVABLE_NAMESPACE: Final = uuid.UUID("f7b9d1e3-5a6c-4d8e-9f1a-3b5d7f9a1c2e")
PROVIDER_NOT_FOUND: Final = refusal_examples(RefusalKind.NOT_FOUND, "provider_not_found")
_REGISTRY_KINDS: Final = {
    RegistryResult.bin_invalid: RefusalKind.INVALID,
    RegistryResult.text_invalid: RefusalKind.INVALID,
    RegistryResult.category_invalid: RefusalKind.INVALID,
    RegistryResult.programme_not_found: RefusalKind.NOT_FOUND,
    RegistryResult.provider_not_found: RefusalKind.NOT_FOUND,
}


def _refuse_unless_ok(outcome: Outcome) -> None:
    """A ledger registry outcome as a treasury refusal (its result name is the code): 409 unless named."""
    if not outcome.ok:
        kind = _REGISTRY_KINDS.get(outcome.result, RefusalKind.CONFLICT)
        raise Refused(outcome.result.name, outcome.detail or outcome.result.name, kind)


def _provider(connection: psycopg.Connection[Any], provider_id: uuid.UUID) -> ProviderView:
    view = provider_view(connection, provider_id)
    if view is None:
        raise Refused("provider_not_found", str(provider_id), RefusalKind.NOT_FOUND)
    return view


@router.post(
    "/providers",
    status_code=201,
    response_model=ProviderView,
    summary="Register a provider (canteen supplier, pharmacy, gas utility, club, shop)",
    responses=problem_examples(
        IDEMPOTENT_POST,
        refusal_examples(RefusalKind.INVALID, "bin_invalid", "text_invalid"),
        refusal_examples(RefusalKind.CONFLICT, "exists_with_different_fields"),
    ),
)
def register_provider(body: ProviderIn, idempotency: Idempotent, unit_of_work: UnitOfWorkDep) -> Response:
    """Registering the same BIN with the same name and category again answers the same provider; other
    fields under a registered BIN are 409 `exists_with_different_fields`. Give the provider a credential
    of its own (`amiyan credentials create --role provider --provider-id …`) to let it register terminals."""
    try:
        digits = validate_bin(body.bin).digits
    except IdentityFormatError as error:
        raise Refused("bin_invalid", str(error)) from None
    provider_id = derived_id(PROVIDER_NAMESPACE, digits)
    category = int(PROVIDER_CATEGORY_NAMES[body.category])

    def work(connection: psycopg.Connection[Any]) -> Response:
        outcome = participants.register_provider(connection, provider_id, digits, body.name, category)
        _refuse_unless_ok(outcome)
        location = f"{router.prefix}/providers/{provider_id}"
        return idempotency.record(connection, 201, _provider(connection, provider_id), {"Location": location})

    return unit_of_work.run(work)


@router.get(
    "/providers/{provider_id}",
    response_model=ProviderView,
    summary="Read a provider: its profile and the programmes it is enrolled in",
    responses=problem_examples(PROVIDER_NOT_FOUND) | NOT_MODIFIED,
)
def read_provider(provider_id: ProviderId, request: Request, unit_of_work: UnitOfWorkDep) -> Response:
    return conditional_response(request, unit_of_work.read(lambda c: _provider(c, provider_id)))


@router.put(
    "/providers/{provider_id}/profile",
    response_model=ProviderProfileView,
    summary="Record the provider's address, bank account and contract (replacing any before)",
    responses=problem_examples(
        JSON_BODY,
        PROVIDER_NOT_FOUND,
        refusal_examples(RefusalKind.INVALID, "profile_iban_invalid", "profile_address_invalid"),
    ),
)
def record_profile(
    provider_id: ProviderId, body: ProviderProfileIn, unit_of_work: UnitOfWorkDep
) -> ProviderProfileView:
    """What acts, invoices and payment orders print; a payout goes to this IBAN (mod-97 checked). Every
    version is in the audit log. A returned payment is paid again once the IBAN here is corrected."""
    profile = ProviderProfile(
        provider_id, body.address, body.iban, body.bank_name, body.bic, body.contract_number,
        body.contract_date,
    )  # fmt: skip

    def work(connection: psycopg.Connection[Any]) -> ProviderProfileView:
        stored = record_provider_profile(connection, profile)
        return ProviderProfileView(
            provider_id=stored.provider_id, address=stored.address, iban=stored.iban,
            bank_name=stored.bank_name, bic=stored.bic, contract_number=stored.contract_number,
            contract_date=stored.contract_date,
        )  # fmt: skip

    return unit_of_work.run(work)


@router.post(
    "/programmes/{programme_id}/providers",
    status_code=201,
    response_model=EnrolmentView,
    summary="Enrol a provider in a programme (its receivable there is opened)",
    responses=problem_examples(IDEMPOTENT_POST, PROGRAMME_NOT_FOUND, PROVIDER_NOT_FOUND),
)
def enrol(
    programme_id: ProgrammeId, body: EnrolmentIn, idempotency: Idempotent, unit_of_work: UnitOfWorkDep
) -> Response:
    """The provider may redeem the programme's vouchers from now on, as its policy allows (its category or
    its name). Enrolling it again answers the same enrolment."""
    receivable = derived_id(RECEIVABLE_NAMESPACE, programme_id, body.provider_id)

    def work(connection: psycopg.Connection[Any]) -> Response:
        require_programme(connection, programme_id)
        _refuse_unless_ok(participants.enrol_provider(connection, programme_id, body.provider_id, receivable))
        view = find_enrolment(connection, programme_id, body.provider_id)
        assert view is not None
        return idempotency.record(connection, 201, view)

    return unit_of_work.run(work)
