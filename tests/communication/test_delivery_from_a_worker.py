"""Live progress in Discord through n8n, from a real worker (its delivery process), while the endpoint misbehaves."""

from __future__ import annotations

import re

import pytest

from communication.notifier import verify
from core.redis_conn import free_port
from core.task_manager import TaskManager
from tests.conftest import TEST_WEBHOOK_SECRET
from tests.fakes.anthropic_api import bash, edit, text, tool_use
from tests.fakes.webhook_server import Reply
from tests.test_task_branches import owner_repo
from tests.waiting import wait_until

VERBOSE = ["started", "workspace", "planning", "file_edit", "phase", "checkpoint", "command", "command_result",
           "complete"]
QUIET = ["started", "phase", "complete"]


def hello_task(tasks, fake_api, **start):
    fake_api.script([
        edit(command="create", path="hello.py", file_text='print("hi")\n'),
        bash("python hello.py"),
        text("Created hello.py."),
    ])
    return tasks.start("Create hello.py", project_path="hello", **start)


def run(start_worker, **env):
    worker = start_worker("--burst", **env)
    assert worker.wait(60) == 0, worker.log
    return worker


def test_a_verbose_task_reports_every_action_in_order(tasks, fake_api, start_worker, n8n):
    task_id = hello_task(tasks, fake_api)
    run(start_worker, N8N_WEBHOOK_URL=n8n.url())
    bodies = n8n.bodies()
    assert [b["type"] for b in bodies] == VERBOSE
    assert {b["task_id"] for b in bodies} == {task_id}
    assert all(b["goal"] == "Create hello.py" for b in bodies)
    assert [b["timestamp"] for b in bodies] == sorted(b["timestamp"] for b in bodies)
    assert len({b["id"] for b in bodies}) == len(bodies)
    assert bodies[0]["message"] == f"🚀 Task {task_id} started: Create hello.py"
    assert bodies[1]["message"].startswith(f"🌿 Task {task_id}: Working in place in ")  # not a git repository
    assert bodies[3]["message"].startswith("📝") and "hello.py" in bodies[3]["message"]
    assert bodies[4]["phase"] == "coding"
    assert bodies[5]["message"] == f"💾 Task {task_id}: Checkpoint 1: Creating hello.py"  # the step that wrote
    assert bodies[5]["data"]["number"] == 1
    assert bodies[6]["command"] == "python hello.py"  # changed nothing: no second checkpoint
    assert bodies[-1]["message"].startswith(f"🎉 Task {task_id} complete")
    assert bodies[-1]["phase"] == "complete"
    assert all(len(b["message"]) < 2000 for b in bodies)
    # n8n's Header Auth credential checks the same shared secret n8n sends back to TARS
    assert {r.headers["x-tars-webhook-secret"] for r in n8n.requests} == {TEST_WEBHOOK_SECRET}


def test_a_quiet_task_reports_milestones_only(tasks, fake_api, start_worker, n8n):
    hello_task(tasks, fake_api)
    run(start_worker, N8N_WEBHOOK_URL=n8n.url(), ENABLE_DETAILED_UPDATES="false")
    assert [b["type"] for b in n8n.bodies()] == QUIET


def test_the_tasks_own_choice_wins_over_the_setting(tasks, fake_api, start_worker, n8n):
    hello_task(tasks, fake_api, verbose_updates=True)
    run(start_worker, N8N_WEBHOOK_URL=n8n.url(), ENABLE_DETAILED_UPDATES="false")
    assert [b["type"] for b in n8n.bodies()] == VERBOSE


def test_a_server_error_is_retried_and_delivered_once(tasks, fake_api, start_worker, n8n):
    n8n.plan.append(Reply(status=500))
    hello_task(tasks, fake_api)
    run(start_worker, N8N_WEBHOOK_URL=n8n.url())
    ids = [r.json()["id"] for r in n8n.requests]
    assert ids[0] == ids[1]  # the retry carries the same id, so n8n can drop a duplicate
    assert n8n.requests[0].headers["idempotency-key"] == n8n.requests[1].headers["idempotency-key"]
    assert [b["type"] for b in n8n.bodies()[1:]] == VERBOSE  # each delivered once, in order


def test_rate_limiting_is_honoured(tasks, fake_api, start_worker, n8n):
    n8n.plan.append(Reply(status=429, headers={"Retry-After": "1"}))
    task_id = hello_task(tasks, fake_api)
    run(start_worker, N8N_WEBHOOK_URL=n8n.url())
    first, retry = n8n.requests[0], n8n.requests[1]
    assert retry.at - first.at >= 0.9
    assert [b["type"] for b in n8n.bodies()[1:]] == VERBOSE
    assert tasks.status(task_id).status == "complete"


def test_a_dead_endpoint_costs_the_task_nothing(tasks, fake_api, start_worker, n8n):
    hello_task(tasks, fake_api)
    run(start_worker, N8N_WEBHOOK_URL=n8n.url())
    with_n8n = tasks.status(tasks.latest_id()).result["duration_seconds"]

    dead = f"http://127.0.0.1:{free_port()}/webhook/tars"  # nothing listens there
    task_id = hello_task(tasks, fake_api)
    worker = run(start_worker, N8N_WEBHOOK_URL=dead)
    status = tasks.status(task_id)
    assert status.status == "complete"
    assert status.result["duration_seconds"] < with_n8n + 1.0
    assert "tars.notifier" in worker.log  # only log lines say so


def test_signed_updates_verify_with_the_shared_secret(tasks, fake_api, start_worker, n8n):
    secret = "a-long-random-signing-secret"
    hello_task(tasks, fake_api)
    run(start_worker, N8N_WEBHOOK_URL=n8n.url(), WEBHOOK_SIGNING_SECRET=secret)
    for request in n8n.requests:
        assert verify(secret, request.headers, request.body)
        assert request.headers["webhook-id"] == request.json()["id"]


def test_a_plain_discord_webhook_gets_the_same_events(tasks, fake_api, start_worker, n8n, make_webhook):
    discord = make_webhook()
    task_id = hello_task(tasks, fake_api)
    run(start_worker, N8N_WEBHOOK_URL=n8n.url(), DISCORD_WEBHOOK_URL=discord.url("/api/webhooks/1/tok3n-secret"),
        ENABLE_DETAILED_UPDATES="false")
    messages = discord.bodies()
    assert [m["content"] for m in messages] == [b["message"] for b in n8n.bodies()]
    assert messages[-1]["embeds"][0]["title"].startswith("🎉")
    assert all(m["username"] == "TARS" and m["allowed_mentions"] == {"parse": []} for m in messages)
    assert task_id in messages[0]["content"]


@pytest.mark.usefixtures("private_git")
def test_a_plans_messages_list_its_subtasks_then_summarise_and_each_subtask_names_its_plan(tasks, fake_api,
                                                                                           start_worker, n8n,
                                                                                           projects):
    owner_repo(projects / "todo", {"README.md": "# todo\n"})
    fake_api.script([tool_use("plan_subtasks", {"subtasks": [
        {"key": "store", "title": "SQLite store", "goal": "Write store.py", "depends_on": []},
        {"key": "api", "title": "REST API", "goal": "Write api.py on the store", "depends_on": ["store"]}]})],
        match="Plan the work for this goal", name="planner")
    for key in ("store", "api"):
        fake_api.script([edit(command="create", path=f"{key}.py", file_text=f"NAME = '{key}'\n"), text("Done.")],
                        match=f"Goal: Write {key}.py", name=key)
    planning = TaskManager(tasks.redis, tasks.settings.model_copy(update={"PLAN_GOALS": "ask"}))
    parent = planning.start("Build a todo app", "todo", plan=True)
    run(start_worker, N8N_WEBHOOK_URL=n8n.url(), ENABLE_DETAILED_UPDATES="false")
    assert tasks.status(parent).status == "complete"
    subs = {row["key"]: row["task_id"] for row in tasks.status(parent).plan}
    bodies = wait_until(lambda: (b := n8n.bodies()) and any(x["type"] == "complete" and x["task_id"] == parent
                                                             for x in b) and b, 30, "the plan's ending to arrive")
    mine = [b for b in bodies if b["task_id"] == parent]
    plan = next(b for b in mine if b["type"] == "plan")
    assert plan["message"] == (f"🗺️ Task {parent} is planned in 2 subtasks:\n• store: SQLite store\n"
                               f"• api: REST API (after store)")
    merged = [b for b in mine if b["type"] == "subtask"]
    assert [b["data"]["key"] for b in merged] == ["store", "api"]
    assert merged[0]["message"].startswith(f"🧩 Task {parent}: Merged subtask store into tars/{parent}")
    for body in merged:  # the plan's summary as it stood when the update was sent, under the sentence
        assert re.fullmatch(r"[12] of 2 subtasks done(, .+)?", body["plan_summary"]), body
        assert body["message"].endswith("\n" + body["plan_summary"])
    store = [b for b in bodies if b["task_id"] == subs["store"]]
    assert store[0]["message"] == f"🚀 Task {subs['store']} (part 'store' of {parent}) started: Write store.py"
    assert {(b["parent"], b["plan_key"]) for b in store} == {(parent, "store")}
    assert "parent" not in plan and "plan_key" not in plan
