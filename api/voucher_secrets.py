"""The vouchers' two secrets, from the settings or from key files in the data directory:

* the **issuer key** (PASERK ``k4.secret.…``, `AMIYAN_ISSUER_KEY`, else ``<data_dir>/issuer.key``) signs
  voucher tokens and redemption receipts; at start-up it joins the issuer key set with its windows
  (`introduce_issuer_key`), so terminals and the ledger accept what it signs;
* the **holder salt** (base64url, `AMIYAN_HOLDER_SALT`, else ``<data_dir>/holder-salt.key``) keys the hash
  that names a voucher's holder (`ledger.identity.iin_holder_hash`): the mobile backend's IIN finds the
  citizen's vouchers through it, and issuance must use the same salt.

Neither secret is ever written to the database, a log or an API answer.
"""

import base64
import binascii
import os
import secrets
from typing import Final

import structlog

from api.key_files import read_or_create_key_file
from api.settings import Settings
from ledger.clock import NANOSECONDS_PER_SECOND
from ledger.identity import HOLDER_SALT_BYTES_MAX, HOLDER_SALT_BYTES_MIN
from ledger.vouchers.keys import load_issuer_keys
from ledger.vouchers.paseto import decode_k4_secret, encode_k4_secret, keypair_from_seed
from ledger.vouchers.results import RegistryResult
from ledger.vouchers.service import VoucherLedger
from ledger.vouchers.tokens import IssuerSigner

ISSUER_KEY_FILE_NAME: Final = "issuer.key"
HOLDER_SALT_FILE_NAME: Final = "holder-salt.key"
HOLDER_SALT_BYTES_GENERATED: Final = 32
SECONDS_PER_DAY: Final = 24 * 3600
log = structlog.get_logger("api.voucher_secrets")


def load_issuer_signer(settings: Settings) -> IssuerSigner:
    """The issuer key of the settings, else of the key file (made on first use); ValueError if malformed."""
    paserk = settings.issuer_key or read_or_create_key_file(
        settings.data_dir / ISSUER_KEY_FILE_NAME, _new_issuer_key
    )
    return IssuerSigner(keypair_from_seed(decode_k4_secret(paserk.strip())[:32]))


def load_holder_salt(settings: Settings) -> bytes:
    """The holder salt of the settings, else of the key file (made on first use); ValueError if malformed."""
    text = settings.holder_salt or read_or_create_key_file(
        settings.data_dir / HOLDER_SALT_FILE_NAME, _new_holder_salt
    )
    try:
        salt = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("the holder salt must be base64url") from None
    if not HOLDER_SALT_BYTES_MIN <= len(salt) <= HOLDER_SALT_BYTES_MAX:
        raise ValueError(f"the holder salt must be {HOLDER_SALT_BYTES_MIN} to {HOLDER_SALT_BYTES_MAX} bytes")
    return salt


def introduce_issuer_key(vouchers: VoucherLedger, settings: Settings) -> None:
    """Make sure this process's issuer key is in the key set. A key introduced by an earlier start keeps the
    windows it got then (the key set never changes a key's windows); a warning says when it may no longer
    issue, which calls for a rotation (a new AMIYAN_ISSUER_KEY)."""
    now = vouchers.now()
    issue_until = now + settings.issuer_issue_window_days * SECONDS_PER_DAY * NANOSECONDS_PER_SECOND
    redeem_until = now + settings.issuer_redeem_window_days * SECONDS_PER_DAY * NANOSECONDS_PER_SECOND
    outcome = vouchers.introduce_signer(issue_until, redeem_until)
    known = (RegistryResult.ok, RegistryResult.exists, RegistryResult.exists_with_different_fields)
    if outcome.result not in known:
        raise RuntimeError(
            f"the issuer key could not join the key set: {outcome.result.name} {outcome.detail}"
        )
    stored = vouchers.unit_of_work.read(load_issuer_keys).get(vouchers.signer.key_id)
    assert stored is not None, "the key set holds the key just introduced"
    if not stored.may_issue(now):
        log.warning("issuer_key_cannot_issue", key_id=stored.key_id, revoked=stored.revoked_at is not None)
    log.info("issuer_key_ready", key_id=stored.key_id, issue_until=stored.issue_until)


def _new_issuer_key() -> str:
    return encode_k4_secret(keypair_from_seed(os.urandom(32)).secret_key)


def _new_holder_salt() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(HOLDER_SALT_BYTES_GENERATED)).decode().rstrip("=")
