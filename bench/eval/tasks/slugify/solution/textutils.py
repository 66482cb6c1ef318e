"""Text helpers for the blog engine."""

import re
import unicodedata


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


def slugify(text, max_length=None):
    """text as a URL slug: ASCII letters and digits in lower case, words joined by single hyphens."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if max_length is None or len(slug) <= max_length:
        return slug
    if slug[max_length] == "-":
        return slug[:max_length]
    cut = slug.rfind("-", 0, max_length)
    return slug[:cut] if cut > 0 else slug[:max_length]
