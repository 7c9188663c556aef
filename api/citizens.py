"""The citizen a mobile-backend request is about, and the audit record of every read of their data.

The eGov Mobile backend presents the citizen's IIN in the ``X-Citizen-IIN`` header — never in a path or
query, which end up in access logs and caches. It is validated (422 with the rule it broke), turned into
the salted holder hash at once, and dropped: nothing downstream sees the digits, and the hash is how a
voucher names its holder. A voucher whose holder hash differs is answered like one that does not exist.

Every read of a citizen's data writes a `citizen_data_read` event to the audit log in the same transaction
as the read (GovStack asks for it): the holder hash, the credential that read, what was read, and the
ledger time. If the event cannot be written, the data is not served.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final

import psycopg
from fastapi import Depends, Header, Request

from api.auth import MobileBackend
from api.problems import Problem
from api.voucher_dependencies import HolderSaltDep
from ledger.audit.events import json_event
from ledger.audit.inbox import append_events
from ledger.identity import IdentityFormatError, iin_holder_hash, validate_iin
from ledger.timestamps import reserve_timestamps

CITIZEN_IIN_HEADER: Final = "X-Citizen-IIN"
IIN_CHARS_MAX: Final = 64
CITIZEN_IIN_MISSING: Final = ("citizen_iin_missing", f"This request needs the {CITIZEN_IIN_HEADER} header")
CITIZEN_IIN_INVALID: Final = ("iin_invalid", "The IIN is not valid")


@dataclass(frozen=True, slots=True)
class Citizen:
    """Who a request is about (by holder hash only) and which credential asks."""

    holder_hash: bytes
    credential_id: uuid.UUID


async def present_citizen(
    request: Request,
    caller: MobileBackend,
    salt: HolderSaltDep,
    iin: Annotated[
        str | None,
        Header(
            alias=CITIZEN_IIN_HEADER,
            max_length=IIN_CHARS_MAX,
            description="Required. The citizen's 12-digit IIN (ИИН/ЖСН). Sent in this header only, never "
            "in a URL, so that it stays out of access logs.",
            examples=["900101300017"],
        ),
    ] = None,
) -> Citizen:
    if iin is None:
        raise Problem(422, *CITIZEN_IIN_MISSING)
    try:
        parsed = validate_iin(iin)
    except IdentityFormatError as error:
        raise Problem(422, *CITIZEN_IIN_INVALID, str(error), rule=error.rule.value) from None
    holder_hash = iin_holder_hash(parsed, salt)
    # A replayed Idempotency-Key answer belongs to this citizen only (api.idempotency).
    request.state.idempotency_scope = holder_hash
    return Citizen(holder_hash, caller.credential_id)


CitizenDep = Annotated[Citizen, Depends(present_citizen)]


def log_citizen_read(
    connection: psycopg.Connection[Any], citizen: Citizen, what: str, voucher_ids: Sequence[uuid.UUID]
) -> None:
    """Record, in the reading transaction, that this credential read `what` of this citizen."""
    event = json_event(
        "citizen_data_read",
        {
            "holder": citizen.holder_hash.hex(),
            "credential": str(citizen.credential_id),
            "what": what,
            "vouchers": [str(voucher_id) for voucher_id in voucher_ids],
            "timestamp": reserve_timestamps(connection),
        },
    )
    append_events(connection, [event])
