"""What the audit router reads from the stored log: checkpoints, the log's signing keys, and the export an
auditor downloads (the directory `amiyan audit export` writes, as one gzipped tar)."""

import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Final

import psycopg

from ledger.audit.export import export_log
from ledger.unit_of_work import UnitOfWork

EXPORT_DIRECTORY_NAME: Final = "audit-export"


def latest_checkpoint(connection: psycopg.Connection[Any]) -> tuple[int, str] | None:
    """(size, signed note) of the largest checkpoint, or None before the first."""
    row = connection.execute("SELECT size, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1").fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def checkpoint_note(connection: psycopg.Connection[Any], size: int) -> str | None:
    row = connection.execute("SELECT note FROM audit_checkpoints WHERE size = %s", (size,)).fetchone()
    return None if row is None else str(row[0])


def verifier_keys(connection: psycopg.Connection[Any]) -> list[str]:
    """The log's C2SP verifier keys over its life, oldest first."""
    return [
        row[0] for row in connection.execute("SELECT verifier_key FROM audit_signing_keys ORDER BY added_at")
    ]


def export_archive(unit_of_work: UnitOfWork, origin: str) -> tuple[Path, int]:
    """Write the export into a fresh temporary directory and pack it as ``audit-export.tar.gz`` there;
    (the archive's path, the number of entries). The caller removes ``path.parent`` when done."""
    workspace = Path(tempfile.mkdtemp(prefix="amiyan-audit-export-"))
    try:
        directory = workspace / EXPORT_DIRECTORY_NAME
        count = unit_of_work.read(lambda connection: export_log(connection, directory, origin))
        archive = workspace / f"{EXPORT_DIRECTORY_NAME}.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(directory, arcname=EXPORT_DIRECTORY_NAME)
        shutil.rmtree(directory)
    except BaseException:
        shutil.rmtree(workspace, ignore_errors=True)
        raise
    return archive, count
