"""Bulk issuance jobs as the database keeps them: one row per eligibility list with its progress, and the
rejection report (line, reason, message, masked holder).

A job's list is cut into numbered batches of `batch_rows` rows, fixed when the job is made. A batch is one
transaction that holds the programme FOR SHARE (nothing is issued outside open; a close waits for the
batch), issues the batch's vouchers, writes its rejections, records the batch (`issuance_batches`, at most
once per number: its primary key) and adds its counts to the job. A crash loses only the batches in
flight; the next run does exactly the batches that did not commit. Batches may commit out of order (the
runner keeps two in flight), so progress is the set of committed batches, not a position in the list.
"""

import csv
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, Final, TextIO

import psycopg

from ledger.audit.events import json_event
from ledger.audit.inbox import append_events
from ledger.ids import derived_id
from ledger.timestamps import reserve_timestamps
from ledger.vouchers.issuance import issue_vouchers
from ledger.vouchers.issuance_orders import VoucherOrder
from ledger.vouchers.results import IssueResult
from ledger.vouchers.tokens import IssuerSigner
from treasury.eligibility import RowRejection
from treasury.errors import RefusalKind, Refused
from treasury.officers import officer_name
from treasury.programmes import lock_open_programme

JOB_NAMESPACE: Final = uuid.UUID("8c4d2e1f-3a5b-4c6d-8e7f-9a0b1c2d3e4f")
REPORT_COLUMNS: Final = ("row", "reason", "message", "holder")
_ISSUE_MESSAGES: Final = {
    IssueResult.insufficient_funds: "the fund could not cover this voucher when its batch was issued",
    IssueResult.exists_with_different_fields: "a voucher for this holder and entitlement key was issued "
    "before with other terms",
    IssueResult.exceeds_policy: "the amount does not fit the programme's policy",
    IssueResult.outside_programme_window: "the programme's policy is no longer in force",
    IssueResult.issuer_key_unavailable: "no issuer key may sign vouchers now",
}


class JobState(IntEnum):
    RUNNING = 1
    FINISHED = 2


@dataclass(frozen=True, slots=True)
class IssuanceJob:
    id: uuid.UUID
    programme_id: uuid.UUID
    source_name: str
    source_sha256: bytes
    rows_total: int
    batch_rows: int
    rows_done: int
    issued: int
    already_issued: int
    rejected: int
    issued_tiyn: int
    state: JobState
    created_by: str
    created_at: int
    updated_at: int

    @property
    def finished(self) -> bool:
        return self.state is JobState.FINISHED


@dataclass(slots=True)
class IssuanceBatch:
    """Batch `number` of a list: the orders of its good rows (with each order's line and masked holder, for
    the report if the ledger refuses it) and its rejected rows."""

    number: int
    rows_count: int = 0
    orders: list[VoucherOrder] = field(default_factory=list)
    order_lines: list[tuple[int, str]] = field(default_factory=list)
    rejections: list[RowRejection] = field(default_factory=list)


def job_id_for(programme_id: uuid.UUID, source_sha256: bytes) -> uuid.UUID:
    """The same list for the same programme is the same job: running it again resumes it."""
    return derived_id(JOB_NAMESPACE, programme_id, source_sha256.hex())


def file_sha256(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.digest()


_COLUMNS: Final = """id, programme_id, source_name, source_sha256, rows_total, batch_rows, rows_done, issued,
    already_issued, rejected, issued_tiyn, state, created_by, created_at, updated_at"""


def start_issuance_job(
    connection: psycopg.Connection[Any],
    programme_id: uuid.UUID,
    source_name: str,
    source_sha256: bytes,
    rows_total: int,
    batch_rows: int,
    officer: str,
) -> IssuanceJob:
    """The job for this list (made now, or found as an earlier run left it, with the batch size it was
    made with). Refused unless the programme is open."""
    who = officer_name(officer)
    lock_open_programme(connection, programme_id)
    job_id = job_id_for(programme_id, source_sha256)
    existing = find_issuance_job(connection, job_id)
    if existing is not None:
        return existing
    timestamp = reserve_timestamps(connection)
    state = JobState.FINISHED if rows_total == 0 else JobState.RUNNING
    connection.execute(
        f"""INSERT INTO issuance_jobs ({_COLUMNS})
            VALUES (%s, %s, %s, %s, %s, %s, 0, 0, 0, 0, 0, %s, %s, %s, %s)""",
        (job_id, programme_id, source_name[:200], source_sha256, rows_total, batch_rows, int(state), who,
         timestamp, timestamp),
    )  # fmt: skip
    append_events(connection, [json_event("issuance_job_started", {
        "job": str(job_id), "programme": str(programme_id), "source_name": source_name[:200],
        "source_sha256": source_sha256.hex(), "rows_total": rows_total, "officer": who,
    })])  # fmt: skip
    found = find_issuance_job(connection, job_id)
    assert found is not None
    return found


def commit_issuance_batch(
    connection: psycopg.Connection[Any], job_id: uuid.UUID, batch: IssuanceBatch, signer: IssuerSigner
) -> IssuanceJob:
    """Issue one batch and record it, all in the caller's transaction (see the module docstring). A batch
    already committed (by an earlier or a concurrent run) is not issued again."""
    job = find_issuance_job(connection, job_id)
    if job is None:
        raise Refused("job_not_found", str(job_id), RefusalKind.NOT_FOUND)
    lock_open_programme(connection, job.programme_id)
    # Two runs of the same job doing the same batch at once take turns here; the second finds it done.
    connection.execute(
        "SELECT pg_advisory_xact_lock(%s, %s)", (_signed_int32(job_id.int >> 96), batch.number)
    )
    if batch.number in committed_batches(connection, job_id, batch.number):
        return job
    results, _ = issue_vouchers(connection, signer, batch.orders) if batch.orders else ([], [])
    counts = _BatchCounts()
    rejections = list(batch.rejections)
    for order, (line, holder), result in zip(batch.orders, batch.order_lines, results, strict=True):
        if result is IssueResult.ok:
            counts.issued += 1
            counts.issued_tiyn += order.amount_tiyn
        elif result is IssueResult.exists:
            counts.already_issued += 1
        else:
            rejections.append(
                RowRejection(line, result.name, _ISSUE_MESSAGES.get(result, result.name), holder)
            )
    counts.rejected = len(rejections)
    _write_rejections(connection, job_id, rejections)
    _record_batch(connection, job, batch, counts)
    found = find_issuance_job(connection, job_id)
    assert found is not None
    return found


def committed_batches(
    connection: psycopg.Connection[Any], job_id: uuid.UUID, number: int | None = None
) -> set[int]:
    """The numbers of the job's committed batches (or just whether `number` is one of them)."""
    rows = connection.execute(
        """SELECT batch_number FROM issuance_batches
            WHERE job_id = %s AND (%s::int IS NULL OR batch_number = %s)""",
        (job_id, number, number),
    ).fetchall()
    return {row[0] for row in rows}


def _signed_int32(value: int) -> int:
    return (value & 0xFFFFFFFF) - (1 << 32) if value & 0x80000000 else value & 0xFFFFFFFF


@dataclass(slots=True)
class _BatchCounts:
    issued: int = 0
    already_issued: int = 0
    rejected: int = 0
    issued_tiyn: int = 0


def _record_batch(
    connection: psycopg.Connection[Any], job: IssuanceJob, batch: IssuanceBatch, counts: _BatchCounts
) -> None:
    timestamp = reserve_timestamps(connection)
    connection.execute(
        """INSERT INTO issuance_batches (job_id, batch_number, rows_count, issued, already_issued, rejected,
                                         issued_tiyn, "timestamp") VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
        (job.id, batch.number, batch.rows_count, counts.issued, counts.already_issued, counts.rejected,
         counts.issued_tiyn, timestamp),
    )  # fmt: skip
    connection.execute(
        """UPDATE issuance_jobs
              SET rows_done = rows_done + %(rows)s, issued = issued + %(issued)s,
                  already_issued = already_issued + %(already)s, rejected = rejected + %(rejected)s,
                  issued_tiyn = issued_tiyn + %(tiyn)s, updated_at = %(now)s,
                  state = CASE WHEN rows_done + %(rows)s = rows_total THEN 2 ELSE 1 END
            WHERE id = %(job)s""",
        {"rows": batch.rows_count, "issued": counts.issued, "already": counts.already_issued,
         "rejected": counts.rejected, "tiyn": counts.issued_tiyn, "now": timestamp, "job": job.id},
    )  # fmt: skip
    append_events(connection, [json_event("issuance_batch", {
        "job": str(job.id), "programme": str(job.programme_id), "batch": batch.number,
        "rows_from": batch.number * job.batch_rows, "rows": batch.rows_count, "issued": counts.issued,
        "already_issued": counts.already_issued, "rejected": counts.rejected,
        "issued_tiyn": counts.issued_tiyn,
    })])  # fmt: skip


def find_issuance_job(connection: psycopg.Connection[Any], job_id: uuid.UUID) -> IssuanceJob | None:
    row = connection.execute(f"SELECT {_COLUMNS} FROM issuance_jobs WHERE id = %s", (job_id,)).fetchone()
    if row is None:
        return None
    return IssuanceJob(
        id=row[0], programme_id=row[1], source_name=row[2], source_sha256=bytes(row[3]), rows_total=row[4],
        batch_rows=row[5], rows_done=row[6], issued=row[7], already_issued=row[8], rejected=row[9],
        issued_tiyn=row[10], state=JobState(row[11]), created_by=row[12], created_at=row[13],
        updated_at=row[14],
    )  # fmt: skip


def list_issuance_jobs(connection: psycopg.Connection[Any], programme_id: uuid.UUID) -> list[IssuanceJob]:
    rows = connection.execute(
        "SELECT id FROM issuance_jobs WHERE programme_id = %s ORDER BY created_at", (programme_id,)
    ).fetchall()
    return [job for (job_id,) in rows if (job := find_issuance_job(connection, job_id)) is not None]


def rejections_of(
    connection: psycopg.Connection[Any], job_id: uuid.UUID, after_row: int = 0, limit: int = 1000
) -> list[RowRejection]:
    """One page of a job's rejection report in line order; page on with the last line's number."""
    rows = connection.execute(
        """SELECT row_number, reason, message, holder FROM issuance_rejections
            WHERE job_id = %s AND row_number > %s ORDER BY row_number LIMIT %s""",
        (job_id, after_row, max(1, min(limit, 10_000))),
    ).fetchall()
    return [RowRejection(*row) for row in rows]


def write_rejection_report(connection: psycopg.Connection[Any], job_id: uuid.UUID, handle: TextIO) -> int:
    """The whole rejection report as CSV (row, reason, message, holder); returns how many rows."""
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(REPORT_COLUMNS)
    count = 0
    after = 0
    while page := rejections_of(connection, job_id, after, 10_000):
        writer.writerows((r.line, r.reason, r.message, r.holder) for r in page)
        count += len(page)
        after = page[-1].line
    return count


def _write_rejections(
    connection: psycopg.Connection[Any], job_id: uuid.UUID, rejections: Sequence[RowRejection]
) -> None:
    if not rejections:
        return
    with connection.cursor().copy(
        "COPY issuance_rejections (job_id, row_number, reason, message, holder) FROM STDIN"
    ) as copy:
        for rejection in rejections:
            copy.write_row((job_id, rejection.line, rejection.reason, rejection.message, rejection.holder))
