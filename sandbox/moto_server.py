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

And STS's own checks of AssumeRoleWithWebIdentity, which moto skips (it hands credentials for any
token and any role): every such request is checked first by sandbox/sts_web_identity.py against
moto's own IAM data (the OIDC providers, the role and its trust policy) and refused with STS's
error when it fails; only a request STS would grant reaches moto. The token's issuer must have
registered its keys, as AWS would fetch them from `<iss>/.well-known/openid-configuration`:

    PUT /_sandbox/oidc-issuer        {"issuer": "https://token.actions.githubusercontent.com",
                                      "jwks_uri": "http://127.0.0.1:PORT/..."}   -> 204

And one correction of moto's policy evaluation: moto 5.2.5 (moto/iam/access_control.py and
policy_conditions.py) knows only StringEquals, counts any other condition operator as holding, and
then answers DENIED for a statement whose condition does not hold, Allow or Deny alike; a bucket
policy's conditions get no request context at all. So the state bucket's `DenyInsecureTransport`
statement (Deny ... Bool aws:SecureTransport "false"), which AWS never applies to an SDK's TLS
request, made moto refuse every object request to that bucket (403), and `pulumi login
s3://<state bucket>` could not work. Here a statement applies only when its conditions hold
(IAM User Guide, "Policy evaluation logic"), evaluated by sandbox/iam_conditions.py with the
request context AWS would see for these requests: `aws:SecureTransport` true (every SDK speaks
TLS to AWS; the loopback HTTP hop stands in for that connection), and S3's keys from the request's
own headers, `s3:x-amz-server-side-encryption` and `s3:x-amz-server-side-encryption-aws-kms-key-id`
(absent when not sent), which the state bucket's key rules read (components/aws_policies.py,
`state_bucket_key_rules`). moto also reads a statement with `NotResource` as a trust policy's and
answers PERMITTED, a Deny's too; here it applies to every resource it does not name.

And one correction of its key policies: moto 5.2 refuses DescribeKey (which CreateAlias and the
provider's reads call) on any key whose policy has a Deny of `kms:*` on `*`, whoever asks and
whatever the statement's Condition says (moto/kms/policy_validator.py, validate_policy). On AWS a
Deny applies only where its condition holds: the keys of one trust boundary each (issue 27) deny
the roles of the other side by `aws:PrincipalArn`, and the account's administrator (the sandbox's
caller) is not one of them. Here such a Deny applies when its condition holds for the caller, by
the same evaluator (sandbox/iam_conditions.py): an assumed role's `aws:PrincipalArn` is the role's
ARN, any other caller is the account's root; `kms:ViaService` is absent (a direct call); a Deny
conditioned on any other key applies, as moto takes it (the context here knows no other key, so
the Deny is never weaker than on AWS).
"""

from __future__ import annotations

import io
import json
import sys
import os
import uuid
import signal
import threading
import subprocess  # spawn() runs this module as a server with fixed argv  # nosec B404
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import moto.server
import requests
from moto.core import DEFAULT_ACCOUNT_ID

CODE_PATH = "/_sandbox/lambda-code"
OIDC_ISSUER_PATH = "/_sandbox/oidc-issuer"
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
    # OIDC issuers whose tokens STS may verify: issuer URL -> its JWKS URL.
    oidc_issuers: dict[str, str] = {}

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
        if path == OIDC_ISSUER_PATH and method == "PUT":
            try:
                spec = json.loads(_request_body(environ) or b"{}")
                self.oidc_issuers = {**self.oidc_issuers, str(spec["issuer"]).rstrip("/"): str(spec["jwks_uri"])}
            except (ValueError, KeyError, TypeError):
                return _reply(start_response, "400 Bad Request", b'{"Message": "issuer and jwks_uri are required"}', [])
            return _reply(start_response, "204 No Content", b"", [])
        if method in ("POST", "GET") and path in ("", "/"):
            refused = self._refuse_web_identity(environ, start_response)
            if refused is not None:
                return refused
        _REQUEST.context = request_context(environ)
        try:
            return super().__call__(environ, start_response)  # moto answers within the call
        finally:
            del _REQUEST.context

    def _refuse_web_identity(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes] | None:
        """STS's checks of AssumeRoleWithWebIdentity (sandbox/sts_web_identity.py); None lets moto answer."""
        body = _request_body(environ) if environ.get("REQUEST_METHOD") == "POST" else b""
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads the body again
        params = {k: v[-1] for k, v in urllib.parse.parse_qs(environ.get("QUERY_STRING") or "").items()}
        if body:
            params.update({k: v[-1] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items()})
        if params.get("Action") != "AssumeRoleWithWebIdentity":
            return None
        from sandbox import sts_web_identity as sts  # noqa: PLC0415 - only STS requests need it

        try:
            sts.check(params, providers=_oidc_providers(), role_lookup=_role, jwks_for=self._jwks)
        except sts.StsError as exc:
            request_id = str(uuid.uuid4())
            headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
            status = {400: "400 Bad Request", 403: "403 Forbidden"}.get(exc.status, f"{exc.status} Error")
            return _reply(start_response, status, exc.xml(request_id), headers)
        return None

    def _jwks(self, issuer: str) -> dict[str, Any] | None:
        uri = self.oidc_issuers.get(issuer.rstrip("/"))
        if uri is None:
            return None
        try:
            answer = requests.get(uri, timeout=10)
            answer.raise_for_status()
            keys = answer.json()
        except (requests.RequestException, ValueError):
            return None
        return keys if isinstance(keys, dict) else None

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


def _account_ids() -> list[str]:
    from moto.iam.models import iam_backends  # noqa: PLC0415 - moto's backends load lazily

    return list(iam_backends.keys())


def _oidc_providers() -> list[Any]:
    from moto.iam.models import iam_backends  # noqa: PLC0415

    from sandbox.sts_web_identity import Provider

    providers = []
    for account in _account_ids():
        for provider in iam_backends[account]["global"].open_id_providers.values():
            providers.append(Provider(arn=provider.arn, url=provider.url, client_ids=tuple(provider.client_id_list)))
    return providers


def _role(arn: str) -> Any:
    from moto.iam.models import iam_backends  # noqa: PLC0415

    from sandbox.sts_web_identity import Role, parse_policy

    parts = arn.split(":")
    if len(parts) < 6 or parts[4] not in iam_backends:
        return None
    try:
        role = iam_backends[parts[4]]["global"].get_role_by_arn(arn)
    except Exception:  # noqa: BLE001 - moto's own "no such role" exception types
        return None
    try:
        policy = parse_policy(role.assume_role_policy_document)
    except ValueError:
        return None
    return Role(arn=role.arn, trust_policy=policy, max_session_duration=int(role.max_session_duration or 3600))


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


# What AWS knows about every request that reaches it here (see the module docstring).
REQUEST_CONTEXT = {"aws:securetransport": ["true"]}
# The request headers S3 gives a policy as condition keys (S3 User Guide, "Condition keys for Amazon
# S3": a PutObject's or CopyObject's SSE headers, as the request sends them; absent when not sent).
S3_HEADER_KEYS = {
    "HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION": "s3:x-amz-server-side-encryption",
    "HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION_AWS_KMS_KEY_ID": "s3:x-amz-server-side-encryption-aws-kms-key-id",
}
# The request being answered, per server thread: moto evaluates a bucket policy without it.
_REQUEST = threading.local()


def request_context(environ: Mapping[str, Any]) -> dict[str, list[str]]:
    """The condition keys (lower-cased) AWS would put in this request's context."""
    return {**REQUEST_CONTEXT, **{key: [str(environ[header])] for header, key in S3_HEADER_KEYS.items() if environ.get(header)}}


def _statements_apply_only_when_their_conditions_hold() -> None:
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult  # noqa: PLC0415

    from sandbox.iam_conditions import conditions_hold  # noqa: PLC0415

    original = IAMPolicyStatement.is_action_permitted
    if getattr(original, "sandbox_corrected", False):
        return

    def is_action_permitted(self: Any, action: str, resource: str = "*", principal: str | None = None,
                            incoming_condition_values: dict[str, str] | None = None) -> Any:  # fmt: skip
        condition = self._statement.get("Condition")
        if not condition and "NotResource" not in self._statement:
            return original(self, action, resource, principal, incoming_condition_values)
        if condition:
            context = {**getattr(_REQUEST, "context", REQUEST_CONTEXT),
                       **{k.lower(): [v] for k, v in (incoming_condition_values or {}).items()}}  # fmt: skip
            if not conditions_hold(condition, context, unknown=self._statement.get("Effect") == "Deny"):
                return PermissionResult.NEUTRAL
        rest = {k: v for k, v in self._statement.items() if k != "Condition"}
        if "NotResource" in rest:
            # moto reads a statement without `Resource` as a trust policy's and answers PERMITTED,
            # a Deny's too; a NotResource statement applies to every resource it does not name.
            if IAMPolicyStatement({"Resource": rest.pop("NotResource")})._check_element_matches("Resource", resource):
                return PermissionResult.NEUTRAL
            rest["Resource"] = "*"
        return original(IAMPolicyStatement(rest), action, resource, principal, incoming_condition_values)

    is_action_permitted.sandbox_corrected = True  # type: ignore[attr-defined]
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


# The condition keys a direct KMS call's context is known to hold or lack here (module docstring).
KEY_POLICY_CONTEXT_KEYS = frozenset({"aws:principalarn", "kms:viaservice"})


def _names_a_key_outside(conditions: Any, known: frozenset[str]) -> bool:
    blocks = conditions.values() if isinstance(conditions, dict) else []
    return any(key.lower() not in known for block in blocks if isinstance(block, dict) for key in block)


def _key_policy_denies_by_condition() -> None:
    """A key policy's Deny refuses DescribeKey only where its condition holds (module docstring)."""
    from moto.kms import policy_validator
    from moto.kms.exceptions import AccessDeniedException
    from moto.kms.responses import KmsResponse
    from moto.sts.models import sts_backends
    from moto.utilities.utils import get_partition

    from sandbox.iam_conditions import conditions_hold  # noqa: PLC0415

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
        context = {"aws:principalarn": [session.role_arn if session else f"arn:aws:iam::{account}:root"]}
        for statement in policy.get("Statement", []):
            if str(statement.get("Effect", "")).lower() != "deny" or not policy_validator.check_statement(statement, key.arn, action):
                continue
            if _names_a_key_outside(statement.get("Condition"), KEY_POLICY_CONTEXT_KEYS) or conditions_hold(
                statement.get("Condition"), context, unknown=True
            ):
                raise AccessDeniedException(message=f"Action {action} is now allowed by the given key policy")

    _validate_key_policy._sandbox = True  # type: ignore[attr-defined]
    KmsResponse._validate_key_policy = _validate_key_policy  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    _statements_apply_only_when_their_conditions_hold()
    _versions_never_reused()
    _key_policy_denies_by_condition()
    # moto.server.main builds `DomainDispatcherApplication(create_backend_app)` from its module
    # global at call time: swapping that global keeps every moto_server flag and default intact.
    moto.server.DomainDispatcherApplication = SandboxApplication  # type: ignore[misc]
    moto.server.main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
