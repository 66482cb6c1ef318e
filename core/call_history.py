"""Call history: every call's transcript, both sides, kept CALL_HISTORY_DAYS (`python main_tars.py calls`, the
dashboard's Calls page).

A call is recorded as it happens (the relay, communication/twilio_media_streams.py, feeds a `CallRecorder`): its
start (the owner's number, inbound or outbound, and for a call TARS placed its purpose), each line ("caller" or
"tars"), its end. The tasks a call started are not copied: they are the call's own index (keys.call_tasks).

Nothing secret is stored: the owner's CONFIRMATION_CODE, typed ("6283", "6 2 8 3") or said ("six two eight
three"), becomes CODE_MARK; every other secret setting is scrubbed by core/scrub.py's Scrubber; a code keyed in
on the phone is stored only as KEYPAD_MARK. A line's text and a call's lines are bounded, so a long call cannot
grow Redis without end. Everything expires CALL_HISTORY_DAYS after it was last written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import asdict, dataclass, field

import redis

from core import keys
from core.config import Settings
from core.confirmations import mentions_code
from core.exceptions import TarsError
from core.scrub import Scrubber

log = logging.getLogger("tars.calls")

CALLER, TARS = "caller", "tars"
INBOUND, OUTBOUND = "inbound", "outbound"
CODE_MARK = "(confirmation code)"
KEYPAD_MARK = "(keypad code)"
MAX_LINE_CHARS = 4000  # a caller's turn is cut there too (the relay's MAX_PROMPT_CHARS); a reply is shorter
MAX_LINES = 500  # about an hour of talk; the last place then says the transcript stops
CUT_MARK = "…"  # after what the caller heard of a reply they interrupted
FULL = f"(the transcript stops here: a call keeps at most {MAX_LINES} lines)"
LISTED_AT_MOST = 500
CLOSE_WAIT_SECONDS = 5.0  # how long a call's end waits for its last lines to be written


class CallNotFound(TarsError):
    """No call of the history has this sid (never recorded, or older than CALL_HISTORY_DAYS)."""


@dataclass
class Line:
    at: float
    who: str  # CALLER or TARS
    text: str


@dataclass
class Call:
    """One call of the history: who and which way, when, how many lines, the tasks it started (newest first)."""

    call_sid: str
    number: str
    direction: str  # INBOUND or OUTBOUND
    purpose: str  # "" for the owner's own calls; why TARS called ("confirm", "done", "reminder"...)
    started_at: float
    ended_at: float | None  # None while the call is on (or when its server died before the end was written)
    lines: int
    task_ids: list[str] = field(default_factory=list)
    on_the_line: bool = False  # registered as active now (core/session_manager.py)

    @property
    def duration(self) -> float | None:
        return None if self.ended_at is None else max(0.0, self.ended_at - self.started_at)

    def to_dict(self) -> dict:
        return {**asdict(self), "duration_seconds": self.duration}


class CallHistory:
    """The calls of the last CALL_HISTORY_DAYS in Redis: written by the relay, read by the CLI and the dashboard."""

    def __init__(self, connection: redis.Redis, settings: Settings):
        self.redis = connection
        self.settings = settings
        self.ttl = settings.CALL_HISTORY_DAYS * 86400
        self.scrubber = Scrubber(settings.secret_values())

    # --- writing ----------------------------------------------------------------------------------------------
    def start(self, call_sid: str, number: str, direction: str, purpose: str = "", at: float | None = None) -> None:
        at = time.time() if at is None else at
        record = keys.call_record(call_sid)
        with self.redis.pipeline() as pipe:
            # A call taken over by a new socket (the same sid) keeps its first start and is on the line again.
            pipe.hset(record, mapping={"number": number, "direction": direction, "purpose": purpose})
            pipe.hsetnx(record, "started_at", at)
            pipe.hdel(record, "ended_at")
            pipe.expire(record, self.ttl)
            pipe.zadd(keys.CALL_HISTORY, {call_sid: at}, nx=True)
            pipe.zremrangebyscore(keys.CALL_HISTORY, "-inf", time.time() - self.ttl)  # their records expired too
            pipe.execute()

    def add(self, call_sid: str, who: str, text: str, at: float | None = None) -> int | None:
        """Add one line, redacted and bounded; its index in the transcript (None: empty, or past MAX_LINES)."""
        text = self.redact(text)
        if not text:
            return None
        key = keys.call_transcript(call_sid)
        with self.redis.pipeline() as pipe:
            pipe.rpush(key, _line(who, text, at))
            pipe.ltrim(key, 0, MAX_LINES - 1)
            pipe.expire(key, self.ttl)
            pipe.expire(keys.call_record(call_sid), self.ttl)
            length = pipe.execute()[0]
        if length == MAX_LINES:
            self.redis.lset(key, -1, _line(TARS, FULL, at))
        return length - 1 if length < MAX_LINES else None

    def amend(self, call_sid: str, index: int, text: str) -> None:
        """Replace a line's words (what the caller actually heard of an interrupted one), keeping its time."""
        key = keys.call_transcript(call_sid)
        raw = self.redis.lindex(key, index)
        if raw is None:
            return
        line = json.loads(raw)
        self.redis.lset(key, index, _line(line["who"], self.redact(text) or CUT_MARK, line["at"]))

    def end(self, call_sid: str, at: float | None = None) -> None:
        with self.redis.pipeline() as pipe:
            pipe.hset(keys.call_record(call_sid), "ended_at", time.time() if at is None else at)
            pipe.expire(keys.call_record(call_sid), self.ttl)
            pipe.execute()

    def redact(self, text: str) -> str:
        """The words as they may be stored: no confirmation code, no secret setting, at most MAX_LINE_CHARS."""
        text = " ".join(str(text).split())
        code = self.settings.secret("CONFIRMATION_CODE")
        if code:
            # typed, or spaced digit by digit ("6 2 8 3", "6-2-8-3"): only the code goes
            text = re.sub(r"[\s,.-]*".join(re.escape(ch) for ch in code), CODE_MARK, text)
            if mentions_code(text, code):  # said as words: the whole line goes
                text = CODE_MARK
        text = self.scrubber.text(text)
        return text if len(text) <= MAX_LINE_CHARS else text[:MAX_LINE_CHARS - 1] + "…"

    # --- reading ----------------------------------------------------------------------------------------------
    def calls(self, days: float | None = None) -> list[Call]:
        """The calls that started in the last `days` (default CALL_HISTORY_DAYS), newest first."""
        since = time.time() - (self.settings.CALL_HISTORY_DAYS if days is None else days) * 86400
        sids = [s.decode() for s in self.redis.zrevrangebyscore(keys.CALL_HISTORY, "+inf", since, start=0,
                                                                 num=LISTED_AT_MOST)]
        with self.redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hgetall(keys.call_record(sid))
                pipe.llen(keys.call_transcript(sid))
                pipe.zrevrange(keys.call_tasks(sid), 0, -1)
                pipe.exists(keys.call(sid))
            answers = pipe.execute() if sids else []
        found = []
        for i, sid in enumerate(sids):
            record, lines, task_ids, live = answers[4 * i:4 * i + 4]
            if record:  # expired between the index and its record: not listed
                found.append(_call(sid, record, lines, task_ids, live))
        return found

    def call(self, call_sid: str) -> tuple[Call, list[Line]]:
        """One call and its transcript, oldest line first."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.call_record(call_sid))
            pipe.lrange(keys.call_transcript(call_sid), 0, -1)
            pipe.zrevrange(keys.call_tasks(call_sid), 0, -1)
            pipe.exists(keys.call(call_sid))
            record, raw_lines, task_ids, live = pipe.execute()
        if not record:
            raise CallNotFound(f"There is no call {call_sid[:64]!r} in the call history (calls are kept "
                               f"{self.settings.CALL_HISTORY_DAYS} days).")
        lines = [Line(**json.loads(raw)) for raw in raw_lines]
        return _call(call_sid, record, len(lines), task_ids, live), lines


def _line(who: str, text: str, at: float | None) -> str:
    return json.dumps({"at": time.time() if at is None else at, "who": who, "text": text})


def _call(sid: str, record: dict, lines: int, task_ids: list, live: int) -> Call:
    data = {k.decode(): v.decode() for k, v in record.items()}
    ended = data.get("ended_at")
    return Call(sid, data.get("number", ""), data.get("direction", INBOUND), data.get("purpose", ""),
                float(data.get("started_at") or 0), float(ended) if ended else None, lines,
                [t.decode() for t in task_ids], bool(live))


class CallRecorder:
    """One live call's side of the history. Every method returns at once: the writes go, in the order the call made
    them, through one task of the recorder's own, so the call never waits on Redis and a Redis error never ends it
    (it is logged and the call goes on)."""

    def __init__(self, history: CallHistory, call_sid: str):
        self.history = history
        self.call_sid = call_sid
        self.last_tars: int | None = None  # the index of TARS's newest line: an interrupt trims it
        self._queue: asyncio.Queue = asyncio.Queue()
        self._writer = asyncio.create_task(self._write())

    def start(self, number: str, direction: str, purpose: str = "") -> None:
        self._queue.put_nowait((self.history.start, (self.call_sid, number, direction, purpose, time.time())))

    def caller(self, text: str) -> None:
        self._queue.put_nowait((self._add, (CALLER, text, time.time())))

    def keypad(self) -> None:
        """The caller keyed in a code: only that they did is kept."""
        self.caller(KEYPAD_MARK)

    def tars(self, text: str, cut: bool = False) -> None:
        """What TARS said; `cut`: all the caller heard of a reply that was interrupted, superseded or hung up on."""
        self._queue.put_nowait((self._add, (TARS, f"{text.strip()} {CUT_MARK}" if cut else text, time.time())))

    def heard_only(self, heard: str) -> None:
        """The caller interrupted TARS's newest line after it was all sent: keep what they heard of it."""
        self._queue.put_nowait((self._trim, (heard,)))

    async def end(self, over: bool = True) -> None:
        """Write the end, then wait (a little) for every line before it to be written. `over` is False when the
        call goes on over another socket (whose recorder writes the end)."""
        if over:
            self._queue.put_nowait((self.history.end, (self.call_sid, time.time())))
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._writer), CLOSE_WAIT_SECONDS)
        except asyncio.TimeoutError:
            log.warning("[call %s] the call history's last lines are still being written", self.call_sid)

    def _add(self, who: str, text: str, at: float) -> None:
        index = self.history.add(self.call_sid, who, text, at)
        if who == TARS and index is not None:
            self.last_tars = index

    def _trim(self, heard: str) -> None:
        if self.last_tars is not None:
            self.history.amend(self.call_sid, self.last_tars, f"{heard.strip()} {CUT_MARK}".strip())

    async def _write(self) -> None:
        while (step := await self._queue.get()) is not None:
            work, args = step
            try:
                await asyncio.to_thread(work, *args)
            except (redis.RedisError, ValueError) as exc:  # (ValueError: a line no longer JSON)
                log.warning("[call %s] the call history could not be written (%s); the call goes on",
                            self.call_sid, exc)
