"""Progress delivery: every task's events (core/event_log.py, task:<id>:events) → n8n / Discord, at least once.

A reader of the event streams, in a process of its own: start_worker.py starts `python -m communication.delivery`
beside the RQ worker, and it stops with the worker (the pipe on its stdin closes: the worker asked, or died), after
delivering what was appended and its tasks' endings (DRAIN_SECONDS at most). A killed work-horse loses no update,
since what it appended is in Redis, not in a queue of its own; and the worker's process, which forks a horse per task, runs no delivery
threads a fork could catch holding a lock (logging, httpx, ssl).

* Finding the work: every append adds its task to keys.UNDELIVERED_TASKS. The reader wakes on the append's pub/sub
  wake-up (keys.TASK_EVENTS_CHANNEL) and also reads the set every POLL_SECONDS, so a lost publish costs a second at
  most, and a reader started after a crash finds every task left half-delivered.
* One reader per task: a lease (keys.task_delivery_lease, core/redis_conn.Lease, renewed by its holder) lets the
  readers of several workers share the set; when a reader dies, another takes its tasks over once the lease runs out.
* One thread per task and endpoint (at most PARALLEL_PER_ENDPOINT POSTing to one endpoint at once) delivers the
  task's events in order (communication/notifier.py: payloads, signing, retries on 5xx / 408 / 429 and timeouts),
  so a dead endpoint never holds up the other, nor a slow one a task behind another. Its cursor, one field of
  keys.task_delivered, moves past an event only once the endpoint answered 2xx or refused it for good (logged).
  When the attempts run out, the same event is tried again RETRY_LATER_SECONDS later; meanwhile the other endpoint
  and the other tasks go on.
  A crash between a POST and its cursor resends the event with the same id (evt_<task id>_<stream id>), which
  receivers drop as a duplicate (Idempotency-Key, webhook-id).
* What is sent, as before: every event but `queued`, milestones only unless the task's updates are detailed (its
  verbose_updates, else ENABLE_DETAILED_UPDATES). No endpoint set: each update is a log line.
* The Discord bot (endpoint `discord_bot`, when DISCORD_BOT_TOKEN and DISCORD_CHANNEL_ID are set) gets no message
  per event: one status message per task, created on its first update and then edited in place (its id in
  keys.task_discord_status, so a restarted reader edits the same one). The events waiting go in one edit showing
  the newest (at most one edit per task every BOT_EDIT_SECONDS, none while Discord's rate limit lasts), so a busy
  task does not hit Discord's limits. A confirmation request and the ending are new messages as well (the phone
  notifies), each after the status message was brought up to it; each message posted is recorded
  (keys.discord_message: task_id, kind, request_id), so a reply to it finds its task. New messages carry a nonce
  derived from the event (or the task, for the status message), which Discord dedupes by: a resend after a crash
  posts nothing twice.
* Once each endpoint has the task's ending, the task leaves the set; so does a task whose events expired
  (RESULT_TTL_SECONDS). The streams are capped (EVENT_LOG_MAX_EVENTS) and the reader keeps one batch at a time, so
  an endpoint dead for days costs no growing memory.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import stat
import sys
import threading
import time
from datetime import datetime, timezone

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job

from communication.notifier import (BOT, FAILED, GONE, SENT, Notifier, ProgressEvent, bot_message_body, bot_nonce,
                                    bot_status_body, should_send)
from core import event_log, keys, plans, sandbox
from core.config import Settings, get_settings
from core.defaults import REDIS_OUTAGE_RETRY_SECONDS, RESULT_TTL_SECONDS, WORKER_LOG_FORMAT
from core.exceptions import RedisUnavailable, TarsError, TaskNotFound
from core.redis_conn import Lease, connect, private_client
from core.scrub import install_log_scrubbing
from core.task_manager import TaskManager
from core.task_states import CONFIRMATION_REQUIRED, QUEUED

log = logging.getLogger("tars.delivery")

POLL_SECONDS = 1.0  # how often the set of undelivered tasks is read, whatever the wake-ups
LEASE_SECONDS = 15.0  # a task's reader holds it this long unless renewed (each poll renews it)
RETRY_LATER_SECONDS = 30.0  # an event whose attempts ran out is tried again after this
DRAIN_SECONDS = 10.0  # at stop, how long the reader goes on delivering (and waiting for the endings of its tasks)
BATCH = 100  # events read at once per task and endpoint
PARALLEL_PER_ENDPOINT = 4  # tasks whose events go to one endpoint at the same time (each task's in order)
LANE_IDLE_SECONDS = 5.0  # a task's thread for an endpoint ends after this long with nothing to send
LOG_ONLY = "log"  # the cursor's field when neither endpoint is set (each update is a log line)
SKIPPED = {QUEUED, "progress"}  # no worker has the task yet; meta-only sentences
BOT_EDIT_SECONDS = 1.0  # the bot edits a task's status message at most this often (what arrives meanwhile: one edit)
STATUS_MESSAGE, CONFIRMATION_MESSAGE, ENDING_MESSAGE = "status", "confirmation", "ending"
"""The kinds of message the bot posts about a task (the `kind` of keys.discord_message)."""


def event_id(task_id: str, entry_id: str) -> str:
    """The id every POST of this event carries, resends too: derived from its place in the task's stream."""
    return f"evt_{task_id}_{entry_id}"


def n8n_headers(settings: Settings) -> dict[str, str]:
    """The shared secret n8n's Header Auth credential checks (the same header n8n sends back to TARS)."""
    shared = settings.secret("WEBHOOK_SECRET")
    return {"X-TARS-Webhook-Secret": shared} if shared else {}


def make_notifier(settings: Settings, **options) -> Notifier:
    return Notifier(n8n_url=settings.secret("N8N_WEBHOOK_URL"), discord_url=settings.secret("DISCORD_WEBHOOK_URL"),
                    signing_secret=settings.secret("WEBHOOK_SIGNING_SECRET"), secret_values=settings.secret_values(),
                    n8n_headers=n8n_headers(settings), bot_token=settings.secret("DISCORD_BOT_TOKEN"),
                    bot_channel=settings.DISCORD_CHANNEL_ID, bot_api_url=settings.DISCORD_API_URL, **options)


def progress_event(task_id: str, event: event_log.Event, goal: str, plan: dict | None = None) -> ProgressEvent:
    """plan: the task's place in a plan (parent, plan_key; plan_summary of a planned task), as Delivery._plan reads it."""
    data = dict(event.data)
    command, reason = data.pop("command", None), data.pop("reason", None)
    data.pop("phase", None)
    stamp = datetime.fromtimestamp(event.at, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return ProgressEvent(task_id=task_id, type=event.type, message=event.message, phase=event.phase, goal=goal,
                         timestamp=stamp, command=command, reason=reason, id=event_id(task_id, event.id), data=data,
                         **(plan or {}))


def _text(value) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class Delivery:
    """The reader: run() until stop() (or drain()); one thread per endpoint, leases renewed by run()'s thread."""

    def __init__(self, connection: redis.Redis, settings: Settings, *, notifier: Notifier | None = None,
                 name: str | None = None, poll: float = POLL_SECONDS, lease: float = LEASE_SECONDS,
                 retry_later: float = RETRY_LATER_SECONDS, drain_seconds: float = DRAIN_SECONDS):
        self.redis = connection
        self.settings = settings
        self.notifier = notifier or make_notifier(settings)
        self.name = name or f"{socket.gethostname()}.{os.getpid()}"
        self.poll, self.lease, self.retry_later, self.drain_seconds = poll, lease, retry_later, drain_seconds
        self.lanes = self.notifier.endpoints or [LOG_ONLY]
        self.stopping = threading.Event()  # set: the endpoint threads stop, waits are cut short
        self.ready = threading.Event()  # set once subscribed to the wake-ups and the first poll is done
        self._drain_for: float | None = None  # set: draining, for this many seconds once it has polled
        self._drain_by: float | None = None
        self._claiming = True  # false once a drain's first poll took what was there: a draining reader takes no more
        self._lock = threading.Lock()
        self._held: set[str] = set()  # tasks this reader holds the lease of
        self._tasks: dict[str, tuple[str, bool, dict]] = {}  # task id -> (goal, detailed updates, its plan meta)
        # One thread per task and endpoint while it has events to send (it ends after LANE_IDLE_SECONDS without);
        # at most PARALLEL_PER_ENDPOINT of them POST at once.
        self._lanes: dict[tuple[str, str], threading.Event] = {}  # (task, lane) -> its thread's wake-up
        self._threads: list[threading.Thread] = []
        self._slots = {lane: threading.BoundedSemaphore(PARALLEL_PER_ENDPOINT) for lane in self.lanes}
        self._clients = {lane: private_client(connection) for lane in self.lanes}
        self._retry_at: dict[tuple[str, str], float] = {}  # (task, lane) whose attempts ran out -> when to try again
        self._edited_at: dict[str, float] = {}  # task -> when the bot last created or edited its status message
        self._parent = os.getppid()

    # --- control ---
    def stop(self) -> None:
        self.stopping.set()
        with self._lock:
            wakes = list(self._lanes.values())
        for wake in wakes:
            wake.set()

    def drain(self, seconds: float | None = None) -> None:
        """Stop once what was appended so far is delivered (or after `seconds`, DRAIN_SECONDS by default, counted
        from its first poll: a reader asked to stop while still starting, on a loaded machine, gets the whole time)."""
        if self._drain_for is None:
            self._drain_for = self.drain_seconds if seconds is None else seconds

    def held(self) -> set[str]:
        with self._lock:
            return set(self._held)

    # --- the main thread: wake-ups, the set, the leases ---
    def run(self) -> None:
        listener = private_client(self.redis)
        pubsub = listener.pubsub(ignore_subscribe_messages=True)
        next_poll, trouble = 0.0, None
        try:
            while not self.stopping.is_set():
                try:
                    if not pubsub.subscribed:
                        pubsub.subscribe(keys.TASK_EVENTS_CHANNEL)  # before the poll: no append falls in between
                    if time.monotonic() >= next_poll:
                        next_poll = time.monotonic() + self.poll
                        self._poll()
                        self.ready.set()
                        if self._drained():
                            break
                    message = pubsub.get_message(timeout=max(0.01, min(self.poll, next_poll - time.monotonic())))
                    if message and message.get("type") == "message":
                        task_id = json.loads(message["data"]).get("task_id")
                        if task_id and (task_id in self.held() or (self._claiming and self._claim(str(task_id)))):
                            self._wake_lanes({str(task_id)})
                    trouble = None
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    if trouble is None:
                        log.warning("lost Redis (%s); retrying", exc)
                    trouble = exc
                    pubsub.reset()
                    self.stopping.wait(0.5)
                except (ValueError, AttributeError, TypeError):
                    pass  # a wake-up that is not ours: the poll still finds every task
        finally:
            self.stop()
            with self._lock:
                threads = list(self._threads)
            for thread in threads:
                thread.join(self.notifier.timeout + 1)
            for task_id in self.held():  # another reader takes them at once, not when the lease runs out
                try:
                    self._release(task_id)
                except redis.RedisError:
                    pass
            for close in (pubsub.close, listener.close, self.notifier.close,
                          *(client.close for client in self._clients.values())):
                try:
                    close()
                except Exception:
                    pass

    def _poll(self) -> None:
        if self._drain_for is None and os.getppid() != self._parent:
            log.warning("the worker that started this reader is gone: delivering what is left, then stopping")
            self.drain()
        pending = {_text(t) for t in self.redis.smembers(keys.UNDELIVERED_TASKS)}
        for task_id in self.held():
            if not self._lease(task_id).hold():  # renewed, or taken back at once after a Redis restart
                log.warning("task %s: its delivery lease was lost (another reader took it); it goes on there",
                            task_id)
                self._forget(task_id)
        if self._claiming:
            for task_id in pending - self.held():
                self._claim(task_id)
            self._claiming = self._drain_for is None
        for task_id in self.held():
            self._finish_if_done(task_id)
        self._wake_lanes(self.held())

    def _claim(self, task_id: str) -> bool:
        if not self._lease(task_id).hold():
            return False
        with self._lock:
            self._held.add(task_id)
        return True

    def _forget(self, task_id: str) -> None:
        with self._lock:
            self._held.discard(task_id)
            self._tasks.pop(task_id, None)
            self._edited_at.pop(task_id, None)

    def _release(self, task_id: str) -> None:
        self._forget(task_id)
        self._lease(task_id).release()

    def _lease(self, task_id: str) -> Lease:
        return Lease(self.redis, keys.task_delivery_lease(task_id), self.name, self.lease)

    def _cursors(self, task_id: str) -> list[str | None]:
        return [_text(c) for c in self.redis.hmget(keys.task_delivered(task_id), self.lanes)]

    def _finish_if_done(self, task_id: str) -> None:
        """Every endpoint has the task's ending (or its events expired): it leaves the set."""
        latest = event_log.last(self.redis, task_id)
        if latest is not None and not (latest.ends and all(c == latest.id for c in self._cursors(task_id))):
            return
        self.redis.srem(keys.UNDELIVERED_TASKS, task_id)
        again = event_log.last(self.redis, task_id)  # an append after the read above: the task stays
        if again is not None and (latest is None or again.id != latest.id):
            self.redis.sadd(keys.UNDELIVERED_TASKS, task_id)
            return
        self._release(task_id)

    def _drained(self) -> bool:
        """Draining, and every task it holds has its ending delivered (or the drain's time is up). A task without an
        ending yet may be the dying worker's: its horse writes the ending once it sees the worker gone."""
        if self._drain_for is None:
            return False
        if self._drain_by is None:  # called after a poll: the clock starts now
            self._drain_by = time.monotonic() + self._drain_for
        if time.monotonic() >= self._drain_by:
            return True
        now = time.monotonic()
        for task_id in self.held():
            latest = event_log.last(self.redis, task_id)
            if latest is None:
                continue
            if not latest.ends:
                return False
            for lane, cursor in zip(self.lanes, self._cursors(task_id)):
                if cursor != latest.id and self._retry_at.get((task_id, lane), 0.0) <= now:
                    return False
        return True

    def _wake_lanes(self, tasks: set[str]) -> None:
        """Each endpoint's thread for these tasks looks for new events (started if it had none)."""
        with self._lock:
            if self.stopping.is_set():
                return
            self._threads = [t for t in self._threads if t.is_alive()]
            for task_id in tasks & self._held:
                for lane in self.lanes:
                    wake = self._lanes.get((task_id, lane))
                    if wake is None:
                        wake = self._lanes[(task_id, lane)] = threading.Event()
                        thread = threading.Thread(target=self._lane, args=(task_id, lane, wake), daemon=True,
                                                  name=f"tars-delivery-{lane}-{task_id}")
                        self._threads.append(thread)
                        thread.start()
                    wake.set()

    # --- one thread per task and endpoint: the task's events in order ---
    def _lane(self, task_id: str, lane: str, wake: threading.Event) -> None:
        idle_since = time.monotonic()
        while not self.stopping.is_set():
            wake.clear()
            moved = False
            hold = self._hold(task_id, lane)
            if hold > 0 and self.stopping.wait(hold):
                break
            try:
                with self._slots[lane]:
                    moved = self._deliver(self._clients[lane], task_id, lane)
            except redis.RedisError as exc:
                log.warning("%s: task %s: %s; trying again", lane, task_id, exc)
                self.stopping.wait(0.5)
            except Exception:
                log.exception("%s: delivering task %s broke; trying again later", lane, task_id)
                self._retry_at[(task_id, lane)] = time.monotonic() + self.retry_later
            if moved:
                idle_since = time.monotonic()
                continue  # a batch went out: there may be more
            if time.monotonic() - idle_since >= LANE_IDLE_SECONDS or task_id not in self.held():
                with self._lock:  # a wake-up set now is not lost: the next one starts a new thread
                    if not wake.is_set():
                        del self._lanes[(task_id, lane)]
                        return
                continue
            wake.wait(self.poll)
        with self._lock:
            self._lanes.pop((task_id, lane), None)

    def _deliver(self, connection: redis.Redis, task_id: str, lane: str) -> bool:
        """Deliver the task's next events to one endpoint, in order; True when its cursor moved."""
        if self._retry_at.get((task_id, lane), 0.0) > time.monotonic():
            return False
        cursor = _text(connection.hget(keys.task_delivered(task_id), lane))
        events = event_log.read(connection, task_id, after=cursor, count=BATCH)
        if not events:
            return False
        if cursor and not connection.xrange(keys.task_events(task_id), cursor, cursor):
            # The capped stream was trimmed past the cursor while the endpoint was down: say what was lost.
            log.warning("%s: task %s: updates after %s were trimmed from its timeline (EVENT_LOG_MAX_EVENTS) before "
                        "they could be sent; going on from %s", lane, task_id, cursor, events[0].id)
        goal, detailed = self._task(connection, task_id)
        if lane == BOT:
            return self._to_bot(connection, task_id, events, goal, detailed)
        moved = False
        for event in events:
            if self.stopping.is_set() or task_id not in self.held():
                break
            if event.type not in SKIPPED and should_send(event.type, detailed):
                update = progress_event(task_id, event, goal, self._plan(connection, task_id))
                if lane == LOG_ONLY:
                    self.notifier.log_only(update)
                elif self.notifier.deliver(lane, update, self.stopping) == FAILED:
                    self._retry_at[(task_id, lane)] = time.monotonic() + self.retry_later
                    break
            self._advance(connection, task_id, lane, event.id)
            moved = True
        return moved

    def _advance(self, connection: redis.Redis, task_id: str, lane: str, entry_id: str) -> None:
        with connection.pipeline(transaction=False) as pipe:
            pipe.hset(keys.task_delivered(task_id), lane, entry_id)
            pipe.expire(keys.task_delivered(task_id), RESULT_TTL_SECONDS)
            pipe.execute()

    # --- the Discord bot: one status message per task, edited in place ---
    def _hold(self, task_id: str, lane: str) -> float:
        """How long the bot's lane waits before it reads the task's next events: what arrives meanwhile goes in one
        edit (at most one per BOT_EDIT_SECONDS, none while the rate limit Discord announced lasts)."""
        if lane != BOT:
            return 0.0
        edited = self._edited_at.get(task_id)
        wait = 0.0 if edited is None else edited + BOT_EDIT_SECONDS - time.monotonic()
        return max(wait, self.notifier.ready_in(BOT))

    def _to_bot(self, connection: redis.Redis, task_id: str, events: list[event_log.Event], goal: str,
                detailed: bool) -> bool:
        """The status message shows the newest of these events that the task's verbosity sends, in one edit; a
        confirmation request and the ending are also new messages, each once the status message shows it. True when
        the cursor moved (only past what Discord has, or refused for good)."""
        advanced = newest = walked = None  # the last event the cursor moved to; the newest to show; the last read
        for event in events:
            if self.stopping.is_set() or task_id not in self.held():
                break
            walked = event
            if event.type in SKIPPED or not should_send(event.type, detailed):
                continue
            newest = event
            if event.type == CONFIRMATION_REQUIRED or event.ends:
                if not (self._bot_status(connection, task_id, event, goal)
                        and self._bot_message(connection, task_id, event, goal)):
                    return advanced is not None
                self._advance(connection, task_id, BOT, event.id)
                advanced, newest = event.id, None
        if walked is None or walked.id == advanced:
            return advanced is not None
        if newest is not None and not self._bot_status(connection, task_id, newest, goal):
            return advanced is not None
        self._advance(connection, task_id, BOT, walked.id)
        return True

    def _bot_status(self, connection: redis.Redis, task_id: str, event: event_log.Event, goal: str) -> bool:
        """Bring the task's status message to `event` (created the first time, or again if someone deleted it);
        False when Discord could not be reached (tried again later)."""
        bot = self.notifier.bot
        status = {_text(k): _text(v) for k, v in connection.hgetall(keys.task_discord_status(task_id)).items()}
        if status.get("event") == event.id:
            return True  # it shows this one already (sent before a crash, whose cursor did not move)
        update = self.notifier.scrub(progress_event(task_id, event, goal, self._plan(connection, task_id)))
        started = float(status.get("started_at") or next(
            (e.at for e in event_log.read(connection, task_id, count=2) if e.type != QUEUED), event.at))
        result = update.data.get("result") if isinstance(update.data.get("result"), dict) else {}
        elapsed, cost = result.get("duration_seconds"), result.get("cost_usd")
        if not isinstance(elapsed, (int, float)):
            elapsed = max(0.0, event.at - started)
        if not isinstance(cost, (int, float)):
            cost = self._cost_so_far(connection, task_id)
        body = bot_status_body(update, elapsed, cost)
        what = f"task {task_id} status ({update.id})"
        message_id = status.get("message_id")
        outcome = bot.edit(message_id, body, what, self.stopping) if message_id else GONE
        if outcome == GONE:
            if message_id:
                log.warning("%s: task %s: its status message %s was deleted in Discord; posting a new one", BOT,
                            task_id, message_id)
            outcome, message = bot.post({**body, "nonce": bot_nonce(f"status {task_id} {message_id or ''}"),
                                         "enforce_nonce": True}, what, self.stopping)
            message_id = str(message["id"]) if message else None
            if message and message.get("content") != body["content"]:
                # Discord knew the nonce: the message a reader created before a crash, showing an older update
                outcome = bot.edit(message_id, body, what, self.stopping)
        if outcome == FAILED:
            self._retry_at[(task_id, BOT)] = time.monotonic() + self.retry_later
            return False
        self._edited_at[task_id] = time.monotonic()
        if outcome == SENT and message_id:
            with connection.pipeline(transaction=False) as pipe:
                pipe.hset(keys.task_discord_status(task_id), mapping={
                    "message_id": message_id, "started_at": repr(started), "event": event.id,
                    "said": body["content"]})
                pipe.expire(keys.task_discord_status(task_id), RESULT_TTL_SECONDS)
                if message_id != status.get("message_id"):
                    self._record(pipe, message_id, task_id, STATUS_MESSAGE)
                pipe.execute()
        return True

    def _bot_message(self, connection: redis.Redis, task_id: str, event: event_log.Event, goal: str) -> bool:
        """A new message for a confirmation request or the ending, recorded so a reply to it finds the task; False
        when Discord could not be reached (tried again later)."""
        update = self.notifier.scrub(progress_event(task_id, event, goal, self._plan(connection, task_id)))
        outcome, message = self.notifier.bot.post(bot_message_body(update, bot_nonce(update.id)),
                                                  f"task {task_id} {event.type} ({update.id})", self.stopping)
        if outcome == FAILED:
            self._retry_at[(task_id, BOT)] = time.monotonic() + self.retry_later
            return False
        if message:
            kind = CONFIRMATION_MESSAGE if event.type == CONFIRMATION_REQUIRED else ENDING_MESSAGE
            with connection.pipeline(transaction=False) as pipe:
                self._record(pipe, str(message["id"]), task_id, kind, event.data.get("request_id"))
                pipe.execute()
        return True

    @staticmethod
    def _record(pipe, message_id: str, task_id: str, kind: str, request_id=None) -> None:
        """What a message the bot posted is about, so a reply to it finds its task (expires with the task's data)."""
        fields = {"task_id": task_id, "kind": kind, **({"request_id": str(request_id)} if request_id else {})}
        pipe.hset(keys.discord_message(message_id), mapping=fields)
        pipe.expire(keys.discord_message(message_id), RESULT_TTL_SECONDS)

    def _cost_so_far(self, connection: redis.Redis, task_id: str) -> float | None:
        """The task's estimated cost so far, as `task status` shows it (a task's worker keeps it in the job's meta; a
        planned task's is its planner's and its subtasks', TaskManager.plan_usage)."""
        try:
            cost = TaskManager(connection, self.settings).status(task_id).cost_usd
        except TaskNotFound:
            return None
        return cost if isinstance(cost, (int, float)) else None

    def _task(self, connection: redis.Redis, task_id: str) -> tuple[str, bool]:
        """The task's goal and whether its updates are detailed (from its job, read once)."""
        return self._known(connection, task_id)[:2]

    def _known(self, connection: redis.Redis, task_id: str) -> tuple[str, bool, dict]:
        with self._lock:
            known = self._tasks.get(task_id)
        if known is None:
            try:
                meta = Job.fetch(task_id, connection=connection).meta or {}
            except NoSuchJobError:
                meta = {}  # Redis lost the job: its events still go out
            known = (str(meta.get("goal") or ""), self.settings.detailed_updates(meta.get("verbose_updates")),
                     {"parent": meta.get("parent"), "plan_key": meta.get("plan_key"), "planned": bool(meta.get("plan"))})
            with self._lock:
                self._tasks[task_id] = known
        return known

    def _plan(self, connection: redis.Redis, task_id: str) -> dict:
        """The task's place in a plan for its updates: a subtask's parent and key; a planned task's summary as it
        stands now (core/plans.plan_summary of its rows), once it is planned."""
        plan = self._known(connection, task_id)[2]
        fields = {"parent": plan["parent"], "plan_key": plan["plan_key"]}
        if plan["planned"]:
            tasks = TaskManager(connection, self.settings)
            record = tasks.plan_record(task_id)
            if record:
                fields["plan_summary"] = plans.plan_summary(tasks.plan_rows(record))
        return fields


def _until_closed(stream, closed: threading.Event) -> None:
    """Read the pipe from the worker until it closes (the worker asked us to stop, or it is gone)."""
    try:
        while stream.read(4096):
            pass
    except (OSError, ValueError):
        pass
    closed.set()


def _connect(settings: Settings, worker_gone: threading.Event) -> redis.Redis | None:
    """Redis, waited for (a worker can start while Redis restarts); None when the worker stopped meanwhile."""
    said = 0.0
    while True:
        try:
            return connect(settings.redis_url, outage_seconds=REDIS_OUTAGE_RETRY_SECONDS)
        except RedisUnavailable as exc:
            if worker_gone.is_set():
                log.warning("%s The worker has stopped: nothing more to wait for.", exc)
                return None
            if time.monotonic() - said > 30:
                log.warning("%s Trying again every 2 s.", exc)
                said = time.monotonic()
            worker_gone.wait(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Deliver the TARS tasks' progress updates to n8n / Discord. Stops "
                                     "when its standard input, a pipe from the worker that started it, closes (or on "
                                     "SIGUSR1), after delivering what is left.")
    parser.add_argument("--name", help="this reader's name in the leases (default: host.pid)")
    args = parser.parse_args(argv)
    # Ctrl+C and SIGTERM are the worker's (a terminal, systemd's whole-group stop): its warm shutdown finishes a task
    # whose updates this sends. It stops with its worker: the pipe the worker holds closes when the worker asks (or
    # exits, however it dies), and a pipe cannot be closed "too early", as a signal can arrive before its handler.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sandbox.make_non_dumpable()  # it holds the webhook URLs and secrets
    try:
        settings = get_settings()
        logging.basicConfig(level=settings.LOG_LEVEL, format=WORKER_LOG_FORMAT)
        install_log_scrubbing(settings.secret_values())
    except (TarsError, ValueError) as exc:
        print(f"delivery: {exc}", file=sys.stderr)
        return 2
    worker_gone = threading.Event()
    if stat.S_ISFIFO(os.fstat(0).st_mode):
        threading.Thread(target=_until_closed, args=(sys.stdin.buffer, worker_gone), daemon=True).start()
    connection = _connect(settings, worker_gone)
    if connection is None:
        return 0
    try:
        delivery = Delivery(connection, settings, name=args.name)
    except (TarsError, ValueError) as exc:
        print(f"delivery: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGUSR1, lambda *_: delivery.drain())
    threading.Thread(target=lambda: worker_gone.wait() and delivery.drain(), daemon=True).start()
    delivery.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
