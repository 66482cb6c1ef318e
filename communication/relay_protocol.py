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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
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


def _flag(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _number_or_text(value: Any) -> int | str | None:
    """As sent when a number or a string, else as `_shown`."""
    return value if isinstance(value, (int, str)) and not isinstance(value, bool) else _shown(value)


def _wire(name: str, read: Callable[[Any], Any] = _text, *, optional: bool = False, **default: Any) -> Any:
    """A message field: its name on the wire, how a received value is read (never raising), and whether it
    is left out of what is sent when None (`optional`); `default=` / `default_factory=` as in dataclasses."""
    return field(metadata={"wire": name, "read": read, "optional": optional}, **default)


class _Message:
    """A ConversationRelay message: its ``type``, then its fields in the order they are declared."""

    type: ClassVar[str]

    def to_dict(self) -> dict:
        data = {"type": self.type}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None or not f.metadata["optional"]:
                data[f.metadata["wire"]] = value
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> Any:
        return cls(**{f.name: f.metadata["read"](data.get(f.metadata["wire"])) for f in fields(cls)})


# --- what Twilio sends ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setup(_Message):
    """The first message of a session: who calls whom. ``from`` is `caller`."""

    type: ClassVar[str] = "setup"
    session_id: str | None = _wire("sessionId", _shown, default=None)  # None: Twilio sent none
    account_sid: str = _wire("accountSid", default="")
    parent_call_sid: str = _wire("parentCallSid", default="")
    call_sid: str = _wire("callSid", default="")
    caller: str = _wire("from", default="")
    to: str = _wire("to", default="")
    forwarded_from: str = _wire("forwardedFrom", default="")
    call_type: str = _wire("callType", default="")
    caller_name: str = _wire("callerName", default="")
    direction: str = _wire("direction", default="")
    call_status: str = _wire("callStatus", default="")
    custom_parameters: dict = _wire("customParameters", lambda v: dict(v) if isinstance(v, dict) else {},
                                    default_factory=dict)


@dataclass(frozen=True)
class Prompt(_Message):
    """What the caller said. ``last: false`` marks a partial prompt; anything else (or none) a final one."""

    type: ClassVar[str] = "prompt"
    voice_prompt: str = _wire("voicePrompt")
    lang: str = _wire("lang", default="")
    last: bool = _wire("last", lambda v: v is not False, default=True)


@dataclass(frozen=True)
class Dtmf(_Message):
    """One keypad press (DTMF detection is on in TARS's TwiML)."""

    type: ClassVar[str] = "dtmf"
    digit: str = _wire("digit")


@dataclass(frozen=True)
class Interrupt(_Message):
    """The caller spoke over TARS: what they heard of the talk cycle, and after how long.

    `duration_ms` is only logged; it is kept as sent (Twilio's page shows a number, the console phone sends a
    string of digits), None when absent.
    """

    type: ClassVar[str] = "interrupt"
    utterance: str = _wire("utteranceUntilInterrupt")
    duration_ms: int | str | None = _wire("durationUntilInterruptMs", _number_or_text, default=None)


@dataclass(frozen=True)
class ErrorReport(_Message):
    """ConversationRelay reports an error (e.g. a message of ours it could not read)."""

    type: ClassVar[str] = "error"
    description: str | None = _wire("description", _shown, default=None)  # None: Twilio gave none


# --- what TARS sends -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Text(_Message):
    """One token of speech; ``last: true`` ends the talk cycle. The optional fields are only sent when set."""

    type: ClassVar[str] = "text"
    token: str = _wire("token")
    last: bool = _wire("last", bool)
    interruptible: bool | None = _wire("interruptible", _flag, optional=True, default=None)
    preemptible: bool | None = _wire("preemptible", _flag, optional=True, default=None)
    lang: str | None = _wire("lang", _shown, optional=True, default=None)


@dataclass(frozen=True)
class End(_Message):
    """End the session; Twilio hands `handoff_data` (a string, usually JSON) to the <Connect action> callback.
    None (not sent) when there is none; an empty one reads as none."""

    type: ClassVar[str] = "end"
    handoff_data: str | None = _wire("handoffData", lambda v: _text(v) or None, optional=True, default=None)


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
