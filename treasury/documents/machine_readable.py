"""Documents as machine-readable JSON: one canonical byte string each, its SHA-256, and the way back.

The bytes are RFC 8785 canonical JSON (``ledger.audit.canonical``): integers only (money in tiyn), keys
sorted, no whitespace, strings in NFC. So a document has exactly one encoding, and its hash
(:func:`document_hash`, SHA-256 of those bytes) is what the audit log records when the document is issued:
anyone holding the JSON can recompute it. The PDF is a rendering of the same document, not the record.

Shapes (``kind`` and ``version`` first in meaning, though keys are sorted in the bytes)::

    service_act  {kind, version, number, date, corrects, customer, contractor, contract, period: {start, end},
                  lines: [{number, service, unit, quantity, unit_price_tiyn, amount_tiyn, redemption_ids}],
                  total_tiyn}
    invoice      {kind, version, number, date, turnover_date, corrects, act_number, seller, buyer, contract,
                  lines: [{number, description, unit, quantity, unit_price_tiyn, amount_without_vat_tiyn,
                           vat_rate, vat_tiyn, amount_with_vat_tiyn}],
                  total_without_vat_tiyn, total_vat_tiyn, total_with_vat_tiyn}
    party        {name, bin, address, bank: {iban, bank_name, bic}}
    contract     {number, date, programme, kbk}

Dates are ``YYYY-MM-DD``; redemption ids are lower-case hyphenated UUIDs; an absent reference is ``null``.
The parsers accept only the canonical bytes of exactly these shapes, then rebuild the dataclasses, which
re-check every invariant: a tampered amount or total is refused with the rule it breaks.
"""

import hashlib
from typing import Any, Final

from ledger.audit.canonical import CanonicalError, canonical_bytes, parse_canonical
from treasury.documents.acts import ActLine, ServiceAct
from treasury.documents.invoices import Invoice, InvoiceLine, VatRate
from treasury.documents.json_fields import JsonObject, malformed
from treasury.documents.parties import BankDetails, ContractReference, Party

ACT_KIND: Final = "service_act"
INVOICE_KIND: Final = "invoice"
FORMAT_VERSION: Final = 1

_PARTY_KEYS: Final = frozenset({"name", "bin", "address", "bank"})
_BANK_KEYS: Final = frozenset({"iban", "bank_name", "bic"})
_CONTRACT_KEYS: Final = frozenset({"number", "date", "programme", "kbk"})
_PERIOD_KEYS: Final = frozenset({"start", "end"})
_ACT_KEYS: Final = frozenset(
    {"kind", "version", "number", "date", "corrects", "customer", "contractor", "contract", "period"}
    | {"lines", "total_tiyn"}
)
_ACT_LINE_KEYS: Final = frozenset(
    {"number", "service", "unit", "quantity", "unit_price_tiyn", "amount_tiyn", "redemption_ids"}
)
_INVOICE_KEYS: Final = frozenset(
    {"kind", "version", "number", "date", "turnover_date", "corrects", "act_number", "seller", "buyer"}
    | {"contract", "lines", "total_without_vat_tiyn", "total_vat_tiyn", "total_with_vat_tiyn"}
)
_INVOICE_LINE_KEYS: Final = frozenset(
    {"number", "description", "unit", "quantity", "unit_price_tiyn", "amount_without_vat_tiyn"}
    | {"vat_rate", "vat_tiyn", "amount_with_vat_tiyn"}
)


def document_hash(document_bytes: bytes) -> bytes:
    """The 32-byte SHA-256 of a document's canonical JSON: what the audit log records at issue."""
    return hashlib.sha256(document_bytes).digest()


def act_json(act: ServiceAct) -> bytes:
    """The act's canonical JSON bytes."""
    return canonical_bytes(
        {
            "kind": ACT_KIND,
            "version": FORMAT_VERSION,
            "number": act.number,
            "date": act.date.isoformat(),
            "corrects": act.corrects,
            "customer": _party(act.customer),
            "contractor": _party(act.contractor),
            "contract": _contract(act.contract),
            "period": {"start": act.period_start.isoformat(), "end": act.period_end.isoformat()},
            "lines": [_act_line(line) for line in act.lines],
            "total_tiyn": act.total_tiyn,
        }
    )


def invoice_json(invoice: Invoice) -> bytes:
    """The invoice's canonical JSON bytes."""
    return canonical_bytes(
        {
            "kind": INVOICE_KIND,
            "version": FORMAT_VERSION,
            "number": invoice.number,
            "date": invoice.date.isoformat(),
            "turnover_date": invoice.turnover_date.isoformat(),
            "corrects": invoice.corrects,
            "act_number": invoice.act_number,
            "seller": _party(invoice.seller),
            "buyer": _party(invoice.buyer),
            "contract": _contract(invoice.contract),
            "lines": [_invoice_line(line) for line in invoice.lines],
            "total_without_vat_tiyn": invoice.total_without_vat_tiyn,
            "total_vat_tiyn": invoice.total_vat_tiyn,
            "total_with_vat_tiyn": invoice.total_with_vat_tiyn,
        }
    )


def parse_act_json(data: bytes) -> ServiceAct:
    """The act encoded by `data`; raises ``DocumentError`` (rule ``json_malformed`` or the rule broken)."""
    root = _document_root(data, ACT_KIND, _ACT_KEYS)
    period = root.member("period", _PERIOD_KEYS)
    return ServiceAct(
        number=root.text("number"),
        date=root.day("date"),
        customer=_parse_party(root.member("customer", _PARTY_KEYS)),
        contractor=_parse_party(root.member("contractor", _PARTY_KEYS)),
        contract=_parse_contract(root.member("contract", _CONTRACT_KEYS)),
        period_start=period.day("start"),
        period_end=period.day("end"),
        lines=tuple(_parse_act_line(line) for line in root.members("lines", _ACT_LINE_KEYS)),
        total_tiyn=root.integer("total_tiyn"),
        corrects=root.optional_text("corrects"),
    )


def parse_invoice_json(data: bytes) -> Invoice:
    """The invoice encoded by `data`; raises ``DocumentError`` like :func:`parse_act_json`."""
    root = _document_root(data, INVOICE_KIND, _INVOICE_KEYS)
    return Invoice(
        number=root.text("number"),
        date=root.day("date"),
        turnover_date=root.day("turnover_date"),
        seller=_parse_party(root.member("seller", _PARTY_KEYS)),
        buyer=_parse_party(root.member("buyer", _PARTY_KEYS)),
        contract=_parse_contract(root.member("contract", _CONTRACT_KEYS)),
        act_number=root.optional_text("act_number"),
        lines=tuple(_parse_invoice_line(line) for line in root.members("lines", _INVOICE_LINE_KEYS)),
        total_without_vat_tiyn=root.integer("total_without_vat_tiyn"),
        total_vat_tiyn=root.integer("total_vat_tiyn"),
        total_with_vat_tiyn=root.integer("total_with_vat_tiyn"),
        corrects=root.optional_text("corrects"),
    )


def _party(party: Party) -> dict[str, Any]:
    bank = {"iban": party.bank.iban, "bank_name": party.bank.bank_name, "bic": party.bank.bic}
    return {"name": party.name, "bin": party.bin, "address": party.address, "bank": bank}


def _contract(contract: ContractReference) -> dict[str, Any]:
    return {
        "number": contract.number,
        "date": contract.date.isoformat(),
        "programme": contract.programme,
        "kbk": contract.kbk,
    }


def _act_line(line: ActLine) -> dict[str, Any]:
    return {
        "number": line.number,
        "service": line.service,
        "unit": line.unit,
        "quantity": line.quantity,
        "unit_price_tiyn": line.unit_price_tiyn,
        "amount_tiyn": line.amount_tiyn,
        "redemption_ids": [str(rid) for rid in line.redemption_ids],
    }


def _invoice_line(line: InvoiceLine) -> dict[str, Any]:
    return {
        "number": line.number,
        "description": line.description,
        "unit": line.unit,
        "quantity": line.quantity,
        "unit_price_tiyn": line.unit_price_tiyn,
        "amount_without_vat_tiyn": line.amount_without_vat_tiyn,
        "vat_rate": line.vat_rate.value,
        "vat_tiyn": line.vat_tiyn,
        "amount_with_vat_tiyn": line.amount_with_vat_tiyn,
    }


def _document_root(data: bytes, kind: str, keys: frozenset[str]) -> JsonObject:
    try:
        value = parse_canonical(data)
    except CanonicalError as error:
        raise malformed(f"the document is not canonical JSON: {error}") from None
    root = JsonObject(value, "$", keys)
    if root.text("kind") != kind:
        raise malformed(f"$.kind is not {kind!r}")
    if root.integer("version") != FORMAT_VERSION:
        raise malformed(f"$.version is not {FORMAT_VERSION}")
    return root


def _parse_party(fields: JsonObject) -> Party:
    bank = fields.member("bank", _BANK_KEYS)
    return Party(
        name=fields.text("name"),
        bin=fields.text("bin"),
        address=fields.text("address"),
        bank=BankDetails(iban=bank.text("iban"), bank_name=bank.text("bank_name"), bic=bank.text("bic")),
    )


def _parse_contract(fields: JsonObject) -> ContractReference:
    return ContractReference(
        number=fields.text("number"),
        date=fields.day("date"),
        programme=fields.text("programme"),
        kbk=fields.text("kbk"),
    )


def _parse_act_line(fields: JsonObject) -> ActLine:
    return ActLine(
        number=fields.integer("number"),
        service=fields.text("service"),
        unit=fields.text("unit"),
        quantity=fields.integer("quantity"),
        unit_price_tiyn=fields.integer("unit_price_tiyn"),
        amount_tiyn=fields.integer("amount_tiyn"),
        redemption_ids=fields.uuids("redemption_ids"),
    )


def _parse_invoice_line(fields: JsonObject) -> InvoiceLine:
    rate_text = fields.text("vat_rate")
    if rate_text not in {rate.value for rate in VatRate}:
        raise malformed(f"{fields.path}.vat_rate is not one of {[rate.value for rate in VatRate]}")
    return InvoiceLine(
        number=fields.integer("number"),
        description=fields.text("description"),
        unit=fields.text("unit"),
        quantity=fields.integer("quantity"),
        unit_price_tiyn=fields.integer("unit_price_tiyn"),
        amount_without_vat_tiyn=fields.integer("amount_without_vat_tiyn"),
        vat_rate=VatRate(rate_text),
        vat_tiyn=fields.integer("vat_tiyn"),
        amount_with_vat_tiyn=fields.integer("amount_with_vat_tiyn"),
    )
