"""Every task on its own branch, end to end with real git, real workers and the CLI: the owner's repository (dirty
tree included) is never touched while tasks run; checkpoints can be listed and rolled back; a branch is merged,
refused on a conflict, or discarded; a plain folder gets a shadow repository; a git URL is cloned and pushed back;
a killed worker leaves the owner's tree as it was."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from rq.job import Job

from core import git_workspace
from core.exceptions import InvalidProjectPath
from core.git_workspace import TaskCheckout
from sub_agents_tars import VoiceFunctions
from tests.conftest import TEST_CODE
from tests.fakes.anthropic_api import bash, edit, repeat, text
from tests.waiting import wait_until

OWNER = ("-c", "user.name=Owner", "-c", "user.email=owner@example.com", "-c", "init.defaultBranch=main")


pytestmark = pytest.mark.usefixtures("private_git")  # no git config of this machine or user is read


def git(cwd, *args) -> str:
    done = subprocess.run(["git", *OWNER, *args], cwd=cwd, capture_output=True, text=True, timeout=30,
                          env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
    assert done.returncode == 0, f"git {args} failed: {done.stderr}"
    return done.stdout.strip()


def owner_repo(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    git(folder, "init", "-q")
    for name, content in files.items():
        (folder / name).write_text(content)
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "the owner's first commit")
    return folder


def owner_state(repo: Path) -> dict:
    """What the owner would notice: branch, HEAD, index bytes, status, every file outside .git, the branch list."""
    files = {str(p.relative_to(repo)): p.read_bytes() for p in sorted(repo.rglob("*"))
             if p.is_file() and ".git" not in p.relative_to(repo).parts}
    return {"branch": git(repo, "symbolic-ref", "HEAD"), "head": git(repo, "rev-parse", "HEAD"),
            "index": hashlib.sha256((repo / ".git" / "index").read_bytes()).hexdigest(),
            "status": git(repo, "status", "--porcelain=v1", "--untracked-files=all"), "files": files}


def make_dirty(repo: Path) -> None:
    """Uncommitted work of every kind: a modified tracked file, a staged one, an untracked one."""
    (repo / "notes.md").write_text("half-written thoughts\n")
    (repo / "app.py").write_text("print('app')\n# owner's edit, not saved in git\n")
    (repo / "staged.py").write_text("STAGED = True\n")
    git(repo, "add", "staged.py")


def ended(tasks, task_id, timeout=60):
    """The task's status once it has ended and RQ stored its result."""
    return wait_until(lambda: (s := tasks.status(task_id)).status not in ("queued", "running",
                      "awaiting_confirmation") and (s.result or s.status != "complete") and s, timeout,
                      f"task {task_id} to end")


def run_burst(start_worker, **env):
    worker = start_worker("--burst", **env)
    assert worker.wait(90) == 0, worker.log
    return worker


def checkout_of(tasks, task_id) -> dict:
    return Job.fetch(task_id, connection=tasks.redis).get_meta()["checkout"]


# --- a git repository -------------------------------------------------------------------------------------------

def test_two_tasks_on_one_dirty_repository_run_side_by_side_and_never_touch_it(tasks, fake_api, start_worker,
                                                                                  projects, n8n, cli, tmp_path):
    repo = owner_repo(projects / "shop", {"app.py": "print('app')\n", "README.md": "# shop\n"})
    make_dirty(repo)
    before = owner_state(repo)
    # Each task waits at its second step until the test opens the gate, which it does once both wait there: the
    # two run side by side however long each worker takes to start (a fixed `sleep 2` did not overlap under load:
    # the first worker up finished alpha before the second one had started).
    gate = tmp_path / "both-running"
    wait_for_gate = f"until test -e {gate}; do sleep 0.05; done"
    for name in ("alpha", "beta"):
        fake_api.script([edit(command="create", path=f"{name}.py", file_text=f"NAME = '{name}'\n"),
                         bash(wait_for_gate),
                         edit(command="str_replace", path="app.py", old_str="print('app')",
                              new_str=f"print('app')\nimport {name}") if name == "alpha" else bash("true"),
                         text(f"Added {name}.")], match=f"Add {name}", name=name)
    first = tasks.start("Add alpha", project_path="shop")
    second = tasks.start("Add beta", project_path="shop")
    workers = [start_worker(N8N_WEBHOOK_URL=n8n.url()) for _ in range(2)]
    wait_until(lambda: all(tasks.status(t).progress.startswith("Running: until test -e") for t in (first, second)),
               120, "both tasks at the gate")
    gate.touch()
    a, b = ended(tasks, first, 120), ended(tasks, second, 120)
    for worker in workers:
        worker.stop()

    assert (a.status, b.status) == ("complete", "complete"), (a.reason, b.reason)
    assert a.started_at < b.ended_at and b.started_at < a.ended_at, "the two tasks did not run side by side"
    assert owner_state(repo) == before  # status, index, HEAD, branch and every file as the owner left them
    assert (a.branch, b.branch) == (f"tars/{first}", f"tars/{second}")
    # Each branch holds its own work on top of the owner's last commit, not the owner's uncommitted changes.
    assert git(repo, "show", f"tars/{first}:alpha.py") == "NAME = 'alpha'"
    assert git(repo, "show", f"tars/{first}:app.py") == "print('app')\nimport alpha"
    assert git(repo, "ls-tree", "--name-only", f"tars/{first}").split() == ["README.md", "alpha.py", "app.py"]
    assert git(repo, "ls-tree", "--name-only", f"tars/{second}").split() == ["README.md", "app.py", "beta.py"]
    worktree = Path(checkout_of(tasks, first)["worktree"])
    assert worktree.is_relative_to(tasks.settings.checkouts_dir) and not worktree.is_relative_to(repo)

    # What the owner reads at the end: the branch, commits, files with a diffstat, the tests.
    git_info = a.result["git"]
    assert git_info["branch"] == f"tars/{first}" and git_info["commits"] == 2  # the two steps that wrote
    assert sorted(f["path"] for f in git_info["files"]) == ["alpha.py", "app.py"]
    assert "2 files changed, 2 insertions(+)" in git_info["diffstat"]
    assert a.result["changes"] == f"Branch tars/{first}: 2 commits, 2 files changed (+2 -0), no tests run."
    ending = next(body for body in n8n.bodies() if body["task_id"] == first and body["type"] == "complete")
    assert ending["message"].endswith("\n" + a.result["changes"])

    # alpha changed app.py, which the owner is editing: refused, nothing changed.
    blocked = cli("task", "merge", first)
    assert blocked.returncode == 1
    assert "Your uncommitted changes to app.py" in blocked.stderr and "Nothing was changed" in blocked.stderr
    assert owner_state(repo) == before
    # beta did not: main fast-forwards in the owner's tree, their uncommitted work kept.
    merged = cli("task", "merge", second, "--json")
    assert merged.returncode == 0, merged.stderr
    assert (json.loads(merged.stdout)["kind"], json.loads(merged.stdout)["tree_updated"]) == ("fast-forward", True)
    assert (repo / "beta.py").read_text() == "NAME = 'beta'\n"
    assert (repo / "notes.md").read_text() == "half-written thoughts\n"
    assert git(repo, "diff", "--cached", "--name-only") == "staged.py" and git(repo, "diff", "--name-only") == \
        "app.py"
    # The owner drops their edit; alpha now needs a merge commit, as main has moved on.
    git(repo, "checkout", "--", "app.py")
    merged = cli("task", "merge", first, "--json")
    assert merged.returncode == 0, merged.stderr
    assert json.loads(merged.stdout)["kind"] == "merge"
    assert git(repo, "log", "-1", "--format=%s") == f"tars({first}): merge tars/{first} into main"
    assert (repo / "app.py").read_text() == "print('app')\nimport alpha\n" and (repo / "beta.py").exists()


def test_checkpoints_are_listed_and_rolled_back_from_the_cli(tasks, fake_api, start_worker, projects, cli):
    repo = owner_repo(projects / "calc", {"calc.py": "def add(a, b):\n    return a - b\n",
                                          "test_calc.py": "from calc import add\n\n\ndef test_add():\n"
                                                          "    assert add(2, 2) == 4\n"})
    before = owner_state(repo)
    fake_api.script([
        edit(command="create", path="NOTES.md", file_text="plan: fix add\n"),
        edit(command="str_replace", path="calc.py", old_str="a - b", new_str="a + b"),
        bash("python -m pytest -q"),
        text("Fixed add."),
    ])
    task_id = tasks.start("Fix add", project_path="calc")
    run_burst(start_worker)
    status = ended(tasks, task_id)
    assert status.status == "complete" and status.result["tests_passed"] is True

    listed = cli("task", "checkpoints", task_id, "--json")
    assert listed.returncode == 0, listed.stderr
    points = json.loads(listed.stdout)
    assert [p["number"] for p in points] == [1, 2]
    assert [p["message"] for p in points] == ["Creating NOTES.md", "Editing calc.py"]
    assert [p["tests_passed"] for p in points] == [False, True]  # pytest passed on checkpoint 2's files
    subjects = git(repo, "log", "--format=%s", f"tars/{task_id}").splitlines()
    assert subjects[:2] == [f"tars({task_id}): Editing calc.py [tests pass]", f"tars({task_id}): Creating NOTES.md"]
    assert status.result["git"]["tests_passed"] is True and status.checkpoints == 2
    assert status.result["changes"].endswith("tests pass.")
    told = [e.message for e in tasks.events(task_id) if e.type == "checkpoint"]
    assert told == ["Checkpoint 1: Creating NOTES.md", "Checkpoint 2: Editing calc.py",
                    "Checkpoint 2: tests pass on it"]  # pytest's run changed no file: checkpoint 2 is marked
    shown = cli("task", "checkpoints", task_id)
    assert "tests pass" in shown.stdout.splitlines()[1] and "Creating NOTES.md" in shown.stdout.splitlines()[0]

    worktree = Path(checkout_of(tasks, task_id)["path"])
    back = cli("task", "rollback", task_id)  # no --to: one checkpoint back
    assert back.returncode == 0, back.stderr
    assert back.stdout.startswith("Rolled back to checkpoint 1")
    assert (worktree / "calc.py").read_text().endswith("a - b\n") and (worktree / "NOTES.md").exists()
    assert git(repo, "rev-list", "--count", f"{before['head']}..tars/{task_id}") == "1"
    assert tasks.status(task_id).checkpoints == 1  # the status counts what the branch holds now

    start = cli("task", "rollback", task_id, "--to", "0")
    assert start.returncode == 0 and "checkpoint 0" in start.stdout
    assert tasks.status(task_id).checkpoints == 0
    assert not (worktree / "NOTES.md").exists()
    assert git(repo, "rev-parse", f"tars/{task_id}") == before["head"]

    wrong = cli("task", "rollback", task_id, "--to", "5")
    assert wrong.returncode == 1 and "no checkpoint 5" in wrong.stderr and "Traceback" not in wrong.stderr
    assert owner_state(repo) == before


def test_a_merge_conflict_changes_nothing_and_names_the_files(tasks, fake_api, start_worker, projects, cli):
    repo = owner_repo(projects / "site", {"index.html": "<h1>Hello</h1>\n"})
    fake_api.script([edit(command="str_replace", path="index.html", old_str="Hello", new_str="Hello from TARS"),
                     text("Changed the heading.")])
    task_id = tasks.start("Change the heading", project_path="site")
    run_burst(start_worker)
    assert ended(tasks, task_id).status == "complete"
    (repo / "index.html").write_text("<h1>Hello from the owner</h1>\n")  # meanwhile the owner changed the same line
    git(repo, "commit", "-qam", "the owner's heading")
    before = owner_state(repo)
    branch_tip = git(repo, "rev-parse", f"tars/{task_id}")

    refused = cli("task", "merge", task_id)
    assert refused.returncode == 1
    assert "conflicts with main in index.html; nothing was changed" in refused.stderr
    assert owner_state(repo) == before and git(repo, "rev-parse", f"tars/{task_id}") == branch_tip
    assert not (repo / ".git" / "MERGE_HEAD").exists()


def test_discard_removes_the_worktree_and_the_branch(tasks, fake_api, start_worker, projects, cli):
    repo = owner_repo(projects / "tool", {"tool.py": "pass\n"})
    before = owner_state(repo)
    fake_api.script([edit(command="create", path="extra.py", file_text="x = 1\n"), text("Added extra.")])
    task_id = tasks.start("Add extra", project_path="tool")
    run_burst(start_worker)
    assert ended(tasks, task_id).status == "complete"
    worktree = Path(checkout_of(tasks, task_id)["worktree"])
    assert worktree.is_dir()
    shown = cli("task", "status", task_id).stdout
    assert f"  branch:   tars/{task_id} (1 checkpoint)\n" in shown
    assert f"  changes:  Branch tars/{task_id}: 1 commit, 1 file changed (+1 -0), no tests run." in shown
    assert " extra.py | 1 +" in shown  # the diffstat

    gone = cli("task", "discard", task_id)
    assert gone.returncode == 0, gone.stderr
    assert gone.stdout.strip() == f"Discarded task {task_id}: its checkout and branch tars/{task_id} are gone."
    assert not worktree.exists() and f"tars/{task_id}" not in git(repo, "branch", "--list")
    assert git(repo, "worktree", "list").count("\n") == 0  # only the owner's own tree is left
    assert owner_state(repo) == before
    assert tasks.status(task_id).branch is None and "  branch:" not in cli("task", "status", task_id).stdout
    again = cli("task", "merge", task_id)
    assert again.returncode == 1 and f"Task {task_id} was discarded: its branch tars/{task_id}" in again.stderr


def test_a_project_inside_a_repository_works_in_the_same_folder_of_the_worktree(tasks, fake_api, start_worker,
                                                                               projects, cli):
    repo = projects / "mono"
    (repo / "services" / "api").mkdir(parents=True)
    (repo / "services" / "api" / "app.py").write_text("API = 1\n")
    (repo / "README.md").write_text("# mono\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "monorepo")
    before = owner_state(repo)
    fake_api.script([edit(command="create", path="routes.py", file_text="ROUTES = []\n"), text("Added routes.")])
    task_id = tasks.start("Add routes", project_path="mono/services/api")
    run_burst(start_worker)
    assert ended(tasks, task_id).status == "complete"
    checkout = checkout_of(tasks, task_id)
    assert Path(checkout["path"]) == Path(checkout["worktree"]) / "services" / "api"
    assert git(repo, "show", f"tars/{task_id}:services/api/routes.py") == "ROUTES = []"
    assert owner_state(repo) == before
    assert cli("task", "merge", task_id).returncode == 0
    assert (repo / "services" / "api" / "routes.py").read_text() == "ROUTES = []\n"


def test_auto_merge_merges_a_green_task_by_itself(tasks, fake_api, start_worker, projects, n8n):
    repo = owner_repo(projects / "lib", {"lib.py": "VALUE = 1\n",
                                         "test_lib.py": "from lib import VALUE\n\n\ndef test_value():\n"
                                                        "    assert VALUE == 2\n"})
    fake_api.script([edit(command="str_replace", path="lib.py", old_str="VALUE = 1", new_str="VALUE = 2"),
                     text("Set VALUE to 2.")])
    task_id = tasks.start("Make the test pass", project_path="lib")
    run_burst(start_worker, AUTO_MERGE="true", N8N_WEBHOOK_URL=n8n.url())
    status = ended(tasks, task_id)
    assert status.status == "complete" and status.result["tests_passed"] is True
    assert status.result["git"]["merged"] is True
    assert (repo / "lib.py").read_text() == "VALUE = 2\n"  # the owner's clean tree was fast-forwarded
    assert git(repo, "rev-parse", "main") == git(repo, "rev-parse", f"tars/{task_id}")
    assert status.result["changes"].endswith(f"Merged task {task_id} into main (fast-forward, 1 file); your "
                                             "checked-out copy is updated.")


def test_auto_merge_leaves_a_red_task_on_its_branch(tasks, fake_api, start_worker, projects):
    repo = owner_repo(projects / "red", {"lib.py": "VALUE = 1\n",
                                         "test_lib.py": "from lib import VALUE\n\n\ndef test_value():\n"
                                                        "    assert VALUE == 3\n"})
    fake_api.script([edit(command="str_replace", path="lib.py", old_str="VALUE = 1", new_str="VALUE = 2"),
                     repeat(text("Done."))])
    task_id = tasks.start("Make the test pass", project_path="red")
    run_burst(start_worker, AUTO_MERGE="true", MAX_TASK_ITERATIONS="3")
    status = ended(tasks, task_id)
    assert status.status == "failed" and status.result["git"]["tests_passed"] is False
    assert "merged" not in status.result["git"]
    assert (repo / "lib.py").read_text() == "VALUE = 1\n"


def test_the_models_own_reset_hard_still_asks_and_only_resets_the_worktree(tasks, fake_api, start_worker,
                                                                           projects):
    repo = owner_repo(projects / "careful", {"a.py": "A = 1\n"})
    make_dirty(repo)
    before = owner_state(repo)
    fake_api.script([edit(command="create", path="b.py", file_text="B = 2\n"), bash("git reset --hard"),
                     text("Reset.")])
    task_id = tasks.start("Try a reset", project_path="careful")
    worker = start_worker()
    wait_until(lambda: tasks.status(task_id).status == "awaiting_confirmation", 60, "the code request")
    assert tasks.status(task_id).confirmation_command == "git reset --hard"
    tasks.confirm(task_id, TEST_CODE)
    assert ended(tasks, task_id).status == "complete"
    worker.stop()
    assert owner_state(repo) == before  # the confirmed reset ran in the task's worktree only


def test_the_owners_branch_follows_each_checkpoint_while_the_task_still_runs(tasks, fake_api, start_worker, projects):
    repo = owner_repo(projects / "followed", {"main.py": "print(1)\n"})
    fake_api.script([edit(command="create", path="step.py", file_text="STEP = 1\n"), bash("sleep 20"),
                     repeat(text("never reached"))])
    task_id = tasks.start("Do something slow", project_path="followed")
    start_worker()
    wait_until(lambda: tasks.status(task_id).progress.startswith("Running: sleep"), 60, "the slow command")
    # git show fails until the branch holds the file: the follower fetches it beside the loop, not at the end
    wait_until(lambda: subprocess.run(["git", "show", f"tars/{task_id}:step.py"], cwd=repo, capture_output=True,
                                      text=True).stdout == "STEP = 1\n", 30, "the owner's branch to follow")
    assert tasks.status(task_id).status == "running"
    tasks.cancel(task_id)


def test_a_killed_worker_leaves_the_owners_tree_untouched(tasks, fake_api, start_worker, projects):
    repo = owner_repo(projects / "fragile", {"main.py": "print(1)\n"})
    make_dirty(repo)
    before = owner_state(repo)
    fake_api.script([edit(command="create", path="half.py", file_text="HALF = True\n"), bash("sleep 20"),
                     repeat(text("never reached"))])
    task_id = tasks.start("Do something slow", project_path="fragile")
    worker = start_worker()
    wait_until(lambda: tasks.status(task_id).checkpoints == 1 and tasks.status(task_id).progress.startswith(
        "Running: sleep"), 60, "the first checkpoint and the slow command")
    meta = Job.fetch(task_id, connection=tasks.redis).get_meta()
    os.kill(worker.process.pid, signal.SIGKILL)
    os.kill(meta["horse_pid"], signal.SIGKILL)
    worker.process.wait(10)
    assert owner_state(repo) == before
    # The checkpoint survived the crash: committed in the task's own repository before the command ran. The owner's
    # tars/<id> follows it beside the loop, so it may lag a kill by one fetch; whatever TARS does next with the task
    # (the reaper's ending, summary, merge) brings it in step first.
    checkout = TaskCheckout.from_dict(meta["checkout"])
    assert git(checkout.path, "show", f"tars/{task_id}:half.py") == "HALF = True"
    git_workspace.follow(checkout)
    assert git(repo, "show", f"tars/{task_id}:half.py") == "HALF = True"


# --- a plain folder -----------------------------------------------------------------------------------------------

def test_a_plain_folder_gets_checkpoints_outside_it_and_rolls_back(tasks, fake_api, start_worker, projects, cli):
    folder = projects / "plain"
    folder.mkdir()
    (folder / "data.txt").write_text("original\n")
    fake_api.script([edit(command="str_replace", path="data.txt", old_str="original", new_str="changed"),
                     edit(command="create", path="new.txt", file_text="new\n"), text("Changed data.")])
    task_id = tasks.start("Change the data", project_path="plain")
    run_burst(start_worker)
    status = ended(tasks, task_id)
    assert status.status == "complete", (status.reason, status.progress)
    assert sorted(p.name for p in folder.iterdir()) == ["data.txt", "new.txt"]  # no .git, nothing of TARS's
    assert status.result["git"]["mode"] == "shadow" and status.result["git"]["commits"] == 2
    assert status.result["changes"].startswith("Changed in place: 2 commits, 2 files changed")

    nothing = cli("task", "merge", task_id)
    assert nothing.returncode == 0 and "there is nothing to merge" in nothing.stdout
    back = cli("task", "rollback", task_id, "--to", "0")
    assert back.returncode == 0, back.stderr
    assert (folder / "data.txt").read_text() == "original\n" and not (folder / "new.txt").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["data.txt"]


# --- a git URL ------------------------------------------------------------------------------------------------------

def bare_remote(tmp_path: Path) -> Path:
    """A bare repository standing in for GitHub, with one commit on main."""
    seed = owner_repo(tmp_path / "seed", {"server.py": "PORT = 80\n"})
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(remote))
    return remote


def test_a_task_from_a_file_url_is_cloned_and_its_branch_pushed_back(tasks, fake_api, start_worker, tmp_path, cli):
    remote = bare_remote(tmp_path)
    fake_api.script([edit(command="str_replace", path="server.py", old_str="PORT = 80", new_str="PORT = 8080"),
                     text("Moved the port.")])
    task_id = tasks.start("Move the port", project_path=f"file://{remote}")
    assert tasks.status(task_id).project_path == f"file://{remote}"
    run_burst(start_worker)
    status = ended(tasks, task_id)
    assert status.status == "complete" and status.result["git"]["mode"] == "clone"
    assert "tars/" not in git(remote, "branch", "--list")  # nothing reaches the remote before push

    pushed = cli("task", "push", task_id)
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.strip() == f"Pushed tars/{task_id} to file://{remote}."
    assert git(remote, "show", f"tars/{task_id}:server.py") == "PORT = 8080"
    assert git(remote, "rev-parse", "main") == git(remote, "rev-parse", f"tars/{task_id}~1")  # main untouched
    refused = cli("task", "merge", task_id)
    assert refused.returncode == 1 and "push its branch" in refused.stderr

    # A second task on the same URL reuses the worker's cached clone, fetched first: it sees the pushed branch.
    fake_api.reset()
    fake_api.script([bash("git branch -a"), text("Looked.")])
    second = tasks.start("Look at the branches", project_path=f"file://{remote}")
    run_burst(start_worker)
    assert ended(tasks, second).status == "complete"
    clones = list((tasks.settings.checkouts_dir / "clones").iterdir())
    assert len(clones) == 1


def test_auto_merge_pushes_a_green_url_task(tasks, fake_api, start_worker, tmp_path):
    remote = bare_remote(tmp_path)
    fake_api.script([edit(command="create", path="test_server.py",
                          file_text="from server import PORT\n\n\ndef test_port():\n    assert PORT == 80\n"),
                     text("Added a test.")])
    task_id = tasks.start("Add a test", project_path=f"file://{remote}")
    run_burst(start_worker, AUTO_MERGE="true")
    status = ended(tasks, task_id)
    assert status.result["git"]["pushed"] is True
    assert git(remote, "show", f"tars/{task_id}:test_server.py").startswith("from server import PORT")


@pytest.mark.parametrize("url", ["https://user:s3cret@example.com/repo.git", "https://ghp_token@github.com/o/r.git"])
def test_a_url_with_a_password_or_token_is_refused(tasks, url):
    with pytest.raises(InvalidProjectPath, match="password or token"):
        tasks.start("Anything", project_path=url)


def test_an_unreachable_url_fails_the_task_with_gits_reason(tasks, fake_api, start_worker, tmp_path):
    task_id = tasks.start("Anything", project_path=f"file://{tmp_path}/missing.git")
    run_burst(start_worker)
    status = ended(tasks, task_id)
    assert status.status == "failed" and "Could not clone" in status.reason
    assert fake_api.requests == []  # failed before any model call


# --- the rules around the branch operations -------------------------------------------------------------------------

def test_branch_operations_wait_until_the_task_has_ended(tasks, fake_api, start_worker, projects, cli):
    owner_repo(projects / "busy", {"x.py": "X = 1\n"})
    fake_api.script([edit(command="create", path="y.py", file_text="Y = 1\n"), bash("sleep 300"),
                     repeat(text("done"))])
    task_id = tasks.start("Work slowly", project_path="busy")
    start_worker(COMMAND_TIMEOUT_SECONDS="600", MAX_TASK_RUNTIME_MINUTES="10")  # running until cancelled below
    wait_until(lambda: tasks.status(task_id).checkpoints == 1, 60, "the first checkpoint")
    for command in (["rollback", task_id], ["merge", task_id], ["discard", task_id], ["push", task_id]):
        done = cli("task", *command)
        assert done.returncode == 1 and f"Task {task_id} is still running; " in done.stderr, done.stderr
        assert "once it has ended" in done.stderr
    tasks.cancel(task_id)
    assert ended(tasks, task_id).status == "cancelled"
    # The cancelled task's work is kept on its branch, ready to inspect, merge or discard.
    assert tasks.checkpoints(task_id)[0].message == "Creating y.py"


def test_a_checkout_on_another_machine_is_named(tasks, fake_api, start_worker, projects, cli):
    owner_repo(projects / "far", {"x.py": "X = 1\n"})
    fake_api.script([edit(command="create", path="y.py", file_text="Y = 1\n"), text("Done.")])
    task_id = tasks.start("Add y", project_path="far")
    run_burst(start_worker)
    ended(tasks, task_id)
    job = Job.fetch(task_id, connection=tasks.redis)
    job.meta["checkout_host"] = "build-box-2"
    job.save_meta()
    done = cli("task", "merge", task_id)
    assert done.returncode == 1 and "checkout is on the machine build-box-2" in done.stderr


def test_the_voice_functions_roll_back_merge_and_discard(tasks, fake_api, start_worker, projects, settings):
    repo = owner_repo(projects / "spoken", {"x.py": "X = 1\n"})
    fake_api.script([edit(command="create", path="y.py", file_text="Y = 1\n"),
                     edit(command="create", path="z.py", file_text="Z = 1\n"), text("Done.")], match="Add y")
    fake_api.script([edit(command="create", path="w.py", file_text="W = 1\n"), text("Done.")], match="Add w")
    first = tasks.start("Add y and z", project_path="spoken")
    second = tasks.start("Add w", project_path="spoken")
    run_burst(start_worker)
    ended(tasks, first), ended(tasks, second)
    voice = VoiceFunctions(tasks, settings)

    assert voice.call("rollback_coding_task", {"task_id": first}) == \
        f"Rolled task {first} back to checkpoint 1: Creating y.py; 1 commit undone."
    assert voice.call("merge_coding_task", {"task_id": " ".join(first)}) == \
        f"Merged tars/{first} into main: 1 commit, 1 file, no passing test run."
    assert (repo / "y.py").exists() and not (repo / "z.py").exists()
    asked = voice.call("discard_coding_task", {"task_id": second})
    assert asked == f"Discarding task {second} deletes its branch and all its work for good. Shall I, sir?"
    assert f"tars/{second}" in git(repo, "branch", "--list")
    assert voice.call("discard_coding_task", {"task_id": second, "confirmed": True}).startswith(
        f"Discarded task {second}")
    assert f"tars/{second}" not in git(repo, "branch", "--list")
    assert voice.call("merge_coding_task", {"task_id": "ffffff"}) == "There is no task ffffff."


def test_a_worker_removes_checkouts_past_the_retention_period(tasks, fake_api, start_worker, projects):
    repo = owner_repo(projects / "old", {"x.py": "X = 1\n"})
    fake_api.script([edit(command="create", path="y.py", file_text="Y = 1\n"), text("Done.")])
    task_id = tasks.start("Add y", project_path="old")
    run_burst(start_worker)
    ended(tasks, task_id)
    checkout = checkout_of(tasks, task_id)
    record = tasks.settings.checkouts_dir / "checkouts" / f"{task_id}.json"
    eight_days_ago = time.time() - 8 * 86400
    os.utime(record, (eight_days_ago, eight_days_ago))

    worker = run_burst(start_worker)  # RQ's maintenance runs at start-up
    assert f"removed the checkouts of 1 finished tasks older than the retention period: {task_id}" in worker.log
    assert not Path(checkout["worktree"]).exists() and not record.exists()
    assert git(repo, "show", f"tars/{task_id}:y.py") == "Y = 1"  # an unmerged branch is the owner's: it stays


def test_a_killed_work_horse_still_reports_what_its_branch_holds(tasks, fake_api, start_worker, projects, n8n):
    owner_repo(projects / "oom", {"main.py": "print(1)\n"})
    fake_api.script([edit(command="create", path="saved.py", file_text="SAVED = 1\n"), bash("rm -f main.py"),
                     repeat(text("done"))])  # rm waits for the owner's code
    task_id = tasks.start("Tidy up", project_path="oom")
    worker = start_worker(N8N_WEBHOOK_URL=n8n.url())
    wait_until(lambda: tasks.status(task_id).status == "awaiting_confirmation", 60, "the code request")
    os.kill(Job.fetch(task_id, connection=tasks.redis).get_meta()["horse_pid"], signal.SIGKILL)
    ending = wait_until(lambda: [b for b in n8n.bodies() if b["task_id"] == task_id and b["type"] == "error"], 15,
                        "the ending on Discord")[0]
    assert "killed by SIGKILL" in ending["message"]
    assert ending["message"].endswith(f"Branch tars/{task_id}: 1 commit, 1 file changed (+1 -0), no tests run.")
    assert tasks.status(task_id).status == "failed" and tasks.checkpoints(task_id)[0].message == "Creating saved.py"
    worker.stop()


def test_a_local_folder_the_worker_cannot_see_fails_clearly_instead_of_starting_empty(tasks, fake_api, start_worker,
                                                                                      projects):
    task_id = tasks.start("Anything", project_path="elsewhere")
    (projects / "elsewhere").rmdir()  # as on a worker on another machine: the folder is not there
    run_burst(start_worker)
    status = ended(tasks, task_id)
    assert status.status == "failed" and "does not exist on this worker's machine" in status.reason
    assert "git URL" in status.reason and not (projects / "elsewhere").exists() and fake_api.requests == []
