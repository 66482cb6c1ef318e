"""The benchmarks keep running: `python -m bench --quick` exits 0 and prints every figure (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import FIGURE_NAMES

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(600)  # every group of the benchmark once: minutes on a loaded machine
def test_quick_benchmark_prints_every_figure():
    done = subprocess.run([sys.executable, "-m", "bench", "--quick"], cwd=ROOT, capture_output=True, text=True,
                          timeout=580)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in FIGURE_NAMES:
        assert f"{name}: " in done.stdout, f"{name!r} missing from:\n{done.stdout}"
    assert "machine: " in done.stdout and "summary: " in done.stdout
