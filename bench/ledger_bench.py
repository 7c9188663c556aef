"""Ledger core benchmark (not a test): what the core sustains against the physical floor of the same server.

    .venv/bin/python bench/ledger_bench.py [--transfers 200000] [--batch 1000] [--accounts 10000]
                                           [--connections 2]

Runs against AMIYAN_DATABASE_URL, else the embedded server, in a fresh scratch database. Measures, in one run:
- core_tps: transfers between Zipf(s=1.1)-chosen accounts through `Ledger.create_transfers` in batches of B,
  every result checked `ok`, from `--connections` writer threads sharing one Ledger (two by default: while
  one batch is decided in Python the other is in the database, and both share the machine's two cores);
- baseline_tps: the same rows by plain multi-row INSERT (B rows per transaction, same connection count) into
  a table with the transfer table's columns and indexes, no checks and no balance updates;
- single_tps: 32 client threads, one transfer per request, coalesced into shared transactions;
- single_floor_tps: 32 client threads doing single-row autocommit INSERTs into the plain table.
The last line is exactly
`ledger_bench: core_tps=<int> baseline_tps=<int> ratio=<float> single_tps=<int> single_floor_tps=<int>`.
"""

import argparse
import bisect
import datetime as dt
import itertools
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.database import create_pool, resolve_database_url, scratch_database, upgrade_database
from api.logs import configure_logging
from api.settings import Settings
from bench.machine_speed import machine_speed
from ledger.accounts import Account, AccountType
from ledger.coalescer import TransferCoalescer
from ledger.ids import new_id
from ledger.limits import BATCH_EVENTS_MAX
from ledger.money import Asset
from ledger.results import CreateAccountResult, CreateTransferResult
from ledger.service import Ledger
from ledger.transfers import Transfer
from ledger.unit_of_work import UnitOfWork
from ledger.wire import register_array_dumpers

CLIENTS = 32
TRANSFER_CODE_BENCH = 99


def zipf_sampler(count: int, exponent: float, rng: random.Random) -> Callable[[], int]:
    cumulative = list(itertools.accumulate(1.0 / (rank**exponent) for rank in range(1, count + 1)))
    total = cumulative[-1]

    def draw() -> int:
        return bisect.bisect_left(cumulative, rng.random() * total)

    return draw


def make_transfers(account_ids: list, count: int, rng: random.Random) -> list[Transfer]:
    draw = zipf_sampler(len(account_ids), 1.1, rng)
    order = account_ids[:]
    rng.shuffle(order)  # which accounts are hot is random, not the lowest ids
    transfers = []
    for _ in range(count):
        debit = draw()
        credit = draw()
        while credit == debit:
            credit = draw()
        transfers.append(
            Transfer(
                new_id(), order[debit], order[credit], rng.randint(1, 10_000), Asset.KZT, TRANSFER_CODE_BENCH
            )
        )
    return transfers


def open_accounts(ledger: Ledger, count: int) -> list:
    """`count` plain KZT accounts, created in requests of at most BATCH_EVENTS_MAX."""
    account_ids = [new_id() for _ in range(count)]
    for i in range(0, count, BATCH_EVENTS_MAX):
        chunk = account_ids[i : i + BATCH_EVENTS_MAX]
        results = ledger.create_accounts([Account(a, Asset.KZT, AccountType.OPERATOR) for a in chunk])
        assert set(results) == {CreateAccountResult.ok}, results[:3]
    return account_ids


def run_threads(count: int, target: Callable[[int], None]) -> float:
    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def bench_core(ledger: Ledger, transfers: list[Transfer], batch: int, connections: int) -> int:
    batches = [transfers[i : i + batch] for i in range(0, len(transfers), batch)]
    failures: list[str] = []

    def writer(n: int) -> None:
        for events in batches[n::connections]:
            results = ledger.create_transfers(events)
            bad = [r for r in results if r is not CreateTransferResult.ok]
            if bad:
                failures.append(f"{len(bad)} not ok, e.g. {bad[0].name}")

    elapsed = run_threads(connections, writer)
    assert not failures, failures[:3]
    return int(len(transfers) / elapsed)


PLAIN_INSERT = """
INSERT INTO plain_transfers (id, debit_account_id, credit_account_id, amount, asset, code, flags,
    pending_id, timeout_s, user_data_128, user_data_64, user_data_32, effective_date, "timestamp")
SELECT * FROM unnest(%b::uuid[], %b::uuid[], %b::uuid[], %b::bigint[], %b::smallint[], %b::smallint[],
    %b::int[], %b::uuid[], %b::int[], %b::uuid[], %b::bigint[], %b::int[], %b::date[], %b::bigint[])
"""


def _columns(events: list[Transfer], clock: "itertools.count[int]") -> tuple:
    """The rows the core would write, as column arrays (in the same binary encoding the core uses): the
    baseline writes exactly these, unchecked. A zero pending id stands for NULL; both are 16 bytes."""
    n = len(events)
    today = dt.date(2026, 11, 23)
    return (
        [t.id for t in events],
        [t.debit_account_id for t in events],
        [t.credit_account_id for t in events],
        [t.amount for t in events],
        [t.asset for t in events],
        [t.code for t in events],
        [0] * n,
        [None] * n,
        [0] * n,
        [t.user_data_128 for t in events],
        [0] * n,
        [0] * n,
        [today] * n,
        [next(clock) for _ in events],
    )


def bench_baseline(url: str, transfers: list[Transfer], batch: int, connections: int) -> int:
    """The floor: the same rows by one multi-row INSERT per batch (the statement shape the core uses for
    its own insert), B rows per transaction, no checks, no balance updates."""
    batches = [transfers[i : i + batch] for i in range(0, len(transfers), batch)]
    clock = itertools.count(1)

    def writer(n: int) -> None:
        with psycopg.connect(url) as connection:
            register_array_dumpers(connection)
            for events in batches[n::connections]:
                connection.execute(PLAIN_INSERT, _columns(events, clock))
                connection.commit()

    elapsed = run_threads(connections, writer)
    return int(len(transfers) / elapsed)


def bench_single(ledger: Ledger, transfers: list[Transfer]) -> int:
    coalescer = TransferCoalescer(ledger, writers=1)
    failures: list[str] = []

    def client(n: int) -> None:
        for transfer in transfers[n::CLIENTS]:
            result = coalescer.submit([transfer])
            if result != [CreateTransferResult.ok]:
                failures.append(result[0].name)

    elapsed = run_threads(CLIENTS, client)
    coalescer.close()
    assert not failures, failures[:3]
    return int(len(transfers) / elapsed)


def bench_single_floor(url: str, transfers: list[Transfer]) -> int:
    clock = itertools.count(10**15)

    def client(n: int) -> None:
        with psycopg.connect(url, autocommit=True) as connection:
            for t in transfers[n::CLIENTS]:
                connection.execute(
                    "INSERT INTO plain_transfers VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    (
                        t.id,
                        t.debit_account_id,
                        t.credit_account_id,
                        t.amount,
                        t.asset,
                        t.code,
                        0,
                        None,
                        0,
                        t.user_data_128,
                        0,
                        0,
                        dt.date(2026, 11, 23),
                        next(clock),
                    ),
                )

    elapsed = run_threads(CLIENTS, client)
    return int(len(transfers) / elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--transfers", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--single-transfers", type=int, default=40_000)
    parser.add_argument("--seed", type=int, default=20261123)
    args = parser.parse_args()
    configure_logging("json", "warning")
    rng = random.Random(args.seed)

    server_url = resolve_database_url(Settings())
    print(machine_speed(server_url), flush=True)
    with scratch_database(server_url, "amiyan_bench") as url:
        upgrade_database(url)
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(
                "CREATE TABLE plain_transfers (LIKE transfers INCLUDING DEFAULTS INCLUDING INDEXES)"
            )
        pool = create_pool(url, "amiyan_app", size_max=max(4, args.connections + 2))
        ledger = Ledger(UnitOfWork(pool))
        account_ids = open_accounts(ledger, args.accounts)

        warmup = make_transfers(account_ids, 20 * args.batch, rng)
        bench_core(ledger, warmup, args.batch, args.connections)  # plans cached, caches warm
        transfers = make_transfers(account_ids, args.transfers, rng)
        core_tps = bench_core(ledger, transfers, args.batch, args.connections)
        print(f"core: {core_tps} transfers/s ({args.transfers} in batches of {args.batch})", flush=True)
        baseline_tps = bench_baseline(url, transfers, args.batch, args.connections)
        print(f"baseline: {baseline_tps} rows/s plain multi-row INSERT", flush=True)
        singles = make_transfers(account_ids, args.single_transfers, rng)
        single_tps = bench_single(ledger, singles)
        print(f"single: {single_tps} transfers/s from {CLIENTS} clients, coalesced", flush=True)
        single_floor_tps = bench_single_floor(url, singles)
        print(f"single floor: {single_floor_tps} rows/s autocommit INSERT from {CLIENTS} clients", flush=True)
        violations = ledger.invariant_violations()
        assert not violations, violations
        pool.close()
    ratio = core_tps / baseline_tps
    print(
        f"ledger_bench: core_tps={core_tps} baseline_tps={baseline_tps} ratio={ratio:.3f} "
        f"single_tps={single_tps} single_floor_tps={single_floor_tps}"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
