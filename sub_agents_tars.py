"""The functions the voice brain (Claude in conversation) may call, answered in spoken style.

ProgrammerAgent starts and stops work; InterSessionAgent answers about tasks from any call
(status, lists, confirmation codes). `VoiceFunctions` puts both behind the Claude tool schemas
(`VOICE_TOOLS`) and never raises: every answer is one short sentence to be heard. Spoken input
is forgiving: project names are matched fuzzily, codes said as words become digits, and a
partial or misheard task id is matched against the caller's recent tasks.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from core.config import Settings
from core.exceptions import CodeRejected, NotAwaitingConfirmation, TarsError, TaskNotActive, TaskNotFound
from core.task_manager import TaskManager, TaskStatus

SPOKEN_STATUS = {
    "queued": "is waiting for a worker",
    "running": "is running",
    "awaiting_confirmation": "is waiting for your confirmation code",
    "complete": "is complete",
    "failed": "failed",
    "timeout": "ran out of time",
    "cancelled": "was cancelled",
}

DIGIT_WORDS = {"zero": "0", "oh": "0", "o": "0", "nought": "0", "one": "1", "won": "1", "two": "2", "to": "2",
               "too": "2", "three": "3", "tree": "3", "four": "4", "for": "4", "fore": "4", "five": "5",
               "six": "6", "sicks": "6", "seven": "7", "eight": "8", "ate": "8", "nine": "9", "niner": "9"}
LETTER_WORDS = {"alpha": "a", "alfa": "a", "ay": "a", "bravo": "b", "bee": "b", "be": "b", "charlie": "c",
                "see": "c", "sea": "c", "delta": "d", "dee": "d", "echo": "e", "ee": "e", "foxtrot": "f",
                "ef": "f", "eff": "f"}
MULTIPLIERS = {"double": 2, "triple": 3}


def spoken_digits(text: object) -> str:
    """'six two eight three' / '6 2 8 3' / 'double four one' → '6283' / '6283' / '441'. Unknown words are kept."""
    out: list[str] = []
    repeat = 1
    for word in re.findall(r"[a-z]+|\d+|[^\s\w]", str(text).lower()):
        if word in MULTIPLIERS:
            repeat = MULTIPLIERS[word]
            continue
        piece = DIGIT_WORDS.get(word, word if word.isdigit() else None)
        if piece is None:
            if word.isalnum():
                out.append(word)
            repeat = 1
            continue
        out.append(piece * repeat if len(piece) == 1 else piece)
        repeat = 1
    return "".join(out)


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


def spoken_status(status: TaskStatus) -> str:
    sentence = f"Task {status.task_id} {SPOKEN_STATUS[status.status]}"
    if status.status == "running" and status.progress:
        sentence += f": {status.progress.rstrip('.')}"
    elif status.status == "awaiting_confirmation" and status.confirmation_command:
        sentence += f" to run {status.confirmation_command}"
    elif status.reason and status.status in ("failed", "timeout"):
        sentence += f". {status.reason.rstrip('.')}"
    elif status.status == "complete" and status.result and status.result.get("summary"):
        sentence += f". {status.result['summary'].splitlines()[0][:200].rstrip('.')}"
    return sentence + "."


class ProjectChoice:
    """The outcome of matching a spoken project name: a path to use, or a question to ask."""

    def __init__(self, path: str | None = None, said: str = "", question: str | None = None):
        self.path, self.said, self.question = path, said, question


def match_project(root: Path, spoken: str, create: bool = False) -> ProjectChoice:
    """Match a spoken project name against the folders under root."""
    spoken = (spoken or "").strip()
    if not spoken:
        return ProjectChoice()
    if "/" in spoken or spoken.startswith("~"):
        return ProjectChoice(spoken)  # a path, not a name: the task manager checks it
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if root.is_dir() else []
    wanted = _normal(re.sub(r"\b(my|the|project|folder|repo)\b", " ", spoken.lower()))
    exact = [n for n in names if _normal(n) == wanted]
    if exact:
        return ProjectChoice(exact[0], f"your {exact[0]} project")
    if create:
        folder = re.sub(r"[^a-z0-9]+", "-", spoken.lower()).strip("-") or "project"
        return ProjectChoice(folder, f"a new {folder} project")
    close = [n for n in names if wanted and (wanted in _normal(n) or _normal(n) in wanted)]
    if not close:
        normals = {_normal(n): n for n in names}
        close = [normals[m] for m in difflib.get_close_matches(wanted, list(normals), n=3, cutoff=0.75)]
    if len(close) == 1:
        return ProjectChoice(close[0], f"your {close[0]} project")
    if len(close) > 1:
        options = ", ".join(close[:-1]) + f" or {close[-1]}"
        return ProjectChoice(question=f"I have several projects like that: {options}. Which one, sir?")
    return ProjectChoice(question=f"I don't see a project called {spoken}. Shall I create it?")


class InterSessionAgent:
    """Answers about tasks from any call: status, lists, confirmation codes."""

    def __init__(self, tasks: TaskManager, session_id: str | None = None):
        self.tasks = tasks
        self.session_id = session_id

    def resolve_task_id(self, spoken: str | None) -> str:
        """The task a spoken id means: exact, else the unique recent task it is a prefix of or one slip from."""
        if spoken is None or not str(spoken).strip():
            latest = (self.session_id and self.tasks.latest_id(self.session_id)) or self.tasks.latest_id()
            if latest is None:
                raise TaskNotFound("There are no tasks yet.")
            return latest
        wanted = spoken_task_id(spoken)
        if not wanted:
            raise TaskNotFound(f"I couldn't make out a task id in {spoken}.")
        recent = [s.task_id for s in self.tasks.list(limit=10, session_id=self.session_id)] if self.session_id \
            else []
        recent += [s.task_id for s in self.tasks.list(limit=20) if s.task_id not in recent]
        if wanted in recent:
            return wanted
        for candidates in ([r for r in recent if r.startswith(wanted) or wanted in r],
                           [r for r in recent if _one_slip(wanted, r)]):
            if len(candidates) == 1:
                return candidates[0]
            if len(candidates) > 1:
                raise TaskNotFound(f"{wanted} matches several tasks: {', '.join(candidates[:3])}. Which one?")
        return wanted  # let the task manager say there is no such task

    def check_coding_progress(self, task_id: str | None = None) -> str:
        try:
            return spoken_status(self.tasks.status(self.resolve_task_id(task_id)))
        except TarsError as exc:
            return str(exc)

    def list_coding_tasks(self, limit: int = 5) -> str:
        rows = self.tasks.list(limit=max(1, min(int(limit or 5), 10)))
        if not rows:
            return "There are no tasks yet."
        return " ".join(spoken_status(s) for s in rows)

    def submit_background_confirmation(self, task_id: str | None, confirmation_code: str) -> str:
        code = spoken_digits(confirmation_code)
        try:
            resolved = self.resolve_task_id(task_id)
            self.tasks.confirm(resolved, code)
        except CodeRejected as exc:
            return str(exc).replace("Code rejected", "That code was rejected")
        except (NotAwaitingConfirmation, TaskNotActive) as exc:
            return str(exc)
        except TarsError as exc:
            return str(exc)
        return f"Confirmation code received for task {resolved}, sir."


class ProgrammerAgent(InterSessionAgent):
    """Starts and stops background programming tasks for one caller (session)."""

    def __init__(self, tasks: TaskManager, session_id: str | None = None, settings: Settings | None = None):
        super().__init__(tasks, session_id)
        self.settings = settings or tasks.settings

    def start_autonomous_coding(self, goal: str, project_path: str | None = None,
                                verbose_updates: bool | None = None, create_new_project: bool = False) -> str:
        choice = match_project(self.settings.PROJECTS_ROOT, project_path or "", create=create_new_project)
        if choice.question:
            return choice.question
        try:
            task_id = self.tasks.start(goal, choice.path, verbose_updates=verbose_updates,
                                       session_id=self.session_id)
        except TarsError as exc:
            return str(exc)
        where = f" in {choice.said}" if choice.said else ""
        return f"Started task {task_id}{where} in background, sir. I'll send updates to Discord."

    def cancel_coding_task(self, task_id: str) -> str:
        try:
            status = self.tasks.cancel(self.resolve_task_id(task_id))
        except TarsError as exc:
            return str(exc)
        return f"Task {status.task_id} {SPOKEN_STATUS[status.status]}."

    # --- the task's branch ---------------------------------------------------------
    def rollback_coding_task(self, task_id: str | None, checkpoint: int | None = None) -> str:
        try:
            resolved = self.resolve_task_id(task_id)
            point = self.tasks.rollback(resolved, checkpoint)
        except TarsError as exc:
            return str(exc)
        if point.number == 0:
            return f"Task {resolved} is rolled back to before it started, sir."
        return f"Task {resolved} is rolled back to checkpoint {point.number}: {point.message.rstrip('.')}."

    def merge_coding_task(self, task_id: str | None) -> str:
        try:
            return self.tasks.merge(self.resolve_task_id(task_id)).message
        except TarsError as exc:
            return str(exc)

    def discard_coding_task(self, task_id: str | None, confirmed: bool = False) -> str:
        try:
            resolved = self.resolve_task_id(task_id)
            if not confirmed:  # a misheard word must not throw work away: the owner says yes first
                self.tasks.task_checkout(resolved, "discard it")
                return f"Discarding task {resolved} deletes its branch and all its work for good. Shall I, sir?"
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


VOICE_TOOLS = [
    {"name": "start_autonomous_coding",
     "description": "Start a background programming task: a worker runs Claude on a project until the goal is met, "
                    "with progress on Discord. Use when the owner asks to build, write, fix or test code.",
     "input_schema": {"type": "object", "properties": {
         "goal": {"type": "string", "description": "what to build or fix, in the owner's words"},
         "project_path": {"type": "string", "description": "the project named ('my calculator project' -> "
                                                           "'calculator'); omit for the default project"},
         "verbose_updates": {"type": "boolean", "description": "false when the owner wants minimal/quiet "
                                                               "updates, true for every action; omit otherwise"},
         "create_new_project": {"type": "boolean", "description": "true only after the owner agreed to create "
                                                                  "a project that does not exist yet"}},
         "required": ["goal"]}},
    {"name": "check_coding_progress",
     "description": "How a background task is going. Without task_id: the latest task.",
     "input_schema": {"type": "object", "properties": {
         "task_id": {"type": "string", "description": "the task id as heard, even partial"}}}},
    {"name": "cancel_coding_task",
     "description": "Cancel a background task.",
     "input_schema": {"type": "object", "properties": {"task_id": {"type": "string"}}, "required": ["task_id"]}},
    {"name": "submit_background_confirmation",
     "description": "Give the owner's confirmation code to a task waiting for it (before a destructive command). "
                    "Pass the code exactly as spoken; words like 'six two' are fine.",
     "input_schema": {"type": "object", "properties": {
         "task_id": {"type": "string", "description": "the waiting task; omit for the one that just asked"},
         "confirmation_code": {"type": "string"}}, "required": ["confirmation_code"]}},
    {"name": "rollback_coding_task",
     "description": "Undo work of an ended background task: reset its branch and files to an earlier checkpoint. "
                    "Without checkpoint: undo the last step. Checkpoint 0 is the state before the task.",
     "input_schema": {"type": "object", "properties": {
         "task_id": {"type": "string", "description": "the task id as heard; omit for the latest task"},
         "checkpoint": {"type": "integer", "minimum": 0, "description": "the checkpoint number to go back to"}}}},
    {"name": "merge_coding_task",
     "description": "Merge an ended task's branch into the branch it started from (the owner's project).",
     "input_schema": {"type": "object", "properties": {
         "task_id": {"type": "string", "description": "the task id as heard; omit for the latest task"}}}},
    {"name": "discard_coding_task",
     "description": "Throw an ended task's work away (its checkout and branch). Call first without confirmed; "
                    "call with confirmed=true only after the owner said yes to the question it returns.",
     "input_schema": {"type": "object", "properties": {
         "task_id": {"type": "string", "description": "the task id as heard; omit for the latest task"},
         "confirmed": {"type": "boolean", "description": "true only after the owner agreed to discard"}}}},
    {"name": "list_coding_tasks",
     "description": "The recent background tasks and their status.",
     "input_schema": {"type": "object", "properties": {"limit": {"type": "integer", "minimum": 1,
                                                                 "maximum": 10}}}},
]

VOICE_SYSTEM_PROMPT = """You are TARS, the owner's assistant, speaking on the phone. Everything you write is \
read aloud by text-to-speech.
- Answer in one to three short spoken sentences. No markdown, no lists, no code, no URLs, no emoji.
- Say task ids character by character as they are written, e.g. "a7f3c1".
- Programming work goes to background tasks: call start_autonomous_coding and tell the owner the task id. \
Never write code in the conversation.
- For anything else (the weather, a question, small talk) just answer; you cannot look things up.
- When a task is waiting for a confirmation code and the owner says a code, call \
submit_background_confirmation with it.
- Every task works on its own branch. The owner can have an ended task merged, rolled back to a checkpoint \
or discarded; discarding needs the owner's yes first.
Call the owner "sir" now and then, dry wit allowed."""


class VoiceFunctions:
    """The tools of one call, dispatched by name; every answer is a sentence, never an exception."""

    def __init__(self, tasks: TaskManager, settings: Settings, session_id: str | None = None):
        self.programmer = ProgrammerAgent(tasks, session_id, settings)
        self.pending_confirmation: str | None = None  # the task whose code request was just spoken

    def call(self, name: str, arguments: dict) -> str:
        args = dict(arguments or {})
        agent = self.programmer
        try:
            if name == "start_autonomous_coding":
                return agent.start_autonomous_coding(str(args.get("goal", "")), args.get("project_path"),
                                                     _bool(args.get("verbose_updates")),
                                                     bool(args.get("create_new_project")))
            if name == "check_coding_progress":
                return agent.check_coding_progress(args.get("task_id"))
            if name == "cancel_coding_task":
                return agent.cancel_coding_task(str(args.get("task_id", "")))
            if name == "submit_background_confirmation":
                task_id = args.get("task_id") or self.pending_confirmation
                answer = agent.submit_background_confirmation(task_id, str(args.get("confirmation_code", "")))
                if answer.startswith("Confirmation code received"):
                    self.pending_confirmation = None
                return answer
            if name == "rollback_coding_task":
                point = args.get("checkpoint")
                return agent.rollback_coding_task(args.get("task_id"), None if point is None else int(point))
            if name == "merge_coding_task":
                return agent.merge_coding_task(args.get("task_id"))
            if name == "discard_coding_task":
                return agent.discard_coding_task(args.get("task_id"), _bool(args.get("confirmed")) is True)
            if name == "list_coding_tasks":
                return agent.list_coding_tasks(args.get("limit") or 5)
        except (TarsError, ValueError, TypeError) as exc:
            return str(exc) or "That did not work, sir."
        return f"I don't have a function called {name}."


def _bool(value) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "yes", "1")
