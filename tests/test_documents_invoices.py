"""Invoices: VAT per line, half up to the tiyn, in integers; lines and totals that add up."""

import dataclasses
import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.test_documents_acts import redemption_sets
from tests.test_documents_examples import OCTOBER_END, october_act, october_invoice, redemption
from treasury.documents import DocumentError, DocumentRule, VatRate, invoice_from_act, invoice_line, vat_tiyn
from treasury.documents.invoices import percent_half_up


def _vat_by_decimal(amount_tiyn: int, rate: VatRate) -> int:
    """The rule as an accountant states it: amount × rate, rounded half up to the tiyn (by magnitude)."""
    exact = Decimal(abs(amount_tiyn)) * Decimal(rate.percent) / Decimal(100)
    rounded = int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return rounded if amount_tiyn >= 0 else -rounded


@pytest.mark.parametrize(
    ("amount_tiyn", "rate", "vat"),
    [
        (100, VatRate.twelve_percent, 12),
        (4, VatRate.twelve_percent, 0),  # 0.48
        (5, VatRate.twelve_percent, 1),  # 0.60
        (13, VatRate.twelve_percent, 2),  # 1.56
        (1, VatRate.twelve_percent, 0),  # 0.12
        (156_000_000, VatRate.twelve_percent, 18_720_000),
        (-5, VatRate.twelve_percent, -1),  # a reversal mirrors its original
        (156_000_000, VatRate.zero_percent, 0),
        (156_000_000, VatRate.exempt, 0),
    ],
)
def test_vat_is_twelve_percent_of_the_line_rounded_half_up_to_the_tiyn(amount_tiyn, rate, vat):
    assert vat_tiyn(amount_tiyn, rate) == vat


@given(st.integers(min_value=-(10**15), max_value=10**15), st.sampled_from(VatRate))
def test_vat_agrees_with_decimal_half_up_rounding(amount_tiyn, rate):
    assert vat_tiyn(amount_tiyn, rate) == _vat_by_decimal(amount_tiyn, rate)


@pytest.mark.parametrize(
    ("amount_tiyn", "percent", "expected"),
    [(5, 10, 1), (15, 10, 2), (4, 10, 0), (10, 5, 1), (-5, 10, -1), (-15, 10, -2), (50, 1, 1), (49, 1, 0)],
)
def test_an_exact_half_tiyn_rounds_away_from_zero(amount_tiyn, percent, expected):
    # 12 % never lands on exactly half a tiyn; 5 % and 10 % (reduced rates) do.
    assert percent_half_up(amount_tiyn, percent) == expected


@given(st.integers(min_value=-(10**15), max_value=10**15), st.integers(min_value=0, max_value=100))
def test_percent_half_up_agrees_with_decimal_for_any_rate(amount_tiyn, percent):
    exact = Decimal(abs(amount_tiyn)) * Decimal(percent) / Decimal(100)
    magnitude = int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))

    assert percent_half_up(amount_tiyn, percent) == (magnitude if amount_tiyn >= 0 else -magnitude)


@given(redemption_sets(), st.sampled_from(VatRate))
def test_an_invoice_bills_exactly_its_act(redemptions, rate):
    act = october_act(redemptions)
    invoice = invoice_from_act(act, number="СФ-1", date=OCTOBER_END, vat_rate=rate)

    assert invoice.total_without_vat_tiyn == act.total_tiyn
    assert invoice.total_vat_tiyn == sum(_vat_by_decimal(line.amount_tiyn, rate) for line in act.lines)
    assert invoice.total_with_vat_tiyn == act.total_tiyn + invoice.total_vat_tiyn
    if rate.percent == 0:
        assert invoice.total_with_vat_tiyn == act.total_tiyn
    assert [(li.description, li.unit, li.quantity, li.unit_price_tiyn) for li in invoice.lines] == [
        (line.service, line.unit, line.quantity, line.unit_price_tiyn) for line in act.lines
    ]


def _invoice_with_line(index, **change):
    invoice = october_invoice(vat_rate=VatRate.twelve_percent)
    lines = list(invoice.lines)
    lines[index] = dataclasses.replace(lines[index], **change)
    return dataclasses.replace(invoice, lines=tuple(lines))


@pytest.mark.parametrize(
    ("make", "rule"),
    [
        (lambda: _invoice_with_line(0, amount_without_vat_tiyn=1), DocumentRule.line_amount_mismatch),
        (lambda: _invoice_with_line(0, vat_tiyn=18_720_001), DocumentRule.vat_mismatch),
        (lambda: _invoice_with_line(0, amount_with_vat_tiyn=1), DocumentRule.vat_mismatch),
        (lambda: _invoice_with_line(0, vat_rate=VatRate.exempt), DocumentRule.vat_mismatch),
        (lambda: _invoice_with_line(1, number=3), DocumentRule.line_number_sequence),
        (
            lambda: _invoice_with_line(0, quantity=-2400, amount_without_vat_tiyn=-1),
            DocumentRule.quantity_negative,
        ),
        (
            lambda: dataclasses.replace(october_invoice(), total_vat_tiyn=1, total_with_vat_tiyn=354_000_001),
            DocumentRule.total_mismatch,
        ),
        (lambda: dataclasses.replace(october_invoice(), lines=()), DocumentRule.lines_empty),
        (
            lambda: dataclasses.replace(october_invoice(), date=dt.date(2026, 10, 30)),
            DocumentRule.document_dated_too_early,
        ),
        (
            lambda: dataclasses.replace(october_invoice(), corrects="СФ-2026-0042"),
            DocumentRule.corrects_itself,
        ),
        (lambda: dataclasses.replace(october_invoice(), act_number=""), DocumentRule.text_empty),
    ],
)
def test_an_inconsistent_invoice_is_refused_with_the_rule_it_breaks(make, rule):
    with pytest.raises(DocumentError) as refused:
        make()
    assert refused.value.rule is rule


def test_a_corrective_invoice_takes_back_what_an_adjustment_act_reverses():
    reversal = redemption("Обед / Түскі ас", 110_000, quantity=-3)
    adjustment = october_act([reversal], number="АКТ-2026-11-0007", corrects="АКТ-2026-10-0042")

    invoice = invoice_from_act(
        adjustment,
        number="СФ-2026-0050",
        date=OCTOBER_END,
        vat_rate=VatRate.twelve_percent,
        corrects="СФ-2026-0042",
    )

    assert (invoice.total_without_vat_tiyn, invoice.total_vat_tiyn, invoice.total_with_vat_tiyn) == (
        -330_000,
        -39_600,
        -369_600,
    )
    with pytest.raises(DocumentError) as refused:
        invoice_from_act(adjustment, number="СФ-2026-0050", date=OCTOBER_END, vat_rate=VatRate.twelve_percent)
    assert refused.value.rule is DocumentRule.quantity_negative


def test_a_line_built_by_hand_follows_the_same_rule():
    line = invoice_line(
        number=1,
        description="Лекарства / Дәрілер",
        unit="упак.",
        quantity=3,
        unit_price_tiyn=41_667,
        vat_rate=VatRate.twelve_percent,
    )

    # 3 × 416,67 = 1 250,01 ₸; 12 % = 150,0012 ₸ → 150,00 ₸.
    assert (line.amount_without_vat_tiyn, line.vat_tiyn, line.amount_with_vat_tiyn) == (
        125_001,
        15_000,
        140_001,
    )
