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

And Lambda's Invoke (`POST /2015-03-31/functions/{name}/invocations`), which moto_server can
only serve by starting Docker: it is forwarded, as it came, to the local Lambda runtime
(sandbox/lambda_runtime.py), which runs the stored code of the version under node. The runtime
registers itself when it starts and leaves when it stops:

    PUT /_sandbox/lambda-runtime     body: the runtime's base URL   -> 204
    DELETE /_sandbox/lambda-runtime  body: the same URL             -> 204 (only that one leaves)

The newest registered runtime serves; when it leaves, the one registered before it does again.

Without a registered runtime, Invoke answers 502 ServiceException saying so (moto's own Docker
path is never tried).

Each published version keeps its own bytes: moto publishes by copying `$LATEST` and an update
replaces `$LATEST`'s `code_bytes`/`code_sha_256` attributes rather than mutating them.

Lambda never reuses a version number (a deleted version's number stays taken). moto 5.2.5
numbers a new version `len(versions) + 1` (moto/awslambda/models.py, LambdaStorage.publish_version),
so once the prune step has deleted an old version the next publish repeats the newest number, and
GetFunction/Invoke with that qualifier answer the *older* copy (the first match). Here a function
publishes `highest number it ever had + 1`, as on AWS.

One correction to moto's policy evaluation: moto 5.2 evaluates only StringEquals conditions and
takes any other operator as holding (moto/iam/policy_conditions.py), so a bucket policy's usual
`Deny s3:* ... Condition: {Bool: {aws:SecureTransport: false}}` denies every object request.
On AWS that statement applies to plain-HTTP requests only, and every client of the pipeline uses
TLS (moto is reached over loopback HTTP merely for convenience): here a statement conditioned on
`aws:SecureTransport` being false does not apply, as on AWS for a TLS client.

And one to its key policies: moto 5.2 refuses DescribeKey (which CreateAlias and the provider's
reads call) on any key whose policy has a Deny of `kms:*` on `*`, whoever asks and whatever the
statement's Condition says (moto/kms/policy_validator.py, validate_policy). On AWS a Deny applies
only where its condition holds: the keys of one trust boundary each (issue 27) deny the roles of
the other side by `aws:PrincipalArn`, and the account's administrator (the sandbox's caller) is
not one of them. Here such a Deny applies when its condition holds for the caller: an assumed
role's `aws:PrincipalArn` is the role's ARN, any other caller is the account's root; `kms:ViaService`
is absent (a direct call); a condition on any other key is taken as holding, as moto does.
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
RUNTIME_PATH = "/_sandbox/lambda-runtime"
INVOKE_PREFIX, INVOKE_SUFFIX = "/2015-03-31/functions/", "/invocations"
# Lambda's own limit for a synchronous invocation is 15 minutes; the runtime kills a handler at its timeout.
INVOKE_TIMEOUT = 15 * 60 + 30
FORWARDED_HEADERS = (
    ("Content-Type", "CONTENT_TYPE"),
    ("X-Amz-Invocation-Type", "HTTP_X_AMZ_INVOCATION_TYPE"),
    ("X-Amz-Log-Type", "HTTP_X_AMZ_LOG_TYPE"),
    ("X-Amz-Client-Context", "HTTP_X_AMZ_CLIENT_CONTEXT"),
)
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


def _request_body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length else b""


class SandboxApplication(moto.server.DomainDispatcherApplication):
    """moto's WSGI dispatcher, with CODE_PATH, RUNTIME_PATH and Invoke answered before any service
    sees the request."""

    # Registered runtimes, newest last: the newest serves; when it leaves, the one before it does.
    runtimes: tuple[str, ...] = ()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        path, method = environ.get("PATH_INFO") or "", environ.get("REQUEST_METHOD")
        if path == CODE_PATH and method in ("GET", "HEAD"):
            return serve_code(environ, start_response)
        if path == RUNTIME_PATH and method in ("PUT", "DELETE"):
            url = _request_body(environ).decode().strip()
            others = tuple(u for u in self.runtimes if u != url)
            self.runtimes = (*others, url) if method == "PUT" else others
            return _reply(start_response, "204 No Content", b"", [])
        if method == "POST" and path.startswith(INVOKE_PREFIX) and path.endswith(INVOKE_SUFFIX):
            return self._forward_invoke(environ, start_response)
        return super().__call__(environ, start_response)

    def _forward_invoke(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not self.runtimes:
            return _service_error(start_response, "no local Lambda runtime is registered to run Invoke "
                                                  "(start sandbox.lambda_runtime against this moto)")  # fmt: skip
        query = environ.get("QUERY_STRING") or ""
        headers = {name: environ[key] for name, key in FORWARDED_HEADERS if environ.get(key)}
        # PATH_INFO is percent-decoded (an ARN's colons, `$LATEST`): quoted again to forward.
        try:
            answer = requests.post(
                f"{self.runtimes[-1]}{urllib.parse.quote(environ.get('PATH_INFO') or '')}" + (f"?{query}" if query else ""),
                data=_request_body(environ), headers=headers, timeout=INVOKE_TIMEOUT,
            )  # fmt: skip
        except requests.RequestException as exc:
            return _service_error(start_response, f"the local Lambda runtime at {self.runtimes[-1]} did not answer: {type(exc).__name__}")
        kept = [(k, v) for k, v in answer.headers.items() if k.lower() not in ("content-length", "transfer-encoding", "connection")]
        return _reply(start_response, f"{answer.status_code} {answer.reason}", answer.content, kept)


def _service_error(start_response: StartResponse, message: str) -> list[bytes]:
    body = json.dumps({"Type": "Service", "message": message}).encode()
    headers = [("Content-Type", "application/json"), ("x-amzn-errortype", "ServiceException")]
    return _reply(start_response, "502 Bad Gateway", body, headers)


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


def _requests_use_tls() -> None:
    """A statement conditioned on `aws:SecureTransport` false does not apply: the clients use TLS."""
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult

    original = IAMPolicyStatement.is_action_permitted
    if getattr(original, "_sandbox", False):
        return

    def is_action_permitted(self: Any, action: str, resource: str = "*", principal: str | None = None,
                            incoming_condition_values: dict[str, str] | None = None) -> Any:  # fmt: skip
        condition = self._statement.get("Condition") or {}
        transport = (condition.get("Bool") or {}).get("aws:SecureTransport") if isinstance(condition, dict) else None
        if transport is not None and str(transport).lower() == "false":
            return PermissionResult.NEUTRAL
        return original(self, action, resource, principal, incoming_condition_values)

    is_action_permitted._sandbox = True  # type: ignore[attr-defined]
    IAMPolicyStatement.is_action_permitted = is_action_permitted  # type: ignore[method-assign]


def _versions_never_reused() -> None:
    """PublishVersion as AWS numbers it: after the highest number the function ever had."""
    import copy

    from moto.awslambda.models import LambdaStorage

    if getattr(LambdaStorage.publish_version, "_sandbox", False):
        return

    def publish_version(self: Any, name_or_arn: str, description: str = "") -> Any:
        # moto 5.2.5's publish_version, but for the number (see the module's docstring).
        function = self.get_function_by_name_or_arn_forbid_qualifier(name_or_arn)
        name = function.function_name
        if name not in self._functions or not self._functions[name]["latest"]:
            return None
        versions = self._functions[name]["versions"]
        if versions:
            if not function.code_or_config_updated:
                return versions[-1]  # nothing changed: the newest version, as AWS answers
            function.code_or_config_updated = False
        highest = self.__dict__.setdefault("_sandbox_highest_version", {})
        number = max([highest.get(name, 0), *(int(v.version) for v in versions)]) + 1
        highest[name] = number
        published = copy.copy(self._functions[name]["latest"])
        published.set_version(number)
        if description:
            published.description = description
        versions.append(published)
        self._arns[published.function_arn] = published
        return published

    publish_version._sandbox = True  # type: ignore[attr-defined]
    LambdaStorage.publish_version = publish_version  # type: ignore[method-assign]


def _deny_condition_holds(condition: dict[str, Any], context: dict[str, str]) -> bool:
    """IAM's string/ARN operators on the keys in `context` (absent: only a negated one holds);
    any other key or operator holds, as moto takes it."""
    import fnmatch

    for operator, keys in condition.items():
        for key, wanted in (keys or {}).items():
            if key not in ("aws:PrincipalArn", "kms:ViaService"):
                continue
            values = [str(v) for v in (wanted if isinstance(wanted, list) else [wanted])]
            present = context.get(key)
            if operator in ("StringEquals", "ArnEquals"):
                holds = present in values
            elif operator in ("StringLike", "ArnLike"):
                holds = present is not None and any(fnmatch.fnmatchcase(present, v) for v in values)
            elif operator in ("StringNotEquals", "ArnNotEquals"):
                holds = present not in values
            elif operator in ("StringNotLike", "ArnNotLike"):
                holds = present is None or not any(fnmatch.fnmatchcase(present, v) for v in values)
            else:
                continue
            if not holds:
                return False
    return True


def _key_policy_denies_by_condition() -> None:
    """A key policy's Deny refuses DescribeKey only where its condition holds (module docstring)."""
    from moto.kms import policy_validator
    from moto.kms.exceptions import AccessDeniedException
    from moto.kms.responses import KmsResponse
    from moto.sts.models import sts_backends
    from moto.utilities.utils import get_partition

    if getattr(KmsResponse._validate_key_policy, "_sandbox", False):
        return

    def _validate_key_policy(self: Any, key_id: str, action: str) -> None:
        key = self.kms_backend.describe_key(self.kms_backend.get_key_id(key_id))
        try:
            policy = json.loads(key.policy)
        except (ValueError, AttributeError):
            return
        account = self.current_account
        session = sts_backends[account][get_partition(self.region)].get_assumed_role_from_access_key(self.get_access_key())
        context = {"aws:PrincipalArn": session.role_arn if session else f"arn:aws:iam::{account}:root"}
        for statement in policy.get("Statement", []):
            if str(statement.get("Effect", "")).lower() != "deny" or not policy_validator.check_statement(statement, key.arn, action):
                continue
            if _deny_condition_holds(statement.get("Condition") or {}, context):
                raise AccessDeniedException(message=f"Action {action} is now allowed by the given key policy")

    _validate_key_policy._sandbox = True  # type: ignore[attr-defined]
    KmsResponse._validate_key_policy = _validate_key_policy  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    _requests_use_tls()
    _versions_never_reused()
    _key_policy_denies_by_condition()
    # moto.server.main builds `DomainDispatcherApplication(create_backend_app)` from its module
    # global at call time: swapping that global keeps every moto_server flag and default intact.
    moto.server.DomainDispatcherApplication = SandboxApplication  # type: ignore[misc]
    moto.server.main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
