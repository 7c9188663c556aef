"""`Ledger`: the core's public face. Each method is one request in one transaction through the unit of work,
and logs one line with its batch id, event count, result counts and duration."""

import datetime as dt
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog

from ledger import account_store, queries, store
from ledger.accounts import Account, AccountBalance
from ledger.batch_writes import COPY_ROWS_MIN
from ledger.clock import datetime_to_timestamp
from ledger.errors import BatchTooLarge
from ledger.ids import new_id
from ledger.known_accounts import KnownAccounts
from ledger.limits import BATCH_EVENTS_MAX, EXPIRY_CHECK_INTERVAL_S, PAGE_TRANSFERS_MAX
from ledger.results import CreateAccountResult, CreateTransferResult
from ledger.transfers import StoredTransfer, Transfer
from ledger.unit_of_work import UnitOfWork

log = structlog.get_logger("ledger")


@dataclass(frozen=True, slots=True)
class Balance:
    """An account's four counters at some moment."""

    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int


@dataclass(frozen=True, slots=True)
class TransferPage:
    transfers: tuple[StoredTransfer, ...]
    # Pass back as `after` for the next page; None when this page is the last.
    next_cursor: int | None


class Ledger:
    def __init__(self, unit_of_work: UnitOfWork, *, audit: bool = True) -> None:
        # audit=False only for benchmarks measuring the audit log's cost; every entry point keeps it on.
        self.unit_of_work = unit_of_work
        self.audit = audit
        self._expiry_checked_at = 0.0
        # Identity of accounts this Ledger has read (ledger.known_accounts): most batches read none.
        self.known_accounts = KnownAccounts()

    def create_accounts(self, events: Sequence[Account]) -> list[CreateAccountResult]:
        _check_batch_size(len(events))
        if not events:
            return []
        started = time.perf_counter()
        results, _ = self.unit_of_work.run(
            lambda connection: account_store.create_accounts(connection, events)
        )
        _log_request("create_accounts", results, started)
        return results

    def create_transfers(self, events: Sequence[Transfer]) -> list[CreateTransferResult]:
        _check_batch_size(len(events))
        if not events:
            return []
        started = time.perf_counter()
        # Timed-out reservations are looked for at most every EXPIRY_CHECK_INTERVAL_S per Ledger: one
        # round trip fewer for most requests; a post or void of an expired one is refused regardless.
        release = started - self._expiry_checked_at >= EXPIRY_CHECK_INTERVAL_S
        if release:
            self._expiry_checked_at = started
        attempts = 0

        def attempt(connection: psycopg.Connection[Any]) -> list[CreateTransferResult]:
            # The first attempt assumes the event ids are new (a stored one fails the insert on the primary
            # key) and decides on remembered accounts; a retry reads both, so it cannot lose the same way.
            nonlocal attempts
            attempts += 1
            results, _ = store.create_transfers(
                connection,
                events,
                self.audit,
                release,
                known=self.known_accounts,
                assume_new_ids=attempts == 1,
                read_all_accounts=attempts > 1,
            )
            return results

        # A small batch's writes ride with its commit (COPY, for large ones, cannot run in a pipeline).
        results = self.unit_of_work.run(attempt, pipelined=len(events) < COPY_ROWS_MIN)
        _log_request("create_transfers", results, started)
        return results

    def lookup_accounts(self, ids: Sequence[uuid.UUID]) -> list[AccountBalance]:
        return self.unit_of_work.read(lambda connection: queries.lookup_accounts(connection, ids))

    def lookup_transfers(self, ids: Sequence[uuid.UUID]) -> list[StoredTransfer]:
        return self.unit_of_work.read(lambda connection: queries.lookup_transfers(connection, ids))

    def balance_as_of(self, account_id: uuid.UUID, moment: dt.datetime | int) -> Balance:
        """The account's counters counting every transfer stamped at or before `moment`."""
        at = moment if isinstance(moment, int) else datetime_to_timestamp(moment)
        counters = self.unit_of_work.read(
            lambda connection: queries.balance_as_of(connection, account_id, at)
        )
        return Balance(*counters)

    def account_transfers(
        self, account_id: uuid.UUID, after: int | None = None, limit: int = 100
    ) -> TransferPage:
        """One page of the account's transfers in ledger order; `after` is the previous page's cursor."""
        limit = max(1, min(limit, PAGE_TRANSFERS_MAX))
        rows = self.unit_of_work.read(
            lambda connection: queries.account_transfers(connection, account_id, after or 0, limit + 1)
        )
        page = tuple(rows[:limit])
        return TransferPage(page, page[-1].timestamp if len(rows) > limit else None)

    def invariant_violations(self) -> list[str]:
        return self.unit_of_work.read(queries.invariant_violations)


def create_transfers_in(
    connection: psycopg.Connection[Any],
    events: Sequence[Transfer],
    audit: bool = True,
    release_expired: bool = True,
) -> list[CreateTransferResult]:
    """`create_transfers` inside a transaction someone else owns (treasury composes it with its own rows)."""
    results, _ = store.create_transfers(connection, events, audit, release_expired)
    return results


def _check_batch_size(count: int) -> None:
    if count > BATCH_EVENTS_MAX:
        raise BatchTooLarge(f"a request carries at most {BATCH_EVENTS_MAX} events, got {count}")


def _log_request(
    operation: str, results: Sequence[CreateAccountResult | CreateTransferResult], started: float
) -> None:
    counts = Counter(results)  # by member, named after: an enum's .name is a Python-level property
    log.info(
        operation,
        batch_id=str(new_id()),
        events=len(results),
        results={result.name: count for result, count in counts.items()},
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
    )
