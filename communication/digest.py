"""The digest: the report (core/report.py) of the tasks since the last one, sent to Discord / n8n on REPORT_DIGEST_CRON's
schedule (default Mondays at 09:00, local time), once however many servers run.

Every server with somewhere to send it (N8N_WEBHOOK_URL, DISCORD_WEBHOOK_URL or the Discord bot) runs a DigestSender
thread (communication/app.py): at start and every DIGEST_CHECK_SECONDS it compares the schedule's latest time with
the one handled (keys.DIGEST_SENT). The server that takes keys.DIGEST_LOCK (a Lease) sends the report of the period
between the schedule's two latest times through the notifier's endpoints (its retries, signing and idempotency: the
event id comes from the period, so a resend is a duplicate the receiver drops, and the bot's nonce the same), then
records the time handled. An endpoint still failing after its retries leaves it unhandled: the next check sends it
again. The first time a TARS sees the schedule it records the latest time without sending (a new install gets no
digest of a past it did not watch); a time missed by more than DIGEST_LATE_SECONDS (no server ran then) is skipped.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import datetime
from typing import Callable

import redis

from communication.delivery import make_notifier
from communication.notifier import DIGEST, Notifier, ProgressEvent
from core import keys, report
from core.config import CRON_HINT, Settings
from core.exceptions import ConfigError
from core.defaults import DIGEST_CHECK_SECONDS, DIGEST_LATE_SECONDS, DIGEST_LOCK_SECONDS
from core.redis_conn import Lease, private_client
from core.task_states import COMPLETE, usd

log = logging.getLogger("tars.digest")


def schedule_times(cron: str, now: float) -> tuple[datetime, datetime]:
    """The schedule's latest time at or before `now` and the one before it (local time zone, aware)."""
    from croniter import croniter  # here: a server that sends no digest never loads it

    latest = croniter(cron, datetime.fromtimestamp(now).astimezone()).get_prev(datetime)
    return latest, croniter(cron, latest).get_prev(datetime)


def digest_text(numbers: dict) -> str:
    """The digest: a headline (the Discord message's line), then the report as `python main_tars.py report` says it."""
    tasks, rate = numbers["tasks"], numbers["success_rate"]
    since = datetime.fromisoformat(numbers["since"]).strftime("%a %d %b %H:%M")
    success = f", {rate * 100:.0f}% success" if rate is not None else ""
    headline = (f"TARS since {since}: {tasks['total']} task{'s' if tasks['total'] != 1 else ''} ended, "
                f"{tasks[COMPLETE]} complete{success}, {usd(numbers['cost_usd'])}")
    return f"{headline}\n{report.text(numbers)}"


class DigestSender(threading.Thread):
    """Sends each period's digest once (see the module docstring); `check()` is one look, `passes` counts them."""

    def __init__(self, connection: redis.Redis, settings: Settings, notifier: Notifier,
                 clock: Callable[[], float] = time.time, name: str | None = None):
        super().__init__(name="tars-digest", daemon=True)
        self.cron = settings.REPORT_DIGEST_CRON
        self.notifier = notifier
        self.clock = clock
        # Its own connection: only this thread reads it, and stop() joins the thread before closing it.
        self.connection = private_client(connection)
        self.lock = Lease(self.connection, keys.DIGEST_LOCK, name or f"{socket.gethostname()}.{os.getpid()}."
                          f"{id(self):x}", DIGEST_LOCK_SECONDS)
        self.passes = 0
        self._stopping = threading.Event()

    @classmethod
    def for_settings(cls, connection: redis.Redis, settings: Settings) -> "DigestSender | None":
        """The server's sender, or None when there is no schedule or nowhere to send it."""
        if not settings.REPORT_DIGEST_CRON:
            return None
        notifier = make_notifier(settings)
        if not notifier.endpoints:
            notifier.close()
            return None
        from croniter import croniter  # here: a server that sends no digest never loads it

        if not croniter.is_valid(settings.REPORT_DIGEST_CRON):  # core/config.py checked its shape only
            notifier.close()
            raise ConfigError(f"REPORT_DIGEST_CRON={settings.REPORT_DIGEST_CRON!r} is invalid: {CRON_HINT}. Fix it in "
                              ".env or the environment (see env.example).")
        return cls(connection, settings, notifier)

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.check()
            except redis.RedisError as exc:  # Redis is away: the next check tries again
                log.warning("could not check whether the digest is due: %s", exc)
            except Exception:
                log.exception("the digest check failed; trying again later")
            self.passes += 1
            self._stopping.wait(DIGEST_CHECK_SECONDS)

    def check(self) -> bool:
        """Send the digest if its time came and nobody sent it yet; True when this call sent it."""
        now = self.clock()
        latest, before = schedule_times(self.cron, now)
        if not self._due(latest):
            return False
        if not self.lock.hold():
            return False  # another server is sending it
        try:
            if not self._due(latest):  # sent by another server between the look and the lock
                return False
            if now - latest.timestamp() > DIGEST_LATE_SECONDS:
                log.info("the digest of %s was not sent in time (no server ran); skipped", latest.isoformat())
                self.connection.set(keys.DIGEST_SENT, latest.isoformat())
                return False
            numbers = report.report(self.connection, latest.timestamp() - before.timestamp(), now=latest.timestamp())
            if not self.send(numbers, latest):
                return False
            self.connection.set(keys.DIGEST_SENT, latest.isoformat())
            log.info("digest of the tasks from %s to %s sent", before.isoformat(), latest.isoformat())
            return True
        finally:
            self.lock.release()

    def _due(self, latest: datetime) -> bool:
        handled = self.connection.get(keys.DIGEST_SENT)
        if handled is None:  # the first look of this TARS at its schedule: from now on
            self.connection.set(keys.DIGEST_SENT, latest.isoformat(), nx=True)
            return False
        return datetime.fromisoformat(handled.decode()) < latest

    def send(self, numbers: dict, latest: datetime) -> bool:
        """The digest to every endpoint; False when one still failed after its retries (sent again later)."""
        event = ProgressEvent(task_id="", type=DIGEST, message=digest_text(numbers), phase="", goal="",
                              id=f"evt_digest_{int(latest.timestamp())}")
        return self.notifier.announce(event, self._stopping)

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout)
        self.notifier.close()
        self.connection.close()
