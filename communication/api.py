"""HTTP routes for n8n and scripts: the confirmation webhook and a small task API.

Thin: authenticate, validate, call the task manager, map its sentences to status codes.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from communication.deps import authenticated_body, get_tasks, parse
from core.exceptions import (CodeRejected, InvalidGoal, InvalidProjectPath, NotAwaitingConfirmation, TaskNotActive,
                             TaskNotFound)
from core.task_manager import TaskManager

router = APIRouter()
Body = Annotated[bytes, Depends(authenticated_body)]
Tasks = Annotated[TaskManager, Depends(get_tasks)]
TASK_ID = r"^#?[0-9a-fA-F]{4,32}$"


class ConfirmationBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    task_id: str = Field(pattern=TASK_ID, description="the task waiting for a code")
    code: StrictStr | StrictInt = Field(validation_alias=AliasChoices("code", "confirmation_code"), description="the code")


class StartBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    goal: str = Field(min_length=1, max_length=10_000)
    project_path: str | None = Field(None, max_length=4096)
    verbose_updates: StrictBool | None = None


def body_schema(model: type[BaseModel]) -> dict:
    """OpenAPI for routes that read their body themselves (authentication comes before parsing)."""
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": model.model_json_schema()}}}}


def _task_id(value: str) -> str:
    if not re.fullmatch(TASK_ID, value):
        raise HTTPException(404, f"There is no task {value[:40]}.")
    return value.lstrip("#").lower()


@router.post("/webhook/background-confirmation", openapi_extra=body_schema(ConfirmationBody),
             responses={401: {}, 403: {}, 404: {}, 409: {}, 413: {}, 422: {}})
def background_confirmation(body: Body, tasks: Tasks):
    """n8n (or anyone holding the webhook secret) answers a task's confirmation request."""
    answer = parse(ConfirmationBody, body)
    return confirm_answer(tasks, _task_id(answer.task_id), answer.code,
                          "Confirmation code received for task {task_id}.")


def confirm_answer(tasks: TaskManager, task_id: str, code: str | int, accepted: str):
    """A code for a task's pending command as an HTTP answer: 200 accepted (the sentence `accepted`), 403 rejected
    with attempts_left, 404 no such task, 409 not waiting. The webhook and the dashboard both answer this way."""
    try:
        tasks.confirm(task_id, code)
    except TaskNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except (TaskNotActive, NotAwaitingConfirmation) as exc:
        raise HTTPException(409, str(exc)) from None
    except CodeRejected as exc:
        return JSONResponse({"status": "rejected", "task_id": task_id, "attempts_left": exc.attempts_left,
                             "detail": str(exc)}, status_code=403)
    return {"status": "accepted", "task_id": task_id, "detail": accepted.format(task_id=task_id)}


@router.post("/api/tasks", status_code=201, openapi_extra=body_schema(StartBody),
             responses={401: {}, 413: {}, 422: {}})
def start_task(body: Body, tasks: Tasks):
    return start_answer(tasks, body)


def start_answer(tasks: TaskManager, body: bytes) -> dict:
    """A StartBody started as a task: {task_id}, or 422 with the reason (the webhook API and the dashboard)."""
    request = parse(StartBody, body)
    try:
        task_id = tasks.start(request.goal, request.project_path, verbose_updates=request.verbose_updates)
    except (InvalidGoal, InvalidProjectPath) as exc:
        raise HTTPException(422, str(exc)) from None
    return {"task_id": task_id}


@router.get("/api/tasks", responses={401: {}})
def list_tasks(_: Body, tasks: Tasks, limit: Annotated[int, Query(ge=1, le=200)] = 20):
    return [status.to_dict() for status in tasks.list(limit=limit)]


@router.get("/api/tasks/{task_id}", responses={401: {}, 404: {}})
def task_status(task_id: str, _: Body, tasks: Tasks):
    try:
        return tasks.status(_task_id(task_id)).to_dict()
    except TaskNotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.post("/api/tasks/{task_id}/cancel", responses={401: {}, 404: {}, 409: {}})
def cancel_task(task_id: str, _: Body, tasks: Tasks):
    try:
        return tasks.cancel(_task_id(task_id)).to_dict()
    except TaskNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except TaskNotActive as exc:
        raise HTTPException(409, str(exc)) from None


@router.post("/api/tasks/{task_id}/retry", status_code=201, responses={401: {}, 404: {}, 409: {}})
def retry_task(task_id: str, _: Body, tasks: Tasks):
    """Start an ended task again as a new task with the same goal and project."""
    try:
        return tasks.status(tasks.retry(_task_id(task_id))).to_dict()
    except TaskNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except TaskNotActive as exc:
        raise HTTPException(409, str(exc)) from None
