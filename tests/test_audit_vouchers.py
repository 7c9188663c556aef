"""The auditor re-proves the voucher rules from the log alone: a database of real voucher business (issue,
consent, redemptions single and two-phase, a reversal, revocation, a sweep) exports and verifies; a log in
which value leaves a voucher outside the rules, or a redemption record does not match its transfer, is
refused at the entry that does it."""

import os
import uuid
from collections.abc import Iterator

import pytest

from api.database import create_pool, scratch_database, upgrade_database
from ledger.accounts import AccountType
from ledger.audit.events import json_event, transfer_event
from ledger.audit.export import export_log
from ledger.audit.integrator import Integrator
from ledger.audit.replay import Replay, ReplayError
from ledger.audit.signed_note import generate_signer, parse_signer_key
from ledger.audit.verify import verify_export
from ledger.ids import new_id
from ledger.service import Ledger
from ledger.transfers import StoredTransfer
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.corrections import RedemptionReversal, reverse_redemptions
from ledger.vouchers.paseto import keypair_from_seed
from ledger.vouchers.requests import RedemptionItem
from ledger.vouchers.results import RedemptionResult as R
from ledger.vouchers.service import VoucherLedger
from ledger.vouchers.states import ProviderCategory
from ledger.vouchers.states import RedemptionPhase as P
from ledger.vouchers.states import TransitionAction as A
from ledger.vouchers.sweeps import return_leftovers
from ledger.vouchers.tokens import IssuerSigner
from tests.voucher_world import build_world

ORIGIN = "vouchers.amiyan.kz/audit"
YEAR_NS = 365 * 24 * 3600 * 10**9


@pytest.fixture(scope="module")
def business(database_url: str) -> Iterator[tuple[str, str]]:
    """A database of its own with real voucher business, integrated into a signed log: (url, key)."""
    with scratch_database(database_url, "amiyan_audit_vouchers") as url:
        upgrade_database(url)
        pool = create_pool(url, "amiyan_app", 8)
        unit_of_work = UnitOfWork(pool)
        ledger = Ledger(unit_of_work)
        vouchers = VoucherLedger(unit_of_work, IssuerSigner(keypair_from_seed(os.urandom(32))))
        now = vouchers.now()
        assert vouchers.introduce_signer(now + YEAR_NS, now + 2 * YEAR_NS).ok
        _do_business(ledger, vouchers, unit_of_work)
        signer_key, verifier_key = generate_signer("vouchers.amiyan.kz")
        integrator = Integrator(pool, ORIGIN, [parse_signer_key(signer_key)])
        integrator.introduce_keys([verifier_key])
        while integrator.integrate_once(checkpoint=False).entries:
            pass
        integrator.integrate_once(checkpoint=True)
        vouchers.close()
        pool.close()
        yield url, verifier_key


def _do_business(ledger, vouchers, unit_of_work) -> None:
    meals = build_world(ledger, vouchers, consent_required=True)
    voucher = meals.issue(300_000)
    assert meals.step(voucher, A.ACCEPT).name == "ok"
    spend = meals.request(voucher, amount=60_000)
    assert meals.redeem(spend)[0].result is R.ok
    assert meals.redeem(meals.request(voucher, amount=60_000))[0].result is R.ok
    reversal = RedemptionReversal(new_id(), spend.id, "absent that day")
    assert unit_of_work.run(lambda c: reverse_redemptions(c, [reversal]))[0].name == "ok"
    assert meals.step(meals.issue(50_000), A.DECLINE).name == "ok"
    pharmacy = build_world(
        ledger, vouchers, purpose="medicines", provider_categories=["pharmacy"], items_required=True,
        service={"name": "Лекарства", "unit": "уп."},
    )  # fmt: skip
    medicine = pharmacy.issue(100_000, items=(("ATC-N02BE01", 3),))
    first = pharmacy.request(
        medicine, amount=30_000, items=(RedemptionItem("ATC-N02BE01", 2, 30_000),), phase=P.RESERVE
    )
    assert pharmacy.redeem(first)[0].result is R.ok
    assert (
        pharmacy.redeem(pharmacy.request(None, amount=25_000, phase=P.POST, reserved_id=first.id))[0].result
        is R.ok
    )
    second = pharmacy.request(
        medicine, amount=10_000, items=(RedemptionItem("ATC-N02BE01", 1, 10_000),), phase=P.RESERVE
    )
    assert pharmacy.redeem(second)[0].result is R.ok
    assert pharmacy.step(medicine, A.REVOKE).name == "ok"
    assert (
        pharmacy.redeem(pharmacy.request(None, amount=0, phase=P.VOID, reserved_id=second.id))[0].result
        is R.ok
    )
    assert unit_of_work.run(return_leftovers) >= 1


def test_real_voucher_business_verifies_offline(business, tmp_path):
    url, verifier_key = business
    import psycopg

    with psycopg.connect(url) as connection:
        export_log(connection, tmp_path / "export", ORIGIN)
    verdict = verify_export(tmp_path / "export", [verifier_key], tmp_path / "state")
    assert verdict.ok, verdict.message
    again = verify_export(tmp_path / "export", [verifier_key], tmp_path / "state", incremental=True)
    assert again.ok, again.message  # the voucher rules' state was saved and read back


# -- forged logs, replayed directly --------------------------------------------------------------------

PROGRAMME, FUND, VOUCHER, RECEIVABLE, PROVIDER, BANK = (uuid.uuid4() for _ in range(6))


def _row(transfer_id, debit, credit, amount, timestamp, flags=0):
    import datetime as dt

    zero = uuid.UUID(int=0)
    return transfer_event(
        StoredTransfer(
            transfer_id,
            debit,
            credit,
            amount,
            1,
            4,
            flags,
            zero,
            0,
            zero,
            0,
            0,
            dt.date(2026, 11, 2),
            timestamp,
        )
    )


def _world() -> list[bytes]:
    """Programme, policy (canteens), a canteen enrolled, a voucher funded: where every forged log starts."""
    from ledger.accounts import AccountBalance
    from ledger.audit.events import account_event

    def account(account_id, code, flags=0):
        return account_event(
            AccountBalance(account_id, 1, code, flags, uuid.UUID(int=0), 0, 0, 0, 0, 0, 0, 1)
        )

    policy = {"provider_categories": ["canteen"], "named_providers": []}
    return [
        account(FUND, AccountType.PROGRAMME_FUND),
        account(VOUCHER, AccountType.VOUCHER, 2),
        account(RECEIVABLE, AccountType.PROVIDER_RECEIVABLE),
        account(BANK, AccountType.PROVIDER_BANK),
        json_event(
            "programme_registered", {"programme": str(PROGRAMME), "asset": 1, "fund_account": str(FUND)}
        ),
        json_event(
            "policy_recorded", {"programme": str(PROGRAMME), "version": 1, "valid_from": 5, "policy": policy}
        ),
        json_event(
            "provider_registered", {"provider": str(PROVIDER), "bin": "0", "name": "Асхана", "category": 1}
        ),
        json_event(
            "provider_enrolled",
            {
                "programme": str(PROGRAMME),
                "provider": str(PROVIDER),
                "receivable_account": str(RECEIVABLE),
                "state": 2,
            },
        ),
        json_event(
            "voucher_issued",
            {
                "voucher": str(VOUCHER),
                "programme": str(PROGRAMME),
                "fund_account": str(FUND),
                "state": 4,
                "amount_tiyn": 1_000,
            },
        ),
        _row(uuid.uuid4(), FUND, VOUCHER, 1_000, 10),
    ]


def _replay(entries: list[bytes]) -> None:
    replay = Replay()
    replay.apply_entries(0, entries)
    replay.finish()


def _redemption(redemption_id, amount, timestamp, provider=PROVIDER, day="2026-11-02"):
    fields = {
        "id": str(redemption_id),
        "voucher": str(VOUCHER),
        "programme": str(PROGRAMME),
        "provider": str(provider),
        "phase": 1,
        "amount_tiyn": amount,
        "effective_date": day,
        "timestamp": timestamp,
    }
    return json_event("redemption", fields)


def test_a_forged_log_of_a_proper_redemption_replays():
    spend = uuid.uuid4()
    _replay([*_world(), _row(spend, VOUCHER, RECEIVABLE, 600, 20), _redemption(spend, 600, 20)])


def test_value_leaving_a_voucher_for_a_bank_account_is_named():
    entries = [*_world(), _row(uuid.uuid4(), VOUCHER, BANK, 600, 20)]
    with pytest.raises(ReplayError) as refused:
        _replay(entries)
    assert refused.value.index == len(entries) - 1
    assert "not its fund nor its providers" in str(refused.value)


def test_a_provider_paid_without_a_redemption_record_is_named():
    with pytest.raises(ReplayError) as refused:
        _replay([*_world(), _row(uuid.uuid4(), VOUCHER, RECEIVABLE, 600, 20)])
    assert "no redemption record" in str(refused.value)


def test_a_redemption_record_that_does_not_match_its_transfer_is_named():
    spend = uuid.uuid4()
    with pytest.raises(ReplayError) as refused:
        _replay([*_world(), _row(spend, VOUCHER, RECEIVABLE, 600, 20), _redemption(spend, 900, 20)])
    assert "does not match its transfer" in str(refused.value)


def test_a_redemption_dated_in_a_closed_period_is_named():
    spend = uuid.uuid4()
    closed = json_event("period_closed", {"programme": str(PROGRAMME), "through": "2026-11-30"})
    with pytest.raises(ReplayError) as refused:
        _replay([*_world(), closed, _row(spend, VOUCHER, RECEIVABLE, 600, 20), _redemption(spend, 600, 20)])
    assert "closed through 2026-11-30" in str(refused.value)


def test_a_provider_category_the_policy_never_allowed_is_named():
    pharmacy, receivable = uuid.uuid4(), uuid.uuid4()
    from ledger.accounts import AccountBalance
    from ledger.audit.events import account_event

    extra = [
        account_event(AccountBalance(receivable, 1, 6, 0, uuid.UUID(int=0), 0, 0, 0, 0, 0, 0, 1)),
        json_event("provider_registered", {"provider": str(pharmacy), "bin": "0", "name": "Дәріхана",
                                           "category": int(ProviderCategory.PHARMACY)}),
        json_event("provider_enrolled", {"programme": str(PROGRAMME), "provider": str(pharmacy),
                                         "receivable_account": str(receivable), "state": 2}),
        _row(uuid.uuid4(), VOUCHER, receivable, 600, 20),
    ]  # fmt: skip
    with pytest.raises(ReplayError) as refused:
        _replay([*_world(), *extra])
    assert "whom the policy does not allow" in str(refused.value)
