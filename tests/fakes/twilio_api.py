"""A local stand-in of Twilio's REST API (2010-04-01) for tests, and Twilio's side of the calls it places.

No network is reachable in the test environment, so tests point the *real* ``twilio`` SDK at this server
(TARS does it with TWILIO_API_BASE_URL, communication/twilio_rest.py). It is a real HTTP/1.1 server on
127.0.0.1 (free port) in a background thread of the pytest process, so a TARS server or worker in another
process reaches it as well::

    from tests.fakes.twilio_api import FakeTwilio

    with FakeTwilio() as twilio:
        env = twilio.settings()                             # TWILIO_* settings, OWNER_PHONE_NUMBERS
        ...                                                 # TARS places a call to the owner
        call = twilio.wait_for_call(lambda c: c.to == twilio.owner)
        assert call.parameters["purpose"] == "confirm"      # the <Parameter>s of its ConversationRelay
        twilio.report(call, "ringing", server.url, PUBLIC)  # the signed status callback, as Twilio posts it
        phone = twilio.answer(call, server.port, PUBLIC)    # the relay WebSocket, setup sent: a RelayClient
        phone.say("6283")
        twilio.report(call, "completed", server.url, PUBLIC)
        reply = twilio.incoming_sms(server.url, PUBLIC, body="status")  # from the owner; TwiML back

The world: one account (``account_sid``, auth token ``auth_token``, one API key ``api_key_sid`` /
``api_key_secret``) owning the numbers given (default one, ``number``, with empty voice and SMS URLs); the owner's
phone is ``owner``.

REST (base ``base_url`` = ``http://127.0.0.1:<port>``; form-encoded requests, JSON answers with Twilio's field
names, dates in RFC 2822)::

    GET  /2010-04-01/Accounts/{AccountSid}.json
    GET  .../Calls.json                      POST .../Calls.json                  (201, status "queued")
    GET  .../Calls/{CallSid}.json            POST .../Calls/{CallSid}.json        (Status, Twiml, Url)
    GET  .../Messages.json                   POST .../Messages.json               (201, status "queued")
    GET  .../Messages/{MessageSid}.json
    GET  .../IncomingPhoneNumbers.json[?PhoneNumber=+1...]   (a page: ``incoming_phone_numbers`` + paging fields)
    GET  .../IncomingPhoneNumbers/{PNsid}.json               POST (VoiceUrl, VoiceMethod, SmsUrl, SmsMethod, ...)

Every request needs HTTP Basic auth: the account SID and auth token, or the API key SID and secret; else 401 with
Twilio's error 20003. Another account's path, an unknown resource or SID: 404 (20404); a verb a resource does not
take: 405 (20004). Refusals as Twilio words them: a call without To (21201), From (21213), Url or Twiml (21205),
from a number the account does not own (21210), to a malformed number (21211), with TwiML over 4000 characters
(32018), redirecting a call that ended (21220); a text without To (21604), From (21603), Body (21602), from a number
the account does not own (21606), over 1600 characters (21617). ``fail("Calls", 503)`` makes the next request to a
resource fail as a test says (Twilio down, rate limited). Errors are Twilio's legacy shape
``{"code", "message", "more_info", "status"}``, which the SDK turns into ``TwilioRestException``.

Records: ``calls`` and ``messages`` (what TARS placed and sent, every form field kept), ``numbers``, ``requests``
(every request, with the credentials used); ``wait_for_call`` / ``wait_for_message`` / ``wait_for`` block on a
condition, never sleep. The fake never calls TARS on its own: a test plays each step of the call with ``answer``,
``report`` and ``incoming_sms``, signed with X-Twilio-Signature over the public URL as Twilio does. Hanging a call
up through the API (Status=completed) closes the relay socket ``answer`` opened, as Twilio ends the session.
``sms_reply(response)`` reads the <Message> texts of TARS's TwiML answer to an incoming text.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import traceback
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Self
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from tests.fakes.relay_client import RelayClient, sign, twilio_post

__all__ = ["FakeTwilio", "Call", "Message", "Number", "RecordedRequest", "new_sid", "sms_reply", "ACCOUNT_SID",
           "AUTH_TOKEN", "TWILIO_NUMBER", "OWNER", "CALL_STATUSES"]

API_VERSION = "2010-04-01"
ACCOUNT_SID = "AC" + "0" * 32  # the same account as tests/fakes/relay_client.py's webhooks
AUTH_TOKEN = "twilio-test-auth-token-0123456789abcdef"
TWILIO_NUMBER = "+15550001111"  # the number TARS's incoming-call tests are called on
OWNER = "+15551234567"
CALL_STATUSES = ("queued", "initiated", "ringing", "in-progress", "completed", "busy", "no-answer", "failed",
                 "canceled")
ENDED = ("completed", "busy", "no-answer", "failed", "canceled")
E164 = re.compile(r"\+[1-9]\d{6,14}")
TWIML_LIMIT = 4000  # characters of inline TwiML a call may carry
BODY_LIMIT = 1600  # characters of a text
GSM7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
           "¿abcdefghijklmnopqrstuvwxyzäöñüà")


def new_sid(prefix: str) -> str:
    """A Twilio SID: two letters and 32 hex digits."""
    return prefix + uuid.uuid4().hex


def _date(at: datetime | None) -> str | None:
    return format_datetime(at) if at is not None else None  # RFC 2822, as the SDK parses them


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def _formatted(number: str) -> str:
    """Twilio's `to_formatted`: (555) 123-4567 for North American numbers, the number itself otherwise."""
    if re.fullmatch(r"\+1\d{10}", number):
        return f"({number[2:5]}) {number[5:8]}-{number[8:]}"
    return number


def _segments(body: str) -> int:
    """How many SMS segments `body` takes: 160 GSM-7 characters alone, 153 each when split; 70 / 67 in UCS-2."""
    gsm = all(ch in GSM7 or ch in "^{}\\[~]|€" for ch in body)
    single, part = (160, 153) if gsm else (70, 67)
    return 1 if len(body) <= single else -(-len(body) // part)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class TwilioError(Exception):
    """An answer in Twilio's error shape."""

    def __init__(self, status: int, code: int, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict:
        return {"code": self.code, "message": self.message,
                "more_info": f"https://www.twilio.com/docs/errors/{self.code}", "status": self.status}


# --------------------------------------------------------------------------- records


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the query
    query: dict[str, list[str]]
    form: dict[str, list[str]]  # the form body, every value of repeated fields
    headers: dict[str, str]  # lower-case names
    username: str | None  # the HTTP Basic user: the account SID or an API key SID
    status: int | None = None  # answered
    at: float = field(default_factory=time.monotonic)


@dataclass
class Number:
    """One of the account's numbers (an IncomingPhoneNumber)."""

    phone_number: str
    account_sid: str
    voice_url: str = ""
    sms_url: str = ""
    sid: str = field(default_factory=lambda: new_sid("PN"))
    friendly_name: str = ""
    voice_method: str = "POST"
    sms_method: str = "POST"
    status_callback: str = ""
    status_callback_method: str = "POST"
    voice_fallback_url: str = ""
    voice_fallback_method: str = "POST"
    sms_fallback_url: str = ""
    sms_fallback_method: str = "POST"
    date_created: datetime = field(default_factory=_now)
    date_updated: datetime = field(default_factory=_now)
    updates: list[dict[str, list[str]]] = field(default_factory=list)  # the forms of every update, in order

    UPDATABLE = ("FriendlyName", "VoiceUrl", "VoiceMethod", "SmsUrl", "SmsMethod", "StatusCallback",
                 "StatusCallbackMethod", "VoiceFallbackUrl", "VoiceFallbackMethod", "SmsFallbackUrl",
                 "SmsFallbackMethod")

    def json(self) -> dict:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/IncomingPhoneNumbers/{self.sid}.json"
        return {
            "account_sid": self.account_sid, "address_requirements": "none", "address_sid": None,
            "api_version": API_VERSION, "beta": False,
            "capabilities": {"fax": False, "mms": True, "sms": True, "voice": True},
            "date_created": _date(self.date_created), "date_updated": _date(self.date_updated),
            "emergency_address_sid": None, "emergency_address_status": "unregistered", "emergency_status": "Active",
            "friendly_name": self.friendly_name or _formatted(self.phone_number), "identity_sid": None,
            "origin": "twilio", "phone_number": self.phone_number, "sid": self.sid, "sms_application_sid": "",
            "sms_fallback_method": self.sms_fallback_method, "sms_fallback_url": self.sms_fallback_url,
            "sms_method": self.sms_method, "sms_url": self.sms_url, "status_callback": self.status_callback,
            "status_callback_method": self.status_callback_method, "trunk_sid": None, "uri": uri,
            "voice_application_sid": "", "voice_caller_id_lookup": False,
            "voice_fallback_method": self.voice_fallback_method, "voice_fallback_url": self.voice_fallback_url,
            "voice_method": self.voice_method, "voice_receive_mode": "voice", "voice_url": self.voice_url,
            "bundle_sid": None, "status": "in-use", "type": "local",
            "subresource_uris": {"assigned_add_ons": uri.removesuffix(".json") + "/AssignedAddOns.json"},
        }


@dataclass
class Call:
    """A call placed through the API (``POST .../Calls.json``), with the form it was placed with."""

    sid: str
    account_sid: str
    to: str
    from_: str
    form: dict[str, list[str]]  # every field as sent (StatusCallbackEvent is repeated)
    phone_number_sid: str | None
    status: str = "queued"
    twiml: str | None = None
    url: str | None = None
    date_created: datetime = field(default_factory=_now)
    date_updated: datetime = field(default_factory=_now)
    start_time: datetime | None = None
    end_time: datetime | None = None
    answered_at: float | None = None  # time.monotonic() when answered
    updates: list[dict[str, list[str]]] = field(default_factory=list)  # the forms of every update, in order
    reports: list[dict[str, str]] = field(default_factory=list)  # the status callbacks posted for it
    relay: RelayClient | None = field(default=None, repr=False)  # the socket `answer` opened

    def form_value(self, name: str, default: str | None = None) -> str | None:
        """A form field as sent (the last value of a repeated one): call.form_value("Timeout")."""
        values = self.form.get(name)
        return values[-1] if values else default

    @property
    def status_callback(self) -> str | None:
        return self.form_value("StatusCallback")

    @property
    def status_callback_method(self) -> str:
        return (self.form_value("StatusCallbackMethod") or "POST").upper()

    @property
    def status_callback_events(self) -> list[str]:
        """The progress events subscribed to; Twilio reports only "completed" when none were named."""
        named = [e for value in self.form.get("StatusCallbackEvent", []) for e in value.split()]
        return named or ["completed"]

    @property
    def timeout(self) -> int:
        """How long it rings before Twilio gives up (no-answer), in seconds."""
        return int(self.form_value("Timeout") or 60)

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    # --- its TwiML ---
    def _twiml(self) -> ET.Element:
        if not self.twiml:
            raise AssertionError(f"call {self.sid} was placed with Url={self.url}, not inline TwiML")
        try:
            return ET.fromstring(self.twiml)
        except ET.ParseError as exc:
            raise AssertionError(f"call {self.sid}'s TwiML is not well-formed XML ({exc}): {self.twiml}") from None

    @property
    def relay_element(self) -> ET.Element:
        found = self._twiml().find("./Connect/ConversationRelay")
        if found is None:
            raise AssertionError(f"call {self.sid}'s TwiML has no <Connect><ConversationRelay>: {self.twiml}")
        return found

    @property
    def relay_url(self) -> str:
        """The wss:// URL of its ConversationRelay."""
        url = self.relay_element.get("url")
        if not url:
            raise AssertionError(f"call {self.sid}'s <ConversationRelay> has no url: {self.twiml}")
        return url

    @property
    def relay_attributes(self) -> dict[str, str]:
        """The attributes of its <ConversationRelay> (welcomeGreeting, dtmfDetection, ...)."""
        return dict(self.relay_element.attrib)

    @property
    def parameters(self) -> dict[str, str]:
        """The <Parameter name value> pairs of its ConversationRelay: the setup message's customParameters."""
        return {p.get("name", ""): p.get("value", "") for p in self.relay_element.findall("Parameter")}

    @property
    def connect_action(self) -> str | None:
        """The <Connect action> URL Twilio requests when the relay session ends."""
        connect = self._twiml().find("./Connect")
        return connect.get("action") if connect is not None else None

    def duration(self) -> int:
        """Seconds since it was answered (0 if it never was)."""
        return int(time.monotonic() - self.answered_at) if self.answered_at is not None else 0

    def json(self) -> dict:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}.json"
        base = uri.removesuffix(".json")
        return {
            "sid": self.sid, "date_created": _date(self.date_created), "date_updated": _date(self.date_updated),
            "parent_call_sid": None, "account_sid": self.account_sid, "to": self.to,
            "to_formatted": _formatted(self.to), "from": self.from_, "from_formatted": _formatted(self.from_),
            "phone_number_sid": self.phone_number_sid, "status": self.status,
            "start_time": _date(self.start_time), "end_time": _date(self.end_time),
            "duration": str(self.duration()) if self.ended else None, "price": None, "price_unit": "USD",
            "direction": "outbound-api", "answered_by": None, "api_version": API_VERSION, "forwarded_from": None,
            "group_sid": None, "caller_name": None, "queue_time": "0", "trunk_sid": None, "uri": uri,
            "subresource_uris": {name: f"{base}/{path}.json" for name, path in (
                ("notifications", "Notifications"), ("recordings", "Recordings"), ("payments", "Payments"),
                ("events", "Events"), ("siprec", "Siprec"), ("streams", "Streams"),
                ("transcriptions", "Transcriptions"), ("user_defined_message_subscriptions",
                                                        "UserDefinedMessageSubscriptions"),
                ("user_defined_messages", "UserDefinedMessages"))},
        }


@dataclass
class Message:
    """A text sent through the API (``POST .../Messages.json``)."""

    sid: str
    account_sid: str
    to: str
    from_: str
    body: str
    form: dict[str, list[str]]
    status: str = "queued"
    date_created: datetime = field(default_factory=_now)

    def json(self) -> dict:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"
        return {
            "account_sid": self.account_sid, "api_version": API_VERSION, "body": self.body,
            "date_created": _date(self.date_created), "date_sent": None, "date_updated": _date(self.date_created),
            "direction": "outbound-api", "error_code": None, "error_message": None, "from": self.from_,
            "messaging_service_sid": None, "num_media": "0", "num_segments": str(_segments(self.body)),
            "price": None, "price_unit": "USD", "sid": self.sid, "status": self.status, "to": self.to, "uri": uri,
            "subresource_uris": {"media": uri.removesuffix(".json") + "/Media.json",
                                 "feedback": uri.removesuffix(".json") + "/Feedback.json"},
        }


@dataclass
class _Failure:
    resource: str  # "Calls", "Messages", "IncomingPhoneNumbers", "Account"
    error: TwilioError
    times: int


# --------------------------------------------------------------------------- HTTP


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    fake: FakeTwilio


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: dict | None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Twilio-Request-Id", new_sid("RQ"))
        self.end_headers()
        self.wfile.write(data)

    def _serve(self) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        form = parse_qs(raw, keep_blank_values=True)
        rec = RecordedRequest(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True), form,
                              {k.lower(): v for k, v in self.headers.items()}, _basic_user(self.headers))
        try:
            status, body = fake._route(self.command, parts.path, rec, self.headers.get("Authorization"))
        except TwilioError as exc:
            status, body = exc.status, exc.body()
        except Exception as exc:  # a bug in the fake: visible in `errors`, answered as Twilio's 500
            fake.errors.append(traceback.format_exc())
            status, body = 500, TwilioError(500, 20500, f"FakeTwilio internal error: {exc!r}").body()
        rec.status = status
        with fake._cond:
            fake.requests.append(rec)
            fake._cond.notify_all()
        try:
            self._answer(status, body)
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_DELETE = do_PUT = _serve


def _basic_user(headers) -> str | None:
    user, _ = _basic(headers.get("Authorization"))
    return user


def _basic(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None, None
    return user, password


_PATH = re.compile(rf"/{API_VERSION}/Accounts/(?P<account>[^/]+?)(?:/(?P<resource>[A-Za-z]+)"
                   rf"(?:/(?P<sid>[^/]+?))?)?\.json")


# --------------------------------------------------------------------------- the fake


class FakeTwilio:
    """Twilio's REST API for one account, on 127.0.0.1 (see the module's docstring)."""

    def __init__(self, *, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN,
                 api_key_sid: str | None = None, api_key_secret: str = "twilio-test-api-key-secret",
                 numbers: list[str] | None = None, voice_url: str = "", sms_url: str = "", owner: str = OWNER,
                 friendly_name: str = "TARS test account", host: str = "127.0.0.1", port: int = 0):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.api_key_sid = api_key_sid or "SK" + "1" * 32
        self.api_key_secret = api_key_secret
        self.owner = owner
        self.friendly_name = friendly_name
        self._initial = (list(numbers or [TWILIO_NUMBER]), voice_url, sms_url)
        self.host, self.port = host, port
        self.calls: list[Call] = []
        self.messages: list[Message] = []
        self.numbers: list[Number] = []
        self.requests: list[RecordedRequest] = []
        self.errors: list[str] = []  # tracebacks of the fake's own bugs (answered as 500)
        self.date_created = _now()
        self._failures: list[_Failure] = []
        self._cond = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._credentials = (account_sid, auth_token, self.api_key_sid, api_key_secret)
        self._set_numbers()

    def _set_numbers(self) -> None:
        numbers, voice_url, sms_url = self._initial
        self.numbers = [Number(n, self.account_sid, voice_url=voice_url, sms_url=sms_url) for n in numbers]

    # ---- lifecycle
    def start(self) -> Self:
        if self._server is None:
            self._server = _Server((self.host, self.port), _Handler)
            self._server.fake = self
            self.port = self._server.server_address[1]
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=f"FakeTwilio:{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            if self._thread is not None:
                self._thread.join(5)
        for call in self.calls:
            if call.relay is not None:
                call.relay.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def reset(self) -> None:
        """Back to a fresh account: no calls, texts, requests or planned failures; the numbers as first given; the
        credentials as first given."""
        with self._cond:
            for call in self.calls:
                if call.relay is not None:
                    call.relay.close()
            self.calls.clear()
            self.messages.clear()
            self.requests.clear()
            self.errors.clear()
            self._failures.clear()
            self.account_sid, self.auth_token, self.api_key_sid, self.api_key_secret = self._credentials
            self._set_numbers()

    @property
    def base_url(self) -> str:
        """What TWILIO_API_BASE_URL is set to."""
        return f"http://{self.host}:{self.port}"

    @property
    def number(self) -> str:
        """The account's (first) Twilio number."""
        return self.numbers[0].phone_number

    def settings(self, api_key: bool = False, **overrides: str) -> dict[str, str]:
        """The settings that make TARS call and text through this account (as environment variables)."""
        env = {"TWILIO_ACCOUNT_SID": self.account_sid, "TWILIO_AUTH_TOKEN": self.auth_token,
               "TWILIO_PHONE_NUMBER": self.number, "TWILIO_API_BASE_URL": self.base_url,
               "OWNER_PHONE_NUMBERS": self.owner}
        if api_key:
            env |= {"TWILIO_API_KEY_SID": self.api_key_sid, "TWILIO_API_KEY_SECRET": self.api_key_secret}
        return env | overrides

    # ---- failures a test plans
    def fail(self, resource: str, status: int = 500, code: int | None = None, message: str | None = None,
             times: int = 1) -> None:
        """The next `times` requests to `resource` ("Calls", "Messages", "IncomingPhoneNumbers", "Account") fail
        with `status` in Twilio's error shape (429: code 20429 "Too Many Requests"; else 20500 and the like)."""
        code = code or {429: 20429, 503: 20503}.get(status, 20500)
        message = message or {429: "Too Many Requests", 503: "Service Unavailable"}.get(status, "Internal Server Error")
        with self._cond:
            self._failures.append(_Failure(resource, TwilioError(status, code, message), times))

    # ---- waiting (on the condition every change notifies; never a sleep)
    def wait_for(self, condition: Callable[[], Any], timeout: float = 10, what: str = "the condition") -> Any:
        """Block until `condition()` is truthy; its value. It is checked under the fake's lock at every change, so it
        must not make requests to the fake itself (place the call first, then wait for it)."""
        with self._cond:
            result = self._cond.wait_for(condition, timeout)
            if not result:
                raise AssertionError(f"FakeTwilio: {what} did not happen within {timeout}s; calls: "
                                     f"{[(c.to, c.status) for c in self.calls]}, texts: "
                                     f"{[(m.to, m.body) for m in self.messages]}")
            return result

    def wait_for_call(self, predicate: Callable[[Call], bool] | None = None, timeout: float = 10) -> Call:
        """The first call placed that satisfies `predicate` (any call when None), waiting for it."""
        return self.wait_for(lambda: next((c for c in self.calls if predicate is None or predicate(c)), None),
                             timeout, "a call")

    def wait_for_message(self, predicate: Callable[[Message], bool] | None = None, timeout: float = 10) -> Message:
        """The first text sent that satisfies `predicate` (any text when None), waiting for it."""
        return self.wait_for(lambda: next((m for m in self.messages if predicate is None or predicate(m)), None),
                             timeout, "a text")

    def call(self, sid: str) -> Call:
        with self._cond:
            for call in self.calls:
                if call.sid == sid:
                    return call
        raise KeyError(sid)

    def _changed(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # ---- the REST API
    def _authenticate(self, header: str | None) -> None:
        user, password = _basic(header)
        if (user, password) not in ((self.account_sid, self.auth_token), (self.api_key_sid, self.api_key_secret)):
            raise TwilioError(401, 20003, "Authenticate")

    def _not_found(self, path: str) -> TwilioError:
        return TwilioError(404, 20404, f"The requested resource {path} was not found")

    def _route(self, method: str, path: str, rec: RecordedRequest, auth: str | None) -> tuple[int, dict | None]:
        self._authenticate(auth)
        match = _PATH.fullmatch(path)
        if match is None or match["account"] != self.account_sid:
            raise self._not_found(path)
        resource, sid = match["resource"] or "Account", match["sid"]
        with self._cond:
            for failure in self._failures:
                if failure.resource == resource and failure.times > 0:
                    failure.times -= 1
                    raise failure.error
        handlers = {("Account", None): {"GET": self._account},
                    ("Calls", None): {"GET": self._list_calls, "POST": self._create_call},
                    ("Calls", "sid"): {"GET": self._fetch_call, "POST": self._update_call},
                    ("Messages", None): {"GET": self._list_messages, "POST": self._create_message},
                    ("Messages", "sid"): {"GET": self._fetch_message},
                    ("IncomingPhoneNumbers", None): {"GET": self._list_numbers},
                    ("IncomingPhoneNumbers", "sid"): {"GET": self._fetch_number, "POST": self._update_number}}
        verbs = handlers.get((resource, "sid" if sid else None))
        if verbs is None or (resource == "Account" and sid):
            raise self._not_found(path)
        handler = verbs.get(method)
        if handler is None:
            raise TwilioError(405, 20004, "Method not allowed")
        with self._cond:
            try:
                return handler(rec, sid) if sid else handler(rec)
            finally:
                self._cond.notify_all()

    @staticmethod
    def _one(form: dict[str, list[str]], name: str) -> str | None:
        values = form.get(name)
        return values[-1] if values else None

    def _own(self, phone_number: str) -> Number | None:
        return next((n for n in self.numbers if n.phone_number == phone_number), None)

    def _account(self, rec: RecordedRequest) -> tuple[int, dict]:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}"
        return 200, {"auth_token": self.auth_token, "date_created": _date(self.date_created),
                     "date_updated": _date(self.date_created), "friendly_name": self.friendly_name,
                     "owner_account_sid": self.account_sid, "sid": self.account_sid, "status": "active",
                     "type": "Full", "uri": uri + ".json",
                     "subresource_uris": {name: f"{uri}/{name}.json" for name in (
                         "Calls", "Messages", "IncomingPhoneNumbers", "Applications", "Recordings")}}

    def _page(self, rec: RecordedRequest, key: str, resource: str, items: list[dict],
              filters: dict[str, str]) -> tuple[int, dict]:
        """One page of a list, with the paging fields the SDK follows (next_page_uri until the last page)."""
        query = {k: v[-1] for k, v in rec.query.items()}
        size = max(1, min(1000, int(query.get("PageSize") or 50)))
        page = max(0, int(query.get("Page") or 0))
        chunk = items[page * size:(page + 1) * size]
        path = f"/{API_VERSION}/Accounts/{self.account_sid}/{resource}.json"

        def uri(n: int) -> str:
            return path + "?" + urlencode({**filters, "PageSize": size, "Page": n})

        more = (page + 1) * size < len(items)
        return 200, {key: chunk, "end": page * size + max(len(chunk) - 1, 0), "first_page_uri": uri(0),
                     "next_page_uri": uri(page + 1) if more else None, "page": page, "page_size": size,
                     "previous_page_uri": uri(page - 1) if page > 0 else None, "start": page * size,
                     "uri": uri(page)}

    # calls
    def _create_call(self, rec: RecordedRequest) -> tuple[int, dict]:
        form = rec.form
        to, from_ = self._one(form, "To"), self._one(form, "From")
        twiml, url = self._one(form, "Twiml"), self._one(form, "Url")
        if not to:
            raise TwilioError(400, 21201, "No 'To' number is specified")
        if not from_:
            raise TwilioError(400, 21213, "No 'From' number is specified")
        if not twiml and not url and not self._one(form, "ApplicationSid"):
            raise TwilioError(400, 21205, "Url parameter is required.")
        if not (E164.fullmatch(to) or to.startswith(("client:", "sip:"))):
            raise TwilioError(400, 21211, f"Invalid 'To' Phone Number: {to}")
        number = self._own(from_)
        if number is None:
            raise TwilioError(400, 21210, f"The source phone number provided, {from_}, is not yet verified for your "
                                          f"account. You may only make calls from phone numbers that you've "
                                          f"verified or purchased from Twilio.")
        if twiml and len(twiml) > TWIML_LIMIT:
            raise TwilioError(400, 32018, f"Twiml size exceeded maximum allowed value of {TWIML_LIMIT} characters")
        call = Call(new_sid("CA"), self.account_sid, to, from_, form, number.sid, twiml=twiml, url=url)
        self.calls.append(call)
        return 201, call.json()

    def _find_call(self, sid: str, path: str) -> Call:
        call = next((c for c in self.calls if c.sid == sid), None)
        if call is None:
            raise self._not_found(path)
        return call

    def _fetch_call(self, rec: RecordedRequest, sid: str) -> tuple[int, dict]:
        return 200, self._find_call(sid, rec.path).json()

    def _update_call(self, rec: RecordedRequest, sid: str) -> tuple[int, dict]:
        call = self._find_call(sid, rec.path)
        form = rec.form
        status, twiml, url = self._one(form, "Status"), self._one(form, "Twiml"), self._one(form, "Url")
        if status not in (None, "completed", "canceled"):
            raise TwilioError(400, 20001, f"Invalid call status: {status}")
        if (twiml or url) and call.ended:
            raise TwilioError(400, 21220, "Call is not in-progress. Cannot redirect.")
        call.updates.append(form)
        if twiml:
            call.twiml, call.url = twiml, None
        elif url:
            call.url, call.twiml = url, None
        if status and not call.ended:
            # canceled ends only a call not yet answered; completed ends it either way (a ringing one as canceled)
            if call.status in ("queued", "initiated", "ringing"):
                self._end(call, "canceled")
            elif status == "completed":
                self._end(call, "completed")
        call.date_updated = _now()
        return 200, call.json()

    def _end(self, call: Call, status: str) -> None:
        call.status = status
        call.end_time = _now()
        if call.relay is not None:  # Twilio ends the relay session of a call hung up
            call.relay.close()

    def _list_calls(self, rec: RecordedRequest) -> tuple[int, dict]:
        query = {k: v[-1] for k, v in rec.query.items()}
        calls = [c for c in reversed(self.calls) if (not query.get("To") or c.to == query["To"])
                 and (not query.get("Status") or c.status == query["Status"])]
        return self._page(rec, "calls", "Calls", [c.json() for c in calls],
                          {k: query[k] for k in ("To", "Status") if query.get(k)})

    # texts
    def _create_message(self, rec: RecordedRequest) -> tuple[int, dict]:
        form = rec.form
        to, from_, body = self._one(form, "To"), self._one(form, "From"), self._one(form, "Body")
        if not to:
            raise TwilioError(400, 21604, "A 'To' phone number is required.")
        if not from_ and not self._one(form, "MessagingServiceSid"):
            raise TwilioError(400, 21603, "A 'From' phone number is required.")
        if not body and not form.get("MediaUrl") and not self._one(form, "ContentSid"):
            raise TwilioError(400, 21602, "Message body is required.")
        if not E164.fullmatch(to):
            raise TwilioError(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if from_ and self._own(from_) is None:
            raise TwilioError(400, 21606, f"The From phone number {from_} is not a valid, SMS-capable inbound phone "
                                          f"number or short code for your account.")
        if body and len(body) > BODY_LIMIT:
            raise TwilioError(400, 21617, f"The concatenated message body exceeds the {BODY_LIMIT} character limit.")
        message = Message(new_sid("SM"), self.account_sid, to, from_ or "", body or "", form)
        self.messages.append(message)
        return 201, message.json()

    def _fetch_message(self, rec: RecordedRequest, sid: str) -> tuple[int, dict]:
        message = next((m for m in self.messages if m.sid == sid), None)
        if message is None:
            raise self._not_found(rec.path)
        return 200, message.json()

    def _list_messages(self, rec: RecordedRequest) -> tuple[int, dict]:
        query = {k: v[-1] for k, v in rec.query.items()}
        messages = [m for m in reversed(self.messages) if not query.get("To") or m.to == query["To"]]
        return self._page(rec, "messages", "Messages", [m.json() for m in messages],
                          {"To": query["To"]} if query.get("To") else {})

    # numbers
    def _list_numbers(self, rec: RecordedRequest) -> tuple[int, dict]:
        query = {k: v[-1] for k, v in rec.query.items()}
        wanted = query.get("PhoneNumber")
        if wanted:  # a partial number matches too, '*' standing for any digit
            pattern = re.compile(re.escape(wanted).replace(r"\*", r"\d"))
            numbers = [n for n in self.numbers if pattern.search(n.phone_number)]
        else:
            numbers = list(self.numbers)
        return self._page(rec, "incoming_phone_numbers", "IncomingPhoneNumbers", [n.json() for n in numbers],
                          {"PhoneNumber": wanted} if wanted else {})

    def _find_number(self, sid: str, path: str) -> Number:
        number = next((n for n in self.numbers if n.sid == sid), None)
        if number is None:
            raise self._not_found(path)
        return number

    def _fetch_number(self, rec: RecordedRequest, sid: str) -> tuple[int, dict]:
        return 200, self._find_number(sid, rec.path).json()

    def _update_number(self, rec: RecordedRequest, sid: str) -> tuple[int, dict]:
        number = self._find_number(sid, rec.path)
        for name in Number.UPDATABLE:
            value = self._one(rec.form, name)
            if value is None:
                continue
            if name.endswith("Method") and value.upper() not in ("GET", "POST"):
                raise TwilioError(400, 21208 if name.startswith("Voice") else 21209,
                                  f"{name} must be either GET or POST")
            setattr(number, _snake(name), value.upper() if name.endswith("Method") else value)
        number.updates.append(rec.form)
        number.date_updated = _now()
        return 200, number.json()

    # ---- Twilio's side of a call: the relay socket, status callbacks, an incoming text
    def answer(self, call: Call, server_port: int, public_base_url: str, auth_token: str | None = None,
               caller_name: str = "") -> RelayClient:
        """The owner picks up `call`: Twilio opens its ConversationRelay (the wss:// URL of its TwiML, signed with
        X-Twilio-Signature, dialled at 127.0.0.1:server_port) and sends the setup message of an outbound call
        (from the Twilio number to the owner, direction "outbound-api", the <Parameter>s as customParameters).
        The call is in progress from then on; the RelayClient plays the rest."""
        token = self.auth_token if auth_token is None else auth_token
        with self._cond:
            if call.ended:
                raise AssertionError(f"call {call.sid} cannot be answered: it is {call.status}")
        url = call.relay_url
        parts = urlsplit(url)
        public_host = urlsplit(public_base_url).netloc
        if parts.scheme != "wss" or parts.netloc != public_host:
            raise AssertionError(f"call {call.sid}'s relay URL {url} is not wss://{public_host}/...: Twilio could "
                                 f"not reach it")
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        client = RelayClient.dial(server_port, public_base_url, None, signature=sign(token, url), path=path)
        with self._cond:
            call.status = "in-progress"
            call.start_time = _now()
            call.answered_at = time.monotonic()
            call.relay = client
            self._cond.notify_all()
        client.setup(call.sid, call.from_, to=call.to, direction="outbound-api", custom_parameters=call.parameters,
                     caller_name=caller_name)
        return client

    def report(self, call: Call, status: str, server_url: str, public_base_url: str,
               auth_token: str | None = None, **extra: str) -> httpx.Response:
        """Twilio reports `call`'s progress: a request to its StatusCallback (by its StatusCallbackMethod), signed
        over the public URL, sent to server_url. Statuses: initiated, ringing, in-progress, completed, busy,
        no-answer, failed, canceled; the call takes it on. Twilio posts only the events the call subscribed to
        (StatusCallbackEvent; "completed" for every end), so reporting another one is the test's mistake."""
        if status not in CALL_STATUSES or status == "queued":
            raise ValueError(f"not a status Twilio reports: {status}")
        event = {"in-progress": "answered"}.get(status, "completed" if status in ENDED else status)
        if event not in call.status_callback_events:
            raise AssertionError(f"call {call.sid} subscribed to {call.status_callback_events}, not {event!r}: "
                                 f"Twilio would not report {status!r}")
        callback = call.status_callback
        if not callback:
            raise AssertionError(f"call {call.sid} was placed without a StatusCallback")
        if not callback.startswith(public_base_url.rstrip("/") + "/"):
            raise AssertionError(f"call {call.sid}'s StatusCallback {callback} is not under {public_base_url}")
        token = self.auth_token if auth_token is None else auth_token
        with self._cond:
            if status == "in-progress" and call.answered_at is None:
                call.start_time, call.answered_at = _now(), time.monotonic()
            if status in ENDED:
                self._end(call, status)
            else:
                call.status = status
            params = {"AccountSid": call.account_sid, "ApiVersion": API_VERSION, "CallSid": call.sid,
                      "CallStatus": status, "Called": call.to, "Caller": call.from_, "Direction": "outbound-api",
                      "From": call.from_, "To": call.to, "CallbackSource": "call-progress-events",
                      "SequenceNumber": str(len(call.reports)), "Timestamp": format_datetime(_now()),
                      "CalledCountry": "US", "CallerCountry": "US", "FromCountry": "US", "ToCountry": "US"}
            if status in ENDED:
                params["CallDuration"] = str(call.duration())
                params["Duration"] = str(-(-call.duration() // 60))
            if status in ("busy", "no-answer", "failed"):
                params["SipResponseCode"] = {"busy": "486", "no-answer": "487", "failed": "500"}[status]
            params |= extra
            call.reports.append(params)
            self._cond.notify_all()
        path = callback[len(public_base_url.rstrip("/")):]
        if call.status_callback_method == "GET":
            url = f"{callback}{'&' if '?' in callback else '?'}{urlencode(params)}"
            return httpx.get(server_url + url[len(public_base_url.rstrip("/")):],
                             headers={"X-Twilio-Signature": sign(token, url)}, timeout=10)
        return twilio_post(server_url, public_base_url.rstrip("/"), path, params, token)

    def incoming_sms(self, server_url: str, public_base_url: str, auth_token: str | None = None, *,
                     from_: str | None = None, body: str, to: str | None = None, path: str = "/sms",
                     signature: str | None = None) -> httpx.Response:
        """The owner (or `from_`) texts the Twilio number: Twilio's incoming-message webhook, POSTed to
        server_url + path and signed over the public URL. TARS answers TwiML (<Response><Message>...)."""
        token = self.auth_token if auth_token is None else auth_token
        sid = new_sid("SM")
        sender, number = from_ or self.owner, to or self.number
        params = {"ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "",
                  "FromZip": "", "SmsSid": sid, "FromState": "CA", "SmsStatus": "received", "FromCity": "",
                  "Body": body, "FromCountry": "US", "To": number, "ToZip": "", "NumSegments": str(_segments(body)),
                  "MessageSid": sid, "AccountSid": self.account_sid, "From": sender, "ApiVersion": API_VERSION}
        return twilio_post(server_url, public_base_url.rstrip("/"), path, params, token, signature=signature)


def sms_reply(response: httpx.Response) -> list[str]:
    """The texts of the <Message>s in TARS's TwiML answer to an incoming text (empty: TARS sends no reply)."""
    if response.status_code != 200:
        raise AssertionError(f"TARS answered the incoming text {response.status_code}: {response.text[:500]}")
    try:
        root = ET.fromstring(response.text)
    except ET.ParseError as exc:
        raise AssertionError(f"not TwiML ({exc}): {response.text[:500]}") from None
    if root.tag != "Response":
        raise AssertionError(f"not TwiML: {response.text[:500]}")
    texts = []
    for message in root.iter("Message"):
        body = message.find("Body")  # <Message><Body>...</Body></Message> says the same as <Message>...</Message>
        texts.append(((body.text if body is not None else message.text) or "").strip())
    return texts
