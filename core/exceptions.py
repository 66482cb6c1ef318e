"""Every exception TARS raises on purpose, in one flat module (as rq.exceptions).

Each message is one sentence a person can read aloud: the voice front-end speaks
them as they are, and the CLI prints them on one line.
"""
from core.task_states import CANCELLED, COMPLETE, FAILED, TIMEOUT


class TarsError(Exception):
    """Base class: the message is a speakable sentence."""


class ConfigError(TarsError):
    """A setting is invalid; the message names the variable and the fix."""


class RedisUnavailable(TarsError):
    """Redis cannot be reached and no embedded server could be started."""


class InvalidGoal(TarsError):
    """The goal is empty or too long."""


class InvalidPlan(TarsError):
    """A planner's plan_subtasks input is not a usable plan (core/plans.py): the message says why, for the model."""


class InvalidCapabilities(TarsError):
    """A worker's --capabilities value is not a list of short lowercase names (core/capabilities.py)."""


class SubtaskFailed(TarsError):
    """Raised by a plan's subtask job that did not end merged, so RQ records the job failed and the subtasks that
    depend on it stay deferred (core/plan_jobs.py); `task retry` requeues it."""


class InvalidProjectPath(TarsError):
    """The project path is outside PROJECTS_ROOT or cannot be used."""


class InvalidPriority(TarsError):
    """A task's priority is not one of high, normal, low (core/task_states.PRIORITIES)."""


class InvalidSchedule(TarsError):
    """A task's start time cannot be read, or is past, or too far ahead (core/schedules.py); the message gives the
    rule."""
class InvalidBudget(TarsError):
    """A daily budget that is not an amount of dollars (`budget set`, the API)."""


class InvalidReportPeriod(TarsError):
    """A report's --since that is not a period such as 7d, 24h or 2w."""


class PhoneUnavailable(TarsError):
    """TARS cannot call or text the owner: a setting is missing, or Twilio's REST API refused or could not be reached
    (communication/twilio_rest.py); the message names the fix."""


class InvalidReminder(TarsError):
    """A reminder without text, or one whose time cannot be read (core/reminders.py); the message gives the rule."""


class TaskNotFound(TarsError):
    """No task has this id."""


class TaskNotActive(TarsError):
    """The task has already ended, so it cannot be cancelled or confirmed."""


class ToolError(TarsError):
    """A tool call the model made was refused or failed; the model sees the message."""


class WorkspaceUnusable(ToolError):
    """The project's file system takes no writes: full (ENOSPC), over quota (EDQUOT), read-only (EROFS), or the
    project directory itself is not writable (EACCES/EPERM). No edit can succeed until the owner fixes it, so the
    worker should end the task with this message (which names the fix) rather than let the model retry."""

    def __init__(self, message: str, code: int, filesystem: str):
        super().__init__(message)
        self.errno = code
        self.filesystem = filesystem  # the mount point holding the project


class ModelError(TarsError):
    """The model API failed after the SDK's retries; the message says why in words. transient: the API was
    unavailable (overloaded, a server error, rate limited, a timeout, no connection), so a later attempt may
    succeed; a refused request (400, 401, 403, 404) is not. fallback: another model of the list may serve where
    this one could not (it was unavailable, does not have the model, or has no key; not a refused request)."""

    def __init__(self, message: str, transient: bool = False, fallback: bool | None = None):
        super().__init__(message)
        self.transient = transient
        self.fallback = transient if fallback is None else fallback


# --- ending states of the coding loop (raised inside it, caught by its run()) ---

class TaskEnded(Exception):
    """The loop is over; carries the outcome and a sentence saying why."""

    outcome = FAILED
    transient = False  # ended by something outside the task that may pass: the worker retries it (core/retries.py)

    def __init__(self, reason: str, summary: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.summary = summary


class Submitted(TaskEnded):
    """The model is done and the worker's own test run agrees."""

    outcome = COMPLETE


class LimitsExceeded(TaskEnded):
    """Iteration limit reached, or the model is stuck repeating itself."""

    outcome = FAILED


class CostExceeded(LimitsExceeded):
    """The task's estimated cost reached MAX_TASK_COST_USD: it stops between steps, its work kept on its branch."""


class TimeExceeded(TaskEnded):
    """MAX_TASK_RUNTIME_MINUTES ran out."""

    outcome = TIMEOUT


class Cancelled(TaskEnded):
    """Someone cancelled the task."""

    outcome = CANCELLED


class TaskFailed(TaskEnded):
    """The task cannot go on (model API failure, missing key, unusable project)."""

    outcome = FAILED


class Interrupted(TaskFailed):
    """Something outside the task stopped it and may pass: the model API unavailable after the SDK's retries, its
    worker died, Redis lost its record. The worker retries it automatically (core/retries.py)."""

    transient = True


class CodeRejected(TarsError):
    """A wrong confirmation code; the message says how many attempts are left."""

    def __init__(self, message: str, attempts_left: int):
        super().__init__(message)
        self.attempts_left = attempts_left


class NotAwaitingConfirmation(TarsError):
    """The task is not waiting for a confirmation code now."""


class PauseRefused(TarsError):
    """A task cannot be paused or resumed on its own now (not started yet, ended, or not paused on its own): the
    message says what to do instead (core/pause.py)."""


# --- the task's git checkout (core/git_workspace.py) ---

class GitError(TarsError):
    """A git operation on a task's checkout failed; the message names the operation, the place and git's own words."""


class NoSuchCheckpoint(GitError):
    """A rollback to a checkpoint the task's branch does not have (the request's fault, not the branch's state)."""


class MergeConflict(GitError):
    """The task's branch conflicts with the branch it started from; nothing was changed. files: the conflicting paths."""

    def __init__(self, message: str, files: list[str]):
        super().__init__(message)
        self.files = files


class NoRemote(GitError):
    """A push of a task's branch whose repository has no remote called origin: there is nowhere to push it."""


class PushRejected(GitError):
    """The remote refused a push of a task's branch (never forced): reason is git's word for why ("[rejected]
    (non-fast-forward)": the remote branch has commits the task's lacks), remote its redacted URL."""

    def __init__(self, message: str, remote: str, reason: str):
        super().__init__(message)
        self.remote, self.reason = remote, reason

    @property
    def moved_on(self) -> bool:
        """The remote's branch has moved on (a force would be needed): non-fast-forward, or fetch first."""
        return "non-fast-forward" in self.reason or "fetch first" in self.reason


class MergeBlocked(GitError):
    """The owner's uncommitted changes touch files the merge would change, so TARS refused to merge (nothing was
    changed); files: those paths. The owner commits or stashes them and merges again."""

    def __init__(self, message: str, files: list[str]):
        super().__init__(message)
        self.files = files
