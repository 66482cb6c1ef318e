"""Progress through the Discord bot: one status message per task, edited in place as the task goes on, and new
messages (the phone notifies) for a confirmation request and the ending; each findable from a reply to it."""

from __future__ import annotations

import signal

import httpx
import pytest

from communication.notifier import BOT, BOT_REPLY_LINE, STATUS_FOOTER
from core import event_log, keys
from tests.communication.test_delivery import ended, readers, start_reader, steps  # noqa: F401 (fixtures)
from tests.conftest import TEST_CODE, bot_settings
from tests.fakes.anthropic_api import bash, edit, text
from tests.waiting import wait_until


def status_messages(discord, task_id):
    footer = STATUS_FOOTER.format(task_id=task_id)
    return [m for m in discord.bot_messages() if m["embeds"] and m["embeds"][0]["footer"]["text"] == footer]


def other_messages(discord, task_id):
    """The bot's new messages about the task (a confirmation request, the ending), oldest first."""
    footer = STATUS_FOOTER.format(task_id=task_id)
    return [m for m in discord.bot_messages() if task_id in m["content"] and m["embeds"][0]["footer"]["text"] != footer]


def edits(discord):
    return [r for r in discord.requests if r.method == "PATCH"]


def posts(discord):
    return [r for r in discord.requests if r.method == "POST"]


def asks(redis_client, task_id, request_id="req0000001", command="rm old_backup.py"):
    event_log.append(redis_client, task_id, "confirmation_required", f"Needs your confirmation code to run: {command}",
                     "coding", {"command": command, "reason": "`rm` deletes files", "rule": "ask:rm",
                                "request_id": request_id})


def retired(redis_client, task_id, timeout=30):
    wait_until(lambda: not redis_client.sismember(keys.UNDELIVERED_TASKS, task_id), timeout, "the task retired")


def about(redis_client, message_id) -> dict:
    return {k.decode(): v.decode() for k, v in redis_client.hgetall(keys.discord_message(message_id)).items()}


def test_one_status_message_edited_in_place_plus_the_request_and_the_ending(tasks, redis_client, discord, readers):
    task_id = tasks.start("Clean up the backups", project_path="calc")
    event_log.append(redis_client, task_id, "started", "Started: Clean up the backups", "planning")
    readers(bot_settings(discord))
    status = wait_until(lambda: status_messages(discord, task_id), 30, "the status message")[0]
    assert status["content"].startswith(f"🚀 Task {task_id} · planning")
    steps(redis_client, task_id, 5)
    asks(redis_client, task_id)
    wait_until(lambda: len(other_messages(discord, task_id)) == 1, 30, "the confirmation request")
    event_log.append(redis_client, task_id, "confirmation_received", "Confirmation received: running rm",
                     "coding", {"command": "rm old_backup.py"})
    steps(redis_client, task_id, 5)
    ended(redis_client, task_id)
    retired(redis_client, task_id)

    [status] = status_messages(discord, task_id)
    question, ending = other_messages(discord, task_id)
    assert status["edited_timestamp"] is not None
    assert status["content"].startswith(f"🎉 Task {task_id} · complete")
    assert status["embeds"][0]["title"] == f"🎉 Task {task_id} · Complete"
    assert {"name": "Summary", "value": "ok", "inline": False} in status["embeds"][0]["fields"]
    reply = BOT_REPLY_LINE.format(task_id=task_id)
    assert question["content"].startswith(f"⚠️ Task {task_id} needs your confirmation to run `rm old_backup.py`")
    assert reply == f"Reply to this message with your code (or type `{task_id} <code>`)."
    assert question["content"].endswith(reply)
    assert ending["content"].startswith(f"🎉 Task {task_id} complete")
    assert [m["id"] for m in discord.bot_messages()] == [status["id"], question["id"], ending["id"]]
    # a reply to any of them finds the task; to the request, the request too
    assert about(redis_client, question["id"]) == {"task_id": task_id, "kind": "confirmation",
                                                   "request_id": "req0000001"}
    assert about(redis_client, status["id"]) == {"task_id": task_id, "kind": "status"}
    assert about(redis_client, ending["id"]) == {"task_id": task_id, "kind": "ending"}
    assert 0 < redis_client.ttl(keys.discord_message(question["id"])) <= 7 * 24 * 3600
    assert redis_client.hget(keys.task_discord_status(task_id), "message_id").decode() == status["id"]
    assert 0 < redis_client.ttl(keys.task_discord_status(task_id))
    # three messages, each POSTed once with a nonce Discord dedupes by; everything else was an edit of the status
    assert len(posts(discord)) == 3
    assert all(r.json["enforce_nonce"] is True and 0 < len(r.json["nonce"]) <= 25 for r in posts(discord))
    assert {r.path for r in edits(discord)} == {f"/channels/{discord.channel_id}/messages/{status['id']}"}
    assert all(r.token == discord.bot_token and r.json["allowed_mentions"] == {"parse": []} for r in discord.requests)
    last = event_log.last(redis_client, task_id).id.encode()
    assert redis_client.hget(keys.task_delivered(task_id), BOT) == last


def all_at_once(redis_client, task_id, count):
    """A busy task's updates and its ending, appended in one MULTI: the reader finds them all waiting."""
    with redis_client.pipeline() as pipe:
        steps(pipe, task_id, count)
        ended(pipe, task_id)
        pipe.execute()


def test_waiting_updates_go_in_one_edit(tasks, redis_client, discord, readers):
    task_id = tasks.start("Build a calculator", project_path="calc")
    event_log.append(redis_client, task_id, "started", "Started: Build a calculator", "planning")
    readers(bot_settings(discord))
    wait_until(lambda: status_messages(discord, task_id), 30, "the status message")
    all_at_once(redis_client, task_id, 60)
    retired(redis_client, task_id)
    assert len(status_messages(discord, task_id)) == 1 and len(other_messages(discord, task_id)) == 1
    [edit] = edits(discord)  # 61 updates, one edit: the ending's
    assert edit.json["content"].startswith(f"🎉 Task {task_id} · complete")

    idle = tasks.start("Build a calculator", project_path="calc")
    all_at_once(redis_client, idle, 60)  # no status message yet: it is created showing the ending
    retired(redis_client, idle)
    [status] = status_messages(discord, idle)
    assert status["edited_timestamp"] is None and status["content"].startswith(f"🎉 Task {idle} · complete")
    assert len(edits(discord)) == 1


def test_a_verbose_task_shows_each_action_a_quiet_one_its_milestones(tasks, redis_client, discord, readers):
    verbose = tasks.start("Say everything", project_path="calc", verbose_updates=True)
    quiet = tasks.start("Stay quiet", project_path="calc", verbose_updates=False)
    readers(bot_settings(discord))
    for task_id in (verbose, quiet):
        event_log.append(redis_client, task_id, "started", f"Started: {task_id}", "planning")
        wait_until(lambda: status_messages(discord, task_id), 30, "the status message")
    for task_id in (verbose, quiet):
        event_log.append(redis_client, task_id, "command_result", "exit 0: 3 passed", "testing",
                         {"command": "pytest -q"})
    wait_until(lambda: "3 passed" in status_messages(discord, verbose)[0]["embeds"][0].get("description", ""), 30,
               "the verbose task's status shows the command's result")
    for task_id in (verbose, quiet):
        event_log.append(redis_client, task_id, "phase", "Tests failed: fixing", "fixing")
        ended(redis_client, task_id)
    retired(redis_client, verbose)
    retired(redis_client, quiet)
    quiet_id = status_messages(discord, quiet)[0]["id"]
    shown = [r.json["embeds"][0]["title"] for r in edits(discord) if r.path.endswith(quiet_id)]
    assert shown and not [t for t in shown if "Command finished" in t]  # milestones only: phase, complete
    assert shown[-1] == f"🎉 Task {quiet} · Complete"
    assert redis_client.hget(keys.task_delivered(quiet), BOT) == event_log.last(redis_client, quiet).id.encode()


def test_a_mention_in_the_goal_pings_no_one(tasks, redis_client, discord, readers):
    goal = f"Tell @everyone and <@{discord.owner_id}> the build is green"
    task_id = tasks.start(goal, project_path="calc")
    event_log.append(redis_client, task_id, "started", f"Started: {goal}", "planning")
    ended(redis_client, task_id)
    readers(bot_settings(discord))
    retired(redis_client, task_id)
    [status] = status_messages(discord, task_id)
    assert {"name": "Goal", "value": goal, "inline": False} in status["embeds"][0]["fields"]
    assert discord.requests and all(r.json["allowed_mentions"] == {"parse": []} for r in discord.requests)


def test_rate_limits_are_honoured(tasks, redis_client, discord, readers):
    task_id = tasks.start("Build a calculator", project_path="calc")
    discord.rate_limit(1, retry_after=0.6, match="POST")
    event_log.append(redis_client, task_id, "started", "Started: Build a calculator", "planning")
    readers(bot_settings(discord), notifier={"backoff_max": 5})
    # wait for Discord's answer, not its message list: the fake stores the message a moment before the status
    wait_until(lambda: any(r.status == 200 for r in posts(discord)), 30, "the status message")
    refused, created = posts(discord)[:2]
    assert refused.status == 429 and created.status == 200 and created.json == refused.json
    assert created.received_mono - refused.received_mono >= 0.55
    discord.rate_limit(1, retry_after=0.6, match="PATCH")
    ended(redis_client, task_id)
    retired(redis_client, task_id)
    limited, edited = edits(discord)[:2]
    assert limited.status == 429 and edited.status == 200 and edited.received_mono - limited.received_mono >= 0.55
    assert len(status_messages(discord, task_id)) == 1
    assert status_messages(discord, task_id)[0]["content"].startswith(f"🎉 Task {task_id} · complete")


@pytest.mark.parametrize("mistake, fix", [
    ({"DISCORD_CHANNEL_ID": "1100000000000000999"},
     "DISCORD_CHANNEL_ID 1100000000000000999 is an unknown channel: copy the channel id with Developer Mode"),
    ({"DISCORD_BOT_TOKEN": "a-wrong-bot-token-0123456789"},
     "DISCORD_BOT_TOKEN was not accepted: copy the bot's token again"),
])
def test_a_set_up_mistake_is_named_in_the_log_and_holds_nothing_up(tasks, redis_client, discord, n8n, readers,
                                                                   caplog, mistake, fix):
    caplog.set_level("INFO")
    task_id = tasks.start("Build a calculator", project_path="calc")
    event_log.append(redis_client, task_id, "started", "Started: Build a calculator", "planning")
    steps(redis_client, task_id, 3)
    asks(redis_client, task_id)
    ended(redis_client, task_id)
    readers({"N8N_WEBHOOK_URL": n8n.url(), **bot_settings(discord, **mistake)})
    retired(redis_client, task_id)  # the bot's cursor went past what Discord refused: no stuck lane
    assert [b["type"] for b in n8n.bodies()] == ["started", *["command_result"] * 3, "confirmation_required",
                                                 "complete"]
    assert fix in caplog.text
    assert not discord.bot_messages()
    assert "a-wrong-bot-token" not in caplog.text and discord.bot_token not in caplog.text


def test_a_status_message_deleted_in_discord_is_posted_again(tasks, redis_client, discord, readers):
    task_id = tasks.start("Build a calculator", project_path="calc")
    event_log.append(redis_client, task_id, "started", "Started: Build a calculator", "planning")
    readers(bot_settings(discord))
    [first] = wait_until(lambda: status_messages(discord, task_id), 30, "the status message")
    gone = httpx.delete(f"{discord.api_url}/channels/{discord.channel_id}/messages/{first['id']}",
                        headers={"Authorization": f"Bot {discord.bot_token}"})
    assert gone.status_code == 204
    ended(redis_client, task_id)
    retired(redis_client, task_id)
    [again] = status_messages(discord, task_id)
    assert again["id"] != first["id"] and again["content"].startswith(f"🎉 Task {task_id} · complete")
    assert redis_client.hget(keys.task_discord_status(task_id), "message_id").decode() == again["id"]


def test_a_resend_after_a_crash_posts_nothing_twice(tasks, redis_client, discord, readers):
    """The window a crash can hit: Discord created the messages, the reader died before it recorded them and moved
    its cursor. The resend carries the same nonces, so Discord answers with the messages it has."""
    task_id = tasks.start("Clean up the backups", project_path="calc")
    event_log.append(redis_client, task_id, "started", "Started: Clean up the backups", "planning")
    asks(redis_client, task_id)
    ended(redis_client, task_id)
    first = readers(bot_settings(discord), name="reader-1")
    retired(redis_client, task_id)
    before = discord.bot_messages()
    assert len(before) == 3
    first.stop()
    redis_client.delete(keys.task_discord_status(task_id), keys.task_delivered(task_id),
                        *(keys.discord_message(m["id"]) for m in before))
    redis_client.sadd(keys.UNDELIVERED_TASKS, task_id)
    readers(bot_settings(discord), name="reader-2")
    retired(redis_client, task_id)
    assert len(posts(discord)) == 6  # each message POSTed again...
    after = discord.bot_messages()  # ...and answered with the one Discord had
    assert [(m["id"], m["content"]) for m in after] == [(m["id"], m["content"]) for m in before]
    assert about(redis_client, before[1]["id"])["kind"] == "confirmation"
    assert redis_client.hget(keys.task_discord_status(task_id), "message_id").decode() == before[0]["id"]


def test_a_delivery_process_killed_mid_way_edits_the_same_status_message(tasks, redis_client, discord,
                                                                         start_reader):
    task_id = tasks.start("Build a calculator", project_path="calc")
    event_log.append(redis_client, task_id, "started", "Started: Build a calculator", "planning")
    steps(redis_client, task_id, 10)
    first = start_reader(**bot_settings(discord))
    [status] = discord.wait_for(lambda: status_messages(discord, task_id), 60)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    asks(redis_client, task_id)
    steps(redis_client, task_id, 10)
    ended(redis_client, task_id)
    start_reader(**bot_settings(discord))  # the same name: it takes the task back at once
    retired(redis_client, task_id, 60)
    [again] = status_messages(discord, task_id)
    assert again["id"] == status["id"] and again["content"].startswith(f"🎉 Task {task_id} · complete")
    assert len(other_messages(discord, task_id)) == 2  # the request, the ending: once each


@pytest.mark.worker_story
def test_the_owner_follows_a_task_in_discord(tasks, fake_api, projects, start_worker, discord, redis_client):
    (projects / "cleanup").mkdir()
    (projects / "cleanup" / "old_backup.py").write_text("# old\n")
    fake_api.script([edit(command="create", path="hello.py", file_text='print("hi")\n'), bash("rm old_backup.py"),
                     text("Created hello.py and removed the old backup.")])
    task_id = tasks.start("Create hello.py and remove the old backup", project_path="cleanup")
    worker = start_worker("--burst", **bot_settings(discord))
    question = discord.wait_for(lambda: [m for m in other_messages(discord, task_id) if "confirmation" in m["content"]],
                                60)[0]
    [status] = status_messages(discord, task_id)
    assert "waiting for your confirmation code" in discord.message(status["id"])["content"]
    pending = redis_client.hget(keys.task_confirmation_request(task_id), "request_id").decode()
    assert wait_until(lambda: about(redis_client, question["id"]), 30, "the message recorded") == {
        "task_id": task_id, "kind": "confirmation", "request_id": pending}
    tasks.confirm(task_id, TEST_CODE)  # what the bot does with the owner's reply
    assert worker.wait(60) == 0, worker.log
    assert tasks.status(task_id).status == "complete"
    [status] = status_messages(discord, task_id)
    assert status["content"].startswith(f"🎉 Task {task_id} · complete")
    fields = {f["name"]: f["value"] for f in status["embeds"][0]["fields"]}
    assert fields["Goal"] == "Create hello.py and remove the old backup"
    assert fields["Files changed (2)"] == "hello.py, old_backup.py"
    assert fields["Cost"].startswith("$") and fields["Duration"].endswith(" s")
    ending = other_messages(discord, task_id)[-1]
    assert ending["content"].startswith(f"🎉 Task {task_id} complete")
    assert len(discord.bot_messages()) == 3
