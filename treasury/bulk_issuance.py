"""Issuing vouchers to a whole eligibility list: the run an officer starts with
`amiyan treasury issue FILE --programme CODE`.

1. The file is hashed and read once to count its rows and find holders listed twice.
2. Its job is made, or found where an earlier run stopped (the same file for the same programme is the
   same job, so running it again resumes it, and a finished job issues nothing).
3. Rows are checked one by one (`treasury.eligibility`) and issued in batches of `batch_rows`, each batch
   one transaction (`treasury.issuance_jobs.commit_issuance_batch`), a few at a time, in threads or worker
   processes (`treasury.issuance_workers`).

The secret salt of holder hashes and the issuer key come in as arguments (the CLI and API read them from
settings); nothing here reads the environment.
"""

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import psycopg
import structlog

from ledger.timestamps import reserve_timestamps
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.policy import parse_policy_bytes
from ledger.vouchers.tokens import IssuerSigner
from treasury.allocation import list_sub_funds
from treasury.eligibility import IssueTerms, duplicate_lines, read_list
from treasury.errors import RefusalKind, Refused
from treasury.issuance_jobs import (
    IssuanceJob,
    committed_batches,
    file_sha256,
    find_issuance_job,
    start_issuance_job,
)
from treasury.issuance_workers import BatchWork, IssuanceWorkers, RawRows, run_batches

# Big enough that per-transaction costs vanish, small enough that a crash loses seconds of work.
BATCH_ROWS_DEFAULT: Final = 4000
BATCH_ROWS_MAX: Final = 8000  # under the ledger's 8189 events per request
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
    workers: IssuanceWorkers | None = None,
) -> IssuanceJob:
    """Issue (or go on issuing) the list in `path`; returns the job as it ends. A resumed job keeps the
    batch size it was made with. Batches run in two threads, or in `workers` processes."""
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
        terms = unit_of_work.run(lambda c: issue_terms(c, programme_id, holder_salt))  # reserves a timestamp
        work = BatchWork(unit_of_work, signer, terms, repeats)
        run_batches(work, workers, job.id, _batches(path, job.batch_rows, done), progress.show)
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


def _batches(path: Path, batch_rows: int, done: set[int]) -> Iterator[tuple[int, RawRows]]:
    """The list's batches that have not committed yet: (number, rows as plain tuples)."""
    number = -1
    rows: RawRows = []
    for index, row in enumerate(read_list(path)):
        if index // batch_rows != number:
            if rows:
                yield number, rows
            number, rows = index // batch_rows, []
        if number not in done:
            rows.append((row.line, row.iin, row.entitlement, row.units_max, row.items, row.region, row.key,
                         row.malformed))  # fmt: skip
    if rows:
        yield number, rows


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
