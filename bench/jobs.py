"""Job bodies for the raw-RQ baselines, preloaded by bench/worker.py (as start_worker.py preloads TARS's job).

* `record_start(key)`: a no-op job that records when its body started (time.time() at its first line).
* `agent_task(...)`: the same scripted agent work a TARS task does (Agent + AnthropicModel against the fake API,
  a real Workspace on a project folder), without TARS's task manager, job.meta, event stream, cancel watcher or
  confirmation gate.
"""

from __future__ import annotations

import time
from pathlib import Path

from rq import get_current_job

from core.agent import Agent, AgentConfig
from core.model import AnthropicModel
from core.tools import Workspace

RAW_QUEUE = "bench_raw"


def record_start(key: str) -> None:
    entered = time.time()
    with get_current_job().connection.pipeline() as pipe:
        pipe.rpush(key, repr(entered)).expire(key, 3600).execute()


def agent_task(goal: str, project: str, base_url: str, api_key: str, model: str) -> dict:
    root = Path(project)
    root.mkdir(parents=True, exist_ok=True)
    agent = Agent(model=AnthropicModel(api_key=api_key, model=model, base_url=base_url, max_retries=2, timeout=20),
                  workspace=Workspace(root, command_timeout=60), goal=goal,
                  config=AgentConfig(max_iterations=30, max_runtime_seconds=600, command_timeout=60))
    result = agent.run()
    return {"outcome": result.outcome, "reason": result.reason, "iterations": result.iterations}
