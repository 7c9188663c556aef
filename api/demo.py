"""A small demo data set, as far as the project exists: a school-meals fund, pupils' vouchers and a
week of canteen redemptions, all as ledger accounts and transfers. Ids are derived from names, so loading
it twice changes nothing (the second run answers `exists`)."""

import uuid
from dataclasses import dataclass

from ledger.accounts import Account, AccountFlags, AccountType
from ledger.money import Asset
from ledger.results import CreateAccountResult, CreateTransferResult
from ledger.service import Ledger
from ledger.transfers import Transfer

DEMO_NAMESPACE = uuid.UUID("0b5c3f0e-9a51-4d1b-8a8e-2f3c0a7d5e11")
MEAL_PRICE_TIYN = 60_000  # 600 tenge per hot meal
PUPILS = 20
SCHOOL_DAYS = 5


class TransferCode:
    FUND = 1
    ISSUE = 2
    REDEEM = 3


def demo_id(name: str) -> uuid.UUID:
    return uuid.uuid5(DEMO_NAMESPACE, name)


@dataclass(frozen=True)
class DemoSummary:
    budget_account: uuid.UUID
    fund_account: uuid.UUID
    canteen_account: uuid.UUID
    accounts_created: int
    transfers_created: int


def load_demo(ledger: Ledger) -> DemoSummary:
    limited = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    budget, fund, canteen = demo_id("budget"), demo_id("fund:school-meals"), demo_id("canteen:school-7")
    vouchers = [demo_id(f"voucher:pupil-{n}") for n in range(PUPILS)]
    accounts = [
        Account(budget, Asset.KZT, AccountType.TREASURY_BUDGET),
        Account(fund, Asset.KZT, AccountType.PROGRAMME_FUND, flags=limited),
        Account(canteen, Asset.KZT, AccountType.PROVIDER_RECEIVABLE),
        *(Account(v, Asset.KZT, AccountType.OPERATOR, flags=limited) for v in vouchers),
    ]
    account_results = ledger.create_accounts(accounts)
    bad = [r for r in account_results if r not in (CreateAccountResult.ok, CreateAccountResult.exists)]
    assert not bad, f"demo accounts refused: {bad}"

    per_pupil = MEAL_PRICE_TIYN * SCHOOL_DAYS
    transfers = [Transfer(demo_id("fund"), budget, fund, per_pupil * PUPILS, Asset.KZT, TransferCode.FUND)]
    transfers += [
        Transfer(demo_id(f"issue:{v}"), fund, v, per_pupil, Asset.KZT, TransferCode.ISSUE) for v in vouchers
    ]
    transfers += [
        Transfer(demo_id(f"meal:{v}:{day}"), v, canteen, MEAL_PRICE_TIYN, Asset.KZT, TransferCode.REDEEM)
        for day in range(SCHOOL_DAYS - 1)
        for v in vouchers
    ]
    transfer_results = ledger.create_transfers(transfers)
    bad_transfers = [
        r for r in transfer_results if r not in (CreateTransferResult.ok, CreateTransferResult.exists)
    ]
    assert not bad_transfers, f"demo transfers refused: {bad_transfers}"
    return DemoSummary(
        budget_account=budget,
        fund_account=fund,
        canteen_account=canteen,
        accounts_created=sum(r is CreateAccountResult.ok for r in account_results),
        transfers_created=sum(r is CreateTransferResult.ok for r in transfer_results),
    )
