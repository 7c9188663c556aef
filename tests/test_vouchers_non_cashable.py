"""Non-cashable, exhaustively: for every purpose, a voucher tries to pay every kind of account and every
provider category, straight through the ledger core. Only two cells pass: the receivable of a provider
whose category the purpose's policy allows, and the voucher's own fund. Then the database refuses the
same forbidden transfer when it is written around Python."""

import psycopg
import pytest

from ledger.accounts import Account, AccountType
from ledger.ids import new_id
from ledger.money import Asset
from ledger.results import CreateTransferResult as T
from ledger.transfer_codes import TransferCode
from ledger.transfers import Transfer
from ledger.vouchers.states import ProviderCategory
from tests.voucher_world import build_world

PURPOSE_CATEGORY = {
    "school_meals": ProviderCategory.CANTEEN,
    "medicines": ProviderCategory.PHARMACY,
    "gas": ProviderCategory.GAS_UTILITY,
    "clubs": ProviderCategory.CLUB,
    "social_goods": ProviderCategory.SHOP,
}
OTHER_ACCOUNT_TYPES = [t for t in AccountType if t is not AccountType.PROVIDER_RECEIVABLE]


@pytest.mark.parametrize("purpose", sorted(PURPOSE_CATEGORY))
def test_a_voucher_pays_only_an_allowed_provider_or_its_own_fund(ledger, voucher_ledger, purpose):
    allowed = PURPOSE_CATEGORY[purpose]
    world = build_world(ledger, voucher_ledger, purpose=purpose, provider_categories=[allowed.name.lower()])
    voucher = world.issue(amount=10_000_000)
    receivables = {category: world.add_provider(category).receivable_id for category in ProviderCategory}
    others = {account_type: new_id() for account_type in OTHER_ACCOUNT_TYPES}
    ledger.create_accounts(
        [Account(account, Asset.KZT, account_type) for account_type, account in others.items()]
    )
    cells = [(f"receivable of a {c.name.lower()}", account) for c, account in receivables.items()]
    cells += [(f"a {t.name.lower()} account", account) for t, account in others.items()]
    cells += [("its own fund", world.fund_id)]
    results = ledger.create_transfers(
        [Transfer(new_id(), voucher, account, 1, Asset.KZT, TransferCode.REDEEM) for _, account in cells]
    )
    passed = {name for (name, _), result in zip(cells, results, strict=True) if result is T.ok}
    assert passed == {f"receivable of a {allowed.name.lower()}", "its own fund"}
    refused = {result for result in results if result is not T.ok}
    assert refused == {T.voucher_credit_not_allowed}


def test_a_named_provider_of_another_category_may_be_paid(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger)
    shop = world.add_provider(ProviderCategory.SHOP)
    from ledger.vouchers.policy import parse_policy
    from tests.voucher_world import policy_document

    named = parse_policy(policy_document(named_providers=[str(shop.provider_id)]))
    assert voucher_ledger.record_policy(world.programme_id, named).ok
    voucher = world.issue(amount=100_000)
    result = ledger.create_transfers([Transfer(new_id(), voucher, shop.receivable_id, 5, Asset.KZT, 4)])
    assert result == [T.ok]


def test_a_voucher_account_without_a_voucher_moves_nowhere(ledger):
    bare, target = new_id(), new_id()
    ledger.create_accounts([Account(bare, Asset.KZT, AccountType.VOUCHER), Account(target, Asset.KZT, 9)])
    assert ledger.create_transfers([Transfer(new_id(), bare, target, 1, Asset.KZT, 1)]) == [
        T.voucher_credit_not_allowed
    ]


def test_the_database_refuses_cashing_a_voucher_written_around_python(
    ledger, voucher_ledger, owner_connection
):
    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(amount=100_000)
    bank = new_id()
    ledger.create_accounts([Account(bank, Asset.KZT, AccountType.PROVIDER_BANK)])
    with pytest.raises(psycopg.Error) as refused:
        owner_connection.execute(
            """INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, asset, code, flags,
                                      timeout_s, user_data_128, user_data_64, user_data_32, effective_date,
                                      "timestamp")
               VALUES (%s, %s, %s, 100, 1, 4, 0, 0, %s, 0, 0, current_date, ledger_clock_reserve(1))""",
            (new_id(), voucher, bank, new_id()),
        )
    owner_connection.rollback()
    assert (refused.value.sqlstate, refused.value.diag.constraint_name) == ("23514", "vouchers_non_cashable")
