"""Every result code of `create_transfers` and `create_accounts`, reached through the public `Ledger` API.

Tables list the rules in descending precedence (the order of `ledger.results`). A refused event must leave
no trace: the accounts' counters and flags are unchanged and `lookup_transfers` finds no row for its id.
Then the workflows an officer would recognise: linked chains, idempotent retries, two-phase transfers with
post, void, timeout and closing, balance limits that count reservations, history as of a moment, paging.
"""

import datetime as dt
import decimal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from ledger.accounts import Account, AccountFlags, AccountType
from ledger.clock import timestamp_to_datetime
from ledger.errors import BatchTooLarge
from ledger.ids import MAX_ID, ZERO_ID, new_id
from ledger.limits import (
    AMOUNT_TIYN_MAX,
    BATCH_EVENTS_MAX,
    CODE_MAX,
    COUNTER_TIYN_MAX,
    PENDING_TIMEOUT_S_MAX,
    USER_DATA_32_MAX,
    USER_DATA_64_MAX,
)
from ledger.money import Asset
from ledger.results import CreateAccountResult as A
from ledger.results import CreateTransferResult as R
from ledger.service import Ledger
from ledger.transfers import Transfer
from ledger.transfers import TransferFlags as F

KZT, DIGITAL = Asset.KZT, Asset.DIGITAL_KZT
OPERATOR = AccountType.OPERATOR
GUARDED = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS  # cannot go below zero
CAPPED = AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS  # cannot receive more than it paid out
CLOSED = AccountFlags.CLOSED
DAY = dt.date(2025, 3, 14)

Counters = tuple[int, int, int, int, int]


@dataclass
class Books:
    """A test's own fresh accounts. `debit`, `credit` and `other` are plain KZT accounts, `guarded` cannot go
    negative, `capped` cannot be credited past its debits, `digital` holds digital tenge."""

    ledger: Ledger
    debit: uuid.UUID
    credit: uuid.UUID
    other: uuid.UUID
    guarded: uuid.UUID
    capped: uuid.UUID
    digital: uuid.UUID

    @classmethod
    def open(cls, ledger: Ledger) -> "Books":
        plan = {
            "debit": (KZT, 0),
            "credit": (KZT, 0),
            "other": (KZT, 0),
            "guarded": (KZT, GUARDED),
            "capped": (KZT, CAPPED),
            "digital": (DIGITAL, 0),
        }
        ids = {name: new_id() for name in plan}
        events = [Account(ids[name], asset, OPERATOR, flags) for name, (asset, flags) in plan.items()]
        assert ledger.create_accounts(events) == [A.ok] * len(events)
        return cls(ledger, **ids)

    @property
    def accounts(self) -> list[uuid.UUID]:
        return [self.debit, self.credit, self.other, self.guarded, self.capped, self.digital]

    def counters(self, *extra: uuid.UUID) -> dict[uuid.UUID, Counters]:
        rows = self.ledger.lookup_accounts([*self.accounts, *extra])
        return {
            a.id: (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted, a.flags)
            for a in rows
        }

    def transfer(self, **changes: Any) -> Transfer:
        """A valid single-phase transfer of 100 tiyn from `debit` to `credit`, with `changes` applied."""
        return replace(
            Transfer(new_id(), self.debit, self.credit, 100, KZT, 1, effective_date=DAY), **changes
        )

    def submit(self, *events: Transfer) -> list[R]:
        return self.ledger.create_transfers(list(events))

    def apply(self, *events: Transfer) -> None:
        assert self.submit(*events) == [R.ok] * len(events)

    def pending(self, **changes: Any) -> Transfer:
        """A pending transfer, applied."""
        event = self.transfer(**{"flags": F.PENDING, **changes})
        self.apply(event)
        return event

    def fund(self, account: uuid.UUID, amount: int) -> None:
        self.apply(self.transfer(debit_account_id=self.other, credit_account_id=account, amount=amount))


def post(pending: Transfer, **changes: Any) -> Transfer:
    """Post `pending` in full; accounts, asset and code left zero to inherit them."""
    event = Transfer(new_id(), ZERO_ID, ZERO_ID, pending.amount, 0, 0, F.POST_PENDING, pending_id=pending.id)
    return replace(event, **changes)


def void(pending: Transfer, **changes: Any) -> Transfer:
    return replace(post(pending), flags=F.VOID_PENDING, **changes)


def assert_refused(books: Books, event: Transfer, expected: R, *extra: uuid.UUID) -> None:
    """`event` gets exactly `expected` and leaves no trace."""
    before = books.counters(*extra)
    assert books.submit(event) == [expected]
    assert books.counters(*extra) == before
    if isinstance(event.id, uuid.UUID):
        assert books.ledger.lookup_transfers([event.id]) == []


def rule(expected: Any, build: Callable[..., Any], case: str = "") -> Any:
    return pytest.param(expected, build, id=f"{expected.name}-{case}" if case else expected.name)


# --- transfers: the event on its own ---


def _resolving_itself(event: Transfer) -> Transfer:
    return replace(event, pending_id=event.id)


EVENT_RULES = [
    rule(R.id_must_not_be_zero, lambda b: b.transfer(id=ZERO_ID), "zero"),
    rule(R.id_must_not_be_zero, lambda b: b.transfer(id=MAX_ID), "all-ones"),
    rule(R.flags_reserved, lambda b: b.transfer(flags=1 << 6), "unknown-bit"),
    rule(R.flags_reserved, lambda b: b.transfer(flags=F.EXPIRED), "ledger-only-expired"),
    rule(
        R.flags_are_mutually_exclusive,
        lambda b: b.transfer(flags=F.POST_PENDING | F.VOID_PENDING),
        "post-void",
    ),
    rule(
        R.flags_are_mutually_exclusive, lambda b: b.transfer(flags=F.PENDING | F.POST_PENDING), "pending-post"
    ),
    rule(R.debit_account_id_must_not_be_zero, lambda b: b.transfer(debit_account_id=ZERO_ID)),
    rule(R.credit_account_id_must_not_be_zero, lambda b: b.transfer(credit_account_id=ZERO_ID)),
    rule(R.accounts_must_be_different, lambda b: b.transfer(credit_account_id=b.debit)),
    rule(R.pending_id_must_be_zero, lambda b: b.transfer(pending_id=new_id())),
    rule(R.pending_id_must_not_be_zero, lambda b: b.transfer(flags=F.POST_PENDING)),
    rule(R.pending_id_must_be_different, lambda b: _resolving_itself(post(b.transfer()))),
    rule(R.timeout_reserved_for_pending_transfer, lambda b: b.transfer(timeout_s=1)),
    rule(R.timeout_too_large, lambda b: b.transfer(flags=F.PENDING, timeout_s=PENDING_TIMEOUT_S_MAX + 1)),
    rule(R.timeout_too_large, lambda b: b.transfer(flags=F.PENDING, timeout_s=-1), "negative"),
    rule(R.closing_transfer_must_be_pending, lambda b: b.transfer(flags=F.CLOSING_DEBIT), "debit"),
    rule(R.closing_transfer_must_be_pending, lambda b: b.transfer(flags=F.CLOSING_CREDIT), "credit"),
    rule(R.amount_must_be_positive, lambda b: b.transfer(amount=0), "zero"),
    rule(R.amount_must_be_positive, lambda b: b.transfer(amount=-100), "negative"),
    rule(R.amount_must_be_positive, lambda b: b.transfer(amount=100.0), "float"),
    rule(R.amount_must_be_positive, lambda b: b.transfer(amount=decimal.Decimal(100)), "decimal"),
    rule(R.amount_must_be_positive, lambda b: b.transfer(amount="100"), "string"),
    rule(R.amount_too_large, lambda b: b.transfer(amount=AMOUNT_TIYN_MAX + 1)),
    rule(R.asset_invalid, lambda b: b.transfer(asset=0), "zero"),
    rule(R.asset_invalid, lambda b: b.transfer(asset=3), "unknown"),
    rule(R.code_must_not_be_zero, lambda b: b.transfer(code=0), "zero"),
    rule(R.code_must_not_be_zero, lambda b: b.transfer(code=CODE_MAX + 1), "too-large"),
    rule(R.user_data_out_of_range, lambda b: b.transfer(user_data_64=-1), "64-negative"),
    rule(R.user_data_out_of_range, lambda b: b.transfer(user_data_64=USER_DATA_64_MAX + 1), "64-too-large"),
    rule(R.user_data_out_of_range, lambda b: b.transfer(user_data_32=USER_DATA_32_MAX + 1), "32-too-large"),
    rule(R.effective_date_invalid, lambda b: b.transfer(effective_date=dt.date(1999, 12, 31)), "too-early"),
    rule(R.effective_date_invalid, lambda b: b.transfer(effective_date=dt.date(2200, 1, 1)), "too-late"),
]


@pytest.mark.parametrize(("expected", "build"), EVENT_RULES)
def test_an_event_is_refused_with_the_first_rule_it_breaks(ledger, expected, build):
    books = Books.open(ledger)
    assert_refused(books, build(books), expected)


def test_precedence_the_earlier_rule_wins(ledger):
    books = Books.open(ledger)
    broken = books.transfer(id=ZERO_ID, amount=0, code=0, user_data_64=-1)
    assert_refused(books, broken, R.id_must_not_be_zero)
    assert_refused(books, replace(broken, id=new_id()), R.amount_must_be_positive)
    assert_refused(books, replace(broken, id=new_id(), amount=1), R.code_must_not_be_zero)
    assert_refused(books, replace(broken, id=new_id(), amount=1, code=1), R.user_data_out_of_range)


# Bad input never raises: a field of the wrong type gets the code of the rule for that field.
MALFORMED_TRANSFERS = [
    rule(R.id_must_not_be_zero, lambda b: b.transfer(id=str(new_id())), "id-string"),
    rule(R.id_must_not_be_zero, lambda b: b.transfer(id=None), "id-none"),
    rule(R.id_must_not_be_zero, lambda b: b.transfer(id=[1]), "id-list"),
    rule(R.flags_reserved, lambda b: b.transfer(flags=None), "flags-none"),
    rule(R.flags_reserved, lambda b: b.transfer(flags=2.0), "flags-float"),
    rule(
        R.debit_account_id_must_not_be_zero, lambda b: b.transfer(debit_account_id=str(b.debit)), "debit-str"
    ),
    rule(R.credit_account_id_must_not_be_zero, lambda b: b.transfer(credit_account_id=None), "credit-none"),
    rule(R.pending_id_must_be_zero, lambda b: b.transfer(pending_id="x"), "pending-id-string"),
    rule(R.timeout_too_large, lambda b: b.transfer(flags=F.PENDING, timeout_s="1"), "timeout-string"),
    rule(R.amount_must_be_positive, lambda b: b.transfer(amount=None), "amount-none"),
    rule(R.amount_must_be_positive, lambda b: b.transfer(amount=True), "amount-bool"),
    rule(R.asset_invalid, lambda b: b.transfer(asset="1"), "asset-string"),
    rule(R.asset_invalid, lambda b: b.transfer(asset=None), "asset-none"),
    rule(R.asset_invalid, lambda b: b.transfer(asset=1.0), "asset-float"),
    rule(R.asset_invalid, lambda b: b.transfer(asset=True), "asset-bool"),
    rule(R.asset_invalid, lambda b: b.transfer(asset=[1]), "asset-list"),
    rule(R.code_must_not_be_zero, lambda b: b.transfer(code=1.0), "code-float"),
    rule(R.code_must_not_be_zero, lambda b: b.transfer(code=True), "code-bool"),
    rule(R.code_must_not_be_zero, lambda b: b.transfer(code=[1]), "code-list"),
    rule(R.user_data_out_of_range, lambda b: b.transfer(user_data_128="x"), "user-data-128-string"),
    rule(R.user_data_out_of_range, lambda b: b.transfer(user_data_64=1.0), "user-data-64-float"),
    rule(R.user_data_out_of_range, lambda b: b.transfer(user_data_32=None), "user-data-32-none"),
    rule(R.effective_date_invalid, lambda b: b.transfer(effective_date="2025-03-14"), "date-string"),
    rule(R.effective_date_invalid, lambda b: b.transfer(effective_date=dt.datetime(2025, 3, 14)), "datetime"),
]


@pytest.mark.parametrize(("expected", "build"), MALFORMED_TRANSFERS)
def test_a_malformed_transfer_gets_a_code_and_writes_nothing(ledger, expected, build):
    books = Books.open(ledger)
    assert_refused(books, build(books), expected)


# --- transfers: a retry of a stored id ---


def _stored_original(books: Books, kind: str) -> Transfer:
    if kind == "plain":
        event = books.transfer(user_data_128=new_id(), user_data_64=7, user_data_32=3)
    elif kind == "pending":
        event = books.transfer(flags=F.PENDING)
    else:
        event = post(books.pending(), effective_date=DAY)
    books.apply(event)
    return event


def _other_pending(books: Books, original: Transfer) -> uuid.UUID:
    return books.pending().id


EXISTING_RULES = [
    rule(R.exists_with_different_flags, ("plain", lambda b, t: replace(t, flags=F.PENDING))),
    rule(
        R.exists_with_different_pending_id, ("post", lambda b, t: replace(t, pending_id=_other_pending(b, t)))
    ),
    rule(R.exists_with_different_timeout, ("pending", lambda b, t: replace(t, timeout_s=60))),
    rule(
        R.exists_with_different_debit_account_id, ("plain", lambda b, t: replace(t, debit_account_id=b.other))
    ),
    rule(
        R.exists_with_different_debit_account_id,
        ("post", lambda b, t: replace(t, debit_account_id=b.other)),
        "post",
    ),
    rule(
        R.exists_with_different_credit_account_id,
        ("plain", lambda b, t: replace(t, credit_account_id=b.other)),
    ),
    rule(R.exists_with_different_amount, ("plain", lambda b, t: replace(t, amount=t.amount + 1))),
    rule(R.exists_with_different_user_data_128, ("plain", lambda b, t: replace(t, user_data_128=new_id()))),
    rule(R.exists_with_different_user_data_64, ("plain", lambda b, t: replace(t, user_data_64=8))),
    rule(R.exists_with_different_user_data_32, ("plain", lambda b, t: replace(t, user_data_32=4))),
    rule(R.exists_with_different_asset, ("plain", lambda b, t: replace(t, asset=DIGITAL))),
    rule(R.exists_with_different_code, ("plain", lambda b, t: replace(t, code=2))),
    rule(R.exists_with_different_code, ("post", lambda b, t: replace(t, code=2)), "post"),
    rule(
        R.exists_with_different_effective_date,
        ("plain", lambda b, t: replace(t, effective_date=DAY.replace(day=15))),
    ),
    rule(R.exists, ("plain", lambda b, t: t)),
    rule(R.exists, ("plain", lambda b, t: replace(t, effective_date=None)), "date-left-to-the-ledger"),
    rule(R.exists, ("pending", lambda b, t: t), "pending"),
    rule(R.exists, ("post", lambda b, t: t), "post-inheriting-accounts"),
    rule(
        R.exists,
        ("post", lambda b, t: replace(t, debit_account_id=b.debit, credit_account_id=b.credit)),
        "post",
    ),
]


@pytest.mark.parametrize(("expected", "case"), EXISTING_RULES)
def test_a_retry_of_a_stored_id_is_compared_field_by_field(ledger, expected, case):
    kind, change = case
    books = Books.open(ledger)
    original = _stored_original(books, kind)
    [stored] = ledger.lookup_transfers([original.id])
    retry = change(books, original)
    before = books.counters()
    assert books.submit(retry) == [expected]
    assert books.counters() == before
    assert ledger.lookup_transfers([original.id]) == [stored]


def test_a_retry_with_the_date_left_to_the_ledger_matches_the_date_it_chose(ledger):
    books = Books.open(ledger)
    original = books.transfer(effective_date=None)
    books.apply(original)
    [stored] = ledger.lookup_transfers([original.id])
    assert books.submit(replace(original, effective_date=stored.effective_date)) == [R.exists]
    other_day = stored.effective_date + dt.timedelta(days=1)
    assert books.submit(replace(original, effective_date=other_day)) == [
        R.exists_with_different_effective_date
    ]


# --- transfers: rules that depend on the ledger's state ---


def _failed_then_funded(b: Books) -> Transfer:
    spend = b.transfer(debit_account_id=b.guarded, amount=50)
    assert b.submit(spend) == [R.exceeds_credits]
    b.fund(b.guarded, 100)
    return spend


def _posted(b: Books, then: Callable[[Transfer], Transfer]) -> Transfer:
    pending = b.pending()
    b.apply(post(pending))
    return then(pending)


def _voided(b: Books, then: Callable[[Transfer], Transfer]) -> Transfer:
    pending = b.pending()
    b.apply(void(pending))
    return then(pending)


def _posting_a_plain_transfer(b: Books) -> Transfer:
    plain = b.transfer()
    b.apply(plain)
    return post(plain)


def _one_tiyn_more_than_funded(b: Books) -> Transfer:
    b.fund(b.guarded, 100)
    return b.transfer(debit_account_id=b.guarded, amount=101)


def _closed_by(b: Books, flag: F, then: Callable[[Books], Transfer]) -> Transfer:
    b.pending(flags=F.PENDING | flag, amount=1)
    return then(b)


STATE_RULES = [
    rule(R.id_already_failed, _failed_then_funded),
    rule(R.pending_transfer_not_found, lambda b: post(b.transfer(), pending_id=new_id())),
    rule(R.pending_transfer_not_pending, lambda b: _posting_a_plain_transfer(b)),
    rule(
        R.pending_transfer_has_different_debit_account_id,
        lambda b: post(b.pending(), debit_account_id=b.other),
    ),
    rule(
        R.pending_transfer_has_different_credit_account_id,
        lambda b: post(b.pending(), credit_account_id=b.other),
    ),
    rule(R.pending_transfer_has_different_asset, lambda b: post(b.pending(), asset=DIGITAL)),
    rule(R.pending_transfer_has_different_code, lambda b: post(b.pending(), code=2)),
    rule(R.exceeds_pending_amount, lambda b: post(b.pending(), amount=101)),
    rule(R.pending_transfer_has_different_amount, lambda b: void(b.pending(), amount=99), "smaller"),
    rule(R.pending_transfer_has_different_amount, lambda b: void(b.pending(), amount=101), "larger"),
    rule(R.pending_transfer_already_posted, lambda b: _posted(b, post), "post-twice"),
    rule(R.pending_transfer_already_posted, lambda b: _posted(b, void), "void-after-post"),
    rule(R.pending_transfer_already_voided, lambda b: _voided(b, post), "post-after-void"),
    rule(R.pending_transfer_already_voided, lambda b: _voided(b, void), "void-twice"),
    # pending_transfer_expired needs the wall clock: test_a_pending_transfer_times_out_and_is_released.
    rule(R.account_not_found, lambda b: b.transfer(debit_account_id=new_id()), "debit"),
    rule(R.account_not_found, lambda b: b.transfer(credit_account_id=new_id()), "credit"),
    rule(R.different_assets, lambda b: b.transfer(credit_account_id=b.digital), "accounts"),
    rule(R.different_assets, lambda b: b.transfer(asset=DIGITAL), "transfer-and-accounts"),
    rule(R.account_closed, lambda b: _closed_by(b, F.CLOSING_DEBIT, lambda b: b.transfer()), "debit"),
    rule(R.account_closed, lambda b: _closed_by(b, F.CLOSING_CREDIT, lambda b: b.transfer()), "credit"),
    rule(
        R.account_closed,
        lambda b: _closed_by(
            b, F.CLOSING_DEBIT, lambda b: b.transfer(debit_account_id=b.other, credit_account_id=b.debit)
        ),
        "closed-account-credited",
    ),
    rule(
        R.account_closed,
        lambda b: _closed_by(b, F.CLOSING_DEBIT, lambda b: b.transfer(flags=F.PENDING)),
        "pending-from-closed",
    ),
    # overflows_debits and overflows_credits need a counter near 2^63: test_a_counter_cannot_overflow.
    rule(R.exceeds_credits, lambda b: b.transfer(debit_account_id=b.guarded, amount=1)),
    rule(R.exceeds_credits, lambda b: _one_tiyn_more_than_funded(b), "by-one-tiyn"),
    rule(R.exceeds_debits, lambda b: b.transfer(credit_account_id=b.capped, amount=1)),
]


@pytest.mark.parametrize(("expected", "build"), STATE_RULES)
def test_an_event_the_ledger_state_refuses(ledger, expected, build):
    books = Books.open(ledger)
    assert_refused(books, build(books), expected)


# --- transfers: workflows ---


def test_a_transfer_moves_money_and_a_retry_is_exists(ledger):
    books = Books.open(ledger)
    event = books.transfer(amount=250)
    assert books.submit(event) == [R.ok]
    assert books.submit(event) == [R.exists]
    counters = books.counters()
    assert counters[books.debit] == (0, 250, 0, 0, 0)
    assert counters[books.credit] == (0, 0, 0, 250, 0)
    [stored] = ledger.lookup_transfers([event.id])
    assert (stored.amount, stored.debit_account_id, stored.credit_account_id) == (
        250,
        books.debit,
        books.credit,
    )


def test_id_already_failed_survives_funding_but_a_new_id_succeeds(ledger):
    books = Books.open(ledger)
    spend = books.transfer(debit_account_id=books.guarded, amount=50)
    assert books.submit(spend) == [R.exceeds_credits]
    books.fund(books.guarded, 100)
    assert books.submit(spend) == [R.id_already_failed]
    assert ledger.lookup_transfers([spend.id]) == []
    assert books.submit(replace(spend, id=new_id())) == [R.ok]
    assert books.counters()[books.guarded] == (0, 50, 0, 100, int(GUARDED))


def test_pending_then_post_in_full(ledger):
    books = Books.open(ledger)
    pending = books.pending(amount=300)
    assert books.counters()[books.debit] == (300, 0, 0, 0, 0)
    assert books.counters()[books.credit] == (0, 0, 300, 0, 0)
    settle = post(pending)
    assert books.submit(settle) == [R.ok]
    assert books.counters()[books.debit] == (0, 300, 0, 0, 0)
    assert books.counters()[books.credit] == (0, 0, 0, 300, 0)
    [stored] = ledger.lookup_transfers([settle.id])
    assert (stored.debit_account_id, stored.credit_account_id, stored.asset, stored.code) == (
        books.debit,
        books.credit,
        KZT,
        1,
    )
    assert books.submit(settle) == [R.exists]


def test_a_partial_post_releases_the_rest(ledger):
    books = Books.open(ledger)
    books.fund(books.guarded, 300)
    pending = books.pending(debit_account_id=books.guarded, amount=300)
    assert books.submit(books.transfer(debit_account_id=books.guarded, amount=1)) == [R.exceeds_credits]
    assert books.submit(post(pending, amount=120)) == [R.ok]
    assert books.counters()[books.guarded] == (0, 120, 0, 300, int(GUARDED))
    assert books.counters()[books.credit] == (0, 0, 0, 120, 0)
    # The released 180 tiyn are available again, and not one more.
    assert books.submit(books.transfer(debit_account_id=books.guarded, amount=181)) == [R.exceeds_credits]
    assert books.submit(books.transfer(debit_account_id=books.guarded, amount=180)) == [R.ok]


def test_a_void_releases_everything(ledger):
    books = Books.open(ledger)
    pending = books.pending(amount=300)
    assert books.submit(void(pending)) == [R.ok]
    assert books.counters()[books.debit] == (0, 0, 0, 0, 0)
    assert books.counters()[books.credit] == (0, 0, 0, 0, 0)


def test_balance_limits_count_pending_debits(ledger):
    books = Books.open(ledger)
    books.fund(books.guarded, 100)
    hold = books.pending(debit_account_id=books.guarded, amount=100)
    assert_refused(books, books.transfer(debit_account_id=books.guarded, amount=1), R.exceeds_credits)
    assert_refused(
        books, books.transfer(debit_account_id=books.guarded, amount=1, flags=F.PENDING), R.exceeds_credits
    )
    assert books.submit(void(hold)) == [R.ok]
    assert books.submit(books.transfer(debit_account_id=books.guarded, amount=100)) == [R.ok]
    assert books.counters()[books.guarded] == (0, 100, 0, 100, int(GUARDED))


def test_credit_limits_count_pending_credits(ledger):
    books = Books.open(ledger)
    books.apply(books.transfer(debit_account_id=books.capped, credit_account_id=books.other, amount=100))
    books.pending(credit_account_id=books.capped, amount=100)
    assert_refused(books, books.transfer(credit_account_id=books.capped, amount=1), R.exceeds_debits)


def test_a_pending_transfer_times_out_and_is_released(ledger):
    books = Books.open(ledger)
    books.fund(books.guarded, 100)
    hold = books.pending(debit_account_id=books.guarded, amount=100, timeout_s=1)
    assert books.submit(books.transfer(debit_account_id=books.guarded, amount=1)) == [R.exceeds_credits]
    time.sleep(1.1)
    # The next request releases the reservation before it decides anything, so the post finds it expired.
    late = post(hold)
    assert books.submit(late) == [R.pending_transfer_expired]
    assert ledger.lookup_transfers([late.id]) == []
    assert books.counters()[books.guarded] == (0, 0, 0, 100, int(GUARDED))
    assert books.counters()[books.credit] == (0, 0, 0, 0, 0)
    assert_refused(books, void(hold), R.pending_transfer_expired)
    release = [t for t in ledger.account_transfers(books.guarded).transfers if t.pending_id == hold.id]
    assert len(release) == 1
    assert release[0].flags & F.EXPIRED and release[0].flags & F.VOID_PENDING
    assert release[0].amount == 100
    assert books.submit(books.transfer(debit_account_id=books.guarded, amount=100)) == [R.ok]
    assert ledger.invariant_violations() == []


def test_a_closing_pending_transfer_closes_the_account_and_a_void_reopens_it(ledger):
    books = Books.open(ledger)
    closing = books.pending(flags=F.PENDING | F.CLOSING_DEBIT, amount=1)
    assert books.counters()[books.debit][4] & CLOSED
    spend = books.transfer(credit_account_id=books.other)
    assert_refused(books, spend, R.account_closed)
    assert_refused(
        books, books.transfer(debit_account_id=books.other, credit_account_id=books.debit), R.account_closed
    )
    assert books.submit(void(closing)) == [R.ok]
    assert books.counters()[books.debit] == (0, 0, 0, 0, 0)
    assert books.submit(spend) == [R.id_already_failed]
    assert books.submit(replace(spend, id=new_id())) == [R.ok]


def test_posting_a_closing_transfer_keeps_the_account_closed(ledger):
    books = Books.open(ledger)
    closing = books.pending(flags=F.PENDING | F.CLOSING_CREDIT, amount=5)
    assert books.submit(post(closing)) == [R.ok]
    assert books.counters()[books.credit] == (0, 0, 0, 5, int(CLOSED))
    assert_refused(books, books.transfer(), R.account_closed)


def test_a_reservation_made_before_closing_can_be_voided_but_not_posted(ledger):
    books = Books.open(ledger)
    earlier = books.pending(amount=7)
    books.pending(flags=F.PENDING | F.CLOSING_DEBIT, amount=1)
    assert_refused(books, post(earlier), R.account_closed)
    assert books.submit(void(earlier)) == [R.ok]
    assert books.counters()[books.debit][:4] == (1, 0, 0, 0)  # only the closing reservation is left


@pytest.fixture(scope="module")
def saturated(ledger) -> tuple[uuid.UUID, uuid.UUID]:
    """Two accounts whose debits (first) and credits (second) are 9223 * 10^15 tiyn: a hair under 2^63."""
    payer, payee = new_id(), new_id()
    assert ledger.create_accounts([Account(payer, KZT, OPERATOR), Account(payee, KZT, OPERATOR)]) == [
        A.ok,
        A.ok,
    ]
    count = COUNTER_TIYN_MAX // AMOUNT_TIYN_MAX
    events = [Transfer(new_id(), payer, payee, AMOUNT_TIYN_MAX, KZT, 1) for _ in range(count)]
    for start in range(0, count, BATCH_EVENTS_MAX):
        chunk = events[start : start + BATCH_EVENTS_MAX]
        assert ledger.create_transfers(chunk) == [R.ok] * len(chunk)
    return payer, payee


@pytest.mark.parametrize("expected", [R.overflows_debits, R.overflows_credits], ids=lambda r: r.name)
def test_a_counter_cannot_overflow(ledger, saturated, expected):
    payer, payee = saturated
    books = Books.open(ledger)
    headroom = COUNTER_TIYN_MAX - (COUNTER_TIYN_MAX // AMOUNT_TIYN_MAX) * AMOUNT_TIYN_MAX
    if expected is R.overflows_debits:
        event = books.transfer(debit_account_id=payer, amount=headroom + 1)
    else:
        event = books.transfer(credit_account_id=payee, amount=headroom + 1)
    assert_refused(books, event, expected, payer, payee)
    assert books.submit(replace(event, id=new_id(), amount=headroom)) == [R.ok]
    [full] = ledger.lookup_accounts([payer if expected is R.overflows_debits else payee])
    assert COUNTER_TIYN_MAX in (full.debits_posted, full.credits_posted)


# --- transfers: linked chains ---


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (lambda b: b.transfer(debit_account_id=b.guarded, amount=1), R.exceeds_credits),
        (lambda b: b.transfer(amount=0), R.amount_must_be_positive),
        (lambda b: post(b.transfer(), pending_id=new_id()), R.pending_transfer_not_found),
    ],
    ids=["state", "validation", "two-phase"],
)
def test_a_failing_event_fails_its_whole_chain_and_nothing_else(ledger, failure, expected):
    books = Books.open(ledger)
    before_chain = books.transfer(amount=1)
    first = books.transfer(amount=10, flags=F.LINKED)
    hold = books.transfer(debit_account_id=books.other, amount=20, flags=F.PENDING | F.LINKED)
    broken = failure(books)
    middle = replace(broken, flags=broken.flags | F.LINKED)
    settle = replace(post(hold), flags=F.POST_PENDING | F.LINKED)
    last = books.transfer(amount=40)
    after_chain = books.transfer(amount=2)
    results = books.submit(before_chain, first, hold, middle, settle, last, after_chain)
    failed = R.linked_event_failed
    assert results == [R.ok, failed, failed, expected, failed, failed, R.ok]
    counters = books.counters()
    assert counters[books.debit] == (0, 3, 0, 0, 0)
    assert counters[books.credit] == (0, 0, 0, 3, 0)
    assert counters[books.other] == (0, 0, 0, 0, 0)
    stored = {t.id for t in ledger.lookup_transfers([e.id for e in (first, hold, middle, settle, last)])}
    assert stored == set()
    # The chain's other events were never applied, so their ids are still free.
    assert books.submit(first, hold, settle, last) == [R.ok] * 4


def test_a_chain_commits_as_a_whole(ledger):
    books = Books.open(ledger)
    fund = books.transfer(
        debit_account_id=books.other, credit_account_id=books.guarded, amount=50, flags=F.LINKED
    )
    spend = books.transfer(debit_account_id=books.guarded, amount=50, flags=F.LINKED)
    hold = books.transfer(flags=F.PENDING | F.LINKED, amount=7)
    settle = post(hold, amount=5)
    assert books.submit(fund, spend, hold, settle) == [R.ok] * 4
    assert books.counters()[books.guarded] == (0, 50, 0, 50, int(GUARDED))
    assert books.counters()[books.credit] == (0, 0, 0, 55, 0)
    # A retry of the whole chain is safe: every event answers `exists`.
    assert books.submit(fund, spend, hold, settle) == [R.exists] * 4


def test_a_rolled_back_chain_leaves_no_balance_behind(ledger):
    books = Books.open(ledger)
    fund = books.transfer(
        debit_account_id=books.other, credit_account_id=books.guarded, amount=50, flags=F.LINKED
    )
    breaks = books.transfer(amount=0, flags=F.LINKED)
    closes = books.transfer(amount=1)
    spend = books.transfer(debit_account_id=books.guarded, amount=50)
    results = books.submit(fund, breaks, closes, spend)
    assert results == [
        R.linked_event_failed,
        R.amount_must_be_positive,
        R.linked_event_failed,
        R.exceeds_credits,
    ]


def test_a_chain_left_open_at_the_end_of_the_batch_fails(ledger):
    books = Books.open(ledger)
    alone = books.transfer(amount=1)
    first = books.transfer(amount=10, flags=F.LINKED)
    second = books.transfer(amount=20, flags=F.LINKED)
    assert books.submit(alone, first, second) == [R.ok, R.linked_event_failed, R.linked_event_chain_open]
    assert books.counters()[books.debit] == (0, 1, 0, 0, 0)
    assert ledger.lookup_transfers([first.id, second.id]) == []
    lone = books.transfer(flags=F.LINKED)
    assert_refused(books, lone, R.linked_event_chain_open)


# --- history and paging ---


def test_balance_as_of_a_past_moment_excludes_later_transfers(ledger):
    books = Books.open(ledger)
    first = books.transfer(amount=100)
    books.apply(first)
    time.sleep(0.01)
    hold = books.pending(amount=40)
    time.sleep(0.01)
    settle = post(hold, amount=25)
    books.apply(settle)
    stamps = {t.id: t.timestamp for t in ledger.lookup_transfers([first.id, hold.id, settle.id])}
    t1, t2, t3 = stamps[first.id], stamps[hold.id], stamps[settle.id]
    assert t1 < t2 < t3

    def counters(account: uuid.UUID, moment: Any) -> tuple[int, int, int, int]:
        b = ledger.balance_as_of(account, moment)
        return (b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted)

    assert counters(books.debit, t1 - 1) == (0, 0, 0, 0)
    assert counters(books.debit, t1) == (0, 100, 0, 0)
    assert counters(books.credit, t1) == (0, 0, 0, 100)
    assert counters(books.debit, t2) == (40, 100, 0, 0)
    assert counters(books.credit, t3 - 1) == (0, 0, 40, 100)
    assert counters(books.debit, t3) == (0, 125, 0, 0)
    assert counters(books.credit, t3) == (0, 0, 0, 125)
    between = timestamp_to_datetime((t1 + t2) // 2)
    assert counters(books.debit, between) == (0, 100, 0, 0)
    assert counters(books.debit, 2**62) == books.counters()[books.debit][:4]


@pytest.mark.parametrize("count", [21, 23])
def test_account_transfers_pages_through_every_transfer_once_in_ledger_order(ledger, count):
    books = Books.open(ledger)
    events: list[Transfer] = []
    for n in range(count):
        if n % 4 == 1:
            events.append(
                books.transfer(debit_account_id=books.other, credit_account_id=books.debit, amount=n + 1)
            )
        elif n % 4 == 2:
            events.append(books.transfer(flags=F.PENDING, amount=n + 1))
        elif n % 4 == 3:
            events.append(post(events[-1]))
        else:
            events.append(books.transfer(amount=n + 1))
    for start in range(0, count, 5):  # several batches, several events per batch
        books.apply(*events[start : start + 5])
    books.apply(books.transfer(debit_account_id=books.other, credit_account_id=books.credit))  # not ours
    expected = [t.id for t in ledger.lookup_transfers([e.id for e in events])]  # ordered by timestamp
    assert len(expected) == count

    seen: list[uuid.UUID] = []
    stamps: list[int] = []
    cursor = None
    for _ in range(count):
        page = ledger.account_transfers(books.debit, after=cursor, limit=7)
        assert len(page.transfers) <= 7
        seen.extend(t.id for t in page.transfers)
        stamps.extend(t.timestamp for t in page.transfers)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected
    assert stamps == sorted(set(stamps))


# --- batches ---


def test_a_batch_over_the_limit_raises_and_writes_nothing(ledger):
    books = Books.open(ledger)
    events = [books.transfer(amount=1) for _ in range(BATCH_EVENTS_MAX + 1)]
    with pytest.raises(BatchTooLarge):
        ledger.create_transfers(events)
    assert ledger.lookup_transfers([e.id for e in events]) == []
    assert books.counters()[books.debit] == (0, 0, 0, 0, 0)
    accounts = [Account(new_id(), KZT, OPERATOR) for _ in range(BATCH_EVENTS_MAX + 1)]
    with pytest.raises(BatchTooLarge):
        ledger.create_accounts(accounts)
    assert ledger.lookup_accounts([a.id for a in accounts]) == []


def test_an_empty_batch_is_empty(ledger):
    assert ledger.create_transfers([]) == []
    assert ledger.create_accounts([]) == []


# --- accounts ---


def _account(**changes: Any) -> Account:
    return replace(Account(new_id(), KZT, OPERATOR), **changes)


ACCOUNT_RULES = [
    rule(A.id_must_not_be_zero, lambda: _account(id=ZERO_ID), "zero"),
    rule(A.id_must_not_be_zero, lambda: _account(id=MAX_ID), "all-ones"),
    rule(A.flags_reserved, lambda: _account(flags=CLOSED), "ledger-only-closed"),
    rule(A.flags_reserved, lambda: _account(flags=16), "unknown-bit"),
    rule(A.flags_are_mutually_exclusive, lambda: _account(flags=GUARDED | CAPPED)),
    rule(A.asset_invalid, lambda: _account(asset=0), "zero"),
    rule(A.asset_invalid, lambda: _account(asset=3), "unknown"),
    rule(A.code_invalid, lambda: _account(code=0), "zero"),
    rule(A.code_invalid, lambda: _account(code=max(AccountType) + 1), "unknown"),
    rule(A.user_data_out_of_range, lambda: _account(user_data_64=-1), "64"),
    rule(A.user_data_out_of_range, lambda: _account(user_data_32=USER_DATA_32_MAX + 1), "32"),
    # Malformed types: a code, never an exception.
    rule(A.id_must_not_be_zero, lambda: _account(id=str(new_id())), "id-string"),
    rule(A.flags_reserved, lambda: _account(flags=None), "flags-none"),
    rule(A.asset_invalid, lambda: _account(asset="1"), "asset-string"),
    rule(A.asset_invalid, lambda: _account(asset=1.0), "asset-float"),
    rule(A.asset_invalid, lambda: _account(asset=True), "asset-bool"),
    rule(A.asset_invalid, lambda: _account(asset=[1]), "asset-list"),
    rule(A.code_invalid, lambda: _account(code=9.0), "code-float"),
    rule(A.code_invalid, lambda: _account(code=True), "code-bool"),
    rule(A.code_invalid, lambda: _account(code=[9]), "code-list"),
    rule(A.user_data_out_of_range, lambda: _account(user_data_128="x"), "128-string"),
    rule(A.user_data_out_of_range, lambda: _account(user_data_64=1.0), "64-float"),
]


@pytest.mark.parametrize(("expected", "build"), ACCOUNT_RULES)
def test_an_account_event_is_refused_with_the_first_rule_it_breaks(ledger, expected, build):
    event = build()
    assert ledger.create_accounts([event]) == [expected]
    if isinstance(event.id, uuid.UUID) and event.id not in (ZERO_ID, MAX_ID):
        assert ledger.lookup_accounts([event.id]) == []


EXISTING_ACCOUNT_RULES = [
    rule(A.exists_with_different_flags, lambda a: replace(a, flags=0)),
    rule(A.exists_with_different_flags, lambda a: replace(a, flags=CAPPED), "other-limit"),
    rule(A.exists_with_different_user_data_128, lambda a: replace(a, user_data_128=new_id())),
    rule(A.exists_with_different_user_data_64, lambda a: replace(a, user_data_64=8)),
    rule(A.exists_with_different_user_data_32, lambda a: replace(a, user_data_32=4)),
    rule(A.exists_with_different_asset, lambda a: replace(a, asset=DIGITAL)),
    rule(A.exists_with_different_code, lambda a: replace(a, code=AccountType.VOUCHER)),
    rule(A.exists, lambda a: a),
]


@pytest.mark.parametrize(("expected", "change"), EXISTING_ACCOUNT_RULES)
def test_an_account_retry_is_compared_field_by_field(ledger, expected, change):
    original = _account(flags=GUARDED, user_data_128=new_id(), user_data_64=7, user_data_32=3)
    assert ledger.create_accounts([original]) == [A.ok]
    [stored] = ledger.lookup_accounts([original.id])
    assert ledger.create_accounts([change(original)]) == [expected]
    assert ledger.lookup_accounts([original.id]) == [stored]


def test_a_closed_account_retried_with_its_own_fields_exists(ledger):
    books = Books.open(ledger)
    books.pending(flags=F.PENDING | F.CLOSING_DEBIT)
    retry = Account(books.debit, KZT, OPERATOR)
    assert ledger.create_accounts([retry]) == [A.exists]


def test_account_chains_commit_or_fail_as_a_whole(ledger):
    alone = _account()
    first = _account(flags=AccountFlags.LINKED)
    broken = _account(code=0, flags=AccountFlags.LINKED)
    last = _account()
    after = _account()
    results = ledger.create_accounts([alone, first, broken, last, after])
    assert results == [A.ok, A.linked_event_failed, A.code_invalid, A.linked_event_failed, A.ok]
    assert {a.id for a in ledger.lookup_accounts([alone.id, first.id, broken.id, last.id, after.id])} == {
        alone.id,
        after.id,
    }
    good = [_account(flags=AccountFlags.LINKED), _account(flags=AccountFlags.LINKED | GUARDED), _account()]
    assert ledger.create_accounts(good) == [A.ok] * 3
    assert len(ledger.lookup_accounts([a.id for a in good])) == 3


def test_an_account_chain_left_open_fails(ledger):
    alone = _account()
    first = _account(flags=AccountFlags.LINKED)
    second = _account(flags=AccountFlags.LINKED)
    assert ledger.create_accounts([alone, first, second]) == [
        A.ok,
        A.linked_event_failed,
        A.linked_event_chain_open,
    ]
    assert [a.id for a in ledger.lookup_accounts([alone.id, first.id, second.id])] == [alone.id]
