"""Support programmes as treasury officers run them: code, name, budget classification code (КБК), region,
period, ceiling, asset (tenge or digital tenge), the paying authority, and the policy its vouchers carry.

A programme is created as a draft (its fund and policy are registered in the ledger at once, so its ids
are fixed), opened for issuing, and closed for good. Vouchers are issued only while it is open: issuing
locks the programme row FOR SHARE and closing takes it FOR UPDATE, so no issue slips past a close.
"""

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

import psycopg

from ledger.accounts import AccountType
from ledger.audit.events import json_event
from ledger.audit.inbox import append_events
from ledger.identity import IdentityFormatError, validate_bin, validate_iban
from ledger.ids import is_reserved_id
from ledger.limits import AMOUNT_TIYN_MAX
from ledger.money import Asset
from ledger.timestamps import reserve_timestamps
from ledger.vouchers.policy import Policy
from ledger.vouchers.registry import Outcome, open_ledger_account, record_policy, register_programme
from treasury.errors import RefusalKind, Refused
from treasury.officers import officer_name

CODE_PATTERN: Final = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,39}$")
KBK_PATTERN: Final = re.compile(r"^[0-9]{3} [0-9]{3} [0-9]{3}$")
VAT_RATES: Final = frozenset({"exempt", "0", "12", "16"})
TEXT_CHARS_MAX: Final = 300


class ProgrammeState(IntEnum):
    DRAFT = 1
    OPEN = 2
    CLOSED = 3


@dataclass(frozen=True, slots=True)
class PayingAuthority:
    """The customer on acts and the buyer on invoices: the ministry or akimat that pays providers."""

    name: str
    bin: str
    address: str
    iban: str
    bank_name: str
    bic: str


@dataclass(frozen=True, slots=True)
class ProgrammeDraft:
    id: uuid.UUID
    code: str
    name: str
    kbk: str
    region: str  # "national" or the region (oblast / city of republican significance)
    period_start: dt.date
    period_end: dt.date
    asset: Asset
    budget_ceiling_tiyn: int
    # Funding orders above this need a second officer's approval.
    approval_threshold_tiyn: int
    vat_rate: str
    budget_account_id: uuid.UUID
    fund_account_id: uuid.UUID
    customer: PayingAuthority


@dataclass(frozen=True, slots=True)
class Programme:
    draft: ProgrammeDraft
    purpose: str
    state: ProgrammeState
    created_by: str
    timestamp: int

    @property
    def id(self) -> uuid.UUID:
        return self.draft.id


_INSERT: Final = """
INSERT INTO programmes (id, code, name, purpose, kbk, region, period_start, period_end, asset,
    budget_ceiling_tiyn, approval_threshold_tiyn, vat_rate, budget_account_id, fund_account_id, customer_name,
    customer_bin, customer_address, customer_iban, customer_bank_name, customer_bic, state, created_by,
    "timestamp")
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
_SELECT: Final = """
SELECT id, code, name, kbk, region, period_start, period_end, asset, budget_ceiling_tiyn,
       approval_threshold_tiyn, vat_rate, budget_account_id, fund_account_id, customer_name, customer_bin,
       customer_address, customer_iban, customer_bank_name, customer_bic, purpose, state, created_by,
       "timestamp"
  FROM programmes
"""


def create_programme(
    connection: psycopg.Connection[Any], draft: ProgrammeDraft, policy: Policy, officer: str
) -> Programme:
    """Create a draft programme, its budget and fund accounts, and its policy's first version.
    Creating the same programme again returns it; the same id or code with other fields is refused."""
    officer = officer_name(officer)
    _check_draft(draft)
    existing = find_programme(connection, draft.id)
    if existing is not None:
        if existing.draft != draft:
            raise Refused(
                "programme_exists", "a programme with this id exists with other fields", RefusalKind.CONFLICT
            )
        return existing
    if connection.execute("SELECT 1 FROM programmes WHERE code = %s", (draft.code,)).fetchone():
        raise Refused("programme_code_taken", f"the code {draft.code} is taken", RefusalKind.CONFLICT)
    budget_type = (
        AccountType.CENTRAL_BANK_ISSUANCE if draft.asset is Asset.DIGITAL_KZT else AccountType.TREASURY_BUDGET
    )
    if not open_ledger_account(connection, draft.budget_account_id, int(draft.asset), budget_type, draft.id):
        raise Refused("budget_account_invalid", "the budget account id is taken by another account")
    outcome = register_programme(connection, draft.id, int(draft.asset), draft.fund_account_id, policy)
    if not outcome.ok:
        raise Refused(
            f"ledger_{outcome.result.name}", outcome.detail or outcome.result.name, RefusalKind.CONFLICT
        )
    timestamp = reserve_timestamps(connection)
    customer = draft.customer
    connection.execute(
        _INSERT,
        (
            draft.id, draft.code, draft.name, policy.purpose, draft.kbk, draft.region, draft.period_start,
            draft.period_end, int(draft.asset), draft.budget_ceiling_tiyn, draft.approval_threshold_tiyn,
            draft.vat_rate, draft.budget_account_id, draft.fund_account_id, customer.name, customer.bin,
            customer.address, customer.iban, customer.bank_name, customer.bic, int(ProgrammeState.DRAFT),
            officer, timestamp,
        ),
    )  # fmt: skip
    append_events(connection, [json_event("programme_created", _created_fields(draft, policy, officer))])
    return Programme(draft, policy.purpose, ProgrammeState.DRAFT, officer, timestamp)


def _created_fields(draft: ProgrammeDraft, policy: Policy, officer: str) -> dict[str, str | int]:
    """What the audit log keeps of a new programme: who created it, and everything an act or a payment
    order will later print of it."""
    return {
        "programme": str(draft.id), "code": draft.code, "name": draft.name, "purpose": policy.purpose,
        "kbk": draft.kbk, "region": draft.region, "period_start": draft.period_start.isoformat(),
        "period_end": draft.period_end.isoformat(), "asset": int(draft.asset),
        "budget_ceiling_tiyn": draft.budget_ceiling_tiyn,
        "approval_threshold_tiyn": draft.approval_threshold_tiyn,
        "vat_rate": draft.vat_rate, "budget_account": str(draft.budget_account_id),
        "fund_account": str(draft.fund_account_id), "customer_bin": draft.customer.bin,
        "customer_iban": draft.customer.iban, "officer": officer,
    }  # fmt: skip


def open_programme(connection: psycopg.Connection[Any], programme_id: uuid.UUID, officer: str) -> Programme:
    """Open a draft programme for issuing; the audit log names the officer. Opening an open programme
    changes nothing (and logs nothing); a closed one never opens again."""
    who = officer_name(officer)
    before = find_programme(connection, programme_id)
    programme = set_programme_state(connection, programme_id, ProgrammeState.OPEN)
    if before is not None and before.state is ProgrammeState.DRAFT:
        append_events(
            connection, [json_event("programme_opened", {"programme": str(programme_id), "officer": who})]
        )
    return programme


def set_programme_state(
    connection: psycopg.Connection[Any], programme_id: uuid.UUID, state: ProgrammeState
) -> Programme:
    """Open a draft, or close an open programme (idempotent: asking for the state it is in is fine)."""
    before = {ProgrammeState.OPEN: ProgrammeState.DRAFT, ProgrammeState.CLOSED: ProgrammeState.OPEN}.get(
        state
    )
    if before is None:
        raise Refused("state_invalid", "a programme can only be opened or closed")
    row = connection.execute(
        "SELECT state FROM programmes WHERE id = %s FOR UPDATE", (programme_id,)
    ).fetchone()
    if row is None:
        raise Refused("programme_not_found", str(programme_id), RefusalKind.NOT_FOUND)
    if row[0] != state:
        if row[0] != before:
            current = ProgrammeState(row[0]).name.lower()
            raise Refused("illegal_state_change", f"a {current} programme cannot become {state.name.lower()}",
                          RefusalKind.CONFLICT)  # fmt: skip
        connection.execute("UPDATE programmes SET state = %s WHERE id = %s", (int(state), programme_id))
    found = find_programme(connection, programme_id)
    assert found is not None
    return found


def lock_open_programme(connection: psycopg.Connection[Any], programme_id: uuid.UUID) -> Programme:
    """The programme, held FOR SHARE until commit; refused unless it is open (issuing needs this)."""
    programme = find_programme(connection, programme_id, lock=" FOR SHARE")
    if programme is None:
        raise Refused("programme_not_found", str(programme_id), RefusalKind.NOT_FOUND)
    if programme.state is not ProgrammeState.OPEN:
        raise Refused(
            "programme_not_open", f"the programme is {programme.state.name.lower()}", RefusalKind.CONFLICT
        )
    return programme


def record_programme_policy(
    connection: psycopg.Connection[Any], programme_id: uuid.UUID, policy: Policy, valid_from: int | None
) -> Outcome:
    """A new version of the programme's policy (`registry.record_policy`), refused once it is closed: the
    row is held FOR SHARE, so a close cannot slip between the check and the new version."""
    programme = find_programme(connection, programme_id, lock=" FOR SHARE")
    if programme is None:
        raise Refused("programme_not_found", str(programme_id), RefusalKind.NOT_FOUND)
    if programme.state is ProgrammeState.CLOSED:
        raise Refused(
            "programme_closed", "a closed programme's policy no longer changes", RefusalKind.CONFLICT
        )
    return record_policy(connection, programme_id, policy, valid_from)


def find_programme(
    connection: psycopg.Connection[Any], programme_id: uuid.UUID, lock: str = ""
) -> Programme | None:
    row = connection.execute(_SELECT + " WHERE id = %s" + lock, (programme_id,)).fetchone()
    return _programme(row) if row is not None else None


def find_programme_by_code(connection: psycopg.Connection[Any], code: str) -> Programme | None:
    """The programme officers call `code` (e.g. SM-2026-AST): how the CLI and the API name one."""
    row = connection.execute(_SELECT + " WHERE code = %s", (code,)).fetchone()
    return _programme(row) if row is not None else None


def list_programmes(
    connection: psycopg.Connection[Any], after_code: str = "", limit: int = 100
) -> list[Programme]:
    rows = connection.execute(
        _SELECT + " WHERE code > %s ORDER BY code LIMIT %s", (after_code, limit)
    ).fetchall()
    return [_programme(row) for row in rows]


def _programme(row: tuple[Any, ...]) -> Programme:
    customer = PayingAuthority(*row[13:19])
    draft = ProgrammeDraft(
        id=row[0], code=row[1], name=row[2], kbk=row[3], region=row[4], period_start=row[5],
        period_end=row[6], asset=Asset(row[7]), budget_ceiling_tiyn=row[8], approval_threshold_tiyn=row[9],
        vat_rate=row[10], budget_account_id=row[11], fund_account_id=row[12], customer=customer,
    )  # fmt: skip
    return Programme(draft, row[19], ProgrammeState(row[20]), row[21], row[22])


def _check_draft(draft: ProgrammeDraft) -> None:
    ids = (draft.id, draft.budget_account_id, draft.fund_account_id)
    if any(is_reserved_id(i) for i in ids) or len(set(ids)) != 3:
        raise Refused("ids_invalid", "programme, budget and fund ids must be three distinct non-zero ids")
    if not CODE_PATTERN.match(draft.code):
        raise Refused("code_invalid", "a code is 2-40 capital letters, digits and dashes, e.g. SM-2026-AST")
    if not KBK_PATTERN.match(draft.kbk):
        raise Refused("kbk_invalid", "a budget classification code reads like '251 027 015'")
    for label, text in (
        ("name", draft.name),
        ("region", draft.region),
        ("customer name", draft.customer.name),
        ("customer address", draft.customer.address),
        ("bank name", draft.customer.bank_name),
    ):
        if not 0 < len(text.strip()) <= TEXT_CHARS_MAX:
            raise Refused("text_invalid", f"the {label} must be 1 to {TEXT_CHARS_MAX} characters")
    if draft.period_end < draft.period_start:
        raise Refused("period_invalid", "the period ends before it starts")
    if not 0 < draft.budget_ceiling_tiyn <= AMOUNT_TIYN_MAX:
        raise Refused("ceiling_invalid", f"the ceiling must be 1 to {AMOUNT_TIYN_MAX} tiyn")
    if not 0 <= draft.approval_threshold_tiyn <= draft.budget_ceiling_tiyn:
        raise Refused("threshold_invalid", "the approval threshold must be between 0 and the ceiling")
    if draft.vat_rate not in VAT_RATES:
        raise Refused("vat_rate_invalid", f"VAT rate must be one of {sorted(VAT_RATES)}")
    try:
        validate_bin(draft.customer.bin)
        validate_iban(draft.customer.iban)
    except IdentityFormatError as error:
        raise Refused(f"customer_{error.rule.value}", str(error)) from None
