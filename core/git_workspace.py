"""Each task's own git checkout: a branch tars/<id>, checkpoints, rollback, merge back, push, discard.

Why: the model edits a copy, never the owner's working tree, so a failed task costs nothing, two tasks on one
repository run side by side, and the owner's uncommitted work is never touched. prepare() picks one of three modes:

- "worktree": the project is a git repository with at least one commit. The task gets a repository of its own in
  <data_dir>/worktrees/<id> (a shared clone of the owner's repository, see below), on branch tars/<id> at the
  owner's HEAD; merge() brings the work back. (The mode keeps its name from the `git worktree` an older TARS used;
  checkouts it recorded still work, see "Older checkouts".)
- "clone": the project is a git URL. A bare cache in <data_dir>/clones/ is fetched before each task, and the task's
  own repository is made from the cache the same way, starting at the remote's default branch; push() delivers the
  task's branch from the cache.
- "shadow": the project is a plain folder, or a repository with no commit yet (no history to branch from). The task
  works in place; its checkpoints go to a repository in <data_dir>/shadow/ whose work tree is the project, so
  nothing appears inside the project and rollback still works.

The task's repository and the owner's (worktree and clone modes):
- The task repository (`git clone --mirror --shared`, made non-bare) borrows the owner's objects read-only
  (objects/info/alternates) and writes its new ones in its own .git, so the sandbox (core/sandbox.py) can leave the
  owner's repository, or the clone cache, entirely read-only while the model's git works on its branch (commit,
  switch -c, stash, log, diff main). It holds the owner's refs as they were at prepare (branches, tags, origin/*;
  not other tasks' tars/* branches nor the owner's stash), no hooks (made from no template) and origin = the
  owner's repository, which it cannot write to.
- TARS keeps the branch tars/<id> of the owner's repository in step: created at prepare, then a forced fetch of
  that one ref from the task repository (_sync, which also copies the new objects into the owner's store) after
  every checkpoint and rollback, in summary() (the end of a task), and before merge, push and cleanup. So the
  owner sees the branch with `git branch`, and merge, summary and the dashboard's branch panel work there; the
  model's own commits reach it at the next sync.
- The task repository is the model's to write, its .git included, while TARS's own git calls there run outside the
  sandbox. So each of them names the git dir and work tree (a rewritten .git or core.worktree leads nowhere), and
  _guard() first puts back what git would follow elsewhere: a config key outside a short harmless list (which
  could name a filter, an fsmonitor or an include to run) restores the config written at prepare (its copy is in
  <data_dir>/checkouts/, out of the model's reach), a changed objects/info/alternates is restored, a commondir
  file goes, and a .git that is no longer a real folder fails the call.

Older checkouts: a checkout recorded by an older TARS (job.meta or a record file without "isolated") is a linked
`git worktree` of the owner's repository: its branch is the owner's ref itself (nothing to sync), and discard and
cleanup remove it with `git worktree remove` and prune.

Every call runs the real git binary with a timeout, TARS's own identity, the owner's hooks, fsmonitor and commit
signing off (a background worker can neither answer a pinentry nor should it run the owner's pre-commit), and no
optional locks (reading the owner's repository never rewrites its index). A failure is a GitError sentence carrying
git's stderr. These are TARS's own operations: they never go through the model's bash, so the destructive-command
gate does not apply to them.
"""
from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.defaults import (BRANCH_PREFIX, GIT_NETWORK_TIMEOUT_SECONDS, GIT_TIMEOUT_SECONDS, TESTS_PASS_MARKER,
                           WORKTREE_RETENTION_DAYS)
from core.exceptions import GitError, MergeBlocked, MergeConflict, NoRemote, NoSuchCheckpoint, PushRejected
from core.supervisor import run_in_session

log = logging.getLogger(__name__)

COMMIT_IDENTITY = {"GIT_AUTHOR_NAME": "TARS", "GIT_AUTHOR_EMAIL": "tars@localhost",
                   "GIT_COMMITTER_NAME": "TARS", "GIT_COMMITTER_EMAIL": "tars@localhost"}
"""Who TARS's commits are by: set for every call, so nothing depends on the machine's git config."""

WORKTREE, CLONE, SHADOW = "worktree", "clone", "shadow"

# Caches and build output never go into a checkpoint (the owner's repository is not told: this is our config only).
CHECKPOINT_IGNORE = Path(__file__).with_name("checkpoint.gitignore")
_IGNORED = [line.strip() for line in CHECKPOINT_IGNORE.read_text().splitlines()
            if line.strip() and not line.startswith("#")]
GENERATED_DIRS = frozenset(line.rstrip("/") for line in _IGNORED if line.endswith("/"))
"""Folder names that checkpoints never commit (from checkpoint.gitignore); nor are they 'files the task changed'."""
GENERATED_FILES = re.compile("|".join(fnmatch.translate(line) for line in _IGNORED if not line.endswith("/"))
                             or r"(?!)")  # no file lines: match nothing (an empty pattern would match every name)
"""File names that checkpoints never commit (the other lines of checkpoint.gitignore)."""
_CONFIG = ("-c", f"core.excludesFile={CHECKPOINT_IGNORE}", "-c", "core.hooksPath=/dev/null",
           "-c", "commit.gpgSign=false", "-c", "core.fsmonitor=false", "-c", "gc.auto=0",
           "-c", "maintenance.auto=false", "-c", "advice.detachedHead=false", "-c", "core.quotePath=false",
           "-c", "init.defaultBranch=main")
# Variables that would point git at another repository than the one we name (e.g. inherited from a hook).
_REPO_VARIABLES = frozenset({"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR",
                             "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE", "GIT_PREFIX"})
_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_URL = re.compile(r"^(?:(?:https?|ssh|git|file)://|[\w.-]+@[\w.-]+:(?!//))", re.IGNORECASE)
_CREDENTIALS = re.compile(r"(://)[^/@\s]+@")
_MESSAGE_CHARS = 200


# --- what the API hands out ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TaskCheckout:
    """Where one task works and how to reach its branch; to_dict() is JSON for job.meta, find() reloads it."""

    task_id: str
    mode: str                 # WORKTREE, CLONE or SHADOW
    project: str              # the folder or URL the owner named (a URL without credentials)
    path: str                 # where the model works (a worktree, a subfolder of one, or the project itself)
    worktree: str             # the git work tree holding path
    repo: str                 # where repository-level git runs: owner's top level, bare cache, or shadow git dir
    branch: str               # tars/<task-id>
    base: str                 # the commit the task started from (shadow: the baseline commit of the project)
    start_branch: str | None  # the branch it started from (None: a detached HEAD; shadow: None)
    data_dir: str
    created_at: float = field(default_factory=time.time)
    isolated: bool = False    # worktree is a repository of its own, synced into repo; False: a linked `git worktree`
    #                           of repo (recorded by an older TARS)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TaskCheckout:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


@dataclass(frozen=True)
class Checkpoint:
    """One commit on the task branch; number counts from 1 (oldest), 0 stands for the state before the task."""

    number: int
    sha: str
    message: str
    tests_passed: bool
    committed_at: int = 0


@dataclass(frozen=True)
class MergeResult:
    """What merge() did: kind is 'fast-forward', 'merge', 'up-to-date' or 'kept' (shadow mode)."""

    kind: str
    branch: str | None        # the branch merged into
    commit: str | None        # its tip afterwards
    files: list[str]          # files the merge changed on that branch
    tree_updated: bool        # the owner's checked-out copy of that branch was brought up to date
    message: str              # a sentence for the owner


# --- running git --------------------------------------------------------------------------------------------------

def _redact(text: str) -> str:
    """URLs lose their user:password@ part before they reach a message or a record."""
    return _CREDENTIALS.sub(r"\1***@", text)


def _git_env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in _REPO_VARIABLES}
    # No prompt can be answered in a worker: fail at once instead of waiting for the timeout.
    env.update(COMMIT_IDENTITY, GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", GIT_NO_REPLACE_OBJECTS="1",
               GIT_PAGER="cat", LC_ALL="C", LANGUAGE="C")
    env.update(extra or {})
    return env


def _detail(stderr: str, stdout: str) -> str:
    """git's own words on one line, without its hints."""
    lines = [line.strip() for line in (stderr or stdout).splitlines()]
    lines = [line for line in lines if line and not line.startswith("hint:")]
    text = "; ".join(lines) or "git gave no reason"
    return text if len(text) <= 600 else text[:600] + "…"


def _subcommand(args: list[str]) -> str:
    """The git command's name (worktree, push...), past global options such as -c and --git-dir."""
    position = 0
    while position < len(args) and args[position].startswith("-"):
        position += 2 if args[position] in ("-c", "--git-dir", "--work-tree", "-C") else 1
    return args[position] if position < len(args) else "git"


def _run(args: list[str], *, cwd: str, what: str, timeout: float = GIT_TIMEOUT_SECONDS,
         env: dict[str, str] | None = None, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    """Run git once; any exit code outside ok, a missing folder or a timeout becomes a GitError naming `what`."""
    if shutil.which("git") is None:
        raise GitError(f"Could not {what}: git is not installed (no 'git' on PATH).")
    if not os.path.isdir(cwd):
        raise GitError(f"Could not {what}: the folder {cwd} does not exist.")
    command = ["git", *_CONFIG, *args]
    try:  # its own session: ssh or a credential helper git started dies with it
        code, out, err = run_in_session(command, cwd=cwd, env=_git_env(env), timeout=timeout)
    except subprocess.TimeoutExpired:
        raise GitError(_redact(f"Could not {what}: git {_subcommand(args)} took longer than {timeout:g} seconds "
                               "and was stopped.")) from None
    stdout = out.decode("utf-8", "surrogateescape")
    stderr = err.decode("utf-8", "replace")
    if code not in ok:
        raise GitError(_redact(f"Could not {what}: {_detail(stderr, stdout)}."))
    return subprocess.CompletedProcess(command, code, stdout, stderr)


@dataclass(frozen=True)
class _Git:
    """git bound to one place: a folder (worktree, owner's tree, bare cache) or a shadow git dir + work tree + index."""

    cwd: str
    git_dir: str | None = None
    work_tree: str | None = None
    index: str | None = None

    def __call__(self, *args: str, what: str, **options) -> subprocess.CompletedProcess:
        place = ["--git-dir", self.git_dir, "--work-tree", self.work_tree] if self.git_dir else []
        env = {"GIT_INDEX_FILE": self.index} if self.index else None
        return _run([*place, *args], cwd=self.cwd, what=what, env=env, **options)

    def out(self, *args: str, what: str, **options) -> str:
        return self(*args, what=what, **options).stdout.strip()

    def has_ref(self, ref: str, what: str) -> bool:
        return self("rev-parse", "-q", "--verify", f"{ref}^{{commit}}", what=what, ok=(0, 1)).returncode == 0


def _task_git(checkout: TaskCheckout) -> _Git:
    """git in the task's work tree; a shadow task gets its own index, so two tasks never share one. A task repository
    is named outright (never found through its .git) after _guard() checked it."""
    if checkout.mode == SHADOW:
        return _Git(checkout.worktree, checkout.repo, checkout.worktree, _shadow_index(checkout.repo, checkout.task_id))
    if checkout.isolated:
        _guard(checkout)
        return _Git(checkout.worktree, os.path.join(checkout.worktree, ".git"), checkout.worktree)
    return _Git(checkout.worktree)


def _repo_git(checkout: TaskCheckout) -> _Git:
    return _task_git(checkout) if checkout.mode == SHADOW else _Git(checkout.repo)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextmanager
def _locked(data: Path, name: str) -> Iterator[None]:
    """One TARS process at a time changes a repository's worktrees and refs (a fetch and a worktree add would race)."""
    locks = data / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# --- records: find a task's checkout by its id --------------------------------------------------------------------

def _record(data_dir: str | Path, task_id: str) -> Path:
    return Path(data_dir) / "checkouts" / f"{task_id}.json"


def _save(checkout: TaskCheckout) -> None:
    path = _record(checkout.data_dir, checkout.task_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(checkout.to_dict(), indent=1))
    os.replace(temporary, path)


def _touch(checkout: TaskCheckout) -> None:
    """The record's mtime is the task's last activity: cleanup's retention counts from it."""
    try:
        os.utime(_record(checkout.data_dir, checkout.task_id))
    except OSError:
        pass


def find(task_id: str, data_dir: str | Path) -> TaskCheckout:
    """The checkout prepare() recorded for task_id (for the CLI and voice, which only know the id)."""
    _check_task_id(task_id)
    try:
        return TaskCheckout.from_dict(json.loads(_record(data_dir, task_id).read_text()))
    except FileNotFoundError:
        raise GitError(f"Task {task_id} has no checkout: it was never prepared, or it was discarded.") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise GitError(f"The checkout record of task {task_id} is unreadable: {exc}.") from None


# --- prepare ------------------------------------------------------------------------------------------------------

def is_git_url(project: str) -> bool:
    """https://, ssh://, git://, file:// or scp-like user@host:path: the project is a remote repository."""
    return bool(_URL.match(project.strip()))


def _check_task_id(task_id: str) -> None:
    if not _TASK_ID.fullmatch(task_id or ""):
        raise GitError(f"The task id {task_id!r} cannot name a branch: use letters, digits, '-' and '_'.")


def prepare(task_id: str, project: str | Path, data_dir: str | Path,
            fork_of: TaskCheckout | None = None) -> TaskCheckout:
    """Give the task its own place to work (see the module docstring for the three modes) and record it. fork_of:
    a plan's subtask starts from its parent task's branch as it stands now (see fork())."""
    _check_task_id(task_id)
    data = Path(data_dir).expanduser().resolve()
    data.mkdir(parents=True, exist_ok=True)
    if fork_of is not None:
        checkout = _prepare_fork(task_id, fork_of, data)
    elif isinstance(project, str) and is_git_url(project):
        checkout = _prepare_clone(task_id, project.strip(), data)
    else:
        folder = Path(project).expanduser()
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else "does not exist"
            raise GitError(f"The project folder {folder} {what}, so task {task_id} cannot start there.")
        folder = folder.resolve()
        if data == folder or folder in data.parents:
            raise GitError(f"TARS's data folder {data} is inside the project {folder}; move it out of the project.")
        found = _repository_of(folder)
        if found:
            checkout = _prepare_worktree(task_id, folder, found[0], found[1], data)
        else:
            checkout = _prepare_shadow(task_id, folder, data)
    _save(checkout)
    return checkout


def _repository_of(folder: Path) -> tuple[str, str] | None:
    """(top level, prefix) when folder is, or is tracked inside, a repository with a commit; None means shadow mode.

    A folder that is merely *inside* some repository (a dotfiles repo in ~) without being tracked there is not part
    of it: a worktree of that repository would not even contain the project's files.
    """
    git = _Git(str(folder))
    what = f"inspect the project folder {folder}"
    found = git("rev-parse", "--show-toplevel", "--show-prefix", what=what, ok=(0, 128))
    if found.returncode:
        return None
    top, prefix = (found.stdout.split("\n") + [""])[:2]
    if not git.has_ref("HEAD", what):
        return None  # no commit yet
    if prefix and git("rev-parse", "-q", "--verify", f"HEAD:{prefix.rstrip('/')}", what=what, ok=(0, 1)).returncode:
        return None  # an untracked folder inside someone's repository
    return top, prefix


def _make_task_repository(owner: _Git, task_id: str, target: Path, start: str, where: str, data: Path) -> str:
    """The task's own repository in target: the owner's (or the cache's) refs, its objects borrowed read-only, branch
    tars/<id> checked out at start; then the same branch is made in the owner's repository. A failure half-way
    leaves neither behind."""
    branch = BRANCH_PREFIX + task_id
    what = f"create the repository of task {task_id} from {where}"
    if owner.has_ref(f"refs/heads/{branch}", what):
        raise GitError(f"Branch {branch} already exists in {where}; a task id is used once, so TARS will not reuse it.")
    if target.exists():
        raise GitError(f"The checkout folder {target} of task {task_id} already exists.")
    target.parent.mkdir(parents=True, exist_ok=True)
    git_dir = target / ".git"
    try:
        # --mirror: every ref as it is (the owner's main stays main, a cache's origin/main stays origin/main);
        # --template=: no hooks, no info/.
        _run(["clone", "--quiet", "--mirror", "--shared", "--template=", owner.cwd, str(git_dir)],
             cwd=str(target.parent), what=what)
        git = _Git(str(target), str(git_dir), str(target))
        git("config", "core.bare", "false", what=what)
        git("config", "--unset", "remote.origin.mirror", what=what)  # a push must not try to mirror everything
        git("checkout", "--quiet", "--force", "--no-track", "-b", branch, start, what=what)
        listed = git.out("for-each-ref", "--format=%(refname)", f"refs/heads/{BRANCH_PREFIX}", "refs/stash",
                         what=what).splitlines()
        others = [ref.removeprefix("refs/heads/") for ref in listed
                  if ref.startswith("refs/heads/") and ref != f"refs/heads/{branch}"]
        if others:  # other tasks' branches: not this task's business
            git("branch", "--quiet", "-D", *others, what=what)
        if "refs/stash" in listed:  # the owner's stash: `git stash pop` in the task must not find it
            git("update-ref", "-d", "refs/stash", what=what)
        _pristine(data, task_id).parent.mkdir(parents=True, exist_ok=True)
        _pristine(data, task_id).write_bytes((git_dir / "config").read_bytes())
        _pristine(data, task_id, "alternates").write_bytes((git_dir / "objects" / "info" / "alternates").read_bytes())
        owner("update-ref", "-m", f"tars: task {task_id} started", f"refs/heads/{branch}", start, "", what=what)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        _forget_pristine(data, task_id)
        raise
    return branch


def _prepare_worktree(task_id: str, folder: Path, top: str, prefix: str, data: Path) -> TaskCheckout:
    if Path(top) == data or Path(top) in data.parents:  # its checkouts would show up in the owner's git status
        raise GitError(f"TARS's data folder {data} is inside the repository {top}; move it out of the repository.")
    git = _Git(top)
    what = f"read the current branch of {top}"
    head = git.out("symbolic-ref", "-q", "HEAD", what=what, ok=(0, 1))
    base = git.out("rev-parse", "--verify", "HEAD^{commit}", what=what)
    target = data / "worktrees" / task_id
    with _locked(data, _digest(top)):
        branch = _make_task_repository(git, task_id, target, base, top, data)
    return TaskCheckout(task_id=task_id, mode=WORKTREE, project=str(folder), path=str(target / prefix).rstrip("/"),
                        worktree=str(target), repo=top, branch=branch, base=base,
                        start_branch=head.removeprefix("refs/heads/") or None, data_dir=str(data), isolated=True)


def _repository_lock(checkout: TaskCheckout) -> str:
    """The name of the lock prepare() takes for the repository a checkout's branches live in."""
    return Path(checkout.repo).name if checkout.mode == CLONE else _digest(checkout.repo)


def _prepare_fork(task_id: str, parent: TaskCheckout, data: Path) -> TaskCheckout:
    """A subtask's repository, made like its parent's from the owner's repository (or the cache), on a branch
    tars/<id> that starts at the parent's branch tip; the parent's branch is its start branch."""
    if parent.mode == SHADOW or not parent.isolated:
        raise GitError(f"Task {parent.task_id} works in place in {parent.project} (not a git repository with a "
                       "commit), so its plan's subtasks cannot have branches of their own.")
    _sync(parent)
    owner = _Git(parent.repo)
    start = owner.out("rev-parse", "--verify", f"refs/heads/{parent.branch}^{{commit}}",
                      what=f"read branch {parent.branch} of task {parent.task_id}")
    target = data / "worktrees" / task_id
    with _locked(data, _repository_lock(parent)):
        branch = _make_task_repository(owner, task_id, target, start, _redact(parent.project), data)
    prefix = os.path.relpath(parent.path, parent.worktree)
    return TaskCheckout(task_id=task_id, mode=parent.mode, project=parent.project,
                        path=str(target) if prefix == "." else str(target / prefix), worktree=str(target),
                        repo=parent.repo, branch=branch, base=start, start_branch=parent.branch, data_dir=str(data),
                        isolated=True)


def _prepare_clone(task_id: str, url: str, data: Path) -> TaskCheckout:
    shown = _redact(url)
    cache = data / "clones" / f"{_digest(url)}.git"
    with _locked(data, cache.name):
        if not cache.exists():
            _create_cache(url, cache)
        git = _Git(str(cache))
        git("fetch", "--prune", "--quiet", "origin", what=f"fetch {shown}", timeout=GIT_NETWORK_TIMEOUT_SECONDS)
        git("remote", "set-head", "origin", "--auto", what=f"find the default branch of {shown}",
            timeout=GIT_NETWORK_TIMEOUT_SECONDS)
        default = git.out("symbolic-ref", "refs/remotes/origin/HEAD", what=f"find the default branch of {shown}")
        base = git.out("rev-parse", "--verify", f"{default}^{{commit}}", what=f"read the default branch of {shown}")
        target = data / "worktrees" / task_id
        branch = _make_task_repository(git, task_id, target, base, shown, data)
    return TaskCheckout(task_id=task_id, mode=CLONE, project=shown, path=str(target), worktree=str(target),
                        repo=str(cache), branch=branch, base=base,
                        start_branch=default.removeprefix("refs/remotes/origin/"), data_dir=str(data), isolated=True)


# --- the task repository: kept harmless for TARS's own git, and in step with the owner's branch ------------------

_HARMLESS_CONFIG = re.compile(r"core\.(repositoryformatversion|filemode|logallrefupdates|symlinks|ignorecase|"
                              r"precomposeunicode|autocrlf|eol|safecrlf)|extensions\.objectformat|"
                              r"(remote|branch)\.[^\n]*\.(url|fetch|remote|merge|rebase)|user\.(name|email)|"
                              r"init\.defaultbranch|advice\.[a-z]+|color\.[a-z.]+")
"""Config keys of a task repository that make git run nothing and look nowhere else (core.bare must stay false)."""


def _pristine(data: str | Path, task_id: str, name: str = "config") -> Path:
    """The task repository's config (or objects/info/alternates) as prepare() left it: kept beside the record, out
    of the model's reach."""
    return Path(data) / "checkouts" / f"{task_id}.git{name}"


def _forget_pristine(data: str | Path, task_id: str) -> None:
    for name in ("config", "alternates"):
        _pristine(data, task_id, name).unlink(missing_ok=True)


def _open_dir(name: str, dir_fd: int | None, what: str) -> int:
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError as exc:
        raise GitError(f"Could not {what}: {name} is not a folder any more ({exc.strerror}).") from None


def _read_at(name: str, dir_fd: int) -> bytes | None:
    """A regular file's bytes (None when missing); a symbolic link or anything else reads as b"\0", never equal."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError:
        return b"\0"
    with os.fdopen(fd, "rb") as handle:
        return handle.read(1 << 20) if stat.S_ISREG(os.fstat(fd).st_mode) else b"\0"


def _write_at(name: str, dir_fd: int, data: bytes) -> None:
    """Replace name in the folder dir_fd (a link there is replaced, never followed)."""
    temporary = f".{name}.tars-{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def _harmless(config: bytes, data: str, task_id: str) -> bool:
    """Does a task repository's config (a changed one) hold only _HARMLESS_CONFIG keys, core.bare false aside?"""
    check = _pristine(data, task_id, "check")
    check.write_bytes(config)
    try:
        read = _run(["config", "--file", str(check), "--null", "--list"], cwd=str(check.parent),
                    what="read the task repository's config", ok=(0, 1, 3, 128))
    finally:
        check.unlink(missing_ok=True)
    listed = read.stdout if read.returncode == 0 else ""
    for entry in filter(None, listed.split("\0")):
        key, _, value = entry.partition("\n")
        if key == "core.bare" and value.strip().lower() in ("false", "no", "off", "0"):
            continue
        if not _HARMLESS_CONFIG.fullmatch(key):
            return False
    return bool(listed)


def _guard(checkout: TaskCheckout) -> None:
    """Before TARS's own git runs in a task repository (outside the sandbox): put back whatever the model changed
    there that git would follow out of it (see the module docstring)."""
    what = f"use the repository of task {checkout.task_id}"
    folder = _open_dir(checkout.worktree, None, what)
    try:
        git_dir = _open_dir(".git", folder, what)
    finally:
        os.close(folder)
    try:
        try:
            os.unlink("commondir", dir_fd=git_dir)  # would make git read another folder's config and refs
            log.warning("[task %s] removed a commondir file from its repository", checkout.task_id)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise GitError(f"Could not {what}: its .git/commondir cannot be removed ({exc.strerror}).") from None
        config, pristine = _read_at("config", git_dir), _pristine(checkout.data_dir, checkout.task_id).read_bytes()
        if config != pristine and not (config and config != b"\0" and
                                       _harmless(config, checkout.data_dir, checkout.task_id)):
            log.warning("[task %s] put back its repository's config (the model changed it)", checkout.task_id)
            _write_at("config", git_dir, pristine)
        objects = _open_dir("objects", git_dir, what)
        try:
            info = _open_dir("info", objects, what)
            try:
                wanted = _pristine(checkout.data_dir, checkout.task_id, "alternates").read_bytes()
                if _read_at("alternates", info) != wanted:
                    log.warning("[task %s] put back its repository's alternates", checkout.task_id)
                    _write_at("alternates", info, wanted)
            finally:
                os.close(info)
        finally:
            os.close(objects)
    finally:
        os.close(git_dir)


def follow(checkout: TaskCheckout) -> None:
    """Bring the owner's branch tars/<id> in step with the task's now (see checkpoint(sync=False))."""
    _sync_or_warn(checkout)


def _sync_or_warn(checkout: TaskCheckout) -> None:
    """_sync where the task's own work is saved all the same (a checkpoint, the summary): a refusal, such as the owner
    having checked the branch out (git will not move a checked-out branch), is logged and the next sync catches up."""
    try:
        _sync(checkout)
    except GitError as exc:
        log.warning("[task %s] %s", checkout.task_id, exc)


def _sync(checkout: TaskCheckout) -> None:
    """Bring the owner's branch tars/<id> (or the cache's) to the task repository's: a forced fetch of that one ref,
    which copies the new objects into the owner's store. Nothing to do for shadow mode and older worktrees."""
    if checkout.mode == SHADOW or not checkout.isolated:
        return
    task = _task_git(checkout)  # guarded: its config and alternates are ours again
    what = f"bring branch {checkout.branch} of task {checkout.task_id} into {_redact(checkout.project)}"
    ref = f"refs/heads/{checkout.branch}"
    owner = _Git(checkout.repo)
    tip = task.out("rev-parse", "--verify", f"{ref}^{{commit}}", what=what)
    if owner.out("rev-parse", "-q", "--verify", ref, what=what, ok=(0, 1)) == tip:
        return
    owner("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules", task.git_dir,
          f"+{ref}:{ref}", what=what)


@contextmanager
def _built_aside(target: Path, what: str) -> Iterator[_Git]:
    """git in a new bare repository made under a temporary name beside target and renamed to target once the
    caller's set-up succeeded: a failure half-way (a clone that cannot fetch) leaves nothing behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.with_name(f"{target.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    try:
        _run(["init", "--quiet", "--bare", str(building)], cwd=str(target.parent), what=what)
        yield _Git(str(building))
        os.rename(building, target)
    finally:
        shutil.rmtree(building, ignore_errors=True)


def _create_cache(url: str, cache: Path) -> None:
    """A bare repository with origin = url, fetched once."""
    what = f"clone {_redact(url)}"
    with _built_aside(cache, what) as git:
        git("remote", "add", "origin", url, what=what)
        git("fetch", "--quiet", "origin", what=what, timeout=GIT_NETWORK_TIMEOUT_SECONDS)


def _shadow_index(git_dir: str, task_id: str) -> str:
    return os.path.join(git_dir, f"tars-index-{task_id}")


def _prepare_shadow(task_id: str, folder: Path, data: Path) -> TaskCheckout:
    git_dir = data / "shadow" / f"{_digest(str(folder))}.git"
    with _locked(data, git_dir.name):
        if not git_dir.exists():
            _create_shadow(git_dir, folder)
    branch = BRANCH_PREFIX + task_id
    index = _shadow_index(str(git_dir), task_id)
    git = _Git(str(folder), str(git_dir), str(folder), index)
    what = f"take the baseline of {folder} for task {task_id}"
    if git.has_ref(f"refs/heads/{branch}", what):
        raise GitError(f"Task {task_id} already has a shadow branch for {folder}; a task id is used once.")
    Path(index).unlink(missing_ok=True)
    tree = _stage_all(git, what)
    base = git.out("commit-tree", tree, "-m", f"tars({task_id}): the project before the task", what=what)
    git("update-ref", "-m", "tars: baseline", f"refs/heads/{branch}", base, "", what=what)
    return TaskCheckout(task_id=task_id, mode=SHADOW, project=str(folder), path=str(folder), worktree=str(folder),
                        repo=str(git_dir), branch=branch, base=base, start_branch=None, data_dir=str(data))


def _create_shadow(git_dir: Path, folder: Path) -> None:
    what = f"create the shadow repository for {folder}"
    with _built_aside(git_dir, what) as git:
        git("config", "core.bare", "false", what=what)
        git("config", "tars.project", str(folder), what=what)  # which folder this shadows, for a person looking


# --- checkpoints and rollback -------------------------------------------------------------------------------------

def _stage_all(git: _Git, what: str) -> str:
    """Stage everything in the task's work tree (its own index, never the owner's) and return the tree."""
    git("add", "-A", "--", ".", what=what)
    return git.out("write-tree", what=what)


def _subject(task_id: str, message: str, tests_passed: bool) -> str:
    sentence = " ".join(message.split()) or "checkpoint"
    if len(sentence) > _MESSAGE_CHARS:
        sentence = sentence[:_MESSAGE_CHARS - 1] + "…"
    return f"tars({task_id}): {sentence}" + (TESTS_PASS_MARKER if tests_passed else "")


def _parse_subject(task_id: str, subject: str) -> tuple[str, bool]:
    passed = subject.endswith(TESTS_PASS_MARKER)
    if passed:
        subject = subject[:-len(TESTS_PASS_MARKER)]
    return subject.removeprefix(f"tars({task_id}): "), passed


def checkpoint(checkout: TaskCheckout, message: str, tests_passed: bool = False, *,
               sync: bool = True) -> Checkpoint | None:
    """Commit everything the task changed since the last checkpoint; None when nothing changed (with tests_passed,
    an unchanged latest checkpoint is marked as passing instead, and returned). Either way the owner's branch then
    follows the task's (the model's own commits included); sync=False leaves that to a later follow() (the worker
    does it beside the loop: the fetch costs about as much as the checkpoint itself)."""
    point = _checkpoint(checkout, message, tests_passed)
    if sync:
        _sync_or_warn(checkout)
    return point


def _checkpoint(checkout: TaskCheckout, message: str, tests_passed: bool) -> Checkpoint | None:
    git = _task_git(checkout)
    what = f"save a checkpoint of task {checkout.task_id}"
    tree = _stage_all(git, what)
    ref = f"refs/heads/{checkout.branch}"
    tip, tip_tree = git.out("rev-parse", f"{ref}^{{commit}}", f"{ref}^{{tree}}", what=what).split()  # one process
    if tree == tip_tree:
        return _mark_passed(checkout, git, tip, what) if tests_passed else None
    subject = _subject(checkout.task_id, message, tests_passed)
    sha = git.out("commit-tree", tree, "-p", tip, "-m", subject, what=what)
    git("update-ref", "-m", "tars: checkpoint", f"refs/heads/{checkout.branch}", sha, tip, what=what)
    _touch(checkout)
    number = int(git.out("rev-list", "--count", "--first-parent", f"{checkout.base}..{sha}", what=what))
    sentence, passed = _parse_subject(checkout.task_id, subject)
    return Checkpoint(number=number, sha=sha, message=sentence, tests_passed=passed, committed_at=int(time.time()))


def _mark_passed(checkout: TaskCheckout, git: _Git, tip: str, what: str) -> Checkpoint | None:
    """The tests now pass on the latest checkpoint's files: give it the marker (a new commit with the same tree and
    parents, replacing it on the task branch). Only TARS's own checkpoints are reworded, never the model's commits."""
    if tip == checkout.base:
        return None
    subject = git.out("log", "-1", "--format=%s", tip, what=what)
    if not subject.startswith(f"tars({checkout.task_id}): ") or subject.endswith(TESTS_PASS_MARKER):
        return None
    parents = git.out("rev-parse", f"{tip}^@", what=what).split()
    sha = git.out("commit-tree", f"{tip}^{{tree}}", *[arg for p in parents for arg in ("-p", p)],
                  "-m", subject + TESTS_PASS_MARKER, what=what)
    git("update-ref", "-m", "tars: tests pass", f"refs/heads/{checkout.branch}", sha, tip, what=what)
    _touch(checkout)
    number = int(git.out("rev-list", "--count", "--first-parent", f"{checkout.base}..{sha}", what=what))
    sentence, _ = _parse_subject(checkout.task_id, subject)
    return Checkpoint(number=number, sha=sha, message=sentence, tests_passed=True, committed_at=int(time.time()))


def checkpoints(checkout: TaskCheckout) -> list[Checkpoint]:
    """The task branch's commits since it started, numbered 1..N oldest first (commits the model made count too)."""
    git = _task_git(checkout)
    what = f"list the checkpoints of task {checkout.task_id}"
    listing = git.out("log", "--first-parent", "--reverse", "--format=%H%x1f%ct%x1f%s%x1e",
                      f"{checkout.base}..refs/heads/{checkout.branch}", what=what)
    points = []
    for number, entry in enumerate(filter(None, (e.strip() for e in listing.split("\x1e"))), 1):
        sha, stamp, subject = entry.split("\x1f", 2)
        sentence, passed = _parse_subject(checkout.task_id, subject)
        points.append(Checkpoint(number=number, sha=sha, message=sentence, tests_passed=passed,
                                 committed_at=int(stamp)))
    return points


def changed_files(checkout: TaskCheckout) -> list[str]:
    """The files that differ now from the task's start, committed or not (whoever wrote them: the editor, a command,
    the model's own commits; deleted ones too), relative to where the task works (checkout.path)."""
    git = _task_git(checkout)
    what = f"list the files task {checkout.task_id} changed"
    _stage_all(git, what)
    listed = git("diff", "--cached", "--no-renames", "--name-only", "-z", checkout.base, what=what).stdout
    prefix = os.path.relpath(checkout.path, checkout.worktree)
    names = [name for name in listed.split("\0") if name]
    if prefix == ".":
        return names
    return [name[len(prefix) + 1:] for name in names if name.startswith(prefix + "/")]


def _restore(checkout: TaskCheckout, sha: str, what: str) -> None:
    """Make the task's work tree, index and branch exactly sha: files changed, created (untracked too, but not
    ignored ones) or deleted since come back as they were there."""
    git = _task_git(checkout)
    _stage_all(git, what)  # files created since become tracked, so read-tree removes them
    git("read-tree", "--reset", "-u", sha, what=what)
    git("clean", "-f", "-d", "-q", what=what)
    git("update-ref", "-m", "tars: rollback", f"refs/heads/{checkout.branch}", sha, what=what)


def rollback(checkout: TaskCheckout, to: int | None = None) -> Checkpoint:
    """Reset the task (hard) to checkpoint `to`; 0 is the state before the task, the default is the one before the
    latest. Uncommitted changes go too. Never touches the owner's tree (shadow mode: the project is the task's tree)."""
    points = checkpoints(checkout)
    if to is None:
        to = max(len(points) - 1, 0)
    if not 0 <= to <= len(points):
        have = f"checkpoints 1 to {len(points)}" if points else "no checkpoints"
        raise NoSuchCheckpoint(f"Task {checkout.task_id} has {have}; there is no checkpoint {to} to roll back to.")
    target = points[to - 1] if to else Checkpoint(0, checkout.base, "the state before the task", False)
    _restore(checkout, target.sha, f"roll task {checkout.task_id} back to checkpoint {to}")
    _sync(checkout)
    _touch(checkout)
    return target


# --- summary ------------------------------------------------------------------------------------------------------

def summary(checkout: TaskCheckout) -> dict:
    """What the task changed from its start to its latest checkpoint, for the owner and the final report (the end of
    a task: the owner's branch is brought in step first)."""
    _sync_or_warn(checkout)
    git = _task_git(checkout)
    what = f"summarise task {checkout.task_id}"
    ref = f"refs/heads/{checkout.branch}"
    points = checkpoints(checkout)
    files = []
    numstat = git.out("diff", "--no-ext-diff", "--no-textconv", "--numstat", "-z", "--no-renames", checkout.base, ref,
                      what=what)
    for entry in filter(None, numstat.split("\0")):
        added, removed, path = entry.split("\t", 2)
        files.append({"path": path, "added": None if added == "-" else int(added),
                      "removed": None if removed == "-" else int(removed)})
    tree = _stage_all(git, what)
    return {
        "task_id": checkout.task_id, "mode": checkout.mode, "path": checkout.path,
        "branch": checkout.branch, "base": checkout.base, "start_branch": checkout.start_branch,
        "commits": len(points), "files": files,
        "diffstat": git("diff", "--no-ext-diff", "--no-textconv", "--stat=100", "--no-renames", checkout.base, ref,
                        what=what).stdout.rstrip(),
        "tests_passed": bool(points) and points[-1].tests_passed,
        "uncommitted": tree != git.out("rev-parse", f"{ref}^{{tree}}", what=what),
    }


def unverified(info: dict) -> dict:
    """summary() for a report made without the worker's test run at the end: an unmarked latest checkpoint means
    'not known' (None), not 'tests failing'; only a marked one says the tests pass."""
    return {**info, "tests_passed": info["tests_passed"] or None}


def describe(info: dict) -> str:
    """summary() (plus the worker's 'delivery' sentence, if any) as one or two sentences for the owner."""
    files = info.get("files") or []
    added = sum(f.get("added") or 0 for f in files)
    removed = sum(f.get("removed") or 0 for f in files)
    commits = info.get("commits", 0)
    counts = (f"{commits} commit{'s' if commits != 1 else ''}, {len(files)} file{'s' if len(files) != 1 else ''} "
              f"changed (+{added} -{removed})")
    tests = {True: "tests pass", False: "tests failing", None: "no tests run"}[info.get("tests_passed")]
    if not commits and not files:  # nothing done, or everything rolled back
        sentence = "Nothing changed in place: no checkpoints." if info.get("mode") == SHADOW \
            else f"Branch {info.get('branch')}: no commits, nothing changed."
    elif info.get("mode") == SHADOW:
        sentence = f"Changed in place: {counts}, {tests}; roll back with: python main_tars.py task rollback " \
                   f"{info.get('task_id')} --to 0."
    else:
        sentence = f"Branch {info.get('branch')}: {counts}, {tests}."
    return f"{sentence} {info['delivery']}" if info.get("delivery") else sentence


# --- merge --------------------------------------------------------------------------------------------------------

def _worktrees(git: _Git, what: str) -> list[dict[str, str]]:
    """`git worktree list --porcelain -z` as dicts (keys: worktree, HEAD, branch, bare, detached, prunable...)."""
    entries, current = [], {}
    for item in git("worktree", "list", "--porcelain", "-z", what=what).stdout.split("\0"):
        if not item:
            if current:
                entries.append(current)
            current = {}
            continue
        key, _, value = item.partition(" ")
        current[key] = value
    return entries


def _dirty_paths(owner: _Git, what: str) -> set[str]:
    """Every path with uncommitted changes in a tree: staged, unstaged or untracked (both names of a rename)."""
    items = owner("status", "--porcelain=v1", "-z", "--untracked-files=all", what=what).stdout.split("\0")
    paths, position = set(), 0
    while position < len(items):
        item = items[position]
        position += 1
        if len(item) < 4:
            continue
        paths.add(item[3:])
        if "R" in item[:2] or "C" in item[:2]:
            paths.add(items[position])
            position += 1
    return paths


def _merge_tree(git: _Git, ours: str, theirs: str, what: str) -> tuple[str, list[str]]:
    """(the merged tree, the conflicting files) of two commits, built without touching any tree (git merge-tree
    --write-tree); on a conflict the tree holds the files with git's conflict markers."""
    merged = git("merge-tree", "--write-tree", "--name-only", "-z", ours, theirs, what=what, ok=(0, 1, 129))
    if merged.returncode == 129:
        version = git.out("version", what=what)
        raise GitError(f"Could not {what}: merging needs git 2.38 or newer (merge-tree --write-tree); this is {version}.")
    fields = merged.stdout.split("\0")
    files = []
    if merged.returncode == 1:
        for name in fields[1:]:
            if not name:
                break
            files.append(name)
    return fields[0], files


def _merge_commit(checkout: TaskCheckout, git: _Git, target_tip: str, task_tip: str, target: str, what: str,
                  message: str | None = None) -> str:
    """A merge commit of the task into target, built without touching any tree; MergeConflict on a conflict."""
    tree, files = _merge_tree(git, target_tip, task_tip, what)
    if files:
        raise MergeConflict(f"Task {checkout.task_id}'s branch {checkout.branch} conflicts with {target} in "
                            f"{', '.join(files)}; nothing was changed.", files)
    message = message or f"tars({checkout.task_id}): merge {checkout.branch} into {target}"
    return git.out("commit-tree", tree, "-p", target_tip, "-p", task_tip, "-m", message, what=what)


def _tip(checkout: TaskCheckout, what: str) -> str:
    """The tip of a task's branch as the owner's repository (or the cache) has it, brought in step first."""
    _sync(checkout)
    return _Git(checkout.repo).out("rev-parse", "--verify", f"refs/heads/{checkout.branch}^{{commit}}", what=what)


def _advance(target: TaskCheckout, git: _Git, old: str, new: str, what: str) -> None:
    """Move target's task branch from old to new with its work tree and index (nobody works in it meanwhile), then
    bring the owner's branch in step."""
    git("read-tree", "--reset", "-u", new, what=what)
    git("update-ref", "-m", "tars: merge", f"refs/heads/{target.branch}", new, old, what=what)
    _touch(target)
    _sync(target)


def integrate(target: TaskCheckout, source: TaskCheckout, message: str) -> MergeResult:
    """Merge a plan's subtask (source) into its parent's branch (target) with a merge commit (never a fast-forward
    nor a force), in the parent's own repository, whose work tree follows. The caller holds the plan's lock.
    MergeConflict (nothing changed) when the two conflict."""
    what = f"merge task {source.task_id} into task {target.task_id}'s branch {target.branch}"
    theirs = _tip(source, what)  # now in the owner's store, which the parent's repository borrows from
    git = _task_git(target)
    ours = git.out("rev-parse", "--verify", f"refs/heads/{target.branch}^{{commit}}", what=what)
    if git("merge-base", "--is-ancestor", theirs, ours, what=what, ok=(0, 1)).returncode == 0:
        return MergeResult("up-to-date", target.branch, ours, [], False,
                           f"{target.branch} already has all of task {source.task_id}'s work.")
    new = _merge_commit(source, git, ours, theirs, target.branch, what,
                        f"tars({target.task_id}): {message}")
    files = [f for f in git.out("diff", "--name-only", "-z", "--no-renames", ours, new, what=what).split("\0") if f]
    _advance(target, git, ours, new, what)
    return MergeResult("merge", target.branch, new, files, False,
                       f"Merged task {source.task_id} into {target.branch} ({len(files)} "
                       f"file{'s' if len(files) != 1 else ''}).")


def begin_merge(checkout: TaskCheckout, other: TaskCheckout) -> list[str]:
    """Start an integration subtask: commit the merge of other's branch into this task's branch with git's conflict
    markers left in the conflicting files (returned), for the model to resolve; both branches are its parents."""
    what = f"merge task {other.task_id} into task {checkout.task_id} to resolve its conflicts"
    theirs = _tip(other, what)
    git = _task_git(checkout)
    ours = git.out("rev-parse", "--verify", f"refs/heads/{checkout.branch}^{{commit}}", what=what)
    tree, files = _merge_tree(git, ours, theirs, what)
    listed = ", ".join(files) or "no files"
    new = git.out("commit-tree", tree, "-p", ours, "-p", theirs, "-m",
                  f"tars({checkout.task_id}): merge {other.branch}, conflicts to resolve in {listed}", what=what)
    _advance(checkout, git, ours, new, what)
    return files


def merge(checkout: TaskCheckout) -> MergeResult:
    """Merge the task branch into the branch it started from, in the owner's repository: fast-forward when possible,
    else a merge commit. The owner's uncommitted changes are never lost: if the target is checked out and dirty in
    a file the merge changes, MergeBlocked; a conflict raises MergeConflict; either way nothing was changed."""
    if checkout.mode == SHADOW:
        return MergeResult("kept", None, None, [], False,
                           f"{checkout.project} is not a git repository, so task {checkout.task_id}'s changes are "
                           "already in place there; there is nothing to merge.")
    if checkout.mode == CLONE:
        raise GitError(f"Task {checkout.task_id} worked on a clone of {checkout.project}; push its branch "
                       f"{checkout.branch} instead of merging.")
    if not checkout.start_branch:
        raise GitError(f"Task {checkout.task_id} started from a detached HEAD ({checkout.base[:12]}), so there is no "
                       f"branch to merge into; its work is on branch {checkout.branch}.")
    target = checkout.start_branch
    _sync(checkout)
    git = _Git(checkout.repo)
    what = f"merge task {checkout.task_id} into {target} in {checkout.repo}"
    with _locked(Path(checkout.data_dir), _digest(checkout.repo)):
        if not git.has_ref(f"refs/heads/{target}", what):
            raise GitError(f"Could not {what}: the branch {target} no longer exists.")
        target_tip = git.out("rev-parse", f"refs/heads/{target}", what=what)
        task_tip = git.out("rev-parse", f"refs/heads/{checkout.branch}", what=what)
        ancestor = git("merge-base", "--is-ancestor", task_tip, target_tip, what=what, ok=(0, 1)).returncode == 0
        if ancestor:
            return MergeResult("up-to-date", target, target_tip, [], False,
                               f"{target} already has all of task {checkout.task_id}'s work.")
        fast = git("merge-base", "--is-ancestor", target_tip, task_tip, what=what, ok=(0, 1)).returncode == 0
        new = task_tip if fast else _merge_commit(checkout, git, target_tip, task_tip, target, what)
        files = [f for f in git.out("diff", "--name-only", "-z", "--no-renames", target_tip, new,
                                    what=what).split("\0") if f]
        updated = _move_branch(checkout, git, target, target_tip, new, files, what)
    _touch(checkout)
    kind = "fast-forward" if fast else "merge"
    where = "; your checked-out copy is updated" if updated else ""
    return MergeResult(kind, target, new, files, updated,
                       f"Merged task {checkout.task_id} into {target} ({kind}, {len(files)} "
                       f"file{'s' if len(files) != 1 else ''}){where}.")


def _move_branch(checkout: TaskCheckout, git: _Git, target: str, old: str, new: str, files: list[str],
                 what: str) -> bool:
    """Point target at new. Where it is checked out, a fast-forward merge there moves ref, index and files together
    (new always descends from old), keeping the owner's other changes; True when a checked-out tree was updated."""
    listed = [w for w in _worktrees(git, what) if "prunable" not in w and "bare" not in w]
    for tree in listed:
        if _rebasing(tree["worktree"], target, what):
            raise GitError(f"{target} is being rebased in {tree['worktree']}; finish or abort the rebase, then merge "
                           f"task {checkout.task_id} again. Nothing was changed.")
    trees = [w for w in listed if w.get("branch") == f"refs/heads/{target}"]
    for tree in trees:
        owner = _Git(tree["worktree"])
        clash = sorted(_dirty_paths(owner, what) & set(files))
        if clash:
            raise MergeBlocked(f"Your uncommitted changes to {', '.join(clash)} in {tree['worktree']} touch files "
                               f"task {checkout.task_id} changed; commit or stash them, then merge again. "
                               "Nothing was changed.", clash)
    if not trees:
        git("update-ref", "-m", f"tars: merge {checkout.branch}", f"refs/heads/{target}", new, old, what=what)
        return False
    # git checks again itself and refuses (changing nothing) if the owner edited a touched file meanwhile.
    _Git(trees[0]["worktree"])("merge", "--ff-only", "--quiet", new, what=what)
    return True


def _rebasing(tree: str, branch: str, what: str) -> bool:
    """True while a rebase of branch runs in tree: its HEAD is detached then, yet the rebase's end would overwrite
    the branch (and lose a merge made meanwhile)."""
    git_dir = Path(_Git(tree).out("rev-parse", "--absolute-git-dir", what=what))
    for state in ("rebase-merge", "rebase-apply"):
        head = git_dir / state / "head-name"
        if head.is_file() and head.read_text().strip() == f"refs/heads/{branch}":
            return True
    return False


# --- push, discard, cleanup ---------------------------------------------------------------------------------------

def push(checkout: TaskCheckout) -> str:
    """Push the task branch to origin under the same name, never forced: NoRemote without an origin, PushRejected
    with git's reason when origin refuses it (its branch moved on, a hook declined)."""
    if checkout.mode == SHADOW:
        raise GitError(f"{checkout.project} is not a git repository, so task {checkout.task_id} has nothing to push.")
    _sync(checkout)  # the cache's (or the owner's) branch is the one pushed
    git = _repo_git(checkout)
    what = f"push {checkout.branch} of task {checkout.task_id}"
    remote = git("remote", "get-url", "origin", what=what, ok=(0, 2, 128))
    if remote.returncode:
        raise NoRemote(f"Could not {what}: {checkout.project} has no remote called origin.")
    url = _redact(remote.stdout.strip())
    ref = f"refs/heads/{checkout.branch}"
    pushed = git("push", "--porcelain", "origin", f"{ref}:{ref}", what=what, ok=(0, 1),
                 timeout=GIT_NETWORK_TIMEOUT_SECONDS)
    if pushed.returncode:
        reasons = [line.split("\t")[-1] for line in pushed.stdout.splitlines() if line.startswith("!")]
        reason = _redact("; ".join(reasons) or _detail(pushed.stderr, ""))
        raise PushRejected(f"{url} rejected the push of {checkout.branch}: {reason}.", url, reason)
    _touch(checkout)
    return f"Pushed {checkout.branch} to {url}."


def _remove_checkout(checkout: TaskCheckout, what: str) -> None:
    """Remove the task's repository (TARS's own folder), or an older TARS's worktree of the owner's repository."""
    folder = Path(checkout.worktree)
    if checkout.isolated:
        if Path(checkout.data_dir) / "worktrees" not in folder.parents:  # a corrupt record deletes nothing else
            raise GitError(f"Could not {what}: {folder} is not one of TARS's checkouts.")
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise GitError(f"Could not {what}: {folder} could not be removed ({exc.strerror}).") from None
        _forget_pristine(checkout.data_dir, checkout.task_id)
        return
    git = _repo_git(checkout)
    if folder.exists():
        try:
            git("worktree", "remove", "--force", str(folder), what=what)
        except GitError:
            # Not registered any more, or it holds submodules (which git will not remove): it is TARS's own folder.
            if Path(checkout.data_dir) / "worktrees" in folder.parents:
                shutil.rmtree(folder)
            else:
                raise
    git("worktree", "prune", what=what)


def _delete_branch(checkout: TaskCheckout, git: _Git, what: str) -> None:
    if not checkout.branch.startswith(BRANCH_PREFIX):  # a corrupt record must never delete the owner's branch
        raise GitError(f"Could not {what}: {checkout.branch} is not a TARS branch.")
    if git.has_ref(f"refs/heads/{checkout.branch}", what):
        git("update-ref", "-d", f"refs/heads/{checkout.branch}", what=what)


def discard(checkout: TaskCheckout) -> str:
    """Throw the task's work away: remove its checkout and its tars/ branch (shadow mode: put the project back as it
    was at prepare). Returns a sentence for the owner."""
    what = f"discard task {checkout.task_id}"
    if checkout.mode == SHADOW:
        _restore(checkout, checkout.base, what)
        _delete_branch(checkout, _repo_git(checkout), what)
        Path(_shadow_index(checkout.repo, checkout.task_id)).unlink(missing_ok=True)
        sentence = f"Put {checkout.project} back as it was before task {checkout.task_id}."
    else:
        with _locked(Path(checkout.data_dir), _digest(checkout.repo)):
            _remove_checkout(checkout, what)
            _delete_branch(checkout, _repo_git(checkout), what)
        sentence = f"Discarded task {checkout.task_id}: its checkout and branch {checkout.branch} are gone."
    _record(checkout.data_dir, checkout.task_id).unlink(missing_ok=True)
    return sentence


def _retire(checkout: TaskCheckout) -> None:
    """What cleanup does to one old task: free its disk; keep the owner's branch unless it is merged."""
    what = f"clean up task {checkout.task_id}"
    if checkout.mode == SHADOW:  # the project itself is the owner's: only TARS's branch and index go
        _delete_branch(checkout, _repo_git(checkout), what)
        Path(_shadow_index(checkout.repo, checkout.task_id)).unlink(missing_ok=True)
        return
    git = _repo_git(checkout)
    if Path(checkout.worktree).exists():
        _sync(checkout)  # the model's commits since the last checkpoint stay on the branch
    with _locked(Path(checkout.data_dir), _digest(checkout.repo)):
        _remove_checkout(checkout, what)
        merged = checkout.start_branch and git.has_ref(f"refs/heads/{checkout.start_branch}", what) and git(
            "merge-base", "--is-ancestor", f"refs/heads/{checkout.branch}", f"refs/heads/{checkout.start_branch}",
            what=what, ok=(0, 1, 128)).returncode == 0
        if checkout.mode == CLONE or merged:  # a clone is TARS's cache; a merged branch holds nothing new
            _delete_branch(checkout, git, what)


def cleanup(data_dir: str | Path, older_than_days: float = WORKTREE_RETENTION_DAYS,
            keep: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Remove the checkouts of tasks idle for older_than_days (except those in keep, e.g. the running ones) and prune.

    Worktree mode keeps the branch in the owner's repository unless it is merged into its start branch (no work is
    lost); clone mode deletes it; shadow mode deletes only TARS's shadow branch. Returns the task ids removed."""
    data = Path(data_dir).expanduser().resolve()
    cutoff = time.time() - older_than_days * 86400
    removed = []
    ours: set[str] = set()  # shadow repositories and clone caches that lost a branch: TARS's own to compact
    records = data / "checkouts"
    for record in sorted(records.glob("*.json")) if records.is_dir() else []:
        task_id = record.stem
        if task_id in keep or record.stat().st_mtime > cutoff:
            continue
        try:
            checkout = find(task_id, data)
            _retire(checkout)
        except GitError as exc:
            log.warning("[task %s] cleanup left its checkout: %s", task_id, exc)
            continue
        if checkout.mode in (SHADOW, CLONE):
            ours.add(checkout.repo)
        record.unlink(missing_ok=True)
        removed.append(task_id)
    for repo in sorted(ours):
        _compact(repo, data)
    folders = data / "worktrees"
    for folder in sorted(folders.iterdir()) if folders.is_dir() else []:
        # A folder without a record: a prepare that crashed half-way. It is TARS's own, so it simply goes.
        if folder.name in keep or _record(data, folder.name).exists() or folder.stat().st_mtime > cutoff:
            continue
        gitdir = _orphan_repository(folder)
        shutil.rmtree(folder, ignore_errors=True)
        if gitdir:
            try:
                _run(["--git-dir", gitdir, "worktree", "prune"], cwd=str(data), what=f"prune {gitdir}")
            except GitError as exc:
                log.warning("cleanup could not prune %s: %s", gitdir, exc)
        removed.append(folder.name)
    return removed


def _compact(repo: str, data: Path) -> None:
    """`git gc` in a repository TARS owns (gc.auto is off for every TARS call): objects only retired branches held
    go, after git's default two-week grace, so a checkpoint being written meanwhile is never pruned. The owner's own
    repositories are never compacted by TARS."""
    try:
        with _locked(data, Path(repo).name):
            _run(["--git-dir", repo, "gc", "--quiet"], cwd=str(data), what=f"compact {repo}",
                 timeout=GIT_NETWORK_TIMEOUT_SECONDS)
    except GitError as exc:
        log.warning("cleanup could not compact %s: %s", repo, exc)


def _orphan_repository(folder: Path) -> str | None:
    """The common git dir a worktree folder belongs to, from its .git file ('gitdir: <repo>/worktrees/<name>')."""
    try:
        text = (folder / ".git").read_text().strip()
    except OSError:
        return None
    if not text.startswith("gitdir: "):
        return None
    common = Path(text.removeprefix("gitdir: ")).parent.parent
    return str(common) if common.is_dir() else None
