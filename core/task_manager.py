"""The task manager: the one door to tasks for every edge (start, status, list, cancel, retry, confirm, its branch).

Any process may use a TaskManager (CLI, voice server, tests). After enqueue only
the worker writes job.meta; this side signals through its own keys (cancel).
A task's status is derived from RQ's job status plus the worker's phase and
result, never stored a second time.
"""

from __future__ import annotations

import re
import secrets
import socket
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import redis
from rq import Queue
from rq.command import send_stop_execution_command, send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from core import budget, capabilities, event_log, git_workspace, keys, pause, plans, retries, schedules
from core.config import Settings
from core.confirmations import close_request, open_request, submit_code
from core.defaults import (CANCEL_GRACE_SECONDS, CONFIRMATION_ATTEMPTS, GOAL_MAX_CHARS, JOB_TIMEOUT_MARGIN_SECONDS,
                           QUEUE_NAME, RECENT_TASKS_KEPT, RESULT_TTL_SECONDS, TASK_ID_BYTES)
from core.scrub import Scrubber
from core.exceptions import (CodeRejected, GitError, InvalidGoal, InvalidProjectPath, PauseRefused, PhoneUnavailable,
                             TaskNotActive, TaskNotFound)
from core.git_workspace import Checkpoint, MergeResult, TaskCheckout
from core.model import Usage
from core.task_states import (ACTIVE, AWAITING_CONFIRMATION, CANCELLED, COMPLETE, ENDING_PHASE, FAILED, NORMAL,
                               PAUSED, QUEUED, RUNNING, SCHEDULED, outcome_of)

JOB_FUNCTION = "core.background_worker.run_task"
PLANNED_JOB_FUNCTION = "core.plan_jobs.run_planned_task"  # plans first; runs run_task when it cannot
SUBTASK_JOB_FUNCTION = "core.plan_jobs.run_subtask"
FINISH_JOB_FUNCTION = "core.plan_jobs.finish_plan"
APPROVAL_JOB_FUNCTION = "core.plan_jobs.approve_plan"
APPROVAL_RULE = "plan_approval"  # the rule of a plan's confirmation request (PLAN_APPROVAL=on)
TASK_ID_PATTERN = re.compile(r"[0-9a-f]{1,32}")
URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]*@|^https?://[^/@\s]+@", re.IGNORECASE)


WIRE_NAMES = {"call_sid": "session_id"}
"""TaskStatus fields whose JSON (and job.meta) name differs from the Python one."""


@dataclass
class TaskStatus:
    task_id: str
    status: str  # queued | scheduled | running | awaiting_confirmation | paused | complete | failed | timeout | cancelled
    phase: str
    progress: str
    goal: str
    project_path: str
    call_sid: str | None  # the phone call that started the task (stored and sent as "session_id")
    verbose_updates: bool | None
    retry_of: str | None
    usage: dict | None  # tokens so far (input, output, cache writes, cache reads); the result has the final ones
    cost_usd: float | None  # estimated cost so far
    files_changed: list[str]  # files the model's editor changed so far
    branch: str | None  # the task's own branch tars/<id> (None until a worker prepared its checkout, or discarded)
    checkpoints: int  # checkpoints committed on it so far
    awaiting_confirmation: bool
    confirmation_command: str | None
    reason: str | None
    result: dict | None
    created_at: str | None
    started_at: str | None
    ended_at: str | None
    parent: str | None = None  # a plan's subtask: the planned task it belongs to
    plan: list[dict] | None = None  # a planned task: its subtasks (TaskManager.plan_rows), once planned
    priority: str = NORMAL  # high | normal | low: which of its queues it waits on
    scheduled_for: str | None = None  # a task started for later: the time RQ's scheduler queues it (ISO)
    attempt: int = 1  # its attempt: 2 and on after automatic retries (core/retries.py)
    attempts: int | None = None  # how many attempts it may have, once it was retried (MAX_TASK_RETRIES + 1)
    retry_at: str | None = None  # when its automatic retry is due, while it waits for it
    held: bool = False  # queued, held by the daily budget until it allows again (core/budget.py)
    paused_by: str | None = None  # while paused: "workers" (every worker is), "task" (on its own) or "plan" (its plan)
    call_when_done: bool = False  # TARS calls the owner when it ends (communication/owner_phone.py)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def to_dict(self) -> dict[str, Any]:
        """The JSON of the API and the CLI: field names as they always were (call_sid is sent as session_id)."""
        return {WIRE_NAMES.get(name, name): value for name, value in asdict(self).items()}


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat()


def _recorded_reason(meta: dict) -> str | None:
    """Why a task ended, as its worker (or the reaper) recorded it with the ending phase: "Failed: <reason>"."""
    return meta.get("progress", "").partition(": ")[2] or None


def derive_status(rq_status: JobStatus | None, meta: dict, result: dict | None, cancel_requested: bool,
                  pause_requested: bool = False) -> str:
    """The TARS status of a task from what RQ and the worker recorded (and whether the owner paused it, core/pause.py:
    a started task is paused from the moment it is asked, though it stops only at its next step)."""
    if rq_status == JobStatus.SCHEDULED and meta.get("scheduled_for"):  # waiting for its time (core/schedules.py)
        return SCHEDULED
    if rq_status in (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED, JobStatus.CREATED,
                     JobStatus.READY_TO_ENQUEUE, JobStatus.RATE_LIMITED):
        return QUEUED
    if rq_status == JobStatus.STARTED:
        if outcome_of(meta.get("phase")):  # the loop has ended; RQ records it a moment later
            return outcome_of(meta["phase"])
        if meta.get("awaiting_confirmation"):
            return AWAITING_CONFIRMATION
        return PAUSED if pause_requested else RUNNING
    if rq_status == JobStatus.FINISHED:
        return (result or {}).get("outcome") or outcome_of(meta.get("phase")) or COMPLETE
    if rq_status == JobStatus.CANCELED:
        return CANCELLED
    if rq_status == JobStatus.STOPPED or (rq_status == JobStatus.FAILED and cancel_requested):
        return CANCELLED
    # A plan's subtask that did not end merged fails its job on purpose (its dependents wait): its outcome stands.
    return outcome_of(meta.get("phase")) if meta.get("parent") and outcome_of(meta.get("phase")) else FAILED


class TaskManager:
    def __init__(self, connection: redis.Redis, settings: Settings):
        self.redis = connection
        self.settings = settings
        self.queue = Queue(QUEUE_NAME, connection=connection)
        self.scrubber = Scrubber(settings.secret_values())  # built once: start() is on the voice path

    # --- start ----------------------------------------------------------------
    def resolve_project(self, project_path: str | Path | None) -> Path | str:
        """The project of a task: a git URL as given (the worker clones it), else a directory inside PROJECTS_ROOT,
        created if missing."""
        root = self.settings.PROJECTS_ROOT
        shown = str(project_path)[:200]
        if isinstance(project_path, str) and git_workspace.is_git_url(project_path):
            url = project_path.strip()
            if URL_PASSWORD.search(url):
                # It would be stored in Redis and shown in every status: credentials belong to git, not the URL.
                raise InvalidProjectPath("The project URL carries a password or token; remove it and give the "
                                         "worker access through an SSH key or a git credential helper instead.")
            if any(c.isspace() or ord(c) < 32 for c in url) or len(url) > 2000:
                raise InvalidProjectPath(f"The project URL {shown!r} is not a usable git URL.")
            return url
        try:
            if project_path is None or not str(project_path).strip():
                path = self.settings.DEFAULT_PROJECT_PATH
            else:
                raw = Path(str(project_path).strip()).expanduser()
                path = raw if raw.is_absolute() else root / raw
            path = path.resolve()
            if not path.is_relative_to(root):
                raise InvalidProjectPath(f"The project path {shown} is outside the projects folder {root}; "
                                         f"tasks may only work inside it.")
            if path == root:
                raise InvalidProjectPath(f"The project path {shown} is the projects folder itself: name a project "
                                         f"folder inside it.")
            if path.exists() and not path.is_dir():
                raise InvalidProjectPath(f"The project path {path} is a file, not a folder.")
            path.mkdir(parents=True, exist_ok=True)
        except (OSError, RuntimeError, ValueError) as exc:  # NUL bytes, ~unknownuser, names too long, no space
            reason = getattr(exc, "strerror", None) or str(exc)
            raise InvalidProjectPath(f"The project path {shown!r} cannot be used: {reason}.") from None
        return path

    def start(self, goal: str, project_path: str | Path | None = None, verbose_updates: bool | None = None,
              call_sid: str | None = None, retry_of: str | None = None, plan: bool | None = None,
              priority: str | None = NORMAL, at: datetime | None = None, task_id: str | None = None,
              source: str | None = None, call_when_done: bool = False) -> str:
        """Queue a task; the new id. plan: split the goal into subtasks first (core/plans.py); None: as PLAN_GOALS
        says (only `always` plans unasked). priority: high, normal or low (its queue, core/capabilities.py). at: an
        aware datetime to start it then instead of now (RQ's scheduler queues it; core/schedules.py). task_id: one
        new_id() gave earlier (the tasks file claims its entries' ids first, core/task_file.py). source: where the
        goal came from, when not said live (its queued event says it: "tasks.yaml line 3")."""
        goal = (goal or "").strip() if isinstance(goal, str) else ""
        if not goal:
            raise InvalidGoal("The goal is empty: say what the task should build or fix.")
        if len(goal) > GOAL_MAX_CHARS:
            raise InvalidGoal(f"The goal is {len(goal)} characters long; keep it to {GOAL_MAX_CHARS} at most.")
        priority = capabilities.parse_priority(priority)
        if call_when_done and self.settings.phone_missing():
            raise PhoneUnavailable("I cannot call you when it is done: set " + ", ".join(self.settings.phone_missing())
                                   + " in .env (docs/PHONE.md).")
        at = schedules.checked(at) if at is not None else None
        planned = plan if plan is not None else self.settings.PLAN_GOALS == "always"
        refused = bool(planned) and self.settings.PLAN_GOALS == "never"  # as before plans: one task, and why
        planned = planned and not refused
        project = self.resolve_project(project_path)
        goal = self.scrubber.text(goal)  # the goal goes to the model and to Discord
        if task_id:  # new_id() listed it among the recent tasks; a claim that outlived its reader may not be
            self.redis.zadd(keys.RECENT_TASKS, {task_id: time.time()}, nx=True)
        task_id = task_id or self._new_id()
        meta = {"progress": "Waiting for a worker", "phase": QUEUED, "awaiting_confirmation": False,
                "confirmation_command": None, "goal": goal, "session_id": call_sid,
                "project_path": str(project), "verbose_updates": verbose_updates, "retry_of": retry_of,
                "plan": bool(planned), "parent": None, "plan_key": None, "priority": priority,
                "scheduled_for": at.isoformat() if at else None, "source": source,
                "call_when_done": bool(call_when_done)}
        # Today's budget spent: it waits on the budget's gate. A task started for later is not held now: RQ's
        # scheduler checks the budget of the day its time comes (budget.hold_due).
        held = None if at else budget.hold(self.redis, self.settings, meta)
        self._enqueue(task_id, meta, PLANNED_JOB_FUNCTION if planned else JOB_FUNCTION, held, at=at)
        if held:
            budget.tell_held(self.redis, self.settings, task_id)
        if refused:
            event_log.append(self.redis, task_id, "plan_fallback", "Running the goal as one task: planned tasks are "
                             "off (PLAN_GOALS=never; set PLAN_GOALS=ask to plan when asked).", QUEUED,
                             {"reason": "PLAN_GOALS=never"})
        return task_id

    def _timeout(self) -> int:
        return int(self.settings.max_runtime_seconds + self.settings.CONFIRMATION_TIMEOUT_SECONDS
                   + JOB_TIMEOUT_MARGIN_SECONDS)

    def _enqueue(self, task_id: str, meta: dict, function: str, depends_on: list[str] | None = None,
                 at: datetime | None = None) -> None:
        """Put a task's job on its queue (its capability's and priority's, core/capabilities.py; deferred by RQ
        until depends_on all finished, or scheduled by RQ's scheduler until `at`) and tell its timeline."""
        goal, call_sid, retry_of = meta["goal"], meta.get("session_id"), meta.get("retry_of")
        options = dict(args=(task_id,), job_id=task_id, timeout=self._timeout(), meta=meta,
                       result_ttl=RESULT_TTL_SECONDS, failure_ttl=RESULT_TTL_SECONDS,
                       description=f"TARS task {task_id}: {goal[:100]}")
        queue = Queue(capabilities.queue_name(meta.get("capability"), meta.get("priority", NORMAL)),
                      connection=self.redis)
        with self.redis.pipeline() as pipe:
            if depends_on:  # RQ checks the dependencies itself, outside any pipeline of ours
                queue.enqueue_call(function, depends_on=depends_on, **options)
            elif at:
                queue.schedule_job(queue.create_job(function, status=JobStatus.SCHEDULED, **options), at,
                                   pipeline=pipe)
            else:
                queue.enqueue_call(function, pipeline=pipe, **options)
            data = {"project_path": meta["project_path"], "retry_of": retry_of}
            if meta.get("parent"):
                data.update(parent=meta["parent"], plan_key=meta["plan_key"])
            if meta.get("priority", NORMAL) != NORMAL:
                data.update(priority=meta["priority"])
            said = "Queued"
            if at:
                said = f"Scheduled to start {schedules.when_text(at)}"
                data.update(scheduled_for=meta["scheduled_for"])
            if meta.get("source"):
                said = f"{said} from {meta['source']}"
                data.update(source=meta["source"])
            event_log.append(pipe, task_id, QUEUED, f"{said}: {goal}", QUEUED, data)
            if call_sid and not meta.get("parent"):  # a call's latest task is the plan, not one of its subtasks
                pipe.zadd(keys.call_tasks(call_sid), {task_id: time.time()})
                pipe.expire(keys.call_tasks(call_sid), RESULT_TTL_SECONDS)
            pipe.zremrangebyrank(keys.RECENT_TASKS, 0, -RECENT_TASKS_KEPT - 1)
            pipe.execute()

    # --- plans (core/plans.py; the worker side is core/plan_jobs.py) ---------------------------------------------
    def new_id(self) -> str:
        """A fresh task id, claimed (a planning worker claims its subtasks' ids before it stores the plan)."""
        return self._new_id()

    def enqueue_subtask(self, parent: str, sub: dict, record: dict, depends_on: list[str],
                        **extra_meta) -> None:
        """Queue one of a plan's subtasks (sub: a row of the stored plan) as a task of its own, deferred by RQ until
        the jobs in depends_on finished; extra_meta: merge_from for an integration subtask."""
        parent_meta = Job.fetch(parent, connection=self.redis).get_meta(refresh=True) or {}
        meta = {"progress": "Waiting for a worker", "phase": QUEUED, "awaiting_confirmation": False,
                "confirmation_command": None, "goal": sub["goal"], "session_id": parent_meta.get("session_id"),
                "project_path": parent_meta.get("project_path", ""),
                "verbose_updates": parent_meta.get("verbose_updates"), "retry_of": None, "plan": False,
                "parent": parent, "plan_key": sub["key"], "plan_context": plans.context_for(record, sub["key"]),
                "capability": capabilities.normalize(sub["capability"]) if sub.get("capability") else None,
                "priority": parent_meta.get("priority", NORMAL), **extra_meta}
        self._enqueue(sub["task_id"], meta, SUBTASK_JOB_FUNCTION, depends_on)
        # Listed right under its plan, in the plan's order, and never "the latest task" while the plan is newer.
        parent_at = self.redis.zscore(keys.RECENT_TASKS, parent)
        if parent_at is not None:
            position = next(i for i, s in enumerate(record["subtasks"], 1) if s["task_id"] == sub["task_id"])
            self.redis.zadd(keys.RECENT_TASKS, {sub["task_id"]: parent_at - position * 1e-4}, xx=True)

    def enqueue_finisher(self, parent: str, job_id: str, depends_on: list[str]) -> None:
        """Queue the job that tests the merged branch and ends the planned task once every subtask in depends_on
        finished (RQ defers it until then). It is no task of its own (its meta has no goal): the reaper knows it by
        its function, FINISH_JOB_FUNCTION, and runs it again once when its worker dies (core/worker.Reaper)."""
        queue = self._plan_queue(parent)
        queue.enqueue_call(FINISH_JOB_FUNCTION, args=(parent,), job_id=job_id, timeout=self._timeout(),
                           meta={"plan_of": parent}, depends_on=depends_on or None,
                           result_ttl=RESULT_TTL_SECONDS, failure_ttl=RESULT_TTL_SECONDS,
                           description=f"TARS plan {parent}: test the merged branch")

    def _plan_queue(self, parent: str) -> Queue:
        """Where a plan's own jobs (its finishing job, its approval) wait: the normal family's queue at the plan's
        priority, so a high plan's last steps never wait behind normal tasks."""
        level = (Job.fetch(parent, connection=self.redis).get_meta(refresh=True) or {}).get("priority")
        return Queue(capabilities.queue_name(None, level or NORMAL), connection=self.redis)

    def plan_record(self, task_id: str) -> dict | None:
        """The stored plan of a planned task (core/plans.new_record), None before it is planned or for others."""
        return plans.loads(self.redis.get(keys.task_plan(task_id)))

    def tell_if_blocked(self, parent: str) -> str | None:
        """A plan that cannot go on by itself (plans.blocked_sentence: a subtask failed, nothing else runs or waits
        for a worker) says so on its timeline, once until a subtask's retry is queued; the sentence, or None. Asked
        by each subtask as it ends, and by whoever records a dead one's end."""
        if self.redis.exists(keys.task_cancel(parent)):
            return None
        record = self.plan_record(parent)
        sentence = plans.blocked_sentence(self.plan_rows(record)) if record else None
        if sentence and self.redis.set(keys.task_plan_blocked(parent), sentence, nx=True, ex=RESULT_TTL_SECONDS):
            phase = (self._job(parent).get_meta(refresh=True) or {}).get("phase") or RUNNING
            event_log.append(self.redis, parent, "subtask", sentence, phase, {"state": "blocked"})
        return sentence

    def plan_rows(self, record: dict) -> list[dict]:
        """Each subtask of a plan as the owner sees it: key, title, task_id, role, state (core/plans DONE...),
        status, branch, checkpoints, cost_usd, depends_on, waiting_on, note."""
        return self._plan(record)[0]

    def plan_usage(self, record: dict) -> Usage:
        """What a plan has used so far: its planner's tokens and each subtask's, a running one's as its worker last
        stored them. The planned task's usage and cost while it runs (status) and once it ends (plan_jobs)."""
        return self._plan(record)[1]

    def _plan(self, record: dict) -> tuple[list[dict], Usage]:
        """(plan_rows, plan_usage) from one read of the subtasks' jobs."""
        ids = [sub["task_id"] for sub in record["subtasks"]]
        jobs = {job.id: job for job in Job.fetch_many(ids, connection=self.redis) if job is not None}
        rows: list[dict] = []
        by_key: dict[str, dict] = {}
        used = Usage.from_dict(record.get("planner_usage"))
        for sub in record["subtasks"]:
            job = jobs.get(sub["task_id"])
            status = self._status_of(job) if job is not None else None
            used.add(Usage.from_dict(status.usage if status else None))
            meta = (job.get_meta(refresh=False) or {}) if job is not None else {}
            row = {"key": sub["key"], "title": sub["title"], "task_id": sub["task_id"], "role": sub["role"],
                   "status": status.status if status else QUEUED, "depends_on": sub["depends_on"],
                   "branch": status.branch if status else None, "checkpoints": status.checkpoints if status else 0,
                   "cost_usd": status.cost_usd if status else None, "waiting_on": [], "note": ""}
            row["state"], row["note"] = self._row_state(row, status, meta, by_key, jobs)
            if row["state"] in (plans.WAITING, plans.BLOCKED):
                row["waiting_on"] = [k for k in sub["depends_on"] if by_key[k]["state"] != plans.DONE]
            rows.append(row)
            by_key[sub["key"]] = row
        return rows, used

    def _row_state(self, row: dict, status: TaskStatus | None, meta: dict, by_key: dict,
                   jobs: dict[str, Job]) -> tuple[str, str]:
        if status is None or status.status == QUEUED:
            failed = [by_key[k] for k in row["depends_on"]
                      if by_key[k]["state"] in (plans.FAILED, plans.BLOCKED, plans.CANCELLED)]
            if failed:
                first = failed[0]
                why = f", which failed: {first['note'] or first['status']}" if first["state"] == plans.FAILED \
                    else f", which is {first['state']}"
                return plans.BLOCKED, f"blocked: waiting on {first['key']}{why}"
            waiting = [k for k in row["depends_on"] if by_key[k]["state"] != plans.DONE]
            if waiting:
                return plans.WAITING, f"waiting on {', '.join(waiting)}"
            return plans.READY, capabilities.waiting_note(self.redis, meta.get("capability")) or "waiting for a worker"
        if status.status in ACTIVE:
            return plans.RUNNING, status.progress
        if status.status == COMPLETE:
            if meta.get("merged"):
                return plans.DONE, f"merged into the plan's branch"
            integrator = meta.get("integrated_by")
            if integrator:
                merged = (jobs.get(integrator) or Job.fetch(integrator, connection=self.redis)).get_meta(
                    refresh=False).get("merged") if integrator else False
                if merged:
                    return plans.DONE, f"merged by integration subtask {integrator}"
                return plans.INTEGRATING, f"conflicts with the plan's branch; subtask {integrator} resolves them"
            return plans.RUNNING, "merging into the plan's branch"
        if status.status == CANCELLED:
            return plans.CANCELLED, status.reason or "cancelled"
        return plans.FAILED, status.reason or status.status

    def _new_id(self) -> str:
        # Claim the id in the recent-tasks index first, so two starts can never share one.
        while True:
            task_id = secrets.token_hex(TASK_ID_BYTES)
            if not Job.exists(task_id, self.redis) and self.redis.zadd(keys.RECENT_TASKS, {task_id: time.time()},
                                                                       nx=True):
                return task_id

    # --- status -----------------------------------------------------------------
    def latest_id(self, call_sid: str | None = None) -> str | None:
        """The newest task: of the call `call_sid`, or of all."""
        key = keys.call_tasks(call_sid) if call_sid else keys.RECENT_TASKS
        newest = self.redis.zrevrange(key, 0, 0)
        return newest[0].decode() if newest else None

    def _job(self, task_id: str | None) -> Job:
        if task_id is None:
            task_id = self.latest_id()
            if task_id is None:
                raise TaskNotFound("There are no tasks yet.")
        task_id = str(task_id).strip().lower().lstrip("#")
        if not TASK_ID_PATTERN.fullmatch(task_id):
            # RQ refuses ids with spaces, slashes or colons; a person just hears "no such task".
            raise TaskNotFound(f"There is no task {task_id[:40]}." if task_id else "No task id was given.")
        try:
            return Job.fetch(task_id, connection=self.redis)
        except (NoSuchJobError, InvalidJobOperation):
            raise TaskNotFound(f"There is no task {task_id}.") from None

    def status(self, task_id: str | None = None) -> TaskStatus:
        return self._status_of(self._job(task_id))

    def newest_waiting(self, call_sid: str | None = None) -> str | None:
        """The newest task waiting for the owner's code: first among the tasks of call_sid (when given), else among
        all recent ones; None when none waits. What a code given without a task id answers (keypad, text)."""
        for rows in ([self.list(limit=10, call_sid=call_sid)] if call_sid else []) + [self.list(limit=20)]:
            for status in rows:
                if status.status == AWAITING_CONFIRMATION:
                    return status.task_id
        return None

    def settled(self, task_id: str) -> bool:
        """The task has ended and its work-horse writes nothing more of its own: the status says it ended and RQ no
        longer runs the job. A horse stores the ended phase a moment before it adds the ending event, and RQ records
        the job's end only after both, so a reader waiting for the ending event (a dashboard stream, `task log
        --follow`) asks this before it gives up on it: a loaded machine can stall the horse between the two writes."""
        job = self._job(task_id)
        return not self._status_of(job).active and job.get_status(refresh=False) != JobStatus.STARTED

    def _status_of(self, job: Job, cancel_requested: bool | None = None, hold: str | None | bool = False
                   ) -> TaskStatus:
        """hold: what pauses it (TaskManager._holds), when the caller read it already."""
        meta = job.get_meta(refresh=False) or {}
        rq_status = job.get_status(refresh=False)
        result = job.return_value() if rq_status == JobStatus.FINISHED else None
        if cancel_requested is None:
            cancel_requested = bool(self.redis.exists(keys.task_cancel(job.id)))
        if hold is False:
            hold = self._holds([job])[0]
        status = derive_status(rq_status, meta, result, cancel_requested, hold is not None)
        rows = None
        usage, cost = (result or {}).get("usage") or meta.get("usage"), (result or {}).get("cost_usd",
                                                                                         meta.get("cost_usd"))
        if meta.get("plan") and (result or {}).get("planned"):  # the planning job ended; the plan goes on
            status, result, rows, spent = self._plan_status(job.id, cancel_requested)
            if (result or {}).get("usage"):  # ended by its finishing job: its result is the record, not the meta
                usage, cost = result["usage"], result.get("cost_usd", cost)
            elif spent is not None:  # so far
                usage, cost = spent.as_dict(), spent.cost_usd
            status = PAUSED if status == RUNNING and hold else status
        reason = (result or {}).get("reason")
        checkout = meta.get("checkout") or {}
        if not reason and status not in ACTIVE and outcome_of(meta.get("phase")):
            # The loop ended and RQ has no result (not stored yet, or the worker recorded a killed horse's end):
            # the worker's last progress says why.
            reason = _recorded_reason(meta)
        if status in (FAILED, CANCELLED) and not reason:
            reason = self._failure_reason(job, status)
        progress = meta.get("progress", "")
        if status == QUEUED and (note := capabilities.waiting_note(self.redis, meta.get("capability"))):
            progress = note[0].upper() + note[1:]  # "Waiting for a worker with frontend"
        if status == SCHEDULED:
            progress = f"Scheduled to start {schedules.when_text(datetime.fromisoformat(meta['scheduled_for']))}"
        if rows is not None and status in (QUEUED, RUNNING, PAUSED):
            progress = plans.blocked_sentence(rows) or plans.plan_summary(rows)
        if status == QUEUED and hold == pause.BY_WORKERS:
            progress = pause.QUEUED_NOTE
        elif status == PAUSED:
            progress = pause.progress(job.id, bool(meta.get("paused")), hold, meta.get("parent"), progress)
        return TaskStatus(
            task_id=job.id, status=status, phase=meta.get("phase", QUEUED), progress=progress,
            goal=meta.get("goal", ""), project_path=meta.get("project_path", ""),
            call_sid=meta.get("session_id"), verbose_updates=meta.get("verbose_updates"),
            retry_of=meta.get("retry_of"), usage=usage, cost_usd=cost,
            files_changed=list((result or {}).get("files_changed") or meta.get("files_changed") or []),
            branch=None if checkout.get("discarded") else checkout.get("branch"),
            checkpoints=int(meta.get("checkpoints") or 0),
            awaiting_confirmation=bool(meta.get("awaiting_confirmation")) and status == AWAITING_CONFIRMATION,
            confirmation_command=meta.get("confirmation_command") if status == AWAITING_CONFIRMATION else None,
            reason=None if status in ACTIVE else reason,
            result=result, created_at=_iso(job.created_at), started_at=_iso(job.started_at),
            ended_at=_iso(job.ended_at) if rows is None else _iso(self._plan_ended(job.id, status)),
            parent=meta.get("parent"), plan=rows, priority=meta.get("priority") or NORMAL,
            scheduled_for=meta.get("scheduled_for"),
            attempt=retries.attempt_of(job), attempts=meta.get("attempts"),
            retry_at=_iso(datetime.fromtimestamp(meta["retry_at"], timezone.utc))
            if rq_status == JobStatus.SCHEDULED and isinstance(meta.get("retry_at"), (int, float)) else None,
            held=bool(meta.get("held")) and status == QUEUED, paused_by=hold if status == PAUSED else None,
            call_when_done=bool(meta.get("call_when_done")))

    def _holds(self, jobs: list[Job]) -> list[str | None]:
        """What pauses each task (core/pause.py): BY_WORKERS, BY_TASK (on its own), BY_PLAN (its plan) or None."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(keys.WORKERS_PAUSED)
            for job in jobs:
                pipe.exists(*pause.task_pause_keys(job.id, None))
                pipe.exists(*pause.task_pause_keys(job.id, (job.meta or {}).get("parent")))
            found = iter(pipe.execute())
        by_workers = bool(next(found))
        holds = []
        for _ in jobs:
            alone, with_plan = next(found), next(found)
            holds.append(pause.BY_WORKERS if by_workers else pause.BY_TASK if alone else
                         pause.BY_PLAN if with_plan else None)
        return holds

    def _plan_status(self, task_id: str, cancel_requested: bool) -> tuple[str, dict | None, list[dict], Usage | None]:
        """(status, result, subtask rows, plan_usage) of a planned task whose planning job ended: its finishing job's
        outcome once that ran (core/plan_jobs.finish_plan), else running (or cancelled)."""
        record = self.plan_record(task_id)
        if record is None:  # expired or never stored
            return FAILED, {"reason": "The task's plan is gone (it expired)."}, [], None
        rows, spent = self._plan(record)
        try:
            finisher = Job.fetch(record["finisher"], connection=self.redis)
        except NoSuchJobError:
            finisher = None
        state = finisher.get_status(refresh=False) if finisher else None
        if record.get("not_approved"):
            return CANCELLED, {"reason": record["not_approved"]}, rows, spent
        if not cancel_requested and self._awaiting_approval(record):
            return AWAITING_CONFIRMATION, None, rows, spent
        if state == JobStatus.FINISHED:
            ended = finisher.return_value() or {}
            if ended.get("outcome"):
                return ended["outcome"], ended, rows, spent
        if cancel_requested or state in (JobStatus.CANCELED, JobStatus.STOPPED):
            return CANCELLED, {"reason": "The task was cancelled."}, rows, spent
        if state == JobStatus.FAILED:
            # The reaper ends the planned task (its workers died) before it fails this job: read that ending now.
            ending = self._job(task_id).get_meta(refresh=False) or {}
            if outcome_of(ending.get("phase")):
                return FAILED, {"reason": _recorded_reason(ending)}, rows, spent
            return FAILED, {"reason": "Testing the merged branch crashed (see the worker log); test it again with: "
                                      f"{plans.retry_command(task_id)}"}, rows, spent
        return RUNNING, None, rows, spent

    def _plan_ended(self, task_id: str, status: str) -> datetime | None:
        if status in ACTIVE:
            return None
        record = self.plan_record(task_id)
        try:
            return Job.fetch(record["finisher"], connection=self.redis).ended_at if record else None
        except NoSuchJobError:
            return None

    def _failure_reason(self, job: Job, status: str) -> str:
        if status == CANCELLED:
            return "The task was cancelled."
        latest = job.latest_result()
        text = (latest.exc_string or "") if latest else ""
        if "JobTimeoutException" in text:
            return "RQ's hard job timeout killed the task."
        if "Work-horse terminated unexpectedly" in text:
            return f"The worker process running the task died ({text.strip().rstrip(';')})."
        last_line = next((line for line in reversed(text.strip().splitlines()) if line.strip()), "")
        return f"The task crashed: {last_line[:300]}" if last_line else "The task failed."

    def list(self, limit: int = 20, call_sid: str | None = None) -> list[TaskStatus]:
        if limit <= 0:
            return []
        key = keys.call_tasks(call_sid) if call_sid else keys.RECENT_TASKS
        ids = [i.decode() for i in self.redis.zrevrange(key, 0, max(0, limit - 1))]
        jobs = [job for job in (Job.fetch_many(ids, connection=self.redis) if ids else []) if job is not None]
        with self.redis.pipeline(transaction=False) as pipe:  # one round trip for every cancel flag, not one each
            for job in jobs:
                pipe.exists(keys.task_cancel(job.id))
            cancels = pipe.execute() if jobs else []
        return [self._status_of(job, bool(cancel), hold) for job, cancel, hold in zip(jobs, cancels, self._holds(jobs))]

    # --- cancel -------------------------------------------------------------------
    def cancel(self, task_id: str, wait: float = CANCEL_GRACE_SECONDS) -> TaskStatus:
        """Stop a task: a queued one never runs; a running one stops within a few seconds."""
        job = self._job(task_id)
        before = self._status_of(job)
        if not before.active:
            raise TaskNotActive(f"Task {job.id} has already ended ({before.status}), so there is nothing to cancel.")
        self.redis.set(keys.task_cancel(job.id), time.time(), ex=RESULT_TTL_SECONDS)
        if before.plan is not None:  # planned: its planning job ended, its subtasks run or wait
            return self._cancel_plan(job, wait)
        if before.status in (QUEUED, SCHEDULED) and job.get_status() in (JobStatus.QUEUED, JobStatus.DEFERRED,
                                                                          JobStatus.SCHEDULED):
            try:
                job.cancel()
                # No worker will ever tell its timeline: the cancel ends it here (followers and streams stop).
                event_log.append(self.redis, job.id, ENDING_PHASE[CANCELLED],
                                 "The task was cancelled before its retry started." if before.attempt > 1 else
                                 "The task was cancelled before it started.", ENDING_PHASE[CANCELLED])
            except InvalidJobOperation:
                pass  # a worker took it just now: the cancel key stops it at once
        with self.redis.pipeline() as pipe:
            # Wake a worker blocked on a confirmation wait, and the watcher of a running loop.
            pipe.rpush(keys.task_confirmation_wake(job.id), "cancel").expire(keys.task_confirmation_wake(job.id), 600)
            pipe.publish(keys.task_control(job.id), "cancel")
            pipe.execute()
        if job.get_status() in (JobStatus.STARTED, JobStatus.QUEUED) and wait > 0:
            if not self.wait_until_ended(job.id, wait):
                # Backstop: the loop did not stop by itself (e.g. stuck in a model call): RQ kills the horse.
                self._stop_horse(job)
                self.wait_until_ended(job.id, wait)
        job.refresh()
        return self._status_of(job)

    def _cancel_plan(self, job: Job, wait: float,
                     why: str = "The task was cancelled, with its subtasks.") -> TaskStatus:
        """Cancel a planned task: every subtask (queued and deferred ones never start, running ones stop) and the
        finishing job; its own timeline ends here, as no worker will end it."""
        record = self.plan_record(job.id)
        if record:
            self.cancel_plan_jobs(record, wait)
        event_log.append(self.redis, job.id, ENDING_PHASE[CANCELLED], why, ENDING_PHASE[CANCELLED],
                         {"reason": why})
        with self.redis.pipeline() as pipe:
            pipe.delete(keys.task_finished(job.id)).rpush(keys.task_finished(job.id), "1")
            pipe.expire(keys.task_finished(job.id), RESULT_TTL_SECONDS).execute()
        return self._status_of(job)

    def cancel_plan_jobs(self, record: dict, wait: float = CANCEL_GRACE_SECONDS) -> None:
        """Stop every job of a plan: the finishing job and the deferred and queued subtasks at once (none of them
        starts), then the running ones through their cancel keys (each stops within seconds)."""
        if record.get("approval"):  # waiting for the owner's code: that request ends unanswered
            self._close_approval(record)
        try:
            finisher = Job.fetch(record["finisher"], connection=self.redis)
            if finisher.get_status() in (JobStatus.DEFERRED, JobStatus.QUEUED, JobStatus.SCHEDULED):
                finisher.cancel()
        except (NoSuchJobError, InvalidJobOperation):
            pass
        active = []
        for sub in record["subtasks"]:
            try:
                if self.status(sub["task_id"]).active:
                    active.append(sub["task_id"])
            except TaskNotFound:
                continue
        for task_id in active:  # every cancel key first: a subtask ending now starts no dependent that runs
            self.redis.set(keys.task_cancel(task_id), time.time(), ex=RESULT_TTL_SECONDS)
        deadline = time.monotonic() + wait
        for task_id in active:
            try:
                self.cancel(task_id, wait=max(0.5, deadline - time.monotonic()))
            except (TaskNotActive, TaskNotFound):
                pass

    # --- pause and resume one task (core/pause.py; every worker: pause.pause_workers) ---------------------------
    def pause(self, task_id: str | None) -> TaskStatus:
        """Pause one started task on its own: it stops at its next step boundary and waits there, its runtime clock
        stopped, until resume(); a cancel still ends it. A planned task's pause holds its subtasks."""
        job = self._job(task_id)
        status = self._status_of(job)
        if not status.active:
            raise PauseRefused(f"Task {job.id} has already ended ({status.status}), so there is nothing to pause.")
        if status.status == QUEUED:
            raise PauseRefused(f"Task {job.id} has not started yet, so it cannot be paused on its own: cancel it, or "
                               f"pause every worker (python main_tars.py workers pause) to keep it from starting.")
        pause.pause_task(self.redis, job.id)
        return self._status_of(job)

    def resume(self, task_id: str | None) -> TaskStatus:
        """Let a task paused on its own go on from the step it stopped at."""
        job = self._job(task_id)
        status = self._status_of(job)
        if not status.active:
            raise PauseRefused(f"Task {job.id} has already ended ({status.status}), so there is nothing to resume.")
        if not pause.resume_task(self.redis, job.id):
            if status.paused_by == pause.BY_WORKERS:
                raise PauseRefused(f"Task {job.id} is not paused on its own: every worker is paused. Resume them "
                                   f"with: {pause.RESUME_WORKERS}")
            if status.paused_by == pause.BY_PLAN:
                raise PauseRefused(f"Task {job.id} is paused with its plan: resume task {status.parent}.")
            raise PauseRefused(f"Task {job.id} is not paused.")
        return self._status_of(job)

    # --- retry --------------------------------------------------------------------
    def retry(self, task_id: str, call_sid: str | None = None) -> str:
        """Start an ended task again by hand: a new task with the same goal, project and verbosity, from the project
        as it is (the old task's branch stays); the new id. (An automatic retry, core/retries.py, runs the same task
        again on its own branch instead.) A plan's subtask runs again as itself, and a failed plan whose subtasks all
        merged tests its merged branch again, as itself (its id is returned)."""
        status = self.status(task_id)
        if status.active:
            raise TaskNotActive(f"Task {status.task_id} is still {status.status.replace('_', ' ')}, so it "
                                f"cannot be retried yet: cancel it first or wait for it to end.")
        if status.parent or (status.plan and status.status == FAILED
                             and all(row["state"] == plans.DONE for row in status.plan)):
            return self._retry_in_place(status.task_id)
        planned = bool((self._job(status.task_id).get_meta(refresh=False) or {}).get("plan"))
        return self.start(status.goal, status.project_path, verbose_updates=status.verbose_updates,
                          call_sid=call_sid or status.call_sid, retry_of=status.task_id, plan=planned or None,
                          priority=status.priority)  # an urgent task's retry is as urgent

    def _retry_in_place(self, task_id: str) -> str:
        """A subtask or a plan runs again as itself: one retry at a time (two owners, or the phone and the dashboard at
        once, must not queue it twice), its state read again once this retry holds the claim."""
        claim = keys.task_retrying(task_id)
        if not self.redis.set(claim, 1, nx=True, ex=60):
            raise TaskNotActive(f"Task {task_id} is being retried already.")
        try:
            status = self.status(task_id)
            if status.active:
                raise TaskNotActive(f"Task {task_id} is {status.status.replace('_', ' ')} again: it was retried "
                                    "just now.")
            return self._retry_subtask(status) if status.parent else self._retest_plan(status)
        finally:
            self.redis.delete(claim)

    def _retest_plan(self, status: TaskStatus) -> str:
        """Test a failed plan's merged branch again: only its finishing job failed (its workers died, it crashed, or
        the branch was red), so a new one runs and ends the planned task as the first would have. Returns its id."""
        parent = status.task_id
        record = self.plan_record(parent)
        record["finisher"] = plans.next_finisher(parent, record)
        self.redis.set(keys.task_plan(parent), plans.dumps(record), ex=RESULT_TTL_SECONDS)
        self.redis.delete(keys.task_reaped(parent), keys.task_finished(parent))
        # Active again: its phase no longer says how it ended, so the reaper can end it again should that be needed.
        self._save_meta(parent, phase="testing", progress="Waiting for a worker to test the merged branch again")
        event_log.append(self.redis, parent, "phase", "Testing the merged branch again (retry): every subtask is "
                         "merged.", "testing", {"finisher": record["finisher"], "retry_of": parent})
        self.enqueue_finisher(parent, record["finisher"], [])
        return parent

    def _retry_subtask(self, status: TaskStatus) -> str:
        """Run a plan's failed subtask again as the same task, on its own branch (its checkout is kept); once it
        merges, RQ starts what waited on it and the plan goes on. Returns its id."""
        parent = self.status(status.parent)
        if not parent.active:
            raise TaskNotActive(f"Subtask {status.task_id}'s plan, task {parent.task_id}, has ended ({parent.status}); "
                                f"retry the whole plan instead: python main_tars.py task retry {parent.task_id}")
        job = self._job(status.task_id)
        deadline = time.monotonic() + CANCEL_GRACE_SECONDS
        while job.get_status() == JobStatus.STARTED and time.monotonic() < deadline:
            time.sleep(0.1)  # its work-horse recorded the end and RQ records the job's a moment later
        if job.get_status() == JobStatus.STARTED:
            raise TaskNotActive(f"Subtask {job.id} has ended, but RQ still has it running: its worker died, and the "
                                "reaper releases it within about 30 seconds. Retry it then.")
        if job.get_status() not in (JobStatus.FAILED, JobStatus.STOPPED):
            raise TaskNotActive(f"Subtask {status.task_id} ended {status.status} and its plan goes on without a "
                                "retry; only a failed one can be retried.")
        meta = job.get_meta(refresh=True) or {}
        self.redis.delete(keys.task_cancel(job.id), keys.task_reaped(job.id), keys.task_finished(job.id))
        job.meta.update(phase=QUEUED, progress="Waiting for a worker (retry)", awaiting_confirmation=False)
        job.save_meta()
        job.number_of_retries = 0  # retried by hand: its automatic retries start afresh (core/retries.py)
        try:
            job.requeue()
        except InvalidJobOperation:
            raise TaskNotActive(f"Subtask {job.id} is not among RQ's failed jobs any more, so it cannot be "
                                "requeued.") from None
        self.redis.delete(keys.task_plan_blocked(status.parent))  # queued: the plan goes on, a new block is told again
        event_log.append(self.redis, job.id, QUEUED, f"Queued again on its branch: {status.goal}", QUEUED,
                         {"retry_of": job.id, "parent": status.parent})
        event_log.append(self.redis, status.parent, "subtask", f"Retrying subtask {meta.get('plan_key')} "
                         f"({job.id}) on its branch; what waits on it goes on once it is merged.", parent.phase,
                         {"task_id": job.id, "key": meta.get("plan_key"), "state": "retrying"})
        return job.id

    # --- the timeline (core/event_log.py) --------------------------------------------------
    def events(self, task_id: str | None, after: str | None = None) -> list[event_log.Event]:
        """The task's events after id `after` (all by default), oldest first."""
        return event_log.read(self.redis, self._job(task_id).id, after)

    def follow(self, task_id: str | None, after: str | None = None, poll: float = 1.0):
        """Yield the task's events as they happen (its past ones first), and None every `poll` seconds of quiet
        (a progress display redraws then); returns once the task has ended and its ending event was yielded."""
        task_id = self._job(task_id).id
        while True:
            fresh = event_log.wait(self.redis, task_id, after, poll)
            for event in fresh:
                after = event.id
                yield event
            if any(e.ends for e in fresh):
                return
            if not fresh:
                if self.settled(task_id) and not event_log.wait(self.redis, task_id, after, 0.2):
                    return  # ended without an ending event (it expired, or the trim removed it)
                yield None

    # --- the task's branch (core/git_workspace.py) -------------------------------------
    def task_checkout(self, task_id: str | None, action: str) -> TaskCheckout:
        """The checkout of an ended task, for `action` ("roll it back", "merge"...) on this machine."""
        job = self._job(task_id)
        status = self._status_of(job)
        if status.active:
            raise TaskNotActive(f"Task {job.id} is still {status.status.replace('_', ' ')}; {action} once it has "
                                f"ended (or cancel it first: python main_tars.py task cancel {job.id}).")
        meta = job.get_meta(refresh=False) or {}
        if not meta.get("checkout"):
            raise GitError(f"Task {job.id} has no branch: it ended before a worker prepared its checkout.")
        if meta["checkout"].get("discarded"):
            raise GitError(f"Task {job.id} was discarded: its branch {meta['checkout'].get('branch')} and its "
                           "checkout are gone.")
        host = meta.get("checkout_host")
        if host and host != socket.gethostname():
            raise GitError(f"Task {job.id}'s checkout is on the machine {host}; {action} there "
                           f"(python main_tars.py on {host}).")
        recorded = TaskCheckout.from_dict(meta["checkout"])
        return git_workspace.find(recorded.task_id, recorded.data_dir)  # raises once discarded or cleaned up

    def checkpoints(self, task_id: str | None) -> list[Checkpoint]:
        return git_workspace.checkpoints(self.task_checkout(task_id, "list its checkpoints"))

    def changes(self, task_id: str | None) -> dict:
        """What the task's branch holds now: git_workspace.summary() (branch, commits, files, diffstat)."""
        return git_workspace.summary(self.task_checkout(task_id, "look at it"))

    def rollback(self, task_id: str | None, to: int | None = None) -> Checkpoint:
        """Reset the task's branch and files to checkpoint `to` (0: before the task; default: the one before last)."""
        checkout = self.task_checkout(task_id, "roll it back")
        back = git_workspace.rollback(checkout, to)
        self._save_meta(checkout.task_id, checkpoints=back.number)  # the status's count follows the branch
        return back

    def merge(self, task_id: str | None) -> MergeResult:
        return git_workspace.merge(self.task_checkout(task_id, "merge it"))

    def discard(self, task_id: str | None) -> str:
        checkout = self.task_checkout(task_id, "discard it")
        said = git_workspace.discard(checkout)
        self._save_meta(checkout.task_id, checkpoints=0,
                        checkout={**checkout.to_dict(), "discarded": True})  # the status shows no branch now
        return said

    def _save_meta(self, task_id: str, **fields) -> None:
        """Change an ended task's meta fields (its worker no longer writes them)."""
        job = self._job(task_id)
        job.meta.update(fields)
        job.save_meta()

    def push(self, task_id: str | None) -> str:
        return git_workspace.push(self.task_checkout(task_id, "push it"))

    # --- confirm ------------------------------------------------------------------
    def confirm(self, task_id: str, code: object, request_id: str | None = None) -> TaskStatus:
        """Give the confirmation code for the task's pending destructive command (request_id: only if that request
        is the one pending, core/confirmations.submit_code)."""
        status = self.status(task_id)
        if not status.active:
            raise TaskNotActive(f"Task {status.task_id} has already ended ({status.status}), so it needs no code.")
        record = self.plan_record(status.task_id) if status.awaiting_confirmation else None
        gate = record if record and self._awaiting_approval(record) else None
        try:
            submit_code(self.redis, status.task_id, code, self.settings.secret("CONFIRMATION_CODE"), request_id)
        except CodeRejected as exc:
            if gate and exc.attempts_left <= 0:
                self.refuse_plan(status.task_id, f"The plan was not approved: {CONFIRMATION_ATTEMPTS} wrong "
                                                 f"confirmation codes were given.")
            raise
        if gate:
            self._approve_plan(status.task_id, gate)
        return status

    # --- plan approval (PLAN_APPROVAL=on) ----------------------------------------------------------------------
    # The plan's root subtasks depend on an approval job that is created but not enqueued, so RQ defers them and
    # no worker is held; the owner's code (confirm(), from any channel) enqueues it, and RQ starts them after it.
    def create_approval_gate(self, parent: str) -> str:
        """The approval job of a plan (saved, not enqueued); its id."""
        queue = self._plan_queue(parent)
        job = queue.create_job(APPROVAL_JOB_FUNCTION, args=(parent,), job_id=f"{parent}-approve",
                               status=JobStatus.CREATED, meta={"plan_of": parent}, timeout=60,
                               result_ttl=RESULT_TTL_SECONDS, failure_ttl=RESULT_TTL_SECONDS,
                               description=f"TARS plan {parent}: approved by the owner")
        job.save()
        return job.id

    def ask_approval(self, parent: str, record: dict) -> tuple[str, str]:
        """Open the plan's confirmation request on the planned task itself, so every channel that gives codes
        approves it; (request id, the command the owner approves)."""
        command = f"the plan: {plans.plan_sentence(record)}"
        timeout = self.settings.CONFIRMATION_TIMEOUT_SECONDS
        request_id = open_request(self.redis, parent, command, "PLAN_APPROVAL=on: you approve a plan before its "
                                  "subtasks start", APPROVAL_RULE, timeout)
        self.redis.zadd(keys.PLANS_AWAITING_APPROVAL, {parent: time.time() + timeout})
        return request_id, command

    def _awaiting_approval(self, record: dict) -> bool:
        if not record.get("approval"):
            return False
        try:
            return Job.fetch(record["approval"], connection=self.redis).get_status() == JobStatus.CREATED
        except NoSuchJobError:
            return False

    def _approve_plan(self, parent: str, record: dict) -> None:
        if not self.redis.zrem(keys.PLANS_AWAITING_APPROVAL, parent):  # the timeout ended it a moment ago
            raise TaskNotActive(f"Task {parent}'s plan waited too long for its code and was not approved.")
        # No worker waits on the code: take it back out of the confirmation keys.
        self.redis.delete(keys.task_confirmation(parent), keys.task_confirmation_wake(parent))
        event_log.append(self.redis, parent, "confirmation_received", "Plan approved: its subtasks start.",
                         RUNNING, {"rule": APPROVAL_RULE})
        gate = Job.fetch(record["approval"], connection=self.redis)
        Queue(gate.origin, connection=self.redis).enqueue_job(gate)  # the plan's priority (_plan_queue)

    def _close_approval(self, record: dict) -> None:
        try:
            gate = Job.fetch(record["approval"], connection=self.redis)
        except NoSuchJobError:
            return
        parent = (gate.get_meta(refresh=False) or {}).get("plan_of")
        if gate.get_status() == JobStatus.CREATED:
            try:
                gate.cancel()
            except InvalidJobOperation:
                pass
        if parent:
            self.redis.zrem(keys.PLANS_AWAITING_APPROVAL, parent)
            close_request(self.redis, parent)

    def refuse_plan(self, parent: str, reason: str) -> None:
        """End a plan that was not approved (a timeout, or the last wrong code): cancelled, with the reason."""
        record = self.plan_record(parent)
        if record is None:
            return
        record["not_approved"] = reason
        self.redis.set(keys.task_plan(parent), plans.dumps(record), ex=RESULT_TTL_SECONDS)
        self.redis.set(keys.task_cancel(parent), time.time(), ex=RESULT_TTL_SECONDS)
        self._cancel_plan(self._job(parent), CANCEL_GRACE_SECONDS, reason)

    def expire_approvals(self) -> list[str]:
        """End the plans whose approval request timed out (the reaper's leader calls this); their ids."""
        ended = []
        for raw in self.redis.zrangebyscore(keys.PLANS_AWAITING_APPROVAL, 0, time.time()):
            parent = raw.decode()
            if self.redis.zrem(keys.PLANS_AWAITING_APPROVAL, parent):  # a code at this moment wins or loses here
                self.refuse_plan(parent, f"The plan was not approved: no confirmation code came within "
                                         f"{self.settings.CONFIRMATION_TIMEOUT_SECONDS:g} seconds.")
                ended.append(parent)
        return ended

    def awaiting_code(self) -> list[str]:
        """The ids of the tasks waiting for a confirmation code now: running ones (RQ's started registries of every
        TARS queue) and plans waiting for approval."""
        ids = [job_id for queue in capabilities.tars_queues(self.redis)
               for job_id in StartedJobRegistry(queue=queue).get_job_ids(cleanup=False)]
        ids = list(dict.fromkeys(ids + [i.decode() for i in self.redis.zrange(keys.PLANS_AWAITING_APPROVAL, 0, -1)]))
        jobs = [job for job in Job.fetch_many(ids, connection=self.redis) if job is not None] if ids else []
        return [job.id for job in jobs if self._status_of(job).awaiting_confirmation]

    def _stop_horse(self, job: Job) -> None:
        """RQ 3 records the worker on each execution (job.worker_name may be empty): stop every one."""
        stopped = False
        for execution in job.get_executions():
            try:
                send_stop_execution_command(self.redis, job.id, execution.id)
                stopped = True
            except InvalidJobOperation:
                pass
        if not stopped:
            try:
                send_stop_job_command(self.redis, job.id)
            except InvalidJobOperation:
                pass

    def wait_until_ended(self, task_id: str, timeout: float) -> bool:
        """Block until the task's worker says it ended (a latch list, read without consuming it)."""
        deadline = time.monotonic() + timeout
        key = keys.task_finished(task_id)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # BLMOVE onto the same list rotates it: every waiter sees the element and it stays for the next.
            # Capped at 1 s: a work-horse killed by the stop command never pushes the latch, RQ's status says it.
            if self.redis.blmove(key, key, min(remaining, 1.0), "RIGHT", "LEFT") is not None:
                return True
            job_status = Job.fetch(task_id, connection=self.redis).get_status()
            if job_status in (JobStatus.CANCELED, JobStatus.STOPPED, JobStatus.FAILED, JobStatus.FINISHED):
                return True
