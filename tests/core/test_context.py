"""A long task's history is fitted to the serving model's window: older output goes first, the goal, the newest steps,
each file's latest state and the last failure stay, and what was cleared stays cleared (a stable prompt prefix)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from core.context import FIT_TO, KEEP_RECENT, Fitter, estimate

BIG = "x" * 6000


def model(window=32_768, name="ollama:qwen3-coder:30b"):
    return SimpleNamespace(context_window=window, max_tokens=4096, name=name)


def history(steps: int) -> list[dict]:
    """A task: the goal, then per step a bash call with a long output; step 3 views a.py, step 5 reports a failure."""
    messages = [{"role": "user", "content": [{"type": "text", "text": "Goal: a long task"}]}]
    for i in range(steps):
        if i == 3:
            use = {"type": "tool_use", "id": f"t{i}", "name": "str_replace_based_edit_tool",
                   "input": {"command": "view", "path": "a.py"}}
        else:
            use = {"type": "tool_use", "id": f"t{i}", "name": "bash", "input": {"command": f"step {i}"}}
        messages.append({"role": "assistant", "content": [use]})
        result = [{"type": "tool_result", "tool_use_id": f"t{i}", "content": f"output {i} " + BIG}]
        if i == 5:
            result.append({"type": "text", "text": "I ran `pytest` and it failed:\n\n" + BIG})
        messages.append({"role": "user", "content": result})
    return messages


def contents(messages):
    return [b.get("content", b.get("text")) for m in messages[1:] for b in m["content"] if b["type"] != "tool_use"]


def test_a_history_within_the_window_is_sent_as_it_is():
    messages = history(5)
    fitted, note = Fitter().fit([], [], messages, model())
    assert fitted is messages and note == ""


def test_a_long_history_loses_its_oldest_output_first_and_keeps_what_matters():
    messages = history(40)  # about 80k tokens of output against a 32k window
    before = json.dumps(messages)
    fitted, note = Fitter().fit([], [], messages, model())
    assert json.dumps(messages) == before  # the task's own history is untouched
    room = 32_768 - 4096 - estimate([]) * 2
    assert estimate(fitted) <= room * FIT_TO
    assert note.startswith("Cleared ") and "ollama:qwen3-coder:30b's 32,768-token context window" in note
    assert fitted[0] == messages[0]  # the goal
    assert fitted[-KEEP_RECENT:] == messages[-KEEP_RECENT:]  # the newest steps
    texts = contents(fitted)
    assert texts[0].startswith("[Cleared to fit the model's context window: 1 line of output.")
    # the latest view of a.py and the last failure are cleared last: still whole while older output is gone
    assert texts[3] == "output 3 " + BIG
    assert any(t.startswith("I ran `pytest` and it failed") for t in texts)
    # the structure stays valid for any provider: every call keeps its result, in place
    assert [len(m["content"]) for m in fitted] == [len(m["content"]) for m in messages]


def test_what_was_cleared_stays_cleared_so_the_prefix_is_stable_for_many_steps():
    fitter = Fitter()
    first, note = fitter.fit([], [], history(40), model())
    assert note
    second, again = fitter.fit([], [], history(42), model())  # two more steps: nothing new to clear yet
    assert again == ""
    assert second[:len(first) - KEEP_RECENT] == first[:len(first) - KEEP_RECENT]


def test_a_smaller_model_taking_over_clears_more_for_itself():
    fitter = Fitter()
    large, _ = fitter.fit([], [], history(40), model(200_000, "anthropic:claude-sonnet-5-5"))
    assert "Cleared" not in json.dumps(large)
    small, note = fitter.fit([], [], history(40), model(16_384))
    assert "16,384-token" in note and estimate(small) <= 16_384 - 4096  # it fits, the newest steps whole


def test_when_even_the_newest_output_is_too_big_it_is_cut_in_the_middle():
    messages = history(3)
    messages[-1]["content"][0]["content"] = "head " + "y" * 200_000 + " tail"
    fitted, _ = Fitter().fit([], [], messages, model())
    text = fitted[-1]["content"][0]["content"]
    assert text.startswith("head ") and text.endswith(" tail") and "characters cut to fit" in text
    assert estimate(fitted) <= 32_768 - 4096
