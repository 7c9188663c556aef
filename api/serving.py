"""Running the HTTP service on a database: the API and, beside it, the audit log's integrator.

With `server_workers` > 1 (``amiyan serve --workers N``) uvicorn runs N worker processes on one socket,
each building its own app (`worker_app`) from the settings and database URL the parent hands them. The
parent process runs the one audit integrator and, before the workers start, makes what they would
otherwise race for: the key files in the data directory and the issuer key's place in the key set. Each
worker has its own connection pool (`pool_size_max` each), redemption writer(s), remembered API keys and
terminals, and rate limits: a credential may make `rate_limit_requests_per_s` in each worker.
"""

import gc
import json
import os
import sys
import threading
from typing import TYPE_CHECKING, Any, Final

from psycopg_pool import ConnectionPool

from api.database import create_pool
from api.settings import Settings

# Many threads wait on the database and hand work to one writer: switching the GIL every millisecond
# instead of every 5 lets the writer back in sooner (measured: about 10 % more coalesced redemptions).
GIL_SWITCH_INTERVAL_S = 0.001
# The garbage collector's generation thresholds in a server process (Python's default: 700, 10, 10). See
# `quiet_garbage_collector`.
GC_THRESHOLDS: Final = (20_000, 20, 10)
# The environment variable through which the parent hands its settings and database URL to its workers.
WORKER_HANDOVER_ENV: Final = "AMIYAN_SERVE_HANDOVER"

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ledger.audit.integrator import Integrator


def audit_integrator(settings: Settings, pool: ConnectionPool[Any]) -> "Integrator":
    """The integrator with this deployment's log signer(s), its key introduced into the log."""
    from api.log_keys import load_log_signer
    from ledger.audit.integrator import Integrator
    from ledger.audit.signed_note import parse_signer_key

    signer, verifier_key = load_log_signer(settings)
    signers = [signer]
    if settings.log_retiring_signer_key:
        signers.append(parse_signer_key(settings.log_retiring_signer_key))
    integrator = Integrator(pool, settings.log_origin, signers)
    integrator.introduce_keys([verifier_key])
    return integrator


def serve_database(
    settings: Settings, url: str, host: str | None, port: int | None, workers: int | None = None
) -> None:
    """Serve the API on `url` until interrupted, with the audit integrator running beside it, in this
    process (one worker) or in `workers` processes (default `server_workers`)."""
    import uvicorn

    from api.app import create_app

    workers = workers or settings.server_workers
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    integrator_pool = create_pool(url, settings.database_role, settings.pool_size_max)
    integrator = audit_integrator(settings, integrator_pool)
    if workers > 1:
        _prepare_for_workers(settings, integrator_pool)
    stop = threading.Event()
    integrating = threading.Thread(
        target=integrator.run, args=(stop, url), name="audit-integrator", daemon=True
    )
    integrating.start()
    host, port = host or settings.host, port or settings.port
    try:
        if workers == 1:
            app = create_app(settings, url)
            quiet_garbage_collector()
            uvicorn.run(app, host=host, port=port, log_config=None)
        else:
            handover = {"settings": settings.model_dump(mode="json"), "url": url}
            os.environ[WORKER_HANDOVER_ENV] = json.dumps(handover)  # the spawned workers inherit it
            uvicorn.run(
                "api.serving:worker_app", factory=True, workers=workers, host=host, port=port, log_config=None
            )
    finally:
        stop.set()
        integrating.join(5)
        integrator_pool.close()


def worker_app() -> "FastAPI":
    """The app of one worker process (uvicorn calls this factory in each): the parent's settings and
    database URL, as `serve_database` handed them over."""
    from api.app import create_app
    from api.logs import configure_logging

    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    handover = json.loads(os.environ[WORKER_HANDOVER_ENV])
    settings = Settings(**handover["settings"])
    configure_logging(settings.log_format, settings.log_level)
    app = create_app(settings, handover["url"])
    quiet_garbage_collector()
    return app


def quiet_garbage_collector() -> None:
    """Keep full garbage collections off the request path. Measured under api_bench: every 1.3 s a full
    collection (finding nothing) walked the ~200,000 objects the imports made, for 100-150 ms with every
    request waiting: the p99. Requests in flight outlive the young collections, so each promotion brings
    the next full one nearer. What start-up made is frozen (never walked again: it is not garbage), and the
    young generation is collected after 20,000 allocations instead of 700, so fewer requests are caught
    alive in it."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _prepare_for_workers(settings: Settings, pool: ConnectionPool[Any]) -> None:
    """What workers starting together would race for, made once: the key files in the data directory,
    and the issuer key in the key set (the workers then find it there)."""
    from api.tokens import load_token_authority
    from api.voucher_secrets import introduce_issuer_key, load_holder_salt, load_issuer_signer
    from ledger.unit_of_work import UnitOfWork
    from ledger.vouchers.service import VoucherLedger

    load_token_authority(settings)
    load_holder_salt(settings)
    vouchers = VoucherLedger(UnitOfWork(pool), load_issuer_signer(settings))
    try:
        introduce_issuer_key(vouchers, settings)
    finally:
        vouchers.close()
