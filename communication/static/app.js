/* The TARS dashboard: hash routing (#/ the task list, #/task/<id> one task, #/report the report, #/calls the calls
   and #/call/<sid> one call's transcript with links to the tasks it started), two Server-Sent
   Events streams (the overview and one task's timeline), no framework and no build step. An ended task's page has a
   Branch panel: its checkpoints and diffstat, and merge, push, roll back and discard. The report's charts are
   plain SVG drawn here; a banner says when the daily budget holds new tasks. While every worker is paused a
   banner on every page says so, with its Resume; the Workers panel pauses them, a task's page pauses that task.
   Every piece of data reaches the page through textContent or attributes, never innerHTML. */
"use strict";

(function () {
  const CSRF = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const app = document.getElementById("app");
  const liveBadge = document.getElementById("live");
  const budgetBanner = document.getElementById("budget-banner");
  // The statuses and event kinds are core/task_states.py's, served with the page (no copy kept here).
  const VOCABULARY = JSON.parse((document.querySelector('meta[name="tars-vocabulary"]') || {}).content || "{}");
  const ACTIVE = new Set(VOCABULARY.active || []);
  // EventSource has no catch-all listener for named events: every kind TARS records, SSE's default "message"
  // (the server's name for a kind it could not send), and a reconcile with GET .../events at the end.
  const EVENT_TYPES = [...(VOCABULARY.event_kinds || []), "message"];
  const POLL_MS = 2000;

  // --- helpers ------------------------------------------------------------------------------------------
  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = String(value);
      else if (key === "testid") node.setAttribute("data-testid", value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function loggedOut() {
    location.replace("/"); // the server answers with the login page
  }

  async function api(method, path, body) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET") init.headers["X-CSRF-Token"] = CSRF;
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch("/dashboard/api/" + path, init);
    } catch (err) {
      return { ok: false, status: 0, data: { detail: "TARS did not answer: is the server running?" } };
    }
    if (response.status === 401) loggedOut();
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    return { ok: response.ok, status: response.status, data: data || {} };
  }

  function detail(answer) {
    const d = answer.data && answer.data.detail;
    if (typeof d === "string" && d) return d;
    if (Array.isArray(d)) return d.map((item) => (item && item.msg) || String(item)).join("; ");
    return `Something went wrong (HTTP ${answer.status}).`;
  }

  function humanAge(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "";
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return `${Math.floor(s / 86400)} d ago`;
  }

  function statusText(status) {
    return String(status || "unknown").replace(/_/g, " ");
  }

  function badge(status, testid) {
    return h("span", { class: `badge status-${status}`, testid, text: statusText(status) });
  }

  function setBadge(node, status) {
    node.className = `badge status-${status}`;
    node.textContent = statusText(status);
  }

  function projectName(path) {
    const text = String(path || "");
    const parts = text.replace(/\/+$/, "").split("/");
    return parts[parts.length - 1] || text;
  }

  // usage also carries cost_usd and unpriced_turns: only these four are tokens
  const TOKEN_FIELDS = ["input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"];
  function tokens(usage) {
    if (!usage) return 0;
    return TOKEN_FIELDS.reduce((sum, name) => sum + (Number(usage[name]) || 0), 0);
  }

  function cost(value) {
    const dollars = Number(value);
    if (value === null || value === undefined || !isFinite(dollars) || dollars <= 0) return "$0.00";
    if (dollars >= 1) return "$" + dollars.toFixed(2);
    if (dollars >= 0.01) return "$" + dollars.toFixed(4);
    return "$" + dollars.toPrecision(2); // a few hundredths of a cent still show
  }

  function clock(at) {
    const when = new Date(Number(at) * 1000);
    return isNaN(when) ? "" : when.toLocaleTimeString([], { hour12: false });
  }

  function idParts(id) {
    const [ms, seq] = String(id).split("-");
    return [Number(ms) || 0, Number(seq) || 0];
  }

  function idBefore(a, b) {
    const [am, as] = idParts(a);
    const [bm, bs] = idParts(b);
    return am < bm || (am === bm && as < bs);
  }

  function setLive(on) {
    liveBadge.className = "live " + (on ? "on" : "off");
    liveBadge.textContent = on ? "live" : "reconnecting…";
  }

  // --- the overview stream (tasks, workers, queue, paused), open the whole time --------------------------------
  let overview = null;
  const overviewListeners = new Set();

  // Every worker paused (core/pause.py): a banner on every page, with its Resume.
  const bannerResume = h("button", { type: "button", class: "primary", testid: "paused-banner-resume",
    text: "Resume", onclick: () => switchWorkers(false, bannerResume) });
  const bannerError = h("span", { class: "error", role: "alert" });
  const pausedBanner = h("div", { class: "banner paused", role: "status", testid: "paused-banner", hidden: true },
    h("span", {}, h("strong", { text: "Paused: " }),
      "no new task starts, and running tasks wait at their next step."), bannerResume, bannerError);
  app.before(pausedBanner);

  function showPaused(view) {
    pausedBanner.hidden = !view.paused;
  }

  async function switchWorkers(paused, button) { // pause (true) or resume every worker; the overview follows
    button.disabled = true;
    const answer = await api("POST", paused ? "workers/pause" : "workers/resume");
    button.disabled = false;
    bannerError.textContent = answer.ok ? "" : detail(answer);
    if (answer.ok && overview) {
      overview.paused = answer.data.paused;
      showPaused(overview);
      for (const listener of overviewListeners) listener(overview);
    }
    return answer;
  }

  function connectOverview() {
    const source = new EventSource("/dashboard/api/overview/stream");
    source.addEventListener("overview", (event) => {
      try {
        overview = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      overview.receivedAt = Date.now();
      setLive(true);
      showBudget(overview.budget);
      showPaused(overview);
      for (const listener of overviewListeners) listener(overview);
    });
    source.onopen = () => setLive(true);
    source.onerror = () => {
      setLive(false);
      if (source.readyState === EventSource.CLOSED) { // refused (logged out?) rather than dropped
        api("GET", "session").then((answer) => {
          if (answer.status !== 401) setTimeout(connectOverview, 5000);
        });
      }
    };
  }

  function showBudget(budget) { // the daily budget's banner: only while it holds new tasks (core/budget.py)
    budgetBanner.hidden = !(budget && budget.exhausted);
    budgetBanner.textContent = budget && budget.exhausted ? budget.sentence : "";
  }

  document.getElementById("logout").addEventListener("click", async () => {
    try {
      await fetch("/logout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": CSRF } });
    } finally {
      loggedOut();
    }
  });

  // --- #/ : the task list, the new-task form and the workers ------------------------------------------------
  function listView() {
    document.title = "TARS";
    const goal = h("textarea", { id: "goal", name: "goal", testid: "new-task-goal", required: true,
      maxlength: 2000, rows: 3, placeholder: "What should TARS build or fix?" });
    const project = h("input", { id: "project", name: "project", testid: "new-task-project", autocomplete: "off",
      autocapitalize: "off", spellcheck: "false", placeholder: "project folder or git URL (optional)" });
    const plan = h("input", { id: "plan", name: "plan", type: "checkbox", testid: "new-task-plan" });
    const priority = h("select", { id: "priority", name: "priority", testid: "new-task-priority" },
      (VOCABULARY.priorities || []).map((level) => h("option", { value: level, text: level,
        selected: level === VOCABULARY.normal_priority })));
    const submit = h("button", { type: "submit", class: "primary", testid: "new-task-submit", text: "Start" });
    const error = h("p", { class: "error", role: "alert", testid: "new-task-error" });
    const form = h("form", { class: "card", onsubmit: start },
      h("h2", { text: "New task" }),
      h("label", { for: "goal", text: "Goal" }), goal,
      h("label", { for: "project", text: "Project" }), project,
      h("label", { for: "priority", title: "high starts before every normal task waiting, low after them",
        text: "Priority" }), priority,
      h("label", { class: "check", title: "split the goal into subtasks that several workers build at once, "
        + "merged into one branch" }, plan, " Plan it out first"),
      error, h("div", { class: "actions" }, submit));
    const list = h("div", { class: "task-list", testid: "task-list" }, h("p", { class: "empty", text: "Loading…" }));
    const queue = h("span", { class: "big", testid: "queue-length", text: "–" });
    const workerList = h("ul");
    const workersSwitch = h("button", { type: "button", testid: "workers-switch", text: "Pause all",
      title: "paused: no new task starts, and running tasks wait at their next step",
      onclick: () => switchWorkers(!(overview && overview.paused), workersSwitch) });
    const workers = h("section", { class: "card workers", testid: "workers-panel" },
      h("div", { class: "row" }, h("h2", { text: "Workers" }), workersSwitch),
      h("p", {}, queue, " ", h("span", { class: "muted", text: "task(s) waiting in the queue" })),
      workerList);
    app.replaceChildren(h("div", { class: "grid" },
      h("div", {}, form, h("section", { class: "card" }, h("h2", { text: "Tasks" }), list)),
      h("div", {}, workers)));

    async function start(event) {
      event.preventDefault();
      error.textContent = "";
      const body = { goal: goal.value };
      if (project.value.trim()) body.project_path = project.value.trim();
      if (plan.checked) body.plan = true; // unchecked: the server's PLAN_GOALS decides
      if (priority.value) body.priority = priority.value;
      submit.disabled = true;
      const answer = await api("POST", "tasks", body);
      submit.disabled = false;
      if (answer.ok && answer.data.task_id) {
        location.hash = "#/task/" + answer.data.task_id;
      } else {
        error.textContent = detail(answer);
      }
    }

    function row(task, subtask) {
      const received = overview ? overview.receivedAt : Date.now();
      const age = h("div", { class: "age", text: humanAge(task.age_seconds) });
      age.dataset.age = String(task.age_seconds ?? "");
      age.dataset.received = String(received);
      const level = task.priority && task.priority !== VOCABULARY.normal_priority ? `${task.priority} priority` : "";
      const facts = [level, task.phase, projectName(task.project_path)].filter(Boolean).join(" · ");
      return h("a", { class: subtask ? "task-row subtask" : "task-row", href: "#/task/" + task.task_id,
        testid: "task-row", "data-task-id": task.task_id, "data-parent": task.parent || null,
        title: task.project_path },
        h("div", { class: "status-cell" }, badge(task.status, "task-status")),
        h("div", { class: "main" },
          h("div", { class: "goal", text: task.goal }),
          h("div", { class: "progress", text: task.plan_summary || task.progress || task.reason || "" }),
          h("div", { class: "meta", text: `#${task.task_id} · ${facts}` })),
        age);
    }

    function worker(item) { // its state: idle, busy or paused (core/pool.py)
      const doing = item.current_task ? `task #${item.current_task}` : "";
      const where = [item.host, item.pid ? `pid ${item.pid}` : ""].filter(Boolean).join(", ");
      const can = (item.capabilities || []).length ? `capabilities: ${item.capabilities.join(", ")}` : "";
      return h("li", { testid: "worker-row", "data-name": item.name, "data-state": item.state },
        h("strong", { text: item.name }), " ",
        h("span", { class: `badge worker-${item.state}`, testid: "worker-state", text: item.state }), h("br"),
        h("span", { class: "muted",
          text: [doing, where, can, item.alive ? "" : "(no liveness)"].filter(Boolean).join(" — ") }));
    }

    function grouped(tasks) { // a plan's subtasks right under it, in the server's order (the plan's)
      const shown = new Set(tasks.map((task) => task.task_id));
      const rows = [];
      for (const task of tasks) {
        if (task.parent && shown.has(task.parent)) continue;
        rows.push(row(task, false));
        const parts = tasks.filter((other) => other.parent === task.task_id);
        rows.push(...parts.map((part) => row(part, true)));
      }
      return rows;
    }

    function render(view) {
      list.replaceChildren(...(view.tasks.length ? grouped(view.tasks)
        : [h("p", { class: "empty", text: "No tasks yet: start one above." })]));
      queue.textContent = String(view.queue_length);
      workersSwitch.textContent = view.paused ? "Resume all" : "Pause all";
      workerList.replaceChildren(...(view.workers.length ? view.workers.map(worker)
        : [h("li", { class: "muted", text: "No worker is running: start one with python start_worker.py "
          + "(or run python main_tars.py up)." })]));
    }

    const ticker = setInterval(() => { // ages move on between updates
      for (const node of list.querySelectorAll(".age")) {
        const age = parseFloat(node.dataset.age);
        if (isFinite(age)) node.textContent = humanAge(age + (Date.now() - Number(node.dataset.received)) / 1000);
      }
    }, 5000);
    overviewListeners.add(render);
    if (overview) render(overview);
    return { stop() { overviewListeners.delete(render); clearInterval(ticker); } };
  }

  // --- #/task/<id> : one task, its timeline live ---------------------------------------------------------------
  function taskView(id) {
    document.title = `TARS · task ${id}`;
    let source = null, pollTimer = null, refreshTimer = null, stopped = false, lastId = null, shownCommand = null;
    let current = null;
    const seen = new Set();

    const status = badge("queued", "task-status");
    const goal = h("p", { class: "goal-text", testid: "task-goal" });
    const phase = h("dd", { testid: "task-phase" });
    const progress = h("dd", { testid: "task-progress" });
    const projectLine = h("dd", { class: "mono" });
    const priorityLine = h("dd", { testid: "task-priority" });
    const branch = h("dd", { class: "mono", testid: "task-branch" });
    const tokenCount = h("span", { testid: "task-tokens" });
    const tokenDetail = h("span", { class: "muted small" });
    const costLine = h("dd", { testid: "task-cost" });
    const times = h("dd", { class: "small" });
    const outcomeTerm = h("dt", { text: "Outcome", hidden: true });
    const outcome = h("dd", { testid: "task-reason", hidden: true });
    const summaryTerm = h("dt", { text: "Summary", hidden: true });
    const summary = h("dd", { class: "goal-text", testid: "task-summary", hidden: true });
    const files = h("ul", { class: "files", testid: "task-files" });
    const confirmCommand = h("pre", { testid: "confirm-command" });
    const confirmReason = h("p", { testid: "confirm-reason" });
    const confirmAttempts = h("p", { class: "muted small" });
    const codeInput = h("input", { id: "code", name: "code", testid: "confirm-code", type: "password",
      inputmode: "numeric", autocomplete: "one-time-code", required: true, placeholder: "code" });
    const confirmSubmit = h("button", { type: "submit", class: "primary", testid: "confirm-submit", text: "Submit" });
    const confirmPanel = h("section", { class: "card confirm", testid: "confirm-panel", hidden: true },
      h("h2", { text: "Waiting for your confirmation code" }),
      h("p", { text: "The task wants to run:" }), confirmCommand, confirmReason, confirmAttempts,
      h("form", { onsubmit: sendCode },
        h("label", { for: "code", class: "sr", text: "Code" }), codeInput, confirmSubmit));
    const confirmResult = h("p", { testid: "confirm-result", role: "status", hidden: true });
    const cancelButton = h("button", { type: "button", class: "danger", testid: "cancel-button", text: "Cancel task",
      hidden: true, onclick: cancel });
    const retryButton = h("button", { type: "button", testid: "retry-button", text: "Retry", hidden: true,
      onclick: retry });
    const pauseButton = h("button", { type: "button", testid: "pause-button", text: "Pause", hidden: true,
      title: "it stops at its next step and waits, its runtime clock stopped", onclick: () => pauseOrResume("pause") });
    const resumeButton = h("button", { type: "button", class: "primary", testid: "resume-button", text: "Resume",
      hidden: true, onclick: () => pauseOrResume("resume") });
    const actionError = h("p", { class: "error", role: "alert" });
    // The Branch panel: only once the task has ended and has a branch (core/git_workspace.py).
    let branchLoaded = false, branchSerial = 0;
    const branchSentence = h("p", { testid: "branch-summary" });
    const branchProblem = h("p", { class: "muted", testid: "branch-unavailable", hidden: true });
    const checkpointList = h("ol", { class: "checkpoints", testid: "checkpoint-list" });
    const diffstat = h("pre", { class: "diffstat", testid: "branch-diffstat" });
    const noDiff = h("p", { class: "muted", text: "No files changed since the task started.", hidden: true });
    const mergeButton = h("button", { type: "button", class: "primary", testid: "merge-button", hidden: true,
      text: "Merge", title: "merge the branch into the branch the task started from", onclick: merge });
    const pushButton = h("button", { type: "button", class: "primary", testid: "push-button", hidden: true,
      text: "Push", title: "push the branch to origin", onclick: push });
    const rollbackSelect = h("select", { id: "rollback-to", name: "rollback-to", testid: "rollback-select" });
    const rollbackButton = h("button", { type: "button", testid: "rollback-button", text: "Roll back",
      onclick: rollback });
    const discardButton = h("button", { type: "button", class: "danger", testid: "discard-button",
      text: "Discard", onclick: discard });
    const branchButtons = [mergeButton, pushButton, rollbackButton, discardButton];
    const deliverRow = h("div", { class: "actions", hidden: true }, mergeButton, pushButton);
    const branchResult = h("p", { testid: "branch-result", role: "status", hidden: true });
    const branchBody = h("div", { hidden: true },
      branchSentence,
      h("h3", { text: "Checkpoints" }), checkpointList,
      h("h3", { text: "Changes" }), diffstat, noDiff,
      deliverRow,
      h("div", { class: "actions rollback" },
        h("label", { for: "rollback-to", class: "sr", text: "Roll back to" }), rollbackSelect, rollbackButton),
      h("div", { class: "actions" }, discardButton));
    const branchPanel = h("section", { class: "card branch", testid: "branch-panel", hidden: true },
      h("h2", { text: "Branch" }), branchProblem, branchBody, branchResult);
    // A planned task's plan: each subtask indented under what it waits for, live (core/plans.py).
    const parentLine = h("p", { class: "muted", testid: "task-parent", hidden: true });
    const planSummary = h("p", { testid: "plan-summary" });
    const planTree = h("ol", { class: "plan-tree", testid: "plan-tree" });
    const planPanel = h("section", { class: "card plan", testid: "plan-panel", hidden: true },
      h("h2", { text: "Plan" }), planSummary, planTree);
    const timeline = h("ol", { class: "timeline", testid: "timeline" });
    const noEvents = h("p", { class: "muted", text: "No events yet." });
    const missing = h("p", { class: "error", role: "alert", hidden: true });

    app.replaceChildren(h("section", { class: "task", testid: "task-page", "data-task-id": id },
      h("a", { class: "back", href: "#/", testid: "back-link", text: "← All tasks" }),
      missing,
      confirmPanel, confirmResult, // first: on a phone the question is what you see
      h("section", { class: "card" },
        h("div", { class: "row" }, h("h1", { text: `Task #${id}` }), status),
        parentLine,
        goal,
        h("dl", { class: "facts" },
          h("dt", { text: "Phase" }), phase,
          h("dt", { text: "Progress" }), progress,
          h("dt", { text: "Project" }), projectLine,
          h("dt", { text: "Priority" }), priorityLine,
          h("dt", { text: "Branch" }), branch,
          h("dt", { text: "Tokens" }), h("dd", {}, tokenCount, " ", tokenDetail),
          h("dt", { text: "Cost" }), costLine,
          h("dt", { text: "Times" }), times,
          outcomeTerm, outcome, summaryTerm, summary),
        h("div", { class: "actions" }, pauseButton, resumeButton, cancelButton, retryButton),
        actionError),
      planPanel,
      branchPanel,
      h("section", { class: "card" }, h("h2", { text: "Files changed" }), files),
      h("section", { class: "card" }, h("h2", { text: "Timeline" }), noEvents, timeline)));

    function depths(rows) { // how deep each subtask sits: one more than the deepest it depends on
      const depth = {};
      for (const row of rows) { // the plan lists each subtask after what it depends on
        depth[row.key] = Math.max(0, ...(row.depends_on || []).map((key) => (depth[key] ?? -1) + 1));
      }
      return depth;
    }

    function planRow(row, depth) {
      const points = row.checkpoints || 0;
      const facts = [row.branch || "no branch yet", `${points} checkpoint${points === 1 ? "" : "s"}`,
        cost(row.cost_usd)];
      const after = (row.depends_on || []).length ? ` · after ${row.depends_on.join(", ")}` : "";
      return h("li", { class: `plan-row depth-${Math.min(depth, 4)}`, testid: "plan-row", "data-key": row.key,
        "data-state": row.state },
        h("div", { class: "plan-head" },
          h("span", { class: "key mono", text: row.key }),
          h("a", { href: "#/task/" + row.task_id, class: "title", text: row.title }),
          h("span", { class: `badge state-${row.state}`, testid: "plan-row-state", text: row.state })),
        h("div", { class: "meta mono small", text: `#${row.task_id} · ${facts.join(" · ")}${after}` }),
        row.note ? h("div", { class: "note small", testid: "plan-row-note", text: row.note }) : null);
    }

    function renderPlan(task) {
      parentLine.hidden = !task.parent;
      parentLine.replaceChildren(...(task.parent ? ["Part of the plan of ",
        h("a", { href: "#/task/" + task.parent, testid: "parent-link", text: `task #${task.parent}` })] : []));
      planPanel.hidden = !task.plan;
      if (!task.plan) return;
      planSummary.textContent = task.plan_summary || "";
      const depth = depths(task.plan);
      planTree.replaceChildren(...task.plan.map((row) => planRow(row, depth[row.key] || 0)));
    }

    function render(task) {
      current = task;
      renderPlan(task);
      setBadge(status, task.status);
      document.title = `TARS · ${statusText(task.status)} · task ${id}`;
      goal.textContent = task.goal;
      phase.textContent = task.phase || "";
      progress.textContent = task.progress || "";
      projectLine.textContent = task.project_path || "";
      priorityLine.textContent = task.priority || "";
      const points = task.checkpoints || 0; // a rollback updates it on the server
      branch.textContent = task.branch ? `${task.branch} (${points} checkpoint${points === 1 ? "" : "s"})`
        : ACTIVE.has(task.status) ? "not yet" : "none"; // an ended task without one: never prepared, or discarded
      const usage = task.usage || {};
      tokenCount.textContent = String(tokens(task.usage));
      const cached = (usage.cache_creation_input_tokens || 0) + (usage.cache_read_input_tokens || 0);
      tokenDetail.textContent = task.usage
        ? `(in ${usage.input_tokens || 0}, out ${usage.output_tokens || 0}, cache ${cached})` : "";
      costLine.textContent = cost(task.cost_usd);
      times.textContent = [task.created_at && `created ${new Date(task.created_at).toLocaleString()}`,
        task.scheduled_for && `scheduled for ${new Date(task.scheduled_for).toLocaleString()}`,
        task.ended_at && `ended ${new Date(task.ended_at).toLocaleString()}`].filter(Boolean).join(" · ");
      const said = (task.result && task.result.summary) || "";
      outcome.textContent = task.reason || "";
      outcome.hidden = outcomeTerm.hidden = !task.reason;
      summary.textContent = said;
      summary.hidden = summaryTerm.hidden = !said || said === task.reason;
      files.replaceChildren(...((task.files_changed || []).length
        ? task.files_changed.map((path) => h("li", { class: "mono", text: path }))
        : [h("li", { class: "muted", text: "none yet" })]));

      const waiting = task.status === VOCABULARY.awaiting_confirmation;
      const pending = task.pending_confirmation || null;
      confirmPanel.hidden = !waiting;
      if (waiting) {
        const command = (pending && pending.command) || task.confirmation_command || "";
        if (command !== shownCommand) { // a new request: a fresh field
          shownCommand = command;
          codeInput.value = "";
        }
        confirmCommand.textContent = command;
        confirmReason.textContent = pending && pending.reason ? `Why it needs a code: ${pending.reason}.` : "";
        confirmAttempts.textContent = pending && pending.attempts_left !== null && pending.attempts_left !== undefined
          ? `${pending.attempts_left} attempt${pending.attempts_left === 1 ? "" : "s"} left.` : "";
      } else {
        shownCommand = null;
      }
      const active = ACTIVE.has(task.status);
      cancelButton.hidden = !active;
      retryButton.hidden = active;
      // Paused on its own: Resume here; by every worker: the banner's Resume; with its plan: the plan's page.
      const paused = task.status === VOCABULARY.paused;
      pauseButton.hidden = !active || paused || task.status === "queued";
      resumeButton.hidden = !paused || task.paused_by !== "task";
      branchPanel.hidden = active || !task.branch;
      if (!branchPanel.hidden && !branchLoaded) {
        branchLoaded = true;
        loadBranch();
      }
    }

    // --- the Branch panel ---------------------------------------------------------------------------------
    function checkpointRow(point) {
      return h("li", { testid: "checkpoint-row", "data-number": point.number },
        h("span", { class: "number", text: `#${point.number}` }),
        h("span", { class: "message", text: point.message }),
        point.tests_passed ? h("span", { class: "badge status-complete", testid: "tests-pass", text: "tests pass" })
          : null,
        h("span", { class: "sha mono muted small", title: point.sha, text: String(point.sha || "").slice(0, 10) }));
    }

    function shortened(text, most) {
      const flat = String(text || "").replace(/\s+/g, " ").trim();
      return flat.length > most ? flat.slice(0, most - 1) + "…" : flat;
    }

    async function loadBranch() {
      const serial = ++branchSerial;
      const [points, changes] = await Promise.all([api("GET", `tasks/${id}/checkpoints`),
        api("GET", `tasks/${id}/changes`)]);
      if (stopped || serial !== branchSerial) return;
      if (!points.ok || !changes.ok || !Array.isArray(points.data)) {
        // Gone (discarded, cleaned up), on another machine...: the sentence says which.
        branchProblem.textContent = detail(points.ok ? changes : points);
        branchProblem.hidden = false;
        branchBody.hidden = true;
        return;
      }
      const list = points.data, info = changes.data;
      branchProblem.textContent = "";
      branchProblem.hidden = true;
      branchBody.hidden = false;
      branchSentence.textContent = info.sentence || "";
      checkpointList.replaceChildren(...(list.length ? list.map(checkpointRow)
        : [h("li", { class: "muted", text: "No checkpoints: the task changed nothing." })]));
      diffstat.textContent = info.diffstat || "";
      diffstat.hidden = !info.diffstat;
      noDiff.hidden = Boolean(info.diffstat);
      mergeButton.hidden = info.mode !== "worktree";
      pushButton.hidden = info.mode !== "clone";
      deliverRow.hidden = mergeButton.hidden && pushButton.hidden; // a plain folder: nothing to deliver
      const chosen = rollbackSelect.value;
      rollbackSelect.replaceChildren(h("option", { value: "0", text: "0 · before the task" }),
        ...list.map((point) => h("option", { value: String(point.number),
          text: `${point.number} · ${shortened(point.message, 60)}${point.tests_passed ? " (tests pass)" : ""}` })));
      // The one before the latest, as the CLI's default; else what was chosen before, while it still exists.
      const keep = chosen !== "" && Number(chosen) <= list.length && rollbackSelect.dataset.touched;
      rollbackSelect.value = keep ? chosen : String(Math.max(list.length - 1, 0));
    }

    function showBranchAnswer(answer) {
      branchResult.hidden = false;
      branchResult.className = answer.ok ? "ok" : "error";
      branchResult.textContent = detail(answer);
    }

    async function branchAction(button, path, body) {
      for (const node of branchButtons) node.disabled = true;
      const label = button.textContent;
      button.textContent = label + "…";
      branchResult.hidden = true;
      const answer = await api("POST", `tasks/${id}/${path}`, body);
      button.textContent = label;
      for (const node of branchButtons) node.disabled = false;
      if (stopped) return;
      showBranchAnswer(answer);
      await loadBranch();
      refresh();
    }

    function merge() {
      return branchAction(mergeButton, "merge");
    }

    function push() {
      return branchAction(pushButton, "push");
    }

    function rollback() {
      return branchAction(rollbackButton, "rollback", { to: Number(rollbackSelect.value) || 0 });
    }

    function discard() {
      if (!window.confirm(`Discard task ${id}? Its branch and all its work are deleted for good.`)) return;
      return branchAction(discardButton, "discard", { confirm: true });
    }
    rollbackSelect.addEventListener("change", () => { rollbackSelect.dataset.touched = "1"; });

    async function refresh() {
      if (stopped) return;
      clearTimeout(pollTimer);
      const answer = await api("GET", `tasks/${id}`);
      if (stopped) return;
      if (answer.ok) {
        missing.hidden = true;
        render(answer.data);
        if (ACTIVE.has(answer.data.status)) pollTimer = setTimeout(refresh, POLL_MS);
      } else if (answer.status === 404) {
        missing.hidden = false;
        missing.textContent = detail(answer);
      } else {
        pollTimer = setTimeout(refresh, POLL_MS * 2);
      }
    }

    function soon() { // an event arrived: the status (progress, tokens, files) changed with it
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(refresh, 150);
    }

    function addEvent(event) {
      if (!event || !event.id || seen.has(event.id)) return;
      seen.add(event.id);
      noEvents.hidden = true;
      if (!lastId || idBefore(lastId, event.id)) lastId = event.id;
      const item = h("li", { testid: "timeline-event", "data-type": event.type, "data-event-id": event.id },
        h("time", { class: "time", text: clock(event.at) }),
        h("span", { class: "type", text: event.type }),
        h("span", { class: "message", text: event.message }));
      let before = null; // keep the stream's order even when a reconcile fills a gap
      for (let node = timeline.lastElementChild; node; node = node.previousElementSibling) {
        if (idBefore(event.id, node.dataset.eventId)) before = node;
        else break;
      }
      timeline.insertBefore(item, before);
    }

    async function reconcile() {
      const answer = await api("GET", `tasks/${id}/events`);
      if (answer.ok && Array.isArray(answer.data)) answer.data.forEach(addEvent);
    }

    function connect() {
      if (stopped) return;
      const url = `/dashboard/api/tasks/${id}/stream` + (lastId ? `?after=${encodeURIComponent(lastId)}` : "");
      const stream = new EventSource(url);
      source = stream;
      const onEvent = (message) => {
        try {
          addEvent(JSON.parse(message.data));
        } catch (err) {
          return;
        }
        soon();
      };
      for (const type of EVENT_TYPES) stream.addEventListener(type, onEvent);
      stream.addEventListener("end", () => {
        stream.close();
        if (source === stream) source = null;
        reconcile();
        refresh();
      });
      stream.onerror = () => {
        if (stream.readyState !== EventSource.CLOSED) return; // the browser reconnects by itself (Last-Event-ID)
        if (source === stream) source = null;
        api("GET", "session").then((answer) => {
          if (!stopped && answer.status !== 401 && (!current || ACTIVE.has(current.status))) setTimeout(connect, 3000);
        });
      };
    }

    async function sendCode(event) {
      event.preventDefault();
      const code = codeInput.value.trim();
      if (!code) return;
      confirmSubmit.disabled = true;
      const answer = await api("POST", `tasks/${id}/confirm`, { code });
      confirmSubmit.disabled = false;
      confirmResult.hidden = false;
      if (answer.ok) {
        confirmResult.className = "ok";
        confirmResult.textContent = detail(answer);
        codeInput.value = "";
      } else {
        confirmResult.className = "error";
        confirmResult.textContent = detail(answer);
        codeInput.select();
      }
      refresh();
    }

    async function cancel() {
      actionError.textContent = "";
      cancelButton.disabled = true;
      cancelButton.textContent = "Cancelling…";
      const answer = await api("POST", `tasks/${id}/cancel`);
      cancelButton.disabled = false;
      cancelButton.textContent = "Cancel task";
      if (!answer.ok) actionError.textContent = detail(answer);
      refresh();
    }

    async function pauseOrResume(action) {
      actionError.textContent = "";
      pauseButton.disabled = resumeButton.disabled = true;
      const answer = await api("POST", `tasks/${id}/${action}`);
      pauseButton.disabled = resumeButton.disabled = false;
      if (answer.ok) render({ ...current, ...answer.data });
      else actionError.textContent = detail(answer);
      refresh();
    }

    async function retry() {
      actionError.textContent = "";
      retryButton.disabled = true;
      const answer = await api("POST", `tasks/${id}/retry`);
      retryButton.disabled = false;
      if (answer.ok && answer.data.task_id) location.hash = "#/task/" + answer.data.task_id;
      else actionError.textContent = detail(answer);
    }

    refresh();
    connect();
    return {
      stop() {
        stopped = true;
        clearTimeout(pollTimer);
        clearTimeout(refreshTimer);
        if (source) source.close();
      },
    };
  }

  // --- #/report : how the tasks went (core/report.py), tasks and cost per day as SVG bar charts ----------------------
  const SVG = "http://www.w3.org/2000/svg";

  function svg(tag, props, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "text") node.textContent = String(value);
      else if (key === "testid") node.setAttribute("data-testid", value);
      else node.setAttribute(key, String(value));
    }
    node.append(...children);
    return node;
  }

  // One bar per day, stacked from `parts` ([field, class] of each row); `label` says a bar's value in its title.
  function barChart(rows, parts, label, testid) {
    const width = 640, height = 180, left = 44, bottom = 22, top = 8;
    const totals = rows.map((row) => parts.reduce((sum, [field]) => sum + (Number(row[field]) || 0), 0));
    const most = Math.max(...totals, 0) || 1;
    const slot = (width - left) / Math.max(rows.length, 1);
    const scale = (value) => (value / most) * (height - top - bottom);
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", testid,
      "aria-label": testid.replace(/-/g, " ") },
      svg("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom, class: "axis" }),
      svg("text", { x: left - 6, y: top + 10, class: "tick", "text-anchor": "end", text: label(most) }),
      svg("text", { x: left - 6, y: height - bottom, class: "tick", "text-anchor": "end", text: label(0) }));
    rows.forEach((row, i) => {
      let y = height - bottom;
      const x = left + i * slot + slot * 0.15;
      for (const [field, cls] of parts) {
        const value = Number(row[field]) || 0;
        if (!value) continue;
        y -= scale(value);
        chart.append(svg("rect", { x: x.toFixed(1), y: y.toFixed(1), width: (slot * 0.7).toFixed(1),
          height: scale(value).toFixed(1), class: `bar ${cls}`, testid: "bar", "data-day": row.day },
          svg("title", { text: `${row.day}: ${label(value)} ${field.replace(/_/g, " ")}` })));
      }
      if (rows.length <= 14 || i % Math.ceil(rows.length / 14) === 0) {
        chart.append(svg("text", { x: (x + slot * 0.35).toFixed(1), y: height - 6, class: "tick",
          "text-anchor": "middle", text: row.day.slice(5) }));
      }
    });
    return chart;
  }

  function reportView() {
    document.title = "TARS · report";
    const period = h("select", { id: "report-since", name: "since", testid: "report-since" },
      ...[["7d", "last 7 days"], ["30d", "last 30 days"], ["90d", "last 90 days"]].map(([value, text]) =>
        h("option", { value, text })));
    const error = h("p", { class: "error", role: "alert", testid: "report-error" });
    const body = h("div", { testid: "report-body" }, h("p", { class: "muted", text: "Loading…" }));
    app.replaceChildren(h("section", { class: "report", testid: "report-page" },
      h("a", { class: "back", href: "#/", text: "← All tasks" }),
      h("div", { class: "card" }, h("div", { class: "row" }, h("h1", { text: "Report" }),
        h("label", { for: "report-since", class: "sr", text: "Period" }), period)),
      error, body));
    let serial = 0;

    function figure(name, value, testid) {
      return h("div", { class: "figure" }, h("div", { class: "big", testid, text: value }),
        h("div", { class: "muted small", text: name }));
    }

    function render(report) {
      const t = report.tasks;
      const rate = report.success_rate === null ? "–" : `${Math.round(report.success_rate * 100)}%`;
      const seconds = (value) => (value === null || value === undefined ? "–" : `${Number(value).toFixed(1)} s`);
      const latency = report.model_latency_seconds;
      const outcomes = ["complete", "failed", "timeout", "cancelled"].filter((o) => t[o])
        .map((o) => `${t[o]} ${o}`).join(", ") || "no task ended";
      const projects = Object.entries(report.by_project);
      body.replaceChildren(
        h("section", { class: "card figures" },
          figure("tasks", String(t.total), "report-tasks"),
          figure("success rate (not counting cancels)", rate, "report-success"),
          figure("cost", cost(report.cost_usd), "report-cost"),
          figure("median duration (95th percentile)", `${seconds(report.duration_seconds.median)} (${
            seconds(report.duration_seconds.p95)})`, "report-duration"),
          figure(`model latency per call, median (95th), ${latency.calls} calls`,
            `${seconds(latency.median)} (${seconds(latency.p95)})`, "report-latency")),
        h("p", { class: "muted", testid: "report-outcomes", text: `By outcome: ${outcomes}.` }),
        h("section", { class: "card" }, h("h2", { text: "Tasks per day" }),
          barChart(report.by_day, [["complete", "complete"], ["failed", "failed"], ["timeout", "timeout"],
            ["cancelled", "cancelled"]], (v) => String(Math.round(v * 10) / 10), "chart-tasks")),
        h("section", { class: "card" }, h("h2", { text: "Cost per day" }),
          barChart(report.by_day, [["cost_usd", "cost"]], (v) => cost(v), "chart-cost")),
        h("section", { class: "card" }, h("h2", { text: "Per project" }),
          projects.length ? h("table", { class: "projects", testid: "report-projects" },
            h("tr", {}, ...["project", "tasks", "complete", "cost", "tokens in", "tokens out"].map((c) =>
              h("th", { text: c }))),
            ...projects.map(([name, row]) => h("tr", {}, h("td", { text: name }), h("td", { text: row.tasks }),
              h("td", { text: row.complete }), h("td", { text: cost(row.cost_usd) }),
              h("td", { text: row.tokens_in }), h("td", { text: row.tokens_out }))))
            : h("p", { class: "muted", text: "No task ended in this period." })),
        h("section", { class: "card" }, h("h2", { text: "Most common failures" }),
          report.failure_reasons.length ? h("ol", { class: "failures", testid: "report-failures" },
            ...report.failure_reasons.map((group) => h("li", {},
              h("strong", { text: `${group.count}× ` }), group.example)))
            : h("p", { class: "muted", text: "No failures in this period." })));
    }

    async function load() {
      const mine = ++serial;
      error.textContent = "";
      const answer = await api("GET", `report?since=${encodeURIComponent(period.value)}`);
      if (mine !== serial) return; // the owner picked another period meanwhile
      if (answer.ok) render(answer.data);
      else error.textContent = detail(answer);
    }

    period.addEventListener("change", load);
    load();
    return { stop() { serial += 1; } };
  }

  // --- #/calls and #/call/<sid> : the call history (core/call_history.py), each call's transcript and tasks ------
  function callWay(call) { // "in", "out", "out: reminder"
    if (call.direction !== "outbound") return "in";
    return call.purpose ? `out: ${call.purpose}` : "out";
  }

  function callLength(call) {
    const s = call.duration_seconds;
    if (s === null || s === undefined) return call.on_the_line ? "on the line" : "no end kept";
    return s < 60 ? `${Math.round(s)} s` : `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
  }

  function callWhen(call) {
    const when = new Date(Number(call.started_at) * 1000);
    return isNaN(when) ? "" : when.toLocaleString([], { hour12: false });
  }

  function callsView() {
    document.title = "TARS · calls";
    const error = h("p", { class: "error", role: "alert", testid: "calls-error" });
    const list = h("div", { testid: "call-list" }, h("p", { class: "empty", text: "Loading…" }));
    app.replaceChildren(h("section", { class: "calls", testid: "calls-page" },
      h("a", { class: "back", href: "#/", text: "← All tasks" }),
      h("section", { class: "card" }, h("h1", { text: "Calls" }), error, list)));
    let stopped = false;

    function row(call) {
      const tasks = call.task_ids.length ? `tasks ${call.task_ids.map((id) => "#" + id).join(", ")}` : "";
      return h("a", { class: "call-row", href: "#/call/" + call.call_sid, testid: "call-row",
        "data-call-sid": call.call_sid },
        h("div", { class: "when", text: callWhen(call) }),
        h("div", { class: "main" },
          h("div", { class: "number", text: `${call.number} · ${callWay(call)}` }),
          h("div", { class: "meta", text: [callLength(call), `${call.lines} line${call.lines === 1 ? "" : "s"}`,
            tasks].filter(Boolean).join(" · ") })));
    }

    (async function load() {
      const answer = await api("GET", "calls");
      if (stopped) return;
      if (!answer.ok) {
        error.textContent = detail(answer);
        list.replaceChildren();
        return;
      }
      list.replaceChildren(...(answer.data.length ? answer.data.map(row)
        : [h("p", { class: "empty", text: "No calls kept: phone TARS, and the call shows here." })]));
    })();
    return { stop() { stopped = true; } };
  }

  function callView(sid) {
    document.title = `TARS · call ${sid}`;
    const error = h("p", { class: "error", role: "alert", testid: "call-error" });
    const body = h("div", {}, h("p", { class: "muted", text: "Loading…" }));
    app.replaceChildren(h("section", { class: "calls", testid: "call-page" },
      h("a", { class: "back", href: "#/calls", text: "← All calls" }), error, body));
    let stopped = false;

    function taskLink(task) { // to the task's own page
      return h("li", {}, h("a", { href: "#/task/" + task.task_id, testid: "call-task", "data-task-id": task.task_id,
        text: `#${task.task_id}` }), " ", badge(task.status, "call-task-status"), " ", task.goal);
    }

    function render(call) {
      const kept = new Set(call.tasks.map((task) => task.task_id));
      const expired = call.task_ids.filter((id) => !kept.has(id));
      body.replaceChildren(
        h("section", { class: "card" },
          h("h1", { text: `${call.direction === "outbound" ? "Call to" : "Call from"} ${call.number}` }),
          h("dl", { class: "facts" },
            h("dt", { text: "Call" }), h("dd", { class: "mono", text: call.call_sid }),
            h("dt", { text: "Way" }), h("dd", { text: callWay(call) }),
            h("dt", { text: "Started" }), h("dd", { text: callWhen(call) }),
            h("dt", { text: "Length" }), h("dd", { testid: "call-length", text: callLength(call) }))),
        h("section", { class: "card" }, h("h2", { text: "Transcript" }),
          call.transcript.length ? h("ol", { class: "transcript", testid: "transcript" },
            ...call.transcript.map((line) => h("li", { "data-who": line.who, testid: "transcript-line" },
              h("span", { class: "time", text: clock(line.at) }),
              h("span", { class: "who", text: line.who === "tars" ? "TARS" : "Caller" }),
              h("span", { class: "text", text: line.text }))))
            : h("p", { class: "muted", text: "Nothing was said." })),
        h("section", { class: "card" }, h("h2", { text: "Tasks it started" }),
          call.tasks.length ? h("ul", { class: "call-tasks", testid: "call-tasks" }, ...call.tasks.map(taskLink)) : null,
          expired.length ? h("p", { class: "muted", text: `Expired since: ${expired.map((id) => "#" + id)
            .join(", ")}.` }) : null,
          call.task_ids.length ? null : h("p", { class: "muted", text: "None." })));
    }

    (async function load() {
      const answer = await api("GET", "calls/" + encodeURIComponent(sid));
      if (stopped) return;
      if (answer.ok) render(answer.data);
      else {
        body.replaceChildren();
        error.textContent = detail(answer);
      }
    })();
    return { stop() { stopped = true; } };
  }

  // --- routing -------------------------------------------------------------------------------------------------
  let view = null;

  function route() {
    if (view) view.stop();
    const match = location.hash.match(/^#\/task\/#?([0-9a-fA-F]{1,32})\/?$/);
    const call = location.hash.match(/^#\/call\/([A-Za-z0-9_-]{1,64})\/?$/);
    view = match ? taskView(match[1].toLowerCase()) : call ? callView(call[1])
      : /^#\/report\/?$/.test(location.hash) ? reportView() : /^#\/calls\/?$/.test(location.hash) ? callsView()
        : listView();
    window.scrollTo(0, 0);
  }

  window.addEventListener("hashchange", route);
  connectOverview();
  route();
})();
