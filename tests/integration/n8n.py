"""The shipped n8n workflow on a real n8n, with a real TARS: `python -m tests.integration.n8n`.

Not collected by pytest (it installs n8n from npm and runs for minutes). Each step is printed with the time, the HTTP
statuses and n8n's execution statuses; the exit status is 1 when any check failed. Every process it starts is
stopped at the end, whatever happened.

1. Installs n8n N8N_VERSION and Node NODE_VERSION (n8n 2.x needs Node >= 24) from the npm registry into
   ~/.cache/tars-n8n/<n8n version> (TARS_N8N_CACHE overrides ~/.cache/tars-n8n), with --ignore-scripts: install
   scripts would download from other hosts. Node is the official build npm publishes as node-<os>-<cpu> (the
   `node` package's own install script only picks that one); sqlite3, the one native module n8n cannot run
   without that ships no prebuilt binary, is compiled with npm's node-gyp against that Node's headers. Later runs
   reuse the cache.
2. Sets n8n up the way docs/N8N_BACKGROUND_TASKS_SETUP.md tells a user to, by its CLI, in a fresh N8N_USER_FOLDER:
   the credentials first (docs/n8n_tars_credentials.example.json, filled in), then
   `n8n import:workflow --input=docs/n8n_tars_workflow.json` as shipped, then the copy with TARS's address and
   the code wait filled in (what the user edits), then `n8n publish:workflow`; then starts n8n on a free port,
   with no telemetry, and checks over its public API that the workflow is published and its credentials linked.
3. Starts a real TARS beside it: a private Redis on a free port, `python main_tars.py serve`, `python
   start_worker.py`, with N8N_WEBHOOK_URL at n8n's webhook, Claude played by tests/fakes/anthropic_api.py, and a
   local HTTP server standing in for the Discord channel webhook (it records what n8n posts).
4. A task that runs `rm -rf build` (its goal says @everyone): the owner opens the form link n8n posted, types a
   wrong code, gets a new link with the attempts left, types the right one; the task goes on and ends. Then a
   resend of one of its updates (same id, as TARS does after a failure) reaches Discord once only.
5. A task whose code never comes: n8n's wait expires, Discord is told, and no n8n execution has failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import httpx

from communication.delivery import make_notifier, progress_event
from core import event_log
from core.config import TARS_PREFIXES, load_settings
from core.redis_conn import EmbeddedRedis, connect, free_port
from core.supervisor import stop_process
from core.task_states import OUTCOMES
from tests.fakes.anthropic_api import FakeAnthropic, bash, text
from tests.fakes.webhook_server import FakeWebhook

ROOT = Path(__file__).resolve().parents[2]
N8N_VERSION = "2.41.1"  # the version issue 15 was found on (2.41.3 names an @n8n/agents the registry does not have)
NODE_VERSION = "24.15.0"
CACHE = Path(os.environ.get("TARS_N8N_CACHE") or Path.home() / ".cache" / "tars-n8n")
WORKFLOW = ROOT / "docs" / "n8n_tars_workflow.json"
CREDENTIALS = ROOT / "docs" / "n8n_tars_credentials.example.json"
TARS_ADDRESS = "https://YOUR-TARS-HOST"  # the placeholder the user replaces in "Send the code to TARS"
SHIPPED_WAIT = "seconds: 300"  # "Wait for the code" waits as long as TARS does (CONFIRMATION_TIMEOUT_SECONDS)
CODE_WAIT_SECONDS = 60  # both waits here, so that the expiry run takes a minute or two, not five
CODE = "6283"
WRONG_CODE = "1111"
LINK = re.compile(r"https?://\S+/form-waiting/\S+")
RAW_MENTION = re.compile(r"@(everyone|here)|<[@#][!&]?\d+>", re.IGNORECASE)

START = time.monotonic()


def say(message: str) -> None:
    stamp = time.strftime("%H:%M:%S", time.localtime()) + f".{int(time.time() * 1000) % 1000:03d}"
    print(f"[{stamp} +{time.monotonic() - START:6.1f}s] {message}", flush=True)


class Failed(Exception):
    """A step that cannot go on."""


def wait_for(check, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (httpx.HTTPError, OSError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Run:
    """The processes, files and verdicts of one run; stops every process it started, in reverse order."""

    def __init__(self, keep: bool):
        self.keep = keep
        self.dir = Path(tempfile.mkdtemp(prefix="tars-n8n-check-"))
        self.processes: list[tuple[str, subprocess.Popen, bool]] = []
        self.logs: list = []
        self.cleanups: list = []
        self.failures: list[str] = []

    def check(self, ok: bool, what: str) -> bool:
        say(f"{'ok    ' if ok else 'FAILED'} {what}")
        if not ok:
            self.failures.append(what)
        return ok

    def start(self, name: str, argv: list[str], env: dict, tars: bool = False) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "wb")
        self.logs.append(log)
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # its own process group: its children go with it
        self.processes.append((name, process, tars))
        say(f"started {name} (pid {process.pid}): {' '.join(argv[:4])}{' …' if len(argv) > 4 else ''}")
        return process

    def log(self, name: str) -> str:
        path = self.dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for name, process, tars in reversed(self.processes):
            if process.poll() is None:
                if tars:
                    stop_process(process, grace=15)  # Ctrl+C as a person would: a worker finishes warm
                else:
                    process.terminate()
                    try:
                        process.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
            try:
                os.killpg(process.pid, signal.SIGKILL)  # what it started and left behind (n8n's task runner)
            except (ProcessLookupError, PermissionError):
                pass
            say(f"stopped {name} (pid {process.pid}, exit {process.returncode})")
        for cleanup in [*reversed(self.cleanups), *(log.close for log in self.logs)]:
            cleanup()
        if self.keep or self.failures:
            say(f"logs and n8n's folder kept in {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


# --- 1. n8n and Node from the npm registry -----------------------------------------------------------------------

def node_package() -> str:
    system = {"Linux": "linux", "Darwin": "darwin"}.get(platform.system())
    cpu = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower())
    if not system or not cpu:
        raise Failed(f"no Node build on npm for {platform.system()} {platform.machine()}")
    return f"node-{system}-{cpu}"


def npm(env: dict, *args: str) -> None:
    npm_bin = shutil.which("npm")
    if not npm_bin:
        raise Failed("npm is not on PATH: install Node's npm (any version) to fetch n8n and Node 24")
    done = subprocess.run([npm_bin, *args], env=env, capture_output=True, text=True)
    if done.returncode:
        raise Failed(f"npm {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def node_gyp(env: dict) -> list[str]:
    """npm's own node-gyp (npm ships it), run by the Node 24 on PATH."""
    bundled = Path(shutil.which("npm") or "npm").resolve().parents[1] / "node_modules" / "node-gyp" / "bin" / \
        "node-gyp.js"
    if not bundled.is_file():
        raise Failed(f"npm's node-gyp is not at {bundled}: it builds sqlite3 for n8n")
    return [shutil.which("node", path=env["PATH"]) or "node", str(bundled)]


def install() -> tuple[Path, str]:
    """(the n8n command, the PATH with Node 24 first), from the cache when there."""
    root = CACHE / N8N_VERSION
    package = node_package()
    node_home = root / "node" / "node_modules" / package
    path = f"{node_home / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, "npm_config_update_notifier": "false"}
    if not (node_home / "bin" / "node").is_file():
        say(f"installing Node {NODE_VERSION} ({package} from npm) into {root / 'node'}")
        npm(env, "install", "--prefix", str(root / "node"), f"{package}@{NODE_VERSION}", "--ignore-scripts",
            "--no-audit", "--no-fund")
    node_version = subprocess.run([str(node_home / "bin" / "node"), "--version"], capture_output=True, text=True)
    say(f"Node: {node_version.stdout.strip()} ({node_home / 'bin' / 'node'})")
    n8n_home = root / "n8n"
    n8n = n8n_home / "node_modules" / ".bin" / "n8n"
    done = n8n_home / ".tars-installed"  # written last: a broken install is redone
    if not done.is_file():
        say(f"installing n8n {N8N_VERSION} from npm into {n8n_home} (a few minutes the first time)")
        npm(env, "install", "--prefix", str(n8n_home), f"n8n@{N8N_VERSION}", "--ignore-scripts", "--no-audit",
            "--no-fund")
        sqlite = n8n_home / "node_modules" / "sqlite3"
        say("building sqlite3 for Node 24 (node-gyp, against the headers of the Node package)")
        built = subprocess.run([*node_gyp(env), "rebuild", "--release", "-j", "2", f"--nodedir={node_home}"],
                               cwd=sqlite, env=env, capture_output=True, text=True)
        if built.returncode:
            raise Failed(f"building sqlite3 failed:\n{built.stdout[-2000:]}\n{built.stderr[-2000:]}")
        done.write_text(f"n8n {N8N_VERSION}, {package} {NODE_VERSION}\n")
    else:
        say(f"n8n {N8N_VERSION}: cached in {n8n_home}")
    return n8n, path


# --- 2. n8n set up by its CLI, then started ------------------------------------------------------------------------

class N8n:
    def __init__(self, run: Run, command: Path, path: str):
        self.run, self.command = run, command
        self.port, broker = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        home = run.dir / "n8n-home"
        home.mkdir()
        # n8n's own environment, not TARS's: n8n reads N8N_WEBHOOK_URL as its public address (the form links)
        self.env = {"PATH": path, "HOME": str(home), "LANG": os.environ.get("LANG", "C.UTF-8"),
                    "N8N_USER_FOLDER": str(home), "N8N_PORT": str(self.port), "N8N_LISTEN_ADDRESS": "127.0.0.1",
                    "N8N_HOST": "127.0.0.1", "N8N_PROTOCOL": "http", "N8N_WEBHOOK_URL": self.url + "/",
                    "N8N_EDITOR_BASE_URL": self.url + "/", "N8N_RUNNERS_BROKER_PORT": str(broker),
                    "N8N_ENCRYPTION_KEY": secrets.token_hex(24), "N8N_SECURE_COOKIE": "false",
                    "N8N_DIAGNOSTICS_ENABLED": "false", "N8N_DIAGNOSTICS_CONFIG_FRONTEND": "",
                    "N8N_DIAGNOSTICS_CONFIG_BACKEND": "", "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
                    "N8N_TEMPLATES_ENABLED": "false", "N8N_PERSONALIZATION_ENABLED": "false",
                    "N8N_HIRING_BANNER_ENABLED": "false", "N8N_DYNAMIC_BANNERS_ENABLED": "false",
                    "N8N_AI_ENABLED": "false", "N8N_LICENSE_AUTO_RENEW_ENABLED": "false",
                    "N8N_DISABLED_MODULES": "mcp-registry", "EXTERNAL_FRONTEND_HOOKS_URLS": "",
                    "N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "true", "N8N_LOG_LEVEL": "info"}
        self.api: httpx.Client | None = None

    def cli(self, *args: str) -> str:
        """One n8n CLI command, as the doc writes it; its last lines printed."""
        began = time.monotonic()
        done = subprocess.run([str(self.command), *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=600)
        lines = [line for line in (done.stdout + done.stderr).splitlines()
                 if line.strip() and "migration" not in line.lower()]
        tail = " | ".join(lines[-2:])
        self.run.check(done.returncode == 0 and "error" not in tail.lower(),
                       f"n8n {' '.join(args)} → exit {done.returncode} in {time.monotonic() - began:.1f} s: {tail}")
        return done.stdout + done.stderr

    def start(self) -> None:
        self.process = self.run.start("n8n", [str(self.command), "start"], self.env)
        wait_for(lambda: self.process.poll() is not None or httpx.get(self.url + "/healthz/readiness").status_code
                 == 200, 180, "n8n to be ready")
        if self.process.poll() is not None:
            raise Failed(f"n8n exited ({self.process.returncode}):\n{self.run.log('n8n')[-3000:]}")
        say(f"n8n is ready at {self.url} (GET /healthz/readiness 200)")

    def open_api(self) -> None:
        """The owner account n8n asks for on first start, then a public-API key that reads executions."""
        self.site = httpx.Client(base_url=self.url, headers={"browser-id": "tars-check"}, timeout=30)
        self.run.cleanups.append(self.site.close)
        owner = self.site.post("/rest/owner/setup", json={"email": "owner@example.com", "firstName": "TARS",
                                                          "lastName": "Owner", "password": secrets.token_urlsafe(12)
                                                          + "A1"})
        key = self.site.post("/rest/api-keys", json={"label": "tars-check", "expiresAt": None, "scopes": [
            "workflow:read", "execution:list", "execution:read"]})
        say(f"n8n owner set up (HTTP {owner.status_code}), API key made (HTTP {key.status_code})")
        if key.status_code != 200:
            raise Failed(f"no n8n API key: {key.text[:300]}")
        self.api = httpx.Client(base_url=self.url + "/api/v1", timeout=30,
                                headers={"X-N8N-API-KEY": key.json()["data"]["rawApiKey"]})
        self.run.cleanups.append(self.api.close)

    def save_as_the_editor_does(self, workflow: dict) -> httpx.Response:
        """What the editor's Import from File, then Save, sends: the file as a new workflow (no id), unpublished;
        here with credential ids n8n does not have, as when the user made the credentials in the editor."""
        fields = json.loads(json.dumps({k: workflow[k] for k in ("nodes", "connections", "settings")}))
        for node in fields["nodes"]:
            for ref in node.get("credentials", {}).values():
                ref["id"] = "madeInTheEditor"
        return self.site.post("/rest/workflows", json={**fields, "name": workflow["name"] + " (editor import)",
                                                       "active": False})

    def workflow(self, workflow_id: str) -> dict:
        return self.api.get(f"/workflows/{workflow_id}").raise_for_status().json()

    def executions(self, workflow_id: str) -> list[dict]:
        answer = self.api.get("/executions", params={"workflowId": workflow_id, "limit": 250}).raise_for_status()
        return sorted(answer.json()["data"], key=lambda e: int(e["id"]))

    def execution(self, execution_id: str) -> dict:
        return self.api.get(f"/executions/{execution_id}", params={"includeData": "true"}).raise_for_status().json()

    def path(self, execution_id: str) -> str:
        """The nodes an execution ran, in order, with how often; and its error if any."""
        result = (self.execution(execution_id).get("data") or {}).get("resultData") or {}
        runs = result.get("runData") or {}
        nodes = sorted(runs.items(), key=lambda kv: min(r.get("startTime", 0) for r in kv[1]))
        path = " → ".join(name + (f" ×{len(r)}" if len(r) > 1 else "") for name, r in nodes)
        error = result.get("error")
        return path + (f"  ERROR: {error.get('message')}" if error else "")


def filled_in(tars_url: str, wait_seconds: int) -> str:
    """What the user edits after importing: TARS's address in "Send the code to TARS", and (when
    CONFIRMATION_TIMEOUT_SECONDS is not 300) the wait of "Wait for the code"."""
    raw = WORKFLOW.read_text()
    if raw.count(TARS_ADDRESS) != 1 or raw.count(SHIPPED_WAIT) != 1:
        raise Failed(f"{WORKFLOW.name} no longer has one {TARS_ADDRESS} and one '{SHIPPED_WAIT}' to fill in")
    return raw.replace(TARS_ADDRESS, tars_url).replace(SHIPPED_WAIT, f"seconds: {wait_seconds}")


# --- 3. TARS ------------------------------------------------------------------------------------------------------

class Tars:
    def __init__(self, run: Run, n8n_url: str):
        self.run = run
        data = run.dir / "redis"
        data.mkdir()
        self.redis_server = EmbeddedRedis(data, persist=False, binary=shutil.which("redis-server")).start()
        run.cleanups.append(self.redis_server.stop)
        say(f"Redis (private) at {self.redis_server.url}")
        self.redis = connect(self.redis_server.url)
        run.cleanups.append(self.redis.close)
        self.fake_api = FakeAnthropic().start()
        run.cleanups.append(self.fake_api.stop)
        self.discord = FakeWebhook()  # Discord's channel webhook: records what n8n posts, answers 204 as Discord
        run.cleanups.append(self.discord.stop)
        self.discord_url = self.discord.url("/api/webhooks/123456789012345678/stand-in-token")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.secret = secrets.token_urlsafe(24)
        self.projects = run.dir / "projects"
        self.projects.mkdir()
        self.env = {name: value for name, value in os.environ.items() if not name.startswith(TARS_PREFIXES)}
        self.env.update({
            "TARS_ENV_FILE": os.devnull, "REDIS_URL": self.redis_server.url, "EMBEDDED_REDIS": "false",
            "ANTHROPIC_API_KEY": "sk-ant-test-0123456789abcdef", "ANTHROPIC_BASE_URL": self.fake_api.base_url,
            "ANTHROPIC_MAX_RETRIES": "2", "PROJECTS_ROOT": str(self.projects), "DATA_DIR": str(run.dir / "data"),
            "UV_CACHE_DIR": str(CACHE / "uv-cache"), "MAX_TASK_RUNTIME_MINUTES": "5", "LOG_LEVEL": "INFO",
            "CONFIRMATION_CODE": CODE, "CONFIRMATION_TIMEOUT_SECONDS": str(CODE_WAIT_SECONDS),
            "WEBHOOK_SECRET": self.secret, "N8N_WEBHOOK_URL": n8n_url + "/webhook/tars-progress",
            "HOST": "127.0.0.1", "PORT": str(self.port)})
        self.http = httpx.Client(base_url=self.url, headers={"X-TARS-Webhook-Secret": self.secret}, timeout=30)
        run.cleanups.append(self.http.close)

    def start(self) -> None:
        self.run.start("tars-server", [sys.executable, "main_tars.py", "serve"], self.env, tars=True)
        wait_for(lambda: httpx.get(self.url + "/health").status_code == 200, 60, "TARS's server")
        say(f"TARS's server is up at {self.url} (GET /health 200)")
        self.worker = self.run.start("tars-worker", [sys.executable, "start_worker.py", "--name", "n8n-check"],
                                     self.env, tars=True)

    def start_task(self, goal: str, folder: str) -> str:
        project = self.projects / folder
        (project / folder).mkdir(parents=True)
        (project / folder / "out.txt").write_text("built\n")
        (project / "README.md").write_text(f"# {folder}\n")
        answer = self.http.post("/api/tasks", json={"goal": goal, "project_path": folder})
        say(f"POST /api/tasks {goal!r} → HTTP {answer.status_code} {answer.text}")
        if answer.status_code != 201:
            raise Failed("TARS did not start the task")
        return answer.json()["task_id"]

    def status(self, task_id: str) -> dict:
        return self.http.get(f"/api/tasks/{task_id}").raise_for_status().json()

    def wait_ended(self, task_id: str, timeout: float) -> dict:
        return wait_for(lambda: (s := self.status(task_id))["status"] in OUTCOMES and s, timeout,
                        f"task {task_id} to end")


class Discord:
    """What n8n posted to the stand-in for Discord, read in order."""

    def __init__(self, server: FakeWebhook):
        self.server = server
        self.read = 0

    def posts(self) -> list[dict]:
        return self.server.bodies()

    def next(self, match, timeout: float, what: str) -> dict:
        """The first post after the ones already read for which match(content) holds."""
        def found():
            posts = self.posts()
            for index in range(self.read, len(posts)):
                if match(posts[index].get("content", "")):
                    self.read = index + 1
                    return posts[index]
            return None
        post = wait_for(found, timeout, what)
        say(f"Discord got: {post['content']!r}")
        return post

    def any(self, match, timeout: float, what: str) -> dict:
        """A post, earlier or later than the ones read, for which match(content) holds (the cursor stays)."""
        post = wait_for(lambda: next((p for p in self.posts() if match(p.get("content", ""))), None), timeout, what)
        say(f"Discord has: {post['content']!r}")
        return post


def answer_form(run: Run, link: str, code: str, what: str) -> None:
    """The owner on the phone: opens the link (GET shows the form), types the code, submits (POST)."""
    page = httpx.get(link, timeout=30)
    run.check(page.status_code == 200 and "field-0" in page.text,
              f"GET the form link → HTTP {page.status_code}, the form has its code field")
    sent = httpx.post(link, files={"field-0": (None, code)}, timeout=30)  # multipart, as the page's script sends
    run.check(sent.status_code == 200, f"POST the form with {what} → HTTP {sent.status_code} {sent.text[:80]}")


# --- the story ----------------------------------------------------------------------------------------------------

def story(run: Run) -> None:
    command, path = install()
    n8n = N8n(run, command, path)
    version = subprocess.run([str(command), "--version"], env=n8n.env, capture_output=True, text=True)
    say(f"n8n --version → {version.stdout.strip()}")

    tars = Tars(run, n8n.url)
    credentials = json.loads(CREDENTIALS.read_text())
    for credential in credentials:  # what the user types into the template before importing it
        if credential["type"] == "httpHeaderAuth":
            credential["data"]["value"] = tars.secret
        elif credential["type"] == "discordWebhookApi":
            credential["data"]["webhookUri"] = tars.discord_url
    filled = run.dir / "credentials.json"
    filled.write_text(json.dumps(credentials))
    workflow_id = json.loads(WORKFLOW.read_text())["id"]
    workflow = run.dir / "workflow.json"
    workflow.write_text(filled_in(tars.url, CODE_WAIT_SECONDS))

    say("--- n8n set up by its CLI, in the doc's order (n8n not running: the CLI writes its database) ---")
    n8n.cli("import:credentials", f"--input={filled}")
    n8n.cli("import:workflow", f"--input={WORKFLOW.relative_to(ROOT)}")
    say(f"filled in: TARS's address {tars.url}, the code wait {CODE_WAIT_SECONDS} s (as shipped: 300 s)")
    n8n.cli("import:workflow", f"--input={workflow}")
    n8n.cli("publish:workflow", f"--id={workflow_id}")
    n8n.cli("list:workflow", "--active=true")
    if run.failures:
        raise Failed("n8n's CLI set-up failed")
    n8n.start()
    n8n.open_api()
    shown = n8n.workflow(workflow_id)
    run.check(shown.get("active") is True, f"the workflow {workflow_id} is published (active: {shown.get('active')})")
    ids = {c["id"] for c in credentials}
    linked = {node["name"]: node["credentials"] for node in shown["nodes"] if node.get("credentials")}
    run.check(all(ref.get("id") in ids for refs in linked.values() for ref in refs.values()),
              f"every node's credential is linked: {sorted({r['name'] for v in linked.values() for r in v.values()})}"
              f" on {len(linked)} nodes")

    saved = n8n.save_as_the_editor_does(json.loads(WORKFLOW.read_text()))
    refs = [ref for node in saved.json().get("data", {}).get("nodes", []) for ref in
            node.get("credentials", {}).values()] if saved.status_code == 200 else []
    run.check(saved.status_code == 200 and len(refs) == len(linked) and all(r.get("id") in ids for r in refs),
              f"the editor's import and save (POST /rest/workflows → HTTP {saved.status_code}) links the "
              f"credentials by name and type when their ids differ: {len(refs)} nodes")

    say("--- TARS ---")
    tars.start()
    discord = Discord(tars.discord)

    say("--- 1. a code is asked; a wrong one, then the right one, through the form links n8n posts ---")
    tars.fake_api.script([bash("rm -rf build"), text("Removed the build folder.")], match="build folder",
                         name="build")
    goal = "Remove the build folder, then tell @everyone and <@&123456789012345678>"
    first = tars.start_task(goal, "build")
    started = discord.next(lambda c: first in c and "started" in c, 90, "the started update in Discord")
    run.check(not RAW_MENTION.search(started["content"]) and "@\u200beveryone" in started["content"],
              "the goal's @everyone and role mention reach Discord broken (a zero-width space): nobody is pinged")
    asked = discord.next(lambda c: first in c and LINK.search(c), 120, "the form link in Discord")
    run.check("rm -rf build" in asked["content"], "the post names the command")
    answer_form(run, LINK.search(asked["content"]).group(0), WRONG_CODE, "a WRONG code")
    again = discord.next(lambda c: first in c and ("attempt" in c or "TARS answered" in c), 60,
                         "TARS's answer to the wrong code")
    run.check("4 attempts left" in again["content"] and bool(LINK.search(again["content"])),
              "after the wrong code Discord gets TARS's answer (4 attempts left) and a new link to answer")
    run.check(tars.status(first)["status"] == "awaiting_confirmation", "the task still waits for its code")
    if LINK.search(again["content"]):
        answer_form(run, LINK.search(again["content"]).group(0), CODE, "the RIGHT code")
        accepted = discord.next(lambda c: first in c and "TARS answered" in c, 60, "TARS's answer to the right code")
        run.check("Confirmation code received" in accepted["content"], "TARS accepted the code")
    ended = tars.wait_ended(first, 180)
    run.check(ended["status"] == "complete", f"task {first} ended: {ended['status']}")
    run.check(f"[task {first}] confirmation approved: rm -rf build" in run.log("tars-worker"),
              "the worker ran `rm -rf build` once approved (its log)")
    discord.any(lambda c: first in c and "confirmation received" in c, 60, "TARS's 'confirmation received'")
    discord.any(lambda c: first in c and c.startswith("🎉"), 60, "the task's ending in Discord")

    say("--- 2. TARS resends an update (the same id, as after a failure): Discord gets it once ---")
    before = {e["id"] for e in n8n.executions(workflow_id)}
    event = next(e for e in event_log.read(tars.redis, first) if e.type == "started")  # delivered already
    resent = progress_event(first, event, goal)
    os.environ.update(tars.env)  # this process sends it with TARS's own notifier and settings
    with make_notifier(load_settings()) as notifier:
        outcome = notifier.deliver("n8n", resent)
    say(f"resent {resent.id} ({resent.type}) to n8n: {outcome}")
    execution = wait_for(lambda: next((e for e in n8n.executions(workflow_id) if e["id"] not in before and
                                       e["finished"] and resent.id in json.dumps(n8n.execution(e["id"]))), None),
                         60, "n8n's execution of the resend")
    path = n8n.path(execution["id"])
    say(f"execution {execution['id']} (the resend): {execution['status']} {path}")
    copies = sum(1 for p in discord.posts() if p.get("content") == started["content"])
    run.check(outcome == "sent" and path == "TARS progress → New update?" and copies == 1,
              f"n8n answered the resend 2xx, its workflow dropped it: Discord has {copies} copy of that update")

    say("--- 3. a code that never comes: the wait expires ---")
    tars.fake_api.script([bash("rm -rf dist"), text("Left the dist folder: no code came.")], match="dist folder",
                         name="dist")
    second = tars.start_task("Remove the dist folder", "dist")
    asked = discord.next(lambda c: second in c and LINK.search(c), 120, "the form link in Discord")
    say(f"nobody answers; TARS and n8n both wait {CODE_WAIT_SECONDS} s (n8n looks at its waits once a minute)")
    expired = discord.next(lambda c: second in c and "No code came" in c, CODE_WAIT_SECONDS + 150,
                           "n8n to tell Discord that no code came")
    run.check(bool(expired), "Discord is told that no code came")
    ended = tars.wait_ended(second, 180)
    run.check(ended["status"] == "complete", f"task {second} ended: {ended['status']}")
    run.check(f"[task {second}] confirmation timeout: rm -rf dist" in run.log("tars-worker"),
              "the worker never ran `rm -rf dist` (its log: confirmation timeout)")
    discord.any(lambda c: second in c and "command not run" in c, 60, "TARS's own 'command not run' update")
    late = httpx.get(LINK.search(asked["content"]).group(0), timeout=30)
    page = "'Your response has been recorded'" if "Your response has been recorded" in late.text else "another page"
    say(f"GET the expired link → HTTP {late.status_code}, n8n shows {page} (n8n's page for a finished execution)")

    say("--- n8n's executions of the workflow (public API) ---")
    executions = wait_for(lambda: (e := n8n.executions(workflow_id)) and all(x["finished"] for x in e) and e, 60,
                          "every execution to finish")
    for execution in executions:
        say(f"execution {execution['id']}: {execution['status']:8} {n8n.path(execution['id'])}")
    statuses = {e["status"] for e in executions}
    run.check(statuses == {"success"}, f"{len(executions)} executions, statuses {sorted(statuses)}: none errored")
    worker_log = run.log("tars-worker")
    problems = [line for line in worker_log.splitlines() if "n8n (" in line and ("refused" in line or "failed" in
                                                                                   line)]
    run.check(not problems, f"TARS delivered every update to n8n ({len(problems)} refused or failed)" +
              (f": {problems[:3]}" if problems else ""))
    posts = discord.posts()
    run.check(all(not RAW_MENTION.search(p.get("content", "")) for p in posts),
              f"none of the {len(posts)} Discord posts pings anyone")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.integration.n8n", description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the logs and n8n's folder (kept on failure)")
    args = parser.parse_args(argv)
    say(f"TARS's n8n workflow on a real n8n {N8N_VERSION} (Node {NODE_VERSION}); cache {CACHE}")
    run = Run(args.keep)
    try:
        story(run)
    except Failed as exc:
        run.failures.append(str(exc))
        say(f"FAILED {exc}")
    except Exception:
        run.failures.append("crashed")
        say("FAILED with a crash:\n" + traceback.format_exc())
    finally:
        if run.failures:
            for name in ("n8n", "tars-worker", "tars-server"):
                lines = [line for line in run.log(name).splitlines() if not line.lstrip().startswith("at ")]
                print(f"--- last lines of {name}.log ---\n" + "\n".join(lines[-25:]), flush=True)
        run.stop()
    if run.failures:
        say(f"{len(run.failures)} check(s) FAILED: " + "; ".join(run.failures))
        return 1
    say("every check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
