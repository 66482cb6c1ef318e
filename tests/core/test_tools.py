"""The model's bash and editor tools, confined to one project directory: real files, real processes, no mocks."""
import errno
import os
import shutil
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from core.exceptions import ToolError, WorkspaceUnusable
from tests.conftest import fill
from core.tools import OUTPUT_LIMIT, ToolResult, Workspace, cap_output, scrub_environment

EDITOR = "str_replace_based_edit_tool"


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    return root


@pytest.fixture
def outside(tmp_path) -> Path:
    place = tmp_path / "outside"
    place.mkdir()
    (place / "secret.txt").write_text("outside secret\n")
    return place


@pytest.fixture
def ws(project) -> Workspace:
    return Workspace(project, command_timeout=20)


def edit(ws: Workspace, **tool_input) -> ToolResult:
    return ws.run_tool(EDITOR, tool_input)


def process_alive(pid: int) -> bool:
    """True while pid runs; a zombie nobody has reaped yet counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def wait_until_gone(pid: int, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.05)
    return False


# ---- editor ---------------------------------------------------------------------------------------------


def test_model_creates_and_views_a_file(ws, project):
    created = edit(ws, command="create", path="src/app.py", file_text="print('hi')\nx = 1\n")
    assert not created.is_error
    assert created.files_changed == ["src/app.py"]
    assert (project / "src/app.py").read_text() == "print('hi')\nx = 1\n"

    viewed = edit(ws, command="view", path="src/app.py")
    assert not viewed.is_error
    assert "     1\tprint('hi')\n     2\tx = 1\n" in viewed.output
    assert viewed.files_changed == []


def test_create_overwrites_an_existing_file(ws, project):
    (project / "notes.txt").write_text("old\n")
    result = edit(ws, command="create", path="notes.txt", file_text="new\n")
    assert not result.is_error and "overwritten" in result.output
    assert (project / "notes.txt").read_text() == "new\n"
    before = (project / "notes.txt").stat().st_mtime_ns
    again = edit(ws, command="create", path="notes.txt", file_text="new\n")  # the same content: not a change
    assert not again.is_error and "already has this content" in again.output and again.files_changed == []
    assert (project / "notes.txt").stat().st_mtime_ns == before


def test_str_replace_edits_and_shows_a_snippet(ws, project):
    (project / "a.py").write_text("".join(f"line{n}\n" for n in range(1, 21)))
    result = edit(ws, command="str_replace", path="a.py", old_str="line10\n", new_str="ten\nTEN\n")
    assert not result.is_error
    assert result.files_changed == ["a.py"]
    assert "    10\tten\n    11\tTEN\n" in result.output
    assert "     6\tline6" in result.output and "line1\n" not in result.output  # snippet, not the whole file
    assert (project / "a.py").read_text().count("line") == 19


def test_str_replace_requires_a_unique_match(ws, project):
    (project / "a.py").write_text("x = 1\ny = 2\nx = 1\n")
    twice = edit(ws, command="str_replace", path="a.py", old_str="x = 1", new_str="x = 3")
    assert twice.is_error
    assert "2 times" in twice.output and "lines 1, 3" in twice.output
    missing = edit(ws, command="str_replace", path="a.py", old_str="z = 9", new_str="")
    assert missing.is_error and "did not appear verbatim" in missing.output
    assert (project / "a.py").read_text() == "x = 1\ny = 2\nx = 1\n"


def test_str_replace_new_str_defaults_to_deleting(ws, project):
    (project / "a.txt").write_text("keep\ndrop\nkeep too\n")
    result = edit(ws, command="str_replace", path="a.txt", old_str="drop\n")
    assert not result.is_error
    assert (project / "a.txt").read_text() == "keep\nkeep too\n"


def test_insert_at_top_and_bottom(ws, project):
    (project / "f.txt").write_text("middle\n")
    top = edit(ws, command="insert", path="f.txt", insert_line=0, insert_text="top\n")
    assert not top.is_error and top.files_changed == ["f.txt"]
    bottom = edit(ws, command="insert", path="f.txt", insert_line=2, new_str="bottom")  # new_str alias
    assert not bottom.is_error
    assert (project / "f.txt").read_text() == "top\nmiddle\nbottom\n"
    assert "     3\tbottom" in bottom.output

    past_end = edit(ws, command="insert", path="f.txt", insert_line=9, insert_text="x")
    assert past_end.is_error and "3 (after the last line)" in past_end.output


def test_view_directory_two_levels(ws, project):
    (project / "a/b/c").mkdir(parents=True)
    (project / "a/one.txt").write_text("1")
    (project / "a/b/two.txt").write_text("2")
    (project / "a/b/c/deep.txt").write_text("3")
    (project / ".hidden").mkdir()
    (project / ".hidden/x.txt").write_text("x")
    (project / "top.txt").write_text("t")

    listing = edit(ws, command="view", path=".").output
    assert "a/\n" in listing and "a/one.txt" in listing and "a/b/" in listing and "top.txt" in listing
    assert "two.txt" not in listing and "deep.txt" not in listing  # deeper than two levels
    assert ".hidden" not in listing


def test_view_range(ws, project):
    (project / "f.txt").write_text("".join(f"row {n}\n" for n in range(1, 11)))
    middle = edit(ws, command="view", path="f.txt", view_range=[3, 4]).output
    assert "     3\trow 3\n     4\trow 4\n" in middle and "row 5" not in middle and "row 2" not in middle
    tail = edit(ws, command="view", path="f.txt", view_range=[9, -1]).output
    assert "     9\trow 9\n    10\trow 10\n" in tail and "row 8" not in tail
    bad = edit(ws, command="view", path="f.txt", view_range=[11, 12])
    assert bad.is_error and "10 lines" in bad.output
    assert edit(ws, command="view", path="f.txt", view_range="1-2").is_error


def test_view_of_a_missing_file_says_so(ws):
    result = edit(ws, command="view", path="nope.txt")
    assert result.is_error and "does not exist" in result.output


def test_undo_edit_not_supported(ws, project):
    (project / "f.txt").write_text("x\n")
    result = edit(ws, command="undo_edit", path="f.txt")
    assert result.is_error
    assert "view, create, str_replace, insert" in result.output and "undo_edit" in result.output


def test_binary_file_view_is_an_error(ws, project):
    (project / "blob.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    (project / "latin1.txt").write_bytes("café".encode("latin-1"))
    for name in ("blob.bin", "latin1.txt"):
        result = edit(ws, command="view", path=name)
        assert result.is_error and "binary or non-UTF-8" in result.output
    replaced = edit(ws, command="str_replace", path="blob.bin", old_str="PNG", new_str="GIF")
    assert replaced.is_error
    assert (project / "blob.bin").read_bytes().startswith(b"\x89PNG")


def test_malformed_input_is_an_error_result(ws):
    cases = [
        ("bash", {}),
        ("bash", {"command": 42}),
        ("bash", {"command": "   "}),
        ("bash", "ls"),
        (EDITOR, {}),
        (EDITOR, {"command": "view"}),
        (EDITOR, {"command": "view", "path": 7}),
        (EDITOR, {"command": "create", "path": "x.txt"}),
        (EDITOR, {"command": "str_replace", "path": "x.txt", "old_str": ["a"]}),
        (EDITOR, {"command": "insert", "path": "x.txt", "insert_line": "1", "insert_text": "a"}),
        (EDITOR, {"command": "insert", "path": "x.txt", "insert_line": True, "insert_text": "a"}),
        (EDITOR, {"command": ["view"], "path": "."}),
        ("computer", {"action": "screenshot"}),
    ]
    for name, tool_input in cases:
        result = ws.run_tool(name, tool_input)
        assert result.is_error, (name, tool_input)
        assert result.output.endswith("."), result.output  # a sentence, not a traceback
    missing = ws.run_tool(EDITOR, {"command": "create", "path": "x.txt"})
    assert "file_text" in missing.output
    unknown = ws.run_tool("computer", {})
    assert "bash" in unknown.output and EDITOR in unknown.output


# ---- path confinement -----------------------------------------------------------------------------------


def test_dotdot_escape_is_refused(ws, outside):
    for path in ("../outside/secret.txt", "src/../../outside/secret.txt", ".."):
        result = edit(ws, command="view", path=path)
        assert result.is_error and "'..'" in result.output, path
    with pytest.raises(ToolError):
        ws.resolve("../x")
    assert ws.resolve("src/../a.txt") == ws.root / "a.txt"  # '..' that stays inside is fine


def test_absolute_path_outside_is_refused(ws, outside):
    result = edit(ws, command="view", path=str(outside / "secret.txt"))
    assert result.is_error and "outside the project" in result.output
    written = edit(ws, command="create", path=str(outside / "new.txt"), file_text="x")
    assert written.is_error and not (outside / "new.txt").exists()
    assert edit(ws, command="view", path="/etc/passwd").is_error


def test_absolute_path_inside_is_accepted(ws, project):
    (project / "inside.txt").write_text("hello\n")
    result = edit(ws, command="view", path=str(project / "inside.txt"))
    assert not result.is_error and "hello" in result.output
    assert ws.resolve(str(project)) == ws.root


def test_symlink_pointing_out_is_refused(ws, project, outside):
    (project / "linkdir").symlink_to(outside)
    (project / "linkfile").symlink_to(outside / "secret.txt")
    (project / "dangling").symlink_to(outside / "not-yet.txt")

    for path in ("linkdir/secret.txt", "linkfile", "linkdir"):
        result = edit(ws, command="view", path=path)
        assert result.is_error and "symbolic link" in result.output, path
        assert "outside secret" not in result.output
    for path in ("linkdir/new.txt", "linkdir/sub/new.txt", "dangling", "linkfile"):
        result = edit(ws, command="create", path=path, file_text="pwned")
        assert result.is_error, path
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "outside secret\n"


def test_symlink_inside_the_project_is_followed(ws, project):
    (project / "real").mkdir()
    (project / "real/f.txt").write_text("inside\n")
    (project / "alias").symlink_to(project / "real")
    assert ws.resolve("alias/f.txt") == ws.root / "real/f.txt"
    assert "inside" in edit(ws, command="view", path="alias/f.txt").output


def test_hard_link_is_refused(ws, project, outside):
    os.link(outside / "secret.txt", project / "hard.txt")
    viewed = edit(ws, command="view", path="hard.txt")
    assert viewed.is_error and "hard link" in viewed.output and "outside secret" not in viewed.output
    written = edit(ws, command="create", path="hard.txt", file_text="changed")
    assert written.is_error
    assert (outside / "secret.txt").read_text() == "outside secret\n"


def test_very_long_path_is_refused(ws):
    long_name = edit(ws, command="create", path="a" * 256, file_text="x")
    assert long_name.is_error and "255 bytes" in long_name.output
    long_path = edit(ws, command="create", path="ab/" * 1400 + "f", file_text="x")
    assert long_path.is_error and "4096 characters" in long_path.output
    multibyte = edit(ws, command="create", path="é" * 128, file_text="x")  # 256 bytes in 128 characters
    assert multibyte.is_error


def test_nul_byte_refused(ws, project):
    result = edit(ws, command="create", path="a\x00b.txt", file_text="x")
    assert result.is_error and "NUL" in result.output
    assert list(project.iterdir()) == []
    assert ws.run_tool("bash", {"command": "echo a\x00b"}).is_error


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_resolve_never_returns_a_path_outside_root(tmp_path_factory, data):
    base = tmp_path_factory.mktemp("prop")
    root = base / "root"
    (root / "sub").mkdir(parents=True)
    (root / "out").symlink_to(base)
    (root / "self").symlink_to(root)
    ws = Workspace(root)
    pieces = st.sampled_from(["..", ".", "sub", "out", "self", "x", "", "/", str(root), str(base), "é"])
    path = data.draw(st.one_of(st.text(), st.lists(pieces, max_size=8).map("/".join)))
    try:
        resolved = ws.resolve(path)
    except ToolError as exc:
        assert str(exc)
    else:
        assert resolved == ws.root or resolved.is_relative_to(ws.root)
        assert os.path.realpath(resolved) == str(resolved)


# ---- every editor command against every way out --------------------------------------------------------

COMMANDS = {  # a valid input for each command but its path
    "view": {},
    "create": {"file_text": "pwned\n"},
    "str_replace": {"old_str": "outside", "new_str": "pwned"},
    "insert": {"insert_line": 0, "insert_text": "pwned\n"},
    "undo_edit": {},
}


def escape_paths(project: Path, outside: Path) -> dict[str, tuple[str, str]]:
    """Each way out of the project, set up for real: name -> (path given to the editor, words of the refusal)."""
    (project / "linkfile").symlink_to(outside / "secret.txt")
    (project / "linkdir").symlink_to(outside)
    (project / "deep").mkdir()
    (project / "deep/mid").symlink_to(outside)  # a symlinked directory in the middle of the path
    (project / "dangling").symlink_to(outside / "not-yet.txt")
    (project / "loop-a").symlink_to(project / "loop-b")
    (project / "loop-b").symlink_to(project / "loop-a")
    (project / "zero").symlink_to("/dev/zero")
    os.link(outside / "secret.txt", project / "hard.txt")
    os.mkfifo(project / "pipe")
    return {
        "dotdot": ("../outside/secret.txt", "'..'"),
        "dotdot in the middle": ("deep/../../outside/secret.txt", "'..'"),
        "absolute outside": (str(outside / "secret.txt"), "outside the project"),
        "absolute system file": ("/etc/hostname", "outside the project"),
        "symlinked file": ("linkfile", "symbolic link"),
        "symlinked directory": ("linkdir/secret.txt", "symbolic link"),
        "symlinked directory in the middle": ("deep/mid/secret.txt", "symbolic link"),
        "new file under a symlinked directory": ("deep/mid/sub/new.txt", "symbolic link"),
        "dangling symlink out": ("dangling", "symbolic link"),
        "symlink loop": ("loop-a", "loop"),
        "through a symlink loop": ("loop-a/x.txt", "loop"),
        "symlink to a device": ("zero", "symbolic link"),
        "hard link": ("hard.txt", "hard link"),
        "component over 255 bytes": ("a" * 256 + "/f.txt", "255 bytes"),
        "multibyte component over 255 bytes": ("é" * 128, "255 bytes"),
        "path over 4096": ("ab/" * 1400 + "f", "4096"),
        "NUL byte": ("secret\x00.txt", "NUL"),
    }


def tree(place: Path) -> dict[str, bytes]:
    return {str(p.relative_to(place)): p.read_bytes() for p in sorted(place.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_refuses_every_way_out(ws, project, outside, command):
    outside_before = tree(outside)
    for name, (path, words) in escape_paths(project, outside).items():
        result = edit(ws, command=command, path=path, **COMMANDS[command])
        assert result.is_error, (command, name)
        assert result.files_changed == [], (command, name)
        assert "outside secret" not in result.output, (command, name)
        assert result.output.endswith("."), (command, name, result.output)  # a sentence, not a traceback
        assert "Traceback" not in result.output and "Errno" not in result.output, (command, name, result.output)
        if command == "undo_edit":
            assert "undo_edit is not available" in result.output
        else:
            assert words in result.output, (command, name, result.output)
    assert tree(outside) == outside_before  # nothing read out of it was written, nothing created in it
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


@pytest.mark.parametrize("command", ["view", "str_replace", "insert"])
@pytest.mark.timeout(10)
def test_a_fifo_or_device_inside_the_project_is_refused_without_hanging(ws, project, command):
    os.mkfifo(project / "pipe")
    started = time.monotonic()
    result = edit(ws, command=command, path="pipe", **COMMANDS[command])
    assert result.is_error and "not a regular file" in result.output
    create = edit(ws, command="create", path="pipe", file_text="x")
    assert create.is_error and "not a regular file" in create.output
    assert stat.S_ISFIFO(os.lstat(project / "pipe").st_mode)  # still the FIFO, not replaced by a file
    if os.geteuid() == 0:
        os.mknod(project / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))  # /dev/null's numbers
        device = edit(ws, command=command, path="null", **COMMANDS[command])
        assert device.is_error and "not a regular file" in device.output
    assert time.monotonic() - started < 30  # refused at once, never blocked on the FIFO (wide: a loaded machine)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_accepts_an_absolute_path_inside(ws, project, command):
    (project / "in.txt").write_text("inside\n")
    result = edit(ws, command=command, path=str(project / "in.txt"), **{**COMMANDS[command], "old_str": "inside"})
    if command == "undo_edit":
        assert result.is_error and "undo_edit" in result.output
        return
    assert not result.is_error, result.output
    assert result.files_changed == ([] if command == "view" else ["in.txt"])


def test_a_dangling_symlink_inside_the_project_is_created_where_it_points(ws, project):
    (project / "later.txt").symlink_to(project / "real/later.txt")
    result = edit(ws, command="create", path="later.txt", file_text="made\n")
    assert not result.is_error and result.files_changed == ["real/later.txt"]
    assert (project / "real/later.txt").read_text() == "made\n" and (project / "later.txt").is_symlink()


def test_hard_links_inside_the_project_are_refused_too(ws, project):
    # The editor cannot tell where a file's other names live, so any regular file with st_nlink > 1 is refused
    # for reading (its content may be an outside file's) and for writing (a write would have to pick between
    # changing the outside file or silently splitting the two names).
    (project / "a.txt").write_text("a\n")
    os.link(project / "a.txt", project / "b.txt")
    for command in ("view", "str_replace", "insert", "create"):
        result = edit(ws, command=command, path="b.txt", **{**COMMANDS[command], "old_str": "a"})
        assert result.is_error and "hard link (2 names" in result.output
    assert (project / "a.txt").read_text() == "a\n"


def test_a_path_too_long_once_joined_is_a_clean_error(tmp_path):
    root = tmp_path / ("r" * 200) / ("s" * 200)
    root.mkdir(parents=True)
    long_ws = Workspace(root)
    path = "/".join(["d" * 250] * 15)  # under 4096 characters itself, over it under the root
    assert len(path) < 4096
    for command in ("view", "create"):
        result = edit(long_ws, command=command, path=path, file_text="x")
        assert result.is_error and "shorter path" in result.output, result.output


def test_a_symlink_swapped_in_after_the_check_is_not_followed(ws, project, outside):
    """TOCTOU: the path is checked, then a directory on it becomes a link out before the file is opened."""
    (project / "sub").mkdir()
    (project / "sub/f.txt").write_text("outside\n")
    target = ws.resolve("sub/f.txt")
    shutil.rmtree(project / "sub")
    (project / "sub").symlink_to(outside)
    (outside / "f.txt").write_text("outside\n")
    for command in ("view", "str_replace", "insert", "create"):
        with pytest.raises(ToolError, match="symbolic link that changed"):
            getattr(ws, f"_{command}")(target, {**COMMANDS[command], "command": command})
    assert (outside / "f.txt").read_text() == "outside\n"

    (project / "g.txt").write_text("outside\n")
    final = ws.resolve("g.txt")
    (project / "g.txt").unlink()
    (project / "g.txt").symlink_to(outside / "f.txt")  # the last component itself becomes a link
    for command in ("view", "str_replace", "create"):
        with pytest.raises(ToolError, match="symbolic link that changed"):
            getattr(ws, f"_{command}")(final, {**COMMANDS[command], "command": command})
    assert (outside / "f.txt").read_text() == "outside\n"


def test_writes_are_atomic_and_keep_the_file_mode(ws, project):
    script = project / "run.sh"
    script.write_text("echo old\n")
    script.chmod(0o750)
    inode = script.stat().st_ino
    assert not edit(ws, command="str_replace", path="run.sh", old_str="old", new_str="new").is_error
    assert stat.S_IMODE(script.stat().st_mode) == 0o750 and script.read_text() == "echo new\n"
    assert script.stat().st_ino != inode  # a new file renamed over the old one, not rewritten in place
    assert sorted(p.name for p in project.iterdir()) == ["run.sh"]  # no temporary file left behind
    assert not edit(ws, command="create", path="new/dir/made.txt", file_text="x").is_error
    assert stat.S_IMODE((project / "new/dir/made.txt").stat().st_mode) == 0o666 & ~current_umask()


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---- a project that cannot be written (real mounts; CI runs as root) -------------------------------------


def test_a_full_disk_is_a_clear_error_and_the_file_is_left_intact(tmp_path, mounts):
    root = mounts(tmp_path / "tiny", "size=64k")
    original = "first line\n" + "keep me\n" * 100
    (root / "a.txt").write_text(original)
    ws = Workspace(root)
    fill(root)
    for tool_input in ({"command": "str_replace", "path": "a.txt", "old_str": "first", "new_str": "lose" * 5000},
                       {"command": "create", "path": "a.txt", "file_text": "x" * 20000},
                       {"command": "insert", "path": "a.txt", "insert_line": 1, "insert_text": "y" * 20000},
                       {"command": "create", "path": "b.txt", "file_text": "z" * 20000}):
        result = edit(ws, **tool_input)
        assert result.is_error and result.unusable, (tool_input["command"], result.output)
        assert "No space left on device" in result.output and f"free some space on {root}" in result.output
        assert result.files_changed == []
        assert (root / "a.txt").read_text() == original
    assert sorted(p.name for p in root.iterdir()) == ["a.txt", "filler"]  # no half-written temporary files
    with pytest.raises(WorkspaceUnusable) as raised:
        ws.probe_writable()
    assert raised.value.errno == errno.ENOSPC and raised.value.filesystem == str(root)
    assert isinstance(raised.value, ToolError)
    assert not edit(ws, command="view", path="a.txt").is_error  # reading still works

    (root / "filler").unlink()
    assert not edit(ws, command="str_replace", path="a.txt", old_str=original, new_str="ok\n").is_error
    assert (root / "a.txt").read_text() == "ok\n"
    ws.probe_writable()


def test_a_read_only_project_is_a_clear_error(tmp_path, mounts):
    root = mounts(tmp_path / "ro", "size=64k")
    (root / "a.txt").write_text("hello\n")
    done = subprocess.run(["mount", "-o", "remount,ro", str(root)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"remounting read-only is not permitted here: {done.stderr.strip()}")
    ws = Workspace(root)
    for tool_input in ({"command": "str_replace", "path": "a.txt", "old_str": "hello", "new_str": "bye"},
                       {"command": "create", "path": "new/b.txt", "file_text": "b"},
                       {"command": "insert", "path": "a.txt", "insert_line": 0, "insert_text": "top"}):
        result = edit(ws, **tool_input)
        assert result.is_error and result.unusable, result.output
        assert "read-only file system" in result.output.lower() and "read-write" in result.output
    assert (root / "a.txt").read_text() == "hello\n"
    assert "hello" in edit(ws, command="view", path="a.txt").output
    with pytest.raises(WorkspaceUnusable) as raised:
        ws.probe_writable()
    assert raised.value.errno == errno.EROFS


def test_an_ordinary_failure_is_not_unusable(ws, project):
    (project / "f.txt").write_text("x\n")
    result = edit(ws, command="str_replace", path="f.txt", old_str="nope", new_str="y")
    assert result.is_error and not result.unusable
    denied = OSError(errno.EACCES, "Permission denied")
    assert ws._unusable(denied) is None or not os.access(ws.root, os.W_OK)  # the root is writable here
    assert ws._unusable(OSError(errno.EIO, "I/O error")) is None
    assert "Disk quota exceeded" in str(ws._unusable(OSError(errno.EDQUOT, "Disk quota exceeded")))


# ---- bash -----------------------------------------------------------------------------------------------


def test_command_runs_in_project_dir(ws, project):
    result = ws.run_tool("bash", {"command": "pwd; cat < /dev/stdin | wc -c"})
    assert not result.is_error and result.exit_code == 0
    assert result.output.splitlines() == [str(project.resolve()), "0"]  # stdin is /dev/null


def test_stderr_is_merged_and_empty_output_is_marked(ws):
    assert "oops" in ws.bash("echo oops >&2").output
    quiet = ws.bash("true")
    assert quiet.output == "(no output)" and quiet.exit_code == 0


def test_nonzero_exit_is_reported(ws):
    result = ws.run_tool("bash", {"command": "echo failing; exit 3"})
    assert result.exit_code == 3
    assert result.output == "failing\n[exit code 3]"
    assert not result.is_error  # the model reads the code; the tool itself worked


def test_timeout_kills_whole_process_group(project):
    ws = Workspace(project, command_timeout=1)
    started = time.monotonic()
    result = ws.bash("sleep 60 & echo $! > bg.pid; sleep 60")
    assert time.monotonic() - started < 30  # killed after its 1 s timeout, not after the 60 s sleep
    assert result.timed_out and result.is_error
    assert "killed after 1 s" in result.output
    background = int((project / "bg.pid").read_text())
    assert wait_until_gone(background)


def test_background_process_does_not_outlive_its_command(ws, project):
    started = time.monotonic()
    result = ws.bash("sleep 60 > /dev/null 2>&1 & echo $! > bg.pid; echo started")
    assert time.monotonic() - started < 30  # not after the background sleep's 60 s
    assert "started" in result.output and "background processes" in result.output
    assert wait_until_gone(int((project / "bg.pid").read_text()))


def test_kill_running_from_another_thread(ws):
    box = {}
    worker = threading.Thread(target=lambda: box.setdefault("result", ws.bash("sleep 60")))
    started = time.monotonic()
    worker.start()
    time.sleep(0.3)
    while worker.is_alive() and time.monotonic() - started < 30:
        ws.kill_running()  # repeated: the first call may land before the command has started
        worker.join(0.1)
    assert not worker.is_alive()
    assert time.monotonic() - started < 30  # killed, not after the 60 s sleep (wide: a loaded machine)
    assert box["result"].is_error and "cancelled" in box["result"].output


def test_a_cancel_landing_before_the_command_starts_keeps_it_from_ever_starting(ws, project):
    ws.cancel()  # the task was cancelled between the loop's "Running: ..." and the command's start
    result = ws.bash("touch started")
    assert result.is_error and "not run because the task was cancelled" in result.output
    assert not (project / "started").exists()


def test_restart_answers_like_the_reference_tool(ws):
    result = ws.run_tool("bash", {"restart": True})
    assert result.output == "tool has been restarted." and not result.is_error
    assert ws.bash("echo still works").output == "still works\n"


def test_output_capped_keeps_head_and_tail(ws):
    result = ws.bash("seq 1 100000")
    assert len(result.output.encode()) <= OUTPUT_LIMIT
    lines = result.output.splitlines()
    assert lines[:3] == ["1", "2", "3"]
    assert lines[-1] == "100000"
    assert "characters cut from the middle of this output" in result.output
    # nothing but whole lines on either side of the marker
    assert all(line.isdigit() for line in lines if "cut from the middle" not in line)


def test_cap_output_keeps_short_text_and_splits_long_text_sixty_forty():
    assert cap_output("short") == "short"
    text = "h" * 6000 + "t" * 6000
    capped = cap_output(text, limit=1000)
    assert len(capped.encode()) <= 1000
    head, marker, tail = capped.split("\n")
    assert set(head) == {"h"} and set(tail) == {"t"}
    assert 1.3 < len(head) / len(tail) < 1.7
    assert marker == f"[... {len(text) - len(head) - len(tail)} characters cut from the middle of this output ...]"
    emoji = cap_output("😀" * 1000, limit=500)  # 4 bytes each: cuts must not split a character
    assert len(emoji.encode()) <= 500 and "\ufffd" not in emoji


def test_secret_variables_are_absent(project):
    env = scrub_environment({
        "PATH": os.environ["PATH"], "HOME": "/home/tars", "FOO_API_KEY": "k1", "GITHUB_TOKEN": "t1",
        "MY_SECRET": "s1", "db_password": "p1", "CONFIRMATION_CODE": "1234", "LANG": "C.UTF-8",
    }, extra_names=["confirmation_code"])
    result = Workspace(project, env=env).bash("env")
    assert "PATH=" in result.output and "HOME=/home/tars" in result.output and "LANG=C.UTF-8" in result.output
    for leaked in ("FOO_API_KEY", "GITHUB_TOKEN", "MY_SECRET", "db_password", "CONFIRMATION_CODE",
                   "k1", "t1", "s1", "p1", "1234"):
        assert leaked not in result.output


def test_default_environment_is_scrubbed(project, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-do-not-leak")
    monkeypatch.setenv("TARS_VISIBLE", "yes")
    output = Workspace(project).bash("env").output
    assert "sk-do-not-leak" not in output and "TARS_VISIBLE=yes" in output


def test_files_changed_reported_for_bash_and_editor(ws, project):
    (project / "old.txt").write_text("old\n")
    (project / "untouched.txt").write_text("same\n")
    (project / ".git").mkdir()
    result = ws.bash("mkdir -p pkg && echo new > pkg/new.txt && echo more >> old.txt && echo x > .git/HEAD")
    assert result.files_changed == ["old.txt", "pkg/new.txt"]
    assert ws.bash("cat old.txt").files_changed == []
    # what a test run leaves behind is not the task's work (the same list checkpoints leave out)
    caches = ws.bash("mkdir -p .pytest_cache/v __pycache__ sub/node_modules && touch .pytest_cache/v/ids "
                     "__pycache__/a.cpython-311.pyc b.pyc .coverage sub/node_modules/x.js sub/kept.js")
    assert caches.files_changed == ["sub/kept.js"]

    assert edit(ws, command="create", path="pkg/made.py", file_text="x\n").files_changed == ["pkg/made.py"]
    assert edit(ws, command="str_replace", path="pkg/made.py", old_str="x", new_str="y").files_changed == \
        ["pkg/made.py"]
    assert edit(ws, command="insert", path="pkg/made.py", insert_line=1, insert_text="z").files_changed == \
        ["pkg/made.py"]
    assert (project / "pkg/made.py").read_text() == "y\nz\n"


def test_default_environment_never_puts_tars_python_first(project, monkeypatch):
    import sys

    tars_bin = str(Path(sys.executable).parent)  # the suite runs in TARS's .venv, as an activated worker would
    monkeypatch.setenv("PATH", os.pathsep.join([tars_bin, os.environ.get("PATH", "/usr/bin:/bin")]))
    monkeypatch.setenv("PYTHONPATH", str(project))
    env = Workspace(project).env
    assert tars_bin not in env["PATH"].split(os.pathsep) and "PYTHONPATH" not in env
    assert "anthropic" in Workspace(project, env={**env, "PATH": tars_bin}).bash(
        "python -c 'import anthropic; print(anthropic.__name__)'").output  # what it would have leaked


# --- the OS sandbox (core/sandbox.py) around every command ---------------------------------------------------------

def _sandbox_or_skip(policy):
    from core import sandbox
    if not sandbox.detect().kind in (sandbox.LANDLOCK, sandbox.BUBBLEWRAP):
        pytest.skip(f"no Linux sandbox here ({sandbox.detect()})")
    return sandbox.Sandbox(policy)


def test_bash_in_a_sandbox_writes_only_in_the_project_and_says_why_it_failed(project, outside, tmp_path):
    from core import sandbox
    policy = sandbox.Policy(writable=(str(project), "/dev/null"), hidden=(str(outside / "secret.txt"),))
    with _sandbox_or_skip(policy) as box:
        ws = Workspace(project, command_timeout=20, sandbox=box)
        done = ws.run_tool("bash", {"command": "echo mine > mine.txt && cat mine.txt"})
        assert done.exit_code == 0 and "mine" in done.output and done.files_changed == ["mine.txt"], done
        done = ws.run_tool("bash", {"command": f"echo evil > {outside}/new.txt"})
        assert done.exit_code != 0 and not (outside / "new.txt").exists()
        if box.kind == sandbox.LANDLOCK:  # bubblewrap's refusal reads "Read-only file system": noted as well
            assert "Permission denied" in done.output
        assert done.output.rstrip().endswith("Work inside the checkout.)"), done.output
        done = ws.run_tool("bash", {"command": f"cat {outside}/secret.txt"})
        assert done.exit_code != 0 and "outside secret" not in done.output
        assert "(The sandbox refused" not in ws.run_tool("bash", {"command": "exit 3"}).output


def test_a_command_that_cannot_enter_its_sandbox_is_never_run(project):
    class Broken:  # what a sandbox does when the child cannot enter it: its preexec hook raises
        def argv(self, argv):
            return argv

        def preexec(self, before=None):
            def hook():
                raise OSError(1, "could not enter the sandbox")
            return hook

        def refusal_note(self, output, exit_code):
            return None

    ws = Workspace(project, command_timeout=20, sandbox=Broken())
    done = ws.run_tool("bash", {"command": "touch ran.txt"})
    assert done.is_error and "not run" in done.output and "never runs a command unconfined" in done.output
    assert not (project / "ran.txt").exists()


def test_a_closed_sandbox_runs_nothing_either(project):
    from core import sandbox
    if sandbox.detect().kind != sandbox.LANDLOCK:
        pytest.skip("Landlock needed")
    box = sandbox.Sandbox(sandbox.Policy(writable=(str(project),)))
    box.close()
    done = Workspace(project, command_timeout=20, sandbox=box).run_tool("bash", {"command": "touch ran.txt"})
    assert done.is_error and "not run" in done.output and not (project / "ran.txt").exists()
