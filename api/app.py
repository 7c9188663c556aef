"""The composition root of the HTTP service: settings in, app out. Nothing is built at import time."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.database import create_pool
from api.problems import install_problem_handlers
from api.routers import ledger_reads, operations
from api.settings import Settings
from ledger.service import Ledger
from ledger.unit_of_work import UnitOfWork


def create_app(settings: Settings, database_url: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = create_pool(database_url, settings.database_role, settings.pool_size_max)
        app.state.pool = pool
        app.state.ledger = Ledger(UnitOfWork(pool))
        yield
        pool.close()

    app = FastAPI(
        title="Amiyan",
        version="0.1.0",
        lifespan=lifespan,
        description="Double-entry voucher ledger for Kazakhstan's Social Wallet.",
    )
    install_problem_handlers(app)
    app.include_router(operations.router)
    app.include_router(ledger_reads.router)
    return app
