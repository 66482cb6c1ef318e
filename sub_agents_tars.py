"""The voice functions: what the voice brain (Claude in conversation) may call during a phone call.

`VoiceFunctions` holds them, for one call: each is one typed method with a docstring, marked @voice_function,
which builds its Claude tool schema from them; `VoiceFunctions.call` dispatches by name from the table of those
methods and never raises: every answer is one short sentence to be heard (worded in communication/spoken.py).
They start and stop tasks and answer about any task (status, lists, confirmation codes, its branch). Spoken input
is forgiving: project names are matched fuzzily, codes said as words become digits, and a partial or misheard
task id is matched against the call's recent tasks.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal, get_type_hints

from rq.job import Job

from communication import spoken
from communication.spoken import spoken_status
from core import pause, reminders, report, schedules
from core.config import Settings
from core.confirmations import DIGIT_WORDS, spoken_digits
from core.exceptions import (CodeRejected, MergeBlocked, MergeConflict, NoRemote, PushRejected, TarsError,
                             TaskNotActive, TaskNotFound)
from core.schema import Schema, function_schema
from core.task_manager import TaskManager, TaskStatus

log = logging.getLogger("tars.voice")

LETTER_WORDS = {"alpha": "a", "alfa": "a", "ay": "a", "bravo": "b", "bee": "b", "be": "b", "charlie": "c",
                "see": "c", "sea": "c", "delta": "d", "dee": "d", "echo": "e", "ee": "e", "foxtrot": "f",
                "ef": "f", "eff": "f"}


def spoken_task_id(text: object) -> str:
    """'a seven f three' / 'alpha 7 foxtrot 3' / '#A7F3' / '403be0' → 'a7f3'… (hex characters only)."""
    out = []
    for token in re.findall(r"[a-z0-9]+", str(text).lower()):
        # A typed id is taken as written: read word by word, the "be" of "403be0" would become "b".
        if re.fullmatch(r"[0-9a-f]*\d[0-9a-f]*", token):
            out.append(token)
            continue
        for word in re.findall(r"[a-z]+|\d", token):
            if word in LETTER_WORDS:
                out.append(LETTER_WORDS[word])
            elif word in DIGIT_WORDS:
                out.append(DIGIT_WORDS[word])
            elif re.fullmatch(r"[0-9a-f]+", word):
                out.append(word)
    return "".join(out)


def _normal(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


# --- voice functions: one typed, documented method each ---------------------------------------------------------
SPOKEN_TYPES = {"string": "text", "integer": "a whole number", "number": "a number", "boolean": "true or false"}


def voice_function(method: Callable) -> Callable:
    """Make a method a voice function: its Claude tool schema is built here, at import, from its signature and
    docstring, so a missing docstring, an undescribed parameter or an unsupported type fails at once.

    The docstring's first paragraph tells the model what the function does; an "Args:" section has one
    "name: description" line per parameter (longer lines continue indented). Types: str, int, float, bool,
    Literal[...] (an enum), X | None (may be null: give it a default); Annotated[int, Schema(minimum=0)] adds
    JSON Schema keywords. A parameter with a default is optional; the others are required."""
    method.voice_tool = tool_schema(method)
    return method


def tool_schema(method: Callable) -> dict:
    """The tool (name, description, input_schema) of a voice function (core/schema.py builds it)."""
    if get_type_hints(method).get("return") is not str:
        raise TypeError(f"voice function {method.__name__} must return str: its answer is spoken")
    return function_schema(method, skip_first=True)


def _bool(value: object) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "yes", "1")


def _argument(value: object, schema: dict, name: str) -> object:
    """A value the model sent, as its parameter's schema says (forgiving like speech: 2 for "2", "yes" for true)."""
    kind = schema["type"]
    if kind == "boolean":
        value = _bool(value)
    elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(spoken.must_be(name, SPOKEN_TYPES[kind], repr(value)))
    elif kind == "string":
        value = str(value)
    elif not (kind == "integer" and isinstance(value, int)):
        try:
            number = float(value)
        except ValueError:
            number = None
        if number is None or kind == "integer" and not number.is_integer():
            raise ValueError(spoken.must_be(name, SPOKEN_TYPES[kind], repr(value)))
        value = int(number) if kind == "integer" else number
    if "enum" in schema and value not in schema["enum"]:
        raise ValueError(spoken.must_be(name, f"one of {', '.join(map(str, schema['enum']))}", value))
    return value


class ProjectChoice:
    """The outcome of matching a spoken project name: a path to use, or a question to ask."""

    def __init__(self, path: str | None = None, said: str = "", question: str | None = None):
        self.path, self.said, self.question = path, said, question


def match_project(root: Path, said: str, create: bool = False) -> ProjectChoice:
    """Match a spoken project name against the folders under root."""
    said = (said or "").strip()
    if not said:
        return ProjectChoice()
    if "/" in said or said.startswith("~"):
        return ProjectChoice(said)  # a path, not a name: the task manager checks it
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if root.is_dir() else []
    wanted = _normal(re.sub(r"\b(my|the|project|folder|repo)\b", " ", said.lower()))
    exact = [n for n in names if _normal(n) == wanted]
    if exact:
        return ProjectChoice(exact[0], f"your {exact[0]} project")
    if create:
        folder = re.sub(r"[^a-z0-9]+", "-", said.lower()).strip("-") or "project"
        return ProjectChoice(folder, f"a new {folder} project")
    close = [n for n in names if wanted and (wanted in _normal(n) or _normal(n) in wanted)]
    if not close:
        normals = {_normal(n): n for n in names}
        close = [normals[m] for m in difflib.get_close_matches(wanted, list(normals), n=3, cutoff=0.75)]
    if len(close) == 1:
        return ProjectChoice(close[0], f"your {close[0]} project")
    if len(close) > 1:
        return ProjectChoice(question=spoken.several_projects(close))
    return ProjectChoice(question=spoken.no_such_project(said))


class VoiceFunctions:
    """The voice functions of one call: every method marked @voice_function, dispatched by name from one table.
    They start, stop and answer about tasks (status, lists, confirmation codes, the task's branch); every answer
    is a sentence, never an exception.

    `call_sid` is the call the functions serve: the tasks it starts are that call's, and a spoken task id is
    matched against that call's recent tasks first."""

    def __init__(self, tasks: TaskManager, settings: Settings | None = None, call_sid: str | None = None):
        self.tasks = tasks
        self.settings = settings or tasks.settings
        self.call_sid = call_sid
        self.pending_confirmation: str | None = None  # the task whose code request was just spoken
        self.reminder_added: Callable[[], None] = lambda: None  # the server's reminder loop looks again (the relay)

    def resolve_task_id(self, said: str | None) -> str:
        """The task a spoken id means: exact, else the unique recent task it is a prefix of or one slip from."""
        if said is None or not str(said).strip():
            latest = (self.call_sid and self.tasks.latest_id(self.call_sid)) or self.tasks.latest_id()
            if latest is None:
                raise TaskNotFound(spoken.NO_TASKS)
            return latest
        wanted = spoken_task_id(said)
        if not wanted:
            raise TaskNotFound(spoken.no_task_id_in(said))
        recent = [s.task_id for s in self.tasks.list(limit=10, call_sid=self.call_sid)] if self.call_sid \
            else []
        recent += [s.task_id for s in self.tasks.list(limit=20) if s.task_id not in recent]
        if wanted in recent:
            return wanted
        for candidates in ([r for r in recent if r.startswith(wanted) or wanted in r],
                           [r for r in recent if _one_slip(wanted, r)]):
            if len(candidates) == 1:
                return candidates[0]
            if len(candidates) > 1:
                raise TaskNotFound(spoken.several_tasks(wanted, candidates))
        return wanted  # let the task manager say there is no such task

    @classmethod
    def table(cls) -> dict[str, Callable]:
        """name → the voice function: every marked method of the class and its bases, bases' first."""
        names = dict.fromkeys(name for klass in reversed(cls.__mro__) for name in vars(klass))
        return {name: method for name in names if hasattr(method := getattr(cls, name), "voice_tool")}

    @classmethod
    def tools(cls) -> list[dict]:
        """The Claude tool schemas, in the table's order."""
        return [method.voice_tool for method in cls.table().values()]

    def call(self, name: str, arguments: dict) -> str:
        method = self.table().get(name)
        if method is None:
            return spoken.no_such_function(name)
        try:
            return method(self, **self._arguments(method, dict(arguments or {})))
        except (TarsError, ValueError, TypeError) as exc:
            return str(exc) or spoken.DID_NOT_WORK

    @staticmethod
    def _arguments(method: Callable, given: dict) -> dict:
        """The keyword arguments of a call, checked against the method's schema: an omitted or null argument
        takes its default; a missing required one, or one of the wrong type, raises ValueError; unknown ones
        are ignored (as they always were)."""
        schema = method.voice_tool["input_schema"]
        unknown = sorted(set(given) - set(schema["properties"]))
        if unknown:
            log.warning("%s ignores arguments it does not take: %s", method.__name__, ", ".join(unknown))
        missing = [name for name in schema.get("required", []) if given.get(name) is None]
        if missing:
            raise ValueError(spoken.needs(method.__name__, missing))
        return {name: _argument(given[name], prop, name) for name, prop in schema["properties"].items()
                if given.get(name) is not None}


    @voice_function
    def check_coding_progress(self, task_id: str | None = None) -> str:
        """How a background task is going. Without task_id: the latest task.

        Args:
            task_id: the task id as heard, even partial
        """
        try:
            status = self.tasks.status(self.resolve_task_id(task_id))
            return spoken_status(status, self._part(status))
        except TarsError as exc:
            return str(exc)

    def _part(self, status: TaskStatus) -> str | None:
        """A plan's subtask: its key in its parent's plan ("store"), as the owner heard the plan."""
        record = self.tasks.plan_record(status.parent) if status.parent else None
        return next((sub["key"] for sub in (record or {}).get("subtasks", []) if sub["task_id"] == status.task_id),
                    None)

    @voice_function
    def list_coding_tasks(self, limit: Annotated[int, Schema(minimum=1, maximum=10)] = 5) -> str:
        """The recent background tasks and their status.

        Args:
            limit: how many tasks to tell, newest first
        """
        rows = self.tasks.list(limit=max(1, min(int(limit or 5), 10)))
        if not rows:
            return spoken.NO_TASKS
        return " ".join(spoken_status(s) for s in rows)

    @voice_function
    def submit_background_confirmation(self, confirmation_code: str, task_id: str | None = None) -> str:
        """Give the owner's confirmation code to a task waiting for it (before a destructive command).
        Pass the code exactly as spoken; words like 'six two' are fine.

        Args:
            confirmation_code: the code as the owner said or typed it
            task_id: the waiting task; omit for the one that just asked
        """
        try:
            resolved = self.resolve_task_id(task_id or self.pending_confirmation)
        except TarsError as exc:
            return str(exc)
        accepted, sentence = self.answer_code(resolved, spoken_digits(confirmation_code))
        if accepted:
            self.pending_confirmation = None
        return sentence

    def answer_code(self, task_id: str, code: str, request_id: str | None = None) -> tuple[bool, str]:
        """A code for the task: (accepted, the sentence that says so or why not). The one path of a code through
        the voice functions and the Discord bot; request_id binds it to that request (TaskManager.confirm)."""
        try:
            self.tasks.confirm(task_id, code, request_id)
        except CodeRejected as exc:
            return False, spoken.code_rejected(str(exc))
        except TarsError as exc:  # no such task, not waiting, already ended
            return False, str(exc)
        return True, spoken.code_received(task_id)

    @voice_function
    def start_autonomous_coding(self, goal: str, project_path: str | None = None,
                                verbose_updates: bool | None = None, create_new_project: bool = False,
                                plan: bool | None = None, priority: Literal["high", "normal", "low"] | None = None,
                                start_at: str | None = None, start_in: str | None = None,
                                call_when_done: bool = False) -> str:
        """Start a background programming task: a worker runs Claude on a project until the goal is met,
        with progress on Discord. Use when the owner asks to build, write, fix or test code.

        Args:
            goal: what to build or fix, in the owner's words
            project_path: the project named ('my calculator project' -> 'calculator'); omit for the default project
            verbose_updates: false when the owner wants minimal/quiet updates, true for every action; omit otherwise
            create_new_project: true only after the owner agreed to create a project that does not exist yet
            plan: true when the owner says to plan it out first (the goal is split into subtasks that several
                workers build at once, merged into one branch); false when they want it done as one task; omit
                otherwise
            priority: high when the owner says it's urgent (it starts before every task waiting), low for
                'whenever you have time' (after them); omit otherwise
            start_at: only when the owner says when to start it: 'HH:MM' on the 24-hour clock, the next such
                time ('tonight at two' -> '02:00', 'at half past six' in the evening -> '18:30'), or an ISO
                date-time ('2025-06-01T09:30'); omit to start now
            start_in: instead of start_at, a delay ('in two hours' -> '2h', '30m', '1h30m'); omit to start now
            call_when_done: true when the owner says to call them when it's done (a text if they miss the call)
        """
        choice = match_project(self.settings.PROJECTS_ROOT, project_path or "", create=create_new_project)
        if choice.question:
            return choice.question
        try:
            at = schedules.start_time(start_at, start_in)
            task_id = self.tasks.start(goal, choice.path, verbose_updates=verbose_updates,
                                       call_sid=self.call_sid, plan=plan, priority=priority, at=at,
                                       call_when_done=call_when_done)
        except TarsError as exc:
            return str(exc)
        meta = Job.fetch(task_id, connection=self.tasks.redis).get_meta(refresh=False) or {}
        if meta.get("held"):  # today's budget is spent: queued, not started
            return spoken.held(task_id, choice.said, meta["progress"])
        planned = bool(meta.get("plan"))
        scheduled = datetime.fromisoformat(meta["scheduled_for"]) if meta.get("scheduled_for") else None
        sentence = spoken.started(task_id, choice.said, planned, refused=bool(plan) and not planned,
                                  priority=meta["priority"], at=scheduled)
        return spoken.will_call_when_done(sentence) if call_when_done else sentence

    @voice_function
    def report_on_tasks(self, days: Annotated[int, Schema(minimum=1, maximum=90)] = 7) -> str:
        """How the background tasks went lately: how many ended and how, the success rate, what they cost and the
        most common failure. Use when the owner asks how the week, or the last few days, went.

        Args:
            days: how many days back to look: 7 for "this week", 1 for "today"
        """
        return spoken.report_summary(report.report(self.tasks.redis, days * 86400), days)

    # --- reminders (core/reminders.py; the server calls or texts them, communication/owner_phone.py) -------------
    @voice_function
    def set_reminder(self, text: str, at: str | None = None, delay: str | None = None,
                     by: Literal["call", "text"] = "call") -> str:
        """Remind the owner of something later by calling (or texting) them: 'remind me at five to check the
        deploy'. Give at or delay.

        Args:
            text: what to remind them of, short, in their words ('check the deploy')
            at: 'HH:MM' on the 24-hour clock, the next such time ('at five' in the afternoon -> '17:00'), or an
                ISO date-time
            delay: instead of at, a delay ('in twenty minutes' -> '20m', '2h', '1h30m')
            by: text when the owner asks for a text message; call otherwise
        """
        missing = self.settings.phone_missing()
        if missing:
            return spoken.cannot_phone(missing)
        at_time = schedules.start_time(at, delay)
        if at_time is None:
            return "When should I remind you, sir?"
        reminder = reminders.add(self.tasks.redis, text, at_time, by, self.call_sid)
        self.reminder_added()
        return spoken.reminder_set(reminder.text, at_time, by)

    @voice_function
    def list_reminders(self) -> str:
        """The owner's reminders still to come, soonest first."""
        return spoken.reminders_listed(reminders.pending(self.tasks.redis))

    @voice_function
    def cancel_reminder(self, reminder_id: str) -> str:
        """Cancel one of the owner's reminders (list_reminders says their ids).

        Args:
            reminder_id: the reminder's id as heard
        """
        return spoken.reminder_cancelled(reminders.cancel(self.tasks.redis, spoken_task_id(reminder_id)).text)

    @voice_function
    def cancel_coding_task(self, task_id: str) -> str:
        """Cancel a background task.

        Args:
            task_id: the task id as heard, even partial
        """
        try:
            status = self.tasks.cancel(self.resolve_task_id(task_id))
        except TarsError as exc:
            return str(exc)
        return spoken.task_state(status.task_id, status.status)

    # --- pause and resume (core/pause.py) ------------------------------------------------
    @voice_function
    def pause_work(self, task_id: str | None = None) -> str:
        """Pause work. Without task_id: all of it (no new task starts; running tasks stop at their next step and
        wait, their time limit not counting, until resumed). With task_id: only that running task.

        Args:
            task_id: only this task (the id as heard, even partial); omit to pause all the work
        """
        try:
            if task_id is None or not str(task_id).strip():
                return spoken.workers_switched(True, pause.pause_workers(self.tasks.redis))
            return spoken.task_paused(self.tasks.pause(self.resolve_task_id(task_id)).task_id)
        except TarsError as exc:
            return str(exc)

    @voice_function
    def resume_work(self, task_id: str | None = None) -> str:
        """Resume paused work. Without task_id: all of it (queued tasks start, paused ones go on). With task_id: only
        that task, paused on its own.

        Args:
            task_id: only this task (the id as heard, even partial); omit to resume all the work
        """
        try:
            if task_id is None or not str(task_id).strip():
                return spoken.workers_switched(False, pause.resume_workers(self.tasks.redis))
            return spoken.task_resumed(self.tasks.resume(self.resolve_task_id(task_id)))
        except TarsError as exc:
            return str(exc)

    # --- the task's branch ---------------------------------------------------------
    @voice_function
    def rollback_coding_task(self, task_id: str | None = None,
                             checkpoint: Annotated[int, Schema(minimum=0)] | None = None) -> str:
        """Undo work of an ended background task: reset its branch and files to an earlier checkpoint.
        Without checkpoint: undo the last step. Checkpoint 0 is the state before the task.

        Args:
            task_id: the task id as heard; omit for the latest task
            checkpoint: the checkpoint number to go back to
        """
        resolved = None
        try:
            resolved = self.resolve_task_id(task_id)
            before = len(self.tasks.checkpoints(resolved))
            point = self.tasks.rollback(resolved, checkpoint)
        except TaskNotActive:
            return self._still_active(resolved, "roll it back")
        except TarsError as exc:
            return str(exc)
        return spoken.rolled_back(resolved, point.number, point.message, before - point.number, point.tests_passed)

    @voice_function
    def merge_coding_task(self, task_id: str | None = None) -> str:
        """Merge an ended task's branch into the branch it started from (the owner's project).

        Args:
            task_id: the task id as heard; omit for the latest task
        """
        resolved = checkout = None
        try:
            resolved = self.resolve_task_id(task_id)
            checkout = self.tasks.task_checkout(resolved, "merge it")
            result = self.tasks.merge(resolved)
            if result.kind not in ("fast-forward", "merge"):  # nothing to merge: its own sentence says why
                return result.message
            commits, tests = self._branch_state(resolved)
        except TaskNotActive:
            return self._still_active(resolved, "merge it")
        except MergeConflict as exc:
            return spoken.merge_conflict(resolved, checkout.start_branch, exc.files)
        except MergeBlocked as exc:
            return spoken.merge_blocked(resolved, exc.files)
        except TarsError as exc:
            return str(exc)
        return spoken.merged(checkout.branch, result.branch, commits, len(result.files), tests)

    @voice_function
    def push_coding_task(self, task_id: str | None = None) -> str:
        """Push an ended task's branch to its project's remote (origin) under the same name; never forced. Use when
        the owner says to push it.

        Args:
            task_id: the task id as heard; omit for the latest task
        """
        resolved = checkout = None
        try:
            resolved = self.resolve_task_id(task_id)
            checkout = self.tasks.task_checkout(resolved, "push it")
            self.tasks.push(resolved)
            commits, tests = self._branch_state(resolved)
        except TaskNotActive:
            return self._still_active(resolved, "push it")
        except NoRemote:
            return spoken.no_remote(resolved)
        except PushRejected as exc:
            return spoken.push_refused(checkout.branch, "origin", exc.moved_on, exc.reason)
        except TarsError as exc:
            return str(exc)
        return spoken.pushed(checkout.branch, "origin", commits, tests)

    def _branch_state(self, task_id: str) -> tuple[int, bool | None]:
        """(commits, tests) of an ended task's branch as it is now: its commits since the task started, and True when
        the worker marked its latest checkpoint as passing the tests; else what the task's own test run at its end
        said (False: failing; None: none ran), as long as the branch is as the task left it (not rolled back)."""
        points = self.tasks.checkpoints(task_id)
        if points and points[-1].tests_passed:
            return len(points), True
        ended = (self.tasks.status(task_id).result or {}).get("git") or {}
        return len(points), ended.get("tests_passed") if ended.get("commits") == len(points) else None

    def _still_active(self, task_id: str, action: str) -> str:
        status = self.tasks.status(task_id)
        return spoken.still_active(status.task_id, status.status, action)

    @voice_function
    def discard_coding_task(self, task_id: str | None = None, confirmed: bool = False) -> str:
        """Throw an ended task's work away (its checkout and branch). Call first without confirmed;
        call with confirmed=true only after the owner said yes to the question it returns.

        Args:
            task_id: the task id as heard; omit for the latest task
            confirmed: true only after the owner agreed to discard
        """
        try:
            resolved = self.resolve_task_id(task_id)
            if not confirmed:  # a misheard word must not throw work away: the owner says yes first
                self.tasks.task_checkout(resolved, "discard it")
                return spoken.discard_question(resolved)
            return self.tasks.discard(resolved)
        except TarsError as exc:
            return str(exc)


def _one_slip(a: str, b: str) -> bool:
    """Same length and one character different, or one character missing: a misheard id."""
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    if abs(len(a) - len(b)) == 1:
        short, long = sorted((a, b), key=len)
        return any(long[:i] + long[i + 1:] == short for i in range(len(long)))
    return False


VOICE_SYSTEM_PROMPT = """You are TARS, the owner's assistant, speaking on the phone. Everything you write is \
read aloud by text-to-speech.
- Answer in one to three short spoken sentences. No markdown, no lists, no code, no URLs, no emoji.
- Say task ids character by character as they are written, e.g. "a7f3c1".
- Programming work goes to background tasks: call start_autonomous_coding and tell the owner the task id. \
Never write code in the conversation.
- When the owner says to plan it out first, call start_autonomous_coding with plan=true: the goal is split into \
subtasks that several workers build at once, and you tell the owner the plan when it comes.
- When the owner says to call them when it's done, pass call_when_done=true. "Remind me at five to check the \
deploy" is set_reminder: TARS calls (or texts) them then.
- "It's urgent" starts the task at priority high, "whenever you have time" at low. When the owner says when to \
start it ("tonight at two", "in an hour"), pass start_at or start_in; the owner hears the time back.
- {looking_up}
- When a task is waiting for a confirmation code and the owner says a code, call \
submit_background_confirmation with it.
- When the owner says to pause, hold or stop for now (all the work, or one task), call pause_work; when they \
say to go on, resume_work. A pause keeps the work; cancel_coding_task throws the task away.
- Every task works on its own branch. The owner can have an ended task merged, pushed to its remote \
("push it"), rolled back to a checkpoint or discarded; discarding needs the owner's yes first.
Call the owner "sir" now and then, dry wit allowed."""
"""The voice brain's instructions; {looking_up} is one of LOOKING_UP, as VOICE_WEB_SEARCH says (voice_system_prompt)."""

LOOKING_UP = {
    False: "For anything else (the weather, a question, small talk) just answer; you cannot look things up.",
    True: "When the owner asks about the weather, the news, documentation or anything else that needs current \
facts, search the web, then answer in one or two spoken sentences: never read out URLs, sources or citations. For \
anything else (a question, small talk) just answer.",
}


def voice_system_prompt(web_search: bool) -> str:
    """VOICE_SYSTEM_PROMPT with what the model may look up: web_search is VOICE_WEB_SEARCH (the web search tool is
    offered then: communication/conversation.py)."""
    return VOICE_SYSTEM_PROMPT.format(looking_up=LOOKING_UP[web_search])






VOICE_TOOLS = VoiceFunctions.tools()
