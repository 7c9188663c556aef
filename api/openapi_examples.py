"""Examples of the problems each route answers with, for the OpenAPI document.

A route names the problems it may send, by status, with their stable codes::

    @router.post(..., responses=problem_examples({404: [TERMINAL_NOT_FOUND], 422: [PUBLIC_KEY_INVALID]}))

and `install_problem_examples` gives every other documented problem status an example built from its
generic code (401 `unauthenticated`, 429 `rate_limited`, ...), so no error in the document is without one.
`edit_openapi` is how this and other additions (the security schemes, `api.auth`) change the document.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from fastapi import FastAPI

from api.problems import (
    CODE_BY_STATUS,
    PROBLEM_MEDIA_TYPE,
    PROBLEM_TYPE_BASE,
    STATUS_BY_REFUSAL,
    problem_responses,
)
from treasury.errors import RefusalKind

ProblemCode = tuple[str, str]  # (code, title)
# What the shared machinery answers (api.auth, api.idempotency, api.pagination, api.edge).
CREDENTIAL_MISSING: Final = ("credential_missing", "A credential is required")
ROLE_FORBIDDEN: Final = ("role_forbidden", "This credential's role may not do that")
RATE_LIMITED: Final = ("rate_limited", "Too many requests from this credential")
UNAVAILABLE: Final = ("unavailable", "The service is unavailable; retry later")
INVALID_REQUEST: Final = ("invalid_request", "The request is not valid")
CURSOR_INVALID: Final = ("cursor_invalid", "This cursor was not made by this API")
IDEMPOTENCY_KEY_MISSING: Final = ("idempotency_key_missing", "This request needs Idempotency-Key")
IDEMPOTENCY_KEY_REUSED: Final = (
    "idempotency_key_reused",
    "This Idempotency-Key was used for a different request",
)
IDEMPOTENCY_IN_PROGRESS: Final = (
    "idempotency_request_in_progress", "A request with this Idempotency-Key is still running"
)  # fmt: skip
TOO_LARGE: Final = ("request_too_large", "The request body is too large")
UNSUPPORTED_MEDIA_TYPE: Final = (
    "unsupported_media_type",
    "The request body's media type is not accepted here",
)
# Every route behind a credential may answer these.
AUTHENTICATED: Final[Mapping[int, Sequence[ProblemCode]]] = {
    401: [CREDENTIAL_MISSING],
    403: [ROLE_FORBIDDEN],
    422: [INVALID_REQUEST],
    429: [RATE_LIMITED],
    503: [UNAVAILABLE],
}
# A POST that creates something under an Idempotency-Key, with a JSON body.
IDEMPOTENT_POST: Final[Mapping[int, Sequence[ProblemCode]]] = {
    400: [IDEMPOTENCY_KEY_MISSING],
    409: [IDEMPOTENCY_KEY_REUSED, IDEMPOTENCY_IN_PROGRESS],
    413: [TOO_LARGE],
    415: [UNSUPPORTED_MEDIA_TYPE],
}
JSON_BODY: Final[Mapping[int, Sequence[ProblemCode]]] = {413: [TOO_LARGE], 415: [UNSUPPORTED_MEDIA_TYPE]}


def _example(status: int, code: str, title: str) -> dict[str, Any]:
    value = {"type": PROBLEM_TYPE_BASE + code, "title": title, "status": status, "code": code}
    return {"summary": title, "value": value}


def problem_examples(*groups: Mapping[int, Sequence[ProblemCode]]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for these problem statuses, each with an example per code (later groups add codes)."""
    codes: dict[int, list[ProblemCode]] = {}
    for group in groups:
        for status, listed in group.items():
            codes.setdefault(status, []).extend(code for code in listed if code not in codes.get(status, []))
    responses = problem_responses(*codes)
    for status, listed in codes.items():
        media = responses[status]["content"][PROBLEM_MEDIA_TYPE]
        media["examples"] = {code: _example(status, code, title) for code, title in listed}
    return responses


def refusal_examples(kind: RefusalKind, *codes: str) -> Mapping[int, Sequence[ProblemCode]]:
    """A group for `problem_examples`: treasury refusals of one kind, each code with the title the one
    refusal table (`api.problems.STATUS_BY_REFUSAL`) gives its status."""
    status = STATUS_BY_REFUSAL[kind]
    return {status: [(code, CODE_BY_STATUS[status][1]) for code in codes]}


def edit_openapi(app: FastAPI, edit: Callable[[dict[str, Any]], None]) -> None:
    """Have `edit` change the document FastAPI generates, once, before it is cached and served. Edits
    installed one after another run in that order."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        edit(document)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def install_problem_examples(app: FastAPI) -> None:
    """Give each problem response of the document that has no example one from its status's generic code."""
    edit_openapi(app, _add_problem_examples)


def _add_problem_examples(document: dict[str, Any]) -> None:
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                media = response.get("content", {}).get(PROBLEM_MEDIA_TYPE)
                if media is not None and "examples" not in media and status.isdigit():
                    code, title = CODE_BY_STATUS.get(int(status), (f"http_{status}", "HTTP error"))
                    media["examples"] = {code: _example(int(status), code, title)}
