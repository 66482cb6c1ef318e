"""The voice brain: one phone call's conversation with its model (its history and streamed replies).

Knows nothing of Twilio: the relay (communication/twilio_media_streams.py) hands `Conversation.reply`
a `say(token)` coroutine and closes the talk cycle itself. What this module owns:

* the history of one call (Anthropic messages, kept valid: roles alternate, every tool_use gets its
  tool_result, the first message is the caller's);
* streaming: every text delta goes to `say` as it arrives, from the first model of VOICE_MODELS that answers
  (core/model.FallbackModel: Anthropic or any OpenAI-compatible server; when one is unavailable mid-call the next
  answers the same turn, and the caller hears only a pause);
* tools: the model is offered `VoiceFunctions.tools()`; `VoiceFunctions.call` runs in a thread (it does
  blocking Redis); past FILLER_AFTER_SECONDS the caller hears FILLER first; the model continues with the
  tool_result until it ends its turn;
* web search (VOICE_WEB_SEARCH=on): Anthropic's server-side web search is offered too (`Conversation.tools`, the one
  place it is added). It runs inside a streamed answer, so only its words are spoken; a search slower than
  FILLER_AFTER_SECONDS makes the caller hear FILLER, as a slow function does. Its blocks (server_tool_use,
  web_search_tool_result) stay in the history as the API sent them, and go back with the next request; an answer
  the API paused in a long search (stop_reason pause_turn) is sent back as it stands and goes on in the same
  message. An OpenAI-compatible model taking over is not offered the tool and does not see those blocks
  (core/openai_model.py);
* cuts: when a reply is interrupted (or superseded by a newer prompt) the history keeps only what the
  caller actually heard as the assistant's words;
* notes: announcements the relay spoke between turns are put into the history (as assistant words) before
  the next caller turn, so the model knows a task asked for a code.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from communication.spoken import APOLOGY, DID_NOT_WORK, FILLER, LOST
from core.config import Settings
from core.confirmations import mentions_code
from core.exceptions import ModelError
from core.model import FallbackModel
from sub_agents_tars import VoiceFunctions, voice_system_prompt

log = logging.getLogger("tars.voice")

VOICE_MAX_TOKENS = 1024
"""max_tokens of one voice model call: spoken answers are one to three sentences."""

FILLER_AFTER_SECONDS = 1.0
"""A function (or a web search) still running after this long makes the caller hear FILLER (communication/spoken.py)."""

WEB_SEARCH_TOOL = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
"""Anthropic's server-side web search, offered with VOICE_WEB_SEARCH=on. Its basic version (the newer one filters
results by running code, which is slower, and the caller is waiting), at most 3 searches an answer: each is a
second or more of silence on the line."""

SERVER_BLOCKS = ("server_tool_use", "web_search_tool_result")
"""The blocks of a server tool's run in an assistant message: the API takes them back unchanged."""

MAX_TOOL_ROUNDS = 5
HISTORY_SENT = 40  # messages of the call's history the model sees: a phone call's context, and a bounded request
"""Model calls with tools in one caller turn before TARS gives up on the turn."""


Say = Callable[[str], Awaitable[None]]


@dataclass
class _Reply:
    """Bookkeeping of one caller turn: what was sent to the caller, and which part is in the history."""

    user_index: int  # index of the caller's message in the history
    sent: str = ""  # every token sent to the caller in this turn (model text and fillers)
    round_start: int = 0  # len(sent) when the current model round began
    final_index: int | None = None  # index of the assistant message that ended the turn
    tool_future: asyncio.Future | None = None
    pending_tools: list[dict] = field(default_factory=list)
    filler: asyncio.Task | None = None  # says FILLER if a web search runs long
    filler_saying: bool = False  # it has begun to: let it finish rather than cut a sentence off
    filler_said: bool = False  # once a turn is enough


class Conversation:
    """One call's history and its streaming replies (one reply at a time; the relay makes sure)."""

    def __init__(self, brain: FallbackModel, settings: Settings, functions: VoiceFunctions,
                 system: str | None = None, label: str = ""):
        self.brain = brain  # this call's own: a fallback lasts for the rest of the call
        self.settings = settings
        self.functions = functions
        self.system = system if system is not None else voice_system_prompt(settings.VOICE_WEB_SEARCH)
        self.label = label or "call"
        self.messages: list[dict] = []
        self.notes: list[str] = []  # spoken by the relay between turns, not yet in the history
        self.current: _Reply | None = None
        self.last: _Reply | None = None
        self.heard: str | None = None  # set by cut(): what the caller heard of the reply being cancelled
        self.hung_up = False

    # --- the relay's side ---------------------------------------------------------------------
    def note(self, text: str) -> None:
        """Something TARS said outside a reply (an announcement, a keypad answer)."""
        if text:
            self.notes.append(text)

    def cut(self, heard: str | None) -> None:
        """The reply in progress is about to be cancelled; `heard` is what the caller heard of it
        (None: everything sent so far)."""
        self.heard = heard

    def heard_only(self, heard: str) -> None:
        """The caller interrupted a reply that had finished generating: keep only what they heard."""
        reply = self.last
        if reply is None or reply.final_index is None or reply.final_index != len(self.messages) - 1:
            return
        self._keep_heard(reply.final_index, _tail(heard, reply.sent, reply.round_start))
        reply.final_index = None

    def heard_only_note(self, heard: str) -> None:
        """The caller interrupted the newest announcement: keep only what they heard of it."""
        if self.notes:
            if heard.strip():
                self.notes[-1] = heard.strip()
            else:
                self.notes.pop()

    # --- one caller turn --------------------------------------------------------------------------
    async def reply(self, user_text: str, say: Say) -> None:
        """Answer one caller turn, streaming every token to `say`. Never raises except CancelledError."""
        self._add_user_text(user_text)
        reply = _Reply(user_index=len(self.messages) - 1)
        self.current, self.heard = reply, None
        try:
            paused = False
            for _ in range(MAX_TOOL_ROUNDS + 1):
                if not paused:  # a paused answer's words so far and the rest are one message, heard as one
                    reply.round_start = len(reply.sent)
                blocks, stop_reason = await self._stream_round(reply, say)
                paused = stop_reason == "pause_turn"
                if paused:
                    # A long web search paused the answer: sent back as it stands, the API goes on with it.
                    self._add_answer(blocks)
                    continue
                tool_uses = [b for b in blocks if b["type"] == "tool_use"]
                if stop_reason != "tool_use" or not tool_uses:
                    self._add_answer(_finished(blocks))
                    if self.messages[-1]["role"] == "assistant":  # this turn's answer (a paused one's too)
                        reply.final_index = len(self.messages) - 1
                    return
                self._add_answer(blocks)
                results = await self._run_tools(reply, tool_uses, say)
                self.messages.append({"role": "user", "content": results})
            log.warning("[%s] the model kept calling tools for %s rounds; giving up on the turn", self.label,
                        MAX_TOOL_ROUNDS + 1)
            await self._say_recorded(reply, say, LOST)
        except asyncio.CancelledError:
            if reply.filler is not None:
                reply.filler.cancel()
            self._settle_after_cut(reply)
            if not self.hung_up and reply.tool_future is not None:
                # The function runs on in its thread (a task may be starting): keep its answer in the history.
                await self._record_late_tools(reply)
            raise
        except ModelError as exc:
            log.error("[%s] the voice brain could not answer: %s", self.label, exc)
            await self._say_recorded(reply, say, APOLOGY)
        finally:
            self.current = None
            self.last = reply

    # --- internals ----------------------------------------------------------------------------------
    def _window(self) -> list[dict]:
        """The newest HISTORY_SENT messages, starting at a caller's turn (never at a lone tool_result)."""
        start = max(0, len(self.messages) - HISTORY_SENT)
        while start > 0 and not _is_caller_turn(self.messages[start]):
            start -= 1
        return copy.deepcopy(self.messages[start:])

    def tools(self) -> list[dict]:
        """What the model is offered: the call's voice functions, and Anthropic's web search with VOICE_WEB_SEARCH=on
        (a model that cannot run it is not offered it: core/openai_model.py)."""
        return self.functions.tools() + ([WEB_SEARCH_TOOL] if self.settings.VOICE_WEB_SEARCH else [])

    async def _stream_round(self, reply: _Reply, say: Say) -> tuple[list[dict], str | None]:
        apart = True  # the round's first words, and the first after a search, begin a new sentence

        async def heard(text: str) -> None:
            nonlocal apart
            if apart:  # not glued to the words before ("Let me check.It's 75")
                text, apart = _apart(reply.sent, text), False
            await say(text)
            reply.sent += text

        async def searching(running: bool) -> None:
            nonlocal apart
            if running and not reply.filler_said:
                reply.filler = asyncio.ensure_future(self._filler_later(reply, say))
            elif not running:
                apart = True
                await self._stop_filler(reply)

        try:
            turn = await self.brain.stream(system=self.system, tools=self.tools(), messages=self._window(),
                                           max_tokens=VOICE_MAX_TOKENS, on_text=heard, on_server_tool=searching)
        except BaseException:
            if reply.filler is not None:
                reply.filler.cancel()
            raise
        await self._stop_filler(reply)
        for sentence in turn.fallbacks:
            log.warning("[%s] %s", self.label, sentence)
        for block in turn.content:
            if block["type"] == "server_tool_use":
                log.info("[%s] %s(%s)", self.label, block.get("name"), _short(block.get("input")))
        blocks = [b for b in turn.content if b["type"] == "tool_use" or b["type"] in SERVER_BLOCKS
                  or (b["type"] == "text" and b.get("text"))]
        if turn.stop_reason == "pause_turn" and blocks and blocks[-1]["type"] == "text":
            blocks[-1]["text"] = blocks[-1]["text"].rstrip()  # the API refuses an assistant message ending in a space
        return blocks, turn.stop_reason

    async def _filler_later(self, reply: _Reply, say: Say) -> None:
        await asyncio.sleep(FILLER_AFTER_SECONDS)
        reply.filler_saying = reply.filler_said = True
        token = _apart(reply.sent, FILLER)
        await say(token)
        reply.sent += token

    async def _stop_filler(self, reply: _Reply) -> None:
        """The search is over: a filler not yet begun is not said; one being said is finished first."""
        task, reply.filler = reply.filler, None
        if task is None:
            return
        if reply.filler_saying:
            await task
            reply.filler_saying = False
        else:
            task.cancel()

    def _add_answer(self, blocks: list[dict]) -> None:
        """Put a round's blocks into the history: a new assistant message, or the rest of a paused one."""
        if not blocks:
            return
        if self.messages and self.messages[-1]["role"] == "assistant":  # only after a pause within this reply
            self.messages[-1]["content"] += blocks
        else:
            self.messages.append({"role": "assistant", "content": blocks})

    def _keep_heard(self, index: int, tail: str) -> None:
        """The assistant message at index keeps, of its words, only tail (what the caller heard), and its web
        searches; nothing heard: it goes."""
        if not tail:
            del self.messages[index]
            return
        searches = _finished([b for b in self.messages[index]["content"] if b.get("type") in SERVER_BLOCKS])
        self.messages[index] = {"role": "assistant", "content": searches + [{"type": "text", "text": tail}]}

    async def _run_tools(self, reply: _Reply, tool_uses: list[dict], say: Say) -> list[dict]:
        reply.pending_tools = tool_uses
        reply.tool_future = asyncio.ensure_future(asyncio.to_thread(self._call_all, tool_uses))
        done, _ = await asyncio.wait({reply.tool_future}, timeout=FILLER_AFTER_SECONDS)
        if not done:
            await say(FILLER)
            reply.sent += FILLER
        results = await asyncio.shield(reply.tool_future)
        reply.tool_future, reply.pending_tools = None, []
        return results

    def _call_all(self, tool_uses: list[dict]) -> list[dict]:
        results = []
        for use in tool_uses:
            try:
                answer = self.functions.call(use["name"], use.get("input") or {})
            except Exception:  # VoiceFunctions never raises by design; a bug must not end the call
                log.exception("[%s] voice function %s crashed", self.label, use["name"])
                answer = DID_NOT_WORK
            shown = dict(use.get("input") or {})
            if "confirmation_code" in shown:
                shown["confirmation_code"] = "***"
            log.info("[%s] %s(%s) -> %s", self.label, use["name"], _short(shown), answer)
            results.append({"type": "tool_result", "tool_use_id": use["id"], "content": answer})
        return results

    async def _record_late_tools(self, reply: _Reply) -> None:
        try:
            results = await asyncio.shield(reply.tool_future)
        except Exception:
            log.exception("[%s] voice function failed after the reply was cut", self.label)
            results = [{"type": "tool_result", "tool_use_id": u["id"], "content": DID_NOT_WORK,
                        "is_error": True} for u in reply.pending_tools]
        # The assistant tool_use message is the newest one unless _settle_after_cut added the heard words.
        self._insert_tool_results(results)

    def _insert_tool_results(self, results: list[dict]) -> None:
        ids = {r["tool_use_id"] for r in results}
        for index in range(len(self.messages) - 1, -1, -1):
            message = self.messages[index]
            if message["role"] == "assistant" and any(b.get("type") == "tool_use" and b.get("id") in ids
                                                      for b in message["content"]):
                self.messages.insert(index + 1, {"role": "user", "content": results})
                after = index + 2
                if after < len(self.messages) and self.messages[after]["role"] == "user":
                    self.messages[index + 1]["content"] += self.messages.pop(after)["content"]
                return

    def _settle_after_cut(self, reply: _Reply) -> None:
        """The reply was cancelled: make the history say what the caller heard of the unfinished round."""
        if self.hung_up:
            return
        tail = _tail(self.heard, reply.sent, reply.round_start) if self.heard is not None \
            else reply.sent[reply.round_start:].strip()
        if reply.tool_future is not None:
            # Cut while a function runs: its tool_use is in the history; the result follows (_record_late_tools).
            tail = ""
        elif self.messages and self.messages[-1]["role"] == "assistant":  # cut after a pause_turn: one message
            self._keep_heard(len(self.messages) - 1, tail)
            reply.final_index = len(self.messages) - 1 if tail else None
            tail = ""
        if tail:
            self.messages.append({"role": "assistant", "content": [{"type": "text", "text": tail}]})
            reply.final_index = len(self.messages) - 1
        log.info("[%s] reply cut; the history keeps %r", self.label, tail)

    async def _say_recorded(self, reply: _Reply, say: Say, sentence: str) -> None:
        """Say a sentence of TARS's own (not the model's) and keep it in the history as the assistant's turn."""
        partial = reply.sent[reply.round_start:].strip()
        token = (" " if partial else "") + sentence
        await say(token)
        reply.sent += token
        text = f"{partial} {sentence}".strip()
        if self.messages and self.messages[-1]["role"] == "assistant" and \
                not any(b.get("type") == "tool_use" for b in self.messages[-1]["content"]):
            self.messages[-1]["content"].append({"type": "text", "text": sentence})
        elif self.messages and self.messages[-1]["role"] == "assistant":
            # a tool_use without its result cannot stay: drop the round, keep what was said
            self.messages[-1] = {"role": "assistant", "content": [{"type": "text", "text": text}]}
        else:
            self.messages.append({"role": "assistant", "content": [{"type": "text", "text": text}]})
        reply.final_index = len(self.messages) - 1

    def _add_user_text(self, text: str) -> None:
        blocks: list[dict] = []
        if self.notes:
            said = " ".join(self.notes)
            self.notes = []
            if self.messages and self.messages[-1]["role"] == "assistant":
                self.messages[-1]["content"].append({"type": "text", "text": said})
            elif self.messages:
                self.messages.append({"role": "assistant", "content": [{"type": "text", "text": said}]})
            else:  # the history must open with the caller: tell the model what it already said
                blocks.append({"type": "text", "text": f"(Earlier on this call you said: {said})"})
        blocks.append({"type": "text", "text": text})
        if self.messages and self.messages[-1]["role"] == "user":  # e.g. after a cut with nothing heard
            self.messages[-1]["content"] += blocks
        else:
            self.messages.append({"role": "user", "content": blocks})


def _apart(sent: str, text: str) -> str:
    """text to be said after sent as a sentence of its own: a space between them unless there is one."""
    return " " + text if sent and not sent[-1].isspace() and not text[:1].isspace() else text


def _finished(blocks: list[dict]) -> list[dict]:
    """A turn's last blocks as the history keeps them: words and complete web searches; a call left without its
    result (the answer was cut at max_tokens) would make the next request invalid."""
    results = {b.get("tool_use_id") for b in blocks if b["type"] == "web_search_tool_result"}
    return [b for b in blocks if b["type"] in ("text", "web_search_tool_result")
            or (b["type"] == "server_tool_use" and b["id"] in results)]


def _tail(heard: str | None, sent: str, round_start: int) -> str:
    """The part of `heard` (what the caller heard of the whole turn) that belongs to the unfinished round
    whose text starts at sent[round_start:]."""
    heard = (heard or "").strip()
    if not heard:
        return ""
    before = sent[:round_start]
    if not before.strip():
        return heard
    if heard.startswith(before.strip()):
        return heard[len(before.strip()):].strip()
    squeezed_heard, squeezed_before = " ".join(heard.split()), " ".join(before.split())
    if squeezed_heard.startswith(squeezed_before):
        return squeezed_heard[len(squeezed_before):].strip()
    return "" if len(heard) <= len(before) else heard


def loggable(text: str, settings: Settings) -> str:
    """The caller's words for the log, unless they contain the confirmation code (said or typed)."""
    if mentions_code(text, settings.secret("CONFIRMATION_CODE")):
        return "(words containing the confirmation code, not logged)"
    return text


def _short(value: object, limit: int = 160) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _is_caller_turn(message: dict) -> bool:
    content = message.get("content")
    if message.get("role") != "user":
        return False
    return isinstance(content, str) or not any(isinstance(b, dict) and b.get("type") == "tool_result"
                                               for b in content)
