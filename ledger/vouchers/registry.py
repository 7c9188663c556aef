"""Programmes as the ledger knows them: the fund, regional sub-funds, versioned policies, closed periods.

Each function runs inside the caller's transaction (the unit of work commits), writes its audit event in
that transaction, and answers with an `Outcome` (a result code and a detail), never an exception for bad
input. Registering twice with the same fields answers `exists`, so every call is safe to retry.
"""

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from ledger.account_store import create_accounts
from ledger.accounts import Account, AccountFlags, AccountType
from ledger.audit.events import json_event
from ledger.audit.inbox import append_events
from ledger.clock import business_date
from ledger.ids import is_reserved_id
from ledger.money import Asset
from ledger.results import CreateAccountResult
from ledger.timestamps import reserve_timestamps
from ledger.vouchers.policy import Policy, policy_bytes, policy_document
from ledger.vouchers.results import RegistryResult

R = RegistryResult
_FUND_FLAGS = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS


@dataclass(frozen=True, slots=True)
class Outcome:
    result: RegistryResult
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.result in (R.ok, R.exists)


def open_ledger_account(
    connection: psycopg.Connection[Any],
    account_id: uuid.UUID,
    asset: int,
    account_type: AccountType,
    owner: uuid.UUID,
) -> bool:
    """Create (or find, with the same fields) one ledger account inside this transaction. Funds and
    vouchers may never go below zero; receivables and clearing accounts carry no limit."""
    limited = account_type in (AccountType.PROGRAMME_FUND, AccountType.REGIONAL_FUND, AccountType.VOUCHER)
    account = Account(
        account_id, asset, int(account_type), flags=int(_FUND_FLAGS) if limited else 0, user_data_128=owner
    )
    results, _ = create_accounts(connection, [account])
    return results[0] in (CreateAccountResult.ok, CreateAccountResult.exists)


def register_programme(
    connection: psycopg.Connection[Any],
    programme_id: uuid.UUID,
    asset: int,
    fund_account_id: uuid.UUID,
    policy: Policy,
) -> Outcome:
    """A programme's fund account (created here) and its first policy version, in force from now."""
    if is_reserved_id(programme_id) or is_reserved_id(fund_account_id) or programme_id == fund_account_id:
        return Outcome(R.account_invalid, "programme and fund ids must be distinct, non-zero ids")
    if asset not in {int(member) for member in Asset}:
        return Outcome(R.asset_invalid, f"unknown asset {asset}")
    existing = connection.execute(
        "SELECT asset, fund_account_id FROM voucher_programmes WHERE id = %s", (programme_id,)
    ).fetchone()
    if existing is not None:
        if tuple(existing) != (asset, fund_account_id):
            return Outcome(
                R.exists_with_different_fields, "the programme is registered with another fund or asset"
            )
        return Outcome(R.exists)
    if not open_ledger_account(connection, fund_account_id, asset, AccountType.PROGRAMME_FUND, programme_id):
        return Outcome(R.account_invalid, "the fund account exists with other fields")
    timestamp = reserve_timestamps(connection, 2)
    connection.execute(
        'INSERT INTO voucher_programmes (id, asset, fund_account_id, "timestamp") VALUES (%s, %s, %s, %s)',
        (programme_id, asset, fund_account_id, timestamp),
    )
    connection.execute(
        'INSERT INTO voucher_funds (account_id, programme_id, "timestamp") VALUES (%s, %s, %s)',
        (fund_account_id, programme_id, timestamp),
    )
    append_events(
        connection,
        [
            json_event(
                "programme_registered",
                {"programme": str(programme_id), "asset": asset, "fund_account": str(fund_account_id)},
            )
        ],
    )
    _insert_policy(connection, programme_id, 1, timestamp + 1, policy, timestamp + 1)
    return Outcome(R.ok)


def record_policy(
    connection: psycopg.Connection[Any],
    programme_id: uuid.UUID,
    policy: Policy,
    valid_from: int | None = None,
) -> Outcome:
    """A new policy version, in force from `valid_from` (ledger ns; default now). The same document as the
    latest version answers `exists`. Detail: the version number."""
    latest = connection.execute(
        "SELECT version, body FROM voucher_policies WHERE programme_id = %s ORDER BY version DESC LIMIT 1",
        (programme_id,),
    ).fetchone()
    if latest is None:
        return Outcome(R.programme_not_found, str(programme_id))
    if bytes(latest[1]) == policy_bytes(policy) and valid_from is None:
        return Outcome(R.exists, str(latest[0]))
    timestamp = reserve_timestamps(connection)
    if valid_from is not None and valid_from < timestamp:
        return Outcome(R.valid_from_in_the_past, "a policy version takes effect now or later, never earlier")
    version = int(latest[0]) + 1
    _insert_policy(connection, programme_id, version, valid_from or timestamp, policy, timestamp)
    return Outcome(R.ok, str(version))


def _insert_policy(
    connection: psycopg.Connection[Any],
    programme_id: uuid.UUID,
    version: int,
    valid_from: int,
    policy: Policy,
    timestamp: int,
) -> None:
    connection.execute(
        """INSERT INTO voucher_policies (programme_id, version, valid_from, purpose, provider_categories,
                                         named_providers, body, "timestamp")
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            programme_id,
            version,
            valid_from,
            policy.purpose,
            sorted(int(category) for category in policy.provider_categories),
            sorted(policy.named_providers),
            policy_bytes(policy),
            timestamp,
        ),
    )
    append_events(
        connection,
        [
            json_event(
                "policy_recorded",
                {
                    "programme": str(programme_id),
                    "version": version,
                    "valid_from": valid_from,
                    "policy": policy_document(policy),
                },
            )
        ],
    )


def add_fund(connection: psycopg.Connection[Any], programme_id: uuid.UUID, account_id: uuid.UUID) -> Outcome:
    """A regional sub-fund (akimat) of a programme: vouchers issued from it return value to it."""
    programme = connection.execute(
        "SELECT asset FROM voucher_programmes WHERE id = %s", (programme_id,)
    ).fetchone()
    if programme is None:
        return Outcome(R.programme_not_found, str(programme_id))
    known = connection.execute(
        "SELECT programme_id FROM voucher_funds WHERE account_id = %s", (account_id,)
    ).fetchone()
    if known is not None:
        return Outcome(R.exists if known[0] == programme_id else R.exists_with_different_fields)
    if is_reserved_id(account_id) or not open_ledger_account(
        connection, account_id, programme[0], AccountType.REGIONAL_FUND, programme_id
    ):
        return Outcome(R.account_invalid, "the sub-fund account id is taken by another account")
    timestamp = reserve_timestamps(connection)
    connection.execute(
        'INSERT INTO voucher_funds (account_id, programme_id, "timestamp") VALUES (%s, %s, %s)',
        (account_id, programme_id, timestamp),
    )
    append_events(
        connection, [json_event("fund_added", {"programme": str(programme_id), "account": str(account_id)})]
    )
    return Outcome(R.ok)


def close_period(connection: psycopg.Connection[Any], programme_id: uuid.UUID, through: dt.date) -> Outcome:
    """Freeze every day up to and including `through`: no redemption may be dated inside it any more.

    Takes the programme's close lock exclusively; redemptions take it shared (`lock_programmes_shared`),
    so a redemption dated inside the period either committed before the close or sees it."""
    connection.execute("SELECT pg_advisory_xact_lock(%s)", (programme_lock_key(programme_id),))
    row = connection.execute(
        "SELECT closed_through FROM voucher_programmes WHERE id = %s", (programme_id,)
    ).fetchone()
    if row is None:
        return Outcome(R.programme_not_found, str(programme_id))
    timestamp = reserve_timestamps(connection)
    if through >= business_date(timestamp):
        return Outcome(R.close_date_invalid, "only days that have ended can be closed")
    if row[0] is not None and through <= row[0]:
        return Outcome(R.exists if through == row[0] else R.close_date_invalid, f"closed through {row[0]}")
    connection.execute(
        "UPDATE voucher_programmes SET closed_through = %s WHERE id = %s", (through, programme_id)
    )
    append_events(
        connection,
        [json_event("period_closed", {"programme": str(programme_id), "through": through.isoformat()})],
    )
    return Outcome(R.ok)


def programme_lock_key(programme_id: uuid.UUID) -> int:
    """The advisory-lock key of a programme's period close: 63 bits of its id."""
    return programme_id.int >> 65


def lock_programmes_shared(connection: psycopg.Connection[Any], programme_ids: list[uuid.UUID]) -> None:
    """Redemptions hold their programmes' close locks shared until commit (lock manager only: no row
    writes, no contention between redemptions)."""
    keys = sorted({programme_lock_key(programme_id) for programme_id in programme_ids})
    if keys:
        connection.execute("SELECT pg_advisory_xact_lock_shared(k) FROM unnest(%s::bigint[]) AS k", (keys,))
