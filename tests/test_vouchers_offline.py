"""Offline acceptance: a terminal with no network checks the token against its cached key set, serves the
holder, and uploads later. The ledger honours such redemptions up to the policy's per-terminal daily limit,
judges them at the moment they were served, and refuses a double spend on upload with its own code."""

import time

from ledger.vouchers.keys import IssuerKey
from ledger.vouchers.results import RedemptionResult as R
from ledger.vouchers.tokens import token_key_id, verify_token
from tests.voucher_world import build_world

HOUR_MS = 3_600_000


def _now_ms():
    return time.time_ns() // 1_000_000


def _issued_yesterday(world, amount):
    """A voucher for offline use. (The ledger's clock cannot be turned back, so "served offline" here means a
    moment after issue; the upload comes later still. The rules are the same for an hour or a week.)"""
    voucher = world.issue(amount=amount)
    time.sleep(0.002)
    return voucher


def test_a_terminal_verifies_a_token_offline_with_its_cached_key_set(ledger, voucher_ledger, pool):
    from ledger.unit_of_work import UnitOfWork
    from ledger.vouchers.keys import load_issuer_keys

    world = build_world(ledger, voucher_ledger)
    voucher = world.issue(amount=50_000)
    token = voucher_ledger.token(voucher)
    cached: dict[str, IssuerKey] = UnitOfWork(pool).read(load_issuer_keys)  # what the terminal downloaded
    claims = verify_token(cached[token_key_id(token)].public_key, token)
    assert (claims.voucher_id, claims.amount_tiyn) == (voucher, 50_000)


def test_offline_redemptions_upload_later_within_the_terminals_daily_limit(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger, offline_limit_tiyn=100_000)
    vouchers = [_issued_yesterday(world, 80_000) for _ in range(3)]
    served = _now_ms()
    first = world.request(vouchers[0], amount=60_000, offline=True, requested_at_ms=served)
    second = world.request(vouchers[1], amount=40_000, offline=True, requested_at_ms=served + 1)
    third = world.request(vouchers[2], amount=1, offline=True, requested_at_ms=served + 2)
    assert world.redeem(first)[0].result is R.ok
    assert world.redeem(second)[0].result is R.ok
    assert world.redeem(third)[0].result is R.offline_limit_exceeded
    stored = world.redeem(first)[0]
    assert stored.result is R.exists and stored.redemption.offline


def test_a_double_spend_found_on_upload_has_its_own_code(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger, offline_limit_tiyn=1_000_000, partial_redemption=False)
    voucher = _issued_yesterday(world, 60_000)
    other = world.add_provider()
    online = world.request(voucher, amount=60_000, terminal=other)
    assert world.redeem(online, other)[0].result is R.ok
    offline = world.request(voucher, amount=60_000, offline=True, requested_at_ms=_now_ms())
    assert world.redeem(offline)[0].result is R.offline_double_spend


def test_no_offline_acceptance_unless_the_policy_allows_it_and_no_future_times(ledger, voucher_ledger):
    world = build_world(ledger, voucher_ledger)
    voucher = _issued_yesterday(world, 60_000)
    late = world.request(voucher, amount=1_000, offline=True, requested_at_ms=_now_ms())
    assert world.redeem(late)[0].result is R.offline_limit_exceeded
    future = world.request(voucher, amount=1_000, offline=True, requested_at_ms=_now_ms() + 2 * HOUR_MS)
    assert world.redeem(future)[0].result is R.request_time_invalid
