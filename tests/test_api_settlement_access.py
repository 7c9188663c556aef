"""Who reaches settlement: every officer route refuses every other role (403) and no credential (401);
every provider route refuses every other role (403); and a provider never reaches another provider's
acts, documents, bytes to sign or payouts — 404, the answer for what does not exist, and never data."""

import base64
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.credentials import Role
from ledger.vouchers.signing import Purpose, sign_message
from tests.api_world import voucher_api_settings
from tests.settlement_world import OFFICER, Provider, build_settlement_world, day
from tests.test_api_settlement_live import settlement_provider_route
from tests.test_api_settlement_support import (
    SettlementApi,
    act_url,
    period_url,
    programme_url,
    provider_act_url,
    provider_url,
    settlement_api,
)
from tests.test_api_support import bearer, running
from treasury.settlement import document_bytes, find_payout, pay_act
from treasury.settlement.records import find_act


@dataclass
class Scene:
    api: SettlementApi
    mine: Provider  # the first provider: its act is paid
    theirs: Provider  # another provider of the programme: its act is drawn up, not signed
    my_act: str
    their_act: str
    order: str
    redemption: Any


@pytest.fixture(scope="module")
def scene(database_url, tmp_path_factory, ledger, voucher_ledger, pool) -> Iterator[Scene]:
    world = build_settlement_world(ledger, voucher_ledger, pool, database_url)
    mine, theirs = world.providers[0], world.add_provider()
    redemption = world.redeem_on(day(world, 6), 60_000)
    world.redeem_on(day(world, 6), 45_000, provider=theirs)
    world.close_through(day(world, 6))
    acts = {act.provider_id: act.number for act in world.issue(day(world, 6))}
    world.sign(acts[mine.id], mine)
    world.approve(acts[mine.id])
    payout = world.run(lambda c: pay_act(c, acts[mine.id], OFFICER))
    settings = voucher_api_settings(database_url, tmp_path_factory.mktemp("settlement-access"))
    with running(settings) as client:
        api = settlement_api(client, world)
        yield Scene(api, mine, theirs, acts[mine.id], acts[theirs.id], payout.orders[0].number, redemption)


def _officer_routes(scene: Scene) -> list[tuple[str, str, Any]]:
    world, start, number = scene.api.world, day(scene.api.world, 6), scene.my_act
    order = urllib.parse.quote(scene.order)
    return [
        ("GET", programme_url(world, "/terms"), None),
        ("PUT", programme_url(world, "/terms"), {"cycle": "month", "payout_threshold_tiyn": 1}),
        ("GET", programme_url(world, "/periods"), None),
        ("POST", programme_url(world, "/periods/close"), None),
        ("GET", period_url(world, start), None),
        ("POST", period_url(world, start, "/acts"), None),
        ("GET", period_url(world, start, "/acts"), None),
        ("GET", period_url(world, start, "/reconciliation"), None),
        ("POST", programme_url(world, "/disallowances"),
         {"redemption_ids": [str(scene.redemption)], "reason": "проверка"}),
        ("GET", act_url(number), None),
        *[("GET", act_url(number, f"/{document}"), None)
          for document in ("act.json", "act.pdf", "invoice.json", "invoice.pdf")],
        ("POST", act_url(scene.their_act, "/approve"), None),
        ("POST", act_url(scene.their_act, "/reject"), {"reason": "проверка"}),
        ("POST", act_url(number, "/pay"), None),
        ("GET", act_url(number, "/payout"), None),
        ("POST", act_url(number, "/repay"), None),
        ("POST", f"/v1/treasury/settlement/payment-orders/{order}/return", {"reason": "проверка"}),
    ]  # fmt: skip


def _provider_routes(owner: Provider, number: str) -> list[tuple[str, str, Any]]:
    signature = {"key_id": str(owner.signing_key_id), "signature": base64.b64encode(bytes(64)).decode()}
    key = {"name": "Директор", "public_key": base64.b64encode(bytes(range(32))).decode()}
    return [
        ("POST", provider_url(owner, "/signing-keys"), key),
        ("GET", provider_url(owner, "/acts"), None),
        ("GET", provider_act_url(owner, number), None),
        ("GET", provider_act_url(owner, number, "/signing-bytes"), None),
        ("POST", provider_act_url(owner, number, "/signature"), signature),
        *[("GET", provider_act_url(owner, number, f"/{document}"), None)
          for document in ("act.json", "act.pdf", "invoice.json", "invoice.pdf")],
        ("GET", provider_url(owner, "/payouts"), None),
    ]  # fmt: skip


def _call(client: TestClient, method: str, url: str, body: Any, key: str | None) -> Any:
    headers = (bearer(key) if key else {}) | {"Idempotency-Key": "access-probe"}
    return client.request(method, url, json=body, headers=headers)


COUNTS = """
SELECT (SELECT count(*) FROM settlement_periods WHERE programme_id = %(programme)s),
       (SELECT count(*) FROM settlement_disallowances WHERE redemption_id = %(redemption)s),
       (SELECT count(*) FROM provider_signing_keys WHERE provider_id = %(provider)s)
"""


def _unchanged(scene: Scene) -> tuple[Any, ...]:
    """The acts, the payout, and how many periods, take-backs and signing keys there are."""
    world = scene.api.world
    ids = {"programme": world.programme_id, "redemption": scene.redemption, "provider": scene.mine.id}
    mine = world.run(lambda c: find_act(c, number=scene.my_act))
    assert mine is not None
    return world.run(
        lambda c: (
            find_act(c, number=scene.my_act),
            find_act(c, number=scene.their_act),
            find_payout(c, mine),
            c.execute(COUNTS, ids).fetchone(),
        )
    )


@pytest.mark.parametrize("role", [role for role in Role if role is not Role.treasury_officer])
def test_every_officer_route_refuses_every_other_role_and_changes_nothing(scene, role):
    before = _unchanged(scene)
    key = scene.api.role_keys[role]
    answers = [(method, url, _call(scene.api.client, method, url, body, key))
               for method, url, body in _officer_routes(scene)]  # fmt: skip
    wrong = [(m, u, a.status_code, a.text) for m, u, a in answers
             if (a.status_code, a.json().get("code")) != (403, "role_forbidden")]  # fmt: skip
    assert wrong == []
    assert _unchanged(scene) == before


def test_every_settlement_route_needs_a_credential(scene):
    routes = _officer_routes(scene) + _provider_routes(scene.mine, scene.my_act)
    answers = [(url, _call(scene.api.client, method, url, body, None)) for method, url, body in routes]
    assert [(url, a.status_code) for url, a in answers if a.status_code != 401] == []


@pytest.mark.parametrize("role", [role for role in Role if role is not Role.provider])
def test_every_provider_settlement_route_refuses_every_other_role(scene, role):
    before = _unchanged(scene)
    key = scene.api.officer if role is Role.treasury_officer else scene.api.role_keys[role]
    answers = [(url, _call(scene.api.client, method, url, body, key))
               for method, url, body in _provider_routes(scene.mine, scene.my_act)]  # fmt: skip
    wrong = [
        (u, a.status_code) for u, a in answers if (a.status_code, a.json()["code"]) != (403, "role_forbidden")
    ]
    assert wrong == []
    assert _unchanged(scene) == before


def _no_data_of(answer: Any, scene: Scene) -> bool:
    """A problem that carries nothing of the other provider's act but the number the caller sent."""
    act = scene.api.world.run(lambda c: find_act(c, number=scene.my_act))
    text = answer.text
    return answer.headers["content-type"] == "application/problem+json" and not any(
        secret in text for secret in (act.sha256.hex(), str(act.id), str(act.total_tiyn), scene.order)
    )


def test_a_provider_never_reaches_another_providers_settlement(scene):
    before = _unchanged(scene)
    api, theirs = scene.api, scene.theirs
    key = api.provider_key(theirs)
    # Their credential on my provider id: as if I did not exist.
    for method, url, body in _provider_routes(scene.mine, scene.my_act):
        answer = _call(api.client, method, url, body, key)
        assert (answer.status_code, answer.json()["code"]) == (404, "provider_not_found"), url
        assert _no_data_of(answer, scene), url
    # Their own provider id, my act's number: as if my act did not exist.
    for method, url, body in _provider_routes(theirs, scene.my_act)[2:-1]:
        answer = _call(api.client, method, url, body, key)
        assert (answer.status_code, answer.json()["code"]) == (404, "act_not_found"), url
        assert _no_data_of(answer, scene), url
    listed = api.get(provider_url(theirs, "/acts"), key).json()["items"]
    assert [act["number"] for act in listed] == [scene.their_act]
    assert api.get(provider_url(theirs, "/payouts"), key).json()["items"] == []
    assert _unchanged(scene) == before


def test_a_provider_cannot_sign_its_act_with_another_providers_key(scene):
    api, mine, theirs = scene.api, scene.mine, scene.theirs
    body = api.world.run(lambda c: document_bytes(c, scene.their_act, "act_json"))
    stolen = sign_message(mine.signing_secret, Purpose.SERVICE_ACT, body)
    answer = api.post(
        provider_act_url(theirs, scene.their_act, "/signature"),
        api.provider_key(theirs),
        {"key_id": str(mine.signing_key_id), "signature": base64.b64encode(stolen).decode()},
    )
    assert (answer.status_code, answer.json()["code"]) == (403, "signing_key_unknown")
    assert api.world.run(lambda c: find_act(c, number=scene.their_act)).state.name == "ISSUED"


def _templated(url: str, scene: Scene) -> str:
    """A request's path as the OpenAPI document names it."""
    world, path = scene.api.world, urllib.parse.unquote(url)
    for value, name in (  # numbers first: they hold the period's label
        (scene.my_act, "{act_number}"), (scene.their_act, "{act_number}"), (scene.order, "{order_number}"),
        (str(world.programme_id), "{programme_id}"), (day(world, 6).isoformat(), "{period_start}"),
        (str(scene.mine.id), "{provider_id}"),
    ):  # fmt: skip
        path = path.replace(value, name)
    return path


def test_the_tables_above_cover_every_settlement_route(scene):
    document = scene.api.client.get("/openapi.json").json()["paths"]
    routes = {
        (method.upper(), path)
        for path, operations in document.items()
        if (path.startswith("/v1/treasury/") and "/settlement" in path) or settlement_provider_route(path)
        for method in operations
    }
    listed = _officer_routes(scene) + _provider_routes(scene.mine, scene.my_act)
    assert routes == {(method, _templated(url, scene)) for method, url, _ in listed}
