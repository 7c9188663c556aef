"""The printed page shared by acts and invoices: fonts, bilingual labels, tables, signatures, footer.

Every label is printed in Russian and Kazakh (``Заказчик / Тапсырыс беруші``). The font is DejaVu Sans,
vendored in ``fonts/`` with its licence, because it has every Cyrillic letter Kazakh adds (ә ғ қ ң ө ұ ү һ
і) and a fresh machine has no fonts at all.

Rendering is deterministic: the same document gives the same bytes. fpdf2 adds nothing random (its font
subset tag is fixed and its file id is an MD5 of the content), so the only moving part is the creation date,
which is set to the document's own date at midnight in Kazakhstan, never to the time of rendering.
"""

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from fpdf import FPDF, FontFace
from fpdf.enums import TableCellFillMode, XPos, YPos

from ledger.clock import BUSINESS_TIMEZONE
from treasury.documents.amounts import format_tenge, tenge_in_words
from treasury.documents.parties import Party

FONT_FAMILY: Final = "DejaVuSans"
FONTS_DIRECTORY: Final = Path(__file__).resolve().parent / "fonts"
_FONT_FILES: Final = (("", "DejaVuSans.ttf"), ("B", "DejaVuSans-Bold.ttf"))
CREATOR: Final = "Amiyan"

BODY_PT: Final = 8
SMALL_PT: Final = 7
TITLE_PT: Final = 12
LINE_MM: Final = 4.0
MARGIN_MM: Final = 10.0
_HEADING_FILL: Final = (230, 230, 230)
SIGNATURE_BLOCK_MM: Final = 42.0

PARTY_ROW_LABELS: Final = (
    "Наименование / Атауы",
    "БИН / БСН",
    "Адрес / Мекенжайы",
    "ИИК (IBAN) / ЖСК",
    "Банк / Банк",
    "БИК / БСК",
)


class DocumentPdf(FPDF):
    """An A4 page in DejaVu Sans whose footer carries the page number and the JSON document's hash."""

    def __init__(self, *, orientation: str, title: str, document_date: dt.date, json_sha256: bytes) -> None:
        super().__init__(orientation=orientation, unit="mm", format="A4")
        self._json_sha256_hex = json_sha256.hex()
        for style, file_name in _FONT_FILES:
            self.add_font(FONT_FAMILY, style, str(FONTS_DIRECTORY / file_name))
        midnight = dt.datetime.combine(document_date, dt.time(), tzinfo=BUSINESS_TIMEZONE)
        self.set_creation_date(midnight)
        self.set_title(title)
        self.set_creator(CREATOR)
        self.set_lang("ru-KZ")
        self.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
        self.set_auto_page_break(auto=True, margin=MARGIN_MM + 8)
        self.alias_nb_pages()
        self.add_page()
        self.set_font(FONT_FAMILY, "", BODY_PT)

    def footer(self) -> None:
        self.set_y(-MARGIN_MM - 6)
        self.set_font(FONT_FAMILY, "", SMALL_PT)
        self.cell(
            0,
            3.5,
            f"Страница / Бет {self.page_no()} / {{nb}}",
            align="R",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        self.cell(
            0,
            3.5,
            f"SHA-256 документа (JSON) / құжаттың (JSON): {self._json_sha256_hex}",
            align="L",
        )


def write_line(pdf: FPDF, text: str, *, bold: bool = False, size_pt: int = BODY_PT, align: str = "L") -> None:
    """One paragraph across the page, wrapped, then the cursor at the next line's start."""
    pdf.set_font(FONT_FAMILY, "B" if bold else "", size_pt)
    pdf.multi_cell(0, size_pt * 0.5, text, align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT_FAMILY, "", BODY_PT)


def write_title(pdf: FPDF, title: str, form_note: str) -> None:
    write_line(pdf, form_note, size_pt=SMALL_PT, align="R")
    pdf.ln(2)
    write_line(pdf, title, bold=True, size_pt=TITLE_PT, align="C")
    pdf.ln(3)


def write_fields(pdf: FPDF, fields: list[tuple[str, str]]) -> None:
    """Label–value rows: the document's number, dates, contract and programme."""
    with pdf.table(
        col_widths=(1, 2),
        first_row_as_headings=False,
        line_height=LINE_MM,
        text_align=("LEFT", "LEFT"),
        borders_layout="NONE",
        padding=0.6,
    ) as table:
        for label, value in fields:
            row = table.row()
            row.cell(label, style=FontFace(emphasis="BOLD"))
            row.cell(value)
    pdf.ln(2)


def write_parties(pdf: FPDF, first: tuple[str, Party], second: tuple[str, Party]) -> None:
    """The two parties side by side, one row per detail (name, BIN, address, bank account)."""
    rows = [("", first[0], second[0])]
    values = [_party_values(first[1]), _party_values(second[1])]
    rows.extend(
        (label, left, right)
        for label, left, right in zip(PARTY_ROW_LABELS, values[0], values[1], strict=True)
    )
    write_table(pdf, rows, col_widths=(2, 5, 5), text_align=("LEFT", "LEFT", "LEFT"))


def write_table(
    pdf: FPDF,
    rows: Sequence[tuple[str, ...]],
    *,
    col_widths: tuple[float, ...],
    text_align: tuple[str, ...],
    total: tuple[str, Mapping[int, str]] | None = None,
) -> None:
    """A bordered table whose first row is the heading (repeated on every page), then an optional bold
    total row: ``(label, {column: amount})``, the label spanning the columns before the first amount."""
    bold = FontFace(emphasis="BOLD")
    with pdf.table(
        col_widths=col_widths,
        line_height=LINE_MM,
        text_align=text_align,
        headings_style=FontFace(emphasis="BOLD", fill_color=_HEADING_FILL),
        cell_fill_mode=TableCellFillMode.NONE,
        padding=0.8,
    ) as table:
        for cells in rows:
            row = table.row()
            for text in cells:
                row.cell(text)
        if total is not None:
            label, amounts = total
            first_amount_column = min(amounts)
            row = table.row()
            row.cell(label, colspan=first_amount_column, align="RIGHT", style=bold)
            for column in range(first_amount_column, len(col_widths)):
                row.cell(amounts.get(column, ""), align="RIGHT", style=bold)
    pdf.ln(2)


def write_total(pdf: FPDF, label: str, amount_tiyn: int, *, vat_tiyn: int | None = None) -> None:
    """The total in figures, the VAT it includes (on an invoice), and the total in words (сумма прописью)."""
    write_line(pdf, f"{label}: {format_tenge(amount_tiyn)} тенге / теңге", bold=True)
    if vat_tiyn is not None:
        write_line(pdf, f"в том числе НДС / оның ішінде ҚҚС: {format_tenge(vat_tiyn)} тенге / теңге")
    write_line(pdf, f"Сумма прописью / Жазбаша сомасы: {tenge_in_words(amount_tiyn)}")
    pdf.ln(3)


def write_signatures(pdf: FPDF, first: tuple[str, str], second: tuple[str, str]) -> None:
    """Two signature blocks side by side, each (role, organisation name): position, signature, name, seal."""
    if pdf.will_page_break(SIGNATURE_BLOCK_MM):
        pdf.add_page()
    blanks = (
        "Должность / Лауазымы: ________________________",
        "Подпись / Қолы: ________________________",
        "Ф.И.О. / Т.А.Ә.: ________________________",
        "Дата / Күні: «____» ____________ 20___      М.П. / М.О.",
    )
    rows = [(first[0], second[0]), (first[1], second[1]), *((blank, blank) for blank in blanks)]
    with pdf.table(
        col_widths=(1, 1),
        headings_style=FontFace(emphasis="BOLD"),
        line_height=LINE_MM + 1,
        text_align=("LEFT", "LEFT"),
        borders_layout="NONE",
        padding=1.2,
        gutter_width=8,
    ) as table:
        for left, right in rows:
            row = table.row()
            row.cell(left)
            row.cell(right)


def day_text(day: dt.date) -> str:
    """Dates as printed on Kazakh documents: ``31.10.2026``."""
    return f"{day:%d.%m.%Y}"


def _party_values(party: Party) -> tuple[str, ...]:
    return (
        party.name,
        party.bin,
        party.address,
        party.bank.grouped_iban(),
        party.bank.bank_name,
        party.bank.bic,
    )
