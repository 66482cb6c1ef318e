"""The report, as the owner reads it after a week: its numbers are those of the tasks that really ran (real workers,
the real SDK against the local fake API), it outlives the tasks' own data, and its history is trimmed by age."""

from __future__ import annotations

import json
import statistics
import time

import httpx
import pytest

from core import history, keys, report
from core.exceptions import InvalidReportPeriod, TaskNotFound
from core.task_states import usd
from sub_agents_tars import VoiceFunctions
from tests.conftest import TEST_WEBHOOK_SECRET
from tests.fakes.anthropic_api import bash, edit, repeat, text
from tests.waiting import wait_until

DAY = 24 * 3600
LIMIT = "The iteration limit of 2 model turns was reached; files are left as they are."


def test_the_reports_numbers_are_those_of_the_tasks_that_ran_and_outlive_their_data(
        tasks, fake_api, start_worker, cli, tars_server, redis_client):
    fake_api.script([edit(command="create", path="calc.py", file_text="def add(a, b):\n    return a + b\n"),
                     text("Wrote calc.py.")], match="calculator", name="calc")
    fake_api.script([text("The docs are fine.")], match="docs", name="docs")
    fake_api.script([repeat(bash("date +%s%N"))], match="forever", name="loop")  # new output each time: not stuck
    fake_api.script([bash("sleep 60"), text("never")], match="long build", name="sleeper")
    ran = {"calc": tasks.start("Build a calculator", project_path="calc"),
           "docs": tasks.start("Check the docs", project_path="docs"),
           "loop-a": tasks.start("Loop forever", project_path="loops"),
           "loop-b": tasks.start("Loop forever again", project_path="loops"),
           "sleeper": tasks.start("Run the long build", project_path="builds")}
    worker = start_worker(MAX_TASK_ITERATIONS="2")
    wait_until(lambda: tasks.status(ran["sleeper"]).progress.startswith("Running: sleep"), 120, "the long build")
    assert tasks.cancel(ran["sleeper"]).status == "cancelled"
    ended = {name: wait_until(lambda: (s := tasks.status(task_id)) and not s.active and s.result and s, 60,
                              f"{name} ended") for name, task_id in ran.items()}
    assert [ended[n].status for n in ran] == ["complete", "complete", "failed", "failed", "cancelled"], worker.log

    shown = cli("report", "--json")
    assert shown.returncode == 0, shown.stderr
    numbers = json.loads(shown.stdout)
    results = [s.result for s in ended.values()]
    assert numbers["tasks"] == {"total": 5, "complete": 2, "failed": 2, "timeout": 0, "cancelled": 1}
    assert numbers["success_rate"] == 0.5  # 2 complete of the 4 not cancelled
    assert numbers["cost_usd"] == round(sum(r["cost_usd"] for r in results), 6) > 0
    assert numbers["tokens"] == {
        "in": sum(r["usage"]["input_tokens"] + r["usage"]["cache_creation_input_tokens"]
                  + r["usage"]["cache_read_input_tokens"] for r in results),
        "out": sum(r["usage"]["output_tokens"] for r in results)}
    durations = sorted(r["duration_seconds"] for r in results)
    assert numbers["duration_seconds"] == {"median": round(statistics.median(durations), 3), "p95": durations[-1]}
    assert sum(day["tasks"] for day in numbers["by_day"]) == 5 and len(numbers["by_day"]) == 8
    assert numbers["by_project"]["loops"] == {
        "tasks": 2, "complete": 0, "failed": 2, "timeout": 0, "cancelled": 0,
        "cost_usd": round(ended["loop-a"].result["cost_usd"] + ended["loop-b"].result["cost_usd"], 6),
        "tokens_in": sum(ended[n].result["usage"]["input_tokens"] + ended[n].result["usage"]["cache_read_input_tokens"]
                         + ended[n].result["usage"]["cache_creation_input_tokens"] for n in ("loop-a", "loop-b")),
        "tokens_out": sum(ended[n].result["usage"]["output_tokens"] for n in ("loop-a", "loop-b"))}
    assert {name: row["tasks"] for name, row in numbers["by_project"].items()} == \
        {"loops": 2, "calc": 1, "docs": 1, "builds": 1}
    assert numbers["failure_reasons"] == [{"reason": "The iteration limit of N model turns was reached; files are "
                                                     "left as they are.", "count": 2, "example": LIMIT,
                                           "tasks": [ran["loop-a"], ran["loop-b"]]}]
    calls = [s for r in results for s in r["model_seconds"]]
    assert len(calls) == len(fake_api.requests) == 2 + 1 + 2 + 2 + 1
    assert numbers["model_latency_seconds"] == {"calls": 8, "median": round(statistics.median(calls), 3),
                                                "p95": sorted(calls)[-1]}

    # The same numbers on the HTTP API, in words for the owner, and on the phone.
    served = httpx.get(f"{tars_server.url}/api/report?since=7d",
                       headers={"X-TARS-Webhook-Secret": TEST_WEBHOOK_SECRET}).json()
    assert {k: v for k, v in served.items() if k not in ("since", "until")} == \
        {k: v for k, v in numbers.items() if k not in ("since", "until", "period")}
    words = cli("report").stdout
    assert "by outcome: 2 complete, 2 failed, 1 cancelled" in words and "success:    50%" in words
    assert f"2 × {LIMIT}" in words
    assert VoiceFunctions(tasks).report_on_tasks() == (
        f"In the last 7 days, 5 tasks ended: 2 complete, 2 failed and 1 cancelled, a success rate of 50 percent. "
        f"They cost {usd(numbers['cost_usd'])}. The most common failure, twice: {LIMIT}")

    # A week on, the tasks' own data has expired (RESULT_TTL_SECONDS): the report still has them.
    for task_id in ran.values():
        for key in redis_client.scan_iter(f"*{task_id}*"):
            if not key.decode().startswith(keys.HISTORY):
                redis_client.delete(key)
    with pytest.raises(TaskNotFound):
        tasks.status(ran["calc"])
    again = json.loads(cli("report", "--json").stdout)
    assert {k: v for k, v in again.items() if k not in ("since", "until")} == \
        {k: v for k, v in numbers.items() if k not in ("since", "until")}


def summary(task_id: str, ended_at: float, outcome: str = "complete", reason: str = "Done.", project: str = "calc",
            cost: float = 0.01, planned: bool = False, parent: str | None = None) -> dict:
    """A task's history summary as background_worker._finish writes it, ended at `ended_at`."""
    meta = {"goal": f"Goal of {task_id}", "project_path": f"/home/owner/tars_projects/{project}", "plan": planned,
            "parent": parent}
    result = {"outcome": outcome, "reason": reason, "iterations": 0 if planned else 3, "cost_usd": cost,
              "duration_seconds": 30.0, "model": "claude-sonnet-5-5", "model_seconds": [1.0, 2.0],
              "usage": {"input_tokens": 100, "output_tokens": 10}}
    return history.summary(task_id, meta, result, ended_at - 30, ended_at)


def test_the_history_is_trimmed_after_history_days(redis_client):
    now = time.time()
    history.record(redis_client, summary("0a0a01", now - 91 * DAY), keep_days=90)
    history.record(redis_client, summary("0a0a02", now - 89 * DAY), keep_days=90)
    assert [e["task_id"] for e in history.read(redis_client, now - 100 * DAY)] == ["0a0a02"]
    assert not redis_client.exists(keys.history_task("0a0a01"))
    assert redis_client.ttl(keys.history_task("0a0a02")) > 89 * DAY  # and expires by itself a day after its period
    # A task ending now trims what has grown older than the period since.
    history.record(redis_client, summary("0a0a03", now), keep_days=30)
    assert [e["task_id"] for e in history.read(redis_client, 0)] == ["0a0a03"]
    assert redis_client.zcard(keys.HISTORY) == 1


def test_a_report_counts_each_day_each_project_and_a_plans_cost_once(redis_client):
    now = time.time()
    entries = [summary("0b0b01", now - 3 * DAY, project="calc", cost=0.25),
               summary("0b0b02", now - 3 * DAY + 60, outcome="failed", project="calc", cost=0.5,
                       reason="The worker running this task (box.4242) died. Retry it with: python main_tars.py task "
                              "retry 0b0b02"),
               summary("0b0b03", now - DAY, outcome="failed", project="web", cost=0.125,
                       reason="The worker running this task (box.77) died. Retry it with: python main_tars.py task "
                              "retry 0b0b03"),
               summary("0b0b04", now - DAY, outcome="timeout", project="web", cost=0.0,
                       reason="The runtime limit of 15 minutes was reached after 12 iterations; files are left as "
                              "they are."),
               # a plan and its subtask: the plan's cost is the subtask's, counted once
               summary("0b0b05", now - 60, project="web", cost=1.0, parent="0b0b06"),
               summary("0b0b06", now - 30, project="web", cost=1.0, planned=True)]
    for entry in entries:
        history.record(redis_client, entry, keep_days=90)
    numbers = report.report(redis_client, 7 * DAY, now=now)
    assert numbers["tasks"] == {"total": 6, "complete": 3, "failed": 2, "timeout": 1, "cancelled": 0}
    assert numbers["success_rate"] == 0.5
    assert numbers["cost_usd"] == 1.875
    assert len(numbers["by_day"]) == 8 and sum(row["tasks"] for row in numbers["by_day"]) == 6  # every day: charts
    assert numbers["by_project"]["web"]["cost_usd"] == 1.125 and numbers["by_project"]["calc"]["cost_usd"] == 0.75
    died, timed_out = numbers["failure_reasons"]
    assert died["count"] == 2 and died["tasks"] == ["0b0b02", "0b0b03"]
    assert died["reason"] == ("The worker running this task (box.N) died. Retry it with: python main_tars.py task "
                              "retry <id>")
    assert timed_out["count"] == 1  # a timeout counts among the failures
    assert numbers["model_latency_seconds"] == {"calls": 12, "median": 1.5, "p95": 2.0}
    assert numbers["duration_seconds"]["median"] == 30.0


def test_a_report_period_is_a_number_and_a_unit():
    assert [report.parse_since(p) for p in ("7d", "24h", "2w", "90m", None)] == [7 * DAY, DAY, 14 * DAY, 5400, 7 * DAY]
    with pytest.raises(InvalidReportPeriod, match="'last week' is not a period"):
        report.parse_since("last week")
    assert report.percentile([3.0, 1.0, 2.0, 10.0], 0.95) == 10.0 and report.percentile([], 0.5) is None
    assert report.failure_key("Cloning https://github.com/me/app.git into /tmp/tars/a1b2c3 failed after 3 tries") == \
        "Cloning <url> into <path> failed after N tries"
