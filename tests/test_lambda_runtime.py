"""The local Lambda runtime (sandbox/lambda_runtime.py) and JWT issuer (sandbox/jwt_issuer.py), for real.

moto runs as `python -m sandbox.moto_server` (moto_server plus the code route the runtime reads);
functions are created in it with boto3, from the real esbuild bundle of the example API (built by
the real build step) or from tiny hand-made handlers, and reached through the runtime over HTTP
at the URLs the stand-in provider reports. The API's JWT check runs against the issuer, its data
route against a real PostgreSQL whose tables the app's own drizzle-kit pushed.

Each test uses functions of its own name: the runtime keeps containers warm across tests.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from sandbox.jwt_issuer import JwtIssuer
from sandbox.lambda_runtime import MAX_WORKERS, LambdaRuntime
from tests.support.lambda_bundle import APP, REPO, build
from sandbox.moto_server import spawn, terminate
from tests.support.moto import _free_port, boto_kwargs, moto_server  # noqa: F401 - fixtures
from tests.support.postgres import pg_database, postgres  # noqa: F401 - fixtures
from tests.support.app_database import SCHEMA, SUBJECT, app_database  # noqa: F401 - fixture

pytestmark = pytest.mark.slow

REGION = "us-east-1"
SITE = "http://site.sandbox.test:8610"
EVIL = "https://evil.example"
CORS = {
    "AllowOrigins": [SITE],
    "AllowMethods": ["GET", "POST"],
    "AllowHeaders": ["authorization", "content-type"],
    "MaxAge": 300,
}
AUDIENCE = "webstack-sandbox-api"
INTERNAL_ERROR = {"Message": "Internal Server Error"}

# A handler that reports what it saw; LABEL marks one code version from another.
ECHO = """
let invocations = 0;
exports.handler = async (event, context) => {
  invocations += 1;
  switch (event.rawPath) {
    case '/throw': throw new Error('failing on purpose');
    case '/exit': process.exit(3);
    case '/sleep': await new Promise((resolve) => setTimeout(resolve, 30000)); break;
    case '/busy': await new Promise((resolve) => setTimeout(resolve, 400)); return { pid: process.pid };
    case '/plain': return { plain: true, label: LABEL };
    case '/binary':
      return { statusCode: 201, headers: { 'Content-Type': 'application/octet-stream' }, isBase64Encoded: true,
               body: Buffer.from([0, 1, 255]).toString('base64'), cookies: ['a=1; Path=/', 'b=2'] };
  }
  const env = {};
  for (const name of ['GREETING', 'OUTER_SENTINEL', 'AWS_LAMBDA_FUNCTION_NAME', 'AWS_LAMBDA_FUNCTION_VERSION',
                      'AWS_LAMBDA_FUNCTION_MEMORY_SIZE', 'AWS_REGION', 'LAMBDA_TASK_ROOT', '_HANDLER', 'TZ']) env[name] = process.env[name];
  return {
    statusCode: 200,
    headers: { 'content-type': 'application/json', 'access-control-allow-origin': 'https://evil.example', 'x-label': LABEL },
    body: JSON.stringify({ label: LABEL, invocations, pid: process.pid, cwd: process.cwd(), env, event,
                           remainingMs: context.getRemainingTimeInMillis(), requestId: context.awsRequestId }),
  };
};
"""


def echo_zip(label: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("index.js", f"const LABEL = {json.dumps(label)};\n{ECHO}")
    return buffer.getvalue()


# --------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def moto_endpoint(moto_server: str) -> str:
    """The session's moto_server (tests/support/moto.py); each test resets it."""
    return moto_server


@pytest.fixture
def aws(boto_kwargs: dict[str, str]) -> dict[str, Any]:
    """A reset moto and the boto3 keyword arguments that reach it."""
    return boto_kwargs


@pytest.fixture
def lam(aws: dict[str, Any]) -> Any:
    return boto3.client("lambda", **aws)


@pytest.fixture
def role(aws: dict[str, Any]) -> str:
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    return boto3.client("iam", **aws).create_role(RoleName="lambda-exec", AssumeRolePolicyDocument=json.dumps(doc))["Role"]["Arn"]


@pytest.fixture(scope="module")
def runtime(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LambdaRuntime]:
    root = tmp_path_factory.mktemp("runtime")
    with LambdaRuntime(moto_endpoint, region=REGION, cache_dir=root / "code", log_path=root / "runtime.log") as rt:
        yield rt


@pytest.fixture(scope="module")
def api_zip(tmp_path_factory: pytest.TempPathFactory, moto_server: str) -> bytes:
    """The example API bundled by the real build step, zipped as it ships."""
    out = tmp_path_factory.mktemp("bundle") / "dist"
    result = build(out=out, aws=moto_server, env={"STEPS_SKIP_LOG": str(out.parent / "skipped.jsonl")})
    assert result.returncode == 0, result.stderr
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(out.iterdir()):
            archive.write(path, f"dist/{path.name}")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def issuer() -> Iterator[JwtIssuer]:
    with JwtIssuer(audience=AUDIENCE) as running:
        yield running


# ---------------------------------------------------------------------------------------- helpers
def deploy(lam: Any, role: str, name: str, code: bytes, *, handler: str = "index.handler", env: dict[str, str] | None = None,
           timeout: int = 3, memory: int = 128, cors: dict[str, Any] | None = CORS) -> None:  # fmt: skip
    """A function with a function URL, as the program's LambdaApi declares them."""
    lam.create_function(
        FunctionName=name, Runtime="nodejs20.x", Role=role, Handler=handler, Code={"ZipFile": code},
        Timeout=timeout, MemorySize=memory, Environment={"Variables": env or {}},
    )  # fmt: skip
    lam.create_function_url_config(FunctionName=name, AuthType="NONE", **({"Cors": cors} if cors else {}))


def url(runtime: LambdaRuntime, function: str, qualifier: str = "$LATEST", path: str = "") -> str:
    """What the stand-in provider reports as `functionUrl` under WEBSTACK_LAMBDA_URL_BASE, plus `path`."""
    quote = lambda s: urllib.parse.quote(s, safe="")  # noqa: E731
    return f"{runtime.url}/{quote(function)}/{quote(qualifier)}/{path}"


def api_env(**overrides: str) -> dict[str, str]:
    return {
        "APP_VERSION": "build-1",
        "DB_SCHEMA": SCHEMA,
        "DATABASE_URL": f"postgres://app:pw@127.0.0.1:{_free_port()}/app",
        "JWKS_URL": "http://127.0.0.1:9/unused",
        "JWT_ISSUER": "unused",
        "JWT_AUDIENCE": AUDIENCE,
        "ALLOWED_ORIGIN": SITE,
        "NODE_OPTIONS": "--enable-source-maps",
        **overrides,
    }


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ------------------------------------------------------------------------------ the real API bundle
def test_real_api_bundle_serves_health_on_latest(runtime, lam, role, api_zip):
    deploy(lam, role, "webstack-api-preview-pr-7", api_zip, handler="dist/index.handler",
           env=api_env(APP_VERSION="build-7", DB_SCHEMA="app_preview_pr_7"))  # fmt: skip

    answer = requests.get(url(runtime, "webstack-api-preview-pr-7", path="health"), timeout=30)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "ok", "version": "build-7", "schema": "app_preview_pr_7"}
    assert answer.headers["cache-control"] == "no-store"
    assert "/webstack-api-preview-pr-7/%24LATEST/health" in answer.url
    # The URL's CORS answers the browser's preflight itself (the app's own OPTIONS answer is 204).
    preflight = requests.options(
        url(runtime, "webstack-api-preview-pr-7", path="projects"), timeout=30,
        headers={"Origin": SITE, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"},
    )  # fmt: skip
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == SITE
    assert "authorization" in preflight.headers["access-control-allow-headers"]


def test_alias_serves_its_version_and_follows_when_moved(runtime, lam, role, api_zip):
    fn = "webstack-api-prod"
    deploy(lam, role, fn, api_zip, handler="dist/index.handler", env=api_env(APP_VERSION="release-1"))
    assert lam.publish_version(FunctionName=fn)["Version"] == "1"
    lam.create_alias(FunctionName=fn, Name="stable", FunctionVersion="1")
    lam.update_function_configuration(FunctionName=fn, Environment={"Variables": api_env(APP_VERSION="release-2")})

    def version_at(qualifier: str) -> str:
        answer = requests.get(url(runtime, fn, qualifier, "health"), timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()["version"]

    assert version_at("stable") == "release-1"
    assert version_at("$LATEST") == "release-2"
    assert version_at("1") == "release-1"

    assert lam.publish_version(FunctionName=fn)["Version"] == "2"
    lam.update_alias(FunctionName=fn, Name="stable", FunctionVersion="2")
    assert version_at("stable") == "release-2"
    assert re.search(rf"invoke function={fn} qualifier=stable version=2 status=200 ms=\d+", runtime.log_path.read_text())


def test_token_from_the_issuer_is_accepted_by_the_real_api(runtime, lam, role, api_zip, issuer, app_database):
    fn = "webstack-api-jwt"
    deploy(lam, role, fn, api_zip, handler="dist/index.handler", env=api_env(
        JWKS_URL=issuer.jwks_url, JWT_ISSUER=issuer.issuer, DATABASE_URL=app_database.url))  # fmt: skip
    projects = url(runtime, fn, path="projects")

    def get(token: str | None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(projects, headers=headers, timeout=30)

    token = issuer.token(sub=SUBJECT)
    answer = get(token)
    assert answer.status_code == 200, answer.text
    assert [p["name"] for p in answer.json()["projects"]] == ["mine"]

    # The HTTP token endpoint (the demo's) mints tokens the API accepts too.
    minted = requests.post(issuer.token_url, json={"sub": "user-2"}, timeout=10).json()["access_token"]
    assert [p["name"] for p in get(minted).json()["projects"]] == ["not mine"]

    with JwtIssuer(audience=AUDIENCE, issuer=issuer.issuer) as impostor:  # same iss, another key
        assert get(impostor.token(sub=SUBJECT)).status_code == 401
    now = int(time.time())
    expired = issuer.sign({"iss": issuer.issuer, "sub": SUBJECT, "aud": AUDIENCE, "iat": now - 600, "exp": now - 60})
    assert get(expired).json() == {"error": "unauthorized", "message": "ERR_JWT_EXPIRED"}
    assert get(issuer.token(sub=SUBJECT, audience="another-api")).status_code == 401
    assert get(None).status_code == 401

    log_text = runtime.log_path.read_text()
    assert f"function={fn}" in log_text
    for secret in (token, minted, app_database.url, "Bearer"):
        assert secret not in log_text


def test_jwt_issuer_cli_serves_jwks_and_mints_tokens(tmp_path):
    port = _free_port()
    key_file = tmp_path / "issuer.pem"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.jwt_issuer", "--port", str(port), "--audience", AUDIENCE, "--key-file", str(key_file)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        printed = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(4))
        assert printed["JWKS_URL"] == f"http://127.0.0.1:{port}/.well-known/jwks.json"
        assert printed["JWT_ISSUER"] == f"http://127.0.0.1:{port}"
        assert printed["JWT_AUDIENCE"] == AUDIENCE
        keys = requests.get(printed["JWKS_URL"], timeout=10).json()["keys"]
        assert [(k["kty"], k["alg"], k["use"]) for k in keys] == [("RSA", "RS256", "sig")]
        assert "d" not in keys[0]  # public part only

        token = subprocess.run(
            [sys.executable, "-m", "sandbox.jwt_issuer", "token", "--url", f"http://127.0.0.1:{port}", "--sub", "demo"],
            cwd=REPO, capture_output=True, text=True, timeout=30, check=True,
        ).stdout.strip()  # fmt: skip
        header, payload = (json.loads(base64.urlsafe_b64decode(part + "==")) for part in token.split(".")[:2])
        assert header == {"alg": "RS256", "typ": "JWT", "kid": keys[0]["kid"]}
        assert (payload["iss"], payload["sub"], payload["aud"]) == (printed["JWT_ISSUER"], "demo", AUDIENCE)
        assert payload["exp"] - payload["iat"] == 3600
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"

        # A second issuer on the same port: one line, exit 2.
        taken = subprocess.run([sys.executable, "-m", "sandbox.jwt_issuer", "--port", str(port)],
                               cwd=REPO, capture_output=True, text=True, timeout=30)  # fmt: skip
        assert taken.returncode == 2 and len(taken.stderr.strip().splitlines()) == 1, taken.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    # The key file keeps the key (and its kid) across restarts.
    with JwtIssuer(key_file=key_file) as again:
        assert again.kid == keys[0]["kid"]


# ------------------------------------------------------------------------- runtime semantics (echo)
def test_new_code_is_served_at_once_and_unchanged_code_is_not_extracted_again(runtime, lam, role):
    fn = "echo-deploys"
    deploy(lam, role, fn, echo_zip("A"))
    extracted = runtime.code.extractions

    first = requests.get(url(runtime, fn), timeout=30).json()
    second = requests.get(url(runtime, fn), timeout=30).json()
    assert (first["label"], second["label"]) == ("A", "A")
    assert (first["invocations"], second["invocations"]) == (1, 2)  # one warm container
    assert second["pid"] == first["pid"]
    assert runtime.code.extractions == extracted + 1

    lam.update_function_code(FunctionName=fn, ZipFile=echo_zip("B"))
    after = requests.get(url(runtime, fn), timeout=30).json()
    assert after["label"] == "B" and after["invocations"] == 1
    assert not pid_alive(first["pid"]), "the container of the replaced code must be stopped"
    assert runtime.code.extractions == extracted + 2

    # A configuration change starts a new container on the code already extracted.
    lam.update_function_configuration(FunctionName=fn, Environment={"Variables": {"GREETING": "hello again"}})
    changed = requests.get(url(runtime, fn), timeout=30).json()
    assert changed["label"] == "B" and changed["env"]["GREETING"] == "hello again"
    assert changed["pid"] != after["pid"]
    assert runtime.code.extractions == extracted + 2


def test_weighted_alias_routes_by_weight_to_each_versions_own_code(runtime, lam, role):
    fn = "echo-weighted"
    deploy(lam, role, fn, echo_zip("v1-code"))
    lam.publish_version(FunctionName=fn)
    lam.update_function_code(FunctionName=fn, ZipFile=echo_zip("v2-code"))
    lam.publish_version(FunctionName=fn)
    lam.create_alias(FunctionName=fn, Name="live", FunctionVersion="1",
                     RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}})  # fmt: skip

    labels = [requests.get(url(runtime, fn, "live", "plain"), timeout=30).json()["label"] for _ in range(40)]
    assert {"v1-code", "v2-code"} == set(labels), labels

    lam.update_alias(FunctionName=fn, Name="live", FunctionVersion="2", RoutingConfig={"AdditionalVersionWeights": {}})
    assert {requests.get(url(runtime, fn, "live", "plain"), timeout=30).json()["label"] for _ in range(5)} == {"v2-code"}


def test_cors_follows_the_url_config_over_the_functions_headers(runtime, lam, role):
    fn = "echo-cors"
    deploy(lam, role, fn, echo_zip("cors"))
    preflight_headers = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "Authorization, Content-Type"}

    allowed = requests.options(url(runtime, fn, path="x"), headers={"Origin": SITE, **preflight_headers}, timeout=30)
    assert allowed.status_code == 200 and allowed.content == b""
    assert allowed.headers["access-control-allow-origin"] == SITE
    assert allowed.headers["access-control-allow-methods"] == "GET, POST"
    assert allowed.headers["access-control-allow-headers"] == "authorization, content-type"
    assert allowed.headers["access-control-max-age"] == "300"

    refused = requests.options(url(runtime, fn, path="x"), headers={"Origin": EVIL, **preflight_headers}, timeout=30)
    assert not [h for h in refused.headers if h.lower().startswith("access-control-")]

    # Preflights never reached the function: this is its first invocation.
    from_site = requests.get(url(runtime, fn), headers={"Origin": SITE}, timeout=30)
    assert from_site.json()["invocations"] == 1
    assert from_site.headers["access-control-allow-origin"] == SITE  # not the function's own value
    assert "Origin" in from_site.headers["vary"]
    from_evil = requests.get(url(runtime, fn), headers={"Origin": EVIL}, timeout=30)
    assert from_evil.status_code == 200 and from_evil.headers["x-label"] == "cors"
    assert "access-control-allow-origin" not in from_evil.headers  # although the function set one for it

    # Without CORS on the URL, the function's own headers pass and OPTIONS reaches it.
    deploy(lam, role, "echo-no-cors", echo_zip("no-cors"), cors=None)
    own = requests.options(url(runtime, "echo-no-cors"), headers={"Origin": EVIL, **preflight_headers}, timeout=30)
    assert own.json()["event"]["requestContext"]["http"]["method"] == "OPTIONS"
    assert own.headers["access-control-allow-origin"] == EVIL


def test_event_environment_and_result_mapping(runtime, lam, role, monkeypatch):
    monkeypatch.setenv("OUTER_SENTINEL", "must-not-reach-the-function")
    fn = "echo-event"
    deploy(lam, role, fn, echo_zip("event"), env={"GREETING": "hi"}, memory=256, timeout=7)

    answer = requests.post(
        url(runtime, fn, path="a/b%20c?x=1&x=2&empty="), data=json.dumps({"k": "v"}), timeout=30,
        headers={"Content-Type": "application/json", "X-Custom": "One", "Cookie": "a=1; b=2", "User-Agent": "probe/1"},
    )  # fmt: skip
    assert answer.status_code == 200
    seen = answer.json()
    event, env = seen["event"], seen["env"]
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/a/b%20c" and event["rawQueryString"] == "x=1&x=2&empty="
    assert event["queryStringParameters"] == {"x": "1,2", "empty": ""}
    assert event["headers"]["x-custom"] == "One" and "cookie" not in event["headers"]
    assert all(name == name.lower() for name in event["headers"])
    assert event["cookies"] == ["a=1", "b=2"]
    assert (event["body"], event["isBase64Encoded"]) == ('{"k": "v"}', False)
    context = event["requestContext"]
    assert context["http"] == {"method": "POST", "path": "/a/b%20c", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "probe/1"}
    assert context["stage"] == "$default" and context["domainName"] == runtime.url.removeprefix("http://")
    assert context["requestId"] == seen["requestId"] == answer.headers["x-amzn-requestid"]
    assert 0 < seen["remainingMs"] <= 7000

    assert env == {
        "GREETING": "hi",
        "AWS_LAMBDA_FUNCTION_NAME": fn,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_REGION": REGION,
        "LAMBDA_TASK_ROOT": seen["cwd"],
        "_HANDLER": "index.handler",
        "TZ": ":UTC",
    }  # OUTER_SENTINEL absent: nothing of the runtime's own environment leaks in
    assert Path(seen["cwd"]).parent == runtime.cache_dir

    payload = os.urandom(2_000_000)  # more than any pipe buffer, both ways
    binary = requests.post(url(runtime, fn), data=payload, headers={"Content-Type": "application/octet-stream"}, timeout=30)
    assert binary.json()["event"]["isBase64Encoded"] is True
    assert base64.b64decode(binary.json()["event"]["body"]) == payload

    plain = requests.get(url(runtime, fn, path="plain"), timeout=30)
    assert (plain.status_code, plain.headers["content-type"], plain.text) == (200, "application/json", '{"plain":true,"label":"event"}')
    out = requests.get(url(runtime, fn, path="binary"), timeout=30)
    assert (out.status_code, out.content, out.headers["content-type"]) == (201, b"\x00\x01\xff", "application/octet-stream")
    assert out.raw.headers.getlist("set-cookie") == ["a=1; Path=/", "b=2"]
    assert requests.head(url(runtime, fn), timeout=30).content == b""


def test_failures_answer_502_like_a_function_url(runtime, lam, role):
    fn = "echo-failures"
    deploy(lam, role, fn, echo_zip("fail"), timeout=1)
    pid = requests.get(url(runtime, fn), timeout=30).json()["pid"]

    thrown = requests.get(url(runtime, fn, path="throw"), timeout=30)
    assert (thrown.status_code, thrown.json()) == (502, INTERNAL_ERROR)
    assert requests.get(url(runtime, fn), timeout=30).json()["pid"] == pid  # a throw keeps the container

    started = time.monotonic()
    slow = requests.get(url(runtime, fn, path="sleep"), timeout=30)
    assert (slow.status_code, slow.json()) == (502, INTERNAL_ERROR)
    assert time.monotonic() - started < 5, "a 1 s timeout must cut the 30 s sleep short"
    assert not pid_alive(pid), "the timed-out container must be killed"

    crashed_pid = requests.get(url(runtime, fn), timeout=30).json()["pid"]
    assert crashed_pid != pid
    exited = requests.get(url(runtime, fn, path="exit"), timeout=30)
    assert (exited.status_code, exited.json()) == (502, INTERNAL_ERROR)
    assert requests.get(url(runtime, fn), timeout=30).json()["invocations"] == 1  # a fresh container

    log_text = runtime.log_path.read_text()
    assert "Task timed out after 1.00 seconds" in log_text
    assert re.search(rf"invoke function={fn} qualifier=\$LATEST version=\$LATEST status=502", log_text)

    # A handler that cannot be loaded fails the same way.
    deploy(lam, role, "echo-bad-handler", echo_zip("x"), handler="missing.handler")
    assert requests.get(url(runtime, "echo-bad-handler"), timeout=30).status_code == 502


# ------------------------------------------------------------------------------ the Invoke API
def invoke(lam: Any, fn: str, qualifier: str | None = None, event: Any = None, **kwargs: Any) -> dict[str, Any]:
    """Lambda's Invoke through moto (which forwards it to the runtime), payload decoded."""
    extra = {"Qualifier": qualifier} if qualifier else {}
    answer = lam.invoke(FunctionName=fn, Payload=json.dumps(event if event is not None else {}).encode(), **extra, **kwargs)
    answer["Payload"] = answer["Payload"].read()
    return answer


THROWS_ON_LOAD = """
console.log('loading the bundle');
throw new Error('JWKS_URL is not set');
"""


def test_invoke_runs_the_code_of_the_version_it_names(runtime, lam, role):
    fn = "echo-invoke"
    deploy(lam, role, fn, echo_zip("v1-code"))
    lam.publish_version(FunctionName=fn)
    lam.update_function_code(FunctionName=fn, ZipFile=echo_zip("v2-code"))
    lam.publish_version(FunctionName=fn)
    lam.update_function_code(FunctionName=fn, ZipFile=echo_zip("latest-code"))
    lam.create_alias(FunctionName=fn, Name="live", FunctionVersion="1")
    plain = {"rawPath": "/plain"}

    for qualifier, label, version in (("1", "v1-code", "1"), ("2", "v2-code", "2"), ("live", "v1-code", "1"),
                                      ("$LATEST", "latest-code", "$LATEST"), (None, "latest-code", "$LATEST")):  # fmt: skip
        answer = invoke(lam, fn, qualifier, plain)
        assert answer["StatusCode"] == 200 and "FunctionError" not in answer, answer
        assert json.loads(answer["Payload"]) == {"plain": True, "label": label}, qualifier
        assert answer["ExecutedVersion"] == version
    # A qualified ARN names the version as well.
    arn = lam.get_function_configuration(FunctionName=fn, Qualifier="2")["FunctionArn"]
    assert json.loads(invoke(lam, arn, None, plain)["Payload"])["label"] == "v2-code"

    # The alias's routing config is honoured by Invoke as by the function URL.
    lam.update_alias(FunctionName=fn, Name="live", FunctionVersion="1", RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}})
    labels = {json.loads(invoke(lam, fn, "live", plain)["Payload"])["label"] for _ in range(40)}
    assert labels == {"v1-code", "v2-code"}

    # The payload is the event, as given; the context names the invoked qualifier.
    echoed = json.loads(invoke(lam, fn, "2", {"rawPath": "/", "custom": [1, 2]})["Payload"])
    body = json.loads(echoed["body"])
    assert body["event"] == {"rawPath": "/", "custom": [1, 2]} and body["env"]["AWS_LAMBDA_FUNCTION_VERSION"] == "2"

    dry = lam.invoke(FunctionName=fn, Qualifier="2", InvocationType="DryRun")
    assert dry["StatusCode"] == 204
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName="no-such-function", Payload=b"{}")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName=fn, Qualifier="99", Payload=b"{}")


def test_invoke_reports_function_errors_with_their_log(runtime, lam, role):
    fn = "echo-invoke-errors"
    deploy(lam, role, fn, echo_zip("errors"))
    thrown = invoke(lam, fn, None, {"rawPath": "/throw"}, LogType="Tail")
    assert thrown["StatusCode"] == 200 and thrown["FunctionError"] == "Unhandled"
    error = json.loads(thrown["Payload"])
    assert error["errorType"] == "Error" and error["errorMessage"] == "failing on purpose"
    tail = base64.b64decode(thrown["LogResult"]).decode()
    assert tail.startswith("START RequestId: ") and "failing on purpose" in tail and "END RequestId" in tail

    # A bundle that throws on load: the init error and what it printed before.
    lam.update_function_code(FunctionName=fn, ZipFile=_zip({"index.js": THROWS_ON_LOAD}))
    broken = lam.publish_version(FunctionName=fn)["Version"]
    answer = invoke(lam, fn, broken, {"rawPath": "/health"}, LogType="Tail")
    assert answer["FunctionError"] == "Unhandled" and answer["ExecutedVersion"] == broken
    assert "JWKS_URL is not set" in json.loads(answer["Payload"])["errorMessage"]
    tail = base64.b64decode(answer["LogResult"]).decode()
    assert "loading the bundle" in tail and "JWKS_URL is not set" in tail
    # Without LogType=Tail there is no log.
    assert "LogResult" not in invoke(lam, fn, broken, {})


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def test_concurrent_requests_share_at_most_max_workers_warm_containers(runtime, lam, role):
    fn = "echo-concurrent"
    deploy(lam, role, fn, echo_zip("busy"))
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: requests.get(url(runtime, fn, path="busy"), timeout=30), range(10)))
    assert [a.status_code for a in answers] == [200] * 10
    pids = {a.json()["pid"] for a in answers}
    assert 1 < len(pids) <= MAX_WORKERS  # in parallel, and no more containers than the cap
    assert runtime.pool.count(fn) == len(pids)  # all kept warm


def test_what_has_no_function_url_is_forbidden(runtime, lam, role):
    deploy(lam, role, "echo-no-url", echo_zip("x"))
    lam.delete_function_url_config(FunctionName="echo-no-url")
    deploy(lam, role, "echo-with-url", echo_zip("x"))
    for target in (url(runtime, "echo-no-url"), url(runtime, "no-such-function"), url(runtime, "echo-with-url", "no-alias")):
        answer = requests.get(target, timeout=30)
        assert (answer.status_code, answer.json()) == (403, {"Message": "Forbidden"}), target
    assert requests.get(f"{runtime.url}/", timeout=30).status_code == 404


@pytest.fixture
def plain_moto(tmp_path) -> Iterator[str]:
    """A stock `moto_server`, without the sandbox's code route."""
    with (tmp_path / "plain-moto.log").open("wb") as log:
        proc, url = spawn(_free_port(), log, stock=True)
    try:
        yield url
    finally:
        terminate(proc)


def test_a_plain_moto_server_is_reported_not_guessed(plain_moto, aws, tmp_path):
    moto_server = plain_moto
    plain = {**aws, "endpoint_url": moto_server}
    iam_role = boto3.client("iam", **plain).create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    deploy(boto3.client("lambda", **plain), iam_role, "echo-plain-moto", echo_zip("x"))
    log_path = tmp_path / "runtime.log"
    with LambdaRuntime(moto_server, region=REGION, log_path=log_path) as rt:
        answer = requests.get(url(rt, "echo-plain-moto"), timeout=30)
    assert (answer.status_code, answer.json()) == (502, INTERNAL_ERROR)
    assert "python -m sandbox.moto_server" in log_path.read_text()


def test_cli_serves_until_sigterm_and_refuses_a_taken_port(moto_endpoint, lam, role):
    deploy(lam, role, "echo-cli", echo_zip("cli"))
    port = _free_port()
    argv = [sys.executable, "-m", "sandbox.lambda_runtime", "--port", str(port), "--aws-endpoint", moto_endpoint]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == f"listening on http://127.0.0.1:{port}"
        assert requests.get(f"http://127.0.0.1:{port}/echo-cli/%24LATEST/plain", timeout=30).json()["label"] == "cli"

        taken = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=30)
        assert taken.returncode == 2
        assert taken.stderr.strip() == f"lambda_runtime: port {port} on 127.0.0.1 is already in use"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    assert "status=200" in proc.stderr.read()  # the invocation log goes to stderr by default
