"""The phone both ways, end to end: TARS calls the owner when a task needs the code, texts when the call is missed
or in quiet hours, takes the code back by voice, keypad or text, calls when a task is done and at a reminder's time.

Real app under uvicorn, real worker processes, real Redis; Twilio's REST API is the local stand-in
(tests/fakes/twilio_api.py) driven by the real `twilio` SDK, and the test plays Twilio's side of each call: it
answers with a signed ConversationRelay WebSocket, reports the call's status and sends the owner's texts as signed
webhooks.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta

import httpx
import pytest

from communication import spoken
from communication.spoken import NOT_OWNER
from core import keys
from core.call_history import CODE_MARK, CallHistory
from tests.communication.test_voice import PUBLIC, TOKEN, destructive_task, echo_tool_result, task_id_in
from tests.conftest import TEST_CODE, TEST_WEBHOOK_SECRET
from tests.fakes.anthropic_api import edit, text, tool_use
from tests.fakes.relay_client import RelayClient
from tests.fakes.twilio_api import OWNER
from tests.waiting import wait_until

STRANGER = "+15559876543"


@pytest.fixture
def make_server(serve, fake_twilio):
    """A real server that may call and text the owner through the Twilio stand-in: make_server(**overrides)."""
    return lambda **overrides: serve(**{**fake_twilio.settings(), "PUBLIC_BASE_URL": PUBLIC,
                                        "TWILIO_AUTH_TOKEN": TOKEN, "CALL_OWNER_FOR_CONFIRMATIONS": "on",
                                        **overrides})


@pytest.fixture
def server(make_server):
    return make_server()


def quiet_now() -> str:
    """QUIET_HOURS around the present moment (an hour either side, across midnight if need be)."""
    now = datetime.now().astimezone()
    return f"{(now - timedelta(hours=1)):%H:%M}-{(now + timedelta(hours=1)):%H:%M}"


def message_of(reply) -> str:
    """The <Message> of TARS's TwiML answer to a text ("" when it answers none)."""
    assert reply.status_code == 200, reply.text
    found = ET.fromstring(reply.text).find("Message")
    return "" if found is None else found.text or ""


def code_announcement(task_id: str) -> str:
    return spoken.calling_about_code(task_id, "rm old_backup.py", "`rm` deletes files")


# --- a task needs the code: TARS calls -----------------------------------------------------------------------------
def test_a_task_needing_a_code_calls_the_owner_who_says_it_and_the_task_goes_on(server, fake_twilio, fake_api,
                                                                               projects, tasks, start_worker):
    fake_api.script([tool_use("submit_background_confirmation", {"confirmation_code": "six two eight three"}),
                     echo_tool_result], match="six two eight three")
    task_id, project = destructive_task(tasks, fake_api, projects, hold=0)
    start_worker()
    call = fake_twilio.wait_for_call(timeout=60)
    assert (call.to, call.from_) == (OWNER, fake_twilio.number)
    assert call.relay_url == "wss://tars.example.test/relay"  # the TwiML connects the call to TARS's relay
    assert call.parameters == {"purpose": "confirm", "task_id": task_id}
    assert call.relay_attributes["welcomeGreeting"] == spoken.CALLING_GREETING
    assert call.status_callback == f"{PUBLIC}/voice/call-status"

    fake_twilio.report(call, "ringing", server.url, PUBLIC)
    phone = fake_twilio.answer(call, server.port, PUBLIC)
    assert phone.next(timeout=30).message == {"type": "text", "token": code_announcement(task_id), "last": True,
                                              "interruptible": False}
    phone.say("six two eight three")
    assert phone.reply().text == f"Confirmation code received for task {task_id}, sir."
    assert tasks.wait_until_ended(task_id, 30)
    assert tasks.status(task_id).status == "complete" and not (project / "old_backup.py").exists()
    history = CallHistory(server.app.state.redis, server.app.state.settings)
    lines = wait_until(lambda: (found := history.call(call.sid)[1]) and len(found) >= 3 and found,
                       what="the call's transcript")
    assert history.call(call.sid)[0].purpose == "confirm"
    assert [(line.who, line.text) for line in lines[:3]] == [
        ("tars", code_announcement(task_id)), ("caller", CODE_MARK),
        ("tars", f"Confirmation code received for task {task_id}, sir.")]
    assert message_of(fake_twilio.report(call, "completed", server.url, PUBLIC)) == ""
    assert fake_twilio.messages == [] and len(fake_twilio.calls) == 1  # answered: no text, and one call only


def test_the_code_can_be_keyed_in_on_the_call_tars_placed(server, fake_twilio, fake_api, projects, tasks,
                                                          start_worker):
    task_id, project = destructive_task(tasks, fake_api, projects, hold=0)
    start_worker()
    phone = fake_twilio.answer(fake_twilio.wait_for_call(timeout=60), server.port, PUBLIC)
    assert phone.next(timeout=30).message["token"] == code_announcement(task_id)
    phone.press(TEST_CODE + "#")
    assert phone.next().message["token"] == f"Confirmation code received for task {task_id}, sir."
    assert tasks.wait_until_ended(task_id, 30)
    assert tasks.status(task_id).status == "complete" and not (project / "old_backup.py").exists()


def test_a_missed_call_becomes_a_text_and_the_texted_code_lets_the_task_go_on(server, fake_twilio, fake_api,
                                                                             projects, tasks, start_worker):
    task_id, project = destructive_task(tasks, fake_api, projects, hold=0)
    start_worker()
    call = fake_twilio.wait_for_call(timeout=60)
    fake_twilio.report(call, "no-answer", server.url, PUBLIC)
    fake_twilio.report(call, "no-answer", server.url, PUBLIC)  # Twilio retries a callback: still one text
    sms = fake_twilio.wait_for_message()
    assert (sms.to, sms.from_) == (OWNER, fake_twilio.number)
    assert sms.body == (f"TARS (I called, no answer): task {task_id} needs your confirmation code to run: "
                        f"rm old_backup.py (rm deletes files). Reply with the code, or STATUS.")
    assert TEST_CODE not in sms.body

    assert message_of(fake_twilio.incoming_sms(server.url, PUBLIC, body=TEST_CODE)) == \
        f"TARS: Confirmation code received for task {task_id}, sir."
    assert tasks.wait_until_ended(task_id, 30)
    assert tasks.status(task_id).status == "complete" and not (project / "old_backup.py").exists()
    assert len(fake_twilio.messages) == 1 and len(fake_twilio.calls) == 1  # never called twice for one request


def test_a_call_hung_up_without_the_code_is_followed_by_a_text(server, fake_twilio, fake_api, projects, tasks,
                                                              start_worker):
    task_id, _project = destructive_task(tasks, fake_api, projects, hold=0)
    start_worker()
    call = fake_twilio.wait_for_call(timeout=60)
    phone = fake_twilio.answer(call, server.port, PUBLIC)
    assert phone.next(timeout=30).message["token"] == code_announcement(task_id)
    phone.hang_up()
    fake_twilio.report(call, "completed", server.url, PUBLIC)
    sms = fake_twilio.wait_for_message()
    assert sms.body.startswith(f"TARS (I called, no answer): task {task_id} needs your confirmation code")
    # a wrong code by text costs an attempt, as everywhere
    assert message_of(fake_twilio.incoming_sms(server.url, PUBLIC, body=f"{task_id} 0000")) == \
        f"TARS: That code was rejected for task {task_id}: 4 attempts left."
    assert message_of(fake_twilio.incoming_sms(server.url, PUBLIC, body=f"{task_id} {TEST_CODE}")) == \
        f"TARS: Confirmation code received for task {task_id}, sir."
    assert tasks.wait_until_ended(task_id, 30)
    assert tasks.status(task_id).status == "complete"


def test_a_call_answered_after_the_code_came_from_elsewhere_says_so(server, fake_twilio, fake_api, projects, tasks,
                                                                   start_worker):
    task_id, _project = destructive_task(tasks, fake_api, projects, hold=0)
    start_worker()
    call = fake_twilio.wait_for_call(timeout=60)
    tasks.confirm(task_id, TEST_CODE)  # from Discord, say, while the phone rang
    assert tasks.wait_until_ended(task_id, 30)
    phone = fake_twilio.answer(call, server.port, PUBLIC)
    assert phone.next(timeout=30).message["token"] == spoken.code_no_longer_needed(task_id)
    fake_twilio.report(call, "completed", server.url, PUBLIC)
    assert fake_twilio.messages == []


def test_quiet_hours_text_instead_of_calling(make_server, fake_twilio, fake_api, projects, tasks, start_worker):
    server = make_server(QUIET_HOURS=quiet_now())
    task_id, project = destructive_task(tasks, fake_api, projects, hold=0)
    start_worker()
    sms = fake_twilio.wait_for_message(timeout=60)
    assert sms.body.startswith(f"TARS: task {task_id} needs your confirmation code to run: rm old_backup.py")
    assert fake_twilio.calls == []
    status = message_of(fake_twilio.incoming_sms(server.url, PUBLIC, body="Status"))
    assert status.startswith("TARS: ") and f"waiting for your code: {task_id} (rm old_backup.py)" in status
    assert message_of(fake_twilio.incoming_sms(server.url, PUBLIC, body=f" {TEST_CODE} ")) == \
        f"TARS: Confirmation code received for task {task_id}, sir."
    assert tasks.wait_until_ended(task_id, 30) and not (project / "old_backup.py").exists()
    assert fake_twilio.calls == []


def test_the_owner_on_a_call_hears_the_request_there_and_is_not_rung(server, fake_twilio, fake_api, projects, tasks,
                                                                     start_worker):
    caller = RelayClient.dial(server.port, PUBLIC, TOKEN)
    caller.setup("CA" + "5" * 32, OWNER)
    wait_until(lambda: "CA" + "5" * 32 in server.app.state.voice.calls, what="the call to be set up")
    task_id, _project = destructive_task(tasks, fake_api, projects, hold=0)
    start_worker()
    assert caller.next(timeout=60).message["token"].startswith(
        f"Sir, the background programming task {task_id} needs your confirmation code.")
    caller.press(TEST_CODE + "#")
    assert tasks.wait_until_ended(task_id, 30)
    assert fake_twilio.calls == [] and fake_twilio.messages == []
    caller.close()


def test_without_call_owner_for_confirmations_nobody_is_rung(make_server, fake_twilio, fake_api, projects, tasks,
                                                             start_worker):
    make_server(CALL_OWNER_FOR_CONFIRMATIONS="off")
    task_id, _project = destructive_task(tasks, fake_api, projects, hold=0)
    start_worker()
    wait_until(lambda: tasks.status(task_id).status == "awaiting_confirmation", timeout=60,
               what="the task to wait for the code")
    tasks.confirm(task_id, TEST_CODE)
    assert tasks.wait_until_ended(task_id, 30)
    assert fake_twilio.calls == [] and fake_twilio.messages == []


def test_twilio_refusing_the_call_sends_a_text_instead(server, fake_twilio, fake_api, projects, tasks, start_worker,
                                                       caplog):
    fake_twilio.fail("Calls", 503)
    task_id, _project = destructive_task(tasks, fake_api, projects, hold=0)
    start_worker()
    sms = fake_twilio.wait_for_message(timeout=60)
    assert sms.body.startswith(f"TARS (I called, no answer): task {task_id} needs your confirmation code")
    assert any("Could not call +15551234567: Twilio answered 503" in r.getMessage() for r in caplog.records)
    tasks.cancel(task_id)


# --- placed calls are the only outbound calls the relay takes ------------------------------------------------------
def test_an_outbound_relay_session_tars_did_not_place_is_refused(server):
    forged = RelayClient.dial(server.port, PUBLIC, TOKEN)
    forged.setup("CA" + "7" * 32, "+15550001111", to=OWNER, direction="outbound-api")
    assert forged.next().message == {"type": "text", "token": NOT_OWNER, "last": True}
    assert forged.next().message["type"] == "end"
    forged.close()


# --- texts from the owner ------------------------------------------------------------------------------------------
def test_texts_from_strangers_get_no_answer_and_unsigned_ones_are_refused(server, fake_twilio, tasks):
    assert message_of(fake_twilio.incoming_sms(server.url, PUBLIC, from_=STRANGER, body="status")) == ""
    forged = fake_twilio.incoming_sms(server.url, PUBLIC, auth_token="not-the-token", body="status")
    assert forged.status_code == 403
    assert message_of(fake_twilio.incoming_sms(server.url, PUBLIC, body="hello there TARS")) == spoken.SMS_HELP
    assert message_of(fake_twilio.incoming_sms(server.url, PUBLIC, body="status")) == "TARS: no tasks yet."
    assert message_of(fake_twilio.incoming_sms(server.url, PUBLIC, body=TEST_CODE)) == \
        "TARS: no task is waiting for a code."


# --- call when done ------------------------------------------------------------------------------------------------
def test_call_me_when_it_is_done_calls_with_the_ending_and_texts_when_missed(server, fake_twilio, fake_api,
                                                                          projects, tasks, start_worker):
    (projects / "calculator").mkdir()
    fake_api.script([edit(command="create", path="calc.py", file_text="x = 1\n"), text("Built it.")],
                    match="Goal: build a calculator")
    fake_api.script([tool_use("start_autonomous_coding", {"goal": "build a calculator", "project_path": "calculator",
                                                          "call_when_done": True}),
                     echo_tool_result], match="call me when it's done")
    caller = RelayClient.dial(server.port, PUBLIC, TOKEN)
    caller.setup("CA" + "8" * 32, OWNER)
    caller.say("build a calculator in my calculator project and call me when it's done")
    said = caller.reply().text
    assert "I'll call you when it's done" in said
    task_id = task_id_in(said)
    caller.hang_up()  # the owner left: the ending comes by phone
    wait_until(lambda: "CA" + "8" * 32 not in server.app.state.voice.calls, what="the call to end")
    start_worker()
    call = fake_twilio.wait_for_call(timeout=60)
    ending = (f"Task {task_id} is complete, sir. It made 1 commit in place, changing 1 file, with no tests to run.")
    assert call.parameters == {"purpose": "done", "task_id": task_id}
    assert call.relay_attributes["welcomeGreeting"] == f"{spoken.CALLING_GREETING} {ending}"
    fake_twilio.report(call, "busy", server.url, PUBLIC)
    assert fake_twilio.wait_for_message().body == f"TARS (I called, no answer): {ending}"


def test_call_when_done_without_the_phone_set_up_is_refused_with_the_settings_to_set(cli):
    done = cli("task", "start", "--goal", "build a calculator", "--call-when-done")
    assert done.returncode == 1
    assert "I cannot call you when it is done: set TWILIO_ACCOUNT_SID, TWILIO_PHONE_NUMBER, PUBLIC_BASE_URL" in \
        done.stderr + done.stdout


# --- reminders -----------------------------------------------------------------------------------------------------
def test_a_reminder_set_on_a_call_rings_at_its_time(server, fake_twilio, fake_api):
    fake_api.script([tool_use("set_reminder", {"text": "check the deploy", "delay": "2s"}), echo_tool_result],
                    match="remind me")
    caller = RelayClient.dial(server.port, PUBLIC, TOKEN)
    caller.setup("CA" + "9" * 32, OWNER)
    caller.say("remind me in two seconds to check the deploy")
    assert caller.reply().text.startswith("I'll call you today at ")
    caller.close()
    call = fake_twilio.wait_for_call(timeout=30)
    assert call.parameters == {"purpose": "reminder", "task_id": ""}
    assert call.relay_attributes["welcomeGreeting"] == \
        f"{spoken.CALLING_GREETING} You asked me to remind you: check the deploy."
    fake_twilio.report(call, "no-answer", server.url, PUBLIC)
    assert fake_twilio.wait_for_message().body == \
        "TARS (I called, no answer): You asked me to remind you: check the deploy."
    assert server.app.state.redis.zcard(keys.REMINDERS) == 0


def test_a_reminder_by_text_or_in_quiet_hours_is_a_text(make_server, fake_twilio, fake_api):
    server = make_server(QUIET_HOURS=quiet_now())
    fake_api.script([tool_use("set_reminder", {"text": "stretch", "delay": "1s"}), echo_tool_result],
                    match="remind me")
    caller = RelayClient.dial(server.port, PUBLIC, TOKEN)
    caller.setup("CA" + "a" * 32, OWNER)
    caller.say("remind me in a second to stretch")
    caller.reply()
    assert fake_twilio.wait_for_message(timeout=30).body == "TARS: You asked me to remind you: stretch."
    assert fake_twilio.calls == []
    caller.close()


def test_the_api_takes_call_when_done_and_refuses_it_without_the_phone(serve, server, fake_twilio, tasks):
    headers = {"X-TARS-Webhook-Secret": TEST_WEBHOOK_SECRET}
    started = httpx.post(server.url + "/api/tasks", json={"goal": "add a README", "call_when_done": True},
                         headers=headers)
    assert started.status_code == 201, started.text
    assert tasks.status(started.json()["task_id"]).call_when_done is True
    bare = serve()  # no Twilio settings
    refused = httpx.post(bare.url + "/api/tasks", json={"goal": "add a README", "call_when_done": True},
                         headers=headers)
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("I cannot call you when it is done: set TWILIO_ACCOUNT_SID")
