"""Eligibility rows, checked one by one with no database: each bad row names the rule it broke, a holder
listed twice is caught, named entitlements are priced by the policy, and a row's voucher id is the same
every time the list is read (and depends on the secret salt, not on the bare IIN)."""

import uuid

import pytest

from ledger.vouchers.issuance_orders import VoucherOrder
from ledger.vouchers.policy import parse_policy
from tests.treasury_operations_world import fresh_iins, write_csv, write_jsonl
from tests.voucher_world import HOLDER_SALT, policy_document
from treasury.eligibility import IssueTerms, ListRow, RowRejection, duplicate_lines, prepare_row, read_list
from treasury.errors import Refused

PROGRAMME = uuid.UUID("01890a5d-ac96-774b-bcce-b302099a8057")
REGION_FUND = uuid.UUID("01890a5d-ac96-774b-bcce-b302099a8058")
[IIN, OTHER] = fresh_iins(2)


def _terms(**policy) -> IssueTerms:
    return IssueTerms(
        PROGRAMME, parse_policy(policy_document(**policy)), {"Алматы": REGION_FUND}, HOLDER_SALT
    )


def _prepare(terms=None, repeats=None, **row) -> VoucherOrder | RowRejection:
    fields = {"iin": IIN, "entitlement": "300000"} | row
    return prepare_row(ListRow(line=2, **fields), terms or _terms(), repeats or {})


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"iin": "", "malformed": "the line is not JSON"}, "row_malformed"),
        ({"iin": IIN[:11]}, "iin_length"),
        ({"iin": IIN[:11] + "x"}, "iin_not_digits"),
        ({"iin": IIN[:6] + "9" + IIN[7:]}, "iin_century_digit"),
        ({"iin": "991331" + IIN[6:]}, "iin_birth_date"),
        ({"iin": IIN[:11] + str((int(IIN[11]) + 1) % 10)}, "iin_check_digit"),
        ({"entitlement": "three hundred"}, "entitlement_invalid"),
        ({"entitlement": True}, "entitlement_invalid"),
        ({"entitlement": "uses:5"}, "entitlement_not_priced"),
        ({"entitlement": "0"}, "amount_invalid"),
        ({"entitlement": str(10**15 + 1)}, "amount_invalid"),
        ({"units_max": "-3"}, "units_invalid"),
        ({"units_max": "150"}, "units_not_priced"),
        ({"items": "AMOX:2;AMOX:3"}, "items_invalid"),
        ({"items": "AMOX:2"}, "items_not_allowed"),
        ({"region": "Марс"}, "region_unknown"),
        ({"key": "no spaces allowed"}, "key_invalid"),
    ],
)
def test_a_bad_row_names_the_rule_it_broke(row, reason):
    rejection = _prepare(**row)
    assert isinstance(rejection, RowRejection) and rejection.reason == reason
    assert IIN not in rejection.message and rejection.line == 2


def test_a_good_row_becomes_an_order_whose_id_is_stable_and_salted():
    order = _prepare(region="Алматы")
    assert isinstance(order, VoucherOrder)
    assert (order.amount_tiyn, order.fund_account_id, order.programme_id) == (300_000, REGION_FUND, PROGRAMME)
    assert _prepare(entitlement=300_000).id == order.id  # CSV text and a JSON number are one entitlement
    assert _prepare(entitlement="0300000").id == order.id
    assert _prepare(entitlement="300001").id != order.id
    assert _prepare(key="2026-10").id != order.id
    other_salt = IssueTerms(PROGRAMME, _terms().policy, {}, b"another-salt-of-enough-bytes")
    assert _prepare(terms=other_salt).id != order.id
    assert IIN not in str(order.id) and order.holder_hash != _prepare(terms=other_salt).holder_hash


def test_named_entitlements_are_priced_by_the_policy():
    meals = _prepare(terms=_terms(price_per_use_tiyn=60_000), entitlement="uses:20")
    assert meals.amount_tiyn == 1_200_000
    assert (
        _prepare(terms=_terms(price_per_use_tiyn=60_000), entitlement="70000").reason
        == "amount_not_whole_uses"
    )
    gas_terms = _terms(purpose="gas", provider_categories=["gas_utility"], unit_price_tiyn=2_500)
    gas = _prepare(terms=gas_terms, entitlement="units:150")
    assert (gas.amount_tiyn, gas.units_max) == (375_000, 150)
    assert _prepare(terms=gas_terms, entitlement="units:150", units_max="100").units_max == 100
    prescription = _prepare(terms=_terms(items_required=True), items="AMOX500:20; PARA:10")
    assert prescription.items == (("AMOX500", 20), ("PARA", 10))
    assert _prepare(terms=_terms(items_required=True)).reason == "items_required"


def test_a_holder_twice_is_a_duplicate_unless_the_rows_carry_different_keys(tmp_path):
    rows = [
        {"iin": IIN, "entitlement": 1},
        {"iin": OTHER, "entitlement": 1},
        {"iin": IIN, "entitlement": 2},
        {"iin": OTHER, "entitlement": 1, "key": "RX-2"},
        {"iin": OTHER, "entitlement": 1, "key": " RX-2"},
    ]
    path = write_csv(tmp_path / "list.csv", rows, ("iin", "entitlement", "key"))
    count, repeats = duplicate_lines(read_list(path))
    assert (count, repeats) == (5, {4: 2, 6: 5})
    assert _prepare(repeats=repeats | {2: 1}).message == "the holder is already on line 1"


def test_json_lines_and_csv_read_the_same_rows_and_a_broken_line_is_a_rejection_not_an_abort(tmp_path):
    jsonl = tmp_path / "list.jsonl"
    write_jsonl(jsonl, [{"iin": IIN, "entitlement": 300_000, "items": [["AMOX", 2]]}])
    with jsonl.open("a", encoding="utf-8") as handle:
        handle.write("{not json\n")
        handle.write('{"iin": "1", "entitlement": 1, "colour": "red"}\n')
    rows = list(read_list(jsonl))
    assert (rows[0].iin, rows[0].entitlement, rows[0].items) == (IIN, 300_000, [["AMOX", 2]])
    assert [(row.line, bool(row.malformed)) for row in rows] == [(1, False), (2, True), (3, True)]
    csv_path = tmp_path / "list.csv"
    csv_path.write_text(f"IIN,Entitlement\n{IIN},300000\n{OTHER},1,extra\n", encoding="utf-8")
    rows = list(read_list(csv_path))
    assert (rows[0].iin, rows[0].line, rows[1].line, rows[1].malformed) == (
        IIN,
        2,
        3,
        "3 fields where the header has 2",
    )


def test_a_header_with_an_unknown_or_missing_column_refuses_the_file(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("iin,amount\n", encoding="utf-8")
    with pytest.raises(Refused) as refused:
        list(read_list(path))
    assert refused.value.code == "list_columns_invalid"
    assert "unknown: ['amount'], missing: ['entitlement']" in refused.value.message
