"""The console phone (communication/console_phone.py) against a real local WebSocket server playing TARS.

FakeTars is a `websockets` asyncio server on a free port, in a thread of its own: it checks the
X-Twilio-Signature of each handshake with twilio's RequestValidator over the public wss:// URL, then
runs a script per call (expect setup, expect prompts, stream text tokens, push alerts, send end).
The console itself runs as `python main_tars.py call` in a real subprocess with piped stdin.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from http import HTTPStatus
from pathlib import Path

import pytest
from twilio.request_validator import RequestValidator
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from communication.console_phone import (DEFAULT_CALLEE, SIGNATURE_HEADER, RelayClient, RelayClosed,
                                         RelayConnectError, local_relay_url, public_relay_url, sign)
from communication.relay_protocol import End, TarsMessage, Text, encode
from core.redis_conn import free_port

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "twilio-auth-token-0123456789abcdef"
PUBLIC_BASE = "https://tars.example.com"
PUBLIC_RELAY = "wss://tars.example.com/relay"
OWNER = "+15551234567"
OTHER_OWNER = "+447700900123"
LANG = "en-GB"
WAIT = 15  # seconds any single expectation may take


class Peer:
    """TARS's end of one call, for a script."""

    def __init__(self, ws, server: FakeTars):
        self.ws = ws
        self.server = server

    async def expect(self, kind: str | None = None) -> dict:
        message = json.loads(await asyncio.wait_for(self.ws.recv(), WAIT))
        self.server.received.append(message)
        if kind is not None:
            assert message["type"] == kind, message
        return message

    async def send(self, message: TarsMessage) -> None:
        await self.ws.send(encode(message))

    async def text(self, *tokens: str, delay: float = 0.0, last: bool = True) -> None:
        """Stream tokens; the final one carries last=true (unless last=False)."""
        for n, token in enumerate(tokens):
            await self.send(Text(token, last=last and n == len(tokens) - 1))
            if delay:
                await asyncio.sleep(delay)

    async def go(self, name: str) -> None:
        """Until the test calls server.go(name)."""
        assert await asyncio.to_thread(self.server.signal(name).wait, WAIT), f"the test never said go({name})"

    async def until_closed(self) -> None:
        """Until the caller hangs up; anything sent meanwhile is recorded."""
        try:
            while True:
                await self.expect()
        except ConnectionClosed:
            pass


class FakeTars:
    """A real WebSocket server on 127.0.0.1 playing TARS's /relay, one scripted call per connection."""

    def __init__(self, script, *, auth_token: str | None = TOKEN, public_url: str = PUBLIC_RELAY,
                 port: int | None = None):
        self.script = script
        self.auth_token = auth_token
        self.public_url = public_url
        self.port = port or free_port()
        self.url = f"ws://127.0.0.1:{self.port}/relay"
        self.handshakes: list[dict] = []  # {"path", "signature", "valid"}
        self.received: list[dict] = []
        self.close_codes: list[int | None] = []
        self.errors: list[BaseException] = []
        self.calls_over = threading.Event()
        self._signals: dict[str, threading.Event] = {}
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "the fake TARS did not start"

    def signal(self, name: str) -> threading.Event:
        return self._signals.setdefault(name, threading.Event())

    def go(self, name: str) -> None:
        self.signal(name).set()

    def of_type(self, kind: str) -> list[dict]:
        return [m for m in self.received if m["type"] == kind]

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        assert not self.errors, self.errors

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with serve(self._call, "127.0.0.1", self.port, process_request=self._check, compression=None):
            self._ready.set()
            await self._stop.wait()

    def _check(self, connection, request):
        signature = request.headers.get(SIGNATURE_HEADER)
        valid = (self.auth_token is None
                 or bool(signature) and RequestValidator(self.auth_token).validate(self.public_url, {}, signature))
        self.handshakes.append({"path": request.path, "signature": signature, "valid": valid})
        if request.path != "/relay":
            return connection.respond(HTTPStatus.NOT_FOUND, "no such endpoint\n")
        if not valid:
            return connection.respond(HTTPStatus.FORBIDDEN, "invalid X-Twilio-Signature\n")
        return None

    async def _call(self, ws) -> None:
        try:
            await self.script(Peer(ws, self))
        except ConnectionClosed:
            pass
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.errors.append(exc)
        finally:
            await ws.close()
            self.close_codes.append(ws.close_code)
            self.calls_over.set()


@pytest.fixture
def make_tars():
    servers: list[FakeTars] = []

    def make(script, **kwargs) -> FakeTars:
        servers.append(FakeTars(script, **kwargs))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def client_for(server: FakeTars, **kwargs) -> RelayClient:
    options = {"auth_token": TOKEN, "public_url": PUBLIC_RELAY, "caller": OWNER, "lang": LANG}
    return RelayClient(server.url, **{**options, **kwargs})


# --- URLs -------------------------------------------------------------------------------------------

def test_the_public_relay_url_is_the_base_url_as_wss_plus_relay():
    assert public_relay_url("https://tars.example.com") == PUBLIC_RELAY
    assert public_relay_url("https://abc.ngrok.app/") == "wss://abc.ngrok.app/relay"
    assert public_relay_url("http://10.0.0.5:8000") == "wss://10.0.0.5:8000/relay"  # Twilio only opens wss://
    assert public_relay_url("https://example.com/tars/") == "wss://example.com/tars/relay"
    assert public_relay_url(None) is None and public_relay_url("") is None
    assert local_relay_url("127.0.0.1", 8000) == "ws://127.0.0.1:8000/relay"
    assert local_relay_url("0.0.0.0", 9000) == "ws://127.0.0.1:9000/relay"
    assert local_relay_url("::", 9000) == "ws://[::1]:9000/relay"


# --- RelayClient against the fake TARS ------------------------------------------------------------------

async def hang_around(peer: Peer) -> None:
    await peer.expect("setup")
    await peer.until_closed()


def test_the_handshake_signature_validates_for_the_public_wss_url(make_tars):
    server = make_tars(hang_around)

    async def call():
        async with client_for(server) as client:
            await client.setup()
            return client.signature

    signature = run(call())
    assert server.calls_over.wait(WAIT)
    [handshake] = server.handshakes
    assert handshake == {"path": "/relay", "signature": signature, "valid": True}
    validator = RequestValidator(TOKEN)
    assert validator.validate(PUBLIC_RELAY, {}, signature)
    assert signature == sign(TOKEN, PUBLIC_RELAY)
    assert not validator.validate(server.url, {}, signature)  # the public URL is signed, not the one dialled
    assert not RequestValidator("another-token").validate(PUBLIC_RELAY, {}, signature)
    assert server.close_codes == [1000]


@pytest.mark.parametrize("options", [{"auth_token": "the-wrong-token"},
                                     {"public_url": "wss://elsewhere.example/relay"},
                                     {"public_url": None}, {"auth_token": None}],
                         ids=["wrong-token", "wrong-public-url", "local-url-signed", "unsigned"])
def test_a_bad_signature_is_refused_with_the_fix_named(make_tars, options):
    server = make_tars(hang_around)
    with pytest.raises(RelayConnectError) as caught:
        run(client_for(server, **options).connect())
    message = str(caught.value)
    assert "HTTP 403" in message and "TWILIO_AUTH_TOKEN" in message and "PUBLIC_BASE_URL" in message
    assert "\n" not in message
    assert [h["valid"] for h in server.handshakes] == [False]
    assert (server.handshakes[0]["signature"] is None) == (options.get("auth_token", TOKEN) is None)


def test_without_a_token_no_signature_is_sent(make_tars):
    server = make_tars(hang_around, auth_token=None)

    async def call():
        async with client_for(server, auth_token=None) as client:
            await client.setup()

    run(call())
    assert server.handshakes == [{"path": "/relay", "signature": None, "valid": True}]


def test_setup_is_shaped_like_twilios(make_tars):
    server = make_tars(hang_around)

    async def call():
        async with client_for(server) as client:
            return await client.setup(), await client.setup(ref="x")

    first, second = run(call())
    assert server.calls_over.wait(WAIT)
    setup = server.received[0]
    assert setup == first
    assert {"type", "sessionId", "accountSid", "callSid", "from", "to", "direction", "callStatus",
            "customParameters"} <= set(setup)
    assert setup["type"] == "setup"
    assert re.fullmatch(r"VX[0-9a-f]{32}", setup["sessionId"])
    assert re.fullmatch(r"AC[0-9a-f]{32}", setup["accountSid"])
    assert re.fullmatch(r"CA[0-9a-f]{32}", setup["callSid"])
    assert setup["from"] == OWNER and setup["to"] == DEFAULT_CALLEE
    assert re.fullmatch(r"\+[1-9]\d{6,14}", setup["to"])
    assert setup["direction"] == "inbound" and setup["callStatus"] == "RINGING"
    assert setup["customParameters"] == {}
    assert second["callSid"] != first["callSid"] and second["customParameters"] == {"ref": "x"}  # random each time


def test_say_returns_the_joined_tokens_and_when_the_first_came(make_tars):
    async def script(peer):
        await peer.expect("setup")
        await peer.expect("prompt")
        await asyncio.sleep(0.2)
        await peer.text("Three ", "tasks ", "are running", ", sir.", delay=0.05)
        await peer.expect("prompt")
        await peer.text("", "Done.")
        await peer.until_closed()

    server = make_tars(script)

    async def call():
        async with client_for(server) as client:
            await client.setup()
            return await client.say("What is running?"), await client.say("Thanks"), client.alerts

    first, second, alerts = run(call())
    assert first == "Three tasks are running, sir."
    assert isinstance(first, str) and first.tokens == ["Three ", "tasks ", "are running", ", sir."]
    assert first.complete and not first.interrupted
    assert 0.15 < first.first_token_seconds < first.seconds
    assert first.seconds - first.first_token_seconds >= 0.1  # four tokens 50 ms apart
    assert second == "Done." and second.tokens == ["", "Done."]
    assert alerts == []
    assert server.of_type("prompt") == [
        {"type": "prompt", "voicePrompt": "What is running?", "lang": LANG, "last": True},
        {"type": "prompt", "voicePrompt": "Thanks", "lang": LANG, "last": True}]


def test_a_message_pushed_while_no_prompt_is_pending_is_an_alert(make_tars):
    async def script(peer):
        await peer.expect("setup")
        await peer.text("Task a7f3c1 ", "is complete.", delay=0.02)
        await peer.expect("prompt")
        await peer.text("You're welcome.")
        await peer.text("Second alert.")
        await peer.until_closed()

    server = make_tars(script)

    async def call():
        async with client_for(server) as client:
            await client.setup()
            alert = await client.next_alert(WAIT)
            first_token = await client.receive(WAIT)
            reply = await client.say("Thank you")
            second = await client.next_alert(WAIT)
            return alert, first_token, reply, second, client.alerts

    alert, first_token, reply, second, alerts = run(call())
    assert alert == "Task a7f3c1 is complete."
    assert first_token == {"type": "text", "token": "Task a7f3c1 ", "last": False}
    assert reply == "You're welcome."
    assert second == "Second alert."
    assert alerts == ["Task a7f3c1 is complete.", "Second alert."]


def test_dtmf_is_one_message_per_key_then_hash(make_tars):
    async def script(peer):
        await peer.expect("setup")
        await peer.until_closed()

    server = make_tars(script)

    async def call():
        async with client_for(server) as client:
            await client.setup()
            await client.dtmf("6283")
            await client.dtmf("9#")

    run(call())
    assert server.calls_over.wait(WAIT)
    assert [m["digit"] for m in server.of_type("dtmf")] == ["6", "2", "8", "3", "#", "9", "#"]
    assert server.of_type("dtmf")[0] == {"type": "dtmf", "digit": "6"}


def test_interrupt_carries_what_was_heard_so_far(make_tars):
    async def script(peer):
        await peer.expect("setup")
        await peer.expect("prompt")
        await peer.text("Once upon ", "a time", last=False)
        await peer.expect("interrupt")
        await peer.until_closed()

    server = make_tars(script)

    async def call():
        async with client_for(server) as client:
            await client.setup()
            await client.prompt("Tell me a story")
            await client.first_token(WAIT)
            while client.heard_so_far != "Once upon a time":
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
            interrupted = await client.interrupt()
            return interrupted, await client.reply(1)

    interrupted, reply = run(call())
    assert interrupted == reply == "Once upon a time" and reply.interrupted and not reply.complete
    assert server.calls_over.wait(WAIT)
    [message] = server.of_type("interrupt")
    assert message["utteranceUntilInterrupt"] == "Once upon a time"
    assert re.fullmatch(r"\d+", message["durationUntilInterruptMs"])
    assert int(message["durationUntilInterruptMs"]) >= 100


def test_end_is_received_and_the_call_is_over(make_tars):
    async def script(peer):
        await peer.expect("setup")
        await peer.send(End(json.dumps({"reason": "goodbye"})))

    server = make_tars(script)

    async def call():
        async with client_for(server) as client:
            await client.setup()
            message = await client.receive(WAIT)
            await asyncio.wait_for(client.wait_over(), WAIT)
            return message, client.ended

    message, ended = run(call())
    assert message == ended == {"type": "end", "handoffData": '{"reason": "goodbye"}'}


def test_say_raises_when_tars_hangs_up_mid_reply(make_tars):
    async def script(peer):
        await peer.expect("setup")
        await peer.expect("prompt")
        await peer.text("I was saying ", last=False)
        await peer.ws.close(1011, "crashed")

    server = make_tars(script)

    async def call():
        async with client_for(server) as client:
            await client.setup()
            with pytest.raises(RelayClosed) as caught:
                await client.say("hello")
            with pytest.raises(RelayClosed):
                await client.receive(WAIT)
            return caught.value

    error = run(call())
    assert error.reply == "I was saying " and error.reply.closed and not error.reply.complete
    assert "1011" in str(error) and "crashed" in str(error)


def test_nothing_listening_is_a_connect_error_naming_the_server():
    url = f"ws://127.0.0.1:{free_port()}/relay"
    with pytest.raises(RelayConnectError) as caught:
        run(RelayClient(url, caller=OWNER).connect())
    assert "connection refused" in str(caught.value) and "python main_tars.py" in str(caught.value)


# --- python main_tars.py call ---------------------------------------------------------------------------

class Console:
    """`python main_tars.py call ...` as a real process: stdin piped, stdout/stderr collected as they come."""

    def __init__(self, env: dict, *args: str, stdin=subprocess.PIPE):
        self.process = subprocess.Popen([sys.executable, str(ROOT / "main_tars.py"), "call", *args], cwd=ROOT,
                                        env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.cond = threading.Condition()
        self.buffers = {"out": b"", "err": b""}
        self.pumps = [threading.Thread(target=self._pump, args=(name, stream), daemon=True)
                      for name, stream in (("out", self.process.stdout), ("err", self.process.stderr))]
        for pump in self.pumps:
            pump.start()

    def _pump(self, name, stream):
        while chunk := os.read(stream.fileno(), 4096):
            with self.cond:
                self.buffers[name] += chunk
                self.cond.notify_all()

    @property
    def stdout(self) -> str:
        with self.cond:
            return self.buffers["out"].decode()

    @property
    def stderr(self) -> str:
        with self.cond:
            return self.buffers["err"].decode()

    def type(self, *lines: str) -> None:
        self.process.stdin.write("".join(line + "\n" for line in lines).encode())
        self.process.stdin.flush()

    def hang_up(self) -> None:
        self.process.stdin.close()

    def wait_for(self, text: str, timeout: float = WAIT) -> str:
        deadline = time.monotonic() + timeout
        with self.cond:
            while text not in self.buffers["out"].decode():
                left = deadline - time.monotonic()
                assert left > 0 and self.process.poll() is None or text in self.buffers["out"].decode(), (
                    f"{text!r} never printed; stdout={self.stdout!r} stderr={self.stderr!r}")
                self.cond.wait(min(left, 0.1) if left > 0 else 0.1)
        return self.stdout

    def wait(self, timeout: float = WAIT) -> int:
        code = self.process.wait(timeout)
        for pump in self.pumps:  # the pipes are drained
            pump.join(WAIT)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def phone_env():
    """The environment of the console process: no .env, no stray voice settings of the developer's."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TWILIO_", "PUBLIC_", "OWNER_", "VOICE_", "WELCOME_")) and k not in ("HOST", "PORT")}
    env.update(TARS_ENV_FILE=os.devnull, TWILIO_AUTH_TOKEN=TOKEN, PUBLIC_BASE_URL=PUBLIC_BASE,
               OWNER_PHONE_NUMBERS=f"{OWNER},{OTHER_OWNER}", VOICE_LANGUAGE=LANG,
               WELCOME_GREETING="TARS here, sir.", PYTHONUNBUFFERED="1")
    return env


@pytest.fixture
def console(phone_env):
    started: list[Console] = []

    def start(*args: str, stdin=subprocess.PIPE, **overrides: str) -> Console:
        started.append(Console({**phone_env, **overrides}, *args, stdin=stdin))
        return started[-1]

    yield start
    for process in started:
        process.kill()


def one_error_line(process: Console) -> str:
    assert process.wait() == 1, (process.stdout, process.stderr)
    assert "Traceback" not in process.stderr
    lines = process.stderr.splitlines()
    assert len(lines) == 1, process.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_a_call_streams_tokens_as_they_arrive_prints_alerts_and_sends_keys(make_tars, console):
    async def script(peer):
        await peer.expect("setup")
        await peer.expect("prompt")
        await peer.text("Good ", "evening, ", "sir", last=False)
        await peer.go("partial-seen")
        await peer.text(". All quiet.")
        await peer.go("reply-seen")
        await peer.text("Task a7f3c1 ", "is complete.")
        for _ in "6283#":
            await peer.expect("dtmf")
        await peer.until_closed()

    server = make_tars(script)
    call = console("--url", server.url)
    call.wait_for("Calling " + server.url)
    call.type("hello TARS")
    out = call.wait_for("TARS: Good evening, sir")
    assert "All quiet" not in out and out.endswith("TARS: Good evening, sir")  # printed before the rest arrived
    server.go("partial-seen")
    call.wait_for("TARS: Good evening, sir. All quiet.\n")
    server.go("reply-seen")
    call.wait_for("[TARS] Task a7f3c1 is complete.\n")
    call.type("#6283")
    deadline = time.monotonic() + WAIT
    while len(server.of_type("dtmf")) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    call.hang_up()
    assert call.wait() == 0, call.stderr
    assert call.stderr == ""
    assert server.calls_over.wait(WAIT)
    assert server.close_codes == [1000]  # a clean close on EOF
    assert [h["valid"] for h in server.handshakes] == [True]
    setup, prompt = server.received[:2]
    assert setup["type"] == "setup" and setup["from"] == OWNER and setup["direction"] == "inbound"
    assert prompt == {"type": "prompt", "voicePrompt": "hello TARS", "lang": LANG, "last": True}
    assert [m["digit"] for m in server.of_type("dtmf")] == list("6283#")
    assert call.stdout.splitlines() == [
        f"Calling {server.url} from {OWNER}. Type to talk; #1234 presses keys; /interrupt cuts in; Ctrl+D hangs up.",
        "TARS: TARS here, sir.",
        "TARS: Good evening, sir. All quiet.",
        "[TARS] Task a7f3c1 is complete."]


def test_piped_lines_are_taken_in_order_each_prompt_after_the_last_reply(make_tars, console):
    async def script(peer):
        await peer.expect("setup")
        await peer.expect("prompt")
        await peer.text("One ", "moment", delay=0.1)
        for _ in "12#":
            await peer.expect("dtmf")
        await peer.expect("prompt")
        await peer.text("Two.")
        await peer.until_closed()

    server = make_tars(script)
    call = console("--url", server.url, "--from", OTHER_OWNER)
    call.type("first question", "#12", "", "second question")
    call.hang_up()
    assert call.wait() == 0, call.stderr
    assert call.stderr == ""
    assert server.calls_over.wait(WAIT)
    assert [m["type"] for m in server.received] == ["setup", "prompt", "dtmf", "dtmf", "dtmf", "prompt"]
    assert server.received[0]["from"] == OTHER_OWNER
    assert [m["voicePrompt"] for m in server.of_type("prompt")] == ["first question", "second question"]
    assert call.stdout.splitlines()[2:] == ["TARS: One moment", "TARS: Two."]
    assert server.close_codes == [1000]


def test_the_interrupt_line_sends_what_was_printed_of_the_reply(make_tars, console):
    async def script(peer):
        await peer.expect("setup")
        await peer.expect("prompt")
        await peer.text("Once upon ", "a time", last=False)
        await peer.expect("interrupt")
        await peer.expect("prompt")
        await peer.text("Stopping.")
        await peer.until_closed()

    server = make_tars(script)
    call = console("--url", server.url)
    call.type("tell me a story", "/interrupt", "stop")
    call.hang_up()
    assert call.wait() == 0, call.stderr
    assert server.calls_over.wait(WAIT)
    [interrupt] = server.of_type("interrupt")
    assert interrupt["utteranceUntilInterrupt"] in ("Once upon ", "Once upon a time")
    assert call.stdout.split("TARS: ", 2)[2].startswith(interrupt["utteranceUntilInterrupt"])
    assert re.fullmatch(r"\d+", interrupt["durationUntilInterruptMs"])
    assert "(interrupted)" in call.stdout and "TARS: Stopping.\n" in call.stdout


def test_ctrl_d_at_a_terminal_hangs_up_at_once_even_mid_reply(make_tars, console):
    async def script(peer):
        await peer.expect("setup")
        await peer.expect("prompt")
        await peer.text("Let me think", last=False)
        await peer.until_closed()  # never finishes the reply

    server = make_tars(script)
    controller, terminal = os.openpty()
    try:
        call = console("--url", server.url, stdin=terminal)
        call.wait_for("Ctrl+D hangs up.")
        os.write(controller, b"hello\n")
        call.wait_for("TARS: Let me think")
        os.write(controller, b"\x04")  # Ctrl+D at the start of a line: EOF
        assert call.wait() == 0, call.stderr
    finally:
        os.close(terminal)
        os.close(controller)
    assert call.stderr == ""
    assert server.calls_over.wait(WAIT) and server.close_codes == [1000]
    assert [m["type"] for m in server.received] == ["setup", "prompt"]


def test_end_from_tars_is_printed_and_exits_0_while_stdin_is_still_open(make_tars, console):
    async def script(peer):
        await peer.expect("setup")
        await peer.expect("prompt")
        await peer.text("Goodbye, sir.")
        await peer.send(End("caller said goodbye"))

    server = make_tars(script)
    call = console("--url", server.url)
    call.type("goodbye")
    assert call.wait() == 0, call.stderr
    assert call.stderr == ""
    assert call.stdout.splitlines()[-2:] == ["TARS: Goodbye, sir.", "[TARS ended the call: caller said goodbye]"]


def test_the_default_url_is_host_and_port_and_the_default_caller_the_first_owner(make_tars, console):
    server = make_tars(hang_around)
    call = console(HOST="0.0.0.0", PORT=str(server.port))
    call.wait_for(f"Calling ws://127.0.0.1:{server.port}/relay from {OWNER}.")
    call.hang_up()
    assert call.wait() == 0, call.stderr
    assert server.calls_over.wait(WAIT)
    assert server.received[0]["from"] == OWNER
    assert [h["valid"] for h in server.handshakes] == [True]


def test_a_refused_connection_exits_1_with_one_line(console):
    call = console("--url", f"ws://127.0.0.1:{free_port()}/relay")
    line = one_error_line(call)
    assert "python main_tars.py" in line and "connection refused" in line
    assert call.stdout == ""


def test_a_rejected_handshake_exits_1_with_one_line_naming_the_settings(make_tars, console):
    server = make_tars(hang_around)
    call = console("--url", server.url, TWILIO_AUTH_TOKEN="not-the-servers-token")
    line = one_error_line(call)
    assert "HTTP 403" in line and "TWILIO_AUTH_TOKEN" in line and "PUBLIC_BASE_URL" in line
    assert PUBLIC_RELAY in line
    assert call.stdout == ""
    assert [h["valid"] for h in server.handshakes] == [False]


def test_a_call_dropped_without_end_exits_1(make_tars, console):
    async def script(peer):
        await peer.expect("setup")
        await peer.expect("prompt")
        await peer.text("I am about to ", last=False)
        await peer.ws.close(1011, "internal error")

    server = make_tars(script)
    call = console("--url", server.url)
    call.type("hello")
    line = one_error_line(call)
    assert "without an end message" in line and "1011" in line
    assert "TARS: I am about to" in call.stdout


def test_a_from_that_is_not_e164_exits_1_with_one_line(console):
    line = one_error_line(console("--from", "5551234"))
    assert "E.164" in line
