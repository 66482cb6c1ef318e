import pytest

from textutils import collapse_whitespace, slugify, truncate


def test_collapse_whitespace():
    assert collapse_whitespace("  a \t b\n\nc ") == "a b c"


def test_truncate():
    assert truncate("hello world", 8) == "hello..."
    assert truncate("short", 8) == "short"


def test_truncate_needs_room_for_the_suffix():
    with pytest.raises(ValueError):
        truncate("hello", 2)


def test_slugify():
    assert slugify("Crème Brûlée!") == "creme-brulee"


def test_slugify_max_length():
    assert slugify("naïve café déjà vu", max_length=11) == "naive-cafe"
    assert slugify("naïve café", max_length=3) == "nai"
