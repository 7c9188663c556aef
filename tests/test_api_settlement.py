"""The treasury officers' settlement routes, as an officer uses them: terms, closing periods in order,
drawing up acts, four eyes over HTTP, rejection and redrawing, payment once, returned payments, taking
back redemptions after the close, and the reconciliation in JSON and CSV."""

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader

from tests.api_world import voucher_api_settings
from tests.settlement_world import (
    KAZAKH_SERVICE,
    OFFICER,
    SECOND_OFFICER,
    build_settlement_world,
    day,
    fresh_iban,
)
from tests.test_api_settlement_support import (
    SettlementApi,
    act_url,
    close_and_draw_up,
    period_url,
    programme_url,
    settlement_api,
    sign_over_http,
)
from tests.test_api_support import assert_problem as _problem
from tests.test_api_support import running
from treasury.programmes import find_programme
from treasury.settlement.payouts import settlement_accounts
from treasury.settlement.reconciliation_formats import DIFFERENCE_COLUMNS, PROVIDER_COLUMNS


@pytest.fixture(scope="module")
def client(database_url, tmp_path_factory) -> Iterator[TestClient]:
    with running(voucher_api_settings(database_url, tmp_path_factory.mktemp("settlement"))) as test_client:
        yield test_client


@pytest.fixture
def api(client, ledger, voucher_ledger, pool, database_url) -> SettlementApi:
    """Acts above 1 000 tenge need two officers."""
    world = build_settlement_world(ledger, voucher_ledger, pool, database_url, threshold_tiyn=100_000)
    return settlement_api(client, world)


def test_periods_close_in_order_once_they_have_ended_and_a_retry_closes_nothing_more(api):
    world = api.world
    close, terms = programme_url(world, "/periods/close"), programme_url(world, "/terms")
    assert api.get(terms, api.officer).json()["next_period"]["start"] == day(world, 6).isoformat()

    later = {"period_start": day(world, 5).isoformat()}
    _problem(api.post(close, api.officer, later), 409, "period_out_of_order")
    closed = api.post(close, api.officer, idempotency_key="close-1")
    assert closed.status_code == 200
    first_day = day(world, 6).isoformat()
    assert closed.json() | {"closed_at": None} == {
        "programme_id": str(world.programme_id), "start": first_day, "end": first_day, "label": first_day,
        "cycle": "day", "closed_by": OFFICER, "closed_at": None,
    }  # fmt: skip
    again = api.post(close, api.officer, idempotency_key="close-1")
    assert again.content == closed.content and again.headers["idempotent-replayed"] == "true"
    # The retry closed no second period.
    assert api.get(terms, api.officer).json()["next_period"]["start"] == day(world, 5).isoformat()

    no_key = api.client.post(close, headers={"Authorization": f"Bearer {api.officer}"})
    _problem(no_key, 400, "idempotency_key_missing")
    while api.get(terms, api.officer).json()["next_period"]["start"] < world.today.isoformat():
        assert api.post(close, api.officer).status_code == 200
    _problem(api.post(close, api.officer), 409, "period_not_ended")

    listed = api.get(programme_url(world, "/periods?limit=4"), api.officer).json()
    starts = [p["start"] for p in listed["items"]]
    following = api.get(listed["next"], api.officer).json()
    assert starts + [p["start"] for p in following["items"]] == [
        day(world, n).isoformat() for n in range(6, 0, -1)
    ]
    assert api.get(period_url(world, day(world, 6)), api.officer).json() == closed.json()
    _problem(api.get(period_url(world, world.today), api.officer), 404, "period_not_found")


def test_acts_are_drawn_up_only_for_a_closed_period_and_list_what_was_redeemed(api):
    world = api.world
    first, second = world.providers[0], world.add_provider()
    for amount in (60_000, 60_000, 25_000):
        world.redeem_on(day(world, 6), amount)
    world.redeem_on(day(world, 6), 40_000, provider=second)
    _problem(api.post(period_url(world, day(world, 6), "/acts"), api.officer), 409, "period_not_closed")

    acts = close_and_draw_up(api, day(world, 6))
    assert {provider: act["total_tiyn"] for provider, act in acts.items()} == {
        str(first.id): 145_000,
        str(second.id): 40_000,
    }
    page = api.get(period_url(world, day(world, 6), "/acts?limit=1"), api.officer).json()
    rest = api.get(page["next"], api.officer).json()
    listed = page["items"] + rest["items"]
    assert [a["number"] for a in listed] == sorted(a["number"] for a in acts.values())
    mine = next(a for a in listed if a["provider_id"] == str(first.id))
    assert (mine["state"], mine["kind"], mine["signature"], mine["approvals"], mine["payout"]) == (
        "issued", "regular", None, [], None
    )  # fmt: skip
    assert mine["invoice"]["total_with_vat_tiyn"] == 145_000 and mine["invoice"]["vat_rate"] == "exempt"
    again = api.post(period_url(world, day(world, 6), "/acts"), api.officer).json()
    assert again["acts_issued"] == 0  # nothing left unsettled


def test_four_eyes_over_http_then_the_act_is_paid_once(api, ledger):
    world = api.world
    provider = world.providers[0]
    for amount in (60_000, 60_000, 60_000):  # 1 800 tenge: above the 1 000 tenge threshold
        world.redeem_on(day(world, 6), amount)
    number = close_and_draw_up(api, day(world, 6))[str(provider.id)]["number"]
    _problem(api.post(act_url(number, "/approve"), api.officer), 409, "act_not_signed")
    assert sign_over_http(api, provider, number).json()["state"] == "signed"

    first = api.post(act_url(number, "/approve"), api.officer)
    assert first.status_code == 200 and first.json()["state"] == "approved_once"
    _problem(api.post(act_url(number, "/approve"), api.officer), 403, "second_officer_required")
    _problem(api.post(act_url(number, "/pay"), api.officer), 409, "act_not_approved")
    second = api.post(act_url(number, "/approve"), api.second_officer).json()
    assert second["state"] == "approved"
    assert [(a["step"], a["officer"]) for a in second["approvals"]] == [(1, OFFICER), (2, SECOND_OFFICER)]

    paid = api.post(act_url(number, "/pay"), api.officer, idempotency_key="pay-1")
    assert paid.status_code == 200
    payout = paid.json()
    assert (payout["amount_tiyn"], payout["setoff_tiyn"], len(payout["orders"])) == (180_000, 0, 1)
    order = payout["orders"][0]
    assert order["amount_tiyn"] == 180_000 and order["kbk"] == "251 027 015" and not order["returned"]
    assert order["purpose"].startswith(f"Оплата по акту № {number}")
    replay = api.post(act_url(number, "/pay"), api.officer, idempotency_key="pay-1")
    assert replay.headers["idempotent-replayed"] == "true" and replay.content == paid.content
    for key in (api.officer, api.second_officer):  # new keys, other officers: the same payout, no second
        assert api.post(act_url(number, "/pay"), key).json() == payout
    assert api.get(act_url(number, "/payout"), api.officer).json() == payout
    assert api.get(act_url(number), api.officer).json()["state"] == "paid"

    programme = world.run(lambda c: find_programme(c, world.programme_id))
    _, bank = world.run(lambda c: settlement_accounts(c, programme, provider.id))
    [account] = ledger.lookup_accounts([bank])
    assert (account.credits_posted, account.debits_posted) == (180_000, 0)


def test_a_rejected_act_releases_its_redemptions_and_is_drawn_up_again_with_a_new_number(api):
    world = api.world
    world.redeem_on(day(world, 6), 60_000)
    number = close_and_draw_up(api, day(world, 6))[str(world.providers[0].id)]["number"]
    _problem(api.post(act_url(number, "/reject"), api.officer, {"reason": "  "}), 422, "invalid_request")
    rejected = api.post(act_url(number, "/reject"), api.officer, {"reason": "меню не совпадает"}).json()
    assert rejected["state"] == "rejected"
    assert (rejected["rejection"]["officer"], rejected["rejection"]["reason"]) == (
        OFFICER,
        "меню не совпадает",
    )
    _problem(api.post(act_url(number, "/approve"), api.officer), 409, "act_rejected")
    _problem(sign_over_http(api, world.providers[0], number), 409, "act_rejected")

    redrawn = api.post(period_url(world, day(world, 6), "/acts"), api.officer).json()
    [act] = redrawn["providers"][0]["acts"]
    assert act["number"] != number and act["total_tiyn"] == 60_000


def test_documents_are_the_stored_bytes_with_an_etag_and_the_pdf_reads_in_kazakh(api):
    world = api.world
    world.redeem_on(day(world, 6), 60_000)
    number = close_and_draw_up(api, day(world, 6))[str(world.providers[0].id)]["number"]
    view = api.get(act_url(number), api.officer).json()

    pdf = api.get(act_url(number, "/act.pdf"), api.officer)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and "immutable" in pdf.headers["cache-control"]
    text = " ".join(
        " ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf.content)).pages
    )
    assert KAZAKH_SERVICE in text and number in text
    cached = api.get(act_url(number, "/act.pdf"), api.officer, **{"If-None-Match": pdf.headers["etag"]})
    assert cached.status_code == 304 and cached.content == b""

    body = api.get(act_url(number, "/act.json"), api.officer)
    assert body.headers["content-type"] == "application/json"
    assert hashlib.sha256(body.content).hexdigest() == view["sha256"]  # what the audit log recorded
    assert json.loads(body.content)["number"] == number
    invoice = api.get(act_url(number, "/invoice.json"), api.officer).json()
    assert invoice["number"] == view["invoice"]["number"]
    invoice_pdf = api.get(act_url(number, "/invoice.pdf"), api.officer)
    assert invoice_pdf.headers["content-type"] == "application/pdf"
    assert "filename*=UTF-8''" in invoice_pdf.headers["content-disposition"]
    for path in ("", "/act.pdf", "/invoice.json", "/payout"):
        _problem(api.get(act_url("АКТ-NOPE-1", path), api.officer), 404, "act_not_found")
    _problem(api.get(act_url(number, "/payout"), api.officer), 404, "payout_not_found")


def _paid(api, amounts=(60_000,)):
    world = api.world
    ids = [world.redeem_on(day(world, 6), amount) for amount in amounts]
    number = close_and_draw_up(api, day(world, 6))[str(world.providers[0].id)]["number"]
    sign_over_http(api, world.providers[0], number)
    assert api.post(act_url(number, "/approve"), api.officer).status_code == 200
    payout = api.post(act_url(number, "/pay"), api.officer)
    assert payout.status_code == 200, payout.text
    return number, payout.json(), ids


def test_a_returned_payment_is_paid_again_once_the_iban_is_corrected(api):
    number, payout, _ = _paid(api)
    order = payout["orders"][0]["number"]
    returned_url = f"/v1/treasury/settlement/payment-orders/{order}/return"
    returned = api.post(returned_url, api.officer, {"reason": "счёт закрыт"}).json()
    assert returned["orders"][0]["returned"] and returned["orders"][0]["return_reason"] == "счёт закрыт"
    assert api.post(returned_url, api.officer, {"reason": "счёт закрыт"}).json() == returned
    _problem(api.post(act_url(number, "/repay"), api.officer), 409, "iban_unchanged")

    iban = fresh_iban()
    api.world.record_profile(api.world.providers[0].id, iban)
    repaid = api.post(act_url(number, "/repay"), api.officer).json()
    assert [(o["attempt"], o["iban"], o["returned"]) for o in repaid["orders"]] == [
        (1, payout["orders"][0]["iban"], True), (2, iban, False)
    ]  # fmt: skip
    _problem(api.post(act_url(number, "/repay"), api.officer), 409, "payment_not_returned")
    _problem(api.post("/v1/treasury/settlement/payment-orders/ПП-NOPE/return", api.officer, {"reason": "x"}),
             404, "payment_order_not_found")  # fmt: skip


def test_a_redemption_taken_back_after_payment_is_adjusted_and_the_reconciliation_says_so(api):
    world = api.world
    number, _, ids = _paid(api, (60_000, 25_000))
    url = programme_url(world, "/disallowances")
    today = world.redeem_on(world.today, 10_000)
    _problem(
        api.post(url, api.officer, {"redemption_ids": [str(today)], "reason": "ошибка"}), 409, "period_open"
    )
    taken = api.post(url, api.officer, {"redemption_ids": [str(ids[1])], "reason": "ученик отсутствовал"})
    assert [(d["redemption_id"], d["amount_tiyn"]) for d in taken.json()["items"]] == [(str(ids[1]), 25_000)]
    again = api.post(url, api.officer, {"redemption_ids": [str(ids[1])], "reason": "ученик отсутствовал"})
    assert again.json()["items"] == taken.json()["items"]  # one take-back per redemption

    reconciliation = period_url(world, day(world, 6), "/reconciliation")
    report = api.get(reconciliation, api.officer).json()
    assert not report["reconciled"]
    assert [d["kind"] for d in report["differences"]] == ["take_back_not_adjusted"]

    adjustment = api.post(period_url(world, day(world, 6), "/acts"), api.officer).json()
    [act] = adjustment["providers"][0]["acts"]
    assert (act["kind"], act["corrects"], act["total_tiyn"]) == ("adjustment", number, -25_000)
    assert api.post(act_url(act["number"], "/approve"), api.officer).json()["state"] == "approved"
    report = api.get(reconciliation, api.officer).json()
    assert [d["kind"] for d in report["differences"]] == ["adjustment_not_set_off"]
    totals = report["totals"]
    figures = ("redeemed_tiyn", "disallowed_tiyn", "acted_tiyn", "paid_tiyn")
    assert [totals[figure] for figure in figures] == [85_000, 25_000, 60_000, 85_000]


def test_the_reconciliation_comes_as_csv_by_format_or_by_accept(api):
    world = api.world
    _paid(api, (60_000, 25_000))
    url = period_url(world, day(world, 6), "/reconciliation")
    report = api.get(url, api.officer).json()
    assert report["reconciled"] and report["differences"] == []
    for answer in (api.get(url + "?format=csv", api.officer), api.get(url, api.officer, Accept="text/csv")):
        assert answer.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(answer.text)))
        assert tuple(rows[0]) == PROVIDER_COLUMNS
        [row] = rows
        assert (row["provider_id"], row["redeemed_tiyn"], row["paid_tiyn"]) == (
            str(world.providers[0].id), "85000", "85000"
        )  # fmt: skip
    differences = api.get(url + "?format=csv&table=differences", api.officer).text
    assert differences.splitlines() == [",".join(DIFFERENCE_COLUMNS)]
    _problem(
        api.get(period_url(world, world.today, "/reconciliation"), api.officer), 409, "period_not_closed"
    )


def test_terms_are_set_once_and_the_same_terms_again_change_nothing(api):
    world = api.world
    url = programme_url(world, "/terms")
    current = api.get(url, api.officer).json()
    same = {"cycle": current["cycle"], "payout_threshold_tiyn": current["payout_threshold_tiyn"]}
    assert api.put(url, api.officer, same).json() == current
    _problem(api.put(url, api.officer, same | {"cycle": "month"}), 409, "terms_fixed")
    _problem(api.put(url, api.officer, same | {"payout_threshold_tiyn": -1}), 422, "invalid_request")
    missing = url.replace(str(world.programme_id), "0192f1c2-0000-7000-8000-000000000000")
    _problem(api.get(missing, api.officer), 404, "programme_not_found")


def test_officers_paying_one_act_at_once_over_http_pay_it_once(api, ledger):
    world = api.world
    provider = world.providers[0]
    world.redeem_on(day(world, 6), 60_000)
    number = close_and_draw_up(api, day(world, 6))[str(provider.id)]["number"]
    sign_over_http(api, provider, number)
    assert api.post(act_url(number, "/approve"), api.officer).status_code == 200
    keys = [api.officer, api.second_officer] * 4
    with ThreadPoolExecutor(len(keys)) as pool:
        answers = list(pool.map(lambda key: api.post(act_url(number, "/pay"), key), keys))
    assert {answer.status_code for answer in answers} == {200}
    payouts = [answer.json() for answer in answers]
    assert all(payout == payouts[0] for payout in payouts) and len(payouts[0]["orders"]) == 1
    programme = world.run(lambda c: find_programme(c, world.programme_id))
    _, bank = world.run(lambda c: settlement_accounts(c, programme, provider.id))
    [account] = ledger.lookup_accounts([bank])
    assert account.credits_posted == 60_000
