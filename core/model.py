"""The seam between TARS and the models.

The loop only sees the `Model` protocol: `query(system, tools, messages) -> Turn`, in Anthropic's Messages shape
(the history's one form, whoever answers). `AnthropicModel` is Claude through the anthropic SDK;
core/openai_model.OpenAIModel is any OpenAI-compatible server, converting both ways; `FallbackModel` holds a
role's ordered list (core/providers.py) and lets the next take over when one is unavailable, fitting the history
to each one's context window (core/context.py); core/model_roles.py builds it from the settings. `ScriptedModel`
replays turns in-process for unit tests and benchmarks, the way mini-swe-agent ships a deterministic model with its
code.
The voice brain streams from the same classes (`stream`, async).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import anthropic
import certifi
import httpx2  # the HTTP client anthropic 2.x is built on (its dependency): MockTransport for warm_up

from core import context, providers
from core.defaults import MODEL_MAX_TOKENS
from core.exceptions import ModelError
from core.providers import PROVIDERS, ModelSpec, Price, price_of


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0  # the estimated USD of these tokens, each turn priced by the model that served it
    unpriced_turns: int = 0  # turns of a model whose price is unknown (core/providers.py): their cost is not counted

    def add(self, other: "Usage") -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def __add__(self, other: "Usage") -> "Usage":
        total = Usage(**asdict(self))
        total.add(other)
        return total

    def as_dict(self) -> dict[str, int | float]:
        return {**asdict(self), "cost_usd": round(self.cost_usd, 6)}

    @classmethod
    def from_dict(cls, stored: dict | None) -> "Usage":
        """Usage as kept in a task's meta or result (fields it lacks are 0)."""
        stored = stored or {}
        return cls(**{name: (float if name == "cost_usd" else int)(stored.get(name) or 0)
                      for name in cls.__dataclass_fields__})

    @property
    def tokens(self) -> int:
        return (self.input_tokens + self.output_tokens + self.cache_creation_input_tokens
                + self.cache_read_input_tokens)


def token_cost(price: Price, usage: Usage) -> float:
    """Estimated USD of usage's tokens at price."""
    total = (usage.input_tokens * price.input
             + usage.cache_creation_input_tokens * price.input * price.cache_write
             + usage.cache_read_input_tokens * price.input * price.cache_read
             + usage.output_tokens * price.output)
    return round(total / 1_000_000, 6)


def priced(usage: Usage, price: Price | None) -> Usage:
    """One turn's usage with its cost (or counted as unpriced when the model's price is unknown)."""
    if price is None:
        usage.cost_usd, usage.unpriced_turns = 0.0, 1
    else:
        usage.cost_usd = token_cost(price, usage)
    return usage


def estimate_cost(model: str, usage: Usage) -> float:
    """Estimated USD for usage's tokens on model (`provider:model`, or an Anthropic model's bare name); 0.0 for a
    model whose price is unknown."""
    provider, _, name = model.partition(":") if ":" in model else ("anthropic", "", model)
    price = price_of(ModelSpec(provider, name)) if provider in PROVIDERS else None
    return token_cost(price, usage) if price else 0.0


INVALID_ARGUMENTS = "invalid_json_arguments"
"""The input key of a tool call whose arguments were not a JSON object (core/openai_model.py keeps them under it;
core/agent.py answers the call with the reason)."""


@dataclass
class Turn:
    """One assistant reply: content blocks as plain dicts, ready to go back into the history."""

    content: list[dict[str, Any]]
    stop_reason: str | None = "end_turn"
    usage: Usage = field(default_factory=Usage)
    model: str = ""  # the `provider:model` that answered
    # What the owner should hear of how it was answered: a model taking over from another (FallbackModel), older
    # tool output cleared to fit the window (core/context.py). Sentences.
    fallbacks: list[str] = field(default_factory=list)
    context_note: str = ""

    @property
    def text(self) -> str:
        return "\n".join(b["text"] for b in self.content if b.get("type") == "text").strip()

    @property
    def tool_uses(self) -> list[dict[str, Any]]:
        return [b for b in self.content if b.get("type") == "tool_use"]


class Model(Protocol):
    name: str  # `provider:model` for the real ones; what results and timelines call it

    def query(self, *, system: list[dict], tools: list[dict], messages: list[dict]) -> Turn: ...


ServerToolHook = Callable[[bool], Awaitable[None]]
"""Told True when a server tool (Anthropic's web search) starts running inside a streamed answer, False when its
result arrives (AnthropicModel.stream)."""


def _block_to_dict(block) -> dict[str, Any]:
    # Only the fields the API accepts back; SDK objects carry extra ones (citations=None, caller...). A text block's
    # citations (a web search's sources) are left out too: the history keeps words, and a reply cut short keeps only
    # the words heard, which its citations would no longer match. Server blocks (server_tool_use and its
    # web_search_tool_result) are kept whole: the API takes them back as they came.
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


class Interruptible:
    """A model whose blocking call a cancel can cut short from another thread (the worker's cancel watcher)."""

    _calling = False

    def interrupt(self) -> None:
        """Abort a call in flight, from another thread (on cancel). A blocked socket read in the main thread
        only wakes for a signal, so the process signals itself; the handler raises inside query()."""
        if self._calling and threading.current_thread() is not threading.main_thread():
            os.kill(os.getpid(), INTERRUPT_SIGNAL)

    @contextlib.contextmanager
    def _calling_model(self):
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(INTERRUPT_SIGNAL, _raise_interrupted) if in_main else None
        self._calling = in_main
        try:
            yield
        finally:
            self._calling = False
            if in_main:
                signal.signal(INTERRUPT_SIGNAL, previous)


class AnthropicModel(Interruptible):
    """Claude through the anthropic SDK; its own retries handle 429/5xx/529 with backoff."""

    provider = "anthropic"

    def __init__(self, *, api_key: str, model: str, base_url: str | None = None, max_retries: int = 3,
                 timeout: float = 120.0, max_tokens: int = MODEL_MAX_TOKENS, price: Price | None = None,
                 context_window: int | None = None):
        spec = ModelSpec("anthropic", model)
        self.model, self.name = model, spec.label
        self.price = price if price is not None else price_of(spec)
        self.context_window = context_window or providers.context_window(spec)
        self.max_tokens = max_tokens
        self.max_retries = max_retries
        self.timeout = timeout
        self._client_options = dict(api_key=api_key, base_url=base_url, max_retries=max_retries,
                                    timeout=anthropic.Timeout(timeout, connect=10.0))
        self.client = anthropic.Anthropic(**self._client_options,
                                          http_client=anthropic.DefaultHttpxClient(verify=TLS_CONTEXT))
        self._async_client: anthropic.AsyncAnthropic | None = None

    def query(self, *, system: list[dict], tools: list[dict], messages: list[dict]) -> Turn:
        with self._calling_model():
            try:
                message = self.client.messages.create(model=self.model, max_tokens=self.max_tokens, system=system,
                                                      tools=tools, messages=messages)
            except anthropic.APIError as exc:
                raise api_error(exc, self) from exc
        return self._turn(message)

    async def stream(self, *, system: list[dict] | str, tools: list[dict], messages: list[dict], max_tokens: int,
                     on_text: Callable[[str], Awaitable[None]], on_server_tool: ServerToolHook | None = None) -> Turn:
        """One streamed answer (the voice brain): every text delta goes to on_text as it arrives (citations never do:
        they are not words to say). A server tool among `tools` (the web search) runs inside the answer, in
        Anthropic's servers: on_server_tool(True) once its call has streamed and it runs, on_server_tool(False) when
        its result arrives, so the caller can be told to hold on through the silence."""
        if self._async_client is None:
            self._async_client = anthropic.AsyncAnthropic(**self._client_options)
        try:
            async with self._async_client.messages.stream(model=self.model, max_tokens=max_tokens, system=system,
                                                          tools=tools, messages=messages) as stream:
                async for event in stream:
                    if event.type == "text" and event.text:
                        await on_text(event.text)
                    elif on_server_tool is None:
                        continue
                    elif event.type == "content_block_stop" and event.content_block.type == "server_tool_use":
                        await on_server_tool(True)
                    elif event.type == "content_block_start" and event.content_block.type.endswith("_tool_result"):
                        await on_server_tool(False)
                message = await stream.get_final_message()
        except anthropic.APIError as exc:
            raise api_error(exc, self) from exc
        return self._turn(message)

    async def aclose(self) -> None:
        if self._async_client is not None:
            await self._async_client.close()
            self._async_client = None

    def _turn(self, message) -> Turn:
        u = message.usage
        usage = priced(Usage(u.input_tokens or 0, u.output_tokens or 0, u.cache_creation_input_tokens or 0,
                             u.cache_read_input_tokens or 0), self.price)
        content = [_block_to_dict(b) for b in message.content if b.type != "text" or b.text]
        return Turn(content, message.stop_reason, usage, model=self.name)


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
        model.model, model.name, model.max_tokens, model.client, model.price = "warm-up", "warm-up", 16, client, None
        turn = model.query(system=[{"type": "text", "text": "x"}],
                           tools=[{"name": "bash", "type": "bash_20250124"}], messages=[{"role": "user", "content": "x"}])
    finally:
        http_log.setLevel(level)
        client.close()
    anthropic.DefaultHttpxClient(verify=TLS_CONTEXT).close()  # its transport imports the HTTP stack lazily
    return turn


def api_error(exc: Exception, model) -> ModelError:
    """The ModelError for an SDK's error that outlived its retries (anthropic's or openai's: the same shapes)."""
    status = getattr(exc, "status_code", None)
    transient = is_unavailable(exc)
    # Another model may serve where this one cannot: it is unavailable, or this provider does not have it, or will
    # not take the key. A request refused for its content (400, 413, 422) would be refused by the next one too.
    fallback = transient or status in (401, 402, 403, 404)
    return ModelError(describe_api_error(exc, model), transient=transient, fallback=fallback)


def is_unavailable(exc: Exception) -> bool:
    """The API was unavailable rather than refusing the request (the SDK's own retries were spent on it): a timeout,
    no connection, rate limited (429), overloaded (529) or a server error (5xx). Only then may a later attempt of
    the task succeed where this one could not."""
    if type(exc).__name__ in ("APITimeoutError", "APIConnectionError"):  # anthropic's and openai's alike
        return True
    status = getattr(exc, "status_code", None)
    return status == 429 or (isinstance(status, int) and status >= 500)


def describe_api_error(exc: Exception, model) -> str:
    """A readable reason for an API failure that outlived the SDK's retries: what happened, and what to do."""
    source = PROVIDERS[getattr(model, "provider", "anthropic")]
    api = f"The {source.title} API"
    model_name = getattr(model, "model", model.name)
    tries = f"after {model.max_retries + 1} attempt{'s' if model.max_retries else ''}"
    if type(exc).__name__ == "APITimeoutError":
        timeout = "ANTHROPIC_TIMEOUT_SECONDS" if source.name == "anthropic" else "OPENAI_TIMEOUT_SECONDS"
        return (f"{api} did not answer within {model.timeout:g} seconds ({tries}): retry the task "
                f"later, or raise {timeout} if its answers take longer.")
    if type(exc).__name__ == "APIConnectionError":
        where = f" at {model.base_url}" if getattr(model, "base_url", None) else ""
        if source.local:
            return (f"{api} could not be reached{where} ({tries}): start the {source.title} server, or fix "
                    f"{source.base_url_setting}.")
        return f"{api} could not be reached{where} ({tries}): check the network or {source.base_url_setting}."
    status = getattr(exc, "status_code", None)
    detail = ""
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        detail = str(body["error"].get("message", ""))[:200].strip()
    elif isinstance(body, dict) and isinstance(body.get("message"), str):  # some OpenAI-compatible servers
        detail = body["message"][:200].strip()
    said = f": {detail.rstrip('.')}" if detail else ""
    key = source.key_setting or f"the key {source.title} expects"
    if status == 401:
        return f"{api} rejected the API key (401 authentication error): set a valid {key}."
    if status == 403:
        return (f"{api} key may not use the model '{model_name}' (403{said}): use a key with access to it, or "
                f"list a model it may use (CODING_MODELS, or CLAUDE_MODEL).")
    if status == 404:
        return (f"The model '{model_name}' was not found at {source.title} (404{said}): list a current model "
                f"(CODING_MODELS, or CLAUDE_MODEL)"
                + (f"; pull it first (ollama pull {model_name})." if source.name == "ollama" else "."))
    if status == 429:
        said = f"; it said{said}" if said else ""
        return (f"{api} kept rate limiting the task (429, {tries}{said}): retry the task in a minute, "
                f"or raise the account's rate limit.")
    if status == 529:
        return f"{api} was overloaded (529, {tries}): retry the task in a few minutes."
    if status and status >= 500:
        return f"{api} failed with a server error ({status}, {tries}): retry the task in a few minutes."
    return (f"{api} refused the request ({status}{said or ', ' + exc.__class__.__name__}): retrying "
            f"the same request will not help; the worker log has the details.")


class FallbackModel:
    """A role's models in order (CODING_MODELS, PLANNER_MODELS, VOICE_MODELS): the current one answers; when it is
    unavailable after its SDK's retries, or does not have the model, or has no key, the next takes over for the
    rest of the task (or call), with the same history: it is kept in one shape and each client converts it. A
    request refused for its content (a 400: TARS's own bug) ends there, as it would with any model.

    Before each request the history is fitted to the serving model's context window (core/context.py), so a
    local 32k model can carry a long task; what was cleared stays cleared (the prompt's prefix stays stable, so
    providers' prompt caches keep working)."""

    def __init__(self, models: list):
        if not models:
            raise ValueError("FallbackModel needs at least one model")
        self.models = list(models)
        self.index = 0
        self.fitter = context.Fitter()

    @property
    def current(self):
        return self.models[self.index]

    @property
    def name(self) -> str:
        return self.current.name

    def interrupt(self) -> None:
        if hasattr(self.current, "interrupt"):
            self.current.interrupt()

    def _next(self, exc: ModelError, failed: list[ModelError]) -> str:
        """Move on to the next model after exc, or raise: the sentence that says who took over and why."""
        failed.append(exc)
        if not exc.fallback or self.index + 1 >= len(self.models):
            if len(failed) > 1:  # all of them failed: a later attempt may succeed if any was only unavailable
                raise ModelError(f"No model could answer: {' '.join(str(e) for e in failed)}",
                                 transient=any(e.transient for e in failed), fallback=False) from exc
            raise exc
        before = self.current.name
        self.index += 1
        return f"{self.current.name} took over from {before}: {exc}"

    def query(self, *, system: list[dict], tools: list[dict], messages: list[dict]) -> Turn:
        failed: list[ModelError] = []
        told: list[str] = []
        while True:
            model = self.current
            fitted, note = self.fitter.fit(system, tools, messages, model)
            try:
                turn = model.query(system=system, tools=tools, messages=fitted)
            except ModelError as exc:  # a cancel's interruption is no reason to fall back: _next raises it
                told.append(self._next(exc, failed))
                continue
            turn.model = turn.model or model.name
            turn.fallbacks, turn.context_note = told, note
            return turn

    async def stream(self, *, system, tools: list[dict], messages: list[dict], max_tokens: int,
                     on_text: Callable[[str], Awaitable[None]], on_server_tool: ServerToolHook | None = None) -> Turn:
        """A streamed answer (the voice brain), falling back as query() does: the caller hears a pause."""
        failed: list[ModelError] = []
        told: list[str] = []
        while True:
            model = self.current
            try:
                turn = await model.stream(system=system, tools=tools, messages=messages, max_tokens=max_tokens,
                                          on_text=on_text, on_server_tool=on_server_tool)
            except ModelError as exc:
                told.append(self._next(exc, failed))
                continue
            turn.model = turn.model or model.name
            turn.fallbacks = told
            return turn


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
        turn = turn(messages) if callable(turn) else turn
        if turn.usage.tokens and not turn.usage.cost_usd:  # priced as the model it is named after would be
            turn.usage.cost_usd = estimate_cost(self.name, turn.usage)
        return turn


_ids = itertools.count(1)


def tool_turn(name: str, tool_input: dict, text: str = "", tool_id: str | None = None) -> Turn:
    """A Turn with one tool call (helper for ScriptedModel scripts)."""
    blocks = [{"type": "text", "text": text}] if text else []
    tool_id = tool_id or f"toolu_scripted_{next(_ids):06d}"
    blocks.append({"type": "tool_use", "id": tool_id, "name": name, "input": tool_input})
    return Turn(blocks, "tool_use")


def text_turn(text: str) -> Turn:
    return Turn([{"type": "text", "text": text}], "end_turn")

