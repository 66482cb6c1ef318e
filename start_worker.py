#!/usr/bin/env python3
"""The worker's entry script: `python start_worker.py [--burst] [--capabilities python,frontend]` runs one worker
(core/worker.py) until stopped; with capabilities it also serves the queue of each (core/capabilities.py).

Wiring only: settings, logging, Redis, the progress delivery process beside the worker (`python -m
communication.delivery`: it reads the tasks' events from Redis and sends them to n8n / Discord, so a killed
work-horse loses none; it stops after the worker, once it delivered what is left), then RQ's forking Worker on the
tars_programming queues, high priority first (core/capabilities.worker_queue_names; SpawnWorker on macOS, where fork
is unsafe), with TARS's fault handling and RQ's scheduler for scheduled tasks (core/worker.py). The first Ctrl+C / SIGTERM is a warm shutdown (the
running task finishes: give a supervisor a stop timeout of the task runtime plus the
confirmation wait plus 2 minutes), the second is cold (the task is stopped and marked failed).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

from rq import Queue

from communication.delivery import DRAIN_SECONDS
from core import background_worker, capabilities, sandbox
from core.config import get_settings, warn_about_env_file
from core.defaults import REDIS_OUTAGE_RETRY_SECONDS, WORKER_LOG_FORMAT
from core.exceptions import InvalidCapabilities, TarsError
from core.redis_conn import connect, safe_url
from core.scrub import install_log_scrubbing
from core.worker import TarsSpawnWorker, TarsWorker

BANNER = r"""
 _____  _    ____  ____
|_   _|/ \  |  _ \/ ___|   background programming worker
  | | / _ \ | |_) \___ \
  | |/ ___ \|  _ < ___) |
  |_/_/   \_\_| \_\____/
"""


def redis_warning(settings) -> str | None:
    """The sentence to log when the model's sandboxed commands can reach TARS's Redis without its password: there
    they could read every task and queue a job, which a worker runs outside the sandbox (docs/SECURITY.md)."""
    if settings.SANDBOX == "off" or sandbox.detect().kind == sandbox.NONE:
        return None  # unconfined anyway: every command not on the allow-list asks
    url = urlparse(settings.redis_url)
    if url.scheme == "unix":
        return (f"Redis listens on the unix socket {url.path}, which the sandbox cannot close to the model's commands: "
                "give Redis a password (in REDIS_URL; commands never see it), or they could queue code that a worker "
                "runs outside the sandbox (docs/SECURITY.md).")
    if settings.SANDBOX_NETWORK != "off" and not url.password:
        return (f"Redis at {safe_url(settings.redis_url)} has no password and SANDBOX_NETWORK=on, so the model's "
                "commands can reach it and queue code that a worker runs outside the sandbox: set "
                "SANDBOX_NETWORK=off, or give Redis a password in REDIS_URL (commands never see it; "
                "docs/SECURITY.md).")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Work the TARS task queue.")
    parser.add_argument("--burst", action="store_true", help="work until the queue is empty, then exit")
    parser.add_argument("--name", help="worker name (default: host.pid, unique)")
    parser.add_argument("--capabilities", default="", metavar="NAMES",
                        help="comma-separated capabilities (e.g. python,frontend): also run the plan subtasks that "
                             "need one of them")
    parser.add_argument("--started-by-up", action="store_true", help=argparse.SUPPRESS)  # its server warned already
    args = parser.parse_args(argv)
    try:
        served = capabilities.parse(args.capabilities) if args.capabilities.strip() else []
    except InvalidCapabilities as exc:
        print(f"start_worker: {exc}", file=sys.stderr)
        return 2
    queue_names = capabilities.worker_queue_names(served)
    sandbox.make_non_dumpable()  # the worker and its work-horses: their environment stays closed to the commands
    try:
        settings = get_settings()
        logging.basicConfig(level=settings.LOG_LEVEL, format=WORKER_LOG_FORMAT)
        install_log_scrubbing(settings.secret_values())
        if not args.started_by_up:
            warn_about_env_file()
        connection = connect(settings.redis_url, outage_seconds=REDIS_OUTAGE_RETRY_SECONDS)
    except TarsError as exc:
        print(f"start_worker: {exc}", file=sys.stderr)
        return 2
    print(BANNER)
    print(f"  Redis:        {safe_url(settings.redis_url)}")
    print(f"  Queues:       {', '.join(queue_names)}")
    print(f"  Max runtime:  {settings.MAX_TASK_RUNTIME_MINUTES:g} minutes, {settings.MAX_TASK_ITERATIONS} iterations")
    print(f"  Model:        {settings.CLAUDE_MODEL}")
    print(f"  Projects:     {settings.PROJECTS_ROOT}")
    channels = [name for name in ("N8N_WEBHOOK_URL", "DISCORD_WEBHOOK_URL") if settings.secret(name)]
    print(f"  Updates:      {', '.join(channels) or 'log only (set N8N_WEBHOOK_URL or DISCORD_WEBHOOK_URL)'}")
    print(f"  Confirmation: {'code set' if settings.secret('CONFIRMATION_CODE') else 'CONFIRMATION_CODE unset: commands that ask are refused'}")
    print(f"  Sandbox:      {sandbox.status_line(settings.SANDBOX, settings.SANDBOX_NETWORK != 'off')}")
    print(flush=True)
    if settings.ANTHROPIC_API_KEY is None and not args.started_by_up:
        logging.warning("ANTHROPIC_API_KEY is not set: every task will fail until you add it to .env "
                        "(see env.example) and restart this worker.")
    if warning := redis_warning(settings):
        logging.warning("%s", warning)
    name = args.name or f"{socket.gethostname()}.{os.getpid()}"
    delivery = start_delivery(f"{name}.delivery")
    try:
        background_worker.warm_up(settings)  # built once here instead of in every work-horse
        worker_class = TarsSpawnWorker if sys.platform == "darwin" else TarsWorker
        worker = worker_class([Queue(q, connection=connection) for q in queue_names], connection=connection,
                              name=name)
        worker.settings = settings
        worker.capabilities = tuple(served)
        # with_scheduler: RQ's scheduler queues the jobs that wait in its ScheduledJobRegistry when they are due
        # (tasks started for later, core/schedules.py; automatic retries, core/retries.py); one worker at a time
        # holds its lock, any worker may.
        worker.work(burst=args.burst, with_scheduler=True, logging_level=settings.LOG_LEVEL,
                    log_format=WORKER_LOG_FORMAT)
    finally:
        stop_delivery(delivery)
    return 0


def start_delivery(name: str) -> subprocess.Popen | None:
    """The progress delivery process (communication/delivery.py), started before any work-horse exists. A process of
    its own, not a thread here: this process forks a horse per task, and a fork made while another thread holds a
    lock (logging, httpx, ssl) can leave the child deadlocked; and what it delivers outlives a killed horse."""
    root = str(Path(__file__).resolve().parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    try:
        # Its stdin is a pipe only this process holds: closing it (or this process dying) is the stop.
        return subprocess.Popen([sys.executable, "-m", "communication.delivery", "--name", name], env=env,
                                stdin=subprocess.PIPE)
    except OSError as exc:
        logging.error("could not start the progress delivery process (%s): updates wait for the next worker", exc)
        return None


def stop_delivery(process: subprocess.Popen | None) -> None:
    """Ask it to deliver what is left (DRAIN_SECONDS at most) and stop; what it could not send, the next reader
    sends (each task's cursor is in Redis)."""
    if process is None or process.poll() is not None:
        return
    try:
        process.stdin.close()  # its stop (it ignores SIGINT and SIGTERM: those are this worker's)
        process.wait(DRAIN_SECONDS + 30)  # its drain counts from its first poll: a slow start gets it too
    except subprocess.TimeoutExpired:
        process.kill()  # nothing is lost: the next reader resumes from the cursors
        process.wait()
    except BaseException:  # a second Ctrl+C (a cold stop) while it drains
        process.kill()
        process.wait()
        raise


if __name__ == "__main__":
    sys.exit(main())
