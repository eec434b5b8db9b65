"""Deploy step: check where a Lambda alias routes (critical) and prune old versions (non-critical).

    python -m steps.lambda_versions verify-alias --function NAME --alias NAME --version V
    python -m steps.lambda_versions prune --function NAME --keep N

`verify-alias` reads the alias back after Pulumi moved it and fails unless it routes all traffic
to version V (no weighted routing to another version). `ResourceConflictException` ("an update is
in progress") and throttling are retried; `AccessDenied` fails at once, naming the IAM action that
is missing and the role that lacks it. Prints `{"function", "alias", "version"}`.

`prune` deletes published versions older than the newest N, except every version an alias routes
to (`FunctionVersion` and the `RoutingConfig.AdditionalVersionWeights` keys): Lambda refuses to
delete those, but moto and other stand-ins do not, so the step never asks. `$LATEST` is never
touched. A version Lambda still reports in use is skipped with a warning. Prints
`{"function", "deleted", "kept", "skipped"}` (version numbers as strings, oldest first).

Names are checked before anything runs (exit 2, one line): a function name or ARN, an alias name,
a version number (or `$LATEST`), `--keep` at least 1.

AWS access: the standard boto3 credential chain, region from `AWS_REGION` (or the chain's
default), `AWS_ENDPOINT_URL` honoured by boto3 itself. botocore's own retries are off: the steps
runtime retries, logs each attempt and bounds the total time.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from steps.args import StepParser, matching
from steps.retry import aws_error
from steps.runtime import PermanentError, log, retry_call, run_step, shown, warn

T = TypeVar("T")

# "User: arn:aws:sts::123456789012:assumed-role/deploy/GitHubActions is not authorized to perform:
#  lambda:GetAlias on resource: arn:aws:lambda:...:function:api:stable because no identity-based
#  policy allows the lambda:GetAlias action"
_PRINCIPAL = re.compile(r"\bUser: (?P<arn>arn:[^\s]+) is not authorized")
_ACTION = re.compile(r"\bperform: (?P<action>[A-Za-z0-9-]+:[A-Za-z0-9*]+)")
_RESOURCE = re.compile(r"\bon resource: (?P<resource>[^\s]+)")
_REASON = re.compile(r"\b(?P<reason>(?:because|with an explicit deny) .*?)\.?$")
# Matched whole (`fullmatch`): with `$`, an ARN with a trailing newline would pass.
_ASSUMED_ROLE = re.compile(r"arn:(?P<partition>[^:]+):sts::(?P<account>\d+):assumed-role/(?P<role>[^/]+)/(?P<session>.+)")
_ROLE_OR_USER = re.compile(r"arn:[^:]+:iam::\d+:(?:role|user)/\S+")
# Lambda's own limits: a name or ARN (function), an alias name, a published version.
FUNCTION_NAME = re.compile(r"[A-Za-z0-9_:.-]{1,170}")
ALIAS_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
VERSION = re.compile(r"[0-9]{1,10}|\$LATEST")

# Lambda answers ResourceConflictException both for "an update is in progress" (passes) and for
# "the following aliases reference it" (will not pass): only the first is worth a retry.
_IN_PROGRESS = re.compile(r"in progress|pending|try again", re.IGNORECASE)


@dataclass(frozen=True)
class AccessDenied:
    """What an AccessDenied message says: who may not do what on which resource, and why."""

    action: str | None
    principal: str | None
    role: str | None
    resource: str | None
    reason: str | None


def parse_access_denied(message: str) -> AccessDenied:
    """Pull action, principal ARN, role name, resource and reason out of an IAM denial message."""
    text = " ".join(message.split())

    def find(pattern: re.Pattern[str], group: str) -> str | None:
        match = pattern.search(text)
        return match.group(group).rstrip(".,;") if match else None

    principal = find(_PRINCIPAL, "arn")
    return AccessDenied(
        action=find(_ACTION, "action"),
        principal=principal,
        role=role_of(principal) if principal else None,
        resource=find(_RESOURCE, "resource"),
        reason=find(_REASON, "reason"),
    )


def role_of(arn: str) -> str | None:
    """The IAM role ARN behind an STS assumed-role ARN (the role's path is not in it), or the
    ARN itself when it already names a role or user; None for anything else."""
    match = _ASSUMED_ROLE.fullmatch(arn)
    if match:
        return f"arn:{match['partition']}:iam::{match['account']}:role/{match['role']}"
    if _ROLE_OR_USER.fullmatch(arn):
        return arn
    return None


def _error(exc: BaseException) -> tuple[str, str]:
    """(code, message) of an AWS error; empty strings for anything else."""
    code, message, _ = aws_error(exc) or ("", "", 0)
    return code, message


def _caller_arn() -> str | None:
    """Who we are, when the denial message does not say (best effort: never raises)."""
    try:
        import boto3

        return boto3.client("sts", region_name=_region(), config=_config()).get_caller_identity()["Arn"]
    except Exception as exc:  # noqa: BLE001 - only an aid to the real error message
        warn(f"could not read the caller identity: {exc}")
        return None


def access_denied_error(exc: BaseException, *, fallback_action: str) -> PermanentError:
    """A PermanentError that names the missing action and the role, from an AccessDenied error."""
    _, message = _error(exc)
    denied = parse_access_denied(message)
    action = denied.action or fallback_action
    principal = denied.principal or _caller_arn()
    role = (role_of(principal) if principal else None) or principal or "the deploy role (unknown caller)"
    resource = denied.resource or "the function"
    detail = f" ({denied.reason})" if denied.reason else ""
    return PermanentError(
        f"AccessDenied: {role} may not {action} on {resource}{detail}",
        hint=(
            f"grant {action} on {resource} to {role} (the deploy role's policy in "
            "components/aws_policies.py), apply it, and re-run the deploy"
        ),
    )


def _region() -> str | None:
    return os.environ.get("AWS_REGION") or None


def _config() -> Any:
    from botocore.config import Config

    # One attempt per call: retries belong to the runtime (logged, bounded, jittered).
    return Config(retries={"total_max_attempts": 1}, connect_timeout=10, read_timeout=30)


def lambda_client() -> Any:
    import boto3

    return boto3.client("lambda", region_name=_region(), config=_config())


def _call(fn: Callable[[], T], *, action: str, retry: bool) -> T:
    """Call AWS; AccessDenied becomes a PermanentError naming `action` and the role."""

    def once() -> T:
        try:
            return fn()
        except Exception as exc:
            code, _ = _error(exc)
            if code.startswith("AccessDenied"):
                raise access_denied_error(exc, fallback_action=action) from exc
            raise

    return retry_call(once, what=action, attempts=5, deadline=120.0) if retry else once()


# ------------------------------------------------------------------------------- verify-alias


def routing_problems(alias: Mapping[str, Any], expected: str) -> list[str]:
    """Why `alias` (a GetAlias response) does not route everything to `expected`; [] if it does."""
    problems = []
    actual = str(alias.get("FunctionVersion"))
    if actual != expected:
        problems.append(f"it routes to version {actual}")
    weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    # The program never sets weighted routing: any extra version means someone else did.
    for version, weight in sorted(weights.items()):
        problems.append(f"it sends {float(weight):.0%} of requests to version {version}")
    return problems


def verify_alias(client: Any, function: str, alias: str, expected: str) -> dict[str, str]:
    """Read the alias back and check its target (one attempt: run_step retries transient errors)."""
    try:
        response = _call(lambda: client.get_alias(FunctionName=function, Name=alias),
                         action="lambda:GetAlias", retry=False)
    except Exception as exc:
        code, message = _error(exc)
        if code == "ResourceNotFoundException":
            raise PermanentError(
                f"alias {alias} of function {function} not found: {message}",
                hint="the alias should exist after `pulumi up`; check the function name and the stack's state",
            ) from exc
        raise
    problems = routing_problems(response, expected)
    if problems:
        raise PermanentError(
            f"alias {alias} of function {function} should route to version {expected}, but "
            + " and ".join(problems),
            hint=(
                "something else moved the alias (a manual change, another deploy, weighted routing); "
                "check `aws lambda get-alias` and the stack's pinnedVersion, then re-run the deploy"
            ),
        )
    log(f"alias {alias} of {function} routes to version {expected}")
    return {"function": function, "alias": alias, "version": expected}


# ---------------------------------------------------------------------------------- prune


def _paginate(client: Any, operation: str, key: str, function: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in client.get_paginator(operation).paginate(FunctionName=function):
        items.extend(page.get(key) or [])
    return items


def alias_targets(aliases: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """version -> the aliases that route to it (main target or weighted extra)."""
    targets: dict[str, list[str]] = {}
    for alias in aliases:
        name = str(alias.get("Name"))
        targets.setdefault(str(alias.get("FunctionVersion")), []).append(name)
        weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        for version in weights:
            targets.setdefault(str(version), []).append(f"{name} (weighted)")
    return targets


def plan_prune(versions: Iterable[str], protected: Iterable[str], keep: int) -> tuple[list[str], list[str]]:
    """(delete, kept): the numeric versions beyond the newest `keep`, minus `protected`."""
    numbers = sorted({int(v) for v in versions if v.isdigit()})
    newest = set(numbers[-keep:]) if keep > 0 else set()
    shielded = {int(v) for v in protected if v.isdigit()}
    delete = [str(n) for n in numbers if n not in newest and n not in shielded]
    kept = [str(n) for n in numbers if n in newest or n in shielded]
    return delete, kept


def _in_use(exc: BaseException) -> bool:
    code, message = _error(exc)
    return code == "ResourceConflictException" and not _IN_PROGRESS.search(message)


def prune(client: Any, function: str, keep: int) -> dict[str, Any]:
    versions = _call(
        lambda: [v["Version"] for v in _paginate(client, "list_versions_by_function", "Versions", function)],
        action="lambda:ListVersionsByFunction",
        retry=True,
    )
    aliases = _call(lambda: _paginate(client, "list_aliases", "Aliases", function),
                    action="lambda:ListAliases", retry=True)
    targets = alias_targets(aliases)
    delete, kept = plan_prune(versions, targets, keep)
    for version in kept:
        if version in targets:
            log(f"keeping version {version}: alias {', '.join(targets[version])}")
    log(f"{function}: {len(versions)} versions ($LATEST included), keeping {kept}, deleting {delete}")

    deleted: list[str] = []
    skipped: list[str] = []
    for version in delete:

        def delete_one(version: str = version) -> None:
            try:
                client.delete_function(FunctionName=function, Qualifier=version)
            except Exception as exc:
                if _in_use(exc):
                    raise _InUse(_error(exc)[1]) from exc
                raise

        try:
            _call(delete_one, action="lambda:DeleteFunction", retry=True)
        except _InUse as exc:
            warn(f"version {version} of {function} is in use, not deleted: {exc}")
            skipped.append(version)
            continue
        except Exception as exc:
            if _error(exc)[0] != "ResourceNotFoundException":
                raise
            log(f"version {version} of {function} was already gone")
        else:
            log(f"deleted version {version} of {function}")
        deleted.append(version)
    return {"function": function, "deleted": deleted, "kept": kept, "skipped": skipped}


class _InUse(Exception):
    """Lambda refused to delete a version something still references (not worth a retry)."""


# ----------------------------------------------------------------------------------- CLI


def _keep(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {shown(value)}") from None
    # The newest version is the function's `version` in Pulumi's state: it must survive.
    if number < 1:
        raise argparse.ArgumentTypeError("--keep must be at least 1")
    return number


def main(argv: list[str] | None = None) -> int:
    function = matching(FUNCTION_NAME, "a Lambda function name or ARN")
    parser = StepParser(prog="python -m steps.lambda_versions", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify-alias", help="check that an alias routes to the expected version")
    verify.add_argument("--function", required=True, type=function)
    verify.add_argument("--alias", required=True, type=matching(ALIAS_NAME, "a Lambda alias name"))
    verify.add_argument("--version", required=True, type=matching(VERSION, "a published version number"))
    pruner = sub.add_parser("prune", help="delete old versions no alias routes to")
    pruner.add_argument("--function", required=True, type=function)
    pruner.add_argument("--keep", required=True, type=_keep, help="newest published versions to keep (>= 1)")
    args = parser.parse_args(argv)

    if args.command == "verify-alias":
        return run_step(
            "lambda_versions verify-alias",
            critical=True,
            body=lambda: verify_alias(lambda_client(), args.function, args.alias, args.version),
            deadline=120.0,
        )
    # Each AWS call retries on its own; the whole prune runs once.
    return run_step(
        "lambda_versions prune",
        critical=False,
        body=lambda: prune(lambda_client(), args.function, args.keep),
        attempts=1,
    )


if __name__ == "__main__":
    sys.exit(main())
