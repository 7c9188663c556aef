"""Reading presented tokens: what is remembered between tokens (the footer's key id, parsed times) answers
exactly as reading afresh would, and never carries one token's answer over to a different token."""

import base64
import uuid

import hypothesis.strategies as st
import pytest
from hypothesis import given

from ledger.vouchers.paseto import HEADER, TokenError, TokenErrorReason, keypair_from_seed
from ledger.vouchers.policy import NO_LIMIT
from ledger.vouchers.tokens import IssuerSigner, VoucherClaims, token_key_id, token_text, verify_token

FIRST = IssuerSigner(keypair_from_seed(b"token-checks-seed-first-00000000"))
SECOND = IssuerSigner(keypair_from_seed(b"token-checks-seed-second-0000000"))
CLAIMS = VoucherClaims(
    voucher_id=uuid.UUID("0192a3b4-0000-7000-8000-000000000001"),
    programme_id=uuid.UUID("0192a3b4-0000-7000-8000-000000000002"),
    purpose="school_meals",
    holder_hash=bytes(range(32)),
    amount_tiyn=600_000,
    units_max=NO_LIMIT,
    period="month",
    period_uses_max=22,
    period_tiyn_max=NO_LIMIT,
    period_units_max=NO_LIMIT,
    items=(),
    issued_at_s=1_767_225_600,
    not_before_s=1_767_225_600,
    expires_at_s=1_798_761_599,
)


def _token(signer: IssuerSigner, claims: VoucherClaims = CLAIMS) -> str:
    return token_text(claims, signer.key_id, signer.sign(claims))


def _with_footer(token: str, footer: bytes) -> str:
    encoded = base64.urlsafe_b64encode(footer).rstrip(b"=").decode("ascii")
    return token.rpartition(".")[0] + "." + encoded


def test_each_footer_names_its_own_key_however_often_it_is_read():
    first, second = _token(FIRST), _token(SECOND)
    for _ in range(3):
        assert token_key_id(first) == FIRST.key_id
        assert token_key_id(second) == SECOND.key_id


@pytest.mark.parametrize(
    "footer",
    [
        b'{"kid": "k4.pid.x"}',  # parses, but is not canonical
        b'{"kid":"k4.pid.x","x":1}',
        b'{"kid":1}',
        b"not json",
    ],
)
def test_a_bad_footer_is_refused_every_time_even_after_a_good_one(footer):
    good = _token(FIRST)
    bad = _with_footer(good, footer)
    for _ in range(2):
        assert token_key_id(good) == FIRST.key_id
        with pytest.raises(TokenError) as refused:
            token_key_id(bad)
        assert refused.value.reason is TokenErrorReason.malformed


def test_a_footer_segment_that_is_not_canonical_base64url_is_refused_after_its_canonical_twin():
    good = _token(FIRST)
    segment = good.rpartition(".")[2]
    # The same footer bytes with the unused low bits of the last character set: another spelling.
    assert len(segment) % 4 == 2
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = segment[:-1] + alphabet[alphabet.index(segment[-1]) | 1]
    assert base64.urlsafe_b64decode(twin + "==") == base64.urlsafe_b64decode(segment + "==")
    assert token_key_id(good) == FIRST.key_id
    with pytest.raises(TokenError) as refused:
        token_key_id(good.rpartition(".")[0] + "." + twin)
    assert refused.value.reason is TokenErrorReason.bad_base64


def test_tokens_sharing_times_read_their_own_times_and_bad_times_stay_refused():
    later = VoucherClaims(**{**_fields(CLAIMS), "expires_at_s": CLAIMS.expires_at_s + 86_400})
    assert verify_token(FIRST.public_key, _token(FIRST)) == CLAIMS
    assert verify_token(FIRST.public_key, _token(FIRST, later)) == later
    assert verify_token(FIRST.public_key, _token(FIRST)).expires_at_s == CLAIMS.expires_at_s


def test_a_token_not_shaped_like_v4_public_has_no_key_id():
    with pytest.raises(TokenError):
        token_key_id("v3.public." + _token(FIRST)[len(HEADER) :])
    with pytest.raises(TokenError):
        token_key_id(_token(FIRST) + ".")


def _fields(claims: VoucherClaims) -> dict[str, object]:
    return {name: getattr(claims, name) for name in VoucherClaims.__slots__}


@pytest.mark.parametrize(
    "bad",
    ["2026-13-01T00:00:00Z", "2026-01-01T00:00:00+", "2026-01-01T00:00:00", "2026-01-01 00:00:00Z"],
)
def test_a_time_not_written_as_issued_is_refused_every_time(bad):
    import json

    from ledger.vouchers.tokens import claims_payload, parse_claims

    document = json.loads(claims_payload(CLAIMS))
    assert parse_claims(json.dumps(document).encode()) == CLAIMS
    for _ in range(2):
        with pytest.raises(ValueError):
            parse_claims(json.dumps({**document, "iat": bad}).encode())


def _decoded_the_long_way(text: str) -> bytes | None:
    """The definition: decode leniently, then accept only if encoding the bytes gives the text back."""
    import re

    if len(text) % 4 == 1 or re.fullmatch(r"[A-Za-z0-9_-]*", text) is None:
        return None
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return data if base64.urlsafe_b64encode(data).rstrip(b"=").decode() == text else None


@given(
    st.text(alphabet="ABCDQRSTYZabgw0189-_+/=. é", max_size=12)
    | st.binary(max_size=40).map(lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode())
)
def test_only_the_canonical_base64url_spelling_decodes(text):
    from ledger.vouchers.paseto import _b64url_decode

    assert _b64url_decode(text) == _decoded_the_long_way(text)
    for spare in range(1, 4):  # the same bytes with unused low bits set are another spelling, refused
        if len(text) % 4 in (2, 3) and _decoded_the_long_way(text) is not None:
            alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            other = text[:-1] + alphabet[alphabet.index(text[-1]) ^ spare]
            assert _b64url_decode(other) == _decoded_the_long_way(other)


def test_a_remembered_token_is_judged_again_against_the_key_set_and_the_moment():
    import dataclasses

    from ledger.vouchers.keys import IssuerKey
    from ledger.vouchers.results import RedemptionResult as R
    from ledger.vouchers.token_checks import TokenVerifier

    issued_at = CLAIMS.issued_at
    key = IssuerKey(FIRST.key_id, FIRST.public_key, issued_at + 10, issued_at + 100, None)
    token, forged = _token(FIRST), _token(SECOND)
    signature = FIRST.sign(CLAIMS)
    verifier = TokenVerifier(threads=1)
    try:
        for _ in range(2):  # first verified, then remembered: the same answers
            assert verifier.check([token], {key.key_id: key}, [issued_at + 50]) == [
                (R.ok, CLAIMS.voucher_id, FIRST.key_id, signature)
            ]
            assert verifier.check([forged], {key.key_id: key}, [issued_at + 50]) == [
                (R.issuer_key_unknown, None, SECOND.key_id, b"")
            ]
        assert verifier.check([token], {key.key_id: key}, [issued_at + 101])[0][:2] == (
            R.issuer_key_expired,
            None,
        )
        revoked = dataclasses.replace(key, revoked_at=issued_at + 40)
        assert verifier.check([token], {key.key_id: revoked}, [issued_at + 50])[0][:2] == (
            R.issuer_key_revoked,
            None,
        )
        assert verifier.check([token], {}, [issued_at + 50])[0][:2] == (R.issuer_key_unknown, None)
        # A token the key never signed is refused even when one it did sign is remembered.
        tampered = _with_footer(_token(SECOND), base64.urlsafe_b64decode(token.rpartition(".")[2] + "=="))
        assert verifier.check([tampered], {key.key_id: key}, [issued_at + 50])[0][:2] == (
            R.token_invalid,
            None,
        )
    finally:
        verifier.close()


def test_the_verified_tokens_kept_are_the_ones_shown_lately(monkeypatch):
    """A meal voucher shown every school day stays verified while tokens seen once make room."""
    from ledger.vouchers import token_checks
    from ledger.vouchers.keys import IssuerKey
    from ledger.vouchers.token_checks import TokenVerifier

    monkeypatch.setattr(token_checks, "VERIFIED_TOKENS_MAX", 2)
    issued_at = CLAIMS.issued_at
    key = IssuerKey(FIRST.key_id, FIRST.public_key, issued_at + 10, issued_at + 100, None)
    daily = _token(FIRST)
    others = [
        _token(FIRST, VoucherClaims(**{**_fields(CLAIMS), "amount_tiyn": CLAIMS.amount_tiyn + n}))
        for n in (1, 2)
    ]
    verified: list[str] = []
    real = token_checks.verify_token_signed
    monkeypatch.setattr(
        token_checks, "verify_token_signed", lambda key, token: verified.append(token) or real(key, token)
    )
    verifier = TokenVerifier(threads=1)
    try:
        for token in [daily, others[0], daily, others[1], daily, others[0]]:
            verifier.check([token], {key.key_id: key}, [issued_at + 50])
        # The daily token stayed remembered; the one seen once made room and was verified again.
        assert verified == [daily, others[0], others[1], others[0]]
    finally:
        verifier.close()
