"""Acts and invoices rendered as PDF, bilingual (Russian / Kazakh), deterministic to the byte.

The act follows form Р-1 (number, date, customer and contractor, contract, a line per service with unit,
quantity, unit price and amount, the total in figures and words, both sides' signatures); the invoice
follows the ЭСФ's sections (seller and buyer with bank details, lines with price and amount without VAT,
VAT rate and amount, amount with VAT, totals). Each page's footer carries the SHA-256 of the document's
canonical JSON, which ties the paper to the record in the audit log and to the redemption ids it lists.
"""

from fpdf import FPDF

from treasury.documents.acts import ServiceAct
from treasury.documents.amounts import format_tenge
from treasury.documents.invoices import Invoice, VatRate
from treasury.documents.machine_readable import act_json, document_hash, invoice_json
from treasury.documents.parties import ContractReference
from treasury.documents.pdf_layout import (
    DocumentPdf,
    day_text,
    write_fields,
    write_parties,
    write_signatures,
    write_table,
    write_title,
    write_total,
)
from treasury.documents.rules import DocumentError, DocumentRule

ACT_TITLE = "Акт оказанных услуг / Көрсетілген қызметтер актісі"
ADJUSTMENT_ACT_TITLE = "Корректировочный акт оказанных услуг / Көрсетілген қызметтердің түзету актісі"
INVOICE_TITLE = "Счёт-фактура / Шот-фактура"
CORRECTIVE_INVOICE_TITLE = "Исправленный счёт-фактура / Түзетілген шот-фактура"
CUSTOMER = "Заказчик / Тапсырыс беруші"
CONTRACTOR = "Исполнитель / Орындаушы"
SELLER = "Продавец / Сатушы"
BUYER = "Покупатель / Сатып алушы"

_ACT_HEADINGS = (
    "№",
    "Наименование услуги / Қызметтің атауы",
    "Ед. изм. / Өлшем бірлігі",
    "Кол-во / Саны",
    "Цена за ед., тенге / Бірлік бағасы, теңге",
    "Стоимость, тенге / Құны, теңге",
    "Погашений / Өтеулер",
)
_INVOICE_HEADINGS = (
    "№",
    "Наименование товаров (работ, услуг) / Тауарлардың (жұмыстардың, қызметтердің) атауы",
    "Ед. изм. / Өлшем бірлігі",
    "Количество / Саны",
    "Цена без НДС, тенге / ҚҚС-сыз бағасы, теңге",
    "Стоимость без НДС, тенге / ҚҚС-сыз құны, теңге",
    "Ставка НДС / ҚҚС мөлшерлемесі",
    "Сумма НДС, тенге / ҚҚС сомасы, теңге",
    "Стоимость с НДС, тенге / ҚҚС-пен құны, теңге",
)
_VAT_RATE_TEXT = {
    VatRate.exempt: "Без НДС / ҚҚС-сыз",
    VatRate.zero_percent: "0%",
    VatRate.twelve_percent: "12%",
    VatRate.sixteen_percent: "16%",
}


def render_act_pdf(act: ServiceAct) -> bytes:
    """The act of services rendered as a PDF (A4 portrait); the same act always gives the same bytes."""
    title = ADJUSTMENT_ACT_TITLE if act.is_adjustment else ACT_TITLE
    pdf = DocumentPdf(
        orientation="P", title=title, document_date=act.date, json_sha256=document_hash(act_json(act))
    )
    write_title(pdf, title, "Форма Р-1 / Р-1 нысаны")
    fields = [
        ("Номер документа / Құжат нөмірі", act.number),
        ("Дата составления / Жасалған күні", day_text(act.date)),
        ("Отчётный период / Есепті кезең", f"{day_text(act.period_start)} – {day_text(act.period_end)}"),
    ]
    if act.corrects is not None:
        fields.append(("Корректирует акт / Түзетілетін акт", f"№ {act.corrects}"))
    fields.extend(_contract_fields(act.contract))
    write_fields(pdf, fields)
    write_parties(pdf, (CUSTOMER, act.customer), (CONTRACTOR, act.contractor))
    rows = [_ACT_HEADINGS]
    rows.extend(
        (
            str(line.number),
            line.service,
            line.unit,
            _quantity_text(line.quantity),
            format_tenge(line.unit_price_tiyn),
            format_tenge(line.amount_tiyn),
            _quantity_text(len(line.redemption_ids)),
        )
        for line in act.lines
    )
    write_table(
        pdf,
        rows,
        col_widths=(5, 36, 13, 13, 17, 19, 15),
        text_align=("RIGHT", "LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"),
        total=("Итого / Барлығы", {5: format_tenge(act.total_tiyn)}),
    )
    write_total(pdf, "Итого к оплате / Барлығы төлеуге", act.total_tiyn)
    write_signatures(
        pdf,
        ("Сдал (Исполнитель) / Тапсырды (Орындаушы)", act.contractor.name),
        ("Принял (Заказчик) / Қабылдады (Тапсырыс беруші)", act.customer.name),
    )
    return _pdf_bytes(pdf)


def render_invoice_pdf(invoice: Invoice) -> bytes:
    """The invoice as a PDF (A4 landscape); the same invoice always gives the same bytes."""
    title = CORRECTIVE_INVOICE_TITLE if invoice.corrects is not None else INVOICE_TITLE
    json_sha256 = document_hash(invoice_json(invoice))
    pdf = DocumentPdf(orientation="L", title=title, document_date=invoice.date, json_sha256=json_sha256)
    write_title(pdf, title, "Электронный счёт-фактура (ЭСФ) / Электрондық шот-фактура (ЭШФ)")
    fields = [
        ("Номер / Нөмірі", invoice.number),
        ("Дата выписки / Жазылған күні", day_text(invoice.date)),
        ("Дата совершения оборота / Айналым жасалған күні", day_text(invoice.turnover_date)),
    ]
    if invoice.corrects is not None:
        fields.append(("Исправляет счёт-фактуру / Түзетілетін шот-фактура", f"№ {invoice.corrects}"))
    if invoice.act_number is not None:
        fields.append(("Акт оказанных услуг / Көрсетілген қызметтер актісі", f"№ {invoice.act_number}"))
    fields.extend(_contract_fields(invoice.contract))
    write_fields(pdf, fields)
    write_parties(pdf, (SELLER, invoice.seller), (BUYER, invoice.buyer))
    write_table(
        pdf,
        [_INVOICE_HEADINGS, *_invoice_rows(invoice)],
        col_widths=(5, 44, 13, 14, 20, 22, 20, 20, 22),
        text_align=("RIGHT", "LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT", "CENTER", "RIGHT", "RIGHT"),
        total=(
            "Всего по счёту / Шот бойынша барлығы",
            {
                5: format_tenge(invoice.total_without_vat_tiyn),
                7: format_tenge(invoice.total_vat_tiyn),
                8: format_tenge(invoice.total_with_vat_tiyn),
            },
        ),
    )
    write_total(
        pdf,
        "Всего к оплате с НДС / ҚҚС-пен барлығы төлеуге",
        invoice.total_with_vat_tiyn,
        vat_tiyn=invoice.total_vat_tiyn,
    )
    write_signatures(
        pdf,
        ("Выписал (Продавец) / Жазып берді (Сатушы)", invoice.seller.name),
        ("Получил (Покупатель) / Алды (Сатып алушы)", invoice.buyer.name),
    )
    return _pdf_bytes(pdf)


def _invoice_rows(invoice: Invoice) -> list[tuple[str, ...]]:
    return [
        (
            str(line.number),
            line.description,
            line.unit,
            _quantity_text(line.quantity),
            format_tenge(line.unit_price_tiyn),
            format_tenge(line.amount_without_vat_tiyn),
            _VAT_RATE_TEXT[line.vat_rate],
            format_tenge(line.vat_tiyn),
            format_tenge(line.amount_with_vat_tiyn),
        )
        for line in invoice.lines
    ]


def _contract_fields(contract: ContractReference) -> list[tuple[str, str]]:
    return [
        ("Договор / Шарт", f"№ {contract.number} от / күні {day_text(contract.date)}"),
        ("Бюджетная программа / Бюджеттік бағдарлама", contract.programme),
        ("КБК / Бюджеттік сыныптама коды", contract.kbk),
    ]


def _quantity_text(quantity: int) -> str:
    return f"{quantity:,}".replace(",", " ")


def _pdf_bytes(pdf: FPDF) -> bytes:
    data = bytes(pdf.output())
    # fpdf2 only logs a character its font cannot draw; a document that silently loses a letter of a
    # name is wrong, so it is refused instead.
    missing = sorted({code for font in pdf.fonts.values() for code in getattr(font, "missing_glyphs", ())})
    if missing:
        points = ", ".join(f"U+{code:04X}" for code in missing[:5])
        raise DocumentError(DocumentRule.text_not_printable, f"the document font cannot draw {points}")
    return data
