"""What goes wrong while a task runs unattended, with real processes: a killed work-horse, a dead worker,
stop signals. Each story ends with nothing lost and the owner told."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

import psutil
import pytest
import redis
from rq.job import Job

from core import keys
from core.config import load_settings
from core.confirmations import pending_request
from core.exceptions import TaskNotActive
from core.redis_conn import EmbeddedRedis, connect
from core.task_manager import TaskManager
from core.worker import Reaper, horse_death_reason
from tests.fakes.anthropic_api import bash, edit, repeat, text
from tests.waiting import wait_until


def running_horse(tasks, task_id, status="running", timeout=60):
    """Wait until the task is in `status` with its first command under way; the work-horse's pid."""
    wait_until(lambda: (s := tasks.status(task_id)).status == status and s.progress.startswith(("Running",
               "Waiting")), timeout, f"task {status}")
    return wait_until(lambda: Job.fetch(task_id, connection=tasks.redis).get_meta().get("horse_pid"), 10,
                      "the horse's identity in meta")


def endings(n8n, task_id):
    return [b for b in n8n.bodies() if b["task_id"] == task_id and b["type"] in ("error", "cancelled", "complete")]


def gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.worker_story
def test_a_work_horse_killed_like_the_oom_killer_fails_the_task_and_it_can_be_retried(
        tasks, fake_api, start_worker, n8n, projects, cli):
    fake_api.script([bash("rm -f old.txt"), repeat(text("done"))])  # rm waits for the owner's code
    task_id = tasks.start("Clean up the project", project_path="oom")
    worker = start_worker(N8N_WEBHOOK_URL=n8n.url())
    horse = running_horse(tasks, task_id, "awaiting_confirmation")
    assert pending_request(tasks.redis, task_id)

    killed_at = time.monotonic()
    os.kill(horse, signal.SIGKILL)
    status = wait_until(lambda: (s := tasks.status(task_id)).status == "failed" and s, 15, "task failed")
    assert "killed by SIGKILL" in status.reason and "out-of-memory" in status.reason
    assert f"task retry {task_id}" in status.reason
    ending = wait_until(lambda: endings(n8n, task_id), 10, "Discord told")
    assert time.monotonic() - killed_at < 10
    assert ending[0]["type"] == "error" and "SIGKILL" in ending[0]["message"]
    # Nothing is left waiting for a code that can never be used.
    assert pending_request(tasks.redis, task_id) is None
    with pytest.raises(TaskNotActive):
        tasks.confirm(task_id, "6283")
    assert worker.process.poll() is None, "the worker itself survives its horse"

    retried = cli("task", "retry", task_id, "--json")
    assert retried.returncode == 0, retried.stderr
    new_id = json.loads(retried.stdout)["task_id"]
    assert new_id != task_id and json.loads(retried.stdout)["retry_of"] == task_id
    new = tasks.status(new_id)
    assert (new.goal, new.project_path, new.retry_of) == ("Clean up the project", str(projects / "oom"), task_id)
    # The same worker runs the retry (its script answers "done" now) to the end.
    assert wait_until(lambda: tasks.status(new_id).status == "complete", 30, "the retry complete")


def test_an_active_task_cannot_be_retried_beside_itself(tasks, cli):
    task_id = tasks.start("Build it", project_path="busy")
    result = cli("task", "retry", task_id)
    assert result.returncode != 0
    assert "still queued" in result.stderr and "cancel it first" in result.stderr


def test_a_dead_worker_is_found_by_the_reaper_and_its_orphan_horse_killed(tasks, fake_api, start_worker, n8n):
    fake_api.script([bash("sleep 60"), repeat(text("done"))])
    task_id = tasks.start("Run a long build", project_path="orphan")
    doomed = start_worker(N8N_WEBHOOK_URL=n8n.url())
    horse = running_horse(tasks, task_id)
    survivor = start_worker(N8N_WEBHOOK_URL=n8n.url())  # an idle worker: the reaper must run somewhere
    wait_until(lambda: len(tasks.redis.keys(keys.worker_alive("*"))) == 2, 20, "two live workers")
    # A frozen horse cannot notice its parent died, so only the reaper can end this task.
    os.kill(horse, signal.SIGSTOP)
    died_at = time.monotonic()
    os.kill(doomed.process.pid, signal.SIGKILL)

    status = wait_until(lambda: (s := tasks.status(task_id)).status == "failed" and s, 110, "task reaped")
    assert time.monotonic() - died_at < 120
    assert "died" in status.reason and f"task retry {task_id}" in status.reason
    assert wait_until(lambda: gone(horse), 10, "the orphan horse killed")
    assert wait_until(lambda: endings(n8n, task_id), 10, "Discord told")[0]["type"] == "error"
    assert len(endings(n8n, task_id)) == 1
    assert survivor.process.poll() is None


@pytest.mark.worker_story
def test_a_horse_whose_worker_died_stops_itself_at_once(tasks, fake_api, start_worker, n8n):
    fake_api.script([bash("sleep 60"), repeat(text("done"))])
    task_id = tasks.start("Run a long build", project_path="selfstop")
    worker = start_worker(N8N_WEBHOOK_URL=n8n.url())
    horse = running_horse(tasks, task_id)
    died_at = time.monotonic()
    os.kill(worker.process.pid, signal.SIGKILL)
    status = wait_until(lambda: (s := tasks.status(task_id)).status == "failed" and s, 20, "task failed")
    assert time.monotonic() - died_at < 20
    assert "worker process running this task died" in status.reason
    assert wait_until(lambda: gone(horse), 10, "the horse gone: the task never runs beside its retry")
    assert wait_until(lambda: endings(n8n, task_id), 30, "Discord told (the dead worker's delivery process waited "
                                                         "for the horse's ending)")


def test_the_reaper_leaves_live_workers_and_other_rq_workers_alone(tasks, fake_api, start_worker, settings):
    fake_api.script([bash("sleep 20"), repeat(text("done"))])
    task_id = tasks.start("Run a long build", project_path="alive")
    start_worker()
    running_horse(tasks, task_id)
    reaper = Reaper(tasks.redis, settings, "test-reaper")
    assert reaper.reap() == []
    assert tasks.status(task_id).status == "running"
    # One leader at a time: a second candidate does not get the lease while it is held.
    assert Reaper(tasks.redis, settings, "other").lead() is False or \
        tasks.redis.get(keys.REAPER_LEADER) == b"other"


def test_sigterm_lets_the_running_task_finish(tasks, fake_api, start_worker):
    fake_api.script([bash("sleep 3"), repeat(text("All done."))])
    task_id = tasks.start("Build slowly", project_path="warm")
    worker = start_worker()
    running_horse(tasks, task_id)
    worker.process.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0, worker.log
    status = tasks.status(task_id)
    assert status.status == "complete", status
    assert "warm shut down requested" in worker.log


@pytest.mark.worker_story
def test_a_second_sigterm_stops_the_task_and_marks_it(tasks, fake_api, start_worker, n8n):
    fake_api.script([bash("sleep 60"), repeat(text("done"))])
    task_id = tasks.start("Build forever", project_path="cold")
    worker = start_worker(N8N_WEBHOOK_URL=n8n.url())
    horse = running_horse(tasks, task_id)
    worker.process.send_signal(signal.SIGTERM)
    time.sleep(1.5)  # RQ ignores a second signal within 1 s (a pool sends duplicates)
    worker.process.send_signal(signal.SIGTERM)
    worker.wait(timeout=30)
    status = tasks.status(task_id)
    assert status.status == "failed" and "shut down" in status.reason, status
    assert gone(horse)
    try:
        assert wait_until(lambda: endings(n8n, task_id), 10, "Discord told")
    except AssertionError as exc:  # keep what the worker and its delivery process said, for the next look
        raise AssertionError(f"{exc}\nn8n got {[(b['task_id'], b['type']) for b in n8n.bodies()]}; worker log:\n"
                             f"{worker.log[-6000:]}") from None


def test_death_reasons_read_well():
    assert horse_death_reason(signal.SIGKILL) == \
        "The process running the task was killed by SIGKILL (often the out-of-memory killer)."
    assert "SIGSEGV" in horse_death_reason(signal.SIGSEGV)
    assert horse_death_reason(3 << 8) == "The process running the task exited unexpectedly (status 3)."


@pytest.fixture
def own_redis(tmp_path):
    """A Redis of this test's own that the test may restart (redis-server from PATH, else the embedded binary)."""
    servers = []

    def make(persist: bool) -> EmbeddedRedis:
        servers.append(EmbeddedRedis(tmp_path / "own-redis", persist=persist,
                                     binary=shutil.which("redis-server")).start())
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


def restart(server: EmbeddedRedis) -> float:
    """Stop and start the server on the same port and data; the seconds it was away."""
    down = time.monotonic()
    server.stop()
    time.sleep(0.5)
    server.start()
    return time.monotonic() - down


def test_a_redis_restart_mid_task_is_ridden_out(own_redis, fake_api, start_worker, tars_env, projects):
    server = own_redis(persist=True)
    env = {"REDIS_URL": server.url}
    tasks = TaskManager(connect(server.url), load_settings(REDIS_URL=server.url))
    fake_api.script([bash("sleep 3"), edit(command="create", path="app.py", file_text="print(1)\n"),
                     text("Wrote app.py.")])
    task_id = tasks.start("Write the app", project_path="outage")
    worker = start_worker(**env)
    running_horse(tasks, task_id)
    away = restart(server)
    status = wait_until(lambda: (s := tasks.status(task_id)).status == "complete" and s.result and s, 60,
                        "task complete", ignore=(redis.ConnectionError,))
    assert (projects / "outage" / "app.py").read_text() == "print(1)\n"
    assert away < 5 and status.result["iterations"] >= 2
    # The worker stayed up and takes the next task.
    fake_api.script([text("Nothing to do.")])
    second = tasks.start("Check the app", project_path="outage")
    wait_until(lambda: tasks.status(second).status == "complete", 30, "the next task complete")
    assert worker.process.poll() is None


def test_a_redis_that_forgets_everything_fails_the_task_clearly_and_the_worker_goes_on(
        own_redis, fake_api, start_worker, n8n):
    server = own_redis(persist=False)  # like a Redis that keeps nothing on disk
    tasks = TaskManager(connect(server.url), load_settings(REDIS_URL=server.url))
    fake_api.script([bash("sleep 3"), edit(command="create", path="app.py", file_text="print(1)\n"),
                     repeat(text("Wrote app.py."))])
    task_id = tasks.start("Write the app", project_path="amnesia")
    worker = start_worker(REDIS_URL=server.url, N8N_WEBHOOK_URL=n8n.url())
    running_horse(tasks, task_id)
    restart(server)
    try:
        told = wait_until(lambda: [b for b in n8n.bodies() if b["task_id"] == task_id and b["type"] == "error"], 90,
                          "the owner told")
        assert "Redis lost this task's record" in told[0]["message"]
        assert "Traceback" not in worker.log.split("Redis lost")[0][-2000:]
        second = tasks.start("Try again", project_path="amnesia")
        wait_until(lambda: tasks.status(second).status == "complete", 60, "a new task runs on the fresh Redis")
        assert worker.process.poll() is None
    except AssertionError as exc:  # failed once in a loaded full run: keep what the worker said, for the next look
        raise AssertionError(f"{exc}\nn8n got {[(b['task_id'], b['type']) for b in n8n.bodies()]}; worker log:\n"
                             f"{worker.log[-6000:]}") from None


@pytest.mark.worker_story
def test_a_stopping_worker_lets_go_of_its_command_channel_at_once(redis_client, settings):
    """RQ polls its command channel every 60 s and redis-py 8.2's stop() waits for that poll: a burst worker sat up
    to a minute after 'unsubscribing'. TARS's worker reads the channel on a client of its own and stops in a poll."""
    from rq import Queue

    from core.worker import PUBSUB_POLL_SECONDS, TarsWorker

    worker = TarsWorker([Queue("tars_programming", connection=redis_client)], connection=redis_client)
    worker.subscribe()
    thread = worker.pubsub_thread
    assert worker.pubsub.connection_pool is not redis_client.connection_pool
    wait_until(lambda: redis_client.pubsub_numsub(worker.pubsub_channel_name)[0][1] == 1, 30, "the subscription")
    started = time.monotonic()
    worker.unsubscribe()
    took = time.monotonic() - started
    assert not thread.is_alive()
    assert took < 20 * PUBSUB_POLL_SECONDS  # a poll or two, not RQ's 60 s (wide margin for a loaded machine)
    assert redis_client.pubsub_numsub(worker.pubsub_channel_name)[0][1] == 0
    worker.unsubscribe()  # twice (RQ calls it on every way out): nothing left to do
