"""The fake Discord speaks the real protocol: the real discord.py client and plain httpx work against it."""

from __future__ import annotations

import asyncio
import io
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


def test_bot_edits_reacts_and_deletes_with_discords_permissions(fake):
    async def story(bot: Bot):
        channel = bot.get_channel(fake.channel_id)
        status = await channel.send("Task 7: queued")
        await status.edit(content="Task 7: running")
        code_id = await in_thread(fake.say, fake.owner_id, "6283")
        code = await bot.next_message()
        await code.add_reaction("👀")
        with pytest.raises(discord.Forbidden) as denied:
            await code.delete()  # the owner's code: another user's message
        assert denied.value.code == 50013 and denied.value.status == 403
        await in_thread(fake.grant_manage_messages)
        await code.delete()
        await status.delete()  # its own message needs no permission
        log = await channel.send("the log", file=discord.File(io.BytesIO(b"line 1\n"), "task-7.log"))
        assert log.attachments[0].filename == "task-7.log" and log.attachments[0].size == 7
        return status.id, code_id

    status_id, code_id = run(fake, story)
    status, code, log = fake.messages()
    assert log["attachments"][0]["filename"] == "task-7.log"
    assert fake.requests[-1].files[0]["data"] == b"line 1\n" and fake.requests[-1].json["content"] == "the log"
    assert (status["id"], status["content"], status["deleted"]) == (str(status_id), "Task 7: running", True)
    assert status["edited_timestamp"] is not None
    assert (code["id"], code["deleted"]) == (code_id, True)
    assert fake.reactions(code_id) == ["👀"]
    assert [r.status for r in fake.requests if r.method == "DELETE"] == [403, 204, 204]
    assert [m["id"] for m in fake.bot_messages()] == [log["id"]]


def test_client_resumes_after_dropped_connections(fake):
    async def story(bot: Bot):
        [session] = await in_thread(fake.wait_for, fake.connections)
        for code in (4000, None):  # a close frame, then a connection cut without one
            bot.resumed.clear()
            assert await in_thread(fake.drop, code) == 1
            await asyncio.wait_for(bot.resumed.wait(), WAIT)
        bot.resumed.clear()
        await in_thread(fake.send_reconnect)  # Discord's RECONNECT (op 7)
        await asyncio.wait_for(bot.resumed.wait(), WAIT)
        mid = await in_thread(fake.say, fake.owner_id, "still there?")
        assert (await bot.next_message()).id == int(mid)
        [now] = fake.connections()
        assert now.session_id == session.session_id and now.resumes == 3 and len(fake.identifies) == 1
        assert now.url.startswith("/resume-gateway?")  # READY's resume_gateway_url was used
        assert "compress=zlib-stream" in now.url  # and the frames were zlib-stream, as discord.py asks

    run(fake, story)


def test_invalid_session_makes_the_client_identify_again(fake):
    async def story(bot: Bot):
        await in_thread(fake.wait_for, fake.connections)
        bot.ready.clear()
        await in_thread(fake.invalidate_sessions)
        await asyncio.wait_for(bot.ready.wait(), WAIT)
        mid = await in_thread(fake.say, fake.owner_id, "hello again")
        assert (await bot.next_message()).id == int(mid)

    run(fake, story)
    assert len(fake.identifies) == 2 and len(fake.sessions()) == 1  # the invalidated session is gone


def test_resume_replays_what_the_session_missed(fake):
    """On the wire: events dispatched while a session had no socket arrive on RESUME, then RESUMED."""
    import aiohttp

    async def main():
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(fake.gateway_url + "?v=10&encoding=json") as ws:
                hello = await ws.receive_json(timeout=WAIT)
                assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] > 0
                await ws.send_json({"op": 1, "d": None})
                assert (await ws.receive_json(timeout=WAIT))["op"] == 11
                await ws.send_json({"op": 2, "d": {"token": fake.bot_token, "intents": Intents.GUILD_MESSAGES,
                                                   "properties": {}}})
                ready = await ws.receive_json(timeout=WAIT)
                assert (ready["op"], ready["t"], ready["s"]) == (0, "READY", 1)
                session_id, resume_url = ready["d"]["session_id"], ready["d"]["resume_gateway_url"]
                assert ready["d"]["user"]["id"] == str(fake.bot_id)
                assert ready["d"]["guilds"] == [{"id": str(fake.guild_id), "unavailable": True}]
                await ws.close(code=4000)  # any close but 1000/1001 keeps the session resumable
            await in_thread(fake.wait_for, lambda: not fake.connections())
            mid = await in_thread(fake.say, fake.owner_id, "sent while away")
            async with http.ws_connect(resume_url + "?v=10&encoding=json") as ws:
                assert (await ws.receive_json(timeout=WAIT))["op"] == 10
                await ws.send_json({"op": 6, "d": {"token": fake.bot_token, "session_id": session_id, "seq": 1}})
                missed = await ws.receive_json(timeout=WAIT)
                assert (missed["t"], missed["s"], missed["d"]["id"]) == ("MESSAGE_CREATE", 2, mid)
                # no GUILDS intent was asked: no GUILD_CREATE; no MESSAGE_CONTENT: the content is withheld
                assert missed["d"]["content"] == "" and missed["d"]["author"]["id"] == str(fake.owner_id)
                assert missed["d"]["guild_id"] == str(fake.guild_id) and "roles" in missed["d"]["member"]
                resumed = await ws.receive_json(timeout=WAIT)
                assert (resumed["t"], resumed["s"]) == ("RESUMED", 3)
            # leaving closed with 1000: that ends the session, as on Discord
            await in_thread(fake.wait_for, lambda: not fake.sessions())
            async with http.ws_connect(fake.gateway_url) as ws:
                await ws.receive_json(timeout=WAIT)
                await ws.send_json({"op": 6, "d": {"token": fake.bot_token, "session_id": "nope", "seq": 1}})
                assert await ws.receive_json(timeout=WAIT) == {"op": 9, "d": False, "s": None, "t": None}
                await ws.send_json({"op": 2, "d": {"token": "wrong", "intents": 0, "properties": {}}})
                assert (await ws.receive(timeout=WAIT)).type == aiohttp.WSMsgType.CLOSE
                assert ws.close_code == 4004

    asyncio.run(main())


def test_without_the_message_content_intent_content_arrives_empty(fake):
    intents = discord.Intents.none()
    intents.guilds = intents.guild_messages = True

    async def story(bot: Bot):
        await in_thread(fake.say, fake.owner_id, "6283")
        assert (await bot.next_message()).content == ""
        await in_thread(fake.say, fake.owner_id, f"<@{fake.bot_id}> 6283")  # a mention still carries content
        assert (await bot.next_message()).content == f"<@{fake.bot_id}> 6283"
        await in_thread(fake.say, fake.stranger_id, "hi", channel_id=fake.other_channel_id)
        other = await bot.next_message()
        assert (other.channel.id, other.author.id, other.content) == (fake.other_channel_id, fake.stranger_id, "")

    run(fake, story, intents)
    assert fake.identifies[0]["intents"] == Intents.GUILDS | Intents.GUILD_MESSAGES


def test_a_privileged_intent_the_app_lacks_is_refused():
    with FakeDiscord(privileged_intents=0) as fake, fake.patch_discord():
        with pytest.raises(discord.PrivilegedIntentsRequired):
            run(fake, lambda bot: asyncio.sleep(0))


def test_members_intent_gets_the_member_list(fake):
    intents = tars_intents()
    intents.members = True

    async def story(bot: Bot):
        guild = bot.get_guild(fake.guild_id)
        assert guild.chunked
        assert {m.id for m in guild.members} == {fake.bot_id, fake.owner_id, fake.stranger_id}

    run(fake, story, intents)


def test_two_clients_are_two_connections(fake):
    async def main():
        bots = [Bot(), Bot()]
        runners = [asyncio.create_task(b.start(fake.bot_token)) for b in bots]
        await asyncio.wait_for(asyncio.gather(*(b.ready.wait() for b in bots)), WAIT)
        assert len(fake.connections()) == 2
        await bots[0].close()
        await in_thread(fake.wait_for, lambda: len(fake.connections()) == 1)
        mid = await in_thread(fake.say, fake.owner_id, "who hears me?")
        assert (await bots[1].next_message()).id == int(mid)
        await bots[1].close()
        await asyncio.wait_for(asyncio.gather(*runners, return_exceptions=True), WAIT)

    asyncio.run(main())
    fake.wait_for(lambda: fake.connections() == [])  # the server notices the second close a moment after the client
    assert len(fake.identifies) == 2


def test_rate_limits_are_discords_429(fake):
    fake.rate_limit(1, retry_after=0.1, match="POST /channels")

    async def story(bot: Bot):
        await bot.get_channel(fake.channel_id).send("after a wait")  # discord.py waits retry_after and retries

    run(fake, story)
    assert [r.status for r in fake.requests if r.method == "POST"] == [429, 200]
    assert [m["content"] for m in fake.messages()] == ["after a wait"]

    fake.rate_limit(2, retry_after=0.5, global_=True)
    with httpx.Client(base_url=fake.api_url, headers={"Authorization": f"Bot {fake.bot_token}"}) as http:
        for _ in range(2):
            r = http.get("/users/@me")
            assert r.status_code == 429
            assert r.json() == {"message": "You are being rate limited.", "retry_after": 0.5, "global": True}
            assert r.headers["Retry-After"] == "1" and r.headers["X-RateLimit-Global"] == "true"
            assert r.headers["X-RateLimit-Remaining"] == "0" and r.headers["X-RateLimit-Reset-After"] == "0.500"
        assert http.get("/users/@me").status_code == 200


def test_rest_errors_are_discords(fake):
    auth = {"Authorization": f"Bot {fake.bot_token}"}
    with httpx.Client(base_url=fake.api_url) as http:
        r = http.get("/users/@me", headers={"Authorization": "Bot wrong"})
        assert (r.status_code, r.json()) == (401, {"message": "401: Unauthorized", "code": 0})
        assert http.get("/gateway").json() == {"url": fake.gateway_url}  # the one route without auth
        bot_gateway = http.get("/gateway/bot", headers=auth).json()
        assert bot_gateway["url"] == fake.gateway_url and bot_gateway["shards"] == 1
        r = http.post("/channels/42/messages", json={"content": "x"}, headers=auth)
        assert (r.status_code, r.json()) == (404, {"message": "Unknown Channel", "code": 10003})
        messages = f"/channels/{fake.channel_id}/messages"
        r = http.post(messages, json={"content": ""}, headers=auth)
        assert (r.status_code, r.json()["code"]) == (400, 50006)
        r = http.post(messages, json={"content": "x" * 2001}, headers=auth)
        assert (r.status_code, r.json()["code"]) == (400, 50035)
        assert r.json()["errors"]["content"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
        r = http.post(messages, json={"content": "re", "message_reference": {"message_id": "1"}}, headers=auth)
        assert (r.status_code, r.json()["code"]) == (400, 50035)
        r = http.patch(f"{messages}/1", json={"content": "x"}, headers=auth)
        assert (r.status_code, r.json()) == (404, {"message": "Unknown Message", "code": 10008})
        owners = fake.say(fake.owner_id, "mine")
        r = http.patch(f"{messages}/{owners}", json={"content": "x"}, headers=auth)
        assert (r.status_code, r.json()["code"]) == (403, 50005)
        posted = http.post(messages, json={"embeds": [{"title": "Task 1", "description": "done"}],
                                           "message_reference": {"message_id": owners}}, headers=auth)
        assert posted.status_code == 200 and posted.headers["content-type"] == "application/json"
        message = posted.json()
        assert message["author"]["id"] == str(fake.bot_id) and message["type"] == 19
        assert message["embeds"][0]["title"] == "Task 1" and message["referenced_message"]["content"] == "mine"
        assert http.get(f"{messages}/{message['id']}", headers=auth).json()["id"] == message["id"]
        assert http.put(f"{messages}/{owners}/reactions/%E2%9C%85/@me", headers=auth).status_code == 204
        assert fake.reactions(owners) == ["✅"]
        assert [m["id"] for m in http.get(messages, headers=auth).json()] == [message["id"], owners]
        assert http.get(f"/channels/{fake.channel_id}", headers=auth).json()["guild_id"] == str(fake.guild_id)
    assert fake.requests[3].json == {"content": "x"} and fake.requests[3].path == "/channels/42/messages"
    assert fake.errors == []


def test_wait_for_wakes_on_change_and_times_out(fake):
    import threading

    with httpx.Client(base_url=fake.api_url, headers={"Authorization": f"Bot {fake.bot_token}"}) as http:
        mid = fake.say(fake.owner_id, "6283")
        got = []
        waiter = threading.Thread(target=lambda: got.append(fake.wait_for(lambda: fake.reactions(mid), WAIT)))
        waiter.start()
        http.put(f"/channels/{fake.channel_id}/messages/{mid}/reactions/👀/@me")
        waiter.join(WAIT)
        assert got == [["👀"]]
    with pytest.raises(TimeoutError):
        fake.wait_for(lambda: fake.bot_messages(), timeout=0.1)


def test_reachable_from_another_process(fake):
    """The delivery process under test is another process posting with httpx."""
    import subprocess
    import sys

    code = (
        "import httpx, sys\n"
        "r = httpx.post(sys.argv[1] + '/channels/' + sys.argv[2] + '/messages', json={'content': 'from afar'},"
        " headers={'Authorization': 'Bot ' + sys.argv[3]})\n"
        "print(r.status_code, r.json()['id'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code, fake.api_url, str(fake.channel_id), fake.bot_token],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    status, mid = out.stdout.split()
    assert status == "200" and [(m["id"], m["content"]) for m in fake.bot_messages()] == [(mid, "from afar")]
