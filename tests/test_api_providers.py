"""The providers' routes: terminals and their keys, redemption (single, batch, two-phase) with signed
receipts, receivable and history; and that a provider reaches only its own, another role nothing."""

import base64
import time
import uuid
from collections.abc import Iterator
from typing import Any

import nacl.bindings
import pytest
from fastapi.testclient import TestClient

from api.credentials import Role
from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.paseto import decode_k4_public, encode_k4_public
from ledger.vouchers.receipts import Receipt, verify_receipt
from ledger.vouchers.requests import request_document
from ledger.vouchers.states import RedemptionPhase
from tests.api_world import batch_envelope, role_keys, signed, single_envelope, voucher_api_settings
from tests.test_api_settlement_live import settlement_provider_route
from tests.test_api_support import bearer, running
from tests.voucher_world import Terminal, World, build_world

MEAL = 60_000


@pytest.fixture(scope="module")
def client(database_url, tmp_path_factory) -> Iterator[TestClient]:
    with running(voucher_api_settings(database_url, tmp_path_factory.mktemp("providers"))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def world(ledger, voucher_ledger) -> World:
    return build_world(ledger, voucher_ledger)


@pytest.fixture(scope="module")
def other(world) -> Terminal:
    """Another provider in the same programme, with its own terminal."""
    return world.add_provider()


@pytest.fixture(scope="module")
def keys(pool, world) -> dict[Role, str]:
    return role_keys(UnitOfWork(pool), world.terminal.provider_id)


@pytest.fixture(scope="module")
def other_key(pool, other) -> str:
    return role_keys(UnitOfWork(pool), other.provider_id)[Role.provider]


def _base(terminal: Terminal) -> str:
    return f"/v1/providers/{terminal.provider_id}"


def _redeem(client, key, terminal: Terminal, envelope) -> Any:
    return client.post(f"{_base(terminal)}/redemptions", json=envelope, headers=bearer(key))


def _receivable(client, key, terminal: Terminal) -> int:
    answer = client.get(f"{_base(terminal)}/receivable", headers=bearer(key))
    assert answer.status_code == 200
    return sum(p["owed_tiyn"] for p in answer.json()["programmes"])


def _new_key_pair() -> tuple[bytes, bytes]:
    public_key, secret_key = nacl.bindings.crypto_sign_seed_keypair(uuid.uuid4().bytes * 2)
    return public_key, secret_key


# --- terminals -----------------------------------------------------------------------------------------


def test_a_registered_terminal_redeems_with_its_own_key(client, keys, world):
    public_key, secret_key = _new_key_pair()
    body = {"name": "Till 2", "public_key": encode_k4_public(public_key)}
    headers = bearer(keys[Role.provider]) | {"Idempotency-Key": str(new_id())}
    created = client.post(f"{_base(world.terminal)}/terminals", json=body, headers=headers)
    assert created.status_code == 201, created.text
    terminal = created.json()
    assert created.headers["location"] == f"{_base(world.terminal)}/terminals/{terminal['id']}"
    assert decode_k4_public(terminal["public_key"]) == public_key and terminal["revoked_at"] is None
    replay = client.post(f"{_base(world.terminal)}/terminals", json=body, headers=headers)
    assert replay.json()["id"] == terminal["id"] and replay.headers["idempotent-replayed"] == "true"

    till = Terminal(
        uuid.UUID(terminal["id"]), world.terminal.provider_id, secret_key, world.terminal.receivable_id
    )
    request = world.request(world.issue(), MEAL, terminal=till)
    answer = _redeem(client, keys[Role.provider], till, single_envelope(request, secret_key))
    assert answer.json()["results"][0]["result"] == "ok"


def test_a_public_key_may_be_plain_base64_and_must_be_ed25519_sized(client, keys, world):
    public_key, _ = _new_key_pair()
    url, key = f"{_base(world.terminal)}/terminals", keys[Role.provider]
    cases = [
        (base64.b64encode(public_key).decode(), 201),
        (base64.b64encode(b"short").decode(), 422),
        ("k4.public.AAAA", 422),
        ("not base64 at all!", 422),
    ]
    for text, status in cases:
        headers = bearer(key) | {"Idempotency-Key": str(new_id())}
        answer = client.post(url, json={"name": "Till", "public_key": text}, headers=headers)
        assert answer.status_code == status, (text, answer.text)
        if status == 422:
            assert answer.json()["code"] == "public_key_invalid"


def test_a_blank_or_unnormalised_name_is_refused(client, keys, world):
    public_key, _ = _new_key_pair()
    for name in ["   ", "Cafe\u0301"]:  # the second is "Café" with a combining accent (not NFC)
        answer = client.post(
            f"{_base(world.terminal)}/terminals",
            json={"name": name, "public_key": encode_k4_public(public_key)},
            headers=bearer(keys[Role.provider]) | {"Idempotency-Key": str(new_id())},
        )
        assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"


def test_terminals_are_listed_page_by_page_with_an_etag(client, keys, world):
    key = keys[Role.provider]
    for _ in range(2):
        body = {"name": "Till", "public_key": encode_k4_public(_new_key_pair()[0])}
        headers = bearer(key) | {"Idempotency-Key": str(new_id())}
        assert (
            client.post(f"{_base(world.terminal)}/terminals", json=body, headers=headers).status_code == 201
        )
    seen, url = [], f"{_base(world.terminal)}/terminals?limit=1"
    while url:
        page = client.get(url, headers=bearer(key)).json()
        assert len(page["items"]) <= 1
        seen += [item["id"] for item in page["items"]]
        url = page["next"]
    assert len(seen) == len(set(seen)) >= 3 and str(world.terminal.id) in seen
    first = client.get(f"{_base(world.terminal)}/terminals", headers=bearer(key))
    again = client.get(
        f"{_base(world.terminal)}/terminals", headers=bearer(key) | {"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""


def test_a_revoked_terminal_can_no_longer_redeem(client, keys, world):
    till = world.add_provider()  # its own provider: revoking must not disturb the other tests' terminal
    key = role_keys(UnitOfWork(world.vouchers.unit_of_work.pool), till.provider_id)[Role.provider]
    url = f"{_base(till)}/terminals/{till.id}/revoke"
    revoked = client.post(url, json={"reason": "stolen"}, headers=bearer(key))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert client.post(url, json={"reason": "again"}, headers=bearer(key)).json() == revoked.json()
    request = world.request(world.issue(), MEAL, terminal=till)
    answer = _redeem(client, key, till, single_envelope(request, till.secret_key))
    assert answer.json()["results"][0]["result"] == "terminal_revoked"


# --- redemption ----------------------------------------------------------------------------------------


def test_a_redemption_moves_value_and_returns_a_receipt_the_issuer_key_verifies(client, keys, world):
    key, owed = keys[Role.provider], _receivable(client, keys[Role.provider], world.terminal)
    voucher = world.issue(300_000)
    request = world.request(voucher, MEAL)
    answer = _redeem(client, key, world.terminal, single_envelope(request, world.terminal.secret_key))
    assert answer.status_code == 200
    [result] = answer.json()["results"]
    assert result["result"] == "ok" and result["accepted"] and result["id"] == str(request.id)
    assert result["redemption"]["voucher_id"] == str(voucher) and result["redemption"]["amount_tiyn"] == MEAL
    assert _receivable(client, key, world.terminal) == owed + MEAL

    receipt = answer.json()["receipt"]
    issuers = {k["key_id"]: k for k in client.get("/v1/keys/issuers").json()["keys"]}
    public_key = decode_k4_public(issuers[receipt["key_id"]]["public_key"])
    signed_receipt = Receipt(
        base64.b64decode(receipt["body"]), receipt["key_id"], base64.b64decode(receipt["signature"])
    )
    assert verify_receipt(public_key, signed_receipt)
    assert signed_receipt.document()["results"][0]["result"] == "ok"


def test_a_retry_answers_exists_and_another_body_under_the_same_id_is_refused(client, keys, world):
    key, voucher = keys[Role.provider], world.issue(300_000)
    request = world.request(voucher, MEAL)
    first = _redeem(client, key, world.terminal, single_envelope(request, world.terminal.secret_key)).json()
    retry = _redeem(client, key, world.terminal, single_envelope(request, world.terminal.secret_key)).json()
    assert retry["results"][0]["result"] == "exists"
    assert retry["results"][0]["redemption"] == first["results"][0]["redemption"]
    changed = world.request(voucher, MEAL + 1, id=request.id)
    answer = _redeem(client, key, world.terminal, single_envelope(changed, world.terminal.secret_key)).json()
    assert answer["results"][0]["result"] == "exists_with_different_request"
    assert world.vouchers.vouchers([voucher])[0].available_tiyn == 300_000 - MEAL


def test_a_refused_redemption_is_a_result_not_an_http_error_and_moves_nothing(client, keys, world):
    key, owed = keys[Role.provider], _receivable(client, keys[Role.provider], world.terminal)
    request = world.request(world.issue(MEAL), MEAL + 1)
    answer = _redeem(client, key, world.terminal, single_envelope(request, world.terminal.secret_key))
    assert answer.status_code == 200
    assert answer.json()["results"][0] | {"redemption": None} == {
        "id": str(request.id), "result": "insufficient_balance", "accepted": False,
        "original_result": None, "detail": None, "redemption": None,
    }  # fmt: skip
    assert _receivable(client, key, world.terminal) == owed


def test_a_wrong_signature_or_a_malformed_request_gets_its_result(client, keys, world):
    key, request = keys[Role.provider], world.request(world.issue(), MEAL)
    forged = single_envelope(request, _new_key_pair()[1])
    assert (
        _redeem(client, key, world.terminal, forged).json()["results"][0]["result"]
        == "terminal_signature_invalid"
    )
    document = request_document(request) | {"phase": "swap"}
    envelope = {"request": document, "signature": signed(world.terminal.secret_key, _purpose(), document)}
    [result] = _redeem(client, key, world.terminal, envelope).json()["results"]
    assert result["result"] == "request_malformed" and result["detail"].startswith("phase")


def _purpose():
    from ledger.vouchers.signing import Purpose

    return Purpose.REDEMPTION_REQUEST


@pytest.mark.parametrize(
    ("change", "detail_starts"),
    [
        (lambda e: e | {"signature": "not base64"}, "signature"),
        (lambda e: e | {"signature": base64.b64encode(b"x" * 63).decode()}, "signature"),
        (
            lambda e: e | {"request": {k: v for k, v in e["request"].items() if k != "terminal"}},
            "request.terminal",
        ),
        (lambda e: e | {"request": e["request"] | {"amount_tiyn": 600.5}}, "request"),
    ],
    ids=["signature-not-base64", "signature-63-bytes", "no-terminal", "float-amount"],
)
def test_an_envelope_that_cannot_be_checked_is_a_422_problem(client, keys, world, change, detail_starts):
    envelope = change(single_envelope(world.request(world.issue(), MEAL), world.terminal.secret_key))
    answer = _redeem(client, keys[Role.provider], world.terminal, envelope)
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "redemption_envelope_invalid"
    assert answer.json()["detail"].startswith(detail_starts)


def test_a_batch_is_judged_in_order_with_a_result_per_request(client, keys, world):
    voucher, now_ms = world.issue(2 * MEAL), time.time_ns() // 1_000_000
    requests = [request_document(world.request(voucher, MEAL, requested_at_ms=now_ms)) for _ in range(3)]
    requests.insert(1, {"id": str(new_id()), "terminal": str(world.terminal.id), "phase": "sideways"})
    envelope = batch_envelope(world.terminal.id, requests, world.terminal.secret_key)
    answer = client.post(
        f"{_base(world.terminal)}/redemption-batches", json=envelope, headers=bearer(keys[Role.provider])
    )
    assert answer.status_code == 200
    results = [r["result"] for r in answer.json()["results"]]
    assert results == ["ok", "request_malformed", "ok", "voucher_redeemed"]  # the second meal spent it all
    assert (
        len(Receipt(base64.b64decode(answer.json()["receipt"]["body"]), "", b"").document()["results"]) == 4
    )


@pytest.mark.parametrize(
    "batch_change",
    [lambda b: b | {"extra": 1}, lambda b: b | {"requests": []}, lambda b: b | {"sent_at_ms": "today"}],
    ids=["unknown-field", "no-requests", "sent-at-not-integer"],
)
def test_a_malformed_batch_envelope_is_a_422_problem(client, keys, world, batch_change):
    envelope = batch_envelope(
        world.terminal.id, [request_document(world.request(world.issue(), MEAL))], world.terminal.secret_key
    )
    envelope["batch"] = batch_change(envelope["batch"])
    answer = client.post(
        f"{_base(world.terminal)}/redemption-batches", json=envelope, headers=bearer(keys[Role.provider])
    )
    assert answer.status_code == 422 and answer.json()["code"] == "redemption_envelope_invalid"


def test_two_phase_reserve_then_post_part_of_it_or_void_it(client, keys, world):
    key, voucher = keys[Role.provider], world.issue(300_000)
    reserve = world.request(voucher, 100_000, phase=RedemptionPhase.RESERVE)
    reserved = _redeem(
        client, key, world.terminal, single_envelope(reserve, world.terminal.secret_key)
    ).json()
    assert reserved["results"][0]["result"] == "ok"
    assert world.vouchers.vouchers([voucher])[0].reserved_tiyn == 100_000
    post = world.request(None, 70_000, phase=RedemptionPhase.POST, reserved_id=reserve.id)
    posted = _redeem(client, key, world.terminal, single_envelope(post, world.terminal.secret_key)).json()
    assert posted["results"][0]["result"] == "ok" and posted["results"][0]["redemption"]["phase"] == "post"
    after = world.vouchers.vouchers([voucher])[0]
    assert (after.available_tiyn, after.reserved_tiyn) == (230_000, 0)
    again = world.request(voucher, 50_000, phase=RedemptionPhase.RESERVE)
    _redeem(client, key, world.terminal, single_envelope(again, world.terminal.secret_key))
    void = world.request(None, 0, phase=RedemptionPhase.VOID, reserved_id=again.id)
    voided = _redeem(client, key, world.terminal, single_envelope(void, world.terminal.secret_key)).json()
    assert voided["results"][0]["result"] == "ok"
    after = world.vouchers.vouchers([voucher])[0]
    assert (after.available_tiyn, after.reserved_tiyn) == (230_000, 0)


def test_history_lists_the_providers_redemptions_newest_first(client, keys, world):
    key = keys[Role.provider]
    ids = []
    for _ in range(3):
        request = world.request(world.issue(), MEAL)
        _redeem(client, key, world.terminal, single_envelope(request, world.terminal.secret_key))
        ids.append(str(request.id))
    url = f"{_base(world.terminal)}/redemptions?limit=2&programme_id={world.programme_id}"
    first = client.get(url, headers=bearer(key)).json()
    second = client.get(first["next"], headers=bearer(key)).json()
    assert [item["id"] for item in first["items"]] + [second["items"][0]["id"]] == ids[::-1]
    recorded = [item["recorded_at"] for item in first["items"] + second["items"]]
    assert recorded == sorted(recorded, reverse=True)
    etag = client.get(url, headers=bearer(key)).headers["etag"]
    assert client.get(url, headers=bearer(key) | {"If-None-Match": etag}).status_code == 304


def test_a_forged_cursor_is_a_400_problem(client, keys, world):
    answer = client.get(
        f"{_base(world.terminal)}/redemptions?cursor=eyJ0cyI6IngifQ", headers=bearer(keys[Role.provider])
    )
    assert answer.status_code == 400 and answer.json()["code"] == "cursor_invalid"


def test_redemptions_are_counted_by_result_in_metrics(client, keys, world):
    request = world.request(world.issue(), MEAL)
    _redeem(client, keys[Role.provider], world.terminal, single_envelope(request, world.terminal.secret_key))
    assert 'amiyan_redemptions_total{result="ok"}' in client.get("/metrics").text


def test_another_providers_terminal_cannot_redeem_under_ones_path_whether_its_owner_is_remembered_or_not(
    client, keys, world
):
    stranger = world.add_provider()  # never seen by this server: its owner is read from the database
    stranger_key = role_keys(UnitOfWork(client.app.state.pool), stranger.provider_id)[Role.provider]
    requests = [world.request(world.issue(), MEAL, terminal=stranger) for _ in range(3)]
    assert client.app.state.terminal_owners.remembered(stranger.id) is None
    refused = _redeem(
        client, keys[Role.provider], world.terminal, single_envelope(requests[0], stranger.secret_key)
    )
    assert (refused.status_code, refused.json()["code"]) == (404, "terminal_not_found")
    own = _redeem(client, stranger_key, stranger, single_envelope(requests[1], stranger.secret_key))
    assert own.status_code == 200 and own.json()["results"][0]["result"] == "ok"
    assert client.app.state.terminal_owners.remembered(stranger.id) == stranger.provider_id
    again = _redeem(
        client, keys[Role.provider], world.terminal, single_envelope(requests[2], stranger.secret_key)
    )
    assert (again.status_code, again.json()) == (404, refused.json())


# --- the public key set --------------------------------------------------------------------------------


def test_the_issuer_key_set_is_public_and_cacheable(client, world):
    answer = client.get("/v1/keys/issuers")
    assert answer.status_code == 200 and answer.headers["cache-control"].startswith("public, max-age=")
    issuer = world.vouchers.signer
    assert {k["key_id"]: decode_k4_public(k["public_key"]) for k in answer.json()["keys"]}[
        issuer.key_id
    ] == issuer.public_key
    assert (
        client.get("/v1/keys/issuers", headers={"If-None-Match": answer.headers["etag"]}).status_code == 304
    )


# --- who may do what -----------------------------------------------------------------------------------


def _provider_requests(
    world: World, terminal: Terminal, path_provider: uuid.UUID
) -> list[tuple[str, str, Any]]:
    """Every providers route with a well-formed body, about `terminal`, under `path_provider`'s path."""
    base = f"/v1/providers/{path_provider}"
    request = world.request(world.issue(), MEAL, terminal=terminal)
    batch = batch_envelope(terminal.id, [request_document(request)], terminal.secret_key)
    return [
        ("POST", f"{base}/terminals", {"name": "Till", "public_key": encode_k4_public(_new_key_pair()[0])}),
        ("GET", f"{base}/terminals", None),
        ("GET", f"{base}/terminals/{terminal.id}", None),
        ("POST", f"{base}/terminals/{terminal.id}/revoke", {"reason": "not yours"}),
        ("POST", f"{base}/redemptions", single_envelope(request, terminal.secret_key)),
        ("POST", f"{base}/redemption-batches", batch),
        ("GET", f"{base}/receivable", None),
        ("GET", f"{base}/redemptions", None),
    ]


def test_the_cross_access_tables_cover_every_providers_route(client, world):
    routes = {
        (method.upper(), path.removeprefix("/v1/providers/{provider_id}"))
        for path, operations in client.get("/openapi.json").json()["paths"].items()
        # Settlement's provider routes have their own table (tests/test_api_settlement_access.py).
        if path.startswith("/v1/providers/") and not settlement_provider_route(path)
        for method in operations
    }
    provider, terminal = str(world.terminal.provider_id), str(world.terminal.id)
    listed = {
        (method, path.split(provider, 1)[1].replace(terminal, "{terminal_id}"))
        for method, path, _ in _provider_requests(world, world.terminal, world.terminal.provider_id)
    }
    assert routes == listed


def _call(client, key, method, path, body):
    headers = bearer(key) | {"Idempotency-Key": str(new_id())}
    return client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.provider])
def test_other_roles_are_refused_every_providers_route(client, keys, world, role):
    for method, path, body in _provider_requests(world, world.terminal, world.terminal.provider_id):
        answer = _call(client, keys[role], method, path, body)
        assert (answer.status_code, answer.json()["code"]) == (403, "role_forbidden"), (method, path)
        assert str(world.terminal.id) not in answer.text.replace(path, "")
    assert world.vouchers.unit_of_work.read(
        lambda c: c.execute("SELECT revoked_at FROM terminals WHERE id = %s", (world.terminal.id,)).fetchone()
    ) == (None,)


def test_another_providers_path_is_not_found_for_every_route(client, keys, world, other):
    owed = _receivable(client, keys[Role.provider], world.terminal)
    for method, path, body in _provider_requests(world, world.terminal, other.provider_id):
        answer = _call(client, keys[Role.provider], method, path, body)
        assert (answer.status_code, answer.json()["code"]) == (404, "provider_not_found"), (method, path)
    assert _receivable(client, keys[Role.provider], world.terminal) == owed


def test_another_providers_terminal_is_not_found_under_ones_own_path(client, keys, world, other, other_key):
    owed = _receivable(client, other_key, other)
    for method, path, body in _provider_requests(world, other, world.terminal.provider_id)[2:6]:
        answer = _call(client, keys[Role.provider], method, path, body)
        assert answer.status_code == 404 and answer.json()["code"] == "terminal_not_found", (method, path)
        assert other.secret_key.hex() not in answer.text
    unknown = _call(client, keys[Role.provider], "GET", f"{_base(world.terminal)}/terminals/{new_id()}", None)
    assert unknown.json().keys() == answer.json().keys()
    assert _receivable(client, other_key, other) == owed
    assert (
        client.get(f"{_base(other)}/terminals/{other.id}", headers=bearer(other_key)).json()["revoked_at"]
        is None
    )


def test_the_documented_examples_are_well_formed_and_signed_by_the_documented_terminal():
    from api.schemas.providers import TERMINAL_EXAMPLE
    from api.schemas.redemptions import (
        BATCH_EXAMPLE,
        BATCH_SIGNATURE_EXAMPLE,
        REQUEST_EXAMPLE,
        REQUEST_SIGNATURE_EXAMPLE,
    )
    from ledger.audit.canonical import canonical_bytes
    from ledger.vouchers.requests import parse_request
    from ledger.vouchers.signing import Purpose, verify_message

    public_key = decode_k4_public(TERMINAL_EXAMPLE["public_key"])
    for document, signature, purpose in [
        (REQUEST_EXAMPLE, REQUEST_SIGNATURE_EXAMPLE, Purpose.REDEMPTION_REQUEST),
        (BATCH_EXAMPLE, BATCH_SIGNATURE_EXAMPLE, Purpose.REDEMPTION_BATCH),
    ]:
        assert verify_message(public_key, purpose, canonical_bytes(document), base64.b64decode(signature))
    requests = [parse_request(r) for r in [REQUEST_EXAMPLE, *BATCH_EXAMPLE["requests"]]]
    assert {str(r.terminal_id) for r in requests} == {TERMINAL_EXAMPLE["id"]} == {BATCH_EXAMPLE["terminal"]}
