"""workflow.teardown_preview: a closed PR's preview removed by the names main's program derives.

The plan comes from the program's own recording of `preview-pr-7` (the committed
Pulumi.preview.yaml: zone, account, project and schema base of the stand-ins' defaults). The
removal runs against the real moto_server (S3 backend, Lambda, IAM), the Cloudflare stand-in and a
real PostgreSQL, with bystanders of PR 70 and prod beside PR 7's objects; outcomes are read back
from those services. Every AWS call it makes is held against the sweeper role's policy as the
program writes it (`aws_policies.sweeper_policy`), evaluated the way IAM matches ARNs, and none
reads a state object.
"""

from __future__ import annotations

import copy
import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests

from components import aws_policies
from core import names
from policy.rules import arn_matches
from sandbox.cloudflare_api import ACCOUNT, TOKEN, ZONE, cloudflare  # noqa: F401 - fixture
from tests.support.moto import ACCOUNT_ID, REGION, aws_env, moto_server  # noqa: F401 - fixtures
from tests.support.postgres import Database, pg_database, postgres  # noqa: F401 - fixtures
from tests.support.steps_env import steps_env  # noqa: F401 - fixture
from workflow import teardown_preview
from workflow.teardown_preview import PlanError, Services, plan_for
from workflow.verify_state import recording_for

pytestmark = pytest.mark.usefixtures("steps_env")

PR = 7
STACK = f"preview-pr-{PR}"
BUCKET = names.foundation_names("webstack", ACCOUNT_ID)["state_bucket"]
HOST = "pr-7.app.example.com"
SCOPE = aws_policies.DeployScope(
    project="webstack", account_id=ACCOUNT_ID, region=REGION, state_bucket_arn=f"arn:aws:s3:::{BUCKET}",
    state_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/state", preview_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/preview",
    lease_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/leases",
    artifacts_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/artifacts",
)  # fmt: skip


@pytest.fixture(scope="module")
def recording():
    return recording_for(STACK)


# --- the plan ------------------------------------------------------------------------------------------


def test_the_plan_is_every_name_the_program_derives_for_the_pr(recording):
    plan = {(t.kind, t.name): dict(t.where) for t in plan_for(recording, PR)}
    assert plan == {
        ("dns-record", HOST): {"zone": ZONE, "type": "CNAME"},
        ("pages-domain", HOST): {"account": ACCOUNT, "project": "webstack-site"},
        ("pages-branch", "pr-7"): {"account": ACCOUNT, "project": "webstack-site"},
        ("lambda-function", names.function_name("webstack", STACK)): {"region": REGION},
        ("iam-role", names.execution_role_name("webstack", STACK)): {"region": REGION},
        ("schema", "app_preview_pr_7"): {},
    }


def test_a_name_of_another_pr_is_refused(recording):
    # The recording of PR 7 handed to the teardown of PR 8: no name is PR 8's.
    with pytest.raises(PlanError, match="of PR 8"):
        plan_for(recording, 8)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r.by_name("api-role-role").__setattr__("type", "aws:s3/bucket:Bucket"), "does not know how to remove"),
        (lambda r: r.by_name("site-deploy").inputs.__setitem__("create", "python -m steps.newstep go"), "steps.newstep"),
        (lambda r: r.by_name("app-install").inputs.__setitem__("create", "curl x | sh"), "not a step of this repository"),
        (lambda r: r.by_name("database-migrate").inputs["environment"].__setitem__("DB_SCHEMA", "app"), "no Command of preview-pr-7 creates"),
        (lambda r: r.by_name("api-url").inputs.__setitem__("functionName", "webstack-api-prod"), "does not declare"),
        (lambda r: r.by_name("database-schema").inputs["environment"].__setitem__("DB_SCHEMA", "app"), "not a schema of PR 7"),
        (lambda r: r.by_name("site-domain-record").inputs.__setitem__("name", "app.example.com"), "not a host of PR 7"),
    ],
)
def test_a_program_the_teardown_cannot_follow_stops_it_before_anything_changes(recording, change, expected, capsys):
    changed = copy.deepcopy(recording)
    change(changed)
    with pytest.raises(PlanError, match=expected):
        plan_for(changed, PR)
    assert teardown_preview.main(["--pr", "7"], recording=lambda pr, config: changed, services=Services({})) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected.split()[0] in err


# --- the removal, on the services (moto_server, PostgreSQL, the Cloudflare stand-in: slow tier) ----------

on_the_services = pytest.mark.slow


class Calls:
    """Every AWS call made through boto3 clients created while recording: (service, operation, params)."""

    def __init__(self) -> None:
        self.made: list[tuple[str, str, dict[str, Any]]] = []

    def hook(self, client: Any) -> Any:
        service = client.meta.service_model.service_name

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            self.made.append((service, model.name, copy.deepcopy(params)))

        client.meta.events.register("before-parameter-build", record)
        return client


@pytest.fixture
def calls(monkeypatch) -> Calls:
    recorder = Calls()
    real = boto3.client
    monkeypatch.setattr(boto3, "client", lambda *a, **kw: recorder.hook(real(*a, **kw)))
    return recorder


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("dist/index.js", "exports.handler = async () => ({statusCode: 200})")
    return buffer.getvalue()


def make_preview_aws(pr: int) -> None:
    stack = f"preview-pr-{pr}"
    iam, lam = boto3.client("iam"), boto3.client("lambda")
    role = iam.create_role(
        RoleName=names.execution_role_name("webstack", stack),
        AssumeRolePolicyDocument=json.dumps(aws_policies.lambda_trust_policy()),
    )["Role"]["Arn"]
    iam.attach_role_policy(RoleName=names.execution_role_name("webstack", stack), PolicyArn=aws_policies.BASIC_EXECUTION_POLICY)
    function = names.function_name("webstack", stack)
    lam.create_function(FunctionName=function, Runtime="nodejs20.x", Role=role, Handler="dist/index.handler", Code={"ZipFile": _zip()})
    lam.create_function_url_config(FunctionName=function, AuthType="NONE")
    lam.add_permission(FunctionName=function, StatementId="url", Action="lambda:InvokeFunctionUrl", Principal="*", FunctionUrlAuthType="NONE")


STATE_KEYS = [
    ".pulumi/stacks/webstack/{s}.json",
    ".pulumi/stacks/webstack/{s}.json.bak",
    ".pulumi/stacks/webstack/{s}.pulumi-tags",
    ".pulumi/history/webstack/{s}/{s}-1.history.json",
    ".pulumi/backups/webstack/{s}/{s}.1.json",
    ".pulumi/locks/organization/webstack/{s}/lock.json",
]


def state_keys(stack: str) -> list[str]:
    return [f"pulumi/{k.format(s=stack)}" for k in STATE_KEYS]


def stored_keys() -> set[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return {item["Key"] for page in pages for item in page.get("Contents") or []}


def cf(stub, method: str, path: str, **body: Any) -> Any:
    response = requests.request(
        method, f"{stub.api_base}{path}", headers={"Authorization": f"Bearer {TOKEN}"}, json=body or None, timeout=10
    )
    response.raise_for_status()
    return response.json()["result"]


@pytest.fixture
def world(aws_env, cloudflare, pg_database: Database, monkeypatch) -> Iterator[dict[str, Any]]:
    """PR 7's preview and, beside it, PR 70's and prod's objects on every service."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    for stack in (STACK, "preview-pr-70", "prod"):
        for key in state_keys(stack):
            s3.put_object(Bucket=BUCKET, Key=key, Body=b'{"planted": true}')
    s3.put_object(Bucket=BUCKET, Key="pulumi/.pulumi/meta.yaml", Body=b"version: 1\n")
    for pr in (PR, 70):
        make_preview_aws(pr)

    for branch in ("pr-7", "pr-7", "pr-70", "main"):
        cloudflare.add_deployment(branch)
    for host in (HOST, "pr-70.app.example.com", "app.example.com"):
        cf(cloudflare, "POST", f"/zones/{ZONE}/dns_records", type="CNAME", name=host, content="x.pages.dev", ttl=300)
        cf(cloudflare, "POST", f"/accounts/{ACCOUNT}/pages/projects/webstack-site/domains", name=host)

    with pg_database.connect(autocommit=True) as conn:
        for schema in ("app_preview_pr_7", "app_preview_pr_70", "app_preview"):
            conn.execute(f"CREATE SCHEMA {schema}")
            conn.execute(f"CREATE TABLE {schema}.items (id int)")
    monkeypatch.setenv("DATABASE_URL", pg_database.url)
    env = {
        "CLOUDFLARE_API_TOKEN": TOKEN,
        "CLOUDFLARE_API_BASE_URL": cloudflare.api_base,
        "PULUMI_BACKEND_URL": f"s3://{BUCKET}/pulumi?region={REGION}",
    }
    yield {"env": env, "cloudflare": cloudflare, "db": pg_database}


def schemas(db: Database) -> set[str]:
    with db.connect() as conn:
        return {row[0] for row in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'app%'")}


def functions() -> set[str]:
    return {f["FunctionName"] for f in boto3.client("lambda").list_functions()["Functions"]}


def roles() -> set[str]:
    return {r["RoleName"] for r in boto3.client("iam").list_roles()["Roles"]}


def run(world, recording, capsys) -> tuple[int, dict[str, Any]]:
    code = teardown_preview.main(["--pr", str(PR)], recording=lambda pr, config: recording, services=Services(world["env"]), env=world["env"])
    captured = capsys.readouterr()
    world["stderr"] = captured.err
    return code, json.loads(captured.out.strip().splitlines()[-1])


@on_the_services
def test_everything_of_the_pr_goes_and_nothing_else(world, recording, calls, capsys):
    stub, db = world["cloudflare"], world["db"]
    code, summary = run(world, recording, capsys)
    assert code == 0, summary
    assert summary["failed"] == [] and len(summary["removed"]) == 6 and summary["state_objects"] == len(STATE_KEYS)

    # Gone, read back from each service.
    assert {b for b in (d.branch for d in stub.deployments.values())} == {"pr-70", "main"}
    assert [r["name"] for r in stub.dns_records()] == ["pr-70.app.example.com", "app.example.com"]
    assert sorted(stub.domains["webstack-site"]) == ["app.example.com", "pr-70.app.example.com"]
    assert functions() == {"webstack-api-preview-pr-70"}
    assert roles() == {"webstack-api-preview-pr-70-exec"}
    assert schemas(db) == {"app_preview_pr_70", "app_preview"}
    assert stored_keys() == {*state_keys("preview-pr-70"), *state_keys("prod"), "pulumi/.pulumi/meta.yaml"}

    # Idempotent: a second run finds everything gone and succeeds.
    code, again = run(world, recording, capsys)
    assert code == 0 and again["removed"] == [] and len(again["already_gone"]) == 6 and again["state_objects"] == 0


@on_the_services
def test_every_aws_call_is_one_the_sweeper_role_allows_and_no_state_is_read(world, recording, calls, capsys):
    code, _ = run(world, recording, capsys)
    assert code == 0
    policy = aws_policies.sweeper_policy(SCOPE)
    requested = [request for made in calls.made for request in iam_requests(*made)]
    assert {action for action, _, _ in requested} >= {"s3:ListBucket", "s3:DeleteObject", "lambda:DeleteFunction", "iam:DeleteRole"}
    denied = [(a, r, c) for a, r, c in requested if not allowed(policy, a, r, c)]
    assert denied == []
    assert not [m for m in calls.made if m[0] == "s3" and m[1] in ("GetObject", "HeadObject", "GetObjectVersion")]


def test_the_evaluator_refuses_what_the_sweeper_role_does_not_grant():
    # The evaluator the test above relies on can refuse: each of these is outside the sweeper role.
    policy = aws_policies.sweeper_policy(SCOPE)
    assert not allowed(policy, "s3:ListBucket", SCOPE.state_bucket_arn, {"s3:prefix": "pulumi/.pulumi/stacks/"})
    assert not allowed(policy, "s3:DeleteObject", f"{SCOPE.state_bucket_arn}/pulumi/.pulumi/stacks/webstack/prod.json", {})
    assert not allowed(policy, "lambda:DeleteFunction", f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:webstack-api-prod", {})
    assert not allowed(
        policy, "iam:DetachRolePolicy", f"arn:aws:iam::{ACCOUNT_ID}:role/webstack-api-preview-pr-7-exec",
        {"iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess"},
    )  # fmt: skip


@on_the_services
def test_what_fails_is_named_and_the_state_is_kept_for_the_next_run(world, recording, capsys):
    from sandbox.http_server import Reply

    stub = world["cloudflare"]
    # Cloudflare keeps failing on the record listing: everything else still goes.
    stub.fault("GET", r"/dns_records", *[Reply(503, json={"success": False, "errors": [{"code": 10001, "message": "down"}]})] * 20)
    code, summary = run(world, recording, capsys)
    assert code == 1
    [failure] = summary["failed"]
    assert failure.startswith(f"dns-record {HOST}") and "503" in failure and "\n" not in failure
    assert summary["state_objects"] is None and set(state_keys(STACK)) <= stored_keys()
    assert "webstack-api-preview-pr-7" not in functions() and "app_preview_pr_7" not in schemas(world["db"])
    assert f"teardown_preview: {STACK}: dns-record {HOST}" in world["stderr"]


# --- IAM evaluation of the recorded calls ----------------------------------------------------------------


def iam_requests(service: str, operation: str, params: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(action, resource ARN, condition context) of one API call, as IAM authorizes it."""
    if service == "s3":
        bucket = f"arn:aws:s3:::{params['Bucket']}"
        if operation == "ListObjectsV2":
            return [("s3:ListBucket", bucket, {"s3:prefix": params.get("Prefix", "")})]
        if operation == "DeleteObjects":
            return [("s3:DeleteObject", f"{bucket}/{o['Key']}", {}) for o in params["Delete"]["Objects"]]
        return [(f"s3:{operation}", f"{bucket}/{params.get('Key', '')}", {})]
    if service == "lambda":
        return [(f"lambda:{operation}", f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{params['FunctionName']}", {})]
    if service == "iam":
        context = {"iam:PolicyARN": params["PolicyArn"]} if "PolicyArn" in params else {}
        return [(f"iam:{operation}", f"arn:aws:iam::{ACCOUNT_ID}:role/{params['RoleName']}", context)]
    raise AssertionError(f"an AWS call the test cannot evaluate: {service} {operation}")


def condition_holds(condition: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, keys in condition.items():
        for key, wanted in keys.items():
            values = [wanted] if isinstance(wanted, str) else list(wanted)
            if key not in context:
                return False
            if operator == "StringLike" and not any(arn_matches(v, context[key]) for v in values):
                return False
            if operator in ("StringEquals", "ArnEquals") and context[key] not in values:
                return False
            if operator not in ("StringLike", "StringEquals", "ArnEquals"):
                raise AssertionError(f"condition operator {operator} is not evaluated here")
    return True


def allowed(policy: dict, action: str, resource: str, context: dict[str, str]) -> bool:
    for statement in policy["Statement"]:
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
        if statement["Effect"] != "Allow" or action not in actions:
            continue
        if any(arn_matches(r, resource) for r in resources) and condition_holds(statement.get("Condition") or {}, context):
            return True
    return False
