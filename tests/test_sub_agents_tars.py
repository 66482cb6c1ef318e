"""What the voice brain hears back when it calls the programming functions: sentences, never tracebacks."""

from __future__ import annotations

import re

from sub_agents_tars import ProgrammerAgent


def test_start_check_and_cancel_are_spoken_sentences(tasks):
    agent = ProgrammerAgent(tasks, session_id="CA123")
    started = agent.start_autonomous_coding("Build a calculator with tests", "calculator", verbose_updates=False)
    task_id = re.search(r"task ([0-9a-f]{6})", started).group(1)
    assert started == f"Started task {task_id} in background, sir. I'll send updates to Discord."
    assert tasks.status(task_id).verbose_updates is False
    assert tasks.status(task_id).session_id == "CA123"
    assert agent.check_coding_progress() == f"Task {task_id} is waiting for a worker."
    assert agent.cancel_coding_task(task_id) == f"Task {task_id} was cancelled."
    assert agent.list_coding_tasks() == f"Task {task_id} was cancelled."


def test_bad_requests_are_answered_in_words(tasks):
    agent = ProgrammerAgent(tasks)
    assert agent.check_coding_progress() == "There are no tasks yet."
    assert agent.start_autonomous_coding("   ") == "The goal is empty: say what the task should build or fix."
    assert "outside the projects folder" in agent.start_autonomous_coding("x", "/etc")
    assert agent.check_coding_progress("abc123") == "There is no task abc123."
    assert agent.cancel_coding_task("abc123") == "There is no task abc123."
    assert agent.list_coding_tasks() == "There are no tasks yet."
