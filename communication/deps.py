"""FastAPI dependencies, all in one file: settings, the task manager, request authentication and body parsing."""

from __future__ import annotations

import hmac
import json

from fastapi import HTTPException, Request
from pydantic import BaseModel, ValidationError

from communication.notifier import verify
from core import keys
from core.config import Settings
from core.task_manager import TaskManager

MAX_BODY_BYTES = 64 * 1024
SIGNATURE_WINDOW_SECONDS = 300  # verify()'s default tolerance for webhook-timestamp


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_tasks(request: Request) -> TaskManager:
    return request.app.state.tasks


async def read_body(request: Request) -> bytes:
    """The raw body, refused with 413 past 64 KiB (read in chunks, so a lying Content-Length cannot get more in)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HTTPException(413, f"The body is larger than {MAX_BODY_BYTES // 1024} KiB.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, f"The body is larger than {MAX_BODY_BYTES // 1024} KiB.")
    return bytes(body)


async def authenticated_body(request: Request) -> bytes:
    """The body of a request that proved it comes from the owner's side: the shared secret header
    (X-TARS-Webhook-Secret = WEBHOOK_SECRET) or a Standard Webhooks signature (WEBHOOK_SIGNING_SECRET)."""
    settings: Settings = request.app.state.settings
    body = await read_body(request)
    shared, signing = settings.secret("WEBHOOK_SECRET"), settings.secret("WEBHOOK_SIGNING_SECRET")
    if not shared and not signing:
        raise HTTPException(401, "TARS has neither WEBHOOK_SECRET nor WEBHOOK_SIGNING_SECRET set, so it accepts "
                                 "no webhook calls: set one in .env.")
    given = request.headers.get("x-tars-webhook-secret")
    if shared and given is not None and hmac.compare_digest(given.encode(), shared.encode()):
        return body
    if signing and "webhook-signature" in request.headers and verify(signing, request.headers, body):
        # A captured signed request stays valid for the timestamp window: accept each webhook-id once.
        seen = keys.webhook_seen(request.headers.get("webhook-id", "")[:200])
        if not request.app.state.redis.set(seen, 1, nx=True, ex=SIGNATURE_WINDOW_SECONDS * 2):
            raise HTTPException(401, "This signed request was already received once (replay refused).")
        return body
    raise HTTPException(401, "Not authenticated: send the X-TARS-Webhook-Secret header or a valid "
                             "Standard Webhooks signature.")


def parse(model: type[BaseModel], body: bytes) -> BaseModel:
    """Validate a JSON body against model; 422 with a readable reason when it does not fit."""
    try:
        return model.model_validate_json(body or b"null")
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "body"
            problems.append(f"{where}: {err['msg']}")
        raise HTTPException(422, "The body is not valid: " + "; ".join(problems[:5]) + ".") from None
    except (ValueError, json.JSONDecodeError):
        raise HTTPException(422, "The body is not valid JSON.") from None
