"""Who a document is between, and under what contract: organisations with BIN and bank details.

Identifiers are stored in their one canonical form (a BIN's 12 digits; an IBAN compact and upper case; a BIC
upper case), so two documents that name the same party encode it in the same bytes.
"""

import datetime as dt
import re
from dataclasses import dataclass
from typing import Final

from ledger.identity import IdentityFormatError, validate_bin, validate_iban
from treasury.documents.rules import (
    ADDRESS_CHARS_MAX,
    BANK_NAME_CHARS_MAX,
    DOCUMENT_NUMBER_CHARS_MAX,
    KBK_CHARS_MAX,
    NAME_CHARS_MAX,
    DocumentError,
    DocumentRule,
    require_text,
)

# SWIFT BIC (ISO 9362): bank code, country, location, optional branch. Kazakh IBANs only, so KZ banks.
_KZ_BIC: Final = re.compile(r"[A-Z]{4}KZ[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
_KBK: Final = re.compile(r"[0-9]+(?: [0-9]+)*")


@dataclass(frozen=True, slots=True)
class BankDetails:
    """Where a party is paid: IBAN (ИИК / ЖСК), the bank's name and its BIC (БИК / БСК).

    The Treasury Committee's own accounts are KZ IBANs too (bank code 070, BIC ``KKMFKZ2A``), so a state
    customer is described the same way as a provider.
    """

    iban: str
    bank_name: str
    bic: str

    def __post_init__(self) -> None:
        try:
            iban = validate_iban(self.iban).value
        except IdentityFormatError as error:
            raise DocumentError(DocumentRule.iban_invalid, f"the IBAN is invalid: {error}") from None
        if _KZ_BIC.fullmatch(self.bic.upper()) is None:
            raise DocumentError(DocumentRule.bic_invalid, "the BIC is not a Kazakh bank's SWIFT code")
        require_text(self.bank_name, "the bank name", BANK_NAME_CHARS_MAX)
        object.__setattr__(self, "iban", iban)
        object.__setattr__(self, "bic", self.bic.upper())

    def grouped_iban(self) -> str:
        """The IBAN in groups of four, as printed: ``KZ86 125K ZT50 0410 0100``."""
        return " ".join(self.iban[i : i + 4] for i in range(0, len(self.iban), 4))


@dataclass(frozen=True, slots=True)
class Party:
    """An organisation on a document: customer or contractor on an act, seller or buyer on an invoice."""

    name: str
    bin: str
    address: str
    bank: BankDetails

    def __post_init__(self) -> None:
        require_text(self.name, "the party name", NAME_CHARS_MAX)
        require_text(self.address, "the party address", ADDRESS_CHARS_MAX)
        try:
            digits = validate_bin(self.bin).digits
        except IdentityFormatError as error:
            raise DocumentError(DocumentRule.bin_invalid, f"the party BIN is invalid: {error}") from None
        object.__setattr__(self, "bin", digits)


@dataclass(frozen=True, slots=True)
class ContractReference:
    """The contract the services were rendered under, and the budget programme that pays for them.

    ``kbk`` is the budget classification code (КБК) of the programme, as printed on payment orders; it is
    kept as written (digits, optionally grouped by single spaces), since its grouping differs by budget level.
    """

    number: str
    date: dt.date
    programme: str
    kbk: str

    def __post_init__(self) -> None:
        require_text(self.number, "the contract number", DOCUMENT_NUMBER_CHARS_MAX)
        require_text(self.programme, "the programme name", NAME_CHARS_MAX)
        if len(self.kbk) > KBK_CHARS_MAX or _KBK.fullmatch(self.kbk) is None:
            raise DocumentError(
                DocumentRule.kbk_invalid,
                f"the КБК must be digits, optionally grouped by single spaces, at most {KBK_CHARS_MAX}",
            )
