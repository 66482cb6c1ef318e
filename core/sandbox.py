"""An OS sandbox around every command the model runs, and every process those commands start.

The gate in core/command_policy.py reads a command before it runs; this is what still holds when it misreads one. A
task's processes may write only to its checkout, its private temporary folder, the package caches and the paths the
caller adds (a project virtualenv); may not read TARS's .env, TARS's data folder (other tasks' checkouts, Redis's
files) or the usual credentials in the home folder; may signal only processes of their own command; and, with the
network off, may not open TCP connections. A refused operation is an ordinary EACCES/EPERM the model reads like any
error (refusal_note() adds one line saying why).

Backends, best first: Landlock (Linux >= 5.13, plain syscalls through ctypes, nothing to install), bubblewrap
(`bwrap`, Linux without Landlock), sandbox-exec (macOS). Each enforces what it can and says what it cannot.

Landlock, how and why:
- Its rules only allow, so "read everything but X" is spelled out: read is granted on every sibling along the path
  from / down to each hidden path, then again on the allowed paths inside hidden ones (the task's checkout inside
  DATA_DIR). Only file *contents* are hidden: listing directories is not controlled, so names stay visible (`ls ~`
  and `ls /` keep working, which a rule on ~ would otherwise forbid). Entries created later in a directory on the
  way to a hidden path (say a new file directly in ~) stay unreadable until the next task builds its ruleset.
- The ruleset is built once per task in the parent (O_PATH descriptors) and kept; each command's child enters it
  between fork and exec with nothing but two syscalls, looked up before the fork.
- REFER and TRUNCATE are handled and granted wherever writing is (else a rename between two writable folders fails
  with EXDEV, and truncate(2) would reach files outside); EXECUTE and IOCTL_DEV are not handled.
- Scoping (ABI 6) stops signals to processes outside the command's own tree and connections to abstract unix
  sockets made outside it. Any Landlock domain also keeps ptrace and /proc/<pid>/mem of outside processes out,
  and /proc/<pid>/environ too, except for a process holding CAP_SYS_PTRACE (root): hence the capability drop.
- Git on the task's branch: the task's checkout is a repository of its own (core/git_workspace.py), whose .git is
  inside the checkout and so writable like the rest of it; it borrows the owner's objects read-only through
  objects/info/alternates. Nothing of the owner's repository is writable (objects, refs, config, hooks), nor of a
  clone cache in DATA_DIR (readable, for its objects); TARS itself, outside the sandbox, brings the task's branch
  into the owner's repository. A shadow task's git dir is TARS's own (DATA_DIR/git/shadow): hidden like the rest of
  DATA_DIR; the model's git sees the project folder as it is (its commands are given no GIT_DIR). A checkout an
  older TARS made (a linked `git worktree`) gets no grant in the owner's .git either: its git commands fail there.
- As root, each command first drops every capability (bounding set included), so it is an ordinary process of
  uid 0: no CAP_SYS_PTRACE (other processes' /proc/<pid>/environ stays closed), no CAP_DAC_OVERRIDE. The worker
  and its work-horse are also made non-dumpable (make_non_dumpable()).

Not contained: UDP, and TCP to anything (local Redis included) while the network is on; writes to shared caches
and /dev/shm (another task can meet them); a hidden file reachable through a bind mount or hard link elsewhere; for
a worker run as root, every root-owned file outside the hidden paths stays readable (run it as an ordinary user).
The task repository's own .git is the model's: what it writes there reaches the owner's repository only as the
commits of its branch tars/<id>, which TARS fetches (git_workspace._guard puts back a config or alternates file
that would make TARS's own git calls there run or read something else).
"""
from __future__ import annotations

import ctypes
import errno
import functools
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

LANDLOCK, BUBBLEWRAP, SANDBOX_EXEC, NONE = "landlock", "bubblewrap", "sandbox-exec", "none"

SECRET_PATHS = (".ssh", ".aws", ".gnupg", ".config/gh", ".config/hub", ".netrc", ".docker/config.json", ".kube",
                ".config/gcloud", ".azure", ".pypirc", ".npmrc", ".yarnrc", ".git-credentials",
                ".config/git/credentials", ".cargo/credentials", ".cargo/credentials.toml", ".gem/credentials",
                ".m2/settings.xml", ".vault-token", ".terraform.d", ".password-store", ".local/share/keyrings",
                ".config/rclone", ".bash_history", ".zsh_history", ".python_history", "Library/Keychains")
"""Relative to the home folder: never readable inside the sandbox (extra_hidden adds more)."""
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", "/dev/ptmx",
           "/dev/pts", "/dev/shm")
"""Writable devices: harmless ones, terminals, and shared memory (Python's multiprocessing locks live there)."""

# --- Landlock's ABI (include/uapi/linux/landlock.h) ---------------------------------------------------------------
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # the same on x86_64 and aarch64
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_DUMPABLE, _PR_CAPBSET_DROP, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 4, 24, 47, 4
_CAP_VERSION_3 = 0x20080522
_WRITE_FILE, _READ_FILE = 1 << 1, 1 << 2  # READ_DIR (1 << 3) is not handled: listing stays free
_WRITE_TREE = 0b1_1111_1111_0000  # REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR, MAKE_REG, MAKE_SOCK, MAKE_FIFO,
#                                   MAKE_BLOCK, MAKE_SYM
_REFER, _TRUNCATE = 1 << 13, 1 << 14   # ABI 2, ABI 3
_CONNECT_TCP = 1 << 1                  # ABI 4
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _load_libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _load_libc()  # looked up here, once: nothing may be loaded between fork and exec


def _syscall(*args) -> int:
    result = _LIBC.syscall(*(ctypes.c_long(a) if isinstance(a, int) else a for a in args))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def landlock_abi() -> int:
    """The Landlock ABI version this kernel offers; 0 when it has none (or it is disabled)."""
    if _LIBC is None:
        return 0
    try:
        return _syscall(_SYS_CREATE_RULESET, None, 0, _CREATE_RULESET_VERSION)
    except OSError:
        return 0


# --- what a task may do -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Policy:
    """Paths by what the sandbox lets a task's processes do there (each covers everything beneath it)."""

    writable: tuple[str, ...]        # read and write
    hidden: tuple[str, ...] = ()     # no reading of file contents
    readable: tuple[str, ...] = ()   # read again, where inside a hidden path
    network: bool = True

    def real(self) -> Policy:
        """Absolute real paths that exist, without repeats; ValueError when a hidden path lies inside an allowed
        one (Landlock only adds permissions: it cannot take reading back inside a writable folder)."""
        def existing(paths: Iterable[str | os.PathLike]) -> tuple[str, ...]:
            found = dict.fromkeys(os.path.realpath(p) for p in paths if os.path.lexists(p))
            return tuple(p for p in found if os.path.exists(p))
        policy = Policy(existing(self.writable), existing(self.hidden), existing(self.readable), self.network)
        for hidden in policy.hidden:
            for allowed in policy.writable + policy.readable:
                if _within(hidden, allowed):
                    raise ValueError(f"{allowed} contains {hidden}, which the sandbox must keep unreadable: "
                                     "work in a folder that holds no credentials and not TARS's own files.")
        return policy


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def cache_dirs(home: str | Path, env: Mapping[str, str] = os.environ) -> list[Path]:
    """Package caches commands may fill: uv's and pip's always, npm's, Go's and Cargo's when the tool is on PATH.
    Missing ones are created, so that a first install can use them (a folder created later would stay closed)."""
    home = Path(home)
    cache = Path(env.get("XDG_CACHE_HOME") or home / ".cache")
    gopath, cargo = Path(env.get("GOPATH") or home / "go"), Path(env.get("CARGO_HOME") or home / ".cargo")
    wanted = {None: [env.get("UV_CACHE_DIR") or cache / "uv", env.get("PIP_CACHE_DIR") or cache / "pip"],
              "npm": [env.get("npm_config_cache") or home / ".npm"],
              "go": [env.get("GOMODCACHE") or gopath / "pkg/mod", env.get("GOCACHE") or cache / "go-build"],
              "cargo": [cargo / "registry", cargo / "git"]}
    found = []
    for tool, folders in wanted.items():
        for folder in map(Path, folders):
            if not folder.is_dir() and (tool is None or shutil.which(tool, path=env.get("PATH"))):
                try:
                    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                except OSError:
                    continue
            if folder.is_dir():
                found.append(folder)
    return found


def policy_for_checkout(checkout, *, tmp_dir: str | Path, data_dir: str | Path | None = None,
                        tars_env_file: str | Path | None = None, home: str | Path | None = None,
                        extra_writable: Iterable[str | Path] = (), extra_hidden: Iterable[str | Path] = (),
                        env: Mapping[str, str] = os.environ, network: bool = True) -> Policy:
    """The policy of one task (a core.git_workspace.TaskCheckout). Writable: its work tree, tmp_dir (give it to the
    commands as TMPDIR), the package caches, extra_writable (a project virtualenv; folders, created when missing);
    nothing in the owner's repository (the checkout is a repository of its own), and a clone cache only readable.
    Not readable: data_dir (TARS's DATA_DIR; default: the checkout's data
    folder), tars_env_file, the credentials in home (SECRET_PATHS) and extra_hidden."""
    from core.git_workspace import CLONE  # here: git_workspace is heavy and the sandbox is imported early

    home = Path(home or Path.home())
    extra_writable = [Path(path) for path in extra_writable]
    for folder in [Path(tmp_dir), *extra_writable]:  # a folder made later, inside the sandbox, would be refused
        if not folder.exists():
            folder.mkdir(mode=0o700, parents=True)
    writable = [checkout.worktree, tmp_dir, *cache_dirs(home, env), *extra_writable, *DEVICES]
    readable = []
    if checkout.mode == CLONE:  # its cache lives in DATA_DIR, and the task repository borrows its objects
        readable.append(checkout.repo)
    hidden = [*(home / name for name in SECRET_PATHS), data_dir or checkout.data_dir, *extra_hidden]
    if tars_env_file:
        hidden.append(tars_env_file)
    return Policy(tuple(map(str, writable)), tuple(map(str, hidden)), tuple(map(str, readable)), network)


# --- Landlock -----------------------------------------------------------------------------------------------------

def _handled_fs(abi: int) -> int:
    """What the ruleset controls: not EXECUTE (running the system's tools is the point), not READ_DIR (see the
    module docstring), not IOCTL_DEV (terminals need it)."""
    rights = _WRITE_FILE | _READ_FILE | _WRITE_TREE
    return rights | (_REFER if abi >= 2 else 0) | (_TRUNCATE if abi >= 3 else 0)


def read_grants(policy: Policy) -> list[str]:
    """Where reading is granted: every sibling on the way from / to each hidden path, then the allowed paths."""
    if not policy.hidden:
        return ["/"]
    ancestors = {os.path.dirname(h) for h in policy.hidden}
    for path in list(ancestors):
        while path != "/":
            path = os.path.dirname(path)
            ancestors.add(path)
    grants = []
    for folder in sorted(ancestors):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            path = os.path.join(folder, name)
            # A symbolic link needs no rule: Landlock checks where it leads, which has rules of its own.
            if path not in ancestors and path not in policy.hidden and not os.path.islink(path):
                grants.append(path)
    return grants + list(policy.readable)


def _add_rule(ruleset: int, path: str, access: int) -> None:
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):  # a file's rule may carry only file rights
            access &= _READ_FILE | _WRITE_FILE | _TRUNCATE
        rule = _PathBeneath(access, fd)
        _syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0)
    finally:
        os.close(fd)


def _landlock_ruleset(policy: Policy, abi: int) -> int:
    handled = _handled_fs(abi)
    net = _CONNECT_TCP if not policy.network and abi >= 4 else 0  # handled with no port allowed: no connect
    scoped = _SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL if abi >= 6 else 0
    attr = _RulesetAttr(handled, net, scoped)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8  # older kernels refuse fields they do not know
    ruleset = _syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), size, 0)
    try:
        for path in read_grants(policy):
            try:
                _add_rule(ruleset, path, _READ_FILE)
            except OSError as exc:  # gone since listed, or unreadable to us: nothing to grant there
                if exc.errno not in (errno.ENOENT, errno.EACCES, errno.ENOTDIR, errno.ELOOP):
                    raise
        for path in policy.writable:
            _add_rule(ruleset, path, handled)
    except BaseException:
        os.close(ruleset)
        raise
    return ruleset


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _last_cap() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return 63  # dropping a capability the kernel does not have fails with EINVAL, which is ignored


def make_non_dumpable() -> bool:
    """prctl(PR_SET_DUMPABLE, 0) for this process (Linux; the worker and its work-horses): its /proc/<pid>/environ
    and memory are then closed to processes without CAP_SYS_PTRACE, root's sandboxed commands included. Inherited by
    fork, reset by exec (the commands themselves stay ordinary). False where it is not available."""
    return _LIBC is not None and _LIBC.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0


def _enter(ruleset: int) -> Callable[[], None]:
    """What the child runs between fork and exec: every ctypes object made now, in the parent. As root it first
    drops every capability (bounding set, ambient, then effective/permitted/inheritable), so that the command is an
    ordinary process of uid 0: no CAP_SYS_PTRACE (other processes' /proc/<pid>/environ), no CAP_DAC_OVERRIDE."""
    prctl, syscall, capset, get_errno = _LIBC.prctl, _LIBC.syscall, _LIBC.capset, ctypes.get_errno
    ulong = ctypes.c_ulong
    no_new_privs = (ctypes.c_int(_PR_SET_NO_NEW_PRIVS), ulong(1), ulong(0), ulong(0), ulong(0))
    restrict = (ctypes.c_long(_SYS_RESTRICT_SELF), ctypes.c_long(ruleset), ctypes.c_long(0))
    root = os.geteuid() == 0
    bounding = [(ctypes.c_int(_PR_CAPBSET_DROP), ulong(cap), ulong(0), ulong(0), ulong(0))
                for cap in range(_last_cap() + 1)] if root else []
    ambient = (ctypes.c_int(_PR_CAP_AMBIENT), ulong(_PR_CAP_AMBIENT_CLEAR_ALL), ulong(0), ulong(0), ulong(0))
    header, data = _CapHeader(_CAP_VERSION_3, 0), (_CapData * 2)()
    no_caps = (ctypes.byref(header), ctypes.byref(data))

    def enter() -> None:
        # Raising here makes Popen raise in the parent (SubprocessError) and the command never runs: fail closed.
        if root:
            for args in bounding:
                prctl(*args)  # EINVAL: a number this kernel has no capability for
            prctl(*ambient)
            if capset(*no_caps) != 0:
                raise OSError(get_errno(), "could not drop root's capabilities")
        if prctl(*no_new_privs) != 0 or syscall(*restrict) != 0:
            raise OSError(get_errno(), "could not enter the sandbox")
    return enter


# --- bubblewrap and sandbox-exec: the command line around the command ---------------------------------------------

def bwrap_argv(policy: Policy) -> list[str]:
    """bwrap's options for policy: / read-only, hidden paths covered, allowed paths bound back on top."""
    args = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--unshare-pid", "--proc", "/proc", "--die-with-parent"]
    if not policy.network:
        args.append("--unshare-net")
    mounts = [(p, "hide") for p in policy.hidden] + [(p, "ro") for p in policy.readable] + \
             [(p, "rw") for p in policy.writable if not _within(p, "/dev")]  # --dev made a private /dev
    covers = []
    for path, how in sorted(mounts, key=lambda mount: mount[0].count("/")):  # outer first: inner ones go on top
        if how == "hide" and os.path.isdir(path):
            args += ["--tmpfs", path]
            covers += ["--remount-ro", path]  # last, once the allowed paths inside have their mount points
        elif how == "hide":
            args += ["--ro-bind", "/dev/null", path]
        else:
            args += ["--ro-bind" if how == "ro" else "--bind", path, path]
    return args + covers + ["--"]


def _sbpl_paths(paths: Iterable[str]) -> str:
    return " ".join('(subpath "{}")'.format(p.replace("\\", "\\\\").replace('"', '\\"')) for p in paths)


def sbpl_profile(policy: Policy) -> str:
    """A macOS sandbox-exec profile for policy (the last matching rule wins)."""
    lines = ["(version 1)", "(allow default)", "(deny file-write*)",
             f'(allow file-write* {_sbpl_paths(policy.writable)} (regex #"^/dev/ttys[0-9]+$"))']
    if policy.hidden:
        lines += [f"(deny file-read* {_sbpl_paths(policy.hidden)})"]
        allowed = [p for p in policy.readable + policy.writable if any(_within(p, h) for h in policy.hidden)]
        if allowed:
            lines.append(f"(allow file-read* {_sbpl_paths(allowed)})")
    if not policy.network:
        lines.append('(deny network-outbound (remote ip "*:*"))')
    lines += ["(deny signal)", "(allow signal (target same-sandbox))"]
    return "\n".join(lines) + "\n"


# --- what this machine offers -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Support:
    """The best sandbox this machine offers; str() is the line for the worker's banner and /health."""

    kind: str
    abi: int = 0  # Landlock's

    def gaps(self, network: bool = True) -> list[str]:
        """What this backend cannot enforce here."""
        if self.kind == LANDLOCK:
            needs = [(2, "renaming or linking across folders is refused"),
                     (3, "truncate(2) is not controlled"), (6, "signals to other processes are not blocked")]
            if not network:
                needs.append((4, "the network stays on"))
            return [f"{what} (needs Landlock ABI {abi})" for abi, what in needs if self.abi < abi]
        if self.kind == BUBBLEWRAP:
            return [] if not network else ["abstract unix sockets are reachable"]
        return [] if self.kind == SANDBOX_EXEC else ["nothing is contained"]

    def line(self, network: bool = True) -> str:
        """str(self) with the network's state and what is not enforced here (the banner's and /health's line)."""
        text = str(self) if network else str(self).replace("network", "network off")
        gaps = self.gaps(network)
        return text + (f"; not enforced: {'; '.join(gaps)}" if gaps and self.kind != NONE else "")

    def __str__(self) -> str:
        if self.kind == NONE:
            return ("none: no Landlock, bubblewrap or sandbox-exec here, so commands are not contained and every "
                    "command not on the allow-list asks for the owner's code")
        if self.kind == LANDLOCK:
            parts = ["files"] + (["network"] if self.abi >= 4 else []) + (["signals"] if self.abi >= 6 else [])
            return f"landlock (ABI {self.abi}): {', '.join(parts)}"
        return f"{self.kind}: files, network, signals"


def _bwrap_works() -> bool:
    """bwrap may be installed where user namespaces are off: try it once."""
    if not shutil.which("bwrap"):
        return False
    try:
        return subprocess.run([*bwrap_argv(Policy(())), "/bin/true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def status_line(setting: str = "auto", network: bool = True) -> str:
    """What the worker's banner and /health say: the sandbox tasks get with the settings SANDBOX and
    SANDBOX_NETWORK (network: SANDBOX_NETWORK != "off") on this machine."""
    if setting == "off":
        return ("off (SANDBOX=off): commands are not contained, so every command not on the allow-list asks for the "
                "owner's code")
    return detect().line(network)


@functools.cache
def detect() -> Support:
    """Landlock when the kernel has it, else bubblewrap, else sandbox-exec on macOS, else none (cached)."""
    abi = landlock_abi()
    if abi:
        return Support(LANDLOCK, abi)
    if sys.platform.startswith("linux") and _bwrap_works():
        return Support(BUBBLEWRAP)
    if sys.platform == "darwin" and shutil.which("sandbox-exec"):
        return Support(SANDBOX_EXEC)
    return Support(NONE)


# --- one task's sandbox -------------------------------------------------------------------------------------------

_REFUSED = re.compile(r"Permission denied|Operation not permitted|Read-only file system")


def refusal_note(output: str, exit_code: int | None, *, network: bool = True) -> str | None:
    """The line to add to a failed command's output when the sandbox probably refused it (None otherwise)."""
    if not exit_code or exit_code < 0 or not _REFUSED.search(output):
        return None
    return ("(The sandbox refused an operation: the command may write only inside the task's checkout, its "
            "temporary folder ($TMPDIR), its virtualenv and the package caches; it may not read TARS's data, other "
            "tasks' files or credentials such as ~/.ssh" + ("; it has no network" if not network else "") +
            "; it may signal only processes it started. Work inside the checkout.)")


@dataclass
class Sandbox:
    """One task's sandbox: built once (Landlock: the ruleset), applied to each command; close() at the task's end.

        argv = box.argv(["/bin/bash", "-c", command])        # bwrap / sandbox-exec put themselves in front
        Popen(argv, ..., preexec_fn=box.preexec(before=hook)) # Landlock enters the ruleset in the child
    """

    policy: Policy
    kind: str | None = None  # a backend to use instead of detect()'s (tests)
    support: Support = field(init=False)
    _ruleset: int | None = field(init=False, default=None, repr=False)
    _prefix: list[str] = field(init=False, default_factory=list, repr=False)

    def __post_init__(self) -> None:
        found = detect()
        self.support = found if self.kind in (None, found.kind) else Support(self.kind)
        self.kind = self.support.kind
        self.policy = self.policy.real()
        if self.kind == LANDLOCK:
            self._ruleset = _landlock_ruleset(self.policy, self.support.abi)
        elif self.kind == BUBBLEWRAP:
            self._prefix = bwrap_argv(self.policy)
        elif self.kind == SANDBOX_EXEC:
            self._prefix = ["sandbox-exec", "-p", sbpl_profile(self.policy)]

    @property
    def active(self) -> bool:
        return self.kind != NONE

    @property
    def status(self) -> str:
        """E.g. 'landlock (ABI 7): files, network off, signals' and what is missing."""
        return self.support.line(self.policy.network)

    def argv(self, argv: list[str]) -> list[str]:
        return [*self._prefix, *argv]

    def preexec(self, before: Callable[[], None] | None = None) -> Callable[[], None] | None:
        """The preexec_fn for Popen: before() (e.g. tools._child_setup_hook()), then into the sandbox."""
        if self.kind != LANDLOCK:
            return before
        if self._ruleset is None:
            raise RuntimeError("this sandbox was closed: its task is over")
        enter = _enter(self._ruleset)
        if before is None:
            return enter

        def hook() -> None:
            before()
            enter()
        return hook

    def refusal_note(self, output: str, exit_code: int | None) -> str | None:
        return refusal_note(output, exit_code, network=self.policy.network) if self.active else None

    def close(self) -> None:
        if self._ruleset is not None:
            os.close(self._ruleset)
            self._ruleset = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
