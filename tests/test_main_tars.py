"""The owner at a terminal: `python main_tars.py task ...` as a real process, on the suite's Redis."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from core import keys, schedules
from core.config import default_data_dir
from core.redis_conn import free_port
from tests.conftest import ROOT, TEST_CODE
from tests.fakes import openai_api as oai
from tests.fakes.anthropic_api import bash, edit, text
from tests.waiting import wait_until

STATUS_FIELDS = {"task_id", "status", "phase", "progress", "goal", "project_path", "awaiting_confirmation",
                 "confirmation_command", "reason", "result"}
RESULT_FIELDS = {"outcome", "summary", "iterations", "files_changed", "tests_passed", "usage", "cost_usd",
                 "duration_seconds"}


def ok_json(run):
    assert run.returncode == 0, run.stderr
    assert run.stderr == "", run.stderr
    return json.loads(run.stdout)


def one_line_error(run) -> str:
    """A refusal: exit 1, nothing on stdout, one line on stderr and no traceback."""
    assert run.returncode == 1, (run.returncode, run.stdout, run.stderr)
    assert run.stdout == ""
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def start(cli, goal: str, *args: str) -> str:
    answer = ok_json(cli("task", "start", "--goal", goal, "--json", *args))
    assert set(answer) == {"task_id"}
    return answer["task_id"]


def test_start_prints_the_new_task_id_as_json(cli, tasks, redis_client, projects):
    task_id = start(cli, "Create hello.py", "--project", "hello")
    assert re.fullmatch(r"[0-9a-f]{6,}", task_id)
    assert redis_client.lrange("rq:queue:tars_programming", 0, -1) == [task_id.encode()]
    status = tasks.status(task_id)
    assert status.goal == "Create hello.py"
    assert status.project_path == str(projects / "hello")


def test_start_without_json_prints_just_the_id(cli, tasks):
    run = cli("task", "start", "--goal", "Plain output")
    assert run.returncode == 0, run.stderr
    task_id = run.stdout.strip()
    assert tasks.status(task_id).goal == "Plain output"


def test_verbose_and_quiet_are_recorded_with_the_task(cli, tasks):
    assert tasks.status(start(cli, "Loud", "--verbose")).verbose_updates is True
    assert tasks.status(start(cli, "Hushed", "--quiet")).verbose_updates is False
    assert tasks.status(start(cli, "Either")).verbose_updates is None


def test_status_json_of_a_queued_task(cli, projects):
    task_id = start(cli, "Write the docs", "--project", "docs")
    status = ok_json(cli("task", "status", task_id, "--json"))
    assert STATUS_FIELDS <= set(status)
    assert status["task_id"] == task_id
    assert status["status"] == "queued" and status["phase"] == "queued"
    assert status["progress"] == "Waiting for a worker"
    assert status["goal"] == "Write the docs"
    assert status["project_path"] == str(projects / "docs")
    assert status["awaiting_confirmation"] is False
    assert status["confirmation_command"] is None and status["reason"] is None and status["result"] is None


def test_status_without_an_id_is_the_latest_task(cli):
    start(cli, "Older")
    newest = start(cli, "Newer")
    status = ok_json(cli("task", "status", "--json"))
    assert status["task_id"] == newest
    assert status["goal"] == "Newer"


def test_list_json_is_newest_first(cli):
    ids = [start(cli, f"Goal {n}") for n in range(3)]
    rows = ok_json(cli("task", "list", "--json"))
    assert [r["task_id"] for r in rows] == list(reversed(ids))
    assert [r["status"] for r in rows] == ["queued"] * 3
    assert all(STATUS_FIELDS <= set(r) for r in rows)
    assert [r["task_id"] for r in ok_json(cli("task", "list", "--limit", "1", "--json"))] == [ids[-1]]


def test_list_of_nothing(cli):
    assert ok_json(cli("task", "list", "--json")) == []
    run = cli("task", "list")
    assert run.returncode == 0 and run.stdout.strip() == "No tasks yet."


def test_list_in_words_shows_id_status_and_goal(cli):
    task_id = start(cli, "Refactor the parser")
    run = cli("task", "list")
    assert run.returncode == 0, run.stderr
    [line] = run.stdout.splitlines()
    assert line.startswith(task_id) and "queued" in line and line.endswith("Refactor the parser")


def test_list_cuts_a_long_goal_with_an_ellipsis(cli):
    long_goal = "Build a calculator app with tests, a README and a command-line interface for it"
    start(cli, long_goal)
    start(cli, "x" * 60)  # exactly as wide as the column: shown whole
    run = cli("task", "list")
    assert run.returncode == 0, run.stderr
    whole, cut = run.stdout.splitlines()
    assert whole.endswith(" " + "x" * 60)
    assert cut.endswith(" " + long_goal[:59] + "…"), cut  # 60 characters, the last one the ellipsis


def test_a_reader_that_goes_away_ends_the_command_quietly(cli, tars_env):
    """`task list | head -1`: head exits after one line; the rest of the output has nowhere to go."""
    for n in range(3):
        start(cli, f"Goal {n}")
    for args in (["task", "list"], ["task", "status"], ["task", "log", "--follow"]):
        process = subprocess.Popen([sys.executable, str(ROOT / "main_tars.py"), *args], cwd=ROOT,
                                   env={**os.environ, **tars_env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        process.stdout.close()  # the reader is gone before the first line is written
        stderr = process.stderr.read().decode()
        assert process.wait(60) == 1, (args, stderr)
        assert stderr == "", (args, stderr)  # no BrokenPipeError traceback, no "Exception ignored"


def test_cancel_a_queued_task_then_again(cli, tasks, redis_client):
    task_id = start(cli, "Changed my mind")
    cancelled = ok_json(cli("task", "cancel", task_id, "--json"))
    assert cancelled["task_id"] == task_id
    assert cancelled["status"] == "cancelled"
    assert cancelled["reason"] == "The task was cancelled."
    assert redis_client.llen("rq:queue:tars_programming") == 0

    again = cli("task", "cancel", task_id)
    assert again.returncode != 0
    line = one_line_error(again)
    assert line == f"error: Task {task_id} has already ended (cancelled), so there is nothing to cancel."
    assert tasks.status(task_id).status == "cancelled"


def test_cancel_in_words(cli):
    task_id = start(cli, "Stop this")
    run = cli("task", "cancel", task_id)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"Task {task_id}: cancelled"


def test_an_urgent_task_waits_on_the_high_queue_and_list_and_status_say_its_priority(cli, tasks, redis_client):
    normal = start(cli, "Tidy the docs")
    urgent = start(cli, "Fix the outage", "--priority", "high")
    later = start(cli, "Rename things", "--priority", "LOW")
    assert [redis_client.llen(f"rq:queue:tars_programming{suffix}") for suffix in (":high", "", ":low")] == [1, 1, 1]
    assert redis_client.lrange("rq:queue:tars_programming:high", 0, -1) == [urgent.encode()]
    listed = cli("task", "list").stdout.splitlines()
    assert [line.split()[:3] for line in listed] == [[later, "queued", "low"], [urgent, "queued", "high"],
                                                    [normal, "queued", "normal"]]
    assert "  priority: high\n" in cli("task", "status", urgent).stdout
    assert ok_json(cli("task", "status", urgent, "--json"))["priority"] == "high"
    assert tasks.status(normal).priority == "normal"


def test_a_task_started_for_later_is_listed_as_scheduled_with_its_time_until_cancelled(cli, tasks, redis_client):
    before = datetime.now(timezone.utc)
    run = cli("task", "start", "--goal", "Nightly clean-up", "--in", "2h")
    after = datetime.now(timezone.utc)
    assert run.returncode == 0, run.stderr
    task_id, said = run.stdout.split(" ", 1)
    due = datetime.fromisoformat(tasks.status(task_id).scheduled_for)
    assert said.strip() == f"(scheduled to start {schedules.when_text(due)})"
    assert before + timedelta(hours=2) <= due <= after + timedelta(hours=2, seconds=1)
    assert redis_client.llen("rq:queue:tars_programming") == 0  # RQ's scheduler holds it, not the queue
    assert redis_client.zscore(keys.rq_scheduled("tars_programming"), task_id) == due.timestamp()

    [line] = cli("task", "list").stdout.splitlines()
    assert line.split()[:5] == [task_id, "scheduled", *due.astimezone().strftime("%a %H:%M").split(), "normal"]
    shown = cli("task", "status", task_id).stdout
    assert f"Task {task_id}: scheduled (phase queued)" in shown
    assert f"  progress: Scheduled to start {schedules.when_text(due)}\n" in shown
    assert f"  scheduled: {schedules.when_text(due)} ({due.isoformat()})" in shown
    status = ok_json(cli("task", "status", task_id, "--json"))
    assert (status["status"], status["scheduled_for"]) == ("scheduled", due.isoformat())

    assert cli("task", "cancel", task_id).stdout.strip() == f"Task {task_id}: cancelled"
    assert redis_client.zcard(keys.rq_scheduled("tars_programming")) == 0  # it will never run
    at_two = ok_json(cli("task", "start", "--goal", "At two", "--at", "02:00", "--json"))
    assert datetime.fromisoformat(at_two["scheduled_for"]) == schedules.parse_at("02:00")


@pytest.mark.parametrize("args, rule", [
    (["--priority", "urgent"], "argument --priority: invalid choice: 'urgent' (choose from 'high', 'normal', 'low')"),
    (["--at", "25:00"], "argument --at: The start time '25:00' is not a time: give HH:MM on the 24-hour clock "
                        "(02:00: the next such local time) or an ISO date-time"),
    (["--at", "2020-01-01T02:00"], "argument --at: The start time 2020-01-01T02:00 (on 1 Jan 2020 at 02:00) is in the "
                                   "past: give a time still to come."),
    (["--in", "soon"], "argument --in: The delay 'soon' is not a delay: give a number and a unit: 90s, 30m, 2h, "
                       "1h30m, 1d (d, h, m, s)."),
    (["--in", "0m"], "argument --in: A delay of 0m is no delay: leave it out to start the task now."),
    (["--in", "30d"], "argument --in: The delay 30d is too long: a task can be scheduled at most 7 days ahead."),
    (["--at", "02:00", "--in", "2h"], "argument --in: not allowed with argument --at"),
])
def test_a_bad_priority_or_start_time_is_a_usage_error_with_the_rule(cli, redis_client, args, rule):
    run = cli("task", "start", "--goal", "Never queued", *args)
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert rule in run.stderr and "Traceback" not in run.stderr and run.stdout == ""
    assert redis_client.zcard(keys.RECENT_TASKS) == 0


def test_status_of_an_unknown_task_is_one_line(cli):
    start(cli, "Something real")
    assert one_line_error(cli("task", "status", "nosuch")) == "error: There is no task nosuch."
    assert one_line_error(cli("task", "status", "nosuch", "--json")) == "error: There is no task nosuch."


def test_status_with_no_tasks_at_all(cli):
    assert one_line_error(cli("task", "status")) == "error: There are no tasks yet."


def test_status_of_a_malformed_id_is_one_line(cli):
    line = one_line_error(cli("task", "status", "not an id"))
    assert "There is no task" in line


def test_empty_goal_is_refused_in_one_line(cli, redis_client):
    line = one_line_error(cli("task", "start", "--goal", "   ", "--json"))
    assert line == "error: The goal is empty: say what the task should build or fix."
    assert redis_client.llen("rq:queue:tars_programming") == 0


def test_project_outside_the_projects_root_is_refused_in_one_line(cli, projects):
    line = one_line_error(cli("task", "start", "--goal", "Escape", "--project", "../outside"))
    assert "outside the projects folder" in line
    assert not (projects.parent / "outside").exists()


def test_unreachable_redis_is_one_line_naming_the_fix(cli):
    port = free_port()  # nothing listens here
    run = cli("task", "list", REDIS_URL=f"redis://127.0.0.1:{port}/0", timeout=30)
    line = one_line_error(run)
    assert f"redis://127.0.0.1:{port}/0" in line
    assert "Redis is not reachable" in line
    assert "REDIS_URL" in line and "python main_tars.py" in line


def test_a_bad_setting_is_one_line_naming_it(cli):
    line = one_line_error(cli("task", "list", MAX_TASK_ITERATIONS="abc"))
    assert line.startswith("error: MAX_TASK_ITERATIONS='abc' is invalid")
    assert ".env" in line


def test_a_task_run_to_the_end_shows_its_result(cli, fake_api, start_worker, projects):
    fake_api.script([
        edit(command="create", path="greet.py", file_text='print("hi")\n'),
        text("Wrote greet.py."),
    ])
    task_id = start(cli, "Create greet.py", "--project", "greet")
    worker = start_worker("--burst")
    assert worker.wait(90) == 0, worker.log

    status = ok_json(cli("task", "status", task_id, "--json"))
    assert status["status"] == "complete", status
    assert status["phase"] == "complete"
    assert status["reason"] and status["progress"].startswith("Complete")
    assert status["started_at"] and status["ended_at"]
    result = status["result"]
    assert RESULT_FIELDS <= set(result)
    assert result["outcome"] == "complete"
    assert result["summary"] == "Wrote greet.py."
    assert result["iterations"] == 2
    assert result["files_changed"] == ["greet.py"]
    assert result["tests_passed"] is None
    assert result["usage"]["output_tokens"] > 0
    assert result["cost_usd"] > 0
    assert result["duration_seconds"] > 0
    assert (projects / "greet" / "greet.py").read_text() == 'print("hi")\n'

    words = cli("task", "status", task_id)
    assert words.returncode == 0, words.stderr
    assert f"Task {task_id}: complete" in words.stdout
    assert "summary:  Wrote greet.py." in words.stdout
    assert "  result:   2 iterations, no tests found, $" in words.stdout  # was "tests passed: None"
    assert "  files:    1 file changed in place: greet.py\n" in words.stdout  # was "1 files changed"
    assert re.search(r"  time:     \d+\.\d s on the worker\n", words.stdout), words.stdout


def test_status_in_words_mentions_status_and_goal(cli, projects):
    task_id = start(cli, "Add a --version flag", "--project", "cli-tool")
    run = cli("task", "status", task_id)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == f"Task {task_id}: queued (phase queued)"
    assert "goal:     Add a --version flag" in run.stdout
    assert f"project:  {projects / 'cli-tool'}" in run.stdout
    assert "progress: Waiting for a worker" in run.stdout


PYTEST_CONFIG_FILES = ("pyproject.toml", "pytest.ini", "setup.cfg", "tox.ini")


def test_a_task_checkout_lies_outside_tars_so_its_tests_see_only_the_projects_configuration(
        cli, fake_api, start_worker, projects, private_git, monkeypatch, tmp_path):
    """DATA_DIR left at its default (the per-user data folder under this test's HOME): the task's worktree is not
    inside TARS's repository, so `python -m pytest` there does not read TARS's pyproject.toml (-n 3,
    --strict-markers, timeout 180): rootdir is the checkout and there is no configfile, as in the project itself."""
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)  # HOME decides: ~/.local/share/tars on Linux
    project = projects / "plain"
    project.mkdir()
    (project / "test_app.py").write_text("def test_ok():\n    assert True\n")
    for command in (["init", "-q"], ["add", "."], ["-c", "user.name=Owner", "-c", "user.email=owner@example.com",
                                                     "commit", "-q", "-m", "start"]):
        subprocess.run(["git", *command], cwd=project, check=True, capture_output=True)
    fake_api.script([bash("python -m pytest -v -p no:cacheprovider"), text("The tests pass.")])
    task_id = start(cli, "Run the tests", "--project", "plain")
    worker = start_worker("--burst", DATA_DIR="")  # unset: the default
    assert worker.wait(120) == 0, worker.log

    status = ok_json(cli("task", "status", task_id, "--json"))
    checkout = Path(status["result"]["git"]["path"])
    # ~/.local/share/tars on Linux (~/Library/Application Support/tars on macOS), under this test's HOME
    assert default_data_dir().is_relative_to(Path.home())
    assert checkout == default_data_dir() / "git" / "worktrees" / task_id, worker.log
    assert not checkout.is_relative_to(ROOT)
    top = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--show-toplevel"], capture_output=True,
                         text=True, check=True).stdout.strip()
    assert Path(top) == checkout  # the task's own worktree, not TARS's repository
    found = [str(folder / name) for folder in checkout.parents for name in PYTEST_CONFIG_FILES
             if (folder / name).exists()]
    assert found == [], f"pytest would read these from the task's checkout: {found}"

    ran = next(r.last_user_text for r in fake_api.requests if "test session starts" in r.last_user_text
               or "No module named pytest" in r.last_user_text)
    if "No module named pytest" not in ran:  # the task's environment has pytest: what it printed
        assert f"rootdir: {checkout}" in ran, ran
        assert "configfile:" not in ran and "pyproject.toml" not in ran, ran
        assert "created: 3/3 workers" not in ran and "timeout: 180" not in ran, ran
        assert status["status"] == "complete" and status["result"]["tests_passed"] is True, status


def test_the_result_explains_files_and_time_the_same_way_as_the_branch(cli, fake_api, start_worker, projects, tasks):
    """The model touched two files; one ended as it began, so the branch changes one: both lines say 1 file. The
    task waited about 2 s for its code: the time line splits working from waiting."""
    (projects / "tidy").mkdir()
    (projects / "tidy" / "notes.txt").write_text("draft\n")
    (projects / "tidy" / "old.txt").write_text("stale\n")
    fake_api.script([edit(command="str_replace", path="notes.txt", old_str="draft", new_str="final"),
                     bash("rm old.txt"),
                     edit(command="str_replace", path="notes.txt", old_str="final", new_str="draft"),
                     text("Tidied.")])
    task_id = start(cli, "Tidy up", "--project", "tidy")
    worker = start_worker("--burst")
    wait_until(lambda: tasks.status(task_id).status == "awaiting_confirmation", 60, "the code request")
    time.sleep(2)
    assert cli("task", "confirm", task_id, TEST_CODE).returncode == 0
    assert worker.wait(90) == 0, worker.log

    status = ok_json(cli("task", "status", task_id, "--json"))
    assert status["result"]["files_changed"] == ["notes.txt", "old.txt"]  # the record keeps what was touched
    words = cli("task", "status", task_id).stdout
    assert "  files:    1 file changed in place: old.txt; touched but ended as it began: notes.txt\n" in words, words
    assert "  changes:  Changed in place: 3 commits, 1 file changed (+0 -1)" in words, words
    waited = re.search(r"  time:     ([\d.]+) s on the worker: ([\d.]+) s working, ([\d.]+) s waiting for your "
                       r"confirmation code\n", words)
    assert waited, words
    total, working, waiting = map(float, waited.groups())
    assert 2 <= waiting <= total and abs(total - working - waiting) <= 0.11, words


def test_check_command_reads_the_owners_rules_file_of_the_settings(cli, settings, tmp_path):
    """check-command's --rules defaults to COMMAND_RULES_FILE (DATA_DIR/commands.json), as the worker's gate."""
    settings.COMMAND_RULES_FILE.parent.mkdir(parents=True, exist_ok=True)
    settings.COMMAND_RULES_FILE.write_text(json.dumps({"permissions": {"allow": ["Bash(flyway info:*)"],
                                                                       "ask": ["Bash(ls:*)"]}}))
    ran = cli("check-command", "--project", str(tmp_path), "flyway info -x")
    assert ran.returncode == 0 and ran.stdout.startswith("run (owner:allow Bash(flyway info:*)): "), ran
    asked = cli("check-command", "--project", str(tmp_path), "ls")
    assert asked.returncode == 1 and asked.stdout.startswith("ask (owner:ask Bash(ls:*))"), asked
    other = tmp_path / "none.json"
    assert cli("check-command", "--project", str(tmp_path), "--rules", str(other), "ls").returncode == 0
    settings.COMMAND_RULES_FILE.write_text("{")
    broken = cli("check-command", "--project", str(tmp_path), "ls")
    assert broken.returncode == 2 and "not valid JSON" in broken.stderr, broken
    bad = cli("check-command", "ls", COMMAND_RULES_FILE=str(settings.PROJECTS_ROOT / "rules.json"))
    assert bad.returncode == 2 and "COMMAND_RULES_FILE" in bad.stderr and "Traceback" not in bad.stderr, bad


def test_check_command_says_run_or_ask_with_the_rule(capsys, tmp_path):
    import main_tars

    check = ["check-command", "--project", str(tmp_path)]
    assert main_tars.main(check + ["ls -la"]) == 0
    assert capsys.readouterr().out == "run (allow:read): reads or searches\n"
    assert main_tars.main(check + ["--json", "rm x"]) == 1
    assert json.loads(capsys.readouterr().out) == {"command": "rm x", "decision": "ask", "reason": "`rm` deletes files",
                                                  "rule": "ask:rm"}
    assert main_tars.main(check + ["--json", "git push -f"]) == 1
    assert json.loads(capsys.readouterr().out)["rule"] == "ask:git-push-force"
    assert main_tars.main(check + ["--no-sandbox", "python app.py"]) == 1
    broken = tmp_path / "commands.json"
    broken.write_text("{")
    assert main_tars.main(check + ["--rules", str(broken), "ls"]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_check_command_checks_a_list_of_commands_in_one_process(capsys, monkeypatch, tmp_path):
    import io

    import main_tars

    lines = [json.dumps("git status"), json.dumps("rm -rf x\nls"), "", "not json", json.dumps(["ls"])]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main_tars.main(["check-command", "--project", str(tmp_path)]) == 2
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o.get("decision") for o in out] == ["run", "ask", None, None]
    assert out[1] == {"command": "rm -rf x\nls", "decision": "ask", "reason": "`rm` deletes files", "rule": "ask:rm"}
    assert out[2]["line"] == 4 and "JSON string" in out[2]["error"]


# --- the workers: their state, pause and resume (core/pause.py, core/pool.py) ------------------------------------
def test_workers_pause_and_resume_say_what_they_did_and_the_state_shows_it(cli, start_worker, redis_client):
    calm = cli("workers")
    assert calm.returncode == 0, calm.stderr
    assert calm.stdout.splitlines() == ["Workers: working (pause them with: python main_tars.py workers pause)",
                                        "  No worker is running: start one with python start_worker.py (or run "
                                        "python main_tars.py up).", "Queue: 0 tasks waiting"]

    paused = cli("workers", "pause")
    assert paused.stdout.strip() == ("Workers paused: no new task starts, and running tasks wait at their next "
                                     "step. Resume with: python main_tars.py workers resume")
    assert cli("workers", "pause").stdout.strip() == "The workers were already paused."
    assert redis_client.exists("tars:workers:paused")
    start(cli, "Wait for the workers")
    worker = start_worker()
    view = wait_until(lambda: (v := ok_json(cli("workers", "status", "--json")))["workers"] and v, 60,
                      "the worker registered")
    assert view["paused"] is True and view["queue_length"] == 1
    (shown,) = view["workers"]
    assert shown["state"] == "paused" and shown["current_task"] is None and shown["pid"] == worker.process.pid
    lines = cli("workers").stdout.splitlines()
    assert lines[0].startswith("Workers paused since ") and lines[0].endswith(
        ": no task starts, and running tasks wait at their next step. Resume with: python main_tars.py workers "
        "resume"), lines
    assert re.fullmatch(rf"  {re.escape(shown['name'])} +paused", lines[1]), lines
    assert lines[2] == "Queue: 1 task waiting"

    assert ok_json(cli("workers", "resume", "--json")) == {
        "paused": False, "changed": True, "detail": "Workers resumed: queued tasks start and paused ones go on."}
    assert cli("workers", "resume").stdout.strip() == "The workers were not paused."


def test_task_pause_is_refused_in_one_line_before_the_task_runs_and_resume_of_one_not_paused(cli):
    task_id = start(cli, "Not started yet")
    line = one_line_error(cli("task", "pause", task_id))
    assert line == (f"error: Task {task_id} has not started yet, so it cannot be paused on its own: cancel it, or "
                    f"pause every worker (python main_tars.py workers pause) to keep it from starting.")
    assert one_line_error(cli("task", "resume", task_id)) == f"error: Task {task_id} is not paused."
    assert one_line_error(cli("task", "pause", "abc999")) == "error: There is no task abc999."


# --- models: which models serve each role, and do they answer ----------------------------------------------------

def test_models_lists_each_role_in_order_with_window_and_price(cli):
    done = cli("models", CODING_MODELS="anthropic:claude-sonnet-5-5,ollama:qwen3-coder:30b",
               VOICE_MODELS="openrouter:qwen/qwen3-coder", MODEL_CONTEXT_WINDOWS="ollama:qwen3-coder:30b=65536")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "coding (CODING_MODELS):"
    assert re.fullmatch(r"  1\. anthropic:claude-sonnet-5-5 +200,000 tokens  \$3 in / \$15 out per Mtok", lines[1])
    assert re.fullmatch(r"  2\. ollama:qwen3-coder:30b +65,536 tokens  free \(local\)", lines[2])
    assert lines[3] == "planner (PLANNER_MODELS not set: as CODING_MODELS):"
    assert "openrouter:qwen/qwen3-coder" in done.stdout and "price unknown, OPENROUTER_API_KEY not set" in done.stdout


def test_models_check_asks_each_model_once_and_names_the_fix_for_those_that_do_not_answer(cli, fake_api, fake_openai):
    fake_api.script([text("OK")])
    fake_openai.models = ["gpt-5.1"]
    fake_openai.script([oai.text("OK")])
    done = cli("models", "--check", "--json",
               CODING_MODELS="anthropic:claude-sonnet-5-5,openai:gpt-5.1,openai:gpt-9,ollama:qwen3-coder:30b",
               OPENAI_BASE_URL=fake_openai.base_url, OPENAI_API_KEY="sk-test-openai", OPENAI_MAX_RETRIES="0",
               OLLAMA_BASE_URL=f"http://127.0.0.1:{free_port()}/v1")
    assert done.returncode == 1, done.stdout + done.stderr  # some do not answer
    rows = {(r["role"], r["model"]): r for r in json.loads(done.stdout)}
    assert rows["coding", "anthropic:claude-sonnet-5-5"]["answers"] is True
    assert rows["coding", "openai:gpt-5.1"]["answers"] is True
    assert rows["coding", "openai:gpt-9"]["reason"].startswith("The model 'gpt-9' was not found at OpenAI (404")
    assert "start the Ollama server, or fix OLLAMA_BASE_URL" in rows["coding", "ollama:qwen3-coder:30b"]["reason"]
    assert rows["planner", "openai:gpt-5.1"]["answers"] is True  # the planner's list is the same models
    assert len(fake_openai.requests) == 2  # each model asked once, whatever roles it serves
    assert fake_openai.requests[0].body["max_completion_tokens"] == 16  # a cheap request


def test_models_with_a_bad_list_says_which_variable_to_fix(cli):
    done = cli("models", CODING_MODELS="gpt-5.1")
    assert done.returncode == 1
    assert "CODING_MODELS entry 'gpt-5.1' must be provider:model" in done.stderr
