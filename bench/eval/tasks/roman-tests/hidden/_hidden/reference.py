"""Roman numerals for the chapter headings of the book builder."""

import re

NUMERALS = [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
            (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]
VALUES = {"M": 1000, "D": 500, "C": 100, "L": 50, "X": 10, "V": 5, "I": 1}
SHAPE = re.compile(r"[MDCLXVI]+")


def to_roman(number):
    """number (an int from 1 to 3999) as a Roman numeral in canonical form: 1994 -> "MCMXCIV".

    TypeError for anything but an int (True and False included); ValueError outside 1..3999.
    """
    if isinstance(number, bool) or not isinstance(number, int):
        raise TypeError(f"expected an int, got {type(number).__name__}")
    if not 1 <= number <= 3999:
        raise ValueError(f"{number} is outside 1..3999")
    parts = []
    for value, letters in NUMERALS:
        count, number = divmod(number, value)
        parts.append(letters * count)
    return "".join(parts)


def from_roman(text):
    """The int a canonical Roman numeral stands for: "MCMXCIV" -> 1994.

    Only upper-case numerals in canonical form are accepted: "IIII", "IC", "VX", "MMMM" (over 3999), "", "xiv"
    and surrounding spaces all raise ValueError. TypeError for anything but a str.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a str, got {type(text).__name__}")
    if not SHAPE.fullmatch(text):
        raise ValueError(f"{text!r} is not a Roman numeral")
    total = 0
    for letter, following in zip(text, text[1:] + " "):
        value = VALUES[letter]
        total += -value if following != " " and VALUES[following] > value else value
    if not 1 <= total <= 3999 or to_roman(total) != text:
        raise ValueError(f"{text!r} is not a canonical Roman numeral")
    return total
