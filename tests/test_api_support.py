"""What the API tests share: an app on the session's database, credentials made for a test, and a few
routes that exist only in tests (they exercise the conventions the audience routers will use).

No tests here; the helpers are plain functions so the test modules import them by name.
"""

import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.testclient import TestClient
from pydantic import BaseModel

from api.app import create_app
from api.auth import CurrentPrincipal, OwnProviderId, ProviderPrincipal, ensure_provider_visible
from api.credentials import CredentialKind, IssuedCredential, Role, create_credential
from api.dependencies import UnitOfWorkDep
from api.edge import BodyLimit, body_limit
from api.etags import conditional_response
from api.idempotency import Idempotent
from api.metrics import MetricsDep
from api.pagination import Page, PageParams
from api.problems import Problem
from api.settings import Settings
from api.tokens import generate_signing_key
from ledger.unit_of_work import UnitOfWork

IIN = "900101300017"  # a valid IIN (see ledger/identity.py's worked example)


def api_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "token_signing_key": generate_signing_key(),
        "log_format": "json",
        "log_level": "warning",
        "rate_limit_requests_per_s": 10_000.0,
        "rate_limit_burst": 10_000,
        "pool_size_max": 4,
    }
    return Settings(**(values | overrides))


@contextmanager
def running(settings: Settings, *routers: APIRouter) -> Iterator[TestClient]:
    app = create_app(settings, str(settings.database_url))
    for router in routers:
        app.include_router(router)
    with TestClient(app) as client:
        yield client


def issue(
    unit_of_work: UnitOfWork,
    role: Role,
    provider_id: uuid.UUID | None = None,
    kind: CredentialKind = CredentialKind.api_key,
    created_at: dt.datetime | None = None,
    valid_for: dt.timedelta | None = None,
    name: str = "test credential",
) -> IssuedCredential:
    now = created_at or dt.datetime.now(dt.UTC)
    return create_credential(unit_of_work, kind, role, name, now, provider_id, valid_for)


def assert_problem(answer: Any, status: int, code: str) -> None:
    """An RFC 9457 problem with this status and stable code."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == code


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


# --- routes that exist only in tests -----------------------------------------------------------------


class Terminal(BaseModel):
    id: uuid.UUID
    provider_id: uuid.UUID


def provider_routes(terminals: dict[uuid.UUID, Terminal]) -> APIRouter:
    """A provider's own data: a path-bound receivable and terminals found by their own id."""
    router = APIRouter(prefix="/test")

    @router.get("/providers/{provider_id}/receivable")
    def read_receivable(provider_id: OwnProviderId, _: CurrentPrincipal) -> dict[str, str]:
        return {"provider_id": str(provider_id)}

    @router.get("/terminals/{terminal_id}")
    def read_terminal(terminal_id: uuid.UUID, caller: ProviderPrincipal) -> Terminal:
        terminal = terminals.get(terminal_id)
        not_found = Problem(404, "terminal_not_found", "No such terminal")
        ensure_provider_visible(caller, terminal.provider_id if terminal else None, not_found)
        assert terminal is not None
        return terminal

    return router


class Voucher(BaseModel):
    holder: str
    amount_tiyn: int


class IdempotencyProbe:
    """A creating route whose every run is counted; `gate` holds a run until a test opens it."""

    def __init__(self) -> None:
        self.runs = 0
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self.fail_next = False

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/test")

        @router.post("/vouchers", status_code=201)
        def create_voucher(body: Voucher, idempotency: Idempotent) -> Response:
            self.runs += 1
            self.entered.set()
            if self.gate is not None:
                self.gate.wait(10)
            if self.fail_next:
                self.fail_next = False
                raise Problem(503, "try_again", "Try again")
            return idempotency.respond(201, {"run": self.runs, "holder": body.holder}, {"Location": "/v/1"})

        @router.post("/credentials", status_code=201)
        def create_probe_credential(
            body: Voucher, idempotency: Idempotent, unit_of_work: UnitOfWorkDep
        ) -> Response:
            """Writes a business row (a credential named after the body) and the answer in one transaction."""
            self.runs += 1
            self.entered.set()
            if self.gate is not None:
                self.gate.wait(10)

            def work(connection: Any) -> Response:
                connection.execute(
                    "INSERT INTO api_credentials (id, kind, role, name, public_id, secret_sha256,"
                    " created_at) VALUES (gen_random_uuid(), 'api_key', 'auditor', %s,"
                    " substr(md5(random()::text), 1, 16), sha256('x'), now())",
                    (body.holder,),
                )
                return idempotency.record(connection, 201, {"holder": body.holder, "run": self.runs})

            return unit_of_work.run(work)

        return router


def convention_routes(items: list[int], state: dict[str, Any]) -> APIRouter:
    router = APIRouter(prefix="/test")

    @router.get("/items", response_model=Page[int])
    def list_items(page: PageParams, _: CurrentPrincipal) -> Page[int]:
        after = page.after("after")
        start = 0 if after is None else items.index(int(after)) + 1
        return page.of(items[start : start + page.fetch_limit], lambda item: {"after": item})

    @router.get("/document")
    def read_document(request: Request, _: CurrentPrincipal) -> Response:
        return conditional_response(request, {"version": state["version"]})

    @router.get("/boom")
    def boom(_: CurrentPrincipal) -> None:
        raise RuntimeError(f"database password hunter2 for citizen {IIN}")

    @router.post("/small")
    def post_small(body: Voucher, _: CurrentPrincipal) -> dict[str, int]:
        return {"amount_tiyn": body.amount_tiyn}

    @router.post("/uploads", openapi_extra=body_limit(BodyLimit.bulk_upload))
    async def upload(request: Request, _: CurrentPrincipal) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @router.post("/redemptions")
    def redeem(caller: CurrentPrincipal, metrics: MetricsDep) -> dict[str, str]:
        metrics.counter("amiyan_test_redemptions", "Redemptions in tests", ["result"]).labels("ok").inc()
        return {"by": str(caller.credential_id)}

    @router.get("/citizens/{iin}")
    def read_citizen(iin: str, _: CurrentPrincipal) -> dict[str, str]:
        import structlog

        structlog.get_logger("test").info("citizen_read", iin=iin, note=f"looked up {iin}")
        return {"found": "yes"}

    return router


def app_of(client: TestClient) -> FastAPI:
    app = client.app
    assert isinstance(app, FastAPI)
    return app
