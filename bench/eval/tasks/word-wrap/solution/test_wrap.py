import pytest

from wrap import fill, wrap


def test_wrap():
    assert wrap("the quick brown fox", 10) == ["the quick", "brown fox"]


def test_fill():
    assert fill("a b c", 3) == "a b\nc"


def test_width_must_be_positive():
    with pytest.raises(ValueError):
        wrap("a", 0)


def test_long_words_and_whitespace():
    assert wrap("a  extraordinarily\nb", 5) == ["a", "extraordinarily", "b"]
    assert wrap("  ", 5) == []
