"""A real call leaves its transcript behind (core/call_history.py): both sides, the tasks it started, never the
code. The real app under uvicorn, the ConversationRelay socket played by RelayClient, the fake Anthropic API."""

from __future__ import annotations

import json

from communication.relay_protocol import Setup
from core import keys
from core.call_history import CODE_MARK, KEYPAD_MARK, CallHistory
from tests.communication.test_voice import (OWNER, PUBLIC, TOKEN, echo_tool_result, make_server,  # noqa: F401
                                            phone, task_id_in, voice)
from tests.conftest import TEST_CODE
from tests.fakes.anthropic_api import text, tool_use
from tests.fakes.relay_client import RelayClient
from tests.waiting import wait_until

STORY = ("Once upon a time a small robot learned to write tidy Python, and every night it ran the tests twice "
         "before it went to sleep.")


def ended(redis_client, sid: str) -> bool:
    """The call's end is written after all its lines."""
    return bool(redis_client.hget(keys.call_record(sid), "ended_at"))


def test_a_call_leaves_both_sides_and_its_task_but_never_the_code(phone, fake_api, projects, settings, redis_client):
    (projects / "notes").mkdir()
    fake_api.script([tool_use("start_autonomous_coding", {"goal": "Add a README", "project_path": "notes"}),
                     echo_tool_result, text("Thank you, sir."), text(STORY, chunk_delay=0.3)],
                    match="add a readme to my notes project")
    call = phone()
    call.say("add a readme to my notes project")
    started = call.reply().text
    task_id = task_id_in(started)
    call.say("my code is six two eight three")  # said: the transcription gives words
    assert call.reply().text == "Thank you, sir."
    call.press(f"{TEST_CODE}#")  # keyed in: no task waits for it, TARS says so
    keypad_answer = call.next().message["token"]
    call.say("tell me a story")
    first, second = call.next(), call.next()
    heard = (first.message["token"] + second.message["token"]).strip()
    call.interrupt(heard)
    call.hang_up()
    wait_until(lambda: ended(redis_client, call.call_sid), what="the call's end to be recorded")

    record, lines = CallHistory(redis_client, settings).call(call.call_sid)
    assert (record.number, record.direction, record.purpose, record.task_ids) == (OWNER, "inbound", "", [task_id])
    assert [(line.who, line.text) for line in lines] == [
        ("caller", "add a readme to my notes project"), ("tars", started),
        ("caller", CODE_MARK), ("tars", "Thank you, sir."),
        ("caller", KEYPAD_MARK), ("tars", keypad_answer),
        ("caller", "tell me a story"), ("tars", f"{heard} …")]
    stored = json.dumps([r.decode() for r in redis_client.lrange(keys.call_transcript(call.call_sid), 0, -1)])
    assert TEST_CODE not in stored and "eight three" not in stored


def test_a_call_tars_placed_keeps_its_purpose(voice, fake_api, redis_client, settings):
    sid = "CA" + "7" * 32
    # what TARS remembers of a call it placed (communication/owner_phone.py): the relay takes only such calls
    redis_client.hset(keys.phone_outbound(sid), mapping={"to": OWNER, "purpose": "reminder", "task_id": "",
                                                        "request_id": "", "greeting": "TARS here, sir."})
    client = RelayClient.dial(voice.port, PUBLIC, TOKEN)
    try:
        client.call_sid = sid
        # Twilio's setup of a call TARS placed: "outbound-api", from the Twilio number to the owner, and the purpose
        # TARS gave in its TwiML
        client.send(Setup(call_sid=sid, caller="+15550001111", to=OWNER, direction="outbound-api",
                          custom_parameters={"purpose": "reminder"}))
        wait_until(lambda: CallHistory(redis_client, settings).calls(), what="the call to be recorded")
        client.hang_up()
        wait_until(lambda: ended(redis_client, sid), what="the call's end to be recorded")
    finally:
        client.close()
    (record,) = CallHistory(redis_client, settings).calls()
    assert (record.call_sid, record.number, record.direction, record.purpose, record.lines) == (
        sid, OWNER, "outbound", "reminder", 0)
    assert record.duration is not None
