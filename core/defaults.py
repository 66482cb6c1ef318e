"""TARS's fixed defaults, one docstring each (as rq.defaults).

Things a user tunes live in core/config.py (Settings); these are the constants the
code agrees on and that users need not change.
"""

QUEUE_NAME = "tars_programming"
"""The RQ queue tasks go onto; `LLEN rq:queue:tars_programming` shows the backlog."""


def capability_queue_name(capability: str) -> str:
    """The RQ queue of the subtasks that need `capability` (core/capabilities.py): tars_programming:<capability>. A
    worker started with `--capabilities` serves one per capability beside QUEUE_NAME."""
    return f"{QUEUE_NAME}:{capability}"


TASK_ID_BYTES = 3
"""Random bytes in a task id: 3 bytes give 6 lowercase hex characters, short enough to say."""

GOAL_MAX_CHARS = 2000
"""Longest goal accepted, after trimming."""

RESULT_TTL_SECONDS = 7 * 24 * 3600
"""How long a finished task's job, result and keys stay in Redis for status and list."""

RECENT_TASKS_KEPT = 500
"""Tasks kept in the recent-tasks index; older ones drop off `task list`."""

JOB_TIMEOUT_MARGIN_SECONDS = 120
"""Added to runtime + confirmation wait for RQ's hard job timeout, which only backs up the loop's own limits."""

CANCEL_GRACE_SECONDS = 5.0
"""How long cancel waits for the loop to stop by itself before RQ's stop-job command kills the work-horse."""

MODEL_MAX_TOKENS = 8192
"""max_tokens of each coding-loop model call."""

STUCK_REPEATS = 3
"""Identical action + identical result this many times in a row ends the task as stuck."""

TEST_OUTPUT_TO_MODEL = 6000
"""Characters of a failed test run given back to the model in the fixing phase."""

WORKER_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""Log line format of the worker and server; every task line also carries [task <id>]."""

CONFIRMATION_ATTEMPTS = 5
"""Wrong codes allowed for one confirmation request before it is denied."""

CODE_TTL_SECONDS = 60
"""How long a submitted confirmation code waits in task:<id>:confirmation for the worker to consume it."""

CALL_TTL_SECONDS = 90
"""An active call's registry entry expires this long after the relay last refreshed it (a crashed server's
calls disappear by themselves)."""

CALL_REFRESH_SECONDS = 30
"""How often the relay refreshes its call's registry entry."""

WORKER_ALIVE_TTL_SECONDS = 15
"""A worker's liveness hash (tars:worker:<name>) expires this long after its last refresh: then it is dead."""

WORKER_ALIVE_REFRESH_SECONDS = 5
"""How often a worker refreshes its liveness hash (from a thread, so a long task never starves it)."""

PAUSE_CHECK_SECONDS = 1.0
"""A paused worker or task reads its pause keys this often besides being woken by a resume (a publish can be lost),
and notices a cancel or a stop request as often."""

REAPER_INTERVAL_SECONDS = 10
"""How often the reaper leader looks for running tasks whose worker is dead (owner told within ~30 s)."""

REAPER_LEASE_SECONDS = 30
"""Leadership of the reaper (tars:reaper:leader) lasts this long unless its holder renews it."""

FINISHER_WORKER_DEATHS = 2
"""A plan's finishing job (it tests the merged branch) whose worker died runs again until this many of its workers
died; then the reaper ends the planned task failed (`task retry` of the plan tests it again)."""

REDIS_OUTAGE_RETRY_SECONDS = 30
"""How long a command keeps retrying while Redis is away (a restart) before it fails with ConnectionError."""

GIT_TIMEOUT_SECONDS = 60.0
"""A local git command (commit, worktree add, merge) taking longer than this is stopped: the disk or a lock is stuck."""

PLAN_LOCK_SECONDS = 240.0
"""How long a subtask may hold its plan's lock (task:<id>:plan:lock) while it merges into the plan's branch or forks
its own branch from it: a few git commands, each bounded by GIT_TIMEOUT_SECONDS; another subtask waits up to as long
for it."""

GIT_NETWORK_TIMEOUT_SECONDS = 300.0
"""Clone, fetch and push talk to a server; they get this long before they are stopped."""

WORKTREE_RETENTION_DAYS = 7
"""A finished task's worktree is removed this many days after its last checkpoint (as RESULT_TTL_SECONDS); its
branch stays in the owner's repository unless it was merged."""

CHECKOUT_CLEANUP_INTERVAL_SECONDS = 3600
"""How often a worker removes the worktrees that outlived WORKTREE_RETENTION_DAYS (and once at start-up)."""

BRANCH_PREFIX = "tars/"
"""Every task branch is tars/<task-id>; discard and cleanup only ever delete branches under this prefix."""

TESTS_PASS_MARKER = " [tests pass]"
"""Suffix of a checkpoint's commit subject when the project's tests passed on its files."""

EVENT_LOG_MAX_EVENTS = 2000
"""Events kept in a task's stream (task:<id>:events); older ones are trimmed. A 15-minute task sends a few hundred."""

SERVER_SHUTDOWN_GRACE_SECONDS = 5
"""On Ctrl+C/SIGTERM the server waits this long for open connections (dashboard streams, calls) before closing them."""

STUCK_DONE_REPEATS = 3
"""The model saying it is done this many times in a row while the worker's test run fails with the same output each
time ends the task as stuck (failed): its fixes are not reaching the failure."""

PROJECT_ENV_TIMEOUT_SECONDS = 300.0
"""Longest a task may spend making its Python environment (core/project_env.py); at most half the task's runtime,
which it counts against. Past it, the task runs on the system's Python and the owner is told why."""

PROJECT_ENV_STALE_SECONDS = 24 * 3600
"""A virtualenv made for a task is removed when the task ends; one left by a killed work-horse is removed by a later
task once it is this old (or twice the longest a task may run, if that is longer)."""

DISCORD_LEASE_SECONDS = 15.0
"""The server holding the Discord bot's gateway connection (tars:discord:gateway) holds it this long unless it renews
it: a server that died is replaced within this, plus DISCORD_LEASE_CHECK_SECONDS."""

DISCORD_LEASE_CHECK_SECONDS = 5.0
"""How often the holder renews the Discord gateway lease, and a server on standby tries to take it."""

DISCORD_RETRY_SECONDS = 60.0
"""After Discord refused the bot (bad token, the Message Content intent off) or could not be reached, the server gives
the lease up and tries again this much later; another server may try meanwhile."""

# --- automatic retries and the syntax check (issue 17) -----------------------------------------------------------

RETRY_BACKOFF_MAX_SECONDS = 3600
"""The longest wait before an automatic retry, however many attempts came before (TASK_RETRY_BACKOFF_SECONDS doubles
with each attempt up to this)."""

SYNTAX_CHECK_MAX_FILES = 100
"""The most changed files the syntax check before the tests reads (core/syntax_check.py); the rest are left to the
tests."""

SYNTAX_CHECK_MAX_BYTES = 2 * 1024 * 1024
"""A changed file bigger than this is not checked for syntax (generated or data files: the tests will tell)."""
HISTORY_GOAL_CHARS = 120
"""Characters of a task's goal kept in its history summary (core/history.py)."""

REPORT_FAILURE_GROUPS = 10
"""The report lists this many of the most common failure reasons (similar reasons grouped)."""

SPEND_KEPT_SECONDS = 3 * 24 * 3600
"""How long a day's spend counter (tars:spend:<day>) is kept: the daily budget only reads today's."""

DIGEST_CHECK_SECONDS = 60.0
"""How often a server checks whether the weekly digest (REPORT_DIGEST_CRON) is due."""

DIGEST_LATE_SECONDS = 24 * 3600
"""A digest whose time came while no server ran is still sent this long after; an older one is skipped."""

DIGEST_LOCK_SECONDS = 300
"""How long a server's claim to send the digest lasts: one that dies while sending lets another try after it."""

TASK_FILE_LOCK_SECONDS = 30
"""How long one reader of the tasks file (core/task_file.py) may hold keys.TASK_FILE_LOCK; a reader that died lets
the next one in after it."""

TASK_FILE_DEBOUNCE_MS = 300
"""The tasks file is read once the changes to it paused this long (an editor's save is several writes)."""

TASK_FILE_RECHECK_SECONDS = 5.0
"""Besides its change events, the watcher looks at the tasks file's size and time this often and reads it again when
they differ from its last reading."""

OWNER_CALL_RING_SECONDS = 30
"""How long a call TARS places to the owner rings before Twilio reports it unanswered (then TARS texts)."""

PHONE_RECORD_TTL_SECONDS = 86400
"""How long TARS remembers a call or text it sent the owner (what the call was about, which request a text asked)."""

REMINDER_POLL_SECONDS = 30.0
"""The server looks for due reminders at least this often (a reminder set on its own calls wakes it at once)."""
