"""Fitting a task's history into the serving model's context window.

A 50-step task with test output can pass 150k tokens; a local model often takes 32k or less. Before each request
(core/model.FallbackModel) the history is measured; past FIT_AT of the room the model has, older tool output is
cleared, oldest first, down to FIT_TO of it, so the next clearing is many steps away and the prompt's prefix stays
the same in between (providers' prompt caches keep working). What is never cleared: the first message (the goal
and the project's listing) and the last KEEP_RECENT messages. Cleared last, after everything else: the newest
view or creation of each file (its latest state) and the newest test failure the worker reported. The history's
structure is kept (every tool call keeps its result, only their text shrinks), so any provider accepts it.

Tokens are estimated from characters (CHARS_PER_TOKEN, on the safe side: code and JSON take 3 to 4 characters
a token), so no tokenizer is needed for any model.
"""

from __future__ import annotations

import copy
import json
import math

CHARS_PER_TOKEN = 3.0
FIT_AT = 0.85
"""Clearing starts when a request would take more than this share of the room (window less the answer's tokens)."""
FIT_TO = 0.55
"""Clearing goes down to this share of the room."""
KEEP_RECENT = 6
"""The newest messages (three steps: answer and results) that are never cleared."""
SMALL = 400
"""Text of up to this many characters is left alone: clearing it saves nothing."""
FAILURE_PREFIX = "I ran `"  # the worker's own report of failing tests (core/agent.Agent._verify)


def estimate(value) -> int:
    """Estimated tokens of a JSON-able value."""
    return math.ceil(len(json.dumps(value, ensure_ascii=False)) / CHARS_PER_TOKEN)


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(b.get("text", "") for b in content if isinstance(b, dict))


def _lines(text: str) -> str:
    count = text.count("\n") + 1
    return f"{count} line{'s' if count != 1 else ''}"


def _cleared(text: str) -> str:
    return (f"[Cleared to fit the model's context window: {_lines(text)} of output. Run the command or view the "
            f"file again if you need it.]")


class Fitter:
    """One task's clearing: which blocks are cleared, kept from request to request so the choice never shifts."""

    def __init__(self):
        self.cleared: set[tuple[int, int, str]] = set()  # (message index, block index, field)

    def fit(self, system, tools: list[dict], messages: list[dict], model) -> tuple[list[dict], str]:
        """(the messages to send to model, a sentence for the owner when more was cleared just now, else "")."""
        window = getattr(model, "context_window", None)
        if not window or not messages:
            return messages, ""
        room = window - int(getattr(model, "max_tokens", 0) or 0) - estimate(system) - estimate(tools)
        candidates = _candidates(messages)
        fitted = copy.deepcopy(messages) if self.cleared else messages
        for key in self.cleared:
            _clear(fitted, key)
        size = estimate(fitted)
        if size <= room * FIT_AT:
            return fitted, ""
        if fitted is messages:
            fitted = copy.deepcopy(messages)
        before, saved = len(self.cleared), 0
        for key, chars in candidates:
            if size - saved <= room * FIT_TO:
                break
            if key in self.cleared:
                continue
            saved += _clear(fitted, key) // CHARS_PER_TOKEN
            self.cleared.add(key)
        size = estimate(fitted)
        note = ""
        if len(self.cleared) > before:
            note = (f"Cleared {len(self.cleared) - before} older tool outputs (about {int(saved):,} tokens) to fit "
                    f"{model.name}'s {window:,}-token context window; the goal, the latest state of each file, the "
                    f"last test failure and the last steps are kept.")
        if size > room:  # still too big: the newest outputs themselves are cut in the middle, for this request only
            _cut_recent(fitted, room, size)
        return fitted, note


def _candidates(messages: list[dict]) -> list[tuple[tuple[int, int, str], int]]:
    """Blocks that may be cleared, in the order they are: ordinary ones oldest first, then the latest state of each
    file and the last failure, oldest first. ((message, block, field), characters)."""
    last = len(messages) - KEEP_RECENT
    keep_late: set[tuple[int, int]] = set()
    latest: dict[str, tuple[int, int]] = {}  # path -> where its newest view result or create call is
    uses: dict[str, tuple[str, str]] = {}  # tool_use id -> (command, path)
    failure = None
    for i, message in enumerate(messages):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for j, block in enumerate(content):
            kind = block.get("type")
            if kind == "tool_use" and block.get("name") == "str_replace_based_edit_tool":
                command, path = (block.get("input") or {}).get("command"), (block.get("input") or {}).get("path")
                uses[block.get("id")] = (command, path)
                if command == "create" and path:
                    latest[path] = (i, j)
            elif kind == "tool_result" and block.get("tool_use_id") in uses:
                command, path = uses[block["tool_use_id"]]
                if command == "view" and path:
                    latest[path] = (i, j)
            elif kind == "text" and message.get("role") == "user" and block.get("text", "").startswith(FAILURE_PREFIX):
                failure = (i, j)
    keep_late.update(latest.values())
    if failure:
        keep_late.add(failure)
    first, late = [], []
    for i, message in enumerate(messages[1:last], 1):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for j, block in enumerate(content):
            kind = block.get("type")
            if kind == "tool_result":
                found = [("content", len(_text_of(block.get("content") or "")))]
            elif kind == "tool_use":
                found = [(name, len(value)) for name, value in (block.get("input") or {}).items()
                         if isinstance(value, str) and name not in ("command", "path")]
            elif kind == "text" and message.get("role") == "user":
                found = [("text", len(block.get("text", "")))]
            else:
                continue
            for name, chars in found:
                if chars > SMALL:
                    (late if (i, j) in keep_late else first).append(((i, j, name), chars))
    return first + late


def _clear(messages: list[dict], key: tuple[int, int, str]) -> int:
    """Clear one block's field in place; the characters saved."""
    i, j, name = key
    block = messages[i]["content"][j]
    if name == "content":
        text = _text_of(block.get("content") or "")
        block["content"] = _cleared(text)
        return len(text) - len(block["content"])
    if name == "text":
        text = block["text"]
        block["text"] = f"[Cleared to fit the model's context window: an older message of {_lines(text)}.]"
        return len(text) - len(block["text"])
    tool_input = dict(block.get("input") or {})
    text = tool_input.get(name, "")
    tool_input[name] = f"[cleared to fit the context window: {_lines(text)}]"
    block["input"] = tool_input
    return len(text) - len(tool_input[name])


def _cut_recent(messages: list[dict], room: int, size: int) -> None:
    """The last resort: the longest tool outputs of the newest messages keep their start and end only."""
    over_chars = int((size - room * FIT_TO) * CHARS_PER_TOKEN)
    blocks = [b for m in messages[-KEEP_RECENT:] if isinstance(m.get("content"), list) for b in m["content"]
              if b.get("type") == "tool_result" and len(_text_of(b.get("content") or "")) > SMALL]
    for block in sorted(blocks, key=lambda b: -len(_text_of(b.get("content") or ""))):
        if over_chars <= 0:
            break
        text = _text_of(block.get("content") or "")
        keep = max(SMALL, len(text) - over_chars) // 2
        block["content"] = (f"{text[:keep]}\n[... {len(text) - 2 * keep} characters cut to fit the model's context "
                            f"window ...]\n{text[-keep:]}")
        over_chars -= len(text) - len(block["content"])
