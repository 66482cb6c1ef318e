"""The digest, as the owner gets it on Monday morning: once per period whatever the number of servers, through the
same endpoints as the progress updates (a local n8n and the local Discord here), never for a past it did not watch."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from communication.app import create_app
from communication.delivery import make_notifier
from communication.digest import DigestSender, schedule_times
from core import history, keys
from core.config import load_settings
from core.exceptions import ConfigError
from core.redis_conn import Lease
from tests.conftest import bot_settings
from tests.fakes.webhook_server import Reply
from tests.waiting import wait_until

MONDAYS = "0 9 * * 1"


def ended_task(redis_client, task_id: str, ended_at: float, outcome: str = "complete", cost: float = 0.25) -> None:
    """A task of the period in the history, as background_worker._finish writes it."""
    result = {"outcome": outcome, "reason": "Done." if outcome == "complete" else "It broke.", "iterations": 2,
              "cost_usd": cost, "duration_seconds": 12.0, "model_seconds": [0.5], "usage": {"output_tokens": 5}}
    history.record(redis_client, history.summary(task_id, {"goal": "Build it", "project_path": "/p/calc"}, result,
                                                 ended_at - 12, ended_at), keep_days=90)


def at(*when: int) -> float:
    """A local time as Unix seconds."""
    return datetime(*when).timestamp()


def test_two_servers_send_each_digest_once(serve, n8n, redis_client):
    # A schedule whose latest time was two minutes ago, and whose previous digest (a day earlier) was sent.
    now = time.time()
    due = datetime.fromtimestamp(now - 120)
    cron = f"{due.minute} {due.hour} * * *"
    latest, before = schedule_times(cron, now)
    redis_client.set(keys.DIGEST_SENT, before.isoformat())
    ended_task(redis_client, "0c0c01", latest.timestamp() - 3600)
    ended_task(redis_client, "0c0c02", latest.timestamp() - 1800, outcome="failed", cost=0.5)
    ended_task(redis_client, "0c0c03", latest.timestamp() + 30)  # after the period: the next digest's
    n8n.plan.append(Reply(204, delay=2.0))  # the first server is still sending while the second one looks

    first = serve(N8N_WEBHOOK_URL=n8n.url(), REPORT_DIGEST_CRON=cron)
    second = serve(N8N_WEBHOOK_URL=n8n.url(), REPORT_DIGEST_CRON=cron)
    senders = [first.app.state.digest, second.app.state.digest]
    wait_until(lambda: all(sender.passes >= 1 for sender in senders), 60, "both servers to look")

    assert len(n8n.requests) == 1, n8n.bodies()
    body = n8n.bodies()[0]
    assert (body["type"], body["task_id"], body["id"]) == ("digest", "", f"evt_digest_{int(latest.timestamp())}")
    assert n8n.requests[0].headers["idempotency-key"] == body["id"]
    assert body["message"].startswith("📊 TARS since ") and "2 tasks ended, 1 complete, 50% success, $0.75" in \
        body["message"]
    assert "by outcome: 1 complete, 1 failed" in body["detail"] and "1 × It broke." in body["detail"]
    assert redis_client.get(keys.DIGEST_SENT).decode() == latest.isoformat()


def test_a_digest_is_sent_from_its_time_on_retried_when_it_failed_and_skipped_when_too_late(n8n, redis_client,
                                                                                              tars_env):
    settings = load_settings(N8N_WEBHOOK_URL=n8n.url(), REPORT_DIGEST_CRON=MONDAYS)
    clock = [at(2026, 11, 30, 9, 0, 30)]  # a Monday, just after nine
    sender = DigestSender(redis_client, settings, make_notifier(settings, max_attempts=1), clock=lambda: clock[0])
    try:
        # A TARS that never sent one starts from now: no digest of a past it did not watch.
        assert sender.check() is False and n8n.requests == []
        assert redis_client.get(keys.DIGEST_SENT).decode() == datetime.fromtimestamp(at(2026, 11, 30, 9)).astimezone(
        ).isoformat()
        ended_task(redis_client, "0d0d01", at(2026, 12, 2, 15))

        # The next Monday's: the endpoint fails, so it stays due and goes out at the next look.
        clock[0] = at(2026, 12, 7, 9, 0, 5)
        n8n.plan.append(Reply(500))
        assert sender.check() is False and len(n8n.requests) == 1
        assert sender.check() is True and len(n8n.requests) == 2
        assert n8n.bodies()[0]["id"] == n8n.bodies()[1]["id"]  # the same event: a receiver drops a duplicate
        assert "1 task ended, 1 complete" in n8n.bodies()[1]["message"]
        assert sender.check() is False and len(n8n.requests) == 2  # once per period

        # While another server holds the lock, this one leaves the digest to it.
        clock[0] = at(2026, 12, 14, 9, 1)
        other = Lease(redis_client, keys.DIGEST_LOCK, "another server", 60)
        assert other.hold()
        assert sender.check() is False and len(n8n.requests) == 2
        other.release()

        # No server ran for two days after its time: that digest is skipped, the next one comes as usual.
        clock[0] = at(2026, 12, 16, 10)
        assert sender.check() is False and len(n8n.requests) == 2
        assert redis_client.get(keys.DIGEST_SENT).decode() == datetime.fromtimestamp(at(2026, 12, 14, 9)).astimezone(
        ).isoformat()
    finally:
        sender.stop()


def test_the_discord_bot_posts_the_digest_in_its_channel(discord, redis_client, tars_env):
    settings = load_settings(**bot_settings(discord), REPORT_DIGEST_CRON=MONDAYS)
    clock = [at(2026, 11, 30, 9, 1)]
    sender = DigestSender(redis_client, settings, make_notifier(settings), clock=lambda: clock[0])
    try:
        sender.check()  # the first look
        ended_task(redis_client, "0e0e01", at(2026, 12, 1, 11), cost=1.5)
        clock[0] = at(2026, 12, 7, 9, 1)
        assert sender.check() is True
    finally:
        sender.stop()
    posted = discord.bot_messages()
    assert len(posted) == 1
    assert posted[0]["content"].startswith("📊 TARS since Mon 30 Nov 09:00: 1 task ended, 1 complete, 100% success, "
                                           "$1.50")
    assert "per project:" in posted[0]["embeds"][0]["description"]


def test_a_server_with_nowhere_to_send_it_or_no_schedule_runs_no_digest_and_a_bad_schedule_stops_it(
        serve, n8n, redis_client, tars_env):
    assert serve().app.state.digest is None  # no endpoint set
    assert serve(N8N_WEBHOOK_URL=n8n.url(), REPORT_DIGEST_CRON="").app.state.digest is None
    with pytest.raises(ConfigError, match=r"REPORT_DIGEST_CRON='99 9 \* \* 1' is invalid: must be a cron expression"):
        create_app(load_settings(N8N_WEBHOOK_URL=n8n.url(), REPORT_DIGEST_CRON="99 9 * * 1"), redis_client)
