"""The owner answers TARS in Discord: the real discord.py in a real server (create_app under uvicorn) against a local
Discord (tests/fakes/discord_api.py), a real Redis and, where a task must stop for a code, a real worker with the
scripted model. The delivery process posts the confirmation request and maps it to its task in Redis
(keys.discord_message); here the test does both, as delivery would.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time

import httpx
import pytest

from communication.discord_bot import HELP, NONE_WAITING, several_waiting
from core import event_log, keys
from core.confirmations import pending_request
from core.defaults import RESULT_TTL_SECONDS
from tests.conftest import ROOT, TEST_CODE, bot_settings
from tests.core.test_confirmations import awaiting, destructive_task
from tests.fakes.anthropic_api import bash, text
from tests.fakes.discord_api import FakeDiscord, Intents
from tests.waiting import wait_until


# --- fixtures -----------------------------------------------------------------------------------------------------
@pytest.fixture
def make_bot(serve, discord):
    """A real server with the Discord bot on (its own settings); make_bot(**overrides)."""
    def make(**overrides):
        return serve(**bot_settings(discord, **overrides))
    return make


@pytest.fixture
def bot(make_bot, discord):
    """One server whose bot holds the gateway connection."""
    server = make_bot()
    wait_until(lambda: health(server) == "connected", what="the bot to connect", timeout=30, interval=0.2)
    assert len(discord.connections()) == 1
    return server


def health(server) -> str:
    return httpx.get(server.url + "/health", timeout=10).json()["discord"]


def ask_for_code(discord, redis_client, task_id: str) -> str:
    """What the delivery process does when a task waits for a code: post the request, map it to the task."""
    answer = httpx.post(f"{discord.api_url}/channels/{discord.channel_id}/messages",
                        headers={"Authorization": f"Bot {discord.bot_token}"},
                        json={"content": f"⚠️ Task {task_id} needs your confirmation code to run: rm old_backup.py"})
    answer.raise_for_status()
    message_id = answer.json()["id"]
    request_id = pending_request(redis_client, task_id)["request_id"]
    redis_client.hset(keys.discord_message(message_id),
                      mapping={"task_id": task_id, "kind": "confirmation", "request_id": request_id})
    redis_client.expire(keys.discord_message(message_id), RESULT_TTL_SECONDS)
    return message_id


def waiting_task(tasks, fake_api, projects, name: str) -> str:
    """A task that stops for a code (rm), with a script of its own: several of them run at once."""
    (projects / name).mkdir()
    (projects / name / "old_backup.py").write_text("# old\n")
    fake_api.script([bash("rm old_backup.py"), text("Removed the old backup.")], match=f"backup of {name}",
                    name=name)
    return tasks.start(f"Remove the old backup of {name}", project_path=name)


def answer_to(discord, message_id: str, timeout: float = 30) -> str:
    """The text of the bot's reply to the message."""
    reply = discord.wait_for(lambda: [m for m in discord.messages() if m["author"]["id"] ==
                                           str(discord.bot_id) and (m.get("message_reference") or {})
                                           .get("message_id") == message_id], timeout=timeout)
    assert len(reply) == 1, reply
    assert reply[0]["mentions"] == [] and reply[0]["content"]  # it pings nobody
    return reply[0]["content"]


def sent_by_bot(discord) -> list[dict]:
    return [r for r in discord.requests if r.method == "POST" and r.path.endswith("/messages")]


def resumed_at(redis_client, task_id: str) -> float:
    """When the worker got the code and went on (its confirmation_received event)."""
    return wait_until(lambda: next((e.at for e in event_log.read(redis_client, task_id)
                                    if e.type == "confirmation_received"), None), what="the worker to resume")


# --- codes --------------------------------------------------------------------------------------------------------
@pytest.mark.worker_story
def test_a_code_replied_to_the_request_resumes_the_task_within_a_second(bot, discord, tasks, fake_api, projects,
                                                                         start_worker, redis_client, caplog):
    caplog.set_level(logging.INFO, logger="tars.discord")
    task_id, project = destructive_task(tasks, fake_api, projects)
    start_worker()
    awaiting(tasks, task_id)
    question = ask_for_code(discord, redis_client, task_id)

    said_at = time.time()
    code = discord.say(discord.owner_id, TEST_CODE, reply_to=question)
    latency = resumed_at(redis_client, task_id) - said_at
    print(f"Discord reply -> worker resumed: {latency * 1000:.0f} ms")
    assert latency < 5, latency  # the goal is well under a second; a loaded 2-core machine gets a margin

    assert answer_to(discord, code) == f"Confirmation code received for task {task_id}, sir."
    assert discord.reactions(code) == ["✅"]
    assert tasks.wait_until_ended(task_id, 30)
    assert tasks.status(task_id).status == "complete"
    assert not (project / "old_backup.py").exists()
    # without Manage Messages the code stays, and that is said once in the log, not in the channel
    assert discord.message(code)["deleted"] is False
    assert "give it Manage Messages" in caplog.text
    assert TEST_CODE not in caplog.text


@pytest.mark.worker_story
def test_a_wrong_code_is_refused_with_the_attempts_left_and_strangers_are_ignored(bot, discord, tasks, fake_api,
                                                                                  projects, start_worker,
                                                                                  redis_client, caplog):
    caplog.set_level(logging.INFO, logger="tars.discord")
    discord.grant_manage_messages()
    task_id, project = destructive_task(tasks, fake_api, projects)
    start_worker()
    awaiting(tasks, task_id)
    question = ask_for_code(discord, redis_client, task_id)

    wrong = discord.say(discord.owner_id, "0000", reply_to=question)
    assert answer_to(discord, wrong) == f"That code was rejected for task {task_id}: 4 attempts left."
    assert discord.reactions(wrong) == ["❌"]
    discord.wait_for(lambda: discord.message(wrong)["deleted"])  # a wrong code is a code too
    assert pending_request(redis_client, task_id)["attempts_left"] == "4"
    question_back = discord.say(discord.owner_id, "why does it need that?", reply_to=question)
    assert answer_to(discord, question_back) == HELP  # a sentence is no code: it costs no attempt
    assert pending_request(redis_client, task_id)["attempts_left"] == "4"

    # someone else in the channel, with the right code: no answer, no attempt used, a log line with their id
    replies_before = len(sent_by_bot(discord))
    stranger = discord.say(discord.stranger_id, TEST_CODE, reply_to=question)
    wait_until(lambda: str(discord.stranger_id) in caplog.text, what="the stranger's log line")
    assert f"ignored a message from user {discord.stranger_id}" in caplog.text
    assert len(sent_by_bot(discord)) == replies_before and discord.reactions(stranger) == []
    assert discord.message(stranger)["deleted"] is False
    assert pending_request(redis_client, task_id)["attempts_left"] == "4"
    assert tasks.status(task_id).status == "awaiting_confirmation"

    # a reply to a request that is no longer the pending one answers nothing and costs nothing
    old = ask_for_code(discord, redis_client, task_id)
    redis_client.hset(keys.discord_message(old), "request_id", "an-older-one")
    stale = discord.say(discord.owner_id, TEST_CODE, reply_to=old)
    assert answer_to(discord, stale) == (f"That request of task {task_id} is no longer pending; the task now "
                                              f"asks to run rm old_backup.py: answer that request instead.")
    assert discord.reactions(stale) == ["❌"]
    assert pending_request(redis_client, task_id)["attempts_left"] == "4"

    right = discord.say(discord.owner_id, f"{task_id[:4]} {TEST_CODE}", reply_to=question)
    assert answer_to(discord, right) == f"Confirmation code received for task {task_id}, sir."
    assert tasks.wait_until_ended(task_id, 30)
    assert tasks.status(task_id).status == "complete"
    late = discord.say(discord.owner_id, TEST_CODE, reply_to=question)
    assert answer_to(discord, late) == f"Task {task_id} has already ended (complete), so it needs no code."
    assert discord.reactions(late) == ["❌"]


@pytest.mark.worker_story
def test_a_bare_code_or_the_task_id_and_the_code(bot, discord, tasks, fake_api, projects, start_worker,
                                                 redis_client):
    discord.grant_manage_messages()
    nothing = discord.say(discord.owner_id, TEST_CODE)
    assert answer_to(discord, nothing) == NONE_WAITING

    first = waiting_task(tasks, fake_api, projects, "one")
    start_worker()
    awaiting(tasks, first)
    bare = discord.say(discord.owner_id, TEST_CODE)  # exactly one task waits: it is for that one
    assert answer_to(discord, bare) == f"Confirmation code received for task {first}, sir."
    assert discord.reactions(bare) == ["✅"]
    discord.wait_for(lambda: discord.message(bare)["deleted"])  # Manage Messages: the code is gone
    assert tasks.wait_until_ended(first, 30) and tasks.status(first).status == "complete"

    # two tasks wait: a bare code names neither, and costs neither an attempt
    second, third = (waiting_task(tasks, fake_api, projects, name) for name in ("two", "three"))
    start_worker()
    awaiting(tasks, second), awaiting(tasks, third)
    both = discord.say(discord.owner_id, TEST_CODE)
    answer = answer_to(discord, both)
    assert answer in (several_waiting([second, third]), several_waiting([third, second]))
    assert answer.endswith(" <code>.") and "send the task id and the code" in answer
    assert {pending_request(redis_client, t)["attempts_left"] for t in (second, third)} == {"5"}

    for task_id, typed in ((second, f"#{second[:4].upper()} {TEST_CODE}"), (third, f"{third} 62-83")):
        given = discord.say(discord.owner_id, typed)
        assert answer_to(discord, given) == f"Confirmation code received for task {task_id}, sir."
        assert tasks.wait_until_ended(task_id, 30) and tasks.status(task_id).status == "complete"
    unknown = discord.say(discord.owner_id, f"abcdef {TEST_CODE}")
    assert answer_to(discord, unknown) == "There is no task abcdef."


# --- more than codes --------------------------------------------------------------------------------------------------
def test_status_list_cancel_and_help_answer_like_the_voice_functions(bot, discord, tasks):
    first, second = tasks.start("Write the parser"), tasks.start("Write the tests")
    mention = f"<@{discord.bot_id}>"
    said_in_turn = (f"status {first[:4]}", "STATUS", f"{mention} !list", "hello there", "add tests", "cancel",
                    f"!cancel {second}", f"{mention} status {second}")
    # One at a time, each after the answer to the one before, as the owner types them: the bot answers messages
    # concurrently, so a "status" sent together with a "cancel" may see the task before or after it.
    asked, answers = {}, {}
    for said in said_in_turn:
        asked[said] = discord.say(discord.owner_id, said)
        answers[said] = answer_to(discord, asked[said])
    assert answers == {
        f"status {first[:4]}": f"Task {first} is waiting for a worker.",
        "STATUS": f"Task {second} is waiting for a worker.",  # the latest task
        f"{mention} !list": f"Task {second} is waiting for a worker. Task {first} is waiting for a worker.",
        "hello there": HELP,
        "add tests": HELP,  # "add" could be a task id, but "tests" is no code
        "cancel": "cancel needs a task id.",
        f"!cancel {second}": f"Task {second} was cancelled.",
        f"{mention} status {second}": f"Task {second} was cancelled.",
    }
    assert tasks.status(second).status == "cancelled" and tasks.status(first).status == "queued"
    assert all(discord.reactions(m) == [] for m in asked.values())  # reactions are for codes
    assert HELP == "I understand: a code (as a reply to my request), <task id> <code>, status [id], list, cancel <id>."

    # other channels are not read
    elsewhere = discord.say(discord.owner_id, "list", channel_id=discord.other_channel_id)
    later = discord.say(discord.owner_id, "help")
    answer_to(discord, later)
    assert not [m for m in discord.messages(discord.other_channel_id) if m["id"] != elsewhere]


# --- one connection for all servers ---------------------------------------------------------------------------------
def test_of_two_servers_one_holds_the_gateway_and_the_other_takes_over_when_it_stops(make_bot, discord,
                                                                                     redis_client):
    most, watching = [0], threading.Event()

    def seen() -> bool:  # re-checked on every change of the fake's state: the most live connections ever
        most[0] = max(most[0], len(discord.connections()))
        return not watching.is_set()

    def watch():
        try:
            discord.wait_for(seen, timeout=120)
        except TimeoutError:
            pass

    watching.set()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    first = make_bot()
    wait_until(lambda: health(first) == "connected", what="the first bot to connect", timeout=30, interval=0.2)
    second = make_bot()
    assert health(second) == "standby"
    wait_until(lambda: redis_client.pttl(keys.DISCORD_GATEWAY_LEASE) > 0, what="the lease")
    holder = redis_client.get(keys.DISCORD_GATEWAY_LEASE)
    assert len(discord.connections()) == 1 and health(second) == "standby"

    first.stop()  # its lifespan closes the connection and releases the lease
    wait_until(lambda: health(second) == "connected", what="the second bot to take over", timeout=30, interval=0.2)
    assert redis_client.get(keys.DISCORD_GATEWAY_LEASE) not in (None, holder)
    assert len(discord.connections()) == 1
    said = discord.say(discord.owner_id, "list")
    assert answer_to(discord, said) == "There are no tasks yet."
    second.stop()
    discord.wait_for(lambda: not discord.connections(), timeout=15)
    assert redis_client.get(keys.DISCORD_GATEWAY_LEASE) is None
    watching.clear()
    watcher.join(15)
    assert most[0] == 1


def test_a_dropped_or_invalidated_gateway_session_is_taken_up_again(bot, discord):
    for trouble in (lambda: discord.drop(code=None), discord.send_reconnect,
                    lambda: discord.invalidate_sessions(resumable=False)):
        before = [(c.session_id, c.resumes) for c in discord.connections()]
        trouble()  # then it resumes its session, or identifies anew
        discord.wait_for(lambda: (now := [(c.session_id, c.resumes) for c in discord.connections()])
                              and now != before, timeout=30)
        said = discord.say(discord.owner_id, "list")
        assert answer_to(discord, said) == "There are no tasks yet."
    assert health(bot) == "connected"


def test_a_server_whose_lease_another_took_lets_its_connection_go(bot, discord, redis_client, caplog):
    redis_client.set(keys.DISCORD_GATEWAY_LEASE, "another-server", px=60_000)  # it could not renew in time
    discord.wait_for(lambda: not discord.connections(), timeout=30)
    assert health(bot) == "standby"
    assert "another server holds the gateway lease now" in caplog.text
    redis_client.delete(keys.DISCORD_GATEWAY_LEASE)  # that server stopped: this one takes it back
    wait_until(lambda: health(bot) == "connected", what="the bot to take the lease back", timeout=30, interval=0.2)
    assert len(discord.connections()) == 1


@pytest.mark.parametrize("problem,fix", [
    ("token", "copy the bot's token again (Developer Portal > your application > Bot > Reset Token)"),
    ("intent", "switch on Message Content Intent (Developer Portal > your application > Bot > Privileged Gateway "
               "Intents)"),
])
def test_discord_refusing_the_bot_is_a_log_line_naming_the_fix(serve, caplog, redis_client, problem, fix):
    caplog.set_level(logging.INFO, logger="tars.discord")
    with FakeDiscord(privileged_intents=0 if problem == "intent" else Intents.PRIVILEGED) as fake:
        server = serve(DISCORD_BOT_TOKEN="not-the-token" if problem == "token" else fake.bot_token,
                       DISCORD_API_URL=fake.api_url, DISCORD_CHANNEL_ID=str(fake.channel_id),
                       DISCORD_OWNER_IDS=str(fake.owner_id))
        wait_until(lambda: fix in caplog.text, what="the log line", timeout=30)
        assert httpx.get(server.url + "/health").json()["status"] == "ok"  # the server carries on
        wait_until(lambda: health(server) == "standby", what="the bot to stand by", interval=0.2)
        assert redis_client.get(keys.DISCORD_GATEWAY_LEASE) is None  # another server may try meanwhile
        assert not fake.connections()
        server.stop()


def test_without_a_bot_token_the_server_never_imports_discord(tars_env):
    check = ("import sys; from core.config import load_settings; from core.redis_conn import connect; "
             "from communication.app import create_app; s = load_settings(); "
             "app = create_app(s, connect(s.REDIS_URL)); "
             "assert 'discord' not in sys.modules and 'communication.discord_bot' not in sys.modules, 'imported'")
    done = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
