"""Issuing vouchers to a whole eligibility list: the run an officer starts with
`amiyan treasury issue FILE --programme CODE`.

1. The file is hashed and read once to count its rows and find holders listed twice.
2. Its job is made, or found where an earlier run stopped (the same file for the same programme is the
   same job, so running it again resumes it, and a finished job issues nothing).
3. Rows are checked one by one (`treasury.eligibility`) and issued in batches of `batch_rows`, each batch
   one transaction (`treasury.issuance_jobs.commit_issuance_batch`).

The secret salt of holder hashes and the issuer key come in as arguments (the CLI and API read them from
settings); nothing here reads the environment.
"""

import time
import uuid
from collections.abc import Callable
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
    file_sha256,
    start_issuance_job,
)

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
) -> IssuanceJob:
    """Issue (or go on issuing) the list in `path`; returns the job as it ends."""
    if not 0 < batch_rows <= BATCH_ROWS_MAX:
        raise Refused("batch_rows_invalid", f"a batch is 1 to {BATCH_ROWS_MAX} rows")
    started = time.perf_counter()
    digest = file_sha256(path)
    rows_total, repeats = duplicate_lines(read_list(path))
    job = unit_of_work.run(
        lambda c: start_issuance_job(c, programme_id, path.name, digest, rows_total, officer)
    )
    log.info("issuance_job", job=str(job.id), rows_total=rows_total, resume_from=job.rows_done,
             duplicates=len(repeats))  # fmt: skip
    if on_progress is not None:
        on_progress(job)
    if job.finished:
        return job
    terms = unit_of_work.read(lambda c: issue_terms(c, programme_id, holder_salt))
    batch = IssuanceBatch(rows_from=job.rows_done)
    for index, row in enumerate(read_list(path)):
        if index < job.rows_done:
            continue
        prepared = prepare_row(row, terms, repeats)
        if isinstance(prepared, RowRejection):
            batch.rejections.append(prepared)
        else:
            batch.orders.append(prepared)
            batch.order_lines.append((row.line, mask_iin(str(row.iin).strip())))
        batch.rows_count += 1
        if batch.rows_count == batch_rows:
            job = _commit(unit_of_work, job, batch, signer, on_progress)
            batch = IssuanceBatch(rows_from=job.rows_done)
    if batch.rows_count:
        job = _commit(unit_of_work, job, batch, signer, on_progress)
    seconds = time.perf_counter() - started
    log.info("issuance_job_finished" if job.finished else "issuance_job_stopped", job=str(job.id),
             issued=job.issued, already_issued=job.already_issued, rejected=job.rejected,
             rows_done=job.rows_done, seconds=round(seconds, 3))  # fmt: skip
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


def _commit(
    unit_of_work: UnitOfWork,
    job: IssuanceJob,
    batch: IssuanceBatch,
    signer: IssuerSigner,
    on_progress: Callable[[IssuanceJob], None] | None,
) -> IssuanceJob:
    started = time.perf_counter()
    committed = unit_of_work.run(lambda c: commit_issuance_batch(c, job.id, batch, signer))
    log.debug("issuance_batch", job=str(job.id), rows_to=committed.rows_done, orders=len(batch.orders),
              duration_ms=round((time.perf_counter() - started) * 1000, 3))  # fmt: skip
    if on_progress is not None:
        on_progress(committed)
    return committed
