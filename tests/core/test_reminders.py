"""The owner's reminders in Redis: kept until due, listed soonest first, cancelled, and taken by exactly one server."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from core import keys, reminders
from core.exceptions import InvalidReminder


def soon(seconds: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


def test_a_reminder_is_kept_until_its_time_and_listed_soonest_first(redis_client):
    later = reminders.add(redis_client, "check the deploy", soon(3600), reminders.CALL, "CA1")
    sooner = reminders.add(redis_client, "  stretch   your legs ", soon(600), reminders.TEXT)
    assert [r.text for r in reminders.pending(redis_client)] == ["stretch your legs", "check the deploy"]
    assert reminders.next_due(redis_client) == pytest.approx(sooner.due.timestamp())
    assert reminders.take_due(redis_client) == []
    assert 0 < redis_client.ttl(keys.reminder(later.reminder_id)) <= 3600 + reminders.KEPT_AFTER_DUE_SECONDS
    assert later.to_dict()["call_sid"] == "CA1" and later.by == "call"


def test_a_due_reminder_is_taken_once_and_gone(redis_client):
    due = reminders.add(redis_client, "check the deploy", soon(1))
    taken = reminders.take_due(redis_client, now=time.time() + 2)
    assert [r.reminder_id for r in taken] == [due.reminder_id] and taken[0].text == "check the deploy"
    assert reminders.take_due(redis_client, now=time.time() + 2) == []
    assert reminders.pending(redis_client) == [] and not redis_client.exists(keys.reminder(due.reminder_id))


def test_two_servers_taking_at_once_deliver_each_reminder_once(redis_client):
    for n in range(20):
        reminders.add(redis_client, f"reminder {n}", soon(1))
    taken: list[list] = [[], []]
    start = threading.Barrier(2)

    def take(slot: int) -> None:
        start.wait()
        taken[slot] = reminders.take_due(redis_client, now=time.time() + 2)

    threads = [threading.Thread(target=take, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    texts = [r.text for r in taken[0] + taken[1]]
    assert sorted(texts) == sorted(f"reminder {n}" for n in range(20))  # every one, none twice


def test_cancelling_a_reminder_drops_it(redis_client):
    kept = reminders.add(redis_client, "call mum", soon(600))
    assert reminders.cancel(redis_client, kept.reminder_id).text == "call mum"
    assert reminders.pending(redis_client) == []
    with pytest.raises(InvalidReminder, match=f"no pending reminder {kept.reminder_id}"):
        reminders.cancel(redis_client, kept.reminder_id)


@pytest.mark.parametrize("text, by, says", [("   ", "call", "needs something to remind you of"),
                                            ("x" * 301, "call", "keep it to 300"),
                                            ("stretch", "pigeon", "by call or text")])
def test_a_reminder_without_text_or_too_long_is_refused(redis_client, text, by, says):
    with pytest.raises(InvalidReminder, match=says):
        reminders.add(redis_client, text, soon(60), by)
    assert redis_client.zcard(keys.REMINDERS) == 0
