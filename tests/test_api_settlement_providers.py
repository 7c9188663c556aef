"""The providers' settlement routes, as a provider uses them: register the key of the person who signs,
list the acts to sign, fetch the exact bytes, sign, read the documents, and see the payouts received."""

import base64
import io
import json
from collections.abc import Iterator

import nacl.bindings
import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader

from ledger.ids import new_id
from ledger.vouchers.paseto import encode_k4_public
from tests.api_world import voucher_api_settings
from tests.settlement_world import KAZAKH_SERVICE, Provider, build_settlement_world, day
from tests.test_api_settlement_support import (
    SettlementApi,
    act_url,
    close_and_draw_up,
    provider_act_url,
    provider_url,
    settlement_api,
    sign_over_http,
)
from tests.test_api_support import assert_problem as _problem
from tests.test_api_support import running

PURPOSE_LINE = b"amiyan.kz/service-act/v1\n"


@pytest.fixture(scope="module")
def client(database_url, tmp_path_factory) -> Iterator[TestClient]:
    settings = voucher_api_settings(database_url, tmp_path_factory.mktemp("provider-settlement"))
    with running(settings) as test_client:
        yield test_client


@pytest.fixture
def api(client, ledger, voucher_ledger, pool, database_url) -> SettlementApi:
    return settlement_api(client, build_settlement_world(ledger, voucher_ledger, pool, database_url))


def _register_key(api: SettlementApi, provider: Provider, idempotency_key: str | None = None):
    public_key, secret_key = nacl.bindings.crypto_sign_seed_keypair(new_id().bytes * 2)
    body = {"name": "Бас бухгалтер Дина Қайратқызы", "public_key": base64.b64encode(public_key).decode()}
    answer = api.post(
        provider_url(provider, "/signing-keys"), api.provider_key(provider), body, idempotency_key
    )
    return answer, body, secret_key


def test_a_provider_signs_its_act_with_a_key_it_registered(api):
    world = api.world
    provider = world.providers[0]
    world.redeem_on(day(world, 6), 60_000)
    number = close_and_draw_up(api, day(world, 6))[str(provider.id)]["number"]
    key = api.provider_key(provider)

    registered, body, secret = _register_key(api, provider, idempotency_key="key-1")
    assert registered.status_code == 201
    signer = registered.json()
    assert (signer["provider_id"], signer["name"], signer["revoked"]) == (
        str(provider.id),
        body["name"],
        False,
    )
    replay, _, _ = _register_key(api, provider, idempotency_key="key-1")  # another body: a different request
    _problem(replay, 409, "idempotency_key_reused")
    same_key = api.post(provider_url(provider, "/signing-keys"), key, body)
    _problem(same_key, 409, "public_key_registered")

    to_sign = api.get(provider_act_url(provider, number, "/signing-bytes"), key)
    assert to_sign.headers["content-type"] == "application/octet-stream"
    act_json = api.get(provider_act_url(provider, number, "/act.json"), key).content
    assert to_sign.content == PURPOSE_LINE + act_json
    listed = api.get(provider_url(provider, "/acts?state=issued"), key).json()["items"]
    assert [a["number"] for a in listed] == [number]

    signature = nacl.bindings.crypto_sign(to_sign.content, secret)[:64]
    sign_url = provider_act_url(provider, number, "/signature")
    forged = nacl.bindings.crypto_sign(to_sign.content + b" ", secret)[:64]
    for wrong, code in ((forged, "signature_invalid"), (signature[:32], "signature_malformed")):
        answer = api.post(
            sign_url, key, {"key_id": signer["id"], "signature": base64.b64encode(wrong).decode()}
        )
        _problem(answer, 403 if code == "signature_invalid" else 422, code)
    stranger = api.post(
        sign_url, key, {"key_id": str(new_id()), "signature": base64.b64encode(signature).decode()}
    )
    _problem(stranger, 403, "signing_key_unknown")

    signed = api.post(
        sign_url, key, {"key_id": signer["id"], "signature": base64.b64encode(signature).decode()}
    )
    assert signed.status_code == 200
    view = signed.json()
    assert view["state"] == "signed" and view["signature"]["key_id"] == signer["id"]
    again = api.post(
        sign_url, key, {"key_id": signer["id"], "signature": base64.b64encode(signature).decode()}
    )
    assert again.json() == view  # the same signature again changes nothing
    assert api.get(provider_url(provider, "/acts?state=issued"), key).json()["items"] == []
    assert api.get(provider_act_url(provider, number), key).json() == view
    assert api.get(act_url(number), api.officer).json()["state"] == "signed"


def test_a_key_may_be_given_as_paserk_and_must_be_ed25519_sized(api):
    provider = api.world.providers[0]
    url, key = provider_url(provider, "/signing-keys"), api.provider_key(provider)
    public_key, _ = nacl.bindings.crypto_sign_seed_keypair(new_id().bytes * 2)
    paserk = api.post(url, key, {"name": "Директор", "public_key": encode_k4_public(public_key)})
    assert paserk.status_code == 201 and base64.b64decode(paserk.json()["public_key"]) == public_key
    for text in (base64.b64encode(b"short").decode(), "k4.public.AAAA", "not base64!"):
        _problem(api.post(url, key, {"name": "Директор", "public_key": text}), 422, "public_key_invalid")
    _problem(api.post(url, key, {"name": "  ", "public_key": encode_k4_public(public_key)}), 422,
             "invalid_request")  # fmt: skip


def test_a_provider_reads_its_documents_and_the_pdf_reads_in_kazakh(api):
    world = api.world
    provider = world.providers[0]
    world.redeem_on(day(world, 6), 60_000)
    number = close_and_draw_up(api, day(world, 6))[str(provider.id)]["number"]
    key = api.provider_key(provider)
    for document in ("act.pdf", "invoice.pdf"):
        pdf = api.get(provider_act_url(provider, number, f"/{document}"), key)
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(pdf.content)).pages)
        assert KAZAKH_SERVICE in text
        assert pdf.content == api.get(act_url(number, f"/{document}"), api.officer).content
    invoice = json.loads(api.get(provider_act_url(provider, number, "/invoice.json"), key).content)
    assert invoice["act_number"] == number


def test_a_provider_sees_its_payouts_newest_first_with_their_payment_orders(api):
    world = api.world
    provider = world.providers[0]
    numbers = []
    for days_ago, amount in ((6, 60_000), (5, 25_000)):
        world.redeem_on(day(world, days_ago), amount)
        number = close_and_draw_up(api, day(world, days_ago))[str(provider.id)]["number"]
        assert sign_over_http(api, provider, number).status_code == 200
        assert api.post(act_url(number, "/approve"), api.officer).status_code == 200
        assert api.post(act_url(number, "/pay"), api.officer).status_code == 200
        numbers.append(number)
    key = api.provider_key(provider)
    first = api.get(provider_url(provider, "/payouts?limit=1"), key).json()
    second = api.get(first["next"], key).json()
    payouts = first["items"] + second["items"]
    assert [(p["act_number"], p["amount_tiyn"]) for p in payouts] == [
        (numbers[1], 25_000),
        (numbers[0], 60_000),
    ]
    assert second["next"] is None
    assert [len(p["orders"]) for p in payouts] == [1, 1] and payouts[0]["orders"][0]["amount_tiyn"] == 25_000
    act = api.get(provider_act_url(provider, numbers[0]), key).json()
    assert act["state"] == "paid" and act["payout"] == payouts[1]
