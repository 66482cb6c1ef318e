"""What the two model-API fakes share (tests/fakes/scripted_server.py), told once for each through its real SDK."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import anthropic
import openai
import pytest

from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.scripted_server import ScriptedServer, hang, repeat


@dataclass
class Api:
    fake: ScriptedServer
    ask: Callable[[], Any]  # one request as a client under test sends it (no retries, 10 s timeout)
    disconnected: type[Exception]  # what that SDK raises when the server closes without an answer


def through_anthropic(fake: FakeAnthropic) -> Api:
    c = anthropic.Anthropic(api_key="test", base_url=fake.base_url, max_retries=0, timeout=10)
    return Api(fake, lambda: c.messages.create(model="claude-sonnet-4-6", max_tokens=1024,
                                               messages=[{"role": "user", "content": "do the thing"}]),
               anthropic.APIConnectionError)


def through_openai(fake: FakeOpenAI) -> Api:
    c = openai.OpenAI(api_key="test", base_url=fake.base_url, max_retries=0, timeout=10)
    return Api(fake, lambda: c.chat.completions.create(model="qwen2.5-coder:32b",
                                                       messages=[{"role": "user", "content": "do the thing"}]),
               openai.APIConnectionError)


@pytest.fixture(params=[(FakeAnthropic, through_anthropic), (FakeOpenAI, through_openai)], ids=["anthropic", "openai"])
def api(request):
    fake_type, connect = request.param
    with fake_type() as f:
        yield connect(f)
    assert not f.errors, f.errors


def test_wait_for_requests_blocks_and_times_out(api):
    api.fake.script([repeat("x")])
    got = []
    waiter = threading.Thread(target=lambda: got.append(api.fake.wait_for_requests(2, timeout=5)))
    waiter.start()
    api.ask()
    api.ask()
    waiter.join(5)
    assert got and len(got[0]) == 2
    with pytest.raises(TimeoutError):
        api.fake.wait_for_requests(3, timeout=0.05)


def test_stop_ends_hanging_handlers_quickly(api):
    api.fake.script([hang(30)])
    errs = []

    def run():
        try:
            api.ask()
        except Exception as e:  # noqa: BLE001
            errs.append(e)

    t = threading.Thread(target=run)
    t.start()
    api.fake.wait_for_requests(1)
    t0 = time.monotonic()
    api.fake.stop()
    t.join(5)
    assert not t.is_alive() and time.monotonic() - t0 < 3
    assert isinstance(errs[0], api.disconnected)
