"""The CrossGuard pack (policy/): silent on the program's real resources, and every rule fires on a
deliberately broken copy of one of them, through the pure rules and through the pack's gRPC service.

Validator inputs are built from the recorder: type token, inputs (already the provider's camelCase
properties, secrets unwrapped as CrossGuard hands them to policies), URN, `protect`, and, for the
stack rule, the property dependencies the engine also reports. Where the mocks differ from the
engine, the inputs are translated to what the engine sends: an S3 sub-resource's `bucket` is the
bucket's id, which for S3 is its name (the mocks fabricate `<resource name>-id`).

The pack config is what the workflows pass (`python -m policy.pack_config` for the stack, with the
repository `org/repo` of the committed stack files).
"""

from __future__ import annotations

import copy
import os
import json
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pulumi_policy
import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from components import aws_policies
from core import stateful
from policy import pack_config, rules
from policy.rules import PackConfig, Resource, check_resource, check_stack
from tests.conftest import FIXTURE_APP, SECRET_SENTINEL
from tools.offline import committed_values
from tests.support.analyzer import running_pack

PROJECT_ROOT = Path(__file__).resolve().parents[1]

STACKS = ["prod", "preview", "preview-pr-7"]
REPOSITORY = "org/repo"  # githubRepository in the committed stack files
BUCKET_TYPES = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")


# The GitHub environments deploy.yml names for prod's pack (tests/test_workflows.py holds the workflow
# to Pulumi.prod.yaml's githubProdEnvironment, githubPreviewEnvironment and githubSweeperEnvironment).
PROD_ENVIRONMENTS = {
    "prod_environments": ["production"],
    "preview_environments": ["preview"],
    "sweeper_environments": ["preview-sweeper"],
}


def config_document(stack: str, **overrides) -> dict:
    """The `--policy-pack-config` document the workflows write for `stack`."""
    # The stack's settings as tests.conftest.record gives them to the program.
    values = {**committed_values(stack), "appDir": FIXTURE_APP}
    document = pack_config.pack_config(stack, REPOSITORY, values=values, **(PROD_ENVIRONMENTS if stack == "prod" else {}))
    for key, value in overrides.items():
        policy = "function-url-intended" if key == "siteOrigin" else "deploy-role-subjects"
        document[policy][key] = value
    return document


def pack_config_for(stack: str, **overrides) -> PackConfig:
    """The same config as the pure rules see it: every policy's properties in one PackConfig."""
    merged = {}
    for properties in config_document(stack, **overrides).values():
        merged.update(properties)
    return PackConfig.of(merged)


def _bucket_names(recording) -> dict[str, str]:
    """Mock id of each recorded bucket -> the bucket's name (its id under the real engine)."""
    return {f"{r.name}-id": r.inputs["bucket"] for r in recording.resources.values() if r.type in BUCKET_TYPES}


def as_resource(recording, recorded_resource, **changes) -> Resource:
    props = copy.deepcopy(recorded_resource.inputs)
    if isinstance(props.get("bucket"), str):
        props["bucket"] = _bucket_names(recording).get(props["bucket"], props["bucket"])
    resource = Resource(
        type=recorded_resource.type,
        props=props,
        urn=recorded_resource.urn,
        name=recorded_resource.name,
        protect=recorded_resource.protect,
        property_dependencies={k: sorted(v) for k, v in recorded_resource.property_dependencies.items()},
    )
    return Resource(**{**resource.__dict__, **changes})


def stack_resources(recording) -> list[Resource]:
    return [as_resource(recording, r) for r in recording.resources.values()]


def broken(recording, name: str, mutate=None, **changes) -> Resource:
    """A copy of the recorded resource `name`, its props changed by `mutate(props)`."""
    resource = as_resource(recording, recording.by_name(name), **changes)
    if mutate is not None:
        mutate(resource.props)
    return resource


def fired(resource: Resource, config: PackConfig | None = None) -> set[str]:
    return set(check_resource(resource, config or pack_config_for(resource.stack or "prod")))


@pytest.fixture(scope="module")
def pack():
    """The pack as a running analyzer; `pack.fired(resource)` mirrors `fired(resource)` over gRPC."""
    with running_pack() as analyzer:

        class Pack:
            def diagnostics(self, resource: Resource, document: dict | None = None):
                analyzer.configure(document if document is not None else config_document(resource.stack or "prod"))
                return analyzer.analyze(resource)

            def fired(self, resource: Resource, document: dict | None = None) -> set[str]:
                return {d.policy for d in self.diagnostics(resource, document)}

            def stack(self, resources: list[Resource], document: dict) -> list:
                analyzer.configure(document)
                return [d for r in resources for d in analyzer.analyze(r)] + analyzer.analyze_stack(resources)

        yield Pack()


# --- the program's own stacks pass ----------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_the_program_violates_no_rule(recorded, stack):
    assert check_stack(stack_resources(recorded(stack)), pack_config_for(stack)) == {}


@pytest.mark.parametrize("stack", STACKS)
def test_the_running_pack_passes_the_program(recorded, pack, stack):
    diagnostics = pack.stack(stack_resources(recorded(stack)), config_document(stack))
    assert [(d.policy, d.urn, d.message) for d in diagnostics] == []


@pytest.mark.parametrize("stack", STACKS)
def test_the_workflows_config_names_the_stacks_own_site(recorded, stack):
    """`policy.pack_config` derives the site from the stack's settings as the program does."""
    [url] = recorded(stack).of_type("aws:lambda/functionUrl:FunctionUrl")
    assert config_document(stack)["function-url-intended"] == {"siteOrigin": url.inputs["cors"]["allowOrigins"][0]}


def test_pack_config_command(tmp_path, capsys):
    out = tmp_path / "config.json"
    assert pack_config.main(["--stack", "preview-pr-7", "--repository", "org/repo", "--output", str(out)]) == 0
    assert json.loads(out.read_text()) == {
        "deploy-role-subjects": {"repository": "org/repo"},
        "function-url-intended": {"siteOrigin": "https://pr-7.app.example.com"},
        "role-shapes": {"accountId": "123456789012"},
        "resource-policy-principals": {"accountId": "123456789012"},
    }
    assert pack_config.main(["--stack", "prod", "--repository", "not-a-repository"]) == 2
    assert pack_config.main(["--stack", "preview-pr-x", "--repository", "org/repo"]) == 2
    assert "preview-pr-x" in capsys.readouterr().err


def test_a_configured_prod_environment_is_allowed_once_the_pack_knows_it(recorded):
    from tests.conftest import record

    prod = record("prod", githubProdEnvironment="release")
    role = as_resource(prod, prod.by_name("github-prod-role"))
    assert fired(role) == {"deploy-role-subjects"}  # unknown to the pack: refused
    assert fired(role, pack_config_for("prod", prodEnvironments=["release"])) == set()


def test_a_preview_environment_is_allowed_once_the_pack_knows_it():
    from tests.conftest import record

    prod = record("prod", githubPreviewEnvironment="pr-previews")
    for name in ("github-preview-role", "github-cleanup-role"):
        role = as_resource(prod, prod.by_name(name))
        assert fired(role) == {"deploy-role-subjects"}
        assert fired(role, pack_config_for("prod", previewEnvironments=["pr-previews"])) == set()
    assert pack_config.pack_config("prod", REPOSITORY, preview_environments=["a", "b"])["deploy-role-subjects"][
        "previewEnvironments"
    ] == ["a", "b"]


def test_the_sweeper_role_trusts_its_own_environment_only():
    from tests.conftest import record

    prod = record("prod", githubSweeperEnvironment="nightly-sweep")
    role = as_resource(prod, prod.by_name("github-sweeper-role"))
    assert fired(role) == {"deploy-role-subjects"}  # the default names preview-sweeper only
    assert fired(role, pack_config_for("prod", sweeperEnvironments=["nightly-sweep"])) == set()
    # Not the preview environment, not pull requests, never main: a scheduled job's own subject.
    for subject in ("environment:preview", "pull_request", "ref:refs/heads/main"):
        broken_role = broken(prod, "github-sweeper-role", _subjects(f"repo:org/repo:{subject}"))
        assert fired(broken_role, pack_config_for("prod", sweeperEnvironments=["nightly-sweep"])) == {"deploy-role-subjects"}, subject


# --- one deliberately broken resource per rule ----------------------------------------------------


def test_public_access_block_with_a_flag_off(recorded):
    resource = broken(
        recorded("prod"), "state-storage-public-access-block", lambda p: p.update(restrictPublicBuckets=False)
    )
    assert fired(resource) == {"s3-public-access-blocked"}


def test_suspended_versioning(recorded):
    resource = broken(
        recorded("prod"), "state-storage-versioning", lambda p: p["versioningConfiguration"].update(status="Suspended")
    )
    assert fired(resource) == {"s3-versioning-enabled"}


def test_sse_s3_instead_of_kms(recorded):
    def aes(props):
        default = props["rules"][0]["applyServerSideEncryptionByDefault"]
        default["sseAlgorithm"] = "AES256"
        default.pop("kmsMasterKeyId")

    assert fired(broken(recorded("prod"), "audit-storage-encryption", aes)) == {"s3-kms-encrypted"}


def test_bucket_policy_without_the_tls_deny(recorded):
    def drop_deny(props):
        document = json.loads(props["policy"])
        document["Statement"] = [s for s in document["Statement"] if s["Effect"] != "Deny"]
        props["policy"] = json.dumps(document)

    assert fired(broken(recorded("prod"), "audit-storage-policy", drop_deny)) == {"s3-tls-only"}


def test_a_bucket_without_its_versioning_resource(recorded):
    resources = [r for r in stack_resources(recorded("prod")) if r.name != "state-storage-versioning"]
    found = check_stack(resources, pack_config_for("prod"))
    assert set(found) == {"s3-buckets-guarded"}
    [(urn, message)] = found["s3-buckets-guarded"]
    assert urn == recorded("prod").by_name("state-storage-bucket").urn and "versioning" in message


def test_bucket_guards_match_real_bucket_names_too(recorded):
    """Real CrossGuard outputs name the bucket in `bucket`; no dependency edges needed then."""
    resources = [Resource(**{**r.__dict__, "property_dependencies": {}}) for r in stack_resources(recorded("prod"))]
    assert rules.s3_buckets_guarded(resources) == []
    without_policy = [r for r in resources if r.name != "audit-storage-policy"]
    assert [m for _, m in rules.s3_buckets_guarded(without_policy)] == [
        "bucket audit-storage-bucket has no a TLS-only bucket policy"
    ]


def test_a_key_that_does_not_rotate(recorded):
    assert fired(broken(recorded("prod"), "state-key", lambda p: p.update(enableKeyRotation=False))) == {
        "kms-key-rotation"
    }


def test_lock_table_without_pitr(recorded):
    resource = broken(recorded("prod"), "state-locks", lambda p: p.update(pointInTimeRecovery={"enabled": False}))
    assert fired(resource) == {"dynamodb-pitr-and-sse"}


def test_single_region_trail(recorded):
    assert fired(broken(recorded("prod"), "audit-trail", lambda p: p.update(isMultiRegionTrail=False))) == {
        "cloudtrail-secure"
    }


def _trust(props) -> dict:
    return json.loads(props["assumeRolePolicy"])


def _set_trust(props, document) -> None:
    props["assumeRolePolicy"] = json.dumps(document)


def test_oidc_trust_without_the_audience(recorded):
    def drop_audience(props):
        document = _trust(props)
        del document["Statement"][0]["Condition"]["StringEquals"][f"{rules.GITHUB_OIDC_HOST}:aud"]
        _set_trust(props, document)

    assert fired(broken(recorded("prod"), "github-prod-role", drop_audience)) == {"oidc-trust-pinned"}


def test_oidc_trust_with_a_wildcard_subject(recorded):
    def like(props):
        document = _trust(props)
        condition = document["Statement"][0]["Condition"]
        condition["StringLike"] = {f"{rules.GITHUB_OIDC_HOST}:sub": "repo:org/repo:pull_request*"}
        _set_trust(props, document)

    assert "oidc-trust-pinned" in fired(broken(recorded("prod"), "github-preview-role", like))


def test_preview_role_trusting_main(recorded):
    def trust_main(props):
        document = _trust(props)
        document["Statement"][0]["Condition"]["StringEquals"][f"{rules.GITHUB_OIDC_HOST}:sub"].append(
            "repo:org/repo:ref:refs/heads/main"
        )
        _set_trust(props, document)

    assert fired(broken(recorded("prod"), "github-preview-role", trust_main)) == {"deploy-role-subjects"}


def test_prod_role_trusting_pull_requests(recorded):
    def trust_prs(props):
        document = _trust(props)
        document["Statement"][0]["Condition"]["StringEquals"][f"{rules.GITHUB_OIDC_HOST}:sub"] = [
            "repo:org/repo:pull_request"
        ]
        _set_trust(props, document)

    assert fired(broken(recorded("prod"), "github-prod-role", trust_prs)) == {"deploy-role-subjects"}


def _add_statement(statement):
    def mutate(props):
        document = json.loads(props["policy"])
        document["Statement"].append(statement)
        props["policy"] = json.dumps(document)

    return mutate


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::webstack-pulumi-state-123456789012"},
        {"Effect": "Allow", "Action": "lambda:CreateFunction", "Resource": "*"},
        {"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::x"},
    ],
    ids=["wildcard-action", "wildcard-resource", "not-action"],
)
def test_identity_policy_wildcards(recorded, statement):
    assert fired(broken(recorded("prod"), "github-preview-policy", _add_statement(statement))) == {"iam-no-wildcards"}


PROD_FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:webstack-api-prod"


@pytest.mark.parametrize(
    ("policy", "resource"),
    [
        ("github-preview-policy", "arn:aws:lambda:us-east-1:123456789012:function:webstack-api-preview-pr-*:*"),
        ("github-prod-policy", PROD_FUNCTION_ARN),
        ("github-prod-policy", "arn:aws:lambda:us-east-1:123456789012:function:webstack-api-*:*"),
    ],
    ids=["preview-role-invokes-previews", "unqualified", "wildcard-name"],
)
def test_invoke_beyond_prods_versions(recorded, policy, resource):
    statement = {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": resource}
    assert fired(broken(recorded("prod"), policy, _add_statement(statement))) == {"lambda-invoke-scoped"}


def test_key_policy_kms_star_for_anyone_but_the_account_root(recorded):
    statement = {"Effect": "Allow", "Principal": {"Service": "logs.amazonaws.com"}, "Action": "kms:*", "Resource": "*"}
    assert fired(broken(recorded("prod"), "audit-key", _add_statement(statement))) == {"iam-no-wildcards", "resource-policy-principals"}


def _drop_statements(sid: str):
    def mutate(props):
        document = json.loads(props["policy"])
        document["Statement"] = [s for s in document["Statement"] if s.get("Sid") != sid]
        props["policy"] = json.dumps(document)

    return mutate


@pytest.mark.parametrize(
    ("key", "sid"),
    [
        ("state-key", "NoPullRequestRoleOfAnotherTrustBoundary"),
        ("state-preview-key", "NoUseByProdsRole"),
        ("state-lease-key", "OnlyThroughItsService"),
        ("artifacts-key", "OnlyThroughItsService"),
        ("artifacts-key", "NoPullRequestRoleOfAnotherTrustBoundary"),
        ("audit-key", "NoPullRequestRoleOfAnotherTrustBoundary"),
    ],
)
def test_a_key_policy_that_lets_a_role_across_its_trust_boundary(recorded, key, sid):
    assert fired(broken(recorded("prod"), key, _drop_statements(sid))) == {"kms-key-boundary"}


def test_a_key_that_names_no_trust_boundary(recorded):
    assert fired(broken(recorded("prod"), "state-key", lambda p: p.update(tags={}))) == {"kms-key-boundary"}


def _with_key_arns(recording) -> list[Resource]:
    """The stack as CrossGuard sees it after an `up`: the keys with their ARNs (outputs)."""
    resources = stack_resources(recording)
    for resource in resources:
        if resource.type == "aws:kms/key:Key":
            resource.props["arn"] = recording.by_name(resource.name).outputs["arn"]
    return resources


def test_a_role_policy_that_uses_the_other_sides_state_key(recorded):
    prod = recorded("prod")
    assert rules.kms_use_within_boundary(_with_key_arns(prod)) == []
    prod_key = prod.by_name("state-key").outputs["arn"]
    resources = _with_key_arns(prod)
    [policy] = [r for r in resources if r.name == "github-preview-policy"]
    _add_statement({"Sid": "Widened", "Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": prod_key})(policy.props)
    assert [m for _, m in rules.kms_use_within_boundary(resources)] == [
        f"statement Widened: the preview role may not use the prod key {prod_key}"
    ]
    _drop_statements("NoKeyOfAnotherTrustBoundary")(policy.props)
    assert [m for _, m in rules.kms_use_within_boundary(resources)][1:] == [
        f"the preview role's policy must deny the use of the prod key {prod_key} (its other side of the trust boundary)"
    ]


def test_a_role_policy_that_uses_the_artifacts_key_directly(recorded):
    """The artifacts key serves prod and the previews through S3 only: a direct use would let a
    preview decrypt any artifacts object it got hold of, prod's bundle included."""
    resources = _with_key_arns(recorded("prod"))
    [policy] = [r for r in resources if r.name == "github-preview-policy"]

    def direct(props):
        document = json.loads(props["policy"])
        [statement] = [s for s in document["Statement"] if s.get("Sid") == "ArtifactsKeyThroughS3"]
        statement.pop("Condition")
        props["policy"] = json.dumps(document)

    direct(policy.props)
    assert [m for _, m in rules.kms_use_within_boundary(resources)] == [
        "statement ArtifactsKeyThroughS3: the preview role may use the artifacts key only through s3"
    ]


def test_a_teardown_role_that_uses_the_artifacts_key(recorded):
    prod = recorded("prod")
    key = prod.by_name("artifacts-key").outputs["arn"]
    resources = _with_key_arns(prod)
    [policy] = [r for r in resources if r.name == "github-sweeper-policy"]
    _drop_statements("NoKeyOfAnotherTrustBoundary")(policy.props)
    assert f"the sweeper role's policy must deny the use of the artifacts key {key} (its other side of the trust boundary)" in [
        m for _, m in rules.kms_use_within_boundary(resources)
    ]


def test_bucket_policy_granting_everyone(recorded):
    statement = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}
    assert fired(broken(recorded("prod"), "state-storage-policy", _add_statement(statement))) == {
        "iam-no-wildcards", "resource-policy-principals"}


def test_prod_function_url_on_latest(recorded):
    resource = broken(recorded("prod"), "api-url", lambda p: p.pop("qualifier"))
    assert fired(resource) == {"function-url-intended"}


def test_function_url_open_to_every_origin(recorded):
    resource = broken(recorded("preview-pr-7"), "api-url", lambda p: p["cors"].update(allowOrigins=["*"]))
    assert fired(resource) == {"function-url-intended"}


@pytest.mark.parametrize("stack", ["prod", "preview-pr-7"])
@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.pop("reservedConcurrentExecutions"),
        lambda p: p.update(reservedConcurrentExecutions=-1),
        lambda p: p.update(reservedConcurrentExecutions=0),
        lambda p: p["environment"]["variables"].pop("DB_POOL_SIZE"),
        lambda p: p["environment"]["variables"].update(DB_POOL_SIZE="0"),
    ],
    ids=["unset", "unreserved", "throttled", "no-pool-size", "zero-pool-size"],
)
def test_unbounded_function_concurrency(recorded, stack, change):
    assert fired(broken(recorded(stack), "api-function")) == set()
    assert fired(broken(recorded(stack), "api-function", change)) == {"lambda-concurrency-bounded"}


@pytest.mark.parametrize("stack", ["prod", "preview-pr-7"])
@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.update(code={"dist/index.js": "exports.handler = 1"}),
        lambda p: p.update(filename="dist.zip"),
        lambda p: p.pop("s3ObjectVersion"),
        lambda p: p.update(imageUri="1234.dkr.ecr.us-east-1.amazonaws.com/api:latest"),
    ],
    ids=["local-archive", "local-file", "unpinned-object", "image-by-tag"],
)
def test_function_code_that_a_later_runner_could_not_read(recorded, stack, change):
    """The rule behind the artifacts bucket: no deploy needs a file the build's runner had."""
    assert fired(broken(recorded(stack), "api-function")) == set()
    assert fired(broken(recorded(stack), "api-function", change)) == {"lambda-code-pinned"}


@pytest.mark.parametrize(
    "resource",
    [
        "arn:aws:s3:::webstack-artifacts-123456789012/*",
        "arn:aws:s3:::webstack-artifacts-123456789012/*/api/*",
        "arn:aws:s3:::webstack-artifacts-123456789012/",
    ],
    ids=["whole-bucket", "wildcard-prefix", "empty-key"],
)
def test_object_writes_on_a_whole_bucket(recorded, resource):
    statement = {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": resource}
    # A grant that reaches prod's prefix is also outside the preview role's reach (preview-role-reach).
    rules = fired(broken(recorded("prod"), "github-preview-policy", _add_statement(statement)))
    assert "s3-object-writes-scoped" in rules and rules <= {"s3-object-writes-scoped", "preview-role-reach"}, rules
    reads = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": resource}
    assert "s3-object-writes-scoped" not in fired(broken(recorded("prod"), "github-preview-policy", _add_statement(reads)))


def test_public_invoke_not_through_the_url(recorded):
    resource = broken(recorded("prod"), "api-url-invoke-function", lambda p: p.pop("invokedViaFunctionUrl"))
    assert fired(resource) == {"function-url-intended"}


@pytest.mark.parametrize(
    "name", ["state-locks", "audit-log-group", "database-schema", "state-key-alias"]
)
def test_unprotected_stateful_resources(recorded, name):
    assert fired(broken(recorded("prod"), name, protect=False)) == {"stateful-protected"}


def test_a_pr_schema_need_not_be_protected(recorded):
    pr = recorded("preview-pr-7")
    assert not pr.by_name("database-schema").protect
    assert fired(as_resource(pr, pr.by_name("database-schema"))) == set()


def test_database_url_in_a_command_environment(recorded):
    resource = broken(
        recorded("prod"), "database-migrate", lambda p: p["environment"].update(DATABASE_URL=SECRET_SENTINEL)
    )
    assert fired(resource) == {"no-plaintext-secrets"}


@pytest.mark.parametrize(
    ("where", "mutate"),
    [
        ("tag value", lambda p: p.update(tags={**p["tags"], "owner": SECRET_SENTINEL})),
        ("tag key", lambda p: p.update(tags={**p["tags"], "api-token": "abc123"})),
        ("command text", lambda p: p.update(create=p["create"] + " --github ghp_" + "a" * 36)),
    ],
)
def test_secrets_in_tags_and_command_text(recorded, where, mutate):
    name = "state-key" if "tag" in where else "database-migrate"
    assert fired(broken(recorded("prod"), name, mutate)) == {"no-plaintext-secrets"}, where


def test_the_lambda_environment_may_carry_the_database_url_as_a_secret(recorded):
    prod = recorded("prod")
    function = prod.by_name("api-function")
    assert "environment" in function.secret_inputs
    assert function.inputs["environment"]["variables"]["DATABASE_URL"] == SECRET_SENTINEL
    assert fired(as_resource(prod, function)) == set()


# --- what the pack used to let through (each case: pure rules and the running pack) --------------

GH = rules.GITHUB_OIDC_HOST
ACCOUNT = "123456789012"
OTHER_BUCKET = "someone-elses-bucket"
RANDOM_TOKEN = "tQ7vX2mR9kLp4Wz8Nc3Hs6Bd1Fg5Yj0Ae"  # a made-up token of a real token's shape  # nosec B105


PREVIEW_FUNCTIONS = "arn:aws:lambda:us-east-1:123456789012:function:webstack-api-preview-pr-*"
PREVIEW_STATE = "arn:aws:s3:::webstack-pulumi-state-123456789012/pulumi/.pulumi/stacks/webstack/preview-pr-*.json*"
A_KEY = "arn:aws:kms:us-east-1:123456789012:key/0123abcd"


@pytest.mark.parametrize(
    ("policy", "action", "resource", "expected"),
    [
        ("github-sweeper-policy", "lambda:CreateFunction", PREVIEW_FUNCTIONS, "makes or changes"),
        ("github-sweeper-policy", "lambda:UpdateFunctionCode", PREVIEW_FUNCTIONS, "makes or changes"),
        ("github-sweeper-policy", "iam:PassRole", "arn:aws:iam::123456789012:role/webstack-api-preview-pr-*-exec", "makes or changes"),
        ("github-sweeper-policy", "s3:PutObject", PREVIEW_STATE, "makes or changes"),
        ("github-sweeper-policy", "s3:GetObject", PREVIEW_STATE, "never reads a state"),
        ("github-sweeper-policy", "kms:Decrypt", A_KEY, "through DynamoDB"),
        ("github-cleanup-policy", "lambda:UpdateFunctionConfiguration", PREVIEW_FUNCTIONS, "makes or changes"),
        ("github-cleanup-policy", "iam:AttachRolePolicy", "arn:aws:iam::123456789012:role/webstack-api-preview-pr-*-exec", "makes or changes"),
        ("github-cleanup-policy", "kms:CreateGrant", A_KEY, "for the previews' state"),
        ("github-cleanup-policy", "lambda:InvokeFunction", f"{PREVIEW_FUNCTIONS}:1", "makes or changes"),
    ],
)
def test_a_teardown_role_that_may_make_or_change_something(recorded, policy, action, resource, expected):
    statement = {"Sid": "Broken", "Effect": "Allow", "Action": action, "Resource": resource}
    resource_copy = broken(recorded("prod"), policy, _add_statement(statement))
    assert "teardown-roles-remove-only" in fired(resource_copy)
    [message] = check_resource(resource_copy, pack_config_for("prod"))["teardown-roles-remove-only"]
    assert action in message and expected in message


def test_the_sweepers_key_use_is_only_through_dynamodb(recorded):
    def loosen(props):
        document = json.loads(props["policy"])
        for statement in document["Statement"]:
            if statement.get("Sid") == "LeaseTableKeyThroughDynamoDB":
                statement.pop("Condition")
        props["policy"] = json.dumps(document)

    assert fired(broken(recorded("prod"), "github-sweeper-policy")) == set()
    assert fired(broken(recorded("prod"), "github-sweeper-policy", loosen)) == {"teardown-roles-remove-only"}


def test_no_policy_is_attached_to_a_teardown_role():
    for role in ("webstack-deploy-sweeper", "webstack-deploy-cleanup"):
        attachment = Resource(
            type="aws:iam/rolePolicyAttachment:RolePolicyAttachment",
            props={"role": role, "policyArn": aws_policies.BASIC_EXECUTION_POLICY},
            urn=f"urn:pulumi:prod::webstack::aws:iam/rolePolicyAttachment:RolePolicyAttachment::{role}-extra",
            name=f"{role}-extra",
        )
        assert fired(attachment) == {"attached-policies", "teardown-roles-remove-only"}


def _trust_statement(statement: dict):
    def mutate(props):
        document = _trust(props)
        document["Statement"].append(statement)
        _set_trust(props, document)

    return mutate


def _subjects(*subjects: str):
    def mutate(props):
        document = _trust(props)
        document["Statement"][0]["Condition"]["StringEquals"][f"{GH}:sub"] = list(subjects)
        _set_trust(props, document)

    return mutate


def _deny_for(bucket: str):
    def mutate(props):
        document = json.loads(props["policy"])
        for statement in document["Statement"]:
            if statement["Effect"] == "Deny":
                statement["Resource"] = [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
        props["policy"] = json.dumps(document)

    return mutate


def _key_policy(statement: dict) -> Resource:
    """An `aws:kms/keyPolicy:KeyPolicy` on the audit key, built directly (the program has none)."""
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "AccountAdministers", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
             "Action": "kms:*", "Resource": "*"},
            statement,
        ],
    }
    return Resource(
        type="aws:kms/keyPolicy:KeyPolicy",
        props={"keyId": "1234abcd", "policy": json.dumps(document)},
        urn="urn:pulumi:prod::webstack::webstack:index:AuditTrail$aws:kms/keyPolicy:KeyPolicy::audit-key-policy",
        name="audit-key-policy",
    )


def _lease_statement(change):
    """Change the deploy role's StackLease statement (its DynamoDB item grant) with `change(statement)`."""
    def mutate(props):
        document = json.loads(props["policy"])
        [lease] = [s for s in document["Statement"] if s.get("Sid") == "StackLease"]
        change(lease)
        props["policy"] = json.dumps(document)

    return mutate


def _command(name: str, *, parent: str = "webstack:index:Phase", protect: bool = False, **props) -> Resource:
    """A local Command built directly, under `parent` (URN parent types) in prod."""
    return Resource(
        type="command:local:Command",
        props={"dir": ".", **props},
        urn=f"urn:pulumi:prod::webstack::{parent}$command:local:Command::{name}",
        name=name,
        protect=protect,
    )


# (id, stack, build(recorded) -> Resource, expected rules, config overrides)
CASES = [
    # Trust policies.
    pytest.param("prod", lambda rec: broken(rec("prod"), "api-role-role", _trust_statement(
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"})), {"iam-trust-restricted", "role-shapes"}, {},
        id="trust-aws-star"),
    pytest.param("prod", lambda rec: broken(rec("prod"), "github-prod-role", _trust_statement(
        {"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"})), {"iam-trust-restricted", "role-shapes"}, {},
        id="trust-string-principal"),
    pytest.param("prod", lambda rec: broken(rec("prod"), "audit-logs-role", _trust_statement(
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::*:root"}, "Action": "sts:AssumeRole"})),
        {"iam-trust-restricted", "role-shapes"}, {}, id="trust-wildcard-account"),
    pytest.param("prod", lambda rec: broken(rec("prod"), "api-role-role", _trust_statement(
        {"Effect": "Allow", "NotPrincipal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"})),
        {"iam-trust-restricted", "role-shapes"}, {}, id="trust-not-principal"),
    pytest.param("prod", lambda rec: broken(rec("prod"), "api-role-role", _trust_statement(
        {"Effect": "Allow", "Principal": {"Federated": "cognito-identity.amazonaws.com"},
         "Action": "sts:AssumeRoleWithWebIdentity"})), {"iam-trust-restricted", "role-shapes"}, {}, id="trust-other-federation"),
    pytest.param("prod", lambda rec: broken(rec("prod"), "api-role-role", lambda p: p.update(assumeRolePolicy="{")),
        {"iam-trust-restricted", "role-shapes"}, {}, id="trust-not-json"),
    # The OIDC subject's repository.
    pytest.param("prod", lambda rec: broken(rec("prod"), "github-prod-role", _subjects("repo:other/repo:ref:refs/heads/main")),
        {"deploy-role-subjects"}, {}, id="prod-trusts-another-repository"),
    pytest.param("prod", lambda rec: broken(rec("prod"), "github-preview-role", _subjects("repo:org/repo-fork:pull_request")),
        {"deploy-role-subjects"}, {}, id="preview-trusts-another-repository"),
    pytest.param("prod", lambda rec: broken(rec("prod"), "github-prod-role"),
        {"deploy-role-subjects"}, {"repository": ""}, id="no-repository-configured"),
    pytest.param("prod", lambda rec: broken(rec("prod"), "github-prod-role", _subjects("repo:org@2/repo@1:ref:refs/heads/main")),
        {"deploy-role-subjects"}, {"repositoryId": "9", "repositoryOwnerId": "2"}, id="immutable-subject-of-another-id"),
    pytest.param("prod", lambda rec: broken(rec("prod"), "github-prod-role", _subjects("repo:org@2/repo@1:ref:refs/heads/main")),
        set(), {"repositoryId": "1", "repositoryOwnerId": "2"}, id="immutable-subject-of-this-repository"),
    # Managed policies.
    pytest.param("prod", lambda rec: broken(rec("prod"), "api-role-logs",
        lambda p: p.update(policyArn="arn:aws:iam::aws:policy/AdministratorAccess")), {"attached-policies", "iam-managed-policies"}, {},
        id="attachment-administrator-access"),
    pytest.param("prod", lambda rec: broken(rec("prod"), "api-role-logs",
        lambda p: p.update(policyArn="arn:aws:iam::aws:policy/AmazonS3FullAccess")), {"attached-policies", "iam-managed-policies"}, {},
        id="attachment-full-access"),
    pytest.param("prod", lambda rec: broken(rec("prod"), "github-prod-role",
        lambda p: p.update(managedPolicyArns=["arn:aws:iam::aws:policy/AdministratorAccess"])), {"iam-managed-policies", "role-shapes"},
        {}, id="role-managed-policy-arns"),
    # Partial wildcards.
    *[
        # A wildcard in a preview-side ARN is also one across the trust boundary (preview-role-reach).
        pytest.param("prod", lambda rec, s=statement: broken(rec("prod"), "github-preview-policy", _add_statement(s)),
            {"iam-no-wildcards"} | ({"preview-role-reach"} if "*" in statement["Resource"] else set()), {}, id=case_id)
        for case_id, statement in [
            ("iam-pass-star", {"Effect": "Allow", "Action": "iam:Pass*", "Resource": f"arn:aws:iam::{ACCOUNT}:role/x"}),
            ("iam-put-star", {"Effect": "Allow", "Action": "iam:Put*", "Resource": f"arn:aws:iam::{ACCOUNT}:role/x"}),
            ("s3-get-star", {"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/k"}),
            ("resource-arn-star", {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:*"}),
            ("resource-every-role", {"Effect": "Allow", "Action": "iam:GetRole", "Resource": f"arn:aws:iam::{ACCOUNT}:role/*"}),
            ("resource-any-account", {"Effect": "Allow", "Action": "iam:GetRole", "Resource": "arn:aws:iam::*:role/x"}),
            ("resource-every-bucket", {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::*/k"}),
        ]
    ],
    # KMS key policies.
    pytest.param("prod", lambda rec: _key_policy(
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*"}),
        {"declared-types", "iam-no-wildcards", "resource-policy-principals"}, {}, id="key-policy-resource-everyone"),
    pytest.param("prod", lambda rec: _key_policy(
        {"Effect": "Allow", "Principal": {"Service": "logs.amazonaws.com"}, "Action": "kms:*", "Resource": "*"}),
        {"declared-types", "iam-no-wildcards", "resource-policy-principals"}, {}, id="key-policy-resource-kms-star"),
    # TLS-only buckets: the deny must be for this bucket.
    pytest.param("prod", lambda rec: broken(rec("prod"), "state-storage-policy", _deny_for(OTHER_BUCKET)),
        {"s3-tls-only"}, {}, id="tls-deny-for-another-bucket"),
    # CORS: the stack's own site only.
    pytest.param("preview-pr-7", lambda rec: broken(rec("preview-pr-7"), "api-url",
        lambda p: p["cors"].update(allowOrigins=["https://evil.example.net"])), {"function-url-intended"}, {},
        id="cors-any-single-origin"),
    pytest.param("preview-pr-7", lambda rec: broken(rec("preview-pr-7"), "api-url",
        lambda p: p["cors"].update(allowOrigins=["https://app.example.com"])), {"function-url-intended"}, {},
        id="cors-another-stacks-site"),
    pytest.param("prod", lambda rec: broken(rec("prod"), "api-url"), {"function-url-intended"}, {"siteOrigin": ""},
        id="cors-no-site-configured"),
    # Plain http only on loopback (the local sandbox), and even then only the configured site.
    pytest.param("preview-pr-7", lambda rec: broken(rec("preview-pr-7"), "api-url",
        lambda p: p["cors"].update(allowOrigins=["http://pr-7.app.example.com"])), {"function-url-intended"},
        {"siteOrigin": "http://pr-7.app.example.com"}, id="cors-plain-http-off-this-machine"),
    # Bucket types.
    pytest.param("prod", lambda rec: Resource(type="aws:s3/bucketV2:BucketV2", props={"bucket": "webstack-extra"},
        urn="urn:pulumi:prod::webstack::aws:s3/bucketV2:BucketV2::extra", name="extra"),
        {"declared-types", "stateful-protected"}, {}, id="bucket-v2-unprotected"),
    pytest.param("prod", lambda rec: Resource(type="aws:s3/bucketVersioningV2:BucketVersioningV2",
        props={"bucket": "webstack-extra", "versioningConfiguration": {"status": "Suspended"}},
        urn="urn:pulumi:prod::webstack::aws:s3/bucketVersioningV2:BucketVersioningV2::extra", name="extra"),
        {"declared-types", "s3-versioning-enabled"}, {}, id="bucket-versioning-v2-suspended"),
    pytest.param("prod", lambda rec: Resource(type="aws:s3/bucketV2:BucketV2", protect=True, props={
        "bucket": "webstack-extra", "policy": json.dumps({"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::webstack-extra/*"}]})},
        urn="urn:pulumi:prod::webstack::aws:s3/bucketV2:BucketV2::extra", name="extra"),
        {"declared-types", "iam-no-wildcards", "resource-policy-principals"}, {}, id="bucket-v2-inline-public-policy"),
    # Secrets in Commands.
    pytest.param("prod", lambda rec: broken(rec("prod"), "database-migrate",
        lambda p: p.update(create=p["create"] + " --dsn 'host=db.example.com user=app password=hunter2-x'")),
        {"no-plaintext-secrets"}, {}, id="keyword-dsn"),
    pytest.param("prod", lambda rec: broken(rec("prod"), "site-deploy",
        lambda p: p["environment"].update(EXTRA_ARGS=RANDOM_TOKEN)), {"no-plaintext-secrets"}, {},
        id="random-token-under-a-neutral-name"),
    pytest.param("prod", lambda rec: broken(rec("prod"), "database-migrate",
        lambda p: p.update(interpreter=["/bin/sh", "-c", f"DB={SECRET_SENTINEL} exec \"$0\" \"$@\""])),
        {"no-plaintext-secrets"}, {}, id="dsn-in-interpreter"),
    # The prod schema Command, by structure.
    pytest.param("prod", lambda rec: broken(rec("prod"), "database-schema",
        lambda p: p.update(create=p["create"].replace("python ", "python3 ")), protect=False), {"stateful-protected"},
        {}, id="schema-command-spelled-python3"),
    pytest.param("prod", lambda rec: _command("anything", parent="webstack:index:Phase$webstack:index:Database",
        create="./run-something"), {"stateful-protected"}, {}, id="any-command-of-the-database-component"),
    pytest.param("prod", lambda rec: _command("schema-elsewhere", create="python3 -m steps.schema create --schema app"),
        {"stateful-protected"}, {}, id="schema-step-outside-the-component"),
    # Other stateful types, from core/stateful.py.
    pytest.param("prod", lambda rec: broken(rec("prod"), "state-key-alias", protect=False), {"stateful-protected"}, {},
        id="kms-alias-unprotected"),
    # DynamoDB items: a role's own lease keys only.
    pytest.param("prod", lambda rec: broken(rec("prod"), "github-preview-policy",
        _lease_statement(lambda st: st.pop("Condition"))), {"dynamodb-items-by-key"}, {}, id="lease-any-key"),
    pytest.param("prod", lambda rec: broken(rec("prod"), "github-prod-policy",
        _lease_statement(lambda st: st["Condition"].pop("Null"))), {"dynamodb-items-by-key"}, {},
        id="lease-no-key-passes-vacuously"),
    pytest.param("prod", lambda rec: broken(rec("prod"), "github-preview-policy",
        _lease_statement(lambda st: st.update(Action=["dynamodb:Scan"], Condition={}))),
        {"dynamodb-items-by-key"}, {}, id="lease-scan-every-item"),
]


@pytest.mark.parametrize(("stack", "build", "expected", "overrides"), CASES)
def test_the_pure_rules_refuse(recorded, stack, build, expected, overrides):
    resource = build(recorded)
    assert fired(resource, pack_config_for(stack, **overrides)) == expected


@pytest.mark.parametrize(("stack", "build", "expected", "overrides"), CASES)
def test_the_running_pack_refuses(recorded, pack, stack, build, expected, overrides):
    resource = build(recorded)
    diagnostics = pack.diagnostics(resource, config_document(stack, **overrides))
    assert {d.policy for d in diagnostics} == expected, [d.message for d in diagnostics]
    for diagnostic in diagnostics:  # each message says what the rule is and what is wrong
        assert diagnostic.message.count("\n") >= 1, diagnostic.message


def test_a_tls_deny_for_another_bucket_leaves_the_bucket_unguarded(recorded, pack):
    prod = recorded("prod")
    resources = [
        broken(prod, r.name, _deny_for(OTHER_BUCKET)) if r.name == "state-storage-policy" else as_resource(prod, r)
        for r in prod.resources.values()
    ]
    bucket = prod.by_name("state-storage-bucket").urn
    assert (bucket, "bucket state-storage-bucket has no bucket policy that denies non-TLS access to "
            "webstack-pulumi-state-123456789012 itself") in check_stack(resources, pack_config_for("prod"))["s3-buckets-guarded"]
    stack_level = [d for d in pack.stack(resources, config_document("prod")) if d.policy == "s3-buckets-guarded"]
    assert [d.urn for d in stack_level] == [bucket]


def test_a_bucket_v2_needs_every_guard(recorded, pack):
    prod = recorded("prod")
    extra = Resource(type="aws:s3/bucketV2:BucketV2", props={"bucket": "webstack-extra"}, protect=True,
                     urn="urn:pulumi:prod::webstack::aws:s3/bucketV2:BucketV2::extra", name="extra")
    resources = [*stack_resources(prod), extra]
    assert check_stack(resources, pack_config_for("prod")) == {
        "declared-types": [(extra.urn, "the program declares no aws:s3/bucketV2:BucketV2: this pack allows only the "
                                       "types it declares (DECLARABLE_TYPES)")],
        "s3-buckets-guarded": [(extra.urn, "bucket extra has no versioning, no SSE-KMS, no a public access block, "
                                           "no a TLS-only bucket policy")],
    }
    # The engine reports a resource policy's violation without a URN (the analyzer's resource diagnostics).
    assert [(d.policy, d.urn) for d in pack.stack(resources, config_document("prod"))] == [
        ("declared-types", ""), ("s3-buckets-guarded", extra.urn)]


def test_the_recorded_commands_carry_no_random_token(recorded):
    """The entropy check does not mistake the program's own values (digests, URLs, ids) for tokens."""
    for stack in STACKS:
        for command in recorded(stack).of_type("command:local:Command"):
            assert rules._random_token(json.dumps(command.inputs)) == "", command.name


def test_a_variable_reference_is_not_a_password():
    for text in ('psql "host=db password=$PGPASS"', "--password=${DB_PASSWORD}", "password= ", "keep passwords out"):
        assert rules._value_findings("Command create", text) == [], text
    assert rules._value_findings("Command create", "PGPASSWORD=s3cr3t psql") != []


def test_the_pack_reads_the_one_list_of_stateful_types():
    assert rules.STATEFUL_TYPES == stateful.STATEFUL_TYPES
    assert rules.DATABASE_COMPONENT == stateful.DATABASE_COMPONENT
    source = Path(rules.__file__).read_text()
    assert not re.search(r"^\s*(from|import) components\b", source, re.MULTILINE)  # loaded by path
    assert '"aws:kms/alias:Alias"' not in source and '"aws:cloudwatch/logGroup:LogGroup"' not in source


# --- bad input: a violation, never a traceback ----------------------------------------------------

MALFORMED_DOCUMENTS = [
    '{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}]}',
    '{"Statement": [{"Effect": "Allow", "Principal": ["x"], "Action": 7, "Resource": {"a": 1}, "Condition": "x"}]}',
    '{"Statement": "not a list"}',
    '{"Statement": [{"Effect": "Deny", "Principal": {"AWS": 5}, "Condition": {"Bool": "x"}}]}',
    '{"Statement": [{"Effect": "Allow", "Principal": {"Federated": ["token.actions.githubusercontent.com"]}, '
    '"Condition": {"StringEquals": "sub"}, "Action": "sts:AssumeRoleWithWebIdentity"}]}',
    "[1, 2]",
    "null",
    "{",
]
MALFORMED_PROPS = [
    {"assumeRolePolicy": d, "policy": d, "inlinePolicies": [{"policy": d}, "x"], "managedPolicyArns": "x"}
    for d in MALFORMED_DOCUMENTS
] + [
    {"tags": ["x"], "environment": "x", "cors": "x", "rules": ["x", {"applyServerSideEncryptionByDefault": "x"}],
     "versioningConfiguration": "x", "pointInTimeRecovery": "x", "serverSideEncryption": 5, "bucket": ["x"],
     "interpreter": {"nested": [{"k": None}]}, "triggers": 5, "policyArn": None, "policyArns": [None]},
]


@pytest.mark.parametrize("props", MALFORMED_PROPS)
def test_malformed_input_never_raises(props):
    types = [*rules.IDENTITY_POLICY_INPUTS, *rules.RESOURCE_POLICY_INPUTS, *rules.KEY_POLICY_INPUTS,
             *rules.MANAGED_POLICY_INPUTS, "aws:iam/role:Role", "aws:lambda/functionUrl:FunctionUrl",
             "command:local:Command", *rules.BUCKET_POLICY_TYPES, *rules.ENCRYPTION_TYPES, *rules.VERSIONING_TYPES,
             "aws:dynamodb/table:Table", "aws:kms/key:Key"]
    config = pack_config_for("prod")
    for type_ in types:
        resource = Resource(type=type_, props=props, urn=f"urn:pulumi:prod::webstack::{type_}::x", name="x")
        for name, (_, rule) in rules.RESOURCE_RULES.items():
            rule(resource, config) if rule in rules._CONFIGURED else rule(resource)  # raises = test error
    rules.s3_buckets_guarded([Resource(type="aws:s3/bucket:Bucket", props=props, urn="u", name="x")])


def test_a_string_principal_is_a_violation_through_the_pack(pack):
    role = Resource(
        type="aws:iam/role:Role",
        props={"name": "webstack-deploy-prod", "assumeRolePolicy": MALFORMED_DOCUMENTS[0]},
        urn="urn:pulumi:prod::webstack::aws:iam/role:Role::r",
        name="r",
    )
    diagnostics = pack.diagnostics(role, config_document("prod"))
    assert {d.policy for d in diagnostics} == {"iam-trust-restricted", "role-shapes"}
    assert "every AWS principal (*) may assume the role" in next(d.message for d in diagnostics if d.policy == "iam-trust-restricted")


def test_a_failing_rule_reports_itself_instead_of_crashing(monkeypatch):
    def broken_rule(resource):
        raise KeyError("surprise")

    monkeypatch.setitem(rules.RESOURCE_RULES, "kms-key-rotation", ("x", broken_rule))
    key = Resource(type="aws:kms/key:Key", props={}, protect=True, urn="urn:pulumi:prod::webstack::aws:kms/key:Key::k")
    found = check_resource(key, pack_config_for("prod"))
    assert {rule: found[rule] for rule in found if rule != "kms-key-boundary"} == {"kms-key-rotation": ["kms-key-rotation could not read this resource (KeyError: 'surprise'); "
                                          "it is refused until it can"]}


# --- the pack as CrossGuard runs it --------------------------------------------------------------


def _options(protect: bool) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def test_the_pack_registers_every_rule_as_mandatory(monkeypatch):
    built = {}
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kwargs: built.update(kwargs))
    runpy.run_path(str(Path(rules.__file__).with_name("__main__.py")), run_name="__main__")
    names = [p.name for p in built["policies"]]
    assert names == [*rules.RESOURCE_RULES, *rules.STACK_RULES]
    assert built["enforcement_level"] == EnforcementLevel.MANDATORY
    assert all(p.enforcement_level == EnforcementLevel.MANDATORY for p in built["policies"])
    schemas = {p.name: p.config_schema for p in built["policies"] if p.config_schema is not None}
    assert {name: set(s.properties) for name, s in schemas.items()} == {
        "deploy-role-subjects": {
            "repository", "repositoryId", "repositoryOwnerId", "prodEnvironments", "previewEnvironments", "sweeperEnvironments",
        },
        "function-url-intended": {"siteOrigin"},
        "role-shapes": {"accountId"},
        "resource-policy-principals": {"accountId"},
    }
    # Everything the workflows' config carries is declared (the engine validates it against these).
    for name, properties in config_document("prod", repositoryId="1", repositoryOwnerId="2").items():
        assert set(properties) <= set(schemas[name].properties), name


def test_resource_policies_report_through_the_sdk(recorded):
    policy = next(p for p in rules.policies() if p.name == "stateful-protected")
    table = recorded("prod").by_name("state-locks")
    reported = []
    for protect in (True, False):
        args = ResourceValidationArgs(
            table.type,
            unknown_checking_proxy(copy.deepcopy(table.inputs)),
            table.urn,
            table.name,
            _options(protect),
            None,
        )
        policy.validate(args, lambda message, urn=None: reported.append((protect, message)))
    assert [protect for protect, _ in reported] == [False]


def test_deploy_role_policy_reads_the_pack_config():
    from tests.conftest import record

    role = record("prod", githubProdEnvironment="production").by_name("github-prod-role")
    policy = next(p for p in rules.policies() if p.name == "deploy-role-subjects")
    for config, expected in (
        ({}, 1),
        ({"repository": REPOSITORY}, 1),
        ({"repository": REPOSITORY, "prodEnvironments": ["production"]}, 0),
        ({"repository": "org/other", "prodEnvironments": ["production"]}, 1),
    ):
        reported = []
        args = ResourceValidationArgs(
            role.type, unknown_checking_proxy(copy.deepcopy(role.inputs)), role.urn, role.name, _options(False),
            None, config,
        )
        policy.validate(args, lambda message, urn=None: reported.append(message))
        assert len(reported) == expected, (config, reported)


def test_unknown_values_during_preview_are_left_to_the_sdk(recorded):
    """A property unknown at preview raises the SDK's UnknownValueError (reported as advisory)."""
    bucket_policy = recorded("prod").by_name("state-storage-policy")
    props = {**copy.deepcopy(bucket_policy.inputs), "policy": UNKNOWN_STRING_VALUE, "bucket": "webstack-state"}
    policy = next(p for p in rules.policies() if p.name == "s3-tls-only")
    args = ResourceValidationArgs(
        bucket_policy.type, unknown_checking_proxy(props), bucket_policy.urn, bucket_policy.name, _options(False), None
    )
    with pytest.raises(pulumi_policy.proxy.UnknownValueError):
        policy.validate(args, lambda message, urn=None: None)


def test_stack_policy_reports_the_bucket_through_the_sdk(recorded):
    prod = recorded("prod")
    resources = {
        r.urn: PolicyResource(
            r.type, unknown_checking_proxy(copy.deepcopy(r.inputs)), r.urn, r.name, _options(r.protect), None, None,
            [], {},
        )
        for r in prod.resources.values()
        if r.name != "audit-storage-public-access-block"
    }
    for r in prod.resources.values():
        if r.urn in resources:
            resources[r.urn].property_dependencies = {
                k: [resources[u] for u in v if u in resources] for k, v in r.property_dependencies.items()
            }
    policy = next(p for p in rules.policies() if p.name == "s3-buckets-guarded")
    reported = []
    policy.validate(StackValidationArgs(list(resources.values())), lambda message, urn=None: reported.append(urn))
    assert reported == [prod.by_name("audit-storage-bucket").urn]


def test_the_pack_reads_the_programs_facts_by_path_without_the_program(tmp_path):
    # The pack runs in its own virtualenv from policy/: the repository is not on its path. It loads
    # the `core` package by path and imports nothing else of the repository.
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(PROJECT_ROOT / 'policy')!r})\n"  # as policy/__main__.py does
        "import rules\n"
        "ours = sorted({m.split('.')[0] for m in sys.modules} & {'components', 'steps', 'workflow', 'tools', 'sandbox'})\n"
        "print(json.dumps({'core': sys.modules['core'].__file__, 'ours': ours, 'exceptions': sorted(rules.WILDCARD_EXCEPTIONS),"
        " 'managed': sorted(rules.ALLOWED_MANAGED_POLICIES)}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-I", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert loaded["core"] == str(PROJECT_ROOT / "core" / "__init__.py") and loaded["ours"] == []
    assert loaded["exceptions"] == sorted(aws_policies.WILDCARD_EXCEPTIONS)
    assert aws_policies.BASIC_EXECUTION_POLICY in loaded["managed"]


# --- issue 27 §5: the variant classes the shape rules missed, refused by the allow-list ------------
#
# Each case names the one allow-list rule that must refuse it (others may fire as well): with that
# rule made a no-op, the case passes the pack (shown when the rule was written; see the report).

OTHER_ACCOUNT = "999999999999"
PR_STACK_NAME = "preview-pr-7"


def _undeclared(type_: str, stack: str = PR_STACK_NAME, **props) -> Resource:
    """A resource of a type the program never declares, in `stack`."""
    name = type_.rsplit(":", 1)[-1].lower()
    return Resource(type=type_, props=props, urn=f"urn:pulumi:{stack}::webstack::{type_}::{name}", name=name)


def _open_policy(action: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"}, "Action": action, "Resource": "*"}]})


VARIANTS = [
    # Trust of principals other than the kind's own (the OIDC provider, Lambda, CloudTrail).
    *[
        pytest.param(stack, lambda rec, st=stack, role=role, p=principal: broken(rec(st), role, _trust_statement(
            {"Effect": "Allow", "Principal": p, "Action": "sts:AssumeRole"})), "role-shapes", id=f"trust-{case}-{role}-{stack}")
        for case, principal in [
            ("a-role", {"AWS": f"arn:aws:iam::{ACCOUNT}:role/some-admin"}),
            ("this-account", {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}),
            ("another-account", {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"}),
            ("a-bare-account-id", {"AWS": OTHER_ACCOUNT}),
            ("service-star", {"Service": "*"}),
            ("another-service", {"Service": "ec2.amazonaws.com"}),
        ]
        for stack, role in [("prod", "github-preview-role"), ("prod", "api-role-role"), (PR_STACK_NAME, "api-role-role")]
    ],
    pytest.param("prod", lambda rec: broken(rec("prod"), "github-preview-role", _trust_statement({
        "Effect": "Allow", "Principal": {"Federated": f"arn:aws:iam::{OTHER_ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"},
        "Action": "sts:AssumeRoleWithWebIdentity"})), "role-shapes", id="trust-another-accounts-oidc-provider"),
    pytest.param(PR_STACK_NAME, lambda rec: _undeclared("aws:iam/role:Role", name="webstack-api-preview-pr-7-admin",
        assumeRolePolicy=json.dumps({"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                    "Action": "sts:AssumeRole"}]})),
        "role-shapes", id="a-role-the-program-does-not-declare"),
    # Name prefixes that act as wildcards across a trust boundary (the preview-side roles' grants).
    *[
        pytest.param("prod", lambda rec, policy=policy, arn=arn: broken(rec("prod"), policy, _add_statement(
            {"Effect": "Allow", "Action": "lambda:GetFunction", "Resource": arn})), "preview-role-reach", id=f"prefix-{case}")
        for case, policy, arn in [
            ("preview-star-reaches-the-template", "github-preview-policy",
             f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:webstack-api-preview*"),
            ("project-star-reaches-prod", "github-preview-policy", f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:webstack-*"),
            ("one-letter-prefix", "github-preview-policy", f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:webstack-api-p*"),
            ("question-mark", "github-preview-policy", f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:webstack-api-pro?"),
            ("sweeper-state-prefix", "github-sweeper-policy",
             "arn:aws:s3:::webstack-pulumi-state-123456789012/pulumi/.pulumi/stacks/webstack/p*"),
        ]
    ],
    # Pre-existing managed admin policies attached by ARN (the account's own, not AWS's).
    pytest.param("prod", lambda rec: broken(rec("prod"), "api-role-logs",
        lambda p: p.update(policyArn=f"arn:aws:iam::{ACCOUNT}:policy/OrganizationAdmin")), "attached-policies",
        id="attach-the-accounts-admin-policy"),
    pytest.param(PR_STACK_NAME, lambda rec: broken(rec(PR_STACK_NAME), "api-role-logs",
        lambda p: p.update(policyArn=f"arn:aws:iam::{OTHER_ACCOUNT}:policy/Admin")), "attached-policies",
        id="attach-another-accounts-policy"),
    pytest.param("prod", lambda rec: broken(rec("prod"), "api-role-logs",
        lambda p: p.update(role="webstack-deploy-preview")), "attached-policies", id="attach-to-a-deploy-role"),
    pytest.param("prod", lambda rec: broken(rec("prod"), "github-preview-role",
        lambda p: p.update(managedPolicyArns=[f"arn:aws:iam::{ACCOUNT}:policy/OrganizationAdmin"])), "role-shapes",
        id="managed-policy-arns-of-the-account"),
    # Resource policies of types the pack never read, and KMS grants, external and replica keys.
    *[
        pytest.param(PR_STACK_NAME, lambda rec, t=type_, p=props: _undeclared(t, **p), "declared-types", id=f"type-{case}")
        for case, type_, props in [
            ("dynamodb-resource-policy", "aws:dynamodb/resourcePolicy:ResourcePolicy",
             {"resourceArn": "arn:aws:dynamodb:us-east-1:123456789012:table/webstack-pulumi-locks", "policy": _open_policy("dynamodb:*")}),
            ("sqs-queue-policy", "aws:sqs/queuePolicy:QueuePolicy", {"queueUrl": "https://sqs/q", "policy": _open_policy("sqs:*")}),
            ("sqs-queue", "aws:sqs/queue:Queue", {"policy": _open_policy("sqs:*")}),
            ("secrets-manager-policy", "aws:secretsmanager/secretPolicy:SecretPolicy",
             {"secretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:x", "policy": _open_policy("secretsmanager:*")}),
            ("ecr-repository-policy", "aws:ecr/repositoryPolicy:RepositoryPolicy", {"repository": "r", "policy": _open_policy("ecr:*")}),
            ("lambda-layer-permission", "aws:lambda/layerVersionPermission:LayerVersionPermission",
             {"layerName": "l", "versionNumber": 1, "principal": "*", "action": "lambda:GetLayerVersion", "statementId": "s"}),
            ("kms-grant", "aws:kms/grant:Grant",
             {"keyId": "k", "granteePrincipal": f"arn:aws:iam::{OTHER_ACCOUNT}:root", "operations": ["Decrypt"]}),
            ("kms-external-key", "aws:kms/externalKey:ExternalKey", {"policy": _open_policy("kms:*")}),
            ("kms-replica-key", "aws:kms/replicaKey:ReplicaKey", {"primaryKeyArn": "arn:aws:kms:us-east-1:123456789012:key/k",
                                                                   "policy": _open_policy("kms:*")}),
            ("kms-replica-external-key", "aws:kms/replicaExternalKey:ReplicaExternalKey", {"policy": _open_policy("kms:*")}),
            ("foundation-type-in-a-pr-stack", "aws:dynamodb/table:Table", {"name": "webstack-pulumi-locks"}),
        ]
    ],
    *[
        pytest.param(PR_STACK_NAME, lambda rec, p=principal: broken(rec(PR_STACK_NAME), "api-url-invoke-function",
            lambda props: props.update(principal=p)), "resource-policy-principals", id=f"lambda-permission-{case}")
        for case, principal in [
            ("another-account", OTHER_ACCOUNT),
            ("another-accounts-root", f"arn:aws:iam::{OTHER_ACCOUNT}:root"),
            ("a-role", f"arn:aws:iam::{OTHER_ACCOUNT}:role/x"),
            ("a-service", "s3.amazonaws.com"),
        ]
    ],
]


@pytest.mark.parametrize(("stack", "build", "rule"), VARIANTS)
def test_the_allow_list_refuses_each_variant(recorded, stack, build, rule):
    resource = build(recorded)
    found = check_resource(resource, pack_config_for(stack))
    assert rule in found, found
    assert SECRET_SENTINEL not in json.dumps(found)  # a message shows a value's shape, never the value


def test_the_variants_are_refused_by_the_running_pack_too(recorded, pack):
    """The same cases through the analyzer the engine runs (one pack process for all of them)."""
    for variant in VARIANTS:
        stack, build, rule = variant.values
        policies = pack.fired(build(recorded), config_document(stack))
        assert rule in policies, (variant.id, policies)


def test_without_the_account_the_allow_list_refuses_rather_than_guesses(recorded):
    role = broken(recorded("prod"), "api-role-role")
    assert check_resource(role, pack_config_for("prod")) == {}
    assert check_resource(role, PackConfig.of({})) == {"role-shapes": [rules.NO_ACCOUNT]}
