"""Issuing vouchers: value moves from the programme fund (or a regional sub-fund) into each voucher's own
ledger account, and the holder gets a signed token and a reference code.

One call issues a batch in the caller's transaction, with one result per order:

1. the programme, its policy in force and the issuer key are read; orders are checked against them, and
   the tokens and audit events of those that pass are made (before any lock: signing and encoding are most
   of a batch's work, and another batch may write under the fund's lock meanwhile);
2. the funds are locked (id order) and each order is taken in turn while its fund can cover it, so an
   order the fund cannot cover is refused (`insufficient_funds`) and never half-made (its token is
   dropped unused);
3. voucher accounts are opened, and the fund → voucher transfers made: PENDING with the offer's timeout
   when the programme asks for the citizen's consent (acceptance posts it, declining voids it), posted
   otherwise;
4. voucher rows (with the token's signature), prescription items and one audit event per voucher.

The voucher id is the caller's idempotency key: issuing the same order again answers `exists`.
"""

import base64
import datetime as dt
import functools
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from ledger.account_store import create_accounts
from ledger.accounts import Account, AccountFlags, AccountType
from ledger.audit.events import json_event
from ledger.audit.inbox import append_events
from ledger.clock import BUSINESS_TIMEZONE, NANOSECONDS_PER_SECOND, datetime_to_timestamp
from ledger.ids import derived_id
from ledger.results import CreateAccountResult, CreateTransferResult
from ledger.store import create_transfers
from ledger.timestamps import reserve_timestamps
from ledger.transfer_codes import TransferCode
from ledger.transfers import Transfer, TransferFlags
from ledger.vouchers.issuance_orders import IssueContext, VoucherOrder, check_order, load_issue_context
from ledger.vouchers.policy import NO_LIMIT, limit_or_none
from ledger.vouchers.reference import ALPHABET, RANDOM_CHARS, _check_character
from ledger.vouchers.results import IssueResult
from ledger.vouchers.states import VoucherState
from ledger.vouchers.tokens import IssuerSigner, VoucherClaims, claims_payload, token_from_payload

ISSUE_NAMESPACE: Final = uuid.UUID("3f0d7a4e-6c1b-4f53-9d2e-8b7a1c5e9f20")
_VOUCHER_FLAGS: Final = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
_COPY_VOUCHERS: Final = """
COPY vouchers (id, programme_id, fund_account_id, holder_hash, state, policy_version, amount_tiyn, units_max,
               not_before, expires_at, period_uses_max, period_tiyn_max, period_units_max, purpose,
               issuer_key_id, reference_code, token_signature, issue_transfer_id, "timestamp")
FROM STDIN
"""
_COPY_ITEMS: Final = "COPY voucher_items (voucher_id, item_code, quantity_max) FROM STDIN"
__all__ = ["ISSUE_NAMESPACE", "IssuedVoucher", "VoucherOrder", "issue_transfer_id", "issue_vouchers"]


@dataclass(frozen=True, slots=True)
class IssuedVoucher:
    """What a newly issued voucher is, as the caller needs it (`views.voucher_token` rebuilds the token
    later from the stored row; `token` gives it now without encoding the claims again)."""

    claims: VoucherClaims
    state: VoucherState
    reference_code: str
    key_id: str
    signature: bytes
    payload: bytes  # the token's signed claims, `claims_payload(claims)`

    @property
    def token(self) -> str:
        return token_from_payload(self.payload, self.key_id, self.signature)


def issue_transfer_id(voucher_id: uuid.UUID) -> uuid.UUID:
    return derived_id(ISSUE_NAMESPACE, voucher_id, "issue")


def issue_vouchers(
    connection: psycopg.Connection[Any], signer: IssuerSigner, orders: Sequence[VoucherOrder]
) -> tuple[list[IssueResult], list[IssuedVoucher]]:
    """Issue `orders` inside the caller's transaction: one result per order, and the vouchers made."""
    results = [IssueResult.ok] * len(orders)
    if not orders:
        return results, []
    now = reserve_timestamps(connection, len(orders))
    context = load_issue_context(connection, orders, signer.key_id, now)
    accepted: list[int] = []
    for index, order in enumerate(orders):
        results[index] = check_order(order, context, now)
        if results[index] is IssueResult.ok:
            accepted.append(index)
    _compare_existing(connection, orders, results)
    # Tokens and audit events are made before the funds are locked: they are most of a batch's Python
    # work, and another batch may write under the fund's lock meanwhile.
    signed = {index: _make_voucher(orders[index], context, signer, now + index) for index in accepted}
    events = {index: _issued_event(signed[index][0], context) for index in accepted}
    accepted = _take_from_funds(connection, context, orders, accepted, results)
    accepted = _drop_issued_meanwhile(connection, orders, accepted, results)
    made = [signed[index] for index in accepted]
    if made:
        _write(connection, made, context, [events[index] for index in accepted])
    return results, [voucher for voucher, _ in made]


def _compare_existing(
    connection: psycopg.Connection[Any], orders: Sequence[VoucherOrder], results: list[IssueResult]
) -> None:
    """`exists` for a faithful retry of a voucher already issued, else `exists_with_different_fields`."""
    repeated = [index for index, result in enumerate(results) if result is IssueResult.exists]
    if not repeated:
        return
    stored = {
        row[0]: tuple(row[1:])
        for row in connection.execute(
            """SELECT id, programme_id, holder_hash, amount_tiyn, units_max FROM vouchers
                WHERE id = ANY(%s)""",
            ([orders[index].id for index in repeated],),
        )
    }
    for index in repeated:
        order = orders[index]
        units = NO_LIMIT if order.units_max is None else order.units_max
        fields = (order.programme_id, order.holder_hash, order.amount_tiyn, units)
        if stored.get(order.id) != fields:
            results[index] = IssueResult.exists_with_different_fields


def _drop_issued_meanwhile(
    connection: psycopg.Connection[Any],
    orders: Sequence[VoucherOrder],
    accepted: list[int],
    results: list[IssueResult],
) -> list[int]:
    """Orders another transaction issued after this one first looked (it held the fund's lock until it
    committed): they answer `exists` like any retry, instead of failing the whole batch."""
    if not accepted:
        return accepted
    issued = {
        row[0]
        for row in connection.execute(
            "SELECT id FROM accounts WHERE id = ANY(%s)", ([orders[index].id for index in accepted],)
        )
    }
    if not issued:
        return accepted
    for index in accepted:
        if orders[index].id in issued:
            results[index] = IssueResult.exists
    _compare_existing(connection, orders, results)
    return [index for index in accepted if orders[index].id not in issued]


def _take_from_funds(
    connection: psycopg.Connection[Any],
    context: IssueContext,
    orders: Sequence[VoucherOrder],
    accepted: list[int],
    results: list[IssueResult],
) -> list[int]:
    """Lock the funds in id order and keep the orders they can cover, in order."""
    funds = sorted({context.funds[orders[index].id] for index in accepted})
    available: dict[uuid.UUID, int] = {}
    if funds:
        rows = connection.execute(
            """SELECT id, credits_posted - debits_posted - debits_pending FROM accounts
                WHERE id = ANY(%s) ORDER BY id FOR UPDATE""",
            (funds,),
        ).fetchall()
        available = {row[0]: row[1] for row in rows}
    kept = []
    for index in accepted:
        order = orders[index]
        fund = context.funds[order.id]
        left = available.get(fund, 0)
        if order.amount_tiyn > left:
            results[index] = IssueResult.insufficient_funds
            continue
        available[fund] = left - order.amount_tiyn
        kept.append(index)
    return kept


def _make_voucher(
    order: VoucherOrder, context: IssueContext, signer: IssuerSigner, timestamp: int
) -> tuple[IssuedVoucher, int]:
    programme = context.programmes[order.programme_id]
    policy = programme.policy
    not_before = order.not_before or max(timestamp, _day_start(policy.valid_from))
    expires_at = order.expires_at or _day_start(policy.valid_until + dt.timedelta(days=1))
    claims = VoucherClaims(
        voucher_id=order.id,
        programme_id=order.programme_id,
        purpose=policy.purpose,
        holder_hash=order.holder_hash,
        amount_tiyn=order.amount_tiyn,
        units_max=NO_LIMIT if order.units_max is None else order.units_max,
        period=policy.period.value,
        period_uses_max=limit_or_none(policy.period_uses_max),
        period_tiyn_max=limit_or_none(policy.period_tiyn_max),
        period_units_max=limit_or_none(policy.period_units_max),
        items=order.items,
        issued_at_s=timestamp // NANOSECONDS_PER_SECOND,
        not_before_s=not_before // NANOSECONDS_PER_SECOND,
        expires_at_s=expires_at // NANOSECONDS_PER_SECOND,
    )
    if policy.consent_required:
        state = VoucherState.OFFERED
    elif policy.activation_required:
        state = VoucherState.ACCEPTED
    else:
        state = VoucherState.ACTIVE
    payload = claims_payload(claims)
    voucher = IssuedVoucher(
        claims, state, _new_reference_code(), signer.key_id, signer.sign_payload(payload), payload
    )
    return voucher, timestamp


def _write(
    connection: psycopg.Connection[Any],
    made: list[tuple[IssuedVoucher, int]],
    context: IssueContext,
    events: list[bytes],
) -> None:
    account_results, _ = create_accounts(
        connection,
        [
            Account(v.claims.voucher_id, context.programmes[v.claims.programme_id].asset, AccountType.VOUCHER,
                    flags=_VOUCHER_FLAGS, user_data_128=v.claims.programme_id)
            for v, _ in made
        ],
    )  # fmt: skip
    assert all(r is CreateAccountResult.ok for r in account_results), f"voucher accounts: {account_results}"
    transfer_ids = [issue_transfer_id(voucher.claims.voucher_id) for voucher, _ in made]
    transfers = [
        _issue_transfer(voucher, context, t) for (voucher, _), t in zip(made, transfer_ids, strict=True)
    ]
    transfer_results, _ = create_transfers(connection, transfers, release_expired=False)
    # The funds were locked and checked above, so every transfer must succeed; anything else is a bug and
    # the whole batch rolls back.
    assert all(r is CreateTransferResult.ok for r in transfer_results), f"issue transfers: {transfer_results}"
    with connection.cursor().copy(_COPY_VOUCHERS) as copy:
        for (voucher, timestamp), transfer_id in zip(made, transfer_ids, strict=True):
            copy.write_row(_voucher_row(voucher, context, timestamp, transfer_id))
    items = [
        (voucher.claims.voucher_id, code, quantity)
        for voucher, _ in made
        for code, quantity in voucher.claims.items
    ]
    if items:
        with connection.cursor().copy(
            "COPY voucher_items (voucher_id, item_code, quantity_max) FROM STDIN"
        ) as copy:
            for item in items:
                copy.write_row(item)
    append_events(connection, events)


def _issue_transfer(voucher: IssuedVoucher, context: IssueContext, transfer_id: uuid.UUID) -> Transfer:
    claims = voucher.claims
    programme = context.programmes[claims.programme_id]
    fund = context.funds[claims.voucher_id]
    pending = voucher.state is VoucherState.OFFERED
    return Transfer(
        id=transfer_id,
        debit_account_id=fund,
        credit_account_id=claims.voucher_id,
        amount=claims.amount_tiyn,
        asset=programme.asset,
        code=int(TransferCode.ISSUE),
        flags=int(TransferFlags.PENDING) if pending else 0,
        timeout_s=programme.policy.offer_days * 86_400 if pending else 0,
        user_data_128=claims.programme_id,
    )


def _voucher_row(
    voucher: IssuedVoucher, context: IssueContext, timestamp: int, transfer_id: uuid.UUID
) -> tuple[object, ...]:
    claims = voucher.claims
    programme = context.programmes[claims.programme_id]
    return (
        claims.voucher_id, claims.programme_id, context.funds[claims.voucher_id], claims.holder_hash,
        int(voucher.state), programme.policy_version, claims.amount_tiyn, claims.units_max, claims.not_before,
        claims.expires_at, claims.period_uses_max, claims.period_tiyn_max, claims.period_units_max,
        claims.purpose, voucher.key_id, voucher.reference_code, voucher.signature,
        transfer_id, timestamp,
    )  # fmt: skip


def _issued_event(voucher: IssuedVoucher, context: IssueContext) -> bytes:
    claims = voucher.claims
    return json_event(
        "voucher_issued",
        {
            "voucher": str(claims.voucher_id),
            "programme": str(claims.programme_id),
            "fund_account": str(context.funds[claims.voucher_id]),
            "holder": claims.holder_hash.hex(),
            "state": int(voucher.state),
            "amount_tiyn": claims.amount_tiyn,
            "units_max": claims.units_max,
            "items": [[code, quantity] for code, quantity in claims.items],
            "not_before": claims.not_before,
            "expires_at": claims.expires_at,
            "key_id": voucher.key_id,
            "policy_version": context.programmes[claims.programme_id].policy_version,
        },
    )


@functools.lru_cache(maxsize=256)
def _day_start(day: dt.date) -> int:
    """Midnight at the start of `day` in Kazakhstan, as ledger nanoseconds."""
    return datetime_to_timestamp(dt.datetime.combine(day, dt.time(), tzinfo=BUSINESS_TIMEZONE))


# RFC 4648 base32 symbols → Crockford's: a bijection, so uniformly random symbols stay uniformly random.
_CROCKFORD: Final = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", ALPHABET.encode("ascii"))
_RANDOM_BYTES: Final = 7  # 56 random bits; the first 11 base32 symbols use 55 of them


def _new_reference_code() -> str:
    """`reference.new_reference_code`, in one urandom call instead of eleven (bulk issuance makes
    millions): eleven uniformly random Crockford symbols and the same Luhn mod 32 check character."""
    body = base64.b32encode(os.urandom(_RANDOM_BYTES))[:RANDOM_CHARS].translate(_CROCKFORD).decode("ascii")
    return body + _check_character(body)
