"""Liveness, readiness and metrics for orchestrators and Prometheus. These need no credential.

`/readyz` reports the database and the audit integrator. The integrator's state is read from the
database, not from this process: the integrator leads from one process only (an advisory lock), and any
instance can see how old the oldest event waiting in the inbox is and when the log last grew. A lagging
integrator is reported, and alerted on through `amiyan_audit_integration_lag_seconds`, but does not make
the instance unready: the lag is the same for every instance, nothing is lost meanwhile (each change
wrote its events in its own transaction), and taking every instance out of service would turn an audit
delay into an outage.
"""

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ledger.errors import LedgerError
from ledger.unit_of_work import UnitOfWork

router = APIRouter(tags=["operations"])
READINESS_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class IntegratorState:
    oldest_waiting_s: float  # 0 when nothing waits
    last_integration_at: dt.datetime | None
    last_checkpoint_at: dt.datetime | None


def read_integrator_state(connection: psycopg.Connection[Any]) -> IntegratorState:
    row = connection.execute(
        "SELECT coalesce(extract(epoch FROM clock_timestamp() - (SELECT min(queued_at) FROM audit_inbox)),"
        " 0),"
        " (SELECT max(integrated_at) FROM audit_segments),"
        " (SELECT max(created_at) FROM audit_checkpoints)"
    ).fetchone()
    assert row is not None
    return IntegratorState(float(row[0]), row[1], row[2])


def integration_lag_s(unit_of_work: UnitOfWork) -> float | None:
    """For the metrics scrape: the oldest waiting event's age, or None when the database cannot say."""
    try:
        state = unit_of_work.read(read_integrator_state, timeout_s=READINESS_TIMEOUT_S)
    except (psycopg.Error, LedgerError):
        return None
    return state.oldest_waiting_s


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    try:
        state = request.app.state.unit_of_work.read(read_integrator_state, timeout_s=READINESS_TIMEOUT_S)
    except Exception as error:  # any failure means not ready; say which
        return JSONResponse({"status": "unavailable", "database": type(error).__name__}, status_code=503)
    lag_max_s = request.app.state.settings.readiness_integration_lag_s_max
    integrator = {
        "status": "lagging" if state.oldest_waiting_s > lag_max_s else "ok",
        "oldest_waiting_s": round(state.oldest_waiting_s, 3),
        "last_integration_at": _iso(state.last_integration_at),
        "last_checkpoint_at": _iso(state.last_checkpoint_at),
    }
    return JSONResponse({"status": "ready", "database": "ok", "audit_integrator": integrator})


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    body, content_type = request.app.state.metrics.render()
    return Response(body, media_type=content_type)


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
