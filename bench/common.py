"""What every benchmark shares: statistics, the machine, a private Redis, TARS's environment, worker processes.

Nothing here touches a Redis you already run: `private_redis` starts redis-server from PATH on a free port
(core.redis_conn.EmbeddedRedis, no persistence) in a temporary folder.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.config import setting_names  # noqa: E402
from core.redis_conn import EmbeddedRedis  # noqa: E402
from core.supervisor import stop_process  # noqa: E402,F401  (bench.voice imports it from here)

API_KEY = "sk-ant-bench-000000"
CODE = "6283"


# --- statistics ------------------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def figures(name: str, values_ms: list[float]) -> str:
    return (f"{name}: n={len(values_ms)} p50={percentile(values_ms, 50):.2f} ms "
            f"p99={percentile(values_ms, 99):.2f} ms mean={statistics.fmean(values_ms):.2f} ms")


def median(values: list[float]) -> float:
    return statistics.median(values)


@dataclass
class Figure:
    """One benchmark figure: its name (the smoke test looks for it), what was measured, the target and verdict."""

    name: str
    value: str
    target: str = ""
    passed: bool | None = None  # None: informational, no target

    def line(self) -> str:
        verdict = "info" if self.passed is None else ("PASS" if self.passed else "MISS")
        target = f" | target {self.target}" if self.target else ""
        return f"{verdict:4} {self.name}: {self.value}{target}"


# --- the machine -----------------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def redis_version(binary: str | None = None) -> str:
    binary = binary or shutil.which("redis-server")
    if not binary:
        return "redis-server not found"
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    match = re.search(r"v=(\S+)", out)
    return f"{Path(binary).name} {match.group(1) if match else out.strip()}"


def machine() -> str:
    ram = ram_gb()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return (f"machine: {cpu_model()}, {os.cpu_count()} cores, {ram:.1f} GB RAM, {platform.machine()}, "
            f"Python {platform.python_version()}, {redis_version()}, {platform.platform()}"
            + (f", load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start" if load else ""))


# --- Redis and TARS's environment ----------------------------------------------------------------------------------
@contextmanager
def private_redis(data_dir: Path):
    """A private redis-server on a free port (never the one on 6379), stopped on exit."""
    with EmbeddedRedis(Path(data_dir), persist=False, binary=shutil.which("redis-server")) as store:
        yield store


def tars_env(store_url: str, api_url: str, work: Path, **overrides: str) -> dict[str, str]:
    """The environment of every TARS process in a benchmark (as tests/conftest.py's tars_env)."""
    env = {"TARS_ENV_FILE": os.devnull, "REDIS_URL": store_url, "ANTHROPIC_API_KEY": API_KEY,
           "ANTHROPIC_BASE_URL": api_url, "ANTHROPIC_MAX_RETRIES": "2", "ANTHROPIC_TIMEOUT_SECONDS": "20",
           "PROJECTS_ROOT": str(work / "projects"), "DATA_DIR": str(work / "data"),
           "MAX_TASK_RUNTIME_MINUTES": "10", "MAX_TASK_ITERATIONS": "1000", "COMMAND_TIMEOUT_SECONDS": "60",
           "EMBEDDED_REDIS": "false", "LOG_LEVEL": "INFO", "CONFIRMATION_CODE": CODE,
           "CONFIRMATION_TIMEOUT_SECONDS": "60"}
    env.update(overrides)
    (work / "projects").mkdir(parents=True, exist_ok=True)
    return env


def apply_env(env: dict[str, str]) -> None:
    """Make this process see exactly the benchmark's TARS settings (a developer's own variables removed)."""
    for name in setting_names():
        os.environ.pop(name, None)
    os.environ.update(env)


# --- processes ----------------------------------------------------------------------------------------------------
def start_process(args: list[str], env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
    """A TARS process (worker, server) with the benchmark's environment; its output goes to log (or nowhere)."""
    out = open(log, "wb") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen([sys.executable, *args], cwd=ROOT, env={**os.environ, **env}, stdout=out,
                                stderr=subprocess.STDOUT)
    finally:
        if log:
            out.close()  # the child has its own copy


def start_worker(env: dict[str, str], *args: str, log: Path | None = None) -> subprocess.Popen:
    """`python start_worker.py [args]`, as deployed."""
    return start_process([str(ROOT / "start_worker.py"), *args], env, log)


def wait_until(check, timeout: float = 30.0, what: str = "condition", interval: float = 0.02):
    """check()'s first truthy value; SystemExit naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        time.sleep(interval)


# --- memory -------------------------------------------------------------------------------------------------------
def rss_mb(pid: int) -> float:
    """Resident set size in MiB (psutil when installed, else /proc/<pid>/status VmRSS)."""
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 1024 / 1024
    except ImportError:
        pass
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def pss_mb(pid: int) -> float | None:
    """Proportional set size in MiB (/proc/<pid>/smaps_rollup): shared pages of a forked horse counted by share."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def children(pid: int) -> list[int]:
    """Direct child processes of pid (Linux /proc)."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            found.extend(int(child) for child in text)
    except OSError:
        pass
    return found


def blocked_clients(connection, commands: tuple[str, ...] = ("blpop", "blmove")) -> int:
    """How many clients are blocked in one of these commands right now (CLIENT LIST: cmd, flag b). RQ names only
    one connection of a worker (its pub/sub one), so a blocked dequeue is recognised by its command alone: BLMOVE
    for a worker on one queue (Redis >= 6.2), BLPOP for several."""
    return sum(client.get("cmd") in commands and "b" in client.get("flags", "")
               for client in connection.client_list())


def worker_idle(connection, name: str) -> bool:
    """The RQ worker `name` says it is idle and some client is blocked in a dequeue (use with one worker)."""
    return connection.hget(f"rq:worker:{name}", "state") == b"idle" and blocked_clients(connection) > 0


class Rig:
    """One benchmark run's world: a temp folder, a private Redis, the fake Anthropic API, TARS settings in this
    process, and the processes started for it (stopped on exit)."""

    def __init__(self, **env_overrides: str):
        self.env_overrides = env_overrides
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> "Rig":
        import tempfile

        from core.config import load_settings
        from core.redis_conn import connect
        from core.task_manager import TaskManager
        from tests.fakes.anthropic_api import FakeAnthropic

        self.work = Path(tempfile.mkdtemp(prefix="tars-bench-"))
        self.logs = self.work / "logs"
        self.logs.mkdir()
        self._redis_cm = private_redis(self.work / "redis")
        self.store = self._redis_cm.__enter__()
        self.fake = FakeAnthropic().start()
        self.env = tars_env(self.store.url, self.fake.base_url, self.work, **self.env_overrides)
        apply_env(self.env)
        self.settings = load_settings()
        self.redis = connect(self.store.url)
        self.tasks = TaskManager(self.redis, self.settings)
        return self

    def spawn(self, args: list[str], name: str, **env: str) -> subprocess.Popen:
        process = start_process(args, {**self.env, **env}, self.logs / f"{name}.log")
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen) -> None:
        stop_process(process)
        if process in self.processes:
            self.processes.remove(process)

    def __exit__(self, *exc) -> None:
        for process in list(self.processes):
            self.stop(process)
        self.redis.close()
        self.fake.stop()
        self._redis_cm.__exit__(None, None, None)
        if exc[0] is None:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            print(f"bench: logs kept in {self.logs}", file=sys.stderr)
