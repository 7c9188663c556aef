"""The composition root of the HTTP service: settings in, app out. Nothing is built at import time.

What the app holds (`app.state`), each built here once: the settings, the Prometheus metrics, the rate
limits, the API keys verified a moment ago, the token authority, the issuer signer and the holder salt
(`api.voucher_secrets`), and — while it runs (lifespan) — the connection pool, the unit of work, the
ledger and the `VoucherLedger` (whose issuer key joins the key set at start-up). Every request passes the
edge middleware (`api.edge`); every route but `/healthz`, `/readyz`, `/metrics`, `/oauth/token` and
`/v1/keys/issuers` needs a credential (`api.auth`).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from api.auth import VerifiedKeys, install_security_schemes
from api.database import create_pool
from api.edge import BodyLimit, Edge, check_media_type
from api.idempotency import install_idempotency
from api.metrics import Metrics
from api.openapi_examples import install_problem_examples
from api.problems import install_problem_handlers
from api.rate_limits import TokenBuckets
from api.redemption_envelopes import TerminalOwners
from api.routers import (
    audit,
    keys,
    ledger_reads,
    mobile,
    oauth,
    operations,
    provider_settlement,
    providers,
    redemptions,
    settlement,
    settlement_acts,
    treasury,
    treasury_funding,
    treasury_issuance,
    treasury_providers,
    treasury_vouchers,
)
from api.settings import Settings
from api.tokens import load_token_authority
from api.voucher_secrets import introduce_issuer_key, load_holder_salt, load_issuer_signer
from ledger.service import Ledger
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.coalescer import RedemptionCoalescer
from ledger.vouchers.service import VoucherLedger


def create_app(settings: Settings, database_url: str) -> FastAPI:
    metrics = Metrics()
    issuer_signer = load_issuer_signer(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = create_pool(database_url, settings.database_role, settings.pool_size_max)
        app.state.pool = pool
        app.state.unit_of_work = UnitOfWork(pool)
        app.state.ledger = Ledger(app.state.unit_of_work)
        vouchers = VoucherLedger(app.state.unit_of_work, issuer_signer)
        # Single redemptions from many terminals share transactions (answered after commit).
        coalescer = RedemptionCoalescer(vouchers, writers=settings.redemption_writers)
        try:
            introduce_issuer_key(vouchers, settings)
            app.state.vouchers = vouchers
            app.state.redemption_coalescer = coalescer
            app.state.terminal_owners = TerminalOwners(app.state.unit_of_work)
            yield
        finally:
            coalescer.close()
            vouchers.close()
            pool.close()

    app = FastAPI(
        title="Amiyan",
        version="0.1.0",
        lifespan=lifespan,
        description="Double-entry voucher ledger for Kazakhstan's Social Wallet.",
        dependencies=[Depends(check_media_type)],
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.rate_limits = TokenBuckets(settings.rate_limit_requests_per_s, settings.rate_limit_burst)
    app.state.verified_keys = VerifiedKeys(settings.api_key_remember_s)
    app.state.token_authority = load_token_authority(settings)
    app.state.holder_salt = load_holder_salt(settings)
    metrics.sample_on_scrape(
        "amiyan_audit_integration_lag_seconds",
        "Age of the oldest audit event waiting for the integrator (0 when none waits)",
        lambda: (
            operations.integration_lag_s(app.state.unit_of_work)
            if hasattr(app.state, "unit_of_work")
            else None
        ),
    )
    install_problem_handlers(app)
    install_problem_examples(app)
    install_security_schemes(app)
    install_idempotency(app)
    app.add_middleware(
        Edge,
        metrics=metrics,
        body_bytes_max={
            BodyLimit.default: settings.request_body_bytes_max,
            BodyLimit.bulk_upload: settings.bulk_upload_bytes_max,
        },
    )
    # Routes are matched in order, one by one: the hot route (terminals redeeming) is tried first.
    app.include_router(redemptions.router)
    app.include_router(operations.router)
    app.include_router(oauth.router)
    app.include_router(ledger_reads.router)
    for audience in (providers, provider_settlement, mobile, audit, keys):
        app.include_router(audience.router)
    app.include_router(settlement.router)
    app.include_router(settlement_acts.router)
    for officers in (treasury, treasury_funding, treasury_issuance, treasury_providers, treasury_vouchers):
        app.include_router(officers.router)
    return app
