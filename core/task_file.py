"""Tasks from a file: the owner lists goals in a YAML file (TASKS_FILE, default DATA_DIR/tasks.yaml), and each entry
becomes a task exactly once, however often the file is saved.

    # tasks.yaml: a list; goal and project are required
    - goal: Add a --verbose flag to the CLI
      project: calculator
    - goal: Upgrade the dependencies and fix what breaks
      project: shop
      priority: low        # high, normal (the default) or low
      plan: true           # split into subtasks first (core/plans.py); absent: PLAN_GOALS decides
      at: "02:00"          # start later: HH:MM (the next such local time) or an ISO date-time

An entry's identity is its content (goal with its spaces normalised, project, priority, plan, at): saving the file
again, reordering it or adding entries starts only what is new; to run the same goal again, change its text. Each
identity is claimed in Redis (keys.task_file_entry) with the id its task gets before the task is queued, so a
reader that dies halfway leaves a claim the next reading completes: never two tasks, never none. Readers take
keys.TASK_FILE_LOCK (several servers may watch one file). A bad entry is reported with its line and the reason; the
others still go in (a file that is not YAML at all starts nothing, and says where it broke).

TaskFileWatcher is the thread every server runs (communication/app.py): it reads the file at start and whenever it
changes (watchfiles, on the file's folder, so that a file created or replaced by an editor's rename is seen too).
`python main_tars.py task file [PATH]` reads it once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import redis
import yaml
from rq.job import Job

from core import capabilities, keys, schedules
from core.config import Settings
from core.defaults import TASK_FILE_DEBOUNCE_MS, TASK_FILE_LOCK_SECONDS, TASK_FILE_RECHECK_SECONDS
from core.exceptions import TarsError
from core.redis_conn import Lease, private_client
from core.task_manager import TaskManager

log = logging.getLogger("tars.task_file")

FIELDS = ("goal", "project", "priority", "plan", "at")
REQUIRED = ("goal", "project")
EXAMPLE = "- goal: Add a --verbose flag\n  project: calculator"
STARTED = "started"


@dataclass(frozen=True)
class Entry:
    """One task the file asks for; line: where it starts (1-based)."""

    line: int
    goal: str
    project: str
    priority: str = capabilities.NORMAL
    plan: bool | None = None
    at: str | None = None

    @property
    def identity(self) -> str:
        """What makes two entries the same task: their content, never their place in the file."""
        content = [" ".join(self.goal.split()), self.project.strip(), self.priority, self.plan, self.at]
        return hashlib.sha256(json.dumps(content).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Problem:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class Reading:
    """What one reading of the file did: started (line, task id), known (line, task id: started by an earlier
    reading), problems."""

    started: list[tuple[int, str]] = field(default_factory=list)
    known: list[tuple[int, str]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"started": [{"line": line, "task_id": task_id} for line, task_id in self.started],
                "known": [{"line": line, "task_id": task_id} for line, task_id in self.known],
                "problems": [{"line": p.line, "reason": p.reason} for p in self.problems]}


def parse(text: str) -> tuple[list[Entry], list[Problem]]:
    """The file's entries and what is wrong with the others (nothing is checked against TARS yet)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else 1
        why = getattr(exc, "problem", None) or str(exc)
        return [], [Problem(line, f"the file is not valid YAML ({why}); no entry was read")]
    if root is None:
        return [], []
    if isinstance(root, yaml.MappingNode):  # `tasks:` holding the list reads the same
        items = {key.value: value for key, value in root.value if isinstance(key, yaml.ScalarNode)}
        if "tasks" not in items or len(root.value) != 1:
            return [], [Problem(_line(root), f"the file must be a list of tasks, like:\n{EXAMPLE}")]
        root = items["tasks"]
    if not isinstance(root, yaml.SequenceNode):
        return [], [Problem(_line(root), f"the file must be a list of tasks, like:\n{EXAMPLE}")]
    entries, problems = [], []
    for node in root.value:
        try:
            entries.append(_entry(node))
        except _Bad as bad:
            problems.append(Problem(bad.line, bad.reason))
    return entries, problems


class _Bad(Exception):
    def __init__(self, node: yaml.Node, reason: str):
        super().__init__(reason)
        self.line, self.reason = _line(node), reason


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _entry(node: yaml.Node) -> Entry:
    if not isinstance(node, yaml.MappingNode):
        raise _Bad(node, f"an entry needs a goal and a project, like:\n{EXAMPLE}")
    values: dict[str, object] = {}
    nodes: dict[str, yaml.Node] = {}
    for key, value in node.value:
        name = key.value if isinstance(key, yaml.ScalarNode) else None
        if name not in FIELDS:
            raise _Bad(key, f"unknown field {str(name)[:40]!r}; an entry has {', '.join(FIELDS)}")
        if name in values:
            raise _Bad(key, f"{name} is given twice")
        if not isinstance(value, yaml.ScalarNode):
            raise _Bad(value, f"{name} must be a single value, not a list or a mapping")
        # Every field's text as written: YAML 1.1 would read `at: 02:00` as the number 120 and `goal: yes` as True.
        values[name] = value.value.strip() if name != "plan" else _flag(value)
        nodes[name] = value
    for name in REQUIRED:
        if not values.get(name):
            raise _Bad(node, f"the entry has no {name}")
    try:
        priority = capabilities.parse_priority(values.get("priority") or None)
    except TarsError as exc:
        raise _Bad(nodes["priority"], str(exc)) from None
    return Entry(_line(node), str(values["goal"]), str(values["project"]), priority, values.get("plan"),
                 str(values["at"]) if values.get("at") else None)


def _flag(node: yaml.ScalarNode) -> bool | None:
    value = yaml.safe_load(yaml.serialize(node)) if node.value else None
    if value is None or isinstance(value, bool):
        return value
    raise _Bad(node, f"plan must be true or false, not {node.value[:40]!r}")


def enqueue(tasks: TaskManager, text: str, name: str = "the tasks file") -> Reading:
    """Start the file's new entries, each once (see the module docstring); name: the file's, for each task's timeline
    ("Queued from tasks.yaml line 3")."""
    entries, problems = parse(text)
    reading = Reading(problems=problems)
    lock = Lease(tasks.redis, keys.TASK_FILE_LOCK, f"{socket.gethostname()}.{os.getpid()}.{threading.get_ident()}",
                 TASK_FILE_LOCK_SECONDS)
    deadline = time.monotonic() + TASK_FILE_LOCK_SECONDS
    while not lock.hold():  # another reader: its work is done when it lets go, and then ours finds it claimed
        if time.monotonic() > deadline:
            raise TimeoutError(f"another reader has held {keys.TASK_FILE_LOCK} for {TASK_FILE_LOCK_SECONDS} s")
        time.sleep(0.1)
    try:
        for entry in entries:
            try:
                _enqueue_one(tasks, entry, reading, f"{name} line {entry.line}")
            except TarsError as exc:  # the project, the goal or the time: the entry's own fault
                reading.problems.append(Problem(entry.line, str(exc)))
    finally:
        lock.release()
    reading.problems.sort(key=lambda problem: problem.line)
    return reading


def _enqueue_one(tasks: TaskManager, entry: Entry, reading: Reading, source: str) -> None:
    key = keys.task_file_entry(entry.identity)
    claim = {name.decode(): value.decode() for name, value in tasks.redis.hgetall(key).items()}
    if claim.get(STARTED) == "1" or (claim and Job.exists(claim["task_id"], tasks.redis)):
        tasks.redis.hset(key, STARTED, "1")  # queued by a reader that stopped before saying so
        reading.known.append((entry.line, claim["task_id"]))
        return
    at, project = _checked(tasks, entry)  # before claiming: a bad entry claims nothing
    task_id = claim.get("task_id") or tasks.new_id()
    tasks.redis.hset(key, mapping={"task_id": task_id, STARTED: "0", "line": entry.line, "goal": entry.goal[:200]})
    try:
        tasks.start(entry.goal, project, plan=entry.plan, priority=entry.priority, at=at, task_id=task_id,
                    source=source)
    except TarsError:
        tasks.redis.delete(key)
        raise
    tasks.redis.hset(key, STARTED, "1")
    reading.started.append((entry.line, task_id))


def _checked(tasks: TaskManager, entry: Entry):
    """The entry's start time and project as TaskManager.start takes them; TarsError with the reason."""
    return (schedules.parse_at(entry.at) if entry.at else None), tasks.resolve_project(entry.project)


def check(tasks: TaskManager, text: str) -> list[Problem]:
    """What is wrong in the file, without queueing anything (`task file --check`)."""
    entries, problems = parse(text)
    for entry in entries:
        try:
            _checked(tasks, entry)
        except TarsError as exc:
            problems.append(Problem(entry.line, str(exc)))
    return sorted(problems, key=lambda problem: problem.line)


def news(name: str, reading: Reading) -> str:
    """What a reading did, for the owner (Discord, the CLI): a headline, then a line per task started and problem."""
    started, problems = len(reading.started), len(reading.problems)
    parts = [f"{started} new task{'s' if started != 1 else ''} started"] if started else []
    if problems:
        parts.append(f"{problems} entr{'ies' if problems != 1 else 'y'} not queued")
    lines = [f"{name}: {', '.join(parts) or 'nothing new'}"]
    lines += [f"Line {line}: task {task_id}" for line, task_id in reading.started]
    lines += [f"Line {problem.line} not queued: {problem.reason}" for problem in reading.problems]
    return "\n".join(lines)


class TaskFileWatcher(threading.Thread):
    """Reads the tasks file at start and on every change; report(path, reading) hears of each reading that started
    something or found a problem."""

    def __init__(self, connection: redis.Redis, settings: Settings,
                 report: Callable[[Path, Reading], None] | None = None):
        super().__init__(name="tars-task-file", daemon=True)
        # Its own connection: only this thread uses it, and stop() joins the thread before closing it.
        self.connection = private_client(connection)
        self.tasks = TaskManager(self.connection, settings)
        self.path = settings.TASKS_FILE
        self.report = report
        self.readings = 0  # how many times it read the file (for tests and /health)
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._read_signature: tuple | None = None
        self._told: set[str] = set()

    def run(self) -> None:
        from watchfiles import watch  # here: a process that watches no file never loads it

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.error("cannot watch the tasks file %s: its folder cannot be made (%s); set TASKS_FILE to a "
                      "writable place", self.path, exc)
            self._ready.set()
            return
        log.info("watching %s for tasks (a list of goal/project entries; see docs)", self.path)
        # Besides the changes, it wakes every TASK_FILE_RECHECK_SECONDS and reads the file again if it differs from
        # the last reading (a save between that reading and the watch's start, a change the folder's events missed).
        changes = watch(self.path.parent, watch_filter=lambda _change, name: Path(name).name == self.path.name,
                        recursive=False, stop_event=self._stopping, debounce=TASK_FILE_DEBOUNCE_MS,
                        rust_timeout=int(TASK_FILE_RECHECK_SECONDS * 1000), yield_on_timeout=True,
                        raise_interrupt=False)
        self.read()
        self._ready.set()
        for changed in changes:
            if changed or self._signature() != self._read_signature:
                self.read()

    def _signature(self) -> tuple | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def read(self) -> Reading | None:
        """Read the file now; None when it is missing or cannot be read (logged)."""
        self._read_signature = self._signature()
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            log.error("cannot read the tasks file %s: %s", self.path, exc)
            return None
        try:
            reading = enqueue(self.tasks, text, self.path.name)
        except (redis.RedisError, TimeoutError) as exc:  # the next save, or the next start, reads it again
            log.error("could not queue the tasks of %s: %s; save the file again once Redis answers", self.path, exc)
            return None
        finally:
            self.readings += 1
        for line, task_id in reading.started:
            log.info("%s line %d: started task %s", self.path, line, task_id)
        for problem in reading.problems:
            log.warning("%s %s", self.path, problem)
        # Each problem is told once per server: saving a file with a bad entry again does not repeat it.
        fresh = [problem for problem in reading.problems if str(problem) not in self._told]
        self._told.update(str(problem) for problem in fresh)
        if self.report is not None and (reading.started or fresh):
            try:
                self.report(self.path, Reading(reading.started, reading.known, fresh))
            except Exception:
                log.exception("could not report the reading of %s", self.path)
        return reading

    def wait_ready(self, timeout: float) -> bool:
        """True once the first reading is done and changes are watched."""
        return self._ready.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout)
        self.connection.close()
