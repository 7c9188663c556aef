"""Issuer keys: tokens are genuine PASETO v4.public; a rotation keeps old vouchers spendable until their key's
redeem window ends; a revoked key is honoured for nothing; a key past its issue window issues nothing."""

import os

import pytest
import segno

from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.issuance import VoucherOrder
from ledger.vouchers.paseto import keypair_from_seed, verify_v4_public
from ledger.vouchers.reference import format_reference_code, normalise_reference_code
from ledger.vouchers.results import IssueResult
from ledger.vouchers.results import RedemptionResult as R
from ledger.vouchers.service import VoucherLedger
from ledger.vouchers.tokens import IssuerSigner, parse_claims
from tests.voucher_world import build_world, fresh_iin, holder_hash

YEAR_NS = 365 * 24 * 3600 * 10**9


@pytest.fixture
def fresh_issuer(pool):
    """A voucher service with a key of its own (so revoking it touches no other test)."""
    signer = IssuerSigner(keypair_from_seed(os.urandom(32)))
    service = VoucherLedger(UnitOfWork(pool), signer)
    now = service.now()
    assert service.introduce_signer(now + YEAR_NS, now + 2 * YEAR_NS).ok
    yield service
    service.close()


def test_a_token_is_a_standard_paseto_that_names_its_key_and_never_the_iin(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger)
    iin = fresh_iin()
    voucher = world.issue(amount=123_456, iin=iin)
    token = voucher_ledger.token(voucher)
    verified = verify_v4_public(voucher_ledger.signer.public_key, token)
    claims = parse_claims(verified.payload)
    assert (claims.voucher_id, claims.amount_tiyn, claims.holder_hash) == (voucher, 123_456, holder_hash(iin))
    assert iin.encode() not in verified.payload and iin.encode() not in verified.footer
    assert voucher_ledger.signer.key_id.encode() in verified.footer


def test_the_qr_code_carries_the_token_and_the_reference_code_reads_back(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(amount=10_000)
    token = voucher_ledger.token(voucher)
    qr = segno.make(token, error="m")
    assert qr.version <= 25  # scannable from a phone screen at a canteen till
    [view] = voucher_ledger.vouchers([voucher])
    printed = format_reference_code(view.reference_code)
    assert len(printed) == 14 and normalise_reference_code(printed.lower()) == view.reference_code


def test_a_rotation_keeps_old_vouchers_spendable_and_revocation_stops_them(
    ledger, voucher_ledger, fresh_issuer
):
    world = build_world(ledger, voucher_ledger)
    old_voucher = world.issue(amount=50_000)
    world.vouchers = fresh_issuer  # the new key issues from now on
    new_voucher = world.issue(amount=50_000)
    assert world.redeem(world.request(old_voucher, amount=1_000))[0].result is R.ok
    assert world.redeem(world.request(new_voucher, amount=1_000))[0].result is R.ok
    assert fresh_issuer.revoke_issuer_key(fresh_issuer.signer.key_id, "key compromised").ok
    assert world.redeem(world.request(new_voucher, amount=1_000))[0].result is R.issuer_key_revoked
    assert world.redeem(world.request(old_voucher, amount=1_000))[0].result is R.ok
    order = VoucherOrder(new_id(), world.programme_id, holder_hash(fresh_iin()), 1_000)
    assert fresh_issuer.issue([order])[0] == [IssueResult.issuer_key_unavailable]
