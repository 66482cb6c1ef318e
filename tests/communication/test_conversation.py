"""A long call stays fast and coherent: the model sees a bounded window that starts at a caller's turn; it is
offered the call's voice functions, and its calls of them are answered."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from communication.conversation import HISTORY_SENT, Conversation
from sub_agents_tars import VOICE_TOOLS, VoiceFunctions, voice_function


def test_the_model_sees_a_bounded_window_starting_at_a_callers_turn(settings):
    talk = Conversation(lambda: None, settings, functions=None)
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


class FakeStream:
    """One model round of client.messages.stream: no text deltas, then the final message."""

    def __init__(self, final: SimpleNamespace):
        self.final = final

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False

    def __aiter__(self):
        return self

    async def __anext__(self):
        raise StopAsyncIteration

    async def get_final_message(self):
        return self.final


def test_the_model_is_offered_the_functions_tools_and_its_calls_are_dispatched(tasks, settings):
    rounds = [SimpleNamespace(stop_reason="tool_use", content=[SimpleNamespace(
                  type="tool_use", id="t1", name="tell_the_time", input={"city": "Oslo"})]),
              SimpleNamespace(stop_reason="end_turn", content=[SimpleNamespace(type="text", text="It is noon.")])]
    requests = []

    def stream(**request):
        requests.append(request)
        return FakeStream(rounds[len(requests) - 1])

    client = SimpleNamespace(messages=SimpleNamespace(stream=stream))
    talk = Conversation(lambda: client, settings, functions=WithClock(tasks, settings))
    said = []

    async def say(token: str) -> None:
        said.append(token)

    asyncio.run(talk.reply("What time is it in Oslo?", say))
    assert [t["name"] for t in requests[0]["tools"]] == [t["name"] for t in VOICE_TOOLS] + ["tell_the_time"]
    assert talk.messages[2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": "Noon in Oslo."}]}
    assert talk.messages[-1] == {"role": "assistant", "content": [{"type": "text", "text": "It is noon."}]}
