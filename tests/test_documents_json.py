"""Machine-readable documents: one canonical byte string each, hashed, parsed back only if untouched."""

import dataclasses
import datetime as dt
import hashlib
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.test_documents_acts import redemption_sets
from tests.test_documents_examples import KAZAKH_LETTERS, october_act, october_invoice
from treasury.documents import (
    BankDetails,
    ContractReference,
    DocumentError,
    DocumentRule,
    Party,
    Redemption,
    VatRate,
    act_json,
    build_service_act,
    document_hash,
    invoice_from_act,
    invoice_json,
    parse_act_json,
    parse_invoice_json,
)

LUNCH_ID = uuid.UUID("01890a5d-ac96-774b-bcce-b302099a8057")


def _small_act():
    return build_service_act(
        number="А-1",
        date=dt.date(2026, 10, 31),
        customer=Party(
            name="ГУ «Білім»",
            bin="030540012016",
            address="Астана",
            bank=BankDetails(iban="KZ84 0701 2345 6789 0123", bank_name="Казначейство", bic="KKMFKZ2A"),
        ),
        contractor=Party(
            name="ТОО «Әсем»",
            bin="150940044777",
            address="Алматы",
            bank=BankDetails(iban="KZ33601000KZT0000001", bank_name="Halyk", bic="HSBKKZKX"),
        ),
        contract=ContractReference(
            number="ШП-1", date=dt.date(2026, 1, 15), programme="Питание", kbk="464 003 015"
        ),
        period_start=dt.date(2026, 10, 1),
        period_end=dt.date(2026, 10, 31),
        redemptions=[
            Redemption(
                id=LUNCH_ID,
                service="Обед / Түскі ас",
                unit="порция",
                unit_price_tiyn=110_000,
                quantity=2,
                amount_tiyn=220_000,
            )
        ],
    )


# Written by hand from the format in machine_readable.py: keys sorted, no spaces, integers, UTF-8.
SMALL_ACT_JSON = (
    '{"contract":{"date":"2026-01-15","kbk":"464 003 015","number":"ШП-1","programme":"Питание"},'
    '"contractor":{"address":"Алматы","bank":{"bank_name":"Halyk","bic":"HSBKKZKX","iban":"KZ33601000KZT0000001"},'
    '"bin":"150940044777","name":"ТОО «Әсем»"},'
    '"corrects":null,'
    '"customer":{"address":"Астана","bank":{"bank_name":"Казначейство","bic":"KKMFKZ2A","iban":"KZ840701234567890123"},'
    '"bin":"030540012016","name":"ГУ «Білім»"},'
    '"date":"2026-10-31","kind":"service_act",'
    '"lines":[{"amount_tiyn":220000,"number":1,"quantity":2,'
    '"redemption_ids":["01890a5d-ac96-774b-bcce-b302099a8057"],'
    '"service":"Обед / Түскі ас","unit":"порция","unit_price_tiyn":110000}],'
    '"number":"А-1","period":{"end":"2026-10-31","start":"2026-10-01"},"total_tiyn":220000,"version":1}'
).encode()


def test_an_act_encodes_to_the_documented_canonical_bytes():
    assert act_json(_small_act()) == SMALL_ACT_JSON


def test_the_document_hash_is_the_sha256_of_the_canonical_bytes():
    assert document_hash(SMALL_ACT_JSON) == hashlib.sha256(SMALL_ACT_JSON).digest()
    assert len(document_hash(SMALL_ACT_JSON)) == 32


def test_the_october_documents_survive_a_round_trip():
    act = october_act()
    invoice = october_invoice(act, vat_rate=VatRate.twelve_percent)

    assert parse_act_json(act_json(act)) == act
    assert parse_invoice_json(invoice_json(invoice)) == invoice


_NAMES = st.text(
    alphabet=f"АБВабв{KAZAKH_LETTERS}{KAZAKH_LETTERS.upper()} «»-.,0123456789", min_size=1, max_size=40
).filter(str.strip)


@given(redemption_sets(reversals=False), _NAMES, st.sampled_from(VatRate), st.one_of(st.none(), _NAMES))
def test_any_act_and_its_invoice_parse_back_to_themselves(redemptions, name, rate, corrects):
    act = dataclasses.replace(
        october_act(redemptions), contractor=dataclasses.replace(october_act().contractor, name=name)
    )
    act = dataclasses.replace(act, corrects=None if corrects == act.number else corrects)
    invoice = invoice_from_act(act, number="СФ-1", date=act.date, vat_rate=rate)

    encoded_act, encoded_invoice = act_json(act), invoice_json(invoice)
    assert parse_act_json(encoded_act) == act
    assert act_json(parse_act_json(encoded_act)) == encoded_act
    assert parse_invoice_json(encoded_invoice) == invoice
    assert invoice_json(parse_invoice_json(encoded_invoice)) == encoded_invoice


def _tampered(old: str, new: str) -> bytes:
    assert SMALL_ACT_JSON.count(old.encode()) == 1, old
    return SMALL_ACT_JSON.replace(old.encode(), new.encode())


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        ('"total_tiyn":220000', '"total_tiyn":220001', DocumentRule.total_mismatch),
        ('"amount_tiyn":220000', '"amount_tiyn":110000', DocumentRule.line_amount_mismatch),
        ('"bin":"150940044777"', '"bin":"150940044778"', DocumentRule.bin_invalid),
        ('"iban":"KZ33601000KZT0000001"', '"iban":"KZ33601000KZT0000002"', DocumentRule.iban_invalid),
        ('"quantity":2', '"quantity":-2', DocumentRule.quantity_negative),
        ('"quantity":2', '"quantity":true', DocumentRule.json_malformed),
        ('"quantity":2', '"quantity":2.0', DocumentRule.json_malformed),
        ('"quantity":2,', '"quantity": 2,', DocumentRule.json_malformed),
        ('"version":1', '"version":2', DocumentRule.json_malformed),
        ('"kind":"service_act"', '"kind":"invoice"', DocumentRule.json_malformed),
        ('"date":"2026-10-31","kind"', '"date":"20261031","kind"', DocumentRule.json_malformed),
        ('"corrects":null,', "", DocumentRule.json_malformed),
        ('"corrects":null,', '"corrects":null,"currency":"KZT",', DocumentRule.json_malformed),
        (
            "01890a5d-ac96-774b-bcce-b302099a8057",
            "01890A5D-AC96-774B-BCCE-B302099A8057",
            DocumentRule.json_malformed,
        ),
        ("01890a5d-ac96-774b-bcce-b302099a8057", "not-a-uuid", DocumentRule.json_malformed),
        ('"redemption_ids":[', '"redemption_ids":[1,', DocumentRule.json_malformed),
        (
            '"period":{"end"',
            '"period":{"end":"2026-10-31","start":"2026-10-01"},"x":{"end"',
            DocumentRule.json_malformed,
        ),
        ('"lines":[', '"lines":{"a":[', DocumentRule.json_malformed),
    ],
)
def test_a_tampered_or_malformed_act_is_refused_with_the_rule_it_breaks(old, new, rule):
    with pytest.raises(DocumentError) as refused:
        parse_act_json(_tampered(old, new))
    assert refused.value.rule is rule


def test_an_invoice_with_an_unknown_vat_rate_or_a_tampered_vat_is_refused():
    encoded = invoice_json(october_invoice(vat_rate=VatRate.twelve_percent))

    for old, new, rule in (
        (b'"vat_rate":"12%"', b'"vat_rate":"7%"', DocumentRule.json_malformed),
        (
            b'"vat_rate":"12%"',
            b'"vat_rate":"16%"',
            DocumentRule.vat_mismatch,
        ),  # a real rate, but not this VAT
        (b'"vat_tiyn":18720000', b'"vat_tiyn":18720001', DocumentRule.vat_mismatch),
        (b'"total_vat_tiyn":42480000', b'"total_vat_tiyn":42480001', DocumentRule.total_mismatch),
    ):
        with pytest.raises(DocumentError) as refused:
            parse_invoice_json(encoded.replace(old, new, 1))
        assert refused.value.rule is rule, new


def test_an_act_is_not_accepted_as_an_invoice():
    with pytest.raises(DocumentError) as refused:
        parse_invoice_json(SMALL_ACT_JSON)
    assert refused.value.rule is DocumentRule.json_malformed


def test_text_that_is_not_nfc_is_refused_when_the_document_is_built_not_when_it_is_encoded():
    decomposed = "Туски\u0306"  # й written as и + combining breve

    with pytest.raises(DocumentError) as refused:
        dataclasses.replace(_small_act().customer, name=decomposed)
    assert refused.value.rule is DocumentRule.text_not_nfc
