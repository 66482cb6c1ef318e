"""`python main_tars.py doctor`: every part of the set-up checked once, each problem on one line with its fix.

The checks: the settings (and names in .env TARS ignores), Redis, one cheap request to each model
(core/model_roles.check_model), n8n and Discord reached without posting anything into them, PUBLIC_BASE_URL
reaching this TARS's /health (proven by a one-time token doctor leaves in Redis), and the Twilio credentials and
number, whose voice and SMS URLs must be PUBLIC_BASE_URL/voice and /sms. `--fix-twilio` points them there through
Twilio's REST API. Each check says ok, problem, or skipped (not configured: what it would need). Doctor never starts
an embedded Redis.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Callable
from urllib.parse import urlsplit

import httpx
import redis

from core import keys
from core.config import MODEL_ROLES, Settings, env_file, env_file_warnings, load_settings
from core.exceptions import ConfigError, PhoneUnavailable, RedisUnavailable
from core.redis_conn import LOCAL_HOSTS, connect, safe_url

OK, PROBLEM, SKIPPED = "ok", "problem", "skipped"

NETWORK_TIMEOUT_SECONDS = 5.0
"""n8n, Discord and the public address each get this long: doctor answers in seconds, not after a minute."""

MODEL_TIMEOUT_SECONDS = 30.0
"""One model's cheap request, at most (ANTHROPIC_/OPENAI_TIMEOUT_SECONDS when shorter), with one retry: a hung
provider must not hold doctor for the minutes a task may wait."""

PROBE_TTL_SECONDS = 60
"""How long doctor's token waits in Redis for /health to find it."""

FIX_TWILIO = "run python main_tars.py doctor --fix-twilio"


@dataclass(frozen=True)
class Finding:
    """One line of the report: which check, ok / problem / skipped, and the sentence (a problem's ends with its
    fix)."""

    check: str
    status: str
    detail: str


def origin(url: str) -> str:
    """scheme://host[:port] of a URL whose path may hold a secret (a Discord webhook's token, n8n's path)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


def answer_text(response: httpx.Response) -> str:
    """The message of an answer: its JSON `message` when it has one, else the start of its text."""
    try:
        body = response.json()
    except ValueError:
        return " ".join(response.text.split())[:200]
    return str(body.get("message", "")) if isinstance(body, dict) else ""


def get(url: str, **kwargs) -> httpx.Response:
    """One GET without following redirects: a redirect is an answer doctor names (http:// to https://)."""
    return httpx.get(url, timeout=NETWORK_TIMEOUT_SECONDS, follow_redirects=False, **kwargs)


def unreachable(what: str, exc: httpx.HTTPError, fix: str) -> str:
    """What a failed connection says: it timed out, or could not connect (and why, by class name: no secrets)."""
    if isinstance(exc, httpx.TimeoutException):
        return f"{what} did not answer within {NETWORK_TIMEOUT_SECONDS:g} s: {fix}."
    return f"{what} cannot be reached ({exc.__class__.__name__}): {fix}."


# --- 1. the settings -------------------------------------------------------------------------------------------
SETTING_AT_START = re.compile(r"; (?=[A-Z][A-Z0-9_]{2,}\b)")
"""Where load_settings joins two problems: each starts with the setting it names (a problem's own "; set X" does
not, being lower case)."""


def config_problems(error: ConfigError) -> list[str]:
    """load_settings' one sentence, back into one line per problem, each ending with the fix (a check across
    settings names its own: "set CONFIRMATION_CODE or PLAN_APPROVAL=off")."""
    text = str(error).removesuffix(" Fix it in .env or the environment (see env.example).").removesuffix(".")
    return [f"{line}: fix it in .env or the environment (see env.example)." if " is invalid: " in line else f"{line}."
            for line in SETTING_AT_START.split(text)]


def check_settings() -> tuple[list[Finding], Settings | None]:
    found = [Finding("settings", PROBLEM, warning) for warning in env_file_warnings()]  # names TARS ignores
    try:
        settings = load_settings()
    except ConfigError as exc:
        return found + [Finding("settings", PROBLEM, line) for line in config_problems(exc)], None
    source = env_file()
    found.append(Finding("settings", OK, f"loaded from {source}" if source else
                         "loaded from the environment (no .env file here)"))
    return found, settings


# --- 2. Redis --------------------------------------------------------------------------------------------------
def check_redis(settings: Settings) -> tuple[list[Finding], redis.Redis | None]:
    url = settings.redis_url
    try:
        connection = connect(url)  # never connect_or_embed: doctor looks, it starts nothing
    except RedisUnavailable as exc:
        return [Finding("redis", PROBLEM, str(exc))], None
    return [Finding("redis", OK, f"answers at {safe_url(url)}")], connection


# --- 3. the models ---------------------------------------------------------------------------------------------
def check_models(settings: Settings) -> list[Finding]:
    from core.model_roles import check_model  # the SDKs load for this check only

    quick = settings.model_copy(update={
        "ANTHROPIC_TIMEOUT_SECONDS": min(settings.ANTHROPIC_TIMEOUT_SECONDS, MODEL_TIMEOUT_SECONDS),
        "OPENAI_TIMEOUT_SECONDS": min(settings.OPENAI_TIMEOUT_SECONDS, MODEL_TIMEOUT_SECONDS),
        "ANTHROPIC_MAX_RETRIES": min(settings.ANTHROPIC_MAX_RETRIES, 1),
        "OPENAI_MAX_RETRIES": min(settings.OPENAI_MAX_RETRIES, 1)})
    models: dict[str, tuple] = {}  # label -> (spec, the roles it serves), each model asked once
    for role in MODEL_ROLES:
        for spec in settings.models(role):
            models.setdefault(spec.label, (spec, []))[1].append(role)
    with ThreadPoolExecutor(len(models)) as pool:
        results = list(pool.map(lambda pair: check_model(quick, pair[0]), models.values()))
    found = []
    for (label, (_, roles)), result in zip(models.items(), results):
        serves = f"{label} ({', '.join(roles)})"
        found.append(Finding("models", OK, f"{serves} answers ({result['seconds']:.2f} s)") if result["answers"]
                     else Finding("models", PROBLEM, f"{serves} does not answer: {result['reason']}"))
    return found


# --- 4. n8n and Discord, reached without posting -----------------------------------------------------------------
N8N_GUIDE = "docs/N8N_BACKGROUND_TASKS_SETUP.md"


def check_n8n(settings: Settings) -> list[Finding]:
    """A GET to the POST-only webhook: n8n answers 404 either way, and its message tells a published workflow ("This
    webhook is not registered for GET requests. Did you mean to make a POST request?") from none on that path ("The
    requested webhook "GET <path>" is not registered."): n8n's webhook-not-found.error.ts. No workflow runs."""
    url = settings.secret("N8N_WEBHOOK_URL")
    if not url:
        return [Finding("n8n", SKIPPED, f"N8N_WEBHOOK_URL is not set: progress updates go to n8n once it is "
                                        f"({N8N_GUIDE}).")]
    where = f"n8n at {origin(url)}"
    if "/webhook-test/" in urlsplit(url).path:
        return [Finding("n8n", PROBLEM, f"N8N_WEBHOOK_URL is n8n's test URL (/webhook-test/), which takes one call "
                                        f"after you click 'Execute workflow': use the production URL (/webhook/...) "
                                        f"and publish the workflow ({N8N_GUIDE}).")]
    try:
        response = get(url)
    except httpx.HTTPError as exc:
        return [Finding("n8n", PROBLEM, unreachable(where, exc, "start n8n, or fix N8N_WEBHOOK_URL"))]
    said = answer_text(response)
    if response.status_code == 404 and "is not registered for GET requests" in said:
        if "POST" in said.partition("Did you mean")[2]:
            return [Finding("n8n", OK, f"{where} has the webhook, published and taking POSTs")]
        return [Finding("n8n", PROBLEM, f"{where} has the webhook, but it does not take POST ({said}): set the "
                                        f"Webhook node's HTTP Method to POST and publish the workflow again.")]
    if response.status_code == 404 and "is not registered" in said:
        return [Finding("n8n", PROBLEM, f"{where} has no published workflow on N8N_WEBHOOK_URL's path: publish "
                                        f"(activate) the TARS workflow in n8n, or copy its production URL into "
                                        f"N8N_WEBHOOK_URL ({N8N_GUIDE}).")]
    if response.status_code == 405 or response.is_success:  # not n8n, but a receiver that is there
        return [Finding("n8n", OK, f"{origin(url)} answers (HTTP {response.status_code} to a GET)")]
    return [Finding("n8n", PROBLEM, f"{where} answered HTTP {response.status_code} to a GET"
                                    f"{f' ({said})' if said else ''}: check N8N_WEBHOOK_URL ({N8N_GUIDE}).")]


def check_discord(settings: Settings) -> list[Finding]:
    """The channel webhook by its own GET (Discord's "Get Webhook with Token": no message), and the bot's token and
    channel by GET /users/@me and GET /channels/<id>."""
    webhook, token = settings.secret("DISCORD_WEBHOOK_URL"), settings.secret("DISCORD_BOT_TOKEN")
    if not webhook and not token:
        return [Finding("discord", SKIPPED, "DISCORD_WEBHOOK_URL and DISCORD_BOT_TOKEN are not set: no updates go "
                                            "to Discord (set either one, see env.example).")]
    found = []
    if webhook:
        found.append(discord_webhook(webhook))
    if token:
        found.append(discord_bot(settings, token))
    return found


def discord_webhook(url: str) -> Finding:
    try:
        response = get(url)
    except httpx.HTTPError as exc:
        return Finding("discord", PROBLEM, unreachable(f"DISCORD_WEBHOOK_URL ({origin(url)})", exc,
                                                       "check the network, or DISCORD_WEBHOOK_URL"))
    if response.is_success:
        try:
            hook = response.json()
            return Finding("discord", OK, f"the webhook {hook.get('name')!r} posts to channel {hook['channel_id']}")
        except (ValueError, KeyError, AttributeError):
            pass
    return Finding("discord", PROBLEM, f"Discord answered HTTP {response.status_code} for DISCORD_WEBHOOK_URL"
                                       f"{f' ({answer_text(response)})' if answer_text(response) else ''}: the "
                                       f"webhook was deleted or its URL is cut; copy it again (channel settings, "
                                       f"Integrations, Webhooks) into DISCORD_WEBHOOK_URL.")


def discord_bot(settings: Settings, token: str) -> Finding:
    api, auth = settings.DISCORD_API_URL.rstrip("/"), {"Authorization": f"Bot {token}"}
    try:
        me = get(f"{api}/users/@me", headers=auth)
        if me.status_code == 401:
            return Finding("discord", PROBLEM, "Discord refuses DISCORD_BOT_TOKEN: reset the bot's token (Developer "
                                               "Portal, your application, Bot, Reset Token) and set it in .env.")
        channel = get(f"{api}/channels/{settings.DISCORD_CHANNEL_ID}", headers=auth) if me.is_success else me
    except httpx.HTTPError as exc:
        return Finding("discord", PROBLEM, unreachable(f"Discord's API ({origin(api)})", exc,
                                                       "check the network, or DISCORD_API_URL"))
    if not me.is_success:
        return Finding("discord", PROBLEM, f"Discord answered HTTP {me.status_code} to the bot "
                                           f"({answer_text(me)}): check DISCORD_BOT_TOKEN and DISCORD_API_URL.")
    if channel.status_code in (403, 404):
        return Finding("discord", PROBLEM, f"The bot cannot see channel {settings.DISCORD_CHANNEL_ID} "
                                           f"({answer_text(channel)}): invite it to that server with View Channel, "
                                           f"or fix DISCORD_CHANNEL_ID (right-click the channel, Copy Channel ID).")
    if not channel.is_success:
        return Finding("discord", PROBLEM, f"Discord answered HTTP {channel.status_code} for channel "
                                           f"{settings.DISCORD_CHANNEL_ID} ({answer_text(channel)}): try again later.")
    name = channel.json().get("name")
    return Finding("discord", OK, f"the bot {me.json().get('username')!r} sees #{name} "
                                  f"({settings.DISCORD_CHANNEL_ID})")


# --- 5. PUBLIC_BASE_URL reaches this server ------------------------------------------------------------------------
TUNNEL_ERRORS = {  # what a tunnel in front of TARS answers when it, or TARS behind it, is down
    "ERR_NGROK_3200": "the ngrok tunnel is offline: start it (ngrok http PORT) with the address of PUBLIC_BASE_URL",
    "ERR_NGROK_8012": "ngrok runs, but nothing answers on the port it forwards to: start TARS (python main_tars.py "
                      "up), or point ngrok at PORT",
}


def check_public_url(settings: Settings, connection: redis.Redis | None) -> list[Finding]:
    base = settings.PUBLIC_BASE_URL
    if not base:
        if settings.TWILIO_PHONE_NUMBER or settings.TWILIO_AUTH_TOKEN:
            return [Finding("public_url", PROBLEM, "PUBLIC_BASE_URL is not set, so Twilio cannot reach TARS: set it "
                                                   "to the https:// address of your tunnel to this server.")]
        return [Finding("public_url", SKIPPED, "PUBLIC_BASE_URL is not set: needed for phone calls (the https:// "
                                               "address Twilio reaches this server at).")]
    if connection is None:
        return [Finding("public_url", SKIPPED, "needs Redis to prove the server at PUBLIC_BASE_URL is this one "
                                               "(see the Redis line).")]
    token = secrets.token_urlsafe(16)
    connection.set(keys.doctor_probe(token), "1", ex=PROBE_TTL_SECONDS)
    try:
        return [public_url_finding(settings, base, token)]
    finally:
        connection.delete(keys.doctor_probe(token))  # unreached: /health takes it itself when found


def public_url_finding(settings: Settings, base: str, token: str) -> Finding:
    here = f"http://{settings.HOST}:{settings.PORT}"
    try:
        response = get(f"{base}/health", params={"probe": token})
    except httpx.HTTPError as exc:
        if isinstance(exc, httpx.ConnectError) and "SSL" in str(exc) and base.startswith("https://"):
            return Finding("public_url", PROBLEM, f"{base} does not speak https:// ({exc.__class__.__name__}): use "
                                                  f"your tunnel's https:// address in PUBLIC_BASE_URL.")
        return Finding("public_url", PROBLEM, unreachable(f"{base}/health", exc, "is the tunnel (ngrok, cloudflared) "
                                                          f"running and forwarding to {here}, and TARS started? "
                                                          f"Else fix PUBLIC_BASE_URL"))
    tunnel = next((fix for code, fix in TUNNEL_ERRORS.items()
                   if code in response.headers.get("ngrok-error-code", "") or code in response.text), None)
    if tunnel:
        return Finding("public_url", PROBLEM, f"{base}: {tunnel}.")
    if response.is_redirect:
        return Finding("public_url", PROBLEM, f"{base}/health redirects to {response.headers.get('location')}: set "
                                              f"PUBLIC_BASE_URL to the address it redirects to (Twilio does not "
                                              f"follow redirects for its POSTs).")
    try:
        health = response.json()
    except ValueError:
        health = None
    if not (isinstance(health, dict) and "redis" in health and "status" in health):
        return Finding("public_url", PROBLEM, f"Another server answers at {base} (HTTP {response.status_code} for "
                                              f"/health, not TARS's answer): point the tunnel at this server "
                                              f"({here}), or fix PUBLIC_BASE_URL.")
    if health.get("status") != "ok":
        return Finding("public_url", PROBLEM, f"The TARS at {base} cannot reach its Redis (its /health says "
                                              f"{health.get('status')!r}): start that Redis, or restart TARS.")
    if health.get("probe") is not True:
        return Finding("public_url", PROBLEM, f"Another TARS answers at {base} (it does not share this one's "
                                              f"Redis, {safe_url(settings.redis_url)}): point the tunnel at this "
                                              f"server ({here}), or give both the same REDIS_URL.")
    if base.startswith("http://") and (urlsplit(base).hostname or "") not in LOCAL_HOSTS:
        return Finding("public_url", PROBLEM, f"{base} reaches this TARS, but over http://: Twilio opens the voice "
                                              f"relay only over wss://; use the tunnel's https:// address.")
    return Finding("public_url", OK, f"{base} reaches this TARS ({response.elapsed.total_seconds():.2f} s)")


# --- 6. Twilio -----------------------------------------------------------------------------------------------------
def check_twilio(settings: Settings, fix: bool) -> list[Finding]:
    from communication.owner_phone import SMS_PATH
    from communication.twilio_media_streams import VOICE_PATH
    from communication.twilio_rest import TwilioRest  # the twilio SDK loads for this check only

    if not (settings.TWILIO_ACCOUNT_SID or settings.TWILIO_PHONE_NUMBER):
        return [Finding("twilio", SKIPPED, "TWILIO_ACCOUNT_SID and TWILIO_PHONE_NUMBER are not set: set them (and "
                                           "TWILIO_AUTH_TOKEN) for doctor to check your Twilio number and for TARS "
                                           "to call and text you.")]
    try:
        rest = TwilioRest(settings)
        account = rest.account_name()
        number = rest.phone_number()
    except PhoneUnavailable as exc:
        return [Finding("twilio", PROBLEM, str(exc))]
    found = [Finding("twilio", OK, f"{rest.credentials} work (account {account!r})")]
    voice, sms = settings.PUBLIC_BASE_URL + VOICE_PATH, settings.PUBLIC_BASE_URL + SMS_PATH
    wrong = [f"{what} URL is {shown(now, method)} instead of {want} (POST)" for what, now, method, want in
             (("voice", number.voice_url, number.voice_method, voice), ("SMS", number.sms_url, number.sms_method, sms))
             if (now, method) != (want, "POST")]
    if not wrong:
        found.append(Finding("twilio", OK, f"{number.phone_number} sends calls to {voice} and texts to {sms}"))
    elif not fix:
        found.append(Finding("twilio", PROBLEM, f"{number.phone_number}'s {' and its '.join(wrong)}: {FIX_TWILIO}."))
    else:
        try:
            pointed = rest.point_number(number.sid, voice, sms)
        except PhoneUnavailable as exc:
            return found + [Finding("twilio", PROBLEM, str(exc))]
        found.append(Finding("twilio", OK, f"{pointed.phone_number} now sends calls to {pointed.voice_url} (was "
                                           f"{shown(number.voice_url, number.voice_method)}) and texts to "
                                           f"{pointed.sms_url} (was {shown(number.sms_url, number.sms_method)})"))
    return found


def shown(url: str, method: str) -> str:
    """A webhook of the number as the owner would set it in Twilio's console: its URL and method."""
    return f"{url} ({method})" if url else "unset"


# --- the whole check -----------------------------------------------------------------------------------------------
CHECKS = ("settings", "redis", "models", "n8n", "discord", "public_url", "twilio")


def examine(fix_twilio: bool = False) -> list[Finding]:
    """Every check, in CHECKS' order; those after Redis at once (each waits on the network)."""
    found, settings = check_settings()
    if settings is None:
        return found + [Finding(name, SKIPPED, "needs settings that load (see the settings lines).")
                        for name in CHECKS[1:]]
    reached, connection = check_redis(settings)
    found += reached
    checks: list[Callable[[], list[Finding]]] = [
        lambda: check_models(settings), lambda: check_n8n(settings), lambda: check_discord(settings),
        lambda: check_public_url(settings, connection), lambda: check_twilio(settings, fix_twilio)]
    try:
        with ThreadPoolExecutor(len(checks)) as pool:
            for findings in pool.map(lambda check: check(), checks):
                found += findings
    finally:
        if connection is not None:
            connection.close()
    return found


def report(found: list[Finding], seconds: float) -> str:
    lines = [f"{f.status:<8} {f.check:<11} {f.detail}" for f in found]
    problems = sum(f.status == PROBLEM for f in found)
    lines.append(f"{problems} problem{'' if problems == 1 else 's'} ({seconds:.1f} s): fix each as its line says, then "
                 f"run python main_tars.py doctor again." if problems else
                 f"No problems ({seconds:.1f} s).")
    return "\n".join(lines)


def run_doctor(fix_twilio: bool = False, as_json: bool = False) -> int:
    """`doctor [--fix-twilio] [--json]`: exit 1 when any check found a problem."""
    started = time.monotonic()
    found = examine(fix_twilio)
    print(json.dumps([asdict(f) for f in found], indent=2) if as_json else report(found, time.monotonic() - started))
    return 1 if any(f.status == PROBLEM for f in found) else 0
