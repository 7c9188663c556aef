"""Running a benchmark's load from several threads of this process, or from several processes (as
`amiyan serve --workers N` runs the service), and timing it.

Threads share one interpreter lock: while one decides a batch in Python, another whose database answer
has arrived waits for the lock, and its connection idles. Processes do not wait for each other that way.
"""

import multiprocessing
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
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
    """Handed to each benchmark process. The process sets up (connects, warms up), then either calls
    `start()` once, does its share and calls `finish(failures)`; or runs phase after phase with
    `for phase in line.phases(): ...; line.finish(failures)`. Every process starts each phase together
    with the others."""

    def __init__(self, commands: Any, reports: Any) -> None:
        self._commands = commands
        self._reports = reports

    def start(self) -> Any:
        """Report ready, then wait for the first phase (returns it)."""
        self._reports.put(None)
        return self._commands.get(timeout=START_TIMEOUT_S)

    def phases(self) -> Iterator[Any]:
        """The phases the team runs, one by one, until it is closed."""
        phase = self.start()
        while phase is not None:
            yield phase
            phase = self._commands.get()

    def finish(self, failures: list[str]) -> None:
        self._reports.put(failures)


class ProcessTeam:
    """One fresh (spawned) process per share, each running `target(*share, line)` with a `StartingLine`.
    Shares are pickled to the processes before any clock starts; the team waits until every process is
    ready. `run(phase)` starts a phase in all of them and times it until the last has finished. A process
    that dies stops the run with an error instead of a hang."""

    def __init__(self, target: Callable[..., None], shares: Sequence[tuple[Any, ...]]) -> None:
        context = multiprocessing.get_context("spawn")
        self._reports = context.Queue()
        self._commands = [context.Queue() for _ in shares]
        self._workers = [
            context.Process(target=target, args=(*share, StartingLine(commands, self._reports)))
            for share, commands in zip(shares, self._commands, strict=True)
        ]
        for worker in self._workers:
            worker.start()
        try:
            _collect(self._reports, self._workers, START_TIMEOUT_S)
        except BaseException:
            self.close()
            raise

    def run(self, phase: Any) -> tuple[float, list[str]]:
        """Seconds until every process has finished `phase` (not None), and their failures."""
        assert phase is not None
        for commands in self._commands:
            commands.put(phase)
        started = time.perf_counter()
        reports = _collect(self._reports, self._workers, FINISH_TIMEOUT_S)
        return time.perf_counter() - started, [failure for report in reports for failure in report]

    def close(self) -> None:
        for commands in self._commands:
            commands.put(None)
        for worker in self._workers:
            worker.join(30)
            if worker.is_alive():
                worker.kill()

    def __enter__(self) -> "ProcessTeam":
        return self

    def __exit__(self, *exception: object) -> None:
        self.close()


def run_in_processes(
    target: Callable[..., None], shares: Sequence[tuple[Any, ...]]
) -> tuple[float, list[str]]:
    """A `ProcessTeam` for one phase: each process calls `line.start()`, does its share and calls
    `line.finish(failures)`; returns the seconds from the start to the last finish, and the failures."""
    with ProcessTeam(target, shares) as team:
        return team.run("start")


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
