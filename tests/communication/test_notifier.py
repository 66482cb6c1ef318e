"""communication/notifier.py against real local HTTP servers standing in for n8n and Discord."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import json
import logging
import re
import secrets
import socket
import threading
import time

import pytest

from communication.notifier import (ALWAYS, EVENT_TYPES, FAILED, MILESTONES, REFUSED, SENT, Notifier, ProgressEvent,
                                    bot_status_body, discord_payload, format_message, n8n_payload, no_mentions,
                                    should_send, sign, verify)
from tests.fakes.webhook_server import Reply

TASK = "a7f3c1"
GOAL = "Build a calculator"
TOKEN = "dIsCoRdToKeN_" + "x9" * 30  # the secret part of a Discord webhook URL
FAST = dict(backoff_base=0.01, backoff_max=0.05)


@pytest.fixture
def discord(make_webhook):  # n8n and make_webhook come from tests/conftest.py
    return make_webhook()


@pytest.fixture
def notifiers():
    made = []

    def make(**kwargs):
        kwargs.setdefault("n8n_url", None)
        kwargs.setdefault("discord_url", None)
        made.append(Notifier(**kwargs))
        return made[-1]

    yield make
    for notifier in made:
        notifier.close()


def send(notifier, ev, stop=None):
    """What communication/delivery.py does with one event: each endpoint in turn (each has its own thread there)."""
    if not notifier.endpoints:
        return notifier.log_only(ev)
    return [notifier.deliver(name, ev, stop) for name in notifier.endpoints]


def discord_url(server):
    return server.url(f"/api/webhooks/123456789012345678/{TOKEN}")


def closed_port_url(path="/webhook/tars"):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def event(kind="planning", message="Planning the work", **kw):
    kw.setdefault("phase", "planning")
    kw.setdefault("goal", GOAL)
    return ProgressEvent(task_id=kw.pop("task_id", TASK), type=kind, message=message, **kw)


def sample(kind):
    extra = {}
    if kind in ("command", "command_result", "confirmation_required"):
        extra["command"] = "rm -rf build/"
    if kind == "confirmation_required":
        extra["reason"] = "Deletes the build folder"
    if kind == "complete":
        extra["data"] = {"result": {"summary": "Calculator done", "files_changed": ["calc.py", "test_calc.py"],
                                    "tests_passed": True, "duration_seconds": 42.5, "cost_usd": 0.0123}}
    return event(kind, f"message for {kind}", **extra)


def whsec():
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


# --- payloads and text -----------------------------------------------------------------------------------

EXPECTED_EMOJI = {"started": "🚀", "workspace": "🌿", "checkpoint": "💾", "checkpoint_failed": "⚠️", "planning": "🧠", "plan": "🗺️", "plan_fallback": "🧭", "subtask": "🧩",
                  "file_edit": "📝", "command": "⚡", "command_result": "📋", "phase": "🔄", "confirmation_required": "⚠️", "confirmation_received": "✅", "confirmation_refused": "🚫", "complete": "🎉",
                  "error": "❌", "timeout": "⏰", "cancelled": "🛑", "retrying": "🔁",
                  "held": "💸", "paused": "⏸️", "resumed": "▶️", "model_fallback": "🔀", "context": "🧹"}


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_n8n_payload_fields_and_types(kind):
    ev = sample(kind)
    body = n8n_payload(ev)
    for name in ("id", "task_id", "type", "message", "detail", "phase", "goal", "timestamp"):
        assert isinstance(body[name], str), name
    assert body["id"] == ev.id and body["id"].startswith("evt_")
    assert body["task_id"] == TASK and body["type"] == kind and body["goal"] == GOAL
    assert body["timestamp"].endswith("Z") and "T" in body["timestamp"]
    assert body["milestone"] is (kind in MILESTONES)
    assert body["message"] == format_message(ev) and body["detail"] == ev.message
    if kind == "confirmation_required":
        assert body["command"] == "rm -rf build/" and body["reason"] == "Deletes the build folder"
    if ev.command is None:
        assert "command" not in body
    if ev.reason is None:
        assert "reason" not in body
    json.dumps(body)


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_discord_payload_shape(kind):
    ev = sample(kind)
    body = discord_payload(ev)
    assert body["username"] == "TARS"
    assert body["allowed_mentions"] == {"parse": []}
    assert body["content"] == format_message(ev) and len(body["content"]) <= 2000
    (embed,) = body["embeds"]
    assert isinstance(embed["title"], str) and 0 < len(embed["title"]) <= 256
    assert embed["title"].startswith(EXPECTED_EMOJI[kind])
    assert isinstance(embed["color"], int)
    assert len(embed.get("description", "")) <= 4096
    assert embed["timestamp"] == ev.timestamp
    for f in embed.get("fields", []):
        assert f["name"] and f["value"] and len(f["value"]) <= 1024
    json.dumps(body)


def test_colours_differ_between_good_and_bad_news():
    colour = {k: discord_payload(sample(k))["embeds"][0]["color"] for k in EVENT_TYPES}
    assert colour["complete"] != colour["error"]
    assert colour["confirmation_required"] not in (colour["complete"], colour["error"])


def test_complete_embed_carries_the_result():
    fields = {f["name"]: f["value"] for f in discord_payload(sample("complete"))["embeds"][0]["fields"]}
    assert fields["Summary"] == "Calculator done"
    assert "calc.py" in fields["Files changed (2)"]
    assert fields["Tests"] == "passed"


def test_complete_embed_counts_the_branchs_files_like_its_branch_field():
    """The model touched notes.txt and old.txt; notes.txt ended as it began, so the branch changes 1 file: the
    files field says 1, as the Branch sentence does, and names notes.txt apart."""
    result = {"summary": "Tidied", "files_changed": ["notes.txt", "old.txt"], "tests_passed": None,
              "changes": "Changed in place: 3 commits, 1 file changed (+0 -1), no tests run.",
              "git": {"mode": "shadow", "files": [{"path": "old.txt", "added": 0, "removed": 1}], "diffstat": ""}}
    body = discord_payload(event("complete", "Done", data={"result": result}))
    fields = {f["name"]: f["value"] for f in body["embeds"][0]["fields"]}
    assert fields["Files changed (1)"] == "old.txt"
    assert fields["Touched, ended as they began"] == "notes.txt"
    assert fields["Branch"].startswith("Changed in place: 3 commits, 1 file changed")


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_format_message_has_the_emoji_and_the_task(kind):
    text = format_message(sample(kind))
    assert text.startswith(EXPECTED_EMOJI[kind] + " Task a7f3c1")


def test_format_message_examples():
    assert format_message(event("started", f"Started: {GOAL}")) == "🚀 Task a7f3c1 started: Build a calculator"
    assert format_message(event("complete", "Complete: all tests pass")) == \
        "🎉 Task a7f3c1 complete: Complete: all tests pass"
    assert format_message(event("command", "Running: pytest", command="pytest -q")) == \
        "⚡ Task a7f3c1 running `pytest -q`"
    assert format_message(event("error", "Failed: stuck")) == "❌ Task a7f3c1 failed: Failed: stuck"


# --- planned tasks (issue 16): the plan's messages summarise it, a subtask's name its plan ---------------------------
PLAN = [{"key": "store", "title": "SQLite store", "depends_on": []},
        {"key": "api", "title": "REST API", "depends_on": ["store"]},
        {"key": "cli", "title": "Command line", "depends_on": ["store", "api"]}]


def test_the_plan_is_listed_with_each_subtasks_dependencies_before_work_starts():
    shown = event("plan", "Plan of 3 subtasks: store (SQLite store); ...", phase="coding", data={"subtasks": PLAN})
    assert format_message(shown) == ("🗺️ Task a7f3c1 is planned in 3 subtasks:\n• store: SQLite store\n"
                                     "• api: REST API (after store)\n• cli: Command line (after store, api)")
    assert discord_payload(shown)["embeds"][0]["title"] == "🗺️ Task a7f3c1 · Plan"
    assert format_message(event("plan", "Plan of 1 subtask: x (X)")) == "🗺️ Task a7f3c1: Plan of 1 subtask: x (X)"
    assert should_send("plan", verbose=False) and should_send("subtask", verbose=False)


def test_later_messages_of_a_plan_carry_its_summary():
    merged = event("subtask", "Merged subtask store into tars/a7f3c1 (1 file).", phase="coding",
                   plan_summary="1 of 3 subtasks done, 1 running, 1 waiting on api")
    assert format_message(merged) == ("🧩 Task a7f3c1: Merged subtask store into tars/a7f3c1 (1 file).\n"
                                      "1 of 3 subtasks done, 1 running, 1 waiting on api")
    assert n8n_payload(merged)["plan_summary"] == "1 of 3 subtasks done, 1 running, 1 waiting on api"
    fields = {f["name"]: f["value"] for f in discord_payload(merged)["embeds"][0]["fields"]}
    assert fields["Plan"] == "1 of 3 subtasks done, 1 running, 1 waiting on api"
    status = bot_status_body(merged, elapsed=65, cost=None)
    assert status["content"] == "🧩 Task a7f3c1 · 1 of 3 subtasks done, 1 running, 1 waiting on api · 1m05s"
    ended = bot_status_body(event("complete", "All 3 subtasks are merged.", phase="complete",
                                  plan_summary="3 of 3 subtasks done"), elapsed=90, cost=None)
    assert ended["content"].startswith("🎉 Task a7f3c1 · complete")


def test_a_subtasks_messages_name_its_plan():
    started = event("started", "Started", task_id="b2c3d4", parent="a7f3c1", plan_key="store", goal="Write store.py")
    assert format_message(started) == "🚀 Task b2c3d4 (part 'store' of a7f3c1) started: Write store.py"
    assert discord_payload(started)["embeds"][0]["title"] == "🚀 Task b2c3d4 (part 'store' of a7f3c1) · Started"
    body = n8n_payload(started)
    assert (body["parent"], body["plan_key"]) == ("a7f3c1", "store") and "plan_summary" not in body
    assert "parent" not in n8n_payload(event("started", "Started"))
    asked = event("confirmation_required", "rm", task_id="b2c3d4", parent="a7f3c1", plan_key="store",
                  command="rm -rf build/")
    assert format_message(asked).startswith("⚠️ Task b2c3d4 (part 'store' of a7f3c1) needs your confirmation")
    assert bot_status_body(started, elapsed=3, cost=None)["content"].startswith(
        "🚀 Task b2c3d4 (part 'store' of a7f3c1) · planning")


def test_confirmation_text_names_command_reason_and_the_code():
    text = format_message(event("confirmation_required", "Needs confirmation", command="rm -rf build/",
                                reason="Deletes the build folder"))
    assert text.startswith("⚠️ Task a7f3c1")
    assert "`rm -rf build/`" in text
    assert "Reason: Deletes the build folder" in text
    assert "confirmation code" in text


def test_command_with_backticks_stays_one_code_span():
    text = format_message(event("command", "x", command="echo `date`"))
    assert "`` echo `date` ``" in text


def test_5000_char_command_stays_under_the_limits():
    command = "echo " + "a" * 4995
    ev = event("confirmation_required", "Needs confirmation", command=command, reason="Writes a lot")
    text = format_message(ev)
    assert len(text) < 2000
    assert "Reason: Writes a lot" in text and "confirmation code" in text  # not cut off by the long command
    assert "5000 characters" in text
    assert text.count("`") % 2 == 0
    body = discord_payload(ev)
    assert len(body["content"]) <= 2000
    embed = body["embeds"][0]
    assert len(embed["description"]) <= 4096 and embed["description"].count("```") == 2
    assert embed["description"].endswith(f"`python main_tars.py task confirm {ev.task_id} <code>`.")
    total = len(embed["title"]) + len(embed["description"]) + len(embed["footer"]["text"]) + sum(
        len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
    assert total <= 6000
    assert n8n_payload(ev)["command"] == command  # n8n gets it whole
    for kind in EVENT_TYPES:
        long = event(kind, "é" * 5000 + "🎉" * 500, command="x" * 5000, reason="r" * 5000, goal="g" * 5000)
        assert len(format_message(long)) < 2000, kind
        payload = discord_payload(long)
        assert len(payload["content"]) <= 2000 and len(payload["embeds"][0]["title"]) <= 256
        assert len(payload["embeds"][0].get("description", "")) <= 4096


MENTIONS = ("@everyone", "@here", "<@123456789012345678>", "<@!123456789012345678>", "<@&123456789012345678>",
            "<#123456789012345678>")
RAW_MENTION = re.compile(r"@(everyone|here)|<[@#][!&]?\d+>", re.IGNORECASE)  # what Discord would ping


def test_a_goal_that_mentions_everyone_pings_no_one_either_way(n8n, discord, notifiers):
    """n8n's Discord node cannot send allowed_mentions, so TARS breaks the mentions in every text it gives n8n;
    its own Discord webhook body says parse nothing instead, and keeps the words as written."""
    words = "tell " + " and ".join(MENTIONS) + " (@EVERYONE too)"
    notifier = notifiers(n8n_url=n8n.url(), discord_url=discord_url(discord))
    sent = [event(kind, f"Step: {words}", goal=f"Clean up, {words}", phase=words, command=f"echo '{words}'",
                  reason=words) for kind in ("started", "confirmation_required", "complete")]
    for ev in sent:
        send(notifier, ev)
    for body in n8n.bodies():
        for name in ("message", "detail", "goal", "phase", "command", "reason"):
            assert not RAW_MENTION.search(body[name]), (name, body[name])
        assert "@\u200beveryone" in body["goal"] and "<\u200b@&123456789012345678>" in body["goal"]
        assert body["goal"].replace("\u200b", "") == f"Clean up, {words}"  # the words stay as written
    for body in discord.bodies():
        assert body["allowed_mentions"] == {"parse": []}
        assert "@everyone" in body["content"]  # as written: Discord parses none of it
    crowd = event("started", goal="@everyone " * 300)  # the breaks make it longer: still under Discord's limit
    assert len(n8n_payload(crowd)["message"]) < 2000 and not RAW_MENTION.search(n8n_payload(crowd)["message"])
    assert no_mentions("mail me@example.com, <@name>, <#general>, a < b") == "mail me@example.com, <@name>, " \
                                                                             "<#general>, a < b"


def test_should_send():
    assert all(should_send(k, True) for k in EVENT_TYPES)
    assert {k for k in EVENT_TYPES if should_send(k, False)} == MILESTONES
    assert ALWAYS <= MILESTONES


def test_events_get_unique_ids_and_utc_timestamps():
    ids = {event().id for _ in range(100)}
    assert len(ids) == 100
    stamp = event().timestamp
    assert stamp.endswith("Z") and len(stamp) == len("2026-12-01T10:00:00.123Z")


# --- delivery --------------------------------------------------------------------------------------------

def test_both_endpoints_get_every_event_with_the_right_headers(n8n, discord, notifiers):
    notifier = notifiers(n8n_url=n8n.url(), discord_url=discord_url(discord))
    sent = [sample(kind) for kind in EVENT_TYPES]
    for ev in sent:
        send(notifier, ev)
    assert [b["id"] for b in n8n.bodies()] == [e.id for e in sent]
    assert [b["type"] for b in n8n.bodies()] == list(EVENT_TYPES)
    assert [b["content"] for b in discord.bodies()] == [format_message(e) for e in sent]
    assert all(r.path == "/webhook/tars-progress" for r in n8n.requests)
    for server in (n8n, discord):
        for received, ev in zip(server.requests, sent):
            assert received.headers["content-type"] == "application/json"
            assert received.headers["idempotency-key"] == ev.id
            assert "webhook-signature" not in received.headers  # no signing secret given
    assert notifier.stats == {"sent": 2 * len(EVENT_TYPES), "refused": 0, "failed": 0, "retried": 0}
    assert notifier.endpoint_stats["discord"]["sent"] == len(EVENT_TYPES)


def test_50_events_of_a_task_arrive_in_order_even_with_a_retry(discord, notifiers):
    discord.plan.extend([Reply()] * 10 + [Reply(500), Reply(502)])
    notifier = notifiers(discord_url=discord_url(discord), **FAST)
    sent = [event("command_result", f"step {i}") for i in range(50)]
    for ev in sent:
        send(notifier, ev)
    delivered = [r.json()["embeds"][0]["footer"]["text"].rsplit(" ", 1)[1] for r in discord.requests]
    assert len(delivered) == 52
    deduped = list(dict.fromkeys(delivered))
    assert deduped == [e.id for e in sent]
    assert notifier.stats["sent"] == 50 and notifier.stats["retried"] == 2


def test_500_then_200_is_retried_once_with_the_same_ids(n8n, notifiers):
    secret = whsec()
    n8n.plan.extend([Reply(500, body=b"oops"), Reply(200)])
    notifier = notifiers(n8n_url=n8n.url(), signing_secret=secret, **FAST)
    ev = event("complete", "Complete: done")
    send(notifier, ev)
    first, second = n8n.requests
    assert first.body == second.body
    for r in (first, second):
        assert r.headers["webhook-id"] == ev.id
        assert r.headers["idempotency-key"] == ev.id
        assert verify(secret, r.headers, r.body)
    assert notifier.stats == {"sent": 1, "refused": 0, "failed": 0, "retried": 1}


def test_429_retry_after_seconds_is_honoured(n8n, notifiers):
    n8n.plan.extend([Reply(429, headers={"Retry-After": "1"}), Reply(200)])
    notifier = notifiers(n8n_url=n8n.url(), backoff_base=0.01, backoff_max=5)
    send(notifier, event())
    requests = n8n.wait_for(2, timeout=5)
    assert len(requests) == 2
    assert requests[1].at - requests[0].at >= 0.9
    assert notifier.stats["sent"] == 1


def test_503_retry_after_http_date_is_honoured(n8n, notifiers):
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    n8n.plan.extend([Reply(503, headers={"Retry-After": when}), Reply(200)])
    notifier = notifiers(n8n_url=n8n.url(), backoff_base=0.01, backoff_max=5)
    send(notifier, event())
    requests = n8n.wait_for(2, timeout=30)  # a wide bound: the date is whole seconds, the machine may be loaded
    assert len(requests) == 2
    assert requests[1].at - requests[0].at >= 0.9


def test_retry_after_is_capped_at_backoff_max(n8n, notifiers):
    n8n.plan.extend([Reply(429, headers={"Retry-After": "120"}), Reply(200)])
    notifier = notifiers(n8n_url=n8n.url(), backoff_base=0.01, backoff_max=0.2)
    send(notifier, event())
    requests = n8n.wait_for(2, timeout=30)
    assert len(requests) == 2 and requests[1].at - requests[0].at < 10  # backoff_max 0.2 s, not Retry-After's 120


def test_discord_429_body_retry_after_is_honoured(discord, notifiers):
    body = json.dumps({"message": "You are being rate limited.", "retry_after": 0.6, "global": False}).encode()
    discord.plan.extend([Reply(429, headers={"Content-Type": "application/json"}, body=body), Reply(204)])
    notifier = notifiers(discord_url=discord_url(discord), backoff_base=0.01, backoff_max=5)
    send(notifier, event())
    requests = discord.wait_for(2, timeout=5)
    assert len(requests) == 2
    assert requests[1].at - requests[0].at >= 0.55
    assert notifier.stats["sent"] == 1 and notifier.stats["retried"] == 1


def test_400_is_not_retried_and_is_logged(n8n, notifiers, caplog):
    caplog.set_level(logging.INFO, logger="tars.notifier")
    n8n.plan.append(Reply(400, body=b'{"error": "bad payload"}' + b"z" * 500))
    notifier = notifiers(n8n_url=n8n.url(), **FAST)
    assert send(notifier, event("file_edit", "Editing calc.py")) == [REFUSED]
    assert send(notifier, event("file_edit", "Editing test_calc.py")) == [SENT]
    assert len(n8n.requests) == 2  # the first was refused once, the second still went
    assert notifier.stats == {"sent": 1, "refused": 1, "failed": 0, "retried": 0}
    (line,) = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert "HTTP 400" in line and "bad payload" in line and TASK in line and "file_edit" in line
    assert "z" * 201 not in line


@pytest.mark.parametrize("status,attempts", [(404, 1), (401, 1), (408, 2), (502, 2)])
def test_which_statuses_are_retried(n8n, notifiers, status, attempts):
    n8n.plan.extend([Reply(status), Reply(200)])
    notifier = notifiers(n8n_url=n8n.url(), **FAST)
    send(notifier, event())
    assert len(n8n.requests) == attempts


def test_attempts_run_out_and_the_caller_tries_again_later(n8n, notifiers, caplog):
    caplog.set_level(logging.WARNING, logger="tars.notifier")
    n8n.default = Reply(500)
    notifier = notifiers(n8n_url=n8n.url(), max_attempts=3, **FAST)
    assert send(notifier, event("error", "Failed: boom")) == [FAILED]
    assert len(n8n.requests) == 3
    assert notifier.stats == {"sent": 0, "refused": 0, "failed": 1, "retried": 2}
    assert any("failed 3 times" in r.getMessage() and "trying again later" in r.getMessage()
               and "error" in r.getMessage() for r in caplog.records)


def test_stopping_cuts_the_wait_between_attempts_short(n8n, notifiers):
    n8n.default = Reply(503, headers={"Retry-After": "60"})
    notifier = notifiers(n8n_url=n8n.url(), backoff_max=60)
    stop = threading.Event()
    outcome = []
    sender = threading.Thread(target=lambda: outcome.extend(send(notifier, event(), stop)))
    sender.start()
    n8n.wait_for(1)
    stop.set()
    sender.join(30)  # not the 60 s the endpoint asked for
    assert not sender.is_alive() and outcome == [FAILED] and len(n8n.requests) == 1


def test_neither_endpoint_only_logs(notifiers, caplog):
    caplog.set_level(logging.INFO, logger="tars.notifier")
    notifier = notifiers(secret_values=["sk-ant-hidden-value"])
    send(notifier, event("started", f"Started: {GOAL}"))
    send(notifier, event("error", "Failed: key sk-ant-hidden-value rejected"))
    lines = [r.getMessage() for r in caplog.records if r.name == "tars.notifier"]
    assert any("🚀 Task a7f3c1 started: Build a calculator" in line for line in lines)
    assert any("[redacted]" in line for line in lines)
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "tars.notifier")
    assert "sk-ant-hidden-value" not in caplog.text
    assert notifier.stats == {"sent": 0, "refused": 0, "failed": 0, "retried": 0}
    assert notifier.endpoints == []


# --- signing -----------------------------------------------------------------------------------------------

def independent_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks spec: HMAC-SHA256 over "{id}.{timestamp}.{body}", key = base64 after whsec_."""
    key = base64.b64decode(secret.split("_", 1)[1]) if secret.startswith("whsec_") else secret.encode()
    content = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


@pytest.mark.parametrize("kind", ["whsec", "plain"])
def test_delivered_signature_verifies_both_ways(n8n, notifiers, kind):
    secret = whsec() if kind == "whsec" else "a-long-random-plain-signing-secret"
    notifier = notifiers(n8n_url=n8n.url(), signing_secret=secret)
    ev = event("complete", "Complete: done")
    send(notifier, ev)
    (r,) = n8n.requests
    assert r.headers["webhook-id"] == ev.id
    assert abs(int(r.headers["webhook-timestamp"]) - time.time()) < 10
    assert r.headers["webhook-signature"] == independent_signature(secret, r.headers["webhook-id"],
                                                                   r.headers["webhook-timestamp"], r.body)
    assert verify(secret, r.headers, r.body)
    assert verify(secret, {k.title(): v for k, v in r.headers.items()}, r.body)  # header case does not matter


def test_sign_matches_the_spec_example():
    # The example in the Standard Webhooks spec / reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_verify_rejects_what_it_should():
    secret = whsec()
    body = b'{"type":"complete"}'
    now = int(time.time())
    headers = {"webhook-id": "evt_1", "webhook-timestamp": str(now),
               "webhook-signature": sign(secret, "evt_1", now, body)}
    assert verify(secret, headers, body)
    assert verify(secret, headers, body.decode())
    assert not verify(secret, headers, body + b" ")                       # tampered body
    assert not verify(whsec(), headers, body)                             # wrong secret
    assert not verify(secret, {**headers, "webhook-id": "evt_2"}, body)   # id is signed
    old = now - 301
    assert not verify(secret, {**headers, "webhook-timestamp": str(old),
                               "webhook-signature": sign(secret, "evt_1", old, body)}, body)  # too old
    future = now + 1000
    assert not verify(secret, {**headers, "webhook-timestamp": str(future),
                               "webhook-signature": sign(secret, "evt_1", future, body)}, body)
    for missing in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        assert not verify(secret, {k: v for k, v in headers.items() if k != missing}, body)
    assert not verify(secret, {**headers, "webhook-timestamp": "soon"}, body)
    assert not verify(secret, {**headers, "webhook-signature": "v1,notbase64!!"}, body)
    assert not verify("whsec_%%%", headers, body)
    # several signatures (secret rotation): any v1 match will do; other versions are ignored
    good = headers["webhook-signature"]
    assert verify(secret, {**headers, "webhook-signature": f"v1,AAAA {good}"}, body)
    assert not verify(secret, {**headers, "webhook-signature": good.replace("v1,", "v2,")}, body)
    assert verify(secret, headers, body, tolerance=10, now=now + 5)
    assert not verify(secret, headers, body, tolerance=10, now=now + 11)


def test_a_malformed_whsec_secret_is_refused_up_front():
    with pytest.raises(ValueError):
        Notifier(n8n_url=None, discord_url=None, signing_secret="whsec_not base64!")


# --- secrets -------------------------------------------------------------------------------------------------

def test_secret_values_are_redacted_in_every_field(n8n, discord, notifiers):
    key, code, signing = "sk-ant-api03-SECRETSECRET", "739164", whsec()
    notifier = notifiers(n8n_url=n8n.url(), discord_url=discord_url(discord), signing_secret=signing,
                         secret_values=[key, code, "", "abc"])
    ev = event("confirmation_required", f"about to use {key} abc", command=f"curl -H 'x-api-key: {key}' x",
               reason=f"sends {key} and {code}", goal=f"Deploy with {key}", phase=f"coding {code}",
               data={"nested": {"list": [f"a{key}b", 5, None, {"deep": code}]}, key: "as a key",
                     "signing": signing, "other": object()})
    send(notifier, ev)
    raw = n8n.requests[0].body + discord.requests[0].body
    for value in (key, code, signing):
        assert value.encode() not in raw
    assert TOKEN.encode() not in raw
    body = n8n.requests[0].json()
    assert body["detail"] == "about to use [redacted] abc"  # values under 4 characters are not secrets
    assert body["command"] == "curl -H 'x-api-key: [redacted]' x"
    assert body["reason"] == "sends [redacted] and [redacted]"
    assert body["goal"] == "Deploy with [redacted]" and body["phase"] == "coding [redacted]"
    assert body["data"]["nested"]["list"] == ["a[redacted]b", 5, None, {"deep": "[redacted]"}]
    assert body["data"]["[redacted]"] == "as a key"
    assert "[redacted]" in discord.requests[0].json()["content"]
    assert ev.message == f"about to use {key} abc"  # the caller's event is left alone


def test_the_discord_token_never_reaches_the_logs(discord, notifiers, caplog):
    caplog.set_level(logging.DEBUG)  # httpx logs each request's full URL at INFO
    discord.plan.extend([Reply(500), Reply(204),
                         Reply(404, body=f'{{"message": "Unknown Webhook {TOKEN}", "path": "/api/webhooks/1/{TOKEN}"}}'
                               .encode())])
    notifier = notifiers(discord_url=discord_url(discord), **FAST)
    send(notifier, event("planning", "one"))
    send(notifier, event("error", f"mentions the token {TOKEN}"))
    dead = notifiers(discord_url=closed_port_url(f"/api/webhooks/1/{TOKEN}"), **FAST)
    send(dead, event("complete", "done"))
    assert len(discord.requests) == 3
    text = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert TOKEN[:16] not in text  # not even the part a 200-character cut would leave
    assert "/api/webhooks/123456789012345678" not in text
    assert f"http://127.0.0.1:{discord.port}" in text  # the logs do say where
    assert "HTTP 404" in text and "error" in text and TASK in text
    assert any(r.name == "httpx" for r in caplog.records)


def test_deliver_never_raises(notifiers, discord):
    notifier = notifiers(discord_url=discord_url(discord))
    send(notifier, None)  # type: ignore[arg-type]
    send(notifier, event("weird_type", "an unknown type still goes", data={"when": object(), "n": float("nan")}))
    (r,) = discord.requests
    assert r.json()["content"].startswith("ℹ️ Task a7f3c1")
