"""The Anthropic API misbehaves (429/529/500 for a while, or for good; a hang; a bad key or request): the real
SDK's bounded retries, then a readable failure, and never a stuck task.

The worker stories run `python start_worker.py` against the fake API; the SDK's backoff is computed from its
own constants (0.5 s doubling, at most 8 s, minus up to 25 % jitter), never hard-coded.
"""

from __future__ import annotations

import logging
import time

import pytest
from anthropic._constants import INITIAL_RETRY_DELAY, MAX_RETRY_DELAY
from rq import Worker
from rq.job import Job, JobStatus

from core.exceptions import ModelError
from core.model import AnthropicModel
from tests.conftest import TEST_API_KEY
from tests.fakes.anthropic_api import bash, error, hang, repeat, text
from tests.waiting import wait_until

SLACK = 3.0  # seconds for process scheduling on a shared 2-core machine


def sdk_backoff(retries: int) -> float:
    """The longest the SDK sleeps in all between `retries + 1` attempts that carry no retry-after header."""
    return sum(min(INITIAL_RETRY_DELAY * 2 ** n, MAX_RETRY_DELAY) for n in range(retries))


def run_burst(start_worker, timeout=60, **env):
    worker = start_worker("--burst", **env)
    assert worker.wait(timeout=timeout) == 0, worker.log
    return worker


def ending(n8n, task_id):
    """The ending event the owner's Discord got for the task (waits for it)."""
    return wait_until(lambda: [b for b in n8n.bodies() if b["task_id"] == task_id
                               and b["type"] in ("complete", "error", "timeout", "cancelled")], 10,
                      "the ending sent to n8n")[0]


def gaps(requests) -> list[float]:
    return [b.received_mono - a.received_mono for a, b in zip(requests, requests[1:])]


# --- the sentences, in-process against the fake API (no retries: one attempt each) ------------------------

@pytest.mark.parametrize("answer, expected", [
    (error(401), ["rejected the API key", "(401", "ANTHROPIC_API_KEY"]),
    (error(403), ["may not use the model 'claude-sonnet-4-5'", "(403: Your API key does not have permission",
                  "CLAUDE_MODEL"]),
    (error(404), ["'claude-sonnet-4-5' was not found at Anthropic (404", "CLAUDE_MODEL"]),
    (error(400, message="messages.1: tool_use ids must be unique"),
     ["refused the request (400: messages.1: tool_use ids must be unique)", "will not help"]),
    (error(429, message="Too many tokens per minute."),
     ["rate limiting", "(429, after 1 attempt; it said: Too many tokens per minute)", "retry the task"]),
    (error(529), ["overloaded (529, after 1 attempt)", "retry the task in a few minutes"]),
    (error(503), ["server error (503, after 1 attempt)", "retry the task in a few minutes"]),
])
def test_each_api_failure_reads_as_what_happened_and_what_to_do(fake_api, answer, expected):
    fake_api.script([answer])
    model = AnthropicModel(api_key=TEST_API_KEY, model="claude-sonnet-4-5", base_url=fake_api.base_url,
                           max_retries=0, timeout=5)
    with pytest.raises(ModelError) as failure:
        model.query(system=[], tools=[], messages=[{"role": "user", "content": "hi"}])
    reason = str(failure.value)
    for part in expected:
        assert part in reason, reason
    assert reason.startswith("The ") and reason.endswith(".") and "\n" not in reason
    assert len(fake_api.requests) == 1


# --- a) a while: retried within the budget, each task completes ------------------------------------------

WHILE = [  # status, headers, the least wait between two attempts
    (429, {"retry-after": "1"}, 1.0),  # the SDK waits as long as the API says
    (529, {}, INITIAL_RETRY_DELAY * 0.75),  # its own backoff: 0.5 s, then 1 s (minus up to 25 % jitter)
    (500, {}, INITIAL_RETRY_DELAY * 0.75),
]


def test_errors_for_a_while_are_retried_and_each_task_completes(tasks, fake_api, start_worker):
    ids = {}
    for status, headers, _ in WHILE:
        failure = error(status, headers=headers)
        # ANTHROPIC_MAX_RETRIES=2: two failed answers in a row still leave one attempt
        fake_api.script([failure, failure, bash(f"echo made it past {status}"), text(f"Done despite {status}.")],
                        match=f"past {status}s", name=str(status))
        ids[status] = tasks.start(f"Get past {status}s", project_path=f"flaky{status}")
    run_burst(start_worker)

    for status, _, least_gap in WHILE:
        task = tasks.status(ids[status])
        assert task.status == "complete", (status, task)
        assert task.result["summary"] == f"Done despite {status}."
        assert task.result["iterations"] == 2  # the retries happened inside one model call
        requests = fake_api.requests_for(str(status))
        assert [r.status for r in requests] == [status, status, 200, 200]
        # one call attempted three times by the SDK; the next call starts its own count
        assert [r.headers["x-stainless-retry-count"] for r in requests] == ["0", "1", "2", "0"]
        waits = gaps(requests)[:2]
        assert all(least_gap <= w <= max(least_gap, sdk_backoff(2)) + SLACK for w in waits), (status, waits)


# --- b) for good: bounded attempts, a readable failure, the worker takes the next task ---------------------
# d) a bad request is here too: no retries (401 is test_bad_api_key_fails_with_a_clear_reason in
#    test_background_worker.py)

FOR_GOOD = [  # the API's answer to every attempt, the attempts, words of the reason
    (error(429), 3, "The Anthropic API kept rate limiting the task (429, after 3 attempts; it said: Rate limited)"),
    (error(529), 3, "The Anthropic API was overloaded (529, after 3 attempts): retry the task in a few minutes."),
    (error(500), 3, "The Anthropic API failed with a server error (500, after 3 attempts): retry the task"),
    (error(400, message="max_tokens: 999999 > 64000, the maximum for this model"), 1,
     "The Anthropic API refused the request (400: max_tokens: 999999 > 64000, the maximum for this model): "
     "retrying the same request will not help"),
]


def test_errors_for_good_fail_each_task_in_bounded_time_and_the_worker_goes_on(tasks, fake_api, start_worker,
                                                                               n8n):
    ids = {}
    for failure, _, _ in FOR_GOOD:
        fake_api.script([repeat(failure)], match=f"doomed by {failure.status}s", name=str(failure.status))
        ids[failure.status] = tasks.start(f"A task doomed by {failure.status}s", project_path=f"doomed{failure.status}")
    fake_api.script([text("The next one is fine.")], match="the next task", name="next")
    following = tasks.start("Then the next task", project_path="next")
    run_burst(start_worker, N8N_WEBHOOK_URL=n8n.url())

    for failure, attempts, words in FOR_GOOD:
        task_id = ids[failure.status]
        task = tasks.status(task_id)
        assert task.status == "failed", (failure.status, task)
        assert words in task.reason, task.reason
        assert task.phase == "error" and not task.awaiting_confirmation and not task.active
        assert Job.fetch(task_id, connection=tasks.redis).get_status() == JobStatus.FINISHED  # ended, not killed
        requests = fake_api.requests_for(str(failure.status))
        assert len(requests) == attempts  # ANTHROPIC_MAX_RETRIES + 1 for the one model call; 400: just one
        spent = requests[-1].received_mono - requests[0].received_mono
        backoff = sdk_backoff(attempts - 1)
        assert backoff * 0.75 - 0.05 <= spent <= backoff + SLACK, (failure.status, spent)
        assert task.result["duration_seconds"] <= backoff + SLACK, (failure.status, task.result)
        told = ending(n8n, task_id)
        assert told["type"] == "error" and words in told["message"], told
    # the worker was free again at once each time: the next task ran and completed
    assert tasks.status(following).status == "complete"


# --- c) a hang: each attempt gives up after ANTHROPIC_TIMEOUT_SECONDS ---------------------------------------

def test_a_hanging_api_fails_the_task_after_the_timeout_and_its_retries(tasks, fake_api, start_worker, n8n):
    fake_api.script([repeat(hang(60))], match="a silent API", name="hang")  # far past the 2 s timeout
    fake_api.script([text("Answered at once.")], match="the next task", name="next")
    hung = tasks.start("Wait for a silent API", project_path="hung")
    following = tasks.start("Then the next task", project_path="next")
    began = time.monotonic()
    run_burst(start_worker, ANTHROPIC_TIMEOUT_SECONDS="2", ANTHROPIC_MAX_RETRIES="1", N8N_WEBHOOK_URL=n8n.url())

    status = tasks.status(hung)
    assert status.status == "failed", status
    assert "did not answer within 2 seconds (after 2 attempts)" in status.reason, status.reason
    assert "ANTHROPIC_TIMEOUT_SECONDS" in status.reason
    assert len(fake_api.requests_for("hang")) == 1 + 1  # MAX_RETRIES=1
    bound = 2 * 2 + sdk_backoff(1)
    assert 2 * 2 <= status.result["duration_seconds"] <= bound + SLACK, status.result["duration_seconds"]
    # the whole burst, worker start-up included (22 s on a loaded machine); without the timeout: 2 x 60 s
    assert time.monotonic() - began < bound + 45
    assert "ANTHROPIC_TIMEOUT_SECONDS" in ending(n8n, hung)["message"]
    assert tasks.status(following).status == "complete"


def test_cancel_while_the_sdk_waits_to_retry_stops_at_once(tasks, fake_api, start_worker):
    # A cancel during a hung call is test_cancel_during_a_slow_model_call_ends_cancelled; this is the other
    # wait inside the SDK: the sleep before a retry (here 30 s, as a 429's retry-after asked).
    fake_api.script([error(429, headers={"retry-after": "30"}), text("never")])
    task_id = tasks.start("Be patient with the rate limit", project_path="patient")
    start_worker()
    fake_api.wait_for_requests(1, timeout=30)
    time.sleep(0.3)  # the SDK is asleep before its retry
    began = time.monotonic()
    status = tasks.cancel(task_id, wait=30)  # the kill backstop after 30 s: far from "at once" on a loaded machine
    assert time.monotonic() - began < 15  # the work-horse stopped by itself, not the kill backstop
    assert status.status == "cancelled", status
    assert status.reason == "The task was cancelled."
    # the work-horse returned by itself (RQ records it a moment later); a killed one would be STOPPED
    wait_until(lambda: Job.fetch(task_id, connection=tasks.redis).get_status() == JobStatus.FINISHED, 10,
               "RQ to record the job finished")
    wait_until(lambda: [w.get_state() for w in Worker.all(connection=tasks.redis)] == ["idle"], 10,
               "the worker idle again")
    time.sleep(0.5)
    assert len(fake_api.requests) == 1  # no retry after the cancel


def test_warm_up_parses_a_reply_through_the_real_sdk_without_the_network(caplog):
    """start_worker.py calls it before forking: the SDK's lazy response models and HTTP stack are then built
    once in the worker instead of in every work-horse (bench: 80 short tasks on one worker, 21.6 s -> 12.2 s)."""
    from core.model import warm_up

    caplog.set_level(logging.INFO)
    turn = warm_up()  # nothing listens at warm-up.invalid: only the MockTransport answers
    assert "warm-up.invalid" not in caplog.text  # no puzzling request line in the worker's log
    assert logging.getLogger("httpx2").level == logging.NOTSET  # and the HTTP log is as it was
    assert turn.stop_reason == "tool_use"
    assert turn.tool_uses == [{"type": "tool_use", "id": "toolu_warm_up", "name": "bash",
                               "input": {"command": "true"}}]
    assert turn.text == "warming up" and (turn.usage.input_tokens, turn.usage.output_tokens) == (1, 1)
    assert warm_up().tool_uses == turn.tool_uses  # and again: nothing is left open or half built
