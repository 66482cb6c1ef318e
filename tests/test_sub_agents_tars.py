"""What the voice brain hears back when it calls the programming functions: sentences, never tracebacks."""

from __future__ import annotations

import inspect
import re
from typing import Annotated, Literal, get_args, get_origin, get_type_hints

import pytest

from core import schedules
from core.confirmations import spoken_digits
from core.task_manager import TaskManager
from sub_agents_tars import (
    VOICE_SYSTEM_PROMPT,
    VOICE_TOOLS,
    Schema,
    VoiceFunctions,
    match_project,
    spoken_task_id,
    voice_function,
)
from tests.core.test_plan_jobs import script_small_plan
from tests.fakes.anthropic_api import bash, text
from tests.test_task_branches import owner_repo
from tests.waiting import wait_until


@pytest.fixture
def voice(tasks, settings):
    return VoiceFunctions(tasks, settings, call_sid="CA123")


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
    assert status.verbose_updates is False and status.call_sid == "CA123"
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
                          "rollback_coding_task", "merge_coding_task", "discard_coding_task",  # issue 6
                          "report_on_tasks", "pause_work", "resume_work",  # issue 17
                          "push_coding_task"}  # issue 19
    assert {"goal", "project_path", "verbose_updates", "plan"} <= set(tools["start_autonomous_coding"]["properties"])
    assert tools["submit_background_confirmation"]["required"] == ["confirmation_code"]
    assert tools["cancel_coding_task"]["required"] == ["task_id"]



# --- the tools are the typed, documented methods --------------------------------------------------------------
JSON_TYPES = {str: "string", int: "integer", bool: "boolean"}


def test_every_voice_method_is_a_tool_whose_schema_is_its_signature():
    table = VoiceFunctions.table()
    assert [t["name"] for t in VOICE_TOOLS] == list(table)
    for name, method in table.items():
        tool = method.voice_tool
        assert set(tool) == {"name", "description", "input_schema"} and tool["name"] == name
        assert tool["description"] == " ".join(inspect.getdoc(method).split("\n\n")[0].split())
        params = list(inspect.signature(method).parameters.values())[1:]
        schema = tool["input_schema"]
        assert schema["type"] == "object" and list(schema["properties"]) == [p.name for p in params], name
        assert schema.get("required", []) == [p.name for p in params if p.default is p.empty], name
        hints = get_type_hints(method)  # without Annotated
        for param in params:
            prop = schema["properties"][param.name]
            types = [t for t in get_args(hints[param.name]) or [hints[param.name]] if t is not type(None)]
            if get_origin(types[0]) is Literal:  # an enum: its values, of their type
                assert prop["enum"] == list(get_args(types[0])), name
                types = [type(prop["enum"][0])]
            assert len(types) == 1 and prop["type"] == JSON_TYPES[types[0]], name
            assert prop["description"] and prop["description"] in " ".join(inspect.getdoc(method).split()), name


def test_the_tools_keep_the_guidance_of_the_hand_written_schemas():
    """What the model was told before the schemas were generated: the same bounds, and these descriptions."""
    tools = {t["name"]: t for t in VOICE_TOOLS}
    assert tools["list_coding_tasks"]["input_schema"]["properties"]["limit"] == {
        "type": "integer", "minimum": 1, "maximum": 10, "description": "how many tasks to tell, newest first"}
    assert tools["rollback_coding_task"]["input_schema"]["properties"]["checkpoint"] == {
        "type": "integer", "minimum": 0, "description": "the checkpoint number to go back to"}
    assert tools["start_autonomous_coding"]["input_schema"]["required"] == ["goal"]
    assert tools["discard_coding_task"]["description"] == (
        "Throw an ended task's work away (its checkout and branch). Call first without confirmed; call with "
        "confirmed=true only after the owner said yes to the question it returns.")
    for name in ("check_coding_progress", "list_coding_tasks", "rollback_coding_task", "merge_coding_task",
                 "discard_coding_task", "push_coding_task"):
        assert "required" not in tools[name]["input_schema"], name


class WithWeather(VoiceFunctions):
    @voice_function
    def tell_the_weather(self, city: str, units: Literal["celsius", "fahrenheit"] = "celsius",
                         days: Annotated[int, Schema(minimum=1)] | None = None, windy: bool = False) -> str:
        """Tell the weather of a city.

        Args:
            city: the city named
            units: how to say temperatures
            days: how many days ahead; omit for today
                only, which is the default
            windy: whether to mention the wind
        """
        return f"{city}: {units}, {days} days, windy {windy}."


def test_one_documented_typed_method_is_a_new_tool(tasks, settings):
    tools = {t["name"]: t for t in WithWeather.tools()}
    assert set(tools) == {t["name"] for t in VOICE_TOOLS} | {"tell_the_weather"}
    assert "tell_the_weather" not in VoiceFunctions.table()
    assert tools["tell_the_weather"] == {
        "name": "tell_the_weather", "description": "Tell the weather of a city.",
        "input_schema": {"type": "object", "required": ["city"], "properties": {
            "city": {"type": "string", "description": "the city named"},
            "units": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "how to say temperatures"},
            "days": {"type": "integer", "minimum": 1,
                     "description": "how many days ahead; omit for today only, which is the default"},
            "windy": {"type": "boolean", "description": "whether to mention the wind"}}}}
    voice = WithWeather(tasks, settings)
    assert voice.call("tell_the_weather", {"city": "Oslo"}) == "Oslo: celsius, None days, windy False."
    assert voice.call("tell_the_weather", {"city": "Oslo", "units": "fahrenheit", "days": "3", "windy": "yes"}) == \
        "Oslo: fahrenheit, 3 days, windy True."
    assert voice.call("tell_the_weather", {"city": "Oslo", "units": "kelvin"}) == \
        "units must be one of celsius, fahrenheit, not kelvin."
    assert voice.call("check_coding_progress", {}) == "There are no tasks yet."  # the inherited tools still work


def no_docstring(self, city: str) -> str: ...


def untyped(self, city) -> str:
    """Weather.

    Args:
        city: the city
    """


def undescribed(self, city: str) -> str:
    """Weather."""


def described_but_absent(self) -> str:
    """Weather.

    Args:
        city: the city
    """


def a_list(self, cities: list) -> str:
    """Weather.

    Args:
        cities: the cities
    """


def none_without_default(self, city: str | None) -> str:
    """Weather.

    Args:
        city: the city
    """


def keywords(self, **more: str) -> str:
    """Weather.

    Args:
        more: more
    """


def mute(self):
    """Weather."""


@pytest.mark.parametrize("method,error", [
    (no_docstring, "has no docstring"), (untyped, "parameter city needs a type hint"),
    (undescribed, "parameter city is not described under Args:"),
    (described_but_absent, "Args: describes city, not in its signature"), (a_list, "has no JSON Schema here"),
    (none_without_default, "may be None, so give it a default"), (keywords, "needs a type hint (and no * or **)"),
    (mute, "must return str")])
def test_a_voice_function_the_schema_cannot_describe_fails_when_defined(method, error):
    with pytest.raises(TypeError, match=re.escape(error)):
        voice_function(method)  # what @voice_function does when the class body runs, at import


def test_bad_arguments_from_the_model_are_answered_in_words(voice, caplog):
    assert voice.call("cancel_coding_task", {}) == "cancel_coding_task needs task_id."
    assert voice.call("start_autonomous_coding", {"goal": None}) == "start_autonomous_coding needs goal."
    assert voice.call("submit_background_confirmation", {"task_id": "abc123"}) == \
        "submit_background_confirmation needs confirmation_code."
    assert voice.call("rollback_coding_task", {"checkpoint": "two"}) == "checkpoint must be a whole number, not 'two'."
    assert voice.call("list_coding_tasks", {"limit": 2.5}) == "limit must be a whole number, not 2.5."
    assert voice.call("check_coding_progress", {"task_id": ["abc"]}) == "task_id must be text, not ['abc']."
    assert voice.call("check_coding_progress", {"task_id": 123456}) == "There is no task 123456."  # a number is text
    assert voice.call("list_coding_tasks", {"limit": "3", "sort": "newest"}) == "There are no tasks yet."
    assert "list_coding_tasks ignores arguments it does not take: sort" in caplog.text
    assert voice.call("list_coding_tasks", None) == "There are no tasks yet."
    assert voice.call("table", {}) == "I don't have a function called table."  # only marked methods are tools


# --- planned tasks (issue 16): "plan it out first" ------------------------------------------------------------------
@pytest.fixture
def planning_voice(tasks, settings):
    """The voice of a TARS that plans when asked (PLAN_GOALS=ask)."""
    ask = settings.model_copy(update={"PLAN_GOALS": "ask"})
    return VoiceFunctions(TaskManager(tasks.redis, ask), ask, call_sid="CA123")


@pytest.mark.usefixtures("private_git")
def test_a_goal_planned_out_first_is_told_by_its_summary_and_its_subtasks_name_their_plan(
        planning_voice, tasks, fake_api, start_worker, projects, tmp_path):
    owner_repo(projects / "todo", {"README.md": "# todo\n"})
    gate = tmp_path / "store-may-finish"
    script_small_plan(fake_api, hold=gate)

    answer = planning_voice.call("start_autonomous_coding", {"goal": "Build a todo app with a store and an API",
                                                             "project_path": "todo", "plan": True})
    parent = started_id(answer)
    assert answer == (f"Started task {parent} in your todo project in background, sir. I'll plan it out first and "
                      f"tell you the plan before work starts; updates go to Discord.")
    worker = start_worker()

    said = wait_until(lambda: "1 running" in (s := planning_voice.call("check_coding_progress", {"task_id": parent}))
                      and s, 120, "the store subtask to run")
    assert said == f"Task {parent} is running: 0 of 2 subtasks done, 1 running, 1 waiting on store."
    store = {row["key"]: row for row in tasks.status(parent).plan}["store"]["task_id"]
    about_store = planning_voice.call("check_coding_progress", {"task_id": store})
    assert about_store.startswith(f"Task {store}, part store of task {parent}, is running")
    gate.touch()
    done = wait_until(lambda: not (s := tasks.status(parent)).active and s, 180, "the plan to end")
    worker.stop()
    assert done.status == "complete", (done.reason, worker.log[-3000:])
    assert planning_voice.call("check_coding_progress", {"task_id": parent}).startswith(f"Task {parent} is complete")


def test_the_phone_model_is_told_how_to_ask_for_a_plan():
    tool = {t["name"]: t for t in VOICE_TOOLS}["start_autonomous_coding"]
    assert tool["input_schema"]["properties"]["plan"]["type"] == "boolean"
    assert "plan it out first" in tool["input_schema"]["properties"]["plan"]["description"]
    assert "plan=true" in VOICE_SYSTEM_PROMPT and "plan it out first" in VOICE_SYSTEM_PROMPT


def test_a_plan_asked_for_while_plans_are_off_runs_as_one_task_and_the_owner_hears_why(voice, tasks, projects):
    (projects / "todo").mkdir()
    answer = voice.call("start_autonomous_coding", {"goal": "Build a todo app", "project_path": "todo",
                                                    "plan": True})
    task_id = started_id(answer)
    assert answer == (f"Started task {task_id} in your todo project in background as one task, sir: planned tasks "
                      f"are off, PLAN_GOALS is never. I'll send updates to Discord.")
    assert [e.type for e in tasks.events(task_id)] == ["queued", "plan_fallback"]


# --- priorities and schedules (issue 17): "it's urgent", "tonight at two" --------------------------------------------
def test_an_urgent_task_starts_at_high_priority_and_one_for_tonight_is_scheduled(voice, tasks, projects):
    urgent = voice.call("start_autonomous_coding", {"goal": "Fix the login page", "priority": "high"})
    urgent_id = started_id(urgent)
    assert urgent == (f"Started task {urgent_id} in background at high priority, sir. "
                      f"I'll send updates to Discord.")
    assert tasks.status(urgent_id).priority == "high"
    assert tasks.redis.lrange("rq:queue:tars_programming:high", 0, -1) == [urgent_id.encode()]

    tonight = voice.call("start_autonomous_coding", {"goal": "Run the slow migration", "start_at": "02:00",
                                                     "priority": "low"})
    tonight_id = started_id(tonight)
    when = schedules.when_text(schedules.parse_at("02:00"))  # today's 02:00 once it is past midnight, else tomorrow's
    assert tonight == (f"Scheduled task {tonight_id} to start {when} at low priority, sir. "
                       f"I'll send updates to Discord.")
    assert voice.call("check_coding_progress", {"task_id": tonight_id}) == \
        f"Task {tonight_id} is scheduled to start {when}."
    assert tasks.status(tonight_id).scheduled_for == schedules.parse_at("02:00").isoformat()

    soon = started_id(voice.call("start_autonomous_coding", {"goal": "Tidy up", "start_in": "2h"}))
    assert tasks.status(soon).status == "scheduled" and tasks.status(soon).priority == "normal"
    assert voice.call("cancel_coding_task", {"task_id": soon}) == f"Task {soon} was cancelled."


def test_a_start_time_the_model_got_wrong_is_answered_with_the_rule(voice, tasks):
    assert voice.call("start_autonomous_coding", {"goal": "x", "start_at": "tonight at two"}) == (
        "The start time 'tonight at two' is not a time: give HH:MM on the 24-hour clock (02:00: the next such local "
        "time) or an ISO date-time (2025-06-01T02:00, local unless it names its zone).")
    assert voice.call("start_autonomous_coding", {"goal": "x", "start_at": "2020-01-01T09:00"}) == (
        "The start time 2020-01-01T09:00 (on 1 Jan 2020 at 09:00) is in the past: give a time still to come.")
    assert voice.call("start_autonomous_coding", {"goal": "x", "start_in": "a while"}).startswith(
        "The delay 'a while' is not a delay: give a number and a unit: 90s, 30m, 2h, 1h30m")
    assert voice.call("start_autonomous_coding", {"goal": "x", "start_at": "02:00", "start_in": "2h"}) == \
        "Give a start time or a delay, not both."
    assert voice.call("start_autonomous_coding", {"goal": "x", "priority": "urgent"}) == \
        "priority must be one of high, normal, low, not urgent."
    assert tasks.list() == []  # nothing started


def test_the_phone_model_is_told_how_to_say_urgent_and_when():
    properties = {t["name"]: t for t in VOICE_TOOLS}["start_autonomous_coding"]["input_schema"]["properties"]
    assert properties["priority"]["enum"] == ["high", "normal", "low"]
    assert "it's urgent" in properties["priority"]["description"]
    assert "whenever you have time" in properties["priority"]["description"]
    assert "'tonight at two' -> '02:00'" in properties["start_at"]["description"]
    assert "'in two hours' -> '2h'" in properties["start_in"]["description"]
    assert "start_at or start_in" in VOICE_SYSTEM_PROMPT
# --- pause and resume by phone (core/pause.py) --------------------------------------------------------------------
def test_the_owner_pauses_and_resumes_all_the_work_and_one_task_by_phone(voice, tasks, fake_api, start_worker,
                                                                          tmp_path, projects):
    from tests.core.test_pause import running_its_gate

    gate = tmp_path / "gate"
    fake_api.script([bash(f"until test -e {gate}; do sleep 0.05; done"), text("Done waiting.")])
    (projects / "gated").mkdir()
    task_id = started_id(voice.call("start_autonomous_coding", {"goal": "Wait at the gate", "project_path": "gated"}))
    assert voice.call("pause_work", {"task_id": task_id}) == (
        f"Task {task_id} has not started yet, so it cannot be paused on its own: cancel it, or pause every worker "
        f"(python main_tars.py workers pause) to keep it from starting.")
    worker = start_worker()
    running_its_gate(gate)

    assert voice.call("pause_work", {}) == ("All work is paused, sir: no new task starts, and running tasks stop at "
                                            "their next step until you say resume.")
    assert voice.call("pause_work", {"task_id": None}) == "All work was already paused, sir."
    assert voice.call("check_coding_progress", {}) == f"Task {task_id} is paused with all the work."
    assert voice.call("resume_work", {}) == "Work resumes, sir: queued tasks start and paused ones go on."
    assert voice.call("resume_work", {}) == "Work was not paused, sir."

    spoken_id = " ".join(task_id)  # "a 7 f 3 c 1", as heard
    assert voice.call("pause_work", {"task_id": spoken_id}) == \
        f"Task {task_id} pauses at its next step, sir, until you say resume."
    assert voice.call("check_coding_progress", {"task_id": task_id}) == f"Task {task_id} is paused on its own."
    voice.call("pause_work", {})
    assert voice.call("resume_work", {"task_id": task_id}) == \
        f"Task {task_id} is no longer paused on its own, sir, but all the work still is."
    assert voice.call("resume_work", {"task_id": task_id}) == (
        f"Task {task_id} is not paused on its own: every worker is paused. Resume them with: python main_tars.py "
        f"workers resume")
    voice.call("resume_work", {})
    gate.touch()
    assert wait_until(lambda: tasks.status(task_id).status == "complete", 90, "the task complete"), worker.log
    assert voice.call("pause_work", {"task_id": task_id}) == (f"Task {task_id} has already ended (complete), so "
                                                              f"there is nothing to pause.")
