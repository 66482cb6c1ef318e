"""Debian packages the test run installs by itself when they are missing: Chromium for the dashboard's browser tests,
bubblewrap for the sandbox's second backend. The first test process that needs one installs it (as root, under a
file lock, so three pytest-xdist processes never run apt at once; the others wait, then find it installed). Not root,
or no apt-get: the tests that need it skip, naming the command that installs it."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

LOCK = Path("/tmp/tars-test-apt.lock")
LOG = Path("/tmp/tars-test-apt.log")


def _apt_get(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with open(LOG, "a") as log:
        log.write(f"\n$ apt-get {' '.join(args)}\n")
        log.flush()
        # another apt or dpkg run (unattended-upgrades, a developer) holds dpkg's lock: wait for it, not fail
        return subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=300", *args], env=env, stdout=log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=900)


def ensure(binary: Path, packages: tuple[str, ...], needed_by: str) -> Path:
    """binary, installed first from Debian's `packages` if it is missing (root only; else pytest.skip)."""
    if binary.exists():
        return binary
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"{needed_by} need {binary}: install it with `sudo apt-get install {' '.join(packages)}` (the "
                    "test run installs it by itself only as root)")
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be installing it right now: wait for it
        try:
            if binary.exists():
                return binary
            started = time.monotonic()
            args = ("install", "-y", "-q", "--no-install-recommends", *packages)
            if _apt_get(*args).returncode != 0:
                # no package lists yet (a fresh machine), or stale ones naming versions gone from the mirror
                _apt_get("update", "-q")
                _apt_get(*args)
            with open(LOG, "a") as log:
                log.write(f"{' '.join(packages)} install took {time.monotonic() - started:.1f} s\n")
            if not binary.exists():
                tail = LOG.read_text(errors="replace")[-2000:]
                pytest.fail(f"`apt-get install {' '.join(packages)}` did not install {binary}; its log ends:\n{tail}")
            return binary
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
