"""Deploy step: prove a new Lambda version before traffic moves to it (critical).

    python -m steps.promote check --function NAME --qualifier N [--expect-version V] [--health-path /health] [--mask-variables NAMES]
    python -m steps.promote check --url URL [--expect-version V] [--health-path /health] [--mask-function NAME --mask-variables NAMES]
    python -m steps.promote canary --function NAME --alias A --version N --weight PERCENT --seconds S [--health-path P] [--mask-variables NAMES]

The health route is the app's (`--health-path`, the stack's `apiHealthPath`, default `/health`):
an unauthenticated GET that answers 200 once the function can serve, and, unless the app reports no
version (`apiHealthVersion` false: no `--expect-version`), a JSON body `{"version": APP_VERSION}`.

`--mask-variables` names the function's variables whose values are secrets (DATABASE_URL, the app's
`apiSecretEnvironment`): the step reads them from the function (GetFunctionConfiguration) and masks
them in everything it prints, since it quotes what the function says.

`check --function` invokes version N directly (Lambda's Invoke with `Qualifier=N`, `LogType=Tail`)
with a function-URL (payload 2.0) `GET /health` event, and passes only when the function answers
200 with `{"version": V}` (the build's hash, the function's `APP_VERSION`) and Lambda reports that
N ran. It runs between publishing N and moving the alias `stable`, so a bundle that throws on load,
a missing setting or a broken route never receives a request from a user: the failure (the
function's error and the start of its log, masked like every line a step prints) goes to the
alert, and the alias stays where it was.

`check --url` is the same proof through a function URL (`URL` + `health`): previews run `$LATEST`
behind theirs, and their deploy role may not call Invoke.

A function error or a wrong answer is retried twice (a cold start may be slow once), throttling and
`ResourceConflictException` as transient AWS errors are; AccessDenied fails at once naming the
missing action and the role. Prints `{"function", "qualifier", "version", "status", "app_version",
"elapsed_s"}` (or `{"url", ...}`).

`canary` (optional, prod's `canaryPercent`) routes PERCENT of the alias's traffic to N through its
routing config for S seconds while it sends `/health` to N itself without pause (the health
endpoint under load: what it watches where CloudWatch's Errors/Throttles of the version cannot be
read); then it moves the whole alias to N, or, when more than `--max-error-percent` (1) of those
requests failed, puts the routing back to 0% and fails with an alert. It is idempotent: a weight a
killed run left behind on N is resumed (the watch starts again), one left on another version is
removed first; an alias already wholly on N is left alone. Prints `{"function", "alias", "version",
"outcome", "requests", "errors", "seconds"}`.

AWS access: the standard boto3 chain, region from `AWS_REGION`, `AWS_ENDPOINT_URL` honoured.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import requests

from steps.args import ENV_NAME, HEALTH_PATH, HEALTH_PATH_SHAPE, StepParser, http_url, matching, positive_seconds
from steps.lambda_versions import ALIAS_NAME, FUNCTION_NAME, VERSION, access_denied_error, lambda_client
from steps.retry import aws_error, http_is_transient
from steps.runtime import PermanentError, TransientError, log, run_step, shown

PUBLISHED = re.compile(r"[0-9]{1,10}")
USER_AGENT = "webstack-pre-traffic-check"
# How much of the function's log an alert quotes: its first lines, each bounded.
LOG_LINES_QUOTED = 6
LOG_LINE_LIMIT = 240
# An app version is the build's sha256 (or any short token a person set).
APP_VERSION = matching(re.compile(r"[A-Za-z0-9._:-]{1,128}"), "an app version (the build's hash)")


class CheckFailed(TransientError):
    """The version answered, wrongly: retried a little (a cold start), then the step fails."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message,
            hint=(
                "the alias was not moved: users still get the previous version. Fix the function "
                "(its error and log are above), push, and the next deploy checks the new build"
            ),
        )


def health_event(request_id: str | None = None, now: float | None = None, path: str = HEALTH_PATH) -> dict[str, Any]:
    """The function-URL (API Gateway payload 2.0) event of an unauthenticated `GET <path>` (/health)."""
    now = time.time() if now is None else now
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"accept": "application/json", "user-agent": USER_AGENT},
        "requestContext": {
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": USER_AGENT},  # fmt: skip
            "requestId": request_id or str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }


def log_start(log_result: str | None) -> list[str]:
    """The first lines of an Invoke's `LogResult` (base64), without Lambda's START/END/REPORT."""
    if not log_result:
        return []
    try:
        text = base64.b64decode(log_result).decode("utf-8", "replace")
    except ValueError:
        return []
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith(("START ", "END ", "REPORT "))]
    return [shown(line.strip(), LOG_LINE_LIMIT, quote=False) for line in lines[:LOG_LINES_QUOTED]]


def _quoted_log(lines: list[str]) -> str:
    return " Log: " + " / ".join(lines) if lines else " (no log)"


def reported_version(body: Any) -> str | None:
    """`version` of a /health body (a JSON string or an object), None when it has none."""
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    value = body.get("version") if isinstance(body, Mapping) else None
    return str(value) if value is not None else None


def _version_text(version: str | None) -> str:
    return f"version {shown(version, 80)}" if version is not None else "no version"


def judge_invoke(
    function: str, qualifier: str, expect: str | None, answer: Mapping[str, Any], path: str = HEALTH_PATH
) -> dict[str, Any]:
    """What an Invoke answer (Payload already read as bytes) says; CheckFailed unless it answered 200
    and (unless `expect` is None: the app reports no version) reports `expect`."""
    where = f"version {qualifier} of {function}"
    lines = log_start(answer.get("LogResult"))
    payload_text = answer.get("Payload") or b""
    try:
        payload = json.loads(payload_text) if payload_text else None
    except ValueError:
        payload = None
    if answer.get("FunctionError"):
        error = payload if isinstance(payload, Mapping) else {}
        kind = shown(error.get("errorType") or answer["FunctionError"], 80, quote=False)
        message = shown(error.get("errorMessage") or payload_text[:200], 400, quote=False)
        raise CheckFailed(f"{where} failed its pre-traffic check: {kind}: {message}.{_quoted_log(lines)}")
    executed = str(answer.get("ExecutedVersion") or qualifier)
    if executed != qualifier:
        raise PermanentError(f"asked for {where}, Lambda ran version {executed}",
                             hint="the qualifier must be a published version number; check the program")  # fmt: skip
    status = payload.get("statusCode") if isinstance(payload, Mapping) else None
    if status != 200:
        body = payload.get("body") if isinstance(payload, Mapping) else payload_text
        raise CheckFailed(
            f"{where} answered GET {path} with status {status}, expected 200: "
            f"{shown(body, 200, quote=False)}.{_quoted_log(lines)}"
        )
    version = reported_version(payload.get("body"))
    if expect is not None and version != expect:
        raise CheckFailed(
            f"{where} reports {_version_text(version)} on {path}, expected {expect} "
            "(the build this deploy made; an app that reports no version sets `apiHealthVersion` false)"
        )
    return {"function": function, "qualifier": qualifier, "version": executed, "status": status, "app_version": version}


def check_invoke(client: Any, function: str, qualifier: str, expect: str | None, path: str = HEALTH_PATH) -> dict[str, Any]:
    started = time.monotonic()
    event = json.dumps(health_event(path=path)).encode()
    try:
        answer = client.invoke(FunctionName=function, Qualifier=qualifier, LogType="Tail", Payload=event)
    except Exception as exc:
        code, message, _ = aws_error(exc) or ("", "", 0)
        if code.startswith("AccessDenied"):
            raise access_denied_error(exc, fallback_action="lambda:InvokeFunction") from exc
        if code == "ResourceNotFoundException":
            raise PermanentError(f"version {qualifier} of {function} not found: {message}",
                                 hint="the version should exist once published; check the stack's state") from exc  # fmt: skip
        raise
    answer = {**answer, "Payload": answer["Payload"].read()}
    result = judge_invoke(function, qualifier, expect, answer, path)
    log(f"version {qualifier} of {function} answered {path} 200" + (f" with version {expect}" if expect else ""))
    return {**result, "elapsed_s": round(time.monotonic() - started, 3)}


def check_url(url: str, expect: str | None, request_timeout: float = 10.0, path: str = HEALTH_PATH) -> dict[str, Any]:
    started = time.monotonic()
    target = url.rstrip("/") + path
    try:
        response = requests.get(target, timeout=request_timeout, headers={"user-agent": USER_AGENT})
    except ValueError as exc:
        raise PermanentError(f"GET {shown(target)}: not a URL requests can send ({type(exc).__name__})") from None
    status = response.status_code
    if status != 200:
        message = f"GET {shown(target, 200, quote=False)} answered {status}: {shown(response.text, 200, quote=False)}"
        if http_is_transient(status):
            raise CheckFailed(message + " (a 502 is the function throwing or failing to load: see its log)")
        raise PermanentError(
            message, hint=f"the preview's API is not serving {path} (`apiHealthPath`); fix it and push again"
        )
    version = reported_version(response.text)
    if expect is not None and version != expect:
        raise CheckFailed(f"GET {shown(target, 200, quote=False)} reports {_version_text(version)}, expected {expect}")
    log(f"{target} answered 200" + (f" with version {expect}" if expect else ""))
    return {"url": target, "status": status, "app_version": version, "elapsed_s": round(time.monotonic() - started, 3)}


# ------------------------------------------------------------------------------------ canary


def _weights(alias: Mapping[str, Any]) -> dict[str, float]:
    return {str(k): float(v) for k, v in ((alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}).items()}


def _aws(fn: Any, *, action: str) -> Any:
    try:
        return fn()
    except Exception as exc:
        code, _, _ = aws_error(exc) or ("", "", 0)
        if code.startswith("AccessDenied"):
            raise access_denied_error(exc, fallback_action=action) from exc
        raise


def mask_function_secrets(client: Any, function: str, names: list[str]) -> None:
    """Mask the values of the function's secret variables (`names`) in every line this step prints.

    The step quotes what the function says (its error, its log, a response body), a function may
    print its own settings, and those lines land in state. The runner's job environment, which
    `steps.runtime` masks, need not hold them (a secret may come from `pulumi config set --secret`),
    and a Command's environment is no place for a secret (the policy pack refuses it), so they are
    read from the function itself and added to this process's masked variables."""
    configuration = _aws(lambda: client.get_function_configuration(FunctionName=function),
                         action="lambda:GetFunctionConfiguration")  # fmt: skip
    variables = (configuration.get("Environment") or {}).get("Variables") or {}
    masked = [name.strip() for name in os.environ.get("STEPS_SECRET_ENV", "").split(",") if name.strip()]
    for index, name in enumerate(names):
        if variables.get(name):
            os.environ[f"WEBSTACK_FUNCTION_SECRET_{index}"] = variables[name]
            masked.append(f"WEBSTACK_FUNCTION_SECRET_{index}")
    os.environ["STEPS_SECRET_ENV"] = ",".join(dict.fromkeys(masked))


def _route(client: Any, function: str, alias: str, version: str, weights: dict[str, float]) -> None:
    _aws(lambda: client.update_alias(FunctionName=function, Name=alias, FunctionVersion=version,
                                     RoutingConfig={"AdditionalVersionWeights": weights}),
         action="lambda:UpdateAlias")  # fmt: skip


def watch(
    client: Any, function: str, version: str, seconds: float, max_error_percent: float, path: str = HEALTH_PATH
) -> tuple[int, int, list[str]]:
    """(requests, errors, first error messages) of the health route sent to `version` for `seconds`;
    stops early once the errors alone exceed the limit over at least 20 requests."""
    deadline = time.monotonic() + seconds
    total = errors = 0
    samples: list[str] = []
    while time.monotonic() < deadline:
        total += 1
        try:
            invoked = client.invoke(FunctionName=function, Qualifier=version, Payload=json.dumps(health_event(path=path)).encode())
            answer = {**invoked, "Payload": invoked["Payload"].read()}
            status = json.loads(answer["Payload"] or b"null")
            if answer.get("FunctionError") or not isinstance(status, Mapping) or status.get("statusCode") != 200:
                raise CheckFailed(shown(answer["Payload"][:300], 300, quote=False))
        except CheckFailed as failed:
            errors += 1
            if len(samples) < 3:
                samples.append(str(failed))
        except Exception as exc:  # noqa: BLE001 - a throttle or a timeout is an error of this version too
            code, _, _ = aws_error(exc) or ("", "", 0)
            if code.startswith("AccessDenied"):
                raise access_denied_error(exc, fallback_action="lambda:InvokeFunction") from exc
            errors += 1
            if len(samples) < 3:
                samples.append(f"{type(exc).__name__}: {shown(exc, 200, quote=False)}")
        if total >= 20 and errors * 100 > max_error_percent * total:
            break
        time.sleep(0.02)
    return total, errors, samples


def canary(client: Any, function: str, alias: str, version: str, percent: float, seconds: float,
           max_error_percent: float, path: str = HEALTH_PATH) -> dict[str, Any]:  # fmt: skip
    started = time.monotonic()
    current = _aws(lambda: client.get_alias(FunctionName=function, Name=alias), action="lambda:GetAlias")
    stable, weights = str(current["FunctionVersion"]), _weights(current)
    result = {"function": function, "alias": alias, "version": version}
    if stable == version and not weights:
        log(f"alias {alias} of {function} already routes everything to version {version}")
        return {**result, "outcome": "already-promoted", "requests": 0, "errors": 0, "seconds": 0.0}
    if stable == version:  # a weight to an older version, left with N already the target
        _route(client, function, alias, version, {})
        log(f"removed the weight {weights} left on alias {alias}; it routes everything to {version}")
        return {**result, "outcome": "already-promoted", "requests": 0, "errors": 0, "seconds": 0.0}
    leftover = {v: w for v, w in weights.items() if v != version}
    if leftover:
        _route(client, function, alias, stable, {})
        log(f"rolled back a canary an earlier run left on alias {alias} ({leftover}): 0% to those versions")
    if version in weights:
        log(f"resuming the canary of version {version} an earlier run left at {weights[version]:.0%}: watching again")
    _route(client, function, alias, stable, {version: percent / 100})
    log(f"canary: alias {alias} sends {percent:g}% to version {version} ({stable} keeps the rest) for {seconds:g}s")

    total, errors, samples = watch(client, function, version, seconds, max_error_percent, path)
    rate = errors * 100 / total if total else 100.0
    if total == 0 or rate > max_error_percent:
        _route(client, function, alias, stable, {})
        raise PermanentError(
            f"canary of version {version} of {function} failed: {errors} of {total} requests to it failed "
            f"({rate:.0f}% > {max_error_percent:g}%); rolled back to 0%, alias {alias} stays on version {stable}. "
            f"First errors: {' / '.join(samples) or 'none'}",
            hint="fix the function (its errors are above and in its logs), push, and the next deploy runs a new canary",
        )
    _route(client, function, alias, version, {})
    log(f"canary: {errors} of {total} requests failed ({rate:.1f}%); alias {alias} now routes everything to {version}")
    return {**result, "outcome": "promoted", "requests": total, "errors": errors,
            "seconds": round(time.monotonic() - started, 3)}  # fmt: skip


def percent_weight(text: str) -> float:
    """A canary weight: a percentage above 0 and below 100 (argparse `type=`)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 100:
        raise argparse.ArgumentTypeError(f"must be a percentage above 0 and below 100, not {shown(text)}")
    return value


def variable_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    bad = [name for name in names if not ENV_NAME.fullmatch(name)]
    if bad:
        raise argparse.ArgumentTypeError(f"not a variable name: {shown(bad[0], 60)} (letters, digits, _)")
    return names


def error_percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 100:
        raise argparse.ArgumentTypeError(f"must be a percentage from 0 to below 100, not {shown(text)}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = StepParser(prog="python -m steps.promote", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="prove a version (Invoke) or a function URL answers /health")
    where = check.add_mutually_exclusive_group(required=True)
    where.add_argument("--function", type=matching(FUNCTION_NAME, "a Lambda function name or ARN"))
    where.add_argument("--url", type=http_url, help="a function URL (previews)")
    check.add_argument("--qualifier", type=matching(VERSION, "a published version number or $LATEST"))
    check.add_argument("--expect-version", type=APP_VERSION,
                       help="the version the health route must report (absent: a 200 is enough; `apiHealthVersion` false)")
    check.add_argument("--timeout", type=positive_seconds, default=120.0, help="total seconds to keep trying")
    shift = sub.add_parser("canary", help="shift a weight of the alias to a version, watch it, then promote or roll back")
    shift.add_argument("--function", required=True, type=matching(FUNCTION_NAME, "a Lambda function name or ARN"))
    shift.add_argument("--alias", required=True, type=matching(ALIAS_NAME, "a Lambda alias name"))
    shift.add_argument("--version", required=True, type=matching(PUBLISHED, "a published version number"))
    shift.add_argument("--weight", required=True, type=percent_weight, help="percent of the alias's traffic")
    shift.add_argument("--seconds", required=True, type=positive_seconds, help="how long to watch")
    shift.add_argument("--max-error-percent", type=error_percent, default=1.0)
    for command in (check, shift):
        command.add_argument("--health-path", type=matching(HEALTH_PATH_SHAPE, "a URL path starting with /"),
                             default=HEALTH_PATH, help=f"the app's health route (default {HEALTH_PATH})")  # fmt: skip
        command.add_argument("--mask-variables", type=variable_names, default=[],
                             help="comma list of the function's variables whose values are secrets (masked)")  # fmt: skip
    check.add_argument("--mask-function", type=matching(FUNCTION_NAME, "a Lambda function name or ARN"),
                       help="with --url: the function whose --mask-variables to read")  # fmt: skip
    args = parser.parse_args(argv)
    masked_function = args.function or args.mask_function
    if args.mask_variables and not masked_function:
        parser.error("--mask-variables with --url needs --mask-function (the function whose values to mask)")

    def masking(body: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        def masked_body() -> dict[str, Any]:
            if args.mask_variables:  # no AWS client (nor region) needed when nothing is to be masked
                mask_function_secrets(lambda_client(), masked_function, args.mask_variables)
            return body()

        return masked_body

    if args.command == "canary":
        return run_step(
            "promote canary",
            critical=True,
            body=masking(lambda: canary(lambda_client(), args.function, args.alias, args.version, args.weight,
                                        args.seconds, args.max_error_percent, args.health_path)),  # fmt: skip
            # Each run starts (or resumes) the watch: a failed canary must not be retried into success.
            attempts=1,
        )
    if args.function and not args.qualifier:
        parser.error("--function needs --qualifier (the version to check)")
    if args.url and args.qualifier:
        parser.error("--qualifier goes with --function, not --url")
    if args.function:
        body = lambda: check_invoke(lambda_client(), args.function, args.qualifier, args.expect_version, args.health_path)  # noqa: E731
    else:
        body = lambda: check_url(args.url, args.expect_version, min(10.0, args.timeout), args.health_path)  # noqa: E731
    return run_step("promote check", critical=True, body=masking(body), attempts=3, deadline=args.timeout, initial_wait=1.0)


if __name__ == "__main__":
    sys.exit(main())
