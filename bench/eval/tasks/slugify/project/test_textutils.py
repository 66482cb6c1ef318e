import pytest

from textutils import collapse_whitespace, truncate


def test_collapse_whitespace():
    assert collapse_whitespace("  a \t b\n\nc ") == "a b c"


def test_truncate():
    assert truncate("hello world", 8) == "hello..."
    assert truncate("short", 8) == "short"


def test_truncate_needs_room_for_the_suffix():
    with pytest.raises(ValueError):
        truncate("hello", 2)
