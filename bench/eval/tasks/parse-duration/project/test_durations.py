import pytest

from durations import format_duration


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (45, "45s"), (90, "1m 30s"), (3600, "1h"), (5400, "1h 30m"), (183605, "2d 3h 5s"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("bad", [-1, 1.5, "10", None])
def test_format_duration_rejects(bad):
    with pytest.raises(ValueError):
        format_duration(bad)
