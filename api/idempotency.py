"""`Idempotency-Key` for POST requests that create something: a retry gets the first answer, never a
second effect.

A route takes `Idempotent` and answers through it::

    def create_programme(body: ProgrammeIn, officer: TreasuryOfficer, idempotency: Idempotent,
                         unit_of_work: UnitOfWorkDep) -> Response:
        def work(connection):
            programme = programmes.create(connection, body.to_domain(), officer.officer_name)
            return idempotency.record(connection, 201, ProgrammeView.of(programme))
        return unit_of_work.run(work)

Semantics, per credential and key (keys of different credentials never meet):

* first request: the key is *claimed* (a row committed before the route runs), the route runs, and its
  answer is stored with `record` (in the route's own transaction) or `respond` (in a transaction of its
  own, after the route's);
* same key, same request (method, path, query and body bytes) after that: the stored answer, replayed
  byte for byte with ``Idempotent-Replayed: true``; the route does not run;
* same key, different request: 409 `idempotency_key_reused`;
* same key while the first still runs: 409 `idempotency_request_in_progress` (retry later);
* the route raised, or returned without recording: the claim is released, nothing is stored, and a retry
  runs the route again. Only what the route chose to record is ever replayed;
* a claim held longer than `idempotency_in_flight_s_max` is presumed dead and may be taken over by the
  same request; the first holder's `record` then fails (409 `idempotency_claim_lost`) and, because it
  ran in the business transaction, rolls the business write back with it;
* an answer is replayed for `idempotency_retention_s` (default 24 h); after that the key is free again.

Limits, honestly: only `record` in the business transaction makes "the write happened" and "the answer is
stored" one fact. With `respond`, a crash between the business commit and the answer's commit leaves the
key released after the in-flight limit, and a retry would run the route again: use it only where the
business call is itself idempotent (ledger transfers are, by their ids). The body is compared as bytes,
so a client must retry with the same bytes. Expired rows are reclaimed when their key is reused;
`purge_expired_keys` removes the rest and needs a scheduled caller. A replay is not rate limited twice:
it is charged like any request.
"""

import hashlib
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

import psycopg
import structlog
from fastapi import Depends, FastAPI, Header, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from api.auth import CurrentPrincipal
from api.edge import body_sha256
from api.problems import Problem
from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork

IDEMPOTENCY_KEY_HEADER: Final = "Idempotency-Key"
REPLAYED_HEADER: Final = "Idempotent-Replayed"
# Printable ASCII without spaces, as the database checks too.
_KEY: Final = re.compile(r"[\x21-\x7e]{1,255}")
_STORED_HEADERS: Final = ("content-type", "location", "etag")
log = structlog.get_logger("api.idempotency")


class IdempotentReplay(Exception):
    """Raised by the dependency to answer with a stored response instead of running the route."""

    def __init__(self, response: Response) -> None:
        super().__init__("replay")
        self.response = response


@dataclass(slots=True)
class IdempotencyClaim:
    """This request's hold on its Idempotency-Key; the route stores its answer through it."""

    unit_of_work: UnitOfWork
    credential_id: uuid.UUID
    key: str
    claim_id: uuid.UUID
    recorded: bool = field(default=False)

    def record(
        self,
        connection: psycopg.Connection[Any],
        status_code: int,
        content: Any,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Store the answer in the caller's transaction (the business write's) and return it."""
        response = JSONResponse(jsonable_encoder(content), status_code=status_code, headers=headers)
        stored = {name: response.headers[name] for name in _STORED_HEADERS if name in response.headers}
        cursor = connection.execute(
            "UPDATE api_idempotency_keys SET status_code = %s, response_headers = %s, response_body = %s,"
            " completed_at = now()"
            " WHERE credential_id = %s AND idempotency_key = %s AND claim_id = %s AND status_code IS NULL",
            (status_code, json.dumps(stored), response.body, self.credential_id, self.key, self.claim_id),
        )
        if cursor.rowcount != 1:
            raise Problem(
                409,
                "idempotency_claim_lost",
                "Another request took over this Idempotency-Key",
                "this request ran past the in-flight limit; nothing it did was kept",
            )
        self.recorded = True
        return response

    def respond(self, status_code: int, content: Any, headers: Mapping[str, str] | None = None) -> Response:
        """Store the answer in a transaction of its own (after the business write committed)."""
        return self.unit_of_work.run(lambda c: self.record(c, status_code, content, headers))

    def release(self) -> None:
        """Give the key up without an answer, so that a retry runs the route again."""
        self.unit_of_work.run(
            lambda connection: connection.execute(
                "DELETE FROM api_idempotency_keys WHERE credential_id = %s AND idempotency_key = %s"
                " AND claim_id = %s AND status_code IS NULL",
                (self.credential_id, self.key, self.claim_id),
            )
        )


async def request_sha256(request: Request) -> bytes:
    """What identifies the request: method, path, query, the body's bytes, and the scope a dependency
    that runs before this one set in ``request.state.idempotency_scope`` (bytes naming who the request is
    about when a header says it, e.g. a citizen's holder hash: the same key for another citizen is then
    another request, 409, never a replay of the first citizen's answer)."""
    digest = body_sha256(request.scope)
    if digest is None:
        await request.body()  # not read yet (no body parameter); reading it completes the digest
        digest = body_sha256(request.scope)
    assert digest is not None, "the edge middleware hashes every request body"
    target = f"{request.method} {request.url.path}?{request.url.query}".encode()
    scope: bytes = getattr(request.state, "idempotency_scope", b"")
    return hashlib.sha256(target + b"\n" + digest + scope).digest()


def claim_idempotency_key(
    request: Request,
    principal: CurrentPrincipal,
    fingerprint: Annotated[bytes, Depends(request_sha256)],
    key: Annotated[
        str | None,
        Header(
            alias=IDEMPOTENCY_KEY_HEADER,
            description="Required. A unique string per intended operation (a UUID is fine); "
            "a retry sends the same key and the same body.",
            examples=["0191f1c2-7a2b-7c3d-8e4f-5a6b7c8d9e0f"],
        ),
    ] = None,
) -> Iterator[IdempotencyClaim]:
    if key is None:
        raise Problem(400, "idempotency_key_missing", f"This request needs {IDEMPOTENCY_KEY_HEADER}")
    if not _KEY.fullmatch(key):
        raise Problem(
            400, "idempotency_key_invalid", "An Idempotency-Key is 1 to 255 printable ASCII characters"
        )
    settings = request.app.state.settings
    claim = IdempotencyClaim(request.app.state.unit_of_work, principal.credential_id, key, new_id())
    retention_s, in_flight_s_max = settings.idempotency_retention_s, settings.idempotency_in_flight_s_max
    outcome = claim.unit_of_work.run(lambda c: _claim(c, claim, fingerprint, retention_s, in_flight_s_max))
    if isinstance(outcome, Response):
        raise IdempotentReplay(outcome)
    succeeded = False
    try:
        yield claim
        succeeded = True
    finally:
        if not (succeeded and claim.recorded):
            if succeeded:
                log.warning("idempotent_response_not_recorded", route=request.url.path)
            claim.release()


Idempotent = Annotated[IdempotencyClaim, Depends(claim_idempotency_key)]


def _claim(
    connection: psycopg.Connection[Any],
    claim: IdempotencyClaim,
    fingerprint: bytes,
    retention_s: int,
    in_flight_s_max: int,
) -> Response | None:
    """None when this request now holds the key; the stored response to replay; or a 409 problem."""
    claimed = connection.execute(
        "INSERT INTO api_idempotency_keys AS k"
        " (credential_id, idempotency_key, request_sha256, claim_id, claimed_at, expires_at)"
        " VALUES (%(credential)s, %(key)s, %(sha)s, %(claim)s, now(),"
        " now() + make_interval(secs => %(keep)s))"
        " ON CONFLICT (credential_id, idempotency_key) DO UPDATE"
        " SET request_sha256 = EXCLUDED.request_sha256, claim_id = EXCLUDED.claim_id, claimed_at = now(),"
        " expires_at = EXCLUDED.expires_at,"
        " status_code = NULL, response_headers = NULL, response_body = NULL, completed_at = NULL"
        # Taken over only when the answer expired, or when the same request's holder is presumed dead.
        " WHERE k.expires_at <= now()"
        " OR (k.status_code IS NULL AND k.request_sha256 = EXCLUDED.request_sha256"
        " AND k.claimed_at <= now() - make_interval(secs => %(stale)s))"
        " RETURNING claim_id",
        {
            "credential": claim.credential_id,
            "key": claim.key,
            "sha": fingerprint,
            "claim": claim.claim_id,
            "keep": retention_s,
            "stale": in_flight_s_max,
        },
    ).fetchone()
    if claimed is not None:
        return None
    # The conflicting row is locked by the upsert above, so it is still there and still as read.
    row = connection.execute(
        "SELECT request_sha256, status_code, response_headers, response_body FROM api_idempotency_keys"
        " WHERE credential_id = %s AND idempotency_key = %s",
        (claim.credential_id, claim.key),
    ).fetchone()
    assert row is not None
    if bytes(row[0]) != fingerprint:
        raise Problem(
            409,
            "idempotency_key_reused",
            "This Idempotency-Key was used for a different request",
            "use a new key for a new request; a retry must repeat the first request exactly",
        )
    if row[1] is None:
        raise Problem(
            409,
            "idempotency_request_in_progress",
            "A request with this Idempotency-Key is still running",
            "retry after it finishes",
            headers={"Retry-After": "1"},
        )
    headers = dict(row[2]) | {REPLAYED_HEADER: "true"}
    return Response(content=bytes(row[3]), status_code=row[1], headers=headers)


def purge_expired_keys(unit_of_work: UnitOfWork, rows_max: int = 10_000) -> int:
    """Delete up to `rows_max` records whose retention has passed; the number deleted."""

    def purge(connection: psycopg.Connection[Any]) -> int:
        cursor = connection.execute(
            "DELETE FROM api_idempotency_keys WHERE ctid = ANY(ARRAY(SELECT ctid FROM api_idempotency_keys"
            " WHERE expires_at <= now() ORDER BY expires_at LIMIT %s))",
            (rows_max,),
        )
        return cursor.rowcount

    return unit_of_work.run(purge)


def install_idempotency(app: FastAPI) -> None:
    @app.exception_handler(IdempotentReplay)
    async def on_replay(_: Request, replay: IdempotentReplay) -> Response:
        return replay.response
