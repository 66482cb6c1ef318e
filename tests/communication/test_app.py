"""The app factory (communication/app.py): TARS's refusals answered once, and a server process of its own.

Each TarsError the app maps (HTTP_STATUS) answers exactly as the HTTPException(status, sentence) the routes used to
raise. The voice server is a process of its own: `python main_tars.py serve` can die and come back while tasks
run. Tasks live in Redis and in the worker processes, so a new server process sees them, and status, cancel and
confirmation work from it as from the old one.
"""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import psutil
import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from rq import Worker
from rq.job import Job

from communication.app import HTTP_STATUS, create_app
from core.exceptions import (ConfigError, GitError, InvalidBudget, InvalidGoal, InvalidPriority, InvalidProjectPath,
                             InvalidReportPeriod, InvalidSchedule, MergeBlocked, MergeConflict, NoSuchCheckpoint,
                             NotAwaitingConfirmation, PauseRefused, PhoneUnavailable, TaskNotActive, TaskNotFound)
from core.redis_conn import free_port
from tests.conftest import TEST_CODE, TEST_WEBHOOK_SECRET, TarsProcess
from tests.fakes.anthropic_api import bash, text
from tests.waiting import wait_until

AUTH = {"X-TARS-Webhook-Secret": TEST_WEBHOOK_SECRET}
# Each refusal a route lets through, and the status it answers with (the routes used to raise these themselves).
REFUSALS = [
    (TaskNotFound("There is no task abcdef."), 404),
    (TaskNotActive("Task abcdef has already ended (cancelled), so there is nothing to cancel."), 409),
    (NotAwaitingConfirmation("Task abcdef is not waiting for a confirmation code."), 409),
    (GitError("Task abcdef has no branch: it ended before a worker prepared its checkout."), 409),
    (InvalidGoal("The goal is empty: say what the task should build or fix."), 422),
    (InvalidProjectPath("The project path /x is a file, not a folder."), 422),
    (NoSuchCheckpoint("Task abcdef has 2 checkpoints; there is no checkpoint 7 to roll back to."), 422),
    (InvalidBudget("'lots' is not a daily budget: give dollars such as 20 or 7.50, or none for no daily budget."), 422),
    (InvalidReportPeriod("'last week' is not a period: give a number and a unit, such as 7d (days)."), 422),
    (PauseRefused("Task abcdef has not started yet, so it cannot be paused on its own."), 409),
    (InvalidPriority("priority must be one of high, normal, low, not urgent."), 422),
    (InvalidSchedule("The start time 2020-01-01T09:00 is in the past: give a time still to come."), 422),
    (PhoneUnavailable("I cannot call you when it is done: set TWILIO_ACCOUNT_SID in .env (docs/PHONE.md)."), 422),
]


class ServerProcess(TarsProcess):
    """`python main_tars.py serve` as a real process on a given port, its log kept."""

    def __init__(self, env: dict, port: int, log_path: Path):
        super().__init__({**env, "PORT": str(port)}, log_path, "main_tars.py", "serve")
        self.url = f"http://127.0.0.1:{port}"
        wait_until(lambda: self.process.poll() is not None or httpx.get(f"{self.url}/health").status_code == 200,
                   30, "the server to answer /health", interval=0.1, ignore=(httpx.HTTPError,))
        assert self.process.poll() is None, self.log_path.read_text()

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, headers=AUTH, timeout=10)

    def post(self, path: str, body: dict | None = None) -> httpx.Response:
        return httpx.post(self.url + path, headers=AUTH, json=body, timeout=15)

    def task(self, task_id: str) -> dict:
        answer = self.get(f"/api/tasks/{task_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def start_server(tars_env, tmp_path):
    started: list[ServerProcess] = []

    def start(port: int) -> ServerProcess:
        started.append(ServerProcess(tars_env, port, tmp_path / f"server-{len(started)}.log"))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def commands_of(tasks, task_id) -> list[str]:
    """The command lines running under the task's work-horse."""
    horse = Job.fetch(task_id, connection=tasks.redis).get_meta().get("horse_pid")
    try:
        return [" ".join(p.cmdline()) for p in psutil.Process(horse).children(recursive=True)]
    except (psutil.Error, TypeError, ValueError):
        return []


def test_a_restarted_server_process_sees_the_running_tasks_and_confirms_and_cancels_them(
        tasks, fake_api, start_worker, start_server, projects, redis_client):
    fake_api.script([bash("rm -f old.txt"), text("Removed old.txt.")], match="the stale file", name="confirm")
    fake_api.script([bash("sleep 30"), text("never")], match="the long job", name="long")
    (projects / "cleanup").mkdir()
    (projects / "cleanup" / "old.txt").write_text("stale\n")
    workers = [start_worker(), start_worker()]  # one task each, at the same time
    port = free_port()
    first = start_server(port)
    wait_until(lambda: httpx.get(f"{first.url}/health").json()["workers"] == 2
               or any(w.process.poll() is not None for w in workers), 30, "both workers registered")
    assert all(w.process.poll() is None for w in workers), [w.log[-600:] for w in workers]
    worker_names = {w.name for w in Worker.all(connection=redis_client)}

    started = [first.post("/api/tasks", {"goal": goal, "project_path": project})
               for goal, project in (("Delete the stale file", "cleanup"), ("Run the long job", "long"))]
    assert [s.status_code for s in started] == [201, 201], [s.text for s in started]
    waiting, long_job = (s.json()["task_id"] for s in started)
    wait_until(lambda: first.task(waiting)["status"] == "awaiting_confirmation", 30, "the task to ask for its code")
    wait_until(lambda: "sleep 30" in commands_of(tasks, long_job), 30, "the long command to run")
    assert first.task(long_job)["progress"] == "Running: sleep 30"

    first.kill()  # the voice process dies, SIGKILL: no shutdown of any kind
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{first.url}/health")
    second = start_server(port)

    # the tasks went on without it, and the new process sees them as they are
    assert second.process.pid != first.process.pid
    asking = second.task(waiting)
    assert asking["status"] == "awaiting_confirmation" and asking["confirmation_command"] == "rm -f old.txt"
    running = second.task(long_job)
    assert running["status"] == "running" and running["progress"] == "Running: sleep 30"
    assert "sleep 30" in commands_of(tasks, long_job)  # the very same command, still running
    assert (projects / "cleanup" / "old.txt").exists()  # and nothing ran without the code

    accepted = second.post("/webhook/background-confirmation", {"task_id": waiting, "code": TEST_CODE})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"
    # complete shows from the worker's meta a moment before RQ stores the result: wait for both
    done = wait_until(lambda: (t := second.task(waiting))["status"] == "complete" and t["result"] and t, 30,
                      "the task to complete")
    assert done["result"]["summary"] == "Removed old.txt."
    assert not (projects / "cleanup" / "old.txt").exists()

    cancelled = second.post(f"/api/tasks/{long_job}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled", cancelled.json()
    assert cancelled.json()["reason"] == "The task was cancelled."
    assert "sleep 30" not in commands_of(tasks, long_job)

    # the workers never restarted, and no task was lost
    assert all(w.process.poll() is None for w in workers)
    assert {w.name for w in Worker.all(connection=redis_client)} == worker_names
    assert {w.process.pid for w in workers} == {int(name.rsplit(".", 1)[1]) for name in worker_names}
    listed = second.get("/api/tasks")
    assert {t["task_id"]: t["status"] for t in listed.json()} == {waiting: "complete", long_job: "cancelled"}
    assert len(fake_api.requests_for("confirm")) == 2 and len(fake_api.requests_for("long")) == 1


@pytest.fixture
def refusing_client(settings, redis_client):
    """The real app plus two test routes: /refuse/{i} raises REFUSALS[i] or a merge refusal, /expect/{i} raises the
    HTTPException the routes raised for it before app.py answered them."""
    app = create_app(settings, redis_client)
    merges = [MergeConflict("Task abcdef's branch conflicts with main in a.py.", ["a.py"]),
              MergeBlocked("Your uncommitted changes to b.py touch files the merge would change.", ["b.py"])]

    @app.get("/refuse/{which}")
    def refuse(which: int):
        raise (REFUSALS[which][0] if which < len(REFUSALS) else merges[which - len(REFUSALS)])

    @app.get("/expect/{which}")
    def expect(which: int):
        refusal, status = REFUSALS[which]
        raise HTTPException(status, str(refusal))

    @app.get("/unmapped")
    def unmapped():
        raise ConfigError("WEBHOOK_SECRET is too short.")

    return TestClient(app, raise_server_exceptions=False)  # no `with`: no lifespan, so no voice listener


@pytest.mark.parametrize("which", range(len(REFUSALS)))
def test_each_refusal_answers_as_the_http_exception_the_routes_raised(refusing_client, which):
    refused, expected = refusing_client.get(f"/refuse/{which}"), refusing_client.get(f"/expect/{which}")
    assert refused.status_code == expected.status_code == REFUSALS[which][1]
    assert refused.content == expected.content == f'{{"detail":"{REFUSALS[which][0]}"}}'.encode()
    assert refused.headers == expected.headers


def test_a_merge_refusal_is_a_409_with_its_files(refusing_client):
    conflict = refusing_client.get(f"/refuse/{len(REFUSALS)}")
    blocked = refusing_client.get(f"/refuse/{len(REFUSALS) + 1}")
    assert conflict.status_code == blocked.status_code == 409
    assert conflict.json() == {"detail": "Task abcdef's branch conflicts with main in a.py.", "files": ["a.py"]}
    assert blocked.json() == {"detail": "Your uncommitted changes to b.py touch files the merge would change.",
                              "files": ["b.py"]}


def test_every_mapped_refusal_is_tested_and_the_rest_stay_server_errors(refusing_client):
    assert set(HTTP_STATUS) == {type(refusal) for refusal, _ in REFUSALS}
    assert refusing_client.get("/unmapped").status_code == 500  # not the request's fault: as before
