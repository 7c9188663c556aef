"""Secrets kept in the data directory when the settings do not give them: generated once, written with mode
0600, and read back on every later start, so a restart keeps the same key."""

import os
from collections.abc import Callable
from pathlib import Path


def read_or_create_key_file(path: Path, generate: Callable[[], str]) -> str:
    """The key stored at `path`; if there is none yet, `generate()` one and store it (mode 0600). Two
    processes starting together agree: the file is created exclusively, and the loser reads the winner's."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    key = generate()
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    return key
