"""Budgets, as the owner meets them: a task that reaches MAX_TASK_COST_USD stops with its work kept on its branch; once
the day's spend reaches DAILY_BUDGET_USD new tasks are held, every channel says so, and they start once the owner
raises the budget or the next day comes. Real workers, the real SDK against the local fake API."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from rq.job import Job, JobStatus

from core import budget, keys, schedules
from core.config import load_settings
from core.exceptions import InvalidBudget
from core.task_manager import TaskManager
from sub_agents_tars import VoiceFunctions
from tests.communication.test_dashboard import Browser, sse
from tests.conftest import TEST_WEBHOOK_SECRET
from tests.core.test_background_worker import run_to_end
from tests.fakes.anthropic_api import bash, edit, text
from tests.test_task_branches import git, owner_repo
from tests.waiting import wait_until

AUTH = {"X-TARS-Webhook-Secret": TEST_WEBHOOK_SECRET}
TINY = "0.0001"  # dollars: one answer of the fake API costs more than that


@pytest.mark.usefixtures("private_git")
def test_a_task_stops_at_its_cost_cap_and_its_branch_keeps_the_work(tasks, fake_api, start_worker, projects):
    repo = owner_repo(projects / "notes", {"README.md": "# Notes\n"})
    fake_api.script([edit(command="create", path="ideas.md", file_text="- a cost cap\n"), bash("ls"),
                     text("never asked for")])
    task_id = tasks.start("Write down the ideas", project_path="notes")

    status, _ = run_to_end(tasks, start_worker, task_id, MAX_TASK_COST_USD=TINY)

    assert status.status == "failed"
    assert status.reason.startswith(f"Stopped at its cost cap of ${TINY} (MAX_TASK_COST_USD): it had spent $")
    assert len(fake_api.requests) == 1, "no answer is bought once the cap is reached"
    assert status.result["iterations"] == 1 and status.result["cost_usd"] >= float(TINY)
    # The step that crossed the cap ran to its end and was saved: the branch holds it, the owner's tree is untouched.
    assert status.branch == f"tars/{task_id}" and status.checkpoints >= 1
    assert git(repo, "show", f"tars/{task_id}:ideas.md") == "- a cost cap"
    assert not (repo / "ideas.md").exists()
    assert [p.number for p in tasks.checkpoints(task_id)][0] == 1


def test_the_daily_budget_holds_new_tasks_every_channel_says_so_and_raising_it_starts_them(
        redis_client, fake_api, start_worker, serve, n8n, cli, projects):
    settings = load_settings(DAILY_BUDGET_USD=TINY)
    tasks = TaskManager(redis_client, settings)
    fake_api.script([edit(command="create", path="a.py", file_text="A = 1\n"), text("Wrote a.py.")], match="first",
                    name="first")
    fake_api.script([text("Done.")], match="", name="the others")
    worker = start_worker(DAILY_BUDGET_USD=TINY, N8N_WEBHOOK_URL=n8n.url())

    # A first task spends more than today's budget of $0.0001.
    first = tasks.start("Do the first thing", project_path="spend")
    assert wait_until(lambda: tasks.status(first).status == "complete", 90, "the first task to complete")
    spent = budget.current(redis_client, settings)
    assert spent.exhausted and spent.spent_usd == pytest.approx(tasks.status(first).cost_usd)

    # By phone: queued, not started, and TARS says until when.
    said = VoiceFunctions(tasks, settings).start_autonomous_coding("Do the second thing", "spend")
    held = re.fullmatch(r"I've queued it as task ([0-9a-f]+) in your spend project, sir, but today's budget of "
                        r"\$0\.0001 is spent; it starts tomorrow or when you raise DAILY_BUDGET_USD\.", said)
    assert held, said
    held_id = held.group(1)
    status = tasks.status(held_id)
    assert (status.status, status.held) == ("queued", True)
    assert status.progress == ("Held: today's budget of $0.0001 is spent; it starts tomorrow or when you raise "
                               "DAILY_BUDGET_USD.")
    assert Job.fetch(held_id, connection=redis_client).get_status() == JobStatus.DEFERRED  # no worker takes it
    assert VoiceFunctions(tasks, settings).check_coding_progress(held_id) == (
        f"Task {held_id} is queued, but today's budget of $0.0001 is spent; it starts tomorrow or when you raise "
        "DAILY_BUDGET_USD.")

    # Discord (here n8n) hears it from the timeline, delivered by the worker beside it.
    told = wait_until(lambda: [b for b in n8n.bodies() if b["task_id"] == held_id and b["type"] == "held"], 30,
                      "the held event delivered")
    assert "today's budget of $0.0001 is spent" in told[0]["message"] and told[0]["milestone"] is True

    # The HTTP API says so when it starts one, and shows the budget; the dashboard's overview carries the banner.
    server = serve(DAILY_BUDGET_USD=TINY, DASHBOARD_PASSWORD="correct-horse-battery")
    answer = httpx.post(f"{server.url}/api/tasks", json={"goal": "Do the third thing", "project_path": "spend"},
                        headers=AUTH)
    assert answer.status_code == 201, answer.text
    third = answer.json()
    assert third["held"] is True
    assert third["detail"] == (f"Task {third['task_id']} is queued, but today's budget of $0.0001 is spent; it starts "
                               "tomorrow or when you raise DAILY_BUDGET_USD.")
    shown = httpx.get(f"{server.url}/api/budget", headers=AUTH).json()
    assert (shown["exhausted"], shown["held"], shown["daily_usd"], shown["source"]) == (True, 2, 0.0001, "setting")
    dashboard = Browser(server)
    try:
        with dashboard.client.stream("GET", "/dashboard/api/overview/stream", timeout=30) as response:
            view = json.loads(next(e for e in sse(response) if e.get("event") == "overview")["data"])
    finally:
        dashboard.close()
    assert view["budget"]["exhausted"] is True and view["budget"]["held"] == 2
    assert view["budget"]["sentence"].startswith("Today's budget of $0.0001 (DAILY_BUDGET_USD) is spent")
    assert "2 tasks wait for it." in view["budget"]["sentence"]
    assert all(task["held"] for task in view["tasks"] if task["task_id"] in (held_id, third["task_id"]))

    # The owner raises it without a restart: both held tasks start on the worker that ran all along.
    raised = cli("budget", "set", "5", DAILY_BUDGET_USD=TINY)
    assert raised.returncode == 0, raised.stderr
    assert raised.stdout.startswith("Today's budget: $") and "of $5.00 spent (set with budget set)." in raised.stdout
    assert "2 held tasks started." in raised.stdout
    for task_id in (held_id, third["task_id"]):
        assert wait_until(lambda: tasks.status(task_id).status == "complete", 90, f"held task {task_id} complete"), \
            worker.log
        assert tasks.status(task_id).held is False
    assert worker.process.poll() is None


def test_held_tasks_start_by_themselves_the_next_day_and_a_cancelled_one_never_does(tasks, fake_api, start_worker,
                                                                                      redis_client):
    fake_api.script([text("Done.")], match="", name="any")
    budget.set_daily(redis_client, 1.0)
    budget.add_spend(redis_client, 1.25)
    waiting = tasks.start("Wait for tomorrow", project_path="patient")
    dropped = tasks.start("Never mind this one", project_path="patient")
    assert tasks.status(waiting).held and tasks.status(dropped).held
    assert budget.current(redis_client, tasks.settings).held == 2
    assert tasks.cancel(dropped).status == "cancelled"
    assert budget.current(redis_client, tasks.settings).held == 1
    worker = start_worker()
    wait_until(lambda: redis_client.exists(keys.REAPER_LEADER), 30, "the worker's reaper at work")
    assert tasks.status(waiting).status == "queued"

    # Midnight: the new day's spend is empty (its own counter), so the reaper lets the held task go.
    redis_client.delete(keys.spend(budget.today()))
    assert wait_until(lambda: tasks.status(waiting).status == "complete", 90, "the held task to run"), worker.log
    events = [e.type for e in tasks.events(waiting)]
    assert events[:3] == ["queued", "held", "queued"] and events[-1] == "complete"
    assert tasks.status(dropped).status == "cancelled"
    assert not redis_client.exists(keys.BUDGET_GATE)


def test_a_budget_is_dollars_or_none_and_anything_else_is_refused_with_a_sentence(redis_client, settings, cli,
                                                                                   tars_server):
    assert [budget.parse_amount(said) for said in ("20", "$7.50", "3 dollars", "none", "off")] == \
        [20.0, 7.5, 3.0, None, None]
    with pytest.raises(InvalidBudget, match="'lots' is not a daily budget: give dollars such as 20"):
        budget.parse_amount("lots")
    refused = cli("budget", "set", "lots")
    assert refused.returncode == 1 and refused.stderr.startswith("error: 'lots' is not a daily budget")

    assert cli("budget", "set", "none").stdout.startswith("No daily budget; $0.00 spent today.")
    assert budget.current(redis_client, settings).source == "override"
    answer = httpx.post(f"{tars_server.url}/api/budget", json={"daily_usd": -1}, headers=AUTH)
    assert answer.status_code == 422 and "daily_usd" in answer.json()["detail"]
    answer = httpx.post(f"{tars_server.url}/api/budget", json={"daily_usd": 12.5}, headers=AUTH)
    assert answer.status_code == 200 and answer.json()["daily_usd"] == 12.5
    cleared = httpx.delete(f"{tars_server.url}/api/budget", headers=AUTH).json()
    assert (cleared["daily_usd"], cleared["source"]) == (None, "setting")  # DAILY_BUDGET_USD is unset here
    assert cli("budget", "--json").returncode == 0


@pytest.mark.usefixtures("private_git")
def test_a_task_scheduled_for_later_is_held_at_its_time_when_the_days_budget_is_spent(tasks, fake_api, start_worker,
                                                                                     redis_client):
    fake_api.script([text("Done.")], match="", name="any")
    later = tasks.start("Run the nightly job", project_path="nightly", at=schedules.parse_in("3s"))
    assert tasks.status(later).status == "scheduled"  # started while the budget allowed
    budget.set_daily(redis_client, 1.0)
    budget.add_spend(redis_client, 1.25)  # spent before its time came
    worker = start_worker()
    wait_until(lambda: [e.type for e in tasks.events(later)][-1] == "held", 60, "the scheduled task held at its time")
    held = tasks.status(later)
    assert held.held and held.status == "queued" and held.progress.startswith("Held: ") and fake_api.requests == []

    budget.change(redis_client, tasks.settings, 5.0)  # the owner raises it: it runs
    assert wait_until(lambda: tasks.status(later).status == "complete", 90, "the held task to run"), worker.log
