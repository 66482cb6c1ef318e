"""Secrets never leave the process: not in logs, Discord messages, task results, or what the model reads."""

from __future__ import annotations

import json
import logging

from core.scrub import REDACTED, Scrubber, install_log_scrubbing
from tests.conftest import TEST_API_KEY, TEST_CODE, TEST_WEBHOOK_SECRET
from tests.fakes.anthropic_api import bash, text

SECRETS = (TEST_API_KEY, TEST_WEBHOOK_SECRET, TEST_CODE)


def test_a_task_that_prints_every_secret_leaks_none_of_them(tasks, fake_api, start_worker, n8n, cli):
    leak = " ".join(SECRETS)
    fake_api.script([bash(f"echo key {leak}", text=f"I found {leak}"),
                     text(f"Done. By the way the key is {TEST_API_KEY} and the code {TEST_CODE}.")])
    task_id = tasks.start(f"Print the secrets {TEST_WEBHOOK_SECRET}", project_path="leaky", verbose_updates=True)
    worker = start_worker("--burst", N8N_WEBHOOK_URL=n8n.url())
    assert worker.wait(timeout=90) == 0, worker.log
    status = json.loads(cli("task", "status", task_id, "--json").stdout)
    assert status["status"] == "complete"

    outside = {
        "worker log": worker.log,
        "Discord/n8n bodies": json.dumps(n8n.bodies()),
        "task status and result": json.dumps(status),
        # (the model's own earlier turns are echoed back as they came: it said them, nothing leaked)
        "what the model was sent": json.dumps([[m for m in r.body["messages"] if m["role"] == "user"]
                                               + r.body["system"] for r in fake_api.requests]),
    }
    for where, seen in outside.items():
        for secret in SECRETS:
            assert secret not in seen, f"{secret!r} leaked into the {where}"
    assert REDACTED in status["result"]["summary"]
    tool_output = fake_api.requests[1].body["messages"][-1]["content"][0]["content"]
    assert f"key {REDACTED} {REDACTED} {REDACTED}" in tool_output


def test_log_records_are_scrubbed_whatever_logger_and_however_formatted(caplog):
    install_log_scrubbing(SECRETS)
    logger = logging.getLogger("some.library")
    with caplog.at_level(logging.INFO):
        logger.info("connecting with %s", TEST_API_KEY)
        try:
            raise RuntimeError(f"auth failed for {TEST_WEBHOOK_SECRET}")
        except RuntimeError:
            logger.exception("request failed")
    text_out = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
    assert TEST_API_KEY not in text_out and TEST_WEBHOOK_SECRET not in text_out
    assert f"connecting with {REDACTED}" in caplog.text


def test_the_scrubber_handles_nested_values_and_overlapping_secrets():
    scrubber = Scrubber(["abcd", "abcdef", "no", None])  # too short and non-string values are ignored
    assert scrubber.text("xabcdefx abcd no") == f"x{REDACTED}x {REDACTED} no"
    assert scrubber.value({"k": ["abcd", 1, None, {"abcd": 2.5, "x-abcd": 1}]}) == \
        {"k": [REDACTED, 1, None, {"abcd": 2.5, f"x-{REDACTED}": 1}]}  # a snake_case key is a field name


def test_a_secret_that_is_a_word_never_renames_a_records_fields():
    # an API key "test" (a local stand-in for Anthropic) once turned the result's tests_passed into "[redacted]s_passed"
    scrubber = Scrubber(["test"])
    result = {"tests_passed": True, "test_command": "pytest", "git": {"tests_passed": True}}
    assert scrubber.value(result) == {"tests_passed": True, "test_command": "py" + REDACTED,
                                      "git": {"tests_passed": True}}
    assert not Scrubber([]) and Scrubber([]).text("abcd") == "abcd"
