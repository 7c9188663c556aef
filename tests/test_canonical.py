"""Canonical event bytes: RFC 8785 examples, what we refuse, the escaping proof, and round trips."""

from __future__ import annotations

import enum
import json
import unicodedata
from collections import OrderedDict
from random import Random
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.audit.canonical import CANONICAL_DEPTH_MAX, CanonicalError, canonical_bytes, parse_canonical

# RFC 8785 §3.2.2's example without its "numbers" member (floats are refused here, see below).
RFC8785_STRING_EXAMPLE = {
    "literals": [None, True, False],
    "string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/",
}
RFC8785_STRING_EXPECTED = '{"literals":[null,true,false],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'


def test_rfc8785_string_and_literal_example() -> None:
    assert canonical_bytes(RFC8785_STRING_EXAMPLE) == RFC8785_STRING_EXPECTED.encode("utf-8")
    assert parse_canonical(RFC8785_STRING_EXPECTED.encode("utf-8")) == RFC8785_STRING_EXAMPLE


def test_rfc8785_example_with_numbers_is_refused_for_its_floats() -> None:
    rfc_input = b'{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001]}'
    with pytest.raises(CanonicalError, match="float"):
        parse_canonical(rfc_input)


def test_rfc8785_sorting_example() -> None:
    # §3.2.3, minus U+FB33: that key is not NFC (it decomposes to U+05D3 U+05BC), so we refuse it.
    members = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    expected = (
        '{"\\r":"Carriage Return","1":"One","\u0080":"Control","ö":"Latin Small Letter O With Diaeresis",'
        '"€":"Euro Sign","\U0001f600":"Emoji: Grinning Face"}'
    )
    assert canonical_bytes(members) == expected.encode("utf-8")
    with pytest.raises(CanonicalError, match=r'not in Unicode NFC at \$\["\\ufb33"\]'):
        canonical_bytes({**members, "\ufb33": "Hebrew Letter Dalet With Dagesh"})


def test_keys_sort_by_utf16_code_units_not_code_points() -> None:
    # U+1F600 is D83D DE00 in UTF-16, so it sorts before U+FB01 although its code point is larger.
    assert canonical_bytes({"\ufb01": 1, "\U0001f600": 2}) == '{"\U0001f600":2,"\ufb01":1}'.encode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, b"0"),
        (-1, b"-1"),
        (2**53, b"9007199254740992"),
        (2**64, b"18446744073709551616"),
        (True, b"true"),
        ([True, 1, False, 0], b"[true,1,false,0]"),
        (None, b"null"),
        ((), b"[]"),
        ({}, b"{}"),
        ("/\x7f\u2028", '"/\x7f\u2028"'.encode()),
        ({"b": [1, {"d": None, "c": ""}], "a": "x"}, b'{"a":"x","b":[1,{"c":"","d":null}]}'),
    ],
)
def test_encoding_table(value: object, expected: bytes) -> None:
    assert canonical_bytes(value) == expected  # type: ignore[arg-type]


def test_enum_members_encode_as_their_values() -> None:
    class Code(enum.IntEnum):
        OK = 0
        EXCEEDS_CREDITS = 7

    class Kind(enum.StrEnum):
        DEBIT = "debit"

    assert canonical_bytes({Kind.DEBIT: [Code.EXCEEDS_CREDITS, Kind.DEBIT]}) == b'{"debit":[7,"debit"]}'


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"amount_tiyn": 1.0}, r"float is not allowed .* at \$\.amount_tiyn$"),
        ({"lines": [{"amount": float("nan")}]}, r"float .* at \$\.lines\[0\]\.amount$"),
        ({"name": "Aliya\u0301"}, r"not in Unicode NFC at \$\.name$"),
        ({"e\u0301": 1}, r"not in Unicode NFC"),
        (["\ud800"], r"lone surrogate U\+D800 in string at \$\[0\]$"),
        ({1: "x"}, r"object key 1 of type int is not a string at \$$"),
        ({"a": b"bytes"}, r"type bytes is not allowed at \$\.a$"),
        ({"a": {1, 2}}, r"type set is not allowed"),
        ({"a b": [0, 1.5]}, r'at \$\["a b"\]\[1\]$'),
    ],
)
def test_refusals_name_the_path(value: object, message: str) -> None:
    with pytest.raises(CanonicalError, match=message):
        canonical_bytes(value)  # type: ignore[arg-type]


def test_depth_limit_refuses_deep_nesting_and_cycles() -> None:
    deep: list[object] = []
    for _ in range(CANONICAL_DEPTH_MAX + 1):
        deep = [deep]
    with pytest.raises(CanonicalError, match="nesting deeper"):
        canonical_bytes(deep)  # type: ignore[arg-type]
    cycle: list[object] = []
    cycle.append(cycle)
    with pytest.raises(CanonicalError, match="nesting deeper"):
        canonical_bytes(cycle)  # type: ignore[arg-type]


def test_path_of_a_deep_refusal_is_found_in_linear_time() -> None:
    # Locating the failing member must not re-encode sub-containers (that was exponential in depth).
    levels = CANONICAL_DEPTH_MAX // 2 - 1  # two containers per level, the innermost object on top
    value: object = {"amount": 0.5}
    for _ in range(levels):
        value = {"a": [value]}
    with pytest.raises(CanonicalError) as raised:
        canonical_bytes(value)  # type: ignore[arg-type]
    assert str(raised.value).endswith("at $" + ".a[0]" * levels + ".amount")


def test_unusual_containers_keep_their_paths() -> None:
    shared = ["ok", 1.5]
    with pytest.raises(CanonicalError, match=r"at \$\.x\[0\]\[1\]$"):
        canonical_bytes({"x": (shared, shared)})  # type: ignore[dict-item]
    with pytest.raises(CanonicalError, match=r"object key 1 of type int is not a string at \$\.y\[1\]$"):
        canonical_bytes({"y": ["", MappingProxyType({1: 2})]})  # type: ignore[dict-item]
    assert canonical_bytes(MappingProxyType({"b": 1, "a": OrderedDict(z=None)})) == b'{"a":{"z":null},"b":1}'


@pytest.mark.parametrize(
    "data",
    [
        b'{"b":1,"a":2}',  # unsorted
        b'{"a": 1}',  # whitespace
        b" 1",
        b"1\n",
        b"1.0",  # float
        b"1e3",  # exponent form is a float too
        b"-0",
        b"01",
        b'"\\u0041"',  # needless escape
        b'"\\/"',  # JCS never escapes the solidus
        b'"\\u001F"',  # uppercase hex
        b'"\x7f"'.replace(b"\x7f", b"\\u007f"),  # DEL is written as itself
        b'{"a":1,"a":1}',  # duplicate key
        b"NaN",
        b"Infinity",
        b"\xff",  # not UTF-8
        b'"e\xcc\x81"',  # not NFC
        b'"\\ud800"',  # lone surrogate
        b"",
        b"[1,]",
    ],
)
def test_parse_refuses_anything_not_canonical(data: bytes) -> None:
    with pytest.raises(CanonicalError):
        parse_canonical(data)


def _jcs_escape(text: str) -> str:
    """RFC 8785 §3.2.2.2 string serialisation, written out rule by rule: the oracle for the fast escaper."""
    short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    out = ['"']
    for char in text:
        if char in short:
            out.append(short[char])
        elif ord(char) < 0x20:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def test_string_escaping_matches_rfc8785_for_every_code_point() -> None:
    # Every code point U+0000..U+10FFFF but the surrogates, each as a one-character string: those in NFC
    # must encode exactly as the rule-by-rule oracle, the others must be refused.
    chunk_size = 0x1000
    for chunk_start in range(0, 0x110000, chunk_size):
        chars = [chr(c) for c in range(chunk_start, chunk_start + chunk_size) if not 0xD800 <= c <= 0xDFFF]
        stable = [c for c in chars if unicodedata.is_normalized("NFC", c)]
        expected = "[" + ",".join(_jcs_escape(c) for c in stable) + "]"
        assert canonical_bytes(stable) == expected.encode("utf-8"), hex(chunk_start)
        for unstable in set(chars) - set(stable):
            with pytest.raises(CanonicalError, match="NFC"):
                canonical_bytes(unstable)


def test_why_json_dumps_defaults_are_not_jcs() -> None:
    # ensure_ascii=True (the default) escapes DEL and all non-ASCII; JCS writes both as themselves.
    assert json.dumps("\x7f\u00e9") == '"\\u007f\\u00e9"'
    assert canonical_bytes("\x7f\u00e9") == '"\x7f\u00e9"'.encode()
    # sort_keys sorts by code point, not UTF-16 code unit.
    assert json.dumps({"\ufb01": 1, "\U0001f600": 2}, sort_keys=True, ensure_ascii=False).startswith(
        '{"\ufb01"'
    )


nfc_text = st.text(max_size=12).map(lambda s: unicodedata.normalize("NFC", s))
canonical_values = st.recursive(
    st.none() | st.booleans() | st.integers() | nfc_text,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(nfc_text, inner, max_size=5),
    max_leaves=30,
)


@given(canonical_values)
def test_round_trip(value: object) -> None:
    data = canonical_bytes(value)  # type: ignore[arg-type]
    assert parse_canonical(data) == value
    assert json.loads(data) == value


@given(st.dictionaries(nfc_text, canonical_values, max_size=8), st.randoms())
def test_member_order_does_not_matter(members: dict[str, object], random: Random) -> None:
    items = list(members.items())
    random.shuffle(items)
    assert canonical_bytes(dict(items)) == canonical_bytes(members)  # type: ignore[arg-type]
