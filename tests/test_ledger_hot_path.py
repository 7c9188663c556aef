"""What the hot path takes for granted is checked where it could be wrong.

A `Ledger` remembers accounts it has read (ledger/known_accounts.py) and assumes a batch's event ids are
new; both give the answers a ledger that reads everything would give. Here a second `Ledger` (another
process, as far as the first can tell) changes what the first remembers, and stored ids hide in batches
the first assumes are new. Then the database guards those shortcuts rely on, and the encoder that writes
a row's COPY bytes and audit event in one pass.
"""

import dataclasses
import datetime as dt
import uuid
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg_pool import ConnectionPool

from ledger.accounts import Account, AccountFlags, AccountType
from ledger.audit.events import transfer_event
from ledger.ids import MAX_ID, ZERO_ID, new_id
from ledger.known_accounts import KnownAccounts
from ledger.limits import AMOUNT_TIYN_MAX, BATCH_EVENTS_MAX, COUNTER_TIYN_MAX
from ledger.money import Asset
from ledger.results import CreateAccountResult as A
from ledger.results import CreateTransferResult as R
from ledger.service import Ledger
from ledger.transfers import StoredTransfer, Transfer, first_broken_rule, validate_transfer
from ledger.transfers import TransferFlags as F
from ledger.unit_of_work import UnitOfWork
from ledger.wire import COPY_HEADER, COPY_TRAILER, encode_transfers

KZT = Asset.KZT
OPERATOR = AccountType.OPERATOR
GUARDED = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS


@pytest.fixture
def elsewhere(pool: ConnectionPool[Any]) -> Ledger:
    """Another Ledger on the same database, with its own memory: what another process would do."""
    return Ledger(UnitOfWork(pool))


def _accounts(ledger: Ledger, *flags: int) -> list[uuid.UUID]:
    ids = [new_id() for _ in flags]
    assert ledger.create_accounts(
        [Account(a, KZT, OPERATOR, f) for a, f in zip(ids, flags, strict=True)]
    ) == [A.ok] * len(ids)
    return ids


def _move(ledger: Ledger, debit: uuid.UUID, credit: uuid.UUID, amount: int = 10, **fields: object) -> R:
    [result] = ledger.create_transfers([Transfer(new_id(), debit, credit, amount, KZT, 1, **fields)])  # type: ignore[arg-type]
    return result


def _close_elsewhere(elsewhere: Ledger, account: uuid.UUID, other: uuid.UUID) -> uuid.UUID:
    pending = new_id()
    assert elsewhere.create_transfers(
        [Transfer(pending, account, other, 1, KZT, 1, flags=F.PENDING | F.CLOSING_DEBIT)]
    ) == [R.ok]
    return pending


def test_an_account_closed_by_another_ledger_is_refused_though_this_one_remembers_it_open(
    ledger: Ledger, elsewhere: Ledger
) -> None:
    payer, payee, other = _accounts(ledger, 0, 0, 0)
    assert _move(ledger, payer, payee) == R.ok
    assert payer.int in ledger.known_accounts.plain  # the next batch would not read it
    pending = _close_elsewhere(elsewhere, payer, other)
    assert _move(ledger, payer, payee) == R.account_closed
    # Reopened elsewhere (the reservation is voided): this ledger sees that too.
    void = Transfer(new_id(), ZERO_ID, ZERO_ID, 1, 0, 0, flags=F.VOID_PENDING, pending_id=pending)
    assert elsewhere.create_transfers([void]) == [R.ok]
    assert _move(ledger, payer, payee) == R.ok


def test_a_refusal_that_closing_would_pre_empt_is_decided_on_a_fresh_read(
    ledger: Ledger, elsewhere: Ledger
) -> None:
    # The payee is remembered open, the payer cannot pay: were the payee still open the answer would be
    # exceeds_credits, but it was closed meanwhile, and account_closed comes first.
    guarded, payee, other = _accounts(ledger, GUARDED, 0, 0)
    assert _move(ledger, other, payee) == R.ok
    _close_elsewhere(elsewhere, payee, other)
    refused = Transfer(new_id(), guarded, payee, 10, KZT, 1)
    assert ledger.create_transfers([refused]) == [R.account_closed]
    assert ledger.create_transfers([refused]) == [R.id_already_failed]
    assert ledger.lookup_transfers([refused.id]) == []


def test_a_linked_chain_leaning_on_a_remembered_account_is_decided_on_a_fresh_read(
    ledger: Ledger, elsewhere: Ledger
) -> None:
    payer, payee, other = _accounts(ledger, 0, 0, 0)
    assert _move(ledger, payer, payee) == R.ok
    _close_elsewhere(elsewhere, payer, other)
    chain = [
        Transfer(new_id(), payer, payee, 5, KZT, 1, flags=F.LINKED),
        Transfer(new_id(), other, payee, 0, KZT, 1),  # invalid: the chain fails here, or earlier
    ]
    assert ledger.create_transfers(chain) == [R.account_closed, R.linked_event_failed]


def test_counters_pushed_near_the_limit_by_another_ledger_still_give_overflows(
    ledger: Ledger, elsewhere: Ledger
) -> None:
    payer, payee, sink = _accounts(ledger, 0, 0, 0)
    assert _move(ledger, payer, payee) == R.ok  # remembered: this ledger counts its counters from zero
    count = COUNTER_TIYN_MAX // AMOUNT_TIYN_MAX
    events = [Transfer(new_id(), payer, sink, AMOUNT_TIYN_MAX, KZT, 1) for _ in range(count)]
    for start in range(0, count, BATCH_EVENTS_MAX):
        chunk = events[start : start + BATCH_EVENTS_MAX]
        assert elsewhere.create_transfers(chunk) == [R.ok] * len(chunk)
    headroom = COUNTER_TIYN_MAX - count * AMOUNT_TIYN_MAX - 10
    assert _move(ledger, payer, payee, headroom + 1) == R.overflows_debits
    assert _move(ledger, payer, payee, headroom) == R.ok
    [account] = ledger.lookup_accounts([payer])
    assert account.debits_posted == COUNTER_TIYN_MAX


def test_a_pending_made_and_posted_in_one_batch_on_remembered_accounts(ledger: Ledger) -> None:
    payer, payee = _accounts(ledger, 0, 0)
    assert _move(ledger, payer, payee) == R.ok
    pending = Transfer(new_id(), payer, payee, 100, KZT, 1, flags=F.PENDING)
    post = Transfer(new_id(), ZERO_ID, ZERO_ID, 60, 0, 0, flags=F.POST_PENDING, pending_id=pending.id)
    assert ledger.create_transfers([pending, post]) == [R.ok, R.ok]
    [account] = ledger.lookup_accounts([payer])
    assert (account.debits_pending, account.debits_posted) == (0, 70)


def test_a_stored_id_in_a_batch_assumed_new_is_answered_as_stored(ledger: Ledger) -> None:
    payer, payee = _accounts(ledger, 0, 0)
    original = Transfer(new_id(), payer, payee, 10, KZT, 1)
    assert ledger.create_transfers([original]) == [R.ok]
    fresh = Transfer(new_id(), payer, payee, 1, KZT, 1)
    assert ledger.create_transfers([fresh, original]) == [R.ok, R.exists]
    [counters] = ledger.lookup_accounts([payer])
    assert counters.debits_posted == 11  # the retried batch moved only the new transfer, once


def test_a_stored_id_refused_on_state_when_assumed_new_is_not_recorded_as_failed(ledger: Ledger) -> None:
    # Retried with a credit account that does not exist: a stored id answers before any account lookup.
    payer, payee = _accounts(ledger, 0, 0)
    original = Transfer(new_id(), payer, payee, 10, KZT, 1)
    assert ledger.create_transfers([original]) == [R.ok]
    changed = Transfer(original.id, payer, new_id(), 10, KZT, 1)
    assert ledger.create_transfers([changed]) == [R.exists_with_different_credit_account_id]
    assert ledger.create_transfers([original]) == [R.exists]


def test_a_stored_id_inside_a_failing_chain_fails_the_chain_where_it_stands(ledger: Ledger) -> None:
    payer, payee = _accounts(ledger, 0, 0)
    original = Transfer(new_id(), payer, payee, 10, KZT, 1)
    assert ledger.create_transfers([original]) == [R.ok]
    unknown = Transfer(new_id(), ZERO_ID, ZERO_ID, 1, 0, 0, flags=F.POST_PENDING, pending_id=new_id())
    chain = [Transfer(original.id, payer, payee, 11, KZT, 1, flags=F.LINKED), unknown]
    assert ledger.create_transfers(chain) == [R.exists_with_different_amount, R.linked_event_failed]
    # The unknown post was never decided, so its id is not failed: it can still be answered on its own.
    assert ledger.create_transfers([unknown]) == [R.pending_transfer_not_found]


def test_balance_limit_flags_never_change_at_the_database(
    owner_connection: psycopg.Connection[Any], ledger: Ledger
) -> None:
    [guarded] = _accounts(ledger, GUARDED)
    for flags in ("flags & ~2", "flags | 4"):
        with pytest.raises(psycopg.Error) as caught:
            owner_connection.execute(f"UPDATE accounts SET flags = {flags} WHERE id = %s", (guarded,))
        owner_connection.rollback()
        assert (caught.value.sqlstate, caught.value.diag.constraint_name) == (
            "23001",
            "accounts_limits_immutable",
        )


def test_apply_deltas_refuses_a_batch_that_would_overflow_a_counter(
    owner_connection: psycopg.Connection[Any], ledger: Ledger
) -> None:
    # Pending plus posted past 2^63 - 1, though each counter alone would fit: refused, and retryable (the
    # ledger then decides again from a fresh read and answers overflows_debits / overflows_credits). The
    # counters are set by hand inside a transaction that is rolled back.
    a, b = _accounts(ledger, 0, 0)
    near = COUNTER_TIYN_MAX - 5
    owner_connection.execute("UPDATE accounts SET debits_pending = %s WHERE id = %s", (near, a))
    owner_connection.execute("UPDATE accounts SET credits_pending = %s WHERE id = %s", (near, b))
    with pytest.raises(psycopg.Error) as caught:
        owner_connection.execute(
            "SELECT ledger_apply_deltas(%s, %s, %s, %s, %s, %s, %s, %s, %s::smallint[])",
            ([a, b], [0, 0], [10, 0], [0, 0], [0, 10], [0, 0], [0, 0], [0, 0], [1, 1]),
        )
    owner_connection.rollback()
    assert caught.value.sqlstate == "40001"
    assert [(x.debits_posted, x.credits_posted) for x in ledger.lookup_accounts([a, b])] == [(0, 0), (0, 0)]


_IDS = st.builds(lambda n: uuid.UUID(int=n), st.integers(0, 2**128 - 1))


@settings(max_examples=200)
@given(
    st.lists(
        st.builds(
            StoredTransfer,
            _IDS,
            _IDS,
            _IDS,
            st.integers(1, AMOUNT_TIYN_MAX),
            st.integers(0, 2**15 - 1),
            st.integers(0, 2**15 - 1),
            st.integers(0, 2**16 - 1),
            st.one_of(st.just(ZERO_ID), _IDS),
            st.integers(0, 2**31 - 1),
            _IDS,
            st.integers(0, 2**63 - 1),
            st.integers(0, 2**31 - 1),
            st.dates(dt.date(2000, 1, 1), dt.date(2199, 12, 31)),
            st.integers(0, 2**63 - 1),
        ),
        max_size=5,
    )
)
def test_the_one_pass_encoder_writes_each_rows_audit_event_byte_for_byte(rows: list[StoredTransfer]) -> None:
    copy_data, events = encode_transfers(rows, audit=True)
    assert events == [transfer_event(row) for row in rows]
    assert copy_data.startswith(COPY_HEADER) and copy_data.endswith(COPY_TRAILER)
    # Each row: a field count, then 14 length-prefixed fields; a NULL pending id is a bare -1 length.
    null_pendings = sum(row.pending_id == ZERO_ID for row in rows)
    row_bytes = 2 + 14 * 4 + 3 * 16 + 8 + 2 + 2 + 4 + 16 + 4 + 16 + 8 + 4 + 4 + 8
    assert len(copy_data) == len(COPY_HEADER) + len(COPY_TRAILER) + len(rows) * row_bytes - 16 * null_pendings


class TestVoucherCashingAtTheDatabase:
    """The non-cashable trigger, rewritten to find voucher debits through a partial index of voucher
    accounts: the same verdicts, by raw SQL around Python, in transactions that are rolled back."""

    FUND, VOUCHER, ORPHAN, PHARMACY, SHOP, PLAIN = (new_id() for _ in range(6))
    PROGRAMME, PHARMACY_ID, SHOP_ID = new_id(), new_id(), new_id()

    def _set_up(self, connection: psycopg.Connection[Any]) -> None:
        accounts = [
            (self.FUND, 3), (self.VOUCHER, 5), (self.ORPHAN, 5), (self.PHARMACY, 6), (self.SHOP, 6),
            (self.PLAIN, 9),
        ]  # fmt: skip
        for n, (account, code) in enumerate(accounts):
            connection.execute(
                "INSERT INTO accounts VALUES (%s, 1, %s, 0, %s, 0, 0, 0, 0, 0, 0, %s)",
                (account, code, ZERO_ID, -(10**15) - n),
            )
        connection.execute(
            "INSERT INTO voucher_programmes VALUES (%s, 1, %s, NULL, 1)", (self.PROGRAMME, self.FUND)
        )
        connection.execute("INSERT INTO voucher_funds VALUES (%s, %s, 1)", (self.FUND, self.PROGRAMME))
        connection.execute(
            "INSERT INTO voucher_policies VALUES (%s, 1, 0, 'medicines', '{2}', '{}', '\\x7b7d', 1)",
            (self.PROGRAMME,),
        )
        for provider, bin_, category, receivable in (
            (self.PHARMACY_ID, "000000000001", 2, self.PHARMACY),
            (self.SHOP_ID, "000000000002", 3, self.SHOP),
        ):
            connection.execute(
                "INSERT INTO providers VALUES (%s, %s, 'p', %s, 1)", (provider, bin_, category)
            )
            connection.execute(
                "INSERT INTO programme_providers VALUES (%s, %s, %s, 2, 1)",
                (self.PROGRAMME, provider, receivable),
            )
        key = bytes(32)
        connection.execute("INSERT INTO issuer_keys VALUES ('k', %s, 10, 10, NULL, 1)", (key,))
        connection.execute(
            """INSERT INTO vouchers (id, programme_id, fund_account_id, holder_hash, state, policy_version,
                   amount_tiyn, units_max, not_before, expires_at, period_uses_max, period_tiyn_max,
                   period_units_max, purpose, issuer_key_id, reference_code, token_signature,
                   issue_transfer_id, "timestamp")
               VALUES (%s, %s, %s, '\\x00', 4, 1, 100, 1, 0, 10, 1, 100, 1, 'medicines', 'k', %s, %s, %s,
                       1)""",
            (self.VOUCHER, self.PROGRAMME, self.FUND, str(new_id()), bytes(64), new_id()),
        )

    def _insert(self, connection: psycopg.Connection[Any], debit: uuid.UUID, credit: uuid.UUID) -> str | None:
        """None if the database accepts the transfer, else the constraint that refused it."""
        self._set_up(connection)
        try:
            connection.execute(
                "INSERT INTO transfers VALUES (%s, %s, %s, 5, 1, 1, 0, NULL, 0, %s, 0, 0, current_date, %s)",
                (new_id(), debit, credit, ZERO_ID, 10**9),  # after the policy's valid_from (0)
            )
            return None
        except psycopg.Error as error:
            assert error.sqlstate == "23514"
            return error.diag.constraint_name
        finally:
            connection.rollback()

    @pytest.mark.parametrize(
        ("debit", "credit", "refused"),
        [
            ("VOUCHER", "FUND", None),  # value returned to its fund
            ("VOUCHER", "PHARMACY", None),  # a provider category the policy allows
            ("VOUCHER", "SHOP", "vouchers_non_cashable"),  # enrolled, in a category the policy excludes
            ("VOUCHER", "PLAIN", "vouchers_non_cashable"),  # no provider at all
            ("ORPHAN", "FUND", "vouchers_non_cashable"),  # a voucher account with no voucher behind it
            ("PLAIN", "SHOP", None),  # not a voucher: the rule does not apply
            ("FUND", "VOUCHER", None),  # issuing into a voucher
        ],
    )
    def test_a_transfer_out_of_a_voucher(
        self, owner_connection: psycopg.Connection[Any], debit: str, credit: str, refused: str | None
    ) -> None:
        assert self._insert(owner_connection, getattr(self, debit), getattr(self, credit)) == refused


_PLAIN = st.builds(
    lambda debit, credit, amount, asset, code, linked, day: Transfer(
        new_id(), debit, credit, amount, asset, code, F.LINKED if linked else 0, effective_date=day
    ),
    _IDS, _IDS, st.integers(1, AMOUNT_TIYN_MAX), st.sampled_from([1, 2, *Asset]), st.integers(1, 2**15 - 1),
    st.booleans(), st.one_of(st.none(), st.dates(dt.date(2000, 1, 1), dt.date(2199, 12, 31))),
)  # fmt: skip
_ODD_NUMBERS = (None, True, 1.0, 0, -1, 2**15, 2**31, 2**63, 2**64, "1", Asset.KZT, F.LINKED, F.PENDING)
_ODD_IDS = (ZERO_ID, MAX_ID, uuid.UUID(int=0), uuid.UUID(int=1))
_ODD_OTHERS = (*_ODD_IDS, dt.date(1999, 1, 1), dt.datetime(2025, 1, 1))
_ODD = st.sampled_from([*_ODD_NUMBERS, *_ODD_OTHERS])


@settings(max_examples=3000)
@given(
    _PLAIN,
    st.lists(st.tuples(st.sampled_from([f.name for f in dataclasses.fields(Transfer)]), _ODD), max_size=2),
)
def test_the_validation_shortcut_only_passes_events_the_full_rules_pass(
    plain: Transfer, oddities: list[tuple[str, object]]
) -> None:
    event = dataclasses.replace(plain, **dict(oddities))  # type: ignore[arg-type]
    assert validate_transfer(event) == first_broken_rule(event)


def test_the_account_memory_forgets_closed_accounts_and_is_bounded() -> None:
    known = KnownAccounts(size_max=3)
    known.remember_read([(1, 1, 9, 0), (2, 1, 9, int(GUARDED)), (3, 1, 9, int(AccountFlags.CLOSED))])
    assert (known.plain, known.limited) == ({1: (1, 9)}, {2})
    known.remember_read([(1, 1, 9, int(AccountFlags.CLOSED))])  # closed since: read again next time
    assert known.plain == {}
    known.remember_read([(4, 1, 9, 0), (5, 1, 9, 0), (6, 1, 9, 0)])  # past the bound: starts again
    assert (known.plain, known.limited) == ({4: (1, 9), 5: (1, 9), 6: (1, 9)}, set())
