"""The functions the voice brain (Claude in conversation) may call, answered in spoken style.

Each function calls the task manager and returns one short sentence written to be heard,
never a traceback: a TarsError's message is already such a sentence.
"""

from __future__ import annotations

from core.exceptions import TarsError
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


class ProgrammerAgent:
    """Starts and manages background programming tasks for one caller (session)."""

    def __init__(self, tasks: TaskManager, session_id: str | None = None):
        self.tasks = tasks
        self.session_id = session_id

    def start_autonomous_coding(self, goal: str, project_path: str | None = None,
                                verbose_updates: bool | None = None) -> str:
        try:
            task_id = self.tasks.start(goal, project_path, verbose_updates=verbose_updates,
                                       session_id=self.session_id)
        except TarsError as exc:
            return str(exc)
        return f"Started task {task_id} in background, sir. I'll send updates to Discord."

    def check_coding_progress(self, task_id: str | None = None) -> str:
        try:
            if task_id is None:
                task_id = self.tasks.latest_id(self.session_id) or self.tasks.latest_id()
            return spoken_status(self.tasks.status(task_id))
        except TarsError as exc:
            return str(exc)

    def cancel_coding_task(self, task_id: str) -> str:
        try:
            status = self.tasks.cancel(task_id)
        except TarsError as exc:
            return str(exc)
        return f"Task {status.task_id} {SPOKEN_STATUS[status.status]}."

    def list_coding_tasks(self, limit: int = 5) -> str:
        rows = self.tasks.list(limit=limit)
        if not rows:
            return "There are no tasks yet."
        return " ".join(spoken_status(s) for s in rows)
