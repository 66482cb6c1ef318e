"""Each task's checkout gets the project's environment (core/project_env.py): real uv, real virtualenvs in tmp_path.

uv's cache is the session's (tests/conftest.py uv_cache): pytest is downloaded from PyPI once per session.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from core import project_env
from core.tools import scrub_environment


@pytest.fixture
def base(uv_cache) -> dict[str, str]:
    """The scrubbed environment the worker starts from, with TARS's own Python on PATH (as a worker started from an
    activated venv has it) and a PYTHONPATH that must not reach the project."""
    env = scrub_environment(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "/usr/bin:/bin")])
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    env["UV_CACHE_DIR"] = str(uv_cache)
    env["UV_PYTHON_DOWNLOADS"] = "never"  # no network but PyPI here: never wait on a Python download
    return env


def checkout(path: Path, project: Path | None = None, mode: str = "shadow") -> SimpleNamespace:
    """What prepare() reads of a git_workspace.TaskCheckout."""
    project = project or path
    return SimpleNamespace(path=str(path), worktree=str(path), project=str(project), repo=str(project), mode=mode)


def run(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def python_project(folder: Path, requirements: str = "") -> Path:
    folder.mkdir(parents=True)
    (folder / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (folder / "test_calc.py").write_text("from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n")
    if requirements:
        (folder / "requirements.txt").write_text(requirements)
    return folder


def uv_venv(target: Path, base: dict[str, str], *packages: str) -> Path:
    env = project_env.uv_environment(base, target.parent)
    subprocess.run([project_env.uv_binary(), "venv", "--quiet", "--no-project", str(target)], env=env, check=True)
    if packages:
        subprocess.run([project_env.uv_binary(), "pip", "install", "--quiet", "--python", str(target / "bin/python"),
                        *packages], env=env, check=True)
    return target


# --- the commands' variables -----------------------------------------------------------------------------------

def test_tars_own_python_is_off_path_and_the_project_venv_is_first(base, tmp_path):
    venv = tmp_path / "venv"
    env = project_env.environment(base, venv)
    path = env["PATH"].split(os.pathsep)
    assert path[0] == str(venv / "bin")
    assert str(Path(sys.executable).parent) not in path  # the test runs in TARS's .venv: it is a virtualenv
    assert sys.prefix != sys.base_prefix and str(Path(sys.prefix) / "bin") not in path
    assert env["VIRTUAL_ENV"] == str(venv)
    assert "PYTHONPATH" not in env and "PYTHONHOME" not in env
    assert path[1:] == [p for p in base["PATH"].split(os.pathsep) if p and p not in project_env.tars_bin_dirs()]
    without = project_env.environment(base)
    assert "VIRTUAL_ENV" not in without and str(Path(sys.executable).parent) not in without["PATH"].split(os.pathsep)


# --- what the project declares -----------------------------------------------------------------------------------

def test_declared_dependencies_come_from_pyproject_extras_groups_and_requirement_files(tmp_path):
    (tmp_path / "pyproject.toml").write_text("""
[project]
name = "My_Tool"
dependencies = ["requests>=2", "click"]
[project.optional-dependencies]
test = ["pytest>=8", "hypothesis", "my-tool[docs]"]
docs = ["sphinx"]
[dependency-groups]
lint = ["ruff"]
dev = ["freezegun", {include-group = "lint"}]
""")
    (tmp_path / "requirements.txt").write_text("# pinned\nrequests==2.32.0\nattrs  # for models\n-e .\n\n")
    (tmp_path / "requirements-dev.txt").write_text("-r requirements.txt\ncoverage\n")
    found = project_env.declared(tmp_path)
    # the project itself (my-tool[docs]) is not a dependency; docs is not a test extra
    assert found.requirements == ["requests>=2", "click", "pytest>=8", "hypothesis", "freezegun", "ruff"]
    assert found.files == ["requirements.txt", "requirements-dev.txt"]
    assert found.names == {"requests", "click", "hypothesis", "freezegun", "ruff", "attrs", "coverage"}  # no pytest
    (tmp_path / "pyproject.toml").write_text("[project\n")
    assert "pyproject.toml could not be read" in project_env.declared(tmp_path).problem


def test_node_go_and_rust_projects_use_their_toolchain_unless_python_is_there_too(tmp_path):
    assert project_env.toolchain_of(tmp_path) is None  # nothing yet: a made Python environment
    (tmp_path / "package.json").write_text("{}")
    assert project_env.toolchain_of(tmp_path) == "Node"
    (tmp_path / "go.mod").write_text("module x\n")
    (tmp_path / "node_modules" / "pkg").mkdir(parents=True)
    (tmp_path / "node_modules" / "pkg" / "gyp.py").write_text("")  # vendored: not the project's Python
    assert project_env.toolchain_of(tmp_path) == "Node"
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "gen.py").write_text("")
    assert project_env.toolchain_of(tmp_path) is None


def test_a_node_project_gets_no_venv_and_not_tars_python(tmp_path, base):
    project = tmp_path / "web"
    project.mkdir()
    (project / "package.json").write_text('{"scripts": {"test": "node -e 1"}}')
    env = project_env.prepare(checkout(project), task_id="node01", data_dir=tmp_path / "data", base=base)
    assert env.kind == project_env.TOOLCHAIN and env.venv is None
    assert env.message.startswith("A Node project: commands use node and npm from the system PATH")
    assert not (tmp_path / "data" / "envs").exists()
    assert run("python3 -c 'import anthropic'", env.env, project).returncode != 0


# --- made for the task -------------------------------------------------------------------------------------------

def test_a_python_project_without_a_venv_gets_one_made_with_pytest_and_its_dependencies(tmp_path, base):
    project = python_project(tmp_path / "calc", requirements="iniconfig\n")
    data = tmp_path / "data"
    first = project_env.prepare(checkout(project), task_id="made01", data_dir=data, base=base)
    assert first.kind == project_env.MADE, first.message
    assert first.venv == data / "envs" / "made01" and first.installed == ["pytest", "-r requirements.txt"]
    assert first.message.startswith("Made a Python environment with pytest + 1 dependency in ")
    prefix = run("python -c 'import sys; print(sys.prefix)'", first.env, project)
    assert prefix.stdout.strip() == str(first.venv)
    leak = run("python -c 'import anthropic'", first.env, project)
    assert "No module named 'anthropic'" in leak.stderr  # TARS's packages do not leak into the project
    tests = run("python -m pytest -q", first.env, project)
    assert tests.returncode == 0 and "1 passed" in tests.stdout, tests.stdout + tests.stderr
    assert run("python -c 'import iniconfig'", first.env, project).returncode == 0
    assert run("python -m pip --version", first.env, project).returncode == 0  # the model can pip install into it
    assert {p.name for p in project.iterdir()} - {".pytest_cache", "__pycache__"} == \
        {"calc.py", "requirements.txt", "test_calc.py"}  # nothing of the environment is in the project

    began = time.monotonic()
    repeat = project_env.prepare(checkout(project), task_id="made02", data_dir=data, base=base)
    assert repeat.kind == project_env.MADE and repeat.venv != first.venv  # each task its own: no shared installs
    assert time.monotonic() - began < 30
    first.discard()
    assert not first.venv.exists() and repeat.venv.exists()


def test_dependencies_that_do_not_install_still_leave_pytest(tmp_path, base):
    project = python_project(tmp_path / "broken", requirements="./no-such-folder\n")
    env = project_env.prepare(checkout(project), task_id="dep01", data_dir=tmp_path / "data", base=base)
    assert env.kind == project_env.MADE and env.installed == ["pytest"]
    assert "the project's dependencies did not install: " in env.message and "no-such-folder" in env.message
    assert run("python -m pytest -q", env.env, project).returncode == 0


def test_no_python_for_the_project_falls_back_to_the_system_with_the_fix_named(tmp_path, base):
    project = python_project(tmp_path / "future")
    (project / "pyproject.toml").write_text('[project]\nname = "future"\nversion = "1"\nrequires-python = ">=3.99"\n')
    env = project_env.prepare(checkout(project), task_id="sys01", data_dir=tmp_path / "data", base=base)
    assert env.kind == project_env.SYSTEM and env.venv is None
    assert env.message.startswith("Could not make a Python environment for the project (")
    assert "3.99" in env.message and "create a .venv in the project" in env.message and "PROJECT_VENV" in env.message
    assert not (tmp_path / "data" / "envs" / "sys01").exists()
    assert str(Path(sys.executable).parent) not in env.env["PATH"].split(os.pathsep)


def test_environments_left_by_killed_tasks_are_pruned_when_old(tmp_path):
    envs = tmp_path / "envs"
    for name in ("old", "new", "mine"):
        (envs / name).mkdir(parents=True)
    past = time.time() - 7200
    os.utime(envs / "old", (past, past))
    os.utime(envs / "mine", (past, past))
    assert project_env.prune(envs, keep="mine", older_than=3600) == ["old"]
    assert sorted(p.name for p in envs.iterdir()) == ["mine", "new"]


# --- the project's own ---------------------------------------------------------------------------------------

def test_the_owners_venv_is_found_beside_a_worktree_checkout_and_used_as_it_is(tmp_path, base):
    owner = python_project(tmp_path / "owner")
    venv = uv_venv(owner / ".venv", base, "pytest")
    worktree = python_project(tmp_path / "worktrees" / "wt01")  # a worktree does not carry the untracked .venv
    env = project_env.prepare(checkout(worktree, owner, mode="worktree"), task_id="wt01", data_dir=tmp_path / "data",
                              base=base)
    assert env.kind == project_env.OWN and env.venv == venv
    assert env.message.startswith(f"Using the project's .venv from {owner} ({venv}, Python ")
    assert "pytest was added" not in env.message
    assert run("python -c 'import sys; print(sys.prefix)'", env.env, worktree).stdout.strip() == str(venv)
    assert run("python -m pytest -q", env.env, worktree).returncode == 0
    env.discard()
    assert venv.is_dir()  # the owner's: never removed


def test_the_owners_venv_without_pytest_gets_it_added_and_the_owner_is_told(tmp_path, base):
    project = python_project(tmp_path / "bare")
    venv = uv_venv(project / "venv", base)
    assert not project_env.has_test_runner(venv)
    env = project_env.prepare(checkout(project), task_id="bare01", data_dir=tmp_path / "data", base=base)
    assert env.kind == project_env.OWN and env.venv == venv
    assert "it had no pytest, so pytest was added to it" in env.message
    assert project_env.has_test_runner(venv)
    assert "It has no pip: run `python -m ensurepip` before `pip install`." in env.for_model()  # uv made it
    assert run("python -m pytest -q", env.env, project).returncode == 0


def test_project_venv_setting_relative_to_the_project_or_named_when_it_is_not_there(tmp_path, base):
    project = python_project(tmp_path / "configured")
    chosen = uv_venv(project / "envs" / "dev", base, "pytest")
    uv_venv(project / ".venv", base, "pytest")
    env = project_env.prepare(checkout(project), task_id="set01", data_dir=tmp_path / "data", base=base,
                              project_venv="envs/dev")
    assert env.kind == project_env.SETTING and env.venv == chosen
    assert env.message.startswith(f"Using PROJECT_VENV ({chosen}, Python ")
    missing = project_env.prepare(checkout(project), task_id="set02", data_dir=tmp_path / "data", base=base,
                                  project_venv="nowhere")
    assert missing.kind == project_env.OWN and missing.venv == project / ".venv"
    assert missing.message.startswith(f"PROJECT_VENV=nowhere is not a virtualenv here (no pyvenv.cfg and bin/python "
                                      f"at nowhere in {project}), so it was not used. Using the project's .venv")


class CountingProxy:
    """An HTTPS proxy that lets nothing through and counts who asked: is PyPI asked at all?"""

    def __init__(self):
        import socket
        import threading

        self.asked = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.asked += 1
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def close(self):
        self.listener.close()


def test_pip_and_pytest_come_from_the_cache_without_asking_pypi_the_projects_dependencies_ask_first(tmp_path, base):
    """A new project (nothing declared) costs no index round trip once uv's cache has pip and pytest; a project's own
    dependencies still ask PyPI first (their newest versions), and the cache serves when PyPI does not answer."""
    warm = project_env.prepare(checkout(python_project(tmp_path / "warm", requirements="iniconfig\n")),
                               task_id="warm01", data_dir=tmp_path / "data", base=base)
    assert warm.kind == project_env.MADE, warm.message  # the session's cache now holds pip, pytest and iniconfig
    proxy = CountingProxy()
    offline = {**base, "HTTPS_PROXY": proxy.url, "HTTP_PROXY": proxy.url, "https_proxy": proxy.url,
               "http_proxy": proxy.url, "NO_PROXY": "", "no_proxy": ""}
    try:
        new = project_env.prepare(checkout(python_project(tmp_path / "new")), task_id="new01",
                                  data_dir=tmp_path / "data", base=offline)
        assert new.kind == project_env.MADE and new.installed == ["pytest"], new.message
        assert proxy.asked == 0
        assert run("python -m pytest -q", new.env, tmp_path / "new").returncode == 0

        declared = project_env.prepare(checkout(python_project(tmp_path / "deps", requirements="iniconfig\n")),
                                       task_id="deps01", data_dir=tmp_path / "data", base=offline)
        assert declared.kind == project_env.MADE and declared.installed == ["pytest", "-r requirements.txt"]
        assert proxy.asked >= 1  # PyPI first; it did not answer, so the cache served
    finally:
        proxy.close()


def test_a_project_that_pins_its_python_gets_what_it_pins_not_the_workers_choice(tmp_path, base):
    """The interpreter found once per worker serves projects that pin none; a .python-version (here one no machine
    has) is uv's to honour, so the environment cannot be made and the task runs with the system's Python."""
    found = project_env.default_python(project_env.uv_environment(base, tmp_path / "data"))
    assert found and Path(found).exists()
    free = project_env.prepare(checkout(python_project(tmp_path / "free")), task_id="free01",
                               data_dir=tmp_path / "data", base=base)
    assert free.kind == project_env.MADE and free.python == project_env.python_version(free.venv)
    assert (free.venv / "pyvenv.cfg").read_text().count(str(Path(found).parent)) == 1
    pinned = python_project(tmp_path / "pinned")
    (pinned / ".python-version").write_text("3.99\n")
    env = project_env.prepare(checkout(pinned), task_id="pin01", data_dir=tmp_path / "data", base=base)
    assert env.kind == project_env.SYSTEM and "3.99" in env.message, env.message


def test_an_interpreter_gone_since_the_worker_started_is_looked_up_again(tmp_path, base, monkeypatch):
    env = project_env.uv_environment(base, tmp_path / "data")
    monkeypatch.setitem(project_env._FOUND_PYTHON, (env.get("PATH", ""), env.get("UV_PYTHON", "")),
                        str(tmp_path / "uninstalled" / "python3"))  # what the worker found at its start
    made = project_env.prepare(checkout(python_project(tmp_path / "calc")), task_id="gone01",
                               data_dir=tmp_path / "data", base=base)
    assert made.kind == project_env.MADE, made.message
    assert run("python -m pytest -q", made.env, tmp_path / "calc").returncode == 0
