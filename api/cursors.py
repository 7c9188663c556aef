"""The positions the audience routers keep in their cursors (`api.pagination`): the last id of a page, or
the last (ledger timestamp, id). A cursor this API did not make is a 400 problem, never a failed query."""

import uuid
from typing import Final

from api.openapi_examples import CURSOR_INVALID
from api.problems import Problem

LEDGER_TIMESTAMP_MAX: Final = 2**63 - 1


def _cursor_invalid() -> Problem:
    return Problem(400, *CURSOR_INVALID, "start without one")


def cursor_id(value: str | int | None) -> uuid.UUID | None:
    """The id stored in a cursor (None on the first page)."""
    if value is None:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise _cursor_invalid() from None


def cursor_timestamp(value: str | int | None) -> int | None:
    """The ledger timestamp stored in a cursor (None on the first page)."""
    if value is None:
        return None
    if not isinstance(value, int) or not 0 <= value <= LEDGER_TIMESTAMP_MAX:
        raise _cursor_invalid()
    return value


def cursor_timestamp_id(
    timestamp: str | int | None, last_id: str | int | None
) -> tuple[int, uuid.UUID] | None:
    """The (ledger timestamp, id) stored in a cursor (None on the first page)."""
    if timestamp is None and last_id is None:
        return None
    found, at = cursor_id(last_id), cursor_timestamp(timestamp)
    if found is None or at is None:
        raise _cursor_invalid()
    return at, found
