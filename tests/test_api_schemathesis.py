"""Schemathesis against the live OpenAPI document of a running server (uvicorn on a local port): for every
operation, a bounded number of generated requests, each sent with a credential of the role the route
admits, and every answer must be no 5xx, a documented status, a documented content type and a body that
fits the documented schema. Known-good requests (a signed redemption, a citizen's voucher, ...) are sent
through the same checks, so the schemas of successful answers are held to the document too.

Runtime is bounded by `EXAMPLES_PER_OPERATION` (about 30 s for the whole API on the 2-core machine).
Settlement routes run against a programme settled part of the way (`tests.test_api_settlement_live`),
treasury routes against programmes funded and issuing (`tests.test_api_treasury_live`).
"""

import base64
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.credentials import Role
from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.requests import request_document
from tests.api_world import batch_envelope, role_keys, single_envelope, voucher_api_settings
from tests.test_api_settlement_live import (
    SettlementLive,
    build_settlement_live,
    settlement_known_good,
    settlement_provider_route,
)
from tests.test_api_treasury_live import TreasuryLive, build_treasury_live, treasury_known_good
from tests.voucher_world import World, build_world, fresh_iin

EXAMPLES_PER_OPERATION = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Who calls each family of routes (path prefix → role); the rest are public.
ROLE_BY_PREFIX = {
    "/v1/providers/": Role.provider,
    "/v1/mobile/": Role.mobile_backend,
    "/v1/audit/": Role.auditor,
    "/v1/ledger/": Role.operator,
    "/v1/treasury/": Role.treasury_officer,
}


@dataclass
class LiveApi:
    base_url: str
    world: World  # redeems at once
    offers: World  # asks the citizen's consent first
    keys: dict[Role, str]
    iin: str
    voucher: uuid.UUID
    settlement: SettlementLive  # acts, payouts and a provider's key of a settled programme
    treasury: TreasuryLive  # programmes funded and issuing, a provider, a voucher


@pytest.fixture(scope="module")
def live(database_url, tmp_path_factory, ledger, voucher_ledger, pool) -> Iterator[LiveApi]:
    world, offers = (
        build_world(ledger, voucher_ledger),
        build_world(ledger, voucher_ledger, consent_required=True),
    )
    iin = fresh_iin()
    voucher = offers.issue(iin=iin)
    app = create_app(voucher_api_settings(database_url, tmp_path_factory.mktemp("live")), database_url)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on", access_log=False))
    serving = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    serving.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start"
    host, port = listener.getsockname()
    keys = role_keys(UnitOfWork(pool), world.terminal.provider_id)
    settlement = build_settlement_live(ledger, voucher_ledger, pool, database_url)
    treasury = build_treasury_live(pool, ledger, voucher_ledger)
    yield LiveApi(f"http://{host}:{port}", world, offers, keys, iin, voucher, settlement, treasury)
    server.should_exit = True
    serving.join(10)
    listener.close()


def _authorise(live: LiveApi, path: str, headers: dict[str, Any], path_parameters: dict[str, Any]) -> None:
    role = next((r for prefix, r in ROLE_BY_PREFIX.items() if path.startswith(prefix)), None)
    if role is not None:
        headers["Authorization"] = f"Bearer {live.keys[role]}"
    if role is Role.provider and settlement_provider_route(path):  # the settled programme's provider
        headers["Authorization"] = f"Bearer {live.settlement.provider_key}"
        path_parameters["provider_id"] = str(live.settlement.provider.id)
    elif role is Role.provider:
        path_parameters["provider_id"] = str(live.world.terminal.provider_id)
    if role is Role.mobile_backend and len(str(headers.get("X-Citizen-IIN", ""))) % 3:
        headers["X-Citizen-IIN"] = live.iin  # two in three generated requests are about a real citizen


def _exercise(live: LiveApi, operation: Any) -> str | None:
    """Run one operation's generated examples; its failures as text, or None."""

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        case.headers = dict(case.headers or {})
        _authorise(live, operation.path, case.headers, case.path_parameters)
        if operation.method.upper() == "GET":
            _read_real_settlement(live, case.path_parameters)
        case.call_and_validate(base_url=live.base_url, checks=CHECKS)

    try:
        check()
    except (Exception, BaseExceptionGroup) as error:  # every operation's failures, reported together
        return f"{operation.method.upper()} {operation.path}: {str(error)[:1500]}"
    return None


def test_generated_requests_get_documented_answers_and_never_a_server_error(live):
    schema = schemathesis.openapi.from_url(f"{live.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    failures = [failure for operation in operations if (failure := _exercise(live, operation)) is not None]
    assert failures == [], "\n\n".join(failures)


def _read_real_settlement(live: LiveApi, path_parameters: dict[str, Any]) -> None:
    """Two in three generated reads are about the settled programme and its act (writes never are: they
    would change what the known-good requests below expect)."""
    for name, real in (
        ("programme_id", live.settlement.world.programme_id),
        ("act_number", live.settlement.act),
    ):
        if name in path_parameters and zlib.crc32(str(path_parameters[name]).encode()) % 3:
            path_parameters[name] = str(real)


def _known_good(live: LiveApi) -> list[tuple[str, str, dict[str, Any]]]:
    """Requests that succeed, one or more per route family, as (method, path template, case fields)."""
    world = live.world
    request = world.request(world.issue(), 60_000)
    batch = batch_envelope(world.terminal.id, [request_document(world.request(world.issue(), 60_000))],
                           world.terminal.secret_key)  # fmt: skip
    voucher = {"voucher_id": str(live.voucher)}
    idempotent = {"Idempotency-Key": str(new_id())}
    terminal = {"name": "Till 9", "public_key": base64.b64encode(bytes(32)).decode()}
    return [
        ("POST", "/v1/providers/{provider_id}/redemptions",
         {"body": single_envelope(request, world.terminal.secret_key)}),
        ("POST", "/v1/providers/{provider_id}/redemption-batches", {"body": batch}),
        ("POST", "/v1/providers/{provider_id}/terminals", {"body": terminal, "headers": idempotent}),
        ("GET", "/v1/providers/{provider_id}/terminals/{terminal_id}",
         {"path_parameters": {"terminal_id": str(world.terminal.id)}}),
        ("GET", "/v1/providers/{provider_id}/redemptions", {}),
        ("GET", "/v1/providers/{provider_id}/receivable", {}),
        ("GET", "/v1/mobile/vouchers", {}),
        ("GET", "/v1/mobile/vouchers/{voucher_id}", {"path_parameters": voucher}),
        ("GET", "/v1/mobile/vouchers/{voucher_id}/history", {"path_parameters": voucher}),
        ("GET", "/v1/mobile/vouchers/{voucher_id}/presentation", {"path_parameters": voucher}),
        ("GET", "/v1/mobile/vouchers/{voucher_id}/qr.svg", {"path_parameters": voucher}),
        ("GET", "/v1/mobile/vouchers/{voucher_id}/qr.png", {"path_parameters": voucher}),
        ("POST", "/v1/mobile/vouchers/{voucher_id}/decline",
         {"path_parameters": {"voucher_id": str(live.offers.issue(iin=live.iin))}, "headers": idempotent}),
        ("GET", "/v1/audit/entries", {"query": {"start": 0, "limit": 5}}),
        ("GET", "/v1/audit/keys", {}),
        ("GET", "/v1/keys/issuers", {}),
        *settlement_known_good(live.settlement),
        *treasury_known_good(live.treasury),
    ]  # fmt: skip


def test_successful_answers_fit_the_document(live):
    schema = schemathesis.openapi.from_url(f"{live.base_url}/openapi.json")
    statuses = []
    for method, path, fields in _known_good(live):
        headers = dict(fields.get("headers", {}))
        path_parameters = dict(fields.get("path_parameters", {}))
        _authorise(live, path, headers, path_parameters)
        if path.startswith("/v1/mobile/"):
            headers["X-Citizen-IIN"] = live.iin
        case = schema[path][method].Case(
            path_parameters=path_parameters,
            headers=headers,
            query=fields.get("query"),
            **({"body": fields["body"]} if "body" in fields else {}),
            **({"media_type": fields["media_type"]} if "media_type" in fields else {}),
        )
        response = case.call_and_validate(base_url=live.base_url, checks=CHECKS)
        statuses.append((method, path, response.status_code))
    assert [s for s in statuses if s[2] not in (200, 201, 202)] == []


AUDIENCE_PREFIXES = ("/v1/providers/", "/v1/mobile/", "/v1/audit/", "/v1/keys/", "/v1/treasury/")


def _referenced(document: dict[str, Any], value: Any, found: set[str]) -> set[str]:
    """Names of the component schemas `value` refers to, directly or through other schemas."""
    if isinstance(value, dict):
        reference = value.get("$ref", "")
        name = reference.rsplit("/", 1)[-1] if reference.startswith("#/components/schemas/") else None
        if name is not None and name not in found:
            found.add(name)
            _referenced(document, document["components"]["schemas"][name], found)
        for item in value.values():
            _referenced(document, item, found)
    elif isinstance(value, list):
        for item in value:
            _referenced(document, item, found)
    return found


def test_the_document_gives_every_audience_route_a_summary_and_every_error_and_schema_an_example(live):
    import requests

    document = requests.get(f"{live.base_url}/openapi.json", timeout=10).json()
    assert document["openapi"].startswith("3.1")
    operations = [
        (f"{method.upper()} {path}", operation)
        for path, methods in document["paths"].items()
        if path.startswith(AUDIENCE_PREFIXES)
        for method, operation in methods.items()
    ]
    assert len(operations) == 83
    missing = [label for label, operation in operations if not operation.get("summary")]
    for label, operation in operations:
        for status, response in operation["responses"].items():
            problem = response.get("content", {}).get("application/problem+json")
            if problem is not None and not problem.get("examples"):
                missing.append(f"{label} {status}: a problem without an example")
    referenced = _referenced(document, [operation for _, operation in operations], set())
    # A page's example is its items' (pagination.Page is generic); a problem's are on each response.
    exempt = {name for name in referenced if name.startswith("Page_")} | {"ProblemView"}
    missing += [
        f"schema {name} has no example"
        for name in sorted(referenced - exempt)
        if not document["components"]["schemas"][name].get("examples")
    ]
    assert missing == []
