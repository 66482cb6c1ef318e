"""Every shipped evaluation task is sound (bench/eval/tasks/): its hidden tests fail on the starting project and pass
with the reference solution, run as the harness runs them (bench/eval/catalog.run_hidden, sandboxed). No worker."""

from __future__ import annotations

import pytest

from bench.eval import catalog

TASKS = catalog.all_tasks()


def test_the_catalog_ships_the_promised_mix():
    languages = [task.language for task in TASKS]
    skills = {skill for task in TASKS for skill in task.skills}
    assert len(TASKS) >= 12
    assert languages.count("javascript") >= 2 and languages.count("python") > languages.count("javascript")
    assert {"reads-existing-code", "fixes-a-bug", "adds-tests", "new-feature"} <= skills
    goals = [task.goal for task in TASKS]
    # The harness's smoke test routes scripted turns by a piece of the goal: no goal may contain another's start.
    assert not any(a[:60] in b for a in goals for b in goals if a is not b)


@pytest.mark.parametrize("task", TASKS, ids=[task.name for task in TASKS])
def test_hidden_tests_fail_on_the_start_and_pass_with_the_solution(task, tmp_path):
    result = catalog.check(task, tmp_path)
    assert result.on_solution.passed, result.problem()
    assert not result.on_start.passed, result.problem()
    assert not result.on_start.timed_out, result.on_start.output[-2000:]


def test_a_broken_task_folder_is_refused_with_the_reason(tmp_path):
    folder = tmp_path / "broken"
    for part in ("project", "hidden", "solution"):
        (folder / part).mkdir(parents=True)
    (folder / "task.toml").write_text('goal = "Do it"\nlanguage = "cobol"\nskills = ["new-feature"]\nhidden = "true"\n')
    with pytest.raises(catalog.TaskError, match="language must be one of python, javascript"):
        catalog.load(folder)
    (folder / "task.toml").write_text('goal = "Do it"\nlanguage = "python"\nskils = ["x"]\nhidden = "true"\n')
    with pytest.raises(catalog.TaskError, match="unknown fields skils"):
        catalog.load(folder)
    with pytest.raises(catalog.TaskError, match="no task nope"):
        catalog.select(["nope"])


def test_hidden_files_replace_a_symlink_instead_of_writing_through_it(tmp_path):
    task = catalog.select(["fix-median"])[0]
    outside = tmp_path / "outside.txt"
    outside.write_text("the owner's file\n")
    checkout = catalog.starting_project(task, tmp_path / "checkout")
    (checkout / "test_hidden_median.py").symlink_to(outside)
    result = catalog.run_hidden(task, checkout)
    assert outside.read_text() == "the owner's file\n"
    assert not (checkout / "test_hidden_median.py").is_symlink()
    assert not result.passed and result.exit_code == 1


def test_hidden_tests_cannot_read_the_protected_paths_nor_write_outside_their_folder(tmp_path):
    from core import sandbox

    if sandbox.detect().kind == sandbox.NONE:
        pytest.skip(f"no OS sandbox on this machine: {sandbox.detect()}")
    secret = tmp_path / "owner" / ".env"
    secret.parent.mkdir()
    secret.write_text("ANTHROPIC_API_KEY=sk-ant-the-owners-key\n")
    outside = tmp_path / "outside.txt"
    folder = tmp_path / "probe"
    for part in ("project", "hidden", "solution"):
        (folder / part).mkdir(parents=True)
    (folder / "task.toml").write_text(
        'goal = "Probe the sandbox"\nlanguage = "python"\nskills = ["new-feature"]\n'
        f'hidden = "cat {secret}; echo written > {outside}; echo inside > here.txt"\n')
    task = catalog.load(folder)
    checkout = catalog.starting_project(task, tmp_path / "checkout")
    result = catalog.run_hidden(task, checkout, hidden_paths=[secret.parent])
    assert "sk-ant-the-owners-key" not in result.output
    assert not outside.exists() and (checkout / "here.txt").read_text() == "inside\n"
    assert result.output.count("Permission denied") == 2 and "network off" in result.sandbox


def test_the_guide_lists_every_task_with_its_language_and_skills():
    from tests import doccheck

    guide = (doccheck.ROOT / "docs" / "EVALUATING_MODELS.md").read_text()
    rows = {row[0].strip("`"): row for row in doccheck.table_rows(doccheck.section(guide, "The tasks"))}
    assert sorted(rows) == [task.name for task in TASKS]
    for task in TASKS:
        assert rows[task.name][1].lower() == task.language
        assert rows[task.name][2] == ", ".join(task.skills)
    assert f"ships {len(TASKS)} small tasks" in guide
