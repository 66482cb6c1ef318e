"""Twilio's side of a phone call, for tests: signed webhooks and a ConversationRelay WebSocket client.

Twilio reaches TARS through a TLS-terminating proxy at PUBLIC_BASE_URL, so it *signs* the public URL
(https://…/voice, wss://…/relay) while the test *connects* to 127.0.0.1. The client builds and parses
every message with communication/relay_protocol.py (what Twilio sends: setup, prompt, interrupt, dtmf, error)
and adds the timing on top: it records everything TARS sends back, with its arrival time::

    phone = RelayClient.dial(server.port, PUBLIC, TOKEN)          # signed handshake
    phone.setup("CA01", "+15551234567")
    phone.say("build a calculator in my calculator project")
    reply = phone.reply()                                          # text messages up to last=true
    assert "Started task" in reply.text
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

import httpx
from twilio.request_validator import RequestValidator
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from communication.relay_protocol import (FROM_TARS, Dtmf, ErrorReport, Interrupt, Prompt, Setup, TarsMessage, Text,
                                          TwilioMessage, decode, encode, parse_dict)

ACCOUNT_SID = "AC" + "0" * 32


def sign(auth_token: str, url: str, params: dict | None = None) -> str:
    """X-Twilio-Signature as Twilio computes it: HMAC-SHA1 over the URL + sorted params, base64."""
    return RequestValidator(auth_token).compute_signature(url, params or {})


def twilio_post(server_url: str, public_url: str, path: str, params: dict, auth_token: str | None,
                signature: str | None = None) -> httpx.Response:
    """POST a form like Twilio's webhook does, signed over PUBLIC_BASE_URL + path (unless told otherwise)."""
    headers = {}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    elif auth_token is not None:
        headers["X-Twilio-Signature"] = sign(auth_token, public_url + path, params)
    return httpx.post(server_url + path, data=params, headers=headers, timeout=10)


def incoming_call_params(call_sid: str, caller: str, to: str = "+15550001111") -> dict:
    """The form of Twilio's incoming-call webhook (the parameters TARS reads plus the usual others)."""
    return {"AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "CallSid": call_sid, "CallStatus": "ringing",
            "Direction": "inbound", "From": caller, "To": to, "Caller": caller, "Called": to, "FromCountry": "US"}


@dataclass
class Heard:
    at: float  # time.monotonic() on arrival
    message: dict  # the JSON object as it came over the wire

    @property
    def parsed(self) -> TarsMessage:
        return parse_dict(self.message, FROM_TARS)


@dataclass
class Reply:
    """The text messages of one talk cycle, up to and including the one with last=true."""

    messages: list[Heard] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def tokens(self) -> list[str]:
        return [h.parsed.token for h in self.messages]

    @property
    def times(self) -> list[float]:
        return [h.at for h in self.messages]


class RelayClient:
    """A ConversationRelay session as Twilio runs it, over a real WebSocket."""

    def __init__(self, ws_url: str, headers: dict):
        self.ws = connect(ws_url, additional_headers=headers, open_timeout=5, close_timeout=2, legacy=True)
        self.inbox: queue.Queue[Heard] = queue.Queue()
        self.heard: list[Heard] = []
        self.closed = threading.Event()
        self.call_sid: str | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    def dial(cls, port: int, public_base_url: str, auth_token: str | None, signature: str | None = None,
             path: str = "/relay") -> RelayClient:
        """Open the relay socket at 127.0.0.1:port, signed over the public wss:// URL."""
        host = public_base_url.split("://", 1)[1].rstrip("/")
        headers = {}
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        elif auth_token is not None:
            headers["X-Twilio-Signature"] = sign(auth_token, f"wss://{host}{path}")
        return cls(f"ws://127.0.0.1:{port}{path}", headers)

    def _read(self) -> None:
        try:
            for raw in self.ws:
                heard = Heard(time.monotonic(), decode(raw))
                self.heard.append(heard)
                self.inbox.put(heard)
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()

    # --- what Twilio sends ---------------------------------------------------------------------------------------
    def send(self, message: TwilioMessage | str) -> None:
        """A message, or any text as it is (for garbage)."""
        self.ws.send(message if isinstance(message, str) else encode(message))

    def setup(self, call_sid: str, caller: str, to: str = "+15550001111", direction: str = "inbound",
              custom_parameters: dict[str, str] | None = None, caller_name: str = "") -> None:
        """The setup message: of an incoming call by default; an outbound one (TARS called: `caller` is the Twilio
        number, `to` the owner) has direction "outbound-api" and the TwiML's <Parameter>s as customParameters."""
        self.call_sid = call_sid
        self.send(Setup(call_sid=call_sid, caller=caller, to=to, session_id="VX" + call_sid[2:].ljust(32, "0")[:32],
                        account_sid=ACCOUNT_SID, call_type="PSTN", direction=direction, call_status="IN-PROGRESS",
                        caller_name=caller_name, custom_parameters=dict(custom_parameters or {})))

    def say(self, text: str, lang: str = "en-US") -> None:
        self.send(Prompt(text, lang=lang, last=True))

    def say_in_parts(self, *parts: str, lang: str = "en-US") -> None:
        for i, part in enumerate(parts):
            self.send(Prompt(part, lang=lang, last=i == len(parts) - 1))

    def interrupt(self, utterance: str, duration_ms: int = 460) -> None:
        self.send(Interrupt(utterance, duration_ms=duration_ms))

    def press(self, keys: str) -> None:
        for key in keys:
            self.send(Dtmf(key))

    def error(self, description: str) -> None:
        self.send(ErrorReport(description))

    def hang_up(self) -> None:
        self.ws.close()
        self.closed.wait(5)

    # --- what Twilio hears ------------------------------------------------------------------------------------
    def next(self, timeout: float = 15) -> Heard:
        try:
            return self.inbox.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"TARS sent nothing within {timeout}s; heard so far: "
                                 f"{[h.message for h in self.heard]}") from None

    def reply(self, timeout: float = 20) -> Reply:
        """The text messages up to the next one with last=true (anything else arriving is an error)."""
        deadline = time.monotonic() + timeout
        reply = Reply()
        while True:
            heard = self.next(max(0.01, deadline - time.monotonic()))
            assert isinstance(heard.parsed, Text), f"expected text, got {heard.message}"
            reply.messages.append(heard)
            if heard.parsed.last:
                return reply

    def quiet(self, seconds: float) -> list[Heard]:
        """Everything that arrives within `seconds` (for asserting that nothing does)."""
        got, deadline = [], time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                got.append(self.inbox.get(timeout=left))
            except queue.Empty:
                break
        return got

    def close(self) -> None:
        self.ws.close()  # closing a closed connection is a no-op
