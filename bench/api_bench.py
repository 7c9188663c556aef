"""HTTP API benchmark (not a test): single redemptions over HTTP from 32 concurrent clients.

    .venv/bin/python bench/api_bench.py [--redemptions 12000] [--clients 32] [--workers 1] [--server-cpus 1]

In a fresh scratch database (on AMIYAN_DATABASE_URL, else the embedded server): one canteen programme,
16 canteens each with a terminal and an API key, and a voucher per redemption. Then it starts the real
service (`amiyan serve`) on a free local port and 32 client threads (keep-alive connections, one request
in flight each) send pre-signed single redemptions — `POST /v1/providers/{id}/redemptions`, with the API
key, the terminal's signature, the Ed25519 token check, policy, limits and receipt all on. Every answer is
checked `ok`. The server runs as a deployment on a small virtual machine should: each server process kept to
one CPU (AMIYAN_SERVER_CPUS; by default the machine's last CPU, or last N for N workers; see api/serving.py,
`pin_server_process`). The load generator runs on the same machine; the line before the last says how the
CPU of each redemption split between it, the server and a local PostgreSQL. The last line is exactly
`api_bench: redemptions_per_s=<int> p50_ms=<float> p99_ms=<float>`.
"""

import argparse
import base64
import datetime as dt
import gc
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.credentials import CredentialKind, Role, create_credential
from api.database import create_pool, resolve_database_url, scratch_database, upgrade_database
from api.logs import configure_logging
from api.settings import Settings
from bench.machine_speed import machine_speed
from bench.process_cpu import children, cpu_seconds, postgres_pids
from bench.voucher_bench import bench_issue, setup
from bench.workers import run_threads
from ledger.audit.canonical import canonical_bytes
from ledger.ids import new_id
from ledger.service import Ledger
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.paseto import keypair_from_seed
from ledger.vouchers.requests import RedemptionRequest, request_document
from ledger.vouchers.service import VoucherLedger
from ledger.vouchers.signing import Purpose, sign_message
from ledger.vouchers.states import RedemptionPhase
from ledger.vouchers.tokens import IssuerSigner

READY_S_MAX = 60.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _bodies(
    terminals: list, keys: list[str], providers: list, tokens: list[str]
) -> list[tuple[str, str, bytes]]:
    """(path, api key, body) per redemption, signed by the terminal as a device would, before the clock."""
    work = []
    for n, token in enumerate(tokens):
        index = n % len(terminals)
        terminal_id, secret_key, _ = terminals[index]
        request = RedemptionRequest(
            id=new_id(), terminal_id=terminal_id, phase=RedemptionPhase.SINGLE, amount_tiyn=60_000,
            requested_at_ms=time.time_ns() // 1_000_000 + 60_000, token=token,
        )  # fmt: skip
        document = request_document(request)
        signature = sign_message(secret_key, Purpose.REDEMPTION_REQUEST, canonical_bytes(document))
        body = json.dumps({"request": document, "signature": base64.b64encode(signature).decode()}).encode()
        work.append((f"/v1/providers/{providers[index]}/redemptions", keys[index], body))
    return work


def _serve(url: str, port: int, data_dir: str, workers: int, cpus: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, AMIYAN_DATABASE_URL=url, AMIYAN_DATA_DIR=data_dir, AMIYAN_LOG_LEVEL="warning",
               AMIYAN_RATE_LIMIT_REQUESTS_PER_S="1000000", AMIYAN_RATE_LIMIT_BURST="1000000",
               AMIYAN_POOL_SIZE_MAX="16", AMIYAN_LOG_FORMAT="json", AMIYAN_SERVER_CPUS=cpus)  # fmt: skip
    command = [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--workers", str(workers)]
    server = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + READY_S_MAX
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the server did not start")


def _load(
    port: int, work: list[tuple[str, str, bytes]], clients: int
) -> tuple[float, list[float], list[str]]:
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        for path, key, body in work[n::clients]:
            started = time.perf_counter()
            connection.request("POST", path, body, {"Authorization": f"Bearer {key}",
                                                    "Content-Type": "application/json"})  # fmt: skip
            response = connection.getresponse()
            answer = response.read()
            mine.append(time.perf_counter() - started)
            if response.status != 200 or json.loads(answer)["results"][0]["result"] != "ok":
                with lock:
                    failures.append(f"{response.status} {answer[:200]!r}")
        with lock:
            latencies.extend(mine)

    return run_threads(clients, client), latencies, failures


def _cpu_split(before: tuple, after: tuple, count: int) -> str:
    """CPU per redemption of the load generator (this process), the server and a local PostgreSQL."""
    own = (after[0].user + after[0].system - before[0].user - before[0].system) / count * 1e6
    parts = [f"load generator {own:.0f} µs"]
    for name, start, end in (("server", before[1], after[1]), ("PostgreSQL", before[2], after[2])):
        parts.append(
            f"{name} {(end - start) / count * 1e6:.0f} µs"
            if start is not None and end is not None
            else f"{name} ?"
        )
    return "CPU per redemption: " + ", ".join(parts) + " (PostgreSQL: the local server's processes)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redemptions", type=int, default=12_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="server processes (amiyan serve --workers)")
    parser.add_argument(
        "--server-cpus",
        help="AMIYAN_SERVER_CPUS for the server (default: the last --workers CPUs; '' for none)",
    )
    args = parser.parse_args()
    if args.server_cpus is None:
        args.server_cpus = ",".join(str(cpu) for cpu in sorted(os.sched_getaffinity(0))[-args.workers :])
    configure_logging("json", "warning")
    settings = Settings()
    server_url = resolve_database_url(settings)
    print(machine_speed(server_url), flush=True)
    with scratch_database(server_url, "amiyan_api_bench") as url, tempfile.TemporaryDirectory() as data_dir:
        upgrade_database(url)
        pool = create_pool(url, settings.database_role, size_max=8)
        unit_of_work = UnitOfWork(pool)
        vouchers = VoucherLedger(unit_of_work, IssuerSigner(keypair_from_seed(os.urandom(32))))
        programme, terminals = setup(Ledger(unit_of_work), vouchers)
        providers = [provider for _, _, provider in terminals]
        now = dt.datetime.now(dt.UTC)
        keys = [
            create_credential(
                unit_of_work, CredentialKind.api_key, Role.provider, f"till {n}", now, provider
            ).secret
            for n, provider in enumerate(providers)
        ]
        _, tokens = bench_issue(vouchers, programme, args.redemptions + 500, 1000)
        vouchers.close()
        pool.close()
        work = _bodies(terminals, keys, providers, tokens)
        # The load generator's own full collections (50-70 ms, all 32 clients stopped) would count as the
        # server's latency: freeze what is built so far, and collect young objects less often.
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 20, 10)
        port = _free_port()
        server = _serve(url, port, data_dir, args.workers, args.server_cpus)
        try:
            _load(port, work[:500], args.clients)  # warm up: connections, caches, plans
            server_pids, database_pids = children(server.pid), postgres_pids()
            before = (os.times(), cpu_seconds(server_pids), cpu_seconds(database_pids))
            elapsed, latencies, failures = _load(port, work[500:], args.clients)
            # A backend started meanwhile counts from its start; one that ended meanwhile is missed.
            database_pids = sorted(set(database_pids) | set(postgres_pids()))
            after = (os.times(), cpu_seconds(server_pids), cpu_seconds(database_pids))
        finally:
            server.terminate()
            server.wait(30)
    assert not failures, failures[:3]
    latencies.sort()
    per_s = int(len(latencies) / elapsed)
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    pinned = f"server on CPU {args.server_cpus}" if args.server_cpus else "server not pinned"
    print(
        f"{len(latencies)} redemptions in {elapsed:.1f} s from {args.clients} clients ({pinned})", flush=True
    )
    print(_cpu_split(before, after, len(latencies)), flush=True)
    print(f"api_bench: redemptions_per_s={per_s} p50_ms={p50:.1f} p99_ms={p99:.1f}")


if __name__ == "__main__":
    main()
