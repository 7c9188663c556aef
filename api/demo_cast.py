"""Who and what the demo story is about: three programmes (school meals in Astana, free medicines, a gas
discount paid in digital tenge), the officers who run them, the canteens, the pharmacy and QazaqGaz, and
the pupils, patients and households — with valid IINs, BINs and IBANs, generated reproducibly."""

import datetime as dt
import random
import uuid
from dataclasses import dataclass
from typing import Any, Final

from ledger.identity import BinEntityType, Sex, make_valid_bin, make_valid_iin, make_valid_kz_iban
from ledger.ids import derived_id
from ledger.money import Asset
from ledger.vouchers.policy import Policy, parse_policy
from ledger.vouchers.states import ProviderCategory
from treasury.programmes import PayingAuthority, ProgrammeDraft

DEMO_NAMESPACE: Final = uuid.UUID("0b5c3f0e-9a51-4d1b-8a8e-2f3c0a7d5e11")
PUPILS: Final = 1000
PATIENTS: Final = 20
HOUSEHOLDS: Final = 50
MEAL_PRICE_TIYN: Final = 65_000  # 650 tenge a hot meal
MEALS_PER_PUPIL: Final = 20  # a month of school days
GAS_DISCOUNT_TIYN_PER_M3: Final = 2_500  # 25 tenge off every m³
GAS_M3_PER_MONTH: Final = 150
OFFICER_MAKER: Final = "Айгүл Сәрсенова, Комитет казначейства"
OFFICER_CHECKER: Final = "Нұрлан Әбілов, Комитет казначейства"
SCHOOLS: Final = ("Мектеп-гимназия №12", "Школа-лицей №45", "Мектеп №78")


def demo_id(*parts: object) -> uuid.UUID:
    """Ids are derived from names, so the story is the same story every time it is told."""
    return derived_id(DEMO_NAMESPACE, *parts)


@dataclass(frozen=True, slots=True)
class Cast:
    """The demo's programmes and providers (ids fixed by name)."""

    meals: ProgrammeDraft
    medicines: ProgrammeDraft
    gas: ProgrammeDraft
    canteens: tuple[tuple[uuid.UUID, str, str], ...]  # (provider id, BIN, name)
    pharmacy: tuple[uuid.UUID, str, str]
    gas_utility: tuple[uuid.UUID, str, str]


def _bin(serial: int) -> str:
    return make_valid_bin(2009, 4, BinEntityType.resident, 20_000 + serial)


def _authority(name: str, serial: int) -> PayingAuthority:
    return PayingAuthority(
        name=name,
        bin=_bin(serial),
        address="Астана, Есіл ауданы, Мәңгілік Ел даңғылы, 8",
        iban=make_valid_kz_iban("070", f"FT{serial:011d}"),
        bank_name="РГУ «Комитет казначейства Министерства финансов РК»",
        bic="KKMFKZ2A",
    )


def _programme(
    code: str, name: str, kbk: str, asset: Asset, start: dt.date, serial: int, vat: str
) -> ProgrammeDraft:
    return ProgrammeDraft(
        id=demo_id("programme", code),
        code=code,
        name=name,
        kbk=kbk,
        region="Астана",
        period_start=start,
        period_end=dt.date(start.year + 1, 5, 31) if start.month > 5 else dt.date(start.year, 12, 31),
        asset=asset,
        budget_ceiling_tiyn=2_000_000_000_00,
        approval_threshold_tiyn=50_000_000_00,
        vat_rate=vat,
        budget_account_id=demo_id("budget", code),
        fund_account_id=demo_id("fund", code),
        customer=_authority("ГУ «Управление образования города Астаны»" if serial == 1 else
                            "ГУ «Управление здравоохранения и соцзащиты города Астаны»", serial),
    )  # fmt: skip


def cast_for(first_day: dt.date) -> Cast:
    """The programmes run from `first_day` (the first day of the month the story takes place in)."""
    canteens = tuple(
        (demo_id("canteen", n), _bin(10 + n), f"ТОО «Асхана-{n + 1}» (столовая: {school})")
        for n, school in enumerate(SCHOOLS)
    )
    return Cast(
        meals=_programme("SM-DEMO-AST", "Бесплатное горячее питание 1–4 классов", "251 027 015",
                         Asset.KZT, first_day, 1, "exempt"),
        medicines=_programme("MED-DEMO-AST", "Бесплатные лекарства (АЛО)", "253 067 100", Asset.KZT,
                             first_day, 2, "exempt"),
        gas=_programme("GAS-DEMO-AST", "Скидка на газ получателям АСП", "213 057 000", Asset.DIGITAL_KZT,
                       first_day, 3, "16"),
        canteens=canteens,
        pharmacy=(demo_id("pharmacy"), _bin(30), "ТОО «Дәрі-Фарм» (аптека №3)"),
        gas_utility=(demo_id("qazaqgaz"), _bin(40), "АО «QazaqGaz Аймақ»"),
    )  # fmt: skip


def meals_policy(first_day: dt.date, last_day: dt.date) -> Policy:
    return parse_policy(
        {
            "purpose": "school_meals", "provider_categories": ["canteen"],
            "valid_from": first_day.isoformat(), "valid_until": last_day.isoformat(),
            "service": {"name": "Ыстық тамақ / Горячее питание", "unit": "порция"},
            "consent_required": True, "activation_required": True, "partial_redemption": True,
            "price_per_use_tiyn": MEAL_PRICE_TIYN, "period": "day", "period_uses_max": 1,
            "service_weekdays": [1, 2, 3, 4, 5], "offline_limit_tiyn": 100 * MEAL_PRICE_TIYN,
        }
    )  # fmt: skip


def medicines_policy(first_day: dt.date, last_day: dt.date) -> Policy:
    return parse_policy(
        {
            "purpose": "medicines", "provider_categories": ["pharmacy"],
            "valid_from": first_day.isoformat(), "valid_until": last_day.isoformat(),
            "service": {"name": "Дәрілік заттар / Лекарственные средства", "unit": "уп."},
            "consent_required": False, "activation_required": False, "items_required": True,
            "reservation_timeout_s": 3600,
        }
    )  # fmt: skip


def gas_policy(first_day: dt.date, last_day: dt.date) -> Policy:
    return parse_policy(
        {
            "purpose": "gas", "provider_categories": ["gas_utility"],
            "valid_from": first_day.isoformat(), "valid_until": last_day.isoformat(),
            "service": {"name": "Газға жеңілдік / Скидка на газ", "unit": "м³"},
            "consent_required": False, "activation_required": True, "activation_days": [7, 29],
            "unit_price_tiyn": GAS_DISCOUNT_TIYN_PER_M3, "period": "month",
            "period_units_max": GAS_M3_PER_MONTH,
        }
    )  # fmt: skip


# (ATC code, name, price of one pack in tiyn)
PRESCRIBED: Final = (
    ("ATC-N02BE01", "Парацетамол 500 мг", 185_000),
    ("ATC-R03AC02", "Сальбутамол, ингалятор", 290_000),
    ("ATC-A10BA02", "Метформин 850 мг", 120_000),
)
PRESCRIPTION_TIYN: Final = 1_000_000  # 10 000 tenge of medicines per prescription


def people(kind: str, count: int, born: dt.date) -> list[str]:
    """`count` distinct valid IINs, the same every time for the same kind."""
    rng = random.Random(f"amiyan-demo-{kind}")
    seen: set[str] = set()
    while len(seen) < count:
        day = born + dt.timedelta(days=rng.randrange(0, 4 * 365))
        seen.add(make_valid_iin(day, rng.choice((Sex.male, Sex.female)), rng.randrange(0, 9000)))
    return sorted(seen)


def eligibility_csv(rows: list[dict[str, Any]]) -> str:
    columns = ["iin", "entitlement", "items", "key"]
    lines = [",".join(columns)]
    lines += [",".join(str(row.get(column, "")) for column in columns) for row in rows]
    return "\n".join(lines) + "\n"


def provider_iban(serial: int) -> str:
    return make_valid_kz_iban("722", f"S{serial:012d}")


ALL_CATEGORIES: Final = {
    "canteen": ProviderCategory.CANTEEN,
    "pharmacy": ProviderCategory.PHARMACY,
    "gas_utility": ProviderCategory.GAS_UTILITY,
}
