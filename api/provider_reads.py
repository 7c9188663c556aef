"""What the providers router reads, straight from the voucher tables: a provider's terminals, its
receivable in each programme, and its redemption history. Pure reads, each filtered by the provider, so a
forged cursor or another provider's id reads nothing the caller could not read anyway."""

import uuid
from typing import Any, Final

import psycopg

from api.schemas.common import at
from api.schemas.providers import ProgrammeReceivableView, TerminalView
from ledger.vouchers.paseto import encode_k4_public
from ledger.vouchers.states import ProviderState

_TERMINAL_COLUMNS: Final = 'id, provider_id, name, public_key, "timestamp", revoked_at'
_RECEIVABLES: Final = """
SELECT pp.programme_id, pp.receivable_account_id, pp.state, a.asset,
       a.credits_posted, a.debits_posted, a.credits_pending
  FROM programme_providers pp JOIN accounts a ON a.id = pp.receivable_account_id
 WHERE pp.provider_id = %s
 ORDER BY pp.programme_id
"""
# Newest first; the cursor is the last row's (timestamp, id). Ledger timestamps are unique.
_REDEMPTIONS: Final = """
SELECT id, voucher_id, programme_id, terminal_id, phase, reserved_id, amount_tiyn, units, effective_date,
       offline, "timestamp"
  FROM redemptions
 WHERE provider_id = %(provider)s
   AND (%(programme)s::uuid IS NULL OR programme_id = %(programme)s::uuid)
   AND (%(before)s::bigint IS NULL OR ("timestamp", id) < (%(before)s::bigint, %(before_id)s::uuid))
 ORDER BY "timestamp" DESC, id DESC
 LIMIT %(limit)s
"""


def _terminal_view(row: tuple[Any, ...]) -> TerminalView:
    return TerminalView(
        id=row[0],
        provider_id=row[1],
        name=row[2],
        public_key=encode_k4_public(bytes(row[3])),
        registered_at=at(row[4]),
        revoked_at=at(row[5]) if row[5] is not None else None,
    )


def read_terminal(connection: psycopg.Connection[Any], terminal_id: uuid.UUID) -> TerminalView | None:
    row = connection.execute(
        f"SELECT {_TERMINAL_COLUMNS} FROM terminals WHERE id = %s", (terminal_id,)
    ).fetchone()
    return None if row is None else _terminal_view(row)


def provider_terminals(
    connection: psycopg.Connection[Any], provider_id: uuid.UUID, after: uuid.UUID | None, limit: int
) -> list[TerminalView]:
    rows = connection.execute(
        f"SELECT {_TERMINAL_COLUMNS} FROM terminals WHERE provider_id = %s AND id > %s ORDER BY id LIMIT %s",
        (provider_id, after or uuid.UUID(int=0), limit),
    ).fetchall()
    return [_terminal_view(row) for row in rows]


def provider_receivables(
    connection: psycopg.Connection[Any], provider_id: uuid.UUID
) -> list[ProgrammeReceivableView]:
    return [
        ProgrammeReceivableView(
            programme_id=row[0],
            receivable_account_id=row[1],
            provider_state=ProviderState(row[2]).name.lower(),
            asset=row[3],
            owed_tiyn=row[4] - row[5],
            reserved_tiyn=row[6],
            redeemed_tiyn=row[4],
            paid_out_tiyn=row[5],
        )
        for row in connection.execute(_RECEIVABLES, (provider_id,))
    ]


def provider_redemptions(
    connection: psycopg.Connection[Any],
    provider_id: uuid.UUID,
    programme_id: uuid.UUID | None,
    before: tuple[int, uuid.UUID] | None,
    limit: int,
) -> list[tuple[Any, ...]]:
    parameters = {
        "provider": provider_id,
        "programme": programme_id,
        "before": before[0] if before else None,
        "before_id": before[1] if before else None,
        "limit": limit,
    }
    return connection.execute(_REDEMPTIONS, parameters).fetchall()
