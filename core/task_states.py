"""The one vocabulary of a task's life: its statuses, how its loop ends (outcomes), its phases, its event kinds, and
the mappings between them. Every other module imports these names; the dashboard gets them from the server.

- A *status* is what the owner asks about: queued (or scheduled: waiting for its start time), running,
  awaiting_confirmation or paused while it is active, then how it ended. The ended statuses are the *outcomes*: complete, failed, timeout, cancelled.
- A *phase* is what the worker records as it goes (planning, coding, testing, fixing) and, at the end, the phase of
  the outcome (ENDING_PHASE). A failed task's phase is "error", the name the original TARS's n8n workflow keys on.
- A *priority* (high, normal, low) says which of its queues a task waits on: workers take high ones first.
- An *event* is one line of the task's timeline (core/event_log.py); the kind of a task's last event is its ending
  phase (ENDING_KINDS).
"""
from __future__ import annotations

QUEUED, RUNNING, AWAITING_CONFIRMATION = "queued", "running", "awaiting_confirmation"
PAUSED = "paused"
"""A started task the owner paused, on its own or with every worker (core/pause.py): it waits at its next step."""
COMPLETE, FAILED, TIMEOUT, CANCELLED = "complete", "failed", "timeout", "cancelled"
SCHEDULED = "scheduled"  # started for later (core/schedules.py): RQ's scheduler queues it at its time

ACTIVE = (QUEUED, SCHEDULED, RUNNING, AWAITING_CONFIRMATION, PAUSED)
"""The statuses of a task that has not ended."""
OUTCOMES = (COMPLETE, FAILED, TIMEOUT, CANCELLED)
"""How a task ends; also its status from then on."""
STATUSES = ACTIVE + OUTCOMES

HIGH, NORMAL, LOW = "high", "normal", "low"
PRIORITIES = (HIGH, NORMAL, LOW)
"""A task's priorities, in the order workers take them (each its own queue, core/capabilities.queue_name)."""

WORKING_PHASES = (QUEUED, "planning", "coding", "testing", "fixing")
"""The phases of an active task, in the order a task usually goes through them."""
ENDING_PHASE = {COMPLETE: "complete", FAILED: "error", TIMEOUT: "timeout", CANCELLED: "cancelled"}
"""An outcome's phase, which is also the kind of the event that ends the timeline."""
OUTCOME_OF_PHASE = {phase: outcome for outcome, phase in ENDING_PHASE.items()}
"""The outcome an ending phase stands for (a worker that records the phase before RQ records the end)."""
ENDING_KINDS = frozenset(ENDING_PHASE.values())
"""Event kinds (and phases) that end a task."""

LABEL = {COMPLETE: "Complete", FAILED: "Failed", TIMEOUT: "Timed out", CANCELLED: "Cancelled"}
"""An outcome as a heading ("Failed: the tests do not pass")."""
VERB = {COMPLETE: "complete", FAILED: "failed", TIMEOUT: "timed out", CANCELLED: "cancelled"}
"""An outcome inside a sentence ("Task a7f3 timed out")."""

CONFIRMATION_REQUIRED = "confirmation_required"
CONFIRMATION_KINDS = (CONFIRMATION_REQUIRED, "confirmation_received", "confirmation_refused")
"""The events of a destructive command's confirmation: asked, given, refused."""
PAUSE_KINDS = ("paused", "resumed")
"""A task held at a step boundary by the owner's pause (core/pause.py), and going on again."""
PLAN_KINDS = ("plan", "plan_fallback", "subtask")
"""A planned task's events (core/plan_jobs.py): its plan, shown before work starts; why the goal runs as one task
instead; a subtask merged, conflicting, failed or retried."""
RETRYING = "retrying"
"""Something transient ended an attempt and the task will run again by itself (core/retries.py): attempt n of N, and
when. Not an ending: the task stays queued meanwhile."""
MODEL_FALLBACK = "model_fallback"
"""The model serving a task (or its planner) was unavailable and the next of its list took over (core/model.py)."""
CONTEXT_CLEARED = "context"
"""Older tool output was cleared to fit the serving model's context window (core/context.py)."""
HELD = "held"
"""The event of a task the daily budget holds (queued, not started) until the next day or a raised budget."""
EVENT_KINDS = (QUEUED, HELD, "started", "workspace", "planning", *PLAN_KINDS, "file_edit", "command", "command_result",
               MODEL_FALLBACK, CONTEXT_CLEARED, "checkpoint", "checkpoint_failed", "phase", "progress",
               *CONFIRMATION_KINDS, *PAUSE_KINDS, RETRYING,
               *ENDING_PHASE.values())
"""Every kind of event TARS records, in the order a task meets them."""


def outcome_of(phase: str | None) -> str | None:
    """The outcome an ending phase stands for; None while the task is working."""
    return OUTCOME_OF_PHASE.get(phase or "")


def duration_text(seconds: float) -> str:
    """A task's time as the owner reads it (`task status`, the Discord status message): '0.7 s', '42 s', '3m05s'."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s"


def usd(amount: float) -> str:
    """An amount of dollars as the owner reads it: '$20.00', '$0.50', '$0.0042' (small amounts keep their digits)."""
    if amount == 0 or amount >= 0.01 and round(amount, 2) == round(amount, 6):
        return f"${amount:,.2f}"
    return f"${amount:.4g}" if amount < 1 else f"${amount:,.4f}".rstrip("0")


def cost_text(amount: float | None, unknown: bool = False) -> str:
    """A task's estimated cost as the owner reads it; a model whose price is unknown makes it '$0.42 + unknown' (or
    'unknown' alone), never a confident figure."""
    if unknown:
        return f"{usd(amount)} + unknown" if amount else "unknown"
    return usd(amount or 0.0)


def models_text(models: dict | None) -> str:
    """The models that served a task and their turns: 'openai:gpt-5.1 (7 turns), anthropic:claude-sonnet-5-5 (2)'."""
    ordered = sorted((models or {}).items(), key=lambda item: -item[1])
    return ", ".join(f"{name} ({turns}{' turns' if i == 0 else ''})" for i, (name, turns) in enumerate(ordered))


def vocabulary() -> dict:
    """What the dashboard's page needs of these names (served with the page, so app.js keeps no copy)."""
    return {"active": list(ACTIVE), "awaiting_confirmation": AWAITING_CONFIRMATION, "paused": PAUSED,
            "outcomes": list(OUTCOMES), "event_kinds": list(EVENT_KINDS), "ending_kinds": sorted(ENDING_KINDS),
            "priorities": list(PRIORITIES), "normal_priority": NORMAL}
