"""Issuing vouchers to a whole eligibility list: the run an officer starts with
`amiyan treasury issue FILE --programme CODE`.

1. The file is hashed and read once to count its rows and find holders listed twice.
2. Its job is made, or found where an earlier run stopped (the same file for the same programme is the
   same job, so running it again resumes it, and a finished job issues nothing).
3. Rows are checked one by one (`treasury.eligibility`) and issued in batches of `batch_rows`, each batch
   one transaction (`treasury.issuance_jobs.commit_issuance_batch`), two at a time.

The secret salt of holder hashes and the issuer key come in as arguments (the CLI and API read them from
settings); nothing here reads the environment.
"""

import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Final

import psycopg
import structlog

from ledger.identity import mask_iin
from ledger.timestamps import reserve_timestamps
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.policy import parse_policy_bytes
from ledger.vouchers.tokens import IssuerSigner
from treasury.allocation import list_sub_funds
from treasury.eligibility import IssueTerms, RowRejection, duplicate_lines, prepare_row, read_list
from treasury.errors import RefusalKind, Refused
from treasury.issuance_jobs import (
    IssuanceBatch,
    IssuanceJob,
    commit_issuance_batch,
    committed_batches,
    file_sha256,
    find_issuance_job,
    start_issuance_job,
)

# Big enough that per-transaction costs vanish, small enough that a crash loses seconds of work.
BATCH_ROWS_DEFAULT: Final = 4000
BATCH_ROWS_MAX: Final = 8000  # under the ledger's 8189 events per request
# Two transactions at once: one writing under the fund's lock while the other prepares and signs.
IN_FLIGHT_BATCHES: Final = 2
log = structlog.get_logger("treasury.issuance")


def issue_list(
    unit_of_work: UnitOfWork,
    signer: IssuerSigner,
    holder_salt: bytes,
    programme_id: uuid.UUID,
    path: Path,
    officer: str,
    batch_rows: int = BATCH_ROWS_DEFAULT,
    on_progress: Callable[[IssuanceJob], None] | None = None,
) -> IssuanceJob:
    """Issue (or go on issuing) the list in `path`; returns the job as it ends. A resumed job keeps the
    batch size it was made with."""
    if not 0 < batch_rows <= BATCH_ROWS_MAX:
        raise Refused("batch_rows_invalid", f"a batch is 1 to {BATCH_ROWS_MAX} rows")
    started = time.perf_counter()
    digest = file_sha256(path)
    rows_total, repeats = duplicate_lines(read_list(path))
    job = unit_of_work.run(
        lambda c: start_issuance_job(c, programme_id, path.name, digest, rows_total, batch_rows, officer)
    )
    done = unit_of_work.read(lambda c: committed_batches(c, job.id))
    log.info("issuance_job", job=str(job.id), rows_total=rows_total, rows_done=job.rows_done,
             duplicates=len(repeats))  # fmt: skip
    progress = _Progress(job, on_progress)
    if not job.finished:
        terms = unit_of_work.read(lambda c: issue_terms(c, programme_id, holder_salt))
        batches = _batches(path, terms, repeats, job.batch_rows, done)
        _run_batches(unit_of_work, signer, job.id, batches, progress)
    final = unit_of_work.read(lambda c: find_issuance_job(c, job.id))
    assert final is not None
    log.info("issuance_job_finished" if final.finished else "issuance_job_stopped", job=str(final.id),
             issued=final.issued, already_issued=final.already_issued, rejected=final.rejected,
             rows_done=final.rows_done, seconds=round(time.perf_counter() - started, 3))  # fmt: skip
    return final


class _Progress:
    """The furthest job state seen (batches commit out of order), passed on to the caller's callback."""

    def __init__(self, job: IssuanceJob, callback: Callable[[IssuanceJob], None] | None) -> None:
        self.job = job
        self.callback = callback
        self.show(job)

    def show(self, job: IssuanceJob) -> None:
        if job.rows_done >= self.job.rows_done:
            self.job = job
        if self.callback is not None:
            self.callback(self.job)


def _batches(
    path: Path, terms: IssueTerms, repeats: dict[int, int], batch_rows: int, done: set[int]
) -> Iterator[IssuanceBatch]:
    """The list's batches that have not committed yet, each with its rows checked."""
    batch = IssuanceBatch(number=-1)
    for index, row in enumerate(read_list(path)):
        number = index // batch_rows
        if number in done:
            continue
        if number != batch.number:
            if batch.rows_count:
                yield batch
            batch = IssuanceBatch(number=number)
        prepared = prepare_row(row, terms, repeats)
        if isinstance(prepared, RowRejection):
            batch.rejections.append(prepared)
        else:
            batch.orders.append(prepared)
            batch.order_lines.append((row.line, mask_iin(str(row.iin).strip())))
        batch.rows_count += 1
    if batch.rows_count:
        yield batch


def _run_batches(
    unit_of_work: UnitOfWork,
    signer: IssuerSigner,
    job_id: uuid.UUID,
    batches: Iterator[IssuanceBatch],
    progress: _Progress,
) -> None:
    """Commit the batches with up to IN_FLIGHT_BATCHES transactions at once: while one holds the fund's
    lock writing, the next signs its tokens, so Python and PostgreSQL work at the same time. On any
    failure the batches already running finish (each commits or not, whole), then the error is raised."""
    with ThreadPoolExecutor(max_workers=IN_FLIGHT_BATCHES, thread_name_prefix="issuance") as executor:
        running: deque[Future[IssuanceJob]] = deque()
        for batch in batches:
            if len(running) == IN_FLIGHT_BATCHES:
                progress.show(running.popleft().result())
            work = partial(commit_issuance_batch, job_id=job_id, batch=batch, signer=signer)
            running.append(executor.submit(_timed, unit_of_work, work, batch))
        while running:
            progress.show(running.popleft().result())


def _timed(
    unit_of_work: UnitOfWork, work: Callable[[psycopg.Connection[Any]], IssuanceJob], batch: IssuanceBatch
) -> IssuanceJob:
    started = time.perf_counter()
    job = unit_of_work.run(work)
    log.debug("issuance_batch", job=str(job.id), batch=batch.number, orders=len(batch.orders),
              duration_ms=round((time.perf_counter() - started) * 1000, 3))  # fmt: skip
    return job


def issue_terms(
    connection: psycopg.Connection[Any], programme_id: uuid.UUID, holder_salt: bytes
) -> IssueTerms:
    """The policy in force now and the sub-funds by region: what rows are checked against."""
    now = reserve_timestamps(connection)
    row = connection.execute(
        """SELECT body FROM voucher_policies WHERE programme_id = %s AND valid_from <= %s
            ORDER BY valid_from DESC, version DESC LIMIT 1""",
        (programme_id, now),
    ).fetchone()
    if row is None:
        raise Refused("programme_not_found", str(programme_id), RefusalKind.NOT_FOUND)
    sub_funds = {fund.region: fund.account_id for fund in list_sub_funds(connection, programme_id)}
    return IssueTerms(programme_id, parse_policy_bytes(bytes(row[0])), sub_funds, holder_salt)
