"""A task's git checkout with the real git binary in temporary folders: a repository of its own per task (its
branch kept in step in the owner's repository), checkpoints, rollback, merge, shadow repositories for plain folders,
clones of URLs, push, discard, cleanup, and checkouts an older TARS made as git worktrees. The owner's repository is
checked byte for byte (status, index file, refs, files) around every operation that must not touch it."""
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from core import git_workspace as gw
from core.exceptions import GitError, MergeBlocked, MergeConflict

OWNER = ("-c", "user.name=Owner", "-c", "user.email=owner@example.com", "-c", "init.defaultBranch=main")


pytestmark = pytest.mark.usefixtures("private_git")  # no git config of this machine or user is read


def git(cwd, *args, check=True) -> str:
    done = subprocess.run(["git", *OWNER, *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode:
        raise AssertionError(f"git {args} failed: {done.stderr}")
    return done.stdout.strip()


def files_of(folder: Path) -> dict[str, str]:
    """Every file under folder (outside .git) with its content."""
    found = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and ".git" not in relative.parts:
            found[str(relative)] = path.read_text()
    return found


def owner_state(repo: Path) -> dict:
    """What the owner sees: status, the index file's bytes, HEAD, their own refs (not tars/), and their files."""
    refs = [line for line in git(repo, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()
            if not line.startswith("refs/heads/tars/")]
    return {"status": git(repo, "--no-optional-locks", "status", "--porcelain=v1", "--untracked-files=all"),
            "index": (repo / ".git" / "index").read_bytes(), "refs": refs,
            "head": git(repo, "rev-parse", "--symbolic-full-name", "HEAD"), "files": files_of(repo)}


@pytest.fixture
def repo(tmp_path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "a.txt").write_text("alpha\n")
    (root / "b.txt").write_text("beta\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "start")
    return root


@pytest.fixture
def data(tmp_path) -> Path:
    return tmp_path / "data"


def make_dirty(repo: Path) -> None:
    """An owner in the middle of work: an unstaged edit, a staged new file, an untracked file."""
    (repo / "a.txt").write_text("alpha, edited by the owner\n")
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")
    (repo / "untracked.txt").write_text("untracked\n")


def write(checkout: gw.TaskCheckout, name: str, text: str) -> None:
    path = Path(checkout.path) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# --- a repository of its own per task, its branch in step in the owner's ------------------------------------

def test_two_tasks_run_side_by_side_on_a_dirty_repository_and_the_owner_sees_nothing(repo, data):
    (repo / "b.txt").write_text("beta, stashed by the owner\n")
    git(repo, "stash", "-q")
    make_dirty(repo)
    before = owner_state(repo)
    one = gw.prepare("aaa111", repo, data)
    two = gw.prepare("bbb222", repo, data)
    assert (one.mode, one.branch, one.start_branch) == ("worktree", "tars/aaa111", "main")
    assert one.path == str(data.resolve() / "worktrees" / "aaa111") and one.path != two.path
    assert one.base == two.base == git(repo, "rev-parse", "HEAD")
    # Each worktree starts from the commit, not from the owner's uncommitted state.
    assert files_of(Path(one.path)) == {"a.txt": "alpha\n", "b.txt": "beta\n"}
    write(one, "one.txt", "one\n")
    write(two, "two.txt", "two\n")
    assert gw.checkpoint(one, "wrote one") is not None
    assert gw.checkpoint(two, "wrote two") is not None
    assert owner_state(repo) == before
    assert "one.txt" not in files_of(Path(two.path)) and "two.txt" not in files_of(Path(one.path))
    assert git(repo, "log", "--format=%s", "tars/aaa111", "-1") == "tars(aaa111): wrote one"
    # Each is a repository of its own, not a worktree of the owner's, borrowing the owner's objects read-only; it
    # holds the owner's branches, not the other task's.
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    for task, other in ((one, "tars/bbb222"), (two, "tars/aaa111")):
        assert Path(task.worktree, ".git").is_dir() and task.isolated
        assert Path(task.worktree, ".git/objects/info/alternates").read_text().strip() == str(repo / ".git/objects")
        branches = git(task.path, "branch", "--format=%(refname:short)").split()
        assert task.branch in branches and "main" in branches and other not in branches
        assert git(task.path, "symbolic-ref", "--short", "HEAD") == task.branch
        assert not Path(task.worktree, ".git/hooks").exists()
        assert git(task.path, "stash", "list") == ""  # the owner's stash stays the owner's
    assert git(repo, "branch", "--list", "tars/*", "--format=%(refname:short)").split() == \
        ["tars/aaa111", "tars/bbb222"]


def test_the_owners_branch_follows_checkpoints_rollback_and_the_models_own_commits(repo, data):
    before = owner_state(repo)
    task = gw.prepare("f0110w", repo, data)
    assert git(repo, "rev-parse", "tars/f0110w") == task.base  # made at prepare, at the owner's HEAD
    write(task, "a.txt", "alpha v1\n")
    one = gw.checkpoint(task, "v1")
    assert git(repo, "rev-parse", "tars/f0110w") == one.sha
    write(task, "a.txt", "alpha v2\n")
    two = gw.checkpoint(task, "v2", tests_passed=True)
    assert git(repo, "rev-parse", "tars/f0110w") == two.sha
    assert git(repo, "log", "-1", "--format=%s", "tars/f0110w") == "tars(f0110w): v2 [tests pass]"
    gw.rollback(task, to=1)
    assert git(repo, "rev-parse", "tars/f0110w") == one.sha
    # The model commits on its branch itself: the owner's branch has it after the next checkpoint, even one that
    # finds nothing left to commit; its objects are copied into the owner's store.
    write(task, "model.txt", "by the model\n")
    git(task.path, "add", "model.txt")
    git(task.path, "commit", "-q", "-m", "the model's own commit")
    mine = git(task.path, "rev-parse", "HEAD")
    assert git(repo, "rev-parse", "tars/f0110w") == one.sha
    assert gw.checkpoint(task, "nothing new") is None
    assert git(repo, "rev-parse", "tars/f0110w") == mine
    assert git(repo, "show", "tars/f0110w:model.txt") == "by the model"
    assert [p.message for p in gw.checkpoints(task)] == ["v1", "the model's own commit"]
    # A commit since the last checkpoint reaches the owner's branch at the end (summary) and before a merge.
    write(task, "late.txt", "late\n")
    git(task.path, "add", "late.txt")
    git(task.path, "commit", "-q", "-m", "late")
    assert gw.summary(task)["commits"] == 3
    assert git(repo, "rev-parse", "tars/f0110w") == git(task.path, "rev-parse", "HEAD")
    assert git(repo, "fsck", "--no-dangling", "--no-progress") == ""
    # The owner checks the branch out to look at it: git will not move it under them, so checkpoints go on in the
    # task's repository and the branch catches up once the owner has switched away.
    git(repo, "switch", "-q", "tars/f0110w")
    write(task, "more.txt", "more\n")
    three = gw.checkpoint(task, "while the owner looks")
    assert git(repo, "rev-parse", "HEAD") == git(task.path, "rev-parse", "HEAD~1") != three.sha
    git(repo, "switch", "-q", "main")
    gw.checkpoint(task, "nothing new")
    assert git(repo, "rev-parse", "tars/f0110w") == three.sha
    after = owner_state(repo)  # (its index was rewritten by the owner's own switch)
    assert (after["status"], after["files"], after["head"]) == (before["status"], before["files"], before["head"])


def test_what_the_model_writes_in_its_repository_cannot_steer_tars_own_git(repo, data, tmp_path):
    """The task repository is the model's to write, its .git included, while TARS's checkpoints run git there outside
    the sandbox: a config naming a filter, an fsmonitor, an external diff or another work tree, a commondir leading
    to another repository's config, or other alternates are put back first, so nothing the model wrote runs."""
    task = gw.prepare("gvard1", repo, data)
    ran = tmp_path / "ran"
    git_dir = Path(task.worktree, ".git")
    pristine = (git_dir / "config").read_text()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("precious\n")
    (tmp_path / "more.conf").write_text(f"[diff]\n\texternal = touch {ran}\n")
    write(task, ".gitattributes", "* filter=evil\n")
    for key, value in (("filter.evil.clean", f"touch {ran}; cat"), ("core.fsmonitor", f"touch {ran}; echo"),
                       ("include.path", str(tmp_path / "more.conf"))):
        git(task.path, "config", key, value)
    write(task, "x.txt", "x\n")
    assert gw.checkpoint(task, "after the model's config").number == 1
    gw.summary(task)
    assert not ran.exists() and (git_dir / "config").read_text() == pristine
    # A commondir makes git read another folder's config; alternates would lend TARS's fetch other objects.
    hostile = tmp_path / "hostile"
    git(tmp_path, "init", "-q", "--bare", str(hostile))
    git(tmp_path, "--git-dir", str(hostile), "config", "core.fsmonitor", f"touch {ran}; echo")
    (git_dir / "commondir").write_text(str(hostile))
    (git_dir / "objects/info/alternates").write_text(f"{tmp_path}/stolen/objects\n")
    write(task, "y.txt", "y\n")
    assert gw.checkpoint(task, "after the model's commondir").number == 2
    assert not ran.exists() and not (git_dir / "commondir").exists()
    assert (git_dir / "objects/info/alternates").read_text().strip() == str(repo / ".git/objects")
    # Another work tree: a rollback cleans the task's tree, not that one.
    git(task.path, "config", "core.worktree", str(elsewhere))
    write(task, "z.txt", "z\n")
    gw.rollback(task, to=0)
    assert files_of(elsewhere) == {"precious.txt": "precious\n"} and not (Path(task.path) / "z.txt").exists()
    git(task.path, "config", "user.name", "The model")  # a harmless key stays
    write(task, "w.txt", "w\n")
    gw.checkpoint(task, "again")
    assert "The model" in (git_dir / "config").read_text() and not ran.exists()


def test_checkpoints_are_numbered_and_carry_the_tests_pass_marker(repo, data):
    task = gw.prepare("c0ffee", repo, data)
    assert gw.checkpoint(task, "nothing yet") is None
    write(task, "calc.py", "def add(a, b):\n    return a + b\n")
    first = gw.checkpoint(task, "Wrote   the calculator\nwith add")
    write(task, "test_calc.py", "from calc import add\n")
    second = gw.checkpoint(task, "Added tests", tests_passed=True)
    assert gw.checkpoint(task, "again") is None
    assert (first.number, first.message, first.tests_passed) == (1, "Wrote the calculator with add", False)
    assert (second.number, second.tests_passed) == (2, True)
    assert gw.checkpoints(task) == [dataclass_without_time(first, gw.checkpoints(task)[0]),
                                    dataclass_without_time(second, gw.checkpoints(task)[1])]
    assert git(task.path, "log", "-1", "--format=%s %an") == "tars(c0ffee): Added tests [tests pass] TARS"


def dataclass_without_time(made: gw.Checkpoint, listed: gw.Checkpoint) -> gw.Checkpoint:
    assert abs(made.committed_at - listed.committed_at) <= 30  # the commit's own time (wide: a loaded machine)
    return gw.Checkpoint(made.number, made.sha, made.message, made.tests_passed, listed.committed_at)


def test_rollback_restores_a_checkpoint_with_untracked_files_gone_and_the_owner_untouched(repo, data):
    make_dirty(repo)
    before = owner_state(repo)
    task = gw.prepare("ro11ba", repo, data)
    write(task, "a.txt", "alpha v1\n")
    gw.checkpoint(task, "v1")
    write(task, "new.txt", "new\n")
    os.remove(Path(task.path) / "b.txt")
    gw.checkpoint(task, "v2")
    write(task, "a.txt", "alpha uncommitted\n")
    write(task, "junk/untracked.txt", "junk\n")
    back = gw.rollback(task, to=1)
    assert back.number == 1 and back.message == "v1"
    assert files_of(Path(task.path)) == {"a.txt": "alpha v1\n", "b.txt": "beta\n"}
    assert not (Path(task.path) / "junk").exists()
    assert git(task.path, "status", "--porcelain") == ""
    assert [p.number for p in gw.checkpoints(task)] == [1]
    assert gw.rollback(task).number == 0  # the default: the one before the latest; 0 is the start
    assert files_of(Path(task.path)) == {"a.txt": "alpha\n", "b.txt": "beta\n"}
    assert gw.checkpoints(task) == []
    assert gw.describe(gw.summary(task)) == "Branch tars/ro11ba: no commits, nothing changed."
    with pytest.raises(GitError, match="has no checkpoints; there is no checkpoint 3"):
        gw.rollback(task, to=3)
    assert owner_state(repo) == before


def test_summary_lists_files_with_lines_and_the_last_test_result(repo, data):
    task = gw.prepare("5umma7", repo, data)
    write(task, "a.txt", "alpha\nmore\nlines\n")
    gw.checkpoint(task, "longer a")
    os.remove(Path(task.path) / "b.txt")
    write(task, "c.txt", "c\n")
    gw.checkpoint(task, "c instead of b", tests_passed=True)
    write(task, "d.txt", "uncommitted\n")
    report = gw.summary(task)
    assert (report["branch"], report["base"], report["commits"]) == ("tars/5umma7", task.base, 2)
    assert report["files"] == [{"path": "a.txt", "added": 2, "removed": 0},
                               {"path": "b.txt", "added": 0, "removed": 1},
                               {"path": "c.txt", "added": 1, "removed": 0}]
    assert "3 files changed, 3 insertions(+), 1 deletion(-)" in report["diffstat"]
    assert report["tests_passed"] is True and report["uncommitted"] is True


# --- merge --------------------------------------------------------------------------------------------------------

def test_merge_fast_forwards_into_the_owners_clean_checked_out_branch(repo, data):
    task = gw.prepare("ff0001", repo, data)
    write(task, "feature.py", "print('hi')\n")
    tip = gw.checkpoint(task, "feature").sha
    result = gw.merge(task)
    assert (result.kind, result.branch, result.commit, result.files, result.tree_updated) == \
        ("fast-forward", "main", tip, ["feature.py"], True)
    assert git(repo, "rev-parse", "main") == tip
    assert (repo / "feature.py").read_text() == "print('hi')\n"
    assert git(repo, "status", "--porcelain") == ""
    assert gw.merge(task).kind == "up-to-date"


def test_second_task_merges_with_a_merge_commit_and_the_owners_dirty_files_survive(repo, data):
    make_dirty(repo)
    one, two = gw.prepare("m00001", repo, data), gw.prepare("m00002", repo, data)
    write(one, "one.txt", "one\n")
    write(two, "two.txt", "two\n")
    gw.checkpoint(one, "one")
    gw.checkpoint(two, "two")
    before = owner_state(repo)
    assert gw.merge(one).kind == "fast-forward"
    result = gw.merge(two)
    assert result.kind == "merge" and result.files == ["two.txt"] and result.tree_updated
    parents = git(repo, "log", "-1", "--format=%P", "main").split()
    assert parents == [git(repo, "rev-parse", "tars/m00001"), git(repo, "rev-parse", "tars/m00002")]
    assert git(repo, "log", "-1", "--format=%s", "main") == "tars(m00002): merge tars/m00002 into main"
    after = owner_state(repo)
    assert after["files"] == {**before["files"], "one.txt": "one\n", "two.txt": "two\n"}
    assert after["status"] == before["status"]  # the same edit, staged file and untracked file, nothing else
    assert git(repo, "diff", "--cached", "--name-only") == "staged.txt"


def test_a_conflict_changes_nothing_and_names_the_files(repo, data):
    task = gw.prepare("c0nf11", repo, data)
    write(task, "a.txt", "alpha by the task\n")
    write(task, "b.txt", "beta by the task\n")
    write(task, "fine.txt", "no conflict\n")
    gw.checkpoint(task, "edits")
    (repo / "a.txt").write_text("alpha by the owner\n")
    (repo / "b.txt").write_text("beta by the owner\n")
    git(repo, "commit", "-q", "-am", "owner's edit")
    (repo / "scratch.txt").write_text("owner's scratch\n")
    before, task_tip = owner_state(repo), git(repo, "rev-parse", "tars/c0nf11")
    with pytest.raises(MergeConflict) as caught:
        gw.merge(task)
    assert caught.value.files == ["a.txt", "b.txt"]
    assert "conflicts with main in a.txt, b.txt; nothing was changed" in str(caught.value)
    assert owner_state(repo) == before and git(repo, "rev-parse", "tars/c0nf11") == task_tip
    assert files_of(Path(task.path))["a.txt"] == "alpha by the task\n"


@pytest.mark.parametrize("owner_change", ["unstaged edit", "staged edit", "untracked file in the way"])
def test_merge_is_refused_when_the_owners_uncommitted_changes_touch_its_files(repo, data, owner_change):
    task = gw.prepare("b10ck1", repo, data)
    write(task, "a.txt", "alpha by the task\n")
    write(task, "new.txt", "new by the task\n")
    gw.checkpoint(task, "edits")
    touched = "new.txt" if owner_change == "untracked file in the way" else "a.txt"
    (repo / touched).write_text("the owner's own words\n")
    if owner_change == "staged edit":
        git(repo, "add", "a.txt")
    before = owner_state(repo)
    with pytest.raises(MergeBlocked) as caught:
        gw.merge(task)
    assert caught.value.files == [touched]
    assert f"uncommitted changes to {touched}" in str(caught.value) and "commit or stash" in str(caught.value)
    assert owner_state(repo) == before


def test_merge_into_a_branch_not_checked_out_moves_only_the_ref(repo, data):
    task = gw.prepare("0ther1", repo, data)
    git(repo, "switch", "-q", "-c", "elsewhere")
    (repo / "a.txt").write_text("dirty on another branch\n")
    write(task, "feature.txt", "feature\n")
    tip = gw.checkpoint(task, "feature").sha
    before = owner_state(repo)
    result = gw.merge(task)
    assert (result.kind, result.tree_updated) == ("fast-forward", False)
    assert git(repo, "rev-parse", "main") == tip
    after = owner_state(repo)
    assert (after["status"], after["index"], after["files"], after["head"]) == \
        (before["status"], before["index"], before["files"], "refs/heads/elsewhere")


def test_merge_waits_for_the_owners_rebase_of_the_target_to_end(repo, data):
    (repo / "c.txt").write_text("c\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "second")
    task = gw.prepare("rebas1", repo, data)
    write(task, "x.txt", "x\n")
    gw.checkpoint(task, "x")
    git(repo, "rebase", "-q", "--exec", "false", "HEAD~1", check=False)  # stops half-way: HEAD detached
    before = owner_state(repo)
    with pytest.raises(GitError, match="main is being rebased in .*; finish or abort the rebase"):
        gw.merge(task)
    assert owner_state(repo) == before
    git(repo, "rebase", "--abort")


def test_a_task_started_on_a_detached_head_cannot_merge(repo, data):
    git(repo, "switch", "-q", "--detach", "HEAD")
    task = gw.prepare("de7ach", repo, data)
    assert task.start_branch is None
    write(task, "x.txt", "x\n")
    gw.checkpoint(task, "x")
    with pytest.raises(GitError, match="started from a detached HEAD .*its work is on branch tars/de7ach"):
        gw.merge(task)


# --- discard, subfolders, errors ----------------------------------------------------------------------------------

def test_discard_removes_the_worktree_the_branch_and_the_record(repo, data):
    make_dirty(repo)
    before = owner_state(repo)
    task = gw.prepare("d15ca7", repo, data)
    write(task, "x.txt", "x\n")
    gw.checkpoint(task, "x")
    write(task, "uncommitted.txt", "y\n")
    assert gw.find("d15ca7", data) == task
    assert "are gone" in gw.discard(task)
    assert not Path(task.worktree).exists()
    assert git(repo, "branch", "--list", "tars/*") == ""
    assert str(Path(task.worktree)) not in git(repo, "worktree", "list")
    assert owner_state(repo) == before
    with pytest.raises(GitError, match="Task d15ca7 has no checkout"):
        gw.find("d15ca7", data)


def test_a_tracked_subfolder_works_in_the_same_subfolder_of_the_worktree(repo, data, tmp_path):
    (repo / "app").mkdir()
    (repo / "app" / "main.py").write_text("print(1)\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "app")
    task = gw.prepare("5ubd1r", repo / "app", data)
    assert task.mode == "worktree" and task.path == os.path.join(task.worktree, "app")
    assert (Path(task.path) / "main.py").exists()
    (repo / "loose").mkdir()  # inside the repository but not part of it: shadowed
    assert gw.prepare("l0ose1", repo / "loose", data).mode == "shadow"


def test_expected_failures_are_sentences(repo, data, tmp_path):
    with pytest.raises(GitError, match=r"The project folder .*nowhere does not exist, so task t1 cannot start"):
        gw.prepare("t1", tmp_path / "nowhere", data)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(GitError, match="is not a folder"):
        gw.prepare("t1", tmp_path / "file.txt", data)
    with pytest.raises(GitError, match="cannot name a branch"):
        gw.prepare("../x", repo, data)
    with pytest.raises(GitError, match="is inside the project"):
        gw.prepare("t1", repo, repo / ".tars")
    (repo / "app").mkdir()
    (repo / "app" / "x.py").write_text("x\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "app")
    with pytest.raises(GitError, match="is inside the repository"):
        gw.prepare("t1", repo / "app", repo / "data")
    gw.prepare("twice1", repo, data)
    with pytest.raises(GitError, match="Branch tars/twice1 already exists in .*; a task id is used once"):
        gw.prepare("twice1", repo, tmp_path / "other-data")
    with pytest.raises(GitError, match="the folder .* does not exist"):
        gw.checkpoint(gw.TaskCheckout("gone", "worktree", str(repo), str(tmp_path / "gone"), str(tmp_path / "gone"),
                                      str(repo), "tars/gone", "0" * 40, "main", str(data)), "x")


def test_a_git_command_past_its_timeout_is_stopped(tmp_path):
    started = time.monotonic()
    with pytest.raises(GitError, match="Could not wait: git slow took longer than 0.5 seconds and was stopped"):
        gw._run(["-c", "alias.slow=!sleep 20", "slow"], cwd=str(tmp_path), what="wait", timeout=0.5)
    assert time.monotonic() - started < 5


# --- checkouts an older TARS recorded: git worktrees of the owner's repository --------------------------------

def older_checkout(repo: Path, data: Path, task_id: str) -> gw.TaskCheckout:
    """What an older TARS left: a linked `git worktree` on branch tars/<id> and a record without "isolated"."""
    folder = data.resolve() / "worktrees" / task_id
    folder.parent.mkdir(parents=True, exist_ok=True)
    git(repo, "worktree", "add", "-q", "-b", f"tars/{task_id}", str(folder), "HEAD")
    record = {"task_id": task_id, "mode": "worktree", "project": str(repo), "path": str(folder),
              "worktree": str(folder), "repo": str(repo), "branch": f"tars/{task_id}",
              "base": git(repo, "rev-parse", "HEAD"), "start_branch": "main", "data_dir": str(data.resolve()),
              "created_at": time.time()}
    (data / "checkouts").mkdir(parents=True, exist_ok=True)
    (data / "checkouts" / f"{task_id}.json").write_text(json.dumps(record))
    return gw.find(task_id, data)


def test_an_older_worktree_checkout_is_still_found_checkpointed_merged_and_discarded(repo, data):
    old = older_checkout(repo, data, "01dwt1")
    assert not old.isolated and gw.TaskCheckout.from_dict(old.to_dict()) == old
    write(old, "old.txt", "old\n")
    tip = gw.checkpoint(old, "from before the upgrade").sha
    assert git(repo, "rev-parse", "tars/01dwt1") == tip  # its branch is the owner's ref itself
    assert gw.merge(old).kind == "fast-forward" and (repo / "old.txt").read_text() == "old\n"
    gone = older_checkout(repo, data, "01dwt2")
    write(gone, "x.txt", "x\n")
    gw.checkpoint(gone, "x")
    assert "are gone" in gw.discard(gone)
    assert not Path(gone.worktree).exists() and str(gone.worktree) not in git(repo, "worktree", "list")
    assert git(repo, "branch", "--list", "tars/01dwt2") == ""


def test_cleanup_removes_an_older_worktree_checkout_and_prunes_it(repo, data):
    old = older_checkout(repo, data, "01dwt3")
    write(old, "kept.txt", "unmerged work\n")
    gw.checkpoint(old, "unmerged")
    new = gw.prepare("n3wwt1", repo, data)
    long_ago = time.time() - 30 * 86400
    for name in ("01dwt3", "n3wwt1"):
        os.utime(data / "checkouts" / f"{name}.json", (long_ago, long_ago))
    assert sorted(gw.cleanup(data, older_than_days=7)) == ["01dwt3", "n3wwt1"]
    assert not Path(old.worktree).exists() and not Path(new.worktree).exists()
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1  # pruned
    # The unmerged branch stays (no work lost); the untouched one was merged by definition, and goes.
    assert git(repo, "branch", "--list", "tars/*", "--format=%(refname:short)").split() == ["tars/01dwt3"]
    assert git(repo, "show", "tars/01dwt3:kept.txt") == "unmerged work"


# --- shadow mode: plain folders and repositories without commits ------------------------------------------------

def test_a_plain_folder_gets_checkpoints_and_rollback_with_nothing_inside_it(tmp_path, data):
    project = tmp_path / "plain"
    project.mkdir()
    (project / "notes.txt").write_text("notes\n")
    (project / "node_modules").mkdir()
    (project / "node_modules" / "big.js").write_text("//\n")
    original = files_of(project)
    task = gw.prepare("5had0w", project, data)
    assert (task.mode, task.path, task.start_branch) == ("shadow", str(project.resolve()), None)
    assert Path(task.repo).parent == data.resolve() / "shadow"
    write(task, "app.py", "v1\n")
    assert gw.checkpoint(task, "v1").number == 1
    write(task, "app.py", "v2\n")
    write(task, "extra.py", "extra\n")
    assert gw.checkpoint(task, "v2", tests_passed=True).number == 2
    write(task, "scratch.py", "untracked\n")
    assert gw.rollback(task, to=1).message == "v1"
    assert files_of(project) == {**original, "app.py": "v1\n"}
    assert gw.summary(task)["files"] == [{"path": "app.py", "added": 1, "removed": 0}]
    assert gw.describe(gw.summary(task)).startswith("Changed in place: 1 commit, 1 file changed (+1 -0), tests ")
    assert gw.merge(task).kind == "kept"
    with pytest.raises(GitError, match="is not a git repository, so task 5had0w has nothing to push"):
        gw.push(task)
    assert not (project / ".git").exists()
    gw.rollback(task, to=0)
    assert gw.describe(gw.summary(task)) == "Nothing changed in place: no checkpoints."  # no "roll back with" left
    assert files_of(project) == original
    assert "Put " in gw.discard(task)
    assert files_of(project) == original
    assert sorted(os.listdir(project)) == ["node_modules", "notes.txt"]


def test_two_shadow_tasks_on_one_folder_keep_separate_histories(tmp_path, data):
    project = tmp_path / "plain"
    project.mkdir()
    one = gw.prepare("5h0001", project, data)
    write(one, "one.txt", "1\n")
    gw.checkpoint(one, "one")
    two = gw.prepare("5h0002", project, data)
    assert one.repo == two.repo and one.base != two.base
    write(two, "two.txt", "2\n")
    gw.checkpoint(two, "two")
    assert [p.message for p in gw.checkpoints(one)] == ["one"]
    assert [p.message for p in gw.checkpoints(two)] == ["two"]


def test_a_repository_without_commits_is_shadowed_and_its_git_folder_untouched(tmp_path, data):
    project = tmp_path / "fresh"
    project.mkdir()
    git(project, "init", "-q")
    (project / "draft.txt").write_text("draft\n")
    git_files = sorted(str(p.relative_to(project)) for p in (project / ".git").rglob("*"))
    task = gw.prepare("emp7y1", project, data)
    assert task.mode == "shadow"
    write(task, "main.py", "print(1)\n")
    gw.checkpoint(task, "main")
    write(task, "later.py", "later\n")
    gw.rollback(task, to=1)
    assert files_of(project) == {"draft.txt": "draft\n", "main.py": "print(1)\n"}
    assert sorted(str(p.relative_to(project)) for p in (project / ".git").rglob("*")) == git_files
    assert git(project, "status", "--porcelain") == "?? draft.txt\n?? main.py".strip()


# --- clones of URLs and push --------------------------------------------------------------------------------------

@pytest.fixture
def remote(tmp_path) -> Path:
    """A bare repository with main at one commit, as a server would hold it."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "-q", str(bare), str(seed))
    (seed / "README.md").write_text("remote\n")
    git(seed, "add", ".")
    git(seed, "commit", "-q", "-m", "first")
    git(seed, "push", "-q", "origin", "main")
    return bare


def test_a_task_from_a_url_is_pushed_back_as_its_branch(remote, data, tmp_path):
    url = remote.as_uri()
    task = gw.prepare("ur1001", url, data)
    assert (task.mode, task.start_branch, task.project) == ("clone", "main", url)
    assert task.base == git(remote, "rev-parse", "main")
    assert Path(task.repo).parent == data.resolve() / "clones"
    assert files_of(Path(task.path)) == {"README.md": "remote\n"}
    write(task, "feature.txt", "feature\n")
    tip = gw.checkpoint(task, "feature").sha
    assert gw.push(task) == f"Pushed tars/ur1001 to {url}."
    assert git(remote, "rev-parse", "refs/heads/tars/ur1001") == tip
    with pytest.raises(GitError, match="push its branch tars/ur1001 instead of merging"):
        gw.merge(task)
    # The remote moves on; the next task is fetched from its new tip.
    seed = tmp_path / "seed"
    (seed / "README.md").write_text("remote, v2\n")
    git(seed, "commit", "-q", "-am", "second")
    git(seed, "push", "-q", "origin", "main")
    later = gw.prepare("ur1002", url, data)
    assert later.repo == task.repo and later.base == git(remote, "rev-parse", "main")
    assert (Path(later.path) / "README.md").read_text() == "remote, v2\n"


def test_a_push_that_would_rewrite_the_remote_branch_is_rejected(remote, data):
    task = gw.prepare("rej001", remote.as_uri(), data)
    write(task, "a.txt", "a\n")
    gw.checkpoint(task, "a")
    gw.push(task)
    pushed = git(remote, "rev-parse", "refs/heads/tars/rej001")
    gw.rollback(task, to=0)
    write(task, "b.txt", "b\n")
    gw.checkpoint(task, "b instead")
    with pytest.raises(GitError, match=r"rejected the push of tars/rej001: \[rejected\] \((non-fast-forward|fetch first)\)"):
        gw.push(task)
    assert git(remote, "rev-parse", "refs/heads/tars/rej001") == pushed


def test_a_missing_url_fails_in_one_sentence_and_leaves_no_half_clone(tmp_path, data):
    url = (tmp_path / "no-such-repo.git").as_uri()
    with pytest.raises(GitError, match=r"Could not clone file://.*no-such-repo.git: .*does not appear to be a git "
                                       r"repository"):
        gw.prepare("m1ss1n", url, data)
    assert list((data / "clones").iterdir()) == []
    with pytest.raises(GitError) as caught:
        gw.prepare("m1ss12", "https://someone:hunter2@127.0.0.1:9/x.git", data)
    assert "hunter2" not in str(caught.value) and "https://***@127.0.0.1:9/x.git" in str(caught.value)


def test_push_without_an_origin_says_so(repo, data):
    task = gw.prepare("n0rem0", repo, data)
    with pytest.raises(GitError, match="has no remote called origin"):
        gw.push(task)


# --- cleanup ------------------------------------------------------------------------------------------------------

def test_cleanup_removes_old_finished_checkouts_and_keeps_the_rest(repo, data):
    old, kept, recent, merged = (gw.prepare(name, repo, data) for name in ("o1d001", "keep01", "new001", "mrg001"))
    for task in (old, kept, recent, merged):
        write(task, f"{task.task_id}.txt", "x\n")
        gw.checkpoint(task, "work")
    gw.merge(merged)
    orphan = data / "worktrees" / "crash1"
    orphan.mkdir()
    long_ago = time.time() - 30 * 86400
    for name in ("o1d001", "keep01", "mrg001"):
        os.utime(data / "checkouts" / f"{name}.json", (long_ago, long_ago))
    os.utime(orphan, (long_ago, long_ago))
    removed = gw.cleanup(data, older_than_days=7, keep={"keep01"})
    assert sorted(removed) == ["crash1", "mrg001", "o1d001"]
    assert sorted(os.listdir(data / "worktrees")) == ["keep01", "new001"]
    assert not Path(old.worktree).exists() and Path(kept.worktree).exists()
    assert sorted(p.name for p in (data / "checkouts").iterdir()) == [
        f"{name}{suffix}" for name in ("keep01", "new001") for suffix in (".gitalternates", ".gitconfig", ".json")]
    # The unmerged branch stays in the owner's repository (no work lost); the merged one goes.
    assert git(repo, "branch", "--list", "tars/*", "--format=%(refname:short)").split() == \
        ["tars/keep01", "tars/new001", "tars/o1d001"]
    assert gw.cleanup(data, older_than_days=7, keep={"keep01"}) == []


def test_cleanup_of_shadow_and_clone_tasks_frees_only_what_is_tars_own(tmp_path, remote, data):
    project = tmp_path / "plain"
    project.mkdir()
    shadow = gw.prepare("5hcl01", project, data)
    write(shadow, "kept.txt", "the owner keeps this\n")
    gw.checkpoint(shadow, "kept")
    clone = gw.prepare("cl0n01", remote.as_uri(), data)
    long_ago = time.time() - 30 * 86400
    for name in ("5hcl01", "cl0n01"):
        os.utime(data / "checkouts" / f"{name}.json", (long_ago, long_ago))
    remote_objects = git(tmp_path, "--git-dir", str(remote), "count-objects", "-v")
    assert sorted(gw.cleanup(data, older_than_days=7)) == ["5hcl01", "cl0n01"]
    assert files_of(project) == {"kept.txt": "the owner keeps this\n"}  # the folder is the owner's: untouched
    assert git(tmp_path, "--git-dir", shadow.repo, "for-each-ref") == ""
    assert not Path(clone.worktree).exists() and git(tmp_path, "--git-dir", clone.repo, "branch", "--list") == ""
    # TARS's own clone cache is compacted (gc.auto is off for its calls): what it keeps ends up in a pack. (The
    # shadow repository's objects are all unreachable now: git keeps them loose for its two-week grace.)
    counts = dict(line.split(": ") for line in git(tmp_path, "--git-dir", clone.repo, "count-objects", "-v").splitlines())
    assert int(counts["packs"]) >= 1 and counts["count"] == "0", counts
    assert git(tmp_path, "--git-dir", str(remote), "count-objects", "-v") == remote_objects  # not the remote's
    with pytest.raises(GitError, match="cannot name a branch"):
        gw.find("../../etc/passwd", data)
