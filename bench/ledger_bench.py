"""Ledger core benchmark (not a test): what the core sustains against the physical floor of the same server.

    .venv/bin/python bench/ledger_bench.py [--transfers 200000] [--batch 1000] [--accounts 10000]
                                           [--processes 2]

Runs against AMIYAN_DATABASE_URL, else the embedded server, in a fresh scratch database. Measures, in one run:
- core_tps: transfers between Zipf(s=1.1)-chosen accounts through `Ledger.create_transfers` in batches of B,
  every result checked `ok`, from `--processes` processes with one connection each (two by default, as
  `amiyan serve --workers 2` runs; `--processes 0`: two threads of this process sharing one Ledger, whose
  interpreter lock they wait for in turn, leaving the two cores about a quarter idle);
- baseline_tps: the same rows by plain multi-row INSERT (B rows per transaction, as many connections) into
  a table with the transfer table's columns and indexes, no checks and no balance updates: the higher of
  two readings, from that many threads of this process and from that many processes;
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
from collections.abc import Callable
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.database import create_pool, resolve_database_url, scratch_database, upgrade_database
from api.logs import configure_logging
from api.settings import Settings
from bench.machine_speed import machine_speed
from bench.workers import StartingLine, run_in_processes, run_threads
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


THREADS = 2  # `--processes 0`: this many threads of this process instead


def bench_core(ledger: Ledger, transfers: list[Transfer], batch: int, threads: int) -> int:
    """Transfers per second through one Ledger from `threads` threads of this process."""
    batches = _batches(transfers, batch)
    failures: list[str] = []
    elapsed = run_threads(threads, lambda n: failures.extend(_write_core(ledger, batches[n::threads])))
    assert not failures, failures[:3]
    return int(len(transfers) / elapsed)


def bench_core_in_processes(
    url: str, warmup: list[Transfer], transfers: list[Transfer], batch: int, processes: int
) -> int:
    """Transfers per second from `processes` processes, each with its own Ledger and one connection, each
    warmed up on its share of `warmup` before the clock starts."""
    warm, timed = _batches(warmup, batch), _batches(transfers, batch)
    shares = [(url, warm[n::processes], timed[n::processes]) for n in range(processes)]
    elapsed, failures = run_in_processes(_core_process, shares)
    assert not failures, failures[:3]
    return int(len(transfers) / elapsed)


def _core_process(
    url: str, warmup: list[list[Transfer]], batches: list[list[Transfer]], line: StartingLine
) -> None:
    configure_logging("json", "warning")
    pool = create_pool(url, "amiyan_app", size_max=2)
    ledger = Ledger(UnitOfWork(pool))
    failures = _write_core(ledger, warmup)  # statements prepared, accounts remembered
    line.start()
    line.finish(failures + _write_core(ledger, batches))
    pool.close()


def _write_core(ledger: Ledger, batches: list[list[Transfer]]) -> list[str]:
    failures = []
    for events in batches:
        results = ledger.create_transfers(events)
        bad = [r for r in results if r is not CreateTransferResult.ok]
        if bad:
            failures.append(f"{len(bad)} not ok, e.g. {bad[0].name}")
    return failures


def _batches(transfers: list[Transfer], batch: int) -> list[list[Transfer]]:
    return [transfers[i : i + batch] for i in range(0, len(transfers), batch)]


PLAIN_INSERT = """
INSERT INTO plain_transfers (id, debit_account_id, credit_account_id, amount, asset, code, flags,
    pending_id, timeout_s, user_data_128, user_data_64, user_data_32, effective_date, "timestamp")
SELECT * FROM unnest(%b::uuid[], %b::uuid[], %b::uuid[], %b::bigint[], %b::smallint[], %b::smallint[],
    %b::int[], %b::uuid[], %b::int[], %b::uuid[], %b::bigint[], %b::int[], %b::date[], %b::bigint[])
"""


def _columns(events: list[Transfer], first_timestamp: int) -> tuple:
    """The rows the core would write, as column arrays: the baseline writes exactly these, unchecked. A
    zero pending id stands for NULL; both are 16 bytes."""
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
        list(range(first_timestamp, first_timestamp + n)),
    )


def bench_baseline(url: str, transfers: list[Transfer], batch: int, processes: int) -> dict[str, int]:
    """The ceiling: the same rows by one multi-row INSERT per batch (the statement shape the core uses for
    its own insert), B rows per transaction, no checks, no balance updates. Read two ways, each with as
    many connections as the core had: from that many threads of this process, and (unless `processes` is
    0) from that many processes, the plain table emptied in between. Rows per second by way; the caller
    takes the higher. Neither way wins every time here: threads wait for each other's interpreter lock
    while they build their arrays, and processes put four busy programs on two cores."""
    numbered = [(i + 1, transfers[i : i + batch]) for i in range(0, len(transfers), batch)]
    writers = processes or THREADS
    elapsed = run_threads(writers, lambda n: _write_plain(url, numbered[n::writers]))
    readings = {f"{writers} threads": int(len(transfers) / elapsed)}
    if processes:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("TRUNCATE plain_transfers")
        shares = [(url, numbered[n::processes]) for n in range(processes)]
        elapsed, _ = run_in_processes(_baseline_process, shares)
        readings[f"{processes} processes"] = int(len(transfers) / elapsed)
    return readings


def _baseline_process(url: str, numbered: list[tuple[int, list[Transfer]]], line: StartingLine) -> None:
    _write_plain(url, numbered, line)
    line.finish([])


def _write_plain(
    url: str, numbered: list[tuple[int, list[Transfer]]], line: StartingLine | None = None
) -> None:
    with psycopg.connect(url) as connection:
        register_array_dumpers(connection)
        if line is not None:
            line.start()
        for first_timestamp, events in numbered:
            connection.execute(PLAIN_INSERT, _columns(events, first_timestamp))
            connection.commit()


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
    parser.add_argument(
        "--processes",
        type=int,
        default=2,
        help="writer processes, one connection each (0: two threads of one)",
    )
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
        pool = create_pool(url, "amiyan_app", size_max=4)
        ledger = Ledger(UnitOfWork(pool))
        account_ids = open_accounts(ledger, args.accounts)

        warmup = make_transfers(account_ids, 20 * args.batch, rng)
        transfers = make_transfers(account_ids, args.transfers, rng)
        if args.processes:
            writers = f"{args.processes} processes"
            core_tps = bench_core_in_processes(url, warmup, transfers, args.batch, args.processes)
        else:
            writers = f"{THREADS} threads of one process"
            bench_core(ledger, warmup, args.batch, THREADS)  # statements prepared, accounts remembered
            core_tps = bench_core(ledger, transfers, args.batch, THREADS)
        print(
            f"core: {core_tps} transfers/s ({args.transfers} in batches of {args.batch}, {writers})",
            flush=True,
        )
        baselines = bench_baseline(url, transfers, args.batch, args.processes)
        baseline_tps = max(baselines.values())
        readings = ", ".join(f"{tps} from {way}" for way, tps in baselines.items())
        print(
            f"baseline: {baseline_tps} rows/s plain multi-row INSERT (the higher of {readings})", flush=True
        )
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
