"""Each task's checkout gets the project's own environment, never TARS's.

The model's commands, and the test run the worker does itself to check the model's word, must see the project's
Python and packages. TARS's runtime virtualenv (anthropic, rq, redis, ...) has no pytest, and its packages are none
of the project's business. `prepare()` picks, in this order:

1. PROJECT_VENV (core/config.py), when set: that virtualenv, a path relative to the project or absolute.
2. The project's own virtualenv: `.venv` or `venv` in the checkout, else in the owner's project folder or the top of
   its repository (a worktree checkout does not carry the owner's untracked .venv). When it has no pytest, pytest is
   added to it (the worker's test run needs it) and the owner is told.
3. A Node, Go or Rust project (package.json, go.mod or Cargo.toml, and no sign of Python): no virtualenv; its
   toolchain is whatever PATH holds.
4. Anything else (a Python project, or one with nothing in it yet): a virtualenv made for the task with uv, in
   DATA_DIR/envs/<task id>, with pip, pytest and the dependencies the project declares (pyproject.toml's
   dependencies and its test/tests/testing/dev extras and dependency groups, requirements.txt and the usual
   requirements-dev.txt / requirements-test.txt). uv's cache, DATA_DIR/uv-cache (uv's own cache variable wins when
   it is set), is shared by every task: after the first, a made environment costs file links, not downloads.

Made per task, not shared per project: the model may `pip install` into it, and two tasks on one project run at the
same time; a private environment keeps each task's installs its own and needs no lock. With a warm cache it costs
0.1-0.3 s (bench/project_env.py): pip and pytest come from the cache before PyPI is asked, and the interpreter for a
project that pins none is found once per worker. It is removed when the task ends; one left behind by a killed
work-horse goes when a later task finds it older than any task can run.

A made environment that cannot be built (no Python uv can find, PyPI unreachable with nothing cached) does not cost
the task: it runs with the system's Python, and the owner is told why and what fixes it (a .venv in the project, or
PROJECT_VENV). Whatever was chosen, `environment()` gives the commands' variables: the virtualenv's bin first on
PATH, then the system PATH without TARS's own virtualenv; VIRTUAL_ENV names the project's virtualenv; TARS's
PYTHONPATH and PYTHONHOME are gone.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.defaults import PROJECT_ENV_STALE_SECONDS, PROJECT_ENV_TIMEOUT_SECONDS
from core.project_tests import has_file
from core.supervisor import run_in_session

log = logging.getLogger("tars.project_env")

OWN, SETTING, MADE, TOOLCHAIN, SYSTEM = "own", "setting", "made", "toolchain", "system"
"""ProjectEnv.kind: the project's virtualenv, PROJECT_VENV's, one made for the task, a Node/Go/Rust toolchain from
PATH, or the system's Python because no virtualenv could be made."""

VENV_NAMES = (".venv", "venv")
TEST_RUNNER = "pytest"
BASICS = ["pip", TEST_RUNNER]
"""What every made environment gets: pip, so the model's `pip install` lands in it (uv's venv has none; installed
with the rest, this costs less than `uv venv --seed`), and the test runner the worker's check uses."""
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
REMOVED_VARIABLES = frozenset({"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "VIRTUAL_ENV_PROMPT", "__PYVENV_LAUNCHER__"})
"""Variables of TARS's own Python that must not reach the project's commands (VIRTUAL_ENV is set anew)."""
TOOLCHAINS = {"package.json": "Node", "go.mod": "Go", "Cargo.toml": "Rust"}
TOOLS = {"Node": "node and npm", "Go": "go", "Rust": "cargo"}
PYTHON_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "Pipfile", "tox.ini")
REQUIREMENT_FILES = ("requirements.txt", "requirements-dev.txt", "requirements-test.txt", "requirements-tests.txt",
                     "requirements_dev.txt", "requirements_test.txt", "dev-requirements.txt", "test-requirements.txt")
TEST_EXTRAS = ("test", "tests", "testing", "dev")
"""Extras and dependency groups installed with the project's dependencies: the usual names of 'what the tests need'."""
_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass
class ProjectEnv:
    """What one task's commands run in: the variables, and the sentence the owner is told about it."""

    kind: str
    message: str
    env: dict[str, str]
    venv: Path | None = None
    python: str | None = None      # the virtualenv's Python version, e.g. "3.11.7"
    seconds: float = 0.0           # how long choosing or making it took
    installed: list[str] = field(default_factory=list)  # what a made environment was given (pytest + declared)

    def for_model(self) -> str:
        """One sentence for the model's first message: where `python` and `pip` come from."""
        if self.venv is not None:
            version = f", Python {self.python}" if self.python else ""
            if not (self.venv / "bin" / "pip").exists():  # a uv-made venv of the owner's: `pip` would be another's
                return (f"Commands run in the project's Python virtualenv {self.venv}{version}, activated: `python` "
                        f"and `pytest` are its own. It has no pip: run `python -m ensurepip` before `pip install`.")
            return (f"Commands run in the project's Python virtualenv {self.venv}{version}, activated: `python`, "
                    f"`pip` and `pytest` are its own, so `pip install` puts packages there.")
        if self.kind == TOOLCHAIN:
            return "Commands use the toolchain on the system PATH; no Python virtualenv was made."
        return "No Python virtualenv could be made for this project: `python3` is the system's."

    def discard(self) -> None:
        """Remove a virtualenv made for the task (the project's own is never touched)."""
        if self.kind == MADE and self.venv is not None:
            shutil.rmtree(self.venv, ignore_errors=True)


# --- the commands' variables -----------------------------------------------------------------------------------

def tars_bin_dirs() -> set[str]:
    """TARS's own virtualenv's bin folders (none when TARS runs on a Python that is not a virtualenv)."""
    if sys.prefix == sys.base_prefix:
        return set()  # the system's or pyenv's Python: its folder is also where the owner's tools live
    found = set()
    for folder in (Path(sys.prefix) / "bin", Path(sys.executable).parent):
        found.add(os.path.normpath(os.path.abspath(folder)))
        try:
            found.add(os.path.realpath(folder))
        except OSError:
            pass
    return found


def environment(base: Mapping[str, str], venv: Path | None = None) -> dict[str, str]:
    """base (already scrubbed of secrets) as the project's commands get it: venv's bin first, TARS's Python gone."""
    env = {name: value for name, value in base.items() if name not in REMOVED_VARIABLES}
    ours = tars_bin_dirs()
    path = [entry for entry in base.get("PATH", DEFAULT_PATH).split(os.pathsep)
            if entry and os.path.normpath(os.path.abspath(entry)) not in ours and os.path.realpath(entry) not in ours]
    if venv is not None:
        path.insert(0, str(venv / "bin"))
        env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = os.pathsep.join(path) or DEFAULT_PATH
    return env


# --- what the project is -------------------------------------------------------------------------------------

def is_venv(folder: Path) -> bool:
    return (folder / "pyvenv.cfg").is_file() and os.access(folder / "bin" / "python", os.X_OK)


def python_version(venv: Path) -> str | None:
    """The virtualenv's Python version, from its pyvenv.cfg (uv writes version_info, the venv module version)."""
    try:
        lines = (venv / "pyvenv.cfg").read_text(errors="replace").splitlines()
    except OSError:
        return None
    values = dict(line.split("=", 1) for line in lines if "=" in line)
    values = {key.strip(): value.strip() for key, value in values.items()}
    return values.get("version_info") or values.get("version")


def has_test_runner(venv: Path) -> bool:
    return any(venv.glob(f"lib/python*/site-packages/{TEST_RUNNER}/__init__.py"))


def _local_folders(checkout) -> list[Path]:
    """Where the project's own virtualenv may be: the checkout, then the owner's folder and its repository's top."""
    folders = [Path(checkout.path), Path(checkout.worktree)]
    if checkout.mode != "clone":  # a clone's project is a URL
        folders.append(Path(checkout.project))
        if checkout.mode == "worktree":
            folders.append(Path(checkout.repo))  # the owner's top level
    unique: list[Path] = []
    for folder in folders:
        if folder not in unique:
            unique.append(folder)
    return unique


def own_venv(checkout) -> Path | None:
    """The project's own virtualenv (.venv or venv), looked for in the checkout, then in the owner's folders."""
    for folder in _local_folders(checkout):
        for name in VENV_NAMES:
            if is_venv(folder / name):
                return folder / name
    return None


def setting_venv(value: str, checkout) -> tuple[Path | None, str | None]:
    """PROJECT_VENV resolved for this checkout: (the virtualenv, None) or (None, why it cannot be used)."""
    given = Path(value).expanduser()
    candidates = [given] if given.is_absolute() else [folder / given for folder in _local_folders(checkout)]
    for candidate in candidates:
        if is_venv(candidate):
            return candidate.resolve(), None
    where = given if given.is_absolute() else f"{given} in {checkout.project}"
    return None, f"PROJECT_VENV={value} is not a virtualenv here (no pyvenv.cfg and bin/python at {where})"


def _python_files(root: Path) -> bool:
    """Any .py file in root or its folders two levels down?"""
    return has_file(root, lambda name: name.endswith(".py"), depth=2)


def toolchain_of(root: Path) -> str | None:
    """'Node', 'Go' or 'Rust' for a project of that kind with no sign of Python in it; None otherwise."""
    found = [name for marker, name in TOOLCHAINS.items() if (root / marker).is_file()]
    if not found:
        return None
    if any((root / name).is_file() for name in PYTHON_FILES + REQUIREMENT_FILES) or _python_files(root):
        return None
    return found[0]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(line: str) -> str | None:
    match = _NAME.match(line)
    return _normal(match.group(1)) if match else None


@dataclass
class Declared:
    """What the project declares it needs: requirement strings (from pyproject.toml) and requirement files."""

    requirements: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    names: set[str] = field(default_factory=set)  # the distinct packages named, for the owner's sentence
    problem: str | None = None                    # pyproject.toml could not be read


def _group(groups: dict, name: str, seen: set[str]) -> list[str]:
    """A PEP 735 dependency group's requirements, its include-group entries followed."""
    if name in seen or not isinstance(groups.get(name), list):
        return []
    seen.add(name)
    found = []
    for entry in groups[name]:
        if isinstance(entry, str):
            found.append(entry)
        elif isinstance(entry, dict) and isinstance(entry.get("include-group"), str):
            found += _group(groups, entry["include-group"], seen)
    return found


def declared(root: Path) -> Declared:
    """The project's declared dependencies (see the module docstring for which), without the project itself."""
    result = Declared()
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(errors="replace"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            data = {}
            result.problem = f"pyproject.toml could not be read ({exc})"
        project = data.get("project") if isinstance(data.get("project"), dict) else {}
        wanted = list(project.get("dependencies") or [])
        extras = project.get("optional-dependencies") or {}
        groups = data.get("dependency-groups") or {}
        for name in TEST_EXTRAS:
            if isinstance(extras, dict) and isinstance(extras.get(name), list):
                wanted += extras[name]
            if isinstance(groups, dict):
                wanted += _group(groups, name, set())
        own = _normal(project["name"]) if isinstance(project.get("name"), str) else None
        for requirement in wanted:
            name = _requirement_name(requirement) if isinstance(requirement, str) else None
            if name and name != own and requirement not in result.requirements:  # `myproject[test]` is itself
                result.requirements.append(requirement)
                result.names.add(name)
    for file in REQUIREMENT_FILES:
        if (root / file).is_file():
            result.files.append(file)
            try:
                lines = (root / file).read_text(errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                line = line.split(" #", 1)[0].strip()
                if line and not line.startswith(("#", "-")):
                    name = _requirement_name(line)
                    if name:
                        result.names.add(name)
    result.names.discard(TEST_RUNNER)
    return result


# --- uv ------------------------------------------------------------------------------------------------------

class EnvError(Exception):
    """A virtualenv could not be made or completed; the message says why in one sentence."""


def uv_binary() -> str:
    try:
        import uv  # the PyPI package: a binary wheel, installed with TARS (requirements.txt)
        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return found
    raise EnvError("uv is not installed (pip install uv, or reinstall TARS's requirements.txt)")


def uv_environment(base: Mapping[str, str], data_dir: Path) -> dict[str, str]:
    """What uv runs with: the commands' variables without a virtualenv, and the shared cache."""
    env = environment(base)
    env.setdefault("UV_CACHE_DIR", str(data_dir / "uv-cache"))
    env.setdefault("UV_NO_PROGRESS", "1")
    return env


def _run_uv(args: list[str], *, cwd: Path, env: Mapping[str, str], deadline: float) -> None:
    """Run uv to its end in its own session (a timeout kills its build processes too); EnvError if it fails."""
    timeout = deadline - time.monotonic()
    if timeout <= 0:
        raise EnvError("making the environment took longer than its time limit")
    try:  # its own session: a timeout kills the builds uv started too
        code, _, err = run_in_session([uv_binary(), *args], cwd=cwd, env=dict(env), timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EnvError(f"uv {' '.join(args[:2])} took longer than {timeout:.0f} s and was stopped") from None
    if code != 0:
        raise EnvError(_uv_error(err.decode("utf-8", "replace")) or f"uv {args[0]} exited {code}")


def _uv_error(stderr: str) -> str:
    """uv's error in one line: from its 'error:' line on, whitespace folded, capped."""
    text = stderr.strip()
    at = text.find("error:")
    text = re.sub(r"\s+", " ", text[at:] if at >= 0 else text)
    return text[:400] + ("..." if len(text) > 400 else "")


def _install(python: Path, packages: list[str], files: list[str], *, cwd: Path, env: Mapping[str, str],
             deadline: float, cache_first: bool = False) -> None:
    """uv pip install into the virtualenv of python; with nothing reachable, once more from the cache alone.

    cache_first (pip and pytest alone, which any version serves): from the cache when it has them, PyPI otherwise.
    That skips the index's revalidation, 0.17 s of a new task's 0.3 s here; the project's own dependencies always
    ask PyPI first, for their newest versions."""
    args = ["pip", "install", "--python", str(python), *packages]
    for file in files:
        args += ["-r", file]
    tries = [[*args, "--offline"], args] if cache_first else [args, [*args, "--offline"]]
    try:
        _run_uv(tries[0], cwd=cwd, env=env, deadline=deadline)
    except EnvError as first:
        try:
            _run_uv(tries[1], cwd=cwd, env=env, deadline=deadline)
        except EnvError as second:
            raise (second if cache_first else first) from None


_FOUND_PYTHON: dict[tuple[str, str], str] = {}  # (PATH, UV_PYTHON) -> the interpreter uv picks there ("": none)


def default_python(env: Mapping[str, str]) -> str | None:
    """The interpreter `uv venv` picks for a project that pins none, found once per worker (start_worker.py asks
    before it forks): uv's own search costs every venv ~0.13 s, more behind a pyenv shim."""
    key = (env.get("PATH", ""), env.get("UV_PYTHON", ""))
    if key not in _FOUND_PYTHON:
        try:
            found = subprocess.run([uv_binary(), "python", "find", "--no-project"], cwd="/", env=dict(env),
                                   capture_output=True, text=True, timeout=60)
            _FOUND_PYTHON[key] = found.stdout.strip() if found.returncode == 0 else ""
        except (OSError, subprocess.SubprocessError, EnvError):
            _FOUND_PYTHON[key] = ""
    return _FOUND_PYTHON[key] or None


def _pins_python(root: Path) -> bool:
    """The project says which Python it wants (pyproject.toml's requires-python, a .python-version): uv decides."""
    return (root / "pyproject.toml").is_file() or any((d / ".python-version").is_file() for d in (root, *root.parents))


# --- choosing --------------------------------------------------------------------------------------------------

def _dependencies(count: int) -> str:
    return "1 dependency" if count == 1 else f"{count} dependencies"


def prune(envs: Path, keep: str, older_than: float) -> list[str]:
    """Remove made environments older than older_than seconds (a killed work-horse's), except keep's."""
    removed = []
    cutoff = time.time() - older_than
    for folder in sorted(envs.iterdir()) if envs.is_dir() else []:
        try:
            if folder.name != keep and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
        except OSError:
            continue
    return removed


def _use(kind: str, venv: Path, base: Mapping[str, str], started: float, message: str) -> ProjectEnv:
    return ProjectEnv(kind=kind, message=message, env=environment(base, venv), venv=venv,
                      python=python_version(venv), seconds=round(time.monotonic() - started, 2))


def _existing(kind: str, venv: Path, what: str, root: Path, base: Mapping[str, str], data_dir: Path,
              deadline: float, started: float) -> ProjectEnv:
    """The owner's virtualenv as it is; pytest added when it lacks it (the worker's test run needs it)."""
    version = python_version(venv)
    described = f"{what} ({venv}{f', Python {version}' if version else ''})"
    if has_test_runner(venv):
        return _use(kind, venv, base, started, f"Using {described}.")
    try:
        _install(venv / "bin" / "python", [TEST_RUNNER], [], cwd=root, env=uv_environment(base, data_dir),
                 deadline=deadline)
    except EnvError as exc:
        return _use(kind, venv, base, started,
                    f"Using {described}. It has no pytest and adding it failed ({exc}), so the tests the worker "
                    f"runs will fail until it is installed: {venv}/bin/python -m pip install pytest.")
    return _use(kind, venv, base, started,
                f"Using {described}; it had no pytest, so pytest was added to it "
                f"({time.monotonic() - started:.1f} s).")


def make(task_id: str, root: Path, data_dir: Path, base: Mapping[str, str], deadline: float,
         started: float | None = None) -> ProjectEnv:
    """A virtualenv made for the task in data_dir/envs/<task_id>: pip, pytest and the declared dependencies.

    Raises EnvError when not even a virtualenv with pytest could be made; when only the project's dependencies
    failed, the environment is kept (with pytest) and the message says what failed."""
    started = time.monotonic() if started is None else started
    envs = data_dir / "envs"
    target = envs / task_id
    shutil.rmtree(target, ignore_errors=True)  # a previous run of this task (its worker restarted): start clean
    envs.mkdir(parents=True, exist_ok=True)
    env = uv_environment(base, data_dir)
    # Outside a pyproject.toml of its own, uv must not take an enclosing folder's project (its requires-python).
    project = [] if (root / "pyproject.toml").is_file() else ["--no-project"]
    interpreter = None if _pins_python(root) else default_python(env)
    try:
        try:
            _run_uv(["venv", "--quiet", *project, *(["--python", interpreter] if interpreter else []), str(target)],
                    cwd=root, env=env, deadline=deadline)
        except EnvError:
            if not interpreter:
                raise
            _FOUND_PYTHON.clear()  # gone since the worker started: let uv search again
            _run_uv(["venv", "--quiet", *project, "--allow-existing", str(target)], cwd=root, env=env,
                    deadline=deadline)
    except EnvError:
        shutil.rmtree(target, ignore_errors=True)
        raise
    wants = declared(root)
    python = target / "bin" / "python"
    problem = wants.problem
    installed: list[str] = []
    if wants.requirements or wants.files:
        try:
            _install(python, [*BASICS, *wants.requirements], wants.files, cwd=root, env=env, deadline=deadline)
            installed = [TEST_RUNNER, *wants.requirements, *(f"-r {file}" for file in wants.files)]
        except EnvError as exc:
            problem = f"the project's dependencies did not install: {exc}"
    if not installed:
        try:
            _install(python, BASICS, [], cwd=root, env=env, deadline=deadline, cache_first=True)
            installed = [TEST_RUNNER]
        except EnvError:
            shutil.rmtree(target, ignore_errors=True)
            raise
    count = len(wants.names) if len(installed) > 1 else 0
    seconds = time.monotonic() - started
    version = python_version(target)
    what = f"pytest + {_dependencies(count)}" if count else "pytest"
    message = f"Made a Python environment with {what} in {seconds:.1f} s" + (f" (Python {version})" if version else "")
    if problem:
        message += (f"; {problem}. The model can install them itself (pip works in it), or give the project a "
                    f".venv of its own")
    return ProjectEnv(kind=MADE, message=message + ".", env=environment(base, target), venv=target, python=version,
                      seconds=round(seconds, 2), installed=installed)


def prepare(checkout, *, task_id: str, data_dir: Path, base: Mapping[str, str], project_venv: str = "",
            timeout: float = PROJECT_ENV_TIMEOUT_SECONDS, stale_after: float = PROJECT_ENV_STALE_SECONDS,
            logger: logging.Logger | logging.LoggerAdapter = log) -> ProjectEnv:
    """The environment of one task's checkout (see the module docstring). Never raises for a project it cannot
    build an environment for: the result then runs on the system's Python and its message says why.

    checkout: a git_workspace.TaskCheckout (path, worktree, project, repo, mode); base: the scrubbed environment."""
    started = time.monotonic()
    deadline = started + timeout
    root = Path(checkout.path)
    data_dir = Path(data_dir)
    note = ""
    if project_venv.strip():
        venv, problem = setting_venv(project_venv.strip(), checkout)
        if venv is not None:
            return _existing(SETTING, venv, "PROJECT_VENV", root, base, data_dir, deadline, started)
        note = f"{problem}, so it was not used. "
    venv = own_venv(checkout)
    if venv is not None:
        what = f"the project's {venv.name}" if venv.parent == root else f"the project's {venv.name} from {venv.parent}"
        env = _existing(OWN, venv, what, root, base, data_dir, deadline, started)
        env.message = note + env.message
        return env
    toolchain = toolchain_of(root)
    if toolchain:
        return ProjectEnv(kind=TOOLCHAIN, env=environment(base), seconds=round(time.monotonic() - started, 2),
                          message=f"{note}A {toolchain} project: commands use {TOOLS[toolchain]} from the system PATH "
                                  f"(no Python virtualenv made, and TARS's own Python is not on PATH).")
    try:
        removed = prune(data_dir / "envs", task_id, stale_after)
        if removed:
            logger.info("removed %d environments left by ended tasks: %s", len(removed), ", ".join(removed))
    except OSError as exc:
        logger.warning("could not remove old task environments: %s", exc)
    try:
        env = make(task_id, root, data_dir, base, deadline, started)
    except (EnvError, OSError) as exc:
        system = shutil.which("python3", path=environment(base)["PATH"])
        uses = f"the system's Python ({system})" if system else "no Python at all (none is on PATH)"
        return ProjectEnv(kind=SYSTEM, env=environment(base), seconds=round(time.monotonic() - started, 2),
                          message=f"{note}Could not make a Python environment for the project ({exc}), so its "
                                  f"commands use {uses}. To fix it, create a .venv in the project with its "
                                  f"dependencies and pytest, or set PROJECT_VENV.")
    env.message = note + env.message
    return env
