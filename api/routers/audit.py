"""The auditors' router: the latest signed checkpoint, entries by range, inclusion and consistency proofs,
the log's public keys, and the whole export to verify offline (`amiyan audit verify`). Only the `auditor`
role; nothing here changes anything.

Entries travel as base64 in JSON (at most `AUDIT_ENTRIES_PER_PAGE_MAX` a request): entries are binary
(ledger rows) or JSON, and a JSON array of base64 strings keeps them byte-exact and easy to page through,
where a raw binary stream would need its own framing and content negotiation. The export download is the
same directory `amiyan audit export` writes (manifest.json, entries.bin, leaf_hashes.bin,
checkpoints.jsonl, keys.txt), as a gzipped tar.
"""

import shutil
import threading
from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from api.audit_reads import checkpoint_note, export_archive, latest_checkpoint, verifier_keys
from api.auth import Role, require_role
from api.dependencies import SettingsDep, UnitOfWorkDep
from api.etags import CACHE_CONTROL, conditional_response, etag_of, if_none_match
from api.openapi_examples import AUTHENTICATED, INVALID_REQUEST, problem_examples
from api.problems import Problem
from api.schemas.audit import AuditEntriesView, AuditKeysView, ConsistencyProofView, InclusionProofView
from api.schemas.common import b64
from ledger.audit.log_store import prove_consistency, prove_inclusion, read_entries, tree_size
from ledger.audit.merkle import leaf_hash

router = APIRouter(
    prefix="/v1/audit",
    tags=["audit"],
    dependencies=[require_role(Role.auditor)],
    responses=problem_examples(AUTHENTICATED),
)
CHECKPOINT_NOT_FOUND: Final = ("checkpoint_not_found", "No checkpoint has been signed yet")
EXPORT_BUSY: Final = ("export_busy", "An export is being built; retry shortly")
# Building an export reads the whole log over one pooled connection and packs it: one at a time per
# process, so that downloads cannot take the connections and threads the ledger's writers need.
EXPORTS_BUILT_AT_ONCE: Final = threading.BoundedSemaphore(1)
EXPORT_RETRY_AFTER_S: Final = 5
EXPORT_ARCHIVE: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
        "description": "audit-export.tar.gz: the directory `amiyan audit export` writes",
    }
}
BEYOND_LOG: Final = ("beyond_log", "The log is not that large")
SIZES_OUT_OF_ORDER: Final = ("sizes_out_of_order", "first must not exceed second")
AUDIT_ENTRIES_PER_PAGE_MAX: Final = 1000
LOG_INDEX_MAX: Final = 2**63 - 1
NOT_MODIFIED: Final[dict[int | str, dict[str, Any]]] = {304: {"description": "Not modified"}}
LogIndex = Annotated[int, Query(ge=0, le=LOG_INDEX_MAX)]


def _no_checkpoint() -> Problem:
    return Problem(404, *CHECKPOINT_NOT_FOUND)


def _beyond_log(what: str, value: int, size: int) -> Problem:
    return Problem(
        404, "beyond_log", "The log is not that large", f"{what} {value}; the log holds {size} entries"
    )


@router.get(
    "/checkpoint",
    response_class=Response,
    summary="The latest signed checkpoint (C2SP signed note)",
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "The note: origin, size, base64 root hash, a blank line, signature lines",
        }
    }
    | problem_examples({404: [CHECKPOINT_NOT_FOUND]})
    | NOT_MODIFIED,
)
def read_checkpoint(request: Request, unit_of_work: UnitOfWorkDep) -> Response:
    """Verify it with the pinned verifier key (any C2SP note tool will do); its size bounds the proofs
    below."""
    latest = unit_of_work.read(latest_checkpoint)
    if latest is None:
        raise _no_checkpoint()
    body = latest[1].encode("utf-8")
    validators = {"ETag": etag_of(body), "Cache-Control": CACHE_CONTROL}
    if if_none_match(request.headers.get("if-none-match"), validators["ETag"]):
        return Response(status_code=304, headers=validators)
    return Response(body, media_type="text/plain; charset=utf-8", headers=validators)


@router.get(
    "/entries",
    response_model=AuditEntriesView,
    summary="Log entries by range",
    responses=problem_examples({404: [BEYOND_LOG]}) | NOT_MODIFIED,
)
def read_log_entries(
    request: Request,
    unit_of_work: UnitOfWorkDep,
    start: Annotated[int, Query(ge=0, le=LOG_INDEX_MAX, description="First entry's index")],
    limit: Annotated[int, Query(ge=1, le=AUDIT_ENTRIES_PER_PAGE_MAX)] = 100,
) -> Response:
    """Entries `start` to `start + limit - 1`, or to the end of the log if it ends sooner. `start` equal
    to the log's size answers an empty page (nothing new yet); beyond it, 404."""

    def read(connection: Any) -> tuple[int, list[bytes]]:
        size = tree_size(connection)
        if start > size:
            raise _beyond_log("start", start, size)
        return size, read_entries(connection, start, min(size, start + limit))

    size, entries = unit_of_work.read(read)
    end = start + len(entries)
    view = AuditEntriesView(
        start=start, entries=[b64(e) for e in entries], log_size=size, next_start=end if end < size else None
    )
    return conditional_response(request, view)


@router.get(
    "/entries/{index}/inclusion-proof",
    response_model=InclusionProofView,
    summary="Proof that an entry is in the tree of a given size",
    responses=problem_examples({404: [CHECKPOINT_NOT_FOUND, BEYOND_LOG]}) | NOT_MODIFIED,
)
def read_inclusion_proof(
    request: Request,
    unit_of_work: UnitOfWorkDep,
    index: Annotated[int, Path(ge=0, le=LOG_INDEX_MAX)],
    tree_size_: Annotated[
        int | None,
        Query(alias="tree_size", ge=1, le=LOG_INDEX_MAX, description="Default: the latest checkpoint's size"),
    ] = None,
) -> Response:
    def read(connection: Any) -> InclusionProofView:
        size = tree_size_ if tree_size_ is not None else _latest_size(connection)
        logged = tree_size(connection)
        if size > logged:
            raise _beyond_log("tree_size", size, logged)
        if index >= size:
            raise _beyond_log("index", index, size)
        [entry] = read_entries(connection, index, index + 1)
        proof = prove_inclusion(connection, index, size)
        return InclusionProofView(
            index=index, tree_size=size, entry=b64(entry), leaf_hash=b64(leaf_hash(entry)),
            proof=[b64(h) for h in proof], checkpoint=checkpoint_note(connection, size),
        )  # fmt: skip

    return conditional_response(request, unit_of_work.read(read))


def _latest_size(connection: Any) -> int:
    latest = latest_checkpoint(connection)
    if latest is None:
        raise _no_checkpoint()
    return latest[0]


@router.get(
    "/consistency-proof",
    response_model=ConsistencyProofView,
    summary="Proof that an earlier tree is a prefix of a later one",
    responses=problem_examples(
        {404: [CHECKPOINT_NOT_FOUND, BEYOND_LOG], 422: [INVALID_REQUEST, SIZES_OUT_OF_ORDER]}
    )
    | NOT_MODIFIED,
)
def read_consistency_proof(
    request: Request,
    unit_of_work: UnitOfWorkDep,
    first: Annotated[int, Query(ge=1, le=LOG_INDEX_MAX, description="The earlier size (one you verified)")],
    second: Annotated[
        int | None,
        Query(ge=1, le=LOG_INDEX_MAX, description="The later size; default: the latest checkpoint's"),
    ] = None,
) -> Response:
    def read(connection: Any) -> ConsistencyProofView:
        later = second if second is not None else _latest_size(connection)
        logged = tree_size(connection)
        if later > logged:
            raise _beyond_log("second", later, logged)
        if first > later:
            raise Problem(422, *SIZES_OUT_OF_ORDER, f"{first} > {later}")
        proof = prove_consistency(connection, first, later)
        return ConsistencyProofView(
            first=first,
            second=later,
            proof=[b64(h) for h in proof],
            checkpoint=checkpoint_note(connection, later),
        )

    return conditional_response(request, unit_of_work.read(read))


@router.get(
    "/keys", response_model=AuditKeysView, summary="The log's public verifier keys", responses=NOT_MODIFIED
)
def read_audit_keys(request: Request, unit_of_work: UnitOfWorkDep, settings: SettingsDep) -> Response:
    keys = unit_of_work.read(verifier_keys)
    return conditional_response(request, AuditKeysView(origin=settings.log_origin, verifier_keys=keys))


@router.get(
    "/export",
    response_class=FileResponse,
    summary="Download the log, checkpoints and keys for offline verification",
    responses=problem_examples({503: [EXPORT_BUSY]}) | EXPORT_ARCHIVE,
)
def download_export(unit_of_work: UnitOfWorkDep, settings: SettingsDep) -> FileResponse:
    """One consistent snapshot of the whole log. Unpack it and run
    `amiyan audit verify audit-export --key <pinned key>`. One export is built at a time; another request
    meanwhile gets 503 `export_busy` with `Retry-After`."""
    if not EXPORTS_BUILT_AT_ONCE.acquire(blocking=False):
        raise Problem(
            503, *EXPORT_BUSY, "another download is being packed",
            headers={"Retry-After": str(EXPORT_RETRY_AFTER_S)},
        )  # fmt: skip
    try:
        archive, count = export_archive(unit_of_work, settings.log_origin)
    finally:
        EXPORTS_BUILT_AT_ONCE.release()
    return FileResponse(
        archive,
        media_type="application/gzip",
        filename=archive.name,
        headers={"X-Audit-Entries": str(count), "Cache-Control": "no-store"},
        background=BackgroundTask(shutil.rmtree, archive.parent, ignore_errors=True),
    )
