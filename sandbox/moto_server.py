"""`moto_server` plus the one thing the local Lambda runtime needs from it: the code of each version.

    python -m sandbox.moto_server [-H 127.0.0.1] [-p PORT] [any other moto_server flag]

A drop-in for `.venv/bin/moto_server` (same flags, same API; run it wherever the sandbox would run
moto_server) with one extra read-only route, answered from moto's own in-memory Lambda backend:

    GET /_sandbox/lambda-code?function=NAME&qualifier=Q&region=R[&account=A]

returns the deployment package (zip) that moto holds for that function version (`$LATEST`, a
version number or an alias), `content-type: application/zip`, with `x-code-sha256` = the version's
`CodeSha256` (base64 SHA-256, as GetFunction reports it). 404 `{"Message": ...}` when moto has no
such function or no zip for it (an image function). `account` defaults to moto's default account.

Why: a stock moto_server keeps the zip of every version (`LambdaFunction.code_bytes`) but never
hands it back. GetFunction's `Code.Location` names a bucket that does not exist
(`awslambda-<region>-tasks`, moto 5.2: "TODO: we should be putting this in a lambda bucket"),
`/moto-api/data.json` answers 500 as soon as a function exists (it touches the Docker client), and
Invoke needs Docker. So sandbox/lambda_runtime.py fetches code here, checks it against CodeSha256,
and cannot serve functions of a plain moto_server.

Each published version keeps its own bytes: moto publishes by copying `$LATEST` and an update
replaces `$LATEST`'s `code_bytes`/`code_sha_256` attributes rather than mutating them.
"""

from __future__ import annotations

import json
import sys
import os
import signal
import subprocess  # spawn() runs this module as a server with fixed argv  # nosec B404
import time
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import moto.server
import requests
from moto.core import DEFAULT_ACCOUNT_ID

CODE_PATH = "/_sandbox/lambda-code"
START_TIMEOUT = 60.0

StartResponse = Callable[..., Any]


def _reply(start_response: StartResponse, status: str, body: bytes, headers: list[tuple[str, str]]) -> list[bytes]:
    start_response(status, [*headers, ("Content-Length", str(len(body)))])
    return [body]


def _not_found(start_response: StartResponse, message: str) -> list[bytes]:
    body = json.dumps({"Message": message}).encode()
    return _reply(start_response, "404 Not Found", body, [("Content-Type", "application/json")])


def serve_code(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The zip moto holds for one function version (see the module docstring)."""
    from moto.awslambda.models import lambda_backends  # noqa: PLC0415 - moto's backends load lazily

    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))

    def arg(name: str, default: str | None = None) -> str | None:
        return query.get(name, [default])[0]

    function, qualifier, region = arg("function"), arg("qualifier", "$LATEST"), arg("region")
    account = arg("account", DEFAULT_ACCOUNT_ID)
    if not function or not region:
        body = json.dumps({"Message": "function and region are required"}).encode()
        return _reply(start_response, "400 Bad Request", body, [("Content-Type", "application/json")])
    try:
        fn = lambda_backends[account][region].get_function(function, qualifier)
    except Exception:  # noqa: BLE001 - moto raises its own exception types for "unknown function"
        return _not_found(start_response, f"Function not found: {function}:{qualifier}")
    code = getattr(fn, "code_bytes", b"") or b""
    if not code:
        return _not_found(start_response, f"No zip package for {function}:{qualifier}")
    headers = [
        ("Content-Type", "application/zip"),
        ("x-code-sha256", str(fn.code_sha_256)),
        ("x-function-version", str(fn.version)),
    ]
    return _reply(start_response, "200 OK", bytes(code), headers)


class SandboxApplication(moto.server.DomainDispatcherApplication):
    """moto's WSGI dispatcher, with CODE_PATH answered before any service sees the request."""

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        if environ.get("PATH_INFO") == CODE_PATH and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            return serve_code(environ, start_response)
        return super().__call__(environ, start_response)


def spawn(
    port: int, log: IO[bytes], *, repo: Path | None = None, stock: bool = False
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `python -m sandbox.moto_server` (or, `stock`, moto's own `moto_server`, which lacks the
    code route) on 127.0.0.1:`port` in its own process group and wait until it answers; returns
    the process and its URL. It loads AWS's managed IAM policies (AWSLambdaBasicExecutionRole,
    which every execution role attaches, exists only then)."""
    repo = repo or Path(__file__).resolve().parents[1]
    server = [str(Path(sys.executable).with_name("moto_server"))] if stock else [sys.executable, "-m", "sandbox.moto_server"]
    proc = subprocess.Popen(  # noqa: S603 - fixed argv  # nosec B603
        [*server, "-H", "127.0.0.1", "-p", str(port)],
        cwd=repo,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true", "PYTHONPATH": str(repo)},
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode} (see its log)")
        try:
            requests.get(f"{url}/moto-api/", timeout=1)
            return proc, url
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                terminate(proc)
                raise RuntimeError(f"moto_server did not answer on {url} within {START_TIMEOUT:.0f}s") from None
            time.sleep(0.1)


def terminate(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server's whole process group: SIGTERM, then SIGKILL."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main(argv: list[str] | None = None) -> None:
    # moto.server.main builds `DomainDispatcherApplication(create_backend_app)` from its module
    # global at call time: swapping that global keeps every moto_server flag and default intact.
    moto.server.DomainDispatcherApplication = SandboxApplication  # type: ignore[misc]
    moto.server.main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
