"""What an act is drawn up from: a provider's redemptions in a closed period, priced as the programme's
policy prices them, and the take-backs (ledger reversals, settlement disallowances) of redemptions that a
live act already carries.

**Which redemptions count.** Phases 1 (single) and 3 (post) moved value to the provider's receivable;
2 (reserve) and 4 (void) did not. A redemption is left off when it was taken back before the act was
drawn up (reversed in its open period, or disallowed after) — it was never a service — and when a live
(not rejected) act already settles it.

**How a redemption is priced** (the service's name and unit are the policy's ``service`` in force at the
moment of service: the terminal's time offline, the ledger's online):

* it states units (gas: m³) and its amount divides by them: quantity = units, unit price = amount ÷ units
  (the policy's ``unit_price_tiyn``, which the redemption was judged against);
* otherwise: quantity 1 at its amount. A set price per use (a meal at 600 tenge) is exactly this, and so is
  a partial amount with no set price (a prescription): redemptions of equal amount share a line, and
  each line traces to its ids. (A unit-priced amount that does not divide, which the judge never accepts,
  would print as one «услуга».)

An adjustment line mirrors the line of the redemption it takes back: the same unit price, the quantity
and amount negated; it lists the redemption's id (the take-back's own id is kept in the act's entries).
"""

import bisect
import uuid
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from ledger.vouchers.policy import Policy, Service, parse_policy_bytes
from treasury.documents import Redemption
from treasury.settlement.periods import SettlementPeriod

FALLBACK_UNIT: Final = "услуга"
# The states of an act that may be corrected by an adjustment act: approved, or paid.
CORRECTABLE_STATES: Final = (4, 5)


@dataclass(frozen=True, slots=True)
class SettlementEntry:
    """One priced entry of an act: a redemption (regular act) or the take-back of one (adjustment act)."""

    entry_id: uuid.UUID
    redemption_id: uuid.UUID
    line: Redemption


@dataclass(frozen=True, slots=True)
class PolicyHistory:
    """A programme's policy versions by the ledger time they took effect."""

    valid_from: tuple[int, ...]
    policies: tuple[Policy, ...]

    def service_at(self, moment: int) -> Service:
        position = bisect.bisect_right(self.valid_from, moment) - 1
        return self.policies[max(position, 0)].service


def policy_history(connection: psycopg.Connection[Any], programme_id: uuid.UUID) -> PolicyHistory:
    rows = connection.execute(
        "SELECT valid_from, body FROM voucher_policies WHERE programme_id = %s ORDER BY valid_from, version",
        (programme_id,),
    ).fetchall()
    assert rows, "a registered programme has a policy"
    return PolicyHistory(tuple(r[0] for r in rows), tuple(parse_policy_bytes(bytes(r[1])) for r in rows))


def priced_redemption(redemption_id: uuid.UUID, amount_tiyn: int, units: int, service: Service) -> Redemption:
    """The act entry for one redemption (see the module's pricing rule)."""
    if units > 0 and amount_tiyn % units == 0:
        return Redemption(redemption_id, service.name, service.unit, amount_tiyn // units, units, amount_tiyn)
    unit = service.unit if units == 0 else FALLBACK_UNIT
    return Redemption(redemption_id, service.name, unit, amount_tiyn, 1, amount_tiyn)


def taken_back(line: Redemption) -> Redemption:
    """The adjustment entry that takes `line` back in full."""
    return Redemption(
        line.id, line.service, line.unit, line.unit_price_tiyn, -line.quantity, -line.amount_tiyn
    )


_MOMENT: Final = 'CASE WHEN r.offline THEN r.requested_at ELSE r."timestamp" END'
_UNSETTLED: Final = f"""
SELECT r.id, r.amount_tiyn, r.units, {_MOMENT}
  FROM redemptions r
 WHERE r.provider_id = %s AND r.programme_id = %s AND r.effective_date BETWEEN %s AND %s AND r.phase IN (1, 3)
   AND NOT EXISTS (SELECT 1 FROM settlement_claims c WHERE c.entry_id = r.id)
   AND NOT EXISTS (SELECT 1 FROM redemption_reversals v WHERE v.redemption_id = r.id)
   AND NOT EXISTS (SELECT 1 FROM settlement_disallowances d WHERE d.redemption_id = r.id)
 ORDER BY r.id
"""
_TAKE_BACKS: Final = f"""
SELECT t.id, r.id, r.amount_tiyn, r.units, {_MOMENT}, c.act_id
  FROM (SELECT id, redemption_id FROM redemption_reversals WHERE provider_id = %(provider)s
                                                           AND programme_id = %(programme)s
        UNION ALL
        SELECT id, redemption_id FROM settlement_disallowances WHERE programme_id = %(programme)s
                                                               AND provider_id = %(provider)s) t
  JOIN redemptions r ON r.id = t.redemption_id
  JOIN settlement_claims c ON c.entry_id = r.id
  JOIN settlement_acts a ON a.id = c.act_id AND a.kind = 1
  JOIN settlement_act_states s ON s.act_id = a.id AND s.state = ANY(%(states)s)
 WHERE r.effective_date BETWEEN %(start)s AND %(end)s
   AND NOT EXISTS (SELECT 1 FROM settlement_claims x WHERE x.entry_id = t.id)
 ORDER BY c.act_id, t.id
"""


def unsettled_redemptions(
    connection: psycopg.Connection[Any],
    programme_id: uuid.UUID,
    provider_id: uuid.UUID,
    period: SettlementPeriod,
    history: PolicyHistory,
) -> list[SettlementEntry]:
    """The provider's redemptions in the period that no live act settles and nobody took back."""
    rows = connection.execute(_UNSETTLED, (provider_id, programme_id, period.start, period.end)).fetchall()
    return [
        SettlementEntry(row[0], row[0], priced_redemption(row[0], row[1], row[2], history.service_at(row[3])))
        for row in rows
    ]


def take_backs_to_adjust(
    connection: psycopg.Connection[Any],
    programme_id: uuid.UUID,
    provider_id: uuid.UUID,
    period: SettlementPeriod,
    history: PolicyHistory,
) -> dict[uuid.UUID, list[SettlementEntry]]:
    """Take-backs of the period's redemptions that an approved (or paid) act carries and no live
    adjustment act settles yet, by the act they correct."""
    rows = connection.execute(
        _TAKE_BACKS,
        {
            "provider": provider_id,
            "programme": programme_id,
            "states": list(CORRECTABLE_STATES),
            "start": period.start,
            "end": period.end,
        },
    ).fetchall()
    groups: dict[uuid.UUID, list[SettlementEntry]] = {}
    for take_back_id, redemption_id, amount, units, moment, act_id in rows:
        line = priced_redemption(redemption_id, amount, units, history.service_at(moment))
        groups.setdefault(act_id, []).append(SettlementEntry(take_back_id, redemption_id, taken_back(line)))
    return groups


def programme_provider_ids(connection: psycopg.Connection[Any], programme_id: uuid.UUID) -> list[uuid.UUID]:
    """Every provider ever enrolled in the programme (a suspended or withdrawn one is still owed)."""
    rows = connection.execute(
        "SELECT provider_id FROM programme_providers WHERE programme_id = %s ORDER BY provider_id",
        (programme_id,),
    ).fetchall()
    return [row[0] for row in rows]
