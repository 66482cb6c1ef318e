"""The worker's progress channel: core's task events → n8n / Discord through a Notifier.

start_worker.py registers `sink_factory(settings)` in core.background_worker.EVENT_SINKS, so
core never imports a vendor format. One Notifier per task lives in the work-horse process
(created after the fork) and is flushed, within a bound, when the task ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from communication.notifier import Notifier, ProgressEvent, should_send
from core.config import Settings

if TYPE_CHECKING:
    from core.background_worker import TaskContext

CLOSE_TIMEOUT_SECONDS = 5.0
SKIPPED = {"progress"}  # meta-only updates (the progress sentence); the owner hears phases and actions instead


class TaskProgress:
    def __init__(self, ctx: "TaskContext", settings: Settings):
        self.ctx = ctx
        self.notifier = Notifier(n8n_url=settings.secret("N8N_WEBHOOK_URL"),
                                 discord_url=settings.secret("DISCORD_WEBHOOK_URL"),
                                 signing_secret=settings.secret("WEBHOOK_SIGNING_SECRET"),
                                 secret_values=settings.secret_values(), n8n_headers=n8n_headers(settings))

    def __call__(self, kind: str, message: str, **data) -> None:
        if kind in SKIPPED or not should_send(kind, self.ctx.verbose):
            return
        extra = {k: v for k, v in data.items() if k not in ("phase", "command", "reason")}
        self.notifier.send(ProgressEvent(task_id=self.ctx.task_id, type=kind, message=message,
                                         phase=data.get("phase") or self.ctx.meta.get("phase", ""),
                                         goal=self.ctx.goal, command=data.get("command"),
                                         reason=data.get("reason"), data=extra))

    def close(self) -> None:
        self.notifier.close(timeout=CLOSE_TIMEOUT_SECONDS)


def n8n_headers(settings: Settings) -> dict[str, str]:
    """The shared secret n8n's Header Auth credential checks (the same header n8n sends back to TARS)."""
    shared = settings.secret("WEBHOOK_SECRET")
    return {"X-TARS-Webhook-Secret": shared} if shared else {}


def sink_factory(settings: Settings):
    return lambda ctx: TaskProgress(ctx, settings)
