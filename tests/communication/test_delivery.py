"""Progress updates reach n8n and Discord from the tasks' event streams, whatever dies on the way: a work-horse, the
delivery process, an endpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rq.job import Job

from communication.delivery import Delivery, event_id, make_notifier
from core import event_log, keys
from core.config import load_settings
from core.redis_conn import free_port
from tests.fakes.anthropic_api import bash, repeat, text
from tests.fakes.webhook_server import Reply
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
DISCORD_PATH = "/api/webhooks/1/tok3n-secret-for-the-delivery-tests"


@pytest.fixture
def readers(tars_env, redis_client, monkeypatch):
    """Delivery readers running in threads of this process (stopped at the end); endpoints={"N8N_WEBHOOK_URL": ...}."""
    started: list[tuple[Delivery, threading.Thread]] = []

    def start(endpoints: dict | None = None, **options) -> Delivery:
        for name, value in (endpoints or {}).items():
            monkeypatch.setenv(name, value)
        settings = load_settings()
        fast = {"backoff_base": 0.01, "backoff_max": 0.05}  # a test's own notifier options win
        notifier = make_notifier(settings, **{**fast, **options.pop("notifier", {})})
        reader = Delivery(redis_client, settings, notifier=notifier, **options)
        thread = threading.Thread(target=reader.run, daemon=True)
        thread.start()
        started.append((reader, thread))
        wait_until(reader.ready.is_set, 30, "the reader subscribed and polled once")
        return reader

    yield start
    for reader, thread in started:
        reader.stop()
        thread.join(10)


def steps(redis_client, task_id, count, kind="command_result"):
    """What a worker appends as it goes."""
    for i in range(count):
        event_log.append(redis_client, task_id, kind, f"step {i}", "coding", {"command": f"step {i}"})


def ended(redis_client, task_id):
    event_log.append(redis_client, task_id, "complete", "Complete: done", "complete", {"result": {"summary": "ok"}})


def delivered_ids(server, task_id):
    """The event ids the endpoint got for the task, duplicates dropped as a receiver does (by Idempotency-Key)."""
    return list(dict.fromkeys(r.headers["idempotency-key"] for r in server.requests
                              if r.headers["idempotency-key"].startswith(f"evt_{task_id}_")))


def stream_ids(redis_client, task_id, skip=("queued",)):
    return [event_id(task_id, e.id) for e in event_log.read(redis_client, task_id) if e.type not in skip]


def test_both_endpoints_get_every_event_in_order_with_the_stream_id(tasks, redis_client, n8n, make_webhook,
                                                                    readers):
    discord = make_webhook()
    task_id = tasks.start("Build a calculator", project_path="calc")
    reader = readers({"N8N_WEBHOOK_URL": n8n.url(), "DISCORD_WEBHOOK_URL": discord.url(DISCORD_PATH)})
    steps(redis_client, task_id, 30)
    ended(redis_client, task_id)
    expected = stream_ids(redis_client, task_id)
    assert len(expected) == 31
    for server in (n8n, discord):
        wait_until(lambda: delivered_ids(server, task_id) == expected, 30, "every event, in order")
    bodies = n8n.bodies()
    assert [b["detail"] for b in bodies[:3]] == ["step 0", "step 1", "step 2"]
    assert bodies[0]["command"] == "step 0" and bodies[0]["goal"] == "Build a calculator"
    assert bodies[-1]["type"] == "complete" and bodies[-1]["data"]["result"]["summary"] == "ok"
    assert [m["content"] for m in discord.bodies()] == [b["message"] for b in bodies]
    # all delivered: the task leaves the set, the reader lets it go; the cursors stay with the task's data
    wait_until(lambda: not redis_client.sismember(keys.UNDELIVERED_TASKS, task_id), 10, "the task retired")
    assert task_id not in reader.held() and not redis_client.exists(keys.task_delivery_lease(task_id))
    last = event_log.last(redis_client, task_id).id.encode()
    assert redis_client.hgetall(keys.task_delivered(task_id)) == {b"n8n": last, b"discord": last}
    assert 0 < redis_client.ttl(keys.task_delivered(task_id))


def test_a_hanging_n8n_does_not_hold_up_discord(tasks, redis_client, n8n, make_webhook, readers):
    discord = make_webhook()
    n8n.default = Reply(200, delay=60)  # answers nothing (its request timeout is 30 s)
    task_id = tasks.start("Build a calculator", project_path="calc")
    readers({"N8N_WEBHOOK_URL": n8n.url(), "DISCORD_WEBHOOK_URL": discord.url(DISCORD_PATH)},
            notifier={"timeout": 30})
    steps(redis_client, task_id, 10)
    ended(redis_client, task_id)
    expected = stream_ids(redis_client, task_id)
    wait_until(lambda: delivered_ids(discord, task_id) == expected, 20, "Discord has every event")
    assert len(n8n.requests) == 1  # still waiting on the first
    assert redis_client.sismember(keys.UNDELIVERED_TASKS, task_id)  # n8n still owed the rest


def test_a_refused_n8n_does_not_hold_up_discord_and_is_tried_again_later(tasks, redis_client, make_webhook,
                                                                        readers):
    discord = make_webhook()
    dead = f"http://127.0.0.1:{free_port()}/webhook/tars"  # nothing listens there
    task_id = tasks.start("Build a calculator", project_path="calc")
    reader = readers({"N8N_WEBHOOK_URL": dead, "DISCORD_WEBHOOK_URL": discord.url(DISCORD_PATH)},
                     notifier={"max_attempts": 2}, retry_later=0.2)
    steps(redis_client, task_id, 20)
    expected = stream_ids(redis_client, task_id)
    wait_until(lambda: delivered_ids(discord, task_id) == expected, 20, "Discord has every event")
    wait_until(lambda: reader.notifier.endpoint_stats["n8n"]["failed"] >= 3, 20, "n8n tried again and again")
    assert redis_client.hget(keys.task_delivered(task_id), "n8n") is not None  # only past the skipped `queued`
    assert reader.notifier.endpoint_stats["n8n"]["sent"] == 0


def test_updates_trimmed_before_a_dead_endpoint_came_back_are_named_in_the_log(tasks, redis_client, n8n, readers,
                                                                                caplog):
    caplog.set_level("WARNING", logger="tars.delivery")
    n8n.default = Reply(503)  # down: attempts run out, the event waits for a later try
    task_id = tasks.start("Build a calculator", project_path="calc")
    reader = readers({"N8N_WEBHOOK_URL": n8n.url()}, notifier={"max_attempts": 1}, retry_later=0.5)
    steps(redis_client, task_id, 3)
    wait_until(lambda: reader.notifier.endpoint_stats["n8n"]["failed"] >= 1, 20, "n8n refused the first")
    first_sent = redis_client.hget(keys.task_delivered(task_id), "n8n").decode()  # the skipped `queued`
    steps(redis_client, task_id, 5)
    redis_client.xtrim(keys.task_events(task_id), maxlen=4, approximate=False)  # the cap trimmed the oldest while n8n was down
    n8n.default = Reply(204)
    ended(redis_client, task_id)
    wait_until(lambda: not redis_client.sismember(keys.UNDELIVERED_TASKS, task_id), 20, "the rest delivered")
    kept = stream_ids(redis_client, task_id)  # the 4 the cap left, and the ending
    assert delivered_ids(n8n, task_id)[-len(kept):] == kept
    assert any(f"updates after {first_sent} were trimmed" in r.getMessage() for r in caplog.records), caplog.text


def test_a_quiet_task_sends_milestones_only(tasks, redis_client, n8n, readers):
    quiet = tasks.start("Stay quiet", project_path="calc", verbose_updates=False)
    readers({"N8N_WEBHOOK_URL": n8n.url()})
    event_log.append(redis_client, quiet, "started", "Started: Stay quiet", "planning")
    steps(redis_client, quiet, 5)
    event_log.append(redis_client, quiet, "phase", "Coding", "coding")
    ended(redis_client, quiet)
    wait_until(lambda: not redis_client.sismember(keys.UNDELIVERED_TASKS, quiet), 20, "the task retired")
    assert [b["type"] for b in n8n.bodies()] == ["started", "phase", "complete"]


def test_two_readers_share_the_tasks_and_send_each_event_once(tasks, redis_client, n8n, readers):
    endpoints = {"N8N_WEBHOOK_URL": n8n.url()}
    first, second = readers(endpoints, name="reader-1"), readers(endpoints, name="reader-2")
    started = [tasks.start(f"Task {i}", project_path="calc") for i in range(4)]
    for task_id in started:
        steps(redis_client, task_id, 10)
        ended(redis_client, task_id)
    for task_id in started:
        wait_until(lambda: delivered_ids(n8n, task_id) == stream_ids(redis_client, task_id), 30, "delivered")
    ids = [r.headers["idempotency-key"] for r in n8n.requests]
    assert len(ids) == len(set(ids)) == 44
    assert first.name != second.name


def test_with_neither_endpoint_each_update_is_a_log_line(tasks, redis_client, readers, caplog):
    caplog.set_level("INFO", logger="tars.notifier")
    task_id = tasks.start("Build a calculator", project_path="calc")
    readers()
    event_log.append(redis_client, task_id, "started", "Started: Build a calculator", "planning")
    ended(redis_client, task_id)
    wait_until(lambda: not redis_client.sismember(keys.UNDELIVERED_TASKS, task_id), 20, "the task retired")
    lines = [r.getMessage() for r in caplog.records if r.name == "tars.notifier"]
    assert any(f"Task {task_id} started: Build a calculator" in line for line in lines)
    assert redis_client.hkeys(keys.task_delivered(task_id)) == [b"log"]


# --- real processes ---------------------------------------------------------------------------------------------

class Reader:
    """`python -m communication.delivery` as start_worker.py runs it."""

    def __init__(self, env: dict, log_path: Path, name: str):
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "communication.delivery", "--name", name],
                                            cwd=ROOT, env={**os.environ, **env}, stdin=subprocess.PIPE, stdout=log,
                                            stderr=subprocess.STDOUT)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop_as_the_worker_does(self):
        self.process.stdin.close()

    def stop(self):
        if not self.process.stdin.closed:
            self.process.stdin.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def start_reader(tars_env, tmp_path):
    started: list[Reader] = []

    def start(name="reader", **overrides) -> Reader:
        started.append(Reader({**tars_env, **overrides}, tmp_path / f"{name}.log", name))
        return started[-1]

    yield start
    for reader in started:
        reader.stop()


def test_a_delivery_process_killed_mid_way_is_resumed_from_its_cursor(tasks, redis_client, n8n, start_reader):
    n8n.default = Reply(200, delay=0.1)  # a slow n8n: the kill finds events still to send
    task_id = tasks.start("Build a calculator", project_path="calc")
    steps(redis_client, task_id, 40)
    ended(redis_client, task_id)
    expected = stream_ids(redis_client, task_id)
    first = start_reader(N8N_WEBHOOK_URL=n8n.url())
    n8n.wait_for(5, timeout=60)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    got_before = len(n8n.requests)
    assert got_before < len(expected)
    start_reader(N8N_WEBHOOK_URL=n8n.url())  # the same name: its lease is its own, no wait for it to run out
    wait_until(lambda: delivered_ids(n8n, task_id) == expected, 60, "every event, in order")
    resent = len(n8n.requests) - len(expected)
    assert 0 <= resent <= 1  # at most the one in flight at the kill, with the same id
    wait_until(lambda: not redis_client.sismember(keys.UNDELIVERED_TASKS, task_id), 10, "the task retired")


def test_a_stop_that_comes_while_the_reader_is_still_starting_delivers_what_is_there(tasks, redis_client, n8n,
                                                                                     start_reader):
    """A worker stopped at once (a second Ctrl+C right after start) closes the pipe before the reader has even
    imported its modules: the stop waits for it, and what was appended still goes out."""
    task_id = tasks.start("Build a calculator", project_path="calc")
    steps(redis_client, task_id, 3)
    ended(redis_client, task_id)
    reader = start_reader(N8N_WEBHOOK_URL=n8n.url())
    reader.stop_as_the_worker_does()
    assert reader.process.wait(60) == 0, reader.log
    assert delivered_ids(n8n, task_id) == stream_ids(redis_client, task_id)


def test_a_drain_asked_before_the_reader_runs_counts_from_its_first_poll(tasks, redis_client, n8n, tars_env,
                                                                          monkeypatch):
    """On a loaded machine the worker can ask for the stop before the reader has even polled: it still gets its
    whole drain time to send what is there, rather than a deadline that passed while it was starting."""
    monkeypatch.setenv("N8N_WEBHOOK_URL", n8n.url())
    task_id = tasks.start("Build a calculator", project_path="calc")
    steps(redis_client, task_id, 5)
    ended(redis_client, task_id)
    reader = Delivery(redis_client, load_settings(), notifier=make_notifier(load_settings()))
    reader.drain(seconds=0.2)
    time.sleep(0.5)  # the slow start itself: it runs well after the drain's 0.2 s have passed
    reader.run()  # returns once drained
    assert delivered_ids(n8n, task_id) == stream_ids(redis_client, task_id)


def test_a_reader_started_while_redis_is_down_waits_for_it(tasks, redis_client, n8n, start_reader, tmp_path):
    from core.redis_conn import EmbeddedRedis

    port = free_port()
    reader = start_reader(N8N_WEBHOOK_URL=n8n.url(), REDIS_URL=f"redis://127.0.0.1:{port}/0")
    wait_until(lambda: "Trying again every 2 s" in reader.log, 60, "the reader to say it waits for Redis")
    assert reader.process.poll() is None
    with EmbeddedRedis(tmp_path / "late-redis", port=port, persist=False) as late:
        from core import event_log as log_of
        from core.redis_conn import connect

        store = connect(late.url)
        log_of.append(store, "late01", "complete", "Complete: done", "complete", {})
        wait_until(lambda: delivered_ids(n8n, "late01"), 60, "the update once Redis is up")
        reader.stop_as_the_worker_does()
        assert reader.process.wait(60) == 0, reader.log


@pytest.mark.worker_story
def test_a_killed_work_horse_loses_no_update(tasks, fake_api, start_worker, n8n, make_webhook):
    """The horse dies with updates still unsent (n8n holds every POST until released); they were in Redis, not in
    the horse."""
    discord = make_webhook()
    n8n.default = Reply(200, delay=60)
    fake_api.script([bash("ls"), bash("ls -a"), bash("rm -f old.txt"), repeat(text("done"))])  # rm waits for a code
    task_id = tasks.start("Clean up the project", project_path="kill")
    worker = start_worker(N8N_WEBHOOK_URL=n8n.url(), DISCORD_WEBHOOK_URL=discord.url(DISCORD_PATH))
    wait_until(lambda: tasks.status(task_id).status == "awaiting_confirmation", 60, "the task asks for a code")
    horse = Job.fetch(task_id, connection=tasks.redis).get_meta()["horse_pid"]
    assert len(delivered_ids(n8n, task_id)) <= 1  # only the first update, held (retried after each timeout)
    os.kill(horse, signal.SIGKILL)
    wait_until(lambda: tasks.status(task_id).status == "failed", 30, "the worker recorded the failure")
    n8n.release.set()
    wait_until(lambda: not tasks.redis.sismember(keys.UNDELIVERED_TASKS, task_id), 60, "every update delivered")
    expected = stream_ids(tasks.redis, task_id)
    for server in (n8n, discord):
        assert delivered_ids(server, task_id) == expected
    types = [b["type"] for b in n8n.bodies()]
    assert "confirmation_required" in types and types[-1] == "error" and "SIGKILL" in n8n.bodies()[-1]["message"]
    assert worker.process.poll() is None
