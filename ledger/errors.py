"""Errors the ledger raises for a whole request (per-event failures are result codes, never exceptions),
and the one map from a database error (SQLSTATE, constraint) to them."""

from typing import Final

import psycopg


class LedgerError(Exception):
    """Base of every request-level ledger error; `code` is stable and safe to show to callers."""

    code: str = "ledger_error"


class BatchTooLarge(LedgerError):
    code = "batch_too_large"


class LedgerUnavailable(LedgerError):
    """The database could not be reached or the request kept losing races; nothing was applied."""

    code = "ledger_unavailable"


class AppendOnlyViolation(LedgerError):
    """Something tried to change or remove history; the database refused it."""

    code = "append_only"


class LedgerInvariantBroken(LedgerError):
    """The database refused a write that would break a money invariant: a bug, never user input."""

    code = "invariant_broken"


# SQLSTATEs after which the whole request is retried from the start: it lost a race, nothing was applied.
RETRYABLE_SQLSTATES: Final = frozenset({"40001", "40P01", "23505"})

_BY_CONSTRAINT: Final[dict[tuple[str, str], type[LedgerError]]] = {
    ("23001", "transfers_append_only"): AppendOnlyViolation,
    ("23001", "transfer_failures_append_only"): AppendOnlyViolation,
    ("23001", "accounts_permanent"): AppendOnlyViolation,
    ("23001", "accounts_identity_immutable"): AppendOnlyViolation,
    ("23514", "ledger_zero_sum"): LedgerInvariantBroken,
    ("23514", "transfers_same_asset"): LedgerInvariantBroken,
    ("23514", "ck_accounts_debits_must_not_exceed_credits"): LedgerInvariantBroken,
    ("23514", "ck_accounts_credits_must_not_exceed_debits"): LedgerInvariantBroken,
    ("23514", "ck_accounts_counters_not_negative"): LedgerInvariantBroken,
    ("23514", "ck_transfers_amount_positive"): LedgerInvariantBroken,
}


def translate_database_error(error: psycopg.Error) -> LedgerError:
    """The ledger error for a database error; unknown ones become `LedgerUnavailable` with the cause kept."""
    sqlstate = error.sqlstate or ""
    constraint = error.diag.constraint_name or ""
    kind = _BY_CONSTRAINT.get((sqlstate, constraint))
    if kind is not None:
        return kind(f"{constraint}: {error.diag.message_primary}")
    if sqlstate.startswith("23"):
        return LedgerInvariantBroken(f"{sqlstate} {constraint}: {error.diag.message_primary}")
    return LedgerUnavailable(f"database error {sqlstate or type(error).__name__}: {error}")
