"""The shipped evaluation tasks, and running a task's hidden tests on a folder.

A task is a folder bench/eval/tasks/<name>/:

    task.toml   goal: what the owner would say; language: python or javascript; skills: tags such as
                reads-existing-code, fixes-a-bug, adds-tests, new-feature; hidden: the command that runs the hidden
                tests, where {python} stands for the harness's own interpreter (which has pytest); hidden_timeout:
                seconds it may take (optional, default HIDDEN_TIMEOUT_SECONDS)
    project/    the starting project (the harness commits it as the first commit of a fresh repository)
    hidden/     the hidden tests: laid over the finished checkout, then `hidden` runs there (exit 0 = solved)
    solution/   a reference solution: files laid over project/ that pass the hidden tests

The hidden tests run the model's code, so they run in TARS's OS sandbox when this machine has one (core/sandbox.py):
they may write only in the folder under test and a temporary folder, read no credentials, and have no network.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

ROOT = Path(__file__).resolve().parent.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core import project_env, sandbox  # noqa: E402
from core.config import setting_names  # noqa: E402
from core.tools import Workspace, scrub_environment  # noqa: E402

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
LANGUAGES = ("python", "javascript")
FIELDS = {"goal", "language", "skills", "hidden", "hidden_timeout"}
HIDDEN_TIMEOUT_SECONDS = 120.0
SKILL = re.compile(r"[a-z][a-z0-9-]*")
# What a copy of a project leaves out: caches a run may have left in the shipped folders.
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "node_modules")


class TaskError(Exception):
    """A task folder that is not a usable task, or a task name that names none; the message says which and why."""


@dataclass(frozen=True)
class EvalTask:
    name: str
    folder: Path
    goal: str
    language: str
    skills: tuple[str, ...]
    hidden: str
    hidden_timeout: float = HIDDEN_TIMEOUT_SECONDS

    @property
    def project(self) -> Path:
        return self.folder / "project"

    @property
    def hidden_tests(self) -> Path:
        return self.folder / "hidden"

    @property
    def solution(self) -> Path:
        return self.folder / "solution"

    def command(self) -> str:
        """The hidden command as run: {python} is this interpreter (TARS's, with pytest), quoted for bash."""
        return self.hidden.replace("{python}", shlex.quote(sys.executable))


def load(folder: Path) -> EvalTask:
    """The task in folder, checked: every field and folder there and of the right kind."""
    name = folder.name
    try:
        data = tomllib.loads((folder / "task.toml").read_text())
    except FileNotFoundError:
        raise TaskError(f"task {name}: no task.toml in {folder}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TaskError(f"task {name}: task.toml is not valid TOML ({exc})") from None
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise TaskError(f"task {name}: task.toml has unknown fields {', '.join(unknown)} (known: "
                        f"{', '.join(sorted(FIELDS))})")
    for field in ("goal", "hidden"):
        if not isinstance(data.get(field), str) or not data[field].strip():
            raise TaskError(f"task {name}: task.toml needs {field} (a non-empty string)")
    if data.get("language") not in LANGUAGES:
        raise TaskError(f"task {name}: language must be one of {', '.join(LANGUAGES)}, not {data.get('language')!r}")
    skills = data.get("skills")
    if not isinstance(skills, list) or not skills or not all(isinstance(s, str) and SKILL.fullmatch(s)
                                                                 for s in skills):
        raise TaskError(f"task {name}: skills must be a non-empty list of tags such as \"fixes-a-bug\"")
    timeout = data.get("hidden_timeout", HIDDEN_TIMEOUT_SECONDS)
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise TaskError(f"task {name}: hidden_timeout must be a positive number of seconds")
    for part in ("project", "hidden", "solution"):
        if not (folder / part).is_dir():
            raise TaskError(f"task {name}: no {part}/ folder in {folder}")
    return EvalTask(name=name, folder=folder, goal=" ".join(data["goal"].split()), language=data["language"],
                    skills=tuple(skills), hidden=data["hidden"].strip(), hidden_timeout=float(timeout))


def all_tasks(tasks_dir: Path = TASKS_DIR) -> list[EvalTask]:
    """Every shipped task, by name."""
    return [load(folder) for folder in sorted(tasks_dir.iterdir()) if folder.is_dir() and
            not folder.name.startswith((".", "_"))]


def select(names: Iterable[str] | None, tasks_dir: Path = TASKS_DIR) -> list[EvalTask]:
    """The tasks named (in that order), or all of them for None; TaskError for a name that is no task."""
    every = {task.name: task for task in all_tasks(tasks_dir)}
    if names is None:
        return list(every.values())
    wanted = [name.strip() for name in names if name.strip()]
    unknown = [name for name in wanted if name not in every]
    if unknown:
        raise TaskError(f"no task {', '.join(unknown)}; the tasks are: {', '.join(every)}")
    if not wanted:
        raise TaskError("no task named")
    return [every[name] for name in dict.fromkeys(wanted)]


# --- files ---------------------------------------------------------------------------------------------------------
def lay_over(source: Path, target: Path) -> None:
    """Copy source's files into target, replacing what is there. A file or folder in the way is removed first, never
    written through: a checkout the model made may hold symlinks that point outside it, and this runs unconfined."""
    target.mkdir(parents=True, exist_ok=True)
    for folder, dirs, files in os.walk(source):
        dirs[:] = [d for d in dirs if d not in ("__pycache__", ".pytest_cache", "node_modules")]
        relative = Path(folder).relative_to(source)
        here = target / relative
        if here.is_symlink() or (here.exists() and not here.is_dir()):
            here.unlink()
        here.mkdir(exist_ok=True)
        for name in files:
            if name.endswith(".pyc"):
                continue
            destination = here / name
            if destination.is_symlink() or destination.is_file():
                destination.unlink()
            elif destination.is_dir():
                shutil.rmtree(destination)
            shutil.copy2(Path(folder) / name, destination)


def starting_project(task: EvalTask, target: Path) -> Path:
    """The task's starting project, copied to target."""
    shutil.copytree(task.project, target, ignore=IGNORED, dirs_exist_ok=True)
    return target


def solved_project(task: EvalTask, target: Path) -> Path:
    """The starting project with the reference solution laid over it."""
    starting_project(task, target)
    lay_over(task.solution, target)
    return target


# --- the hidden tests ----------------------------------------------------------------------------------------------
@dataclass
class HiddenRun:
    passed: bool
    exit_code: int | None
    output: str  # the run's output, its middle cut when long (core/tools.py's limit)
    seconds: float
    timed_out: bool
    sandbox: str  # what contained it: the sandbox's status line, or "none: <why>"

    def to_dict(self) -> dict:
        return {"passed": self.passed, "exit_code": self.exit_code, "seconds": round(self.seconds, 3),
                "timed_out": self.timed_out, "sandbox": self.sandbox, "output": self.output}


def hidden_environment(tmp: Path) -> dict[str, str]:
    """What the hidden command runs with: no secrets and no TARS settings, TARS's virtualenv off PATH ({python}
    names its interpreter), a private TMPDIR, and pytest without this interpreter's plugins or cache files."""
    base = scrub_environment(os.environ, setting_names() + ["TARS_ENV_FILE", "CODING_MODELS"])
    env = project_env.environment(base)
    env.update(TMPDIR=str(tmp), PYTHONDONTWRITEBYTECODE="1", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
               PYTEST_ADDOPTS="-p no:cacheprovider", NO_COLOR="1")
    return env


def _sandbox(folder: Path, tmp: Path, hidden_paths: Iterable[Path]) -> tuple[sandbox.Sandbox | None, str]:
    found = sandbox.detect()
    if found.kind == sandbox.NONE:
        return None, f"none: {found}"
    home = Path.home()
    policy = sandbox.Policy(writable=(str(folder), str(tmp), *sandbox.DEVICES),
                            hidden=tuple(str(home / name) for name in sandbox.SECRET_PATHS)
                            + tuple(str(path) for path in hidden_paths),
                            network=False)
    try:
        box = sandbox.Sandbox(policy)
    except (OSError, ValueError) as exc:
        return None, f"none: the sandbox could not be set up ({exc})"
    return box, box.status


def run_hidden(task: EvalTask, folder: Path, hidden_paths: Iterable[Path] = ()) -> HiddenRun:
    """Lay the task's hidden tests over folder and run its hidden command there. hidden_paths: more paths the command
    may not read (the harness's TARS data folder)."""
    lay_over(task.hidden_tests, folder)
    with tempfile.TemporaryDirectory(prefix="tars-eval-hidden-") as scratch:
        tmp = Path(scratch)
        box, contained = _sandbox(folder, tmp, hidden_paths)
        try:
            workspace = Workspace(folder, command_timeout=task.hidden_timeout, env=hidden_environment(tmp),
                                  sandbox=box)
            began = time.monotonic()
            result = workspace.bash(task.command())
            seconds = time.monotonic() - began
        finally:
            if box is not None:
                box.close()
    return HiddenRun(passed=result.exit_code == 0 and not result.timed_out, exit_code=result.exit_code,
                     output=result.output, seconds=seconds, timed_out=result.timed_out, sandbox=contained)


@dataclass
class Soundness:
    """A task's self-check: its hidden tests must fail on the starting project and pass with the solution."""

    task: EvalTask
    on_start: HiddenRun
    on_solution: HiddenRun

    @property
    def sound(self) -> bool:
        return not self.on_start.passed and self.on_solution.passed

    def problem(self) -> str | None:
        if not self.on_solution.passed:
            return (f"the hidden tests fail with the reference solution (exit {self.on_solution.exit_code}):\n"
                    f"{self.on_solution.output[-3000:]}")
        if self.on_start.passed:
            return "the hidden tests already pass on the starting project: the task asks for nothing"
        return None


def check(task: EvalTask, work: Path) -> Soundness:
    """Run task's hidden tests on its starting project and on project + solution, in folders under work."""
    start = starting_project(task, work / f"{task.name}-start")
    solved = solved_project(task, work / f"{task.name}-solution")
    return Soundness(task, run_hidden(task, start), run_hidden(task, solved))
