"""PDF rendering: Kazakh and Russian text that reads back, the figures, and the same bytes every time."""

import datetime as dt
import io
import logging
import os
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.test_documents_examples import (
    CONTRACTOR_BIN,
    CONTRACTOR_NAME,
    CUSTOMER_BIN,
    KAZAKH_LETTERS,
    october_act,
    october_invoice,
    redemption,
)
from treasury.documents import (
    DocumentError,
    DocumentRule,
    Redemption,
    VatRate,
    act_json,
    document_hash,
    invoice_json,
    render_act_pdf,
    render_invoice_pdf,
)
from treasury.documents.pdf_layout import FONTS_DIRECTORY

ROOT = Path(__file__).resolve().parents[1]


def _text(pdf: bytes) -> str:
    """All pages' text with runs of whitespace made single spaces (cells wrap at word boundaries)."""
    pages = PdfReader(io.BytesIO(pdf)).pages
    return " ".join(" ".join(page.extract_text().split()) for page in pages)


def fixed_october_act():
    """The October act with ids fixed, so two processes build the very same act."""
    meals = [
        Redemption(
            id=uuid.UUID(int=index + 1),
            service=service,
            unit="порция",
            unit_price_tiyn=price,
            quantity=1,
            amount_tiyn=price,
        )
        for index, (service, price) in enumerate(
            [("Завтрак / Таңғы ас", 65_000)] * 2400 + [("Обед / Түскі ас", 110_000)] * 1800
        )
    ]
    return october_act(meals)


def test_the_act_reads_back_in_russian_and_kazakh_with_its_figures(caplog):
    act = october_act()
    with caplog.at_level(logging.WARNING):
        text = _text(render_act_pdf(act))

    assert not [record for record in caplog.records if "missing" in record.getMessage()], "a glyph is missing"
    for phrase in (
        "Акт оказанных услуг / Көрсетілген қызметтер актісі",
        "Заказчик / Тапсырыс беруші",
        "Исполнитель / Орындаушы",
        "БИН / БСН",
        CONTRACTOR_NAME,
        CUSTOMER_BIN,
        CONTRACTOR_BIN,
        "АКТ-2026-10-0042",
        "01.10.2026 – 31.10.2026",
        "464 003 015",
        "KZ33 6010 00KZ T000 0001",
        "Завтрак / Таңғы ас порция 2 400 650,00 1 560 000,00 2 400",
        "Обед / Түскі ас порция 1 800 1 100,00 1 980 000,00 1 800",
        "Итого / Барлығы 3 540 000,00",
        "Три миллиона пятьсот сорок тысяч тенге 00 тиын",
        "Сдал (Исполнитель) / Тапсырды (Орындаушы)",
        "Принял (Заказчик) / Қабылдады (Тапсырыс беруші)",
        "М.П. / М.О.",
        document_hash(act_json(act)).hex(),
    ):
        assert phrase in text, phrase
    for letter in KAZAKH_LETTERS + KAZAKH_LETTERS.upper():
        assert letter in text, letter


def test_the_invoice_reads_back_with_vat_and_both_parties_bank_details():
    invoice = october_invoice(vat_rate=VatRate.twelve_percent)
    text = _text(render_invoice_pdf(invoice))

    for phrase in (
        "Счёт-фактура / Шот-фактура",
        "Продавец / Сатушы",
        "Покупатель / Сатып алушы",
        "ҚҚС",
        CUSTOMER_BIN,
        CONTRACTOR_BIN,
        "HSBKKZKX",
        "KKMFKZ2A",
        "№ АКТ-2026-10-0042",
        "Завтрак / Таңғы ас порция 2 400 650,00 1 560 000,00 12% 187 200,00 1 747 200,00",
        "Всего по счёту / Шот бойынша барлығы 3 540 000,00 424 800,00 3 964 800,00",
        "Три миллиона девятьсот шестьдесят четыре тысячи восемьсот тенге 00 тиын",
        document_hash(invoice_json(invoice)).hex(),
    ):
        assert phrase in text, phrase


def test_an_exempt_line_says_so():
    text = _text(render_invoice_pdf(october_invoice(vat_rate=VatRate.exempt)))

    assert "Без НДС / ҚҚС-сыз" in text
    assert "Три миллиона пятьсот сорок тысяч тенге 00 тиын" in text


def test_an_adjustment_act_says_what_it_corrects_and_totals_in_minus():
    reversal = redemption("Обед / Түскі ас", 110_000, quantity=-3)
    act = october_act([reversal], number="АКТ-2026-11-0007", corrects="АКТ-2026-10-0042")

    text = _text(render_act_pdf(act))

    assert "Корректировочный акт оказанных услуг / Көрсетілген қызметтердің түзету актісі" in text
    assert "Корректирует акт / Түзетілетін акт № АКТ-2026-10-0042" in text
    assert "Итого / Барлығы -3 300,00" in text
    assert "Минус три тысячи триста тенге 00 тиын" in text


def test_a_character_the_font_cannot_draw_is_refused_rather_than_dropped():
    act = october_act([redemption("Яблоки 🍎 / Алма", 30_000)])

    with pytest.raises(DocumentError) as refused:
        render_act_pdf(act)
    assert refused.value.rule is DocumentRule.text_not_printable
    assert "U+1F34E" in str(refused.value)


def test_the_same_act_renders_to_the_same_bytes():
    act = fixed_october_act()

    assert render_act_pdf(act) == render_act_pdf(act)
    invoice = october_invoice(act)
    assert render_invoice_pdf(invoice) == render_invoice_pdf(invoice)


def test_another_process_on_another_day_renders_the_same_bytes():
    """Hash seed and time zone differ, and the clock has moved: none of them may reach the bytes."""
    program = (
        "import sys\n"
        "from tests.test_documents_pdf import fixed_october_act\n"
        "from treasury.documents import render_act_pdf\n"
        "sys.stdout.buffer.write(render_act_pdf(fixed_october_act()))\n"
    )
    environment = {**os.environ, "PYTHONHASHSEED": "12345", "TZ": "America/Los_Angeles"}

    other = subprocess.run(
        [sys.executable, "-c", program],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        check=True,
        timeout=120,
    )

    assert other.stdout == render_act_pdf(fixed_october_act())


def test_the_pdf_is_dated_by_the_document_not_by_the_rendering():
    metadata = PdfReader(io.BytesIO(render_act_pdf(fixed_october_act()))).metadata

    assert metadata is not None
    almaty = dt.timezone(dt.timedelta(hours=5))
    assert metadata.creation_date == dt.datetime(2026, 10, 31, tzinfo=almaty)
    assert metadata.title == "Акт оказанных услуг / Көрсетілген қызметтер актісі"


def test_a_different_redemption_makes_a_different_pdf():
    act = fixed_october_act()
    lines = list(act.lines)
    ids = list(lines[0].redemption_ids)
    ids[0] = uuid.UUID(int=10**6)
    other = october_act(
        [
            Redemption(id=rid, service=line.service, unit=line.unit, unit_price_tiyn=line.unit_price_tiyn,
                       quantity=1, amount_tiyn=line.unit_price_tiyn)
            for line, line_ids in ((lines[0], ids), (lines[1], lines[1].redemption_ids))
            for rid in line_ids
        ]
    )  # fmt: skip

    assert other.total_tiyn == act.total_tiyn
    assert render_act_pdf(other) != render_act_pdf(act), "the footer hash names the redemptions"


def test_a_long_act_runs_over_pages_with_its_headings_and_page_count():
    services = [f"Кружок № {n} / Үйірме № {n}" for n in range(1, 121)]
    act = october_act([redemption(service, 150_000, quantity=4, unit="занятие") for service in services])

    reader = PdfReader(io.BytesIO(render_act_pdf(act)))
    pages = [" ".join(page.extract_text().split()) for page in reader.pages]

    assert len(pages) >= 3
    for number, page in enumerate(pages, start=1):
        assert f"Страница / Бет {number} / {len(pages)}" in page
    assert all("Наименование услуги / Қызметтің атауы" in page for page in pages[:-1])
    assert "Итого / Барлығы 720 000,00" in " ".join(pages)  # 120 clubs × 4 sessions × 1 500,00
    assert "Принял (Заказчик) / Қабылдады (Тапсырыс беруші)" in pages[-1]


def test_the_fonts_and_their_licence_ship_as_package_data():
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = {
        path.relative_to(FONTS_DIRECTORY.parent).as_posix()
        for pattern in package_data["treasury.documents"]
        for path in FONTS_DIRECTORY.parent.glob(pattern)
    }

    assert shipped == {"fonts/DejaVuSans.ttf", "fonts/DejaVuSans-Bold.ttf", "fonts/LICENSE"}
    assert "Bitstream Vera" in (FONTS_DIRECTORY / "LICENSE").read_text()
