"""The offline verifier: an auditor's export, a pinned key, and every way the log can be tampered with.

No database: each test builds its log with `LogBuilder` (the event encoders over ledger rows, leaf hashes
and consistency proofs from `merkle`, checkpoints signed as the integrator signs them) and writes it with
`write_export`.

The speed figure is not part of the suite; it is measured on a million-entry export built here:
    PYTHONPATH=. .venv/bin/python -c "from pathlib import Path; from tests.test_audit_verify import *;
        build_benchmark_export(Path('/tmp/bench_export'))"
    PYTHONPATH=. .venv/bin/python -c "from pathlib import Path; from tests.test_audit_verify import *;
        [print(v.message[:40], round(v.seconds, 2), int(v.entries_verified / v.seconds))
         for v in bench_verify(Path('/tmp/bench_export'))]"
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import batches
from ledger.accounts import AccountBalance, AccountFlags, AccountType
from ledger.audit import verify_parts
from ledger.audit.canonical import CanonicalValue
from ledger.audit.events import account_event, decode_event, json_event, transfer_event
from ledger.audit.export_format import (
    ExportedCheckpoint,
    ExportFormatError,
    FramedEntries,
    frame_entries,
    write_export,
)
from ledger.audit.merkle import CompactRange, consistency_proof, leaf_hash, root_from_leaf_hashes
from ledger.audit.replay import Replay, ReplayError
from ledger.audit.signed_note import (
    Checkpoint,
    Signer,
    format_checkpoint,
    generate_signer,
    parse_signer_key,
    sign_note,
)
from ledger.audit.verify import Verdict, verify_export
from ledger.clock import NANOSECONDS_PER_SECOND
from ledger.ids import ZERO_ID, new_id
from ledger.money import Asset
from ledger.transfers import StoredTransfer, Transfer, TransferFlags

ORIGIN = "test.amiyan.kz/audit"
BUSINESS_DAY = dt.date(2025, 3, 17)
T0 = 1_742_200_000 * NANOSECONDS_PER_SECOND
LIMITED = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
PENDING, POST, VOID = TransferFlags.PENDING, TransferFlags.POST_PENDING, TransferFlags.VOID_PENDING
AMOUNT_BYTE = 55  # in a transfer event: the second-lowest byte of the amount (bytes 49..56)


@dataclass(frozen=True)
class LogKey:
    signer: Signer
    verifier: str


def make_key(name: str = "test.amiyan.kz") -> LogKey:
    signer_key, verifier_key = generate_signer(name)
    return LogKey(parse_signer_key(signer_key), verifier_key)


class LogBuilder:
    """An audit log written the way the ledger writes it: one event per row, checkpoints with proofs."""

    def __init__(self, key: LogKey, origin: str = ORIGIN) -> None:
        self.key = key
        self.origin = origin
        self.entries: list[bytes] = []
        self.checkpoints: list[ExportedCheckpoint] = []
        self.clock = T0

    def tick(self) -> int:
        self.clock += 1_000
        return self.clock

    def account(self, flags: int = 0, asset: int = Asset.KZT) -> uuid.UUID:
        row = AccountBalance(
            new_id(), asset, AccountType.OPERATOR, flags, ZERO_ID, 0, 0, 0, 0, 0, 0, self.tick()
        )
        self.entries.append(account_event(row))
        return row.id

    def transfer(
        self,
        debit: uuid.UUID,
        credit: uuid.UUID,
        amount: int,
        flags: int = 0,
        *,
        pending_id: uuid.UUID = ZERO_ID,
        timeout_s: int = 0,
        transfer_id: uuid.UUID | None = None,
        asset: int = Asset.KZT,
        timestamp: int | None = None,
    ) -> uuid.UUID:
        row = StoredTransfer(
            transfer_id or new_id(), debit, credit, amount, asset, 1, int(flags), pending_id, timeout_s,
            ZERO_ID, 0, 0, BUSINESS_DAY, timestamp if timestamp is not None else self.tick(),
        )  # fmt: skip
        self.entries.append(transfer_event(row))
        return row.id

    def event(self, kind: str, **fields: CanonicalValue) -> None:
        self.entries.append(json_event(kind, dict(fields)))

    def checkpoint(self, *signers: Signer, origin: str | None = None) -> None:
        size = len(self.entries)
        previous = self.checkpoints[-1].size if self.checkpoints else 0
        hashes = [leaf_hash(entry) for entry in self.entries]
        text = format_checkpoint(Checkpoint(origin or self.origin, size, root_from_leaf_hashes(hashes)))
        proof = tuple(consistency_proof(hashes, previous, size)) if previous else ()
        note = sign_note(text, signers or [self.key.signer])
        self.checkpoints.append(ExportedCheckpoint(size, note, previous, proof))

    def write(
        self,
        directory: Path,
        entries: Sequence[bytes] | None = None,
        leaf_hashes: Sequence[bytes] | None = None,
        checkpoints: Sequence[ExportedCheckpoint] | None = None,
    ) -> Path:
        """Write the export; `leaf_hashes` defaults to the hashes of `entries` and may differ in count."""
        entries = list(self.entries if entries is None else entries)
        hashes = [leaf_hash(entry) for entry in entries] if leaf_hashes is None else list(leaf_hashes)
        write_export(
            directory, self.origin, entries, [leaf_hash(e) for e in entries], [], [self.key.verifier]
        )
        (directory / "leaf_hashes.bin").write_bytes(b"".join(hashes))
        lines = [_checkpoint_line(c) for c in (self.checkpoints if checkpoints is None else checkpoints)]
        (directory / "checkpoints.jsonl").write_text("".join(lines), encoding="utf-8")
        return directory


def _checkpoint_line(checkpoint: ExportedCheckpoint) -> str:
    # The same line write_export writes; kept here so a test can write checkpoints it has altered.
    record = {
        "consistency_proof": [base64.b64encode(h).decode() for h in checkpoint.consistency_proof],
        "note": checkpoint.note,
        "previous_size": checkpoint.previous_size,
        "size": checkpoint.size,
    }
    return json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n"


def business_log(key: LogKey, rounds: int = 4) -> LogBuilder:
    """A programme's day: fund, issue vouchers, reserve and redeem, void, expire; a checkpoint per round."""
    log = LogBuilder(key)
    treasury, fund, provider = log.account(), log.account(LIMITED), log.account()
    vouchers = [log.account(LIMITED) for _ in range(3)]
    log.transfer(treasury, fund, 10_000_000)
    for voucher in vouchers:
        log.transfer(fund, voucher, 100_000)
    log.checkpoint()
    for _ in range(rounds):
        for voucher in vouchers:
            held = log.transfer(voucher, provider, 5_000, PENDING, timeout_s=3600)
            log.transfer(voucher, provider, 4_500, POST, pending_id=held)
            released = log.transfer(voucher, provider, 1_000, PENDING, timeout_s=3600)
            log.transfer(voucher, provider, 1_000, VOID, pending_id=released)
            log.transfer(voucher, provider, 700)
        log.checkpoint()
    lapsing = log.transfer(vouchers[0], provider, 300, PENDING, timeout_s=1)
    log.clock += NANOSECONDS_PER_SECOND
    log.transfer(vouchers[0], provider, 300, VOID | TransferFlags.EXPIRED, pending_id=lapsing)
    log.checkpoint()
    return log


@pytest.fixture(scope="module")
def key() -> LogKey:
    return make_key()


@pytest.fixture(scope="module")
def log(key: LogKey) -> LogBuilder:
    return business_log(key)


def verify(directory: Path, key: LogKey, state: Path | None = None, incremental: bool = False) -> Verdict:
    return verify_export(directory, [key.verifier], state, incremental)


def failed(verdict: Verdict, phrase: str, first_bad_entry: int | None = None) -> None:
    assert not verdict.ok, verdict.message
    assert verdict.message.startswith("FAIL: "), verdict.message
    assert phrase in verdict.message, verdict.message
    assert verdict.first_bad_entry == first_bad_entry, verdict.message


# -- a clean export -----------------------------------------------------------------------------------


def test_a_clean_export_verifies(log: LogBuilder, key: LogKey, tmp_path: Path) -> None:
    verdict = verify(log.write(tmp_path / "export"), key)
    root = log.checkpoints[-1].note.split("\n")[2]
    assert verdict.ok, verdict.message
    assert verdict.message == (
        f"OK: {len(log.entries)} entries, {len(log.checkpoints)} checkpoints, root {root},"
        " balances replayed (6 accounts)"
    )
    assert verdict.size == verdict.entries_verified == len(log.entries)
    assert verdict.first_bad_entry is None


def test_entries_after_the_last_checkpoint_are_reported_not_failed(key: LogKey, tmp_path: Path) -> None:
    log = business_log(key, rounds=1)
    signed = len(log.entries)
    log.transfer(*_two_plain_accounts(log), 10)
    verdict = verify(log.write(tmp_path / "export"), key)
    assert verdict.ok, verdict.message
    assert verdict.size == signed and verdict.entries_verified == signed + 3
    assert f"3 entries after size {signed} are not yet covered by a checkpoint" in verdict.message


def _two_plain_accounts(log: LogBuilder) -> tuple[uuid.UUID, uuid.UUID]:
    return log.account(), log.account()


# -- tampering with entries ---------------------------------------------------------------------------


def _flip(entry: bytes, position: int) -> bytes:
    return entry[:position] + bytes([entry[position] ^ 0x10]) + entry[position + 1 :]


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_flipped_bit_is_named_by_entry(log: LogBuilder, key: LogKey, tmp_path: Path, where: str) -> None:
    index = {"first": 0, "middle": len(log.entries) // 2, "last": len(log.entries) - 1}[where]
    entries = list(log.entries)
    entries[index] = _flip(entries[index], 40)
    verdict = verify(log.write(tmp_path, entries, [leaf_hash(e) for e in log.entries]), key)
    failed(verdict, f"entry {index}: stored leaf hash does not match its bytes", index)


def _region(log: LogBuilder, index: int) -> str:
    """The '(previous, size]' of the checkpoint that first covers entry `index`."""
    previous = 0
    for checkpoint in log.checkpoints:
        if index < checkpoint.size:
            return f"the first bad region is entries ({previous}, {checkpoint.size}]"
        previous = checkpoint.size
    raise AssertionError("entry is not covered")


def test_a_changed_entry_with_a_recomputed_leaf_hash_fails_the_signed_root(
    log: LogBuilder, key: LogKey, tmp_path: Path
) -> None:
    index = len(log.entries) // 2
    entries = list(log.entries)
    entries[index] = _flip(entries[index], AMOUNT_BYTE)  # the amount: still a well-formed transfer
    verdict = verify(log.write(tmp_path, entries), key)
    failed(verdict, "root does not match the entries; " + _region(log, index))


def test_with_a_state_file_the_exact_changed_entry_is_named(
    log: LogBuilder, key: LogKey, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    assert verify(log.write(tmp_path / "before"), key, state).ok
    index = len(log.entries) // 2
    entries = list(log.entries)
    entries[index] = _flip(entries[index], AMOUNT_BYTE)
    verdict = verify(log.write(tmp_path / "after", entries), key, state)
    failed(verdict, f"; entry {index} differs from the one seen before", index)
    assert _region(log, index) in verdict.message


def test_a_deleted_entry_is_named(log: LogBuilder, key: LogKey, tmp_path: Path) -> None:
    index = len(log.entries) // 2
    entries = log.entries[:index] + log.entries[index + 1 :]
    verdict = verify(log.write(tmp_path, entries, [leaf_hash(e) for e in log.entries]), key)
    failed(verdict, f"entry {index}: stored leaf hash does not match its bytes", index)


def test_a_deleted_and_renumbered_entry_fails_the_signed_root(
    log: LogBuilder, key: LogKey, tmp_path: Path
) -> None:
    index = len(log.entries) // 2
    verdict = verify(log.write(tmp_path, log.entries[:index] + log.entries[index + 1 :]), key)
    failed(verdict, "root does not match the entries; " + _region(log, index))


def test_two_reordered_entries_are_named(log: LogBuilder, key: LogKey, tmp_path: Path) -> None:
    entries = list(log.entries)
    entries[10], entries[11] = entries[11], entries[10]
    failed(
        verify(log.write(tmp_path / "a", entries, [leaf_hash(e) for e in log.entries]), key), "entry 10:", 10
    )
    failed(
        verify(log.write(tmp_path / "b", entries), key),
        "root does not match the entries; " + _region(log, 10),
    )


def test_a_truncated_log_is_shorter_than_its_checkpoint(log: LogBuilder, key: LogKey, tmp_path: Path) -> None:
    kept = len(log.entries) - 3
    verdict = verify(log.write(tmp_path, log.entries[:kept]), key)
    failed(verdict, f"entries but the export holds only {kept}", kept)


def test_truncated_then_refilled_to_the_same_size_fails_the_signed_root(
    log: LogBuilder, key: LogKey, tmp_path: Path
) -> None:
    other = LogBuilder(log.key)
    for _ in range(4):
        other.account()
    kept = len(log.entries) - 4
    entries = log.entries[:kept] + other.entries
    failed(
        verify(log.write(tmp_path, entries), key), "root does not match the entries; " + _region(log, kept)
    )


def test_a_forged_entry_is_caught_with_or_without_its_leaf_hash(
    log: LogBuilder, key: LogKey, tmp_path: Path
) -> None:
    forger = LogBuilder(log.key)
    forger.account()
    forged = forger.entries[0]
    entries = [*log.entries[:12], forged, *log.entries[12:]]
    hashes = [leaf_hash(e) for e in log.entries]
    failed(verify(log.write(tmp_path / "a", entries, hashes[:12] + hashes[11:]), key), "entry 12:", 12)
    failed(
        verify(log.write(tmp_path / "b", entries), key),
        "root does not match the entries; " + _region(log, 12),
    )


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_single_byte_change_in_entries_bin_is_detected(
    log: LogBuilder, key: LogKey, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    clean = log.write(tmp_path_factory.mktemp("clean"))
    raw = (clean / "entries.bin").read_bytes()
    position = data.draw(st.integers(0, len(raw) - 1), label="position")
    xor = data.draw(st.integers(1, 255), label="xor")
    tampered = tmp_path_factory.mktemp("tampered")
    shutil.copytree(clean, tampered, dirs_exist_ok=True)
    (tampered / "entries.bin").write_bytes(
        raw[:position] + bytes([raw[position] ^ xor]) + raw[position + 1 :]
    )
    assert not verify(tampered, key).ok


@settings(max_examples=150, deadline=None)
@given(
    verified=st.integers(0, 70),
    new=st.integers(1, 70),
    marks=st.lists(st.integers(1, 70), max_size=5),
    damaged=st.integers(0, 140),
)
def test_hashing_gives_each_checkpoints_tree_and_the_first_bad_leaf(
    verified: int, new: int, marks: list[int], damaged: int
) -> None:
    # An incremental run's start (`verified` leaves already in a compact range), checkpoint sizes after it.
    entries = [index.to_bytes(2, "big") * (index % 3) for index in range(verified + new)]
    hashes = [leaf_hash(entry) for entry in entries]
    if damaged < len(hashes):
        hashes[damaged] = bytes(32)
    sizes = [verified + min(mark, new) for mark in marks]
    before = CompactRange()
    before.extend(leaf_hash(entry) for entry in entries[:verified])
    hashed = verify_parts.hash_entries(FramedEntries.of(entries), b"".join(hashes), before, sizes)
    for size in sizes:
        expected = CompactRange()
        expected.extend(leaf_hash(entry) for entry in entries[:size])
        assert hashed.compacts[size] == expected
    assert set(hashed.compacts) == set(sizes)
    assert hashed.mismatch == (damaged if verified <= damaged < len(hashes) else None)


def test_hashing_in_a_child_process_gives_the_same_verdicts(
    log: LogBuilder, key: LogKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    changed = list(log.entries)
    changed[30] = _flip(changed[30], AMOUNT_BYTE)
    exports = {
        "clean": log.write(tmp_path / "clean"),
        "flipped": log.write(tmp_path / "flipped", changed, [leaf_hash(e) for e in log.entries]),
        "recomputed": log.write(tmp_path / "recomputed", changed),
        "truncated": log.write(tmp_path / "truncated", log.entries[:-3]),
    }
    in_process = {name: verify(directory, key) for name, directory in exports.items()}
    monkeypatch.setattr(verify_parts, "BACKGROUND_HASHING_ENTRIES_MIN", 1)
    in_child = {name: verify(directory, key) for name, directory in exports.items()}
    for name in exports:
        assert (in_child[name].ok, in_child[name].message, in_child[name].first_bad_entry) == (
            in_process[name].ok, in_process[name].message, in_process[name].first_bad_entry
        ), name  # fmt: skip
    assert in_child["clean"].ok and not in_child["recomputed"].ok


# -- reading entries.bin ------------------------------------------------------------------------------


def _bytes_of_length(length: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=length, max_size=length)


@settings(max_examples=200, deadline=None)
@given(
    entries=st.lists(st.sampled_from([0, 1, 57, 125, 125, 125, 130]).flatmap(_bytes_of_length), max_size=40),
    data=st.data(),
)
def test_the_framing_gives_back_every_entry_as_written(entries: list[bytes], data: st.DataObject) -> None:
    framed = FramedEntries.of(entries)
    assert len(framed) == len(entries) and list(framed) == entries
    assert [framed[index] for index in range(-len(entries), len(entries))] == entries + entries
    start, stop = sorted(data.draw(st.integers(0, len(entries)), label="bound") for _ in range(2))
    assert list(framed.window(start, stop)) == framed[start:stop] == entries[start:stop]
    ends = [0]
    for entry in entries:
        ends.append(ends[-1] + 4 + len(entry))
    cut = data.draw(st.integers(0, len(framed.data)), label="cut")
    if cut in ends:
        assert list(frame_entries(framed.data[:cut])) == entries[: ends.index(cut)]
    else:
        with pytest.raises(ExportFormatError, match=r"^entries\.bin"):
            frame_entries(framed.data[:cut])


@pytest.mark.parametrize("transfers", [3, 1500])  # a short run of transfer events, and a long one
def test_an_entry_as_long_as_a_transfer_event_is_replayed_as_what_it_is(
    key: LogKey, tmp_path: Path, transfers: int
) -> None:
    log = LogBuilder(key)
    a, b = _two_plain_accounts(log)
    for _ in range(transfers):
        log.transfer(a, b, 10)
    log.event("note", text="")
    log.entries[-1] = json_event("note", {"text": "x" * (len(log.entries[-2]) - len(log.entries[-1]))})
    assert len(log.entries[-1]) == len(log.entries[-2])  # one run of equal lengths in entries.bin
    for _ in range(transfers):
        log.transfer(a, b, 10)
    log.checkpoint()
    assert verify(log.write(tmp_path / "note"), key).ok
    replay, decoded = Replay(), Replay()
    replay.apply_entries(0, log.entries)
    for index, entry in enumerate(log.entries):
        decoded.apply(index, decode_event(entry))
    assert replay.json_kinds == {"note": 1} and replay.accounts[a.bytes].debits_posted == 20 * transfers
    assert replay.to_state() == decoded.to_state()
    bad = len(log.entries) - 2
    log.entries.insert(bad, b"\x09" + log.entries[bad][1:])  # a transfer's bytes under an unknown tag
    log.checkpoints.clear()
    log.checkpoint()
    failed(
        verify(log.write(tmp_path / "unknown"), key), f"entry {bad}: undecodable event: unknown event", bad
    )


@pytest.mark.parametrize(
    ("fault", "phrase"),
    [
        ("repeated_id", "seen twice"),
        ("zero_amount", "amount 0 is not positive"),
        ("unknown_pending", "post of unknown pending transfer"),
    ],
)
def test_a_bad_entry_inside_a_long_run_of_transfers_is_named(
    key: LogKey, tmp_path: Path, fault: str, phrase: str
) -> None:
    log = LogBuilder(key)
    a, b = _two_plain_accounts(log)
    first = log.transfer(a, b, 10)
    log.event("note", text="x" * 100)  # a JSON event as long as a transfer event, inside the run
    assert len(log.entries[-1]) == len(log.entries[-2])
    for _ in range(1500):
        log.transfer(a, b, 10)
    bad = len(log.entries)
    if fault == "repeated_id":
        log.transfer(a, b, 10, transfer_id=first)
    elif fault == "zero_amount":
        log.transfer(a, b, 0)
    else:
        log.transfer(a, b, 5, POST, pending_id=new_id())
    for _ in range(1500):
        log.transfer(a, b, 10)
    log.checkpoint()
    failed(verify(log.write(tmp_path), key), f"entry {bad}: ", bad)
    assert phrase in verify(tmp_path, key).message


# -- tampering with checkpoints -----------------------------------------------------------------------


def test_a_checkpoint_from_another_origin_is_refused(key: LogKey, tmp_path: Path) -> None:
    log = business_log(key, rounds=1)
    log.checkpoints.pop()
    log.transfer(*_two_plain_accounts(log), 10)
    log.checkpoint(origin="other.example/log")
    failed(verify(log.write(tmp_path), key), "origin 'other.example/log' is not the log's origin")


def test_a_checkpoint_signed_by_an_unknown_key_is_refused(key: LogKey, tmp_path: Path) -> None:
    log = business_log(key, rounds=1)
    log.checkpoints.pop()
    log.checkpoint(make_key("impostor").signer)
    failed(verify(log.write(tmp_path), key), "unknown key")


def test_a_bad_signature_is_refused(log: LogBuilder, key: LogKey, tmp_path: Path) -> None:
    checkpoints = list(log.checkpoints)
    last = checkpoints[-1]
    text, signature = last.note.rsplit("\n\n", 1)
    lines = text.split("\n")
    lines[2] = lines[2][:-4] + ("AAA=" if lines[2][-4:] != "AAA=" else "AAE=")  # another root, old signature
    note = "\n".join(lines) + "\n\n" + signature
    checkpoints[-1] = ExportedCheckpoint(last.size, note, last.previous_size, last.consistency_proof)
    failed(verify(log.write(tmp_path, checkpoints=checkpoints), key), "invalid signature")


def test_a_rollback_to_a_smaller_checkpoint_is_refused(log: LogBuilder, key: LogKey, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    assert verify(log.write(tmp_path / "full"), key, state).ok
    older = log.checkpoints[2]
    rolled_back = log.write(tmp_path / "older", log.entries[: older.size], checkpoints=log.checkpoints[:3])
    assert verify(rolled_back, key).ok  # on its own it is a fine, older export
    failed(verify(rolled_back, key, state), f"rollback: checkpoint size {older.size} is smaller than")
    failed(verify(rolled_back, key, state, incremental=True), "rollback")


def test_a_fork_at_the_same_size_is_refused(key: LogKey, tmp_path: Path) -> None:
    honest, split = business_log(key, rounds=2), business_log(key, rounds=2)
    assert len(honest.entries) == len(split.entries) and honest.entries != split.entries
    state = tmp_path / "state.json"
    assert verify(honest.write(tmp_path / "honest"), key, state).ok
    assert verify(split.write(tmp_path / "split"), key).ok  # a consistent log, signed by the log's key
    failed(verify(tmp_path / "split", key, state), "fork: the checkpoint at size", 0)
    failed(verify(tmp_path / "split", key, state, incremental=True), "fork", 0)


def test_the_state_is_not_updated_by_a_failed_run(log: LogBuilder, key: LogKey, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    assert verify(log.write(tmp_path / "good"), key, state).ok
    saved = state.read_bytes()
    entries = list(log.entries)
    entries[3] = _flip(entries[3], AMOUNT_BYTE)
    assert not verify(log.write(tmp_path / "bad", entries), key, state).ok
    assert state.read_bytes() == saved


def test_the_log_origin_is_pinned(log: LogBuilder, key: LogKey, tmp_path: Path) -> None:
    export = log.write(tmp_path / "export")
    failed(verify_export(export, [key.verifier], None, origin="other.example/log"), "export manifest origin")
    state = tmp_path / "state.json"
    assert verify(export, key, state).ok
    _edit_state(state, lambda record: record.update(origin="other.example/log"))
    failed(
        verify(export, key, state), "is not the log's origin 'other.example/log'"
    )  # remembered from before
    failed(
        verify_export(export, [key.verifier], state, origin=ORIGIN), "state file is for origin 'other.example"
    )


def _edit_state(path: Path, change: Callable[[dict[str, Any]], object], tail: int = 0) -> None:
    """Change the state file's first line (its JSON) with `change`; `tail` bytes more or fewer after it."""
    line, sections = path.read_bytes().split(b"\n", 1)
    record = json.loads(line)
    change(record)
    sections = sections + bytes(tail) if tail >= 0 else sections[:tail]
    path.write_bytes(json.dumps(record).encode() + b"\n" + sections)


def _moved_between_sections(record: dict[str, Any], shrunk: str, grown: str, count: int) -> None:
    lengths = dict(record["sections"])
    lengths[shrunk] -= count
    lengths[grown] += count
    record["sections"] = [[name, lengths[name]] for name, _ in record["sections"]]


@pytest.mark.parametrize(
    ("damage", "tail", "phrase"),
    [
        (lambda record: record.update(size=record["size"] + 1), 0, "state compact_range does not match"),
        (
            lambda record: _moved_between_sections(record, "leaf_hashes", "replay.transfer_ids", 32),
            0,
            "leaf hashes for size",
        ),
        (
            lambda record: _moved_between_sections(record, "replay.transfer_ids", "replay.timestamps", 8),
            0,
            "not a whole number of 16-byte records",
        ),
        (lambda record: None, -1, "state sections declare"),  # a truncated file
        (lambda record: None, 1, "state sections declare"),
        (lambda record: record["sections"].pop(), 0, "state sections declare"),
        (lambda record: record.pop("replay"), 0, "state replay is not a dict"),
        (lambda record: record.update(format="amiyan-audit-verifier-state/1"), 0, "has the older format"),
    ],
)
def test_a_damaged_state_file_is_refused(
    log: LogBuilder,
    key: LogKey,
    tmp_path: Path,
    damage: Callable[[dict[str, Any]], object],
    tail: int,
    phrase: str,
) -> None:
    export, state = log.write(tmp_path / "export"), tmp_path / "state.json"
    assert verify(export, key, state).ok
    _edit_state(state, damage, tail)
    failed(verify(export, key, state, incremental=True), phrase)


def test_the_state_file_keeps_its_growing_parts_binary(log: LogBuilder, key: LogKey, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    assert verify(log.write(tmp_path / "export"), key, state).ok
    line, sections = state.read_bytes().split(b"\n", 1)
    record = json.loads(line)
    size = len(log.entries)
    assert record["size"] == size and record["format"] == "amiyan-audit-verifier-state/2"
    assert dict(record["sections"])["leaf_hashes"] == 32 * size
    assert sections.startswith(b"".join(leaf_hash(entry) for entry in log.entries))
    assert len(record["replay"]["accounts"]) == 6  # readable: every account's counters in the first line


# -- replaying the ledger's rules ---------------------------------------------------------------------


def test_a_double_post_is_caught_at_its_entry(key: LogKey, tmp_path: Path) -> None:
    log = LogBuilder(key)
    payer, payee = log.account(), log.account()
    held = log.transfer(payer, payee, 500, PENDING)
    log.transfer(payer, payee, 500, POST, pending_id=held)
    log.transfer(payer, payee, 500, POST, pending_id=held)
    log.checkpoint()
    failed(verify(log.write(tmp_path), key), "entry 4: post of", 4)
    assert "already resolved by a post at entry 3" in verify(tmp_path, key).message


def test_a_limit_breach_is_caught_at_its_entry(key: LogKey, tmp_path: Path) -> None:
    log = LogBuilder(key)
    fund, voucher, provider = log.account(), log.account(LIMITED), log.account()
    log.transfer(fund, voucher, 1_000)
    log.transfer(voucher, provider, 600, PENDING)
    log.transfer(voucher, provider, 600)  # 600 pending + 600 posted > 1,000 credited
    log.checkpoint()
    failed(verify(log.write(tmp_path), key), "entry 5: account", 5)
    assert "breaks debits_must_not_exceed_credits" in verify(tmp_path, key).message


def test_an_unbalanced_ledger_is_caught(log: LogBuilder, key: LogKey, tmp_path: Path) -> None:
    # Every logged transfer moves one amount between two accounts, so the log alone cannot unbalance the
    # books; a saved replay state that was edited can, and an incremental run starts from it.
    state = tmp_path / "state.json"
    log.write(tmp_path / "export")
    assert verify(tmp_path / "export", key, state).ok

    def one_more_debit(record: dict[str, Any]) -> None:
        record["replay"]["accounts"][0][4] += 1  # debits_posted of one account

    _edit_state(state, one_more_debit)
    failed(verify(tmp_path / "export", key, state, incremental=True), "unbalanced: sum of debits_posted")


def _rule_cases() -> list[tuple[str, str]]:
    return [
        ("unknown_account", "transfer on unknown account"),
        ("account_twice", "created twice"),
        ("transfer_id_twice", "seen twice"),
        ("zero_amount", "amount 0 is not positive"),
        ("same_account", "debit and credit are the same account"),
        ("asset_differs", "asset differs"),
        ("post_unknown_pending", "post of unknown pending transfer"),
        ("void_not_pending", "which is not a pending transfer"),
        ("double_void", "already resolved by a void"),
        ("post_exceeds_pending", "post amount 600 exceeds the pending amount 500"),
        ("void_other_amount", "void amount 400 differs from the pending amount 500"),
        ("expiry_other_amount", "expiry amount 400 differs from the pending amount 500"),
        ("post_other_accounts", "is on other accounts than the pending"),
        ("post_after_timeout", "after the pending transfer timed out"),
        ("expiry_before_timeout", "before the pending transfer's timeout"),
        ("closed_account", "transfer on a closed account"),
        ("credit_limit", "breaks credits_must_not_exceed_debits"),
        ("timestamp_reused", "was already used by another transfer"),
        ("limited_timestamp_backwards", "is not after"),
        ("bad_flags", "not a valid combination"),
    ]


NEEDS_A_PENDING_TRANSFER = frozenset(
    {"void_not_pending", "double_void", "post_exceeds_pending", "void_other_amount", "expiry_other_amount"}
    | {"post_other_accounts", "post_after_timeout", "expiry_before_timeout", "closed_account"}
)


def _violating_log(key: LogKey, rule: str) -> LogBuilder:
    """Three good entries (two accounts, one transfer), then the setup and the one entry breaking `rule`."""
    log = LogBuilder(key)
    a, b = log.account(), log.account()
    first = log.transfer(a, b, 100)
    held = ZERO_ID
    if rule in NEEDS_A_PENDING_TRANSFER:
        flags = PENDING | (TransferFlags.CLOSING_DEBIT if rule == "closed_account" else 0)
        held = log.transfer(a, b, 500, flags, timeout_s=1)
        if rule == "double_void":
            log.transfer(a, b, 500, VOID, pending_id=held)
    expiry = VOID | TransferFlags.EXPIRED
    late = log.clock + 2 * NANOSECONDS_PER_SECOND
    violations: dict[str, Callable[[], object]] = {
        "unknown_account": lambda: log.transfer(a, new_id(), 10),
        "account_twice": lambda: log.entries.append(log.entries[0]),
        "transfer_id_twice": lambda: log.transfer(a, b, 10, transfer_id=first),
        "zero_amount": lambda: log.transfer(a, b, 0),
        "same_account": lambda: log.transfer(a, a, 10),
        "asset_differs": lambda: log.transfer(a, b, 10, asset=Asset.DIGITAL_KZT),
        "post_unknown_pending": lambda: log.transfer(a, b, 10, POST, pending_id=new_id()),
        "void_not_pending": lambda: log.transfer(a, b, 100, VOID, pending_id=first),
        "double_void": lambda: log.transfer(a, b, 500, VOID, pending_id=held),
        "post_exceeds_pending": lambda: log.transfer(a, b, 600, POST, pending_id=held),
        "void_other_amount": lambda: log.transfer(a, b, 400, VOID, pending_id=held),
        "expiry_other_amount": lambda: log.transfer(a, b, 400, expiry, pending_id=held, timestamp=late),
        "post_other_accounts": lambda: log.transfer(b, a, 500, POST, pending_id=held),
        "post_after_timeout": lambda: log.transfer(a, b, 500, POST, pending_id=held, timestamp=late),
        "expiry_before_timeout": lambda: log.transfer(a, b, 500, expiry, pending_id=held),
        "closed_account": lambda: log.transfer(a, b, 10),
        "credit_limit": lambda: _credit_limited(log, a),
        "timestamp_reused": lambda: log.transfer(b, a, 10, timestamp=log.clock),
        "limited_timestamp_backwards": lambda: _backwards_on_a_limited_account(log, a),
        "bad_flags": lambda: log.transfer(a, b, 10, PENDING | POST, pending_id=first),
    }
    violations[rule]()
    return log


def _credit_limited(log: LogBuilder, payer: uuid.UUID) -> None:
    capped = log.account(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
    log.transfer(payer, capped, 10)


def _backwards_on_a_limited_account(log: LogBuilder, payer: uuid.UUID) -> None:
    limited = log.account(LIMITED)
    log.transfer(payer, limited, 100)
    log.transfer(limited, payer, 10, timestamp=log.clock - 500)


@pytest.mark.parametrize(("rule", "phrase"), _rule_cases())
def test_each_ledger_rule_is_checked_at_the_breaking_entry(
    key: LogKey, tmp_path: Path, rule: str, phrase: str
) -> None:
    log = _violating_log(key, rule)
    last = len(log.entries) - 1
    log.checkpoint()
    failed(verify(log.write(tmp_path), key), f"entry {last}: ", last)
    assert phrase in verify(tmp_path, key).message
    replay = Replay()  # the decoded-event path agrees with the fast path
    with pytest.raises(ReplayError, match=re.escape(phrase)) as raised:
        for index, entry in enumerate(log.entries):
            replay.apply(index, decode_event(entry))
    assert raised.value.index == last


@pytest.mark.parametrize(
    ("entry", "phrase"),
    [
        (b"\x09 not an event", "undecodable event: unknown event tag 0x09"),
        (b"\x01 short", "undecodable event: transfer event must be 125 bytes"),
        (json_event("log_signing_key", {"action": "renamed"}), "log_signing_key event needs action"),
        (b'{"kind": "x"}', "undecodable event: JSON event: not canonical"),
    ],
)
def test_an_entry_that_is_no_valid_event_is_named(
    key: LogKey, tmp_path: Path, entry: bytes, phrase: str
) -> None:
    log = business_log(key, rounds=1)
    log.entries.append(entry)
    log.checkpoint()
    failed(verify(log.write(tmp_path), key), f"entry {len(log.entries) - 1}: {phrase}", len(log.entries) - 1)


def test_replay_state_round_trips_and_continues(log: LogBuilder) -> None:
    whole = Replay()
    whole.apply_entries(0, log.entries)
    half = len(log.entries) // 2
    first = Replay()
    first.apply_entries(0, log.entries[:half])
    resumed = Replay.from_state(first.to_state())
    resumed.apply_entries(half, log.entries[half:])
    resumed.finish()
    assert resumed.to_state() == whole.to_state()


def test_json_events_are_counted_by_kind_and_can_carry_rules(key: LogKey) -> None:
    log = LogBuilder(key)
    log.event("notice_posted", notice="n-1", amount_tiyn=5_000)
    log.event("notice_posted", notice="n-2", amount_tiyn=5_000)
    log.event("policy_published", version=3)
    replay = Replay()
    seen: list[tuple[int, object]] = []
    replay.register("policy_published", lambda index, fields: seen.append((index, fields["version"])))
    replay.apply_entries(0, log.entries)
    assert dict(replay.json_kinds) == {"notice_posted": 2, "policy_published": 1}
    assert seen == [(2, 3)]


# The replay against the ledger's own decision engine: whatever `ledger.batches` decides and writes, the
# replay accepts, and its counters are the engine's counters. Operations are drawn as small tuples and
# turned into requests; most of them fail on ledger state (limits, closed accounts, double posts), and
# only what the engine inserted reaches the log, exactly as in production.
Operation = tuple[str, int, int, int, bool, bool]
_OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["single"] * 4 + ["pending"] * 2 + ["post"] * 2 + ["void", "later", "closing"]),
        st.sampled_from([0, 0, 0, 1, 2, 3]),  # debit account (mostly the funded one), or a pending to resolve
        st.integers(0, 3),  # credit account
        st.integers(1, 900),  # amount
        st.sampled_from([False] * 5 + [True]),  # linked to the next event of its request
        st.booleans(),  # pending with a one-second timeout
    ),
    min_size=5,
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(operations=_OPERATIONS, limits=st.lists(st.sampled_from([0, 2, 4]), min_size=4, max_size=4))
def test_the_replay_agrees_with_the_ledgers_decision_engine(
    operations: list[Operation], limits: list[int]
) -> None:
    log = LogBuilder(make_key())
    states = {}
    for flags in [0, *limits[1:]]:  # account 0 is an unlimited source of money
        account_id = log.account(flags)
        states[account_id] = batches.AccountState(
            (account_id, Asset.KZT, AccountType.OPERATOR, flags, 0, 0, 0, 0)
        )
    engine = _Engine(list(states), {account_id.int: state for account_id, state in states.items()})
    for request in _requests(operations, engine):
        log.entries.extend(transfer_event(row) for row in engine.decide(request))
    replay = Replay()
    replay.apply_entries(0, log.entries)
    replay.finish()
    for account_id, state in states.items():
        counters = replay.accounts[account_id.bytes]
        replayed = (
            counters.debits_pending,
            counters.debits_posted,
            counters.credits_pending,
            counters.credits_posted,
        )
        assert replayed == (
            state.debits_pending,
            state.debits_posted,
            state.credits_pending,
            state.credits_posted,
        )
        assert counters.flags == state.flags


class _Engine:
    """A sequential ledger: `ledger.batches` deciding one request after another, expiring on its clock."""

    def __init__(self, account_ids: list[uuid.UUID], states: dict[int, batches.AccountState]) -> None:
        self.account_ids = account_ids
        self.states = states  # the engine keys everything by UUID.int
        self.transfers: dict[int, StoredTransfer] = {}
        self.resolutions: dict[int, int] = {}
        self.pendings: list[StoredTransfer] = []
        self.clock = T0 + NANOSECONDS_PER_SECOND

    def decide(self, events: list[Transfer]) -> list[StoredTransfer]:
        expired = [
            p.id.int
            for p in self.pendings
            if p.timeout_s and p.id.int not in self.resolutions
            and p.timestamp + p.timeout_s * NANOSECONDS_PER_SECOND <= self.clock
        ]  # fmt: skip
        batch = batches.TransferBatch(
            self.states, self.transfers, self.resolutions, {}, self.clock, BUSINESS_DAY
        )
        used = batch.expire(expired)
        batch.run(events, timestamp_offset=used)
        self.resolutions = batch.resolutions
        self.clock += used + len(events)
        self.pendings += [row for row in batch.inserted if row.flags & PENDING]
        return batch.inserted


def _requests(operations: list[Operation], engine: _Engine) -> Iterator[list[Transfer]]:
    """The operations as requests; a generator, so each request is decided before the next is built."""
    request: list[Transfer] = []
    for kind, first, second, amount, linked, timeout in operations:
        flags = TransferFlags.LINKED if linked else 0
        if kind == "later":  # a new request, a second and a half later: one-second timeouts lapse
            yield request
            request = []
            engine.clock += 3 * NANOSECONDS_PER_SECOND // 2
        elif kind in ("post", "void") and engine.pendings:
            pending = engine.pendings[first % len(engine.pendings)]
            flags |= POST if kind == "post" else VOID
            amount = 1 + amount % pending.amount if kind == "post" else pending.amount  # partial or full
            request.append(Transfer(new_id(), ZERO_ID, ZERO_ID, amount, 0, 0, flags, pending_id=pending.id))
        elif kind in ("single", "pending", "closing"):
            if kind != "single":
                flags |= PENDING | (TransferFlags.CLOSING_DEBIT if kind == "closing" else 0)
            debit, credit = engine.account_ids[first], engine.account_ids[second]
            timeout_s = 1 if timeout and kind != "single" else 0
            request.append(
                Transfer(new_id(), debit, credit, amount, Asset.KZT, 1, flags, timeout_s=timeout_s)
            )
            if kind != "single":  # decided now, so later operations can name it
                yield request
                request = []
    yield request


# -- incremental runs ---------------------------------------------------------------------------------


def _grow(log: LogBuilder, transfers: int) -> None:
    payer, payee = log.account(), log.account()
    for _ in range(transfers):
        log.transfer(payer, payee, 10)
    log.checkpoint()


def test_an_incremental_run_verifies_only_the_new_entries(key: LogKey, tmp_path: Path) -> None:
    log = business_log(key, rounds=2)
    incremental, full = tmp_path / "incremental.json", tmp_path / "full.json"
    assert verify(log.write(tmp_path / "day1"), key, incremental).ok
    old = len(log.entries)
    _grow(log, 30)
    log.transfer(*_two_plain_accounts(log), 5)  # and an unsigned tail
    verdict = verify(log.write(tmp_path / "day2"), key, incremental, incremental=True)
    assert verdict.ok, verdict.message
    assert verdict.entries_verified == len(log.entries) - old
    assert f"incremental: {len(log.entries) - old} entries after size {old} verified" in verdict.message
    assert verify(tmp_path / "day2", key, full).ok
    assert incremental.read_bytes() == full.read_bytes()  # same state as a run from the first entry


def test_an_incremental_run_does_not_read_old_entries(key: LogKey, tmp_path: Path) -> None:
    # What incremental means: the saved prefix is trusted; damage to old entries' bytes is left to a full run.
    log = business_log(key, rounds=2)
    state = tmp_path / "state.json"
    assert verify(log.write(tmp_path / "day1"), key, state).ok
    _grow(log, 5)
    entries = list(log.entries)
    entries[3] = _flip(entries[3], 40)
    day2 = log.write(tmp_path / "day2", entries, [leaf_hash(e) for e in log.entries])
    assert verify(day2, key, state, incremental=True).ok
    failed(verify(day2, key, state), "entry 3: stored leaf hash does not match its bytes", 3)


def test_an_incremental_run_catches_rewritten_history_by_the_consistency_proof(
    key: LogKey, tmp_path: Path
) -> None:
    log = business_log(key, rounds=2)
    state = tmp_path / "state.json"
    assert verify(log.write(tmp_path / "day1"), key, state).ok
    honest_checkpoints = list(log.checkpoints)
    log.entries[7] = _flip(log.entries[7], AMOUNT_BYTE)  # the log rewrites an old transfer's amount ...
    _grow(log, 5)  # ... and signs new checkpoints over the rewritten tree
    checkpoints = [*honest_checkpoints, log.checkpoints[-1]]
    verdict = verify(log.write(tmp_path / "day2", checkpoints=checkpoints), key, state, incremental=True)
    failed(verdict, "not consistent with the checkpoint at size", 7)
    assert verdict.entries_verified == 0


def test_an_incremental_run_needs_the_checkpoint_it_stopped_at(key: LogKey, tmp_path: Path) -> None:
    log = business_log(key, rounds=2)
    state = tmp_path / "state.json"
    assert verify(log.write(tmp_path / "day1"), key, state).ok
    _grow(log, 5)
    without = [c for c in log.checkpoints if c.size != log.checkpoints[-2].size]
    failed(
        verify(log.write(tmp_path / "day2", checkpoints=without), key, state, incremental=True),
        "no checkpoint at size",
    )


# -- key rotation -------------------------------------------------------------------------------------


def test_a_key_introduced_by_the_log_signs_later_checkpoints(key: LogKey, tmp_path: Path) -> None:
    successor = make_key("test.amiyan.kz-2026")
    log = business_log(key, rounds=1)
    log.event("log_signing_key", action="added", verifier_key=successor.verifier)
    log.checkpoint()  # the old key covers the introduction ...
    _grow(log, 3)
    log.checkpoints[-1] = _resigned(log, successor)  # ... so the new one may sign from here on
    assert verify(log.write(tmp_path / "rotated"), key).ok
    log.event("log_signing_key", action="retired", verifier_key=key.verifier)
    _grow(log, 1)
    log.checkpoints[-1] = _resigned(log, successor)
    _grow(log, 1)  # signed by the retired key
    failed(verify(log.write(tmp_path / "retired"), key), "unknown key")


def test_a_key_cannot_vouch_for_itself(key: LogKey, tmp_path: Path) -> None:
    successor = make_key("test.amiyan.kz-2026")
    log = business_log(key, rounds=1)
    log.event("log_signing_key", action="added", verifier_key=successor.verifier)
    _grow(log, 2)
    log.checkpoints[-1] = _resigned(log, successor)  # no trusted checkpoint covered the introduction yet
    failed(verify(log.write(tmp_path), key), "unknown key")


def test_a_checkpoint_signed_by_a_never_introduced_key_is_refused(key: LogKey, tmp_path: Path) -> None:
    log = business_log(key, rounds=1)
    _grow(log, 2)
    log.checkpoints[-1] = _resigned(log, make_key("test.amiyan.kz-2026"))
    failed(verify(log.write(tmp_path), key), "unknown key")


def _resigned(log: LogBuilder, signer: LogKey) -> ExportedCheckpoint:
    last = log.checkpoints[-1]
    text = last.note[: last.note.rfind("\n\n") + 1]
    return ExportedCheckpoint(
        last.size, sign_note(text, [signer.signer]), last.previous_size, last.consistency_proof
    )


# -- the speed figure (not collected: run by hand, see the module docstring) ---------------------------


def build_benchmark_export(directory: Path, size: int = 1_000_000, checkpoints: int = 10) -> Path:
    """A programme's log of `size` entries: 1,000 accounts (a fund, 499 balance-limited vouchers, 500
    providers), each voucher funded once, then 125-byte redemptions from vouchers to providers; checkpoints
    spread evenly, the last at the end. Takes a minute for a million entries (the checkpoints' proofs)."""
    key = make_key()
    log = LogBuilder(key)
    fund = log.account()
    vouchers = [log.account(LIMITED) for _ in range(499)]
    providers = [log.account() for _ in range(500)]
    for voucher in vouchers:
        log.transfer(fund, voucher, 10**12)
    every = (size - len(log.entries)) // checkpoints
    for number in range(size - len(log.entries)):
        log.transfer(vouchers[number % 499], providers[(number * 7) % 500], 1 + number % 997)
        if (number + 1) % every == 0 or len(log.entries) == size:
            _checkpoint_once(log)
    log.write(directory)
    (directory / "pinned_key.txt").write_text(key.verifier + "\n")
    return directory


def _checkpoint_once(log: LogBuilder) -> None:
    if not log.checkpoints or log.checkpoints[-1].size != len(log.entries):
        log.checkpoint()


def bench_verify(directory: Path, runs: int = 5) -> list[Verdict]:
    """Verify a `build_benchmark_export` directory `runs` times (no state file); the command is in the
    module docstring."""
    pinned = [(directory / "pinned_key.txt").read_text().strip()]
    return [verify_export(directory, pinned, None) for _ in range(runs)]
