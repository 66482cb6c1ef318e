"""TARS reaches Twilio's REST API through the real twilio SDK (communication/twilio_rest.py), here against the local
stand-in (tests/fakes/twilio_api.py): it calls and texts the owner, reads and points its number, and every failure is
one PhoneUnavailable sentence naming the setting to fix."""

from __future__ import annotations

import pytest

from communication.twilio_rest import CALL_STATUS_EVENTS, TwilioNumber, TwilioRest
from core.config import load_settings
from core.exceptions import PhoneUnavailable
from core.redis_conn import free_port

PUBLIC = "https://tars.example.test"
TWIML = ('<Response><Connect action="https://tars.example.test/voice/status">'
         '<ConversationRelay url="wss://tars.example.test/relay" welcomeGreeting="Sir, a task needs your code.">'
         '<Parameter name="purpose" value="confirm"/></ConversationRelay></Connect></Response>')


@pytest.fixture
def phone_settings(tars_env, fake_twilio):
    """settings(**overrides): TARS's settings for the stand-in's account (its auth token unless told otherwise)."""

    def make(**overrides):
        return load_settings(**(fake_twilio.settings(PUBLIC_BASE_URL=PUBLIC) | overrides))

    return make


def unavailable(action) -> str:
    with pytest.raises(PhoneUnavailable) as caught:
        action()
    return str(caught.value)


# --- calling and texting the owner ---------------------------------------------------------------------------------
def test_tars_calls_the_owner_from_its_number_with_the_twiml_and_every_progress_event(phone_settings, fake_twilio):
    rest = TwilioRest(phone_settings())

    sid = rest.place_call(fake_twilio.owner, TWIML, f"{PUBLIC}/voice/call-status", ring_seconds=25)

    call = fake_twilio.call(sid)
    assert (call.to, call.from_, call.twiml) == (fake_twilio.owner, fake_twilio.number, TWIML)
    assert call.status_callback == f"{PUBLIC}/voice/call-status" and call.status_callback_method == "POST"
    assert call.status_callback_events == CALL_STATUS_EVENTS  # ringing and answered too, not only the end
    assert call.timeout == 25
    assert call.parameters == {"purpose": "confirm"}


def test_tars_texts_the_owner_from_its_number(phone_settings, fake_twilio):
    sid = TwilioRest(phone_settings()).send_text(fake_twilio.owner, "Task a7f3c1 needs your code; I called.")

    message = fake_twilio.wait_for_message(lambda m: m.sid == sid)
    assert (message.to, message.from_, message.body) == (fake_twilio.owner, fake_twilio.number,
                                                         "Task a7f3c1 needs your code; I called.")


def test_an_api_key_pair_calls_instead_of_the_auth_token(phone_settings, fake_twilio):
    rest = TwilioRest(phone_settings(TWILIO_AUTH_TOKEN="", TWILIO_API_KEY_SID=fake_twilio.api_key_sid,
                                     TWILIO_API_KEY_SECRET=fake_twilio.api_key_secret))

    sid = rest.place_call(fake_twilio.owner, TWIML, f"{PUBLIC}/voice/call-status", ring_seconds=25)

    assert fake_twilio.call(sid).to == fake_twilio.owner
    assert {r.username for r in fake_twilio.requests} == {fake_twilio.api_key_sid}


# --- the number ------------------------------------------------------------------------------------------------------
def test_the_account_name_and_the_number_with_its_webhooks_are_read(phone_settings, fake_twilio):
    rest = TwilioRest(phone_settings())
    assert rest.account_name() == "TARS test account"
    assert rest.phone_number() == TwilioNumber(fake_twilio.numbers[0].sid, fake_twilio.number, "", "")


def test_the_number_is_pointed_at_tars_for_calls_and_texts(phone_settings, fake_twilio):
    rest = TwilioRest(phone_settings())

    pointed = rest.point_number(rest.phone_number().sid, f"{PUBLIC}/voice", f"{PUBLIC}/sms")

    assert (pointed.voice_url, pointed.sms_url) == (f"{PUBLIC}/voice", f"{PUBLIC}/sms")
    number = fake_twilio.numbers[0]  # what Twilio now holds
    assert (number.voice_url, number.voice_method, number.sms_url, number.sms_method) == \
        (f"{PUBLIC}/voice", "POST", f"{PUBLIC}/sms", "POST")
    assert rest.phone_number() == pointed


def test_a_number_the_account_does_not_have_is_named(phone_settings, fake_twilio):
    rest = TwilioRest(phone_settings(TWILIO_PHONE_NUMBER="+15559998888"))
    said = unavailable(rest.phone_number)
    assert f"{fake_twilio.account_sid} has no number +15559998888" in said and "TWILIO_PHONE_NUMBER" in said


def test_part_of_the_accounts_number_is_not_the_number(phone_settings, fake_twilio):
    # Twilio's PhoneNumber filter matches partial numbers: +1555000111 would find +15550001111
    rest = TwilioRest(phone_settings(TWILIO_PHONE_NUMBER=fake_twilio.number[:-1]))
    assert f"has no number {fake_twilio.number[:-1]}" in unavailable(rest.phone_number)


def test_pointing_a_number_the_account_does_not_have_names_the_account_and_number_settings(phone_settings):
    said = unavailable(lambda: TwilioRest(phone_settings()).point_number("PN" + "f" * 32, "https://a/voice",
                                                                         "https://a/sms"))
    assert "Could not update the Twilio number" in said
    assert "TWILIO_ACCOUNT_SID" in said and "TWILIO_PHONE_NUMBER" in said


# --- failures ------------------------------------------------------------------------------------------------------
def every_request(rest: TwilioRest, to: str) -> dict:
    return {"call": lambda: rest.place_call(to, TWIML, f"{PUBLIC}/voice/call-status", ring_seconds=25),
            "text": lambda: rest.send_text(to, "hello"), "account": rest.account_name,
            "number": rest.phone_number, "point": lambda: rest.point_number("PN" + "0" * 32, "https://a", "https://b")}


def test_a_wrong_auth_token_names_the_account_sid_and_auth_token_whatever_tars_asked(phone_settings, fake_twilio):
    rest = TwilioRest(phone_settings(TWILIO_AUTH_TOKEN="not-the-token"))
    for doing, action in every_request(rest, fake_twilio.owner).items():
        said = unavailable(action)
        assert "Twilio refused the credentials: check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN" in said, doing
        assert "not-the-token" not in said
    assert fake_twilio.calls == [] and fake_twilio.messages == []


def test_a_wrong_api_key_secret_names_the_key_settings(phone_settings, fake_twilio):
    rest = TwilioRest(phone_settings(TWILIO_API_KEY_SID=fake_twilio.api_key_sid, TWILIO_API_KEY_SECRET="wrong"))
    for doing, action in every_request(rest, fake_twilio.owner).items():
        assert "check TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET" in unavailable(action), doing


def test_an_unreachable_api_names_twilio_api_base_url(phone_settings, fake_twilio):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    rest = TwilioRest(phone_settings(TWILIO_API_BASE_URL=closed))
    for doing, action in every_request(rest, fake_twilio.owner).items():
        said = unavailable(action)
        assert f"could not be reached at {closed}" in said and "TWILIO_API_BASE_URL" in said, doing


def test_a_call_twilio_refuses_says_twilios_code_and_words(phone_settings, fake_twilio):
    rest = TwilioRest(phone_settings(TWILIO_PHONE_NUMBER="+15559998888"))  # not a number of the account
    said = unavailable(lambda: rest.place_call(fake_twilio.owner, TWIML, f"{PUBLIC}/voice/call-status", 25))
    assert said.startswith(f"Could not call {fake_twilio.owner}: Twilio answered 400 (error 21210)")
    assert "+15559998888" in said


def test_twilio_down_says_so(phone_settings, fake_twilio):
    fake_twilio.fail("Messages", 503)
    said = unavailable(lambda: TwilioRest(phone_settings()).send_text(fake_twilio.owner, "hello"))
    assert "Twilio answered 503 (error 20503)" in said


def test_missing_settings_are_listed_before_any_request(tars_env, fake_twilio):
    settings = load_settings(TWILIO_ACCOUNT_SID=fake_twilio.account_sid)
    said = unavailable(lambda: TwilioRest(settings))
    for name in ("TWILIO_PHONE_NUMBER", "PUBLIC_BASE_URL", "TWILIO_AUTH_TOKEN"):
        assert name in said
    assert "OWNER_PHONE_NUMBERS" not in said  # texting someone needs no owner list
    assert fake_twilio.requests == []
