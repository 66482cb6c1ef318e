"""The dashboard in a real headless browser (Debian's chromium, driven by Playwright), as its owner uses it.

Everything behind the page is real: `python main_tars.py serve` as a process, a worker process, the test's own
Redis, and the fake Anthropic API scripted per task. The story: log in (a wrong password first), start a task
from the form, watch its events arrive live on the task page, answer its confirmation from the page, cancel a
second task, check the pages at phone size, log out. The run takes screenshots of the task page (desktop and
phone) and checks them; only with UPDATE_SCREENSHOTS=1 do they overwrite the README's docs/images/dashboard.png and
docs/images/dashboard-phone.png (tracked files: a plain test run leaves them alone).
"""

from __future__ import annotations

import re
import time
from datetime import datetime

import pytest
from playwright.sync_api import Page, expect

from core import budget, history, schedules
from tests.browser.conftest import DASHBOARD_PASSWORD, DashboardServer, check_png
from tests.core.test_pause import running_its_gate
from tests.core.test_report import DAY, summary
from tests.conftest import TEST_CODE
from tests.core.test_plan_jobs import script_small_plan
from tests.fakes.anthropic_api import bash, delay, edit, text
from tests.test_task_branches import owner_repo
from tests.waiting import wait_until

# the chromium install (first run on a fresh machine) happens in this test's setup, and the story is long
pytestmark = pytest.mark.timeout(600)

DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}

# Records, in the page itself, each event type the first time it appears in the timeline after this runs: what
# the page shows by itself (SSE), without the test reloading. window.__tarsPage survives only without a reload.
WATCH_TIMELINE = """() => {
  window.__tarsPage = true;
  const types = () => [...document.querySelectorAll('[data-testid=timeline-event]')].map(e => e.dataset.type);
  const known = new Set(types());
  window.__tarsBefore = [...known];
  window.__tarsLive = [];
  new MutationObserver(() => {
    for (const type of types()) if (!known.has(type)) { known.add(type); window.__tarsLive.push(type); }
  }).observe(document.documentElement, {childList: true, subtree: true, attributes: true,
                                        attributeFilter: ['data-type']});
}"""


def event(page: Page, kind: str):
    return page.locator(f'[data-testid="timeline-event"][data-type="{kind}"]')


def timeline_types(page: Page) -> list[str]:
    return page.locator('[data-testid="timeline-event"]').evaluate_all("els => els.map(e => e.dataset.type)")


def in_order(types: list[str], *wanted: str) -> bool:
    """The first occurrences of `wanted` in `types` come in that order."""
    firsts = [types.index(kind) for kind in wanted if kind in types]
    return len(firsts) == len(wanted) and firsts == sorted(firsts)


def nonzero_number(value: str) -> bool:
    return any(float(n.replace(",", "")) > 0 for n in re.findall(r"\d[\d,]*(?:\.\d+)?", value))


def no_horizontal_scroll(page: Page, width: int) -> tuple[bool, int]:
    scroll = page.evaluate("document.scrollingElement.scrollWidth")
    return scroll <= width, scroll


def choose_project(page: Page, project: str) -> None:
    field = page.get_by_test_id("new-task-project")
    if field.evaluate("e => e.tagName") == "SELECT":
        field.select_option(project)
    else:
        field.fill(project)


def start_task(page: Page, goal: str, project: str, previous: set[str]) -> str:
    """Fill the list page's form and submit it; the page goes to the new task's page. Returns its id."""
    page.get_by_test_id("new-task-goal").fill(goal)
    choose_project(page, project)
    page.get_by_test_id("new-task-submit").click()
    not_before = "".join(f"(?!{re.escape(p)}$)" for p in previous)
    expect(page).to_have_url(re.compile(rf"#/task/{not_before}[^/]+$"))
    task_id = page.url.rsplit("#/task/", 1)[1]
    expect(page.get_by_test_id("task-page")).to_have_attribute("data-task-id", task_id)
    expect(page.get_by_test_id("task-goal")).to_contain_text(goal)
    return task_id


def test_owner_logs_in_answers_a_confirmation_cancels_a_task_and_it_fits_a_phone(
        dashboard, start_worker, fake_api, tasks, projects, images, new_page):
    fake_api.script([delay(5, edit(command="create", path="notes.md", file_text="# Notes\n\nTidied.\n")),
                     bash("rm -f old.txt"), text("Done.")], match="Tidy the notes", name="tidy")
    fake_api.script([bash("sleep 30"), text("never")], match="long job", name="long")
    (projects / "cleanup").mkdir()
    (projects / "cleanup" / "old.txt").write_text("stale\n")
    worker = start_worker()

    # 1. log in: a wrong password is refused on the page, the right one shows the task list
    page = new_page(**DESKTOP)
    page.goto(dashboard.url + "/")
    page.get_by_test_id("login-password").fill("not-the-password")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_be_visible()
    expect(page.get_by_test_id("task-list")).to_have_count(0)
    page.get_by_test_id("login-password").fill(DASHBOARD_PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("task-list")).to_be_visible()
    expect(page.get_by_test_id("login-error")).to_have_count(0)
    expect(page.get_by_test_id("workers-panel")).to_be_visible()
    expect(page.get_by_test_id("queue-length")).to_be_visible()
    expect(page.get_by_test_id("task-row")).to_have_count(0)
    assert worker.process.poll() is None, worker.log

    # 2. start a task from the form; its events arrive live on its page, in order, up to the confirmation
    tidy = start_task(page, "Tidy the notes and delete the stale file", "cleanup", set())
    page.evaluate(WATCH_TIMELINE)
    expect(event(page, "started")).to_have_count(1)
    expect(event(page, "confirmation_required")).to_have_count(1, timeout=60_000)
    assert in_order(timeline_types(page), "started", "file_edit", "confirmation_required"), timeline_types(page)
    panel = page.get_by_test_id("confirm-panel")
    expect(panel).to_be_visible()
    expect(page.get_by_test_id("confirm-command")).to_contain_text("rm -f old.txt")
    expect(page.get_by_test_id("confirm-reason")).to_have_text(re.compile(r"\w"))
    assert (projects / "cleanup" / "old.txt").exists()  # nothing ran without the code
    assert tasks.status(tidy).status == "awaiting_confirmation"

    # answer it from the page: the task goes on and completes, live
    page.get_by_test_id("confirm-code").fill(TEST_CODE)
    page.get_by_test_id("confirm-submit").click()
    expect(page.get_by_test_id("confirm-result")).to_have_text(re.compile(r"\w"))
    expect(event(page, "confirmation_received")).to_have_count(1)
    expect(event(page, "complete")).to_have_count(1)
    expect(panel).to_be_hidden()
    expect(page.get_by_test_id("task-page").get_by_test_id("task-status")).to_have_text("complete")
    types = timeline_types(page)
    assert in_order(types, "started", "file_edit", "confirmation_required", "confirmation_received",
                    "complete"), types
    live = page.evaluate("window.__tarsLive")
    assert in_order(live, "file_edit", "confirmation_required", "confirmation_received", "complete"), (
        f"events shown without a reload: {live}; already there when the page opened: "
        f"{page.evaluate('window.__tarsBefore')}")
    assert page.evaluate("window.__tarsPage") is True  # the page was never reloaded
    for testid in ("task-files", "task-tokens", "task-cost"):
        expect(page.get_by_test_id(testid)).to_be_visible()
    expect(page.get_by_test_id("task-files")).to_contain_text("notes.md")
    tokens, cost = page.get_by_test_id("task-tokens").inner_text(), page.get_by_test_id("task-cost").inner_text()
    assert nonzero_number(tokens) and nonzero_number(cost), (tokens, cost)
    assert not (projects / "cleanup" / "old.txt").exists()
    assert (projects / "cleanup" / "notes.md").read_text() == "# Notes\n\nTidied.\n"
    assert tasks.status(tidy).status == "complete"

    # the list shows it complete
    page.get_by_test_id("back-link").click()
    row = page.locator(f'[data-testid="task-row"][data-task-id="{tidy}"]')
    expect(row.get_by_test_id("task-status")).to_have_text("complete")

    # 3. start a long task and cancel it from its page; Retry appears
    long_job = start_task(page, "Run the long job", "long", {tidy})
    expect(page.get_by_test_id("task-progress")).to_contain_text("sleep 30")
    expect(event(page, "command")).to_have_count(1)
    page.get_by_test_id("cancel-button").click()
    expect(event(page, "cancelled")).to_have_count(1)
    expect(page.get_by_test_id("task-page").get_by_test_id("task-status")).to_have_text("cancelled")
    expect(page.get_by_test_id("retry-button")).to_be_visible()
    expect(page.get_by_test_id("cancel-button")).to_be_hidden()
    assert tasks.status(long_job).status == "cancelled"
    page.get_by_test_id("back-link").click()
    row = page.locator(f'[data-testid="task-row"][data-task-id="{long_job}"]')
    expect(row.get_by_test_id("task-status")).to_have_text("cancelled")
    expect(page.get_by_test_id("task-row")).to_have_count(2)

    # the screenshot of the README: the completed task's page at desktop size, its whole timeline
    page.goto(f"{dashboard.url}/#/task/{tidy}")
    expect(event(page, "complete")).to_have_count(1)
    expect(page.get_by_test_id("task-page").get_by_test_id("task-status")).to_have_text("complete")
    page.screenshot(path=images / "dashboard.png", full_page=True)
    check_png(images / "dashboard.png", (1280, 800), (1280, 20_000))  # full page: the viewport's width, taller

    # its Branch panel (a plain folder: checkpoints in a shadow repository) rolls it back to before the task
    expect(page.get_by_test_id("branch-panel")).to_be_visible()
    expect(page.get_by_test_id("checkpoint-row")).to_have_count(2)
    expect(page.get_by_test_id("branch-diffstat")).to_contain_text("notes.md")
    page.get_by_test_id("rollback-select").select_option("0")
    page.get_by_test_id("rollback-button").click()
    expect(page.get_by_test_id("branch-result")).to_contain_text("rolled back to before it started")
    wait_until(lambda: (projects / "cleanup" / "old.txt").exists(), 10, "old.txt back on disk")
    assert not (projects / "cleanup" / "notes.md").exists()
    assert (projects / "cleanup" / "old.txt").read_text() == "stale\n"

    # 4. at phone size (390 x 844, same session) neither the list nor a task page scrolls sideways
    phone = new_page(storage_state=page.context.storage_state(), **PHONE)
    phone.goto(dashboard.url + "/")
    expect(phone.get_by_test_id("task-row")).to_have_count(2)
    fits, width = no_horizontal_scroll(phone, 390)
    assert fits, f"the task list is {width} px wide on a 390 px phone"
    for task_id, last in ((long_job, "cancelled"), (tidy, "complete")):
        phone.goto(f"{dashboard.url}/#/task/{task_id}")
        expect(phone.get_by_test_id("task-page")).to_have_attribute("data-task-id", task_id)
        expect(event(phone, last)).to_have_count(1)
        fits, width = no_horizontal_scroll(phone, 390)
        assert fits, f"the task page of a {last} task is {width} px wide on a 390 px phone"
    # the completed task, rolled back above: its status and Branch panel say so (the panel loads after the page)
    expect(phone.get_by_test_id("branch-panel")).to_contain_text("Nothing changed in place: no checkpoints.")
    expect(phone.get_by_test_id("task-page")).to_contain_text("(0 checkpoints)")
    phone.screenshot(path=images / "dashboard-phone.png")
    check_png(images / "dashboard-phone.png", (780, 1688), (780, 1688))  # 390 x 844 at device scale 2

    # 5. log out: the login form again, also after a reload
    page.get_by_test_id("logout-button").click()
    expect(page.get_by_test_id("login-password")).to_be_visible()
    page.reload()
    expect(page.get_by_test_id("login-password")).to_be_visible()
    expect(page.get_by_test_id("task-list")).to_have_count(0)

    assert page.js_errors == [] and phone.js_errors == [], page.js_errors + phone.js_errors
    assert worker.process.poll() is None, worker.log


@pytest.mark.usefixtures("private_git")
def test_owner_plans_a_goal_from_the_form_and_watches_its_plan_tree_live(tars_env, tmp_path, start_worker, fake_api,
                                                                         tasks, projects, images, new_page):
    dashboard = DashboardServer({**tars_env, "PLAN_GOALS": "ask"}, tmp_path / "planning-server.log")
    try:
        owner_repo(projects / "todo", {"README.md": "# todo\n"})
        gate = tmp_path / "store-may-finish"
        script_small_plan(fake_api, hold=gate)
        page = new_page(**DESKTOP)
        page.goto(dashboard.url + "/")
        page.get_by_test_id("login-password").fill(DASHBOARD_PASSWORD)
        page.get_by_test_id("login-submit").click()
        page.get_by_test_id("new-task-plan").check()
        parent = start_task(page, "Build a todo app with a store and an API", "todo", set())
        assert tasks.status(parent).plan is None  # no worker yet: not planned, no plan shown
        expect(page.get_by_test_id("plan-panel")).to_be_hidden()
        worker = start_worker()

        # the plan appears by itself, as an indented tree whose rows follow the subtasks live
        rows = page.get_by_test_id("plan-row")
        expect(rows).to_have_count(2)
        expect(page.get_by_test_id("plan-summary")).to_have_text("0 of 2 subtasks done, 1 running, 1 waiting on store")
        store, api = rows.nth(0), rows.nth(1)
        expect(store).to_have_attribute("data-state", "running")
        expect(store).to_contain_text("SQLite store")
        expect(api).to_have_attribute("data-state", "waiting")
        expect(api.get_by_test_id("plan-row-note")).to_have_text("waiting on store")
        assert "depth-1" in api.get_attribute("class") and "depth-0" in store.get_attribute("class")
        store_id = tasks.status(parent).plan[0]["task_id"]
        expect(store).to_contain_text(f"tars/{store_id}")
        shot = images / "dashboard-plan.png"
        page.screenshot(path=str(shot), full_page=True)
        check_png(shot, (1280, 700), (1280, 6000))
        gate.touch()
        expect(page.get_by_test_id("task-page").get_by_test_id("task-status")).to_have_text("complete",
                                                                                           timeout=180_000)
        expect(page.get_by_test_id("plan-summary")).to_have_text("2 of 2 subtasks done")
        expect(rows.nth(1)).to_have_attribute("data-state", "done")

        # a subtask's page names its plan; the list shows the subtasks under it
        rows.nth(0).get_by_role("link").click()
        expect(page.get_by_test_id("parent-link")).to_have_text(f"task #{parent}")
        page.get_by_test_id("back-link").click()
        listed = page.get_by_test_id("task-row")
        expect(listed).to_have_count(3)
        assert [listed.nth(i).get_attribute("data-task-id") for i in range(3)] == [
            parent, store_id, tasks.status(parent).plan[1]["task_id"]]
        assert [listed.nth(i).get_attribute("data-parent") for i in range(3)] == [None, parent, parent]
        assert not page.js_errors, page.js_errors
        worker.stop()
    finally:
        dashboard.stop()


def test_owner_starts_an_urgent_task_from_the_form_and_sees_the_one_scheduled_for_tonight(dashboard, tasks, projects,
                                                                                          new_page):
    tonight = tasks.start("Run the nightly migration", at=schedules.parse_at("02:00"))
    for size, width in ((PHONE, 390), (DESKTOP, 1280)):
        page = new_page(**size)
        page.goto(dashboard.url + "/")
        page.get_by_test_id("login-password").fill(DASHBOARD_PASSWORD)
        page.get_by_test_id("login-submit").click()
        priority = page.get_by_test_id("new-task-priority")
        expect(priority).to_be_visible()
        expect(priority).to_have_value("normal")  # the default: the form starts tasks as before
        assert priority.locator("option").all_inner_texts() == ["high", "normal", "low"]
        scheduled = page.locator(f'[data-testid=task-row][data-task-id="{tonight}"]')
        expect(scheduled.get_by_test_id("task-status")).to_have_text("scheduled")
        expect(scheduled).to_contain_text("Scheduled to start ")
        fits, scroll = no_horizontal_scroll(page, width)
        assert fits, f"the list page scrolls sideways at {width} px: {scroll} px wide"

    priority.select_option("high")
    urgent = start_task(page, "Fix the outage now", "hotfix", {tonight})
    expect(page.get_by_test_id("task-priority")).to_have_text("high")
    assert tasks.status(urgent).priority == "high"
    page.get_by_test_id("back-link").click()
    expect(page.locator(f'[data-testid=task-row][data-task-id="{urgent}"]')).to_contain_text("high priority")
    page.locator(f'[data-testid=task-row][data-task-id="{tonight}"]').click()
    expect(page.get_by_test_id("task-progress")).to_have_text(tasks.status(tonight).progress)
    expect(page.get_by_test_id("task-priority")).to_have_text("normal")


def test_owner_sees_the_budget_banner_and_the_report_pages_charts(dashboard, redis_client, images, new_page):
    now = time.time()
    for entry in (summary("0f0f01", now - 3 * DAY, cost=0.5, project="calc"),
                  summary("0f0f02", now - 3 * DAY, outcome="failed", reason="It broke.", cost=0.25),
                  summary("0f0f03", now - DAY, cost=1.0, project="web"),
                  summary("0f0f04", now - 60, outcome="timeout", reason="Too slow.", cost=0.125, project="web")):
        history.record(redis_client, entry, keep_days=90)
    budget.set_daily(redis_client, 1.0)
    budget.add_spend(redis_client, 1.5)

    page = new_page(**DESKTOP)
    page.goto(dashboard.url + "/")
    page.get_by_test_id("login-password").fill(DASHBOARD_PASSWORD)
    page.get_by_test_id("login-submit").click()
    # Today's budget is spent: every page says so until it is raised.
    banner = page.get_by_test_id("budget-banner")
    expect(banner).to_have_text("Today's budget of $1.00 (set with budget set) is spent ($1.50): new tasks are held "
                                "until tomorrow or until you raise it (python main_tars.py budget set AMOUNT).")

    page.get_by_test_id("report-link").click()
    expect(page.get_by_test_id("report-page")).to_be_visible()
    expect(page.get_by_test_id("report-tasks")).to_have_text("4")
    expect(page.get_by_test_id("report-success")).to_have_text("50%")
    expect(page.get_by_test_id("report-cost")).to_have_text("$1.88")
    expect(page.get_by_test_id("report-outcomes")).to_have_text("By outcome: 2 complete, 1 failed, 1 timeout.")
    # Tasks per day: one bar per outcome of a day (3 days ago complete and failed, yesterday, today); cost per day.
    task_bars = page.get_by_test_id("chart-tasks").locator("rect")
    expect(task_bars).to_have_count(4)
    expect(page.get_by_test_id("chart-cost").locator("rect")).to_have_count(3)
    assert task_bars.nth(0).locator("title").text_content().endswith(": 1 complete")
    heights = [float(task_bars.nth(i).get_attribute("height")) for i in range(4)]
    assert all(h > 0 for h in heights) and len(set(heights)) == 1  # one task each, the same height
    expect(page.get_by_test_id("report-projects")).to_contain_text("web")
    expect(page.get_by_test_id("report-failures")).to_contain_text("It broke.")
    expect(banner).to_be_visible()
    shot = images / "dashboard-report.png"
    page.screenshot(path=str(shot), full_page=True)
    check_png(shot, (1280, 700), (1280, 6000))

    # Another period re-draws the page from the server's numbers.
    page.get_by_test_id("report-since").select_option("30d")
    first_day = datetime.fromtimestamp(time.time() - 30 * DAY).strftime("%m-%d")  # after the two axis labels
    expect(page.get_by_test_id("chart-tasks").locator("text.tick").nth(2)).to_have_text(first_day)
    expect(page.get_by_test_id("report-tasks")).to_have_text("4")
    assert not page.js_errors, page.js_errors


def test_owner_pauses_all_work_then_one_task_from_the_page(dashboard, start_worker, fake_api, tasks, tmp_path,
                                                           new_page):
    """Pause all in the Workers panel: a banner on every page until its Resume. Then one task from its own page: it
    stops at its next step (no model request while paused) and goes on from its Resume."""
    gate = tmp_path / "gate"
    fake_api.script([bash(f"until test -e {gate}; do sleep 0.05; done"), text("Done.")])
    task_id = tasks.start("Wait at the gate", project_path="gated")
    worker = start_worker()
    page = new_page(**DESKTOP)
    page.goto(dashboard.url + "/")
    page.get_by_test_id("login-password").fill(DASHBOARD_PASSWORD)
    page.get_by_test_id("login-submit").click()
    running_its_gate(gate)  # the task runs its command: no step boundary until the gate opens
    row = page.get_by_test_id("worker-row")
    expect(row).to_have_attribute("data-state", "busy")
    banner = page.get_by_test_id("paused-banner")
    expect(banner).to_be_hidden()

    page.get_by_test_id("workers-switch").click()
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("no new task starts, and running tasks wait at their next step")
    expect(page.get_by_test_id("workers-switch")).to_have_text("Resume all")
    expect(row).to_have_attribute("data-state", "paused")
    expect(row.get_by_test_id("worker-state")).to_have_text("paused")
    assert tasks.status(task_id).status == "paused"
    page.goto(f"{dashboard.url}/#/task/{task_id}")
    expect(banner).to_be_visible()  # on every page
    expect(page.get_by_test_id("resume-button")).to_be_hidden()  # every worker is paused: the banner resumes it
    page.get_by_test_id("paused-banner-resume").click()
    expect(banner).to_be_hidden()

    status = page.get_by_test_id("task-page").get_by_test_id("task-status")
    expect(status).to_have_text("running")
    page.get_by_test_id("pause-button").click()
    expect(status).to_have_text("paused")
    gate.touch()
    expect(event(page, "paused")).to_have_count(1, timeout=60_000)
    expect(page.get_by_test_id("task-progress")).to_contain_text("Paused before its next step (it is paused on its "
                                                                 "own)")
    assert len(fake_api.requests) == 1
    page.get_by_test_id("resume-button").click()
    expect(event(page, "resumed")).to_have_count(1)
    expect(status).to_have_text("complete", timeout=60_000)
    assert len(fake_api.requests) == 2
    assert page.js_errors == [], page.js_errors
    assert worker.process.poll() is None, worker.log
