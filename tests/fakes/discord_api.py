"""A local fake of Discord (REST API v10 + gateway) for tests.

No network is reachable in the test environment, so tests point the *real*
``discord.py`` client and plain ``httpx`` at this server.  It is one aiohttp
server on 127.0.0.1 (free port by default) running its own event loop in a
background thread of the pytest process, so code under test in another
process (a TARS server, a delivery process) can reach it as well::

    from tests.fakes.discord_api import FakeDiscord

    with FakeDiscord() as discord_fake:
        env = {"DISCORD_BOT_TOKEN": discord_fake.bot_token, "DISCORD_API_URL": discord_fake.api_url,
               "DISCORD_CHANNEL_ID": str(discord_fake.channel_id), "DISCORD_OWNER_IDS": str(discord_fake.owner_id)}
        ...                                           # start the bot under test
        discord_fake.wait_for(lambda: discord_fake.connections())
        mid = discord_fake.say(discord_fake.owner_id, "6283", reply_to=question_id)
        reply = discord_fake.wait_for(lambda: [m for m in discord_fake.bot_messages()
                                               if (m.get("message_reference") or {}).get("message_id") == mid])

The world: a bot user, one guild with the text channels ``channel_id`` and
``other_channel_id``, members ``owner_id`` and ``stranger_id`` (and the bot).

REST (base ``api_url`` = ``http://127.0.0.1:<port>/api/v10``, every route but
``GET /gateway`` needs ``Authorization: Bot <bot_token>``, else 401)::

    GET    /users/@me  /oauth2/applications/@me  /gateway  /gateway/bot
    GET    /channels/{c}                        GET /channels/{c}/messages[?limit&before&after]
    POST   /channels/{c}/messages               GET/PATCH/DELETE /channels/{c}/messages/{m}
    PUT    /channels/{c}/messages/{m}/reactions/{emoji}/@me   (204; DELETE removes it)

Answers are Discord's objects and errors (10003 Unknown Channel, 10008 Unknown
Message, 50006 empty message, 50035 Invalid Form Body for over-long content or
an unknown ``message_reference``, 50005 editing another user's message, 50013
Missing Permissions for deleting another user's message unless
``grant_manage_messages()``).  ``POST`` with ``enforce_nonce`` and a nonce seen
before returns the first message instead of creating another, as Discord
does.  Every response carries ``X-RateLimit-*`` headers and ``Via`` (discord.py
treats a 429 without ``Via`` as a Cloudflare ban); ``rate_limit(n)`` answers
the next n requests with Discord's 429.

Gateway (``gateway_url`` = ``ws://127.0.0.1:<port>/gateway``, what
``GET /gateway/bot`` returns): HELLO (op 10), IDENTIFY (op 2: wrong token ->
close 4004, a privileged intent not enabled -> 4014), READY (guilds
unavailable, then GUILD_CREATE with the GUILDS intent), heartbeat op 1 ->
ACK op 11, RESUME op 6 (replays what the session missed, then RESUMED; an
unknown session gets INVALID_SESSION op 9), REQUEST_GUILD_MEMBERS op 8 ->
GUILD_MEMBERS_CHUNK.  ``compress=zlib-stream`` in the URL gets zlib-stream
binary frames (as discord.py asks), otherwise plain text frames.  Events:
MESSAGE_CREATE / MESSAGE_UPDATE / MESSAGE_DELETE need GUILD_MESSAGES;
MESSAGE_REACTION_ADD needs GUILD_MESSAGE_REACTIONS; without MESSAGE_CONTENT a
message's content, embeds and attachments arrive empty unless the bot wrote it
or is mentioned in it.

discord.py's plain ``Client`` never asks ``GET /gateway/bot``: it connects to
``DiscordWebSocket.DEFAULT_GATEWAY`` (and goes back there after an
INVALID_SESSION).  Code that runs discord.py against this fake must set both
``discord.http.Route.BASE`` and that attribute; ``patch_discord()`` does it
for code in the test process.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterator
from urllib.parse import unquote

from aiohttp import WSMsgType, web

__all__ = [
    "FakeDiscord",
    "RecordedRequest",
    "GatewaySession",
    "Intents",
    "DEFAULT_TOKEN",
    "MANAGE_MESSAGES",
]

DEFAULT_TOKEN = "fake-bot-token.Gx1y2z.for-tests-only"
DISCORD_EPOCH_MS = 1420070400000
MANAGE_MESSAGES = 1 << 13
_SUPPRESS_EMBEDS, _SUPPRESS_NOTIFICATIONS = 1 << 2, 1 << 12  # the message flags a sender may set
# what the bot's role grants unless a test grants more: view channel, send messages, read history,
# add reactions, embed links
_BASE_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 16) | (1 << 6) | (1 << 14)


class Intents:
    """Gateway intent bits (https://discord.com/developers/docs/events/gateway#gateway-intents)."""

    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1  # privileged
    GUILD_PRESENCES = 1 << 8  # privileged
    GUILD_MESSAGES = 1 << 9
    GUILD_MESSAGE_REACTIONS = 1 << 10
    DIRECT_MESSAGES = 1 << 12
    MESSAGE_CONTENT = 1 << 15  # privileged
    PRIVILEGED = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT


# gateway opcodes
_DISPATCH, _HEARTBEAT, _IDENTIFY, _PRESENCE, _VOICE, _RESUME = 0, 1, 2, 3, 4, 6
_RECONNECT, _REQUEST_MEMBERS, _INVALID_SESSION, _HELLO, _HEARTBEAT_ACK = 7, 8, 9, 10, 11


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _sid(value: int | str) -> str:
    return str(int(value))


@dataclass
class RecordedRequest:
    method: str
    path: str  # below the API base, without the query, e.g. "/channels/123/messages"
    query: dict[str, str]
    headers: dict[str, str]  # lower-case keys
    json: Any  # parsed JSON body (None if absent / not JSON)
    status: int | None = None  # HTTP status answered (None until answered)
    files: list[dict] = field(default_factory=list)  # multipart uploads: {"filename", "content_type", "data"}
    received_mono: float = field(default_factory=time.monotonic)

    @property
    def token(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[4:] if auth.startswith("Bot ") else None


@dataclass
class GatewaySession:
    """One gateway session; ``connections()`` hands out copies."""

    session_id: str
    intents: int
    identify: dict  # the IDENTIFY payload's "d"
    seq: int = 0
    live: bool = False  # a socket is attached right now
    resumes: int = 0  # successful RESUMEs
    url: str = ""  # the URL (path and query) the current / last socket connected to
    events: list[dict] = field(default_factory=list, repr=False)  # every dispatch sent, for replay on RESUME
    conn: Any = field(default=None, repr=False, compare=False)  # the fake's socket object (internal)


class _Conn:
    """One websocket connection (lives on the fake's event loop)."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, zlib_stream: bool) -> None:
        self.ws = ws
        self.transport = request.transport  # to cut the connection without a close frame
        self.url = str(request.rel_url)
        self.session: GatewaySession | None = None
        self.lock = asyncio.Lock()
        self.compressor = zlib.compressobj() if zlib_stream else None
        self.closed_by_server = False

    async def close(self, code: int, message: bytes = b"") -> None:
        self.closed_by_server = True
        await self.ws.close(code=code, message=message)

    async def send(self, *payloads: dict) -> bool:
        """Send the payloads in order, none interleaved with another sender's; False if the socket is gone."""
        async with self.lock:  # zlib-stream frames must also leave in compression order
            for payload in payloads:
                data = json.dumps(payload, separators=(",", ":"))
                if self.ws.closed:
                    return False
                try:
                    if self.compressor is not None:
                        await self.ws.send_bytes(
                            self.compressor.compress(data.encode()) + self.compressor.flush(zlib.Z_SYNC_FLUSH))
                    else:
                        await self.ws.send_str(data)
                except (ConnectionError, RuntimeError):
                    return False
        return True


class _HTTPError(Exception):
    def __init__(self, status: int, code: int, message: str, errors: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.body = status, {"message": message, "code": code}
        if errors is not None:
            self.body["errors"] = errors


def _form_error(field_name: str, code: str, message: str) -> _HTTPError:
    return _HTTPError(400, 50035, "Invalid Form Body", {field_name: {"_errors": [{"code": code, "message": message}]}})


class FakeDiscord:
    """Fake Discord server (REST + gateway).  See the module docstring.

    Thread-safe: every public method may be called from any thread except the
    fake's own loop.  Ids: attributes (``bot_id``, ``guild_id``, ...) are ints;
    ids inside message dicts and returned by ``say()`` are strings as on the
    wire; every method accepts either."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        heartbeat_interval_ms: int = 41250,
        privileged_intents: int = Intents.PRIVILEGED,
    ) -> None:
        self.bot_token = token
        self.host, self.port = host, port
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.privileged_intents = privileged_intents  # those enabled for the app in the developer portal
        self.bot_id = 1100000000000000001
        self.guild_id = 1100000000000000100
        self.channel_id = 1100000000000000200
        self.other_channel_id = 1100000000000000201
        self.owner_id = 1100000000000000300
        self.stranger_id = 1100000000000000301
        self.errors: list[str] = []  # tracebacks of exceptions inside the fake (answered as 500)
        self._users = {
            self.bot_id: self._user(self.bot_id, "tars-bot", bot=True),
            self.owner_id: self._user(self.owner_id, "owner"),
            self.stranger_id: self._user(self.stranger_id, "stranger"),
        }
        self._joined_at = _now_iso()
        self._channels = {
            self.channel_id: self._channel(self.channel_id, "tars", 0),
            self.other_channel_id: self._channel(self.other_channel_id, "general", 1),
        }
        self._cond = threading.Condition(threading.RLock())
        self._last_snowflake = 0
        self._reset_state()
        self._sessions: dict[str, GatewaySession] = {}
        self._conns: set[_Conn] = set()
        self._identifies: list[dict] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    def _reset_state(self) -> None:
        self._messages: dict[str, dict] = {}  # id -> wire message (+ "deleted")
        self._order: list[str] = []
        self._reactions: dict[str, list[str]] = {}
        self._nonces: dict[tuple[str, str], str] = {}  # (author, nonce) -> message id
        self._requests: list[RecordedRequest] = []
        self._rate_limits: list[dict] = []
        self._manage_messages = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "FakeDiscord":
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="FakeDiscord", daemon=True)
        self._thread.start()
        if not ready.wait(10) or failure:
            self._thread = None
            raise RuntimeError(f"FakeDiscord did not start: {failure}")
        return self

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_route("GET", "/gateway", self._gateway)
        app.router.add_route("GET", "/resume-gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _shutdown(self) -> None:
        for conn in list(self._conns):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(conn.close(1001), 2)
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        thread.join(timeout=10)

    def __enter__(self) -> "FakeDiscord":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget messages, reactions, requests, rate limits and granted permissions (gateway sessions stay)."""
        with self._cond:
            self._reset_state()
            self._identifies.clear()
            self._cond.notify_all()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The REST base, what ``discord.http.Route.BASE`` / ``DISCORD_API_URL`` should be."""
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}/gateway"

    @contextlib.contextmanager
    def patch_discord(self) -> Iterator[None]:
        """Point discord.py in THIS process at the fake (REST base and default gateway); restored on exit."""
        import yarl
        from discord.gateway import DiscordWebSocket
        from discord.http import Route

        saved = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = self.api_url, yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved

    # ------------------------------------------------------------------ the world as Discord objects
    @staticmethod
    def _user(user_id: int, name: str, bot: bool = False) -> dict:
        user = {"id": _sid(user_id), "username": name, "discriminator": "0", "global_name": None,
                "avatar": None, "public_flags": 0, "flags": 0}
        if bot:
            user.update(bot=True, verified=True, mfa_enabled=False, global_name=name)
        return user

    def _channel(self, channel_id: int, name: str, position: int) -> dict:
        return {"id": _sid(channel_id), "type": 0, "guild_id": _sid(self.guild_id), "name": name,
                "position": position, "permission_overwrites": [], "nsfw": False, "parent_id": None,
                "topic": None, "last_message_id": None, "rate_limit_per_user": 0, "flags": 0}

    def _member(self, user_id: int, with_user: bool = True) -> dict:
        member = {"roles": [_sid(self.guild_id + 1)] if user_id == self.bot_id else [], "joined_at": self._joined_at,
                  "deaf": False, "mute": False, "flags": 0, "pending": False, "nick": None, "avatar": None,
                  "premium_since": None, "communication_disabled_until": None}
        if with_user:
            member["user"] = copy.deepcopy(self._users[user_id])
        return member

    def _guild(self, intents: int) -> dict:
        with self._cond:
            bot_perms = _BASE_PERMISSIONS | (MANAGE_MESSAGES if self._manage_messages else 0)
            channels = copy.deepcopy(list(self._channels.values()))
        members = [self._member(u) for u in self._users] if intents & Intents.GUILD_MEMBERS else [
            self._member(self.bot_id)]
        roles = [
            {"id": _sid(self.guild_id), "name": "@everyone", "permissions": str(_BASE_PERMISSIONS), "position": 0,
             "color": 0, "colors": {"primary_color": 0}, "hoist": False, "managed": False, "mentionable": False,
             "flags": 0},
            {"id": _sid(self.guild_id + 1), "name": "tars-bot", "permissions": str(bot_perms), "position": 1,
             "color": 0, "colors": {"primary_color": 0}, "hoist": False, "managed": True, "mentionable": False,
             "flags": 0, "tags": {"bot_id": _sid(self.bot_id)}},
        ]
        return {"id": _sid(self.guild_id), "name": "TARS test guild", "icon": None, "owner_id": _sid(self.owner_id),
                "unavailable": False, "member_count": len(self._users), "large": False, "joined_at": self._joined_at,
                "features": [], "roles": roles, "emojis": [], "stickers": [], "channels": channels, "threads": [],
                "members": members, "voice_states": [], "presences": [], "stage_instances": [],
                "guild_scheduled_events": [], "soundboard_sounds": [], "verification_level": 0,
                "default_message_notifications": 0, "explicit_content_filter": 0, "mfa_level": 0, "nsfw_level": 0,
                "premium_tier": 0, "preferred_locale": "en-US", "system_channel_id": None, "afk_channel_id": None,
                "afk_timeout": 300, "application_id": None, "description": None}

    def _application(self) -> dict:
        return {"id": _sid(self.bot_id), "name": "tars-bot", "icon": None, "description": "", "bot_public": False,
                "bot_require_code_grant": False, "owner": copy.deepcopy(self._users[self.owner_id]),
                "verify_key": "0" * 64, "flags": (1 << 19) if self.privileged_intents & Intents.MESSAGE_CONTENT else 0,
                "team": None, "summary": "", "redirect_uris": [], "interactions_endpoint_url": None}

    def _snowflake(self) -> str:
        with self._cond:
            value = max(((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22), self._last_snowflake + 1)
            self._last_snowflake = value
            return str(value)

    # ------------------------------------------------------------------ test-facing API
    def say(self, author_id: int | str, content: str, reply_to: int | str | None = None, *,
            channel_id: int | str | None = None) -> str:
        """A user writes ``content`` in the channel (default ``channel_id``), optionally as a reply; returns its id.
        It is stored and dispatched as MESSAGE_CREATE to every gateway session before this returns."""
        author = int(author_id)
        channel = int(channel_id or self.channel_id)
        if author not in self._users:
            raise ValueError(f"unknown user {author}; known: {sorted(self._users)}")
        with self._cond:
            if channel not in self._channels:
                raise ValueError(f"unknown channel {channel}")
            reference = None
            if reply_to is not None:
                if _sid(reply_to) not in self._messages:
                    raise ValueError(f"reply_to {reply_to}: no such message")
                reference = {"message_id": _sid(reply_to), "channel_id": _sid(channel), "guild_id": _sid(self.guild_id)}
            message = self._store(author, channel, {"content": content}, reference)
        self._call(self._dispatch("MESSAGE_CREATE", self._gateway_message(message), Intents.GUILD_MESSAGES))
        return message["id"]

    def messages(self, channel_id: int | str | None = None) -> list[dict]:
        """Everything written in the channel (default ``channel_id``), oldest first, edits applied; each dict is
        Discord's message object plus ``"deleted": bool``."""
        channel = _sid(channel_id or self.channel_id)
        with self._cond:
            return [copy.deepcopy(self._messages[m]) for m in self._order if self._messages[m]["channel_id"] == channel]

    def bot_messages(self, channel_id: int | str | None = None) -> list[dict]:
        """The bot's messages in the channel that are not deleted."""
        return [m for m in self.messages(channel_id) if m["author"]["id"] == _sid(self.bot_id) and not m["deleted"]]

    def message(self, message_id: int | str) -> dict:
        with self._cond:
            return copy.deepcopy(self._messages[_sid(message_id)])

    def reactions(self, message_id: int | str) -> list[str]:
        """The emoji the bot has on the message now, in the order added (unicode, or ``name:id`` for custom)."""
        with self._cond:
            return list(self._reactions.get(_sid(message_id), []))

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every REST request so far (copies)."""
        with self._cond:
            return list(self._requests)

    @property
    def identifies(self) -> list[dict]:
        """The ``d`` of every IDENTIFY received (token, intents, properties, ...), also rejected ones."""
        with self._cond:
            return copy.deepcopy(self._identifies)

    def connections(self) -> list[GatewaySession]:
        """Copies of the gateway sessions that have a live, identified (or resumed) socket now."""
        with self._cond:
            return [copy.copy(s) for s in self._sessions.values() if s.live]

    def sessions(self) -> list[GatewaySession]:
        """Copies of every gateway session, live or waiting to be resumed."""
        with self._cond:
            return [copy.copy(s) for s in self._sessions.values()]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until ``predicate()`` is truthy and return its value; re-checked whenever the fake's state changes.
        Raises TimeoutError.  (From async code: ``await asyncio.to_thread(fake.wait_for, ...)``.)"""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"FakeDiscord.wait_for: condition not met within {timeout} s")
                self._cond.wait(left)

    def grant_manage_messages(self, granted: bool = True) -> None:
        """Give (or take) the bot MANAGE_MESSAGES: deleting other users' messages then works."""
        with self._cond:
            self._manage_messages = granted
            self._cond.notify_all()

    def rate_limit(self, n: int = 1, retry_after: float = 0.2, *, global_: bool = False,
                   match: str | None = None) -> None:
        """Answer the next ``n`` REST requests (those whose ``"METHOD /path"`` contains ``match``, if given) with
        Discord's 429."""
        with self._cond:
            self._rate_limits.append({"n": n, "retry_after": retry_after, "global": global_, "match": match})

    def drop(self, code: int | None = 4000, session_id: str | None = None) -> int:
        """Close live gateway sockets (all, or the session's): with close ``code``, or abruptly (no close frame)
        if ``code`` is None.  Sessions stay resumable.  Returns how many were closed."""
        return self._call(self._drop(code, session_id))

    def send_reconnect(self) -> None:
        """Send RECONNECT (op 7) on every live socket: the client closes and RESUMEs."""
        self._call(self._broadcast_op(_RECONNECT, None))

    def invalidate_sessions(self, resumable: bool = False) -> None:
        """Send INVALID_SESSION (op 9); unless ``resumable`` the sessions are forgotten (the client re-IDENTIFYs)."""
        self._call(self._invalidate(resumable))

    # ------------------------------------------------------------------ internals: state
    def _call(self, coro: Any) -> Any:
        if self._loop is None or self._thread is None:
            coro.close()
            raise RuntimeError("FakeDiscord is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def _store(self, author: int, channel: int, body: dict, reference: dict | None) -> dict:
        """A new message (caller holds the lock)."""
        mid = self._snowflake()
        content = body.get("content") or ""
        mentions = [copy.deepcopy(u) for uid, u in self._users.items() if f"<@{uid}>" in content or
                    f"<@!{uid}>" in content]
        message = {"id": mid, "channel_id": _sid(channel), "author": copy.deepcopy(self._users[author]),
                   "content": content, "timestamp": _now_iso(), "edited_timestamp": None, "tts": False,
                   "mention_everyone": False, "mentions": mentions, "mention_roles": [], "attachments": [],
                   "embeds": copy.deepcopy(body.get("embeds") or []), "pinned": False, "type": 0,
                   "flags": int(body.get("flags") or 0) & (_SUPPRESS_EMBEDS | _SUPPRESS_NOTIFICATIONS),
                   "components": [], "reactions": []}
        if body.get("nonce") is not None:
            message["nonce"] = body["nonce"]
        if reference is not None:
            message["type"] = 19  # REPLY
            message["message_reference"] = dict(reference, type=0)
            referenced = self._messages.get(reference["message_id"])
            message["referenced_message"] = (
                None if referenced is None or referenced["deleted"] else self._public(referenced))
        message["deleted"] = False
        self._messages[mid] = message
        self._order.append(mid)
        self._channels[channel]["last_message_id"] = mid
        self._cond.notify_all()
        return message

    @staticmethod
    def _public(message: dict) -> dict:
        """The wire form of a stored message (without the fake's "deleted" mark)."""
        out = copy.deepcopy(message)
        out.pop("deleted", None)
        if not out.get("reactions"):
            out.pop("reactions", None)
        if isinstance(out.get("referenced_message"), dict):
            out["referenced_message"].pop("referenced_message", None)
        return out

    def _gateway_message(self, message: dict) -> dict:
        with self._cond:
            out = self._public(message)
        out["guild_id"] = _sid(self.guild_id)
        out["member"] = self._member(int(message["author"]["id"]), with_user=False)
        return out

    # ------------------------------------------------------------------ internals: gateway
    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        conn = _Conn(ws, request, request.query.get("compress") == "zlib-stream")
        self._conns.add(conn)
        try:
            await conn.send({"op": _HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms,
                                                 "_trace": ["fake-discord"]}, "s": None, "t": None})
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                try:
                    payload = json.loads(msg.data)
                    op = payload["op"]
                except (ValueError, KeyError, TypeError):
                    await conn.close(4002, b"Error while decoding payload.")
                    break
                if not await self._on_op(conn, op, payload.get("d")):
                    break
        finally:
            self._conns.discard(conn)
            with self._cond:
                session = conn.session
                if session is not None and session.conn is conn:
                    session.live, session.conn = False, None
                    if not conn.closed_by_server and ws.close_code in (1000, 1001):
                        # a client closing with 1000/1001 ends its session, as on Discord
                        self._sessions.pop(session.session_id, None)
                self._cond.notify_all()
        return ws

    async def _on_op(self, conn: _Conn, op: Any, d: Any) -> bool:
        """Handle one client payload; False when the socket was closed."""
        if op == _HEARTBEAT:
            return await conn.send({"op": _HEARTBEAT_ACK, "d": None, "s": None, "t": None}) or True
        if op == _IDENTIFY:
            return await self._identify(conn, d if isinstance(d, dict) else {})
        if op == _RESUME:
            return await self._resume(conn, d if isinstance(d, dict) else {})
        if conn.session is None:
            await conn.close(4003, message=b"Not authenticated.")
            return False
        if op == _REQUEST_MEMBERS:
            members = [self._member(u) for u in self._users] if conn.session.intents & Intents.GUILD_MEMBERS else []
            await self._send_dispatch(conn.session, "GUILD_MEMBERS_CHUNK", {
                "guild_id": _sid(self.guild_id), "members": members, "chunk_index": 0, "chunk_count": 1,
                "not_found": [], "nonce": (d or {}).get("nonce")})
            return True
        if op in (_PRESENCE, _VOICE):
            return True
        await conn.close(4001, message=b"Unknown opcode.")
        return False

    async def _identify(self, conn: _Conn, d: dict) -> bool:
        with self._cond:
            self._identifies.append(copy.deepcopy(d))
            self._cond.notify_all()
        if conn.session is not None:
            await conn.close(4005, message=b"Already authenticated.")
            return False
        if d.get("token") != self.bot_token:
            await conn.close(4004, message=b"Authentication failed.")
            return False
        intents = d.get("intents")
        if not isinstance(intents, int) or intents < 0:
            await conn.close(4013, message=b"Invalid intent(s).")
            return False
        if intents & Intents.PRIVILEGED & ~self.privileged_intents:
            await conn.close(4014, message=b"Disallowed intent(s).")
            return False
        session = GatewaySession(session_id=uuid.uuid4().hex, intents=intents, identify=copy.deepcopy(d),
                                 url=conn.url)
        with self._cond:
            self._sessions[session.session_id] = session
            self._attach(conn, session)
        ready = {"v": 10, "user": copy.deepcopy(self._users[self.bot_id]),
                 "guilds": [{"id": _sid(self.guild_id), "unavailable": True}], "session_id": session.session_id,
                 "resume_gateway_url": f"ws://{self.host}:{self.port}/resume-gateway", "session_type": "normal",
                 "application": {"id": _sid(self.bot_id), "flags": self._application()["flags"]},
                 "private_channels": [], "relationships": [], "presences": [], "guild_join_requests": [],
                 "geo_ordered_rtc_regions": [], "user_settings": {}, "_trace": ["fake-discord"]}
        if "shard" in d:
            ready["shard"] = d["shard"]
        await self._send_dispatch(session, "READY", ready)
        if intents & Intents.GUILDS:
            await self._send_dispatch(session, "GUILD_CREATE", self._guild(intents))
        return True

    def _attach(self, conn: _Conn, session: GatewaySession) -> None:
        conn.session = session
        session.live, session.url = True, conn.url
        session.conn = conn
        self._cond.notify_all()

    async def _resume(self, conn: _Conn, d: dict) -> bool:
        if d.get("token") != self.bot_token:
            await conn.close(4004, message=b"Authentication failed.")
            return False
        with self._cond:
            session = self._sessions.get(str(d.get("session_id")))
        if session is None:
            await conn.send({"op": _INVALID_SESSION, "d": False, "s": None, "t": None})
            return True
        old = session.conn
        if old is not None and old is not conn:
            await old.close(4000)  # the session moves to the new socket
        with self._cond:
            self._attach(conn, session)
            session.resumes += 1
            seq = d.get("seq") or 0
            missed = [e for e in session.events if e["s"] > seq]
            resumed = self._next_frame(session, "RESUMED", {"_trace": ["fake-discord"]})
        # replay and RESUMED in one go: no new dispatch may overtake the replayed ones
        await conn.send(*missed, resumed)
        return True

    def _next_frame(self, session: GatewaySession, event: str, data: dict) -> dict:
        """Number and keep a dispatch of the session (caller holds the lock)."""
        session.seq += 1
        frame = {"op": _DISPATCH, "t": event, "s": session.seq, "d": data}
        session.events.append(frame)
        return frame

    async def _send_dispatch(self, session: GatewaySession, event: str, data: dict) -> None:
        with self._cond:
            frame = self._next_frame(session, event, data)
            conn = session.conn
        if conn is not None:
            await conn.send(frame)

    async def _dispatch(self, event: str, data: dict, intent: int) -> None:
        """Send a dispatch to every session that asked for ``intent`` (sessions waiting to resume get it on RESUME)."""
        with self._cond:
            sessions = list(self._sessions.values())
        for session in sessions:
            if not session.intents & intent:
                continue
            await self._send_dispatch(session, event, self._redact(data, session.intents))

    def _redact(self, data: dict, intents: int) -> dict:
        """Without MESSAGE_CONTENT Discord empties other users' messages unless the bot is mentioned."""
        if intents & Intents.MESSAGE_CONTENT or "author" not in data:
            return data
        if data["author"]["id"] == _sid(self.bot_id) or any(m["id"] == _sid(self.bot_id) for m in data["mentions"]):
            return data
        return dict(data, content="", embeds=[], attachments=[], components=[])

    async def _broadcast_op(self, op: int, d: Any) -> None:
        for conn in list(self._conns):
            if conn.session is not None:
                await conn.send({"op": op, "d": d, "s": None, "t": None})

    async def _invalidate(self, resumable: bool) -> None:
        for conn in list(self._conns):
            if conn.session is not None:
                await conn.send({"op": _INVALID_SESSION, "d": resumable, "s": None, "t": None})
        if not resumable:
            with self._cond:
                self._sessions.clear()
                self._cond.notify_all()

    async def _drop(self, code: int | None, session_id: str | None) -> int:
        victims = [c for c in list(self._conns)
                   if session_id is None or (c.session is not None and c.session.session_id == session_id)]
        for conn in victims:
            if code is None:
                conn.closed_by_server = True
                if conn.transport is not None:
                    conn.transport.abort()
            else:
                await conn.close(code)
        return len(victims)

    # ------------------------------------------------------------------ internals: REST
    def _respond(self, status: int, body: Any = None, headers: dict | None = None, bucket: str = "") -> web.Response:
        reset_after = 1.0
        base = {"Via": "1.1 google", "X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "4",
                "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}", "X-RateLimit-Reset-After": f"{reset_after:.3f}",
                "X-RateLimit-Bucket": uuid.uuid5(uuid.NAMESPACE_URL, bucket).hex[:32]}
        base.update(headers or {})
        if status == 204 or body is None:
            return web.Response(status=status, headers=base)
        # exactly "application/json": discord.py reads anything else (e.g. with a charset) as text
        base["Content-Type"] = "application/json"
        return web.Response(status=status, body=json.dumps(body).encode(), headers=base)

    def _take_rate_limit(self, key: str) -> dict | None:
        with self._cond:
            for limit in self._rate_limits:
                if limit["match"] is None or limit["match"] in key:
                    limit["n"] -= 1
                    if limit["n"] <= 0:
                        self._rate_limits.remove(limit)
                    return limit
        return None

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        body: Any = None
        files: list[dict] = []
        if request.content_type.startswith("multipart/"):  # discord.py sends files this way, the JSON as payload_json
            for name, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    files.append({"filename": value.filename, "content_type": value.content_type,
                                  "data": value.file.read()})
                elif name == "payload_json":
                    body = json.loads(value)
        else:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
        record = RecordedRequest(request.method, path, dict(request.query),
                                 {k.lower(): v for k, v in request.headers.items()}, body, files=files)
        with self._cond:
            self._requests.append(record)
            self._cond.notify_all()
        key = f"{request.method} {path}"
        bucket = request.method + " " + "/".join(p if not p.isdigit() or i < 3 else "{id}"
                                                  for i, p in enumerate(path.split("/")))
        try:
            if path == "/gateway" and request.method == "GET":
                response = self._respond(200, {"url": self.gateway_url}, bucket=bucket)
            elif request.headers.get("Authorization") != f"Bot {self.bot_token}":
                response = self._respond(401, {"message": "401: Unauthorized", "code": 0}, bucket=bucket)
            elif (limit := self._take_rate_limit(key)) is not None:
                retry = limit["retry_after"]
                headers = {"Retry-After": str(max(1, int(-(-retry // 1)))), "X-RateLimit-Remaining": "0",
                           "X-RateLimit-Reset-After": f"{retry:.3f}",
                           "X-RateLimit-Reset": f"{time.time() + retry:.3f}",
                           "X-RateLimit-Scope": "global" if limit["global"] else "user"}
                if limit["global"]:
                    headers["X-RateLimit-Global"] = "true"
                response = self._respond(429, {"message": "You are being rate limited.", "retry_after": retry,
                                               "global": limit["global"]}, headers, bucket=bucket)
            else:
                status, answer = await self._route(request.method, path, request.query, body, files)
                response = self._respond(status, answer, bucket=bucket)
        except _HTTPError as exc:
            response = self._respond(exc.status, exc.body, bucket=bucket)
        except Exception:  # noqa: BLE001 - a bug in the fake must show up in the test, not hang it
            import traceback

            self.errors.append(traceback.format_exc())
            response = self._respond(500, {"message": "500: Internal Server Error", "code": 0}, bucket=bucket)
        with self._cond:
            record.status = response.status
            self._cond.notify_all()
        return response

    async def _route(self, method: str, path: str, query: Any, body: Any, files: list[dict]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if method == "GET" and path == "/users/@me":
            return 200, copy.deepcopy(self._users[self.bot_id])
        if method == "GET" and path == "/oauth2/applications/@me":
            return 200, self._application()
        if method == "GET" and path == "/gateway/bot":
            return 200, {"url": self.gateway_url, "shards": 1, "session_start_limit": {
                "total": 1000, "remaining": 999, "reset_after": 86_400_000, "max_concurrency": 1}}
        if parts[0] != "channels" or len(parts) < 2:
            raise _HTTPError(404, 0, "404: Not Found")
        channel = self._find_channel(parts[1])
        if len(parts) == 2 and method == "GET":
            with self._cond:
                return 200, copy.deepcopy(self._channels[channel])
        if len(parts) >= 3 and parts[2] == "messages":
            if len(parts) == 3 and method == "POST":
                return await self._create_message(channel, body if isinstance(body, dict) else {}, files)
            if len(parts) == 3 and method == "GET":
                return 200, self._list_messages(channel, query)
            if len(parts) >= 4:
                mid = self._find_message(channel, parts[3])
                if len(parts) == 4 and method == "GET":
                    with self._cond:
                        return 200, self._public(self._messages[mid])
                if len(parts) == 4 and method == "PATCH":
                    return await self._edit_message(channel, mid, body if isinstance(body, dict) else {})
                if len(parts) == 4 and method == "DELETE":
                    return await self._delete_message(channel, mid)
                if len(parts) == 7 and parts[4] == "reactions" and parts[6] == "@me" and method in ("PUT", "DELETE"):
                    return await self._react(channel, mid, unquote(parts[5]), add=method == "PUT")
        raise _HTTPError(404, 0, "404: Not Found")

    def _find_channel(self, raw: str) -> int:
        with self._cond:
            if not raw.isdigit() or int(raw) not in self._channels:
                raise _HTTPError(404, 10003, "Unknown Channel")
        return int(raw)

    def _find_message(self, channel: int, raw: str) -> str:
        with self._cond:
            message = self._messages.get(raw)
            if message is None or message["deleted"] or message["channel_id"] != _sid(channel):
                raise _HTTPError(404, 10008, "Unknown Message")
        return raw

    @staticmethod
    def _validate(body: dict, creating: bool) -> None:
        content, embeds = body.get("content"), body.get("embeds")
        if content is not None and not isinstance(content, str):
            raise _form_error("content", "STRING_TYPE_CONVERT", "Could not interpret the value as string.")
        if content is not None and len(content) > 2000:
            raise _form_error("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
        if embeds is not None:
            if not isinstance(embeds, list) or len(embeds) > 10:
                raise _form_error("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
            for embed in embeds:
                if len(str(embed.get("description") or "")) > 4096:
                    raise _form_error("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 4096 or fewer in length.")
                if len(str(embed.get("title") or "")) > 256:
                    raise _form_error("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 256 or fewer in length.")
        if creating and not content and not embeds:
            raise _HTTPError(400, 50006, "Cannot send an empty message")

    async def _create_message(self, channel: int, body: dict, files: list[dict]) -> tuple[int, dict]:
        self._validate(body, creating=not files)
        nonce = body.get("nonce")
        with self._cond:
            if body.get("enforce_nonce") and nonce is not None:
                first = self._nonces.get((_sid(self.bot_id), str(nonce)))
                if first is not None:
                    return 200, self._public(self._messages[first])
            reference = None
            ref = body.get("message_reference")
            if isinstance(ref, dict) and ref.get("message_id") is not None:
                target = self._messages.get(_sid(ref["message_id"]))
                if target is not None and not target["deleted"]:
                    reference = {"message_id": target["id"], "channel_id": target["channel_id"],
                                 "guild_id": _sid(self.guild_id)}
                elif ref.get("fail_if_not_exists", True):
                    raise _form_error("message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message")
            message = self._store(self.bot_id, channel, body, reference)
            for upload in files:
                aid = self._snowflake()
                url = f"{self.base_url}/attachments/{channel}/{aid}/{upload['filename']}"
                message["attachments"].append({"id": aid, "filename": upload["filename"], "size": len(upload["data"]),
                                               "content_type": upload["content_type"], "url": url, "proxy_url": url})
            if nonce is not None:
                self._nonces.setdefault((_sid(self.bot_id), str(nonce)), message["id"])
            answer = self._public(message)
        await self._dispatch("MESSAGE_CREATE", self._gateway_message(message), Intents.GUILD_MESSAGES)
        return 200, answer

    def _list_messages(self, channel: int, query: Any) -> list[dict]:
        limit = max(1, min(100, int(query.get("limit", 50))))
        before, after = query.get("before"), query.get("after")
        with self._cond:
            found = [self._public(self._messages[m]) for m in reversed(self._order)
                     if self._messages[m]["channel_id"] == _sid(channel) and not self._messages[m]["deleted"]
                     and (before is None or int(m) < int(before)) and (after is None or int(m) > int(after))]
        return found[:limit]

    async def _edit_message(self, channel: int, mid: str, body: dict) -> tuple[int, dict]:
        self._validate(body, creating=False)
        with self._cond:
            message = self._messages[mid]
            if message["author"]["id"] != _sid(self.bot_id):
                raise _HTTPError(403, 50005, "Cannot edit a message authored by another user")
            if "content" in body:
                message["content"] = body["content"] or ""
            if "embeds" in body:
                message["embeds"] = copy.deepcopy(body["embeds"] or [])
            message["edited_timestamp"] = _now_iso()
            self._cond.notify_all()
            answer = self._public(message)
        await self._dispatch("MESSAGE_UPDATE", self._gateway_message(message), Intents.GUILD_MESSAGES)
        return 200, answer

    async def _delete_message(self, channel: int, mid: str) -> tuple[int, None]:
        with self._cond:
            message = self._messages[mid]
            if message["author"]["id"] != _sid(self.bot_id) and not self._manage_messages:
                raise _HTTPError(403, 50013, "Missing Permissions")
            message["deleted"] = True
            self._cond.notify_all()
        await self._dispatch("MESSAGE_DELETE", {"id": mid, "channel_id": _sid(channel),
                                                "guild_id": _sid(self.guild_id)}, Intents.GUILD_MESSAGES)
        return 204, None

    async def _react(self, channel: int, mid: str, emoji: str, add: bool) -> tuple[int, None]:
        if not emoji:
            raise _HTTPError(400, 10014, "Unknown Emoji")
        name, _, emoji_id = emoji.partition(":")
        with self._cond:
            have = self._reactions.setdefault(mid, [])
            changed = (emoji not in have) if add else (emoji in have)
            if changed:
                have.append(emoji) if add else have.remove(emoji)
                self._messages[mid]["reactions"] = [
                    {"emoji": {"id": e.partition(":")[2] or None, "name": e.partition(":")[0]}, "count": 1,
                     "me": True, "me_burst": False, "burst_count": 0, "burst_colors": [],
                     "count_details": {"burst": 0, "normal": 1}} for e in have]
            self._cond.notify_all()
        if changed:
            event = {"user_id": _sid(self.bot_id), "channel_id": _sid(channel), "message_id": mid,
                     "guild_id": _sid(self.guild_id), "emoji": {"id": emoji_id or None, "name": name},
                     "burst": False, "type": 0}
            if add:
                event["member"] = self._member(self.bot_id)
                event["message_author_id"] = self._messages[mid]["author"]["id"]
            await self._dispatch("MESSAGE_REACTION_ADD" if add else "MESSAGE_REACTION_REMOVE", event,
                                 Intents.GUILD_MESSAGE_REACTIONS)
        return 204, None
