"""RFC 9457 problem details: the one error shape of the HTTP API, with a stable `code`.

Every error leaves as `application/problem+json`: a `Problem` raised by a route or dependency, a ledger
error (one map below), a request that fails validation (422), a framework error (404 no such route, 405,
413, 415, ...), and anything unexpected (500, whose body says nothing about the cause; the log has it).
A treasury refusal (`treasury.errors.Refused`) leaves through one table too, by its kind: its `code` is
the refusal's own stable code, its `detail` the refusal's message.
`code` is the stable, machine-readable name; `title` is for people and may change.
"""

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.errors import BatchTooLarge, LedgerError, LedgerUnavailable
from treasury.errors import RefusalKind, Refused

PROBLEM_TYPE_BASE: Final = "https://amiyan.kz/problems/"
PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
# How long a client should wait before retrying after a 503.
UNAVAILABLE_RETRY_AFTER_S: Final = 1

# One map from ledger error to HTTP status; no route has its own error switch.
STATUS_BY_ERROR: dict[type[LedgerError], int] = {
    BatchTooLarge: 413,
    LedgerUnavailable: 503,
}

# One map from a treasury refusal's kind to HTTP status; the problem's code is the refusal's code.
STATUS_BY_REFUSAL: Final[Mapping[RefusalKind, int]] = {
    RefusalKind.NOT_FOUND: 404,
    RefusalKind.CONFLICT: 409,
    RefusalKind.INVALID: 422,
    RefusalKind.FORBIDDEN: 403,
}

# The stable code and title of each status the framework itself raises (no route, wrong method, ...).
CODE_BY_STATUS: Final[Mapping[int, tuple[str, str]]] = {
    400: ("bad_request", "The request is malformed"),
    401: ("unauthenticated", "A valid credential is required"),
    403: ("forbidden", "This credential may not do that"),
    404: ("not_found", "No such resource"),
    405: ("method_not_allowed", "This method is not allowed here"),
    406: ("not_acceptable", "No acceptable representation"),
    409: ("conflict", "The request conflicts with the current state"),
    413: ("request_too_large", "The request body is too large"),
    415: ("unsupported_media_type", "The request body's media type is not accepted here"),
    422: ("invalid_request", "The request is not valid"),
    429: ("rate_limited", "Too many requests"),
    500: ("internal_error", "Internal error"),
    503: ("unavailable", "The service is unavailable; retry later"),
}


class ProblemView(BaseModel):
    """An RFC 9457 problem as this API sends it (for the OpenAPI description)."""

    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    errors: list[dict[str, Any]] | None = None
    """For 422: where each invalid part of the request is and what is wrong with it."""


class Problem(Exception):
    """Raise to answer with a problem. `headers` go on the response (WWW-Authenticate, Retry-After, ...);
    `extra` members are added to the body (RFC 9457 extensions)."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str = "",
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.code, self.title, self.detail = status, code, title, detail
        self.headers = dict(headers or {})
        self.extra = extra


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str = "",
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": PROBLEM_TYPE_BASE + code, "title": title, "status": status, "code": code}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def status_problem(status: int, detail: str = "", headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The problem for a bare HTTP status (framework errors)."""
    code, title = CODE_BY_STATUS.get(status, (f"http_{status}", "HTTP error"))
    return problem_response(status, code, title, detail, headers)


def _problem_content() -> dict[str, Any]:
    return {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemView"}}}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """For a route's or router's `responses=`: the statuses it may answer with a problem, described in
    the OpenAPI document (as `application/problem+json` only)."""
    return {
        status: {
            "content": _problem_content(),
            "description": CODE_BY_STATUS.get(status, (f"http_{status}", "HTTP error"))[1],
        }
        for status in statuses
    }


def install_problem_openapi(app: FastAPI) -> None:
    """Describe problems as they are sent: the `ProblemView` schema, and every 422 as a problem (FastAPI
    would describe it as its own JSON validation error)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas["ProblemView"] = ProblemView.model_json_schema()
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                invalid = operation.get("responses", {}).get("422")
                if invalid is not None:  # a route's own examples of its 422 problems are kept
                    examples = invalid.get("content", {}).get(PROBLEM_MEDIA_TYPE, {}).get("examples")
                    invalid["content"] = _problem_content()
                    if examples is not None:
                        invalid["content"][PROBLEM_MEDIA_TYPE]["examples"] = examples
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def install_problem_handlers(app: FastAPI) -> None:
    install_problem_openapi(app)

    @app.exception_handler(Problem)
    async def on_problem(_: Request, error: Problem) -> JSONResponse:
        return problem_response(
            error.status, error.code, error.title, error.detail, error.headers, **error.extra
        )

    @app.exception_handler(LedgerError)
    async def on_ledger_error(_: Request, error: LedgerError) -> JSONResponse:
        status = STATUS_BY_ERROR.get(type(error), 500)
        title = type(error).__doc__ or error.code
        if status >= 500:  # the message may quote the database; the log keeps it, the caller does not
            headers = {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)} if status == 503 else None
            return problem_response(status, error.code, title.strip(), headers=headers)
        return problem_response(status, error.code, title.strip(), str(error))

    @app.exception_handler(Refused)
    async def on_refused(_: Request, refusal: Refused) -> JSONResponse:
        status = STATUS_BY_REFUSAL[refusal.kind]
        return problem_response(status, refusal.code, CODE_BY_STATUS[status][1], refusal.message)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        # Each error's location and message only: pydantic's `input` could echo a secret or an IIN.
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in error.errors()]
        return problem_response(422, "invalid_request", "The request is not valid", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        status = error.status_code
        detail = error.detail if isinstance(error.detail, str) and status < 500 else ""
        if detail == HTTPStatus(status).phrase:  # Starlette's default says nothing the title does not
            detail = ""
        code, title = CODE_BY_STATUS.get(status, (f"http_{status}", "HTTP error"))
        return problem_response(status, code, title, detail, error.headers)
