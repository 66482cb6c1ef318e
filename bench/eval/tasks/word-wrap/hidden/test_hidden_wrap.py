import pytest

from wrap import fill, wrap


@pytest.mark.parametrize("text, width, lines", [
    ("the quick brown fox", 10, ["the quick", "brown fox"]),
    ("the quick brown fox jumps", 10, ["the quick", "brown fox", "jumps"]),
    ("a b c", 3, ["a b", "c"]),
    ("a b c", 5, ["a b c"]),
    ("a b c", 1, ["a", "b", "c"]),
    ("hello", 5, ["hello"]),
    ("hello world", 5, ["hello", "world"]),
    ("hello world", 11, ["hello world"]),
    ("hello world", 10, ["hello", "world"]),
])
def test_wrap(text, width, lines):
    assert wrap(text, width) == lines


def test_a_long_word_stands_alone_unbroken():
    assert wrap("a extraordinarily b", 5) == ["a", "extraordinarily", "b"]
    assert wrap("extraordinarily", 3) == ["extraordinarily"]


def test_any_whitespace_separates_words():
    assert wrap("one  two\tthree\nfour\n\nfive", 9) == ["one two", "three", "four five"]


def test_no_empty_lines():
    assert wrap("", 10) == []
    assert wrap("   \n\t ", 10) == []
    assert wrap("  leading and trailing  ", 7) == ["leading", "and", "trailing"]


def test_lines_fit():
    text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore"
    for width in range(1, 40):
        lines = wrap(text, width)
        assert " ".join(lines) == " ".join(text.split())
        for line, following in zip(lines, lines[1:] + [None]):
            assert line and line == line.strip()
            assert len(line) <= width or " " not in line
            if following is not None:  # the next line's first word did not fit
                assert len(line) + 1 + len(following.split()[0]) > width


def test_fill():
    assert fill("a b c", 3) == "a b\nc"
    assert fill("", 3) == ""


@pytest.mark.parametrize("width", [0, -5])
def test_width_must_be_positive(width):
    with pytest.raises(ValueError):
        wrap("a", width)
