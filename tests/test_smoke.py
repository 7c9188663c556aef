from ledger.accounts import Account, AccountType
from ledger.ids import new_id
from ledger.money import Asset
from ledger.results import CreateAccountResult, CreateTransferResult
from ledger.transfers import Transfer


def test_a_transfer_moves_money(ledger):
    a, b = new_id(), new_id()
    assert ledger.create_accounts(
        [
            Account(a, Asset.KZT, AccountType.TREASURY_BUDGET),
            Account(b, Asset.KZT, AccountType.PROGRAMME_FUND),
        ]
    ) == [CreateAccountResult.ok, CreateAccountResult.ok]
    t = Transfer(new_id(), a, b, 500, Asset.KZT, 1)
    assert ledger.create_transfers([t]) == [CreateTransferResult.ok]
    assert ledger.create_transfers([t]) == [CreateTransferResult.exists]
    accounts = {x.id: x for x in ledger.lookup_accounts([a, b])}
    assert accounts[a].debits_posted == 500
    assert accounts[b].credits_posted == 500
    assert ledger.invariant_violations() == []
