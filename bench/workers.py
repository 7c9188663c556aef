"""Running a benchmark's load from several threads of this process, or from several processes (as
`amiyan serve --workers N` runs the service), and timing it.

Threads share one interpreter lock: while one decides a batch in Python, another whose database answer
has arrived waits for the lock, and its connection idles. Processes do not wait for each other that way.
"""

import multiprocessing
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

START_TIMEOUT_S = 300  # a process that has not connected and warmed up by then has failed
FINISH_TIMEOUT_S = 1200


def run_threads(count: int, target: Callable[[int], None]) -> float:
    """Run `target(0)` … `target(count - 1)` in threads at once; the seconds until the last returns."""
    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


class StartingLine:
    """Handed to each benchmark process: it calls `start()` once it is connected and warmed up (and
    waits there until every process is), and `finish(failures)` when its share is done."""

    def __init__(self, go: Any, reports: Any) -> None:
        self._go = go
        self._reports = reports

    def start(self) -> None:
        self._reports.put(None)
        if not self._go.wait(timeout=START_TIMEOUT_S):
            raise TimeoutError("the other benchmark processes never got ready")

    def finish(self, failures: list[str]) -> None:
        self._reports.put(failures)


def run_in_processes(
    target: Callable[..., None], shares: Sequence[tuple[Any, ...]]
) -> tuple[float, list[str]]:
    """One fresh (spawned) process per share, each running `target(*share, line)` with a `StartingLine`.
    Shares are pickled to the processes before the clock starts. The clock runs from the moment every
    process has called `start()` until the last has called `finish()`; returns the seconds and every
    process's failures. A process that dies stops the run with an error instead of a hang."""
    context = multiprocessing.get_context("spawn")
    go, reports = context.Event(), context.Queue()
    workers = [context.Process(target=target, args=(*share, StartingLine(go, reports))) for share in shares]
    for worker in workers:
        worker.start()
    try:
        _collect(reports, workers, START_TIMEOUT_S)
        go.set()
        started = time.perf_counter()
        failures = [failure for report in _collect(reports, workers, FINISH_TIMEOUT_S) for failure in report]
        elapsed = time.perf_counter() - started
    finally:
        for worker in workers:
            worker.join(30)
            if worker.is_alive():
                worker.kill()
    return elapsed, failures


def _collect(reports: Any, workers: list[Any], timeout_s: float) -> list[Any]:
    """One report from each worker, in the order they come."""
    deadline = time.monotonic() + timeout_s
    collected: list[Any] = []
    while len(collected) < len(workers):
        try:
            collected.append(reports.get(timeout=1))
        except queue.Empty:
            dead = [worker.exitcode for worker in workers if worker.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"a benchmark process exited with code {dead[0]}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"benchmark processes gave {len(collected)} of {len(workers)} reports"
                ) from None
    return collected
