"""Who reaches the treasury: every officer route (programmes, policies, funding, sub-funds, bulk issuance,
voucher steps, providers, sweeps, positions) refuses every other role with 403 and no credential with
401, and a refused request changes nothing — not a row, not an idempotency key, not a file."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.credentials import Role
from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork
from tests.api_world import voucher_api_settings
from tests.test_api_support import bearer, running
from tests.test_api_treasury_support import (
    TreasuryApi,
    meals_policy,
    open_funded_programme,
    programme_body,
    programme_url,
    treasury_api,
    wait_for_job,
)
from tests.treasury_operations_world import fresh_iins
from tests.voucher_world import fresh_bin

# Everything a treasury route writes, counted (and summed where a row changes in place).
FINGERPRINT = """
SELECT (SELECT count(*) FROM programmes), (SELECT coalesce(sum(state), 0) FROM programmes),
       (SELECT count(*) FROM funding_orders), (SELECT coalesce(sum(state), 0) FROM funding_orders),
       (SELECT coalesce(sum(funded_tiyn), 0) FROM programme_funding), (SELECT count(*) FROM voucher_policies),
       (SELECT count(*) FROM sub_funds), (SELECT count(*) FROM fund_allocations),
       (SELECT count(*) FROM issuance_jobs), (SELECT count(*) FROM vouchers),
       (SELECT count(*) FROM voucher_transitions), (SELECT count(*) FROM providers),
       (SELECT count(*) FROM programme_providers),
       (SELECT coalesce(sum("timestamp"), 0) FROM provider_profiles),
       (SELECT count(*) FROM transfers), (SELECT count(*) FROM api_idempotency_keys)
"""


@dataclass
class Scene:
    api: TreasuryApi
    data_dir: Path
    programme: dict[str, Any]  # open, national, funded, with a sub-fund
    sub_fund: str
    order: str  # awaiting approval
    job: str
    provider: str
    voucher: str


@pytest.fixture(scope="module")
def scene(database_url, tmp_path_factory, pool, voucher_ledger) -> Iterator[Scene]:
    data_dir = tmp_path_factory.mktemp("treasury-access")
    with running(voucher_api_settings(database_url, data_dir)) as client:
        api = treasury_api(client, UnitOfWork(pool))
        programme = open_funded_programme(
            api, 2_000_000, region="national", approval_threshold_tiyn=1_000_000
        )
        sub_fund = api.post(programme_url(programme, "/sub-funds"), {"region": "Алматы"}).json()["account_id"]
        order = api.post(programme_url(programme, "/funding-orders"), {"amount_tiyn": 1_500_000}).json()["id"]
        upload = api.upload(
            programme["id"], "iin,entitlement\n" + "".join(f"{i},uses:1\n" for i in fresh_iins(2))
        )
        job = wait_for_job(api, upload.json()["id"])
        [voucher] = _row(pool, "SELECT id FROM vouchers WHERE programme_id = %s LIMIT 1", programme["id"])
        provider = api.post(
            "/v1/treasury/providers", {"bin": fresh_bin(), "name": "Асхана", "category": "canteen"}
        )
        yield Scene(api, data_dir, programme, sub_fund, order, job["id"], provider.json()["id"], str(voucher))


def _routes(scene: Scene) -> list[tuple[str, str, Any]]:
    """(method, url, JSON body) of every treasury route, about things that exist."""
    programme, order, job = scene.programme, scene.order, scene.job
    voucher = f"/v1/treasury/vouchers/{scene.voucher}"
    provider = f"/v1/treasury/providers/{scene.provider}"
    profile = {"address": "Астана", "iban": "KZ86125KZT5004100100", "bank_name": "Банк", "bic": "HSBKKZKX",
               "contract_number": "Д-1", "contract_date": "2026-01-15"}  # fmt: skip
    return [
        ("POST", "/v1/treasury/programmes", programme_body()),
        ("GET", "/v1/treasury/programmes", None),
        ("GET", programme_url(programme), None),
        ("POST", programme_url(programme, "/open"), None),
        ("POST", programme_url(programme, "/close"), None),
        ("GET", programme_url(programme, "/policies"), None),
        ("POST", programme_url(programme, "/policies"), {"policy": meals_policy(price_per_use_tiyn=1)}),
        ("GET", programme_url(programme, "/positions"), None),
        ("POST", "/v1/treasury/sweeps", None),
        ("POST", programme_url(programme, "/funding-orders"), {"amount_tiyn": 1}),
        ("GET", programme_url(programme, "/funding-orders"), None),
        ("GET", f"/v1/treasury/funding-orders/{order}", None),
        ("POST", f"/v1/treasury/funding-orders/{order}/approve", None),
        ("POST", f"/v1/treasury/funding-orders/{order}/reject", {"reason": "нет"}),
        ("POST", programme_url(programme, "/sub-funds"), {"region": "Шымкент"}),
        ("GET", programme_url(programme, "/sub-funds"), None),
        ("POST", programme_url(programme, f"/sub-funds/{scene.sub_fund}/allocations"),
         {"direction": "allocate", "amount_tiyn": 1}),
        ("POST", programme_url(programme, "/issuance-jobs"), "upload"),
        ("GET", programme_url(programme, "/issuance-jobs"), None),
        ("GET", f"/v1/treasury/issuance-jobs/{job}", None),
        ("GET", f"/v1/treasury/issuance-jobs/{job}/rejections.csv", None),
        ("GET", voucher, None),
        ("POST", f"{voucher}/suspend", {"reason": "проверка"}),
        ("POST", f"{voucher}/resume", {"reason": "проверка"}),
        ("POST", f"{voucher}/revoke", {"reason": "проверка"}),
        ("POST", "/v1/treasury/providers", {"bin": fresh_bin(), "name": "Асхана", "category": "canteen"}),
        ("GET", provider, None),
        ("PUT", f"{provider}/profile", profile),
        ("POST", programme_url(programme, "/providers"), {"provider_id": scene.provider}),
    ]  # fmt: skip


def _send(client: TestClient, method: str, url: str, body: Any, headers: dict[str, str]) -> Any:
    headers = headers | {"Idempotency-Key": str(new_id())}
    if body == "upload":
        content = "iin,entitlement\n" + "".join(f"{i},uses:1\n" for i in fresh_iins(3))
        return client.post(url, content=content.encode(), headers=headers | {"Content-Type": "text/csv"})
    return client.request(method, url, json=body, headers=headers)


def _row(pool: Any, query: str, *parameters: Any) -> tuple[Any, ...]:
    row = UnitOfWork(pool).read(lambda c: c.execute(query, parameters).fetchone())
    assert row is not None
    return tuple(row)


def _fingerprint(pool: Any) -> tuple[Any, ...]:
    return _row(pool, FINGERPRINT)


def _files(data_dir: Path) -> list[str]:
    return sorted(str(path) for path in data_dir.rglob("*"))


def _template(url: str, scene: Scene) -> str:
    ids = {scene.programme["id"]: "programme_id", scene.sub_fund: "account_id", scene.order: "order_id",
           scene.job: "job_id", scene.voucher: "voucher_id", scene.provider: "provider_id"}  # fmt: skip
    for value, name in ids.items():
        url = url.replace(str(value), "{" + name + "}")
    return url


def test_the_table_covers_every_treasury_route(scene):
    documented = {
        (method.upper(), path)
        for path, operations in scene.api.client.get("/openapi.json").json()["paths"].items()
        if path.startswith("/v1/treasury/") and "/settlement" not in path
        for method in operations
    }
    assert documented == {(method, _template(url, scene)) for method, url, _ in _routes(scene)}


@pytest.mark.parametrize("role", [role for role in Role if role is not Role.treasury_officer])
def test_other_roles_are_refused_every_treasury_route_and_change_nothing(scene, pool, role):
    before, files = _fingerprint(pool), _files(scene.data_dir)
    for method, url, body in _routes(scene):
        answer = _send(scene.api.client, method, url, body, bearer(scene.api.role_keys[role]))
        assert (answer.status_code, answer.json()["code"]) == (403, "role_forbidden"), (method, url)
        assert set(answer.json()) <= {"type", "title", "status", "code", "detail"}
    assert _fingerprint(pool) == before and _files(scene.data_dir) == files


def test_no_credential_reaches_nothing_and_changes_nothing(scene, pool):
    before = _fingerprint(pool)
    for method, url, body in _routes(scene):
        answer = _send(scene.api.client, method, url, body, {})
        assert (answer.status_code, answer.json()["code"]) == (401, "credential_missing"), (method, url)
    assert _fingerprint(pool) == before


def test_an_officer_reaches_every_read(scene):
    for method, url, _ in _routes(scene):
        if method == "GET":
            assert scene.api.get(url).status_code == 200, url
