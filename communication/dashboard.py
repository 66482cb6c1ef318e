"""The web dashboard `python main_tars.py` serves at /: tasks live, one task's timeline, start/cancel/retry/confirm/
pause, the workers (with one switch that pauses them all), the Report page (#/report: core/report.py's numbers,
tasks and cost per day as plain SVG charts) and the Calls page (#/calls: core/call_history.py's transcripts, each
call's tasks linked to their pages).

Plain HTML/CSS/JS from communication/static (no build step, nothing from a CDN). Access is one password
(DASHBOARD_PASSWORD): a login sets the HttpOnly, SameSite=Strict cookie `tars_session`, whose random token names a
login in Redis (12 h; the wire names keep the older word "session") holding the CSRF token every state-changing request must send back as X-CSRF-Token. Wrong
passwords are counted per client address: after LOGIN_MAX_FAILURES within LOGIN_WINDOW_SECONDS every login from
that address, the right password too, is refused with 429 until the window has passed.

The JSON API under /dashboard/api/ is the webhook API's sibling (communication/api.py) with the login instead of
the webhook secret; two Server-Sent Events streams follow one task's timeline (core/event_log.py) and the overview.
The streams never block the event loop: Redis is read with short non-blocking calls in the thread pool.

An ended task's branch (core/git_workspace.py) has routes too: its checkpoints and changes, merge, push, rollback
and discard. They only call TaskManager; communication/app.py turns its refusals into 4xx answers whose `detail`
is the sentence: 404 no such task, 409 still running, 409 with `files` for a merge conflict or a merge blocked by
uncommitted changes, 409 for any other git refusal (no checkout any more, on another machine, a clone to push
rather than merge, a rejected push...), 422 for a checkpoint that does not exist. A bad body, or a discard without
{"confirm": true}, is a 422 too.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import re
import secrets
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, AsyncIterator
from urllib.parse import parse_qs

import redis
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from communication.deps import (LOGIN_COOKIE, DashboardLogin, StartBody, body_schema, confirm_answer,
                                dashboard_csrf, dashboard_login, get_tasks, load_login, parse, read_body,
                                report_answer, same_origin, start_answer, status_json, task_id_of, workers_switch)
from core import budget, capabilities, event_log, git_workspace, keys, pool, task_states
from core.call_history import CallHistory, CallNotFound
from core.config import Settings
from core.confirmations import pending_request
from core.exceptions import TaskNotFound
from core.task_manager import TaskManager, TaskStatus

STATIC_DIR = Path(__file__).resolve().parent / "static"
LOGIN_TTL_SECONDS = 12 * 3600
LOGIN_MAX_FAILURES = 5
LOGIN_WINDOW_SECONDS = 5 * 60
KEEPALIVE_SECONDS = 15.0       # an SSE comment this often keeps proxies and phones from dropping a quiet stream
STREAM_POLL_SECONDS = 0.25     # a task stream looks for new events this often (XRANGE, never a blocking XREAD)
STATUS_CHECK_SECONDS = 2.0     # ... and whether a quiet task has ended this often
ENDED_GRACE_SECONDS = 1.0      # an ended task's ending event may land a moment after its status says so
OVERVIEW_CHECK_SECONDS = 1.0   # the overview stream compares the overview this often
OVERVIEW_MAX_SILENCE = 15.0    # ... and sends it at least this often even when nothing changed
OVERVIEW_TASKS = 20
EVENT_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")
CSRF_META = '<meta name="csrf-token" content="">'
VOCABULARY_META = '<meta name="tars-vocabulary" content="">'  # core/task_states.py's names, for app.js
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make browsers send "Origin: null" on the login form
    "Cache-Control": "no-store",
}
WRONG_PASSWORD = "Wrong password."
LOGIN_ELSEWHERE = "This login did not come from the dashboard's own page, so it was refused."
NO_TASK_RESPONSES = {401: {}, 404: {}}
BRANCH_READ_RESPONSES = {401: {}, 404: {}, 409: {}}
BRANCH_CHANGE_RESPONSES = {401: {}, 403: {}, 404: {}, 409: {}, 413: {}, 422: {}}

router = APIRouter()
Tasks = Annotated[TaskManager, Depends(get_tasks)]


# --- logins (made here; deps.py load_login reads them) --------------------------------------------------------
def _new_login(connection: redis.Redis, address: str) -> str:
    token = secrets.token_urlsafe(32)
    with connection.pipeline() as pipe:
        pipe.hset(keys.dashboard_login(token), mapping={"csrf": secrets.token_urlsafe(32), "created_at": time.time(),
                                               "ip": address})
        pipe.expire(keys.dashboard_login(token), LOGIN_TTL_SECONDS)
        pipe.execute()
    return token


def _secure_cookie(settings: Settings) -> bool:
    return (settings.PUBLIC_BASE_URL or "").startswith("https://")


def _address(request: Request) -> str:
    # The peer address, never X-Forwarded-For (anyone can send that): behind a proxy all logins share one budget.
    return request.client.host if request.client else "unknown"


# --- pages ---------------------------------------------------------------------------------------------------
def _page(name: str, status: int = 200, headers: dict | None = None, **slots: str) -> HTMLResponse:
    # every page's <!--head--> gets the <head> lines they all share (static/head.html)
    text = (STATIC_DIR / name).read_text(encoding="utf-8")
    text = text.replace("<!--head-->\n", (STATIC_DIR / "head.html").read_text(encoding="utf-8"), 1)
    for slot, value in slots.items():
        text = text.replace(slot, value)
    return HTMLResponse(text, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


def _login_page(status: int = 200, error: str = "", hint: str = "", headers: dict | None = None) -> HTMLResponse:
    hidden = "" if error else " hidden"
    return _page("login.html", status, headers,
                 **{"<!--error-->": html.escape(error, quote=False), " data-error-hidden": hidden,
                    "<!--hint-->": html.escape(hint, quote=False)})


def _off_page(status: int = 200) -> HTMLResponse:
    return _page("disabled.html", status)


@router.get("/", response_class=HTMLResponse, summary="The dashboard (or its login page)")
def dashboard_page(request: Request):
    """The single-page dashboard when logged in, else the login page; a page saying how to switch the dashboard on
    when DASHBOARD_PASSWORD is not set."""
    settings: Settings = request.app.state.settings
    if not settings.DASHBOARD_PASSWORD:
        return _off_page()
    login = load_login(request)
    if login is None:
        return _login_page()
    return _page("index.html", **{
        CSRF_META: f'<meta name="csrf-token" content="{html.escape(login.csrf)}">',
        VOCABULARY_META: f'<meta name="tars-vocabulary" content="{html.escape(json.dumps(task_states.vocabulary()))}">',
    })


@router.post("/login", response_class=HTMLResponse, status_code=303,
             openapi_extra={"requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
                 "schema": {"type": "object", "properties": {"password": {"type": "string"}},
                            "required": ["password"]}}}}},
             responses={401: {}, 403: {}, 404: {}, 413: {}, 429: {}})
def login(request: Request, body: Annotated[bytes, Depends(read_body)]):
    """The login form: the right DASHBOARD_PASSWORD sets the login cookie and goes back to /."""
    settings: Settings = request.app.state.settings
    password = settings.secret("DASHBOARD_PASSWORD")
    if not password:
        return _off_page(404)
    if not same_origin(request):
        return _login_page(403, LOGIN_ELSEWHERE)
    connection: redis.Redis = request.app.state.redis
    address = _address(request)
    # Every attempt takes a place in the window first (atomically), so parallel guesses cannot slip past the limit;
    # a right password then clears the count.
    failures = keys.dashboard_login_failures(address)
    with connection.pipeline() as pipe:
        pipe.set(failures, 0, ex=LOGIN_WINDOW_SECONDS, nx=True)
        pipe.incr(failures)
        pipe.ttl(failures)
        _, attempts, ttl = pipe.execute()
    if attempts > LOGIN_MAX_FAILURES:
        wait = max(1, int(ttl) if ttl and ttl > 0 else LOGIN_WINDOW_SECONDS)
        minutes = max(1, -(-wait // 60))
        return _login_page(429, f"Too many wrong passwords from your address: try again in {minutes} minute"
                                f"{'s' if minutes != 1 else ''}. Until then every login from it is refused, even "
                                f"with the right password.", headers={"Retry-After": str(wait)})
    form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=20)
    given = (form.get("password") or [""])[0]
    if not hmac.compare_digest(given.encode(), password.encode()):
        left = LOGIN_MAX_FAILURES - attempts
        hint = (f"{left} more wrong {'try' if left == 1 else 'tries'} and logins from your address pause for "
                f"{LOGIN_WINDOW_SECONDS // 60} minutes." if left else
                f"Logins from your address now pause for {LOGIN_WINDOW_SECONDS // 60} minutes.")
        return _login_page(401, WRONG_PASSWORD, hint)
    connection.delete(failures)
    token = _new_login(connection, address)
    answer = RedirectResponse("/", status_code=303, headers={"Cache-Control": "no-store"})
    answer.set_cookie(LOGIN_COOKIE, token, max_age=LOGIN_TTL_SECONDS, path="/", httponly=True,
                      samesite="strict", secure=_secure_cookie(settings))
    return answer


@router.post("/logout", status_code=303, responses={401: {}, 403: {}, 404: {}})
def logout(request: Request, login: Annotated[DashboardLogin, Depends(dashboard_csrf)]):
    """End the login (X-CSRF-Token required) and clear its cookie."""
    request.app.state.redis.delete(login.key)
    answer = RedirectResponse("/", status_code=303, headers={"Cache-Control": "no-store"})
    answer.delete_cookie(LOGIN_COOKIE, path="/", httponly=True, samesite="strict",
                         secure=_secure_cookie(request.app.state.settings))
    return answer


_static = StaticFiles(directory=STATIC_DIR)


@router.get("/static/{name}", summary="The dashboard's HTML, CSS and JavaScript", responses={404: {}})
async def static_file(name: str, request: Request):
    """A file of communication/static (public: it holds no data, the API behind it needs the login). The folder
    is flat: a name with a slash never reaches this route."""
    try:
        if name.startswith(".") or "\\" in name:
            raise StarletteHTTPException(404)
        answer = await _static.get_response(name, request.scope)
    except (StarletteHTTPException, ValueError, OSError):
        raise HTTPException(404, f"There is no dashboard file {name[:100]!r}.") from None
    answer.headers["Cache-Control"] = "no-cache"
    answer.headers["X-Content-Type-Options"] = "nosniff"
    return answer


# --- the JSON API ----------------------------------------------------------------------------------------------
LoggedIn = Annotated[DashboardLogin, Depends(dashboard_login)]
Csrf = Annotated[DashboardLogin, Depends(dashboard_csrf)]
Body = Annotated[bytes, Depends(read_body)]


class ConfirmBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: StrictStr | StrictInt = Field(description="the owner's confirmation code")


def _age(created_at: str | None) -> float | None:
    if not created_at:
        return None
    try:
        created = datetime.fromisoformat(created_at)
    except ValueError:
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    return round(max(0.0, (datetime.now(timezone.utc) - created).total_seconds()), 1)


def task_dict(status: TaskStatus) -> dict:
    return {**status_json(status), "age_seconds": _age(status.created_at)}


def _status(tasks: TaskManager, task_id: str) -> TaskStatus:
    return tasks.status(task_id_of(task_id))


def overview(tasks: TaskManager) -> dict:
    return {"tasks": [task_dict(s) for s in tasks.list(limit=OVERVIEW_TASKS)], **pool.overview(tasks.redis),
            "budget": budget.current(tasks.redis, tasks.settings).to_dict()}  # its banner when spent


@router.get("/dashboard/api/session", responses={401: {}, 404: {}})
def login_info(login: LoggedIn):
    """The login's CSRF token (for X-CSRF-Token) and how long it lasts."""
    return {"csrf_token": login.csrf,
            "expires_at": login.created_at + LOGIN_TTL_SECONDS if login.created_at else None}


@router.get("/dashboard/api/tasks", responses={401: {}, 404: {}})
def list_tasks(_: LoggedIn, tasks: Tasks, limit: Annotated[int, Query(ge=1, le=200)] = 20):
    """The latest tasks, newest first, each with age_seconds."""
    return [task_dict(status) for status in tasks.list(limit=limit)]


@router.get("/dashboard/api/tasks/{task_id}", responses=NO_TASK_RESPONSES)
def task_status(task_id: str, _: LoggedIn, tasks: Tasks):
    """The task's status with age_seconds and pending_confirmation (command, reason, attempts_left) or null."""
    status = _status(tasks, task_id)
    pending = None
    if status.status == task_states.AWAITING_CONFIRMATION:
        request = pending_request(tasks.redis, status.task_id)
        if request:
            pending = {"command": request.get("command", status.confirmation_command),
                       "reason": request.get("reason", ""), "attempts_left": pool.as_int(request.get("attempts_left"))}
    return {**task_dict(status), "pending_confirmation": pending}


def _after(after: str | None, last_event_id: str | None) -> str | None:
    """Where a timeline read resumes: Last-Event-ID (an EventSource reconnecting) before ?after=."""
    value = last_event_id if last_event_id not in (None, "") else after
    if value in (None, ""):
        return None
    if not EVENT_ID.fullmatch(value):
        raise HTTPException(422, f"{value[:40]!r} is not an event id (like 1700000000000-0).")
    return value


@router.get("/dashboard/api/tasks/{task_id}/events", responses={**NO_TASK_RESPONSES, 422: {}})
def task_events(task_id: str, _: LoggedIn, tasks: Tasks, after: str | None = None):
    """The task's timeline so far (after event id `after` when given), oldest first."""
    status = _status(tasks, task_id)
    return [event.to_dict() for event in event_log.read(tasks.redis, status.task_id, _after(after, None))]


def _sse(kind: str, data: dict, event_id: str | None = None) -> str:
    kind = re.sub(r"[\r\n]", " ", kind) or "message"
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, default=str, separators=(',', ':'))}\n\n"


def _event_stream(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _follow(request: Request, tasks: TaskManager, task_id: str, after: str | None) -> AsyncIterator[str]:
    yield "retry: 3000\n\n"
    last_sent = last_check = time.monotonic()
    ended_at = None  # when the status first said the task has ended without its ending event in sight
    while not await request.is_disconnected():
        try:
            fresh = await run_in_threadpool(event_log.read, tasks.redis, task_id, after, 200)
            for event in fresh:
                after = event.id
                yield _sse(event.type, event.to_dict(), event.id)
            if any(event.ends for event in fresh):
                break
            now = time.monotonic()
            if fresh:
                last_sent = now
                if len(fresh) == 200:
                    continue  # a long past timeline: the next batch at once
            elif ended_at is not None and now - ended_at >= ENDED_GRACE_SECONDS:
                break  # ended without an ending event (it expired, or the cap trimmed it)
            elif ended_at is None and now - last_check >= STATUS_CHECK_SECONDS:
                last_check = now
                if await run_in_threadpool(tasks.settled, task_id):  # not while its horse still writes its end
                    ended_at = now
            if now - last_sent >= KEEPALIVE_SECONDS:
                last_sent = now
                yield ": keepalive\n\n"
        except TaskNotFound:
            break  # its data expired while we watched
        except redis.RedisError:
            return  # Redis is away: close; the browser reconnects with Last-Event-ID
        await asyncio.sleep(STREAM_POLL_SECONDS)
    else:
        return
    yield _sse("end", {"task_id": task_id})


@router.get("/dashboard/api/tasks/{task_id}/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}, **NO_TASK_RESPONSES, 422: {}})
async def task_stream(task_id: str, request: Request, _: LoggedIn, tasks: Tasks, after: str | None = None,
                      last_event_id: Annotated[str | None, Header()] = None):
    """Server-Sent Events: the task's timeline (each `id:` the stream id, `event:` its type, `data:` the event as
    JSON), past events first, then live; `event: end` after the ending event, then the stream closes. Resumes after
    Last-Event-ID or ?after=; a `: keepalive` comment every 15 s of quiet."""
    start = _after(after, last_event_id)
    status = await run_in_threadpool(_status, tasks, task_id)
    return _event_stream(_follow(request, tasks, status.task_id, start))


def _fingerprint(view: dict) -> str:
    """The overview without what changes by itself (ages, heartbeats): a change in it is news."""
    steady = {"tasks": [{k: v for k, v in t.items() if k != "age_seconds"} for t in view["tasks"]],
              "workers": [{k: v for k, v in w.items() if k != "last_seen"} for w in view["workers"]],
              "queue_length": view["queue_length"], "paused": view["paused"],
              "budget": {k: view["budget"][k] for k in ("daily_usd", "exhausted", "held")}}  # not the spend's cents
    return json.dumps(steady, sort_keys=True, default=str)


class SharedOverview:
    """The overview read from Redis at most once a check, however many tabs watch it (each tab read it itself)."""

    def __init__(self) -> None:
        self.view: dict | None = None
        self.read_at = float("-inf")
        self.lock = asyncio.Lock()

    async def get(self, tasks: TaskManager) -> dict:
        async with self.lock:  # tabs that ask meanwhile wait for this read instead of making their own
            if time.monotonic() - self.read_at >= OVERVIEW_CHECK_SECONDS * 0.9:
                self.view = await run_in_threadpool(overview, tasks)
                self.read_at = time.monotonic()
            return self.view


def _shared_overview(request: Request) -> SharedOverview:
    state = request.app.state
    if not hasattr(state, "dashboard_overview"):
        state.dashboard_overview = SharedOverview()
    return state.dashboard_overview


async def _overviews(request: Request, tasks: TaskManager) -> AsyncIterator[str]:
    yield "retry: 3000\n\n"
    shared = _shared_overview(request)
    sent, last_sent = None, float("-inf")
    while not await request.is_disconnected():
        try:
            view = await shared.get(tasks)
        except redis.RedisError:
            return
        now, fingerprint = time.monotonic(), _fingerprint(view)
        if fingerprint != sent or now - last_sent >= OVERVIEW_MAX_SILENCE:
            sent, last_sent = fingerprint, now
            yield _sse("overview", view)
        await asyncio.sleep(OVERVIEW_CHECK_SECONDS)


@router.get("/dashboard/api/overview/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}, 401: {}, 404: {}})
async def overview_stream(request: Request, _: LoggedIn, tasks: Tasks):
    """Server-Sent Events: `event: overview` with {tasks: the 20 latest, workers, queue_length, paused,
    paused_since, budget} at once, then whenever it changes (checked every second) and at least every 15 s."""
    return _event_stream(_overviews(request, tasks))


@router.get("/dashboard/api/workers", responses={401: {}, 404: {}})
def workers(_: LoggedIn, tasks: Tasks):
    """Whether every worker is paused, the workers (name, state idle/busy/paused, current task, capabilities, host,
    pid...) and the queue length (core/pool.py)."""
    return pool.overview(tasks.redis)


@router.post("/dashboard/api/workers/pause", responses={401: {}, 403: {}, 404: {}})
def pause_workers(_: Csrf, tasks: Tasks):
    """Pause every worker: no new task starts, and running tasks wait at their next step. {paused, changed, detail}"""
    return workers_switch(tasks, True)


@router.post("/dashboard/api/workers/resume", responses={401: {}, 403: {}, 404: {}})
def resume_workers(_: Csrf, tasks: Tasks):
    """Resume every worker: queued tasks start and paused ones go on. {paused, changed, detail}"""
    return workers_switch(tasks, False)


@router.get("/dashboard/api/report", responses={401: {}, 404: {}, 422: {}})
def task_report(_: LoggedIn, tasks: Tasks, since: Annotated[str, Query(max_length=20)] = "7d"):
    """The Report page's numbers: core/report.py's report of the period `since` before now (as GET /api/report)."""
    return report_answer(tasks, since)


@router.get("/dashboard/api/calls", responses={401: {}, 404: {}, 422: {}})
def list_calls(_: LoggedIn, tasks: Tasks, days: Annotated[int | None, Query(ge=1, le=3650)] = None):
    """The Calls page: the calls kept (CALL_HISTORY_DAYS; `days`: only the last ones), newest first, each with
    call_sid, number, direction (inbound, outbound), purpose, started_at, ended_at, duration_seconds, lines,
    task_ids and on_the_line (core/call_history.py)."""
    return [call.to_dict() for call in CallHistory(tasks.redis, tasks.settings).calls(days)]


@router.get("/dashboard/api/calls/{call_sid}", responses={401: {}, 404: {}})
def call_transcript(call_sid: str, _: LoggedIn, tasks: Tasks):
    """One call: its fields as in the list, `transcript` ([{at, who: caller or tars, text}], codes and secrets
    redacted) and `tasks`, the tasks it started that are still kept (as GET /dashboard/api/tasks). 404: no such
    call, or older than CALL_HISTORY_DAYS."""
    try:
        call, lines = CallHistory(tasks.redis, tasks.settings).call(call_sid)
    except CallNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    started = tasks.list(limit=len(call.task_ids), call_sid=call.call_sid)
    return {**call.to_dict(), "transcript": [asdict(line) for line in lines],
            "tasks": [task_dict(status) for status in started]}


@router.post("/dashboard/api/tasks", status_code=201, openapi_extra=body_schema(StartBody),
             responses={401: {}, 403: {}, 404: {}, 413: {}, 422: {}})
def start_task(_: Csrf, body: Body, tasks: Tasks):
    """Start a task: {goal, project_path?, verbose_updates?, plan?} -> 201 {task_id}."""
    return start_answer(tasks, body)


@router.post("/dashboard/api/tasks/{task_id}/cancel", responses={401: {}, 403: {}, 404: {}, 409: {}})
def cancel_task(task_id: str, _: Csrf, tasks: Tasks):
    """Cancel a queued or running task (waits a few seconds for it to stop); its status."""
    return task_dict(tasks.cancel(task_id_of(task_id)))


@router.post("/dashboard/api/tasks/{task_id}/pause", responses={401: {}, 403: {}, 404: {}, 409: {}})
def pause_task(task_id: str, _: Csrf, tasks: Tasks):
    """Pause one running task on its own (it stops at its next step); its status. 409 when it has not started yet
    or has ended."""
    return task_dict(tasks.pause(task_id_of(task_id)))


@router.post("/dashboard/api/tasks/{task_id}/resume", responses={401: {}, 403: {}, 404: {}, 409: {}})
def resume_task(task_id: str, _: Csrf, tasks: Tasks):
    """Let a task paused on its own go on; its status. 409 when it is not paused on its own."""
    return task_dict(tasks.resume(task_id_of(task_id)))


@router.post("/dashboard/api/tasks/{task_id}/retry", status_code=201,
             responses={401: {}, 403: {}, 404: {}, 409: {}, 422: {}})
def retry_task(task_id: str, _: Csrf, tasks: Tasks):
    """Start an ended task again as a new task: 201 {task_id} of the new one (422 when its project can no longer
    be used)."""
    return {"task_id": tasks.retry(task_id_of(task_id))}


@router.post("/dashboard/api/tasks/{task_id}/confirm", openapi_extra=body_schema(ConfirmBody),
             responses={401: {}, 403: {}, 404: {}, 409: {}, 413: {}, 422: {}})
def confirm_task(task_id: str, _: Csrf, body: Body, tasks: Tasks):
    """Give the code for the task's pending command: 200 accepted, 403 rejected (attempts_left), 409 not waiting."""
    answer = parse(ConfirmBody, body)
    return confirm_answer(tasks, task_id_of(task_id), answer.code,
                          "Code accepted: task {task_id} runs the command now.")


# --- an ended task's branch (TaskManager.checkpoints, changes, merge, push, rollback, discard) ---------------------
class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: StrictInt | None = Field(None, ge=0, description="the checkpoint to go back to (0: before the task; "
                                                          "null: the one before the latest)")


class DiscardBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    confirm: StrictBool = Field(False, description="true: the owner agreed that the task's work is deleted for good")


@router.get("/dashboard/api/tasks/{task_id}/checkpoints", responses=BRANCH_READ_RESPONSES)
def task_checkpoints(task_id: str, _: LoggedIn, tasks: Tasks):
    """An ended task's checkpoints, oldest first: [{number, sha, message, tests_passed, committed_at}] (0, the state
    before the task, is not listed); 409 while it runs or once its checkout is gone."""
    return [asdict(point) for point in tasks.checkpoints(task_id_of(task_id))]


@router.get("/dashboard/api/tasks/{task_id}/changes", responses=BRANCH_READ_RESPONSES)
def task_changes(task_id: str, _: LoggedIn, tasks: Tasks):
    """What an ended task's branch holds: git_workspace.summary (task_id, mode, path, branch, base, start_branch,
    commits, files with added/removed, diffstat, tests_passed, uncommitted) and `sentence`, the owner's summary."""
    info = tasks.changes(task_id_of(task_id))
    return {**info, "sentence": git_workspace.describe(git_workspace.unverified(info))}  # no test run here


@router.post("/dashboard/api/tasks/{task_id}/merge", responses=BRANCH_CHANGE_RESPONSES)
def merge_task(task_id: str, _: Csrf, tasks: Tasks):
    """Merge an ended task's branch into the branch it started from (worktree mode): the MergeResult (kind, branch,
    commit, files, tree_updated, message) and `detail`, the sentence. 409 with `files` on a conflict or when the
    owner's uncommitted changes touch those files (nothing changed either way)."""
    merged = tasks.merge(task_id_of(task_id))
    return {**asdict(merged), "detail": merged.message}


@router.post("/dashboard/api/tasks/{task_id}/push", responses=BRANCH_CHANGE_RESPONSES)
def push_task(task_id: str, _: Csrf, tasks: Tasks):
    """Push an ended task's branch to origin under its own name (never forced): {status: "pushed", detail}."""
    sentence = tasks.push(task_id_of(task_id))
    return {"status": "pushed", "detail": sentence}


@router.post("/dashboard/api/tasks/{task_id}/rollback", openapi_extra=body_schema(RollbackBody),
             responses=BRANCH_CHANGE_RESPONSES)
def rollback_task(task_id: str, _: Csrf, body: Body, tasks: Tasks):
    """{"to": N or null}: reset an ended task's branch and files to checkpoint N (0: before the task; null: the one
    before the latest); the checkpoint it went back to and `detail`. 422 for a checkpoint it does not have."""
    to = parse(RollbackBody, body).to
    task_id = task_id_of(task_id)
    point = tasks.rollback(task_id, to)
    if point.number == 0:
        sentence = f"Task {task_id} is rolled back to before it started."
    else:
        sentence = f"Task {task_id} is rolled back to checkpoint {point.number}: {point.message.rstrip('.')}."
    return {**asdict(point), "detail": sentence}


@router.post("/dashboard/api/tasks/{task_id}/discard", openapi_extra=body_schema(DiscardBody),
             responses=BRANCH_CHANGE_RESPONSES)
def discard_task(task_id: str, _: Csrf, body: Body, tasks: Tasks):
    """{"confirm": true}: delete an ended task's checkout and branch (a plain folder: put it back as it was before
    the task); {status: "discarded", detail}. Without the confirmation 422, and nothing is deleted."""
    confirmed = parse(DiscardBody, body or b"{}").confirm
    task_id = task_id_of(task_id)
    if not confirmed:
        tasks.task_checkout(task_id, "discard it")  # no such task, still running, gone: say that first
        raise HTTPException(422, f"Discarding task {task_id} deletes its branch and all its work for good; "
                                 'send {"confirm": true} to go ahead. Nothing was deleted.')
    sentence = tasks.discard(task_id)
    return {"status": "discarded", "detail": sentence}
