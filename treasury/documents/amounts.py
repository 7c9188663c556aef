"""Amounts as an accountant in Kazakhstan writes them: in figures and in Russian words.

In figures (:func:`format_tenge`): tenge grouped by threes with a space, a comma, two digits of tiyn —
``1 234 567,89``. In words (сумма прописью, :func:`tenge_in_words`): the tenge in Russian words with a
capital first letter, the tiyn in figures — ``Сто двадцать тысяч тенге 00 тиын``.

Russian numerals agree with the noun they count, which is what makes this more than a lookup:

- *gender*: тысяча is feminine (одна тысяча, две тысячи); тенге, миллион, миллиард and триллион are
  masculine (один тенге, два миллиона);
- *case and number* after a numeral, chosen by the last two digits of the group that counts the noun:
  1 (but not 11) → nominative singular (тысяча); 2–4 (but not 12–14) → genitive singular (тысячи); every
  other ending, 11–14 included → genitive plural (тысяч). Тенге is indeclinable, so it never changes.

A group of three zeros is left out entirely (1 000 000 is «один миллион», not «один миллион ноль тысяч»),
and zero tenge is «ноль тенге». Amounts are integer tiyn; the ledger's bound of 10^15 tiyn (10 trillion
tenge) needs words up to the trillions, and larger magnitudes are refused.
"""

from typing import Final

TIYN_PER_TENGE: Final = 100
_GROUP: Final = 1000
_SCALES_MAX: Final = 4  # thousand, million, billion, trillion
TENGE_IN_WORDS_MAX: Final = _GROUP ** (_SCALES_MAX + 1) - 1

_UNITS_MASCULINE: Final = ("", "один", "два", "три", "четыре", "пять", "шесть", "семь", "восемь", "девять")
_UNITS_FEMININE: Final = ("", "одна", "две", *_UNITS_MASCULINE[3:])
_TEENS: Final = (
    "десять",
    "одиннадцать",
    "двенадцать",
    "тринадцать",
    "четырнадцать",
    "пятнадцать",
    "шестнадцать",
    "семнадцать",
    "восемнадцать",
    "девятнадцать",
)
_TENS: Final = (
    "",
    "",
    "двадцать",
    "тридцать",
    "сорок",
    "пятьдесят",
    "шестьдесят",
    "семьдесят",
    "восемьдесят",
    "девяносто",
)
_HUNDREDS: Final = (
    "",
    "сто",
    "двести",
    "триста",
    "четыреста",
    "пятьсот",
    "шестьсот",
    "семьсот",
    "восемьсот",
    "девятьсот",
)
# (one, few, many) forms and whether the noun is feminine, by power of a thousand.
_SCALES: Final = (
    (("тысяча", "тысячи", "тысяч"), True),
    (("миллион", "миллиона", "миллионов"), False),
    (("миллиард", "миллиарда", "миллиардов"), False),
    (("триллион", "триллиона", "триллионов"), False),
)


def format_tenge(amount_tiyn: int) -> str:
    """``1 234 567,89`` for 123456789 tiyn; a minus sign in front of a negative amount."""
    sign = "-" if amount_tiyn < 0 else ""
    tenge, tiyn = divmod(abs(amount_tiyn), TIYN_PER_TENGE)
    return f"{sign}{tenge:,}".replace(",", " ") + f",{tiyn:02d}"


def plural_form(count: int, forms: tuple[str, str, str]) -> str:
    """The form of a noun after the numeral `count`: (one, few, many), e.g. (тысяча, тысячи, тысяч)."""
    last_two = count % 100
    if 11 <= last_two <= 14:
        return forms[2]
    last = count % 10
    if last == 1:
        return forms[0]
    if 2 <= last <= 4:
        return forms[1]
    return forms[2]


def number_in_words(number: int, *, feminine: bool = False) -> str:
    """A non-negative integer below 10^15 in Russian words, lower case: 21 → «двадцать один».

    `feminine` makes the last group agree with a feminine noun (двадцать одна); groups of thousands are
    always feminine and of millions and up masculine, whatever the noun.
    """
    if not 0 <= number <= TENGE_IN_WORDS_MAX:
        raise ValueError(f"only 0 to {TENGE_IN_WORDS_MAX} can be written in words here")
    if number == 0:
        return "ноль"
    words: list[str] = []
    groups = _groups_of_three(number)
    for power in range(len(groups) - 1, -1, -1):
        group = groups[power]
        if group == 0:
            continue
        if power == 0:
            words.extend(_group_in_words(group, feminine))
        else:
            forms, scale_feminine = _SCALES[power - 1]
            words.extend(_group_in_words(group, scale_feminine))
            words.append(plural_form(group, forms))
    return " ".join(words)


def tenge_in_words(amount_tiyn: int) -> str:
    """Сумма прописью: «Сто двадцать тысяч тенге 00 тиын»; «Минус …» for a negative (adjustment) amount."""
    tenge, tiyn = divmod(abs(amount_tiyn), TIYN_PER_TENGE)
    text = f"{number_in_words(tenge)} тенге {tiyn:02d} тиын"
    if amount_tiyn < 0:
        text = f"минус {text}"
    return text[0].upper() + text[1:]


def _groups_of_three(number: int) -> list[int]:
    """Least significant first: 1 234 567 → [567, 234, 1]."""
    groups = []
    while number:
        number, group = divmod(number, _GROUP)
        groups.append(group)
    return groups


def _group_in_words(group: int, feminine: bool) -> list[str]:
    """1 to 999 in words: hundreds, then tens and units or a teen."""
    hundreds, rest = divmod(group, 100)
    tens, units = divmod(rest, 10)
    words = [_HUNDREDS[hundreds]]
    if tens == 1:
        words.append(_TEENS[units])
    else:
        words.append(_TENS[tens])
        words.append((_UNITS_FEMININE if feminine else _UNITS_MASCULINE)[units])
    return [word for word in words if word]
