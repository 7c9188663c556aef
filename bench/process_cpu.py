"""CPU time of local processes, read from /proc (Linux): how a benchmark's work splits between the load
generator, the server and PostgreSQL when all three share the machine. Elsewhere the readings are None."""

import os
from collections.abc import Iterable
from pathlib import Path

_PROC = Path("/proc")


def cpu_seconds(pids: Iterable[int]) -> float | None:
    """User plus system CPU seconds of these processes so far (a process that has exited counts 0)."""
    if not _PROC.is_dir():
        return None
    ticks = 0
    for pid in pids:
        try:
            fields = (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_pids() -> list[int]:
    """Every local process named postgres (a local server's backends and helpers)."""
    if not _PROC.is_dir():
        return []
    found = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def children(pid: int) -> list[int]:
    """`pid` and the processes it started, directly or not (a server's worker processes)."""
    if not _PROC.is_dir():
        return [pid]
    parents: dict[int, int] = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    family, grown = {pid}, True
    while grown:
        grown = False
        for child, parent in parents.items():
            if parent in family and child not in family:
                family.add(child)
                grown = True
    return sorted(family)
