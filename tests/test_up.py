"""A new user's first run: `python main_tars.py up` with no Redis anywhere starts the embedded one,
the server and a worker; a task started from the CLI completes; Ctrl+C stops all of it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from core import sandbox
from core.config import load_settings
from core.exceptions import RedisUnavailable
from core.redis_conn import connect, free_ports, with_embedded_password
from core.task_manager import TaskManager
from tests.conftest import ROOT
from tests.fakes.anthropic_api import bash, edit, text
from tests.waiting import wait_until


def test_up_runs_everything_on_an_embedded_redis(tars_env, fake_api, tmp_path, cli):
    redis_port, http_port = free_ports(2)
    env = {**os.environ, **tars_env, "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "PORT": str(http_port),
           "EMBEDDED_REDIS": "true"}
    log = open(tmp_path / "up.log", "wb")
    process = subprocess.Popen([sys.executable, str(ROOT / "main_tars.py"), "up"], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        health = wait_until(lambda: (r := httpx.get(f"http://127.0.0.1:{http_port}/health").json())["workers"] and r,
                            what="server and worker", timeout=120, interval=0.2, ignore=(httpx.HTTPError, OSError))
        (worker,) = health.pop("pool")
        assert health == {"status": "ok", "redis": True, "workers": 1, "starting": 0, "queue_length": 0,
                          "sandbox": sandbox.status_line(), "discord": "off", "paused": False,
                          "tasks_file": str(tmp_path / "data" / "tasks.yaml")}
        assert worker["state"] == "idle" and worker["current_task"] is None and worker["capabilities"] == []
        assert "started an embedded server" in (tmp_path / "up.log").read_text()
        assert "has no password" not in (tmp_path / "up.log").read_text()  # the embedded server has one
        assert list((tmp_path / "data" / "redis").glob("appendonly*"))

        fake_api.script([edit(command="create", path="todo.txt", file_text="done\n"), text("Wrote todo.txt.")],
                        match="Goal: Write the to-do list")  # the task from the file, below
        fake_api.script([edit(command="create", path="note.txt", file_text="hi\n"), text("Wrote note.txt.")])
        started = cli("task", "start", "--goal", "Write a note", "--project", "notes", "--json",
                      REDIS_URL=env["REDIS_URL"])
        assert started.returncode == 0, started.stderr
        task_id = started.stdout.split('"')[3]
        wait_until(lambda: '"complete"' in cli("task", "status", task_id, "--json", REDIS_URL=env["REDIS_URL"]).stdout,
                   what="task complete", timeout=120, interval=0.2)
        assert (tmp_path / "projects" / "notes" / "note.txt").read_text() == "hi\n"

        # the owner adds a goal to the tasks file the server watches: it runs too
        (tmp_path / "data" / "tasks.yaml").write_text("- goal: Write the to-do list\n  project: notes\n")
        wait_until(lambda: (tmp_path / "projects" / "notes" / "todo.txt").exists() and '"complete"' in cli(
            "task", "status", "--json", REDIS_URL=env["REDIS_URL"]).stdout, what="the file's task complete",
            timeout=120, interval=0.2)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        log.close()
    # everything it started is gone: the embedded Redis no longer answers
    with pytest.raises(RedisUnavailable):
        connect(env["REDIS_URL"])


def test_up_brings_back_a_crashed_embedded_redis_and_worker_and_the_task_goes_on(tars_env, fake_api, tmp_path, cli):
    redis_port, http_port = free_ports(2)
    url = f"redis://127.0.0.1:{redis_port}/0"
    env = {**os.environ, **tars_env, "REDIS_URL": url, "PORT": str(http_port), "EMBEDDED_REDIS": "true"}
    log_path = tmp_path / "up.log"
    log = open(log_path, "wb")
    process = subprocess.Popen([sys.executable, str(ROOT / "main_tars.py"), "up"], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    health = lambda: httpx.get(f"http://127.0.0.1:{http_port}/health").json()  # noqa: E731
    try:
        wait_until(lambda: health()["workers"], what="server and worker", timeout=120, interval=0.2,
                   ignore=(httpx.HTTPError, OSError))
        fake_api.script([bash("sleep 4"), edit(command="create", path="note.txt", file_text="hi\n"),
                         text("Wrote note.txt.")])
        started = cli("task", "start", "--goal", "Write a note", "--project", "notes", "--json", REDIS_URL=url)
        task_id = json.loads(started.stdout)["task_id"]
        # Read Redis directly: a CLI call takes seconds on a loaded machine, longer than the 4 s the command runs.
        watch = TaskManager(connect(with_embedded_password(url, Path(tars_env["DATA_DIR"]))), load_settings())
        wait_until(lambda: "sleep 4" in (watch.status(task_id).progress or ""), timeout=120, what="running",
                   interval=0.05)
        children = psutil.Process(process.pid).children()
        server = next(c for c in children if "start_worker" not in " ".join(c.cmdline()))
        server.kill()  # the embedded Redis dies mid-task
        wait_until(lambda: '"complete"' in cli("task", "status", task_id, "--json", REDIS_URL=url).stdout,
                   timeout=120, what="task complete after the Redis crash", interval=0.5)
        assert (tmp_path / "projects" / "notes" / "note.txt").read_text() == "hi\n"
        assert "the embedded Redis exited" in log_path.read_text()

        worker = next(c for c in psutil.Process(process.pid).children() if "start_worker" in " ".join(c.cmdline()))
        worker.kill()
        wait_until(lambda: any(c.pid != worker.pid and "start_worker" in " ".join(c.cmdline())
                               for c in psutil.Process(process.pid).children()), timeout=20, what="a new worker")
        assert "the worker exited" in log_path.read_text()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=40)
        log.close()


def run_until_healthy(env: dict, log_path, *args: str):
    """Start main_tars.py as a real process; every /health answer until a worker has registered, and the process."""
    log = open(log_path, "wb")
    process = subprocess.Popen([sys.executable, str(ROOT / "main_tars.py"), *args], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    answers = []

    def registered():
        answers.append(httpx.get(f"http://127.0.0.1:{env['PORT']}/health").json())
        return answers[-1]["workers"] or ("up" not in args and answers[-1])

    try:
        wait_until(registered, 60, "the server (and its worker)", interval=0.05, ignore=(httpx.HTTPError, OSError))
    except BaseException:
        process.kill()
        raise
    return process, answers


def test_up_tells_where_the_dashboard_is_warns_about_the_key_and_health_counts_its_starting_worker(
        tars_env, tmp_path):
    """No DASHBOARD_PASSWORD, no ANTHROPIC_API_KEY and an old name in .env: `up` says the dashboard is off and how to
    switch it on, warns about the key and the name (once: its worker leaves them to it), and /health never says
    `workers: 0` alone while its worker is starting: it counts it as starting."""
    env_file = tmp_path / "tars.env"
    env_file.write_text("DISCORD_UPDATES_WEBHOOK=https://n8n.example.com/webhook/discord-updates\n")
    env = {**os.environ, **tars_env, "PORT": str(free_ports(1)[0]), "ANTHROPIC_API_KEY": "", "TARS_ENV_FILE":
           str(env_file)}
    process, answers = run_until_healthy(env, tmp_path / "up.log", "up")
    try:
        assert all(a["workers"] + a["starting"] == 1 for a in answers), answers  # never "no worker" meanwhile
        assert answers[-1] == {"status": "ok", "redis": True, "workers": 1, "starting": 0, "queue_length": 0,
                               "sandbox": sandbox.status_line(), "discord": "off", "paused": False,
                               "pool": [{"name": answers[-1]["pool"][0]["name"], "state": "idle",
                                         "current_task": None, "capabilities": []}],
                               "tasks_file": tars_env["DATA_DIR"] + "/tasks.yaml"}
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=40)
    log = (tmp_path / "up.log").read_text()
    port = env["PORT"]
    assert f"TARS server: http://127.0.0.1:{port} (health: http://127.0.0.1:{port}/health)" in log, log
    assert ("Dashboard:  off: set DASHBOARD_PASSWORD (at least 8 characters) in .env and restart "
            f"`python main_tars.py up`; then open http://127.0.0.1:{port}/") in log, log
    assert "Worker:     one, started with the server; /health counts it as `starting`" in log, log
    assert f"Tasks file: {tars_env['DATA_DIR']}/tasks.yaml (watched: each new entry becomes a task once" in log, log
    assert log.count("ANTHROPIC_API_KEY is not set") == 1, log
    assert "restart `python main_tars.py up`." in log, log
    assert log.count("DISCORD_UPDATES_WEBHOOK in") == 1 and "use N8N_WEBHOOK_URL" in log, log


def test_the_server_alone_shows_the_dashboards_address_and_no_worker_of_its_own(tars_env, tmp_path):
    env = {**os.environ, **tars_env, "PORT": str(free_ports(1)[0]), "DASHBOARD_PASSWORD": "a-long-passphrase"}
    process, answers = run_until_healthy(env, tmp_path / "serve.log", "serve")
    try:
        assert answers[-1] == {"status": "ok", "redis": True, "workers": 0, "starting": 0, "queue_length": 0,
                               "sandbox": sandbox.status_line(), "discord": "off", "paused": False, "pool": [],
                               "tasks_file": tars_env["DATA_DIR"] + "/tasks.yaml"}
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=40)
    log = (tmp_path / "serve.log").read_text()
    port = env["PORT"]
    assert f"Dashboard:  http://127.0.0.1:{port}/ (log in with DASHBOARD_PASSWORD)" in log, log
    assert "Worker:     none started here: run `python start_worker.py` beside it" in log, log
    assert "ANTHROPIC_API_KEY is not set" not in log and "a-long-passphrase" not in log, log


def test_up_runs_a_pool_of_workers_each_named_and_brought_back(tars_env, tmp_path):
    """`up --workers 2` (over WORKER_COUNT=1): two supervised workers, each in /health under its own name; one that is
    killed is started again under a new name, beside the other."""
    env = {**os.environ, **tars_env, "PORT": str(free_ports(1)[0]), "WORKER_COUNT": "1"}
    log_path = tmp_path / "up.log"
    process = subprocess.Popen([sys.executable, str(ROOT / "main_tars.py"), "up", "--workers", "2"], cwd=ROOT,
                               env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
    health = lambda: httpx.get(f"http://127.0.0.1:{env['PORT']}/health").json()  # noqa: E731
    workers = lambda: [c for c in psutil.Process(process.pid).children()  # noqa: E731
                       if "start_worker" in " ".join(c.cmdline())]
    try:
        answer = wait_until(lambda: (r := health())["workers"] == 2 and r, 120, "two workers registered",
                            interval=0.2, ignore=(httpx.HTTPError, OSError))
        assert answer["starting"] == 0 and answer["paused"] is False
        assert [w["state"] for w in answer["pool"]] == ["idle", "idle"]
        names = {w["name"] for w in answer["pool"]}
        assert names == {f"{socket.gethostname()}.{child.pid}" for child in workers()}

        killed, = [child for child in workers() if f"{socket.gethostname()}.{child.pid}" == sorted(names)[0]]
        killed.kill()
        back = wait_until(lambda: (r := {w["name"] for w in health()["pool"]}) - names and r, 120,
                          "a new worker in /health", interval=0.2)
        (new_name,) = back - names
        assert sorted(names)[1] in back  # the other one kept working
        assert {f"{socket.gethostname()}.{child.pid}" for child in workers()} == {new_name, sorted(names)[1]}
        log = log_path.read_text()
        assert "Workers:    2, started with the server and kept running" in log, log
        assert re.search(r"worker [12] of 2 exited \(status -9\); starting it again", log), log
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


def test_a_pool_of_no_workers_is_refused_in_one_line(tars_env, cli):
    refused = cli("up", "--workers", "0")
    assert refused.returncode == 2 and "--workers: must be a whole number of at least 1, not '0'" in refused.stderr
    setting = cli("up", WORKER_COUNT="0")
    assert setting.returncode == 1 and setting.stderr.startswith("error: WORKER_COUNT='0' is invalid: Input should be "
                                                                 "greater than or equal to 1"), setting.stderr
