"""Settlement documents: the act of services rendered (form Р-1) and the invoice (ЭСФ), pure and immutable.

The settlement workflow reads a provider's redemptions for a closed period and calls, with no database:

    act = build_service_act(number=..., date=..., customer=..., contractor=..., contract=...,
                            period_start=..., period_end=..., redemptions=[Redemption(...), ...])
    invoice = invoice_from_act(act, number=..., date=..., vat_rate=VatRate.exempt)
    act_bytes = act_json(act)                # canonical JSON, the record
    act_hash = document_hash(act_bytes)      # SHA-256, what the audit log records at issue
    pdf = render_act_pdf(act)                # the same act → the same bytes

The map:
  rules.py             the limits, DocumentRule (stable codes) and DocumentError
  parties.py           Party, BankDetails, ContractReference (BIN, IBAN, BIC, КБК checked)
  acts.py              Redemption, ActLine, ServiceAct; lines grouped from redemptions
  invoices.py          VatRate, vat_tiyn (half up per line), InvoiceLine, Invoice; invoice from an act
  amounts.py           "1 234 567,89" and сумма прописью ("Сто двадцать тысяч тенге 00 тиын")
  machine_readable.py  canonical JSON bytes, document_hash, strict parsers back to the dataclasses
  json_fields.py       the parsers' typed field reader
  pdf_layout.py        fonts (vendored DejaVu Sans), bilingual blocks, tables, signatures, footer
  pdf_render.py        render_act_pdf, render_invoice_pdf
"""

from treasury.documents.acts import (
    ActLine,
    Redemption,
    ServiceAct,
    act_lines_from_redemptions,
    build_service_act,
)
from treasury.documents.amounts import format_tenge, tenge_in_words
from treasury.documents.invoices import (
    Invoice,
    InvoiceLine,
    VatRate,
    invoice_from_act,
    invoice_line,
    vat_tiyn,
)
from treasury.documents.machine_readable import (
    act_json,
    document_hash,
    invoice_json,
    parse_act_json,
    parse_invoice_json,
)
from treasury.documents.parties import BankDetails, ContractReference, Party
from treasury.documents.pdf_render import render_act_pdf, render_invoice_pdf
from treasury.documents.rules import DocumentError, DocumentRule

__all__ = [
    "ActLine",
    "BankDetails",
    "ContractReference",
    "DocumentError",
    "DocumentRule",
    "Invoice",
    "InvoiceLine",
    "Party",
    "Redemption",
    "ServiceAct",
    "VatRate",
    "act_json",
    "act_lines_from_redemptions",
    "build_service_act",
    "document_hash",
    "format_tenge",
    "invoice_from_act",
    "invoice_json",
    "invoice_line",
    "parse_act_json",
    "parse_invoice_json",
    "render_act_pdf",
    "render_invoice_pdf",
    "tenge_in_words",
    "vat_tiyn",
]
