"""Any OpenAI-compatible Chat Completions server as a TARS model: OpenAI, OpenRouter, vLLM, LM Studio, Ollama.

TARS keeps every history in Anthropic's Messages shape (core/model.py); this module converts it for each request
and converts the answer back, so a task can move between providers mid-way and lose nothing:
- the system blocks become one system message; cache_control marks are dropped (these servers cache by prefix);
- an assistant message's text and tool_use blocks become content and tool_calls (arguments as a JSON string);
- a user message's tool_result blocks become `tool` messages (right after the call, as the API requires), its text
  a user message after them;
- Anthropic's built-in tools (bash_20250124, text_editor_20250728) become function tools with the same
  semantics, their schemas generated from core/tools.py's documented inputs; other tools map one to one;
- Anthropic's server tools (web_search_20250305: Anthropic runs them) cannot run here: they are not offered, and
  their blocks in the history (server_tool_use, web_search_tool_result) are left out; the answer's words, which
  carry what was found, stay.
The same code then runs the calls (core/agent.py), with the same confinement, gate and sandbox.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable

import httpx2  # the HTTP client both SDKs are built on: MockTransport for warm_up
import openai

from core.defaults import MODEL_MAX_TOKENS
from core.model import INVALID_ARGUMENTS, TLS_CONTEXT, Interruptible, ServerToolHook, Turn, Usage, api_error, priced
from core.providers import ModelSpec, Price
from core.tools import BUILT_IN_TOOLS

STOP_REASONS = {"stop": "end_turn", "tool_calls": "tool_use", "function_call": "tool_use", "length": "max_tokens",
                "content_filter": "refusal"}
TOOL_ID = re.compile(r"[^a-zA-Z0-9_-]")  # Anthropic accepts only these in a tool_use id; the history may go there


class OpenAIModel(Interruptible):
    """One model of an OpenAI-compatible server through the openai SDK (its retries handle 429/5xx with backoff)."""

    def __init__(self, spec: ModelSpec, *, api_key: str | None, base_url: str | None, max_retries: int = 3,
                 timeout: float = 300.0, max_tokens: int = MODEL_MAX_TOKENS, price: Price | None = None,
                 context_window: int = 32_768):
        self.provider, self.model, self.name = spec.provider, spec.model, spec.label
        self.price, self.context_window = price, context_window
        self.max_tokens, self.max_retries, self.timeout = max_tokens, max_retries, timeout
        self.base_url = base_url
        # A local server takes no key, but the SDK insists on one: any placeholder will do.
        self._options = dict(api_key=api_key or "not-needed", base_url=base_url, max_retries=max_retries,
                             timeout=openai.Timeout(timeout, connect=10.0))
        self.client = openai.OpenAI(**self._options, http_client=openai.DefaultHttpxClient(verify=TLS_CONTEXT))
        self._async_client: openai.AsyncOpenAI | None = None

    def _request(self, system, tools: list[dict], messages: list[dict], max_tokens: int) -> dict:
        request = {"model": self.model, "messages": to_chat_messages(system, messages),
                   "max_completion_tokens" if self.provider == "openai" else "max_tokens": max_tokens}
        functions = [to_function_tool(tool) for tool in tools if not is_server_tool(tool)]
        if functions:
            request["tools"] = functions
        return request

    def query(self, *, system: list[dict], tools: list[dict], messages: list[dict]) -> Turn:
        with self._calling_model():
            try:
                completion = self.client.chat.completions.create(
                    **self._request(system, tools, messages, self.max_tokens))
            except openai.APIError as exc:
                raise api_error(exc, self) from exc
        if not completion.choices:
            raise api_error(openai.APIError("The server answered with no choices.", None, body=None), self)
        choice = completion.choices[0]
        calls = [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls or []
                 if getattr(c, "function", None) is not None]
        return self._turn(choice.message.content or "", calls, choice.finish_reason, completion.usage)

    async def stream(self, *, system, tools: list[dict], messages: list[dict], max_tokens: int,
                     on_text: Callable[[str], Awaitable[None]], on_server_tool: ServerToolHook | None = None) -> Turn:
        """One streamed answer (the voice brain): text deltas go to on_text as they arrive; tool calls arrive in
        pieces (their arguments split over chunks) and are put together here. No server tool runs here, so
        on_server_tool (core/model.AnthropicModel.stream) is never told anything."""
        if self._async_client is None:
            self._async_client = openai.AsyncOpenAI(**self._options)
        text, calls, finish, usage = [], {}, None, None
        try:
            stream = await self._async_client.chat.completions.create(
                **self._request(system, tools, messages, max_tokens), stream=True,
                stream_options={"include_usage": True})
            async for chunk in stream:
                usage = chunk.usage or usage
                for choice in chunk.choices:
                    delta = choice.delta
                    if delta.content:
                        text.append(delta.content)
                        await on_text(delta.content)
                    for piece in delta.tool_calls or []:
                        call = calls.setdefault(piece.index, ["", "", ""])
                        call[0] = piece.id or call[0]
                        if piece.function is not None:
                            call[1] += piece.function.name or ""
                            call[2] += piece.function.arguments or ""
                    finish = choice.finish_reason or finish
        except openai.APIError as exc:
            raise api_error(exc, self) from exc
        return self._turn("".join(text), [tuple(calls[i]) for i in sorted(calls)], finish, usage)

    async def aclose(self) -> None:
        if self._async_client is not None:
            await self._async_client.close()
            self._async_client = None

    def _turn(self, text: str, calls: list[tuple[str, str, str]], finish: str | None, usage) -> Turn:
        content: list[dict] = [{"type": "text", "text": text}] if text.strip() else []
        seen: set[str] = set()
        for number, (call_id, name, arguments) in enumerate(calls, 1):
            call_id = TOOL_ID.sub("_", call_id or "")[:64] or f"call_{number}"
            if call_id in seen:  # some servers number every call "0": the history needs them apart
                call_id = f"{call_id}_{number}"
            seen.add(call_id)
            content.append({"type": "tool_use", "id": call_id, "name": name, "input": parse_arguments(arguments)})
        stop = "tool_use" if calls else STOP_REASONS.get(finish or "stop", "end_turn")
        return Turn(content, stop, priced(to_usage(usage), self.price), model=self.name)


_WARM_UP_REPLY = {
    "id": "chatcmpl-warm-up", "object": "chat.completion", "created": 0, "model": "warm-up",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "warming up",
        "tool_calls": [{"id": "call_warm_up", "type": "function",
                        "function": {"name": "bash", "arguments": "{\"command\": \"true\"}"}}]}}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2,
              "prompt_tokens_details": {"cached_tokens": 0}},
}


def warm_up() -> Turn:
    """Parse one canned completion through the real SDK path, in the worker before it forks work-horses (as
    core/model.warm_up does for Claude): the SDK's response models and HTTP stack are built lazily, on the first
    reply, and every horse would build them again. No network: a MockTransport answers."""
    transport = httpx2.MockTransport(lambda request: httpx2.Response(200, json=_WARM_UP_REPLY))
    model = OpenAIModel(ModelSpec("openai", "warm-up"), api_key="warm-up", base_url="http://warm-up.invalid/v1",
                        max_retries=0, max_tokens=16)
    model.client.close()
    model.client = openai.OpenAI(api_key="warm-up", base_url="http://warm-up.invalid/v1", max_retries=0,
                                 http_client=openai.DefaultHttpxClient(transport=transport))
    http_log = logging.getLogger("httpx2")  # its "POST http://warm-up.invalid" line would puzzle whoever reads the log
    level = http_log.level
    http_log.setLevel(logging.WARNING)
    try:
        return model.query(system=[{"type": "text", "text": "x"}], tools=[{"type": "bash_20250124", "name": "bash"}],
                           messages=[{"role": "user", "content": "x"}])
    finally:
        http_log.setLevel(level)
        model.client.close()


def parse_arguments(arguments: str) -> dict:
    """A tool call's arguments: a JSON object, or what the model sent kept whole so the tool can say what is wrong."""
    try:
        value = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return {INVALID_ARGUMENTS: arguments}
    return value if isinstance(value, dict) else {INVALID_ARGUMENTS: arguments}


def to_usage(usage) -> Usage:
    """The server's token counts; cached prompt tokens (OpenAI counts them inside prompt_tokens) apart."""
    if usage is None:
        return Usage()
    details = getattr(usage, "prompt_tokens_details", None)
    cached = (getattr(details, "cached_tokens", 0) or 0) if details is not None else 0
    prompt = usage.prompt_tokens or 0
    return Usage(input_tokens=max(0, prompt - cached), output_tokens=usage.completion_tokens or 0,
                 cache_read_input_tokens=cached)


def is_server_tool(tool: dict) -> bool:
    """An Anthropic server tool (web_search_20250305...): typed, yet neither a built-in tool TARS runs itself nor a
    custom one with a schema."""
    kind = tool.get("type")
    return bool(kind) and kind != "custom" and kind not in BUILT_IN_TOOLS


def to_function_tool(tool: dict) -> dict:
    """An Anthropic tool as a Chat Completions function tool."""
    built_in = BUILT_IN_TOOLS.get(tool.get("type", ""))
    if built_in is not None:
        tool = {**built_in, "name": tool.get("name", built_in["name"])}
    function = {"name": tool["name"], "parameters": tool.get("input_schema") or {"type": "object", "properties": {}}}
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _text(content) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")


def to_chat_messages(system, messages: list[dict]) -> list[dict]:
    """An Anthropic-shaped history (and system prompt) as Chat Completions messages."""
    chat: list[dict] = []
    system_text = _text(system) if system else ""
    if system_text:
        chat.append({"role": "system", "content": system_text})
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            chat.append({"role": message["role"], "content": content})
            continue
        if message["role"] == "assistant":
            said = _text(content)
            calls = [{"id": b["id"], "type": "function",
                      "function": {"name": b["name"], "arguments": json.dumps(b.get("input") or {})}}
                     for b in content if b.get("type") == "tool_use"]
            entry: dict = {"role": "assistant", "content": said or None}
            if calls:
                entry["tool_calls"] = calls
            elif not said:
                entry["content"] = "..."  # an empty answer: the API needs content or tool calls
            chat.append(entry)
            continue
        for block in content:
            if block.get("type") == "tool_result":
                result = _text(block.get("content") or "")
                chat.append({"role": "tool", "tool_call_id": block["tool_use_id"],
                             "content": f"Error: {result}" if block.get("is_error") else result})
        said = _text(content)
        if said:
            chat.append({"role": "user", "content": said})
    return chat
