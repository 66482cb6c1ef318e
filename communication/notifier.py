"""Progress updates of a running task, sent to the owner's Discord without ever slowing the task.

Three kinds of endpoint, any of them or none:

* n8n (``N8N_WEBHOOK_URL``): gets :func:`n8n_payload`, a flat JSON object; its ``message`` field is the
  Discord-ready line, mentions broken (:func:`no_mentions`), so the workflow can forward it as is.
* a Discord channel webhook (``DISCORD_WEBHOOK_URL``): gets :func:`discord_payload`, Discord's
  execute-webhook body (content + one embed, no mentions ever parsed).
* the Discord bot (``DISCORD_BOT_TOKEN`` + ``DISCORD_CHANNEL_ID``, endpoint :data:`BOT`): one status message per
  task (:func:`bot_status_body`), created and then edited in place, and a new message (:func:`bot_message_body`)
  for a confirmation request and the ending, through Discord's REST API. Each new message carries a nonce
  (:func:`bot_nonce`) Discord dedupes by, so a resend after a crash posts nothing twice.

:class:`Notifier` POSTs one event to one endpoint with the retry policy (5xx, 408, 429 and timeouts retried
with backoff, Retry-After honoured, other 4xx refused for good); communication/delivery.py reads each task's
events from Redis and calls it, one thread per endpoint, so a dead or hanging endpoint never holds up the other.
Every POST carries ``Idempotency-Key: <event id>``; with a signing secret also the Standard Webhooks
headers (``webhook-id`` = the event id, the same on every retry and every resend; ``webhook-timestamp``;
``webhook-signature``). Receivers drop duplicates by that id. :func:`verify` is the receiving side.

Counters (``Notifier.stats`` totals, ``Notifier.endpoint_stats`` per endpoint) count deliver() calls
per endpoint (the bot's: each message created or edited): an event sent to both endpoints counts twice.

* ``sent``: answered 2xx.
* ``refused``: a permanent 4xx (or a bad URL), logged and never retried.
* ``failed``: attempts used up (or stopped) for now; the caller tries the same event again later.
* ``retried``: extra attempts made after a failed one.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import email.utils
import hashlib
import hmac
import json
import logging
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

import httpx

from core.scrub import Scrubber
from core.task_states import (CONFIRMATION_KINDS, CONFIRMATION_REQUIRED, ENDING_KINDS, ENDING_PHASE, EVENT_KINDS, HELD,
                               LABEL, MODEL_FALLBACK, CONTEXT_CLEARED, PAUSE_KINDS, PLAN_KINDS, QUEUED, RETRYING, VERB,
                               cost_text, duration_text, models_text, outcome_of)

log = logging.getLogger("tars.notifier")

EVENT_TYPES = tuple(kind for kind in EVENT_KINDS if kind not in (QUEUED, "progress"))
"""What a worker delivers (core/task_states.py's kinds; a queued task has no worker yet, progress lives in meta)."""
ALWAYS = {*CONFIRMATION_KINDS, *ENDING_KINDS}
"""Sent whatever the verbosity; their Discord embed names the goal."""
MILESTONES = ALWAYS | {"started", "checkpoint_failed", "phase", *PLAN_KINDS, RETRYING, HELD, *PAUSE_KINDS,
                       MODEL_FALLBACK}
"""Sent even when the task's updates are not detailed."""
DIGEST = "digest"
"""The weekly report (communication/digest.py): an update about no task (its task_id is empty)."""
TASK_FILE = "task_file"
"""What a reading of the tasks file started and what is wrong in it (core/task_file.py): an update about no task."""

EMOJI = {"started": "🚀", "workspace": "🌿", "checkpoint": "💾", "checkpoint_failed": "⚠️", "planning": "🧠", "plan": "🗺️",
         "plan_fallback": "🧭", "subtask": "🧩", "file_edit": "📝", "command": "⚡", "command_result": "📋",
         "phase": "🔄", "confirmation_required": "⚠️", "confirmation_received": "✅", "confirmation_refused": "🚫", "complete": "🎉",
         "error": "❌", "timeout": "⏰", "cancelled": "🛑", RETRYING: "🔁", HELD: "💸", DIGEST: "📊", TASK_FILE: "📄",
         "paused": "⏸️", "resumed": "▶️", MODEL_FALLBACK: "🔀", CONTEXT_CLEARED: "🧹"}
OTHER_EMOJI = "ℹ️"  # an event type outside EVENT_TYPES (accepted, never an error)
TITLES = {"started": "Started", "workspace": "Workspace", "checkpoint": "Checkpoint",
          "checkpoint_failed": "Checkpoint failed", "planning": "Planning", "plan": "Plan",
          "plan_fallback": "Not planned", "subtask": "Subtask", "file_edit": "File changed", "command": "Running a command",
          "command_result": "Command finished", "phase": "Phase", "confirmation_required": "Confirmation needed",
          "confirmation_received": "Confirmation received", "confirmation_refused": "Not run", RETRYING: "Retrying",
          HELD: "Held by the daily budget", DIGEST: "Report", TASK_FILE: "Tasks file", "paused": "Paused", "resumed": "Resumed",
          MODEL_FALLBACK: "Another model took over", CONTEXT_CLEARED: "Context trimmed",
          **{ENDING_PHASE[outcome]: label for outcome, label in LABEL.items()}}
COLOURS = {"started": 0x3498DB, "workspace": 0x27AE60, "checkpoint": 0x95A5A6, "checkpoint_failed": 0xF1C40F,
           "planning": 0x9B59B6, "plan": 0x9B59B6, "plan_fallback": 0x95A5A6, "subtask": 0x3498DB, "file_edit": 0x95A5A6, "command": 0xE67E22,
           "command_result": 0x7F8C8D, "phase": 0x1ABC9C, "confirmation_required": 0xF1C40F,
           "confirmation_received": 0x2ECC71, "confirmation_refused": 0xE74C3C, "complete": 0x2ECC71, "error": 0xE74C3C, "timeout": 0xE67E22,
           "cancelled": 0x607D8B, RETRYING: 0xF39C12, HELD: 0xF1C40F, DIGEST: 0x3498DB, TASK_FILE: 0x3498DB,
           "paused": 0xF1C40F, "resumed": 0x3498DB, MODEL_FALLBACK: 0xF39C12, CONTEXT_CLEARED: 0x95A5A6}
OTHER_COLOUR = 0x95A5A6


# Discord's limits (counted here in UTF-16 code units, which is never fewer than Discord counts).
MESSAGE_LIMIT = 1990          # format_message(): strictly under Discord's 2000 for content
CONTENT_LIMIT = 2000
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
EMBED_TOTAL_LIMIT = 6000

SIGNATURE_VERSION = "v1"
SECRET_PREFIX = "whsec_"
RESPONSE_SNIPPET = 200
_MAX_RESPONSE_BYTES = 64 * 1024


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _new_id() -> str:
    return "evt_" + uuid.uuid4().hex


@dataclass
class ProgressEvent:
    """One update about one task. ``id`` is unique per event and stays the same over retries."""

    task_id: str
    type: str
    message: str
    phase: str
    goal: str
    timestamp: str = field(default_factory=_now_iso)
    command: str | None = None
    reason: str | None = None
    id: str = field(default_factory=_new_id)
    data: dict = field(default_factory=dict)  # extra JSON-serialisable fields (e.g. result for complete)
    parent: str | None = None  # a plan's subtask: the planned task it is part of
    plan_key: str | None = None  # ... and its key in that plan ("store")
    plan_summary: str | None = None  # a planned task: "3 of 5 subtasks done, 1 running" when the update is sent


def should_send(event_type: str, verbose: bool) -> bool:
    """Whether a task with this verbosity sends this event: everything when verbose, else milestones."""
    return verbose or event_type in MILESTONES


# --- text helpers -------------------------------------------------------------------------------------

def _units(text: str) -> int:
    """Length in UTF-16 code units (what a JavaScript client counts; an emoji may be 2)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-16 units, ending in … when cut."""
    if limit <= 0:
        return ""
    if len(text) <= limit // 2 or _units(text) <= limit:
        return text
    budget = limit - 1  # room for the ellipsis
    out, used = [], 0
    for ch in text:
        cost = 2 if ord(ch) > 0xFFFF else 1
        if used + cost > budget:
            break
        out.append(ch)
        used += cost
    return "".join(out).rstrip() + "…"


def _code(text: str) -> str:
    """``text`` as Discord inline code, whatever backticks it holds."""
    text = text.replace("\r", "").replace("\n", " ⏎ ")
    if "`" not in text:
        return f"`{text}`"
    if "``" not in text:
        return f"`` {text} ``"
    return "```\n" + text.replace("```", "`\u200b``") + "\n```"


def _code_block(text: str) -> str:
    return "```\n" + text.replace("```", "`\u200b``") + "\n```"


def _code_fitting(text: str, limit: int) -> str:
    """``_code(text)``, with text shortened until the whole span fits ``limit`` units."""
    span = _code(text)
    if _units(span) <= limit:
        return span
    cut = max(0, limit - (_units(span) - _units(text)) - 2)
    while cut > 0:
        span = _code(_truncate(text, cut))
        if _units(span) <= limit:
            return span
        cut -= max(1, cut // 20)
    return ""


_REPLY_LINE = ("Give your confirmation code to let it run: by phone, on the dashboard or with "
               "`python main_tars.py task confirm {task_id} <code>`.")


def format_message(event: ProgressEvent, reply: str | None = None) -> str:
    """The Discord-ready line for ``event``, with its emoji; always under 2000 characters. ``reply``: how a
    confirmation request is answered (the bot's own messages are answered by replying to them)."""
    tid, kind = event.task_id, event.type
    emoji = EMOJI.get(kind, OTHER_EMOJI)
    msg = (event.message or "").strip()
    head = f"{emoji} {_who(event)}"
    if kind == "confirmation_required":
        return _confirmation_text(event, head, reply or _REPLY_LINE.format(task_id=tid))
    if kind == DIGEST:  # its headline; the embed (and n8n's detail) has the whole report
        text = f"{emoji} {msg.splitlines()[0] if msg else 'Report'}"
    elif kind == TASK_FILE:  # no task of its own: what the reading started and what is wrong, line by line
        text = f"{emoji} {msg}"
    elif kind == "plan":
        text = _plan_text(event, head)
    elif kind == "subtask":
        text = f"{head}: {msg}" + (f"\n{event.plan_summary}" if event.plan_summary else "")
    elif kind == "started":
        text = f"{head} started: {event.goal.strip() or msg}"
    elif kind == "planning":
        text = f"{head} planning: {msg}" if msg else f"{head} is planning"
    elif kind == "command" and event.command:
        prefix = f"{head} running "
        return prefix + _code_fitting(event.command, MESSAGE_LIMIT - _units(prefix))
    elif kind == "phase":
        phase = event.phase or "next phase"
        text = f"{head} → {phase}: {msg}" if msg else f"{head} → {phase}"
    elif kind == "confirmation_received":
        text = f"{head}: confirmation received" + (f": {msg}" if msg else "")
    elif kind == "confirmation_refused":
        text = f"{head}: command not run" + (f": {msg}" if msg else "")
    elif kind in ENDING_KINDS:
        verb = VERB[outcome_of(kind)]
        text = f"{head} {verb}: {msg}" if msg else f"{head} {verb}"
        changes = (event.data.get("result") or {}).get("changes") if isinstance(event.data, dict) else None
        if isinstance(changes, str) and changes:
            text += f"\n{changes}"
    else:  # file_edit, command_result, command without a command, anything else
        text = f"{head}: {msg}" if msg else f"{head}: {kind}"
    return _truncate(text, MESSAGE_LIMIT)


def _who(event: ProgressEvent) -> str:
    """'Task a7f3', or for a plan's subtask "Task b2c3 (part 'store' of a7f3)"; 'TARS' for an update about no task."""
    if not event.task_id:
        return "TARS"
    if not event.parent:
        return f"Task {event.task_id}"
    return f"Task {event.task_id} (part '{event.plan_key}' of {event.parent})" if event.plan_key else \
        f"Task {event.task_id} (part of {event.parent})"


def _plan_text(event: ProgressEvent, head: str) -> str:
    """The plan, shown before work starts: each subtask on its own line with what it waits for."""
    subtasks = event.data.get("subtasks") if isinstance(event.data, dict) else None
    if not isinstance(subtasks, list) or not subtasks:
        return f"{head}: {event.message.strip()}"
    lines = [f"{head} is planned in {len(subtasks)} subtask{'s' if len(subtasks) != 1 else ''}:"]
    for sub in subtasks:
        if not isinstance(sub, Mapping):
            continue
        after = sub.get("depends_on") or []
        lines.append(f"• {sub.get('key')}: {sub.get('title') or sub.get('key')}"
                     + (f" (after {', '.join(map(str, after))})" if after else ""))
    return "\n".join(lines)


def _confirmation_text(event: ProgressEvent, head: str, reply: str) -> str:
    first = f"{head} needs your confirmation to run "
    reason = (event.reason or event.message or "").strip()
    reason_line = "\nReason: " + _truncate(reason, 400) if reason else ""
    tail = reason_line + "\n" + reply
    command = event.command or ""
    room = MESSAGE_LIMIT - _units(first) - _units(tail)
    span = _code(command)
    if command and _units(span) > room:
        note = f" (cut: {len(command)} characters in all)"
        span = _code_fitting(command, room - _units(note)) + note
    elif not command:
        span = "a command"
    return _truncate(first + span + tail, MESSAGE_LIMIT)


# --- payloads -----------------------------------------------------------------------------------------

_MENTION = re.compile(r"@(everyone|here)|<(?=[@#][!&]?\d+>)", re.IGNORECASE)


def no_mentions(text: str) -> str:
    """``text`` that pings no one however Discord gets it: a zero-width space after the @ of @everyone and @here,
    and after the < of <@id>, <@!id>, <@&id> and <#id>. For the text n8n forwards: its Discord node cannot send
    ``allowed_mentions`` (a goal, a command or the model's words may hold any of them)."""
    return _MENTION.sub(lambda m: f"@\u200b{m.group(1)}" if m.group(1) else "<\u200b", text)


def n8n_payload(event: ProgressEvent) -> dict:
    """The JSON body for n8n: ``message`` is the Discord-ready line (emoji, < 2000 chars) n8n can forward as is;
    ``detail`` is the plain sentence; ``milestone`` says whether a quiet task would send it too. Every text field
    (message, detail, phase, goal, command, reason) is mention-safe (:func:`no_mentions`); ``data`` is as recorded."""
    body: dict[str, Any] = {
        "id": event.id, "task_id": event.task_id, "type": event.type,
        "message": _truncate(no_mentions(format_message(event)), MESSAGE_LIMIT),
        "detail": no_mentions(event.message), "phase": no_mentions(event.phase), "goal": no_mentions(event.goal),
        "timestamp": event.timestamp, "milestone": event.type in MILESTONES,
    }
    if event.command is not None:
        body["command"] = no_mentions(event.command)
    if event.reason is not None:
        body["reason"] = no_mentions(event.reason)
    if event.data:
        body["data"] = event.data
    for name in ("parent", "plan_key", "plan_summary"):
        if getattr(event, name) is not None:
            body[name] = getattr(event, name)
    return body


def _field(name: str, value: str, inline: bool = False, limit: int = FIELD_VALUE_LIMIT) -> dict | None:
    value = value.strip()
    if not value:
        return None  # Discord rejects empty field values
    return {"name": _truncate(name, FIELD_NAME_LIMIT), "value": _truncate(value, limit), "inline": inline}


def _result_fields(result: Mapping) -> list[dict | None]:
    fields: list[dict | None] = []
    summary = result.get("summary")
    if isinstance(summary, str):
        fields.append(_field("Summary", summary))
    files, git = result.get("files_changed"), result.get("git")
    touched = [str(f) for f in files] if isinstance(files, (list, tuple)) else []
    if isinstance(git, Mapping) and isinstance(git.get("files"), list):
        # the branch's files, as the Branch field counts them; the ones touched but left as they were, apart
        files = [str(f.get("path")) for f in git["files"] if isinstance(f, Mapping)]
        back = [f for f in touched if f not in files]
    else:
        files, back = touched, []
    if files:
        shown = ", ".join(files[:10]) + (f" (+{len(files) - 10} more)" if len(files) > 10 else "")
        fields.append(_field(f"Files changed ({len(files)})", shown))
    if back:
        fields.append(_field("Touched, ended as they began", ", ".join(back[:10])))
    changes = result.get("changes")
    if isinstance(changes, str) and changes:
        diffstat = git.get("diffstat") if isinstance(git, Mapping) else None
        block = "\n" + _code_block(diffstat[-700:]) if isinstance(diffstat, str) and diffstat else ""
        fields.append(_field("Branch", changes[:300] + block))
    tests = result.get("tests_passed")
    if tests is not None or result.get("test_command"):
        fields.append(_field("Tests", {True: "passed", False: "failing", None: "none"}.get(tests, str(tests)),
                             inline=True))
    duration = result.get("duration_seconds")
    if isinstance(duration, (int, float)):
        fields.append(_field("Duration", f"{duration:.0f} s", inline=True))
    cost = result.get("cost_usd")
    if isinstance(cost, (int, float)):
        fields.append(_field("Cost", cost_text(cost, bool(result.get("cost_unknown"))), inline=True))
    models = result.get("models")
    if isinstance(models, Mapping) and len(models) > 1:  # another model took over: who served how much
        fields.append(_field("Models", models_text(dict(models))[:1000]))
    return fields


def _embed_size(embed: dict) -> int:
    size = _units(embed.get("title", "")) + _units(embed.get("description", ""))
    size += _units(embed.get("footer", {}).get("text", ""))
    for f in embed.get("fields", []):
        size += _units(f["name"]) + _units(f["value"])
    return size


def discord_payload(event: ProgressEvent, reply: str | None = None) -> dict:
    """Discord execute-webhook body: the formatted line as content plus one embed with the details (``reply``: how
    a confirmation request is answered, said in the embed)."""
    kind = event.type
    reply = reply or _REPLY_LINE.format(task_id=event.task_id)
    emoji = EMOJI.get(kind, OTHER_EMOJI)
    title = _truncate(f"{emoji} {_who(event)} · {TITLES.get(kind, kind)}", TITLE_LIMIT)
    fields = [_field("Reason", event.reason or "")] if event.reason else []
    if kind == "started" or kind in ALWAYS:
        fields.append(_field("Goal", event.goal, limit=512))
    if event.plan_summary:
        fields.append(_field("Plan", event.plan_summary))
    if event.phase:
        fields.append(_field("Phase", event.phase, inline=True))
    result = event.data.get("result") if isinstance(event.data, dict) else None
    if isinstance(result, Mapping):
        fields.extend(_result_fields(result))
    embed: dict[str, Any] = {
        "title": title,
        "color": COLOURS.get(kind, OTHER_COLOUR),
        "footer": {"text": _truncate(f"TARS · task {event.task_id} · {event.id}" if event.task_id
                                     else f"TARS · {event.id}", FOOTER_LIMIT)},
        "fields": [f for f in fields if f][:25],
    }
    if _is_iso(event.timestamp):  # Discord answers 400 to a malformed one
        embed["timestamp"] = event.timestamp
    room = min(DESCRIPTION_LIMIT, EMBED_TOTAL_LIMIT - _embed_size(embed))
    description = _description(event, room, reply)
    if description:
        embed["description"] = description
    if not embed["fields"]:
        del embed["fields"]
    return {"username": "TARS", "content": _truncate(format_message(event), CONTENT_LIMIT),
            "embeds": [embed], "allowed_mentions": {"parse": []}}


BOT_REPLY_LINE = "Reply to this message with your code (or type `{task_id} <code>`)."
"""How a confirmation request the bot posted is answered (the bot reads the replies in its channel)."""
STATUS_FOOTER = "TARS · task {task_id} · this message is edited as the task goes on"


def bot_nonce(key: str) -> str:
    """The nonce (Discord takes at most 25 characters) of the message ``key`` names: created again after a crash
    with the same nonce and ``enforce_nonce``, Discord answers with the message it already has (for a few
    minutes)."""
    return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


def bot_message_body(event: ProgressEvent, nonce: str) -> dict:
    """A new message from the bot (a confirmation request, an ending: the owner's phone notifies): the webhook's
    content and embed, saying how to answer by replying to it. Mentions are never parsed (a goal with @everyone
    pings no one)."""
    reply = BOT_REPLY_LINE.format(task_id=event.task_id)
    body = discord_payload(event, reply)
    body.pop("username", None)  # a bot posts under its own name
    body["content"] = _truncate(format_message(event, reply), CONTENT_LIMIT)
    return {**body, "nonce": nonce, "enforce_nonce": True, "allowed_mentions": {"parse": []}}


def bot_status_body(event: ProgressEvent, elapsed: float | None, cost: float | None) -> dict:
    """The task's one status message, created on its first update and then edited in place: where the task is now
    (``event``, the newest update its verbosity sends), the time since it started and its cost so far; once it has
    ended, the ending's figures."""
    kind = event.type
    body = discord_payload(event, "")  # the status says where things stand; the request itself is a new message
    body.pop("username", None)
    embed = body["embeds"][0]
    embed.pop("description", None)
    fields = [f for f in embed.pop("fields", []) if f["name"] != "Goal"]
    fields.insert(0, _field("Goal", event.goal, limit=512))
    result = event.data.get("result") if isinstance(event.data, dict) else None
    if not isinstance(result, Mapping):  # an ending brings its own Duration and Cost
        fields += [_field("Elapsed", duration_text(elapsed), inline=True) if elapsed is not None else None,
                   _field("Cost so far", f"${cost:.4f}", inline=True) if cost else None]
    embed["fields"] = [f for f in fields if f][:25]
    embed["footer"] = {"text": _truncate(STATUS_FOOTER.format(task_id=event.task_id), FOOTER_LIMIT)}
    description = _description(event, min(DESCRIPTION_LIMIT, EMBED_TOTAL_LIMIT - _embed_size(embed)), "")
    if description:
        embed["description"] = description
    if kind in ENDING_KINDS:
        state = VERB[outcome_of(kind)]
    elif kind == CONFIRMATION_REQUIRED:
        state = "waiting for your confirmation code"
    elif kind == RETRYING:
        state = "waiting to retry"
    else:
        state = event.plan_summary or event.phase or "working"  # a plan's progress is its summary
    line = [f"{EMOJI.get(kind, OTHER_EMOJI)} {_who(event)}", state,
            duration_text(elapsed) if elapsed is not None else "", f"${cost:.4f}" if cost else ""]
    body["content"] = _truncate(" · ".join(part for part in line if part), CONTENT_LIMIT)
    body["allowed_mentions"] = {"parse": []}
    return body


def _json_body(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def _is_iso(stamp: str) -> bool:
    try:
        datetime.fromisoformat(stamp)
        return True
    except (TypeError, ValueError):
        return False


def _description(event: ProgressEvent, limit: int, reply: str) -> str:
    """The message, then the command as a code block (shortened to fit), then what to do about it."""
    message = _truncate(event.message.strip(), min(DESCRIPTION_LIMIT if event.type in (DIGEST, TASK_FILE) else 1000, limit))
    after = reply if event.type == "confirmation_required" else ""
    text = "\n\n".join(p for p in (message, after) if p)
    if event.command and event.type in ("command", "command_result", "confirmation_required"):
        fence = 8  # "```\n" + "\n```"
        room = limit - _units(text) - 4 - fence
        if room > 20:
            command = event.command
            if _units(command) > room:
                note = f"\n(cut: {len(command)} characters in all)"
                command = _truncate(command, room - _units(note)) + note
            block = _code_block(command)
            text = "\n\n".join(p for p in (message, block, after) if p)
    return _truncate(text, limit)


# --- Standard Webhooks signing --------------------------------------------------------------------------

def _key(secret: str) -> bytes:
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a whsec_ signing secret must be base64 after the prefix") from None
    return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks v1 signature: ``v1,`` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))."""
    signed = f"{msg_id}.{int(timestamp)}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION}," + base64.b64encode(digest).decode()


def verify(secret: str, headers: Mapping[str, str], body: bytes | str, tolerance: int = 300, *,
           now: float | None = None) -> bool:
    """True when ``headers`` carry a valid Standard Webhooks signature of ``body`` made with ``secret``.

    Checks webhook-id and webhook-timestamp are present, the timestamp is within ``tolerance`` seconds
    of now (either way), and any one of the space-separated ``v1,`` signatures matches (constant-time).
    Never raises. Replays inside the tolerance are the caller's to drop (by webhook-id).
    """
    try:
        lowered = {str(k).lower(): str(v) for k, v in headers.items()}
        msg_id = lowered.get("webhook-id", "")
        stamp = lowered.get("webhook-timestamp", "")
        signatures = lowered.get("webhook-signature", "")
        if not msg_id or not stamp or not signatures or not stamp.strip().isdigit():
            return False
        timestamp = int(stamp.strip())
        current = time.time() if now is None else now
        if abs(current - timestamp) > tolerance:
            return False
        raw = body.encode() if isinstance(body, str) else bytes(body)
        expected = sign(secret, msg_id, timestamp, raw).split(",", 1)[1].encode()
        found = False
        for candidate in signatures.split():
            version, _, value = candidate.partition(",")
            if version == SIGNATURE_VERSION and hmac.compare_digest(value.encode(), expected):
                found = True  # keep comparing: the time taken does not depend on which one matched
        return found
    except Exception:
        return False


# --- secrets out of payloads and logs -------------------------------------------------------------------

class _Scrubber(Scrubber):
    def event(self, event: ProgressEvent) -> ProgressEvent:
        t = self.text
        return dataclasses.replace(
            event, task_id=t(str(event.task_id)), message=t(str(event.message or "")),
            phase=t(str(event.phase or "")), goal=t(str(event.goal or "")),
            command=None if event.command is None else t(str(event.command)),
            reason=None if event.reason is None else t(str(event.reason)),
            data=self.value(event.data) if isinstance(event.data, Mapping) else {"value": self.value(event.data)})


class _UrlRedactingFilter(logging.Filter):
    """On the ``httpx`` logger, which logs each request's full URL: cuts out webhook paths (Discord's
    carry the token, n8n's are unguessable ids)."""

    def __init__(self) -> None:
        super().__init__()
        self.needles: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if self.needles:
            try:
                message = record.getMessage()
            except Exception:
                return True
            cleaned = message
            for needle, replacement in list(self.needles.items()):
                cleaned = cleaned.replace(needle, replacement)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


_URL_FILTER = _UrlRedactingFilter()
logging.getLogger("httpx").addFilter(_URL_FILTER)


def _origin(url: httpx.URL) -> str:
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}"


def _url_needles(raw: str, url: httpx.URL) -> dict[str, str]:
    """Text that must never be logged, mapped to what to log instead."""
    origin = _origin(url)
    needles = {raw: origin + "/[redacted]", str(url): origin + "/[redacted]"}
    for path in (url.raw_path.decode("ascii", "replace"), httpx.URL(raw).raw_path.decode("ascii", "replace")):
        if path not in ("", "/"):
            needles[path] = "/[redacted]"
    return needles


def _discord_token(url: httpx.URL) -> str | None:
    parts = [p for p in url.path.split("/") if p]
    if "webhooks" in parts and len(parts) >= parts.index("webhooks") + 3:
        token = parts[parts.index("webhooks") + 2]
        return token if len(token) >= 20 else None
    return None


# --- delivery -------------------------------------------------------------------------------------------

_OK, _RETRY, _PERMANENT = "ok", "retry", "permanent"


def _retry_after(response: httpx.Response, body: bytes, cap: float) -> float | None:
    """Seconds the server asked us to wait (Discord's JSON retry_after, or Retry-After), capped."""
    wait: float | None = None
    if response.status_code == 429 and body[:1] == b"{":
        try:
            value = json.loads(body).get("retry_after")
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
                wait = float(value)
        except (ValueError, AttributeError):
            pass
    header = response.headers.get("retry-after")
    if wait is None and header:
        header = header.strip()
        try:
            wait = float(header)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(header)
                if when.tzinfo is None:
                    when = when.replace(tzinfo=timezone.utc)
                wait = (when - datetime.now(timezone.utc)).total_seconds()
            except (TypeError, ValueError, IndexError):
                wait = None
    if wait is None or wait != wait:
        return None
    return max(0.0, min(wait, cap))


SENT, REFUSED, FAILED = "sent", "refused", "failed"
"""What Notifier.deliver() ends with: answered 2xx; refused for good (a 4xx other than 408/429, or a bad URL: logged,
never retried); failed for now (attempts used up, or stopped: the caller tries the same event again later)."""


class _Endpoint:
    """One webhook: POSTs one event at a time, with the retry policy. Used by one thread at a time."""

    def __init__(self, notifier: "Notifier", name: str, url: str, transport: httpx.BaseTransport | None):
        self.n = notifier
        self.name = name
        self.url = url
        parsed = httpx.URL(url)
        self.label = f"{name} ({_origin(parsed)})"
        self.needles = _url_needles(url, parsed)
        self._client = httpx.Client(transport=transport, follow_redirects=False, trust_env=False)
        self._lock = threading.Lock()
        self._not_before = 0.0
        self.stats = {"sent": 0, "refused": 0, "failed": 0, "retried": 0}

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.stats[key] += n

    def _safe(self, text: str) -> str:
        for needle, replacement in self.needles.items():
            text = text.replace(needle, replacement)
        return self.n._scrubber.text(text).replace("\r", " ").replace("\n", " ")

    def _encode(self, event: ProgressEvent) -> bytes:
        return _json_body(discord_payload(event) if self.name == "discord" else n8n_payload(event))

    def deliver(self, event: ProgressEvent, stop: threading.Event) -> str:
        """POST ``event`` (already scrubbed) until it is answered 2xx, refused for good, or ``max_attempts`` ran out;
        ``stop`` set cuts the waits between attempts short (FAILED)."""
        body = self._encode(event)
        return self._retrying(lambda: self._attempt(event, body), f"task {event.task_id} {event.type} ({event.id})",
                              stop)[0]

    def _retrying(self, attempt, what: str, stop: threading.Event) -> tuple[str, bytes]:
        """attempt() until answered 2xx, refused for good, or ``max_attempts`` ran out: SENT, REFUSED or FAILED, and
        the last answer's body."""
        tries = 0
        while True:
            wait = self._not_before - time.monotonic()  # a rate limit the last answer announced
            if stop.is_set() or (wait > 0 and stop.wait(wait)):
                self._count("failed")
                return FAILED, b""
            tries += 1
            outcome, hint, detail, answer = attempt()
            if outcome == _OK:
                self._count("sent")
                log.debug("%s: delivered %s (attempt %d)", self.label, what, tries)
                return SENT, answer
            if outcome == _PERMANENT:
                self._count("refused")
                log.warning("%s: %s refused with %s; not retried", self.label, what, detail)
                return REFUSED, answer
            if tries >= self.n.max_attempts:
                self._count("failed")
                log.warning("%s: %s failed %d times; last: %s; trying again later", self.label, what, tries,
                            detail)
                return FAILED, answer
            delay = hint if hint is not None else self._backoff(tries)
            self._count("retried")
            log.info("%s: attempt %d/%d for %s failed (%s); retrying in %.2fs", self.label, tries,
                     self.n.max_attempts, what, detail, delay)
            if stop.wait(delay):
                self._count("failed")
                return FAILED, answer

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.n.backoff_max, self.n.backoff_base * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)

    def _attempt(self, event: ProgressEvent, body: bytes) -> tuple[str, float | None, str, bytes]:
        """One POST of an event to the webhook."""
        headers = {"content-type": "application/json", "idempotency-key": event.id, "user-agent": "TARS-notifier"}
        if self.name == "n8n":
            headers.update(self.n.n8n_headers)
        if self.n.signing_secret:
            stamp = int(time.time())
            headers["webhook-id"] = event.id
            headers["webhook-timestamp"] = str(stamp)
            headers["webhook-signature"] = sign(self.n.signing_secret, event.id, stamp, body)
        return self._request("POST", self.url, body, headers)

    def _request(self, method: str, url: str, body: bytes, headers: dict) -> tuple[str, float | None, str, bytes]:
        """One request: (outcome, server-requested wait, detail for the log, the answer's body)."""
        try:
            with self._client.stream(method, url, content=body, headers=headers,
                                     timeout=self.n.timeout) as response:
                received = bytearray()
                for chunk in response.iter_bytes():
                    received += chunk
                    if len(received) >= _MAX_RESPONSE_BYTES:
                        break
        except httpx.TimeoutException as exc:
            return _RETRY, None, f"timed out ({type(exc).__name__})", b""
        except httpx.TransportError as exc:
            return _RETRY, None, self._safe(f"{type(exc).__name__}: {exc}"), b""
        except Exception as exc:  # a bad URL and the like: retrying will not help
            return _PERMANENT, None, self._safe(f"{type(exc).__name__}: {exc}"), b""
        status, answer = response.status_code, bytes(received)
        if 200 <= status < 300:
            self._note_rate_limit(response)
            return _OK, None, f"HTTP {status}", answer
        # Redact before cutting: a secret cut in half would no longer be recognised.
        text = self._safe(answer[:8192].decode("utf-8", "replace"))[:RESPONSE_SNIPPET]
        detail = f"HTTP {status}: {text}" if text.strip() else f"HTTP {status}"
        if status in (429, 503):
            wait = _retry_after(response, answer, self.n.backoff_max)
            if status == 429 and wait:  # the other threads sending here wait too (the bot's lanes gather meanwhile)
                self._not_before = max(self._not_before, time.monotonic() + wait)
            return _RETRY, wait, detail, answer
        if status == 408 or status >= 500:
            return _RETRY, None, detail, answer
        return _PERMANENT, None, self._refusal(status, answer, detail), answer

    def _refusal(self, status: int, answer: bytes, detail: str) -> str:
        """What the log says of a permanent refusal."""
        return detail

    def ready_in(self) -> float:
        """Seconds until the rate limit the last answer announced lets it send again (0: now)."""
        return max(0.0, self._not_before - time.monotonic())

    def _note_rate_limit(self, response: httpx.Response) -> None:
        if response.headers.get("x-ratelimit-remaining", "").strip() == "0":
            try:
                reset_after = float(response.headers.get("x-ratelimit-reset-after", ""))
            except ValueError:
                return
            self._not_before = time.monotonic() + max(0.0, min(reset_after, self.n.backoff_max))

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:
            pass


BOT = "discord_bot"
"""The Discord bot endpoint (its cursor field in task:<id>:delivered, its logs and stats): messages created and
edited through Discord's REST API with DISCORD_BOT_TOKEN, in DISCORD_CHANNEL_ID."""
GONE = "gone"
"""What an edit ends with when Discord no longer has the message (someone deleted it)."""
BOT_USER_AGENT = "DiscordBot (TARS, 0.1.0)"  # the form Discord asks of bots: DiscordBot ($url, $version)
_UNKNOWN_MESSAGE = 10008  # Discord's JSON error code for a message it does not have


def _json_object(answer: bytes) -> dict:
    try:
        value = json.loads(answer)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class _BotEndpoint(_Endpoint):
    """The Discord bot in one channel: creates and edits messages, with the webhooks' retry policy (5xx, 429 with
    Discord's retry_after, the rate-limit headers)."""

    def __init__(self, notifier: "Notifier", api_url: str, token: str, channel_id: str,
                 transport: httpx.BaseTransport | None):
        super().__init__(notifier, BOT, f"{api_url.rstrip('/')}/channels/{channel_id}/messages", transport)
        self.channel_id = channel_id
        self._headers = {"authorization": f"Bot {token}", "content-type": "application/json",
                         "user-agent": BOT_USER_AGENT}

    def post(self, body: dict, what: str, stop: threading.Event) -> tuple[str, dict | None]:
        """Create a message (``body`` scrubbed, with its nonce): SENT and Discord's message (for a nonce it has seen,
        the message it created then, as it is now), or REFUSED / FAILED and None."""
        data = _json_body(body)
        outcome, answer = self._retrying(lambda: self._request("POST", self.url, data, self._headers), what, stop)
        if outcome != SENT:
            return outcome, None
        message = _json_object(answer)
        if not message.get("id"):
            log.warning("%s: %s: Discord's answer has no message id; the message is not recorded", self.label, what)
            return outcome, None
        return outcome, message

    def edit(self, message_id: str, body: dict, what: str, stop: threading.Event) -> str:
        """Edit a message the bot posted: SENT, REFUSED, FAILED, or GONE (Discord no longer has it)."""
        data = _json_body(body)
        outcome, answer = self._retrying(
            lambda: self._request("PATCH", f"{self.url}/{message_id}", data, self._headers), what, stop)
        return GONE if outcome == REFUSED and _json_object(answer).get("code") == _UNKNOWN_MESSAGE else outcome

    def _refusal(self, status: int, answer: bytes, detail: str) -> str:
        """The refusal with the fix, for the refusals a set-up mistake causes."""
        code, channel = _json_object(answer).get("code"), self.channel_id
        if status == 401:
            fix = ("DISCORD_BOT_TOKEN was not accepted: copy the bot's token again (Developer Portal → your "
                   "application → Bot → Reset Token) into .env")
        elif status == 403:
            fix = (f"the bot may not post in DISCORD_CHANNEL_ID {channel}: invite it to that server and give it "
                   "View Channel, Send Messages, Embed Links and Read Message History in the channel")
        elif status == 404 and code == _UNKNOWN_MESSAGE:
            fix = "the message was deleted in Discord"
        elif status == 404:
            fix = (f"DISCORD_CHANNEL_ID {channel} is an unknown channel: copy the channel id with Developer Mode "
                   "(right-click the channel → Copy Channel ID) in a server the bot was invited to")
        else:
            return detail
        return f"{detail} — {fix}"


class Notifier:
    """Sends one progress event at a time to n8n or a Discord webhook, with the retry policy.

    Holds no queue and no thread: communication/delivery.py reads each task's events from Redis and calls
    :meth:`deliver` from one thread per endpoint, so a dead or hanging endpoint never holds up the other.
    """

    def __init__(self, *, n8n_url: str | None, discord_url: str | None, signing_secret: str | None = None,
                 secret_values: Iterable[str] = (), timeout: float = 5.0, max_attempts: int = 5,
                 backoff_base: float = 0.5, backoff_max: float = 30.0,
                 transport: httpx.BaseTransport | None = None, n8n_headers: Mapping[str, str] | None = None,
                 bot_token: str | None = None, bot_channel: str | None = None, bot_api_url: str | None = None):
        # n8n_headers: extra headers for n8n only, e.g. the shared secret its Header Auth credential checks.
        # bot_*: the Discord bot endpoint (BOT), when all three are given.
        self.n8n_headers = dict(n8n_headers or {})
        if signing_secret:
            _key(signing_secret)  # a malformed whsec_ secret fails here, not on every send
        self.signing_secret = signing_secret or None
        self.timeout = float(timeout)
        self.max_attempts = max(1, int(max_attempts))
        self.backoff_base = max(0.0, float(backoff_base))
        self.backoff_max = max(0.0, float(backoff_max))
        values = list(secret_values)
        if signing_secret:
            values.append(signing_secret)
        if discord_url:
            token = _discord_token(httpx.URL(discord_url))
            if token:
                values.append(token)
        if bot_token:
            values.append(bot_token)
        self._scrubber = _Scrubber(values)
        self._endpoints: dict[str, _Endpoint] = {}
        for name, url in (("n8n", n8n_url), ("discord", discord_url)):
            if url:
                endpoint = _Endpoint(self, name, url, transport)
                _URL_FILTER.needles.update(endpoint.needles)
                self._endpoints[name] = endpoint
        if bot_token and bot_channel and bot_api_url:
            self._endpoints[BOT] = _BotEndpoint(self, bot_api_url, bot_token, bot_channel, transport)

    @property
    def endpoints(self) -> list[str]:
        return list(self._endpoints)

    @property
    def stats(self) -> dict:
        """Totals over the endpoints: sent, refused, failed, retried (see the module docstring)."""
        total = {"sent": 0, "refused": 0, "failed": 0, "retried": 0}
        for endpoint in self._endpoints.values():
            for key, value in dict(endpoint.stats).items():
                total[key] += value
        return total

    @property
    def endpoint_stats(self) -> dict[str, dict]:
        return {name: dict(e.stats) for name, e in self._endpoints.items()}

    def deliver(self, endpoint: str, event: ProgressEvent, stop: threading.Event | None = None) -> str:
        """Scrub ``event`` and POST it to ``endpoint`` ("n8n" or "discord"; the bot's messages go through ``bot``):
        SENT, REFUSED or FAILED. Never raises."""
        try:
            return self._endpoints[endpoint].deliver(self._scrubber.event(event), stop or threading.Event())
        except Exception as exc:
            try:
                log.error("progress update for task %s %s not delivered to %s: %s", getattr(event, "task_id", "?"),
                          getattr(event, "type", "?"), endpoint, type(exc).__name__)
            except Exception:
                pass
            return FAILED

    def announce(self, event: ProgressEvent, stop: threading.Event | None = None) -> bool:
        """An update about no task (the digest, the tasks file's news) to every endpoint, the bot's as a message of its
        own; False when one still failed after its retries. The event id makes a resend a duplicate (n8n's Remove
        Duplicates, the bot's nonce)."""
        stop = stop or threading.Event()
        outcomes = []
        for endpoint in self._endpoints:
            if endpoint == BOT:
                body = bot_message_body(self.scrub(event), bot_nonce(event.id))
                outcomes.append(self.bot.post(body, TITLES.get(event.type, event.type).lower(), stop)[0])
            else:
                outcomes.append(self.deliver(endpoint, event, stop))
        return FAILED not in outcomes

    @property
    def bot(self) -> _BotEndpoint | None:
        """The Discord bot endpoint (communication/delivery.py creates and edits its messages), if set."""
        endpoint = self._endpoints.get(BOT)
        return endpoint if isinstance(endpoint, _BotEndpoint) else None

    def scrub(self, event: ProgressEvent) -> ProgressEvent:
        return self._scrubber.event(event)

    def ready_in(self, endpoint: str) -> float:
        """Seconds until the endpoint's announced rate limit lets it send again (0: now)."""
        return self._endpoints[endpoint].ready_in()

    def log_only(self, event: ProgressEvent) -> None:
        """What happens to an update when neither endpoint is set: one (scrubbed) log line."""
        clean = self._scrubber.event(event)
        log.info("[task %s] %s: %s", clean.task_id, clean.type, format_message(clean))

    def close(self) -> None:
        for endpoint in self._endpoints.values():
            endpoint.close()

    def __enter__(self) -> "Notifier":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
