"""Drawing up acts and invoices for a closed period, provider by provider.

For one provider, one programme and one closed period (`issue_provider_acts`, one transaction):

1. a **regular act** of the redemptions no live act settles yet (see `sources.py` for which count and how
   they are priced), dated today, with its invoice;
2. an **adjustment act** for each approved (or paid) act whose redemptions were taken back since — by a
   disallowance after the period closed — with negative lines and ``corrects`` naming that act, and its
   corrective invoice (``corrects`` naming the original invoice).

Running it again issues only what is still unsettled, so it is safe to retry and is how a rejected act is
regenerated (a rejection releases its redemptions; the new act gets a new number). `issue_period_acts`
runs every provider of the programme, one transaction each: a provider whose profile is missing or
would make an invalid document is reported with the rule it broke and does not hold up the others.
"""

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import psycopg
import structlog

from ledger.clock import business_date
from ledger.ids import new_id
from ledger.timestamps import reserve_timestamps
from ledger.unit_of_work import UnitOfWork
from treasury.documents import DocumentError, ServiceAct, VatRate, build_service_act, invoice_from_act
from treasury.errors import RefusalKind, Refused
from treasury.programmes import Programme
from treasury.settlement.numbering import NumberKind, lock_provider_settlement, next_number
from treasury.settlement.parties import ProviderParty, customer_party, provider_party
from treasury.settlement.periods import (
    ClosedPeriod,
    require_closed_period,
    require_officer,
    require_programme,
)
from treasury.settlement.records import (
    ActKind,
    ActRecord,
    find_act,
    live_invoice_number,
    store_act,
    store_invoice,
)
from treasury.settlement.sources import (
    SettlementEntry,
    policy_history,
    programme_provider_ids,
    take_backs_to_adjust,
    unsettled_redemptions,
)

log = structlog.get_logger("treasury.settlement")

# The programme's VAT treatment (programmes.vat_rate) as the invoice prints it.
VAT_RATES: Final = {
    "exempt": VatRate.exempt,
    "0": VatRate.zero_percent,
    "12": VatRate.twelve_percent,
    "16": VatRate.sixteen_percent,
}


@dataclass(frozen=True, slots=True)
class IssuedAct:
    id: uuid.UUID
    number: str
    kind: ActKind
    provider_id: uuid.UUID
    total_tiyn: int
    sha256: bytes
    invoice_number: str
    corrects: str | None


@dataclass(frozen=True, slots=True)
class ProviderOutcome:
    """What drawing up one provider's acts gave: the acts issued, or the refusal that stopped it."""

    provider_id: uuid.UUID
    acts: tuple[IssuedAct, ...] = ()
    refusal_code: str = ""
    refusal_message: str = ""


def issue_provider_acts(
    connection: psycopg.Connection[Any],
    programme_id: uuid.UUID,
    provider_id: uuid.UUID,
    period_start: dt.date,
    officer: str,
) -> list[IssuedAct]:
    """Issue the provider's unsettled acts for a closed period (see the module docstring)."""
    require_officer(officer)
    programme = require_programme(connection, programme_id)
    closed = require_closed_period(connection, programme, period_start)
    lock_provider_settlement(connection, programme_id, provider_id)
    vat_rate = _vat_rate(programme)
    history = policy_history(connection, programme_id)
    entries = unsettled_redemptions(connection, programme_id, provider_id, closed.period, history)
    adjustments = take_backs_to_adjust(connection, programme_id, provider_id, closed.period, history)
    if not entries and not adjustments:
        return []
    today = business_date(reserve_timestamps(connection))
    parties = provider_party(connection, programme, provider_id)
    issued = []
    if entries:
        issued.append(_issue(connection, programme, closed, parties, entries, today, vat_rate, officer, None))
    for corrected_id, take_backs in adjustments.items():
        issued.append(
            _issue(connection, programme, closed, parties, take_backs, today, vat_rate, officer, corrected_id)
        )
    return issued


def _issue(
    connection: psycopg.Connection[Any],
    programme: Programme,
    closed: ClosedPeriod,
    parties: ProviderParty,
    entries: Sequence[SettlementEntry],
    today: dt.date,
    vat_rate: VatRate,
    officer: str,
    corrected_id: uuid.UUID | None,
) -> IssuedAct:
    corrected = find_act(connection, act_id=corrected_id) if corrected_id is not None else None
    label = closed.period.label
    number = next_number(connection, programme.id, programme.draft.code, NumberKind.ACT, label)
    invoice_number = next_number(connection, programme.id, programme.draft.code, NumberKind.INVOICE, label)
    try:
        act = _build_act(number, today, programme, closed, parties, entries, corrected)
        invoice = invoice_from_act(
            act,
            number=invoice_number,
            date=today,
            vat_rate=vat_rate,
            corrects=live_invoice_number(connection, corrected.id) if corrected is not None else None,
        )
    except DocumentError as error:
        raise Refused(f"document_{error.rule.value}", str(error), RefusalKind.CONFLICT) from None
    act_id = new_id()
    digest = store_act(
        connection,
        act_id,
        programme.id,
        parties.provider_id,
        act,
        entries,
        officer,
        corrected.id if corrected is not None else None,
    )
    store_invoice(connection, act_id, invoice)
    kind = ActKind.ADJUSTMENT if corrected is not None else ActKind.REGULAR
    return IssuedAct(
        act_id, number, kind, parties.provider_id, act.total_tiyn, digest, invoice_number, act.corrects
    )


def _build_act(
    number: str,
    today: dt.date,
    programme: Programme,
    closed: ClosedPeriod,
    parties: ProviderParty,
    entries: Sequence[SettlementEntry],
    corrected: ActRecord | None,
) -> ServiceAct:
    return build_service_act(
        number=number,
        date=today,
        customer=customer_party(programme),
        contractor=parties.party,
        contract=parties.contract,
        period_start=closed.period.start,
        period_end=closed.period.end,
        redemptions=[entry.line for entry in entries],
        corrects=corrected.number if corrected is not None else None,
    )


def _vat_rate(programme: Programme) -> VatRate:
    rate = VAT_RATES.get(programme.draft.vat_rate)
    if rate is None:
        raise Refused(
            "vat_rate_unsupported",
            f"the invoice cannot print a {programme.draft.vat_rate} % VAT rate yet",
            RefusalKind.CONFLICT,
        )
    return rate


def issue_period_acts(
    unit_of_work: UnitOfWork, programme_id: uuid.UUID, period_start: dt.date, officer: str
) -> list[ProviderOutcome]:
    """Every provider of the programme, one transaction each; one outcome per provider with anything to
    settle (or a refusal). Refuses as a whole only when the programme or the period is wrong."""

    def check(connection: psycopg.Connection[Any]) -> list[uuid.UUID]:
        require_officer(officer)
        require_closed_period(connection, require_programme(connection, programme_id), period_start)
        return programme_provider_ids(connection, programme_id)

    outcomes = []
    for provider_id in unit_of_work.read(check):
        try:
            acts = unit_of_work.run(
                partial(
                    issue_provider_acts,
                    programme_id=programme_id,
                    provider_id=provider_id,
                    period_start=period_start,
                    officer=officer,
                )
            )
        except Refused as refusal:
            outcomes.append(ProviderOutcome(provider_id, (), refusal.code, refusal.message))
            continue
        if acts:
            outcomes.append(ProviderOutcome(provider_id, tuple(acts)))
    log.info(
        "settlement_acts_issued",
        programme=str(programme_id),
        period_start=period_start.isoformat(),
        acts=sum(len(o.acts) for o in outcomes),
        refused=sum(1 for o in outcomes if o.refusal_code),
    )
    return outcomes
