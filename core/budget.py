"""The daily budget: what every task spends on the owner's day, and new tasks held once it is spent.

- Spend: after each model answer the worker adds what the answer cost (estimate_cost) to the day's counter
  (keys.spend). The day is the owner's local calendar day: the time zone of the machine (TZ).
- The budget: DAILY_BUDGET_USD, unless the owner overrode it at runtime (keys.DAILY_BUDGET, set by
  `python main_tars.py budget set 20` or POST /api/budget; `budget clear` goes back to the setting).
- Held: once the day's spend reaches it, TaskManager.start queues a new task deferred on a gate job (RQ's
  depends_on, as a plan waiting for approval does), and RQ's scheduler (core/worker.TarsScheduler) does the same
  with a task started for later whose time came (hold_due): it holds no worker, its status is queued with the reason as
  its progress, and its timeline gets a `held` event, which Discord hears; the voice and the API say so when it
  is started, the dashboard shows a banner.
- Released: once the budget allows again (the next day, or a raised budget) the gate job is enqueued; a worker
  runs it (it tells each held task) and RQ then queues every task that waited on it, each on its own queue. The
  reaper's leader looks every REAPER_INTERVAL_SECONDS; `budget set` releases at once.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import datetime

import redis
from rq import Queue, get_current_job
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry

from core import event_log, keys
from core.config import Settings
from core.defaults import QUEUE_NAME, RESULT_TTL_SECONDS, SPEND_KEPT_SECONDS
from core.exceptions import InvalidBudget
from core.task_states import QUEUED, usd

log = logging.getLogger("tars.budget")

GATE_FUNCTION = "core.budget.open_gate"
NO_BUDGET = "none"  # the override's value for "no daily budget at all"
AMOUNT = re.compile(r"\$?\s*(\d+(?:\.\d+)?)\s*(?:usd|\$|dollars?)?", re.IGNORECASE)


def today(at: float | None = None) -> str:
    """The owner's local calendar day (YYYY-MM-DD) at Unix time `at` (now)."""
    return datetime.fromtimestamp(at if at is not None else time.time()).date().isoformat()


def add_spend(connection: redis.Redis, amount: float, at: float | None = None) -> None:
    """Count `amount` dollars spent now (or at `at`) against that day's budget."""
    if amount <= 0:
        return
    key = keys.spend(today(at))
    with connection.pipeline() as pipe:
        pipe.incrbyfloat(key, amount).expire(key, SPEND_KEPT_SECONDS).execute()


def spent(connection: redis.Redis, day: str | None = None) -> float:
    """Dollars spent on `day` (today) by every task."""
    return float(connection.get(keys.spend(day or today())) or 0.0)


def parse_amount(text: object) -> float | None:
    """A budget as the owner types it: '20', '$20', '7.5 dollars'; 'none' / 'off': no daily budget (None)."""
    said = str(text if text is not None else "").strip()
    if said.lower() in (NO_BUDGET, "off", "unlimited"):
        return None
    match = AMOUNT.fullmatch(said)
    if not match:
        raise InvalidBudget(f"{said[:40]!r} is not a daily budget: give dollars such as 20 or 7.50, or none for no "
                            "daily budget.")
    return float(match.group(1))


def set_daily(connection: redis.Redis, amount: float | None) -> None:
    """Override DAILY_BUDGET_USD at runtime (None: no daily budget) until `clear_daily`."""
    if amount is not None and (amount < 0 or amount != amount or amount == float("inf")):
        raise InvalidBudget(f"{amount} is not a daily budget: give a number of dollars, 0 or more.")
    connection.set(keys.DAILY_BUDGET, NO_BUDGET if amount is None else repr(float(amount)))


def clear_daily(connection: redis.Redis) -> None:
    """Drop the runtime override: DAILY_BUDGET_USD counts again."""
    connection.delete(keys.DAILY_BUDGET)


def change(connection: redis.Redis, settings: Settings, amount: float | None, clear: bool = False) -> tuple[Budget, int]:
    """The owner changes the budget now (`budget set` / `budget clear`, the API): set_daily(amount), or clear_daily;
    the held tasks start if it allows them. The budget as it stands then, and how many held tasks started."""
    if clear:
        clear_daily(connection)
    else:
        set_daily(connection, amount)
    released = release(connection, settings)
    return current(connection, settings), released


@dataclass(frozen=True)
class Budget:
    """Where the day's budget stands."""

    daily_usd: float | None  # None: no daily budget
    source: str  # "setting" (DAILY_BUDGET_USD) or "override" (budget set)
    spent_usd: float  # today's spend so far
    held: int  # tasks waiting for it

    @property
    def exhausted(self) -> bool:
        return self.daily_usd is not None and self.spent_usd >= self.daily_usd

    def held_sentence(self) -> str:
        """Why a new task waits: "today's budget of $5.00 is spent; it starts tomorrow or when you raise ..."."""
        return (f"today's budget of {usd(self.daily_usd or 0)} is spent; it starts tomorrow or when you raise "
                "DAILY_BUDGET_USD")

    def sentence(self) -> str:
        """The budget in one sentence, for the CLI, the API and the dashboard's banner."""
        if self.daily_usd is None:
            return f"No daily budget; {usd(self.spent_usd)} spent today."
        where = " (set with budget set)" if self.source == "override" else " (DAILY_BUDGET_USD)"
        if not self.exhausted:
            return f"Today's budget: {usd(self.spent_usd)} of {usd(self.daily_usd)} spent{where}."
        waiting = f" {self.held} task{'s wait' if self.held != 1 else ' waits'} for it." if self.held else ""
        return (f"Today's budget of {usd(self.daily_usd)}{where} is spent ({usd(self.spent_usd)}): new tasks are "
                f"held until tomorrow or until you raise it (python main_tars.py budget set AMOUNT).{waiting}")

    def to_dict(self) -> dict:
        return {**asdict(self), "exhausted": self.exhausted, "sentence": self.sentence()}


def current(connection: redis.Redis, settings: Settings) -> Budget:
    """Today's budget, spend and held tasks."""
    with connection.pipeline(transaction=False) as pipe:
        override, spend, gate = pipe.get(keys.DAILY_BUDGET).get(keys.spend(today())).get(keys.BUDGET_GATE).execute()
    if override is None:
        daily, source = settings.DAILY_BUDGET_USD, "setting"
    else:
        daily, source = (None if override.decode() == NO_BUDGET else float(override)), "override"
    return Budget(daily_usd=daily, source=source, spent_usd=round(float(spend or 0.0), 6),
                  held=_waiting(connection, gate.decode()) if gate else 0)


def _waiting(connection: redis.Redis, gate: str) -> int:
    """The tasks still deferred on the gate (a cancelled one stays in RQ's set of its dependents)."""
    ids = [raw.decode() for raw in connection.smembers(Job.dependents_key_for(gate))]
    with connection.pipeline(transaction=False) as pipe:
        for task_id in ids:
            pipe.hget(Job.key_for(task_id), "status")
        statuses = pipe.execute() if ids else []
    return sum(1 for status in statuses if status == JobStatus.DEFERRED.value.encode())


def hold(connection: redis.Redis, settings: Settings, meta: dict) -> list[str] | None:
    """TaskManager.start's check: when today's budget is spent, the gate a new task waits on (its depends_on), with
    its meta saying so; None when it may start."""
    budget = current(connection, settings)
    if not budget.exhausted:
        return None
    meta.update(progress=f"Held: {budget.held_sentence()}.", held=True)
    return [_gate(connection)]


def hold_due(connection: redis.Redis, settings: Settings, registries: list[ScheduledJobRegistry]) -> list[str]:
    """The scheduler's check before it queues what is due: a task started for later whose time came while today's
    budget is spent waits on the gate as a task started now would (a retry waiting for its attempt is no new task:
    it goes on). The ids it held."""
    now = int(time.time())
    due = [(registry, ids) for registry in registries if (ids := registry.get_jobs_to_schedule(now))]
    if not due or not current(connection, settings).exhausted:
        return []
    held = []
    for registry, ids in due:
        for job in Job.fetch_many(ids, connection=connection):
            meta = job.meta if job is not None else {}
            if not meta.get("scheduled_for") or meta.get("retry_at") or meta.get("held") or "goal" not in meta:
                continue
            gate = hold(connection, settings, job.meta)  # as TaskManager.start holds a new task
            if gate is None:
                continue
            job._dependency_ids = gate
            with connection.pipeline() as pipe:
                registry.remove(job.id, pipeline=pipe)
                job.set_status(JobStatus.DEFERRED, pipeline=pipe)
                job.register_dependency(pipeline=pipe)
                job.save(pipeline=pipe)
                pipe.execute()
            tell_held(connection, settings, job.id)
            held.append(job.id)
    if held:
        log.info("the daily budget is spent: %d scheduled task(s) held at their time: %s", len(held), ", ".join(held))
    return held


def tell_held(connection: redis.Redis, settings: Settings, task_id: str) -> None:
    """The held task's timeline says so (Discord hears it as any milestone)."""
    budget = current(connection, settings)
    event_log.append(connection, task_id, "held", f"Held: {budget.held_sentence()} (python main_tars.py budget set "
                     f"AMOUNT); {usd(budget.spent_usd)} spent today.", QUEUED,
                     {"daily_usd": budget.daily_usd, "spent_usd": budget.spent_usd})


def _gate(connection: redis.Redis) -> str:
    """The id of the job the held tasks wait on now, made when there is none (created, never enqueued until
    release)."""
    gate = connection.get(keys.BUDGET_GATE)
    if gate:
        return gate.decode()
    job = Queue(QUEUE_NAME, connection=connection).create_job(
        GATE_FUNCTION, job_id=f"budget-{secrets.token_hex(4)}", status=JobStatus.CREATED, timeout=60,
        result_ttl=RESULT_TTL_SECONDS, failure_ttl=RESULT_TTL_SECONDS,
        description="TARS: the tasks the daily budget holds")
    job.save()
    if connection.set(keys.BUDGET_GATE, job.id, nx=True):
        return job.id
    job.delete()  # another start made one at the same moment: wait on that one
    return connection.get(keys.BUDGET_GATE).decode()


def release(connection: redis.Redis, settings: Settings) -> int:
    """Let the held tasks start when the budget allows again (a new day, a raised budget); how many waited."""
    if not connection.exists(keys.BUDGET_GATE) or current(connection, settings).exhausted:
        return 0
    gate = connection.getdel(keys.BUDGET_GATE)
    if gate is None:  # another process released them just now
        return 0
    try:
        job = Job.fetch(gate.decode(), connection=connection)
    except Exception:  # its record is gone: nothing waits on it any more
        return 0
    waiting = _waiting(connection, job.id)
    Queue(QUEUE_NAME, connection=connection).enqueue_job(job)
    log.info("the daily budget allows tasks again: %d held task(s) released", waiting)
    return waiting


def open_gate() -> dict:
    """RQ job body of the budget's gate: tells each task that waited on it that it is queued now; RQ then queues
    them (each on the queue it was given)."""
    job = get_current_job()
    released = [raw.decode() for raw in job.connection.smembers(job.dependents_key)]
    for task_id in released:
        try:
            held = Job.fetch(task_id, connection=job.connection)
        except Exception:  # cancelled and expired meanwhile
            continue
        if held.get_status() == JobStatus.CANCELED:  # RQ does not queue it either
            continue
        held.meta.update(progress="Waiting for a worker", held=False)
        held.save_meta()
        event_log.append(job.connection, task_id, QUEUED, "Queued: the daily budget allows it now.", QUEUED)
    return {"released": released}
