"""The ledger against a reference model: random batches go to the real ledger and to a small sequential
model written here from the semantics (not from `ledger.batches`), and both must agree on every result
code and every counter, while the money invariants hold after every step.

The model is deliberately naive: dicts of accounts and transfers, decided one event at a time; a linked
chain runs on a copy of the state and is thrown away if any event in it fails. Pending timeouts are left
out (they depend on the wall clock); the ledger's own tests cover them.
"""

import copy
import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from ledger.accounts import Account, AccountType
from ledger.ids import MAX_ID, ZERO_ID, new_id
from ledger.limits import AMOUNT_TIYN_MAX, CODE_MAX, PENDING_TIMEOUT_S_MAX, USER_DATA_32_MAX, USER_DATA_64_MAX
from ledger.money import Asset
from ledger.results import CreateAccountResult as A
from ledger.results import CreateTransferResult as R
from ledger.service import Ledger
from ledger.transfers import Transfer

# Flag bits as the semantics define them (plain ints: the model shares no code with the ledger's decisions).
LINKED, PENDING, POST, VOID, CLOSING_DEBIT, CLOSING_CREDIT = 1, 2, 4, 8, 16, 32
TRANSFER_FLAGS = LINKED | PENDING | POST | VOID | CLOSING_DEBIT | CLOSING_CREDIT
GUARDED, CAPPED = 2, 4  # debits must not exceed credits; credits must not exceed debits
ACCOUNT_FLAGS = LINKED | GUARDED | CAPPED
ASSETS = (int(Asset.KZT), int(Asset.DIGITAL_KZT))
ACCOUNT_CODES = range(1, 10)
# A voucher account (code 5) spends only where its voucher's policy allows; these accounts have no voucher
# behind them, so they may credit nothing (ledger/vouchers/spend_rules.py).
VOUCHER_CODE = 5
DAY = dt.date(2025, 3, 14)
# Failures that depend on the ledger's state: the id stays failed.
TRANSIENT = frozenset(
    {
        R.pending_transfer_not_found,
        R.account_not_found,
        R.account_closed,
        R.voucher_credit_not_allowed,
        R.overflows_debits,
        R.overflows_credits,
        R.exceeds_credits,
        R.exceeds_debits,
    }
)

Counters = tuple[int, int, int, int]


@dataclass
class ModelAccount:
    event: Account
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    @property
    def counters(self) -> Counters:
        return (self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted)


@dataclass
class Model:
    accounts: dict[uuid.UUID, ModelAccount] = field(default_factory=dict)
    # As stored: a post or void has the pending transfer's accounts, asset and (if left zero) code.
    transfers: dict[uuid.UUID, Transfer] = field(default_factory=dict)
    # pending id -> POST or VOID
    resolved: dict[uuid.UUID, int] = field(default_factory=dict)
    failed: set[uuid.UUID] = field(default_factory=set)

    # --- transfers

    def create_transfers(self, events: list[Transfer]) -> list[R]:
        results: list[R] = [R.ok] * len(events)
        for chain, is_open in _chains(events):
            if len(chain) == 1 and not is_open:
                results[chain[0]] = self._transfer(events[chain[0]])
                continue
            saved = (copy.deepcopy(self.accounts), dict(self.transfers), dict(self.resolved))
            failure: tuple[int, R] | None = None
            for index in chain:
                if is_open and index == chain[-1]:
                    failure = (index, R.linked_event_chain_open)
                    break
                results[index] = self._transfer(events[index])
                if results[index] not in (R.ok, R.exists):
                    failure = (index, results[index])
                    break
            if failure is not None:
                self.accounts, self.transfers, self.resolved = saved  # `failed` keeps what it learned
                for index in chain:
                    results[index] = R.linked_event_failed
                results[failure[0]] = failure[1]
        return results

    def _transfer(self, event: Transfer) -> R:
        result = _validate_transfer(event)
        if result is not R.ok:
            return result
        if event.id in self.transfers:
            return _compare_transfer(event, self.transfers[event.id])
        if event.id in self.failed:
            return R.id_already_failed
        result = self._resolve(event) if event.flags & (POST | VOID) else self._move(event)
        if result in TRANSIENT:
            self.failed.add(event.id)
        return result

    def _move(self, event: Transfer) -> R:
        debit = self.accounts.get(event.debit_account_id)
        credit = self.accounts.get(event.credit_account_id)
        if debit is None or credit is None:
            return R.account_not_found
        if not debit.event.asset == credit.event.asset == event.asset:
            return R.different_assets
        if debit.event.code == VOUCHER_CODE:
            return R.voucher_credit_not_allowed
        amount = event.amount
        if (
            debit.event.flags & GUARDED
            and debit.debits_pending + debit.debits_posted + amount > debit.credits_posted
        ):
            return R.exceeds_credits
        if (
            credit.event.flags & CAPPED
            and credit.credits_pending + credit.credits_posted + amount > credit.debits_posted
        ):
            return R.exceeds_debits
        if event.flags & PENDING:
            debit.debits_pending += amount
            credit.credits_pending += amount
        else:
            debit.debits_posted += amount
            credit.credits_posted += amount
        self.transfers[event.id] = event
        return R.ok

    def _resolve(self, event: Transfer) -> R:
        pending = self.transfers.get(event.pending_id)
        if pending is None:
            return R.pending_transfer_not_found
        if not pending.flags & PENDING:
            return R.pending_transfer_not_pending
        if event.debit_account_id not in (ZERO_ID, pending.debit_account_id):
            return R.pending_transfer_has_different_debit_account_id
        if event.credit_account_id not in (ZERO_ID, pending.credit_account_id):
            return R.pending_transfer_has_different_credit_account_id
        if event.asset not in (0, pending.asset):
            return R.pending_transfer_has_different_asset
        if event.code not in (0, pending.code):
            return R.pending_transfer_has_different_code
        if event.flags & POST and event.amount > pending.amount:
            return R.exceeds_pending_amount
        if event.flags & VOID and event.amount != pending.amount:
            return R.pending_transfer_has_different_amount
        if self.resolved.get(pending.id) == POST:
            return R.pending_transfer_already_posted
        if self.resolved.get(pending.id) == VOID:
            return R.pending_transfer_already_voided
        debit = self.accounts[pending.debit_account_id]
        credit = self.accounts[pending.credit_account_id]
        debit.debits_pending -= pending.amount
        credit.credits_pending -= pending.amount
        if event.flags & POST:
            debit.debits_posted += event.amount
            credit.credits_posted += event.amount
        self.resolved[pending.id] = event.flags & (POST | VOID)
        self.transfers[event.id] = replace(
            event,
            debit_account_id=pending.debit_account_id,
            credit_account_id=pending.credit_account_id,
            asset=pending.asset,
            code=event.code or pending.code,
        )
        return R.ok

    # --- accounts

    def create_accounts(self, events: list[Account]) -> list[A]:
        results: list[A] = [A.ok] * len(events)
        for chain, is_open in _chains(events):
            saved = dict(self.accounts)
            failure: tuple[int, A] | None = None
            for index in chain:
                if is_open and index == chain[-1]:
                    failure = (index, A.linked_event_chain_open)
                    break
                results[index] = self._account(events[index])
                if results[index] not in (A.ok, A.exists):
                    failure = (index, results[index])
                    break
            if failure is not None:
                self.accounts = saved
                for index in chain:
                    results[index] = A.linked_event_failed
                results[failure[0]] = failure[1]
        return results

    def _account(self, event: Account) -> A:
        checks = (
            (event.id in (ZERO_ID, MAX_ID), A.id_must_not_be_zero),
            (event.flags & ~ACCOUNT_FLAGS, A.flags_reserved),
            (event.flags & GUARDED and event.flags & CAPPED, A.flags_are_mutually_exclusive),
            (event.asset not in ASSETS, A.asset_invalid),
            (event.code not in ACCOUNT_CODES, A.code_invalid),
            (
                not (
                    0 <= event.user_data_64 <= USER_DATA_64_MAX
                    and 0 <= event.user_data_32 <= USER_DATA_32_MAX
                ),
                A.user_data_out_of_range,
            ),
        )
        for broken, result in checks:
            if broken:
                return result
        stored = self.accounts.get(event.id)
        if stored is None:
            self.accounts[event.id] = ModelAccount(replace(event, flags=event.flags & ~LINKED))
            return A.ok
        old = stored.event
        differences = (
            (event.flags & ~LINKED != old.flags, A.exists_with_different_flags),
            (event.user_data_128 != old.user_data_128, A.exists_with_different_user_data_128),
            (event.user_data_64 != old.user_data_64, A.exists_with_different_user_data_64),
            (event.user_data_32 != old.user_data_32, A.exists_with_different_user_data_32),
            (event.asset != old.asset, A.exists_with_different_asset),
            (event.code != old.code, A.exists_with_different_code),
        )
        for differs, result in differences:
            if differs:
                return result
        return A.exists


def _chains(events: list[Any]) -> Iterator[tuple[list[int], bool]]:
    """Index groups: a lone event, or a linked chain through its first unlinked event; True if left open."""
    chain: list[int] = []
    for index, event in enumerate(events):
        chain.append(index)
        if not event.flags & LINKED:
            yield chain, False
            chain = []
    if chain:
        yield chain, True


def _validate_transfer(event: Transfer) -> R:
    """The first rule the event breaks on its own, in the documented precedence."""
    flags = event.flags
    resolving = bool(flags & (POST | VOID))
    checks = (
        (event.id in (ZERO_ID, MAX_ID), R.id_must_not_be_zero),
        (flags & ~TRANSFER_FLAGS, R.flags_reserved),
        ((flags & POST and flags & VOID) or (resolving and flags & PENDING), R.flags_are_mutually_exclusive),
        (not resolving and event.debit_account_id == ZERO_ID, R.debit_account_id_must_not_be_zero),
        (not resolving and event.credit_account_id == ZERO_ID, R.credit_account_id_must_not_be_zero),
        (
            event.debit_account_id == event.credit_account_id != ZERO_ID,
            R.accounts_must_be_different,
        ),
        (not resolving and event.pending_id != ZERO_ID, R.pending_id_must_be_zero),
        (resolving and event.pending_id == ZERO_ID, R.pending_id_must_not_be_zero),
        (resolving and event.pending_id == event.id, R.pending_id_must_be_different),
        (event.timeout_s and not flags & PENDING, R.timeout_reserved_for_pending_transfer),
        (not 0 <= event.timeout_s <= PENDING_TIMEOUT_S_MAX, R.timeout_too_large),
        (
            flags & (CLOSING_DEBIT | CLOSING_CREDIT) and not flags & PENDING,
            R.closing_transfer_must_be_pending,
        ),
        (event.amount <= 0, R.amount_must_be_positive),
        (event.amount > AMOUNT_TIYN_MAX, R.amount_too_large),
        (event.asset not in ASSETS and not (resolving and event.asset == 0), R.asset_invalid),
        (not 0 <= event.code <= CODE_MAX or (event.code == 0 and not resolving), R.code_must_not_be_zero),
        (
            not (0 <= event.user_data_64 <= USER_DATA_64_MAX and 0 <= event.user_data_32 <= USER_DATA_32_MAX),
            R.user_data_out_of_range,
        ),
    )
    for broken, result in checks:
        if broken:
            return result
    return R.ok


def _compare_transfer(event: Transfer, stored: Transfer) -> R:
    """`exists` for a faithful retry, else the first field that differs; zero accounts, asset and code on a
    post or void mean "inherited" and are not compared, nor is an effective date left to the ledger."""
    checks = (
        (event.flags & ~LINKED != stored.flags & ~LINKED, R.exists_with_different_flags),
        (event.pending_id != stored.pending_id, R.exists_with_different_pending_id),
        (event.timeout_s != stored.timeout_s, R.exists_with_different_timeout),
        (
            event.debit_account_id not in (stored.debit_account_id, ZERO_ID),
            R.exists_with_different_debit_account_id,
        ),
        (
            event.credit_account_id not in (stored.credit_account_id, ZERO_ID),
            R.exists_with_different_credit_account_id,
        ),
        (event.amount != stored.amount, R.exists_with_different_amount),
        (event.user_data_128 != stored.user_data_128, R.exists_with_different_user_data_128),
        (event.user_data_64 != stored.user_data_64, R.exists_with_different_user_data_64),
        (event.user_data_32 != stored.user_data_32, R.exists_with_different_user_data_32),
        (event.asset not in (stored.asset, 0), R.exists_with_different_asset),
        (event.code not in (stored.code, 0), R.exists_with_different_code),
        (
            event.effective_date is not None and event.effective_date != stored.effective_date,
            R.exists_with_different_effective_date,
        ),
    )
    for differs, result in checks:
        if differs:
            return result
    return R.exists


# --- the machine

# Kinds of event a batch mixes; repeats make the common kinds likelier.
KINDS = (
    "single",
    "single",
    "single",
    "pending",
    "pending",
    "post",
    "post",
    "void",
    "repeat",
    "repeat_changed",
    "unknown_account",
    "bad_amount",
    "cross_asset",
)
TWO_PHASE_KINDS = ("pending", "pending", "post", "post", "post", "void", "void", "single", "repeat")
RETRY_KINDS = (
    "repeat",
    "repeat",
    "repeat_changed",
    "repeat_changed",
    "repeat_changed",
    "single",
    "pending",
    "post",
)
FIELD_CHANGES = (
    "amount",
    "code",
    "user_data_128",
    "user_data_64",
    "user_data_32",
    "effective_date",
    "debit",
    "credit",
    "pending_flag",
    "asset",
    "pending_id",
)


class LedgerAgainstModel(RuleBasedStateMachine):
    def __init__(self, ledger: Ledger) -> None:
        super().__init__()
        self.ledger = ledger
        self.model = Model()
        self.proposed: list[Transfer] = []  # every transfer event sent, whatever its outcome
        self.batch: list[Transfer] = []  # the batch being drawn
        self.proposed_accounts: list[Account] = []
        self.sources: dict[int, uuid.UUID] = {}
        self.steps = 0

    # --- accounts

    def _accounts_batch(self, events: list[Account]) -> None:
        expected = self.model.create_accounts(events)
        actual = self.ledger.create_accounts(events)
        assert actual == expected, _explain(events, actual, expected)
        self.proposed_accounts.extend(events)

    @initialize()
    def open_books(self) -> None:
        """Per asset: a plain source, a plain account, two that cannot go negative, one that is capped."""
        events = [
            Account(new_id(), asset, int(AccountType.OPERATOR), flags)
            for asset in ASSETS
            for flags in (0, 0, GUARDED, GUARDED, CAPPED)
        ]
        self._accounts_batch(events)
        self.sources = {asset: events[index * 5].id for index, asset in enumerate(ASSETS)}

    @rule(data=st.data())
    def open_accounts(self, data: st.DataObject) -> None:
        events = []
        for _ in range(data.draw(st.integers(1, 4), label="accounts")):
            if self.proposed_accounts and data.draw(st.booleans(), label="repeat account"):
                event = data.draw(st.sampled_from(self.proposed_accounts), label="account repeated")
                change = data.draw(
                    st.sampled_from(["none", "flags", "user_data_64", "user_data_32", "asset", "code"])
                )
                if change == "flags":
                    event = replace(event, flags=event.flags ^ GUARDED)
                elif change == "asset":
                    event = replace(event, asset=3 - event.asset)
                elif change == "code":
                    event = replace(event, code=event.code % 9 + 1)
                elif change != "none":
                    event = replace(event, **{change: getattr(event, change) + 1})
            else:
                event = Account(
                    new_id(),
                    data.draw(st.sampled_from((*ASSETS, 3)), label="asset"),
                    data.draw(st.sampled_from((9, 5, 0)), label="code"),
                    data.draw(st.sampled_from((0, GUARDED, CAPPED, GUARDED | CAPPED)), label="flags"),
                )
            linked = data.draw(st.sampled_from((0, 0, LINKED)), label="linked")
            events.append(replace(event, flags=(event.flags & ~LINKED) | linked))
        self._accounts_batch(events)

    # --- transfers

    def _submit(self, events: list[Transfer]) -> None:
        expected = self.model.create_transfers(events)
        actual = self.ledger.create_transfers(events)
        assert actual == expected, _explain(events, actual, expected)

    @rule(data=st.data())
    def fund(self, data: st.DataObject) -> None:
        """Money into an account that cannot go negative, and debits into a capped one, so limits bind."""
        asset = data.draw(st.sampled_from(ASSETS), label="asset")
        source = self.sources[asset]
        guarded = self._accounts_with(asset, GUARDED)
        capped = self._accounts_with(asset, CAPPED)
        events = []
        if guarded:
            target = data.draw(st.sampled_from(guarded), label="funded")
            events.append(Transfer(new_id(), source, target, data.draw(st.integers(50, 300)), asset, 1))
        if capped:
            payer = data.draw(st.sampled_from(capped), label="capped payer")
            events.append(Transfer(new_id(), payer, source, data.draw(st.integers(50, 300)), asset, 1))
        events = [replace(e, effective_date=DAY) for e in events]
        self.proposed.extend(events)
        self._submit(events)

    @rule(data=st.data())
    def transfer_batch(self, data: st.DataObject) -> None:
        self._batch(data, KINDS)

    @rule(data=st.data())
    def two_phase_batch(self, data: st.DataObject) -> None:
        self._batch(data, TWO_PHASE_KINDS)

    @rule(data=st.data())
    def retry_batch(self, data: st.DataObject) -> None:
        self._batch(data, RETRY_KINDS)

    def _batch(self, data: st.DataObject, kinds: tuple[str, ...]) -> None:
        events: list[Transfer] = []
        self.batch = events
        for _ in range(data.draw(st.integers(1, 12), label="events")):
            kind = data.draw(st.sampled_from(kinds), label="kind")
            event = getattr(self, f"_draw_{kind}")(data)
            linked = data.draw(st.sampled_from((0, 0, 0, LINKED)), label="linked")
            event = replace(event, flags=(event.flags & ~LINKED) | linked)
            events.append(event)
            self.proposed.append(event)
        self._submit(events)

    def _accounts_with(self, asset: int, flags: int | None = None) -> list[uuid.UUID]:
        return [
            account_id
            for account_id, account in self.model.accounts.items()
            if account.event.asset == asset
            and (flags is None or account.event.flags & (GUARDED | CAPPED) == flags)
        ]

    def _pair(self, data: st.DataObject) -> tuple[int, uuid.UUID, uuid.UUID]:
        asset = data.draw(st.sampled_from(ASSETS), label="asset")
        accounts = self._accounts_with(asset)
        debit, credit = data.draw(st.permutations(accounts), label="pair")[:2]
        return asset, debit, credit

    def _draw_single(self, data: st.DataObject, flags: int = 0) -> Transfer:
        asset, debit, credit = self._pair(data)
        amount = data.draw(st.integers(1, 150), label="amount")
        return Transfer(new_id(), debit, credit, amount, asset, 1, flags, effective_date=DAY)

    def _draw_pending(self, data: st.DataObject) -> Transfer:
        return self._draw_single(data, PENDING)

    def _draw_unknown_account(self, data: st.DataObject) -> Transfer:
        event = self._draw_single(data)
        side = data.draw(st.sampled_from(["debit_account_id", "credit_account_id"]), label="unknown side")
        return replace(event, **{side: new_id()})

    def _draw_bad_amount(self, data: st.DataObject) -> Transfer:
        event = self._draw_single(data, data.draw(st.sampled_from((0, PENDING))))
        return replace(event, amount=data.draw(st.sampled_from((0, -1, -150)), label="bad amount"))

    def _draw_cross_asset(self, data: st.DataObject) -> Transfer:
        event = self._draw_single(data)
        if data.draw(st.booleans(), label="accounts differ"):
            other = data.draw(st.sampled_from(self._accounts_with(3 - event.asset)), label="foreign")
            return replace(event, credit_account_id=other)
        return replace(event, asset=3 - event.asset)

    def _draw_resolution(self, data: st.DataObject, flags: int) -> Transfer:
        stored = self.model.transfers
        pendings = [t for t in stored.values() if t.flags & PENDING]
        candidates = {
            # Still reserved, or proposed earlier in this very batch.
            "open": [t for t in pendings if t.id not in self.model.resolved]
            + [e for e in self.batch if e.flags & PENDING and not e.flags & (POST | VOID)],
            "resolved": [t for t in pendings if t.id in self.model.resolved],
            "never_stored": [e for e in self.proposed if e.flags & PENDING and e.id not in stored],
            "not_pending": [t for t in stored.values() if not t.flags & PENDING],
        }
        weights = {"open": 6, "resolved": 2, "never_stored": 1, "not_pending": 1}
        choices = [
            "unknown",
            *(name for name, pool in candidates.items() if pool for _ in range(weights[name])),
        ]
        target = data.draw(st.sampled_from(choices), label="resolves")
        if target == "unknown":
            return Transfer(
                new_id(), ZERO_ID, ZERO_ID, 10, 0, 0, flags, pending_id=new_id(), effective_date=DAY
            )
        pending = data.draw(st.sampled_from(candidates[target]), label="pending")
        if flags & POST:
            amount = data.draw(
                st.one_of(st.integers(1, max(pending.amount, 1)), st.just(pending.amount + 1)),
                label="post amount",
            )
        else:
            amount = data.draw(st.sampled_from((pending.amount, pending.amount + 1)), label="void amount")
        event = Transfer(
            new_id(), ZERO_ID, ZERO_ID, amount, 0, 0, flags, pending_id=pending.id, effective_date=DAY
        )
        accounts = data.draw(st.sampled_from(("inherit", "inherit", "same", "wrong_debit", "wrong_code")))
        if accounts == "same":
            return replace(
                event,
                debit_account_id=pending.debit_account_id,
                credit_account_id=pending.credit_account_id,
                asset=pending.asset,
                code=pending.code,
            )
        if accounts == "wrong_debit":
            return replace(event, debit_account_id=pending.credit_account_id)
        if accounts == "wrong_code":
            return replace(event, code=2)
        return event

    def _draw_post(self, data: st.DataObject) -> Transfer:
        return self._draw_resolution(data, POST)

    def _draw_void(self, data: st.DataObject) -> Transfer:
        return self._draw_resolution(data, VOID)

    def _repeatable(self, data: st.DataObject) -> Transfer | None:
        """A proposed event, more often one whose id the ledger stored."""
        stored = [e for e in self.proposed if e.id in self.model.transfers]
        pool = (
            stored
            if stored and data.draw(st.sampled_from((True, True, False)), label="stored")
            else self.proposed
        )
        return data.draw(st.sampled_from(pool), label="repeated") if pool else None

    def _draw_repeat(self, data: st.DataObject) -> Transfer:
        return self._repeatable(data) or self._draw_single(data)

    def _draw_repeat_changed(self, data: st.DataObject) -> Transfer:
        event = self._repeatable(data)
        if event is None:
            return self._draw_single(data)
        change = data.draw(st.sampled_from(FIELD_CHANGES), label="change")
        if change in ("debit", "credit"):
            name = f"{change}_account_id"
            accounts = self._accounts_with(event.asset) or list(self.model.accounts)
            return replace(event, **{name: data.draw(st.sampled_from(accounts), label="new account")})
        if change == "pending_flag":
            return replace(event, flags=event.flags ^ PENDING)
        if change == "asset":
            return replace(event, asset=3 - event.asset if event.asset else 1)
        if change == "user_data_128":
            return replace(event, user_data_128=new_id())
        if change == "effective_date":
            return replace(event, effective_date=DAY + dt.timedelta(days=1))
        if change == "pending_id":
            pendings = [e.id for e in self.proposed if e.flags & PENDING and not e.flags & (POST | VOID)]
            return replace(
                event, pending_id=data.draw(st.sampled_from([new_id(), *pendings]), label="new pending")
            )
        return replace(event, **{change: getattr(event, change) + 1})

    # --- invariants

    @invariant()
    def counters_match_the_model_and_the_money_balances(self) -> None:
        ids = list(self.model.accounts)
        stored = {a.id: a for a in self.ledger.lookup_accounts(ids)}
        assert set(stored) == set(ids)
        for account_id, expected in self.model.accounts.items():
            account = stored[account_id]
            actual = (
                account.debits_pending,
                account.debits_posted,
                account.credits_pending,
                account.credits_posted,
            )
            assert actual == expected.counters, (
                f"account {account_id}: ledger {actual}, model {expected.counters}"
            )
            assert account.flags == expected.event.flags
            if account.flags & GUARDED:
                assert account.debits_pending + account.debits_posted <= account.credits_posted
            if account.flags & CAPPED:
                assert account.credits_pending + account.credits_posted <= account.debits_posted
        rows = stored.values()
        assert sum(a.debits_posted for a in rows) == sum(a.credits_posted for a in rows)
        assert sum(a.debits_pending for a in rows) == sum(a.credits_pending for a in rows)
        self.steps += 1
        if self.steps % 5 == 0:
            assert self.ledger.invariant_violations() == []

    def teardown(self) -> None:
        stored = {t.id: t for t in self.ledger.lookup_transfers([e.id for e in self.proposed])}
        assert set(stored) == set(self.model.transfers), "stored transfers differ from the model's"
        for transfer_id, expected in self.model.transfers.items():
            row = stored[transfer_id]
            assert (row.debit_account_id, row.credit_account_id, row.amount, row.asset, row.code) == (
                expected.debit_account_id,
                expected.credit_account_id,
                expected.amount,
                expected.asset,
                expected.code,
            )
            assert (row.flags & ~LINKED, row.pending_id) == (expected.flags & ~LINKED, expected.pending_id)
        assert self.ledger.invariant_violations() == []


def _explain(events: list[Any], actual: list[Any], expected: list[Any]) -> str:
    lines = [
        f"{n}: ledger {a!r} model {e!r} for {event}"
        for n, (event, a, e) in enumerate(zip(events, actual, expected, strict=False))
    ]
    return "results differ:\n" + "\n".join(lines)


def test_the_ledger_agrees_with_the_reference_model(ledger):
    run_state_machine_as_test(
        lambda: LedgerAgainstModel(ledger),
        settings=settings(
            max_examples=25,
            stateful_step_count=15,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        ),
    )
