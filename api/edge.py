"""The edge of every HTTP request: one ASGI middleware, wrapped around the whole app in `create_app`.

For each request it
* takes the caller's ``X-Request-Id`` (when it is a sane token) or makes one, binds it to every log line
  written while the request runs, and echoes it on the response;
* holds the body to its limit (413) and hashes it (the Idempotency-Key compares requests by it). The
  limit is `request_body_bytes_max` unless the route asks for a larger class:
  ``@router.post(..., openapi_extra=body_limit(BodyLimit.bulk_upload))``;
* answers anything unexpected with a 500 problem that says nothing of the cause (the log has it);
* writes one log line — request id, method, route template, status, duration, credential id; never a
  header, a query string or a body — and counts and times the request in Prometheus.

The limit is enforced while the body is read, which happens after routing, so the route's class is known.
`check_media_type`, an app-wide dependency, answers 415 for a body the route does not read.
"""

import hashlib
import re
import time
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final

import structlog
from fastapi import HTTPException, Request, params
from fastapi.routing import APIRoute
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import Metrics
from api.problems import status_problem
from ledger.ids import new_id

REQUEST_ID_HEADER: Final = "X-Request-Id"
BODY_LIMIT_EXTENSION: Final = "x-amiyan-body-limit"
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_BODY_SHA256: Final = "amiyan.body_sha256"
_JSON_TYPES: Final = frozenset({"application/json"})
_FORM_TYPES: Final = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


class BodyLimit(StrEnum):
    """A class of body-size limit; the bytes of each come from the settings."""

    default = "default"
    bulk_upload = "bulk_upload"


def body_limit(limit: BodyLimit) -> dict[str, Any]:
    """For a route's `openapi_extra=`: the body limit class it accepts (shown in the OpenAPI document)."""
    return {BODY_LIMIT_EXTENSION: limit.value}


def body_sha256(scope: Scope) -> bytes | None:
    """SHA-256 of the request body once it has been read to the end, else None."""
    digest: bytes | None = scope.get(_BODY_SHA256)
    return digest


class _RequestBody:
    """One request's `receive`, limited and hashed as the app reads it."""

    def __init__(self, scope: Scope, receive: Receive, limits: Mapping[BodyLimit, int]) -> None:
        self.scope, self._receive, self.limits = scope, receive, limits
        self.headers = Headers(scope=scope)
        self.limit_bytes: int | None = None  # known at the first read, after routing
        self.size = 0
        self.digest = hashlib.sha256()

    async def receive(self) -> Message:
        if self.limit_bytes is None:
            self._limit_for_route()
        message = await self._receive()
        if message["type"] != "http.request":
            return message
        chunk: bytes = message.get("body", b"")
        self.size += len(chunk)
        assert self.limit_bytes is not None
        if self.size > self.limit_bytes:
            raise _too_large(self.limit_bytes)
        self.digest.update(chunk)
        if not message.get("more_body", False):
            self.scope[_BODY_SHA256] = self.digest.digest()
        return message

    def _limit_for_route(self) -> None:
        route = self.scope.get("route")
        extra = getattr(route, "openapi_extra", None) or {}
        self.limit_bytes = self.limits[BodyLimit(extra.get(BODY_LIMIT_EXTENSION, BodyLimit.default))]
        declared = _content_length(self.headers)
        if declared is not None and declared > self.limit_bytes:
            raise _too_large(self.limit_bytes)


async def check_media_type(request: Request) -> None:
    """An app-wide dependency: a body must be of the media type the route reads (JSON, or a form), else
    415. A dependency rather than part of the edge because a form route never reads a JSON body at all."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or route.body_field is None:
        return  # no body parameter: the route reads the raw body itself, if at all
    if _content_length(request.headers) in (None, 0) and "transfer-encoding" not in request.headers:
        return  # no body: a missing required body is a 422
    accepted = _FORM_TYPES if isinstance(route.body_field.field_info, params.Form) else _JSON_TYPES
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type in accepted or (accepted is _JSON_TYPES and media_type.endswith("+json")):
        return
    raise HTTPException(415, f"send {' or '.join(sorted(accepted))}")


def _too_large(limit_bytes: int) -> HTTPException:
    return HTTPException(413, f"at most {limit_bytes} bytes here")


def _content_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


class Edge:
    def __init__(self, app: ASGIApp, metrics: Metrics, body_bytes_max: Mapping[BodyLimit, int]) -> None:
        self.app = app
        self.metrics = metrics
        self.body_bytes_max = dict(body_bytes_max)
        self.largest_body_bytes = max(self.body_bytes_max.values())
        self.log = structlog.get_logger("api.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        presented = Headers(scope=scope).get(REQUEST_ID_HEADER)
        request_id = presented if presented and _REQUEST_ID.fullmatch(presented) else str(new_id())
        sent: dict[str, int] = {}

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self._call_app(scope, receive, send_with_request_id)
            except Exception:
                self.log.exception("request_failed", path=scope["path"])
                if "status" in sent:
                    raise  # too late for a problem: the server drops the connection
                await status_problem(500)(scope, receive, send_with_request_id)
            finally:
                self._account(scope, sent.get("status", 500), time.perf_counter() - started)

    async def _call_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = _content_length(Headers(scope=scope))
        if declared is not None and declared > self.largest_body_bytes:
            # No route takes this much: refuse before anything reads it.
            problem = status_problem(413, f"at most {self.largest_body_bytes} bytes")
            await problem(scope, receive, send)
            return
        body = _RequestBody(scope, receive, self.body_bytes_max)
        await self.app(scope, body.receive, send)

    def _account(self, scope: Scope, status: int, duration_s: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        principal = scope.get("state", {}).get("principal")
        self.metrics.observe_request(scope["method"], route, status, duration_s)
        (self.log.error if status >= 500 else self.log.info)(
            "http_request",
            method=scope["method"],
            route=route,
            path=scope["path"],
            status=status,
            duration_ms=round(duration_s * 1000, 2),
            credential_id=str(principal.credential_id) if principal is not None else None,
        )
