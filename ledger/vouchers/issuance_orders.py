"""An order to issue one voucher, and the checks it must pass before any value moves: the programme and
its policy in force, the fund, the amount, units and prescription items, the validity window, the issuer
key. Pure checks over what `load_issue_context` read in one round trip."""

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg

from ledger.clock import business_date
from ledger.ids import is_reserved_id
from ledger.limits import AMOUNT_TIYN_MAX
from ledger.vouchers.keys import load_issuer_keys
from ledger.vouchers.policy import UNITS_MAX, Policy, parse_policy_bytes
from ledger.vouchers.results import IssueResult

HOLDER_HASH_BYTES: Final = 32
ITEM_CODE_PATTERN: Final = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
ITEMS_PER_VOUCHER_MAX: Final = 50
ITEM_QUANTITY_MAX: Final = 10**6


@dataclass(frozen=True, slots=True)
class VoucherOrder:
    """One voucher to issue. `id` is both the voucher's and its ledger account's id, and the idempotency
    key. The holder appears only as the salted hash of the IIN (`ledger.identity.iin_holder_hash`)."""

    id: uuid.UUID
    programme_id: uuid.UUID
    holder_hash: bytes
    amount_tiyn: int
    # Default: the programme's main fund; a regional sub-fund must belong to the programme.
    fund_account_id: uuid.UUID | None = None
    # Unit-priced programmes (gas): the most units the voucher may ever pay for; None = no cap.
    units_max: int | None = None
    # Prescriptions: (item code, quantity) pairs.
    items: tuple[tuple[str, int], ...] = ()
    # Ledger nanoseconds; defaults: from now (or the programme's first day) to the end of its last day.
    not_before: int | None = None
    expires_at: int | None = None


@dataclass(frozen=True, slots=True)
class ProgrammeTerms:
    asset: int
    fund_account_id: uuid.UUID
    policy_version: int
    policy: Policy


@dataclass(slots=True)
class IssueContext:
    programmes: dict[uuid.UUID, ProgrammeTerms]
    # fund account → its programme
    fund_programmes: dict[uuid.UUID, uuid.UUID]
    existing: set[uuid.UUID]
    key_usable: bool
    # voucher id → the fund it draws from (filled by check_order)
    funds: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)


_SELECT_TERMS = """
SELECT p.id, p.asset, p.fund_account_id, v.version, v.body
  FROM voucher_programmes p
  CROSS JOIN LATERAL (SELECT version, body FROM voucher_policies
                       WHERE programme_id = p.id AND valid_from <= %s
                       ORDER BY valid_from DESC, version DESC LIMIT 1) v
 WHERE p.id = ANY(%s)
"""


def load_issue_context(
    connection: psycopg.Connection[Any], orders: Sequence[VoucherOrder], key_id: str, now: int
) -> IssueContext:
    programme_ids = list({order.programme_id for order in orders})
    programmes = {
        row[0]: ProgrammeTerms(row[1], row[2], row[3], parse_policy_bytes(bytes(row[4])))
        for row in connection.execute(_SELECT_TERMS, (now, programme_ids))
    }
    fund_rows = connection.execute(
        "SELECT account_id, programme_id FROM voucher_funds WHERE programme_id = ANY(%s)", (programme_ids,)
    ).fetchall()
    existing = {
        row[0]
        for row in connection.execute(
            "SELECT id FROM accounts WHERE id = ANY(%s)", ([order.id for order in orders],)
        )
    }
    key = load_issuer_keys(connection).get(key_id)
    return IssueContext(
        programmes=programmes,
        fund_programmes={row[0]: row[1] for row in fund_rows},
        existing=existing,
        key_usable=key is not None and key.may_issue(now),
    )


def check_order(order: VoucherOrder, context: IssueContext, now: int) -> IssueResult:
    """The first rule the order breaks, in precedence order, or ok."""
    if not isinstance(order.id, uuid.UUID) or is_reserved_id(order.id):
        return IssueResult.id_must_not_be_zero
    if type(order.amount_tiyn) is not int or order.amount_tiyn <= 0:
        return IssueResult.amount_must_be_positive
    if order.amount_tiyn > AMOUNT_TIYN_MAX:
        return IssueResult.amount_too_large
    if order.units_max is not None and (
        type(order.units_max) is not int or not 0 < order.units_max <= UNITS_MAX
    ):
        return IssueResult.units_invalid
    if not _items_valid(order.items):
        return IssueResult.items_invalid
    if order.not_before is not None and order.expires_at is not None and order.not_before >= order.expires_at:
        return IssueResult.validity_invalid
    if not isinstance(order.holder_hash, bytes) or len(order.holder_hash) != HOLDER_HASH_BYTES:
        return IssueResult.holder_invalid
    terms = context.programmes.get(order.programme_id)
    if terms is None:
        return IssueResult.programme_not_found
    fund = order.fund_account_id or terms.fund_account_id
    if context.fund_programmes.get(fund) != order.programme_id:
        return IssueResult.fund_not_of_programme
    result = _check_against_policy(order, terms.policy, now)
    if result is not IssueResult.ok:
        return result
    if order.id in context.existing:
        return IssueResult.exists  # refined against the stored voucher by the caller
    if not context.key_usable:
        return IssueResult.issuer_key_unavailable
    context.existing.add(order.id)  # a repeated id later in the same batch is the same voucher
    context.funds[order.id] = fund
    return IssueResult.ok


def _check_against_policy(order: VoucherOrder, policy: Policy, now: int) -> IssueResult:
    if bool(order.items) != policy.items_required:
        return IssueResult.items_invalid
    if order.units_max is not None and policy.unit_price_tiyn is None:
        return IssueResult.units_invalid
    today = business_date(now)
    if today > policy.valid_until:
        return IssueResult.outside_programme_window
    if policy.price_per_use_tiyn is not None and order.amount_tiyn % policy.price_per_use_tiyn:
        return IssueResult.exceeds_policy  # a set price: the voucher holds a whole number of uses
    if order.expires_at is not None and order.expires_at <= now:
        return IssueResult.validity_invalid
    return IssueResult.ok


def _items_valid(items: object) -> bool:
    if not isinstance(items, tuple) or len(items) > ITEMS_PER_VOUCHER_MAX:
        return False
    codes = [item[0] for item in items if isinstance(item, tuple) and len(item) == 2]
    if len(codes) != len(items) or len(set(codes)) != len(codes):
        return False
    return all(
        isinstance(code, str) and ITEM_CODE_PATTERN.match(code) and type(quantity) is int
        and 0 < quantity <= ITEM_QUANTITY_MAX
        for code, quantity in items
    )  # fmt: skip
