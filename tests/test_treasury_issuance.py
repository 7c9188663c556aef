"""Bulk issuance from an eligibility list: bad rows go to the rejection report with their line and reason
while the good rows are issued; a list run twice, or resumed after a crash, issues nothing twice."""

import csv
import io
import pickle
import threading
from functools import partial

import pytest

from ledger.identity import iin_holder_hash, validate_iin
from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.states import VoucherState
from tests.treasury_operations_world import (
    HOLDER_SALT,
    MAKER,
    balances,
    fresh_iins,
    fund,
    open_programme,
    open_test_unit_of_work,
    write_csv,
    write_jsonl,
)
from treasury.allocation import AllocationDirection, move_between_funds, open_sub_fund
from treasury.bulk_issuance import issue_list
from treasury.errors import RefusalKind, Refused
from treasury.issuance_jobs import committed_batches, rejections_of, write_rejection_report
from treasury.issuance_workers import IssuanceWorkers
from treasury.programmes import ProgrammeState, set_programme_state

AMOUNT = 300_000


def _vouchers(unit_of_work, programme_id):
    """(holder hash, amount, state, fund) of every voucher of the programme."""
    rows = unit_of_work.read(
        lambda c: c.execute(
            "SELECT holder_hash, amount_tiyn, state, fund_account_id FROM vouchers WHERE programme_id = %s",
            (programme_id,),
        ).fetchall()
    )
    return {bytes(row[0]): (row[1], VoucherState(row[2]), row[3]) for row in rows}


def _holder(iin: str) -> bytes:
    return iin_holder_hash(validate_iin(iin), HOLDER_SALT)


def _funded_programme(unit_of_work, amount=10**10, **fields):
    programme = open_programme(
        unit_of_work, budget_ceiling_tiyn=10**12, approval_threshold_tiyn=10**12, **fields
    )
    fund(unit_of_work, programme, amount)
    return programme


def test_a_list_with_five_percent_bad_rows_issues_exactly_the_good_ones(pool, voucher_ledger, tmp_path):
    unit_of_work = UnitOfWork(pool)
    programme = _funded_programme(unit_of_work)
    iins = fresh_iins(190)
    rows: list[dict[str, object]] = [{"iin": iin, "entitlement": AMOUNT} for iin in iins]
    bad_check_digit = iins[3][:11] + str((int(iins[3][11]) + 1) % 10)
    bad = {  # line in the file (header is line 1) → (row, reason)
        10: ({"iin": bad_check_digit, "entitlement": AMOUNT}, "iin_check_digit"),
        20: ({"iin": "12345", "entitlement": AMOUNT}, "iin_length"),
        30: ({"iin": iins[5], "entitlement": AMOUNT}, "duplicate_holder"),
        40: ({"iin": fresh_iins(1)[0], "entitlement": "lots"}, "entitlement_invalid"),
        50: ({"iin": fresh_iins(1)[0], "entitlement": 0}, "amount_invalid"),
        60: ({"iin": fresh_iins(1)[0], "entitlement": "uses:3"}, "entitlement_not_priced"),
        70: ({"iin": fresh_iins(1)[0], "entitlement": AMOUNT, "region": "Марс"}, "region_unknown"),
        80: ({"iin": fresh_iins(1)[0], "entitlement": AMOUNT, "units_max": 5}, "units_not_priced"),
        90: ({"iin": fresh_iins(1)[0], "entitlement": AMOUNT, "items": "AMOX:2"}, "items_not_allowed"),
        100: ({"iin": "9912319999999", "entitlement": AMOUNT}, "iin_length"),
    }
    for line, (row, _) in sorted(bad.items()):
        rows.insert(line - 2, row)
    assert len(rows) == 200
    path = write_csv(tmp_path / "list.csv", rows, ("iin", "entitlement", "units_max", "items", "region"))
    job = issue_list(
        unit_of_work, voucher_ledger.signer, HOLDER_SALT, programme.id, path, MAKER, batch_rows=64
    )
    assert (job.finished, job.rows_total, job.issued, job.rejected, job.already_issued) == (
        True,
        200,
        190,
        10,
        0,
    )
    issued = _vouchers(unit_of_work, programme.id)
    assert set(issued) == {_holder(iin) for iin in iins}
    assert all(
        value == (AMOUNT, VoucherState.ACTIVE, programme.draft.fund_account_id) for value in issued.values()
    )
    assert balances(unit_of_work, programme.draft.fund_account_id) == [10**10 - 190 * AMOUNT]
    report = unit_of_work.read(lambda c: rejections_of(c, job.id))
    assert {(r.line, r.reason) for r in report} == {(line, reason) for line, (_, reason) in bad.items()}
    duplicate = next(r for r in report if r.reason == "duplicate_holder")
    assert iins[5] not in duplicate.message and duplicate.holder == "********" + iins[5][-4:]
    first_line = rows.index({"iin": iins[5], "entitlement": AMOUNT}) + 2
    assert duplicate.message == f"the holder is already on line {first_line}"


def test_the_rejection_report_downloads_as_csv(pool, voucher_ledger, tmp_path):
    unit_of_work = UnitOfWork(pool)
    programme = _funded_programme(unit_of_work)
    good, other = fresh_iins(2)
    path = write_csv(
        tmp_path / "list.csv", [{"iin": good, "entitlement": AMOUNT}, {"iin": "1", "entitlement": 1}]
    )
    job = issue_list(unit_of_work, voucher_ledger.signer, HOLDER_SALT, programme.id, path, MAKER)
    handle = io.StringIO()
    assert unit_of_work.read(lambda c: write_rejection_report(c, job.id, handle)) == 1
    assert list(csv.reader(io.StringIO(handle.getvalue()))) == [
        ["row", "reason", "message", "holder"],
        ["3", "iin_length", "an IIN has 12 digits (rule iin_length)", "*"],
    ]
    assert other  # unused on purpose: only one good row


def test_running_the_same_list_again_issues_nothing_twice(pool, voucher_ledger, tmp_path):
    unit_of_work = UnitOfWork(pool)
    programme = _funded_programme(unit_of_work)
    rows = [{"iin": iin, "entitlement": AMOUNT} for iin in fresh_iins(30)]
    path = write_csv(tmp_path / "list.csv", rows)
    first = issue_list(
        unit_of_work, voucher_ledger.signer, HOLDER_SALT, programme.id, path, MAKER, batch_rows=7
    )
    again = issue_list(
        unit_of_work, voucher_ledger.signer, HOLDER_SALT, programme.id, path, MAKER, batch_rows=7
    )
    assert again == first and first.issued == 30
    # The same people in another file (another job): every row is already issued.
    reordered = write_jsonl(tmp_path / "again.jsonl", list(reversed(rows)))
    other = issue_list(unit_of_work, voucher_ledger.signer, HOLDER_SALT, programme.id, reordered, MAKER)
    assert (other.id != first.id, other.issued, other.already_issued) == (True, 0, 30)
    assert len(_vouchers(unit_of_work, programme.id)) == 30
    assert balances(unit_of_work, programme.draft.fund_account_id) == [10**10 - 30 * AMOUNT]


class _Interrupted(Exception):
    pass


class _SignerThatCrashes:
    """An issuer that dies after `signatures` tokens: the batch in flight must leave no trace."""

    def __init__(self, signer, signatures: int) -> None:
        self.signer, self.left, self.key_id = signer, signatures, signer.key_id

    def sign_payload(self, payload):
        self.left -= 1
        if self.left < 0:
            raise _Interrupted("the issuing process died")
        return self.signer.sign_payload(payload)


def test_a_resumed_run_issues_nothing_twice(pool, voucher_ledger, tmp_path):
    unit_of_work = UnitOfWork(pool)
    programme = _funded_programme(unit_of_work)
    iins = fresh_iins(50)
    path = write_csv(tmp_path / "list.csv", [{"iin": iin, "entitlement": AMOUNT} for iin in iins])
    # Batches of 10, two at a time: the first two sign 20 tokens and commit; the next ones die signing.
    dying = _SignerThatCrashes(voucher_ledger.signer, signatures=25)
    seen = []
    with pytest.raises(_Interrupted):
        issue_list(unit_of_work, dying, HOLDER_SALT, programme.id, path, MAKER, 10, seen.append)
    assert seen[0].rows_done == 0 and seen[-1].rows_done == 20
    assert len(_vouchers(unit_of_work, programme.id)) == 20
    assert unit_of_work.read(lambda c: committed_batches(c, seen[0].id)) == {0, 1}

    def interrupt_once(job):
        if job.rows_done >= 30 and not interrupted:
            interrupted.append(job.rows_done)
            raise _Interrupted("the officer pressed Ctrl-C")

    interrupted: list[int] = []
    with pytest.raises(_Interrupted):
        issue_list(
            unit_of_work, voucher_ledger.signer, HOLDER_SALT, programme.id, path, MAKER, 10, interrupt_once
        )
    assert 30 <= len(_vouchers(unit_of_work, programme.id)) < 50
    job = issue_list(
        unit_of_work, voucher_ledger.signer, HOLDER_SALT, programme.id, path, MAKER, batch_rows=7
    )
    assert (job.finished, job.batch_rows, job.issued, job.already_issued, job.rejected) == (
        True,
        10,
        50,
        0,
        0,
    )
    assert set(_vouchers(unit_of_work, programme.id)) == {_holder(iin) for iin in iins}
    assert balances(unit_of_work, programme.draft.fund_account_id) == [10**10 - 50 * AMOUNT]


def test_two_runs_of_the_same_list_at_once_issue_each_voucher_once(pool, voucher_ledger, tmp_path):
    unit_of_work = UnitOfWork(pool)
    programme = _funded_programme(unit_of_work)
    iins = fresh_iins(60)
    path = write_csv(tmp_path / "list.csv", [{"iin": iin, "entitlement": AMOUNT} for iin in iins])
    start = threading.Barrier(2)
    jobs = []

    def run():
        start.wait()
        jobs.append(
            issue_list(UnitOfWork(pool), voucher_ledger.signer, HOLDER_SALT, programme.id, path, MAKER, 8)
        )

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [(job.finished, job.issued, job.already_issued) for job in jobs] == [(True, 60, 0)] * 2
    assert set(_vouchers(unit_of_work, programme.id)) == {_holder(iin) for iin in iins}
    assert balances(unit_of_work, programme.draft.fund_account_id) == [10**10 - 60 * AMOUNT]


def test_two_lists_sharing_holders_issued_at_once_issue_each_holder_once(pool, voucher_ledger, tmp_path):
    unit_of_work = UnitOfWork(pool)
    programme = _funded_programme(unit_of_work)
    iins = fresh_iins(90)
    first = write_csv(tmp_path / "first.csv", [{"iin": iin, "entitlement": AMOUNT} for iin in iins[:60]])
    second = write_csv(tmp_path / "second.csv", [{"iin": iin, "entitlement": AMOUNT} for iin in iins[30:]])
    start = threading.Barrier(2)
    jobs = []

    def run(path):
        start.wait()
        jobs.append(
            issue_list(UnitOfWork(pool), voucher_ledger.signer, HOLDER_SALT, programme.id, path, MAKER, 10)
        )

    threads = [threading.Thread(target=run, args=(path,)) for path in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted((job.issued + job.already_issued, job.rejected) for job in jobs) == [(60, 0), (60, 0)]
    assert (sum(job.issued for job in jobs), sum(job.already_issued for job in jobs)) == (90, 30)
    assert balances(unit_of_work, programme.draft.fund_account_id) == [10**10 - 90 * AMOUNT]


def test_worker_processes_issue_a_list_and_send_refusals_back(pool, database_url, voucher_ledger, tmp_path):
    unit_of_work = UnitOfWork(pool)
    programme = _funded_programme(unit_of_work)
    iins = fresh_iins(40)
    rows = [{"iin": iin, "entitlement": AMOUNT} for iin in iins] + [{"iin": "1", "entitlement": 1}]
    path = write_csv(tmp_path / "list.csv", rows)
    workers = IssuanceWorkers(2, partial(open_test_unit_of_work, database_url))
    job = issue_list(
        unit_of_work, voucher_ledger.signer, HOLDER_SALT, programme.id, path, MAKER, 6, workers=workers
    )
    assert (job.finished, job.issued, job.rejected) == (True, 40, 1)
    assert set(_vouchers(unit_of_work, programme.id)) == {_holder(iin) for iin in iins}
    refused = pickle.loads(pickle.dumps(Refused("programme_not_open", "closed", RefusalKind.CONFLICT)))
    assert (refused.code, refused.message, refused.kind) == (
        "programme_not_open",
        "closed",
        RefusalKind.CONFLICT,
    )


def test_rows_the_fund_cannot_cover_are_rejected_and_the_rest_issued(pool, voucher_ledger, tmp_path):
    unit_of_work = UnitOfWork(pool)
    programme = _funded_programme(unit_of_work, amount=3 * AMOUNT)
    path = write_csv(tmp_path / "list.csv", [{"iin": iin, "entitlement": AMOUNT} for iin in fresh_iins(5)])
    job = issue_list(unit_of_work, voucher_ledger.signer, HOLDER_SALT, programme.id, path, MAKER)
    assert (job.issued, job.rejected) == (3, 2)
    report = unit_of_work.read(lambda c: rejections_of(c, job.id))
    assert [(r.line, r.reason) for r in report] == [(5, "insufficient_funds"), (6, "insufficient_funds")]


def test_named_entitlements_are_priced_by_the_policy_and_offers_wait_for_consent(
    pool, voucher_ledger, tmp_path
):
    unit_of_work = UnitOfWork(pool)
    meals = _funded_programme(unit_of_work, policy={"price_per_use_tiyn": 60_000, "consent_required": True})
    first, second = fresh_iins(2)
    path = write_jsonl(
        tmp_path / "meals.jsonl",
        [{"iin": first, "entitlement": "uses:20"}, {"iin": second, "entitlement": 70_000}],
    )
    job = issue_list(unit_of_work, voucher_ledger.signer, HOLDER_SALT, meals.id, path, MAKER)
    assert (job.issued, [r.reason for r in unit_of_work.read(lambda c: rejections_of(c, job.id))]) == (
        1,
        ["amount_not_whole_uses"],
    )
    assert _vouchers(unit_of_work, meals.id)[_holder(first)][:2] == (20 * 60_000, VoucherState.OFFERED)
    [pending] = unit_of_work.read(
        lambda c: c.execute(
            "SELECT debits_pending FROM accounts WHERE id = %s", (meals.draft.fund_account_id,)
        ).fetchone()
    )
    assert pending == 20 * 60_000  # reserved until the citizen answers


def test_gas_units_and_prescription_items(pool, voucher_ledger, tmp_path):
    unit_of_work = UnitOfWork(pool)
    gas = _funded_programme(
        unit_of_work,
        policy={"purpose": "gas", "provider_categories": ["gas_utility"], "unit_price_tiyn": 2_500},
    )
    [iin] = fresh_iins(1)
    job = issue_list(
        unit_of_work, voucher_ledger.signer, HOLDER_SALT, gas.id,
        write_csv(tmp_path / "gas.csv", [{"iin": iin, "entitlement": "units:150"}]), MAKER,
    )  # fmt: skip
    assert job.issued == 1
    [units_max] = unit_of_work.read(
        lambda c: c.execute("SELECT units_max FROM vouchers WHERE programme_id = %s", (gas.id,)).fetchone()
    )
    assert (units_max, _vouchers(unit_of_work, gas.id)[_holder(iin)][0]) == (150, 150 * 2_500)
    medicines = _funded_programme(
        unit_of_work,
        policy={"purpose": "medicines", "provider_categories": ["pharmacy"], "items_required": True},
    )
    [patient, other] = fresh_iins(2)
    rows = [
        {"iin": patient, "entitlement": 450_000, "items": "AMOX500:20;PARA:10", "key": "RX-1"},
        {"iin": patient, "entitlement": 90_000, "items": "IBU:5", "key": "RX-2"},
        {"iin": other, "entitlement": 90_000},
    ]
    job = issue_list(
        unit_of_work, voucher_ledger.signer, HOLDER_SALT, medicines.id,
        write_csv(tmp_path / "rx.csv", rows, ("iin", "entitlement", "items", "key")), MAKER,
    )  # fmt: skip
    assert (job.issued, [r.reason for r in unit_of_work.read(lambda c: rejections_of(c, job.id))]) == (
        2,
        ["items_required"],
    )
    items = unit_of_work.read(
        lambda c: c.execute(
            """SELECT i.item_code, i.quantity_max FROM voucher_items i JOIN vouchers v ON v.id = i.voucher_id
                WHERE v.programme_id = %s ORDER BY i.item_code""",
            (medicines.id,),
        ).fetchall()
    )
    assert items == [("AMOX500", 20), ("IBU", 5), ("PARA", 10)]


def test_a_region_column_draws_from_the_regions_sub_fund(pool, voucher_ledger, tmp_path):
    unit_of_work = UnitOfWork(pool)
    programme = _funded_programme(unit_of_work, region="national")
    sub_fund = new_id()
    unit_of_work.run(lambda c: open_sub_fund(c, programme.id, sub_fund, "Алматы", MAKER))
    unit_of_work.run(
        lambda c: move_between_funds(c, new_id(), sub_fund, AllocationDirection.ALLOCATE, 2 * AMOUNT, MAKER)
    )
    [city, national] = fresh_iins(2)
    rows = [
        {"iin": city, "entitlement": AMOUNT, "region": "Алматы"},
        {"iin": national, "entitlement": AMOUNT},
    ]
    job = issue_list(
        unit_of_work, voucher_ledger.signer, HOLDER_SALT, programme.id,
        write_csv(tmp_path / "list.csv", rows, ("iin", "entitlement", "region")), MAKER,
    )  # fmt: skip
    assert job.issued == 2
    issued = _vouchers(unit_of_work, programme.id)
    assert (issued[_holder(city)][2], issued[_holder(national)][2]) == (
        sub_fund,
        programme.draft.fund_account_id,
    )
    assert balances(unit_of_work, sub_fund) == [AMOUNT]


def test_nothing_is_issued_outside_open_and_a_bad_header_refuses_the_file(pool, voucher_ledger, tmp_path):
    unit_of_work = UnitOfWork(pool)
    programme = _funded_programme(unit_of_work)
    path = write_csv(tmp_path / "list.csv", [{"iin": iin, "entitlement": AMOUNT} for iin in fresh_iins(3)])
    unit_of_work.run(lambda c: set_programme_state(c, programme.id, ProgrammeState.CLOSED))
    with pytest.raises(Refused) as refused:
        issue_list(unit_of_work, voucher_ledger.signer, HOLDER_SALT, programme.id, path, MAKER)
    assert refused.value.code == "programme_not_open"
    assert _vouchers(unit_of_work, programme.id) == {}
    other = _funded_programme(unit_of_work)
    (tmp_path / "typo.csv").write_text("iin,entitlment\n", encoding="utf-8")
    with pytest.raises(Refused) as refused:
        issue_list(unit_of_work, voucher_ledger.signer, HOLDER_SALT, other.id, tmp_path / "typo.csv", MAKER)
    assert refused.value.code == "list_columns_invalid"
