"""Every sentence TARS speaks on the phone is worded in communication/spoken.py, and reads as it always did."""

from __future__ import annotations

import ast
from pathlib import Path

from communication import spoken

ROOT = Path(__file__).resolve().parent.parent.parent


def test_a_task_end_is_told_with_what_its_branch_holds():
    git = {"commits": 3, "files": 2, "tests_passed": True, "branch": "tars/a7f3c1"}
    assert spoken.ending_sentence("a7f3c1", "complete", "", git) == (
        "Task a7f3c1 is complete, sir. It made 3 commits on branch tars/a7f3c1, changing 2 files, "
        "and the tests pass.")
    assert spoken.ending_sentence("a7f3c1", "failed", "Boom.\nTraceback") == "Task a7f3c1 failed, sir: Boom."
    assert spoken.ending_sentence("a7f3c1", "cancelled", "") is None  # someone just did it: not announced
    assert spoken.spoken_changes({"commits": 0}) == "It changed no files."
    assert spoken.spoken_changes({"commits": 1, "files": 1, "mode": "shadow", "delivery": "Merged."}) == (
        "It made 1 commit in place, changing 1 file, with no tests to run. Merged.")


def test_a_code_request_says_the_command_and_the_gates_reason():
    assert spoken.confirmation_sentence("a7f3c1", "rm old.py", "`rm` deletes files") == (
        "Sir, the background programming task a7f3c1 needs your confirmation code. I need to run: rm old.py. "
        "The reason: rm deletes files. Please provide your confirmation code.")


def test_the_voice_modules_word_no_sentence_of_their_own():
    """No module-level sentence constant is left in the modules that speak: they import them from spoken.py."""
    for name in ("communication/twilio_media_streams.py", "communication/conversation.py", "sub_agents_tars.py"):
        tree = ast.parse((ROOT / name).read_text())
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                    and isinstance(node.value.value, str) and node.value.value.rstrip().endswith((".", "?", "!")):
                assert node.targets[0].id == "VOICE_SYSTEM_PROMPT", f"{name}: {node.targets[0].id} is spoken"


def test_a_model_taking_over_is_said_with_the_reason_not_the_fix():
    message = ("openai:gpt-5.1 took over from anthropic:claude-sonnet-5-5: The Anthropic API was overloaded (529, "
               "after 3 attempts): retry the task in a few minutes.")
    assert spoken.model_fallback_sentence("a7f3c2", message) == (
        "Sir, task a7f3c2 goes on with gpt-5.1 on OpenAI, because the Anthropic API was overloaded (529, after 3 "
        "attempts).")
    local = "ollama:qwen3-coder:30b took over from openai:gpt-5.1: OPENAI_API_KEY is not set, so openai:gpt-5.1 " \
            "cannot be used: add it to .env (see env.example) and restart, or take openai:gpt-5.1 off the model list."
    assert spoken.model_fallback_sentence("a7f3c2", local) == (
        "Sir, task a7f3c2 goes on with qwen3-coder:30b on Ollama, because OPENAI_API_KEY is not set, so openai:gpt-5.1 "
        "cannot be used.")
