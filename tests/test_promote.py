"""steps.promote check: the pre-traffic check, against moto and the local Lambda runtime for real.

moto holds the functions and versions; Invoke reaches the local Lambda runtime (sandbox/moto_server.py
forwards it), which runs each version's stored code under node. The step runs as the process a
Command starts, with an alert webhook stub, and is judged by its exit code, stdout and the alert.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from sandbox.lambda_runtime import LambdaRuntime
from steps.promote import CheckFailed, health_event, judge_invoke, log_start
from tests.support.http_stub import StubServer
from tests.support.moto import REGION, aws_env, moto_server  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("steps_env")

REPO = Path(__file__).resolve().parents[1]
BUILD = "0f3c" * 16  # what the build step prints: the hash of what Lambda extracts
HEALTHY = """
exports.handler = async (event) => {
  if (event.rawPath === '/health' && event.requestContext.http.method === 'GET')
    return { statusCode: 200, headers: { 'content-type': 'application/json' },
             body: JSON.stringify({ status: 'ok', version: process.env.APP_VERSION }) };
  return { statusCode: 404, body: 'not found' };
};
"""
THROWS_ON_LOAD = """
console.log('connecting to ' + process.env.DATABASE_URL);
console.log('reading JWKS_URL');
throw new Error('JWKS_URL is not set');
"""
SECRET_PASSWORD = "S3ntinel-db-password-91"
FUNCTION_DATABASE_URL = f"postgres://app:{SECRET_PASSWORD}@db.internal:5432/app"


def lines_b64(*lines: str) -> str:
    return base64.b64encode("\n".join(lines).encode()).decode()


# ------------------------------------------------------------------------------ pure logic


def test_health_event_is_a_payload_v2_get_of_health():
    event = health_event("req-1", now=1_700_000_000.0)
    assert event["version"] == "2.0" and event["rawPath"] == "/health"
    assert event["requestContext"]["http"]["method"] == "GET" and event["requestContext"]["requestId"] == "req-1"
    assert event["requestContext"]["timeEpoch"] == 1_700_000_000_000 and "authorization" not in event["headers"]


def test_log_start_drops_lambdas_own_lines_and_bounds_the_rest():
    log = lines_b64("START RequestId: x Version: 3", "first", "", "x" * 1000, *[f"l{i}" for i in range(30)], "END RequestId: x")
    lines = log_start(log)
    assert lines[0] == "first" and len(lines) == 6 and len(lines[1]) < 300
    assert log_start(None) == [] and log_start("!!not base64!!") == []


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"FunctionError": "Unhandled", "Payload": b'{"errorType":"Error","errorMessage":"JWKS_URL is not set"}',
          "LogResult": lines_b64("START x", "reading JWKS_URL", "END x")},
         "version 7 of api failed its pre-traffic check: Error: JWKS_URL is not set. Log: reading JWKS_URL"),
        ({"Payload": b'{"statusCode":404,"body":"not found"}', "ExecutedVersion": "7"},
         "version 7 of api answered GET /health with status 404, expected 200: not found. (no log)"),
        ({"Payload": json.dumps({"statusCode": 200, "body": json.dumps({"version": "old"})}).encode(), "ExecutedVersion": "7"},
         "version 7 of api reports version 'old' on /health, expected new"),
        ({"Payload": b'{"statusCode":200,"body":"<html>"}', "ExecutedVersion": "7"},
         "version 7 of api reports no version on /health, expected new"),
    ],
    ids=["throws", "status", "wrong-version", "no-version"],
)
def test_judge_invoke_fails_every_wrong_answer_saying_why(answer: dict[str, Any], expected: str):
    with pytest.raises(CheckFailed) as failed:
        judge_invoke("api", "7", "new", answer)
    assert str(failed.value).startswith(expected), str(failed.value)


def test_judge_invoke_passes_the_right_answer_only_from_the_version_asked_for():
    good = {"Payload": json.dumps({"statusCode": 200, "body": json.dumps({"version": "new"})}).encode(), "ExecutedVersion": "7"}
    assert judge_invoke("api", "7", "new", good)["version"] == "7"
    with pytest.raises(Exception, match="Lambda ran version 6"):
        judge_invoke("api", "7", "new", {**good, "ExecutedVersion": "6"})


# ------------------------------------------------------------------------------ for real


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("index.js", source)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def runtime(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LambdaRuntime]:  # noqa: F811
    root = tmp_path_factory.mktemp("promote-runtime")
    with LambdaRuntime(moto_server, region=REGION, cache_dir=root / "code", log_path=root / "runtime.log") as rt:
        yield rt


def _function(name: str, *codes: str) -> Any:
    """A function with one published version per code, and a function URL, in moto."""
    client = boto3.client("lambda")
    iam = boto3.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName=f"{name}-exec", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    env = {"Variables": {"APP_VERSION": BUILD, "DATABASE_URL": FUNCTION_DATABASE_URL}}
    client.create_function(FunctionName=name, Runtime="nodejs20.x", Role=role, Handler="index.handler",
                           Code={"ZipFile": _zip(codes[0])}, Environment=env)  # fmt: skip
    client.publish_version(FunctionName=name)
    for code in codes[1:]:
        client.update_function_code(FunctionName=name, ZipFile=_zip(code))
        client.publish_version(FunctionName=name)
    client.create_function_url_config(FunctionName=name, AuthType="NONE")
    return client


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "steps.promote", *args],
        cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.slow
def test_check_passes_a_healthy_version_and_stops_one_that_throws_on_load(aws_env, runtime, webhook: StubServer):  # noqa: F811
    _function("promote-api", HEALTHY, THROWS_ON_LOAD)
    # The step's own environment carries the database URL too (the CI job's secret).
    env = {"ALERT_WEBHOOK_URL": webhook.url + "/hooks/alerts-0123456789", "DATABASE_URL": FUNCTION_DATABASE_URL}

    good = _run("check", "--function", "promote-api", "--qualifier", "1", "--expect-version", BUILD, **env)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout) | {"elapsed_s": 0} == {
        "function": "promote-api", "qualifier": "1", "version": "1", "status": 200, "app_version": BUILD, "elapsed_s": 0,
    }
    assert webhook.requests == []

    bad = _run("check", "--function", "promote-api", "--qualifier", "2", "--expect-version", BUILD, **env)
    assert bad.returncode == 1 and bad.stdout == ""
    failed = [line for line in bad.stderr.splitlines() if line.startswith("FAILED ")]
    assert len(failed) == 1 and "version 2 of promote-api failed its pre-traffic check: Error: JWKS_URL is not set" in failed[0]
    assert "Log: connecting to *** / reading JWKS_URL" in failed[0], failed[0]
    assert bad.stderr.count("attempt") >= 2, "a function error is retried before the step gives up"
    (alert,) = [json.loads(r.body) for r in webhook.requests]
    text = json.dumps(alert)
    assert "JWKS_URL is not set" in text and "reading JWKS_URL" in text and "alias was not moved" in text
    assert SECRET_PASSWORD not in bad.stderr + bad.stdout + text

    # The wrong build (an older version) fails too, though it is healthy.
    stale = _run("check", "--function", "promote-api", "--qualifier", "1", "--expect-version", "1" * 64)
    assert stale.returncode == 1 and "reports version" in stale.stderr and "expected " + "1" * 64 in stale.stderr


APP_SECRET = "app-signing-key-5f0e2c7a91"  # one of the app's own secrets (apiSecretEnvironment)
PRINTS_ITS_SECRET = """
exports.handler = async () => { throw new Error('cannot sign with ' + process.env.SHOP_SIGNING_KEY); };
"""


@pytest.mark.slow
def test_check_masks_the_functions_own_secrets_it_quotes(aws_env, runtime):  # noqa: F811
    # The function's error quotes an app secret the runner's job environment does not hold (it came
    # from `pulumi config set --secret`): the step reads the values it is told are secrets from the
    # function and masks them.
    client = _function("promote-leaky", HEALTHY)
    variables = {"APP_VERSION": BUILD, "DATABASE_URL": FUNCTION_DATABASE_URL, "SHOP_SIGNING_KEY": APP_SECRET}
    client.update_function_configuration(FunctionName="promote-leaky", Environment={"Variables": variables})
    client.update_function_code(FunctionName="promote-leaky", ZipFile=_zip(PRINTS_ITS_SECRET))
    version = client.publish_version(FunctionName="promote-leaky")["Version"]
    check = ("check", "--function", "promote-leaky", "--qualifier", version, "--expect-version", BUILD, "--timeout", "10")

    unmasked = _run(*check)
    assert unmasked.returncode == 1 and APP_SECRET in unmasked.stderr, "the function no longer prints its secret"

    masked = _run(*check, "--mask-variables", "DATABASE_URL,SHOP_SIGNING_KEY")
    assert masked.returncode == 1 and "cannot sign with ***" in masked.stderr, masked.stderr
    assert APP_SECRET not in masked.stdout + masked.stderr

    # A preview's check through the URL reads the values from the function it names.
    url = f"{runtime.url}/promote-leaky/%24LATEST/"
    through_url = _run("check", "--url", url, "--expect-version", BUILD, "--timeout", "5",
                       "--mask-function", "promote-leaky", "--mask-variables", "SHOP_SIGNING_KEY")  # fmt: skip
    assert through_url.returncode == 1 and APP_SECRET not in through_url.stdout + through_url.stderr


def test_the_steps_that_quote_the_function_are_told_its_secrets(recorded):
    # prod: the invoke check names the function's secret variables (names only, never a value).
    command = recorded("prod").by_name("api-pre-traffic-check")
    assert '--mask-variables "$MASKED_VARIABLES"' in command.inputs["create"]
    assert command.inputs["environment"]["MASKED_VARIABLES"] == "DATABASE_URL"


@pytest.mark.slow
def test_check_through_a_function_url_for_previews(aws_env, runtime):  # noqa: F811
    _function("promote-preview", HEALTHY)
    url = f"{runtime.url}/promote-preview/%24LATEST/"
    assert _run("check", "--url", url, "--expect-version", BUILD).returncode == 0
    boto3.client("lambda").update_function_code(FunctionName="promote-preview", ZipFile=_zip(THROWS_ON_LOAD))
    broken = _run("check", "--url", url, "--expect-version", BUILD, "--timeout", "5")
    assert broken.returncode == 1 and "answered 502" in broken.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "--function", "api", "--expect-version", BUILD], "--function needs --qualifier"),
        (["check", "--url", "http://x.test/", "--qualifier", "3", "--expect-version", BUILD], "--qualifier goes with --function"),
        (["check", "--function", "api", "--qualifier", "three", "--expect-version", BUILD], "--qualifier"),
        (["check", "--function", "api", "--qualifier", "3", "--expect-version", "a b"], "--expect-version"),
        (["check", "--url", "http://x.test/", "--expect-version", BUILD, "--mask-variables", "TOKEN"], "needs --mask-function"),
        (["check", "--function", "api", "--qualifier", "3", "--expect-version", BUILD, "--mask-variables", "A,B-C"], "not a variable name"),
    ],
)
def test_bad_input_is_one_line_before_anything_runs(args: list[str], message: str):
    result = _run(*args)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr, result.stderr


# ------------------------------------------------------------------------------ canary

FLAKY = """
let calls = 0;
exports.handler = async () => {
  calls += 1;
  if (calls % 5 === 0) throw new Error('every fifth request fails');
  return { statusCode: 200, body: JSON.stringify({ status: 'ok', version: process.env.APP_VERSION }) };
};
"""


def _alias(client: Any, name: str) -> tuple[str, dict[str, float]]:
    alias = client.get_alias(FunctionName=name, Name="stable")
    return alias["FunctionVersion"], (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}


def _canary(name: str, version: str, seconds: str, **env: str) -> subprocess.CompletedProcess[str]:
    return _run("canary", "--function", name, "--alias", "stable", "--version", version, "--weight", "10",
                "--seconds", seconds, **env)  # fmt: skip


@pytest.mark.slow
def test_canary_rolls_back_a_version_failing_one_request_in_five_and_promotes_a_good_one(aws_env, runtime, webhook: StubServer):  # noqa: F811
    client = _function("canary-api", HEALTHY, FLAKY, HEALTHY.replace("status: 'ok'", "status: 'ok', build: 3"))
    client.create_alias(FunctionName="canary-api", Name="stable", FunctionVersion="1")

    bad = _canary("canary-api", "2", "3", ALERT_WEBHOOK_URL=webhook.url + "/hooks/alerts-0123456789")
    assert bad.returncode == 1, bad.stderr
    assert _alias(client, "canary-api") == ("1", {}), "a failed canary must leave no weight behind"
    failed = [line for line in bad.stderr.splitlines() if line.startswith("FAILED ")]
    assert len(failed) == 1 and "canary of version 2 of canary-api failed" in failed[0] and "rolled back to 0%" in failed[0]
    assert "every fifth request fails" in failed[0]
    assert "sends 10% to version 2" in bad.stderr
    (alert,) = [json.loads(r.body) for r in webhook.requests]
    assert "rolled back to 0%" in json.dumps(alert)

    good = _canary("canary-api", "3", "1")
    assert good.returncode == 0, good.stderr
    result = json.loads(good.stdout)
    assert result["outcome"] == "promoted" and result["errors"] == 0 and result["requests"] > 5
    assert _alias(client, "canary-api") == ("3", {})
    # Again: nothing to do.
    assert json.loads(_canary("canary-api", "3", "1").stdout)["outcome"] == "already-promoted"


@pytest.mark.slow
def test_a_killed_canary_is_resumed_and_a_stale_weight_rolled_back_by_the_next_run(aws_env, runtime):  # noqa: F811
    client = _function("canary-killed", HEALTHY, HEALTHY, HEALTHY, HEALTHY)
    client.create_alias(FunctionName="canary-killed", Name="stable", FunctionVersion="1")
    argv = [sys.executable, "-m", "steps.promote", "canary", "--function", "canary-killed", "--alias", "stable",
            "--version", "2", "--weight", "10", "--seconds", "120"]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=REPO, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(300):
            if _alias(client, "canary-killed")[1]:
                break
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert _alias(client, "canary-killed") == ("1", {"2": 0.1}), "the killed run should have left its weight"

    resumed = _canary("canary-killed", "2", "1")
    assert resumed.returncode == 0 and "resuming the canary of version 2" in resumed.stderr, resumed.stderr
    assert _alias(client, "canary-killed") == ("2", {})

    # A weight left on a version that is no longer the one deployed: removed before the new canary.
    client.update_alias(FunctionName="canary-killed", Name="stable", FunctionVersion="2",
                        RoutingConfig={"AdditionalVersionWeights": {"3": 0.1}})  # fmt: skip
    newer = _canary("canary-killed", "4", "1")
    assert newer.returncode == 0 and "rolled back a canary an earlier run left" in newer.stderr, newer.stderr
    assert _alias(client, "canary-killed") == ("4", {})
