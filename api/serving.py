"""Running the HTTP service on a database: the API and, beside it, the audit log's integrator.

With `server_workers` > 1 (``amiyan serve --workers N``) uvicorn runs N worker processes on one socket,
each building its own app (`worker_app`) from the settings and database URL the parent hands them. The
parent process runs the one audit integrator and, before the workers start, makes what they would
otherwise race for: the key files in the data directory and the issuer key's place in the key set. Each
worker has its own connection pool (`pool_size_max` each), redemption writer(s), remembered API keys and
terminals, and rate limits: a credential may make `rate_limit_requests_per_s` in each worker.

With `server_cpus` set, each server process keeps all its threads on one of those CPUs
(`pin_server_process`).
"""

import gc
import json
import os
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

import structlog
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
    check_server_cpus(settings)
    if workers == 1:
        pin_server_process(settings)  # before the pools and the integrator start their threads
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
    pin_server_process(settings)
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


class ServerCpuError(ValueError):
    """`server_cpus` names a CPU this process may not run on, or this system cannot pin processes."""


# The lock file by which this process holds its CPU: open for as long as the process lives, so the
# operating system lets go of the claim when the process ends, however it ends.
_cpu_claim: list[IO[str]] = []


def pin_server_process(settings: Settings) -> int | None:
    """Keep every thread of this server process on one CPU of `settings.server_cpus`; returns that CPU
    (None when the setting is empty).

    Why: a server process runs Python on one core at a time anyway (one GIL), but its threads (event
    loop, redemption writer, pool workers) hand work and the GIL to each other thousands of times a
    second, and on a virtual machine waking a thread on another CPU is expensive. Measured on the 2-core
    development VMs: two threads waking each other cost 73 µs of CPU a round trip across CPUs and 28 µs
    on one; api_bench served 30-40 % more redemptions with the server pinned. PostgreSQL, the load and
    the other workers keep the other CPUs.

    Each worker process claims a CPU of its own through a lock file in the data directory; with more
    workers than CPUs listed, the rest share them. `serve_database` has checked the CPUs before any worker
    starts (`check_server_cpus`); workers inherit the affinity it checked against."""
    if not settings.server_cpus:
        return None
    cpu = _claim_cpu(settings.server_cpus, settings.data_dir / "server-cpus")
    tasks = Path("/proc/self/task")
    threads = [int(task.name) for task in tasks.iterdir()] if tasks.is_dir() else [0]
    for thread in threads:
        try:
            os.sched_setaffinity(thread, {cpu})
        except ProcessLookupError:  # that thread has ended meanwhile
            continue
    structlog.get_logger("api.serving").info("server_process_pinned", cpu=cpu, pid=os.getpid())
    return cpu


def check_server_cpus(settings: Settings) -> None:
    """Refuse, before anything starts, a `server_cpus` this process could not keep to."""
    if not settings.server_cpus:
        return
    if not hasattr(os, "sched_setaffinity"):
        raise ServerCpuError("AMIYAN_SERVER_CPUS needs Linux (sched_setaffinity); leave it empty here")
    allowed = os.sched_getaffinity(0)
    unknown = sorted(set(settings.server_cpus) - allowed)
    if unknown:
        raise ServerCpuError(
            f"AMIYAN_SERVER_CPUS names CPU {unknown[0]}, but this process may only run on CPUs "
            f"{','.join(str(cpu) for cpu in sorted(allowed))}"
        )


def exit_on_bad_server_cpus(settings: Settings) -> None:
    """For the commands that serve: a `server_cpus` they could not keep to ends them at once, with the
    reason, before any work (exit code 2, as for other bad options)."""
    import typer

    try:
        check_server_cpus(settings)
    except ServerCpuError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(2) from error


def _claim_cpu(cpus: list[int], directory: Path) -> int:
    import fcntl  # POSIX only, like sched_setaffinity

    directory.mkdir(parents=True, exist_ok=True)
    for cpu in cpus:
        claim = (directory / f"cpu-{cpu}.lock").open("a")
        try:
            fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            claim.close()
            continue
        _cpu_claim.append(claim)
        return cpu
    return cpus[os.getpid() % len(cpus)]
