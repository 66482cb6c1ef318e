"""The owner's story, end to end: a goal goes on the queue, a real worker process runs
Claude (the real SDK against the local fake API) on a real project folder."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rq.job import Job

from core import keys, project_env
from core.background_worker import CancelWatcher, TaskContext
from core.redis_conn import connect
from tests.conftest import TEST_API_KEY
from tests.fakes.anthropic_api import bash, edit, error, repeat, text
from tests.waiting import wait_until


def run_to_end(tasks, start_worker, task_id, timeout=90, **env):
    worker = start_worker("--burst", **env)
    assert worker.wait(timeout=timeout) == 0, worker.log
    status = tasks.status(task_id)
    assert not status.active, status
    return status, worker


def tool_results(request):
    """The tool_result blocks of the newest user message of a recorded request."""
    content = request.body["messages"][-1]["content"]
    return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


def test_goal_creates_hello_py_runs_it_and_completes(tasks, fake_api, start_worker, projects):
    fake_api.script([
        edit(command="create", path="hello.py", file_text='print("hello from TARS")\n'),
        bash("python hello.py"),
        text("Created hello.py; it prints a greeting."),
    ])
    task_id = tasks.start("Create hello.py that prints a greeting", project_path="hello")
    assert len(task_id) >= 6 and all(c in "0123456789abcdef" for c in task_id)

    status, worker = run_to_end(tasks, start_worker, task_id)

    assert status.status == "complete", status
    assert status.phase == "complete"
    assert (projects / "hello" / "hello.py").read_text() == 'print("hello from TARS")\n'
    result = status.result
    assert result["files_changed"] == ["hello.py"]
    assert result["iterations"] == 3
    assert result["summary"] == "Created hello.py; it prints a greeting."
    assert result["tests_passed"] is None  # no tests in the project
    usage = result["usage"]
    assert usage["input_tokens"] + usage["cache_creation_input_tokens"] + usage["cache_read_input_tokens"] > 0
    assert usage["output_tokens"] > 0
    assert result["cost_usd"] > 0
    # the command really ran, and its output went back to the model
    assert "hello from TARS" in tool_results(fake_api.requests[2])[0]["content"]
    # the SDK sent the client tools the models are trained on, and the key
    first = fake_api.requests[0]
    assert {t["type"] for t in first.body["tools"]} == {"bash_20250124", "text_editor_20250728"}
    assert first.api_key == TEST_API_KEY
    # every line of the worker's log about this task names it
    assert f"[task {task_id}] running: python hello.py" in worker.log


def test_prompt_caching_marks_system_and_latest_turn(tasks, fake_api, start_worker):
    fake_api.script([bash("echo one"), bash("echo two"), text("done")])
    task_id = tasks.start("Echo twice", project_path="cache")
    status, _ = run_to_end(tasks, start_worker, task_id)
    assert status.status == "complete"
    for request in fake_api.requests:
        assert request.body["system"][-1]["cache_control"] == {"type": "ephemeral"}
        marked = [b for m in request.body["messages"] for b in m["content"] if "cache_control" in b]
        assert marked == [request.body["messages"][-1]["content"][-1]]  # only the newest block
    assert status.result["usage"]["cache_read_input_tokens"] > 0


def test_failing_tests_go_back_to_the_model_until_fixed(tasks, fake_api, start_worker, projects):
    fake_api.script([
        edit(command="create", path="calc.py", file_text="def add(a, b):\n    return a - b\n"),
        edit(command="create", path="test_calc.py",
             file_text="from calc import add\n\ndef test_add():\n    assert add(2, 3) == 5\n"),
        text("Calculator done."),  # the worker runs pytest: it fails
        edit(command="str_replace", path="calc.py", old_str="return a - b", new_str="return a + b"),
        text("Fixed the sign; tests pass."),
    ])
    task_id = tasks.start("Build a calculator with tests", project_path="calculator")
    status, worker = run_to_end(tasks, start_worker, task_id)

    assert status.status == "complete", status.reason
    assert status.result["tests_passed"] is True
    assert status.result["test_command"] == "python -m pytest -q"
    failure_report = fake_api.requests[3].body["messages"][-1]["content"][0]["text"]
    assert "python -m pytest -q" in failure_report and "failed" in failure_report
    assert "assert -1 == 5" in failure_report
    assert "phase fixing" in worker.log
    assert (projects / "calculator" / "calc.py").read_text().endswith("return a + b\n")


def test_iteration_limit_ends_the_task_failed(tasks, fake_api, start_worker):
    fake_api.script([repeat(bash("date +%s%N"))])  # different output every time: not "stuck"
    task_id = tasks.start("Loop forever", project_path="loop")
    status, _ = run_to_end(tasks, start_worker, task_id, MAX_TASK_ITERATIONS="4")
    assert status.status == "failed"
    assert "iteration limit of 4" in status.reason
    assert status.result["iterations"] == 4
    assert len(fake_api.requests) == 4


def test_runtime_limit_ends_the_task_as_timeout(tasks, fake_api, start_worker):
    fake_api.script([bash("sleep 30"), text("never reached")])
    task_id = tasks.start("Sleep too long", project_path="slow")
    started = time.monotonic()
    status, _ = run_to_end(tasks, start_worker, task_id, MAX_TASK_RUNTIME_MINUTES="0.05")  # 3 seconds
    assert time.monotonic() - started < 20
    assert status.status == "timeout"
    assert status.phase == "timeout"
    assert "runtime limit" in status.reason


def test_stuck_model_is_stopped(tasks, fake_api, start_worker):
    fake_api.script([repeat(bash("echo same"))])
    task_id = tasks.start("Repeat yourself", project_path="stuck")
    status, _ = run_to_end(tasks, start_worker, task_id)
    assert status.status == "failed"
    assert "stuck" in status.reason
    assert status.result["iterations"] == 3


@pytest.mark.worker_story
def test_cancel_while_queued_never_runs(tasks, fake_api, start_worker):
    fake_api.script([bash("touch ran.txt"), text("done")])
    task_id = tasks.start("Do something", project_path="queued")
    assert tasks.status(task_id).status == "queued"
    status = tasks.cancel(task_id)
    assert status.status == "cancelled"
    worker = start_worker("--burst")
    assert worker.wait(60) == 0
    assert fake_api.requests == []
    assert tasks.status(task_id).status == "cancelled"


@pytest.mark.worker_story
def test_cancel_while_running_kills_the_command(tasks, fake_api, start_worker, redis_client):
    fake_api.script([bash("sleep 61.5"), text("never")])
    task_id = tasks.start("Wait a minute", project_path="running")
    worker = start_worker()
    deadline = time.monotonic() + 30
    while "Running: sleep 61.5" not in tasks.status(task_id).progress:
        assert time.monotonic() < deadline, worker.log
        time.sleep(0.1)
    while subprocess.run(["pgrep", "-f", "sleep 61.5"], capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.05)

    began = time.monotonic()
    status = tasks.cancel(task_id, wait=30)  # the kill backstop after 30 s: far from "at once" on a loaded machine
    assert time.monotonic() - began < 15  # the command was stopped by the cancel, not by the backstop
    assert status.status == "cancelled", status
    assert status.reason == "The task was cancelled."
    assert subprocess.run(["pgrep", "-f", "sleep 61.5"], capture_output=True).returncode == 1
    assert len(fake_api.requests) == 1  # no model call after the cancel


def test_path_escape_is_refused_and_the_task_goes_on(tasks, fake_api, start_worker, projects):
    outside = projects.parent / "secret.txt"
    outside.write_text("top secret")
    fake_api.script([
        edit(command="view", path="../secret.txt"),
        edit(command="create", path=str(outside), file_text="overwritten"),
        text("Could not read it."),
    ])
    task_id = tasks.start("Read a file outside", project_path="escape")
    status, _ = run_to_end(tasks, start_worker, task_id)
    assert status.status == "complete"
    for request in fake_api.requests[1:]:
        [result] = tool_results(request)
        assert result["is_error"] is True
        assert "top secret" not in result["content"]
    assert outside.read_text() == "top secret"


def test_secrets_are_absent_from_command_environment(tasks, fake_api, start_worker, tars_env):
    fake_api.script([bash("env"), text("done")])
    task_id = tasks.start("Show the environment", project_path="env")
    status, _ = run_to_end(tasks, start_worker, task_id, GITHUB_TOKEN="ghp_should_not_leak")
    assert status.status == "complete"
    output = tool_results(fake_api.requests[1])[0]["content"]
    assert "PATH=" in output
    for leaked in (TEST_API_KEY, "ghp_should_not_leak", "ANTHROPIC_API_KEY", "REDIS_URL", tars_env["REDIS_URL"]):
        assert leaked not in output


def test_overloaded_api_is_retried_then_succeeds(tasks, fake_api, start_worker):
    fake_api.script([error(529, headers={"retry-after-ms": "10"}), text("All good.")])
    task_id = tasks.start("Say something", project_path="overloaded")
    status, _ = run_to_end(tasks, start_worker, task_id)
    assert status.status == "complete"
    assert len(fake_api.requests) == 2


def test_bad_api_key_fails_with_a_clear_reason(tasks, fake_api, start_worker):
    fake_api.script([error(401)])
    task_id = tasks.start("Anything", project_path="badkey")
    status, _ = run_to_end(tasks, start_worker, task_id)
    assert status.status == "failed"
    assert "rejected the API key" in status.reason and "ANTHROPIC_API_KEY" in status.reason
    assert len(fake_api.requests) == 1  # 401 is not retried


def test_missing_api_key_fails_at_once_and_the_worker_warns(tasks, fake_api, start_worker):
    task_id = tasks.start("Anything", project_path="nokey")
    status, worker = run_to_end(tasks, start_worker, task_id, ANTHROPIC_API_KEY="")
    assert status.status == "failed"
    assert "ANTHROPIC_API_KEY is not set" in status.reason and ".env" in status.reason
    assert "ANTHROPIC_API_KEY is not set" in worker.log.split(task_id)[0]  # warned at start-up
    assert fake_api.requests == []


def test_two_workers_run_two_tasks_at_once(tasks, fake_api, start_worker):
    fake_api.script([bash("sleep 2 && echo alpha"), text("alpha done")], match="alpha")
    fake_api.script([bash("sleep 2 && echo beta"), text("beta done")], match="beta")
    first = tasks.start("Task alpha", project_path="alpha")
    second = tasks.start("Task beta", project_path="beta")
    workers = [start_worker("--burst"), start_worker("--burst")]
    for worker in workers:
        assert worker.wait(60) == 0
    a, b = tasks.status(first), tasks.status(second)
    assert a.status == b.status == "complete"
    assert a.started_at < b.ended_at and b.started_at < a.ended_at  # they overlapped
    assert {a.result["summary"], b.result["summary"]} == {"alpha done", "beta done"}


@pytest.mark.worker_story
def test_cancel_during_a_slow_model_call_ends_cancelled(tasks, fake_api, start_worker):
    from tests.fakes.anthropic_api import delay

    fake_api.script([delay(30, text("Built it."))])
    task_id = tasks.start("Think for a long time", project_path="slowmodel")
    start_worker()
    fake_api.wait_for_requests(1, timeout=30)
    began = time.monotonic()
    status = tasks.cancel(task_id, wait=30)  # the kill backstop after 30 s: far from "at once" on a loaded machine
    assert time.monotonic() - began < 15  # the model call was cut short, not waited for (30 s) nor killed
    assert status.status == "cancelled", status
    assert status.reason == "The task was cancelled."


def test_a_full_disk_ends_the_task_with_the_fix_not_a_retry_loop(tasks, fake_api, start_worker, projects, mounts,
                                                                 n8n):
    project = mounts(projects / "tiny", "size=64k")
    fake_api.script([bash("head -c 200000 /dev/zero > filler.bin"),  # the model's own command fills the disk
                     edit(command="create", path="app.py", file_text="print('hi')\n" * 100),
                     repeat(text("done"))])
    task_id = tasks.start("Write the app", project_path="tiny")
    status, worker = run_to_end(tasks, start_worker, task_id, N8N_WEBHOOK_URL=n8n.url())
    assert status.status == "failed"
    assert "No space left on device" in status.reason and f"free some space on {project}" in status.reason
    assert len(fake_api.requests) == 1, "the task stopped at the first sign instead of letting the model retry"
    assert "Traceback" not in worker.log
    assert any("No space left" in b["message"] for b in n8n.bodies() if b["type"] == "error")


def test_a_read_only_project_fails_before_any_model_call(tasks, fake_api, start_worker, projects, mounts):
    project = mounts(projects / "frozen", "size=64k")
    tasks.start("Warm up", project_path="frozen")  # resolve_project accepts it while writable
    subprocess.run(["mount", "-o", "remount,ro", str(project)], check=True)
    task_id = tasks.latest_id()
    status, worker = run_to_end(tasks, start_worker, task_id)
    assert status.status == "failed"
    assert "Read-only file system" in status.reason and "read-write" in status.reason
    assert fake_api.requests == []
    assert "Traceback" not in worker.log


def _started_reading(watcher: CancelWatcher) -> threading.Event:
    """Set once the watcher's thread is inside its pub/sub read (walking another thread's frames instead once
    crashed Python 3.11 under load)."""
    reading = threading.Event()
    read = watcher.pubsub.get_message

    def get_message(*args, **kwargs):
        reading.set()
        return read(*args, **kwargs)

    watcher.pubsub.get_message = get_message
    return reading


@pytest.mark.worker_story
def test_stopping_the_cancel_watcher_never_leaves_its_connection_to_the_task(redis_server, redis_client, settings):
    """Issue 12: the watcher's pub/sub was closed from the task's thread while the watcher still read on it; the
    connection went back to the shared pool, the task's next command (RQ's WATCH at the end of the job) took it,
    and the watcher read that reply: the horse hung until RQ's socket timeout (~7 min)."""
    client = connect(redis_server.url)
    client.connection_pool.connection_kwargs["socket_timeout"] = 10  # RQ sets 415 s; a hang becomes an error here
    job = Job.create(func="core.background_worker.run_task", args=("x",), connection=client, id="w1")
    job.meta = {"goal": "watch"}
    job.save()
    ctx = TaskContext(job, settings)
    for round_ in range(20):
        watcher = CancelWatcher(ctx, [])
        reading = _started_reading(watcher)
        watcher.start()
        assert reading.wait(30), "the watcher never started its read"
        watcher.stop()
        assert not watcher.is_alive(), "stop() returned while the watcher still held its connection"
        with client.pipeline() as pipe:  # what RQ's handle_job_success does next
            pipe.watch(f"rq:job:{job.id}:dependents")
            pipe.multi()
            pipe.hset("story", "round", round_)
            pipe.execute()
    assert client.hget("story", "round") == b"19"
    assert watcher.connection.connection_pool is not client.connection_pool  # no connection is ever shared


def _watching(redis_client, settings, task_id: str) -> tuple[CancelWatcher, threading.Event]:
    """A started cancel watcher of a task, already in its read, and the event its cancel sets."""
    job = Job.create(func="core.background_worker.run_task", args=("x",), connection=redis_client, id=task_id)
    job.meta = {"goal": "watch"}
    job.save()
    fired = threading.Event()
    watcher = CancelWatcher(TaskContext(job, settings), [fired.set])
    reading = _started_reading(watcher)
    watcher.start()
    assert reading.wait(30), "the watcher never started its read"
    return watcher, fired


@pytest.mark.worker_story
def test_a_cancel_reaches_the_watcher_on_its_own_connection(redis_server, redis_client, settings):
    watcher, fired = _watching(redis_client, settings, "w2")
    redis_client.publish(keys.task_control("w2"), "cancel")
    assert fired.wait(30)
    watcher.join(30)
    assert not watcher.is_alive()
    watcher.stop()  # after it ended by itself: nothing left to do, and no error


@pytest.mark.worker_story
def test_a_cancel_whose_message_was_lost_still_reaches_the_watcher_through_its_key(redis_server, redis_client,
                                                                                   settings):
    """A publish sent while the watcher's pub/sub reconnects is lost; the cancel key, set before it, is not."""
    watcher, fired = _watching(redis_client, settings, "w3")
    redis_client.set(keys.task_cancel("w3"), time.time())  # what TaskManager.cancel records; no message follows
    assert fired.wait(30)
    watcher.join(30)
    assert not watcher.is_alive()


# --- the project's own environment (core/project_env.py) ---------------------------------------------------------

def _tars_python_first() -> dict[str, str]:
    """The worker's environment as from an activated TARS venv: its bin first on PATH, TARS on PYTHONPATH."""
    root = str(Path(__file__).resolve().parents[2])
    return {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")]),
            "PYTHONPATH": root}


def test_a_python_project_runs_in_an_environment_made_for_it_never_in_tars_python(tasks, fake_api, start_worker,
                                                                                  projects, settings):
    project = projects / "made_env"
    project.mkdir()
    (project / "requirements.txt").write_text("iniconfig\n")
    (project / "test_ini.py").write_text("import iniconfig\n\n\ndef test_it():\n    assert iniconfig.IniConfig\n")
    fake_api.script([
        bash("python -c 'import sys; print(sys.prefix)'"),
        bash("python -c \"import importlib.metadata as m; print(m.version('anthropic'))\""),  # TARS's package
        text("Nothing to change: the tests pass."),  # the worker runs python -m pytest -q in the same environment
    ])
    task_id = tasks.start("Check the environment", project_path="made_env")
    status, worker = run_to_end(tasks, start_worker, task_id, **_tars_python_first())

    assert status.status == "complete", status.reason
    assert status.result["tests_passed"] is True and status.result["test_command"] == "python -m pytest -q"
    venv = settings.DATA_DIR / "envs" / task_id
    assert tool_results(fake_api.requests[1])[0]["content"].strip() == str(venv)
    assert "No package metadata was found for anthropic" in tool_results(fake_api.requests[2])[0]["content"]
    told = [e.message for e in tasks.events(task_id) if e.type == "workspace"]
    assert len(told) == 1 and ". Made a Python environment with pytest + 1 dependency in " in told[0], told
    assert str(venv) in fake_api.requests[0].body["messages"][0]["content"][0]["text"]  # the model is told too
    assert f"[task {task_id}] environment (made, " in worker.log
    assert not venv.exists()  # removed with the task


def test_a_project_with_its_own_venv_runs_in_it_from_its_worktree(tasks, fake_api, start_worker, projects,
                                                                  private_git, uv_cache):
    project = projects / "own_env"
    project.mkdir()
    (project / ".gitignore").write_text(".venv/\n")
    (project / "test_truth.py").write_text("def test_truth():\n    assert True\n")
    owner = ("-c", "user.name=Owner", "-c", "user.email=owner@example.com")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "first"]):
        subprocess.run(["git", *owner, *args], cwd=project, check=True, capture_output=True)
    uv = {**os.environ, "UV_CACHE_DIR": str(uv_cache)}
    subprocess.run([project_env.uv_binary(), "venv", "--quiet", "--no-project", str(project / ".venv")], env=uv,
                   check=True)
    subprocess.run([project_env.uv_binary(), "pip", "install", "--quiet", "--python", str(project / ".venv/bin/python"),
                    "pytest"], env=uv, check=True)
    fake_api.script([bash("python -c 'import sys; print(sys.prefix)'"), text("All good.")])
    task_id = tasks.start("Check the environment", project_path="own_env")
    status, _ = run_to_end(tasks, start_worker, task_id, **_tars_python_first())

    assert status.status == "complete", status.reason
    assert status.result["tests_passed"] is True
    assert status.result["git"]["mode"] == "worktree"  # the checkout has no .venv: the owner's folder has it
    assert tool_results(fake_api.requests[1])[0]["content"].strip() == str(project / ".venv")
    told = [e.message for e in tasks.events(task_id) if e.type == "workspace"]
    assert len(told) == 1 and f"on branch tars/{task_id}. Using the project's .venv from {project} (" in told[0], told
    assert (project / ".venv" / "bin" / "python").exists()  # the owner's environment stays
    from core import sandbox
    if sandbox.detect().kind != sandbox.NONE:  # outside the checkout: read-only in the sandbox, and the model knows
        first = fake_api.requests[0].body["messages"][0]["content"][0]["text"]
        assert "Commands run in a sandbox" in first and "the sandbox keeps it read-only" in first, first


def test_done_again_and_again_against_the_same_failing_tests_ends_as_stuck(tasks, fake_api, start_worker, projects):
    project = projects / "stubborn"
    project.mkdir()
    (project / "test_truth.py").write_text("def test_truth():\n    assert 1 == 2\n")
    fake_api.script([
        text("Done."),
        edit(command="create", path="notes.md", file_text="I looked at it.\n"),  # a step that fixes nothing
        text("Done, really."),
        text("Done!"),
        text("never reached"),
    ])
    task_id = tasks.start("Make the tests pass", project_path="stubborn")
    status, _ = run_to_end(tasks, start_worker, task_id)

    assert status.status == "failed"
    assert status.reason.startswith("The model was stuck: it said it was done 3 times in a row, but "
                                    "`python -m pytest -q` failed the same way each time (1 failed in "), status.reason
    assert status.result["iterations"] == 4 and len(fake_api.requests) == 4
    assert status.result["tests_passed"] is False


# --- the OS sandbox around the model's commands (core/sandbox.py), as a task meets it ------------------------------

ATTACK = '''import os, signal, socket

HOME, DATA, ENV_FILE = {home!r}, {data!r}, {env_file!r}
OUTSIDE_PID, PORT, WORKER = {outside_pid}, {port}, {worker}
OWNER_OBJECT, OWNER_REFS = {owner_object!r}, {owner_refs!r}


def attempt(name, action):
    try:
        print(f"{{name}}: DONE {{action()!r}}"[:200])
    except Exception as exc:
        print(f"{{name}}: FAILED {{type(exc).__name__}}: {{exc}}"[:200])


def write(path):
    with open(path, "a") as handle:
        handle.write("evil\\n")
    return "written"


def read(path):
    with open(path, errors="replace") as handle:
        return handle.read()


def parent(pid):
    return int(next(line for line in read(f"/proc/{{pid}}/status").splitlines() if line.startswith("PPid:")).split()[1])


horse = os.getpid()
while parent(horse) != WORKER:  # up from this script (bash may have exec'd it) to the worker's child
    horse = parent(horse)
attempt("write bashrc", lambda: write(f"{{HOME}}/.bashrc"))
attempt("write other checkout", lambda: write(f"{{DATA}}/git/worktrees/other/a.txt"))
attempt("write data dir", lambda: write(f"{{DATA}}/evil.txt"))
attempt("write /tmp", lambda: write("/tmp/tars-sandbox-story-evil"))
attempt("read other checkout", lambda: read(f"{{DATA}}/git/worktrees/other/a.txt"))
attempt("read env file", lambda: read(ENV_FILE))
attempt("read ssh key", lambda: read(f"{{HOME}}/.ssh/id_ed25519"))
attempt("read horse environ", lambda: read(f"/proc/{{horse}}/environ"))
attempt("read worker environ", lambda: read(f"/proc/{{WORKER}}/environ"))
attempt("kill outside", lambda: os.kill(OUTSIDE_PID, signal.SIGKILL))
attempt("connect", lambda: socket.create_connection(("127.0.0.1", PORT), timeout=5).close())
attempt("delete owner's git object", lambda: os.remove(OWNER_OBJECT))
attempt("rewrite other task's branch", lambda: write(f"{{OWNER_REFS}}/tars/other"))
attempt("rewrite owner's main", lambda: write(f"{{OWNER_REFS}}/main"))
attempt("own file", lambda: write("mine.txt") and read("mine.txt"))
attempt("own tmpdir", lambda: write(os.path.join(os.environ["TMPDIR"], "scratch")))
'''
ATTACKS = ["write bashrc", "write other checkout", "write data dir", "write /tmp", "read other checkout",
           "read env file", "read ssh key", "read horse environ", "read worker environ", "kill outside", "connect",
           "delete owner's git object", "rewrite other task's branch", "rewrite owner's main"]


def tiny_wheel(folder: Path) -> Path:
    """A pure-Python wheel built by hand (no network, no build backend): tinypkg.VALUE == 42."""
    import base64
    import hashlib
    import zipfile

    files = {"tinypkg/__init__.py": "VALUE = 42\n",
             "tinypkg-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinypkg\nVersion: 0.1\n",
             "tinypkg-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: tars-tests\nRoot-Is-Purelib: true\n"
                                            "Tag: py3-none-any\n"}
    digest = lambda data: base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()  # noqa: E731
    record = "".join(f"{path},sha256={digest(body.encode())},{len(body.encode())}\n" for path, body in files.items())
    files["tinypkg-0.1.dist-info/RECORD"] = record + "tinypkg-0.1.dist-info/RECORD,,\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "tinypkg-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, body in files.items():
            archive.writestr(path, body)
    return wheel


@pytest.mark.worker_story
def test_the_sandbox_stops_a_script_the_model_wrote_and_the_tasks_own_work_goes_on(
        tasks, fake_api, start_worker, projects, settings, private_git, tmp_path):
    """The model writes attack.py, then runs it: every attempt outside the task fails (the owner's ~/.bashrc and
    ~/.ssh, another task's checkout, TARS's data folder and .env, /tmp, the worker's environment, a process that is
    not the task's, the network with SANDBOX_NETWORK=off, the owner's git objects and branches, another task's
    branch) and nothing outside changes; the task's own files, TMPDIR, package install (a local wheel) and tests
    still work, in its own repository, and its work reaches its branch in the owner's repository."""
    from core import sandbox

    if sandbox.detect().kind not in (sandbox.LANDLOCK, sandbox.BUBBLEWRAP):
        pytest.skip(f"no Linux sandbox here: {sandbox.detect()}")
    landlock = sandbox.detect().kind == sandbox.LANDLOCK
    home = Path(os.environ["HOME"])  # private_git's: the worker's HOME
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY of the owner\n")
    (home / ".bashrc").write_text("# the owner's bashrc\n")
    env_file = tmp_path / "tars" / ".env"
    env_file.parent.mkdir()
    env_file.write_text("OTHER_SERVICE_TOKEN=tok-in-the-env-file-31337\n")
    other = settings.DATA_DIR / "git" / "worktrees" / "other"
    other.mkdir(parents=True)
    (other / "a.txt").write_text("another task's work\n")
    project = projects / "story"
    tiny_wheel(project / "dist")
    (project / "test_app.py").write_text("import tinypkg\n\n\ndef test_value():\n    assert tinypkg.VALUE == 42\n")
    owner = ("-c", "user.name=Owner", "-c", "user.email=owner@example.com", "-c", "init.defaultBranch=main")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "first"], ["branch", "tars/other"]):
        subprocess.run(["git", *owner, *args], cwd=project, check=True, capture_output=True)
    git_dir = project / ".git"
    owner_object = next(p for p in sorted((git_dir / "objects").glob("??/*")))
    owner_git = {str(p): p.read_bytes() for p in [owner_object, *(git_dir / "refs" / "heads").rglob("*")]
                 if p.is_file()}
    outside = subprocess.Popen(["sleep", "300"], start_new_session=True)
    listener = __import__("socket").socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0)
    worker = None
    try:
        worker = start_worker(TARS_ENV_FILE=str(env_file), SANDBOX_NETWORK="off", PIP_DISABLE_PIP_VERSION_CHECK="1",
                              STORY_SECRET_MARKER="marker-in-the-worker-env-4242")  # its pid goes in the script
        fake_api.script([
            edit(command="create", path="attack.py", file_text=ATTACK.format(
                home=str(home), data=str(settings.DATA_DIR), env_file=str(env_file), outside_pid=outside.pid,
                port=listener.getsockname()[1], worker=worker.process.pid, owner_object=str(owner_object),
                owner_refs=str(git_dir / "refs" / "heads"))),
            bash("python attack.py"),
            bash("pip install dist/tinypkg-0.1-py3-none-any.whl"),
            bash("python -m pytest -q"),
            text("Installed tinypkg; the tests pass."),
        ])
        task_id = tasks.start("Try the sandbox, then install tinypkg and pass the tests", project_path="story")
        assert tasks.wait_until_ended(task_id, 120), worker.log
        status = tasks.status(task_id)
        assert status.status == "complete", (status, worker.log[-3000:])
        assert wait_until(lambda: tasks.status(task_id).result, 30, "the result")["tests_passed"] is True

        said = tool_results(fake_api.requests[2])[0]["content"]
        for name in ATTACKS:  # Landlock refuses with EACCES/EPERM; bubblewrap's hidden paths are simply not there
            assert f"{name}: FAILED {'PermissionError' if landlock else ''}" in said, (name, said)
        assert "own file: DONE 'evil\\n'" in said and "own tmpdir: DONE 'written'" in said, said
        assert "(The sandbox refused an operation" not in said  # the script exits 0: no note
        every_result = " ".join(str(r["content"]) for request in fake_api.requests for r in tool_results(request))
        for secret in ("PRIVATE KEY", "tok-in-the-env-file", "marker-in-the-worker-env", "another task's work"):
            assert secret not in every_result, secret
        assert "Successfully installed tinypkg-0.1" in tool_results(fake_api.requests[3])[0]["content"]
        assert "1 passed" in tool_results(fake_api.requests[4])[0]["content"]
    finally:
        alive = outside.poll() is None
        outside.kill()
        outside.wait()
        if worker is not None:
            worker.stop()
    assert alive, "the sleep outside the task was killed"
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody connected
    listener.close()
    assert (home / ".bashrc").read_text() == "# the owner's bashrc\n"
    assert (other / "a.txt").read_text() == "another task's work\n"
    assert not (settings.DATA_DIR / "evil.txt").exists() and not Path("/tmp/tars-sandbox-story-evil").exists()
    assert {p: Path(p).read_bytes() for p in owner_git} == owner_git  # the owner's object and branches intact
    assert subprocess.run(["git", "fsck", "--full", "--no-dangling"], cwd=project, capture_output=True).returncode == 0
    mine = subprocess.run(["git", "show", f"tars/{task_id}:mine.txt"], cwd=project, capture_output=True, text=True)
    assert mine.stdout == "evil\n" and not (project / "mine.txt").exists()  # its own file, on its branch
    assert not (settings.DATA_DIR / "tmp" / task_id).exists()  # its TMPDIR went with it
    events = tasks.events(task_id)
    told = [e for e in events if e.type == "workspace"]
    assert told[0].data["sandbox"].startswith(("landlock", "bubblewrap")) and "network off" in told[0].data["sandbox"]
    assert not [e for e in events if e.type == "confirmation_required"]  # the project's own code ran freely


@pytest.mark.worker_story
def test_without_the_sandbox_the_projects_own_code_asks(tasks, fake_api, start_worker, projects):
    """SANDBOX=off (or a machine with none): commands are not contained, so what only the sandbox made safe asks."""
    (projects / "bare").mkdir()
    (projects / "bare" / "hello.py").write_text("print('hello')\n")
    fake_api.script([bash("python hello.py"), bash("ls"), text("Could not run it.")])
    task_id = tasks.start("Run hello.py", project_path="bare")
    status, worker = run_to_end(tasks, start_worker, task_id, SANDBOX="off", CONFIRMATION_CODE="")
    assert status.status == "complete", status
    refusal = tool_results(fake_api.requests[1])[0]
    assert refusal["is_error"] is True and "`python hello.py` runs the project's own code, and there is no " \
        "sandbox" in refusal["content"] and "CONFIRMATION_CODE" in refusal["content"], refusal
    assert "hello.py" in tool_results(fake_api.requests[2])[0]["content"]  # ls: on the allow-list, ran
    assert f"[task {task_id}] commands run unconfined: SANDBOX=off" in worker.log
    told = [e for e in tasks.events(task_id) if e.type == "workspace"]
    assert told[0].data["sandbox"] == "none"


def test_a_broken_rules_file_fails_the_task_at_start_with_its_message(tasks, fake_api, start_worker, settings):
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    settings.COMMAND_RULES_FILE.write_text('{"permissions": {"deny": ["Bash(rm:*)"]}}')
    fake_api.script([text("never asked")])
    task_id = tasks.start("Anything", project_path="rules")
    status, _ = run_to_end(tasks, start_worker, task_id)
    assert status.status == "failed" and status.reason.startswith(
        "The owner's command rules (COMMAND_RULES_FILE) cannot be used: ") and "'deny' is not understood" in \
        status.reason, status.reason
    assert fake_api.requests == []
