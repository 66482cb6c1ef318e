"""The HTTP side n8n and scripts use: the confirmation webhook and the task API, against a real uvicorn server.

Every request goes over a real socket (httpx -> uvicorn -> create_app) to the suite's real Redis; a task that
really waits for a code comes from a real worker process and the fake Anthropic API, as in
tests/core/test_confirmations.py.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from datetime import datetime
from pathlib import Path

import httpx
import hypothesis
import pytest
import redis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from rq import Queue, Worker

from communication.app import create_app
from communication.deps import TASK_ID
from communication.notifier import sign
from core import keys, sandbox, schedules
from core.confirmations import pending_request
from core.defaults import QUEUE_NAME
from core.redis_conn import free_port
from core.task_manager import WIRE_NAMES, TaskStatus
from tests.conftest import TEST_CODE, TEST_WEBHOOK_SECRET, ServerThread
from tests.core.test_confirmations import WEBHOOK, awaiting, destructive_task, post_code
from tests.core.test_plan_jobs import script_small_plan
from tests.test_task_branches import owner_repo
from tests.waiting import wait_until

AUTH = {"X-TARS-Webhook-Secret": TEST_WEBHOOK_SECRET}
NOT_AUTHENTICATED = ("Not authenticated: send the X-TARS-Webhook-Secret header or a valid Standard Webhooks "
                     "signature.")
TOO_LARGE = "The body is larger than 64 KiB."
LIMIT = 64 * 1024
STATUS_FIELDS = {WIRE_NAMES.get(name, name) for name in TaskStatus.__dataclass_fields__} | {"plan_summary"}
assert "session_id" in STATUS_FIELDS  # the call that started the task keeps its JSON name


def new_signing_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signed(secret: str, body: bytes, *, msg_id: str | None = None, timestamp: int | None = None) -> dict:
    """Standard Webhooks headers for body, as n8n (or any Standard Webhooks sender) would send them."""
    msg_id = msg_id or "msg_" + secrets.token_hex(8)
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, msg_id, timestamp, body)}


def queue_length(redis_client) -> int:
    return redis_client.llen(keys.RQ_QUEUE)


def task_count(redis_client) -> int:
    return redis_client.zcard(keys.RECENT_TASKS)


def confirmation_keys(redis_client) -> list[bytes]:
    return redis_client.keys("task:*")


def nothing_given(redis_client, task_id: str) -> None:
    """No code stored, no worker woken, the request untouched with all five attempts."""
    assert redis_client.get(keys.task_confirmation(task_id)) is None
    assert redis_client.llen(keys.task_confirmation_wake(task_id)) == 0
    assert pending_request(redis_client, task_id)["attempts_left"] == "5"


def chunked(data: bytes, size: int = 4096):
    for start in range(0, len(data), size):
        yield data[start:start + size]


def confirmation_of_size(size: int) -> bytes:
    """A well-formed confirmation for the unknown task abcdef, padded to exactly size bytes."""
    head, tail = b'{"task_id": "abcdef", "code": "', b'"}'
    return head + b"1" * (size - len(head) - len(tail)) + tail


@pytest.fixture
def api(tars_server):
    """An authenticated client of the test's server (the shared secret n8n sends)."""
    with httpx.Client(base_url=tars_server.url, headers=AUTH, timeout=20) as client:
        yield client


# --- authentication on the webhook, with a task really waiting for the code ------------------------------------

def test_only_an_authenticated_caller_can_answer_a_waiting_task(tasks, fake_api, projects, start_worker,
                                                                 tars_server, serve, redis_client):
    task_id, project = destructive_task(tasks, fake_api, projects)
    start_worker()
    awaiting(tasks, task_id)
    secret = new_signing_secret()
    signer = serve(WEBHOOK_SECRET="", WEBHOOK_SIGNING_SECRET=secret)  # signatures only
    body = json.dumps({"task_id": task_id, "code": TEST_CODE}).encode()  # the right code every time
    now = int(time.time())
    other_body = json.dumps({"task_id": task_id, "code": "0000"}).encode()
    good = signed(secret, body)
    attempts = {
        "no header": (tars_server, {}),
        "wrong shared secret": (tars_server, {"X-TARS-Webhook-Secret": "guess"}),
        "empty shared secret": (tars_server, {"X-TARS-Webhook-Secret": ""}),
        "shared secret with a suffix": (tars_server, {"X-TARS-Webhook-Secret": TEST_WEBHOOK_SECRET + "x"}),
        "shared secret cut short": (tars_server, {"X-TARS-Webhook-Secret": TEST_WEBHOOK_SECRET[:-1]}),
        "shared secret in the wrong header": (tars_server, {"Authorization": f"Bearer {TEST_WEBHOOK_SECRET}"}),
        "signature where none is configured": (tars_server, signed(TEST_WEBHOOK_SECRET, body)),
        "no header (signing server)": (signer, {}),
        "shared secret where only signatures count": (signer, AUTH),
        "forged with another secret": (signer, signed(new_signing_secret(), body)),
        "old timestamp": (signer, signed(secret, body, timestamp=now - 600)),
        "future timestamp": (signer, signed(secret, body, timestamp=now + 600)),
        "tampered body": (signer, signed(secret, other_body)),
        "another webhook-id": (signer, {**good, "webhook-id": "msg_someone_else"}),
        "another timestamp": (signer, {**good, "webhook-timestamp": str(now - 1)}),
        "no webhook-id": (signer, {k: v for k, v in good.items() if k != "webhook-id"}),
        "no webhook-timestamp": (signer, {k: v for k, v in good.items() if k != "webhook-timestamp"}),
        "unknown signature version": (signer, {**good, "webhook-signature": good["webhook-signature"]
                                               .replace("v1,", "v2,")}),
        "garbage signature": (signer, {**good, "webhook-signature": "v1,!!not-base64!!"}),
    }
    for what, (server, headers) in attempts.items():
        answer = httpx.post(server.url + WEBHOOK, content=body, headers=headers)
        assert answer.status_code == 401, (what, answer.text)
        assert answer.json() == {"detail": NOT_AUTHENTICATED}, what
    unconfigured = serve(WEBHOOK_SECRET="")
    for headers in ({}, AUTH, signed(secret, body)):
        answer = httpx.post(unconfigured.url + WEBHOOK, content=body, headers=headers)
        assert answer.status_code == 401
        assert "neither WEBHOOK_SECRET nor WEBHOOK_SIGNING_SECRET" in answer.json()["detail"]

    nothing_given(redis_client, task_id)
    assert tasks.status(task_id).status == "awaiting_confirmation"
    assert (project / "old_backup.py").exists()

    # the health check sees the busy worker and an empty queue, without authentication
    health = httpx.get(tars_server.url + "/health").json()
    [busy] = health.pop("pool")
    assert busy["state"] == "busy" and busy["current_task"] == task_id, busy
    assert health == {"status": "ok", "redis": True, "workers": 1, "starting": 0, "queue_length": 0,
                      "sandbox": sandbox.status_line(), "discord": "off", "paused": False,
                      "tasks_file": str(tars_server.app.state.settings.TASKS_FILE)}
    assert health["queue_length"] == queue_length(redis_client)

    # a correctly signed call to the signatures-only server is the owner's answer
    answer = httpx.post(signer.url + WEBHOOK, content=body, headers=signed(secret, body))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "accepted", "task_id": task_id,
                             "detail": f"Confirmation code received for task {task_id}."}
    assert tasks.wait_until_ended(task_id, 30)
    assert tasks.status(task_id).status == "complete"
    assert not (project / "old_backup.py").exists()


def test_a_wrong_code_costs_an_attempt_and_the_right_one_runs_the_command(tasks, fake_api, projects, start_worker,
                                                                          tars_server, redis_client):
    task_id, project = destructive_task(tasks, fake_api, projects)
    start_worker()
    awaiting(tasks, task_id)

    wrong = post_code(tars_server, task_id, 1234)  # codes may be JSON numbers
    assert wrong.status_code == 403
    assert wrong.json() == {"status": "rejected", "task_id": task_id, "attempts_left": 4,
                            "detail": f"Code rejected for task {task_id}: 4 attempts left."}
    assert pending_request(redis_client, task_id)["attempts_left"] == "4"
    assert redis_client.get(keys.task_confirmation(task_id)) is None
    assert tasks.status(task_id).status == "awaiting_confirmation"
    assert (project / "old_backup.py").exists()

    # the id as a person types it (#, upper case), the code as a number under its other name
    right = post_code(tars_server, "#" + task_id.upper(), int(TEST_CODE), field="confirmation_code")
    assert right.status_code == 200, right.text
    assert right.json()["status"] == "accepted" and right.json()["task_id"] == task_id
    assert tasks.wait_until_ended(task_id, 30)
    assert tasks.status(task_id).status == "complete"
    assert not (project / "old_backup.py").exists()
    again = post_code(tars_server, task_id, TEST_CODE)
    assert again.status_code == 409
    assert again.json()["detail"] == f"Task {task_id} has already ended (complete), so it needs no code."


def test_a_correctly_signed_call_passes_authentication(serve, redis_client):
    secret = new_signing_secret()
    signer = serve(WEBHOOK_SECRET="", WEBHOOK_SIGNING_SECRET=secret)
    body = json.dumps({"task_id": "abcdef", "code": TEST_CODE}).encode()

    answer = httpx.post(signer.url + WEBHOOK, content=body, headers=signed(secret, body))
    assert answer.status_code == 404  # past authentication: the task is unknown
    assert answer.json() == {"detail": "There is no task abcdef."}

    # during a key rotation the sender lists several signatures; one good one is enough
    headers = signed(secret, body)
    headers["webhook-signature"] = signed(new_signing_secret(), body)["webhook-signature"] + " " + \
        headers["webhook-signature"]
    assert httpx.post(signer.url + WEBHOOK, content=body, headers=headers).status_code == 404

    # the task API takes the same signatures (an empty body is signed for a GET)
    listed = httpx.get(signer.url + "/api/tasks", headers=signed(secret, b""))
    assert listed.status_code == 200 and listed.json() == []
    assert httpx.get(signer.url + "/api/tasks").status_code == 401
    assert confirmation_keys(redis_client) == []


def test_a_captured_signed_request_cannot_be_replayed(serve):
    secret = new_signing_secret()
    signer = serve(WEBHOOK_SECRET="", WEBHOOK_SIGNING_SECRET=secret)
    body = json.dumps({"task_id": "abcdef", "code": TEST_CODE}).encode()
    headers = signed(secret, body)
    assert httpx.post(signer.url + WEBHOOK, content=body, headers=headers).status_code == 404
    replay = httpx.post(signer.url + WEBHOOK, content=body, headers=headers)
    assert replay.status_code == 401 and "replay" in replay.json()["detail"]


def test_a_server_without_any_webhook_secret_refuses_everything_and_says_which_setting(serve, redis_client):
    server = serve(WEBHOOK_SECRET="")
    assert server.url  # and it started: missing secrets do not stop the voice side
    calls = [("POST", WEBHOOK, {"task_id": "abcdef", "code": TEST_CODE}), ("POST", "/api/tasks", {"goal": "x"}),
             ("GET", "/api/tasks", None), ("GET", "/api/tasks/abcdef", None),
             ("POST", "/api/tasks/abcdef/cancel", None)]
    for method, path, body in calls:
        for headers in ({}, AUTH, {"X-TARS-Webhook-Secret": ""}):
            answer = httpx.request(method, server.url + path, json=body, headers=headers)
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.json() == {"detail": "TARS has neither WEBHOOK_SECRET nor WEBHOOK_SIGNING_SECRET set, so "
                                               "it accepts no webhook calls: set one in .env."}
    assert task_count(redis_client) == 0 and confirmation_keys(redis_client) == []
    assert httpx.get(server.url + "/health").json()["status"] == "ok"  # health needs no secret


# --- the webhook's answers for tasks that cannot take a code, and bodies it cannot read -------------------------

@pytest.mark.parametrize("task_id", ["abcdef", "#ABCDEF", "0123456789abcdef0123456789abcdef"])
def test_an_unknown_task_is_a_404(api, redis_client, task_id):
    for field in ("code", "confirmation_code"):
        answer = api.post(WEBHOOK, json={"task_id": task_id, field: TEST_CODE})
        assert answer.status_code == 404
        assert answer.json() == {"detail": f"There is no task {task_id.lstrip('#').lower()}."}
    assert confirmation_keys(redis_client) == []


def test_a_malformed_task_id_is_refused_before_any_lookup(api, redis_client):
    # Not a 404: the body's task_id has a pattern (4-32 hex digits, optional #), so the model refuses it (422).
    for task_id in ["../x", "abc", "ab cd", "x:y", "g" * 6, "a" * 33, "abcd\n", ""]:
        answer = api.post(WEBHOOK, json={"task_id": task_id, "code": TEST_CODE})
        assert answer.status_code == 422, task_id
        assert answer.json()["detail"].startswith("The body is not valid: task_id: String should match pattern")
    assert confirmation_keys(redis_client) == []


def test_a_queued_task_is_not_waiting_for_a_code(api, tasks, redis_client):
    task_id = tasks.start("Remove the old backup")  # no worker: it stays queued
    answer = api.post(WEBHOOK, json={"task_id": task_id, "code": TEST_CODE})
    assert answer.status_code == 409
    assert answer.json() == {"detail": f"Task {task_id} is not waiting for a confirmation code."}
    assert redis_client.get(keys.task_confirmation(task_id)) is None
    assert redis_client.llen(keys.task_confirmation_wake(task_id)) == 0
    assert tasks.status(task_id).status == "queued"


def test_an_ended_task_needs_no_code(api, tasks, redis_client):
    task_id = tasks.start("Remove the old backup")
    assert tasks.cancel(task_id).status == "cancelled"
    answer = api.post(WEBHOOK, json={"task_id": task_id, "code": TEST_CODE})
    assert answer.status_code == 409
    assert answer.json() == {"detail": f"Task {task_id} has already ended (cancelled), so it needs no code."}
    assert redis_client.get(keys.task_confirmation(task_id)) is None


@pytest.mark.parametrize("body, reason", [
    (b'{"task_id": "abcdef", "code": ', "body: Invalid JSON"),
    (b"{task_id: abcdef}", "body: Invalid JSON"),
    (b'\xff\xfe{"task_id": "abcdef", "code": "6283"}', "body: Invalid JSON"),
    (b'{"task_id": "abcdef", "code": "6283"} trailing', "body: Invalid JSON"),
    (b'[{"task_id": "abcdef", "code": "6283"}]', "body: Input should be an object"),
    (b'"abcdef 6283"', "body: Input should be an object"),
    (b"null", "body: Input should be an object"),
    (b"", "body: Input should be an object"),
    (b'{"task_id": "abcdef"}', "code: Field required"),
    (b'{"code": "6283"}', "task_id: Field required"),
    (b'{"task_id": "abcdef", "code": {"value": "6283"}}', "code.str: Input should be a valid string"),
    (b'{"task_id": "abcdef", "code": ["6283"]}', "code.str: Input should be a valid string"),
    (b'{"task_id": "abcdef", "code": null}', "code.str: Input should be a valid string"),
    (b'{"task_id": 123456, "code": "6283"}', "task_id: Input should be a valid string"),
])
def test_a_body_that_is_not_a_confirmation_is_a_422(api, redis_client, body, reason):
    answer = api.post(WEBHOOK, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith("The body is not valid: ")
    assert reason in answer.json()["detail"]
    assert confirmation_keys(redis_client) == []


@pytest.mark.parametrize("path", [WEBHOOK, "/api/tasks"])
@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
def test_a_body_over_64_kib_is_a_413(api, redis_client, path, transfer):
    def send(data: bytes) -> httpx.Response:
        answer = api.post(path, content=chunked(data) if transfer == "chunked" else data,
                          headers={"content-type": "application/json"})
        sent_chunked = answer.request.headers.get("transfer-encoding") == "chunked"
        assert sent_chunked == (transfer == "chunked") and sent_chunked != ("content-length" in answer.request.headers)
        return answer

    over = send(confirmation_of_size(LIMIT + 1))
    assert over.status_code == 413
    assert over.json() == {"detail": TOO_LARGE}
    big_goal = send(json.dumps({"goal": "x" * (3 * LIMIT)}).encode())
    assert big_goal.status_code == 413
    # exactly 64 KiB is still read and answered on its merits
    at_limit = send(confirmation_of_size(LIMIT))
    assert at_limit.status_code == (404 if path == WEBHOOK else 422), at_limit.text
    assert task_count(redis_client) == 0 and confirmation_keys(redis_client) == []


# --- the task API ---------------------------------------------------------------------------------------------

def test_start_a_task_and_read_its_status(api, tasks, projects, redis_client):
    started = api.post("/api/tasks", json={"goal": "  Build a calculator  ", "project_path": "calc",
                                           "verbose_updates": True})
    assert started.status_code == 201, started.text
    assert set(started.json()) == {"task_id", "held"} and started.json()["held"] is False  # no daily budget
    task_id = started.json()["task_id"]
    assert re.fullmatch(r"[0-9a-f]{6}", task_id)
    assert queue_length(redis_client) == 1
    assert (projects / "calc").is_dir()

    status = api.get(f"/api/tasks/{task_id}")
    assert status.status_code == 200
    body = status.json()
    assert set(body) == STATUS_FIELDS
    assert {k: body[k] for k in ("task_id", "status", "phase", "progress", "goal", "project_path",
                                 "verbose_updates", "awaiting_confirmation", "reason")} == {
        "task_id": task_id, "status": "queued", "phase": "queued", "progress": "Waiting for a worker",
        "goal": "Build a calculator", "project_path": str(projects / "calc"), "verbose_updates": True,
        "awaiting_confirmation": False, "reason": None}
    # the same status the CLI and the voice side read; not planned: no plan, no parent
    assert body == {**tasks.status(task_id).to_dict(), "plan_summary": None}
    assert body["plan"] is None and body["parent"] is None
    # the id as a person might type it
    assert api.get(f"/api/tasks/%23{task_id.upper()}").json()["task_id"] == task_id


def test_a_plain_text_body_is_the_goal_and_the_query_string_gives_the_rest(api, tasks, projects, redis_client):
    started = api.post("/api/tasks?project_path=calc&priority=high&plan=false&in=2h",
                       content="  Build a calculator\nwith tests  ".encode(),
                       headers={"content-type": "text/plain; charset=utf-8"})
    assert started.status_code == 201, started.text
    status = tasks.status(started.json()["task_id"])
    assert (status.goal, status.project_path, status.priority, status.status) == (
        "Build a calculator\nwith tests", str(projects / "calc"), "high", "scheduled")
    assert started.json()["scheduled_for"] == status.scheduled_for

    latin = api.post("/api/tasks", content="Écris un café".encode("latin-1"),
                     headers={"content-type": "text/plain; charset=latin-1"})
    assert latin.status_code == 201 and tasks.status(latin.json()["task_id"]).goal == "Écris un café"


@pytest.mark.parametrize("url, content, content_type, reason", [
    ("/api/tasks", b"   ", "text/plain", "The text body is empty: it is the goal, so say what the task should build "
                                         "or fix."),
    ("/api/tasks", b"\xff\xfe broken", "text/plain", "The text body is not utf-8 text: send it as UTF-8."),
    ("/api/tasks", b"Fix it", "text/plain; charset=klingon", "The text body is not klingon text: send it as UTF-8."),
    ("/api/tasks?priority=high", b'{"goal": "Fix it"}', "application/json",
     "The query string gives priority: with a JSON body every field goes in the body; the query string is for a "
     "text/plain goal."),
    ("/api/tasks?at=25:00", b"Fix it", "text/plain", "The start time '25:00' is not a time: give HH:MM on the 24-hour "
                                                      "clock (02:00: the next such local time) or an ISO date-time "
                                                      "(2025-06-01T02:00, local unless it names its zone)."),
    ("/api/tasks", b"Fix it", "application/x-www-form-urlencoded", "The body is not JSON: send the task as a JSON "
                                                                   "object, or the goal itself as text with "
                                                                   "Content-Type: text/plain."),
])
def test_a_bad_plain_text_start_is_a_422_with_the_sentence(api, redis_client, url, content, content_type, reason):
    answer = api.post(url, content=content, headers={"content-type": content_type})
    assert answer.status_code == 422
    assert answer.json() == {"detail": reason}
    assert task_count(redis_client) == 0


@pytest.mark.usefixtures("private_git")
def test_a_planned_start_shows_its_plan_rows_summary_and_each_subtasks_parent(serve, tasks, fake_api, projects,
                                                                             start_worker, tmp_path):
    server = serve(PLAN_GOALS="ask")
    owner_repo(projects / "todo", {"README.md": "# todo\n"})
    gate = tmp_path / "store-may-finish"
    script_small_plan(fake_api, hold=gate)
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=20) as api:
        started = api.post("/api/tasks", json={"goal": "Build a todo app", "project_path": "todo", "plan": True})
        assert started.status_code == 201, started.text
        parent = started.json()["task_id"]
        before = api.get(f"/api/tasks/{parent}").json()
        assert before["plan"] is None and before["plan_summary"] is None  # not planned yet
        worker = start_worker()
        body = wait_until(lambda: (b := api.get(f"/api/tasks/{parent}").json())["plan_summary"]
                          and "1 running" in b["plan_summary"] and b, 120, "the store subtask to run")
        assert body["plan_summary"] == "0 of 2 subtasks done, 1 running, 1 waiting on store"
        assert body["progress"] == body["plan_summary"] and body["status"] == "running"
        store, api_row = body["plan"]
        assert (store["key"], store["title"], store["state"], store["depends_on"]) == ("store", "SQLite store",
                                                                                       "running", [])
        assert (api_row["key"], api_row["state"], api_row["waiting_on"], api_row["note"]) == (
            "api", "waiting", ["store"], "waiting on store")
        subtask = api.get(f"/api/tasks/{store['task_id']}").json()
        assert subtask["parent"] == parent and subtask["plan"] is None and subtask["plan_summary"] is None
        listed = {row["task_id"]: row for row in api.get("/api/tasks").json()}
        assert listed[parent]["plan_summary"] == body["plan_summary"]
        gate.touch()
        done = wait_until(lambda: (b := api.get(f"/api/tasks/{parent}").json())["status"] != "running" and b, 180,
                          "the plan to end")
    worker.stop()
    assert done["status"] == "complete", (done["reason"], worker.log[-3000:])
    assert done["plan_summary"] == "2 of 2 subtasks done"


def test_an_urgent_start_jumps_the_queue_and_a_start_for_later_waits_for_its_time(api, tasks, redis_client):
    urgent = api.post("/api/tasks", json={"goal": "Fix the outage", "priority": "high"})
    assert urgent.status_code == 201 and urgent.json() == {"task_id": urgent.json()["task_id"], "held": False}, urgent.text
    urgent_id = urgent.json()["task_id"]
    assert redis_client.lrange(keys.rq_queue("tars_programming:high"), 0, -1) == [urgent_id.encode()]
    assert queue_length(redis_client) == 0  # rq:queue:tars_programming holds the normal tasks only
    assert api.get(f"/api/tasks/{urgent_id}").json()["priority"] == "high"

    later = api.post("/api/tasks", json={"goal": "Nightly build", "in": "2h"})
    assert later.status_code == 201 and set(later.json()) == {"task_id", "scheduled_for", "held"}, later.text
    later_id, due = later.json()["task_id"], later.json()["scheduled_for"]
    status = api.get(f"/api/tasks/{later_id}").json()
    assert (status["status"], status["scheduled_for"], status["priority"]) == ("scheduled", due, "normal")
    assert status["progress"] == f"Scheduled to start {schedules.when_text(datetime.fromisoformat(due))}"
    assert redis_client.zscore(keys.rq_scheduled("tars_programming"), later_id) == datetime.fromisoformat(
        due).timestamp()
    at_two = api.post("/api/tasks", json={"goal": "At two", "at": "02:00", "priority": "low"}).json()
    assert at_two["scheduled_for"] == schedules.parse_at("02:00").isoformat()
    assert redis_client.zscore(keys.rq_scheduled("tars_programming:low"), at_two["task_id"]) is not None

    cancelled = api.post(f"/api/tasks/{later_id}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    assert redis_client.zscore(keys.rq_scheduled("tars_programming"), later_id) is None  # it never runs


def test_a_task_with_only_a_goal_works_in_the_default_project(api, settings):
    started = api.post("/api/tasks", json={"goal": "Write hello.py", "project_path": None})
    assert started.status_code == 201
    status = api.get(f"/api/tasks/{started.json()['task_id']}").json()
    assert status["project_path"] == str(settings.DEFAULT_PROJECT_PATH)
    assert status["verbose_updates"] is None


def test_a_goal_of_2000_characters_after_trimming_is_accepted(api):
    started = api.post("/api/tasks", json={"goal": "   " + "g" * 2000 + "\n\n"})
    assert started.status_code == 201, started.text
    assert api.get(f"/api/tasks/{started.json()['task_id']}").json()["goal"] == "g" * 2000


@pytest.mark.parametrize("body, reason", [
    ({"goal": "   \n\t "}, "The goal is empty: say what the task should build or fix."),
    ({"goal": ""}, "The body is not valid: goal: String should have at least 1 character."),
    ({"goal": "g" * 2001}, "The goal is 2001 characters long; keep it to 2000 at most."),
    ({"goal": "g" * 10_001}, "The body is not valid: goal: String should have at most 10000 characters."),
    ({"goal": 42}, "The body is not valid: goal: Input should be a valid string."),
    ({}, "The body is not valid: goal: Field required."),
    ({"goal": "Fix it", "urgency": "high"}, "The body is not valid: urgency: Extra inputs are not permitted."),
    ({"goal": "Fix it", "priority": "urgent"}, "The body is not valid: priority: Input should be 'high', 'normal' or "
                                               "'low'."),
    ({"goal": "Fix it", "at": "25:00"}, "The start time '25:00' is not a time: give HH:MM on the 24-hour clock (02:00: "
                                        "the next such local time) or an ISO date-time (2025-06-01T02:00, local unless "
                                        "it names its zone)."),
    ({"goal": "Fix it", "at": "2020-01-01T02:00"}, "The start time 2020-01-01T02:00 (on 1 Jan 2020 at 02:00) is in the "
                                                   "past: give a time still to come."),
    ({"goal": "Fix it", "at": 2}, "The body is not valid: at: Input should be a valid string."),
    ({"goal": "Fix it", "in": "soon"}, "The delay 'soon' is not a delay: give a number and a unit: 90s, 30m, 2h, 1h30m, "
                                       "1d (d, h, m, s)."),
    ({"goal": "Fix it", "at": "02:00", "in": "2h"}, "Give a start time or a delay, not both."),
    ({"goal": "Fix it", "verbose_updates": "yes"},
     "The body is not valid: verbose_updates: Input should be a valid boolean."),
    ({"goal": "Fix it", "verbose_updates": 1},
     "The body is not valid: verbose_updates: Input should be a valid boolean."),
    ({"goal": "Fix it", "project_path": 7}, "The body is not valid: project_path: Input should be a valid string."),
    ({"goal": "Fix it", "plan": "yes"}, "The body is not valid: plan: Input should be a valid boolean."),
    ({"goal": "Fix it", "plan": 1}, "The body is not valid: plan: Input should be a valid boolean."),
])
def test_an_invalid_start_is_a_422_with_the_sentence(api, redis_client, body, reason):
    answer = api.post("/api/tasks", json=body)
    assert answer.status_code == 422
    assert answer.json() == {"detail": reason}
    assert task_count(redis_client) == 0 and queue_length(redis_client) == 0


@pytest.mark.parametrize("project_path", ["/etc", "../elsewhere", "calc/../../elsewhere", "~"])
def test_a_project_outside_the_projects_folder_is_a_422(api, redis_client, projects, project_path):
    answer = api.post("/api/tasks", json={"goal": "Fix it", "project_path": project_path})
    assert answer.status_code == 422
    assert answer.json() == {"detail": f"The project path {project_path} is outside the projects folder {projects}; "
                                       f"tasks may only work inside it."}
    assert not (projects.parent / "elsewhere").exists()
    assert task_count(redis_client) == 0 and queue_length(redis_client) == 0


def test_a_project_path_that_is_a_file_is_a_422(api, redis_client, projects):
    (projects / "notes.txt").write_text("not a project")
    answer = api.post("/api/tasks", json={"goal": "Fix it", "project_path": "notes.txt"})
    assert answer.status_code == 422
    assert answer.json() == {"detail": f"The project path {projects / 'notes.txt'} is a file, not a folder."}
    assert task_count(redis_client) == 0


@pytest.mark.parametrize("project_path, why", [
    pytest.param("calc\x00x", "ValueError: embedded null byte"),
    pytest.param("~nosuchuser/calc", "RuntimeError: Could not determine home directory"),
    pytest.param("p" * 300, "OSError ENAMETOOLONG from Path.exists()"),
])
def test_an_unusable_project_path_is_a_422_not_a_500(api, redis_client, project_path, why):
    answer = api.post("/api/tasks", json={"goal": "Fix it", "project_path": project_path})
    assert answer.status_code == 422, f"{answer.status_code} {answer.text} ({why})"
    assert answer.json()["detail"].startswith("The project ")
    assert task_count(redis_client) == 0 and queue_length(redis_client) == 0


def test_the_list_is_newest_first(api):
    ids = [api.post("/api/tasks", json={"goal": goal}).json()["task_id"] for goal in ("First", "Second", "Third")]
    listed = api.get("/api/tasks")
    assert listed.status_code == 200
    assert [(t["task_id"], t["goal"]) for t in listed.json()] == list(zip(reversed(ids), ["Third", "Second",
                                                                                        "First"]))
    assert all(set(t) == STATUS_FIELDS and t["status"] == "queued" for t in listed.json())
    assert [t["task_id"] for t in api.get("/api/tasks", params={"limit": 2}).json()] == ids[:0:-1]
    for limit in (0, 201, "many"):
        assert api.get("/api/tasks", params={"limit": limit}).status_code == 422


def test_an_empty_list_is_an_empty_array(api):
    assert api.get("/api/tasks").json() == []


@pytest.mark.parametrize("task_id", ["abcdef", "0123456789abcdef0123456789abcdef", "zzzz", "x%3Ay", "ab%20cd",
                                     "..%2Fx", "%2E%2E", "a" * 40, "%C3%A9t%C3%A9"])
def test_an_unknown_or_malformed_id_is_a_404_not_a_500(api, task_id):
    for method, path in (("GET", f"/api/tasks/{task_id}"), ("POST", f"/api/tasks/{task_id}/cancel")):
        answer = api.request(method, path)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["detail"].startswith(("There is no task", "Not Found"))


def test_cancel_a_queued_task_then_cancel_it_again(api, tasks, redis_client):
    task_id = api.post("/api/tasks", json={"goal": "Build a calculator"}).json()["task_id"]
    assert queue_length(redis_client) == 1

    cancelled = api.post(f"/api/tasks/{task_id}/cancel")
    assert cancelled.status_code == 200
    assert set(cancelled.json()) == STATUS_FIELDS
    assert cancelled.json()["task_id"] == task_id
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["reason"] == "The task was cancelled."
    assert queue_length(redis_client) == 0  # it will never run
    assert api.get(f"/api/tasks/{task_id}").json()["status"] == "cancelled"

    again = api.post(f"/api/tasks/{task_id}/cancel")
    assert again.status_code == 409
    assert again.json() == {"detail": f"Task {task_id} has already ended (cancelled), so there is nothing to "
                                      f"cancel."}


def test_a_retry_whose_project_can_no_longer_be_used_is_a_422_with_the_sentence(api, redis_client, projects):
    task_id = api.post("/api/tasks", json={"goal": "Build a calculator", "project_path": "calc"}).json()["task_id"]
    assert api.post(f"/api/tasks/{task_id}/cancel").status_code == 200
    (projects / "calc").rmdir()
    (projects / "calc").write_text("now a file\n")
    answer = api.post(f"/api/tasks/{task_id}/retry")
    assert answer.status_code == 422, answer.text
    assert answer.json() == {"detail": f"The project path {projects / 'calc'} is a file, not a folder."}
    assert task_count(redis_client) == 1  # nothing new was started


def test_every_route_but_health_needs_authentication(tars_server, tasks, redis_client):
    task_id = tasks.start("Build a calculator")
    calls = [("POST", WEBHOOK, {"task_id": task_id, "code": TEST_CODE}), ("POST", "/api/tasks", {"goal": "x"}),
             ("GET", "/api/tasks", None), ("GET", f"/api/tasks/{task_id}", None),
             ("POST", f"/api/tasks/{task_id}/cancel", None), ("POST", f"/api/tasks/{task_id}/pause", None),
             ("POST", f"/api/tasks/{task_id}/resume", None), ("GET", "/api/workers", None),
             ("POST", "/api/workers/pause", None), ("POST", "/api/workers/resume", None)]
    for method, path, body in calls:
        for headers in ({}, {"X-TARS-Webhook-Secret": "guess"}, {"webhook-signature": "v1,AAAA"}):
            answer = httpx.request(method, tars_server.url + path, json=body, headers=headers)
            assert answer.status_code == 401, (method, path, headers)
            assert answer.json() == {"detail": NOT_AUTHENTICATED}
    # nothing happened: no second task, the first neither cancelled nor answered
    assert task_count(redis_client) == 1 and queue_length(redis_client) == 1
    assert tasks.status(task_id).status == "queued"
    assert not redis_client.exists(keys.task_cancel(task_id), keys.task_confirmation(task_id), keys.WORKERS_PAUSED,
                                   keys.task_pause(task_id))


# --- health and the OpenAPI document --------------------------------------------------------------------------

def test_health_reports_redis_workers_the_queue_length_and_the_sandbox(tars_server, tasks, redis_client, serve):
    first, _ = tasks.start("One"), tasks.start("Two")
    health = httpx.get(tars_server.url + "/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "redis": True, "workers": 0, "starting": 0, "queue_length": 2,
                             "sandbox": sandbox.status_line(), "discord": "off", "paused": False, "pool": [],
                             "tasks_file": str(tasks.settings.TASKS_FILE)}
    assert health.json()["sandbox"].split(" ")[0].rstrip(":") in ("landlock", "bubblewrap", "sandbox-exec", "none")
    offline = serve(SANDBOX_NETWORK="off").url + "/health"
    assert httpx.get(offline).json()["sandbox"] == sandbox.status_line("auto", network=False)
    assert httpx.get(serve(SANDBOX="off").url + "/health").json()["sandbox"].startswith("off (SANDBOX=off): ")
    tasks.cancel(first)
    assert httpx.get(tars_server.url + "/health").json()["queue_length"] == queue_length(redis_client) == 1


def test_health_counts_a_worker_the_server_started_as_starting_until_it_registers(settings, redis_client):
    """`up`'s worker takes seconds to register with RQ: meanwhile /health says starting 1, not just workers 0."""
    own = ["box.4242"]
    server = ServerThread(create_app(settings, redis_client, own_workers=lambda: own))
    try:
        health = lambda: httpx.get(server.url + "/health").json()  # noqa: E731
        assert (health()["workers"], health()["starting"]) == (0, 1)
        worker = Worker([Queue(QUEUE_NAME, connection=redis_client)], connection=redis_client, name="box.4242")
        worker.register_birth()
        assert (health()["workers"], health()["starting"]) == (1, 0)
        own.clear()  # its process ended: neither starting nor (once RQ forgets it) a worker
        worker.register_death()
        assert (health()["workers"], health()["starting"]) == (0, 0)
    finally:
        server.stop()


def test_health_says_degraded_when_redis_is_gone(settings):
    gone = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    server = ServerThread(create_app(settings, gone))
    try:
        health = httpx.get(server.url + "/health", timeout=60)  # wide: the machine may be loaded
    finally:
        server.stop()
    assert health.status_code == 200
    assert health.json() == {"status": "degraded", "redis": False, "error": "ConnectionError"}


def test_openapi_lists_the_webhook_and_the_api_with_their_bodies(tars_server):
    document = httpx.get(tars_server.url + "/openapi.json")
    assert document.status_code == 200  # no secret needed to read the interface
    paths = document.json()["paths"]
    assert {"/webhook/background-confirmation", "/api/tasks", "/api/tasks/{task_id}",
            "/api/tasks/{task_id}/cancel", "/health"} <= set(paths)
    assert set(paths["/api/tasks"]) == {"get", "post"}
    assert set(paths["/api/tasks/{task_id}"]) == {"get"} and set(paths["/api/tasks/{task_id}/cancel"]) == {"post"}

    webhook = paths[WEBHOOK]["post"]
    schema = webhook["requestBody"]["content"]["application/json"]["schema"]
    assert webhook["requestBody"]["required"] is True
    assert set(schema["properties"]) == {"task_id", "code"} and set(schema["required"]) == {"task_id", "code"}
    assert schema["properties"]["task_id"]["pattern"] == TASK_ID
    assert {"401", "403", "404", "409", "413", "422"} <= set(webhook["responses"])

    start = paths["/api/tasks"]["post"]
    schema = start["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"goal", "project_path", "verbose_updates", "plan", "priority", "at", "in",
                                          "call_when_done"}
    assert "PLAN_GOALS decides" in schema["properties"]["plan"]["description"]
    assert schema["properties"]["priority"]["enum"] == ["high", "normal", "low"]
    assert "HH:MM" in schema["properties"]["at"]["description"] and "1h30m" in schema["properties"]["in"]["description"]
    assert schema["required"] == ["goal"] and schema["additionalProperties"] is False
    assert {"201", "401", "413", "422"} <= set(start["responses"])
    assert [p["name"] for p in paths["/api/tasks"]["get"]["parameters"]] == ["limit"]
    assert [p["name"] for p in paths["/api/tasks/{task_id}"]["get"]["parameters"]] == ["task_id"]


# --- never a 500 ----------------------------------------------------------------------------------------------

json_leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=8)
FIELDS = {"goal", "project_path", "verbose_updates", "plan", "priority", "at", "in", "task_id", "code",
          "confirmation_code"}
other_keys = st.text(max_size=12).filter(lambda key: key not in FIELDS)


def encode(value, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def is_start(raw: bytes) -> bool:
    try:
        value = json.loads(raw)
    except ValueError:
        return False
    return isinstance(value, dict) and "goal" in value


# Bodies no route can act on: no task can start from them, and with no task in Redis no code can be stored.
invalid_bodies = st.one_of(
    st.binary(max_size=300).filter(lambda raw: not is_start(raw)),
    st.builds(encode, st.one_of(json_leaves, st.lists(json_values, max_size=4),  # JSON but not an object
                                st.dictionaries(other_keys, json_values, max_size=4),  # an object without goal
                                st.fixed_dictionaries({"goal": json_values.filter(lambda v: not isinstance(v, str))}),
                                st.fixed_dictionaries({"goal": st.text(max_size=30)},  # a goal and an unknown field
                                                      optional={"verbose_updates": json_values}).flatmap(
                                    lambda d: st.dictionaries(other_keys, json_values, min_size=1, max_size=2)
                                    .map(lambda extra: {**d, **extra})),
                                st.fixed_dictionaries({"task_id": st.text(max_size=40)  # confirmation-shaped
                                                       | st.from_regex(TASK_ID, fullmatch=True),
                                                       "code": json_values},
                                                      optional={"confirmation_code": json_values})),
              st.booleans()),
)


@hypothesis.settings(max_examples=150, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=invalid_bodies)
def test_no_body_makes_a_500_or_leaves_anything_behind(api, redis_client, body):
    answered = api.post(WEBHOOK, content=body, headers={"content-type": "application/json"})
    assert answered.status_code in (404, 422), (body, answered.text)  # no task exists: never 409, 403 or 200
    assert isinstance(answered.json()["detail"], str)
    started = api.post("/api/tasks", content=body, headers={"content-type": "application/json"})
    assert started.status_code == 422, (body, started.text)
    assert answered.json()["detail"] and started.json()["detail"].startswith("The body is not ")
    assert task_count(redis_client) == 0 and queue_length(redis_client) == 0
    assert confirmation_keys(redis_client) == []


goals = st.one_of(st.text(max_size=50),
                  st.text(alphabet=" \t\r\n\u00a0\u2003\u3000", max_size=8),  # blank once trimmed
                  st.builds(lambda pad, n: pad + "g" * n + pad, st.sampled_from(["", " ", "\n\t "]),
                            st.integers(1995, 2005)))  # around GOAL_MAX_CHARS
segments = st.lists(st.sampled_from(["calc", "..", ".", "", " ", "~", "a b", "\u00fc", "notes.txt", "c\x00x",
                                     "~nosuchuser", "p" * 300])
                    | st.text(max_size=12), max_size=4)
project_paths = st.none() | st.builds(lambda lead, parts: lead + "/".join(parts),
                                      st.sampled_from(["", "/", "./", "../", "~/", " "]), segments)


@hypothesis.settings(max_examples=150, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(goal=goals, project_path=project_paths, verbose=st.none() | st.booleans())
def test_any_well_formed_start_is_a_201_or_a_422(api, redis_client, projects, goal, project_path, verbose):
    (projects / "notes.txt").write_text("a file, not a folder")
    before = task_count(redis_client)
    answer = api.post("/api/tasks", json={"goal": goal, "project_path": project_path, "verbose_updates": verbose})
    assert answer.status_code in (201, 422), (goal, project_path, answer.text)
    if answer.status_code == 422:
        assert answer.json()["detail"].startswith(("The goal", "The project", "The body is not valid"))
        assert task_count(redis_client) == before
        return
    status = api.get(f"/api/tasks/{answer.json()['task_id']}").json()
    assert status["goal"] == goal.strip() and 0 < len(status["goal"]) <= 2000
    assert status["verbose_updates"] == verbose
    assert Path(status["project_path"]).is_relative_to(projects) and Path(status["project_path"]).is_dir()
    assert task_count(redis_client) == before + 1


start_times = st.none() | st.text(max_size=25) | st.sampled_from(["02:00", "23:59", "0:00", "24:00", "2:5", "12:60",
                                                                  "2030-01-01T02:00", "2024-01-01", "9999-12-31"])
delays = st.none() | st.text(max_size=12) | st.sampled_from(["90s", "2h", "1h30m", "0s", "7d", "8d", "1d1s", "h",
                                                             "99999999999999999999h"])


@hypothesis.settings(max_examples=100, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(at=start_times, delay=delays, priority=st.sampled_from(["high", "normal", "low", "HIGH", "", "urgent"]))
def test_any_start_time_or_priority_is_a_201_or_a_422_with_the_rule(api, redis_client, projects, at, delay, priority):
    before = task_count(redis_client)
    answer = api.post("/api/tasks", json={"goal": "Later", "at": at, "in": delay, "priority": priority})
    assert answer.status_code in (201, 422), (at, delay, priority, answer.text)
    if answer.status_code == 422:
        assert answer.json()["detail"].startswith(("The start time", "The delay", "A delay", "Give a start time",
                                                   "The body is not valid")), answer.text
        assert task_count(redis_client) == before
        return
    status = api.get(f"/api/tasks/{answer.json()['task_id']}").json()
    assert status["priority"] == priority and status["status"] == ("scheduled" if at or delay else "queued")
    assert (status["scheduled_for"] is not None) == bool(at or delay)
# --- pause and resume (core/pause.py) and the workers (core/pool.py) -----------------------------------------------
def test_the_workers_are_paused_and_resumed_over_the_api_and_health_shows_it(api, tars_server, redis_client, tasks):
    paused = api.post("/api/workers/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json() == {"paused": True, "changed": True, "detail": "Workers paused: no new task starts, and "
                             "running tasks wait at their next step. Resume with: python main_tars.py workers resume"}
    assert api.post("/api/workers/pause").json()["changed"] is False
    health = httpx.get(tars_server.url + "/health").json()
    assert health["paused"] is True and health["pool"] == []

    worker = Worker([Queue(QUEUE_NAME, connection=redis_client)], connection=redis_client, name="box.7")
    worker.register_birth()
    redis_client.hset(keys.worker_alive("box.7"), mapping={"host": "box", "pid": 7, "capabilities": "python"})
    listed = api.get("/api/workers").json()
    assert listed["paused"] is True and listed["paused_since"] > 0 and listed["queue_length"] == 0
    assert [(w["name"], w["state"], w["current_task"], w["capabilities"]) for w in listed["workers"]] == \
        [("box.7", "paused", None, ["python"])]
    assert httpx.get(tars_server.url + "/health").json()["pool"] == [
        {"name": "box.7", "state": "paused", "current_task": None, "capabilities": ["python"]}]

    resumed = api.post("/api/workers/resume")
    assert resumed.json() == {"paused": False, "changed": True,
                              "detail": "Workers resumed: queued tasks start and paused ones go on."}
    assert httpx.get(tars_server.url + "/health").json()["pool"][0]["state"] == "idle"
    assert api.post("/api/workers/resume").json()["changed"] is False
    worker.register_death()


def test_a_task_is_paused_alone_over_the_api_only_once_it_runs(api, tasks):
    task_id = tasks.start("Build a calculator")
    refused = api.post(f"/api/tasks/{task_id}/pause")
    assert refused.status_code == 409
    assert refused.json()["detail"].startswith(f"Task {task_id} has not started yet, so it cannot be paused")
    assert api.post(f"/api/tasks/{task_id}/resume").json() == {"detail": f"Task {task_id} is not paused."}
    assert api.post("/api/tasks/abc999/pause").status_code == 404
