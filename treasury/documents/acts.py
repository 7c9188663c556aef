"""The act of services rendered (акт оказанных услуг, form Р-1): what a provider did in a period, priced.

A provider is paid only for what was redeemed, so an act is built from the provider's redemptions in a
closed period (:func:`build_service_act`): one line per (service, unit, unit price), whose quantity and
amount are the sums of that group's redemptions and which lists their ids. The act's total is then the sum
of the redemptions to the tiyn, and every tiyn on it traces to a redemption.

Once issued an act never changes. A correction is a new *adjustment act* whose ``corrects`` names the act
it corrects; only an adjustment act may carry negative quantities (redemptions reversed after the
corrected act was issued).
"""

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from treasury.documents.parties import ContractReference, Party
from treasury.documents.rules import (
    ACT_REDEMPTIONS_MAX,
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


@dataclass(frozen=True, slots=True)
class Redemption:
    """One redemption as settlement sees it: what was served, how much of it, at what price.

    A reversal is its own entry with a negative quantity and amount (and its own id). Within the period of
    the redemption it reverses, it nets out on the same line; after that act is issued, it belongs on an
    adjustment act, the only kind whose lines may be negative.
    """

    id: uuid.UUID
    service: str
    unit: str
    unit_price_tiyn: int
    quantity: int
    amount_tiyn: int


@dataclass(frozen=True, slots=True)
class ActLine:
    """One printed line of the act: a service at one unit price, with the redemptions it sums."""

    number: int
    service: str
    unit: str
    quantity: int
    unit_price_tiyn: int
    amount_tiyn: int
    redemption_ids: tuple[uuid.UUID, ...]

    def check(self, *, adjustment: bool) -> None:
        """Raise :class:`DocumentError` unless the line is well formed and amount = quantity × price."""
        where = f"act line {self.number}"
        require_text(self.service, f"the service of {where}", SERVICE_CHARS_MAX)
        require_text(self.unit, f"the unit of {where}", UNIT_CHARS_MAX)
        require_quantity(self.quantity, f"the quantity of {where}", adjustment=adjustment)
        require_unit_price(self.unit_price_tiyn, f"the unit price of {where}")
        require_amount(self.amount_tiyn, f"the amount of {where}")
        if self.amount_tiyn != self.quantity * self.unit_price_tiyn:
            raise DocumentError(
                DocumentRule.line_amount_mismatch, f"the amount of {where} is not quantity × unit price"
            )
        if not self.redemption_ids:
            raise DocumentError(DocumentRule.redemption_ids_empty, f"{where} traces to no redemption")


@dataclass(frozen=True, slots=True)
class ServiceAct:
    """An act of services rendered between a customer (the programme's administrator) and a contractor.

    ``period_start`` and ``period_end`` are inclusive business days (Asia/Almaty); the act is dated on or
    after the period's last day. ``total_tiyn`` is the sum of the lines' amounts.
    """

    number: str
    date: dt.date
    customer: Party
    contractor: Party
    contract: ContractReference
    period_start: dt.date
    period_end: dt.date
    lines: tuple[ActLine, ...]
    total_tiyn: int
    corrects: str | None = None

    def __post_init__(self) -> None:
        require_text(self.number, "the act number", DOCUMENT_NUMBER_CHARS_MAX)
        if self.corrects is not None:
            require_text(self.corrects, "the number of the corrected act", DOCUMENT_NUMBER_CHARS_MAX)
            if self.corrects == self.number:
                raise DocumentError(DocumentRule.corrects_itself, "an adjustment act cannot correct itself")
        _require_period(self.period_start, self.period_end, self.date)
        require_line_count(len(self.lines), "the act")
        require_line_numbers([line.number for line in self.lines], "the act's lines")
        for line in self.lines:
            line.check(adjustment=self.is_adjustment)
        _require_distinct_groups(self.lines)
        _require_distinct_redemptions(self.lines)
        require_amount(self.total_tiyn, "the act total")
        if self.total_tiyn != sum(line.amount_tiyn for line in self.lines):
            raise DocumentError(DocumentRule.total_mismatch, "the act total is not the sum of its lines")

    @property
    def is_adjustment(self) -> bool:
        return self.corrects is not None

    @property
    def redemption_count(self) -> int:
        return sum(len(line.redemption_ids) for line in self.lines)


def act_lines_from_redemptions(redemptions: Iterable[Redemption]) -> tuple[ActLine, ...]:
    """Group redemptions into act lines by (service, unit, unit price), in that sort order.

    Each line's quantity and amount are its redemptions' sums and its ids are sorted, so the same set of
    redemptions gives the same lines in whatever order it is read. Raises :class:`DocumentError` for a
    redemption counted twice, one whose amount is not quantity × unit price, or a group whose quantities
    cancel out (leave a redemption reversed within the same period out together with its reversal).
    """
    groups: defaultdict[tuple[str, str, int], list[Redemption]] = defaultdict(list)
    seen: set[uuid.UUID] = set()
    for redemption in redemptions:
        if redemption.id in seen:
            raise DocumentError(DocumentRule.redemption_duplicate, "a redemption is listed twice")
        seen.add(redemption.id)
        if len(seen) > ACT_REDEMPTIONS_MAX:
            raise DocumentError(
                DocumentRule.redemptions_too_many, f"an act sums at most {ACT_REDEMPTIONS_MAX} redemptions"
            )
        require_quantity(redemption.quantity, "a redemption's quantity", adjustment=True)
        require_unit_price(redemption.unit_price_tiyn, "a redemption's unit price")
        if redemption.amount_tiyn != redemption.quantity * redemption.unit_price_tiyn:
            raise DocumentError(
                DocumentRule.redemption_amount_mismatch,
                "a redemption's amount is not its quantity × unit price",
            )
        groups[(redemption.service, redemption.unit, redemption.unit_price_tiyn)].append(redemption)
    lines = []
    for number, (service, unit, unit_price_tiyn) in enumerate(sorted(groups), start=1):
        members = groups[(service, unit, unit_price_tiyn)]
        lines.append(
            ActLine(
                number=number,
                service=service,
                unit=unit,
                quantity=sum(r.quantity for r in members),
                unit_price_tiyn=unit_price_tiyn,
                amount_tiyn=sum(r.amount_tiyn for r in members),
                redemption_ids=tuple(sorted(r.id for r in members)),
            )
        )
    return tuple(lines)


def build_service_act(
    *,
    number: str,
    date: dt.date,
    customer: Party,
    contractor: Party,
    contract: ContractReference,
    period_start: dt.date,
    period_end: dt.date,
    redemptions: Iterable[Redemption],
    corrects: str | None = None,
) -> ServiceAct:
    """The act for a provider's redemptions in a period; its total is their sum to the tiyn."""
    redemptions = tuple(redemptions)
    lines = act_lines_from_redemptions(redemptions)
    act = ServiceAct(
        number=number,
        date=date,
        customer=customer,
        contractor=contractor,
        contract=contract,
        period_start=period_start,
        period_end=period_end,
        lines=lines,
        total_tiyn=sum(line.amount_tiyn for line in lines),
        corrects=corrects,
    )
    assert act.total_tiyn == sum(r.amount_tiyn for r in redemptions), "act total differs from redemptions"
    return act


def _require_period(start: dt.date, end: dt.date, document_date: dt.date) -> None:
    for day in (start, end, document_date):
        assert type(day) is dt.date, "documents are dated by business day (a date, not a datetime)"
    if end < start:
        raise DocumentError(DocumentRule.period_reversed, "the period ends before it starts")
    if document_date < end:
        raise DocumentError(
            DocumentRule.document_dated_too_early, "the document is dated before its period ends"
        )


def _require_distinct_groups(lines: tuple[ActLine, ...]) -> None:
    groups = {(line.service, line.unit, line.unit_price_tiyn) for line in lines}
    if len(groups) != len(lines):
        raise DocumentError(
            DocumentRule.line_duplicate_group, "two act lines share service, unit and unit price"
        )


def _require_distinct_redemptions(lines: tuple[ActLine, ...]) -> None:
    count = sum(len(line.redemption_ids) for line in lines)
    if count > ACT_REDEMPTIONS_MAX:
        raise DocumentError(
            DocumentRule.redemptions_too_many, f"an act sums at most {ACT_REDEMPTIONS_MAX} redemptions"
        )
    if len({rid for line in lines for rid in line.redemption_ids}) != count:
        raise DocumentError(DocumentRule.redemption_duplicate, "a redemption is counted twice on the act")
