"""PASETO v4.public and PASERK k4 against the official vectors (paseto-standard/test-vectors); properties.

Every vector in every file is run; a missing file fails the run at collection rather than skipping.
"""

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.vouchers.paseto import (
    HEADER,
    TOKEN_CHARS_MAX,
    KeyFormatError,
    KeyPair,
    TokenError,
    TokenErrorReason,
    VerifiedToken,
    decode_k4_public,
    decode_k4_secret,
    encode_k4_public,
    encode_k4_secret,
    k4_pid,
    keypair_from_seed,
    pre_auth_encode,
    read_footer,
    sign_v4_public,
    verify_v4_public,
)

VECTORS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "vectors" / "paseto"

Vector = dict[str, Any]


def _load(name: str) -> list[Vector]:
    # Not a skip: without the vectors nothing proves the module follows the spec, so collection fails loudly.
    path = VECTORS_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"official PASETO vectors missing: {path}")
    tests: list[Vector] = json.loads(path.read_text(encoding="utf-8"))["tests"]
    return tests


V4 = _load("v4.json")
K4_PID = _load("k4.pid.json")
K4_PUBLIC = _load("k4.public.json")
K4_SECRET = _load("k4.secret.json")

# The Ed25519 key pair of the 4-S-* vectors, used where a vector supplies no public key of its own.
VECTOR_SEED = bytes.fromhex(next(v["secret-key-seed"] for v in V4 if v.get("secret-key-seed")))
VECTOR_PUBLIC_KEY = bytes.fromhex(next(v["public-key"] for v in V4 if v.get("public-key")))


def _ids(vectors: list[Vector]) -> list[str]:
    return [v["name"] for v in vectors]


def test_every_vector_file_holds_the_count_of_the_pinned_commit() -> None:
    # Guards against a truncated or swapped file: these are the counts at commit 32d7406 (SOURCE.txt).
    assert (len(V4), len(K4_PID), len(K4_PUBLIC), len(K4_SECRET)) == (17, 5, 4, 5)


@pytest.mark.parametrize("vector", V4, ids=_ids(V4))
def test_v4_vector(vector: Vector) -> None:
    token: str = vector["token"]
    footer = vector["footer"].encode()
    implicit_assertion = vector["implicit-assertion"].encode()
    if token.startswith("v4.public.") and not vector["expect-fail"]:
        secret_key = bytes.fromhex(vector["secret-key"])
        seed = bytes.fromhex(vector["secret-key-seed"])
        public_key = bytes.fromhex(vector["public-key"])
        payload = vector["payload"].encode()
        # Ed25519 is deterministic, so signing must reproduce the token character for character.
        assert sign_v4_public(secret_key, payload, footer, implicit_assertion) == token
        assert sign_v4_public(seed, payload, footer, implicit_assertion) == token
        assert keypair_from_seed(seed) == KeyPair(secret_key=secret_key, public_key=public_key)
        expected = VerifiedToken(payload=payload, footer=footer, signature=_signature(token))
        assert verify_v4_public(public_key, token, footer, implicit_assertion) == expected
        assert verify_v4_public(public_key, token, None, implicit_assertion) == expected
        assert read_footer(token) == footer
    elif token.startswith("v4.public."):
        # 4-F-2: a v4.public token offered with a v4.local (symmetric) key. Used as a public key it must not
        # verify, and neither may the vectors' real signing key.
        assert vector["expect-fail"]
        keys = [bytes.fromhex(vector[k]) for k in ("public-key", "key") if vector.get(k)] + [
            VECTOR_PUBLIC_KEY
        ]
        for key in keys:
            with pytest.raises(TokenError) as refused:
                verify_v4_public(key, token, footer, implicit_assertion)
            assert refused.value.reason is TokenErrorReason.invalid_signature
    else:
        # We implement v4.public only (vouchers are signed, never encrypted) and do not pretend to decrypt.
        # So every other token -- the valid v4.local 4-E-* vectors, the v4.local 4-F-1/4/5 failures and the
        # v3.local 4-F-3 -- must be refused by verify_v4_public as "not v4.public", before any decoding.
        public_key = bytes.fromhex(vector["public-key"]) if vector.get("public-key") else VECTOR_PUBLIC_KEY
        with pytest.raises(TokenError, match=r"not v4\.public") as refused:
            verify_v4_public(public_key, token, footer, implicit_assertion)
        assert refused.value.reason is TokenErrorReason.wrong_header
        with pytest.raises(TokenError, match=r"not v4\.public"):
            read_footer(token)


@pytest.mark.parametrize("vector", K4_PID, ids=_ids(K4_PID))
def test_k4_pid_vector(vector: Vector) -> None:
    key = bytes.fromhex(vector["key"])
    if vector["expect-fail"]:
        with pytest.raises(KeyFormatError):
            k4_pid(key)
    else:
        assert k4_pid(key) == vector["paserk"]


@pytest.mark.parametrize("vector", K4_PUBLIC, ids=_ids(K4_PUBLIC))
def test_k4_public_vector(vector: Vector) -> None:
    key = bytes.fromhex(vector["key"])
    if vector["expect-fail"]:
        with pytest.raises(KeyFormatError):
            encode_k4_public(key)
    else:
        assert encode_k4_public(key) == vector["paserk"]
        assert decode_k4_public(vector["paserk"]) == key


@pytest.mark.parametrize("vector", K4_SECRET, ids=_ids(K4_SECRET))
def test_k4_secret_vector(vector: Vector) -> None:
    key = bytes.fromhex(vector["key"])
    if vector["expect-fail"]:
        with pytest.raises(KeyFormatError):
            encode_k4_secret(key)
    else:
        assert encode_k4_secret(key) == vector["paserk"]
        assert decode_k4_secret(vector["paserk"]) == key
        pair = keypair_from_seed(bytes.fromhex(vector["secret-key-seed"]))
        assert pair == KeyPair(secret_key=key, public_key=bytes.fromhex(vector["public-key"]))


def test_pae_matches_the_spec_examples() -> None:
    assert pre_auth_encode([]) == b"\x00" * 8
    assert pre_auth_encode([b""]) == b"\x01" + b"\x00" * 7 + b"\x00" * 8
    assert pre_auth_encode([b"test"]) == b"\x01" + b"\x00" * 7 + b"\x04" + b"\x00" * 7 + b"test"


def test_the_footer_names_the_issuer_key_by_k4_pid() -> None:
    # The intended use: the issuer puts its key id in the footer; the verifier reads it unverified, looks the
    # key up, and verifies with that key, which also authenticates the footer.
    pair = keypair_from_seed(bytes(range(32)))
    kid = k4_pid(pair.public_key).encode()
    token = sign_v4_public(pair.secret_key, b'{"voucher":"v-1"}', footer=kid)
    keys_by_pid = {k4_pid(pair.public_key).encode(): pair.public_key}
    assert (
        verify_v4_public(keys_by_pid[read_footer(token)], token, footer=kid).payload == b'{"voucher":"v-1"}'
    )


# -- Refusals, one row per reason in the order the checks run -----------------------------------------------

_PAIR = keypair_from_seed(VECTOR_SEED)
_GOOD = sign_v4_public(_PAIR.secret_key, b"payload", footer=b"kid")
_BODY, _FOOTER = _GOOD[len(HEADER) :].split(".")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("token", "expected_footer", "reason"),
    [
        (HEADER + "A" * TOKEN_CHARS_MAX, None, TokenErrorReason.too_long),
        ("", None, TokenErrorReason.wrong_header),
        ("v4.local." + _BODY, None, TokenErrorReason.wrong_header),
        ("v3.public." + _BODY, None, TokenErrorReason.wrong_header),
        ("V4.PUBLIC." + _BODY, None, TokenErrorReason.wrong_header),
        ("v4.public" + _BODY, None, TokenErrorReason.wrong_header),
        (HEADER + _BODY + ".", None, TokenErrorReason.malformed),
        (HEADER + _BODY + "." + _FOOTER + ".x", None, TokenErrorReason.malformed),
        (HEADER + _BODY + "==", None, TokenErrorReason.bad_base64),
        (HEADER + "+" + _BODY[1:], None, TokenErrorReason.bad_base64),
        (HEADER + _BODY + "." + _FOOTER + "=", None, TokenErrorReason.bad_base64),
        (HEADER + _BODY + "AA", None, TokenErrorReason.bad_base64),
        (HEADER + _b64(bytes(63)), None, TokenErrorReason.too_short),
        (HEADER + "", None, TokenErrorReason.too_short),
        (_GOOD, b"other-kid", TokenErrorReason.footer_mismatch),
        (HEADER + _BODY, None, TokenErrorReason.invalid_signature),
        (HEADER + _b64(b"PAYLOAD" + bytes(64)) + "." + _FOOTER, None, TokenErrorReason.invalid_signature),
    ],
)
def test_refused_tokens(token: str, expected_footer: bytes | None, reason: TokenErrorReason) -> None:
    with pytest.raises(TokenError) as refused:
        verify_v4_public(_PAIR.public_key, token, expected_footer)
    assert refused.value.reason is reason
    assert isinstance(refused.value, ValueError)
    assert _BODY not in str(refused.value)


def test_non_canonical_final_character_is_refused() -> None:
    # 7 + 64 = 71 bytes encode to 95 characters; the last carries 2 unused bits that Python's decoder ignores.
    # Setting one gives a second spelling of the same, validly signed bytes: it must still be refused.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    sibling = _BODY[:-1] + alphabet[alphabet.index(_BODY[-1]) + 1]
    assert base64.urlsafe_b64decode(sibling + "=") == base64.urlsafe_b64decode(_BODY + "=")
    with pytest.raises(TokenError) as refused:
        verify_v4_public(_PAIR.public_key, HEADER + sibling + "." + _FOOTER)
    assert refused.value.reason is TokenErrorReason.bad_base64


@pytest.mark.parametrize("bad_key", [b"", bytes(31), bytes(33), bytes(64)])
def test_public_key_of_wrong_size_is_refused(bad_key: bytes) -> None:
    with pytest.raises(KeyFormatError):
        verify_v4_public(bad_key, _GOOD)


@pytest.mark.parametrize("bad_key", [b"", bytes(31), bytes(33), bytes(63), bytes(65)])
def test_secret_key_of_wrong_size_is_refused(bad_key: bytes) -> None:
    with pytest.raises(KeyFormatError):
        sign_v4_public(bad_key, b"x")


def test_secret_key_whose_halves_disagree_is_refused() -> None:
    # Signing with a wrong public half would leak the private scalar, so it must never reach libsodium.
    other = keypair_from_seed(bytes(32))
    mismatched = _PAIR.secret_key[:32] + other.public_key
    with pytest.raises(KeyFormatError, match="does not belong"):
        sign_v4_public(mismatched, b"x")
    with pytest.raises(KeyFormatError):
        encode_k4_secret(mismatched)
    with pytest.raises(KeyFormatError):
        decode_k4_secret("k4.secret." + _b64(mismatched))


def test_signing_past_the_token_limit_is_refused() -> None:
    with pytest.raises(TokenError) as refused:
        sign_v4_public(_PAIR.secret_key, bytes(TOKEN_CHARS_MAX))
    assert refused.value.reason is TokenErrorReason.too_long


@pytest.mark.parametrize(
    "paserk",
    [
        "k3.public." + _b64(bytes(49)),
        "k4.secret." + _b64(bytes(32)),
        "k4.local." + _b64(bytes(32)),
        "k4.public." + _b64(bytes(31)),
        "k4.public." + _b64(bytes(32)) + "=",
        "k4.public.",
        "",
    ],
)
def test_wrong_k4_public_paserk_is_refused(paserk: str) -> None:
    with pytest.raises(KeyFormatError):
        decode_k4_public(paserk)


def test_k4_secret_paserk_of_wrong_type_or_size_is_refused() -> None:
    with pytest.raises(KeyFormatError):
        decode_k4_secret(encode_k4_public(_PAIR.public_key))
    with pytest.raises(KeyFormatError):
        decode_k4_secret("k4.secret." + _b64(_PAIR.secret_key[:32]))


# -- Properties --------------------------------------------------------------------------------------------

seeds = st.binary(min_size=32, max_size=32)
payloads = st.binary(max_size=300)
footers = st.binary(max_size=64)
assertions = st.binary(max_size=32)


@given(seed=seeds, payload=payloads, footer=footers, implicit_assertion=assertions)
def test_what_is_signed_verifies(
    seed: bytes, payload: bytes, footer: bytes, implicit_assertion: bytes
) -> None:
    pair = keypair_from_seed(seed)
    token = sign_v4_public(pair.secret_key, payload, footer, implicit_assertion)
    expected = VerifiedToken(payload=payload, footer=footer, signature=_signature(token))
    assert verify_v4_public(pair.public_key, token, None, implicit_assertion) == expected
    assert verify_v4_public(pair.public_key, token, footer, implicit_assertion) == expected
    assert read_footer(token) == footer


@given(seed=seeds, payload=payloads, footer=footers, data=st.data())
def test_any_changed_character_after_the_header_is_refused(
    seed: bytes, payload: bytes, footer: bytes, data: st.DataObject
) -> None:
    pair = keypair_from_seed(seed)
    token = sign_v4_public(pair.secret_key, payload, footer)
    position = data.draw(st.integers(len(HEADER), len(token) - 1), label="position")
    replacement = data.draw(
        st.characters(codec="ascii", exclude_characters=token[position]), label="replacement"
    )
    tampered = token[:position] + replacement + token[position + 1 :]
    # footer=None is the weakest check (any footer accepted), so the signature alone must catch the change.
    with pytest.raises(TokenError):
        verify_v4_public(pair.public_key, tampered)


@given(seed=seeds, payload=payloads, footer=footers, data=st.data())
def test_any_changed_byte_of_body_or_footer_breaks_the_signature(
    seed: bytes, payload: bytes, footer: bytes, data: st.DataObject
) -> None:
    pair = keypair_from_seed(seed)
    token = sign_v4_public(pair.secret_key, payload, footer)
    body_text = token[len(HEADER) :].split(".")[0]
    body = base64.urlsafe_b64decode(body_text + "=" * (-len(body_text) % 4))
    parts = [bytearray(body), bytearray(footer)]
    which = data.draw(st.sampled_from([0, 1] if footer else [0]), label="body or footer")
    index = data.draw(st.integers(0, len(parts[which]) - 1), label="index")
    parts[which][index] ^= data.draw(st.integers(1, 255), label="xor")
    tampered = HEADER + _b64(bytes(parts[0])) + ("." + _b64(bytes(parts[1])) if footer else "")
    with pytest.raises(TokenError) as refused:
        verify_v4_public(pair.public_key, tampered)
    assert refused.value.reason is TokenErrorReason.invalid_signature


@given(seed=seeds, payload=payloads, signed_with=assertions, verified_with=assertions)
def test_a_different_implicit_assertion_is_refused(
    seed: bytes, payload: bytes, signed_with: bytes, verified_with: bytes
) -> None:
    pair = keypair_from_seed(seed)
    token = sign_v4_public(pair.secret_key, payload, implicit_assertion=signed_with)
    if signed_with == verified_with:
        assert verify_v4_public(pair.public_key, token, implicit_assertion=verified_with).payload == payload
        return
    with pytest.raises(TokenError) as refused:
        verify_v4_public(pair.public_key, token, implicit_assertion=verified_with)
    assert refused.value.reason is TokenErrorReason.invalid_signature


@given(seed=seeds, other_seed=seeds, payload=payloads)
def test_another_key_is_refused(seed: bytes, other_seed: bytes, payload: bytes) -> None:
    pair, other = keypair_from_seed(seed), keypair_from_seed(other_seed)
    token = sign_v4_public(pair.secret_key, payload)
    if pair.public_key == other.public_key:
        return
    with pytest.raises(TokenError) as refused:
        verify_v4_public(other.public_key, token)
    assert refused.value.reason is TokenErrorReason.invalid_signature


@given(seed=seeds)
def test_paserk_round_trips_and_pid_is_stable(seed: bytes) -> None:
    pair = keypair_from_seed(seed)
    assert decode_k4_public(encode_k4_public(pair.public_key)) == pair.public_key
    assert decode_k4_secret(encode_k4_secret(pair.secret_key)) == pair.secret_key
    pid = k4_pid(pair.public_key)
    assert pid.startswith("k4.pid.") and len(pid) == len("k4.pid.") + 44
    assert "secret_key" not in repr(pair)


def _signature(token: str) -> bytes:
    """The last 64 bytes of a token's body: what verification must hand back as the signature."""
    body = token[len(HEADER) :].partition(".")[0]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))[-64:]
