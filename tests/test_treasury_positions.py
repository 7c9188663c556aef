"""Positions: a worked example an officer would recognise, the figures as of a past day, the CSV and JSON
exports, and — after any sequence of funding, allocation, issuance, redemption, revocation and close — the
positions agree with a model of what happened and reconcile to the tiyn."""

import datetime as dt
import json
import tempfile
import uuid
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ledger.clock import business_date
from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.lifecycle import VoucherTransition, transition_vouchers
from ledger.vouchers.results import RedemptionResult, TransitionResult
from ledger.vouchers.states import TransitionAction
from tests.treasury_operations_world import (
    CHECKER,
    HOLDER_SALT,
    MAKER,
    fresh_iins,
    fund,
    open_programme,
    write_csv,
)
from tests.voucher_world import World
from treasury.allocation import AllocationDirection, move_between_funds, open_sub_fund
from treasury.bulk_issuance import issue_list
from treasury.closing import close_programme
from treasury.errors import Refused
from treasury.funding import FundingState, approve_funding_order, create_funding_order, reject_funding_order
from treasury.positions import positions_csv, positions_document, programme_positions

REGION = "Түркістан облысы"


def _positions(unit_of_work, programme_id, as_of=None):
    return unit_of_work.read(lambda c: programme_positions(c, programme_id, as_of))


def _voucher_ids(unit_of_work, programme_id) -> dict[uuid.UUID, uuid.UUID]:
    rows = unit_of_work.read(
        lambda c: c.execute(
            "SELECT id, fund_account_id FROM vouchers WHERE programme_id = %s", (programme_id,)
        ).fetchall()
    )
    return dict(rows)


def test_a_worked_example_of_a_programme_year(pool, ledger, voucher_ledger, tmp_path):
    unit_of_work = UnitOfWork(pool)
    programme = open_programme(unit_of_work, region="national")
    fund(unit_of_work, programme, 1_000_000_00)  # one million tenge
    region = new_id()
    unit_of_work.run(lambda c: open_sub_fund(c, programme.id, region, REGION, MAKER))
    unit_of_work.run(
        lambda c: move_between_funds(c, new_id(), region, AllocationDirection.ALLOCATE, 200_000_00, MAKER)
    )
    iins = fresh_iins(3)
    rows = [
        {"iin": iins[0], "entitlement": 60_000_00},
        {"iin": iins[1], "entitlement": 30_000_00},
        {"iin": iins[2], "entitlement": 50_000_00, "region": REGION},
    ]
    path = write_csv(tmp_path / "list.csv", rows, ("iin", "entitlement", "region"))
    issue_list(unit_of_work, voucher_ledger.signer, HOLDER_SALT, programme.id, path, MAKER)
    world = World(ledger, voucher_ledger, programme.id, programme.draft.fund_account_id, terminal=None)
    world.terminal = world.add_provider()
    vouchers = _voucher_ids(unit_of_work, programme.id)
    by_fund = {fund_account: voucher for voucher, fund_account in vouchers.items()}
    regional = by_fund[region]
    national = [v for v in vouchers if v != regional]
    assert world.redeem(world.request(regional, amount=20_000_00))[0].result is RedemptionResult.ok
    assert world.redeem(world.request(national[0], amount=5_000_00))[0].result is RedemptionResult.ok
    revoke = [VoucherTransition(new_id(), national[1], TransitionAction.REVOKE, "duplicate benefit")]
    assert unit_of_work.run(lambda c: transition_vouchers(c, revoke)) == [TransitionResult.ok]
    revoked_left = 60_000_00 + 30_000_00 - 5_000_00 - voucher_ledger.vouchers([national[0]])[0].available_tiyn
    unit_of_work.run(lambda c: close_programme(c, programme.id, MAKER))

    positions = _positions(unit_of_work, programme.id)
    assert positions.figures == {
        "funded": 1_000_000_00,
        "allocated": 200_000_00,
        "issued": 140_000_00,
        "offered": 0,
        "redeemed": 25_000_00,
        "reserved": 0,
        "expired": revoked_left,
        "returned": 1_000_000_00 - 140_000_00 + revoked_left,
        "outstanding": 140_000_00 - 25_000_00 - revoked_left,
        "unissued": 0,
        "receivable": 25_000_00,
        "settled": 0,
        "paid": 0,
    }
    assert positions.reconciled and [check.difference for check in positions.checks] == [0, 0, 0]


def test_positions_as_of_a_past_day_count_only_what_happened_by_its_end(pool):
    unit_of_work = UnitOfWork(pool)
    programme = open_programme(unit_of_work)
    fund(unit_of_work, programme, 5_000)
    today = business_date(
        unit_of_work.run(lambda c: c.execute("SELECT ledger_clock_reserve(1)").fetchone()[0])
    )
    yesterday = _positions(unit_of_work, programme.id, today - dt.timedelta(days=1))
    assert set(yesterday.figures.values()) == {0} and yesterday.reconciled
    assert (
        _positions(unit_of_work, programme.id, today).figures
        == _positions(unit_of_work, programme.id).figures
    )


def test_positions_export_as_csv_and_json(pool):
    unit_of_work = UnitOfWork(pool)
    programme = open_programme(unit_of_work)
    fund(unit_of_work, programme, 12_345)
    positions = _positions(unit_of_work, programme.id, dt.date(2099, 1, 1))
    lines = positions_csv(positions).splitlines()
    code = programme.draft.code
    assert lines[0] == "programme,as_of,figure,tiyn"
    assert lines[1] == f"{code},2099-01-01,funded,12345"
    assert lines[-3] == f'{code},2099-01-01,"check: funded = unissued + outstanding + redeemed + returned",0'
    document = json.loads(json.dumps(positions_document(positions)))
    assert (document["programme"], document["as_of"], document["figures"]["unissued"]) == (
        code,
        "2099-01-01",
        12_345,
    )
    assert document["reconciled"] is True and len(document["checks"]) == 3


class ProgrammeYear(RuleBasedStateMachine):
    """Random officers' days on one programme, checked against a model of where every tiyn should be."""

    pool = None
    ledger = None
    voucher_ledger = None
    CEILING = 3_000_000
    THRESHOLD = 400_000

    def __init__(self) -> None:
        super().__init__()
        self.unit_of_work = UnitOfWork(self.pool)
        self.programme = open_programme(
            self.unit_of_work, region="national", budget_ceiling_tiyn=self.CEILING,
            approval_threshold_tiyn=self.THRESHOLD,
        )  # fmt: skip
        self.region = new_id()
        self.unit_of_work.run(lambda c: open_sub_fund(c, self.programme.id, self.region, REGION, MAKER))
        self.fund_account = self.programme.draft.fund_account_id
        self.directory = Path(tempfile.mkdtemp(prefix="amiyan-positions-"))
        self.world = World(self.ledger, self.voucher_ledger, self.programme.id, self.fund_account, None)
        self.world.terminal = self.world.add_provider()
        self.closed = False
        self.funds = {self.fund_account: 0, self.region: 0}  # what each pool account holds
        self.vouchers: dict[uuid.UUID, int] = {}  # what each live voucher holds
        self.voucher_funds: dict[uuid.UUID, uuid.UUID] = {}
        self.model = dict.fromkeys(("funded", "issued", "redeemed", "expired", "returned"), 0)
        self.allocated = 0

    @initialize(
        amount=st.integers(200_000, 400_000), amounts=st.lists(st.integers(1, 50_000), min_size=2, max_size=3)
    )
    def fund_and_issue(self, amount, amounts):
        self.fund(amount, approve=True)
        self.issue(amounts, regional=False)

    @rule(amount=st.integers(1, 900_000), approve=st.booleans())
    def fund(self, amount, approve):
        order_id = new_id()
        create = lambda c: create_funding_order(c, order_id, self.programme.id, amount, MAKER)  # noqa: E731
        try:
            order = self.unit_of_work.run(create)
        except Refused as refused:
            expected = "programme_closed" if self.closed else "ceiling_exceeded"
            assert refused.code == expected and (self.closed or self.model["funded"] + amount > self.CEILING)
            return
        if order.state is FundingState.AWAITING_APPROVAL:
            assert amount > self.THRESHOLD
            if not approve:
                self.unit_of_work.run(lambda c: reject_funding_order(c, order_id, CHECKER, "not this month"))
                return
            self.unit_of_work.run(lambda c: approve_funding_order(c, order_id, CHECKER))
        self.model["funded"] += amount
        self.funds[self.fund_account] += amount

    @rule(amount=st.integers(1, 600_000), back=st.booleans())
    def allocate(self, amount, back):
        direction = AllocationDirection.TAKE_BACK if back else AllocationDirection.ALLOCATE
        source, target = (self.region, self.fund_account) if back else (self.fund_account, self.region)
        move = lambda c: move_between_funds(c, new_id(), self.region, direction, amount, MAKER)  # noqa: E731
        try:
            self.unit_of_work.run(move)
        except Refused as refused:
            expected = "programme_closed" if self.closed else "insufficient_funds"
            assert refused.code == expected and (self.closed or self.funds[source] < amount)
            return
        self.funds[source] -= amount
        self.funds[target] += amount
        self.allocated += -amount if back else amount

    @rule(amounts=st.lists(st.integers(1, 120_000), min_size=1, max_size=4), regional=st.booleans())
    def issue(self, amounts, regional):
        rows = [{"iin": iin, "entitlement": amount, "region": REGION if regional else ""}
                for iin, amount in zip(fresh_iins(len(amounts)), amounts, strict=True)]  # fmt: skip
        path = write_csv(self.directory / f"{new_id()}.csv", rows, ("iin", "entitlement", "region"))
        signer = self.voucher_ledger.signer
        try:
            job = issue_list(self.unit_of_work, signer, HOLDER_SALT, self.programme.id, path, MAKER)
        except Refused as refused:
            assert self.closed and refused.code == "programme_not_open"
            return
        pool_account = self.region if regional else self.fund_account
        expected = 0
        for amount in amounts:  # the batch takes rows in order while the fund covers them
            if amount <= self.funds[pool_account]:
                self.funds[pool_account] -= amount
                self.model["issued"] += amount
                expected += 1
        assert job.issued == expected
        for voucher, fund_account in _voucher_ids(self.unit_of_work, self.programme.id).items():
            if voucher not in self.voucher_funds:
                self.voucher_funds[voucher] = fund_account
                self.vouchers[voucher] = self.voucher_ledger.vouchers([voucher])[0].available_tiyn

    @precondition(lambda self: bool(self.vouchers))
    @rule(pick=st.integers(0, 99), percent=st.integers(1, 100))
    def redeem(self, pick, percent):
        voucher = sorted(self.vouchers)[pick % len(self.vouchers)]
        amount = max(1, self.vouchers[voucher] * percent // 100)
        outcome, _ = self.world.redeem(self.world.request(voucher, amount=amount))
        assert outcome.result is RedemptionResult.ok, outcome
        self.vouchers[voucher] -= amount
        self.model["redeemed"] += amount
        if self.vouchers[voucher] == 0:
            del self.vouchers[voucher]  # redeemed in full: nothing left to revoke

    @precondition(lambda self: bool(self.vouchers))
    @rule(pick=st.integers(0, 99))
    def revoke(self, pick):
        voucher = sorted(self.vouchers)[pick % len(self.vouchers)]
        step = [VoucherTransition(new_id(), voucher, TransitionAction.REVOKE, "eligibility withdrawn")]
        assert self.unit_of_work.run(lambda c: transition_vouchers(c, step)) == [TransitionResult.ok]
        left = self.vouchers.pop(voucher)
        self.model["expired"] += left
        self.funds[self.voucher_funds[voucher]] += left
        if self.closed:  # value that comes back after the close goes on to the budget
            self._close()

    @precondition(lambda self: not self.closed)
    @rule()
    def close(self):
        self._close()
        self.closed = True

    def _close(self):
        returns = self.unit_of_work.run(lambda c: close_programme(c, self.programme.id, MAKER))
        assert sum(r.amount_tiyn for r in returns) == sum(self.funds.values())
        self.model["returned"] += sum(self.funds.values())
        self.funds = dict.fromkeys(self.funds, 0)

    @invariant()
    def positions_agree_with_the_model_and_reconcile(self):
        positions = _positions(self.unit_of_work, self.programme.id)
        figures = positions.figures
        assert {name: figures[name] for name in self.model} == self.model
        assert figures["unissued"] == sum(self.funds.values())
        assert figures["outstanding"] == sum(self.vouchers.values())
        assert figures["allocated"] == self.allocated
        assert positions.reconciled, positions.checks
        today = business_date(self.voucher_ledger.now())
        assert _positions(self.unit_of_work, self.programme.id, today).figures == figures


def test_after_any_sequence_of_operations_the_positions_reconcile(pool, ledger, voucher_ledger):
    ProgrammeYear.pool, ProgrammeYear.ledger, ProgrammeYear.voucher_ledger = pool, ledger, voucher_ledger
    run_state_machine_as_test(
        ProgrammeYear,
        settings=settings(
            max_examples=25, stateful_step_count=12, deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )  # fmt: skip


def test_settled_and_paid_follow_the_acts_and_the_bank_returns(ledger, voucher_ledger, pool, database_url):
    """Positions after a settlement round: what was redeemed is settled when its act is approved for
    payment and paid when the payment order executes; a payment the bank returns is paid no more."""
    from tests.settlement_world import build_settlement_world, day
    from treasury.positions import programme_positions
    from treasury.settlement import record_payment_return

    world = build_settlement_world(ledger, voucher_ledger, pool, database_url)
    served = day(world, 5)
    world.redeem_on(served, 60_000)
    world.redeem_on(served, 60_000)
    world.close_through(served)
    [act] = world.issue(served)
    world.sign(act.number, world.providers[0])
    world.approve(act.number)
    payout = world.pay(act.number)
    figures = world.run(lambda c: programme_positions(c, world.programme_id)).figures
    assert (figures["redeemed"], figures["settled"], figures["paid"], figures["receivable"]) == (
        120_000,
        120_000,
        120_000,
        0,
    )
    order = payout.orders[-1].number
    world.run(lambda c: record_payment_return(c, order, "the account is closed", "Officer B"))
    positions = world.run(lambda c: programme_positions(c, world.programme_id))
    assert positions.figures["paid"] == 0 and positions.reconciled
