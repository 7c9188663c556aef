"""What the settlement API tests share: a settlement world (`tests.settlement_world`: a programme settling
day by day, redemptions dated in the past) reached through HTTP, with a credential per officer, per
provider and per other role, and helpers that take the workflow's steps the way a client would.

No tests here; the helpers are plain functions so the test modules import them by name.
"""

import base64
import datetime as dt
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import nacl.bindings
from fastapi.testclient import TestClient

from api.credentials import Role
from ledger.ids import new_id
from tests.settlement_world import OFFICER, SECOND_OFFICER, Provider, SettlementWorld
from tests.test_api_support import bearer, issue


@dataclass
class SettlementApi:
    client: TestClient
    world: SettlementWorld
    officer: str  # the first officer's API key (named OFFICER)
    second_officer: str  # another officer (named SECOND_OFFICER)
    role_keys: dict[Role, str]  # one key per other role (the provider's bound to the first provider)
    provider_keys: dict[Any, str] = field(default_factory=dict)

    def provider_key(self, provider: Provider) -> str:
        if provider.id not in self.provider_keys:
            unit_of_work = self.world.unit_of_work
            self.provider_keys[provider.id] = issue(unit_of_work, Role.provider, provider.id).secret
        return self.provider_keys[provider.id]

    def post(self, url: str, key: str, body: Any = None, idempotency_key: str | None = None) -> Any:
        headers = bearer(key) | {"Idempotency-Key": idempotency_key or str(new_id())}
        return self.client.post(url, json=body, headers=headers)

    def put(self, url: str, key: str, body: Any) -> Any:
        return self.client.put(url, json=body, headers=bearer(key))

    def get(self, url: str, key: str, **headers: str) -> Any:
        return self.client.get(url, headers=bearer(key) | headers)


def settlement_api(client: TestClient, world: SettlementWorld) -> SettlementApi:
    unit_of_work = world.unit_of_work
    others: dict[Role, str] = {
        role: issue(unit_of_work, role, world.providers[0].id if role is Role.provider else None).secret
        for role in Role
        if role is not Role.treasury_officer
    }
    return SettlementApi(
        client,
        world,
        issue(unit_of_work, Role.treasury_officer, name=OFFICER).secret,
        issue(unit_of_work, Role.treasury_officer, name=SECOND_OFFICER).secret,
        others,
    )


def programme_url(world: SettlementWorld, rest: str = "") -> str:
    return f"/v1/treasury/programmes/{world.programme_id}/settlement{rest}"


def period_url(world: SettlementWorld, start: dt.date, rest: str = "") -> str:
    return programme_url(world, f"/periods/{start.isoformat()}{rest}")


def act_url(number: str, rest: str = "") -> str:
    return f"/v1/treasury/settlement/acts/{urllib.parse.quote(number)}{rest}"


def provider_url(provider: Provider | Any, rest: str = "") -> str:
    provider_id = provider.id if isinstance(provider, Provider) else provider
    return f"/v1/providers/{provider_id}{rest}"


def provider_act_url(provider: Provider | Any, number: str, rest: str = "") -> str:
    return provider_url(provider, f"/acts/{urllib.parse.quote(number)}{rest}")


def close_and_draw_up(api: SettlementApi, served: dt.date) -> dict[Any, dict[str, Any]]:
    """Close every period through `served` and draw up its acts over HTTP: {provider id: issued act}."""
    while True:
        closed = api.post(programme_url(api.world, "/periods/close"), api.officer)
        assert closed.status_code == 200, closed.text
        if dt.date.fromisoformat(closed.json()["end"]) >= served:
            break
    drawn = api.post(period_url(api.world, served, "/acts"), api.officer)
    assert drawn.status_code == 200, drawn.text
    return {outcome["provider_id"]: act for outcome in drawn.json()["providers"] for act in outcome["acts"]}


def sign_over_http(api: SettlementApi, provider: Provider, number: str) -> Any:
    """The provider fetches the bytes to sign, signs them with its key as they are, and sends the
    signature."""
    key = api.provider_key(provider)
    to_sign = api.get(provider_act_url(provider, number, "/signing-bytes"), key)
    assert to_sign.status_code == 200, to_sign.text
    signature = nacl.bindings.crypto_sign(to_sign.content, provider.signing_secret)[:64]
    body = {"key_id": str(provider.signing_key_id), "signature": base64.b64encode(signature).decode()}
    return api.post(provider_act_url(provider, number, "/signature"), key, body)
