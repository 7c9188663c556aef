"""A small world for voucher tests: a funded programme with its policy, a provider with a terminal, and
helpers to issue, activate and redeem. Each call builds fresh ids (history is never cleaned up)."""

import dataclasses
import datetime as dt
import os
import secrets
import time
import uuid
from dataclasses import dataclass, field

import nacl.bindings

from ledger.accounts import Account, AccountType
from ledger.identity import BinEntityType, Sex, iin_holder_hash, make_valid_bin, make_valid_iin, validate_iin
from ledger.ids import new_id
from ledger.money import Asset
from ledger.results import CreateTransferResult
from ledger.service import Ledger
from ledger.transfer_codes import TransferCode
from ledger.transfers import Transfer
from ledger.vouchers.issuance import VoucherOrder
from ledger.vouchers.lifecycle import VoucherTransition
from ledger.vouchers.policy import parse_policy
from ledger.vouchers.redemption import Submission
from ledger.vouchers.requests import RedemptionItem, RedemptionRequest, parse_request_bytes, request_bytes
from ledger.vouchers.results import IssueResult, TransitionResult
from ledger.vouchers.service import VoucherLedger
from ledger.vouchers.signing import Purpose, sign_message
from ledger.vouchers.states import ProviderCategory, RedemptionPhase, TransitionAction

HOLDER_SALT = b"test-holder-salt-0123456789abcdef"


def policy_document(**overrides):
    document = {
        "purpose": "school_meals",
        "provider_categories": ["canteen"],
        "valid_from": "2020-01-01",
        "valid_until": "2099-12-31",
        "service": {"name": "Горячее питание", "unit": "порция"},
        "consent_required": False,
        "activation_required": False,
    }
    document.update(overrides)
    return {k: v for k, v in document.items() if v is not None}


def fresh_iin() -> str:
    day = dt.date(2010, 1, 1) + dt.timedelta(days=secrets.randbelow(4000))
    return make_valid_iin(day, Sex.female, secrets.randbelow(9000))


def fresh_bin() -> str:
    """A valid BIN unlikely to be taken already (providers are unique by BIN)."""
    year, month = 1995 + secrets.randbelow(30), 1 + secrets.randbelow(12)
    return make_valid_bin(year, month, BinEntityType.resident, secrets.randbelow(99_000))


def holder_hash(iin: str) -> bytes:
    return iin_holder_hash(validate_iin(iin), HOLDER_SALT)


@dataclass
class Terminal:
    id: uuid.UUID
    provider_id: uuid.UUID
    secret_key: bytes
    receivable_id: uuid.UUID


@dataclass
class World:
    ledger: Ledger
    vouchers: VoucherLedger
    programme_id: uuid.UUID
    fund_id: uuid.UUID
    terminal: Terminal
    terminals: list[Terminal] = field(default_factory=list)

    def add_provider(self, category=ProviderCategory.CANTEEN, enrol=True) -> Terminal:
        provider_id, receivable, terminal_id = new_id(), new_id(), new_id()
        bin_text = fresh_bin()
        assert self.vouchers.register_provider(
            provider_id, bin_text, f"Provider {bin_text}", int(category)
        ).ok
        if enrol:
            assert self.vouchers.enrol_provider(self.programme_id, provider_id, receivable).ok
        public_key, secret_key = nacl.bindings.crypto_sign_seed_keypair(os.urandom(32))
        assert self.vouchers.register_terminal(terminal_id, provider_id, public_key, "till 1").ok
        terminal = Terminal(terminal_id, provider_id, secret_key, receivable)
        self.terminals.append(terminal)
        return terminal

    def issue(self, amount=300_000, iin=None, **order_fields) -> uuid.UUID:
        voucher_id = new_id()
        order = VoucherOrder(
            voucher_id, self.programme_id, holder_hash(iin or fresh_iin()), amount, **order_fields
        )
        results, _ = self.vouchers.issue([order])
        assert results == [IssueResult.ok], results
        return voucher_id

    def step(self, voucher_id, action: TransitionAction, reason="by the test") -> TransitionResult:
        return self.vouchers.transition([VoucherTransition(new_id(), voucher_id, action, reason)])[0]

    def active_voucher(self, amount=300_000, **order_fields) -> uuid.UUID:
        return self.issue(amount, **order_fields)

    def request(self, voucher_id=None, amount=60_000, terminal=None, phase=RedemptionPhase.SINGLE, **fields):
        terminal = terminal or self.terminal
        token = (
            self.vouchers.token(voucher_id)
            if voucher_id is not None and "reference_code" not in fields
            else None
        )
        request = RedemptionRequest(
            id=fields.pop("id", new_id()),
            terminal_id=terminal.id,
            phase=phase,
            amount_tiyn=amount,
            requested_at_ms=fields.pop("requested_at_ms", time.time_ns() // 1_000_000),
            token=token,
            **fields,
        )
        return parse_request_bytes(request_bytes(request))

    def submission(self, request, terminal=None) -> Submission:
        terminal = terminal or self.terminal
        signature = sign_message(terminal.secret_key, Purpose.REDEMPTION_REQUEST, request.body)
        return Submission(terminal.id, (request,), request.body, signature, Purpose.REDEMPTION_REQUEST)

    def redeem(self, request, terminal=None):
        [(outcomes, receipt)] = self.vouchers.redeem([self.submission(request, terminal)])
        return outcomes[0], receipt


def build_world(
    ledger: Ledger, vouchers: VoucherLedger, fund_tiyn=10**12, asset=Asset.KZT, **policy
) -> World:
    source, budget, fund, programme = new_id(), new_id(), new_id(), new_id()
    ledger.create_accounts(
        [Account(source, asset, AccountType.OPERATOR), Account(budget, asset, AccountType.TREASURY_BUDGET)]
    )
    assert vouchers.register_programme(
        programme, int(asset), fund, parse_policy(policy_document(**policy))
    ).ok
    results = ledger.create_transfers(
        [
            Transfer(new_id(), source, budget, fund_tiyn, asset, TransferCode.OPERATOR),
            Transfer(new_id(), budget, fund, fund_tiyn, asset, TransferCode.FUND),
        ]
    )
    assert results == [CreateTransferResult.ok] * 2, results
    world = World(ledger, vouchers, programme, fund, terminal=None)  # type: ignore[arg-type]
    categories = policy.get("provider_categories", ["canteen"])
    world.terminal = world.add_provider(
        ProviderCategory[categories[0].upper()] if categories else ProviderCategory.CANTEEN
    )
    return world


__all__ = ["RedemptionItem", "World", "build_world", "dataclasses"]
