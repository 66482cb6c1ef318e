"""The seam between the coding loop and Claude.

The loop only sees the `Model` protocol: `query(system, tools, messages) -> Turn`.
`AnthropicModel` is the real one (the anthropic SDK, any base_url); `ScriptedModel`
replays turns in-process for unit tests and benchmarks, the way mini-swe-agent
ships a deterministic model with its code.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import ssl
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import anthropic
import certifi
import httpx2  # the HTTP client anthropic 2.x is built on (its dependency): MockTransport for warm_up

from core.defaults import MODEL_MAX_TOKENS
from core.exceptions import ModelError

# USD per million tokens: (input, output). Cache writes cost 1.25x input, cache reads 0.1x input.
# Matched by the longest prefix of the model name, so dated snapshots share their family's price.
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "claude-opus-4-0": (15.0, 75.0),
    "claude-opus-4-1": (15.0, 75.0),
    "claude-opus": (5.0, 25.0),
    "claude-sonnet": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
    "claude-haiku": (1.0, 5.0),
}
CACHE_WRITE_FACTOR = 1.25
CACHE_READ_FACTOR = 0.1


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def add(self, other: "Usage") -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def __add__(self, other: "Usage") -> "Usage":
        total = Usage(**asdict(self))
        total.add(other)
        return total

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def estimate_cost(model: str, usage: Usage) -> float:
    """Estimated USD for usage on model (0.0 for a model not in the table)."""
    prefix = max((p for p in PRICES_PER_MTOK if model.startswith(p)), key=len, default=None)
    if prefix is None:
        return 0.0
    price_in, price_out = PRICES_PER_MTOK[prefix]
    total = (usage.input_tokens * price_in
             + usage.cache_creation_input_tokens * price_in * CACHE_WRITE_FACTOR
             + usage.cache_read_input_tokens * price_in * CACHE_READ_FACTOR
             + usage.output_tokens * price_out)
    return round(total / 1_000_000, 6)


@dataclass
class Turn:
    """One assistant reply: content blocks as plain dicts, ready to go back into the history."""

    content: list[dict[str, Any]]
    stop_reason: str | None = "end_turn"
    usage: Usage = field(default_factory=Usage)

    @property
    def text(self) -> str:
        return "\n".join(b["text"] for b in self.content if b.get("type") == "text").strip()

    @property
    def tool_uses(self) -> list[dict[str, Any]]:
        return [b for b in self.content if b.get("type") == "tool_use"]


class Model(Protocol):
    name: str

    def query(self, *, system: list[dict], tools: list[dict], messages: list[dict]) -> Turn: ...


def _block_to_dict(block) -> dict[str, Any]:
    # Only the fields the API accepts back; SDK objects carry extra ones (citations=None, caller...).
    if block.type == "text":
        return {"type": "text", "text": block.text}
    if block.type == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    return block.model_dump(exclude_none=True)


INTERRUPT_SIGNAL = signal.SIGUSR2  # unused by RQ


# Built once at import (in the worker, before it forks work-horses): loading the CA bundle costs 50-70 ms of CPU,
# which every task paid when each client built its own context.
TLS_CONTEXT = ssl.create_default_context(cafile=certifi.where())  # what httpx itself would load


def _raise_interrupted(signum, frame):
    raise ModelError("The model call was interrupted (the task was cancelled).")


class AnthropicModel:
    """Claude through the anthropic SDK; its own retries handle 429/5xx/529 with backoff."""

    def __init__(self, *, api_key: str, model: str, base_url: str | None = None, max_retries: int = 3,
                 timeout: float = 120.0, max_tokens: int = MODEL_MAX_TOKENS):
        self.name = model
        self._calling = False
        self.max_tokens = max_tokens
        self.max_retries = max_retries
        self.timeout = timeout
        self.client = anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=max_retries,
                                          timeout=anthropic.Timeout(timeout, connect=10.0),
                                          http_client=anthropic.DefaultHttpxClient(verify=TLS_CONTEXT))

    def interrupt(self) -> None:
        """Abort a call in flight, from another thread (on cancel). A blocked socket read in the main thread
        only wakes for a signal, so the process signals itself; the handler raises inside query()."""
        if self._calling and threading.current_thread() is not threading.main_thread():
            os.kill(os.getpid(), INTERRUPT_SIGNAL)

    def query(self, *, system: list[dict], tools: list[dict], messages: list[dict]) -> Turn:
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(INTERRUPT_SIGNAL, _raise_interrupted) if in_main else None
        self._calling = in_main
        try:
            message = self.client.messages.create(model=self.name, max_tokens=self.max_tokens, system=system,
                                                  tools=tools, messages=messages)
        except anthropic.APIError as exc:
            raise ModelError(describe_api_error(exc, self), transient=is_unavailable(exc)) from exc
        finally:
            self._calling = False
            if in_main:
                signal.signal(INTERRUPT_SIGNAL, previous)
        u = message.usage
        usage = Usage(u.input_tokens or 0, u.output_tokens or 0, u.cache_creation_input_tokens or 0,
                      u.cache_read_input_tokens or 0)
        return Turn([_block_to_dict(b) for b in message.content], message.stop_reason, usage)


_WARM_UP_REPLY = {
    "id": "msg_warm_up", "type": "message", "role": "assistant", "model": "warm-up", "stop_reason": "tool_use",
    "stop_sequence": None,
    "content": [{"type": "text", "text": "warming up"},
                {"type": "tool_use", "id": "toolu_warm_up", "name": "bash", "input": {"command": "true"}}],
    "usage": {"input_tokens": 1, "output_tokens": 1, "cache_creation_input_tokens": 0,
              "cache_read_input_tokens": 0},
}


def warm_up() -> Turn:
    """Parse one canned reply through the real SDK path, in the worker before it forks work-horses.

    The SDK builds its pydantic response models lazily, on the first reply; in a forked horse that work is
    redone for every task, and so is the HTTP transport's lazy import (together over half of a short task's
    CPU). Done once here, every horse inherits both.
    No network: a MockTransport answers.
    """
    transport = httpx2.MockTransport(lambda request: httpx2.Response(200, json=_WARM_UP_REPLY))
    client = anthropic.Anthropic(api_key="warm-up", base_url="http://warm-up.invalid", max_retries=0,
                                 http_client=anthropic.DefaultHttpxClient(transport=transport))
    http_log = logging.getLogger("httpx2")  # its "POST http://warm-up.invalid" line would puzzle whoever reads the log
    level = http_log.level
    http_log.setLevel(logging.WARNING)
    try:
        model = AnthropicModel.__new__(AnthropicModel)
        model.name, model.max_tokens, model.client, model._calling = "warm-up", 16, client, False
        turn = model.query(system=[{"type": "text", "text": "x"}],
                           tools=[{"name": "bash", "type": "bash_20250124"}], messages=[{"role": "user", "content": "x"}])
    finally:
        http_log.setLevel(level)
        client.close()
    anthropic.DefaultHttpxClient(verify=TLS_CONTEXT).close()  # its transport imports the HTTP stack lazily
    return turn


def is_unavailable(exc: anthropic.APIError) -> bool:
    """The API was unavailable rather than refusing the request (the SDK's own retries were spent on it): a timeout,
    no connection, rate limited (429), overloaded (529) or a server error (5xx). Only then may a later attempt of
    the task succeed where this one could not."""
    if isinstance(exc, (anthropic.APITimeoutError, anthropic.APIConnectionError)):
        return True
    status = getattr(exc, "status_code", None)
    return status == 429 or (isinstance(status, int) and status >= 500)


def describe_api_error(exc: anthropic.APIError, model: AnthropicModel) -> str:
    """A readable reason for an API failure that outlived the SDK's retries: what happened, and what to do."""
    tries = f"after {model.max_retries + 1} attempt{'s' if model.max_retries else ''}"
    if isinstance(exc, anthropic.APITimeoutError):
        return (f"The Anthropic API did not answer within {model.timeout:g} seconds ({tries}): retry the task "
                f"later, or raise ANTHROPIC_TIMEOUT_SECONDS if its answers take longer.")
    if isinstance(exc, anthropic.APIConnectionError):
        return f"The Anthropic API could not be reached ({tries}): check the network or ANTHROPIC_BASE_URL."
    status = getattr(exc, "status_code", None)
    detail = ""
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        detail = str(body["error"].get("message", ""))[:200].strip()
    said = f": {detail.rstrip('.')}" if detail else ""
    if status == 401:
        return "The Anthropic API rejected the API key (401 authentication error): set a valid ANTHROPIC_API_KEY."
    if status == 403:
        return (f"The Anthropic API key may not use the model '{model.name}' (403{said}): use a "
                f"key with access to it, or set CLAUDE_MODEL to a model it may use.")
    if status == 404:
        return f"The model '{model.name}' was not found (404): set CLAUDE_MODEL to a current model."
    if status == 429:
        said = f"; it said{said}" if said else ""
        return (f"The Anthropic API kept rate limiting the task (429, {tries}{said}): retry the task in a minute, "
                f"or raise the account's rate limit.")
    if status == 529:
        return f"The Anthropic API was overloaded (529, {tries}): retry the task in a few minutes."
    if status and status >= 500:
        return (f"The Anthropic API failed with a server error ({status}, {tries}): retry the task in a few "
                f"minutes.")
    return (f"The Anthropic API refused the request ({status}{said or ', ' + exc.__class__.__name__}): retrying "
            f"the same request will not help; the worker log has the details.")


class ScriptedModel:
    """Replays a list of Turns (or callables of the messages returning a Turn); for tests and benchmarks."""

    def __init__(self, turns: list, name: str = "scripted"):
        self.name = name
        self.turns = list(turns)
        self.calls: list[dict] = []

    def query(self, *, system: list[dict], tools: list[dict], messages: list[dict]) -> Turn:
        self.calls.append({"system": system, "tools": tools, "messages": messages})
        if not self.turns:
            raise ModelError("The scripted model has no turns left.")
        turn = self.turns.pop(0)
        return turn(messages) if callable(turn) else turn


_ids = itertools.count(1)


def tool_turn(name: str, tool_input: dict, text: str = "", tool_id: str | None = None) -> Turn:
    """A Turn with one tool call (helper for ScriptedModel scripts)."""
    blocks = [{"type": "text", "text": text}] if text else []
    tool_id = tool_id or f"toolu_scripted_{next(_ids):06d}"
    blocks.append({"type": "tool_use", "id": tool_id, "name": name, "input": tool_input})
    return Turn(blocks, "tool_use")


def text_turn(text: str) -> Turn:
    return Turn([{"type": "text", "text": text}], "end_turn")
