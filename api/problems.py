"""RFC 9457 problem details: the one error shape of the HTTP API, with a stable `code`."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.errors import BatchTooLarge, LedgerError, LedgerUnavailable

PROBLEM_TYPE_BASE = "https://amiyan.kz/problems/"

# One map from ledger error to HTTP status; no route has its own error switch.
STATUS_BY_ERROR: dict[type[LedgerError], int] = {
    BatchTooLarge: 413,
    LedgerUnavailable: 503,
}


class Problem(Exception):
    def __init__(self, status: int, code: str, title: str, detail: str = "") -> None:
        super().__init__(detail or title)
        self.status, self.code, self.title, self.detail = status, code, title, detail


def problem_response(status: int, code: str, title: str, detail: str = "", **extra: Any) -> JSONResponse:
    body = {"type": PROBLEM_TYPE_BASE + code, "title": title, "status": status, "code": code}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def on_problem(_: Request, error: Problem) -> JSONResponse:
        return problem_response(error.status, error.code, error.title, error.detail)

    @app.exception_handler(LedgerError)
    async def on_ledger_error(_: Request, error: LedgerError) -> JSONResponse:
        status = STATUS_BY_ERROR.get(type(error), 500)
        return problem_response(status, error.code, type(error).__doc__ or error.code, str(error))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in error.errors()]
        return problem_response(422, "invalid_request", "The request is not valid", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return problem_response(error.status_code, f"http_{error.status_code}", str(error.detail))
