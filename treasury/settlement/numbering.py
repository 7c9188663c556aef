"""Document numbers and the locks settlement takes.

Numbers are per programme and gapless, one sequence per kind (a row in `settlement_counters`, bumped in the
issuing transaction, so a rolled-back issue leaves no hole):

    act            АКТ-<programme code>-<period label>-<n>     АКТ-SM-2026-AST-2026-10-17
    invoice        СФ-<programme code>-<period label>-<n>      СФ-SM-2026-AST-2026-10-17
    payment order  ПП-<programme code>-<n>                     ПП-SM-2026-AST-5

The period label (2026-10, 2026-W43 or 2026-10-27 by the programme's cycle) is for people; `n` alone is
unique within the programme. An adjustment act is numbered like any act; its `corrects` names the original.
"""

import uuid
from enum import StrEnum
from typing import Any, Final

import psycopg

from ledger.ids import derived_id

SETTLEMENT_LOCK_NAMESPACE: Final = uuid.UUID("5b0e4a7c-1f3d-4c2e-8a6b-9d7f0e1c2b3a")


class NumberKind(StrEnum):
    ACT = "act"
    INVOICE = "invoice"
    PAYMENT_ORDER = "payment_order"


_PREFIX: Final = {NumberKind.ACT: "АКТ", NumberKind.INVOICE: "СФ", NumberKind.PAYMENT_ORDER: "ПП"}
_BUMP: Final = """
INSERT INTO settlement_counters (programme_id, kind, last_value) VALUES (%s, %s, 1)
ON CONFLICT (programme_id, kind) DO UPDATE SET last_value = settlement_counters.last_value + 1
RETURNING last_value
"""


def next_number(
    connection: psycopg.Connection[Any], programme_id: uuid.UUID, code: str, kind: NumberKind, label: str = ""
) -> str:
    """The next number of `kind` in the programme; its counter stays locked until commit."""
    row = connection.execute(_BUMP, (programme_id, kind.value)).fetchone()
    assert row is not None
    parts = [_PREFIX[kind], code] + ([label] if label else []) + [str(row[0])]
    return "-".join(parts)


def lock_provider_settlement(
    connection: psycopg.Connection[Any], programme_id: uuid.UUID, provider_id: uuid.UUID
) -> None:
    """Serialise settlement work on one provider in one programme until commit: drawing up its acts,
    taking back its redemptions, paying it (the set-offs it owes are counted under this lock)."""
    key = derived_id(SETTLEMENT_LOCK_NAMESPACE, programme_id, provider_id).int >> 65
    connection.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
