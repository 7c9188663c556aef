"""Reserving ledger timestamps for rows that are not transfers (voucher steps, registrations): the same
clock as transfers, so every stored event has one place in one order."""

from typing import Any

import psycopg

_RESERVE = "SELECT ledger_clock_reserve(%s)"


def reserve_timestamps(connection: psycopg.Connection[Any], count: int = 1) -> int:
    """The first of `count` consecutive, unique, increasing ledger timestamps (nanoseconds, UTC)."""
    assert count >= 1
    row = connection.execute(_RESERVE, (count,)).fetchone()
    assert row is not None
    return int(row[0])
