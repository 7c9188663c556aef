"""The audit log against a real PostgreSQL: events in the same transaction, integration, proofs, export."""

import random
import threading

import psycopg
import pytest

from ledger.accounts import Account, AccountType
from ledger.audit.events import decode_event
from ledger.audit.export_format import read_export
from ledger.audit.integrator import Integrator
from ledger.audit.log_store import prove_consistency, prove_inclusion, read_entries, tree_size
from ledger.audit.merkle import leaf_hash, root_from_leaf_hashes, verify_consistency, verify_inclusion
from ledger.audit.signed_note import (
    generate_signer,
    open_note,
    parse_checkpoint,
    parse_signer_key,
    parse_verifier_key,
)
from ledger.ids import new_id
from ledger.money import Asset
from ledger.results import CreateTransferResult as R
from ledger.service import create_transfers_in
from ledger.transfers import StoredTransfer, Transfer

ORIGIN = "test.amiyan.kz/audit"


@pytest.fixture(scope="module")
def log_keys():
    return generate_signer("test.amiyan.kz")


@pytest.fixture(scope="module")
def integrator(pool, log_keys):
    signer_key, verifier_key = log_keys
    integrator = Integrator(pool, ORIGIN, [parse_signer_key(signer_key)])
    integrator.introduce_keys([verifier_key])
    return integrator


def _drain(integrator, checkpoint=True):
    while integrator.integrate_once(checkpoint=False).entries:
        pass
    return integrator.integrate_once(checkpoint=checkpoint)


def _accounts(ledger, count=2):
    ids = [new_id() for _ in range(count)]
    ledger.create_accounts([Account(a, Asset.KZT, AccountType.OPERATOR) for a in ids])
    return ids


def test_every_committed_transfer_becomes_exactly_one_log_entry(ledger, pool, integrator):
    a, b = _accounts(ledger)
    transfers = [Transfer(new_id(), a, b, n + 1, Asset.KZT, 1) for n in range(300)]
    assert ledger.create_transfers(transfers) == [R.ok] * 300
    _drain(integrator)
    with pool.connection() as connection:
        size = tree_size(connection)
        logged = [decode_event(e) for e in read_entries(connection, 0, size)]
    ids = [e.id for e in logged if isinstance(e, StoredTransfer)]
    assert sorted(t.id for t in transfers) == sorted(i for i in ids if i in {t.id for t in transfers})
    assert len(ids) == len(set(ids))


def test_proofs_from_the_database_verify(ledger, pool, integrator):
    a, b = _accounts(ledger)
    ledger.create_transfers([Transfer(new_id(), a, b, 5, Asset.KZT, 1) for _ in range(700)])
    first = _drain(integrator)
    ledger.create_transfers([Transfer(new_id(), a, b, 5, Asset.KZT, 1) for _ in range(333)])
    second = _drain(integrator)
    with pool.connection() as connection:
        leaves = [leaf_hash(e) for e in read_entries(connection, 0, second.size)]
        root1, root2 = root_from_leaf_hashes(leaves[: first.size]), root_from_leaf_hashes(leaves)
        for index in random.Random(3).sample(range(second.size), 20):
            verify_inclusion(
                leaves[index], index, second.size, prove_inclusion(connection, index, second.size), root2
            )
        verify_consistency(
            first.size, second.size, root1, root2, prove_consistency(connection, first.size, second.size)
        )
        (previous,) = connection.execute(
            "SELECT previous_size FROM audit_checkpoints WHERE size = %s", (second.size,)
        ).fetchone()
    assert previous == first.size


def test_checkpoints_are_signed_notes_of_the_tree(ledger, pool, integrator, log_keys):
    a, b = _accounts(ledger)
    ledger.create_transfers([Transfer(new_id(), a, b, 1, Asset.KZT, 1)])
    result = _drain(integrator)
    with pool.connection() as connection:
        (note,) = connection.execute(
            "SELECT note FROM audit_checkpoints WHERE size = %s", (result.size,)
        ).fetchone()
        leaves = [leaf_hash(e) for e in read_entries(connection, 0, result.size)]
    text, _ = open_note(note, [parse_verifier_key(log_keys[1])])
    checkpoint = parse_checkpoint(text)
    assert (checkpoint.origin, checkpoint.size) == (ORIGIN, result.size)
    assert checkpoint.root_hash == root_from_leaf_hashes(leaves)


def test_the_log_refuses_changes_even_from_the_owner(owner_connection, ledger, integrator):
    a, b = _accounts(ledger)
    ledger.create_transfers([Transfer(new_id(), a, b, 1, Asset.KZT, 1)])
    _drain(integrator)
    for statement in (
        "UPDATE audit_segments SET entry_count = entry_count",
        "DELETE FROM audit_segments",
        "TRUNCATE audit_segments",
        "DELETE FROM audit_checkpoints",
        "UPDATE audit_nodes SET level = level",
    ):
        with pytest.raises(psycopg.Error) as caught:
            owner_connection.execute(statement)
        owner_connection.rollback()
        assert caught.value.sqlstate == "23001", statement


def test_a_gap_in_the_log_is_refused_by_the_database(owner_connection):
    size = owner_connection.execute("SELECT size FROM audit_tree").fetchone()[0]
    with pytest.raises(psycopg.Error) as caught:
        owner_connection.execute(
            "INSERT INTO audit_segments (first_index, entry_count, entries, leaf_hashes)"
            " VALUES (%s, 1, '\\x00', %s)",
            (size + 5, b"\x00" * 32),
        )
    owner_connection.rollback()
    assert (caught.value.sqlstate, caught.value.diag.constraint_name) == ("23514", "audit_segments_dense")


def test_concurrent_writers_with_rollbacks_log_exactly_the_committed_changes(ledger, pool, integrator):
    a, b = _accounts(ledger)
    rng = random.Random(11)
    committed, rolled_back = set(), set()
    lock = threading.Lock()

    def writer(seed: int) -> None:
        local = random.Random(seed)
        for _ in range(6):
            batch = [Transfer(new_id(), a, b, 1, Asset.KZT, 1) for _ in range(local.randint(1, 20))]
            rollback = local.random() < 0.4

            def work(connection, batch=batch, rollback=rollback):
                results = create_transfers_in(connection, batch)
                assert results == [R.ok] * len(batch)
                if rollback:
                    raise _Rollback

            try:
                ledger.unit_of_work.run(work)
                with lock:
                    committed.update(t.id for t in batch)
            except _Rollback:
                with lock:
                    rolled_back.update(t.id for t in batch)

    threads = [threading.Thread(target=writer, args=(rng.random(),)) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _drain(integrator)
    with pool.connection() as connection:
        logged = [decode_event(e) for e in read_entries(connection, 0, tree_size(connection))]
    logged_ids = [e.id for e in logged if isinstance(e, StoredTransfer) and e.id in committed | rolled_back]
    assert committed and rolled_back
    assert sorted(logged_ids) == sorted(committed)


class _Rollback(Exception):
    pass


def test_two_integrators_at_once_do_not_fork_the_log(ledger, pool, integrator, log_keys):
    a, b = _accounts(ledger)
    other = Integrator(pool, ORIGIN, [parse_signer_key(log_keys[0])])
    for _ in range(5):
        ledger.create_transfers([Transfer(new_id(), a, b, 1, Asset.KZT, 1) for _ in range(50)])
    errors: list[BaseException] = []

    def run(which):
        try:
            for _ in range(10):
                which.integrate_once(checkpoint=False)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(x,)) for x in (integrator, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with pool.connection() as connection:
        rows = connection.execute(
            "SELECT first_index, entry_count FROM audit_segments ORDER BY first_index"
        ).fetchall()
        size = tree_size(connection)
    position = 0
    for first_index, count in rows:
        assert first_index == position
        position += count
    assert position == size


def test_export_holds_the_log_and_its_checkpoints(tmp_path, ledger, pool, integrator, log_keys):
    from ledger.audit.export import export_log

    a, b = _accounts(ledger)
    ledger.create_transfers([Transfer(new_id(), a, b, 2, Asset.KZT, 1) for _ in range(10)])
    result = _drain(integrator)
    with pool.connection() as connection:
        count = export_log(connection, tmp_path, ORIGIN)
        connection.rollback()
    exported = read_export(tmp_path)
    assert count == len(exported.entries) == result.size
    assert [leaf_hash(e) for e in exported.entries] == exported.leaf_hashes
    assert exported.checkpoints[-1].size == result.size
    assert log_keys[1] in exported.verifier_keys


def test_a_crash_in_the_middle_of_an_integration_leaves_nothing_half_written(
    ledger, pool, integrator, monkeypatch
):
    import ledger.audit.integrator as integrator_module

    _drain(integrator)
    a, b = _accounts(ledger)
    ledger.create_transfers([Transfer(new_id(), a, b, 3, Asset.KZT, 1) for _ in range(600)])
    with pool.connection() as connection:
        before = connection.execute(
            "SELECT (SELECT size FROM audit_tree), (SELECT count(*) FROM audit_segments),"
            " (SELECT count(*) FROM audit_nodes), (SELECT count(*) FROM audit_inbox)"
        ).fetchone()

    def crash(*_args, **_kwargs):
        raise RuntimeError("power cut after the segment was written")

    monkeypatch.setattr(integrator_module, "_store_completed_nodes", crash)
    with pytest.raises(RuntimeError):
        integrator.integrate_once(checkpoint=True)
    with pool.connection() as connection:
        after = connection.execute(
            "SELECT (SELECT size FROM audit_tree), (SELECT count(*) FROM audit_segments),"
            " (SELECT count(*) FROM audit_nodes), (SELECT count(*) FROM audit_inbox)"
        ).fetchone()
    assert after == before, "a failed integration must leave the log and the inbox exactly as they were"
    monkeypatch.undo()
    result = _drain(integrator)
    assert result.size == before[0] + 600 + 2  # the transfers and the two accounts, integrated on retry
