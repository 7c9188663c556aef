"""Audit log benchmark (not a test): what the log costs the ledger's write path, and how fast it verifies.

    .venv/bin/python bench/audit_bench.py [--transfers 100000] [--batch 1000] [--rounds 2]

Against AMIYAN_DATABASE_URL, else the embedded server, in a fresh scratch database:
- without_log_tps / with_log_tps: the ledger benchmark's load (10,000 accounts, Zipf s = 1.1, batches of B)
  through the core, in short phases (10 batches) alternating between without the log (no events written)
  and with it (events written in the transaction, and the phase timed until the integrator, running in its
  own process, has taken them all into the log — so integration is charged to the log). Short alternating
  phases matter here: this server's throughput drifts by a third over a minute (checkpoints and full-page
  writes), which swamps the difference between whole rounds;
- lag_p99_ms: for every inbox row written under that load, the time from its insert to its integration;
- verify_entries_per_s: the offline verifier over an export of the whole log (leaves, tree, checkpoints,
  replay of every event).
Last line, exactly:
`audit_bench: with_log_tps=<int> without_log_tps=<int> overhead=<float> verify_entries_per_s=<int> lag_p99_ms=<int>`
"""

import argparse
import multiprocessing
import random
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ledger_bench import bench_core, make_transfers, open_accounts

from api.database import create_pool, resolve_database_url, scratch_database, upgrade_database
from api.logs import configure_logging
from api.settings import Settings
from bench.machine_speed import machine_speed
from ledger.audit.export import export_log
from ledger.audit.integrator import Integrator
from ledger.audit.signed_note import generate_signer, parse_signer_key
from ledger.results import CreateTransferResult
from ledger.service import Ledger
from ledger.unit_of_work import UnitOfWork

ORIGIN = "bench.amiyan.kz/audit"


def integrate_forever(url: str, signer_key: str, stop, lags) -> None:  # runs in a child process
    configure_logging("json", "warning")
    pool = create_pool(url, "amiyan_app", 2)
    integrator = Integrator(pool, ORIGIN, [parse_signer_key(signer_key)], checkpoint_interval_s=1.0)
    while not stop.is_set():
        result = integrator.integrate_once()
        if result.lags_us:
            lags.put([lag / 1000 for lag in result.lags_us])
        if result.entries == 0:
            time.sleep(0.01)
    while integrator.integrate_once(checkpoint=False).entries:
        pass
    integrator.integrate_once(checkpoint=True)
    pool.close()


def wait_until_integrated(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        while connection.execute("SELECT count(*) FROM audit_inbox").fetchone() != (0,):
            time.sleep(0.005)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--transfers", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20261123)
    args = parser.parse_args()
    configure_logging("json", "warning")
    rng = random.Random(args.seed)

    server_url = resolve_database_url(Settings())
    signer_key, verifier_key = generate_signer("bench.amiyan.kz")
    print(machine_speed(server_url), flush=True)
    with scratch_database(server_url, "amiyan_audit_bench") as url:
        upgrade_database(url)
        pool = create_pool(url, "amiyan_app", 4)
        with_log, without_log = Ledger(UnitOfWork(pool)), Ledger(UnitOfWork(pool), audit=False)
        Integrator(pool, ORIGIN, [parse_signer_key(signer_key)]).introduce_keys([verifier_key])
        account_ids = open_accounts(with_log, args.accounts)
        bench_core(without_log, make_transfers(account_ids, 10 * args.batch, rng), args.batch, 1)  # warm up

        context = multiprocessing.get_context("spawn")
        stop, lags_queue = context.Event(), context.Queue()
        integrating = context.Process(target=integrate_forever, args=(url, signer_key, stop, lags_queue))
        integrating.start()
        wait_until_integrated(url)  # the set-up's events are not part of the measured lag
        while not lags_queue.empty():
            lags_queue.get()
        rates = []
        for round_number in range(args.rounds):
            load = make_transfers(account_ids, 2 * args.transfers, rng)
            rates.append(interleaved_rates(with_log, without_log, load, args.batch, url))
            print(
                f"round {round_number}: with log {rates[-1][0]}/s, without log {rates[-1][1]}/s", flush=True
            )
        with_tps = int(sum(rate[0] for rate in rates) / len(rates))
        without_tps = int(sum(rate[1] for rate in rates) / len(rates))
        stop.set()
        lags: list[float] = []
        while integrating.is_alive() or not lags_queue.empty():
            try:
                lags.extend(lags_queue.get(timeout=0.5))
            except Exception:  # queue.Empty from another process's queue
                if not integrating.is_alive():
                    break
        integrating.join()

        with tempfile.TemporaryDirectory() as directory, pool.connection() as connection:
            entries = export_log(connection, Path(directory), ORIGIN)
            connection.rollback()
            verify_rate = measure_verify(Path(directory), verifier_key, entries)
        pool.close()

    overhead = 1 - with_tps / without_tps
    lag_p99 = int(percentile(lags, 0.99)) if lags else -1
    print(
        f"integration lag over {len(lags)} inbox rows: p50 {percentile(lags, 0.5):.1f} ms, p99 {lag_p99} ms"
    )
    print(
        f"audit_bench: with_log_tps={with_tps} without_log_tps={without_tps} overhead={overhead:.3f} "
        f"verify_entries_per_s={verify_rate} lag_p99_ms={lag_p99}"
    )


def interleaved_rates(
    with_log: Ledger, without_log: Ledger, load: list, batch: int, url: str, phase_batches: int = 10
) -> tuple[int, int]:
    """(with_tps, without_tps): phases of `phase_batches` batches alternating between with the log and
    without it. A phase with the log is timed until the integrator has taken in everything it wrote, so
    the integration's work (its CPU, on the same two cores) is charged to the log, not to the next phase
    without it."""
    seconds = {True: 0.0, False: 0.0}
    counts = {True: 0, False: 0}
    step = batch * phase_batches
    for number, phase_start in enumerate(range(0, len(load), step)):
        logged = number % 2 == 0
        ledger = with_log if logged else without_log
        started = time.perf_counter()
        for start in range(phase_start, min(phase_start + step, len(load)), batch):
            events = load[start : start + batch]
            results = ledger.create_transfers(events)
            counts[logged] += len(events)
            assert all(r is CreateTransferResult.ok for r in results)
        if logged:
            wait_until_integrated(url)
        seconds[logged] += time.perf_counter() - started
    return int(counts[True] / seconds[True]), int(counts[False] / seconds[False])


def verify_in_own_process(directory: str, verifier_key: str, results) -> None:  # a spawned child
    from ledger.audit.verify import verify_export

    with tempfile.TemporaryDirectory() as state_directory:
        started = time.perf_counter()
        verdict = verify_export(Path(directory), [verifier_key], Path(state_directory) / "state.json")
        results.put((verdict.ok, verdict.message, time.perf_counter() - started))


def measure_verify(directory: Path, verifier_key: str, entries: int) -> int:
    """The verifier as an auditor runs it: a process of its own (this benchmark's process holds the whole
    load in memory, which would make the verifier's fork-based hashing pay for copying it), with a state
    file. Timed inside that process, from reading the export to writing the state."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=verify_in_own_process, args=(str(directory), verifier_key, results))
    child.start()
    ok, message, elapsed = results.get()
    child.join()
    print(f"verify: {message} in {elapsed:.2f} s", flush=True)
    assert ok, message
    return int(entries / elapsed)


if __name__ == "__main__":
    main()
