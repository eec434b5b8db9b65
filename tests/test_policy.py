"""The CrossGuard pack (policy/): silent on the program's real resources, and every rule fires on a
deliberately broken copy of one of them.

Validator inputs are built from the recorder: type token, inputs (already the provider's camelCase
properties, secrets unwrapped as CrossGuard hands them to policies), URN, `protect`, and, for the
stack rule, the property dependencies the engine also reports.
"""

from __future__ import annotations

import copy
import json
import runpy
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
from policy import rules
from policy.rules import PackConfig, Resource, check_resource, check_stack
from tests.conftest import SECRET_SENTINEL

STACKS = ["prod", "preview", "preview-pr-7"]


def as_resource(recorded_resource, **changes) -> Resource:
    resource = Resource(
        type=recorded_resource.type,
        props=copy.deepcopy(recorded_resource.inputs),
        urn=recorded_resource.urn,
        name=recorded_resource.name,
        protect=recorded_resource.protect,
        property_dependencies={k: sorted(v) for k, v in recorded_resource.property_dependencies.items()},
    )
    return Resource(**{**resource.__dict__, **changes})


def stack_resources(recording) -> list[Resource]:
    return [as_resource(r) for r in recording.resources.values()]


def broken(recording, name: str, mutate=None, **changes) -> Resource:
    """A copy of the recorded resource `name`, its props changed by `mutate(props)`."""
    resource = as_resource(recording.by_name(name), **changes)
    if mutate is not None:
        mutate(resource.props)
    return resource


def fired(resource: Resource, config: PackConfig = PackConfig()) -> set[str]:
    return set(check_resource(resource, config))


@pytest.mark.parametrize("stack", STACKS)
def test_the_program_violates_no_rule(recorded, stack):
    assert check_stack(stack_resources(recorded(stack))) == {}


def test_a_configured_prod_environment_is_allowed_once_the_pack_knows_it():
    from tests.conftest import record

    prod = record("prod", githubProdEnvironment="production")
    role = as_resource(prod.by_name("github-prod-role"))
    assert fired(role) == {"deploy-role-subjects"}  # unknown to the pack: refused
    assert fired(role, PackConfig(prod_environments=("production",))) == set()


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
    found = check_stack(resources)
    assert set(found) == {"s3-buckets-guarded"}
    [(urn, message)] = found["s3-buckets-guarded"]
    assert urn == recorded("prod").by_name("state-storage-bucket").urn and "versioning" in message


def test_bucket_guards_match_real_bucket_names_too(recorded):
    """Real CrossGuard outputs name the bucket in `bucket`; no dependency edges needed then."""
    resources = []
    for resource in stack_resources(recorded("prod")):
        if resource.props.get("bucket", "").endswith("-bucket-id"):
            owner = recorded("prod").by_name(resource.props["bucket"].removesuffix("-id"))
            resource.props["bucket"] = owner.inputs["bucket"]
        resources.append(Resource(**{**resource.__dict__, "property_dependencies": {}}))
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


def test_key_policy_kms_star_for_anyone_but_the_account_root(recorded):
    statement = {"Effect": "Allow", "Principal": {"Service": "logs.amazonaws.com"}, "Action": "kms:*", "Resource": "*"}
    assert fired(broken(recorded("prod"), "audit-key", _add_statement(statement))) == {"iam-no-wildcards"}


def test_bucket_policy_granting_everyone(recorded):
    statement = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}
    assert fired(broken(recorded("prod"), "state-storage-policy", _add_statement(statement))) == {"iam-no-wildcards"}


def test_prod_function_url_on_latest(recorded):
    resource = broken(recorded("prod"), "api-url", lambda p: p.pop("qualifier"))
    assert fired(resource) == {"function-url-intended"}


def test_function_url_open_to_every_origin(recorded):
    resource = broken(recorded("preview-pr-7"), "api-url", lambda p: p["cors"].update(allowOrigins=["*"]))
    assert fired(resource) == {"function-url-intended"}


def test_public_invoke_not_through_the_url(recorded):
    resource = broken(recorded("prod"), "api-url-invoke-function", lambda p: p.pop("invokedViaFunctionUrl"))
    assert fired(resource) == {"function-url-intended"}


@pytest.mark.parametrize("name", ["state-locks", "audit-log-group", "database-schema"])
def test_unprotected_stateful_resources(recorded, name):
    assert fired(broken(recorded("prod"), name, protect=False)) == {"stateful-protected"}


def test_a_pr_schema_need_not_be_protected(recorded):
    assert not recorded("preview-pr-7").by_name("database-schema").protect
    assert fired(as_resource(recorded("preview-pr-7").by_name("database-schema"))) == set()


def test_database_url_in_a_command_environment(recorded):
    resource = broken(
        recorded("prod"), "database-migrate", lambda p: p["environment"].update(DATABASE_URL=SECRET_SENTINEL)
    )
    assert fired(resource) == {"no-plaintext-secrets"}


@pytest.mark.parametrize(
    ("where", "mutate"),
    [
        ("tag value", lambda p: p.update(tags={"owner": SECRET_SENTINEL})),
        ("tag key", lambda p: p.update(tags={"api-token": "abc123"})),
        ("command text", lambda p: p.update(create=p["create"] + " --github ghp_" + "a" * 36)),
    ],
)
def test_secrets_in_tags_and_command_text(recorded, where, mutate):
    name = "state-key" if "tag" in where else "database-migrate"
    assert fired(broken(recorded("prod"), name, mutate)) == {"no-plaintext-secrets"}, where


def test_the_lambda_environment_may_carry_the_database_url_as_a_secret(recorded):
    function = recorded("prod").by_name("api-function")
    assert "environment" in function.secret_inputs
    assert function.inputs["environment"]["variables"]["DATABASE_URL"] == SECRET_SENTINEL
    assert fired(as_resource(function)) == set()


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
    for config, expected in (({}, 1), ({"prodEnvironments": ["production"]}, 0)):
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
    props = {**copy.deepcopy(bucket_policy.inputs), "policy": UNKNOWN_STRING_VALUE}
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


def test_the_pack_names_the_same_wildcard_exceptions_as_the_program():
    assert rules.WILDCARD_RESOURCE_ACTIONS == aws_policies.WILDCARD_EXCEPTIONS
    assert rules.KEY_POLICY_EXCEPTIONS == aws_policies.KEY_POLICY_EXCEPTIONS
