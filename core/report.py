"""The report: how the tasks went over a period, computed from their history (core/history.py).

One computation, `build()`, serves every reader: `python main_tars.py report [--since 7d] [--json]`, GET /api/report,
the dashboard's Report page, the voice ("how did this week go?", worded in communication/spoken.py) and the weekly
digest to Discord (communication/digest.py). What it counts:

- tasks by outcome; the success rate: the share of the tasks that ended complete, of those not cancelled (a cancel is
  the owner's choice, not a failure); a plan's subtasks count as tasks of their own, beside their plan.
- duration (time on a worker; a plan's whole time) median and 95th percentile (nearest rank).
- tokens (in: input, cache writes and cache reads; out: output) and estimated cost, per day (the owner's local
  calendar day the task ended on) and per project. A plan's cost is its subtasks', counted once, on them.
- the most common failure reasons (failed and timed-out tasks), similar ones grouped: ids, numbers, paths and URLs
  are masked, so "task retry 3f9a1c" and "task retry 77b0e2" are one reason.
- model latency per call (every model answer of the period's tasks): median and 95th percentile.
"""

from __future__ import annotations

import math
import re
import statistics
import time
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta

import redis

from core import history
from core.defaults import REPORT_FAILURE_GROUPS
from core.exceptions import InvalidReportPeriod
from core.task_states import CANCELLED, COMPLETE, FAILED, OUTCOMES, TIMEOUT, duration_text, usd

PERIOD = re.compile(r"(\d+(?:\.\d+)?)\s*(m|min|h|d|w)", re.IGNORECASE)
PERIOD_SECONDS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DEFAULT_SINCE = "7d"

# What differs between two tellings of the same failure: URLs, paths, task and commit ids, numbers.
MASKS = [(re.compile(r"\bhttps?://\S+|\b[\w.-]+@[\w.-]+:\S+"), "<url>"),
         (re.compile(r"(?<![\w.])(?:~|\.{1,2})?(?:/[\w.@+-]+){2,}/?"), "<path>"),
         (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{6,40}\b"), "<id>"),
         (re.compile(r"\d+(?:\.\d+)?"), "N")]


def parse_since(text: str | None) -> float:
    """A report's period in seconds: '7d', '24h', '2w', '90m' (default 7d)."""
    said = (text or DEFAULT_SINCE).strip()
    match = PERIOD.fullmatch(said)
    if not match or float(match.group(1)) <= 0:
        raise InvalidReportPeriod(f"{said[:40]!r} is not a period: give a number and a unit, such as 7d (days), 24h "
                                  "(hours), 2w (weeks) or 90m (minutes).")
    return float(match.group(1)) * PERIOD_SECONDS[match.group(2).lower()]


def failure_key(reason: str) -> str:
    """A failure reason with what differs between similar ones masked: the group it counts in."""
    text = " ".join((reason or "").split())
    for pattern, mask in MASKS:
        text = pattern.sub(mask, text)
    return text[:200] or "(no reason recorded)"


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (share 0.95: the 95th) of values; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3) if values else None,
            "p95": round(percentile(values, 0.95), 3) if values else None}


def _day(at: float) -> str:
    return datetime.fromtimestamp(at).date().isoformat()


def _days(since: float, until: float) -> list[str]:
    first, last = date.fromisoformat(_day(since)), date.fromisoformat(_day(until))
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def _tally() -> dict:
    return {"tasks": 0, **{outcome: 0 for outcome in OUTCOMES}, "cost_usd": 0.0, "tokens_in": 0, "tokens_out": 0}


def _count(into: dict, entry: dict) -> None:
    into["tasks"] += 1
    into[entry["outcome"]] = into.get(entry["outcome"], 0) + 1
    if not entry["planned"]:  # a plan's own cost is its subtasks', counted on them
        into["cost_usd"] += entry["cost_usd"]
        into["tokens_in"] += tokens_in(entry)
        into["tokens_out"] += entry["output_tokens"]


def tokens_in(entry: dict) -> int:
    return entry["input_tokens"] + entry["cache_creation_input_tokens"] + entry["cache_read_input_tokens"]


def _rounded(tally: dict) -> dict:
    return {**tally, "cost_usd": round(tally["cost_usd"], 6)}


def build(entries: list[dict], since: float, until: float) -> dict:
    """The report of the tasks in `entries` (history summaries) that ended from `since` to `until` (Unix times)."""
    entries = [e for e in entries if since <= e["ended_at"] <= until]
    total = _tally()
    by_day = {day: _tally() for day in _days(since, until)}
    by_project: dict[str, dict] = defaultdict(_tally)
    failures: dict[str, list[dict]] = defaultdict(list)
    for entry in entries:
        _count(total, entry)
        _count(by_day.setdefault(_day(entry["ended_at"]), _tally()), entry)
        _count(by_project[entry["project"]], entry)
        if entry["outcome"] in (FAILED, TIMEOUT):
            failures[failure_key(entry["reason"])].append(entry)
    counted = total["tasks"] - total[CANCELLED]
    calls = [s for e in entries for s in e["model_seconds"]]
    groups = sorted(failures.items(), key=lambda item: (-len(item[1]), -max(e["ended_at"] for e in item[1])))
    return {
        "since": datetime.fromtimestamp(since).astimezone().isoformat(timespec="seconds"),
        "until": datetime.fromtimestamp(until).astimezone().isoformat(timespec="seconds"),
        "tasks": {"total": total["tasks"], **{outcome: total[outcome] for outcome in OUTCOMES}},
        "success_rate": round(total[COMPLETE] / counted, 4) if counted else None,
        "duration_seconds": _spread([e["duration_seconds"] for e in entries]),
        "tokens": {"in": total["tokens_in"], "out": total["tokens_out"]},
        "cost_usd": round(total["cost_usd"], 6),
        "by_day": [{"day": day, **_rounded(tally)} for day, tally in sorted(by_day.items())],
        "by_project": {name: _rounded(tally) for name, tally in sorted(by_project.items(),
                                                                        key=lambda item: -item[1]["tasks"])},
        "failure_reasons": [{"reason": key, "count": len(group), "example": group[-1]["reason"],
                             "tasks": [e["task_id"] for e in group]} for key, group in groups[:REPORT_FAILURE_GROUPS]],
        "model_latency_seconds": {"calls": len(calls), **_spread(calls)},
    }


def report(connection: redis.Redis, since_seconds: float, now: float | None = None) -> dict:
    """The report of the last `since_seconds` up to `now`, from the history."""
    until = now if now is not None else time.time()
    since = until - since_seconds
    return build(history.read(connection, since, until), since, until)


def text(report: dict) -> str:
    """The report as `python main_tars.py report` prints it (and the weekly digest says it)."""
    tasks = report["tasks"]
    lines = [f"Tasks from {report['since'][:16].replace('T', ' ')} to {report['until'][:16].replace('T', ' ')}: "
             f"{tasks['total']}"]
    if not tasks["total"]:
        return lines[0] + " (none ended in this period)."
    lines.append("  by outcome: " + ", ".join(f"{tasks[o]} {o}" for o in OUTCOMES if tasks[o]))
    rate = report["success_rate"]
    lines.append(f"  success:    {rate * 100:.0f}% of the tasks not cancelled" if rate is not None
                 else "  success:    (every task was cancelled)")
    spread = report["duration_seconds"]
    lines.append(f"  duration:   median {duration_text(spread['median'])}, 95th percentile "
                 f"{duration_text(spread['p95'])}")
    lines.append(f"  cost:       {usd(report['cost_usd'])} ({report['tokens']['in']:,} tokens in, "
                 f"{report['tokens']['out']:,} out)")
    latency = report["model_latency_seconds"]
    if latency["calls"]:
        lines.append(f"  model:      {latency['calls']} calls, median {latency['median']:.2f} s, 95th percentile "
                     f"{latency['p95']:.2f} s")
    lines.append("  per day:")
    lines.extend(f"    {row['day']}  {row['tasks']:>3} tasks  {row[COMPLETE]:>3} complete  {usd(row['cost_usd']):>9}"
                 for row in report["by_day"] if row["tasks"])
    lines.append("  per project:")
    lines.extend(f"    {name[:24]:<24} {row['tasks']:>3} tasks  {row[COMPLETE]:>3} complete  {usd(row['cost_usd']):>9}"
                 for name, row in report["by_project"].items())
    if report["failure_reasons"]:
        lines.append("  most common failures:")
        lines.extend(f"    {group['count']:>3} × {group['example'][:160]}" for group in report["failure_reasons"])
    return "\n".join(lines)
