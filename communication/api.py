"""HTTP routes for n8n and scripts: the confirmation webhook and a small task API.

Thin: authenticate, validate, call the task manager. Its refusals (no such task, already ended...) become status
codes in one place, communication/app.py.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StrictInt, StrictStr

from communication.deps import (TASK_ID, StartBody, authenticated_body, body_schema, confirm_answer, get_tasks, parse,
                                plain_text, report_answer, start_answer, status_json, task_id_of, workers_switch)
from core import budget, pool
from core.task_states import PRIORITIES
from core.task_manager import TaskManager

router = APIRouter()
Body = Annotated[bytes, Depends(authenticated_body)]
PLAIN_ONLY = "with a text/plain goal only (a JSON body holds every field itself)"
Tasks = Annotated[TaskManager, Depends(get_tasks)]


class ConfirmationBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    task_id: str = Field(pattern=TASK_ID, description="the task waiting for a code")
    code: StrictStr | StrictInt = Field(validation_alias=AliasChoices("code", "confirmation_code"), description="the code")


@router.post("/webhook/background-confirmation", openapi_extra=body_schema(ConfirmationBody),
             responses={401: {}, 403: {}, 404: {}, 409: {}, 413: {}, 422: {}})
def background_confirmation(body: Body, tasks: Tasks):
    """n8n (or anyone holding the webhook secret) answers a task's confirmation request."""
    answer = parse(ConfirmationBody, body)
    return confirm_answer(tasks, task_id_of(answer.task_id), answer.code,
                          "Confirmation code received for task {task_id}.")


@router.post("/api/tasks", status_code=201, responses={401: {}, 413: {}, 422: {}},
             openapi_extra=body_schema(StartBody, plain_text=(
                 "the goal itself (Content-Type: text/plain); the other fields come from the query string")))
def start_task(body: Body, tasks: Tasks, request: Request,
               project_path: Annotated[str | None, Query(max_length=4096, description=PLAIN_ONLY)] = None,
               priority: Annotated[Literal[PRIORITIES] | None, Query(description=PLAIN_ONLY)] = None,
               plan: Annotated[bool | None, Query(description=PLAIN_ONLY)] = None,
               verbose_updates: Annotated[bool | None, Query(description=PLAIN_ONLY)] = None,
               at: Annotated[str | None, Query(max_length=64, description=PLAIN_ONLY)] = None,
               in_: Annotated[str | None, Query(alias="in", max_length=32, description=PLAIN_ONLY)] = None):
    """Start a task: a JSON body (StartBody), or the goal as a text/plain body with the other fields in the query
    string (`curl -H 'Content-Type: text/plain' -d 'Add a --verbose flag' '.../api/tasks?project_path=calc'`)."""
    fields = {"project_path": project_path, "priority": priority, "plan": plan, "verbose_updates": verbose_updates,
              "at": at, "in": in_}
    given = {name: value for name, value in fields.items() if value is not None}
    goal = plain_text(request, body)
    if goal is None:
        if given:
            raise HTTPException(422, f"The query string gives {', '.join(given)}: with a JSON body every field goes "
                                     "in the body; the query string is for a text/plain goal.")
        try:
            json.loads(body)
        except ValueError:  # `curl -d 'Add a flag'` sends a form: say how a bare goal is sent
            raise HTTPException(422, "The body is not JSON: send the task as a JSON object, or the goal itself as "
                                     "text with Content-Type: text/plain.") from None
        return start_answer(tasks, body)
    if not goal.strip():
        raise HTTPException(422, "The text body is empty: it is the goal, so say what the task should build or fix.")
    return start_answer(tasks, json.dumps({"goal": goal.strip(), **given}).encode())


@router.get("/api/tasks", responses={401: {}})
def list_tasks(_: Body, tasks: Tasks, limit: Annotated[int, Query(ge=1, le=200)] = 20):
    return [status_json(status) for status in tasks.list(limit=limit)]


@router.get("/api/tasks/{task_id}", responses={401: {}, 404: {}})
def task_status(task_id: str, _: Body, tasks: Tasks):
    return status_json(tasks.status(task_id_of(task_id)))


@router.post("/api/tasks/{task_id}/cancel", responses={401: {}, 404: {}, 409: {}})
def cancel_task(task_id: str, _: Body, tasks: Tasks):
    return status_json(tasks.cancel(task_id_of(task_id)))


@router.post("/api/tasks/{task_id}/retry", status_code=201, responses={401: {}, 404: {}, 409: {}, 422: {}})
def retry_task(task_id: str, _: Body, tasks: Tasks):
    """Start an ended task again as a new task with the same goal and project (422 when that project can no
    longer be used)."""
    return status_json(tasks.status(tasks.retry(task_id_of(task_id))))


# --- budgets and the report (core/budget.py, core/report.py) -------------------------------------------------------
class BudgetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    daily_usd: float | None = Field(ge=0, allow_inf_nan=False, description=(
        "dollars a day (overrides DAILY_BUDGET_USD until DELETE /api/budget); null: no daily budget"))


@router.get("/api/report", responses={401: {}, 422: {}})
def task_report(_: Body, tasks: Tasks, since: Annotated[str, Query(max_length=20)] = "7d"):
    """How the tasks of the period before now went (core/report.py): since, until, tasks by outcome, success_rate,
    duration_seconds, tokens, cost_usd, by_day, by_project, failure_reasons, model_latency_seconds."""
    return report_answer(tasks, since)


@router.get("/api/budget", responses={401: {}})
def daily_budget(_: Body, tasks: Tasks):
    """Today's budget: daily_usd (null: none), source (setting or override), spent_usd, held, exhausted, sentence."""
    return budget.current(tasks.redis, tasks.settings).to_dict()


@router.post("/api/budget", openapi_extra=body_schema(BudgetBody), responses={401: {}, 413: {}, 422: {}})
def set_daily_budget(body: Body, tasks: Tasks):
    """{"daily_usd": 20} overrides DAILY_BUDGET_USD now (null: no daily budget); tasks it held start if it allows
    them (`released`: how many)."""
    state, released = budget.change(tasks.redis, tasks.settings, parse(BudgetBody, body).daily_usd)
    return {**state.to_dict(), "released": released}


@router.delete("/api/budget", responses={401: {}})
def clear_daily_budget(_: Body, tasks: Tasks):
    """Drop the override: DAILY_BUDGET_USD counts again (tasks it held start if it allows them)."""
    state, released = budget.change(tasks.redis, tasks.settings, None, clear=True)
    return {**state.to_dict(), "released": released}
@router.post("/api/tasks/{task_id}/pause", responses={401: {}, 404: {}, 409: {}})
def pause_task(task_id: str, _: Body, tasks: Tasks):
    """Pause one running task on its own: it stops at its next step and waits, its runtime clock stopped, until
    resumed (409 when it has not started yet or has ended)."""
    return status_json(tasks.pause(task_id_of(task_id)))


@router.post("/api/tasks/{task_id}/resume", responses={401: {}, 404: {}, 409: {}})
def resume_task(task_id: str, _: Body, tasks: Tasks):
    """Let a task paused on its own go on (409 when it is not paused on its own)."""
    return status_json(tasks.resume(task_id_of(task_id)))


@router.get("/api/workers", responses={401: {}})
def list_workers(_: Body, tasks: Tasks):
    """Whether every worker is paused, each worker (name, state idle/busy/paused, current_task, capabilities, host,
    pid...) and the queue length."""
    return pool.overview(tasks.redis)


@router.post("/api/workers/pause", responses={401: {}})
def pause_workers(_: Body, tasks: Tasks):
    """Pause every worker: no new task starts, and running tasks wait at their next step. {paused, changed, detail}"""
    return workers_switch(tasks, True)


@router.post("/api/workers/resume", responses={401: {}})
def resume_workers(_: Body, tasks: Tasks):
    """Resume every worker: queued tasks start and paused ones go on. {paused, changed, detail}"""
    return workers_switch(tasks, False)
