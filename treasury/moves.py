"""Treasury's ledger transfers: made inside the caller's transaction, a refusal raised as `Refused` (which
rolls the whole unit of work back, the ledger's own failure record included)."""

from typing import Any, Final

import psycopg

from ledger.results import CreateTransferResult
from ledger.service import create_transfers_in
from ledger.transfers import Transfer
from treasury.errors import RefusalKind, Refused

R = CreateTransferResult
_DONE: Final = frozenset({R.ok, R.exists})


def move_money(connection: psycopg.Connection[Any], transfers: list[Transfer]) -> list[CreateTransferResult]:
    """Make the transfers; each must be new (`ok`) or a faithful retry (`exists`), else nothing is made."""
    if not transfers:
        return []
    results = create_transfers_in(connection, transfers, release_expired=False)
    for result in results:
        if result is R.exceeds_credits:
            raise Refused(
                "insufficient_funds", "the account to pay from does not hold enough", RefusalKind.CONFLICT
            )
        if result not in _DONE:
            raise Refused(f"ledger_{result.name}", f"the ledger refused the transfer: {result.name}",
                          RefusalKind.CONFLICT)  # fmt: skip
    return results
