"""Bulk issuance benchmark (not a test): one eligibility list of N valid IINs issued end to end by the real
job (`treasury.bulk_issuance.issue_list`: hashing, duplicate scan, row checks, batches through
`issue_vouchers`, progress and rejection bookkeeping).

    .venv/bin/python bench/issuance_bench.py [--vouchers 1000000] [--batch 4000] [--processes 2] [--consent]

Runs against AMIYAN_DATABASE_URL, else the embedded server, in a fresh scratch database. Generating the
list is not timed; the run is. Every row must be issued (the job's counters and the vouchers table are
checked). The last line is exactly `issuance_bench: vouchers=<int> seconds=<float> per_s=<int>`.
"""

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.cli_treasury import issuance_workers
from api.database import create_pool, resolve_database_url, scratch_database, upgrade_database
from api.logs import configure_logging
from api.settings import Settings
from bench.machine_speed import machine_speed
from ledger.identity import BinEntityType, Sex, make_valid_bin, make_valid_iin, make_valid_kz_iban
from ledger.ids import new_id
from ledger.money import Asset
from ledger.timestamps import reserve_timestamps
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.keys import add_issuer_key
from ledger.vouchers.paseto import keypair_from_seed
from ledger.vouchers.policy import parse_policy
from ledger.vouchers.tokens import IssuerSigner
from treasury.bulk_issuance import issue_list
from treasury.funding import create_funding_order
from treasury.programmes import (
    PayingAuthority,
    ProgrammeDraft,
    create_programme,
    open_programme,
)

AMOUNT_TIYN = 300_000
HOLDER_SALT = b"issuance-bench-holder-salt-0123456789"
OFFICER = "Bench Officer"


def write_list(path: Path, count: int) -> None:
    """`count` distinct valid IINs, each entitled to AMOUNT_TIYN."""
    seen: set[str] = set()
    days = (dt.date(2020, 1, 1) - dt.date(1940, 1, 1)).days
    step = 0
    with path.open("w", encoding="utf-8") as handle:
        handle.write("iin,entitlement\n")
        while len(seen) < count:
            day = dt.date(1940, 1, 1) + dt.timedelta(days=step % days)
            iin = make_valid_iin(day, Sex.female if step % 3 else Sex.male, step // days * 3)
            step += 1
            if iin not in seen:
                seen.add(iin)
                handle.write(f"{iin},{AMOUNT_TIYN}\n")


def fund_and_open_programme(unit_of_work: UnitOfWork, count: int, consent: bool) -> ProgrammeDraft:
    ceiling = count * AMOUNT_TIYN
    draft = ProgrammeDraft(
        id=new_id(), code="BENCH-ISSUE", name="Issuance benchmark", kbk="251 027 015", region="national",
        period_start=dt.date(2026, 1, 1), period_end=dt.date(2027, 12, 31), asset=Asset.KZT,
        budget_ceiling_tiyn=ceiling, approval_threshold_tiyn=ceiling, vat_rate="exempt",
        budget_account_id=new_id(), fund_account_id=new_id(),
        customer=PayingAuthority("Bench ministry", make_valid_bin(2001, 3, BinEntityType.resident, 1), "Astana",
                                 make_valid_kz_iban("070", "FT00000000012"), "Treasury", "KKMFKZ2A"),
    )  # fmt: skip
    policy = parse_policy({
        "purpose": "school_meals", "provider_categories": ["canteen"], "valid_from": "2020-01-01",
        "valid_until": "2099-12-31", "service": {"name": "Горячее питание", "unit": "порция"},
        "consent_required": consent, "activation_required": False,
    })  # fmt: skip
    unit_of_work.run(lambda c: create_programme(c, draft, policy, OFFICER))
    unit_of_work.run(lambda c: open_programme(c, draft.id, "Bench officer"))
    unit_of_work.run(lambda c: create_funding_order(c, new_id(), draft.id, ceiling, OFFICER))
    return draft


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vouchers", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=4000)
    parser.add_argument("--consent", action="store_true", help="the policy asks for consent: offers")
    parser.add_argument("--processes", type=int, default=2, help="worker processes (0: two threads)")
    arguments = parser.parse_args()
    configure_logging("json", "warning")
    server = resolve_database_url(Settings())
    print(machine_speed(server), flush=True)
    with tempfile.TemporaryDirectory() as directory, scratch_database(server, "amiyan_issuance_bench") as url:
        path = Path(directory) / "eligibility.csv"
        write_list(path, arguments.vouchers)
        upgrade_database(url)
        pool = create_pool(url, "amiyan_app", 4)
        unit_of_work = UnitOfWork(pool)
        signer = IssuerSigner(keypair_from_seed(b"amiyan-issuance-bench-seed-00001"))
        year = 365 * 24 * 3600 * 10**9
        now = unit_of_work.run(reserve_timestamps)
        unit_of_work.run(lambda c: add_issuer_key(c, signer.public_key, now + year, now + 2 * year))
        draft = fund_and_open_programme(unit_of_work, arguments.vouchers, arguments.consent)
        started = time.perf_counter()
        workers = issuance_workers(Settings(), url, arguments.processes)
        job = issue_list(
            unit_of_work, signer, HOLDER_SALT, draft.id, path, OFFICER, arguments.batch, workers=workers
        )
        seconds = time.perf_counter() - started
        stored = unit_of_work.read(
            lambda c: c.execute(
                "SELECT count(*) FROM vouchers WHERE programme_id = %s", (draft.id,)
            ).fetchone()
        )
        pool.close()
    assert (job.finished, job.issued, stored) == (True, arguments.vouchers, (arguments.vouchers,)), job
    print(f"issuance_bench: vouchers={job.issued} seconds={seconds:.1f} per_s={int(job.issued / seconds)}")


if __name__ == "__main__":
    main()
