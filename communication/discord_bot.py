"""The Discord bot's gateway side: the owner answers TARS in one channel, TARS reacts and replies there.

* One connection for all servers. Each server runs a `DiscordBot`; the one holding the lease in Redis
  (keys.DISCORD_GATEWAY_LEASE, core/redis_conn.Lease, renewed every DISCORD_LEASE_CHECK_SECONDS) keeps the gateway
  connection with discord.py, the others stand by and take over once it is released or runs out. The REST base is
  DISCORD_API_URL and the gateway's address is asked from it (GET /gateway/bot); reconnects are discord.py's.
* Intents: guild messages (the MESSAGE_CREATE events of server channels), message content (privileged: without it
  Discord sends the owner's text empty) and guilds (the server and its channels, which discord.py's state is built
  on: it warns without). No members, presences or reactions: the bot keeps no message cache, it answers.
* It reads DISCORD_CHANNEL_ID only; bots are ignored, and everyone not in DISCORD_OWNER_IDS too (a log line).
  What the owner types (see `HELP`): a code as a reply to a message TARS posted about a task (its task and request
  come from keys.discord_message, written by communication/delivery.py), "<task id> <code>", a bare code while
  exactly one task waits for one, and "status [id]", "list", "cancel <id>", with or without "!" or the bot's
  mention. Codes take the confirmation path of every channel (VoiceFunctions.answer_code -> TaskManager.confirm);
  TARS reacts ✅ or ❌, answers with the voice functions' sentences, and deletes the message holding the code when
  it may (Manage Messages).
* Redis and the task manager are called in threads (asyncio.to_thread): the server's event loop never waits on
  them. Nothing here stops the server: a failure is logged and the bot carries on or retries later.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import socket
import time

import discord
import redis
import yarl

from communication import spoken
from core import keys
from core.config import Settings
from core.confirmations import normalize_code
from core.defaults import DISCORD_LEASE_CHECK_SECONDS, DISCORD_LEASE_SECONDS, DISCORD_RETRY_SECONDS
from core.exceptions import TarsError
from core.redis_conn import Lease
from core.task_manager import TaskManager
from sub_agents_tars import VoiceFunctions

log = logging.getLogger("tars.discord")

HELP = "I understand: a code (as a reply to my request), <task id> <code>, status [id], list, cancel <id>."
"""The answer to anything else the owner types."""

NONE_WAITING = "No task is waiting for a confirmation code."

ACCEPTED, REJECTED = "✅", "❌"
NO_PINGS = discord.AllowedMentions.none()  # every message the bot sends: it never pings anyone
MESSAGE_LIMIT = 2000  # characters Discord takes in one message
TASK_ID_WORD = re.compile(r"#?[0-9a-fA-F]{2,32}")
COMMANDS = ("status", "list", "cancel", "help")


def several_waiting(task_ids: list[str]) -> str:
    return (f"Tasks {', '.join(task_ids)} are waiting for a code: send the task id and the code, "
            f"e.g. {task_ids[0]} <code>.")


def words_of(content: str, bot_id: int | None) -> list[str]:
    """The message's words without a leading mention of the bot and a leading '!' ('<@123> !status a7f3' ->
    ['status', 'a7f3'])."""
    text = content.strip()
    if bot_id is not None:
        text = re.sub(rf"^<@!?{bot_id}>", "", text).strip()
    return text.lstrip("!").split()


def looks_like_code(text: str, replying: bool = False) -> bool:
    """Text the owner means as a code: at least 4 characters (CONFIRMATION_CODE's minimum) and a digit, so that
    'add tests' costs no attempt; in a reply to a code request, any single word too (a code without digits)."""
    code = normalize_code(text)
    return len(code) >= 4 and (any(ch.isdigit() for ch in code) or replying and len(text.split()) == 1)


def intents() -> discord.Intents:
    chosen = discord.Intents.none()
    chosen.guild_messages = True  # the messages posted in the channel
    chosen.message_content = True  # their text (privileged: switched on in the Developer Portal)
    chosen.guilds = True  # the channel they come from (discord.py's state needs it)
    return chosen


class DiscordBot:
    """The bot of one server process: start() in the app's lifespan, stop() at its end; `state` for /health."""

    def __init__(self, settings: Settings, connection: redis.Redis, tasks: TaskManager, name: str | None = None):
        self.settings = settings
        self.redis = connection
        self.functions = VoiceFunctions(tasks, settings)
        self.channel_id = int(settings.DISCORD_CHANNEL_ID or 0)
        self.owners = settings.discord_owners
        name = name or f"{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(3)}"  # two bots in one process too
        self.lease = Lease(connection, keys.DISCORD_GATEWAY_LEASE, name, DISCORD_LEASE_SECONDS)
        self.check_seconds, self.retry_seconds = DISCORD_LEASE_CHECK_SECONDS, DISCORD_RETRY_SECONDS
        self.client: discord.Client | None = None
        self._connection: asyncio.Task | None = None  # login + the gateway loop of self.client
        self._runner: asyncio.Task | None = None
        self._stopping = asyncio.Event()
        self._held_until = 0.0  # monotonic: the lease is surely ours until then (counted from before the renewal)
        self._not_before = 0.0  # monotonic: after a refusal, no new attempt before then
        self._told_delete = False

    @property
    def state(self) -> str:
        """connected (this server reads the channel), connecting, or standby (another server holds it, or none)."""
        client = self.client
        if client is None:
            return "standby"
        return "connected" if client.is_ready() and not client.is_closed() else "connecting"

    async def start(self) -> None:
        self._stopping.clear()
        self._runner = asyncio.create_task(self._run(), name="tars-discord-lease")

    async def stop(self) -> None:
        """Close the connection and hand the lease over at once (a standby server takes it at its next check)."""
        self._stopping.set()
        if self._runner is not None:
            await self._runner
            self._runner = None
        await self._disconnect()

    # --- the lease and the connection ---------------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._check()
            except Exception:
                log.exception("Discord bot: the gateway lease check failed; trying again")
            try:
                await asyncio.wait_for(self._stopping.wait(), self.check_seconds)
            except asyncio.TimeoutError:
                pass

    async def _check(self) -> None:
        if self._connection is not None and self._connection.done():
            await self._disconnect()  # refused or unreachable (logged): the lease goes to whoever tries next
            self._not_before = time.monotonic() + self.retry_seconds
        if time.monotonic() < self._not_before:
            return
        asked = time.monotonic()
        try:
            held = await asyncio.to_thread(self.lease.hold)
        except redis.RedisError as exc:
            if self.client is not None and time.monotonic() >= self._held_until:
                log.warning("Discord bot: Redis has been unreachable longer than the gateway lease (%s): "
                            "disconnecting, so that two servers never both answer", exc.__class__.__name__)
                await self._disconnect()
            return
        if held:
            self._held_until = asked + self.lease.seconds
            if self.client is None:
                self._connect()
        elif self.client is not None:
            log.warning("Discord bot: another server holds the gateway lease now (this one could not renew it "
                        "in time): disconnecting")
            await self._disconnect()

    def _connect(self) -> None:
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False  # no Discord voice: no warning about it
        client = discord.Client(intents=intents(), allowed_mentions=NO_PINGS, max_messages=None,
                                guild_ready_timeout=0)

        @client.event
        async def on_ready():
            log.info("Discord bot: connected as %s (id %s), reading channel %s", client.user, client.user.id,
                     self.channel_id)

        @client.event
        async def on_message(message: discord.Message):
            await self.on_message(client, message)

        self.client = client
        self._connection = asyncio.create_task(self._keep_connected(client), name="tars-discord-gateway")

    async def _keep_connected(self, client: discord.Client) -> None:
        """Log in and run the gateway until closed; a refusal or an unreachable Discord is logged and ends it."""
        try:
            discord.http.Route.BASE = self.settings.DISCORD_API_URL
            await client.login(self.settings.secret("DISCORD_BOT_TOKEN"))
            _shards, gateway, _limits = await client.http.get_bot_gateway()
            # A plain Client connects to its class's gateway address: the one the REST base named.
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)
            await client.connect(reconnect=True)
        except asyncio.CancelledError:
            raise
        except discord.LoginFailure:
            log.error("Discord refused DISCORD_BOT_TOKEN: copy the bot's token again (Developer Portal > your "
                      "application > Bot > Reset Token) into .env and restart TARS; trying again in %.0f s",
                      self.retry_seconds)
        except discord.PrivilegedIntentsRequired:
            log.error("Discord refused the bot's intents: switch on Message Content Intent (Developer Portal > your "
                      "application > Bot > Privileged Gateway Intents); trying again in %.0f s", self.retry_seconds)
        except Exception as exc:  # unreachable, an unexpected close code...
            log.error("Discord bot: cannot connect to %s (%s: %s); trying again in %.0f s",
                      self.settings.DISCORD_API_URL, exc.__class__.__name__, exc, self.retry_seconds)

    async def _disconnect(self) -> None:
        client, connection = self.client, self._connection
        self.client = self._connection = None
        if connection is not None and not connection.done():
            connection.cancel()
            await asyncio.gather(connection, return_exceptions=True)
        if client is not None:
            try:
                await asyncio.wait_for(client.close(), 10)
            except Exception as exc:
                log.warning("Discord bot: closing the connection failed (%s)", exc.__class__.__name__)
        try:
            await asyncio.to_thread(self.lease.release)
        except redis.RedisError:
            pass  # it runs out by itself

    # --- the owner's messages -----------------------------------------------------------------------------------
    async def on_message(self, client: discord.Client, message: discord.Message) -> None:
        if message.channel.id != self.channel_id or message.author.bot:
            return
        if message.author.id not in self.owners:
            log.info("Discord bot: ignored a message from user %s, who is not in DISCORD_OWNER_IDS",
                     message.author.id)
            return
        try:
            await self._answer(message, words_of(message.content, client.user.id if client.user else None))
        except Exception:
            log.exception("Discord bot: answering message %s failed", message.id)
            await self._say(message, spoken.DID_NOT_WORK)

    async def _answer(self, message: discord.Message, words: list[str]) -> None:
        if not words:
            return  # an attachment or a sticker: nothing to understand
        about = await asyncio.to_thread(self._about, message)
        first = words[0].lower()
        if first in COMMANDS:
            await self._say(message, await asyncio.to_thread(self._command, first, words[1:], about.get("task_id")))
            return
        task_id = about.get("task_id")
        if task_id and len(words) == 2 and task_id.startswith(words[0].lower().lstrip("#")):
            words = words[1:]  # "a7f3 6283" in reply to task a7f3c1's request
        if task_id and looks_like_code(" ".join(words), replying=True):  # a reply to what TARS posted about a task
            request_id = about.get("request_id") if about.get("kind") == "confirmation" else None
            await self._code(message, task_id, " ".join(words), request_id)
        elif len(words) == 2 and TASK_ID_WORD.fullmatch(words[0]) and looks_like_code(words[1]):
            await self._code(message, words[0], words[1], None)
        elif len(words) == 1 and looks_like_code(words[0]):
            waiting = await asyncio.to_thread(self.functions.tasks.awaiting_code)
            if len(waiting) == 1:
                await self._code(message, waiting[0], words[0], None)
            else:
                await self._say(message, several_waiting(waiting) if waiting else NONE_WAITING)
                await self._delete_code(message)
        else:
            await self._say(message, HELP)

    def _about(self, message: discord.Message) -> dict[str, str]:
        """What the message TARS posted that this one replies to is about (task_id, kind, request_id), or {}."""
        reference = message.reference
        if reference is None or reference.message_id is None:
            return {}
        raw = self.redis.hgetall(keys.discord_message(reference.message_id))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def _command(self, command: str, arguments: list[str], replied_task: str | None) -> str:
        task_id = arguments[0] if arguments else replied_task
        if command == "status":
            return self.functions.check_coding_progress(task_id)
        if command == "list":
            return self.functions.list_coding_tasks()
        if command == "cancel":
            return self.functions.cancel_coding_task(task_id) if task_id else spoken.needs("cancel", ["a task id"])
        return HELP

    async def _code(self, message: discord.Message, said_task: str, code: str, request_id: str | None) -> None:
        accepted, sentence = await asyncio.to_thread(self._give_code, said_task, code, request_id)
        log.info("Discord bot: a code for task %s from user %s was %s", said_task, message.author.id,
                 "accepted" if accepted else "not accepted")
        await self._react(message, ACCEPTED if accepted else REJECTED)
        await self._say(message, sentence)
        await self._delete_code(message)

    def _give_code(self, said_task: str, code: str, request_id: str | None) -> tuple[bool, str]:
        try:
            task_id = self.functions.resolve_task_id(said_task)
        except TarsError as exc:  # TaskNotFound with its sentence ("... matches several tasks")
            return False, str(exc)
        return self.functions.answer_code(task_id, code, request_id)

    async def _react(self, message: discord.Message, emoji: str) -> None:
        try:
            await message.add_reaction(emoji)
        except discord.HTTPException as exc:
            log.warning("Discord bot: cannot react to message %s (%s); give the bot Add Reactions in the channel",
                        message.id, exc.status)

    async def _say(self, message: discord.Message, text: str) -> None:
        try:
            await message.reply(text[:MESSAGE_LIMIT], mention_author=False, allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            log.warning("Discord bot: cannot answer in channel %s (%s %s); give the bot Send Messages and Read "
                        "Message History there", self.channel_id, exc.status, exc.text)

    async def _delete_code(self, message: discord.Message) -> None:
        """A code stays in the channel's history otherwise: delete it if the bot may (Manage Messages)."""
        try:
            await message.delete()
        except discord.Forbidden:
            if not self._told_delete:
                self._told_delete = True
                log.info("Discord bot: give it Manage Messages in channel %s and it deletes the messages that "
                         "hold a code", self.channel_id)
        except discord.NotFound:
            pass
        except discord.HTTPException as exc:
            log.warning("Discord bot: cannot delete message %s (%s)", message.id, exc.status)
