"""FastAPI dependencies, all in one file: settings, the task manager, request authentication (webhook secret,
dashboard session and CSRF token) and body parsing."""

from __future__ import annotations

import hmac
import json
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request
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


# --- the dashboard (communication/dashboard.py): its session cookie and the CSRF token ---------------------------
DASHBOARD_OFF = ("The dashboard is off: set DASHBOARD_PASSWORD (at least 8 characters) in .env and restart the "
                 "server the way you started it: python main_tars.py up, or python main_tars.py beside your "
                 "workers.")
NOT_LOGGED_IN = "Not logged in: open the dashboard at / and log in with DASHBOARD_PASSWORD."
CROSS_SITE = "Refused: this request did not come from the dashboard's own page (its Origin is another site)."
BAD_CSRF = "Refused: the X-CSRF-Token header is missing or wrong; reload the dashboard page and try again."


def same_origin(request: Request) -> bool:
    """True unless the request names an Origin other than this server (its Host, or PUBLIC_BASE_URL behind a proxy)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    allowed = {request.headers.get("host", "").strip().lower()}
    public = request.app.state.settings.PUBLIC_BASE_URL
    try:
        if public:
            allowed.add(urlsplit(public).netloc.lower())
        parsed = urlsplit(origin.strip())
    except ValueError:
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.netloc) and parsed.netloc.lower() in allowed


def dashboard_session(request: Request):
    """The logged-in dashboard session the tars_session cookie names: 401 without one, 404 with the dashboard off."""
    from communication.dashboard import load_session  # dashboard.py builds the session keys and imports this module

    if not request.app.state.settings.DASHBOARD_PASSWORD:
        raise HTTPException(404, DASHBOARD_OFF)
    session = load_session(request)
    if session is None:
        raise HTTPException(401, NOT_LOGGED_IN)
    return session


def dashboard_csrf(request: Request, session=Depends(dashboard_session)):
    """The session of a state-changing dashboard request: same origin, and X-CSRF-Token = the session's token."""
    if not same_origin(request):
        raise HTTPException(403, CROSS_SITE)
    given = request.headers.get("x-csrf-token") or ""
    if not given or not hmac.compare_digest(given.encode(), session.csrf.encode()):
        raise HTTPException(403, BAD_CSRF)
    return session
