"""Every HTTP and WebSocket entry point, fed bad input against the real app under uvicorn: never a 5xx, never a
crashed socket, nothing stored in Redis by a request that was refused.

* The OpenAPI operations: schemathesis (positive and negative cases from /openapi.json) with the shared secret,
  with no authentication, with a wrong secret and with a garbage Standard Webhooks signature.
* Twilio's form webhooks (/voice, /voice/status): hypothesis forms and raw bodies, unsigned (403) and signed
  with the test auth token (200 and well-formed TwiML).
* The ConversationRelay socket (/relay): a real WebSocket client sends garbage frames; the server answers,
  ignores or closes with a proper code, and a fresh call afterwards still works.
* The documentation routes FastAPI adds (/openapi.json, /docs, /redoc, ...): junk queries and headers.

test_every_route_is_fuzzed fails when a route appears that none of these covers.
"""

from __future__ import annotations

import json
import logging
import time
import xml.etree.ElementTree as ET
from collections import Counter
from urllib.parse import parse_qsl, urlencode

import httpx
import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from starlette.datastructures import FormData
from starlette.routing import WebSocketRoute
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from communication.spoken import NOT_OWNER
from core import keys
from tests.conftest import TEST_WEBHOOK_SECRET
from tests.fakes.relay_client import ACCOUNT_SID, incoming_call_params, sign
from tests.waiting import wait_until

PUBLIC = "https://tars.example.test"
TOKEN = "twilio-test-auth-token-0123456789abcdef"
OWNER = "+15551234567"
STRANGER = "+15559876543"
SIGNING_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

# Routes FastAPI or the voice router add outside the OpenAPI document, and the test here that fuzzes each.
DOC_ROUTES = {("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect"), ("GET", "/redoc")}
WEBSOCKET_ROUTES = {("WEBSOCKET", "/relay")}
TWILIO_FORMS = {("POST", "/voice"), ("POST", "/voice/status")}
# Open without a credential: liveness, and the dashboard's login page (its API needs the session) and static files.
OPEN_ROUTES = {("GET", "/health"), ("GET", "/"), ("GET", "/static/{name}")}
AUTHS = {
    "shared secret": {"X-TARS-Webhook-Secret": TEST_WEBHOOK_SECRET},
    "none": {},
    "wrong secret": {"X-TARS-Webhook-Secret": "guess"},
    "garbage signature": {"webhook-id": "msg_1", "webhook-timestamp": str(int(time.time())),
                          "webhook-signature": "v1,AAAA"},
}
FUZZ = dict(deadline=None, derandomize=True, database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                   HealthCheck.filter_too_much, HealthCheck.data_too_large])
CASES_PER_OPERATION = 13  # x 30 operations, for each credential
BAD_CLOSE = {1011, 1006}  # internal error, or the connection dropped without a close frame


@pytest.fixture
def server(serve, fake_api):
    """One app with every entry point configured: both webhook secrets and the voice line."""
    return serve(PUBLIC_BASE_URL=PUBLIC, TWILIO_AUTH_TOKEN=TOKEN, OWNER_PHONE_NUMBERS=OWNER,
                 WEBHOOK_SIGNING_SECRET=SIGNING_SECRET)


KEPT = (keys.CALL_HISTORY.encode(), keys.call_record("").encode(), keys.call_transcript("").encode())
"""What a call leaves on purpose: its history (kept CALL_HISTORY_DAYS)."""


def stored(redis_client) -> set[bytes]:
    """Every key but the calls' history: a call that ended leaves nothing else behind."""
    return {key for key in redis_client.keys("*") if not key.startswith(KEPT)}


def app_routes(app) -> set[tuple[str, str]]:
    """(method, path) of every route, WebSockets as ("WEBSOCKET", path), through included routers."""
    found = set()

    def walk(routes, prefix: str) -> None:
        for route in routes:
            included = getattr(route, "original_router", None)  # FastAPI >= 0.16x keeps included routers whole
            if included is not None:
                walk(included.routes, prefix + getattr(getattr(route, "include_context", None), "prefix", ""))
            elif isinstance(route, WebSocketRoute) or type(route).__name__ == "APIWebSocketRoute":
                found.add(("WEBSOCKET", prefix + route.path))
            else:
                found.update((method, prefix + route.path) for method in route.methods - {"HEAD"})

    walk(app.routes, "")
    return found


def openapi_operations(spec: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in spec["paths"].items() for method in item}


def test_every_route_is_fuzzed(server):
    spec = httpx.get(server.url + "/openapi.json").json()
    schema = schemathesis.openapi.from_dict(spec)
    labels = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    assert labels == openapi_operations(spec)  # schemathesis sees every documented operation
    assert TWILIO_FORMS <= labels
    routes = app_routes(server.app)
    uncovered = routes - labels - DOC_ROUTES - WEBSOCKET_ROUTES
    assert not uncovered, f"routes no fuzz test covers: {sorted(uncovered)}; add them to tests/communication/" \
                          "test_fuzz.py"
    assert DOC_ROUTES | WEBSOCKET_ROUTES <= routes  # the lists here are not stale either


# --- the OpenAPI operations, by schemathesis ----------------------------------------------------------------------
@pytest.mark.parametrize("auth", list(AUTHS))
def test_no_documented_operation_answers_5xx_or_stores_a_refused_request(server, redis_client, tasks, auth):
    existing = tasks.start("A task the fuzzed ids may hit")
    spec = httpx.get(server.url + "/openapi.json").json()
    schema = schemathesis.openapi.from_dict(spec)
    operations = [result.ok() for result in schema.get_all_operations()]
    seen: Counter = Counter()
    authenticated = auth == "shared secret"
    session = requests.Session()

    # Each operation gets its own cases: drawn from one mix of all of them, one operation (POST /voice) once got
    # none in a CI run.
    @hypothesis.settings(max_examples=CASES_PER_OPERATION, **FUZZ)
    @given(data=st.data())
    def run(data, op):
        cases = [op.as_strategy(mode) for mode in GenerationMode]
        if "{task_id}" in op.path:
            cases.append(op.as_strategy(GenerationMode.POSITIVE, path_parameters={"task_id": existing}))
        case = data.draw(st.one_of(cases), label="case")
        before = stored(redis_client)
        try:
            response = case.call(base_url=server.url, session=session, headers=AUTHS[auth], timeout=10)
        except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, UnicodeError):
            return  # the client could not even send it (a header with a newline, ...): nothing reached TARS
        where = f"{case.method} {case.formatted_path} -> {response.status_code} {response.text[:300]}"
        seen[(case.method.upper(), case.path)] += 1
        assert response.status_code < 500, where
        if response.status_code >= 400:
            assert stored(redis_client) <= before, where  # a refused request leaves nothing behind
            if "application/json" in response.headers.get("content-type", ""):
                assert response.json().get("detail"), where
        if not authenticated and (case.method.upper(), case.path) not in OPEN_ROUTES:
            assert response.status_code >= 400, where  # nothing but liveness and pages without a credential
            assert stored(redis_client) <= before, where

    for op in operations:
        run(op=op)
    print(f"schemathesis, {auth}: {sum(seen.values())} requests over {len(seen)} operations, "
          f"fewest {min(seen.values())}")
    assert set(seen) == openapi_operations(spec), f"operations never exercised: {openapi_operations(spec) - set(seen)}"
    if not authenticated:
        assert tasks.status(existing).status == "queued"  # not cancelled by anyone without the secret


header_text = st.from_regex(r"\A([!-~]([ -~]{0,60}[!-~])?)?\Z")
signatures = header_text | st.builds(lambda parts: " ".join(parts), st.lists(
    st.builds("{},{}".format, st.sampled_from(["v1", "v1a", "v2", ""]), header_text), max_size=3))


@hypothesis.settings(max_examples=80, **FUZZ)
@given(msg_id=st.none() | header_text, timestamp=st.none() | header_text | st.integers(-2**70, 2**70).map(str),
       signature=signatures, secret=st.none() | header_text)
def test_garbage_authentication_headers_are_a_401(server, redis_client, http, msg_id, timestamp, signature, secret):
    before = stored(redis_client)
    headers = {"content-type": "application/json", "webhook-signature": signature}
    for name, value in (("webhook-id", msg_id), ("webhook-timestamp", timestamp), ("X-TARS-Webhook-Secret", secret)):
        if value is not None:
            headers[name] = value
    if secret == TEST_WEBHOOK_SECRET:
        return
    for method, path, body in (("POST", "/api/tasks", b'{"goal": "x"}'), ("GET", "/api/tasks", b""),
                               ("POST", "/webhook/background-confirmation", b'{"task_id": "abcd", "code": 1}')):
        answer = http.request(method, server.url + path, content=body, headers=headers)
        assert answer.status_code == 401, (headers, answer.status_code, answer.text[:300])
    assert stored(redis_client) == before


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"goal": ' * 50_000, b'{"task_id": "abcd", "code": ' + b"[" * 30_000])
def test_json_nested_too_deep_is_a_422(server, redis_client, body):
    before = stored(redis_client)
    for path in ("/api/tasks", "/webhook/background-confirmation"):
        answer = httpx.post(server.url + path, content=body, headers={**AUTHS["shared secret"],
                                                                     "content-type": "application/json"})
        assert answer.status_code == 413 if len(body) > 64 * 1024 else 422, (path, answer.text[:200])
    assert stored(redis_client) == before


# --- FastAPI's documentation routes, and methods or paths nobody serves --------------------------------------------
junk = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=30)


@hypothesis.settings(max_examples=60, **FUZZ)
@given(data=st.data())
def test_documentation_routes_and_unknown_methods_never_fail(server, redis_client, http, data):
    before = stored(redis_client)
    paths = sorted(path for _, path in app_routes(server.app)) + ["/", "/nope", "/api", "/api/tasks/", "/voice/x"]
    path = data.draw(st.sampled_from(paths) | st.sampled_from(paths).map(lambda p: p + "/" + "a" * 5000))
    method = data.draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]))
    query = data.draw(st.dictionaries(junk, junk, max_size=4))
    headers = data.draw(st.dictionaries(st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,20}\Z"),
                                        st.from_regex(r"\A([!-~]([ -~]{0,38}[!-~])?)?\Z"), max_size=3))
    headers = {k: v for k, v in headers.items() if k.lower() not in ("content-length", "host", "transfer-encoding",
                                                                     "connection", "upgrade")}
    body = data.draw(st.binary(max_size=200))
    answer = http.request(method, server.url + path, params=query, headers=headers,
                          content=body if method not in ("GET", "HEAD") else None)
    assert answer.status_code < 500, (method, path, answer.status_code, answer.text[:300])
    if (method, path) not in {("GET", "/health"), ("HEAD", "/health")} | DOC_ROUTES:
        assert stored(redis_client) <= before


# --- Twilio's form webhooks -------------------------------------------------------------------------------------------
form_text = st.text(st.characters(codec="utf-8"), max_size=40)
TWILIO_FIELDS = ["From", "To", "CallSid", "AccountSid", "CallStatus", "SessionStatus", "SessionDuration",
                 "HandoffData", "ErrorCode", "ErrorMessage", "Caller", "Direction"]
forms = st.one_of(
    st.dictionaries(form_text, form_text, max_size=8),
    st.builds(lambda base, extra: {**base, **extra},
              st.builds(incoming_call_params, st.sampled_from(["CA" + "2" * 32, "", "CA\x00", "CA" + "9" * 300]),
                        st.sampled_from([OWNER, STRANGER, "", " " + OWNER, OWNER + "\n"])),
              st.dictionaries(st.sampled_from(TWILIO_FIELDS), form_text | st.just(OWNER), max_size=4)),
)


def signed_headers(path: str, query: str, form) -> dict:
    return {"X-Twilio-Signature": sign(TOKEN, PUBLIC + path + (f"?{query}" if query else ""), form)}


def check_twiml(path: str, answer: httpx.Response, caller: str | None) -> None:
    assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    assert answer.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(answer.text)
    assert root.tag == "Response"
    children = [child.tag for child in root]
    if path == "/voice/status":
        assert children == ["Hangup"]
    elif caller == OWNER:
        assert children == ["Connect"] and root.find("Connect/ConversationRelay") is not None
    else:
        assert children == ["Say", "Hangup"] and root.find("Say").text == NOT_OWNER


@pytest.fixture
def http():
    with httpx.Client(timeout=10) as client:  # one connection for many requests: a new one each costs more
        yield client


@hypothesis.settings(max_examples=100, **FUZZ)
@given(path=st.sampled_from(sorted(p for _, p in TWILIO_FORMS)), form=forms,
       query=st.sampled_from(["", "a=1", "x=%00&y=%ff"]), raw=st.none() | st.binary(max_size=300))
def test_twilio_webhooks_refuse_unsigned_forms_and_answer_signed_ones_with_twiml(server, redis_client, http, path,
                                                                                 form, query, raw):
    before = stored(redis_client)
    url = server.url + path + (f"?{query}" if query else "")
    if raw is None:
        body = urlencode(form).encode()
        parsed = form
    else:  # a body that may not be a form at all; the server reads it as parse_qsl would
        body = raw
        parsed = FormData(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    content_type = {"content-type": "application/x-www-form-urlencoded"}
    for headers in ({}, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}, signed_headers(path, query, {"x": "y"}),
                    {"X-Twilio-Signature": sign("another-token", PUBLIC + path, parsed)}):
        refused = http.post(url, content=body, headers={**content_type, **headers})
        assert refused.status_code == 403, (path, refused.status_code, refused.text[:300])
        assert refused.json() == {"detail": "Forbidden: the request is not signed by Twilio."}
    answer = http.post(url, content=body, headers={**content_type, **signed_headers(path, query, parsed)})
    caller = parsed.get("From")
    check_twiml(path, answer, caller)
    assert stored(redis_client) <= before  # the webhooks store nothing (the status callback only deletes)


# --- the ConversationRelay WebSocket ------------------------------------------------------------------------------------
json_leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
RELAY_TYPES = ["setup", "prompt", "interrupt", "dtmf", "error"]
relay_messages = st.fixed_dictionaries(
    {"type": st.sampled_from(RELAY_TYPES) | json_values},
    optional={"callSid": json_values | st.just("CA" + "3" * 32), "from": json_values | st.just(OWNER),
              "sessionId": json_values, "voicePrompt": json_values, "last": json_values, "lang": json_values,
              "digit": st.sampled_from(list("0123456789#*")) | json_values,
              "utteranceUntilInterrupt": json_values, "durationUntilInterruptMs": json_values,
              "description": json_values, "customParameters": json_values})
frames = st.one_of(
    st.text(max_size=100),                                  # mostly not JSON
    st.binary(max_size=100),                                # binary frames
    json_values.map(json.dumps),                            # JSON of the wrong shape
    relay_messages.map(json.dumps),                         # the right shape with wrong fields and types
    st.sampled_from(["x" * 300_000, json.dumps({"type": "prompt", "voicePrompt": "y" * 300_000}),
                     json.dumps({"type": "dtmf", "digit": "1" * 100_000}), "[" * 10_000, "{\"type\": " * 5000]),
)
OWNER_SETUP = json.dumps({"type": "setup", "sessionId": "VX" + "4" * 32, "accountSid": ACCOUNT_SID,
                          "callSid": "CA" + "4" * 32, "from": OWNER, "to": "+15550001111", "customParameters": {}})


def dial(server, signature: str | None = "valid"):
    headers = {} if signature is None else {
        "X-Twilio-Signature": sign(TOKEN, "wss://tars.example.test/relay") if signature == "valid" else signature}
    return connect(f"ws://127.0.0.1:{server.port}/relay", additional_headers=headers, open_timeout=5,
                   close_timeout=2, max_size=None)


def drain(ws, seconds: float) -> tuple[list, int | None]:
    """What the server sends within seconds, and its close code if it closed the socket."""
    got, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            got.append(ws.recv(timeout=left))
        except TimeoutError:
            break
        except ConnectionClosed as closed:
            return got, closed.rcvd.code if closed.rcvd else 1006
    return got, None


def a_fresh_call_still_works(server) -> None:
    with dial(server) as ws:
        ws.send(json.dumps({"type": "setup", "callSid": "CA" + "5" * 32, "from": STRANGER}))
        answer = json.loads(ws.recv(timeout=30))
        assert answer == {"type": "text", "token": NOT_OWNER, "last": True}
        assert json.loads(ws.recv(timeout=30))["type"] == "end"


@hypothesis.settings(max_examples=40, **FUZZ)
@given(owner_first=st.booleans(), sent=st.lists(frames, min_size=1, max_size=6))
def test_garbage_on_the_relay_socket_never_breaks_the_server(server, redis_client, caplog, owner_first, sent):
    caplog.set_level(logging.INFO, logger="tars.voice")
    caplog.clear()
    before = stored(redis_client)
    with dial(server) as ws:
        code = None
        for frame in ([OWNER_SETUP] if owner_first else []) + sent:
            try:
                ws.send(frame)
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else 1006
                break
        got, closed_with = drain(ws, 0.15)
        code = code or closed_with
        assert code not in BAD_CLOSE, (code, sent)
        for raw in got:  # whatever TARS answered is well-formed ConversationRelay JSON
            assert isinstance(raw, str) and json.loads(raw)["type"] in ("text", "end"), raw
    wait_until(lambda: not server.app.state.voice.calls, timeout=10, what="the call to end on the server")
    wait_until(lambda: stored(redis_client) <= before, timeout=10, what="the call's registration to be removed")
    crashes = [r for r in caplog.records if r.name == "tars.voice" and r.exc_info
               and ("relay socket failed" in r.getMessage() or "failed" in r.getMessage()
                    and "handling" in r.getMessage())]
    assert not crashes, [r.getMessage() for r in crashes]
    a_fresh_call_still_works(server)


@pytest.mark.parametrize("signature", [None, "bm90IGEgc2lnbmF0dXJl", "", "\u00e9" * 10, "a" * 5000])
def test_an_unsigned_relay_handshake_is_refused_and_the_server_goes_on(server, redis_client, signature):
    before = stored(redis_client)
    try:
        with dial(server, signature) as ws:
            ws.send(OWNER_SETUP)
            pytest.fail("the handshake was accepted")
    except InvalidStatus as refused:
        assert refused.response.status_code == 403
    except (UnicodeError, ValueError):
        pass  # the client cannot send this header at all
    assert stored(redis_client) <= before and not server.app.state.voice.calls
    a_fresh_call_still_works(server)
