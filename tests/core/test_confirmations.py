"""The owner's code gate: a command the allow-list does not let run (core/command_policy.py) stops the task until
the owner answers, from Discord (through n8n's webhook) or the CLI; wrong codes, timeouts and cancels never run it."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from core import keys
from tests.conftest import TEST_CODE, TEST_WEBHOOK_SECRET
from tests.fakes.anthropic_api import bash, text
from tests.waiting import wait_until

WEBHOOK = "/webhook/background-confirmation"


def awaiting(tasks, task_id):
    return wait_until(lambda: (s := tasks.status(task_id)).status == "awaiting_confirmation" and s,
                      what="the task to ask for a code")


def post_code(server, task_id, code, secret=TEST_WEBHOOK_SECRET, field="code"):
    return httpx.post(server.url + WEBHOOK, json={"task_id": task_id, field: code},
                      headers={"X-TARS-Webhook-Secret": secret})


def destructive_task(tasks, fake_api, projects, name="cleanup"):
    project = projects / name
    project.mkdir()
    (project / "old_backup.py").write_text("# old\n")
    fake_api.script([bash("rm old_backup.py"), text("Removed the old backup.")])
    return tasks.start("Remove the old backup", project_path=name), project


def last_tool_result(request):
    return [b for b in request.body["messages"][-1]["content"] if b.get("type") == "tool_result"][-1]


@pytest.mark.worker_story
def test_confirmed_from_discord_through_the_webhook(tasks, fake_api, projects, start_worker, tars_server, n8n,
                                                    redis_client):
    task_id, project = destructive_task(tasks, fake_api, projects)
    worker = start_worker(N8N_WEBHOOK_URL=n8n.url())
    status = awaiting(tasks, task_id)
    assert status.awaiting_confirmation is True
    assert status.confirmation_command == "rm old_backup.py"
    assert status.phase == "planning"  # the phase is left as it was
    assert (project / "old_backup.py").exists()  # not run yet
    asked = wait_until(lambda: [b for b in n8n.bodies() if b["type"] == "confirmation_required"], what="n8n")
    assert asked[0]["command"] == "rm old_backup.py" and asked[0]["reason"] == "`rm` deletes files"
    assert "⚠️" in asked[0]["message"] and "confirmation code" in asked[0]["message"]
    assert asked[0]["data"]["rule"] == "ask:rm"

    answer = post_code(tars_server, task_id, TEST_CODE)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "accepted", "task_id": task_id,
                             "detail": f"Confirmation code received for task {task_id}."}

    assert tasks.wait_until_ended(task_id, 30), worker.log
    assert tasks.status(task_id).status == "complete"
    assert not (project / "old_backup.py").exists()
    assert redis_client.get(keys.task_confirmation(task_id)) is None  # consumed once
    types = [b["type"] for b in n8n.wait_for(1) and n8n.bodies()]
    assert types.index("confirmation_required") < types.index("confirmation_received")
    assert f"[task {task_id}] confirmation approved: rm old_backup.py" in worker.log


@pytest.mark.worker_story
def test_confirmed_from_the_command_line(tasks, fake_api, projects, start_worker, cli):
    task_id, project = destructive_task(tasks, fake_api, projects)
    start_worker()
    awaiting(tasks, task_id)
    given = cli("task", "confirm", task_id, TEST_CODE)
    assert given.returncode == 0, given.stderr
    assert given.stdout.strip() == f"Confirmation code received for task {task_id}."
    assert tasks.wait_until_ended(task_id, 30)
    assert tasks.status(task_id).status == "complete"
    assert not (project / "old_backup.py").exists()


@pytest.mark.worker_story
def test_a_wrong_code_is_rejected_with_the_attempts_left(tasks, fake_api, projects, start_worker, tars_server):
    task_id, project = destructive_task(tasks, fake_api, projects)
    start_worker()
    awaiting(tasks, task_id)
    wrong = post_code(tars_server, task_id, "0000")
    assert wrong.status_code == 403
    assert wrong.json()["status"] == "rejected" and wrong.json()["attempts_left"] == 4
    assert "4 attempts left" in wrong.json()["detail"]
    assert tasks.status(task_id).status == "awaiting_confirmation"
    assert post_code(tars_server, task_id, " 6 2 8 3 ", field="confirmation_code").status_code == 200
    assert tasks.wait_until_ended(task_id, 30)
    assert not (project / "old_backup.py").exists()


@pytest.mark.worker_story
def test_five_wrong_codes_deny_the_request(tasks, fake_api, projects, start_worker, tars_server, n8n):
    task_id, project = destructive_task(tasks, fake_api, projects)
    start_worker(N8N_WEBHOOK_URL=n8n.url())
    awaiting(tasks, task_id)
    left = [post_code(tars_server, task_id, f"99{i}9").json()["attempts_left"] for i in range(5)]
    assert left == [4, 3, 2, 1, 0]
    assert tasks.wait_until_ended(task_id, 30)
    assert (project / "old_backup.py").exists()  # never run
    refusal = last_tool_result(fake_api.requests[1])
    assert refusal["is_error"] is True and "REFUSED" in refusal["content"] and "5 wrong codes" in refusal["content"]
    wait_until(lambda: any(b["type"] == "confirmation_refused" for b in n8n.bodies()), what="owner told")
    # the right code now answers nothing: the request is gone
    assert post_code(tars_server, task_id, TEST_CODE).status_code == 409


@pytest.mark.worker_story
def test_no_answer_in_time_means_the_command_does_not_run(tasks, fake_api, projects, start_worker, n8n):
    task_id, project = destructive_task(tasks, fake_api, projects)
    start_worker("--burst", CONFIRMATION_TIMEOUT_SECONDS="1", N8N_WEBHOOK_URL=n8n.url()).wait(60)
    status = tasks.status(task_id)
    assert status.status == "complete" and status.awaiting_confirmation is False
    assert (project / "old_backup.py").exists()
    assert "no confirmation code within 1 seconds" in last_tool_result(fake_api.requests[1])["content"]
    refused = [b for b in n8n.wait_for(4) and n8n.bodies() if b["type"] == "confirmation_refused"]
    assert refused and refused[0]["command"] == "rm old_backup.py"


@pytest.mark.worker_story
def test_cancel_ends_the_wait_at_once(tasks, fake_api, projects, start_worker):
    task_id, project = destructive_task(tasks, fake_api, projects)
    start_worker()
    awaiting(tasks, task_id)
    began = time.monotonic()
    status = tasks.cancel(task_id, wait=30)  # the kill backstop after 30 s: far from "at once" on a loaded machine
    assert time.monotonic() - began < 15  # the wait ended by itself, not by the backstop nor the 30 s code timeout
    assert status.status == "cancelled" and status.awaiting_confirmation is False
    assert (project / "old_backup.py").exists()
    assert len(fake_api.requests) == 1


@pytest.mark.worker_story
def test_without_a_code_set_destructive_commands_are_refused(tasks, fake_api, projects, start_worker):
    task_id, project = destructive_task(tasks, fake_api, projects)
    start_worker("--burst", CONFIRMATION_CODE="").wait(60)
    assert tasks.status(task_id).status == "complete"
    assert (project / "old_backup.py").exists()
    refusal = last_tool_result(fake_api.requests[1])["content"]
    assert "CONFIRMATION_CODE" in refusal and ".env" in refusal


@pytest.mark.worker_story
def test_a_program_the_gate_does_not_know_asks_with_a_reason_naming_it(tasks, fake_api, projects, start_worker, n8n):
    (projects / "db").mkdir()
    fake_api.script([bash("flyway clean"), text("Could not clean the database.")])
    task_id = tasks.start("Reset the database", project_path="db")
    start_worker("--burst", CONFIRMATION_TIMEOUT_SECONDS="1", N8N_WEBHOOK_URL=n8n.url()).wait(60)
    assert tasks.status(task_id).status == "complete"
    asked = [b for b in n8n.wait_for(3) and n8n.bodies() if b["type"] == "confirmation_required"]
    assert asked and asked[0]["command"] == "flyway clean" and asked[0]["data"]["rule"] == "ask:unknown-program"
    assert "`flyway clean` is not a command TARS knows to be harmless" in asked[0]["reason"]
    refusal = last_tool_result(fake_api.requests[1])
    assert refusal["is_error"] is True and refusal["content"].startswith(
        "REFUSED, not run: `flyway clean` needed the owner's confirmation code because `flyway clean` is not a "
        "command TARS knows to be harmless, and the owner gave no confirmation code within 1 seconds.")


@pytest.mark.worker_story
def test_safe_commands_never_ask(tasks, fake_api, projects, start_worker):
    fake_api.script([bash("mkdir -p src && git init -q && ls && python3 --version"), text("Set up.")])
    task_id = tasks.start("Set up the project", project_path="setup")
    start_worker("--burst").wait(60)
    status = tasks.status(task_id)
    assert status.status == "complete"
    assert (projects / "setup" / ".git").is_dir()


@pytest.mark.worker_story
def test_the_voice_process_is_woken_and_reads_the_request_from_the_tasks_timeline(tasks, fake_api, projects,
                                                                                  start_worker, redis_client):
    """Pub/sub is only the wake-up; the event itself is read from the task's stream, the one record."""
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.TASK_EVENTS_CHANNEL)
    woken = []

    def listen():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(w["type"] == "confirmation_required" for w in woken):
            if message := pubsub.get_message(timeout=1):
                woken.append(json.loads(message["data"]))

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    task_id = tasks.start("Remove it", project_path="voice", call_sid="CA42")
    (projects / "voice" / "old_backup.py").write_text("x")
    fake_api.script([bash("rm old_backup.py"), text("ok")])
    start_worker()
    listener.join(60)
    assert {"task_id": task_id, "type": "confirmation_required"} in woken
    assert woken[0] == {"task_id": task_id, "type": "queued"}  # every append wakes, from the first
    request = [e for e in tasks.events(task_id) if e.type == "confirmation_required"][-1]
    assert request.data["command"] == "rm old_backup.py" and request.data["reason"] == "`rm` deletes files"
    assert tasks.status(task_id).call_sid == "CA42"  # which call started it: the task's record says
    tasks.cancel(task_id)