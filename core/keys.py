"""Every Redis key TARS owns, built in one place (RQ's own keys stay RQ's).

Users inspect these with redis-cli, so the names follow the original TARS docs:
per-task data lives under `task:<id>:...`; the queue itself is RQ's
`rq:queue:tars_programming`.
"""

import hashlib

from core.defaults import QUEUE_NAME, capability_queue_name

RQ_QUEUE = f"rq:queue:{QUEUE_NAME}"
"""RQ's list for the queue (read-only for TARS; shown for redis-cli users)."""


def rq_capability_queue(capability: str) -> str:
    """RQ's list for the queue of the subtasks that need `capability` (read-only for TARS; for redis-cli users)."""
    return rq_queue(capability_queue_name(capability))


def rq_queue(queue_name: str) -> str:
    """RQ's list for any TARS queue (core/capabilities.queue_name: rq:queue:tars_programming:high holds the high
    priority tasks waiting; read-only for TARS; for redis-cli users)."""
    return f"rq:queue:{queue_name}"


def rq_scheduled(queue_name: str) -> str:
    """RQ's sorted set of the tasks scheduled on a queue for later (core/schedules.py), scored by their start time
    (Unix seconds); RQ's scheduler in a worker moves each to the queue at its time (read-only for TARS)."""
    return f"rq:scheduled:{queue_name}"


RECENT_TASKS = "tars:tasks"
"""Sorted set of task ids scored by creation time: `task list` and 'the latest task'."""


def call_tasks(call_sid: str) -> str:
    """Sorted set of the tasks one phone call started (the key's "session" is that call)."""
    return f"tars:session:{call_sid}:tasks"


def task_cancel(task_id: str) -> str:
    """Set (to the time asked) when someone asks the task to stop; the loop checks it."""
    return f"task:{task_id}:cancel"


def task_control(task_id: str) -> str:
    """Pub/sub channel the running task listens on, so a cancel reaches it at once."""
    return f"task:{task_id}:control"


def task_finished(task_id: str) -> str:
    """A one-element list pushed when the task ends: a latch others wait on with BLMOVE."""
    return f"task:{task_id}:finished"


def task_confirmation(task_id: str) -> str:
    """The confirmation code given for the task's pending request (`GET task:<id>:confirmation`)."""
    return f"task:{task_id}:confirmation"


def task_confirmation_request(task_id: str) -> str:
    """Hash of the confirmation request pending now: request_id, command, reason, attempts_left."""
    return f"task:{task_id}:confirmation:request"


def task_confirmation_wake(task_id: str) -> str:
    """List the waiting worker BLPOPs: 'approved:<request_id>', 'denied:<request_id>' or 'cancel'."""
    return f"task:{task_id}:confirmation:wake"


ACTIVE_CALLS = "tars:calls:active"
"""Sorted set of CallSids on the line now, scored by the time their TTL runs out."""


def call(call_sid: str) -> str:
    """Hash of one call on the line (core/session_manager.py): caller, session_id (the call sid again), started_at;
    expires unless the relay refreshes it."""
    return f"tars:call:{call_sid}"


TASK_EVENTS_CHANNEL = "tars:task-events"
"""Pub/sub wake-up: a task's timeline (task_events) just grew ({"task_id", "type"}); readers read the event there."""


REAPER_LEADER = "tars:reaper:leader"
"""The name of the worker that runs the reaper now (a lease with a TTL, renewed by its holder)."""


def worker_alive(worker_name: str) -> str:
    """Hash of a live worker (host, pid, horse_pid, task_id, capabilities: comma-separated); expires when the worker stops refreshing it."""
    return f"tars:worker:{worker_name}"


def task_events(task_id: str) -> str:
    """Stream of every progress event of the task, oldest first (`XRANGE task:<id>:events - +`); capped, and it
    expires with the task's data."""
    return f"task:{task_id}:events"


def task_delivered(task_id: str) -> str:
    """Hash of how far each progress endpoint (n8n, discord, discord_bot; log when none is set) got in the task's
    events: the last stream id it answered 2xx (or refused for good). Expires with the task's data."""
    return f"task:{task_id}:delivered"


def task_delivery_lease(task_id: str) -> str:
    """Which delivery reader (communication/delivery.py) delivers the task's events now: a lease with a TTL,
    renewed by its holder, so one reader at a time sends them and each endpoint gets them in order."""
    return f"task:{task_id}:delivering"


UNDELIVERED_TASKS = "tars:delivery:pending"
"""Set of task ids whose events are not all delivered yet: added by every append to a task's events, removed once
every endpoint has its ending (or the events expired). A reader started after a crash finds its work here."""


WORKERS_PAUSED = "tars:workers:paused"
"""Set (to the time asked) while the owner has paused every worker (`workers pause`): no worker takes a new task and
running tasks wait at their next step. It has no expiry: it lasts until `workers resume`, through restarts."""


def task_pause(task_id: str) -> str:
    """Set (to the time asked) while the owner has paused this task on its own (`task pause`; a planned task's holds
    its subtasks too); expires with the task's data."""
    return f"task:{task_id}:pause"


PAUSE_CHANNEL = "tars:pause"
"""Pub/sub wake-up: a pause or resume was just asked; paused workers and tasks read their pause keys again at once."""


def task_retrying(task_id: str) -> str:
    """Set (NX, 60 s TTL) while `task retry` runs a plan or a subtask again in place, so two retries at once run it
    once; deleted when that retry has queued it."""
    return f"task:{task_id}:retrying"


def task_reaped(task_id: str) -> str:
    """Set once when the reaper or the worker recorded the end of a task its work-horse could not record."""
    return f"task:{task_id}:reaped"


def webhook_seen(webhook_id: str) -> str:
    """Set when a signed webhook id was accepted: a replay of the same request within the window is refused."""
    return f"tars:webhook-seen:{webhook_id}"


def dashboard_login(token: str) -> str:
    """Hash of one logged-in dashboard browser (csrf, created_at, ip), expiring after 12 h. The cookie's token is
    stored only as its SHA-256, so reading Redis (redis-cli KEYS) does not hand out logins."""
    return f"tars:dashboard:session:{hashlib.sha256(token.encode()).hexdigest()}"


def dashboard_login_failures(address: str) -> str:
    """Counter of the dashboard login attempts from one client address in the current window (expires with it)."""
    return f"tars:dashboard:login-failures:{address[:100]}"


DISCORD_GATEWAY_LEASE = "tars:discord:gateway"
"""Which server holds the Discord bot's gateway connection now (a lease with a TTL, renewed by its holder): with
several servers running, one reads the channel and answers."""


def discord_message(message_id: int | str) -> str:
    """Hash of what one message TARS posted in the Discord channel is about (task_id; kind: status, confirmation or
    ending; request_id for a confirmation), so a reply to it finds its task; expires with the task's data."""
    return f"tars:discord:message:{message_id}"


def task_discord_status(task_id: str) -> str:
    """Hash of the task's one status message in the Discord channel (message_id; started_at; event, the stream id of
    the update it shows; said, its first line), edited in place as the task goes on; expires with the task's data."""
    return f"task:{task_id}:discord"


def task_plan(task_id: str) -> str:
    """JSON of a planned task's plan (core/plans.py): its subtasks (key, title, goal, depends_on, capability,
    task_id), the finishing job's id and any integration or fix-up subtask added later; expires with the task."""
    return f"task:{task_id}:plan"


def task_plan_lock(task_id: str) -> str:
    """A lock (redis-py's Lock) held while a subtask merges into the planned task's branch or the plan changes, so
    two finishing subtasks never merge at once."""
    return f"task:{task_id}:plan:lock"


def task_plan_blocked(task_id: str) -> str:
    """Set while a planned task is blocked (a subtask failed and nothing else of the plan can go on) once its timeline
    said so, so it says it once; a subtask's retry clears it."""
    return f"task:{task_id}:plan:blocked"


PLANS_AWAITING_APPROVAL = "tars:plans:awaiting-approval"
"""Sorted set of the planned tasks waiting for the owner to approve their plan (PLAN_APPROVAL=on), scored by when
their confirmation request times out; the reaper ends those past it as not approved."""


# --- budgets and the report (core/budget.py, core/history.py, communication/digest.py) ---------------------------
HISTORY = "tars:history"
"""Sorted set of the ended tasks' ids scored by their end time: the report's index (core/history.py), kept for
HISTORY_DAYS after the task's own data expired, then trimmed."""


def history_task(task_id: str) -> str:
    """Hash of one ended task's summary (goal, project, outcome, reason, started_at, ended_at, duration, tokens, cost,
    model, iterations, model_seconds): the report's record of it, trimmed with HISTORY."""
    return f"tars:history:{task_id}"


def spend(day: str) -> str:
    """The estimated USD every task spent on one day of the owner's local calendar (YYYY-MM-DD), added to after each
    model answer: what DAILY_BUDGET_USD is compared with."""
    return f"tars:spend:{day}"


DAILY_BUDGET = "tars:budget:daily"
"""The owner's runtime override of DAILY_BUDGET_USD (`python main_tars.py budget set 20`; "none": no budget);
absent: the setting counts."""

BUDGET_GATE = "tars:budget:gate"
"""The id of the job the tasks held by the daily budget wait on (RQ's depends_on); releasing them enqueues it."""

DIGEST_SENT = "tars:report:digest"
"""The scheduled time (ISO) of the latest weekly digest period handled (sent, or skipped as too late)."""

DIGEST_LOCK = "tars:report:digest:lock"
"""Held by the one server sending the digest now (SET NX with a TTL), so that several servers send it once."""


def task_file_entry(identity: str) -> str:
    """A hash per tasks-file entry ever queued, by its content's identity (core/task_file.py): task_id, started (1
    once queued; 0 while its reader queues it), line, goal. Kept without expiry: the same entry never runs twice."""
    return f"tars:tasks_file:entry:{identity}"


TASK_FILE_LOCK = "tars:tasks_file:lock"
"""Held by the one reader of the tasks file queueing its entries now (several servers may watch the same file)."""


# --- the phone both ways: calls and texts to the owner (communication/owner_phone.py) ------------------------------
def phone_asked(request_id: str) -> str:
    """Set (SET NX) when TARS called or texted the owner about one confirmation request: never twice for it."""
    return f"tars:phone:asked:{request_id}"


def phone_outbound(call_sid: str) -> str:
    """Hash of a call TARS placed to the owner: to, purpose (confirm, done, reminder), task_id, request_id, text
    (what the call says; texted instead when the call is missed). Expires a day after."""
    return f"tars:phone:outbound:{call_sid}"


def phone_texted(number: str) -> str:
    """Hash of the newest request texted to an owner number (task_id, request_id): what a bare code in their SMS
    reply answers."""
    return f"tars:phone:texted:{number}"


REMINDERS = "tars:reminders"
"""Sorted set of the owner's reminder ids scored by when they are due (Unix seconds); the server calls or texts each
at its time (core/reminders.py)."""


def reminder(reminder_id: str) -> str:
    """Hash of one reminder: text, due (ISO), by (call or text), created_at, call_sid (the call that set it)."""
    return f"tars:reminder:{reminder_id}"


# --- call history (core/call_history.py) ---------------------------------------------------------------------------
CALL_HISTORY = "tars:calls:history"
"""Sorted set of the call sids of past and present calls scored by their start time; trimmed to CALL_HISTORY_DAYS."""


def call_record(call_sid: str) -> str:
    """Hash of one call's record: number, direction (inbound, outbound), purpose, started_at, ended_at. Expires
    after CALL_HISTORY_DAYS."""
    return f"tars:calls:record:{call_sid}"


def call_transcript(call_sid: str) -> str:
    """List of one call's transcript lines, oldest first, each JSON {"at", "who": caller|tars, "text"} with codes and
    secrets redacted. Expires with the call's record."""
    return f"tars:calls:transcript:{call_sid}"


# --- python main_tars.py doctor (communication/doctor.py) ----------------------------------------------------------
def doctor_probe(token: str) -> str:
    """Set for a minute by `doctor` to a random one-time token it then sends to PUBLIC_BASE_URL/health?probe=<token>:
    the server that finds (and deletes) it shares this Redis, so the public address reaches this TARS."""
    return f"tars:doctor:probe:{token}"
