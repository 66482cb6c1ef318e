"""A local fake of an OpenAI-compatible Chat Completions server for tests.

No network is reachable in the test environment, so tests point the *real*
``openai`` SDK (``base_url=fake.base_url``) at this server, the way TARS points
it at Ollama (``http://localhost:11434/v1``), vLLM, LM Studio or OpenRouter.
It is a genuine HTTP/1.1 server on 127.0.0.1 (free port by default) running in
a background thread of the pytest process, so code under test in another
process (e.g. an RQ worker) can reach it as well.  ``fake.base_url`` ends in
``/v1``; the SDK posts to ``{base_url}/chat/completions``.

It replays scripted assistant turns and records every request::

    import openai
    from tests.fakes.openai_api import FakeOpenAI, bash, text, error

    with FakeOpenAI() as fake:
        fake.script([bash("ls"), text("Done.")], match="list files", name="ls")
        fake.script([text("Hello.")])                 # default: matches everything
        client = openai.OpenAI(api_key="test", base_url=fake.base_url)
        ...
        fake.wait_for_requests(2)
        assert fake.requests[0].body["model"] == "..."

Routing: a ``POST /v1/chat/completions`` is served by the FIRST registered
script whose ``match`` substring occurs in the text of the request's first
message with role ``user`` (the first message is usually the system prompt;
``match=""`` matches everything, so register it last).  Every script has its
own cursor.  Exhausted scripts answer ``"Script exhausted."`` (finish_reason
stop) and their name is added to ``fake.exhausted``.  A request no script
matches is answered with ``"No script matched."`` and appended to
``fake.unmatched``.

Turns (module-level helpers):

``text(s)``, ``tool_call(name, arguments)``, ``bash(cmd)``, ``edit(**arguments)``,
``multi(...)`` (text and/or parallel tool calls in one message),
``error(status)``, ``hang(seconds)``, ``delay(seconds, turn)``,
``repeat(turn)`` and any callable ``f(request_body) -> turn``.  A plain ``str``
in a script is shorthand for ``text(s)``.

Answers: non-streaming ``chat.completion`` objects, or with ``"stream": true``
Server-Sent Events ``data: <chat.completion.chunk>`` ending in ``data: [DONE]``
(text split on words, tool-call ``arguments`` in 2-3 fragments the client must
concatenate, a ``choices: []`` usage chunk only when the request asked for
``stream_options: {"include_usage": true}``).  Usage: ``prompt_tokens`` is
:func:`estimate_tokens` of the request, ``completion_tokens`` ~ output chars / 4,
``prompt_tokens_details.cached_tokens`` is ``fake.cached_tokens``; a turn's or a
script's ``usage=`` overrides them.

Refusals, as a strict real server would answer them (HTTP error in OpenAI's
``{"error": {"message", "type", "param", "code"}}`` shape; none consumes a turn):

* ``api_key=`` set: a request without ``Authorization: Bearer <api_key>`` -> 401.
* ``models=[...]`` set: a request for another model -> 404 ``model_not_found``
  (``GET /v1/models`` lists them, ``GET /v1/models/{id}`` one or 404).
* ``max_context_tokens=`` set: a request whose estimate exceeds it -> 400
  ``context_length_exceeded`` (recorded in ``fake.refused``).
* malformed conversations (tool message answering no earlier tool call, a tool
  call left unanswered, arguments not a string, bad ``tools`` entries, empty
  ``messages`` ...) -> 400 ``invalid_request_error`` (recorded in ``fake.invalid``).

Other endpoints: ``GET /health`` returns 200 (not recorded); anything else is a
404 in OpenAI's error shape.
"""

from __future__ import annotations

import copy
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from tests.fakes import scripted_server
from tests.fakes.scripted_server import EXHAUSTED_TEXT, UNMATCHED_TEXT, Delay, Hang, Repeat, delay, hang, repeat

__all__ = [
    "FakeOpenAI",
    "RecordedRequest",
    "Turn",
    "ErrorTurn",
    "Hang",
    "Delay",
    "Repeat",
    "text",
    "tool_call",
    "bash",
    "edit",
    "multi",
    "error",
    "hang",
    "delay",
    "repeat",
    "estimate_tokens",
    "EXHAUSTED_TEXT",
    "UNMATCHED_TEXT",
]

CHAT_PATH = "/v1/chat/completions"


# --------------------------------------------------------------------------- ids


def new_completion_id() -> str:
    return "chatcmpl-" + scripted_server.rand_id(29)


def new_call_id() -> str:
    return "call_" + scripted_server.rand_id(24)


def new_request_id() -> str:
    return "req_" + scripted_server.rand_id(32)


# --------------------------------------------------------------------------- tokens


def estimate_tokens(body: dict, chars_per_token: float = 3.5) -> int:
    """The fake's prompt-token count of a request body: the characters of
    ``json.dumps(messages)`` plus ``json.dumps(tools or [])`` over
    ``chars_per_token``, rounded up.  Clients under test may call it to predict
    what the fake will count (and refuse)."""
    chars = len(json.dumps(body.get("messages") or [])) + len(json.dumps(body.get("tools") or []))
    return math.ceil(chars / chars_per_token)


# --------------------------------------------------------------------------- turns


@dataclass
class Turn:
    """An assistant message to answer with.

    ``content`` is the text (None: ``"content": null``).  ``tool_calls`` holds
    ``{"id": str | None, "name": str, "arguments": dict | str}``; a dict is sent
    as its JSON string, a str verbatim (so a test can send malformed JSON).  A
    call whose ``id`` is None gets a fresh ``call_...`` id every time it is
    served, so a repeated turn never produces duplicate ids.  ``chunk_delay`` is
    the pause (s) before each streamed chunk of text or arguments.  ``usage``
    overrides the counts reported (keys ``prompt_tokens``, ``completion_tokens``,
    ``cached_tokens``, ``total_tokens``; missing ones keep the estimate)."""

    content: str | None
    tool_calls: list[dict] = field(default_factory=list)
    finish_reason: str = "stop"
    chunk_delay: float = 0.0
    usage: dict | None = None


@dataclass
class ErrorTurn:
    """An HTTP error response ``{"error": {"message", "type", "param", "code"}}``.
    ``message`` None: a default per status, made when served (404's names the
    requested model)."""

    status: int
    type_: str
    message: str | None
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


TurnLike = Union[Turn, ErrorTurn, Hang, Delay, Repeat, str, Callable[[dict], Any]]


def text(s: str, finish_reason: str = "stop", chunk_delay: float = 0.0, *, usage: dict | None = None) -> Turn:
    """Assistant message with text only (``finish_reason="length"`` for a cut-off reply)."""
    return Turn(s, [], finish_reason=finish_reason, chunk_delay=chunk_delay, usage=usage)


def tool_call(
    name: str,
    arguments: dict | str,
    text: str | None = None,
    id: str | None = None,  # noqa: A002 - the wire field's name
    *,
    chunk_delay: float = 0.0,
    usage: dict | None = None,
) -> Turn:
    """Assistant message: optional text + one function tool call, finish_reason
    ``tool_calls``.  Without ``id`` a fresh ``call_...`` is made per response."""
    args = dict(arguments) if isinstance(arguments, dict) else arguments
    return Turn(text, [{"id": id, "name": name, "arguments": args}], finish_reason="tool_calls",
                chunk_delay=chunk_delay, usage=usage)


def bash(command: str, text: str | None = None, **kw: Any) -> Turn:
    """``tool_call("bash", {"command": command})``."""
    return tool_call("bash", {"command": command}, text=text, **kw)


def edit(**arguments: Any) -> Turn:
    """``tool_call("str_replace_based_edit_tool", arguments)``, e.g.
    ``edit(command="create", path="/x", file_text="...")``."""
    return tool_call("str_replace_based_edit_tool", arguments)


def multi(*parts: Any, finish_reason: str | None = None, chunk_delay: float = 0.0,
          usage: dict | None = None) -> Turn:
    """One assistant message made of several parts, e.g. parallel tool calls::

        multi("Running both.", bash("ls"), bash("pwd"))

    Each part is a ``str`` (text; several are joined by newlines), a ``Turn``
    (its text and tool calls are appended), or a tool-call ``dict`` either
    ``{"name", "arguments", "id"?}`` or in wire shape ``{"id"?, "type":
    "function", "function": {"name", "arguments"}}``.  finish_reason defaults
    to ``tool_calls`` if there is any tool call, else ``stop``."""
    texts: list[str] = []
    calls: list[dict] = []
    for p in parts:
        if isinstance(p, str):
            texts.append(p)
        elif isinstance(p, Turn):
            if p.content is not None:
                texts.append(p.content)
            calls.extend(copy.deepcopy(p.tool_calls))
        elif isinstance(p, dict):
            calls.append(_simple_call(p))
        else:
            raise TypeError(f"multi(): unsupported part {p!r}")
    if finish_reason is None:
        finish_reason = "tool_calls" if calls else "stop"
    return Turn("\n".join(texts) if texts else None, calls, finish_reason=finish_reason,
                chunk_delay=chunk_delay, usage=usage)


def _simple_call(d: dict) -> dict:
    fn = d.get("function")
    if isinstance(fn, dict):  # wire shape
        return {"id": d.get("id"), "name": fn["name"], "arguments": copy.deepcopy(fn.get("arguments", {}))}
    return {"id": d.get("id"), "name": d["name"], "arguments": copy.deepcopy(d.get("arguments", {}))}


# Types and codes as OpenAI sends them, except 401: OpenAI says invalid_request_error,
# the fake says authentication_error, as several compatible servers do (the code is OpenAI's).
_ERROR_DEFAULTS: dict[int, tuple[str, str | None, str]] = {  # status: (type, code, message)
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("authentication_error", "invalid_api_key",
          "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."),
    403: ("permission_error", None, "You are not allowed to sample from this model."),
    404: ("invalid_request_error", "model_not_found", ""),  # message names the model, made when served
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again in 1s."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def error(
    status: int,
    message: str | None = None,
    code: str | None = None,
    *,
    type_: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> ErrorTurn:
    """HTTP error in OpenAI's shape.  Defaults per status: 400
    invalid_request_error; 401 authentication_error / code invalid_api_key; 403
    permission_error; 404 invalid_request_error / model_not_found ("The model
    `x` does not exist or you do not have access to it."); 429 requests /
    rate_limit_exceeded; 500, 502, 503 server_error; other 4xx
    invalid_request_error, other 5xx server_error.  An ``x-request-id`` header
    is always sent; pass e.g. ``headers={"retry-after-ms": "1"}``.

    Note: the SDK retries 408/409/429/5xx by itself (``max_retries``, 2 by
    default), and each HTTP attempt consumes one cursor position.  Without a
    retry-after header it backs off ~0.5 s; ``retry-after-ms: 1`` makes the
    retry (almost) immediate."""
    d_type, d_code, _ = _ERROR_DEFAULTS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None, ""))
    return ErrorTurn(status, type_ or d_type, message, code if code is not None else d_code, param,
                     dict(headers or {}))


def _error_message(turn: ErrorTurn, body: Any) -> str:
    if turn.message is not None:
        return turn.message
    if turn.status == 404:
        model = body.get("model") if isinstance(body, dict) else None
        return f"The model `{model}` does not exist or you do not have access to it."
    default = _ERROR_DEFAULTS.get(turn.status, ("", None, ""))[2]
    return default or f"Error {turn.status}."


# --------------------------------------------------------------------------- records


def _content_text(content: Any) -> str:
    """A message's text: a plain string, or its ``{"type": "text"}`` parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _first_user_text(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    for m in body.get("messages") or []:
        if isinstance(m, dict) and m.get("role") == "user":
            return _content_text(m.get("content"))
    return ""


@dataclass
class RecordedRequest(scripted_server.RecordedRequest):
    """A request as received (fields: see the base class); ``path`` e.g. ``"/v1/chat/completions"``."""

    prompt_tokens: int | None = None  # estimate_tokens() of a chat request's body
    error: str | None = None  # the message of an error answered by the fake's own checks
    usage: dict | None = None  # the usage object answered (what a client should count)

    _first_user_text = staticmethod(_first_user_text)
    _content_text = staticmethod(_content_text)

    @property
    def tools(self) -> list:
        return (self.body.get("tools") or []) if isinstance(self.body, dict) else []

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None


# --------------------------------------------------------------------------- validation

_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


def _validate(body: dict) -> tuple[str, str | None] | None:
    """The first client bug a strict server would answer 400 for, as
    ``(message, param)``; None if the request is well-formed."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "you must provide a model parameter", "model"
    if body.get("stream_options") is not None and not body.get("stream"):
        return "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options"
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return "Invalid type for 'tools': expected an array.", "tools"
        for i, t in enumerate(tools):
            p = f"tools[{i}]"
            if not isinstance(t, dict) or t.get("type") != "function":
                return f"Invalid value for '{p}.type': expected 'function'.", f"{p}.type"
            fn = t.get("function")
            if not isinstance(fn, dict):
                return f"Missing required parameter: '{p}.function'.", f"{p}.function"
            if not isinstance(fn.get("name"), str) or not fn["name"]:
                return f"Missing required parameter: '{p}.function.name'.", f"{p}.function.name"
            if not isinstance(fn.get("parameters"), dict):
                return (f"Invalid type for '{p}.function.parameters': expected an object (JSON schema).",
                        f"{p}.function.parameters")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "Invalid 'messages': empty array. Expected an array with minimum length 1.", "messages"
    known_ids: set[str] = set()  # tool_call ids of assistant messages so far
    pending: list[str] = []  # ids of the last assistant message not yet answered
    for i, m in enumerate(messages):
        p = f"messages.[{i}]"
        if not isinstance(m, dict) or m.get("role") not in _ROLES:
            return f"Invalid value for '{p}.role': expected one of {sorted(_ROLES)}.", f"{p}.role"
        role = m["role"]
        if role in ("user", "assistant") and pending:
            # what OpenAI answers when a client forgets a tool result
            return ("An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                    f"'tool_call_id'. The following tool_call_ids did not have response messages: "
                    f"{', '.join(pending)}", "messages")
        if role == "assistant":
            calls = m.get("tool_calls")
            if calls is None:
                if "content" not in m:
                    return f"Missing required parameter: '{p}.content'.", f"{p}.content"
                continue
            if not isinstance(calls, list):
                return f"Invalid type for '{p}.tool_calls': expected an array.", f"{p}.tool_calls"
            if not calls:  # OpenAI refuses ``"tool_calls": []``; leave the key out instead
                return (f"Invalid '{p}.tool_calls': empty array. Expected an array with minimum length 1, but got "
                        "an empty array instead.", f"{p}.tool_calls")
            for j, c in enumerate(calls):
                cp = f"{p}.tool_calls.[{j}]"
                if not isinstance(c, dict) or not isinstance(c.get("id"), str) or not c["id"]:
                    return f"Missing required parameter: '{cp}.id'.", f"{cp}.id"
                if c.get("type") != "function":
                    return f"Invalid value for '{cp}.type': expected 'function'.", f"{cp}.type"
                fn = c.get("function")
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                    return f"Missing required parameter: '{cp}.function.name'.", f"{cp}.function.name"
                if not isinstance(fn.get("arguments"), str):
                    return (f"Invalid type for '{cp}.function.arguments': expected a string (JSON), but got "
                            f"{type(fn.get('arguments')).__name__} instead.", f"{cp}.function.arguments")
                known_ids.add(c["id"])
            pending = [c["id"] for c in calls]
        elif role == "tool":
            tid = m.get("tool_call_id")
            if not isinstance(tid, str) or not tid:
                return f"Missing required parameter: '{p}.tool_call_id'.", f"{p}.tool_call_id"
            if tid not in known_ids:
                return (f"Invalid parameter: messages with role 'tool' must be a response to a preceding message "
                        f"with 'tool_calls'. No tool call has the id '{tid}'.", f"{p}.tool_call_id")
            if "content" not in m:
                return f"Missing required parameter: '{p}.content'.", f"{p}.content"
            if tid in pending:
                pending.remove(tid)
        elif "content" not in m:
            return f"Missing required parameter: '{p}.content'.", f"{p}.content"
    if pending:
        return ("An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: "
                f"{', '.join(pending)}", "messages")
    return None


# --------------------------------------------------------------------------- server


class _Handler(scripted_server.Handler):
    _request_id_header = "x-request-id"
    _new_request_id = staticmethod(new_request_id)

    def _send_error_shape(self, status: int, type_: str, message: str, code: str | None = None,
                          param: str | None = None, headers: dict | None = None) -> None:
        body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        self._send_json(status, body, headers)

    def _refuse(self, rec: "RecordedRequest", status: int, type_: str, message: str, code: str | None = None,
                param: str | None = None) -> None:
        rec.status, rec.error = status, message
        self._send_error_shape(status, type_, message, code, param)

    def _authorized(self, rec: "RecordedRequest") -> bool:
        key = self.server.fake.api_key
        if key is None or rec.api_key == key:
            return True
        if rec.api_key is None:
            msg = ("You didn't provide an API key. You need to provide your API key in an Authorization header "
                   "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
        else:
            msg = _ERROR_DEFAULTS[401][2]
        self._refuse(rec, 401, "authentication_error", msg, "invalid_api_key")
        return False

    def _not_found(self, rec: "RecordedRequest", path: str) -> None:
        self._refuse(rec, 404, "invalid_request_error", f"Invalid URL ({self.command} {path})")

    def _send_internal_error(self, message: str) -> None:
        self._send_error_shape(500, "server_error", message, headers={"x-should-retry": "false"})

    def _get(self, path: str, rec: RecordedRequest) -> None:
        fake = self.server.fake
        if path.startswith("/v1/") and not self._authorized(rec):
            return
        if path == "/v1/models":
            rec.status = 200
            self._send_json(200, {"object": "list", "data": [_model_obj(m) for m in fake.models or []]})
        elif path.startswith("/v1/models/"):
            model = path[len("/v1/models/"):]
            if fake.models is None or model in fake.models:
                rec.status = 200
                self._send_json(200, _model_obj(model))
            else:
                self._refuse(rec, 404, "invalid_request_error", f"The model '{model}' does not exist",
                             "model_not_found", "model")
        else:
            self._not_found(rec, path)

    def _post(self, path: str, raw: bytes, body: Any) -> None:
        fake = self.server.fake
        if path == CHAT_PATH:
            fake._serve_chat(self, raw, body)
        else:
            rec = fake._record(self, raw, body, None)
            if path.startswith("/v1/") and not self._authorized(rec):
                return
            self._not_found(rec, path)


def _model_obj(model_id: str) -> dict:
    return {"id": model_id, "object": "model", "created": 1700000000, "owned_by": "local"}


def _text_chunks(s: str) -> list[str]:
    """Split text into one-word chunks (trailing whitespace kept), joining back to ``s``."""
    return re.findall(r"\s*\S+\s*|\s+", s) or ([s] if s else [])


def _arg_fragments(s: str) -> list[str]:
    """A JSON arguments string in 2-3 pieces, so clients must concatenate."""
    if len(s) < 2:
        return [s] if s else []
    n = 3 if len(s) >= 3 else 2
    cuts = [len(s) * k // n for k in range(n + 1)]
    return [s[cuts[k]:cuts[k + 1]] for k in range(n)]


class FakeOpenAI(scripted_server.ScriptedServer):
    """Fake OpenAI-compatible Chat Completions server.  See the module docstring."""

    _label = "FakeOpenAI"
    _handler_type = _Handler
    _record_type = RecordedRequest
    _answer_types = (Turn, ErrorTurn)
    _text = staticmethod(text)
    _url_path = "/v1"  # as OpenAI-compatible servers are addressed; the SDK adds /chat/completions
    _poll_interval = 0.02  # a short poll: stop() waits for it, once per test

    @staticmethod
    def _turn_from_dict(d: dict) -> Turn:  # a raw assistant message {"content", "tool_calls"?}
        calls = [_simple_call(c) for c in d.get("tool_calls") or []]
        return Turn(d.get("content"), calls,
                    finish_reason=d.get("finish_reason") or ("tool_calls" if calls else "stop"))

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        models: list[str] | None = None,
        max_context_tokens: int | None = None,
        chars_per_token: float = 3.5,
        cached_tokens: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.api_key = api_key
        self.models = list(models) if models is not None else None
        self.max_context_tokens = max_context_tokens
        self.chars_per_token = chars_per_token
        self.cached_tokens = cached_tokens  # reported as prompt_tokens_details.cached_tokens (capped at prompt)
        self.refused: list[RecordedRequest] = []  # over max_context_tokens
        self.invalid: list[RecordedRequest] = []  # malformed requests (400 invalid_request_error)
        self.max_prompt_tokens_seen = 0

    # ---- scripting
    def script(self, turns: list, *, match: str = "", name: str | None = None, usage: dict | None = None) -> None:
        """Register a script (see module docstring).  ``name`` defaults to
        ``match`` (or ``"default"`` when match is empty).  ``usage``: counts
        every answer of this script reports instead of the estimates (keys as
        in :class:`Turn`; a turn's own ``usage`` wins)."""
        super().script(turns, match=match, name=name, usage=usage)

    def reset(self) -> None:
        """Forget scripts, recorded requests and every record of refusals."""
        with self._cond:  # the refusal records are forgotten in the same step as the requests
            super().reset()
            self.refused.clear()
            self.invalid.clear()
            self.max_prompt_tokens_seen = 0

    # ---- inspection
    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return self._requests_to(CHAT_PATH)

    # ---- internals
    def _recorded(self, rec: RecordedRequest) -> None:
        if rec.prompt_tokens is not None:
            self.max_prompt_tokens_seen = max(self.max_prompt_tokens_seen, rec.prompt_tokens)

    def _serve_chat(self, h: _Handler, raw: bytes, body: Any) -> None:
        # The checks a real server makes, in its order: auth, body, model, shape, context.
        # None of them consumes a turn.
        if not isinstance(body, dict):
            rec = self._record(h, raw, body, None)
            if h._authorized(rec):
                h._refuse(rec, 400, "invalid_request_error",
                          "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                          "using your HTTP library correctly.)")
            return
        tokens = estimate_tokens(body, self.chars_per_token)
        problem = _validate(body)
        refused = (problem is None and self.max_context_tokens is not None and tokens > self.max_context_tokens)
        unknown_model = self.models is not None and isinstance(body.get("model"), str) and (
            body["model"] not in self.models)
        auth_ok = self.api_key is None or _bearer(h.headers.get("Authorization")) == self.api_key
        name = turn = usage = None
        into = None
        if auth_ok and not unknown_model:
            if problem is not None:
                into = self.invalid
            elif refused:
                into = self.refused
            else:
                name, turn, usage = self._pick(body)
        # Record before answering (so wait_for_requests sees in-flight/hung requests).
        rec = self._record(h, raw, body, name, into=into, prompt_tokens=tokens)
        if not h._authorized(rec):
            return
        if unknown_model:
            h._refuse(rec, 404, "invalid_request_error",
                      f"The model `{body['model']}` does not exist or you do not have access to it.",
                      "model_not_found")
            return
        if problem is not None:
            h._refuse(rec, 400, "invalid_request_error", problem[0], None, problem[1])
            return
        if refused:
            h._refuse(rec, 400, "invalid_request_error",
                      f"This model's maximum context length is {self.max_context_tokens} tokens. However, your "
                      f"messages resulted in {tokens} tokens. Please reduce the length of the messages.",
                      "context_length_exceeded", "messages")
            return
        turn = self._resolve(h, rec, name, turn, body)
        if turn is None:
            return
        if isinstance(turn, ErrorTurn):
            rec.status = turn.status
            h._send_error_shape(turn.status, turn.type_, _error_message(turn, body), turn.code, turn.param,
                                turn.headers)
            return
        assert isinstance(turn, Turn)
        completion = self._render(turn, body, tokens, turn.usage or usage)
        rec.usage = completion["usage"]
        rec.status = 200
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(h, completion, turn.chunk_delay, include_usage, rec)
        else:
            h._send_json(200, completion)

    def _usage(self, prompt: int, completion: int, given: dict | None) -> dict:
        given = given or {}
        prompt = given.get("prompt_tokens", prompt)
        completion = given.get("completion_tokens", completion)
        cached = given.get("cached_tokens", min(self.cached_tokens, prompt))
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": given.get("total_tokens", prompt + completion),
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        }

    def _render(self, turn: Turn, body: dict, prompt_tokens: int, usage_given: dict | None) -> dict:
        calls = []
        for c in turn.tool_calls:
            args = c["arguments"] if isinstance(c["arguments"], str) else json.dumps(c["arguments"])
            calls.append({"id": c.get("id") or new_call_id(), "type": "function",
                          "function": {"name": c["name"], "arguments": args}})
        out_chars = len(turn.content or "") + sum(len(c["function"]["name"]) + len(c["function"]["arguments"])
                                                  for c in calls)
        message: dict = {"role": "assistant", "content": turn.content, "refusal": None, "annotations": []}
        if calls:  # omitted when there are none, as OpenAI does
            message["tool_calls"] = calls
        return {
            "id": new_completion_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": turn.finish_reason}],
            "usage": self._usage(prompt_tokens, max(1, math.ceil(out_chars / 4)), usage_given),
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }

    def _stream(self, h: _Handler, completion: dict, chunk_delay: float, include_usage: bool,
                rec: RecordedRequest) -> None:
        h._start_event_stream()
        write = h._write_chunk
        base = {k: completion[k] for k in ("id", "created", "model", "service_tier", "system_fingerprint")}
        base["object"] = "chat.completion.chunk"

        def send(delta: dict, finish_reason: str | None = None) -> None:
            chunk = dict(base, choices=[{"index": 0, "delta": delta, "logprobs": None,
                                         "finish_reason": finish_reason}])
            if include_usage:  # OpenAI sends "usage": null on every chunk but the last
                chunk["usage"] = None
            write(f"data: {json.dumps(chunk)}\n\n".encode())

        def pause() -> None:
            self._pause(chunk_delay)

        choice = completion["choices"][0]
        message = choice["message"]
        send({"role": "assistant", "content": ""})
        for piece in _text_chunks(message["content"] or ""):
            pause()
            send({"content": piece})
            if rec.first_text_mono is None:
                rec.first_text_mono = time.monotonic()
        for i, call in enumerate(message.get("tool_calls") or []):
            pause()
            send({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                  "function": {"name": call["function"]["name"], "arguments": ""}}]})
            for frag in _arg_fragments(call["function"]["arguments"]):
                pause()
                send({"tool_calls": [{"index": i, "function": {"arguments": frag}}]})
        send({}, choice["finish_reason"])
        if include_usage:
            write(f"data: {json.dumps(dict(base, choices=[], usage=completion['usage']))}\n\n".encode())
        write(b"data: [DONE]\n\n")
        h._end_event_stream()


def _bearer(auth: str | None) -> str | None:
    return auth[7:] if auth and auth.lower().startswith("bearer ") else None
