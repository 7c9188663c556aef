"""From what a terminal sent to what the ledger redeems: the signed envelope read into a `Submission`, and
the redemption run for one provider.

What is an envelope error (422 problem, nothing redeemed) and what is a request's own result:

* 422: the body is not the envelope (an object with the signed object and a base64 signature of 64
  bytes), the signed object has no usable `terminal` UUID (the signer is unknown), or it cannot be put in
  canonical form (a float, a string not in NFC): there are no bytes the signature could be over;
* 404 `terminal_not_found`: the terminal is unknown or another provider's (the same answer for both);
* otherwise 200, one result per request: a request that breaks its schema is kept in place as
  `request_malformed`, and a wrong signature is `terminal_signature_invalid` for every request.
"""

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any, Final

import psycopg
from starlette.concurrency import run_in_threadpool

from api.problems import Problem
from api.schemas.common import unb64
from api.schemas.redemptions import RedemptionBatchIn, SingleRedemptionIn
from ledger.audit.canonical import CanonicalError, canonical_bytes
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers import redemption
from ledger.vouchers.coalescer import RedemptionCoalescer
from ledger.vouchers.receipts import Receipt, RedemptionOutcome, sign_receipt
from ledger.vouchers.redemption import Submission
from ledger.vouchers.requests import BATCH_REQUESTS_MAX, MalformedRequest, RedemptionRequest, parse_request
from ledger.vouchers.service import VoucherLedger
from ledger.vouchers.signing import SIGNATURE_BYTES, Purpose

BATCH_FIELDS: Final = frozenset({"terminal", "sent_at_ms", "requests"})
SENT_AT_MS_MAX: Final = 2**53
TERMINALS_REMEMBERED_MAX: Final = 100_000
ENVELOPE_INVALID: Final = ("redemption_envelope_invalid", "The redemption envelope is not valid")


def _envelope_invalid(detail: str) -> Problem:
    return Problem(422, *ENVELOPE_INVALID, detail)


def _signature(text: str) -> bytes:
    signature = unb64(text)
    if signature is None or len(signature) != SIGNATURE_BYTES:
        raise _envelope_invalid(f"signature: base64 of the {SIGNATURE_BYTES}-byte Ed25519 signature")
    return signature


def _terminal(document: Mapping[str, Any], where: str) -> uuid.UUID:
    value = document.get("terminal")
    try:
        terminal = uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        terminal = None
    if terminal is None:
        raise _envelope_invalid(f"{where}.terminal: the signing terminal's id (a UUID)")
    return terminal


def _canonical(document: Mapping[str, Any], where: str) -> bytes:
    try:
        return canonical_bytes(dict(document))
    except (CanonicalError, ValueError, TypeError) as error:
        raise _envelope_invalid(f"{where}: not canonical JSON ({error})") from None


def _parsed(document: object, encoded: bytes | None = None) -> RedemptionRequest | MalformedRequest:
    try:
        return parse_request(document, encoded)
    except MalformedRequest as malformed:
        return malformed


def single_submission(envelope: SingleRedemptionIn) -> Submission:
    signature = _signature(envelope.signature)
    terminal = _terminal(envelope.request, "request")
    signed = _canonical(envelope.request, "request")
    request = _parsed(envelope.request, signed)  # the signed bytes are the request's canonical bytes
    return Submission(terminal, (request,), signed, signature, Purpose.REDEMPTION_REQUEST)


def batch_submission(envelope: RedemptionBatchIn) -> Submission:
    signature = _signature(envelope.signature)
    batch = envelope.batch
    if set(batch) != BATCH_FIELDS:
        raise _envelope_invalid("batch: exactly terminal, sent_at_ms and requests")
    terminal = _terminal(batch, "batch")
    sent_at_ms = batch["sent_at_ms"]
    if type(sent_at_ms) is not int or not 0 <= sent_at_ms <= SENT_AT_MS_MAX:
        raise _envelope_invalid("batch.sent_at_ms: Unix milliseconds (an integer)")
    requests = batch["requests"]
    if not isinstance(requests, list) or not 0 < len(requests) <= BATCH_REQUESTS_MAX:
        raise _envelope_invalid(f"batch.requests: a list of 1 to {BATCH_REQUESTS_MAX} requests")
    signed = _canonical(batch, "batch")
    parsed = tuple(_parsed(request) for request in requests)
    return Submission(terminal, parsed, signed, signature, Purpose.REDEMPTION_BATCH)


class TerminalOwners:
    """Which provider each terminal belongs to, remembered: a terminal's provider never changes, so reading
    it before the redemption cannot disagree with it. Bounded; unknown terminals are not remembered."""

    def __init__(self, unit_of_work: UnitOfWork, remembered_max: int = TERMINALS_REMEMBERED_MAX) -> None:
        self.unit_of_work = unit_of_work
        self.remembered_max = remembered_max
        self._owners: dict[uuid.UUID, uuid.UUID] = {}

    def remembered(self, terminal_id: uuid.UUID) -> uuid.UUID | None:
        """The owner if it is remembered (no database read), else None."""
        return self._owners.get(terminal_id)

    def owner(self, terminal_id: uuid.UUID) -> uuid.UUID | None:
        known = self._owners.get(terminal_id)
        if known is not None:
            return known
        owner = self.unit_of_work.read(lambda c: terminal_owner(c, terminal_id))
        if owner is not None and len(self._owners) < self.remembered_max:
            self._owners[terminal_id] = owner
        return owner


async def redeem_coalesced(
    owners: TerminalOwners, coalescer: RedemptionCoalescer, provider_id: uuid.UUID, submission: Submission
) -> tuple[list[RedemptionOutcome], Receipt]:
    """A single request, redeemed in a transaction it shares with other terminals' requests. The event
    loop awaits the answer without holding a worker thread; only a terminal whose owner is not yet
    remembered costs one (the database read)."""
    owner = owners.remembered(submission.terminal_id)
    if owner is None:
        owner = await run_in_threadpool(owners.owner, submission.terminal_id)
    if owner != provider_id:
        raise Problem(404, "terminal_not_found", "No such terminal", str(submission.terminal_id))
    return await asyncio.wrap_future(coalescer.submit(submission))


def terminal_owner(connection: psycopg.Connection[Any], terminal_id: uuid.UUID) -> uuid.UUID | None:
    row = connection.execute("SELECT provider_id FROM terminals WHERE id = %s", (terminal_id,)).fetchone()
    return None if row is None else row[0]


def redeem_for_provider(
    vouchers: VoucherLedger, provider_id: uuid.UUID, submission: Submission
) -> tuple[list[RedemptionOutcome], Receipt]:
    """Redeem one terminal's submission in one transaction, if the terminal is this provider's (a
    terminal's provider never changes, so the check and the redemption cannot disagree)."""

    def work(connection: psycopg.Connection[Any]) -> list[RedemptionOutcome]:
        if terminal_owner(connection, submission.terminal_id) != provider_id:
            raise Problem(404, "terminal_not_found", "No such terminal", str(submission.terminal_id))
        return redemption.redeem(connection, vouchers.verifier, [submission])[0]

    outcomes = vouchers.unit_of_work.run(work)
    return outcomes, sign_receipt(vouchers.signer, submission.terminal_id, outcomes)
