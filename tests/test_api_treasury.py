"""The treasury officers' programme and funding routes, as officers use them: a programme drafted with its
policy, listed and read, opened and closed (its funds back to the budget); policy versions; funding with
four eyes and the ceiling over HTTP; regional sub-funds; positions that reconcile, in JSON and CSV."""

import csv
import datetime as dt
import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.credentials import Role
from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork
from tests.api_world import voucher_api_settings
from tests.test_api_support import assert_problem as _problem
from tests.test_api_support import running
from tests.test_api_treasury_support import (
    OFFICER,
    SECOND_OFFICER,
    TreasuryApi,
    create_programme,
    fund,
    meals_policy,
    open_funded_programme,
    programme_body,
    programme_url,
    treasury_api,
)


@pytest.fixture(scope="module")
def client(database_url, tmp_path_factory, voucher_ledger) -> Iterator[TestClient]:
    """After `voucher_ledger`, which introduces the issuer key with its own windows first."""
    with running(voucher_api_settings(database_url, tmp_path_factory.mktemp("treasury"))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def api(client, pool) -> TreasuryApi:
    return treasury_api(client, UnitOfWork(pool))


def _funded(api: TreasuryApi, programme: dict) -> int:
    return api.get(programme_url(programme)).json()["funded_tiyn"]


# --- programmes ---------------------------------------------------------------------------------------


def test_a_programme_is_created_as_a_draft_with_its_policy_and_read_back(api):
    body = programme_body()
    made = api.post("/v1/treasury/programmes", body)
    assert made.status_code == 201, made.text
    programme = made.json()
    assert made.headers["location"] == programme_url(programme)
    assert {key: programme[key] for key in body if key not in ("policy", "customer")} == {
        key: value for key, value in body.items() if key not in ("policy", "customer")
    }
    assert programme["customer"] == body["customer"]
    assert (programme["state"], programme["purpose"], programme["funded_tiyn"]) == (
        "draft",
        "school_meals",
        0,
    )
    assert programme["created_by"] == OFFICER

    read = api.get(programme_url(programme))
    assert read.json() == programme
    assert api.get(programme_url(programme), **{"If-None-Match": read.headers["etag"]}).status_code == 304
    [first] = api.get(programme_url(programme, "/policies")).json()["items"]
    assert (first["version"], first["policy"]["price_per_use_tiyn"]) == (1, 60_000)


def test_programmes_are_listed_by_code_page_by_page(api):
    codes = sorted(create_programme(api, code=f"LIST-{new_id().hex[:12].upper()}")["code"] for _ in range(3))
    listed, url = [], "/v1/treasury/programmes?limit=2"
    while url:
        page = api.get(url).json()
        listed += [programme["code"] for programme in page["items"]]
        url = page["next"]
    assert listed == sorted(listed) and set(codes) <= set(listed)


def test_a_bad_draft_is_refused_with_the_rule_it_broke_and_nothing_is_created(api):
    body = programme_body()
    _problem(api.post("/v1/treasury/programmes", body | {"kbk": "251-027"}), 422, "kbk_invalid")
    bad_policy = body | {"policy": meals_policy(period_uses_max=1, period="none")}
    answer = api.post("/v1/treasury/programmes", bad_policy)
    _problem(answer, 422, "policy_invalid")
    assert "period_uses_max" in answer.json()["detail"]
    unknown_field = body | {"policy": meals_policy() | {"colour": "red"}}
    _problem(api.post("/v1/treasury/programmes", unknown_field), 422, "policy_invalid")
    digits = body["customer"]["bin"]
    customer = body["customer"] | {"bin": digits[:-1] + str((int(digits[-1]) + 1) % 10)}
    _problem(
        api.post("/v1/treasury/programmes", body | {"customer": customer}), 422, "customer_bin_check_digit"
    )
    listed = api.get("/v1/treasury/programmes?limit=500").json()["items"]
    assert body["code"] not in [programme["code"] for programme in listed]

    create_programme(api, code=body["code"])
    _problem(
        api.post("/v1/treasury/programmes", programme_body(code=body["code"])), 409, "programme_code_taken"
    )


def test_a_retry_with_the_same_key_is_the_same_programme(api):
    body = programme_body()
    first = api.post("/v1/treasury/programmes", body, idempotency_key="programme-retry-" + body["code"])
    again = api.post("/v1/treasury/programmes", body, idempotency_key="programme-retry-" + body["code"])
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]


def test_a_programme_opens_once_and_closes_for_good_returning_its_fund_to_the_budget(api):
    programme = create_programme(api)
    _problem(api.post(programme_url(programme, "/close")), 409, "illegal_state_change")
    fund(api, programme, 2_000_000)
    opened = api.post(programme_url(programme, "/open"))
    assert opened.json()["state"] == "open"
    assert api.post(programme_url(programme, "/open")).json()["state"] == "open"

    closed = api.post(programme_url(programme, "/close"))
    assert closed.status_code == 200, closed.text
    assert (closed.json()["programme"]["state"], closed.json()["returned_tiyn"]) == ("closed", 2_000_000)
    assert [r["account_id"] for r in closed.json()["returns"]] == [programme["fund_account_id"]]
    again = api.post(programme_url(programme, "/close"))
    assert (again.status_code, again.json()["returned_tiyn"]) == (200, 0)
    _problem(api.post(programme_url(programme, "/open")), 409, "illegal_state_change")
    _problem(
        api.post(programme_url(programme, "/funding-orders"), {"amount_tiyn": 1}), 409, "programme_closed"
    )
    positions = api.get(programme_url(programme, "/positions")).json()
    assert positions["figures"]["returned"] == 2_000_000 and positions["reconciled"]


def test_policy_versions_are_recorded_forward_only_and_the_same_document_is_the_same_version(api):
    programme = create_programme(api)
    policies = programme_url(programme, "/policies")
    cheaper = meals_policy(price_per_use_tiyn=55_000)
    recorded = api.post(policies, {"policy": cheaper})
    assert recorded.status_code == 201, recorded.text
    assert (recorded.json()["version"], recorded.json()["policy"]["price_per_use_tiyn"]) == (2, 55_000)
    same = api.post(policies, {"policy": cheaper})
    assert (same.status_code, same.json()["version"]) == (200, 2)
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()
    assert api.post(policies, {"policy": meals_policy(), "valid_from": later}).json()["version"] == 3
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    _problem(
        api.post(policies, {"policy": meals_policy(), "valid_from": past}), 422, "valid_from_in_the_past"
    )
    _problem(api.post(policies, {"policy": {"purpose": "school_meals"}}), 422, "policy_invalid")
    versions = api.get(policies + "?limit=2").json()
    rest = api.get(versions["next"]).json()
    assert [v["version"] for v in versions["items"] + rest["items"]] == [1, 2, 3] and rest["next"] is None
    assert rest["items"][0]["valid_from"] > versions["items"][1]["valid_from"]
    _problem(api.post(programme_url(new_id(), "/policies"), {"policy": cheaper}), 404, "programme_not_found")


# --- funding ------------------------------------------------------------------------------------------


def test_an_order_at_or_below_the_threshold_executes_at_once(api):
    programme = create_programme(api, approval_threshold_tiyn=1_000_000)
    made = api.post(programme_url(programme, "/funding-orders"), {"amount_tiyn": 1_000_000})
    assert made.status_code == 201, made.text
    order = made.json()
    assert (order["state"], order["needs_approval"], order["approved_by"]) == ("executed", False, None)
    assert order["transfer_id"] is not None and made.headers["location"].endswith(order["id"])
    assert _funded(api, programme) == 1_000_000


def test_four_eyes_over_http_the_maker_cannot_approve_and_a_second_officer_can(api):
    programme = create_programme(api, approval_threshold_tiyn=1_000_000)
    order = api.post(programme_url(programme, "/funding-orders"), {"amount_tiyn": 3_000_000}).json()
    assert (order["state"], order["needs_approval"], order["created_by"]) == (
        "awaiting_approval",
        True,
        OFFICER,
    )
    assert _funded(api, programme) == 0

    _problem(api.post(f"/v1/treasury/funding-orders/{order['id']}/approve"), 403, "four_eyes")
    assert api.get(f"/v1/treasury/funding-orders/{order['id']}").json()["state"] == "awaiting_approval"
    assert _funded(api, programme) == 0

    waiting = api.get(programme_url(programme, "/funding-orders?state=awaiting_approval")).json()["items"]
    assert [o["id"] for o in waiting] == [order["id"]]
    approved = api.post(f"/v1/treasury/funding-orders/{order['id']}/approve", key=api.second_officer)
    assert approved.status_code == 200, approved.text
    assert (approved.json()["state"], approved.json()["approved_by"]) == ("executed", SECOND_OFFICER)
    assert _funded(api, programme) == 3_000_000
    _problem(api.post(f"/v1/treasury/funding-orders/{order['id']}/reject", {"reason": "late"}), 409,
             "order_not_awaiting_approval")  # fmt: skip


def test_a_waiting_order_is_rejected_with_a_reason_and_moves_nothing(api):
    programme = create_programme(api, approval_threshold_tiyn=0)
    order = api.post(programme_url(programme, "/funding-orders"), {"amount_tiyn": 500_000}).json()
    _problem(
        api.post(f"/v1/treasury/funding-orders/{order['id']}/reject", {"reason": " "}), 422, "invalid_request"
    )
    rejected = api.post(f"/v1/treasury/funding-orders/{order['id']}/reject", {"reason": "бюджет заморожен"})
    assert (rejected.json()["state"], rejected.json()["rejection_reason"]) == ("rejected", "бюджет заморожен")
    assert rejected.json()["rejected_by"] == OFFICER and _funded(api, programme) == 0
    _problem(api.post(f"/v1/treasury/funding-orders/{order['id']}/approve", key=api.second_officer), 409,
             "order_not_awaiting_approval")  # fmt: skip
    _problem(api.get(f"/v1/treasury/funding-orders/{new_id()}"), 404, "order_not_found")


def test_funding_never_passes_the_ceiling_over_http(api):
    programme = create_programme(api, budget_ceiling_tiyn=10_000_000, approval_threshold_tiyn=4_000_000)
    fund(api, programme, 4_000_000)
    _problem(api.post(programme_url(programme, "/funding-orders"), {"amount_tiyn": 6_000_001}), 409,
             "ceiling_exceeded")  # fmt: skip
    assert _funded(api, programme) == 4_000_000
    # Two waiting orders each fit; together they would not: the second approval is refused.
    first = api.post(programme_url(programme, "/funding-orders"), {"amount_tiyn": 5_000_000}).json()
    second = api.post(programme_url(programme, "/funding-orders"), {"amount_tiyn": 5_000_000}).json()
    assert (
        api.post(f"/v1/treasury/funding-orders/{first['id']}/approve", key=api.second_officer).status_code
        == 200
    )
    late = api.post(f"/v1/treasury/funding-orders/{second['id']}/approve", key=api.second_officer)
    _problem(late, 409, "ceiling_exceeded")
    assert api.get(f"/v1/treasury/funding-orders/{second['id']}").json()["state"] == "awaiting_approval"
    assert _funded(api, programme) == 9_000_000


def test_a_funding_retry_with_the_same_key_is_the_same_order_and_funds_once(api):
    programme = create_programme(api)
    url = programme_url(programme, "/funding-orders")
    key = f"fund-{programme['id']}"
    first = api.post(url, {"amount_tiyn": 700_000}, idempotency_key=key)
    again = api.post(url, {"amount_tiyn": 700_000}, idempotency_key=key)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    _problem(api.post(url, {"amount_tiyn": 800_000}, idempotency_key=key), 409, "idempotency_key_reused")
    assert _funded(api, programme) == 700_000
    orders = api.get(url + "?limit=1").json()
    assert len(orders["items"]) == 1 and orders["next"] is None


# --- regional sub-funds -------------------------------------------------------------------------------


def test_a_national_programme_allocates_to_regions_and_takes_money_back(api):
    programme = open_funded_programme(api, 5_000_000, region="national")
    sub_funds = programme_url(programme, "/sub-funds")
    almaty = api.post(sub_funds, {"region": "Алматы"})
    assert almaty.status_code == 201, almaty.text
    account = almaty.json()["account_id"]
    assert api.post(sub_funds, {"region": "Алматы"}).json()["account_id"] == account
    api.post(sub_funds, {"region": "Шымкент"})
    moves = programme_url(programme, f"/sub-funds/{account}/allocations")
    allocated = api.post(moves, {"direction": "allocate", "amount_tiyn": 3_000_000})
    assert allocated.status_code == 201, allocated.text
    assert (allocated.json()["direction"], allocated.json()["officer"]) == ("allocate", OFFICER)
    assert api.post(moves, {"direction": "take_back", "amount_tiyn": 1_000_000}).status_code == 201
    _problem(api.post(moves, {"direction": "take_back", "amount_tiyn": 2_000_001}), 409, "insufficient_funds")
    listed = api.get(sub_funds).json()["items"]
    assert [(s["region"], s["balance_tiyn"]) for s in listed] == [("Алматы", 2_000_000), ("Шымкент", 0)]
    positions = api.get(programme_url(programme, "/positions")).json()
    assert positions["figures"]["allocated"] == 2_000_000 and positions["reconciled"]
    other = create_programme(api)
    _problem(api.post(programme_url(other, f"/sub-funds/{account}/allocations"),
                      {"direction": "allocate", "amount_tiyn": 1}), 404, "sub_fund_not_found")  # fmt: skip
    _problem(
        api.post(programme_url(other, "/sub-funds"), {"region": "Алматы"}), 409, "programme_not_national"
    )


# --- positions ----------------------------------------------------------------------------------------


def test_positions_reconcile_in_json_and_csv_and_as_of_a_day(api):
    programme = open_funded_programme(api, 3_000_000)
    answer = api.get(programme_url(programme, "/positions"))
    positions = answer.json()
    assert positions["figures"]["funded"] == positions["figures"]["unissued"] == 3_000_000
    assert positions["reconciled"] and all(check["ok"] for check in positions["checks"])
    assert (positions["programme"], positions["as_of"]) == (programme["code"], None)

    as_csv = api.get(programme_url(programme, "/positions?format=csv"))
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert {row["figure"]: int(row["tiyn"]) for row in rows if not row["figure"].startswith("check")}[
        "funded"
    ] == 3_000_000
    assert [int(row["tiyn"]) for row in rows if row["figure"].startswith("check")] == [0, 0, 0]
    assert api.get(programme_url(programme, "/positions"), Accept="text/csv").text == as_csv.text

    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).date().isoformat()
    before = api.get(programme_url(programme, f"/positions?as_of={yesterday}")).json()
    assert before["figures"]["funded"] == 0 and before["as_of"] == yesterday
    _problem(api.get(programme_url(programme, "/positions?as_of=9999-12-31")), 422, "as_of_invalid")
    _problem(api.get(programme_url(new_id(), "/positions")), 404, "programme_not_found")


def test_only_officers_reach_the_programme_list(api):
    for role, key in api.role_keys.items():
        assert role is not Role.treasury_officer
        _problem(api.get("/v1/treasury/programmes", key=key), 403, "role_forbidden")


def test_the_documented_example_of_a_programme_is_one_an_officer_can_send(api):
    document = api.client.get("/openapi.json").json()
    [example] = document["components"]["schemas"]["ProgrammeIn"]["examples"]
    made = api.post("/v1/treasury/programmes", example | {"code": f"EX-{new_id().hex[:10].upper()}"})
    assert made.status_code == 201, made.text
    upload = document["paths"]["/v1/treasury/programmes/{programme_id}/issuance-jobs"]["post"]
    assert set(upload["requestBody"]["content"]) == {"text/csv", "application/x-ndjson"}
    assert upload["x-amiyan-body-limit"] == "bulk_upload"
