"""Claude's client tools (bash_20250124, text_editor_20250728) executed inside one project directory.

Tool calls are untrusted input: every editor path goes through Workspace.resolve, every command runs in its own
process group under a timeout (and, in a worker, inside the task's OS sandbox, core/sandbox.py), and every output is
capped before it goes back into the model's context.
"""
from __future__ import annotations

import ctypes
import errno
import os
import secrets
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from typing import Literal

from core import project_env
from core.exceptions import InvalidProjectPath, ToolError, WorkspaceUnusable
from core.git_workspace import GENERATED_DIRS, GENERATED_FILES
from core.sandbox import Sandbox
from core.schema import tool_of

OUTPUT_LIMIT = 10 * 1024  # bytes of tool output given back to the model

SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD")
SNAPSHOT_SKIP = GENERATED_DIRS | {".git"}  # caches a test run writes are not files the task changed
SNAPSHOT_MAX_FILES = 5000
EDITOR_COMMANDS = ("view", "create", "str_replace", "insert")
SNIPPET_LINES = 4              # context lines around an edit, as in Anthropic's reference editor
MAX_PATH_CHARS = 4096
MAX_NAME_BYTES = 255
MAX_VIEW_BYTES = 16 * 1024 * 1024  # larger files are for bash (head, sed -n), not for reading whole
NOTE_ROOM = 256                # bytes kept free under the limit for '[exit code N]'-style notes
READER_GRACE = 2.0             # seconds to wait for the output pipe to close once the command is over
_PR_SET_PDEATHSIG = 1
_UNUSABLE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


# --- the two tools, as every model is offered them ------------------------------------------------------------
# Claude knows them built in (their type names their semantics); an OpenAI-compatible model gets function tools with
# the same fields, their schemas generated from these documented inputs (core/openai_model.py).
BASH_TOOL = {"type": "bash_20250124", "name": "bash"}
EDITOR_TOOL = {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}


@dataclass
class BashInput:
    """Run a command in a bash shell in the project directory and get its output (stdout and stderr) and exit code.
    Every command starts a fresh shell there; it is killed after the command timeout, so never start servers or
    anything that waits for input. Commands that destroy or change things outside the project ask the owner first
    and may be refused.

    Attributes:
        command: The bash command to run. Required unless restart is true.
        restart: true restarts the tool (ends any command still running); then command may be left out.
    """

    command: str | None = None
    restart: bool | None = None


@dataclass
class EditorInput:
    """View, create and edit files of the project. view: a file's lines numbered (or a directory's files two levels
    deep). create: a new file (or overwrite one) with file_text. str_replace: replace old_str, which must occur
    exactly once, by new_str. insert: insert insert_text after line insert_line (0: at the top).

    Attributes:
        command: What to do: view, create, str_replace or insert.
        path: The file or directory, relative to the project directory.
        file_text: create: the whole content of the file.
        old_str: str_replace: the exact text to replace (with enough lines around it to occur only once).
        new_str: str_replace: the text to put in its place (empty to delete it).
        insert_line: insert: the line after which insert_text goes (0: before the first line).
        insert_text: insert: the text to insert.
        view_range: view: [first line, last line] of a file, 1-based; -1 as the last reads to the end.
    """

    command: Literal["view", "create", "str_replace", "insert"]
    path: str
    file_text: str | None = None
    old_str: str | None = None
    new_str: str | None = None
    insert_line: int | None = None
    insert_text: str | None = None
    view_range: list[int] | None = None


BUILT_IN_TOOLS = {BASH_TOOL["type"]: tool_of(BashInput, BASH_TOOL["name"]),
                  EDITOR_TOOL["type"]: tool_of(EditorInput, EDITOR_TOOL["name"])}
"""Anthropic's built-in tools by type, as (name, description, input_schema): what other providers are offered."""


def mount_point(path: str | Path) -> str:
    """The mount point of the file system holding path (the highest ancestor on the same device)."""
    current = os.path.realpath(path)
    try:
        device = os.stat(current).st_dev
        while current != os.sep:
            parent = os.path.dirname(current)
            if os.stat(parent).st_dev != device:
                break
            current = parent
    except OSError:
        pass
    return current


@dataclass
class ToolResult:
    output: str            # text for the tool_result block (already capped)
    is_error: bool = False
    files_changed: list[str] = field(default_factory=list)  # project-relative paths created/modified by this call
    exit_code: int | None = None   # bash only
    timed_out: bool = False        # bash only
    unusable: bool = False         # editor only: a WorkspaceUnusable refusal (disk full, read-only, not writable)


def _error(message: str) -> ToolResult:
    return ToolResult(output=message, is_error=True)


def _marker(cut: int) -> str:
    return f"[... {cut} characters cut from the middle of this output ...]"


def cap_output(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """Keep head and tail (about 60/40) of text longer than limit UTF-8 bytes, with a marker line in the middle."""
    return _cap(text, limit)


def _cap(text: str, limit: int, already_cut: int = 0) -> str:
    # already_cut counts output bytes the bash reader dropped before decoding; for the mostly-ASCII output of
    # commands, bytes and characters are close enough for the marker.
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit and not already_cut:
        return text
    budget = max(limit - len(("\n" + _marker(len(text) + already_cut) + "\n").encode()), 0)
    head_bytes = budget * 6 // 10
    tail_bytes = budget - head_bytes
    # 'ignore' drops the multi-byte character split by a byte cut rather than showing a replacement glyph.
    head = data[:head_bytes].decode("utf-8", "ignore")
    tail = data[max(len(data) - tail_bytes, head_bytes):].decode("utf-8", "ignore") if tail_bytes else ""
    # Cut on line boundaries when one is near, so the model never sees half a line.
    newline = head.rfind("\n")
    if newline >= len(head) * 3 // 4:
        head = head[:newline + 1]
    newline = tail.find("\n")
    if 0 <= newline <= len(tail) // 4:
        tail = tail[newline + 1:]
    cut = len(text) - len(head) - len(tail) + already_cut
    separator = "" if not head or head.endswith("\n") else "\n"
    return f"{head}{separator}{_marker(cut)}\n{tail}"


def scrub_environment(environ: Mapping[str, str], extra_names: Iterable[str] = ()) -> dict[str, str]:
    """Copy of environ without credentials-looking variables and without the names in extra_names."""
    extra = {name.upper() for name in extra_names}
    return {name: value for name, value in environ.items()
            if name.upper() not in extra and not any(marker in name.upper() for marker in SECRET_MARKERS)}


def _load_prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # looked up once here: loading libraries between fork and exec is not safe


def _child_setup_hook():
    """preexec_fn making the direct child die with the worker (Linux only). Runs in the forked child."""
    if _PRCTL is None:
        return None
    parent = os.getpid()

    def hook() -> None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != parent:  # the worker died before prctl took effect
            os._exit(1)
    # Note: the death signal follows the parent *thread*; bash() blocks its thread until the child ends.
    return hook


def _kill_group(pgid: int) -> bool:
    """SIGKILL a process group; True if it still had members."""
    try:
        os.killpg(pgid, signal.SIGKILL)
        return True
    except (ProcessLookupError, PermissionError):
        return False


class _OutputBuffer:
    """Keeps the first and last `keep` bytes of a stream, so `yes` running to the timeout cannot fill memory."""

    def __init__(self, keep: int):
        self.keep = keep
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0
        self.lock = threading.Lock()

    def drain(self, stream) -> None:
        fd = stream.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            with self.lock:
                room = self.keep - len(self.head)
                if room > 0:
                    self.head += chunk[:room]
                    chunk = chunk[room:]
                self.tail += chunk
                excess = len(self.tail) - self.keep
                if excess > 0:
                    del self.tail[:excess]
                    self.dropped += excess

    def text(self, limit: int) -> str:
        with self.lock:
            if not self.dropped:
                return _cap((self.head + self.tail).decode("utf-8", "replace"), limit)
            text = self.head.decode("utf-8", "replace") + self.tail.decode("utf-8", "replace")
            return _cap(text, limit, self.dropped)


def _split_lines(text: str) -> tuple[list[str], bool]:
    """Lines without their '\\n', and whether the text ended with one (so edits keep the file's final newline)."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
        return lines, True
    return lines, False


def _numbered(lines: list[str], first_number: int) -> str:
    return "\n".join(f"{number:6}\t{line}" for number, line in enumerate(lines, first_number))


class Workspace:
    """One task's project directory: the only place the model's tools may read, write and run."""

    def __init__(self, root: str | Path, *, command_timeout: float = 120.0, env: Mapping[str, str] | None = None,
                 output_limit: int = OUTPUT_LIMIT, sandbox: Sandbox | None = None):
        real = Path(os.path.realpath(root))
        if not real.is_dir():
            raise InvalidProjectPath(f"The project directory {root} does not exist or is not a directory.")
        self.root = real
        self.command_timeout = command_timeout
        # The worker passes the project's environment (core/project_env.py); by default, no secrets and never
        # TARS's own Python.
        self.env = dict(env) if env is not None else project_env.environment(scrub_environment(os.environ))
        self.output_limit = output_limit
        # The task's OS sandbox (core/sandbox.py) every command runs in; None: unconfined (tests, tools other than the
        # worker). The editor works in this process: resolve() is its confinement.
        self.sandbox = sandbox
        self._prefix = str(real).rstrip(os.sep) + os.sep
        self._lock = threading.Lock()  # guards _proc and _cancelled against kill_running from another thread
        self._proc: subprocess.Popen | None = None
        self._cancelled = False
        self._task_cancelled = False  # set by cancel(): sticky, unlike a restart's kill_running

    # ---- paths -------------------------------------------------------------------------------------------

    def _inside(self, path: str) -> bool:
        return path == str(self.root) or path.startswith(self._prefix)

    def _display(self, path: Path) -> str:
        return os.path.relpath(path, self.root)

    def resolve(self, path: str) -> Path:
        """Turn a path the model gave into a real path inside root, or raise ToolError saying why not."""
        if not isinstance(path, str) or not path:
            raise ToolError("Give a path to a file or directory inside the project, relative to its root.")
        if "\x00" in path:
            raise ToolError("The path contains a NUL byte; give a plain file path.")
        if len(path) > MAX_PATH_CHARS:
            raise ToolError(f"The path is longer than {MAX_PATH_CHARS} characters; use a shorter path.")
        shown = path if len(path) <= 200 else path[:200] + "..."
        try:
            name_bytes = max(len(part.encode("utf-8")) for part in path.split("/"))
        except UnicodeEncodeError:
            raise ToolError("The path is not valid Unicode text; give a plain file path.") from None
        if name_bytes > MAX_NAME_BYTES:
            raise ToolError(f"A file or directory name in the path is longer than {MAX_NAME_BYTES} bytes; "
                            "use shorter names.")
        joined = os.path.join(self.root, path)  # an absolute path replaces root here, and is then checked
        if not self._inside(os.path.normpath(joined)):
            if os.path.isabs(path) and ".." not in path.split("/"):
                raise ToolError(f"The path {shown} is outside the project directory {self.root}; use a path "
                                "inside it (relative paths are taken from the project root).")
            raise ToolError(f"The path {shown} uses '..' to leave the project directory; stay inside it.")
        # realpath follows every symlink component (dangling ones too) and keeps the non-existing rest as given.
        real = os.path.realpath(joined)
        if not self._inside(real):
            raise ToolError(f"The path {shown} goes through a symbolic link that points outside the project "
                            "directory, so it cannot be used; work with files that really live in the project.")
        if len(os.fsencode(real)) >= MAX_PATH_CHARS:
            raise ToolError(f"The path {shown} is longer than {MAX_PATH_CHARS} bytes once joined to the project "
                            "directory; use a shorter path.")
        try:
            info = os.stat(real)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # realpath leaves a loop unresolved; stat says so
                raise ToolError(f"The path {shown} goes through a symbolic link loop (a link that points back to "
                                "itself), so it cannot be used.") from None
            if exc.errno == errno.ENAMETOOLONG:
                raise ToolError(f"The path {shown} is too long for the file system; use a shorter path.") from None
            info = None
        except ValueError:
            info = None
        # A second name for the same inode may live outside the project: reading or writing it would leak or
        # change outside content, and we cannot cheaply tell where the other names are.
        if info is not None and stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
            raise ToolError(f"The file {shown} is a hard link ({info.st_nlink} names share its content, which "
                            "may live outside the project), so the editor will not read or change it.")
        return Path(real)

    # ---- dispatch ------------------------------------------------------------------------------------------

    def run_tool(self, name: str, tool_input: dict) -> ToolResult:
        """Execute one tool_use block; every failure becomes an is_error result the model can read."""
        if not isinstance(tool_input, dict):
            return _error(f"The input of the {name} tool must be a JSON object.")
        try:
            if name == "bash":
                if tool_input.get("restart") is True:
                    return self.restart()
                command = tool_input.get("command")
                if not isinstance(command, str) or not command.strip():
                    return _error("The bash tool needs a non-empty 'command' string (or 'restart': true).")
                return self.bash(command)
            if name == "str_replace_based_edit_tool":
                return self.edit(tool_input)
            return _error(f"Unknown tool {name!r}: the tools available are 'bash' and "
                          "'str_replace_based_edit_tool'.")
        except ToolError as exc:
            return _error(str(exc))
        except (OSError, ValueError) as exc:  # e.g. a command string that cannot be passed to exec
            return _error(f"The {name} tool failed: {exc}.")

    # ---- bash ----------------------------------------------------------------------------------------------

    def bash(self, command: str) -> ToolResult:
        """Run one command to completion in root; see the module docstring for the confinement rules."""
        if "\x00" in command:
            return _error("The command contains a NUL byte, which bash cannot receive.")
        before = self._snapshot()
        buffer = _OutputBuffer(self.output_limit)
        argv, hook = ["/bin/bash", "-c", command], _child_setup_hook()
        with self._lock:  # registering under the lock means kill_running never misses a started command
            if self._task_cancelled:  # cancelled before this command started: it never starts
                return ToolResult(output="[cancelled: the command was not run because the task was cancelled]",
                                  is_error=True)
            self._cancelled = False
            try:
                if self.sandbox is not None:
                    argv, hook = self.sandbox.argv(argv), self.sandbox.preexec(before=hook)
                proc = subprocess.Popen(
                    argv, cwd=self.root, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=hook)
            except (subprocess.SubprocessError, RuntimeError) as exc:  # the child could not enter the sandbox
                return _error(f"The command was not run: it could not be started inside the sandbox ({exc}), and "
                              "TARS never runs a command unconfined. This is a fault of the worker's machine, not "
                              "of the command: say so in your summary.")
            self._proc = proc
        reader = threading.Thread(target=buffer.drain, args=(proc.stdout,), daemon=True)
        reader.start()
        timed_out = False
        try:
            proc.wait(timeout=self.command_timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid)
            proc.wait()
        # Nothing a command starts may outlive it (each call is a fresh bash, and a stray server would keep
        # running after the task); this also closes the pipe that background jobs hold open.
        leftovers = not timed_out and _kill_group(proc.pid)
        with self._lock:
            self._proc = None
            cancelled = self._cancelled
        reader.join(READER_GRACE)  # a process that escaped with setsid may keep the pipe; don't wait for it
        if not reader.is_alive():
            proc.stdout.close()

        text = buffer.text(max(self.output_limit - NOTE_ROOM, 0)) or "(no output)"
        notes = []
        code = proc.returncode
        refused = self.sandbox.refusal_note(text, code) if self.sandbox is not None and not timed_out else None
        if refused:
            text = buffer.text(max(self.output_limit - NOTE_ROOM - len(refused.encode()), 0)) or "(no output)"
        if cancelled:
            notes.append("[cancelled: the command was stopped because the task was cancelled]")
        elif timed_out:
            notes.append(f"[timed out: the command was killed after {self.command_timeout:g} s, together with "
                         "every process it started]")
        else:
            if code < 0:
                try:
                    notes.append(f"[killed by signal {signal.Signals(-code).name}]")
                except ValueError:
                    notes.append(f"[killed by signal {-code}]")
            elif code:
                notes.append(f"[exit code {code}]")
            if leftovers:
                notes.append("[background processes this command left running were stopped; a command must "
                             "finish everything it starts]")
            if refused:
                notes.append(refused)
        if notes:
            text = text + ("" if text.endswith("\n") else "\n") + "\n".join(notes)
        return ToolResult(output=text, is_error=cancelled or timed_out, files_changed=self._changed_since(before),
                          exit_code=code, timed_out=timed_out)

    def restart(self) -> ToolResult:
        self.kill_running()
        return ToolResult(output="tool has been restarted.")

    def kill_running(self) -> None:
        """SIGKILL the process group of the running command, if any; safe to call from any thread."""
        with self._lock:
            if self._proc is not None:
                self._cancelled = True
                _kill_group(self._proc.pid)

    def cancel(self) -> None:
        """The task was cancelled: kill the running command, and never start another (a cancel landing between
        the loop's "Running: ..." and the command's start would otherwise let it run to its end)."""
        with self._lock:
            self._task_cancelled = True
        self.kill_running()

    def _snapshot(self) -> dict[str, tuple[int, int]]:
        seen: dict[str, tuple[int, int]] = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if d not in SNAPSHOT_SKIP)  # sorted: same order both times
            for name in sorted(filenames):
                if GENERATED_FILES.match(name):
                    continue
                full = os.path.join(dirpath, name)
                try:
                    info = os.lstat(full)
                except OSError:
                    continue
                seen[os.path.relpath(full, self.root)] = (info.st_mtime_ns, info.st_size)
                if len(seen) >= SNAPSHOT_MAX_FILES:
                    return seen
        return seen

    def _changed_since(self, before: dict[str, tuple[int, int]]) -> list[str]:
        return sorted(path for path, sig in self._snapshot().items() if before.get(path) != sig)

    # ---- text editor ---------------------------------------------------------------------------------------

    def edit(self, tool_input: dict) -> ToolResult:
        """text_editor_20250728: view, create, str_replace, insert (no undo_edit)."""
        if not isinstance(tool_input, dict):
            return _error("The editor input must be a JSON object.")
        try:
            command = tool_input.get("command")
            if command not in EDITOR_COMMANDS:
                return _error(f"Unsupported editor command {command!r}: use one of {', '.join(EDITOR_COMMANDS)} "
                              "(undo_edit is not available in this version; fix mistakes with another edit).")
            target = self.resolve(_field(tool_input, "path", str))
            return getattr(self, f"_{command}")(target, tool_input)
        except WorkspaceUnusable as exc:
            return ToolResult(output=str(exc), is_error=True, unusable=True)
        except ToolError as exc:
            return _error(str(exc))
        except UnicodeError:
            return _error("The text contains characters that cannot be written as UTF-8; remove them.")
        except OSError as exc:
            unusable = self._unusable(exc)
            if unusable is not None:
                return ToolResult(output=str(unusable), is_error=True, unusable=True)
            return _error(f"The file operation failed: {exc.strerror or exc}.")

    # ---- file access without following links (the path was checked by resolve; these re-check at open) ----

    def _unusable(self, exc: OSError) -> WorkspaceUnusable | None:
        """The WorkspaceUnusable an OSError from a write means, or None for an ordinary failure."""
        root = str(self.root)
        fs = mount_point(root)
        if exc.errno == errno.ENOSPC:
            return WorkspaceUnusable(f"No space left on device: the file system {fs} holding the project is full, "
                                     f"so nothing can be written; free some space on {fs}.", exc.errno, fs)
        if exc.errno == errno.EDQUOT:
            return WorkspaceUnusable(f"Disk quota exceeded on {fs}, which holds the project, so nothing can be "
                                     f"written; free some space on {fs} or raise the quota.", exc.errno, fs)
        if exc.errno == errno.EROFS:
            return WorkspaceUnusable(f"Read-only file system: the project directory {root} is on {fs}, which is "
                                     f"mounted read-only; remount {fs} read-write or make {root} writable.",
                                     exc.errno, fs)
        if exc.errno in (errno.EACCES, errno.EPERM) and not os.access(root, os.W_OK):
            return WorkspaceUnusable(f"Permission denied: the project directory {root} is not writable by TARS; "
                                     f"make {root} writable.", exc.errno, fs)
        return None

    def probe_writable(self) -> None:
        """Raise WorkspaceUnusable unless a file can be created, written and removed in root (for the worker)."""
        name = f".tars-probe-{secrets.token_hex(6)}"
        try:
            fd = os.open(os.path.join(self.root, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o600)
            try:
                os.write(fd, b"x" * 512)
                os.fsync(fd)
            finally:
                os.close(fd)
                try:
                    os.unlink(os.path.join(self.root, name))
                except OSError:
                    pass
        except OSError as exc:
            unusable = self._unusable(exc)
            if unusable is not None:
                raise unusable from None
            raise ToolError(f"The project directory {self.root} cannot be written: {exc.strerror or exc}.") from None

    def _open_dir(self, directory: Path, create: bool = False) -> int:
        """An fd of directory (inside root), reached from root one component at a time without following any
        symbolic link, so a link swapped in after resolve() cannot lead outside. create: make missing ones."""
        shown = self._display(directory)
        relative = os.path.relpath(directory, self.root)
        parts = [] if relative == "." else relative.split(os.sep)
        fd = os.open(self.root, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        try:
            for part in parts:
                try:
                    child = os.open(part, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise ToolError(f"The directory {shown} does not exist.") from None
                    try:
                        os.mkdir(part, 0o777, dir_fd=fd)
                    except FileExistsError:
                        pass
                    child = os.open(part, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise ToolError(f"{part} in the path {shown} is not a directory (a file, or a symbolic "
                                        "link that changed after the path was checked).") from None
                    raise
                os.close(fd)
                fd = child
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _stat_entry(self, dir_fd: int, name: str, shown: str) -> os.stat_result | None:
        """lstat of name in dir_fd, refusing links and multiply-linked files; None if it does not exist."""
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(info.st_mode):
            raise ToolError(f"{shown} is a symbolic link that changed after the path was checked; run the command "
                            "again.")
        if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
            raise ToolError(f"The file {shown} is a hard link ({info.st_nlink} names share its content, which "
                            "may live outside the project), so the editor will not read or change it.")
        return info

    def _read_text(self, target: Path) -> str:
        shown = self._display(target)
        if target == self.root:
            raise ToolError(f"{shown} is a directory; this command needs a file.")
        dir_fd = self._open_dir(target.parent)
        try:
            info = self._stat_entry(dir_fd, target.name, shown)
            if info is None:
                raise ToolError(f"The file {shown} does not exist; create it first or check the path with view.")
            if stat.S_ISDIR(info.st_mode):
                raise ToolError(f"{shown} is a directory; this command needs a file.")
            if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
                raise ToolError(f"{shown} is not a regular file (it is a FIFO, socket or device), so the editor "
                                "will not open it.")
            if info.st_size > MAX_VIEW_BYTES:
                raise ToolError(f"{shown} is larger than {MAX_VIEW_BYTES // (1024 * 1024)} MiB; read parts of it "
                                "with bash (head, sed -n) instead.")
            # O_NONBLOCK: a FIFO swapped in after the check opens at once instead of waiting for a writer.
            fd = os.open(target.name, os.O_RDONLY | _O_NOFOLLOW | os.O_NONBLOCK | _O_CLOEXEC, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
        try:
            opened = os.fstat(fd)
            if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
                raise ToolError(f"{shown} changed while it was being opened; run the command again.")
            chunks, total = [], 0
            while total <= MAX_VIEW_BYTES:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
        finally:
            os.close(fd)
        if total > MAX_VIEW_BYTES:
            raise ToolError(f"{shown} is larger than {MAX_VIEW_BYTES // (1024 * 1024)} MiB; read parts of it "
                            "with bash (head, sed -n) instead.")
        data = b"".join(chunks)
        try:
            if b"\x00" in data:
                raise UnicodeDecodeError("utf-8", data, 0, 1, "NUL byte")
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"{shown} is a binary or non-UTF-8 file, so it cannot be shown or edited as text; "
                            "inspect it with bash (for example `file` or `xxd | head`).") from None

    def _write_text(self, target: Path, text: str, create_dirs: bool = False) -> bool:
        """Write text (exactly, as UTF-8) to target atomically: a new file in the same directory, then rename
        over the old one, so a full disk or any failure leaves the old content intact. True if it existed."""
        data = text.encode("utf-8")
        shown = self._display(target)
        try:
            dir_fd = self._open_dir(target.parent, create=create_dirs)
        except OSError as exc:
            raise self._unusable(exc) or exc from None
        temp = f".tars-edit-{secrets.token_hex(6)}.tmp"
        try:
            info = self._stat_entry(dir_fd, target.name, shown)
            if info is not None and not stat.S_ISREG(info.st_mode):
                raise ToolError(f"{shown} exists and is not a regular file, so the editor will not write it.")
            mode = stat.S_IMODE(info.st_mode) if info is not None else 0o666  # new files get 0o666 minus umask
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, mode,
                         dir_fd=dir_fd)
            try:
                if info is not None:
                    os.fchmod(fd, mode)
                    try:
                        os.fchown(fd, info.st_uid, info.st_gid)
                    except OSError:
                        pass
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)  # a delayed ENOSPC shows here, before the rename, not after it
            finally:
                os.close(fd)
            os.replace(temp, target.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            temp = None
            return info is not None
        except OSError as exc:
            raise self._unusable(exc) or exc from None
        finally:
            if temp is not None:
                try:
                    os.unlink(temp, dir_fd=dir_fd)
                except OSError:
                    pass
            os.close(dir_fd)

    def _view(self, target: Path, tool_input: dict) -> ToolResult:
        shown = self._display(target)
        view_range = tool_input.get("view_range")
        if target.is_dir():
            if view_range is not None:
                raise ToolError("view_range only applies to files, not directories.")
            listing = "\n".join(self._listing(target))
            return ToolResult(cap_output(f"Here's the files and directories up to 2 levels deep in {shown}, "
                                         f"excluding hidden items:\n{listing}\n", self.output_limit))
        lines, _ = _split_lines(self._read_text(target))
        start, end = 1, len(lines)
        if view_range is not None:
            if (not isinstance(view_range, list) or len(view_range) != 2
                    or not all(isinstance(n, int) and not isinstance(n, bool) for n in view_range)):
                raise ToolError("view_range must be a list of two integers: [start_line, end_line].")
            start, end = view_range
            if not 1 <= start <= len(lines):
                raise ToolError(f"view_range start {start} is outside the file, which has {len(lines)} lines.")
            if end == -1:
                end = len(lines)
            elif end < start:
                raise ToolError(f"view_range end {end} is before its start {start}; use -1 to read to the end.")
            end = min(end, len(lines))  # lenient: a range running past EOF just stops there
        body = _numbered(lines[start - 1:end], start) if lines else "(empty file)"
        return ToolResult(cap_output(f"Here's the result of running `cat -n` on {shown}:\n{body}\n",
                                     self.output_limit))

    def _listing(self, directory: Path) -> list[str]:
        rows = [self._display(directory) + "/"]

        def entries(path: str) -> list[os.DirEntry]:
            try:
                with os.scandir(path) as it:
                    return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
            except OSError:
                return []

        for entry in entries(str(directory)):
            is_dir = entry.is_dir(follow_symlinks=False)  # never list through a symlink out of the project
            rows.append(self._display(Path(entry.path)) + ("/" if is_dir else ""))
            if is_dir:
                for sub in entries(entry.path):
                    rows.append(self._display(Path(sub.path)) + ("/" if sub.is_dir(follow_symlinks=False) else ""))
        return rows

    def _create(self, target: Path, tool_input: dict) -> ToolResult:
        text = _field(tool_input, "file_text", str)
        shown = self._display(target)
        if target == self.root or target.is_dir():
            raise ToolError(f"{shown} is a directory; give a file path to create.")
        if target.is_file():
            try:
                if self._read_text(target) == text:  # not a change: the task's "files changed" must agree with git
                    return ToolResult(f"File already has this content, left as it was: {shown}")
            except (ToolError, OSError, UnicodeError):
                pass  # unreadable as text: write it as asked
        existed = self._write_text(target, text, create_dirs=True)
        verb = "overwritten" if existed else "created"
        return ToolResult(f"File {verb} successfully at: {shown}", files_changed=[shown])

    def _str_replace(self, target: Path, tool_input: dict) -> ToolResult:
        old = _field(tool_input, "old_str", str)
        new = _field(tool_input, "new_str", str, default="")
        shown = self._display(target)
        if not old:
            raise ToolError("old_str is empty; give the exact text to replace, including a few lines around it.")
        text = self._read_text(target)
        count = text.count(old)
        if count == 0:
            raise ToolError(f"No replacement was performed: old_str did not appear verbatim in {shown}. Check its "
                            "whitespace and indentation against the file (view it first).")
        if count > 1:
            lines, index = [], text.find(old)
            while index != -1 and len(lines) < 20:
                lines.append(text.count("\n", 0, index) + 1)
                index = text.find(old, index + len(old))
            more = ", ..." if count > len(lines) else ""
            raise ToolError(f"No replacement was performed: old_str occurs {count} times in {shown}, starting on "
                            f"lines {', '.join(map(str, lines))}{more}. Include more surrounding lines so it "
                            "matches exactly once.")
        index = text.index(old)
        new_text = text[:index] + new + text[index + len(old):]
        self._write_text(target, new_text)
        first = text.count("\n", 0, index)
        snippet = self._snippet(new_text, first, first + new.count("\n"))
        return ToolResult(cap_output(f"The file {shown} has been edited. {snippet}Review the changes and make sure "
                                     "they are as expected. Edit the file again if necessary.", self.output_limit),
                          files_changed=[shown])

    def _insert(self, target: Path, tool_input: dict) -> ToolResult:
        line = _field(tool_input, "insert_line", int)
        # Some model outputs name the text new_str (the older editor's field); accept it as an alias.
        key = "insert_text" if "insert_text" in tool_input or "new_str" not in tool_input else "new_str"
        new = _field(tool_input, key, str)
        shown = self._display(target)
        lines, trailing_newline = _split_lines(self._read_text(target))
        if not 0 <= line <= len(lines):
            raise ToolError(f"insert_line {line} is out of range: use 0 (before the first line) up to "
                            f"{len(lines)} (after the last line).")
        new_lines = (new[:-1] if new.endswith("\n") else new).split("\n")
        result = lines[:line] + new_lines + lines[line:]
        new_text = "\n".join(result) + ("\n" if trailing_newline else "")
        self._write_text(target, new_text)
        snippet = self._snippet(new_text, line, line + len(new_lines) - 1)
        return ToolResult(cap_output(f"The file {shown} has been edited. {snippet}Review the changes and make sure "
                                     "they are as expected (correct indentation, no duplicate lines, etc). Edit the "
                                     "file again if necessary.", self.output_limit), files_changed=[shown])

    def _snippet(self, text: str, first: int, last: int) -> str:
        """Numbered lines first..last (0-based) of the edited text with SNIPPET_LINES of context."""
        lines, _ = _split_lines(text)
        start = max(0, first - SNIPPET_LINES)
        end = min(len(lines), last + SNIPPET_LINES + 1)
        return f"Here's the result of running `cat -n` on a snippet of the file:\n" \
               f"{_numbered(lines[start:end], start + 1)}\n"


_MISSING = object()


def _field(tool_input: dict, name: str, kind: type, default=_MISSING):
    """A typed field of the tool input; None counts as absent. Raises ToolError naming the field."""
    value = tool_input.get(name)
    if value is None:
        if default is _MISSING:
            raise ToolError(f"The {tool_input.get('command')} command needs a '{name}' field "
                            f"({kind.__name__}).")
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ToolError(f"The '{name}' field must be {kind.__name__}, not {type(value).__name__}.")
    return value
