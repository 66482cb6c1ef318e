"""Every sentence TARS speaks on the phone.

The voice functions' answers (sub_agents_tars.py), the conversation's own sentences (communication/conversation.py)
and the call's announcements and refusal (communication/twilio_media_streams.py) are all written here, so their
wording is read, changed and kept consistent in one place. What the caller says is heard elsewhere
(spoken_digits in core/confirmations.py, spoken_task_id in sub_agents_tars.py). Sentences core/ raises
(core/exceptions.py) are spoken as they are: core never imports communication/. The greeting is a setting
(WELCOME_GREETING in core/config.py).
"""

from __future__ import annotations

from datetime import datetime

from core import schedules
from core.providers import PROVIDERS
from core.task_states import NORMAL
from core.task_manager import TaskStatus
from core.task_states import OUTCOMES, VERB, usd

# --- the call itself ------------------------------------------------------------------------------------------
NOT_OWNER = "I'm sorry, this line only takes calls from its owner. Goodbye."
"""Anyone but the owner hears this, then the line hangs up."""

FILLER = "One moment. "
"""Said when a voice function runs longer than FILLER_AFTER_SECONDS (communication/conversation.py)."""

APOLOGY = "I'm sorry, sir, I can't reach my thinking circuits right now. Please try again in a moment."
"""The model could not be reached."""

LOST = "I'm sorry, sir, I got tangled up in that one. Could you say it again?"
"""The model went round in tool calls without answering."""

DID_NOT_WORK = "That did not work, sir."
"""A voice function failed without a sentence of its own."""

# --- tasks ------------------------------------------------------------------------------------------------------
SPOKEN_STATUS = {
    "queued": "is waiting for a worker",
    "scheduled": "is scheduled",
    "running": "is running",
    "awaiting_confirmation": "is waiting for your confirmation code",
    "paused": "is paused",
    "complete": "is complete",
    "failed": "failed",
    "timeout": "ran out of time",
    "cancelled": "was cancelled",
}

ENDINGS = {"complete": "Task {id} is complete, sir.",
           "failed": "Task {id} failed, sir: {reason}.",
           "timeout": "Task {id} ran out of time, sir."}
"""What the call that started a task hears when it ends, by outcome (a cancel is not announced)."""

PAUSED_BY = {"workers": "with all the work", "task": "on its own", "plan": "with its plan"}
"""How a paused task is paused (TaskStatus.paused_by, core/pause.py): 'Task a7f3 is paused with all the work.'"""

NO_TASKS = "There are no tasks yet."


def spoken_status(status: TaskStatus, part: str | None = None) -> str:
    """'Task a7f3 is running: 3 of 5 subtasks done, 1 running, 1 waiting on api.' (a planned task's progress is its
    plan's summary, core/plans.plan_summary); a subtask names its plan: 'Task b2c3, part store of task a7f3, ...'
    (part: its key in the plan, when known)."""
    if status.held:  # queued, and the daily budget keeps it from starting (core/budget.py)
        return f"Task {status.task_id} is queued, but {status.progress.removeprefix('Held: ').rstrip('.')}."
    sentence = f"Task {status.task_id} {SPOKEN_STATUS[status.status]}"
    if status.parent:
        sentence = (f"Task {status.task_id}, {f'part {part}' if part else 'a subtask'} of task {status.parent}, "
                    f"{SPOKEN_STATUS[status.status]}")
    if status.status == "running" and status.progress:
        sentence += f": {status.progress.rstrip('.')}"
    elif status.status == "scheduled" and status.scheduled_for:
        sentence += f" to start {schedules.when_text(datetime.fromisoformat(status.scheduled_for))}"
    elif status.status == "awaiting_confirmation" and status.confirmation_command:
        sentence += f" to run {status.confirmation_command}"
    elif status.status == "paused" and status.paused_by in PAUSED_BY:
        sentence += f" {PAUSED_BY[status.paused_by]}"
    elif status.reason and status.status in ("failed", "timeout"):
        sentence += f". {status.reason.rstrip('.')}"
    elif status.status == "complete" and status.result and status.result.get("summary"):
        sentence += f". {status.result['summary'].splitlines()[0][:200].rstrip('.')}"
    return sentence + "."


def task_state(task_id: str, status: str) -> str:
    """'Task a7f3 was cancelled.'"""
    return f"Task {task_id} {SPOKEN_STATUS[status]}."


def started(task_id: str, where: str, planned: bool = False, refused: bool = False, priority: str = NORMAL,
            at: datetime | None = None) -> str:
    """`where` is how the project was heard ('your calculator project'), or empty for the default project; planned:
    the task plans its subtasks first; refused: a plan was asked for while PLAN_GOALS=never; priority: said unless
    normal; at: when a scheduled task starts."""
    where = f" in {where}" if where else ""
    head = f"Scheduled task {task_id}{where} to start {schedules.when_text(at)}" if at \
        else f"Started task {task_id}{where} in background"
    if priority != NORMAL:
        head += f" at {priority} priority"
    if planned:
        return (f"{head}, sir. I'll plan it out first and tell you the plan "
                f"before work starts; updates go to Discord.")
    if refused:
        return (f"{head} as one task, sir: planned tasks are off, "
                f"PLAN_GOALS is never. I'll send updates to Discord.")
    return f"{head}, sir. I'll send updates to Discord."


def held(task_id: str, where: str, progress: str) -> str:
    """A task started while today's budget is spent: queued, not started (progress: its 'Held: ...' line, which says
    until when, core/budget.py)."""
    where = f" in {where}" if where else ""
    why = progress.removeprefix("Held: ").rstrip(".")
    return f"I've queued it as task {task_id}{where}, sir, but {why}."


def report_summary(report: dict, days: int) -> str:
    """'In the last 7 days, 5 tasks ended: 3 complete, 1 failed and 1 cancelled, a success rate of 75 percent. They
    cost $1.20. The most common failure, 2 times: ...' (report: core/report.py's numbers)."""
    period = "today" if days == 1 else f"in the last {days} days"
    tasks = report["tasks"]
    if not tasks["total"]:
        return f"No task ended {period}, sir."
    parts = [f"{tasks[outcome]} {VERB[outcome]}" for outcome in OUTCOMES if tasks[outcome]]
    said = ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else parts[0]
    count = f"{tasks['total']} task{'s' if tasks['total'] != 1 else ''} ended"
    sentence = f"{period[0].upper()}{period[1:]}, {count}: {said}"
    if report["success_rate"] is not None:
        sentence += f", a success rate of {report['success_rate'] * 100:.0f} percent"
    sentence += f". They cost {usd(report['cost_usd'])}."
    if report["failure_reasons"]:
        top = report["failure_reasons"][0]
        reason = top["example"].split(": python main_tars.py")[0].split(". ")[0].rstrip(".")[:160]
        times = "once" if top["count"] == 1 else "twice" if top["count"] == 2 else f"{top['count']} times"
        sentence += f" The most common failure, {times}: {reason.replace('`', '')}."
    return sentence


def plan_sentence(task_id: str, subtasks: list[dict]) -> str:
    """The plan, heard by the call that started the task before work starts: 'Sir, task a7f3 is planned in 3
    subtasks: SQLite store; command line; and REST API, after store. Work starts now.'"""
    parts = []
    for sub in subtasks:
        after = f", after {' and '.join(sub.get('depends_on') or [])}" if sub.get("depends_on") else ""
        parts.append(f"{sub.get('title') or sub.get('key')}{after}")
    if len(parts) > 1:
        parts[-1] = "and " + parts[-1]
    count = len(parts)
    return (f"Sir, task {task_id} is planned in {count} subtask{'s' if count != 1 else ''}: {'; '.join(parts)}. "
            f"Work starts now.")


def plan_fallback_sentence(task_id: str, reason: str) -> str:
    """A planned task that runs as one task after all (core/plan_jobs.py tells why)."""
    reason = reason.strip().rstrip(".")
    return f"Sir, task {task_id} runs as one task instead of a plan: {reason}." if reason else \
        f"Sir, task {task_id} runs as one task instead of a plan."


def model_fallback_sentence(task_id: str, message: str) -> str:
    """Another model took over a task (core/model.FallbackModel's sentence: "<new> took over from <old>: why. fix")."""
    taken, _, why = message.partition(": ")
    new, _, old = taken.partition(" took over from ")
    why = why.strip().split(": ")[0].rstrip(".")  # the reason, not the fix: the timeline has that
    if not old or not why:
        return f"Sir, task {task_id} goes on with another model: {message.rstrip('.')}."
    if why.startswith("The "):  # "the Anthropic API was overloaded"; a setting's name keeps its capitals
        why = "t" + why[1:]
    return f"Sir, task {task_id} goes on with {_model_words(new)}, because {why}."


def _model_words(label: str) -> str:
    """`ollama:qwen3-coder:30b` as heard: "qwen3-coder:30b on Ollama"."""
    provider, _, model = label.partition(":")
    source = PROVIDERS.get(provider)
    return f"{model} on {source.title}" if source and model else label


def workers_switched(paused: bool, changed: bool) -> str:
    """Pausing (paused=True) or resuming all the work, heard (core/pause.switched says it in writing)."""
    if paused:
        return ("All work is paused, sir: no new task starts, and running tasks stop at their next step until you "
                "say resume.") if changed else "All work was already paused, sir."
    return "Work resumes, sir: queued tasks start and paused ones go on." if changed else "Work was not paused, sir."


def task_paused(task_id: str) -> str:
    return f"Task {task_id} pauses at its next step, sir, until you say resume."


def task_resumed(status: TaskStatus) -> str:
    """A task paused on its own let go; all the work may still be paused."""
    if status.status == "paused":
        return f"Task {status.task_id} is no longer paused on its own, sir, but all the work still is."
    return f"Task {status.task_id} goes on, sir."


def code_received(task_id: str) -> str:
    return f"Confirmation code received for task {task_id}, sir."


def code_rejected(message: str) -> str:
    """core's CodeRejected message, as said to the owner."""
    return message.replace("Code rejected", "That code was rejected")


# --- the task's branch: push, merge, roll back (what happened, with its numbers, in one sentence) ---------------
BRANCH_TESTS = {True: "tests passing", False: "tests failing", None: "no passing test run"}
"""What the worker's tests said of a branch's tip (True: its latest checkpoint is marked as passing)."""


def _commits(count: int) -> str:
    return f"{count} commit{'s' if count != 1 else ''}"


def pushed(branch: str, remote: str, commits: int, tests: bool | None) -> str:
    """'Pushed tars/a7f3c1 to origin: 3 commits, tests passing.'"""
    return f"Pushed {branch} to {remote}: {_commits(commits)}, {BRANCH_TESTS[tests]}."


def no_remote(task_id: str) -> str:
    return f"Task {task_id}'s project has no remote called origin, sir, so there is nowhere to push it."


def push_refused(branch: str, remote: str, moved_on: bool, reason: str) -> str:
    """A push origin refused; never forced (moved_on: origin's branch has commits this one lacks)."""
    if moved_on:
        return (f"{remote} refused {branch}, sir: its copy there has moved on since, and I never force a push, so "
                f"nothing was changed.")
    return f"{remote} refused the push of {branch}, sir: {reason.rstrip('.')}."


def merged(branch: str, target: str, commits: int, files: int, tests: bool | None) -> str:
    """'Merged tars/a7f3c1 into main: 3 commits, 5 files, tests passing.'"""
    return (f"Merged {branch} into {target}: {_commits(commits)}, {files} file{'s' if files != 1 else ''}, "
            f"{BRANCH_TESTS[tests]}.")


def merge_conflict(task_id: str, target: str, files: list[str]) -> str:
    shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    return f"Task {task_id} conflicts with {target} in {shown}, sir, so I merged nothing."


def merge_blocked(task_id: str, files: list[str]) -> str:
    """The owner's uncommitted changes touch files the merge would change (core/git_workspace.merge refused)."""
    shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    return (f"Your uncommitted changes to {shown} touch files task {task_id} changed, sir: commit or stash them and "
            f"I'll merge it.")


def rolled_back(task_id: str, number: int, message: str, undone: int, tests: bool) -> str:
    """'Rolled task a7f3c1 back to checkpoint 2: Add the parser; 1 commit undone, tests passing.' (tests: that
    checkpoint is marked as passing)."""
    if number == 0:
        return f"Rolled task {task_id} back to before it started, sir: {_commits(undone)} undone."
    passing = ", tests passing" if tests else ""
    return (f"Rolled task {task_id} back to checkpoint {number}: {message.rstrip('.')}; {_commits(undone)} "
            f"undone{passing}.")


def still_active(task_id: str, status: str, action: str) -> str:
    """A branch operation asked of a task that has not ended: 'Task a7f3c1 is still running, sir; I can push it once
    it has ended.'"""
    return f"Task {task_id} {SPOKEN_STATUS[status]}, sir; I can {action} once it has ended."


def discard_question(task_id: str) -> str:
    return f"Discarding task {task_id} deletes its branch and all its work for good. Shall I, sir?"


# --- hearing the caller -----------------------------------------------------------------------------------------
def no_task_id_in(said: str) -> str:
    return f"I couldn't make out a task id in {said}."


def several_tasks(wanted: str, candidates: list[str]) -> str:
    return f"{wanted} matches several tasks: {', '.join(candidates[:3])}. Which one?"


def several_projects(names: list[str]) -> str:
    options = ", ".join(names[:-1]) + f" or {names[-1]}"
    return f"I have several projects like that: {options}. Which one, sir?"


def no_such_project(said: str) -> str:
    return f"I don't see a project called {said}. Shall I create it?"


def no_such_function(name: str) -> str:
    return f"I don't have a function called {name}."


# --- announcements ----------------------------------------------------------------------------------------------
def confirmation_sentence(task_id: str, command: str, reason: str,
                          ask: str = "Please provide your confirmation code.") -> str:
    command = command if len(command) <= 200 else command[:200] + "…"
    sentence = (f"Sir, the background programming task {task_id} needs your confirmation code. "
                f"I need to run: {command.rstrip('.')}.")
    if reason:  # the gate's reason, e.g. "`rm` deletes files": said without its backticks
        sentence += f" The reason: {reason.replace('`', '').rstrip('.')}."
    return f"{sentence} {ask}"


def ending_sentence(task_id: str, outcome: str, reason: str, git: dict | None = None) -> str | None:
    """What the call that started a task hears when it ends (a cancel is not announced: someone just did it),
    with what its branch holds."""
    template = ENDINGS.get(outcome)
    if template is None:
        return None
    reason = (reason or "no reason was given").splitlines()[0].strip().rstrip(".")[:200]
    sentence = template.format(id=task_id, reason=reason)
    return f"{sentence} {spoken_changes(git)}" if git else sentence


def spoken_changes(git: dict) -> str:
    """'It made 3 commits on branch tars/a7f3, changing 2 files, and the tests pass.' (plus what AUTO_MERGE did)"""
    commits, files = int(git.get("commits") or 0), int(git.get("files") or 0)
    if not commits:
        return "It changed no files."
    tests = {True: "and the tests pass", False: "but the tests are failing"}.get(git.get("tests_passed"),
                                                                                 "with no tests to run")
    where = "in place" if git.get("mode") == "shadow" else f"on branch {git.get('branch')}"
    sentence = (f"It made {commits} commit{'s' if commits != 1 else ''} {where}, changing {files} "
                f"file{'s' if files != 1 else ''}, {tests}.")
    delivery = str(git.get("delivery") or "").strip()
    return f"{sentence} {delivery}" if delivery else sentence


# --- a voice function's arguments, as the model sent them -------------------------------------------------------
def must_be(name: str, what: str, value: object) -> str:
    """'limit must be a whole number, not 'many'.' (what: the kind, or 'one of a, b')."""
    return f"{name} must be {what}, not {value}."


def needs(function: str, missing: list[str]) -> str:
    return f"{function} needs {' and '.join(missing)}."


# --- calls and texts TARS starts (communication/owner_phone.py) ------------------------------------------------
CALLING_GREETING = "TARS here, sir."
"""What the owner hears first when they answer a call TARS placed; the call's reason follows."""

SMS_HELP = ("TARS: reply with your confirmation code (or the task id, a space and the code), or STATUS for a "
            "summary of the tasks.")
"""The answer to a text TARS cannot read."""

TEXT_LIMIT = 320
"""Longest text TARS sends: two SMS segments."""


def calling_about_code(task_id: str, command: str, reason: str) -> str:
    """The owner answered the call TARS placed because a task needs the code, and the request is still pending."""
    return confirmation_sentence(task_id, command, reason,
                                 ask="Say your confirmation code, or key it in and press pound.")


def code_no_longer_needed(task_id: str) -> str:
    """The owner answered the call, but the request was answered, refused or ended meanwhile."""
    return f"Task {task_id} no longer needs your code: it was answered elsewhere or it ended. Anything else, sir?"


def calling_to_tell(sentence: str) -> str:
    """The greeting of a call TARS placed to tell the owner something (a task ended, a reminder)."""
    return f"{CALLING_GREETING} {sentence}"


def reminder_sentence(text: str) -> str:
    return f"You asked me to remind you: {text.rstrip('.')}."


def reminder_set(text: str, at: datetime, by: str) -> str:
    how = "call" if by == "call" else "text"
    return f"I'll {how} you {schedules.when_text(at)} to remind you: {text.rstrip('.')}."


def reminders_listed(pending: list) -> str:
    """The owner's pending reminders (core/reminders.Reminder), soonest first."""
    if not pending:
        return "You have no reminders, sir."
    said = "; ".join(f"{schedules.when_text(r.due)}, {r.text.rstrip('.')} (reminder {r.reminder_id})"
                     for r in pending[:5])
    more = f" And {len(pending) - 5} more." if len(pending) > 5 else ""
    return f"Your reminders: {said}.{more}"


def reminder_cancelled(text: str) -> str:
    return f"Cancelled the reminder to {text.rstrip('.')}."


def cannot_phone(missing: list[str]) -> str:
    return f"I can't call or text you yet, sir: {', '.join(missing)} must be set in the settings."


def will_call_when_done(sentence: str) -> str:
    """started()'s sentence for a task started with call-when-done."""
    return sentence.replace("I'll send updates to Discord.", "I'll call you when it's done; updates go to Discord.")


def _texted(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT - 1].rstrip() + "…"


def code_text(task_id: str, command: str, reason: str, missed: bool) -> str:
    """The text asking for the code: instead of a call (quiet hours), or after a missed one."""
    command = command if len(command) <= 120 else command[:120] + "…"
    why = f" ({reason.replace('`', '').rstrip('.')})" if reason else ""
    head = "TARS (I called, no answer): " if missed else "TARS: "
    return _texted(f"{head}task {task_id} needs your confirmation code to run: {command}{why}. Reply with the code, "
                   f"or STATUS.")


def news_text(sentence: str, missed: bool) -> str:
    """A call's news (a task ended, a reminder) as a text: instead of the call, or after a missed one."""
    head = "TARS (I called, no answer): " if missed else "TARS: "
    return _texted(head + sentence)


def status_text(rows: list[TaskStatus]) -> str:
    """The answer to STATUS by text: one line over the recent tasks."""
    if not rows:
        return "TARS: no tasks yet."
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    waiting = [row for row in rows if row.status == "awaiting_confirmation"]
    parts = [f"{n} {status.replace('_', ' ')}" for status, n in counts.items()
             if status in ("running", "queued", "scheduled", "paused")]
    if waiting:
        parts.append("waiting for your code: " + ", ".join(
            f"{row.task_id} ({(row.confirmation_command or '')[:60]})" for row in waiting[:3]))
    ended = next((row for row in rows if not row.active), None)
    if ended is not None:
        parts.append(f"last ended: {ended.task_id} {ended.status}")
    return _texted("TARS: " + ("; ".join(parts) or "nothing running") + ".")
