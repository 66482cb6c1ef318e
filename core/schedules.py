"""When a scheduled task starts: `task start --at 02:00` / `--in 2h`, the API's `at` / `in`, the voice's start_at /
start_in, read into the aware datetime TaskManager.start(at=...) takes. RQ's own scheduler, which every worker runs,
puts the task on its queue at that time (core/task_manager.py, core/worker.py).

Local time is the machine's: HH:MM is the next such time here, and an ISO date-time without a zone is read as local.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta, timezone

from core.defaults import RESULT_TTL_SECONDS
from core.exceptions import InvalidSchedule

CLOCK = re.compile(r"(\d{1,2}):(\d{2})")
DELAY = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
UNIT_SECONDS = (86400, 3600, 60, 1)  # d, h, m, s: DELAY's groups in order
FURTHEST = timedelta(seconds=RESULT_TTL_SECONDS)  # a task's records expire after that: its queued event would too

AT_RULE = ("give HH:MM on the 24-hour clock (02:00: the next such local time) or an ISO date-time "
           "(2025-06-01T02:00, local unless it names its zone)")
IN_RULE = "give a number and a unit: 90s, 30m, 2h, 1h30m, 1d (d, h, m, s)"


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(timezone.utc).astimezone()


def parse_at(text: str, now: datetime | None = None) -> datetime:
    """`--at`: HH:MM (the next such local time, tomorrow once today's has passed) or an ISO date-time."""
    now, said = _now(now), str(text).strip()
    clock = CLOCK.fullmatch(said)
    try:
        if clock:
            day = now.astimezone().replace(tzinfo=None)  # local wall time: DST decides each date's offset below
            at = datetime.combine(day.date(), time(int(clock[1]), int(clock[2])))
            at = at if at > day else at + timedelta(days=1)
        else:
            at = datetime.fromisoformat(said)
    except ValueError:
        raise InvalidSchedule(f"The start time {said[:40]!r} is not a time: {AT_RULE}.") from None
    return checked(at if at.tzinfo else at.astimezone(), now, said)


def parse_in(text: str, now: datetime | None = None) -> datetime:
    """`--in`: a delay from now (90s, 30m, 2h, 1h30m), as the time it ends."""
    said = str(text).strip().lower().replace(" ", "")
    parts = DELAY.fullmatch(said)
    if not said or not parts:
        raise InvalidSchedule(f"The delay {str(text).strip()[:40]!r} is not a delay: {IN_RULE}.")
    seconds = sum(int(n) * unit for n, unit in zip(parts.groups(), UNIT_SECONDS) if n)
    if seconds <= 0:
        raise InvalidSchedule(f"A delay of {said} is no delay: leave it out to start the task now.")
    if seconds > FURTHEST.total_seconds():
        raise InvalidSchedule(f"The delay {said} is too long: a task can be scheduled at most "
                              f"{FURTHEST.days} days ahead.")
    now = _now(now)
    return checked(now + timedelta(seconds=seconds), now, said)


def checked(at: datetime, now: datetime | None = None, said: str | None = None) -> datetime:
    """A start time as TARS keeps it: aware, rounded up to the whole second (RQ's scheduler keeps whole seconds and
    truncates: 02:00:00.4 would start at 02:00:00), still to come and at most FURTHEST ahead; InvalidSchedule with
    the rule otherwise."""
    if at.tzinfo is None:
        raise InvalidSchedule("A start time must say its zone (an aware datetime).")
    now = _now(now)
    shown = f"{said} ({when_text(at, now)})" if said else when_text(at, now)
    if at <= now:
        raise InvalidSchedule(f"The start time {shown} is in the past: give a time still to come.")
    if at - now > FURTHEST:
        raise InvalidSchedule(f"The start time {shown} is too far ahead: a task can be scheduled at most "
                              f"{FURTHEST.days} days ahead.")
    whole = at.replace(microsecond=0)
    return whole if whole == at else whole + timedelta(seconds=1)


def when_text(at: datetime, now: datetime | None = None) -> str:
    """The start time as the owner reads and hears it, in local time: 'today at 14:30', 'tomorrow at 02:00',
    'on Sat 7 Jun at 09:00' ('on 7 Jun 2024 at 09:00' in another year)."""
    local, today = at.astimezone(), _now(now).astimezone().date()
    clock = local.strftime("%H:%M")
    if local.date() == today:
        return f"today at {clock}"
    if local.date() == today + timedelta(days=1):
        return f"tomorrow at {clock}"
    if local.year == today.year:
        return f"on {local.strftime('%a')} {local.day} {local.strftime('%b')} at {clock}"
    return f"on {local.day} {local.strftime('%b %Y')} at {clock}"


def clock_text(at: datetime) -> str:
    """The start time in `task list`'s status column: 'Sat 02:00' (never more than a week ahead)."""
    return at.astimezone().strftime("%a %H:%M")


def start_time(at: str | None, delay: str | None, now: datetime | None = None) -> datetime | None:
    """The start time a request gives as text (the API's `at` / `in`, the voice's start_at / start_in): at most one
    of them; None for now."""
    if at and delay:
        raise InvalidSchedule("Give a start time or a delay, not both.")
    if delay:
        return parse_in(delay, now)
    return parse_at(at, now) if at else None


# --- quiet hours: when TARS texts the owner instead of calling (QUIET_HOURS) ------------------------------------
QUIET_RULE = "give HH:MM-HH:MM on the 24-hour clock, local time (22:00-07:00), or leave it empty"


def _clock(text: str) -> time | None:
    match = CLOCK.fullmatch(text.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        return None
    return time(int(match[1]), int(match[2]))


def parse_quiet_hours(text: str | None) -> tuple[time, time] | None:
    """QUIET_HOURS as (start, end) local clock times; None when empty. A span may cross midnight (22:00-07:00)."""
    if not text or not text.strip():
        return None
    start, dash, end = text.strip().partition("-")
    span = (_clock(start), _clock(end)) if dash else (None, None)
    if span[0] is None or span[1] is None or span[0] == span[1]:
        raise InvalidSchedule(f"Quiet hours {text.strip()!r} cannot be read: {QUIET_RULE}.")
    return span  # type: ignore[return-value]


def in_quiet_hours(text: str | None, now: datetime | None = None) -> bool:
    """Whether local time `now` falls in QUIET_HOURS (its start included, its end not)."""
    span = parse_quiet_hours(text)
    if span is None:
        return False
    start, end = span
    clock = _now(now).astimezone().time().replace(second=0, microsecond=0)
    return start <= clock < end if start < end else clock >= start or clock < end
