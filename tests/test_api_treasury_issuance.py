"""Bulk issuance, officers' voucher steps, the expiry sweep and providers over HTTP: a list with 5% bad rows
issues exactly the good ones and the report names the bad ones; uploading it again issues nothing twice;
a voucher is suspended, resumed and revoked with a reason; the sweep expires what is due; providers are
registered, given a profile and enrolled."""

import csv
import io
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.credentials import Role
from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.issuance import VoucherOrder
from ledger.vouchers.results import IssueResult
from tests.api_world import voucher_api_settings
from tests.test_api_support import assert_problem as _problem
from tests.test_api_support import bearer, running
from tests.test_api_treasury_support import (
    MEAL_TIYN,
    OFFICER,
    TreasuryApi,
    create_programme,
    open_funded_programme,
    programme_url,
    treasury_api,
    wait_for_job,
)
from tests.treasury_operations_world import fresh_iins
from tests.voucher_world import fresh_bin, holder_hash

SECOND_NS = 1_000_000_000


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("treasury-issuance")


@pytest.fixture(scope="module")
def client(database_url, data_dir, voucher_ledger) -> Iterator[TestClient]:
    """After `voucher_ledger`, which introduces the issuer key with its own windows first."""
    with running(voucher_api_settings(database_url, data_dir)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def api(client, pool) -> TreasuryApi:
    return treasury_api(client, UnitOfWork(pool))


def _vouchers_of(pool, programme: dict[str, Any]) -> dict[bytes, int]:
    """{holder hash: amount} of the programme's vouchers."""
    rows = UnitOfWork(pool).read(
        lambda c: c.execute(
            "SELECT holder_hash, amount_tiyn FROM vouchers WHERE programme_id = %s", (programme["id"],)
        ).fetchall()
    )
    return {bytes(holder): amount for holder, amount in rows}


def _csv_list(iins: list[str], entitlement: str = "uses:5") -> str:
    return "iin,entitlement\n" + "".join(f"{iin},{entitlement}\n" for iin in iins)


def _issued(api: TreasuryApi, programme: dict[str, Any], content: str, **upload: Any) -> dict[str, Any]:
    answer = api.upload(programme["id"], content, **upload)
    assert answer.status_code in (200, 202), answer.text
    return wait_for_job(api, answer.json()["id"])


# --- bulk issuance ------------------------------------------------------------------------------------


def test_a_list_with_five_percent_bad_rows_issues_exactly_the_good_ones(api, pool):
    programme = open_funded_programme(api, 40 * 5 * MEAL_TIYN)
    good = fresh_iins(38)
    bad_check_digit = good[0][:-1] + str((int(good[0][-1]) + 1) % 10)
    rows = [*good[:10], bad_check_digit, *good[10:30], good[3], *good[30:]]  # lines 12 and 33 are bad
    answer = api.upload(programme["id"], _csv_list(rows), name="pupils.csv")
    assert answer.status_code == 202, answer.text
    assert answer.headers["location"] == f"/v1/treasury/issuance-jobs/{answer.json()['id']}"
    assert (answer.json()["rows_total"], answer.json()["source_name"]) == (40, "pupils.csv")

    job = wait_for_job(api, answer.json()["id"])
    assert (job["state"], job["rows_done"], job["issued"], job["rejected"]) == ("finished", 40, 38, 2)
    assert (job["issued_tiyn"], job["created_by"], job["stopped"]) == (38 * 5 * MEAL_TIYN, OFFICER, None)
    assert _vouchers_of(pool, programme) == {holder_hash(iin): 5 * MEAL_TIYN for iin in good}

    report = api.get(f"/v1/treasury/issuance-jobs/{job['id']}/rejections.csv")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    rejected = list(csv.DictReader(io.StringIO(report.text)))
    assert [(row["row"], row["reason"]) for row in rejected] == [("12", "iin_check_digit"),
                                                                 ("33", "duplicate_holder")]  # fmt: skip
    assert rejected[1]["holder"].endswith(good[3][-4:]) and good[3] not in report.text
    etag = report.headers["etag"]
    assert (
        api.get(
            f"/v1/treasury/issuance-jobs/{job['id']}/rejections.csv", **{"If-None-Match": etag}
        ).status_code
        == 304
    )
    positions = api.get(programme_url(programme, "/positions")).json()
    assert positions["figures"]["offered"] == 38 * 5 * MEAL_TIYN and positions["reconciled"]


def test_uploading_the_same_list_again_finds_the_same_job_and_issues_nothing_twice(api, pool, data_dir):
    programme = open_funded_programme(api, 10 * 5 * MEAL_TIYN)
    iins = fresh_iins(6)
    content = _csv_list(iins)
    first = _issued(api, programme, content)
    assert (first["issued"], first["state"]) == (6, "finished")

    again = api.upload(programme["id"], content)
    assert again.status_code == 200, again.text
    assert (again.json()["id"], again.json()["issued"]) == (first["id"], 6)
    # The same bytes declared as JSON lines are still that CSV list: read as they were read the first time.
    relabelled = api.upload(programme["id"], content, media_type="application/x-ndjson")
    assert (relabelled.status_code, relabelled.json()["id"]) == (200, first["id"])
    # The same rows in another file (JSON lines) are another job: every voucher exists already.
    lines = "".join(json.dumps({"iin": iin, "entitlement": "uses:5"}) + "\n" for iin in iins)
    other = _issued(api, programme, lines, media_type="application/x-ndjson", name="pupils.jsonl")
    assert other["id"] != first["id"]
    assert (other["issued"], other["already_issued"], other["rejected"]) == (0, 6, 0)
    assert len(_vouchers_of(pool, programme)) == 6
    jobs = api.get(programme_url(programme, "/issuance-jobs?limit=1")).json()
    rest = api.get(jobs["next"]).json()
    assert [j["id"] for j in jobs["items"] + rest["items"]] == [first["id"], other["id"]]
    kept = sorted(path.name for path in (data_dir / "eligibility-lists" / programme["id"]).iterdir())
    assert kept == sorted([f"{first['source_sha256']}.csv", f"{other['source_sha256']}.jsonl"])


def test_a_list_that_cannot_be_read_is_refused_and_not_kept(api, data_dir):
    programme = open_funded_programme(api, 1_000_000)
    _problem(api.upload(programme["id"], "name,amount\nx,1\n"), 422, "list_columns_invalid")
    latin = api.client.post(
        programme_url(programme, "/issuance-jobs"), content="iin,entitlement\n\xe9\n".encode("latin-1"),
        headers=bearer(api.officer) | {"Idempotency-Key": str(new_id()), "Content-Type": "text/csv"},
    )  # fmt: skip
    _problem(latin, 422, "list_not_utf8")
    _problem(api.upload(programme["id"], _csv_list(fresh_iins(1)), media_type="application/json"), 415,
             "unsupported_media_type")  # fmt: skip
    assert not (data_dir / "eligibility-lists" / programme["id"]).exists() or not any(
        (data_dir / "eligibility-lists" / programme["id"]).iterdir()
    )
    draft = create_programme(api)
    _problem(api.upload(draft["id"], _csv_list(fresh_iins(1))), 409, "programme_not_open")
    _problem(api.upload(new_id(), _csv_list(fresh_iins(1))), 404, "programme_not_found")
    _problem(api.get(f"/v1/treasury/issuance-jobs/{new_id()}"), 404, "job_not_found")


# --- an officer's steps on a voucher ------------------------------------------------------------------


def _active_voucher(api: TreasuryApi, programme: dict[str, Any]) -> tuple[str, str]:
    """(IIN, voucher id): issued from a list, accepted and activated by the citizen in eGov Mobile."""
    [iin] = fresh_iins(1)
    _issued(api, programme, _csv_list([iin]))
    mobile = bearer(api.role_keys[Role.mobile_backend]) | {"X-Citizen-IIN": iin}
    [offer] = api.client.get("/v1/mobile/vouchers", headers=mobile).json()["items"]
    for step in ("accept", "activate"):
        answer = api.client.post(f"/v1/mobile/vouchers/{offer['id']}/{step}",
                                 headers=mobile | {"Idempotency-Key": str(new_id())})  # fmt: skip
        assert answer.status_code == 200, answer.text
    return iin, offer["id"]


def test_an_officer_suspends_resumes_and_revokes_a_voucher_with_a_reason(api, pool):
    programme = open_funded_programme(api, 1_000_000)
    _, voucher = _active_voucher(api, programme)
    url = f"/v1/treasury/vouchers/{voucher}"
    suspended = api.post(f"{url}/suspend", {"reason": "проверка, дело 118"}, idempotency_key=f"s-{voucher}")
    assert suspended.status_code == 200, suspended.text
    assert (suspended.json()["state"], suspended.json()["available_tiyn"]) == ("suspended", 5 * MEAL_TIYN)
    replay = api.post(f"{url}/suspend", {"reason": "проверка, дело 118"}, idempotency_key=f"s-{voucher}")
    assert replay.headers["idempotent-replayed"] == "true"
    [reason] = UnitOfWork(pool).read(
        lambda c: c.execute(
            "SELECT reason FROM voucher_transitions WHERE voucher_id = %s AND action = 4", (voucher,)
        ).fetchone()
    )
    assert reason == f"проверка, дело 118 (officer: {OFFICER})"

    assert api.post(f"{url}/resume", {"reason": "проверка окончена"}).json()["state"] == "active"
    revoked = api.post(f"{url}/revoke", {"reason": "переехал в другой город"})
    assert (revoked.json()["state"], revoked.json()["available_tiyn"]) == ("revoked", 0)
    _problem(api.post(f"{url}/resume", {"reason": "ошибка"}), 409, "transition_not_allowed")
    assert api.get(url).json()["state"] == "revoked"
    positions = api.get(programme_url(programme, "/positions")).json()
    assert positions["figures"]["expired"] == 5 * MEAL_TIYN and positions["reconciled"]
    _problem(api.post(f"/v1/treasury/vouchers/{new_id()}/suspend", {"reason": "x"}), 404, "voucher_not_found")
    _problem(api.post(f"{url}/suspend", {"reason": ""}), 422, "invalid_request")


def test_the_sweep_expires_what_is_due_over_http(api, voucher_ledger):
    programme = open_funded_programme(api, 1_000_000)
    soon = voucher_ledger.now() + 2 * SECOND_NS
    voucher = new_id()
    order = VoucherOrder(
        voucher, uuid.UUID(programme["id"]), holder_hash(fresh_iins(1)[0]), 300_000, expires_at=soon
    )
    assert voucher_ledger.issue([order])[0] == [IssueResult.ok]
    time.sleep(max(0.0, (soon - voucher_ledger.now()) / SECOND_NS) + 0.1)

    swept = api.post("/v1/treasury/sweeps")
    assert swept.status_code == 200, swept.text
    assert swept.json()["expired"] >= 1
    assert api.get(f"/v1/treasury/vouchers/{voucher}").json()["state"] == "expired"
    # It was an offer nobody answered: its reservation went back to the fund.
    figures = api.get(programme_url(programme, "/positions")).json()["figures"]
    assert (figures["offered"], figures["issued"], figures["unissued"]) == (0, 0, 1_000_000)


# --- providers ----------------------------------------------------------------------------------------


def test_a_provider_is_registered_given_a_profile_and_enrolled(api):
    programme = create_programme(api)
    digits = fresh_bin()
    provider = {"bin": digits, "name": "ТОО «Мектеп асханасы»", "category": "canteen"}
    registered = api.post("/v1/treasury/providers", provider)
    assert registered.status_code == 201, registered.text
    provider_id = registered.json()["id"]
    assert api.post("/v1/treasury/providers", provider).json()["id"] == provider_id
    _problem(
        api.post("/v1/treasury/providers", provider | {"name": "Другое"}), 409, "exists_with_different_fields"
    )
    wrong = digits[:-1] + str((int(digits[-1]) + 1) % 10)
    _problem(api.post("/v1/treasury/providers", provider | {"bin": wrong}), 422, "bin_invalid")

    profile = {"address": "Астана, ул. Кенесары, 40", "iban": "KZ86125KZT5004100100",
               "bank_name": "АО «Халық Банк»", "bic": "HSBKKZKX", "contract_number": "Д-1/2026",
               "contract_date": "2026-01-15"}  # fmt: skip
    recorded = api.put(f"/v1/treasury/providers/{provider_id}/profile", profile)
    assert recorded.status_code == 200, recorded.text
    bad_iban = api.put(
        f"/v1/treasury/providers/{provider_id}/profile", profile | {"iban": "KZ00125KZT5004100100"}
    )
    assert bad_iban.status_code == 422 and bad_iban.json()["code"].startswith("profile_")
    enrolled = api.post(programme_url(programme, "/providers"), {"provider_id": provider_id})
    assert enrolled.status_code == 201, enrolled.text
    assert enrolled.json()["state"] == "active"
    again = api.post(programme_url(programme, "/providers"), {"provider_id": provider_id})
    assert again.json() == enrolled.json()

    read = api.get(f"/v1/treasury/providers/{provider_id}").json()
    assert (read["bin"], read["category"], read["profile"]["iban"]) == (digits, "canteen", profile["iban"])
    assert read["programmes"] == [enrolled.json()]
    _problem(api.post(programme_url(programme, "/providers"), {"provider_id": str(new_id())}), 404,
             "provider_not_found")  # fmt: skip
    _problem(api.get(f"/v1/treasury/providers/{new_id()}"), 404, "provider_not_found")
