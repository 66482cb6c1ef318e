"""What the fakes of model APIs share: a local HTTP server that replays scripted turns.

``tests/fakes/anthropic_api.py`` and ``tests/fakes/openai_api.py`` speak different wire formats but
serve them the same way, so that serving lives here once: the threaded HTTP/1.1 server on a free
port, scripts routed by ``match`` substring (first registered wins, one cursor each, exhausted and
unmatched requests recorded), the turn wrappers :class:`Hang`, :class:`Delay`, :class:`Repeat` and
callable turns, the request records with ``wait_for_requests``, ``reset`` and ``stop``.

Each fake subclasses :class:`ScriptedServer`, :class:`Handler` and :class:`RecordedRequest` and keeps
only its API: request parsing and checks, the rendering of answers and SSE events, its error shape,
its ids and its turn constructors.  Tests import the fakes, not this module.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, ClassVar, Self

EXHAUSTED_TEXT = "Script exhausted."
UNMATCHED_TEXT = "No script matched."


def rand_id(n: int) -> str:
    """``n`` random hex digits (up to 64), the tail of an id in each API's own format."""
    return (uuid.uuid4().hex + uuid.uuid4().hex)[:n]


# --------------------------------------------------------------------------- turn wrappers


@dataclass
class Hang:
    """Read nothing more, send nothing: wait ``seconds`` (cut short by the fake's ``stop()``),
    then close the connection WITHOUT a response.

    A client whose read timeout is shorter sees a timeout (``anthropic.APITimeoutError``,
    ``openai.APITimeoutError``); a more patient client sees the server disconnect
    (``APIConnectionError``).  Either way the SDK may retry, and the retry is served the next turn."""

    seconds: float


@dataclass
class Delay:
    """Wait ``seconds``, then answer with ``turn``."""

    seconds: float
    turn: Any


@dataclass
class Repeat:
    """Serve ``turn`` (a turn or a callable) for every request; never advances
    the cursor, so anything after it in the script is unreachable."""

    turn: Any


def hang(seconds: float) -> Hang:
    """See :class:`Hang`: no response for ``seconds``, then the connection is closed."""
    return Hang(seconds)


def delay(seconds: float, turn: Any) -> Delay:
    """Wait ``seconds`` and then answer with ``turn``."""
    return Delay(seconds, turn)


def repeat(turn: Any) -> Repeat:
    """Serve ``turn`` forever (cursor never advances).  ``turn`` may be a callable
    ``f(request_body) -> turn`` to compute each answer."""
    return Repeat(turn)


# --------------------------------------------------------------------------- records


@dataclass
class RecordedRequest:
    """One request as the fake received it.  Each fake subclasses it to say how its
    API's message content reads as text (and to add fields of its own)."""

    method: str
    path: str  # including any query string
    headers: dict[str, str]  # lower-case keys
    body: Any  # parsed JSON (None if absent / not JSON)
    raw_body: bytes
    script: str | None  # name of the script that served it (None: none / refused / not a model call)
    received_at: float
    status: int | None = None  # HTTP status answered (None until answered / hang)
    received_mono: float = field(default_factory=time.monotonic)  # time.monotonic() on arrival (benchmarks)
    first_text_mono: float | None = None  # time.monotonic() when the first streamed text was written
    turn: Any = None  # the resolved turn that was served

    # How the API's messages read as text (each fake sets its functions as staticmethods):
    _first_user_text: ClassVar[Callable[[Any], str]]  # of a body's first user message: what scripts are routed by
    _content_text: ClassVar[Callable[[Any], str]]  # of one message's content

    @property
    def api_key(self) -> str | None:
        """The ``Authorization: Bearer`` token sent (the SDK's api_key)."""
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None

    @property
    def messages(self) -> list:
        return (self.body or {}).get("messages", []) if isinstance(self.body, dict) else []

    @property
    def first_user_text(self) -> str:
        return self._first_user_text(self.body)

    @property
    def last_user_text(self) -> str:
        for m in reversed(self.messages):
            if isinstance(m, dict) and m.get("role") == "user":
                return self._content_text(m.get("content"))
        return ""

    @property
    def stream(self) -> bool:
        return isinstance(self.body, dict) and bool(self.body.get("stream"))


@dataclass
class Script:
    name: str
    match: str
    turns: list
    cursor: int = 0
    served: int = 0
    usage: dict | None = None  # token counts every answer reports instead of the fake's own


# --------------------------------------------------------------------------- HTTP


class Aborted(Exception):
    """Stream aborted: client went away or the fake is stopping."""


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    fake: ScriptedServer

    def handle_error(self, request: Any, client_address: Any) -> None:  # quiet on disconnects
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    """HTTP plumbing.  A fake's subclass sets the request-id header and answers the paths:
    ``_get`` (after ``/health`` and recording), ``_post`` (every other verb), and
    ``_send_internal_error`` in its API's error shape."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes; avoid 40 ms stalls
    server: Server
    _request_id_header = "request-id"  # sent with every answer, under the API's own name
    _new_request_id: Callable[[], str]  # the API's request-id format (a staticmethod)

    def _get(self, path: str, rec: RecordedRequest) -> None:
        raise NotImplementedError

    def _post(self, path: str, raw: bytes, body: Any) -> None:
        raise NotImplementedError

    def _send_internal_error(self, message: str) -> None:
        raise NotImplementedError

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, False)

    # ---- helpers
    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        hdrs = {self._request_id_header: self._new_request_id()}
        hdrs.update(headers or {})
        for k, v in hdrs.items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _read_body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            return self.rfile.read(n)
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                out += self.rfile.read(size)
                self.rfile.readline()
            return out
        return b""

    def _start_event_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header(self._request_id_header, self._new_request_id())
        self.end_headers()

    def _write_chunk(self, payload: bytes) -> None:
        """One chunk of a streamed body; nothing more is written once the fake is stopping."""
        if self.server.fake._stopping.is_set():
            raise Aborted()
        self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        self.wfile.flush()

    def _end_event_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # ---- verbs
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/health":  # readiness probe: not recorded
            self._send_json(200, {"status": "ok"})
            return
        rec = self.server.fake._record(self, b"", None, None)
        try:
            self._get(path, rec)
        except (ConnectionError, BrokenPipeError, socket.timeout):
            self.close_connection = True

    def do_POST(self) -> None:
        fake = self.server.fake
        raw = self._read_body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        try:
            self._post(self.path.split("?", 1)[0], raw, body)
        except (Aborted, ConnectionError, BrokenPipeError, socket.timeout):
            self.close_connection = True
        except Exception as exc:  # a bug in the fake or a bad turn: make it visible, don't retry
            fake.errors.append(traceback.format_exc())
            self.close_connection = True
            try:
                self._send_internal_error(f"{fake._label} internal error: {exc!r}")
            except OSError:
                pass

    do_PUT = do_DELETE = do_PATCH = do_POST


# --------------------------------------------------------------------------- the fake


class ScriptedServer:
    """The scripted server a fake is.  A fake's subclass names its handler, record and
    concrete turn types, and how a ``str`` or a raw ``dict`` in a script becomes a turn."""

    _label = "ScriptedServer"  # in thread names and messages: the fake's class name
    _handler_type: type[Handler] = Handler
    _record_type: type[RecordedRequest] = RecordedRequest
    _answer_types: tuple[type, ...] = ()  # the fake's Turn and ErrorTurn: served as they are
    _url_path = ""  # what base_url adds to the origin
    _poll_interval = 0.05  # how long stop() may wait for the serving thread to notice
    # (staticmethods of the fake:)
    _text: Callable[[str], Any]  # the fake's text(s): what a str in a script stands for
    _turn_from_dict: Callable[[dict], Any]  # a raw assistant message in the API's shape, as a turn

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.requests: list[RecordedRequest] = []
        self.exhausted: set[str] = set()
        self.unmatched: list[RecordedRequest] = []
        self.errors: list[str] = []  # tracebacks of exceptions inside the fake (answered as 500)
        self._scripts: list[Script] = []
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()

    # ---- lifecycle
    def start(self) -> Self:
        if self._server is not None:
            return self
        self._stopping.clear()
        srv = Server((self.host, self.port), self._handler_type)
        srv.fake = self
        self._server = srv
        self.port = srv.server_address[1]
        self._thread = threading.Thread(
            target=srv.serve_forever, kwargs={"poll_interval": self._poll_interval},
            name=f"{self._label}:{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        srv, self._server = self._server, None
        if srv is None:
            return
        self._stopping.set()  # wakes hang()/delay()/chunk_delay sleepers
        srv.shutdown()
        srv.server_close()
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:  # kill keep-alive connections so nothing is served after stop()
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://<host>:<port>``, plus the path the API's clients are pointed at."""
        if self._server is None and self.port == 0:
            raise RuntimeError(f"{self._label} not started (port unknown)")
        return f"http://{self.host}:{self.port}{self._url_path}"

    # ---- scripting
    def script(self, turns: list, *, match: str = "", name: str | None = None, usage: dict | None = None) -> None:
        """Register a script.  ``name`` defaults to ``match`` (or ``"default"`` when match is empty)."""
        if name is None:
            name = match or "default"
        with self._cond:
            self._scripts.append(Script(name=name, match=match, turns=list(turns), usage=usage))

    def reset(self) -> None:
        """Forget scripts, recorded requests and exhaustion records."""
        with self._cond:
            self._scripts.clear()
            self.requests.clear()
            self.exhausted.clear()
            self.unmatched.clear()

    def remaining(self, name: str) -> int:
        """Turns not yet served by script ``name``."""
        with self._cond:
            for s in self._scripts:
                if s.name == name:
                    return max(len(s.turns) - s.cursor, 0)
        raise KeyError(name)

    # ---- inspection
    def wait_for_requests(self, n: int, timeout: float = 10) -> list[RecordedRequest]:
        """Block until at least ``n`` requests were recorded; returns a copy of
        all of them.  Raises TimeoutError otherwise."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= n, timeout=timeout):
                raise TimeoutError(f"{self._label}: {len(self.requests)} requests after {timeout}s, wanted {n}")
            return list(self.requests)

    def requests_for(self, script: str | None) -> list[RecordedRequest]:
        with self._cond:
            return [r for r in self.requests if r.script == script]

    def _requests_to(self, path: str) -> list[RecordedRequest]:
        with self._cond:
            return [r for r in self.requests if r.path.split("?", 1)[0] == path]

    # ---- internals
    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def _record(self, h: Handler, raw: bytes, body: Any, script: str | None, *, into: list | None = None,
                **fields: Any) -> RecordedRequest:
        """Record a request (``fields``: the fake's own record fields), also in ``into`` if given."""
        rec = self._record_type(
            method=h.command,
            path=h.path,
            headers={k.lower(): v for k, v in h.headers.items()},
            body=body,
            raw_body=raw,
            script=script,
            received_at=time.time(),
            **fields,
        )
        with self._cond:
            self.requests.append(rec)
            if into is not None:  # under the same lock: a waiter never sees one list without the other
                into.append(rec)
            self._recorded(rec)
            self._cond.notify_all()
        return rec

    def _recorded(self, rec: RecordedRequest) -> None:
        """Called under the lock as ``rec`` is recorded, for a fake's running tallies."""

    def _pick(self, body: Any) -> tuple[str | None, Any, dict | None]:
        """Choose script + raw turn (+ the script's usage) for a request (under the lock)."""
        goal = self._record_type._first_user_text(body)
        with self._cond:
            for s in self._scripts:
                if s.match in goal:
                    s.served += 1
                    if s.cursor >= len(s.turns):
                        self.exhausted.add(s.name)
                        return s.name, self._text(EXHAUSTED_TEXT), s.usage
                    t = s.turns[s.cursor]
                    if not isinstance(t, Repeat):
                        s.cursor += 1
                    return s.name, t, s.usage
        return None, None, None

    def _sleep(self, seconds: float) -> bool:
        """Interruptible sleep; returns False if the fake is stopping."""
        if seconds <= 0:
            return not self._stopping.is_set()
        return not self._stopping.wait(seconds)

    def _pause(self, seconds: float) -> None:
        """A stream's pause between chunks; aborts the stream if the fake stops meanwhile."""
        if seconds > 0 and not self._sleep(seconds):
            raise Aborted()

    def _coerce(self, turn: Any, body: dict, depth: int = 0) -> Any:
        """Resolve callables / shorthands into a concrete turn (the fake's Turn/ErrorTurn, Hang, Delay)."""
        if depth > 20:
            raise RuntimeError(f"{self._label}: turn resolution recursed too deep")
        if isinstance(turn, (*self._answer_types, Hang, Delay)):
            return turn
        if isinstance(turn, Repeat):
            return self._coerce(turn.turn, body, depth + 1)
        if isinstance(turn, str):
            return self._text(turn)
        if isinstance(turn, dict):
            return self._turn_from_dict(turn)
        if callable(turn):
            return self._coerce(turn(body), body, depth + 1)
        raise TypeError(f"{self._label}: unsupported turn {turn!r}")

    def _resolve(self, h: Handler, rec: RecordedRequest, name: str | None, turn: Any, body: dict) -> Any:
        """The turn to answer ``rec`` with, as picked (``name`` None: no script matched): callables
        called, delays waited out.  None when it was a Hang, already served by closing the connection."""
        if name is None:
            with self._cond:
                self.unmatched.append(rec)
            turn = self._text(UNMATCHED_TEXT)
        while True:
            turn = self._coerce(turn, body)
            if not isinstance(turn, Delay):
                break
            if not self._sleep(turn.seconds):
                raise Aborted()
            turn = turn.turn
        rec.turn = turn
        if isinstance(turn, Hang):
            self._sleep(turn.seconds)
            h.close_connection = True  # close without any response
            return None
        return turn
