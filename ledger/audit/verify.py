"""Offline verification of an audit export (DESIGN §5): every leaf, the tree, every checkpoint, no rollback,
and a replay of the events that recomputes every balance. No database.

    verify_export(directory, pinned_keys, state_path, incremental=False) -> Verdict

A run walks the checkpoints in order; each covers the entries since the previous one, the segment
(previous_size, size]. For each checkpoint:
  1. its note verifies with a trusted key, its origin is the log's, its size matches its record, sizes
     strictly increase, and its proof starts at the previous checkpoint's size
  2. every entry of the segment hashes to its stored leaf hash (first mismatch: "entry N: ...")
  3. the consistency proof from the previous checkpoint verifies
  4. the root of the first `size` leaves equals the signed root (else the segment is named as the first bad
     region; with a state file, the exact entry that changed since the last run is named too)
  5. the segment replays without breaking a ledger rule (`ledger.audit.replay`)
  6. `log_signing_key` events of the segment take effect: a key a log entry adds (or retires) is trusted
     (or dropped) once a checkpoint that an already-trusted key signed covers that entry
Entries after the last checkpoint, the unsigned tail, get 2 and 5; the verdict says they are not yet covered.

Trust starts from `pinned_keys` (C2SP verifier keys) and the log's origin: `origin` if given, else the one in
the state file, else the manifest's (trust on first use, then remembered in the state file).

With a state file (`ledger.audit.verify_state`) a run also refuses a rollback (the newest checkpoint is
smaller than one seen before) and a fork (a checkpoint at the size seen before with another root), and needs
the checkpoint at that size in the export, from which the chain of consistency proofs continues. The state is
rewritten only when the verdict is OK. `incremental=True` starts from the saved tree and replay and reads
only the entries after the saved size: the old entries are not hashed again; the consistency proof from the
saved root is what proves the new checkpoints extend them.

How it runs: the hashing (leaf hashes and the tree at each checkpoint size) and the replay (with its
whole-log totals) do not depend on each other, so the replay runs while a forked child hashes
(`verify_parts.BackgroundHashing`); both are done ahead, straight from entries.bin's bytes, and the walk
raises what they found in log order: the verdict is the one a plain entry-by-entry walk would give.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ledger.audit.export_format import AuditExport, ExportedCheckpoint, ExportFormatError, read_export
from ledger.audit.merkle import EMPTY_ROOT, HASH_SIZE_BYTES, CompactRange, ProofError, verify_consistency
from ledger.audit.replay import Replay, ReplayError
from ledger.audit.signed_note import (
    Checkpoint,
    NoteError,
    Verifier,
    open_note,
    parse_checkpoint,
    parse_verifier_key,
)
from ledger.audit.verify_parts import BackgroundHashing, HashedEntries, KeyRing
from ledger.audit.verify_state import StateError, VerifierState, load_state, save_state

__all__ = ["Verdict", "verify_export"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one verification run.

    `message` is the one-line verdict ("OK: ..." or "FAIL: ..."); `size` the largest checkpoint verified;
    `first_bad_entry` the index of the first entry known to be wrong, when the failure names one (entries
    are numbered from 0, as leaves are in a proof; "(P, S]" in a message is entries P to S - 1);
    `entries_verified` how many entries this run hashed and replayed (only the new ones when incremental).
    """

    ok: bool
    message: str
    size: int
    first_bad_entry: int | None
    entries_verified: int
    seconds: float


def verify_export(
    directory: Path,
    pinned_keys: Sequence[str],
    state_path: Path | None,
    incremental: bool = False,
    *,
    origin: str | None = None,
) -> Verdict:
    """Verify the export in `directory`; see the module docstring for what is checked and in which order."""
    started = time.perf_counter()
    run = _Run(pinned_keys, state_path, incremental, origin)
    try:
        message, ok, first_bad = run.verify(directory), True, None
    except _Failure as failure:
        message, ok, first_bad = f"FAIL: {failure.message}", False, failure.first_bad_entry
    return Verdict(ok, message, run.size, first_bad, run.entries_verified, time.perf_counter() - started)


class _Failure(Exception):
    def __init__(self, message: str, first_bad_entry: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.first_bad_entry = first_bad_entry


class _Run:
    """One verification: the export, what is trusted, the tree so far, the replay."""

    def __init__(
        self, pinned_keys: Sequence[str], state_path: Path | None, incremental: bool, origin: str | None
    ) -> None:
        self.pinned_keys = pinned_keys
        self.state_path = state_path
        self.incremental = incremental
        self.origin = origin or ""
        self.size = 0  # the largest checkpoint verified; the tree below covers exactly this many leaves
        self.root = EMPTY_ROOT
        self.entries_verified = 0
        self.checkpoints = 0
        self.export: AuditExport  # read first thing in `verify`
        self.previous: VerifierState | None = None
        self.resumed_from = 0  # the saved size an incremental run starts after (0: from the first entry)
        self.saved_size_seen = False
        self.compact = CompactRange()  # the tree of the first `size` entries
        self.keys = KeyRing([])
        self.replay = Replay()
        # Found ahead of the checkpoint walk (the replay while a child process hashes), raised in log order.
        self.replay_error: ReplayError | None = None
        self.totals_error: ReplayError | None = None  # the whole-log checks at the end (`Replay.finish`)
        self.replay_snapshot: dict[str, object] | None = None  # the replay at the newest checkpoint's size
        self.hashed = HashedEntries(0, None, 0, {})

    def verify(self, directory: Path) -> str:
        self._prepare(directory)
        export = self.export
        sizes = [record.size for record in export.checkpoints]
        with BackgroundHashing(export.entries, export.leaf_hash_bytes, self.compact, sizes) as hashing:
            self._replay_ahead(sizes)
            self.hashed = hashing.result()
        for number, record in enumerate(self.export.checkpoints, start=1):
            if record.size < self.resumed_from:
                continue  # verified by an earlier run
            if self.resumed_from and not self.saved_size_seen:
                self._check_resumed_base(number, record)
            else:
                self._checkpoint(number, record)
        if self.previous is not None and self.previous.size and not self.saved_size_seen:
            raise _Failure(
                f"the export has no checkpoint at size {self.previous.size}, the size verified before, so it"
                " cannot be shown to extend what was verified"
            )
        tail = len(export.entries) - self.size
        self._check_leaves(self.size, len(export.entries))
        self._check_replay(self.size, len(export.entries))
        if self.totals_error is not None:
            raise _Failure(f"replay: {self.totals_error}", self.totals_error.index)
        self._check_counts(directory)
        if self.state_path is not None:
            try:
                save_state(self.state_path, self._new_state())
            except OSError as error:  # the export is fine, but the next run could not detect a rollback
                raise _Failure(f"state file: cannot write {self.state_path}: {error}") from None
        return self._summary(tail)

    # -- set-up ------------------------------------------------------------------------------------

    def _prepare(self, directory: Path) -> None:
        try:
            self.export = read_export(directory)
        except ExportFormatError as error:
            raise _Failure(f"export: {error}") from None
        try:
            pinned = [parse_verifier_key(key) for key in self.pinned_keys]
            self.previous = load_state(self.state_path) if self.state_path is not None else None
        except NoteError as error:
            raise _Failure(f"pinned key: {error}") from None
        except StateError as error:
            raise _Failure(f"state file: {error}") from None
        if not pinned:
            raise _Failure("no pinned key: nothing to verify checkpoints with")
        self._check_origin()
        self._check_rollback()
        previous = self.previous
        if self.incremental and previous is not None and previous.size:
            self._resume(previous, pinned)
        else:
            self.keys = KeyRing(pinned)
        self.replay.register("log_signing_key", self.keys.record)

    def _check_origin(self) -> None:
        previous = self.previous
        self.origin = self.origin or (previous.origin if previous is not None else self.export.origin)
        if self.export.origin != self.origin:
            raise _Failure(
                f"export manifest origin {self.export.origin!r} is not the log's origin {self.origin!r}"
            )
        if previous is not None and previous.origin != self.origin:
            raise _Failure(f"state file is for origin {previous.origin!r}, not {self.origin!r}")

    def _check_rollback(self) -> None:
        if self.previous is None:
            return
        newest = max((record.size for record in self.export.checkpoints), default=0)
        if newest < self.previous.size:
            raise _Failure(
                f"rollback: checkpoint size {newest} is smaller than {self.previous.size} seen before"
            )

    def _resume(self, previous: VerifierState, pinned: list[Verifier]) -> None:
        try:
            self.replay = Replay.from_state(previous.replay)
        except ValueError as error:
            raise _Failure(f"state file: {error}") from None
        if len(self.export.entries) < previous.size:
            raise _Failure(
                f"the export holds {len(self.export.entries)} entries, fewer than the {previous.size}"
                " verified before",
                len(self.export.entries),
            )
        self.keys = KeyRing(pinned, previous.key_events)
        self.keys.cover(previous.size)
        self.compact = previous.compact()
        self.size, self.root, self.resumed_from = previous.size, previous.root, previous.size

    def _replay_ahead(self, sizes: Sequence[int]) -> None:
        # Replay everything now, then the whole-log totals, remembering the first error; the checkpoint walk
        # raises it in its turn, after the checks of the entries before it (the totals' error comes last).
        # The state to save is the replay at the newest checkpoint.
        entries, start = self.export.entries, self.resumed_from
        newest = max((size for size in sizes if start < size <= len(entries)), default=start)
        try:
            self.replay.apply_entries(start, entries.window(start, newest))
            self.replay_snapshot = self.replay.to_state() if self.state_path is not None else None
            self.replay.apply_entries(newest, entries.window(newest, len(entries)))
        except ReplayError as error:
            self.replay_error = error
            return
        try:
            self.replay.finish()
        except ReplayError as error:
            self.totals_error = error

    # -- checkpoints -------------------------------------------------------------------------------

    def _checkpoint(self, number: int, record: ExportedCheckpoint) -> None:
        checkpoint = self._open(number, record)
        size, previous_size = checkpoint.size, self.size
        where = f"checkpoint {number} (size {size})"
        if size <= previous_size:
            raise _Failure(
                f"{where}: sizes must strictly increase, but the previous checkpoint has size {previous_size}"
            )
        if record.previous_size != previous_size:
            raise _Failure(
                f"{where}: its consistency proof starts at size {record.previous_size}, not at the previous"
                f" checkpoint's size {previous_size}"
            )
        available = len(self.export.entries)
        self._check_leaves(previous_size, min(size, available))
        if size > available:
            raise _Failure(f"{where}: covers {size} entries but the export holds only {available}", available)
        self._check_tree(where, record, checkpoint, previous_size)
        if self.previous is not None and size == self.previous.size:
            self._check_fork(checkpoint)
        self._check_replay(previous_size, size)
        self.keys.cover(size)
        self.size, self.root, self.compact = size, checkpoint.root_hash, self.hashed.compacts[size]
        self.checkpoints += 1

    def _check_tree(
        self, where: str, record: ExportedCheckpoint, checkpoint: Checkpoint, previous_size: int
    ) -> None:
        # The proof first: in an incremental run it is what shows the signed history still holds the old tree.
        if previous_size:
            try:
                verify_consistency(
                    previous_size, checkpoint.size, self.root, checkpoint.root_hash, record.consistency_proof
                )
            except ProofError as error:
                changed = self._first_change_since_last_run()
                raise _Failure(
                    f"{where}: not consistent with the checkpoint at size {previous_size}: {error}"
                    + _named(changed),
                    changed,
                ) from None
        if self.hashed.compacts[checkpoint.size].root() != checkpoint.root_hash:
            changed = self._first_change_since_last_run()
            raise _Failure(
                f"{where}: root does not match the entries; the first bad region is entries"
                f" ({previous_size}, {checkpoint.size}] (indexes {previous_size} to {checkpoint.size - 1})"
                + _named(changed),
                changed,
            )

    def _check_resumed_base(self, number: int, record: ExportedCheckpoint) -> None:
        # An incremental run continues from the checkpoint it stopped at; the export must still hold it.
        if record.size != self.resumed_from:
            raise _Failure(
                f"the export has no checkpoint at size {self.resumed_from}, the size verified before, so it"
                " cannot be shown to extend what was verified"
            )
        self._check_fork(self._open(number, record))

    def _open(self, number: int, record: ExportedCheckpoint) -> Checkpoint:
        where = f"checkpoint {number} (size {record.size})"
        try:
            text, _ = open_note(record.note, self.keys.verifiers())
            checkpoint = parse_checkpoint(text)
        except NoteError as error:
            raise _Failure(f"{where}: {error}") from None
        if checkpoint.origin != self.origin:
            raise _Failure(f"{where}: origin {checkpoint.origin!r} is not the log's origin {self.origin!r}")
        if checkpoint.size != record.size:
            raise _Failure(f"{where}: the signed note is for size {checkpoint.size}")
        return checkpoint

    def _check_fork(self, checkpoint: Checkpoint) -> None:
        previous = self.previous
        assert previous is not None and checkpoint.size == previous.size
        self.saved_size_seen = True
        if checkpoint.root_hash != previous.root:
            changed = self._first_change_since_last_run()
            raise _Failure(
                f"fork: the checkpoint at size {checkpoint.size} has root {_b64(checkpoint.root_hash)},"
                f" but root {_b64(previous.root)} was seen before{_named(changed)}",
                changed,
            )

    # -- entries -----------------------------------------------------------------------------------

    def _check_leaves(self, start: int, end: int) -> None:
        mismatch = self.hashed.mismatch
        if mismatch is None or not start <= mismatch < end:
            return
        if mismatch < self.hashed.stored_count:
            raise _Failure(f"entry {mismatch}: stored leaf hash does not match its bytes", mismatch)
        raise _Failure(f"entry {mismatch}: leaf_hashes.bin holds no hash for it", mismatch)

    def _check_replay(self, start: int, end: int) -> None:
        error = self.replay_error
        if error is not None and error.index is not None and error.index < end:
            raise _Failure(str(error), error.index)
        self.entries_verified += end - start

    def _first_change_since_last_run(self) -> int | None:
        # Failure path only: it hashes the old entries again.
        return self.previous.first_changed_entry(self.export.entries) if self.previous is not None else None

    def _check_counts(self, directory: Path) -> None:
        entries, hashes = len(self.export.entries), len(self.export.leaf_hash_bytes) // HASH_SIZE_BYTES
        if hashes != entries:
            raise _Failure(
                f"leaf_hashes.bin holds {hashes} hashes for {entries} entries", min(hashes, entries)
            )
        try:
            declared = json.loads((directory / "manifest.json").read_text(encoding="utf-8")).get("size")
        except (OSError, ValueError, AttributeError):
            declared = None
        if declared != entries:
            raise _Failure(f"manifest.json says {declared} entries but entries.bin holds {entries}", entries)

    # -- results -----------------------------------------------------------------------------------

    def _new_state(self) -> VerifierState:
        previous, snapshot = self.previous, self.replay_snapshot
        assert snapshot is not None and snapshot.get("size") == self.size, (
            "replay saved at the newest checkpoint"
        )
        kept = previous.leaf_hashes if previous is not None and self.resumed_from else b""
        return VerifierState(
            origin=self.origin,
            size=self.size,
            root=self.root,
            compact_range=self.compact.to_bytes(),
            leaf_hashes=kept
            + self.export.leaf_hash_bytes[self.resumed_from * HASH_SIZE_BYTES : self.size * HASH_SIZE_BYTES],
            key_events=tuple(event for event in self.keys.events if event[0] < self.size),
            replay=snapshot,
        )

    def _summary(self, tail: int) -> str:
        message = (
            f"OK: {self.size} entries, {self.checkpoints} checkpoints, root {_b64(self.root)},"
            f" balances replayed ({len(self.replay.accounts)} accounts)"
        )
        if tail:
            message += f"; {tail} entries after size {self.size} are not yet covered by a checkpoint"
        if self.resumed_from:
            message += (
                f"; incremental: {self.entries_verified} entries after size {self.resumed_from} verified"
            )
        return message


def _named(changed: int | None) -> str:
    return "" if changed is None else f"; entry {changed} differs from the one seen before"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
