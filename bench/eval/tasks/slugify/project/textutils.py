"""Text helpers for the blog engine."""

import re


def collapse_whitespace(text):
    """Every run of whitespace becomes one space; none at either end."""
    return re.sub(r"\s+", " ", text).strip()


def truncate(text, width, suffix="..."):
    """text cut to at most width characters, ending with suffix when it was cut."""
    if width < len(suffix):
        raise ValueError("width is shorter than the suffix")
    if len(text) <= width:
        return text
    return text[: width - len(suffix)] + suffix
