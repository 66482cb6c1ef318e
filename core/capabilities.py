"""Worker capabilities: a worker started with `--capabilities python,frontend` serves, beside the normal queue, one
queue per capability (core/defaults.capability_queue_name); a plan's subtask that names a capability goes to that
queue, and waits there until a worker serving it is live. Which capabilities are served now comes from the live
workers' hashes (core/keys.worker_alive, field "capabilities"), which expire when a worker dies.
"""

from __future__ import annotations

import re

import redis
from rq import Queue

from core import keys
from core.defaults import QUEUE_NAME, capability_queue_name
from core.exceptions import InvalidCapabilities

CAPABILITY_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


def normalize(name: str) -> str:
    """The one spelling of a capability: lowercase, "_" as "-" (the planner may write "Front_End")."""
    return name.strip().lower().replace("_", "-")


def parse(text: str) -> list[str]:
    """The capabilities of a `--capabilities` value ("python,frontend"), in order, each once."""
    names = [normalize(part) for part in text.split(",") if part.strip()]
    bad = [name for name in names if not CAPABILITY_PATTERN.fullmatch(name)]
    if bad or not names:
        raise InvalidCapabilities(
            f"--capabilities {text!r} is not a comma-separated list of capabilities: use short names of lowercase "
            f"letters, digits and -, such as --capabilities python,frontend"
            + (f" ({', '.join(repr(b) for b in bad)} is not one)." if bad else "."))
    return list(dict.fromkeys(names))


def queue_name(capability: str | None) -> str:
    """The queue a task needing `capability` goes to (the normal queue when it needs none)."""
    return capability_queue_name(normalize(capability)) if capability else QUEUE_NAME


def tars_queues(connection: redis.Redis) -> list[Queue]:
    """The normal queue and every capability queue a job was ever put on: what reads RQ's registries (the reaper,
    awaiting codes, the queue length) reads them all."""
    names = {QUEUE_NAME} | {q.name for q in Queue.all(connection=connection)
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
