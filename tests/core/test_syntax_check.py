"""The syntax check before the tests, with real workers: when the model says it is done, the files the task changed
are checked first (core/syntax_check.py), and an error goes back to the model with the file, the line and the
checker's words instead of a test run."""

from __future__ import annotations

import shutil

import pytest

from tests.fakes.anthropic_api import edit, text
from tests.test_task_branches import ended, git, owner_repo

pytestmark = pytest.mark.usefixtures("private_git")

COUNTED_TESTS = {"Makefile": "test:\n\techo ran >> test-runs.txt\n"}  # each run of `make test` leaves a line


def test_a_python_syntax_error_goes_back_to_the_model_before_any_test_runs(tasks, fake_api, start_worker, projects):
    repo = owner_repo(projects / "calc", COUNTED_TESTS)
    fake_api.script([edit(command="create", path="calc.py", file_text="def add(a, b):\n    return a +\n"),
                     text("Wrote calc.py."),
                     edit(command="str_replace", path="calc.py", old_str="return a +", new_str="return a + b"),
                     text("Fixed calc.py.")], match="Goal: Write calc.py")
    task_id = tasks.start("Write calc.py", project_path="calc")
    start_worker()

    done = ended(tasks, task_id, 120)
    assert done.status == "complete", done.reason
    told = fake_api.message_requests[2].last_user_text  # the answer to "Wrote calc.py."
    assert "calc.py line 2: SyntaxError: invalid syntax" in told and "make test" not in told
    # The tests ran once, on the fixed file.
    assert git(repo, "show", f"tars/{task_id}:test-runs.txt") == "ran"
    assert done.result["summary"] == "Fixed calc.py." and done.result["tests_passed"] is True


def test_each_checker_of_the_table_names_file_and_line_and_an_error_meant_is_let_through(
        tasks, fake_api, start_worker, projects):
    files = {"data.json": '{"size": 1,}\n', "settings.toml": "name = \n", "deploy.sh": "if true; then\n  echo hi\n",
             "notes.txt": "no checker: not checked\n"}
    if shutil.which("node"):
        files["app.js"] = "const total = ;\n"
    repo = owner_repo(projects / "mixed", COUNTED_TESTS)
    fake_api.script([*[edit(command="create", path=name, file_text=content) for name, content in files.items()],
                     text("Wrote the files."),
                     text("data.json, settings.toml, deploy.sh and app.js are invalid on purpose: parser fixtures.")],
                    match="Goal: Write the fixtures")
    task_id = tasks.start("Write the fixtures", project_path="mixed")
    start_worker()

    done = ended(tasks, task_id, 120)
    assert done.status == "complete", done.reason
    told = fake_api.message_requests[len(files) + 1].last_user_text
    assert "data.json line 1: Expecting property name enclosed in double quotes" in told
    assert "settings.toml line 1: Invalid value" in told
    assert "deploy.sh line 3: syntax error: unexpected end of file" in told
    assert "notes.txt" not in told
    if "app.js" in files:
        assert "app.js line 1: SyntaxError: Unexpected token ';'" in told
    else:
        pytest.skip("node is not installed here: the JavaScript checker (node --check) was not exercised")
    # Said to be meant, the same errors do not come back: the tests ran, once.
    assert git(repo, "show", f"tars/{task_id}:test-runs.txt") == "ran"
