"""The web dashboard (communication/dashboard.py, communication/static/): its login, its JSON API and its two
Server-Sent Events streams, against the real app under uvicorn (ServerThread) or a real `python main_tars.py`
process, on the suite's Redis; tasks that really run, wait for a code or get cancelled come from real worker
processes and the fake Anthropic API. An ended task's branch routes (checkpoints, changes, merge, push, rollback,
discard) run real git on owner repositories built as in tests/test_task_branches.py.
"""

from __future__ import annotations

import contextlib
import html
import json
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from rq.job import Job, JobStatus

from communication import dashboard
from communication.dashboard import LOGIN_MAX_FAILURES, LOGIN_WINDOW_SECONDS, LOGIN_TTL_SECONDS
from core.keys import dashboard_login_failures as login_failures_key
from core.keys import dashboard_login as login_key
from communication.deps import BAD_CSRF, CROSS_SITE, DASHBOARD_OFF, NOT_LOGGED_IN
from core import event_log, keys, task_states
from core.defaults import SERVER_SHUTDOWN_GRACE_SECONDS
from core.redis_conn import free_port
from tests.communication.test_app import ServerProcess
from tests.conftest import TEST_CODE
from tests.fakes.anthropic_api import bash, edit, repeat, text
from tests.test_task_branches import bare_remote, ended, git, owner_repo, owner_state, run_burst
from tests.waiting import wait_until

PASSWORD = "correct-horse-battery"
STATIC = Path(dashboard.__file__).parent / "static"
TESTIDS = ["login-password", "login-submit", "login-error", "task-list", "task-row", "task-status", "new-task-goal",
           "new-task-project", "new-task-submit", "workers-panel", "queue-length", "task-page", "task-goal",
           "task-phase", "task-progress", "task-files", "task-tokens", "task-cost", "timeline", "timeline-event",
           "confirm-panel", "confirm-command", "confirm-reason", "confirm-code", "confirm-submit", "confirm-result",
           "cancel-button", "retry-button", "back-link", "logout-button", "branch-panel", "checkpoint-row",
           "branch-diffstat", "merge-button", "push-button", "rollback-select", "rollback-button", "discard-button",
           "branch-result", "new-task-priority", "task-priority"]
BRANCH_POSTS = (("merge", None), ("push", None), ("rollback", {"to": 0}), ("discard", {"confirm": True}))


@pytest.fixture
def server(serve):
    """The real app with the dashboard switched on."""
    return serve(DASHBOARD_PASSWORD=PASSWORD)


class Browser:
    """What a logged-in browser holds: the session cookie, and the CSRF token the page carries."""

    def __init__(self, server, password: str = PASSWORD, **client):
        self.client = httpx.Client(base_url=server.url, timeout=30, **client)
        answer = self.client.post("/login", data={"password": password})
        assert answer.status_code == 303, answer.text
        self.csrf = self.client.get("/dashboard/api/session").json()["csrf_token"]

    def get(self, path: str, **kw) -> httpx.Response:
        return self.client.get("/dashboard/api/" + path, **kw)

    def post(self, path: str, body=None, csrf: str | None = "session", **headers) -> httpx.Response:
        if csrf is not None:
            headers["X-CSRF-Token"] = self.csrf if csrf == "session" else csrf
        return self.client.post(("/dashboard/api/" + path) if not path.startswith("/") else path, json=body,
                                headers=headers)

    def task(self, task_id: str) -> dict:
        answer = self.get(f"tasks/{task_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def close(self):
        self.client.close()


@pytest.fixture
def browser(server):
    made = Browser(server)
    yield made
    made.close()


def sse(response: httpx.Response):
    """The Server-Sent Events of a streaming response: dicts with id/event/data, and {"comment": ...} lines."""
    event: dict = {}
    for line in response.iter_lines():
        if line == "":
            if event:
                yield event
            event = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            event[name] = event["data"] + "\n" + value if name == "data" and "data" in event else value


def read_stream(browser: Browser, path: str, headers: dict | None = None, timeout: float = 60,
                opened: threading.Event | None = None) -> list[dict]:
    """Every event of a stream until the server closes it (comments left out); `opened` is set once it answered."""
    got = []
    with browser.client.stream("GET", "/dashboard/api/" + path, headers=headers or {},
                               timeout=httpx.Timeout(timeout)) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse(response)
        assert next(events) == {"retry": "3000"}  # an EventSource that lost the stream reconnects after 3 s
        if opened is not None:
            opened.set()
        got.extend(event for event in events if "comment" not in event)
    return got


def list_after_retry(events):
    assert next(events) == {"retry": "3000"}
    return events


def timeline_of(events: list[dict]) -> list[dict]:
    return [json.loads(e["data"]) for e in events if e["event"] != "end"]


def stored(redis_client) -> set[bytes]:
    return set(redis_client.keys("*"))


# --- the pages and the login ----------------------------------------------------------------------------------

def test_the_login_page_then_a_login_sets_a_strict_httponly_cookie_and_opens_the_dashboard(server, redis_client):
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'data-testid="login-password"' in page.text and 'data-testid="login-submit"' in page.text
    assert 'action="/login"' in page.text and 'name="csrf-token"' not in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    assert re.search(r'data-testid="login-error" hidden>\s*</p>', page.text)  # no error before a try

    answer = httpx.post(server.url + "/login", data={"password": PASSWORD})
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    token = re.match(r"tars_session=([A-Za-z0-9_-]+);", cookie).group(1)
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/", f"max-age={LOGIN_TTL_SECONDS}"} <= flags
    assert "secure" not in flags  # PUBLIC_BASE_URL is not https here
    assert len(token) >= 43  # 32 random bytes
    session = redis_client.hgetall(login_key(token))
    assert set(session) == {b"csrf", b"created_at", b"ip"}
    assert LOGIN_TTL_SECONDS - 60 < redis_client.ttl(login_key(token)) <= LOGIN_TTL_SECONDS
    assert not redis_client.keys(f"*{token}*")  # the token itself is not in Redis, only its hash

    home = httpx.get(server.url + "/", cookies={"tars_session": token})
    assert home.status_code == 200
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', home.text).group(1)
    assert csrf == session[b"csrf"].decode()
    assert 'src="/static/app.js"' in home.text and 'data-testid="logout-button"' in home.text
    served = re.search(r'<meta name="tars-vocabulary" content="([^"]+)">', home.text).group(1)
    assert json.loads(html.unescape(served)) == task_states.vocabulary()  # the page's names are core's
    assert httpx.get(server.url + "/dashboard/api/session", cookies={"tars_session": token}).json()["csrf_token"] \
        == csrf


def test_a_wrong_password_is_a_401_login_page_saying_so(server, redis_client):
    answer = httpx.post(server.url + "/login", data={"password": "not-the-password"})
    assert answer.status_code == 401 and "set-cookie" not in answer.headers
    assert re.search(r'data-testid="login-error">Wrong password\.</p>', answer.text)
    assert "4 more wrong tries" in answer.text
    assert not redis_client.keys("tars:dashboard:session:*")
    for form in ({}, {"password": ""}, {"password": PASSWORD[:-1]}, {"password": PASSWORD + "x"},
                 {"password": "é" * 10}, {"pass": PASSWORD}):
        redis_client.delete(login_failures_key("127.0.0.1"))
        assert httpx.post(server.url + "/login", data=form).status_code == 401, form
    assert not redis_client.keys("tars:dashboard:session:*")


def test_https_public_url_makes_the_cookie_secure_and_its_origin_may_log_in(serve):
    server = serve(DASHBOARD_PASSWORD=PASSWORD, PUBLIC_BASE_URL="https://tars.example.test")
    answer = httpx.post(server.url + "/login", data={"password": PASSWORD},
                        headers={"Origin": "https://tars.example.test"})
    assert answer.status_code == 303
    assert "secure" in {part.strip().lower() for part in answer.headers["set-cookie"].split(";")}


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1.evil.example", "file://",
                                    "http://localhost"])
def test_a_login_from_another_origin_is_refused(server, redis_client, origin):
    answer = httpx.post(server.url + "/login", data={"password": PASSWORD}, headers={"Origin": origin})
    assert answer.status_code == 403 and "set-cookie" not in answer.headers
    assert dashboard.LOGIN_ELSEWHERE in answer.text
    assert not redis_client.keys("tars:dashboard:*")  # not even counted as an attempt
    same = httpx.post(server.url + "/login", data={"password": PASSWORD}, headers={"Origin": server.url})
    assert same.status_code == 303


def test_five_wrong_passwords_pause_logins_from_that_address_even_with_the_right_one(server, redis_client):
    def login(password, address="127.0.0.1"):
        with httpx.Client(transport=httpx.HTTPTransport(local_address=address)) as client:
            return client.post(server.url + "/login", data={"password": password})

    # a right password clears the count
    assert [login("wrong-1").status_code for _ in range(3)] == [401] * 3
    assert login(PASSWORD).status_code == 303
    assert not redis_client.exists(login_failures_key("127.0.0.1"))

    answers = [login(f"guess-{i}") for i in range(LOGIN_MAX_FAILURES)]
    assert [a.status_code for a in answers] == [401] * LOGIN_MAX_FAILURES
    assert "Logins from your address now pause for 5 minutes." in answers[-1].text
    for password in ("guess-again", PASSWORD):
        limited = login(password)
        assert limited.status_code == 429, limited.text
        assert 0 < int(limited.headers["retry-after"]) <= LOGIN_WINDOW_SECONDS
        assert "Too many wrong passwords from your address: try again in 5 minutes." in limited.text
        assert "even with the right password" in limited.text and "set-cookie" not in limited.headers
    assert 0 < redis_client.ttl(login_failures_key("127.0.0.1")) <= LOGIN_WINDOW_SECONDS  # the window never grows

    # another address has its own count
    assert login(PASSWORD, "127.0.0.2").status_code == 303

    # once the window has passed, the right password works again
    redis_client.pexpire(login_failures_key("127.0.0.1"), 300)
    wait_until(lambda: not redis_client.exists(login_failures_key("127.0.0.1")), 5, "the window to pass")
    assert login(PASSWORD).status_code == 303


def test_parallel_guesses_cannot_get_past_the_limit(server, redis_client):
    answers = []

    def guess(i):
        answers.append(httpx.post(server.url + "/login", data={"password": f"parallel-{i}"}, timeout=20).status_code)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [401] * LOGIN_MAX_FAILURES + [429] * (20 - LOGIN_MAX_FAILURES)


def test_logout_ends_the_session_and_clears_the_cookie(server, browser, redis_client):
    token = browser.client.cookies["tars_session"]
    assert redis_client.exists(login_key(token))
    assert browser.post("/logout", csrf=None).status_code == 403  # a cross-site form cannot log you out either
    answer = browser.post("/logout")
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    assert 'tars_session=""' in answer.headers["set-cookie"] and "max-age=0" in answer.headers["set-cookie"].lower()
    assert not redis_client.exists(login_key(token))
    stale = httpx.get(server.url + "/dashboard/api/tasks", cookies={"tars_session": token})
    assert stale.status_code == 401 and stale.json() == {"detail": NOT_LOGGED_IN}
    assert 'data-testid="login-password"' in httpx.get(server.url + "/", cookies={"tars_session": token}).text


def test_without_dashboard_password_the_dashboard_is_off_and_says_how_to_switch_it_on(serve, redis_client):
    server = serve()  # tars_env sets no DASHBOARD_PASSWORD
    before = stored(redis_client)
    page = httpx.get(server.url + "/")
    assert page.status_code == 200
    assert "The dashboard is off" in page.text and "DASHBOARD_PASSWORD" in page.text
    assert 'data-testid="login-password"' not in page.text
    # restart as started: `up` (server and worker), or the server alone beside workers of one's own
    assert "<code>python main_tars.py up</code>" in page.text and "<code>python main_tars.py</code>" in page.text
    login = httpx.post(server.url + "/login", data={"password": PASSWORD})
    assert login.status_code == 404 and "set-cookie" not in login.headers and "DASHBOARD_PASSWORD" in login.text
    for method, path in (("GET", "tasks"), ("GET", "session"), ("GET", "overview/stream"), ("POST", "tasks")):
        answer = httpx.request(method, f"{server.url}/dashboard/api/{path}", json={"goal": "x"})
        assert answer.status_code == 404 and answer.json() == {"detail": DASHBOARD_OFF}
    assert httpx.get(server.url + "/static/app.js").status_code == 200
    assert stored(redis_client) == before  # nothing counted, nothing started


# --- authentication and CSRF on every route --------------------------------------------------------------------

def dashboard_routes(app) -> list[tuple[str, str]]:
    found = []

    def walk(routes):
        for route in routes:
            if hasattr(route, "original_router"):
                walk(route.original_router.routes)
            elif getattr(route, "path", "").startswith(("/dashboard/", "/logout")):
                found.extend((m, route.path) for m in sorted(route.methods - {"HEAD"}))

    walk(app.routes)
    return found


def test_every_dashboard_api_route_needs_a_session(server, tasks, redis_client):
    task_id = tasks.start("Build a calculator")
    routes = dashboard_routes(server.app)
    assert len(routes) == 25, routes  # with the pause routes, the Report page's numbers and the Calls page
    before = stored(redis_client)
    for method, path in routes:
        url = server.url + path.replace("{task_id}", task_id)
        for cookies in ({}, {"tars_session": "forged"}, {"tars_session": "x" * 5000}, {"other": "1"}):
            answer = httpx.request(method, url, cookies=cookies, json={"goal": "x", "code": TEST_CODE},
                                   headers={"X-CSRF-Token": "guess"})
            assert answer.status_code == 401, (method, path, cookies, answer.text)
            assert answer.json() == {"detail": NOT_LOGGED_IN}
    assert stored(redis_client) == before
    assert tasks.status(task_id).status == "queued"


@pytest.mark.parametrize("headers", [{}, {"X-CSRF-Token": ""}, {"X-CSRF-Token": "wrong-token"},
                                     {"X-CSRF-Token": "é".encode("latin-1")}, "other session's", "cross-site"])
def test_a_state_change_without_the_sessions_csrf_token_is_a_403_and_changes_nothing(server, browser, tasks,
                                                                                      redis_client, headers):
    task_id = tasks.start("Build a calculator")
    ended = tasks.start("Ended already")
    tasks.cancel(ended)
    if headers == "other session's":
        headers = {"X-CSRF-Token": Browser(server).csrf}
        expected = BAD_CSRF
    elif headers == "cross-site":
        headers = {"X-CSRF-Token": browser.csrf, "Origin": "https://evil.example"}
        expected = CROSS_SITE
    else:
        expected = BAD_CSRF
    before = stored(redis_client)
    for path, body in (("tasks", {"goal": "Delete everything"}), (f"tasks/{task_id}/cancel", None),
                       (f"tasks/{ended}/retry", None), (f"tasks/{task_id}/confirm", {"code": TEST_CODE}),
                       (f"tasks/{task_id}/pause", None), (f"tasks/{task_id}/resume", None), ("workers/pause", None),
                       ("workers/resume", None),
                       *((f"tasks/{ended}/{action}", body) for action, body in BRANCH_POSTS), ("/logout", None)):
        answer = browser.post(path, body, csrf=None, **headers)
        assert answer.status_code == 403, (path, answer.text)
        assert answer.json() == {"detail": expected}
    assert stored(redis_client) == before
    assert tasks.status(task_id).status == "queued" and len(tasks.list(50)) == 2
    assert browser.get("tasks").status_code == 200  # still logged in


# --- the JSON API with real workers ------------------------------------------------------------------------------

def test_start_from_the_dashboard_confirm_with_the_code_then_retry(browser, fake_api, projects, start_worker,
                                                                   redis_client):
    fake_api.script([bash("rm -f old.txt"), text("Removed old.txt.")], match="the stale file")
    (projects / "cleanup").mkdir()
    (projects / "cleanup" / "old.txt").write_text("stale\n")
    started = browser.post("tasks", {"goal": "Delete the stale file", "project_path": "cleanup"})
    assert started.status_code == 201, started.text
    task_id = started.json()["task_id"]
    assert started.json() == {"task_id": task_id, "held": False}  # no daily budget holds it
    queued = browser.task(task_id)
    assert queued["status"] == "queued" and queued["pending_confirmation"] is None
    assert queued["goal"] == "Delete the stale file" and queued["project_path"] == str(projects / "cleanup")
    assert 0 <= queued["age_seconds"] < 30
    assert browser.post(f"tasks/{task_id}/confirm", {"code": TEST_CODE}).status_code == 409  # not waiting yet

    worker = start_worker()
    waiting = wait_until(lambda: (t := browser.task(task_id))["status"] == "awaiting_confirmation" and t, 30,
                         "the task to ask for its code")
    assert waiting["pending_confirmation"] == {"command": "rm -f old.txt", "reason": "`rm` deletes files",
                                               "attempts_left": 5}
    assert waiting["confirmation_command"] == "rm -f old.txt"

    wrong = browser.post(f"tasks/{task_id}/confirm", {"code": "0000"})
    assert wrong.status_code == 403
    assert wrong.json() == {"status": "rejected", "task_id": task_id, "attempts_left": 4,
                            "detail": f"Code rejected for task {task_id}: 4 attempts left."}
    assert browser.task(task_id)["pending_confirmation"]["attempts_left"] == 4
    assert (projects / "cleanup" / "old.txt").exists()
    for body in ({}, {"code": None}, {"code": ["6283"]}, {"code": TEST_CODE, "extra": 1}):
        assert browser.post(f"tasks/{task_id}/confirm", body).status_code == 422, body

    right = browser.post(f"tasks/{task_id}/confirm", {"code": TEST_CODE})
    assert right.status_code == 200, right.text
    assert right.json() == {"status": "accepted", "task_id": task_id,
                            "detail": f"Code accepted: task {task_id} runs the command now."}
    done = wait_until(lambda: (t := browser.task(task_id))["status"] == "complete" and t["result"] and t, 30,
                      "the task to complete")
    assert not (projects / "cleanup" / "old.txt").exists()
    assert sum(done["usage"].values()) > 0 and done["cost_usd"] is not None and done["pending_confirmation"] is None
    again = browser.post(f"tasks/{task_id}/confirm", {"code": TEST_CODE})
    assert again.status_code == 409 and "already ended" in again.json()["detail"]

    listed = browser.get("tasks").json()
    assert [t["task_id"] for t in listed] == [task_id] and listed[0]["status"] == "complete"
    assert listed[0]["age_seconds"] >= 0 and "pending_confirmation" not in listed[0]

    retried = browser.post(f"tasks/{task_id}/retry")
    assert retried.status_code == 201, retried.text
    new_id = retried.json()["task_id"]
    assert new_id != task_id and browser.task(new_id)["retry_of"] == task_id
    assert [t["task_id"] for t in browser.get("tasks?limit=1").json()] == [new_id]
    wait_until(lambda: browser.task(new_id)["status"] not in ("queued", "running"), 30, "the retry to end")
    assert worker.process.poll() is None


def test_cancel_a_running_task_from_the_dashboard(browser, tasks, fake_api, start_worker):
    fake_api.script([bash("sleep 30"), text("never")], match="the long job")
    task_id = browser.post("tasks", {"goal": "Run the long job", "project_path": "long"}).json()["task_id"]
    assert browser.post(f"tasks/{task_id}/retry").status_code == 409  # still active
    start_worker()
    wait_until(lambda: browser.task(task_id)["progress"] == "Running: sleep 30", 30, "the long command to run")
    cancelled = browser.post(f"tasks/{task_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["reason"] == "The task was cancelled."
    again = browser.post(f"tasks/{task_id}/cancel")
    assert again.status_code == 409
    assert again.json() == {"detail": f"Task {task_id} has already ended (cancelled), so there is nothing to "
                                      f"cancel."}


def test_the_start_form_sends_a_priority_or_a_start_time_and_the_list_shows_them(browser, tasks, redis_client):
    urgent = browser.post("tasks", {"goal": "Fix the outage", "priority": "high"})
    assert urgent.status_code == 201, urgent.text
    urgent_id = urgent.json()["task_id"]
    assert browser.task(urgent_id)["priority"] == "high"
    assert redis_client.lrange(keys.rq_queue("tars_programming:high"), 0, -1) == [urgent_id.encode()]
    later = browser.post("tasks", {"goal": "Nightly build", "in": "2h", "priority": "low"})
    assert later.status_code == 201 and later.json()["scheduled_for"], later.text
    listed = {t["task_id"]: t for t in browser.get("tasks").json()}
    assert (listed[urgent_id]["status"], listed[urgent_id]["priority"]) == ("queued", "high")
    scheduled = listed[later.json()["task_id"]]
    assert (scheduled["status"], scheduled["priority"]) == ("scheduled", "low")
    assert scheduled["scheduled_for"] == later.json()["scheduled_for"]
    assert scheduled["progress"].startswith("Scheduled to start ")
    refused = browser.post("tasks", {"goal": "x", "priority": "urgent"})
    assert refused.status_code == 422 and "priority" in refused.json()["detail"]
    assert browser.post("tasks", {"goal": "x", "at": "99:99"}).json()["detail"].startswith("The start time '99:99'")


def test_invalid_starts_and_unknown_tasks_are_4xx_with_the_sentence(browser, projects, redis_client):
    for body, status in (({"goal": "  "}, 422), ({"goal": "x" * 2001}, 422), ({}, 422), ({"goal": 3}, 422),
                         ({"goal": "x", "project_path": "/etc"}, 422), ({"goal": "x", "unknown": 1}, 422),
                         (None, 422), ([], 422)):
        answer = browser.post("tasks", body)
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()["detail"]
    assert "outside the projects folder" in browser.post("tasks", {"goal": "x", "project_path": "/etc"}).text
    big = browser.client.post("/dashboard/api/tasks", content=b'{"goal": "' + b"x" * 70_000 + b'"}',
                              headers={"X-CSRF-Token": browser.csrf, "content-type": "application/json"})
    assert big.status_code == 413 and big.json() == {"detail": "The body is larger than 64 KiB."}
    for task_id in ("abcdef", "ABCDEF12", "zzzz", "a" * 40, "%00", "%2e%2e", "%23abcd"):
        for answer in (browser.get(f"tasks/{task_id}"), browser.get(f"tasks/{task_id}/events"),
                       browser.get(f"tasks/{task_id}/stream"), browser.post(f"tasks/{task_id}/cancel"),
                       browser.post(f"tasks/{task_id}/retry"),
                       browser.post(f"tasks/{task_id}/confirm", {"code": TEST_CODE}),
                       browser.get(f"tasks/{task_id}/checkpoints"), browser.get(f"tasks/{task_id}/changes"),
                       *(browser.post(f"tasks/{task_id}/{action}", body) for action, body in BRANCH_POSTS)):
            assert answer.status_code == 404, (task_id, answer.request.url, answer.text)
            assert answer.json()["detail"].startswith("There is no task")
    assert browser.get("tasks?limit=0").status_code == 422 and browser.get("tasks?limit=201").status_code == 422
    assert not redis_client.keys("task:*")


# --- the task stream -------------------------------------------------------------------------------------------

def test_a_tasks_stream_gives_its_timeline_live_in_order_and_ends(browser, tasks, fake_api, start_worker, projects,
                                                                 redis_client):
    fake_api.script([edit(command="create", path="hello.py", file_text="print('hi')\n"), bash("python hello.py"),
                     text("Wrote hello.py.")], match="hello program")
    task_id = browser.post("tasks", {"goal": "Write the hello program", "project_path": "hello"}).json()["task_id"]
    got: list[dict] = []
    opened = threading.Event()
    reader = threading.Thread(target=lambda: got.extend(read_stream(browser, f"tasks/{task_id}/stream",
                                                                    opened=opened)))
    reader.start()
    assert opened.wait(30), "the stream did not open"  # open before the task runs: what follows arrives live
    start_worker()
    reader.join(60)
    assert not reader.is_alive()

    assert got[-1]["event"] == "end" and json.loads(got[-1]["data"]) == {"task_id": task_id}
    stored_events = [e.to_dict() for e in event_log.read(redis_client, task_id)]
    assert timeline_of(got) == stored_events  # the same events, the same order, nothing twice
    assert [e["id"] for e in got[:-1]] == [e["id"] for e in stored_events]
    assert [e["event"] for e in got[:-1]] == [e["type"] for e in stored_events]
    types = [e["type"] for e in stored_events]
    assert types[0] == "queued" and types[-1] == "complete" and {"started", "file_edit", "command"} <= set(types)
    assert browser.task(task_id)["files_changed"] == ["hello.py"]

    # the past timeline as JSON too, and an ended task's stream replays it and ends at once
    assert browser.get(f"tasks/{task_id}/events").json() == stored_events
    assert timeline_of(read_stream(browser, f"tasks/{task_id}/stream")) == stored_events

    # resuming: after Last-Event-ID (an EventSource reconnecting), or ?after=; the header wins
    third = stored_events[2]["id"]
    resumed = read_stream(browser, f"tasks/{task_id}/stream", headers={"Last-Event-ID": third})
    assert timeline_of(resumed) == stored_events[3:] and resumed[-1]["event"] == "end"
    assert timeline_of(read_stream(browser, f"tasks/{task_id}/stream?after={third}")) == stored_events[3:]
    header_wins = read_stream(browser, f"tasks/{task_id}/stream?after={stored_events[0]['id']}",
                              headers={"Last-Event-ID": stored_events[-2]["id"]})
    assert timeline_of(header_wins) == stored_events[-1:]
    after_the_end = read_stream(browser, f"tasks/{task_id}/stream", headers={"Last-Event-ID": stored_events[-1]["id"]})
    assert after_the_end == [{"event": "end", "data": json.dumps({"task_id": task_id}, separators=(",", ":"))}]
    assert browser.get(f"tasks/{task_id}/events?after={third}").json() == stored_events[3:]
    for bad in ("x", "1-2-3", "-1", "1" * 30 + "-0", "1-0; drop"):
        assert browser.get(f"tasks/{task_id}/stream", headers={"Last-Event-ID": bad}).status_code == 422
        assert browser.get(f"tasks/{task_id}/events", params={"after": bad}).status_code == 422


def test_a_quiet_stream_sends_keepalives_and_stops_when_the_client_goes(browser, tasks, monkeypatch):
    monkeypatch.setattr(dashboard, "KEEPALIVE_SECONDS", 0.3)
    task_id = tasks.start("Nobody runs this")  # no worker: the stream stays quiet
    reads = []
    real_read = event_log.read
    monkeypatch.setattr(event_log, "read", lambda *a, **kw: reads.append(a[1]) or real_read(*a, **kw))
    seen = []
    with browser.client.stream("GET", f"/dashboard/api/tasks/{task_id}/stream", timeout=10) as response:
        for event in list_after_retry(sse(response)):
            seen.append(event)
            if sum("comment" in e for e in seen) == 2:
                break
    assert seen[0]["event"] == "queued" and seen[1:] == [{"comment": "keepalive"}] * 2
    wait_until(lambda: (n := len(reads)) and time.sleep(1) is None and len(reads) == n, 10,
               "the stream to stop reading once the client left")


def test_a_task_that_ends_without_its_ending_event_still_ends_the_stream(browser, tasks, redis_client):
    task_id = tasks.start("Cancelled while queued")
    tasks.cancel(task_id)
    redis_client.delete(keys.task_events(task_id))  # as if the timeline had expired
    started = time.monotonic()
    assert read_stream(browser, f"tasks/{task_id}/stream", timeout=60)[-1]["event"] == "end"
    assert time.monotonic() - started < 30  # by itself (about 3 s), not never (the read timeout)


def test_a_stream_waits_for_the_ending_event_while_the_horse_still_writes_it(browser, tasks, redis_client,
                                                                           monkeypatch):
    """A work-horse stores the ended phase a moment before it adds the ending event. The stream saw the status
    ended, gave the event a second, and closed; on a loaded machine the horse stalled longer than that, and the
    page never showed `complete`. While RQ still runs the job, the stream waits for the event."""
    for name, seconds in (("STREAM_POLL_SECONDS", 0.02), ("STATUS_CHECK_SECONDS", 0.02), ("ENDED_GRACE_SECONDS", 0.05)):
        monkeypatch.setattr(dashboard, name, seconds)
    task_id = tasks.start("Ends on a loaded machine")
    job = Job.fetch(task_id, connection=redis_client)
    job.set_status(JobStatus.STARTED)
    job.meta["phase"] = "complete"  # the horse's last meta write; its `complete` event is not there yet
    job.save_meta()
    assert tasks.status(task_id).status == "complete"  # what a stream checking the status sees
    reads = []
    real_read = event_log.read
    monkeypatch.setattr(event_log, "read", lambda *a, **kw: reads.append(a[1]) or real_read(*a, **kw))
    got: list[dict] = []
    reader = threading.Thread(target=lambda: got.extend(read_stream(browser, f"tasks/{task_id}/stream")))
    reader.start()
    wait_until(lambda: len(reads) >= 50 or not reader.is_alive(), 60,
               "the stream to look for new events 50 times (20 times its grace), or to end")
    assert reader.is_alive(), f"the stream ended before the ending event: {got}"
    event_log.append(redis_client, task_id, "complete", "Done.", "complete")
    reader.join(60)
    assert not reader.is_alive()
    assert [e["event"] for e in got] == ["queued", "complete", "end"]


# --- the overview and the workers ----------------------------------------------------------------------------------

def test_the_overview_stream_shows_new_tasks_and_workers_as_they_come(browser, tasks, start_worker, fake_api):
    fake_api.script([text("Done.")])
    views: list[dict] = []
    with browser.client.stream("GET", "/dashboard/api/overview/stream", timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = list_after_retry(sse(response))

        def next_view():
            event = next(events)
            assert event["event"] == "overview", event
            views.append(json.loads(event["data"]))
            return views[-1]

        first_view = next_view()
        assert {k: v for k, v in first_view.items() if k != "budget"} == {"tasks": [], "workers": [], "queue_length": 0,
                                                                           "paused": False, "paused_since": None}
        assert first_view["budget"]["exhausted"] is False  # no DAILY_BUDGET_USD: no banner
        first = tasks.start("First task")
        view = next_view()
        assert [t["task_id"] for t in view["tasks"]] == [first] and view["queue_length"] == 1
        assert view["tasks"][0]["status"] == "queued" and view["tasks"][0]["age_seconds"] >= 0
        worker = start_worker()
        # until the worker shows and the task has ended (any ending: a failed task must not keep this loop reading
        # until pytest's timeout); each read waits at most 15 s, the overview's longest silence
        deadline = time.monotonic() + 150
        while not (view["workers"] and view["tasks"][0]["status"] not in ("queued", "running",
                                                                          "awaiting_confirmation")):
            assert time.monotonic() < deadline, f"no worker, or the task did not end: {view}\n{worker.log}"
            view = next_view()
        assert view["tasks"][0]["status"] == "complete", (view["tasks"][0], worker.log)
        assert view["queue_length"] == 0 and len(view["workers"]) == 1
        item = view["workers"][0]
        assert item["pid"] == worker.process.pid and item["alive"] is True and item["host"]
        assert {"name", "state", "current_task", "horse_pid", "last_seen"} <= set(item)
    assert len(views) < 40  # only changes were sent, not one per second

    listed = browser.get("workers").json()
    assert listed["queue_length"] == 0 and [w["name"] for w in listed["workers"]] == [item["name"]]


def test_many_open_tabs_read_the_overview_from_redis_as_often_as_one(browser, redis_client, tasks):
    for i in range(5):
        tasks.start(f"Task {i}")

    def commands_while_open(tabs: int, seconds: float = 6.0) -> int:  # long enough that a stall evens out
        with contextlib.ExitStack() as stack:
            streams = [sse(stack.enter_context(browser.client.stream("GET", "/dashboard/api/overview/stream")))
                       for _ in range(tabs)]  # kept: a dropped iterator closes its response
            for events in streams:
                assert next(e for e in events if "event" in e)["event"] == "overview"
            before = redis_client.info("stats")["total_commands_processed"]
            time.sleep(seconds)
            return redis_client.info("stats")["total_commands_processed"] - before

    one, four = commands_while_open(1), commands_while_open(4)
    assert one > 0 and four < 2 * one, (one, four)  # each tab reading for itself would cost about 4x


def test_the_overview_is_sent_again_after_a_quiet_while(browser, monkeypatch):
    monkeypatch.setattr(dashboard, "OVERVIEW_MAX_SILENCE", 0.5)
    started = time.monotonic()
    with browser.client.stream("GET", "/dashboard/api/overview/stream", timeout=60) as response:
        stream = list_after_retry(sse(response))
        events = [next(stream) for _ in range(3)]
    assert [e["event"] for e in events] == ["overview"] * 3
    assert time.monotonic() - started < 20  # about 2 s; the default 15 s silence would need 30 s


# --- an ended task's branch: real git, real workers ------------------------------------------------------------

def worktree_of(tasks, task_id) -> Path:
    return Path(Job.fetch(task_id, connection=tasks.redis).get_meta()["checkout"]["path"])


@pytest.mark.usefixtures("private_git")
def test_an_ended_tasks_checkpoints_and_changes_are_listed_and_it_rolls_back(browser, tasks, fake_api, start_worker,
                                                                             projects):
    repo = owner_repo(projects / "calc", {"calc.py": "def add(a, b):\n    return a - b\n",
                                          "test_calc.py": "from calc import add\n\n\ndef test_add():\n"
                                                          "    assert add(2, 2) == 4\n"})
    before = owner_state(repo)
    fake_api.script([edit(command="create", path="NOTES.md", file_text="plan: fix add\n"),
                     edit(command="str_replace", path="calc.py", old_str="a - b", new_str="a + b"),
                     bash("python -m pytest -q"), text("Fixed add.")])
    task_id = browser.post("tasks", {"goal": "Fix add", "project_path": "calc"}).json()["task_id"]
    run_burst(start_worker)
    assert ended(tasks, task_id).status == "complete"
    assert browser.task(task_id)["branch"] == f"tars/{task_id}"

    listed = browser.get(f"tasks/{task_id}/checkpoints")
    assert listed.status_code == 200, listed.text
    points = listed.json()
    assert [set(p) for p in points] == [{"number", "sha", "message", "tests_passed", "committed_at"}] * 2
    assert [(p["number"], p["message"], p["tests_passed"]) for p in points] == [
        (1, "Creating NOTES.md", False), (2, "Editing calc.py", True)]
    assert [p["sha"] for p in points] == git(repo, "rev-list", "--reverse", f"{before['head']}..tars/{task_id}"
                                             ).splitlines()
    assert all(abs(p["committed_at"] - time.time()) < 300 for p in points)

    changes = browser.get(f"tasks/{task_id}/changes")
    assert changes.status_code == 200, changes.text
    info = changes.json()
    assert (info["mode"], info["branch"], info["base"], info["start_branch"], info["commits"]) == (
        "worktree", f"tars/{task_id}", before["head"], "main", 2)
    assert sorted((f["path"], f["added"], f["removed"]) for f in info["files"]) == [("NOTES.md", 1, 0),
                                                                                   ("calc.py", 1, 1)]
    assert "2 files changed, 2 insertions(+), 1 deletion(-)" in info["diffstat"] and " calc.py " in info["diffstat"]
    assert info["tests_passed"] is True and info["uncommitted"] is False
    assert info["sentence"] == f"Branch tars/{task_id}: 2 commits, 2 files changed (+2 -1), tests pass."

    worktree = worktree_of(tasks, task_id)
    for body in ({"to": -1}, {"to": "1"}, {"to": True}, {"to": 1.5}, {"to": 1, "extra": 1}, [], None):
        refused = browser.post(f"tasks/{task_id}/rollback", body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.json()["detail"].startswith("The body is not valid")
    missing = browser.post(f"tasks/{task_id}/rollback", {"to": 5})
    assert missing.status_code == 422
    assert missing.json() == {"detail": f"Task {task_id} has checkpoints 1 to 2; there is no checkpoint 5 to roll "
                                        "back to."}
    assert git(repo, "rev-parse", f"tars/{task_id}") == points[1]["sha"]  # nothing moved

    back = browser.post(f"tasks/{task_id}/rollback", {})  # no "to": one checkpoint back
    assert back.status_code == 200, back.text
    assert back.json() == {**points[0], "detail": f"Task {task_id} is rolled back to checkpoint 1: Creating "
                                                  "NOTES.md."}
    assert (worktree / "calc.py").read_text().endswith("a - b\n") and (worktree / "NOTES.md").exists()
    assert [p["number"] for p in browser.get(f"tasks/{task_id}/checkpoints").json()] == [1]

    start = browser.post(f"tasks/{task_id}/rollback", {"to": 0})
    assert start.status_code == 200, start.text
    assert start.json() == {"number": 0, "sha": before["head"], "message": "the state before the task",
                            "tests_passed": False, "committed_at": 0,
                            "detail": f"Task {task_id} is rolled back to before it started."}
    assert not (worktree / "NOTES.md").exists() and git(repo, "rev-parse", f"tars/{task_id}") == before["head"]
    assert browser.get(f"tasks/{task_id}/checkpoints").json() == []
    emptied = browser.get(f"tasks/{task_id}/changes").json()
    assert (emptied["commits"], emptied["files"], emptied["diffstat"]) == (0, [], "")
    assert owner_state(repo) == before  # the owner's repository saw none of it


@pytest.mark.usefixtures("private_git")
def test_merge_fast_forwards_the_owners_repo_and_a_blocked_or_conflicting_merge_changes_nothing(
        browser, tasks, fake_api, start_worker, projects):
    repo = owner_repo(projects / "site", {"index.html": "<h1>Hello</h1>\n"})
    fake_api.script([edit(command="str_replace", path="index.html", old_str="Hello", new_str="Hello from TARS"),
                     text("Changed the heading.")], match="Change the heading")
    fake_api.script([edit(command="str_replace", path="index.html", old_str="Hello", new_str="Good morning"),
                     text("Changed the greeting.")], match="Change the greeting")
    first = browser.post("tasks", {"goal": "Change the heading", "project_path": "site"}).json()["task_id"]
    second = browser.post("tasks", {"goal": "Change the greeting", "project_path": "site"}).json()["task_id"]
    run_burst(start_worker)
    assert (ended(tasks, first).status, ended(tasks, second).status) == ("complete", "complete")

    # The owner is editing the file the task changed: refused with that file, nothing changed.
    (repo / "index.html").write_text("<h1>Hello, owner at work</h1>\n")
    before = owner_state(repo)
    blocked = browser.post(f"tasks/{first}/merge")
    assert blocked.status_code == 409, blocked.text
    assert blocked.json()["files"] == ["index.html"]
    assert blocked.json()["detail"].startswith("Your uncommitted changes to index.html in ")
    assert blocked.json()["detail"].endswith("commit or stash them, then merge again. Nothing was changed.")
    assert owner_state(repo) == before

    git(repo, "checkout", "--", "index.html")
    before = owner_state(repo)
    merged = browser.post(f"tasks/{first}/merge")
    assert merged.status_code == 200, merged.text
    tip = git(repo, "rev-parse", f"tars/{first}")
    assert merged.json() == {"kind": "fast-forward", "branch": "main", "commit": tip, "files": ["index.html"],
                             "tree_updated": True,
                             "message": f"Merged task {first} into main (fast-forward, 1 file); your checked-out "
                                        "copy is updated.",
                             "detail": f"Merged task {first} into main (fast-forward, 1 file); your checked-out "
                                       "copy is updated."}
    assert git(repo, "rev-parse", "main") == tip and (repo / "index.html").read_text() == "<h1>Hello from TARS</h1>\n"
    assert git(repo, "status", "--porcelain") == ""
    again = browser.post(f"tasks/{first}/merge")
    assert again.status_code == 200 and again.json()["kind"] == "up-to-date"
    assert again.json()["detail"] == f"main already has all of task {first}'s work."

    # The second task changed the same line from the same start: a conflict, nothing changed.
    before = owner_state(repo)
    second_tip = git(repo, "rev-parse", f"tars/{second}")
    conflict = browser.post(f"tasks/{second}/merge")
    assert conflict.status_code == 409, conflict.text
    assert conflict.json() == {"detail": f"Task {second}'s branch tars/{second} conflicts with main in index.html; "
                                         "nothing was changed.", "files": ["index.html"]}
    assert owner_state(repo) == before and git(repo, "rev-parse", f"tars/{second}") == second_tip
    assert not (repo / ".git" / "MERGE_HEAD").exists()
    pushed = browser.post(f"tasks/{second}/push")  # the owner's repository has no origin
    assert pushed.status_code == 409 and "has no remote called origin" in pushed.json()["detail"]


@pytest.mark.usefixtures("private_git")
def test_discard_needs_confirm_and_nothing_changes_without_the_csrf_token(server, browser, tasks, fake_api,
                                                                           start_worker, projects):
    repo = owner_repo(projects / "tool", {"tool.py": "pass\n"})
    before = owner_state(repo)
    fake_api.script([edit(command="create", path="extra.py", file_text="x = 1\n"), text("Added extra.")])
    task_id = browser.post("tasks", {"goal": "Add extra", "project_path": "tool"}).json()["task_id"]
    run_burst(start_worker)
    assert ended(tasks, task_id).status == "complete"
    worktree = worktree_of(tasks, task_id)
    tip = git(repo, "rev-parse", f"tars/{task_id}")
    info = browser.get(f"tasks/{task_id}/changes").json()
    assert info["tests_passed"] is False  # no checkpoint is marked: the sentence does not call the tests failing
    assert info["sentence"] == f"Branch tars/{task_id}: 1 commit, 1 file changed (+1 -0), no tests run."

    def unchanged():
        assert owner_state(repo) == before and git(repo, "rev-parse", f"tars/{task_id}") == tip
        assert (worktree / "extra.py").read_text() == "x = 1\n"

    for headers, expected in (({}, BAD_CSRF), ({"X-CSRF-Token": "wrong"}, BAD_CSRF),
                              ({"X-CSRF-Token": Browser(server).csrf}, BAD_CSRF),
                              ({"X-CSRF-Token": browser.csrf, "Origin": "https://evil.example"}, CROSS_SITE)):
        for action, body in (*BRANCH_POSTS, ("rollback", None)):
            answer = browser.post(f"tasks/{task_id}/{action}", body, csrf=None, **headers)
            assert answer.status_code == 403 and answer.json() == {"detail": expected}, (action, headers, answer.text)
    unchanged()

    asked = f"Discarding task {task_id} deletes its branch and all its work for good; send {{\"confirm\": true}} " \
            "to go ahead. Nothing was deleted."
    for body in (None, {}, {"confirm": False}):
        answer = browser.post(f"tasks/{task_id}/discard", body)
        assert answer.status_code == 422 and answer.json() == {"detail": asked}, (body, answer.text)
    for body in ({"confirm": "yes"}, {"confirm": 1}, {"confirm": True, "force": True}, []):
        answer = browser.post(f"tasks/{task_id}/discard", body)
        assert answer.status_code == 422 and answer.json()["detail"].startswith("The body is not valid"), body
    unchanged()

    gone = browser.post(f"tasks/{task_id}/discard", {"confirm": True})
    assert gone.status_code == 200, gone.text
    assert gone.json() == {"status": "discarded",
                           "detail": f"Discarded task {task_id}: its checkout and branch tars/{task_id} are gone."}
    assert not worktree.exists() and f"tars/{task_id}" not in git(repo, "branch", "--list")
    assert owner_state(repo) == before
    no_checkout = f"Task {task_id} was discarded: its branch tars/{task_id} and its checkout are gone."
    for answer in (browser.get(f"tasks/{task_id}/checkpoints"), browser.get(f"tasks/{task_id}/changes"),
                   *(browser.post(f"tasks/{task_id}/{action}", body) for action, body in BRANCH_POSTS)):
        assert answer.status_code == 409 and answer.json() == {"detail": no_checkout}, answer.request.url
    assert browser.task(task_id)["status"] == "complete"  # the task itself is still there
    assert browser.task(task_id)["branch"] is None


@pytest.mark.usefixtures("private_git")
def test_the_branch_routes_answer_409_while_the_task_runs(browser, tasks, fake_api, start_worker, projects):
    never = tasks.start("Cancelled before any worker runs")  # (no worker yet: none can take it)
    tasks.cancel(never)
    refused = browser.get(f"tasks/{never}/checkpoints")
    assert refused.status_code == 409
    assert refused.json() == {"detail": f"Task {never} has no branch: it ended before a worker prepared its "
                                        "checkout."}

    repo = owner_repo(projects / "busy", {"x.py": "X = 1\n"})
    fake_api.script([edit(command="create", path="y.py", file_text="Y = 1\n"), bash("sleep 30"),
                     repeat(text("done"))])
    task_id = browser.post("tasks", {"goal": "Work slowly", "project_path": "busy"}).json()["task_id"]
    start_worker()
    wait_until(lambda: tasks.status(task_id).checkpoints == 1, 60, "the first checkpoint")
    # the owner's tars/<id> follows the checkpoint beside the loop: once it holds it, nothing may move it
    wait_until(lambda: subprocess.run(["git", "show", f"tars/{task_id}:y.py"], cwd=repo, capture_output=True,
                                      text=True).stdout == "Y = 1\n", 30, "the owner's branch to follow")
    tip = git(repo, "rev-parse", f"tars/{task_id}")
    for answer in (browser.get(f"tasks/{task_id}/checkpoints"), browser.get(f"tasks/{task_id}/changes"),
                   *(browser.post(f"tasks/{task_id}/{action}", body) for action, body in BRANCH_POSTS),
                   browser.post(f"tasks/{task_id}/discard", {})):
        assert answer.status_code == 409, (answer.request.url, answer.text)
        said = answer.json()["detail"]
        assert said.startswith(f"Task {task_id} is still running; ") and "once it has ended" in said, said
    assert git(repo, "rev-parse", f"tars/{task_id}") == tip and (worktree_of(tasks, task_id) / "y.py").exists()
    browser.post(f"tasks/{task_id}/cancel")
    assert ended(tasks, task_id).status == "cancelled"
    # Cancelled, its work is on its branch, ready to look at.
    assert [p["message"] for p in browser.get(f"tasks/{task_id}/checkpoints").json()] == ["Creating y.py"]


@pytest.mark.usefixtures("private_git")
def test_a_plain_folder_task_has_nothing_to_merge_and_a_clone_task_pushes(browser, tasks, fake_api, start_worker,
                                                                          projects, tmp_path):
    folder = projects / "plain"
    folder.mkdir()
    (folder / "data.txt").write_text("original\n")
    remote = bare_remote(tmp_path)
    fake_api.script([edit(command="str_replace", path="data.txt", old_str="original", new_str="changed"),
                     text("Changed data.")], match="Change the data")
    fake_api.script([edit(command="str_replace", path="server.py", old_str="PORT = 80", new_str="PORT = 8080"),
                     text("Moved the port.")], match="Move the port")
    plain = browser.post("tasks", {"goal": "Change the data", "project_path": "plain"}).json()["task_id"]
    cloned = browser.post("tasks", {"goal": "Move the port", "project_path": f"file://{remote}"}).json()["task_id"]
    run_burst(start_worker)
    assert (ended(tasks, plain).status, ended(tasks, cloned).status) == ("complete", "complete")

    info = browser.get(f"tasks/{plain}/changes").json()
    assert info["mode"] == "shadow" and info["commits"] == 1
    assert info["sentence"].startswith("Changed in place: 1 commit, 1 file changed (+1 -1)")
    merged = browser.post(f"tasks/{plain}/merge")
    assert merged.status_code == 200, merged.text
    assert merged.json()["kind"] == "kept" and merged.json()["files"] == []
    assert merged.json()["detail"].endswith(f"so task {plain}'s changes are already in place there; there is "
                                            "nothing to merge.")
    nothing = browser.post(f"tasks/{plain}/push")
    assert nothing.status_code == 409 and nothing.json()["detail"].endswith("has nothing to push.")
    back = browser.post(f"tasks/{plain}/rollback", {"to": 0})
    assert back.status_code == 200 and (folder / "data.txt").read_text() == "original\n"
    assert sorted(p.name for p in folder.iterdir()) == ["data.txt"]  # nothing of TARS's in the owner's folder

    assert browser.get(f"tasks/{cloned}/changes").json()["mode"] == "clone"
    refused = browser.post(f"tasks/{cloned}/merge")
    assert refused.status_code == 409 and "push its branch" in refused.json()["detail"]
    pushed = browser.post(f"tasks/{cloned}/push")
    assert pushed.status_code == 200, pushed.text
    assert pushed.json() == {"status": "pushed", "detail": f"Pushed tars/{cloned} to file://{remote}."}
    assert git(remote, "show", f"tars/{cloned}:server.py") == "PORT = 8080"


# --- the files, and garbage ----------------------------------------------------------------------------------------

def test_the_static_files_are_served_locally_and_nothing_else_is(server):
    for name, kind in (("app.js", "javascript"), ("style.css", "text/css"), ("index.html", "text/html")):
        answer = httpx.get(f"{server.url}/static/{name}")
        assert answer.status_code == 200 and kind in answer.headers["content-type"], name
        assert answer.headers["x-content-type-options"] == "nosniff"
    for path in ("nope.js", "", "../dashboard.py", "..%2Fdashboard.py", "%2e%2e/deps.py", "/etc/passwd",
                 "a" * 5000, "%00", "./", "%2e%2e", "..%5Cdashboard.py", "sub/app.js"):
        answer = httpx.get(f"{server.url}/static/{path}")
        assert answer.status_code == 404, (path, answer.text[:200])
    texts = {p.name: p.read_text() for p in STATIC.iterdir()}
    assert not [name for name, body in texts.items() if re.search(r"(src|href)=\"(https?:)?//", body)]  # no CDN
    assert not re.search(r"\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write", texts["app.js"])
    shown = texts["app.js"] + texts["index.html"] + texts["login.html"]
    assert not [tid for tid in TESTIDS if f'"{tid}"' not in shown], "a stable data-testid went missing"
    assert all("<!--head-->\n" in texts[page] for page in ("index.html", "login.html", "disabled.html"))
    assert 'name="viewport"' in httpx.get(f"{server.url}/").text and "max-width: 700px" in texts["style.css"]


def test_served_by_main_tars_on_127_0_0_1_with_the_password_from_the_environment(tars_env, tmp_path, fake_api,
                                                                                  start_worker, redis_client):
    port = free_port()
    process = ServerProcess({**tars_env, "DASHBOARD_PASSWORD": PASSWORD}, port, tmp_path / "server.log")
    try:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.2:{port}/", timeout=2)  # HOST's default: loopback only
        browser = Browser(process)
        assert 'name="csrf-token"' in browser.client.get("/").text
        fake_api.script([text("Nothing to do.")])
        task_id = browser.post("tasks", {"goal": "Say hello"}).json()["task_id"]
        start_worker()
        events = read_stream(browser, f"tasks/{task_id}/stream")
        assert events[-1]["event"] == "end" and timeline_of(events)[-1]["type"] in task_states.ENDING_KINDS
    finally:
        process.stop()


def test_ctrl_c_stops_the_server_even_with_a_dashboard_stream_open(tars_env, tmp_path):
    process = ServerProcess({**tars_env, "DASHBOARD_PASSWORD": PASSWORD}, free_port(), tmp_path / "server.log")
    browser = Browser(process)
    opened = threading.Event()

    def watch():
        try:
            with browser.client.stream("GET", "/dashboard/api/overview/stream", timeout=60) as answer:
                for _ in answer.iter_lines():
                    opened.set()
        except httpx.HTTPError:
            pass  # the server closed it: that is the point

    threading.Thread(target=watch, daemon=True).start()
    assert opened.wait(20), "the overview stream never sent anything"
    asked = time.monotonic()
    process.process.send_signal(signal.SIGINT)
    assert process.process.wait(SERVER_SHUTDOWN_GRACE_SECONDS + 60) == 0, process.log
    # one Ctrl+C is enough: the grace, then the stream is closed (a loaded machine took 11 s for the 5 s grace);
    # without it the open stream keeps the server up for good
    assert time.monotonic() - asked < SERVER_SHUTDOWN_GRACE_SECONDS + 30


FUZZ = dict(deadline=None, derandomize=True, database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
junk = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=30)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3), max_leaves=6)


@hypothesis.settings(max_examples=150, **FUZZ)
@given(data=st.data())
def test_garbage_from_a_logged_in_browser_is_never_a_5xx(server, browser, tasks, data):
    existing = tasks.start("A task the garbage may hit")
    routes = [r for r in dashboard_routes(server.app) if r != ("POST", "/logout")]
    routes += [("POST", "/login"), ("GET", "/"), ("GET", "/static/{name}")]
    method, path = data.draw(st.sampled_from(routes))
    task_id = data.draw(st.sampled_from([existing, "abcdef", "zz", "", "%2e%2e", "a" * 300]) | junk)
    url = path.replace("{task_id}", task_id).replace("{name}", data.draw(junk | st.sampled_from(["app.js", ".."])))
    query = data.draw(st.dictionaries(st.sampled_from(["after", "limit", "x"]), junk, max_size=2))
    headers = {"X-CSRF-Token": browser.csrf}
    if data.draw(st.booleans()):
        headers["Last-Event-ID"] = data.draw(st.from_regex(r"\A([!-~]([ -~]{0,28}[!-~])?)?\Z"))
    body = data.draw(json_values.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=100))
    try:
        if "stream" in url:
            with browser.client.stream(method, url, params=query, headers=headers, timeout=10) as answer:
                assert answer.status_code < 500, (method, url, answer.status_code)
            return
        answer = browser.client.request(method, url, params=query, headers=headers,
                                        content=body if method == "POST" else None)
    except (httpx.InvalidURL, httpx.LocalProtocolError, UnicodeError):
        return  # the client could not even send it: nothing reached TARS
    assert answer.status_code < 500, (method, url, query, body, answer.status_code, answer.text[:300])
    if "application/json" in answer.headers.get("content-type", "") and answer.status_code >= 400:
        assert answer.json().get("detail"), answer.text


def test_pause_all_from_the_dashboard_shows_in_the_overview_and_a_queued_task_cannot_be_paused_alone(browser, tasks):
    task_id = tasks.start("Wait for a worker")
    with browser.client.stream("GET", "/dashboard/api/overview/stream", timeout=60) as response:
        events = list_after_retry(sse(response))
        assert json.loads(next(events)["data"])["paused"] is False
        answer = browser.post("workers/pause")
        assert answer.status_code == 200 and answer.json()["paused"] is True and answer.json()["changed"] is True
        view = json.loads(next(e for e in events if e.get("event") == "overview")["data"])
        assert view["paused"] is True and view["paused_since"] > 0
        assert view["tasks"][0]["status"] == "queued"
        assert view["tasks"][0]["progress"] == ("Waiting: the workers are paused (resume them with: python "
                                                "main_tars.py workers resume)")
    refused = browser.post(f"tasks/{task_id}/pause")
    assert refused.status_code == 409 and "has not started yet" in refused.json()["detail"]
    assert browser.get("workers").json()["paused"] is True
    assert browser.post("workers/resume").json() == {
        "paused": False, "changed": True, "detail": "Workers resumed: queued tasks start and paused ones go on."}
