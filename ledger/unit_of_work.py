"""The one transaction boundary. `UnitOfWork.run(work)` borrows a connection, runs `work` inside one
transaction, commits, and returns its value. A request that loses a race (deadlock, serialisation
failure, a duplicate id inserted concurrently) is rolled back and run again from the start, so callers see
either a committed answer or an error: never "maybe". Nothing else in the code base calls `commit()`.
"""

from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
import structlog
from psycopg_pool import ConnectionPool

from ledger.errors import RETRYABLE_SQLSTATES, LedgerUnavailable, translate_database_error
from ledger.limits import TRANSACTION_RETRIES_MAX
from ledger.wire import register_array_dumpers

T = TypeVar("T")
log = structlog.get_logger("ledger.unit_of_work")


def prepare_connection(connection: psycopg.Connection[Any]) -> None:
    """What every connection the ledger uses needs: the binary array dumpers of `ledger.wire`. The pool
    calls this once per new connection."""
    register_array_dumpers(connection)


class UnitOfWork:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool

    def run(self, work: Callable[[psycopg.Connection[Any]], T], *, pipelined: bool = False) -> T:
        """`pipelined`: run `work` inside one pipeline and send COMMIT with whatever it left queued, so
        its last writes and the commit cost one round trip (work that needs results syncs inside; COPY
        cannot run in a pipeline)."""
        last_error: psycopg.Error | None = None
        for attempt in range(1, TRANSACTION_RETRIES_MAX + 1):
            with self.pool.connection() as connection:
                try:
                    if pipelined:
                        with connection.pipeline():
                            value = work(connection)
                            connection.execute("COMMIT")  # the pipeline's closing sync sends it
                    else:
                        value = work(connection)
                        connection.commit()
                    return value
                except psycopg.Error as error:
                    connection.rollback()
                    if error.sqlstate not in RETRYABLE_SQLSTATES:
                        raise translate_database_error(error) from error
                    last_error = error
                    log.info("transaction_retry", attempt=attempt, sqlstate=error.sqlstate)
                except BaseException:
                    connection.rollback()
                    raise
        raise LedgerUnavailable(f"gave up after {TRANSACTION_RETRIES_MAX} attempts: {last_error}")

    def read(self, work: Callable[[psycopg.Connection[Any]], T], *, timeout_s: float | None = None) -> T:
        """Run `work` in its own READ ONLY transaction (no retries needed), ended by COMMIT.

        COMMIT, not ROLLBACK: the two are the same for a transaction that cannot write, but psycopg
        forgets a connection's prepared statements on rollback (and deallocates them in the server). The
        pool's connections serve reads and writes alike, so each read used to cost the next transaction on
        its connection a fresh parse and plan of every statement. `timeout_s`: how long to wait for a
        connection (the pool's default when None)."""
        with self.pool.connection(timeout=timeout_s) as connection:
            connection.read_only = True  # the next BEGIN is BEGIN READ ONLY: a read cannot write
            try:
                value = work(connection)
                connection.commit()
            except BaseException as error:
                connection.rollback()
                if isinstance(error, psycopg.Error):
                    raise translate_database_error(error) from error
                raise
            finally:
                connection.read_only = None  # back to the server default: a plain BEGIN
            return value
