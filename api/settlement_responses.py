"""What the settlement routers (`api.routers.settlement`, `settlement_acts`, `provider_settlement`) share:
the refusal codes they document, issued documents as downloads, and finding an act a caller may see.

Documents (an act's or invoice's JSON and PDF, the bytes a provider signs) never change once issued, so
their ETag is a hash of the stored bytes and a client may keep them (`immutable`); a copy named by
``If-None-Match`` is answered 304.
"""

import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final

import psycopg
from fastapi import APIRouter, Path, Request, Response

from api.auth import OwnProviderId
from api.dependencies import UnitOfWorkDep
from api.etags import etag_of, if_none_match
from api.openapi_examples import problem_examples, refusal_examples
from api.schemas.settlement import ACT_NUMBER, ACT_NUMBER_CHARS_MAX
from ledger.unit_of_work import UnitOfWork
from treasury.errors import RefusalKind, Refused
from treasury.settlement import document_bytes, find_act

DOCUMENT_CACHE_CONTROL: Final = "private, max-age=31536000, immutable"
NOT_MODIFIED: Final[dict[int | str, dict[str, Any]]] = {304: {"description": "Not modified"}}
# Printable text (no control characters: PostgreSQL text cannot hold NUL, and no number has them).
DOCUMENT_NUMBER_PATTERN: Final = r"^[^\x00-\x1f\x7f]+$"
ActNumber = Annotated[
    str,
    Path(
        min_length=1,
        max_length=ACT_NUMBER_CHARS_MAX,
        pattern=DOCUMENT_NUMBER_PATTERN,
        description="The act's number",
        examples=[ACT_NUMBER],
    ),
]

ACT_NOT_FOUND: Final = refusal_examples(RefusalKind.NOT_FOUND, "act_not_found")
PROGRAMME_NOT_FOUND: Final = refusal_examples(RefusalKind.NOT_FOUND, "programme_not_found")
OFFICER_INVALID: Final = refusal_examples(RefusalKind.INVALID, "officer_invalid")
REASON_REQUIRED: Final = refusal_examples(RefusalKind.INVALID, "reason_required")


@dataclass(frozen=True, slots=True)
class Document:
    """One of an act's downloads: the stored bytes `what` (`treasury.settlement.document_bytes`)."""

    what: str
    media_type: str
    file_suffix: str
    summary: str


DOCUMENTS: Final[Mapping[str, Document]] = {
    "act.json": Document("act_json", "application/json", ".json", "The act as issued: canonical JSON"),
    "act.pdf": Document("act_pdf", "application/pdf", ".pdf", "The act as issued: PDF (form Р-1)"),
    "invoice.json": Document(
        "invoice_json", "application/json", ".invoice.json", "The act's invoice as issued: canonical JSON"
    ),
    "invoice.pdf": Document(
        "invoice_pdf", "application/pdf", ".invoice.pdf", "The act's invoice as issued: PDF"
    ),
}


def document_openapi(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    binary = {"type": "string", "format": "binary"}
    schema = {"type": "object"} if media_type == "application/json" else binary
    return {200: {"content": {media_type: {"schema": schema}}, "description": description}} | NOT_MODIFIED


def document_response(request: Request, body: bytes, media_type: str, filename: str) -> Response:
    """Stored bytes, exactly, with their ETag (304 when the client's copy is current); `filename` is what
    a browser saves it as."""
    etag = etag_of(body)
    validators = {"ETag": etag, "Cache-Control": DOCUMENT_CACHE_CONTROL}
    if if_none_match(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=validators)
    # The number is Cyrillic (АКТ-…): RFC 6266 / 8187 give it as UTF-8, with an ASCII fallback.
    ascii_name = "document" + filename[filename.rfind(".") :]
    disposition = f"inline; filename=\"{ascii_name}\"; filename*=UTF-8''{urllib.parse.quote(filename)}"
    return Response(body, media_type=media_type, headers=validators | {"Content-Disposition": disposition})


def act_not_found(number: str) -> Refused:
    return Refused("act_not_found", number, RefusalKind.NOT_FOUND)


def require_own_act(connection: psycopg.Connection[Any], number: str, provider_id: uuid.UUID | None) -> None:
    """The act exists and, for a provider (`provider_id` given), is its own: else `act_not_found`, the same
    answer either way, so a provider learns nothing about another's acts."""
    act = find_act(connection, number=number)
    if act is None or (provider_id is not None and act.provider_id != provider_id):
        raise act_not_found(number)


def _read_document(
    unit_of_work: UnitOfWork, number: str, document: Document, provider_id: uuid.UUID | None
) -> bytes:
    def read(connection: psycopg.Connection[Any]) -> bytes:
        require_own_act(connection, number, provider_id)
        return document_bytes(connection, number, document.what)

    return unit_of_work.read(read)


def _officer_download(document: Document) -> Callable[..., Response]:
    def download(act_number: ActNumber, request: Request, unit_of_work: UnitOfWorkDep) -> Response:
        body = _read_document(unit_of_work, act_number, document, None)
        return document_response(request, body, document.media_type, act_number + document.file_suffix)

    return download


def _provider_download(document: Document) -> Callable[..., Response]:
    def download(
        provider_id: OwnProviderId, act_number: ActNumber, request: Request, unit_of_work: UnitOfWorkDep
    ) -> Response:
        body = _read_document(unit_of_work, act_number, document, provider_id)
        return document_response(request, body, document.media_type, act_number + document.file_suffix)

    return download


def add_document_routes(router: APIRouter, *, provider_scoped: bool) -> None:
    """GET …/acts/{act_number}/act.json, act.pdf, invoice.json, invoice.pdf on `router`; a provider's
    routes serve only its own acts."""
    for name, document in DOCUMENTS.items():
        router.add_api_route(
            f"/acts/{{act_number}}/{name}",
            _provider_download(document) if provider_scoped else _officer_download(document),
            methods=["GET"],
            response_class=Response,
            name=f"download_{name.replace('.', '_')}",
            summary=document.summary,
            description="Exactly the bytes stored at issue (never changed: a correction is a new act).",
            responses=document_openapi(document.media_type, document.summary)
            | problem_examples(ACT_NOT_FOUND),
        )
