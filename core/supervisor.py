"""Keep a child process running: `python main_tars.py up` uses it for its embedded Redis and its worker.

A child that exits while TARS runs (a crash, the OOM killer, someone's kill) is started again after a short
backoff, so one fault never leaves TARS without Redis or without a worker for good.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from typing import Callable, Protocol

log = logging.getLogger("tars.supervisor")

BACKOFF_MAX_SECONDS = 30.0
STEADY_SECONDS = 60.0  # a child that ran this long resets the backoff


def run_in_session(argv: list[str], *, cwd, env, timeout: float) -> tuple[int, bytes, bytes]:
    """Run argv to its end in a session of its own: (exit code, stdout, stderr). On timeout the whole group is killed
    (a build uv started, an ssh git started) and subprocess.TimeoutExpired raised."""
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.communicate()
        raise
    return process.returncode, out, err


class Child(Protocol):
    def poll(self) -> int | None: ...


class KeepAlive(threading.Thread):
    """Runs start() (unless given the running child) and again whenever the child has exited; stop() ends it."""

    def __init__(self, name: str, start: Callable[[], Child], child: Child | None = None, interval: float = 0.5):
        super().__init__(name=f"keepalive-{name}", daemon=True)
        self.label = name
        self._start = start
        self.interval = interval
        self._stopping = threading.Event()
        self.restarts = 0
        self.child: Child = child if child is not None else start()  # child: one already running

    def run(self) -> None:
        backoff, started = 1.0, time.monotonic()
        while not self._stopping.wait(self.interval):
            code = self.child.poll()
            if code is None:
                continue
            if time.monotonic() - started > STEADY_SECONDS:
                backoff = 1.0
            log.warning("%s exited (status %s); starting it again in %.0f s", self.label, code, backoff)
            if self._stopping.wait(backoff):
                return
            try:
                self.child = self._start()
                self.restarts += 1
                started = time.monotonic()
                log.info("%s is running again (restart %d)", self.label, self.restarts)
            except Exception as exc:  # e.g. the port is still taken: try again later
                log.error("%s could not be started again: %s", self.label, exc)
            backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)

    def stop(self) -> Child:
        """Stop watching (the caller then stops the child itself, as it sees fit)."""
        self._stopping.set()
        if self.is_alive():
            self.join(timeout=self.interval + 1)
        return self.child


def stop_process(process: subprocess.Popen, grace: float = 5) -> None:
    """Stop a TARS process as a person would: Ctrl+C (warm), Ctrl+C again (cold), then kill."""
    for _ in range(2):
        if process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            pass
    process.kill()
    process.wait()
