"""Automatic retries: a task ended by something transient runs again by itself, continuing where it was.

Transient (core/exceptions.Interrupted, AgentResult.transient): the model API unavailable after the SDK's own
retries (core/model.is_unavailable: a timeout, no connection, 429, 5xx, 529), the task's worker died (the reaper, or
the work-horse that saw it die), Redis lost the task's record. Never a cancel, a limit (runtime, iterations, cost), a
refused command or a wrong code, the model failing to finish, a work-horse killed while its worker lives (the OOM
killer: it would likely kill the next attempt too) or a worker stopped on purpose (a second SIGTERM).

A retry is the same task: RQ runs the same job again (job.number_of_retries counts the retries), so the task keeps its
id, its timeline and its branch. The next attempt finds its checkout (git_workspace.find, on the machine that
prepared it) and continues there, files as the last attempt left them; the model's first message says what the
attempts before did (their checkpoints, the files changed) and why they ended (note_for_model). Usage and cost add up
over the attempts; each attempt has the task's runtime and iteration limits anew.

The wait doubles from TASK_RETRY_BACKOFF_SECONDS with each attempt (delay_before), up to MAX_TASK_RETRIES retries.
The job waits in RQ's ScheduledJobRegistry and a worker's RQ scheduler (start_worker runs it) queues it when due:
the work-horse returns RQ's Retry (background_worker.run_task), and the reaper, whose task has no horse left,
reschedules the job itself (schedule_in_rq). A cancel before it is due ends it (TaskManager.cancel).
`task retry ID` by hand is another thing: a new task with the same goal (TaskManager.retry).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from rq import Queue
from rq.job import Job

from core import git_workspace, keys
from core.config import Settings
from core.defaults import RETRY_BACKOFF_MAX_SECONDS
from core.exceptions import GitError

RETRY_BY_HAND = "Retry it with: python main_tars.py task retry {task_id}"


def attempt_of(job: Job) -> int:
    """The attempt a task's job is on: 1, then 2 after the first automatic retry..."""
    return (job.number_of_retries or 0) + 1


def attempts_text(attempt: int, settings: Settings) -> str:
    """'attempt 2 of 3'."""
    return f"attempt {attempt} of {settings.MAX_TASK_RETRIES + 1}"


def delay_before(settings: Settings, attempt: int) -> int:
    """Seconds to wait before the attempt after `attempt`: TASK_RETRY_BACKOFF_SECONDS, doubling with each attempt."""
    return int(min(RETRY_BACKOFF_MAX_SECONDS, settings.TASK_RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1)))


def next_delay(job: Job, settings: Settings, transient: bool) -> int | None:
    """The wait before retrying the task whose attempt just ended, or None when it ends for good: not transient,
    cancelled, or its automatic retries used up (or off)."""
    if not transient or job.connection.exists(keys.task_cancel(job.id)):
        return None
    attempt = attempt_of(job)
    if attempt > settings.MAX_TASK_RETRIES:
        return None
    return delay_before(settings, attempt)


def ending_reason(reason: str, job: Job, settings: Settings, transient: bool) -> str:
    """The reason a task ends with, saying how to go on: a transient ending not retried says the automatic retries
    are used up (or off); a worker's death says how to retry by hand."""
    by_hand = RETRY_BY_HAND.format(task_id=job.id)
    if not transient:
        return reason
    if settings.MAX_TASK_RETRIES == 0:
        return f"{reason} Automatic retries are off (MAX_TASK_RETRIES=0). {by_hand}"
    if job.connection.exists(keys.task_cancel(job.id)):
        return reason
    return (f"{reason} That was {attempts_text(attempt_of(job), settings)}: the automatic retries "
            f"(MAX_TASK_RETRIES={settings.MAX_TASK_RETRIES}) are used up. {by_hand}")


def announcement(job: Job, settings: Settings, reason: str, delay: int) -> tuple[str, str, dict]:
    """A retry as the task's progress ('Retrying at 14:05:30 UTC, attempt 2 of 3'), as the timeline's sentence
    (that, and why the attempt before ended) and as the event's data."""
    attempt = attempt_of(job)
    at = time.time() + delay
    when = datetime.fromtimestamp(at, timezone.utc).strftime("%H:%M:%S UTC")
    progress = f"Retrying at {when} (in {delay:g} s), {attempts_text(attempt + 1, settings)}"
    message = (f"{progress}, on its branch from its last checkpoint. "
               f"{attempts_text(attempt, settings).capitalize()} ended: {reason}")
    return progress, message, {"attempt": attempt + 1, "attempts": settings.MAX_TASK_RETRIES + 1, "retry_at": at,
                               "delay_seconds": delay, "reason": reason}


def schedule_in_rq(job: Job, delay: int) -> None:
    """RQ's own retry of a job whose work-horse is gone (the reaper's case): out of the started registry, counted in
    job.number_of_retries, and into the scheduled registry for `delay` seconds, as a horse's returned Retry does."""
    with job.connection.pipeline() as pipe:
        for execution in job.get_executions():
            execution.delete(job=job, pipeline=pipe)
        job.number_of_retries = attempt_of(job)
        job.retries_left, job.retry_intervals = 1, [delay]  # this one retry; the count above is TARS's
        job.retry(Queue(job.origin, connection=job.connection), pipe)
        pipe.execute()


def note_for_model(meta: dict, checkout: git_workspace.TaskCheckout, settings: Settings, attempt: int) -> str:
    """What the model is told at the start of a retry: the attempt, why the last one ended, and what the attempts
    before left on this branch (checkpoints, files), so that it continues instead of starting over."""
    lines = [f"This is {attempts_text(attempt, settings)} at this goal. The previous attempt ended: "
             f"{meta.get('retry_reason') or 'it was interrupted'}"]
    try:
        points = git_workspace.checkpoints(checkout)
        files = [entry["path"] for entry in git_workspace.summary(checkout)["files"]]
    except GitError:
        points, files = [], []
    if points:
        lines.append(f"The attempts before saved {len(points)} checkpoint{'s' if len(points) != 1 else ''} on this "
                     f"branch, {checkout.branch} (`git log` shows them), oldest first:")
        lines += [f"{point.number}. {point.message}" + (" (tests pass)" if point.tests_passed else "")
                  for point in points[-20:]]
    else:
        lines.append("They saved no checkpoint on this branch.")
    if files:
        lines.append(f"Files changed so far: {', '.join(files[:50])}" + (" ..." if len(files) > 50 else "") + ".")
    lines.append("The files are as the previous attempt left them (changes after its last checkpoint included). "
                 "Continue from there: check what is done, finish what is not; do not start over.")
    return "\n".join(lines)

