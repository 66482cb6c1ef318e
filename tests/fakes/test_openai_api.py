"""Tests for tests/fakes/openai_api.py, driven through the real openai SDK (sync and async)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai
import pytest

from tests.fakes.openai_api import (
    EXHAUSTED_TEXT,
    UNMATCHED_TEXT,
    FakeOpenAI,
    bash,
    delay,
    edit,
    error,
    estimate_tokens,
    hang,
    multi,
    repeat,
    text,
    tool_call,
)

MODEL = "qwen2.5-coder:32b"
SYSTEM = {"role": "system", "content": "You are TARS."}
TOOLS = [
    {"type": "function", "function": {"name": "bash", "description": "Run a shell command", "parameters": {
        "type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}},
]


@pytest.fixture
def fake():
    with FakeOpenAI() as f:
        yield f
    assert not f.errors, f.errors


def client(fake: FakeOpenAI, **kw) -> openai.OpenAI:
    kw.setdefault("max_retries", 0)
    kw.setdefault("timeout", 10)
    kw.setdefault("api_key", "test")
    return openai.OpenAI(base_url=fake.base_url, **kw)


def aclient(fake: FakeOpenAI, **kw) -> openai.AsyncOpenAI:
    kw.setdefault("max_retries", 0)
    kw.setdefault("timeout", 10)
    return openai.AsyncOpenAI(api_key="test", base_url=fake.base_url, **kw)


def ask(c: openai.OpenAI, goal: str = "do the thing", **kw):
    kw.setdefault("messages", [SYSTEM, {"role": "user", "content": goal}])
    kw.setdefault("model", MODEL)
    return c.chat.completions.create(**kw)


def test_base_url_ends_in_v1(fake):
    assert fake.base_url == f"http://127.0.0.1:{fake.port}/v1"


def test_text_reply(fake):
    fake.script([text("Hello from the fake.")])
    r = ask(client(fake))
    assert isinstance(r, openai.types.chat.ChatCompletion)
    assert r.id.startswith("chatcmpl-") and r.object == "chat.completion" and r.model == MODEL
    assert r.created > 0 and len(r.choices) == 1
    ch = r.choices[0]
    assert ch.index == 0 and ch.finish_reason == "stop"
    assert ch.message.role == "assistant" and ch.message.content == "Hello from the fake."
    assert ch.message.tool_calls is None

    (req,) = fake.wait_for_requests(1)
    assert req.method == "POST" and req.path == "/v1/chat/completions" and req.status == 200
    assert req.api_key == "test" and req.script == "default" and not req.stream
    assert req.body["messages"][1] == {"role": "user", "content": "do the thing"}
    assert req.prompt_tokens == estimate_tokens(req.body) == fake.max_prompt_tokens_seen

    u = r.usage
    assert u.prompt_tokens == req.prompt_tokens
    assert u.completion_tokens == 5  # ceil(20 chars / 4)
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert u.prompt_tokens_details.cached_tokens == 0
    assert r._request_id.startswith("req_")


def test_estimate_tokens_formula():
    body = {"messages": [{"role": "user", "content": "x" * 100}], "tools": TOOLS}
    chars = len(json.dumps(body["messages"])) + len(json.dumps(TOOLS))
    assert estimate_tokens(body) == -(-chars * 2 // 7)  # ceil(chars / 3.5)
    assert estimate_tokens(body, chars_per_token=1) == chars
    assert estimate_tokens({"messages": [{"role": "user", "content": "hi"}]}) == 11  # 38 chars incl. "[]"


def test_tool_call_round_trip(fake):
    fake.script([bash("ls -la /tmp", text="Let me look."), text("All done.")])
    c = client(fake)
    r1 = ask(c, tools=TOOLS)
    ch = r1.choices[0]
    assert ch.finish_reason == "tool_calls" and ch.message.content == "Let me look."
    (call,) = ch.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "bash"
    assert isinstance(call.function.arguments, str)
    assert json.loads(call.function.arguments) == {"command": "ls -la /tmp"}

    # the SDK's own message object goes back as the assistant turn, answered by a tool message
    r2 = ask(c, tools=TOOLS, messages=[
        SYSTEM, {"role": "user", "content": "do the thing"},
        ch.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "file.txt"},
    ])
    assert r2.choices[0].message.content == "All done." and r2.choices[0].finish_reason == "stop"
    assert fake.requests[1].status == 200 and not fake.invalid


def test_tool_call_without_text_has_null_content_and_fixed_id(fake):
    fake.script([tool_call("lookup", {"q": "x", "n": 3}, id="call_fixed"), repeat(tool_call("lookup", {}))])
    c = client(fake)
    m = ask(c).choices[0].message
    assert m.content is None and m.tool_calls[0].id == "call_fixed"
    assert json.loads(m.tool_calls[0].function.arguments) == {"q": "x", "n": 3}
    ids = {ask(c).choices[0].message.tool_calls[0].id for _ in range(3)}
    assert len(ids) == 3  # fresh call_ ids per serve


def test_edit_and_parallel_tool_calls(fake):
    fake.script([
        edit(command="create", path="/tmp/x.py", file_text="print(1)\n"),
        multi("Two at once.", bash("ls"), bash("pwd")),
    ])
    c = client(fake)
    (call,) = ask(c).choices[0].message.tool_calls
    assert call.function.name == "str_replace_based_edit_tool"
    assert json.loads(call.function.arguments) == {"command": "create", "path": "/tmp/x.py", "file_text": "print(1)\n"}
    ch = ask(c).choices[0]
    assert ch.finish_reason == "tool_calls" and ch.message.content == "Two at once."
    calls = ch.message.tool_calls
    assert [json.loads(t.function.arguments)["command"] for t in calls] == ["ls", "pwd"]
    assert calls[0].id != calls[1].id


def stream_kw(**kw):
    kw.setdefault("model", MODEL)
    kw.setdefault("messages", [SYSTEM, {"role": "user", "content": "hi"}])
    kw["stream"] = True
    return kw


def test_streaming_text_sync(fake):
    sentence = "The quick brown fox jumps over the lazy dog and keeps running."
    fake.script([text(sentence)])
    chunks = list(client(fake).chat.completions.create(**stream_kw()))
    assert all(isinstance(c, openai.types.chat.ChatCompletionChunk) for c in chunks)
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    first = chunks[0].choices[0].delta
    assert first.role == "assistant" and first.content == ""
    pieces = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert len(pieces) >= 5 and "".join(pieces) == sentence
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].choices[0].delta.content is None
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert all(c.usage is None for c in chunks)  # no include_usage: no usage chunk
    assert fake.requests[0].stream and fake.requests[0].first_text_mono is not None


def test_streaming_text_async(fake):
    fake.script([text("async words arrive one by one")])

    async def main():
        c = aclient(fake)
        stream = await c.chat.completions.create(**stream_kw(stream_options={"include_usage": True}))
        out, usage = [], None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                out.append(chunk.choices[0].delta.content)
            if chunk.usage is not None:
                usage = chunk.usage
        await c.close()
        return out, usage

    out, usage = asyncio.run(main())
    assert len(out) == 6 and "".join(out) == "async words arrive one by one"
    assert usage.completion_tokens == 8 and usage.prompt_tokens == fake.requests[0].prompt_tokens


def test_async_tool_call_and_error(fake):
    fake.script([bash("uname -a"), error(429)])

    async def main():
        async with aclient(fake) as c:
            r = await c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
            with pytest.raises(openai.RateLimitError):
                await c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
            return r

    r = asyncio.run(main())
    assert json.loads(r.choices[0].message.tool_calls[0].function.arguments) == {"command": "uname -a"}


def test_streaming_tool_calls_arrive_in_fragments(fake):
    fake.script([multi("Running both.", bash("echo hello world && ls -la /some/long/path"),
                       tool_call("read", {"path": "/etc/hosts", "lines": [1, 2]}))])
    chunks = list(client(fake).chat.completions.create(**stream_kw(tools=TOOLS)))
    content, calls, fragments = "", {}, {}
    for chunk in chunks:
        d = chunk.choices[0].delta
        content += d.content or ""
        for tc in d.tool_calls or []:
            if tc.id is not None:  # the first delta of a call names it
                assert tc.type == "function" and tc.function.name and tc.function.arguments == ""
                calls[tc.index] = {"id": tc.id, "name": tc.function.name, "arguments": ""}
            else:
                assert tc.function.name is None
                calls[tc.index]["arguments"] += tc.function.arguments
                fragments[tc.index] = fragments.get(tc.index, 0) + 1
    assert content == "Running both."
    assert [c["name"] for c in calls.values()] == ["bash", "read"]
    assert all(c["id"].startswith("call_") for c in calls.values()) and calls[0]["id"] != calls[1]["id"]
    assert json.loads(calls[0]["arguments"]) == {"command": "echo hello world && ls -la /some/long/path"}
    assert json.loads(calls[1]["arguments"]) == {"path": "/etc/hosts", "lines": [1, 2]}
    assert all(2 <= n <= 3 for n in fragments.values())  # clients must concatenate
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_include_usage_chunk_only_when_asked(fake):
    fake.script([repeat(text("some reply text"))])
    c = client(fake)
    plain = list(c.chat.completions.create(**stream_kw()))
    assert all(ch.choices and ch.usage is None for ch in plain)

    with_usage = list(c.chat.completions.create(**stream_kw(stream_options={"include_usage": True})))
    last = with_usage[-1]
    assert last.choices == [] and last.usage is not None
    assert all(ch.choices and ch.usage is None for ch in with_usage[:-1])
    assert with_usage[-2].choices[0].finish_reason == "stop"
    assert last.usage.prompt_tokens == fake.requests[1].prompt_tokens
    assert last.usage.completion_tokens == 4 and last.usage.total_tokens == last.usage.prompt_tokens + 4


def test_cached_tokens_and_usage_override():
    with FakeOpenAI(cached_tokens=7) as fake:
        fake.script([text("a"), text("b", usage={"prompt_tokens": 1000, "completion_tokens": 20,
                                                 "cached_tokens": 800}), repeat(text("c"))])
        c = client(fake)
        u = ask(c).usage
        assert u.prompt_tokens_details.cached_tokens == 7 and u.completion_tokens == 1
        u = ask(c).usage
        assert (u.prompt_tokens, u.completion_tokens, u.total_tokens, u.prompt_tokens_details.cached_tokens) == (
            1000, 20, 1020, 800)
        fake.cached_tokens = 10**6  # never more than the prompt
        chunks = list(c.chat.completions.create(**stream_kw(stream_options={"include_usage": True})))
        u = chunks[-1].usage
        assert u.prompt_tokens_details.cached_tokens == u.prompt_tokens == fake.requests[-1].prompt_tokens


@pytest.mark.parametrize("status,exc,type_,code", [
    (400, openai.BadRequestError, "invalid_request_error", None),
    (401, openai.AuthenticationError, "authentication_error", "invalid_api_key"),
    (404, openai.NotFoundError, "invalid_request_error", "model_not_found"),
    (429, openai.RateLimitError, "requests", "rate_limit_exceeded"),
    (500, openai.InternalServerError, "server_error", None),
    (502, openai.InternalServerError, "server_error", None),
    (503, openai.InternalServerError, "server_error", None),
])
def test_error_statuses_map_to_sdk_exceptions(fake, status, exc, type_, code):
    fake.script([error(status), text("next")])
    with pytest.raises(exc) as ei:
        ask(client(fake))
    e = ei.value
    assert e.status_code == status and e.type == type_ and e.code == code and e.param is None
    assert set(e.body) == {"message", "type", "param", "code"} and e.body["message"]
    assert e.response.headers["x-request-id"].startswith("req_")
    if status == 404:
        assert e.body["message"].startswith(f"The model `{MODEL}` does not exist")
    assert len(fake.requests) == 1 and fake.requests[0].status == status


def test_error_custom_message_code_and_headers(fake):
    fake.script([error(429, "Quota gone.", "insufficient_quota", type_="insufficient_quota",
                       headers={"retry-after": "7"})])
    with pytest.raises(openai.RateLimitError) as ei:
        ask(client(fake))
    assert ei.value.body == {"message": "Quota gone.", "type": "insufficient_quota", "param": None,
                             "code": "insufficient_quota"}
    assert ei.value.response.headers["retry-after"] == "7"


def test_sdk_retries_503_then_succeeds(fake):
    fake.script([error(503), text("ok after retry")])
    r = ask(client(fake, max_retries=2))
    assert r.choices[0].message.content == "ok after retry"
    a, b = fake.wait_for_requests(2)
    assert [a.status, b.status] == [503, 200]
    assert b.headers.get("x-stainless-retry-count") == "1"


def test_hang_causes_client_timeout(fake):
    fake.script([hang(5), text("after hang")])
    t0 = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        ask(client(fake, timeout=0.3))
    assert time.monotonic() - t0 < 3
    assert len(fake.requests) == 1 and fake.requests[0].status is None
    assert ask(client(fake)).choices[0].message.content == "after hang"  # the next turn


def test_delay_callable_and_repeat(fake):
    seen = []

    def per_request(body):
        seen.append(len(body["messages"]))
        return bash(f"echo {len(body['messages'])}")

    fake.script([delay(0.05, "late"), per_request, repeat(lambda body: text(body["model"])), "unreachable"])
    c = client(fake)
    assert ask(c).choices[0].message.content == "late"
    m = ask(c).choices[0].message
    assert json.loads(m.tool_calls[0].function.arguments) == {"command": "echo 2"} and seen == [2]
    assert [ask(c, model=f"m{i}").choices[0].message.content for i in range(3)] == ["m0", "m1", "m2"]
    assert fake.remaining("default") == 2 and not fake.exhausted


def test_context_length_refusal_does_not_consume_turn():
    with FakeOpenAI(max_context_tokens=100) as fake:
        fake.script([text("fits")])
        c = client(fake)
        big = [SYSTEM, {"role": "user", "content": "y" * 1000}]
        with pytest.raises(openai.BadRequestError) as ei:
            ask(c, messages=big)
        e = ei.value
        n = estimate_tokens({"messages": big})
        assert e.code == "context_length_exceeded" and e.type == "invalid_request_error"
        assert e.message.endswith(
            f"This model's maximum context length is 100 tokens. However, your messages resulted in {n} tokens. "
            "Please reduce the length of the messages.")
        assert len(fake.refused) == 1 and fake.refused[0].prompt_tokens == n and fake.refused[0].script is None
        assert fake.remaining("default") == 1
        assert fake.max_prompt_tokens_seen == n
        assert ask(c).choices[0].message.content == "fits"


def tool_turn(call_id="call_1", arguments='{"command": "ls"}'):
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": call_id, "type": "function", "function": {"name": "bash", "arguments": arguments}}]}


@pytest.mark.parametrize("kw,needle", [
    ({"messages": [SYSTEM, {"role": "user", "content": "x"}, tool_turn(),
                   {"role": "tool", "tool_call_id": "call_nope", "content": "out"}]}, "call_nope"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "call_1", "content": "o"}]},
     "role 'tool'"),
    ({"messages": [{"role": "user", "content": "x"}, tool_turn(), {"role": "user", "content": "and?"}]},
     "did not have response messages: call_1"),
    ({"messages": [{"role": "user", "content": "x"}, tool_turn()]}, "did not have response messages"),
    ({"messages": [{"role": "user", "content": "x"}, tool_turn(arguments={"command": "ls"}),
                   {"role": "tool", "tool_call_id": "call_1", "content": "o"}]}, "expected a string"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "tool_calls": []}]},
     "tool_calls': empty array"),
    ({"messages": []}, "empty array"),
    ({"tools": [{"name": "bash", "parameters": {}}]}, "tools[0].type"),
    ({"tools": [{"type": "function", "function": {"name": "bash"}}]}, "tools[0].function.parameters"),
])
def test_validation_rejects_client_bugs(fake, kw, needle):
    fake.script([text("never served")])
    with pytest.raises(openai.BadRequestError) as ei:
        ask(client(fake), **kw)
    assert needle in ei.value.message and ei.value.type == "invalid_request_error"
    assert len(fake.invalid) == 1 and fake.invalid[0].status == 400 and needle in fake.invalid[0].error
    assert fake.remaining("default") == 1


def test_validation_accepts_parallel_answers_and_system_between(fake):
    fake.script([text("fine")])
    two = {"role": "assistant", "content": "both", "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "bash", "arguments": "{}"}},
        {"id": "call_b", "type": "function", "function": {"name": "bash", "arguments": "{}"}}]}
    msgs = [SYSTEM, {"role": "user", "content": "x"}, two,
            {"role": "tool", "tool_call_id": "call_b", "content": "b"},
            {"role": "system", "content": "note"},
            {"role": "tool", "tool_call_id": "call_a", "content": "a"},
            {"role": "user", "content": "next"}]
    assert ask(client(fake), messages=msgs, tools=TOOLS).choices[0].message.content == "fine"


def test_routing_by_first_user_message_and_exhaustion(fake):
    fake.script([text("alpha 1"), text("alpha 2")], match="ALPHA", name="a")
    fake.script([text("beta 1")], match="BETA", name="b")
    c = client(fake)

    def convo(goal, later=False):
        msgs = [{"role": "system", "content": "BETA in the system prompt does not count"},
                {"role": "user", "content": [{"type": "text", "text": f"goal: {goal}"}]}]
        if later:  # the first user message (the goal) is still first
            msgs += [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "ALPHA BETA noise"}]
        return msgs

    assert ask(c, messages=convo("ALPHA")).choices[0].message.content == "alpha 1"
    assert ask(c, messages=convo("BETA")).choices[0].message.content == "beta 1"
    assert ask(c, messages=convo("ALPHA", True)).choices[0].message.content == "alpha 2"
    assert fake.requests[0].first_user_text == "goal: ALPHA" and fake.requests[2].last_user_text == "ALPHA BETA noise"
    assert not fake.exhausted
    r = ask(c, messages=convo("BETA", True)).choices[0]
    assert r.message.content == EXHAUSTED_TEXT and r.finish_reason == "stop"
    assert fake.exhausted == {"b"}
    assert ask(c, "neither").choices[0].message.content == UNMATCHED_TEXT
    assert [r.script for r in fake.requests] == ["a", "b", "a", "b", None]
    assert fake.unmatched == [fake.requests[-1]]


def test_api_key_enforced():
    with FakeOpenAI(api_key="sk-right") as fake:
        fake.script([text("welcome")])
        with pytest.raises(openai.AuthenticationError) as ei:
            ask(client(fake, api_key="sk-wrong", max_retries=2))  # 401 is not retried
        assert ei.value.code == "invalid_api_key" and len(fake.requests) == 1
        with httpx.Client(base_url=fake.base_url) as h:
            r = h.post("/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]})
            assert r.status_code == 401 and "didn't provide an API key" in r.json()["error"]["message"]
            assert h.get("/models").status_code == 401
        assert fake.remaining("default") == 1
        assert ask(client(fake, api_key="sk-right")).choices[0].message.content == "welcome"
        assert fake.requests[-1].api_key == "sk-right"


def test_models_list_retrieve_and_unknown_model():
    with FakeOpenAI(models=["llama3.1:8b", MODEL]) as fake:
        fake.script([text("served")])
        c = client(fake)
        listed = c.models.list()
        assert [m.id for m in listed] == ["llama3.1:8b", MODEL]
        assert all(m.object == "model" and m.owned_by == "local" and m.created > 0 for m in listed)
        assert c.models.retrieve(MODEL).id == MODEL
        with pytest.raises(openai.NotFoundError) as ei:
            c.models.retrieve("gpt-9")
        assert ei.value.code == "model_not_found"
        with pytest.raises(openai.NotFoundError) as ei:
            ask(c, model="gpt-9")
        assert ei.value.code == "model_not_found"
        assert ei.value.message.endswith("The model `gpt-9` does not exist or you do not have access to it.")
        assert fake.remaining("default") == 1
        assert ask(c).choices[0].message.content == "served"


def test_models_without_a_list(fake):
    c = client(fake)
    assert list(c.models.list()) == []
    assert c.models.retrieve("anything").id == "anything"  # every model is served


def test_health_unknown_paths_and_raw_wire_format(fake):
    fake.script([repeat(multi("hi there friend", bash("ls")))])
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
    with httpx.Client(base_url=f"http://127.0.0.1:{fake.port}") as h:
        assert h.get("/health").status_code == 200
        r = h.get("/v1/nope")
        assert r.status_code == 404
        assert r.json() == {"error": {"message": "Invalid URL (GET /v1/nope)", "type": "invalid_request_error",
                                      "param": None, "code": None}}
        assert h.post("/chat/completions", json=body).status_code == 404  # base_url without /v1

        r = h.post("/v1/chat/completions", json=body)
        assert r.headers["content-type"] == "application/json"
        openai.types.chat.ChatCompletion.model_validate(r.json(), strict=True)

        r = h.post("/v1/chat/completions", json=dict(body, stream=True))
        assert r.headers["content-type"].startswith("text/event-stream")
        events = r.text.split("\n\n")
        assert events[-2:] == ["data: [DONE]", ""]
        for ev in events[:-2]:
            assert ev.startswith("data: ") and "\n" not in ev
            openai.types.chat.ChatCompletionChunk.model_validate(json.loads(ev[6:]), strict=True)
    assert [x.path for x in fake.requests][:2] == ["/v1/nope", "/chat/completions"]  # /health is not recorded
    assert len(fake.chat_requests) == 2


def test_broken_off_stream_and_keep_alive(fake):
    fake.script([text("one two three four five six seven eight nine ten", chunk_delay=0.05), repeat("pong")])
    c = client(fake)
    stream = c.chat.completions.create(**stream_kw())
    next(stream)  # role chunk
    assert next(stream).choices[0].delta.content == "one "
    stream.close()  # broke off mid-stream; the fake copes and keeps serving
    for i in range(6):
        if i % 2:
            chunks = c.chat.completions.create(**stream_kw())
            assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == "pong"
        else:
            assert ask(c).choices[0].message.content == "pong"


def test_reset(fake):
    fake.script([text("a")])
    ask(client(fake))
    fake.reset()
    assert fake.requests == [] and fake.exhausted == set() and fake.max_prompt_tokens_seen == 0
    fake.script([text("b")])
    assert ask(client(fake)).choices[0].message.content == "b"


def test_reachable_from_another_process(fake):
    """A worker under test runs in a separate process and finds the fake via OPENAI_BASE_URL."""
    import os
    import subprocess
    import sys

    fake.script([bash("whoami")], match="proc-goal", name="proc")
    code = (
        "import json, openai\n"
        "c = openai.OpenAI(max_retries=0)\n"
        "r = c.chat.completions.create(model='m', messages=[{'role': 'user', 'content': 'proc-goal'}])\n"
        "print(json.loads(r.choices[0].message.tool_calls[0].function.arguments)['command'])\n"
    )
    env = dict(os.environ, OPENAI_BASE_URL=fake.base_url, OPENAI_API_KEY="k")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "whoami"
    assert fake.requests[0].script == "proc"
