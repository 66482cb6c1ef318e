"""Planned tasks on two workers against the same work as one task (issue 16): wall time, and what a subtask costs.

    .venv/bin/python -m bench plans [--quick]

Real and local: a private Redis, the fake Anthropic API in this process (every model turn answered after a fixed
delay, MODEL_TURN_SECONDS: the model's latency, the work's clock), two `start_worker.py` processes, real git.

The project: an owner's git repository (a README; git reads no config of this machine or user). The work: four
units a, b, c, d. One unit is a short scripted coding session of UNIT_TURNS model turns: write unit_k.py, write
test_unit_k.py, run it with pytest, add a docstring, run it again, read the module, grep it, add a comment, run the
tests again, read the test (b's module imports a's, d's imports c's: they need that work first). Full: 10 turns of
2.0 s, ~21.7 s a unit with its commands and checkpoints (at 1.0 s a turn the ratio was 0.60x on a quiet machine:
TARS's own overhead per subtask does not scale with the model's latency, so a faster model shows more of it); --quick: its first 3 turns (write both files, run the
test) of 0.1 s, one round (the numbers mean nothing).

* planned: `TaskManager.start(goal, plan=True)` on the 2 workers; the planner's one turn (plan_subtasks) gives four
  subtasks in two independent pairs, a -> b and c -> d; each subtask does its unit, then says it is done (one more
  turn) and the worker runs the project's tests (`python -m pytest -q`), as it does for any task; each is merged
  into the plan's branch; the finishing job tests the merged branch.
* one task: an ordinary task doing the four units one after another, then its one closing turn and test run, on
  the same two workers (one of them idle).
* wall time: the start call -> the task's ending event (its timeline, core/event_log.py); ratio planned / one task,
  median of ROUNDS rounds (interleaved planned, one, one, planned, ...). Target <= 0.6x: two chains of two units on
  two workers would take 0.5x with nothing added.
* overhead per subtask: (planning + each subtask's start and merge + the final test run) / 4, from the timelines
  and the fake API's request times, median over the planned rounds:
  - planning: the start call -> the plan shown ("plan" event): queue pickup, the plan's checkout, the planner call
    (one model turn: MODEL_TURN_SECONDS of it is the model's);
  - start: a subtask ready (the plan shown, or its dependency merged) -> its first model request: pickup, the work-
    horse, the fork of its branch from the plan's, its environment;
  - merge: the subtask's ending event -> its "merged" event on the plan's timeline (the merge commit, under the
    plan's lock);
  - final test: the last merge -> the planned task's ending event (the finishing job's pickup, the merged branch's
    test run).
  Shown beside it: each subtask's own close (its closing turn's request -> its ending event: the closing turn, the
  test run and checkpoint every task ends with; the one task pays it once, a plan once per subtask).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Figure, Rig, median, wait_until, worker_idle  # noqa: E402
from bench.git import owner_git, private_git  # noqa: E402
from core import event_log  # noqa: E402
from core.config import load_settings  # noqa: E402
from core.task_manager import TaskManager  # noqa: E402
from tests.fakes.anthropic_api import bash, delay, edit, text, tool_use  # noqa: E402

UNITS = ("a", "b", "c", "d")
AFTER = {"b": "a", "d": "c"}  # the two independent pairs: a -> b, c -> d
UNIT_TURNS = 10
MODEL_TURN_SECONDS = 2.0  # a coding turn of a real model (Claude's, with tool use) takes seconds; 1 s is the floor
QUICK_TURN_SECONDS = 0.1
QUICK_UNIT_TURNS = 3
ROUNDS = 3
PLANNER = "Plan the work for this goal"  # the planner's request opens with it (core/plans.PLANNER_REQUEST)

PLAN_WALL = "planned task, 4 subtasks (a->b, c->d) on 2 workers, wall time"
SINGLE_WALL = "planned task's baseline: the same 4 units as one task, wall time"
RATIO = "planned task / one task, wall time"
OVERHEAD = "planned task, overhead per subtask (planning, start, merge, final test)"
PLANNING = "  planned task: planning (start -> plan shown, incl. the planner's model turn)"
START = "  planned task: subtask start (ready -> its first model request)"
MERGE = "  planned task: merge of a subtask (its end -> merged)"
FINAL = "  planned task: final test run (last merge -> plan complete)"
CLOSE = "  planned task: a subtask's own close (closing turn, test run, checkpoint)"
NAMES = [PLAN_WALL, SINGLE_WALL, RATIO, OVERHEAD, PLANNING, START, MERGE, FINAL, CLOSE]


def unit_turns(key: str, count: int = UNIT_TURNS) -> list:
    """One unit of work: `count` tool turns writing, testing and refining unit_<key>.py (the first 3 write it and
    its test and run it)."""
    module, test = f"unit_{key}.py", f"test_unit_{key}.py"
    before = AFTER.get(key)
    body = (f"from unit_{before} import value_{before}\n\n\ndef value_{key}():\n    return value_{before}() + 1\n"
            if before else f"def value_{key}():\n    return 1\n")
    expected = 2 if before else 1
    turns = [edit(command="create", path=module, file_text=body),
             edit(command="create", path=test, file_text=(
                 f"import unittest\n\nfrom unit_{key} import value_{key}\n\n\n"
                 f"class Unit{key.upper()}Test(unittest.TestCase):\n    def test_value(self):\n"
                 f"        self.assertEqual(value_{key}(), {expected})\n")),
             bash(f"python -m pytest -q {test}"),
             edit(command="insert", path=module, insert_line=0, insert_text=f'"""Unit {key} of the benchmark."""\n'),
             bash(f"python -m pytest -q {test}"),
             edit(command="view", path=module),
             bash(f"grep -n def {module}"),
             edit(command="str_replace", path=module, old_str=f"def value_{key}():",
                  new_str=f"# unit {key}: its value\ndef value_{key}():"),
             bash(f"python -m pytest -q {test}"),
             edit(command="view", path=test)]
    assert len(turns) == UNIT_TURNS
    return turns[:count]


def subtask_goal(key: str) -> str:
    after = f", using unit_{AFTER[key]}.py" if key in AFTER else ""
    return f"Write unit_{key}.py and test_unit_{key}.py{after}"


def new_project(rig: Rig, name: str) -> Path:
    folder = rig.settings.PROJECTS_ROOT / name
    folder.mkdir(parents=True)
    (folder / "README.md").write_text("# units\n\nFour units of the planned-task benchmark.\n")
    owner_git(folder, "init", "-q")
    owner_git(folder, "add", "-A")
    owner_git(folder, "commit", "-qm", "the owner's first commit")
    return folder


def ending(tasks: TaskManager, task_id: str) -> event_log.Event | None:
    return next((e for e in reversed(event_log.read(tasks.redis, task_id)) if e.ends), None)


def failed_subtask(tasks: TaskManager, parent: str) -> str | None:
    """A failed subtask's line: the plan waits for the owner then (retry or cancel), the benchmark cannot go on."""
    record = tasks.plan_record(parent)
    rows = tasks.plan_rows(record) if record else []
    return next((f"subtask {row['key']} ({row['task_id']}) failed: {row['note']}" for row in rows
                 if row["state"] == "failed"), None)


def ended(tasks: TaskManager, task_id: str, timeout: float, plan: bool = False) -> event_log.Event:
    def check():
        if plan and (why := failed_subtask(tasks, task_id)):
            raise SystemExit(f"bench: planned task {task_id}: {why}")
        return ending(tasks, task_id)

    last = wait_until(check, timeout, f"task {task_id} to end", 0.05 if not plan else 0.2)
    if last.type != "complete":
        raise SystemExit(f"bench: task {task_id} ended {last.type}: {last.message}")
    return last


def first_request(rig: Rig, script: str) -> float:
    return min(r.received_at for r in rig.fake.message_requests if r.script == script)


def last_request(rig: Rig, script: str) -> float:
    return max(r.received_at for r in rig.fake.message_requests if r.script == script)


def planned_round(rig: Rig, tasks: TaskManager, n: int, turn: float, count: int, timeout: float) -> dict:
    """One planned run: its wall time and the overhead parts, in seconds."""
    rig.fake.reset()
    plan = {"subtasks": [{"key": k, "title": f"Unit {k}", "goal": subtask_goal(k),
                          "depends_on": [AFTER[k]] if k in AFTER else []} for k in UNITS]}
    rig.fake.script([delay(turn, tool_use("plan_subtasks", plan))], match=PLANNER, name="planner")
    for key in UNITS:
        rig.fake.script([delay(turn, t) for t in unit_turns(key, count)] + [delay(turn, text(f"Wrote unit {key}."))],
                        match=f"Goal: {subtask_goal(key)}", name=key)
    new_project(rig, f"planned-{n}")
    began = time.time()
    parent = tasks.start("Build the four units a, b, c and d with their tests", f"planned-{n}", plan=True)
    done = ended(tasks, parent, timeout, plan=True)
    timeline = event_log.read(tasks.redis, parent)
    shown = next(e.at for e in timeline if e.type == "plan")
    record = tasks.plan_record(parent)
    ids = {sub["key"]: sub["task_id"] for sub in record["subtasks"]}
    if set(ids) != set(UNITS):
        raise SystemExit(f"bench: the plan ran other subtasks than a, b, c, d: {sorted(ids)}")
    merged = {e.data["key"]: e.at for e in timeline if e.type == "subtask" and e.data.get("state") == "merged"}
    starts, merges, closes = [], [], []
    for key in UNITS:
        ready = merged[AFTER[key]] if key in AFTER else shown
        starts.append(first_request(rig, key) - ready)
        sub_end = ended(tasks, ids[key], 10).at
        merges.append(merged[key] - sub_end)
        closes.append(sub_end - last_request(rig, key))  # its last request is its closing turn
    final = done.at - max(merged.values())
    planning = shown - began
    return {"wall": done.at - began, "planning": planning, "start": statistics.fmean(starts),
            "merge": statistics.fmean(merges), "final": final, "close": statistics.fmean(closes),
            "per_subtask": (planning + sum(starts) + sum(merges) + final) / len(UNITS)}


def single_round(rig: Rig, tasks: TaskManager, n: int, turn: float, count: int, timeout: float) -> dict:
    """The same four units as one ordinary task: its wall time."""
    rig.fake.reset()
    goal = "Write unit_a.py, unit_b.py, unit_c.py and unit_d.py, each with its test, one after another"
    rig.fake.script([delay(turn, t) for key in UNITS for t in unit_turns(key, count)]
                    + [delay(turn, text("Wrote the four units."))], match=f"Goal: {goal}", name="single")
    new_project(rig, f"single-{n}")
    began = time.time()
    task_id = tasks.start(goal, f"single-{n}", plan=False)
    return {"wall": ended(tasks, task_id, timeout).at - began}


def run(rig: Rig, quick: bool, out=print) -> list[Figure]:
    turn = QUICK_TURN_SECONDS if quick else MODEL_TURN_SECONDS
    rounds = 1 if quick else ROUNDS
    count = QUICK_UNIT_TURNS if quick else UNIT_TURNS
    timeout = 120 + 4 * (UNIT_TURNS + 2) * turn * 3
    tasks = TaskManager(rig.redis, load_settings(PLAN_GOALS="ask"))
    with private_git(rig.work / "home"):
        workers = [rig.spawn([str(ROOT / "start_worker.py"), "--name", f"plans-{i}"], f"plans-{i}",
                             PLAN_GOALS="ask") for i in range(2)]
        try:
            wait_until(lambda: all(worker_idle(rig.redis, f"plans-{i}") for i in range(2)), 90,
                       "the two workers to listen", 0.05)
            # One task first, not measured: the uv cache and each worker's first fork warm up.
            new_project(rig, "warm-up")
            rig.fake.reset()
            rig.fake.script([text("Nothing to do.")], match="Goal: warm up", name="warm-up")
            ended(tasks, tasks.start("warm up", "warm-up", plan=False), timeout)
            planned, single = [], []
            order = ["planned", "single", "single", "planned"] * ((rounds + 1) // 2)
            for n, kind in enumerate(order[:rounds * 2]):
                if kind == "planned":
                    planned.append(planned_round(rig, tasks, n, turn, count, timeout))
                else:
                    single.append(single_round(rig, tasks, n, turn, count, timeout))
        finally:
            for process in workers:
                rig.stop(process)
    found = figures(planned, single, turn, count)
    for figure in found:
        out(figure.line())
    return found


def figures(planned: list[dict], single: list[dict], turn: float, count: int) -> list[Figure]:
    def mid(rows: list[dict], name: str) -> float:
        return median([row[name] for row in rows])

    def each(rows: list[dict], name: str = "wall") -> str:
        return ", ".join(f"{row[name]:.2f}" for row in rows)

    unit = f"a unit: {count} model turns of {turn:g} s"
    ratio = mid(planned, "wall") / mid(single, "wall")
    found = [Figure(PLAN_WALL, f"{mid(planned, 'wall'):.2f} s median ({each(planned)}; {unit})"),
             Figure(SINGLE_WALL, f"{mid(single, 'wall'):.2f} s median ({each(single)})"),
             Figure(RATIO, f"{ratio:.2f}x", "<= 0.6x", ratio <= 0.6),
             Figure(OVERHEAD, f"{mid(planned, 'per_subtask'):.2f} s median ({each(planned, 'per_subtask')})")]
    for name, key in ((PLANNING, "planning"), (START, "start"), (MERGE, "merge"), (FINAL, "final"),
                      (CLOSE, "close")):
        found.append(Figure(name, f"{mid(planned, key) * 1000:.0f} ms"
                                  + (" (mean of the 4 subtasks)" if key in ("start", "merge", "close") else "")))
    return found

