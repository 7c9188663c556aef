"""Bulk issuance jobs running in the background of the HTTP service, so an upload is answered at once.

An uploaded list is kept in the data directory (`eligibility-lists/<programme>/<sha256>.csv|.jsonl`); its
job is made (or found, for the same file) while the request waits, and the batches then run in a thread
of this process (`treasury.bulk_issuance.issue_list`, which itself keeps two batches in flight). Nothing
here is needed for correctness: each batch is one transaction, so a run that stops — the server stopping,
the programme closing — loses only batches in flight, and uploading the same list again resumes the job.

`IssuanceRuns` is built when the treasury issuance router starts (its lifespan) and closed when it stops:
closing asks every run to stop after the batches it has in flight, and waits for them.
"""

import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import structlog

from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.tokens import IssuerSigner
from treasury.bulk_issuance import issue_list
from treasury.errors import Refused
from treasury.issuance_jobs import IssuanceJob

STOP_WAIT_S: Final = 30.0
log = structlog.get_logger("api.issuance")


@dataclass(frozen=True, slots=True)
class RunStopped:
    """Why a run ended before its job finished: a refusal's code and message."""

    code: str
    message: str


class _Stopping(Exception):
    """Raised from the progress callback to end a run between batches."""


class IssuanceRuns:
    """The jobs this process is issuing, one thread each, and why the last run of a job stopped early."""

    def __init__(self, unit_of_work: UnitOfWork, signer: IssuerSigner, holder_salt: bytes) -> None:
        self.unit_of_work = unit_of_work
        self.signer = signer
        self.holder_salt = holder_salt
        self._lock = threading.Lock()
        self._running: dict[uuid.UUID, threading.Thread] = {}
        self._stopped: dict[uuid.UUID, RunStopped] = {}
        self._closing = threading.Event()

    def start(self, job: IssuanceJob, path: Path, officer: str) -> None:
        """Issue the rest of `job` from `path` in a thread of its own (nothing if it runs here already)."""
        with self._lock:
            if self._closing.is_set() or job.id in self._running:
                return
            self._stopped.pop(job.id, None)
            thread = threading.Thread(
                target=self._run, args=(job, path, officer), name=f"issuance-{job.id}", daemon=True
            )
            self._running[job.id] = thread
        thread.start()

    def running(self, job_id: uuid.UUID) -> bool:
        with self._lock:
            return job_id in self._running

    def stopped(self, job_id: uuid.UUID) -> RunStopped | None:
        with self._lock:
            return self._stopped.get(job_id)

    def close(self, wait_s: float = STOP_WAIT_S) -> None:
        """Stop every run after its batches in flight, and wait for them (at most `wait_s` in all)."""
        self._closing.set()
        with self._lock:
            threads = list(self._running.values())
        for thread in threads:
            thread.join(wait_s / max(1, len(threads)))

    def _check_closing(self, _: IssuanceJob) -> None:
        if self._closing.is_set():
            raise _Stopping

    def _run(self, job: IssuanceJob, path: Path, officer: str) -> None:
        stopped: RunStopped | None = None
        try:
            issue_list(self.unit_of_work, self.signer, self.holder_salt, job.programme_id, path, officer,
                       on_progress=self._check_closing)  # fmt: skip
        except Refused as refused:
            stopped = RunStopped(refused.code, refused.message)
        except _Stopping:
            stopped = RunStopped("service_stopping", "the service stopped; upload the list again to resume")
        except Exception:  # the run ends; its job stays resumable, and the log has the cause
            log.exception("issuance_run_failed", job=str(job.id))
            stopped = RunStopped("issuance_failed", "the run failed; upload the list again to resume")
        finally:
            with self._lock:
                self._running.pop(job.id, None)
                if stopped is not None:
                    self._stopped[job.id] = stopped
