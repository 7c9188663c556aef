"""The issuer key set: the Ed25519 keys that sign voucher tokens and redemption receipts.

Each key has two windows. It signs new tokens only until `issue_until`, and tokens it signed are accepted
for redemption only until `redeem_until` (later than issue_until, so vouchers already issued stay
spendable through a rotation). A revoked key is accepted for nothing after its revocation. Adding and
revoking keys are audit events; the secret halves never enter the database.
"""

from dataclasses import dataclass
from typing import Any

import psycopg

from ledger.audit.events import json_event
from ledger.audit.inbox import append_events
from ledger.timestamps import reserve_timestamps
from ledger.vouchers.paseto import k4_pid
from ledger.vouchers.registry import Outcome
from ledger.vouchers.results import RedemptionResult, RegistryResult

R = RegistryResult


@dataclass(frozen=True, slots=True)
class IssuerKey:
    key_id: str
    public_key: bytes
    issue_until: int
    redeem_until: int
    revoked_at: int | None

    def judge(self, issued_at: int, now: int) -> RedemptionResult:
        """Whether a token this key signed at `issued_at` may be redeemed at `now` (ledger ns)."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return RedemptionResult.issuer_key_revoked
        if issued_at > self.issue_until or now > self.redeem_until:
            return RedemptionResult.issuer_key_expired
        return RedemptionResult.ok

    def may_issue(self, now: int) -> bool:
        return now <= self.issue_until and (self.revoked_at is None or now < self.revoked_at)


_SELECT = "SELECT key_id, public_key, issue_until, redeem_until, revoked_at FROM issuer_keys"


def load_issuer_keys(connection: psycopg.Connection[Any]) -> dict[str, IssuerKey]:
    """The whole key set (a handful of rows)."""
    return {
        row[0]: IssuerKey(row[0], bytes(row[1]), row[2], row[3], row[4])
        for row in connection.execute(_SELECT)
    }


def add_issuer_key(
    connection: psycopg.Connection[Any], public_key: bytes, issue_until: int, redeem_until: int
) -> Outcome:
    """Introduce a key (a rotation adds the new key; the old one keeps its redeem window). Detail: key id."""
    if len(public_key) != 32:
        return Outcome(R.public_key_invalid, "an Ed25519 public key is 32 bytes")
    key_id = k4_pid(public_key)
    timestamp = reserve_timestamps(connection)
    if not timestamp < issue_until <= redeem_until:
        return Outcome(R.window_invalid, "needs now < issue_until <= redeem_until")
    existing = connection.execute(_SELECT + " WHERE key_id = %s", (key_id,)).fetchone()
    if existing is not None:
        same = (existing[2], existing[3]) == (issue_until, redeem_until)
        return Outcome(R.exists if same else R.exists_with_different_fields, key_id)
    connection.execute(
        """INSERT INTO issuer_keys (key_id, public_key, issue_until, redeem_until, "timestamp")
           VALUES (%s, %s, %s, %s, %s)""",
        (key_id, public_key, issue_until, redeem_until, timestamp),
    )
    append_events(
        connection,
        [
            json_event(
                "issuer_key_added",
                {
                    "key_id": key_id,
                    "public_key": public_key.hex(),
                    "issue_until": issue_until,
                    "redeem_until": redeem_until,
                },
            )
        ],
    )
    return Outcome(R.ok, key_id)


def revoke_issuer_key(connection: psycopg.Connection[Any], key_id: str, reason: str) -> Outcome:
    """A compromised key: from now on, no token it signed is honoured and it signs nothing more."""
    timestamp = reserve_timestamps(connection)
    row = connection.execute(
        "UPDATE issuer_keys SET revoked_at = %s WHERE key_id = %s AND revoked_at IS NULL RETURNING key_id",
        (timestamp, key_id),
    ).fetchone()
    if row is None:
        known = connection.execute("SELECT 1 FROM issuer_keys WHERE key_id = %s", (key_id,)).fetchone()
        return Outcome(R.already_revoked if known else R.key_not_found, key_id)
    append_events(connection, [json_event("issuer_key_revoked", {"key_id": key_id, "reason": reason})])
    return Outcome(R.ok, key_id)
