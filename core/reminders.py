"""The owner's reminders: "remind me at five to check the deploy" becomes a call (or a text) at that time.

Stored in Redis (keys.REMINDERS, keys.reminder): set by the voice function, listed and cancelled by voice or the
CLI, and taken when due by the server (communication/owner_phone.py), which calls or texts. `take_due` hands each
reminder to exactly one taker (ZREM decides), so several servers never call twice. Times are read like a task's
start time (core/schedules.py: HH:MM, an ISO date-time or a delay such as 2h).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import redis

from core import keys
from core.exceptions import InvalidReminder

CALL, TEXT = "call", "text"
"""How a reminder reaches the owner: a phone call (a text when it is missed or in QUIET_HOURS), or a text."""

REMINDER_MAX_CHARS = 300
"""Longest reminder text: it is spoken in one breath and fits in two SMS segments."""

KEPT_AFTER_DUE_SECONDS = 86400
"""A reminder's record outlives its time by a day, so a server that was down then still finds it at its start."""


@dataclass(frozen=True)
class Reminder:
    reminder_id: str
    text: str
    due: datetime  # aware
    by: str  # CALL or TEXT
    call_sid: str = ""  # the call that set it
    created_at: float = 0.0

    def to_dict(self) -> dict:
        return {"id": self.reminder_id, "text": self.text, "due": self.due.isoformat(), "by": self.by,
                "call_sid": self.call_sid, "created_at": self.created_at}


def add(connection: redis.Redis, text: str, due: datetime, by: str = CALL, call_sid: str | None = None) -> Reminder:
    """Keep a reminder for `due` (an aware datetime, checked by core/schedules.checked before)."""
    text = " ".join(str(text or "").split())
    if not text:
        raise InvalidReminder("A reminder needs something to remind you of.")
    if len(text) > REMINDER_MAX_CHARS:
        raise InvalidReminder(f"That reminder is {len(text)} characters long; keep it to {REMINDER_MAX_CHARS}.")
    if by not in (CALL, TEXT):
        raise InvalidReminder(f"A reminder comes by {CALL} or {TEXT}, not {by!r}.")
    reminder = Reminder(secrets.token_hex(3), text, due.astimezone(timezone.utc), by, call_sid or "", time.time())
    key = keys.reminder(reminder.reminder_id)
    with connection.pipeline() as pipe:
        pipe.hset(key, mapping={"text": reminder.text, "due": reminder.due.isoformat(), "by": by,
                                "call_sid": reminder.call_sid, "created_at": reminder.created_at})
        pipe.expireat(key, int(reminder.due.timestamp()) + KEPT_AFTER_DUE_SECONDS)
        pipe.zadd(keys.REMINDERS, {reminder.reminder_id: reminder.due.timestamp()})
        pipe.execute()
    return reminder


def _read(connection: redis.Redis, reminder_id: str) -> Reminder | None:
    raw = {k.decode(): v.decode() for k, v in connection.hgetall(keys.reminder(reminder_id)).items()}
    if not raw:
        return None
    return Reminder(reminder_id, raw.get("text", ""), datetime.fromisoformat(raw["due"]), raw.get("by", CALL),
                    raw.get("call_sid", ""), float(raw.get("created_at") or 0))


def pending(connection: redis.Redis) -> list[Reminder]:
    """Every reminder not yet taken, soonest first (one whose record expired is dropped on the way)."""
    found = []
    for raw_id in connection.zrange(keys.REMINDERS, 0, -1):
        reminder = _read(connection, raw_id.decode())
        if reminder is None:
            connection.zrem(keys.REMINDERS, raw_id)
        else:
            found.append(reminder)
    return found


def cancel(connection: redis.Redis, reminder_id: str) -> Reminder:
    """Drop a pending reminder; InvalidReminder when there is none by that id."""
    reminder = _read(connection, reminder_id)
    if reminder is None or not connection.zrem(keys.REMINDERS, reminder_id):
        raise InvalidReminder(f"There is no pending reminder {reminder_id}.")
    connection.delete(keys.reminder(reminder_id))
    return reminder


def take_due(connection: redis.Redis, now: float | None = None) -> list[Reminder]:
    """The reminders due by `now`, each removed for good: whoever removes one is the one who delivers it."""
    now = time.time() if now is None else now
    taken = []
    for raw_id in connection.zrangebyscore(keys.REMINDERS, "-inf", now):
        if not connection.zrem(keys.REMINDERS, raw_id):
            continue  # another server took it
        reminder = _read(connection, raw_id.decode())
        connection.delete(keys.reminder(raw_id.decode()))
        if reminder is not None:
            taken.append(reminder)
    return taken


def next_due(connection: redis.Redis) -> float | None:
    """When the soonest reminder is due (Unix seconds), or None."""
    soonest = connection.zrange(keys.REMINDERS, 0, 0, withscores=True)
    return soonest[0][1] if soonest else None
