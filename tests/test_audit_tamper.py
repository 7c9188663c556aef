"""The tamper suite: damage the log inside a real PostgreSQL (as its owner, triggers disabled, in a
transaction that is rolled back afterwards), export it, and let the offline verifier find it."""

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from api.database import create_pool, scratch_database, upgrade_database
from ledger.accounts import Account, AccountType
from ledger.audit.events import transfer_event
from ledger.audit.export import export_log
from ledger.audit.inbox import frame_events, split_events
from ledger.audit.integrator import Integrator
from ledger.audit.merkle import leaf_hash
from ledger.audit.signed_note import (
    Checkpoint,
    format_checkpoint,
    generate_signer,
    parse_checkpoint,
    parse_signer_key,
    sign_note,
)
from ledger.audit.verify import verify_export
from ledger.ids import ZERO_ID, new_id
from ledger.money import Asset
from ledger.service import Ledger
from ledger.transfers import StoredTransfer, Transfer
from ledger.unit_of_work import UnitOfWork

ORIGIN = "tamper.amiyan.kz/audit"
LOG_TABLES = ("audit_segments", "audit_checkpoints")


class Log:
    def __init__(self, url: str, signer_key: str, verifier_key: str, size: int) -> None:
        self.url, self.signer_key, self.verifier_key, self.size = url, signer_key, verifier_key, size


@pytest.fixture(scope="module")
def log(database_url: str) -> Iterator[Log]:
    """A fresh database holding a log of several batches and checkpoints."""
    with scratch_database(database_url, "amiyan_tamper") as url:
        yield _build_log(url)


def _build_log(url: str) -> Log:
    upgrade_database(url)
    signer_key, verifier_key = generate_signer("tamper.amiyan.kz")
    pool = create_pool(url, "amiyan_app", 4)
    ledger = Ledger(UnitOfWork(pool))
    integrator = Integrator(pool, ORIGIN, [parse_signer_key(signer_key)])
    integrator.introduce_keys([verifier_key])
    accounts = [new_id() for _ in range(4)]
    ledger.create_accounts([Account(a, Asset.KZT, AccountType.OPERATOR) for a in accounts])
    for round_number in range(4):
        ledger.create_transfers(
            [
                Transfer(new_id(), accounts[n % 4], accounts[(n + 1) % 4], 100 + n, Asset.KZT, 1)
                for n in range(90)
            ]
        )
        integrator.integrate_once(checkpoint=False)
        size = integrator.integrate_once(checkpoint=True).size
        assert round_number >= 0
    pool.close()
    return Log(url, signer_key, verifier_key, size)


def _export_after(log: Log, directory: Path, damage: Callable[[psycopg.Connection], None] | None) -> Path:
    """Damage the stored log in a transaction, export what is then stored, roll the damage back."""
    with psycopg.connect(log.url) as owner:
        for table in LOG_TABLES:
            owner.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER USER").format(sql.Identifier(table)))
        if damage is not None:
            damage(owner)
        export_log(owner, directory, ORIGIN, snapshot=False)
        owner.rollback()
    return directory


def _rewrite_entries(
    edit: Callable[[list[bytes], list[bytes]], None],
) -> Callable[[psycopg.Connection], None]:
    """Replace the stored log by one segment holding `edit`-ed entries and leaf hashes."""

    def damage(owner: psycopg.Connection) -> None:
        entries: list[bytes] = []
        hashes: list[bytes] = []
        for blob, stored in owner.execute(
            "SELECT entries, leaf_hashes FROM audit_segments ORDER BY first_index"
        ):
            entries.extend(split_events(bytes(blob)))
            data = bytes(stored)
            hashes.extend(data[i : i + 32] for i in range(0, len(data), 32))
        edit(entries, hashes)
        owner.execute("DELETE FROM audit_segments")
        owner.execute(
            "INSERT INTO audit_segments (first_index, entry_count, entries, leaf_hashes)"
            " VALUES (0, %s, %s, %s)",
            (len(entries), frame_events(entries), b"".join(hashes)),
        )

    return damage


def _flip_bit(position: str) -> Callable[[list[bytes], list[bytes]], None]:
    def edit(entries: list[bytes], hashes: list[bytes]) -> None:
        index = {"first": 0, "middle": len(entries) // 2, "last": len(entries) - 1}[position]
        damaged = bytearray(entries[index])
        damaged[len(damaged) // 2] ^= 0x04
        entries[index] = bytes(damaged)

    return edit


def _change_and_rehash(entries: list[bytes], hashes: list[bytes]) -> None:
    index = len(entries) // 2
    damaged = bytearray(entries[index])
    damaged[-9] ^= 0x01
    entries[index] = bytes(damaged)
    hashes[index] = leaf_hash(entries[index])


def _delete_middle(entries: list[bytes], hashes: list[bytes]) -> None:
    del entries[len(entries) // 2]
    del hashes[len(hashes) // 2]


def _reorder_two(entries: list[bytes], hashes: list[bytes]) -> None:
    a, b = len(entries) // 3, len(entries) // 3 + 7
    entries[a], entries[b] = entries[b], entries[a]
    hashes[a], hashes[b] = hashes[b], hashes[a]


def _truncate_tail(entries: list[bytes], hashes: list[bytes]) -> None:
    del entries[-25:]
    del hashes[-25:]


def _forged_transfer(timestamp: int) -> bytes:
    return transfer_event(
        StoredTransfer(
            new_id(), new_id(), new_id(), 1_000_000, 1, 1, 0, ZERO_ID, 0, ZERO_ID, 0, 0,
            dt.date(2026, 11, 23), timestamp,
        )
    )  # fmt: skip


def _truncate_and_append(entries: list[bytes], hashes: list[bytes]) -> None:
    for n in range(25):
        entries[-25 + n] = _forged_transfer(10**18 + n)
        hashes[-25 + n] = leaf_hash(entries[-25 + n])


def _insert_forged(entries: list[bytes], hashes: list[bytes]) -> None:
    forged = _forged_transfer(10**18)
    entries.insert(len(entries) // 2, forged)
    hashes.insert(len(hashes) // 2, leaf_hash(forged))


def _resign_latest(log: Log, origin: str, signer_key: str, corrupt: bool = False):
    def damage(owner: psycopg.Connection) -> None:
        size, note = owner.execute(
            "SELECT size, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1"
        ).fetchone()
        text = note.split("\n\n")[0] + "\n"
        checkpoint = parse_checkpoint(text)
        new_text = format_checkpoint(Checkpoint(origin, checkpoint.size, checkpoint.root_hash, ()))
        forged = sign_note(new_text, [parse_signer_key(signer_key)])
        if corrupt:
            head, _, signature = forged.rpartition(" ")
            body = signature.strip()
            forged = head + " " + body[:10] + ("A" if body[10] != "A" else "B") + body[11:] + "\n"
        owner.execute("UPDATE audit_checkpoints SET note = %s WHERE size = %s", (forged, size))

    return damage


def test_the_untouched_log_verifies(log, tmp_path):
    directory = _export_after(log, tmp_path / "export", None)
    verdict = verify_export(directory, [log.verifier_key], tmp_path / "state.json")
    assert verdict.ok, verdict.message
    assert verdict.size == log.size


@pytest.mark.parametrize(
    ("case", "edit", "phrase", "first_bad"),
    [
        ("flip a bit in the first entry", _flip_bit("first"), "leaf hash", "first"),
        ("flip a bit in a middle entry", _flip_bit("middle"), "leaf hash", "middle"),
        ("flip a bit in the last entry", _flip_bit("last"), "leaf hash", "last"),
        ("change an entry and recompute its hash", _change_and_rehash, "root does not match", None),
        ("delete a middle entry and renumber", _delete_middle, "root does not match", None),
        ("reorder two entries", _reorder_two, "root does not match", None),
        ("truncate the tail", _truncate_tail, "but the export holds only", "truncated"),
        ("truncate and append different entries", _truncate_and_append, "root does not match", None),
        ("insert a forged entry", _insert_forged, "root does not match", None),
    ],
)
def test_a_damaged_log_is_caught(log, tmp_path, case, edit, phrase, first_bad):
    directory = _export_after(log, tmp_path / "export", _rewrite_entries(edit))
    verdict = verify_export(directory, [log.verifier_key], tmp_path / "state.json")
    assert not verdict.ok, case
    assert verdict.message.startswith("FAIL"), verdict.message
    assert phrase.lower() in verdict.message.lower(), (case, verdict.message)
    if first_bad is not None:
        named = {"first": 0, "middle": log.size // 2, "last": log.size - 1, "truncated": log.size - 25}
        assert verdict.first_bad_entry == named[first_bad], (case, verdict.message)


def test_a_deleted_middle_segment_is_caught(log, tmp_path):
    def delete_segment(owner):
        owner.execute(
            "DELETE FROM audit_segments WHERE first_index = "
            "(SELECT first_index FROM audit_segments ORDER BY first_index OFFSET 2 LIMIT 1)"
        )

    verdict = verify_export(
        _export_after(log, tmp_path / "e", delete_segment), [log.verifier_key], tmp_path / "s"
    )
    assert not verdict.ok and verdict.message.startswith("FAIL"), verdict.message
    assert "root does not match the entries; the first bad region is entries" in verdict.message


def test_a_checkpoint_from_another_origin_is_caught(log, tmp_path):
    damage = _resign_latest(log, "evil.example/log", log.signer_key)
    verdict = verify_export(_export_after(log, tmp_path / "e", damage), [log.verifier_key], tmp_path / "s")
    assert not verdict.ok and "origin" in verdict.message, verdict.message


def test_a_checkpoint_signed_by_an_unknown_key_is_caught(log, tmp_path):
    stranger, _ = generate_signer("tamper.amiyan.kz")
    damage = _resign_latest(log, ORIGIN, stranger)
    verdict = verify_export(_export_after(log, tmp_path / "e", damage), [log.verifier_key], tmp_path / "s")
    assert not verdict.ok and "unknown key" in verdict.message, verdict.message


def test_a_bad_signature_is_caught(log, tmp_path):
    damage = _resign_latest(log, ORIGIN, log.signer_key, corrupt=True)
    verdict = verify_export(_export_after(log, tmp_path / "e", damage), [log.verifier_key], tmp_path / "s")
    assert not verdict.ok and "signature" in verdict.message, verdict.message


def test_a_rollback_to_an_older_log_is_refused_between_runs(log, tmp_path):
    state = tmp_path / "state.json"
    assert verify_export(_export_after(log, tmp_path / "new", None), [log.verifier_key], state).ok

    def drop_latest_checkpoint(owner):
        owner.execute("DELETE FROM audit_checkpoints WHERE size = (SELECT max(size) FROM audit_checkpoints)")

    # The log as it stood one checkpoint earlier: internally consistent, but older than what was seen.
    older = _export_after(log, tmp_path / "old", drop_latest_checkpoint)
    verdict = verify_export(older, [log.verifier_key], state)
    assert not verdict.ok and "rollback" in verdict.message.lower(), verdict.message


def test_a_key_rotation_is_followed_by_an_auditor_who_pinned_the_old_key(database_url, tmp_path):
    old_signer, old_verifier = generate_signer("rotate.amiyan.kz")
    new_signer, new_verifier = generate_signer("rotate.amiyan.kz")
    with scratch_database(database_url, "amiyan_rotate") as url:
        upgrade_database(url)
        pool = create_pool(url, "amiyan_app", 4)
        ledger = Ledger(UnitOfWork(pool))
        accounts = [new_id(), new_id()]
        ledger.create_accounts([Account(a, Asset.KZT, AccountType.OPERATOR) for a in accounts])

        def write_and_checkpoint(integrator):
            ledger.create_transfers([Transfer(new_id(), *accounts, 5, Asset.KZT, 1) for _ in range(20)])
            while integrator.integrate_once(checkpoint=False).entries:
                pass
            integrator.integrate_once(checkpoint=True)

        before = Integrator(pool, ORIGIN, [parse_signer_key(old_signer)])
        before.introduce_keys([old_verifier])
        write_and_checkpoint(before)
        # Rotation: the new key is logged, and checkpoints carry both signatures for a while.
        during = Integrator(pool, ORIGIN, [parse_signer_key(new_signer), parse_signer_key(old_signer)])
        during.introduce_keys([new_verifier])
        write_and_checkpoint(during)
        after = Integrator(pool, ORIGIN, [parse_signer_key(new_signer)])
        write_and_checkpoint(after)
        with pool.connection() as connection:
            export_log(connection, tmp_path / "export", ORIGIN)
            connection.rollback()
        pool.close()
    verdict = verify_export(tmp_path / "export", [old_verifier], tmp_path / "state.json")
    assert verdict.ok, verdict.message

    # Without the rotation entry (or with only the new key pinned from the old log's start) it fails.
    alone = verify_export(tmp_path / "export", [new_verifier], tmp_path / "other-state.json")
    assert not alone.ok and "unknown key" in alone.message, alone.message
