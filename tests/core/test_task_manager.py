"""The TaskManager as any caller (CLI, voice server) uses it: in this process, on the suite's real Redis."""

from __future__ import annotations

import re

import pytest
from rq.job import Job, JobStatus

from core.config import load_settings
from core.defaults import GOAL_MAX_CHARS
from core.exceptions import InvalidGoal, InvalidProjectPath, TaskNotActive, TaskNotFound
from core.task_manager import TaskManager, derive_status
from tests.fakes.anthropic_api import text

META_KEYS = {"progress", "phase", "awaiting_confirmation", "confirmation_command", "goal", "session_id",
             "project_path", "verbose_updates", "retry_of", "plan", "parent", "plan_key", "priority", "scheduled_for",
             "source", "call_when_done"}


def queue_length(redis_client) -> int:
    return redis_client.llen("rq:queue:tars_programming")


# --- starting a task -----------------------------------------------------------------------------

def test_start_returns_a_short_hex_id_that_is_the_rq_job_id(tasks, redis_client):
    task_id = tasks.start("Create hello.py that prints a greeting")

    assert re.fullmatch(r"[0-9a-f]{6,}", task_id), task_id
    job = Job.fetch(task_id, connection=redis_client)
    assert job.id == task_id
    assert job.get_status() == JobStatus.QUEUED
    assert tasks.status(task_id).status == "queued"


def test_job_meta_holds_exactly_the_documented_keys(tasks, redis_client, projects):
    task_id = tasks.start("Write a README", project_path="docs", verbose_updates=True, call_sid="call-7")

    meta = Job.fetch(task_id, connection=redis_client).meta
    assert set(meta) == META_KEYS
    assert meta == {"progress": "Waiting for a worker", "phase": "queued", "awaiting_confirmation": False,
                    "confirmation_command": None, "goal": "Write a README", "session_id": "call-7",
                    "project_path": str(projects / "docs"), "verbose_updates": True, "retry_of": None,
                    "plan": False, "parent": None, "plan_key": None, "priority": "normal", "scheduled_for": None,
                    "source": None, "call_when_done": False}


def test_the_queue_users_inspect_with_redis_cli_grows_by_one(tasks, redis_client):
    assert queue_length(redis_client) == 0
    task_id = tasks.start("Fix the failing test")
    assert queue_length(redis_client) == 1
    assert redis_client.lrange("rq:queue:tars_programming", 0, -1) == [task_id.encode()]


def test_job_timeout_covers_runtime_plus_the_confirmation_wait(redis_client, tars_env):
    settings = load_settings(MAX_TASK_RUNTIME_MINUTES=10, CONFIRMATION_TIMEOUT_SECONDS=450)
    task_id = TaskManager(redis_client, settings).start("A long task")

    timeout = Job.fetch(task_id, connection=redis_client).timeout
    assert timeout >= 10 * 60 + 450


def test_goal_is_trimmed(tasks):
    task_id = tasks.start("   Add a --version flag \n\t")
    assert tasks.status(task_id).goal == "Add a --version flag"


@pytest.mark.parametrize("goal", ["", "   ", "\n\t ", None])
def test_empty_goal_is_refused_and_nothing_is_queued(tasks, redis_client, goal):
    with pytest.raises(InvalidGoal, match="The goal is empty"):
        tasks.start(goal)
    assert queue_length(redis_client) == 0
    assert tasks.latest_id() is None


def test_goal_of_2000_characters_is_accepted_and_2001_refused(tasks, redis_client):
    assert GOAL_MAX_CHARS == 2000
    task_id = tasks.start("x" * 2000)
    assert tasks.status(task_id).goal == "x" * 2000

    with pytest.raises(InvalidGoal) as refused:
        tasks.start("y" * 2001)
    assert "2001 characters" in str(refused.value)
    assert queue_length(redis_client) == 1  # only the first


def test_length_limit_applies_after_trimming(tasks):
    task_id = tasks.start("  " + "z" * 2000 + "  ")
    assert len(tasks.status(task_id).goal) == 2000


# --- the project folder ----------------------------------------------------------------------------

@pytest.mark.parametrize("outside", ["absolute", "../x", "a/../../x"])
def test_project_outside_the_projects_root_is_refused(tasks, projects, redis_client, outside):
    path = str(projects.parent / "elsewhere") if outside == "absolute" else outside
    with pytest.raises(InvalidProjectPath) as refused:
        tasks.start("Escape", project_path=path)
    assert "outside the projects folder" in str(refused.value)
    assert str(projects) in str(refused.value)
    assert not (projects.parent / "elsewhere").exists()
    assert not (projects.parent / "x").exists()
    assert queue_length(redis_client) == 0


def test_symlink_out_of_the_projects_root_is_refused(tasks, projects, tmp_path):
    (tmp_path / "outside").mkdir()
    (projects / "sneaky").symlink_to(tmp_path / "outside")
    with pytest.raises(InvalidProjectPath):
        tasks.start("Escape through a link", project_path="sneaky")


def test_relative_project_name_is_created_under_the_projects_root(tasks, projects):
    assert not (projects / "new-app").exists()
    task_id = tasks.start("Start a new app", project_path="new-app")
    assert (projects / "new-app").is_dir()
    assert tasks.status(task_id).project_path == str(projects / "new-app")


def test_absolute_project_inside_the_root_is_accepted(tasks, projects):
    task_id = tasks.start("Work here", project_path=str(projects / "nested" / "deep"))
    assert (projects / "nested" / "deep").is_dir()
    assert tasks.status(task_id).project_path == str(projects / "nested" / "deep")


@pytest.mark.parametrize("project", [None, "", "   "])
def test_no_project_means_the_default_project(tasks, settings, project):
    task_id = tasks.start("Scratch work", project_path=project)
    assert tasks.status(task_id).project_path == str(settings.DEFAULT_PROJECT_PATH)
    assert settings.DEFAULT_PROJECT_PATH == settings.PROJECTS_ROOT / "scratch"
    assert settings.DEFAULT_PROJECT_PATH.is_dir()


def test_project_path_that_is_a_file_is_refused(tasks, projects, redis_client):
    (projects / "notes.txt").write_text("not a folder")
    with pytest.raises(InvalidProjectPath, match="is a file, not a folder"):
        tasks.start("Use a file as project", project_path="notes.txt")
    assert queue_length(redis_client) == 0


# --- status and list ---------------------------------------------------------------------------------

def test_unknown_id_is_task_not_found_naming_the_id(tasks):
    tasks.start("Something real")
    with pytest.raises(TaskNotFound) as missing:
        tasks.status("abc123")
    assert str(missing.value) == "There is no task abc123."


def test_status_without_tasks_says_there_are_none(tasks):
    with pytest.raises(TaskNotFound, match="There are no tasks yet."):
        tasks.status()


def test_id_is_found_whatever_way_it_was_said(tasks):
    task_id = tasks.start("Say my id")
    for spoken in (task_id.upper(), f"#{task_id}", f"  {task_id} "):
        assert tasks.status(spoken).task_id == task_id


@pytest.mark.parametrize("said", ["abc 123", "../etc", "a/b"])
def test_malformed_id_is_task_not_found(tasks, said):
    tasks.start("Something real")
    with pytest.raises(TaskNotFound):
        tasks.status(said)


def test_status_without_an_id_is_the_latest_task(tasks):
    tasks.start("First")
    tasks.start("Second")
    newest = tasks.start("Third")
    status = tasks.status()
    assert status.task_id == newest
    assert status.goal == "Third"
    assert tasks.latest_id() == newest


def test_a_fresh_task_reads_as_queued_with_nothing_to_report(tasks, projects):
    task_id = tasks.start("Fresh", project_path="fresh")
    status = tasks.status(task_id)
    assert status.status == "queued" and status.active
    assert status.phase == "queued"
    assert status.progress == "Waiting for a worker"
    assert status.awaiting_confirmation is False and status.confirmation_command is None
    assert status.reason is None and status.result is None
    assert status.created_at is not None and status.started_at is None and status.ended_at is None


def test_list_is_newest_first(tasks):
    ids = [tasks.start(f"Task {n}") for n in range(5)]
    listed = tasks.list()
    assert [s.task_id for s in listed] == list(reversed(ids))
    assert [s.goal for s in listed] == [f"Task {n}" for n in reversed(range(5))]
    assert [s.task_id for s in tasks.list(limit=2)] == [ids[4], ids[3]]


def test_list_with_no_tasks_is_empty(tasks):
    assert tasks.list() == []


def test_list_with_limit_zero_is_empty(tasks):
    tasks.start("One")
    tasks.start("Two")
    assert tasks.list(limit=0) == []


def test_the_call_is_recorded_and_finds_that_calls_latest_task(tasks):
    first = tasks.start("Call one, first", call_sid="call-1")
    second = tasks.start("Call one, second", call_sid="call-1")
    other = tasks.start("Call two", call_sid="call-2")
    unattached = tasks.start("From the CLI")

    assert tasks.status(first).call_sid == "call-1"
    assert tasks.status(unattached).call_sid is None
    assert tasks.latest_id("call-1") == second
    assert tasks.latest_id("call-2") == other
    assert tasks.latest_id("call-3") is None
    assert tasks.latest_id() == unattached
    assert [s.task_id for s in tasks.list(call_sid="call-1")] == [second, first]


def test_ids_are_unique_over_many_starts(tasks, redis_client):
    ids = [tasks.start(f"Goal {n}") for n in range(300)]
    assert len(set(ids)) == 300
    assert all(re.fullmatch(r"[0-9a-f]{6,}", i) for i in ids)
    assert queue_length(redis_client) == 300
    assert len(tasks.list(limit=300)) == 300



def scripted_ids(monkeypatch, *ids):
    """Make the id generator draw these ids first (then random ones): collisions on demand."""
    import secrets

    queue = list(ids)
    real = secrets.token_hex
    monkeypatch.setattr("core.task_manager.secrets.token_hex", lambda n: queue.pop(0) if queue else real(n))


def test_a_drawn_id_that_is_taken_is_drawn_again(tasks, monkeypatch):
    scripted_ids(monkeypatch, "aaaaaa", "aaaaaa", "bbbbbb")
    first = tasks.start("First")
    second = tasks.start("Second")
    assert (first, second) == ("aaaaaa", "bbbbbb")
    assert tasks.status("aaaaaa").goal == "First"
    assert [s.task_id for s in tasks.list()] == ["bbbbbb", "aaaaaa"]


def test_an_old_task_does_not_come_back_when_its_id_is_drawn_again(tasks, monkeypatch):
    scripted_ids(monkeypatch, "aaaaaa")
    old = tasks.start("Old task")
    later = [tasks.start(f"Task {n}") for n in range(500)]  # pushes the old one out of the recent index
    assert old not in [s.task_id for s in tasks.list(limit=1000)]
    scripted_ids(monkeypatch, "aaaaaa", "bbbbbb")
    assert tasks.start("Newest") == "bbbbbb"
    assert tasks.status("aaaaaa").goal == "Old task"  # the old job is untouched
    assert [s.task_id for s in tasks.list(limit=2)] == ["bbbbbb", later[-1]]

# --- cancel -------------------------------------------------------------------------------------------

def test_cancelling_an_ended_task_is_refused_with_a_sentence(tasks, fake_api, start_worker):
    fake_api.script([text("Nothing to do, all done.")])
    task_id = tasks.start("Say you are done", project_path="done")
    worker = start_worker("--burst")
    assert worker.wait(60) == 0, worker.log
    assert tasks.status(task_id).status == "complete"

    with pytest.raises(TaskNotActive) as refused:
        tasks.cancel(task_id)
    message = str(refused.value)
    assert message == f"Task {task_id} has already ended (complete), so there is nothing to cancel."
    assert tasks.status(task_id).status == "complete"  # the refusal changed nothing


def test_cancelling_a_queued_task_twice(tasks, redis_client):
    task_id = tasks.start("Never mind")
    assert tasks.cancel(task_id).status == "cancelled"
    assert queue_length(redis_client) == 0
    with pytest.raises(TaskNotActive, match="already ended \\(cancelled\\)"):
        tasks.cancel(task_id)


def test_cancelling_an_unknown_task_is_task_not_found(tasks):
    with pytest.raises(TaskNotFound, match="There is no task feed00."):
        tasks.cancel("feed00")


# --- derive_status: RQ's job status x the worker's phase --------------------------------------------------

WAITING = [JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED, JobStatus.CREATED,
           JobStatus.READY_TO_ENQUEUE, JobStatus.RATE_LIMITED]
WORKING_PHASES = ["queued", "planning", "coding", "testing", "fixing"]
ENDED = {"complete": "complete", "error": "failed", "timeout": "timeout", "cancelled": "cancelled"}
ALL_PHASES = WORKING_PHASES + list(ENDED)


def test_every_rq_status_is_covered_by_the_table():
    assert set(WAITING) | {JobStatus.STARTED, JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED,
                           JobStatus.CANCELED} == set(JobStatus)


@pytest.mark.parametrize("phase", ALL_PHASES)
@pytest.mark.parametrize("rq_status", WAITING)
def test_a_job_waiting_in_rq_is_queued_whatever_the_phase(rq_status, phase):
    assert derive_status(rq_status, {"phase": phase}, None, False) == "queued"
    assert derive_status(rq_status, {"phase": phase}, None, True) == "queued"


@pytest.mark.parametrize("phase", WORKING_PHASES)
def test_a_started_job_in_a_working_phase_is_running(phase):
    assert derive_status(JobStatus.STARTED, {"phase": phase, "awaiting_confirmation": False}, None,
                         False) == "running"
    assert derive_status(JobStatus.STARTED, {"phase": phase, "awaiting_confirmation": True}, None,
                         False) == "awaiting_confirmation"


def test_a_started_job_without_meta_is_running():
    assert derive_status(JobStatus.STARTED, {}, None, False) == "running"


@pytest.mark.parametrize("phase,expected", ENDED.items())
def test_a_started_job_whose_loop_ended_shows_the_ending(phase, expected):
    # the worker wrote its last phase; RQ marks the job finished a moment later
    assert derive_status(JobStatus.STARTED, {"phase": phase}, None, False) == expected
    assert derive_status(JobStatus.STARTED, {"phase": phase, "awaiting_confirmation": True}, None,
                         False) == expected


@pytest.mark.parametrize("outcome", ["complete", "failed", "timeout", "cancelled"])
@pytest.mark.parametrize("phase", ALL_PHASES)
def test_a_finished_job_is_its_results_outcome(outcome, phase):
    assert derive_status(JobStatus.FINISHED, {"phase": phase}, {"outcome": outcome}, False) == outcome


@pytest.mark.parametrize("phase,expected", {**ENDED, **{p: "complete" for p in WORKING_PHASES}}.items())
def test_a_finished_job_without_an_outcome_falls_back_to_its_phase(phase, expected):
    assert derive_status(JobStatus.FINISHED, {"phase": phase}, None, False) == expected
    assert derive_status(JobStatus.FINISHED, {"phase": phase}, {}, False) == expected


def test_a_finished_job_with_nothing_recorded_is_complete():
    assert derive_status(JobStatus.FINISHED, {}, None, False) == "complete"


@pytest.mark.parametrize("phase", ALL_PHASES)
@pytest.mark.parametrize("cancel_requested", [False, True])
@pytest.mark.parametrize("rq_status", [JobStatus.CANCELED, JobStatus.STOPPED])
def test_canceled_or_stopped_jobs_are_cancelled(rq_status, cancel_requested, phase):
    assert derive_status(rq_status, {"phase": phase}, None, cancel_requested) == "cancelled"


@pytest.mark.parametrize("phase", ALL_PHASES)
def test_a_failed_job_is_failed_unless_someone_cancelled_it(phase):
    assert derive_status(JobStatus.FAILED, {"phase": phase}, None, False) == "failed"
    assert derive_status(JobStatus.FAILED, {"phase": phase}, None, True) == "cancelled"


def test_a_job_rq_no_longer_knows_is_failed():
    assert derive_status(None, {"phase": "coding"}, None, False) == "failed"
