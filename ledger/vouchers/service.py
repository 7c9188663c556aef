"""`VoucherLedger`: the vouchers' public face. Each method is one transaction through the unit of work and
logs one line; the `*_in` functions of the modules it calls are there for callers (treasury) that compose
voucher steps with their own rows in one transaction."""

import datetime as dt
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import structlog

from ledger.timestamps import reserve_timestamps
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers import issuance, keys, lifecycle, participants, redemption, registry, views
from ledger.vouchers.issuance import IssuedVoucher, VoucherOrder
from ledger.vouchers.lifecycle import VoucherTransition
from ledger.vouchers.policy import Policy
from ledger.vouchers.receipts import Receipt, RedemptionOutcome, sign_receipt
from ledger.vouchers.redemption import Submission
from ledger.vouchers.registry import Outcome
from ledger.vouchers.results import IssueResult, TransitionResult
from ledger.vouchers.states import ProviderState
from ledger.vouchers.token_checks import TokenVerifier
from ledger.vouchers.tokens import IssuerSigner

log = structlog.get_logger("ledger.vouchers")


class VoucherLedger:
    def __init__(
        self, unit_of_work: UnitOfWork, signer: IssuerSigner, verifier: TokenVerifier | None = None
    ) -> None:
        self.unit_of_work = unit_of_work
        self.signer = signer
        self.verifier = verifier or TokenVerifier()

    def close(self) -> None:
        self.verifier.close()

    # Registration: programmes, funds, policies, providers, terminals, keys.

    def introduce_signer(self, issue_until: int, redeem_until: int) -> Outcome:
        """Make sure this process's issuer key is in the key set (idempotent)."""
        public_key = self.signer.public_key
        return self.unit_of_work.run(lambda c: keys.add_issuer_key(c, public_key, issue_until, redeem_until))

    def revoke_issuer_key(self, key_id: str, reason: str) -> Outcome:
        return self.unit_of_work.run(lambda c: keys.revoke_issuer_key(c, key_id, reason))

    def register_programme(
        self, programme_id: uuid.UUID, asset: int, fund_account_id: uuid.UUID, policy: Policy
    ) -> Outcome:
        return self.unit_of_work.run(
            lambda c: registry.register_programme(c, programme_id, asset, fund_account_id, policy)
        )

    def record_policy(
        self, programme_id: uuid.UUID, policy: Policy, valid_from: int | None = None
    ) -> Outcome:
        return self.unit_of_work.run(lambda c: registry.record_policy(c, programme_id, policy, valid_from))

    def add_fund(self, programme_id: uuid.UUID, account_id: uuid.UUID) -> Outcome:
        return self.unit_of_work.run(lambda c: registry.add_fund(c, programme_id, account_id))

    def close_period(self, programme_id: uuid.UUID, through: dt.date) -> Outcome:
        return self.unit_of_work.run(lambda c: registry.close_period(c, programme_id, through))

    def register_provider(self, provider_id: uuid.UUID, bin_text: str, name: str, category: int) -> Outcome:
        return self.unit_of_work.run(
            lambda c: participants.register_provider(c, provider_id, bin_text, name, category)
        )

    def enrol_provider(
        self,
        programme_id: uuid.UUID,
        provider_id: uuid.UUID,
        receivable_account_id: uuid.UUID,
        state: ProviderState = ProviderState.ACTIVE,
    ) -> Outcome:
        return self.unit_of_work.run(
            lambda c: participants.enrol_provider(c, programme_id, provider_id, receivable_account_id, state)
        )

    def set_provider_state(
        self, programme_id: uuid.UUID, provider_id: uuid.UUID, state: ProviderState, reason: str
    ) -> Outcome:
        return self.unit_of_work.run(
            lambda c: participants.set_provider_state(c, programme_id, provider_id, state, reason)
        )

    def register_terminal(
        self, terminal_id: uuid.UUID, provider_id: uuid.UUID, public_key: bytes, name: str
    ) -> Outcome:
        return self.unit_of_work.run(
            lambda c: participants.register_terminal(c, terminal_id, provider_id, public_key, name)
        )

    def revoke_terminal(self, terminal_id: uuid.UUID, reason: str) -> Outcome:
        return self.unit_of_work.run(lambda c: participants.revoke_terminal(c, terminal_id, reason))

    # Vouchers.

    def issue(self, orders: Sequence[VoucherOrder]) -> tuple[list[IssueResult], list[IssuedVoucher]]:
        started = time.perf_counter()
        results, issued = self.unit_of_work.run(lambda c: issuance.issue_vouchers(c, self.signer, orders))
        _log("issue_vouchers", results, started)
        return results, issued

    def transition(self, steps: Sequence[VoucherTransition]) -> list[TransitionResult]:
        started = time.perf_counter()
        results = self.unit_of_work.run(lambda c: lifecycle.transition_vouchers(c, steps))
        _log("transition_vouchers", results, started)
        return results

    def redeem(self, submissions: Sequence[Submission]) -> list[tuple[list[RedemptionOutcome], Receipt]]:
        """Redeem several terminals' submissions in one transaction; each gets its outcomes and receipt."""
        started = time.perf_counter()
        outcomes = self.unit_of_work.run(lambda c: redemption.redeem(c, self.verifier, submissions))
        _log("redeem", [o.result for group in outcomes for o in group], started)
        return [
            (group, sign_receipt(self.signer, submission.terminal_id, group))
            for submission, group in zip(submissions, outcomes, strict=True)
        ]

    # Reads.

    def vouchers(self, ids: list[uuid.UUID]) -> list[views.VoucherView]:
        return self.unit_of_work.read(lambda c: views.vouchers_by_id(c, ids))

    def vouchers_of_holder(
        self, holder_hash: bytes, after: uuid.UUID | None = None, limit: int = 50
    ) -> list[views.VoucherView]:
        return self.unit_of_work.read(lambda c: views.vouchers_of_holder(c, holder_hash, after, limit))

    def history(
        self, voucher_id: uuid.UUID, after_timestamp: int = -1, limit: int = views.PAGE_HISTORY_MAX
    ) -> list[views.VoucherStep]:
        return self.unit_of_work.read(lambda c: views.voucher_history(c, voucher_id, after_timestamp, limit))

    def token(self, voucher_id: uuid.UUID) -> str | None:
        return self.unit_of_work.read(lambda c: views.voucher_token(c, voucher_id))

    def now(self) -> int:
        """The ledger clock's current time (ledger nanoseconds)."""
        return self.unit_of_work.run(reserve_timestamps)


def _log(operation: str, results: Sequence[Any], started: float) -> None:
    log.info(
        operation,
        events=len(results),
        results=dict(Counter(getattr(result, "name", str(result)) for result in results)),
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
    )
