"""The owner at a terminal looks back at their calls: `python main_tars.py calls` and `calls show CALL_SID`, as real
processes on the suite's Redis."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from core.call_history import CallHistory
from tests.test_main_tars import ok_json, one_line_error

OWNER = "+15551234567"
INBOUND_SID, OUTBOUND_SID, OLD_SID = "CA" + "1" * 32, "CA" + "2" * 32, "CA" + "3" * 32


@pytest.fixture
def calls(settings, redis_client, tasks, projects):
    """Three calls: this morning's, where the owner started a task; TARS's reminder call since; one three days ago."""
    (projects / "notes").mkdir()
    history = CallHistory(redis_client, settings)
    now = time.time()
    history.start(OLD_SID, OWNER, "inbound", at=now - 3 * 86400)
    history.end(OLD_SID, at=now - 3 * 86400 + 30)
    history.start(INBOUND_SID, OWNER, "inbound", at=now - 600)
    history.add(INBOUND_SID, "caller", "add a readme to my notes project", at=now - 595)
    task_id = tasks.start("Add a README", project_path="notes", call_sid=INBOUND_SID)
    history.add(INBOUND_SID, "tars", f"Started task {task_id} in your notes project, sir.", at=now - 590)
    history.end(INBOUND_SID, at=now - 600 + 185)
    history.start(OUTBOUND_SID, OWNER, "outbound", "reminder", at=now - 60)
    history.add(OUTBOUND_SID, "tars", "Sir, you asked me to remind you to water the plants.", at=now - 58)
    history.end(OUTBOUND_SID, at=now - 40)
    return {"task_id": task_id, "now": now}


def test_calls_lists_each_call_newest_first(cli, calls):
    run = cli("calls")
    assert run.returncode == 0 and run.stderr == "", run.stderr
    newest, morning, old = run.stdout.splitlines()
    assert OUTBOUND_SID in newest and "out (reminder)" in newest and "20 s" in newest and "1 line" in newest
    assert OWNER in newest and "tasks" not in newest
    assert INBOUND_SID in morning and " in " in morning and "3m05s" in morning and "2 lines" in morning
    assert morning.endswith(f"tasks {calls['task_id']}")
    assert morning.startswith(f"{datetime.fromtimestamp(calls['now'] - 600):%Y-%m-%d %H:%M}")
    assert OLD_SID in old

    recent = ok_json(cli("calls", "--days", "1", "--json"))
    assert [c["call_sid"] for c in recent] == [OUTBOUND_SID, INBOUND_SID]
    assert recent[1] | {"started_at": 0, "ended_at": 0} == {
        "call_sid": INBOUND_SID, "number": OWNER, "direction": "inbound", "purpose": "", "started_at": 0,
        "ended_at": 0, "lines": 2, "task_ids": [calls["task_id"]], "on_the_line": False, "duration_seconds": 185.0}


def test_calls_show_prints_the_transcript_and_the_tasks_it_started(cli, calls):
    task_id = calls["task_id"]
    run = cli("calls", "show", INBOUND_SID)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith(f"Call {INBOUND_SID} from {OWNER} (in), ") and lines[0].endswith(", 3m05s")
    assert lines[1].endswith("  caller: add a readme to my notes project")
    assert lines[2].endswith(f"  TARS:   Started task {task_id} in your notes project, sir.")
    assert lines[1].split()[0] == f"{datetime.fromtimestamp(calls['now'] - 595):%H:%M:%S}"
    assert lines[3] == "Tasks it started:"
    assert lines[4].startswith(f"{task_id}  queued") and lines[4].endswith("Add a README")

    shown = ok_json(cli("calls", "show", OUTBOUND_SID, "--json"))
    assert (shown["direction"], shown["purpose"], shown["tasks"]) == ("outbound", "reminder", [])
    assert [(line["who"], line["text"]) for line in shown["transcript"]] == [
        ("tars", "Sir, you asked me to remind you to water the plants.")]


def test_an_unknown_call_or_a_bad_period_is_refused(cli, tars_env):
    assert "no call 'CA-nope' in the call history" in one_line_error(cli("calls", "show", "CA-nope"))
    assert cli("calls").stdout == "No calls in the last 30 days.\n"
    bad = cli("calls", "--days", "0")
    assert bad.returncode == 2 and "--days: must be a whole number of at least 1" in bad.stderr
