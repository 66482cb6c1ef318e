"""A local fake of the Anthropic Messages API for tests.

No network is reachable in the test environment, so tests point the *real*
``anthropic`` SDK (``base_url=...`` or ``ANTHROPIC_BASE_URL``) at this server.
It is a genuine HTTP/1.1 server on 127.0.0.1 (free port by default) running in
a background thread of the pytest process, so code under test in another
process (e.g. an RQ worker) can reach it as well.

It replays scripted assistant turns and records every request::

    from tests.fakes.anthropic_api import FakeAnthropic, bash, text, error

    with FakeAnthropic() as fake:
        fake.script([bash("ls"), text("Done.")], match="list files", name="ls")
        fake.script([text("Hello.")])                 # default: matches everything
        client = anthropic.Anthropic(api_key="test", base_url=fake.base_url)
        ...
        fake.wait_for_requests(2)
        assert fake.requests[0].body["model"] == "..."

Routing: a ``POST /v1/messages`` is served by the FIRST registered script whose
``match`` substring occurs in the text of the request's first user message
(``match=""`` matches everything, so register it last).  Every script has its
own cursor.  Exhausted scripts answer ``"Script exhausted."`` (end_turn) and
their name is added to ``fake.exhausted``.  A request no script matches is
answered with ``"No script matched."`` (end_turn) and appended to
``fake.unmatched``.

Turns (module-level helpers):

``text(s)``, ``tool_use(name, input)``, ``bash(cmd)``, ``edit(**input)``,
``multi(...)`` (several blocks / parallel tool use in one turn),
``error(status)``, ``hang(seconds)``, ``delay(seconds, turn)``,
``repeat(turn)`` and any callable ``f(request_body) -> turn``.  A plain ``str``
in a script is shorthand for ``text(s)``.

Other endpoints: ``POST /v1/messages/count_tokens`` returns
``{"input_tokens": N}`` (recorded, consumes no turn); ``GET /health`` returns
200 (not recorded); anything else is a 404 in Anthropic's error shape.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Union

__all__ = [
    "FakeAnthropic",
    "RecordedRequest",
    "Turn",
    "ErrorTurn",
    "Hang",
    "Delay",
    "Repeat",
    "text",
    "tool_use",
    "bash",
    "edit",
    "multi",
    "error",
    "hang",
    "delay",
    "repeat",
    "EXHAUSTED_TEXT",
    "UNMATCHED_TEXT",
]

EXHAUSTED_TEXT = "Script exhausted."
UNMATCHED_TEXT = "No script matched."


# --------------------------------------------------------------------------- ids


def _rand(n: int) -> str:
    return (uuid.uuid4().hex + uuid.uuid4().hex)[:n]


def new_message_id() -> str:
    return "msg_01" + _rand(22)


def new_tool_use_id() -> str:
    return "toolu_01" + _rand(22)


def new_request_id() -> str:
    return "req_01" + _rand(22)


# --------------------------------------------------------------------------- turns


@dataclass
class Turn:
    """An assistant message to answer with.

    ``content`` holds API content blocks (dicts).  A ``tool_use`` block whose
    ``id`` is None gets a fresh ``toolu_01...`` id every time it is served, so a
    repeated turn never produces duplicate ids.  ``chunk_delay`` is the pause (s)
    between SSE delta events when the turn is streamed.
    """

    content: list[dict]
    stop_reason: str = "end_turn"
    chunk_delay: float = 0.0
    stop_sequence: str | None = None


@dataclass
class ErrorTurn:
    """An HTTP error response ``{"type":"error","error":{...},"request_id":...}``."""

    status: int
    type_: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Hang:
    """Read nothing more, send nothing: wait ``seconds`` (cut short by
    ``FakeAnthropic.stop()``), then close the connection WITHOUT a response.

    A client whose read timeout is shorter sees a timeout
    (``anthropic.APITimeoutError``); a more patient client sees the server
    disconnect (``anthropic.APIConnectionError``).  Either way the SDK may retry,
    and the retry is served the next turn."""

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


TurnLike = Union[Turn, ErrorTurn, Hang, Delay, Repeat, str, Callable[[dict], Any]]


def text(s: str, stop_reason: str = "end_turn", *, chunk_delay: float = 0.0) -> Turn:
    """Assistant message with one text block."""
    return Turn([{"type": "text", "text": s}], stop_reason=stop_reason, chunk_delay=chunk_delay)


def tool_use(
    name: str,
    input: dict,
    text: str | None = None,  # noqa: A002 - mirrors the brief's signature
    id: str | None = None,  # noqa: A002
    *,
    chunk_delay: float = 0.0,
) -> Turn:
    """Assistant message: optional leading text block + one tool_use block,
    stop_reason ``tool_use``.  Without ``id`` a fresh one is made per response."""
    content: list[dict] = []
    if text is not None:
        content.append({"type": "text", "text": text})
    content.append({"type": "tool_use", "id": id, "name": name, "input": dict(input)})
    return Turn(content, stop_reason="tool_use", chunk_delay=chunk_delay)


def bash(command: str, text: str | None = None, **kw: Any) -> Turn:
    return tool_use("bash", {"command": command}, text=text, **kw)


def edit(**input: Any) -> Turn:
    """``tool_use("str_replace_based_edit_tool", input)``, e.g.
    ``edit(command="create", path="/x", file_text="...")``."""
    return tool_use("str_replace_based_edit_tool", input)


def multi(*parts: Any, stop_reason: str | None = None, chunk_delay: float = 0.0) -> Turn:
    """One assistant message made of several blocks, e.g. parallel tool use::

        multi("Running both.", bash("ls"), bash("pwd"))

    Each part is a ``str`` (text block), a content-block ``dict``, or a ``Turn``
    whose blocks are appended.  stop_reason defaults to ``tool_use`` if any
    block is a tool_use, else ``end_turn``."""
    content: list[dict] = []
    for p in parts:
        if isinstance(p, str):
            content.append({"type": "text", "text": p})
        elif isinstance(p, Turn):
            content.extend(copy.deepcopy(p.content))
        elif isinstance(p, dict):
            content.append(copy.deepcopy(p))
        else:
            raise TypeError(f"multi(): unsupported part {p!r}")
    if stop_reason is None:
        stop_reason = "tool_use" if any(b.get("type") == "tool_use" for b in content) else "end_turn"
    return Turn(content, stop_reason=stop_reason, chunk_delay=chunk_delay)


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_ERROR_MESSAGES = {
    "invalid_request_error": "Invalid request",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Billing error",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "Not found",
    "timeout_error": "Request timed out",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "Rate limited",
    "api_error": "Internal server error",
    "overloaded_error": "Overloaded",
}


def error(
    status: int,
    type_: str | None = None,
    message: str | None = None,
    headers: dict[str, str] | None = None,
) -> ErrorTurn:
    """HTTP error in Anthropic's shape.  Default type per status (400
    invalid_request_error, 401 authentication_error, 403 permission_error, 404
    not_found_error, 429 rate_limit_error, 500 api_error, 529 overloaded_error;
    other 5xx api_error, other 4xx invalid_request_error).  A ``request-id``
    header is always sent; pass e.g. ``headers={"retry-after-ms": "1"}``.

    Note: the SDK retries 408/409/429/5xx by itself, and each HTTP attempt
    consumes one cursor position.  ``retry-after-ms: 0`` makes the SDK fall back
    to its own backoff (~0.5 s); use ``"1"`` for an (almost) immediate retry."""
    if type_ is None:
        type_ = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    if message is None:
        message = _ERROR_MESSAGES.get(type_, type_)
    return ErrorTurn(status, type_, message, dict(headers or {}))


def hang(seconds: float) -> Hang:
    """See :class:`Hang`: no response for ``seconds``, then the connection is closed."""
    return Hang(seconds)


def delay(seconds: float, turn: TurnLike) -> Delay:
    """Wait ``seconds`` and then answer with ``turn``."""
    return Delay(seconds, turn)


def repeat(turn: TurnLike) -> Repeat:
    """Serve ``turn`` forever (cursor never advances).  ``turn`` may be a callable
    ``f(request_body) -> turn`` to compute each answer."""
    return Repeat(turn)


# --------------------------------------------------------------------------- records


@dataclass
class RecordedRequest:
    method: str
    path: str  # including any query string, e.g. "/v1/messages"
    headers: dict[str, str]  # lower-case keys
    body: Any  # parsed JSON (None if absent / not JSON)
    raw_body: bytes
    script: str | None  # name of the script that served it (None: none / not a messages call)
    received_at: float
    status: int | None = None  # HTTP status answered (None until answered / hang)
    received_mono: float = field(default_factory=time.monotonic)  # time.monotonic() on arrival (benchmarks)
    first_text_mono: float | None = None  # time.monotonic() when the first streamed text delta was written
    turn: Any = None  # the resolved turn that was served

    @property
    def api_key(self) -> str | None:
        """The credential sent: ``x-api-key`` or the ``Authorization: Bearer`` token
        (anthropic 2.x sends api_key as a Bearer token)."""
        if "x-api-key" in self.headers:
            return self.headers["x-api-key"]
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None

    @property
    def messages(self) -> list:
        return (self.body or {}).get("messages", []) if isinstance(self.body, dict) else []

    @property
    def first_user_text(self) -> str:
        return _first_user_text(self.body)

    @property
    def last_user_text(self) -> str:
        for m in reversed(self.messages):
            if m.get("role") == "user":
                return _content_text(m.get("content"))
        return ""

    @property
    def stream(self) -> bool:
        return isinstance(self.body, dict) and bool(self.body.get("stream"))


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    if isinstance(content, list):
        for b in content:
            if isinstance(b, dict):
                if b.get("type") == "text":
                    parts.append(str(b.get("text", "")))
                elif b.get("type") == "tool_result":
                    parts.append(_content_text(b.get("content")))
    return "\n".join(parts)


def _first_user_text(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    for m in body.get("messages") or []:
        if isinstance(m, dict) and m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                return c
            # only text blocks of the first user message
            return "\n".join(
                str(b.get("text", "")) for b in (c or []) if isinstance(b, dict) and b.get("type") == "text"
            )
    return ""


# --------------------------------------------------------------------------- caching


def _tok(s: str) -> int:
    return math.ceil(len(s) / 4)


def _strip_cache_control(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip_cache_control(v) for k, v in obj.items() if k != "cache_control"}
    if isinstance(obj, list):
        return [_strip_cache_control(v) for v in obj]
    return obj


def _segments(body: dict) -> list[tuple[str, dict | None]]:
    """The prompt as an ordered list of (canonical text, cache_control or None):
    tools, then system, then message content blocks."""
    segs: list[tuple[str, dict | None]] = []

    def add(kind: str, obj: Any, cc: Any) -> None:
        s = json.dumps([kind, _strip_cache_control(obj)], sort_keys=True, separators=(",", ":"))
        segs.append((s, cc if isinstance(cc, dict) else None))

    for t in body.get("tools") or []:
        add("tool", t, t.get("cache_control") if isinstance(t, dict) else None)
    system = body.get("system")
    if isinstance(system, str):
        add("system", {"type": "text", "text": system}, None)
    elif isinstance(system, list):
        for b in system:
            add("system", b, b.get("cache_control") if isinstance(b, dict) else None)
    for m in body.get("messages") or []:
        if not isinstance(m, dict):
            continue
        role = m.get("role")
        c = m.get("content")
        if isinstance(c, str):
            add(role, {"type": "text", "text": c}, None)
        elif isinstance(c, list):
            for b in c:
                add(role, b, b.get("cache_control") if isinstance(b, dict) else None)
    top = body.get("cache_control")
    if isinstance(top, dict) and segs:  # automatic caching: breakpoint on the last block
        segs[-1] = (segs[-1][0], segs[-1][1] or top)
    return segs


class _PromptCache:
    """Plausible prompt-caching emulation.

    Prefix hashes are taken at every block boundary.  Cache *writes* happen at
    the request's breakpoints (blocks carrying cache_control).  A request reads
    the longest prefix (ending at or before its last breakpoint) previously
    written; the rest of its cacheable prefix is cache creation; what follows
    the last breakpoint is ordinary input.  Keyed by model.  No minimum length,
    no TTL, no 20-block lookback limit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._written: set[str] = set()

    def clear(self) -> None:
        with self._lock:
            self._written.clear()

    def usage(self, body: dict) -> dict:
        segs = _segments(body)
        h = hashlib.sha256(json.dumps(body.get("model")).encode())
        hashes: list[str] = []
        cum: list[int] = []
        total = 0
        for s, _ in segs:
            h.update(s.encode())
            h.update(b"\x00")
            hashes.append(h.hexdigest())
            total += _tok(s)
            cum.append(total)
        total = max(total, 1)
        breakpoints = [i for i, (_, cc) in enumerate(segs) if cc is not None]
        if not breakpoints:
            return {
                "input_tokens": total,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            }
        last = breakpoints[-1]
        cacheable = cum[last]
        with self._lock:
            read = 0
            for j in range(last, -1, -1):
                if hashes[j] in self._written:
                    read = cum[j]
                    break
            for i in breakpoints:
                self._written.add(hashes[i])
        creation = cacheable - read
        ttl = segs[last][1].get("ttl") if segs[last][1] else None
        return {
            "input_tokens": max(total - cacheable, 0),
            "cache_creation_input_tokens": creation,
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": 0 if ttl == "1h" else creation,
                "ephemeral_1h_input_tokens": creation if ttl == "1h" else 0,
            },
        }


# --------------------------------------------------------------------------- scripts


@dataclass
class _Script:
    name: str
    match: str
    turns: list
    cursor: int = 0
    served: int = 0
    usage: dict | None = None


def _coerce(turn: Any, body: dict, depth: int = 0) -> Any:
    """Resolve callables / shorthands into a concrete Turn/ErrorTurn/Hang/Delay."""
    if depth > 20:
        raise RuntimeError("FakeAnthropic: turn resolution recursed too deep")
    if isinstance(turn, (Turn, ErrorTurn, Hang, Delay)):
        return turn
    if isinstance(turn, Repeat):
        return _coerce(turn.turn, body, depth + 1)
    if isinstance(turn, str):
        return text(turn)
    if isinstance(turn, dict):  # raw message-ish dict
        if "content" in turn:
            return Turn(list(turn["content"]), stop_reason=turn.get("stop_reason", "end_turn"))
        return multi(turn)
    if callable(turn):
        return _coerce(turn(body), body, depth + 1)
    raise TypeError(f"FakeAnthropic: unsupported turn {turn!r}")


# --------------------------------------------------------------------------- server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    fake: "FakeAnthropic"

    def handle_error(self, request: Any, client_address: Any) -> None:  # quiet on disconnects
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return
        super().handle_error(request, client_address)


class _Aborted(Exception):
    """Stream aborted: client went away or the fake is stopping."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes; avoid 40 ms stalls
    server: _Server

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
        hdrs = {"request-id": new_request_id()}
        hdrs.update(headers or {})
        for k, v in hdrs.items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_error_shape(self, status: int, type_: str, message: str, headers: dict | None = None) -> None:
        hdrs = {"request-id": new_request_id()}
        hdrs.update(headers or {})
        body = {"type": "error", "error": {"type": type_, "message": message}, "request_id": hdrs["request-id"]}
        self._send_json(status, body, hdrs)

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

    # ---- verbs
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/health":
            self._send_json(200, {"status": "ok"})
            return
        rec = self.server.fake._record(self, b"", None, None)
        rec.status = 404
        self._send_error_shape(404, "not_found_error", f"Not found: {self.command} {path}")

    def do_POST(self) -> None:
        fake = self.server.fake
        raw = self._read_body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = self.path.split("?", 1)[0]
        try:
            if path == "/v1/messages":
                fake._serve_messages(self, raw, body)
            elif path == "/v1/messages/count_tokens":
                rec = fake._record(self, raw, body, None)
                rec.status = 200
                if not isinstance(body, dict):
                    rec.status = 400
                    self._send_error_shape(400, "invalid_request_error", "Body must be JSON")
                    return
                self._send_json(200, {"input_tokens": _count_tokens(body)})
            else:
                rec = fake._record(self, raw, body, None)
                rec.status = 404
                self._send_error_shape(404, "not_found_error", f"Not found: POST {path}")
        except (_Aborted, ConnectionError, BrokenPipeError, socket.timeout):
            self.close_connection = True
        except Exception as exc:  # a bug in the fake or a bad turn: make it visible, don't retry
            import traceback

            fake.errors.append(traceback.format_exc())
            self.close_connection = True
            try:
                self._send_error_shape(500, "api_error", f"FakeAnthropic internal error: {exc!r}",
                                       {"x-should-retry": "false"})
            except OSError:
                pass

    do_PUT = do_DELETE = do_PATCH = do_POST


def _count_tokens(body: dict) -> int:
    return max(1, sum(_tok(s) for s, _ in _segments(body)))


def _text_chunks(s: str, words: int = 3) -> list[str]:
    """Split text into chunks of a few words (whitespace kept), joining back to ``s``."""
    tokens = re.findall(r"\S+\s*|\s+", s)
    if not tokens:
        return [s] if s else []
    return ["".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]


def _json_chunks(s: str, size: int = 12) -> list[str]:
    return [s[i : i + size] for i in range(0, len(s), size)] or [""]


class FakeAnthropic:
    """Fake Anthropic Messages API server.  See the module docstring."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.requests: list[RecordedRequest] = []
        self.exhausted: set[str] = set()
        self.unmatched: list[RecordedRequest] = []
        self.errors: list[str] = []  # tracebacks of exceptions inside the fake (answered as 500)
        self._scripts: list[_Script] = []
        self._cond = threading.Condition()
        self._cache = _PromptCache()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()

    # ---- lifecycle
    def start(self) -> "FakeAnthropic":
        if self._server is not None:
            return self
        self._stopping.clear()
        srv = _Server((self.host, self.port), _Handler)
        srv.fake = self
        self._server = srv
        self.port = srv.server_address[1]
        self._thread = threading.Thread(
            target=srv.serve_forever, kwargs={"poll_interval": 0.05}, name=f"FakeAnthropic:{self.port}", daemon=True
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

    def __enter__(self) -> "FakeAnthropic":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None and self.port == 0:
            raise RuntimeError("FakeAnthropic not started (port unknown)")
        return f"http://{self.host}:{self.port}"

    # ---- scripting
    def script(self, turns: list, *, match: str = "", name: str | None = None, usage: dict | None = None) -> None:
        """Register a script (see module docstring).  ``name`` defaults to
        ``match`` (or ``"default"`` when match is empty).  ``usage``: the token
        counts every answer of this script reports instead of the emulated ones
        (input_tokens, output_tokens, cache_creation_input_tokens,
        cache_read_input_tokens; any left out is 0), for exact costs."""
        if name is None:
            name = match or "default"
        with self._cond:
            self._scripts.append(_Script(name=name, match=match, turns=list(turns), usage=usage))

    def reset(self) -> None:
        """Forget scripts, recorded requests, exhaustion records and the prompt cache."""
        with self._cond:
            self._scripts.clear()
            self.requests.clear()
            self.exhausted.clear()
            self.unmatched.clear()
        self._cache.clear()

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
                raise TimeoutError(f"FakeAnthropic: {len(self.requests)} requests after {timeout}s, wanted {n}")
            return list(self.requests)

    def requests_for(self, script: str | None) -> list[RecordedRequest]:
        with self._cond:
            return [r for r in self.requests if r.script == script]

    @property
    def message_requests(self) -> list[RecordedRequest]:
        with self._cond:
            return [r for r in self.requests if r.path.split("?", 1)[0] == "/v1/messages"]

    # ---- internals
    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def _record(self, h: _Handler, raw: bytes, body: Any, script: str | None) -> RecordedRequest:
        rec = RecordedRequest(
            method=h.command,
            path=h.path,
            headers={k.lower(): v for k, v in h.headers.items()},
            body=body,
            raw_body=raw,
            script=script,
            received_at=time.time(),
        )
        with self._cond:
            self.requests.append(rec)
            self._cond.notify_all()
        return rec

    def _pick(self, body: Any) -> tuple[str | None, Any, dict | None]:
        """Choose script + raw turn (+ the script's usage) for a request (under the lock)."""
        goal = _first_user_text(body)
        with self._cond:
            for s in self._scripts:
                if s.match in goal:
                    s.served += 1
                    if s.cursor >= len(s.turns):
                        self.exhausted.add(s.name)
                        return s.name, text(EXHAUSTED_TEXT), s.usage
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

    def _serve_messages(self, h: _Handler, raw: bytes, body: Any) -> None:
        if not isinstance(body, dict):
            rec = self._record(h, raw, body, None)
            rec.status = 400
            h._send_error_shape(400, "invalid_request_error", "Request body must be a JSON object")
            return
        name, turn, usage = self._pick(body)
        # Record before answering (so wait_for_requests sees in-flight/hung requests).
        rec = self._record(h, raw, body, name)
        if name is None:
            with self._cond:
                self.unmatched.append(rec)
            turn = text(UNMATCHED_TEXT)
        while True:
            turn = _coerce(turn, body)
            if isinstance(turn, Delay):
                if not self._sleep(turn.seconds):
                    raise _Aborted()
                turn = turn.turn
                continue
            break
        rec.turn = turn
        if isinstance(turn, Hang):
            self._sleep(turn.seconds)
            h.close_connection = True  # close without any response
            return
        if isinstance(turn, ErrorTurn):
            rec.status = turn.status
            h._send_error_shape(turn.status, turn.type_, turn.message, turn.headers)
            return
        assert isinstance(turn, Turn)
        message = self._render(turn, body, usage)
        rec.status = 200
        if body.get("stream"):
            self._stream(h, message, turn.chunk_delay, rec)
        else:
            h._send_json(200, message)

    def _render(self, turn: Turn, body: dict, usage_given: dict | None = None) -> dict:
        content = copy.deepcopy(turn.content)
        for b in content:
            if b.get("type") == "tool_use" and not b.get("id"):
                b["id"] = new_tool_use_id()
        usage = self._cache.usage(body)
        usage["output_tokens"] = max(1, _tok(json.dumps(content)))
        if usage_given is not None:
            usage.update({k: usage_given.get(k, 0) for k in ("input_tokens", "output_tokens",
                                                             "cache_creation_input_tokens", "cache_read_input_tokens")})
        usage["service_tier"] = "standard"
        return {
            "id": new_message_id(),
            "type": "message",
            "role": "assistant",
            "model": body.get("model") or "claude-fake",
            "content": content,
            "stop_reason": turn.stop_reason,
            "stop_sequence": turn.stop_sequence,
            "usage": usage,
        }

    def _stream(self, h: _Handler, message: dict, chunk_delay: float, rec: RecordedRequest) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream; charset=utf-8")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Transfer-Encoding", "chunked")
        h.send_header("request-id", new_request_id())
        h.end_headers()

        def send(event: str, data: dict) -> None:
            if self._stopping.is_set():
                raise _Aborted()
            payload = f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()
            h.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
            h.wfile.flush()

        def pause() -> None:
            if chunk_delay > 0 and not self._sleep(chunk_delay):
                raise _Aborted()

        usage = message["usage"]
        start_usage = dict(usage, output_tokens=1)
        send("message_start", {"type": "message_start", "message": dict(message, content=[], stop_reason=None,
                                                                         stop_sequence=None, usage=start_usage)})
        send("ping", {"type": "ping"})
        for i, block in enumerate(message["content"]):
            btype = block.get("type")
            if btype == "text":
                send("content_block_start", {"type": "content_block_start", "index": i,
                                             "content_block": dict(block, text="")})
                for chunk in _text_chunks(block.get("text", "")):
                    pause()
                    send("content_block_delta", {"type": "content_block_delta", "index": i,
                                                 "delta": {"type": "text_delta", "text": chunk}})
                    if rec.first_text_mono is None:
                        rec.first_text_mono = time.monotonic()
            elif btype in ("tool_use", "server_tool_use"):
                send("content_block_start", {"type": "content_block_start", "index": i,
                                             "content_block": dict(block, input={})})
                send("content_block_delta", {"type": "content_block_delta", "index": i,
                                             "delta": {"type": "input_json_delta", "partial_json": ""}})
                for chunk in _json_chunks(json.dumps(block.get("input", {}))):
                    pause()
                    send("content_block_delta", {"type": "content_block_delta", "index": i,
                                                 "delta": {"type": "input_json_delta", "partial_json": chunk}})
            elif btype == "thinking":
                send("content_block_start", {"type": "content_block_start", "index": i,
                                             "content_block": dict(block, thinking="", signature="")})
                for chunk in _text_chunks(block.get("thinking", "")):
                    pause()
                    send("content_block_delta", {"type": "content_block_delta", "index": i,
                                                 "delta": {"type": "thinking_delta", "thinking": chunk}})
                send("content_block_delta", {"type": "content_block_delta", "index": i,
                                             "delta": {"type": "signature_delta",
                                                       "signature": block.get("signature", "")}})
            else:
                send("content_block_start", {"type": "content_block_start", "index": i, "content_block": block})
            send("content_block_stop", {"type": "content_block_stop", "index": i})
        send("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
            "usage": {
                "input_tokens": usage["input_tokens"],
                "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                "cache_read_input_tokens": usage["cache_read_input_tokens"],
                "output_tokens": usage["output_tokens"],
            },
        })
        send("message_stop", {"type": "message_stop"})
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()
