"""A world for settlement tests: a treasury programme that settles day by day, funded, with providers that
have profiles, terminals and signing keys, and helpers to redeem on a past day, close periods, draw up,
sign, approve and pay acts.

Tests cannot wait for a month to end, so programmes here settle by the day (`SettlementCycle.DAY`) and
redemptions are dated in the last few days: an offline request carries the terminal's time (up to 7 days
back). The programme's policy is also given a version in force since long ago — as if the programme had
been registered before those days — inserted as the schema owner (the ledger's own `record_policy` only
takes effect from now on); everything else goes through the ordinary functions.
"""

import datetime as dt
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import nacl.bindings
import psycopg

from ledger.accounts import Account, AccountType
from ledger.clock import BUSINESS_TIMEZONE, business_date, datetime_to_timestamp
from ledger.identity import make_valid_kz_iban
from ledger.ids import new_id
from ledger.money import Asset
from ledger.results import CreateTransferResult
from ledger.transfer_codes import TransferCode
from ledger.transfers import Transfer
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.policy import parse_policy
from ledger.vouchers.signing import Purpose, sign_message
from ledger.vouchers.states import ProviderCategory
from tests.treasury_world import programme_draft
from tests.voucher_world import Terminal, World, policy_document
from treasury.programmes import ProgrammeState, create_programme, set_programme_state
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

KAZAKH_SERVICE = "Ыстық тамақ / Горячее питание"  # ы, қ: Kazakh letters in the service name
OFFICER = "Айгүл Сәрсенова, Комитет казначейства"
SECOND_OFFICER = "Нұрлан Әбілов, Комитет казначейства"


def fresh_iban() -> str:
    return make_valid_kz_iban("125", f"KZT{secrets.randbelow(10**10):010d}")


@dataclass
class Provider:
    terminal: Terminal
    signing_secret: bytes
    signing_key_id: Any

    @property
    def id(self) -> Any:
        return self.terminal.provider_id


@dataclass
class SettlementWorld:
    unit_of_work: UnitOfWork
    vouchers_world: World
    programme_id: Any
    code: str
    today: dt.date
    providers: list[Provider] = field(default_factory=list)

    def run(self, work: Any) -> Any:
        return self.unit_of_work.run(work)

    def add_provider(self, profile: bool = True) -> Provider:
        terminal = self.vouchers_world.add_provider(ProviderCategory.CANTEEN)
        if profile:
            self.record_profile(terminal.provider_id, fresh_iban())
        public_key, secret_key = nacl.bindings.crypto_sign_seed_keypair(os.urandom(32))
        key_id = new_id()
        self.run(
            lambda c: register_signing_key(c, key_id, terminal.provider_id, public_key, "Директор", OFFICER)
        )
        provider = Provider(terminal, secret_key, key_id)
        self.providers.append(provider)
        return provider

    def record_profile(self, provider_id: Any, iban: str) -> None:
        profile = ProviderProfile(
            provider_id, "Астана, ул. Достық, 5", iban, "АО «Банк ЦентрКредит»", "KCJBKZKX",
            "Д-17/2026", dt.date(2026, 1, 15),
        )  # fmt: skip
        self.run(lambda c: record_provider_profile(c, profile))

    def voucher(self, amount: int = 6_000_000) -> Any:
        long_ago = datetime_to_timestamp(dt.datetime.now(dt.UTC) - dt.timedelta(days=30))
        return self.vouchers_world.issue(amount=amount, not_before=long_ago)

    def redeem_on(self, day: dt.date, amount: int, provider: Provider | None = None, voucher: Any = None,
                  **fields: Any) -> Any:  # fmt: skip
        """Redeem offline at noon (Asia/Almaty) of `day`; returns the redemption id."""
        outcome = self.try_redeem_on(day, amount, provider, voucher, **fields)
        assert outcome.result == 0, outcome
        return outcome.request_id

    def try_redeem_on(self, day: dt.date, amount: int, provider: Provider | None = None, voucher: Any = None,
                      **fields: Any) -> Any:  # fmt: skip
        """The ledger's answer to an offline redemption served at noon (Asia/Almaty) of `day`."""
        provider = provider or self.providers[0]
        noon = dt.datetime.combine(day, dt.time(12), tzinfo=BUSINESS_TIMEZONE)
        at_ms = min(int(noon.timestamp() * 1000), time.time_ns() // 1_000_000 - 60_000)
        request = self.vouchers_world.request(
            voucher or self.voucher(), amount=amount, terminal=provider.terminal, offline=True,
            requested_at_ms=at_ms, **fields,
        )  # fmt: skip
        outcome, _ = self.vouchers_world.redeem(request, provider.terminal)
        return outcome

    def close_through(self, day: dt.date) -> None:
        """Close every period up to and including `day`."""
        while True:
            closed = self.run(lambda c: close_period(c, self.programme_id, OFFICER))
            if closed.period.end >= day:
                return

    def issue(self, day: dt.date) -> list[Any]:
        outcomes = issue_period_acts(self.unit_of_work, self.programme_id, day, OFFICER)
        return [act for outcome in outcomes for act in outcome.acts]

    def sign(self, number: str, provider: Provider) -> Any:
        body = self.run(lambda c: act_signing_bytes(c, number))
        prefix = Purpose.SERVICE_ACT.value.encode() + b"\n"
        assert body.startswith(prefix)
        signature = sign_message(provider.signing_secret, Purpose.SERVICE_ACT, body[len(prefix) :])
        return self.run(lambda c: sign_act(c, number, provider.signing_key_id, signature))

    def approve(self, number: str, officer: str = OFFICER) -> Any:
        return self.run(lambda c: approve_act(c, number, officer))

    def pay(self, number: str) -> Any:
        return self.run(lambda c: pay_act(c, number, OFFICER))


def backdate_policy(database_url: str, programme_id: Any) -> None:
    """A policy version in force since the epoch, with the programme's first policy's body (as owner)."""
    with psycopg.connect(database_url) as connection:
        connection.execute(
            """INSERT INTO voucher_policies (programme_id, version, valid_from, purpose, provider_categories,
                                             named_providers, body, "timestamp")
               SELECT programme_id, 2, 0, purpose, provider_categories, named_providers, body, "timestamp"
                 FROM voucher_policies WHERE programme_id = %s AND version = 1""",
            (programme_id,),
        )


def build_settlement_world(
    ledger: Any, vouchers: Any, pool: Any, database_url: str, *, days_back: int = 6,
    threshold_tiyn: int = 10**12, asset: Asset = Asset.KZT, vat_rate: str = "exempt", **policy: Any,
) -> SettlementWorld:  # fmt: skip
    """A programme whose first daily period is `days_back` days ago, funded, with one provider."""
    unit_of_work = UnitOfWork(pool)
    today = business_date(vouchers.now())
    draft = programme_draft(period_start=today - dt.timedelta(days=days_back), asset=asset, vat_rate=vat_rate)
    document = policy_document(service={"name": KAZAKH_SERVICE, "unit": "порция"}, offline_limit_tiyn=10**12)
    document.update(policy)
    unit_of_work.run(lambda c: create_programme(c, draft, parse_policy(document), OFFICER))
    unit_of_work.run(lambda c: set_programme_state(c, draft.id, ProgrammeState.OPEN))
    unit_of_work.run(
        lambda c: set_settlement_terms(c, draft.id, SettlementCycle.DAY, threshold_tiyn, OFFICER)
    )
    backdate_policy(database_url, draft.id)
    source = new_id()
    ledger.create_accounts([Account(source, asset, AccountType.OPERATOR)])
    funding = [
        Transfer(new_id(), source, draft.budget_account_id, 10**12, asset, TransferCode.OPERATOR),
        Transfer(new_id(), draft.budget_account_id, draft.fund_account_id, 10**12, asset, TransferCode.FUND),
    ]
    assert ledger.create_transfers(funding) == [CreateTransferResult.ok] * 2
    vouchers_world = World(ledger, vouchers, draft.id, draft.fund_account_id, terminal=None)  # type: ignore[arg-type]
    world = SettlementWorld(unit_of_work, vouchers_world, draft.id, draft.code, today)
    world.add_provider()
    vouchers_world.terminal = world.providers[0].terminal
    return world


def day(world: SettlementWorld, days_ago: int) -> dt.date:
    return world.today - dt.timedelta(days=days_ago)
