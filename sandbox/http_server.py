"""A scripted HTTP server on 127.0.0.1: the base of the loopback stand-ins (the Cloudflare API, the
alert webhook) and of the tests' fault injection.

    with StubServer() as stub:
        stub.script(Reply(503), Reply(503, headers={"Retry-After": "1"}), Reply(200, json={"ok": 1}))
        stub.route("GET", "/client/v4/accounts/acc/pages/projects/web",
                   Reply(200, json={"success": True, "result": {...}}))
        ... code under test talks to stub.url ...
        assert [r.path for r in stub.requests] == [...]
        assert stub.requests[0].json == {...}

Replies of a route (or of the default `script`) are served in order; the last one repeats
forever. A reply may also be a function `Request -> Reply` for answers that depend on the
request. Unmatched requests get 404 with a JSON body saying so. Every request is recorded
(method, path, query, headers, body, parsed JSON, arrival time) before it is answered.

Tests get it through the fixtures in `tests/support/http_stub.py`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit



@dataclass(frozen=True)
class Reply:
    """One scripted answer. `json` wins over `body`; `delay` sleeps before answering."""

    status: int = 200
    json: Any = None
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Request:
    """One request as it arrived."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    time: float

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


Responder = Reply | Callable[[Request], Reply]


class _Queue:
    """Replies served in order; the last one repeats."""

    def __init__(self, replies: tuple[Responder, ...]):
        if not replies:
            raise ValueError("script at least one reply")
        self._replies = list(replies)
        self._lock = threading.Lock()

    def next(self, request: Request) -> Reply:
        with self._lock:
            responder = self._replies.pop(0) if len(self._replies) > 1 else self._replies[0]
        return responder(request) if callable(responder) else responder


class StubServer:
    """A ThreadingHTTPServer on a loopback port (`port`, default any free one); a context manager."""

    def __init__(self, *, port: int = 0) -> None:
        self.requests: list[Request] = []
        self._routes: list[tuple[str | None, str, _Queue]] = []
        self._default: _Queue | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # scripting -------------------------------------------------------------------------------
    def script(self, *replies: Responder) -> StubServer:
        """Answer every request that matches no route with these replies, in order."""
        self._default = _Queue(replies)
        return self

    def route(self, method: str | None, path: str, *replies: Responder) -> StubServer:
        """Answer `method` (None = any) on exactly `path` (query ignored) with these replies."""
        with self._lock:
            self._routes.append((method.upper() if method else None, path, _Queue(replies)))
        return self

    # reading back ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def requests_to(self, path: str, method: str | None = None) -> list[Request]:
        return [r for r in self.requests if r.path == path and (method is None or r.method == method)]

    def gaps(self) -> list[float]:
        """Seconds between consecutive requests (to check backoff and Retry-After)."""
        times = [r.time for r in self.requests]
        return [b - a for a, b in zip(times, times[1:])]

    # lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # internals -------------------------------------------------------------------------------
    def _answer(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            queue = next(
                (
                    q
                    for method, path, q in self._routes
                    if path == request.path and method in (None, request.method)
                ),
                self._default,
            )
        if queue is None:
            return Reply(404, json={"stub": f"no route for {request.method} {request.path}"})
        return queue.next(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    time=time.monotonic(),
                )
                reply = stub._answer(request)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.json is not None:
                    payload = json.dumps(reply.json).encode()
                    content_type = "application/json"
                else:
                    payload = reply.body.encode() if isinstance(reply.body, str) else reply.body
                    content_type = "text/plain"
                try:
                    self.send_response(reply.status)
                    headers = {"Content-Type": content_type, **reply.headers}
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its own timeout); nothing left to answer

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
                pass  # keep pytest output to the code under test

        return Handler


class StandIn:
    """Base of the loopback API stand-ins: owns a StubServer that answers every request with
    `self._answer(request)`; a context manager; `url` is where it listens."""

    def __init__(self, *, port: int = 0) -> None:
        self._server = StubServer(port=port)
        self._server.script(self._answer)

    def _answer(self, request: Request) -> Reply:
        raise NotImplementedError

    def __enter__(self):
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def requests(self) -> list[Request]:
        return self._server.requests
