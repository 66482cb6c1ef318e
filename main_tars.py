#!/usr/bin/env python3
"""The TARS entry script (wiring only): the server, `up` (server and worker), the `task` CLI, the console phone and
`doctor`.

  python main_tars.py                      run the server (starts an embedded Redis when none answers)
  python main_tars.py up [--workers N]     the server plus N background workers (WORKER_COUNT): all of TARS in one
                                           command
  python main_tars.py workers [status|pause|resume]   the workers' state; pause: no task starts, running ones wait
  python main_tars.py task start --goal T  [--project P] [--verbose|--quiet] [--priority high|normal|low]
                      [--at HH:MM | --in 2h] [--call-when-done]   (later: RQ's scheduler in the workers queues it then)
  python main_tars.py task status [ID] | task list | task cancel ID | task confirm ID CODE | task retry ID
                      | task pause ID | task resume ID
  python main_tars.py task log [ID] [--follow]   the task's timeline (following it live until it ends)
  python main_tars.py task checkpoints ID | task rollback ID [--to N] | task merge ID | task discard ID
                      | task push ID       (the task's own branch tars/<id>; each with --json)
  python main_tars.py call [--url ws://localhost:PORT/relay] [--from +E164]   phone TARS from this terminal
  python main_tars.py report [--since 7d] [--json]   how the tasks went: outcomes, durations, cost, failures
  python main_tars.py budget [show | set AMOUNT | clear] [--json]   the daily budget (DAILY_BUDGET_USD), now
  python main_tars.py calls [--days N] [--json]   the phone calls kept (CALL_HISTORY_DAYS), newest first
  python main_tars.py calls show CALL_SID [--json]   one call's transcript and the tasks it started
  python main_tars.py doctor [--fix-twilio] [--json]   check the whole set-up: each problem on one line with its fix
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import redis

from core import budget, call_history, pause, plans, pool, report, schedules, task_file, task_states
from core.task_states import NORMAL, PRIORITIES, duration_text
from core.config import get_settings, warn_about_env_file
from core.defaults import RESULT_TTL_SECONDS, SERVER_SHUTDOWN_GRACE_SECONDS, WORKER_LOG_FORMAT
from core.exceptions import InvalidSchedule, TarsError
from core.model import Usage
from core.redis_conn import connect, connect_or_embed, safe_url
from core.scrub import install_log_scrubbing
from core.supervisor import KeepAlive
from core.task_manager import TaskManager, TaskStatus

HERE = Path(__file__).resolve().parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main_tars.py", description="TARS: the assistant you phone to get code written.")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the server (default)")
    up = sub.add_parser("up", help="run the server and its background workers (WORKER_COUNT, default one)")
    up.add_argument("--workers", type=whole_number, metavar="N",
                    help="how many workers to run and keep running (default: the WORKER_COUNT setting)")
    workers = sub.add_parser("workers", help="the workers' state; pause or resume all of them")
    workers.add_argument("action", nargs="?", choices=("status", "pause", "resume"), default="status",
                         help="status (default): each worker and whether they are paused; pause: no new task "
                              "starts and running tasks wait at their next step; resume: they go on")
    workers.add_argument("--json", action="store_true", help="machine-readable output")
    call = sub.add_parser("call", help="phone TARS from this terminal (its voice relay, as Twilio would)")
    call.add_argument("--url", help="the relay WebSocket (default ws://HOST:PORT/relay)")
    call.add_argument("--from", dest="caller", help="the caller's number (default the first OWNER_PHONE_NUMBERS)")
    models = sub.add_parser("models", help="the configured models per role (CODING_MODELS, PLANNER_MODELS, "
                            "VOICE_MODELS); --check asks each one once")
    models.add_argument("--check", action="store_true", help="make one cheap request to each model and say which "
                        "answer, with the fix for those that do not")
    models.add_argument("--json", action="store_true", help="machine-readable output")
    doctor = sub.add_parser("doctor", help="check every setting, Redis, the models, n8n, Discord, PUBLIC_BASE_URL "
                            "and Twilio: each problem on one line with its fix (exit 1 when any)")
    doctor.add_argument("--fix-twilio", action="store_true", help="point the Twilio number's voice and SMS URLs at "
                        "PUBLIC_BASE_URL/voice and /sms (Twilio's REST API)")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    check = sub.add_parser("check-command", help="would TARS run a bash command without the owner's code, or ask? "
                           "(no COMMAND: JSON lines on stdin)")
    check.add_argument("bash_command", nargs="?", metavar="COMMAND", help="the bash command (omit it to read one "
                       "JSON string per line on stdin and print one JSON object per line)")
    check.add_argument("--project", default=".", help="the project root (default: the current directory)")
    check.add_argument("--json", action="store_true", help="print a JSON object")
    check.add_argument("--no-sandbox", action="store_true", help="decide as when no sandbox is active")
    check.add_argument("--rules", help="the owner's rules file (JSON; default: the COMMAND_RULES_FILE setting, "
                       "DATA_DIR/commands.json)")
    task = sub.add_parser("task", help="start and inspect background programming tasks")
    tsub = task.add_subparsers(dest="task_command", required=True)

    def with_json(p):
        p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    start = with_json(tsub.add_parser("start", help="start a task"))
    start.add_argument("--goal", required=True)
    start.add_argument("--project", help="project folder (inside PROJECTS_ROOT) or git URL (https://, git@, file://)")
    start.add_argument("--plan", action="store_true", default=None,
                       help="plan it first: subtasks on several workers, merged into one branch (PLAN_GOALS)")
    verbosity = start.add_mutually_exclusive_group()
    verbosity.add_argument("--verbose", dest="verbose", action="store_true", default=None, help="every action")
    verbosity.add_argument("--quiet", dest="verbose", action="store_false", help="milestones only")
    start.add_argument("--priority", type=str.lower, choices=PRIORITIES, default=NORMAL,
                       help="high starts before every normal task waiting, low after them (default: normal)")
    start.add_argument("--call-when-done", action="store_true",
                       help="TARS calls you when it ends (a text if you miss the call; docs/PHONE.md)")
    when = start.add_mutually_exclusive_group()
    when.add_argument("--at", type=start_time(schedules.parse_at), metavar="TIME",
                      help="start it at TIME: HH:MM (the next such local time) or an ISO date-time")
    when.add_argument("--in", dest="at", type=start_time(schedules.parse_in), metavar="DELAY",
                      help="start it after DELAY: 90s, 30m, 2h, 1h30m")
    tasks_file = with_json(tsub.add_parser("file", help="queue the new entries of a tasks file now (the server "
                                           "watches TASKS_FILE by itself); exit 1 when an entry is wrong"))
    tasks_file.add_argument("path", nargs="?", type=Path, help="the file (default: TASKS_FILE)")
    tasks_file.add_argument("--check", action="store_true", help="only say what is wrong in it; queue nothing")
    with_json(tsub.add_parser("status", help="status of a task (default: the latest)")).add_argument(
        "task_id", nargs="?")
    with_json(tsub.add_parser("list", help="recent tasks")).add_argument("--limit", type=int, default=20)
    with_json(tsub.add_parser("cancel", help="cancel a task")).add_argument("task_id")
    with_json(tsub.add_parser("retry", help="start an ended task again as a new task (same goal and project)")
              ).add_argument("task_id")
    with_json(tsub.add_parser("pause", help="pause one running task: it waits at its next step until resumed")
              ).add_argument("task_id")
    with_json(tsub.add_parser("resume", help="let a task paused on its own go on")).add_argument("task_id")
    confirm = with_json(tsub.add_parser("confirm", help="give the confirmation code a task waits for"))
    confirm.add_argument("task_id")
    confirm.add_argument("code")
    log = with_json(tsub.add_parser("log", help="a task's timeline of events (default: the latest task)"))
    log.add_argument("task_id", nargs="?")
    log.add_argument("--follow", "-f", action="store_true", help="keep printing new events until the task ends")
    with_json(tsub.add_parser("checkpoints", help="the checkpoints on an ended task's branch, numbered")
              ).add_argument("task_id")
    rollback = with_json(tsub.add_parser("rollback", help="reset an ended task's branch and files to a checkpoint"))
    rollback.add_argument("task_id")
    rollback.add_argument("--to", type=int, metavar="N",
                          help="checkpoint number (see task checkpoints; 0 = before the task; default: the one "
                               "before the latest)")
    with_json(tsub.add_parser("merge", help="merge an ended task's branch into the branch it started from")
              ).add_argument("task_id")
    with_json(tsub.add_parser("discard", help="delete an ended task's checkout and branch (its work is lost)")
              ).add_argument("task_id")
    with_json(tsub.add_parser("push", help="push an ended task's branch to origin (never forced)")
              ).add_argument("task_id")
    reporting = with_json(sub.add_parser("report", help="how the tasks went: outcomes, success rate, durations, cost "
                                      "per day and project, the most common failures, model latency"))
    reporting.add_argument("--since", default="7d", help="the period before now: 7d, 24h, 2w, 90m (default 7d)")
    budgeting = sub.add_parser("budget", help="the daily budget: show it, or override DAILY_BUDGET_USD without a "
                            "restart (held tasks start once it allows)")
    bsub = budgeting.add_subparsers(dest="budget_command")
    with_json(budgeting)
    with_json(bsub.add_parser("show", help="today's budget, spend and held tasks (the default)"))
    with_json(bsub.add_parser("set", help="override DAILY_BUDGET_USD (dollars a day, or none)")).add_argument(
        "amount", help="dollars a day (20, 7.50) or none for no daily budget")
    with_json(bsub.add_parser("clear", help="drop the override: DAILY_BUDGET_USD counts again"))
    calls = with_json(sub.add_parser("calls", help="the phone calls kept (CALL_HISTORY_DAYS), newest first: when, "
                                     "number, in or out, duration, lines, the tasks each started"))
    calls.add_argument("--days", type=whole_number, metavar="N", help="only the calls of the last N days")
    csub = calls.add_subparsers(dest="calls_command")
    with_json(csub.add_parser("show", help="one call's transcript (the caller and TARS, with times) and the tasks it "
                              "started")).add_argument("call_sid", metavar="CALL_SID")
    return parser


def start_time(parse):
    """An argparse type reading --at or --in into the aware datetime TaskManager.start takes: a bad or past time is
    a usage error (exit 2) with the rule."""
    def read(text: str):
        try:
            return parse(text)
        except InvalidSchedule as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return read
def whole_number(text: str) -> int:
    """--workers N, --days N: a whole number of at least 1."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return count


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def shorten(text: str, width: int) -> str:
    """text on one line, cut to width with an ellipsis when it is longer."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1].rstrip() + "…"


def tests_text(result: dict) -> str:
    """What the worker's own test run said, in words (tests_passed is true, false or null)."""
    passed = result.get("tests_passed")
    if passed is not None:
        return "tests passed" if passed else "tests failed"
    if result.get("test_command"):
        return f"no tests collected by {result['test_command']}"
    return "no tests found" if result.get("outcome") == task_states.COMPLETE else "tests not run"


def names_text(paths: list[str], shown: int = 5) -> str:
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return ": " + ", ".join(paths[:shown]) + more if paths else ""


def files_text(result: dict) -> str:
    """The files the task changed. With a branch, its figure is the branch's (what a merge brings), and files the
    task touched that ended as they began (created and removed again, edited back) are named apart."""
    touched = sorted(result.get("files_changed") or [])
    git = result.get("git")
    if not git:
        return f"{plural(len(touched), 'file')} changed{names_text(touched)}"
    on_branch = sorted(f["path"] for f in git.get("files") or [])
    where = "in place" if git.get("mode") == "shadow" else f"on {git.get('branch')}"
    text = f"{plural(len(on_branch), 'file')} changed {where}{names_text(on_branch)}"
    back = [path for path in touched if path not in on_branch]
    if back:
        text += f"; touched but ended as {'it' if len(back) == 1 else 'they'} began{names_text(back)}"
    return text


def waits(events) -> tuple[float, float]:
    """Seconds the task spent waiting for the owner's confirmation code, and paused by the owner, from its timeline."""
    waited, paused, asked, held = 0.0, 0.0, None, None
    for event in events:
        if event.type == "confirmation_required":
            asked = event.at
        elif asked is not None and (event.type in ("confirmation_received", "confirmation_refused") or event.ends):
            waited += max(0.0, event.at - asked)
            asked = None
        if event.type == "paused":
            held = event.at
        elif held is not None and (event.type == "resumed" or event.ends):
            paused += max(0.0, event.at - held)
            held = None
    return waited, paused


def time_text(result: dict, waited: float, paused: float = 0.0) -> str:
    """duration_seconds is the task's time on a worker, from its start to its end, waits for a code and pauses
    included."""
    total = result.get("duration_seconds")
    if not isinstance(total, (int, float)):
        return "not recorded"
    waited, paused = min(waited, total), min(paused, total)
    parts = [f"{duration_text(waited)} waiting for your confirmation code"] if waited >= 0.05 else []
    parts += [f"{duration_text(paused)} paused"] if paused >= 0.05 else []
    if not parts:
        return f"{duration_text(total)} on the worker"
    working = max(0.0, total - waited - paused)
    return f"{duration_text(total)} on the worker: {duration_text(working)} working, " + ", ".join(parts)


def describe(status: TaskStatus, events=()) -> str:
    lines = [f"Task {status.task_id}: {status.status} (phase {status.phase})",
             f"  goal:     {status.goal}", f"  project:  {status.project_path}",
             f"  priority: {status.priority}", f"  progress: {status.progress}"]
    if status.scheduled_for:
        lines.append(f"  scheduled: {schedules.when_text(datetime.fromisoformat(status.scheduled_for))} "
                     f"({status.scheduled_for})")
    if status.awaiting_confirmation:
        lines.append(f"  waiting for your confirmation code to run: {status.confirmation_command}")
    if status.branch:
        lines.append(f"  branch:   {status.branch} ({status.checkpoints} checkpoint"
                     f"{'s' if status.checkpoints != 1 else ''})")
    if status.parent:
        lines.append(f"  subtask of: {status.parent}")
    if status.attempts:  # retried automatically (core/retries.py)
        lines.append(f"  attempt:  {status.attempt} of {status.attempts}"
                     + (f", starts at {status.retry_at}" if status.retry_at else ""))
    lines.extend(plan_lines(status))
    if status.reason:
        lines.append(f"  reason:   {status.reason}")
    if status.result:
        r = status.result
        lines.append(f"  result:   {plural(r.get('iterations') or 0, 'iteration')}, {tests_text(r)}, "
                     f"{task_states.cost_text(r.get('cost_usd'), bool(r.get('cost_unknown')))}")
        if len(r.get("models") or {}) > 1:  # another model took over: who served how much
            lines.append(f"  models:   {task_states.models_text(r['models'])}")
        lines.append(f"  files:    {files_text(r)}")
        lines.append(f"  time:     {time_text(r, *waits(events))}")
        if r.get("summary"):
            lines.append(f"  summary:  {r['summary'][:500]}")
        if r.get("changes"):
            lines.append(f"  changes:  {r['changes']}")
        if (r.get("git") or {}).get("diffstat"):
            lines.extend("            " + line for line in r["git"]["diffstat"].splitlines())
    return "\n".join(lines)


def plan_lines(status: TaskStatus) -> list[str]:
    """A planned task's subtasks as a tree under its status: key, title, state, branch, checkpoints, cost."""
    if status.plan is None:
        return []
    lines = [f"  plan:     {plans.plan_summary(status.plan)}"]
    for row in status.plan:
        cost = f"${row['cost_usd']:.4f}" if row.get("cost_usd") else "$0"
        after = f" (after {', '.join(row['depends_on'])})" if row["depends_on"] else ""
        lines.append(f"    {row['key']:<12} {row['task_id']}  {row['state']:<11} {shorten(row['title'], 30)}{after}")
        lines.append(f"    {'':<12} {row['branch'] or '(no branch yet)'}, {plural(row['checkpoints'], 'checkpoint')}, "
                     f"{cost}" + (f": {shorten(row['note'], 80)}" if row["note"] else ""))
    return lines


def list_text(rows: list[TaskStatus]) -> str:
    """`task list`: newest first, each plan's subtasks indented under it."""
    line = (lambda s, indent="": f"{indent}{s.task_id}  {status_column(s):<22} {s.priority:<6} {s.phase:<9} "
                                 f"{shorten(s.goal, 60 - len(indent))}")
    shown = {s.task_id for s in rows}
    children: dict[str, list[TaskStatus]] = {}
    for s in rows:
        if s.parent in shown:
            children.setdefault(s.parent, []).append(s)
    lines = []
    for s in rows:
        if s.parent in shown:
            continue
        lines.append(line(s))
        lines.extend(line(child, "  └ ") for child in children.get(s.task_id, []))
    return "\n".join(lines) or "No tasks yet."


def status_column(status: TaskStatus) -> str:
    """`task list`'s status: a scheduled task's with its start time ('scheduled Sat 02:00')."""
    if status.status == task_states.SCHEDULED and status.scheduled_for:
        return f"{status.status} {schedules.clock_text(datetime.fromisoformat(status.scheduled_for))}"
    return status.status


def event_line(event, started: float) -> str:
    """'15:04:05  +01:12  checkpoint  Checkpoint 2: Editing calc.py' (the offset counts from the first event)."""
    offset = max(0, int(event.at - started))
    clock = datetime.fromtimestamp(event.at).strftime("%H:%M:%S")
    message = " ⏎ ".join(event.message.strip().splitlines())  # one line per event, even for command output
    return f"{clock}  +{offset // 60:02d}:{offset % 60:02d}  {event.type:<21} {message}"


def progress_line(status: TaskStatus, began: float, tick: int) -> str:
    """The live line under a followed timeline: what the task does now, how long, tokens and cost so far."""
    spinner = "|/-\\"[tick % 4]
    elapsed = int(time.time() - began)
    tokens = Usage.from_dict(status.usage).tokens
    cost = f" · ${status.cost_usd:.4f}" if status.cost_usd else ""
    return (f"{spinner} {status.status.replace('_', ' ')} · {status.phase} · {status.progress[:60]} · "
            f"{elapsed // 60}m{elapsed % 60:02d}s · {tokens} tokens{cost}")


def print_log(tasks: TaskManager, task_id: str | None, follow: bool, as_json: bool) -> int:
    task_id = tasks.status(task_id).task_id
    live = follow and sys.stdout.isatty() and not as_json
    began: float | None = None
    tick = 0
    source = tasks.follow(task_id) if follow else iter(tasks.events(task_id))
    for event in source:
        if event is None:  # a quiet second: redraw the progress line
            if live:
                tick += 1
                status = tasks.status(task_id)
                print("\r\033[K" + progress_line(status, began or time.time(), tick), end="", flush=True)
            continue
        began = began if began is not None else event.at
        if as_json:
            print(json.dumps(event.to_dict(), default=str), flush=True)
        else:
            print(("\r\033[K" if live else "") + event_line(event, began), flush=True)
    if began is None and not as_json:
        print(f"Task {task_id} has no events (they expire {RESULT_TTL_SECONDS // 86400} days after its end).")
    return 0


def run_task_command(args, tasks: TaskManager) -> int:
    out = (lambda obj, text: print(json.dumps(obj, indent=2, default=str) if args.json else text))
    if args.task_command == "start":
        task_id = tasks.start(args.goal, args.project, verbose_updates=args.verbose, plan=args.plan,
                              priority=args.priority, at=args.at, call_when_done=args.call_when_done)
        scheduled = tasks.status(task_id).scheduled_for if args.at else None
        if scheduled:
            out({"task_id": task_id, "scheduled_for": scheduled},
                f"{task_id} (scheduled to start {schedules.when_text(datetime.fromisoformat(scheduled))})")
        else:
            out({"task_id": task_id}, task_id)
    elif args.task_command == "file":
        return run_task_file(args, tasks, out)
    elif args.task_command == "status":
        status = tasks.status(args.task_id)
        events = tasks.events(status.task_id) if status.result and not args.json else ()
        out(status.to_dict(), describe(status, events))
    elif args.task_command == "list":
        rows = tasks.list(limit=args.limit)
        out([s.to_dict() for s in rows], list_text(rows))
    elif args.task_command == "confirm":
        status = tasks.confirm(args.task_id, args.code)
        out({"status": "accepted", "task_id": status.task_id},
            f"Confirmation code received for task {status.task_id}.")
    elif args.task_command == "cancel":
        status = tasks.cancel(args.task_id)
        out(status.to_dict(), f"Task {status.task_id}: {status.status}")
    elif args.task_command in ("pause", "resume"):
        status = tasks.pause(args.task_id) if args.task_command == "pause" else tasks.resume(args.task_id)
        out(status.to_dict(), f"Task {status.task_id}: {status.status.replace('_', ' ')}: {status.progress}")
    elif args.task_command == "retry":
        new_id = tasks.retry(args.task_id)
        again = tasks.status(new_id)
        if again.parent:  # a plan's subtask runs again as itself, on its own branch
            out({"task_id": new_id, "retry_of": None, "parent": again.parent},
                f"{new_id} (subtask of {again.parent}, queued again on its own branch)")
        elif tasks.status(args.task_id).task_id == new_id:  # a plan whose subtasks all merged: tested again
            out({"task_id": new_id, "retry_of": None}, f"{new_id} (its merged branch is tested again)")
        else:
            out({"task_id": new_id, "retry_of": again.retry_of}, f"{new_id} (a new task retrying {again.retry_of})")
    elif args.task_command == "log":
        return print_log(tasks, args.task_id, args.follow, args.json)
    elif args.task_command == "checkpoints":
        points = tasks.checkpoints(args.task_id)
        out([asdict(p) for p in points], "\n".join(
            f"{p.number:>3}  {p.sha[:10]}  {'tests pass  ' if p.tests_passed else '            '}{p.message}"
            for p in points) or "No checkpoints: the task changed nothing (0 is the state before it).")
    elif args.task_command == "rollback":
        point = tasks.rollback(args.task_id, args.to)
        out(asdict(point), f"Rolled back to checkpoint {point.number} ({point.sha[:10]}): {point.message}")
    elif args.task_command == "merge":
        merged = tasks.merge(args.task_id)
        out(asdict(merged), merged.message)
    elif args.task_command == "discard":
        sentence = tasks.discard(args.task_id)
        out({"status": "discarded", "detail": sentence}, sentence)
    elif args.task_command == "push":
        sentence = tasks.push(args.task_id)
        out({"status": "pushed", "detail": sentence}, sentence)
    return 0


def run_task_file(args, tasks: TaskManager, out) -> int:
    """`task file [PATH] [--check]`: core/task_file.py once, from the command line."""
    path = (args.path or tasks.settings.TASKS_FILE).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"Cannot read the tasks file {path}: {exc}. Give its path, or set TASKS_FILE in .env.", file=sys.stderr)
        return 1
    if args.check:
        problems = task_file.check(tasks, text)
        out({"path": str(path), "problems": [{"line": p.line, "reason": p.reason} for p in problems]},
            "\n".join(f"{path.name} {problem}" for problem in problems) or f"{path.name}: every entry can be queued.")
        return 1 if problems else 0
    reading = task_file.enqueue(tasks, text, path.name)
    known = f"\n{len(reading.known)} entries were queued before." if reading.known else ""
    out({"path": str(path), **reading.to_dict()}, task_file.news(path.name, reading) + known)
    return 1 if reading.problems else 0


def run_report(args, connection: redis.Redis) -> int:
    """`report`: core/report.py's numbers as text, or its JSON."""
    numbers = report.report(connection, report.parse_since(args.since))
    print(json.dumps({**numbers, "period": args.since}, indent=2) if args.json else report.text(numbers))
    return 0


def run_budget(args, connection: redis.Redis, settings) -> int:
    """`budget [show|set AMOUNT|clear]`: the runtime override of DAILY_BUDGET_USD (core/budget.py); a raised budget
    starts the held tasks at once."""
    if args.budget_command in ("set", "clear"):
        amount = budget.parse_amount(args.amount) if args.budget_command == "set" else None
        state, released = budget.change(connection, settings, amount, clear=args.budget_command == "clear")
    else:
        state, released = budget.current(connection, settings), 0
    told = state.sentence() + (f" {plural(released, 'held task')} started." if released else "")
    print(json.dumps({**state.to_dict(), "released": released}, indent=2) if args.json else told)
    return 0


def calls_text(calls: list[call_history.Call], days: int) -> str:
    """`calls`: one line per call, newest first."""
    lines = [f"{datetime.fromtimestamp(c.started_at):%Y-%m-%d %H:%M}  {c.call_sid}  {c.number:<16} "
             f"{way_text(c):<16} {length_text(c):>11}  {plural(c.lines, 'line'):>9}"
             + (f"  tasks {', '.join(c.task_ids)}" if c.task_ids else "") for c in calls]
    return "\n".join(lines) or f"No calls in the last {plural(days, 'day')}."


def way_text(call: call_history.Call) -> str:
    """'in', 'out', 'out (reminder)'."""
    if call.direction == call_history.INBOUND:
        return "in"
    return f"out ({call.purpose})" if call.purpose else "out"


def length_text(call: call_history.Call) -> str:
    if call.duration is not None:
        return duration_text(call.duration)
    return "on the line" if call.on_the_line else "no end kept"  # its server stopped before the end was written


def run_calls(args, tasks: TaskManager) -> int:
    """`calls [--days N]` and `calls show CALL_SID`: core/call_history.py's calls, as text or JSON."""
    history = call_history.CallHistory(tasks.redis, tasks.settings)
    if args.calls_command != "show":
        days = args.days or tasks.settings.CALL_HISTORY_DAYS
        calls = history.calls(days)
        print(json.dumps([c.to_dict() for c in calls], indent=2) if args.json else calls_text(calls, days))
        return 0
    call, lines = history.call(args.call_sid)
    started = tasks.list(limit=len(call.task_ids), call_sid=call.call_sid)
    if args.json:
        print(json.dumps({**call.to_dict(), "transcript": [asdict(line) for line in lines],
                          "tasks": [s.to_dict() for s in started]}, indent=2, default=str))
        return 0
    print(f"Call {call.call_sid} {'from' if call.direction == call_history.INBOUND else 'to'} {call.number} "
          f"({way_text(call)}), {datetime.fromtimestamp(call.started_at):%Y-%m-%d %H:%M}, {length_text(call)}")
    for line in lines:
        who = "caller:" if line.who == call_history.CALLER else "TARS:  "
        print(f"  {datetime.fromtimestamp(line.at):%H:%M:%S}  {who} {line.text}")
    if not lines:
        print("  (nothing was said)")
    if started:
        print(f"Tasks it started:\n{list_text(started)}")
    else:
        print(f"Its tasks ({', '.join(call.task_ids)}) have expired." if call.task_ids else "It started no task.")
    return 0


def workers_text(view: dict) -> str:
    """`workers`: whether they are paused, each worker (name, state, its task, capabilities), the queue."""
    if view["paused"]:
        since = view["paused_since"]
        when = f" since {datetime.fromtimestamp(since).strftime('%Y-%m-%d %H:%M')}" if since else ""
        lines = [f"Workers paused{when}: no task starts, and running tasks wait at their next step. Resume with: "
                 f"{pause.RESUME_WORKERS}"]
    else:
        lines = ["Workers: working (pause them with: python main_tars.py workers pause)"]
    for worker in view["workers"]:
        task = f"  task {worker['current_task']}" if worker["current_task"] else ""
        can = f"  capabilities: {', '.join(worker['capabilities'])}" if worker["capabilities"] else ""
        lines.append(f"  {worker['name']:<30} {worker['state']:<7}{task}{can}".rstrip())
    if not view["workers"]:
        lines.append("  No worker is running: start one with python start_worker.py (or run python main_tars.py up).")
    lines.append(f"Queue: {plural(view['queue_length'], 'task')} waiting")
    return "\n".join(lines)


def run_workers_command(args, connection: redis.Redis) -> int:
    if args.action != "status":
        paused = args.action == "pause"
        changed = pause.pause_workers(connection) if paused else pause.resume_workers(connection)
        sentence = pause.switched(paused, changed)
        print(json.dumps({"paused": paused, "changed": changed, "detail": sentence}) if args.json else sentence)
        return 0
    view = pool.overview(connection)
    print(json.dumps(view, indent=2) if args.json else workers_text(view))
    return 0


def start_up_lines(settings, workers: int, redis_url: str, embedded: bool) -> list[str]:
    """What the server tells the owner before it starts: where it and the dashboard are, its workers, Redis."""
    local = f"http://{settings.HOST}:{settings.PORT}"
    restart = "python main_tars.py up" if workers else "python main_tars.py"
    if settings.DASHBOARD_PASSWORD:
        public = f" and {settings.PUBLIC_BASE_URL}/" if settings.PUBLIC_BASE_URL else ""
        dashboard = f"{local}/{public} (log in with DASHBOARD_PASSWORD)"
    else:
        dashboard = (f"off: set DASHBOARD_PASSWORD (at least 8 characters) in .env and restart `{restart}`; "
                     f"then open {local}/")
    if workers == 1:
        worker = "  Worker:     one, started with the server; /health counts it as `starting` until it has registered"
    elif workers:
        worker = (f"  Workers:    {workers}, started with the server and kept running; /health counts each as "
                  f"`starting` until it has registered")
    else:
        worker = ("  Worker:     none started here: run `python start_worker.py` beside it (or start TARS with "
                  "`main_tars.py up`)")
    return [f"TARS server: {local} (health: {local}/health)",
            f"  Dashboard:  {dashboard}",
            worker,
            f"  Redis:      {safe_url(redis_url)}" + (f" (embedded; its data in {settings.DATA_DIR / 'redis'})"
                                                      if embedded else ""),
            f"  Data:       {settings.DATA_DIR} (the tasks' checkouts in {settings.checkouts_dir})",
            f"  Tasks file: {settings.TASKS_FILE} (watched: each new entry becomes a task once; docs/BACKGROUND_PROGRAMMING.md)"]


def worker_name(process: subprocess.Popen) -> str:
    """The name start_worker.py gives itself without --name (host.pid, so each of `up`'s workers has its own, and a
    restarted one a new one): how /health knows `up`'s workers."""
    return f"{socket.gethostname()}.{process.pid}"


def serve(settings, workers: int = 0) -> int:
    """The server; with workers (`up`), that many workers beside it, each started again whenever it exits."""
    import uvicorn

    from communication.app import create_app

    logging.basicConfig(level=settings.LOG_LEVEL, format=WORKER_LOG_FORMAT)
    install_log_scrubbing(settings.secret_values())
    warn_about_env_file()
    if settings.ANTHROPIC_API_KEY is None:
        logging.warning("ANTHROPIC_API_KEY is not set: every task will fail at once and calls get one apology. Add "
                        "it to .env (see env.example) and restart %s.", "`python main_tars.py up`" if workers
                        else "`python main_tars.py` and the workers (`python start_worker.py`)")
    connection, embedded = connect_or_embed(settings.redis_url, settings.DATA_DIR, settings.EMBEDDED_REDIS)
    # What `up` starts, it keeps running: a crashed embedded Redis (its AOF keeps the tasks) or worker comes back.
    redis_keeper = KeepAlive("the embedded Redis", lambda: embedded.start().process,
                             embedded.process) if embedded else None
    # The workers' warnings about .env and the API key would repeat the server's: they leave them out.
    worker_keepers = [KeepAlive("the worker" if workers == 1 else f"worker {number} of {workers}",
                                lambda: subprocess.Popen([sys.executable, str(HERE / "start_worker.py"),
                                                          "--started-by-up"], cwd=HERE))
                      for number in range(1, workers + 1)]
    for keeper in [redis_keeper, *worker_keepers]:
        if keeper:
            keeper.start()
    own_workers = (lambda: [worker_name(k.child) for k in worker_keepers if k.child.poll() is None]) \
        if worker_keepers else None
    print("\n".join(start_up_lines(settings, workers, embedded.url if embedded else settings.redis_url,
                                    bool(embedded))), flush=True)
    try:
        # Open dashboard streams never end by themselves: Ctrl+C closes them after the grace period.
        uvicorn.run(create_app(settings, connection, own_workers), host=settings.HOST, port=settings.PORT,
                    log_level=settings.LOG_LEVEL.lower(), timeout_graceful_shutdown=SERVER_SHUTDOWN_GRACE_SECONDS)
    finally:
        running = [worker for worker in (keeper.stop() for keeper in worker_keepers) if worker.poll() is None]
        for worker in running:
            worker.terminate()  # warm shutdown: a running task may finish
        deadline = time.monotonic() + 30
        for worker in running:
            try:
                worker.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
        if redis_keeper:
            redis_keeper.stop()
            embedded.stop()
    return 0


def check_command(args) -> int:
    """check-command (docs/SECURITY.md): `run (RULE): REASON` or `ask (RULE): REASON`, or a JSON object; without a
    COMMAND, one JSON object per JSON string line on stdin. Exit 0 run, 1 ask, 2 error."""
    from core import command_policy  # here: the server never needs the bash parser (about 8 MiB of its memory)

    try:
        rules = command_policy.load_rules(args.rules) if args.rules else None
    except command_policy.RulesError as e:
        print(f"check-command: {e}", file=sys.stderr)
        return 2

    def line(command: str) -> dict:
        d = command_policy.check(command, args.project, sandboxed=not args.no_sandbox, rules=rules)
        return {"command": command, "decision": d.decision, "reason": d.reason, "rule": d.rule}

    if args.bash_command is not None:
        out = line(args.bash_command)
        print(json.dumps(out) if args.json else f"{out['decision']} ({out['rule']}): {out['reason']}")
        return 0 if out["decision"] == "run" else 1
    status = 0
    for number, raw in enumerate(sys.stdin, 1):
        if raw.strip():
            try:
                command = json.loads(raw)
                out = line(command) if isinstance(command, str) else {"line": number, "error": "expected a JSON string"}
            except ValueError as e:
                out = {"line": number, "error": f"expected a JSON string: {e}"}
            status = 2 if "error" in out else status
            print(json.dumps(out), flush=True)
    return status


def run_models(args: argparse.Namespace, settings) -> int:
    """`models [--check] [--json]`: each role's models in order, with window, price and key; --check asks each."""
    from core.config import MODEL_ROLES
    from core.model_roles import check_model  # the SDKs load for this command only

    rows, checked = [], {}
    for role, variable in MODEL_ROLES.items():
        for position, spec in enumerate(settings.models(role), 1):
            price = settings.price(spec)
            key = spec.source.key_setting
            row = {"role": role, "setting": variable, "position": position, "model": spec.label,
                   "provider": spec.source.title, "context_window": settings.context_window(spec),
                   "price_per_mtok": None if price is None else [price.input, price.output],
                   "key": None if key is None else (key if settings.secret(key) else f"{key} not set")}
            if args.check:
                if spec.label not in checked:
                    checked[spec.label] = check_model(settings, spec)
                row.update(checked[spec.label])
            rows.append(row)
    failed = [row for row in rows if row.get("answers") is False]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 1 if failed else 0
    for role, variable in MODEL_ROLES.items():
        default = {"coding": "anthropic:CLAUDE_MODEL", "planner": "as CODING_MODELS",
                   "voice": "anthropic:CLAUDE_VOICE_MODEL"}[role]
        print(f"{role} ({variable}{'' if getattr(settings, variable).strip() else ' not set: ' + default}):")
        for row in (r for r in rows if r["role"] == role):
            price = row["price_per_mtok"]
            price_text = "price unknown" if price is None else ("free (local)" if price == [0.0, 0.0] else
                                                                f"${price[0]:g} in / ${price[1]:g} out per Mtok")
            key = "" if row["key"] is None else f", {row['key']}" if "not set" in row["key"] else ""
            print(f"  {row['position']}. {row['model']:<38} {row['context_window']:>9,} tokens  {price_text}{key}")
            if args.check:
                print(f"     {'answers' if row['answers'] else 'does not answer'} ({row['seconds']:.2f} s)"
                      + (f": {row['reason']}" if not row["answers"] else ""))
    if args.check:
        answered = sum(1 for r in checked.values() if r["answers"])
        print(f"{answered} of {plural(len(checked), 'model')} answered.")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "doctor":  # its own settings check: a setting that does not load is one of its lines
        from communication.doctor import run_doctor

        return run_doctor(fix_twilio=args.fix_twilio, as_json=args.json)
    if args.command == "check-command":  # no Redis; the settings only for the default rules file
        if args.rules is None:
            try:
                args.rules = str(get_settings().COMMAND_RULES_FILE)
            except TarsError as exc:
                print(f"check-command: {exc}", file=sys.stderr)
                return 2
        return check_command(args)
    try:
        settings = get_settings()
        if args.command == "models":  # no Redis: the settings and the providers only
            return run_models(args, settings)
        if args.command in (None, "serve", "up"):
            return serve(settings, workers=(args.workers or settings.WORKER_COUNT) if args.command == "up" else 0)
        if args.command == "call":
            from communication.console_phone import run_call

            return run_call(settings, url=args.url, caller=args.caller)
        if args.command == "report":
            return run_report(args, connect(settings.redis_url))
        if args.command == "budget":
            return run_budget(args, connect(settings.redis_url), settings)
        if args.command == "workers":
            return run_workers_command(args, connect(settings.redis_url))
        if args.command == "calls":
            return run_calls(args, TaskManager(connect(settings.redis_url), settings))
        return run_task_command(args, TaskManager(connect(settings.redis_url), settings))
    except TarsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except redis.RedisError as exc:
        print(f"error: Redis failed ({exc.__class__.__name__}: {exc}); check that it is running.", file=sys.stderr)
        return 1


def run(argv: list[str] | None = None) -> int:
    """main(), quiet when the reader goes away (`task list | head`): Python's recipe for a closed pipe."""
    try:
        code = main(argv)
        sys.stdout.flush()  # a closed pipe shows here, inside the try, not at interpreter exit
        return code
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the exit's own flush goes nowhere instead of failing again
        return 1


if __name__ == "__main__":
    sys.exit(run())
