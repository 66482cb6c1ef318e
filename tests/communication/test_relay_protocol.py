"""The ConversationRelay wire format (communication/relay_protocol.py): every message kind both ways, and bad input.

The expected JSON objects are written out here on purpose, from Twilio's "Getting and sending WebSocket
messages" page: they are what the module is checked against, not built by it.
"""

from __future__ import annotations

import json

import pytest

from communication import relay_protocol
from communication.relay_protocol import (FROM_TARS, FROM_TWILIO, Dtmf, End, ErrorReport, Interrupt,
                                          MalformedMessage, NotAnObject, NotJson, Prompt, Setup, Text, UnknownType,
                                          decode, encode, parse, parse_dict)

SETUP = Setup(call_sid="CA" + "0" * 32, caller="+18005550100", to="+18005550101", session_id="VX" + "0" * 32,
              account_sid="AC" + "1" * 32, parent_call_sid="", forwarded_from="+18005550102", call_type="PSTN",
              caller_name="", direction="inbound", call_status="RINGING", custom_parameters={"callReference": "bar"})

FROM_TWILIO_CASES = [  # (message, its JSON object on the wire)
    (SETUP, {"type": "setup", "sessionId": "VX" + "0" * 32, "accountSid": "AC" + "1" * 32, "parentCallSid": "",
             "callSid": "CA" + "0" * 32, "from": "+18005550100", "to": "+18005550101",
             "forwardedFrom": "+18005550102", "callType": "PSTN", "callerName": "", "direction": "inbound",
             "callStatus": "RINGING", "customParameters": {"callReference": "bar"}}),
    (Prompt("Hi! Can you tell me about life?", lang="en-US", last=True),
     {"type": "prompt", "voicePrompt": "Hi! Can you tell me about life?", "lang": "en-US", "last": True}),
    (Prompt("Hi! Can", lang="en-US", last=False),
     {"type": "prompt", "voicePrompt": "Hi! Can", "lang": "en-US", "last": False}),
    (Dtmf("1"), {"type": "dtmf", "digit": "1"}),
    (Interrupt("Life is a complex set of", duration_ms=460),
     {"type": "interrupt", "utteranceUntilInterrupt": "Life is a complex set of", "durationUntilInterruptMs": 460}),
    (Interrupt("Life is", duration_ms="460"),  # the console phone's form
     {"type": "interrupt", "utteranceUntilInterrupt": "Life is", "durationUntilInterruptMs": "460"}),
    (ErrorReport("Invalid message received: {}"), {"type": "error", "description": "Invalid message received: {}"}),
]

FROM_TARS_CASES = [
    (Text("Hello ", last=False), {"type": "text", "token": "Hello ", "last": False}),
    (Text("", last=True), {"type": "text", "token": "", "last": True}),
    (Text("Sir, task a7f3c1 needs your code.", last=True, interruptible=False),
     {"type": "text", "token": "Sir, task a7f3c1 needs your code.", "last": True, "interruptible": False}),
    (Text("Bonjour", last=True, interruptible=True, preemptible=False, lang="fr-FR"),
     {"type": "text", "token": "Bonjour", "last": True, "interruptible": True, "preemptible": False,
      "lang": "fr-FR"}),
    (End(json.dumps({"reasonCode": "not-owner"})), {"type": "end", "handoffData": '{"reasonCode": "not-owner"}'}),
    (End(), {"type": "end"}),
]


@pytest.mark.parametrize(("message", "wire"), FROM_TWILIO_CASES, ids=lambda v: getattr(v, "type", ""))
def test_what_twilio_sends_round_trips(message, wire):
    assert message.to_dict() == wire
    assert json.loads(encode(message)) == wire
    assert parse(encode(message)) == message
    assert parse(json.dumps(wire).encode()) == message  # a binary frame reads the same


@pytest.mark.parametrize(("message", "wire"), FROM_TARS_CASES, ids=lambda v: getattr(v, "type", ""))
def test_what_tars_sends_round_trips(message, wire):
    assert message.to_dict() == wire
    assert list(json.loads(encode(message))) == list(wire)  # the keys in the order TARS always sent them
    assert parse(encode(message), FROM_TARS) == message


def test_every_kind_has_one_class_per_direction():
    assert set(FROM_TWILIO) == {"setup", "prompt", "dtmf", "interrupt", "error"}
    assert set(FROM_TARS) == {"text", "end"}
    assert all(kind.type == name for table in (FROM_TWILIO, FROM_TARS) for name, kind in table.items())


@pytest.mark.parametrize("raw", ["not json {", "", "{", "[" * 10_000, '{"type": ' * 5000, b"\xff\xfe"])
def test_text_that_is_not_json(raw):
    with pytest.raises(NotJson) as caught:
        parse(raw)
    assert isinstance(caught.value, MalformedMessage) and isinstance(caught.value, ValueError)
    assert str(caught.value).startswith("not JSON: ")


@pytest.mark.parametrize("raw", ["[1, 2, 3]", '"a string"', "42", "null", "true"])
def test_json_that_is_not_an_object(raw):
    with pytest.raises(NotAnObject, match="not an object"):
        decode(raw)


@pytest.mark.parametrize("data", [{}, {"type": "mystery", "x": 1}, {"type": 42}, {"type": None},
                                  {"type": ["prompt"]}, {"type": "Prompt"}])
def test_an_unknown_type_names_what_came(data):
    with pytest.raises(UnknownType) as caught:
        parse(json.dumps(data))
    assert caught.value.kind == data.get("type")


def test_each_side_only_reads_what_the_other_sends():
    with pytest.raises(UnknownType) as caught:
        parse(encode(Text("hi", last=True)))  # the server does not take text from Twilio
    assert caught.value.kind == "text"
    with pytest.raises(UnknownType):
        parse(encode(Dtmf("1")), FROM_TARS)
    with pytest.raises(UnknownType):  # nor anything TARS never sends
        parse_dict({"type": "play", "source": "https://example.com/a.mp3"}, FROM_TARS)


@pytest.mark.parametrize("kind", ["setup", "prompt", "dtmf", "interrupt", "error"])
def test_a_known_type_with_no_fields_parses_to_empty_values(kind):
    message = parse(json.dumps({"type": kind}))
    assert isinstance(message, FROM_TWILIO[kind])


def test_missing_and_mistyped_fields_become_empty_values_as_the_server_always_read_them():
    assert parse('{"type": "setup"}') == Setup()  # session_id None: logged as "None", as before
    setup = parse(json.dumps({"type": "setup", "callSid": 7, "from": None, "sessionId": 12,
                              "customParameters": ["x"]}))
    assert (setup.call_sid, setup.caller, setup.session_id, setup.custom_parameters) == ("7", "", "12", {})
    assert parse('{"type": "prompt"}') == Prompt("", lang="", last=True)  # no "last": a final prompt
    for last, final in ((False, False), (True, True), (None, True), (0, True), ("false", True)):
        assert parse(json.dumps({"type": "prompt", "voicePrompt": "hi", "last": last})).last is final
    assert parse('{"type": "prompt", "voicePrompt": ["a"]}').voice_prompt == "['a']"
    assert parse('{"type": "dtmf", "digit": 5}') == Dtmf("5")
    assert parse('{"type": "dtmf", "digit": false}') == Dtmf("")
    assert parse('{"type": "interrupt"}') == Interrupt("", duration_ms=None)
    assert parse('{"type": "interrupt", "durationUntilInterruptMs": true}').duration_ms == "True"
    assert parse('{"type": "interrupt", "durationUntilInterruptMs": [1]}').duration_ms == "[1]"
    assert parse('{"type": "error"}') == ErrorReport(None)
    assert parse('{"type": "error", "description": {"a": 1}}').description == "{'a': 1}"


def test_what_tars_sends_is_read_leniently_too():
    assert parse('{"type": "text"}', FROM_TARS) == Text("", last=False)
    assert parse('{"type": "text", "token": 3, "last": 1}', FROM_TARS) == Text("3", last=True)
    assert parse('{"type": "end", "handoffData": ""}', FROM_TARS) == End(None)
    assert parse('{"type": "end", "handoffData": {"a": 1}}', FROM_TARS) == End("{'a': 1}")


def test_messages_are_values():
    assert Text("a", last=True) == Text("a", last=True) and hash(Dtmf("1")) == hash(Dtmf("1"))
    with pytest.raises(AttributeError):
        Dtmf("1").digit = "2"  # frozen
    assert Setup() == Setup(call_sid="", caller="", session_id=None, custom_parameters={})


def test_core_never_imports_the_relay_format():
    from pathlib import Path

    core = Path(relay_protocol.__file__).resolve().parents[1] / "core"
    assert not [p.name for p in core.glob("*.py") if "relay_protocol" in p.read_text()]
