"""The worker pool as the owner sees it (`workers status`, /health, the dashboard): each worker's name, state, current
task, host, pid and capabilities, whether every worker is paused (core/pause.py), and the queue length.

A worker's state is `idle`, `busy` (running a task) or `paused`: every worker is paused, or the task it runs is
(that task then waits at its next step).
"""

from __future__ import annotations

from datetime import timezone

import redis
from rq import Queue, Worker
from rq.job import Job

from core import capabilities, keys, pause
from core.defaults import QUEUE_NAME
from core.task_states import PAUSED

IDLE, BUSY = "idle", "busy"
WORKER_STATES = (IDLE, BUSY, PAUSED)


def overview(connection: redis.Redis) -> dict:
    """{paused, paused_since, workers: [{name, state, current_task, host, pid, horse_pid, alive, capabilities,
    last_seen}], queue_length}: RQ's workers on the TARS queue with their TARS liveness, sorted by name."""
    found = sorted(Worker.all(queue=Queue(QUEUE_NAME, connection=connection)), key=lambda w: w.name)
    with connection.pipeline(transaction=False) as pipe:
        for worker in found:
            pipe.hgetall(keys.worker_alive(worker.name))
        alive = pipe.execute() if found else []
    paused_since = pause.workers_paused_since(connection)
    workers = []
    for worker, raw in zip(found, alive):
        live = {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}
        heartbeat = worker.last_heartbeat.replace(tzinfo=timezone.utc).timestamp() if worker.last_heartbeat else None
        workers.append({
            "name": worker.name, "state": IDLE,
            "current_task": worker.get_current_job_id() or live.get("task_id") or None,
            "host": live.get("host") or worker.hostname, "pid": as_int(live.get("pid")) or worker.pid,
            "horse_pid": as_int(live.get("horse_pid")) or None, "alive": bool(live),
            "capabilities": [c for c in live.get("capabilities", "").split(",") if c],
            "last_seen": as_float(live.get("seen")) or heartbeat})
    held = _paused_alone(connection, [w["current_task"] for w in workers if w["current_task"]])
    for item in workers:
        busy = item["current_task"] is not None
        item["state"] = PAUSED if paused_since is not None or item["current_task"] in held else BUSY if busy else IDLE
    return {"paused": paused_since is not None, "paused_since": paused_since, "workers": workers,
            "queue_length": sum(q.count for q in capabilities.tars_queues(connection))}


def _paused_alone(connection: redis.Redis, task_ids: list[str]) -> set[str]:
    """Those of the running tasks paused on their own (or with their plan)."""
    if not task_ids:
        return set()
    jobs = [job for job in Job.fetch_many(task_ids, connection=connection) if job is not None]
    with connection.pipeline(transaction=False) as pipe:
        for job in jobs:
            pipe.exists(*pause.task_pause_keys(job.id, (job.meta or {}).get("parent")))
        found = pipe.execute() if jobs else []
    return {job.id for job, count in zip(jobs, found) if count}


def as_int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def as_float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
