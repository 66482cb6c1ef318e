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
``web_search(query, answer, ...)`` (a server-side web search: server_tool_use,
web_search_tool_result, the answer citing a result; streamed with
citations_delta events, as the API sends them),
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
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from tests.fakes import scripted_server
from tests.fakes.scripted_server import EXHAUSTED_TEXT, UNMATCHED_TEXT, Delay, Hang, Repeat, delay, hang, repeat

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
    "web_search",
    "multi",
    "error",
    "hang",
    "delay",
    "repeat",
    "EXHAUSTED_TEXT",
    "UNMATCHED_TEXT",
]

# --------------------------------------------------------------------------- ids


def new_message_id() -> str:
    return "msg_01" + scripted_server.rand_id(22)


def new_tool_use_id() -> str:
    return "toolu_01" + scripted_server.rand_id(22)


def new_request_id() -> str:
    return "req_01" + scripted_server.rand_id(22)


def new_server_tool_use_id() -> str:
    return "srvtoolu_01" + scripted_server.rand_id(22)


# --------------------------------------------------------------------------- turns


@dataclass
class Turn:
    """An assistant message to answer with.

    ``content`` holds API content blocks (dicts).  A ``tool_use`` block whose
    ``id`` is None gets a fresh ``toolu_01...`` id every time it is served, so a
    repeated turn never produces duplicate ids (so does a ``server_tool_use``, with
    ``srvtoolu_01...``, and the ``web_search_tool_result`` after it follows it).
    ``chunk_delay`` is the pause (s) between SSE delta events when the turn is
    streamed; ``search_delay`` the pause before each web_search_tool_result block
    (the search running on the server).
    """

    content: list[dict]
    stop_reason: str = "end_turn"
    chunk_delay: float = 0.0
    stop_sequence: str | None = None
    search_delay: float = 0.0


@dataclass
class ErrorTurn:
    """An HTTP error response ``{"type":"error","error":{...},"request_id":...}``."""

    status: int
    type_: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


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


def web_search(
    query: str,
    answer: str = "",
    results: list[tuple[str, str]] | None = None,
    *,
    before: str | None = None,
    stop_reason: str = "end_turn",
    search_delay: float = 0.0,
    chunk_delay: float = 0.0,
) -> Turn:
    """Assistant message with one server-side web search, as the API answers it
    (web_search_20250305): optional leading text ``before``, a ``server_tool_use``
    block (name web_search, input {"query": query}), its ``web_search_tool_result``
    (``results``: (title, url) pairs, each with an opaque encrypted_content), then
    ``answer`` as a text block citing the first result (a
    ``web_search_result_location`` citation; streamed as a citations_delta).
    ``stop_reason="pause_turn"`` with no answer: the API paused the turn after the
    search.  ``search_delay``: the silence (s) before the result, while it searches."""
    results = results or [("Result for " + query, "https://example.com/" + re.sub(r"\W+", "-", query.lower()))]
    content: list[dict] = [{"type": "text", "text": before}] if before else []
    content.append({"type": "server_tool_use", "id": None, "name": "web_search", "input": {"query": query}})
    content.append({"type": "web_search_tool_result", "tool_use_id": None, "content": [
        {"type": "web_search_result", "title": title, "url": url, "page_age": None,
         "encrypted_content": "Ev0DCioIAxgCIiQ" + hashlib.sha256(url.encode()).hexdigest()}
        for title, url in results]})
    if answer:
        title, url = results[0]
        content.append({"type": "text", "text": answer, "citations": [{
            "type": "web_search_result_location", "url": url, "title": title, "cited_text": answer[:150],
            "encrypted_index": "EpMBCioIAxgCIiQ" + hashlib.sha256(answer.encode()).hexdigest()[:24]}]})
    return Turn(content, stop_reason=stop_reason, chunk_delay=chunk_delay, search_delay=search_delay)


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


# --------------------------------------------------------------------------- records


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


@dataclass
class RecordedRequest(scripted_server.RecordedRequest):
    """A request as received (fields: see the base class); ``path`` e.g. ``"/v1/messages"``."""

    _first_user_text = staticmethod(_first_user_text)
    _content_text = staticmethod(_content_text)

    @property
    def api_key(self) -> str | None:
        """The credential sent: ``x-api-key`` or the ``Authorization: Bearer`` token
        (anthropic 2.x sends api_key as a Bearer token)."""
        if "x-api-key" in self.headers:
            return self.headers["x-api-key"]
        return super().api_key


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


# --------------------------------------------------------------------------- server


class _Handler(scripted_server.Handler):
    _request_id_header = "request-id"
    _new_request_id = staticmethod(new_request_id)

    def _send_error_shape(self, status: int, type_: str, message: str, headers: dict | None = None) -> None:
        hdrs = {"request-id": new_request_id()}
        hdrs.update(headers or {})
        body = {"type": "error", "error": {"type": type_, "message": message}, "request_id": hdrs["request-id"]}
        self._send_json(status, body, hdrs)

    def _send_internal_error(self, message: str) -> None:
        self._send_error_shape(500, "api_error", message, {"x-should-retry": "false"})

    def _get(self, path: str, rec: RecordedRequest) -> None:
        rec.status = 404
        self._send_error_shape(404, "not_found_error", f"Not found: {self.command} {path}")

    def _post(self, path: str, raw: bytes, body: Any) -> None:
        fake = self.server.fake
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


class FakeAnthropic(scripted_server.ScriptedServer):
    """Fake Anthropic Messages API server.  See the module docstring."""

    _label = "FakeAnthropic"
    _handler_type = _Handler
    _record_type = RecordedRequest
    _answer_types = (Turn, ErrorTurn)
    _text = staticmethod(text)

    @staticmethod
    def _turn_from_dict(d: dict) -> Turn:  # a raw message-ish dict
        if "content" in d:
            return Turn(list(d["content"]), stop_reason=d.get("stop_reason", "end_turn"))
        return multi(d)

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self._cache = _PromptCache()

    # ---- scripting
    def script(self, turns: list, *, match: str = "", name: str | None = None, usage: dict | None = None) -> None:
        """Register a script (see module docstring).  ``name`` defaults to
        ``match`` (or ``"default"`` when match is empty).  ``usage``: the token
        counts every answer of this script reports instead of the emulated ones
        (input_tokens, output_tokens, cache_creation_input_tokens,
        cache_read_input_tokens; any left out is 0), for exact costs."""
        super().script(turns, match=match, name=name, usage=usage)

    def reset(self) -> None:
        """Forget scripts, recorded requests, exhaustion records and the prompt cache."""
        super().reset()
        self._cache.clear()

    # ---- inspection
    @property
    def message_requests(self) -> list[RecordedRequest]:
        return self._requests_to("/v1/messages")

    # ---- internals
    def _serve_messages(self, h: _Handler, raw: bytes, body: Any) -> None:
        if not isinstance(body, dict):
            rec = self._record(h, raw, body, None)
            rec.status = 400
            h._send_error_shape(400, "invalid_request_error", "Request body must be a JSON object")
            return
        name, turn, usage = self._pick(body)
        # Record before answering (so wait_for_requests sees in-flight/hung requests).
        rec = self._record(h, raw, body, name)
        turn = self._resolve(h, rec, name, turn, body)
        if turn is None:
            return
        if isinstance(turn, ErrorTurn):
            rec.status = turn.status
            h._send_error_shape(turn.status, turn.type_, turn.message, turn.headers)
            return
        assert isinstance(turn, Turn)
        message = self._render(turn, body, usage)
        rec.status = 200
        if body.get("stream"):
            self._stream(h, message, turn.chunk_delay, rec, turn.search_delay)
        else:
            h._send_json(200, message)

    def _render(self, turn: Turn, body: dict, usage_given: dict | None = None) -> dict:
        content = copy.deepcopy(turn.content)
        searched = None
        for b in content:
            if b.get("type") == "tool_use" and not b.get("id"):
                b["id"] = new_tool_use_id()
            elif b.get("type") == "server_tool_use":
                b["id"] = searched = b.get("id") or new_server_tool_use_id()
            elif b.get("type") == "web_search_tool_result" and not b.get("tool_use_id"):
                b["tool_use_id"] = searched
        usage = self._cache.usage(body)
        usage["output_tokens"] = max(1, _tok(json.dumps(content)))
        searches = sum(b.get("type") == "server_tool_use" and b.get("name") == "web_search" for b in content)
        if searches:
            usage["server_tool_use"] = {"web_search_requests": searches, "web_fetch_requests": 0}
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

    def _stream(self, h: _Handler, message: dict, chunk_delay: float, rec: RecordedRequest,
                search_delay: float = 0.0) -> None:
        h._start_event_stream()

        def send(event: str, data: dict) -> None:
            h._write_chunk(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

        def pause() -> None:
            self._pause(chunk_delay)

        usage = message["usage"]
        start_usage = dict(usage, output_tokens=1)
        send("message_start", {"type": "message_start", "message": dict(message, content=[], stop_reason=None,
                                                                         stop_sequence=None, usage=start_usage)})
        send("ping", {"type": "ping"})
        for i, block in enumerate(message["content"]):
            btype = block.get("type")
            if btype == "text":
                # A cited text block starts with no citations; each arrives as a citations_delta.
                start = dict(block, text="", citations=[]) if "citations" in block else dict(block, text="")
                send("content_block_start", {"type": "content_block_start", "index": i, "content_block": start})
                for citation in block.get("citations") or []:
                    send("content_block_delta", {"type": "content_block_delta", "index": i,
                                                 "delta": {"type": "citations_delta", "citation": citation}})
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
                if btype == "web_search_tool_result":
                    self._pause(search_delay)  # the search runs on the server: silence on the stream
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
                **({"server_tool_use": usage["server_tool_use"]} if "server_tool_use" in usage else {}),
            },
        })
        send("message_stop", {"type": "message_stop"})
        h._end_event_stream()
