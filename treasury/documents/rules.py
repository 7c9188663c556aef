"""What a settlement document refuses, the limits it enforces, and the one error it raises.

A document is built from data the settlement workflow read from the ledger, and parsed back from JSON an
auditor may hand us, so bad input is an operating error, not a programmer error: every check raises
:class:`DocumentError` with a stable :class:`DocumentRule` and a message that names the field (never its
value, which may be a business secret or personal data).
"""

import unicodedata
from enum import StrEnum
from typing import Final

from ledger.limits import AMOUNT_TIYN_MAX

DOCUMENT_NUMBER_CHARS_MAX: Final = 64
NAME_CHARS_MAX: Final = 500
ADDRESS_CHARS_MAX: Final = 500
SERVICE_CHARS_MAX: Final = 300
UNIT_CHARS_MAX: Final = 32
BANK_NAME_CHARS_MAX: Final = 200
KBK_CHARS_MAX: Final = 20
# A Р-1 act or an invoice with more lines than this is not a document anyone reads; split the contract.
DOCUMENT_LINES_MAX: Final = 1000
# A large pharmacy chain serves ~100k prescriptions a month; ten times that is still one act.
ACT_REDEMPTIONS_MAX: Final = 1_000_000
# Quantities are whole units (meals, packs, visits); 10^9 of them at 1 tiyn each stays far below the
# amount bound, and any quantity times any unit price fits easily in Python's ints before the check.
QUANTITY_ABS_MAX: Final = 10**9
# Every amount on a document, line or total, is bounded like a ledger transfer amount.
DOCUMENT_AMOUNT_TIYN_MAX: Final = AMOUNT_TIYN_MAX


class DocumentRule(StrEnum):
    """The rule a document broke. Values are stable: the API and the reconciliation report quote them."""

    text_empty = "text_empty"
    text_too_long = "text_too_long"
    text_not_nfc = "text_not_nfc"
    """Strings must already be in Unicode NFC: the canonical JSON never normalises silently."""
    text_control_character = "text_control_character"
    text_not_printable = "text_not_printable"
    """A character the document font (DejaVu Sans) has no glyph for, e.g. an emoji: the PDF would drop it."""
    bin_invalid = "bin_invalid"
    iban_invalid = "iban_invalid"
    bic_invalid = "bic_invalid"
    """Not a SWIFT BIC of a Kazakh bank: 4 letters, ``KZ``, 2 letters or digits, optionally 3 more."""
    kbk_invalid = "kbk_invalid"
    """The budget classification code is not digits (optionally grouped by single spaces)."""
    period_reversed = "period_reversed"
    document_dated_too_early = "document_dated_too_early"
    """An act dated before its period ends, or an invoice dated before its turnover."""
    lines_empty = "lines_empty"
    lines_too_many = "lines_too_many"
    line_number_sequence = "line_number_sequence"
    """Lines are numbered 1, 2, 3, … in order, as printed."""
    line_duplicate_group = "line_duplicate_group"
    """Two lines of one act share service, unit and unit price: they are one line."""
    quantity_zero = "quantity_zero"
    quantity_negative = "quantity_negative"
    """Only an adjustment act (or corrective invoice) may take quantities back."""
    quantity_too_large = "quantity_too_large"
    unit_price_not_positive = "unit_price_not_positive"
    amount_too_large = "amount_too_large"
    line_amount_mismatch = "line_amount_mismatch"
    """A line's amount is not its quantity times its unit price."""
    vat_mismatch = "vat_mismatch"
    """A line's VAT or amount with VAT is not what its rate gives (see ``invoices.vat_tiyn``)."""
    total_mismatch = "total_mismatch"
    """A total is not the sum of its lines."""
    redemption_ids_empty = "redemption_ids_empty"
    redemption_duplicate = "redemption_duplicate"
    """One redemption counted twice: in two lines, twice in one line, or twice in the input."""
    redemptions_too_many = "redemptions_too_many"
    redemption_amount_mismatch = "redemption_amount_mismatch"
    """A redemption's amount is not its quantity times its unit price."""
    corrects_itself = "corrects_itself"
    json_malformed = "json_malformed"
    """Bytes that are not the canonical JSON of a document of the expected kind and version."""


class DocumentError(ValueError):
    """A document broke ``rule``; the message names the field, never its value."""

    def __init__(self, rule: DocumentRule, message: str) -> None:
        super().__init__(f"{message} (rule {rule.value})")
        self.rule = rule


def require_text(value: str, field: str, chars_max: int) -> None:
    """A printed field: non-empty, at most `chars_max` characters, NFC, one line without control codes."""
    if not value.strip():
        raise DocumentError(DocumentRule.text_empty, f"{field} is empty")
    if len(value) > chars_max:
        raise DocumentError(DocumentRule.text_too_long, f"{field} is longer than {chars_max} characters")
    if not unicodedata.is_normalized("NFC", value):
        raise DocumentError(DocumentRule.text_not_nfc, f"{field} is not in Unicode NFC")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise DocumentError(
            DocumentRule.text_control_character, f"{field} holds a control character or lone surrogate"
        )


def require_amount(amount_tiyn: int, field: str) -> None:
    """An amount on a document, of either sign, within the ledger's amount bound."""
    if abs(amount_tiyn) > DOCUMENT_AMOUNT_TIYN_MAX:
        raise DocumentError(
            DocumentRule.amount_too_large, f"{field} exceeds {DOCUMENT_AMOUNT_TIYN_MAX} tiyn in magnitude"
        )


def require_quantity(quantity: int, field: str, *, adjustment: bool) -> None:
    """Whole units, never zero; negative only on a document that corrects an earlier one."""
    if quantity == 0:
        raise DocumentError(DocumentRule.quantity_zero, f"{field} is zero")
    if quantity < 0 and not adjustment:
        raise DocumentError(
            DocumentRule.quantity_negative, f"{field} is negative on a document that corrects nothing"
        )
    if abs(quantity) > QUANTITY_ABS_MAX:
        raise DocumentError(DocumentRule.quantity_too_large, f"{field} exceeds {QUANTITY_ABS_MAX} units")


def require_unit_price(unit_price_tiyn: int, field: str) -> None:
    if unit_price_tiyn <= 0:
        raise DocumentError(DocumentRule.unit_price_not_positive, f"{field} must be at least 1 tiyn")
    require_amount(unit_price_tiyn, field)


def require_line_count(count: int, field: str) -> None:
    if count == 0:
        raise DocumentError(DocumentRule.lines_empty, f"{field} has no lines")
    if count > DOCUMENT_LINES_MAX:
        raise DocumentError(DocumentRule.lines_too_many, f"{field} has more than {DOCUMENT_LINES_MAX} lines")


def require_line_numbers(numbers: list[int], field: str) -> None:
    if numbers != list(range(1, len(numbers) + 1)):
        raise DocumentError(DocumentRule.line_number_sequence, f"{field} are not numbered 1, 2, 3, …")
