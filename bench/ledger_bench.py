"""Ledger core benchmark (not a test): what the core sustains against the physical floor of the same server.

    .venv/bin/python bench/ledger_bench.py [--transfers 200000] [--batch 1000] [--accounts 10000]
                                           [--processes 2] [--rounds 10]

Runs against AMIYAN_DATABASE_URL, else the embedded server, in a fresh scratch database. Measures, in one run:
- core_tps: transfers between Zipf(s=1.1)-chosen accounts through `Ledger.create_transfers` in batches of B,
  every result checked `ok`, from `--processes` processes with one connection each (two by default, as
  `amiyan serve --workers 2` runs; `--processes 0`: two threads of this process sharing one Ledger, whose
  interpreter lock they wait for in turn, leaving the two cores about a quarter idle);
- baseline_tps: the same rows by plain multi-row INSERT (B rows per transaction, as many connections) into
  a table with the transfer table's columns and indexes, no checks and no balance updates: the higher of
  two readings, from that many threads of this process and from that many processes;
- core and baseline alternate in `--rounds` rounds, each sending its slice of the transfers through every
  way in a rotating order, so that the machine's drift (here ±30 % within minutes) falls on all of them
  alike and the ratio measures the code;
- single_tps: 32 client threads, one transfer per request, coalesced into shared transactions;
- single_floor_tps: 32 client threads doing single-row autocommit INSERTs into the plain table.
The last line is exactly
`ledger_bench: core_tps=<int> baseline_tps=<int> ratio=<float> single_tps=<int> single_floor_tps=<int>`.
"""

import argparse
import bisect
import contextlib
import datetime as dt
import functools
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
from bench.workers import ProcessTeam, StartingLine, run_threads
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
    elapsed = run_threads(threads, functools.partial(_core_share, ledger, batches, threads, failures))
    assert not failures, failures[:3]
    return int(len(transfers) / elapsed)


def bench_core_and_baseline(
    url: str, ledger: Ledger, warmup: list[Transfer], transfers: list[Transfer], batch: int, processes: int,
    rounds: int,
) -> tuple[int, dict[str, int]]:  # fmt: skip
    """core_tps, and baseline_tps by way of running its writers, measured in `rounds` alternating rounds:
    each round sends its slice of the batches through the core and writes the same slice to the plain
    table(s), the phases in a rotating order, so that a neighbour who slows the machine for a while slows
    both alike. Core and processes' baseline: `processes` processes, each with its own Ledger and one
    connection (warmed up on its share of `warmup` first), writing `plain_transfers`; the threads' baseline:
    as many threads of this process, writing `plain_transfers_threads`. With `processes` 0 the core runs in `THREADS` threads of this process sharing `ledger`."""
    batches = _batches(transfers, batch)
    numbered = [(n * batch + 1, events) for n, events in enumerate(batches)]
    size = -(-len(batches) // rounds)
    slices = [slice(r * size, (r + 1) * size) for r in range(rounds)]
    writers = processes or THREADS
    failures: list[str] = []
    with contextlib.ExitStack() as stack:
        plain = [stack.enter_context(_plain_connection(url)) for _ in range(writers)]
        if processes:
            warm = _batches(warmup, batch)
            shares = [
                (url, warm[n::processes], [batches[s][n::processes] for s in slices],
                 [numbered[s][n::processes] for s in slices])
                for n in range(processes)
            ]  # fmt: skip
            team = stack.enter_context(ProcessTeam(_ledger_process, shares))
            phases = ["core", f"{processes} processes", f"{writers} threads"]
        else:
            bench_core(ledger, warmup, batch, THREADS)  # statements prepared, accounts remembered
            phases = ["core", f"{writers} threads"]
        elapsed = dict.fromkeys(phases, 0.0)
        for r, part in enumerate(slices):
            turn = r % len(phases)
            for phase in phases[turn:] + phases[:turn]:
                if phase == "core" and processes:
                    seconds, failed = team.run(("core", r))
                    failures.extend(failed)
                elif phase == "core":
                    share = functools.partial(_core_share, ledger, batches[part], writers, failures)
                    seconds = run_threads(writers, share)
                elif phase.endswith("processes"):
                    seconds, _ = team.run(("plain", r))
                else:
                    share = functools.partial(_plain_share, plain, "plain_transfers_threads", numbered[part])
                    seconds = run_threads(writers, share)
                elapsed[phase] += seconds
    assert not failures, failures[:3]
    baselines = {way: int(len(transfers) / elapsed[way]) for way in phases if way != "core"}
    return int(len(transfers) / elapsed["core"]), baselines


def _core_share(
    ledger: Ledger, batches: list[list[Transfer]], writers: int, failures: list[str], n: int
) -> None:
    failures.extend(_write_core(ledger, batches[n::writers]))


def _plain_share(
    connections: list[psycopg.Connection], table: str, numbered: list[tuple[int, list[Transfer]]], n: int
) -> None:
    _write_plain(connections[n], table, numbered[n :: len(connections)])


def _ledger_process(
    url: str,
    warmup: list[list[Transfer]],
    core_rounds: list[list[list[Transfer]]],
    plain_rounds: list[list[tuple[int, list[Transfer]]]],
    line: StartingLine,
) -> None:
    configure_logging("json", "warning")
    pool = create_pool(url, "amiyan_app", size_max=2)
    ledger = Ledger(UnitOfWork(pool))
    failures = _write_core(ledger, warmup)  # statements prepared, accounts remembered
    with _plain_connection(url) as plain:
        for kind, r in line.phases():
            if kind == "core":
                line.finish(failures + _write_core(ledger, core_rounds[r]))
                failures = []
            else:
                _write_plain(plain, "plain_transfers", plain_rounds[r])
                line.finish([])
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


def _plain_connection(url: str) -> psycopg.Connection:
    connection = psycopg.connect(url)
    register_array_dumpers(connection)
    return connection


def _write_plain(
    connection: psycopg.Connection, table: str, numbered: list[tuple[int, list[Transfer]]]
) -> None:
    statement = PLAIN_INSERT.replace("plain_transfers", table)
    for first_timestamp, events in numbered:
        connection.execute(statement, _columns(events, first_timestamp))
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
    parser.add_argument(
        "--rounds", type=int, default=10, help="rounds alternating core and baseline (one slice each)"
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
            for table in ("plain_transfers", "plain_transfers_threads"):
                connection.execute(
                    f"CREATE TABLE {table} (LIKE transfers INCLUDING DEFAULTS INCLUDING INDEXES)"
                )
        pool = create_pool(url, "amiyan_app", size_max=4)
        ledger = Ledger(UnitOfWork(pool))
        account_ids = open_accounts(ledger, args.accounts)

        warmup = make_transfers(account_ids, 20 * args.batch, rng)
        transfers = make_transfers(account_ids, args.transfers, rng)
        core_tps, baselines = bench_core_and_baseline(
            url, ledger, warmup, transfers, args.batch, args.processes, args.rounds
        )
        writers = f"{args.processes} processes" if args.processes else f"{THREADS} threads of one process"
        print(
            f"core: {core_tps} transfers/s ({args.transfers} in batches of {args.batch}, {writers}; "
            f"{args.rounds} rounds alternating with the baseline)",
            flush=True,
        )
        baseline_tps = max(baselines.values())
        readings = " and ".join(f"{tps} from {way}" for way, tps in baselines.items())
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
