"""A task's timeline: the same events n8n gets, kept in a Redis Stream, printed by `task log`, followed live by
`task log --follow`, replayed the same once the task has ended."""

from __future__ import annotations

import json
import subprocess
import sys

from core import event_log, keys
from core.defaults import EVENT_LOG_MAX_EVENTS, RESULT_TTL_SECONDS
from tests.conftest import ROOT
from tests.fakes.anthropic_api import bash, edit, text
from tests.waiting import wait_until


def hello(tasks, fake_api, **start):
    fake_api.script([edit(command="create", path="hello.py", file_text='print("hi")\n'), bash("python hello.py"),
                     text("Created hello.py.")])
    return tasks.start("Create hello.py", project_path="hello", **start)


def test_the_timeline_holds_every_event_n8n_got_and_more(tasks, fake_api, start_worker, n8n):
    task_id = hello(tasks, fake_api, verbose_updates=False)  # Discord hears milestones only; the log keeps all
    assert start_worker("--burst", N8N_WEBHOOK_URL=n8n.url()).wait(60) == 0
    events = tasks.events(task_id)
    types = [e.type for e in events]
    assert types == ["queued", "started", "workspace", "planning", "file_edit", "phase", "checkpoint", "command",
                     "command_result", "complete"]
    sent = [b["type"] for b in n8n.bodies()]
    assert sent == ["started", "phase", "complete"] and all(t in types for t in sent)
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert events[-1].ends and events[-1].phase == "complete" and events[-1].data["result"]["outcome"] == "complete"
    assert events[7].data["command"] == "python hello.py"
    assert tasks.redis.ttl(keys.task_events(task_id)) > RESULT_TTL_SECONDS - 60  # expires with the task's data
    # Resuming after an id gives exactly the rest.
    assert [e.id for e in tasks.events(task_id, after=events[4].id)] == [e.id for e in events[5:]]


def test_secrets_never_reach_the_timeline(tasks, fake_api, start_worker, settings):
    key = settings.secret("ANTHROPIC_API_KEY")
    fake_api.script([bash(f"echo {key}"), text("Printed it.")])
    task_id = tasks.start("Print the key", project_path="leak")
    assert start_worker("--burst").wait(60) == 0
    raw = json.dumps([e.to_dict() for e in tasks.events(task_id)])
    assert key not in raw and "echo" in raw


def test_the_stream_is_capped(redis_client):
    for n in range(EVENT_LOG_MAX_EVENTS + 300):
        event_log.append(redis_client, "cafe01", "progress", f"step {n}", "coding")
    kept = event_log.read(redis_client, "cafe01")
    # XADD's approximate trimming keeps at least the cap and never much more.
    assert EVENT_LOG_MAX_EVENTS <= len(kept) < EVENT_LOG_MAX_EVENTS + 300
    assert kept[-1].message == f"step {EVENT_LOG_MAX_EVENTS + 299}"


def test_task_log_prints_the_timeline_and_replays_it_the_same(tasks, fake_api, start_worker, cli):
    task_id = hello(tasks, fake_api)
    assert start_worker("--burst").wait(60) == 0
    printed = cli("task", "log", task_id)
    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.splitlines()
    assert len(lines) == len(tasks.events(task_id)) == 10
    assert "+00:00  queued" in lines[0] and f"Queued: Create hello.py" in lines[0]
    assert "complete" in lines[-1].split()[2]
    assert cli("task", "log", task_id).stdout == printed.stdout  # a replay is the same timeline
    followed = cli("task", "log", task_id, "--follow")  # an ended task: the whole timeline, then it returns
    assert followed.stdout == printed.stdout
    as_json = [json.loads(line) for line in cli("task", "log", task_id, "--json").stdout.splitlines()]
    assert [e["type"] for e in as_json] == [e.type for e in tasks.events(task_id)]


def test_task_log_follow_prints_events_as_they_happen_and_ends_with_the_task(tasks, fake_api, start_worker,
                                                                               tars_env):
    fake_api.script([bash("sleep 2"), edit(command="create", path="late.py", file_text="LATE = 1\n"),
                     text("Done late.")])
    task_id = tasks.start("Do it slowly", project_path="slow")
    follower = subprocess.Popen([sys.executable, str(ROOT / "main_tars.py"), "task", "log", task_id, "--follow"],
                                cwd=ROOT, env={**tars_env, "PATH": "/usr/bin:/bin"}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    first = follower.stdout.readline()  # printed while the task is still queued: it is live, not a dump at the end
    assert "queued" in first and tasks.status(task_id).status == "queued"
    start_worker()
    lines = [first] + list(follower.stdout)  # ends by itself when the task ends
    assert follower.wait(60) == 0, follower.stderr.read()
    assert [line.split()[2] for line in lines] == [e.type for e in tasks.events(task_id)]
    assert lines[-1].split()[2] == "complete"


def test_task_log_of_an_unknown_task_is_a_clear_error(cli):
    done = cli("task", "log", "abc123")
    assert done.returncode == 1 and done.stderr.strip() == "error: There is no task abc123."


def test_the_status_shows_usage_cost_and_files_while_it_runs(tasks, fake_api, start_worker):
    fake_api.script([edit(command="create", path="a.py", file_text="A = 1\n"), bash("sleep 5"), text("Done.")])
    task_id = tasks.start("Write a then wait", project_path="live")
    start_worker()
    running = wait_until(lambda: (s := tasks.status(task_id)).progress.startswith("Running: sleep") and s, 60,
                         "the sleep to run")
    assert running.status == "running" and running.files_changed == ["a.py"]
    assert sum(running.usage.values()) > 0 and running.cost_usd > 0, (running.usage, running.cost_usd)


def test_a_task_cancelled_while_queued_ends_its_timeline(tasks, cli):
    task_id = tasks.start("Never mind", project_path="later")
    assert tasks.cancel(task_id).status == "cancelled"
    assert [e.type for e in tasks.events(task_id)] == ["queued", "cancelled"]
    followed = cli("task", "log", task_id, "--follow", timeout=20)  # returns at once: the timeline has ended
    assert followed.returncode == 0 and followed.stdout.splitlines()[-1].split()[2] == "cancelled"


def test_on_a_terminal_follow_shows_a_live_progress_line(tasks, fake_api, start_worker, tars_env):
    import os
    import pty

    fake_api.script([edit(command="create", path="a.py", file_text="A = 1\n"), bash("sleep 3"), text("Done.")])
    task_id = tasks.start("Write a then wait", project_path="tty")
    start_worker()
    parent, child = pty.openpty()
    follower = subprocess.Popen([sys.executable, str(ROOT / "main_tars.py"), "task", "log", task_id, "--follow"],
                                cwd=ROOT, env=tars_env | {"PATH": os.environ["PATH"]}, stdout=child,
                                stderr=subprocess.PIPE)
    os.close(child)
    seen = b""
    while True:
        try:
            chunk = os.read(parent, 4096)
        except OSError:  # the follower exited and closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    assert follower.wait(60) == 0
    text_seen = seen.decode("utf-8", "replace")
    # While the sleep ran, the line under the timeline was redrawn in place with the live figures.
    assert "\r\x1b[K" in text_seen and "running · coding · Running: sleep 3" in text_seen and " tokens" in text_seen
    assert text_seen.rstrip().rsplit("\r\x1b[K", 1)[-1].split()[2] == "complete"  # the line gives way to the end
