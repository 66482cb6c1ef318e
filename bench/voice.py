"""Voice benchmarks: the relay's own overhead per turn, and the /voice webhook under load.

    .venv/bin/python -m bench.voice [--turns 200] [--calls 500 --concurrency 50]

Everything is real and local: a private Redis, the fake Anthropic API (streaming), the FastAPI
app under uvicorn, a ConversationRelay client, two worker processes busy with tasks.

* relay overhead = (prompt sent → first text token received by the caller)
                   − (the fake API's own time from request to first streamed text),
  i.e. what TARS adds on the way in (relay → SDK → HTTP) and out (SDK → relay → socket).
* webhook latency = signed POST /voice round trips at the given concurrency while two workers run.
Targets (issue 4): overhead p50 ≤ 5 ms, p99 ≤ 20 ms; webhook p99 ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import figures, machine, private_redis, start_worker, stop_process  # noqa: E402
from communication.console_phone import RelayClient, public_relay_url  # noqa: E402
from core.config import load_settings  # noqa: E402
from core.redis_conn import connect, free_port  # noqa: E402
from core.task_manager import TaskManager  # noqa: E402
from tests.fakes.anthropic_api import FakeAnthropic, bash, repeat, text  # noqa: E402

PUBLIC = "https://tars.bench.test"
TOKEN = "bench-twilio-auth-token"
OWNER = "+15550001111"


async def relay_overhead(server_url: str, fake: FakeAnthropic, turns: int) -> tuple[list, list, list]:
    fake.script([repeat(text("Right away, sir."))], match="")
    overheads, inbound, outbound = [], [], []
    url = server_url.replace("http://", "ws://") + "/relay"
    async with RelayClient(url, auth_token=TOKEN, public_url=public_relay_url(PUBLIC), caller=OWNER) as call:
        await call.setup()
        for i in range(turns + 5):
            before = len(fake.requests)
            began = time.monotonic()
            await call.prompt(f"Question number {i}?")
            await call.first_token()
            first_heard = time.monotonic()
            await call.reply()
            request = fake.requests[before]
            model_ttft = request.first_text_mono - request.received_mono
            if i >= 5:  # warm-up turns: imports, connection pool
                overheads.append((first_heard - began - model_ttft) * 1000)
                inbound.append((request.received_mono - began) * 1000)  # prompt → the API request arrives
                outbound.append((first_heard - request.first_text_mono) * 1000)  # first delta → caller's token
    return overheads, inbound, outbound


async def webhook_latency(port: int, calls: int, concurrency: int) -> list[float]:
    """Closed loop: `concurrency` keep-alive connections, each sending its share of signed POST /voice back to back.

    A raw asyncio client, because httpx's AsyncClient tops out near 200 requests/s here and would
    measure itself rather than the server."""
    form = {"CallSid": "CA" + "0" * 32, "From": OWNER, "To": "+15550002222", "AccountSid": "AC" + "0" * 32}
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC + "/voice", form)
    body = urlencode(form).encode()
    request = (f"POST /voice HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
               f"X-Twilio-Signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    latencies: list[float] = []

    async def connection(count: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(count):
            began = time.monotonic()
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head[:100]
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length"))
            await reader.readexactly(length)
            latencies.append((time.monotonic() - began) * 1000)
        writer.close()

    await asyncio.gather(*(connection(calls // concurrency) for _ in range(concurrency)))
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tars-bench-"))
    (work / "projects").mkdir()
    workers = []
    with private_redis(work / "redis") as store, FakeAnthropic() as fake:
        env = {"TARS_ENV_FILE": os.devnull, "REDIS_URL": store.url, "ANTHROPIC_API_KEY": "sk-ant-bench-000000",
               "ANTHROPIC_BASE_URL": fake.base_url, "PROJECTS_ROOT": str(work / "projects"),
               "DATA_DIR": str(work / "data"), "PUBLIC_BASE_URL": PUBLIC, "TWILIO_AUTH_TOKEN": TOKEN,
               "OWNER_PHONE_NUMBERS": OWNER, "LOG_LEVEL": "WARNING", "MAX_TASK_ITERATIONS": "1000",
               "MAX_TASK_RUNTIME_MINUTES": "10"}
        os.environ.update(env)
        settings = load_settings()
        connection = connect(store.url)
        # The server runs as its own process, as deployed (a thread here would share this process's GIL with the
        # load generator and the fake API).
        http_port = free_port()
        served = subprocess.Popen([sys.executable, str(ROOT / "main_tars.py"), "serve"], cwd=ROOT,
                                  env={**os.environ, **env, "PORT": str(http_port)}, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        workers.append(served)
        try:
            served_url = f"http://127.0.0.1:{http_port}"
            while True:
                try:
                    if httpx.get(served_url + "/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            overheads, inbound, outbound = asyncio.run(relay_overhead(served_url, fake, args.turns))
            # Two workers busy with tasks whose model keeps them running commands.
            fake.reset()  # the first matching script serves: the busy one goes first
            fake.script([repeat(bash("sleep 0.3 && date +%N"))], match="busy work")
            tasks = TaskManager(connection, settings)
            busy = [tasks.start(f"busy work {i}", project_path=f"busy{i}") for i in range(2)]
            for i in range(2):
                workers.append(start_worker(env))
            deadline = time.monotonic() + 30
            while any(tasks.status(t).status != "running" for t in busy):
                if time.monotonic() > deadline:
                    raise SystemExit("the workers did not start the busy tasks")
                time.sleep(0.1)
            asyncio.run(webhook_latency(http_port, args.concurrency, args.concurrency))  # warm-up
            latencies = asyncio.run(webhook_latency(http_port, args.calls, args.concurrency))
            still_busy = sum(tasks.status(t).status == "running" for t in busy)
            for task_id in busy:
                if tasks.status(task_id).active:
                    tasks.cancel(task_id)
        finally:
            for worker in workers:
                stop_process(worker)
    shutil.rmtree(work, ignore_errors=True)

    print(machine())
    print(figures("relay overhead (first token, minus the model's own time to first token)", overheads),
          "| target p50 <= 5 ms, p99 <= 20 ms")
    print("  " + figures("of which inbound (prompt -> API request)", inbound))
    print("  " + figures("of which outbound (first streamed delta -> caller)", outbound))
    print(figures(f"/voice webhook at {args.concurrency} concurrent, 2 workers busy", latencies),
          f"| target p99 <= 50 ms ({still_busy} of 2 tasks still running at the end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
