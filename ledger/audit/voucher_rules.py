"""The voucher rules, as an auditor replays them from the log alone.

The ledger rows say how money moved; the voucher events (JSON) say why. `VoucherRules` reads the events of
programmes, policies, providers, vouchers, redemptions and reversals, and the replay hands it every transfer
out of a voucher account (`check_spend`). What it checks, each at the entry that breaks it:

    non-cashable  a transfer out of a voucher credits only its own fund, or the receivable of a provider
                  enrolled in the voucher's programme whose category (or name) the policy version in force
                  at the transfer's ledger time allows — the core's rule, re-proved from the log alone
    programmes    a voucher is issued from a registered programme's own fund or sub-fund
    redemptions   each redemption (single or reservation) has its transfer: same voucher, amount, and the
                  receivable of the provider it names; and (at the end) no voucher paid a provider without a
                  redemption record
    periods       no redemption is dated on or before its programme's closed-through date; closes move on
    two-phase     a post or void resolves a reservation of the same voucher once; a post never exceeds it
    reversals     once per redemption, of a single or post, back to the voucher or to its own fund

State is a JSON-able dict (`to_state` / `from_state`) carried in the replay's state, so an incremental audit
continues where the last one stopped.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ledger.audit.replay_rules import ReplayError

_CATEGORY_CODES: Final = {"canteen": 1, "pharmacy": 2, "gas_utility": 3, "club": 4, "shop": 5}
_SINGLE, _RESERVE, _POST, _VOID = 1, 2, 3, 4


def _id(value: object, what: str, index: int) -> bytes:
    try:
        return uuid.UUID(str(value)).bytes
    except ValueError:
        raise ReplayError(index, f"{what}: {value!r} is not an id") from None


def _n(value: bytes) -> str:
    """An id as people read it."""
    return str(uuid.UUID(bytes=value))


def _int(fields: Mapping[str, object], name: str, index: int) -> int:
    value = fields.get(name)
    if type(value) is not int:
        raise ReplayError(index, f"{name}: {value!r} is not an integer")
    return value


@dataclass(slots=True)
class _Programme:
    fund: bytes
    valid_from: list[int] = field(default_factory=list)
    allowed: list[tuple[list[int], list[bytes]]] = field(default_factory=list)
    closed_through: str | None = None  # ISO date


@dataclass(slots=True)
class _Voucher:
    programme: bytes
    fund: bytes


class VoucherRules:
    def __init__(self) -> None:
        self.programmes: dict[bytes, _Programme] = {}
        self.funds: dict[bytes, bytes] = {}
        self.categories: dict[bytes, int] = {}
        self.receivers: dict[bytes, tuple[bytes, bytes]] = {}  # receivable → (programme, provider)
        self.enrolled: dict[tuple[bytes, bytes], bytes] = {}  # (programme, provider) → receivable
        self.vouchers: dict[bytes, _Voucher] = {}
        self.reservations: dict[bytes, tuple[bytes, int]] = {}  # open: id → (voucher, amount)
        self.spends: dict[bytes, tuple[bytes, int]] = {}  # single/post redemption id → (voucher, amount)
        self.reversed: set[bytes] = set()
        # Spends to a provider seen in the ledger rows, waiting for their redemption record: id → (voucher,
        # receivable, amount). Matched records leave, so this stays small.
        self.unrecorded: dict[bytes, tuple[bytes, bytes, int]] = {}

    def handlers(self) -> dict[str, Any]:
        return {
            "programme_registered": self._programme,
            "fund_added": self._fund,
            "policy_recorded": self._policy,
            "provider_registered": self._provider,
            "provider_enrolled": self._enrolment,
            "period_closed": self._period_closed,
            "voucher_issued": self._issued,
            "redemption": self._redemption,
            "reservation_lapsed": self._lapsed,
            "redemption_reversed": self._reversed,
        }

    def check_spend(
        self, index: int, transfer_id: bytes, voucher_id: bytes, credit_id: bytes, amount: int, timestamp: int
    ) -> None:
        """A transfer out of voucher `voucher_id` (single-phase or a reservation)."""
        voucher = self.vouchers[voucher_id]
        if credit_id == voucher.fund:
            return
        receiver = self.receivers.get(credit_id)
        if receiver is None or receiver[0] != voucher.programme:
            raise ReplayError(
                index, f"voucher {_n(voucher_id)} paid {_n(credit_id)}: not its fund nor its providers"
            )
        if not self._allowed(voucher.programme, receiver[1], timestamp):
            raise ReplayError(
                index, f"voucher {_n(voucher_id)} paid {_n(receiver[1])}, whom the policy does not allow"
            )
        self.unrecorded[transfer_id] = (voucher_id, credit_id, amount)

    def _allowed(self, programme: bytes, provider: bytes, timestamp: int) -> bool:
        record = self.programmes[programme]
        position = bisect.bisect_right(record.valid_from, timestamp) - 1
        categories, named = record.allowed[position] if position >= 0 else ([], [])
        return self.categories.get(provider) in categories or provider in named

    # -- registrations -------------------------------------------------------------------------------

    def _programme(self, index: int, fields: Mapping[str, object]) -> None:
        programme = _id(fields.get("programme"), "programme", index)
        fund = _id(fields.get("fund_account"), "fund_account", index)
        if programme in self.programmes:
            raise ReplayError(index, f"programme {_n(programme)} registered twice")
        self.programmes[programme] = _Programme(fund)
        self.funds[fund] = programme

    def _fund(self, index: int, fields: Mapping[str, object]) -> None:
        programme = self._known_programme(fields.get("programme"), index)
        self.funds[_id(fields.get("account"), "account", index)] = programme

    def _policy(self, index: int, fields: Mapping[str, object]) -> None:
        record = self.programmes[self._known_programme(fields.get("programme"), index)]
        policy = fields.get("policy")
        if not isinstance(policy, dict):
            raise ReplayError(index, "policy_recorded: policy is not an object")
        categories = [_CATEGORY_CODES.get(str(name), -1) for name in policy.get("provider_categories", [])]
        named = [_id(p, "named_providers", index) for p in policy.get("named_providers", [])]
        valid_from = _int(fields, "valid_from", index)
        position = bisect.bisect_right(record.valid_from, valid_from)
        record.valid_from.insert(position, valid_from)
        record.allowed.insert(position, (categories, named))

    def _provider(self, index: int, fields: Mapping[str, object]) -> None:
        self.categories[_id(fields.get("provider"), "provider", index)] = _int(fields, "category", index)

    def _enrolment(self, index: int, fields: Mapping[str, object]) -> None:
        programme = self._known_programme(fields.get("programme"), index)
        provider = _id(fields.get("provider"), "provider", index)
        if provider not in self.categories:
            raise ReplayError(index, f"enrolment of unregistered provider {_n(provider)}")
        receivable = _id(fields.get("receivable_account"), "receivable_account", index)
        self.receivers[receivable] = (programme, provider)
        self.enrolled[(programme, provider)] = receivable

    def _period_closed(self, index: int, fields: Mapping[str, object]) -> None:
        record = self.programmes[self._known_programme(fields.get("programme"), index)]
        through = str(fields.get("through"))
        if record.closed_through is not None and through <= record.closed_through:
            raise ReplayError(
                index, f"period close through {through} does not move past {record.closed_through}"
            )
        record.closed_through = through

    def _known_programme(self, value: object, index: int) -> bytes:
        programme = _id(value, "programme", index)
        if programme not in self.programmes:
            raise ReplayError(index, f"unknown programme {value}")
        return programme

    # -- vouchers --------------------------------------------------------------------------------------

    def _issued(self, index: int, fields: Mapping[str, object]) -> None:
        voucher = _id(fields.get("voucher"), "voucher", index)
        programme = self._known_programme(fields.get("programme"), index)
        fund = _id(fields.get("fund_account"), "fund_account", index)
        if self.funds.get(fund) != programme:
            raise ReplayError(index, f"voucher {_n(voucher)} issued from a fund not of its programme")
        if voucher in self.vouchers:
            raise ReplayError(index, f"voucher {_n(voucher)} issued twice")
        amount = _int(fields, "amount_tiyn", index)
        if amount <= 0:
            raise ReplayError(index, f"voucher {_n(voucher)} issued for {amount}")
        self.vouchers[voucher] = _Voucher(programme, fund)

    def _voucher(self, value: object, index: int) -> _Voucher:
        found = self.vouchers.get(_id(value, "voucher", index))
        if found is None:
            raise ReplayError(index, f"unknown voucher {value}")
        return found

    def _redemption(self, index: int, fields: Mapping[str, object]) -> None:
        redemption = _id(fields.get("id"), "id", index)
        voucher_id = _id(fields.get("voucher"), "voucher", index)
        voucher = self._voucher(fields.get("voucher"), index)
        phase, amount = _int(fields, "phase", index), _int(fields, "amount_tiyn", index)
        if phase in (_SINGLE, _RESERVE):
            self._check_payee(index, voucher, fields)
            self._match_transfer(index, redemption, voucher_id, voucher, fields, amount)
        if phase in (_POST, _VOID):
            reserved = _id(fields.get("reserved_id"), "reserved_id", index)
            opened = self.reservations.pop(reserved, None)
            if opened is None or opened[0] != voucher_id:
                raise ReplayError(index, f"redemption {_n(redemption)} resolves no open reservation")
            if phase == _POST and amount > opened[1]:
                raise ReplayError(index, f"post {_n(redemption)} exceeds its reservation")
        if phase == _RESERVE:
            self.reservations[redemption] = (voucher_id, amount)
        elif phase in (_SINGLE, _POST):
            self.spends[redemption] = (voucher_id, amount)

    def _match_transfer(
        self,
        index: int,
        redemption: bytes,
        voucher_id: bytes,
        voucher: _Voucher,
        fields: Mapping[str, object],
        amount: int,
    ) -> None:
        """The redemption's own transfer (same id) came first: same voucher, amount and provider."""
        provider = _id(fields.get("provider"), "provider", index)
        paid = self.unrecorded.pop(redemption, None)
        expected = (voucher_id, self.enrolled.get((voucher.programme, provider)), amount)
        if paid != expected:
            raise ReplayError(index, f"redemption {_n(redemption)} does not match its transfer")

    def _check_payee(self, index: int, voucher: _Voucher, fields: Mapping[str, object]) -> None:
        provider = _id(fields.get("provider"), "provider", index)
        record = self.programmes[voucher.programme]
        if (voucher.programme, provider) not in self.enrolled:
            raise ReplayError(index, f"redemption pays provider {_n(provider)}, not enrolled")
        timestamp = _int(fields, "timestamp", index)
        position = bisect.bisect_right(record.valid_from, timestamp) - 1
        categories, named = record.allowed[position] if position >= 0 else ([], [])
        if self.categories.get(provider) not in categories and provider not in named:
            raise ReplayError(index, f"redemption pays provider {_n(provider)}, not allowed by the policy")
        day = str(fields.get("effective_date"))
        if record.closed_through is not None and day <= record.closed_through:
            raise ReplayError(
                index, f"redemption dated {day}, in a period closed through {record.closed_through}"
            )

    def _lapsed(self, index: int, fields: Mapping[str, object]) -> None:
        if self.reservations.pop(_id(fields.get("reservation"), "reservation", index), None) is None:
            raise ReplayError(index, "a lapsed reservation that was not open")

    def _reversed(self, index: int, fields: Mapping[str, object]) -> None:
        redemption = _id(fields.get("redemption"), "redemption", index)
        spent = self.spends.get(redemption)
        if spent is None or redemption in self.reversed:
            raise ReplayError(index, f"reversal of {_n(redemption)}: no such spend, or reversed before")
        self.reversed.add(redemption)
        voucher_id, amount = spent
        voucher = self.vouchers[voucher_id]
        credit = _id(fields.get("credit_account"), "credit_account", index)
        if _int(fields, "amount_tiyn", index) != amount or credit not in (voucher_id, voucher.fund):
            raise ReplayError(index, f"reversal of {_n(redemption)} moves other money than it spent")

    # -- the end -------------------------------------------------------------------------------------

    def finish(self) -> None:
        """No voucher paid a provider without a redemption record."""
        for transfer_id, (voucher_id, receivable, amount) in self.unrecorded.items():
            raise ReplayError(
                None,
                f"transfer {_n(transfer_id)} moved {amount} from voucher {_n(voucher_id)} to {_n(receivable)}"
                " with no redemption record",
            )

    def to_state(self) -> dict[str, object]:
        programmes = {
            p.hex(): [r.fund.hex(), r.valid_from, [[c, [n.hex() for n in named]] for c, named in r.allowed],
                      r.closed_through]
            for p, r in self.programmes.items()
        }  # fmt: skip
        vouchers = {v.hex(): [x.programme.hex(), x.fund.hex()] for v, x in self.vouchers.items()}
        return {
            "programmes": programmes,
            "funds": {f.hex(): p.hex() for f, p in self.funds.items()},
            "categories": {p.hex(): c for p, c in self.categories.items()},
            "receivers": {r.hex(): [p.hex(), q.hex()] for r, (p, q) in self.receivers.items()},
            "vouchers": vouchers,
            "reservations": {r.hex(): [v.hex(), a] for r, (v, a) in self.reservations.items()},
            "spends": {s.hex(): [v.hex(), a] for s, (v, a) in self.spends.items()},
            "reversed": sorted(r.hex() for r in self.reversed),
            "unrecorded": {t.hex(): [v.hex(), r.hex(), a] for t, (v, r, a) in self.unrecorded.items()},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> VoucherRules:
        rules = cls()
        b = bytes.fromhex
        for p, (fund, valid_from, allowed, closed) in state["programmes"].items():
            versions = [(list(categories), [b(n) for n in named]) for categories, named in allowed]
            rules.programmes[b(p)] = _Programme(b(fund), list(valid_from), versions, closed)
        rules.funds = {b(f): b(p) for f, p in state["funds"].items()}
        rules.categories = {b(p): int(c) for p, c in state["categories"].items()}
        rules.receivers = {b(r): (b(p), b(q)) for r, (p, q) in state["receivers"].items()}
        rules.enrolled = {value: receivable for receivable, value in rules.receivers.items()}
        rules.vouchers = {b(v): _Voucher(b(p), b(f)) for v, (p, f) in state["vouchers"].items()}
        rules.reservations = {b(r): (b(v), a) for r, (v, a) in state["reservations"].items()}
        rules.spends = {b(s): (b(v), a) for s, (v, a) in state["spends"].items()}
        rules.reversed = {b(r) for r in state["reversed"]}
        rules.unrecorded = {b(t): (b(v), b(r), a) for t, (v, r, a) in state["unrecorded"].items()}
        return rules
