"""The syntax check of the files a task changed, run when the model says it is done and before the project's tests
(core/agent.py): an error goes back to the model with the file, the line and the checker's words, and no test runs.

One small table, by file suffix (CHECKERS). JSON and TOML are parsed in this process: no program runs. A checker that
is a program runs as the task's commands do (Workspace.bash: its sandbox, its environment, the project's own Python
first on PATH), and only when it is on that PATH; a file with no checker here is not checked.
- Python: compile() in the project's interpreter (so its version's grammar), never an import: none of the project's
  code runs. Without a python3 on the commands' PATH, compile() here.
- JavaScript: `node --check`; shell: `bash -n`; Ruby: `ruby -c`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import tomllib
from dataclasses import dataclass
from typing import Callable

from core.defaults import SYNTAX_CHECK_MAX_BYTES, SYNTAX_CHECK_MAX_FILES
from core.exceptions import ToolError
from core.tools import ToolResult, Workspace


@dataclass(frozen=True)
class SyntaxProblem:
    """One file that does not parse: where, and what its checker said."""

    path: str  # relative to the project
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.path} line {self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"


@dataclass(frozen=True)
class Checker:
    """A program that checks one file's syntax without running it: `command` is a shell command where {file} stands
    for the file; on a non-zero exit its output holds the line (`line`, its last match) and the message (`message`,
    its last match)."""

    program: str
    command: str
    line: re.Pattern
    message: re.Pattern


# compile() only: the file is read and parsed, nothing is imported or run. Its traceback ends with the file's line.
PYTHON = Checker("python3", "python3 -c \"import sys; compile(open(sys.argv[1], 'rb').read(), sys.argv[1], 'exec')\" "
                 "{file}", re.compile(r'File "(?!<)[^"\n]*", line (\d+)'), re.compile(r"^(\w*Error: .+)$", re.M))
CHECKERS: dict[str, Checker] = {
    ".py": PYTHON,
    ".js": (node := Checker("node", "node --check {file}", re.compile(r":(\d+)\s*$", re.M),
                            re.compile(r"^(SyntaxError: .+)$", re.M))),
    ".mjs": node,
    ".cjs": node,
    ".sh": (shell := Checker("bash", "bash -n {file}", re.compile(r"line (\d+):"),
                             re.compile(r"line \d+: ((?:syntax error|unexpected).*)$", re.M))),
    ".bash": shell,
    ".rb": Checker("ruby", "ruby -c {file}", re.compile(r":(\d+):"), re.compile(r":\d+: (.+)$", re.M)),
}
"""The checkers that run a program, by suffix; PARSERS below are read here."""


def _json(text: str) -> tuple[int | None, str] | None:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return exc.lineno, exc.msg
    return None


_TOML_WHERE = re.compile(r"\s*\(at line (\d+), column \d+\)\s*$")


def _toml(text: str) -> tuple[int | None, str] | None:
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = _TOML_WHERE.search(str(exc))
        return (int(where.group(1)) if where else None), _TOML_WHERE.sub("", str(exc))
    return None


def _python(text: str) -> tuple[int | None, str] | None:
    try:
        compile(text, "<file>", "exec", dont_inherit=True)
    except SyntaxError as exc:
        return exc.lineno, exc.msg
    except ValueError as exc:  # a NUL byte
        return None, str(exc)
    return None


PARSERS: dict[str, Callable[[str], tuple[int | None, str] | None]] = {".json": _json, ".toml": _toml}
"""Formats parsed in this process, by suffix: (line, message) of the first error, or None."""


def check(workspace: Workspace, files: list[str], run: Callable[[str], ToolResult]) -> list[SyntaxProblem]:
    """The syntax errors in `files` (relative to the project; missing ones were deleted and are skipped), at most
    SYNTAX_CHECK_MAX_FILES of them checked; `run` runs a checker's command as the task's commands run."""
    path = workspace.env.get("PATH", os.defpath)
    problems = []
    for name in [f for f in files if _suffix(f) in CHECKERS or _suffix(f) in PARSERS][:SYNTAX_CHECK_MAX_FILES]:
        text = _read(workspace, name)
        if text is None:
            continue
        suffix = _suffix(name)
        checker = CHECKERS.get(suffix)
        if checker is not None and shutil.which(checker.program, path=path):
            found = _run(checker, name, run)
        elif suffix in PARSERS or checker is PYTHON:  # no python3 for the commands: this process's compile()
            found = PARSERS.get(suffix, _python)(text)
        else:
            continue  # its checker is not installed
        if found is not None:
            problems.append(SyntaxProblem(name, found[0], found[1].strip()[:500]))
    return problems


def files_text(problems: list[SyntaxProblem]) -> str:
    """'app.py' or 'app.py, data.json': the files a list of problems is about."""
    return ", ".join(dict.fromkeys(problem.path for problem in problems))


def _suffix(name: str) -> str:
    return os.path.splitext(name)[1].lower()


def _read(workspace: Workspace, name: str) -> str | None:
    """The file's text when it is a regular file inside the project and not too big (never a FIFO: it would block)."""
    try:
        real = workspace.resolve(name)
        info = os.stat(real)
        if not stat.S_ISREG(info.st_mode) or info.st_size > SYNTAX_CHECK_MAX_BYTES:
            return None
        return real.read_bytes().decode("utf-8", "replace")
    except (ToolError, OSError):
        return None


def _run(checker: Checker, name: str, run: Callable[[str], ToolResult]) -> tuple[int | None, str] | None:
    result = run(checker.command.replace("{file}", shlex.quote(name)))
    if result.exit_code == 0 or result.timed_out:  # a checker that hangs is no verdict on the file
        return None
    output = result.output
    lines = checker.line.findall(output)  # the last: a traceback names the checker's own frames first
    said = checker.message.findall(output)
    return (int(lines[-1]) if lines else None), (said[-1] if said else next(
        (text.strip() for text in output.splitlines() if text.strip() and not text.startswith("[")),
        "it does not parse"))
