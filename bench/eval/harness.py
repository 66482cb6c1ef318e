"""The evaluation harness: each task through TARS's real worker, for each model, judged by the task's hidden tests.

For each model (a `provider:model` spec), in turn:
1. one `start_worker.py` process with CODING_MODELS=<that model> alone (no fallback), the provider settings passed
   through from the caller's environment and .env (ANTHROPIC_*, OPENAI_*, OPENROUTER_*, OLLAMA_*, LMSTUDIO_*,
   VLLM_*, MODEL_*), on a private Redis (bench/common.py) with PROJECTS_ROOT and DATA_DIR in a temporary folder;
2. for each task: its project/ committed as the first commit of a fresh repository in PROJECTS_ROOT, then
   `TaskManager.start(goal, project)`; the harness follows the task's event stream (core/event_log.py) to its ending
   event, whose data is the worker's result record. The worker's own runtime limit is --timeout; the harness waits
   END_GRACE_SECONDS more for the ending, then cancels the task;
3. the task's branch tars/<id> is cloned into a clean folder, the hidden tests are laid over it and the hidden command
   runs there (bench/eval/catalog.run_hidden: sandboxed, no network); solved = it exits 0.

One task at a time on one worker, so each task's wall time is its own. Tasks that end unsolved are measurements; the
exit code is non-zero only when the harness itself could not do its job (exit 2: nothing ran because of the
command line or the configuration; exit 1: a worker did not start, died, or a task never ended).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dotenv import dotenv_values  # noqa: E402
from redis import RedisError  # noqa: E402

from bench.common import machine, private_redis, start_worker, stop_process, worker_idle  # noqa: E402
from bench.eval import catalog  # noqa: E402
from core import event_log, project_env, sandbox, task_states  # noqa: E402
from core.config import default_data_dir, env_file, load_settings, setting_names  # noqa: E402
from core.exceptions import ConfigError, TarsError, TaskNotActive  # noqa: E402

from core.providers import PROVIDERS, ModelSpec, parse_models  # noqa: E402
PROVIDER_PREFIXES = tuple({name.split("_")[0] + "_" for p in PROVIDERS.values()
                           for name in (p.base_url_setting, p.key_setting) if name} | {"MODEL_"})
"""The provider settings passed through to the workers from the caller's environment and .env; MODEL_ for the
prices and context windows of models TARS's own tables do not know."""
DEFAULT_TIMEOUT_SECONDS = 600.0
END_GRACE_SECONDS = 180.0  # after the worker's own runtime limit: a model call under way, the last checkpoint
CANCEL_WAIT_SECONDS = 90.0  # a cancel stops a task within seconds; RQ's stop command is its backstop
WORKER_START_SECONDS = 120.0
WORKER_IDLE_SECONDS = 60.0
GIT_SECONDS = 120.0
OK, FAILED, USAGE = 0, 1, 2


class UsageError(Exception):
    """Nothing can run: a bad command line or configuration (exit 2)."""


class HarnessError(Exception):
    """The harness could not finish a model's run: its worker did not start or died, or a task never ended."""


# --- models -------------------------------------------------------------------------------------------------------
def slug(spec: ModelSpec) -> str:
    """The model's label as a folder and worker name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", spec.label).strip("-")


def parse_specs(value: str) -> list[ModelSpec]:
    """--models as TARS reads CODING_MODELS (core/providers.py): the same names, the same refusals."""
    try:
        return parse_models(value, "--models")
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def default_models() -> list[ModelSpec]:
    """The configured models: CODING_MODELS from the caller's environment and .env (anthropic:CLAUDE_MODEL when
    unset)."""
    try:
        return load_settings().models("coding")
    except ConfigError as exc:
        raise UsageError(f"TARS's configuration cannot be read: {exc}") from None


def caller_settings() -> dict[str, str]:
    """The caller's provider settings: its env file (TARS_ENV_FILE, else ./.env), then its environment on top."""
    found: dict[str, str] = {}
    name = os.environ.get("TARS_ENV_FILE", ".env")
    if name and os.path.isfile(name):
        found.update({key: value for key, value in dotenv_values(name).items() if value is not None})
    found.update(os.environ)
    return {key: value for key, value in found.items() if key.startswith(PROVIDER_PREFIXES)}


def protected_paths() -> list[Path]:
    """The caller's own TARS files that the hidden runs must not read (they run the model's code): its env file,
    which holds its keys, and its DATA_DIR (other tasks' checkouts, the embedded Redis's password)."""
    found = [path for path in (env_file(),) if path is not None]
    try:
        found.append(load_settings().DATA_DIR)
    except ConfigError:
        found.append(default_data_dir())
    return found


def preflight(specs: list[ModelSpec], tasks: list[catalog.EvalTask], provider: dict[str, str]) -> None:
    """Refuse, before anything starts, what could only fail: no model, a model the worker cannot run, a missing API
    key, no pytest for the hidden tests, no node for a JavaScript task."""
    if not specs:
        raise UsageError("no model to evaluate: pass --models provider:model[,...] or configure CODING_MODELS")
    for spec in specs:
        key = spec.source.key_setting if spec.source.key_required else None
        if key and not (provider.get(key) or "").strip():
            raise UsageError(f"{spec.label}: {key} is not set (in the environment or .env), so every task would fail "
                             "at its first model call")
    if any("{python}" in task.hidden for task in tasks) and importlib.util.find_spec("pytest") is None:
        raise UsageError(f"the hidden tests run with pytest from this interpreter ({sys.executable}), which has "
                         "none: install requirements-dev.lock (or pip install pytest) into it")
    if any(task.language == "javascript" for task in tasks) and not shutil.which("node"):
        raise UsageError("a JavaScript task needs node (20 or newer) on PATH; pass --tasks without them, or "
                         "install Node.js")


# --- results ------------------------------------------------------------------------------------------------------
USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


@dataclass
class TaskResult:
    task: str
    language: str
    skills: list[str]
    task_id: str | None
    solved: bool
    outcome: str  # TARS's outcome: complete, failed, timeout, cancelled
    reason: str
    iterations: int  # model turns
    usage: dict[str, int]
    cost_usd: float | None
    cost_unknown: bool
    models: dict[str, int]  # "provider:model" (or, from a worker before multi-provider models, the model) -> turns
    wall_seconds: float  # TaskManager.start -> its ending event, as the harness saw it
    duration_seconds: float | None  # the worker's own figure for the loop
    branch: str | None
    hidden: dict | None  # catalog.HiddenRun.to_dict(), None when there was nothing to judge
    verdict: str  # one line: why solved or not
    stopped_by_harness: bool = False

    @property
    def tokens_in(self) -> int:
        return sum(self.usage.get(name, 0) for name in USAGE_FIELDS if name != "output_tokens")


@dataclass
class ModelReport:
    model: str
    results: list[TaskResult] = field(default_factory=list)
    wall_seconds: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def solved(self) -> int:
        return sum(result.solved for result in self.results)

    @property
    def cost_unknown(self) -> bool:
        return any(result.cost_unknown or result.cost_usd is None for result in self.results)

    @property
    def cost_usd(self) -> float | None:
        return None if self.cost_unknown else round(sum(r.cost_usd or 0.0 for r in self.results), 6)

    @property
    def usage(self) -> dict[str, int]:
        return {name: sum(r.usage.get(name, 0) for r in self.results) for name in USAGE_FIELDS}

    @property
    def turns(self) -> int:
        return sum(result.iterations for result in self.results)

    @property
    def ran_as(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for result in self.results:
            for name, turns in result.models.items():
                found[name] = found.get(name, 0) + turns
        return found

    def to_dict(self, total: int) -> dict:
        usage = self.usage
        return {
            "model": self.model, "error": self.error, "warnings": self.warnings,
            "solved": self.solved, "total": total, "ran": len(self.results),
            "failed": [{"task": r.task, "outcome": r.outcome, "reason": r.reason, "verdict": r.verdict}
                       for r in self.results if not r.solved],
            "cost_usd": self.cost_usd, "cost_unknown": self.cost_unknown,
            "tokens": {"in": sum(v for k, v in usage.items() if k != "output_tokens"),
                       "out": usage["output_tokens"], **usage},
            "turns": self.turns, "wall_seconds": round(self.wall_seconds, 3), "ran_as": self.ran_as,
            "results": [{**asdict(r), "tokens_in": r.tokens_in} for r in self.results],
        }


def hidden_summary(output: str) -> str:
    """The line of a hidden run that says what failed: pytest's summary, node's counts, a checker's FAIL line."""
    fail = re.search(r"^(FAIL: .*)$", output, re.M)
    if fail:
        return fail.group(1)
    pytest_line = re.findall(r"(\d+ (?:failed|passed|errors?|skipped)[^\n]*?) in [\d.]+s", output)
    if pytest_line:
        return pytest_line[-1]
    tests, failed = re.search(r"^# tests (\d+)", output, re.M), re.search(r"^# fail (\d+)", output, re.M)
    if tests and failed:
        return f"{failed.group(1)} of {tests.group(1)} tests failed"
    lines = [line.strip() for line in output.splitlines() if line.strip() and not line.startswith("[")]
    return lines[-1][:200] if lines else "no output"


def read_record(record: dict, task_id: str, ending_type: str, ending_message: str) -> dict:
    """TaskResult's figures from a task's result record (core/background_worker._finish) and its ending event (for a
    work-horse that crashed, and so recorded nothing)."""
    iterations = int(record.get("iterations") or 0)
    models = record.get("models") or {}
    cost_unknown = bool(record.get("cost_unknown"))
    cost = record.get("cost_usd")
    return {"outcome": record.get("outcome") or task_states.OUTCOME_OF_PHASE.get(ending_type, ending_type),
            "reason": record.get("reason") or ending_message, "iterations": iterations,
            "usage": {name: int((record.get("usage") or {}).get(name) or 0) for name in USAGE_FIELDS},
            "cost_usd": float(cost) if cost is not None else None, "cost_unknown": cost_unknown,
            "models": {str(name): int(turns) for name, turns in models.items()},
            "duration_seconds": record.get("duration_seconds"),
            "branch": (record.get("git") or {}).get("branch") or f"tars/{task_id}"}


# --- the run ------------------------------------------------------------------------------------------------------
def git(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """git with a fixed identity and none of the machine's hooks, signing or templates."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "TARS eval", "GIT_AUTHOR_EMAIL": "eval@localhost",
           "GIT_COMMITTER_NAME": "TARS eval", "GIT_COMMITTER_EMAIL": "eval@localhost", "GIT_TERMINAL_PROMPT": "0"}
    argv = ["git", "-c", "core.hooksPath=/dev/null", "-c", "commit.gpgSign=false", "-c", "init.defaultBranch=main",
            *args]
    try:
        return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=GIT_SECONDS)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"git {args[0]} took longer than {GIT_SECONDS:.0f} s")


def new_repository(task: catalog.EvalTask, folder: Path) -> None:
    """The task's starting project as a fresh repository with one commit (TARS then works on a branch of it)."""
    catalog.starting_project(task, folder)
    for args in (("init", "-q", "--template="), ("add", "-A"), ("commit", "-qm", "The starting project")):
        done = git(*args, cwd=folder)
        if done.returncode:
            raise HarnessError(f"git {args[0]} failed in {folder}: {done.stderr.strip()}")


def uv_cache_dir() -> str | None:
    """uv's own cache folder, so that the virtualenvs the worker makes for Python tasks reuse what earlier runs
    downloaded (pytest) instead of fetching it into this run's temporary DATA_DIR."""
    try:
        done = subprocess.run([project_env.uv_binary(), "cache", "dir"], capture_output=True, text=True, timeout=30)
    except (project_env.EnvError, OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


class Run:
    """One evaluation: a temporary folder, a private Redis, and a worker for each model in turn."""

    def __init__(self, specs: list[ModelSpec], tasks: list[catalog.EvalTask], timeout: float,
                 provider: dict[str, str], progress: Callable[[str], None], keep: bool = False,
                 protected: list[Path] = ()):
        self.specs, self.tasks, self.timeout = specs, tasks, timeout
        self.provider, self.progress, self.keep = provider, progress, keep
        self.protected = list(protected)
        self.work = Path(tempfile.mkdtemp(prefix="tars-eval-"))
        self.logs = self.work / "logs"
        self.logs.mkdir()

    # The harness's own process sees exactly the eval's TARS settings (the caller's settings removed), as its
    # workers do: a developer's REDIS_URL, AUTO_MERGE or CONFIRMATION_CODE must not reach either.
    def _isolate(self, redis_url: str) -> dict[str, str]:
        cleared = set(setting_names()) | {"TARS_ENV_FILE"}
        for name in list(os.environ):
            if name in cleared or name.startswith(PROVIDER_PREFIXES):
                del os.environ[name]
        env = {"TARS_ENV_FILE": os.devnull, "REDIS_URL": redis_url, "EMBEDDED_REDIS": "false",
               "PROJECTS_ROOT": str(self.work / "projects"), "DATA_DIR": str(self.work / "data"),
               "MAX_TASK_RUNTIME_MINUTES": f"{self.timeout / 60:g}",
               # A transient API failure ends the task: a retry after a minute's back-off would muddle its figures.
               "MAX_TASK_RETRIES": "0",
               # The tasks need no network, and without it the model's commands cannot reach the private Redis.
               "SANDBOX_NETWORK": "off", "LOG_LEVEL": "INFO", "npm_config_update_notifier": "false"}
        if not os.environ.get("UV_CACHE_DIR") and (cache := uv_cache_dir()):
            env["UV_CACHE_DIR"] = cache
        (self.work / "projects").mkdir()
        os.environ.update(env)
        return env

    def execute(self) -> list[ModelReport]:
        from core.redis_conn import connect
        from core.task_manager import TaskManager

        reports: list[ModelReport] = []
        with private_redis(self.work / "redis") as store:
            base = self._isolate(store.url)
            self.redis = connect(store.url)
            self.tasks_api = TaskManager(self.redis, load_settings())
            try:
                for index, spec in enumerate(self.specs):
                    reports.append(self._model(index, spec, base))
            finally:
                self.redis.close()
        return reports

    def worker_env(self, spec: ModelSpec, base: dict[str, str]) -> dict[str, str]:
        return {**base, **self.provider, "CODING_MODELS": spec.label}

    def _model(self, index: int, spec: ModelSpec, base: dict[str, str]) -> ModelReport:
        report = ModelReport(spec.label)
        name = f"eval-{index}-{slug(spec)}"[:60]
        log = self.logs / f"{name}.log"
        self.progress(f"{spec.label}: starting its worker")
        began = time.monotonic()
        worker = start_worker(self.worker_env(spec, base), "--name", name, log=log)
        try:
            self._wait_listening(worker, name, log)
            for number, task in enumerate(self.tasks, 1):
                result = self._task(spec, task, worker, name, log)
                report.results.append(result)
                self.progress(f"{spec.label} [{number}/{len(self.tasks)}] {task.name}: "
                              f"{'solved' if result.solved else 'not solved'} ({result.outcome}, "
                              f"{result.iterations} turns, {result.wall_seconds:.0f} s)")
        except (HarnessError, RedisError, TarsError) as exc:
            report.error = str(exc) or exc.__class__.__name__
            self.progress(f"{spec.label}: {report.error}")
        finally:
            self._stop(worker)
            report.wall_seconds = time.monotonic() - began
        for ran, turns in report.ran_as.items():
            if turns and ran not in (spec.label, spec.model):
                report.warnings.append(f"asked for {spec.label}, but {turns} turns ran on {ran}")
        return report

    def _stop(self, worker: subprocess.Popen) -> None:
        """Stop the worker, then its own children (its delivery process) should any outlive it."""
        try:
            import psutil

            children = psutil.Process(worker.pid).children(recursive=True)
        except Exception:  # it is gone already: nothing of it to wait for
            children = []
        stop_process(worker)
        for child in children:
            try:
                child.wait(10)
            except Exception:
                try:
                    child.kill()
                except Exception:
                    pass

    @staticmethod
    def _log_tail(log: Path) -> str:
        try:
            return log.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def _wait_listening(self, worker: subprocess.Popen, name: str, log: Path) -> None:
        deadline = time.monotonic() + WORKER_START_SECONDS
        while not worker_idle(self.redis, name):
            if worker.poll() is not None:
                raise HarnessError(f"the worker exited ({worker.returncode}) before it listened; its log "
                                   f"({log}):\n{self._log_tail(log)}")
            if time.monotonic() > deadline:
                raise HarnessError(f"the worker did not listen within {WORKER_START_SECONDS:.0f} s; its log ({log}):"
                                   f"\n{self._log_tail(log)}")
            time.sleep(0.05)

    def _ending(self, task_id: str, seconds: float, worker: subprocess.Popen, log: Path):
        """The task's ending event, followed on its event stream; None after seconds."""
        deadline = time.monotonic() + seconds
        after = None
        while (remaining := deadline - time.monotonic()) > 0:
            for event in event_log.wait(self.redis, task_id, after, min(1.0, remaining)):
                after = event.id
                if event.ends:
                    return event
            if worker.poll() is not None:
                raise HarnessError(f"the worker died ({worker.returncode}) while task {task_id} ran; its log "
                                   f"({log}):\n{self._log_tail(log)}")
        return None

    def _task(self, spec: ModelSpec, task: catalog.EvalTask, worker: subprocess.Popen, name: str,
              log: Path) -> TaskResult:
        folder = self.work / "projects" / slug(spec) / task.name
        new_repository(task, folder)
        began = time.monotonic()
        try:
            task_id = self.tasks_api.start(task.goal, project_path=str(folder))
        except TarsError as exc:
            raise HarnessError(f"task {task.name} could not be started: {exc}") from None
        ending = self._ending(task_id, self.timeout + END_GRACE_SECONDS, worker, log)
        stopped = ending is None
        if stopped:
            self.progress(f"{spec.label} {task.name}: no end after {self.timeout + END_GRACE_SECONDS:.0f} s; "
                          "cancelling it")
            try:
                self.tasks_api.cancel(task_id, wait=30)
            except TaskNotActive:  # it ended just now: its ending event is there to read
                pass
            ending = self._ending(task_id, CANCEL_WAIT_SECONDS, worker, log)
            if ending is None:
                raise HarnessError(f"task {task_id} ({task.name}) did not end, even after a cancel; the worker's "
                                   f"log: {log}")
        wall = time.monotonic() - began
        record = dict(ending.data.get("result") or {})
        if not record:  # a crashed work-horse's ending carries no record
            record = dict(self.tasks_api.status(task_id).result or {})
        self._wait_idle(worker, name)
        figures = read_record(record, task_id, ending.type, ending.message)
        if stopped:
            figures["reason"] = (f"stopped by the harness after {wall:.0f} s (--timeout {self.timeout:g} s): "
                                 f"{figures['reason']}")
        solved, hidden, verdict = self._judge(task, folder, figures["branch"], spec)
        return TaskResult(task=task.name, language=task.language, skills=list(task.skills), task_id=task_id,
                          solved=solved, wall_seconds=wall, hidden=hidden, verdict=verdict, stopped_by_harness=stopped,
                          **figures)

    def _wait_idle(self, worker: subprocess.Popen, name: str) -> None:
        """The worker done with the last task (its horse gone, RQ's bookkeeping over): the next task's clock starts
        when it can be taken at once."""
        deadline = time.monotonic() + WORKER_IDLE_SECONDS
        while not worker_idle(self.redis, name) and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)

    def _judge(self, task: catalog.EvalTask, project: Path, branch: str, spec: ModelSpec) -> tuple[bool, dict | None,
                                                                                                      str]:
        target = self.work / "judged" / slug(spec) / task.name
        target.parent.mkdir(parents=True, exist_ok=True)
        done = git("clone", "-q", "--template=", "--single-branch", "--branch", branch, str(project), str(target),
                   cwd=target.parent)
        if done.returncode:
            return False, None, f"no branch {branch} to judge: {done.stderr.strip()[:200]}"
        run = catalog.run_hidden(task, target, hidden_paths=[self.work / "data", *self.protected])
        if run.passed:
            return True, run.to_dict(), f"hidden tests pass ({hidden_summary(run.output)})"
        if run.timed_out:
            return False, run.to_dict(), f"hidden tests timed out after {task.hidden_timeout:g} s"
        return False, run.to_dict(), f"hidden tests fail: {hidden_summary(run.output)}"

    def cleanup(self, failed: bool) -> str | None:
        """Remove the work folder, or keep it (--keep, or a failure: its logs say why); where it is, when kept."""
        if self.keep or failed:
            return str(self.work)
        shutil.rmtree(self.work, ignore_errors=True)
        return None


# --- the report ---------------------------------------------------------------------------------------------------
def hidden_containment() -> str:
    """What contains the hidden tests on this machine (catalog.run_hidden: the sandbox with the network off)."""
    return sandbox.detect().line(network=False)


def money(report: ModelReport) -> str:
    if report.cost_unknown:
        return "unknown"
    return f"${report.cost_usd:.4f}"


def text_report(reports: list[ModelReport], tasks: list[catalog.EvalTask]) -> str:
    lines: list[str] = []
    for report in reports:
        usage = report.usage
        tokens_in = sum(v for k, v in usage.items() if k != "output_tokens")
        lines.append("")
        lines.append(f"{report.model}: solved {report.solved}/{len(tasks)}, cost {money(report)}, tokens in "
                     f"{tokens_in:,} ({usage['cache_read_input_tokens']:,} read from cache) / out "
                     f"{usage['output_tokens']:,}, turns {report.turns}, wall {report.wall_seconds:.0f} s")
        if report.error:
            lines.append(f"  ERROR: the run stopped after {len(report.results)} of {len(tasks)} tasks: {report.error}")
        for warning in report.warnings:
            lines.append(f"  warning: {warning}")
        failed = [r for r in report.results if not r.solved]
        if failed:
            lines.append("  not solved:")
            for result in failed:
                lines.append(f"    {result.task}: {result.outcome} ({result.reason[:200]}); {result.verdict}")
        if report.results:
            lines.append(f"  {'task':24} {'solved':6} {'outcome':9} {'turns':>5} {'tokens in / out':>20} "
                         f"{'cost':>9} {'wall':>7}")
            for r in report.results:
                cost = "unknown" if r.cost_unknown or r.cost_usd is None else f"${r.cost_usd:.4f}"
                tokens = f"{r.tokens_in:,} / {r.usage['output_tokens']:,}"
                lines.append(f"  {r.task:24} {'yes' if r.solved else 'no':6} {r.outcome:9} {r.iterations:>5} "
                             f"{tokens:>20} {cost:>9} {r.wall_seconds:>5.0f} s")
    if len(reports) > 1:
        lines.append("")
        lines.append(f"{'model':40} {'solved':>7} {'cost':>10} {'tokens in / out':>22} {'turns':>6} {'wall':>8}")
        for report in reports:
            usage = report.usage
            tokens = f"{sum(v for k, v in usage.items() if k != 'output_tokens'):,} / {usage['output_tokens']:,}"
            lines.append(f"{report.model:40} {f'{report.solved}/{len(tasks)}':>7} {money(report):>10} {tokens:>22} "
                         f"{report.turns:>6} {report.wall_seconds:>6.0f} s")
    return "\n".join(lines)


def json_report(reports: list[ModelReport], tasks: list[catalog.EvalTask], timeout: float) -> dict:
    return {"tasks": [{"name": t.name, "language": t.language, "skills": list(t.skills)} for t in tasks],
            "timeout_seconds": timeout, "hidden_tests_sandbox": hidden_containment(),
            "models": [report.to_dict(len(tasks)) for report in reports]}


# --- the command line ---------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.eval",
        description="Run small coding tasks through TARS's real worker for each model and judge them with hidden "
                    "tests (docs/EVALUATING_MODELS.md).")
    parser.add_argument("--models", metavar="M1,M2", help="provider:model specs, comma-separated (default: the "
                        "configured CODING_MODELS, else anthropic:<CLAUDE_MODEL>)")
    parser.add_argument("--tasks", metavar="T1,T2", help="task names, comma-separated (default: all; see --list)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, metavar="S",
                        help=f"each task's runtime limit in seconds (default {DEFAULT_TIMEOUT_SECONDS:g})")
    parser.add_argument("--json", action="store_true", help="print the report as JSON (progress goes to stderr)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (projects, branches, logs)")
    parser.add_argument("--list", action="store_true", help="list the tasks and exit")
    parser.add_argument("--check", action="store_true", help="check that each task's hidden tests fail on its "
                        "starting project and pass with its solution (no worker, no model), and exit")
    return parser


def list_tasks(tasks: list[catalog.EvalTask], as_json: bool) -> int:
    if as_json:
        print(json.dumps([{"name": t.name, "language": t.language, "skills": list(t.skills), "goal": t.goal}
                          for t in tasks], indent=2))
        return OK
    for task in tasks:
        print(f"{task.name:24} {task.language:10} {', '.join(task.skills)}")
    return OK


def check_tasks(tasks: list[catalog.EvalTask], as_json: bool) -> int:
    results = []
    with tempfile.TemporaryDirectory(prefix="tars-eval-check-") as scratch:
        for task in tasks:
            soundness = catalog.check(task, Path(scratch))
            results.append(soundness)
            if not as_json:
                print(f"{task.name:24} {'ok' if soundness.sound else 'UNSOUND'}"
                      + (f": {soundness.problem()}" if not soundness.sound else ""), flush=True)
    if as_json:
        print(json.dumps([{"task": s.task.name, "sound": s.sound, "problem": s.problem(),
                           "on_start": s.on_start.to_dict(), "on_solution": s.on_solution.to_dict()}
                          for s in results], indent=2))
    return OK if all(s.sound for s in results) else FAILED


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    say = (lambda line: print(line, file=sys.stderr, flush=True)) if args.json else \
        (lambda line: print(line, flush=True))
    try:
        try:
            tasks = catalog.select(args.tasks.split(",") if args.tasks is not None else None)
        except catalog.TaskError as exc:
            raise UsageError(str(exc)) from None
        if args.list:
            return list_tasks(tasks, args.json)
        if args.check:
            return check_tasks(tasks, args.json)
        if args.timeout <= 0:
            raise UsageError("--timeout must be a positive number of seconds")
        specs = parse_specs(args.models) if args.models is not None else default_models()
        provider = caller_settings()
        preflight(specs, tasks, provider)
        protected = protected_paths()
    except UsageError as exc:
        print(f"bench.eval: {exc}", file=sys.stderr)
        return USAGE
    say(f"TARS model evaluation: {len(specs)} model(s) x {len(tasks)} task(s), up to {args.timeout:g} s a task; "
        f"hidden tests contained by: {hidden_containment()}")
    say(machine())
    run = Run(specs, tasks, args.timeout, provider, say, keep=args.keep, protected=protected)
    failed = True
    try:
        reports = run.execute()
        failed = any(report.error for report in reports)
    except (HarnessError, ConfigError, OSError) as exc:
        print(f"bench.eval: {exc}", file=sys.stderr)
        return FAILED
    finally:
        kept = run.cleanup(failed)
        if kept:
            say(f"work folder kept: {kept}")
    if args.json:
        print(json.dumps(json_report(reports, tasks, args.timeout), indent=2))
    else:
        print(text_report(reports, tasks))
    return FAILED if failed else OK
