"""A long call stays fast and coherent: the model sees a bounded window that starts at a caller's turn."""

from __future__ import annotations

from communication.conversation import HISTORY_SENT, Conversation


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
