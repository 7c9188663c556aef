"""Funding orders, maker-checker: small orders execute at once, large ones wait for a second officer, the
maker can never approve their own order, and funding never passes the programme's ceiling — not even when
officers approve at the same moment."""

import threading

import psycopg
import pytest

from ledger.ids import new_id
from ledger.money import Asset
from ledger.unit_of_work import UnitOfWork
from tests.treasury_operations_world import CHECKER, MAKER, balances, fund, open_programme, run_with_events
from treasury.errors import RefusalKind, Refused
from treasury.funding import (
    FundingState,
    approve_funding_order,
    create_funding_order,
    find_funding_order,
    list_funding_orders,
    reject_funding_order,
)
from treasury.programmes import ProgrammeState, set_programme_state

CEILING = 50_000_000_00  # 50 million tenge
THRESHOLD = 10_000_000_00


def _refusal(unit_of_work, work) -> Refused:
    with pytest.raises(Refused) as refused:
        unit_of_work.run(work)
    return refused.value


def test_an_order_within_the_threshold_executes_at_once_and_moves_budget_to_fund(pool):
    unit_of_work = UnitOfWork(pool)
    programme = open_programme(unit_of_work)
    order_id = new_id()
    order, events = run_with_events(
        unit_of_work, lambda c: create_funding_order(c, order_id, programme.id, THRESHOLD, MAKER)
    )
    assert order.state is FundingState.EXECUTED and order.approved_by is None
    draft = programme.draft
    assert balances(unit_of_work, draft.fund_account_id, draft.budget_account_id) == [THRESHOLD, -THRESHOLD]
    assert [e.kind for e in events if e.kind.startswith("funding")] == [
        "funding_order_created",
        "funding_order_executed",
    ]
    executed = events[-1].fields
    assert (executed["amount_tiyn"], executed["funded_tiyn"], executed["approved_by"]) == (
        THRESHOLD,
        THRESHOLD,
        None,
    )


def test_an_order_above_the_threshold_waits_for_a_second_officer(pool):
    unit_of_work = UnitOfWork(pool)
    programme = open_programme(unit_of_work)
    order_id = new_id()
    amount = THRESHOLD + 1
    waiting = unit_of_work.run(lambda c: create_funding_order(c, order_id, programme.id, amount, MAKER))
    assert waiting.state is FundingState.AWAITING_APPROVAL
    assert balances(unit_of_work, programme.draft.fund_account_id) == [0]
    approved, events = run_with_events(unit_of_work, lambda c: approve_funding_order(c, order_id, CHECKER))
    assert (approved.state, approved.approved_by) == (FundingState.EXECUTED, CHECKER)
    assert balances(unit_of_work, programme.draft.fund_account_id) == [amount]
    assert [e.kind for e in events] == ["funding_order_executed"]
    # Approving again is a faithful retry: nothing moves twice.
    assert unit_of_work.run(lambda c: approve_funding_order(c, order_id, CHECKER)) == approved
    assert balances(unit_of_work, programme.draft.fund_account_id) == [amount]


@pytest.mark.parametrize("same_person", [MAKER, MAKER.upper(), f"  {MAKER} "])
def test_an_officer_cannot_approve_their_own_order(pool, same_person):
    unit_of_work = UnitOfWork(pool)
    programme = open_programme(unit_of_work)
    order_id = new_id()
    unit_of_work.run(lambda c: create_funding_order(c, order_id, programme.id, THRESHOLD + 1, MAKER))
    refused = _refusal(unit_of_work, lambda c: approve_funding_order(c, order_id, same_person))
    assert (refused.code, refused.kind) == ("four_eyes", RefusalKind.FORBIDDEN)
    order = unit_of_work.read(lambda c: find_funding_order(c, order_id))
    assert order.state is FundingState.AWAITING_APPROVAL
    assert balances(unit_of_work, programme.draft.fund_account_id) == [0]


def test_the_database_refuses_self_approval_whatever_the_python_does(pool, owner_connection):
    unit_of_work = UnitOfWork(pool)
    programme = open_programme(unit_of_work)
    order_id = new_id()
    unit_of_work.run(lambda c: create_funding_order(c, order_id, programme.id, THRESHOLD + 1, MAKER))
    with pytest.raises(psycopg.errors.CheckViolation) as error:
        owner_connection.execute(
            """UPDATE funding_orders SET state = 2, approved_by = upper(created_by), decided_at = 1,
                      transfer_id = id WHERE id = %s""",
            (order_id,),
        )
    assert error.value.diag.constraint_name == "ck_funding_orders_four_eyes"
    owner_connection.rollback()
    with pytest.raises(psycopg.errors.CheckViolation) as error:
        owner_connection.execute(
            "UPDATE funding_orders SET state = 2, decided_at = 1, transfer_id = id WHERE id = %s", (order_id,)
        )
    assert error.value.diag.constraint_name == "ck_funding_orders_approval_above_threshold"


def test_a_rejected_order_moves_nothing_and_cannot_be_approved_after(pool):
    unit_of_work = UnitOfWork(pool)
    programme = open_programme(unit_of_work)
    order_id = new_id()
    unit_of_work.run(lambda c: create_funding_order(c, order_id, programme.id, THRESHOLD * 2, MAKER))
    rejected, events = run_with_events(
        unit_of_work, lambda c: reject_funding_order(c, order_id, CHECKER, "КБК не тот")
    )
    assert (rejected.state, rejected.rejected_by, rejected.rejection_reason) == (
        FundingState.REJECTED,
        CHECKER,
        "КБК не тот",
    )
    assert [e.kind for e in events] == ["funding_order_rejected"]
    refused = _refusal(unit_of_work, lambda c: approve_funding_order(c, order_id, "Third Officer"))
    assert refused.code == "order_not_awaiting_approval"
    assert balances(unit_of_work, programme.draft.fund_account_id) == [0]
    assert (
        _refusal(unit_of_work, lambda c: reject_funding_order(c, order_id, CHECKER, " ")).code
        == "reason_invalid"
    )


def test_funding_past_the_ceiling_is_refused_and_changes_nothing(pool):
    unit_of_work = UnitOfWork(pool)
    programme = open_programme(unit_of_work, approval_threshold_tiyn=CEILING)
    fund(unit_of_work, programme, CEILING - 100)
    order_id = new_id()
    refused = _refusal(unit_of_work, lambda c: create_funding_order(c, order_id, programme.id, 101, MAKER))
    assert (refused.code, refused.kind) == ("ceiling_exceeded", RefusalKind.CONFLICT)
    assert unit_of_work.read(lambda c: find_funding_order(c, order_id)) is None
    fund(unit_of_work, programme, 100)  # exactly up to the ceiling is fine
    assert balances(unit_of_work, programme.draft.fund_account_id) == [CEILING]


def test_the_database_refuses_a_funded_counter_past_the_ceiling(pool, owner_connection):
    unit_of_work = UnitOfWork(pool)
    programme = open_programme(unit_of_work)
    fund(unit_of_work, programme, 1)
    with pytest.raises(psycopg.errors.CheckViolation) as error:
        owner_connection.execute(
            "UPDATE programme_funding SET funded_tiyn = ceiling_tiyn + 1 WHERE programme_id = %s",
            (programme.id,),
        )
    assert error.value.diag.constraint_name == "ck_programme_funding_within_ceiling"


def test_officers_approving_at_once_never_fund_past_the_ceiling(pool):
    unit_of_work = UnitOfWork(pool)
    ceiling = 10_000_00
    programme = open_programme(unit_of_work, budget_ceiling_tiyn=ceiling, approval_threshold_tiyn=0)
    amount = ceiling // 5 + 7  # four fit, the fifth would pass the ceiling
    orders = [new_id() for _ in range(8)]
    for order_id in orders:
        unit_of_work.run(lambda c, o=order_id: create_funding_order(c, o, programme.id, amount, MAKER))
    start = threading.Barrier(len(orders))
    outcomes: dict[int, str] = {}

    def approve(index: int) -> None:
        start.wait()
        try:
            UnitOfWork(pool).run(lambda c: approve_funding_order(c, orders[index], f"checker {index}"))
            outcomes[index] = "executed"
        except Refused as refused:
            outcomes[index] = refused.code

    threads = [threading.Thread(target=approve, args=(index,)) for index in range(len(orders))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()) == ["ceiling_exceeded"] * 4 + ["executed"] * 4
    assert balances(unit_of_work, programme.draft.fund_account_id) == [4 * amount]
    executed = unit_of_work.read(lambda c: list_funding_orders(c, programme.id, FundingState.EXECUTED))
    assert len(executed) == 4


def test_orders_are_idempotent_by_id_and_another_order_under_the_same_id_is_refused(pool):
    unit_of_work = UnitOfWork(pool)
    programme = open_programme(unit_of_work)
    order_id = new_id()
    first = unit_of_work.run(lambda c: create_funding_order(c, order_id, programme.id, 5_00, MAKER))
    again = unit_of_work.run(lambda c: create_funding_order(c, order_id, programme.id, 5_00, MAKER))
    assert again == first
    assert balances(unit_of_work, programme.draft.fund_account_id) == [5_00]
    refused = _refusal(unit_of_work, lambda c: create_funding_order(c, order_id, programme.id, 6_00, MAKER))
    assert refused.code == "order_exists"


def test_a_draft_may_be_funded_and_a_closed_programme_may_not(pool):
    unit_of_work = UnitOfWork(pool)
    draft = open_programme(unit_of_work, state=ProgrammeState.DRAFT)
    assert draft.state is ProgrammeState.DRAFT
    fund(unit_of_work, draft, 1_00)
    waiting = new_id()
    unit_of_work.run(lambda c: create_funding_order(c, waiting, draft.id, THRESHOLD + 1, MAKER))
    unit_of_work.run(lambda c: set_programme_state(c, draft.id, ProgrammeState.OPEN))
    unit_of_work.run(lambda c: set_programme_state(c, draft.id, ProgrammeState.CLOSED))
    refused = _refusal(unit_of_work, lambda c: create_funding_order(c, new_id(), draft.id, 1_00, MAKER))
    assert refused.code == "programme_closed"
    assert (
        _refusal(unit_of_work, lambda c: approve_funding_order(c, waiting, CHECKER)).code
        == "programme_closed"
    )


def test_digital_tenge_is_funded_from_the_national_banks_issuance_account(pool):
    unit_of_work = UnitOfWork(pool)
    programme = open_programme(unit_of_work, asset=Asset.DIGITAL_KZT)
    fund(unit_of_work, programme, 7_00)
    issuance_code = unit_of_work.read(
        lambda c: c.execute(
            "SELECT code FROM accounts WHERE id = %s", (programme.draft.budget_account_id,)
        ).fetchone()
    )
    assert issuance_code == (2,)  # CENTRAL_BANK_ISSUANCE
    assert balances(unit_of_work, programme.draft.fund_account_id, programme.draft.budget_account_id) == [
        7_00,
        -7_00,
    ]


@pytest.mark.parametrize(
    ("amount", "officer", "code"),
    [(0, MAKER, "amount_invalid"), (10**16, MAKER, "amount_invalid"), (1, "  ", "officer_invalid")],
)
def test_a_bad_order_is_refused_with_the_rule_it_broke(pool, amount, officer, code):
    unit_of_work = UnitOfWork(pool)
    programme = open_programme(unit_of_work)
    assert (
        _refusal(
            unit_of_work, lambda c: create_funding_order(c, new_id(), programme.id, amount, officer)
        ).code
        == code
    )
