"""The auditors' routes, on a database of their own (so every checkpoint in it is signed by this module's
key): the latest checkpoint verifies with the pinned key, entries read back byte for byte, proofs verify
against signed roots, and the export downloaded over HTTP passes the offline verifier; no other role
reaches any of it."""

import base64
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.credentials import Role
from api.database import create_pool, scratch_database, upgrade_database
from ledger.accounts import Account, AccountType
from ledger.audit.integrator import Integrator
from ledger.audit.merkle import leaf_hash, root_from_leaf_hashes, verify_consistency, verify_inclusion
from ledger.audit.signed_note import (
    generate_signer,
    open_note,
    parse_checkpoint,
    parse_signer_key,
    parse_verifier_key,
)
from ledger.audit.verify import verify_export
from ledger.ids import new_id
from ledger.money import Asset
from ledger.service import Ledger
from ledger.transfer_codes import TransferCode
from ledger.transfers import Transfer
from ledger.unit_of_work import UnitOfWork
from tests.api_world import role_keys
from tests.test_api_support import api_settings, bearer, running

ORIGIN = "amiyan.kz/social-wallet/audit"


class AuditedLog:
    """A ledger on its own database with an integrator signing checkpoints."""

    def __init__(self, url: str) -> None:
        self.pool = create_pool(url, "amiyan_app", 4)
        self.ledger = Ledger(UnitOfWork(self.pool))
        self.signer_key, self.verifier_key = generate_signer("amiyan.kz")
        self.integrator = Integrator(self.pool, ORIGIN, [parse_signer_key(self.signer_key)])
        self.integrator.introduce_keys([self.verifier_key])
        self.checkpoints: list[int] = []

    def transfers(self, count: int) -> None:
        source, target = new_id(), new_id()
        accounts = [Account(a, Asset.KZT, AccountType.OPERATOR) for a in (source, target)]
        self.ledger.create_accounts(accounts)
        self.ledger.create_transfers(
            [Transfer(new_id(), source, target, 100, Asset.KZT, TransferCode.OPERATOR) for _ in range(count)]
        )

    def checkpoint(self) -> int:
        while self.integrator.integrate_once(checkpoint=False).entries:
            pass
        size = self.integrator.integrate_once(checkpoint=True).checkpoint_size
        assert size is not None
        self.checkpoints.append(size)
        return size


@pytest.fixture(scope="module")
def log(database_url) -> Iterator[AuditedLog]:
    with scratch_database(database_url, "amiyan_audit_api") as url:
        upgrade_database(url)
        audited = AuditedLog(url)
        audited.transfers(40)
        audited.checkpoint()
        audited.transfers(300)  # past 256 leaves: proofs use stored subtrees too
        yield audited
        audited.pool.close()


@pytest.fixture(scope="module")
def client(log, tmp_path_factory) -> Iterator[TestClient]:
    url = log.pool.conninfo
    settings = api_settings(
        url, tmp_path_factory.mktemp("audit"), log_signer_key=log.signer_key, log_origin=ORIGIN
    )
    with running(settings) as test_client:
        log.checkpoint()  # after the app's start-up events (its issuer key) are in the log
        yield test_client


@pytest.fixture(scope="module")
def keys(log) -> dict[Role, str]:
    return role_keys(UnitOfWork(log.pool), new_id())


def _get(client, keys, path: str, role: Role = Role.auditor) -> Any:
    return client.get(path, headers=bearer(keys[role]))


def _root(note: str) -> tuple[int, bytes]:
    text = note.split("\n\n")[0] + "\n"
    checkpoint = parse_checkpoint(text)
    return checkpoint.size, checkpoint.root_hash


def test_the_latest_checkpoint_verifies_with_the_pinned_key(client, keys, log):
    answer = _get(client, keys, "/v1/audit/checkpoint")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    text, signers = open_note(answer.text, [parse_verifier_key(log.verifier_key)])
    assert parse_checkpoint(text).size == log.checkpoints[-1] and signers == ["amiyan.kz"]
    again = client.get(
        "/v1/audit/checkpoint", headers=bearer(keys[Role.auditor]) | {"If-None-Match": answer.headers["etag"]}
    )
    assert again.status_code == 304


def test_the_keys_are_the_logs_verifier_keys(client, keys, log):
    assert _get(client, keys, "/v1/audit/keys").json() == {
        "origin": ORIGIN,
        "verifier_keys": [log.verifier_key],
    }


def test_entries_read_page_by_page_hash_to_the_signed_root(client, keys, log):
    size, root = _root(_get(client, keys, "/v1/audit/checkpoint").text)
    entries, start = [], 0
    while start is not None:
        page = _get(client, keys, f"/v1/audit/entries?start={start}&limit=150").json()
        assert page["start"] == start and len(page["entries"]) <= 150
        entries += [base64.b64decode(e) for e in page["entries"]]
        start = page["next_start"]
    assert len(entries) == page["log_size"] >= size > 300
    assert root_from_leaf_hashes([leaf_hash(e) for e in entries[:size]]) == root


def test_reading_at_the_end_is_empty_and_past_it_is_not_found(client, keys):
    size = _get(client, keys, "/v1/audit/entries?start=0&limit=1").json()["log_size"]
    at_end = _get(client, keys, f"/v1/audit/entries?start={size}").json()
    assert (at_end["entries"], at_end["next_start"]) == ([], None)
    beyond = _get(client, keys, f"/v1/audit/entries?start={size + 1}")
    assert (beyond.status_code, beyond.json()["code"]) == (404, "beyond_log")
    assert _get(client, keys, "/v1/audit/entries?start=0&limit=1001").status_code == 422


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_an_inclusion_proof_verifies_against_the_checkpoint(client, keys, where):
    size, root = _root(_get(client, keys, "/v1/audit/checkpoint").text)
    index = {"first": 0, "middle": 257, "last": size - 1}[where]
    proof = _get(client, keys, f"/v1/audit/entries/{index}/inclusion-proof").json()
    assert (proof["index"], proof["tree_size"]) == (index, size) and _root(proof["checkpoint"]) == (
        size,
        root,
    )
    entry = base64.b64decode(proof["entry"])
    assert base64.b64decode(proof["leaf_hash"]) == leaf_hash(entry)
    verify_inclusion(leaf_hash(entry), index, size, [base64.b64decode(h) for h in proof["proof"]], root)


def test_an_inclusion_proof_outside_the_tree_is_not_found(client, keys):
    size, _ = _root(_get(client, keys, "/v1/audit/checkpoint").text)
    assert _get(client, keys, f"/v1/audit/entries/{size}/inclusion-proof").json()["code"] == "beyond_log"
    log_size = _get(client, keys, "/v1/audit/entries?start=0&limit=1").json()["log_size"]
    answer = _get(client, keys, f"/v1/audit/entries/0/inclusion-proof?tree_size={log_size + 1}")
    assert (answer.status_code, answer.json()["code"]) == (404, "beyond_log")


def test_a_consistency_proof_links_two_signed_checkpoints(client, keys, log):
    first, latest = log.checkpoints[0], log.checkpoints[-1]
    answer = _get(client, keys, f"/v1/audit/consistency-proof?first={first}").json()
    assert (answer["first"], answer["second"]) == (first, latest)
    old = _get(client, keys, f"/v1/audit/entries/0/inclusion-proof?tree_size={first}").json()["checkpoint"]
    new = answer["checkpoint"]
    proof = [base64.b64decode(h) for h in answer["proof"]]
    verify_consistency(first, latest, _root(old)[1], _root(new)[1], proof)
    backwards = _get(client, keys, f"/v1/audit/consistency-proof?first={latest}&second={first}")
    assert (backwards.status_code, backwards.json()["code"]) == (422, "sizes_out_of_order")


def test_the_export_downloaded_over_http_passes_the_offline_verifier(client, keys, log, tmp_path: Path):
    answer = _get(client, keys, "/v1/audit/export")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(answer.content), mode="r:gz") as archive:
        archive.extractall(tmp_path, filter="data")
    verdict = verify_export(tmp_path / "audit-export", [log.verifier_key], tmp_path / "state.json")
    assert verdict.ok, verdict.message
    assert verdict.size == log.checkpoints[-1] and int(answer.headers["x-audit-entries"]) >= verdict.size


def test_one_export_is_built_at_a_time_and_the_next_is_told_when_to_retry(client, keys):
    from api.routers.audit import EXPORTS_BUILT_AT_ONCE

    assert EXPORTS_BUILT_AT_ONCE.acquire(blocking=False)  # another download is being packed
    try:
        busy = _get(client, keys, "/v1/audit/export")
    finally:
        EXPORTS_BUILT_AT_ONCE.release()
    assert (busy.status_code, busy.json()["code"]) == (503, "export_busy")
    assert busy.headers["retry-after"] == "5"
    assert _get(client, keys, "/v1/audit/export").status_code == 200  # and the lock was let go after it


# --- who may do what -----------------------------------------------------------------------------------

AUDIT_PATHS = [
    "/v1/audit/checkpoint",
    "/v1/audit/entries?start=0",
    "/v1/audit/entries/0/inclusion-proof",
    "/v1/audit/consistency-proof?first=1",
    "/v1/audit/keys",
    "/v1/audit/export",
]


def test_the_cross_access_table_covers_every_audit_route(client):
    documented = {
        (method.upper(), path)
        for path, operations in client.get("/openapi.json").json()["paths"].items()
        if path.startswith("/v1/audit/")
        for method in operations
    }
    listed = {("GET", path.split("?")[0].replace("/0/", "/{index}/")) for path in AUDIT_PATHS}
    assert documented == listed


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.auditor])
def test_other_roles_are_refused_every_audit_route(client, keys, role):
    for path in AUDIT_PATHS:
        answer = _get(client, keys, path, role)
        assert (answer.status_code, answer.json()["code"]) == (403, "role_forbidden"), path
        assert "amiyan.kz+" not in answer.text and "entries" not in answer.json()


def test_no_credential_reads_nothing(client):
    for path in AUDIT_PATHS:
        answer = client.get(path)
        assert (answer.status_code, answer.json()["code"]) == (401, "credential_missing"), path
