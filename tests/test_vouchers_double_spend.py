"""Double spend is impossible: fifty terminals racing for one voucher, each in its own transaction."""

import threading
from concurrent.futures import ThreadPoolExecutor

from ledger.vouchers.results import RedemptionResult as R
from tests.voucher_world import build_world

RACERS = 50


def _race(world, requests, terminals):
    barrier = threading.Barrier(len(requests))

    def redeem(index):
        barrier.wait()
        return world.redeem(requests[index], terminals[index])[0].result

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(redeem, range(len(requests))))


def test_fifty_racing_redemptions_of_a_single_use_voucher_let_exactly_one_through(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger, partial_redemption=False)
    voucher = world.issue(amount=60_000)
    terminals = [world.terminal] + [world.add_provider() for _ in range(4)]
    chosen = [terminals[i % len(terminals)] for i in range(RACERS)]
    requests = [world.request(voucher, amount=60_000, terminal=t) for t in chosen]
    results = _race(world, requests, chosen)
    assert results.count(R.ok) == 1
    assert set(results) - {R.ok} <= {R.voucher_redeemed, R.insufficient_balance}
    [view] = voucher_ledger.vouchers([voucher])
    assert (view.available_tiyn, view.spent_tiyn) == (0, 60_000)
    owed = ledger.lookup_accounts([t.receivable_id for t in terminals])
    assert sum(a.credits_posted for a in owed) == 60_000


def test_fifty_racing_partial_redemptions_never_spend_more_than_the_balance(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(amount=100_000)
    amounts = [3_000 + 97 * i for i in range(RACERS)]  # 50 requests, 297,350 tiyn in all
    requests = [world.request(voucher, amount=amount) for amount in amounts]
    results = _race(world, requests, [world.terminal] * RACERS)
    spent = sum(amount for amount, result in zip(amounts, results, strict=True) if result is R.ok)
    assert 0 < spent <= 100_000
    assert set(results) <= {R.ok, R.insufficient_balance}
    [view] = voucher_ledger.vouchers([voucher])
    assert view.spent_tiyn == spent and view.available_tiyn == 100_000 - spent
    assert ledger.invariant_violations() == []


def test_a_replayed_signed_request_moves_nothing_twice_even_when_raced(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(amount=100_000)
    request = world.request(voucher, amount=25_000)
    results = _race(world, [request] * 20, [world.terminal] * 20)
    assert results.count(R.ok) == 1
    assert set(results) == {R.ok, R.exists}
    assert voucher_ledger.vouchers([voucher])[0].spent_tiyn == 25_000


def test_coalesced_single_redemptions_each_get_their_own_answer(ledger, voucher_ledger):
    from ledger.vouchers.coalescer import RedemptionCoalescer

    world = build_world(ledger, voucher_ledger, partial_redemption=False)
    vouchers = [world.issue(amount=10_000) for _ in range(40)]
    coalescer = RedemptionCoalescer(voucher_ledger, writers=2)
    try:
        requests = [world.request(v, amount=10_000) for v in vouchers]
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda r: coalescer.redeem(world.submission(r)), requests))
        spent_again, _ = coalescer.redeem(world.submission(world.request(vouchers[0], amount=10_000)))
    finally:
        coalescer.close()
    assert [outcomes[0].result for outcomes, _ in answers] == [R.ok] * 40
    assert all(len(receipt.document()["results"]) == 1 for _, receipt in answers)
    assert spent_again[0].result is R.voucher_redeemed


class _HeldLedger:
    """The real `VoucherLedger`, whose first shared transaction waits until the test lets it go."""

    def __init__(self, vouchers) -> None:
        self.vouchers = vouchers
        self.writing = threading.Event()
        self.go_on = threading.Event()

    def redeem(self, submissions):
        self.writing.set()
        assert self.go_on.wait(30)
        return self.vouchers.redeem(submissions)


def test_a_submission_cancelled_before_a_writer_takes_it_is_never_redeemed(ledger, voucher_ledger):
    from ledger.vouchers.coalescer import RedemptionCoalescer

    world = build_world(ledger, voucher_ledger, partial_redemption=False)
    first, cancelled, last = (world.issue(amount=10_000) for _ in range(3))
    held = _HeldLedger(voucher_ledger)
    coalescer = RedemptionCoalescer(held, writers=1)
    try:
        answers = [coalescer.submit(world.submission(world.request(first, amount=10_000)))]
        assert held.writing.wait(30)  # the writer holds the first; the next two wait in the queue
        answers += [
            coalescer.submit(world.submission(world.request(v, amount=10_000))) for v in (cancelled, last)
        ]
        assert answers[1].cancel() and not answers[0].cancel()
        held.go_on.set()
        assert answers[0].result(30)[0][0].result is R.ok
        assert answers[2].result(30)[0][0].result is R.ok
    finally:
        held.go_on.set()
        coalescer.close()
    assert answers[1].cancelled()
    assert [v.spent_tiyn for v in voucher_ledger.vouchers([first, cancelled, last])] == [10_000, 0, 10_000]
