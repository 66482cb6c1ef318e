"""Waiting in tests for something another process does (a worker, a server), with a clear failure."""

from __future__ import annotations

import time


def wait_until(check, timeout: float = 30.0, what: str = "condition", interval: float = 0.02,
               ignore: tuple[type[BaseException], ...] = ()):
    """check()'s first truthy value; AssertionError naming `what` after timeout. Exceptions in `ignore` count
    as not yet (e.g. a server that does not accept connections yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except ignore:
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)
