"""Short reference codes for people without a smartphone: `K7QM-4XTR-9BHW`, read out or typed at the
counter instead of scanning the QR code.

Eleven random characters of Crockford's base32 (55 bits: unguessable, and unique by a database index) and
a Luhn mod 32 check character, which catches every single mistyped character and every swap of two
neighbours. Typing is forgiving: case, spaces and dashes are ignored, and O/I/L read as 0/1/1.
"""

import secrets
from typing import Final

ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
_VALUE: Final = {symbol: value for value, symbol in enumerate(ALPHABET)}
_LOOKALIKES: Final = str.maketrans({"O": "0", "I": "1", "L": "1"})
RANDOM_CHARS: Final = 11
CODE_CHARS: Final = RANDOM_CHARS + 1
GROUP_CHARS: Final = 4


def new_reference_code() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_CHARS))
    return body + _check_character(body)


def format_reference_code(code: str) -> str:
    """`K7QM4XTR9BHW` as people read it: `K7QM-4XTR-9BHW`."""
    return "-".join(code[i : i + GROUP_CHARS] for i in range(0, len(code), GROUP_CHARS))


def normalise_reference_code(typed: str) -> str | None:
    """The stored form of what someone typed, or None if it cannot be a reference code (wrong length, a
    character outside the alphabet, or a check character that does not match)."""
    code = "".join(typed.split()).replace("-", "").upper().translate(_LOOKALIKES)
    if len(code) != CODE_CHARS or any(symbol not in _VALUE for symbol in code):
        return None
    if _check_character(code[:-1]) != code[-1]:
        return None
    return code


def _check_character(body: str) -> str:
    """Luhn mod N (N = 32): double every second value from the right, fold, and complete to a multiple."""
    base = len(ALPHABET)
    total = 0
    double = True
    for symbol in reversed(body):
        value = _VALUE[symbol]
        if double:
            value *= 2
            value = value // base + value % base
        total += value
        double = not double
    return ALPHABET[(base - total % base) % base]
