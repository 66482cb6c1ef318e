"""Tasks from a file: the owner keeps goals in tasks.yaml; the server watching it queues each entry exactly once,
however often the file is saved, and says which entries are wrong (line and reason) while the others still go in."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta

import pytest
from rq.job import Job

from core import event_log, keys, task_file
from core.task_file import Entry, Problem
from tests.fakes.anthropic_api import text
from tests.test_task_branches import ended
from tests.waiting import wait_until

TWO_GOALS = """# the owner's list
- goal: Write add.py with an add function
  project: calc
- goal: Write sub.py with a sub function
  project: calc
  priority: high
"""


def recent_ids(redis_client) -> list[str]:
    return [i.decode() for i in redis_client.zrange(keys.RECENT_TASKS, 0, -1)]


def saved(path, content: str, watcher, readings: int) -> None:
    """Save the file as an editor does and wait until the watcher has read it `readings` times in all."""
    path.write_text(content)
    wait_until(lambda: watcher.readings >= readings, 60, f"reading {readings} of {path.name}")


def task_file_posts(n8n) -> list[dict]:
    return [body for body in n8n.bodies() if body["type"] == "task_file"]


# --- the story: a watched file, a real server, a real worker ----------------------------------------------------

def test_the_same_tasks_file_saved_three_times_queues_each_entry_once_and_a_worker_runs_them(
        serve, n8n, settings, tasks, fake_api, start_worker, redis_client):
    fake_api.script([text("add.py is written.")], match="Goal: Write add.py")
    fake_api.script([text("sub.py is written.")], match="Goal: Write sub.py")
    server = serve(N8N_WEBHOOK_URL=n8n.url())
    watcher = server.app.state.task_file
    assert watcher.wait_ready(30) and watcher.path == settings.TASKS_FILE

    saved(settings.TASKS_FILE, TWO_GOALS, watcher, 1)
    saved(settings.TASKS_FILE, TWO_GOALS, watcher, 2)  # saved again, unchanged
    reordered = """- goal: Write sub.py with a sub function
  priority: high
  project: calc
# reordered, with a comment and the goal's spaces changed
- goal: Write add.py   with an add function
  project: calc
"""
    saved(settings.TASKS_FILE, reordered, watcher, 3)

    ids = recent_ids(redis_client)
    assert len(ids) == 2, ids
    by_goal = {tasks.status(i).goal: tasks.status(i) for i in ids}
    assert set(by_goal) == {"Write add.py with an add function", "Write sub.py with a sub function"}
    assert by_goal["Write sub.py with a sub function"].priority == "high"
    first = by_goal["Write add.py with an add function"]
    [queued] = [e for e in event_log.read(redis_client, first.task_id) if e.type == "queued"]
    assert queued.message == "Queued from tasks.yaml line 2: Write add.py with an add function"
    assert queued.data["source"] == "tasks.yaml line 2"

    start_worker()
    for task_id in ids:
        assert ended(tasks, task_id, 120).status == "complete"
    assert recent_ids(redis_client) == ids  # nothing new came of the saves while they ran

    [post] = task_file_posts(n8n)  # the owner hears of the new tasks once
    assert post["message"].startswith("📄 tasks.yaml: 2 new tasks started")
    assert f"Line 2: task {first.task_id}" in post["message"]


def test_a_bad_entry_is_reported_with_its_line_and_reason_once_and_the_others_still_go_in(
        serve, n8n, settings, tasks, redis_client, projects):
    server = serve(N8N_WEBHOOK_URL=n8n.url())
    watcher = server.app.state.task_file
    assert watcher.wait_ready(30)
    content = """- goal: Write the README
  project: docs
- goal: Tidy up
  project: docs
  prio: high
- goal: Go outside
  project: ../elsewhere
- goal: Ship it
  project: docs
  at: "2020-01-01T02:00"
"""
    saved(settings.TASKS_FILE, content, watcher, 1)
    [good] = recent_ids(redis_client)
    assert tasks.status(good).goal == "Write the README"
    wait_until(lambda: task_file_posts(n8n), 30, "the report to reach n8n")
    [post] = task_file_posts(n8n)
    message = post["message"]
    assert message.startswith("📄 tasks.yaml: 1 new task started, 3 entries not queued")
    assert "Line 5 not queued: unknown field 'prio'; an entry has goal, project, priority, plan, at" in message
    assert f"Line 6 not queued: The project path ../elsewhere is outside the projects folder {projects}" in message
    assert "Line 8 not queued: The start time 2020-01-01T02:00 (on 1 Jan 2020 at 02:00) is in the past" in message
    assert not (projects.parent / "elsewhere").exists()

    saved(settings.TASKS_FILE, content + "\n", watcher, 2)  # saved again, still wrong: not told twice
    assert len(task_file_posts(n8n)) == 1 and len(recent_ids(redis_client)) == 1

    saved(settings.TASKS_FILE, content.replace("prio:", "priority:"), watcher, 3)  # the owner fixes one
    wait_until(lambda: len(task_file_posts(n8n)) == 2, 30, "the second report")
    fixed = next(i for i in recent_ids(redis_client) if i != good)
    assert (tasks.status(fixed).goal, tasks.status(fixed).priority) == ("Tidy up", "high")
    assert task_file_posts(n8n)[1]["message"].startswith("📄 tasks.yaml: 1 new task started\nLine 3: task ")


def test_an_entry_with_a_start_time_is_scheduled(serve, settings, tasks, redis_client):
    server = serve()
    watcher = server.app.state.task_file
    assert watcher.wait_ready(30)
    saved(settings.TASKS_FILE, "- goal: Nightly clean-up\n  project: ops\n  at: '03:30'\n  plan: false\n", watcher, 1)
    [task_id] = recent_ids(redis_client)
    status = tasks.status(task_id)
    assert status.status == "scheduled"
    at = datetime.fromisoformat(status.scheduled_for)
    assert (at.hour, at.minute) == (3, 30) and at - datetime.now(at.tzinfo) <= timedelta(days=1)
    assert Job.fetch(task_id, connection=redis_client).meta["plan"] is False


def test_a_tasks_file_created_after_the_server_started_is_read(serve, settings, redis_client):
    assert not settings.TASKS_FILE.exists()
    watcher = serve().app.state.task_file
    assert watcher.wait_ready(30) and watcher.readings == 0  # no file yet: nothing read
    saved(settings.TASKS_FILE, "- goal: Start the log\n  project: notes\n", watcher, 1)
    assert len(recent_ids(redis_client)) == 1


# --- the reading itself --------------------------------------------------------------------------------------

@pytest.mark.parametrize("content, problems", [
    ("- goal: a\n  project: p\n- just text\n",
     [Problem(3, "an entry needs a goal and a project, like:\n" + task_file.EXAMPLE)]),
    ("- goal: a\n", [Problem(1, "the entry has no project")]),
    ("- project: p\n  goal: ''\n", [Problem(1, "the entry has no goal")]),
    ("- goal: a\n  project: p\n  goal: b\n", [Problem(3, "goal is given twice")]),
    ("- goal: [a, b]\n  project: p\n", [Problem(1, "goal must be a single value, not a list or a mapping")]),
    ("- goal: a\n  project: p\n\n  priority: urgent\n", [Problem(4, "The priority 'urgent' is not one of high, "
                                                                     "normal, low.")]),
    ("- goal: a\n  project: p\n  plan: maybe\n", [Problem(3, "plan must be true or false, not 'maybe'")]),
    ("goal: a\nproject: p\n", [Problem(1, "the file must be a list of tasks, like:\n" + task_file.EXAMPLE)]),
    ("- goal: a\n  project: p\n- goal: 'b\n", [Problem(4, "the file is not valid YAML (found unexpected end of "
                                                       "stream); no entry was read")]),
])
def test_each_problem_names_its_line_and_reason(content, problems):
    assert task_file.parse(content)[1] == problems


def test_fields_are_read_as_written_and_the_identity_is_the_content():
    entries, problems = task_file.parse("tasks:\n  - goal: 'yes'\n    project: p\n    at: 02:00\n    plan: yes\n"
                                        "  - goal: '  yes  '\n    project: p\n    at: 02:00\n    plan: true\n")
    assert problems == []
    first, second = entries
    # YAML 1.1 would have read 02:00 as 120 and yes as True: the text is kept as written
    assert first == Entry(2, "yes", "p", "normal", True, "02:00")
    assert first.identity == second.identity and second.line == 6
    assert Entry(1, "yes", "p", "high").identity != Entry(1, "yes", "p").identity


def test_a_reader_that_stopped_halfway_is_completed_and_never_doubled(tasks, redis_client):
    entries, _ = task_file.parse(TWO_GOALS)
    # Reader 1 claimed the first entry's id and died before queueing it; reader 2 queued the second and died
    # before saying so.
    lost, unsaid = entries
    redis_client.hset(keys.task_file_entry(lost.identity), mapping={"task_id": "abc123", "started": "0"})
    unsaid_id = tasks.start(unsaid.goal, unsaid.project)
    redis_client.hset(keys.task_file_entry(unsaid.identity), mapping={"task_id": unsaid_id, "started": "0"})

    reading = task_file.enqueue(tasks, TWO_GOALS, "tasks.yaml")
    assert reading.started == [(2, "abc123")] and reading.known == [(4, unsaid_id)]
    assert tasks.status("abc123").goal == lost.goal
    assert sorted(recent_ids(redis_client)) == sorted(["abc123", unsaid_id])
    again = task_file.enqueue(tasks, TWO_GOALS)
    assert again.started == [] and sorted(again.known) == [(2, "abc123"), (4, unsaid_id)]


def test_two_servers_reading_the_same_file_at_once_queue_each_entry_once(tasks, redis_client):
    many = "".join(f"- goal: Goal number {n}\n  project: bulk\n" for n in range(12))
    readings, go = [], threading.Barrier(4)

    def read():
        go.wait()
        readings.append(task_file.enqueue(tasks, many))

    readers = [threading.Thread(target=read) for _ in range(4)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(60)
    assert len(readings) == 4 and sum(len(r.started) for r in readings) == 12
    assert len(recent_ids(redis_client)) == 12


# --- the command line -------------------------------------------------------------------------------------------

def test_task_file_queues_a_file_now_and_check_only_says_what_is_wrong(cli, tmp_path, redis_client, projects):
    path = tmp_path / "mine.yaml"
    path.write_text(TWO_GOALS + "- goal: Broken\n  project: calc\n  priority: soon\n")

    checked = cli("task", "file", str(path), "--check")
    assert checked.returncode == 1, checked.stderr
    assert checked.stdout.strip() == "mine.yaml line 9: The priority 'soon' is not one of high, normal, low."
    assert recent_ids(redis_client) == []

    queued = cli("task", "file", str(path), "--json")
    assert queued.returncode == 1, queued.stderr
    answer = json.loads(queued.stdout)
    assert [row["line"] for row in answer["started"]] == [2, 4] and answer["known"] == []
    assert answer["problems"] == [{"line": 9, "reason": "The priority 'soon' is not one of high, normal, low."}]

    path.write_text(TWO_GOALS)
    again = cli("task", "file", str(path))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "mine.yaml: nothing new\n2 entries were queued before."
    assert len(recent_ids(redis_client)) == 2

    missing = cli("task", "file")  # TASKS_FILE, which this owner never wrote
    assert missing.returncode == 1 and "Cannot read the tasks file" in missing.stderr and "TASKS_FILE" in \
        missing.stderr
