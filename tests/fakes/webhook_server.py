"""A real HTTP server on 127.0.0.1 standing in for n8n or Discord: answers POSTs from a plan, records them; a GET gets
`get_reply` (what n8n or Discord answer a GET on their webhook: `doctor` asks that way)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 204
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0  # seconds to sit on the request before answering


@dataclass
class Received:
    path: str
    headers: dict  # lower-case names
    body: bytes
    at: float  # time.monotonic() on arrival

    def json(self):
        return json.loads(self.body)


class FakeWebhook:
    """A ThreadingHTTPServer on 127.0.0.1: answers POSTs from a plan (then `default`), records them."""

    def __init__(self):
        self.plan: deque[Reply] = deque()
        self.default = Reply()
        self.requests: list[Received] = []
        self.get_reply: Reply | None = None  # a GET's answer (not recorded); None: 501, as with no GET route
        self.cond = threading.Condition()
        self.release = threading.Event()  # set: every delay ends now
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if fake.get_reply is None:
                    self.send_error(501, f"Unsupported method ({self.command!r})")
                    return
                self.answer(fake.get_reply)

            def answer(self, reply: Reply):
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the client gave up

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with fake.cond:
                    fake.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                  body, time.monotonic()))
                    reply = fake.plan.popleft() if fake.plan else fake.default
                    fake.cond.notify_all()
                if reply.delay:
                    fake.release.wait(reply.delay)
                self.answer(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def url(self, path="/webhook/tars-progress"):
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(self, count, timeout=5.0):
        with self.cond:
            self.cond.wait_for(lambda: len(self.requests) >= count, timeout)
            return list(self.requests)

    def bodies(self):
        return [r.json() for r in self.requests]

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
