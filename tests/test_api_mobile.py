"""The eGov Mobile backend's routes: a citizen's offers and vouchers found only by the IIN it presents,
consent and activation as idempotent steps, the QR code and reference code, and an audit record of every
read; no other role reaches any of it."""

import json
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from typing import Any

import pytest
import segno
from fastapi.testclient import TestClient

from api.credentials import Role
from ledger.audit.inbox import split_events
from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.reference import normalise_reference_code
from ledger.vouchers.states import VoucherState
from tests.api_world import role_keys, voucher_api_settings
from tests.test_api_support import bearer, running
from tests.voucher_world import World, build_world, fresh_iin, holder_hash

MEAL = 60_000


@pytest.fixture(scope="module")
def client(database_url, tmp_path_factory) -> Iterator[TestClient]:
    with running(voucher_api_settings(database_url, tmp_path_factory.mktemp("mobile"))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def world(ledger, voucher_ledger) -> World:
    """A programme that asks the citizen's consent and an activation, as the gas and meal pilots do."""
    return build_world(ledger, voucher_ledger, consent_required=True, activation_required=True)


@pytest.fixture(scope="module")
def keys(pool, world) -> dict[Role, str]:
    return role_keys(UnitOfWork(pool), world.terminal.provider_id)


@pytest.fixture
def iin() -> str:
    return fresh_iin()


def _as(keys: dict[Role, str], iin: str | None, role: Role = Role.mobile_backend) -> dict[str, str]:
    return bearer(keys[role]) | ({"X-Citizen-IIN": iin} if iin is not None else {})


def _step(client, keys, iin, voucher_id, action: str, idempotency_key: str | None = None) -> Any:
    headers = _as(keys, iin) | {"Idempotency-Key": idempotency_key or str(new_id())}
    return client.post(f"/v1/mobile/vouchers/{voucher_id}/{action}", headers=headers)


def _state(world: World, voucher_id: uuid.UUID) -> VoucherState:
    return world.vouchers.vouchers([voucher_id])[0].state


def _active(client, keys, world, iin, amount=300_000) -> uuid.UUID:
    voucher = world.issue(amount, iin=iin)
    assert _step(client, keys, iin, voucher, "accept").status_code == 200
    assert _step(client, keys, iin, voucher, "activate").json()["state"] == "active"
    return voucher


def test_a_citizens_offers_and_vouchers_are_listed_page_by_page(client, keys, world, iin):
    issued = [world.issue(amount, iin=iin) for amount in (100_000, 200_000, 300_000)]
    world.issue(iin=fresh_iin())  # someone else's
    first = client.get("/v1/mobile/vouchers?limit=2", headers=_as(keys, iin)).json()
    second = client.get(first["next"], headers=_as(keys, iin)).json()
    listed = first["items"] + second["items"]
    assert [v["id"] for v in listed] == [str(v) for v in issued] and second["next"] is None
    assert [(v["state"], v["amount_tiyn"], v["available_tiyn"]) for v in listed] == [
        ("offered", 100_000, 0), ("offered", 200_000, 0), ("offered", 300_000, 0),
    ]  # fmt: skip
    assert "reference_code" not in listed[0] and "holder" not in json.dumps(listed)


def test_another_citizen_sees_nothing_of_them(client, keys, world, iin):
    voucher = world.issue(iin=iin)
    stranger = fresh_iin()
    assert client.get("/v1/mobile/vouchers", headers=_as(keys, stranger)).json()["items"] == []
    for path in ["", "/history", "/presentation", "/qr.svg", "/qr.png"]:
        theirs = client.get(f"/v1/mobile/vouchers/{voucher}{path}", headers=_as(keys, stranger))
        unknown = client.get(f"/v1/mobile/vouchers/{new_id()}{path}", headers=_as(keys, stranger))
        assert theirs.status_code == unknown.status_code == 404, path
        assert theirs.json()["code"] == unknown.json()["code"] == "voucher_not_found"
        assert "amount_tiyn" not in theirs.text and "v4.public" not in theirs.text


def test_the_iin_is_required_valid_and_never_echoed(client, keys, world):
    missing = client.get("/v1/mobile/vouchers", headers=_as(keys, None))
    assert (missing.status_code, missing.json()["code"]) == (422, "citizen_iin_missing")
    wrong_check_digit = "900101300018"
    invalid = client.get("/v1/mobile/vouchers", headers=_as(keys, wrong_check_digit))
    assert (invalid.status_code, invalid.json()["code"], invalid.json()["rule"]) == (
        422, "iin_invalid", "iin_check_digit",
    )  # fmt: skip
    assert wrong_check_digit not in invalid.text
    too_long = client.get("/v1/mobile/vouchers", headers=_as(keys, "9" * 100))
    assert too_long.status_code == 422 and "9" * 12 not in too_long.text


def test_an_offer_is_accepted_then_activated_then_spent(client, keys, world, iin):
    voucher = world.issue(300_000, iin=iin)
    key = str(new_id())
    accepted = _step(client, keys, iin, voucher, "accept", key)
    assert accepted.status_code == 200 and accepted.json()["state"] == "accepted"
    assert accepted.json()["available_tiyn"] == 300_000
    replay = _step(client, keys, iin, voucher, "accept", key)
    assert replay.json() == accepted.json() and replay.headers["idempotent-replayed"] == "true"
    assert len([s for s in world.vouchers.history(voucher) if s.kind.startswith("transition")]) == 1
    assert _step(client, keys, iin, voucher, "activate").json()["state"] == "active"
    outcome, _ = world.redeem(world.request(voucher, MEAL))
    assert outcome.result.name == "ok"


def test_declining_an_offer_returns_it_and_a_declined_voucher_moves_no_further(client, keys, world, iin):
    voucher = world.issue(iin=iin)
    declined = _step(client, keys, iin, voucher, "decline")
    assert declined.status_code == 200 and declined.json()["state"] == "declined"
    again = _step(client, keys, iin, voucher, "activate")
    assert (again.status_code, again.json()["code"]) == (409, "transition_not_allowed")
    assert _state(world, voucher) is VoucherState.DECLINED


def test_a_step_needs_an_idempotency_key(client, keys, world, iin):
    voucher = world.issue(iin=iin)
    answer = client.post(f"/v1/mobile/vouchers/{voucher}/accept", headers=_as(keys, iin))
    assert (answer.status_code, answer.json()["code"]) == (400, "idempotency_key_missing")
    assert _state(world, voucher) is VoucherState.OFFERED


def test_another_citizens_voucher_cannot_be_answered(client, keys, world, iin):
    voucher = world.issue(iin=iin)
    answer = _step(client, keys, fresh_iin(), voucher, "accept")
    assert (answer.status_code, answer.json()["code"]) == (404, "voucher_not_found")
    assert _state(world, voucher) is VoucherState.OFFERED


def test_the_same_key_for_another_citizen_is_another_request_never_a_replay(client, keys, world, iin):
    voucher = world.issue(iin=iin)
    key = str(new_id())
    assert _step(client, keys, iin, voucher, "accept", key).status_code == 200
    other = _step(client, keys, fresh_iin(), voucher, "accept", key)
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_key_reused")
    assert "available_tiyn" not in other.text


def test_history_shows_issue_steps_and_redemptions(client, keys, world, iin):
    voucher = _active(client, keys, world, iin)
    world.redeem(world.request(voucher, MEAL))
    steps = client.get(f"/v1/mobile/vouchers/{voucher}/history", headers=_as(keys, iin)).json()["steps"]
    assert [(s["kind"], s["amount_tiyn"]) for s in steps] == [
        ("issued", 300_000),
        ("transition:accept", 0),
        ("transition:activate", 0),
        ("redemption:single", MEAL),
    ]
    assert steps[-1]["detail"] == str(world.terminal.provider_id)
    balance = client.get(f"/v1/mobile/vouchers/{voucher}", headers=_as(keys, iin)).json()
    assert (balance["available_tiyn"], balance["spent_tiyn"]) == (300_000 - MEAL, MEAL)


def test_a_long_history_comes_in_pages_that_add_up_to_all_of_it(client, keys, world, iin):
    voucher = _active(client, keys, world, iin)
    for _ in range(3):
        world.redeem(world.request(voucher, 1_000))
    whole = client.get(f"/v1/mobile/vouchers/{voucher}/history", headers=_as(keys, iin)).json()
    assert len(whole["steps"]) == 6 and whole["next"] is None
    pages, link = [], f"/v1/mobile/vouchers/{voucher}/history?limit=4"
    while link is not None:
        page = client.get(link, headers=_as(keys, iin)).json()
        pages.append(page["steps"])
        link = page["next"]
    assert [len(steps) for steps in pages] == [4, 2]
    assert [step for steps in pages for step in steps] == whole["steps"]
    forged = client.get(
        f"/v1/mobile/vouchers/{voucher}/history?cursor=eyJhZnRlciI6ImxhdGVyIn0", headers=_as(keys, iin)
    )
    assert (forged.status_code, forged.json()["code"]) == (400, "cursor_invalid")


def test_the_presentation_gives_the_token_and_a_reference_code_a_canteen_can_redeem(client, keys, world, iin):
    voucher = _active(client, keys, world, iin)
    answer = client.get(f"/v1/mobile/vouchers/{voucher}/presentation", headers=_as(keys, iin))
    assert answer.headers["cache-control"] == "no-store"
    presented = answer.json()
    assert presented["qr_payload"] == world.vouchers.token(voucher)
    code = presented["reference_code"]
    assert len(code) == 14 and code[4] == code[9] == "-" and normalise_reference_code(code) is not None
    outcome, _ = world.redeem(world.request(None, MEAL, reference_code=code))
    assert outcome.result.name == "ok" and outcome.redemption.voucher_id == voucher


def test_the_qr_codes_carry_the_token(client, keys, world, iin):
    voucher = world.issue(iin=iin)
    token = world.vouchers.token(voucher)
    svg = client.get(f"/v1/mobile/vouchers/{voucher}/qr.svg", headers=_as(keys, iin))
    assert svg.headers["content-type"] == "image/svg+xml" and svg.headers["cache-control"] == "no-store"
    assert ElementTree.fromstring(svg.content).tag.endswith("svg")
    png = client.get(f"/v1/mobile/vouchers/{voucher}/qr.png", headers=_as(keys, iin))
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG\r\n\x1a\n")
    expected = segno.make(token, micro=False)
    width = int.from_bytes(png.content[16:20], "big")  # the IHDR width: modules with the quiet zone, scaled
    assert width == expected.symbol_size(scale=4)[0]


def _read_events(pool, credential_marker: str) -> list[dict[str, Any]]:
    """Audit events naming this credential, wherever they are (inbox or integrated log)."""
    marker = credential_marker.encode()

    def read(connection) -> list[bytes]:
        framed = connection.execute(
            "SELECT events FROM audit_inbox WHERE position(%s::bytea IN events) > 0"
            " UNION ALL SELECT entries FROM audit_segments WHERE position(%s::bytea IN entries) > 0",
            (marker, marker),
        ).fetchall()
        return [bytes(row[0]) for row in framed]

    events = [e for blob in UnitOfWork(pool).read(read) for e in split_events(blob) if marker in e]
    return [json.loads(e) for e in events if e.startswith(b"{")]


def test_every_read_is_recorded_in_the_audit_log_without_the_iin(client, keys, world, pool):
    from api.credentials import parse_api_key

    iin = fresh_iin()  # a citizen with exactly one voucher, so the list read names only it
    voucher = world.issue(iin=iin)
    for path in ["", "/history", "/presentation"]:
        assert client.get(f"/v1/mobile/vouchers/{voucher}{path}", headers=_as(keys, iin)).status_code == 200
    assert client.get("/v1/mobile/vouchers", headers=_as(keys, iin)).status_code == 200
    credential = _credential_id(pool, keys[Role.mobile_backend], parse_api_key)
    reads = [
        event
        for event in _read_events(pool, credential)
        if event["kind"] == "citizen_data_read" and event["vouchers"] == [str(voucher)]
    ]
    assert sorted(e["what"] for e in reads) == [
        "voucher",
        "voucher_history",
        "voucher_presentation",
        "vouchers",
    ]
    assert all(e["holder"] == holder_hash(iin).hex() and e["credential"] == credential for e in reads)
    assert not any(iin in json.dumps(e) for e in reads)


def _credential_id(pool, api_key: str, parse_api_key) -> str:
    public_id, _ = parse_api_key(api_key)
    row = UnitOfWork(pool).read(
        lambda c: c.execute("SELECT id FROM api_credentials WHERE public_id = %s", (public_id,)).fetchone()
    )
    return str(row[0])


# --- who may do what -----------------------------------------------------------------------------------


def _mobile_requests(voucher: uuid.UUID) -> list[tuple[str, str]]:
    base = f"/v1/mobile/vouchers/{voucher}"
    reads = ["", "/history", "/presentation", "/qr.svg", "/qr.png"]
    steps = ["/accept", "/decline", "/activate"]
    return (
        [("GET", "/v1/mobile/vouchers")]
        + [("GET", base + r) for r in reads]
        + [("POST", base + s) for s in steps]
    )


def test_the_cross_access_table_covers_every_mobile_route(client):
    voucher = new_id()
    documented = {
        (method.upper(), path)
        for path, operations in client.get("/openapi.json").json()["paths"].items()
        if path.startswith("/v1/mobile/")
        for method in operations
    }
    listed = {(m, p.replace(str(voucher), "{voucher_id}")) for m, p in _mobile_requests(voucher)}
    assert documented == listed


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.mobile_backend])
def test_other_roles_are_refused_every_mobile_route(client, keys, world, iin, role):
    voucher = world.issue(iin=iin)
    for method, path in _mobile_requests(voucher):
        headers = _as(keys, iin, role) | {"Idempotency-Key": str(new_id())}
        answer = client.request(method, path, headers=headers)
        assert (answer.status_code, answer.json()["code"]) == (403, "role_forbidden"), (method, path)
        assert "amount_tiyn" not in answer.text
    assert _state(world, voucher) is VoucherState.OFFERED


def test_the_role_is_checked_before_the_iin_is_read(client, keys, world, iin):
    voucher = world.issue(iin=iin)
    headers = _as(keys, "not an iin", Role.provider)
    answer = client.get(f"/v1/mobile/vouchers/{voucher}/presentation", headers=headers)
    assert (answer.status_code, answer.json()["code"]) == (403, "role_forbidden")
