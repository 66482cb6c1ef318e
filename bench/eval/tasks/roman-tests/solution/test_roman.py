import pytest

from roman import from_roman, to_roman

KNOWN = [(1, "I"), (3, "III"), (4, "IV"), (9, "IX"), (14, "XIV"), (40, "XL"), (90, "XC"), (400, "CD"),
         (900, "CM"), (1994, "MCMXCIV"), (2024, "MMXXIV"), (3999, "MMMCMXCIX")]


@pytest.mark.parametrize("number, numeral", KNOWN)
def test_to_roman(number, numeral):
    assert to_roman(number) == numeral


@pytest.mark.parametrize("number, numeral", KNOWN)
def test_from_roman(number, numeral):
    assert from_roman(numeral) == number


def test_round_trip_over_the_whole_range():
    for number in range(1, 4000):
        assert from_roman(to_roman(number)) == number


@pytest.mark.parametrize("number", [0, -1, 4000, 10000])
def test_to_roman_range(number):
    with pytest.raises(ValueError):
        to_roman(number)


@pytest.mark.parametrize("value", [1.0, "5", None, True, False])
def test_to_roman_needs_an_int(value):
    with pytest.raises(TypeError):
        to_roman(value)


@pytest.mark.parametrize("text", ["", "IIII", "IC", "VX", "MMMM", "xiv", " XIV", "XIV ", "ABC", "IIX", "VV"])
def test_from_roman_rejects(text):
    with pytest.raises(ValueError):
        from_roman(text)


@pytest.mark.parametrize("value", [14, None, b"XIV"])
def test_from_roman_needs_a_str(value):
    with pytest.raises(TypeError):
        from_roman(value)
