"""What the offline verifier remembers between runs: the state file.

The file is what makes rollback and fork detectable: a later export must extend what was verified before.
Format "amiyan-audit-verifier-state/2": one line of JSON, then the binary sections it lists.

    origin          the log's origin
    size, root      the largest checkpoint verified: its tree size and base64 root hash
    compact_range   base64 of `CompactRange.to_bytes()` at that size (an incremental run appends to it)
    key_events      [[entry index, "added" | "retired", verifier key], ...]: the log's key events before
                    `size`, all covered by the checkpoint at `size`: an incremental run knows the trusted keys
    replay          the replay state at `size` (`ledger.audit.replay_state`) but for its binary members
    sections        [[name, length in bytes], ...]: what follows the line, in this order:
        leaf_hashes       the size x 32 leaf hashes seen (names the exact entry a later log changed)
        replay.<member>   each binary member of the replay state (transfer ids, timestamps, resolutions)

The parts that grow with the log are stored as they are, not in base64 inside the JSON: for the
benchmark's 210,000 entries that is 12 MB instead of 16 MB, and no encoding or parsing of it (about a
tenth of a verification). `head -1` still shows a person the sizes, the root and every account's counters.

Written to a temporary file, fsynced and renamed over the old one, so a crash never leaves half a state
file. A file of the all-JSON format /1 is refused with a message saying so.
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

STATE_FORMAT: Final = "amiyan-audit-verifier-state/2"
_OLDER_FORMATS: Final = frozenset({"amiyan-audit-verifier-state/1"})
_REPLAY_SECTION: Final = "replay."
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
    replay: dict[str, object]  # JSON values, and bytes for the members saved as sections

    def compact(self) -> CompactRange:
        return CompactRange.from_bytes(self.compact_range)

    def first_changed_entry(self, entries: Sequence[bytes]) -> int | None:
        """The first of `entries` whose leaf hash differs from the one saved (a missing entry counts)."""
        saved = self.leaf_hashes
        for index, entry in zip(range(self.size), entries, strict=False):
            offset = index * HASH_SIZE_BYTES
            if leaf_hash(entry) != saved[offset : offset + HASH_SIZE_BYTES]:
                return index
        return len(entries) if len(entries) < self.size else None


def load_state(path: Path) -> VerifierState | None:
    """The state in `path`, or None when there is no file yet; raises StateError when it is malformed."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise StateError(f"cannot read {path}: {error}") from None
    line_end = data.find(b"\n")
    line_end = len(data) if line_end < 0 else line_end
    try:
        header = json.loads(data[:line_end])
    except ValueError as error:  # UnicodeDecodeError is a ValueError
        raise StateError(f"{path} does not start with a line of JSON: {error}") from None
    found = header.get("format") if isinstance(header, dict) else None
    if found in _OLDER_FORMATS:
        raise StateError(
            f"{path} has the older format {found}; this verifier reads {STATE_FORMAT} only. Keep the old file"
            " (its size and root are what you verified before) and start a new state with a full run"
        )
    if found != STATE_FORMAT:
        raise StateError(f"{path} is not a {STATE_FORMAT} file")
    sections = _sections(header.get("sections"), data, line_end + 1)
    replay = _typed(header, "replay", dict)
    replay.update(
        (name.removeprefix(_REPLAY_SECTION), part)
        for name, part in sections.items()
        if name.startswith(_REPLAY_SECTION)
    )
    if "leaf_hashes" not in sections:
        raise StateError("state has no leaf_hashes section")
    state = VerifierState(
        origin=_typed(header, "origin", str),
        size=_typed(header, "size", int),
        root=_base64(header, "root"),
        compact_range=_base64(header, "compact_range"),
        leaf_hashes=sections["leaf_hashes"],
        key_events=_key_events(header.get("key_events")),
        replay=replay,
    )
    _check_consistent(state)
    return state


def save_state(path: Path, state: VerifierState) -> None:
    """Write `state` to `path` atomically (temporary file, fsync, rename)."""
    replay_parts = {name: value for name, value in state.replay.items() if isinstance(value, bytes)}
    sections = [("leaf_hashes", state.leaf_hashes)]
    sections += [(_REPLAY_SECTION + name, part) for name, part in replay_parts.items()]
    header = {
        "format": STATE_FORMAT,
        "origin": state.origin,
        "size": state.size,
        "root": _b64(state.root),
        "compact_range": _b64(state.compact_range),
        "key_events": [list(event) for event in state.key_events],
        "replay": {name: value for name, value in state.replay.items() if name not in replay_parts},
        "sections": [[name, len(part)] for name, part in sections],
    }
    line = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as out:
        out.write(line)
        for _, part in sections:  # large writes go straight to the file, unbuffered
            out.write(part)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def _sections(listed: object, data: bytes, start: int) -> dict[str, bytes]:
    if not isinstance(listed, list) or not all(
        isinstance(item, list)
        and len(item) == 2
        and isinstance(item[0], str)
        and type(item[1]) is int
        and item[1] >= 0
        for item in listed
    ):
        raise StateError("state sections is not a list of [name, length] pairs")
    declared = sum(length for _, length in listed)
    if declared != len(data) - start:
        raise StateError(
            f"state sections declare {declared} bytes after the first line, but the file holds"
            f" {len(data) - start}"
        )
    sections: dict[str, bytes] = {}
    for name, length in listed:
        if name in sections:
            raise StateError(f"state lists section {name!r} twice")
        sections[name] = data[start : start + length]
        start += length
    return sections


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
