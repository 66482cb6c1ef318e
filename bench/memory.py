"""Resident memory of TARS's processes: an idle worker, the voice/API server, a work-horse running a task.

    .venv/bin/python -m bench memory [--quick]

* worker: `python start_worker.py`, the parent process, 2 s after it blocked in its BLPOP on the queue;
* server: `python main_tars.py serve`, 2 s after its port accepts connections (no request yet), then 1 s after
  one GET /health;
* work-horse (informational): the forked child of that worker while a task runs a `sleep` command. Its RSS counts
  the pages it still shares with the parent copy-on-write; PSS (smaps_rollup) divides shared pages by sharers.
RSS from psutil when installed, else /proc/<pid>/status VmRSS; MiB.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.common import Figure, Rig, children, pss_mb, rss_mb, wait_until, worker_idle  # noqa: E402
from core.redis_conn import free_port  # noqa: E402
from tests.fakes.anthropic_api import bash, text  # noqa: E402

RSS_WORKER = "idle RSS, worker (start_worker.py parent)"
RSS_SERVER_START = "idle RSS, server (main_tars.py serve) before any request"
RSS_SERVER = "idle RSS, server (main_tars.py serve) after one /health"
RSS_HORSE = "RSS, work-horse running a task"
NAMES = [RSS_WORKER, RSS_SERVER_START, RSS_SERVER, RSS_HORSE]


def memory_text(pid: int) -> str:
    pss = pss_mb(pid)
    return f"{rss_mb(pid):.1f} MiB" + (f" (PSS {pss:.1f} MiB)" if pss is not None else "")


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def run(rig: Rig, quick: bool, out=print) -> list[Figure]:
    found: list[Figure] = []
    worker = rig.spawn([str(ROOT / "start_worker.py"), "--name", "bench-mem"], "bench-mem")
    wait_until(lambda: worker_idle(rig.redis, "bench-mem"), 60, "the worker to listen", 0.05)
    time.sleep(2)
    worker_rss = rss_mb(worker.pid)
    found.append(Figure(RSS_WORKER, memory_text(worker.pid), "<= 80 MiB", worker_rss <= 80))

    port = free_port()
    server = rig.spawn([str(ROOT / "main_tars.py"), "serve"], "bench-serve", PORT=str(port))
    wait_until(lambda: accepts(port), 60, "the server's port", 0.05)
    time.sleep(2)
    found.append(Figure(RSS_SERVER_START, memory_text(server.pid)))
    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code != 200:
        raise SystemExit("bench: /health did not answer 200")
    time.sleep(1)
    server_rss = rss_mb(server.pid)
    found.append(Figure(RSS_SERVER, memory_text(server.pid), "<= 120 MiB", server_rss <= 120))
    rig.stop(server)

    rig.fake.reset()
    rig.fake.script([bash("sleep 2"), text("Slept.")], match="memory probe")
    task_id = rig.tasks.start("memory probe", project_path="memory")
    wait_until(lambda: any(children(h) for h in children(worker.pid)), 30, "the task's sleep command", 0.01)
    time.sleep(0.3)
    horses = children(worker.pid)
    found.append(Figure(RSS_HORSE, memory_text(horses[0]) + f"; its parent meanwhile {memory_text(worker.pid)}"))
    rig.tasks.wait_until_ended(task_id, 30)
    rig.stop(worker)
    for figure in found:
        out(figure.line())
    return found
