"""The demo story, small, told through HTTP only: a month of school meals in the Social Wallet.

Officer A drafts a school-meals programme (consent and activation asked for, one meal a day at a set
price), funds it above the threshold and officer B approves; A opens it, registers a canteen, records its
profile and enrols it; the canteen registers its till and the key its director signs acts with. A uploads
an eligibility list of twenty pupils (one row bad). Parents accept and activate their child's voucher in
eGov Mobile; the canteen scans the QR codes and serves lunch — single requests and a signed batch — and a
second lunch the same day is refused. The month ends: A closes it and draws up the act, the canteen signs
it, A and B approve it (it is above the payout threshold) and B pays it. The auditor takes the checkpoint,
proves one lunch is in the log, and verifies the export offline.

Setup that is not HTTP, as a deployment's would be: the database (a scratch one: its ledger clock is moved
to next month, as the schema owner may, which no other test should see), the credentials, and the audit
integrator run before the auditor reads.
"""

import base64
import datetime as dt
import io
import tarfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nacl.bindings
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.credentials import Role
from api.database import create_pool, scratch_database, upgrade_database
from ledger.audit.integrator import Integrator
from ledger.audit.merkle import leaf_hash, verify_inclusion
from ledger.audit.signed_note import (
    generate_signer,
    open_note,
    parse_checkpoint,
    parse_signer_key,
    parse_verifier_key,
)
from ledger.audit.verify import verify_export
from ledger.clock import BUSINESS_TIMEZONE, datetime_to_timestamp
from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.requests import RedemptionRequest, parse_request_bytes, request_bytes, request_document
from ledger.vouchers.states import RedemptionPhase
from tests.api_world import batch_envelope, single_envelope, voucher_api_settings
from tests.test_api_support import bearer, issue, running
from tests.treasury_operations_world import fresh_iins
from tests.treasury_world import MINISTRY
from tests.voucher_world import fresh_bin

ORIGIN = "amiyan.kz/social-wallet/audit"
OFFICER_A = "Айгүл Сәрсенова, Комитет казначейства"
OFFICER_B = "Нұрлан Әбілов, Комитет казначейства"
MEAL_TIYN = 60_000  # 600 tenge
MEALS_PER_PUPIL = 20
PUPILS = 19


@dataclass
class Story:
    client: TestClient
    url: str  # the story's own database
    unit_of_work: UnitOfWork
    signer_key: str
    verifier_key: str
    keys: dict[str, str] = field(default_factory=dict)  # who → API key
    facts: dict[str, Any] = field(default_factory=dict)

    def call(self, who: str, method: str, path: str, body: Any = None, **headers: str) -> Any:
        headers = bearer(self.keys[who]) | headers
        if method == "POST":
            headers.setdefault("Idempotency-Key", str(new_id()))
        answer = self.client.request(method, path, json=body, headers=headers)
        assert answer.status_code < 300, (method, path, answer.status_code, answer.text)
        return answer

    def advance_clock(self, moment: dt.datetime) -> None:
        """The schema owner moves the ledger clock forward (migration 0008): a month passes."""
        with psycopg.connect(self.url, autocommit=True) as owner:
            owner.execute("SELECT ledger_clock_advance(%s)", (datetime_to_timestamp(moment),))


@pytest.fixture(scope="module")
def story(database_url, tmp_path_factory) -> Iterator[Story]:
    with scratch_database(database_url, "amiyan_story") as url:
        upgrade_database(url)
        pool = create_pool(url, "amiyan_app", 4)
        unit_of_work = UnitOfWork(pool)
        signer_key, verifier_key = generate_signer("amiyan.kz")
        settings = voucher_api_settings(url, tmp_path_factory.mktemp("story"), log_signer_key=signer_key,
                                        log_origin=ORIGIN, pool_size_max=8)  # fmt: skip
        try:
            with running(settings) as client:
                told = Story(client, url, unit_of_work, signer_key, verifier_key)
                for who, role, name in (("A", Role.treasury_officer, OFFICER_A),
                                        ("B", Role.treasury_officer, OFFICER_B),
                                        ("mobile", Role.mobile_backend, "eGov Mobile"),
                                        ("auditor", Role.auditor, "Есеп комитеті")):  # fmt: skip
                    told.keys[who] = issue(unit_of_work, role, name=name).secret
                yield told
        finally:
            pool.close()


def _month_start() -> dt.date:
    return dt.datetime.now(BUSINESS_TIMEZONE).date().replace(day=1)


def _next_month(day: dt.date) -> dt.date:
    return (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)


def chapter_programme_funded_and_opened(story: Story) -> str:
    """A drafts the programme with its policy; funds it above the threshold; B approves; A opens it."""
    first = _month_start()
    last = _next_month(_next_month(first)) - dt.timedelta(days=1)
    policy = {
        "purpose": "school_meals", "provider_categories": ["canteen"], "valid_from": first.isoformat(),
        "valid_until": last.isoformat(), "service": {"name": "Ыстық тамақ", "unit": "порция"},
        "consent_required": True, "activation_required": True, "price_per_use_tiyn": MEAL_TIYN,
        "period": "day", "period_uses_max": 1, "offline_limit_tiyn": 10**8,
    }  # fmt: skip
    customer = {"name": MINISTRY.name, "bin": MINISTRY.bin, "address": MINISTRY.address,
                "iban": MINISTRY.iban, "bank_name": MINISTRY.bank_name, "bic": MINISTRY.bic}  # fmt: skip
    draft = {
        "code": "SM-STORY-AST", "name": "Горячее питание учащихся 1–4 классов", "kbk": "251 027 015",
        "region": "Астана", "period_start": first.isoformat(), "period_end": last.isoformat(), "asset": "KZT",
        "budget_ceiling_tiyn": 100_000_000, "approval_threshold_tiyn": 10_000_000, "vat_rate": "exempt",
        "customer": customer, "policy": policy,
    }  # fmt: skip
    programme = story.call("A", "POST", "/v1/treasury/programmes", draft).json()
    root = f"/v1/treasury/programmes/{programme['id']}"
    # Acts above 5 000 tenge need two officers.
    story.call("A", "PUT", f"{root}/settlement/terms", {"cycle": "month", "payout_threshold_tiyn": 500_000})
    order = story.call("A", "POST", f"{root}/funding-orders", {"amount_tiyn": 30_000_000}).json()
    assert order["state"] == "awaiting_approval"
    self_approval = story.client.post(
        f"/v1/treasury/funding-orders/{order['id']}/approve",
        headers=bearer(story.keys["A"]) | {"Idempotency-Key": "a-approves-a"},
    )
    assert (self_approval.status_code, self_approval.json()["code"]) == (403, "four_eyes")  # fmt: skip
    approved = story.call("B", "POST", f"/v1/treasury/funding-orders/{order['id']}/approve").json()
    assert (approved["state"], approved["approved_by"]) == ("executed", OFFICER_B)
    assert story.call("A", "POST", f"{root}/open").json()["state"] == "open"
    return str(programme["id"])


def chapter_canteen_enrolled(story: Story, programme_id: str) -> None:
    """A registers the canteen, records its profile and enrols it; the canteen registers its till and the
    key its director signs acts with."""
    canteen = {"bin": fresh_bin(), "name": "ТОО «Мектеп асханасы»", "category": "canteen"}
    provider = story.call("A", "POST", "/v1/treasury/providers", canteen).json()["id"]
    story.call("A", "PUT", f"/v1/treasury/providers/{provider}/profile", {
        "address": "Астана, ул. Кенесары, 40", "iban": "KZ86125KZT5004100100", "bank_name": "АО «Халық Банк»",
        "bic": "HSBKKZKX", "contract_number": "Д-12/2026", "contract_date": "2026-01-15"})  # fmt: skip
    enrolled = story.call("A", "POST", f"/v1/treasury/programmes/{programme_id}/providers",
                          {"provider_id": provider}).json()  # fmt: skip
    assert enrolled["state"] == "active"
    story.keys["canteen"] = issue(story.unit_of_work, Role.provider, provider, name="Мектеп асханасы").secret
    till_public, till_secret = nacl.bindings.crypto_sign_seed_keypair(new_id().bytes * 2)
    terminal = story.call(
        "canteen",
        "POST",
        f"/v1/providers/{provider}/terminals",
        {"name": "АПК, школа № 12", "public_key": base64.b64encode(till_public).decode()},
    )
    director_public, director_secret = nacl.bindings.crypto_sign_seed_keypair(new_id().bytes * 2)
    director = {"name": "Директор", "public_key": base64.b64encode(director_public).decode()}
    key = story.call("canteen", "POST", f"/v1/providers/{provider}/signing-keys", director)
    story.facts.update(provider=provider, terminal=terminal.json()["id"], till_secret=till_secret,
                       signing_key=key.json()["id"], director_secret=director_secret)  # fmt: skip


def chapter_list_issued(story: Story, programme_id: str) -> list[str]:
    """A uploads the list of twenty pupils, one with a mistyped IIN; the good nineteen get offers."""
    pupils = fresh_iins(PUPILS)
    typo = pupils[0][:-1] + str((int(pupils[0][-1]) + 1) % 10)
    rows = [*pupils[:7], typo, *pupils[7:]]
    content = "iin,entitlement\n" + "".join(f"{iin},uses:{MEALS_PER_PUPIL}\n" for iin in rows)
    upload = story.client.post(
        f"/v1/treasury/programmes/{programme_id}/issuance-jobs?name=school-12-pupils.csv",
        content=content.encode(),
        headers=bearer(story.keys["A"]) | {"Idempotency-Key": str(new_id()), "Content-Type": "text/csv"},
    )
    assert upload.status_code == 202, upload.text
    deadline = time.monotonic() + 10
    while (job := story.call("A", "GET", upload.headers["location"]).json())["state"] != "finished":
        assert time.monotonic() < deadline and job["stopped"] is None, job
        time.sleep(0.05)
    assert (job["issued"], job["rejected"]) == (PUPILS, 1)
    report = story.call("A", "GET", f"{upload.headers['location']}/rejections.csv").text.splitlines()
    assert report[1].startswith("9,iin_check_digit,")  # line 9: the header is line 1
    return pupils


def chapter_parents_consent(story: Story, pupils: list[str]) -> dict[str, str]:
    """Each parent sees the offer in eGov Mobile, accepts and activates it: {IIN: the QR payload}."""
    shown = {}
    for iin in pupils:
        citizen = {"X-Citizen-IIN": iin}
        [offer] = story.call("mobile", "GET", "/v1/mobile/vouchers", **citizen).json()["items"]
        assert (offer["state"], offer["amount_tiyn"]) == ("offered", MEALS_PER_PUPIL * MEAL_TIYN)
        story.call("mobile", "POST", f"/v1/mobile/vouchers/{offer['id']}/accept", **citizen)
        active = story.call("mobile", "POST", f"/v1/mobile/vouchers/{offer['id']}/activate", **citizen).json()
        assert active["state"] == "active"
        presented = story.call("mobile", "GET", f"/v1/mobile/vouchers/{offer['id']}/presentation", **citizen)
        shown[iin] = presented.json()["qr_payload"]
    return shown


def _lunch(story: Story, qr_payload: str, now_ms: int) -> RedemptionRequest:
    request = RedemptionRequest(
        id=new_id(), terminal_id=story.facts["terminal"], phase=RedemptionPhase.SINGLE, amount_tiyn=MEAL_TIYN,
        requested_at_ms=now_ms, token=qr_payload,
    )  # fmt: skip
    return parse_request_bytes(request_bytes(request))


def chapter_lunch_served(story: Story, shown: dict[str, str]) -> list[str]:
    """The till scans each QR code: four pupils one by one, the rest as one signed batch; a second lunch
    the same day is refused. Returns the redemption ids."""
    provider, secret = story.facts["provider"], story.facts["till_secret"]
    now_ms = time.time_ns() // 1_000_000
    lunches = [_lunch(story, payload, now_ms) for payload in shown.values()]
    for lunch in lunches[:4]:
        answer = story.call("canteen", "POST", f"/v1/providers/{provider}/redemptions",
                            single_envelope(lunch, secret))  # fmt: skip
        assert answer.json()["results"][0]["result"] == "ok"
    batch = batch_envelope(story.facts["terminal"], [request_document(r) for r in lunches[4:]], secret)
    answer = story.call("canteen", "POST", f"/v1/providers/{provider}/redemption-batches", batch).json()
    assert [r["result"] for r in answer["results"]] == ["ok"] * (PUPILS - 4)
    again = _lunch(story, next(iter(shown.values())), now_ms)
    second = story.call(
        "canteen", "POST", f"/v1/providers/{provider}/redemptions", single_envelope(again, secret)
    )
    assert second.json()["results"][0]["result"] == "exceeds_period_uses"
    receivable = story.call("canteen", "GET", f"/v1/providers/{provider}/receivable").json()
    assert receivable["programmes"][0]["owed_tiyn"] == PUPILS * MEAL_TIYN
    return [str(lunch.id) for lunch in lunches]


def chapter_month_settled(story: Story, programme_id: str) -> str:
    """The month ends; A closes it and draws up the act; the director signs; A and B approve; B pays."""
    month = _month_start()
    story.advance_clock(dt.datetime.combine(_next_month(month).replace(day=2), dt.time(9), BUSINESS_TIMEZONE))
    settlement = f"/v1/treasury/programmes/{programme_id}/settlement"
    closed = story.call(
        "A", "POST", f"{settlement}/periods/close", {"period_start": month.isoformat()}
    ).json()
    assert (closed["start"], closed["closed_by"]) == (month.isoformat(), OFFICER_A)
    drawn = story.call("A", "POST", f"{settlement}/periods/{month.isoformat()}/acts").json()
    [act] = [act for outcome in drawn["providers"] for act in outcome["acts"]]
    assert act["total_tiyn"] == PUPILS * MEAL_TIYN
    number, provider = urllib.parse.quote(act["number"]), story.facts["provider"]
    to_sign = story.call("canteen", "GET", f"/v1/providers/{provider}/acts/{number}/signing-bytes").content
    signature = nacl.bindings.crypto_sign(to_sign, story.facts["director_secret"])[:64]
    story.call(
        "canteen",
        "POST",
        f"/v1/providers/{provider}/acts/{number}/signature",
        {"key_id": story.facts["signing_key"], "signature": base64.b64encode(signature).decode()},
    )
    officer_act = f"/v1/treasury/settlement/acts/{number}"
    assert story.call("A", "POST", f"{officer_act}/approve").json()["state"] == "approved_once"
    twice = story.client.post(
        f"{officer_act}/approve", headers=bearer(story.keys["A"]) | {"Idempotency-Key": "a2"}
    )
    assert (twice.status_code, twice.json()["code"]) == (403, "second_officer_required")
    assert story.call("B", "POST", f"{officer_act}/approve").json()["state"] == "approved"
    payout = story.call("B", "POST", f"{officer_act}/pay").json()
    assert (
        payout["amount_tiyn"] == PUPILS * MEAL_TIYN and payout["orders"][0]["iban"] == "KZ86125KZT5004100100"
    )
    reconciliation = story.call("A", "GET", f"{settlement}/periods/{month.isoformat()}/reconciliation").json()
    assert reconciliation["reconciled"], reconciliation["differences"]
    return str(act["number"])


def chapter_positions_reconcile(story: Story, programme_id: str) -> None:
    positions = story.call("A", "GET", f"/v1/treasury/programmes/{programme_id}/positions").json()
    figures = positions["figures"]
    assert figures["funded"] == 30_000_000
    assert figures["issued"] == PUPILS * MEALS_PER_PUPIL * MEAL_TIYN
    assert figures["redeemed"] == figures["settled"] == figures["paid"] == PUPILS * MEAL_TIYN
    assert positions["reconciled"], positions["checks"]


def chapter_audited(story: Story, lunch_id: str, tmp_path: Path) -> None:
    """The integrator signs a checkpoint; the auditor proves one lunch is in the log and verifies the
    export offline with the pinned key."""
    integrator = Integrator(story.unit_of_work.pool, ORIGIN, [parse_signer_key(story.signer_key)])
    integrator.introduce_keys([story.verifier_key])
    while integrator.integrate_once(checkpoint=False).entries:
        pass
    assert integrator.integrate_once(checkpoint=True).checkpoint_size is not None
    note = story.call("auditor", "GET", "/v1/audit/checkpoint").text
    text, signers = open_note(note, [parse_verifier_key(story.verifier_key)])
    checkpoint = parse_checkpoint(text)
    assert signers == ["amiyan.kz"]

    # A lunch is a ledger transfer whose id is the redemption's: its entry carries the id after the kind byte.
    wanted, index, start = uuid.UUID(lunch_id).bytes, None, 0
    while index is None and start is not None:
        page = story.call("auditor", "GET", f"/v1/audit/entries?start={start}&limit=1000").json()
        found = [n for n, e in enumerate(page["entries"]) if base64.b64decode(e)[1:17] == wanted]
        index = page["start"] + found[0] if found else None
        start = page["next_start"]
    assert index is not None and index < checkpoint.size, "the lunch's transfer is in the log"
    proof = story.call("auditor", "GET", f"/v1/audit/entries/{index}/inclusion-proof").json()
    entry = base64.b64decode(proof["entry"])
    verify_inclusion(leaf_hash(entry), index, checkpoint.size, [base64.b64decode(h) for h in proof["proof"]],
                     checkpoint.root_hash)  # fmt: skip

    export = story.call("auditor", "GET", "/v1/audit/export")
    with tarfile.open(fileobj=io.BytesIO(export.content), mode="r:gz") as archive:
        archive.extractall(tmp_path, filter="data")
    verdict = verify_export(tmp_path / "audit-export", [story.verifier_key], tmp_path / "state.json")
    assert verdict.ok, verdict.message
    assert verdict.size == checkpoint.size


def test_the_demo_story_told_through_http_only(story, tmp_path):
    programme_id = chapter_programme_funded_and_opened(story)
    chapter_canteen_enrolled(story, programme_id)
    pupils = chapter_list_issued(story, programme_id)
    shown = chapter_parents_consent(story, pupils)
    lunches = chapter_lunch_served(story, shown)
    chapter_month_settled(story, programme_id)
    chapter_positions_reconcile(story, programme_id)
    chapter_audited(story, lunches[5], tmp_path)
