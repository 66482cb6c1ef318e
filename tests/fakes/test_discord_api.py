"""The fake Discord speaks the real protocol: the real discord.py client and plain httpx work against it."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import discord
import httpx
import pytest

from tests.fakes.discord_api import FakeDiscord, Intents

WAIT = 20.0  # generous: the suite runs on a loaded 2-core machine


@pytest.fixture
def fake():
    with FakeDiscord() as f:
        with f.patch_discord():
            yield f


class Bot(discord.Client):
    """A discord.py client that records what it hears, for the test to await."""

    def __init__(self, intents: discord.Intents | None = None) -> None:
        super().__init__(intents=intents or tars_intents(), guild_ready_timeout=0.2)
        self.ready = asyncio.Event()
        self.resumed = asyncio.Event()
        self.heard: asyncio.Queue[discord.Message] = asyncio.Queue()

    async def on_ready(self) -> None:
        self.ready.set()

    async def on_resumed(self) -> None:
        self.resumed.set()

    async def on_message(self, message: discord.Message) -> None:
        if message.author.id != self.user.id:
            await self.heard.put(message)

    async def next_message(self) -> discord.Message:
        return await asyncio.wait_for(self.heard.get(), WAIT)


def tars_intents() -> discord.Intents:
    intents = discord.Intents.none()
    intents.guilds = intents.guild_messages = intents.message_content = True
    return intents


def run(fake: FakeDiscord, story: Callable[[Bot], Awaitable[Any]], intents: discord.Intents | None = None) -> Any:
    """Start a real client against the fake, wait for on_ready, play the story, close the client."""

    async def main() -> Any:
        bot = Bot(intents)
        runner = asyncio.create_task(bot.start(fake.bot_token))
        try:
            ready = asyncio.create_task(bot.ready.wait())
            done, _ = await asyncio.wait({ready, runner}, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
            if runner in done:
                runner.result()  # raises what start() raised
            assert ready in done, "no on_ready"
            return await asyncio.wait_for(story(bot), WAIT * 2)
        finally:
            await bot.close()
            await asyncio.wait_for(asyncio.gather(runner, return_exceptions=True), WAIT)

    return asyncio.run(main())


async def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


def test_client_logs_in_hears_the_owner_and_replies(fake):
    async def story(bot: Bot):
        channel = bot.get_channel(fake.channel_id)
        assert isinstance(channel, discord.TextChannel) and channel.guild.id == fake.guild_id
        assert bot.user.id == fake.bot_id and bot.user.bot

        question = await channel.send("Code please?")
        answer_id = await in_thread(fake.say, fake.owner_id, "6283", reply_to=question.id)
        heard = await bot.next_message()
        assert (heard.id, heard.channel.id, heard.author.id, heard.content) == (
            int(answer_id), fake.channel_id, fake.owner_id, "6283")
        assert heard.reference is not None and heard.reference.message_id == question.id
        assert isinstance(heard.author, discord.Member) and heard.guild.id == fake.guild_id

        reply = await heard.reply("Accepted.")
        assert reply.reference.message_id == heard.id
        return question.id, reply.id

    question_id, reply_id = run(fake, story)
    said = fake.messages()
    assert [(m["author"]["id"], m["content"]) for m in said] == [
        (str(fake.bot_id), "Code please?"), (str(fake.owner_id), "6283"), (str(fake.bot_id), "Accepted.")]
    assert said[1]["message_reference"]["message_id"] == str(question_id)
    assert said[2]["id"] == str(reply_id) and said[2]["message_reference"]["message_id"] == said[1]["id"]
    identify = fake.identifies[0]
    assert identify["token"] == fake.bot_token
    assert identify["intents"] == Intents.GUILDS | Intents.GUILD_MESSAGES | Intents.MESSAGE_CONTENT
    assert [(r.method, r.path) for r in fake.requests][:2] == [("GET", "/users/@me"), ("GET", "/oauth2/applications/@me")]


def test_wrong_token_fails_login(fake):
    async def main():
        bot = Bot()
        with pytest.raises(discord.LoginFailure):
            await asyncio.wait_for(bot.start("not-the-token"), WAIT)
        await bot.close()

    asyncio.run(main())
    assert fake.requests[0].status == 401 and not fake.identifies


def test_enforce_nonce_posts_once():
    with FakeDiscord() as fake, httpx.Client(base_url=fake.api_url,
                                             headers={"Authorization": f"Bot {fake.bot_token}"}) as http:
        body = {"content": "Task 42: running", "nonce": "task-42-status", "enforce_nonce": True}
        first = http.post(f"/channels/{fake.channel_id}/messages", json=body)
        again = http.post(f"/channels/{fake.channel_id}/messages", json=body)
        assert first.status_code == again.status_code == 200
        assert first.json()["id"] == again.json()["id"]
        assert [m["content"] for m in fake.messages()] == ["Task 42: running"]
