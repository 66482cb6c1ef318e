import pytest

from durations import format_duration, parse_duration


@pytest.mark.parametrize("text, seconds", [
    ("45s", 45), ("90m", 5400), ("1h 30m", 5400), ("1h30m", 5400), ("2d3h", 183600), ("1h30m15s", 5415),
    ("2d 3h 5s", 183605), ("0s", 0), ("1d", 86400), ("100h", 360000), ("1d 1s", 86401),
])
def test_parse(text, seconds):
    assert parse_duration(text) == seconds
    assert isinstance(parse_duration(text), int)


@pytest.mark.parametrize("bad", [
    "", " ", "10", "5x", "1m 1h", "1h1h", "30s 1m", "-5m", "1.5h", "h", "1h 30", "d", "1hm", "1h,30m", "3s 2s",
])
def test_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_round_trip():
    for seconds in list(range(0, 4000, 7)) + [86399, 86400, 86401, 90061, 10 ** 7, 123456789]:
        assert parse_duration(format_duration(seconds)) == seconds
