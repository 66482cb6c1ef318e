"""An OpenAI-compatible model serves TARS as Claude does: the real openai SDK against a local Chat Completions server;
the history is converted both ways without losing anything, the tools keep their meaning, usage and cost are
counted, and its failures read as what happened and what to do."""

from __future__ import annotations

import asyncio
import json

import pytest

from core.exceptions import ModelError
from core.model import INVALID_ARGUMENTS, FallbackModel
from core.openai_model import OpenAIModel, to_chat_messages
from core.providers import ModelSpec, Price
from core.tools import BASH_TOOL, EDITOR_TOOL, BashInput, EditorInput
from tests.fakes.openai_api import bash, edit, error, multi, text, tool_call

pytestmark = pytest.mark.worker_story  # the wire format each openai SDK release must keep: in the drift check


def model(fake, name="gpt-5.1", provider="openai", **options) -> OpenAIModel:
    return OpenAIModel(ModelSpec(provider, name), api_key="sk-test", base_url=fake.base_url, max_retries=0,
                       timeout=10, **options)


SYSTEM = [{"type": "text", "text": "You are TARS.", "cache_control": {"type": "ephemeral"}}]


def test_a_tool_call_comes_back_as_a_tool_use_with_its_input_usage_and_cost(fake_openai):
    fake_openai.cached_tokens = 100
    fake_openai.script([multi("Creating it.", edit(command="create", path="calc.py", file_text="x = 1\n"))])
    turn = model(fake_openai, price=Price(1.25, 10.0, 0.1)).query(
        system=SYSTEM, tools=[BASH_TOOL, EDITOR_TOOL],
        messages=[{"role": "user", "content": [{"type": "text", "text": "Goal: a calculator"}]}])
    assert turn.stop_reason == "tool_use" and turn.model == "openai:gpt-5.1"
    assert turn.text == "Creating it."
    (use,) = turn.tool_uses
    assert use["name"] == "str_replace_based_edit_tool"
    assert use["input"] == {"command": "create", "path": "calc.py", "file_text": "x = 1\n"}
    request = fake_openai.requests[0]
    prompt = request.prompt_tokens
    assert turn.usage.input_tokens == prompt - 100 and turn.usage.cache_read_input_tokens == 100
    assert turn.usage.output_tokens > 0
    expected = ((prompt - 100) * 1.25 + 100 * 1.25 * 0.1 + turn.usage.output_tokens * 10.0) / 1_000_000
    assert turn.usage.cost_usd == pytest.approx(expected, abs=1e-6)
    # The built-in tools became function tools whose schemas are generated from core/tools.py's documented inputs.
    tools = {t["function"]["name"]: t["function"] for t in request.body["tools"]}
    assert set(tools) == {"bash", "str_replace_based_edit_tool"}
    assert set(tools["bash"]["parameters"]["properties"]) == {"command", "restart"}
    assert tools["str_replace_based_edit_tool"]["parameters"]["properties"]["command"]["enum"] == [
        "view", "create", "str_replace", "insert"]
    assert BashInput.__doc__.split(".")[0] in tools["bash"]["description"]
    assert "insert_text" in tools["str_replace_based_edit_tool"]["parameters"]["properties"]
    assert EditorInput.__dataclass_fields__.keys() == tools["str_replace_based_edit_tool"]["parameters"][
        "properties"].keys()
    assert request.body["messages"][0] == {"role": "system", "content": "You are TARS."}  # cache marks dropped
    assert request.body["max_completion_tokens"] > 0


def test_a_whole_task_history_converts_in_order_and_the_server_accepts_it(fake_openai):
    history = [
        {"role": "user", "content": [{"type": "text", "text": "Goal: fix the bug"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Looking."},
                                          {"type": "tool_use", "id": "toolu_01A", "name": "bash",
                                           "input": {"command": "ls"}},
                                          {"type": "tool_use", "id": "toolu_01B", "name": "bash",
                                           "input": {"command": "pytest"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": "calc.py"},
                                     {"type": "tool_result", "tool_use_id": "toolu_01B", "is_error": True,
                                      "content": [{"type": "text", "text": "1 failed"}]},
                                     {"type": "text", "text": "The owner says: hurry.",
                                      "cache_control": {"type": "ephemeral"}}]},
    ]
    fake_openai.script([text("Fixed.")])
    turn = model(fake_openai).query(system=SYSTEM, tools=[BASH_TOOL], messages=history)
    assert turn.text == "Fixed." and turn.stop_reason == "end_turn"
    assert fake_openai.invalid == []
    sent = fake_openai.requests[0].body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "tool", "user"]
    assert sent[2]["content"] == "Looking."
    assert [(c["id"], json.loads(c["function"]["arguments"])) for c in sent[2]["tool_calls"]] == [
        ("toolu_01A", {"command": "ls"}), ("toolu_01B", {"command": "pytest"})]
    assert sent[3] == {"role": "tool", "tool_call_id": "toolu_01A", "content": "calc.py"}
    assert sent[4] == {"role": "tool", "tool_call_id": "toolu_01B", "content": "Error: 1 failed"}
    assert sent[5] == {"role": "user", "content": "The owner says: hurry."}
    assert to_chat_messages(SYSTEM, history) == sent  # what was sent is the conversion, nothing else


def test_arguments_that_are_not_json_are_kept_for_the_loop_to_answer(fake_openai):
    fake_openai.script([tool_call("bash", '{"command": "ls"')])
    (use,) = model(fake_openai).query(system=SYSTEM, tools=[BASH_TOOL], messages=[
        {"role": "user", "content": "Goal: x"}]).tool_uses
    assert use["input"] == {INVALID_ARGUMENTS: '{"command": "ls"'}


def test_tool_ids_the_anthropic_api_would_refuse_are_made_safe(fake_openai):
    fake_openai.script([multi(tool_call("bash", {"command": "ls"}, id="call:1/a"),
                              tool_call("bash", {"command": "pwd"}, id="call:1/a"))])
    uses = model(fake_openai).query(system=SYSTEM, tools=[BASH_TOOL], messages=[
        {"role": "user", "content": "Goal: x"}]).tool_uses
    assert [u["id"] for u in uses] == ["call_1_a", "call_1_a_2"]


def test_a_stream_sends_each_text_piece_and_puts_tool_calls_together(fake_openai):
    fake_openai.script([multi("Starting it now, sir.", tool_call("start_autonomous_coding",
                                                                   {"goal": "Build a calculator app with tests",
                                                                    "project_path": "calculator"}))])
    pieces: list[str] = []

    async def heard(piece: str) -> None:
        pieces.append(piece)

    tool = {"name": "start_autonomous_coding", "description": "Start a task.",
            "input_schema": {"type": "object", "properties": {"goal": {"type": "string"}}}}
    turn = asyncio.run(model(fake_openai, price=Price(1.0, 2.0)).stream(
        system="You are TARS on the phone.", tools=[tool], messages=[{"role": "user", "content": "build it"}],
        max_tokens=1024, on_text=heard))
    assert len(pieces) > 1 and "".join(pieces) == "Starting it now, sir."
    assert turn.tool_uses[0]["input"] == {"goal": "Build a calculator app with tests", "project_path": "calculator"}
    assert turn.stop_reason == "tool_use" and turn.usage.output_tokens > 0 and turn.usage.cost_usd > 0
    body = fake_openai.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["tools"][0]["function"]["parameters"] == tool["input_schema"]


@pytest.mark.parametrize("status,fallback,transient,said", [
    (404, True, False, "The model 'gpt-5.1' was not found at OpenAI (404"),
    (401, True, False, "set a valid OPENAI_API_KEY"),
    (429, True, True, "The OpenAI API kept rate limiting the task (429"),
    (503, True, True, "The OpenAI API failed with a server error (503"),
    (400, False, False, "The OpenAI API refused the request (400"),
])
def test_each_failure_says_what_happened_and_whether_another_model_may_serve(fake_openai, status, fallback,
                                                                             transient, said):
    fake_openai.script([error(status)])
    with pytest.raises(ModelError) as failed:
        model(fake_openai).query(system=SYSTEM, tools=[], messages=[{"role": "user", "content": "hi"}])
    assert said in str(failed.value)
    assert (failed.value.fallback, failed.value.transient) == (fallback, transient)


def test_a_local_server_that_is_not_running_is_named_with_the_fix():
    local = OpenAIModel(ModelSpec("ollama", "qwen3-coder:30b"), api_key=None, base_url="http://127.0.0.1:9/v1",
                        max_retries=0, timeout=5)
    with pytest.raises(ModelError) as failed:
        local.query(system=SYSTEM, tools=[], messages=[{"role": "user", "content": "hi"}])
    assert str(failed.value) == ("The Ollama API could not be reached at http://127.0.0.1:9/v1 (after 1 attempt): "
                                 "start the Ollama server, or fix OLLAMA_BASE_URL.")
    assert failed.value.fallback and failed.value.transient


def test_a_chain_of_one_openai_model_answers_as_the_model_itself(fake_openai):
    fake_openai.script([bash("ls")])
    chain = FallbackModel([model(fake_openai, "qwen3-coder:30b", provider="ollama")])
    turn = chain.query(system=SYSTEM, tools=[BASH_TOOL], messages=[{"role": "user", "content": "Goal: x"}])
    assert turn.model == chain.name == "ollama:qwen3-coder:30b" and turn.fallbacks == []
    assert turn.usage.cost_usd == 0.0 and turn.usage.unpriced_turns == 1  # no price given: unknown, not free


WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}


def test_a_server_tool_and_its_blocks_never_reach_an_openai_compatible_model(fake_openai):
    """A voice call's history after a web search (Anthropic ran it) goes to a model that took over: it is not
    offered the search, and sees the answer's words without the search's blocks."""
    fake_openai.script([text("Still 75, sir.")])
    searched = [{"type": "text", "text": "Let me check."},
                {"type": "server_tool_use", "id": "srvtoolu_01A", "name": "web_search",
                 "input": {"query": "weather Atlanta"}},
                {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01A", "content": [
                    {"type": "web_search_result", "title": "Atlanta weather", "url": "https://weather.example/atl",
                     "encrypted_content": "Ev0D"}]},
                {"type": "text", "text": "It's 75 and sunny in Atlanta."}]
    history = [{"role": "user", "content": [{"type": "text", "text": "weather in Atlanta?"}]},
               {"role": "assistant", "content": searched},
               {"role": "user", "content": [{"type": "text", "text": "and now?"}]}]
    tool = {"name": "check_coding_progress", "description": "How a task goes.",
            "input_schema": {"type": "object", "properties": {}}}

    async def heard(piece: str) -> None:
        pass

    turn = asyncio.run(model(fake_openai).stream(system="You are TARS.", tools=[tool, WEB_SEARCH], messages=history,
                                                 max_tokens=100, on_text=heard))
    assert turn.text == "Still 75, sir."
    body = fake_openai.requests[0].body
    assert [t["function"]["name"] for t in body["tools"]] == ["check_coding_progress"]
    assert body["messages"][2] == {"role": "assistant", "content": "Let me check.\nIt's 75 and sunny in Atlanta."}
    assert "srvtoolu" not in json.dumps(body) and "web_search" not in json.dumps(body)
    fake_openai.script([text("Hello.")])
    asyncio.run(model(fake_openai).stream(system="You are TARS.", tools=[WEB_SEARCH], messages=history[:1],
                                          max_tokens=100, on_text=heard))
    assert "tools" not in fake_openai.requests[1].body  # nothing left to offer
