"""The confirmation protocol over Redis: a command the gate does not let run waits for the owner's code.

Worker side (`ConfirmationGate`, the Agent's command gate): check the command
against the allow-list (core/command_policy.py); if it asks, record one pending
request, tell the owner (progress event + a pub/sub announcement the voice
process speaks) and block on BLPOP until an answer, a cancel or the timeout.

Submitting side (`submit_code`, any process: voice, webhook, CLI): check the code
in constant time against the pending request. A right code is stored under
`task:<id>:confirmation` and the worker woken; the worker consumes it once. A
wrong one costs an attempt; the fifth denies the request. A code only ever
answers the request pending at that moment (its request id rides on the wake-up).
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import redis

from core import keys
from core.defaults import CODE_TTL_SECONDS, CONFIRMATION_ATTEMPTS
from core.exceptions import Cancelled, CodeRejected, NotAwaitingConfirmation

if TYPE_CHECKING:
    from core.background_worker import TaskContext
    from core.command_policy import Rules


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def normalize_code(code: object) -> str:
    """Codes arrive typed, spoken-then-transcribed or keyed in: ignore spaces, dashes and a trailing #."""
    text = str(code if code is not None else "").strip().rstrip("#")
    return "".join(ch for ch in text if ch not in " -_.,")


class ConfirmationGate:
    """Callable as the Agent's command_gate: None lets the command run, a string refuses it."""

    def __init__(self, ctx: "TaskContext", project_root: Path, code: str | None, timeout: float, *,
                 sandboxed: bool, rules: "Rules | None" = None):
        """sandboxed: the task's commands run in an active OS sandbox (then the project's own code runs freely);
        rules: the owner's rules file, loaded once for the task (core.command_policy.load_rules)."""
        from core import command_policy  # here: the submitting side (voice, CLI) never loads the bash parser

        self.check: Callable[[str], command_policy.Decision] = lambda command: command_policy.check(
            command, project_root, sandboxed=sandboxed, rules=rules)
        self.ctx = ctx
        self.redis: redis.Redis = ctx.redis
        self.root = project_root
        self.code = code
        self.timeout = timeout

    def __call__(self, command: str) -> str | None:
        decision = self.check(command)
        if decision.decision == "run":
            return None
        reason, rule = decision.reason, decision.rule
        self.ctx.log.info("asks (%s: %s): %s", rule, reason, command)
        if not self.code:
            self.ctx.event("confirmation_refused", f"Refused `{command}`: {reason}, and CONFIRMATION_CODE is not set.",
                           command=command, reason=reason, rule=rule)
            return (f"REFUSED, not run: `{command}` needs the owner's confirmation code because {reason}, and this "
                    f"TARS has no CONFIRMATION_CODE set, so such commands are always refused (the owner can set "
                    f"CONFIRMATION_CODE in .env). Find a way that does not need it.")
        answer = self.ask(command, reason, rule)
        if answer == "approved":
            return None
        why = {"timeout": f"the owner gave no confirmation code within {self.timeout:g} seconds",
               "denied": f"the request was denied after {CONFIRMATION_ATTEMPTS} wrong codes"}[answer]
        return (f"REFUSED, not run: `{command}` needed the owner's confirmation code because {reason}, and {why}. "
                f"Do not retry it; find another way, or finish without it and say so in your summary.")

    def ask(self, command: str, reason: str, rule: str = "") -> str:
        """Block until the pending request is answered: 'approved', 'denied' or 'timeout' (or raise Cancelled)."""
        task_id = self.ctx.task_id
        request_id = uuid.uuid4().hex[:12]
        request_key, wake_key = keys.task_confirmation_request(task_id), keys.task_confirmation_wake(task_id)
        with self.redis.pipeline() as pipe:
            pipe.delete(keys.task_confirmation(task_id), wake_key)
            pipe.hset(request_key, mapping={"request_id": request_id, "command": command, "reason": reason,
                                            "rule": rule, "attempts_left": CONFIRMATION_ATTEMPTS,
                                            "asked_at": time.time()})
            pipe.expire(request_key, int(self.timeout) + 60)
            pipe.execute()
        self.ctx.update_meta(awaiting_confirmation=True, confirmation_command=command)
        self.ctx.event("confirmation_required", f"Needs your confirmation code to run: {command}",
                       command=command, reason=reason, rule=rule)
        self.redis.publish(keys.CONFIRMATIONS_CHANNEL, json.dumps({
            "task_id": task_id, "request_id": request_id, "command": command, "reason": reason, "rule": rule,
            "session_id": self.ctx.meta.get("session_id"), "goal": self.ctx.goal}))
        try:
            answer = self._wait(request_id)
        finally:
            self.redis.delete(request_key)
            self.ctx.update_meta(awaiting_confirmation=False, confirmation_command=None)
        if answer == "approved":
            self.ctx.event("confirmation_received", f"Confirmation received: running {command}",
                           command=command, reason=reason, rule=rule)
        else:
            self.ctx.event("confirmation_refused", f"Not run ({answer}): {command}", command=command,
                           reason=reason, rule=rule)
        self.ctx.log.info("confirmation %s: %s", answer, command)
        return answer

    def _wait(self, request_id: str) -> str:
        task_id = self.ctx.task_id
        wake_key = keys.task_confirmation_wake(task_id)
        deadline = time.monotonic() + self.timeout
        while True:
            if self.ctx.cancel_requested():
                raise Cancelled("The task was cancelled while waiting for a confirmation code.")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            popped = self.redis.blpop([wake_key], timeout=remaining)
            if popped is None:
                return "timeout"
            word, _, rid = popped[1].decode().partition(":")
            if word == "cancel":
                raise Cancelled("The task was cancelled while waiting for a confirmation code.")
            if rid != request_id:
                continue  # an answer to an earlier request: not ours
            if word == "denied":
                return "denied"
            # Consume the stored code once and check it again here: this process is the one that runs the command.
            stored = self.redis.getdel(keys.task_confirmation(task_id))
            if word == "approved" and stored is not None and _same(stored.decode(), self.code):
                return "approved"


def submit_code(connection: redis.Redis, task_id: str, code: object, expected: str | None) -> None:
    """Answer the task's pending request. Raises NotAwaitingConfirmation, or CodeRejected with attempts left."""
    request_key = keys.task_confirmation_request(task_id)
    given = normalize_code(code)
    with connection.pipeline() as pipe:
        while True:
            try:
                pipe.watch(request_key)
                request = {k.decode(): v.decode() for k, v in pipe.hgetall(request_key).items()}
                if not request:
                    raise NotAwaitingConfirmation(f"Task {task_id} is not waiting for a confirmation code.")
                request_id, attempts = request["request_id"], int(request["attempts_left"])
                pipe.multi()
                if expected and given and _same(given, expected):
                    pipe.set(keys.task_confirmation(task_id), given, ex=CODE_TTL_SECONDS)
                    pipe.delete(request_key)  # answered: a second code finds nothing pending
                    pipe.rpush(keys.task_confirmation_wake(task_id), f"approved:{request_id}")
                    pipe.execute()
                    return
                attempts -= 1
                if attempts <= 0:
                    pipe.delete(request_key)
                    pipe.rpush(keys.task_confirmation_wake(task_id), f"denied:{request_id}")
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
