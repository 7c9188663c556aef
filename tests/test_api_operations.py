"""Operations: body limits, rate limits, request ids, request logs without secrets or IINs, Prometheus
metrics, and the open health endpoints."""

import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.credentials import Role
from api.logs import configure_logging
from ledger.accounts import Account
from ledger.ids import new_id
from ledger.money import Asset
from ledger.unit_of_work import UnitOfWork
from tests.test_api_support import IIN, api_settings, bearer, convention_routes, issue, running

LIMITS = {"request_body_bytes_max": 1024, "bulk_upload_bytes_max": 4096}


@pytest.fixture(scope="module")
def unit_of_work(pool) -> UnitOfWork:
    return UnitOfWork(pool)


@pytest.fixture
def client(database_url, tmp_path) -> Iterator[TestClient]:
    with running(api_settings(database_url, tmp_path, **LIMITS), convention_routes([], {})) as test_client:
        yield test_client


@pytest.fixture
def key(unit_of_work) -> str:
    return issue(unit_of_work, Role.operator).secret


def _padded(size_bytes: int) -> bytes:
    """A JSON voucher body of exactly `size_bytes` bytes."""
    head = b'{"amount_tiyn": 1, "holder": "'
    return head + b"x" * (size_bytes - len(head) - 2) + b'"}'


def test_a_body_over_the_limit_is_a_413(client, key):
    headers = bearer(key) | {"content-type": "application/json"}
    assert client.post("/test/small", content=_padded(1024), headers=headers).status_code == 200
    answer = client.post("/test/small", content=_padded(1025), headers=headers)
    assert answer.status_code == 413 and answer.json()["code"] == "request_too_large"
    assert answer.headers["content-type"] == "application/problem+json"


def test_a_streamed_body_is_cut_at_the_limit_too(client, key):
    chunks = iter([b'{"holder": "', b"x" * 1000, b"x" * 1000, b'", "amount_tiyn": 1}'])  # no Content-Length
    answer = client.post(
        "/test/small", content=chunks, headers=bearer(key) | {"content-type": "application/json"}
    )
    assert answer.status_code == 413 and answer.json()["code"] == "request_too_large"


def test_a_bulk_upload_route_takes_more(client, key):
    assert client.post("/test/uploads", content=b"x" * 4096, headers=bearer(key)).json() == {"bytes": 4096}
    assert client.post("/test/uploads", content=b"x" * 4097, headers=bearer(key)).status_code == 413
    assert client.post("/test/small", content=b"x" * 2048, headers=bearer(key)).status_code == 413


def test_a_credential_over_its_rate_is_a_429(database_url, tmp_path, unit_of_work):
    settings = api_settings(database_url, tmp_path, rate_limit_requests_per_s=0.5, rate_limit_burst=2)
    busy, other = issue(unit_of_work, Role.operator).secret, issue(unit_of_work, Role.operator).secret
    with running(settings, convention_routes([], {})) as client:
        answers = [client.get("/test/items", headers=bearer(busy)) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        refused = answers[2]
        assert (
            refused.json()["code"] == "rate_limited"
            and refused.headers["content-type"] == "application/problem+json"
        )
        assert 1 <= int(refused.headers["retry-after"]) <= 2
        assert (
            client.get("/test/items", headers=bearer(other)).status_code == 200
        )  # buckets are per credential


def test_the_request_id_is_echoed_or_made(client, key):
    given = client.get("/healthz", headers={"X-Request-Id": "pos-17:req.42"})
    assert given.headers["x-request-id"] == "pos-17:req.42"
    made = client.get("/healthz").headers["x-request-id"]
    insane = client.get("/healthz", headers={"X-Request-Id": "a b\tc"}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f-]{36}", made) and re.fullmatch(r"[0-9a-f-]{36}", insane) and made != insane
    assert client.get("/test/items").headers["x-request-id"]  # on a 401 problem too
    assert client.get("/test/boom", headers=bearer(key)).headers["x-request-id"]  # and on a 500


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("json", "info", stream)
    yield stream
    configure_logging("json", "warning")


def _log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_the_request_log_names_the_request_but_no_secret_or_iin(captured_logs, database_url, tmp_path, key):
    with running(api_settings(database_url, tmp_path), convention_routes([], {})) as client:
        client.get(f"/test/citizens/{IIN}", headers=bearer(key) | {"X-Request-Id": "trace-1"})
        client.get("/test/boom", headers=bearer(key))
        client.get("/test/items", headers={"Authorization": f"Bearer {key}x"})
    text = captured_logs.getvalue()
    assert IIN not in text and "********0017" in text
    assert key[20:] not in text and "hunter2" in text  # the exception is logged, the key never
    lines = _log_lines(captured_logs)
    read = next(line for line in lines if line["event"] == "http_request" and line["request_id"] == "trace-1")
    assert read["method"] == "GET" and read["route"] == "/test/citizens/{iin}" and read["status"] == 200
    assert (
        read["credential_id"] and read["duration_ms"] >= 0 and read["path"] == "/test/citizens/********0017"
    )
    inside = next(line for line in lines if line["event"] == "citizen_read")
    assert inside["request_id"] == "trace-1" and inside["iin"] == "********0017"
    failed = next(line for line in lines if line["event"] == "request_failed")
    assert IIN not in failed["exception"] and "********0017" in failed["exception"]


def test_metrics_count_requests_by_route_and_status(client, key):
    client.get(f"/v1/ledger/accounts/{new_id()}", headers=bearer(key))
    client.post("/test/redemptions", headers=bearer(key))
    client.post("/test/redemptions", headers=bearer(key))
    exposition = client.get("/metrics")
    assert exposition.status_code == 200 and exposition.headers["content-type"].startswith("text/plain")
    text = exposition.text
    assert (
        'amiyan_http_requests_total{method="GET",route="/v1/ledger/accounts/{account_id}",status="404"} 1.0'
        in text
    )
    assert 'amiyan_http_request_duration_seconds_bucket{le="0.001",method="POST"' in text
    assert 'amiyan_test_redemptions_total{result="ok"} 2.0' in text
    assert re.search(r"^amiyan_audit_integration_lag_seconds \d", text, re.MULTILINE)


def test_health_readiness_and_metrics_need_no_credential(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/metrics").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"
    assert ready.json()["audit_integrator"]["status"] in ("ok", "lagging")


def test_readiness_reports_a_lagging_integrator(database_url, tmp_path, ledger):
    # No integrator runs in the test session: this event waits in the inbox.
    ledger.create_accounts([Account(id=new_id(), asset=int(Asset.KZT), code=1)])
    settings = api_settings(database_url, tmp_path, readiness_integration_lag_s_max=0.001)
    with running(settings) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 200  # reported, not a reason to leave the load balancer
    integrator = ready.json()["audit_integrator"]
    assert integrator["status"] == "lagging" and integrator["oldest_waiting_s"] > 0.001
