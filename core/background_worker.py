"""The code that runs in the RQ work-horse for one task: the job function run_task, from checkout to recorded end.

`run_task(task_id)` reads the task from job.meta, builds the model and the
workspace, runs the Agent loop, and keeps job.meta (phase, progress) current as it
goes. Only this side writes job.meta after enqueue. Cancels arrive on the task's
own keys: a pub/sub message wakes a watcher thread, which kills the running
command at once; the loop sees the flag before its next step.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import socket
import threading
import time
from contextlib import contextmanager
from datetime import timezone
from pathlib import Path
from typing import Callable, Iterator

import psutil
import redis
from rq import Retry, get_current_job
from rq.timeouts import JobTimeoutException

from core import (budget, command_policy, event_log, git_workspace, history, keys, pause, project_env, retries,
                  sandbox, task_states)
from core import confirmations
from core.agent import Agent, AgentConfig, AgentResult, LoopHooks
from core.config import Settings, env_file, get_settings, setting_names
from core.defaults import (CONFIRMATION_ATTEMPTS, JOB_TIMEOUT_MARGIN_SECONDS, PLAN_LOCK_SECONDS,
                           PROJECT_ENV_STALE_SECONDS, PROJECT_ENV_TIMEOUT_SECONDS, RESULT_TTL_SECONDS)
from core.exceptions import GitError, Interrupted, TaskEnded, TaskFailed, TarsError, WorkspaceUnusable
from core.model import Model, Usage
from core.model import warm_up as model_warm_up
from core.model_roles import UnusableModel, build_models
from core.openai_model import warm_up as openai_warm_up
from core.providers import OPENAI
from core.redis_conn import private_client
from core.scrub import Scrubber
from core.tools import Workspace, scrub_environment

log = logging.getLogger("tars.worker")


class TaskLog(logging.LoggerAdapter):
    """Every line carries [task <id>], so `grep <id>` over a worker log tells one task's story."""

    def process(self, msg, kwargs):
        return f"[task {self.extra['task_id']}] {msg}", kwargs


class TaskContext:
    """What one running task knows about itself, and the only writer of its job.meta."""

    def __init__(self, job, settings: Settings):
        self.job = job
        self.settings = settings
        self.redis: redis.Redis = job.connection
        self.task_id: str = job.id
        self.meta: dict = job.meta
        self.log = TaskLog(log, {"task_id": self.task_id})
        self.abort_reason: str | None = None  # set when the task must stop as failed (its worker died)
        self.record_lost = False  # Redis lost the job (restarted without persistence): stop writing to it
        self.parent_pid = os.getppid()  # the worker that forked this horse (created first thing in run_task)
        self.git: dict | None = None  # what the task's branch holds at the end (git_workspace.summary + delivery)
        self.environment: project_env.ProjectEnv | None = None  # what the commands run in (removed at the end)
        self.sandbox: sandbox.Sandbox | None = None  # the OS sandbox of its commands (closed at the end)
        self.tmp_dir: Path | None = None  # the commands' TMPDIR (removed at the end)
        self.spent = Usage()  # tokens used before the loop (run_task's spent), added to the loop's own
        self.scrubber = Scrubber(settings.secret_values())

    @property
    def goal(self) -> str:
        return self.meta["goal"]

    def update_meta(self, **fields) -> None:
        self.meta.update({k: self.scrubber.text(v) if isinstance(v, str) else v for k, v in fields.items()})
        if self.record_lost:
            return
        if not self.redis.exists(self.job.key):
            # Writing now would leave a half job behind; the owner still hears why through the task's events.
            self.record_lost = True
            raise Interrupted("Redis lost this task's record while it ran (was Redis restarted without "
                              "persistence?), so the task was stopped.")
        self.job.meta = self.meta
        self.job.save_meta()

    def event(self, kind: str, message: str, **data) -> None:
        fields = {}
        if data.get("phase") and data["phase"] != self.meta.get("phase"):
            fields["phase"] = data["phase"]
        if kind in ("phase", "progress", "planning") and message != self.meta.get("progress"):
            fields["progress"] = message
        if fields:
            self.update_meta(**fields)
        if kind != "progress":  # progress sentences live in meta; the timeline has events
            # The task's timeline: every event, whatever the verbosity. Its readers (task log, the dashboard, the
            # voice process, delivery to n8n / Discord in communication/delivery.py) take it from there; so even
            # when Redis lost the job (record_lost), the owner still hears why through it.
            try:
                event_log.append(self.redis, self.task_id, kind, self.scrubber.text(message),
                                 self.meta.get("phase", ""), self.scrubber.value(data))
            except redis.RedisError as exc:
                self.log.warning("could not add %s to the event log: %s", kind, exc)

    def cancel_requested(self) -> bool:
        return bool(self.redis.exists(keys.task_cancel(self.task_id)))


class CancelWatcher(threading.Thread):
    """Waits (on pub/sub) for a cancel of this task, then runs the callbacks once.

    It reads Redis only through a client of its own, and `stop()` joins it before that client is closed:
    the work-horse's own connection is never read by two threads (see redis_conn.private_client).
    """

    POLL_SECONDS = 0.25  # how long stop() may wait for the thread's current read to end
    KEY_CHECK_SECONDS = 1.0  # how often it also reads the cancel key (a publish can be lost, the key is not)

    def __init__(self, ctx: TaskContext, callbacks: list[Callable[[], None]]):
        super().__init__(name=f"cancel-watcher-{ctx.task_id}", daemon=True)
        self.ctx = ctx
        self.callbacks = callbacks
        self.connection = private_client(ctx.redis)
        self.pubsub = self.connection.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(keys.task_control(ctx.task_id))
        self._stopping = threading.Event()
        self.parent_pid = ctx.parent_pid

    def run(self) -> None:
        try:
            self._watch()
        finally:
            self._close()

    def _watch(self) -> None:
        # Subscribed before this check, so a cancel sent in between is not missed.
        if self._cancel_recorded():
            return self._fire()
        checked_at = time.monotonic()
        while not self._stopping.is_set():
            if os.getppid() != self.parent_pid:
                # The worker that forked this work-horse is gone: stop now, so that once the reaper marks the
                # task failed, a retry can never run beside this orphan.
                self.ctx.abort_reason = "The worker process running this task died, so the task was stopped."
                self.ctx.log.warning("the worker (pid %s) died: stopping the task", self.parent_pid)
                return self._fire()
            try:
                message = self.pubsub.get_message(timeout=self.POLL_SECONDS)
                if message and message.get("data") in (b"cancel", "cancel"):
                    self.ctx.log.info("cancel requested")
                    return self._fire()
                if time.monotonic() - checked_at >= self.KEY_CHECK_SECONDS:
                    # A publish is lost while the pub/sub reconnects; the cancel key set before it never is.
                    checked_at = time.monotonic()
                    if self._cancel_recorded():
                        self.ctx.log.info("cancel requested (seen on its key)")
                        return self._fire()
            except (redis.ConnectionError, redis.TimeoutError, ValueError) as exc:
                self.ctx.log.warning("the cancel watcher lost Redis (%s); retrying", exc)
                self._stopping.wait(0.5)  # the loop's own checks still run meanwhile
                checked_at = 0.0  # reconnected: look at the key at once

    def _cancel_recorded(self) -> bool:
        return bool(self.connection.exists(keys.task_cancel(self.ctx.task_id)))

    def _fire(self) -> None:
        for callback in self.callbacks:
            callback()

    def _close(self) -> None:
        for close in (self.pubsub.close, self.connection.close):
            try:
                close()
            except Exception:  # closing a connection to a Redis that went away
                pass

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching; returns once the thread has let go of its connection (or after timeout)."""
        self._stopping.set()
        if self.is_alive():
            self.join(timeout)
        if self.is_alive():  # a read stuck on a dead socket: its connection is its own, so closing it is safe
            self.ctx.log.warning("the cancel watcher did not stop within %.0f s; closing its connection", timeout)
            self.connection.connection_pool.disconnect()


def command_environment(settings: Settings, venv: Path | None = None) -> dict[str, str]:
    """The environment the model's commands get: no secrets, no TARS settings, never TARS's own Python; venv (the
    project's virtualenv, see core/project_env.py) first on PATH."""
    return project_env.environment(_scrubbed_environment(), venv)


def warm_up(settings: Settings) -> None:
    """In the worker, before it forks work-horses: what every task would otherwise build or look up again (the SDK's
    response models, core/model.py and core/openai_model.py warm_up; the interpreter uv picks for projects that pin
    none)."""
    model_warm_up()
    if any(spec.source.wire == OPENAI for role in ("coding", "planner") for spec in settings.models(role)):
        openai_warm_up()
    project_env.default_python(project_env.uv_environment(_scrubbed_environment(), settings.DATA_DIR))


def _scrubbed_environment() -> dict[str, str]:
    return scrub_environment(os.environ, setting_names() + ["TARS_ENV_FILE", "RQ_WORKER_ID", "RQ_JOB_ID"])


def _prepare_environment(ctx: TaskContext, settings: Settings,
                         checkout: git_workspace.TaskCheckout) -> project_env.ProjectEnv:
    """The project's own environment for the task's checkout (its virtualenv, or one made for it), told to the owner."""
    environment = project_env.prepare(
        checkout, task_id=ctx.task_id, data_dir=settings.DATA_DIR, base=_scrubbed_environment(),
        project_venv=settings.PROJECT_VENV, timeout=min(PROJECT_ENV_TIMEOUT_SECONDS, settings.max_runtime_seconds / 2),
        stale_after=_stale_after(settings), logger=ctx.log)
    ctx.environment = environment
    ctx.log.info("environment (%s, %.2f s): %s", environment.kind, environment.seconds, environment.message)
    return environment


def _stale_after(settings: Settings) -> float:
    """Seconds after which a task's leftovers (its made virtualenv, its TMPDIR) belong to no running task."""
    longest_task = settings.max_runtime_seconds + settings.CONFIRMATION_TIMEOUT_SECONDS + JOB_TIMEOUT_MARGIN_SECONDS
    return max(PROJECT_ENV_STALE_SECONDS, 2 * longest_task)


def build_model(settings: Settings, role: str = "coding") -> Model:
    """The role's models (CODING_MODELS, PLANNER_MODELS) with fallback; a list none of whose models can be used
    (their keys unset) fails the task with the fix."""
    model = build_models(settings, role)
    unusable = [m for m in model.models if isinstance(m, UnusableModel)]
    if len(unusable) == len(model.models):
        raise TaskFailed(" ".join(m.reason for m in unusable))
    return model


def horse_identity() -> dict:
    """Who runs the task: the reaper kills an orphan horse only when host, pid and start time all match."""
    me = psutil.Process()
    return {"worker": os.environ.get("RQ_WORKER_ID"), "host": socket.gethostname(), "horse_pid": me.pid,
            "horse_started": me.create_time()}


def run_task(task_id: str, spent: Usage | None = None) -> dict | Retry:
    """RQ job body: run one task to its end and return its result (kept with the job); or, when something transient
    ended this attempt, RQ's Retry: RQ runs the same job again later (core/retries.py). spent: the tokens the task
    used before (a planned task's planner, when the goal runs as one task): they count in its usage and cost."""
    entered = time.time()  # kept in meta: bench/ measures enqueue -> body start against raw RQ
    sandbox.make_non_dumpable()  # inherited from the worker; again, in case RQ's horse was made otherwise
    job = get_current_job()
    settings = get_settings()
    ctx = TaskContext(job, settings)
    ctx.spent = spent or Usage()
    started = time.monotonic()
    attempt = retries.attempt_of(job)
    ctx.log.info("started: %s (project %s)", ctx.goal, ctx.meta.get("project_path"))
    ctx.update_meta(phase="planning", progress="Starting", body_started_at=entered, **horse_identity())
    if attempt > 1:  # an automatic retry: its ending is recorded anew
        ctx.redis.delete(keys.task_reaped(task_id))
        ctx.event("started", f"Started again ({retries.attempts_text(attempt, settings)}): {ctx.goal}",
                  phase="planning", attempt=attempt)
    else:
        ctx.event("started", f"Started: {ctx.goal}", phase="planning")
    result: AgentResult | None = None
    try:
        try:
            result = _run_agent(ctx, settings)
        except JobTimeoutException:
            result = _ended(ctx, task_states.TIMEOUT, "RQ's hard job timeout stopped the task.", started)
        except TaskEnded as exc:  # ended before the loop ran (no key, unusable project, lost record)
            result = _ended(ctx, exc.outcome, str(exc), started, exc.transient)
        except TarsError as exc:
            result = _ended(ctx, task_states.FAILED, str(exc), started)
        result = dataclasses.replace(result, usage=ctx.spent + result.usage)
        return _retry_or_finish(ctx, settings, result)
    finally:
        if result is None:  # an unexpected exception: RQ records it as failed; still mark the end
            crashed = task_states.ENDING_PHASE[task_states.FAILED]
            ctx.update_meta(phase=crashed, progress="Crashed", awaiting_confirmation=False)
            ctx.event(crashed, "The task crashed; see the worker log.", phase=crashed)
            _release_waiters(ctx)
        if ctx.sandbox is not None:
            ctx.sandbox.close()
        if ctx.tmp_dir is not None:
            shutil.rmtree(ctx.tmp_dir, ignore_errors=True)
        if ctx.environment is not None:
            ctx.environment.discard()


def _run_agent(ctx: TaskContext, settings: Settings) -> AgentResult:
    if ctx.cancel_requested():
        return _ended(ctx, task_states.CANCELLED, "The task was cancelled before it started.", time.monotonic())
    model = build_model(settings)
    rules = _load_rules(settings)
    checkout = _prepare_checkout(ctx, settings)
    project = Path(checkout.path)
    environment = _prepare_environment(ctx, settings, checkout)
    box = _open_sandbox(ctx, settings, checkout, environment)
    _tell_workspace(ctx, checkout, environment, box)
    try:
        workspace = Workspace(project, command_timeout=settings.COMMAND_TIMEOUT_SECONDS, env=environment.env,
                              sandbox=box)
        workspace.probe_writable()
    except WorkspaceUnusable as exc:
        raise TaskFailed(str(exc)) from None
    except (OSError, TarsError) as exc:
        raise TaskFailed(f"The project folder {project} cannot be used: {exc}.") from None
    checkpoints = Checkpoints(ctx, checkout)
    hooks = WorkerHooks(ctx, checkpoints, workspace.root, sandboxed=box is not None, rules=rules)
    callbacks = [hooks.cancelled.set, workspace.cancel]
    if hasattr(model, "interrupt"):
        callbacks.append(model.interrupt)
    watcher = CancelWatcher(ctx, callbacks)
    watcher.start()
    try:
        # A plan's subtask also sees the whole plan, after its own goal (core/plans.context_for).
        told = "\n\n".join(filter(None, [_for_model(environment, box), ctx.meta.get("plan_context")]))
        if retries.attempt_of(ctx.job) > 1:  # continuing: what the attempts before did, and why the last ended
            told = "\n\n".join([told, retries.note_for_model(ctx.meta, checkout, settings,
                                                             retries.attempt_of(ctx.job))])
        agent = Agent(model=model, workspace=workspace, goal=ctx.goal, hooks=hooks, environment=told,
                      config=AgentConfig(max_iterations=settings.MAX_TASK_ITERATIONS,
                                         # making the environment counted against the task's runtime
                                         max_runtime_seconds=max(1.0, settings.max_runtime_seconds
                                                                 - environment.seconds),
                                         command_timeout=settings.COMMAND_TIMEOUT_SECONDS,
                                         max_paused_seconds=settings.CONFIRMATION_TIMEOUT_SECONDS,
                                         max_cost_usd=settings.MAX_TASK_COST_USD))
        if retries.attempt_of(ctx.job) > 1:  # the task's usage, cost and model calls span its attempts
            agent.usage.add(Usage.from_dict(ctx.meta.get("usage")))
            agent.model_seconds[:0] = [float(s) for s in ctx.meta.get("model_seconds") or []]
            agent.models.update({str(k): int(v) for k, v in (ctx.meta.get("models") or {}).items()})
        result = agent.run()
    finally:
        watcher.stop()
    if ctx.abort_reason and result.outcome == task_states.CANCELLED:
        result = dataclasses.replace(result, outcome=task_states.FAILED, reason=ctx.abort_reason, transient=True)
    # A plan's subtask is merged into its parent's branch by core/plan_jobs.py, never into the owner's branch.
    ctx.git = checkpoints.finish(result, settings.AUTO_MERGE and not ctx.meta.get("parent"))
    if ctx.git:
        changed = sorted(set(result.files_changed) | {f["path"] for f in ctx.git["files"]})
        result = dataclasses.replace(result, files_changed=changed)
    return result


@contextmanager
def plan_lock(connection: redis.Redis, parent: str) -> Iterator[bool]:
    """The plan's lock (keys.task_plan_lock), so that one git operation at a time touches a plan's branch: a subtask's
    merge into it, or a fork from it. Yields False when it stayed taken for PLAN_LOCK_SECONDS."""
    lock = connection.lock(keys.task_plan_lock(parent), timeout=PLAN_LOCK_SECONDS,
                           blocking_timeout=PLAN_LOCK_SECONDS)
    held = lock.acquire()
    try:
        yield held
    finally:
        if held:
            try:
                lock.release()
            except redis.exceptions.LockError:  # it outlived PLAN_LOCK_SECONDS: git's own ref checks still held
                log.warning("the lock of plan %s expired while held", parent)


def _prepare_checkout(ctx: TaskContext, settings: Settings) -> git_workspace.TaskCheckout:
    """The task's own branch (a clone of the repository, of a URL's cache, or a shadow repository for a plain
    folder)."""
    project = ctx.meta["project_path"]
    data = settings.checkouts_dir
    try:
        if not git_workspace.is_git_url(project) and not Path(project).exists():
            # `task start` created it on the machine that queued the task: this worker runs elsewhere (or the
            # folder was deleted). Working in a new empty folder would only look like success.
            raise TaskFailed(f"The project folder {project} does not exist on this worker's machine "
                             f"({socket.gethostname()}). Give workers on other machines a git URL as the project, "
                             "or run a worker where the folder is.")
        try:
            checkout = git_workspace.find(ctx.task_id, data)  # this task ran before (its worker was restarted)
            ctx.log.info("continuing in its checkout %s", checkout.path)
        except GitError:
            # A plan's subtask starts from its parent's branch as it stands now, its dependencies merged into it.
            if ctx.meta.get("parent"):
                # The fork copies the plan's branch into the owner's repository, which a sibling's merge moves.
                with plan_lock(ctx.redis, ctx.meta["parent"]) as held:
                    if not held:
                        raise TaskFailed("The plan's branch stayed locked by another subtask's merge for "
                                         f"{PLAN_LOCK_SECONDS:.0f} s; retry this subtask with: python main_tars.py "
                                         f"task retry {ctx.task_id}")
                    parent = git_workspace.find(ctx.meta["parent"], data)
                    checkout = git_workspace.prepare(ctx.task_id, project, data, fork_of=parent)
            else:
                checkout = git_workspace.prepare(ctx.task_id, project, data)
            if ctx.meta.get("merge_from"):  # an integration subtask: the conflicting merge is its first checkpoint
                conflicts = git_workspace.begin_merge(checkout, git_workspace.find(ctx.meta["merge_from"], data))
                ctx.log.info("merged %s with conflicts in %s", ctx.meta["merge_from"], ", ".join(conflicts))
    except GitError as exc:
        raise TaskFailed(str(exc)) from None
    except OSError as exc:
        raise TaskFailed(f"The project folder {project} cannot be used: {exc.strerror or exc}.") from None
    ctx.update_meta(checkout=checkout.to_dict(), checkout_host=socket.gethostname())
    return checkout


def _load_rules(settings: Settings) -> command_policy.Rules:
    """The owner's command rules (COMMAND_RULES_FILE), read once per task: a file the model changes later counts
    from the next task only, and the sandbox keeps DATA_DIR (where it lives by default) out of its reach anyway."""
    try:
        return command_policy.load_rules(settings.COMMAND_RULES_FILE)
    except command_policy.RulesError as exc:
        raise TaskFailed(f"The owner's command rules (COMMAND_RULES_FILE) cannot be used: {exc}. Fix the file (see "
                         "docs/SECURITY.md, or check it with python main_tars.py check-command) and retry the "
                         "task.") from None


def _open_sandbox(ctx: TaskContext, settings: Settings, checkout: git_workspace.TaskCheckout,
                  environment: project_env.ProjectEnv) -> sandbox.Sandbox | None:
    """The OS sandbox of the task's commands, with their own TMPDIR; None when SANDBOX=off or this machine has
    none (then the gate asks for every command not on its allow-list, the project's own code included)."""
    if settings.SANDBOX == "off" or sandbox.detect().kind == sandbox.NONE:
        ctx.log.warning("commands run unconfined: %s", "SANDBOX=off" if settings.SANDBOX == "off"
                        else sandbox.detect())
        return None
    tmp = settings.DATA_DIR / "tmp" / ctx.task_id  # inside DATA_DIR: other tasks cannot read it
    shutil.rmtree(tmp, ignore_errors=True)  # left by an earlier run of this task (its worker restarted)
    project_env.prune(tmp.parent, ctx.task_id, _stale_after(settings))  # and by killed work-horses
    ctx.tmp_dir = tmp
    writable = [Path(project_env.uv_environment(environment.env, settings.DATA_DIR)["UV_CACHE_DIR"])]
    if environment.kind == project_env.MADE and environment.venv is not None:
        writable.append(environment.venv)  # the owner's own virtualenv stays read-only
    try:
        policy = sandbox.policy_for_checkout(
            checkout, tmp_dir=tmp, data_dir=settings.DATA_DIR, tars_env_file=env_file(), env=environment.env,
            extra_writable=writable, network=settings.SANDBOX_NETWORK != "off")
        box = sandbox.Sandbox(policy)
    except ValueError as exc:  # the project holds what must stay hidden (~/.ssh, TARS's .env, DATA_DIR)
        raise TaskFailed(f"This project cannot be worked on safely: {exc}") from None
    except OSError as exc:
        raise TaskFailed(f"The sandbox for the task's commands could not be set up ({exc.strerror or exc}), and "
                         "TARS never runs them unconfined unless told to: fix it, or set SANDBOX=off knowingly "
                         "(then every command not on the allow-list asks for your code).") from None
    ctx.sandbox = box
    environment.env["TMPDIR"] = str(tmp)
    ctx.log.info("sandbox: %s", box.status)
    return box


def _for_model(environment: project_env.ProjectEnv, box: sandbox.Sandbox | None) -> str:
    """What the model is told about its commands' environment, sandbox included."""
    text = environment.for_model()
    if box is None:
        return text
    text += (" Commands run in a sandbox: they may write only inside the project, $TMPDIR (not /tmp) and the "
             "package caches, and cannot read TARS's files or credentials such as ~/.ssh" +
             ("; they have no network." if not box.policy.network else "."))
    if environment.venv is not None and environment.kind != project_env.MADE and \
            not any(sandbox._within(str(environment.venv.resolve()), path) for path in box.policy.writable):
        text += (" That virtualenv is the owner's, outside the project, so the sandbox keeps it read-only: "
                 "`pip install` into it fails; say in your summary what it lacks.")
    return text


def _tell_workspace(ctx: TaskContext, checkout: git_workspace.TaskCheckout,
                    environment: project_env.ProjectEnv, box: sandbox.Sandbox | None = None) -> None:
    """One update for where the task works and what its commands run in."""
    where = {git_workspace.WORKTREE: f"in its own clone of {checkout.project}",
             git_workspace.CLONE: f"in a clone of {checkout.project}",
             git_workspace.SHADOW: f"in place in {checkout.project}, with checkpoints kept outside it"}[checkout.mode]
    branch = "" if checkout.mode == git_workspace.SHADOW else f" on branch {checkout.branch}"
    ctx.event("workspace", f"Working {where}{branch}. {environment.message}", branch=checkout.branch,
              mode=checkout.mode, path=checkout.path, environment=environment.kind,
              venv=str(environment.venv) if environment.venv else None, python=environment.python,
              environment_seconds=environment.seconds, sandbox=box.status if box is not None else "none")


class WorkerHooks(LoopHooks):
    """What the worker does around the loop: record each event (TaskContext.event), gate each command (the allow-list
    of core/command_policy.py, then the owner's code through core/confirmations.py), checkpoint each step, keep the
    live figures in job.meta and scrub secrets from what the model reads."""

    def __init__(self, ctx: TaskContext, checkpoints: Checkpoints, project_root: Path, *, sandboxed: bool,
                 rules: command_policy.Rules | None = None):
        super().__init__(ctx.log)
        self.ctx, self.checkpoints = ctx, checkpoints
        self.check = lambda command: command_policy.check(command, project_root, sandboxed=sandboxed, rules=rules)
        self.code = ctx.settings.secret("CONFIRMATION_CODE")
        self.timeout = ctx.settings.CONFIRMATION_TIMEOUT_SECONDS
        # The cost already counted in the day's spend (DAILY_BUDGET_USD): its earlier attempts', the planner's.
        self.counted = float(ctx.meta.get("cost_usd") or 0.0)

    def event(self, kind: str, message: str, **data) -> None:
        self.ctx.event(kind, message, **data)

    def scrub(self, text: str) -> str:
        return self.ctx.scrubber.text(text)

    def after_step(self, progress: str, tests_passed: bool) -> None:
        self.checkpoints(progress, tests_passed)

    def changed_files(self, edited: list[str]) -> list[str]:
        """What the task's branch changed since it started (commands' writes too), with what the editor changed."""
        try:
            with self.checkpoints.git_lock:
                return sorted(set(edited) | set(git_workspace.changed_files(self.checkpoints.checkout)))
        except GitError as exc:
            self.log.warning("could not list the files the task changed: %s", exc)
            return edited

    def after_turn(self, usage: Usage, files_changed: list[str], models: dict[str, int]) -> None:
        usage = self.ctx.spent + usage
        cost = usage.cost_usd
        self.ctx.update_meta(usage=usage.as_dict(), cost_usd=cost, files_changed=files_changed, models=models,
                             cost_unknown=bool(usage.unpriced_turns))
        budget.add_spend(self.ctx.redis, cost - self.counted)
        self.counted = cost

    def hold(self) -> float:
        """Wait while the owner has paused every worker, this task or its plan (core/pause.py): meta says `paused` and
        the timeline says why; RQ's hard job timeout stops meanwhile (its alarm, put back after), and so does the
        worker's own watch on it (core/worker.py reads paused_at and paused_seconds). A cancel ends the wait."""
        ctx, parent = self.ctx, self.ctx.meta.get("parent")
        if not pause.holds(ctx.redis, ctx.task_id, parent):
            return 0.0
        by = pause.BY_WORKERS if pause.workers_paused(ctx.redis) else \
            pause.BY_TASK if ctx.redis.exists(keys.task_pause(ctx.task_id)) else pause.BY_PLAN
        ctx.update_meta(paused=True, paused_at=time.time())
        self.event("paused", f"Paused before its next step: {pause.WHY[by]}. Resume with: "
                             f"{pause.resume_hint(ctx.task_id, by, parent)}", paused_by=by)
        alarm = signal.alarm(0) if hasattr(signal, "alarm") else 0  # RQ's hard timeout (UnixSignalDeathPenalty)
        try:
            held = pause.wait(ctx.redis, lambda client: pause.holds(client, ctx.task_id, parent),
                              self.cancelled.is_set, channels=(keys.task_control(ctx.task_id),))
        finally:
            if alarm:
                signal.alarm(alarm)
            ctx.update_meta(paused=False, paused_at=None,
                            paused_seconds=round(float(ctx.meta.get("paused_seconds") or 0) + held, 3))
        if not self.cancelled.is_set():
            self.event("resumed", f"Resumed after {task_states.duration_text(held)} paused", seconds=round(held, 3))
        return held

    def gate(self, command: str) -> str | None:
        decision = self.check(command)
        if decision.decision == "run":
            return None
        reason, rule = decision.reason, decision.rule
        self.log.info("asks (%s: %s): %s", rule, reason, command)
        if not self.code:
            self.event("confirmation_refused", f"Refused `{command}`: {reason}, and CONFIRMATION_CODE is not set.",
                       command=command, reason=reason, rule=rule)
            return (f"REFUSED, not run: `{command}` needs the owner's confirmation code because {reason}, and this "
                    f"TARS has no CONFIRMATION_CODE set, so such commands are always refused (the owner can set "
                    f"CONFIRMATION_CODE in .env). Find a way that does not need it.")
        answer = self.ask_owner(command, reason, rule)
        if answer == confirmations.APPROVED:
            return None
        why = {confirmations.TIMED_OUT: f"the owner gave no confirmation code within {self.timeout:g} seconds",
               confirmations.DENIED: f"the request was denied after {CONFIRMATION_ATTEMPTS} wrong codes"}[answer]
        return (f"REFUSED, not run: `{command}` needed the owner's confirmation code because {reason}, and {why}. "
                f"Do not retry it; find another way, or finish without it and say so in your summary.")

    def ask_owner(self, command: str, reason: str, rule: str) -> str:
        """Block until the owner answers (confirmations.APPROVED, DENIED or TIMED_OUT), or raise Cancelled."""
        ctx, about = self.ctx, {"command": command, "reason": reason, "rule": rule}
        request_id = confirmations.open_request(ctx.redis, ctx.task_id, command, reason, rule, self.timeout)
        ctx.update_meta(awaiting_confirmation=True, confirmation_command=command)
        # request_id: a reply to the Discord message that asks finds the request it answers
        parent = ctx.meta.get("parent")  # a plan's subtask: the owner hears which plan asks
        of_plan = f" (subtask {ctx.meta.get('plan_key')} of task {parent})" if parent else ""
        self.event("confirmation_required", f"Needs your confirmation code to run{of_plan}: {command}",
                   request_id=request_id, **about, **({"parent": parent} if parent else {}))
        try:
            answer = confirmations.wait_for_answer(ctx.redis, ctx.task_id, request_id, self.code, self.timeout,
                                                   ctx.cancel_requested)
        finally:
            confirmations.close_request(ctx.redis, ctx.task_id)
            ctx.update_meta(awaiting_confirmation=False, confirmation_command=None)
        if answer == confirmations.APPROVED:
            self.event("confirmation_received", f"Confirmation received: running {command}", **about)
        else:
            self.event("confirmation_refused", f"Not run ({answer}): {command}", **about)
        self.log.info("confirmation %s: %s", answer, command)
        return answer


GIT_FOLLOW_JOIN_SECONDS = 60.0  # a fetch under way when the task ends (git's own timeout bounds it)


class Checkpoints:
    """After each step (WorkerHooks.after_step): commit what it changed on the task branch; at the end, summarise
    and deliver."""

    def __init__(self, ctx: TaskContext, checkout: git_workspace.TaskCheckout):
        self.ctx = ctx
        self.checkout = checkout
        self.failed = False  # warn the owner once, not at every step
        # The owner's branch follows each checkpoint in a thread of its own, off the loop's path; one lock keeps the
        # two from running git in the task's repository at once.
        self.git_lock = threading.Lock()
        self.follow_wanted = threading.Event()
        self.follower: threading.Thread | None = None
        self.finishing = False

    def __call__(self, sentence: str, tests_passed: bool) -> None:
        try:
            with self.git_lock:
                point = git_workspace.checkpoint(self.checkout, self.ctx.scrubber.text(sentence), tests_passed,
                                                 sync=False)
            self._follow_later()
        except GitError as exc:
            if not self.failed:
                self.failed = True
                self.ctx.log.warning("checkpoint failed: %s", exc)
                self.ctx.event("checkpoint_failed", f"Could not save a checkpoint: {exc}")
            return
        if point is not None:
            if point.number == self.ctx.meta.get("checkpoints"):  # no new files: the latest one got the marker
                message = f"Checkpoint {point.number}: tests pass on it"
            else:
                message = f"Checkpoint {point.number}: {point.message}" + (" (tests pass)" if point.tests_passed else "")
            self.ctx.update_meta(checkpoints=point.number)
            self.ctx.event("checkpoint", message, number=point.number, sha=point.sha, tests_passed=point.tests_passed)

    def _follow_later(self) -> None:
        if self.follower is None:
            self.follower = threading.Thread(target=self._follow, name=f"branch-follower-{self.ctx.task_id}",
                                             daemon=True)
            self.follower.start()
        self.follow_wanted.set()

    def _follow(self) -> None:
        while True:
            self.follow_wanted.wait()
            if self.finishing:
                return
            self.follow_wanted.clear()  # checkpoints made meanwhile are all brought by this one fetch
            try:
                with self.git_lock:
                    git_workspace.follow(self.checkout)
            except Exception:  # best effort: the summary at the end brings the branch in step in any case
                self.ctx.log.exception("bringing the owner's branch in step failed")

    def _stop_following(self) -> None:
        if self.follower is not None:
            self.finishing = True
            self.follow_wanted.set()
            self.follower.join(GIT_FOLLOW_JOIN_SECONDS)

    def finish(self, result: AgentResult, auto_merge: bool) -> dict | None:
        """The last checkpoint, the branch's summary and, for a green task with AUTO_MERGE, its merge or push."""
        green = result.outcome == task_states.COMPLETE and result.tests_passed is True
        self(f"{task_states.LABEL[result.outcome]}: {result.reason}", green)
        self._stop_following()  # summary() brings the owner's branch in step itself
        try:
            info = git_workspace.summary(self.checkout)
        except GitError as exc:
            self.ctx.log.warning("could not summarise the task branch: %s", exc)
            return None
        # True: passing at the branch's tip; False: failing; None: the project has no tests the worker could run.
        info["tests_passed"] = True if green or (info["tests_passed"] and result.tests_passed is not False) \
            else result.tests_passed
        if auto_merge and green and info["commits"]:
            info.update(self._deliver())
        return info

    def _deliver(self) -> dict:
        checkout = self.checkout
        try:
            if checkout.mode == git_workspace.WORKTREE:
                merged = git_workspace.merge(checkout)
                return {"delivery": merged.message, "merged": merged.kind in ("fast-forward", "merge", "up-to-date")}
            if checkout.mode == git_workspace.CLONE:
                return {"delivery": git_workspace.push(checkout), "pushed": True}
        except GitError as exc:  # a conflict, the owner's dirty tree, a rejected push: the branch stays for later
            self.ctx.log.warning("AUTO_MERGE did not deliver: %s", exc)
            return {"delivery": f"AUTO_MERGE could not deliver it: {exc}", "merged": False}
        return {}


def _ended(ctx: TaskContext, outcome: str, reason: str, started: float, transient: bool = False) -> AgentResult:
    return AgentResult(outcome=outcome, reason=reason, summary="", iterations=0, files_changed=[],
                       tests_passed=None, test_command=None, usage=Usage(),
                       duration_seconds=round(time.monotonic() - started, 3), transient=transient)


def _retry_or_finish(ctx: TaskContext, settings: Settings, result: AgentResult) -> dict | Retry:
    """End the task; or, when something transient ended this attempt and automatic retries are left, announce the
    retry and hand RQ its Retry (RQ schedules the same job: core/retries.py)."""
    delay = retries.next_delay(ctx.job, settings, result.transient)
    if delay is None:
        reason = retries.ending_reason(result.reason, ctx.job, settings, result.transient)
        return _finish(ctx, settings, dataclasses.replace(result, reason=reason))
    _announce_retry(ctx, settings, result.reason, delay, result.usage, result.model_seconds)
    return Retry(max=settings.MAX_TASK_RETRIES, interval=delay)


def _announce_retry(ctx: TaskContext, settings: Settings, reason: str, delay: int, usage: Usage,
                    model_seconds: list[float]) -> None:
    """The task waits for its automatic retry: its status says when, its timeline announces it (Discord, n8n, the
    dashboard), and its meta keeps why (the next attempt tells the model) and the usage so far."""
    progress, message, data = retries.announcement(ctx.job, settings, ctx.scrubber.text(reason), delay)
    ctx.log.warning("%s Retrying in %d s.", reason, delay)
    try:
        ctx.update_meta(phase=task_states.QUEUED, progress=progress, awaiting_confirmation=False,
                        confirmation_command=None, retry_reason=reason, retry_at=data["retry_at"],
                        attempts=data["attempts"], usage=usage.as_dict(), model_seconds=model_seconds,
                        cost_usd=usage.cost_usd)
    except TaskFailed as lost:  # the record vanished just now: RQ's retry saves it again from this horse's copy
        ctx.log.error("%s", lost)
    ctx.event(task_states.RETRYING, message, phase=task_states.QUEUED, **data)


def _finish(ctx: TaskContext, settings: Settings, result: AgentResult) -> dict:
    phase = task_states.ENDING_PHASE[result.outcome]
    models = result.models or ctx.meta.get("models") or {}
    record = {
        "outcome": result.outcome, "reason": result.reason, "summary": result.summary,
        "iterations": result.iterations, "files_changed": result.files_changed,
        "tests_passed": result.tests_passed, "test_command": result.test_command,
        "usage": result.usage.as_dict(), "model": _main_model(models, settings), "models": models,
        "cost_usd": result.usage.cost_usd, "cost_unknown": bool(result.usage.unpriced_turns),
        "duration_seconds": result.duration_seconds,
        "model_seconds": result.model_seconds, "git": ctx.git, "changes": git_workspace.describe(ctx.git) if ctx.git else None,
    }
    record = ctx.scrubber.value(record)  # the result is kept in Redis and read back by people
    progress = f"{task_states.LABEL[result.outcome]}: {record['reason']}"
    try:
        ctx.update_meta(phase=phase, progress=progress, awaiting_confirmation=False, confirmation_command=None)
    except TaskFailed as lost:  # the record vanished at the very end: still tell the owner why
        ctx.log.error("%s", lost)
    ctx.log.info("finished %s after %s iterations, %.1fs, %s tokens in / %s out, $%.4f: %s", result.outcome,
                 result.iterations, result.duration_seconds, result.usage.input_tokens, result.usage.output_tokens,
                 record["cost_usd"], result.reason)
    _remember(ctx, settings, record)
    ctx.event(phase, record["reason"], phase=phase, result=record)  # the ending's event type is its phase
    _release_waiters(ctx)
    return record


def _main_model(models: dict[str, int], settings: Settings) -> str:
    """The model that served most of the task's turns (the first listed when none answered)."""
    return max(models, key=models.get) if models else settings.models("coding")[0].label


def _remember(ctx: TaskContext, settings: Settings, record: dict) -> None:
    """The task's summary in the history (core/history.py), which outlives its own data; written before the ending
    event, so whoever hears of the end finds it there. Never in the way of the ending itself."""
    started = ctx.job.started_at
    started_at = started.replace(tzinfo=timezone.utc).timestamp() if started is not None else None
    try:
        history.record(ctx.redis, history.summary(ctx.task_id, ctx.meta, record, started_at, time.time()),
                       settings.HISTORY_DAYS)
    except redis.RedisError as exc:
        ctx.log.warning("could not add the task to the history: %s", exc)


def record_abandoned_end(job, settings: Settings, outcome: str, reason: str, transient: bool = False) -> bool:
    """Record the end of a task whose work-horse could not record it (killed, or its worker died).

    Called by the worker that saw its horse die and by the reaper; the task:<id>:reaped key makes it
    happen once. The owner is told as for any ending, and no confirmation request is left pending.
    transient (its worker died): while automatic retries are left, the task is scheduled again in RQ instead
    (core/retries.py), and the caller leaves the job alone.
    """
    job.refresh()
    if (job.meta or {}).get("phase") in task_states.ENDING_KINDS:
        return False  # the horse recorded its own ending
    if not job.connection.set(keys.task_reaped(job.id), outcome, nx=True, ex=RESULT_TTL_SECONDS):
        return False
    ctx = TaskContext(job, settings)
    ctx.redis.delete(keys.task_confirmation_request(job.id), keys.task_confirmation(job.id))
    usage = Usage.from_dict(ctx.meta.get("usage"))  # its figures as its horse last recorded them
    delay = retries.next_delay(job, settings, transient)
    if delay is not None:
        _announce_retry(ctx, settings, reason, delay, usage, ctx.meta.get("model_seconds") or [])
        retries.schedule_in_rq(job, delay)
        return True
    ctx.git = _local_summary(ctx)
    ran = 0.0
    if job.started_at is not None:
        ran = max(0.0, time.time() - job.started_at.replace(tzinfo=timezone.utc).timestamp())
    reason = retries.ending_reason(reason, job, settings, transient)
    ctx.log.warning("%s: %s", outcome, reason)
    _finish(ctx, settings, dataclasses.replace(_ended(ctx, outcome, reason, time.monotonic() - ran), usage=usage))
    return True


def _local_summary(ctx: TaskContext) -> dict | None:
    """The branch summary of a task whose horse died, when its checkout is on this machine (what it saved)."""
    recorded = ctx.meta.get("checkout")
    if not recorded or ctx.meta.get("checkout_host") != socket.gethostname():
        return None
    try:
        info = git_workspace.summary(git_workspace.TaskCheckout.from_dict(recorded))
    except (GitError, TypeError, KeyError) as exc:
        ctx.log.warning("could not summarise the task branch: %s", exc)
        return None
    return git_workspace.unverified(info)


def _release_waiters(ctx: TaskContext) -> None:
    key = keys.task_finished(ctx.task_id)
    with ctx.redis.pipeline() as pipe:
        pipe.delete(key).rpush(key, "1").expire(key, RESULT_TTL_SECONDS).execute()
