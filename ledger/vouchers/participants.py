"""Providers, their enrolment in programmes, and their terminals.

A provider (canteen supplier, pharmacy, QazaqGaz, club, shop) is registered once with its BIN and category.
Enrolling it in a programme opens its receivable account there (what the state owes it for that programme)
and gives it a state — pending, active, suspended, withdrawn — which only the programme changes. Terminals
are the provider's points of service, each holding an Ed25519 key that signs its redemption requests.
"""

import uuid
from typing import Any

import psycopg

from ledger.accounts import AccountType
from ledger.audit.events import json_event
from ledger.audit.inbox import append_events
from ledger.identity import IdentityFormatError, validate_bin
from ledger.ids import is_reserved_id
from ledger.timestamps import reserve_timestamps
from ledger.vouchers.registry import Outcome, open_ledger_account
from ledger.vouchers.results import RegistryResult
from ledger.vouchers.states import ProviderCategory, ProviderState

R = RegistryResult
NAME_CHARS_MAX = 300
PUBLIC_KEY_BYTES = 32


def register_provider(
    connection: psycopg.Connection[Any], provider_id: uuid.UUID, bin_text: str, name: str, category: int
) -> Outcome:
    if is_reserved_id(provider_id):
        return Outcome(R.account_invalid, "the provider id must not be zero")
    try:
        business_number = validate_bin(bin_text)
    except IdentityFormatError as error:
        return Outcome(R.bin_invalid, str(error))
    if not isinstance(name, str) or not 0 < len(name.strip()) <= NAME_CHARS_MAX:
        return Outcome(R.text_invalid, f"the name must be 1 to {NAME_CHARS_MAX} characters")
    if category not in {int(member) for member in ProviderCategory}:
        return Outcome(R.category_invalid, f"unknown provider category {category}")
    existing = connection.execute(
        "SELECT bin, name, category FROM providers WHERE id = %s OR bin = %s",
        (provider_id, business_number.digits),
    ).fetchall()
    if existing:
        same = len(existing) == 1 and tuple(existing[0]) == (business_number.digits, name, category)
        return Outcome(R.exists if same else R.exists_with_different_fields, "id or BIN already registered")
    timestamp = reserve_timestamps(connection)
    connection.execute(
        'INSERT INTO providers (id, bin, name, category, "timestamp") VALUES (%s, %s, %s, %s, %s)',
        (provider_id, business_number.digits, name, category, timestamp),
    )
    append_events(
        connection,
        [
            json_event(
                "provider_registered",
                {
                    "provider": str(provider_id),
                    "bin": business_number.digits,
                    "name": name,
                    "category": category,
                },
            )
        ],
    )
    return Outcome(R.ok)


def enrol_provider(
    connection: psycopg.Connection[Any],
    programme_id: uuid.UUID,
    provider_id: uuid.UUID,
    receivable_account_id: uuid.UUID,
    state: ProviderState = ProviderState.ACTIVE,
) -> Outcome:
    """Open the provider's receivable in the programme; detail: the receivable account id."""
    programme = connection.execute(
        "SELECT asset FROM voucher_programmes WHERE id = %s", (programme_id,)
    ).fetchone()
    if programme is None:
        return Outcome(R.programme_not_found, str(programme_id))
    if connection.execute("SELECT 1 FROM providers WHERE id = %s", (provider_id,)).fetchone() is None:
        return Outcome(R.provider_not_found, str(provider_id))
    existing = connection.execute(
        "SELECT receivable_account_id FROM programme_providers WHERE programme_id = %s AND provider_id = %s",
        (programme_id, provider_id),
    ).fetchone()
    if existing is not None:
        same = existing[0] == receivable_account_id
        return Outcome(R.exists if same else R.exists_with_different_fields, str(existing[0]))
    if is_reserved_id(receivable_account_id) or not open_ledger_account(
        connection, receivable_account_id, programme[0], AccountType.PROVIDER_RECEIVABLE, provider_id
    ):
        return Outcome(R.account_invalid, "the receivable account id is taken by another account")
    timestamp = reserve_timestamps(connection)
    connection.execute(
        """INSERT INTO programme_providers
                  (programme_id, provider_id, receivable_account_id, state, "timestamp")
           VALUES (%s, %s, %s, %s, %s)""",
        (programme_id, provider_id, receivable_account_id, int(state), timestamp),
    )
    append_events(
        connection,
        [
            json_event(
                "provider_enrolled",
                {
                    "programme": str(programme_id),
                    "provider": str(provider_id),
                    "receivable_account": str(receivable_account_id),
                    "state": int(state),
                },
            )
        ],
    )
    return Outcome(R.ok, str(receivable_account_id))


def set_provider_state(
    connection: psycopg.Connection[Any],
    programme_id: uuid.UUID,
    provider_id: uuid.UUID,
    state: ProviderState,
    reason: str,
) -> Outcome:
    """Suspend, reactivate or withdraw a provider in one programme. Holders' vouchers are untouched: they
    stay spendable at every other allowed provider. A withdrawn provider never comes back."""
    if state not in set(ProviderState):
        return Outcome(R.state_invalid, f"unknown provider state {state}")
    row = connection.execute(
        """UPDATE programme_providers SET state = %s
            WHERE programme_id = %s AND provider_id = %s AND state <> %s AND state <> %s
            RETURNING provider_id""",
        (int(state), programme_id, provider_id, int(ProviderState.WITHDRAWN), int(state)),
    ).fetchone()
    if row is None:
        current = connection.execute(
            "SELECT state FROM programme_providers WHERE programme_id = %s AND provider_id = %s",
            (programme_id, provider_id),
        ).fetchone()
        if current is None:
            return Outcome(R.provider_not_found, "the provider is not enrolled in this programme")
        return Outcome(
            R.exists if current[0] == state else R.state_invalid, "a withdrawn provider stays withdrawn"
        )
    append_events(
        connection,
        [
            json_event(
                "provider_state_changed",
                {
                    "programme": str(programme_id),
                    "provider": str(provider_id),
                    "state": int(state),
                    "reason": reason,
                },
            )
        ],
    )
    return Outcome(R.ok)


def register_terminal(
    connection: psycopg.Connection[Any],
    terminal_id: uuid.UUID,
    provider_id: uuid.UUID,
    public_key: bytes,
    name: str,
) -> Outcome:
    if is_reserved_id(terminal_id):
        return Outcome(R.account_invalid, "the terminal id must not be zero")
    if not isinstance(public_key, bytes) or len(public_key) != PUBLIC_KEY_BYTES:
        return Outcome(R.public_key_invalid, f"an Ed25519 public key is {PUBLIC_KEY_BYTES} bytes")
    if not isinstance(name, str) or not 0 < len(name.strip()) <= NAME_CHARS_MAX:
        return Outcome(R.text_invalid, f"the name must be 1 to {NAME_CHARS_MAX} characters")
    if connection.execute("SELECT 1 FROM providers WHERE id = %s", (provider_id,)).fetchone() is None:
        return Outcome(R.provider_not_found, str(provider_id))
    existing = connection.execute(
        "SELECT provider_id, public_key FROM terminals WHERE id = %s", (terminal_id,)
    ).fetchone()
    if existing is not None:
        same = (existing[0], bytes(existing[1])) == (provider_id, public_key)
        return Outcome(R.exists if same else R.exists_with_different_fields)
    timestamp = reserve_timestamps(connection)
    connection.execute(
        'INSERT INTO terminals (id, provider_id, public_key, name, "timestamp") VALUES (%s, %s, %s, %s, %s)',
        (terminal_id, provider_id, public_key, name, timestamp),
    )
    append_events(
        connection,
        [
            json_event(
                "terminal_registered",
                {"terminal": str(terminal_id), "provider": str(provider_id), "public_key": public_key.hex()},
            )
        ],
    )
    return Outcome(R.ok)


def revoke_terminal(connection: psycopg.Connection[Any], terminal_id: uuid.UUID, reason: str) -> Outcome:
    """From now on the terminal's signature is refused (a lost or stolen device)."""
    timestamp = reserve_timestamps(connection)
    row = connection.execute(
        "UPDATE terminals SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL RETURNING id",
        (timestamp, terminal_id),
    ).fetchone()
    if row is None:
        known = connection.execute("SELECT 1 FROM terminals WHERE id = %s", (terminal_id,)).fetchone()
        return Outcome(R.already_revoked if known else R.terminal_not_found)
    append_events(
        connection, [json_event("terminal_revoked", {"terminal": str(terminal_id), "reason": reason})]
    )
    return Outcome(R.ok)
