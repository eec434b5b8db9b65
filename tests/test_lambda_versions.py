"""steps.lambda_versions: verify-alias and prune against the real moto_server and a loopback stub.

moto answers the Lambda API for real (versions, aliases, routing configs, deletes) but enforces no
IAM and lets an aliased version be deleted: the prune tests prove the step protects those itself.
What moto cannot produce (AccessDenied, "update in progress" conflicts, "aliases reference it"
refusals) comes from a scripted loopback stub shaped like Lambda's REST-JSON answers.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import boto3
import pytest

from steps.lambda_versions import (
    alias_targets,
    main,
    parse_access_denied,
    plan_prune,
    role_of,
    routing_problems,
)
from tests.support.http_stub import Reply, Request
from tests.support.moto import ACCOUNT_ID, REGION, aws_env, moto_server, point_aws_at  # noqa: F401

pytestmark = pytest.mark.usefixtures("steps_env")

REPO = Path(__file__).resolve().parents[1]
FUNCTION = "webstack-api-prod"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{FUNCTION}"
ROLE_SESSION_ARN = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/webstack-deploy-prod/GitHubActions"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/webstack-deploy-prod"

# Shapes of real IAM denials (identity policy, explicit deny, SCP, IAM user).
DENIED_GET_ALIAS = (
    f"User: {ROLE_SESSION_ARN} is not authorized to perform: lambda:GetAlias on resource: "
    f"{FUNCTION_ARN}:stable because no identity-based policy allows the lambda:GetAlias action"
)
DENIED_EXPLICIT = (
    f"User: {ROLE_SESSION_ARN} is not authorized to perform: lambda:DeleteFunction on resource: "
    f"{FUNCTION_ARN}:4 with an explicit deny in an identity-based policy"
)
DENIED_SCP = (
    f"User: {ROLE_SESSION_ARN} is not authorized to perform: lambda:ListAliases on resource: "
    f"{FUNCTION_ARN} with an explicit deny in a service control policy"
)
DENIED_USER = (
    f"User: arn:aws:iam::{ACCOUNT_ID}:user/ci is not authorized to perform: "
    f"lambda:ListVersionsByFunction on resource: {FUNCTION_ARN}"
)


# ------------------------------------------------------------------------------ pure logic


def test_parse_access_denied_names_action_role_resource_and_reason():
    denied = parse_access_denied(DENIED_GET_ALIAS)
    assert denied.action == "lambda:GetAlias"
    assert denied.principal == ROLE_SESSION_ARN
    assert denied.role == ROLE_ARN
    assert denied.resource == f"{FUNCTION_ARN}:stable"
    assert denied.reason == "because no identity-based policy allows the lambda:GetAlias action"


@pytest.mark.parametrize(
    ("message", "action", "role", "resource"),
    [
        (DENIED_EXPLICIT, "lambda:DeleteFunction", ROLE_ARN, f"{FUNCTION_ARN}:4"),
        (DENIED_SCP, "lambda:ListAliases", ROLE_ARN, FUNCTION_ARN),
        (DENIED_USER, "lambda:ListVersionsByFunction", f"arn:aws:iam::{ACCOUNT_ID}:user/ci", FUNCTION_ARN),
        # Wrapped across lines the way some tools print it.
        (DENIED_GET_ALIAS.replace(" on resource", "\n  on resource"), "lambda:GetAlias", ROLE_ARN,
         f"{FUNCTION_ARN}:stable"),
    ],
)
def test_parse_access_denied_shapes(message, action, role, resource):
    denied = parse_access_denied(message)
    assert (denied.action, denied.role, denied.resource) == (action, role, resource)


def test_parse_access_denied_without_details_finds_nothing():
    denied = parse_access_denied("Access denied")
    assert denied == type(denied)(action=None, principal=None, role=None, resource=None, reason=None)


def test_role_of():
    assert role_of(ROLE_SESSION_ARN) == ROLE_ARN
    assert role_of("arn:aws-cn:sts::111122223333:assumed-role/r/s") == "arn:aws-cn:iam::111122223333:role/r"
    assert role_of(ROLE_ARN) == ROLE_ARN
    assert role_of(f"arn:aws:sts::{ACCOUNT_ID}:federated-user/bob") is None


def test_plan_prune_keeps_newest_and_protected_never_latest():
    versions = ["$LATEST", "1", "2", "3", "4", "5", "6", "10"]
    delete, kept = plan_prune(versions, {"3", "$LATEST"}, keep=2)
    assert delete == ["1", "2", "4", "5"]
    assert kept == ["3", "6", "10"]  # numeric order: 10 is newer than 6
    assert plan_prune(["$LATEST", "1"], set(), keep=3) == ([], ["1"])


def test_alias_targets_include_weighted_versions():
    aliases = [
        {"Name": "stable", "FunctionVersion": "3"},
        {"Name": "canary", "FunctionVersion": "5", "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.1}}},
    ]
    assert alias_targets(aliases) == {"3": ["stable"], "5": ["canary"], "2": ["canary (weighted)"]}


def test_routing_problems():
    assert routing_problems({"FunctionVersion": "4"}, "4") == []
    assert routing_problems({"FunctionVersion": "4", "RoutingConfig": {}}, "4") == []
    assert routing_problems({"FunctionVersion": "3"}, "4") == ["it routes to version 3"]
    weighted = {"FunctionVersion": "4", "RoutingConfig": {"AdditionalVersionWeights": {"3": 0.25}}}
    assert routing_problems(weighted, "4") == ["it sends 25% of requests to version 3"]


def test_keep_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        main(["prune", "--function", FUNCTION, "--keep", "0"])
    assert "--keep must be at least 1" in capsys.readouterr().err


# ------------------------------------------------------------- against a Lambda-shaped stub

ALIAS_PATH = f"/2015-03-31/functions/{FUNCTION}/aliases/stable"


def _aws_error(status: int, code: str, message: str) -> Reply:
    return Reply(status, json={"Type": "User", "message": message}, headers={"x-amzn-ErrorType": code})


def _alias_json(version: str) -> dict:
    return {
        "AliasArn": f"{FUNCTION_ARN}:stable",
        "Name": "stable",
        "FunctionVersion": version,
        "Description": "",
        "RevisionId": "0b7c6c9f-5c1f-4a52-8a0e-111111111111",
    }


def test_verify_alias_retries_resource_conflict(http_stub, monkeypatch, capsys):
    point_aws_at(monkeypatch, http_stub.url)
    conflict = _aws_error(
        409, "ResourceConflictException",
        f"The operation cannot be performed at this time. An update is in progress for resource: {FUNCTION_ARN}",
    )
    http_stub.route("GET", ALIAS_PATH, conflict, conflict, Reply(200, json=_alias_json("7")))

    code = main(["verify-alias", "--function", FUNCTION, "--alias", "stable", "--version", "7"])

    out, err = capsys.readouterr()
    assert code == 0, err
    assert len(http_stub.requests_to(ALIAS_PATH)) == 3
    assert "attempt 1 of 5 failed" in err and "ResourceConflictException" in err
    assert json.loads(out) == {"function": FUNCTION, "alias": "stable", "version": "7"}


def test_verify_alias_access_denied_names_action_and_role(http_stub, monkeypatch, capsys):
    point_aws_at(monkeypatch, http_stub.url)
    http_stub.route("GET", ALIAS_PATH, _aws_error(403, "AccessDeniedException", DENIED_GET_ALIAS))

    code = main(["verify-alias", "--function", FUNCTION, "--alias", "stable", "--version", "7"])

    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert len(http_stub.requests_to(ALIAS_PATH)) == 1  # permanent: no retry
    failed = next(line for line in err.splitlines() if line.startswith("FAILED"))
    assert "lambda:GetAlias" in failed and ROLE_ARN in failed and f"{FUNCTION_ARN}:stable" in failed
    assert "grant lambda:GetAlias" in failed


def test_access_denied_without_principal_asks_sts_who_we_are(http_stub, monkeypatch, capsys):
    point_aws_at(monkeypatch, http_stub.url)
    http_stub.route("GET", ALIAS_PATH, _aws_error(403, "AccessDeniedException", "Access denied"))
    http_stub.route(
        "POST", "/",
        Reply(200, body=(
            '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<GetCallerIdentityResult><Arn>{ROLE_SESSION_ARN}</Arn><UserId>AROAEXAMPLE:GitHubActions</UserId>"
            f"<Account>{ACCOUNT_ID}</Account></GetCallerIdentityResult>"
            "<ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
        ), headers={"Content-Type": "text/xml"}),
    )

    code = main(["verify-alias", "--function", FUNCTION, "--alias", "stable", "--version", "7"])

    err = capsys.readouterr().err
    assert code == 1
    assert b"Action=GetCallerIdentity" in http_stub.requests_to("/", "POST")[0].body
    failed = next(line for line in err.splitlines() if line.startswith("FAILED"))
    # The action comes from the call that was denied when the message does not name it.
    assert "lambda:GetAlias" in failed and ROLE_ARN in failed


def test_prune_skips_a_version_lambda_reports_in_use(http_stub, monkeypatch, capsys):
    point_aws_at(monkeypatch, http_stub.url)
    base = f"/2015-03-31/functions/{FUNCTION}"
    http_stub.route("GET", f"{base}/versions", Reply(200, json={
        "Versions": [{"FunctionName": FUNCTION, "Version": v} for v in ("$LATEST", "1", "2", "3")]
    }))
    http_stub.route("GET", f"{base}/aliases", Reply(200, json={"Aliases": []}))

    def delete(request: Request) -> Reply:
        if request.query.get("Qualifier") == ["1"]:
            return _aws_error(409, "ResourceConflictException",
                              "Unable to delete version because the following aliases reference it: [live]")
        return Reply(204)

    http_stub.route("DELETE", base, delete)

    code = main(["prune", "--function", FUNCTION, "--keep", "1"])

    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out) == {"function": FUNCTION, "deleted": ["2"], "kept": ["3"], "skipped": ["1"]}
    # "in use" is not retried like "update in progress" is.
    assert [r.query["Qualifier"] for r in http_stub.requests_to(base, "DELETE")] == [["1"], ["2"]]
    assert "version 1 of webstack-api-prod is in use" in err


def test_prune_access_denied_is_skipped_not_fatal(http_stub, monkeypatch, capsys, steps_env):
    point_aws_at(monkeypatch, http_stub.url)
    http_stub.route("GET", f"/2015-03-31/functions/{FUNCTION}/versions",
                    _aws_error(403, "AccessDeniedException", DENIED_USER))

    code = main(["prune", "--function", FUNCTION, "--keep", "3"])

    out, err = capsys.readouterr()
    assert code == 0
    assert json.loads(out)["skipped"] is True
    assert "lambda:ListVersionsByFunction" in err and f"arn:aws:iam::{ACCOUNT_ID}:user/ci" in err
    assert steps_env.skip_log.exists()


# ------------------------------------------------------------------------- real moto_server


def _zip(text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("dist/index.js", f"exports.handler = async () => ({json.dumps(text)});\n")
    return buffer.getvalue()


def _function_with_versions(count: int) -> object:
    iam = boto3.client("iam")
    role = iam.create_role(
        RoleName=f"{FUNCTION}-exec",
        AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                           "Action": "sts:AssumeRole"}],
        }),
    )["Role"]["Arn"]
    client = boto3.client("lambda")
    client.create_function(
        FunctionName=FUNCTION, Runtime="nodejs20.x", Role=role, Handler="dist/index.handler",
        Code={"ZipFile": _zip("v0")},
    )
    for n in range(1, count + 1):
        # A version is only published when the code changed since the last one.
        client.update_function_code(FunctionName=FUNCTION, ZipFile=_zip(f"v{n}"))
        assert client.publish_version(FunctionName=FUNCTION)["Version"] == str(n)
    return client


def _versions(client) -> list[str]:
    return [v["Version"] for v in client.list_versions_by_function(FunctionName=FUNCTION)["Versions"]]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "steps.lambda_versions", *args],
        cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=120,
    )


@pytest.mark.slow
def test_prune_keeps_the_aliased_version_and_the_newest(aws_env):
    client = _function_with_versions(6)
    client.create_alias(FunctionName=FUNCTION, Name="stable", FunctionVersion="3")

    result = _run("prune", "--function", FUNCTION, "--keep", "2")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "function": FUNCTION, "deleted": ["1", "2", "4"], "kept": ["3", "5", "6"], "skipped": [],
    }
    # moto would have deleted version 3 if asked: it survives because the step protected it.
    assert _versions(client) == ["$LATEST", "3", "5", "6"]
    assert client.get_alias(FunctionName=FUNCTION, Name="stable")["FunctionVersion"] == "3"

    again = _run("prune", "--function", FUNCTION, "--keep", "2")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["deleted"] == []
    assert _versions(client) == ["$LATEST", "3", "5", "6"]


@pytest.mark.slow
def test_a_version_number_is_never_reused_after_a_prune(aws_env):
    # Lambda numbers versions from the highest it ever published; moto reused the newest number
    # once a prune had deleted an old one, and a qualified call then reached the older copy.
    client = _function_with_versions(6)
    assert _run("prune", "--function", FUNCTION, "--keep", "5").returncode == 0
    assert _versions(client) == ["$LATEST", "2", "3", "4", "5", "6"]
    client.update_function_code(FunctionName=FUNCTION, ZipFile=_zip("v7"))
    assert client.publish_version(FunctionName=FUNCTION)["Version"] == "7"
    sixth = client.get_function(FunctionName=FUNCTION, Qualifier="6")["Configuration"]["CodeSha256"]
    seventh = client.get_function(FunctionName=FUNCTION, Qualifier="7")["Configuration"]["CodeSha256"]
    assert sixth != seventh
    client.delete_function(FunctionName=FUNCTION, Qualifier="7")
    client.update_function_code(FunctionName=FUNCTION, ZipFile=_zip("v8"))
    assert client.publish_version(FunctionName=FUNCTION)["Version"] == "8"


@pytest.mark.slow
def test_prune_keeps_a_weighted_alias_extra_version(aws_env):
    client = _function_with_versions(6)
    client.create_alias(FunctionName=FUNCTION, Name="stable", FunctionVersion="3")
    client.create_alias(
        FunctionName=FUNCTION, Name="canary", FunctionVersion="5",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}},
    )

    result = _run("prune", "--function", FUNCTION, "--keep", "1")

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["deleted"] == ["1", "4"]
    assert summary["kept"] == ["2", "3", "5", "6"]
    assert _versions(client) == ["$LATEST", "2", "3", "5", "6"]
    assert "keeping version 2: alias canary (weighted)" in result.stderr


@pytest.mark.slow
def test_verify_alias_against_moto(aws_env):
    client = _function_with_versions(6)
    client.create_alias(FunctionName=FUNCTION, Name="stable", FunctionVersion="3")

    ok = _run("verify-alias", "--function", FUNCTION, "--alias", "stable", "--version", "3")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {"function": FUNCTION, "alias": "stable", "version": "3"}

    wrong = _run("verify-alias", "--function", FUNCTION, "--alias", "stable", "--version", "6")
    assert wrong.returncode == 1
    assert wrong.stdout == ""
    failed = next(line for line in wrong.stderr.splitlines() if line.startswith("FAILED"))
    assert f"alias stable of function {FUNCTION} should route to version 6, but it routes to version 3" in failed

    client.update_alias(FunctionName=FUNCTION, Name="stable", FunctionVersion="6",
                        RoutingConfig={"AdditionalVersionWeights": {"5": 0.2}})
    weighted = _run("verify-alias", "--function", FUNCTION, "--alias", "stable", "--version", "6")
    assert weighted.returncode == 1
    assert "it sends 20% of requests to version 5" in weighted.stderr

    missing = _run("verify-alias", "--function", FUNCTION, "--alias", "live", "--version", "6")
    assert missing.returncode == 1
    assert f"alias live of function {FUNCTION} not found" in missing.stderr
