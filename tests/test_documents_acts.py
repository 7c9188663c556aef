"""Acts of services rendered: built only from redemptions, every tiyn traced, every bad act refused."""

import dataclasses
import datetime as dt
import random
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.ids import new_id
from tests.test_documents_examples import (
    CONTRACT,
    CONTRACTOR,
    CUSTOMER,
    OCTOBER_END,
    october_act,
    october_redemptions,
    redemption,
)
from treasury.documents import (
    ActLine,
    BankDetails,
    ContractReference,
    DocumentError,
    DocumentRule,
    Party,
    Redemption,
    build_service_act,
)

SERVICES = ("Завтрак / Таңғы ас", "Обед / Түскі ас", "Кружок робототехники / Робототехника үйірмесі")
UNITS = ("порция", "занятие")
PRICES_TIYN = (65_000, 110_000, 250_050)


@st.composite
def redemption_sets(draw, *, reversals: bool = False):
    """Redemptions as a provider's month produces them: few services and prices, so lines collect many."""
    ids = draw(st.lists(st.uuids(), min_size=1, max_size=60, unique=True))
    redemptions = []
    for rid in ids:
        price = draw(st.sampled_from(PRICES_TIYN) | st.integers(min_value=1, max_value=10**9))
        quantity = draw(st.integers(min_value=-5 if reversals else 1, max_value=40).filter(lambda q: q != 0))
        redemptions.append(
            Redemption(
                id=rid,
                service=draw(st.sampled_from(SERVICES)),
                unit=draw(st.sampled_from(UNITS)),
                unit_price_tiyn=price,
                quantity=quantity,
                amount_tiyn=quantity * price,
            )
        )
    return redemptions


def _act(redemptions, corrects=None):
    return october_act(redemptions, corrects=corrects)


@given(redemption_sets())
def test_an_act_total_equals_its_redemptions_to_the_tiyn(redemptions):
    act = _act(redemptions)

    assert act.total_tiyn == sum(r.amount_tiyn for r in redemptions)
    by_id = {r.id: r for r in redemptions}
    traced = [rid for line in act.lines for rid in line.redemption_ids]
    assert sorted(traced) == sorted(by_id), "every redemption on exactly one line"
    for line in act.lines:
        members = [by_id[rid] for rid in line.redemption_ids]
        assert {(r.service, r.unit, r.unit_price_tiyn) for r in members} == {
            (line.service, line.unit, line.unit_price_tiyn)
        }
        assert line.quantity == sum(r.quantity for r in members)
        assert line.amount_tiyn == sum(r.amount_tiyn for r in members) == line.quantity * line.unit_price_tiyn
    groups = [(line.service, line.unit, line.unit_price_tiyn) for line in act.lines]
    assert groups == sorted(set(groups)), "one line per group, in a stable order"
    assert [line.number for line in act.lines] == list(range(1, len(act.lines) + 1))


@given(redemption_sets(), st.randoms(use_true_random=False))
def test_the_same_redemptions_in_any_order_give_the_same_act(redemptions, shuffler):
    shuffled = list(redemptions)
    shuffler.shuffle(shuffled)

    assert _act(shuffled) == _act(redemptions)


@given(redemption_sets(reversals=True))
def test_an_adjustment_act_nets_reversals_or_refuses_a_line_that_cancels_out(redemptions):
    net: dict[tuple[str, str, int], int] = {}
    for r in redemptions:
        key = (r.service, r.unit, r.unit_price_tiyn)
        net[key] = net.get(key, 0) + r.quantity
    if 0 in net.values():
        with pytest.raises(DocumentError) as refused:
            _act(redemptions, corrects="АКТ-2026-09-0031")
        assert refused.value.rule is DocumentRule.quantity_zero
        return
    act = _act(redemptions, corrects="АКТ-2026-09-0031")
    assert act.is_adjustment
    assert act.total_tiyn == sum(r.amount_tiyn for r in redemptions)


def test_a_reversal_on_an_ordinary_act_is_refused_unless_it_nets_out_in_its_line():
    served = [redemption("Обед / Түскі ас", 110_000, quantity=3)]
    reversed_later = [redemption("Завтрак / Таңғы ас", 65_000, quantity=-1)]
    reversed_same_month = [redemption("Обед / Түскі ас", 110_000, quantity=-1)]

    with pytest.raises(DocumentError) as refused:
        _act(served + reversed_later)
    assert refused.value.rule is DocumentRule.quantity_negative
    assert _act(served + reversed_same_month).total_tiyn == 220_000


def test_a_redemption_listed_twice_is_refused():
    meal = redemption("Обед / Түскі ас", 110_000)

    with pytest.raises(DocumentError) as refused:
        _act([meal, redemption("Завтрак / Таңғы ас", 65_000), meal])
    assert refused.value.rule is DocumentRule.redemption_duplicate


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"amount_tiyn": 110_001}, DocumentRule.redemption_amount_mismatch),
        ({"quantity": 0, "amount_tiyn": 0}, DocumentRule.quantity_zero),
        ({"unit_price_tiyn": 0, "amount_tiyn": 0}, DocumentRule.unit_price_not_positive),
        ({"service": ""}, DocumentRule.text_empty),
        ({"service": "Обед\nТүскі ас"}, DocumentRule.text_control_character),
        ({"unit": "порция" * 10}, DocumentRule.text_too_long),
        ({"service": "Обед / Туски\u0306 ас"}, DocumentRule.text_not_nfc),  # й as и + combining breve
    ],
)
def test_a_bad_redemption_is_refused_with_the_rule_it_breaks(change, rule):
    bad = dataclasses.replace(redemption("Обед / Түскі ас", 110_000), **change)

    with pytest.raises(DocumentError) as refused:
        _act([redemption("Завтрак / Таңғы ас", 65_000), bad])
    assert refused.value.rule is rule


def _line(act, index, **change):
    lines = list(act.lines)
    lines[index] = dataclasses.replace(lines[index], **change)
    return tuple(lines)


def _act_tampered(**change):
    """The October act with one field replaced, rebuilt through the constructor that checks it."""
    act = october_act()
    changes = {key: value(act) if callable(value) else value for key, value in change.items()}
    return dataclasses.replace(act, **changes)


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"number": " "}, DocumentRule.text_empty),
        ({"corrects": "АКТ-2026-10-0042"}, DocumentRule.corrects_itself),
        ({"period_end": dt.date(2026, 9, 30)}, DocumentRule.period_reversed),
        ({"date": dt.date(2026, 10, 30)}, DocumentRule.document_dated_too_early),
        ({"lines": (), "total_tiyn": 0}, DocumentRule.lines_empty),
        ({"lines": lambda a: (a.lines[1], a.lines[0])}, DocumentRule.line_number_sequence),
        ({"lines": lambda a: _line(a, 0, amount_tiyn=1)}, DocumentRule.line_amount_mismatch),
        ({"lines": lambda a: _line(a, 0, redemption_ids=())}, DocumentRule.redemption_ids_empty),
        (
            {"lines": lambda a: _line(a, 1, redemption_ids=a.lines[0].redemption_ids)},
            DocumentRule.redemption_duplicate,
        ),
        (
            {
                "lines": lambda a: _line(
                    a, 1, service=a.lines[0].service, unit_price_tiyn=65_000, amount_tiyn=1800 * 65_000
                )
            },
            DocumentRule.line_duplicate_group,
        ),
        ({"total_tiyn": lambda a: a.total_tiyn - 1}, DocumentRule.total_mismatch),
        ({"lines": lambda a: _line(a, 0, quantity=10**9 + 1)}, DocumentRule.quantity_too_large),
        ({"lines": lambda a: _line(a, 0, unit_price_tiyn=10**15 + 1)}, DocumentRule.amount_too_large),
    ],
)
def test_an_inconsistent_act_is_refused_with_the_rule_it_breaks(change, rule):
    with pytest.raises(DocumentError) as refused:
        _act_tampered(**change)
    assert refused.value.rule is rule


def test_the_act_sum_may_not_exceed_the_ledger_amount_bound():
    # 10^9 units at 10^6 tiyn = 10^15 tiyn is the largest amount; two such lines total past it.
    big = [redemption(service, 10**6, quantity=10**9) for service in SERVICES[:2]]

    with pytest.raises(DocumentError) as refused:
        _act(big)
    assert refused.value.rule is DocumentRule.amount_too_large


@pytest.mark.parametrize(
    ("make", "rule"),
    [
        (lambda: dataclasses.replace(CUSTOMER, bin="030540012017"), DocumentRule.bin_invalid),
        (lambda: dataclasses.replace(CUSTOMER, bin="03054001201"), DocumentRule.bin_invalid),
        (lambda: dataclasses.replace(CUSTOMER.bank, iban="KZ840701234567890124"), DocumentRule.iban_invalid),
        (
            lambda: dataclasses.replace(CUSTOMER.bank, iban="DE89370400440532013000"),
            DocumentRule.iban_invalid,
        ),
        (lambda: dataclasses.replace(CUSTOMER.bank, bic="KKMFRU2A"), DocumentRule.bic_invalid),
        (lambda: dataclasses.replace(CUSTOMER.bank, bic="KKMF"), DocumentRule.bic_invalid),
        (lambda: dataclasses.replace(CUSTOMER, name=""), DocumentRule.text_empty),
        (lambda: dataclasses.replace(CONTRACT, kbk="464-003-015"), DocumentRule.kbk_invalid),
        (lambda: dataclasses.replace(CONTRACT, kbk="464  003"), DocumentRule.kbk_invalid),
    ],
)
def test_a_party_or_contract_with_a_bad_identifier_is_refused(make, rule):
    with pytest.raises(DocumentError) as refused:
        make()
    assert refused.value.rule is rule


def test_identifiers_are_kept_in_one_canonical_form():
    bank = CONTRACTOR.bank
    spaced = BankDetails(iban=bank.grouped_iban().lower(), bank_name=bank.bank_name, bic=bank.bic.lower())
    party = Party(name=CONTRACTOR.name, bin=f" {CONTRACTOR.bin} ", address=CONTRACTOR.address, bank=spaced)

    assert party == CONTRACTOR
    assert (
        ContractReference(number="1", date=OCTOBER_END, programme="П", kbk="464 003 015").kbk == "464 003 015"
    )


def test_the_october_act_is_built_whatever_order_the_canteen_recorded_meals_in():
    redemptions = october_redemptions()
    shuffled = list(redemptions)
    random.Random(6).shuffle(shuffled)

    assert october_act(shuffled) == october_act(redemptions)
    assert all(
        isinstance(rid, uuid.UUID) for line in october_act(redemptions).lines for rid in line.redemption_ids
    )


def test_an_act_line_lists_its_redemption_ids_in_order():
    ids = sorted(new_id() for _ in range(5))
    meals = [
        Redemption(id=rid, service="Обед", unit="порция", unit_price_tiyn=100, quantity=1, amount_tiyn=100)
        for rid in reversed(ids)
    ]
    act = build_service_act(
        number="А-1",
        date=OCTOBER_END,
        customer=CUSTOMER,
        contractor=CONTRACTOR,
        contract=CONTRACT,
        period_start=OCTOBER_END,
        period_end=OCTOBER_END,
        redemptions=meals,
    )

    assert act.lines == (
        ActLine(
            number=1,
            service="Обед",
            unit="порция",
            quantity=5,
            unit_price_tiyn=100,
            amount_tiyn=500,
            redemption_ids=tuple(ids),
        ),
    )
