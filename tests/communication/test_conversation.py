"""A long call stays fast and coherent: the model sees a bounded window that starts at a caller's turn; it is
offered the call's voice functions, and its calls of them are answered."""

from __future__ import annotations

import asyncio
from communication.conversation import HISTORY_SENT, WEB_SEARCH_TOOL, Conversation
from core.model import AnthropicModel, FallbackModel
from core.openai_model import OpenAIModel
from core.providers import ModelSpec
from sub_agents_tars import LOOKING_UP, VOICE_TOOLS, VoiceFunctions, voice_function
from tests.fakes.anthropic_api import error, repeat, text, tool_use, web_search
from tests.fakes.openai_api import text as oai_text
from tests.fakes.openai_api import tool_call as oai_tool_call


def test_the_model_sees_a_bounded_window_starting_at_a_callers_turn(settings):
    talk = Conversation(None, settings, functions=None)
    for i in range(60):
        talk.messages.append({"role": "user", "content": [{"type": "text", "text": f"question {i}"}]})
        talk.messages.append({"role": "assistant", "content": [{"type": "tool_use", "id": f"t{i}",
                                                                "name": "list_coding_tasks", "input": {}}]})
        talk.messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}",
                                                           "content": "none"}]})
        talk.messages.append({"role": "assistant", "content": [{"type": "text", "text": f"answer {i}"}]})
    window = talk._window()
    assert HISTORY_SENT <= len(window) < HISTORY_SENT + 4
    assert window[0]["content"][0]["type"] == "text" and window[0]["role"] == "user"
    assert window[-1]["content"][0]["text"] == "answer 59"
    window[0]["content"][0]["text"] = "changed"
    assert talk.messages[-len(window)]["content"][0]["text"] != "changed"  # a copy: the SDK cannot alter history


class WithClock(VoiceFunctions):
    @voice_function
    def tell_the_time(self, city: str) -> str:
        """Tell the time in a city.

        Args:
            city: the city named
        """
        return f"Noon in {city}."


def brain(*models) -> FallbackModel:
    return FallbackModel(list(models))


def test_the_model_is_offered_the_functions_tools_and_its_calls_are_dispatched(tasks, settings, fake_api):
    fake_api.script([tool_use("tell_the_time", {"city": "Oslo"}), text("It is noon.")], match="What time")
    claude = AnthropicModel(api_key="sk-test", model="claude-haiku-5-5", base_url=fake_api.base_url, max_retries=0)
    talk = Conversation(brain(claude), settings, functions=WithClock(tasks, settings))
    said = []

    async def say(token: str) -> None:
        said.append(token)

    asyncio.run(talk.reply("What time is it in Oslo?", say))
    tools = fake_api.message_requests[0].body["tools"]
    assert [t["name"] for t in tools] == [t["name"] for t in VOICE_TOOLS] + ["tell_the_time"]
    tool_id = talk.messages[1]["content"][0]["id"]
    assert talk.messages[2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": tool_id, "content": "Noon in Oslo."}]}
    assert talk.messages[-1] == {"role": "assistant", "content": [{"type": "text", "text": "It is noon."}]}
    assert "".join(said) == "It is noon."


def test_an_unavailable_voice_model_hands_the_same_turn_to_the_next_one(tasks, settings, fake_api, fake_openai):
    """Anthropic overloaded mid-call: the caller's question is answered by the next of VOICE_MODELS (an
    OpenAI-compatible one, streamed), with its tool call, and the call's history stays one conversation."""
    fake_api.script([repeat(error(529))], match="What time")
    fake_openai.script([oai_tool_call("tell_the_time", {"city": "Oslo"}), oai_text("It is noon in Oslo, sir.")],
                       match="What time")
    claude = AnthropicModel(api_key="sk-test", model="claude-haiku-5-5", base_url=fake_api.base_url, max_retries=0)
    other = OpenAIModel(ModelSpec("openai", "gpt-5.1-mini"), api_key="sk-test", base_url=fake_openai.base_url,
                        max_retries=0)
    talk = Conversation(brain(claude, other), settings, functions=WithClock(tasks, settings))
    said = []

    async def say(token: str) -> None:
        said.append(token)

    asyncio.run(talk.reply("What time is it in Oslo?", say))
    assert "".join(said) == "It is noon in Oslo, sir." and len(said) > 1  # streamed, word by word
    assert talk.brain.name == "openai:gpt-5.1-mini"
    assert len(fake_api.message_requests) == 1  # tried once; the second round went straight to the one serving
    second = fake_openai.requests[1].body["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "tool"]
    assert second[3]["content"] == "Noon in Oslo."
    assert talk.messages[-1] == {"role": "assistant", "content": [{"type": "text", "text": "It is noon in Oslo, sir."}]}


def test_a_searched_answer_cut_short_keeps_its_search_and_the_words_heard(tasks, settings, fake_api):
    """VOICE_WEB_SEARCH=on: the caller interrupts the answer; the history keeps the search's blocks as the API sent
    them (valid to send back) and only the words heard, without citations."""
    fake_api.script([web_search("weather Oslo", "It is 4 degrees and raining in Oslo, sir.")], match="Oslo")
    claude = AnthropicModel(api_key="sk-test", model="claude-haiku-5-5", base_url=fake_api.base_url, max_retries=0)
    talk = Conversation(brain(claude), settings.model_copy(update={"VOICE_WEB_SEARCH": True}),
                        functions=VoiceFunctions(tasks, settings))
    assert talk.tools()[-1] == WEB_SEARCH_TOOL and LOOKING_UP[True] in talk.system

    async def say(token: str) -> None:
        pass

    asyncio.run(talk.reply("What's the weather in Oslo?", say))
    talk.heard_only("It is 4 degrees")
    kept = talk.messages[-1]["content"]
    assert [b["type"] for b in kept] == ["server_tool_use", "web_search_tool_result", "text"]
    assert kept[1]["tool_use_id"] == kept[0]["id"] and kept[2] == {"type": "text", "text": "It is 4 degrees"}
    talk.last.final_index = len(talk.messages) - 1
    talk.heard_only("")  # nothing heard at all: the turn's answer goes, search and all
    assert talk.messages[-1]["role"] == "user"
