"""What the offline verifier remembers between runs: the state file.

The file is what makes rollback and fork detectable: a later export must extend what was verified before.
It is JSON (format "amiyan-audit-verifier-state/1"):

    origin          the log's origin
    size, root      the largest checkpoint verified: its tree size and base64 root hash
    compact_range   base64 of `CompactRange.to_bytes()` at that size (an incremental run appends to it)
    leaf_hashes     base64 of the size x 32 leaf hashes seen (names the exact entry a later log changed)
    key_events      [[entry index, "added" | "retired", verifier key], ...]: the log's key events before
                    `size`, all covered by the checkpoint at `size`: an incremental run knows the trusted keys
    replay          the replay state at `size` (`ledger.audit.replay_state`)

Written to a temporary file and renamed over the old one, so a crash never leaves half a state file.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

from ledger.audit.merkle import HASH_SIZE_BYTES, CompactRange, leaf_hash

__all__ = ["STATE_FORMAT", "KeyEvent", "StateError", "VerifierState", "load_state", "save_state"]

STATE_FORMAT: Final = "amiyan-audit-verifier-state/1"
KEY_ACTIONS: Final = frozenset({"added", "retired"})

_T = TypeVar("_T")

KeyEvent = tuple[int, str, str]
"""(entry index, "added" or "retired", C2SP verifier key) from a `log_signing_key` log entry."""


class StateError(ValueError):
    """The state file is unreadable or inconsistent; the message says which part."""


@dataclass(frozen=True, slots=True)
class VerifierState:
    """The verifier's memory of the largest checkpoint it verified (see the module docstring)."""

    origin: str
    size: int
    root: bytes
    compact_range: bytes
    leaf_hashes: bytes
    key_events: tuple[KeyEvent, ...]
    replay: dict[str, object]

    def compact(self) -> CompactRange:
        return CompactRange.from_bytes(self.compact_range)

    def first_changed_entry(self, entries: Sequence[bytes]) -> int | None:
        """The first of `entries` whose leaf hash differs from the one saved (a missing entry counts)."""
        saved = self.leaf_hashes
        for index in range(min(self.size, len(entries))):
            offset = index * HASH_SIZE_BYTES
            if leaf_hash(entries[index]) != saved[offset : offset + HASH_SIZE_BYTES]:
                return index
        return len(entries) if len(entries) < self.size else None


def load_state(path: Path) -> VerifierState | None:
    """The state in `path`, or None when there is no file yet; raises StateError when it is malformed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise StateError(f"cannot read {path}: {error}") from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise StateError(f"{path} is not JSON: {error}") from None
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise StateError(f"{path} is not a {STATE_FORMAT} file")
    state = VerifierState(
        origin=_typed(data, "origin", str),
        size=_typed(data, "size", int),
        root=_base64(data, "root"),
        compact_range=_base64(data, "compact_range"),
        leaf_hashes=_base64(data, "leaf_hashes"),
        key_events=_key_events(data.get("key_events")),
        replay=_typed(data, "replay", dict),
    )
    _check_consistent(state)
    return state


def save_state(path: Path, state: VerifierState) -> None:
    """Write `state` to `path` atomically (temporary file, fsync, rename)."""
    record = {
        "format": STATE_FORMAT,
        "origin": state.origin,
        "size": state.size,
        "root": _b64(state.root),
        "compact_range": _b64(state.compact_range),
        "leaf_hashes": _b64(state.leaf_hashes),
        "key_events": [list(event) for event in state.key_events],
        "replay": state.replay,
    }
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as out:
        # One dumps and one write: json.dump streams small chunks, several times slower on 50 MB.
        out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def _check_consistent(state: VerifierState) -> None:
    # O(log n) checks only: re-deriving the root from every leaf hash costs an incremental run what it saves.
    try:
        compact = state.compact()
    except ValueError as error:
        raise StateError(f"state compact_range: {error}") from None
    if compact.size != state.size or compact.root() != state.root:
        raise StateError("state compact_range does not match its size and root")
    if len(state.leaf_hashes) != state.size * HASH_SIZE_BYTES:
        raise StateError(
            f"state holds {len(state.leaf_hashes) // HASH_SIZE_BYTES} leaf hashes for size {state.size}"
        )
    if any(index >= state.size for index, _, _ in state.key_events):
        raise StateError("state holds a key event past its size")
    if state.replay.get("size") != state.size:
        raise StateError("state replay was saved at another size than its checkpoint")


def _key_events(value: object) -> tuple[KeyEvent, ...]:
    if not isinstance(value, list):
        raise StateError("state key_events is not a list")
    events: list[KeyEvent] = []
    for item in value:
        if (
            not isinstance(item, list)
            or len(item) != 3
            or type(item[0]) is not int
            or not isinstance(item[1], str)
            or item[1] not in KEY_ACTIONS
            or not isinstance(item[2], str)
        ):
            raise StateError(f"state key_events holds a malformed event {item!r}")
        events.append((item[0], item[1], item[2]))
    return tuple(events)


def _typed(data: dict[str, object], name: str, kind: type[_T]) -> _T:
    value = data.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise StateError(f"state {name} is not a {kind.__name__}")
    return value


def _base64(data: dict[str, object], name: str) -> bytes:
    try:
        return base64.b64decode(_typed(data, name, str), validate=True)
    except binascii.Error:
        raise StateError(f"state {name} is not base64") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
