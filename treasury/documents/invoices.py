"""The invoice (счёт-фактура / шот-фактура; in Kazakhstan the electronic ЭСФ) that bills an act.

Each line is priced without VAT, as the ЭСФ prints it: amount without VAT = quantity × unit price; the VAT
is computed on that amount **per line, rounded half up to the tiyn** (half away from zero for the negative
lines of a corrective invoice, so a reversal mirrors its original exactly); amount with VAT = amount
without VAT + VAT. The totals are the sums of the lines' three amounts. All arithmetic is on integers.

Built from an act by :func:`invoice_from_act`, the invoice's lines are the act's lines one for one, so its
``total_without_vat_tiyn`` equals the act's total; with a 0 % or exempt rate so does ``total_with_vat_tiyn``.
Whether a programme's voucher prices include VAT is the programme's rule, not this module's: a tariff that
includes 12 % VAT must be stated net of it before it reaches an act.
"""

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from treasury.documents.acts import ServiceAct
from treasury.documents.parties import ContractReference, Party
from treasury.documents.rules import (
    DOCUMENT_NUMBER_CHARS_MAX,
    SERVICE_CHARS_MAX,
    UNIT_CHARS_MAX,
    DocumentError,
    DocumentRule,
    require_amount,
    require_line_count,
    require_line_numbers,
    require_quantity,
    require_text,
    require_unit_price,
)


class VatRate(StrEnum):
    """The VAT treatment of a line. ``exempt`` (освобождено от НДС) is not the same as a 0 % rate: a 0 %
    turnover is taxable at zero (exports), an exempt one is outside VAT (most medical and educational
    services), and the ЭСФ prints them differently."""

    exempt = "exempt"
    zero_percent = "0%"
    twelve_percent = "12%"
    # The Tax Code in force from 1 January 2026 sets the standard rate at 16 %; 12 % remains for documents
    # of earlier periods.
    sixteen_percent = "16%"

    @property
    def percent(self) -> int:
        """The rate in whole percent; 0 for an exempt line, which carries no VAT."""
        return {
            VatRate.exempt: 0,
            VatRate.zero_percent: 0,
            VatRate.twelve_percent: 12,
            VatRate.sixteen_percent: 16,
        }[self]


def vat_tiyn(amount_without_vat_tiyn: int, rate: VatRate) -> int:
    """The VAT on one line: amount × rate, rounded half up to the tiyn (see :func:`percent_half_up`).

    >>> vat_tiyn(5, VatRate.twelve_percent)  # 0.60 tiyn
    1
    >>> vat_tiyn(-5, VatRate.twelve_percent)
    -1
    """
    return percent_half_up(amount_without_vat_tiyn, rate.percent)


def percent_half_up(amount_tiyn: int, percent: int) -> int:
    """`percent` % of an amount, to the tiyn: an exact half rounds away from zero (half up for positives).

    12 % of a whole number of tiyn never ends in exactly half a tiyn, but 5 % or 10 % can (10 % of 5 tiyn),
    so the tie rule is stated and tested here rather than left to chance.
    """
    magnitude, remainder = divmod(abs(amount_tiyn) * percent, 100)
    if 2 * remainder >= 100:
        magnitude += 1
    return magnitude if amount_tiyn >= 0 else -magnitude


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """One line of the invoice: a service, its quantity and net price, and the VAT on it."""

    number: int
    description: str
    unit: str
    quantity: int
    unit_price_tiyn: int
    amount_without_vat_tiyn: int
    vat_rate: VatRate
    vat_tiyn: int
    amount_with_vat_tiyn: int

    def check(self, *, corrective: bool) -> None:
        """Raise :class:`DocumentError` unless the line's three amounts follow from quantity, price, rate."""
        where = f"invoice line {self.number}"
        require_text(self.description, f"the description of {where}", SERVICE_CHARS_MAX)
        require_text(self.unit, f"the unit of {where}", UNIT_CHARS_MAX)
        require_quantity(self.quantity, f"the quantity of {where}", adjustment=corrective)
        require_unit_price(self.unit_price_tiyn, f"the unit price of {where}")
        for amount, name in (
            (self.amount_without_vat_tiyn, "amount without VAT"),
            (self.amount_with_vat_tiyn, "amount with VAT"),
        ):
            require_amount(amount, f"the {name} of {where}")
        if self.amount_without_vat_tiyn != self.quantity * self.unit_price_tiyn:
            raise DocumentError(
                DocumentRule.line_amount_mismatch,
                f"the amount without VAT of {where} is not quantity × unit price",
            )
        if (
            self.vat_tiyn != vat_tiyn(self.amount_without_vat_tiyn, self.vat_rate)
            or self.amount_with_vat_tiyn != self.amount_without_vat_tiyn + self.vat_tiyn
        ):
            raise DocumentError(DocumentRule.vat_mismatch, f"the VAT of {where} is not what its rate gives")


def invoice_line(
    *, number: int, description: str, unit: str, quantity: int, unit_price_tiyn: int, vat_rate: VatRate
) -> InvoiceLine:
    """A line with its amounts computed: net = quantity × price, VAT per line half up, gross = net + VAT."""
    amount = quantity * unit_price_tiyn
    vat = vat_tiyn(amount, vat_rate)
    return InvoiceLine(
        number=number,
        description=description,
        unit=unit,
        quantity=quantity,
        unit_price_tiyn=unit_price_tiyn,
        amount_without_vat_tiyn=amount,
        vat_rate=vat_rate,
        vat_tiyn=vat,
        amount_with_vat_tiyn=amount + vat,
    )


@dataclass(frozen=True, slots=True)
class Invoice:
    """An invoice from a seller (the provider) to a buyer (the programme's administrator).

    ``turnover_date`` is the ЭСФ's date of turnover (дата совершения оборота): for services, the day the
    act was drawn up. ``act_number`` names the act it bills; ``corrects`` the invoice a corrective invoice
    corrects (only then may quantities be negative).
    """

    number: str
    date: dt.date
    turnover_date: dt.date
    seller: Party
    buyer: Party
    contract: ContractReference
    act_number: str | None
    lines: tuple[InvoiceLine, ...]
    total_without_vat_tiyn: int
    total_vat_tiyn: int
    total_with_vat_tiyn: int
    corrects: str | None = None

    def __post_init__(self) -> None:
        require_text(self.number, "the invoice number", DOCUMENT_NUMBER_CHARS_MAX)
        for reference, name in ((self.act_number, "act"), (self.corrects, "corrected invoice")):
            if reference is not None:
                require_text(reference, f"the number of the {name}", DOCUMENT_NUMBER_CHARS_MAX)
        if self.corrects == self.number:
            raise DocumentError(DocumentRule.corrects_itself, "a corrective invoice cannot correct itself")
        assert type(self.date) is dt.date and type(self.turnover_date) is dt.date, "dates are business days"
        if self.date < self.turnover_date:
            raise DocumentError(
                DocumentRule.document_dated_too_early, "the invoice is dated before its turnover"
            )
        require_line_count(len(self.lines), "the invoice")
        require_line_numbers([line.number for line in self.lines], "the invoice's lines")
        for line in self.lines:
            line.check(corrective=self.corrects is not None)
        _require_totals(self)


def invoice_from_act(
    act: ServiceAct, *, number: str, date: dt.date, vat_rate: VatRate, corrects: str | None = None
) -> Invoice:
    """The invoice that bills `act`: the contractor sells, the customer buys, one line per act line.

    `corrects` names the invoice this one corrects, when `act` is an adjustment act that takes quantities
    back; its turnover date is the act's date.
    """
    lines = tuple(
        invoice_line(
            number=line.number,
            description=line.service,
            unit=line.unit,
            quantity=line.quantity,
            unit_price_tiyn=line.unit_price_tiyn,
            vat_rate=vat_rate,
        )
        for line in act.lines
    )
    return Invoice(
        number=number,
        date=date,
        turnover_date=act.date,
        seller=act.contractor,
        buyer=act.customer,
        contract=act.contract,
        act_number=act.number,
        lines=lines,
        total_without_vat_tiyn=sum(line.amount_without_vat_tiyn for line in lines),
        total_vat_tiyn=sum(line.vat_tiyn for line in lines),
        total_with_vat_tiyn=sum(line.amount_with_vat_tiyn for line in lines),
        corrects=corrects,
    )


def _require_totals(invoice: Invoice) -> None:
    totals = (
        (
            invoice.total_without_vat_tiyn,
            "amount without VAT",
            [li.amount_without_vat_tiyn for li in invoice.lines],
        ),
        (invoice.total_vat_tiyn, "VAT", [li.vat_tiyn for li in invoice.lines]),
        (invoice.total_with_vat_tiyn, "amount with VAT", [li.amount_with_vat_tiyn for li in invoice.lines]),
    )
    for total, name, amounts in totals:
        require_amount(total, f"the invoice's total {name}")
        if total != sum(amounts):
            raise DocumentError(
                DocumentRule.total_mismatch, f"the invoice's total {name} is not the sum of its lines"
            )
