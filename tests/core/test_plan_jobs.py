"""Planned tasks end to end: real worker processes, real git, the scripted model. The owner asks for a plan; the
subtasks run at once on different workers where they can, each on its own branch, merged into the plan's branch;
conflicts, failures, retries and cancels behave as the owner would expect."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
from rq.exceptions import NoSuchJobError
from rq.job import Job

from core import event_log, keys, plans
from core.config import Settings, load_settings
from core.exceptions import CodeRejected, TaskNotActive
from core.model import Usage, estimate_cost
from core.task_manager import TaskManager
from core.task_states import usd
from tests.communication.test_delivery_discord_bot import other_messages, status_messages
from tests.conftest import TEST_CODE, TEST_WEBHOOK_SECRET, bot_settings
from tests.fakes.anthropic_api import bash, edit, error, text, tool_use
from tests.test_task_branches import git, owner_repo
from tests.waiting import wait_until

# Each story runs several subtasks on real workers, each with its own bounded waits; on a heavily loaded machine a
# whole story (with its CLI calls) can pass the suite's 180 s default.
pytestmark = [pytest.mark.usefixtures("private_git"), pytest.mark.timeout(600)]


@pytest.fixture
def tars_env(tars_env, monkeypatch):
    """Every process of these tests plans when asked (PLAN_GOALS=ask)."""
    monkeypatch.setenv("PLAN_GOALS", "ask")
    return {**tars_env, "PLAN_GOALS": "ask"}


PLANNER = "Plan the work for this goal"  # the planner's request opens with it (core/plans.PLANNER_REQUEST)


def plan(*subtasks) -> dict:
    """Each subtask as (key, title, goal, depends_on), or with a fifth item, its capability."""
    return {"subtasks": [{"key": key, "title": title, "goal": goal, "depends_on": list(after),
                          **({"capability": rest[0]} if rest else {})}
                         for key, title, goal, after, *rest in subtasks]}


def script_plan(fake_api, *subtasks, usage=None):
    """usage: the tokens the planner's answer reports (FakeAnthropic.script)."""
    fake_api.script([tool_use("plan_subtasks", plan(*subtasks))], match=PLANNER, name="planner", usage=usage)


def script_small_plan(fake_api, hold=None):
    """The two-subtask plan of the owner's stories: store (SQLite store), then api (REST API) on it. hold: a path
    store waits for once it wrote store.py (running, api waiting on it) until the test creates it."""
    script_plan(fake_api, ("store", "SQLite store", "Write store.py with the todo store", []),
                ("api", "REST API", "Write api.py on top of the store", ["store"]))
    for key in ("store", "api"):
        waits = [bash(f"until test -e {hold}; do sleep 0.05; done")] if hold and key == "store" else []
        fake_api.script([edit(command="create", path=f"{key}.py", file_text=f"NAME = '{key}'\n"), *waits,
                         text(f"Wrote {key}.py.")], match=f"Goal: Write {key}.py", name=key)


def spent(fake_api, script, usage) -> Usage:
    """The tokens a script's answers reported so far, each `usage` (given to FakeAnthropic.script)."""
    answers = len([r for r in fake_api.requests_for(script) if r.status == 200])
    used = Usage(**{name: count * answers for name, count in usage.items()})
    used.cost_usd = answers * estimate_cost(Settings.model_fields["CLAUDE_MODEL"].default, Usage(**usage))
    return used


def ended(tasks, task_id, timeout=180):
    try:
        return wait_until(lambda: (s := tasks.status(task_id)).status not in ("queued", "running",
                          "awaiting_confirmation") and s, timeout, f"task {task_id} to end")
    except AssertionError as late:  # say where it stood: a plan's rows and its timeline
        status = tasks.status(task_id)
        timeline = [f"{e.type}: {e.message}" for e in events(tasks, task_id)]
        raise AssertionError(f"{late}: {status.status}, {status.progress!r}, rows {status.plan}, "
                             f"timeline {timeline}") from None


def events(tasks, task_id, kind=None):
    return [e for e in event_log.read(tasks.redis, task_id) if kind is None or e.type == kind]


def rows(tasks, parent) -> dict:
    return {row["key"]: row for row in tasks.status(parent).plan or []}


def blocked_events(tasks, parent) -> list:
    """The events that told the plan cannot go on by itself."""
    return [e for e in events(tasks, parent, "subtask") if e.data.get("state") == "blocked"]


def planned(tasks, parent, timeout=120) -> dict:
    """The plan's rows once the planning job queued them."""
    return wait_until(lambda: rows(tasks, parent), timeout, f"task {parent} to be planned")


def test_a_planned_goal_runs_independent_subtasks_at_once_and_merges_everything(tasks, fake_api, start_worker,
                                                                                 projects, tmp_path, cli):
    repo = owner_repo(projects / "todo", {"README.md": "# todo\n"})
    script_plan(fake_api, ("store", "SQLite store", "Write store.py with the todo store", []),
                ("cli", "Command line", "Write cli.py with the command line", []),
                ("api", "REST API", "Write api.py on top of the store", ["store"]))
    # store and cli each wait at a gate the test opens once both stand there: they run side by side.
    gate = tmp_path / "both-running"
    for key in ("store", "cli"):
        fake_api.script([edit(command="create", path=f"{key}.py", file_text=f"NAME = '{key}'\n"),
                         bash(f"until test -e {gate}; do sleep 0.05; done"), text(f"Wrote {key}.py.")],
                        match=f"Goal: Write {key}.py", name=key)
    fake_api.script([bash("cat store.py"), edit(command="create", path="api.py", file_text="import store\n"),
                     text("Wrote api.py.")], match="Goal: Write api.py", name="api")
    started = cli("task", "start", "--plan", "--goal", "Build a todo app", "--project", "todo")
    assert started.returncode == 0, started.stderr
    parent = started.stdout.strip()
    workers = [start_worker() for _ in range(2)]

    plan_rows = planned(tasks, parent)
    assert list(plan_rows) == ["store", "cli", "api"]
    shown = events(tasks, parent, "plan")[0]  # the plan is on the timeline before any subtask starts
    assert shown.message == "Plan of 3 subtasks: store (SQLite store); cli (Command line); api (REST API, after store)"
    assert [s["key"] for s in shown.data["subtasks"]] == ["store", "cli", "api"]
    wait_until(lambda: all(rows(tasks, parent)[k]["state"] == "running" for k in ("store", "cli")), 120,
               "store and cli running at once")
    during = tasks.status(parent)
    assert during.status == "running"
    assert during.progress == "0 of 3 subtasks done, 2 running, 1 waiting on store"
    assert rows(tasks, parent)["api"]["note"] == "waiting on store"
    gate.touch()
    ended(tasks, parent)
    # The finishing job stores the plan's result a moment before its meta's last progress: read them once both are.
    done = wait_until(lambda: (s := tasks.status(parent)).phase != "testing" and s, 30, "the plan's last progress")
    for worker in workers:
        worker.stop()

    assert done.status == "complete", (done.reason, [w.log[-3000:] for w in workers])
    assert done.branch == f"tars/{parent}"
    assert done.reason == f"All 3 subtasks are merged into tars/{parent}; the project has no tests to run."
    assert done.progress.startswith("Complete")
    subs = rows(tasks, parent)
    assert [r["state"] for r in subs.values()] == ["done", "done", "done"]
    assert {r["branch"] for r in subs.values()} == {f"tars/{r['task_id']}" for r in subs.values()}
    # The plan's branch holds every subtask's work, each brought in by a merge commit.
    assert git(repo, "ls-tree", "--name-only", f"tars/{parent}").split() == ["README.md", "api.py", "cli.py",
                                                                             "store.py"]
    merges = git(repo, "log", "--merges", "--format=%s", f"tars/{parent}").splitlines()
    assert len(merges) == 3 and all(m.startswith(f"tars({parent}): merge subtask ") for m in merges)
    assert git(repo, "rev-parse", "HEAD") == git(repo, "rev-parse", "main")  # the owner's branch is untouched

    # store and cli overlapped in time, on different workers.
    def span(key):
        sub = tasks.status(subs[key]["task_id"])
        return sub.started_at, sub.ended_at
    (s0, s1), (c0, c1) = span("store"), span("cli")
    assert s0 < c1 and c0 < s1, "store and cli did not run side by side"
    # api started only once store was merged, and saw its file.
    merged_store = next(e for e in events(tasks, parent, "subtask") if e.data.get("key") == "store"
                        and e.data.get("state") == "merged")
    api_started = events(tasks, subs["api"]["task_id"], "started")[0]
    assert api_started.at > merged_store.at
    api_reads = [r for r in fake_api.requests if r.script == "api"]
    assert "NAME = 'store'" in api_reads[1].last_user_text
    assert api_reads[0].first_user_text.startswith("Goal: Write api.py on top of the store")
    assert "This is subtask api of a plan for the goal: Build a todo app" in api_reads[0].first_user_text

    # What the owner reads: the tree under the status, subtasks grouped under their plan in the list.
    shown = cli("task", "status", parent)
    assert "plan:     3 of 3 subtasks done" in shown.stdout
    assert f"    store        {subs['store']['task_id']}  done" in shown.stdout
    as_json = json.loads(cli("task", "status", parent, "--json").stdout)  # what the API and dashboard get
    assert [row["key"] for row in as_json["plan"]] == ["store", "cli", "api"] and as_json["parent"] is None
    assert json.loads(cli("task", "status", subs["api"]["task_id"], "--json").stdout)["parent"] == parent
    listed = cli("task", "list").stdout.splitlines()
    assert listed[0].startswith(parent)
    assert tasks.latest_id() == parent  # "the latest task" is the plan, not its newest subtask
    assert [line.split()[1] for line in listed[1:4]] == [subs[k]["task_id"] for k in ("store", "cli", "api")]
    # The plan's branch is a task branch like any other: merge it into main.
    merged = cli("task", "merge", parent)
    assert merged.returncode == 0, merged.stderr
    assert git(repo, "ls-tree", "--name-only", "main").split() == ["README.md", "api.py", "cli.py", "store.py"]


def test_an_invalid_plan_falls_back_to_one_task_and_says_why(tasks, fake_api, start_worker, projects):
    owner_repo(projects / "calc", {"README.md": "# calc\n"})
    cycle = plan(("a", "A", "do a", ["b"]), ("b", "B", "do b", ["a"]))
    planner, single = {"input_tokens": 10_000, "output_tokens": 2_000}, {"input_tokens": 1_000, "output_tokens": 100}
    fake_api.script([tool_use("plan_subtasks", cycle), tool_use("plan_subtasks", cycle)], match=PLANNER,
                    name="planner", usage=planner)
    fake_api.script([edit(command="create", path="calc.py", file_text="ADD = 1\n"), text("Done.")],
                    match="Goal: Build a calculator", name="single", usage=single)
    parent = tasks.start("Build a calculator", "calc", plan=True)
    worker = start_worker()
    done = ended(tasks, parent)
    worker.stop()
    assert done.status == "complete", done.reason
    assert done.plan is None and done.files_changed == ["calc.py"]
    said = events(tasks, parent, "plan_fallback")[0]
    assert said.message == ("Running the goal as one task: the planner's plan was invalid twice (The dependencies "
                            "form a cycle: a -> b -> a. A plan must be a DAG.).")
    assert len([r for r in fake_api.requests if r.script == "planner"]) == 2
    # The planner's two answers were paid for: the one task's cost includes them.
    used = spent(fake_api, "planner", planner) + spent(fake_api, "single", single)
    assert used.input_tokens == 2 * 10_000 + 2 * 1_000
    wait_until(lambda: tasks.settled(parent), 60, "RQ to keep the task's result")
    done = tasks.status(parent)
    assert done.usage == used.as_dict() == done.result["usage"]
    assert done.cost_usd == estimate_cost(tasks.settings.CLAUDE_MODEL, used) == done.result["cost_usd"]


def test_a_plan_costs_its_planner_and_every_subtask_and_shows_it_while_it_runs(tasks, fake_api, start_worker,
                                                                              projects, tmp_path, discord):
    owner_repo(projects / "todo", {"README.md": "# todo\n"})
    planner = {"input_tokens": 10_000, "output_tokens": 2_000}
    each = {"store": {"input_tokens": 1_000, "output_tokens": 100}, "cli": {"input_tokens": 2_000, "output_tokens": 300}}
    script_plan(fake_api, ("store", "Store", "Write store.py", []), ("cli", "CLI", "Write cli.py", []), usage=planner)
    gates = {key: tmp_path / f"{key}-may-end" for key in each}
    for key, gate in gates.items():
        fake_api.script([edit(command="create", path=f"{key}.py", file_text=f"NAME = '{key}'\n"),
                         bash(f"until test -e {gate}; do sleep 0.05; done"), text(f"Wrote {key}.py.")],
                        match=f"Goal: Write {key}.py", name=key, usage=each[key])
    parent = tasks.start("Build a todo app", "todo", plan=True)
    # cli's wait at its gate outlasts the test's own waits on a loaded machine (no command or task timeout cuts it)
    workers = [start_worker(COMMAND_TIMEOUT_SECONDS="300", MAX_TASK_RUNTIME_MINUTES="10", **bot_settings(discord))
               for _ in range(2)]
    planned(tasks, parent)
    # Both wait at their gate, their tokens so far stored; then store ends (and is merged) while cli still runs.
    wait_until(lambda: all(tasks.status(r["task_id"]).progress.startswith("Running: until test -e")
                           for r in rows(tasks, parent).values()), 120, "store and cli waiting at their gates")
    gates["store"].touch()
    wait_until(lambda: rows(tasks, parent)["store"]["state"] == "done", 120, "store merged")

    so_far = spent(fake_api, "planner", planner) + spent(fake_api, "store", each["store"]) \
        + spent(fake_api, "cli", each["cli"])
    assert len(fake_api.requests_for("cli")) == 2  # cli has answered twice and waits: its cost so far
    cost = estimate_cost(tasks.settings.CLAUDE_MODEL, so_far)
    status = tasks.status(parent)
    assert status.status == "running" and status.usage == so_far.as_dict()
    assert status.cost_usd == cost and cost > estimate_cost(tasks.settings.CLAUDE_MODEL,
                                                            spent(fake_api, "planner", planner))
    # The Discord status message of the plan shows it too, from the update that store was merged.
    shown = f"${cost:.4f}"
    wait_until(lambda: [f["value"] for m in status_messages(discord, parent) for f in m["embeds"][0]["fields"]
                        if f["name"] == "Cost so far"] == [shown], 120, f"the plan's status message showing {shown}")

    gates["cli"].touch()
    done = ended(tasks, parent)
    for worker in workers:
        worker.stop()
    assert done.status == "complete", (done.reason, [w.log[-3000:] for w in workers])
    total = spent(fake_api, "planner", planner) + spent(fake_api, "store", each["store"]) \
        + spent(fake_api, "cli", each["cli"])
    assert done.usage == total.as_dict() == done.result["usage"]
    assert done.cost_usd == estimate_cost(tasks.settings.CLAUDE_MODEL, total) == done.result["cost_usd"]
    ending = wait_until(lambda: [m for m in other_messages(discord, parent)
                                 if m["content"].startswith(f"🎉 Task {parent} complete")], 120,
                        "the plan's ending in Discord")[0]
    assert {"name": "Cost", "value": usd(done.cost_usd), "inline": True} in ending["embeds"][0]["fields"]


def test_plan_goals_sets_when_a_goal_is_planned(redis_client, tars_env):
    def started(setting, **asked):
        manager = TaskManager(redis_client, load_settings(PLAN_GOALS=setting))
        task_id = manager.start("Build a calculator", "calc", **asked)
        return Job.fetch(task_id, connection=redis_client), events(manager, task_id)

    job, timeline = started("never", plan=True)  # as before plans: one task, and the timeline says why
    assert job.meta["plan"] is False and job.func_name == "core.background_worker.run_task"
    assert timeline[-1].type == "plan_fallback" and "PLAN_GOALS=never" in timeline[-1].message
    assert started("ask")[0].meta["plan"] is False
    job, timeline = started("ask", plan=True)
    assert job.meta["plan"] is True and job.func_name == "core.plan_jobs.run_planned_task"
    assert [e.type for e in timeline] == ["queued"]
    assert started("always")[0].meta["plan"] is True
    assert started("always", plan=False)[0].meta["plan"] is False


def test_a_conflict_goes_through_an_integration_subtask(tasks, fake_api, start_worker, projects, tmp_path):
    repo = owner_repo(projects / "notes", {"notes.txt": "# notes\n"})
    script_plan(fake_api, ("red", "Red line", "Add the red line to notes.txt", []),
                ("blue", "Blue line", "Add the blue line to notes.txt", []),
                ("after", "After both", "Write after.txt once notes are in", ["red", "blue"]))
    # Both fork from the same tip and wait at a gate until both run: on a loaded machine one worker could otherwise
    # finish red before blue forks, and blue would merge cleanly on top of it.
    gate = tmp_path / "both-running"
    for colour in ("red", "blue"):
        fake_api.script([bash(f"until test -e {gate}; do sleep 0.05; done; echo {colour} >> notes.txt"),
                         text(f"Added {colour}.")], match=f"Goal: Add the {colour} line", name=colour)
    # The integration subtask finds git's conflict markers in notes.txt and keeps both lines.
    fake_api.script([bash("grep -c '<<<<<<<' notes.txt"), bash("printf '# notes\\nred\\nblue\\n' > notes.txt"),
                     text("Kept both lines.")], match="Goal: Finish merging subtask", name="integration")
    fake_api.script([bash("cat notes.txt > after.txt"), text("Done.")], match="Goal: Write after.txt", name="after")
    parent = tasks.start("Write notes", "notes", plan=True)
    workers = [start_worker() for _ in range(2)]
    planned(tasks, parent)
    wait_until(lambda: all(rows(tasks, parent)[k]["state"] == "running" for k in ("red", "blue")), 120,
               "red and blue running at once")
    gate.touch()
    done = ended(tasks, parent)
    for worker in workers:
        worker.stop()

    assert done.status == "complete", (done.reason, [w.log[-3000:] for w in workers])
    subs = rows(tasks, parent)
    assert list(subs) == ["red", "blue", "after", subs and list(subs)[3]]
    integration = list(subs.values())[3]
    assert integration["role"] == "integration" and integration["state"] == "done"
    conflicted = next(r for r in subs.values() if r["note"].startswith("merged by integration subtask"))
    said = next(e for e in events(tasks, parent, "subtask") if e.data.get("state") == "conflict")
    assert said.message == (f"Subtask {conflicted['key']} conflicts with the plan's branch in notes.txt: subtask "
                            f"{conflicted['key']}-merge ({integration['task_id']}) resolves it.")
    first, second = [r for r in fake_api.requests if r.script == "integration"][:2]
    assert "conflict markers in notes.txt" in first.first_user_text
    assert second.last_user_text.startswith("1")  # grep counted the markers on its branch
    assert git(repo, "show", f"tars/{parent}:notes.txt") == "# notes\nred\nblue"
    assert git(repo, "show", f"tars/{parent}:after.txt") == "# notes\nred\nblue"  # after waited for the resolution
    # Both subtasks' branches are in the plan's history.
    for key in ("red", "blue"):
        assert subprocess.run(["git", "merge-base", "--is-ancestor", f"tars/{subs[key]['task_id']}",
                               f"tars/{parent}"], cwd=repo).returncode == 0


UNMARK = "sed -i '/^\\(<<<<<<<\\|=======\\|>>>>>>>\\)/d' notes.txt"  # keep both sides of every conflict


def needs_owner(tasks, parent, integration) -> tuple:
    """(the failure event asking the owner to resolve the integration subtask's conflict, its checkout's folder)."""
    told = wait_until(lambda: next((e for e in events(tasks, parent, "subtask") if e.data.get("state") == "failed"
                                    and e.data.get("task_id") == integration), None), 30, "the plan told the failure")
    return told, Job.fetch(integration, connection=tasks.redis).get_meta()["checkout"]["path"]


def test_an_integration_subtask_that_conflicts_again_asks_the_owner_and_goes_on_once_resolved_by_hand(
        tasks, fake_api, start_worker, projects, tmp_path, cli, n8n):
    repo = owner_repo(projects / "notes", {"notes.txt": "# notes\n"})
    script_plan(fake_api, ("red", "Red line", "Add the red line to notes.txt", []),
                ("blue", "Blue line", "Add the blue line to notes.txt", []),
                ("green", "Green line", "Add the green line to notes.txt", []))
    # Three subtasks append to the same line. Red and blue fork together, so the second to merge conflicts; its
    # integration subtask forks, then waits while green (held back until then) merges through an integration of its
    # own: the first integration's merge then meets a newer conflicting one.
    both, green_may_end, late = tmp_path / "red-and-blue", tmp_path / "green-may-end", tmp_path / "merge-late"
    for colour in ("red", "blue"):
        fake_api.script([bash(f"until test -e {both}; do sleep 0.05; done; echo {colour} >> notes.txt"),
                         text(f"Added {colour}.")], match=f"Goal: Add the {colour} line", name=colour)
        fake_api.script([bash(f"until test -e {late}; do sleep 0.05; done; {UNMARK}"), text("Kept both lines."),
                         bash("cat notes.txt"), text("You resolved it; nothing is left to do.")],
                        match=f"Goal: Finish merging subtask {colour} (", name=f"{colour}-merge")
    fake_api.script([bash(f"until test -e {green_may_end}; do sleep 0.05; done; echo green >> notes.txt"),
                     text("Added green.")], match="Goal: Add the green line", name="green")
    fake_api.script([bash(UNMARK), text("Kept both lines.")], match="Goal: Finish merging subtask green (",
                    name="green-merge")
    parent = tasks.start("Write notes", "notes", plan=True)
    workers = [start_worker(N8N_WEBHOOK_URL=n8n.url()) for _ in range(3)]
    planned(tasks, parent)
    # Each waits at its gate in its first command, so each forked from the plan's branch before anything merged
    # (a subtask runs a moment before it forks: green forking after red's merge would merge without a conflict).
    wait_until(lambda: all(fake_api.requests_for(key) for key in ("red", "blue", "green")), 180,
               "red, blue and green at work at once")
    both.touch()
    first = wait_until(lambda: next((r.script for r in fake_api.requests if r.script in ("red-merge", "blue-merge")),
                                    None), 180, "the first conflict's integration subtask at work on its branch")
    green_may_end.touch()
    wait_until(lambda: rows(tasks, parent)["green"]["state"] == "done", 180, "green merged through green-merge")
    late.touch()
    integration = wait_until(lambda: (r := rows(tasks, parent)[first])["state"] == "failed" and r["task_id"], 180,
                             f"{first} to conflict again")

    told, checkout = needs_owner(tasks, parent, integration)
    assert told.message == (
        f"Subtask {first} failed: Its work could not be merged into the plan's branch: it conflicts again, in "
        "notes.txt, with work merged there since it started. It needs you: resolve git's conflict markers in "
        f"notes.txt by hand in its checkout {checkout} (branch tars/{integration}) and commit, then retry it with: "
        f"python main_tars.py task retry {integration} (retried as it is, the model tries again); or cancel the plan.")
    assert "<<<<<<<" in (Path(checkout) / "notes.txt").read_text()  # the plan's branch is merged in, marked
    status = tasks.status(parent)
    assert status.status == "running"
    assert status.progress.startswith(f"Blocked: subtask {first} failed (Its work could not be merged into the plan's "
                                      "branch: it conflicts again, in notes.txt")
    assert [e.message for e in wait_until(lambda: blocked_events(tasks, parent), 30, "blocked")] == [status.progress]
    # The owner is asked where they read: n8n (and so Discord) gets the request as a milestone.
    asked = wait_until(lambda: [b for b in n8n.bodies() if b["task_id"] == parent and b["detail"] == told.message],
                       30, "n8n told")
    assert asked[0]["type"] == "subtask" and asked[0]["milestone"] is True

    (Path(checkout) / "notes.txt").write_text("# notes\nred\nblue\ngreen\n")  # the owner resolves it by hand
    git(checkout, "commit", "-qam", "Keep every colour")
    again = cli("task", "retry", integration)
    assert again.returncode == 0, again.stderr
    assert not tasks.status(parent).progress.startswith("Blocked")
    done = ended(tasks, parent)
    for worker in workers:
        worker.stop()
    assert done.status == "complete", (done.reason, [w.log[-3000:] for w in workers])
    assert git(repo, "show", f"tars/{parent}:notes.txt") == "# notes\nred\nblue\ngreen"
    assert fake_api.requests_for(first)[-1].last_user_text.startswith("# notes\nred\nblue\ngreen")  # saw the fix
    assert [r["state"] for r in rows(tasks, parent).values()] == ["done"] * 5


def test_an_integration_subtask_that_gives_up_asks_the_owner_and_goes_on_once_resolved_by_hand(
        tasks, fake_api, start_worker, projects, tmp_path, cli):
    # The tests fail while a conflict marker is left in notes.txt.
    repo = owner_repo(projects / "notes", {"notes.txt": "# notes\n",
                                           "Makefile": "test:\n\t! grep -q '<<<<<<<' notes.txt\n"})
    script_plan(fake_api, ("red", "Red line", "Add the red line to notes.txt", []),
                ("blue", "Blue line", "Add the blue line to notes.txt", []))
    gate = tmp_path / "both-running"
    for colour in ("red", "blue"):
        fake_api.script([bash(f"until test -e {gate}; do sleep 0.05; done; echo {colour} >> notes.txt"),
                         text(f"Added {colour}.")], match=f"Goal: Add the {colour} line", name=colour)
    # The integration subtask says it is done three times with the markers in place, then ends stuck; its retry
    # finds the owner's resolution.
    fake_api.script([text("I cannot tell which line should win."), text("Still unsure."), text("I give up."),
                     text("The conflict is resolved.")], match="Goal: Finish merging subtask", name="integration")
    parent = tasks.start("Write notes", "notes", plan=True)
    workers = [start_worker() for _ in range(2)]
    planned(tasks, parent)
    wait_until(lambda: all(r["state"] == "running" for r in rows(tasks, parent).values()), 120,
               "red and blue running at once")
    gate.touch()
    row = wait_until(lambda: next((r for r in rows(tasks, parent).values() if r["role"] == "integration"
                                   and r["state"] == "failed"), None), 180, "the integration subtask to give up")

    told, checkout = needs_owner(tasks, parent, row["task_id"])
    merging = row["key"].removesuffix("-merge")
    assert told.message.startswith(f"Subtask {row['key']} failed: The model was stuck: it said it was done 3 times in "
                                   "a row, but `make test` failed the same way each time")
    assert told.message.endswith(
        f"It needs you: resolve subtask {merging}'s conflicts with the plan's branch by hand in its checkout "
        f"{checkout} (branch tars/{row['task_id']}) and commit, then retry it with: python main_tars.py task retry "
        f"{row['task_id']} (retried as it is, the model tries again); or cancel the plan.")
    assert tasks.status(parent).progress.startswith(f"Blocked: subtask {row['key']} failed (The model was stuck")

    (Path(checkout) / "notes.txt").write_text("# notes\nred\nblue\n")  # the owner resolves it by hand
    git(checkout, "commit", "-qam", "Keep both lines")
    assert tasks.retry(row["task_id"]) == row["task_id"]
    done = ended(tasks, parent)
    for worker in workers:
        worker.stop()
    assert done.status == "complete", (done.reason, [w.log[-3000:] for w in workers])
    assert done.reason == f"All 3 subtasks are merged into tars/{parent}; `make test` passes on it."  # with it
    assert git(repo, "show", f"tars/{parent}:notes.txt") == "# notes\nred\nblue"
    assert len(fake_api.requests_for("integration")) == 4


def test_a_failed_subtask_blocks_only_its_dependents_and_a_retry_continues_the_plan(tasks, fake_api, start_worker,
                                                                                   projects, cli):
    repo = owner_repo(projects / "shop", {"README.md": "# shop\n"})
    script_plan(fake_api, ("store", "Store", "Write store.py", []), ("api", "API", "Write api.py", ["store"]),
                ("cli", "CLI", "Write cli.py", []))
    # store's first model call is refused (a 400 is not retried): it fails; its retry continues the script.
    fake_api.script([error(400, message="bad request"),
                     edit(command="create", path="store.py", file_text="STORE = 1\n"), text("Wrote store.")],
                    match="Goal: Write store.py", name="store")
    for key in ("api", "cli"):
        fake_api.script([edit(command="create", path=f"{key}.py", file_text=f"{key.upper()} = 1\n"),
                         text(f"Wrote {key}.")], match=f"Goal: Write {key}.py", name=key)
    parent = tasks.start("Build a shop", "shop", plan=True)
    workers = [start_worker() for _ in range(2)]
    planned(tasks, parent)
    wait_until(lambda: (r := rows(tasks, parent))["store"]["state"] == "failed" and r["cli"]["state"] == "done",
               120, "store failed and cli merged")
    store_id = rows(tasks, parent)["store"]["task_id"]
    status = tasks.status(parent)
    assert status.status == "running"  # it waits for the owner: retry store, or cancel the plan
    # Nothing else can go on: every surface (task status, the voice, the dashboard, Discord) says so, and how to go on.
    assert status.progress.startswith("Blocked: subtask store failed (The Anthropic API refused the request")
    assert status.progress.endswith(f"). Retry it with: python main_tars.py task retry {store_id}, or cancel the "
                                    "plan.")
    assert plans.plan_summary(status.plan) == "1 of 3 subtasks done, 1 failed, 1 blocked by store"
    api = rows(tasks, parent)["api"]
    assert api["status"] == "queued" and api["branch"] is None  # never started
    assert api["note"].startswith("blocked: waiting on store, which failed: The Anthropic API refused the request")
    told = wait_until(lambda: next((e for e in events(tasks, parent, "subtask") if e.data.get("state") == "failed"),
                                   None), 30, "the plan told of the failure")
    assert told.message.endswith(f"retry it with: python main_tars.py task retry {store_id}")
    blocked = wait_until(lambda: blocked_events(tasks, parent), 30, "the plan told it is blocked")
    assert [e.message for e in blocked] == [status.progress]
    assert "Blocked: subtask store failed" in cli("task", "status", parent).stdout

    again = cli("task", "retry", store_id)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"{store_id} (subtask of {parent}, queued again on its own branch)"
    assert not tasks.status(parent).progress.startswith("Blocked")  # store is queued: the plan goes on
    done = ended(tasks, parent)
    for worker in workers:
        worker.stop()
    assert done.status == "complete", done.reason
    assert len(blocked_events(tasks, parent)) == 1  # told once
    assert [r["state"] for r in rows(tasks, parent).values()] == ["done", "done", "done"]
    assert tasks.status(store_id).branch == f"tars/{store_id}"  # the same task, on its own branch
    assert git(repo, "ls-tree", "--name-only", f"tars/{parent}").split() == ["README.md", "api.py", "cli.py",
                                                                             "store.py"]


def test_cancelling_the_plan_cancels_every_subtask(tasks, fake_api, start_worker, projects, tmp_path):
    owner_repo(projects / "slow", {"README.md": "# slow\n"})
    script_plan(fake_api, ("one", "One", "Run the first long job", []), ("two", "Two", "Run the second long job", []),
                ("three", "Three", "Use both results", ["one", "two"]))
    never = tmp_path / "never"
    for key in ("first", "second"):
        fake_api.script([bash(f"until test -e {never}; do sleep 0.05; done"), text("Done.")],
                        match=f"Goal: Run the {key} long job", name=key)
    fake_api.script([text("Done.")], match="Goal: Use both results", name="three")
    parent = tasks.start("Run two long jobs", "slow", plan=True)
    workers = [start_worker() for _ in range(2)]
    planned(tasks, parent)
    wait_until(lambda: [r["state"] for r in rows(tasks, parent).values()] == ["running", "running", "waiting"],
               120, "both long subtasks running")
    asked = time.monotonic()
    cancelled = tasks.cancel(parent)
    took = time.monotonic() - asked
    assert cancelled.status == "cancelled"
    assert [r["status"] for r in rows(tasks, parent).values()] == ["cancelled", "cancelled", "cancelled"]
    assert took < 30
    # Nothing more can start: RQ has the third subtask and the finishing job cancelled, not deferred.
    third = rows(tasks, parent)["three"]["task_id"]
    for job_id in (third, f"{parent}-finish"):
        assert Job.fetch(job_id, connection=tasks.redis).get_status() == "canceled"
    assert [r for r in fake_api.requests if r.script == "three"] == []
    for worker in workers:
        worker.stop()
    assert events(tasks, parent)[-1].type == "cancelled"


def test_a_red_merged_branch_gets_one_fix_up_subtask(tasks, fake_api, start_worker, projects):
    # The tests want ok.txt once both a.txt and b.txt exist: each subtask alone is green, the merge is red.
    repo = owner_repo(projects / "make", {"Makefile": "test:\n\ttest ! -e a.txt -o ! -e b.txt -o -e ok.txt\n"})
    script_plan(fake_api, ("a", "A", "Write a.txt", []), ("b", "B", "Write b.txt", []))
    for key in ("a", "b"):
        fake_api.script([bash(f"echo {key} > {key}.txt"), text(f"Wrote {key}.")], match=f"Goal: Write {key}.txt",
                        name=key)
    fake_api.script([bash("echo ok > ok.txt"), text("Added ok.txt.")], match="Goal: Every subtask of the plan",
                    name="fix-up")
    parent = tasks.start("Write a and b", "make", plan=True)
    workers = [start_worker() for _ in range(2)]
    done = ended(tasks, parent)
    for worker in workers:
        worker.stop()
    assert done.status == "complete", done.reason
    assert done.reason == f"All 2 subtasks are merged into tars/{parent}; `make test` passes on it."
    fixup = rows(tasks, parent)["fix-up"]
    assert fixup["role"] == "fix-up" and fixup["state"] == "done"
    phases = [e.message for e in events(tasks, parent, "phase")]
    assert phases == ["Every subtask is merged: testing the merged branch",
                      f"The merged branch fails `make test`: subtask fix-up ({fixup['task_id']}) fixes it.",
                      "Every subtask is merged: testing the merged branch"]
    assert git(repo, "show", f"tars/{parent}:ok.txt") == "ok"
    assert "`make test` now fails on the merged branch" in [r for r in fake_api.requests
                                                             if r.script == "fix-up"][0].first_user_text
    assert done.result["git"]["tests_passed"] is True


def test_a_dead_workers_subtask_fails_like_any_task_and_its_retry_finishes_the_plan(tasks, fake_api, start_worker,
                                                                                    projects):
    repo = owner_repo(projects / "crash", {"README.md": "# crash\n"})
    script_plan(fake_api, ("build", "Build", "Write build.txt", []), ("ship", "Ship", "Write ship.txt", ["build"]))
    fake_api.script([bash("sleep 60"), edit(command="create", path="build.txt", file_text="built\n"),
                     text("Built.")], match="Goal: Write build.txt", name="build")
    fake_api.script([bash("cat build.txt > ship.txt"), text("Shipped.")], match="Goal: Write ship.txt", name="ship")
    parent = tasks.start("Build and ship", "crash", plan=True)
    doomed = start_worker()
    build = planned(tasks, parent)["build"]["task_id"]
    wait_until(lambda: tasks.status(build).progress.startswith("Running: sleep 60"), 120, "build running")
    survivor = start_worker()
    os.kill(doomed.process.pid, signal.SIGKILL)
    failed = wait_until(lambda: (s := tasks.status(build)).status == "failed" and s, 60, "build failed")
    assert "worker process running this task died" in failed.reason
    assert rows(tasks, parent)["ship"]["note"].startswith("blocked: waiting on build, which failed: The worker")
    wait_until(lambda: tasks.settled(build), 90, "RQ to record the end (the reaper, if the horse could not)")
    assert tasks.retry(build) == build
    done = ended(tasks, parent)
    survivor.stop()
    assert done.status == "complete", done.reason
    assert git(repo, "show", f"tars/{parent}:ship.txt") == "built"


def finishing_horse(tasks, finisher, before=None, timeout=150) -> int:
    """The work-horse running the plan's finishing job (another than `before`) once its test command runs."""
    def horse():
        pid = Job.fetch(finisher, connection=tasks.redis).get_meta(refresh=True).get("horse_pid")
        return pid if pid and pid != before and any("make" in " ".join(child.cmdline()) for child in
                                                    psutil.Process(pid).children(recursive=True)) else None
    return wait_until(horse, timeout, f"the finishing job {finisher} testing the merged branch",
                      ignore=(psutil.Error, NoSuchJobError))  # not queued before the plan is


def crash(worker, horse) -> None:
    """A worker dies with everything its work-horse runs, at once (a machine's crash, the OOM killer)."""
    doomed = psutil.Process(horse).children(recursive=True)
    os.kill(worker.process.pid, signal.SIGKILL)
    os.killpg(horse, signal.SIGKILL)
    for process in doomed:  # the test command runs in a session of its own
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def test_a_worker_dying_while_the_merged_branch_is_tested_tests_it_again_and_a_retry_after_a_second_death(
        tasks, fake_api, start_worker, projects, tmp_path, cli):
    # A subtask's own test run passes at once; on the plan's branch, whose tip is a merge, the tests wait at the gate:
    # the finishing job is testing it when its workers die.
    gate = tmp_path / "tests-may-end"
    owner_repo(projects / "gated", {"Makefile": "test:\n\tgit log -1 --format=%s | grep -q 'merge subtask' || exit 0; "
                                                f"until test -e {gate}; do sleep 0.05; done\n"})
    script_plan(fake_api, ("a", "A", "Write a.txt", []), ("b", "B", "Write b.txt", []))
    for key in ("a", "b"):
        fake_api.script([bash(f"echo {key} > {key}.txt"), text(f"Wrote {key}.")], match=f"Goal: Write {key}.txt",
                        name=key)
    parent = tasks.start("Write a and b", "gated", plan=True)
    first = start_worker()
    first_horse = finishing_horse(tasks, f"{parent}-finish")
    second = start_worker()  # idle: the reaper runs in it
    crash(first, first_horse)

    again = wait_until(lambda: [e for e in events(tasks, parent, "phase") if "died" in e.message], 150,
                       "the plan told its tests run again")
    assert [e.message for e in again] == ["The worker testing the merged branch died; testing it again."]
    second_horse = finishing_horse(tasks, f"{parent}-finish", before=first_horse)
    assert tasks.status(parent).status == "running"
    third = start_worker()
    crash(second, second_horse)

    failed = ended(tasks, parent, timeout=150)
    assert failed.status == "failed"
    assert failed.reason.startswith("The workers testing the merged branch died 2 times (the last, ")
    assert failed.reason.endswith(f"every subtask is merged into tars/{parent}. Test it again with: "
                                  f"python main_tars.py task retry {parent}")
    assert wait_until(lambda: events(tasks, parent)[-1].type == "error", 30, "the ending on the timeline")
    assert len([e for e in events(tasks, parent, "phase") if "died" in e.message]) == 1  # ran again once only

    gate.touch()
    # Two retries at the same moment (the phone and the dashboard, say): the merged branch is tested again once,
    # and the other retry is refused with the reason.
    tasks.redis.set(keys.task_retrying(parent), 1)  # as when another retry is queueing it this very moment
    with pytest.raises(TaskNotActive, match=f"Task {parent} is being retried already."):
        tasks.retry(parent)
    tasks.redis.delete(keys.task_retrying(parent))
    answers, go = [], threading.Barrier(2)

    def retry():
        go.wait()
        try:
            answers.append(tasks.retry(parent))
        except TaskNotActive as exc:
            answers.append(str(exc))

    both = [threading.Thread(target=retry) for _ in range(2)]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join(60)
    assert len(answers) == 2 and answers.count(parent) == 1, answers
    assert any(a.startswith(f"Task {parent} is") and "retried" in a for a in answers), answers
    done = ended(tasks, parent)
    third.stop()
    assert done.status == "complete", (done.reason, third.log[-3000:])
    assert done.reason == f"All 2 subtasks are merged into tars/{parent}; `make test` passes on it."
    assert tasks.plan_record(parent)["finisher"] == f"{parent}-finish-2"
    assert "Testing the merged branch again (retry): every subtask is merged." in [
        e.message for e in events(tasks, parent, "phase")]
    assert [r.script for r in fake_api.requests].count("a") == 2  # no subtask ran again


def test_a_subtasks_confirmation_request_names_its_plan(tasks, fake_api, start_worker, projects):
    owner_repo(projects / "ask", {"old.txt": "old\n"})
    script_plan(fake_api, ("clean", "Clean up", "Remove old.txt", []))
    fake_api.script([bash("rm old.txt"), text("Removed.")], match="Goal: Remove old.txt", name="clean")
    parent = tasks.start("Tidy the project", "ask", plan=True)
    worker = start_worker()
    clean = planned(tasks, parent)["clean"]["task_id"]
    asked = wait_until(lambda: events(tasks, clean, "confirmation_required"), 120, "the request")[0]
    assert asked.message == f"Needs your confirmation code to run (subtask clean of task {parent}): rm old.txt"
    assert asked.data["parent"] == parent
    assert tasks.awaiting_code() == [clean]
    tasks.confirm(clean, TEST_CODE)
    done = ended(tasks, parent)
    worker.stop()
    assert done.status == "complete", done.reason


def test_a_subtask_forks_its_branch_only_while_no_merge_holds_the_plan(tasks, fake_api, start_worker, projects,
                                                                       redis_client):
    """The fork copies the plan's branch into the owner's repository, which a sibling's merge moves: it takes the
    plan's lock first (without it, a fork racing a merge failed with git's 'cannot lock ref')."""
    owner_repo(projects / "notes", {"README.md": "# notes\n"})
    script_plan(fake_api, ("a", "A", "Write a.py", []))
    fake_api.script([edit(command="create", path="a.py", file_text="A = 1\n"), text("Wrote a.py.")],
                    match="Goal: Write a.py", name="a")
    parent = tasks.start("Write the notes app", "notes", plan=True)
    merge = redis_client.lock(keys.task_plan_lock(parent), timeout=300)  # a merge holding the plan's lock
    assert merge.acquire(blocking=False)
    worker = start_worker()
    sub = planned(tasks, parent)["a"]["task_id"]
    wait_until(lambda: Job.fetch(sub, connection=redis_client).get_status() == "started", 120, "the subtask to start")
    assert "checkout" not in Job.fetch(sub, connection=redis_client).get_meta()  # it waits for the lock
    released = time.time()
    merge.release()
    done = ended(tasks, parent)
    worker.stop()
    assert done.status == "complete", done.reason
    assert min(r.received_at for r in fake_api.requests_for("a")) >= released


# --- PLAN_APPROVAL=on: the owner approves the plan with the confirmation code before any subtask starts -----------

def awaiting_approval(tasks, parent, timeout=120):
    """The planned task once its plan waits for the owner's code and the planning job has ended (after which RQ
    would have started subtasks that wait on nothing else)."""
    return wait_until(lambda: (s := tasks.status(parent)).status == "awaiting_confirmation" and s.plan
                      and Job.fetch(parent, connection=tasks.redis).get_status() == "finished" and s, timeout,
                      f"task {parent}'s plan to wait for approval")


def subtask_requests(fake_api):
    return [r for r in fake_api.requests if r.script in ("store", "api")]


def test_with_plan_approval_no_subtask_starts_before_the_owners_code(tasks, fake_api, start_worker, projects):
    owner_repo(projects / "todo", {"README.md": "# todo\n"})
    script_small_plan(fake_api)
    parent = tasks.start("Build a todo app", "todo", plan=True)
    workers = [start_worker(PLAN_APPROVAL="on") for _ in range(2)]

    waiting = awaiting_approval(tasks, parent)
    sentence = "Plan of 2 subtasks: store (SQLite store); api (REST API, after store)"
    assert waiting.confirmation_command == f"the plan: {sentence}"
    assert tasks.awaiting_code() == [parent]  # a bare code in Discord or on the phone finds it
    asked = events(tasks, parent, "confirmation_required")[0]  # what Discord, the voice and the dashboard show
    assert asked.message == f"Needs your confirmation code to start the plan: {sentence}"
    assert [s["key"] for s in asked.data["subtasks"]] == ["store", "api"] and asked.data["request_id"]
    subs = rows(tasks, parent)
    assert {Job.fetch(r["task_id"], connection=tasks.redis).get_status() for r in subs.values()} == {"deferred"}
    assert subtask_requests(fake_api) == []

    with pytest.raises(CodeRejected) as wrong:
        tasks.confirm(parent, "0000")
    assert wrong.value.attempts_left == 4
    assert tasks.status(parent).status == "awaiting_confirmation"
    assert Job.fetch(subs["store"]["task_id"], connection=tasks.redis).get_status() == "deferred"

    tasks.confirm(parent, TEST_CODE)
    done = ended(tasks, parent)
    for worker in workers:
        worker.stop()
    assert done.status == "complete", (done.reason, [w.log[-3000:] for w in workers])
    assert [r.script for r in subtask_requests(fake_api)] == ["store", "store", "api", "api"]
    approved = events(tasks, parent, "confirmation_received")[0]
    assert approved.message == "Plan approved: its subtasks start."
    assert events(tasks, subs["store"]["task_id"], "started")[0].at > approved.at
    assert tasks.awaiting_code() == []


def test_cancelling_a_plan_that_waits_for_approval_cancels_everything(tasks, fake_api, start_worker, projects):
    owner_repo(projects / "todo", {"README.md": "# todo\n"})
    script_small_plan(fake_api)
    parent = tasks.start("Build a todo app", "todo", plan=True)
    worker = start_worker(PLAN_APPROVAL="on")
    subs = awaiting_approval(tasks, parent).plan

    cancelled = tasks.cancel(parent)
    worker.stop()
    assert cancelled.status == "cancelled" and cancelled.reason == "The task was cancelled."
    assert [r["status"] for r in rows(tasks, parent).values()] == ["cancelled", "cancelled"]
    for job_id in [r["task_id"] for r in subs] + [f"{parent}-approve", f"{parent}-finish"]:
        assert Job.fetch(job_id, connection=tasks.redis).get_status() == "canceled", job_id
    assert tasks.redis.exists(keys.task_confirmation_request(parent)) == 0
    assert tasks.awaiting_code() == [] and subtask_requests(fake_api) == []
    assert events(tasks, parent)[-1].type == "cancelled"


def test_a_plan_not_approved_in_time_ends_cancelled_and_says_why(tasks, fake_api, start_worker, projects):
    owner_repo(projects / "todo", {"README.md": "# todo\n"})
    script_small_plan(fake_api)
    parent = tasks.start("Build a todo app", "todo", plan=True)
    worker = start_worker(PLAN_APPROVAL="on", CONFIRMATION_TIMEOUT_SECONDS="2")
    awaiting_approval(tasks, parent)

    done = ended(tasks, parent, timeout=120)  # the worker holding the reaper lease ends it
    assert done.status == "cancelled"
    assert done.reason == "The plan was not approved: no confirmation code came within 2 seconds."
    # The status is stored a moment before the ending event: wait for the timeline to say it too.
    wait_until(lambda: events(tasks, parent)[-1].message == done.reason, 30, "the ending on the timeline")
    assert [r["status"] for r in rows(tasks, parent).values()] == ["cancelled", "cancelled"]
    with pytest.raises(TaskNotActive):  # a code now is too late
        tasks.confirm(parent, TEST_CODE)
    worker.stop()
    assert subtask_requests(fake_api) == []


def test_the_http_api_approves_a_plan_as_it_answers_any_request(tasks, fake_api, start_worker, projects,
                                                                 tars_server):
    owner_repo(projects / "todo", {"README.md": "# todo\n"})
    script_small_plan(fake_api)
    parent = tasks.start("Build a todo app", "todo", plan=True)
    workers = [start_worker(PLAN_APPROVAL="on") for _ in range(2)]
    awaiting_approval(tasks, parent)

    answer = httpx.post(f"{tars_server.url}/webhook/background-confirmation", json={"task_id": parent,
                        "code": TEST_CODE}, headers={"X-TARS-Webhook-Secret": TEST_WEBHOOK_SECRET}, timeout=20)
    assert answer.status_code == 200, answer.text
    done = ended(tasks, parent)
    for worker in workers:
        worker.stop()
    assert done.status == "complete", (done.reason, [w.log[-3000:] for w in workers])
    assert {r.script for r in subtask_requests(fake_api)} == {"store", "api"}
