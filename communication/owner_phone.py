"""TARS calls and texts the owner: the phone both ways.

* `OwnerPhone.ask_for_code` — a task needs the confirmation code while the owner is on no call: with
  CALL_OWNER_FOR_CONFIRMATIONS=on, TARS calls the first of OWNER_PHONE_NUMBERS (in QUIET_HOURS it texts instead),
  never twice for one request (keys.phone_asked).
* `OwnerPhone.tell` — a task started with call-when-done ended: a call (quiet hours: a text).
* reminders — the server's loop calls or texts each reminder at its time (core/reminders.py).
* ``POST /voice/call-status`` — a placed call's status callback: busy, no-answer, failed or canceled sends the
  call's news by SMS; a call about a code that ended with the request still pending is texted too.
* ``POST /sms`` — the owner's texts: a code (alone, or after the task id) answers the request, STATUS gets a
  one-line summary, anything else the help line. Signed like every Twilio webhook; only OWNER_PHONE_NUMBERS.

A placed call, once answered, is an ordinary relay call (communication/twilio_media_streams.py): its setup says it
is outbound, the relay looks its record up here (`outbound`) and, for a code, speaks the request if it is still
pending (`opening`). The REST API is communication/twilio_rest.py; the words communication/spoken.py.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis
from fastapi import APIRouter, Request
from fastapi.responses import Response
from twilio.twiml.messaging_response import MessagingResponse

from communication import spoken
from communication.twilio_media_streams import connect_twiml, public_url, signed_form
from communication.twilio_rest import TwilioRest
from core import confirmations, keys, reminders, schedules
from core.config import Settings
from core.defaults import OWNER_CALL_RING_SECONDS, PHONE_RECORD_TTL_SECONDS, REMINDER_POLL_SECONDS
from core.exceptions import PhoneUnavailable, TarsError
from core.reminders import Reminder
from core.task_manager import TaskManager
from sub_agents_tars import VoiceFunctions

log = logging.getLogger("tars.phone")

CALL_STATUS_PATH = "/voice/call-status"
SMS_PATH = "/sms"

CONFIRM, DONE, REMINDER = "confirm", "done", "reminder"
"""Why TARS calls: a task needs the code, a task it was asked to call about ended, a reminder is due."""

MISSED = frozenset({"busy", "no-answer", "failed", "canceled"})
"""A placed call's final statuses that mean the owner did not answer (Twilio's CallStatus)."""
FINAL = MISSED | {"completed"}

router = APIRouter()


class OwnerPhone:
    """Calls and texts to the owner, for one server process (its REST client is made at the first use)."""

    def __init__(self, settings: Settings, connection: redis.Redis, tasks: TaskManager):
        self.settings = settings
        self.redis = connection
        self.tasks = tasks
        self._rest: TwilioRest | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reminders: asyncio.Task | None = None

    @property
    def rest(self) -> TwilioRest:
        if self._rest is None:
            self._rest = TwilioRest(self.settings)  # PhoneUnavailable names the missing settings
        return self._rest

    @property
    def owner(self) -> str:
        return self.settings.owner_numbers[0]

    def quiet_now(self) -> bool:
        return schedules.in_quiet_hours(self.settings.QUIET_HOURS)

    # --- why TARS calls -----------------------------------------------------------------------------------------
    def ask_for_code(self, task_id: str, request_id: str, command: str, reason: str) -> str | None:
        """A task needs the code and the owner is on no call: call them (text in quiet hours), once per request.
        What was done ("called", "texted"), or None."""
        if not self.settings.CALL_OWNER_FOR_CONFIRMATIONS or not request_id:
            return None
        if not self.redis.set(keys.phone_asked(request_id), 1, nx=True, ex=PHONE_RECORD_TTL_SECONDS):
            return None  # this request was called or texted about already
        if self.quiet_now():
            return self._try_text(spoken.code_text(task_id, command, reason, missed=False), task_id, request_id)
        return self._try_call(CONFIRM, spoken.CALLING_GREETING, spoken.code_text(task_id, command, reason, missed=True),
                              task_id, request_id)

    def tell(self, task_id: str, sentence: str) -> str | None:
        """A task started with call-when-done ended: call the owner with the news (a text in quiet hours)."""
        if self.quiet_now():
            return self._try_text(spoken.news_text(sentence, missed=False), task_id)
        return self._try_call(DONE, spoken.calling_to_tell(sentence), spoken.news_text(sentence, missed=True),
                              task_id)

    def remind(self, reminder: Reminder) -> str | None:
        sentence = spoken.reminder_sentence(reminder.text)
        if reminder.by == reminders.TEXT or self.quiet_now():
            return self._try_text(spoken.news_text(sentence, missed=False))
        return self._try_call(REMINDER, spoken.calling_to_tell(sentence), spoken.news_text(sentence, missed=True))

    # --- placing calls and sending texts --------------------------------------------------------------------------
    def _try_call(self, purpose: str, greeting: str, missed_text: str, task_id: str = "",
                  request_id: str = "") -> str | None:
        """Call the owner; when Twilio refuses the call, text instead (the text may fail the same way: logged)."""
        try:
            self.call(purpose, greeting, missed_text, task_id, request_id)
            return "called"
        except PhoneUnavailable as exc:
            log.error("%s Texting instead.", exc)
        return self._try_text(missed_text, task_id, request_id)

    def _try_text(self, body: str, task_id: str = "", request_id: str = "") -> str | None:
        try:
            self.text(self.owner, body, task_id, request_id)
            return "texted"
        except PhoneUnavailable as exc:
            log.error("%s The owner was not told: %s", exc, body)
            return None

    def call(self, purpose: str, greeting: str, missed_text: str, task_id: str = "", request_id: str = "") -> str:
        """Place a call to the owner whose TwiML connects to the relay; remember what it is about (its SID)."""
        twiml = connect_twiml(self.settings, greeting, {"purpose": purpose, "task_id": task_id}).to_xml()
        call_sid = self.rest.place_call(self.owner, twiml, public_url(self.settings, CALL_STATUS_PATH),
                                        OWNER_CALL_RING_SECONDS)
        key = keys.phone_outbound(call_sid)
        with self.redis.pipeline() as pipe:
            pipe.hset(key, mapping={"to": self.owner, "purpose": purpose, "task_id": task_id,
                                    "request_id": request_id, "greeting": greeting, "text": missed_text,
                                    "placed_at": time.time()})
            pipe.expire(key, PHONE_RECORD_TTL_SECONDS)
            pipe.execute()
        log.info("Called the owner about %s%s (call %s)", purpose, f" of task {task_id}" if task_id else "", call_sid)
        return call_sid

    def text(self, to: str, body: str, task_id: str = "", request_id: str = "") -> str:
        """Text the owner; a text asking for a code is remembered, so a bare code in the reply answers it."""
        sid = self.rest.send_text(to, body)
        if request_id:
            key = keys.phone_texted(to)
            with self.redis.pipeline() as pipe:
                pipe.hset(key, mapping={"task_id": task_id, "request_id": request_id})
                pipe.expire(key, PHONE_RECORD_TTL_SECONDS)
                pipe.execute()
        return sid

    # --- a placed call's life -------------------------------------------------------------------------------------
    def outbound(self, call_sid: str) -> dict | None:
        """The record of a call TARS placed (purpose, task_id, request_id, greeting, ...), or None."""
        raw = self.redis.hgetall(keys.phone_outbound(call_sid))
        return {k.decode(): v.decode() for k, v in raw.items()} or None

    def opening(self, record: dict) -> tuple[str | None, str | None]:
        """What the relay says once the owner answered a placed call: (sentence, task the code is for). A call
        about a code speaks the request when it is still the one pending; others were said in the greeting."""
        if record.get("purpose") != CONFIRM:
            return None, None
        task_id = record.get("task_id", "")
        pending = confirmations.pending_request(self.redis, task_id)
        if not pending or pending.get("request_id") != record.get("request_id"):
            return spoken.code_no_longer_needed(task_id), None
        return spoken.calling_about_code(task_id, pending.get("command", ""), pending.get("reason", "")), task_id

    def call_ended(self, call_sid: str, status: str) -> str | None:
        """A placed call's status callback: text the news when the call was missed, or when the code it asked for is
        still pending after it. Repeated callbacks act once. What was done, or None."""
        record = self.outbound(call_sid)
        if record is None:
            log.info("Status %s of call %s, which TARS did not place (or placed over a day ago)", status, call_sid)
            return None
        if status not in FINAL:
            log.info("Call %s to the owner: %s", call_sid, status)
            return None
        if not self.redis.hsetnx(keys.phone_outbound(call_sid), "ended", status):
            return None  # Twilio retried the callback
        task_id, request_id = record.get("task_id", ""), record.get("request_id", "")
        still_pending = bool(request_id) and (confirmations.pending_request(self.redis, task_id) or {}).get(
            "request_id") == request_id
        if record.get("purpose") == CONFIRM and not still_pending:
            log.info("Call %s to the owner ended (%s); task %s needs no code any more", call_sid, status, task_id)
            return None
        if status in MISSED or still_pending:
            log.info("Call %s to the owner ended (%s): texting instead", call_sid, status)
            return self._try_text(record.get("text", ""), task_id, request_id)
        return None

    # --- texts from the owner -------------------------------------------------------------------------------------
    def answer_text(self, sender: str, body: str) -> str:
        """The reply to one text from an owner number: a code answers a request, STATUS gets the summary."""
        words = body.split()
        first = words[0].lower().strip("#.!?") if words else ""
        if first in ("status", "s") and len(words) == 1:
            log.info("Text from the owner: STATUS")
            return spoken.status_text(self.tasks.list(limit=20))
        if not words or len(words) > 2 or first in ("help", "hi", "hello"):
            return spoken.SMS_HELP
        functions = VoiceFunctions(self.tasks, self.settings)
        if len(words) == 2:
            try:
                task_id, request_id = functions.resolve_task_id(words[0]), None
            except TarsError as exc:
                return f"TARS: {exc}"
        else:
            task_id, request_id = self._waiting_for(sender)
            if task_id is None:
                return "TARS: no task is waiting for a code."
        log.info("Text from the owner: a confirmation code for task %s", task_id)
        _accepted, sentence = functions.answer_code(task_id, words[-1], request_id)
        return spoken.news_text(sentence, missed=False)

    def _waiting_for(self, sender: str) -> tuple[str | None, str | None]:
        """The request a bare code answers: the one texted to this number if still pending, else the newest task
        waiting for a code."""
        texted = {k.decode(): v.decode() for k, v in self.redis.hgetall(keys.phone_texted(sender)).items()}
        if texted.get("task_id"):
            pending = confirmations.pending_request(self.redis, texted["task_id"])
            if pending and pending.get("request_id") == texted.get("request_id"):
                return texted["task_id"], texted["request_id"]
        return self.tasks.newest_waiting(), None

    # --- reminders ------------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if not self.settings.phone_missing():
            self._reminders = asyncio.create_task(self._deliver_reminders())

    async def stop(self) -> None:
        if self._reminders is not None:
            self._reminders.cancel()
            await asyncio.gather(self._reminders, return_exceptions=True)
            self._reminders = None

    def reminder_added(self) -> None:
        """A reminder was set in this process (from any thread): look at the times again now."""
        if self._loop is not None and self._wake is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _deliver_reminders(self) -> None:
        backoff = 1.0
        while True:
            self._wake.clear()
            try:
                for reminder in await asyncio.to_thread(reminders.take_due, self.redis):
                    log.info("Reminder %s is due: %s", reminder.reminder_id, reminder.text)
                    await asyncio.to_thread(self.remind, reminder)
                soonest = await asyncio.to_thread(reminders.next_due, self.redis)
                wait = REMINDER_POLL_SECONDS if soonest is None else \
                    min(max(0.0, soonest - time.time()), REMINDER_POLL_SECONDS)
                backoff = 1.0
            except redis.RedisError as exc:
                log.warning("Reminders cannot be read (Redis: %s); trying again in %.0f s", exc, backoff)
                wait, backoff = backoff, min(backoff * 2, REMINDER_POLL_SECONDS)
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass


# --- Twilio's webhooks ------------------------------------------------------------------------------------------
@router.post(CALL_STATUS_PATH, responses={403: {}, 503: {}})
async def call_status(request: Request):
    """A placed call's status callback (initiated, ringing, answered, completed, busy, no-answer, ...)."""
    form = await signed_form(request, CALL_STATUS_PATH)
    phone: OwnerPhone = request.app.state.phone
    try:
        await asyncio.to_thread(phone.call_ended, form.get("CallSid", ""), form.get("CallStatus", ""))
    except redis.RedisError as exc:
        log.error("The status of call %s could not be handled (Redis: %s)", form.get("CallSid", ""), exc)
    return Response(content=MessagingResponse().to_xml(), media_type="application/xml")


@router.post(SMS_PATH, responses={403: {}, 503: {}})
async def incoming_text(request: Request):
    """Twilio's incoming-message webhook: the owner's texts get an answer; anyone else's none."""
    settings: Settings = request.app.state.settings
    form = await signed_form(request, SMS_PATH)
    sender = form.get("From", "")
    response = MessagingResponse()
    if sender not in settings.owner_numbers:
        log.warning("Text %s from %s ignored: not one of OWNER_PHONE_NUMBERS.", form.get("MessageSid", ""),
                    sender or "an unknown number")
    else:
        phone: OwnerPhone = request.app.state.phone
        try:
            answer = await asyncio.to_thread(phone.answer_text, sender, str(form.get("Body", "")))
        except redis.RedisError as exc:
            log.error("A text from the owner could not be handled (Redis: %s)", exc)
            answer = "TARS: I cannot reach my task list right now (Redis is down); try again in a minute."
        response.message(answer)
    return Response(content=response.to_xml(), media_type="application/xml")
