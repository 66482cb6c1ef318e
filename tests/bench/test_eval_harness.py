"""`python -m bench.eval` end to end: tasks through a real worker against the local Anthropic stand-in, judged by their
hidden tests; and the command line's refusals, which start nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import pytest

from bench.eval import catalog, harness
from core.config import setting_names
from core.model import Usage, estimate_cost
from tests.conftest import TEST_API_KEY
from tests.fakes.anthropic_api import edit, text

ROOT = Path(__file__).resolve().parent.parent.parent
MODEL = "claude-sonnet-5-5"
SOLVED = ["slugify", "cart-discounts", "js-emitter-once"]  # scripted with their reference solutions
WRONG = "fix-median"  # scripted with a fix that passes the project's own tests but not the hidden ones
WRONG_MEDIAN = '''"""Small statistics helpers for the weekly sales report."""


def mean(values):
    values = list(values)
    if not values:
        raise ValueError("mean() of an empty sequence")
    return sum(values) / len(values)


def median(values):
    values = sorted(values)
    if not values:
        raise ValueError("median() of an empty sequence")
    return values[len(values) // 2]


def spread(values):
    values = list(values)
    if not values:
        raise ValueError("spread() of an empty sequence")
    return max(values) - min(values)
'''


def eval_env(**extra: str) -> dict[str, str]:
    """The harness's environment: this process's without TARS's or any provider's settings, plus extra."""
    dropped = set(setting_names()) | {"TARS_ENV_FILE"}
    env = {name: value for name, value in os.environ.items()
           if name not in dropped and not name.startswith(harness.PROVIDER_PREFIXES)}
    return {**env, "TARS_ENV_FILE": os.devnull, **extra}


def run_eval(*args: str, timeout: float = 60, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.eval", *args], cwd=ROOT, env=eval_env(**extra),
                          capture_output=True, text=True, timeout=timeout)


def solution_turns(task: catalog.EvalTask) -> list:
    """A model that writes the task's reference solution, one file a turn, then says it is done."""
    files = sorted(path for path in task.solution.rglob("*") if path.is_file())
    return [edit(command="create", path=str(path.relative_to(task.solution)), file_text=path.read_text())
            for path in files] + [text("Done: the reference solution is in place.")]


@pytest.mark.timeout(240)
def test_the_harness_runs_each_task_through_a_worker_and_judges_it_by_its_hidden_tests(fake_api, private_git,
                                                                                        uv_cache):
    tasks = {task.name: task for task in catalog.select([*SOLVED, WRONG])}
    usages: dict[str, dict[str, int]] = {}
    scripted: dict[str, int] = {}
    for n, name in enumerate([*SOLVED, WRONG], 1):
        usages[name] = {"input_tokens": 1000 * n, "output_tokens": 10 * n, "cache_creation_input_tokens": 3 * n,
                        "cache_read_input_tokens": 7 * n}
        turns = solution_turns(tasks[name]) if name != WRONG else [
            edit(command="create", path="stats.py", file_text=WRONG_MEDIAN), text("Fixed median().")]
        scripted[name] = len(turns)
        # The first user message starts "Goal: <goal>" (core/agent.py): each task gets its own script.
        fake_api.script(turns, match=f"Goal: {tasks[name].goal[:80]}", name=name, usage=usages[name])
    began = time.monotonic()
    done = run_eval("--models", f"anthropic:{MODEL}", "--tasks", ",".join([*SOLVED, WRONG]), "--timeout", "120",
                    "--json", timeout=220, ANTHROPIC_API_KEY=TEST_API_KEY, ANTHROPIC_BASE_URL=fake_api.base_url,
                    UV_CACHE_DIR=str(uv_cache))
    seconds = time.monotonic() - began
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert [task["name"] for task in report["tasks"]] == [*SOLVED, WRONG]
    [model] = report["models"]
    assert model["model"] == f"anthropic:{MODEL}" and model["error"] is None and model["warnings"] == []
    results = {result["task"]: result for result in model["results"]}
    assert [name for name, result in results.items() if result["solved"]] == SOLVED
    assert (model["solved"], model["total"]) == (3, 4)
    [failed] = model["failed"]
    # TARS called it complete (the project's own tests pass); the hidden tests say otherwise.
    assert failed["task"] == WRONG and failed["outcome"] == "complete"
    assert failed["verdict"].startswith("hidden tests fail: ") and "failed" in failed["verdict"]
    assert results[WRONG]["hidden"]["exit_code"] == 1
    assert all(results[name]["outcome"] == "complete" and results[name]["hidden"]["passed"] for name in SOLVED)

    # The figures are those the stand-in served: a turn per request, its usage per turn.
    assert fake_api.unmatched == [] and fake_api.errors == [] and not fake_api.exhausted
    total = Usage()
    for name, result in results.items():
        served = fake_api.requests_for(name)
        assert result["iterations"] == len(served) == scripted[name]
        assert all(request.body["model"] == MODEL for request in served)
        expected = Usage(**{key: value * len(served) for key, value in usages[name].items()})
        assert result["usage"] == {name: getattr(expected, name) for name in harness.USAGE_FIELDS}
        # Within the rounding to a millionth of a dollar, which may be done at each turn.
        assert result["cost_usd"] == pytest.approx(estimate_cost(MODEL, expected), abs=1e-6 * len(served))
        assert result["cost_unknown"] is False
        assert result["branch"] == f"tars/{result['task_id']}"
        total.add(expected)
    assert model["turns"] == sum(len(fake_api.requests_for(name)) for name in results)
    assert model["tokens"]["out"] == total.output_tokens
    assert model["tokens"]["in"] == total.input_tokens + total.cache_creation_input_tokens + \
        total.cache_read_input_tokens
    assert model["cost_unknown"] is False
    assert model["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in results.values()), abs=1e-6)
    assert set(model["ran_as"]) <= {MODEL, f"anthropic:{MODEL}"} and sum(model["ran_as"].values()) == model["turns"]
    assert 0 < sum(r["wall_seconds"] for r in results.values()) <= model["wall_seconds"] <= seconds

    # The same results as the text report: the solved count and exactly which task failed, with why.
    names = {f.name for f in fields(harness.TaskResult)}
    rebuilt = harness.ModelReport(model["model"], [harness.TaskResult(**{k: v for k, v in r.items() if k in names})
                                                   for r in model["results"]], model["wall_seconds"])
    printed = harness.text_report([rebuilt], list(tasks.values()))
    assert f"anthropic:{MODEL}: solved 3/4, cost ${model['cost_usd']:.4f}" in printed
    assert f"tokens in {model['tokens']['in']:,}" in printed and f"turns {model['turns']}," in printed
    not_solved = printed.split("not solved:")[1].split("  task ")[0]
    assert f"{WRONG}: complete" in not_solved and not any(name in not_solved for name in SOLVED)


@pytest.mark.parametrize("args, says", [
    (("--models", "openai:gpt-5.1"), "OPENAI_API_KEY is not set"),
    (("--models", "nowhere:model-x"), "--models entry 'nowhere:model-x' names the provider 'nowhere'"),
    (("--models", "claude-sonnet-5-5"), "--models entry 'claude-sonnet-5-5' must be provider:model"),
    (("--models", ","), "--models lists no model"),
    (("--tasks", "slugify,no-such-task"), "no task no-such-task; the tasks are: "),
    (("--timeout", "0"), "--timeout must be a positive number"),
])
def test_the_command_line_refuses_what_cannot_run_and_starts_nothing(args, says, tmp_path):
    done = run_eval(*args, ANTHROPIC_API_KEY=TEST_API_KEY, TMPDIR=str(tmp_path))
    assert done.returncode == harness.USAGE, done.stdout + done.stderr
    assert says in done.stderr and done.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no work folder: nothing started


def test_no_api_key_is_refused_before_anything_starts():
    done = run_eval("--models", f"anthropic:{MODEL}", "--tasks", "slugify")
    assert done.returncode == harness.USAGE
    assert "ANTHROPIC_API_KEY is not set" in done.stderr


def test_the_default_model_is_the_configured_one(monkeypatch):
    for name in list(os.environ):
        if name in setting_names():
            monkeypatch.delenv(name)
    monkeypatch.setenv("TARS_ENV_FILE", os.devnull)
    monkeypatch.setenv("CLAUDE_MODEL", "claude-haiku-4-5")
    monkeypatch.setenv("CODING_MODELS", "anthropic:claude-opus-4-1, ollama:qwen3-coder:30b")
    assert [m.label for m in harness.default_models()] == ["anthropic:claude-opus-4-1", "ollama:qwen3-coder:30b"]
    monkeypatch.delenv("CODING_MODELS")
    assert [m.label for m in harness.default_models()] == ["anthropic:claude-haiku-4-5"]  # the shorthand


def test_list_names_every_task():
    done = run_eval("--list", "--json")
    assert done.returncode == 0, done.stderr
    assert [task["name"] for task in json.loads(done.stdout)] == [task.name for task in catalog.all_tasks()]


def test_the_record_of_a_task_served_by_two_models_is_read_as_it_says():
    record = {"outcome": "complete", "reason": "Done.", "iterations": 5, "cost_usd": 0.5, "cost_unknown": True,
              "usage": {"input_tokens": 10, "output_tokens": 2}, "model": "gpt-5.1",
              "models": {"openai:gpt-5.1": 4, "ollama:qwen3-coder:30b": 1},
              "git": {"branch": "tars/abc123"}, "duration_seconds": 12.5}
    figures = harness.read_record(record, "abc123", "complete", "Done.")
    assert figures["models"] == {"openai:gpt-5.1": 4, "ollama:qwen3-coder:30b": 1}
    assert figures["cost_unknown"] is True and figures["cost_usd"] == 0.5
    assert figures["usage"] == {"input_tokens": 10, "output_tokens": 2, "cache_creation_input_tokens": 0,
                                "cache_read_input_tokens": 0}
    assert (figures["branch"], figures["iterations"], figures["duration_seconds"]) == ("tars/abc123", 5, 12.5)


def test_a_model_without_a_price_costs_unknown_not_nothing():
    """The worker marks the turns of a model whose price is unknown (cost_unknown): the report says unknown, not $0."""
    unpriced = harness.read_record({"outcome": "complete", "reason": "Done.", "iterations": 3, "cost_usd": 0.0,
                                    "cost_unknown": True, "models": {"anthropic:claude-unpriced-9": 3}},
                                   "a1", "complete", "Done.")
    priced = harness.read_record({"outcome": "failed", "reason": "Tests fail.", "iterations": 3, "cost_usd": 0.25,
                                  "cost_unknown": False, "models": {f"anthropic:{MODEL}": 3}}, "b2", "error",
                                 "Tests fail.")
    crashed = harness.read_record({}, "c3", "error", "The task crashed; see the worker log.")
    assert unpriced["cost_unknown"] is True and unpriced["models"] == {"anthropic:claude-unpriced-9": 3}
    assert priced["cost_unknown"] is False and priced["outcome"] == "failed"
    assert crashed["outcome"] == "failed" and crashed["reason"] == "The task crashed; see the worker log."
    assert crashed["cost_usd"] is None and crashed["branch"] == "tars/c3" and crashed["models"] == {}

    def result(name: str, figures: dict, solved: bool) -> harness.TaskResult:
        return harness.TaskResult(task=name, language="python", skills=["fixes-a-bug"], task_id=figures["branch"][5:],
                                  solved=solved, wall_seconds=2.0, hidden=None, verdict="hidden tests fail: 1 failed",
                                  **figures)

    tasks = catalog.select(["fix-median", "slugify"])
    known = harness.ModelReport(f"anthropic:{MODEL}", [result("slugify", priced, False)], 3.0)
    unknown = harness.ModelReport("anthropic:claude-unpriced-9", [result("fix-median", unpriced, True),
                                                                 result("slugify", priced, False)], 5.0)
    printed = harness.text_report([known, unknown], tasks)
    assert f"anthropic:{MODEL}: solved 0/2, cost $0.2500," in printed
    assert "anthropic:claude-unpriced-9: solved 1/2, cost unknown," in printed
    assert "slugify: failed (Tests fail.); hidden tests fail: 1 failed" in printed
    as_json = harness.json_report([unknown], tasks, 60)["models"][0]
    assert as_json["cost_usd"] is None and as_json["cost_unknown"] is True
    assert as_json["failed"] == [{"task": "slugify", "outcome": "failed", "reason": "Tests fail.",
                                  "verdict": "hidden tests fail: 1 failed"}]


def test_the_guide_explains_every_option():
    from tests import doccheck

    guide = (ROOT / "docs" / "EVALUATING_MODELS.md").read_text()
    rows = doccheck.table_rows(doccheck.section(guide, "Several models"))
    documented = {row[0].strip("`").split()[0] for row in rows}
    options = {option for action in harness.build_parser()._actions for option in action.option_strings
               if option.startswith("--") and option != "--help"}
    assert documented == options
