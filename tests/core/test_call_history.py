"""Call history (core/call_history.py) on real Redis: what a call leaves behind, and what it never does."""

from __future__ import annotations

import asyncio
import time

import pytest

from core import call_history, keys
from core.call_history import CODE_MARK, KEYPAD_MARK, MAX_LINE_CHARS, MAX_LINES, CallHistory, CallNotFound, CallRecorder
from core.config import load_settings
from tests.conftest import TEST_CODE

SID = "CA" + "a" * 32
OWNER = "+15551234567"
SECRET_TOKEN = "twilio-secret-auth-token-0123456789"


@pytest.fixture
def history(tars_env, redis_client):
    return CallHistory(redis_client, load_settings(TWILIO_AUTH_TOKEN=SECRET_TOKEN, CALL_HISTORY_DAYS=30))


def texts(history: CallHistory, sid: str = SID) -> list[tuple[str, str]]:
    return [(line.who, line.text) for line in history.call(sid)[1]]


def test_a_call_is_kept_with_both_sides_and_the_tasks_it_started(history, redis_client):
    history.start(SID, OWNER, "inbound", at=1000.0)
    history.add(SID, "caller", "Start a task to add a README", at=1001.0)
    history.add(SID, "tars", "Task a1b2c3 is queued, sir.", at=1002.5)
    redis_client.zadd(keys.call_tasks(SID), {"a1b2c3": time.time()})  # what TaskManager.start does for a call
    history.end(SID, at=1065.0)

    call, lines = history.call(SID)
    assert (call.number, call.direction, call.purpose, call.lines, call.task_ids) == (OWNER, "inbound", "", 2,
                                                                                        ["a1b2c3"])
    assert call.duration == 65.0
    assert [(line.at, line.who, line.text) for line in lines] == [
        (1001.0, "caller", "Start a task to add a README"), (1002.5, "tars", "Task a1b2c3 is queued, sir.")]
    assert call.to_dict()["duration_seconds"] == 65.0


def test_calls_are_listed_newest_first_within_the_days_asked(history):
    now = time.time()
    history.start("CA-old", OWNER, "inbound", at=now - 3 * 86400)
    history.start("CA-new", OWNER, "outbound", "confirm", at=now - 60)
    assert [c.call_sid for c in history.calls()] == ["CA-new", "CA-old"]
    assert [c.call_sid for c in history.calls(days=1)] == ["CA-new"]
    newest = history.calls()[0]
    assert (newest.direction, newest.purpose, newest.ended_at, newest.duration) == ("outbound", "confirm", None, None)


def test_an_unknown_call_is_refused_with_the_reason(history):
    with pytest.raises(CallNotFound, match="no call 'CA-nope' in the call history .*kept 30 days"):
        history.call("CA-nope")


@pytest.mark.parametrize("said, stored", [
    (f"the code is {TEST_CODE}", f"the code is {CODE_MARK}"),
    (f"my code: {' '.join(TEST_CODE)}, thanks", f"my code: {CODE_MARK}, thanks"),
    ("six two eight three", CODE_MARK),
    ("Sure, it is six, two, eight, three.", CODE_MARK),
    ("double six two eight three", CODE_MARK),  # 66283 holds it too
])
def test_the_confirmation_code_is_never_stored_however_it_was_given(history, redis_client, said, stored):
    history.start(SID, OWNER, "inbound")
    history.add(SID, "caller", said)
    assert texts(history) == [("caller", stored)]
    raw = b"".join(redis_client.lrange(keys.call_transcript(SID), 0, -1)).decode()
    assert TEST_CODE not in raw and "eight three" not in raw


def test_secret_settings_are_scrubbed_and_other_words_kept(history):
    history.start(SID, OWNER, "inbound")
    history.add(SID, "tars", f"Your token is {SECRET_TOKEN}, sir. Task 4f2e1a has six files.")
    assert texts(history) == [("tars", "Your token is [redacted], sir. Task 4f2e1a has six files.")]


def test_a_line_and_a_call_are_bounded(history):
    history.start(SID, OWNER, "inbound")
    assert history.add(SID, "caller", "x" * (MAX_LINE_CHARS * 3)) == 0
    for n in range(MAX_LINES + 20):
        history.add(SID, "caller", f"line {n}")
    call, lines = history.call(SID)
    assert call.lines == MAX_LINES == len(lines)
    assert len(lines[0].text) == MAX_LINE_CHARS and lines[0].text.endswith("…")
    assert lines[-2].text == f"line {MAX_LINES - 3}"
    assert lines[-1].text == call_history.FULL
    assert history.add(SID, "caller", "one more") is None


def test_everything_expires_after_call_history_days(history, redis_client):
    now = time.time()
    history.start("CA-ancient", OWNER, "inbound", at=now - 31 * 86400)  # its record would be long gone
    history.start(SID, OWNER, "inbound")
    history.add(SID, "caller", "hello")
    history.end(SID)
    days_30 = 30 * 86400
    for key in (keys.call_record(SID), keys.call_transcript(SID)):
        assert days_30 - 60 < redis_client.ttl(key) <= days_30
    assert redis_client.zrange(keys.CALL_HISTORY, 0, -1) == [SID.encode()]  # trimmed when a call started


def test_the_recorder_writes_in_order_and_a_redis_failure_does_not_reach_the_call(history, redis_client, caplog):
    async def a_call():
        recorder = CallRecorder(history, SID)
        recorder.start(OWNER, "outbound", "reminder")
        recorder.tars("Sir, you asked me to remind you to water the plants, and the roses need it most.")
        recorder.heard_only("Sir, you asked me to remind you")  # the owner spoke over it
        recorder.caller("done already")
        recorder.keypad()
        recorder.tars("Very good", cut=True)
        await recorder.end()
        return recorder

    asyncio.run(a_call())
    call, lines = history.call(SID)
    assert (call.direction, call.purpose) == ("outbound", "reminder") and call.ended_at is not None
    assert [(line.who, line.text) for line in lines] == [
        ("tars", "Sir, you asked me to remind you …"), ("caller", "done already"), ("caller", KEYPAD_MARK),
        ("tars", "Very good …")]

    redis_client.set(keys.call_transcript("CA-broken"), "not a list")  # every write to it fails (WRONGTYPE)

    async def broken_call():
        recorder = CallRecorder(history, "CA-broken")
        recorder.start(OWNER, "inbound")
        recorder.caller("hello")
        await recorder.end()

    asyncio.run(broken_call())
    assert "could not be written" in caplog.text
    assert redis_client.hget(keys.call_record("CA-broken"), "ended_at")  # the rest was written all the same
