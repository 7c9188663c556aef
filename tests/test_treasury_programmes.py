"""Programmes: created as drafts with their ledger accounts and policy, opened, closed; never backwards."""

import pytest

from ledger.errors import LedgerInvariantBroken
from ledger.identity import iin_holder_hash, validate_iin
from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.issuance import VoucherOrder
from ledger.vouchers.policy import parse_policy
from ledger.vouchers.registry import record_policy
from ledger.vouchers.results import IssueResult
from tests.treasury_operations_world import HOLDER_SALT, fresh_iins, fund, run_with_events
from tests.treasury_operations_world import open_programme as open_funded_programme
from tests.treasury_world import programme_draft
from tests.voucher_world import policy_document
from treasury.errors import Refused
from treasury.programmes import (
    ProgrammeState,
    create_programme,
    find_programme,
    lock_open_programme,
    open_programme,
    record_programme_policy,
    set_programme_state,
)


def test_a_programme_goes_from_draft_to_open_to_closed_and_never_back(pool):
    unit_of_work = UnitOfWork(pool)
    draft = programme_draft()
    policy = parse_policy(policy_document())
    created = unit_of_work.run(lambda c: create_programme(c, draft, policy, "officer.a"))
    assert created.state is ProgrammeState.DRAFT and created.purpose == "school_meals"
    assert (
        unit_of_work.run(lambda c: create_programme(c, draft, policy, "officer.a")).timestamp
        == created.timestamp
    )
    with pytest.raises(Refused) as refused:
        unit_of_work.run(lambda c: lock_open_programme(c, draft.id))
    assert refused.value.code == "programme_not_open"
    assert (
        unit_of_work.run(lambda c: set_programme_state(c, draft.id, ProgrammeState.OPEN)).state
        is ProgrammeState.OPEN
    )
    unit_of_work.run(lambda c: lock_open_programme(c, draft.id))
    unit_of_work.run(lambda c: set_programme_state(c, draft.id, ProgrammeState.CLOSED))
    with pytest.raises(Refused) as refused:
        unit_of_work.run(lambda c: set_programme_state(c, draft.id, ProgrammeState.OPEN))
    assert refused.value.code == "illegal_state_change"


def test_the_same_code_twice_is_refused_and_nothing_is_written(pool):
    unit_of_work = UnitOfWork(pool)
    policy = parse_policy(policy_document())
    first = programme_draft()
    unit_of_work.run(lambda c: create_programme(c, first, policy, "officer.a"))
    with pytest.raises(Refused) as refused:
        unit_of_work.run(lambda c: create_programme(c, programme_draft(code=first.code), policy, "officer.a"))
    assert refused.value.code == "programme_code_taken"


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("kbk", "251027015", "kbk_invalid"),
        ("code", "sm 2026", "code_invalid"),
        ("budget_ceiling_tiyn", 0, "ceiling_invalid"),
        ("vat_rate", "7", "vat_rate_invalid"),
    ],
)
def test_a_bad_draft_is_refused_with_the_rule_it_broke(pool, field, value, code):
    unit_of_work = UnitOfWork(pool)
    with pytest.raises(Refused) as refused:
        unit_of_work.run(
            lambda c: create_programme(
                c, programme_draft(**{field: value}), parse_policy(policy_document()), "o"
            )
        )
    assert refused.value.code == code


def test_the_audit_log_names_who_created_and_who_opened_a_programme(pool):
    unit_of_work = UnitOfWork(pool)
    draft = programme_draft()
    policy = parse_policy(policy_document())

    _, created = run_with_events(unit_of_work, lambda c: create_programme(c, draft, policy, " officer.a "))
    _, opened = run_with_events(unit_of_work, lambda c: open_programme(c, draft.id, "officer.b"))
    _, again = run_with_events(unit_of_work, lambda c: open_programme(c, draft.id, "officer.b"))

    [creation] = [event for event in created if event.kind == "programme_created"]
    assert creation.fields["programme"] == str(draft.id) and creation.fields["code"] == draft.code
    assert creation.fields["officer"] == "officer.a"  # as the approvals will compare it: trimmed
    assert creation.fields["budget_ceiling_tiyn"] == draft.budget_ceiling_tiyn
    assert creation.fields["customer_bin"] == draft.customer.bin
    assert [(e.kind, e.fields) for e in opened] == [
        ("programme_opened", {"programme": str(draft.id), "officer": "officer.b"})
    ]
    assert again == []  # opening an open programme changes nothing, so logs nothing


def test_a_programme_is_not_opened_by_nobody(pool):
    unit_of_work = UnitOfWork(pool)
    draft = programme_draft()
    unit_of_work.run(lambda c: create_programme(c, draft, parse_policy(policy_document()), "officer.a"))
    with pytest.raises(Refused) as refused:
        unit_of_work.run(lambda c: open_programme(c, draft.id, "  "))
    assert refused.value.code == "officer_invalid"
    assert unit_of_work.read(lambda c: find_programme(c, draft.id)).state is ProgrammeState.DRAFT


def test_a_policy_changes_while_the_programme_runs_and_never_after_it_closes(pool):
    unit_of_work = UnitOfWork(pool)
    draft = programme_draft()
    unit_of_work.run(lambda c: create_programme(c, draft, parse_policy(policy_document()), "officer.a"))
    dearer = parse_policy(policy_document(per_use_tiyn_max=90_000))
    outcome = unit_of_work.run(lambda c: record_programme_policy(c, draft.id, dearer, None))
    assert outcome.ok and outcome.detail == "2"
    unit_of_work.run(lambda c: open_programme(c, draft.id, "officer.a"))
    unit_of_work.run(lambda c: set_programme_state(c, draft.id, ProgrammeState.CLOSED))
    cheaper = parse_policy(policy_document(per_use_tiyn_max=50_000))
    with pytest.raises(Refused) as refused:
        unit_of_work.run(lambda c: record_programme_policy(c, draft.id, cheaper, None))
    assert refused.value.code == "programme_closed"
    versions = unit_of_work.read(
        lambda c: c.execute(
            "SELECT count(*) FROM voucher_policies WHERE programme_id = %s", (draft.id,)
        ).fetchone()
    )
    assert versions == (2,)


def _holder() -> bytes:
    return iin_holder_hash(validate_iin(fresh_iins(1)[0]), HOLDER_SALT)


def test_the_database_issues_no_voucher_once_the_programme_is_closed(pool, voucher_ledger):
    """The ledger's own `issue` knows nothing of treasury states: the database refuses it for them."""
    unit_of_work = UnitOfWork(pool)
    programme = open_funded_programme(
        unit_of_work, budget_ceiling_tiyn=10**12, approval_threshold_tiyn=10**12
    )
    fund(unit_of_work, programme, 10**8)
    results, _ = voucher_ledger.issue([VoucherOrder(new_id(), programme.id, _holder(), 100_000)])
    assert results == [IssueResult.ok]
    unit_of_work.run(lambda c: set_programme_state(c, programme.id, ProgrammeState.CLOSED))
    with pytest.raises(LedgerInvariantBroken, match="programmes_issue_while_open"):
        voucher_ledger.issue([VoucherOrder(new_id(), programme.id, _holder(), 100_000)])


def test_the_database_records_no_policy_for_a_closed_programme(pool):
    unit_of_work = UnitOfWork(pool)
    draft = programme_draft()
    unit_of_work.run(lambda c: create_programme(c, draft, parse_policy(policy_document()), "officer.a"))
    for state in (ProgrammeState.OPEN, ProgrammeState.CLOSED):
        unit_of_work.run(lambda c, state=state: set_programme_state(c, draft.id, state))
    later = parse_policy(policy_document(per_use_tiyn_max=50_000))
    with pytest.raises(LedgerInvariantBroken, match="programmes_closed_policy"):  # past treasury/
        unit_of_work.run(lambda c: record_policy(c, draft.id, later, None))
