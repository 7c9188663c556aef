"""Voucher tokens: the claims payload is RFC 8785 canonical JSON, reads back to the same claims, and the
token rebuilt from stored fields is byte for byte the signed one."""

import string
import uuid

import hypothesis.strategies as st
from hypothesis import given

from ledger.audit.canonical import canonical_bytes
from ledger.vouchers.paseto import keypair_from_seed, verify_v4_public
from ledger.vouchers.policy import NO_LIMIT
from ledger.vouchers.tokens import IssuerSigner, VoucherClaims, claims_payload, parse_claims, token_text

SIGNER = IssuerSigner(keypair_from_seed(b"tokens-test-seed-000000000000000"))
limits = st.one_of(st.just(NO_LIMIT), st.integers(1, 10**15))
claims = st.builds(
    VoucherClaims,
    voucher_id=st.uuids(),
    programme_id=st.uuids(),
    purpose=st.from_regex(r"[a-z][a-z0-9_]{1,39}", fullmatch=True),
    holder_hash=st.binary(min_size=32, max_size=32),
    amount_tiyn=st.integers(1, 10**15),
    units_max=st.one_of(st.just(NO_LIMIT), st.integers(1, 10**12)),
    period=st.sampled_from(["none", "day", "week", "month"]),
    period_uses_max=limits,
    period_tiyn_max=limits,
    period_units_max=limits,
    items=st.lists(
        st.tuples(
            st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=64),
            st.integers(1, 10**6),
        ),
        max_size=5,
        unique_by=lambda item: item[0],
    ).map(lambda items: tuple(sorted(items))),
    issued_at_s=st.integers(10**9, 4 * 10**9),
    not_before_s=st.integers(10**9, 4 * 10**9),
    expires_at_s=st.integers(10**9, 4 * 10**9),
)


def _as_canonical_document(payload: bytes) -> bytes:
    import json

    return canonical_bytes(json.loads(payload))


@given(claims)
def test_the_payload_is_canonical_json_and_reads_back(value):
    payload = claims_payload(value)
    assert payload == _as_canonical_document(payload)
    assert parse_claims(payload) == value


@given(claims)
def test_a_token_rebuilt_from_its_signature_verifies_and_is_identical(value):
    signature = SIGNER.sign(value)
    token = token_text(value, SIGNER.key_id, signature)
    assert parse_claims(verify_v4_public(SIGNER.public_key, token).payload) == value
    assert token_text(value, SIGNER.key_id, SIGNER.sign(value)) == token
    assert uuid.UUID(str(value.voucher_id)) == value.voucher_id
