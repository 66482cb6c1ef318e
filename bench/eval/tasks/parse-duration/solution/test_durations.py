import pytest

from durations import format_duration, parse_duration


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (45, "45s"), (90, "1m 30s"), (3600, "1h"), (5400, "1h 30m"), (183605, "2d 3h 5s"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("bad", [-1, 1.5, "10", None])
def test_format_duration_rejects(bad):
    with pytest.raises(ValueError):
        format_duration(bad)


@pytest.mark.parametrize("text, seconds", [("45s", 45), ("1h 30m", 5400), ("2d3h", 183600)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "10", "5x", "1m 1h", "-5m", "1.5h"])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_round_trip():
    for seconds in range(0, 100000, 37):
        assert parse_duration(format_duration(seconds)) == seconds
