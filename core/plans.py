"""Planned tasks: one model call splits a big goal into subtasks with dependencies (a DAG), each a task of its own.

What lives here is the plan itself, with no Redis and no git: the `plan_subtasks` tool the planner is offered (its
schema made from the documented Subtask dataclass), the checks a plan must pass, the planner call (one re-ask with the
reason, then give up), the plan as stored under task:<id>:plan, and the one-line summary every surface shows
("3 of 5 subtasks done, 1 running, 1 waiting on api"). The worker side (the planning, subtask and finishing jobs) is
core/plan_jobs.py; the owner's side (start, status tree, cancel, retry) is core/task_manager.py.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from core.defaults import GOAL_MAX_CHARS
from core.exceptions import InvalidPlan
from core.model import Model, Usage
from core.schema import object_schema

PLAN_TOOL_NAME = "plan_subtasks"
KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")

# How a subtask row stands, as plan_summary() counts it (core/task_manager.TaskManager.plan_rows derives them).
DONE, RUNNING, WAITING, READY, FAILED, BLOCKED, INTEGRATING, CANCELLED = (
    "done", "running", "waiting", "queued", "failed", "blocked", "integrating", "cancelled")

# The roles of a plan's subtasks: the planner's own, one added to resolve a merge conflict, the final fix-up.
PLANNED, INTEGRATION, FIXUP = "planned", "integration", "fix-up"


@dataclass
class Subtask:
    """One piece of the goal, done by its own worker on its own git branch and merged into the plan's branch.

    Attributes:
        key: A short unique name (letters, digits, - or _; e.g. "store"); other subtasks' depends_on name it.
        title: A few words for the owner, e.g. "SQLite store".
        goal: What this subtask must build or change and test, complete enough to do on its own (it sees the
            plan's branch with the work of the subtasks it depends on already merged).
        depends_on: The keys of the subtasks whose work this one needs first; empty: it can start at once.
        capability: The kind of worker it needs, e.g. "python" or "frontend"; leave it out when any will do.
    """

    key: str
    title: str
    goal: str
    depends_on: list[str] = field(default_factory=list)
    capability: str | None = None


def plan_tool(max_subtasks: int) -> dict:
    """The one tool the planner is offered: plan_subtasks({"subtasks": [Subtask, ...]})."""
    return {"name": PLAN_TOOL_NAME,
            "description": ("Give the plan: the subtasks that together reach the goal, each done by its own worker "
                            "on its own branch and merged into one branch. Subtasks that do not depend on each other "
                            "run at the same time."),
            "input_schema": {"type": "object", "required": ["subtasks"], "properties": {"subtasks": {
                "type": "array", "minItems": 1, "maxItems": max_subtasks, "items": object_schema(Subtask),
                "description": f"At most {max_subtasks} subtasks; depends_on must never form a cycle."}}}}


def validate(raw: object, max_subtasks: int) -> list[Subtask]:
    """The subtasks of a plan_subtasks input, in an order where each comes after what it depends on; InvalidPlan
    with a reason the model can act on otherwise."""
    items = raw.get("subtasks") if isinstance(raw, dict) else None
    if not isinstance(items, list) or not items:
        raise InvalidPlan('The input needs "subtasks": a non-empty list of subtasks.')
    if len(items) > max_subtasks:
        raise InvalidPlan(f"The plan has {len(items)} subtasks; at most {max_subtasks} are allowed: merge some.")
    subtasks: list[Subtask] = []
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise InvalidPlan(f"Subtask {number} is not an object.")
        key = item.get("key")
        if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
            raise InvalidPlan(f"Subtask {number} has the key {key!r}: use 1 to 32 letters, digits, - or _.")
        if key == FIXUP or key.endswith("-merge"):
            raise InvalidPlan(f"The key {key} is kept for TARS's own subtasks: choose another.")
        goal = item.get("goal")
        if not isinstance(goal, str) or not goal.strip():
            raise InvalidPlan(f"Subtask {key} has no goal.")
        if len(goal) > GOAL_MAX_CHARS:
            raise InvalidPlan(f"Subtask {key}'s goal is {len(goal)} characters; keep it to {GOAL_MAX_CHARS}.")
        depends = item.get("depends_on") or []
        if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
            raise InvalidPlan(f"Subtask {key}'s depends_on must be a list of keys.")
        capability = item.get("capability")
        if capability is not None and not (isinstance(capability, str) and KEY_PATTERN.fullmatch(capability)):
            raise InvalidPlan(f"Subtask {key}'s capability {capability!r} is not a short name.")
        title = item.get("title")
        title = " ".join(title.split())[:80] if isinstance(title, str) and title.strip() else key
        subtasks.append(Subtask(key, title, goal.strip(), list(dict.fromkeys(depends)), capability or None))
    keys = [s.key for s in subtasks]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise InvalidPlan(f"The keys {', '.join(repeated)} are used more than once: each subtask needs its own.")
    for sub in subtasks:
        unknown = [d for d in sub.depends_on if d not in keys]
        if unknown:
            raise InvalidPlan(f"Subtask {sub.key} depends on {', '.join(unknown)}, which no subtask is called.")
        if sub.key in sub.depends_on:
            raise InvalidPlan(f"Subtask {sub.key} depends on itself.")
    return _in_order(subtasks)


def _in_order(subtasks: list[Subtask]) -> list[Subtask]:
    """Topological order (the planner's order where it allows); InvalidPlan naming a cycle."""
    ordered: list[Subtask] = []
    done: set[str] = set()
    left = list(subtasks)
    while left:
        ready = [s for s in left if set(s.depends_on) <= done]
        if not ready:
            raise InvalidPlan(f"The dependencies form a cycle: {_cycle(left)}. A plan must be a DAG.")
        for sub in ready:
            ordered.append(sub)
            done.add(sub.key)
        left = [s for s in left if s.key not in done]
    return ordered


def _cycle(left: list[Subtask]) -> str:
    """One cycle among subtasks that all wait on each other, as "a -> b -> a"."""
    by_key = {s.key: s for s in left}
    path, key = [], left[0].key
    while key not in path:
        path.append(key)
        key = next(d for d in by_key[key].depends_on if d in by_key)
    return " -> ".join(path[path.index(key):] + [key])


PLANNER_SYSTEM = """You plan work for TARS's background programmers. Several of them work at the same time, each on \
its own git branch of the same project; TARS merges each finished branch into one branch. Split the owner's goal \
into a few subtasks that can be built and tested on their own, so that independent ones run in parallel, and say \
which need another's work first (depends_on). Give each subtask a complete goal. Answer only by calling \
plan_subtasks."""

PLANNER_REQUEST = """Plan the work for this goal, in at most {max_subtasks} subtasks:

{goal}

The project holds now:
{listing}"""


def ask_planner(model: Model, goal: str, listing: str, max_subtasks: int, spent: Usage,
                told: Callable[[str], None] = lambda sentence: None) -> tuple[list[Subtask] | None, str]:
    """One planner call (and one more with the reason when its plan is invalid): (the subtasks, "") or (None, why the
    goal should run as one task). Each call's tokens are added to `spent` as it answers, so those of a first call
    still count when the second raises; ModelError propagates. told: hears each model taking over from another."""
    tools = [plan_tool(max_subtasks)]
    system = [{"type": "text", "text": PLANNER_SYSTEM}]
    messages: list[dict] = [{"role": "user", "content": [{"type": "text", "text": PLANNER_REQUEST.format(
        goal=goal, listing=listing.strip() or "(nothing yet)", max_subtasks=max_subtasks)}]}]
    reason = ""
    for attempt in (1, 2):
        turn = model.query(system=system, tools=tools, messages=messages)
        spent.add(turn.usage)
        for sentence in turn.fallbacks:
            told(sentence)
        calls = [b for b in turn.tool_uses if b.get("name") == PLAN_TOOL_NAME]
        try:
            if not calls:
                raise InvalidPlan("The answer did not call plan_subtasks.")
            return validate(calls[0].get("input"), max_subtasks), ""
        except InvalidPlan as exc:
            reason = str(exc)
        if attempt == 2:
            break
        messages.append({"role": "assistant", "content": turn.content or [{"type": "text", "text": "..."}]})
        answer = f"That plan cannot be used: {reason} Call plan_subtasks again with a corrected plan."
        if calls:
            messages.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": calls[0]["id"], "is_error": True, "content": answer}]
                + [{"type": "tool_result", "tool_use_id": b["id"], "is_error": True, "content": "Ignored."}
                   for b in turn.tool_uses if b is not calls[0]]})
        else:
            messages.append({"role": "user", "content": [{"type": "text", "text": answer}]})
    return None, f"the planner's plan was invalid twice ({reason})"


# --- the stored plan (task:<id>:plan) ---------------------------------------------------------------------------

def finisher_id(parent: str, round_: int = 1) -> str:
    """The id of a plan's finishing job (core/plan_jobs.finish_plan): <parent>-finish, then <parent>-finish-2, -3…
    for the one after the fix-up subtask and each `task retry` of the plan."""
    return f"{parent}-finish" if round_ == 1 else f"{parent}-finish-{round_}"


def next_finisher(parent: str, record: dict) -> str:
    """The id of the finishing job that follows the plan's current one (record["finisher"])."""
    current = record["finisher"]
    round_ = 1 if current == finisher_id(parent) else int(current.rpartition("-")[2])
    return finisher_id(parent, round_ + 1)


def retry_command(task_id: str) -> str:
    return f"python main_tars.py task retry {task_id}"


def new_record(goal: str, subtasks: list[Subtask], task_ids: list[str], finisher: str, planner_usage: Usage) -> dict:
    """The plan as stored: each subtask with its task id and role; the finishing job; the fix-up, once made; the
    planner's tokens (part of the plan's cost, core/task_manager.TaskManager.plan_usage)."""
    return {"goal": goal, "finisher": finisher, "fixup": None, "planner_usage": planner_usage.as_dict(),
            "subtasks": [{**dataclasses.asdict(s), "task_id": t, "role": PLANNED}
                         for s, t in zip(subtasks, task_ids)]}


def dumps(record: dict) -> str:
    return json.dumps(record, separators=(",", ":"))


def loads(raw: bytes | str | None) -> dict | None:
    return json.loads(raw) if raw else None


def context_for(record: dict, key: str) -> str:
    """What a subtask is told of the plan after its own goal: the whole plan, its own part marked."""
    lines = [f"This is subtask {key} of a plan for the goal: {record['goal']}",
             "The plan (each subtask has its own worker and branch; finished ones are merged into one branch, and "
             "you start from that branch with the work of the subtasks you depend on already in it):"]
    for sub in record["subtasks"]:
        after = f" (after {', '.join(sub['depends_on'])})" if sub["depends_on"] else ""
        mine = "  <- yours" if sub["key"] == key else ""
        lines.append(f"- {sub['key']}: {sub['title']}{after}{mine}")
    lines.append("Do only your own subtask; the others are done by other workers.")
    return "\n".join(lines)


def plan_sentence(record: dict) -> str:
    """The plan in one line for the owner: "Plan of 3 subtasks: store (SQLite store); api (REST API, after store)"."""
    parts = []
    for sub in record["subtasks"]:
        after = f", after {', '.join(sub['depends_on'])}" if sub["depends_on"] else ""
        parts.append(f"{sub['key']} ({sub['title']}{after})")
    count = len(record["subtasks"])
    return f"Plan of {count} subtask{'s' if count != 1 else ''}: " + "; ".join(parts)


# --- the summary every surface shows ---------------------------------------------------------------------------

def plan_summary(rows: list[dict]) -> str:
    """"3 of 5 subtasks done, 1 running, 1 waiting on api" from rows with "key", "state" and "waiting_on" (the
    unfinished keys a waiting or blocked row needs). The one sentence the CLI, the voice, the dashboard and Discord
    give for a plan."""
    total = len(rows)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    parts = [f"{counts.get(DONE, 0)} of {total} subtask{'s' if total != 1 else ''} done"]
    for state, word in ((RUNNING, "running"), (INTEGRATING, "integrating a merge"), (READY, "waiting for a worker"),
                        (FAILED, "failed"), (CANCELLED, "cancelled")):
        if counts.get(state):
            parts.append(f"{counts[state]} {word}")
    for state, word in ((WAITING, "waiting on"), (BLOCKED, "blocked by")):
        if counts.get(state):
            needed = sorted({k for row in rows if row["state"] == state for k in row.get("waiting_on", [])})
            parts.append(f"{counts[state]} {word} {', '.join(needed)}")
    return ", ".join(parts)


def blocked_sentence(rows: list[dict]) -> str | None:
    """What a plan that cannot go on by itself tells the owner: a subtask failed (or was cancelled) and nothing else of
    the plan runs or waits for a worker (whatever is left waits on it, directly or through others). None otherwise.
    "Blocked: subtask store failed (the tests fail). Retry it with: python main_tars.py task retry 1a2b, or cancel
    the plan." Rows as plan_summary's, with "task_id" and "note" (why it failed)."""
    stuck = [row for row in rows if row["state"] in (FAILED, CANCELLED)]
    if not stuck or any(row["state"] in (RUNNING, READY) for row in rows):
        return None
    said = "; ".join(f"subtask {row['key']} {'was cancelled' if row['state'] == CANCELLED else 'failed'}"
                     + (f" ({why})" if (why := _why(row["note"])) else "") for row in stuck)
    retries = " and ".join(retry_command(row["task_id"]) for row in stuck)
    return f"Blocked: {said}. Retry {'it' if len(stuck) == 1 else 'them'} with: {retries}, or cancel the plan."


def _why(note: str) -> str:
    """A failed subtask's reason without its own retry hint (the sentence gives one) or its closing full stop."""
    return note.partition(" Retry it with:")[0].strip().rstrip(".")
