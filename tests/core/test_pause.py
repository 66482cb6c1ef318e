"""The owner pauses the work and lets it go on (core/pause.py), with real worker processes and the scripted model:
nothing starts while every worker is paused, a running task stops at its next step without spending its runtime,
one task can be paused alone, and the pause outlives the workers."""

from __future__ import annotations

import time

import psutil
import pytest
from rq import Worker
from rq.job import Job

from core import event_log, keys, pause
from tests.fakes.anthropic_api import bash, edit, text
from tests.waiting import wait_until


def at_the_gate(gate) -> str:
    """A command that runs until the test creates the file `gate`."""
    return f"until test -e {gate}; do sleep 0.05; done"


def gated_script(gate, note: str) -> list:
    return [bash(at_the_gate(gate)), edit(command="create", path="note.txt", file_text=f"{note}\n"),
            text(f"Wrote the {note} note.")]


def running_its_gate(gate, timeout: float = 90) -> None:
    """Wait until the task's gate command really runs (its progress says so a moment before: the gate checks it
    first, and a pause asked in between holds it before the command)."""
    def running() -> bool:
        for process in psutil.process_iter(["cmdline"]):
            if str(gate) in " ".join(process.info["cmdline"] or []):
                return True
        return False

    wait_until(running, timeout, f"the command waiting for {gate.name}", interval=0.1)


def held(tasks, task_id: str, timeout: float = 60):
    """Wait until the task has stopped at its step boundary (its `paused` event recorded); that event."""
    return wait_until(lambda: next((e for e in tasks.events(task_id) if e.type == "paused"), None), timeout,
                      f"task {task_id} held at its next step")


def rq_state(redis_client) -> set[str]:
    """The RQ states of the registered workers ('suspended' while a TARS worker waits out a pause)."""
    return {str(getattr(w.get_state(), "value", w.get_state())) for w in Worker.all(connection=redis_client)}


def blocked_on_the_queue(redis_client) -> bool:
    """A worker waits for a job right now (RQ's BLMOVE on the queue, or BLPOP with several queues)."""
    return any(client.get("cmd") in ("blmove", "blpop") for client in redis_client.client_list())


@pytest.mark.worker_story
def test_a_task_queued_while_the_workers_are_paused_waits_and_starts_after_resume(
        tasks, fake_api, start_worker, redis_client, projects):
    fake_api.script([edit(command="create", path="note.txt", file_text="hi\n"), text("Wrote note.txt.")])
    worker = start_worker()
    # The worker is already waiting on the queue when the pause comes: the job it then takes goes back.
    wait_until(lambda: blocked_on_the_queue(redis_client), 60, "the worker waiting for a job")
    assert pause.pause_workers(redis_client) is True
    task_id = tasks.start("Write a note", project_path="notes")

    wait_until(lambda: rq_state(redis_client) == {"suspended"}, 30, "the worker idling, paused")
    assert "back to the front of tars_programming" in worker.log
    assert redis_client.lrange(keys.RQ_QUEUE, 0, -1) == [task_id.encode()]  # queued, not lost
    status = tasks.status(task_id)
    assert status.status == "queued" and status.progress == pause.QUEUED_NOTE
    assert fake_api.requests == []

    assert pause.resume_workers(redis_client) is True
    assert wait_until(lambda: tasks.status(task_id).status == "complete", 90, "the task complete after resume")
    assert (projects / "notes" / "note.txt").read_text() == "hi\n"


@pytest.mark.worker_story
def test_a_running_task_waits_at_its_next_step_without_spending_its_runtime(tasks, fake_api, start_worker, tmp_path,
                                                                           redis_client, projects):
    """MAX_TASK_RUNTIME_MINUTES is 20 s; the task is held for longer than that between its command and its next model
    call, makes no model request meanwhile, and still completes once resumed."""
    gate = tmp_path / "gate"
    fake_api.script(gated_script(gate, "paused"))
    task_id = tasks.start("Write the paused note", project_path="paused")
    worker = start_worker(MAX_TASK_RUNTIME_MINUTES=str(20 / 60))
    running_its_gate(gate)

    pause.pause_workers(redis_client)
    pausing = tasks.status(task_id)
    assert pausing.status == "paused" and pausing.paused_by == "workers"
    assert pausing.progress.startswith("Pausing after its current step (every worker is paused): Running: until")
    gate.touch()  # the step it is in finishes: its command ends, then it stops before the next model call
    stopped = held(tasks, task_id)
    assert len(fake_api.requests) == 1
    assert tasks.status(task_id).progress == ("Paused before its next step (every worker is paused); resume with: "
                                              "python main_tars.py workers resume")
    kinds = [e.type for e in tasks.events(task_id)]
    assert kinds.index("command_result") < kinds.index("paused")

    def long_past_the_runtime_limit() -> bool:
        assert len(fake_api.requests) == 1, "a model request while paused"
        assert tasks.status(task_id).status == "paused"
        return time.time() - stopped.at > 25

    wait_until(long_past_the_runtime_limit, 120, "a pause longer than the runtime limit", interval=0.5)
    pause.resume_workers(redis_client)
    wait_until(lambda: tasks.settled(task_id), 90, "the task to end after resume")
    status = tasks.status(task_id)
    assert status.status == "complete", (status.reason, worker.log)
    assert (projects / "paused" / "note.txt").read_text() == "paused\n"
    assert status.result["duration_seconds"] > 25  # its time on the worker, the pause included
    resumed = next(e for e in tasks.events(task_id) if e.type == "resumed")
    assert resumed.data["seconds"] > 25 and resumed.message.startswith("Resumed after ")
    meta = Job.fetch(task_id, connection=redis_client).get_meta()
    assert meta["paused"] is False and meta["paused_seconds"] > 25


@pytest.mark.worker_story
def test_pausing_one_task_leaves_the_other_running(tasks, fake_api, start_worker, tmp_path, cli, projects):
    alpha_gate, beta_gate = tmp_path / "alpha-gate", tmp_path / "beta-gate"
    fake_api.script(gated_script(alpha_gate, "alpha"), match="alpha", name="alpha")
    fake_api.script(gated_script(beta_gate, "beta"), match="beta", name="beta")
    alpha = tasks.start("Write the alpha note", project_path="alpha")
    beta = tasks.start("Write the beta note", project_path="beta")
    start_worker()
    start_worker()
    running_its_gate(alpha_gate)
    running_its_gate(beta_gate)

    paused = cli("task", "pause", alpha)
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.startswith(f"Task {alpha}: paused: Pausing after its current step (it is paused on its "
                                    f"own)"), paused.stdout
    alpha_gate.touch()
    beta_gate.touch()
    assert wait_until(lambda: tasks.status(beta).status == "complete", 90, "beta complete beside paused alpha")
    held(tasks, alpha)
    assert len(fake_api.requests_for("alpha")) == 1 and len(fake_api.requests_for("beta")) == 3
    listed = cli("task", "list").stdout
    assert any(line.startswith(f"{alpha}  paused") for line in listed.splitlines()), listed
    assert "with: python main_tars.py task resume " + alpha in tasks.status(alpha).progress

    resumed = cli("task", "resume", alpha)
    assert resumed.returncode == 0, resumed.stderr
    assert wait_until(lambda: tasks.status(alpha).status == "complete", 90, "alpha complete after resume")
    assert (projects / "alpha" / "note.txt").read_text() == "alpha\n"


@pytest.mark.worker_story
def test_a_paused_task_can_still_be_cancelled_at_once(tasks, fake_api, start_worker, tmp_path, redis_client):
    gate = tmp_path / "gate"
    fake_api.script(gated_script(gate, "never"))
    task_id = tasks.start("Write a note you will not need", project_path="cancelled")
    start_worker()
    running_its_gate(gate)
    tasks.pause(task_id)
    gate.touch()
    held(tasks, task_id)

    began = time.monotonic()
    status = tasks.cancel(task_id, wait=30)  # the kill backstop after 30 s: far from "at once" on a loaded machine
    assert time.monotonic() - began < 15  # the wait ended on the cancel, not on the backstop
    assert status.status == "cancelled", status
    assert len(fake_api.requests) == 1
    assert not redis_client.exists(keys.WORKERS_PAUSED)
    assert "resumed" not in [e.type for e in event_log.read(redis_client, task_id)]


@pytest.mark.worker_story
def test_the_pause_outlives_a_worker_restart(tasks, fake_api, start_worker, redis_client, projects):
    fake_api.script([edit(command="create", path="note.txt", file_text="kept\n"), text("Wrote note.txt.")])
    pause.pause_workers(redis_client)
    first = start_worker()
    wait_until(lambda: rq_state(redis_client) == {"suspended"}, 60, "the first worker paused")
    task_id = tasks.start("Write a note", project_path="restart")

    first.stop()
    assert "paused; no task starts until `python main_tars.py workers resume`" in first.log_path.read_text()
    second = start_worker()
    wait_until(lambda: rq_state(redis_client) == {"suspended"}, 60, "the second worker paused too")
    assert tasks.status(task_id).status == "queued" and fake_api.requests == []

    pause.resume_workers(redis_client)
    assert wait_until(lambda: tasks.status(task_id).status == "complete", 90, "the task complete after resume"), \
        second.log
    assert (projects / "restart" / "note.txt").read_text() == "kept\n"


def test_pausing_is_refused_before_the_task_starts_and_after_it_ended(tasks, redis_client):
    from core.exceptions import PauseRefused

    task_id = tasks.start("Build it", project_path="notyet")
    with pytest.raises(PauseRefused, match="has not started yet, so it cannot be paused on its own: cancel it, or "
                                           "pause every worker"):
        tasks.pause(task_id)
    with pytest.raises(PauseRefused, match=f"Task {task_id} is not paused."):
        tasks.resume(task_id)
    pause.pause_workers(redis_client)
    assert tasks.status(task_id).status == "queued"  # waiting, not paused: it never started
    tasks.cancel(task_id)
    with pytest.raises(PauseRefused, match=r"has already ended \(cancelled\), so there is nothing to pause"):
        tasks.pause(task_id)
    assert pause.pause_workers(redis_client) is False  # paused already: the first pause's time stays
    assert pause.resume_workers(redis_client) is True and pause.resume_workers(redis_client) is False
