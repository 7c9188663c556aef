"""What the treasury API tests share: two officers' credentials (and one per other role), a valid
programme as an officer sends it, and helpers that take the treasury's steps the way a client would —
each POST with a fresh Idempotency-Key unless the test names one.

No tests here; the helpers are plain functions so the test modules import them by name.
"""

import datetime as dt
import secrets
import time
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from api.credentials import Role
from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork
from tests.test_api_support import bearer, issue
from tests.treasury_world import MINISTRY
from tests.voucher_world import policy_document

OFFICER = "Айгүл Сәрсенова, Комитет казначейства"
SECOND_OFFICER = "Нұрлан Әбілов, Комитет казначейства"
MEAL_TIYN = 60_000


@dataclass
class TreasuryApi:
    client: TestClient
    officer: str  # the first officer's API key (named OFFICER)
    second_officer: str  # another officer's (named SECOND_OFFICER)
    role_keys: dict[Role, str]  # one key per other role

    def post(self, url: str, body: Any = None, key: str | None = None, idempotency_key: str | None = None,
             **headers: str) -> Any:  # fmt: skip
        headers = (
            bearer(key or self.officer) | {"Idempotency-Key": idempotency_key or str(new_id())} | headers
        )
        return self.client.post(url, json=body, headers=headers)

    def upload(self, programme_id: Any, content: str, media_type: str = "text/csv", name: str = "list.csv",
               key: str | None = None) -> Any:  # fmt: skip
        headers = bearer(key or self.officer) | {"Idempotency-Key": str(new_id()), "Content-Type": media_type}
        url = f"/v1/treasury/programmes/{programme_id}/issuance-jobs?name={name}"
        return self.client.post(url, content=content.encode("utf-8"), headers=headers)

    def put(self, url: str, body: Any, key: str | None = None) -> Any:
        return self.client.put(url, json=body, headers=bearer(key or self.officer))

    def get(self, url: str, key: str | None = None, **headers: str) -> Any:
        return self.client.get(url, headers=bearer(key or self.officer) | headers)


def treasury_api(client: TestClient, unit_of_work: UnitOfWork) -> TreasuryApi:
    others: dict[Role, str] = {
        role: issue(unit_of_work, role, new_id() if role is Role.provider else None).secret
        for role in Role
        if role is not Role.treasury_officer
    }
    return TreasuryApi(
        client,
        issue(unit_of_work, Role.treasury_officer, name=OFFICER).secret,
        issue(unit_of_work, Role.treasury_officer, name=SECOND_OFFICER).secret,
        others,
    )


def meals_policy(**overrides: Any) -> dict[str, Any]:
    """School meals: canteens, one meal a day at a set price, consent and activation asked for."""
    fields = {
        "price_per_use_tiyn": MEAL_TIYN, "period": "day", "period_uses_max": 1, "consent_required": True,
        "activation_required": True, "offline_limit_tiyn": 10**9,
    }  # fmt: skip
    return policy_document(**(fields | overrides))


def programme_body(**overrides: Any) -> dict[str, Any]:
    customer = {
        "name": MINISTRY.name, "bin": MINISTRY.bin, "address": MINISTRY.address, "iban": MINISTRY.iban,
        "bank_name": MINISTRY.bank_name, "bic": MINISTRY.bic,
    }  # fmt: skip
    body = {
        "code": f"SM-API-{secrets.token_hex(4).upper()}", "name": "Бесплатное горячее питание учащихся",
        "kbk": "251 027 015", "region": "Астана", "period_start": "2026-09-01", "period_end": "2027-05-31",
        "asset": "KZT", "budget_ceiling_tiyn": 50_000_000, "approval_threshold_tiyn": 10_000_000,
        "vat_rate": "exempt", "customer": customer, "policy": meals_policy(),
    }  # fmt: skip
    return body | overrides


def programme_url(programme: dict[str, Any] | Any, rest: str = "") -> str:
    programme_id = programme["id"] if isinstance(programme, dict) else programme
    return f"/v1/treasury/programmes/{programme_id}{rest}"


def create_programme(api: TreasuryApi, **overrides: Any) -> dict[str, Any]:
    answer = api.post("/v1/treasury/programmes", programme_body(**overrides))
    assert answer.status_code == 201, answer.text
    programme: dict[str, Any] = answer.json()
    return programme


def fund(api: TreasuryApi, programme: dict[str, Any], amount_tiyn: int) -> dict[str, Any]:
    """Fund by one order, approved by the second officer when it waits for one."""
    made = api.post(programme_url(programme, "/funding-orders"), {"amount_tiyn": amount_tiyn})
    assert made.status_code == 201, made.text
    order: dict[str, Any] = made.json()
    if order["state"] == "awaiting_approval":
        approved = api.post(f"/v1/treasury/funding-orders/{order['id']}/approve", key=api.second_officer)
        assert approved.status_code == 200, approved.text
        order = approved.json()
    assert order["state"] == "executed"
    return order


def open_funded_programme(api: TreasuryApi, amount_tiyn: int = 5_000_000, **overrides: Any) -> dict[str, Any]:
    programme = create_programme(api, **overrides)
    fund(api, programme, amount_tiyn)
    opened = api.post(programme_url(programme, "/open"))
    assert opened.status_code == 200, opened.text
    return dict(opened.json())


def wait_for_job(api: TreasuryApi, job_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """Poll the job until it is finished (or stopped)."""
    deadline = time.monotonic() + timeout_s
    while True:
        job: dict[str, Any] = api.get(f"/v1/treasury/issuance-jobs/{job_id}").json()
        if job["state"] == "finished" or job["stopped"] is not None or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()
