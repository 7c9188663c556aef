"""The chapters of the demo story, each through the same functions the HTTP API and the CLI call.

The story happens next month: the demo database's ledger clock is moved forward (never back) from chapter
to chapter, so a week of school days passes, and then the month ends and is settled. That is why the demo
has a database of its own.
"""

import datetime as dt
import os
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nacl.bindings
import psycopg

from api.demo_cast import (
    GAS_DISCOUNT_TIYN_PER_M3,
    MEAL_PRICE_TIYN,
    MEALS_PER_PUPIL,
    OFFICER_CHECKER,
    OFFICER_MAKER,
    PRESCRIBED,
    Cast,
    demo_id,
    eligibility_csv,
    people,
    provider_iban,
)
from ledger.clock import BUSINESS_TIMEZONE, business_date, datetime_to_timestamp
from ledger.identity import iin_holder_hash, validate_iin
from ledger.ids import new_id
from ledger.timestamps import reserve_timestamps
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.lifecycle import VoucherTransition
from ledger.vouchers.redemption import Submission
from ledger.vouchers.requests import RedemptionItem, RedemptionRequest, batch_document, parse_request_bytes, request_bytes
from ledger.vouchers.results import RedemptionResult
from ledger.vouchers.service import VoucherLedger
from ledger.vouchers.signing import Purpose, sign_message
from ledger.vouchers.states import ProviderCategory, RedemptionPhase, TransitionAction
from ledger.vouchers.views import voucher_token
from treasury.bulk_issuance import issue_list
from treasury.funding import approve_funding_order, create_funding_order
from treasury.programmes import ProgrammeDraft, ProgrammeState, create_programme, set_programme_state
from treasury.settlement import (
    ProviderProfile,
    SettlementCycle,
    act_signing_bytes,
    approve_act,
    close_period,
    issue_period_acts,
    pay_act,
    record_provider_profile,
    register_signing_key,
    set_settlement_terms,
    sign_act,
)


@dataclass
class Provider:
    id: uuid.UUID
    terminal: uuid.UUID
    terminal_key: bytes
    signing_key_id: uuid.UUID
    signing_secret: bytes


@dataclass
class Story:
    """What the chapters share."""

    url: str
    unit_of_work: UnitOfWork
    vouchers: VoucherLedger
    holder_salt: bytes
    cast: Cast
    workdir: Path
    providers: dict[str, Provider] = field(default_factory=dict)
    facts: list[str] = field(default_factory=list)

    def run(self, work: Any) -> Any:
        return self.unit_of_work.run(work)

    def advance_clock(self, moment: dt.datetime) -> None:
        """Move the ledger clock to `moment` (Asia/Almaty): the schema owner's function, never backwards."""
        with psycopg.connect(self.url, autocommit=True) as owner:
            owner.execute("SELECT ledger_clock_advance(%s)", (datetime_to_timestamp(moment),))

    def now_ms(self) -> int:
        return int(self.unit_of_work.run(reserve_timestamps) // 1_000_000)

    def today(self) -> dt.date:
        return business_date(self.unit_of_work.run(reserve_timestamps))


def open_programmes(story: Story, policies: dict[str, Any]) -> None:
    """Chapter 1: three programmes drafted with their policies, funded (a maker, a checker), opened."""
    for draft in (story.cast.meals, story.cast.medicines, story.cast.gas):
        policy = policies[draft.code]
        story.run(lambda c, d=draft, p=policy: create_programme(c, d, p, OFFICER_MAKER))
        amount = draft.budget_ceiling_tiyn // 2  # above the approval threshold: needs a second officer
        order_id = demo_id("funding", draft.code)
        order = story.run(lambda c, d=draft, o=order_id, a=amount: create_funding_order(c, o, d.id, a, OFFICER_MAKER))
        if order.transfer_id is None:
            story.run(lambda c, o=order_id: approve_funding_order(c, o, OFFICER_CHECKER))
        story.run(lambda c, d=draft: set_programme_state(c, d.id, ProgrammeState.OPEN))
        story.run(lambda c, d=draft: set_settlement_terms(c, d.id, SettlementCycle.MONTH, 500_000_00, OFFICER_MAKER))
    story.facts.append("3 programmes funded: each order above the threshold, so a second officer approved it")


def enrol_providers(story: Story) -> None:
    """Chapter 2: canteens, a pharmacy and QazaqGaz registered, enrolled, with a till and a signing key."""
    cast = story.cast
    roles = [(f"canteen-{n}", c, ProviderCategory.CANTEEN, cast.meals) for n, c in enumerate(cast.canteens)]
    roles += [("pharmacy", cast.pharmacy, ProviderCategory.PHARMACY, cast.medicines)]
    roles += [("qazaqgaz", cast.gas_utility, ProviderCategory.GAS_UTILITY, cast.gas)]
    for serial, (role, (provider_id, bin_text, name), category, programme) in enumerate(roles):
        story.vouchers.register_provider(provider_id, bin_text, name, int(category))
        story.vouchers.enrol_provider(programme.id, provider_id, demo_id("receivable", role))
        till_public, till_secret = nacl.bindings.crypto_sign_seed_keypair(demo_id("till", role).bytes * 2)
        story.vouchers.register_terminal(demo_id("terminal", role), provider_id, till_public, f"АПК {name}")
        signer_public, signer_secret = nacl.bindings.crypto_sign_seed_keypair(demo_id("signer", role).bytes * 2)
        key_id = demo_id("signing-key", role)
        profile = ProviderProfile(provider_id, "Астана, ул. Кенесары, 40", provider_iban(serial),
                                  "АО «Халық Банк»", "HSBKKZKX", f"Д-{serial + 1}/2026", dt.date(2026, 1, 15))  # fmt: skip
        story.run(lambda c, p=profile: record_provider_profile(c, p))
        story.run(lambda c, k=key_id, p=provider_id, s=signer_public: register_signing_key(c, k, p, s, "Директор", OFFICER_MAKER))
        story.providers[role] = Provider(provider_id, demo_id("terminal", role), till_secret, key_id, signer_secret)
    story.facts.append(f"{len(roles)} providers enrolled, each with a till (Ed25519) and a signing key")


def issue_lists(story: Story, pupils: list[str], patients: list[str], households: list[str]) -> None:
    """Chapter 3: the eligibility lists, issued in bulk (offers for the pupils, who must consent)."""
    items = ";".join(f"{code}:2" for code, _, _ in PRESCRIBED[:2])
    lists = {
        story.cast.meals: [{"iin": iin, "entitlement": f"uses:{MEALS_PER_PUPIL}"} for iin in pupils],
        story.cast.medicines: [{"iin": iin, "entitlement": 30_000, "items": items, "key": f"Rx-{n}"}
                               for n, iin in enumerate(patients)],
        story.cast.gas: [{"iin": iin, "entitlement": "units:150"} for iin in households],
    }  # fmt: skip
    for draft, rows in lists.items():
        path = story.workdir / f"eligibility-{draft.code}.csv"
        path.write_text(eligibility_csv(rows), encoding="utf-8")
        job = issue_list(story.unit_of_work, story.vouchers.signer, story.holder_salt, draft.id, path, OFFICER_MAKER)
        story.facts.append(f"{draft.code}: {job.issued} vouchers issued from {path.name}")


def programme_vouchers(story: Story, programme: ProgrammeDraft) -> dict[bytes, uuid.UUID]:
    rows = story.unit_of_work.read(
        lambda c: c.execute("SELECT holder_hash, id FROM vouchers WHERE programme_id = %s", (programme.id,)).fetchall()
    )
    return {bytes(holder): voucher for holder, voucher in rows}


def consent_and_activate(story: Story, pupils: list[str]) -> dict[str, uuid.UUID]:
    """Chapter 4 (the first school day): parents accept the offer in eGov Mobile and activate it; a few decline."""
    by_holder = programme_vouchers(story, story.cast.meals)
    steps, active = [], {}
    for n, iin in enumerate(pupils):
        holder = iin_holder_hash(validate_iin(iin), story.holder_salt)
        voucher = by_holder[holder]
        if n % 50 == 49:
            steps.append(VoucherTransition(demo_id("decline", voucher), voucher, TransitionAction.DECLINE, holder_hash=holder))
            continue
        steps += [VoucherTransition(demo_id("accept", voucher), voucher, TransitionAction.ACCEPT, holder_hash=holder),
                  VoucherTransition(demo_id("activate", voucher), voucher, TransitionAction.ACTIVATE, holder_hash=holder)]  # fmt: skip
        active[iin] = voucher
    for start in range(0, len(steps), 2000):
        story.vouchers.transition(steps[start : start + 2000])
    story.facts.append(f"{len(active)} parents accepted and activated; {len(pupils) - len(active)} declined")
    return active


def _request(story: Story, provider: Provider, voucher: uuid.UUID | None, amount: int, at_ms: int, **fields: Any) -> RedemptionRequest:
    token = story.unit_of_work.read(lambda c: voucher_token(c, voucher)) if voucher is not None else None
    request = RedemptionRequest(id=new_id(), terminal_id=provider.terminal, phase=fields.pop("phase", RedemptionPhase.SINGLE),
                                amount_tiyn=amount, requested_at_ms=at_ms, token=token, **fields)  # fmt: skip
    return parse_request_bytes(request_bytes(request))


def _submit_batch(story: Story, provider: Provider, requests: list[RedemptionRequest]) -> list[RedemptionResult]:
    body = batch_document(provider.terminal, story.now_ms(), requests)
    signature = sign_message(provider.terminal_key, Purpose.REDEMPTION_BATCH, body)
    [(outcomes, _)] = story.vouchers.redeem([Submission(provider.terminal, tuple(requests), body, signature, Purpose.REDEMPTION_BATCH)])
    return [outcome.result for outcome in outcomes]


def school_week(story: Story, active: dict[str, uuid.UUID], monday: dt.date) -> None:
    """Chapter 5: Monday to Friday at noon, each canteen's till sends its day's meals as one signed batch."""
    pupils = sorted(active)
    served = 0
    for day in range(5):
        story.advance_clock(dt.datetime.combine(monday + dt.timedelta(days=day), dt.time(12, 30), BUSINESS_TIMEZONE))
        now_ms = story.now_ms()
        for n in range(len(story.cast.canteens)):
            canteen = story.providers[f"canteen-{n}"]
            mine = [active[iin] for i, iin in enumerate(pupils) if i % len(story.cast.canteens) == n and (i + day) % 23]
            results = _submit_batch(story, canteen, [_request(story, canteen, v, MEAL_PRICE_TIYN, now_ms) for v in mine])
            served += results.count(RedemptionResult.ok)
    story.facts.append(f"a school week: {served} hot meals served and paid for, one a day per pupil at most")


def pharmacy_week(story: Story, patients: list[str]) -> None:
    """Chapter 6: prescriptions dispensed in two phases (reserve at scan, post at hand-over; one cancelled)."""
    by_holder = programme_vouchers(story, story.cast.medicines)
    pharmacy = story.providers["pharmacy"]
    now_ms = story.now_ms()
    done = 0
    for n, iin in enumerate(patients):
        voucher = by_holder[iin_holder_hash(validate_iin(iin), story.holder_salt)]
        code, _, price = PRESCRIBED[n % 2]
        items = (RedemptionItem(code, 2, 2 * price * 10),)
        reserve = _request(story, pharmacy, voucher, 2 * price * 10, now_ms, items=items, phase=RedemptionPhase.RESERVE)
        resolve = RedemptionPhase.VOID if n == 7 else RedemptionPhase.POST
        resolution = _request(story, pharmacy, None, 0 if n == 7 else 2 * price * 10, now_ms, phase=resolve, reserved_id=reserve.id)
        results = _submit_batch(story, pharmacy, [reserve, resolution])
        done += results == [RedemptionResult.ok, RedemptionResult.ok]
    story.facts.append(f"{done} prescriptions: reserved at scan, {done - 1} handed over, 1 cancelled")


def gas_month(story: Story, households: list[str], day: dt.datetime) -> None:
    """Chapter 7: households activate their gas voucher (7th–29th) and QazaqGaz bills the month's m³."""
    story.advance_clock(day)
    by_holder = programme_vouchers(story, story.cast.gas)
    rng = random.Random("amiyan-demo-gas")
    holders = [iin_holder_hash(validate_iin(iin), story.holder_salt) for iin in households]
    story.vouchers.transition([VoucherTransition(demo_id("activate-gas", h), by_holder[h], TransitionAction.ACTIVATE, holder_hash=h) for h in holders])  # fmt: skip
    gas = story.providers["qazaqgaz"]
    now_ms = story.now_ms()
    requests = []
    for holder in holders:
        units = rng.randrange(60, 151)
        requests.append(_request(story, gas, by_holder[holder], units * GAS_DISCOUNT_TIYN_PER_M3, now_ms, units=units))
    results = _submit_batch(story, gas, requests)
    story.facts.append(f"gas: {results.count(RedemptionResult.ok)} households' discounts billed in digital tenge")


def settle_month(story: Story, month_start: dt.date) -> list[str]:
    """Chapter 8: the month is closed; acts and invoices drawn up, signed by providers, approved (a second
    officer above the payout threshold), paid. Returns the act numbers."""
    numbers = []
    for draft in (story.cast.meals, story.cast.medicines, story.cast.gas):
        story.run(lambda c, d=draft: close_period(c, d.id, OFFICER_MAKER, month_start))
        for outcome in issue_period_acts(story.unit_of_work, draft.id, month_start, OFFICER_MAKER):
            for act in outcome.acts:
                numbers.append(act.number)
    for number in numbers:
        provider = next(p for p in story.providers.values() if _act_provider(story, number) == p.id)
        body = story.run(lambda c, n=number: act_signing_bytes(c, n))
        prefix = Purpose.SERVICE_ACT.value.encode() + b"\n"
        signature = sign_message(provider.signing_secret, Purpose.SERVICE_ACT, body[len(prefix) :])
        story.run(lambda c, n=number, k=provider.signing_key_id, s=signature: sign_act(c, n, k, s))
        record = story.run(lambda c, n=number: approve_act(c, n, OFFICER_MAKER))
        if record.state.name != "APPROVED":
            story.run(lambda c, n=number: approve_act(c, n, OFFICER_CHECKER))
        story.run(lambda c, n=number: pay_act(c, n, OFFICER_CHECKER))
    story.facts.append(f"month closed: {len(numbers)} acts and invoices signed, approved and paid")
    return numbers


def _act_provider(story: Story, number: str) -> uuid.UUID:
    row = story.unit_of_work.read(lambda c: c.execute("SELECT provider_id FROM settlement_acts WHERE number = %s", (number,)).fetchone())
    return row[0]


def write_documents(story: Story, numbers: list[str]) -> Path:
    from treasury.settlement import document_bytes

    folder = story.workdir / "acts"
    folder.mkdir(exist_ok=True)
    for number in numbers:
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in number)
        (folder / f"{safe}-act.pdf").write_bytes(story.unit_of_work.read(lambda c, n=number: document_bytes(c, n, "act_pdf")))
        (folder / f"{safe}-invoice.pdf").write_bytes(story.unit_of_work.read(lambda c, n=number: document_bytes(c, n, "invoice_pdf")))
    return folder


def cast_people() -> tuple[list[str], list[str], list[str]]:
    from api.demo_cast import HOUSEHOLDS, PATIENTS, PUPILS

    return (people("pupils", PUPILS, dt.date(2016, 9, 1)), people("patients", PATIENTS, dt.date(1950, 1, 1)),
            people("households", HOUSEHOLDS, dt.date(1970, 1, 1)))  # fmt: skip


__all__ = ["Story", "os"]
