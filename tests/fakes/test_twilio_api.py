"""The Twilio stand-in speaks Twilio's REST API: the real twilio SDK places calls, sends texts and points numbers
through it, and is refused the way Twilio refuses; its helpers play Twilio's side of a call against a tiny local
HTTP and WebSocket receiver (TARS's own routes are tested with them in the owner-phone stories)."""

from __future__ import annotations

import json
import queue
import threading
from urllib.parse import parse_qs

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from websockets.sync.server import serve

from communication.twilio_rest import _BaseUrlHttpClient
from tests.fakes.twilio_api import AUTH_TOKEN, Call, FakeTwilio, sms_reply
from tests.fakes.webhook_server import Reply

PUBLIC = "https://tars.example.test"
RELAY_TWIML = (
    '<Response><Connect action="https://tars.example.test/voice/status">'
    '<ConversationRelay url="wss://tars.example.test/relay" welcomeGreeting="Sir, task a7f3c1 needs your code." '
    'dtmfDetection="true"><Parameter name="purpose" value="confirm"/><Parameter name="task_id" value="a7f3c1"/>'
    "</ConversationRelay></Connect></Response>")
EVENTS = ["initiated", "ringing", "answered", "completed"]


@pytest.fixture
def twilio(fake_twilio) -> FakeTwilio:
    return fake_twilio


def sdk(twilio: FakeTwilio, username: str | None = None, password: str | None = None) -> Client:
    """The real SDK client, its requests sent to the stand-in the way TARS sends them (TWILIO_API_BASE_URL)."""
    return Client(username or twilio.account_sid, password or twilio.auth_token, account_sid=twilio.account_sid,
                  http_client=_BaseUrlHttpClient(twilio.base_url))


def place(client: Client, twilio: FakeTwilio, **overrides):
    fields = {"to": twilio.owner, "from_": twilio.number, "twiml": RELAY_TWIML, "timeout": 25,
              "status_callback": f"{PUBLIC}/voice/call-status", "status_callback_method": "POST",
              "status_callback_event": EVENTS} | overrides
    return client.calls.create(**fields)


def placed(client: Client, twilio: FakeTwilio, **overrides) -> Call:
    """The stand-in's record of a call placed through the SDK."""
    sid = place(client, twilio, **overrides).sid
    return twilio.wait_for_call(lambda c: c.sid == sid)


def refused(call) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as caught:
        call()
    return caught.value


# --- calls ---------------------------------------------------------------------------------------------------------
def test_a_call_placed_with_twiml_is_queued_and_recorded_with_every_field(twilio):
    call = place(sdk(twilio), twilio)

    assert call.sid.startswith("CA") and len(call.sid) == 34
    assert (call.status, call.direction, call.to, call._from) == ("queued", "outbound-api", twilio.owner,
                                                                  twilio.number)
    assert call.date_created is not None and call.uri.endswith(f"/Calls/{call.sid}.json")
    recorded = twilio.wait_for_call(lambda c: c.sid == call.sid)
    assert recorded.twiml == RELAY_TWIML
    assert recorded.status_callback == f"{PUBLIC}/voice/call-status"
    assert recorded.status_callback_events == EVENTS  # a repeated form field, every value kept
    assert recorded.timeout == 25
    # what `answer` will read out of the TwiML
    assert recorded.relay_url == "wss://tars.example.test/relay"
    assert recorded.parameters == {"purpose": "confirm", "task_id": "a7f3c1"}
    assert recorded.relay_attributes["dtmfDetection"] == "true"
    assert recorded.connect_action == f"{PUBLIC}/voice/status"


def test_a_call_is_fetched_and_hung_up_through_the_api(twilio):
    client = sdk(twilio)
    call = place(client, twilio)
    assert client.calls(call.sid).fetch().status == "queued"

    assert client.calls(call.sid).update(status="canceled").status == "canceled"  # not answered yet
    assert twilio.call(call.sid).ended
    # a call that ended takes no new TwiML
    error = refused(lambda: client.calls(call.sid).update(twiml="<Response><Hangup/></Response>"))
    assert (error.status, error.code) == (400, 21220)


def test_an_answered_call_hung_up_through_the_api_is_completed_with_its_duration(twilio, relay_receiver):
    client = sdk(twilio)
    call = placed(client, twilio)
    phone = twilio.answer(call, relay_receiver.port, PUBLIC)
    relay_receiver.next()  # the setup message

    ended = client.calls(call.sid).update(status="completed")

    assert (ended.status, ended.duration) == ("completed", "0")
    assert ended.end_time is not None
    assert phone.closed.wait(5), "Twilio ends the relay session of a call hung up"


def test_a_call_without_to_or_from_or_instructions_is_refused_as_twilio_words_it(twilio):
    client = sdk(twilio)
    cases = {21201: {"to": ""}, 21213: {"from_": ""}, 21205: {"twiml": None},
             21210: {"from_": "+15559998888"}, 21211: {"to": "5551234"}, 32018: {"twiml": "<Response>" + "x" * 4000}}
    for code, override in cases.items():
        error = refused(lambda: place(client, twilio, **override))
        assert (error.status, error.code) == (400, code), override
    assert twilio.calls == []


def test_an_unknown_call_is_a_404(twilio):
    error = refused(lambda: sdk(twilio).calls("CA" + "f" * 32).fetch())
    assert (error.status, error.code) == (404, 20404)


# --- texts ---------------------------------------------------------------------------------------------------------
def test_a_text_is_queued_and_recorded(twilio):
    message = sdk(twilio).messages.create(to=twilio.owner, from_=twilio.number, body="Task a7f3c1 needs your code.")

    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert (message.status, message.direction, message.num_segments) == ("queued", "outbound-api", "1")
    recorded = twilio.wait_for_message(lambda m: m.to == twilio.owner)
    assert (recorded.sid, recorded.body, recorded.from_) == (message.sid, "Task a7f3c1 needs your code.",
                                                              twilio.number)


def test_a_long_text_counts_its_segments_and_an_overlong_one_is_refused(twilio):
    client = sdk(twilio)
    assert client.messages.create(to=twilio.owner, from_=twilio.number, body="a" * 161).num_segments == "2"
    assert client.messages.create(to=twilio.owner, from_=twilio.number, body="é…" * 36).num_segments == "2"
    error = refused(lambda: client.messages.create(to=twilio.owner, from_=twilio.number, body="a" * 1601))
    assert (error.status, error.code) == (400, 21617)


def test_a_text_without_body_or_to_or_from_a_stranger_number_is_refused(twilio):
    client = sdk(twilio)
    cases = {21602: {"body": ""}, 21604: {"to": ""}, 21606: {"from_": "+15559998888"}}
    for code, override in cases.items():
        fields = {"to": twilio.owner, "from_": twilio.number, "body": "hello"} | override
        error = refused(lambda: client.messages.create(**fields))
        assert (error.status, error.code) == (400, code), override
    assert twilio.messages == []


def test_the_texts_list_pages_through_every_text_newest_first(twilio):
    client = sdk(twilio)
    for n in range(5):
        client.messages.create(to=twilio.owner, from_=twilio.number, body=f"text {n}")
    # two to a page: the SDK follows next_page_uri until the last page
    assert [m.body for m in client.messages.list(page_size=2)] == [f"text {n}" for n in range(4, -1, -1)]


# --- the account and its numbers -----------------------------------------------------------------------------------
def test_the_account_is_read_with_its_friendly_name(twilio):
    account = sdk(twilio).api.v2010.accounts(twilio.account_sid).fetch()
    assert (account.sid, account.friendly_name, account.status) == (twilio.account_sid, "TARS test account",
                                                                    "active")


def test_a_number_is_found_by_its_phone_number_and_pointed_at_tars(twilio):
    client = sdk(twilio)
    found = client.incoming_phone_numbers.list(phone_number=twilio.number, limit=1)
    assert [n.phone_number for n in found] == [twilio.number]
    assert client.incoming_phone_numbers.list(phone_number="+15559998888") == []

    updated = client.incoming_phone_numbers(found[0].sid).update(
        voice_url=f"{PUBLIC}/voice", voice_method="POST", sms_url=f"{PUBLIC}/sms", sms_method="POST")

    assert (updated.voice_url, updated.sms_url, updated.voice_method) == (f"{PUBLIC}/voice", f"{PUBLIC}/sms", "POST")
    assert client.incoming_phone_numbers(found[0].sid).fetch().sms_url == f"{PUBLIC}/sms"
    assert twilio.numbers[0].updates[-1]["VoiceUrl"] == [f"{PUBLIC}/voice"]


def test_a_stand_in_made_with_several_numbers_and_webhooks_lists_them():
    with FakeTwilio(numbers=["+15550001111", "+15550002222"], voice_url="https://old.example/voice") as twilio:
        numbers = sdk(twilio).incoming_phone_numbers.list()
        assert sorted(n.phone_number for n in numbers) == ["+15550001111", "+15550002222"]
        assert {n.voice_url for n in numbers} == {"https://old.example/voice"}
        # a partial number with '*' for any digit, as Twilio's filter takes it
        assert [n.phone_number for n in sdk(twilio).incoming_phone_numbers.list(phone_number="2*22")] == \
            ["+15550002222"]


# --- credentials and paths -----------------------------------------------------------------------------------------
def test_a_wrong_auth_token_is_refused_with_twilios_20003(twilio):
    error = refused(lambda: place(sdk(twilio, password="not-the-token"), twilio))
    assert (error.status, error.code) == (401, 20003)
    assert twilio.calls == []
    body = httpx.get(f"{twilio.base_url}/2010-04-01/Accounts/{twilio.account_sid}.json").json()
    assert body == {"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003",
                    "status": 401}


def test_an_api_key_and_its_secret_work_and_a_wrong_secret_does_not(twilio):
    call = place(sdk(twilio, twilio.api_key_sid, twilio.api_key_secret), twilio)
    assert twilio.call(call.sid).to == twilio.owner
    assert twilio.requests[-1].username == twilio.api_key_sid  # the key, not the account, signed in

    error = refused(lambda: place(sdk(twilio, twilio.api_key_sid, "wrong-secret"), twilio))
    assert (error.status, error.code) == (401, 20003)


def test_another_accounts_path_and_an_unknown_resource_are_404s(twilio):
    auth = (twilio.account_sid, twilio.auth_token)
    other = httpx.get(f"{twilio.base_url}/2010-04-01/Accounts/AC{'9' * 32}/Calls.json", auth=auth)
    unknown = httpx.get(f"{twilio.base_url}/2010-04-01/Accounts/{twilio.account_sid}/Faxes.json", auth=auth)
    for answer in (other, unknown):
        assert answer.status_code == 404 and answer.json()["code"] == 20404


def test_a_planned_failure_refuses_the_next_request_only(twilio):
    twilio.fail("Calls", 503)
    client = sdk(twilio)
    error = refused(lambda: place(client, twilio))
    assert (error.status, error.code) == (503, 20503)
    assert place(client, twilio).status == "queued"  # Twilio is back


def test_waiting_for_a_call_that_never_comes_says_what_was_placed(twilio):
    place(sdk(twilio), twilio)
    with pytest.raises(AssertionError, match="a call did not happen.*queued"):
        twilio.wait_for_call(lambda c: c.to == "+15559998888", timeout=0.2)


def test_a_call_placed_from_another_thread_wakes_the_waiter(twilio):
    # the waiter blocks on the stand-in's condition, woken by the request itself
    threading.Thread(target=place, args=(sdk(twilio), twilio), daemon=True).start()
    assert twilio.wait_for_call(timeout=10).to == twilio.owner


# --- Twilio's side of the call: answer, report, incoming text ------------------------------------------------------
class RelayReceiver:
    """A tiny WebSocket server standing in for TARS's /relay: records the handshake and the messages."""

    def __init__(self):
        self.handshakes: queue.Queue = queue.Queue()
        self.messages: queue.Queue = queue.Queue()
        self.server = serve(self._handle, "127.0.0.1", 0)
        self.port = self.server.socket.getsockname()[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handle(self, connection) -> None:
        self.handshakes.put((connection.request.path, connection.request.headers))
        for raw in connection:
            self.messages.put(json.loads(raw))

    def next(self) -> dict:
        return self.messages.get(timeout=10)

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def relay_receiver():
    receiver = RelayReceiver()
    yield receiver
    receiver.stop()


def test_answering_a_call_opens_its_relay_signed_and_sends_an_outbound_setup(twilio, relay_receiver):
    call = placed(sdk(twilio), twilio)

    phone = twilio.answer(call, relay_receiver.port, PUBLIC)

    path, headers = relay_receiver.handshakes.get(timeout=10)
    assert path == "/relay"
    assert RequestValidator(AUTH_TOKEN).validate("wss://tars.example.test/relay", {},
                                                 headers["X-Twilio-Signature"])
    setup = relay_receiver.next()
    assert setup["type"] == "setup"
    assert (setup["callSid"], setup["from"], setup["to"], setup["direction"]) == (call.sid, twilio.number,
                                                                                  twilio.owner, "outbound-api")
    assert setup["customParameters"] == {"purpose": "confirm", "task_id": "a7f3c1"}
    assert sdk(twilio).calls(call.sid).fetch().status == "in-progress"
    phone.say("6283")  # the rest of the call is the RelayClient's
    assert relay_receiver.next()["voicePrompt"] == "6283"


def test_a_call_that_ended_cannot_be_answered(twilio, relay_receiver):
    client = sdk(twilio)
    call = placed(client, twilio)
    client.calls(call.sid).update(status="canceled")
    with pytest.raises(AssertionError, match="canceled"):
        twilio.answer(call, relay_receiver.port, PUBLIC)


def test_status_callbacks_are_posted_signed_in_sequence_with_the_duration_at_the_end(twilio, make_webhook):
    tars = make_webhook()
    tars.default = Reply(200, {"Content-Type": "text/xml"}, b"<Response/>")
    call = placed(sdk(twilio), twilio)

    for status in ("initiated", "ringing", "in-progress", "completed"):
        assert twilio.report(call, status, tars.url(""), PUBLIC).status_code == 200

    posts = tars.wait_for(4)
    forms = [{k: v[0] for k, v in parse_qs(p.body.decode(), keep_blank_values=True).items()} for p in posts]
    assert [f["CallStatus"] for f in forms] == ["initiated", "ringing", "in-progress", "completed"]
    assert [f["SequenceNumber"] for f in forms] == ["0", "1", "2", "3"]
    assert {(p.path, f["CallSid"], f["Direction"], f["CallbackSource"]) for p, f in zip(posts, forms)} == \
        {("/voice/call-status", call.sid, "outbound-api", "call-progress-events")}
    assert "CallDuration" in forms[-1] and "CallDuration" not in forms[1]
    for post, form in zip(posts, forms):  # signed over the public URL, as TARS checks it
        assert RequestValidator(AUTH_TOKEN).validate(f"{PUBLIC}/voice/call-status", form,
                                                     post.headers["x-twilio-signature"])
    assert twilio.call(call.sid).status == "completed"


def test_a_status_the_call_did_not_subscribe_to_is_not_reported(twilio, make_webhook):
    call = placed(sdk(twilio), twilio, status_callback_event=None)
    assert call.status_callback_events == ["completed"]  # Twilio's default
    with pytest.raises(AssertionError, match="ringing"):
        twilio.report(call, "ringing", make_webhook().url(""), PUBLIC)


def test_an_incoming_text_is_posted_to_sms_signed_and_its_twiml_reply_read(twilio, make_webhook):
    tars = make_webhook()
    tars.default = Reply(200, {"Content-Type": "text/xml"},
                         b"<Response><Message>No task is waiting, sir.</Message></Response>")

    answer = twilio.incoming_sms(tars.url(""), PUBLIC, body="status")

    assert sms_reply(answer) == ["No task is waiting, sir."]
    post = tars.wait_for(1)[0]
    form = {k: v[0] for k, v in parse_qs(post.body.decode(), keep_blank_values=True).items()}
    assert post.path == "/sms"
    assert (form["From"], form["To"], form["Body"], form["NumMedia"]) == (twilio.owner, twilio.number, "status", "0")
    assert form["MessageSid"].startswith("SM") and form["AccountSid"] == twilio.account_sid
    assert RequestValidator(AUTH_TOKEN).validate(f"{PUBLIC}/sms", form, post.headers["x-twilio-signature"])


def test_a_relay_twilio_could_not_reach_fails_the_answer(twilio, relay_receiver):
    # Twilio reaches only the public wss:// address: a ws:// or another host's relay is TARS's mistake
    for url in ("ws://tars.example.test/relay", "wss://elsewhere.example/relay"):
        call = placed(sdk(twilio), twilio, twiml=RELAY_TWIML.replace("wss://tars.example.test/relay", url))
        with pytest.raises(AssertionError, match="Twilio could not reach it"):
            twilio.answer(call, relay_receiver.port, PUBLIC)


def test_the_reply_to_a_text_is_read_in_either_twiml_form_and_a_refusal_is_loud(twilio, make_webhook):
    tars = make_webhook()
    tars.default = Reply(200, {"Content-Type": "text/xml"},
                         b'<?xml version="1.0" encoding="UTF-8"?><Response><Message><Body>Done.</Body></Message>'
                         b"<Message>Second.</Message></Response>")
    assert sms_reply(twilio.incoming_sms(tars.url(""), PUBLIC, body="status")) == ["Done.", "Second."]

    tars.default = Reply(403, {}, b"bad signature")
    with pytest.raises(AssertionError, match="403"):
        sms_reply(twilio.incoming_sms(tars.url(""), PUBLIC, "wrong-token", body="status"))
