"""The confirmation protocol over Redis: a command the gate does not let run waits for the owner's code.

Worker side (core/background_worker.WorkerHooks.gate asks; this module only speaks Redis): `open_request`
records the one pending request (the owner hears of it through the task's `confirmation_required` event);
`wait_for_answer` blocks on BLPOP until an answer, a cancel or the timeout; `close_request` ends it.

Submitting side (`submit_code`, any process: voice, webhook, CLI): check the code
in constant time against the pending request. A right code is stored under
`task:<id>:confirmation` and the worker woken; the worker consumes it once. A
wrong one costs an attempt; the fifth denies the request. A code only ever
answers the request pending at that moment (its request id rides on the wake-up).

Codes are also read from what the owner says: `spoken_digits` turns transcribed words into digits, and
`mentions_code` tells whether some words hold the code (so logs and call transcripts keep it out).
"""

from __future__ import annotations

import hmac
import re
import time
import uuid
from typing import Callable

import redis

from core import keys
from core.defaults import CODE_TTL_SECONDS, CONFIRMATION_ATTEMPTS
from core.exceptions import Cancelled, CodeRejected, NotAwaitingConfirmation

APPROVED, DENIED, TIMED_OUT = "approved", "denied", "timeout"
"""The answers wait_for_answer() gives."""

# A code said on the phone reaches TARS as transcribed words: "six two eight three", "double four one oh".
DIGIT_WORDS = {"zero": "0", "oh": "0", "o": "0", "nought": "0", "one": "1", "won": "1", "two": "2", "to": "2",
               "too": "2", "three": "3", "tree": "3", "four": "4", "for": "4", "fore": "4", "five": "5",
               "six": "6", "sicks": "6", "seven": "7", "eight": "8", "ate": "8", "nine": "9", "niner": "9"}
MULTIPLIERS = {"double": 2, "triple": 3}


def spoken_digits(text: object) -> str:
    """'six two eight three' / '6 2 8 3' / 'double four one' → '6283' / '6283' / '441'. Unknown words are kept."""
    out: list[str] = []
    repeat = 1
    for word in re.findall(r"[a-z]+|\d+|[^\s\w]", str(text).lower()):
        if word in MULTIPLIERS:
            repeat = MULTIPLIERS[word]
            continue
        piece = DIGIT_WORDS.get(word, word if word.isdigit() else None)
        if piece is None:
            if word.isalnum():
                out.append(word)
            repeat = 1
            continue
        out.append(piece * repeat if len(piece) == 1 else piece)
        repeat = 1
    return "".join(out)


def mentions_code(text: str, code: str | None) -> bool:
    """Whether the words hold the code, typed ("6283", "6 2 8 3") or said ("six two eight three")."""
    return bool(code) and (code in text or code in spoken_digits(text))


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def normalize_code(code: object) -> str:
    """Codes arrive typed, spoken-then-transcribed or keyed in: ignore spaces, dashes and a trailing #."""
    text = str(code if code is not None else "").strip().rstrip("#")
    return "".join(ch for ch in text if ch not in " -_.,")


def open_request(connection: redis.Redis, task_id: str, command: str, reason: str, rule: str,
                 timeout: float) -> str:
    """Record the task's one pending request (replacing any earlier one); its id."""
    request_id = uuid.uuid4().hex[:12]
    request_key = keys.task_confirmation_request(task_id)
    with connection.pipeline() as pipe:
        pipe.delete(keys.task_confirmation(task_id), keys.task_confirmation_wake(task_id))
        pipe.hset(request_key, mapping={"request_id": request_id, "command": command, "reason": reason,
                                        "rule": rule, "attempts_left": CONFIRMATION_ATTEMPTS, "asked_at": time.time()})
        pipe.expire(request_key, int(timeout) + 60)
        pipe.execute()
    return request_id


def close_request(connection: redis.Redis, task_id: str) -> None:
    connection.delete(keys.task_confirmation_request(task_id))


def wait_for_answer(connection: redis.Redis, task_id: str, request_id: str, code: str, timeout: float,
                    cancel_requested: Callable[[], bool]) -> str:
    """Block until the request is answered: APPROVED, DENIED or TIMED_OUT (or raise Cancelled)."""
    wake_key = keys.task_confirmation_wake(task_id)
    deadline = time.monotonic() + timeout
    while True:
        if cancel_requested():
            raise Cancelled("The task was cancelled while waiting for a confirmation code.")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return TIMED_OUT
        popped = connection.blpop([wake_key], timeout=remaining)
        if popped is None:
            return TIMED_OUT
        word, _, rid = popped[1].decode().partition(":")
        if word == "cancel":
            raise Cancelled("The task was cancelled while waiting for a confirmation code.")
        if rid != request_id:
            continue  # an answer to an earlier request: not ours
        if word == DENIED:
            return DENIED
        # Consume the stored code once and check it again here: this process is the one that runs the command.
        stored = connection.getdel(keys.task_confirmation(task_id))
        if word == APPROVED and stored is not None and _same(stored.decode(), code):
            return APPROVED


def submit_code(connection: redis.Redis, task_id: str, code: object, expected: str | None,
                request_id: str | None = None) -> None:
    """Answer the task's pending request. Raises NotAwaitingConfirmation, or CodeRejected with attempts left.

    request_id: the request the owner answers (a reply to its message in Discord); when another one is pending
    now, the code answers neither and costs no attempt: the owner has not seen the command it would let run."""
    request_key = keys.task_confirmation_request(task_id)
    given = normalize_code(code)
    with connection.pipeline() as pipe:
        while True:
            try:
                pipe.watch(request_key)
                request = {k.decode(): v.decode() for k, v in pipe.hgetall(request_key).items()}
                if not request:
                    raise NotAwaitingConfirmation(f"Task {task_id} is not waiting for a confirmation code.")
                if request_id is not None and request["request_id"] != request_id:
                    raise NotAwaitingConfirmation(f"That request of task {task_id} is no longer pending; the task "
                                                  f"now asks to run {request.get('command', '')[:200]}: answer "
                                                  f"that request instead.")
                request_id, attempts = request["request_id"], int(request["attempts_left"])
                pipe.multi()
                if expected and given and _same(given, expected):
                    pipe.set(keys.task_confirmation(task_id), given, ex=CODE_TTL_SECONDS)
                    pipe.delete(request_key)  # answered: a second code finds nothing pending
                    pipe.rpush(keys.task_confirmation_wake(task_id), f"{APPROVED}:{request_id}")
                    pipe.execute()
                    return
                attempts -= 1
                if attempts <= 0:
                    pipe.delete(request_key)
                    pipe.rpush(keys.task_confirmation_wake(task_id), f"{DENIED}:{request_id}")
                else:
                    pipe.hset(request_key, "attempts_left", attempts)
                pipe.execute()
                break
            except redis.WatchError:
                continue  # someone answered at the same moment: look again
    if attempts <= 0:
        raise CodeRejected(f"Code rejected for task {task_id}: that was the last attempt, so the command "
                           f"will not run.", 0)
    raise CodeRejected(f"Code rejected for task {task_id}: {attempts} attempt{'s' if attempts != 1 else ''} "
                       f"left.", attempts)


def pending_request(connection: redis.Redis, task_id: str) -> dict | None:
    """The request pending now (command, reason, attempts_left), or None."""
    raw = connection.hgetall(keys.task_confirmation_request(task_id))
    return {k.decode(): v.decode() for k, v in raw.items()} or None
