"""The coding loop's own cost per iteration, in-process: core.agent.Agent with an instant model.

    .venv/bin/python -m bench loop [--quick]

The model is core.model.ScriptedModel (a list of turns, no I/O); each turn is one tool call, the last one a
summary (the project has no tests, so the loop ends at once). Overhead per iteration = the run's wall time /
its iterations; the distribution is of the gaps between consecutive model calls (everything the loop does between
two answers). Variants:

* no-op tools: a Workspace whose bash and editor return a fixed result at once (same interface as Workspace);
* real Workspace, editor `view` of a small file (3 files in turn, so the stuck detector never fires);
* the worker's wiring (informational): no-op tools, but the worker's hooks (WorkerHooks: TaskContext.event saves
  job.meta to Redis on every progress change and appends each event to the task's stream; the gate
  checking every command against the allow-list (core/command_policy.py, as with a sandbox) and INFO logging to a
  file, as run_task and start_worker.py wire them.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rq.job import Job  # noqa: E402

from bench.common import CODE, Figure, Rig, median, percentile  # noqa: E402
from core.agent import Agent, AgentConfig  # noqa: E402
from core.defaults import WORKER_LOG_FORMAT  # noqa: E402
from core.model import ScriptedModel, text_turn, tool_turn  # noqa: E402
from core.tools import ToolResult, Workspace  # noqa: E402

LOOP_NOOP = "loop overhead per iteration, instant model, no-op tools"
LOOP_VIEW = "loop overhead per iteration, instant model, real Workspace editor view"
LOOP_WIRED = "loop overhead per iteration, no-op tools, worker wiring (meta + events + gate)"
NAMES = [LOOP_NOOP, LOOP_VIEW, LOOP_WIRED]


class NoopWorkspace(Workspace):
    """A Workspace whose tools do nothing: what is left of an iteration is the loop itself."""

    def run_tool(self, name: str, tool_input: dict) -> ToolResult:
        if name == "bash":
            return self.bash(tool_input.get("command", ""))
        return ToolResult(output="(no-op editor)")

    def bash(self, command: str) -> ToolResult:
        return ToolResult(output="ok", exit_code=0)


def timed_turns(turns: list, stamps: list[float]) -> list:
    def stamped(turn):
        def answer(messages):
            stamps.append(time.perf_counter())
            return turn
        return answer
    return [stamped(turn) for turn in turns]


def one_run(workspace: Workspace, turns: list, **agent_kwargs) -> tuple[float, int, list[float]]:
    stamps: list[float] = []
    model = ScriptedModel(timed_turns(turns, stamps))
    agent = Agent(model=model, workspace=workspace, goal="benchmark the loop",
                  config=AgentConfig(max_iterations=len(turns) + 5, max_runtime_seconds=3600), **agent_kwargs)
    began = time.perf_counter()
    result = agent.run()
    elapsed = time.perf_counter() - began
    if result.outcome != "complete":
        raise SystemExit(f"bench: the loop run ended {result.outcome}: {result.reason}")
    gaps = [(b - a) * 1000 for a, b in zip(stamps, stamps[1:])]
    return elapsed * 1000 / result.iterations, result.iterations, gaps


def bash_turns(iterations: int) -> list:
    return [tool_turn("bash", {"command": f"echo {i}"}) for i in range(iterations - 1)] + [text_turn("Done.")]


def view_turns(iterations: int) -> list:
    return ([tool_turn("str_replace_based_edit_tool", {"command": "view", "path": f"small{i % 3}.py"})
             for i in range(iterations - 1)] + [text_turn("Done.")])


def measure(name: str, make_workspace, turns_for, iterations: int, runs: int, target: bool,
            **agent_kwargs) -> Figure:
    per_iteration, gaps = [], []
    for _ in range(runs):
        value, done, run_gaps = one_run(make_workspace(), turns_for(iterations), **agent_kwargs)
        per_iteration.append(value)
        gaps.extend(run_gaps)
    value = median(per_iteration)
    text = (f"{value:.3f} ms median of {runs} runs x {done} iterations (runs: "
            f"{', '.join(f'{v:.3f}' for v in per_iteration)}); gap between model calls p50="
            f"{percentile(gaps, 50):.3f} p99={percentile(gaps, 99):.3f} ms")
    return Figure(name, text, "<= 5 ms" if target else "", value <= 5 if target else None)


def wired_kwargs(rig: Rig, root: Path) -> dict:
    """The worker's hooks exactly as run_task builds them, on a real job of the private Redis."""
    from core.background_worker import TaskContext, WorkerHooks

    job = Job.create("bench.jobs.record_start", args=("unused",), connection=rig.redis,
                     meta={"goal": "benchmark the loop", "project_path": str(root), "phase": "planning",
                           "progress": "", "verbose_updates": None})
    job.save()
    ctx = TaskContext(job, rig.settings)

    class LoopOnly(WorkerHooks):
        """The worker's events, gate, scrubbing and log; no git (the bench's folder is no checkout) and, as the
        figure has always been measured, no live usage figures."""

        def after_step(self, progress: str, tests_passed: bool) -> None:
            pass

        def after_turn(self, usage, files_changed, models) -> None:
            pass

        def changed_files(self, edited: list[str]) -> list[str]:  # no branch to ask: what the editor changed
            return edited

    return {"hooks": LoopOnly(ctx, None, root, sandboxed=True)}


def run(rig: Rig | None, quick: bool, out=print) -> list[Figure]:
    iterations, runs = (20, 2) if quick else (200, 7)
    root = Path(tempfile.mkdtemp(prefix="tars-bench-loop-"))
    for i in range(3):
        (root / f"small{i}.py").write_text("".join(f"line_{n} = {n}\n" for n in range(20)))
    found = [
        measure(LOOP_NOOP, lambda: NoopWorkspace(root), bash_turns, iterations, runs, True),
        measure(LOOP_VIEW, lambda: Workspace(root), view_turns, iterations, runs, True),
    ]
    if rig is not None:
        # The worker logs at LOG_LEVEL (INFO) to its output: so does this variant, to a file.
        handler = logging.FileHandler(rig.logs / "loop-wired.log")
        handler.setFormatter(logging.Formatter(WORKER_LOG_FORMAT))
        tars_log = logging.getLogger("tars")
        level = tars_log.level
        tars_log.addHandler(handler)
        tars_log.setLevel(logging.INFO)
        try:
            found.append(measure(LOOP_WIRED, lambda: NoopWorkspace(root), bash_turns, iterations, runs, False,
                                 **wired_kwargs(rig, root)))
        finally:
            tars_log.removeHandler(handler)
            tars_log.setLevel(level)
            handler.close()
    shutil.rmtree(root, ignore_errors=True)
    for figure in found:
        out(figure.line())
    return found
