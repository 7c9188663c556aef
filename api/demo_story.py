"""The chapters of the demo story, each through the same functions the HTTP API and the CLI call.

The story happens next month: the demo database's ledger clock is moved forward (never back) from chapter
to chapter, so a week of school days passes, and then the month ends and is settled. That is why the demo
has a database of its own.
"""

import datetime as dt
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nacl.bindings
import psycopg

from api.demo_cast import (
    GAS_DISCOUNT_TIYN_PER_M3,
    HOUSEHOLDS,
    MEAL_PRICE_TIYN,
    MEALS_PER_PUPIL,
    OFFICER_CHECKER,
    OFFICER_MAKER,
    PATIENTS,
    PRESCRIBED,
    PRESCRIPTION_TIYN,
    PUPILS,
    Cast,
    demo_id,
    eligibility_csv,
    people,
    provider_iban,
)
from ledger.clock import BUSINESS_TIMEZONE, datetime_to_timestamp
from ledger.identity import iin_holder_hash, validate_iin
from ledger.ids import new_id
from ledger.timestamps import reserve_timestamps
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.lifecycle import VoucherTransition
from ledger.vouchers.redemption import Submission
from ledger.vouchers.requests import (
    RedemptionItem,
    RedemptionRequest,
    batch_document,
    parse_request_bytes,
    request_bytes,
)
from ledger.vouchers.results import RedemptionResult
from ledger.vouchers.service import VoucherLedger
from ledger.vouchers.signing import Purpose, sign_message
from ledger.vouchers.states import ProviderCategory, RedemptionPhase, TransitionAction
from ledger.vouchers.views import voucher_token
from treasury.bulk_issuance import issue_list
from treasury.funding import approve_funding_order, create_funding_order
from treasury.programmes import ProgrammeDraft, create_programme, open_programme
from treasury.settlement import (
    ProviderProfile,
    SettlementCycle,
    act_signing_bytes,
    approve_act,
    close_period,
    document_bytes,
    issue_period_acts,
    pay_act,
    record_provider_profile,
    register_signing_key,
    set_settlement_terms,
    sign_act,
)

# Acts above this need a second officer's approval before they are paid (500 000 tenge).
PAYOUT_THRESHOLD_TIYN = 500_000_00
SERVICE_PREFIX = Purpose.SERVICE_ACT.value.encode() + b"\n"


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

    def read(self, query: str, parameters: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return self.unit_of_work.read(lambda c: c.execute(query, parameters).fetchall())

    def advance_clock(self, moment: dt.datetime) -> None:
        """Move the ledger clock to `moment`: the schema owner's function, and never backwards."""
        with psycopg.connect(self.url, autocommit=True) as owner:
            owner.execute("SELECT ledger_clock_advance(%s)", (datetime_to_timestamp(moment),))

    def now_ms(self) -> int:
        return int(self.unit_of_work.run(reserve_timestamps) // 1_000_000)

    def holder(self, iin: str) -> bytes:
        return iin_holder_hash(validate_iin(iin), self.holder_salt)


def _monthly_terms(connection: psycopg.Connection[Any], programme_id: uuid.UUID) -> Any:
    return set_settlement_terms(
        connection, programme_id, SettlementCycle.MONTH, PAYOUT_THRESHOLD_TIYN, OFFICER_MAKER
    )


def cast_people() -> tuple[list[str], list[str], list[str]]:
    """The pupils, the patients and the households, with valid IINs (the same every time)."""
    return (
        people("pupils", PUPILS, dt.date(2016, 9, 1)),
        people("patients", PATIENTS, dt.date(1950, 1, 1)),
        people("households", HOUSEHOLDS, dt.date(1970, 1, 1)),
    )


def open_programmes(story: Story, policies: dict[str, Any]) -> None:
    """Chapter 1: three programmes drafted with their policies, funded (a maker, a checker), opened."""
    for draft in (story.cast.meals, story.cast.medicines, story.cast.gas):
        policy = policies[draft.code]
        story.run(lambda c, d=draft, p=policy: create_programme(c, d, p, OFFICER_MAKER))
        order_id, amount = demo_id("funding", draft.code), draft.budget_ceiling_tiyn // 2
        order = story.run(
            lambda c, d=draft, o=order_id, a=amount: create_funding_order(c, o, d.id, a, OFFICER_MAKER)
        )
        if order.transfer_id is None:  # above the threshold: waits for a second officer
            story.run(lambda c, o=order_id: approve_funding_order(c, o, OFFICER_CHECKER))
        story.run(lambda c, d=draft: open_programme(c, d.id, OFFICER_MAKER))
        story.run(lambda c, d=draft: _monthly_terms(c, d.id))
    story.facts.append("3 programmes funded: each order above its threshold, approved by a second officer")


def enrol_providers(story: Story) -> None:
    """Chapter 2: canteens, a pharmacy and QazaqGaz registered, enrolled, with a till and a signing key."""
    cast = story.cast
    roles = [(f"canteen-{n}", c, ProviderCategory.CANTEEN, cast.meals) for n, c in enumerate(cast.canteens)]
    roles += [("pharmacy", cast.pharmacy, ProviderCategory.PHARMACY, cast.medicines)]
    roles += [("qazaqgaz", cast.gas_utility, ProviderCategory.GAS_UTILITY, cast.gas)]
    for serial, (role, (provider_id, bin_text, name), category, programme) in enumerate(roles):
        story.vouchers.register_provider(provider_id, bin_text, name, int(category))
        story.vouchers.enrol_provider(programme.id, provider_id, demo_id("receivable", role))
        till_public, till_secret = _key_pair("till", role)
        terminal = demo_id("terminal", role)
        story.vouchers.register_terminal(terminal, provider_id, till_public, f"АПК: {name}")
        signer_public, signer_secret = _key_pair("signer", role)
        key_id = demo_id("signing-key", role)
        profile = ProviderProfile(
            provider_id, "Астана, ул. Кенесары, 40", provider_iban(serial), "АО «Халық Банк»", "HSBKKZKX",
            f"Д-{serial + 1}/2026", dt.date(2026, 1, 15),
        )  # fmt: skip
        story.run(lambda c, p=profile: record_provider_profile(c, p))
        story.run(
            lambda c, k=key_id, p=provider_id, s=signer_public: register_signing_key(
                c, k, p, s, "Директор", OFFICER_MAKER
            )
        )
        story.providers[role] = Provider(provider_id, terminal, till_secret, key_id, signer_secret)
    story.facts.append(f"{len(roles)} providers enrolled, each with a till (Ed25519) and a signing key")


def issue_lists(story: Story, pupils: list[str], patients: list[str], households: list[str]) -> None:
    """Chapter 3: the eligibility lists, issued in bulk (offers for the pupils: parents must consent)."""
    items = ";".join(f"{code}:2" for code, _, _ in PRESCRIBED[:2])
    lists: dict[ProgrammeDraft, list[dict[str, Any]]] = {
        story.cast.meals: [{"iin": iin, "entitlement": f"uses:{MEALS_PER_PUPIL}"} for iin in pupils],
        story.cast.medicines: [
            {"iin": iin, "entitlement": PRESCRIPTION_TIYN, "items": items, "key": f"Rx-{n}"}
            for n, iin in enumerate(patients)
        ],
        story.cast.gas: [{"iin": iin, "entitlement": "units:150"} for iin in households],
    }
    for draft, rows in lists.items():
        path = story.workdir / f"eligibility-{draft.code}.csv"
        path.write_text(eligibility_csv(rows), encoding="utf-8")
        signer, salt = story.vouchers.signer, story.holder_salt
        job = issue_list(story.unit_of_work, signer, salt, draft.id, path, OFFICER_MAKER)
        story.facts.append(f"{draft.code}: {job.issued} vouchers issued from the list {path.name}")


def consent_and_activate(story: Story, pupils: list[str]) -> dict[str, uuid.UUID]:
    """Chapter 4, the first school day: parents accept the offer in eGov Mobile and activate it; one in
    fifty declines."""
    by_holder = _programme_vouchers(story, story.cast.meals)
    steps, active = [], {}
    for n, iin in enumerate(pupils):
        holder = story.holder(iin)
        voucher = by_holder[holder]
        if n % 50 == 49:
            steps.append(_step("decline", voucher, TransitionAction.DECLINE, holder))
            continue
        steps += [
            _step("accept", voucher, TransitionAction.ACCEPT, holder),
            _step("activate", voucher, TransitionAction.ACTIVATE, holder),
        ]
        active[iin] = voucher
    for start in range(0, len(steps), 2000):
        story.vouchers.transition(steps[start : start + 2000])
    story.facts.append(f"{len(active)} parents accepted and activated; {len(pupils) - len(active)} declined")
    return active


def school_week(story: Story, active: dict[str, uuid.UUID], monday: dt.date) -> None:
    """Chapter 5: Monday to Friday at noon, each canteen's till sends its day's meals as one signed batch."""
    pupils = sorted(active)
    schools = len(story.cast.canteens)
    served = 0
    for day in range(5):
        noon = dt.datetime.combine(monday + dt.timedelta(days=day), dt.time(12, 30), BUSINESS_TIMEZONE)
        story.advance_clock(noon)
        now_ms = story.now_ms()
        for n in range(schools):
            canteen = story.providers[f"canteen-{n}"]
            # The school's pupils; about one in 23 is absent on any day.
            present = [active[iin] for i, iin in enumerate(pupils) if i % schools == n and (i + day) % 23]
            requests = [_request(story, canteen, voucher, MEAL_PRICE_TIYN, now_ms) for voucher in present]
            served += _submit_batch(story, canteen, requests).count(RedemptionResult.ok)
    story.facts.append(f"a school week: {served} hot meals served and paid for, at most one a day per pupil")


def pharmacy_week(story: Story, patients: list[str]) -> None:
    """Chapter 6: prescriptions dispensed in two phases: reserved at scan, posted at hand-over (one is
    cancelled at the counter and voided)."""
    by_holder = _programme_vouchers(story, story.cast.medicines)
    pharmacy = story.providers["pharmacy"]
    now_ms = story.now_ms()
    dispensed = 0
    for n, iin in enumerate(patients):
        code, _, price = PRESCRIBED[n % 2]
        items = (RedemptionItem(code, 2, 2 * price),)
        voucher = by_holder[story.holder(iin)]
        reserve = _request(
            story, pharmacy, voucher, 2 * price, now_ms, items=items, phase=RedemptionPhase.RESERVE
        )
        cancelled = n == 7
        phase, amount = (RedemptionPhase.VOID, 0) if cancelled else (RedemptionPhase.POST, 2 * price)
        resolve = _request(story, pharmacy, None, amount, now_ms, phase=phase, reserved_id=reserve.id)
        results = _submit_batch(story, pharmacy, [reserve, resolve])
        dispensed += results == [RedemptionResult.ok, RedemptionResult.ok] and not cancelled
    story.facts.append(
        f"{len(patients)} prescriptions reserved at scan: {dispensed} handed over, 1 cancelled"
    )


def gas_month(story: Story, households: list[str], day: dt.datetime) -> None:
    """Chapter 7: households activate their gas voucher (7th to 29th) and QazaqGaz bills the m³ used."""
    story.advance_clock(day)
    by_holder = _programme_vouchers(story, story.cast.gas)
    holders = [story.holder(iin) for iin in households]
    story.vouchers.transition(
        [_step("activate-gas", by_holder[h], TransitionAction.ACTIVATE, h) for h in holders]
    )
    gas = story.providers["qazaqgaz"]
    rng = random.Random("amiyan-demo-gas")
    now_ms = story.now_ms()
    requests = []
    for holder in holders:
        units = rng.randrange(60, 151)
        amount = units * GAS_DISCOUNT_TIYN_PER_M3
        requests.append(_request(story, gas, by_holder[holder], amount, now_ms, units=units))
    billed = _submit_batch(story, gas, requests).count(RedemptionResult.ok)
    story.facts.append(f"gas: {billed} households' discounts billed, paid in digital tenge")


def settle_month(story: Story, month_start: dt.date) -> list[str]:
    """Chapter 8: the month is closed; acts and invoices drawn up, signed by providers, approved (by a
    second officer above the payout threshold) and paid. Returns the act numbers."""
    numbers = []
    for draft in (story.cast.meals, story.cast.medicines, story.cast.gas):
        story.run(lambda c, d=draft: close_period(c, d.id, OFFICER_MAKER, month_start))
        for outcome in issue_period_acts(story.unit_of_work, draft.id, month_start, OFFICER_MAKER):
            numbers += [act.number for act in outcome.acts]
    signers = {provider.id: provider for provider in story.providers.values()}
    for number in numbers:
        [(provider_id,)] = story.read("SELECT provider_id FROM settlement_acts WHERE number = %s", (number,))
        provider = signers[provider_id]
        body = story.run(lambda c, n=number: act_signing_bytes(c, n))
        signature = sign_message(provider.signing_secret, Purpose.SERVICE_ACT, body[len(SERVICE_PREFIX) :])
        story.run(lambda c, n=number, p=provider, s=signature: sign_act(c, n, p.signing_key_id, s))
        record = story.run(lambda c, n=number: approve_act(c, n, OFFICER_MAKER))
        if record.state.name != "APPROVED":  # above the threshold: the second officer approves too
            story.run(lambda c, n=number: approve_act(c, n, OFFICER_CHECKER))
        story.run(lambda c, n=number: pay_act(c, n, OFFICER_CHECKER))
    story.facts.append(f"the month closed: {len(numbers)} acts and invoices signed, approved and paid")
    return numbers


def write_documents(story: Story, numbers: list[str]) -> Path:
    """Every act and invoice as PDF, in `<workdir>/acts`."""
    folder = story.workdir / "acts"
    folder.mkdir(exist_ok=True)
    for number in numbers:
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in number)
        for kind in ("act_pdf", "invoice_pdf"):
            (folder / f"{safe}-{kind.removesuffix('_pdf')}.pdf").write_bytes(_document(story, number, kind))
    return folder


def _document(story: Story, number: str, kind: str) -> bytes:
    stored: bytes = story.unit_of_work.read(lambda c: document_bytes(c, number, kind))
    return stored


def _programme_vouchers(story: Story, programme: ProgrammeDraft) -> dict[bytes, uuid.UUID]:
    rows = story.read("SELECT holder_hash, id FROM vouchers WHERE programme_id = %s", (programme.id,))
    return {bytes(holder): voucher for holder, voucher in rows}


def _step(kind: str, voucher: uuid.UUID, action: TransitionAction, holder: bytes) -> VoucherTransition:
    return VoucherTransition(demo_id(kind, voucher), voucher, action, holder_hash=holder)


def _key_pair(kind: str, role: str) -> tuple[bytes, bytes]:
    public_key, secret_key = nacl.bindings.crypto_sign_seed_keypair(demo_id(kind, role).bytes * 2)
    return public_key, secret_key


def _request(
    story: Story, provider: Provider, voucher: uuid.UUID | None, amount: int, at_ms: int, **fields: Any
) -> RedemptionRequest:
    """A till's request: the voucher's token (as scanned from its QR code), signed with its batch later."""
    token = story.unit_of_work.read(lambda c: voucher_token(c, voucher)) if voucher is not None else None
    phase = fields.pop("phase", RedemptionPhase.SINGLE)
    request = RedemptionRequest(
        id=new_id(), terminal_id=provider.terminal, phase=phase, amount_tiyn=amount, requested_at_ms=at_ms,
        token=token, **fields,
    )  # fmt: skip
    return parse_request_bytes(request_bytes(request))


def _submit_batch(
    story: Story, provider: Provider, requests: list[RedemptionRequest]
) -> list[RedemptionResult]:
    body = batch_document(provider.terminal, story.now_ms(), requests)
    signature = sign_message(provider.terminal_key, Purpose.REDEMPTION_BATCH, body)
    submission = Submission(provider.terminal, tuple(requests), body, signature, Purpose.REDEMPTION_BATCH)
    [(outcomes, _)] = story.vouchers.redeem([submission])
    return [outcome.result for outcome in outcomes]
