"""Pause and resume: the owner holds every worker (`workers pause`) or one task (`task pause ID`), and lets go.

The paused state lives in Redis (core/keys.py: WORKERS_PAUSED, task_pause), so it survives restarts of TARS and of
the workers. While the workers are paused no worker takes a new task (core/worker.py; a job it was already waiting
for goes back to the front of its queue, so none is lost), and a running task stops at its next step boundary
(core/agent.py: before a model call or a command) and waits there, its runtime clock stopped, until resumed
(core/background_worker.WorkerHooks.hold). A task paused on its own waits the same way; a planned task's pause holds
its subtasks. A cancel still ends a paused task at once.

Waiting never busy-loops: a pause or resume publishes on PAUSE_CHANNEL, which wakes every waiter at once, and each
also looks at the keys every PAUSE_CHECK_SECONDS (a publish can be lost).
"""

from __future__ import annotations

import time
from typing import Callable

import redis

from core import keys
from core.defaults import PAUSE_CHECK_SECONDS, RESULT_TTL_SECONDS
from core.redis_conn import private_client

RESUME_WORKERS = "python main_tars.py workers resume"


def pause_workers(connection: redis.Redis) -> bool:
    """Pause every worker; False when they were paused already (the first pause's time stays)."""
    first = bool(connection.set(keys.WORKERS_PAUSED, time.time(), nx=True))
    connection.publish(keys.PAUSE_CHANNEL, "pause")
    return first


def resume_workers(connection: redis.Redis) -> bool:
    """Let every worker go on; False when they were not paused."""
    resumed = bool(connection.delete(keys.WORKERS_PAUSED))
    connection.publish(keys.PAUSE_CHANNEL, "resume")
    return resumed


def workers_paused_since(connection: redis.Redis) -> float | None:
    """When the owner paused every worker (a Unix time), or None while they work."""
    value = connection.get(keys.WORKERS_PAUSED)
    try:
        return float(value) if value is not None else None
    except ValueError:  # set by hand (redis-cli SET tars:workers:paused 1): paused all the same
        return 0.0


def workers_paused(connection: redis.Redis) -> bool:
    return bool(connection.exists(keys.WORKERS_PAUSED))


def pause_task(connection: redis.Redis, task_id: str) -> bool:
    """Pause one task on its own; False when it was paused already."""
    first = bool(connection.set(keys.task_pause(task_id), time.time(), nx=True, ex=RESULT_TTL_SECONDS))
    connection.publish(keys.PAUSE_CHANNEL, "pause")
    return first


def resume_task(connection: redis.Redis, task_id: str) -> bool:
    """Let a task paused on its own go on; False when it was not."""
    resumed = bool(connection.delete(keys.task_pause(task_id)))
    connection.publish(keys.PAUSE_CHANNEL, "resume")
    return resumed


def task_pause_keys(task_id: str, parent: str | None) -> list[str]:
    """The keys that pause a task on its own: its own, and its plan's when it is a subtask."""
    return [keys.task_pause(task_id)] + ([keys.task_pause(parent)] if parent else [])


def holds(connection: redis.Redis, task_id: str, parent: str | None = None) -> bool:
    """Must a started task wait at its step boundary now: every worker paused, or this task, or its plan?"""
    return connection.exists(keys.WORKERS_PAUSED, *task_pause_keys(task_id, parent)) > 0


def wait(connection: redis.Redis, paused: Callable[[redis.Redis], bool], stop: Callable[[], bool],
         channels: tuple[str, ...] = ()) -> float:
    """Block while paused(client) says so, or until stop() says to give up (a cancel, a stop request); the seconds
    waited. A message on PAUSE_CHANNEL (or on `channels`: the task's cancel) wakes it at once; otherwise it looks again
    every PAUSE_CHECK_SECONDS. While Redis is away it counts as still paused: losing sight of the owner's pause does
    not lift it."""
    started = time.monotonic()
    client = private_client(connection)  # a pub/sub of its own: on the shared pool it is the work-horse hang hazard
    pubsub = None
    try:
        while True:
            try:
                if stop():
                    break
                if pubsub is None:
                    pubsub = client.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(keys.PAUSE_CHANNEL, *channels)  # before the look: a resume in between wakes it
                if not paused(client):
                    break
                pubsub.get_message(timeout=PAUSE_CHECK_SECONDS)
            except (redis.ConnectionError, redis.TimeoutError):
                _close(pubsub)
                pubsub = None
                time.sleep(PAUSE_CHECK_SECONDS)
        return time.monotonic() - started
    finally:
        _close(pubsub)
        client.close()


def _close(pubsub) -> None:
    if pubsub is not None:
        try:
            pubsub.close()
        except Exception:  # a connection to a Redis that went away
            pass


# --- what the owner reads (task status, the dashboard, the timeline) --------------------------------------------
BY_WORKERS, BY_TASK, BY_PLAN = "workers", "task", "plan"
"""What pauses a task (TaskStatus.paused_by): every worker, the task on its own, or its plan (a subtask)."""
WHY = {BY_WORKERS: "every worker is paused", BY_TASK: "it is paused on its own", BY_PLAN: "its plan is paused"}

QUEUED_NOTE = f"Waiting: the workers are paused (resume them with: {RESUME_WORKERS})"
"""A queued task's progress while every worker is paused."""


def switched(paused: bool, changed: bool) -> str:
    """What pausing (paused=True) or resuming every worker did, in a sentence: the CLI's, the API's, the dashboard's."""
    if paused:
        return (f"Workers paused: no new task starts, and running tasks wait at their next step. Resume with: "
                f"{RESUME_WORKERS}") if changed else "The workers were already paused."
    return "Workers resumed: queued tasks start and paused ones go on." if changed else "The workers were not paused."


def resume_hint(task_id: str, by: str, parent: str | None = None) -> str:
    """The command that lets a task paused `by` go on."""
    if by == BY_WORKERS:
        return RESUME_WORKERS
    return f"python main_tars.py task resume {parent if by == BY_PLAN and parent else task_id}"


def progress(task_id: str, held: bool, by: str, parent: str | None, was: str) -> str:
    """A paused task's progress: still finishing the step it was in (`was`), or held, and how to resume it."""
    if not held:
        return f"Pausing after its current step ({WHY[by]})" + (f": {was}" if was else "")
    return f"Paused before its next step ({WHY[by]}); resume with: {resume_hint(task_id, by, parent)}"
