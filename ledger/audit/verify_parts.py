"""Two working parts of the offline verifier (`ledger.audit.verify`).

KeyRing: the checkpoint keys an auditor trusts while walking the log, the pinned ones and those the log
introduces.

A key rotation is itself a log entry, the JSON event
    {"kind": "log_signing_key", "action": "added" | "retired", "verifier_key": "<C2SP verifier key>"}
and it takes effect only once a checkpoint signed by an already-trusted key covers that entry: a key
can never vouch for itself, and a retirement cannot be forged outside the signed log. `KeyRing.record` is
the replay handler for the event (it checks its shape), `cover(size)` applies what a verified checkpoint of
`size` now covers, and `verifiers()` are the keys to open the next checkpoint with.

hash_entries / BackgroundHashing: every entry's leaf hash checked against the stored one, and the tree's
compact range at each checkpoint size. This half of a verification is independent of the replay until the
verdict, so on a machine with `fork` it runs in a child process while the parent replays: on our 2-core
machine 210,000 entries cost ~0.2 s of hashing (leaves and tree, about half each) and ~0.15 s of replay,
which then overlap. The child inherits the export's bytes (no copy, no pickling) and hashes straight from
entries.bin's framing. Small jobs, and systems without `fork`, compute in-process; a child that dies is
redone in-process.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Final

from ledger.audit.export_format import LENGTH_PREFIX_BYTES, FramedEntries
from ledger.audit.merkle import HASH_SIZE_BYTES, CompactRange
from ledger.audit.replay import ReplayError
from ledger.audit.signed_note import NoteError, Verifier, parse_verifier_key
from ledger.audit.verify_state import KEY_ACTIONS, KeyEvent

__all__ = ["BACKGROUND_HASHING_ENTRIES_MIN", "BackgroundHashing", "HashedEntries", "KeyRing", "hash_entries"]

BACKGROUND_HASHING_ENTRIES_MIN: Final = 50_000
"""Below this many entries a child process costs more (fork, pipe) than it saves."""


class KeyRing:
    """Pinned keys plus the log's key events, applied up to the size a trusted checkpoint covers."""

    def __init__(self, pinned: Sequence[Verifier], events: Iterable[KeyEvent] = ()) -> None:
        self._trusted: dict[str, Verifier] = {key.encode(): key for key in pinned}
        self.events: list[KeyEvent] = list(events)  # every key event seen, in log order
        self._applied = 0  # events[:_applied] are in effect

    def record(self, index: int, fields: Mapping[str, object]) -> None:
        """Replay handler for `log_signing_key` events: remember the event; it is not trusted yet."""
        action, key = fields.get("action"), fields.get("verifier_key")
        if not isinstance(action, str) or action not in KEY_ACTIONS or not isinstance(key, str):
            raise ReplayError(
                index, "log_signing_key event needs action 'added' or 'retired' and a verifier_key"
            )
        try:
            verifier = parse_verifier_key(key)
        except NoteError as error:
            raise ReplayError(index, f"log_signing_key event: {error}") from None
        assert not self.events or self.events[-1][0] < index, "key events arrive in log order"
        self.events.append((index, action, verifier.encode()))

    def cover(self, size: int) -> None:
        """A checkpoint of `size` verified: the key events of entries below `size` take effect."""
        events = self.events
        while self._applied < len(events) and events[self._applied][0] < size:
            _, action, key = events[self._applied]
            if action == "added":
                self._trusted[key] = parse_verifier_key(key)
            else:
                self._trusted.pop(key, None)
            self._applied += 1

    def verifiers(self) -> list[Verifier]:
        return list(self._trusted.values())


@dataclass(frozen=True, slots=True)
class HashedEntries:
    """What hashing the entries from `start` on found.

    `mismatch`: the first entry whose recomputed leaf hash differs from the stored one, or that has no stored
    hash (then `mismatch >= stored_count`); None when all agree. `compacts`: for each requested checkpoint
    size, the compact range of the first `size` recomputed leaves.
    """

    start: int
    mismatch: int | None
    stored_count: int
    compacts: dict[int, CompactRange]


def hash_entries(
    entries: FramedEntries, stored: bytes, compact: CompactRange, sizes: Sequence[int]
) -> HashedEntries:
    """Leaf-hash `entries[compact.size:]`, compare with `stored` (leaf_hashes.bin: 32 bytes per entry), and
    extend `compact` to each of `sizes`."""
    start, end = compact.size, len(entries)
    computed = _leaf_hashes(entries.window(start, end))
    theirs = stored[start * HASH_SIZE_BYTES : end * HASH_SIZE_BYTES]  # extra stored hashes: the caller counts
    mismatch = None
    joined = b"".join(computed)
    if joined != theirs:  # the first difference, else the first entry without a stored hash
        common = len(theirs) // HASH_SIZE_BYTES
        spans = (slice(k * HASH_SIZE_BYTES, (k + 1) * HASH_SIZE_BYTES) for k in range(common))
        differences = (start + k for k, span in enumerate(spans) if joined[span] != theirs[span])
        mismatch = next(differences, start + common)
    wanted = sorted({size for size in sizes if start < size <= end})
    compacts = _compact_ranges(compact, computed, wanted) if wanted else {}
    return HashedEntries(start, mismatch, len(stored) // HASH_SIZE_BYTES, compacts)


def _leaf_hashes(entries: FramedEntries) -> list[bytes]:
    # Straight from the framing: one bytes slice per entry, no list of entries first.
    sha256, data, hashes = hashlib.sha256, entries.data, []
    for _, offset, count, length in entries.runs:
        start, stride = offset + LENGTH_PREFIX_BYTES, length + LENGTH_PREFIX_BYTES
        if count == 1:  # a log of varied lengths: no comprehension to set up per entry
            hashes.append(sha256(b"\x00" + data[start : start + length]).digest())
            continue
        ends = range(start, start + count * stride, stride)
        hashes += [sha256(b"\x00" + data[at : at + length]).digest() for at in ends]
    return hashes


def _compact_ranges(
    compact: CompactRange, leaves: Sequence[bytes], sizes: Sequence[int]
) -> dict[int, CompactRange]:
    """`compact` extended by `leaves`, as it stands at each of `sizes`.

    Built a level at a time (a list comprehension per level is a sixth faster than appending leaf by leaf,
    and the tree is half of the hashing). Level k holds the perfect subtrees of 2**k leaves, from the one
    holding the first new leaf; when that one's left sibling ends where `compact` ends, it is `compact`'s
    own level-k subtree, put in front. The range at size s is then, for each 1-bit k of s from the top,
    the level-k subtree just before s >> k: a new one, or one `compact` already had.
    """
    start = compact.size
    old = dict(zip(_one_bits(start), compact.hashes, strict=True))  # level -> its subtree in `compact`
    sha256 = hashlib.sha256
    levels: list[tuple[int, list[bytes]]] = []  # per level: the index of its first node, and its nodes
    first, nodes = start, list(leaves)
    while nodes:
        if first & 1:
            nodes, first = [old[len(levels)], *nodes], first - 1
        levels.append((first, nodes))
        pairs = iter(nodes)  # an odd last node has no parent yet: its sibling is past the end
        nodes = [sha256(b"\x01" + left + right).digest() for left, right in zip(pairs, pairs, strict=False)]
        first >>= 1
    ranges: dict[int, CompactRange] = {}
    for size in sizes:
        hashes: list[bytes] = []
        for level in _one_bits(size):
            index = (size >> level) - 1
            first, nodes = levels[level] if level < len(levels) else (index + 1, [])
            hashes.append(nodes[index - first] if first <= index else old[level])
        ranges[size] = CompactRange.from_hashes(size, hashes)
    return ranges


def _one_bits(number: int) -> list[int]:
    """The positions of the 1-bits of `number`, highest first: the levels of a compact range's subtrees."""
    return [bit for bit in reversed(range(number.bit_length())) if number >> bit & 1]


class BackgroundHashing:
    """`hash_entries` in a forked child while the caller works; `result()` waits for it.

    Fork, not spawn: the child inherits the entries already in memory instead of having them pickled to it,
    and sends back only the small `HashedEntries`. Use as a context manager so a child is never left behind.
    """

    def __init__(
        self, entries: FramedEntries, stored: bytes, compact: CompactRange, sizes: Sequence[int]
    ) -> None:
        self._job = (entries, stored, compact, sizes)
        self._result: HashedEntries | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._receiver: Connection | None = None
        if len(entries) - compact.size < BACKGROUND_HASHING_ENTRIES_MIN or not _can_fork():
            self._result = hash_entries(*self._job)
            return
        context = multiprocessing.get_context("fork")
        self._receiver, sender = context.Pipe(duplex=False)
        self._process = context.Process(target=_hash_and_send, args=(self._job, sender), daemon=True)
        self._process.start()
        sender.close()

    def result(self) -> HashedEntries:
        if self._result is None:
            assert self._receiver is not None
            try:
                received = self._receiver.recv()
                assert isinstance(received, HashedEntries)
                self._result = received
            except EOFError:  # the child died (killed, out of memory): do its work here
                self._result = hash_entries(*self._job)
            self._close(wait=True)
        return self._result

    def __enter__(self) -> BackgroundHashing:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._close(wait=False)

    def _close(self, *, wait: bool) -> None:
        # After its answer the child only exits, so it is waited for; otherwise (an error in the caller)
        # its answer is no longer wanted and it is stopped.
        if self._receiver is not None:
            self._receiver.close()
        if self._process is not None:
            if not wait and self._process.is_alive():
                self._process.terminate()
            self._process.join()
        self._receiver = self._process = None


def _hash_and_send(job: tuple[FramedEntries, bytes, CompactRange, Sequence[int]], sender: Connection) -> None:
    sender.send(hash_entries(*job))
    sender.close()


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()
