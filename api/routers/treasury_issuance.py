"""The treasury officers' router for bulk issuance: upload an eligibility list (the request returns at once,
202, with the job), poll the job, list a programme's jobs, and download a job's rejection report as CSV.

The list is the request body itself, CSV (``text/csv``) or JSON lines (``application/x-ndjson``), up to
the bulk-upload body limit (`AMIYAN_BULK_UPLOAD_BYTES_MAX`), in the format `treasury.eligibility`
describes (iin, entitlement as tiyn, ``uses:N`` or ``units:N``, units_max, items, region, key). While the
request waits, the file is kept in the data directory, read once to count its rows and check its header
(about a second per half-million rows), and its job is made; the vouchers are then issued in the
background (`api.treasury_issuance_runs`). The same file for the same programme is the same job (by its
SHA-256): uploading it again resumes a job that stopped and issues nothing twice.

Every route admits only `treasury_officer`; the officer is the credential's name (`Principal.name`).
"""

import csv
import hashlib
import io
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path as FilePath
from typing import Annotated, Any, Final

import psycopg
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from api.auth import Principal, Role, TreasuryOfficer, require_role
from api.dependencies import SettingsDep, UnitOfWorkDep
from api.edge import BodyLimit, body_limit
from api.etags import CACHE_CONTROL, conditional_response, etag_of, if_none_match
from api.idempotency import IdempotencyClaim, Idempotent
from api.openapi_examples import (
    AUTHENTICATED,
    CURSOR_INVALID,
    IDEMPOTENT_POST,
    problem_examples,
    refusal_examples,
)
from api.pagination import Page, PageParams
from api.problems import Problem
from api.routers.treasury import ProgrammeId
from api.schemas.common import PlainText
from api.schemas.settlement import RefusalView
from api.schemas.treasury_issuance import IssuanceJobView
from api.settlement_responses import NOT_MODIFIED, OFFICER_INVALID, PROGRAMME_NOT_FOUND
from api.treasury_issuance_runs import IssuanceRuns
from api.treasury_reads import require_programme
from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork
from treasury.bulk_issuance import BATCH_ROWS_DEFAULT
from treasury.eligibility import duplicate_lines, read_list
from treasury.errors import RefusalKind, Refused
from treasury.issuance_jobs import (
    IssuanceJob,
    find_issuance_job,
    list_issuance_jobs,
    start_issuance_job,
    write_rejection_report,
)
from treasury.programmes import ProgrammeState


@asynccontextmanager
async def _issuance_runs(app: FastAPI) -> AsyncIterator[None]:
    """Runs in the app's lifespan, inside the one that opens the pool and the voucher ledger."""
    runs = IssuanceRuns(app.state.unit_of_work, app.state.vouchers.signer, app.state.holder_salt)
    app.state.issuance_runs = runs
    try:
        yield
    finally:
        await run_in_threadpool(runs.close)


router = APIRouter(
    prefix="/v1/treasury",
    tags=["treasury"],
    dependencies=[require_role(Role.treasury_officer)],
    responses=problem_examples(AUTHENTICATED),
    lifespan=_issuance_runs,
)
JobId = Annotated[uuid.UUID, Path(description="The issuance job's id")]
JOB_NOT_FOUND: Final = refusal_examples(RefusalKind.NOT_FOUND, "job_not_found")
# The media types a list may be sent as, and the file suffix it is kept under (read_list goes by it).
LIST_SUFFIXES: Final = {
    "text/csv": ".csv",
    "application/x-ndjson": ".jsonl",
    "application/jsonl": ".jsonl",
    "application/json-lines": ".jsonl",
}
LIST_EXAMPLE: Final = "iin,entitlement\n900101300017,uses:20\n"
UPLOAD_BODY: Final = {
    "requestBody": {
        "required": True,
        "description": "The eligibility list: CSV with a header line, or JSON lines (one object per line)",
        "content": {
            "text/csv": {"schema": {"type": "string"}, "example": LIST_EXAMPLE},
            "application/x-ndjson": {
                "schema": {"type": "string"},
                "example": '{"iin": "900101300017", "entitlement": "uses:20"}\n',
            },
        },
    }
}
ISSUED_BEFORE: Final[dict[int | str, dict[str, Any]]] = {
    200: {"model": IssuanceJobView, "description": "This list was issued to the end before"}
}
REPORT_MEDIA_TYPE: Final = "text/csv; charset=utf-8"
REPORT_EXAMPLE: Final = "row,reason,message,holder\n7,iin_check_digit,the check digit is wrong,********0017\n"


async def get_issuance_runs(request: Request) -> IssuanceRuns:
    runs: IssuanceRuns = request.app.state.issuance_runs
    return runs


IssuanceRunsDep = Annotated[IssuanceRuns, Depends(get_issuance_runs)]


def _job_view(runs: IssuanceRuns, job: IssuanceJob) -> IssuanceJobView:
    stopped = None if runs.running(job.id) else runs.stopped(job.id)
    why = RefusalView(code=stopped.code, message=stopped.message) if stopped is not None else None
    return IssuanceJobView.of(job, why)


def _require_job(connection: psycopg.Connection[Any], job_id: uuid.UUID) -> IssuanceJob:
    job = find_issuance_job(connection, job_id)
    if job is None:
        raise Refused("job_not_found", str(job_id), RefusalKind.NOT_FOUND)
    return job


def _require_open(connection: psycopg.Connection[Any], programme_id: uuid.UUID) -> None:
    state = require_programme(connection, programme_id).state
    if state is not ProgrammeState.OPEN:
        raise Refused("programme_not_open", f"the programme is {state.name.lower()}", RefusalKind.CONFLICT)


def _count_rows(path: FilePath) -> int:
    """Rows in the list; refused when its header is wrong or it is not UTF-8 text."""
    try:
        rows_total, _ = duplicate_lines(read_list(path))
    except UnicodeDecodeError:
        raise Refused("list_not_utf8", "the list must be UTF-8 text") from None
    except csv.Error as error:
        raise Refused("list_malformed", f"the CSV cannot be read: {error}") from None
    return rows_total


def _keep_list(folder: FilePath, body: bytes, suffix: str) -> tuple[FilePath, bytes, int]:
    """The list kept under its SHA-256, once it passed its check (a bad file is not kept):
    (path, digest, rows)."""
    digest = hashlib.sha256(body).digest()
    folder.mkdir(parents=True, exist_ok=True)
    kept = sorted(folder.glob(f"{digest.hex()}.*"))
    if kept:  # the same bytes came before: the same job, read as it was read then (CSV or JSON lines)
        return kept[0], digest, _count_rows(kept[0])
    path = folder / f"{digest.hex()}{suffix}"
    # Written under a name of its own (two uploads of one file may race), with the suffix read_list needs.
    partial = folder / f".{digest.hex()}-{new_id().hex}{suffix}"
    partial.write_bytes(body)
    try:
        rows_total = _count_rows(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path, digest, rows_total


def _accept_list(
    programme_id: uuid.UUID,
    body: bytes,
    suffix: str,
    source_name: str,
    officer: Principal,
    idempotency: IdempotencyClaim,
    unit_of_work: UnitOfWork,
    folder: FilePath,
    runs: IssuanceRuns,
) -> Response:
    unit_of_work.read(lambda c: _require_open(c, programme_id))
    path, digest, rows_total = _keep_list(folder / str(programme_id), body, suffix)

    def work(connection: psycopg.Connection[Any]) -> tuple[IssuanceJob, Response]:
        job = start_issuance_job(
            connection, programme_id, source_name, digest, rows_total, BATCH_ROWS_DEFAULT, officer.name
        )
        location = f"{router.prefix}/issuance-jobs/{job.id}"
        status = 200 if job.finished else 202
        return job, idempotency.record(connection, status, _job_view(runs, job), {"Location": location})

    job, response = unit_of_work.run(work)
    if not job.finished:
        runs.start(job, path, officer.name)
    return response


@router.post(
    "/programmes/{programme_id}/issuance-jobs",
    status_code=202,
    response_model=IssuanceJobView,
    summary="Upload an eligibility list: its vouchers are issued in the background",
    openapi_extra=body_limit(BodyLimit.bulk_upload) | UPLOAD_BODY,
    responses=ISSUED_BEFORE
    | problem_examples(
        IDEMPOTENT_POST,
        PROGRAMME_NOT_FOUND,
        OFFICER_INVALID,
        refusal_examples(RefusalKind.INVALID, "list_columns_invalid", "list_not_utf8", "list_malformed"),
        refusal_examples(RefusalKind.CONFLICT, "programme_not_open"),
    ),
)
async def upload_list(
    programme_id: ProgrammeId,
    request: Request,
    officer: TreasuryOfficer,
    idempotency: Idempotent,
    unit_of_work: UnitOfWorkDep,
    settings: SettingsDep,
    runs: IssuanceRunsDep,
    name: Annotated[
        PlainText, Query(min_length=1, max_length=200, description="The file's name, for the record")
    ] = "eligibility-list",
) -> Response:
    """Answers 202 with the job (`Location` to poll) while its rows are issued; 200 when the same list was
    issued to the end before (nothing is issued twice). Each row is checked on its own: a bad row goes to
    the rejection report and the good rows are issued. The programme must be open (409)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    suffix = LIST_SUFFIXES.get(media_type)
    if suffix is None:
        raise Problem(415, "unsupported_media_type", "The request body's media type is not accepted here",
                      f"send {' or '.join(sorted(LIST_SUFFIXES))}")  # fmt: skip
    body = await request.body()  # read already: the Idempotency-Key compares requests by it
    folder = settings.data_dir / "eligibility-lists"
    return await run_in_threadpool(
        _accept_list, programme_id, body, suffix, name, officer, idempotency, unit_of_work, folder, runs
    )


@router.get(
    "/issuance-jobs/{job_id}",
    response_model=IssuanceJobView,
    summary="Poll an issuance job: rows done of total, issued, already issued, rejected",
    responses=problem_examples(JOB_NOT_FOUND) | NOT_MODIFIED,
)
def read_job(job_id: JobId, request: Request, runs: IssuanceRunsDep, unit_of_work: UnitOfWorkDep) -> Response:
    """`state` is `finished` once every row has its result. A job `running` with `stopped` set is not
    being issued here any more: upload the same list again to resume it."""
    job = unit_of_work.read(lambda c: _require_job(c, job_id))
    return conditional_response(request, _job_view(runs, job))


@router.get(
    "/programmes/{programme_id}/issuance-jobs",
    response_model=Page[IssuanceJobView],
    summary="The programme's issuance jobs, oldest first",
    responses=problem_examples(PROGRAMME_NOT_FOUND, {400: [CURSOR_INVALID]}) | NOT_MODIFIED,
)
def list_jobs(
    programme_id: ProgrammeId,
    page: PageParams,
    request: Request,
    runs: IssuanceRunsDep,
    unit_of_work: UnitOfWorkDep,
) -> Response:
    after = page.after("created_at")

    def read(connection: psycopg.Connection[Any]) -> list[IssuanceJob]:
        require_programme(connection, programme_id)
        return list_issuance_jobs(connection, programme_id)

    jobs = [job for job in unit_of_work.read(read) if not isinstance(after, int) or job.created_at > after]
    created_at = {job.id: job.created_at for job in jobs}
    views = [_job_view(runs, job) for job in jobs[: page.fetch_limit]]
    return conditional_response(request, page.of(views, lambda view: {"created_at": created_at[view.id]}))


@router.get(
    "/issuance-jobs/{job_id}/rejections.csv",
    response_class=Response,
    summary="An issuance job's rejection report: row, reason, message, masked holder",
    responses={
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}, "example": REPORT_EXAMPLE}},
            "description": "CSV with a header line; one row per rejected line of the list, in line order",
        }
    }
    | problem_examples(JOB_NOT_FOUND)
    | NOT_MODIFIED,
)  # fmt: skip
def download_rejections(job_id: JobId, request: Request, unit_of_work: UnitOfWorkDep) -> Response:
    """`row` is the line in the uploaded file (a CSV header is line 1); `reason` the rule the row broke,
    stable for machines; the holder is the IIN masked to its last four digits. Complete once the job is
    finished."""

    def read(connection: psycopg.Connection[Any]) -> bytes:
        job = _require_job(connection, job_id)
        report = io.StringIO()
        write_rejection_report(connection, job.id, report)
        return report.getvalue().encode("utf-8")

    body = unit_of_work.read(read)
    etag = etag_of(body)
    validators = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if if_none_match(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=validators)
    disposition = f'attachment; filename="rejections-{job_id}.csv"'
    headers = validators | {"Content-Disposition": disposition}
    return Response(body, media_type=REPORT_MEDIA_TYPE, headers=headers)
