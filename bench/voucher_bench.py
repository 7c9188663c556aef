"""Voucher benchmark (not a test): issuance and redemption through the core, with every check on.

    .venv/bin/python bench/voucher_bench.py [--vouchers 60000] [--batch 1000] [--single 6000] [--processes 2]

Runs against AMIYAN_DATABASE_URL, else the embedded server, in a fresh scratch database. One programme
(canteens, partial redemption, per-use cap), 16 canteens with a terminal each. Measures:
- issue_per_s: vouchers issued through `VoucherLedger.issue` in batches from 2 threads (tokens signed,
  accounts opened, fund → voucher transfers, voucher rows, audit events);
- batch_redemptions_per_s: terminals' signed batches of B requests, each for a different voucher, through
  `VoucherLedger.redeem` in 2 processes, as `amiyan serve --workers 2` redeems them (one process holds one
  GIL: in one process, `--processes 0`, two threads reach about four fifths of it). Every check is on:
  terminal signature, Ed25519 token check, key windows, locks, policy, limits, balance, ledger transfer,
  redemption rows, audit events, receipts;
- single_redemptions_per_s: 32 clients each sending one signed request at a time, coalesced into shared
  transactions (`RedemptionCoalescer`), as the HTTP API does.
Terminals sign their requests before the clock starts: that work happens on their own devices.
Every result is checked `ok`. The last line is exactly
`voucher_bench: batch_redemptions_per_s=<int> single_redemptions_per_s=<int> issue_per_s=<int>`.
"""

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

import nacl.bindings
from psycopg_pool import ConnectionPool

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.database import create_pool, resolve_database_url, scratch_database, upgrade_database
from api.logs import configure_logging
from api.serving import GIL_SWITCH_INTERVAL_S, quiet_garbage_collector
from api.settings import Settings
from bench.machine_speed import machine_speed
from bench.workers import StartingLine, run_in_processes, run_threads
from ledger.accounts import Account, AccountType
from ledger.identity import BinEntityType, Sex, iin_holder_hash, make_valid_bin, make_valid_iin, validate_iin
from ledger.ids import new_id
from ledger.money import Asset
from ledger.service import Ledger
from ledger.transfers import Transfer
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.coalescer import RedemptionCoalescer
from ledger.vouchers.issuance import VoucherOrder
from ledger.vouchers.paseto import keypair_from_seed
from ledger.vouchers.policy import parse_policy
from ledger.vouchers.redemption import Submission
from ledger.vouchers.requests import RedemptionRequest, batch_document, parse_request_bytes, request_bytes
from ledger.vouchers.results import IssueResult, RedemptionResult
from ledger.vouchers.service import VoucherLedger
from ledger.vouchers.signing import Purpose, sign_message
from ledger.vouchers.states import RedemptionPhase
from ledger.vouchers.tokens import IssuerSigner

CLIENTS = 32
ISSUE_THREADS = 2
TERMINALS = 16
YEAR_NS = 365 * 24 * 3600 * 10**9
POLICY = {
    "purpose": "school_meals",
    "provider_categories": ["canteen"],
    "valid_from": "2020-01-01",
    "valid_until": "2099-12-31",
    "service": {"name": "Горячее питание", "unit": "порция"},
    "consent_required": False,
    "activation_required": False,
    "per_use_tiyn_max": 100_000,
}


def setup(
    ledger: Ledger, vouchers: VoucherLedger
) -> tuple[uuid.UUID, list[tuple[uuid.UUID, bytes, uuid.UUID]]]:
    """The programme, and (terminal id, terminal secret key, provider id) for each canteen."""
    now = vouchers.now()
    assert vouchers.introduce_signer(now + YEAR_NS, now + 2 * YEAR_NS).ok
    programme, fund, budget, source = new_id(), new_id(), new_id(), new_id()
    ledger.create_accounts([Account(source, Asset.KZT, AccountType.OPERATOR)])
    assert vouchers.register_programme(programme, Asset.KZT, fund, parse_policy(POLICY)).ok
    ledger.create_accounts([Account(budget, Asset.KZT, AccountType.TREASURY_BUDGET)])
    ledger.create_transfers(
        [
            Transfer(new_id(), source, budget, 10**14, Asset.KZT, 99),
            Transfer(new_id(), budget, fund, 10**14, Asset.KZT, 1),
        ]
    )
    terminals = []
    for n in range(TERMINALS):
        provider, receivable, terminal = new_id(), new_id(), new_id()
        bin_text = make_valid_bin(2015, 1 + n % 12, BinEntityType.resident, 1000 + n)
        assert vouchers.register_provider(provider, bin_text, f"Столовая №{n}", 1).ok
        assert vouchers.enrol_provider(programme, provider, receivable).ok
        public_key, secret_key = nacl.bindings.crypto_sign_seed_keypair(os.urandom(32))
        assert vouchers.register_terminal(terminal, provider, public_key, f"АПК {n}").ok
        terminals.append((terminal, secret_key, provider))
    return programme, terminals


def bench_issue(
    vouchers: VoucherLedger, programme: uuid.UUID, count: int, batch: int
) -> tuple[int, list[str]]:
    salt = b"bench-holder-salt-0123456789abcd"
    holders = [
        iin_holder_hash(validate_iin(make_valid_iin(_birthday(n), Sex.female, n % 9000)), salt)
        for n in range(512)
    ]
    orders = [VoucherOrder(new_id(), programme, holders[n % 512], 600_000) for n in range(count)]
    batches = [orders[i : i + batch] for i in range(0, count, batch)]
    tokens_by_batch: list[list[str]] = [[] for _ in batches]
    failures: list[object] = []

    def worker(n: int) -> None:
        # Each thread signs its next batch's tokens (no lock held) while the other writes under the
        # fund's lock, as two officers' issuance runs (or `issuance_bench --processes 2`) do.
        for index in range(n, len(batches), ISSUE_THREADS):
            results, issued = vouchers.issue(batches[index])
            failures.extend(r for r in results if r is not IssueResult.ok)
            tokens_by_batch[index] = [voucher.token for voucher in issued]

    elapsed = run_threads(ISSUE_THREADS, worker)
    assert not failures, failures[:3]
    return int(count / elapsed), [token for tokens in tokens_by_batch for token in tokens]


def _birthday(n: int):
    import datetime as dt

    return dt.date(2012, 1, 1) + dt.timedelta(days=n)


def signed_request(terminal: tuple[uuid.UUID, bytes], token: str) -> RedemptionRequest:
    request = RedemptionRequest(
        id=new_id(), terminal_id=terminal[0], phase=RedemptionPhase.SINGLE, amount_tiyn=60_000,
        requested_at_ms=time.time_ns() // 1_000_000, token=token,
    )  # fmt: skip
    return parse_request_bytes(request_bytes(request))


def bench_batches(
    url: str, issuer_seed: bytes, terminals: list, tokens: list[str], batch: int, processes: int
) -> int:
    """Terminals' signed batches, redeemed by `processes` processes (as `amiyan serve --workers N` runs
    them, each with its own pool and token verifier; 0: two threads of this process)."""
    submissions = []
    for i in range(0, len(tokens), batch):
        terminal = terminals[(i // batch) % len(terminals)]
        requests = [signed_request(terminal, token) for token in tokens[i : i + batch]]
        body = batch_document(terminal[0], time.time_ns() // 1_000_000, requests)
        signature = sign_message(terminal[1], Purpose.REDEMPTION_BATCH, body)
        submissions.append(
            Submission(terminal[0], tuple(requests), body, signature, Purpose.REDEMPTION_BATCH)
        )
    if processes == 0:
        vouchers, pool = _batch_ledger(url, issuer_seed)
        failures: list[str] = []
        elapsed = run_threads(2, lambda n: failures.extend(_redeem_all(vouchers, submissions[n::2])))
        vouchers.close()
        pool.close()
    else:
        shares = [(url, issuer_seed, submissions[n::processes]) for n in range(processes)]
        elapsed, failures = run_in_processes(_batch_process, shares)
    assert not failures, failures[:3]
    return int(len(tokens) / elapsed)


def _batch_ledger(url: str, issuer_seed: bytes) -> tuple[VoucherLedger, ConnectionPool]:
    pool = create_pool(url, Settings().database_role, size_max=4)
    return VoucherLedger(UnitOfWork(pool), IssuerSigner(keypair_from_seed(issuer_seed))), pool


def _redeem_all(vouchers: VoucherLedger, submissions: list[Submission]) -> list[str]:
    failures: list[str] = []
    for submission in submissions:
        [(outcomes, _)] = vouchers.redeem([submission])
        failures.extend(o.result.name for o in outcomes if o.result is not RedemptionResult.ok)
    return failures


def _batch_process(url: str, issuer_seed: bytes, submissions: list, line: StartingLine) -> None:
    configure_logging("json", "warning")
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    vouchers, pool = _batch_ledger(url, issuer_seed)
    pool.wait()  # connected before the clock starts
    quiet_garbage_collector()
    line.start()
    line.finish(_redeem_all(vouchers, submissions))
    vouchers.close()
    pool.close()


def bench_single(vouchers: VoucherLedger, terminals: list, tokens: list[str]) -> int:
    singles = []
    for n, token in enumerate(tokens):
        terminal = terminals[n % len(terminals)]
        request = signed_request(terminal, token)
        signature = sign_message(terminal[1], Purpose.REDEMPTION_REQUEST, request.body)
        singles.append(
            Submission(terminal[0], (request,), request.body, signature, Purpose.REDEMPTION_REQUEST)
        )
    coalescer = RedemptionCoalescer(vouchers, writers=int(os.environ.get("AMIYAN_BENCH_WRITERS", "1")))
    failures: list[str] = []

    def client(n: int) -> None:
        for submission in singles[n::CLIENTS]:
            outcomes, _ = coalescer.redeem(submission)
            if outcomes[0].result is not RedemptionResult.ok:
                failures.append(outcomes[0].result.name)

    elapsed = run_threads(CLIENTS, client)
    coalescer.close()
    assert not failures, failures[:3]
    return int(len(singles) / elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--vouchers", type=int, default=60_000, help="vouchers issued (and redeemed in batches)"
    )
    parser.add_argument(
        "--batch", type=int, default=1000, help="requests per batch (and vouchers per issue call)"
    )
    parser.add_argument("--single", type=int, default=6_000, help="single redemptions (32 clients)")
    parser.add_argument(
        "--processes", type=int, default=2, help="processes redeeming batches (0: two threads of one)"
    )
    args = parser.parse_args()
    configure_logging("json", "warning")
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)  # as the service runs (api/serving.py)
    settings = Settings()
    print(machine_speed(resolve_database_url(settings)), flush=True)
    with scratch_database(resolve_database_url(settings), "amiyan_voucher_bench") as url:
        upgrade_database(url)
        pool = create_pool(url, settings.database_role, size_max=40)
        unit_of_work = UnitOfWork(pool)
        ledger = Ledger(unit_of_work)
        issuer_seed = os.urandom(32)
        vouchers = VoucherLedger(unit_of_work, IssuerSigner(keypair_from_seed(issuer_seed)))
        programme, terminals = setup(ledger, vouchers)
        quiet_garbage_collector()  # as `amiyan serve` runs the core
        issue_per_s, tokens = bench_issue(vouchers, programme, args.vouchers + args.single, args.batch)
        print(f"issued {len(tokens)} vouchers: {issue_per_s}/s", flush=True)
        batch_per_s = bench_batches(
            url, issuer_seed, terminals, tokens[: args.vouchers], args.batch, args.processes
        )
        print(f"batch redemptions: {batch_per_s}/s", flush=True)
        single_per_s = bench_single(vouchers, terminals, tokens[args.vouchers :])
        print(f"single redemptions (32 clients): {single_per_s}/s", flush=True)
        vouchers.close()
        pool.close()
    print(
        f"voucher_bench: batch_redemptions_per_s={batch_per_s} single_redemptions_per_s={single_per_s} "
        f"issue_per_s={issue_per_s}"
    )


if __name__ == "__main__":
    main()
