"""`python main_tars.py doctor`, run as the owner runs it, against real stand-ins of n8n, Discord and Twilio and a real
TARS server behind PUBLIC_BASE_URL: each problem is one line with its fix; --fix-twilio points the number at TARS."""

from __future__ import annotations

import json

import httpx
import pytest

import main_tars
from communication.app import create_app
from communication.doctor import CHECKS
from core import keys
from core.config import load_settings
from core.redis_conn import connect, free_port
from tests.conftest import ServerThread, bot_settings
from tests.fakes.webhook_server import Reply

JSON = {"Content-Type": "application/json; charset=utf-8"}
# What n8n answers a GET on a production webhook URL (packages/cli/src/errors/response-errors/
# webhook-not-found.error.ts): its workflow published and the node taking POST only, or nothing on that path.
N8N_PUBLISHED = Reply(404, JSON, json.dumps({
    "code": 404, "message": "This webhook is not registered for GET requests. Did you mean to make a POST request?",
}).encode())
N8N_NOTHING_THERE = Reply(404, JSON, json.dumps({
    "code": 404, "message": 'The requested webhook "GET tars-progress" is not registered.',
    "hint": "The workflow must be active for a production URL to run successfully. You can activate the workflow "
            "using the toggle in the top-right of the editor."}).encode())
# Discord's "Get Webhook with Token": the webhook object, without its creator.
DISCORD_WEBHOOK = Reply(200, JSON, json.dumps({
    "id": "1100", "type": 1, "guild_id": "900", "channel_id": "901", "name": "TARS updates", "avatar": None,
    "application_id": None, "token": "webhook-token"}).encode())


@pytest.fixture
def doctor(tars_env, monkeypatch, capsys):
    """`python main_tars.py doctor --json [args]` in this process (the SDKs load once), with settings overridden:
    its findings and exit status."""

    def run(*args: str, **env: str) -> tuple[list[dict], int]:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        status = main_tars.main(["doctor", "--json", *args])
        return json.loads(capsys.readouterr().out), status

    return run


def lines(found, status="problem", check=None):
    return [f["detail"] for f in found if f["status"] == status and check in (None, f["check"])]


@pytest.fixture
def whole_setup(n8n, make_webhook, discord, fake_twilio, tars_server):
    """The owner's settings with everything on: n8n, a Discord channel webhook and the bot, PUBLIC_BASE_URL at a
    running TARS on this Redis, and a Twilio account whose number sends calls and texts there."""
    n8n.get_reply = N8N_PUBLISHED
    channel = make_webhook()
    channel.get_reply = DISCORD_WEBHOOK
    number = fake_twilio.numbers[0]
    number.voice_url, number.sms_url = f"{tars_server.url}/voice", f"{tars_server.url}/sms"
    return {"N8N_WEBHOOK_URL": n8n.url(), "DISCORD_WEBHOOK_URL": channel.url("/api/webhooks/1100/webhook-token"),
            **bot_settings(discord), **fake_twilio.settings(), "PUBLIC_BASE_URL": tars_server.url}


def test_a_whole_set_up_passes_every_check_without_posting_anything(doctor, whole_setup, n8n, discord, fake_api,
                                                                     fake_twilio):
    found, status = doctor(**whole_setup)
    assert status == 0 and [f for f in found if f["status"] != "ok"] == []
    assert {f["check"] for f in found} == set(CHECKS)
    said = [f["detail"] for f in found]
    assert f"{whole_setup['PUBLIC_BASE_URL']} reaches this TARS" in " ".join(said)
    assert f"n8n at http://127.0.0.1:{n8n.port} has the webhook, published and taking POSTs" in said
    assert "the webhook 'TARS updates' posts to channel 901" in said
    assert f"the bot 'tars-bot' sees #tars ({discord.channel_id})" in said
    public = whole_setup["PUBLIC_BASE_URL"]
    assert f"{fake_twilio.number} sends calls to {public}/voice and texts to {public}/sms" in said
    assert n8n.requests == [] and discord.messages() == [] and fake_twilio.calls == fake_twilio.messages == []
    assert [r.body["max_tokens"] for r in fake_api.requests] == [16] * 2  # one cheap request per model


def test_redis_down_is_one_line_and_doctor_starts_no_redis(doctor, whole_setup):
    closed = f"redis://127.0.0.1:{free_port()}/0"
    found, status = doctor(**{**whole_setup, "REDIS_URL": closed, "EMBEDDED_REDIS": "true"})
    assert status == 1
    assert lines(found) == [f"Redis is not reachable at {closed} (ConnectionError). Start Redis, fix REDIS_URL or "
                            f"REDIS_HOST/REDIS_PORT, or run `python main_tars.py` which starts an embedded one."]
    assert lines(found, "skipped", "public_url") == ["needs Redis to prove the server at PUBLIC_BASE_URL is this one "
                                                     "(see the Redis line)."]
    with pytest.raises(Exception):
        connect(closed)  # still nothing there: doctor looked, it started nothing


def test_public_base_url_at_a_server_that_is_not_this_tars_is_found(doctor, whole_setup, fake_api_server, redis_server,
                                                                    tars_env):
    plain = fake_api_server.base_url  # an HTTP server whose /health answers 200, but not as TARS
    found, status = doctor(**{**whole_setup, "PUBLIC_BASE_URL": plain})
    assert status == 1 and lines(found, check="public_url") == [
        f"Another server answers at {plain} (HTTP 200 for /health, not TARS's answer): point the tunnel at this "
        f"server (http://127.0.0.1:8000), or fix PUBLIC_BASE_URL."]

    other_redis = redis_server.url.rsplit("/", 1)[0] + "/1"  # another TARS, on a Redis of its own
    other = ServerThread(create_app(load_settings(REDIS_URL=other_redis), connect(other_redis)))
    try:
        found, status = doctor(**{**whole_setup, "PUBLIC_BASE_URL": other.url})
    finally:
        other.stop()
    assert status == 1 and lines(found, check="public_url") == [
        f"Another TARS answers at {other.url} (it does not share this one's Redis, {tars_env['REDIS_URL']}): point "
        f"the tunnel at this server (http://127.0.0.1:8000), or give both the same REDIS_URL."]

    nothing = f"http://127.0.0.1:{free_port()}"
    found, status = doctor(**{**whole_setup, "PUBLIC_BASE_URL": nothing})
    assert status == 1 and lines(found, check="public_url") == [
        f"{nothing}/health cannot be reached (ConnectError): is the tunnel (ngrok, cloudflared) running and forwarding "
        f"to http://127.0.0.1:8000, and TARS started? Else fix PUBLIC_BASE_URL."]


def test_a_wrong_voice_url_is_found_and_fix_twilio_points_the_number_at_tars(doctor, whole_setup, fake_twilio):
    number, public = fake_twilio.numbers[0], whole_setup["PUBLIC_BASE_URL"]
    number.voice_url = "https://old-tunnel.example.com/voice"  # the tunnel's address changed; the number's did not
    found, status = doctor(**whole_setup)
    assert status == 1 and lines(found) == [
        f"{fake_twilio.number}'s voice URL is https://old-tunnel.example.com/voice (POST) instead of {public}/voice "
        f"(POST): run python main_tars.py doctor --fix-twilio."]

    found, status = doctor("--fix-twilio", **whole_setup)
    assert status == 0 and lines(found) == []
    assert lines(found, "ok", "twilio")[-1] == (
        f"{fake_twilio.number} now sends calls to {public}/voice (was https://old-tunnel.example.com/voice (POST)) "
        f"and texts to {public}/sms (was {public}/sms (POST))")
    assert (number.voice_url, number.voice_method, number.sms_url, number.sms_method) == (
        f"{public}/voice", "POST", f"{public}/sms", "POST")  # Twilio's record of the number, through its REST API
    found, status = doctor(**whole_setup)
    assert status == 0 and [f for f in found if f["status"] != "ok"] == []


def test_texts_sent_with_get_are_found_too(doctor, whole_setup, fake_twilio):
    fake_twilio.numbers[0].sms_method = "GET"
    found, status = doctor(**whole_setup)
    public = whole_setup["PUBLIC_BASE_URL"]
    assert status == 1 and lines(found) == [
        f"{fake_twilio.number}'s SMS URL is {public}/sms (GET) instead of {public}/sms (POST): run python "
        f"main_tars.py doctor --fix-twilio."]


def test_a_wrong_twilio_token_is_one_line_naming_the_settings(doctor, whole_setup):
    found, status = doctor(**{**whole_setup, "TWILIO_AUTH_TOKEN": "not-the-auth-token"})
    assert status == 1 and lines(found) == [
        "Could not read the Twilio account: Twilio refused the credentials: check TWILIO_ACCOUNT_SID and "
        "TWILIO_AUTH_TOKEN (the Twilio console shows them)."]


def test_n8n_unreachable_or_without_a_published_workflow_is_one_line_each(doctor, whole_setup, n8n):
    gone = f"http://127.0.0.1:{free_port()}/webhook/tars-progress"
    found, _ = doctor(**{**whole_setup, "N8N_WEBHOOK_URL": gone})
    assert lines(found) == [f"n8n at {gone.split('/webhook')[0]} cannot be reached (ConnectError): start n8n, or fix "
                            f"N8N_WEBHOOK_URL."]
    n8n.get_reply = N8N_NOTHING_THERE
    found, status = doctor(**whole_setup)
    assert status == 1 and lines(found) == [
        f"n8n at http://127.0.0.1:{n8n.port} has no published workflow on N8N_WEBHOOK_URL's path: publish (activate) "
        f"the TARS workflow in n8n, or copy its production URL into N8N_WEBHOOK_URL "
        f"(docs/N8N_BACKGROUND_TASKS_SETUP.md)."]
    assert n8n.requests == []


def test_a_wrong_discord_bot_token_is_one_line(doctor, whole_setup):
    found, status = doctor(**{**whole_setup, "DISCORD_BOT_TOKEN": "not-the-token"})
    assert status == 1 and lines(found) == [
        "Discord refuses DISCORD_BOT_TOKEN: reset the bot's token (Developer Portal, your application, Bot, Reset "
        "Token) and set it in .env."]


def test_bad_settings_are_each_on_their_own_line_and_the_other_checks_wait(cli, tmp_path):
    """Run as the owner runs it (a real process): the text report, a line per finding."""
    env_file = tmp_path / ".env"
    env_file.write_text("ANTHROPIC_APIKEY=sk-ant-typo\n")
    done = cli("doctor", TARS_ENV_FILE=str(env_file), PORT="99999", CONFIRMATION_TIMEOUT_SECONDS="soon", timeout=180)
    assert done.returncode == 1, done.stderr
    problems = [line for line in done.stdout.splitlines() if line.startswith("problem")]
    assert len(problems) == 3 and all(line.split()[1] == "settings" for line in problems)
    assert "ANTHROPIC_APIKEY in " in problems[0] and "did you mean ANTHROPIC_API_KEY?" in problems[0]
    assert problems[1].startswith("problem  settings    CONFIRMATION_TIMEOUT_SECONDS='soon' is invalid: ")
    assert problems[2].startswith("problem  settings    PORT='99999' is invalid: ")
    assert all(line.endswith(": fix it in .env or the environment (see env.example).") for line in problems[1:])
    skipped = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("skipped")]
    assert skipped == list(CHECKS[1:])
    assert done.stdout.splitlines()[-1].startswith("3 problems (")


def test_a_check_across_settings_is_one_line_with_its_own_fix(doctor, monkeypatch):
    monkeypatch.delenv("CONFIRMATION_CODE")
    found, status = doctor(PLAN_APPROVAL="on")
    assert status == 1 and lines(found) == ["PLAN_APPROVAL=on needs CONFIRMATION_CODE: the owner approves a plan with "
                                            "that code; set CONFIRMATION_CODE or PLAN_APPROVAL=off."]


def test_health_answers_doctors_probe_once_and_is_unchanged_without_one(tars_server, redis_client):
    plain = httpx.get(f"{tars_server.url}/health").json()
    assert "probe" not in plain and plain["status"] == "ok"
    redis_client.set(keys.doctor_probe("t0ken"), "1", ex=60)
    assert httpx.get(f"{tars_server.url}/health", params={"probe": "t0ken"}).json()["probe"] is True
    assert httpx.get(f"{tars_server.url}/health", params={"probe": "t0ken"}).json()["probe"] is False  # one time
