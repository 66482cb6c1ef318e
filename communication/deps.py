"""The shared request helpers of the webhook API (api.py) and the dashboard (dashboard.py), as FastAPI dependencies:
settings, the task manager, request authentication (webhook secret, dashboard login and CSRF token), task ids,
body parsing and the start and confirmation answers.

The routers import this module and it imports neither of them: app -> routers -> deps -> core. TARS's own
refusals (TaskNotFound, TaskNotActive...) pass through as they are; communication/app.py answers them.
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from communication.notifier import verify
from communication.spoken import spoken_status
from core import keys, pause, plans, report, schedules
from core.config import Settings
from core.exceptions import CodeRejected, TaskNotFound
from core.task_manager import TaskManager, TaskStatus
from core.task_states import NORMAL, PRIORITIES

MAX_BODY_BYTES = 64 * 1024
TASK_ID = r"^#?[0-9a-fA-F]{4,32}$"
LOGIN_COOKIE = "tars_session"
SIGNATURE_WINDOW_SECONDS = 300  # verify()'s default tolerance for webhook-timestamp


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_tasks(request: Request) -> TaskManager:
    return request.app.state.tasks


async def read_body(request: Request) -> bytes:
    """The raw body, refused with 413 past 64 KiB (read in chunks, so a lying Content-Length cannot get more in)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HTTPException(413, f"The body is larger than {MAX_BODY_BYTES // 1024} KiB.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, f"The body is larger than {MAX_BODY_BYTES // 1024} KiB.")
    return bytes(body)


async def authenticated_body(request: Request) -> bytes:
    """The body of a request that proved it comes from the owner's side: the shared secret header
    (X-TARS-Webhook-Secret = WEBHOOK_SECRET) or a Standard Webhooks signature (WEBHOOK_SIGNING_SECRET)."""
    settings: Settings = request.app.state.settings
    body = await read_body(request)
    shared, signing = settings.secret("WEBHOOK_SECRET"), settings.secret("WEBHOOK_SIGNING_SECRET")
    if not shared and not signing:
        raise HTTPException(401, "TARS has neither WEBHOOK_SECRET nor WEBHOOK_SIGNING_SECRET set, so it accepts "
                                 "no webhook calls: set one in .env.")
    given = request.headers.get("x-tars-webhook-secret")
    if shared and given is not None and hmac.compare_digest(given.encode(), shared.encode()):
        return body
    if signing and "webhook-signature" in request.headers and verify(signing, request.headers, body):
        # A captured signed request stays valid for the timestamp window: accept each webhook-id once.
        seen = keys.webhook_seen(request.headers.get("webhook-id", "")[:200])
        if not request.app.state.redis.set(seen, 1, nx=True, ex=SIGNATURE_WINDOW_SECONDS * 2):
            raise HTTPException(401, "This signed request was already received once (replay refused).")
        return body
    raise HTTPException(401, "Not authenticated: send the X-TARS-Webhook-Secret header or a valid "
                             "Standard Webhooks signature.")


def parse(model: type[BaseModel], body: bytes) -> BaseModel:
    """Validate a JSON body against model; 422 with a readable reason when it does not fit."""
    try:
        return model.model_validate_json(body or b"null")
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "body"
            problems.append(f"{where}: {err['msg']}")
        raise HTTPException(422, "The body is not valid: " + "; ".join(problems[:5]) + ".") from None
    except (ValueError, json.JSONDecodeError):
        raise HTTPException(422, "The body is not valid JSON.") from None


def body_schema(model: type[BaseModel], plain_text: str | None = None) -> dict:
    """OpenAPI for routes that read their body themselves (authentication comes before parsing); plain_text: what a
    text/plain body means, for a route that also takes one."""
    content = {"application/json": {"schema": model.model_json_schema()}}
    if plain_text:
        content["text/plain"] = {"schema": {"type": "string", "minLength": 1, "description": plain_text}}
    return {"requestBody": {"required": True, "content": content}}


def plain_text(request: Request, body: bytes) -> str | None:
    """The body as text when the request says it is text/plain (in its charset, UTF-8 unless named); None for any
    other body. 422 when it does not decode."""
    kind, _, params = request.headers.get("content-type", "").partition(";")
    if kind.strip().lower() != "text/plain":
        return None
    charset = next((value.strip().strip('"') for name, _, value in (p.partition("=") for p in params.split(";"))
                    if name.strip().lower() == "charset"), "utf-8")
    try:
        return body.decode(charset)
    except (LookupError, UnicodeDecodeError):
        raise HTTPException(422, f"The text body is not {charset[:40]} text: send it as UTF-8.") from None


def task_id_of(value: str) -> str:
    """The task id a URL path names, lower case without '#'; TaskNotFound (404) when it cannot be one."""
    if not re.fullmatch(TASK_ID, value):
        raise TaskNotFound(f"There is no task {value[:40]}.")
    return value.lstrip("#").lower()


# --- the answers the webhook API and the dashboard share --------------------------------------------------------
class StartBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    goal: str = Field(min_length=1, max_length=10_000)
    project_path: str | None = Field(None, max_length=4096)
    verbose_updates: StrictBool | None = None
    plan: StrictBool | None = Field(None, description=(
        "true: plan it out first (subtasks on several workers, merged into one branch; with PLAN_GOALS=never it "
        "runs as one task and its timeline says why); false: one task; absent: PLAN_GOALS decides"))
    priority: Literal[PRIORITIES] = Field(NORMAL, description=(
        "high: it starts before every normal task waiting; low: after them"))
    at: str | None = Field(None, max_length=64, description=(
        "start it later: HH:MM (the next such local time of the server) or an ISO date-time"))
    in_: str | None = Field(None, alias="in", max_length=32, description=(
        "start it later, after a delay: 90s, 30m, 2h, 1h30m (not with at)"))
    call_when_done: StrictBool = Field(False, description=(
        "true: TARS calls the owner when it ends (a text when the call is missed; needs the phone set up: "
        "docs/PHONE.md)"))


def start_answer(tasks: TaskManager, body: bytes) -> dict:
    """A StartBody started as a task: {task_id, held}, and scheduled_for when it starts later (422 with the reason:
    parse, or InvalidGoal/InvalidProjectPath/InvalidSchedule); held: today's budget is spent, so it waits, and
    `detail` says until when."""
    request = parse(StartBody, body)
    at = schedules.start_time(request.at, request.in_)
    task_id = tasks.start(request.goal, request.project_path, verbose_updates=request.verbose_updates,
                          plan=request.plan, priority=request.priority, at=at,
                          call_when_done=request.call_when_done)
    later = {"scheduled_for": tasks.status(task_id).scheduled_for} if at else {}
    return {"task_id": task_id, **later, **held_answer(tasks, task_id)}


def held_answer(tasks: TaskManager, task_id: str) -> dict:
    """{held: false}, or for a task the daily budget holds {held: true, detail: the sentence saying until when}."""
    status = tasks.status(task_id)
    return {"held": True, "detail": spoken_status(status)} if status.held else {"held": False}


def report_answer(tasks: TaskManager, since: str) -> dict:
    """The report of the period `since` before now (core/report.py), as the API and the dashboard send it (422 for a
    period that is none)."""
    return report.report(tasks.redis, report.parse_since(since))


def status_json(status: TaskStatus) -> dict:
    """A task's status as the API and the dashboard send it: TaskStatus.to_dict() (with `plan`, a planned task's
    subtask rows, and `parent`, a subtask's plan) and `plan_summary`, the plan's one line (core/plans.plan_summary)
    or null."""
    return {**status.to_dict(), "plan_summary": plans.plan_summary(status.plan) if status.plan else None}


def confirm_answer(tasks: TaskManager, task_id: str, code: str | int, accepted: str):
    """A code for a task's pending command as an HTTP answer: 200 accepted (the sentence `accepted`), 403 rejected
    with attempts_left (here: the answer carries more than the sentence); no such task (404) and not waiting (409)
    pass through to app.py."""
    try:
        tasks.confirm(task_id, code)
    except CodeRejected as exc:
        return JSONResponse({"status": "rejected", "task_id": task_id, "attempts_left": exc.attempts_left,
                             "detail": str(exc)}, status_code=403)
    return {"status": "accepted", "task_id": task_id, "detail": accepted.format(task_id=task_id)}


def workers_switch(tasks: TaskManager, paused: bool) -> dict:
    """Pause (paused=True) or resume every worker (core/pause.py): {paused, changed, detail: the sentence}."""
    changed = pause.pause_workers(tasks.redis) if paused else pause.resume_workers(tasks.redis)
    return {"paused": paused, "changed": changed, "detail": pause.switched(paused, changed)}


# --- the dashboard (communication/dashboard.py): its login cookie and the CSRF token -----------------------------
DASHBOARD_OFF = ("The dashboard is off: set DASHBOARD_PASSWORD (at least 8 characters) in .env and restart the "
                 "server the way you started it: python main_tars.py up, or python main_tars.py beside your "
                 "workers.")
NOT_LOGGED_IN = "Not logged in: open the dashboard at / and log in with DASHBOARD_PASSWORD."
CROSS_SITE = "Refused: this request did not come from the dashboard's own page (its Origin is another site)."
BAD_CSRF = "Refused: the X-CSRF-Token header is missing or wrong; reload the dashboard page and try again."


def same_origin(request: Request) -> bool:
    """True unless the request names an Origin other than this server (its Host, or PUBLIC_BASE_URL behind a proxy)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    allowed = {request.headers.get("host", "").strip().lower()}
    public = request.app.state.settings.PUBLIC_BASE_URL
    try:
        if public:
            allowed.add(urlsplit(public).netloc.lower())
        parsed = urlsplit(origin.strip())
    except ValueError:
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.netloc) and parsed.netloc.lower() in allowed


@dataclass(frozen=True)
class DashboardLogin:
    """One logged-in dashboard browser: its Redis key, its CSRF token, when it logged in."""

    key: str
    csrf: str
    created_at: float


def load_login(request: Request) -> DashboardLogin | None:
    """The login the request's cookie names, or None (no cookie, unknown or expired); dashboard.py makes them."""
    token = request.cookies.get(LOGIN_COOKIE)
    if not token or len(token) > 200:
        return None
    key = keys.dashboard_login(token)
    fields = {k.decode(): v.decode("utf-8", "replace") for k, v in request.app.state.redis.hgetall(key).items()}
    if not fields.get("csrf"):
        return None
    try:
        created = float(fields.get("created_at") or 0)
    except ValueError:
        created = 0.0
    return DashboardLogin(key=key, csrf=fields["csrf"], created_at=created)


def dashboard_login(request: Request) -> DashboardLogin:
    """The dashboard login the tars_session cookie names: 401 without one, 404 with the dashboard off."""
    if not request.app.state.settings.DASHBOARD_PASSWORD:
        raise HTTPException(404, DASHBOARD_OFF)
    login = load_login(request)
    if login is None:
        raise HTTPException(401, NOT_LOGGED_IN)
    return login


def dashboard_csrf(request: Request, login: DashboardLogin = Depends(dashboard_login)) -> DashboardLogin:
    """The login of a state-changing dashboard request: same origin, and X-CSRF-Token = the login's token."""
    if not same_origin(request):
        raise HTTPException(403, CROSS_SITE)
    given = request.headers.get("x-csrf-token") or ""
    if not given or not hmac.compare_digest(given.encode(), login.csrf.encode()):
        raise HTTPException(403, BAD_CSRF)
    return login
