"""A Hypothesis state machine: random redemptions (single, reserve, post, void), reversals and suspensions
on a few vouchers, against a model that knows only the money. After every step the voucher's balance, its
reservations and its spending equal the model's, and providers are owed exactly what was spent and not
reversed; at the end the ledger's own invariants hold."""

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)

from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.corrections import RedemptionReversal, reverse_redemptions
from ledger.vouchers.results import RedemptionResult as R
from ledger.vouchers.results import ReversalResult
from ledger.vouchers.states import RedemptionPhase as P
from ledger.vouchers.states import TransitionAction as A
from tests.voucher_world import build_world

FACE_VALUE = 100_000


class VouchersAgainstModel(RuleBasedStateMachine):
    reservations = Bundle("reservations")
    spends = Bundle("spends")

    def __init__(self, ledger, vouchers, pool):
        super().__init__()
        self.ledger, self.service, self.pool = ledger, vouchers, pool
        self.world = build_world(ledger, vouchers, reservation_timeout_s=3600)
        self.vouchers = [self.world.issue(amount=FACE_VALUE) for _ in range(3)]
        self.available = dict.fromkeys(self.vouchers, FACE_VALUE)
        self.reserved = dict.fromkeys(self.vouchers, 0)
        self.spent = dict.fromkeys(self.vouchers, 0)
        self.suspended: set = set()
        self.owed = 0

    def _redeem(self, voucher, amount, phase=P.SINGLE, **fields):
        request = self.world.request(voucher, amount=amount, phase=phase, **fields)
        return request, self.world.redeem(request)[0].result

    @rule(target=spends, index=st.integers(0, 2), amount=st.integers(1, 60_000))
    def redeem(self, index, amount):
        voucher = self.vouchers[index]
        request, result = self._redeem(voucher, amount)
        if voucher in self.suspended:
            assert result is R.voucher_suspended
        elif amount > self.available[voucher]:
            assert result is R.insufficient_balance
        else:
            assert result is R.ok
            self.available[voucher] -= amount
            self.spent[voucher] += amount
            self.owed += amount
            return (request.id, voucher, amount)
        return None

    @rule(target=reservations, index=st.integers(0, 2), amount=st.integers(1, 60_000))
    def reserve(self, index, amount):
        voucher = self.vouchers[index]
        request, result = self._redeem(voucher, amount, P.RESERVE)
        if voucher in self.suspended or amount > self.available[voucher]:
            assert result is not R.ok
            return None
        assert result is R.ok
        self.available[voucher] -= amount
        self.reserved[voucher] += amount
        return (request.id, voucher, amount)

    @rule(target=spends, reservation=consumes(reservations), part=st.integers(1, 100), void=st.booleans())
    def resolve(self, reservation, part, void):
        if reservation is None:
            return None
        reserved_id, voucher, amount = reservation
        posted = 0 if void else max(1, amount * part // 100)
        phase = P.VOID if void else P.POST
        request, result = self._redeem(None, posted, phase, reserved_id=reserved_id)
        assert result is R.ok
        self.reserved[voucher] -= amount
        self.available[voucher] += amount - posted
        self.spent[voucher] += posted
        self.owed += posted
        return (request.id, voucher, posted) if posted else None

    @rule(spend=consumes(spends))
    def reverse(self, spend):
        if spend is None:
            return
        redemption_id, voucher, amount = spend
        reversal = RedemptionReversal(new_id(), redemption_id, "recorded by mistake")
        assert UnitOfWork(self.pool).run(lambda c: reverse_redemptions(c, [reversal])) == [ReversalResult.ok]
        self.available[voucher] += amount
        self.spent[voucher] -= amount
        self.owed -= amount

    @rule(index=st.integers(0, 2))
    def suspend_or_resume(self, index):
        voucher = self.vouchers[index]
        if voucher in self.suspended:
            assert self.world.step(voucher, A.RESUME).name == "ok"
            self.suspended.discard(voucher)
        elif self.available[voucher] + self.reserved[voucher] > 0:
            assert self.world.step(voucher, A.SUSPEND).name == "ok"
            self.suspended.add(voucher)

    @invariant()
    def money_matches_the_model(self):
        views = {view.id: view for view in self.service.vouchers(self.vouchers)}
        for voucher in self.vouchers:
            view = views[voucher]
            assert (view.available_tiyn, view.reserved_tiyn) == (
                self.available[voucher],
                self.reserved[voucher],
            )
            assert view.available_tiyn + view.reserved_tiyn + self.spent[voucher] == FACE_VALUE
        [receivable] = self.ledger.lookup_accounts([self.world.terminal.receivable_id])
        assert receivable.credits_posted - receivable.debits_posted == self.owed


def test_vouchers_agree_with_the_model(ledger, voucher_ledger, pool):
    run_state_machine_as_test(
        lambda: VouchersAgainstModel(ledger, voucher_ledger, pool),
        settings=settings(
            max_examples=12,
            stateful_step_count=15,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        ),
    )
    assert ledger.invariant_violations() == []
