"""Known secret values never leave the process: scrubbed from logs, progress messages, task results and
the tool output sent to the model.

One Scrubber per process, built from Settings.secret_values(); `install_log_scrubbing` makes every log
record (any logger, RQ's and httpx's included, exception text too) pass through it.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Iterable, Mapping

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 4  # a 4-digit CONFIRMATION_CODE must be redacted too
FIELD_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")  # a record's own keys ("tests_passed"), left as they are


class Scrubber:
    def __init__(self, values: Iterable[str] = ()):
        wanted = sorted({v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH},
                        key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in wanted)) if wanted else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, value: str) -> str:
        return self._pattern.sub(REDACTED, value) if self._pattern else value

    def value(self, value: Any, depth: int = 0) -> Any:
        """A JSON-safe, scrubbed deep copy of ``value`` (other objects become their str()). Keys are scrubbed too,
        except field names (snake_case): a secret that happens to be a word ("test") must not rename them."""
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, (bool, int)):
            return value
        if isinstance(value, float):
            return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
        if depth > 20:
            return REDACTED
        if isinstance(value, Mapping):
            return {k if isinstance(k, str) and FIELD_NAME.match(k) else self.text(str(k)): self.value(v, depth + 1)
                    for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self.value(v, depth + 1) for v in value]
        return self.text(str(value))


_installed: list[Scrubber] = []


def install_log_scrubbing(values: Iterable[str]) -> Scrubber:
    """Scrub every log record made from now on in this process (and in the work-horses it forks)."""
    scrubber = Scrubber(values)
    if not scrubber:
        return scrubber
    if _installed:  # once per process: the newest values win
        _installed[0] = scrubber
        return scrubber
    _installed.append(scrubber)
    make_record = logging.getLogRecordFactory()
    formatter = logging.Formatter()

    def scrubbed_record(*args, **kwargs) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        active = _installed[0]
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to logging's own error report
            return record
        clean = active.text(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = active.text(formatter.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = active.text(record.stack_info)
        return record

    logging.setLogRecordFactory(scrubbed_record)
    return scrubber
