"""What the audience-router tests share: an app whose issuer key and holder salt are the voucher world's
(so vouchers issued by `tests.voucher_world` are found and redeemed through HTTP), an API key per role,
and envelopes signed the way a terminal signs them."""

import base64
import time
import uuid
from pathlib import Path
from typing import Any

from api.credentials import Role
from api.settings import Settings
from ledger.audit.canonical import canonical_bytes
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.paseto import encode_k4_secret, keypair_from_seed
from ledger.vouchers.requests import RedemptionRequest, request_document
from ledger.vouchers.signing import Purpose, sign_message
from tests.test_api_support import api_settings, issue
from tests.voucher_world import HOLDER_SALT

# The conftest's issuer key: the app signs receipts with the key that signed the world's tokens.
ISSUER_SEED = b"amiyan-test-issuer-key-seed-0001"
ROLES = tuple(Role)


def voucher_api_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    return api_settings(
        database_url,
        data_dir,
        issuer_key=encode_k4_secret(keypair_from_seed(ISSUER_SEED).secret_key),
        holder_salt=base64.urlsafe_b64encode(HOLDER_SALT).decode(),
        **overrides,
    )


def role_keys(unit_of_work: UnitOfWork, provider_id: uuid.UUID) -> dict[Role, str]:
    """One API key per role; the provider's is bound to `provider_id`."""
    return {
        role: issue(unit_of_work, role, provider_id if role is Role.provider else None).secret
        for role in ROLES
    }


def signed(secret_key: bytes, purpose: Purpose, document: dict[str, Any]) -> str:
    return base64.b64encode(sign_message(secret_key, purpose, canonical_bytes(document))).decode()


def single_envelope(request: RedemptionRequest, secret_key: bytes) -> dict[str, Any]:
    document = request_document(request)
    return {"request": document, "signature": signed(secret_key, Purpose.REDEMPTION_REQUEST, document)}


def batch_envelope(
    terminal_id: uuid.UUID, requests: list[dict[str, Any]], secret_key: bytes, sent_at_ms: int | None = None
) -> dict[str, Any]:
    batch = {
        "terminal": str(terminal_id),
        "sent_at_ms": sent_at_ms if sent_at_ms is not None else time.time_ns() // 1_000_000,
        "requests": requests,
    }
    return {"batch": batch, "signature": signed(secret_key, Purpose.REDEMPTION_BATCH, batch)}
