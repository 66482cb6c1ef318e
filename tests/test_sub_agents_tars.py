"""What the voice brain hears back when it calls the programming functions: sentences, never tracebacks."""

from __future__ import annotations

import re

import pytest

from sub_agents_tars import VOICE_TOOLS, VoiceFunctions, match_project, spoken_digits, spoken_task_id


@pytest.fixture
def voice(tasks, settings):
    return VoiceFunctions(tasks, settings, session_id="CA123")


def started_id(answer: str) -> str:
    return re.search(r"task ([0-9a-f]{6})", answer).group(1)


def test_start_check_and_cancel_are_spoken_sentences(voice, tasks, projects):
    (projects / "calculator").mkdir()
    started = voice.call("start_autonomous_coding", {"goal": "Build a calculator with tests",
                                                     "project_path": "my calculator project",
                                                     "verbose_updates": False})
    task_id = started_id(started)
    assert started == (f"Started task {task_id} in your calculator project in background, sir. "
                       f"I'll send updates to Discord.")
    status = tasks.status(task_id)
    assert status.verbose_updates is False and status.session_id == "CA123"
    assert status.project_path == str(projects / "calculator")
    assert voice.call("check_coding_progress", {}) == f"Task {task_id} is waiting for a worker."
    assert voice.call("cancel_coding_task", {"task_id": task_id}) == f"Task {task_id} was cancelled."
    assert voice.call("list_coding_tasks", {}) == f"Task {task_id} was cancelled."


def test_project_names_are_matched_asked_about_or_offered(voice, projects, tasks):
    for name in ("calculator-app", "weather-bot", "weather-station"):
        (projects / name).mkdir()
    assert match_project(projects, "calculator").path == "calculator-app"
    assert match_project(projects, "the Calculator App").path == "calculator-app"
    assert match_project(projects, "calculater app").path == "calculator-app"  # misheard
    assert "weather-bot or weather-station" in voice.call("start_autonomous_coding",
                                                          {"goal": "x", "project_path": "weather"})
    offered = voice.call("start_autonomous_coding", {"goal": "Make a game", "project_path": "snake game"})
    assert offered == "I don't see a project called snake game. Shall I create it?"
    assert tasks.list() == []  # nothing started while asking
    created = voice.call("start_autonomous_coding", {"goal": "Make a game", "project_path": "snake game",
                                                     "create_new_project": True})
    assert "in a new snake-game project" in created
    assert (projects / "snake-game").is_dir()


def test_spoken_codes_become_digits():
    assert spoken_digits("six two eight three") == "6283"
    assert spoken_digits("6 2 8 3") == "6283"
    assert spoken_digits("Six-two, eight three.") == "6283"
    assert spoken_digits("double four one oh") == "4410"
    assert spoken_digits("6283#") == "6283"


def test_task_ids_are_read_from_typed_spoken_or_nato_forms():
    assert spoken_task_id("a seven f three") == "a7f3"
    assert spoken_task_id("alpha 7 foxtrot 3") == "a7f3"
    assert spoken_task_id("#A7F3") == "a7f3"
    # typed ids keep letters that are also words ("be", "ee", "ad"): CI once turned 403be0 into 403b0
    assert spoken_task_id("403be0") == "403be0"
    assert spoken_task_id("task ee12c4") == "ee12c4"
    assert spoken_task_id("b e e 1") == "bee1"
    assert spoken_task_id("be 1") == "b1"
    for n in range(4096):  # 4096 ids spread over the 6-hex-digit space read back typed, spelled out, or cut to 4
        task_id = f"{n * 2654435761 % 16**6:06x}"
        assert spoken_task_id(task_id) == spoken_task_id(" ".join(task_id)) == task_id
        assert spoken_task_id(task_id[:4]) == task_id[:4]


def test_partial_or_misheard_task_ids_find_the_callers_task(voice, tasks):
    first = started_id(voice.call("start_autonomous_coding", {"goal": "One"}))
    assert spoken_task_id(" ".join(first)) == first
    assert voice.call("check_coding_progress", {"task_id": first[:4]}).startswith(f"Task {first} ")
    slip = first[:-1] + ("0" if first[-1] != "0" else "1")
    assert voice.call("check_coding_progress", {"task_id": slip}).startswith(f"Task {first} ")
    nato = " ".join({"a": "alpha", "b": "bravo", "c": "charlie", "d": "delta", "e": "echo", "f": "foxtrot"}.get(c, c)
                    for c in first)
    assert voice.call("check_coding_progress", {"task_id": nato}).startswith(f"Task {first} ")


def test_bad_requests_are_answered_in_words(voice):
    assert voice.call("check_coding_progress", {}) == "There are no tasks yet."
    assert voice.call("start_autonomous_coding", {"goal": "   "}) == \
        "The goal is empty: say what the task should build or fix."
    assert "outside the projects folder" in voice.call("start_autonomous_coding", {"goal": "x",
                                                                                   "project_path": "/etc"})
    assert voice.call("check_coding_progress", {"task_id": "abc123"}) == "There is no task abc123."
    assert voice.call("cancel_coding_task", {"task_id": "abc123"}) == "There is no task abc123."
    assert voice.call("submit_background_confirmation", {"task_id": "abc123", "confirmation_code": "1"}) == \
        "There is no task abc123."
    assert voice.call("list_coding_tasks", {}) == "There are no tasks yet."
    assert voice.call("make_coffee", {}) == "I don't have a function called make_coffee."


def test_the_tools_keep_the_original_names_and_parameters():
    tools = {t["name"]: t["input_schema"] for t in VOICE_TOOLS}
    assert set(tools) == {"start_autonomous_coding", "check_coding_progress", "cancel_coding_task",
                          "submit_background_confirmation", "list_coding_tasks",
                          "rollback_coding_task", "merge_coding_task", "discard_coding_task"}  # issue 6
    assert {"goal", "project_path", "verbose_updates"} <= set(tools["start_autonomous_coding"]["properties"])
    assert tools["submit_background_confirmation"]["required"] == ["confirmation_code"]
    assert tools["cancel_coding_task"]["required"] == ["task_id"]
