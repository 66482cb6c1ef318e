"""Tasks started for later: `--at 02:00` is the next such local time, `--in 2h` a delay, and RQ's scheduler in the
workers queues the task at its time, never before. Real workers, the scripted model; the clock is the machine's."""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime, timedelta, timezone

import psutil
import pytest
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry

from core import event_log, schedules
from core.exceptions import InvalidSchedule
from tests.fakes.anthropic_api import text
from tests.waiting import wait_until


@pytest.fixture
def new_york(monkeypatch):
    """Local time is New York's (UTC-4 in June): "local" must not quietly mean UTC."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def local(*fields) -> datetime:
    return datetime(*fields).astimezone()


# --- reading a start time ----------------------------------------------------------------------------------------

def test_a_clock_time_is_the_next_such_local_time(new_york):
    now = local(2025, 6, 1, 14, 30, 15)
    assert schedules.parse_at("02:00", now) == local(2025, 6, 2, 2, 0)  # tonight at two: after midnight
    assert schedules.parse_at("16:45", now) == local(2025, 6, 1, 16, 45)  # later today
    assert schedules.parse_at("14:30", now) == local(2025, 6, 2, 14, 30)  # this minute has begun: tomorrow
    assert schedules.parse_at("9:05", now) == local(2025, 6, 2, 9, 5)
    assert schedules.parse_at("02:00", now).utcoffset() == timedelta(hours=-4)


def test_an_iso_date_time_is_local_unless_it_names_its_zone(new_york):
    now = local(2025, 6, 1, 14, 30)
    assert schedules.parse_at("2025-06-03T09:30", now) == local(2025, 6, 3, 9, 30)
    assert schedules.parse_at("2025-06-03 09:30", now) == local(2025, 6, 3, 9, 30)
    assert schedules.parse_at("2025-06-03T09:30:00Z", now) == datetime(2025, 6, 3, 9, 30, tzinfo=timezone.utc)
    assert schedules.parse_at("2025-06-03T09:30+02:00", now).hour == 9


def test_a_delay_is_counted_from_now_in_days_hours_minutes_and_seconds():
    now = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
    for said, seconds in (("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), (" 1h 30m ", 5400),
                          ("1d", 86400), ("2H", 7200), ("1d2h3m4s", 93784)):
        assert schedules.parse_in(said, now) == now + timedelta(seconds=seconds), said


def test_a_start_time_is_kept_to_the_whole_second_after_it():
    """RQ's scheduler keeps whole seconds and cuts the fraction: 12:00:03.2 would start at 12:00:03."""
    now = datetime(2025, 6, 1, 12, 0, 0, 200_000, tzinfo=timezone.utc)
    assert schedules.parse_in("3s", now) == datetime(2025, 6, 1, 12, 0, 4, tzinfo=timezone.utc)
    assert schedules.checked(datetime(2025, 6, 1, 12, 0, 5, tzinfo=timezone.utc), now) == \
        datetime(2025, 6, 1, 12, 0, 5, tzinfo=timezone.utc)


@pytest.mark.parametrize("parse, said, rule", [
    (schedules.parse_at, "25:00", "The start time '25:00' is not a time: give HH:MM on the 24-hour clock"),
    (schedules.parse_at, "tonight at two", "is not a time: give HH:MM"),
    (schedules.parse_at, "", "is not a time"),
    (schedules.parse_at, "2025-05-31T09:00", "The start time 2025-05-31T09:00 (on Sat 31 May at 09:00) is in the past: "
                                             "give a time still to come."),
    (schedules.parse_at, "2025-06-20T09:00", "is too far ahead: a task can be scheduled at most 7 days ahead."),
    (schedules.parse_in, "soon", "The delay 'soon' is not a delay: give a number and a unit: 90s, 30m, 2h, 1h30m"),
    (schedules.parse_in, "-5m", "is not a delay"),
    (schedules.parse_in, "0s", "A delay of 0s is no delay: leave it out to start the task now."),
    (schedules.parse_in, "8d", "The delay 8d is too long: a task can be scheduled at most 7 days ahead."),
])
def test_an_unreadable_past_or_far_start_is_refused_with_the_rule(parse, said, rule):
    with pytest.raises(InvalidSchedule) as refused:
        parse(said, datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc))
    assert rule in str(refused.value)


def test_a_request_gives_a_time_or_a_delay_not_both():
    now = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
    assert schedules.start_time(None, None, now) is None
    assert schedules.start_time(None, "2h", now) == now + timedelta(hours=2)
    with pytest.raises(InvalidSchedule, match="Give a start time or a delay, not both."):
        schedules.start_time("02:00", "2h", now)
    with pytest.raises(InvalidSchedule, match="aware datetime"):
        schedules.checked(datetime(2025, 6, 2, 2, 0), now)


def test_the_start_time_is_said_as_the_owner_thinks_of_it(new_york):
    now = local(2025, 6, 1, 14, 30)
    assert schedules.when_text(local(2025, 6, 1, 18, 0), now) == "today at 18:00"
    assert schedules.when_text(local(2025, 6, 2, 2, 0), now) == "tomorrow at 02:00"
    assert schedules.when_text(local(2025, 6, 7, 9, 0), now) == "on Sat 7 Jun at 09:00"
    assert schedules.when_text(local(2026, 1, 2, 9, 0), now) == "on 2 Jan 2026 at 09:00"
    assert schedules.clock_text(datetime(2025, 6, 7, 13, 0, tzinfo=timezone.utc)) == "Sat 09:00"


# --- with a real worker --------------------------------------------------------------------------------------------

def started_at(tasks, task_id) -> float:
    [started] = [e for e in event_log.read(tasks.redis, task_id) if e.type == "started"]
    return started.at


def ended(tasks, task_id, timeout=120):
    return wait_until(lambda: (s := tasks.status(task_id)).status in ("complete", "failed", "timeout", "cancelled")
                      and s, timeout, f"task {task_id} to end")


def test_a_scheduled_task_starts_at_its_time_and_not_before(cli, tasks, fake_api, start_worker):
    fake_api.script([text("Done at three.")], match="Run at three")
    worker = start_worker()  # idle: only its scheduler keeps the task back
    before = datetime.now(timezone.utc)
    run = cli("task", "start", "--goal", "Run at three", "--in", "3s", "--json")
    after = datetime.now(timezone.utc)
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    task_id, due = answer["task_id"], datetime.fromisoformat(answer["scheduled_for"])
    assert due.microsecond == 0 and before + timedelta(seconds=3) <= due <= after + timedelta(seconds=4)

    done = ended(tasks, task_id)
    assert done.status == "complete", (done.reason, worker.log[-3000:])
    assert started_at(tasks, task_id) >= due.timestamp()  # not before
    assert started_at(tasks, task_id) - due.timestamp() < 60  # at its time (wide: a loaded machine)
    assert Job.fetch(task_id, connection=tasks.redis).enqueued_at.replace(tzinfo=timezone.utc) >= due
    queued = event_log.read(tasks.redis, task_id)[0]
    assert queued.message.startswith("Scheduled to start today at ") or \
        queued.message.startswith("Scheduled to start tomorrow at ")  # just before midnight
    assert queued.data["scheduled_for"] == answer["scheduled_for"]
    assert done.scheduled_for == answer["scheduled_for"]  # what it was scheduled for stays in its status


def test_a_scheduled_task_cancelled_before_its_time_never_runs(tasks, fake_api, start_worker):
    fake_api.script([text("Should never run.")], match="Cancelled later job")
    fake_api.script([text("Done.")], match="The job after it")
    worker = start_worker()
    due = schedules.checked(datetime.now(timezone.utc) + timedelta(seconds=15))  # as TARS keeps it
    doomed = tasks.start("Cancelled later job", at=due)
    # Its own time and the scheduler passing it are told by the task due a second after it.
    after = tasks.start("The job after it", at=due + timedelta(seconds=1))
    assert tasks.cancel(doomed).status == "cancelled"  # `task cancel`, the API and the voice all call this
    assert datetime.now(timezone.utc) < due, "the cancel came after the task's time: the machine is too slow"

    assert ended(tasks, after).status == "complete", worker.log[-3000:]
    assert started_at(tasks, after) >= due.timestamp() + 1
    status = tasks.status(doomed)
    assert status.status == "cancelled" and status.started_at is None
    assert [e.type for e in event_log.read(tasks.redis, doomed)] == ["queued", "cancelled"]
    assert event_log.read(tasks.redis, doomed)[-1].message == "The task was cancelled before it started."
    assert not [r for r in fake_api.requests if "Cancelled later job" in json.dumps(r.body)]
    assert doomed not in ScheduledJobRegistry("tars_programming", connection=tasks.redis).get_job_ids()
    assert Job.fetch(doomed, connection=tasks.redis).get_status() == JobStatus.CANCELED


def scheduler_of(worker) -> psutil.Process | None:
    """The worker's scheduler process: a fork of the worker (its progress delivery process is `-m
    communication.delivery`, its work-horses come and go with tasks)."""
    me = psutil.Process(worker.process.pid)
    return next((child for child in me.children() if child.cmdline() == me.cmdline()), None)


def test_the_scheduler_ends_with_its_worker_and_the_next_worker_schedules(tasks, fake_api, start_worker):
    fake_api.script([text("Done.")])
    first = start_worker()
    scheduler = wait_until(lambda: scheduler_of(first), 60, "the worker's scheduler process")
    first.process.send_signal(signal.SIGKILL)  # the OOM killer: no warm shutdown stops the scheduler
    first.process.wait(30)
    gone, alive = psutil.wait_procs([scheduler], timeout=30)
    assert scheduler in gone, "the scheduler outlived its worker"

    task_id = tasks.start("Scheduled for the next worker", at=datetime.now(timezone.utc) + timedelta(seconds=2))
    second = start_worker()
    assert ended(tasks, task_id).status == "complete", second.log[-3000:]
    assert started_at(tasks, task_id) >= datetime.fromisoformat(tasks.status(task_id).scheduled_for).timestamp()


# --- quiet hours (QUIET_HOURS): TARS texts instead of calling -------------------------------------------------------
@pytest.mark.parametrize("span, clock, quiet", [
    ("22:00-07:00", "23:30", True), ("22:00-07:00", "03:00", True), ("22:00-07:00", "07:00", False),
    ("22:00-07:00", "21:59", False), ("22:00-07:00", "22:00", True), ("12:30-13:30", "13:00", True),
    ("12:30-13:30", "14:00", False), ("", "03:00", False),
])
def test_quiet_hours_may_cross_midnight(span, clock, quiet):
    hour, minute = map(int, clock.split(":"))
    now = datetime(2026, 12, 7, hour, minute).astimezone()
    assert schedules.in_quiet_hours(span, now) is quiet


@pytest.mark.parametrize("span", ["22-7", "22:00", "25:00-07:00", "22:00-07:60", "07:00-07:00", "night"])
def test_unreadable_quiet_hours_give_the_rule(span):
    with pytest.raises(InvalidSchedule, match="HH:MM-HH:MM"):
        schedules.parse_quiet_hours(span)
