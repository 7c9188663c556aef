"""The API's conventions: Idempotency-Key on creating POSTs, cursor pagination, ETags, and one problem
shape for every error."""

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.credentials import Role
from ledger.unit_of_work import UnitOfWork
from tests.test_api_support import (
    IIN,
    IdempotencyProbe,
    api_settings,
    bearer,
    convention_routes,
    issue,
    running,
)

ITEMS = list(range(100, 107))  # seven items
DOCUMENT: dict[str, Any] = {"version": 1}
JSON, TEXT = {"content-type": "application/json"}, {"content-type": "text/plain"}


@pytest.fixture(scope="module")
def unit_of_work(pool) -> UnitOfWork:
    return UnitOfWork(pool)


@pytest.fixture
def probe() -> IdempotencyProbe:
    return IdempotencyProbe()


@pytest.fixture
def client(database_url, tmp_path, probe) -> Iterator[TestClient]:
    settings = api_settings(database_url, tmp_path, idempotency_in_flight_s_max=1)
    with running(settings, probe.router(), convention_routes(ITEMS, DOCUMENT)) as test_client:
        yield test_client


@pytest.fixture
def key(unit_of_work) -> str:
    return issue(unit_of_work, Role.treasury_officer, name="Aigerim Seitkali").secret


def _post(
    client: TestClient, key: str, idempotency_key: str | None, body: dict[str, Any], path: str = "vouchers"
) -> Any:
    headers = bearer(key) | ({"Idempotency-Key": idempotency_key} if idempotency_key else {})
    return client.post(f"/test/{path}", json=body, headers=headers)


VOUCHER = {"holder": "pupil 7", "amount_tiyn": 150_000}


def test_a_retry_gets_the_first_answer_and_runs_nothing(client, key, probe):
    first = _post(client, key, "order-1", VOUCHER)
    again = _post(client, key, "order-1", VOUCHER)
    assert first.status_code == again.status_code == 201
    assert again.content == first.content and again.headers["location"] == "/v/1"
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert probe.runs == 1


def test_the_same_key_for_another_request_is_a_409(client, key, probe):
    assert _post(client, key, "order-2", VOUCHER).status_code == 201
    changed = _post(client, key, "order-2", VOUCHER | {"amount_tiyn": 150_001})
    assert changed.status_code == 409 and changed.json()["code"] == "idempotency_key_reused"
    elsewhere = _post(client, key, "order-2", VOUCHER, path="credentials")  # same body, another route
    assert elsewhere.status_code == 409 and elsewhere.json()["code"] == "idempotency_key_reused"
    assert probe.runs == 1


def test_keys_belong_to_their_credential(client, key, unit_of_work, probe):
    other = issue(unit_of_work, Role.treasury_officer, name="Dana Omarova").secret
    assert _post(client, key, "order-3", VOUCHER).json()["run"] == 1
    assert _post(client, other, "order-3", VOUCHER).json()["run"] == 2  # not the first officer's answer


def test_a_duplicate_while_the_first_runs_is_a_409(client, key, probe):
    probe.gate = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(_post, client, key, "order-4", VOUCHER)
        assert probe.entered.wait(5)
        duplicate = _post(client, key, "order-4", VOUCHER)
        probe.gate.set()
        assert first.result().status_code == 201
    assert duplicate.status_code == 409 and duplicate.json()["code"] == "idempotency_request_in_progress"
    assert duplicate.headers["retry-after"] == "1"
    assert _post(client, key, "order-4", VOUCHER).headers["idempotent-replayed"] == "true"
    assert probe.runs == 1


def test_a_failed_request_frees_its_key_for_the_retry(client, key, probe):
    probe.fail_next = True
    assert _post(client, key, "order-5", VOUCHER).status_code == 503
    retried = _post(client, key, "order-5", VOUCHER)
    assert retried.status_code == 201 and "idempotent-replayed" not in retried.headers
    assert probe.runs == 2


def test_a_key_is_required_and_well_formed(client, key, probe):
    missing = _post(client, key, None, VOUCHER)
    assert missing.status_code == 400 and missing.json()["code"] == "idempotency_key_missing"
    spaced = _post(client, key, "has a space", VOUCHER)
    assert spaced.status_code == 400 and spaced.json()["code"] == "idempotency_key_invalid"
    assert probe.runs == 0


def _credentials_named(unit_of_work: UnitOfWork, name: str) -> int:
    row = unit_of_work.read(
        lambda c: c.execute("SELECT count(*) FROM api_credentials WHERE name = %s", (name,)).fetchone()
    )
    assert row is not None
    return int(row[0])


def test_a_request_that_outlived_its_claim_keeps_nothing(client, key, probe, unit_of_work):
    """The first request stalls past the in-flight limit (1 s here); its retry takes the key over and
    completes. When the first finally answers, its business write rolls back with its answer."""
    holder = f"stalled {time.time_ns()}"
    body: dict[str, Any] = {"holder": holder, "amount_tiyn": 1}
    probe.gate = threading.Event()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(_post, client, key, "order-6", body, "credentials")
        assert probe.entered.wait(5)
        probe.entered.clear()
        time.sleep(1.2)
        second = pool.submit(_post, client, key, "order-6", body, "credentials")
        assert probe.entered.wait(5)  # the retry took the key over and is running too
        probe.gate.set()
        takeover = second.result()
        assert takeover.status_code == 201
        assert first.result().json()["code"] == "idempotency_claim_lost"
    assert _credentials_named(unit_of_work, holder) == 1
    replay = _post(client, key, "order-6", body, "credentials")
    assert replay.content == takeover.content


def test_pages_walk_every_item_once(client, key):
    seen: list[int] = []
    link: str | None = "/test/items?limit=3"
    pages = 0
    while link is not None:
        page = client.get(link, headers=bearer(key)).json()
        seen += page["items"]
        link = page["next"]
        pages += 1
    assert seen == ITEMS and pages == 3


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("cursor=not-a-cursor", 400, "cursor_invalid"),
        ("cursor=WzFd", 400, "cursor_invalid"),  # base64url of [1]: JSON, but not a position
        ("limit=0", 422, "invalid_request"),
        ("limit=501", 422, "invalid_request"),
    ],
)
def test_a_bad_cursor_or_limit_is_a_problem(client, key, query, status, code):
    answer = client.get(f"/test/items?{query}", headers=bearer(key))
    assert answer.status_code == status and answer.json()["code"] == code


def test_an_unchanged_document_is_not_sent_again(client, key):
    first = client.get("/test/document", headers=bearer(key))
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "private, no-cache"
    unchanged = client.get("/test/document", headers=bearer(key) | {"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged.headers["etag"] == etag
    weak = client.get("/test/document", headers=bearer(key) | {"If-None-Match": f'"x", W/{etag}'})
    assert weak.status_code == 304
    DOCUMENT["version"] += 1
    changed = client.get("/test/document", headers=bearer(key) | {"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("get", "/no/such/route", {}, 404, "not_found"),
        ("delete", "/test/items", {}, 405, "method_not_allowed"),
        ("post", "/test/small", {"json": {"holder": "x"}}, 422, "invalid_request"),
        ("post", "/test/small", {"content": b"{", "headers": JSON}, 422, "invalid_request"),
        ("post", "/test/small", {"content": b"holder=x", "headers": TEXT}, 415, "unsupported_media_type"),
        ("get", "/test/boom", {}, 500, "internal_error"),
    ],
)
def test_every_error_is_a_problem(client, key, method, path, kwargs, status, code):
    kwargs = dict(kwargs)
    kwargs["headers"] = bearer(key) | kwargs.get("headers", {})
    answer = client.request(method.upper(), path, **kwargs)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["code"] == code and problem["status"] == status and problem["type"].endswith(code)
    assert "hunter2" not in answer.text and IIN not in answer.text and "RuntimeError" not in answer.text
    if status == 405:
        assert answer.headers["allow"] == "GET"


def test_the_openapi_document_describes_credentials_and_problems(client):
    document = client.get("/openapi.json").json()
    assert set(document["components"]["securitySchemes"]) == {"ApiKey", "OAuth2"}
    read = document["paths"]["/v1/ledger/accounts/{account_id}"]["get"]
    assert {"ApiKey": []} in read["security"] and {"OAuth2": []} in read["security"]
    for status in ("401", "403", "422", "429"):
        assert list(read["responses"][status]["content"]) == ["application/problem+json"], status
    create = document["paths"]["/test/vouchers"]["post"]
    assert [p["name"] for p in create["parameters"]] == ["Idempotency-Key"]
    assert "security" not in document["paths"]["/healthz"]["get"]
    # Every route that checks a credential says so, and only those: the public ones are these four.
    public = {("/healthz", "get"), ("/readyz", "get"), ("/oauth/token", "post"), ("/v1/keys/issuers", "get")}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/v1/") or (path, method) in public:
                assert ("security" in operation) == ((path, method) not in public), (method, path)
