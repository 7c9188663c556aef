"""Many writers on a few hot accounts: every acknowledged transfer is stored exactly once, nothing else is,
and the invariants hold afterwards."""

import random
import threading
from collections import Counter

from ledger.accounts import Account, AccountFlags, AccountType
from ledger.coalescer import TransferCoalescer
from ledger.ids import new_id
from ledger.money import Asset
from ledger.results import CreateTransferResult as R
from ledger.transfers import Transfer

THREADS = 16
BATCHES_PER_THREAD = 12


def test_overlapping_batches_on_hot_accounts(ledger):
    rng = random.Random(7)
    source = new_id()
    limited = [new_id() for _ in range(3)]  # balance-limited: decided under lock
    plain = [new_id() for _ in range(3)]  # unlimited: updated by ordered deltas
    ledger.create_accounts(
        [Account(source, Asset.KZT, AccountType.OPERATOR)]
        + [
            Account(a, Asset.KZT, AccountType.OPERATOR, flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
            for a in limited
        ]
        + [Account(a, Asset.KZT, AccountType.OPERATOR) for a in plain]
    )
    assert (
        ledger.create_transfers([Transfer(new_id(), source, a, 50_000, Asset.KZT, 1) for a in limited])
        == [R.ok] * 3
    )

    hot = limited + plain
    plans: list[list[Transfer]] = []
    for _ in range(THREADS):
        for _ in range(BATCHES_PER_THREAD):
            batch = []
            for _ in range(rng.randint(1, 40)):
                debit, credit = rng.sample(hot, 2)
                batch.append(Transfer(new_id(), debit, credit, rng.randint(1, 3_000), Asset.KZT, 1))
            plans.append(batch)
    # Two threads also race to apply the very same events: only one may store each.
    shared = plans[:THREADS]
    acknowledged: Counter = Counter()
    outcomes: dict = {}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            mine = [*plans[n * BATCHES_PER_THREAD : (n + 1) * BATCHES_PER_THREAD], shared[(n + 1) % THREADS]]
            for batch in mine:
                results = ledger.create_transfers(batch)
                with lock:
                    for event, result in zip(batch, results, strict=True):
                        outcomes.setdefault(event.id, []).append(result)
                        if result is R.ok:
                            acknowledged[event.id] += 1
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    assert all(count == 1 for count in acknowledged.values()), "an event was applied twice"
    for results in outcomes.values():
        assert set(results) <= {R.ok, R.exists, R.exceeds_credits, R.id_already_failed}, results
    stored = {t.id for t in ledger.lookup_transfers(list(outcomes))}
    assert stored == set(acknowledged), "stored transfers differ from acknowledged ones"
    for account in ledger.lookup_accounts(limited):
        assert account.debits_posted + account.debits_pending <= account.credits_posted
    assert ledger.invariant_violations() == []


def test_coalesced_single_requests_are_each_answered_after_commit(ledger):
    a, b = new_id(), new_id()
    ledger.create_accounts(
        [Account(a, Asset.KZT, AccountType.OPERATOR), Account(b, Asset.KZT, AccountType.OPERATOR)]
    )
    coalescer = TransferCoalescer(ledger, writers=2)
    transfers = [Transfer(new_id(), a, b, 10, Asset.KZT, 1) for _ in range(320)]
    answers: dict = {}

    def client(n: int) -> None:
        for transfer in transfers[n::32]:
            answers[transfer.id] = coalescer.submit([transfer])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    coalescer.close()
    assert all(answer == [R.ok] for answer in answers.values()) and len(answers) == 320
    assert {t.id for t in ledger.lookup_transfers(list(answers))} == set(answers)
    (account,) = ledger.lookup_accounts([b])
    assert account.credits_posted == 3200
