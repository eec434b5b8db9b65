"""Serves the Lambda functions deployed into moto the way their function URLs would, under `node`.

    with LambdaRuntime(aws_endpoint="http://127.0.0.1:5000") as runtime:   # start() -> base URL
        requests.get(f"{runtime.url}/webstack-api-prod/stable/health")

    python -m sandbox.lambda_runtime --port 9000 --aws-endpoint http://127.0.0.1:5000 [--region R]

URLs are `{base}/{function}/{qualifier}/{path...}?{query}`, the `functionUrl` the stand-in `aws`
provider reports under `WEBSTACK_LAMBDA_URL_BASE` (function and qualifier percent-encoded:
`/webstack-api-pr-7/%24LATEST/health`, `/webstack-api-prod/stable/projects`).

Every request is answered from what moto holds at that moment, so a deploy shows at once:
- the qualifier: an alias resolves to its version (a routing config's weights pick one of two
  versions at random, by weight); `$LATEST` and a version number are themselves;
- the function URL config (`get_function_url_config`): no URL -> 403 `{"Message":"Forbidden"}`,
  as for an unknown function or alias. moto keeps one URL config per function and ignores its
  qualifier, so any qualifier of a function with a URL is served. `AWS_IAM` auth needs a SigV4
  `Authorization` header (not verified: moto enforces no IAM);
- the version's configuration (`get_function`): handler, runtime (nodejs* only), environment,
  timeout, memory and CodeSha256. The code comes from sandbox/moto_server.py's code route (a
  stock moto_server never hands a zip back: see that module), is checked against CodeSha256 and
  extracted once per CodeSha256 into the cache directory.

Invocation: a warm "container" per (function, version, code, configuration): a `node` process
running sandbox/lambda_bootstrap.mjs in the extracted code (cwd = LAMBDA_TASK_ROOT), which loads the
handler once and serves invocations one at a time (requests on stdin, answers on a pipe of
their own, JSON lines; the handler's stdout/stderr go to the log). Up to MAX_WORKERS containers per
version serve concurrent requests; a container idle for `idle_ttl` seconds, or of a version whose
code or configuration has since changed, is stopped. The process environment is the function's
variables plus what Lambda sets (AWS_LAMBDA_FUNCTION_NAME/_VERSION/_MEMORY_SIZE, AWS_REGION,
_HANDLER, LAMBDA_TASK_ROOT, TZ, ...) and dummy credentials with AWS_ENDPOINT_URL at moto: nothing of
this process's own environment leaks in. The event is a function-URL (API Gateway payload 2.0)
event; the result maps back per the function-URL rules (statusCode/headers/body/isBase64Encoded/
cookies; a result without statusCode is 200 with the result as JSON). A handler that throws,
crashes its process or outlives the function's timeout (its process is killed) gets
502 `{"Message":"Internal Server Error"}`, as from a function URL.

CORS, when the URL config has `Cors`: preflights (OPTIONS with Origin and
Access-Control-Request-Method) are answered here without invoking the function; other responses
get the configured headers for an allowed origin and lose any `access-control-*` header the
function set (the URL's configuration takes precedence, as AWS documents). A disallowed origin
gets no `access-control-allow-origin` at all. Without `Cors`, responses pass through untouched.

Lambda's Invoke API, `POST /2015-03-31/functions/{name}/invocations[?Qualifier=Q]`, is served too:
moto_server can only invoke through Docker, so sandbox/moto_server.py forwards Invoke here (the
runtime registers itself with it on start), and boto3's `lambda.invoke` against moto runs the
stored code of the version `Qualifier` names (a number, `$LATEST`, an alias, weights honoured; or
a qualified ARN) on the same warm containers. The payload is the event as given; the answer is
the handler's result as JSON with `X-Amz-Executed-Version`, or, when it threw, could not load or
timed out, 200 with `X-Amz-Function-Error: Unhandled` and `{"errorType", "errorMessage", "trace"}`.
`X-Amz-Log-Type: Tail` adds `X-Amz-Log-Result`: the invocation's log (what the handler printed,
init included when this invocation started the container) as base64, its last 4 KB, like
CloudWatch's. `InvocationType` Event (202, run in the background) and DryRun (204) are honoured.
An unknown function, version or alias is 404 ResourceNotFoundException.

One log line per invocation (function, qualifier, version, status, ms, method and path without the
query) to `log_path` or stderr; request headers, query strings and environment values are never
logged. The handler's own output is logged as `[function:version] ...` lines.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import contextlib
import errno
import hashlib
import io
import json
import logging
import os
import random
import select
import shutil
import signal
import subprocess  # node with a fixed argv, no shell  # nosec B404
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import requests

BOOTSTRAP = Path(__file__).with_name("lambda_bootstrap.mjs")
CODE_ROUTE = "/_sandbox/lambda-code"  # sandbox/moto_server.py
RUNTIME_ROUTE = "/_sandbox/lambda-runtime"  # sandbox/moto_server.py
DEFAULT_REGION = "us-east-1"
DUMMY_KEY_ID, DUMMY_SECRET = "testing", "testing"  # noqa: S105 - moto's dummy credentials
MAX_WORKERS = 4  # warm containers per function version
INIT_TIMEOUT = 10.0  # Lambda's own limit for the init phase
MAX_REQUEST_BYTES = 6 * 1024 * 1024  # Lambda's synchronous payload limit
INTERNAL_ERROR = {"Message": "Internal Server Error"}
LOG_LINES_KEPT = 200  # per container, for Invoke's LogType=Tail
LOG_TAIL_BYTES = 4096  # what Invoke's X-Amz-Log-Result holds at most, as on Lambda
# The Invoke API (POST /2015-03-31/functions/{name}/invocations), served here because moto_server
# needs Docker for it; sandbox/moto_server.py forwards it to this runtime.
INVOKE_PREFIX, INVOKE_SUFFIX = "/2015-03-31/functions/", "/invocations"
FORBIDDEN = {"Message": "Forbidden"}
# Request bodies of these types reach the handler as text; any other body is base64, as AWS does.
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript", "application/graphql")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", "te", "trailer"}

log = logging.getLogger("sandbox.lambda_runtime")


class Refused(Exception):
    """The request is answered without invoking anything (status, JSON body)."""

    def __init__(self, status: int, body: dict[str, str], reason: str) -> None:
        super().__init__(reason)
        self.status, self.body, self.reason = status, body, reason


class InvokeFailed(Exception):
    """The function threw, crashed, timed out or could not start: a function URL answers 502, the
    Invoke API 200 with `X-Amz-Function-Error: Unhandled` and `error` as the payload."""

    def __init__(self, message: str, *, error_type: str = "Runtime.Error", error_message: str | None = None,
                 trace: list[str] | None = None, log_lines: list[str] | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.error = {"errorType": error_type, "errorMessage": error_message if error_message is not None else message,
                      "trace": list(trace or [])}  # fmt: skip
        self.log_lines = list(log_lines or [])


@dataclass(frozen=True)
class Target:
    """One resolved function version and what running it needs."""

    function: str
    qualifier: str
    version: str
    arn: str
    handler: str
    runtime: str
    timeout: float
    memory: int
    environment: dict[str, str]
    code_sha256: str

    @property
    def account(self) -> str:
        return self.arn.split(":")[4]

    @property
    def key(self) -> tuple[str, ...]:
        """What a warm container is good for: a new deploy of code or configuration changes it."""
        env_digest = hashlib.sha256(json.dumps(self.environment, sort_keys=True).encode()).hexdigest()
        return (self.function, self.version, self.code_sha256, self.handler, self.runtime,
                str(self.timeout), str(self.memory), env_digest)  # fmt: skip


# ------------------------------------------------------------------------------------------ code
class CodeCache:
    """Extracted deployment packages under `root`, one directory per CodeSha256."""

    def __init__(self, root: Path, fetch: Callable[[Target], bytes]) -> None:
        self.root = root
        self._fetch = fetch
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.extractions = 0

    @staticmethod
    def dirname(code_sha256: str) -> str:
        try:
            return base64.b64decode(code_sha256, validate=True).hex()
        except (binascii.Error, ValueError):
            return hashlib.sha256(code_sha256.encode()).hexdigest()

    def path_for(self, target: Target) -> Path:
        final = self.root / self.dirname(target.code_sha256)
        if final.is_dir():
            return final
        with self._guard:
            lock = self._locks.setdefault(final.name, threading.Lock())
        with lock:
            if final.is_dir():
                return final
            data = self._fetch(target)
            actual = base64.b64encode(hashlib.sha256(data).digest()).decode()
            if actual != target.code_sha256:
                raise InvokeFailed(
                    f"code of {target.function}:{target.version} has CodeSha256 {actual}, moto reports "
                    f"{target.code_sha256} (changed while being fetched?)"
                )
            self.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=self.root))
            try:
                _extract(data, staging)
                try:
                    staging.rename(final)
                except OSError:
                    if not final.is_dir():  # another runtime sharing this cache won the race
                        raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            self.extractions += 1
            log.info("code extracted sha256=%s function=%s version=%s", target.code_sha256, target.function, target.version)
            return final


def _extract(data: bytes, dest: Path) -> None:
    """Unzip without letting an entry escape `dest`; executable bits kept, as Lambda does."""
    root = dest.resolve()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            target = (dest / info.filename).resolve()
            if target != root and root not in target.parents:
                raise InvokeFailed(f"zip entry {info.filename!r} points outside the package")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out)
            mode = (info.external_attr >> 16) & 0o777
            target.chmod(0o755 if mode & 0o111 else 0o644)


# --------------------------------------------------------------------------------------- workers
class Worker:
    """One warm container: a node process running the bootstrap for one Target."""

    def __init__(self, target: Target, code_dir: Path, env: dict[str, str], node: str) -> None:
        self.target = target
        self.key = target.key
        self.last_used = time.monotonic()
        read_fd, write_fd = os.pipe()
        heap = max(64, target.memory * 9 // 10)
        try:
            self.proc = subprocess.Popen(  # noqa: S603 - fixed argv  # nosec B603
                [node, f"--max-old-space-size={heap}", str(BOOTSTRAP), "--response-fd", str(write_fd)],
                cwd=code_dir, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=(write_fd,), start_new_session=True,
            )  # fmt: skip
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self._stdin: Any = self.proc.stdin
        # Non-blocking, so that a container that stops reading cannot hold a request past its timeout.
        os.set_blocking(self._stdin.fileno(), False)
        self._fd = read_fd
        self._buffer = bytearray()
        self._seq = 0
        label = f"[{target.function}:{target.version}]"
        # What the handler printed, newest last (CloudWatch's role): an Invoke with LogType=Tail
        # hands back the lines of its own invocation, an init failure those of the init.
        self.lines: collections.deque[str] = collections.deque(maxlen=LOG_LINES_KEPT)
        self.lines_seen = 0
        self._pumps = [
            threading.Thread(target=_pump, args=(stream, label, self._line), daemon=True)
            for stream in (self.proc.stdout, self.proc.stderr)
        ]
        for pump in self._pumps:
            pump.start()

    def _line(self, text: str) -> None:
        self.lines.append(text)
        self.lines_seen += 1

    def lines_since(self, mark: int) -> list[str]:
        """The lines printed after `lines_seen` was `mark` (as many as are still kept)."""
        new = self.lines_seen - mark
        return list(self.lines)[-new:] if new > 0 else []

    def settle(self, quiet: float = 0.03, limit: float = 0.3) -> None:
        """Wait until the handler's output has been read (no new line for `quiet` seconds): its
        stdout/stderr travel on other pipes than its answer and may arrive a moment later."""
        deadline = time.monotonic() + limit
        seen = self.lines_seen
        while time.monotonic() < deadline:
            if not self.alive:
                for pump in self._pumps:
                    pump.join(max(0.0, deadline - time.monotonic()))
                return
            time.sleep(quiet)
            if self.lines_seen == seen:
                return
            seen = self.lines_seen

    def _write(self, data: bytes, deadline: float) -> None:
        fd, view = self._stdin.fileno(), memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            _, writable, _ = select.select([], [fd], [], remaining)
            if writable:
                try:
                    view = view[os.write(fd, view) :]
                except BlockingIOError:
                    continue

    def _message(self, deadline: float) -> dict[str, Any]:
        while (end := self._buffer.find(b"\n")) < 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self._fd], [], [], remaining)
            if ready:
                chunk = os.read(self._fd, 1 << 16)
                if not chunk:
                    raise EOFError
                self._buffer += chunk
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return json.loads(line)

    def wait_ready(self) -> None:
        try:
            message = self._message(time.monotonic() + INIT_TIMEOUT)
        except TimeoutError:
            self.kill()
            raise InvokeFailed(f"init did not finish within {INIT_TIMEOUT:.0f}s", error_type="Runtime.InitTimeout",
                               log_lines=self._final_lines()) from None  # fmt: skip
        except EOFError:
            self.kill()
            raise InvokeFailed(f"node exited during init ({self.proc.poll()})", error_type="Runtime.ExitError",
                               log_lines=self._final_lines()) from None  # fmt: skip
        if message.get("type") != "ready":
            self.kill()
            error = message.get("error") or {}
            raise InvokeFailed(
                f"init failed: {error.get('errorType')}: {error.get('errorMessage')}",
                error_type=str(error.get("errorType") or "Runtime.InitError"),
                error_message=str(error.get("errorMessage")),
                trace=[str(line) for line in error.get("stack") or []],
                log_lines=self._final_lines(),
            )

    def _final_lines(self) -> list[str]:
        """Everything a dead container printed (its pumps have read to the end)."""
        for pump in self._pumps:
            pump.join(1.0)
        return list(self.lines)

    def invoke(self, event: dict[str, Any], context: dict[str, Any], timeout: float) -> Any:
        """The handler's result, or InvokeFailed (the process is killed unless the handler just threw)."""
        self._seq += 1
        mark = self.lines_seen
        deadline = time.monotonic() + timeout
        request = {"id": self._seq, "event": event, "context": {**context, "deadlineMs": int(time.time() * 1000 + timeout * 1000)}}
        try:
            self._write(json.dumps(request).encode() + b"\n", deadline)
            message = self._message(deadline)
        except TimeoutError:
            self.kill()
            raise InvokeFailed(f"Task timed out after {timeout:.2f} seconds", error_type="Sandbox.Timedout",
                               log_lines=self.lines_since(mark)) from None  # fmt: skip
        except (EOFError, BrokenPipeError, OSError, ValueError) as exc:
            self.kill()
            raise InvokeFailed(f"Runtime exited ({self.proc.poll()}): {type(exc).__name__}", error_type="Runtime.ExitError",
                               log_lines=self._final_lines()[-max(1, self.lines_seen - mark):]) from None  # fmt: skip
        finally:
            self.last_used = time.monotonic()
        if message.get("id") != self._seq:
            self.kill()
            raise InvokeFailed("the runtime answered another invocation")
        if not message.get("ok"):
            error = message.get("error") or {}
            self.settle()
            raise InvokeFailed(
                f"{error.get('errorType')}: {error.get('errorMessage')}",
                error_type=str(error.get("errorType") or "Error"),
                error_message=str(error.get("errorMessage")),
                trace=[str(line) for line in error.get("stack") or []],
                log_lines=self.lines_since(mark),
            )
        return message.get("result")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        with contextlib.suppress(OSError):
            self._stdin.close()
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = -1


def _pump(stream: Any, label: str, keep: Callable[[str], None]) -> None:
    """The handler's stdout/stderr into the log, line by line (CloudWatch's role)."""
    with contextlib.suppress(ValueError, OSError):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            keep(line)
            log.info("%s %s", label, line)


class WorkerPool:
    """Warm containers by Target.key; at most MAX_WORKERS per key, extra requests wait."""

    def __init__(self, spawn: Callable[[Target], Worker], idle_ttl: float) -> None:
        self._spawn = spawn
        self._idle_ttl = idle_ttl
        self._idle: dict[tuple[str, ...], list[Worker]] = {}
        self._busy: dict[tuple[str, ...], int] = {}
        self._current: dict[tuple[str, str], tuple[str, ...]] = {}
        self._cond = threading.Condition()
        self._closed = False

    @contextlib.contextmanager
    def worker(self, target: Target) -> Iterator[Worker]:
        worker = self._acquire(target)
        try:
            yield worker
        finally:
            # A handler that threw leaves its container usable, as on Lambda; Worker.invoke kills
            # the process on anything that leaves the protocol in doubt (timeout, crash, garbage).
            self._release(worker, worker.alive)

    def _acquire(self, target: Target) -> Worker:
        key, group = target.key, (target.function, target.version)
        stale: list[Worker] = []
        with self._cond:
            if self._current.get(group) != key:
                self._current[group] = key  # a new deploy: containers of the old one go
                for other in [k for k in self._idle if k[:2] == key[:2] and k != key]:
                    stale += self._idle.pop(other)
            while True:
                idle = self._idle.get(key) or []
                while idle and not idle[-1].alive:
                    stale.append(idle.pop())
                if idle:
                    worker = idle.pop()
                    self._busy[key] = self._busy.get(key, 0) + 1
                    break
                if self._busy.get(key, 0) < MAX_WORKERS:
                    self._busy[key] = self._busy.get(key, 0) + 1
                    worker = None
                    break
                self._cond.wait(1.0)
        for old in stale:
            old.kill()
        if worker is not None:
            return worker
        try:
            return self._spawn(target)
        except BaseException:
            with self._cond:
                self._busy[key] -= 1
                self._cond.notify()
            raise

    def _release(self, worker: Worker, healthy: bool) -> None:
        keep = False
        with self._cond:
            self._busy[worker.key] -= 1
            group = (worker.target.function, worker.target.version)
            if healthy and worker.alive and not self._closed and self._current.get(group) == worker.key:
                self._idle.setdefault(worker.key, []).append(worker)
                keep = True
            self._cond.notify()
        if not keep:
            worker.kill()

    def reap(self) -> None:
        now = time.monotonic()
        expired: list[Worker] = []
        with self._cond:
            for key, workers in self._idle.items():
                expired += [w for w in workers if now - w.last_used > self._idle_ttl or not w.alive]
                workers[:] = [w for w in workers if w not in expired]
        for worker in expired:
            worker.kill()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            workers = [w for ws in self._idle.values() for w in ws]
            self._idle.clear()
        for worker in workers:
            worker.kill()

    def count(self, function: str | None = None) -> int:
        """Containers running (idle or busy), of one function or of all."""
        with self._cond:
            idle = sum(len(ws) for k, ws in self._idle.items() if function in (None, k[0]))
            return idle + sum(n for k, n in self._busy.items() if function in (None, k[0]))


# --------------------------------------------------------------------------------- HTTP mapping
def build_event(*, method: str, raw_path: str, query: str, headers: list[tuple[str, str]], body: bytes,
                source_ip: str, account: str, url_id: str, request_id: str) -> dict[str, Any]:  # fmt: skip
    """The function-URL (API Gateway payload 2.0) event for one HTTP request."""
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        name = name.lower()
        if name == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
            continue
        merged[name] = f"{merged[name]},{value}" if name in merged else value
    host = merged.get("host", "localhost")
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": merged,
        "requestContext": {
            "accountId": account,
            "apiId": url_id,
            "domainName": host,
            "domainPrefix": host.split(".")[0].split(":")[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        params = urllib.parse.parse_qs(query, keep_blank_values=True)
        event["queryStringParameters"] = {k: ",".join(v) for k, v in params.items()}
    if body:
        content_type = merged.get("content-type", "").split(";")[0].strip().lower()
        textual = content_type.startswith(TEXT_TYPES) or content_type.endswith(("+json", "+xml"))
        try:
            event["body"] = body.decode("utf-8") if textual else None
        except UnicodeDecodeError:
            event["body"] = None
        if event["body"] is None:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def map_result(result: Any) -> HttpResponse:
    """The HTTP response a function URL makes of a handler's result."""
    if isinstance(result, dict) and "statusCode" in result:
        try:
            status = int(result["statusCode"])
        except (TypeError, ValueError):
            raise InvokeFailed(f"invalid statusCode {result['statusCode']!r}") from None
        headers = [(str(k).lower(), str(v)) for k, v in (result.get("headers") or {}).items()]
        body = result.get("body")
        if body is None:
            data = b""
        elif not isinstance(body, str):
            data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        elif result.get("isBase64Encoded"):
            try:
                data = base64.b64decode(body)
            except (binascii.Error, ValueError):
                raise InvokeFailed("isBase64Encoded body is not base64") from None
        else:
            data = body.encode()
        headers += [("set-cookie", str(c)) for c in result.get("cookies") or []]
        return HttpResponse(status, [(k, v) for k, v in headers if k not in HOP_BY_HOP], data)
    data = json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode()
    return HttpResponse(200, [("content-type", "application/json")], data)


def _origin_allowed(cors: dict[str, Any], origin: str | None) -> bool:
    if not origin:
        return False
    allowed = {o.rstrip("/").lower() for o in cors.get("AllowOrigins") or []}
    return "*" in allowed or origin.rstrip("/").lower() in allowed


def cors_headers(cors: dict[str, Any], origin: str | None, *, preflight: bool, request_method: str = "",
                 request_headers: str = "") -> list[tuple[str, str]]:  # fmt: skip
    """The CORS headers of a function URL's configuration for `origin` (none when not allowed)."""
    if not _origin_allowed(cors, origin):
        return []
    wildcard = "*" in (cors.get("AllowOrigins") or []) and not cors.get("AllowCredentials")
    headers = [("access-control-allow-origin", "*" if wildcard else str(origin))]
    if cors.get("AllowCredentials"):
        headers.append(("access-control-allow-credentials", "true"))
    if preflight:
        methods = [m.upper() for m in cors.get("AllowMethods") or []]
        if "*" in methods:
            methods = [request_method.upper()] if request_method else ["*"]
        if methods:
            headers.append(("access-control-allow-methods", ", ".join(methods)))
        allow = [h.lower() for h in cors.get("AllowHeaders") or []]
        if "*" in allow:
            allow = [h.strip().lower() for h in request_headers.split(",") if h.strip()] or ["*"]
        if allow:
            headers.append(("access-control-allow-headers", ", ".join(allow)))
        if cors.get("MaxAge") is not None:
            headers.append(("access-control-max-age", str(cors["MaxAge"])))
    elif cors.get("ExposeHeaders"):
        headers.append(("access-control-expose-headers", ", ".join(cors["ExposeHeaders"])))
    return headers


def with_cors(response: HttpResponse, cors: dict[str, Any], origin: str | None) -> HttpResponse:
    """The URL's CORS configuration over whatever CORS headers the function returned."""
    kept = [(k, v) for k, v in response.headers if not k.startswith("access-control-")]
    if not any(k == "vary" and "origin" in v.lower() for k, v in kept):
        kept.append(("vary", "Origin"))
    return HttpResponse(response.status, [*kept, *cors_headers(cors, origin, preflight=False)], response.body)


# ---------------------------------------------------------------------------------- the runtime
class LambdaRuntime:
    """The loopback server; `start()` returns its base URL, `stop()` ends it and every node process."""

    def __init__(self, aws_endpoint: str, *, region: str = DEFAULT_REGION, host: str = "127.0.0.1", port: int = 0,
                 cache_dir: str | Path | None = None, log_path: str | Path | None = None, node: str | None = None,
                 idle_ttl: float = 600.0) -> None:  # fmt: skip
        self.aws_endpoint = aws_endpoint.rstrip("/")
        self.region = region
        self._address = (host, port)
        self._own_cache = cache_dir is None
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.log_path = Path(log_path) if log_path else None
        self._node = node
        self._idle_ttl = idle_ttl
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._log_handler: logging.Handler | None = None
        self.code: CodeCache | None = None
        self.pool: WorkerPool | None = None

    # lifecycle -----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the runtime is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        node = self._node or shutil.which("node")
        if not node:
            raise RuntimeError("node not found on PATH: the Lambda runtime runs handlers under Node.js 20")
        self._node = node
        server = ThreadingHTTPServer(self._address, _handler_class(self))  # OSError when the port is taken
        server.daemon_threads = True
        self._server = server
        self._setup_logging()
        if self.cache_dir is None:
            self.cache_dir = Path(tempfile.mkdtemp(prefix="lambda-runtime-"))
        self.code = CodeCache(self.cache_dir, self._fetch_code)
        self.pool = WorkerPool(self._spawn, self._idle_ttl)
        self._lambda = boto3.session.Session().client(
            "lambda",
            endpoint_url=self.aws_endpoint,
            region_name=self.region,
            aws_access_key_id=DUMMY_KEY_ID,
            aws_secret_access_key=DUMMY_SECRET,
            config=botocore.config.Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=30),
        )
        self._stopping.clear()
        for target in (lambda: server.serve_forever(poll_interval=0.1), self._reaper):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("lambda runtime listening on %s (moto %s)", self.url, self.aws_endpoint)
        self._register(True)
        return self.url

    def _register(self, up: bool) -> None:
        """Tell sandbox/moto_server.py where to forward Invoke calls (best effort: a plain
        moto_server has no such route, and only function URLs are served then)."""
        try:
            call = requests.put if up else requests.delete
            answer = call(f"{self.aws_endpoint}{RUNTIME_ROUTE}", data=self.url, timeout=5)
            if answer.status_code != 204:
                log.info("moto at %s does not forward Invoke here (%s answered %s)", self.aws_endpoint, RUNTIME_ROUTE, answer.status_code)
        except requests.RequestException as exc:
            log.info("could not reach moto at %s to register for Invoke: %s", self.aws_endpoint, type(exc).__name__)

    def stop(self) -> None:
        if self._server is not None:
            self._register(False)
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        if self.pool is not None:
            self.pool.close()
        if self._own_cache and self.cache_dir is not None:
            shutil.rmtree(self.cache_dir, ignore_errors=True)
            self.cache_dir = None
        if self._log_handler is not None:
            log.removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None

    def __enter__(self) -> LambdaRuntime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _setup_logging(self) -> None:
        handler: logging.Handler = (
            logging.FileHandler(self.log_path, encoding="utf-8") if self.log_path else logging.StreamHandler(sys.stderr)
        )
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
        self._log_handler = handler

    def _reaper(self) -> None:
        while not self._stopping.wait(min(30.0, self._idle_ttl)):
            if self.pool is not None:
                self.pool.reap()

    # moto ------------------------------------------------------------------------------------------
    def resolve(self, function: str, qualifier: str) -> tuple[dict[str, Any], Target]:
        """(function URL config, Target) from moto, or Refused."""
        try:
            url_config = self._lambda.get_function_url_config(FunctionName=function, Qualifier=qualifier)
        except botocore.exceptions.ClientError as exc:
            raise self._refusal(exc, function, qualifier, FORBIDDEN) from None
        except (botocore.exceptions.BotoCoreError, requests.RequestException) as exc:
            raise Refused(502, INTERNAL_ERROR, f"moto at {self.aws_endpoint} unreachable: {type(exc).__name__}") from None
        return url_config, self.target(function, qualifier)

    def _refusal(self, exc: botocore.exceptions.ClientError, function: str, qualifier: str,
                 not_found: dict[str, str]) -> Refused:  # fmt: skip
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("ResourceNotFoundException", "404", "InvalidParameterValueException", "ValidationException"):
            status = 403 if not_found is FORBIDDEN else 404
            return Refused(status, not_found, f"{function}:{qualifier}: {code}")
        return Refused(502, INTERNAL_ERROR, f"moto answered {code} for {function}:{qualifier}")

    def target(self, function: str, qualifier: str, *, not_found: dict[str, str] = FORBIDDEN) -> Target:
        """The version `qualifier` ($LATEST, a number, an alias: weighted by its routing) runs, or Refused."""
        lam = self._lambda
        try:
            version = qualifier
            if qualifier != "$LATEST" and not qualifier.isdigit():
                version = pick_version(lam.get_alias(FunctionName=function, Name=qualifier))
            config = lam.get_function(FunctionName=function, Qualifier=version)["Configuration"]
        except botocore.exceptions.ClientError as exc:
            raise self._refusal(exc, function, qualifier, not_found) from None
        except (botocore.exceptions.BotoCoreError, requests.RequestException) as exc:
            raise Refused(502, INTERNAL_ERROR, f"moto at {self.aws_endpoint} unreachable: {type(exc).__name__}") from None
        return Target(
            function=function,
            qualifier=qualifier,
            version=str(config.get("Version") or version),
            arn=config["FunctionArn"],
            handler=config.get("Handler") or "",
            runtime=config.get("Runtime") or "",
            timeout=float(config.get("Timeout") or 3),
            memory=int(config.get("MemorySize") or 128),
            environment=dict((config.get("Environment") or {}).get("Variables") or {}),
            code_sha256=config.get("CodeSha256") or "",
        )

    def _fetch_code(self, target: Target) -> bytes:
        params = {"function": target.function, "qualifier": target.version, "region": self.region, "account": target.account}
        try:
            answer = requests.get(f"{self.aws_endpoint}{CODE_ROUTE}", params=params, timeout=60)
        except requests.RequestException as exc:
            raise InvokeFailed(f"cannot fetch code from moto: {type(exc).__name__}") from None
        if answer.status_code != 200 or "x-code-sha256" not in answer.headers:
            raise InvokeFailed(
                f"moto at {self.aws_endpoint} does not hand out Lambda code ({CODE_ROUTE} answered "
                f"{answer.status_code}): run it as `python -m sandbox.moto_server`, not plain moto_server"
            )
        return answer.content

    # invocation ------------------------------------------------------------------------------------
    def _environment(self, target: Target, code_dir: Path) -> dict[str, str]:
        node_dir = str(Path(self._node or "node").resolve().parent)
        return {
            "PATH": f"{node_dir}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "AWS_ENDPOINT_URL": self.aws_endpoint,  # an SDK call from the handler reaches moto, never AWS
            **target.environment,
            # Lambda's reserved variables win over the function's own.
            "TZ": ":UTC",
            "_HANDLER": target.handler,
            "LAMBDA_TASK_ROOT": str(code_dir),
            "LAMBDA_RUNTIME_DIR": str(BOOTSTRAP.parent),
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{target.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": target.function,
            "AWS_LAMBDA_FUNCTION_VERSION": target.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(target.memory),
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{target.function}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{datetime.now(UTC):%Y/%m/%d}/[{target.version}]{uuid.uuid4().hex}",
            "AWS_ACCESS_KEY_ID": DUMMY_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET,
            "AWS_SESSION_TOKEN": DUMMY_SECRET,
        }

    def _spawn(self, target: Target) -> Worker:
        if self.code is None or self._node is None:
            raise RuntimeError("the runtime is not started")
        code_dir = self.code.path_for(target)
        worker = Worker(target, code_dir, self._environment(target, code_dir), self._node)
        log.info("container start function=%s version=%s", target.function, target.version)
        worker.wait_ready()
        return worker

    def invoke(self, target: Target, event: dict[str, Any]) -> HttpResponse:
        """Run the handler on a warm container and map its result; InvokeFailed -> the caller's 502."""
        result, _ = self.run(target, event, event["requestContext"]["requestId"])
        return map_result(result)

    def run(self, target: Target, event: Any, request_id: str, *, tail: bool = False) -> tuple[Any, list[str]]:
        """(the handler's result, the lines it printed when `tail`), or InvokeFailed."""
        if not target.runtime.startswith("nodejs"):
            raise InvokeFailed(f"runtime {target.runtime!r} is not served here (nodejs* only)")
        if self.pool is None:
            raise RuntimeError("the runtime is not started")
        unqualified = ":".join(target.arn.split(":")[:7])
        context = {"awsRequestId": request_id, "invokedFunctionArn": f"{unqualified}:{target.qualifier}"}
        with self.pool.worker(target) as worker:
            mark = worker.lines_seen
            result = worker.invoke(event, context, target.timeout)
            if tail:
                worker.settle()
            return result, worker.lines_since(mark) if tail else []

    def invoke_api(self, function: str, qualifier: str, payload: bytes, headers: Any, request_id: str) -> HttpResponse:
        """Lambda's Invoke: the handler's result as the payload (RequestResponse), 202 (Event) or
        204 (DryRun); a function error is 200 with X-Amz-Function-Error and the error as payload."""
        function, qualifier = split_function(function, qualifier)
        invocation_type = headers.get("X-Amz-Invocation-Type") or "RequestResponse"
        if invocation_type not in ("RequestResponse", "Event", "DryRun"):
            return api_error(400, "InvalidParameterValueException", f"Invalid invocation type {invocation_type[:40]!r}")
        try:
            event = json.loads(payload) if payload.strip() else {}
        except ValueError:
            return api_error(400, "InvalidRequestContentException", "Could not parse request body into json")
        try:
            target = self.target(function, qualifier, not_found={"Message": "not found"})
        except Refused as refused:
            if refused.status == 404:
                return api_error(404, "ResourceNotFoundException", f"Function not found: {function}:{qualifier}")
            raise
        executed = [("x-amz-executed-version", target.version)]
        if invocation_type == "DryRun":
            return HttpResponse(204, executed, b"")
        if invocation_type == "Event":
            threading.Thread(target=self._run_logged, args=(target, event, request_id), daemon=True).start()
            return HttpResponse(202, [], b"")
        tail = (headers.get("X-Amz-Log-Type") or "None") == "Tail"
        started = time.monotonic()
        try:
            result, lines = self.run(target, event, request_id, tail=tail)
            status, extra, body = 200, [], json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode()
        except InvokeFailed as failed:
            log.info("error function=%s version=%s: %s", target.function, target.version, failed)
            lines = failed.log_lines
            status, extra, body = 200, [("x-amz-function-error", "Unhandled")], json.dumps(failed.error).encode()
        if tail:
            extra.append(("x-amz-log-result", log_result(request_id, target.version, lines, time.monotonic() - started)))
        return HttpResponse(status, [("content-type", "application/json"), *executed, *extra], body)

    def _run_logged(self, target: Target, event: Any, request_id: str) -> None:
        try:
            self.run(target, event, request_id)
        except InvokeFailed as failed:
            log.info("error function=%s version=%s (async): %s", target.function, target.version, failed)


def split_function(function: str, qualifier: str) -> tuple[str, str]:
    """(name, qualifier) of Invoke's FunctionName (a name, `name:qualifier`, a partial or full
    ARN) and its `Qualifier` parameter; a qualifier in both must agree (Lambda's rule)."""
    parts = function.split(":")
    if len(parts) >= 7 and parts[0] == "arn":  # arn:aws:lambda:region:account:function:name[:q]
        parts = parts[6:]
    elif len(parts) >= 3 and parts[1] == "function":  # account:function:name[:q]
        parts = parts[2:]
    name = parts[0]
    inline = parts[1] if len(parts) > 1 else ""
    if inline and qualifier and inline != qualifier:
        raise Refused(400, {"Message": "The derived qualifier from the function name does not match the specified qualifier."},
                      "qualifier mismatch")  # fmt: skip
    return name, inline or qualifier or "$LATEST"


def api_error(status: int, code: str, message: str) -> HttpResponse:
    """A Lambda API error as botocore parses it (the type in x-amzn-errortype and the body)."""
    body = json.dumps({"Type": "User", "message": message, "__type": code}).encode()
    return HttpResponse(status, [("content-type", "application/json"), ("x-amzn-errortype", code)], body)


def log_result(request_id: str, version: str, lines: list[str], seconds: float) -> str:
    """X-Amz-Log-Result: the invocation's log as CloudWatch would hold it, its last 4 KB, base64."""
    text = "\n".join([
        f"START RequestId: {request_id} Version: {version}",
        *lines,
        f"END RequestId: {request_id}",
        f"REPORT RequestId: {request_id}\tDuration: {seconds * 1000:.2f} ms",
    ]) + "\n"  # fmt: skip
    return base64.b64encode(text.encode()[-LOG_TAIL_BYTES:]).decode()


def pick_version(alias: dict[str, Any]) -> str:
    """The version an alias routes this request to: its own, or one of its weighted extras."""
    weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    roll = random.random()  # noqa: S311 - traffic shifting, not security  # nosec B311
    for version, weight in weights.items():
        roll -= float(weight)
        if roll < 0:
            return str(version)
    return str(alias["FunctionVersion"])


def _handler_class(runtime: LambdaRuntime) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def version_string(self) -> str:
            return "sandbox-lambda-url"

        def _serve(self) -> None:
            started = time.monotonic()
            request_id = str(uuid.uuid4())
            parts = urllib.parse.urlsplit(self.path)
            if self.command == "POST" and parts.path.startswith(INVOKE_PREFIX) and parts.path.endswith(INVOKE_SUFFIX):
                self._serve_invoke(parts, request_id, started)
                return
            segments = parts.path.lstrip("/").split("/", 2)
            function = urllib.parse.unquote(segments[0]) if segments[0] else ""
            qualifier = urllib.parse.unquote(segments[1]) if len(segments) > 1 else ""
            raw_path = "/" + (segments[2] if len(segments) > 2 else "")
            version, kind = "-", "invoke"
            try:
                body = self._body()
                if not function or not qualifier:
                    raise Refused(404, {"Message": "Not Found"}, "no /{function}/{qualifier}/ in the path")
                url_config, target = runtime.resolve(function, qualifier)
                version = target.version
                cors = url_config.get("Cors") or {}
                origin = self.headers.get("Origin")
                if cors and self.command == "OPTIONS" and origin and self.headers.get("Access-Control-Request-Method"):
                    headers = cors_headers(cors, origin, preflight=True,
                                           request_method=self.headers.get("Access-Control-Request-Method", ""),
                                           request_headers=self.headers.get("Access-Control-Request-Headers", ""))  # fmt: skip
                    response = HttpResponse(200, [*headers, ("vary", "Origin")], b"")
                    kind = "preflight"
                else:
                    if url_config.get("AuthType") == "AWS_IAM" and not (self.headers.get("Authorization") or "").startswith("AWS4-HMAC-SHA256"):
                        raise Refused(403, FORBIDDEN, "AWS_IAM function URL called without a SigV4 signature")
                    event = build_event(
                        method=self.command, raw_path=raw_path, query=parts.query, headers=list(self.headers.items()),
                        body=body, source_ip=self.client_address[0], account=target.account,
                        url_id=_url_id(url_config), request_id=request_id,
                    )  # fmt: skip
                    response = runtime.invoke(target, event)
                    if cors:
                        response = with_cors(response, cors, origin)
            except Refused as refused:
                log.info("refused function=%s qualifier=%s: %s", function, qualifier, refused.reason)
                response, kind = _json_response(refused.status, refused.body), "refused"
            except InvokeFailed as failed:
                log.info("error function=%s version=%s: %s", function, version, failed)
                response = _json_response(502, INTERNAL_ERROR)
            except Exception:  # a bug of ours must still answer, like Lambda's own 5xx
                log.exception("runtime error function=%s version=%s", function, version)
                response = _json_response(502, INTERNAL_ERROR)
            response.headers.append(("x-amzn-requestid", request_id))
            self._send(response)
            log.info("%s function=%s qualifier=%s version=%s status=%s ms=%d %s %s", kind, function, qualifier, version,
                     response.status, (time.monotonic() - started) * 1000, self.command, parts.path)  # fmt: skip

        def _serve_invoke(self, parts: urllib.parse.SplitResult, request_id: str, started: float) -> None:
            function = urllib.parse.unquote(parts.path[len(INVOKE_PREFIX) : -len(INVOKE_SUFFIX)])
            qualifier = (urllib.parse.parse_qs(parts.query).get("Qualifier") or [""])[0]
            try:
                response = runtime.invoke_api(function, qualifier, self._body(), self.headers, request_id)
            except Refused as refused:
                log.info("refused invoke function=%s qualifier=%s: %s", function, qualifier, refused.reason)
                response = _json_response(refused.status, refused.body)
            except Exception:  # a bug of ours must still answer
                log.exception("runtime error (invoke) function=%s", function)
                response = api_error(500, "ServiceException", "the local Lambda runtime failed (see its log)")
            response.headers.append(("x-amzn-requestid", request_id))
            self._send(response)
            log.info("api-invoke function=%s qualifier=%s status=%s error=%s ms=%d", function, qualifier or "$LATEST",
                     response.status, dict(response.headers).get("x-amz-function-error", "-"),
                     (time.monotonic() - started) * 1000)  # fmt: skip

        def _body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                data = bytearray()
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    data += self.rfile.read(size)
                    self.rfile.readline()
                    if len(data) > MAX_REQUEST_BYTES:
                        break
            else:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_REQUEST_BYTES:
                    self.close_connection = True
                    raise Refused(413, {"Message": f"Request must be smaller than {MAX_REQUEST_BYTES} bytes for the InvokeFunction operation"}, "request too large")
                data = bytearray(self.rfile.read(length) if length else b"")
            if len(data) > MAX_REQUEST_BYTES:
                self.close_connection = True
                raise Refused(413, {"Message": f"Request must be smaller than {MAX_REQUEST_BYTES} bytes for the InvokeFunction operation"}, "request too large")
            return bytes(data)

        def _send(self, response: HttpResponse) -> None:
            try:
                self.send_response(response.status)
                for name, value in response.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
            pass  # one line per invocation is written by _serve, without the query string

    return Handler


def _json_response(status: int, body: dict[str, str]) -> HttpResponse:
    return HttpResponse(status, [("content-type", "application/json")], json.dumps(body).encode())


def _url_id(url_config: dict[str, Any]) -> str:
    host = urllib.parse.urlsplit(url_config.get("FunctionUrl") or "").hostname or ""
    return host.split(".")[0]


# ----------------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.lambda_runtime", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    parser.add_argument("--aws-endpoint", required=True, help="moto's URL (run as `python -m sandbox.moto_server`)")
    parser.add_argument("--region", default=DEFAULT_REGION)
    parser.add_argument("--cache-dir", help="where extracted code is kept (default: a temp dir removed on exit)")
    parser.add_argument("--log-file", help="invocation log (default: stderr)")
    args = parser.parse_args(argv)

    runtime = LambdaRuntime(args.aws_endpoint, region=args.region, port=args.port, cache_dir=args.cache_dir, log_path=args.log_file)
    try:
        url = runtime.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"lambda_runtime: port {args.port} on 127.0.0.1 is already in use", file=sys.stderr)
            return 2
        raise
    except RuntimeError as exc:
        print(f"lambda_runtime: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"listening on {url}", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        runtime.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
