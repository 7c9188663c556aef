"""Amounts in figures and in Russian words, as an accountant in Kazakhstan writes them on an act."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from treasury.documents.amounts import TENGE_IN_WORDS_MAX, format_tenge, number_in_words, tenge_in_words


@pytest.mark.parametrize(
    ("amount_tiyn", "printed"),
    [
        (0, "0,00"),
        (5, "0,05"),
        (100, "1,00"),
        (99_999, "999,99"),
        (100_000, "1 000,00"),
        (123_456_789, "1 234 567,89"),
        (12_000_000, "120 000,00"),
        (10**15, "10 000 000 000 000,00"),
        (-150, "-1,50"),
        (-123_456_789, "-1 234 567,89"),
    ],
)
def test_amounts_print_as_tenge_grouped_by_threes_with_a_comma_before_tiyn(amount_tiyn, printed):
    assert format_tenge(amount_tiyn) == printed


@pytest.mark.parametrize(
    ("amount_tiyn", "words"),
    [
        (0, "Ноль тенге 00 тиын"),
        (7, "Ноль тенге 07 тиын"),
        (100, "Один тенге 00 тиын"),
        (200, "Два тенге 00 тиын"),
        (1_100, "Одиннадцать тенге 00 тиын"),
        (1_200, "Двенадцать тенге 00 тиын"),
        (2_100, "Двадцать один тенге 00 тиын"),
        (10_000, "Сто тенге 00 тиын"),
        (11_100, "Сто одиннадцать тенге 00 тиын"),
        (40_000, "Четыреста тенге 00 тиын"),
        (99_999, "Девятьсот девяносто девять тенге 99 тиын"),
        (100_000, "Одна тысяча тенге 00 тиын"),
        (200_000, "Две тысячи тенге 00 тиын"),
        (300_000, "Три тысячи тенге 00 тиын"),
        (500_000, "Пять тысяч тенге 00 тиын"),
        (1_100_000, "Одиннадцать тысяч тенге 00 тиын"),
        (1_200_000, "Двенадцать тысяч тенге 00 тиын"),
        (1_400_000, "Четырнадцать тысяч тенге 00 тиын"),
        (2_100_000, "Двадцать одна тысяча тенге 00 тиын"),
        (2_200_000, "Двадцать две тысячи тенге 00 тиын"),
        (2_500_000, "Двадцать пять тысяч тенге 00 тиын"),
        (11_100_000, "Сто одиннадцать тысяч тенге 00 тиын"),
        (12_000_000, "Сто двадцать тысяч тенге 00 тиын"),
        (100_000_000, "Один миллион тенге 00 тиын"),
        (200_000_000, "Два миллиона тенге 00 тиын"),
        (500_000_000, "Пять миллионов тенге 00 тиын"),
        (1_100_000_000, "Одиннадцать миллионов тенге 00 тиын"),
        (2_100_000_000, "Двадцать один миллион тенге 00 тиын"),
        (100_100_100, "Один миллион одна тысяча один тенге 00 тиын"),
        (123_456_789, "Один миллион двести тридцать четыре тысячи пятьсот шестьдесят семь тенге 89 тиын"),
        (354_000_000, "Три миллиона пятьсот сорок тысяч тенге 00 тиын"),
        (100_000_000_000, "Один миллиард тенге 00 тиын"),
        (300_000_200_000, "Три миллиарда две тысячи тенге 00 тиын"),
        (10**15, "Десять триллионов тенге 00 тиын"),
        (
            TENGE_IN_WORDS_MAX * 100 + 99,
            "Девятьсот девяносто девять триллионов девятьсот девяносто девять миллиардов девятьсот девяносто"
            " девять миллионов девятьсот девяносто девять тысяч девятьсот девяносто девять тенге 99 тиын",
        ),
        (-10_050, "Минус сто тенге 50 тиын"),
    ],
)
def test_totals_in_words_agree_in_gender_and_case(amount_tiyn, words):
    assert tenge_in_words(amount_tiyn) == words


def test_a_number_beyond_the_trillions_is_refused():
    with pytest.raises(ValueError, match="in words"):
        tenge_in_words((TENGE_IN_WORDS_MAX + 1) * 100)


# An independent reading of Russian numerals, to check every amount rather than a table of them.
_UNITS = ("один/одна", "два/две", "три", "четыре", "пять", "шесть", "семь", "восемь", "девять")
_TEENS = (
    *("десять", "одиннадцать", "двенадцать", "тринадцать", "четырнадцать", "пятнадцать"),
    *("шестнадцать", "семнадцать", "восемнадцать", "девятнадцать"),
)
_TENS = ("двадцать", "тридцать", "сорок", "пятьдесят", "шестьдесят", "семьдесят", "восемьдесят", "девяносто")
_HUNDREDS = (
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
_PART_VALUES = {
    **{form: value for value, forms in enumerate(_UNITS, 1) for form in forms.split("/")},
    **{word: value for value, word in enumerate(_TEENS, 10)},
    **{word: 10 * value for value, word in enumerate(_TENS, 2)},
    **{word: 100 * value for value, word in enumerate(_HUNDREDS, 1)},
}
# scale word → (power of a thousand, the grammatical number it demands: one / few / many)
_SCALE_WORDS = {
    word: (power, form)
    for power, forms in enumerate(
        (
            ("тысяча", "тысячи", "тысяч"),
            ("миллион", "миллиона", "миллионов"),
            ("миллиард", "миллиарда", "миллиардов"),
            ("триллион", "триллиона", "триллионов"),
        ),
        start=1,
    )
    for form, word in zip(("one", "few", "many"), forms, strict=True)
}


def _grammatical_number(count: int) -> str:
    if count % 10 == 1 and count % 100 != 11:
        return "one"
    if count % 10 in (2, 3, 4) and count % 100 not in (12, 13, 14):
        return "few"
    return "many"


def _read_group(parts: list[str], feminine: bool) -> int:
    values = [_PART_VALUES[part] for part in parts]
    assert values == sorted(values, reverse=True) and len(set(values)) == len(values), parts
    assert not any(10 <= value < 20 for value in values[:-1]), f"a teen must come last: {parts}"
    last = parts[-1]
    if last in ("один", "одна", "два", "две"):
        assert (last in ("одна", "две")) == feminine, f"gender of {parts}"
    return sum(values)


def _read_words(text: str) -> int:
    words = text.split(" ")
    assert words[-3:-1] == ["тенге", words[-2]] and words[-1] == "тиын", text
    tiyn = int(words[-2])
    words = words[:-3]
    if words == ["Ноль"]:
        return tiyn
    words[0] = words[0].lower()
    tenge = 0
    group: list[str] = []
    powers: list[int] = []
    for word in words:
        if word in _SCALE_WORDS:
            power, form = _SCALE_WORDS[word]
            count = _read_group(group, feminine=power == 1)
            assert form == _grammatical_number(count), f"{count} {word}"
            assert not powers or power < powers[-1], "scales descend"
            powers.append(power)
            tenge += count * 1000**power
            group = []
        else:
            group.append(word)
    if group:
        tenge += _read_group(group, feminine=False)  # тенге is masculine
    return tenge * 100 + tiyn


# Drawn group by group, so that endings like 11-14 and 1-4 reach every scale, not only the units.
_AMOUNTS_TIYN = st.builds(
    lambda groups, tiyn: sum(group * 1000**power for power, group in enumerate(groups)) * 100 + tiyn,
    st.lists(st.integers(min_value=0, max_value=999), min_size=1, max_size=5),
    st.integers(min_value=0, max_value=99),
)


@given(_AMOUNTS_TIYN)
def test_every_amount_reads_back_from_its_words(amount_tiyn):
    words = tenge_in_words(amount_tiyn)

    assert words[0].isupper() and "  " not in words
    assert _read_words(words) == amount_tiyn


@given(st.integers(min_value=1, max_value=999))
def test_a_feminine_noun_takes_odna_and_dve(number):
    masculine, feminine = number_in_words(number), number_in_words(number, feminine=True)

    words = masculine.split(" ")
    words[-1] = {"один": "одна", "два": "две"}.get(words[-1], words[-1])
    assert feminine == " ".join(words)
