"""Signing, approving and rejecting acts.

**Signing.** The provider signs the act's canonical JSON, tagged with its purpose
(`ledger.vouchers.signing.Purpose.SERVICE_ACT`, so no other signed message can pass for an act), with a
key it registered for that: `provider_signing_keys`, the keys of the people who sign paperwork for the
provider — not a till's terminal key, which signs redemptions and sits in a canteen. The database holds
the signature to the act's own provider through composite foreign keys.

**Approving.** A treasury officer approves a signed act. When the act's total (in magnitude) exceeds the
programme's payout threshold (`settlement_terms`), a second, different officer must approve too; the
database refuses one officer approving the same act twice (`uq_act_approvals_act_id_officer`). An
adjustment act (money taken back) may be approved without the provider's signature: the customer does not
need the provider's consent to recover a payment for a disallowed redemption.

**Rejecting.** An officer may reject an act with a reason until it is approved. The rejection releases the
act's redemptions, so drawing up the period again issues a new act (new number) after the corrections.

Every step locks the act's state row first, so two officers acting at once are served one after the other.
"""

import uuid
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from ledger.audit.events import json_event
from ledger.audit.inbox import append_events
from ledger.ids import is_reserved_id
from ledger.timestamps import reserve_timestamps
from ledger.vouchers.signing import PUBLIC_KEY_BYTES, Purpose, tagged, verify_message
from treasury.errors import RefusalKind, Refused
from treasury.settlement.periods import require_officer, require_programme, settlement_terms
from treasury.settlement.records import (
    ActKind,
    ActRecord,
    ActState,
    document_bytes,
    find_act,
    lock_act_state,
    move_act_state,
    require_act,
)

REASON_CHARS_MAX: Final = 1000
KEY_NAME_CHARS_MAX: Final = 200


@dataclass(frozen=True, slots=True)
class SigningKey:
    id: uuid.UUID
    provider_id: uuid.UUID
    public_key: bytes
    name: str
    revoked: bool


def register_signing_key(
    connection: psycopg.Connection[Any],
    key_id: uuid.UUID,
    provider_id: uuid.UUID,
    public_key: bytes,
    name: str,
    officer: str,
) -> SigningKey:
    """Register an Ed25519 public key that signs acts for the provider (idempotent by id)."""
    require_officer(officer)
    if is_reserved_id(key_id):
        raise Refused("key_id_invalid", "the key id must not be zero")
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise Refused("public_key_invalid", f"an Ed25519 public key is {PUBLIC_KEY_BYTES} bytes")
    if not name.strip() or len(name) > KEY_NAME_CHARS_MAX:
        raise Refused("key_name_invalid", f"name the key's holder in 1 to {KEY_NAME_CHARS_MAX} characters")
    existing = find_signing_key(connection, key_id)
    if existing is not None:
        if (existing.provider_id, existing.public_key, existing.name) != (provider_id, public_key, name):
            raise Refused(
                "key_exists", "a signing key with this id exists with other fields", RefusalKind.CONFLICT
            )
        return existing
    if connection.execute("SELECT 1 FROM providers WHERE id = %s", (provider_id,)).fetchone() is None:
        raise Refused("provider_not_found", str(provider_id), RefusalKind.NOT_FOUND)
    # The unique index is the guarantee (a racing registration is retried into this answer).
    if connection.execute(
        "SELECT 1 FROM provider_signing_keys WHERE public_key = %s", (public_key,)
    ).fetchone():
        raise Refused("public_key_registered", "each signer has a key of their own", RefusalKind.CONFLICT)
    connection.execute(
        """INSERT INTO provider_signing_keys (id, provider_id, public_key, name, registered_by, "timestamp")
           VALUES (%s, %s, %s, %s, %s, %s)""",
        (key_id, provider_id, public_key, name, officer, reserve_timestamps(connection)),
    )
    append_events(
        connection,
        [
            json_event(
                "provider_signing_key_registered",
                {
                    "key": str(key_id),
                    "provider": str(provider_id),
                    "public_key": public_key.hex(),
                    "name": name,
                    "officer": officer,
                },
            )
        ],
    )
    return SigningKey(key_id, provider_id, public_key, name, revoked=False)


def revoke_signing_key(
    connection: psycopg.Connection[Any], key_id: uuid.UUID, reason: str, officer: str
) -> None:
    """From now on the key's signatures are refused (signatures made before stay valid)."""
    require_officer(officer)
    _require_reason(reason)
    row = connection.execute(
        "UPDATE provider_signing_keys SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL RETURNING id",
        (reserve_timestamps(connection), key_id),
    ).fetchone()
    if row is None:
        if find_signing_key(connection, key_id) is None:
            raise Refused("key_not_found", str(key_id), RefusalKind.NOT_FOUND)
        return
    append_events(
        connection,
        [
            json_event(
                "provider_signing_key_revoked", {"key": str(key_id), "reason": reason, "officer": officer}
            )
        ],
    )


def find_signing_key(connection: psycopg.Connection[Any], key_id: uuid.UUID) -> SigningKey | None:
    row = connection.execute(
        "SELECT id, provider_id, public_key, name, revoked_at FROM provider_signing_keys WHERE id = %s",
        (key_id,),
    ).fetchone()
    return SigningKey(row[0], row[1], bytes(row[2]), row[3], row[4] is not None) if row is not None else None


def act_signing_bytes(connection: psycopg.Connection[Any], number: str) -> bytes:
    """Exactly the bytes a provider signs for the act: the purpose tag, a newline, the act's JSON."""
    return tagged(Purpose.SERVICE_ACT, document_bytes(connection, number, "act_json"))


def sign_act(
    connection: psycopg.Connection[Any], number: str, key_id: uuid.UUID, signature: bytes
) -> ActRecord:
    """Record the provider's signature over the act. The same signature again is a no-op."""
    act = require_act(connection, number)
    state = lock_act_state(connection, act.id)
    if state is ActState.REJECTED:
        raise Refused("act_rejected", f"act {number} was rejected", RefusalKind.CONFLICT)
    signed = connection.execute(
        "SELECT signature FROM act_signatures WHERE act_id = %s", (act.id,)
    ).fetchone()
    if signed is not None:
        if bytes(signed[0]) == signature:
            return _current(connection, act.id)
        raise Refused("act_signed_already", f"act {number} is signed already", RefusalKind.CONFLICT)
    key = find_signing_key(connection, key_id)
    if key is None or key.provider_id != act.provider_id:
        raise Refused(
            "signing_key_unknown", "the key is not one of the act's provider's", RefusalKind.FORBIDDEN
        )
    if key.revoked:
        raise Refused("signing_key_revoked", "the key was revoked", RefusalKind.FORBIDDEN)
    body = document_bytes(connection, number, "act_json")
    if not verify_message(key.public_key, Purpose.SERVICE_ACT, body, signature):
        raise Refused(
            "signature_invalid", "the signature is not the key's over this act", RefusalKind.FORBIDDEN
        )
    connection.execute(
        """INSERT INTO act_signatures (act_id, provider_id, key_id, signature, "timestamp")
           VALUES (%s, %s, %s, %s, %s)""",
        (act.id, act.provider_id, key_id, signature, reserve_timestamps(connection)),
    )
    if state is ActState.ISSUED:
        move_act_state(connection, act.id, ActState.SIGNED)
    append_events(
        connection,
        [
            json_event(
                "settlement_act_signed",
                {"act": str(act.id), "number": number, "key": str(key_id), "signature": signature.hex()},
            )
        ],
    )
    return _current(connection, act.id)


def approve_act(connection: psycopg.Connection[Any], number: str, officer: str) -> ActRecord:
    """One officer's approval: the first, or the second where the total exceeds the payout threshold."""
    require_officer(officer)
    act = require_act(connection, number)
    state = lock_act_state(connection, act.id)
    if state is ActState.REJECTED:
        raise Refused("act_rejected", f"act {number} was rejected", RefusalKind.CONFLICT)
    if state in (ActState.APPROVED, ActState.PAID):
        raise Refused("act_approved_already", f"act {number} is approved already", RefusalKind.CONFLICT)
    if state is ActState.ISSUED and act.kind is ActKind.REGULAR:
        raise Refused("act_not_signed", "the provider has not signed the act yet", RefusalKind.CONFLICT)
    if state is ActState.APPROVED_ONCE:
        first = connection.execute(
            "SELECT officer FROM act_approvals WHERE act_id = %s AND step = 1", (act.id,)
        ).fetchone()
        if first is not None and first[0] == officer:
            raise Refused(
                "second_officer_required",
                f"{officer} approved already; a second, different officer must approve",
                RefusalKind.FORBIDDEN,
            )
        step, after = 2, ActState.APPROVED
    else:
        threshold = settlement_terms(connection, require_programme(connection, act.programme_id))
        step = 1
        after = (
            ActState.APPROVED_ONCE
            if abs(act.total_tiyn) > threshold.payout_threshold_tiyn
            else ActState.APPROVED
        )
    connection.execute(
        'INSERT INTO act_approvals (act_id, step, officer, "timestamp") VALUES (%s, %s, %s, %s)',
        (act.id, step, officer, reserve_timestamps(connection)),
    )
    move_act_state(connection, act.id, after)
    append_events(
        connection,
        [
            json_event(
                "settlement_act_approved",
                {
                    "act": str(act.id),
                    "number": number,
                    "step": step,
                    "officer": officer,
                    "state": after.name.lower(),
                },
            )
        ],
    )
    return _current(connection, act.id)


def reject_act(connection: psycopg.Connection[Any], number: str, officer: str, reason: str) -> ActRecord:
    """Reject an act that is not approved yet; its redemptions become free for a new act."""
    require_officer(officer)
    _require_reason(reason)
    act = require_act(connection, number)
    state = lock_act_state(connection, act.id)
    if state is ActState.REJECTED:
        return act
    if state in (ActState.APPROVED, ActState.PAID):
        raise Refused(
            "act_approved_already",
            "an approved act is corrected by an adjustment act, not rejected",
            RefusalKind.CONFLICT,
        )
    connection.execute(
        'INSERT INTO act_rejections (act_id, officer, reason, "timestamp") VALUES (%s, %s, %s, %s)',
        (act.id, officer, reason, reserve_timestamps(connection)),
    )
    connection.execute("DELETE FROM settlement_claims WHERE act_id = %s", (act.id,))
    move_act_state(connection, act.id, ActState.REJECTED)
    append_events(
        connection,
        [
            json_event(
                "settlement_act_rejected",
                {"act": str(act.id), "number": number, "officer": officer, "reason": reason},
            )
        ],
    )
    return _current(connection, act.id)


def _require_reason(reason: str) -> None:
    if not reason.strip() or len(reason) > REASON_CHARS_MAX:
        raise Refused("reason_required", f"give a reason of 1 to {REASON_CHARS_MAX} characters")


def _current(connection: psycopg.Connection[Any], act_id: uuid.UUID) -> ActRecord:
    act = find_act(connection, act_id=act_id)
    assert act is not None
    return act
