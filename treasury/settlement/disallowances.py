"""Taking back a redemption after its period closed: a disallowance.

While a redemption's period is open, a wrong one is reversed in the ledger
(`ledger.vouchers.corrections.reverse_redemptions`: back onto the voucher) and simply never reaches an act.
Once the period is closed the ledger refuses that, and the customer corrects it here instead: the amount
moves from the provider's receivable back to the voucher's fund (TransferCode.REVERSAL, dated today, in an
open period; user_data_128 names the redemption), with the officer's reason. Then:

* if no live act carries the redemption (its act was rejected, or not drawn up yet), the next act for its
  period simply leaves it out;
* if an approved act carries it, drawing up the period again issues an adjustment act that corrects that
  act, and the amount is set off against the provider's next payout.

One take-back per redemption (the table's unique key, and a trigger refuses one that was reversed).
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from ledger.audit.events import json_event
from ledger.audit.inbox import append_events
from ledger.clock import business_date
from ledger.ids import derived_id
from ledger.timestamps import reserve_timestamps
from ledger.transfer_codes import TransferCode
from ledger.transfers import Transfer
from treasury.errors import RefusalKind, Refused
from treasury.settlement.approvals import REASON_CHARS_MAX
from treasury.settlement.numbering import lock_provider_settlement
from treasury.settlement.payouts import book_transfer
from treasury.settlement.periods import require_officer, require_programme

DISALLOWANCE_NAMESPACE: Final = uuid.UUID("0f6d3a2e-8b4c-4e1f-a7d5-6c9b2e0f4a18")
DISALLOWANCES_PER_REQUEST_MAX: Final = 1000


@dataclass(frozen=True, slots=True)
class Disallowance:
    id: uuid.UUID
    redemption_id: uuid.UUID
    provider_id: uuid.UUID
    amount_tiyn: int
    reason: str


_REDEMPTIONS: Final = """
SELECT r.id, r.provider_id, r.phase, r.amount_tiyn, r.effective_date, g.closed_through, g.asset,
       v.fund_account_id, pp.receivable_account_id,
       EXISTS (SELECT 1 FROM redemption_reversals x WHERE x.redemption_id = r.id)
  FROM redemptions r
  JOIN voucher_programmes g ON g.id = r.programme_id
  JOIN vouchers v ON v.id = r.voucher_id
  JOIN programme_providers pp ON pp.programme_id = r.programme_id AND pp.provider_id = r.provider_id
 WHERE r.id = ANY(%s) AND r.programme_id = %s
"""


def disallow_redemptions(
    connection: psycopg.Connection[Any],
    programme_id: uuid.UUID,
    redemption_ids: Sequence[uuid.UUID],
    reason: str,
    officer: str,
) -> list[Disallowance]:
    """Take back redemptions of closed periods (all or none). Asking again for one already disallowed
    answers its disallowance."""
    require_officer(officer)
    if not reason.strip() or len(reason) > REASON_CHARS_MAX:
        raise Refused("reason_required", f"give a reason of 1 to {REASON_CHARS_MAX} characters")
    if not 0 < len(set(redemption_ids)) <= DISALLOWANCES_PER_REQUEST_MAX:
        raise Refused("redemptions_invalid", f"name 1 to {DISALLOWANCES_PER_REQUEST_MAX} redemptions")
    require_programme(connection, programme_id)
    wanted = sorted(set(redemption_ids))
    rows = {row[0]: row for row in connection.execute(_REDEMPTIONS, (wanted, programme_id)).fetchall()}
    for provider_id in sorted({row[1] for row in rows.values()}):
        lock_provider_settlement(connection, programme_id, provider_id)
    existing = _existing(connection, wanted)
    done = []
    for redemption_id in wanted:
        if redemption_id in existing:
            done.append(existing[redemption_id])
            continue
        row = rows.get(redemption_id)
        _check(redemption_id, row)
        assert row is not None
        done.append(_disallow(connection, programme_id, row, reason, officer))
    return done


def _check(redemption_id: uuid.UUID, row: tuple[Any, ...] | None) -> None:
    if row is None:
        raise Refused(
            "redemption_not_found",
            f"{redemption_id} is not a redemption of the programme",
            RefusalKind.NOT_FOUND,
        )
    if row[2] not in (1, 3):
        raise Refused("redemption_not_settled", f"{redemption_id} moved no value (a reservation or a void)")
    if row[9]:
        raise Refused("redemption_reversed", f"{redemption_id} was reversed already", RefusalKind.CONFLICT)
    if row[5] is None or row[4] > row[5]:
        raise Refused(
            "period_open",
            f"{redemption_id} is in an open period: reverse it in the ledger instead",
            RefusalKind.CONFLICT,
        )


def _disallow(
    connection: psycopg.Connection[Any],
    programme_id: uuid.UUID,
    row: tuple[Any, ...],
    reason: str,
    officer: str,
) -> Disallowance:
    redemption_id, provider_id, _, amount, _, _, asset, fund, receivable, _ = row
    disallowance_id = derived_id(DISALLOWANCE_NAMESPACE, redemption_id)
    transfer_id = derived_id(DISALLOWANCE_NAMESPACE, disallowance_id, "transfer")
    timestamp = reserve_timestamps(connection)
    day = business_date(timestamp)
    book_transfer(
        connection,
        Transfer(
            transfer_id,
            receivable,
            fund,
            amount,
            asset,
            int(TransferCode.REVERSAL),
            user_data_128=redemption_id,
            effective_date=day,
        ),
    )
    connection.execute(
        """INSERT INTO settlement_disallowances (id, redemption_id, programme_id, provider_id, amount_tiyn,
               fund_account_id, transfer_id, reason, officer, effective_date, "timestamp")
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            disallowance_id,
            redemption_id,
            programme_id,
            provider_id,
            amount,
            fund,
            transfer_id,
            reason,
            officer,
            day,
            timestamp,
        ),
    )
    append_events(
        connection,
        [
            json_event(
                "redemption_disallowed",
                {
                    "id": str(disallowance_id),
                    "redemption": str(redemption_id),
                    "programme": str(programme_id),
                    "provider": str(provider_id),
                    "amount_tiyn": amount,
                    "reason": reason,
                    "officer": officer,
                    "effective_date": day.isoformat(),
                },
            )
        ],
    )
    return Disallowance(disallowance_id, redemption_id, provider_id, amount, reason)


def _existing(
    connection: psycopg.Connection[Any], redemption_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Disallowance]:
    rows = connection.execute(
        """SELECT id, redemption_id, provider_id, amount_tiyn, reason FROM settlement_disallowances
            WHERE redemption_id = ANY(%s)""",
        (redemption_ids,),
    ).fetchall()
    return {row[1]: Disallowance(*row) for row in rows}
