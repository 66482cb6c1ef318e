"""The documents a new user follows must match the code."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import json
import re
import subprocess
from pathlib import Path
from unittest import mock

import pytest

from communication.api import ConfirmationBody
from communication.notifier import EVENT_TYPES
from core import keys
from core.config import RENAMED_SETTINGS, Settings
from core.defaults import JOB_TIMEOUT_MARGIN_SECONDS
from tests import doccheck
from tests.integration import n8n as n8n_check
from tests.conftest import TEST_CODE, TEST_WEBHOOK_SECRET
from tests.fakes.anthropic_api import bash, text
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
SETUP = (ROOT / "docs" / "N8N_BACKGROUND_TASKS_SETUP.md").read_text()


WORKFLOW = json.loads((ROOT / "docs" / "n8n_tars_workflow.json").read_text())
NODES = {node["name"]: node for node in WORKFLOW["nodes"]}
CREDENTIALS = json.loads((ROOT / "docs" / "n8n_tars_credentials.example.json").read_text())


def after(name: str, branch: int = 0) -> list[str]:
    """The nodes the workflow's node `name` leads to on its output `branch` (an If: 0 true, 1 false)."""
    return [link["node"] for link in WORKFLOW["connections"][name]["main"][branch]]


def test_the_n8n_workflow_imports_by_the_cli_and_points_at_tars():
    assert isinstance(WORKFLOW.get("id"), str) and WORKFLOW["id"]  # `n8n import:workflow` needs it
    assert f"--id={WORKFLOW['id']}" in SETUP and WORKFLOW["active"] is False
    for source, outputs in WORKFLOW["connections"].items():
        assert source in NODES
        assert all(link["node"] in NODES for branch in outputs["main"] for link in branch)
    hook = NODES["TARS progress"]
    assert hook["type"] == "n8n-nodes-base.webhook"
    assert hook["parameters"]["authentication"] == "headerAuth" and hook["parameters"]["httpMethod"] == "POST"
    assert f"/webhook/{hook['parameters']['path']}" in SETUP
    back = NODES["Send the code to TARS"]
    assert back["parameters"]["url"] == f"{n8n_check.TARS_ADDRESS}/webhook/background-confirmation"
    assert f"`{n8n_check.TARS_ADDRESS.split('//')[1]}`" in SETUP  # the guide says to replace it
    sent = [field["name"] for field in back["parameters"]["bodyParameters"]["parameters"]]
    assert sent == list(ConfirmationBody.model_fields)  # task_id and code
    assert back["credentials"] == hook["credentials"]  # one shared secret, both directions
    assert "active" not in json.dumps(WORKFLOW["nodes"]).lower()  # n8n 2.x publishes; no node speaks of "active"


def test_the_workflow_links_the_credentials_the_guide_creates_first():
    """Each node names its credential by the id and the name of one in the CLI's template, and the guide has the
    user create those (by that name) before importing the workflow; the template holds no real secret."""
    made = {(c["type"], c["id"], c["name"]) for c in CREDENTIALS}
    used = {(kind, ref["id"], ref["name"]) for node in WORKFLOW["nodes"] for kind, ref in
            node.get("credentials", {}).items()}
    assert used == made
    guide = SETUP[SETUP.index("## 2. Set up n8n"):SETUP.index("## 3. ")]  # (its shell block has # lines)
    for _, _, name in made:
        assert f"**{name}**" in guide
    assert guide.index("Credentials → Create") < guide.index("Import** [docs/n8n_tars_workflow.json]")
    assert guide.index("import:credentials") < guide.index("import:workflow") < guide.index("publish:workflow")
    for credential in CREDENTIALS:
        assert all("PASTE" in value for value in credential["data"].values() if value != "X-TARS-Webhook-Secret")


def test_the_workflow_asks_again_after_a_wrong_code_and_tells_discord_when_the_wait_ends():
    assert after("TARS progress") == ["New update?"] and after("New update?") == ["Needs a code?"]
    assert NODES["New update?"]["parameters"]["dedupeValue"] == "={{ $json.body.id }}"  # TARS's event id
    assert after("Needs a code?", 0) == ["Ask for the code"] and after("Needs a code?", 1) == ["Post to Discord"]
    assert "confirmation_required" in json.dumps(NODES["Needs a code?"])
    assert "$execution.resumeFormUrl" in NODES["Ask for the code"]["parameters"]["content"]
    wait = NODES["Wait for the code"]["parameters"]
    assert after("Ask for the code") == ["Wait for the code"] and wait["resume"] == "form"
    assert wait["limitWaitTime"] is True and n8n_check.SHIPPED_WAIT in wait["maxDateAndTime"]
    assert f"{n8n_check.SHIPPED_WAIT}" == f"seconds: {Settings.model_fields['CONFIRMATION_TIMEOUT_SECONDS'].default:g}"
    assert after("Wait for the code") == ["Got a code?"]
    assert after("Got a code?", 0) == ["Send the code to TARS"]
    assert after("Got a code?", 1) == ["No code came"]  # the wait ran out: no HTTP call with no code
    assert after("Send the code to TARS") == ["Try again?"] and "attempts_left" in json.dumps(NODES["Try again?"])
    assert after("Try again?", 0) == ["Ask again"] and after("Ask again") == ["Wait for the code"]
    assert "$execution.resumeFormUrl" in NODES["Ask again"]["parameters"]["content"]
    assert after("Try again?", 1) == ["Tell Discord the answer"]
    discord = [node for node in WORKFLOW["nodes"] if node["type"] == "n8n-nodes-base.discord"]
    assert len(discord) == 5 and all(node["parameters"]["authentication"] == "webhook" for node in discord)
    calls = [node for node in WORKFLOW["nodes"] if node["type"] == "n8n-nodes-base.httpRequest"]
    assert calls == [NODES["Send the code to TARS"]]  # Discord only through the Discord node: TARS's text is escaped
    for name in NODES:
        assert f"**{name}**" in SETUP


def test_every_n8n_command_of_the_guide_is_one_the_real_n8n_check_runs():
    ran = {(sub, frozenset(re.findall(r"--([\w-]+)", flags))) for sub, flags in
           re.findall(r'\.cli\("([\w:]+)"((?:, f?"--[^"]*")*)\)', Path(n8n_check.__file__).read_text())}
    documented = [c for c in COMMANDS if c.program == "n8n"]
    assert documented
    for command in documented:
        flags = frozenset(a[2:].split("=")[0] for a in command.argv[2:])
        assert (command.argv[1], flags) in ran, f"{command.doc}: `{command}` is not run by tests/integration/n8n.py"


def test_the_setup_guide_names_every_event_type_and_answer():
    for kind in EVENT_TYPES:
        assert f"`{kind}`" in SETUP
    for status in ("200", "401", "403", "404", "409", "413", "422"):
        assert f"| {status}" in SETUP
    assert "X-TARS-Webhook-Secret" in SETUP and "/webhook-test/" in SETUP


# ================================================================================================
# The whole documentation set against the code (helpers: tests/doccheck.py). Every command, Redis
# key, setting, route, status and link the docs name is checked; nothing in them can drift.
# ================================================================================================


DOCS = {doccheck.rel(p): doccheck.text(p) for p in doccheck.DOCS}
QUICK = DOCS["docs/BACKGROUND_TASKS_QUICK_REFERENCE.md"]
IMPL = DOCS["docs/BACKGROUND_TASKS_IMPLEMENTATION.md"]
README = DOCS["README.md"]
REQUIRED_DOCS = ["BACKGROUND_PROGRAMMING.md", "N8N_BACKGROUND_TASKS_SETUP.md", "BACKGROUND_TASKS_QUICK_REFERENCE.md",
                 "BACKGROUND_TASKS_IMPLEMENTATION.md", "AUTONOMOUS_PROGRAMMING_SUMMARY.md",
                 "COMING_FROM_THE_ORIGINAL_TARS.md", "SECURITY.md"]
COMMANDS = doccheck.commands()
WORKER_NAME = "docs-worker"
CALL = "docs-call"


# --- features the docs describe that may still be landing: each is one explicit xfail -------------
def _task_subcommands() -> set[str]:
    import main_tars

    task = next(a for a in main_tars.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    task = task.choices["task"]
    return set(next(a for a in task._actions if isinstance(a, argparse._SubParsersAction)).choices)


def _app_routes(connection=None) -> set[tuple[str, str]]:
    import redis as redis_lib
    from fastapi.routing import APIRoute, APIWebSocketRoute

    from communication.app import create_app
    app = create_app(Settings(_env_file=None), connection or redis_lib.Redis())
    found = set()

    def walk(routes):
        for route in routes:
            if hasattr(route, "original_router"):  # FastAPI's included router (no prefixes in TARS)
                walk(route.original_router.routes)
            elif isinstance(route, APIWebSocketRoute):
                found.add(("WS", doccheck.normal_path(route.path)))
            elif isinstance(route, APIRoute):
                found.update((m, doccheck.normal_path(route.path)) for m in route.methods if m != "HEAD")

    walk(app.routes)
    # the walk saw every HTTP route OpenAPI knows (FastAPI's own /docs, /redoc, /openapi.json aside)
    assert {p for _, p in found if _ != "WS"} == {doccheck.normal_path(p) for p in app.openapi()["paths"]}
    return found


def _key_values() -> set[str]:
    values = {v for n, v in vars(keys).items() if n.isupper() and isinstance(v, str)}
    values |= {f("X") for f in vars(keys).values() if inspect.isfunction(f) and f.__module__ == keys.__name__
               and len(inspect.signature(f).parameters) == 1}
    return values


PENDING = {  # feature -> (is it in the code now?, what the docs describe)
    "task retry": (lambda: "retry" in _task_subcommands(),
                   "waiting on code: `python main_tars.py task retry TASK_ID` (main_tars.build_parser)"),
    "retry route": (lambda: ("POST", "/api/tasks/{}/retry") in _app_routes(),
                    "waiting on code: HTTP POST /api/tasks/{task_id}/retry (communication/api.py)"),
    "bench": (lambda: importlib.util.find_spec("bench.__main__") is not None,
              "waiting on code: `python -m bench` (bench/__main__.py) printing every figure"),
    "reaper keys": (lambda: {"tars:reaper:leader", "tars:worker:X", "task:X:reaped"} <= _key_values(),
                    "waiting on code: tars:reaper:leader, tars:worker:<name>, task:<id>:reaped in core/keys.py"),
}


def landed(feature: str) -> bool:
    try:
        return bool(PENDING[feature][0]())
    except Exception:
        return False


def pending_for(item: str) -> str | None:
    """The feature a documented item waits for, when that feature is not in the code yet."""
    feature = ("task retry" if re.search(r"\btask retry\b", item) else
               "retry route" if "/retry" in item else
               "bench" if re.search(r"-m bench(\s|$)", item) else
               "reaper keys" if re.search(r"tars:reaper|tars:worker|:reaped", item) else None)
    return feature if feature and not landed(feature) else None


@pytest.mark.parametrize("feature", sorted(PENDING))
def test_a_feature_the_docs_describe_is_in_the_code(feature):
    if not landed(feature):
        pytest.xfail(PENDING[feature][1])


# --- 1. commands: parsed by the real parsers ------------------------------------------------------
def parse_main(argv):
    import main_tars

    return main_tars.build_parser().parse_args(argv)


def parse_start_worker(argv):
    """start_worker.py builds its parser inside main(): run main() until the parser has parsed, then stop."""
    import start_worker

    parsed = {}

    class Parsed(Exception):
        pass

    real = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        parsed["args"] = real(self, args, namespace)
        raise Parsed

    with mock.patch.object(argparse.ArgumentParser, "parse_args", parse_then_stop):
        try:
            start_worker.main(list(argv))
        except Parsed:
            return parsed["args"]
    raise AssertionError("start_worker.main() did not parse its arguments")


def with_real_values(argv, task_id="a7f3c1", code=TEST_CODE, **placeholders):
    out = []
    for arg in argv:
        arg = doccheck.ID_PLACEHOLDER.sub(task_id, arg)
        arg = doccheck.CODE_PLACEHOLDER.sub(code, arg)
        for name, value in placeholders.items():
            arg = arg.replace(f"<{name}>", value)
        out.append(arg)
    return out


def parse_documented(argv) -> None:
    """A documented python command: the real parser must accept it (SystemExit = unknown command or flag)."""
    program, *rest = argv
    assert Path(program).name in ("python", "python3"), argv
    if rest[0] == "main_tars.py":
        parse_main(rest[1:])
    elif rest[0] == "start_worker.py":
        parse_start_worker(rest[1:])
    elif rest[0] == "-m":
        if rest[1] not in ("venv", "pytest"):
            assert importlib.util.find_spec(rest[1]) is not None, f"no module {rest[1]}"
            if rest[1] == "bench":
                assert importlib.util.find_spec("bench.__main__") is not None, "no bench/__main__.py"
    elif rest[0] != "-c":
        raise AssertionError(f"an undocumented kind of python command: {argv}")


def _param(item_id: str, *values):
    feature = pending_for(item_id)
    marks = [pytest.mark.xfail(reason=PENDING[feature][1], strict=True)] if feature else []
    return pytest.param(*values, id=item_id[:90], marks=marks)


PYTHON_COMMANDS = [c for c in COMMANDS if Path(c.program).name in ("python", "python3")]
SYNOPSES = doccheck.synopses()


@pytest.mark.parametrize("command", [_param(f"{c.doc}: {c}", c) for c in PYTHON_COMMANDS])
def test_every_documented_python_command_parses(command):
    try:
        parse_documented(with_real_values(command.argv))
    except SystemExit as exc:
        raise AssertionError(f"{command.doc}: `{command}` is refused by the real parser") from exc


@pytest.mark.parametrize("doc,written,argv", [_param(f"{d}: {w}", d, w, a) for d, w, a in SYNOPSES])
def test_every_usage_line_parses_with_all_its_options(doc, written, argv):
    try:
        parse_documented(argv)
    except SystemExit as exc:
        raise AssertionError(f"{doc}: `{written}` is refused by the real parser") from exc


def test_every_command_is_of_a_kind_the_doc_check_knows():
    known = {"python", "python3", "redis-cli", "curl", "grep", "cp", "pip", "bash", "n8n",
             "ollama"}  # docs/MODELS.md: serving a local model, Ollama's own command
    unknown = [f"{c.doc}: {c}" for c in COMMANDS if Path(c.program).name not in known]
    assert not unknown, unknown
    for command in COMMANDS:
        if Path(command.program).name == "pip":
            assert (ROOT / command.argv[command.argv.index("-r") + 1]).is_file(), command
        if command.program == "bash":
            assert (ROOT / command.argv[1]).is_file(), command
        if command.program == "cp":
            assert (ROOT / [a for a in command.argv[1:] if not a.startswith("-")][0]).is_file(), command
    assert len(PYTHON_COMMANDS) >= 20 and len(SYNOPSES) >= 6


def test_the_systemd_example_allows_the_whole_warm_shutdown():
    guide = DOCS["docs/BACKGROUND_PROGRAMMING.md"]
    unit = next(body for lang, body in doccheck.fenced_blocks(guide) if lang == "ini")
    start = re.search(r"^ExecStart=(.+)$", unit, re.M).group(1).split()
    parse_documented([start[0].removeprefix("/srv/tars/"), *start[1:]])
    stop = int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M).group(1))
    fields = Settings.model_fields
    needed = (fields["MAX_TASK_RUNTIME_MINUTES"].default * 60 + fields["CONFIRMATION_TIMEOUT_SECONDS"].default
              + JOB_TIMEOUT_MARGIN_SECONDS)
    assert stop == needed


# --- 1 and 2: the commands run for real, after real tasks ran through a real worker ----------------
def run_redis_cli(connection, argv, **placeholders):
    args = with_real_values(argv[1:], **placeholders)
    while args and args[0].startswith("-"):
        if args[0] == "-u":  # TARS's Redis, named by the shell's $REDIS_URL: here the test's connection
            assert args[1] == "$REDIS_URL", f"redis-cli -u takes $REDIS_URL in the docs: {argv}"
            del args[:2]
            continue
        assert args[0] in ("--raw", "--no-raw"), f"redis-cli option the check does not know: {argv}"
        args.pop(0)
    args = [re.sub(r"<[A-Za-z_-]+>", "none", a) for a in args]
    if args[0].upper() in ("SUBSCRIBE", "PSUBSCRIBE"):
        pubsub = connection.pubsub()
        getattr(pubsub, args[0].lower())(*args[1:])
        pubsub.get_message(timeout=0.1)
        pubsub.close()
        return "subscribed"
    return connection.execute_command(*args)


def run_curl(argv, server_url, task_id):
    """curl, with localhost:8000 pointed at the test's server and $WEBHOOK_SECRET set as in the test."""
    args = with_real_values(list(argv[1:]), task_id=task_id)
    args = [a.replace("$WEBHOOK_SECRET", TEST_WEBHOOK_SECRET) for a in args]
    args = [re.sub(r"^(http://)?localhost:8000", server_url, a) for a in args]
    run = subprocess.run(["curl", "-s", "-o", "/dev/stderr", "-w", "%{http_code}", *args], capture_output=True,
                         text=True, timeout=30)
    assert run.returncode == 0, (argv, run.stderr)
    return int(run.stdout), run.stderr


def unique(commands):
    seen, out = set(), []
    for command in commands:
        if command.argv not in seen:
            seen.add(command.argv)
            out.append(command)
    return out


def cli_json(cli, *args):
    run = cli(*args)
    assert run.returncode == 0, (args, run.stderr)
    return run


def destructive(tasks, projects, fake_api, word):
    (projects / word).mkdir()
    (projects / word / "old_backup.py").write_text("# old\n")
    fake_api.script([bash("rm old_backup.py"), text("Removed the old backup.")], match=word)
    return tasks.start(f"{word}: remove old_backup.py", project_path=word, call_sid=CALL)


def awaiting(tasks, task_id, worker):
    try:
        wait_until(lambda: tasks.status(task_id).status == "awaiting_confirmation", timeout=90,
                   what=f"task {task_id} to ask for its code")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; status {tasks.status(task_id)}; worker log:\n{worker.log[-4000:]}") from None


TIMELINE_LINE = re.compile(r"^\d\d:\d\d:\d\d  \+\d{2,}:\d\d  (\w+)\s")


def check_timeline(command, stdout: str, names_the_task: bool) -> None:
    """`task log` printed a timeline: one event per line, from `queued`; the documented task's is the whole story
    (it asked for a code, got it and completed)."""
    lines = stdout.splitlines()
    if "--json" in command.argv:
        types = [json.loads(line)["type"] for line in lines]
    else:
        assert all(TIMELINE_LINE.match(line) for line in lines), f"{command.doc}: `{command}` printed:\n{stdout}"
        types = [TIMELINE_LINE.match(line).group(1) for line in lines]
    assert types and types[0] == "queued", f"{command.doc}: `{command}` printed:\n{stdout}"
    if names_the_task:
        assert types[-1] == "complete" and "confirmation_required" in types and "confirmation_received" in types, \
            f"{command.doc}: `{command}` printed:\n{stdout}"


@pytest.mark.timeout(600)  # every documented command, one CLI process each: minutes on a loaded machine
def test_every_documented_command_runs_against_a_real_worker(tasks, fake_api, projects, start_worker, cli,
                                                            tars_server, redis_client, fake_twilio):
    """One story: two tasks that need a code, the documented commands run at the moments they make sense."""
    task_cmds = unique(c for c in PYTHON_COMMANDS if c.argv[1:3] == ("main_tars.py", "task"))
    by_verb = {verb: [c for c in task_cmds if c.argv[3] == verb] for verb in
               ("start", "status", "list", "cancel", "confirm", "retry", "log", "pause", "resume", "file")}
    assert sum(map(len, by_verb.values())) == len(task_cmds), "a task subcommand the check does not run"
    redis_cmds = unique(c for c in COMMANDS if c.program == "redis-cli")
    curl_cmds = unique(c for c in COMMANDS if c.program == "curl")
    assert curl_cmds, "the n8n guide's curl example is gone"
    ran: list[str] = []

    def run_task_command(command, task_id, check=True):
        argv = with_real_values(command.argv[2:], task_id=task_id)
        # --call-when-done is refused until TARS can phone the owner: the phone is set up (docs/PHONE.md)
        phone = {**fake_twilio.settings(), "PUBLIC_BASE_URL": "https://tars.example.test"} \
            if "--call-when-done" in argv else {}
        run = cli(*argv, **phone)
        if pending_for(str(command)):
            return  # waits on code: its own xfail above says so
        assert run.returncode == 0, f"{command.doc}: `{command}` failed: {run.stderr}"
        assert "Traceback" not in run.stderr
        if argv[1] == "log":
            check_timeline(command, run.stdout, names_the_task=any(map(doccheck.ID_PLACEHOLDER.search, command.argv)))
        elif "--json" in argv:
            answer = json.loads(run.stdout)
            if argv[1] == "retry":
                assert answer["retry_of"] == task_id and answer["task_id"] != task_id, answer
        ran.append(str(command))

    def run_all_redis(task_id, when):
        for command in redis_cmds:
            try:
                run_redis_cli(redis_client, command.argv, task_id=task_id, sid=CALL, name=WORKER_NAME)
            except Exception as exc:
                raise AssertionError(f"{command.doc}: `{command}` errors {when}: {exc!r}") from exc
            ran.append(f"{command} ({when})")

    confirm_targets = [destructive(tasks, projects, fake_api, f"cleanup{i}") for i in range(len(by_verb["confirm"]))]
    first = confirm_targets[0] if confirm_targets else destructive(tasks, projects, fake_api, "cleanup")
    second = destructive(tasks, projects, fake_api, "tidy")  # the curl examples answer this one
    # The tasks wait for their codes while every documented command runs (minutes on a loaded machine): they must not
    # time out first.
    worker = start_worker("--name", WORKER_NAME, CONFIRMATION_TIMEOUT_SECONDS="900")
    awaiting(tasks, first, worker)  # the one worker is busy: tasks started now stay queued

    run_all_redis(first, "while a task waits for its code")
    for command in by_verb["status"] + by_verb["list"]:
        run_task_command(command, first)
    for command in by_verb["pause"] + by_verb["resume"]:  # it waits for its code: a pause changes nothing yet
        run_task_command(command, first)
    for command in by_verb["start"]:
        run_task_command(command, first)
    tasks.settings.TASKS_FILE.write_text("- goal: Tidy the notes tonight\n  project: notes\n  at: '03:30'\n")
    for command in by_verb["file"]:  # queues the entry (scheduled: cancelled below), then checks the file
        run_task_command(command, first)
    for later in [s for s in tasks.list(limit=100) if s.status == "scheduled"]:  # --at / --in / at: hours away
        assert tasks.cancel(later.task_id).status == "cancelled"
    for command in by_verb["cancel"]:
        run_task_command(command, tasks.start("To be cancelled", project_path="cancelled"))
    for command, target in zip(by_verb["confirm"], confirm_targets):
        awaiting(tasks, target, worker)
        run_task_command(command, target)
        assert tasks.wait_until_ended(target, 60), worker.log
        assert tasks.status(target).status == "complete", tasks.status(target)

    awaiting(tasks, second, worker)
    for command in curl_cmds:
        status, body = run_curl(command.argv, tars_server.url, second)
        if m := re.match(r"(\d{3})\b\s*(\{.*\})?$", command.expect):  # the documented answer
            assert status == int(m.group(1)), (str(command), status, body)
            if m.group(2):
                assert json.loads(body) == json.loads(doccheck.ID_PLACEHOLDER.sub(second, m.group(2))), body
        ran.append(str(command))
    assert tasks.wait_until_ended(second, 60), worker.log

    wait_until(lambda: not any(s.active for s in tasks.list(limit=100)), timeout=120,
               what="every queued task to end")
    run_all_redis(first, "after the task ended")
    for command in by_verb["log"]:  # every task has ended: --follow replays the timeline and returns
        run_task_command(command, first)
    for command in by_verb["retry"]:
        run_task_command(command, first)
    for command in by_verb["status"] + by_verb["list"]:
        run_task_command(command, first)
    assert len(ran) >= 30, ran


def test_every_code_block_names_its_language():
    """Shell blocks (bash) are run or parsed; `text` diagrams, `json` payloads and `ini` files are not."""
    for doc, body in DOCS.items():
        bare = [m.start() for m in re.finditer(r"^```(\w*)", body, re.M)][::2]
        langs = [re.match(r"```(\w*)", body[i:]).group(1) for i in bare]
        assert all(langs), f"{doc}: a fenced block without a language"


# --- 2. Redis key names ---------------------------------------------------------------------------
KEY_TOKENS = sorted(set(doccheck.key_tokens()))


@pytest.mark.parametrize("doc,key", [_param(f"{d}: {k}", d, k) for d, k in KEY_TOKENS])
def test_every_key_named_in_the_docs_is_built_by_core_keys(doc, key):
    assert doccheck.key_matches(key), f"{doc} names {key}, which core/keys.py (or RQ) does not build"


@pytest.mark.parametrize("doc", ["docs/BACKGROUND_TASKS_IMPLEMENTATION.md", "docs/BACKGROUND_TASKS_QUICK_REFERENCE.md"])
@pytest.mark.parametrize("name", sorted(doccheck.key_patterns()))
def test_every_key_of_core_keys_is_documented(name, doc):
    named = {k for d, k in KEY_TOKENS if d == doc}
    assert any(doccheck.key_patterns()[name].match(k) for k in named), f"{doc} does not show the key {name}"


def test_the_key_table_names_the_core_keys_attribute_of_each_row():
    rows = doccheck.table_rows(doccheck.section(IMPL, "Redis keys"))
    for key, attribute, *_ in rows:
        key, attribute = key.strip("`"), attribute.strip("`")
        assert attribute == "(RQ)" and key.startswith("rq:") or attribute in doccheck.key_matches(key), (key, attribute)


# --- 3. settings ----------------------------------------------------------------------------------
CODE_CONSTANTS = set()
for _module in ("core.config", "core.defaults", "core.keys", "core.task_states", "core.task_manager",
                "core.background_worker", "core.agent", "communication.notifier", "communication.delivery",
                "sub_agents_tars"):
    CODE_CONSTANTS |= {n for n in vars(importlib.import_module(_module)) if n.isupper()}
NOT_SETTINGS = {"TARS_ENV_FILE",  # read by core/config.py before Settings (names the env file)
                "TASK_ID",  # the placeholder of usage lines
                "CALL_SID",  # the placeholder of `calls show` (a call's Twilio sid)
                "UPDATE_SCREENSHOTS",  # read by the browser test (tests/conftest.py): rewrite the README's images
                "OLLAMA_CONTEXT_LENGTH",  # Ollama's own setting of its window (docs/MODELS.md), not TARS's
                "WEBHOOK_URL",  # n8n's own older name of its address (docs/N8N_BACKGROUND_TASKS_SETUP.md), not TARS's
                *RENAMED_SETTINGS}  # the original TARS's names, each told with what replaced it


@pytest.mark.parametrize("doc,name", sorted(set(doccheck.setting_like_names()) | set(doccheck.assignments())))
def test_every_variable_named_in_the_docs_is_a_setting(doc, name):
    assert name in Settings.model_fields or name in CODE_CONSTANTS | NOT_SETTINGS, \
        f"{doc} names {name}: not a Settings field (core/config.py) nor a constant of the code"


def _shown_default(field) -> str:
    value = field.default
    if value is None:
        return "(none)"
    if value == "":
        return "(empty)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_the_quick_reference_lists_every_setting_with_its_default():
    rows = {name.strip("`"): default.strip("`") for name, default, *_ in
            doccheck.table_rows(doccheck.section(QUICK, "Settings"))}
    assert list(rows) == list(Settings.model_fields), "the table must list every setting, in core/config.py's order"
    for name, field in Settings.model_fields.items():
        assert rows[name] == _shown_default(field), (name, rows[name], _shown_default(field))


def test_the_renamed_settings_table_is_core_configs():
    """docs/COMING_FROM_THE_ORIGINAL_TARS.md shows RENAMED_SETTINGS row by row, as the start-up warning says it."""
    rows = doccheck.table_rows(doccheck.section(DOCS["docs/COMING_FROM_THE_ORIGINAL_TARS.md"], "Settings renamed"))
    shown = {old.strip("`"): (None if new == "(none)" else new.strip("`"), why.replace("`", ""))
             for old, new, why in rows}
    assert shown == RENAMED_SETTINGS


def test_env_example_lists_every_setting():
    example = (ROOT / "env.example").read_text()
    assert [n for n in Settings.model_fields if not re.search(rf"^{n}=", example, re.M)] == []


def test_the_constants_table_shows_the_values_of_core_defaults():
    import core.defaults as defaults

    rows = {name.strip("`"): value.strip("`") for name, value, *_ in
            doccheck.table_rows(doccheck.section(IMPL, "Limits and constants"))}
    constants = {n: v for n, v in vars(defaults).items() if n.isupper()}
    assert set(rows) == set(constants)
    for name, value in constants.items():
        assert rows[name] == str(value), (name, rows[name], value)


# --- 4. voice functions and HTTP routes -----------------------------------------------------------
@pytest.mark.parametrize("tool", [t["name"] for t in __import__("sub_agents_tars").VOICE_TOOLS])
def test_every_voice_function_has_example_phrases(tool):
    rows = {name.strip("`"): said for name, said, *_ in doccheck.table_rows(doccheck.section(QUICK, "On the phone"))}
    assert tool in rows, f"the quick reference does not show the voice function {tool}"
    assert re.search(r'"[^"]{3,}"', rows[tool]), f"{tool}: no example phrase in quotes"


def test_every_http_route_is_in_the_implementation_doc(redis_client):
    routes = _app_routes(redis_client)
    documented = doccheck.routes_named(doccheck.section(IMPL, "HTTP routes"))
    assert routes <= documented, f"routes the implementation doc does not show: {routes - documented}"


@pytest.mark.parametrize("doc,route", [_param(f"{d}: {m} {p}", d, (m, p)) for d, text_ in DOCS.items()
                                       for m, p in sorted(doccheck.routes_named(text_))])
def test_every_route_the_docs_name_exists(doc, route, redis_client):
    assert route in _app_routes(redis_client), f"{doc} names {' '.join(route)}, which the app does not serve"


# --- 5. statuses and phases -----------------------------------------------------------------------
def _code_statuses() -> set[str]:
    from core import task_manager, task_states
    from communication.spoken import SPOKEN_STATUS

    returned = set(re.findall(r'return "(\w+)"', inspect.getsource(task_manager.derive_status)))
    return returned | set(task_states.STATUSES) | set(SPOKEN_STATUS)


def _code_phases() -> set[str]:
    """The phases core/task_states.py names, and every phase the code sets (which must be among them)."""
    from core import agent, background_worker, task_manager, task_states

    named = set(task_states.WORKING_PHASES) | task_states.ENDING_KINDS
    for module in (agent, background_worker, task_manager):
        source = inspect.getsource(module)
        found = set(re.findall(r'set_phase\("(\w+)"', source))
        found |= set(re.findall(r'\bphase="(\w+)"', source)) | set(re.findall(r'"phase": "(\w+)"', source))
        assert found <= named, f"{module.__name__} sets phases core/task_states.py does not name: {found - named}"
    return named


def test_the_state_machine_names_every_status_and_phase():
    machine = doccheck.section(IMPL, "State machine")
    statuses, phases = _code_statuses(), _code_phases()
    assert statuses == {"queued", "scheduled", "running", "awaiting_confirmation", "paused", "complete", "failed",
                        "timeout",
                        "cancelled"}
    assert {"planning", "coding", "testing", "fixing", "error"} <= phases
    missing = [f"`{word}`" for word in sorted(statuses | phases) if f"`{word}`" not in machine]
    assert not missing, f"the state machine section does not name {missing}"
    for phase, status in __import__("core.task_states").task_states.OUTCOME_OF_PHASE.items():
        flat = re.sub(r"\s+", " ", machine)
        assert f"`{phase}` → `{status}`" in flat or f"`{phase}` → status `{status}`" in flat, (phase, status)


# --- 6. the README starts with the two set-up commands --------------------------------------------
def test_the_readme_starts_with_the_set_up_commands_ci_runs():
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("python3 -m venv")]
    blocks = [body.strip() for lang, body in doccheck.fenced_blocks(README)]
    assert blocks[1] == ci[-1], "the README's test command must be exactly .ci/run's"
    assert blocks[0].startswith("python3 -m venv .venv && .venv/bin/pip install --require-hashes -r requirements.lock")
    assert "--require-hashes -r requirements-dev.lock" in blocks[1]  # both install what the suite passed with
    assert blocks[0].endswith(".venv/bin/python main_tars.py up")
    titles = doccheck.headings(README)
    assert titles[1].startswith("Start here")
    order = [next(i for i, t in enumerate(titles) if t.startswith(w)) for w in ("Start here", "Phoning TARS",
                                                                              "Troubleshooting")]
    assert order == sorted(order), "README: set-up, then Twilio, then troubleshooting"
    twilio = doccheck.section(README, "Phoning TARS")
    for must in ("PUBLIC_BASE_URL", "Buy a number", "/voice", "HTTP POST", "tunnel", "TWILIO_AUTH_TOKEN"):
        assert must in twilio, must


def test_every_document_of_the_set_exists_and_the_readme_links_it():
    for name in REQUIRED_DOCS:
        assert (ROOT / "docs" / name).is_file(), name
        assert f"](docs/{name})" in README, name


# --- 7. links -------------------------------------------------------------------------------------
@pytest.mark.parametrize("doc,target", [(doccheck.rel(p), t) for p, t in doccheck.links()])
def test_every_relative_link_resolves(doc, target):
    path, _, anchor = target.partition("#")
    file = (ROOT / doc).parent / path if path else ROOT / doc
    assert file.exists(), f"{doc}: broken link {target}"
    if anchor and file.suffix == ".md":
        slugs = {doccheck.slug(h) for h in doccheck.headings(file.read_text())}
        assert anchor in slugs, f"{doc}: {target}: no heading #{anchor} (has {sorted(slugs)})"


def test_the_measured_figures_table_has_every_benchmark_row():
    rows = doccheck.table_rows(doccheck.section(IMPL, "Measured figures"))
    labels = " | ".join(row[0] for row in rows)
    for figure in ("enqueue", "confirmation code", "loop overhead", "read from cache", "200 scripted tasks",
                   "idle RSS, worker", "idle RSS, voice server", "relay overhead", "/voice"):
        assert figure in labels, figure
    # every row has a measured value (a number, not a placeholder) and says whether it met its target
    assert all(len(row) == 4 and re.search(r"\d", row[2]) and row[3].split()[0] in ("PASS", "MISS")
               for row in rows), rows
    assert "Machine:" in doccheck.section(IMPL, "Measured figures")


def test_the_implementation_doc_lists_every_job_meta_key_set_at_enqueue():
    from core.task_manager import TaskManager

    source = inspect.getsource(TaskManager.start)
    meta = re.search(r"meta = \{(.*?)\}\n", source, re.S).group(1)
    listed = doccheck.section(IMPL, "Redis keys")
    missing = [k for k in re.findall(r'"(\w+)":', meta) if f"`{k}`" not in listed]
    assert not missing, f"job.meta keys the implementation doc does not list: {missing}"


QUOTED_FROM_THE_CODE = [  # sentences the docs quote, as the code says them
    "The worker running this task (", "The worker was shut down", "rejected the API key", "Redis is not reachable at",
    "waiting for your confirmation code to run:",
]


@pytest.mark.parametrize("quote", QUOTED_FROM_THE_CODE)
def test_the_messages_the_docs_quote_are_the_codes(quote):
    sources = " ".join(p.read_text() for folder in ("core", "communication") for p in (ROOT / folder).glob("*.py"))
    sources += (ROOT / "main_tars.py").read_text()
    assert quote in re.sub(r'"\s*\n\s*f?"', "", sources), quote
    docs = re.sub(r"\s+", " ", " ".join(DOCS.values()))
    assert quote.split(" (")[0].rstrip(":") in docs, quote
