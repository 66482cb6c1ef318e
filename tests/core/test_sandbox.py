"""core/sandbox.py with real processes: a command under the sandbox tries what a task must not do (write outside
its checkout, read credentials and TARS's files, signal or trace processes outside, connect with the network off,
touch the owner's git repository: its objects, refs, config, hooks) and each attempt fails with the files intact,
while the same command still works in its checkout, its TMPDIR, the caches, an allowed virtualenv and its own git
branch (commit, switch -c, stash, log, diff). Everything lives under tmp_path:
HOME, the fake TARS repository and its .env, DATA_DIR. Landlock tests need Linux with Landlock ABI 6 (signals);
bubblewrap tests need `bwrap` (apt-get install bubblewrap), and skip saying so when it is missing. The macOS
profile is checked as text only."""
from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import git_workspace as gw
from core import sandbox
from core.tools import _child_setup_hook
from tests import system_packages

pytestmark = [pytest.mark.usefixtures("private_git"),
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the real-process tests need Linux")]

HAS_LANDLOCK = sandbox.landlock_abi() >= 6
BACKENDS = [pytest.param(sandbox.LANDLOCK, marks=pytest.mark.skipif(
                not HAS_LANDLOCK, reason=f"Landlock ABI 6+ needed, this kernel has {sandbox.landlock_abi()}")),
            sandbox.BUBBLEWRAP]


@pytest.fixture(autouse=True)
def backend_here(request):
    """The bubblewrap tests check against the real bwrap: the test run installs Debian's package when missing."""
    callspec = getattr(request.node, "callspec", None)
    if callspec and sandbox.BUBBLEWRAP in callspec.params.values():
        system_packages.ensure(Path("/usr/bin/bwrap"), ("bubblewrap",), "the bubblewrap sandbox tests")
        if not sandbox._bwrap_works():
            pytest.skip("bubblewrap is installed but cannot run here (user namespaces are off)")
SECRET = "PRIVATE KEY: never readable inside"
OWNER = ("-c", "user.name=Owner", "-c", "user.email=owner@example.com", "-c", "init.defaultBranch=main")


def git(cwd, *args) -> str:
    return subprocess.run(["git", *OWNER, *args], cwd=cwd, capture_output=True, text=True, check=True,
                          timeout=30).stdout.strip()


class World:
    """HOME with credentials, TARS's repository with a .env, DATA_DIR with two tasks' checkouts of one owner
    repository (two commits) and Redis's file, a TMPDIR and a virtualenv folder outside the checkout."""

    def __init__(self, root: Path):
        self.home = root / "home"  # private_git made it, and HOME points there
        (self.home / ".ssh").mkdir()
        (self.home / ".ssh" / "id_ed25519").write_text(SECRET)
        (self.home / ".bashrc").write_text("# the owner's bashrc\n")
        (self.home / "keys-link").symlink_to(self.home / ".ssh")  # a way round the hidden name
        self.env_file = root / "tars" / ".env"
        self.env_file.parent.mkdir()
        self.env_file.write_text("ANTHROPIC_API_KEY=sk-ant-secret\n")
        (root / "tars" / "README.md").write_text("TARS\n")
        self.data = root / "data"
        (self.data / "redis").mkdir(parents=True)
        (self.data / "redis" / "dump.rdb").write_text(SECRET)
        self.owner = root / "owner"
        self.owner.mkdir()
        git(self.owner, "init", "-q")
        (self.owner / "a.txt").write_text("alpha\n")
        git(self.owner, "add", ".")
        git(self.owner, "commit", "-q", "-m", "start")
        (self.owner / "c.txt").write_text("gamma\n")
        git(self.owner, "add", ".")
        git(self.owner, "commit", "-q", "-m", "second")
        self.checkout = gw.prepare("t1", self.owner, self.data / "git")
        self.other = gw.prepare("t2", self.owner, self.data / "git")
        self.tmp = root / "tmp"
        self.venv = root / "envs" / "t1"
        self.venv.mkdir(parents=True)
        path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"  # python3: the worker's, as for the model
        self.env = {"HOME": str(self.home), "PATH": path, "TMPDIR": str(self.tmp), "LC_ALL": "C",
                    "GIT_CONFIG_NOSYSTEM": "1", **gw.COMMIT_IDENTITY}

    def policy(self, checkout=None, network=True) -> sandbox.Policy:
        return sandbox.policy_for_checkout(checkout or self.checkout, tmp_dir=self.tmp, data_dir=self.data,
                                           tars_env_file=self.env_file, home=self.home, extra_writable=[self.venv],
                                           env=self.env, network=network)

    def protected(self) -> dict[str, str]:
        """The files no attempt may change."""
        paths = [self.home / ".bashrc", self.home / ".ssh" / "id_ed25519", self.env_file,
                 self.data / "redis" / "dump.rdb", Path(self.other.path) / "a.txt", self.owner / "a.txt",
                 self.owner / ".git" / "config", self.owner / ".git" / "HEAD"]
        return {str(p): p.read_text() for p in paths}


@pytest.fixture
def world(tmp_path) -> World:
    return World(tmp_path)


@pytest.fixture(params=BACKENDS)
def box(request, world):
    with sandbox.Sandbox(world.policy(), kind=request.param) as made:
        assert made.kind == request.param
        yield made


def run(box: sandbox.Sandbox, command: str, cwd, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    """As core.tools.Workspace.bash will: bash -c in its own session, the worker's child hook, then the sandbox."""
    return subprocess.run(box.argv(["/bin/bash", "-c", command]), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, start_new_session=True, preexec_fn=box.preexec(before=_child_setup_hook()))


def refused(done: subprocess.CompletedProcess) -> bool:
    """The command failed, saying why as an ordinary error (bubblewrap hides paths: they are simply not there)."""
    said = done.stdout + done.stderr
    return done.returncode != 0 and any(reason in said for reason in (
        "Permission denied", "Operation not permitted", "Read-only file system", "No such file or directory",
        "No such process", "Invalid cross-device link", "Network is unreachable", "Connection refused"))


# --- what fails -------------------------------------------------------------------------------------------------

def test_writes_outside_the_checkout_fail_and_the_files_stay_intact(box, world):
    before = world.protected()
    attempts = [f"echo evil >> {world.home}/.bashrc", f"echo evil > {world.home}/new-file",
                f"echo evil > {world.other.path}/a.txt", f"echo evil > {world.other.path}/new.txt",
                f"echo evil > {world.data}/redis/dump.rdb", f"mkdir {world.data}/evil",
                f"echo evil > {world.owner}/a.txt",
                f"rm {world.owner}/a.txt", f"mv {world.checkout.path}/a.txt {world.owner}/moved.txt",
                f"echo evil > {world.owner}/.git/config", f"touch {world.env_file.parent}/evil",
                f"python3 -c \"import os; os.truncate('{world.home}/.bashrc', 0)\"", "echo evil > /etc/evil",
                "echo evil > /tmp/tars-sandbox-evil"]
    for command in attempts:
        done = run(box, command, world.checkout.path, world.env)
        assert refused(done), (command, done)
    assert world.protected() == before
    assert not (world.home / "new-file").exists() and not (world.data / "evil").exists()
    assert not Path("/tmp/tars-sandbox-evil").exists() and not Path("/etc/evil").exists()
    assert (Path(world.checkout.path) / "a.txt").exists()  # the move out failed: it is still there


def test_credentials_tars_env_and_data_cannot_be_read(box, world):
    attempts = [f"cat {world.home}/.ssh/id_ed25519", f"cat {world.home}/keys-link/id_ed25519",
                f"cat {world.env_file}", f"cat {world.data}/redis/dump.rdb", f"cat {world.other.path}/a.txt",
                f"cp {world.home}/.ssh/id_ed25519 copied", f"ln {world.home}/.ssh/id_ed25519 linked"]
    for command in attempts:
        done = run(box, command, world.checkout.path, world.env)
        assert refused(done), (command, done)
        assert SECRET not in done.stdout and "sk-ant" not in done.stdout
    # Beside them, everything else still reads: the home folder, TARS's other files, the system.
    done = run(box, f"cat {world.home}/.bashrc {world.env_file.parent}/README.md /etc/hostname && ls {world.home}",
               world.checkout.path, world.env)
    assert done.returncode == 0 and "the owner's bashrc" in done.stdout and "TARS" in done.stdout, done


def test_signals_reach_only_the_commands_own_processes(box, world):
    outside = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        for command in (f"kill -TERM {outside.pid}", f"kill -KILL -{outside.pid}",
                        f"python3 -c 'import os; os.kill({outside.pid}, 9)'",
                        (f"python3 -c 'import ctypes,sys; libc = ctypes.CDLL(None, use_errno=True); "
                         f"sys.exit(libc.ptrace(16, {outside.pid}, 0, 0) != 0)'")):  # PTRACE_ATTACH
            done = run(box, command, world.checkout.path, world.env)
            assert done.returncode != 0, (command, done)
        time.sleep(0.2)
        assert outside.poll() is None, "the sleep outside the sandbox was killed"
        done = run(box, "sleep 100 & child=$!; kill $child; wait $child; echo status $?", world.checkout.path,
                   world.env)
        assert "status 143" in done.stdout, done  # 128 + SIGTERM: its own child was killed
    finally:
        outside.kill()
        outside.wait()
    if box.kind == sandbox.LANDLOCK:
        done = run(box, f"kill -0 {os.getpid()}", world.checkout.path, world.env)
        assert "Operation not permitted" in done.stderr, done


@pytest.mark.skipif(not HAS_LANDLOCK or os.geteuid() != 0, reason="needs Landlock, and root to become nobody")
def test_an_ordinary_user_cannot_read_the_environment_of_a_process_outside(world):
    """The worker's environment through /proc; root still reads it on Linux 6.18, hence: not as root."""
    def nobody():
        os.setgid(65534)
        os.setuid(65534)
    outside = subprocess.Popen(["sleep", "60"], env={"TARS_SECRET": "hunter2"}, preexec_fn=nobody)
    try:
        with sandbox.Sandbox(world.policy()) as box:
            time.sleep(0.1)
            done = subprocess.run(["/bin/cat", f"/proc/{outside.pid}/environ"], cwd="/", capture_output=True,
                                  text=True, timeout=30, preexec_fn=box.preexec(before=nobody))
        assert done.returncode != 0 and "hunter2" not in done.stdout, done
    finally:
        outside.kill()
        outside.wait()


@pytest.mark.skipif(not HAS_LANDLOCK, reason="abstract unix socket scoping needs Landlock ABI 6")
def test_abstract_unix_sockets_made_outside_are_out_of_reach(world):
    name = f"\0tars-sandbox-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX) as listener, sandbox.Sandbox(world.policy()) as box:
        listener.bind(name)
        listener.listen()
        code = f"import socket; socket.socket(socket.AF_UNIX).connect({name!r})"
        done = run(box, f"python3 -c {code!r}", world.checkout.path, world.env)
        assert "Operation not permitted" in done.stderr, done


@pytest.mark.parametrize("kind", BACKENDS)
def test_network_off_cuts_tcp_connections_and_on_leaves_them(world, kind):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        code = f"import socket; socket.create_connection(('127.0.0.1', {listener.getsockname()[1]}), timeout=5)"
        for network in (True, False):
            with sandbox.Sandbox(world.policy(network=network), kind=kind) as box:
                done = run(box, f"python3 -c \"{code}\" && echo connected", world.checkout.path, world.env)
            assert ("connected" in done.stdout) == network, (network, done)
            if not network:
                assert refused(done), done
            if not network and kind == sandbox.LANDLOCK:
                assert box.refusal_note(done.stderr, done.returncode), done


# --- what works -------------------------------------------------------------------------------------------------

def test_the_checkout_tmpdir_caches_and_venv_are_writable(box, world):
    script = """set -e
        echo one > new.txt && echo two >> new.txt && sed -i 's/one/ONE/' new.txt && cat new.txt
        mkdir -p pkg/sub && mv new.txt pkg/sub/moved.txt && ln -s sub/moved.txt pkg/link && rm -r pkg
        echo temp > "$TMPDIR/t" && mv "$TMPDIR/t" here.txt && mv here.txt "$TMPDIR/back" && rm "$TMPDIR/back"
        python3 -c 'import tempfile; tempfile.NamedTemporaryFile().write(b"x")'
        echo cached > "$HOME/.cache/pip/entry" && echo cached > "$HOME/.cache/uv/entry"
        python3 -m venv --without-pip "$VENV" && "$VENV/bin/python" -c 'import sys; print(sys.prefix)'
        echo quiet > /dev/null; echo quiet 2> /dev/stderr > /dev/stdout
        echo ok"""
    done = run(box, script, world.checkout.path, {**world.env, "VENV": str(world.venv)})
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "ok", done
    assert "ONE\ntwo" in done.stdout and str(world.venv) in done.stdout
    assert (world.home / ".cache" / "pip" / "entry").exists() and (world.venv / "pyvenv.cfg").exists()


def owner_repository(owner: Path) -> dict:
    """What no command of a task may change in the owner's repository: its refs but the task's own branch (TARS
    moves that one), config, hooks, and every object file's bytes."""
    common = owner / ".git"
    refs = [line for line in git(owner, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()
            if not line.startswith("refs/heads/tars/t1 ")]
    hooks = {p.name: p.read_bytes() for p in (common / "hooks").iterdir()}
    objects = {str(p): p.read_bytes() for p in (common / "objects").rglob("*") if p.is_file()}
    return {"refs": refs, "config": (common / "config").read_bytes(), "HEAD": (common / "HEAD").read_bytes(),
            "hooks": hooks, "objects": objects}


def test_git_on_the_tasks_branch_works_in_its_own_repository(box, world):
    work = world.checkout.path
    script = """set -e
        echo change >> a.txt && echo new > b.txt
        git add -A && git commit -q -m 'the model commits' && git status --short && git log --oneline | head -3
        git diff main --stat | tail -1
        git switch -q -c tars/t1-x && git switch -q tars/t1
        echo 'work in progress' >> a.txt && git stash -q && test "$(tail -1 a.txt)" = change
        git stash pop -q && tail -1 a.txt
        echo ok"""
    done = run(box, script, work, world.env)
    assert done.returncode == 0 and done.stdout.endswith("work in progress\nok\n"), done
    assert "the model commits" in done.stdout and "2 files changed" in done.stdout
    # TARS, outside the sandbox, brings the model's commit to the owner's branch at the next checkpoint.
    gw.checkpoint(world.checkout, "after the model's commit")
    assert git(world.owner, "log", "--format=%s", "-2", "refs/heads/tars/t1").splitlines() == \
        ["tars(t1): after the model's commit", "the model commits"]


def test_the_owners_repository_cannot_be_touched_from_inside(box, world):
    """Objects, refs (main, another task's tars/ branch), config and hooks of the owner's repository: read-only, by
    hand or through git; the owner's repository checks out whole afterwards."""
    common = world.owner / ".git"
    (common / "hooks" / "post-commit").write_text("#!/bin/sh\n# the owner's hook\n")
    before = owner_repository(world.owner)
    obj = next(path for path in before["objects"] if "/info/" not in path and "/pack/" not in path)
    first = git(world.owner, "rev-parse", "HEAD~1")
    attempts = [f"rm -f {obj}", f"python3 -c \"import os; os.remove('{obj}')\"", f"mv {obj} {obj}.gone",
                f"echo {first} > {common}/refs/heads/tars/t2", f"echo {first} > {common}/refs/heads/main",
                f"echo {first} > {common}/refs/heads/tars/t1", f"echo '[core] evil = true' >> {common}/config",
                f"echo 'rm -rf ~' > {common}/hooks/pre-commit", f"echo evil >> {common}/hooks/post-commit",
                f"rm {common}/hooks/post-commit", f"echo evil > {common}/packed-refs",
                f"echo ref: refs/heads/tars/t1 > {common}/HEAD", f"git -C {world.owner} branch -f main HEAD~1",
                f"git -C {world.owner} update-ref refs/heads/tars/t2 HEAD~1", f"git -C {world.owner} tag evil",
                f"git -C {world.owner} config core.evil true", f"git -C {world.owner} gc --prune=now",
                "git push -q -f origin HEAD~1:main",
                "git commit -q --allow-empty -m evil && git push -q -f origin HEAD:refs/heads/tars/t2"]
    for command in attempts:
        done = run(box, command, world.checkout.path, world.env)
        assert done.returncode != 0, (command, done)
    assert owner_repository(world.owner) == before
    assert subprocess.run(["git", "fsck", "--full", "--no-dangling"], cwd=world.owner, capture_output=True,
                          timeout=60).returncode == 0
    assert git(world.owner, "status", "--porcelain") == "" and git(world.owner, "tag") == ""


def test_a_clone_tasks_cache_is_readable_for_its_objects_and_nothing_more(box, world, tmp_path):
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(world.owner), str(remote))
    checkout = gw.prepare("c1", remote.as_uri(), world.data / "git")
    cache = Path(checkout.repo)
    with sandbox.Sandbox(world.policy(checkout), kind=box.kind) as clone_box:
        done = run(clone_box, "git log --oneline | wc -l && echo x > x.txt && git add x.txt && git commit -q -m mine "
                              "&& git diff origin/main --stat | tail -1", checkout.path, world.env)
        assert done.returncode == 0 and done.stdout.startswith("2\n") and "1 file changed" in done.stdout, done
        refs = git(cache, "for-each-ref")
        for command in (f"echo evil > {cache}/refs/heads/tars/c1", f"echo evil >> {cache}/config",
                        f"rm -rf {cache}/objects/pack"):
            done = run(clone_box, command, checkout.path, world.env)
            assert done.returncode != 0, (command, done)
        assert git(cache, "for-each-ref") == refs


@pytest.mark.parametrize("kind", BACKENDS)
def test_shadow_mode_works_in_place_and_its_git_dir_stays_out_of_reach(world, tmp_path, kind):
    """A plain folder: the task works in it; the shadow repository holding the checkpoints is TARS's, in DATA_DIR."""
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "a.txt").write_text("alpha\n")
    checkout = gw.prepare("t3", plain, world.data / "git")
    assert checkout.mode == gw.SHADOW
    head = Path(checkout.repo, "HEAD").read_text()
    with sandbox.Sandbox(world.policy(checkout), kind=kind) as box:
        done = run(box, "echo more >> a.txt && cat a.txt && git init -q && git add -A && git commit -q -m mine && "
                        "git log --format=%s", plain, world.env)
        assert done.returncode == 0 and "more" in done.stdout and "mine" in done.stdout, done
        for command in (f"cat {checkout.repo}/HEAD", f"echo evil > {checkout.repo}/HEAD",
                        f"git --git-dir={checkout.repo} log", f"echo evil > {world.owner}/a.txt"):
            done = run(box, command, plain, world.env)
            assert done.returncode != 0 and "refs/heads" not in done.stdout, (command, done)
    assert Path(checkout.repo, "HEAD").read_text() == head


@pytest.mark.skipif(not HAS_LANDLOCK or os.geteuid() != 0, reason="needs Landlock, and root")
def test_root_commands_drop_every_capability_and_cannot_read_other_processes_environment(world):
    """Run as root, the command is an ordinary process of uid 0: no capabilities (bounding set empty too), so
    /proc/<pid>/environ of a process outside stays closed, a non-dumpable worker's or a plain root process's."""
    code = "import sys, time; from core import sandbox; {} time.sleep(60)"
    targets = [subprocess.Popen([sys.executable, "-c", code.format(call)], env={"TARS_SECRET": "hunter2"},
                                cwd=Path(sandbox.__file__).parent.parent)
               for call in ("sandbox.make_non_dumpable();", "")]
    try:
        with sandbox.Sandbox(world.policy()) as box:
            time.sleep(0.3)
            for target in targets:
                done = run(box, f"cat /proc/{target.pid}/environ", world.checkout.path, world.env)
                assert done.returncode != 0 and "hunter2" not in done.stdout, done
            done = run(box, "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status", world.checkout.path, world.env)
            assert done.returncode == 0 and done.stdout.count("0000000000000000") == 5, done
            done = run(box, f"chown 65534 {world.checkout.path}/a.txt", world.checkout.path, world.env)
            assert "Operation not permitted" in done.stderr, done
        done = subprocess.run(["cat", f"/proc/{targets[1].pid}/environ"], capture_output=True, text=True)
        assert "hunter2" in done.stdout  # outside the sandbox root reads it: the test's target is right
    finally:
        for target in targets:
            target.kill()
            target.wait()


def test_a_non_dumpable_process_stays_so_across_fork():
    if sandbox._LIBC is None:
        pytest.skip("Linux only")
    code = ("import os, sys; from core import sandbox; assert sandbox.make_non_dumpable(); "
            "pid = os.fork()\nif pid == 0: os._exit(sandbox._LIBC.prctl(3, 0, 0, 0, 0))\n"
            "sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))")  # PR_GET_DUMPABLE in the child: 0
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(sandbox.__file__).parent.parent, timeout=30)
    assert done.returncode == 0


# --- the policy and the API -------------------------------------------------------------------------------------

def test_policy_for_a_checkout_grants_nothing_in_the_owners_repository_and_hides_the_rest(world):
    policy = world.policy().real()
    common = os.path.realpath(world.owner / ".git")
    assert os.path.realpath(world.checkout.worktree) in policy.writable
    assert not [path for path in policy.writable + policy.readable if sandbox._within(path, common)]
    assert {os.path.realpath(world.data), os.path.realpath(world.env_file),
            os.path.realpath(world.home / ".ssh")} <= set(policy.hidden)
    grants = sandbox.read_grants(policy)
    assert os.path.realpath(world.home / ".bashrc") in grants and os.path.realpath(world.home / ".ssh") not in grants
    outside = sandbox.read_grants(dataclasses.replace(policy, readable=()))
    assert not any(sandbox._within(path, hidden) for path in outside for hidden in policy.hidden)


def test_a_project_holding_a_hidden_path_is_refused(world):
    with pytest.raises(ValueError, match="contains"):
        sandbox.Policy(writable=(str(world.home),), hidden=(str(world.home / ".ssh"),)).real()


@pytest.mark.skipif(not HAS_LANDLOCK, reason="Landlock needed")
def test_a_closed_sandbox_runs_nothing(world, tmp_path):
    box = sandbox.Sandbox(world.policy())
    hook = box.preexec()
    box.close()
    with pytest.raises(RuntimeError):
        box.preexec()
    with pytest.raises(subprocess.SubprocessError):  # the ruleset is gone: the child refuses to start
        subprocess.run(["/bin/touch", str(tmp_path / "ran")], preexec_fn=hook, check=False)
    assert not (tmp_path / "ran").exists()


def test_status_lines():
    assert str(sandbox.Support(sandbox.LANDLOCK, 7)) == "landlock (ABI 7): files, network, signals"
    assert str(sandbox.Support(sandbox.LANDLOCK, 3)) == "landlock (ABI 3): files"
    assert sandbox.Support(sandbox.LANDLOCK, 3).gaps(network=False) == [
        "signals to other processes are not blocked (needs Landlock ABI 6)",
        "the network stays on (needs Landlock ABI 4)"]
    assert str(sandbox.Support(sandbox.NONE)).startswith("none: ")
    assert str(sandbox.detect()).split(" ")[0].rstrip(":") in (sandbox.LANDLOCK, sandbox.BUBBLEWRAP, sandbox.NONE)
    box = sandbox.Sandbox(sandbox.Policy((), network=False), kind=sandbox.NONE)
    assert not box.active and box.argv(["x"]) == ["x"] and box.preexec() is None
    assert box.refusal_note("Permission denied", 1) is None


def test_the_banner_and_health_line():
    assert sandbox.status_line("off").startswith("off (SANDBOX=off): commands are not contained")
    assert sandbox.status_line() == sandbox.detect().line()
    assert sandbox.Support(sandbox.LANDLOCK, 7).line(network=False) == "landlock (ABI 7): files, network off, signals"
    assert sandbox.Support(sandbox.LANDLOCK, 5).line(network=False) == (
        "landlock (ABI 5): files, network off; not enforced: signals to other processes are not blocked (needs "
        "Landlock ABI 6)")
    none = sandbox.Support(sandbox.NONE).line(network=False)
    assert "commands are not contained" in none and "allow-list asks" in none and "not enforced" not in none


def test_refusal_note():
    note = sandbox.refusal_note("bash: /home/x/.bashrc: Permission denied\n", 1)
    assert note.startswith("(The sandbox refused an operation") and "network" not in note
    assert "no network" in sandbox.refusal_note("connect: Permission denied", 1, network=False)
    for output in ("Operation not permitted", "touch: cannot touch 'x': Read-only file system"):
        assert sandbox.refusal_note(output, 2)
    assert sandbox.refusal_note("Permission denied", 0) is None  # it worked anyway
    assert sandbox.refusal_note("all good", 1) is None
    assert sandbox.refusal_note("Permission denied", -9) is None  # killed, not refused


def test_bubblewrap_arguments_put_inner_mounts_on_top(tmp_path):
    data, work, clone = tmp_path / "data", tmp_path / "data/git/worktrees/t1", tmp_path / "data/git/clones/x.git"
    for folder in (work, clone):
        folder.mkdir(parents=True)
    (tmp_path / ".env").write_text("KEY=1\n")
    policy = sandbox.Policy(writable=(str(work), "/dev/null"), hidden=(str(data), str(tmp_path / ".env")),
                            readable=(str(clone),), network=False)
    args = sandbox.bwrap_argv(policy)
    assert args[:3] == ["bwrap", "--ro-bind", "/"] and "--unshare-net" in args and "--unshare-pid" in args
    assert args.index("--tmpfs") + 1 == args.index(str(data)) < args.index(str(clone)) < args.index(str(work))
    assert args[args.index(str(tmp_path / ".env")) - 2:][:2] == ["--ro-bind", "/dev/null"]  # a hidden file
    assert args[-3:] == ["--remount-ro", str(data), "--"] and "/dev/null" not in args[args.index(str(work)):]
    assert "--unshare-net" not in sandbox.bwrap_argv(sandbox.Policy(()))


def test_macos_profile_denies_writes_hidden_reads_and_the_network():
    policy = sandbox.Policy(writable=("/Users/o/tasks/t1", "/private/tmp/t1", '/odd "name"'),
                            hidden=("/Users/o/.ssh", "/Users/o/tars-data"), readable=("/Users/o/tars-data/git/c",),
                            network=False)
    profile = sandbox.sbpl_profile(policy)
    lines = profile.splitlines()
    assert lines[:3] == ["(version 1)", "(allow default)", "(deny file-write*)"]
    assert '(subpath "/Users/o/tasks/t1")' in lines[3] and r'(subpath "/odd \"name\"")' in lines[3]
    assert '(deny file-read* (subpath "/Users/o/.ssh") (subpath "/Users/o/tars-data"))' in lines
    assert '(allow file-read* (subpath "/Users/o/tars-data/git/c"))' in lines  # after the deny: it wins
    assert '(deny network-outbound (remote ip "*:*"))' in lines
    assert lines[-2:] == ["(deny signal)", "(allow signal (target same-sandbox))"]
    assert "network-outbound" not in sandbox.sbpl_profile(sandbox.Policy(("/w",)))
    assert profile.count("(") == profile.count(")")
