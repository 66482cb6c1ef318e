"""Durations as people write them, for the job scheduler's config."""

import re

UNITS = [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)]
PATTERN = re.compile(r"(?:(\d+)d)? *(?:(\d+)h)? *(?:(\d+)m)? *(?:(\d+)s)?")


def format_duration(seconds):
    """A whole number of seconds as "2d 3h 5s": the non-zero units, largest first; "0s" for zero."""
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
        raise ValueError("seconds must be an int >= 0")
    parts = []
    for unit, size in UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts) or "0s"


def parse_duration(text):
    """"1h 30m" -> 5400: whole numbers with the units d, h, m, s, each at most once and in that order."""
    match = PATTERN.fullmatch(text)
    if not match or not any(match.groups()):
        raise ValueError(f"not a duration: {text!r}")
    return sum(int(count) * size for count, (_, size) in zip(match.groups(), UNITS) if count)
