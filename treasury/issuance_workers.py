"""Where the batches of a bulk issuance run: two threads of this process, or worker processes.

Most of a batch's work is Python (checking rows, signing tokens, deciding the ledger rows) and the rest is
PostgreSQL's. Threads let one batch sign while another writes under the fund's lock, but share one
interpreter lock. Worker processes (`IssuanceWorkers`) each check, sign and write their own batches on
their own connections, so two cores work at once; the fund's row lock still lets one batch at a time
write. Either way a batch is one transaction (`commit_issuance_batch`) and batches may commit out of order.

Rows travel to a worker as plain tuples (ListRow's fields): a tenth of the pickling cost of dataclasses,
and the worker does the checking itself.
"""

import multiprocessing
import multiprocessing.util
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Final

import structlog

from ledger.identity import mask_iin
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.tokens import IssuerSigner
from treasury.eligibility import IssueTerms, ListRow, RowRejection, prepare_row
from treasury.issuance_jobs import IssuanceBatch, IssuanceJob, commit_issuance_batch

# Threads: two transactions at once, one writing under the fund's lock while the other signs.
THREADS_IN_FLIGHT: Final = 2
log = structlog.get_logger("treasury.issuance")
RawRows = list[tuple[object, ...]]


@dataclass(frozen=True, slots=True)
class IssuanceWorkers:
    """Run batches in `processes` worker processes. `open_unit_of_work` is called once in each worker to
    open its own connection pool (and set up its logging); it must be picklable — a module-level function
    or a functools.partial of one — and it comes from the API layer, which knows the database."""

    processes: int
    open_unit_of_work: Callable[[], UnitOfWork]


@dataclass(frozen=True, slots=True)
class BatchWork:
    """What issuing a batch needs besides its rows."""

    unit_of_work: UnitOfWork
    signer: IssuerSigner
    terms: IssueTerms
    repeats: dict[int, int]


def run_batches(
    work: BatchWork,
    workers: IssuanceWorkers | None,
    job_id: uuid.UUID,
    batches: Iterator[tuple[int, RawRows]],
    on_committed: Callable[[IssuanceJob], None],
) -> None:
    """Issue every batch, a few at a time. On a failure (or an interruption) batches not yet started are
    cancelled and those running finish, each committing whole or not at all; then the error is raised."""
    executor, in_flight, submit = _executor(work, workers)
    running: deque[Future[IssuanceJob]] = deque()
    try:
        for number, rows in batches:
            if len(running) >= in_flight:
                on_committed(running.popleft().result())
            running.append(submit(job_id, number, rows))
        while running:
            on_committed(running.popleft().result())
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def issue_batch(work: BatchWork, job_id: uuid.UUID, number: int, rows: RawRows) -> IssuanceJob:
    """Check a batch's rows and issue it in one transaction."""
    started = time.perf_counter()
    batch = prepare_batch(number, rows, work.terms, work.repeats)
    job = work.unit_of_work.run(
        partial(commit_issuance_batch, job_id=job_id, batch=batch, signer=work.signer)
    )
    log.debug("issuance_batch", job=str(job_id), batch=number, orders=len(batch.orders),
              duration_ms=round((time.perf_counter() - started) * 1000, 3))  # fmt: skip
    return job


def prepare_batch(number: int, rows: RawRows, terms: IssueTerms, repeats: dict[int, int]) -> IssuanceBatch:
    batch = IssuanceBatch(number=number, rows_count=len(rows))
    for fields in rows:
        row = ListRow(*fields)  # type: ignore[arg-type]
        prepared = prepare_row(row, terms, repeats)
        if isinstance(prepared, RowRejection):
            batch.rejections.append(prepared)
        else:
            batch.orders.append(prepared)
            batch.order_lines.append((row.line, mask_iin(str(row.iin).strip())))
    return batch


def _executor(
    work: BatchWork, workers: IssuanceWorkers | None
) -> tuple[Executor, int, Callable[[uuid.UUID, int, RawRows], Future[IssuanceJob]]]:
    if workers is None:
        threads = ThreadPoolExecutor(max_workers=THREADS_IN_FLIGHT, thread_name_prefix="issuance")

        def in_thread(job_id: uuid.UUID, number: int, rows: RawRows) -> Future[IssuanceJob]:
            return threads.submit(issue_batch, work, job_id, number, rows)

        return threads, THREADS_IN_FLIGHT, in_thread
    processes = ProcessPoolExecutor(
        max_workers=workers.processes,
        mp_context=multiprocessing.get_context("spawn"),  # a fork would share the parent's connections
        initializer=_start_worker,
        initargs=(workers.open_unit_of_work, work.signer, work.terms, work.repeats),
    )
    # One batch queued beyond the running ones, so no worker waits for the reader.

    def in_process(job_id: uuid.UUID, number: int, rows: RawRows) -> Future[IssuanceJob]:
        return processes.submit(_issue_in_worker, job_id, number, rows)

    return processes, workers.processes + 1, in_process


# A worker process's own BatchWork, set by the pool's initializer: a process pool hands state to its
# workers no other way. Only ever set inside a worker process.
_worker_work: BatchWork | None = None


def _start_worker(
    open_unit_of_work: Callable[[], UnitOfWork],
    signer: IssuerSigner,
    terms: IssueTerms,
    repeats: dict[int, int],
) -> None:
    global _worker_work
    unit_of_work = open_unit_of_work()
    multiprocessing.util.Finalize(None, unit_of_work.pool.close, exitpriority=10)
    _worker_work = BatchWork(unit_of_work, signer, terms, repeats)


def _issue_in_worker(job_id: uuid.UUID, number: int, rows: RawRows) -> IssuanceJob:
    assert _worker_work is not None, "not a worker process"
    return issue_batch(_worker_work, job_id, number, rows)
