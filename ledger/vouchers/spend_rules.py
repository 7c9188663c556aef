"""Non-cashable, in the core: what a transfer out of a voucher account may credit.

`ledger.store` loads these rules in the same transaction whenever a batch debits a voucher account, and
`ledger.batches` refuses any other credit with `voucher_credit_not_allowed`. The database holds the same
rule (trigger `transfers_vouchers_non_cashable`) for anything that gets past Python. A voucher may pay:

- its own fund (or sub-fund): value returned at expiry, revocation or a declined offer;
- the receivable of a provider enrolled in the voucher's programme, whose category or id the policy version
  in force at the transfer's ledger timestamp allows.

Nothing else: no bank account, no other voucher, no person.
"""

import bisect
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ledger.wire import uuid_array

_SELECT_VOUCHERS = "SELECT id, programme_id, fund_account_id FROM vouchers WHERE id = ANY(%b::uuid[])"
_SELECT_POLICIES = """
SELECT programme_id, valid_from, provider_categories, named_providers FROM voucher_policies
 WHERE programme_id IN (SELECT programme_id FROM vouchers WHERE id = ANY(%b::uuid[]))
 ORDER BY programme_id, valid_from, version
"""
_SELECT_RECEIVERS = """
SELECT pp.programme_id, pp.receivable_account_id, pp.provider_id, p.category
  FROM programme_providers pp JOIN providers p ON p.id = pp.provider_id
 WHERE pp.receivable_account_id = ANY(%b::uuid[])
"""


@dataclass(slots=True)
class _PolicyVersions:
    valid_from: list[int] = field(default_factory=list)
    allowed: list[tuple[frozenset[int], frozenset[uuid.UUID]]] = field(default_factory=list)


@dataclass(slots=True)
class VoucherSpendRules:
    # voucher account → (programme, fund account)
    vouchers: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID]]
    policies: dict[uuid.UUID, _PolicyVersions]
    # (programme, receivable account) → (provider, category)
    receivers: dict[tuple[uuid.UUID, uuid.UUID], tuple[uuid.UUID, int]]

    def allows(self, voucher_account: uuid.UUID, credit_account: uuid.UUID, timestamp: int) -> bool:
        voucher = self.vouchers.get(voucher_account)
        if voucher is None:
            return False  # a voucher-type account with no voucher behind it may move nowhere
        programme_id, fund_account = voucher
        if credit_account == fund_account:
            return True
        receiver = self.receivers.get((programme_id, credit_account))
        versions = self.policies.get(programme_id)
        if receiver is None or versions is None:
            return False
        position = bisect.bisect_right(versions.valid_from, timestamp) - 1
        if position < 0:
            return False  # no version in force yet
        categories, providers = versions.allowed[position]
        provider_id, category = receiver
        return category in categories or provider_id in providers


def load_spend_rules(
    connection: psycopg.Connection[Any],
    voucher_accounts: Iterable[uuid.UUID],
    credit_accounts: Iterable[uuid.UUID],
) -> VoucherSpendRules:
    """One pipelined round trip: the vouchers, their programmes' policy versions, the receivers."""
    voucher_ids = uuid_array(list(set(voucher_accounts)))
    with connection.pipeline() as pipeline:
        voucher_cursor = connection.execute(_SELECT_VOUCHERS, (voucher_ids,), binary=True)
        policy_cursor = connection.execute(_SELECT_POLICIES, (voucher_ids,), binary=True)
        receiver_cursor = connection.execute(
            _SELECT_RECEIVERS, (uuid_array(list(set(credit_accounts))),), binary=True
        )
        pipeline.sync()
        vouchers = {row[0]: (row[1], row[2]) for row in voucher_cursor.fetchall()}
        policies: dict[uuid.UUID, _PolicyVersions] = {}
        for programme_id, valid_from, categories, providers in policy_cursor.fetchall():
            versions = policies.setdefault(programme_id, _PolicyVersions())
            versions.valid_from.append(valid_from)
            versions.allowed.append((frozenset(categories), frozenset(providers)))
        receivers = {(row[0], row[1]): (row[2], row[3]) for row in receiver_cursor.fetchall()}
    return VoucherSpendRules(vouchers, policies, receivers)
