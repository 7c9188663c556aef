"""ETags for reads: a strong validator from a hash of the exact response bytes, and 304 for a client
that already has them (``If-None-Match``).

    @router.get("/programmes/{programme_id}", response_model=ProgrammeView)
    def read_programme(programme_id: uuid.UUID, request: Request, ...) -> Response:
        return conditional_response(request, ProgrammeView.of(programme))

The route still reads what it renders (the hash is of the rendering); what a 304 saves is the transfer
and the client's parsing. Answers are `Cache-Control: private, no-cache`: they depend on the credential,
so no shared cache may keep them, and a client must revalidate before reuse.
"""

import base64
import hashlib
from collections.abc import Mapping
from typing import Any, Final

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

CACHE_CONTROL: Final = "private, no-cache"


def etag_of(body: bytes) -> str:
    digest = hashlib.sha256(body).digest()[:18]
    return '"' + base64.urlsafe_b64encode(digest).decode("ascii") + '"'


def if_none_match(header: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison against each listed tag, or `*`."""
    if header is None:
        return False
    tags = [tag.strip() for tag in header.split(",")]
    return "*" in tags or etag in (tag.removeprefix("W/") for tag in tags)


def conditional_response(
    request: Request, content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """`content` as JSON with its ETag, or 304 Not Modified when the client's copy is current."""
    rendered = JSONResponse(jsonable_encoder(content), status_code=status_code, headers=headers)
    etag = etag_of(bytes(rendered.body))
    validators = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if if_none_match(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=validators)
    rendered.headers.update(validators)
    return rendered
