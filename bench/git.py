"""What each task's own git checkout costs (core.git_workspace), with the real git binary in temporary folders.

    .venv/bin/python -m bench git [--quick]

The project is N synthetic files of ~2 KB (full: 2000 in 40 folders; --quick: 200 in 4), twice: committed in an
owner's repository (worktree mode) and as a plain folder (shadow mode). git reads no config of this machine or
user: HOME is an empty folder and GIT_CONFIG_NOSYSTEM=1, in this process's environment for the run only (as
tests/core/test_git_workspace.py's private_git). Each mode runs K tasks (full 5, --quick 1) the way the worker does
(core/background_worker.py, Checkpoints): prepare(), then 20 rounds of a step that changed one file (a line
appended to a different file each time, spread over the folders) and a step that changed nothing (the common "ran
ls" step), each followed by its checkpoint(); then summary(). The two modes' tasks are interleaved step by step,
and so is the baseline, so that a figure and its baseline see the same machine. Figures, ms:

* spawn floor: one bare `git --version` subprocess (subprocess.run), median of one before each changed step; every
  figure below is also given as that many spawns' worth. The same through core.git_workspace._run (its -c options,
  environment, own session) is shown beside it;
* prepare, worktree: median over the K tasks (`git worktree add` checks N files out);
* prepare, shadow, first: a data folder without a shadow repository for each sample (the first is the shadow tasks'
  own), so prepare creates it and hashes the N files into it; repeat: the K shadow tasks, which reuse it (a fresh
  index of their own still reads and hashes the N files);
* checkpoint per changed / unchanged step: p50 and p95 over the K x 20 steps. Target: a changed step in worktree
  mode p50 <= 50 ms (a model turn takes seconds; 50 ms is 1-2 % of it). Everything else is informational;
* summary after 20 checkpoints: median over the K tasks;
* the owner's branch follows: after each changed step, git_workspace.follow() (the fetch of tars/<id> into the
  owner's repository), which the worker runs in a thread beside the loop; the checkpoint figures are without it;
* checkpoint's git calls: the same steps' git processes, each timed by wrapping core.git_workspace._run in this
  process (microseconds added); p50 per subcommand (summed when a step runs it more than once: "rev-parse x2"),
  and what is left: Python.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Figure, median, percentile  # noqa: E402
from core import git_workspace as gw  # noqa: E402

FULL_FILES = 2000
QUICK_FILES = 200
FILES_PER_FOLDER = 50
STEPS = 20  # checkpointed steps per task (each: a changed one and an unchanged one); summary() comes after them
OWNER = ("-c", "user.name=Owner", "-c", "user.email=owner@example.com", "-c", "init.defaultBranch=main")

SPAWN = "git spawn floor (one bare git --version subprocess)"
PREPARE_WORKTREE = f"git prepare, worktree, {FULL_FILES} files"
PREPARE_SHADOW_FIRST = f"git prepare, shadow, {FULL_FILES} files, first (creates the shadow repo)"
PREPARE_SHADOW_REPEAT = f"git prepare, shadow, {FULL_FILES} files, repeat (reuses it)"
CHANGED_WORKTREE = f"git checkpoint per changed step, worktree, {FULL_FILES} files"
UNCHANGED_WORKTREE = f"git checkpoint per unchanged step, worktree, {FULL_FILES} files"
CHANGED_SHADOW = f"git checkpoint per changed step, shadow, {FULL_FILES} files"
UNCHANGED_SHADOW = f"git checkpoint per unchanged step, shadow, {FULL_FILES} files"
SUMMARY_WORKTREE = f"git summary after {STEPS} checkpoints, worktree, {FULL_FILES} files"
SUMMARY_SHADOW = f"git summary after {STEPS} checkpoints, shadow, {FULL_FILES} files"
FOLLOW_WORKTREE = f"git owner's branch follows a changed step (beside the loop), worktree, {FULL_FILES} files"
CALLS_WORKTREE = f"  git checkpoint's git calls, worktree, {FULL_FILES} files"
CALLS_SHADOW = f"  git checkpoint's git calls, shadow, {FULL_FILES} files"
NAMES = [SPAWN, PREPARE_WORKTREE, PREPARE_SHADOW_FIRST, PREPARE_SHADOW_REPEAT, CHANGED_WORKTREE, UNCHANGED_WORKTREE,
         CHANGED_SHADOW, UNCHANGED_SHADOW, SUMMARY_WORKTREE, SUMMARY_SHADOW, FOLLOW_WORKTREE, CALLS_WORKTREE,
         CALLS_SHADOW]
TARGET_MS = 50.0


@contextmanager
def private_git(home: Path):
    """No git config of this machine or user is read, by this process's git children, for the block only."""
    names = ("HOME", "GIT_CONFIG_NOSYSTEM", "GIT_CONFIG_GLOBAL")
    saved = {name: os.environ.get(name) for name in names}
    home.mkdir(parents=True, exist_ok=True)
    os.environ["HOME"] = str(home)
    os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
    os.environ.pop("GIT_CONFIG_GLOBAL", None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def owner_git(cwd: Path, *args: str) -> None:
    done = subprocess.run(["git", *OWNER, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise SystemExit(f"bench: git {' '.join(args)} failed in {cwd}: {done.stderr.strip()}")


def make_project(folder: Path, files: int) -> list[Path]:
    """files synthetic source files of ~2 KB, FILES_PER_FOLDER to a folder; their paths, in order."""
    paths = []
    for number in range(files):
        path = folder / f"pkg{number // FILES_PER_FOLDER:02d}" / f"module{number:04d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'"""Synthetic module {number}."""\n'
                        + "".join(f"value_{number}_{line:02d} = {number * line}  # a line of the module\n"
                                  for line in range(48)))
        paths.append(path.relative_to(folder))
    return paths


def ms_since(began: float) -> float:
    return (time.perf_counter() - began) * 1000


def timed(function, *args, **kwargs):
    began = time.perf_counter()
    result = function(*args, **kwargs)
    return ms_since(began), result


class CallTimer:
    """core.git_workspace._run wrapped: each git process's subcommand and ms, collected while `recording`."""

    def __init__(self):
        self.original = gw._run
        self.calls: list[tuple[str, float]] | None = None

    def __enter__(self) -> CallTimer:
        def run(args, **options):
            began = time.perf_counter()
            try:
                return self.original(args, **options)
            finally:
                if self.calls is not None:
                    self.calls.append((gw._subcommand(args), ms_since(began)))
        gw._run = run
        return self

    def __exit__(self, *exc) -> None:
        gw._run = self.original

    def checkpoint(self, checkout: gw.TaskCheckout, message: str) -> tuple[float, gw.Checkpoint | None, dict]:
        """checkpoint() timed as a whole, and the ms of its git calls summed by subcommand (plus 'python')."""
        self.calls = []
        try:
            elapsed, point = timed(gw.checkpoint, checkout, message, sync=False)  # what the loop waits for
        finally:
            calls, self.calls = self.calls, None
        counts = Counter(name for name, _ in calls)
        split: dict[str, float] = {}
        for name, ms in calls:  # in the order checkpoint() runs them
            key = name if counts[name] == 1 else f"{name} x{counts[name]}"
            split[key] = split.get(key, 0.0) + ms
        split["python"] = elapsed - sum(ms for _, ms in calls)
        split["#calls"] = len(calls)
        return elapsed, point, split


class Mode:
    """One mode's project, data folder, and everything measured in it."""

    def __init__(self, name: str, project: Path, data: Path, files: list[Path]):
        self.name, self.project, self.data, self.files = name, project, data, files
        self.prepare: list[float] = []
        self.changed: list[float] = []
        self.unchanged: list[float] = []
        self.summary: list[float] = []
        self.follow: list[float] = []  # the owner's branch brought in step after a changed step (beside the loop)
        self.split = {"changed": [], "unchanged": []}


def one_round(mode: Mode, task_id: str, first_file: int, stride: int, timer: CallTimer, spawn) -> None:
    """A task as the worker runs it: prepare, STEPS x (a changed step, an unchanged step) with checkpoints, summary."""
    ms, checkout = timed(gw.prepare, task_id, mode.project, mode.data)
    mode.prepare.append(ms)
    for step in range(STEPS):
        spawn()
        relative = mode.files[(first_file + step) * stride % len(mode.files)]
        with open(Path(checkout.path) / relative, "a") as handle:
            handle.write(f"edited_{task_id.replace('-', '_')}_{step} = {step}\n")
        ms, point, split = timer.checkpoint(checkout, f"edited {relative}")
        if point is None:
            raise SystemExit(f"bench: the {mode.name} checkpoint after editing {relative} committed nothing")
        mode.changed.append(ms)
        mode.split["changed"].append(split)
        mode.follow.append(timed(gw.follow, checkout)[0])
        ms, point, split = timer.checkpoint(checkout, "ran ls")
        if point is not None:
            raise SystemExit(f"bench: the {mode.name} checkpoint of a step that changed nothing committed {point}")
        mode.unchanged.append(ms)
        mode.split["unchanged"].append(split)
    ms, info = timed(gw.summary, checkout)
    if info["commits"] != STEPS:
        raise SystemExit(f"bench: the {mode.name} task has {info['commits']} commits, not {STEPS}")
    mode.summary.append(ms)


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def spawns(ms: float, floor: float) -> str:
    return f"= {ms / floor:.1f} spawns" if floor > 0 else ""


def distribution(values: list[float], floor: float) -> tuple[float, str]:
    p50, p95 = percentile(values, 50), percentile(values, 95)
    return p50, f"p50={p50:.1f} ms p95={p95:.1f} ms over {len(values)} steps ({spawns(p50, floor)} at p50)"


def calls_text(splits: list[dict]) -> str:
    names = [name for name in splits[0] if name not in ("python", "#calls")] + ["python"]
    parts = [f"{name} {median([s.get(name, 0.0) for s in splits]):.1f}" for name in names]
    return f"{round(median([s['#calls'] for s in splits]))} git processes: " + " + ".join(parts)


def run(quick: bool, out=print) -> list[Figure]:
    files, tasks = (QUICK_FILES, 1) if quick else (FULL_FILES, 5)
    folders = -(-files // FILES_PER_FOLDER)
    size = f"{files} files in {folders} folders" + (" (quick)" if quick else "")
    work = Path(tempfile.mkdtemp(prefix="tars-bench-git-"))
    stride = 101  # prime, so consecutive steps edit different files in different folders
    floor_bare: list[float] = []
    floor_run: list[float] = []

    def spawn() -> None:
        began = time.perf_counter()
        subprocess.run(["git", "--version"], capture_output=True, check=True, timeout=30)
        floor_bare.append(ms_since(began))
        floor_run.append(timed(gw._run, ["--version"], cwd=str(work), what="run git --version")[0])

    try:
        with private_git(work / "home"), CallTimer() as timer:
            owner, plain = work / "owner", work / "plain"
            worktree = Mode("worktree", owner, work / "data-worktree", make_project(owner, files))
            shadow = Mode("shadow", plain, work / "data-shadow", make_project(plain, files))
            owner_git(owner, "init", "--quiet")
            owner_git(owner, "add", "-A")
            owner_git(owner, "commit", "--quiet", "-m", "the project")
            first: list[float] = []
            for task in range(tasks):
                # Shadow, first: a data folder without a shadow repository, so this prepare creates it. The first
                # one is the shadow tasks' own data folder: their prepare() calls are all repeats.
                data = shadow.data if task == 0 else work / f"data-first-{task}"
                first.append(timed(gw.prepare, f"first-{task}", plain, data)[0])
                for mode in (worktree, shadow):
                    one_round(mode, f"bench-{task}", task * STEPS, stride, timer, spawn)
        floor = median(floor_bare)
        changed_p50, changed_text = distribution(worktree.changed, floor)
        found = [
            Figure(SPAWN, f"{floor:.1f} ms median of {len(floor_bare)} (through core.git_workspace._run: "
                          f"{median(floor_run):.1f} ms)"),
            Figure(PREPARE_WORKTREE, f"{median(worktree.prepare):.1f} ms median of {plural(tasks, 'task id')} "
                                     f"({spawns(median(worktree.prepare), floor)}; {size})"),
            Figure(PREPARE_SHADOW_FIRST, f"{median(first):.1f} ms median of {plural(tasks, 'new shadow repo')} "
                                         f"({spawns(median(first), floor)}; {size})"),
            Figure(PREPARE_SHADOW_REPEAT, f"{median(shadow.prepare):.1f} ms median of {plural(tasks, 'task id')} "
                                          f"({spawns(median(shadow.prepare), floor)}; {size})"),
            Figure(CHANGED_WORKTREE, f"{changed_text}; {size}", f"p50 <= {TARGET_MS:g} ms",
                   changed_p50 <= TARGET_MS),
            Figure(UNCHANGED_WORKTREE, f"{distribution(worktree.unchanged, floor)[1]}; {size}"),
            Figure(CHANGED_SHADOW, f"{distribution(shadow.changed, floor)[1]}; {size}"),
            Figure(UNCHANGED_SHADOW, f"{distribution(shadow.unchanged, floor)[1]}; {size}"),
            Figure(SUMMARY_WORKTREE, f"{median(worktree.summary):.1f} ms median of {plural(tasks, 'task')} "
                                     f"({spawns(median(worktree.summary), floor)}; {size})"),
            Figure(SUMMARY_SHADOW, f"{median(shadow.summary):.1f} ms median of {plural(tasks, 'task')} "
                                   f"({spawns(median(shadow.summary), floor)}; {size})"),
            Figure(FOLLOW_WORKTREE, f"{distribution(worktree.follow, floor)[1]}; {size}"),
        ]
        for name, mode in ((CALLS_WORKTREE, worktree), (CALLS_SHADOW, shadow)):
            found.append(Figure(name, f"p50 ms per changed step, {calls_text(mode.split['changed'])}; per unchanged "
                                      f"step, {calls_text(mode.split['unchanged'])}"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for figure in found:
        out(figure.line())
    return found


if __name__ == "__main__":
    run("--quick" in sys.argv[1:])
