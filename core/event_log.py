"""A task's timeline: every progress event, appended to a Redis Stream (task:<id>:events) as it happens.

The worker appends (TaskContext.event, every event whatever the verbosity); `task log`, the dashboard, the voice
process, progress delivery to n8n / Discord (communication/delivery.py) and redis-cli read it back. A finished task replays the same timeline; a live one is
followed with XREAD BLOCK from the last id seen. The stream is capped at EVENT_LOG_MAX_EVENTS and expires with the
task's other data (RESULT_TTL_SECONDS after its last event).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import redis

from core import keys
from core.defaults import EVENT_LOG_MAX_EVENTS, RESULT_TTL_SECONDS
from core.task_states import ENDING_KINDS

@dataclass(frozen=True)
class Event:
    id: str            # the stream id ("<ms>-<seq>"): resume after it
    type: str          # started, planning, file_edit, command, checkpoint, phase, confirmation_required, complete...
    message: str       # the sentence the owner reads
    phase: str         # the task's phase once this event happened
    at: float          # Unix time
    data: dict = field(default_factory=dict)  # extra fields (command, path, result for an ending...)

    @property
    def ends(self) -> bool:
        return self.type in ENDING_KINDS

    def to_dict(self) -> dict:
        return asdict(self)


def append(connection: redis.Redis | redis.client.Pipeline, task_id: str, kind: str, message: str, phase: str,
           data: dict | None = None, at: float | None = None) -> None:
    """Add one event (on a pipeline too: it is executed with the caller's other commands), and wake its live
    readers."""
    key = keys.task_events(task_id)
    fields = {"type": kind, "message": message, "phase": phase or "", "at": repr(at if at is not None else time.time()),
              "data": json.dumps(data or {}, default=str, separators=(",", ":"))}
    # A Pipeline is a redis.Redis too: asking which one it is the other way round would run a pipeline's append at once
    pipe = connection if isinstance(connection, redis.client.Pipeline) else connection.pipeline(transaction=False)
    pipe.xadd(key, fields, maxlen=EVENT_LOG_MAX_EVENTS, approximate=True)
    pipe.expire(key, RESULT_TTL_SECONDS)
    pipe.sadd(keys.UNDELIVERED_TASKS, task_id)  # progress delivery (communication/delivery.py) reads it from here
    # Only a wake-up: the stream is the record (the voice process reads the event there, and a reader that missed
    # the wake-up still finds it).
    pipe.publish(keys.TASK_EVENTS_CHANNEL, json.dumps({"task_id": task_id, "type": kind}))
    if pipe is not connection:
        pipe.execute()


def _event(entry_id, fields: dict) -> Event:
    text = {(k.decode() if isinstance(k, bytes) else k): (v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
            for k, v in fields.items()}
    try:
        data = json.loads(text.get("data") or "{}")
    except ValueError:
        data = {}
    try:
        at = float(text.get("at") or 0)
    except ValueError:
        at = 0.0
    return Event(id=entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id), type=text.get("type", ""),
                 message=text.get("message", ""), phase=text.get("phase", ""), at=at,
                 data=data if isinstance(data, dict) else {"value": data})


def read(connection: redis.Redis, task_id: str, after: str | None = None, count: int | None = None) -> list[Event]:
    """The events after id `after` (all of them by default), oldest first."""
    start = f"({after}" if after else "-"
    return [_event(i, f) for i, f in connection.xrange(keys.task_events(task_id), start, "+", count=count)]


def last(connection: redis.Redis, task_id: str) -> Event | None:
    """The task's latest event (None when it has none, or they expired)."""
    entries = connection.xrevrange(keys.task_events(task_id), "+", "-", count=1)
    return _event(*entries[0]) if entries else None


def wait(connection: redis.Redis, task_id: str, after: str | None, timeout: float) -> list[Event]:
    """The events after `after`, waiting up to timeout seconds for the first one to arrive ([] if none did)."""
    answer = connection.xread({keys.task_events(task_id): after or "0-0"}, block=max(1, int(timeout * 1000)))
    return [_event(i, f) for _, entries in answer or [] for i, f in entries]
