"""The phone, end to end: Twilio's webhooks and a ConversationRelay WebSocket against the real app under
uvicorn, the real streaming brain against the fake Anthropic API, real Redis and real worker processes.

Twilio reaches TARS through a proxy at PUBLIC (https), so every request here is signed over the public URL
while the test connects to 127.0.0.1 over plain HTTP / ws.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import xml.etree.ElementTree as ET

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from communication.spoken import APOLOGY, FILLER, NOT_OWNER, spoken_status
from core import keys
from core.session_manager import CallRegistry
from sub_agents_tars import VOICE_TOOLS
from tests.conftest import TEST_CODE, TEST_WEBHOOK_SECRET, ServerThread
from tests.fakes import openai_api as oai
from tests.fakes.anthropic_api import bash, delay, edit, error, repeat, text, tool_use
from tests.fakes.relay_client import RelayClient, incoming_call_params, sign, twilio_post
from tests.test_task_branches import owner_repo
from tests.waiting import wait_until

PUBLIC = "https://tars.example.test"
TOKEN = "twilio-test-auth-token-0123456789abcdef"
OWNER = "+15551234567"
STRANGER = "+15559876543"


# --- fixtures -----------------------------------------------------------------------------------------------------
@pytest.fixture
def make_server(serve):
    """Real servers (create_app under uvicorn, lifespan on) with voice settings; make_server(**overrides)."""
    return lambda **overrides: serve(**{"PUBLIC_BASE_URL": PUBLIC, "TWILIO_AUTH_TOKEN": TOKEN,
                                        "OWNER_PHONE_NUMBERS": OWNER, **overrides})


@pytest.fixture
def voice(make_server):
    return make_server()


@pytest.fixture
def phone(voice):
    """phone(call_sid) → an owner's call, set up (the socket signed like Twilio's)."""
    clients: list[RelayClient] = []

    def call(call_sid: str = "CA" + "1" * 32, caller: str = OWNER, server: ServerThread = voice) -> RelayClient:
        client = RelayClient.dial(server.port, PUBLIC, TOKEN)
        clients.append(client)
        client.setup(call_sid, caller)
        if caller == OWNER:
            # the server holds the call in memory first, then registers it in Redis (where workers look)
            hub = server.app.state.voice
            wait_until(lambda: call_sid in hub.calls and hub.registry.redis.exists(keys.call(call_sid)),
                       what="the call to be set up")
        return client

    yield call
    for client in clients:
        client.close()


def echo_tool_result(body: dict):
    """A scripted model turn that says the last tool result, as the real model would paraphrase it."""
    results = [b for b in body["messages"][-1]["content"] if b.get("type") == "tool_result"]
    return text(results[-1]["content"])


def said(message: dict) -> str:
    """The text of one history message (string or blocks)."""
    content = message["content"]
    if isinstance(content, str):
        return content
    return " ".join(b.get("text") or (b.get("content") if isinstance(b.get("content"), str) else "")
                    for b in content).strip()


def history(request) -> list[tuple[str, str]]:
    return [(m["role"], said(m)) for m in request.body["messages"]]


def task_id_in(sentence: str) -> str:
    found = re.search(r"task ([0-9a-f]{6})", sentence)
    assert found, sentence
    return found.group(1)


# --- POST /voice and /voice/status ---------------------------------------------------------------------------------
def test_the_owner_is_connected_to_the_relay(voice):
    answer = twilio_post(voice.url, PUBLIC, "/voice", incoming_call_params("CA01", OWNER), TOKEN)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(answer.text)
    assert root.tag == "Response"
    connect = root.find("Connect")
    assert connect is not None and connect.get("action") == f"{PUBLIC}/voice/status"
    relay = connect.find("ConversationRelay")
    assert relay.get("url") == "wss://tars.example.test/relay"
    assert relay.get("welcomeGreeting") == "TARS here, sir. What shall we build?"
    assert relay.get("language") == "en-US"
    assert relay.get("interruptible") == "any"
    assert relay.get("dtmfDetection") == "true"
    assert relay.get("ttsProvider") is None and relay.get("voice") is None  # unset: Twilio's defaults


def test_voice_settings_shape_the_relay(make_server):
    server = make_server(VOICE_TTS_PROVIDER="ElevenLabs", VOICE_NAME="UgBBYS2sOqTuMpoF3BR0", VOICE_LANGUAGE="en-GB",
                         VOICE_INTERRUPTIBLE="speech", WELCOME_GREETING="Evening, sir.",
                         PUBLIC_BASE_URL="https://example.org/tars/")
    answer = twilio_post(server.url, "https://example.org/tars", "/voice", incoming_call_params("CA02", OWNER), TOKEN)
    relay = ET.fromstring(answer.text).find("Connect/ConversationRelay")
    assert relay.attrib == {"url": "wss://example.org/tars/relay", "welcomeGreeting": "Evening, sir.",
                            "language": "en-GB", "ttsProvider": "ElevenLabs", "voice": "UgBBYS2sOqTuMpoF3BR0",
                            "interruptible": "speech", "dtmfDetection": "true"}
    assert ET.fromstring(answer.text).find("Connect").get("action") == "https://example.org/tars/voice/status"


def test_an_unknown_caller_hears_one_sentence_and_is_hung_up_on(voice, redis_client):
    answer = twilio_post(voice.url, PUBLIC, "/voice", incoming_call_params("CA03", STRANGER), TOKEN)
    assert answer.status_code == 200
    root = ET.fromstring(answer.text)
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert root.find("Say").text == NOT_OWNER
    assert root.find("Connect") is None  # never reaches the brain, so no task can be started
    assert redis_client.zcard(keys.RECENT_TASKS) == 0


@pytest.mark.parametrize("how", ["forged", "missing", "wrong url", "wrong token", "tampered form"])
def test_unsigned_or_forged_webhooks_are_refused(voice, how):
    params = incoming_call_params("CA04", OWNER)
    signature = {"forged": "bm90IGEgc2lnbmF0dXJl", "missing": None,
                 "wrong url": sign(TOKEN, f"{voice.url}/voice", params),  # what the proxy-less request looks like
                 "wrong token": sign("someone-elses-token", f"{PUBLIC}/voice", params),
                 "tampered form": sign(TOKEN, f"{PUBLIC}/voice", params)}[how]
    if how == "tampered form":
        params = {**params, "From": STRANGER}
    answer = twilio_post(voice.url, PUBLIC, "/voice", params, None, signature=signature)
    assert answer.status_code == 403
    assert "Connect" not in answer.text


def test_the_query_string_is_part_of_the_signed_url(voice):
    params = incoming_call_params("CA05", OWNER)
    good = twilio_post(voice.url, PUBLIC, "/voice?line=main", params, TOKEN)
    assert good.status_code == 200 and "ConversationRelay" in good.text
    stripped = twilio_post(voice.url, PUBLIC, "/voice?line=main", params, None,
                           signature=sign(TOKEN, f"{PUBLIC}/voice", params))
    assert stripped.status_code == 403


def test_without_an_auth_token_every_webhook_is_refused(make_server, caplog):
    server = make_server(TWILIO_AUTH_TOKEN="")
    with caplog.at_level(logging.ERROR, logger="tars.voice"):
        answer = twilio_post(server.url, PUBLIC, "/voice", incoming_call_params("CA06", OWNER), TOKEN)
    assert answer.status_code == 403
    assert any("TWILIO_AUTH_TOKEN is not set" in r.getMessage() for r in caplog.records)


def test_without_a_public_base_url_the_line_is_unavailable(make_server, caplog):
    server = make_server(PUBLIC_BASE_URL="")
    with caplog.at_level(logging.ERROR, logger="tars.voice"):
        answer = twilio_post(server.url, PUBLIC, "/voice", incoming_call_params("CA07", OWNER), TOKEN)
    assert answer.status_code == 503
    assert "PUBLIC_BASE_URL" in answer.json()["detail"]
    assert any("PUBLIC_BASE_URL is not set" in r.getMessage() for r in caplog.records)


def test_the_status_callback_logs_the_ending_and_unregisters(voice, redis_client, caplog):
    CallRegistry(redis_client).register("CA08", OWNER)
    params = {**incoming_call_params("CA08", OWNER), "CallStatus": "in-progress", "SessionId": "VX08",
              "SessionStatus": "ended", "SessionDuration": "42", "HandoffData": '{"reasonCode":"done"}'}
    with caplog.at_level(logging.INFO, logger="tars.voice"):
        answer = twilio_post(voice.url, PUBLIC, "/voice/status", params, TOKEN)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/xml")
    assert [child.tag for child in ET.fromstring(answer.text)] == ["Hangup"]
    line = next(r.getMessage() for r in caplog.records if "relay session ended" in r.getMessage())
    assert "CA08" in line and "SessionStatus=ended" in line and "SessionDuration=42" in line
    assert 'HandoffData={"reasonCode":"done"}' in line
    assert not redis_client.exists(keys.call("CA08"))
    assert twilio_post(voice.url, PUBLIC, "/voice/status", params, None).status_code == 403


# --- the WebSocket handshake ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["forged", "missing", "signed for the local url", "wrong token"])
def test_a_forged_or_unsigned_handshake_is_rejected(voice, how):
    signature = {"forged": "bm90IGEgc2lnbmF0dXJl", "missing": None,
                 "signed for the local url": sign(TOKEN, f"ws://127.0.0.1:{voice.port}/relay"),
                 "wrong token": sign("someone-elses-token", "wss://tars.example.test/relay")}[how]
    with pytest.raises(InvalidStatus) as refused:
        RelayClient.dial(voice.port, PUBLIC, None, signature=signature)
    assert refused.value.response.status_code == 403


def test_without_an_auth_token_the_handshake_is_rejected(make_server):
    server = make_server(TWILIO_AUTH_TOKEN="")
    with pytest.raises(InvalidStatus) as refused:
        RelayClient.dial(server.port, PUBLIC, TOKEN)
    assert refused.value.response.status_code == 403


# --- a conversation --
def test_the_call_is_registered_while_up_and_gone_after(voice, phone, redis_client):
    call = phone("CA" + "a" * 32)
    sid = call.call_sid
    entry = {k.decode(): v.decode() for k, v in redis_client.hgetall(keys.call(sid)).items()}
    assert entry["caller"] == OWNER and entry["session_id"] == sid
    assert 0 < redis_client.ttl(keys.call(sid)) <= 90
    assert [c.call_sid for c in CallRegistry(redis_client).active()] == [sid]
    call.hang_up()
    wait_until(lambda: not redis_client.exists(keys.call(sid)), timeout=30, what="the call to be unregistered")
    assert CallRegistry(redis_client).active() == []
    assert sid not in voice.app.state.voice.calls


def test_the_registration_is_refreshed_while_the_call_lasts(voice, phone, redis_client):
    voice.app.state.voice.refresh_seconds = 0.2
    call = phone("CA" + "b" * 32)
    redis_client.expire(keys.call(call.call_sid), 5)  # as if the last refresh was long ago
    wait_until(lambda: redis_client.ttl(keys.call(call.call_sid)) > 60, timeout=30, what="a refresh")


def test_a_stranger_on_the_socket_hears_one_sentence_and_the_session_ends(voice, phone, redis_client, fake_api):
    call = phone("CA" + "c" * 32, caller=STRANGER)
    assert call.next().message == {"type": "text", "token": NOT_OWNER, "last": True}
    end = call.next().message
    assert end["type"] == "end" and json.loads(end["handoffData"]) == {"reasonCode": "not-owner"}
    call.say("build something")  # ignored: no owner call on this socket
    assert call.quiet(0.5) == []
    assert not redis_client.exists(keys.call(call.call_sid)) and fake_api.requests == []


def test_tokens_are_streamed_as_they_arrive(phone, fake_api):
    story = ("Once upon a time a small robot learned to write tidy Python, and every night it ran the tests "
             "twice before it went to sleep.")
    fake_api.script([text(story, chunk_delay=0.25)], match="tell me a story")
    call = phone()
    began = time.monotonic()
    call.say("tell me a story")
    reply = call.reply()
    tokens = [h for h in reply.messages if not h.message["last"]]
    assert len(tokens) >= 5  # several text messages before last=true
    assert all(h.message == {"type": "text", "token": h.message["token"], "last": False} for h in tokens)
    assert reply.messages[-1].message == {"type": "text", "token": "", "last": True}
    assert reply.text == story
    # The first token came long before the fake finished sending the reply (0.25 s between its chunks).
    assert tokens[0].at - began < 5  # (a sanity bound; the spacing below shows the streaming)
    assert reply.times[-1] - tokens[0].at >= 0.25 * (len(tokens) - 2)
    request = fake_api.message_requests[0]
    assert request.body["stream"] is True and request.body["model"] == "claude-haiku-5-5"
    assert [t["name"] for t in request.body["tools"]] == [t["name"] for t in VOICE_TOOLS]
    assert history(request) == [("user", "tell me a story")]


def test_partial_prompts_are_one_turn(phone, fake_api):
    fake_api.script([text("Noted, sir.")], match="remind me")
    call = phone()
    call.say_in_parts("remind me", "to water", "the plants")
    assert call.reply().text == "Noted, sir."
    assert len(fake_api.message_requests) == 1
    assert history(fake_api.message_requests[0]) == [("user", "remind me to water the plants")]


def test_an_interrupt_stops_the_reply_and_the_history_keeps_what_was_heard(phone, fake_api):
    story = ("Once upon a time a small robot learned to write tidy Python, and every night it ran the tests "
             "twice before it went to sleep.")
    fake_api.script([text(story, chunk_delay=0.3), text("It slept soundly, sir.")], match="tell me a story")
    call = phone()
    call.say("tell me a story")
    first, second = call.next(), call.next()
    assert first.message["token"] + second.message["token"] == "Once upon a time a small "
    call.interrupt("Once upon a time a small", duration_ms=1800)
    late = call.quiet(1.5)
    assert len(late) <= 1 and all(not h.message.get("last") for h in late)  # at most one already in flight
    assert len(call.heard) <= 3  # two tokens read, at most one in flight: the rest of the story was never sent
    call.say("and then what")
    assert call.reply().text == "It slept soundly, sir."
    assert history(fake_api.message_requests[1]) == [("user", "tell me a story"),
                                                     ("assistant", "Once upon a time a small"),
                                                     ("user", "and then what")]


def test_an_interrupt_after_the_reply_was_generated_still_trims_the_history(phone, fake_api):
    fake_api.script([text("The weather is grand, sir, and tomorrow looks even better."), text("Indeed.")],
                    match="weather")
    call = phone()
    call.say("how's the weather")
    assert call.reply().text.startswith("The weather is grand")
    call.interrupt("The weather is grand")  # Twilio was still speaking it
    call.say("lovely")
    call.reply()
    assert history(fake_api.message_requests[1])[1] == ("assistant", "The weather is grand")


def test_a_new_prompt_while_a_reply_streams_supersedes_it(phone, fake_api):
    long = "Let me tell you everything about the history of computing, starting with the abacus and beyond."
    fake_api.script([text(long, chunk_delay=0.3), text("Right away, sir.")], match="history lesson")
    call = phone()
    call.say("give me a history lesson")
    first = call.next().message["token"]
    call.say("actually never mind")  # no interrupt from Twilio (nothing to cut yet on its side)
    cut = call.reply()  # the old talk cycle is closed at once, with what little was sent
    assert cut.messages[-1].message == {"type": "text", "token": "", "last": True}
    assert len(cut.messages) <= 2 and "Right away" not in cut.text
    assert call.reply().text == "Right away, sir."
    assert history(fake_api.message_requests[1]) == [("user", "give me a history lesson"),
                                                     ("assistant", (first + cut.text).strip()),
                                                     ("user", "actually never mind")]


def test_malformed_and_unknown_messages_do_not_break_the_call(phone, fake_api, caplog):
    fake_api.script([text("Still here, sir.")], match="are you there")
    call = phone()
    with caplog.at_level(logging.INFO, logger="tars.voice"):
        for junk in ["not json {", "[1, 2, 3]", '"a string"', "{}", '{"type": "mystery", "x": 1}',
                     '{"type": 42}', '{"type": "prompt"}', '{"type": "dtmf"}', '{"type": "interrupt"}']:
            call.send(junk)
        call.error("Invalid message received: { \"foo\" : \"bar\" }")
        call.say("are you there")
        assert call.reply().text == "Still here, sir."
    messages = [r.getMessage() for r in caplog.records]
    assert any("not JSON" in m for m in messages) and any("unknown type 'mystery'" in m for m in messages)
    assert any("ConversationRelay reported an error" in m for m in messages)


def test_an_anthropic_failure_is_one_apology_and_the_call_goes_on(phone, fake_api):
    fake_api.script([error(400, message="bad request"), text("Back with you, sir.")], match="hello")
    call = phone()
    call.say("hello")
    assert call.reply().text == APOLOGY
    call.say("hello again")
    assert call.reply().text == "Back with you, sir."
    assert history(fake_api.message_requests[1]) == [("user", "hello"), ("assistant", APOLOGY),
                                                     ("user", "hello again")]


def test_the_voice_brain_answers_and_starts_a_task_through_an_openai_compatible_model(make_server, phone, fake_api,
                                                                                     fake_openai, projects, tasks):
    """VOICE_MODELS names an OpenAI-compatible model first: the call is answered by it, streamed, and its tool call
    starts a task, as with Claude."""
    (projects / "calculator").mkdir()
    fake_openai.script([oai.tool_call("start_autonomous_coding", {"goal": "Build a calculator app with tests",
                                                                   "project_path": "calculator"}),
                        lambda body: oai.text(body["messages"][-1]["content"])],
                       match="build a calculator in my calculator project")
    server = make_server(VOICE_MODELS="openai:gpt-5.1-mini", OPENAI_BASE_URL=fake_openai.base_url,
                         OPENAI_API_KEY="sk-test-openai")
    call = phone(server=server)
    call.say("build a calculator in my calculator project")
    reply = call.reply()
    task_id = task_id_in(reply.text)
    assert reply.text == (f"Started task {task_id} in your calculator project in background, sir. I'll send updates "
                          f"to Discord.")
    assert len(reply.tokens) > 3  # streamed word by word, not said at once
    status = tasks.status(task_id)
    assert status.goal == "Build a calculator app with tests" and status.call_sid == call.call_sid
    assert fake_api.message_requests == []  # Claude was never asked
    first = fake_openai.requests[0].body
    assert first["model"] == "gpt-5.1-mini" and first["stream"] is True
    assert [t["function"]["name"] for t in first["tools"]] == [t["name"] for t in VOICE_TOOLS]


def test_claude_overloaded_mid_call_the_next_voice_model_answers_after_a_pause(make_server, phone, fake_api,
                                                                              fake_openai):
    fake_api.script([text("Hello, sir."), repeat(error(529))], match="hello")
    fake_openai.script([oai.text("Still here, sir.")], match="hello")
    server = make_server(VOICE_MODELS="anthropic:claude-haiku-5-5,openai:gpt-5.1-mini",
                         OPENAI_BASE_URL=fake_openai.base_url, OPENAI_API_KEY="sk-test-openai")
    call = phone(server=server)
    call.say("hello")
    assert call.reply().text == "Hello, sir."
    call.say("hello again")
    assert call.reply(timeout=30).text == "Still here, sir."  # no apology: the caller only waited
    # the OpenAI-compatible model got the whole call so far
    assert [m["role"] for m in fake_openai.requests[0].body["messages"]] == ["system", "user", "assistant", "user"]


# --- tasks by voice --
def start_a_calculator(fake_api, projects, worker_turns):
    (projects / "calculator").mkdir()
    fake_api.script(worker_turns, match="Goal: Build a calculator app with tests")
    fake_api.script([tool_use("start_autonomous_coding", {"goal": "Build a calculator app with tests",
                                                          "project_path": "calculator"}),
                     echo_tool_result,
                     tool_use("check_coding_progress", {}), echo_tool_result,
                     lambda body: tool_use("cancel_coding_task",
                                           {"task_id": task_id_in(json.dumps(body["messages"]))}),
                     echo_tool_result],
                    match="build a calculator in my calculator project")


def test_a_task_started_checked_and_cancelled_by_voice(phone, fake_api, projects, tasks, start_worker,
                                                       redis_client):
    start_a_calculator(fake_api, projects, [bash("sleep 60"), text("Built it.")])
    worker = start_worker()
    call = phone()
    call.say("build a calculator in my calculator project")
    started = call.reply().text
    task_id = task_id_in(started)
    assert started == f"Started task {task_id} in your calculator project in background, sir. " \
                      f"I'll send updates to Discord."
    status = tasks.status(task_id)
    assert status.call_sid == call.call_sid and status.project_path == str(projects / "calculator")
    assert status.goal == "Build a calculator app with tests"
    wait_until(lambda: "sleep" in tasks.status(task_id).progress, what="the worker to run the command")

    call.say("how's it going")
    answer = call.reply().text
    assert answer == spoken_status(tasks.status(task_id))  # the real status, from Redis
    assert answer.startswith(f"Task {task_id} is running")
    assert FILLER.strip() not in answer  # a quick function needs no filler

    redis_client.execute_command("CLIENT", "PAUSE", 1500, "WRITE")  # Redis is slow for a moment
    call.say("cancel it")
    cancelled = call.reply(timeout=30)
    assert cancelled.tokens[0] == FILLER  # the function took over a second: the caller was told to hold on
    assert cancelled.text == f"{FILLER}Task {task_id} was cancelled."
    assert tasks.status(task_id).status == "cancelled"
    assert worker.process.poll() is None
    cancel_request = fake_api.requests_for("build a calculator in my calculator project")[-1]
    assert cancel_request.body["messages"][-1]["content"][0]["content"] == f"Task {task_id} was cancelled."


def test_a_task_ending_is_announced_to_the_call_that_started_it(phone, fake_api, projects, tasks, start_worker):
    start_a_calculator(fake_api, projects, [edit(command="create", path="calc.py", file_text="x = 1\n"),
                                            text("Built it.")])
    other = phone("CA" + "2" * 32)  # another line of the owner's: hears nothing of this task's ending
    call = phone()
    call.say("build a calculator in my calculator project")
    task_id = task_id_in(call.reply().text)
    start_worker()
    ending = call.next(timeout=60).message
    # calculator is not a git repository: the task worked in place, with a checkpoint outside it
    assert ending == {"type": "text", "last": True, "token": f"Task {task_id} is complete, sir. It made 1 commit "
                      "in place, changing 1 file, with no tests to run."}
    assert tasks.status(task_id).status == "complete"
    assert other.quiet(1.0) == []


def test_a_task_whose_model_is_overloaded_tells_its_call_which_model_took_over(phone, fake_api, fake_openai,
                                                                              projects, tasks, start_worker):
    (projects / "calculator").mkdir()
    fake_api.script([repeat(error(529))], match="Goal: Build a calculator app with tests")
    fake_api.script([tool_use("start_autonomous_coding", {"goal": "Build a calculator app with tests",
                                                          "project_path": "calculator"}), echo_tool_result],
                    match="build a calculator in my calculator project")
    fake_openai.script([oai.edit(command="create", path="calc.py", file_text="x = 1\n"), oai.text("Built it.")],
                       match="Goal: Build a calculator app with tests")
    call = phone()
    call.say("build a calculator in my calculator project")
    task_id = task_id_in(call.reply().text)
    start_worker(CODING_MODELS="anthropic:claude-sonnet-5-5,openai:gpt-5.1", OPENAI_BASE_URL=fake_openai.base_url,
                 OPENAI_API_KEY="sk-test-openai", OPENAI_MAX_RETRIES="0")
    assert call.next(timeout=60).message["token"] == (
        f"Sir, task {task_id} goes on with gpt-5.1 on OpenAI, because the Anthropic API was overloaded (529, after "
        f"3 attempts).")
    assert call.next(timeout=60).message["token"].startswith(f"Task {task_id} is complete, sir.")


def test_a_failed_task_is_announced_with_its_reason(phone, fake_api, projects, tasks, start_worker):
    (projects / "calculator").mkdir()
    fake_api.script([error(400, message="prompt is too long")], match="Goal: Build a calculator app with tests")
    fake_api.script([tool_use("start_autonomous_coding", {"goal": "Build a calculator app with tests",
                                                          "project_path": "calculator"}),
                     echo_tool_result, text("That is a pity, sir.")], match="build a calculator in my calculator",
                    name="voice")
    call = phone()
    call.say("build a calculator in my calculator project")
    started = call.reply().text
    task_id = task_id_in(started)
    start_worker()
    ending = call.next(timeout=60).message
    status = wait_until(lambda: (s := tasks.status(task_id)).result and s, what="RQ to store the result")
    assert status.status == "failed" and "prompt is too long" in status.reason
    assert ending == {"type": "text", "last": True,
                      "token": f"Task {task_id} failed, sir: {status.reason.splitlines()[0].rstrip('.')}. "
                               "It changed no files."}
    call.interrupt(f"Task {task_id} failed")  # the owner talks over the announcement
    call.say("oh no")
    assert call.reply().text == "That is a pity, sir."
    spoken = history(fake_api.requests_for("voice")[-1])
    assert spoken[1:] == [("assistant", ""), ("user", started),
                          ("assistant", f"{started} Task {task_id} failed"), ("user", "oh no")]


def test_hanging_up_cancels_the_reply_and_leaves_the_task_running(phone, fake_api, projects, tasks, start_worker,
                                                                  redis_client):
    start_a_calculator(fake_api, projects, [delay(3, edit(command="create", path="calc.py", file_text="x = 1\n")),
                                            text("Built it.")])
    story = "A very long story " * 20
    fake_api.script([text(story, chunk_delay=0.3)], match="a long story")
    call = phone()
    call.say("build a calculator in my calculator project")
    task_id = task_id_in(call.reply().text)
    start_worker()
    other = phone("CA" + "3" * 32)
    other.say("tell me a long story")
    other.next()
    other.hang_up()  # mid-reply
    wait_until(lambda: not redis_client.exists(keys.call(other.call_sid)), timeout=30, what="the hang-up")
    call.hang_up()  # while the task runs
    wait_until(lambda: not redis_client.exists(keys.call(call.call_sid)), timeout=30, what="the hang-up")
    assert tasks.wait_until_ended(task_id, 60)
    assert tasks.status(task_id).status == "complete"
    assert (projects / "calculator" / "calc.py").exists()
    assert len(fake_api.requests_for("a long story")) == 1  # the cut reply never went on


# --- confirmation codes mid-call --
def destructive_task(tasks, fake_api, projects, call_sid=None, hold=2.0):
    """A real task that will stop for the owner's code `hold` seconds after the worker asks the model."""
    project = projects / "cleanup"
    project.mkdir()
    (project / "old_backup.py").write_text("# old\n")
    fake_api.script([delay(hold, bash("rm old_backup.py")), text("Removed the old backup.")],
                    match="Goal: Remove the old backup")
    return tasks.start("Remove the old backup", project_path="cleanup", call_sid=call_sid), project


def announcement(task_id):
    return {"type": "text", "last": True, "interruptible": False,
            "token": f"Sir, the background programming task {task_id} needs your confirmation code. I need to run: "
                     f"rm old_backup.py. The reason: rm deletes files. Please provide your confirmation code."}


def test_a_confirmation_mid_reply_waits_for_the_reply_and_is_answered_by_voice(phone, fake_api, projects, tasks,
                                                                             start_worker, redis_client, caplog):
    caplog.set_level(logging.INFO, logger="tars.voice")
    story = ("Once upon a time a small robot learned to write tidy Python, and every night it ran the tests "
             "twice before it went to sleep, dreaming of green checkmarks and empty queues.")
    fake_api.script([text(story, chunk_delay=0.25),
                     tool_use("submit_background_confirmation", {"confirmation_code": "six two eight three"}),
                     echo_tool_result], match="tell me a story")
    task_id, project = destructive_task(tasks, fake_api, projects, hold=1.5)
    published = []
    listener = redis_client.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(keys.TASK_EVENTS_CHANNEL)

    def watch():
        while not published:
            message = listener.get_message(timeout=30)
            if message and json.loads(message["data"])["type"] == "confirmation_required":
                published.append(time.monotonic())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    call = phone()
    start_worker()
    wait_until(lambda: fake_api.requests_for("Goal: Remove the old backup"), what="the worker to ask the model")
    call.say("tell me a story")
    reply = call.reply(timeout=30)
    assert reply.text == story  # not a word of the announcement inside the story
    heard = call.next(timeout=30)
    assert heard.message == announcement(task_id)  # one message, after the story's last=true
    watcher.join(5)
    assert published and published[0] < reply.times[-1] <= heard.at  # it was asked while the story streamed
    assert call.heard.index(heard) == len(reply.messages)

    call.say("six two eight three")
    assert call.reply().text == f"Confirmation code received for task {task_id}, sir."
    confirm_request = fake_api.requests_for("tell me a story")[1]
    assert ("assistant", f"{story} {announcement(task_id)['token']}") in history(confirm_request)
    assert tasks.wait_until_ended(task_id, 30)
    assert tasks.status(task_id).status == "complete"
    assert not (project / "old_backup.py").exists()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "six two eight three" not in logged and TEST_CODE not in logged  # the code never reaches the log
    assert "confirmation_code': '***'" in logged


def test_a_confirmation_answered_from_discord_while_the_call_is_up(phone, voice, fake_api, projects, tasks,
                                                                 start_worker):
    fake_api.script([text("Very good, sir.")], match="thanks")
    task_id, project = destructive_task(tasks, fake_api, projects, hold=0)
    call = phone()
    start_worker()
    assert call.next(timeout=30).message == announcement(task_id)
    answer = httpx.post(voice.url + "/webhook/background-confirmation", json={"task_id": task_id, "code": TEST_CODE},
                        headers={"X-TARS-Webhook-Secret": TEST_WEBHOOK_SECRET})
    assert answer.status_code == 200, answer.text
    assert tasks.wait_until_ended(task_id, 30)
    assert tasks.status(task_id).status == "complete" and not (project / "old_backup.py").exists()
    call.say("thanks")  # the call is still up and well
    assert call.reply().text == "Very good, sir."


def test_a_confirmation_code_typed_on_the_keypad(phone, fake_api, projects, tasks, start_worker):
    task_id, project = destructive_task(tasks, fake_api, projects, hold=0)
    call = phone()
    start_worker()
    assert call.next(timeout=30).message == announcement(task_id)
    call.press("6283#")
    assert call.next().message == {"type": "text", "token": f"Confirmation code received for task {task_id}, sir.",
                                   "last": True}
    assert tasks.wait_until_ended(task_id, 30)
    assert tasks.status(task_id).status == "complete" and not (project / "old_backup.py").exists()


def test_a_wrong_keypad_code_is_rejected_and_the_next_one_works(phone, fake_api, projects, tasks, start_worker):
    task_id, _project = destructive_task(tasks, fake_api, projects, hold=0)
    call = phone()
    start_worker()
    call.next(timeout=30)
    call.press("1*99#")  # * clears what was typed: the code is 99
    rejected = call.next().message["token"]
    assert "rejected" in rejected and "4 attempts left" in rejected
    assert tasks.status(task_id).status == "awaiting_confirmation"
    call.press("6283#")
    assert call.next().message["token"] == f"Confirmation code received for task {task_id}, sir."
    assert tasks.wait_until_ended(task_id, 30)


def test_every_owner_call_hears_the_request_at_once(make_server, phone, fake_api, projects, tasks, start_worker):
    second_server = make_server()
    first = phone("CA" + "4" * 32)
    second = phone("CA" + "5" * 32, server=second_server)
    task_id, _project = destructive_task(tasks, fake_api, projects, hold=0)
    start_worker()
    heard = [first.next(timeout=30), second.next(timeout=30)]
    assert [h.message for h in heard] == [announcement(task_id)] * 2
    assert abs(heard[0].at - heard[1].at) < 10  # both as it is published (wide: a loaded machine delays one)
    second.press("6283#")
    assert second.next().message["token"] == f"Confirmation code received for task {task_id}, sir."
    assert tasks.wait_until_ended(task_id, 30)


@pytest.mark.usefixtures("private_git")
def test_the_owner_asks_for_a_plan_hears_it_before_work_starts_and_hears_the_ending(make_server, phone, fake_api,
                                                                                     projects, tasks, start_worker):
    server = make_server(PLAN_GOALS="ask")
    owner_repo(projects / "todo", {"README.md": "# todo\n"})
    fake_api.script([tool_use("start_autonomous_coding", {"goal": "A todo app with a store and a CLI",
                                                          "project_path": "todo", "plan": True}),
                     echo_tool_result], match="plan it out: a todo app", name="voice")
    fake_api.script([tool_use("plan_subtasks", {"subtasks": [
        {"key": "store", "title": "SQLite store", "goal": "Write store.py", "depends_on": []},
        {"key": "cli", "title": "Command line", "goal": "Write cli.py using the store", "depends_on": ["store"]}]})],
        match="Plan the work for this goal", name="planner")
    for key in ("store", "cli"):
        fake_api.script([edit(command="create", path=f"{key}.py", file_text=f"NAME = '{key}'\n"), text("Done.")],
                        match=f"Goal: Write {key}.py", name=key)
    call = phone(server=server)
    call.say("plan it out: a todo app with a store and a CLI")
    started = call.reply().text
    task_id = task_id_in(started)
    assert "I'll plan it out first" in started
    start_worker()
    plan = call.next(timeout=120).message
    assert plan == {"type": "text", "last": True, "token": f"Sir, task {task_id} is planned in 2 subtasks: SQLite "
                    "store; and Command line, after store. Work starts now."}
    ending = call.next(timeout=180).message
    assert ending["token"].startswith(f"Task {task_id} is complete, sir. It made "), ending
    assert tasks.status(task_id).status == "complete"
