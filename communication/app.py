"""The FastAPI application that `python main_tars.py` serves.

Routers stay thin: they validate what arrives and call core/. Vendor wire
formats (Twilio, Discord, n8n) live in communication/ only. TARS's refusals
(core/exceptions.py) become HTTP answers here, once: HTTP_STATUS.
"""

from __future__ import annotations

import asyncio
import hashlib
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Callable

import redis
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

from communication.api import router
from communication.delivery import make_notifier
from communication.digest import DigestSender
from communication.notifier import TASK_FILE, Notifier, ProgressEvent
from communication.dashboard import router as dashboard_router
from communication.twilio_media_streams import VoiceHub
from communication.owner_phone import OwnerPhone
from communication.owner_phone import router as phone_router
from communication.twilio_media_streams import router as voice_router
from core import keys, pool, sandbox, task_file
from core.config import Settings
from core.defaults import QUEUE_NAME
from core.exceptions import (GitError, InvalidBudget, InvalidGoal, InvalidPriority, InvalidProjectPath,
                             InvalidReportPeriod, InvalidSchedule, MergeBlocked, MergeConflict, NoSuchCheckpoint,
                             NotAwaitingConfirmation, PauseRefused, PhoneUnavailable, TarsError, TaskNotActive,
                             TaskNotFound)
from core.redis_conn import probe_client
from core.task_file import TaskFileWatcher
from core.task_manager import TaskManager

# The status of each refusal a route lets through; the answer is {"detail": its sentence} (+ "files" for a merge
# that conflicts or is blocked). The most specific class wins: NoSuchCheckpoint is a GitError. Here, not as an
# attribute in core/exceptions.py: core/ knows no HTTP, and the voice line and the CLI say the same sentences.
# Any other TarsError (ConfigError, ModelError...) is not the request's fault: a 500, as before.
HTTP_STATUS: dict[type[TarsError], int] = {
    TaskNotFound: 404,
    TaskNotActive: 409,             # it has already ended (cancel, confirm) or is still running (retry, branch)
    NotAwaitingConfirmation: 409,
    PauseRefused: 409,              # not started yet, ended, or not paused on its own
    GitError: 409,                  # no checkout any more, on another machine, a rejected push...
    InvalidGoal: 422,
    InvalidProjectPath: 422,
    NoSuchCheckpoint: 422,
    InvalidPriority: 422,
    InvalidSchedule: 422,           # unreadable, past or too far ahead (core/schedules.py)
    InvalidBudget: 422,
    InvalidReportPeriod: 422,
    PhoneUnavailable: 422,          # call-when-done without the phone set up (the sentence names the settings)
}


HEALTH_WORKER_FIELDS = ("name", "state", "current_task", "capabilities")
"""What /health tells of each worker (the dashboard's list has more: host, pid, liveness)."""


async def refusal(request: Request, exc: TarsError) -> JSONResponse:
    """A TarsError of HTTP_STATUS as the answer FastAPI gives an HTTPException(status, sentence)."""
    if request.scope["type"] != "http":
        raise exc  # a WebSocket (/relay) has no HTTP answer: it closes as without this handler
    status = next(HTTP_STATUS[cls] for cls in type(exc).__mro__ if cls in HTTP_STATUS)
    body: dict = {"detail": str(exc)}
    if isinstance(exc, (MergeConflict, MergeBlocked)):
        body["files"] = list(exc.files)
    return JSONResponse(body, status_code=status)


def task_file_reporter(notifier: Notifier) -> Callable[[Path, task_file.Reading], None]:
    """Tells the owner (Discord / n8n) what a reading of the tasks file started and what is wrong in it."""

    def report(path: Path, reading: task_file.Reading) -> None:
        text = task_file.news(path.name, reading)
        event_id = "evt_tasks_file_" + hashlib.sha256(text.encode()).hexdigest()[:24]  # a resend is a duplicate
        notifier.announce(ProgressEvent(task_id="", type=TASK_FILE, message=text, phase="", goal="", id=event_id))

    return report


def create_app(settings: Settings, connection: redis.Redis,
               own_workers: Callable[[], list[str]] | None = None) -> FastAPI:
    """own_workers: the names of the running worker processes this server started itself (`main_tars.py up`);
    /health counts those not registered with RQ yet as `starting`."""
    tasks = TaskManager(connection, settings)
    voice = VoiceHub(settings, connection, tasks)
    phone = voice.phone = OwnerPhone(settings, connection, tasks)  # TARS calls and texts the owner
    digest = DigestSender.for_settings(connection, settings)  # None: no schedule, or nowhere to send it
    news = make_notifier(settings)
    watcher = TaskFileWatcher(connection, settings, report=task_file_reporter(news) if news.endpoints else None)
    bot = None
    if settings.DISCORD_BOT_TOKEN:  # imported only then: without a bot the server never loads discord.py
        from communication.discord_bot import DiscordBot
        bot = DiscordBot(settings, connection, tasks)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await voice.start()  # the listener that speaks task announcements into live calls
        await phone.start()  # reminders: a call or a text at their time
        if bot is not None:
            await bot.start()  # the gateway connection, if this server takes the lease
        if digest is not None:
            digest.start()  # the weekly report to Discord / n8n, sent by one server
        watcher.start()  # TASKS_FILE: its new entries become tasks
        try:
            yield
        finally:
            await asyncio.to_thread(watcher.stop)
            news.close()
            if digest is not None:
                await asyncio.to_thread(digest.stop)
            if bot is not None:
                await bot.stop()
            await phone.stop()
            await voice.stop()

    app = FastAPI(title="TARS", version="0.1.0", lifespan=lifespan,
                  exception_handlers={cls: refusal for cls in HTTP_STATUS})
    app.state.settings = settings
    app.state.redis = connection
    app.state.tasks = tasks
    app.state.voice = voice
    app.state.phone = phone
    app.state.discord = bot
    app.state.digest = digest
    app.state.task_file = watcher
    app.include_router(router)
    app.include_router(voice_router)
    app.include_router(phone_router)
    app.include_router(dashboard_router)  # / and /dashboard/api/ (its files at /static, served by a route)

    @app.get("/health")
    def health(probe: str | None = Query(None, max_length=64)) -> dict:
        """Unauthenticated liveness: Redis reachable, workers registered, workers this server started that have not
        registered yet (`starting`: `up`'s workers in their first seconds), queue length, the sandbox a worker on
        this machine puts the model's commands in (core/sandbox.py status_line), whether this server holds the
        Discord bot's connection (connected, connecting, standby: another server holds it; off: no bot), whether
        every worker is paused, each worker (`pool`: name, state idle/busy/paused, current_task, capabilities;
        core/pool.py), and the tasks file it watches (TASKS_FILE). With ?probe=<token> (`main_tars.py doctor`), also
        `probe`: whether this server's Redis held doctor's one-time token (taken now), proving that the address
        doctor called reaches this TARS."""
        try:
            pinger.ping()  # one try: "degraded" must come at once, not after the outage retry
        except redis.RedisError as exc:
            return {"status": "degraded", "redis": False, "error": exc.__class__.__name__}
        found = {} if probe is None else {"probe": pinger.delete(keys.doctor_probe(probe)) == 1}
        view = pool.overview(connection)
        registered = {worker["name"] for worker in view["workers"]}
        starting = [name for name in (own_workers() if own_workers else []) if name not in registered]
        return {"status": "ok", "redis": True, "workers": len(registered), "starting": len(starting),
                "queue_length": view["queue_length"], "sandbox": contained, "discord": bot.state if bot else "off",
                "paused": view["paused"], "pool": [{field: worker[field] for field in HEALTH_WORKER_FIELDS}
                                                   for worker in view["workers"]],
                "tasks_file": str(settings.TASKS_FILE), **found}

    pinger = probe_client(connection)
    contained = sandbox.status_line(settings.SANDBOX, settings.SANDBOX_NETWORK != "off")

    return app
