"""Workers with capabilities: `python start_worker.py --capabilities frontend` also serves the frontend queue; a plan's
subtask that needs a capability waits there (and says so) until such a worker is live, while the rest of the plan runs
on any worker. Real worker processes, real git, the scripted model."""

from __future__ import annotations

import os
import signal

import pytest

from rq.job import Job

from core import capabilities, event_log, keys
from core.exceptions import InvalidCapabilities, InvalidPriority
from tests.core.test_plan_jobs import ended, planned, rows, script_plan
from tests.fakes.anthropic_api import bash, edit, text
from tests.test_start_worker import worker_name
from tests.test_task_branches import git, owner_repo
from tests.waiting import wait_until

pytestmark = pytest.mark.usefixtures("private_git")


@pytest.fixture
def tars_env(tars_env, monkeypatch):
    monkeypatch.setenv("PLAN_GOALS", "ask")
    return {**tars_env, "PLAN_GOALS": "ask"}


def test_capabilities_are_short_lowercase_names_and_the_planners_spelling_is_normalized():
    assert capabilities.parse("python, Frontend,python") == ["python", "frontend"]
    assert capabilities.normalize("Front_End") == "front-end"
    assert capabilities.queue_name("Front_End") == "tars_programming:front-end"
    assert capabilities.queue_name(None) == "tars_programming"
    assert keys.rq_capability_queue("frontend") == "rq:queue:tars_programming:frontend"
    for bad in ("py thon", "front/end", ",", "x" * 40):
        with pytest.raises(InvalidCapabilities, match="--capabilities python,frontend"):
            capabilities.parse(bad)


def test_a_frontend_subtask_waits_for_a_frontend_worker_while_the_rest_of_the_plan_runs(tasks, fake_api, start_worker,
                                                                                      projects, cli):
    repo = owner_repo(projects / "shop", {"README.md": "# shop\n"})
    script_plan(fake_api, ("store", "Store", "Write store.py", []),
                ("ui", "Web page", "Write index.html", [], "Frontend"))
    fake_api.script([edit(command="create", path="store.py", file_text="ITEMS = []\n"), text("Wrote store.py.")],
                    match="Goal: Write store.py", name="store")
    fake_api.script([edit(command="create", path="index.html", file_text="<h1>shop</h1>\n"), text("Wrote it.")],
                    match="Goal: Write index.html", name="ui")
    parent = tasks.start("Build a shop", "shop", plan=True)
    plain = start_worker()

    planned(tasks, parent)
    # The plain worker runs store; ui waits on the frontend queue, and its status says for what.
    wait_until(lambda: rows(tasks, parent)["store"]["state"] == "done", 180, "store merged")
    ui = rows(tasks, parent)["ui"]
    assert ui["state"] == "queued" and ui["note"] == "waiting for a worker with frontend"
    assert tasks.status(ui["task_id"]).progress == "Waiting for a worker with frontend"
    assert tasks.status(parent).progress == "1 of 2 subtasks done, 1 waiting for a worker"
    shown = cli("task", "status", ui["task_id"])
    assert "Waiting for a worker with frontend" in shown.stdout, shown.stdout
    assert tasks.redis.llen(keys.rq_capability_queue("frontend")) == 1

    frontend = start_worker("--capabilities", "frontend")
    done = ended(tasks, parent)
    assert done.status == "complete", (done.reason, plain.log[-3000:], frontend.log[-3000:])
    assert ("Queues:       tars_programming:frontend:high, tars_programming:high, tars_programming:frontend, "
            "tars_programming, tars_programming:frontend:low, tars_programming:low") in frontend.log
    assert tasks.status(ui["task_id"]).status == "complete"
    assert runner(tasks, ui["task_id"]) == worker_name(frontend.log)
    assert runner(tasks, rows(tasks, parent)["store"]["task_id"]) == worker_name(plain.log)
    assert git(repo, "ls-tree", "--name-only", f"tars/{parent}").split() == ["README.md", "index.html", "store.py"]


def test_a_dead_capability_workers_subtask_is_reaped_by_a_plain_worker(tasks, fake_api, start_worker, projects):
    owner_repo(projects / "site", {"README.md": "# site\n"})
    script_plan(fake_api, ("ui", "Web page", "Write index.html", [], "frontend"))
    fake_api.script([bash("sleep 60"), text("Wrote it.")], match="Goal: Write index.html", name="ui")
    parent = tasks.start("Build a site", "site", plan=True)
    survivor = start_worker()
    doomed = start_worker("--capabilities", "python,frontend")
    ui = planned(tasks, parent)["ui"]["task_id"]
    wait_until(lambda: tasks.status(ui).progress.startswith("Running: sleep 60"), 120, "ui running")
    worker = runner(tasks, ui)
    assert tasks.redis.hget(keys.worker_alive(worker), "capabilities") == b"python,frontend"
    horse = Job.fetch(ui, connection=tasks.redis).get_meta(refresh=True)["horse_pid"]
    # The worker and its work-horse die together: nobody records the end but the reaper.
    os.kill(doomed.process.pid, signal.SIGKILL)
    os.killpg(int(horse), signal.SIGKILL)
    # The reaper runs in the plain worker, which serves no frontend queue: it reads that queue's running jobs too.
    failed = wait_until(lambda: (s := tasks.status(ui)).status == "failed" and s, 90, "the reaper to fail ui")
    assert failed.reason.startswith(f"The worker running this task ({worker}) died.")
    # the reaper writes the ending first and moves RQ's job out of its started registry a moment later
    wait_until(lambda: tasks.settled(ui), 30, "RQ to record ui's end")
    assert "frontend" not in capabilities.served(tasks.redis)
    survivor.stop()


def runner(tasks, task_id) -> str:
    """The name of the worker that ran the task (its work-horse records it)."""
    return Job.fetch(task_id, connection=tasks.redis).get_meta(refresh=True)["worker"]


# --- priorities: each queue in three, taken high first ------------------------------------------------------------

def test_each_priority_has_its_queue_and_the_normal_one_keeps_its_name():
    assert [capabilities.queue_name(None, level) for level in ("high", "normal", "low")] == [
        "tars_programming:high", "tars_programming", "tars_programming:low"]
    assert capabilities.queue_name("Front_End", "high") == "tars_programming:front-end:high"
    assert capabilities.worker_queue_names([]) == ["tars_programming:high", "tars_programming", "tars_programming:low"]
    assert capabilities.worker_queue_names(["python"]) == [
        "tars_programming:python:high", "tars_programming:high", "tars_programming:python", "tars_programming",
        "tars_programming:python:low", "tars_programming:low"]
    assert keys.rq_queue(capabilities.queue_name(None, "high")) == "rq:queue:tars_programming:high"
    assert capabilities.parse_priority(None) == "normal" and capabilities.parse_priority(" HIGH ") == "high"
    for bad in ("urgent", "", 1, ["high"]):
        with pytest.raises(InvalidPriority, match="is not one of high, normal, low."):
            capabilities.parse_priority(bad)


def test_a_capability_cannot_take_a_prioritys_name():
    for names in ("high", "python,low", "High"):
        with pytest.raises(InvalidCapabilities, match=r"high, low are task priorities, whose queues "
                                                      r"\(tars_programming:high, tars_programming:low\) every worker "
                                                      r"serves already"):
            capabilities.parse(names)


def test_every_tars_queue_is_listed_once_its_priorities_included(tasks, projects):
    tasks.start("Urgent", priority="high")
    names = [queue.name for queue in capabilities.tars_queues(tasks.redis)]
    assert names == ["tars_programming", "tars_programming:high", "tars_programming:low"]
    assert sum(queue.count for queue in capabilities.tars_queues(tasks.redis)) == 1
    assert tasks.redis.llen(keys.RQ_QUEUE) == 0  # LLEN rq:queue:tars_programming counts normal tasks only


def test_an_urgent_tasks_retry_is_urgent_too(tasks, projects):
    urgent = tasks.start("Fix the login page", priority="high")
    assert tasks.cancel(urgent).status == "cancelled"
    again = tasks.retry(urgent)
    assert tasks.status(again).priority == "high"
    assert tasks.redis.lrange("rq:queue:tars_programming:high", 0, -1) == [again.encode()]


def start_order(tasks, ids) -> list[str]:
    """The tasks in the order their work-horses started them (their timelines' started events)."""
    started = {task_id: next(e.at for e in event_log.read(tasks.redis, task_id) if e.type == "started")
               for task_id in ids}
    return sorted(ids, key=started.get)


def test_a_high_task_queued_after_two_normal_ones_runs_first_and_a_low_one_after_them(tasks, fake_api, start_worker,
                                                                                   projects, tmp_path):
    # One worker, held at a gate by a first task while the four others queue up behind it.
    gate = tmp_path / "let-the-queue-move"
    fake_api.script([bash(f"until test -e {gate}; do sleep 0.05; done"), text("Held the worker.")], match="Hold")
    fake_api.script([text("Done.")])
    worker = start_worker()
    holder = tasks.start("Hold the only worker")
    wait_until(lambda: tasks.status(holder).progress.startswith("Running: until test -e"), 120, "the gate")
    low = tasks.start("Whenever you have time", priority="low")
    first, second = tasks.start("Normal one"), tasks.start("Normal two")
    urgent = tasks.start("It's urgent", priority="high")
    assert [tasks.redis.llen(keys.rq_queue(capabilities.queue_name(None, level))) for level in
            ("high", "normal", "low")] == [1, 2, 1]
    assert [s.priority for s in tasks.list(limit=4)] == ["high", "normal", "normal", "low"]
    gate.touch()

    queued = [low, first, second, urgent]
    for task_id in queued:
        assert ended(tasks, task_id).status == "complete", worker.log[-3000:]
    assert start_order(tasks, queued) == [urgent, first, second, low]


def test_a_planned_tasks_subtasks_and_its_last_step_keep_its_priority(tasks, fake_api, start_worker, projects):
    owner_repo(projects / "shop", {"README.md": "# shop\n"})
    script_plan(fake_api, ("store", "Store", "Write store.py", []), ("ui", "Web page", "Write index.html", [],
                                                                       "frontend"))
    fake_api.script([edit(command="create", path="store.py", file_text="ITEMS = []\n"), text("Wrote store.py.")],
                    match="Goal: Write store.py")
    fake_api.script([edit(command="create", path="index.html", file_text="<h1>shop</h1>\n"), text("Wrote it.")],
                    match="Goal: Write index.html")
    parent = tasks.start("Build a shop", "shop", plan=True, priority="high")
    start_worker("--capabilities", "frontend")
    subtasks = planned(tasks, parent)
    assert ended(tasks, parent).status == "complete"
    for key, queue in (("store", "tars_programming:high"), ("ui", "tars_programming:frontend:high")):
        task_id = subtasks[key]["task_id"]
        assert tasks.status(task_id).priority == "high"
        assert Job.fetch(task_id, connection=tasks.redis).origin == queue
    finisher = tasks.plan_record(parent)["finisher"]
    assert Job.fetch(finisher, connection=tasks.redis).origin == "tars_programming:high"


def test_a_plans_approval_job_waits_at_the_plans_priority(tasks, projects):
    """PLAN_APPROVAL=on: the job the owner's code enqueues, which the root subtasks wait on."""
    parent = tasks.start("Build a shop", plan=True, priority="high")
    gate = Job.fetch(tasks.create_approval_gate(parent), connection=tasks.redis)
    assert gate.origin == "tars_programming:high"
