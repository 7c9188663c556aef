"""How fast this machine is right now, as two readings the benchmarks print before their last line, so that
figures taken on different machines (or on one shared machine at different hours) can be compared:

- Python: million steps a second of a plain `for` loop adding integers, on one core;
- PostgreSQL: million rows a second that one backend sums from `generate_series`;
- wake-ups: µs of CPU for two threads of one process to wake each other and back (a futex each way). A
  server's event loop and writer thread hand work and the GIL to each other like this all the time; on
  some virtual machines it costs several times what it does on others (see `AMIYAN_SERVER_CPUS`).

Each is the best of three short runs: a busy neighbour only ever makes a run slower.
"""

import threading
import time

import psycopg

RUNS = 3
PYTHON_STEPS = 3_000_000
POSTGRES_ROWS = 2_000_000
WAKE_UP_ROUND_TRIPS = 5_000


def python_steps_per_s() -> float:
    best = float("inf")
    for _ in range(RUNS):
        started = time.perf_counter()
        total = 0
        for step in range(PYTHON_STEPS):
            total += step
        best = min(best, time.perf_counter() - started)
    assert total == PYTHON_STEPS * (PYTHON_STEPS - 1) // 2
    return PYTHON_STEPS / best


def postgres_rows_per_s(url: str) -> float:
    best = float("inf")
    with psycopg.connect(url, autocommit=True) as connection:
        for _ in range(RUNS):
            started = time.perf_counter()
            row = connection.execute(
                "SELECT sum(i) FROM generate_series(1, %s::bigint) AS i", (POSTGRES_ROWS,)
            ).fetchone()
            best = min(best, time.perf_counter() - started)
            assert row is not None and row[0] == POSTGRES_ROWS * (POSTGRES_ROWS + 1) // 2
    return POSTGRES_ROWS / best


def wake_up_round_trip_s() -> float:
    """CPU seconds (this process, both threads) for one thread to wake another and be woken back."""
    best = float("inf")
    for _ in range(RUNS):
        ping, pong = threading.Event(), threading.Event()
        other = threading.Thread(target=_answer, args=(ping, pong))
        other.start()
        started = time.process_time()
        for _ in range(WAKE_UP_ROUND_TRIPS):
            ping.set()
            pong.wait()
            pong.clear()
        other.join()
        best = min(best, time.process_time() - started)
    return best / WAKE_UP_ROUND_TRIPS


def _answer(ping: threading.Event, pong: threading.Event) -> None:
    for _ in range(WAKE_UP_ROUND_TRIPS):
        ping.wait()
        ping.clear()
        pong.set()


def machine_speed(url: str) -> str:
    """One line: what the benchmark's figures should be read against (take it before the load starts)."""
    return (
        f"machine: Python {python_steps_per_s() / 1e6:.1f} M loop steps/s, "
        f"PostgreSQL {postgres_rows_per_s(url) / 1e6:.1f} M rows/s summed (one core each, best of {RUNS}), "
        f"thread wake-up round trip {wake_up_round_trip_s() * 1e6:.0f} µs CPU"
    )
