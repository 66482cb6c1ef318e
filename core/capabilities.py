"""Worker capabilities: a worker started with `--capabilities python,frontend` serves, beside the normal queue, one
queue per capability (core/defaults.capability_queue_name); a plan's subtask that names a capability goes to that
queue, and waits there until a worker serving it is live. Which capabilities are served now comes from the live
workers' hashes (core/keys.worker_alive, field "capabilities"), which expire when a worker dies.

Priorities: each queue comes in three, one per priority (PRIORITIES): the normal one keeps its name
(tars_programming, tars_programming:<capability>), the others add ":high" or ":low". A worker listens on every
priority in order, its capabilities' queues first within each (worker_queue_names), and RQ takes from the first
queue that has a job, so a high task waiting anywhere it serves starts before any normal one. This module is the one
place that names queues: tars_queues() lists every one.
"""

from __future__ import annotations

import re

import redis
from rq import Queue

from core import keys
from core.defaults import QUEUE_NAME, capability_queue_name
from core.exceptions import InvalidCapabilities, InvalidPriority
from core.task_states import NORMAL, PRIORITIES

CAPABILITY_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")

RESERVED = frozenset(PRIORITIES) - {NORMAL}
"""Capability names that would be a priority queue's name (tars_programming:high): refused by parse()."""


def normalize(name: str) -> str:
    """The one spelling of a capability: lowercase, "_" as "-" (the planner may write "Front_End")."""
    return name.strip().lower().replace("_", "-")


def parse(text: str) -> list[str]:
    """The capabilities of a `--capabilities` value ("python,frontend"), in order, each once."""
    names = [normalize(part) for part in text.split(",") if part.strip()]
    bad = [name for name in names if not CAPABILITY_PATTERN.fullmatch(name)]
    reserved = [name for name in names if name in RESERVED]
    if reserved:
        raise InvalidCapabilities(f"--capabilities cannot name {' or '.join(reserved)}: "
                                  f"{', '.join(sorted(RESERVED))} are task priorities, whose queues "
                                  f"({', '.join(queue_name(None, p) for p in sorted(RESERVED))}) every worker "
                                  f"serves already; name the capability otherwise.")
    if bad or not names:
        raise InvalidCapabilities(
            f"--capabilities {text!r} is not a comma-separated list of capabilities: use short names of lowercase "
            f"letters, digits and -, such as --capabilities python,frontend"
            + (f" ({', '.join(repr(b) for b in bad)} is not one)." if bad else "."))
    return list(dict.fromkeys(names))


def parse_priority(value: object) -> str:
    """A task's priority as given (any case, None for normal); InvalidPriority, naming the choices, otherwise."""
    if value is None:
        return NORMAL
    name = str(value).strip().lower() if isinstance(value, str) else ""
    if name not in PRIORITIES:
        raise InvalidPriority(f"The priority {str(value)[:40]!r} is not one of {', '.join(PRIORITIES)}.")
    return name


def queue_name(capability: str | None, priority: str = NORMAL) -> str:
    """The queue a task needing `capability` goes to (the normal queue's family when it needs none), at `priority`."""
    name = capability_queue_name(normalize(capability)) if capability else QUEUE_NAME
    return name if priority == NORMAL else f"{name}:{priority}"


def worker_queue_names(served: list[str]) -> list[str]:
    """The queues of a worker serving the capabilities `served`, in the order it takes their tasks: by priority,
    and within one its own capabilities' queues first (a plain worker can take the normal queue's tasks, only
    this one theirs)."""
    return [queue_name(capability, level) for level in PRIORITIES for capability in [*served, None]]


def tars_queues(connection: redis.Redis) -> list[Queue]:
    """Every queue a plain worker serves and every other TARS queue a job was ever put on (capabilities, their
    priorities): what reads RQ's registries (the reaper, awaiting codes, the queue length) reads them all."""
    names = set(worker_queue_names([])) | {q.name for q in Queue.all(connection=connection)
                                            if q.name.startswith(capability_queue_name(""))}
    return [Queue(name, connection=connection) for name in sorted(names)]


def served(connection: redis.Redis) -> set[str]:
    """The capabilities some live worker serves now (from the live workers' hashes)."""
    found: set[str] = set()
    for key in connection.scan_iter(match=keys.worker_alive("*"), count=100):
        value = connection.hget(key, "capabilities")
        if value:
            found.update(value.decode().split(","))
    return found


def waiting_note(connection: redis.Redis, capability: str | None) -> str | None:
    """"waiting for a worker with frontend" while no live worker serves the queued task's capability, else None."""
    if capability and capability not in served(connection):
        return f"waiting for a worker with {capability}"
    return None
