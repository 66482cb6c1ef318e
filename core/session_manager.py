"""The registry of phone calls on the line now (CallRegistry), read by every process: workers, servers, the CLI.

The relay registers a call when Twilio's setup message arrives and refreshes it while the call
lasts; an entry whose server died expires by itself (CALL_TTL_SECONDS).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from core import keys
from core.defaults import CALL_TTL_SECONDS


@dataclass
class ActiveCall:
    call_sid: str
    caller: str
    started_at: float


class CallRegistry:
    """The calls on the line now: registered at setup, refreshed while they last, unregistered at the end."""

    def __init__(self, connection: redis.Redis, ttl: int = CALL_TTL_SECONDS):
        self.redis = connection
        self.ttl = ttl

    def register(self, call_sid: str, caller: str) -> None:
        with self.redis.pipeline() as pipe:
            pipe.hset(keys.call(call_sid), mapping={"caller": caller, "session_id": call_sid,  # the field's stored name
                                                    "started_at": time.time()})
            pipe.expire(keys.call(call_sid), self.ttl)
            pipe.zadd(keys.ACTIVE_CALLS, {call_sid: time.time() + self.ttl})
            pipe.execute()

    def refresh(self, call_sid: str) -> None:
        with self.redis.pipeline() as pipe:
            pipe.expire(keys.call(call_sid), self.ttl)
            pipe.zadd(keys.ACTIVE_CALLS, {call_sid: time.time() + self.ttl}, xx=True)
            pipe.execute()

    def unregister(self, call_sid: str) -> None:
        with self.redis.pipeline() as pipe:
            pipe.delete(keys.call(call_sid))
            pipe.zrem(keys.ACTIVE_CALLS, call_sid)
            pipe.execute()

    def active(self) -> list[ActiveCall]:
        """Calls on the line now (entries past their TTL are dropped on the way)."""
        self.redis.zremrangebyscore(keys.ACTIVE_CALLS, "-inf", time.time())
        calls = []
        for raw_sid in self.redis.zrange(keys.ACTIVE_CALLS, 0, -1):
            sid = raw_sid.decode()
            data = {k.decode(): v.decode() for k, v in self.redis.hgetall(keys.call(sid)).items()}
            if data:
                calls.append(ActiveCall(sid, data.get("caller", ""), float(data.get("started_at", 0))))
        return calls

    def owner_on_call(self) -> bool:
        return bool(self.active())
