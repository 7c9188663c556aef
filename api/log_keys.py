"""The audit log's signing key: from settings, else a key file generated once in the data directory."""

import os
from pathlib import Path

from api.settings import Settings
from ledger.audit.signed_note import Signer, generate_signer, parse_signer_key

KEY_FILE_NAME = "log-signer.key"


def load_log_signer(settings: Settings) -> tuple[Signer, str]:
    """(signer, its C2SP verifier key string)."""
    signer_key = settings.log_signer_key or _key_file(settings.data_dir, settings.log_origin.split("/")[0])
    signer = parse_signer_key(signer_key)
    return signer, signer.verifier.encode()


def _key_file(data_dir: Path, name: str) -> str:
    path = data_dir / KEY_FILE_NAME
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    signer_key, _ = generate_signer(name)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(signer_key + "\n")
    return signer_key
