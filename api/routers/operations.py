"""Liveness and readiness for orchestrators."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    try:
        with request.app.state.pool.connection(timeout=2) as connection:
            connection.execute("SELECT 1").fetchone()
    except Exception as error:  # any failure means not ready; say which
        return JSONResponse({"status": "unavailable", "database": type(error).__name__}, status_code=503)
    return JSONResponse({"status": "ready", "database": "ok"})
