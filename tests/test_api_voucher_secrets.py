"""The vouchers' secrets: the issuer key and holder salt come from the settings or are generated once into
the data directory (mode 0600) and reused; the key joins the key set at start-up, and a restart keeps the
windows it got the first time."""

import base64
import stat

import pytest

from api.settings import Settings
from api.voucher_secrets import (
    HOLDER_SALT_FILE_NAME,
    ISSUER_KEY_FILE_NAME,
    introduce_issuer_key,
    load_holder_salt,
    load_issuer_signer,
)
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.keys import load_issuer_keys
from ledger.vouchers.paseto import encode_k4_secret, keypair_from_seed
from ledger.vouchers.service import VoucherLedger


def test_without_settings_the_secrets_are_generated_once_and_kept_private(tmp_path):
    settings = Settings(data_dir=tmp_path)
    signer, salt = load_issuer_signer(settings), load_holder_salt(settings)
    for name in (ISSUER_KEY_FILE_NAME, HOLDER_SALT_FILE_NAME):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert (tmp_path / ISSUER_KEY_FILE_NAME).read_text().startswith("k4.secret.")
    again = Settings(data_dir=tmp_path)
    assert load_issuer_signer(again).key_id == signer.key_id and load_holder_salt(again) == salt
    assert (
        len(salt) == 32 and load_issuer_signer(Settings(data_dir=tmp_path / "other")).key_id != signer.key_id
    )


def test_settings_win_over_key_files(tmp_path):
    pair = keypair_from_seed(bytes(range(32)))
    salt = b"sixteen-byte-salt-or-more"
    settings = Settings(
        data_dir=tmp_path,
        issuer_key=encode_k4_secret(pair.secret_key),
        holder_salt=base64.urlsafe_b64encode(salt).decode().rstrip("="),
    )
    assert load_issuer_signer(settings).public_key == pair.public_key and load_holder_salt(settings) == salt
    assert not (tmp_path / ISSUER_KEY_FILE_NAME).exists() and not (tmp_path / HOLDER_SALT_FILE_NAME).exists()


@pytest.mark.parametrize(
    "overrides",
    [{"issuer_key": "k4.public.AAAA"}, {"holder_salt": "c2hvcnQ"}, {"holder_salt": "not base64!"}],
    ids=["public-key-as-secret", "salt-too-short", "salt-not-base64"],
)
def test_a_malformed_secret_stops_the_start(tmp_path, overrides):
    settings = Settings(data_dir=tmp_path, **overrides)
    with pytest.raises(ValueError):
        load_issuer_signer(settings) if "issuer_key" in overrides else load_holder_salt(settings)


def test_a_redeem_window_shorter_than_the_issue_window_is_refused(tmp_path):
    with pytest.raises(ValueError, match="issuer_redeem_window_days"):
        Settings(data_dir=tmp_path, issuer_issue_window_days=30, issuer_redeem_window_days=10)


def test_the_key_joins_the_key_set_and_a_restart_keeps_its_first_windows(pool, tmp_path):
    first = Settings(data_dir=tmp_path, issuer_issue_window_days=10, issuer_redeem_window_days=20)
    vouchers = VoucherLedger(UnitOfWork(pool), load_issuer_signer(first))
    try:
        introduce_issuer_key(vouchers, first)
        stored = vouchers.unit_of_work.read(load_issuer_keys)[vouchers.signer.key_id]
        day_ns = 24 * 3600 * 10**9
        assert 9 * day_ns < stored.issue_until - vouchers.now() < 10 * day_ns
        assert stored.redeem_until - stored.issue_until == 10 * day_ns
        later = Settings(data_dir=tmp_path, issuer_issue_window_days=300, issuer_redeem_window_days=600)
        introduce_issuer_key(vouchers, later)  # no error: the key is there already, with its windows
        assert vouchers.unit_of_work.read(load_issuer_keys)[vouchers.signer.key_id] == stored
    finally:
        vouchers.close()
