"""What the allow-list command gate (core.command_policy.check) costs per command, and what it decides.

    .venv/bin/python -m bench.command_gate [--quick]

The commands are the two corpora of tests/core/commands/ (ordinary developer commands and destructive ones), checked
in-process against a project root that need not exist (the gate does no I/O), with the sandbox assumed. Each command
is checked once untimed (warming bashlex's tables), then timed: full 5 rounds, --quick 1. Figures:

* gate time per command: mean and p99 over every timed check, ms. Target p99 <= 10 ms (a model turn takes seconds;
  the gate runs once per command);
* decisions (informational): ordinary commands that ask (target of the tests: <= 3 %) and destructive commands that
  run (must be 0), with the sandbox; the same without it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Figure, percentile  # noqa: E402
from core.command_policy import check  # noqa: E402

GATE_TIME = "command gate time per command"
GATE_DECISIONS = "command gate decisions on the corpora"
NAMES = [GATE_TIME, GATE_DECISIONS]
COMMANDS = ROOT / "tests" / "core" / "commands"
PROJECT = "/srv/project"


def corpora() -> tuple[list[str], list[str]]:
    ordinary = [json.loads(line) for line in (COMMANDS / "ordinary.jsonl").read_text().splitlines() if line.strip()]
    destructive = [json.loads(line)["command"] for line in (COMMANDS / "destructive.jsonl").read_text().splitlines()
                   if line.strip()]
    return ordinary, destructive


def run(quick: bool, out=print) -> list[Figure]:
    ordinary, destructive = corpora()
    commands = ordinary + destructive
    for command in commands:
        check(command, PROJECT, sandboxed=True)
    times_ms: list[float] = []
    for _ in range(1 if quick else 5):
        for command in commands:
            start = time.perf_counter()
            check(command, PROJECT, sandboxed=True)
            times_ms.append((time.perf_counter() - start) * 1000)
    mean, p99 = statistics.fmean(times_ms), percentile(times_ms, 99)
    found = [Figure(GATE_TIME, f"mean {mean:.2f} ms, p99 {p99:.2f} ms, max {max(times_ms):.2f} ms "
                               f"(n={len(times_ms)}, {len(commands)} commands)", "p99 <= 10 ms", p99 <= 10)]
    parts = []
    for sandboxed in (True, False):
        asked = sum(check(c, PROJECT, sandboxed=sandboxed).decision == "ask" for c in ordinary)
        ran = sum(check(c, PROJECT, sandboxed=sandboxed).decision == "run" for c in destructive)
        parts.append(f"{'sandbox' if sandboxed else 'no sandbox'}: ordinary asked {asked}/{len(ordinary)} "
                     f"({100 * asked / len(ordinary):.1f} %), destructive ran {ran}/{len(destructive)}")
    found.append(Figure(GATE_DECISIONS, "; ".join(parts)))
    for figure in found:
        out(figure.line())
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.command_gate", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one timed round instead of five")
    run(parser.parse_args(argv).quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
