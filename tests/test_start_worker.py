"""The owner starts workers: `python start_worker.py [--burst]` as real processes on the suite's Redis."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import time

import redis

from core.redis_conn import EmbeddedRedis, free_port
from tests.fakes.anthropic_api import bash, text


def worker_name(log: str) -> str:
    match = re.search(r"Worker (\S+): started with PID (\d+)", log)
    assert match, log
    return match.group(1)


def test_burst_worker_on_an_empty_queue_prints_the_banner_and_exits(start_worker, tars_env, projects):
    worker = start_worker("--burst")
    assert worker.wait(60) == 0, worker.log
    log = worker.log
    assert "background programming worker" in log
    assert f"Redis:        {tars_env['REDIS_URL']}" in log
    assert "Queue:        tars_programming" in log
    assert "Max runtime:  2 minutes, 30 iterations" in log
    assert "Model:        claude-sonnet-5-5" in log
    assert f"Projects:     {projects}" in log
    assert "*** Listening on tars_programming" in log
    assert "done, quitting" in log
    assert "ANTHROPIC_API_KEY is not set" not in log  # the suite's worker has a key
    assert "Traceback" not in log


def test_the_banner_hides_the_redis_password(start_worker, tars_env):
    # the suite's Redis has no password; redis-py still connects when the URL carries one
    url = tars_env["REDIS_URL"].replace("redis://", "redis://:hunter2@")
    worker = start_worker("--burst", REDIS_URL=url)
    assert worker.wait(60) == 0, worker.log
    assert "Redis:        " + url.replace(":hunter2@", ":***@") in worker.log
    assert "hunter2" not in worker.log


def test_missing_api_key_is_warned_at_start(start_worker):
    worker = start_worker("--burst", ANTHROPIC_API_KEY="")
    assert worker.wait(60) == 0, worker.log
    [warning] = [line for line in worker.log.splitlines() if "ANTHROPIC_API_KEY is not set" in line]
    assert "WARNING" in warning
    assert ".env" in warning and "restart this worker" in warning


def test_an_invalid_setting_stops_the_worker_with_one_line(start_worker):
    worker = start_worker("--burst", MAX_TASK_ITERATIONS="0")
    assert worker.wait(30) == 2
    lines = [line for line in worker.log.splitlines() if line.strip()]
    assert len(lines) == 1, worker.log
    assert lines[0].startswith("start_worker: MAX_TASK_ITERATIONS='0' is invalid")
    assert "Fix it in .env or the environment" in lines[0]


def test_unreachable_redis_exits_2_with_a_clear_message(start_worker):
    port = free_port()  # nothing listens here
    worker = start_worker("--burst", REDIS_URL=f"redis://127.0.0.1:{port}/0")
    assert worker.wait(30) == 2
    lines = [line for line in worker.log.splitlines() if line.strip()]
    assert len(lines) == 1, worker.log
    assert lines[0].startswith(f"start_worker: Redis is not reachable at redis://127.0.0.1:{port}/0")
    assert "REDIS_URL" in lines[0]
    assert "background programming worker" not in worker.log


def test_a_wrong_redis_password_is_named_as_such(start_worker, tmp_path):
    with EmbeddedRedis(tmp_path / "locked-redis", persist=False, binary=shutil.which("redis-server")) as locked:
        redis.Redis(host=locked.host, port=locked.port).config_set("requirepass", "right-one")
        worker = start_worker("--burst", REDIS_URL=f"redis://:wrong-one@{locked.host}:{locked.port}/0")
        assert worker.wait(30) == 2
    [line] = [line for line in worker.log.splitlines() if line.strip()]
    assert "wrong-one" not in line
    assert "refused the password" in line


def test_two_workers_get_different_names(start_worker):
    first, second = start_worker("--burst"), start_worker("--burst")
    assert first.wait(60) == 0 and second.wait(60) == 0
    names = worker_name(first.log), worker_name(second.log)
    assert names[0] != names[1]
    host = socket.gethostname()
    assert names == (f"{host}.{first.process.pid}", f"{host}.{second.process.pid}")


def test_an_explicit_name_is_used(start_worker):
    worker = start_worker("--burst", "--name", "laptop-worker")
    assert worker.wait(60) == 0, worker.log
    assert worker_name(worker.log) == "laptop-worker"


def test_sigterm_lets_the_running_task_finish_then_the_worker_exits(tasks, fake_api, start_worker, redis_client):
    fake_api.script([bash("sleep 3 && echo rested"), text("Slept well.")], match="Sleep")
    fake_api.script([text("Should never run.")], match="Later")
    running = tasks.start("Sleep three seconds", project_path="sleepy")
    waiting = tasks.start("Later task", project_path="later")
    worker = start_worker()  # not burst: only the signal makes it stop

    deadline = time.monotonic() + 30
    while "Running: sleep 3" not in tasks.status(running).progress:
        assert time.monotonic() < deadline, worker.log
        assert worker.process.poll() is None, worker.log
        time.sleep(0.05)
    worker.process.send_signal(signal.SIGTERM)

    assert worker.wait(30) == 0, worker.log
    assert "warm shut down requested" in worker.log
    status = tasks.status(running)
    assert status.status == "complete", status
    assert status.result["summary"] == "Slept well."
    assert "rested" in fake_api.requests[1].body["messages"][-1]["content"][0]["content"]
    # the worker took no new task after the signal
    assert tasks.status(waiting).status == "queued"
    assert redis_client.lrange("rq:queue:tars_programming", 0, -1) == [waiting.encode()]
    assert len(fake_api.requests) == 2
