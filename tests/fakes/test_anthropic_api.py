"""Tests for tests/fakes/anthropic_api.py, driven through the real anthropic SDK."""

from __future__ import annotations

import threading
import time

import anthropic
import httpx
import pytest

from tests.fakes.anthropic_api import (
    EXHAUSTED_TEXT,
    UNMATCHED_TEXT,
    FakeAnthropic,
    bash,
    delay,
    edit,
    error,
    hang,
    multi,
    repeat,
    text,
    tool_use,
    web_search,
)

MODEL = "claude-sonnet-4-6"
TOOLS = [
    {"name": "bash", "description": "Run a shell command", "input_schema": {"type": "object", "properties": {
        "command": {"type": "string"}}, "required": ["command"]}},
]


@pytest.fixture
def fake():
    with FakeAnthropic() as f:
        yield f
    assert not f.errors, f.errors


def client(fake: FakeAnthropic, **kw) -> anthropic.Anthropic:
    kw.setdefault("max_retries", 0)
    kw.setdefault("timeout", 10)
    return anthropic.Anthropic(api_key="test", base_url=fake.base_url, **kw)


def ask(c: anthropic.Anthropic, goal: str = "do the thing", **kw):
    kw.setdefault("messages", [{"role": "user", "content": goal}])
    return c.messages.create(model=MODEL, max_tokens=1024, **kw)


def test_tool_use_then_text(fake):
    fake.script([bash("ls -la", text="Let me look."), text("All done.")])
    c = client(fake)

    m1 = ask(c, tools=TOOLS)
    assert isinstance(m1, anthropic.types.Message)
    assert m1.id.startswith("msg_") and m1.role == "assistant" and m1.model == MODEL
    assert [b.type for b in m1.content] == ["text", "tool_use"]
    assert m1.content[0].text == "Let me look."
    tu = m1.content[1]
    assert tu.name == "bash" and tu.input == {"command": "ls -la"} and tu.id.startswith("toolu_01")
    assert m1.stop_reason == "tool_use" and m1.stop_sequence is None
    u = m1.usage
    assert u.input_tokens > 0 and u.output_tokens >= 1
    assert u.cache_creation_input_tokens == 0 and u.cache_read_input_tokens == 0

    m2 = ask(c, tools=TOOLS, messages=[
        {"role": "user", "content": "do the thing"},
        {"role": "assistant", "content": m1.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tu.id, "content": "file.txt"}]},
    ])
    assert [b.type for b in m2.content] == ["text"] and m2.content[0].text == "All done."
    assert m2.stop_reason == "end_turn"

    reqs = fake.wait_for_requests(2)
    assert len(reqs) == 2
    r = reqs[1]
    assert r.path == "/v1/messages" and r.script == "default" and r.status == 200
    assert r.api_key == "test" and "anthropic-version" in r.headers
    assert r.body["model"] == MODEL and r.body["tools"] == TOOLS
    assert r.body["messages"][2]["content"][0]["tool_use_id"] == tu.id
    assert r.received_at <= time.time()


def test_edit_and_parallel_tool_use(fake):
    fake.script([
        edit(command="create", path="/tmp/x.py", file_text="print(1)\n"),
        multi("Two at once.", bash("ls"), bash("pwd")),
    ])
    c = client(fake)
    m = ask(c)
    assert m.content[0].name == "str_replace_based_edit_tool"
    assert m.content[0].input == {"command": "create", "path": "/tmp/x.py", "file_text": "print(1)\n"}
    m = ask(c)
    assert [b.type for b in m.content] == ["text", "tool_use", "tool_use"]
    assert [b.input["command"] for b in m.content[1:]] == ["ls", "pwd"]
    assert m.content[1].id != m.content[2].id
    assert m.stop_reason == "tool_use"


def test_routing_by_goal_with_independent_cursors(fake):
    fake.script([text("alpha 1"), text("alpha 2")], match="ALPHA", name="a")
    fake.script([text("beta 1"), text("beta 2")], match="BETA", name="b")
    c = client(fake)

    def convo(goal, n):
        # later turns: the first user message (the goal) is still first
        return [{"role": "user", "content": [{"type": "text", "text": f"goal: {goal}"}]},
                {"role": "assistant", "content": "x"}, {"role": "user", "content": "ALPHA BETA noise"}][: n]

    assert ask(c, messages=convo("ALPHA", 1)).content[0].text == "alpha 1"
    assert ask(c, messages=convo("BETA", 1)).content[0].text == "beta 1"
    assert ask(c, messages=convo("BETA", 3)).content[0].text == "beta 2"
    assert ask(c, messages=convo("ALPHA", 3)).content[0].text == "alpha 2"
    assert [r.script for r in fake.requests] == ["a", "b", "b", "a"]
    assert ask(c, goal="neither").content[0].text == UNMATCHED_TEXT
    assert fake.requests[-1].script is None and len(fake.unmatched) == 1


def test_concurrent_requests_two_scripts(fake):
    fake.script([delay(0.3, text("slow A"))], match="A-task", name="a")
    fake.script([delay(0.3, text("slow B"))], match="B-task", name="b")
    results = {}

    def run(goal):
        results[goal] = ask(client(fake), goal=goal).content[0].text

    threads = [threading.Thread(target=run, args=(g,)) for g in ("A-task", "B-task")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert results == {"A-task": "slow A", "B-task": "slow B"}
    a, b = fake.requests
    assert abs(a.received_at - b.received_at) < 0.25  # the 2nd arrived while the 1st was still delayed


def test_overloaded_then_success_is_retried_by_sdk(fake):
    fake.script([error(529, headers={"retry-after-ms": "0"}), text("ok after retry")])
    m = ask(client(fake, max_retries=2))
    assert m.content[0].text == "ok after retry"
    reqs = fake.wait_for_requests(2)
    assert len(reqs) == 2
    assert [r.status for r in reqs] == [529, 200]
    assert reqs[1].headers.get("x-stainless-retry-count") == "1"


def test_overloaded_error_shape(fake):
    fake.script([error(529)])
    with pytest.raises(anthropic.OverloadedError) as ei:
        ask(client(fake))
    e = ei.value
    assert e.status_code == 529
    assert e.body["type"] == "error"
    assert e.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert e.response.headers["request-id"].startswith("req_")
    assert e.request_id == e.response.headers["request-id"]


def test_authentication_error(fake):
    fake.script([error(401), text("never")])
    with pytest.raises(anthropic.AuthenticationError) as ei:
        ask(client(fake, max_retries=2))  # 401 is not retried
    assert ei.value.body["error"]["type"] == "authentication_error"
    assert len(fake.requests) == 1 and fake.requests[0].status == 401


@pytest.mark.parametrize("status,exc,type_", [
    (400, anthropic.BadRequestError, "invalid_request_error"),
    (403, anthropic.PermissionDeniedError, "permission_error"),
    (404, anthropic.NotFoundError, "not_found_error"),
    (500, anthropic.InternalServerError, "api_error"),
])
def test_default_error_types(fake, status, exc, type_):
    fake.script([error(status)])
    with pytest.raises(exc) as ei:
        ask(client(fake))
    assert ei.value.body["error"]["type"] == type_


def test_rate_limit_with_retry_after(fake):
    fake.script([error(429, headers={"retry-after": "0.05"}), text("after 429")])
    m = ask(client(fake, max_retries=1))
    assert m.content[0].text == "after 429"
    a, b = fake.wait_for_requests(2)
    assert a.status == 429 and b.status == 200
    assert b.received_at - a.received_at >= 0.04  # the SDK honoured retry-after

    fake.reset()
    fake.script([error(429, message="slow down", headers={"retry-after": "7"})])
    with pytest.raises(anthropic.RateLimitError) as ei:
        ask(client(fake, max_retries=0))
    assert ei.value.response.headers["retry-after"] == "7"
    assert ei.value.body["error"] == {"type": "rate_limit_error", "message": "slow down"}


def test_streaming_text(fake):
    sentence = "The quick brown fox jumps over the lazy dog and then keeps running far away."
    fake.script([text(sentence)])
    with client(fake).messages.stream(model=MODEL, max_tokens=1024,
                                      messages=[{"role": "user", "content": "hi"}]) as stream:
        chunks = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(chunks) >= 3
    assert "".join(chunks) == sentence
    assert final.content[0].text == sentence and final.stop_reason == "end_turn"
    assert final.usage.output_tokens >= 1 and final.usage.input_tokens > 0
    r = fake.requests[0]
    assert r.stream and r.body["stream"] is True


def test_streaming_tool_use_final_message(fake):
    fake.script([bash("echo hello world && ls -la /some/long/path", text="Running it now.")])
    with client(fake).messages.stream(model=MODEL, max_tokens=1024, tools=TOOLS,
                                      messages=[{"role": "user", "content": "hi"}]) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_message()
    assert events.count("input_json") > 1  # partial_json arrived in several chunks
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[0].text == "Running it now."
    assert final.content[1].input == {"command": "echo hello world && ls -la /some/long/path"}
    assert final.content[1].id.startswith("toolu_01")
    assert final.stop_reason == "tool_use"


WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}


def test_a_streamed_web_search_is_parsed_by_the_sdk_as_the_api_sends_it(fake):
    """server_tool_use (its input streamed as JSON), web_search_tool_result after the search's silence, and the
    answer with its citation (a citations_delta): the SDK builds the same message the API would answer."""
    fake.script([web_search("weather Atlanta today", "It's 75 and sunny in Atlanta.", before="Let me check.",
                            results=[("Atlanta weather", "https://weather.example/atl")], search_delay=0.3)])
    began = time.monotonic()
    with client(fake).messages.stream(model=MODEL, max_tokens=1024, tools=[WEB_SEARCH],
                                      messages=[{"role": "user", "content": "weather?"}]) as stream:
        events = [e for e in stream]
        final = stream.get_final_message()
    assert time.monotonic() - began >= 0.3
    assert "".join(e.text for e in events if e.type == "text") == "Let me check.It's 75 and sunny in Atlanta."
    assert [e.citation.url for e in events if e.type == "citation"] == ["https://weather.example/atl"]
    assert [b.type for b in final.content] == ["text", "server_tool_use", "web_search_tool_result", "text"]
    use, result, answer = final.content[1:]
    assert use.id.startswith("srvtoolu_01") and use.name == "web_search" and use.input == {
        "query": "weather Atlanta today"}
    assert result.tool_use_id == use.id
    assert [(r.title, r.url) for r in result.content] == [("Atlanta weather", "https://weather.example/atl")]
    assert result.content[0].encrypted_content
    (citation,) = answer.citations
    assert citation.type == "web_search_result_location" and citation.cited_text == answer.text
    assert citation.encrypted_index and citation.title == "Atlanta weather"
    assert final.usage.server_tool_use.web_search_requests == 1
    assert final.stop_reason == "end_turn"
    assert fake.requests[0].body["tools"] == [WEB_SEARCH]


def test_a_web_search_turn_can_pause_and_goes_unstreamed_too(fake):
    fake.script([web_search("python 3.14 release date", stop_reason="pause_turn"), text("October, sir.")])
    paused = ask(client(fake), tools=[WEB_SEARCH])
    assert paused.stop_reason == "pause_turn"
    assert [b.type for b in paused.content] == ["server_tool_use", "web_search_tool_result"]
    assert paused.content[1].tool_use_id == paused.content[0].id
    again = ask(client(fake), tools=[WEB_SEARCH])
    assert again.content[0].text == "October, sir."
    assert ask(client(fake), tools=[WEB_SEARCH]).content[0].text  # exhausted, still answers


def test_raw_stream_event_sequence(fake):
    fake.script([tool_use("bash", {"command": "ls"}, text="hi there")])
    stream = ask(client(fake), stream=True)
    types = [e.type for e in stream]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"]
    assert types.count("content_block_start") == 2 == types.count("content_block_stop")
    assert "content_block_delta" in types


def test_chunk_delay_streams_incrementally(fake):
    fake.script([text("one two three four five six seven eight nine ten", chunk_delay=0.1), text("next")])
    c = client(fake)
    t0 = time.monotonic()
    with c.messages.stream(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "x"}]) as s:
        first = next(iter(s.text_stream))
        t_first = time.monotonic() - t0
    # broke off mid-stream (a whole stream would take ~0.4 s); the fake must cope and keep serving
    assert first == "one two three " and t_first < 0.3
    assert time.monotonic() - t0 < 0.35
    assert ask(c).content[0].text == "next"


def test_wire_format_validates_strictly(fake):
    """The SDK parses leniently; validate the raw JSON against the SDK's pydantic types."""
    import json

    from pydantic import TypeAdapter

    from anthropic.types import Message, RawMessageStreamEvent

    turn = multi("hi there friend", bash("ls"), edit(command="view", path="/x"))
    fake.script([turn, turn, error(529)])
    body = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    with httpx.Client(base_url=fake.base_url) as h:
        r = h.post("/v1/messages", json=body)
        assert r.headers["content-type"] == "application/json"
        Message.model_validate(r.json())
        r = h.post("/v1/messages", json=dict(body, stream=True))
        assert r.headers["content-type"].startswith("text/event-stream")
        events = []
        for chunk in r.text.strip().split("\n\n"):
            ev, data = chunk.split("\n")
            assert ev.startswith("event: ") and data.startswith("data: ")
            payload = json.loads(data[6:])
            assert payload["type"] == ev[7:]
            if payload["type"] != "ping":
                events.append(TypeAdapter(RawMessageStreamEvent).validate_python(payload))
        assert events[0].type == "message_start" and events[-1].type == "message_stop"
        r = h.post("/v1/messages", json=body)
        assert r.status_code == 529
        err = r.json()
        assert err["type"] == "error" and err["request_id"] == r.headers["request-id"]


def test_prompt_caching_usage(fake):
    fake.script([repeat(text("ok"))])
    c = client(fake)
    system = [{"type": "text", "text": "You are TARS. " * 200, "cache_control": {"type": "ephemeral"}}]
    first = [{"role": "user", "content": [{"type": "text", "text": "task: " + "x" * 400,
                                           "cache_control": {"type": "ephemeral"}}]}]
    u1 = ask(c, system=system, tools=TOOLS, messages=first).usage
    assert u1.cache_read_input_tokens == 0 and u1.cache_creation_input_tokens > 0
    assert u1.cache_creation.ephemeral_5m_input_tokens == u1.cache_creation_input_tokens

    # second turn: breakpoint moves to the newest message; prefix up to the old one is read
    second = [
        {"role": "user", "content": [{"type": "text", "text": "task: " + "x" * 400}]},
        {"role": "assistant", "content": "sure"},
        {"role": "user", "content": [{"type": "text", "text": "more", "cache_control": {"type": "ephemeral"}}]},
    ]
    u2 = ask(c, system=system, tools=TOOLS, messages=second).usage
    assert u2.cache_read_input_tokens == u1.cache_creation_input_tokens
    assert 0 < u2.cache_creation_input_tokens < u2.cache_read_input_tokens

    # identical request: everything read from cache
    u3 = ask(c, system=system, tools=TOOLS, messages=second).usage
    assert u3.cache_creation_input_tokens == 0
    assert u3.cache_read_input_tokens == u2.cache_read_input_tokens + u2.cache_creation_input_tokens

    # different system prompt: cache miss
    other = [dict(system[0], text="Something else entirely. " * 100)]
    u4 = ask(c, system=other, tools=TOOLS, messages=second).usage
    assert u4.cache_read_input_tokens == 0 and u4.cache_creation_input_tokens > 0

    # no cache_control at all: plain input tokens
    u5 = ask(c, messages=[{"role": "user", "content": "hello"}]).usage
    assert u5.cache_read_input_tokens == 0 == u5.cache_creation_input_tokens and u5.input_tokens > 0


def test_prompt_caching_streaming_usage(fake):
    fake.script([repeat(text("cached reply here"))])
    c = client(fake)
    kw = dict(model=MODEL, max_tokens=100, system=[{"type": "text", "text": "S" * 2000,
                                                    "cache_control": {"type": "ephemeral"}}],
              messages=[{"role": "user", "content": "hi"}])
    with c.messages.stream(**kw) as s:
        u1 = s.get_final_message().usage
    with c.messages.stream(**kw) as s:
        u2 = s.get_final_message().usage
    assert u1.cache_creation_input_tokens > 0 and u1.cache_read_input_tokens == 0
    assert u2.cache_read_input_tokens == u1.cache_creation_input_tokens


def test_a_script_can_report_the_usage_it_is_given(fake):
    fake.script([text("planned"), text("again")], match="plan", usage={"input_tokens": 1000, "output_tokens": 200})
    fake.script([text("ok")])
    c = client(fake)
    system = [{"type": "text", "text": "S" * 2000, "cache_control": {"type": "ephemeral"}}]
    for _ in range(2):  # the same numbers every answer, cache or not
        u = ask(c, "plan it", system=system).usage
        assert (u.input_tokens, u.output_tokens, u.cache_creation_input_tokens, u.cache_read_input_tokens) == (
            1000, 200, 0, 0)
    assert ask(c, "other", system=system).usage.cache_read_input_tokens > 0  # other scripts: emulated as before


def test_callable_and_repeat_turns(fake):
    seen = []

    def per_request(body):
        seen.append(len(body["messages"]))
        return bash(f"echo {len(body['messages'])}")

    fake.script([per_request, repeat(lambda body: bash("loop")), text("unreachable")])
    c = client(fake)
    m = ask(c, messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                         {"role": "user", "content": "c"}])
    assert m.content[0].input == {"command": "echo 3"} and seen == [3]
    ids = set()
    for _ in range(5):
        m = ask(c)
        assert m.content[0].input == {"command": "loop"}
        ids.add(m.content[0].id)
    assert len(ids) == 5  # fresh tool_use id each time
    assert fake.remaining("default") == 2 and not fake.exhausted


def test_repeat_plain_turn(fake):
    fake.script([repeat(text("again"))])
    c = client(fake)
    assert [ask(c).content[0].text for _ in range(3)] == ["again"] * 3


def test_hang_causes_client_timeout(fake):
    fake.script([hang(5), text("after hang")])
    c = client(fake, max_retries=0, timeout=1)
    t0 = time.monotonic()
    with pytest.raises(anthropic.APITimeoutError):
        ask(c)
    assert 0.9 <= time.monotonic() - t0 < 3
    assert len(fake.requests) == 1
    # the next request gets the next turn
    assert ask(client(fake)).content[0].text == "after hang"


def test_hang_then_retry_succeeds(fake):
    fake.script([hang(5), text("second attempt")])
    c = client(fake, max_retries=1, timeout=0.5)
    assert ask(c).content[0].text == "second attempt"
    assert len(fake.requests) == 2


def test_delay(fake):
    fake.script([delay(0.3, text("late"))])
    t0 = time.monotonic()
    assert ask(client(fake)).content[0].text == "late"
    assert time.monotonic() - t0 >= 0.3


def test_exhausted_script(fake):
    fake.script([text("only one")], name="short")
    c = client(fake)
    assert ask(c).content[0].text == "only one"
    assert not fake.exhausted
    m = ask(c)
    assert m.content[0].text == EXHAUSTED_TEXT and m.stop_reason == "end_turn"
    assert fake.exhausted == {"short"}
    assert fake.requests[-1].script == "short"


def test_reset(fake):
    fake.script([text("a")])
    ask(client(fake))
    fake.reset()
    assert fake.requests == [] and fake.exhausted == set()
    fake.script([text("b")])
    assert ask(client(fake)).content[0].text == "b"


def test_health_404_and_count_tokens(fake):
    with httpx.Client(base_url=fake.base_url) as h:
        r = h.get("/health")
        assert r.status_code == 200
        r = h.get("/v1/nope")
        assert r.status_code == 404
        assert r.json()["type"] == "error" and r.json()["error"]["type"] == "not_found_error"
    assert [x.path for x in fake.requests] == ["/v1/nope"]  # /health is not recorded
    n = client(fake).messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hello " * 40}])
    assert n.input_tokens > 10


def test_keep_alive_many_requests_one_client(fake):
    fake.script([repeat(text("pong"))])
    c = client(fake)
    for i in range(20):
        if i % 2:
            with c.messages.stream(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "p"}]) as s:
                assert s.get_final_message().content[0].text == "pong"
        else:
            assert ask(c).content[0].text == "pong"
    assert len(fake.requests) == 20


def test_env_base_url(fake, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    fake.script([text("via env")])
    c = anthropic.Anthropic(api_key="test", max_retries=0)
    assert ask(c).content[0].text == "via env"


def test_reachable_from_another_process(fake):
    """The worker under test runs in a separate process and finds the fake via ANTHROPIC_BASE_URL."""
    import os
    import subprocess
    import sys

    fake.script([bash("whoami")], match="proc-goal", name="proc")
    code = (
        "import anthropic\n"
        "c = anthropic.Anthropic(api_key='k', max_retries=0)\n"
        "m = c.messages.create(model='claude-sonnet-4-6', max_tokens=10,"
        " messages=[{'role': 'user', 'content': 'proc-goal'}])\n"
        "print(m.content[0].input['command'])\n"
    )
    env = dict(os.environ, ANTHROPIC_BASE_URL=fake.base_url)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "whoami"
    assert fake.requests[0].script == "proc"
