"""Progress delivery latency: an event appended to a task's stream → the POST at a local n8n stand-in.

    .venv/bin/python -m bench delivery [--quick]

The reader is the real one, `python -m communication.delivery` as start_worker.py starts it, on the bench's private
Redis; the endpoint is a local HTTP server answering 200 at once (tests/fakes/webhook_server.py). One event at a
time (full 300, --quick 20): the time from just before event_log.append (what TaskContext.event does) to the
server reading the POST. Interleaved with the baseline, a direct httpx POST of a body of the same size to the same
server, one per event: the ratio is what the stream, the wake-up and the reader's Redis round trips add.

Before (the per-task Notifier in the work-horse, base cf58b6e, measured the same way with append + Notifier.send
in one process): p50 0.81 ms, p99 1.47 ms; direct POST p50 0.74 ms, p99 1.54 ms (1.10x).

The Discord bot's edits: the same reader with the bot set (DISCORD_BOT_TOKEN, ...) against a local Discord
(tests/fakes/discord_api.py) gets a task's 100 updates (--quick 20), then its ending: once as a busy task (an update
every 20 ms) and once as a burst (all back to back). Counted: the PATCHes of the task's status message (without
coalescing, one per update) and the POSTs (the status message, the ending). Target: at most one edit per
BOT_EDIT_SECONDS of the task, plus the ending's.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.common import Figure, Rig, percentile, wait_until  # noqa: E402
from communication.delivery import BOT_EDIT_SECONDS  # noqa: E402
from core import event_log, keys  # noqa: E402
from tests.fakes.discord_api import FakeDiscord  # noqa: E402
from tests.fakes.webhook_server import FakeWebhook  # noqa: E402

LATENCY = "delivery latency, append → endpoint (delivery)"
BASELINE = "  direct httpx POST to the same endpoint (delivery)"
EDITS = "Discord bot edits of a task's status message (delivery)"
NAMES = [LATENCY, BASELINE, EDITS]
TASK = "bench-delivery"


def received(hook: FakeWebhook, count: int, timeout: float = 30.0) -> float:
    """When (time.monotonic()) the server read its count-th request."""
    requests = hook.wait_for(count, timeout)
    if len(requests) < count:
        raise SystemExit(f"bench: the endpoint got {len(requests)} of {count} POSTs")
    return requests[count - 1].at


def run(rig: Rig, quick: bool, out=print) -> list[Figure]:
    events = 20 if quick else 300
    hook = FakeWebhook()
    reader = rig.spawn(["-m", "communication.delivery", "--name", "bench"], "delivery", N8N_WEBHOOK_URL=hook.url())
    client = httpx.Client(trust_env=False)
    try:
        # The reader is up once it delivered a first event (its start-up is not what is measured).
        event_log.append(rig.redis, TASK, "started", "Started: benchmark delivery", "planning")
        received(hook, 1, timeout=60)
        count = 1
        direct, delivered = [], []
        body = hook.requests[0].body
        for i in range(events):
            began = time.monotonic()
            client.post(hook.url(), content=body, headers={"content-type": "application/json"})
            count += 1
            direct.append((received(hook, count) - began) * 1000)
            began = time.monotonic()
            event_log.append(rig.redis, TASK, "command", f"Running: step {i}", "coding", {"command": f"step {i}"})
            count += 1
            delivered.append((received(hook, count) - began) * 1000)
        event_log.append(rig.redis, TASK, "complete", "Complete: benchmark done", "complete")
        wait_until(lambda: not rig.redis.sismember(keys.UNDELIVERED_TASKS, TASK), 30, "the task retired")
    finally:
        client.close()
        rig.stop(reader)
        hook.stop()
    p50, p99 = percentile(delivered, 50), percentile(delivered, 99)
    base50, base99 = percentile(direct, 50), percentile(direct, 99)
    found = [Figure(LATENCY, f"p50 {p50:.2f} ms, p99 {p99:.2f} ms over {events} events "
                             f"({p50 / base50:.2f}x the direct POST's p50; before, in the work-horse: p50 0.81 ms, "
                             f"p99 1.47 ms, 1.10x)", "p50 <= 10 ms, p99 <= 100 ms", p50 <= 10 and p99 <= 100),
             Figure(BASELINE, f"p50 {base50:.2f} ms, p99 {base99:.2f} ms")]
    found.append(bot_edits(rig, 20 if quick else 100))
    for figure in found:
        out(figure.line())
    return found


def bot_edits(rig: Rig, events: int) -> Figure:
    discord = FakeDiscord().start()
    reader = rig.spawn(["-m", "communication.delivery", "--name", "bench-bot"], "delivery-bot",
                       DISCORD_BOT_TOKEN=discord.bot_token, DISCORD_CHANNEL_ID=str(discord.channel_id),
                       DISCORD_OWNER_IDS=str(discord.owner_id), DISCORD_API_URL=discord.api_url)
    runs = []
    try:
        for name, spacing in (("busy", 0.02), ("burst", 0.0)):
            discord.reset()
            task = f"bench-bot-{name}"
            event_log.append(rig.redis, task, "started", "Started: benchmark the bot", "planning")
            discord.wait_for(lambda: discord.bot_messages(), 60)  # the status message: the reader is up
            began = time.monotonic()
            for i in range(events):
                event_log.append(rig.redis, task, "command", f"Running: step {i}", "coding", {"command": f"step {i}"})
                if spacing:
                    time.sleep(spacing)
            event_log.append(rig.redis, task, "complete", "Complete: benchmark done", "complete")
            took = time.monotonic() - began
            wait_until(lambda: not rig.redis.sismember(keys.UNDELIVERED_TASKS, task), 60, "the bot's task retired")
            methods = [r.method for r in discord.requests]
            runs.append((name, took, methods.count("PATCH"), methods.count("POST")))
    finally:
        rig.stop(reader)
        discord.stop()
    value = "; ".join(f"{name} ({events} updates in {took:.2f} s): {patches} PATCHes + {posts} POSTs"
                      for name, took, patches, posts in runs) + f" (without coalescing: {events + 1} PATCHes each)"
    allowed = all(patches <= took / BOT_EDIT_SECONDS + 2 for _, took, patches, _ in runs)
    return Figure(EDITS, value, f"PATCHes <= task seconds / {BOT_EDIT_SECONDS:g} + 2", allowed)
