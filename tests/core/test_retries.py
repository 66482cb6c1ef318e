"""Automatic retries with real workers: a task ended by something transient (the model API unavailable past the SDK's
own retries, its worker killed) runs again by itself, as the same task on its own branch from its last checkpoint,
and the model hears what the attempt before did; never after a cancel or a limit, and at most MAX_TASK_RETRIES
times, each wait longer than the last."""

from __future__ import annotations

import os
import signal

import psutil
import pytest
import redis
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from core import event_log, keys
from core.config import load_settings
from core.exceptions import TaskNotFound
from core.redis_conn import connect
from core.task_manager import TaskManager
from tests.core.test_worker import own_redis, restart  # noqa: F401 (own_redis: a fixture)
from tests.fakes.anthropic_api import bash, edit, error, hang, repeat, text
from tests.test_task_branches import ended, git, owner_repo
from tests.waiting import wait_until

pytestmark = pytest.mark.usefixtures("private_git")

OVERLOADED = error(529, headers={"retry-after-ms": "1"})  # the SDK retries at once: 3 of these end one model call


@pytest.fixture
def tars_env(tars_env, monkeypatch):
    """Every process of these tests retries twice, after 1 s and then 2 s."""
    retries = {"MAX_TASK_RETRIES": "2", "TASK_RETRY_BACKOFF_SECONDS": "1"}
    for name, value in retries.items():
        monkeypatch.setenv(name, value)
    return {**tars_env, **retries}


def events(tasks, task_id, kind):
    return [e for e in event_log.read(tasks.redis, task_id) if e.type == kind]


def first_requests(fake_api, goal):
    """The first model request of each attempt at the goal (one user message: the goal and what the worker says)."""
    return [r for r in fake_api.message_requests if len(r.messages) == 1 and f"Goal: {goal}" in r.first_user_text]


def test_an_overloaded_api_retries_the_task_on_its_branch_and_the_model_hears_of_the_attempt_before(
        tasks, fake_api, start_worker, projects, n8n):
    repo = owner_repo(projects / "shop", {"README.md": "# shop\n"})
    fake_api.script([edit(command="create", path="cart.py", file_text="CART = []\n"),
                     OVERLOADED, OVERLOADED, OVERLOADED,  # ANTHROPIC_MAX_RETRIES=2: the SDK gives up, attempt 1 ends
                     text("cart.py is there from the attempt before; nothing is left to do.")],
                    match="Goal: Write the cart")
    task_id = tasks.start("Write the cart", project_path="shop")
    start_worker(N8N_WEBHOOK_URL=n8n.url())

    done = ended(tasks, task_id, 120)
    assert done.status == "complete", done.reason
    assert (done.attempt, done.attempts) == (2, 3)
    [announced] = events(tasks, task_id, "retrying")
    assert "attempt 2 of 3" in announced.message and "overloaded (529, after 3 attempts)" in announced.message
    assert announced.data["delay_seconds"] == 1 and announced.data["attempt"] == 2
    # The same task went on where it was: the model was told what the first attempt did and why it ended...
    first, second = first_requests(fake_api, "Write the cart")
    told = second.first_user_text
    assert "attempt 1 of 3" not in first.first_user_text and "This is attempt 2 of 3" in told
    assert "The previous attempt ended: The Anthropic API was overloaded (529" in told
    assert "1. Creating cart.py" in told and "Files changed so far: cart.py." in told
    # ... and its branch holds the first attempt's checkpoint under the second's ending.
    assert "Creating cart.py" in git(repo, "log", "--format=%s", f"tars/{task_id}")
    assert git(repo, "show", f"tars/{task_id}:cart.py") == "CART = []"
    assert [e.data.get("attempt") for e in events(tasks, task_id, "started")] == [None, 2]
    # The report's model latency counts the answered calls of both attempts (the overloaded one had no answer).
    assert len(done.result["model_seconds"]) == 2
    # Discord (through n8n) heard of the retry as it was scheduled.
    heard = wait_until(lambda: [b for b in n8n.bodies() if b["task_id"] == task_id and b["type"] == "retrying"], 30,
                       "the retry announced to n8n")
    assert "🔁" in heard[0]["message"] and "attempt 2 of 3" in heard[0]["message"]
    assert done.result["cost_usd"] > 0 and done.result["usage"]["output_tokens"] > 0


def test_the_retries_wait_longer_each_time_and_end_failed_once_used_up(tasks, fake_api, start_worker):
    fake_api.script([repeat(OVERLOADED)], match="Goal: Reach a sleeping API")
    task_id = tasks.start("Reach a sleeping API", project_path="asleep")
    start_worker()

    done = ended(tasks, task_id, 120)
    assert done.status == "failed"
    assert "That was attempt 3 of 3: the automatic retries (MAX_TASK_RETRIES=2) are used up." in done.reason
    assert f"task retry {task_id}" in done.reason and done.attempt == 3
    announced = events(tasks, task_id, "retrying")
    assert [e.data["delay_seconds"] for e in announced] == [1, 2]  # doubling from TASK_RETRY_BACKOFF_SECONDS
    starts = events(tasks, task_id, "started")
    assert len(starts) == 3
    for retry, start in zip(announced, starts[1:]):  # no attempt began before its time (RQ keeps whole seconds)
        assert start.at >= retry.data["retry_at"] - 1 and start.at - retry.at >= retry.data["delay_seconds"] - 1
    assert len(fake_api.requests) == 3 * 3  # three attempts, each one model call the SDK tried three times


def test_a_worker_killed_mid_task_is_retried_by_the_reaper_on_another_worker_from_its_branch(
        tasks, fake_api, start_worker, projects):
    repo = owner_repo(projects / "lab", {"README.md": "# lab\n"})
    fake_api.script([edit(command="create", path="step.py", file_text="STEP = 1\n"), bash("sleep 60"),
                     text("step.py was written before the crash; done.")], match="Goal: Run the experiment")
    task_id = tasks.start("Run the experiment", project_path="lab")
    doomed = start_worker()
    wait_until(lambda: (s := tasks.status(task_id)).checkpoints == 1 and s.progress.startswith("Running: sleep"),
               60, "the first checkpoint and the long command")
    survivor = start_worker()
    wait_until(lambda: len(tasks.redis.keys(keys.worker_alive("*"))) == 2, 30, "two live workers")
    meta = Job.fetch(task_id, connection=tasks.redis).get_meta(refresh=True)
    # Its RQ scheduler process outlives a SIGKILLed worker (RQ's own doing): ended below, with the test.
    left = [child for child in psutil.Process(doomed.process.pid).children() if child.pid != meta["horse_pid"]]
    # The worker and its work-horse die together: only the reaper, in the other worker, can end this attempt.
    os.kill(doomed.process.pid, signal.SIGKILL)
    os.killpg(int(meta["horse_pid"]), signal.SIGKILL)
    try:
        done = ended(tasks, task_id, 180)
    finally:
        for child in left:
            if child.is_running() and "communication.delivery" not in " ".join(child.cmdline()):
                child.kill()
    assert done.status == "complete", done.reason
    [announced] = events(tasks, task_id, "retrying")
    assert announced.message.startswith("Retrying at ") and "attempt 2 of 3" in announced.message
    assert announced.data["reason"] == f"The worker running this task ({meta['worker']}) died."
    ran_again = Job.fetch(task_id, connection=tasks.redis).get_meta(refresh=True)["worker"]
    assert ran_again != meta["worker"] and survivor.process.poll() is None
    [_, second] = first_requests(fake_api, "Run the experiment")
    assert f"The previous attempt ended: The worker running this task ({meta['worker']}) died." in \
        second.first_user_text and "1. Creating step.py" in second.first_user_text
    assert git(repo, "show", f"tars/{task_id}:step.py") == "STEP = 1"


def test_no_retry_after_a_cancel_even_one_that_cut_a_model_call_short(tasks, fake_api, start_worker):
    fake_api.script([hang(60)], match="Goal: Wait for the model")
    task_id = tasks.start("Wait for the model", project_path="waiting")
    start_worker()
    fake_api.wait_for_requests(1, timeout=60)
    assert tasks.cancel(task_id, wait=30).status == "cancelled"
    assert events(tasks, task_id, "retrying") == [] and tasks.status(task_id).attempt == 1


def test_a_cancel_while_a_retry_waits_ends_the_task_before_it_runs_again(tasks, fake_api, start_worker):
    fake_api.script([OVERLOADED, OVERLOADED, OVERLOADED, text("never asked")], match="Goal: Try later")
    task_id = tasks.start("Try later", project_path="later")
    start_worker(TASK_RETRY_BACKOFF_SECONDS="600")
    scheduled = ScheduledJobRegistry("tars_programming", connection=tasks.redis)
    # The work-horse records the retry, then its worker hands the job to RQ's scheduled registry.
    waiting = wait_until(lambda: (s := tasks.status(task_id)).retry_at and task_id in scheduled.get_job_ids() and s,
                         60, "the retry scheduled")
    assert waiting.status == "queued" and waiting.progress.startswith("Retrying at ")
    cancelled = tasks.cancel(task_id)
    assert cancelled.status == "cancelled" and cancelled.retry_at is None
    assert events(tasks, task_id, "cancelled")[0].message == "The task was cancelled before its retry started."
    assert task_id not in ScheduledJobRegistry("tars_programming", connection=tasks.redis).get_job_ids()
    assert len(fake_api.requests) == 3


def test_no_retry_after_a_limit(tasks, fake_api, start_worker):
    fake_api.script([repeat(bash("echo still going"))], match="Goal: Never finish")
    task_id = tasks.start("Never finish", project_path="endless")
    start_worker(MAX_TASK_ITERATIONS="2")
    done = ended(tasks, task_id, 60)
    assert done.status == "failed" and "iteration limit of 2" in done.reason
    assert "MAX_TASK_RETRIES" not in done.reason and "task retry" not in done.reason
    assert events(tasks, task_id, "retrying") == [] and done.attempt == 1


def test_a_task_whose_record_redis_lost_is_retried_and_finishes(own_redis, fake_api, start_worker, projects):
    server = own_redis(persist=False)  # like a Redis that keeps nothing on disk
    tasks = TaskManager(connect(server.url), load_settings(REDIS_URL=server.url))
    fake_api.script([bash("sleep 5"), edit(command="create", path="app.py", file_text="print(1)\n"),
                     text("Wrote app.py.")], match="Goal: Write the app")
    task_id = tasks.start("Write the app", project_path="amnesia")
    start_worker(REDIS_URL=server.url)
    wait_until(lambda: tasks.status(task_id).progress.startswith("Running: sleep"), 60, "the command under way")
    restart(server)
    # The work-horse still holds the task: RQ's retry saves its record again, and the next attempt finishes it.
    done = wait_until(lambda: (s := tasks.status(task_id)).status == "complete" and s.result and s, 120,
                      "the retried task complete", ignore=(redis.ConnectionError, TaskNotFound))
    assert done.attempt == 2 and (projects / "amnesia" / "app.py").read_text() == "print(1)\n"
    [_, second] = first_requests(fake_api, "Write the app")
    assert "The previous attempt ended: Redis lost this task's record while it ran" in second.first_user_text
