"""Task benchmarks on real worker processes: enqueue latency, confirmation resume, prompt caching, throughput.

    .venv/bin/python -m bench tasks [--quick]     (or: enqueue, confirm, cache, throughput)

Everything is real and local: a private Redis, the fake Anthropic API (tests/fakes/anthropic_api.py) in this
process, TARS's forking RQ workers as processes (start_worker.py, or bench/worker.py which runs start_worker.main()
with one more queue), and raw RQ baselines on the same kind of worker.

* enqueue -> body start (warm): TaskManager.start(...) -> job.meta['body_started_at'] (run_task's first line), vs
  Queue.enqueue(bench.jobs.record_start) -> the time.time() that job records at its first line; both on the same
  worker process (bench/worker.py listens on both queues), one at a time, each sample started only once the worker
  is idle and blocked in its BLPOP (CLIENT LIST), TARS and raw samples alternating.
* confirmation -> resume: a scripted task runs `rm -f xN` (destructive: needs CONFIRMATION_CODE) again and again;
  once its work-horse is blocked in the gate's BLPOP, TaskManager.confirm(task, code) is called in this process.
  "Resumed" = the work-horse consumed the code: its GETDEL of task:<id>:confirmation, the first thing it does after
  its BLPOP returns, seen as a keyspace notification of the private Redis. "Ran" = the gated file is gone.
* cache share: one 20-request scripted task through a worker; the fake API's own cache emulation is replayed over
  the recorded request bodies: cache_read / (input + cache_read + cache_creation), overall and per step.
* throughput: N scripted 3-request tasks enqueued at once onto 2 `start_worker.py` workers, vs the same agent work
  (bench.jobs.agent_task: Agent + AnthropicModel + Workspace) onto 2 plain rq workers; tasks/s until RQ has
  recorded all N as finished; rounds alternate TARS, raw, raw, TARS, ...
"""

from __future__ import annotations

import queue
import re
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from rq import Queue  # noqa: E402
from rq.job import Job  # noqa: E402

from bench.common import (CODE, Figure, Rig, blocked_clients, median, percentile, wait_until,  # noqa: E402
                          worker_idle)
from bench.jobs import RAW_QUEUE, agent_task, record_start  # noqa: E402
from core import keys  # noqa: E402
from core.confirmations import pending_request  # noqa: E402
from core.defaults import QUEUE_NAME  # noqa: E402
from core.redis_conn import private_client  # noqa: E402
from tests.fakes.anthropic_api import _PromptCache, bash, edit, repeat, text  # noqa: E402

ENQUEUE_TARS = "enqueue -> body start, TARS (warm worker)"
ENQUEUE_RAW = "enqueue -> body start, raw RQ no-op (same worker)"
ENQUEUE_RATIO = "enqueue -> body start, TARS p50 / raw p50"
CONFIRM_RESUME = "confirmation code -> worker resumes (consumes the code)"
CONFIRM_RAN = "confirmation code -> gated command ran (file gone)"
CACHE_SHARE = "input tokens read from cache, 20-step task"
THROUGHPUT_TARS = "throughput, 2 TARS workers"
THROUGHPUT_RAW = "throughput, 2 raw rq workers, same agent body"
THROUGHPUT_RATIO = "throughput, TARS / raw"
NAMES = [ENQUEUE_TARS, ENQUEUE_RAW, ENQUEUE_RATIO, CONFIRM_RESUME, CONFIRM_RAN, CACHE_SHARE, THROUGHPUT_TARS,
         THROUGHPUT_RAW, THROUGHPUT_RATIO]
WORKER = "bench-worker"  # the one bench/worker.py process of the enqueue, confirm and cache benchmarks


def ms(seconds: float) -> float:
    return seconds * 1000


def dist(values_ms: list[float]) -> str:
    return f"n={len(values_ms)} p50={percentile(values_ms, 50):.2f} ms p99={percentile(values_ms, 99):.2f} ms"


def assistant_turns(body: dict) -> int:
    return sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")


def start_bench_worker(rig: Rig) -> None:
    if not any(getattr(p, "bench_name", None) == WORKER for p in rig.processes if p.poll() is None):
        process = rig.spawn([str(ROOT / "bench" / "worker.py"), "--name", WORKER], WORKER)
        process.bench_name = WORKER
    wait_until(lambda: worker_idle(rig.redis, WORKER), 60, "the bench worker to listen", 0.05)


def stop_bench_worker(rig: Rig) -> None:
    for process in list(rig.processes):
        if getattr(process, "bench_name", None) == WORKER:
            rig.stop(process)


def wait_idle(rig: Rig) -> None:
    wait_until(lambda: worker_idle(rig.redis, WORKER), 30, "the worker to be idle again", 0.002)


# --- 1. enqueue -> body start -------------------------------------------------------------------------------------
def enqueue(rig: Rig, samples: int) -> list[Figure]:
    rig.fake.reset()
    rig.fake.script([repeat(text("Done."))], match="enqueue probe")
    start_bench_worker(rig)
    raw = Queue(RAW_QUEUE, connection=rig.redis)
    warmup = 3
    tars_ms, raw_ms = [], []

    def one_tars(i: int) -> float:
        began = time.time()
        task_id = rig.tasks.start(f"enqueue probe {i}", project_path="enqueue")
        if not rig.tasks.wait_until_ended(task_id, 30):
            raise SystemExit(f"bench: enqueue probe task {task_id} did not end")
        job = Job.fetch(task_id, connection=rig.redis)
        return ms(job.get_meta()["body_started_at"] - began)

    def one_raw(i: int) -> float:
        key = f"bench:started:{i}"
        began = time.time()
        raw.enqueue(record_start, key, result_ttl=600)
        popped = rig.redis.blpop([key], timeout=30)
        if popped is None:
            raise SystemExit("bench: the raw no-op job did not run")
        return ms(float(popped[1]) - began)

    for i in range(samples + warmup):
        pair = (one_tars, one_raw) if i % 2 == 0 else (one_raw, one_tars)
        for measure in pair:
            wait_idle(rig)
            value = measure(i)
            if i >= warmup:
                (tars_ms if measure is one_tars else raw_ms).append(value)
    ratio = percentile(tars_ms, 50) / percentile(raw_ms, 50)
    return [Figure(ENQUEUE_TARS, dist(tars_ms)), Figure(ENQUEUE_RAW, dist(raw_ms)),
            Figure(ENQUEUE_RATIO, f"{ratio:.2f}x", "<= 1.2x", ratio <= 1.2)]


# --- 2. confirmation -> resume ------------------------------------------------------------------------------------
def confirm(rig: Rig, samples: int) -> list[Figure]:
    warmup = 3
    total = samples + warmup
    rig.fake.reset()
    rig.fake.script([repeat(lambda body: bash(f"rm -f x{assistant_turns(body)}") if assistant_turns(body) < total
                            else text("Done."))], match="confirm probe")
    project = rig.tasks.resolve_project("confirm")
    for n in range(total):
        (project / f"x{n}").write_text("to be removed\n")
    start_bench_worker(rig)
    rig.redis.config_set("notify-keyspace-events", "Kg$")  # the private Redis only
    task_id = rig.tasks.start("confirm probe", project_path="confirm")
    consumed: queue.Queue[float] = queue.Queue()
    # A client of its own, stopped and joined before it is closed: a pub/sub closed under its reader goes back to the
    # pool and steals the next command's reply (the work-horse hang of issue 12; this bench hung on it too).
    listening = private_client(rig.redis)
    pubsub = listening.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(f"__keyspace@0__:{keys.task_confirmation(task_id)}")
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            message = pubsub.get_message(timeout=0.1)
            if message and message.get("data") == b"del":  # the worker's GETDEL of the code
                consumed.put(time.perf_counter())

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    resume_ms, ran_ms = [], []
    try:
        for k in range(total):
            request = wait_until(lambda: pending_request(rig.redis, task_id), 30, "a confirmation request", 0.002)
            wait_until(lambda: blocked_clients(rig.redis, ("blpop",)), 30, "the work-horse to block on the code", 0.002)
            gated = project / re.fullmatch(r"rm -f (x\d+)", request["command"]).group(1)
            began = time.perf_counter()
            rig.tasks.confirm(task_id, CODE)
            while gated.exists():
                time.sleep(0.0002)
            ran = time.perf_counter()
            resumed = consumed.get(timeout=10)
            if k >= warmup:
                resume_ms.append(ms(resumed - began))
                ran_ms.append(ms(ran - began))
        if not rig.tasks.wait_until_ended(task_id, 30) or rig.tasks.status(task_id).status != "complete":
            raise SystemExit(f"bench: the confirm probe task ended {rig.tasks.status(task_id).status}")
    finally:
        stop.set()
        listener.join(10)
        pubsub.close()
        listening.close()
        rig.redis.config_set("notify-keyspace-events", "")
    p99 = percentile(resume_ms, 99)
    return [Figure(CONFIRM_RESUME, dist(resume_ms) + " (TaskManager.confirm in-process)", "p99 <= 50 ms",
                   p99 <= 50),
            Figure(CONFIRM_RAN, dist(ran_ms) + " (resume + bash rm; file polled every 0.2 ms)")]


# --- 4. prompt-cache share ----------------------------------------------------------------------------------------
CACHE_STEPS = [
    edit(command="view", path="."),
    edit(command="create", path="calc.py", file_text="def add(a, b):\n    return a + b\n"),
    edit(command="view", path="calc.py"),
    edit(command="str_replace", path="calc.py", old_str="    return a + b\n",
         new_str="    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"),
    bash("python -c 'import calc; print(calc.add(2, 3), calc.sub(5, 1))'"),
    edit(command="insert", path="calc.py", insert_line=0, insert_text='"""A tiny calculator."""\n'),
    edit(command="create", path="README.md", file_text="# calc\n\nadd and sub, for the benchmark.\n"),
    bash("ls -la"),
    edit(command="str_replace", path="calc.py", old_str="def sub(a, b):\n    return a - b\n",
         new_str="def sub(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"),
    bash("python -c 'import calc; print(calc.mul(6, 7))'"),
    edit(command="view", path="calc.py", view_range=[1, 5]),
    edit(command="create", path="cli.py", file_text="import sys\n\nimport calc\n\n"
                                                   "print(calc.add(int(sys.argv[1]), int(sys.argv[2])))\n"),
    bash("python cli.py 20 22"),
    bash("wc -l calc.py cli.py README.md"),
    edit(command="str_replace", path="README.md", old_str="add and sub", new_str="add, sub and mul"),
    bash("cat README.md"),
    edit(command="view", path="cli.py"),
    bash("python -c 'import calc; assert calc.add(1, 1) == 2; print(\"ok\")'"),
    bash("grep -n def calc.py"),
    text("Built calc.py (add, sub, mul), cli.py and a README."),
]


def cache(rig: Rig) -> list[Figure]:
    rig.fake.reset()
    rig.fake.script(list(CACHE_STEPS), match="cache probe")
    start_bench_worker(rig)
    task_id = rig.tasks.start("cache probe: build a calculator", project_path="cache")
    if not rig.tasks.wait_until_ended(task_id, 60):
        raise SystemExit("bench: the cache probe task did not end")
    wait_until(lambda: rig.tasks.status(task_id).result, 10, "the cache probe's result")
    status = rig.tasks.status(task_id)
    requests = [r for r in rig.fake.message_requests if r.script == "cache probe"]
    replay = _PromptCache()  # the fake's own emulation, replayed over the same bodies in the same order
    shares, read = [], 0
    total = 0
    for request in requests:
        usage = replay.usage(request.body)
        step_total = usage["input_tokens"] + usage["cache_read_input_tokens"] + usage["cache_creation_input_tokens"]
        shares.append(usage["cache_read_input_tokens"] / step_total)
        read += usage["cache_read_input_tokens"]
        total += step_total
    share = read / total
    reported = status.result["usage"]
    reported_share = reported["cache_read_input_tokens"] / (reported["input_tokens"] + reported[
        "cache_read_input_tokens"] + reported["cache_creation_input_tokens"])
    per_step = " ".join(f"{s * 100:.0f}" for s in shares)
    return [Figure(CACHE_SHARE, f"{share * 100:.1f}% over {len(requests)} requests ({read} of {total} tokens; the "
                                f"task's own usage says {reported_share * 100:.1f}%, outcome {status.status}); "
                                f"per step %: {per_step}", ">= 80%", share >= 0.8)]


# --- 5. throughput --------------------------------------------------------------------------------------------------
def throughput_turn(body: dict):
    step = assistant_turns(body)
    if step == 0:
        return bash("echo hello > hello.txt")
    if step == 1:
        return edit(command="view", path="hello.txt")
    return text("Wrote hello.txt.")


def _done(rig: Rig, queue_name: str) -> int:
    return rig.redis.zcard(f"rq:finished:{queue_name}") + rig.redis.zcard(f"rq:failed:{queue_name}")


def throughput(rig: Rig, count: int, rounds: int) -> list[Figure]:
    stop_bench_worker(rig)  # only the four workers of this benchmark run now
    rig.fake.reset()
    rig.fake.script([repeat(throughput_turn)], match="throughput probe")
    tars_workers = [rig.spawn([str(ROOT / "start_worker.py"), "--name", f"tars-{i}"], f"tars-{i}") for i in range(2)]
    raw_workers = [rig.spawn([str(ROOT / "bench" / "worker.py"), "--raw", "--name", f"raw-{i}"], f"raw-{i}")
                   for i in range(2)]
    wait_until(lambda: blocked_clients(rig.redis) >= 4, 90, "the four workers to listen", 0.05)
    raw = Queue(RAW_QUEUE, connection=rig.redis)
    rates: dict[str, list[float]] = {"tars": [], "raw": []}
    failures: list[str] = []

    def run(kind: str, r: int) -> None:
        queue_name = QUEUE_NAME if kind == "tars" else RAW_QUEUE
        before = _done(rig, queue_name)
        began = time.perf_counter()
        ids = []
        for i in range(count):
            goal = f"throughput probe {r}-{i}: write hello.txt"
            if kind == "tars":
                ids.append(rig.tasks.start(goal, project_path=f"tp-{kind}-{r}-{i}"))
            else:
                project = str(rig.settings.PROJECTS_ROOT / f"tp-{kind}-{r}-{i}")
                ids.append(raw.enqueue(agent_task, goal, project, rig.fake.base_url, rig.env["ANTHROPIC_API_KEY"],
                                       rig.settings.CLAUDE_MODEL, result_ttl=3600, job_timeout=600).id)
        wait_until(lambda: _done(rig, queue_name) - before >= count, 600, f"{count} {kind} tasks", 0.01)
        rates[kind].append(count / (time.perf_counter() - began))
        for job in Job.fetch_many(ids, connection=rig.redis):
            result = job.return_value() if job else None
            if not result or result.get("outcome") != "complete":
                failures.append(f"{kind} {job.id if job else '?'}: {job.get_status() if job else 'gone'} {result}")

    try:
        order = ["tars", "raw", "raw", "tars"] * ((rounds + 1) // 2)
        for r, kind in enumerate(order[:rounds * 2]):
            run(kind, r)
    finally:
        for process in tars_workers + raw_workers:
            rig.stop(process)
    if failures:
        raise SystemExit(f"bench: {len(failures)} throughput tasks did not complete, e.g. {failures[:3]}")
    tars_rate, raw_rate = median(rates["tars"]), median(rates["raw"])
    ratio = tars_rate / raw_rate
    rounds_text = lambda kind: ", ".join(f"{v:.2f}" for v in rates[kind])  # noqa: E731
    return [Figure(THROUGHPUT_TARS, f"{tars_rate:.2f} tasks/s median ({count} tasks a round: {rounds_text('tars')})"),
            Figure(THROUGHPUT_RAW, f"{raw_rate:.2f} tasks/s median (rounds: {rounds_text('raw')})"),
            Figure(THROUGHPUT_RATIO, f"{ratio:.2f}x", ">= 0.8x", ratio >= 0.8)]


GROUPS = ("enqueue", "confirm", "cache", "throughput")


def run(rig: Rig, quick: bool, only: set[str] | None = None, out=print) -> list[Figure]:
    """The task figures (or those of the groups in `only`), each printed as it is measured."""
    steps = {
        "enqueue": lambda: enqueue(rig, 5 if quick else 100),
        "confirm": lambda: confirm(rig, 5 if quick else 60),
        "cache": lambda: cache(rig),
        "throughput": lambda: throughput(rig, 6 if quick else 200, 1 if quick else 2),
    }
    found: list[Figure] = []
    for name, step in steps.items():
        if only and name not in only:
            continue
        for figure in step():
            out(figure.line())
            found.append(figure)
    stop_bench_worker(rig)
    return found
