"""What a task's Python environment costs (core/project_env.py), with the real uv in temporary folders.

    .venv/bin/python -m bench.project_env [--quick]

The project: calc.py, a test of it, and requirements.txt naming one small package (six). Each figure runs
core.project_env.prepare() the way the worker does (the worker's own environment, scrubbed):

* first task: a made environment with an empty uv cache (uv venv, then pip + pytest + six downloaded from PyPI and
  installed); one sample, it needs a new cache each time;
* repeat task: the next tasks on the same cache, each with an environment of its own (what TARS does): median of
  K (full 5, --quick 1). Target: <= 2 s (a model turn takes seconds; a task has several);
* shared-environment alternative: what a repeat would cost if tasks shared one environment per project and
  dependency hash instead (`uv pip install` of the same packages into an existing environment: nothing to do but
  check), median of K. Informational: the price of the isolation per-task environments buy;
* the project's own .venv (with pytest): prepare() finding and using it, median of K.

Needs PyPI for the first figure; the others run from the cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Figure, median  # noqa: E402
from core import project_env  # noqa: E402
from core.tools import scrub_environment  # noqa: E402

FIRST = "project env, first task (empty uv cache: venv + pip, pytest, six from PyPI)"
REPEAT = "project env, repeat task (its own venv from the warm cache)"
SHARED = "project env, shared-venv alternative (install check into an existing venv)"
OWN = "project env, the project's own .venv (found and used)"
NAMES = [FIRST, REPEAT, SHARED, OWN]
TARGET_SECONDS = 2.0


def make_project(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (folder / "test_calc.py").write_text("from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n")
    (folder / "requirements.txt").write_text("six\n")
    return folder


def checkout(folder: Path) -> SimpleNamespace:
    return SimpleNamespace(path=str(folder), worktree=str(folder), project=str(folder), repo=str(folder),
                           mode="shadow")


def prepared(folder: Path, task_id: str, data: Path, base: dict) -> tuple[float, project_env.ProjectEnv]:
    began = time.monotonic()
    env = project_env.prepare(checkout(folder), task_id=task_id, data_dir=data, base=base)
    return time.monotonic() - began, env


def run(quick: bool, out=print) -> list[Figure]:
    samples = 1 if quick else 5
    work = Path(tempfile.mkdtemp(prefix="tars-bench-env-"))
    base = scrub_environment(os.environ)
    base.pop("UV_CACHE_DIR", None)  # the cache is the data folder's: empty at first
    try:
        project = make_project(work / "calc")
        data = work / "data"
        first, env = prepared(project, "first", data, base)
        if env.kind != project_env.MADE:
            raise SystemExit(f"bench: no environment could be made: {env.message}")
        repeats = []
        for sample in range(samples):
            seconds, made = prepared(project, f"repeat{sample}", data, base)
            repeats.append(seconds)
            made.discard()
        uv_env = project_env.uv_environment(base, data)
        shared = []
        for _ in range(samples):
            began = time.monotonic()
            subprocess.run([project_env.uv_binary(), "pip", "install", "--quiet", "--python",
                            str(env.venv / "bin" / "python"), *project_env.BASICS, "-r", "requirements.txt"],
                           cwd=project, env=uv_env, check=True)
            shared.append(time.monotonic() - began)
        own_project = make_project(work / "own")
        shutil.move(str(env.venv), own_project / ".venv")  # a venv with pytest in it, as an owner's would be
        own = [prepared(own_project, f"own{sample}", data, base)[0] for sample in range(samples)]
        repeat = median(repeats)
        found = [
            Figure(FIRST, f"{first:.2f} s ({env.message})"),
            Figure(REPEAT, f"{repeat:.2f} s median of {samples}", f"<= {TARGET_SECONDS:g} s",
                   repeat <= TARGET_SECONDS),
            Figure(SHARED, f"{median(shared):.2f} s median of {samples}"),
            Figure(OWN, f"{median(own) * 1000:.0f} ms median of {samples}"),
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for figure in found:
        out(figure.line())
    return found


if __name__ == "__main__":
    run("--quick" in sys.argv[1:])
