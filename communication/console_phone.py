"""The console phone: talk to TARS from a terminal, over the WebSocket Twilio ConversationRelay uses.

`python main_tars.py call` plays Twilio's side of a ConversationRelay call against TARS's /relay
endpoint: it opens the WebSocket (signed with X-Twilio-Signature when TWILIO_AUTH_TOKEN is set),
sends the `setup` message Twilio sends, turns every typed line into a `prompt`, prints TARS's
streamed `text` tokens as they arrive, and prints anything TARS says unprompted as "[TARS] ...".

  hello TARS            a prompt (the caller said this); the console waits for the reply
  #6283                 keypad presses: one dtmf message per key, then "#"
  /interrupt            the caller talks over TARS: an interrupt with what was heard so far
  Ctrl+D                hang up (the socket is closed cleanly, exit 0)

`RelayClient` is the same machinery without the terminal: the harness of the voice tests. Every message
is built and parsed by communication/relay_protocol.py.

The signature: Twilio signs the WebSocket handshake like any webhook (HMAC-SHA1 of the URL with the
account Auth Token, base64), over the wss:// URL it was told to open, with no POST parameters.
Behind a tunnel that URL is not the one we connect to, so the console signs the public URL the
server checks against: PUBLIC_BASE_URL with https→wss, plus "/relay" (plus the query string of the
URL connected to, which Twilio's signature covers too). TWILIO_AUTH_TOKEN unset: the handshake is unsigned.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO
from urllib.parse import urlsplit

from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from communication.relay_protocol import (FROM_TARS, Dtmf, End, Interrupt, MalformedMessage, Prompt, Setup, Text,
                                          TwilioMessage, UnknownType, decode, encode, parse_dict)
from core.exceptions import TarsError

RELAY_PATH = "/relay"
SIGNATURE_HEADER = "X-Twilio-Signature"
DEFAULT_CALLEE = "+15005550006"
"""The `to` of setup: the number the caller dialled (TARS has no setting for its own Twilio number)."""
DEFAULT_CALLER = "+15555550100"
"""The `from` of setup when neither --from nor OWNER_PHONE_NUMBERS gives one."""
OPEN_TIMEOUT_SECONDS = 10.0
INTERRUPT_WAIT_SECONDS = 5.0
"""How long /interrupt waits for the first token of the reply (the caller interrupts what they heard)."""

STALE_AFTER_INTERRUPT_SECONDS = 1.0
"""After an interrupt, tokens of the cut reply still in flight for this long are dropped, not printed."""

STALE_QUIET_SECONDS = 0.15
"""A prompt typed right after an interrupt waits until no token came for this long (at most the window above)."""
E164 = re.compile(r"\+[1-9]\d{6,14}")
DTMF_LINE = re.compile(r"#([0-9*]+#?)")
DTMF_KEYS = set("0123456789*#ABCD")

Listener = Callable[[str, dict], None]
"""listener(kind, message), kind one of "reply", "alert", "end", "other", called as each message arrives."""


class RelayConnectError(TarsError):
    """The relay WebSocket could not be opened; the message names the likely fix."""


class RelayClosed(TarsError):
    """The relay WebSocket closed while something was still expected from it."""


# --- URLs and signatures -------------------------------------------------------------------------

def public_relay_url(public_base_url: str | None) -> str | None:
    """The wss:// URL Twilio is told to open, and signs: PUBLIC_BASE_URL's host and path with wss://, plus /relay.

    Always wss:// (ConversationRelay only opens wss://, and the server's TwiML says wss:// even for an http://
    PUBLIC_BASE_URL); None without a base URL.
    """
    if not public_base_url:
        return None
    parts = urlsplit(public_base_url.strip())
    return f"wss://{parts.netloc}{parts.path.rstrip('/')}{RELAY_PATH}"


def local_relay_url(host: str, port: int) -> str:
    """ws://HOST:PORT/relay, for the address the server listens on (a wildcard host means this machine)."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"ws://{host}:{port}{RELAY_PATH}"


def signed_url_for(url: str, public_url: str | None) -> str:
    """The URL the signature covers: the public URL (with the connect URL's query string), else `url` itself."""
    if not public_url:
        return url
    query = urlsplit(url).query
    if query and "?" not in public_url:
        return f"{public_url}?{query}"
    return public_url


def sign(auth_token: str, url: str) -> str:
    """X-Twilio-Signature of a WebSocket handshake to `url`: Twilio's webhook signature with no parameters."""
    return RequestValidator(auth_token).compute_signature(url, {})


def new_sid(prefix: str) -> str:
    """A random Twilio-shaped SID: two letters and 32 lowercase hex digits."""
    return prefix + secrets.token_hex(16)


# --- replies ---------------------------------------------------------------------------------------

class Reply(str):
    """TARS's answer to one prompt: the joined tokens, with how it arrived.

    tokens               the text tokens in order
    first_token_seconds  prompt sent → first token (None when none came)
    seconds              prompt sent → last=true (or interrupt / end / close)
    interrupted          the caller interrupted it (the reply is what had arrived by then)
    complete             it ended with last=true
    closed               the socket closed before it was over
    """

    tokens: list[str]
    first_token_seconds: float | None
    seconds: float
    interrupted: bool
    complete: bool
    closed: bool

    def __new__(cls, tokens: list[str], first_token_seconds: float | None, seconds: float, *,
                interrupted: bool = False, complete: bool = True, closed: bool = False):
        reply = super().__new__(cls, "".join(tokens))
        reply.tokens = list(tokens)
        reply.first_token_seconds = first_token_seconds
        reply.seconds = seconds
        reply.interrupted = interrupted
        reply.complete = complete
        reply.closed = closed
        return reply


class _Pending:
    """The reply being streamed for the last prompt."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.sent_at = time.monotonic()
        self.first_token_at: float | None = None
        self.tokens: list[str] = []
        self.first_token = asyncio.Event()
        self.done: asyncio.Future[Reply] = loop.create_future()

    def add(self, token: str) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
            self.first_token.set()
        self.tokens.append(token)

    def finish(self, *, interrupted: bool = False, complete: bool = True, closed: bool = False) -> Reply:
        now = time.monotonic()
        first = None if self.first_token_at is None else self.first_token_at - self.sent_at
        reply = Reply(self.tokens, first, now - self.sent_at, interrupted=interrupted, complete=complete,
                      closed=closed)
        if not self.done.done():
            self.done.set_result(reply)
        self.first_token.set()
        return reply


_CLOSED: Any = object()  # queued for receive() once the socket is closed


class RelayClient:
    """Twilio's side of one ConversationRelay call, as an asyncio client.

        async with RelayClient("ws://127.0.0.1:8000/relay", auth_token=token,
                               public_url="wss://tars.example.com/relay", caller="+15551234567") as call:
            await call.setup()
            reply = await call.say("What is the status of my task?")   # a str; reply.first_token_seconds
            await call.dtmf("6283")                                      # 6, 2, 8, 3, #
            alert = await call.next_alert(30)                            # what TARS says unprompted

    Every message received is appended to `messages`, every one sent to `sent`. A `text` message is part
    of the reply to the last prompt while that reply is pending (until last=true); otherwise it is a
    pushed alert: its tokens up to last=true are joined into one entry of `alerts`. Messages that are
    not part of a reply (alert tokens, end, play, sendDigits, language, ...) are also queued for
    `receive()`.
    """

    def __init__(self, url: str, *, auth_token: str | None = None, public_url: str | None = None,
                 caller: str = DEFAULT_CALLER, callee: str = DEFAULT_CALLEE, lang: str = "en-US",
                 listener: Listener | None = None, open_timeout: float = OPEN_TIMEOUT_SECONDS):
        self.url = url
        self.auth_token = auth_token or None
        self.public_url = public_url
        self.signed_url = signed_url_for(url, public_url)
        self.signature = sign(self.auth_token, self.signed_url) if self.auth_token else None
        self.caller = caller
        self.callee = callee
        self.lang = lang
        self.listener = listener
        self.open_timeout = open_timeout
        self.messages: list[dict] = []
        self.sent: list[dict] = []
        self.alerts: list[str] = []
        self.setup_message: dict | None = None
        self.ended: dict | None = None
        self.close_code: int | None = None
        self.close_reason: str = ""
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task | None = None
        self._pending: _Pending | None = None
        self._alert_tokens: list[str] = []
        self._stale_until = 0.0  # after an interrupt: what is still in flight of the cut reply is dropped
        self._dropped_stale = False
        self._last_token_at = 0.0
        self._events: asyncio.Queue[dict] | None = None
        self._alert_queue: asyncio.Queue[str] | None = None
        self._closed: asyncio.Event | None = None
        self._ended: asyncio.Event | None = None

    # --- connection ------------------------------------------------------------------------------

    async def __aenter__(self) -> RelayClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the WebSocket (signed when there is an auth token); RelayConnectError says why it failed."""
        self._events, self._alert_queue = asyncio.Queue(), asyncio.Queue()
        self._closed, self._ended = asyncio.Event(), asyncio.Event()
        headers = {SIGNATURE_HEADER: self.signature} if self.signature else {}
        host = urlsplit(self.url).hostname or ""
        loopback = host in ("localhost", "::1") or host.startswith("127.")
        try:
            self._ws = await ws_connect(self.url, additional_headers=headers, open_timeout=self.open_timeout,
                                        compression=None, proxy=None if loopback else True,
                                        user_agent_header="TARS-console-phone")
        except Exception as exc:  # every failure becomes one readable sentence
            raise RelayConnectError(self._why(exc)) from exc
        self._reader = asyncio.create_task(self._read(), name="relay-reader")

    def _why(self, exc: Exception) -> str:
        url, fix = self.url, "is `python main_tars.py` running"
        if isinstance(exc, InvalidStatus):
            status = exc.response.status_code
            if status in (401, 403):
                signed = (f"the signature covers {self.signed_url}" if self.signature
                          else "this call was not signed: TWILIO_AUTH_TOKEN is not set here")
                return (f"{url} refused the call (HTTP {status}): TWILIO_AUTH_TOKEN and PUBLIC_BASE_URL must "
                        f"match the server's ({signed})")
            if status == 404:
                return f"{url} has no relay endpoint (HTTP 404): {fix} with the voice relay, and is --url right?"
            return (f"{url} rejected the WebSocket handshake (HTTP {status}): {fix}, and do TWILIO_AUTH_TOKEN "
                    f"and PUBLIC_BASE_URL match the server's?")
        if isinstance(exc, InvalidURI):
            return f"{url} is not a ws:// or wss:// address: pass --url ws://HOST:PORT{RELAY_PATH}"
        if isinstance(exc, ConnectionRefusedError):
            return f"nothing answers at {url} (connection refused): {fix} (it listens on HOST:PORT), or pass --url?"
        if isinstance(exc, TimeoutError):
            return f"{url} did not complete the WebSocket handshake within {self.open_timeout:g} s: {fix} there?"
        if isinstance(exc, InvalidHandshake):
            return f"{url} did not answer as a WebSocket server ({_one_line(exc)}): {fix}, and is --url right?"
        if isinstance(exc, OSError):
            return f"cannot reach {url} ({_one_line(exc)}): {fix}, and is --url right?"
        return f"cannot open {url} ({exc.__class__.__name__}: {_one_line(exc)}): {fix}?"

    async def close(self) -> None:
        """Hang up: close the socket cleanly (code 1000) and stop reading. Safe to call twice."""
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await self._reader

    @property
    def closed(self) -> bool:
        return self._closed is not None and self._closed.is_set()

    async def wait_closed(self) -> None:
        """Until the socket is closed (by either side)."""
        await self._closed.wait()

    async def wait_over(self) -> None:
        """Until the call is over: TARS sent end, or the socket closed."""
        await _first(self._closed.wait(), self._ended.wait())

    # --- sending ---------------------------------------------------------------------------------

    async def send(self, message: TwilioMessage) -> dict:
        """Send one message; returns it as sent (a JSON object, also appended to `sent`)."""
        if self._ws is None:
            raise RelayClosed("the relay is not connected: call connect() first")
        try:
            await self._ws.send(encode(message))
        except ConnectionClosed as exc:
            raise RelayClosed(f"the relay closed the call ({self._close_text()})") from exc
        self.sent.append(message.to_dict())
        return self.sent[-1]

    async def setup(self, **custom_parameters: str) -> dict:
        """Send the setup message Twilio sends first; returns it."""
        self.setup_message = await self.send(Setup(
            call_sid=new_sid("CA"), caller=self.caller, to=self.callee, session_id=new_sid("VX"),
            account_sid=new_sid("AC"), call_type="PSTN", direction="inbound", call_status="RINGING",
            custom_parameters=dict(custom_parameters)))
        return self.setup_message

    async def prompt(self, text: str) -> None:
        """Send what the caller said (one final prompt); the reply is then pending (see reply())."""
        loop = asyncio.get_running_loop()
        if self._pending is not None and not self._pending.done.done():
            self._pending.finish(complete=False)  # the caller spoke again: the old reply is abandoned
        # Right after an interrupt, let the cut reply's tokens still in flight drain (and be dropped) first:
        # text messages carry no reply id, so once the new reply is pending they could not be told apart.
        while time.monotonic() < self._stale_until and time.monotonic() - self._last_token_at < STALE_QUIET_SECONDS:
            await asyncio.sleep(STALE_QUIET_SECONDS / 3)
        self._pending = pending = _Pending(loop)
        self._alert_tokens = []
        try:
            await self.send(Prompt(text, lang=self.lang, last=True))
        except RelayClosed:
            pending.finish(complete=False, closed=True)
            raise

    async def reply(self, timeout: float | None = 60) -> Reply:
        """The pending reply once it is over (last=true, interrupt or end).

        TimeoutError if not in time; RelayClosed if the socket closed first (what had arrived is in the
        exception's `reply`).
        """
        if self._pending is None:
            raise RuntimeError("no prompt was sent")
        reply = await asyncio.wait_for(asyncio.shield(self._pending.done), timeout)
        if reply.closed:
            error = RelayClosed(f"the relay closed the call before the reply was over ({self._close_text()}); "
                                f"it had said {str(reply)!r}")
            error.reply = reply
            raise error
        return reply

    async def say(self, text: str, timeout: float | None = 60) -> Reply:
        """prompt(text) then reply(): the reply text (a str) with its timing."""
        await self.prompt(text)
        return await self.reply(timeout)

    async def first_token(self, timeout: float | None = 60) -> None:
        """Until the pending reply has its first token (or is over)."""
        if self._pending is None:
            raise RuntimeError("no prompt was sent")
        await asyncio.wait_for(self._pending.first_token.wait(), timeout)

    @property
    def pending(self) -> bool:
        """A reply is being waited for."""
        return self._pending is not None and not self._pending.done.done()

    @property
    def heard_so_far(self) -> str:
        """What has arrived of the pending reply."""
        return "".join(self._pending.tokens) if self.pending else ""

    async def dtmf(self, digits: str, *, terminator: str = "#") -> None:
        """Keypad presses: one dtmf message per key, then the terminator (unless digits already end with it)."""
        keys = digits + (terminator if terminator and not digits.endswith(terminator) else "")
        bad = sorted(set(keys) - DTMF_KEYS)
        if bad:
            raise ValueError(f"{''.join(bad)!r} are not keypad keys (0-9, *, #, A-D)")
        for key in keys:
            await self.send(Dtmf(key))

    async def interrupt(self, spoken_so_far: str | None = None, *, duration_ms: int | None = None) -> Reply | None:
        """The caller talks over TARS: send interrupt and end the pending reply there.

        spoken_so_far defaults to what has arrived of the reply; duration_ms to the time since its first
        token (since the prompt when none came). Sent as Twilio documents it: durationUntilInterruptMs is a
        string of digits. Returns the interrupted reply (None when none was pending).
        """
        pending = self._pending if self.pending else None
        if spoken_so_far is None:
            spoken_so_far = "".join(pending.tokens) if pending else ""
        if duration_ms is None:
            start = (pending.first_token_at or pending.sent_at) if pending else time.monotonic()
            duration_ms = int((time.monotonic() - start) * 1000)
        await self.send(Interrupt(spoken_so_far, duration_ms=str(duration_ms)))
        if pending:
            self._stale_until, self._dropped_stale = time.monotonic() + STALE_AFTER_INTERRUPT_SECONDS, False
        return pending.finish(interrupted=True, complete=False) if pending else None

    # --- receiving -------------------------------------------------------------------------------

    async def receive(self, timeout: float | None = 10) -> dict:
        """The next message that is not part of a reply (alert tokens, end, play, ...); RelayClosed once closed."""
        message = await asyncio.wait_for(self._events.get(), timeout)
        if message is _CLOSED:
            self._events.put_nowait(_CLOSED)  # every later receive() sees it too
            raise RelayClosed(f"the relay closed the call ({self._close_text()})")
        return message

    async def next_alert(self, timeout: float | None = 10) -> str:
        """The next whole pushed alert (its tokens joined, up to last=true)."""
        getter = asyncio.ensure_future(self._alert_queue.get())
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            done, _ = await asyncio.wait({getter, closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not getter.done():
                getter.cancel()
        if getter in done:
            return getter.result()
        if closed in done:
            raise RelayClosed(f"the relay closed the call ({self._close_text()})")
        raise TimeoutError(f"no alert within {timeout} s")

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
                try:
                    message = decode(text)
                except MalformedMessage:  # not a relay message at all: shown as it came
                    message = {"type": "<not json>", "raw": text}
                self.messages.append(message)
                self._dispatch(message)
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self._ws.close_code
            self.close_reason = self._ws.close_reason or ""
            if self._pending is not None and not self._pending.done.done():
                self._pending.finish(complete=False, closed=True)
            self._events.put_nowait(_CLOSED)
            self._closed.set()

    def _stale(self, last: bool) -> bool:
        """A token of the reply the caller just cut off (Twilio drops these too), not a new message: the
        rest of the cut reply arrives at once; a message of its own (an announcement) is one last=true."""
        if time.monotonic() > self._stale_until:
            return False
        if last and not self._dropped_stale:
            self._stale_until = 0.0
            return False
        self._dropped_stale = True
        if last:
            self._stale_until = 0.0
        return True

    def _dispatch(self, message: dict) -> None:
        try:
            parsed = parse_dict(message, FROM_TARS)
        except UnknownType:  # play, sendDigits, language, ...: TARS sends none of these
            parsed = None
        if isinstance(parsed, Text):
            self._last_token_at = time.monotonic()
            token, last = parsed.token, parsed.last
            if self.pending:
                self._pending.add(token)
                self._notify("reply", message)
                if last:
                    self._pending.finish()
                return
            if self._stale(last):
                return
            self._alert_tokens.append(token)
            self._events.put_nowait(message)
            self._notify("alert", message)
            if last:
                alert = "".join(self._alert_tokens)
                self._alert_tokens = []
                self.alerts.append(alert)
                self._alert_queue.put_nowait(alert)
            return
        if isinstance(parsed, End):
            self.ended = message
            if self.pending:
                self._pending.finish(complete=False)
            self._events.put_nowait(message)
            self._notify("end", message)
            self._ended.set()
            return
        self._events.put_nowait(message)
        self._notify("other", message)

    def _notify(self, kind: str, message: dict) -> None:
        if self.listener is not None:
            self.listener(kind, message)

    def _close_text(self) -> str:
        code = self._ws.close_code if self._ws is not None else None
        reason = (self._ws.close_reason if self._ws is not None else "") or ""
        return f"code {code}" + (f": {reason}" if reason else "") if code is not None else "connection lost"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or exc.__class__.__name__


# --- the terminal ------------------------------------------------------------------------------------

class _Printer:
    """Prints what TARS says as it arrives: a reply on a "TARS: " line, a pushed alert on a "[TARS] " line."""

    def __init__(self, out: TextIO):
        self.out = out
        self.open: str | None = None  # "reply" / "alert" while a line is unfinished

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def line(self, text: str) -> None:
        self.finish_line()
        self.write(text + "\n")

    def finish_line(self, suffix: str = "") -> None:
        if self.open:
            self.write(suffix + "\n")
            self.open = None

    def __call__(self, kind: str, message: dict) -> None:
        if kind in ("reply", "alert"):
            text = parse_dict(message, FROM_TARS)
            if self.open != kind:
                self.finish_line()
                self.write("TARS: " if kind == "reply" else "[TARS] ")
                self.open = kind
            self.write(text.token)
            if text.last:
                self.finish_line()
        elif kind == "end":
            handoff = parse_dict(message, FROM_TARS).handoff_data
            self.line("[TARS ended the call" + (f": {handoff}" if handoff else "") + "]")
        else:
            details = {k: v for k, v in message.items() if k != "type"}
            self.line(f"[TARS sent {message.get('type')}" + (f" {json.dumps(details)}" if details else "") + "]")


_EOF = object()


class _Lines:
    """Lines of a stream, read in a daemon thread so the event loop keeps receiving; _EOF at the end.

    A stream with a file descriptor is read with os.read (a daemon thread blocked in a buffered
    readline would hold sys.stdin's lock at interpreter shutdown).
    """

    def __init__(self, stream: TextIO, loop: asyncio.AbstractEventLoop):
        self.queue: asyncio.Queue = asyncio.Queue()
        self.loop = loop
        try:
            self.interactive = stream.isatty()
        except (AttributeError, OSError, ValueError):
            self.interactive = False
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        target = (lambda: self._read_fd(fd)) if fd is not None else (lambda: self._read_stream(stream))
        threading.Thread(target=target, name="console-phone-stdin", daemon=True).start()

    def _put(self, item) -> bool:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
            return True
        except RuntimeError:  # the loop is gone: the call is over
            return False

    def _read_fd(self, fd: int) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        buffer = ""
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            buffer += decoder.decode(chunk, final=not chunk)
            *lines, buffer = buffer.split("\n")
            for line in lines:
                if not self._put(line):
                    return
            if not chunk:
                if buffer:
                    self._put(buffer)
                self._put(_EOF)
                return

    def _read_stream(self, stream: TextIO) -> None:
        for line in iter(stream.readline, ""):
            if not self._put(line.rstrip("\n")):
                return
        self._put(_EOF)

    async def get(self):
        return await self.queue.get()


async def _first(*aws) -> set:
    """Wait for the first of these: futures and tasks given are left running, coroutines given are cancelled."""
    futures = [asyncio.ensure_future(a) for a in aws]
    try:
        done, _ = await asyncio.wait(set(futures), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for given, future in zip(aws, futures):
            if asyncio.iscoroutine(given) and not future.done():
                future.cancel()
    return done


async def _within(awaitable, seconds: float) -> None:
    """Await, giving up quietly after `seconds`."""
    try:
        await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        pass


async def run_console(url: str, *, auth_token: str | None = None, public_url: str | None = None,
                      caller: str = DEFAULT_CALLER, callee: str = DEFAULT_CALLEE, lang: str = "en-US",
                      greeting: str | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None,
                      stderr: TextIO | None = None, open_timeout: float = OPEN_TIMEOUT_SECONDS) -> int:
    """The terminal call: lines from stdin, TARS on stdout. Returns the exit code.

    Lines are taken in order: after a prompt the next line waits until the reply is over, except
    "/interrupt", which is sent as soon as the first token of the reply has been printed (or after
    INTERRUPT_WAIT_SECONDS without one), and Ctrl+D at a terminal, which hangs up at once.
    0: hung up (EOF) or TARS ended the call. 1: the call could not be opened (one "error: " line on
    stderr), or TARS dropped it without an end message.
    """
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    printer = _Printer(stdout)
    client = RelayClient(url, auth_token=auth_token, public_url=public_url, caller=caller, callee=callee,
                         lang=lang, listener=printer, open_timeout=open_timeout)
    try:
        await client.connect()
        await client.setup()
    except (RelayConnectError, RelayClosed) as exc:
        await client.close()
        print(f"error: {exc}", file=stderr, flush=True)
        return 1

    printer.line(f"Calling {url} from {caller}. Type to talk; #1234 presses keys; /interrupt cuts in; "
                 f"Ctrl+D hangs up.")
    if greeting:
        printer.line(f"TARS: {greeting}")  # Twilio speaks welcomeGreeting itself: it never crosses the socket
    lines = _Lines(stdin, asyncio.get_running_loop())
    over = asyncio.ensure_future(client.wait_over())
    held: Any = None
    hung_up = False

    async def next_line():
        """The next line, or None once the call is over."""
        getter = asyncio.ensure_future(lines.get())
        done = await _first(getter, over)
        if getter in done:
            return getter.result()
        getter.cancel()
        return None

    async def interrupt() -> None:
        if not client.pending:
            printer.line("(nothing to interrupt)")
            return
        if not client._pending.first_token.is_set():  # interrupt what was heard, so wait to hear something
            await _first(_within(client._pending.first_token.wait(), INTERRUPT_WAIT_SECONDS),
                         client._pending.done, over)
        if client.pending:
            await client.interrupt()
            printer.finish_line(" -- (interrupted)")

    async def wait_for_reply():
        """Until the reply is over; a line typed meanwhile is returned to be handled next (/interrupt at once)."""
        while client.pending and not over.done():
            getter = asyncio.ensure_future(lines.get())
            done = await _first(getter, client._pending.done, over)
            if getter not in done:
                getter.cancel()
                return None
            line = getter.result()
            if line is not _EOF and line.strip() == "/interrupt":
                await interrupt()
                continue
            if line is _EOF and lines.interactive:
                return line  # Ctrl+D hangs up at once; piped input ends after the last reply
            await _first(client._pending.done, over)
            return line
        return None

    try:
        while not over.done():
            line, held = (held if held is not None else await next_line()), None
            if line is None:
                break
            if line is _EOF:
                hung_up = True
                break
            text = line.strip()
            if not text:
                continue
            if text == "/interrupt":
                await interrupt()
            elif match := DTMF_LINE.fullmatch(text):
                await client.dtmf(match[1])
            else:
                await client.prompt(text)
                held = await wait_for_reply()
    except RelayClosed:
        pass
    finally:
        over.cancel()
        printer.finish_line()
        await client.close()
    if client.ended is None and not hung_up:
        print(f"error: TARS dropped the call without an end message ({client._close_text()})", file=stderr,
              flush=True)
        return 1
    return 0


def run_call(settings, *, url: str | None = None, caller: str | None = None) -> int:
    """`python main_tars.py call`: run_console wired from Settings (HOST/PORT, PUBLIC_BASE_URL, the token...)."""
    url = url or local_relay_url(settings.HOST, settings.PORT)
    if caller is not None and not E164.fullmatch(caller):
        raise RelayConnectError(f"--from {caller} is not an E.164 number like +15551234567")
    caller = caller or (settings.owner_numbers[0] if settings.owner_numbers else DEFAULT_CALLER)
    try:
        return asyncio.run(run_console(url, auth_token=settings.secret("TWILIO_AUTH_TOKEN"),
                                       public_url=public_relay_url(settings.PUBLIC_BASE_URL), caller=caller,
                                       lang=settings.VOICE_LANGUAGE, greeting=settings.WELCOME_GREETING))
    except KeyboardInterrupt:
        print(file=sys.stdout, flush=True)
        return 130
