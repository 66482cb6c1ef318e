"""The tasks' history: a compact summary of every ended task, kept for HISTORY_DAYS after its own data expired.

A task's job, result and timeline expire RESULT_TTL_SECONDS (7 days) after it ends; the report (core/report.py)
looks further back. So where every ending passes (core/background_worker._finish: the worker's own ending, a
killed work-horse's recorded by its worker or the reaper, a plan's end) one summary is written: a hash per task
(keys.history_task) and its id in one sorted set scored by the end time (keys.HISTORY). Each write also trims
what is older than HISTORY_DAYS, so the history never outgrows its period. A task that ends again (a plan's
subtask retried, a task continued after its worker restarted) keeps its latest ending.
"""

from __future__ import annotations

import json
import time
from pathlib import PurePosixPath

import redis

from core import keys
from core.defaults import HISTORY_GOAL_CHARS
from core.git_workspace import is_git_url

DAY_SECONDS = 24 * 3600
NUMBERS = ("started_at", "ended_at", "duration_seconds", "cost_usd")
COUNTS = ("iterations", "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def project_name(project_path: str) -> str:
    """The project as the report groups it: the folder's name, or a git URL's repository name."""
    text = str(project_path or "").strip().rstrip("/")
    if is_git_url(text):
        text = text.rsplit(":", 1)[-1] if "://" not in text else text
        return PurePosixPath(text).name.removesuffix(".git") or text
    return PurePosixPath(text).name or text or "(none)"


def summary(task_id: str, meta: dict, result: dict, started_at: float | None, ended_at: float) -> dict:
    """The summary of one ended task, from its job.meta and the result its ending recorded (background_worker._finish):
    a planned task's duration is the plan's whole time, its cost its subtasks' (marked `planned`, so the report
    counts that cost once)."""
    usage = result.get("usage") or {}
    # A plan's own ending (core/plan_jobs.finish_plan) ran no loop: its usage is the sum of its subtasks'.
    planned = bool(meta.get("plan")) and not meta.get("parent") and not result.get("iterations")
    duration = float(result.get("duration_seconds") or 0.0)
    if planned and started_at is not None:
        duration = max(duration, ended_at - started_at)
    goal = " ".join(str(meta.get("goal", "")).split())
    return {
        "task_id": task_id, "goal": goal[:HISTORY_GOAL_CHARS - 1] + "…" if len(goal) > HISTORY_GOAL_CHARS else goal,
        "project": project_name(meta.get("project_path", "")), "parent": meta.get("parent") or "",
        "planned": planned, "outcome": result["outcome"], "reason": str(result.get("reason") or ""),
        "started_at": started_at if started_at is not None else ended_at - duration, "ended_at": ended_at,
        "duration_seconds": round(duration, 3), "model": str(result.get("model") or ""),
        "cost_usd": float(result.get("cost_usd") or 0.0), "iterations": int(result.get("iterations") or 0),
        **{name: int(usage.get(name) or 0) for name in COUNTS[1:]},
        "model_seconds": [float(s) for s in result.get("model_seconds") or []],
    }


def record(connection: redis.Redis, entry: dict, keep_days: int) -> None:
    """Write one task's summary (overwriting an earlier ending of the same task) and trim the history to keep_days."""
    fields = {name: json.dumps(value) if isinstance(value, (list, bool)) else value for name, value in entry.items()}
    with connection.pipeline() as pipe:
        pipe.hset(keys.history_task(entry["task_id"]), mapping=fields)
        # A backstop for a trim that never runs again (no task ends any more): gone a day after its period.
        pipe.expire(keys.history_task(entry["task_id"]), (keep_days + 1) * DAY_SECONDS)
        pipe.zadd(keys.HISTORY, {entry["task_id"]: entry["ended_at"]})
        pipe.execute()
    trim(connection, keep_days)


def trim(connection: redis.Redis, keep_days: int) -> int:
    """Remove the summaries of tasks that ended more than keep_days ago; how many went."""
    cutoff = time.time() - keep_days * DAY_SECONDS
    old = connection.zrangebyscore(keys.HISTORY, "-inf", f"({cutoff}")
    if not old:
        return 0
    with connection.pipeline() as pipe:
        pipe.delete(*[keys.history_task(raw.decode()) for raw in old])
        pipe.zrem(keys.HISTORY, *old)
        pipe.execute()
    return len(old)


def read(connection: redis.Redis, since: float, until: float | None = None) -> list[dict]:
    """The summaries of the tasks that ended from `since` to `until` (now), oldest first."""
    ids = [raw.decode() for raw in connection.zrangebyscore(keys.HISTORY, since, until if until is not None else "+inf")]
    with connection.pipeline(transaction=False) as pipe:
        for task_id in ids:
            pipe.hgetall(keys.history_task(task_id))
        found = pipe.execute() if ids else []
    return [_entry(raw) for raw in found if raw]


def _entry(raw: dict) -> dict:
    entry: dict = {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}
    for name in NUMBERS:
        entry[name] = float(entry.get(name) or 0.0)
    for name in COUNTS:
        entry[name] = int(entry.get(name) or 0)
    entry["planned"] = entry.get("planned") == "true"
    entry["model_seconds"] = json.loads(entry.get("model_seconds") or "[]")
    return entry
