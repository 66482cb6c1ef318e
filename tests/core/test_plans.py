"""The plan itself: the plan_subtasks tool the planner is offered, the checks a plan must pass, the one re-ask, and the
one-line summary every surface shows."""

from __future__ import annotations

import dataclasses

import pytest

from core import plans
from core.exceptions import InvalidPlan, ModelError
from core.model import FallbackModel, ScriptedModel, Usage, text_turn, tool_turn
from core.model_roles import UnusableModel
from core.providers import ModelSpec


def sub(key, depends_on=(), goal=None, **more):
    return {"key": key, "title": key.title(), "goal": goal or f"build the {key}", "depends_on": list(depends_on),
            **more}


def test_the_tool_is_plan_subtasks_with_the_documented_subtask_fields():
    tool = plans.plan_tool(5)
    assert tool["name"] == "plan_subtasks"
    items = tool["input_schema"]["properties"]["subtasks"]
    assert items["maxItems"] == 5
    fields = items["items"]["properties"]
    assert list(fields) == ["key", "title", "goal", "depends_on", "capability"]
    assert fields["depends_on"] == {"type": "array", "items": {"type": "string"},
                                    "description": fields["depends_on"]["description"]}
    assert items["items"]["required"] == ["key", "title", "goal"]
    assert all(f["description"] for f in fields.values())  # from the Subtask docstring


def test_a_valid_plan_comes_back_in_dependency_order():
    ordered = plans.validate({"subtasks": [sub("api", ["store"]), sub("cli", ["store"]), sub("store")]}, 8)
    assert [s.key for s in ordered] == ["store", "api", "cli"]
    assert ordered[1].depends_on == ["store"] and ordered[1].capability is None


@pytest.mark.parametrize("raw, reason", [
    ({"subtasks": [sub("a", ["b"]), sub("b", ["c"]), sub("c", ["a"])]}, "cycle: a -> b -> c -> a"),
    ({"subtasks": [sub("a", ["nope"])]}, "depends on nope, which no subtask is called"),
    ({"subtasks": [sub(f"s{i}") for i in range(4)]}, "4 subtasks; at most 3"),
    ({"subtasks": [sub("a"), sub("a")]}, "keys a are used more than once"),
    ({"subtasks": [sub("a", goal="  ")]}, "Subtask a has no goal"),
    ({"subtasks": [sub("a", ["a"])]}, "depends on itself"),
    ({"subtasks": [sub("has space")]}, "use 1 to 32 letters"),
    ({"subtasks": []}, "non-empty list"),
    ({"subtasks": [sub("fix-up")]}, "kept for TARS's own subtasks"),
    ({"subtasks": [sub("store-merge")]}, "kept for TARS's own subtasks"),
    ({"plan": []}, "non-empty list"),
])
def test_an_invalid_plan_is_refused_with_a_reason_the_model_can_act_on(raw, reason):
    with pytest.raises(InvalidPlan, match=reason.replace("(", r"\(")) as refused:
        plans.validate(raw, 3)
    assert reason in str(refused.value)


def costing(turn, input_tokens, output_tokens):
    return dataclasses.replace(turn, usage=Usage(input_tokens, output_tokens, 10, 20))


def test_an_invalid_plan_is_sent_back_once_with_the_reason():
    model = ScriptedModel([costing(tool_turn("plan_subtasks", {"subtasks": [sub("a", ["b"]), sub("b", ["a"])]}),
                                   1000, 200),
                           costing(tool_turn("plan_subtasks", {"subtasks": [sub("a"), sub("b", ["a"])]}), 1500, 300)])
    spent = Usage()
    subtasks, why = plans.ask_planner(model, "build a thing", "app.py", 8, spent)
    assert [s.key for s in subtasks] == ["a", "b"] and why == ""
    assert spent == Usage(2500, 500, 20, 40)  # both calls count in the plan's cost
    assert len(model.calls) == 2
    assert [t["name"] for t in model.calls[0]["tools"]] == ["plan_subtasks"]  # exactly one tool offered
    answer = model.calls[1]["messages"][-1]["content"][0]
    assert answer["type"] == "tool_result" and answer["is_error"] and "cycle: a -> b -> a" in answer["content"]
    assert "build a thing" in model.calls[0]["messages"][0]["content"][0]["text"]


def test_still_invalid_after_the_reask_means_run_it_as_one_task():
    model = ScriptedModel([text_turn("I would rather just do it."),
                           tool_turn("plan_subtasks", {"subtasks": [sub(f"s{i}") for i in range(9)]})])
    subtasks, why = plans.ask_planner(model, "build a thing", "", 8, Usage())
    assert subtasks is None
    assert why == "the planner's plan was invalid twice (The plan has 9 subtasks; at most 8 are allowed: merge some.)"
    assert "did not call plan_subtasks" in model.calls[1]["messages"][-1]["content"][0]["text"]
    assert len(model.calls) == 2  # never a third call


def test_the_planners_tokens_count_even_when_its_second_call_fails():
    model = ScriptedModel([costing(text_turn("I would rather just do it."), 700, 50)])  # then: no turns left
    spent = Usage()
    with pytest.raises(ModelError):
        plans.ask_planner(model, "build a thing", "", 8, spent)
    assert spent == Usage(700, 50, 10, 20)


def test_the_planner_falls_back_like_any_model_and_says_so():
    second = ScriptedModel([tool_turn("plan_subtasks", {"subtasks": [sub("a"), sub("b", ["a"])]})],
                           name="anthropic:claude-sonnet-5-5")
    chain = FallbackModel([UnusableModel(ModelSpec("openai", "o3"), "OPENAI_API_KEY is not set, so openai:o3 cannot "
                                                                    "be used."), second])
    told: list[str] = []
    subtasks, why = plans.ask_planner(chain, "build a thing", "", 8, Usage(), told=told.append)
    assert [s.key for s in subtasks] == ["a", "b"]
    assert told == ["anthropic:claude-sonnet-5-5 took over from openai:o3: OPENAI_API_KEY is not set, so openai:o3 "
                    "cannot be used."]


def test_a_subtask_is_told_the_whole_plan_after_its_own_goal():
    record = plans.new_record("a todo app", plans.validate({"subtasks": [sub("store"), sub("api", ["store"])]}, 8),
                              ["aaa111", "bbb222"], "p-finish", Usage(3000, 400))
    context = plans.context_for(record, "api")
    assert "plan for the goal: a todo app" in context
    assert "- api: Api (after store)  <- yours" in context and "- store: Store\n" in context
    assert "Goal:" not in context  # the only "Goal:" of a subtask's first message is its own
    assert plans.plan_sentence(record) == "Plan of 2 subtasks: store (Store); api (Api, after store)"


def test_the_summary_counts_states_and_names_what_waits():
    rows = [{"key": "store", "state": plans.DONE}, {"key": "api", "state": plans.RUNNING},
            {"key": "cli", "state": plans.WAITING, "waiting_on": ["api"]}, {"key": "web", "state": plans.DONE},
            {"key": "docs", "state": plans.DONE}]
    assert plans.plan_summary(rows) == "3 of 5 subtasks done, 1 running, 1 waiting on api"
    rows = [{"key": "store", "state": plans.FAILED}, {"key": "api", "state": plans.BLOCKED, "waiting_on": ["store"]},
            {"key": "cli", "state": plans.DONE}]
    assert plans.plan_summary(rows) == "1 of 3 subtasks done, 1 failed, 1 blocked by store"
