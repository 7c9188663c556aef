"""The audit export: a directory an auditor copies to their own machine and verifies with no database.

    DIR/manifest.json      {"format": "amiyan-audit-export/1", "origin": "<log origin>", "size": N}
    DIR/entries.bin        the N log entries in log order, each as a u32 big-endian length then its bytes
                           (exactly the bytes that were hashed; see ledger.audit.events for layouts)
    DIR/leaf_hashes.bin    N × 32 bytes: the leaf hashes the log stored (the verifier recomputes them)
    DIR/checkpoints.jsonl  one JSON object per line, sizes increasing:
                           {"consistency_proof": [base64, ...], "note": "<C2SP signed checkpoint note>",
                            "previous_size": M, "size": N}
                           the proof shows the tree of size M (the previous checkpoint) is a prefix of N
    DIR/keys.txt           the log's C2SP verifier keys over its life, one per line (informational: the
                           auditor trusts only the key it pins and keys that key's checkpoints introduce)

Nothing here touches a database: the export writer is fed by ledger.audit.export, the reader serves the
offline verifier.

Reading keeps entries.bin as it is: `FramedEntries` is the file's bytes plus the runs of equal-length
entries in it (a ledger's log is long runs of 125-byte transfer events), found with a few C-speed strided
scans instead of one Python step and one bytes object per entry. The verifier's hashing and replay walk
the runs; indexing and iterating still give each entry's exact bytes.
"""

import base64
import bisect
import json
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

FORMAT = "amiyan-audit-export/1"
HASH_SIZE_BYTES = 32
LENGTH_PREFIX_BYTES = 4
_LENGTH = struct.Struct(">I")
_RUN_SCAN_FIRST_ENTRIES = 8
"""A run is scanned in chunks that double from this many entries: linear in the run, cheap when short."""


@dataclass(frozen=True, slots=True)
class ExportedCheckpoint:
    size: int
    note: str
    previous_size: int
    consistency_proof: tuple[bytes, ...]


EntryRun = tuple[int, int, int, int]
"""(first, offset, entry_count, length): `entry_count` consecutive entries of `length` bytes each, the
first numbered `first` in its file, its length prefix at byte `offset`; so entry `first + k` is the
`length` bytes at `offset + k * (length + 4) + 4`. A plain tuple: a log of varied lengths has one per
entry."""


class FramedEntries(Sequence[bytes]):
    """Entries in their entries.bin framing (u32 big-endian length, then the bytes), as runs of entries of
    equal length. `data` is the file; `runs` cover entries `base` to `base + len(self) - 1` of it, in order
    (a `window` keeps the file's numbering in its runs, so making one copies no run but its two ends);
    indexing and iteration count from 0 as for any sequence."""

    __slots__ = ("_firsts", "_size", "base", "data", "runs")

    def __init__(self, data: bytes, runs: Sequence[EntryRun], base: int = 0) -> None:
        self.data = data
        self.runs = tuple(runs)
        self.base = base
        self._size = self.runs[-1][0] + self.runs[-1][2] - base if self.runs else 0
        self._firsts: list[int] | None = None  # each run's first entry, for bisection; made when needed

    @classmethod
    def of(cls, entries: Iterable[bytes]) -> "FramedEntries":
        """Frame entries held in memory (as the export writes them)."""
        pack = _LENGTH.pack
        return frame_entries(b"".join(part for entry in entries for part in (pack(len(entry)), entry)))

    def window(self, start: int, stop: int) -> "FramedEntries":
        """Entries `start` to `stop - 1` (clipped to what there is); no copy of the data."""
        start, stop = max(start, 0), min(stop, self._size)
        if start == 0 and stop == self._size:
            return self
        if start >= stop:
            return FramedEntries(self.data, (), self.base + start)
        low, high = self.base + start, self.base + stop
        firsts = self._run_firsts()
        runs = list(self.runs[bisect.bisect_right(firsts, low) - 1 : bisect.bisect_left(firsts, high)])
        first, offset, count, length = runs[0]
        if first < low:
            skipped = low - first
            runs[0] = (low, offset + skipped * (length + LENGTH_PREFIX_BYTES), count - skipped, length)
        first, offset, count, length = runs[-1]
        if first + count > high:
            runs[-1] = (first, offset, high - first, length)
        return FramedEntries(self.data, runs, low)

    def __len__(self) -> int:
        return self._size

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...
    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._size)
            if step == 1:
                return list(self.window(start, stop))
            return [self[i] for i in range(start, stop, step)]
        position = index + self._size if index < 0 else index
        if not 0 <= position < self._size:
            raise IndexError(f"entry {index} of {self._size}")
        number = self.base + position
        first, offset, _, length = self.runs[bisect.bisect_right(self._run_firsts(), number) - 1]
        at = offset + (number - first) * (length + LENGTH_PREFIX_BYTES) + LENGTH_PREFIX_BYTES
        return self.data[at : at + length]

    def __iter__(self) -> Iterator[bytes]:
        data = self.data
        for _, offset, count, length in self.runs:
            start, stride = offset + LENGTH_PREFIX_BYTES, length + LENGTH_PREFIX_BYTES
            for at in range(start, start + count * stride, stride):
                yield data[at : at + length]

    def _run_firsts(self) -> list[int]:
        if self._firsts is None:
            self._firsts = [run[0] for run in self.runs]
        return self._firsts


@dataclass(frozen=True, slots=True)
class AuditExport:
    origin: str
    entries: FramedEntries
    leaf_hash_bytes: bytes  # leaf_hashes.bin as it is: a whole number of 32-byte hashes
    checkpoints: list[ExportedCheckpoint]
    verifier_keys: list[str]

    @property
    def leaf_hashes(self) -> list[bytes]:
        data = self.leaf_hash_bytes
        return [data[i : i + HASH_SIZE_BYTES] for i in range(0, len(data), HASH_SIZE_BYTES)]


class ExportFormatError(ValueError):
    """The directory is not a readable export (missing file, wrong format, truncated data)."""


def write_export(
    directory: Path,
    origin: str,
    entries: Iterable[bytes],
    leaf_hashes: Sequence[bytes],
    checkpoints: Iterable[ExportedCheckpoint],
    verifier_keys: Iterable[str],
) -> int:
    """Write an export; returns the number of entries written."""
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    with (directory / "entries.bin").open("wb") as out:
        for entry in entries:
            out.write(_LENGTH.pack(len(entry)))
            out.write(entry)
            count += 1
    assert count == len(leaf_hashes), "one stored leaf hash per entry"
    (directory / "leaf_hashes.bin").write_bytes(b"".join(leaf_hashes))
    lines = [
        json.dumps(
            {
                "consistency_proof": [base64.b64encode(h).decode() for h in c.consistency_proof],
                "note": c.note,
                "previous_size": c.previous_size,
                "size": c.size,
            },
            sort_keys=True,
            ensure_ascii=False,
        )
        for c in checkpoints
    ]
    (directory / "checkpoints.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    (directory / "keys.txt").write_text("".join(key + "\n" for key in verifier_keys), encoding="utf-8")
    manifest = {"format": FORMAT, "origin": origin, "size": count}
    (directory / "manifest.json").write_text(json.dumps(manifest, sort_keys=True) + "\n", encoding="utf-8")
    return count


def read_export(directory: Path) -> AuditExport:
    """Read an export fully into memory; raises ExportFormatError on any structural problem."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        raw_entries = (directory / "entries.bin").read_bytes()
        raw_hashes = (directory / "leaf_hashes.bin").read_bytes()
        checkpoint_lines = (directory / "checkpoints.jsonl").read_text(encoding="utf-8").splitlines()
        keys = (directory / "keys.txt").read_text(encoding="utf-8").split()
    except (OSError, ValueError) as error:
        raise ExportFormatError(f"cannot read export in {directory}: {error}") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ExportFormatError(f"manifest.json does not declare format {FORMAT}")
    entries = frame_entries(raw_entries)
    if len(raw_hashes) % HASH_SIZE_BYTES:
        raise ExportFormatError("leaf_hashes.bin is not a whole number of 32-byte hashes")
    # A leaf-hash count that differs from the entries is left to the verifier, which can name the entry.
    declared = manifest.get("size")
    if type(declared) is not int or declared != len(entries):
        raise ExportFormatError(
            f"manifest.json declares {declared} entries; entries.bin holds {len(entries)}"
        )
    return AuditExport(
        origin=str(manifest.get("origin", "")),
        entries=entries,
        leaf_hash_bytes=raw_hashes,
        checkpoints=[_parse_checkpoint_line(line, n) for n, line in enumerate(checkpoint_lines, 1) if line],
        verifier_keys=keys,
    )


def frame_entries(data: bytes) -> FramedEntries:
    """The entries in `data` (entries.bin's framing); raises ExportFormatError where the framing breaks."""
    runs: list[EntryRun] = []
    unpack, offset, first, end = _LENGTH.unpack_from, 0, 0, len(data)
    while offset < end:
        if offset + LENGTH_PREFIX_BYTES > end:
            raise ExportFormatError(f"entries.bin ends inside a length prefix at byte {offset}")
        (length,) = unpack(data, offset)
        stride = length + LENGTH_PREFIX_BYTES
        following = offset + stride
        if following > end:
            raise ExportFormatError(f"entries.bin: entry {first} runs past the end of the file")
        same = 0  # checking the next length first keeps a log of varied lengths cheap
        if following + LENGTH_PREFIX_BYTES <= end and unpack(data, following)[0] == length:
            same = _repeats(data, following, stride, data[offset : offset + LENGTH_PREFIX_BYTES])
        runs.append((first, offset, 1 + same, length))
        offset += (1 + same) * stride
        first += 1 + same
    return FramedEntries(data, runs)


def _repeats(data: bytes, start: int, stride: int, prefix: bytes) -> int:
    """How many whole framed entries of `stride` bytes from `start` on begin with `prefix`.

    Byte k of every such prefix is one strided slice; `lstrip` of that byte leaves what follows the first
    mismatch. Chunks double, so a run costs time linear in its length and a short run little."""
    whole = (len(data) - start) // stride
    count, chunk = 0, _RUN_SCAN_FIRST_ENTRIES
    while count < whole:
        taken = min(chunk, whole - count)
        at = start + count * stride
        same = taken
        for byte in range(LENGTH_PREFIX_BYTES):
            column = data[at + byte : at + taken * stride : stride]
            same = min(same, len(column) - len(column.lstrip(prefix[byte : byte + 1])))
        count += same
        if same < taken:
            break
        chunk *= 2
    return count


def _parse_checkpoint_line(line: str, number: int) -> ExportedCheckpoint:
    try:
        record = json.loads(line)
        size, previous, note, proof = (
            record["size"],
            record["previous_size"],
            record["note"],
            record["consistency_proof"],
        )
        if not all(type(value) is int and value >= 0 for value in (size, previous)):
            raise ValueError("size and previous_size must be non-negative integers")
        if not isinstance(note, str) or not isinstance(proof, list):
            raise ValueError("note must be a string and consistency_proof a list")
        hashes = tuple(_strict_base64(h) for h in proof)
    except (ValueError, KeyError, TypeError) as error:
        raise ExportFormatError(f"checkpoints.jsonl line {number}: {error}") from error
    return ExportedCheckpoint(size=size, note=note, previous_size=previous, consistency_proof=hashes)


def _strict_base64(text: object) -> bytes:
    """Only the one canonical spelling: what decodes must re-encode to the same text."""
    if not isinstance(text, str):
        raise ValueError("a proof hash must be a base64 string")
    data = base64.b64decode(text, validate=True)
    if base64.b64encode(data).decode() != text or len(data) != HASH_SIZE_BYTES:
        raise ValueError(f"proof hash {text!r} is not canonical base64 of 32 bytes")
    return data
