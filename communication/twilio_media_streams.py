"""The phone line: Twilio's incoming-call webhook, the <Connect action> callback and the ConversationRelay WebSocket.

Every Twilio format lives in communication/ (TwiML and signature checks here, the ConversationRelay JSON in
communication/relay_protocol.py); core/ never sees them.

* ``POST /voice`` — Twilio's incoming-call webhook. Signed (X-Twilio-Signature over PUBLIC_BASE_URL + path +
  query and the form parameters; the request's own scheme and host are never used, so a TLS-terminating
  proxy in front changes nothing). The owner gets ``<Connect action=…/voice/status><ConversationRelay
  url="wss://…/relay" …/></Connect>``; anyone else one polite sentence and ``<Hangup/>``.
* ``POST /voice/status`` — the <Connect action> callback when the relay session ends: logged, the call
  unregistered, answered with ``<Hangup/>``.
* ``WS /relay`` — ConversationRelay. The handshake carries X-Twilio-Signature over the wss:// URL given in
  the TwiML (no parameters); a bad one is refused before the upgrade (HTTP 403). Then one `RelayCall` per
  socket: setup registers the call (core/session_manager.py `CallRegistry`), prompts go to the streaming brain
  (communication/conversation.py), interrupts cut the reply, DTMF digits up to ``#`` are a confirmation code.
* `VoiceHub` — per server process: the live calls, the Anthropic client, and one Redis pub/sub listener that
  speaks confirmation requests to every owner call at once and task endings to the call that started them.

Exactly one sender per call: a reply holds the call's `speaking` lock from its first token to its
``last: true``; an announcement takes the same lock for its one message, so it is never interleaved.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from urllib.parse import parse_qsl, urlsplit

import redis
from fastapi import APIRouter, HTTPException, Request, WebSocket
from fastapi.responses import Response
from starlette.datastructures import FormData
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)
from twilio.twiml.voice_response import VoiceResponse

from communication.conversation import VOICE_MAX_TOKENS, Conversation, loggable
from communication.deps import read_body
from communication.relay_protocol import (Dtmf, End, ErrorReport, Interrupt, NotAnObject, NotJson, Prompt, Setup,
                                          TarsMessage, Text, UnknownType, encode, parse)
from communication.spoken import (APOLOGY, NOT_OWNER, confirmation_sentence, ending_sentence, model_fallback_sentence,
                                  plan_fallback_sentence,
                                  plan_sentence)
from core import event_log, keys
from core.call_history import INBOUND, OUTBOUND, CallHistory, CallRecorder
from core.config import Settings
from core.defaults import CALL_REFRESH_SECONDS
from core.exceptions import TarsError
from core.model import FallbackModel
from core.model_roles import build_models
from core.session_manager import CallRegistry
from core.task_manager import TaskManager
from core.task_states import (COMPLETE, CONFIRMATION_KINDS, CONFIRMATION_REQUIRED, ENDING_KINDS, MODEL_FALLBACK, QUEUED,
                              outcome_of)
from sub_agents_tars import VoiceFunctions

PLAN, PLAN_FALLBACK = "plan", "plan_fallback"  # core/plan_jobs.py: the plan, before work starts; or why there is none
HEARD_KINDS = frozenset(CONFIRMATION_KINDS) | ENDING_KINDS | {PLAN, PLAN_FALLBACK, MODEL_FALLBACK}
"""Event kinds a call may have to hear of (the listener reads the task's stream only when woken by one)."""

log = logging.getLogger("tars.voice")

VOICE_PATH = "/voice"
STATUS_PATH = "/voice/status"
RELAY_PATH = "/relay"

MAX_DTMF_DIGITS = 32
MAX_PROMPT_CHARS = 4000

router = APIRouter()


# --- URLs and signatures --------------------------------------------------------------------------------------
def public_url(settings: Settings, path: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}{path}"


def relay_url(settings: Settings) -> str:
    """The wss:// URL Twilio connects to (and signs): the host (and any path prefix) of PUBLIC_BASE_URL."""
    parts = urlsplit(settings.PUBLIC_BASE_URL)
    return f"wss://{parts.netloc}{parts.path.rstrip('/')}{RELAY_PATH}"


def _signature_ok(settings: Settings, url: str, params, headers, what: str) -> bool:
    token = settings.secret("TWILIO_AUTH_TOKEN")
    if not token:
        log.error("Refused %s: TWILIO_AUTH_TOKEN is not set, so Twilio's signature cannot be checked; set it in "
                  ".env to your Twilio account's auth token.", what)
        return False
    signature = headers.get(SIGNATURE_HEADER)
    if not signature:
        log.warning("Refused %s: no %s header (not from Twilio).", what, SIGNATURE_HEADER)
        return False
    sig_settings = headers.get(SIGNATURE_SETTINGS_HEADER)
    try:
        valid = RequestValidator(token).validate(url, params, signature,
                                                 algorithm=get_signature_algorithm(sig_settings))
    except ValueError:
        valid = False
    if not valid:
        hint = (" The request was signed with a Webhooks SharedKey (X-Twilio-Webhooks-Signature-Settings), which "
                "TARS does not support; remove the Webhooks Rule." if sig_settings else
                " Check that PUBLIC_BASE_URL is exactly the address configured in Twilio and TWILIO_AUTH_TOKEN "
                "is the account's primary auth token.")
        log.warning("Refused %s: the %s does not match %s.%s", what, SIGNATURE_HEADER, url, hint)
    return valid


async def signed_form(request: Request, path: str) -> FormData:
    """The form of a Twilio webhook whose signature checks out against PUBLIC_BASE_URL + path (+ query)."""
    settings: Settings = request.app.state.settings
    if not settings.PUBLIC_BASE_URL:
        log.error("Refused POST %s: PUBLIC_BASE_URL is not set; set it in .env to the https:// address Twilio "
                  "reaches this server at.", path)
        raise HTTPException(503, "The voice line is not configured: PUBLIC_BASE_URL is not set.")
    body = await read_body(request)
    form = FormData(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    query = request.url.query
    url = public_url(settings, path) + (f"?{query}" if query else "")
    if not _signature_ok(settings, url, form, request.headers, f"POST {path}"):
        raise HTTPException(403, "Forbidden: the request is not signed by Twilio.")
    return form


def _twiml(response: VoiceResponse) -> Response:
    return Response(content=response.to_xml(), media_type="application/xml")


def connect_twiml(settings: Settings, greeting: str | None = None,
                  parameters: dict[str, str] | None = None) -> VoiceResponse:
    """The call goes to the relay: an incoming call greeted with WELCOME_GREETING, or a call TARS places with its
    own greeting and <Parameter>s (they arrive as the setup message's customParameters)."""
    response = VoiceResponse()
    connect = response.connect(action=public_url(settings, STATUS_PATH))
    relay = connect.conversation_relay(url=relay_url(settings), welcome_greeting=greeting or settings.WELCOME_GREETING,
                                       language=settings.VOICE_LANGUAGE, tts_provider=settings.VOICE_TTS_PROVIDER,
                                       voice=settings.VOICE_NAME, interruptible=settings.VOICE_INTERRUPTIBLE,
                                       dtmf_detection=True)
    for name, value in (parameters or {}).items():
        relay.parameter(name=name, value=value)
    return response


def refusal_twiml(settings: Settings) -> VoiceResponse:
    response = VoiceResponse()
    response.say(NOT_OWNER, language=settings.VOICE_LANGUAGE)
    response.hangup()
    return response


# --- HTTP webhooks ----------------------------------------------------------------------------------------------
@router.post(VOICE_PATH, responses={403: {}, 503: {}})
async def incoming_call(request: Request):
    """Twilio's incoming-call webhook: the owner is connected to the relay, anyone else is turned away."""
    settings: Settings = request.app.state.settings
    form = await signed_form(request, VOICE_PATH)
    caller, call_sid = form.get("From", ""), form.get("CallSid", "")
    if caller not in settings.owner_numbers:
        log.warning("Call %s from %s refused: not one of OWNER_PHONE_NUMBERS.", call_sid,
                    caller or "an unknown number")
        return _twiml(refusal_twiml(settings))
    log.info("Call %s from the owner (%s): connecting to %s", call_sid, caller, relay_url(settings))
    return _twiml(connect_twiml(settings))


@router.post(STATUS_PATH, responses={403: {}, 503: {}})
async def relay_ended(request: Request):
    """The <Connect action> callback: the ConversationRelay session is over."""
    form = await signed_form(request, STATUS_PATH)
    call_sid = form.get("CallSid", "")
    log.info("Call %s relay session ended: SessionStatus=%s SessionDuration=%s HandoffData=%s CallStatus=%s%s",
             call_sid, form.get("SessionStatus", ""), form.get("SessionDuration", ""), form.get("HandoffData", ""),
             form.get("CallStatus", ""),
             f" ErrorCode={form.get('ErrorCode')} ErrorMessage={form.get('ErrorMessage', '')}"
             if form.get("ErrorCode") else "")
    if call_sid:
        try:
            await asyncio.to_thread(request.app.state.voice.registry.unregister, call_sid)
        except redis.RedisError as exc:
            log.warning("Call %s could not be unregistered: %s", call_sid, exc)
    response = VoiceResponse()
    response.hangup()
    return _twiml(response)


# --- the WebSocket --------------------------------------------------------------------------------------------------
@router.websocket(RELAY_PATH)
async def relay(websocket: WebSocket):
    settings: Settings = websocket.app.state.settings
    hub: VoiceHub = websocket.app.state.voice
    if not settings.PUBLIC_BASE_URL:
        log.error("Refused the relay WebSocket: PUBLIC_BASE_URL is not set; set it in .env to the https:// "
                  "address Twilio reaches this server at.")
        await websocket.close(code=1008)
        return
    query = websocket.url.query
    url = relay_url(settings) + (f"?{query}" if query else "")
    if not _signature_ok(settings, url, {}, websocket.headers, "the relay WebSocket"):
        await websocket.close(code=1008)  # before accept: the client gets HTTP 403
        return
    await websocket.accept()
    await RelayCall(websocket, hub).run()


class RelayCall:
    """One phone call on this server: its ConversationRelay WebSocket, its conversation and its voice functions."""

    def __init__(self, websocket: WebSocket, hub: VoiceHub):
        self.ws = websocket
        self.hub = hub
        self.settings = hub.settings
        self.call_sid: str | None = None
        self.caller = ""
        self.refused = False
        self.functions: VoiceFunctions | None = None
        self.conversation: Conversation | None = None
        self.speaking = asyncio.Lock()  # one talk cycle (a reply, or one announcement) at a time
        self.reply_task: asyncio.Task | None = None
        self.superseded = False  # the reply being cut gives way to a newer prompt (no interrupt from Twilio)
        self.last_cycle = ""  # what Twilio spoke last: "reply" or "announcement" (what an interrupt cuts)
        self.partial: list[str] = []
        self.digits = ""
        self.closed = False
        self.tasks: set[asyncio.Task] = set()
        self.refresher: asyncio.Task | None = None
        self.history: CallRecorder | None = None  # the call's transcript (core/call_history.py), from its setup

    @property
    def label(self) -> str:
        return f"call {self.call_sid or '(no setup yet)'}"

    # --- the receive loop ---------------------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    log.info("[%s] the caller hung up (socket closed, code %s)", self.label, message.get("code"))
                    break
                raw = message.get("text")
                if raw is None and message.get("bytes") is not None:
                    raw = message["bytes"].decode("utf-8", "replace")
                if raw is not None:
                    await self.handle(raw)
        except Exception:
            log.exception("[%s] the relay socket failed", self.label)
        finally:
            await self.close()

    async def handle(self, raw: str) -> None:
        try:
            message = parse(raw)
        except NotJson:
            log.warning("[%s] ignored a message that is not JSON: %r", self.label, raw[:200])
            return
        except NotAnObject:
            log.warning("[%s] ignored a JSON message that is not an object: %r", self.label, raw[:200])
            return
        except UnknownType as exc:
            log.info("[%s] ignored a message of unknown type %r", self.label, exc.kind)
            return
        kind = message.type
        handler = {"setup": self.on_setup, "prompt": self.on_prompt, "interrupt": self.on_interrupt,
                   "dtmf": self.on_dtmf, "error": self.on_error}[kind]
        if not isinstance(message, (Setup, ErrorReport)) and (self.call_sid is None or self.refused):
            log.warning("[%s] ignored %s: no owner call set up on this socket", self.label, kind)
            return
        try:
            await handler(message)
        except Exception:
            log.exception("[%s] handling %s failed", self.label, kind)

    # --- messages from Twilio -----------------------------------------------------------------------------------
    async def on_setup(self, message: Setup) -> None:
        if self.call_sid is not None or self.refused:
            log.warning("[%s] ignored a second setup message", self.label)
            return
        call_sid, caller = message.call_sid, message.caller
        placed = message.direction.startswith("outbound")  # a call TARS placed: the owner is the one called
        if placed:
            caller = message.to
            placed_record = await asyncio.to_thread(self.hub.placed_call, call_sid) if call_sid else None
        if not call_sid or caller not in self.settings.owner_numbers or (placed and placed_record is None):
            self.refused = True
            log.warning("Relay session %s (call %s) %s %s refused: %s.", message.session_id, call_sid or "?",
                        "to" if placed else "from", caller or "an unknown number",
                        "not a call TARS placed" if placed and caller in self.settings.owner_numbers
                        else "not one of OWNER_PHONE_NUMBERS")
            await self.send(Text(NOT_OWNER, last=True))
            await self.send(End(handoff_data=json.dumps({"reasonCode": "not-owner"})))
            return
        self.call_sid, self.caller = call_sid, caller
        self.functions = VoiceFunctions(self.hub.tasks, self.settings, call_sid=call_sid)
        if self.hub.phone is not None:
            self.functions.reminder_added = self.hub.phone.reminder_added
        self.conversation = Conversation(self.hub.brain(), self.settings, self.functions, label=self.label)
        self._start_history(message)  # before the hub knows the call: its first announcement is recorded too
        self.hub.calls[call_sid] = self
        try:
            await asyncio.to_thread(self.hub.registry.register, call_sid, caller)
        except redis.RedisError as exc:
            log.error("[%s] could not be registered as active (Redis: %s); the call goes on", self.label, exc)
        self.refresher = asyncio.create_task(self._refresh())
        log.info("[%s] set up: the owner (%s) is on the line%s", self.label, caller,
                 f" (TARS called: {placed_record.get('purpose')})" if placed else "")
        if placed:
            self._spawn(self._open_placed_call(placed_record))

    async def on_prompt(self, message: Prompt) -> None:
        piece = message.voice_prompt.strip()
        if piece:
            self.partial.append(piece)
        if not message.last:
            return
        text, self.partial = " ".join(self.partial)[:MAX_PROMPT_CHARS], []
        if not text:
            return
        log.info("[%s] caller: %s", self.label, loggable(text, self.settings))
        self.history.caller(text)
        if self.reply_task is not None and not self.reply_task.done():
            await self._cut_reply(None, supersede=True)  # a newer turn makes the reply in progress moot
        self.reply_task = asyncio.create_task(self._reply(text))

    async def on_interrupt(self, message: Interrupt) -> None:
        heard = message.utterance
        log.info("[%s] interrupted after %s ms; the caller heard %r", self.label, message.duration_ms, heard)
        await self._cut_reply(heard, supersede=False)

    async def on_dtmf(self, message: Dtmf) -> None:
        digit = message.digit
        if digit == "#":
            code, self.digits = self.digits, ""
            if code:
                self.history.keypad()
                self._spawn(self._keypad_code(code))
        elif digit == "*":
            self.digits = ""
        elif len(digit) == 1 and digit.isdigit() and len(self.digits) < MAX_DTMF_DIGITS:
            self.digits += digit

    async def on_error(self, message: ErrorReport) -> None:
        log.error("[%s] ConversationRelay reported an error: %s", self.label, message.description)

    # --- speaking -------------------------------------------------------------------------------------------------
    async def send(self, message: TarsMessage) -> None:
        if self.closed:
            return
        try:
            await self.ws.send_text(encode(message))
        except Exception as exc:  # the socket is gone: the receive loop sees the disconnect
            log.info("[%s] could not send (%s): the socket is closed", self.label, exc.__class__.__name__)
            self.closed = True

    async def announce(self, sentence: str, interruptible: bool | None = None) -> None:
        """One sentence of TARS's own, as one message that ends its talk cycle; never inside a reply."""
        async with self.speaking:
            if self.closed:
                return
            await self.send(Text(sentence, last=True, interruptible=interruptible))
            self.last_cycle = "announcement"
            self.history.tars(sentence)
        log.info("[%s] announced: %s", self.label, sentence)
        if self.conversation is not None:
            self.conversation.note(sentence)

    async def _reply(self, text: str) -> None:
        cycle = _TalkCycle(self)
        self.superseded = False
        try:
            await self.conversation.reply(text, cycle.say)
            await cycle.finish()
            self.last_cycle = "reply"
        except asyncio.CancelledError:
            if cycle.holding and self.superseded and not self.closed:
                # No interrupt ended this talk cycle on Twilio's side: end it before the next reply speaks.
                await self.send(Text("", last=True))
            raise
        except Exception:
            log.exception("[%s] the reply failed", self.label)
            await cycle.say(APOLOGY)
            await cycle.finish()
        finally:
            cycle.release()
            self._record_reply(cycle)

    async def _cut_reply(self, heard: str | None, supersede: bool) -> None:
        task = self.reply_task
        if task is None or task.done():
            if heard is not None and self.conversation is not None:
                self.history.heard_only(heard)
                if self.last_cycle == "reply":
                    self.conversation.heard_only(heard)
                elif self.last_cycle == "announcement":
                    self.conversation.heard_only_note(heard)
            return
        self.conversation.cut(heard)
        self.superseded = supersede
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("[%s] the cut reply failed", self.label)

    async def _open_placed_call(self, record: dict) -> None:
        """The owner answered a call TARS placed: the greeting was said; a call about a code now says the request if
        it is still pending (it may have been answered elsewhere while the phone rang)."""
        if self.conversation is not None and record.get("greeting"):
            self.conversation.note(record["greeting"])
        sentence, task_id = await asyncio.to_thread(self.hub.phone.opening, record)
        if task_id:
            self.functions.pending_confirmation = task_id
        if sentence:
            await self.announce(sentence, interruptible=False)

    # --- keypad codes ----------------------------------------------------------------------------------------------
    async def _keypad_code(self, code: str) -> None:
        functions = self.functions
        task_id = functions.pending_confirmation or await asyncio.to_thread(self.hub.tasks.newest_waiting,
                                                                            self.call_sid)
        log.info("[%s] confirmation code entered on the keypad for task %s", self.label, task_id or "(latest)")
        answer = await asyncio.to_thread(functions.call, "submit_background_confirmation",
                                         {"task_id": task_id, "confirmation_code": code})
        await self.announce(answer)

    # --- call history (core/call_history.py) ------------------------------------------------------------------------
    def _start_history(self, message: Setup) -> None:
        """Twilio says "outbound-api" for a call TARS placed (its purpose in customParameters) and "inbound" else."""
        outbound = message.direction.startswith("outbound")
        self.history = CallRecorder(CallHistory(self.hub.connection, self.settings), self.call_sid)
        self.history.start(message.to if outbound else message.caller, OUTBOUND if outbound else INBOUND,
                           str(message.custom_parameters.get("purpose") or "")[:64])

    def _record_reply(self, cycle: _TalkCycle) -> None:
        """What the caller heard of a reply: all of it, or up to an interrupt, or what was sent before it was cut."""
        if not cycle.said:  # nothing reached the caller (and any interrupt's words belong to an older reply)
            return
        cut = asyncio.current_task().cancelling() > 0
        heard = self.conversation.heard  # set by the interrupt that cut this reply
        self.history.tars(heard if cut and heard is not None else cycle.said, cut=cut)

    # --- lifetime ----------------------------------------------------------------------------------------------------
    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("[%s] a background step failed: %r", self.label, task.exception())

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.hub.refresh_seconds)
            try:
                await asyncio.to_thread(self.hub.registry.refresh, self.call_sid)
            except redis.RedisError as exc:
                log.warning("[%s] could not refresh the active-call entry: %s", self.label, exc)

    async def close(self) -> None:
        self.closed = True
        if self.conversation is not None:
            self.conversation.hung_up = True
        pending = [t for t in (self.reply_task, self.refresher, *self.tasks) if t is not None and not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if self.history is not None:
            await self.history.end(over=self.hub.calls.get(self.call_sid) is self)
        if self.call_sid is not None:
            if self.hub.calls.get(self.call_sid) is self:  # not when a newer socket took the call over
                del self.hub.calls[self.call_sid]
                try:
                    await asyncio.to_thread(self.hub.registry.unregister, self.call_sid)
                except redis.RedisError as exc:
                    log.warning("[%s] could not be unregistered (it expires by itself): %s", self.label, exc)
            log.info("[%s] ended", self.label)


class _TalkCycle:
    """One reply's hold on the call's speaking lock: taken at the first token, given back after last=true."""

    def __init__(self, call: RelayCall):
        self.call = call
        self.holding = False
        self.said = ""  # every token sent (the call history's line)

    async def say(self, token: str) -> None:
        if not self.holding:
            await self.call.speaking.acquire()
            self.holding = True
        await self.call.send(Text(token, last=False))
        self.said += token

    async def finish(self) -> None:
        if not self.holding:
            await self.call.speaking.acquire()
            self.holding = True
        await self.call.send(Text("", last=True))
        self.release()

    def release(self) -> None:
        if self.holding:
            self.holding = False
            self.call.speaking.release()


# --- the process-wide side --
class VoiceHub:
    """The voice side of one server process: its live calls, the voice models' clients, one announcement listener."""

    def __init__(self, settings: Settings, connection: redis.Redis, tasks: TaskManager):
        self.settings = settings
        self.connection = connection
        self.tasks = tasks
        self.registry = CallRegistry(connection)  # the calls on the line, for every process
        self.calls: dict[str, RelayCall] = {}
        self.refresh_seconds: float = CALL_REFRESH_SECONDS
        self.loop: asyncio.AbstractEventLoop | None = None
        self.listener: AnnouncementListener | None = None
        self._models: list | None = None  # VOICE_MODELS' clients, made at the first call, shared by every call
        self.phone = None  # communication/owner_phone.OwnerPhone, set by the app: TARS calls and texts the owner

    def placed_call(self, call_sid: str) -> dict | None:
        """The record of a call TARS placed to the owner (blocking), or None."""
        return self.phone.outbound(call_sid) if self.phone is not None else None

    def brain(self) -> FallbackModel:
        """A call's own voice brain over the shared clients: a fallback in one call leaves the next call's first
        model first again."""
        if self._models is None:
            self._models = build_models(self.settings, "voice", max_tokens=VOICE_MAX_TOKENS).models
        return FallbackModel(self._models)

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        if self.settings.PUBLIC_BASE_URL and self.settings.PUBLIC_BASE_URL.startswith("http://"):
            log.warning("PUBLIC_BASE_URL is http://; Twilio only connects to the relay over wss:// (%s)",
                        relay_url(self.settings))
        self.listener = AnnouncementListener(self.connection, self._deliver)
        self.listener.start()
        await asyncio.to_thread(self.listener.ready.wait, 3)

    async def stop(self) -> None:
        if self.listener is not None:
            await asyncio.to_thread(self.listener.stop)
        for model in self._models or []:
            await model.aclose()
        self._models = None

    def _deliver(self, task_id: str, events: list[event_log.Event]) -> None:
        """From the listener thread: hand a task's new events to the event loop."""
        if self.loop is not None and not self.loop.is_closed():
            asyncio.run_coroutine_threadsafe(self.dispatch(task_id, events), self.loop)

    async def dispatch(self, task_id: str, events: list[event_log.Event]) -> None:
        """Speak what a task's new events call for: a confirmation still pending at the end of them (to every call
        of the owner), a planned task's plan (or why it runs as one task) and an ending (to the call that started
        the task)."""
        pending, ending = None, None
        for event in events:
            if event.type == PLAN and isinstance(event.data.get("subtasks"), list):
                await self._tell_starter(task_id, plan_sentence(task_id, event.data["subtasks"]))
            elif event.type == PLAN_FALLBACK and event.phase != QUEUED:  # queued: decided at start, already said
                await self._tell_starter(task_id, plan_fallback_sentence(task_id, str(event.data.get("reason") or "")))
            elif event.type == MODEL_FALLBACK:
                await self._tell_starter(task_id, model_fallback_sentence(task_id, event.message))
            if event.type == CONFIRMATION_REQUIRED:
                pending = event
            elif event.type in CONFIRMATION_KINDS or event.ends:
                pending = None  # answered, refused, or the task ended: nothing to ask any more
            if event.ends:
                ending = event
        if pending is not None:
            calls = self._owner_calls()
            command, reason = str(pending.data.get("command") or ""), str(pending.data.get("reason") or "")
            sentence = confirmation_sentence(task_id, command, reason)
            for call in calls:  # the owner is one person: every line they are on hears it, at once
                call.functions.pending_confirmation = task_id
                call._spawn(call.announce(sentence, interruptible=False))
            if not calls and self.phone is not None:
                await self._phone_owner(self.phone.ask_for_code, task_id, str(pending.data.get("request_id") or ""),
                                        command, reason)
        if ending is not None:
            await self._announce_ending(task_id, ending)

    async def _announce_ending(self, task_id: str, ending: event_log.Event) -> None:
        for call in self.calls.values():
            if call.functions is not None and call.functions.pending_confirmation == task_id:
                call.functions.pending_confirmation = None
        result = ending.data.get("result") if isinstance(ending.data.get("result"), dict) else {}
        outcome = outcome_of(ending.type) or ""
        sentence = ending_sentence(task_id, outcome, str(result.get("reason") or ending.message),
                                   _brief(result.get("git")))
        if sentence:
            # A plan's subtask that completed is merged into the plan, whose own ending the call hears.
            heard = await self._tell_starter(task_id, sentence, subtask_too=outcome != COMPLETE)
            if not heard and self.phone is not None and await self._call_when_done(task_id):
                calls = self._owner_calls()
                for call in calls[:1]:  # on another call now: told there instead of ringing
                    call._spawn(call.announce(sentence))
                if not calls:
                    await self._phone_owner(self.phone.tell, task_id, sentence)

    def _owner_calls(self) -> list[RelayCall]:
        return [c for c in self.calls.values() if c.caller in self.settings.owner_numbers and not c.closed]

    async def _call_when_done(self, task_id: str) -> bool:
        try:
            return (await asyncio.to_thread(self.tasks.status, task_id)).call_when_done
        except (TarsError, redis.RedisError):
            return False

    async def _phone_owner(self, act, *args) -> None:
        """Call or text the owner (blocking REST requests, in a thread), unless they are on a call through another
        server process; never raises."""
        try:
            if await asyncio.to_thread(self.registry.owner_on_call):
                return
            await asyncio.to_thread(act, *args)
        except (TarsError, redis.RedisError) as exc:
            log.error("Could not call or text the owner: %s", exc)

    async def _tell_starter(self, task_id: str, sentence: str, subtask_too: bool = False) -> bool:
        """Announce a sentence about a task to the call that started it, if that call is still on the line (a plan's
        subtask shares its plan's call: only when subtask_too, naming its plan). Whether a call hears it."""
        try:
            status = await asyncio.to_thread(self.tasks.status, task_id)
        except (TarsError, redis.RedisError) as exc:
            log.warning("Task %s's record cannot be read (%s): no call hears %r", task_id, exc, sentence[:80])
            return False
        if status.parent:
            if not subtask_too:
                return False
            sentence = sentence.replace(f"Task {task_id}", f"Task {task_id}, a subtask of task {status.parent},", 1)
        call = self.calls.get(str(status.call_sid or ""))
        if call is not None and not call.closed:
            call._spawn(call.announce(sentence))
            return True
        return False


def _brief(git: object) -> dict | None:
    """The ending's branch summary as the spoken sentence counts it (files: how many)."""
    if not isinstance(git, dict):
        return None
    return {**git, "files": len(git.get("files") or [])}


class AnnouncementListener:
    """A daemon thread woken (pub/sub) when a task's timeline grows with something a call may have to hear; it reads
    the new events from the task's stream (the one record) and hands them on. Reconnects when Redis goes away."""

    def __init__(self, connection: redis.Redis, deliver):
        self.connection = connection
        self.deliver = deliver
        self.read_up_to: dict[str, str] = {}  # task id -> the id of the last event handed on
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tars-voice-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def woken(self, data: bytes | str) -> None:
        """One wake-up: read the task's events since the last ones handed on, when its new one may be heard."""
        try:
            wake = json.loads(data)
            task_id, kind = str(wake["task_id"]), str(wake["type"])
        except (ValueError, KeyError, TypeError):
            log.warning("Ignored a malformed wake-up on %s: %r", keys.TASK_EVENTS_CHANNEL, data[:200])
            return
        if kind not in HEARD_KINDS:
            return  # progress, edits, commands: nothing a call is told of
        events = event_log.read(self.connection, task_id, self.read_up_to.get(task_id))
        if not events:
            return
        if any(event.ends for event in events):
            self.read_up_to.pop(task_id, None)  # nothing follows an ending
        else:
            self.read_up_to[task_id] = events[-1].id
        self.deliver(task_id, events)

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self.connection.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(keys.TASK_EVENTS_CHANNEL)
                self.ready.set()
                backoff = 0.5
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message and message.get("type") == "message":
                        self.woken(message["data"])
            except redis.RedisError as exc:
                log.warning("The voice announcement listener lost Redis (%s); retrying in %.1fs", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10)
            except Exception:
                log.exception("The voice announcement listener failed; restarting it")
                self._stop.wait(backoff)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except redis.RedisError:
                        log.debug("closing the listener's pub/sub connection failed", exc_info=True)
