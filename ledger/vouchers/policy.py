"""A programme's policy: the conditions wrapped around the money (Purpose Bound Money). Data, not code: a
policy is a JSON document, parsed and checked here, stored as canonical bytes, versioned, and each version
recorded in the audit log. A redemption is judged by the version in force when it happens.

Worked examples (see tests/test_voucher_policy.py):
- school meals: canteens only, one meal per school day (Mon–Fri) at a set price of 600 tenge;
- gas: QazaqGaz only, at most 150 m³ a month, 25 tenge discount per m³;
- medicines: pharmacies, prescription items and quantities, two-phase dispensing.
"""

import datetime as dt
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from ledger.audit.canonical import CanonicalValue, canonical_bytes, parse_canonical
from ledger.limits import AMOUNT_TIYN_MAX
from ledger.vouchers.states import PROVIDER_CATEGORY_NAMES, ProviderCategory

PURPOSE_PATTERN: Final = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
KNOWN_PURPOSES: Final = frozenset({"school_meals", "medicines", "gas", "clubs", "social_goods"})
NAMED_PROVIDERS_MAX: Final = 1000
UNITS_MAX: Final = 10**12
TEXT_CHARS_MAX: Final = 200
OFFER_DAYS_MAX: Final = 366
RESERVATION_TIMEOUT_S_MAX: Final = 7 * 24 * 3600
NO_LIMIT: Final = 2**62  # "unlimited" as stored in integer limit columns


class Period(StrEnum):
    NONE = "none"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class PolicyError(ValueError):
    """A policy document that breaks a rule; `field` names where."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True, slots=True)
class Service:
    """What the acts call one use: «Горячее питание» per «порция», «Газ» per «м³»."""

    name: str
    unit: str


@dataclass(frozen=True, slots=True)
class Policy:
    purpose: str
    provider_categories: frozenset[ProviderCategory]
    named_providers: frozenset[uuid.UUID]
    valid_from: dt.date
    valid_until: dt.date
    service: Service
    consent_required: bool = True
    activation_required: bool = True
    # Days of the month on which a holder may activate (gas: 7th to 29th), inclusive; None = any day.
    activation_days: tuple[int, int] | None = None
    partial_redemption: bool = True
    # Every use must be exactly this amount (a set meal price); None = any amount.
    price_per_use_tiyn: int | None = None
    per_use_tiyn_max: int | None = None
    period: Period = Period.NONE
    period_uses_max: int | None = None
    period_tiyn_max: int | None = None
    period_units_max: int | None = None
    # Unit-priced vouchers (gas): a redemption states units, and amount = units × unit_price_tiyn.
    unit_price_tiyn: int | None = None
    items_required: bool = False
    # ISO weekdays (1 = Monday) on which the service may be redeemed.
    service_weekdays: frozenset[int] = field(default_factory=lambda: frozenset(range(1, 8)))
    # How much a terminal may accept offline per business day; 0 = no offline acceptance.
    offline_limit_tiyn: int = 0
    offer_days: int = 30
    reservation_timeout_s: int = 3600

    def allows_provider(self, category: int, provider_id: uuid.UUID) -> bool:
        return category in self.provider_categories or provider_id in self.named_providers

    def is_service_day(self, day: dt.date) -> bool:
        return day.isoweekday() in self.service_weekdays

    def in_window(self, day: dt.date) -> bool:
        return self.valid_from <= day <= self.valid_until


def period_start(period: Period, day: dt.date) -> dt.date:
    """The first day of the period `day` falls in; for NONE, a fixed date (one period for ever)."""
    if period is Period.DAY:
        return day
    if period is Period.WEEK:
        return day - dt.timedelta(days=day.isoweekday() - 1)
    if period is Period.MONTH:
        return day.replace(day=1)
    return dt.date(2000, 1, 1)


def limit_or_none(value: int | None) -> int:
    """A limit as stored in a column: None (no limit) becomes NO_LIMIT."""
    return NO_LIMIT if value is None else value


def parse_policy(document: Mapping[str, object]) -> Policy:
    """A Policy from its JSON form; raises PolicyError naming the first field that is wrong."""
    reader = _Reader(document)
    policy = Policy(
        purpose=reader.purpose(),
        provider_categories=reader.categories(),
        named_providers=reader.named_providers(),
        valid_from=reader.date("valid_from"),
        valid_until=reader.date("valid_until"),
        service=reader.service(),
        consent_required=reader.boolean("consent_required", True),
        activation_required=reader.boolean("activation_required", True),
        activation_days=reader.activation_days(),
        partial_redemption=reader.boolean("partial_redemption", True),
        price_per_use_tiyn=reader.amount("price_per_use_tiyn"),
        per_use_tiyn_max=reader.amount("per_use_tiyn_max"),
        period=reader.period(),
        period_uses_max=reader.count("period_uses_max", 10**6),
        period_tiyn_max=reader.amount("period_tiyn_max"),
        period_units_max=reader.count("period_units_max", UNITS_MAX),
        unit_price_tiyn=reader.amount("unit_price_tiyn"),
        items_required=reader.boolean("items_required", False),
        service_weekdays=reader.weekdays(),
        offline_limit_tiyn=reader.count("offline_limit_tiyn", AMOUNT_TIYN_MAX) or 0,
        offer_days=reader.count("offer_days", OFFER_DAYS_MAX, minimum=1) or 30,
        reservation_timeout_s=reader.count("reservation_timeout_s", RESERVATION_TIMEOUT_S_MAX, minimum=1)
        or 3600,
    )
    reader.finish()
    _check_coherent(policy)
    return policy


def parse_policy_bytes(data: bytes) -> Policy:
    value = parse_canonical(data)
    if not isinstance(value, dict):
        raise PolicyError("policy", "must be a JSON object")
    return parse_policy(value)


def policy_document(policy: Policy) -> dict[str, CanonicalValue]:
    """The JSON form of a policy (what is stored, hashed and logged); parse_policy reads it back."""
    document: dict[str, CanonicalValue] = {
        "purpose": policy.purpose,
        "provider_categories": sorted(c.name.lower() for c in policy.provider_categories),
        "named_providers": sorted(str(p) for p in policy.named_providers),
        "valid_from": policy.valid_from.isoformat(),
        "valid_until": policy.valid_until.isoformat(),
        "service": {"name": policy.service.name, "unit": policy.service.unit},
        "consent_required": policy.consent_required,
        "activation_required": policy.activation_required,
        "partial_redemption": policy.partial_redemption,
        "period": policy.period.value,
        "items_required": policy.items_required,
        "service_weekdays": sorted(policy.service_weekdays),
        "offline_limit_tiyn": policy.offline_limit_tiyn,
        "offer_days": policy.offer_days,
        "reservation_timeout_s": policy.reservation_timeout_s,
    }
    if policy.activation_days is not None:
        document["activation_days"] = list(policy.activation_days)
    optional = {
        "price_per_use_tiyn": policy.price_per_use_tiyn,
        "per_use_tiyn_max": policy.per_use_tiyn_max,
        "period_uses_max": policy.period_uses_max,
        "period_tiyn_max": policy.period_tiyn_max,
        "period_units_max": policy.period_units_max,
        "unit_price_tiyn": policy.unit_price_tiyn,
    }
    document.update({name: value for name, value in optional.items() if value is not None})
    return document


def policy_bytes(policy: Policy) -> bytes:
    return canonical_bytes(policy_document(policy))


def _check_coherent(policy: Policy) -> None:
    if policy.valid_until < policy.valid_from:
        raise PolicyError("valid_until", "is before valid_from")
    if not policy.provider_categories and not policy.named_providers:
        raise PolicyError("provider_categories", "a policy must allow some category or named provider")
    if policy.period is Period.NONE and policy.period_uses_max is not None:
        raise PolicyError("period_uses_max", "needs a period (day, week or month)")
    if policy.price_per_use_tiyn is not None and policy.unit_price_tiyn is not None:
        raise PolicyError("unit_price_tiyn", "a policy prices either per use or per unit, not both")
    if policy.period_units_max is not None and policy.unit_price_tiyn is None:
        raise PolicyError("period_units_max", "needs unit_price_tiyn (a unit-priced policy)")
    if policy.items_required and policy.unit_price_tiyn is not None:
        raise PolicyError("items_required", "prescription items and unit pricing do not mix")
    if policy.activation_days is not None and not policy.activation_required:
        raise PolicyError("activation_days", "only means something when activation_required is true")


class _Reader:
    """Reads fields off a JSON object, remembering which it used so unknown ones are refused."""

    def __init__(self, document: Mapping[str, object]) -> None:
        if not isinstance(document, Mapping):
            raise PolicyError("policy", "must be a JSON object")
        self.document = document
        self.used: set[str] = set()

    def get(self, name: str) -> object:
        self.used.add(name)
        return self.document.get(name)

    def finish(self) -> None:
        unknown = sorted(set(self.document) - self.used)
        if unknown:
            raise PolicyError(unknown[0], "is not a policy field")

    def purpose(self) -> str:
        value = self.get("purpose")
        if not isinstance(value, str) or not PURPOSE_PATTERN.match(value):
            raise PolicyError("purpose", "must be a lower-case identifier such as school_meals")
        return value

    def categories(self) -> frozenset[ProviderCategory]:
        value = self.get("provider_categories")
        if value is None:
            return frozenset()
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise PolicyError("provider_categories", "must be a list of category names")
        unknown = [item for item in value if item not in PROVIDER_CATEGORY_NAMES]
        if unknown:
            known = ", ".join(sorted(PROVIDER_CATEGORY_NAMES))
            raise PolicyError("provider_categories", f"unknown category {unknown[0]!r} (known: {known})")
        return frozenset(PROVIDER_CATEGORY_NAMES[item] for item in value)

    def named_providers(self) -> frozenset[uuid.UUID]:
        value = self.get("named_providers")
        if value is None:
            return frozenset()
        if not isinstance(value, list) or len(value) > NAMED_PROVIDERS_MAX:
            raise PolicyError("named_providers", f"must be a list of at most {NAMED_PROVIDERS_MAX} ids")
        try:
            return frozenset(uuid.UUID(str(item)) for item in value)
        except ValueError:
            raise PolicyError("named_providers", "every entry must be a provider id (UUID)") from None

    def date(self, name: str) -> dt.date:
        value = self.get(name)
        try:
            return dt.date.fromisoformat(str(value)) if isinstance(value, str) else _no_date()
        except ValueError:
            raise PolicyError(name, "must be a date YYYY-MM-DD") from None

    def service(self) -> Service:
        value = self.get("service")
        if not isinstance(value, dict) or set(value) != {"name", "unit"}:
            raise PolicyError("service", 'must be {"name": ..., "unit": ...}')
        name, unit = value["name"], value["unit"]
        for text, label in ((name, "service.name"), (unit, "service.unit")):
            if not isinstance(text, str) or not 0 < len(text) <= TEXT_CHARS_MAX:
                raise PolicyError(label, f"must be text of 1 to {TEXT_CHARS_MAX} characters")
        return Service(name=str(name), unit=str(unit))

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise PolicyError(name, "must be true or false")
        return value

    def count(self, name: str, maximum: int, minimum: int = 0) -> int | None:
        value = self.get(name)
        if value is None:
            return None
        if type(value) is not int or not minimum <= value <= maximum:
            raise PolicyError(name, f"must be an integer from {minimum} to {maximum}")
        return value

    def amount(self, name: str) -> int | None:
        return self.count(name, AMOUNT_TIYN_MAX, minimum=1)

    def period(self) -> Period:
        value = self.get("period")
        if value is None:
            return Period.NONE
        if value not in {member.value for member in Period}:
            raise PolicyError("period", "must be one of none, day, week, month")
        return Period(str(value))

    def activation_days(self) -> tuple[int, int] | None:
        value = self.get("activation_days")
        if value is None:
            return None
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(type(day) is int and 1 <= day <= 31 for day in value)
            or value[0] > value[1]
        ):
            raise PolicyError("activation_days", "must be [first, last] days of the month, 1 to 31")
        return (value[0], value[1])

    def weekdays(self) -> frozenset[int]:
        value = self.get("service_weekdays")
        if value is None:
            return frozenset(range(1, 8))
        if not isinstance(value, list) or not value or not all(type(d) is int and 1 <= d <= 7 for d in value):
            raise PolicyError("service_weekdays", "must be a non-empty list of ISO weekdays 1 (Mon) to 7")
        return frozenset(value)


def _no_date() -> dt.date:
    raise ValueError("not a string")
