"""Every TARS benchmark in one command, each figure with its target and PASS/MISS.

    .venv/bin/python -m bench [--quick] [GROUP ...]

Groups: loop (the coding loop in-process), git (what a task's own git checkout costs: prepare, checkpoint,
summary, in temporary repositories), sandbox (what the OS sandbox adds to each command the model runs), tasks
(= enqueue confirm cache throughput, on real workers), plans (a planned task of four subtasks on two workers
against the same work as one task), memory, delivery (progress updates: append → n8n), dashboard
(runs `python -m bench.dashboard`: the web dashboard's SSE streams on a real `main_tars.py serve`, latency and
Redis load per open tab, with a private Redis of its own), voice (runs `python -m bench.voice` as its own process).
No group: all of them. --quick uses tiny counts (for the smoke test, tests/test_bench.py); its numbers mean nothing.
A MISS is a finding, not an error: the exit code is 0 unless a benchmark could not run.

Each module's docstring defines its figures (bench/loop.py, bench/git.py, bench/sandbox.py, bench/tasks.py,
bench/plans.py, bench/memory.py, bench/delivery.py, bench/dashboard.py, bench/voice.py). The machine is shared and
noisy: figures are ratios or distributions measured in the same run (baseline and TARS interleaved), medians where
runs repeat.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import dashboard  # noqa: E402
from bench import delivery as delivery_bench  # noqa: E402
from bench import git as git_bench  # noqa: E402
from bench import loop, memory, tasks  # noqa: E402
from bench import plans as plans_bench  # noqa: E402
from bench import sandbox as sandbox_bench  # noqa: E402
from bench.common import Figure, Rig, machine  # noqa: E402

VOICE_RELAY = "relay overhead per turn (voice)"
VOICE_WEBHOOK = "/voice webhook latency under load (voice)"
FIGURE_NAMES = [*loop.NAMES, *git_bench.NAMES, *sandbox_bench.NAMES, *tasks.NAMES, *plans_bench.NAMES, *memory.NAMES,
                *delivery_bench.NAMES, *dashboard.NAMES, VOICE_RELAY, VOICE_WEBHOOK]
GROUPS = ("loop", "git", "sandbox", *tasks.GROUPS, "plans", "memory", "delivery", "dashboard", "voice")
ALIASES = {"tasks": set(tasks.GROUPS)}


def start_voice(quick: bool) -> subprocess.Popen:
    args = ["--turns", "10", "--calls", "40", "--concurrency", "5"] if quick else []
    return subprocess.Popen([sys.executable, "-m", "bench.voice", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def start_dashboard(quick: bool) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench.dashboard", *(["--quick"] if quick else [])], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def dashboard_figures(process: subprocess.Popen, out=print) -> list[Figure]:
    stdout, stderr = process.communicate(timeout=900)
    if process.returncode != 0:
        raise SystemExit(f"bench: python -m bench.dashboard exited {process.returncode}:\n{stdout}{stderr}")
    found = dashboard.parse(stdout)
    for figure in found:
        out(figure.line())
    return found


def voice(process: subprocess.Popen, out=print) -> list[Figure]:
    stdout, stderr = process.communicate(timeout=900)
    done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    lines = done.stdout.splitlines()

    def stats(prefix: str) -> tuple[str, float, float]:
        line = next(line for line in lines if line.startswith(prefix))
        match = re.search(r"p50=([\d.]+) ms p99=([\d.]+) ms", line)
        return line.split(" | ")[0].split(": ", 1)[1], float(match.group(1)), float(match.group(2))

    relay, relay_p50, relay_p99 = stats("relay overhead")
    webhook, _, webhook_p99 = stats("/voice webhook")
    still = re.search(r"\((\d+ of 2 tasks still running at the end)\)", done.stdout)
    busy = f" ({still.group(1)})" if still else ""
    found = [Figure(VOICE_RELAY, relay, "p50 <= 5 ms, p99 <= 20 ms", relay_p50 <= 5 and relay_p99 <= 20),
             Figure(VOICE_WEBHOOK, webhook + busy, "p99 <= 50 ms", webhook_p99 <= 50)]
    for line in lines:
        if line.startswith("  of which"):
            found.append(Figure("  " + line.strip().split(":", 1)[0], line.split(": ", 1)[1]))
    for figure in found:
        out(figure.line())
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", metavar="GROUP", help=f"any of: tasks, {', '.join(GROUPS)}")
    parser.add_argument("--quick", action="store_true", help="tiny counts (< 60 s), for the smoke test")
    args = parser.parse_args(argv)
    wanted: set[str] = set()
    for group in args.groups or GROUPS:
        if group not in GROUPS and group not in ALIASES:
            parser.error(f"unknown group {group!r}: use tasks or one of {', '.join(GROUPS)}")
        wanted |= ALIASES.get(group, {group})
    began = time.monotonic()
    print(machine(), flush=True)
    print(f"mode: {'quick (tiny counts: the numbers mean nothing)' if args.quick else 'full'}; groups: "
          f"{', '.join(g for g in GROUPS if g in wanted)}", flush=True)

    def out(line: str) -> None:
        print(line, flush=True)

    found: list[Figure] = []
    # --quick runs the dashboard and voice benchmarks (their own processes) alongside the others, to stay under a
    # minute; a full run runs each alone after the others, so that no figure disturbs another.
    dashboard_process = start_dashboard(True) if args.quick and "dashboard" in wanted else None
    voice_process = start_voice(True) if args.quick and "voice" in wanted else None
    # git, dashboard (a private Redis of its own) and voice need no shared Redis: `bench git` alone starts none.
    with Rig() if wanted & {"loop", "plans", "memory", "delivery", *tasks.GROUPS} else nullcontext() as rig:
        if "loop" in wanted:
            found += loop.run(rig, args.quick, out)
        if "git" in wanted:
            found += git_bench.run(args.quick, out)
        if "sandbox" in wanted:
            found += sandbox_bench.run(args.quick, out)
        if wanted & set(tasks.GROUPS):
            found += tasks.run(rig, args.quick, wanted & set(tasks.GROUPS), out)
        if "plans" in wanted:
            found += plans_bench.run(rig, args.quick, out)
        if "memory" in wanted:
            found += memory.run(rig, args.quick, out)
        if "delivery" in wanted:
            found += delivery_bench.run(rig, args.quick, out)
    if "dashboard" in wanted:
        found += dashboard_figures(dashboard_process or start_dashboard(False), out)
    if "voice" in wanted:
        found += voice(voice_process or start_voice(False), out)
    judged = [f for f in found if f.passed is not None]
    missed = [f for f in judged if not f.passed]
    print(f"\nsummary: {len(judged) - len(missed)} of {len(judged)} targets PASS"
          + (f"; MISS: {'; '.join(f.name for f in missed)}" if missed else "")
          + f" ({time.monotonic() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
