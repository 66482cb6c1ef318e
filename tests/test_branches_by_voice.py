"""Finishing the work by voice, with real git and real workers: "push it" pushes an ended task's branch to origin
(never forced), "merge it" and "roll it back" work as on the CLI, and each answer says what happened in one sentence
with its numbers ("Pushed tars/a7f3c1 to origin: 2 commits, tests passing.")."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import git_workspace
from sub_agents_tars import VoiceFunctions
from tests.fakes.anthropic_api import bash, edit, text
from tests.test_task_branches import ended, git, owner_repo, run_burst

pytestmark = pytest.mark.usefixtures("private_git")  # no git config of this machine or user is read

CALC = {"calc.py": "def add(a, b):\n    return a - b\n",
        "test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 2) == 4\n"}


def fix_add(fake_api, goal: str) -> None:
    """A task that makes 2 checkpoints (NOTES.md, then calc.py fixed), the second marked as passing the tests."""
    fake_api.script([edit(command="create", path="NOTES.md", file_text="plan: fix add\n"),
                     edit(command="str_replace", path="calc.py", old_str="a - b", new_str="a + b"),
                     bash("python -m pytest -q"), text("Fixed add.")], match=goal)


def test_push_by_voice_says_the_branch_remote_commits_and_tests_and_is_never_forced(tasks, fake_api, start_worker,
                                                                                     projects, settings, tmp_path):
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    repo = owner_repo(projects / "calc", CALC)
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    owner_repo(projects / "lonely", CALC)  # no remote at all
    fix_add(fake_api, "Fix add in calc")
    fix_add(fake_api, "Fix the adder")
    task_id = tasks.start("Fix add in calc", project_path="calc")
    lonely = tasks.start("Fix the adder", project_path="lonely")
    run_burst(start_worker)
    waiting = tasks.start("Anything at all", project_path="calc")  # queued after the burst: no worker runs it
    assert ended(tasks, task_id).status == "complete" and ended(tasks, lonely).status == "complete"
    voice = VoiceFunctions(tasks, settings)
    branch = f"tars/{task_id}"

    assert voice.call("push_coding_task", {"task_id": " ".join(task_id)}) == \
        f"Pushed {branch} to origin: 2 commits, tests passing."
    assert git(origin, "rev-parse", branch) == git(repo, "rev-parse", branch)

    # The branch gains a commit (its checkout is still there): the next push carries it, a fast-forward.
    checkout = tasks.task_checkout(task_id, "add to it")
    (Path(checkout.path) / "MORE.md").write_text("more\n")
    git_workspace.checkpoint(checkout, "Creating MORE.md")
    assert voice.call("push_coding_task", {"task_id": task_id}) == \
        f"Pushed {branch} to origin: 3 commits, no passing test run."  # the new tip was never tested
    assert git(origin, "rev-parse", branch) == git(repo, "rev-parse", branch)

    # Someone else pushes to the branch on origin: a push would have to overwrite it, so it is refused.
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(origin), str(other))
    git(other, "checkout", "-q", branch)
    (other / "THEIRS.md").write_text("theirs\n")
    git(other, "add", "THEIRS.md")
    git(other, "commit", "-qm", "their commit")
    git(other, "push", "-q", "origin", branch)
    theirs = git(origin, "rev-parse", branch)
    (Path(checkout.path) / "MINE.md").write_text("mine\n")
    git_workspace.checkpoint(checkout, "Creating MINE.md")
    assert voice.call("push_coding_task", {"task_id": task_id}) == (
        f"origin refused {branch}, sir: its copy there has moved on since, and I never force a push, so nothing "
        f"was changed.")
    assert git(origin, "rev-parse", branch) == theirs

    assert voice.call("push_coding_task", {"task_id": lonely}) == \
        f"Task {lonely}'s project has no remote called origin, sir, so there is nowhere to push it."
    assert voice.call("push_coding_task", {"task_id": waiting}) == \
        f"Task {waiting} is waiting for a worker, sir; I can push it once it has ended."


def test_merge_and_roll_back_by_voice_say_what_happened_with_numbers(tasks, fake_api, start_worker, projects,
                                                                     settings):
    repo = owner_repo(projects / "calc", CALC)
    other = owner_repo(projects / "ledger", CALC)
    fix_add(fake_api, "Fix add in calc")
    fix_add(fake_api, "Fix the adder")
    merged = tasks.start("Fix add in calc", project_path="calc")
    rolled = tasks.start("Fix the adder", project_path="ledger")
    run_burst(start_worker)
    assert ended(tasks, merged).status == "complete" and ended(tasks, rolled).status == "complete"
    voice = VoiceFunctions(tasks, settings)

    assert voice.call("merge_coding_task", {"task_id": merged}) == \
        f"Merged tars/{merged} into main: 2 commits, 2 files, tests passing."
    assert (repo / "NOTES.md").exists() and "a + b" in (repo / "calc.py").read_text()

    assert voice.call("rollback_coding_task", {"task_id": rolled, "checkpoint": 1}) == \
        f"Rolled task {rolled} back to checkpoint 1: Creating NOTES.md; 1 commit undone."
    # The owner wrote NOTES.md on main meanwhile: the merge conflicts, and changes nothing.
    (other / "NOTES.md").write_text("the owner's own notes\n")
    git(other, "add", "NOTES.md")
    git(other, "commit", "-qm", "notes")
    before = git(other, "rev-parse", "main")
    assert voice.call("merge_coding_task", {"task_id": rolled}) == \
        f"Task {rolled} conflicts with main in NOTES.md, sir, so I merged nothing."
    assert git(other, "rev-parse", "main") == before
    assert voice.call("rollback_coding_task", {"task_id": rolled, "checkpoint": 0}) == \
        f"Rolled task {rolled} back to before it started, sir: 1 commit undone."
