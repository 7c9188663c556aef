"""What the treasury routers read besides the treasury's own finders: a programme with its funding, its
policy versions, its sub-funds' balances, and a provider with its profile and enrolments. Pure reads in
the caller's transaction."""

import json
import uuid
from typing import Any, Final

import psycopg

from api.schemas.common import at
from api.schemas.treasury import PolicyVersionView, ProgrammeView
from api.schemas.treasury_funding import SubFundView
from api.schemas.treasury_issuance import EnrolmentView, ProviderProfileView, ProviderView
from ledger.vouchers.states import ProviderCategory, ProviderState
from treasury.allocation import SubFund
from treasury.errors import RefusalKind, Refused
from treasury.funding import funding_of
from treasury.programmes import Programme, find_programme

_POLICIES: Final = """
SELECT version, valid_from, body, "timestamp" FROM voucher_policies
 WHERE programme_id = %s AND version > %s ORDER BY version LIMIT %s
"""
# Available to move or issue: posted credits less posted and pending debits (offers reserve value).
_BALANCES: Final = """
SELECT id, credits_posted - debits_posted - debits_pending FROM accounts WHERE id = ANY(%s)
"""
_PROVIDER: Final = """
SELECT p.id, p.bin, p.name, p.category, p."timestamp", f.address, f.iban, f.bank_name, f.bic,
       f.contract_number, f.contract_date
  FROM providers p LEFT JOIN provider_profiles f ON f.provider_id = p.id
 WHERE p.id = %s
"""
_ENROLMENTS: Final = """
SELECT programme_id, provider_id, receivable_account_id, state FROM programme_providers
 WHERE provider_id = %s ORDER BY "timestamp"
"""


def require_programme(connection: psycopg.Connection[Any], programme_id: uuid.UUID) -> Programme:
    programme = find_programme(connection, programme_id)
    if programme is None:
        raise Refused("programme_not_found", str(programme_id), RefusalKind.NOT_FOUND)
    return programme


def programme_view(connection: psycopg.Connection[Any], programme: Programme) -> ProgrammeView:
    funded, _ = funding_of(connection, programme)
    return ProgrammeView.of(programme, funded)


def policy_versions(
    connection: psycopg.Connection[Any], programme_id: uuid.UUID, after_version: int, limit: int
) -> list[PolicyVersionView]:
    """The programme's policy versions, oldest first, after `after_version`."""
    rows = connection.execute(_POLICIES, (programme_id, after_version, limit)).fetchall()
    return [
        PolicyVersionView(
            programme_id=programme_id,
            version=version,
            valid_from=at(valid_from),
            recorded_at=at(timestamp),
            policy=json.loads(bytes(body)),
        )
        for version, valid_from, body, timestamp in rows
    ]


def sub_fund_views(connection: psycopg.Connection[Any], sub_funds: list[SubFund]) -> list[SubFundView]:
    balances = dict(connection.execute(_BALANCES, ([s.account_id for s in sub_funds],)).fetchall())
    return [SubFundView.of(s, int(balances.get(s.account_id, 0))) for s in sub_funds]


def enrolment_view(row: tuple[Any, ...]) -> EnrolmentView:
    state = ProviderState(row[3]).name.lower()
    return EnrolmentView(
        programme_id=row[0],
        provider_id=row[1],
        receivable_account_id=row[2],
        state=state,  # type: ignore[arg-type]
    )


def find_enrolment(
    connection: psycopg.Connection[Any], programme_id: uuid.UUID, provider_id: uuid.UUID
) -> EnrolmentView | None:
    row = connection.execute(
        """SELECT programme_id, provider_id, receivable_account_id, state FROM programme_providers
            WHERE programme_id = %s AND provider_id = %s""",
        (programme_id, provider_id),
    ).fetchone()
    return enrolment_view(row) if row is not None else None


def provider_view(connection: psycopg.Connection[Any], provider_id: uuid.UUID) -> ProviderView | None:
    row = connection.execute(_PROVIDER, (provider_id,)).fetchone()
    if row is None:
        return None
    profile = None
    if row[5] is not None:
        profile = ProviderProfileView(
            provider_id=row[0], address=row[5], iban=row[6], bank_name=row[7], bic=row[8],
            contract_number=row[9], contract_date=row[10],
        )  # fmt: skip
    enrolments = connection.execute(_ENROLMENTS, (provider_id,)).fetchall()
    return ProviderView(
        id=row[0], bin=row[1], name=row[2],
        category=ProviderCategory(row[3]).name.lower(),  # type: ignore[arg-type]
        registered_at=at(row[4]), profile=profile, programmes=[enrolment_view(e) for e in enrolments],
    )  # fmt: skip
