"""The worker side of planned tasks (core/plans.py): three RQ job bodies, none of which waits on another.

- run_planned_task(P): prepares P's checkout (its branch tars/P), asks the planner once (core/plans.ask_planner),
  stores the plan, tells it on P's timeline, and queues each subtask as a task of its own with RQ's depends_on (its
  dependencies, or this planning job for one with none), plus a finishing job that depends on all of them; then it
  returns and frees its worker, and RQ starts the subtasks that depend on nothing. A plan that cannot be made
  (invalid twice, a plain folder, the planner failing) runs the goal as one task (background_worker.run_task) and
  P's timeline says why.
- run_subtask(S): the ordinary task body on S's own branch, forked from tars/P as it stands once S's dependencies
  merged. Complete: S is merged into tars/P (a merge commit, under the plan's lock); a conflict starts an
  integration subtask that the jobs waiting on S now also wait on, and an integration subtask's own conflict or
  failure asks the owner to resolve it by hand. Anything else raises SubtaskFailed, so RQ records the job failed
  and what depends on S stays deferred (blocked); `task retry S` requeues it. As S ends, a plan that nothing can
  move on any more says so (TaskManager.tell_if_blocked).
- finish_plan(P): once every subtask finished, runs the project's tests on tars/P; red the first time, one fix-up
  subtask and another finishing job after it; then P ends complete (green) or failed, like any task. Its worker
  dying runs it again (core/worker.Reaper); `task retry P` of a failed plan runs a new one.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from rq import Retry, get_current_job
from rq.job import Job

from core import budget, event_log, git_workspace, keys, plans, task_states
from core.background_worker import (TaskContext, _ended, _finish, _open_sandbox, _prepare_checkout, plan_lock,
                                    _prepare_environment, build_model, horse_identity, run_task)
from core.config import Settings, get_settings
from core.defaults import RESULT_TTL_SECONDS, TEST_OUTPUT_TO_MODEL
from core.exceptions import GitError, MergeConflict, ModelError, SubtaskFailed, TarsError
from core.model import Usage
from core.project_tests import PYTEST_NO_TESTS, detect_test_command
from core.task_manager import APPROVAL_RULE, TaskManager
from core.tools import Workspace

log = logging.getLogger("tars.worker")


def _tell(redis, parent: str, message: str, **data) -> None:
    """An event on the planned task's timeline (not a phase change: only its finishing job ends it)."""
    event_log.append(redis, parent, "subtask", message, "coding", data)


# --- the planning job -----------------------------------------------------------------------------------------

def run_planned_task(task_id: str) -> dict:
    """RQ job body of a planned task: plan and queue the subtasks, or run the goal as one task."""
    job = get_current_job()
    settings = get_settings()
    ctx = TaskContext(job, settings)
    if ctx.cancel_requested():
        return run_task(task_id)  # it records the cancel as any task does
    if ctx.redis.exists(keys.task_plan(task_id)):  # planned before its worker was restarted: never twice
        return {"planned": True, "subtasks": [s["task_id"] for s in plans.loads(
            ctx.redis.get(keys.task_plan(task_id)))["subtasks"]]}
    ctx.update_meta(phase="planning", progress="Planning the subtasks", **horse_identity())
    ctx.event("planning", f"Planning the subtasks of: {ctx.goal}", phase="planning")
    spent = Usage()  # the planner's tokens: part of the task's cost, planned or not
    try:
        checkout = _prepare_checkout(ctx, settings)
        if checkout.mode == git_workspace.SHADOW:
            subtasks, why = None, (f"{checkout.project} is not a git repository with a commit, so subtasks cannot "
                                   "have branches of their own")
        else:
            model = build_model(settings, "planner")
            subtasks, why = plans.ask_planner(model, ctx.goal, _listing(Path(checkout.path)),
                                              settings.PLAN_MAX_SUBTASKS, spent,
                                              told=lambda sentence: ctx.event(task_states.MODEL_FALLBACK, sentence))
    except (TarsError, ModelError) as exc:  # run_task meets the same trouble and reports it as any task does
        subtasks, why = None, f"planning failed ({exc})"
    planner_cost = spent.cost_usd
    ctx.update_meta(usage=spent.as_dict(), cost_usd=planner_cost)
    budget.add_spend(ctx.redis, planner_cost)  # the day's spend (DAILY_BUDGET_USD); a fallback task counts on from it
    if subtasks is None:
        ctx.log.warning("running the goal as one task: %s", why)
        ctx.event("plan_fallback", f"Running the goal as one task: {why}.", reason=why)
        return run_task(task_id, spent)
    tasks = TaskManager(ctx.redis, settings)
    ids = [tasks.new_id() for _ in subtasks]
    record = plans.new_record(ctx.goal, subtasks, ids, plans.finisher_id(task_id), spent)
    # Shown before any subtask exists: every surface (Discord, the voice, the dashboard) reads it from this event.
    ctx.update_meta(phase="coding", progress=plans.plan_sentence(record))
    ctx.event("plan", plans.plan_sentence(record), subtasks=record["subtasks"], branch=checkout.branch)
    # PLAN_APPROVAL=on: the root subtasks also wait on an approval job that only the owner's code enqueues.
    record["approval"] = tasks.create_approval_gate(task_id) if settings.PLAN_APPROVAL == "on" else None
    ctx.redis.set(keys.task_plan(task_id), plans.dumps(record), ex=RESULT_TTL_SECONDS)
    by_key = {sub["key"]: sub["task_id"] for sub in record["subtasks"]}
    roots = [task_id] + ([record["approval"]] if record["approval"] else [])
    for sub in record["subtasks"]:  # in dependency order: RQ needs a dependency's job to exist
        # Those that depend on nothing wait for this job itself: none starts (and may conflict, see
        # _start_integration) before every job of the plan exists.
        tasks.enqueue_subtask(task_id, sub, record, [by_key[k] for k in sub["depends_on"]] or roots)
    tasks.enqueue_finisher(task_id, record["finisher"], ids)
    if record["approval"]:
        _ask_approval(ctx, tasks, record)
    if ctx.cancel_requested():  # cancelled while it planned: what it queued never runs
        tasks.cancel_plan_jobs(record)
    ctx.log.info("planned %d subtasks: %s", len(ids), ", ".join(f"{k}={v}" for k, v in by_key.items()))
    return {"planned": True, "subtasks": ids}


def _ask_approval(ctx: TaskContext, tasks: TaskManager, record: dict) -> None:
    """The owner approves the plan with the confirmation code, as any request (the plan rides on the event)."""
    request_id, command = tasks.ask_approval(ctx.task_id, record)
    ctx.update_meta(awaiting_confirmation=True, confirmation_command=command,
                    progress=f"Waiting for your confirmation code to start {command}")
    ctx.event("confirmation_required", f"Needs your confirmation code to start {command}", request_id=request_id,
              command=command, reason="PLAN_APPROVAL=on", rule=APPROVAL_RULE, subtasks=record["subtasks"])


def approve_plan(parent: str) -> dict:
    """RQ job body of a plan's approval job: it does nothing; RQ starts the root subtasks once it finished."""
    return {"approved": parent}


def _listing(root: Path, limit: int = 200) -> str:
    """The project's files for the planner (hidden and generated folders left out)."""
    names = []
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if any(p.startswith(".") or p in git_workspace.GENERATED_DIRS for p in parts) or not path.is_file():
            continue
        names.append("/".join(parts))
        if len(names) >= limit:
            names.append("…")
            break
    return "\n".join(names)


# --- a subtask --------------------------------------------------------------------------------------------------

def run_subtask(task_id: str) -> dict | Retry:
    """RQ job body of a plan's subtask: the task itself, then its merge into the plan's branch."""
    record = run_task(task_id)
    if isinstance(record, Retry):  # something transient ended it: RQ runs it again, what waits on it still waits
        return record
    job = get_current_job()
    meta = job.get_meta(refresh=True) or {}
    parent, key = meta["parent"], meta.get("plan_key")
    settings = get_settings()
    try:
        if record["outcome"] != task_states.COMPLETE:
            verb = task_states.VERB[record["outcome"]]
            if job.connection.exists(keys.task_cancel(parent)):  # the whole plan was cancelled: its timeline ended
                raise SubtaskFailed(f"Subtask {key} ({task_id}) {verb}: its plan was cancelled")
            how = f"What depends on it waits; retry it with: {plans.retry_command(task_id)}"
            if meta.get("merge_from"):  # an integration subtask, keyed <key>-merge (_start_integration)
                how = _resolve_by_hand(task_id, meta, f"subtask {key.removesuffix('-merge')}'s conflicts with the "
                                                      "plan's branch")
            _tell(job.connection, parent, f"Subtask {key} {verb}: {record['reason']} {how}", task_id=task_id,
                  key=key, state="failed")
            raise SubtaskFailed(f"Subtask {key} ({task_id}) {verb}: {record['reason']}")
        with plan_lock(job.connection, parent) as held:
            if not held:
                _fail_merge(job, parent, key, "the plan's lock stayed taken (another merge hung)")
            _merge(job, settings, parent, key, meta)
        return record
    finally:
        # This subtask has recorded how it ended: the last of the plan's to end sees whether anything can go on.
        try:
            TaskManager(job.connection, settings).tell_if_blocked(parent)
        except Exception:  # telling must never turn a merged subtask into a crashed job
            log.exception("[task %s] could not tell whether plan %s is blocked", task_id, parent)


def _merge(job: Job, settings: Settings, parent: str, key: str, meta: dict) -> None:
    data = settings.checkouts_dir
    try:
        target = git_workspace.find(parent, data)
        source = git_workspace.find(job.id, data)
        merged = git_workspace.integrate(target, source, f"merge subtask {key} ({source.branch})")
    except MergeConflict as exc:
        return _start_integration(job, settings, parent, key, meta, exc.files)
    except GitError as exc:
        _fail_merge(job, parent, key, str(exc))
    job.meta.update(merged=True, merge_commit=merged.commit)
    job.save_meta()
    _tell(job.connection, parent, f"Merged subtask {key} into {target.branch} ({len(merged.files)} "
          f"file{'s' if len(merged.files) != 1 else ''}).", task_id=job.id, key=key, state="merged",
          commit=merged.commit, files=merged.files)


def _fail_merge(job: Job, parent: str, key: str, why: str, how: str | None = None) -> None:
    """The subtask's work is done but cannot reach the plan's branch: it ends failed (retry it), its dependents wait.
    how: what the owner does then (default: retry it)."""
    reason = f"Its work could not be merged into the plan's branch: {why.rstrip('.')}."
    job.meta.update(phase=task_states.ENDING_PHASE[task_states.FAILED], progress=f"Failed: {reason}")
    job.save_meta()
    how = how or f"Retry it with: {plans.retry_command(job.id)}"
    _tell(job.connection, parent, f"Subtask {key} failed: {reason} {how}", task_id=job.id, key=key, state="failed")
    raise SubtaskFailed(f"Subtask {key} ({job.id}): {reason}")


def _resolve_by_hand(task_id: str, meta: dict, what: str) -> str:
    """What the owner does when an integration subtask cannot finish: resolve `what` where its branch is checked out
    (what the owner commits on tars/<id> in their own repository is overwritten by TARS's next sync), then retry."""
    path = (meta.get("checkout") or {}).get("path")
    where = f"in its checkout {path} (branch tars/{task_id})" if path else f"on its branch tars/{task_id}"
    return (f"It needs you: resolve {what} by hand {where} and commit, then retry it with: "
            f"{plans.retry_command(task_id)} (retried as it is, the model tries again); or cancel the plan.")


def _start_integration(job: Job, settings: Settings, parent: str, key: str, meta: dict, files: list[str]) -> None:
    """A conflict: queue an integration subtask on the plan's branch that merges this one with the conflict markers
    in place for the model; everything that waited on this subtask now also waits on it. An integration subtask's
    own conflict goes to the owner instead (_conflicts_again)."""
    redis = job.connection
    listed = ", ".join(files)
    if meta.get("merge_from"):
        _conflicts_again(job, settings, parent, key, meta, files)
    tasks = TaskManager(redis, settings)
    record = tasks.plan_record(parent)
    merged = [s for s in record["subtasks"] if s["key"] != key and s["role"] == plans.PLANNED]
    mine = next(s for s in record["subtasks"] if s["key"] == key)
    sub = {"key": f"{key}-merge", "title": f"Resolve the merge of {key}", "depends_on": [], "capability": None,
           "role": plans.INTEGRATION, "task_id": tasks.new_id(),
           "goal": (f"Finish merging subtask {key} ({mine['title']}: {mine['goal']}) into the plan's branch. Its "
                    f"branch conflicts with work other subtasks merged there ("
                    + "; ".join(f"{s['key']}: {s['title']}" for s in merged)
                    + f"). The merge is committed with git's conflict markers in {listed}: resolve every one so "
                    "that both sides' intent is kept, remove the markers, and make all the tests pass.")}
    record["subtasks"].append(sub)
    redis.set(keys.task_plan(parent), plans.dumps(record), ex=RESULT_TTL_SECONDS)
    # RQ's own dependency sets: each job that waits on this one (a dependent subtask, the finishing job) now also
    # waits on the integration subtask, so it forks from the branch once that merged.
    waiting = [member.decode() for member in redis.smembers(job.dependents_key)]
    with redis.pipeline() as pipe:
        for dependent in waiting:  # RQ's key names, from RQ (Job(id) reads nothing)
            pipe.sadd(Job(dependent, connection=redis).dependencies_key, sub["task_id"])
            pipe.sadd(Job.dependents_key_for(sub["task_id"]), dependent)
        pipe.execute()
    tasks.enqueue_subtask(parent, sub, record, [], merge_from=job.id)
    job.meta.update(integrated_by=sub["task_id"], conflicts=files)
    job.save_meta()
    _tell(redis, parent, f"Subtask {key} conflicts with the plan's branch in {listed}: subtask {sub['key']} "
          f"({sub['task_id']}) resolves it.", task_id=job.id, key=key, state="conflict", files=files,
          integration=sub["task_id"])


def _conflicts_again(job: Job, settings: Settings, parent: str, key: str, meta: dict, files: list[str]) -> None:
    """An integration subtask's merge conflicts too (the plan's branch moved on since it started): the owner is asked.
    The plan's branch is merged into its branch first with git's conflict markers in place, so that once they are
    resolved there (by the owner, or by the model of a retry) the retry merges cleanly."""
    listed = ", ".join(files)
    data = settings.checkouts_dir
    try:
        git_workspace.begin_merge(git_workspace.find(job.id, data), git_workspace.find(parent, data))
        what = f"git's conflict markers in {listed}"
    except GitError as exc:  # the owner still resolves it, merging the plan's branch by hand
        log.warning("[task %s] could not merge the plan's branch into it: %s", job.id, exc)
        what = f"its conflict with the plan's branch tars/{parent} in {listed}"
    _fail_merge(job, parent, key, f"it conflicts again, in {listed}, with work merged there since it started",
                _resolve_by_hand(job.id, meta, what))


# --- the finishing job --------------------------------------------------------------------------------------------

def finish_plan(parent: str) -> dict:
    """RQ job body once every subtask finished: test the merged branch; green ends the planned task complete."""
    settings = get_settings()
    me = get_current_job()
    me.meta.update(horse_identity())  # for the reaper, should this worker die (core/worker.Reaper)
    me.save_meta()
    ctx = TaskContext(Job.fetch(parent, connection=me.connection), settings)
    started = time.monotonic()
    tasks = TaskManager(ctx.redis, settings)
    record = tasks.plan_record(parent)
    usage = tasks.plan_usage(record)
    if ctx.cancel_requested():
        return {"outcome": task_states.CANCELLED}
    ctx.update_meta(phase="testing", progress="Testing the merged branch")
    ctx.event("phase", "Every subtask is merged: testing the merged branch", phase="testing")
    try:
        checkout = git_workspace.find(parent, settings.checkouts_dir)
        command, passed, output = _test(ctx, settings, checkout)
    except TarsError as exc:
        return _end(ctx, settings, task_states.FAILED, f"The merged branch could not be tested: {exc}", usage,
                    started, None)
    if passed is False and not record.get("fixup"):
        return _fix_up(ctx, tasks, record, command, output)
    done = sum(1 for s in record["subtasks"] if s["role"] != plans.FIXUP)
    if passed is False:
        reason = f"The merged branch still fails `{command}` after the fix-up subtask; it is kept on " \
                 f"{checkout.branch} for you to look at."
        return _end(ctx, settings, task_states.FAILED, reason, usage, started, checkout, tests_passed=False)
    try:
        git_workspace.checkpoint(checkout, "Every subtask merged", tests_passed=bool(passed))
    except GitError as exc:
        ctx.log.warning("could not mark the merged branch: %s", exc)
    tests = f"`{command}` passes on it" if passed else "the project has no tests to run"
    reason = f"All {done} subtasks are merged into {checkout.branch}; {tests}."
    return _end(ctx, settings, task_states.COMPLETE, reason, usage, started, checkout, tests_passed=passed)


def _test(ctx: TaskContext, settings: Settings, checkout) -> tuple[str | None, bool | None, str]:
    """(the test command, whether it passed (None: no tests), its output) on the plan's branch, in the project's
    environment and sandbox as the model's own test runs."""
    root = Path(checkout.path)
    command = detect_test_command(root)
    if command is None:
        return None, None, ""
    environment = _prepare_environment(ctx, settings, checkout)
    box = _open_sandbox(ctx, settings, checkout, environment)
    try:
        workspace = Workspace(root, command_timeout=settings.COMMAND_TIMEOUT_SECONDS, env=environment.env,
                              sandbox=box)
        result = workspace.bash(command)
    finally:
        if box is not None:
            box.close()
        environment.discard()
    ctx.event("command_result", f"exit {result.exit_code}: {result.output[:200]}", command=command,
              exit_code=result.exit_code)
    passed = result.exit_code == 0 or (result.exit_code == PYTEST_NO_TESTS and "pytest" in command)
    return command, passed, result.output


def _fix_up(ctx: TaskContext, tasks: TaskManager, record: dict, command: str, output: str) -> dict:
    """The merged branch fails its tests: one fix-up subtask on it, and a finishing job after that one."""
    parent = ctx.task_id
    sub = {"key": "fix-up", "title": "Make the merged branch pass its tests", "depends_on": [], "capability": None,
           "role": plans.FIXUP, "task_id": tasks.new_id(),
           "goal": (f"Every subtask of the plan is merged, and `{command}` now fails on the merged branch. Fix the "
                    f"code (or wrong tests) so that it passes, keeping what each subtask built. The failure:\n\n"
                    f"{output[-TEST_OUTPUT_TO_MODEL // 2:]}")}
    record["subtasks"].append(sub)
    record["fixup"] = sub["task_id"]
    record["finisher"] = plans.next_finisher(parent, record)
    ctx.redis.set(keys.task_plan(parent), plans.dumps(record), ex=RESULT_TTL_SECONDS)
    tasks.enqueue_subtask(parent, sub, record, [])
    tasks.enqueue_finisher(parent, record["finisher"], [sub["task_id"]])
    ctx.update_meta(phase="fixing", progress=f"The merged branch fails `{command}`: a fix-up subtask fixes it")
    ctx.event("phase", f"The merged branch fails `{command}`: subtask fix-up ({sub['task_id']}) fixes it.",
              phase="fixing", task_id=sub["task_id"])
    return {"fixup": sub["task_id"]}


def _end(ctx: TaskContext, settings: Settings, outcome: str, reason: str, usage: Usage, started: float,
         checkout, tests_passed: bool | None = None) -> dict:
    """End the planned task as any task ends (its ending event, result and latch), with its branch's summary."""
    if checkout is not None:
        try:
            ctx.git = git_workspace.summary(checkout)
            ctx.git["tests_passed"] = tests_passed
        except GitError as exc:
            ctx.log.warning("could not summarise the plan's branch: %s", exc)
    result = dataclasses.replace(_ended(ctx, outcome, reason, started), usage=usage, tests_passed=tests_passed,
                                 files_changed=sorted(f["path"] for f in (ctx.git or {}).get("files", [])))
    ctx.update_meta(usage=usage.as_dict(), cost_usd=usage.cost_usd,
                    checkpoints=(ctx.git or {}).get("commits", ctx.meta.get("checkpoints", 0)))
    return _finish(ctx, settings, result)
