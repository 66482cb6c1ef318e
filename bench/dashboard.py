"""The web dashboard's live streams against a real server: how fast an event reaches a tab, what open tabs cost Redis.

    .venv/bin/python -m bench dashboard [--quick]      (or on its own: .venv/bin/python -m bench.dashboard [--quick])

Everything is real and local: a private Redis of its own (nothing else talks to it, so its command counters are the
server's), `python main_tars.py serve` as its own process (HOST=127.0.0.1, a free PORT, DASHBOARD_PASSWORD set, no
worker: tasks started by core.task_manager.TaskManager in this process stay queued), and one logged-in httpx
client (POST /login, the tars_session cookie, GET /dashboard/api/session) reading the Server-Sent Events streams
in this process's event loop; an event's receive time is taken when its closing blank line arrives.

* event -> task stream: GET /dashboard/api/tasks/{id}/stream is open on a queued task (its `queued` event arrived);
  this process appends N events (full 200, --quick 20) with core.event_log.append, ~30 ms apart, each carrying
  time.perf_counter() taken just before its append in data.sent; latency = received - sent, per event. The server
  polls the stream with XRANGE every STREAM_POLL_SECONDS (0.25 s), so ~U(0, 250 ms) is the design. Target: p99 <=
  500 ms.
* new task -> overview stream: GET /dashboard/api/overview/stream is open; N times (full 20, --quick 5), after a
  random pause of 0-1 s (so that starts fall anywhere in the server's 1 s OVERVIEW_CHECK_SECONDS cycle),
  TaskManager.start(...) is timed from just before the call until the first `overview` event listing its id.
  Informational (the design is ~U(0, 1 s)).
* Redis load: first the overview is filled to its 20 tasks (OVERVIEW_TASKS), then Redis's INFO commandstats (all
  commands but INFO itself, which is this process's) is read over windows of W s (full 5, --quick 0.5): no stream
  open (baseline); one task stream open; that task stream and 1 overview stream (the window begun 0.5 s after its
  first event, mid-cycle); it and 5 overview streams (the 4 more opened 0.2 s apart, so that their reads spread
  over the 1 s cycle); and, all closed for 1.2 s, a last window that should be back at the baseline (a stream that
  outlived its tab would show there). Per task stream = its window - baseline; per overview tab = K=1 window - task
  window, and (K=5 window - task window) / 5. Informational, commands/s; the by-command line breaks the first two
  differences down and gives the server's CPU (utime + stime from /proc) over each window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.common import (Figure, apply_env, percentile, private_redis, start_process, stop_process,  # noqa: E402
                          tars_env, wait_until)
from core import event_log  # noqa: E402
from core.redis_conn import connect, free_port  # noqa: E402

TASK_STREAM = "dashboard event -> task stream latency"
OVERVIEW = "dashboard overview -> stream latency"
LOAD = "dashboard Redis load per open tab"
LOAD_BY_COMMAND = "  dashboard Redis load by command, and server CPU"
NAMES = [TASK_STREAM, OVERVIEW, LOAD, LOAD_BY_COMMAND]
TARGET_P99_MS = 500.0
PASSWORD = "bench-dashboard-password"
SPACING_SECONDS = 0.03
NO_API = "http://127.0.0.1:9"  # nothing here calls the model: no worker runs


@contextmanager
def applied(env: dict[str, str]):
    """os.environ as a TARS process of the benchmark sees it, for the block only (a developer's own variables out)."""
    saved = dict(os.environ)
    apply_env(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def command_calls(connection) -> Counter:
    """Commands Redis has run so far, by name (INFO itself left out: only this process sends it)."""
    return Counter({name.removeprefix("cmdstat_"): int(stats["calls"])
                    for name, stats in connection.info("commandstats").items() if name != "cmdstat_info"})


class Stream:
    """One open SSE stream read in the background: every event as (received perf_counter, type, data)."""

    def __init__(self, client: httpx.AsyncClient, path: str):
        self.events: asyncio.Queue = asyncio.Queue()
        self.task = asyncio.create_task(self._read(client, path))

    async def _read(self, client: httpx.AsyncClient, path: str) -> None:
        async with client.stream("GET", path, headers={"Accept": "text/event-stream"}) as response:
            if response.status_code != 200:
                raise SystemExit(f"bench: GET {path} answered {response.status_code}")
            kind, data = "message", []
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif line == "" and data:
                    self.events.put_nowait((time.perf_counter(), kind, json.loads("\n".join(data))))
                    kind, data = "message", []

    async def next(self, timeout: float = 30.0) -> tuple[float, str, dict]:
        getting = asyncio.ensure_future(self.events.get())
        done, _ = await asyncio.wait({getting, self.task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if getting in done:
            return getting.result()
        getting.cancel()
        if self.task in done:
            self.task.result()  # its error, if any
            raise SystemExit("bench: a dashboard stream ended early")
        raise SystemExit(f"bench: no dashboard event within {timeout:.0f} s")

    async def close(self) -> None:
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass


async def login(client: httpx.AsyncClient) -> None:
    from communication.dashboard import LOGIN_COOKIE  # here: `python -m bench` imports this module for NAMES

    answer = await client.post("/login", data={"password": PASSWORD})
    if answer.status_code != 303 or LOGIN_COOKIE not in client.cookies:
        raise SystemExit(f"bench: dashboard login answered {answer.status_code}")
    session = await client.get("/dashboard/api/session")
    if session.status_code != 200 or not session.json().get("csrf_token"):
        raise SystemExit(f"bench: /dashboard/api/session answered {session.status_code}")


def dist(values_ms: list[float], *qs: int) -> str:
    return (f"n={len(values_ms)} " + " ".join(f"p{q}={percentile(values_ms, q):.1f} ms" for q in qs)
            + f" max={max(values_ms):.1f} ms")


async def task_stream_latency(client, connection, task_id: str, count: int) -> list[float]:
    stream = Stream(client, f"/dashboard/api/tasks/{task_id}/stream")
    try:
        _, kind, _ = await stream.next()
        if kind != "queued":
            raise SystemExit(f"bench: the task stream began with {kind!r}, not the queued event")
        latencies: list[float] = []

        async def receive() -> None:
            while len(latencies) < count:
                received, kind, event = await stream.next()
                sent = event.get("data", {}).get("sent")
                if kind == "bench" and sent is not None:
                    latencies.append((received - sent) * 1000)

        receiving = asyncio.create_task(receive())
        for i in range(count):
            event_log.append(connection, task_id, "bench", f"bench event {i}", "coding",
                             {"sent": time.perf_counter(), "i": i})
            await asyncio.sleep(SPACING_SECONDS)
        await asyncio.wait_for(receiving, 30)
        return latencies
    finally:
        await stream.close()


async def overview_latency(client, tasks, count: int) -> list[float]:
    stream = Stream(client, "/dashboard/api/overview/stream")
    pause = random.Random(6283)
    try:
        await stream.next()  # the overview at once
        latencies = []
        for i in range(count):
            await asyncio.sleep(pause.uniform(0, 1.0))
            while not stream.events.empty():
                stream.events.get_nowait()
            began = time.perf_counter()
            task_id = tasks.start(f"dashboard overview probe {i}", project_path="dash")
            while True:
                received, kind, view = await stream.next()
                if kind == "overview" and any(t.get("task_id") == task_id for t in view.get("tasks", [])):
                    latencies.append((received - began) * 1000)
                    break
        return latencies
    finally:
        await stream.close()


async def redis_load(client, connection, server_pid: int, task_id: str, window: float) -> list[Figure]:
    from communication.dashboard import OVERVIEW_TASKS

    async def measure() -> tuple[Counter, float, float]:
        before, cpu, began = command_calls(connection), cpu_seconds(server_pid), time.monotonic()
        await asyncio.sleep(window)
        after, elapsed = command_calls(connection), time.monotonic() - began
        return after - before, elapsed, (cpu_seconds(server_pid) - cpu) / elapsed * 100

    def rate(counts: Counter, elapsed: float) -> float:
        return sum(counts.values()) / elapsed

    base, base_s, base_cpu = await measure()
    task = Stream(client, f"/dashboard/api/tasks/{task_id}/stream")
    overviews: list[Stream] = []
    try:
        await task.next()
        await asyncio.sleep(0.3)  # its past events are out: it polls from here
        with_task, task_s, task_cpu = await measure()
        overviews.append(Stream(client, "/dashboard/api/overview/stream"))
        await overviews[0].next()
        await asyncio.sleep(0.5)  # mid-cycle: the window's edges fall between two of its reads
        one, one_s, one_cpu = await measure()
        for _ in range(4):  # opened 0.2 s apart, so that the 5 streams' reads spread over the 1 s cycle
            overviews.append(Stream(client, "/dashboard/api/overview/stream"))
            await overviews[-1].next()
            await asyncio.sleep(0.2)
        five, five_s, five_cpu = await measure()
    finally:
        for stream in [task, *overviews]:
            await stream.close()
    await asyncio.sleep(1.2)  # a closed stream's server loop notices within one cycle (the overview's is 1 s)
    closed, closed_s, closed_cpu = await measure()

    r_base, r_task, r_one, r_five, r_closed = (rate(base, base_s), rate(with_task, task_s), rate(one, one_s),
                                               rate(five, five_s), rate(closed, closed_s))
    per_task = r_task - r_base
    per_tab_one, per_tab_five = r_one - r_task, (r_five - r_task) / 5
    load = Figure(LOAD, f"per overview tab {per_tab_one:.1f} commands/s (K=1), {per_tab_five:.1f} commands/s "
                        f"(K=5, each); per task stream {per_task:.1f} commands/s; windows of {window:g} s, "
                        f"{OVERVIEW_TASKS} tasks listed: baseline {r_base:.1f}, task stream {r_task:.1f}, + 1 "
                        f"overview {r_one:.1f}, + 5 overviews {r_five:.1f}, all closed {r_closed:.1f} commands/s")

    def by_command(counts: Counter, elapsed: float, minus: Counter, minus_elapsed: float) -> str:
        names = set(counts) | set(minus)
        rates = {n: counts[n] / elapsed - minus[n] / minus_elapsed for n in names}
        shown = sorted(((r, n) for n, r in rates.items() if abs(r) >= 0.05), reverse=True)
        return " ".join(f"{n} {r:.1f}" for r, n in shown) or "none"

    breakdown = Figure(LOAD_BY_COMMAND,
                       f"overview tab: {by_command(one, one_s, with_task, task_s)}; task stream: "
                       f"{by_command(with_task, task_s, base, base_s)} (commands/s); server CPU % of a core: "
                       f"baseline {base_cpu:.1f}, task stream {task_cpu:.1f}, + 1 overview {one_cpu:.1f}, + 5 "
                       f"overviews {five_cpu:.1f}, all closed {closed_cpu:.1f}")
    return [load, breakdown]


async def measure_all(url: str, connection, tasks, server_pid: int, quick: bool) -> list[Figure]:
    from communication.dashboard import OVERVIEW_TASKS

    events, starts, window = (20, 5, 0.5) if quick else (200, 20, 5.0)
    timeout = httpx.Timeout(10.0, read=60.0)
    async with httpx.AsyncClient(base_url=url, timeout=timeout) as client:
        await login(client)
        task_id = tasks.start("dashboard stream probe", project_path="dash")
        stream_ms = await task_stream_latency(client, connection, task_id, events)
        p99 = percentile(stream_ms, 99)
        found = [Figure(TASK_STREAM, f"{dist(stream_ms, 50, 95, 99)} (events {SPACING_SECONDS * 1000:.0f} ms "
                                     f"apart; the server polls every 250 ms)",
                        f"p99 <= {TARGET_P99_MS:.0f} ms", p99 <= TARGET_P99_MS)]
        overview_ms = await overview_latency(client, tasks, starts)
        found.append(Figure(OVERVIEW, f"{dist(overview_ms, 50, 95)} (starts at random points of the server's 1 s "
                                      f"cycle)"))
        for i in range(max(0, OVERVIEW_TASKS - 1 - starts)):
            tasks.start(f"dashboard filler {i}", project_path="dash")
        found += await redis_load(client, connection, server_pid, task_id, window)
    return found


def run(quick: bool, out=print) -> list[Figure]:
    from core.config import load_settings
    from core.task_manager import TaskManager

    work = Path(tempfile.mkdtemp(prefix="tars-bench-dashboard-"))
    try:
        with private_redis(work / "redis") as store:
            port = free_port()
            env = tars_env(store.url, NO_API, work, HOST="127.0.0.1", PORT=str(port), DASHBOARD_PASSWORD=PASSWORD)
            with applied(env):
                settings = load_settings()
                server = start_process([str(ROOT / "main_tars.py"), "serve"], env, work / "serve.log")
            connection = connect(store.url)
            try:
                url = f"http://127.0.0.1:{port}"
                wait_until(lambda: healthy(url) or server.poll() is not None, 60, "the dashboard server", 0.05)
                if server.poll() is not None:
                    raise SystemExit("bench: the dashboard server exited at once")
                found = asyncio.run(measure_all(url, connection, TaskManager(connection, settings), server.pid,
                                                quick))
            finally:
                stop_process(server)
                connection.close()
    except BaseException:
        print(f"bench: the dashboard server's log is kept in {work / 'serve.log'}", file=sys.stderr)
        raise
    shutil.rmtree(work, ignore_errors=True)
    for figure in found:
        out(figure.line())
    return found


def parse(stdout: str) -> list[Figure]:
    """The figures `python -m bench.dashboard` printed (Figure.line()), back as Figures, in NAMES order."""
    found = []
    for name in NAMES:
        line = next((line for line in stdout.splitlines() if line[5:].startswith(f"{name}: ")), None)
        if line is None:
            raise SystemExit(f"bench: the dashboard benchmark printed no {name!r}")
        verdict = line[:4].strip()
        value, _, target = line[5 + len(name) + 2:].partition(" | target ")
        found.append(Figure(name, value, target, None if verdict == "info" else verdict == "PASS"))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts, for the smoke test")
    run(parser.parse_args(argv).quick, lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
