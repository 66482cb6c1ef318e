"""The dashboard's Calls page: GET /dashboard/api/calls and /dashboard/api/calls/{sid} on the real app under uvicorn,
behind the login, and the page's own files (communication/static)."""

from __future__ import annotations

import time

import httpx

from core.call_history import CODE_MARK, CallHistory
from tests.communication.test_dashboard import STATIC, Browser, browser, server  # noqa: F401

OWNER = "+15551234567"
MORNING, REMINDER = "CA" + "1" * 32, "CA" + "2" * 32


def two_calls(settings, redis_client, tasks, projects) -> str:
    """This morning the owner phoned and started a task (and said their code); since, TARS phoned them back."""
    (projects / "notes").mkdir()
    history = CallHistory(redis_client, settings)
    now = time.time()
    history.start(MORNING, OWNER, "inbound", at=now - 600)
    history.add(MORNING, "caller", "add a readme to my notes project", at=now - 595)
    task_id = tasks.start("Add a README", project_path="notes", call_sid=MORNING)
    history.add(MORNING, "tars", f"Started task {task_id} in your notes project, sir.", at=now - 590)
    history.add(MORNING, "caller", "six two eight three", at=now - 580)
    history.end(MORNING, at=now - 540)
    history.start(REMINDER, OWNER, "outbound", "reminder", at=now - 60)
    return task_id


def test_the_owner_lists_the_calls_and_reads_one_with_its_task(browser, settings, redis_client, tasks, projects):
    task_id = two_calls(settings, redis_client, tasks, projects)
    listed = browser.get("calls")
    assert listed.status_code == 200, listed.text
    reminder, morning = listed.json()
    assert (reminder["call_sid"], reminder["direction"], reminder["purpose"], reminder["ended_at"]) == (
        REMINDER, "outbound", "reminder", None)
    assert (morning["call_sid"], morning["number"], morning["lines"], morning["task_ids"],
            morning["duration_seconds"]) == (MORNING, OWNER, 3, [task_id], 60.0)

    shown = browser.get(f"calls/{MORNING}")
    assert shown.status_code == 200, shown.text
    call = shown.json()
    assert [(line["who"], line["text"]) for line in call["transcript"]] == [
        ("caller", "add a readme to my notes project"),
        ("tars", f"Started task {task_id} in your notes project, sir."), ("caller", CODE_MARK)]
    (task,) = call["tasks"]
    assert (task["task_id"], task["status"], task["goal"]) == (task_id, "queued", "Add a README")


def test_an_unknown_call_is_a_404_saying_why_and_a_bad_period_a_422(browser):
    missing = browser.get("calls/CA-nope")
    assert missing.status_code == 404
    assert missing.json()["detail"] == ("There is no call 'CA-nope' in the call history (calls are kept 30 "
                                        "days).")
    assert browser.get("calls", params={"days": 0}).status_code == 422
    assert browser.get("calls", params={"days": 1}).json() == []


def test_calls_need_the_login(server, settings, redis_client, tasks, projects):
    two_calls(settings, redis_client, tasks, projects)
    for path in ("calls", f"calls/{MORNING}"):
        answer = httpx.get(f"{server.url}/dashboard/api/{path}")
        assert answer.status_code == 401 and "transcript" not in answer.text, path


def test_the_page_links_the_calls_and_each_call_links_its_tasks():
    app, index = (STATIC / "app.js").read_text(), (STATIC / "index.html").read_text()
    assert 'href="#/calls" data-testid="calls-link"' in index
    for testid in ("calls-page", "call-list", "call-row", "call-page", "transcript", "transcript-line", "call-task"):
        assert f'"{testid}"' in app, testid
    assert 'href: "#/call/" + call.call_sid' in app and 'href: "#/task/" + task.task_id' in app
    assert 'api("GET", "calls/" + encodeURIComponent(sid))' in app
