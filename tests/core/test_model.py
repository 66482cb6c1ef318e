"""The Anthropic API misbehaves (429/529/500 for a while, or for good; a hang; a bad key or request): the real
SDK's bounded retries, then a readable failure, and never a stuck task.

The worker stories run `python start_worker.py` against the fake API; the SDK's backoff is computed from its
own constants (0.5 s doubling, at most 8 s, minus up to 25 % jitter), never hard-coded.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time

import pytest
from anthropic._constants import INITIAL_RETRY_DELAY, MAX_RETRY_DELAY
from rq import Worker
from rq.job import Job, JobStatus

from core import event_log
from core.exceptions import ModelError
from core.model import AnthropicModel, FallbackModel, Usage, estimate_cost
from core.openai_model import OpenAIModel
from core.providers import ModelSpec
from tests.conftest import TEST_API_KEY
from tests.fakes import openai_api as oai
from tests.fakes.anthropic_api import bash, error, hang, repeat, text, web_search
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


@pytest.mark.parametrize("module,tool_id", [("core.model", "toolu_warm_up"), ("core.openai_model", "call_warm_up")])
def test_warm_up_parses_a_reply_through_the_real_sdk_without_the_network(caplog, module, tool_id):
    """start_worker.py calls it before forking: the SDK's lazy response models and HTTP stack are then built
    once in the worker instead of in every work-horse (bench: 80 short tasks on one worker, 21.6 s -> 12.2 s).
    The openai SDK's too, when an OpenAI-compatible model is listed."""
    warm_up = importlib.import_module(module).warm_up

    caplog.set_level(logging.INFO)
    turn = warm_up()  # nothing listens at warm-up.invalid: only the MockTransport answers
    assert "warm-up.invalid" not in caplog.text  # no puzzling request line in the worker's log
    assert logging.getLogger("httpx2").level == logging.NOTSET  # and the HTTP log is as it was
    assert turn.stop_reason == "tool_use"
    assert turn.tool_uses == [{"type": "tool_use", "id": tool_id, "name": "bash", "input": {"command": "true"}}]
    assert turn.text == "warming up" and (turn.usage.input_tokens, turn.usage.output_tokens) == (1, 1)
    assert warm_up().tool_uses == turn.tool_uses  # and again: nothing is left open or half built


# --- any model, with fallbacks: CODING_MODELS lists them in order -----------------------------------------------

def openai_env(fake_openai, models="openai:gpt-5.1", **more):
    return {"CODING_MODELS": models, "OPENAI_BASE_URL": fake_openai.base_url, "OPENAI_API_KEY": "sk-test-openai",
            "OPENAI_MAX_RETRIES": "0", **more}


def timeline(tasks, task_id, kind=None):
    return [e for e in event_log.read(tasks.redis, task_id) if kind is None or e.type == kind]


@pytest.mark.worker_story  # the openai SDK's newest release meets these in the drift check
def test_a_task_completes_on_an_openai_compatible_model_alone(tasks, fake_api, fake_openai, start_worker, projects):
    fake_openai.script([oai.bash("python3 -c 'print(6 * 7)'"),
                        oai.edit(command="create", path="calc.py", file_text="def add(a, b):\n    return a + b\n"),
                        oai.text("Wrote calc.py with add().")], match="Goal: Write an adder")
    task_id = tasks.start("Write an adder", project_path="adder")
    run_burst(start_worker, **openai_env(fake_openai))

    done = tasks.status(task_id)
    assert done.status == "complete", done.reason
    assert (projects / "adder" / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert done.result["models"] == {"openai:gpt-5.1": 3} and done.result["model"] == "openai:gpt-5.1"
    assert fake_api.requests == []  # Anthropic was never asked
    # the command ran through the same gate and sandbox: its output went back to the model as a tool message
    assert fake_openai.requests[1].body["messages"][-1]["content"].strip().startswith("42")
    prompt = sum(r.prompt_tokens for r in fake_openai.requests)
    assert done.result["usage"]["input_tokens"] == prompt
    expected = sum(estimate_cost("openai:gpt-5.1", Usage(r.prompt_tokens, out))
                   for r, out in zip(fake_openai.requests, completion_tokens(fake_openai)))
    assert done.cost_usd == pytest.approx(expected, abs=1e-5) and done.cost_usd > 0
    assert not done.result["cost_unknown"]


def completion_tokens(fake) -> list[int]:
    return [r.usage["completion_tokens"] for r in fake.requests]


@pytest.mark.worker_story  # the openai SDK's newest release meets these in the drift check
def test_anthropic_overloaded_for_good_hands_the_task_to_the_next_model(tasks, fake_api, fake_openai, start_worker,
                                                                         n8n):
    fake_api.script([repeat(error(529))], match="Goal: Write an adder", name="overloaded")
    fake_openai.script([oai.edit(command="create", path="calc.py", file_text="ADD = 1\n"),
                        oai.text("Done on the second model.")], match="Goal: Write an adder")
    task_id = tasks.start("Write an adder", project_path="adder")
    run_burst(start_worker, N8N_WEBHOOK_URL=n8n.url(),
              **openai_env(fake_openai, "anthropic:claude-sonnet-5-5,openai:gpt-5.1"))

    done = tasks.status(task_id)
    assert done.status == "complete", done.reason
    assert done.result["summary"] == "Done on the second model."
    assert done.result["models"] == {"openai:gpt-5.1": 2}
    assert len(fake_api.requests_for("overloaded")) == 3  # ANTHROPIC_MAX_RETRIES=2, then never again in this task
    (told,) = timeline(tasks, task_id, "model_fallback")
    assert told.message.startswith("openai:gpt-5.1 took over from anthropic:claude-sonnet-5-5: The Anthropic API was "
                                   "overloaded (529, after 3 attempts)")
    # the second model got the whole conversation: the goal, as the first one would have
    assert "Goal: Write an adder" in fake_openai.requests[0].body["messages"][1]["content"]
    sent = wait_until(lambda: [b for b in n8n.bodies() if b["task_id"] == task_id and b["type"] == "model_fallback"],
                      10, "the fallback sent to n8n")[0]
    assert "took over from anthropic:claude-sonnet-5-5" in sent["message"] and sent["milestone"] is True


def test_a_request_refused_for_its_content_does_not_fall_back(tasks, fake_api, fake_openai, start_worker):
    fake_api.script([error(400, message="messages.1: tool_use ids must be unique")], match="Goal: Write an adder")
    fake_openai.script([oai.text("Never asked.")])
    task_id = tasks.start("Write an adder", project_path="adder")
    run_burst(start_worker, **openai_env(fake_openai, "anthropic:claude-sonnet-5-5,openai:gpt-5.1"))

    done = tasks.status(task_id)
    assert done.status == "failed"
    assert done.reason.startswith("The Anthropic API refused the request (400: messages.1: tool_use ids must be "
                                  "unique): retrying the same request will not help")
    assert fake_openai.requests == [] and timeline(tasks, task_id, "model_fallback") == []


def test_a_model_without_its_key_is_passed_over_and_alone_fails_with_the_fix(tasks, fake_api, fake_openai,
                                                                             start_worker):
    fake_api.script([text("Claude did it.")], match="Goal: Write an adder")
    passed_over = tasks.start("Write an adder", project_path="adder")
    alone = tasks.start("Write a subtractor", project_path="subtractor")
    run_burst(start_worker, CODING_MODELS="openai:gpt-5.1,anthropic:claude-sonnet-5-5")  # no OPENAI_API_KEY

    first = tasks.status(passed_over)
    assert first.status == "complete" and first.result["models"] == {"anthropic:claude-sonnet-5-5": 1}
    (told,) = timeline(tasks, passed_over, "model_fallback")
    assert "OPENAI_API_KEY is not set, so openai:gpt-5.1 cannot be used" in told.message
    fake_api.reset()
    third = tasks.start("Write a multiplier", project_path="multiplier")
    run_burst(start_worker, CODING_MODELS="openai:gpt-5.1")
    assert tasks.status(third).status == "failed"
    assert tasks.status(third).reason.startswith("OPENAI_API_KEY is not set, so openai:gpt-5.1 cannot be used: add "
                                                 "it to .env")
    assert tasks.status(alone).status == "complete"


@pytest.mark.worker_story  # the openai SDK's newest release meets these in the drift check
def test_a_fifty_step_task_fits_a_32k_model_that_refuses_longer_requests(tasks, fake_openai, start_worker):
    """Each step's command prints about 10 kB (the tool output cap): 50 steps hold over 150k tokens of output, and the
    local stand-in refuses any request over 32,768 tokens, as a 32k model would."""
    fake_openai.max_context_tokens = 32_768
    steps = [oai.bash(f"seq {i} {i + 4000} | sed 's/^/step {i} line /'") for i in range(49)]
    fake_openai.script([*steps, oai.text("Looked at all fifty outputs.")], match="Goal: Read fifty long outputs")
    task_id = tasks.start("Read fifty long outputs", project_path="long")
    run_burst(start_worker, timeout=240, MAX_TASK_ITERATIONS="60", MAX_TASK_RUNTIME_MINUTES="4",
              CODING_MODELS="ollama:qwen3-coder:30b", OLLAMA_BASE_URL=fake_openai.base_url)

    done = tasks.status(task_id)
    assert done.status == "complete", done.reason
    assert done.result["iterations"] == 50 and done.result["models"] == {"ollama:qwen3-coder:30b": 50}
    assert fake_openai.refused == [] and fake_openai.max_prompt_tokens_seen <= 32_768
    output_chars = sum(len(m["content"]) for r in fake_openai.requests[-1:] for m in r.body["messages"]
                       if m["role"] == "tool")
    total_output = sum(len(r.body["messages"][-1]["content"]) for r in fake_openai.requests[1:])
    assert total_output / 3.5 > 100_000  # what the whole history would have taken, far past the window
    assert output_chars < total_output / 3
    cleared = timeline(tasks, task_id, "context")
    assert cleared and cleared[0].message.startswith("Cleared ")
    assert "ollama:qwen3-coder:30b's 32,768-token context window" in cleared[0].message
    last = fake_openai.requests[-1].body["messages"]
    assert "Goal: Read fifty long outputs" in last[1]["content"]  # the goal is never cleared
    assert "step 48 line" in last[-1]["content"]  # nor the newest output
    assert done.cost_usd == 0.0 and not done.result["cost_unknown"]  # a local model costs nothing


def test_when_every_model_fails_the_reasons_are_all_told_and_a_later_attempt_may_succeed(fake_api, fake_openai):
    fake_api.script([error(529)], match="Goal")
    fake_openai.script([oai.error(404)], match="Goal")
    chain = FallbackModel([AnthropicModel(api_key="sk-test", model="claude-sonnet-5-5", base_url=fake_api.base_url,
                                          max_retries=0),
                           OpenAIModel(ModelSpec("openai", "gpt-5.1"), api_key="sk-test", base_url=fake_openai.base_url,
                                       max_retries=0)])
    with pytest.raises(ModelError) as failed:
        chain.query(system=[], tools=[], messages=[{"role": "user", "content": "Goal: x"}])
    assert str(failed.value).startswith("No model could answer: The Anthropic API was overloaded (529, after 1 "
                                        "attempt)")
    assert "The model 'gpt-5.1' was not found at OpenAI (404" in str(failed.value)
    assert failed.value.transient  # Anthropic was only unavailable: the task's automatic retry may find it back


def test_a_streamed_web_search_keeps_its_blocks_whole_and_says_when_it_runs(fake_api):
    """Anthropic's web search runs inside the streamed answer: only words reach on_text (no citation), the hook
    hears the search start and its result arrive, and the turn keeps server_tool_use and web_search_tool_result as
    the API sent them (ready to go back), the answer's text without its citations."""
    fake_api.script([web_search("weather Atlanta", "It's 75 and sunny.", before="Let me check.", search_delay=0.2)])
    claude = AnthropicModel(api_key="sk-test", model="claude-haiku-5-5", base_url=fake_api.base_url, max_retries=0)
    heard: list[object] = []

    async def on_text(piece: str) -> None:
        heard.append(piece)

    async def on_server_tool(running: bool) -> None:
        heard.append(running)

    tools = [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]
    turn = asyncio.run(FallbackModel([claude]).stream(system="You are TARS.", tools=tools, max_tokens=100,
                                                      messages=[{"role": "user", "content": "weather?"}],
                                                      on_text=on_text, on_server_tool=on_server_tool))
    assert heard[0] == "Let me check." and heard[1:3] == [True, False]
    assert "".join(p for p in heard if isinstance(p, str)) == "Let me check.It's 75 and sunny."
    assert [b["type"] for b in turn.content] == ["text", "server_tool_use", "web_search_tool_result", "text"]
    use, result, answer = turn.content[1:]
    assert use == {"type": "server_tool_use", "id": use["id"], "name": "web_search",
                   "input": {"query": "weather Atlanta"}}
    assert result["tool_use_id"] == use["id"] and result["content"][0]["encrypted_content"]
    assert answer == {"type": "text", "text": "It's 75 and sunny."}
    assert turn.text == "Let me check.\nIt's 75 and sunny."
