"""The provider signs, officers approve (two of them above the payout threshold), never the same officer
twice, never twice at once."""

import os
import threading

import nacl.bindings
import psycopg
import pytest

from ledger.ids import new_id
from ledger.vouchers.signing import Purpose, sign_message
from tests.settlement_world import OFFICER, SECOND_OFFICER, build_settlement_world, day
from treasury.errors import Refused
from treasury.settlement import (
    ActState,
    approve_act,
    document_bytes,
    register_signing_key,
    revoke_signing_key,
    sign_act,
)


@pytest.fixture
def world(ledger, voucher_ledger, pool, database_url):
    """A programme whose acts above 1 000 tenge need two officers."""
    return build_settlement_world(ledger, voucher_ledger, pool, database_url, threshold_tiyn=100_000)


def _act(world, amount=60_000, provider=None):
    served = day(world, 6)
    world.redeem_on(served, amount, provider=provider)
    world.close_through(served)
    [act] = world.issue(served)
    return act


def test_an_act_is_approved_only_after_the_provider_signed_it(world):
    act = _act(world)
    with pytest.raises(Refused) as refused:
        world.approve(act.number)
    assert refused.value.code == "act_not_signed"
    assert world.sign(act.number, world.providers[0]).state is ActState.SIGNED
    assert world.approve(act.number).state is ActState.APPROVED  # 600 tenge: one officer is enough
    with pytest.raises(Refused) as refused:
        world.approve(act.number, SECOND_OFFICER)
    assert refused.value.code == "act_approved_already"


@pytest.mark.parametrize("forgery", ["other_providers_key", "other_bytes", "other_purpose", "revoked_key"])
def test_a_signature_that_is_not_the_providers_over_this_act_is_refused(world, forgery):
    act = _act(world)
    provider = world.providers[0]
    body = world.run(lambda c: document_bytes(c, act.number, "act_json"))
    key_id, secret, purpose = provider.signing_key_id, provider.signing_secret, Purpose.SERVICE_ACT
    if forgery == "other_providers_key":
        stranger = world.add_provider()
        key_id, secret = stranger.signing_key_id, stranger.signing_secret
    elif forgery == "other_bytes":
        body = body.replace(b"60000", b"60001")
    elif forgery == "other_purpose":
        purpose = Purpose.REDEMPTION_RECEIPT
    else:
        world.run(lambda c: revoke_signing_key(c, key_id, "the director left", OFFICER))
    signature = sign_message(secret, purpose, body)
    with pytest.raises(Refused) as refused:
        world.run(lambda c: sign_act(c, act.number, key_id, signature))
    expected = {"other_providers_key": "signing_key_unknown", "revoked_key": "signing_key_revoked"}
    assert refused.value.code == expected.get(forgery, "signature_invalid")


def test_above_the_threshold_a_second_different_officer_approves(world):
    act = _act(world, amount=150_000)
    world.sign(act.number, world.providers[0])
    assert world.approve(act.number).state is ActState.APPROVED_ONCE
    with pytest.raises(Refused) as refused:
        world.approve(act.number)  # the same officer again
    assert refused.value.code == "second_officer_required"
    with pytest.raises(Refused) as refused:
        world.pay(act.number)
    assert refused.value.code == "act_not_approved"
    assert world.approve(act.number, SECOND_OFFICER).state is ActState.APPROVED


def test_the_database_refuses_one_officer_approving_an_act_twice(world, database_url):
    act = _act(world, amount=150_000)
    world.sign(act.number, world.providers[0])
    world.approve(act.number)
    with psycopg.connect(database_url) as owner, pytest.raises(psycopg.errors.UniqueViolation) as refused:
        owner.execute(
            'INSERT INTO act_approvals (act_id, step, officer, "timestamp") VALUES (%s, 2, %s, 0)',
            (act.id, OFFICER),
        )
    assert refused.value.diag.constraint_name == "uq_act_approvals_act_id_officer"


def test_officers_approving_at_once_give_exactly_two_approvals(world, database_url):
    act = _act(world, amount=150_000)
    world.sign(act.number, world.providers[0])
    officers = [f"Officer {n}" for n in range(6)] + [OFFICER] * 2
    answers: list[str] = []
    barrier = threading.Barrier(len(officers))

    def approve(officer):
        barrier.wait()
        try:
            answers.append(world.run(lambda c: approve_act(c, act.number, officer)).state.name)
        except Refused as refusal:
            answers.append(refusal.code)

    threads = [threading.Thread(target=approve, args=(officer,)) for officer in officers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers).count("APPROVED_ONCE") == 1 and answers.count("APPROVED") == 1
    assert all(
        a in {"APPROVED_ONCE", "APPROVED", "act_approved_already", "second_officer_required"} for a in answers
    )
    with psycopg.connect(database_url) as owner:
        rows = owner.execute(
            "SELECT step, officer FROM act_approvals WHERE act_id = %s", (act.id,)
        ).fetchall()
    assert sorted(step for step, _ in rows) == [1, 2] and rows[0][1] != rows[1][1]


def test_a_signing_key_is_the_providers_and_registering_it_again_is_harmless(world):
    provider = world.providers[0]
    public_key, _ = nacl.bindings.crypto_sign_seed_keypair(os.urandom(32))
    key_id = new_id()
    first = world.run(
        lambda c: register_signing_key(c, key_id, provider.id, public_key, "Бухгалтер", OFFICER)
    )
    again = world.run(
        lambda c: register_signing_key(c, key_id, provider.id, public_key, "Бухгалтер", OFFICER)
    )
    assert first == again
    with pytest.raises(Refused) as refused:
        world.run(lambda c: register_signing_key(c, key_id, provider.id, public_key, "Другой", OFFICER))
    assert refused.value.code == "key_exists"
