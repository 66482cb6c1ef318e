"""The ConversationRelay wire format: every JSON message of the relay WebSocket, built and parsed here only.

Twilio's "Getting and sending WebSocket messages" page, as typed messages (one dataclass per ``type``):

* what Twilio sends, `FROM_TWILIO`: `Setup`, `Prompt`, `Dtmf`, `Interrupt`, `ErrorReport`. The server
  (communication/twilio_media_streams.py) parses them; the two clients playing Twilio (the console phone and
  tests/fakes/relay_client.py) build them.
* what TARS sends, `FROM_TARS`: `Text` (one token of speech; ``last`` ends the talk cycle) and `End` (hang up,
  with ``handoffData``). TARS sends no ``play``, ``sendDigits`` or ``language``; a client that receives one
  sees an `UnknownType` and keeps the raw object.

`encode` turns a message into the JSON text sent; `parse` turns a received text into a message, or raises a
`MalformedMessage` saying why not (`NotJson`, `NotAnObject`, `UnknownType`). Parsing is lenient about fields
(as the server always was): a missing or mistyped field becomes its empty value, never an error, so a message
of a known type always parses. core/ never imports this module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


class MalformedMessage(ValueError):
    """A received text that is not a ConversationRelay message."""


class NotJson(MalformedMessage):
    """The text is not JSON (or nests deeper than the parser goes)."""


class NotAnObject(MalformedMessage):
    """The text is JSON, but not an object."""


class UnknownType(MalformedMessage):
    """A JSON object whose ``type`` is not one this side receives; `kind` is that ``type`` as sent (any JSON)."""

    def __init__(self, kind: Any):
        super().__init__(f"unknown message type {kind!r}")
        self.kind = kind


def _text(value: Any) -> str:
    """A string field: missing, null, false or empty is ""; anything else its str()."""
    return str(value or "")


def _shown(value: Any) -> str | None:
    """A field only shown (logged): None when absent, else its str(), which logs the same as the value."""
    return None if value is None else str(value)


def _omit_none(data: dict) -> dict:
    return {key: value for key, value in data.items() if value is not None}


# --- what Twilio sends ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setup:
    """The first message of a session: who calls whom. ``from`` is `caller`."""

    type: ClassVar[str] = "setup"
    call_sid: str
    caller: str
    to: str = ""
    session_id: str | None = None  # None: Twilio sent none
    account_sid: str = ""
    parent_call_sid: str = ""
    forwarded_from: str = ""
    call_type: str = ""
    caller_name: str = ""
    direction: str = ""
    call_status: str = ""
    custom_parameters: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"type": self.type, "sessionId": self.session_id, "accountSid": self.account_sid,
                "parentCallSid": self.parent_call_sid, "callSid": self.call_sid, "from": self.caller,
                "to": self.to, "forwardedFrom": self.forwarded_from, "callType": self.call_type,
                "callerName": self.caller_name, "direction": self.direction, "callStatus": self.call_status,
                "customParameters": dict(self.custom_parameters)}

    @classmethod
    def from_dict(cls, data: Mapping) -> Setup:
        custom = data.get("customParameters")
        return cls(call_sid=_text(data.get("callSid")), caller=_text(data.get("from")), to=_text(data.get("to")),
                   session_id=_shown(data.get("sessionId")), account_sid=_text(data.get("accountSid")),
                   parent_call_sid=_text(data.get("parentCallSid")), forwarded_from=_text(data.get("forwardedFrom")),
                   call_type=_text(data.get("callType")), caller_name=_text(data.get("callerName")),
                   direction=_text(data.get("direction")), call_status=_text(data.get("callStatus")),
                   custom_parameters=dict(custom) if isinstance(custom, dict) else {})


@dataclass(frozen=True)
class Prompt:
    """What the caller said. ``last: false`` marks a partial prompt; anything but false is a final one."""

    type: ClassVar[str] = "prompt"
    voice_prompt: str
    lang: str = ""
    last: bool = True

    def to_dict(self) -> dict:
        return {"type": self.type, "voicePrompt": self.voice_prompt, "lang": self.lang, "last": self.last}

    @classmethod
    def from_dict(cls, data: Mapping) -> Prompt:
        return cls(voice_prompt=_text(data.get("voicePrompt")), lang=_text(data.get("lang")),
                   last=data.get("last", True) is not False)


@dataclass(frozen=True)
class Dtmf:
    """One keypad press (DTMF detection is on in TARS's TwiML)."""

    type: ClassVar[str] = "dtmf"
    digit: str

    def to_dict(self) -> dict:
        return {"type": self.type, "digit": self.digit}

    @classmethod
    def from_dict(cls, data: Mapping) -> Dtmf:
        return cls(digit=_text(data.get("digit")))


@dataclass(frozen=True)
class Interrupt:
    """The caller spoke over TARS: what they heard of the talk cycle, and after how long.

    `duration_ms` is only logged; it is kept as sent (Twilio's page shows a number, the console phone sends a
    string of digits), None when absent.
    """

    type: ClassVar[str] = "interrupt"
    utterance: str
    duration_ms: int | str | None = None

    def to_dict(self) -> dict:
        return {"type": self.type, "utteranceUntilInterrupt": self.utterance,
                "durationUntilInterruptMs": self.duration_ms}

    @classmethod
    def from_dict(cls, data: Mapping) -> Interrupt:
        duration = data.get("durationUntilInterruptMs")
        if not (isinstance(duration, (int, str)) and not isinstance(duration, bool)):
            duration = _shown(duration)
        return cls(utterance=_text(data.get("utteranceUntilInterrupt")), duration_ms=duration)


@dataclass(frozen=True)
class ErrorReport:
    """ConversationRelay reports an error (e.g. a message of ours it could not read)."""

    type: ClassVar[str] = "error"
    description: str | None = None  # None: Twilio gave none

    def to_dict(self) -> dict:
        return {"type": self.type, "description": self.description}

    @classmethod
    def from_dict(cls, data: Mapping) -> ErrorReport:
        return cls(description=_shown(data.get("description")))


# --- what TARS sends -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Text:
    """One token of speech. ``last: true`` ends the talk cycle; `interruptible`, `preemptible` and `lang` are
    only written when set."""

    type: ClassVar[str] = "text"
    token: str
    last: bool
    interruptible: bool | None = None
    preemptible: bool | None = None
    lang: str | None = None

    def to_dict(self) -> dict:
        return _omit_none({"type": self.type, "token": self.token, "last": self.last,
                           "interruptible": self.interruptible, "preemptible": self.preemptible, "lang": self.lang})

    @classmethod
    def from_dict(cls, data: Mapping) -> Text:
        interruptible, preemptible, lang = data.get("interruptible"), data.get("preemptible"), data.get("lang")
        return cls(token=_text(data.get("token")), last=bool(data.get("last")),
                   interruptible=None if interruptible is None else bool(interruptible),
                   preemptible=None if preemptible is None else bool(preemptible), lang=_shown(lang))


@dataclass(frozen=True)
class End:
    """End the session; Twilio hands `handoff_data` (a string, usually JSON) to the <Connect action> callback.
    None (not written) when there is none; an empty one parses as none."""

    type: ClassVar[str] = "end"
    handoff_data: str | None = None

    def to_dict(self) -> dict:
        return _omit_none({"type": self.type, "handoffData": self.handoff_data})

    @classmethod
    def from_dict(cls, data: Mapping) -> End:
        return cls(handoff_data=_text(data.get("handoffData")) or None)


TwilioMessage = Setup | Prompt | Dtmf | Interrupt | ErrorReport
TarsMessage = Text | End
Message = TwilioMessage | TarsMessage

FROM_TWILIO: Mapping[str, type[TwilioMessage]] = {kind.type: kind for kind in (Setup, Prompt, Dtmf, Interrupt,
                                                                               ErrorReport)}
FROM_TARS: Mapping[str, type[TarsMessage]] = {kind.type: kind for kind in (Text, End)}


# --- the two directions of the wire ----------------------------------------------------------------------------
def encode(message: Message) -> str:
    """The JSON text of a message, as sent on the socket."""
    return json.dumps(message.to_dict())


def decode(raw: str | bytes) -> dict:
    """The JSON object of a received text; NotJson or NotAnObject if it is none."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested deeper than the parser goes
        raise NotJson(f"not JSON: {raw[:200]!r}") from exc
    if not isinstance(data, dict):
        raise NotAnObject(f"a JSON {type(data).__name__}, not an object: {raw[:200]!r}")
    return data


def parse_dict(data: Mapping, kinds: Mapping[str, type] = FROM_TWILIO) -> Message:
    """The typed message of a decoded object; UnknownType unless its ``type`` is one of `kinds`."""
    kind = data.get("type")
    message_class = kinds.get(kind) if isinstance(kind, str) else None
    if message_class is None:
        raise UnknownType(kind)
    return message_class.from_dict(data)


def parse(raw: str | bytes, kinds: Mapping[str, type] = FROM_TWILIO) -> Message:
    """The typed message of a received text (by default one Twilio sends); a MalformedMessage says why not."""
    return parse_dict(decode(raw), kinds)
