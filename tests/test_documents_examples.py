"""Worked examples the other document tests build on: a school canteen's October act and its invoice.

The figures are written by hand, as an accountant would check them: 2 400 breakfasts at 650,00 ₸ and 1 800
lunches at 1 100,00 ₸ give 1 560 000,00 + 1 980 000,00 = 3 540 000,00 ₸.
"""

import datetime as dt

from ledger.identity import BinEntityType, make_valid_bin, make_valid_kz_iban
from ledger.ids import new_id
from treasury.documents import (
    BankDetails,
    ContractReference,
    Party,
    Redemption,
    ServiceAct,
    VatRate,
    build_service_act,
    invoice_from_act,
)

CUSTOMER_BIN = make_valid_bin(2003, 5, BinEntityType.resident, 1201)
CONTRACTOR_BIN = make_valid_bin(2015, 9, BinEntityType.resident, 4477)
KAZAKH_LETTERS = "әғқңөұүһі"
# Every letter Kazakh adds to Russian's alphabet, both cases, in one provider's (made-up) name.
CONTRACTOR_NAME = "ТОО «Әсем Ғалым Қазына Ңөл Өнер Ұлан Үміт Һәм Іскер» (әғқңөұүһі)"

CUSTOMER = Party(
    name="ГУ «Отдел образования города Астаны»",
    bin=CUSTOMER_BIN,
    address="010000, г. Астана, пр. Мәңгілік Ел, 8",
    bank=BankDetails(
        iban=make_valid_kz_iban("070", "1234567890123"),
        bank_name="РГУ «Комитет казначейства Министерства финансов РК»",
        bic="KKMFKZ2A",
    ),
)
CONTRACTOR = Party(
    name=CONTRACTOR_NAME,
    bin=CONTRACTOR_BIN,
    address="050000, г. Алматы, ул. Төле би, 101",
    bank=BankDetails(
        iban=make_valid_kz_iban("601", "000KZT0000001"),
        bank_name="АО «Народный Банк Казахстана»",
        bic="HSBKKZKX",
    ),
)
CONTRACT = ContractReference(
    number="ШП-2026/117",
    date=dt.date(2026, 1, 15),
    programme="Горячее питание учащихся 1–4 классов / 1–4 сынып оқушыларын ыстық тамақпен қамтамасыз ету",
    kbk="464 003 015",
)
OCTOBER_START = dt.date(2026, 10, 1)
OCTOBER_END = dt.date(2026, 10, 31)
BREAKFASTS = 2400
BREAKFAST_PRICE_TIYN = 65_000
LUNCHES = 1800
LUNCH_PRICE_TIYN = 110_000
OCTOBER_TOTAL_TIYN = 354_000_000  # 3 540 000,00 ₸


def redemption(service: str, unit_price_tiyn: int, quantity: int = 1, unit: str = "порция") -> Redemption:
    return Redemption(
        id=new_id(),
        service=service,
        unit=unit,
        unit_price_tiyn=unit_price_tiyn,
        quantity=quantity,
        amount_tiyn=quantity * unit_price_tiyn,
    )


def october_redemptions() -> list[Redemption]:
    """One redemption per meal served, breakfasts and lunches interleaved as the canteen recorded them."""
    breakfasts = [redemption("Завтрак / Таңғы ас", BREAKFAST_PRICE_TIYN) for _ in range(BREAKFASTS)]
    lunches = [redemption("Обед / Түскі ас", LUNCH_PRICE_TIYN) for _ in range(LUNCHES)]
    return [meal for pair in zip(breakfasts, lunches, strict=False) for meal in pair] + breakfasts[LUNCHES:]


def october_act(redemptions: list[Redemption] | None = None, **changes: object) -> ServiceAct:
    arguments: dict[str, object] = {
        "number": "АКТ-2026-10-0042",
        "date": OCTOBER_END,
        "customer": CUSTOMER,
        "contractor": CONTRACTOR,
        "contract": CONTRACT,
        "period_start": OCTOBER_START,
        "period_end": OCTOBER_END,
        "redemptions": october_redemptions() if redemptions is None else redemptions,
    }
    arguments.update(changes)
    return build_service_act(**arguments)  # type: ignore[arg-type]


def october_invoice(act: ServiceAct | None = None, vat_rate: VatRate = VatRate.exempt):
    return invoice_from_act(
        october_act() if act is None else act,
        number="СФ-2026-0042",
        date=dt.date(2026, 11, 2),
        vat_rate=vat_rate,
    )


def test_the_october_act_prices_each_meal_once():
    act = october_act()

    assert [(line.service, line.quantity, line.unit_price_tiyn, line.amount_tiyn) for line in act.lines] == [
        ("Завтрак / Таңғы ас", 2400, 65_000, 156_000_000),
        ("Обед / Түскі ас", 1800, 110_000, 198_000_000),
    ]
    assert act.total_tiyn == OCTOBER_TOTAL_TIYN
    assert act.redemption_count == BREAKFASTS + LUNCHES


def test_the_october_invoice_bills_the_act_without_vat_for_an_exempt_service():
    invoice = october_invoice()

    assert invoice.seller == CONTRACTOR
    assert invoice.buyer == CUSTOMER
    assert invoice.act_number == "АКТ-2026-10-0042"
    assert invoice.turnover_date == OCTOBER_END
    assert (invoice.total_without_vat_tiyn, invoice.total_vat_tiyn, invoice.total_with_vat_tiyn) == (
        OCTOBER_TOTAL_TIYN,
        0,
        OCTOBER_TOTAL_TIYN,
    )


def test_the_october_invoice_at_twelve_percent_adds_the_vat_on_top():
    invoice = october_invoice(vat_rate=VatRate.twelve_percent)

    # 12 % of 1 560 000,00 = 187 200,00 and of 1 980 000,00 = 237 600,00.
    assert [line.vat_tiyn for line in invoice.lines] == [18_720_000, 23_760_000]
    assert invoice.total_vat_tiyn == 42_480_000
    assert invoice.total_with_vat_tiyn == 396_480_000
