"""The GitHub roles' trust and permission documents as the program writes them (parsed JSON).

Exact OIDC subjects; no wildcard action anywhere; Resource "*" only for the named exceptions; the
preview, cleanup and sweeper roles cannot act on anything of prod (ARN patterns matched the way IAM
does: `*` any run of characters, `?` one); the cleanup and sweeper roles only read and remove.
"""

from __future__ import annotations

import fnmatch
import json
import re

import pytest

from components import aws_policies
from components.audit_trail import IAM_POLICY_EVENTS, MAX_FILTER_PATTERN, iam_policy_change_patterns
from policy.rules import arn_matches

ACCOUNT, REGION = "123456789012", "us-east-1"
HOST = aws_policies.GITHUB_OIDC_HOST
STATE_BUCKET = f"arn:aws:s3:::webstack-pulumi-state-{ACCOUNT}"
TRAIL_BUCKET = f"arn:aws:s3:::webstack-audit-{ACCOUNT}"
ARTIFACTS_BUCKET = f"arn:aws:s3:::webstack-artifacts-{ACCOUNT}"
STATE = f"{STATE_BUCKET}/pulumi/.pulumi"
LAMBDA = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function"
IAM = f"arn:aws:iam::{ACCOUNT}"

# Everything of prod (and of the account foundation prod owns) a PR's role must not touch.
PROD_ARNS = [
    f"{LAMBDA}:webstack-api-prod",
    f"{LAMBDA}:webstack-api-prod:stable",
    f"{LAMBDA}:webstack-api-prod:7",
    f"{IAM}:role/webstack-api-prod-exec",
    f"{STATE}/stacks/webstack/prod.json",
    f"{STATE}/stacks/webstack/prod.json.bak",
    f"{STATE}/stacks/webstack/preview.json",  # the template, run by hand
    f"{STATE}/locks/organization/webstack/prod/0b5e.json",
    f"{STATE}/history/webstack/prod/prod-1700000000.history.json",
    f"{STATE}/backups/webstack/prod/prod.1700000000.json",
    f"{TRAIL_BUCKET}",
    f"{TRAIL_BUCKET}/AWSLogs/{ACCOUNT}/CloudTrail/x.json.gz",
    f"{ARTIFACTS_BUCKET}/prod/api/{'a' * 64}.zip",
    f"{ARTIFACTS_BUCKET}/prod/site/{'b' * 64}.tar.gz",
    f"{ARTIFACTS_BUCKET}/previews-preview-pr-7/api/x.zip",  # not a PR stack's prefix
    f"{ARTIFACTS_BUCKET}/previews/preview/api/x.zip",  # the template's, run by hand
    f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/webstack-audit",
    f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-trail-key",
    f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/webstack-pulumi-state",
    f"{IAM}:oidc-provider/{HOST}",
    f"{IAM}:role/webstack-deploy-prod",
    f"{IAM}:role/webstack-deploy-preview",
    f"{IAM}:role/webstack-audit-cloudwatch",
    f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/cloudtrail/webstack-audit",
    f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:webstack-audit-iam-policy-change",
    f"arn:aws:sns:{REGION}:{ACCOUNT}:webstack-alerts",
]
LOCK_TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/webstack-pulumi-locks"
LEASE = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
# What the preview role shares with prod on purpose: listing the state bucket and the lock table's
# item actions, for its own stacks' items only (`dynamodb:LeadingKeys`, `lease_actions` below). Each
# side has its own state key (docs/security.md, "One key per trust boundary").
SHARED = {
    STATE_BUCKET: {"s3:ListBucket", "s3:GetBucketLocation", "s3:GetBucketVersioning"},
    # Listing, limited by condition to the role's own prefix (below).
    ARTIFACTS_BUCKET: {"s3:ListBucket"},
    LOCK_TABLE: LEASE,
}
STATE_KEY_USE = {"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"}


def document(recording, name: str, key: str) -> dict:
    return json.loads(recording.by_name(name).inputs[key])


def as_list(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def actions_on(policy: dict, arn: str) -> set[str]:
    """Every action a policy allows on `arn` (actions that take no resource left out), less what
    its unconditional Deny statements take back."""
    allowed: set[str] = set()
    denied: list[str] = []
    for statement in policy["Statement"]:
        assert statement["Effect"] in ("Allow", "Deny"), statement
        if any(arn_matches(pattern, arn) for pattern in as_list(statement["Resource"])):
            if statement["Effect"] == "Allow":
                allowed |= set(as_list(statement["Action"])) - set(aws_policies.WILDCARD_EXCEPTIONS)
            elif not statement.get("Condition"):
                denied += as_list(statement["Action"])
    return {a for a in allowed if not any(fnmatch.fnmatchcase(a.lower(), d.lower()) for d in denied)}


def allow_statements(policy: dict) -> list[dict]:
    return [s for s in policy["Statement"] if s["Effect"] == "Allow"]


def lease_actions(policy: dict, key: str) -> set[str]:
    """The actions a policy allows on the lock table item `key` (its conditions evaluated)."""
    allowed: set[str] = set()
    for statement in policy["Statement"]:
        if not any(arn_matches(pattern, LOCK_TABLE) for pattern in as_list(statement["Resource"])):
            continue
        condition = dict(statement.get("Condition") or {})
        assert condition.pop("Null", {"dynamodb:LeadingKeys": "false"}) == {"dynamodb:LeadingKeys": "false"}
        if not condition:
            allowed |= set(as_list(statement["Action"])) & (LEASE | {"dynamodb:Scan", "dynamodb:Query", "dynamodb:BatchWriteItem"})
            continue
        [(operator, keys)] = condition.items()
        [(name, patterns)] = keys.items()
        assert name == "dynamodb:LeadingKeys" and operator in ("ForAllValues:StringLike", "ForAllValues:StringEquals"), statement
        match = (lambda p: arn_matches(p, key)) if operator.endswith("StringLike") else (lambda p: p == key)
        if any(match(p) for p in as_list(patterns)):
            allowed |= set(as_list(statement["Action"]))
    return allowed


ROLES = ("prod", "preview", "cleanup", "sweeper")
PR_SIDE = ("preview", "cleanup", "sweeper")


@pytest.fixture(scope="module")
def roles(recorded):
    prod = recorded("prod")
    return {
        role: {
            "trust": document(prod, f"github-{role}-role", "assumeRolePolicy"),
            "policy": document(prod, f"github-{role}-policy", "policy"),
        }
        for role in ROLES
    } | {
        "prod_key": prod.by_name("state-key").outputs["arn"],
        "preview_key": prod.by_name("state-preview-key").outputs["arn"],
        "lease_key": prod.by_name("state-lease-key").outputs["arn"],
        "artifacts_key": prod.by_name("artifacts-key").outputs["arn"],
    }


@pytest.mark.parametrize(
    ("role", "subjects"),
    [
        ("prod", ["repo:org/repo:environment:production"]),
        ("preview", ["repo:org/repo:environment:preview"]),
        ("cleanup", ["repo:org/repo:environment:preview"]),
        ("sweeper", ["repo:org/repo:environment:preview-sweeper"]),
    ],
)
def test_trust_exact_subjects_and_the_sts_audience(roles, role, subjects):
    [statement] = roles[role]["trust"]["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {"Federated": f"{IAM}:oidc-provider/{HOST}"}
    assert statement["Condition"] == {"StringEquals": {f"{HOST}:aud": "sts.amazonaws.com", f"{HOST}:sub": subjects}}


def test_no_environments_leave_pull_requests_only():
    from tests.conftest import record

    prod = record("prod", githubSweeperEnvironment="", githubPreviewEnvironment="")
    for role in ("preview", "cleanup"):
        [statement] = document(prod, f"github-{role}-role", "assumeRolePolicy")["Statement"]
        assert statement["Condition"]["StringEquals"][f"{HOST}:sub"] == ["repo:org/repo:pull_request"]
    with pytest.raises(ValueError, match="sweeper role needs a GitHub environment"):
        aws_policies.github_subjects("repo:org/repo", "sweeper", "")


@pytest.mark.parametrize("role", ROLES)
def test_no_wildcard_actions_and_star_resources_only_for_the_named_exceptions(roles, role):
    # A Deny may use a wildcard: it only takes more away.
    for statement in allow_statements(roles[role]["policy"]):
        actions = as_list(statement["Action"])
        assert not [a for a in actions if a == "*" or a.endswith(":*")], statement
        assert not [a for a in actions if "*" in a or "?" in a], statement  # not even prefixes
        if "*" in as_list(statement["Resource"]):
            assert as_list(statement["Resource"]) == ["*"]
            assert set(actions) <= set(aws_policies.WILDCARD_EXCEPTIONS), statement
    for action, reason in aws_policies.WILDCARD_EXCEPTIONS.items():
        assert reason and ":" in action


@pytest.mark.parametrize("role", PR_SIDE)
@pytest.mark.parametrize("arn", PROD_ARNS)
def test_a_pr_side_role_cannot_act_on_prod(roles, role, arn):
    assert actions_on(roles[role]["policy"], arn) == set()


# What a role may do to a preview's resources when it only removes them.
REMOVE_OR_READ = ("Delete", "Detach", "Remove", "Get", "List", "Describe")
PREVIEW_ARNS = [
    f"{LAMBDA}:webstack-api-preview-pr-7",
    f"{LAMBDA}:webstack-api-preview-pr-7:$LATEST",
    f"{IAM}:role/webstack-api-preview-pr-7-exec",
    f"{STATE}/stacks/webstack/preview-pr-7.json",
    f"{STATE}/history/webstack/preview-pr-7/preview-pr-7-1.history.json",
]


@pytest.mark.parametrize("role", ["cleanup", "sweeper"])
@pytest.mark.parametrize("arn", PREVIEW_ARNS)
def test_the_teardown_roles_only_read_and_remove_previews(roles, role, arn):
    allowed = actions_on(roles[role]["policy"], arn)
    # cleanup's `pulumi destroy` writes the state it destroys; nothing else is written.
    writes = {"s3:PutObject"} if role == "cleanup" and ":s3:::" in arn else set()
    made = {a for a in allowed if not a.split(":", 1)[1].startswith(REMOVE_OR_READ)}
    assert made == writes, made


def test_the_sweeper_reads_no_state_and_holds_no_key_but_the_lease_through_dynamodb(roles):
    sweeper = roles["sweeper"]["policy"]
    every_action = {a for s in sweeper["Statement"] for a in as_list(s["Action"])}
    assert not {a for a in every_action if a.startswith("s3:Get")}, "the sweeper never reads a state object"
    keyed = [s for s in allow_statements(sweeper) if any(a.startswith("kms:") for a in as_list(s["Action"]))]
    assert [s["Condition"]["StringEquals"]["kms:ViaService"] for s in keyed] == [f"dynamodb.{REGION}.amazonaws.com"]
    assert {a for s in keyed for a in as_list(s["Action"])} <= {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"}
    # It removes what workflow.teardown_preview removes, and lists only under the previews' prefixes.
    assert {"lambda:DeleteFunction", "iam:DeleteRole", "iam:DetachRolePolicy", "s3:DeleteObject"} <= every_action
    [listing] = [s for s in sweeper["Statement"] if "s3:ListBucket" in as_list(s["Action"])]
    assert listing["Condition"]["StringLike"]["s3:prefix"] == aws_policies.state_listing_prefixes(SCOPE)


SCOPE = aws_policies.DeployScope(
    project="webstack", account_id=ACCOUNT, region=REGION, state_bucket_arn=STATE_BUCKET,
    state_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/state", preview_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/preview",
    lease_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/leases", artifacts_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/artifacts",
)  # fmt: skip


def test_preview_shares_only_the_state_listing_and_its_leases_and_uses_its_own_key(roles):
    preview, prod = roles["preview"]["policy"], roles["prod"]["policy"]
    assert actions_on(preview, STATE_BUCKET) == SHARED[STATE_BUCKET]
    assert actions_on(preview, ARTIFACTS_BUCKET) == SHARED[ARTIFACTS_BUCKET]
    assert actions_on(preview, LOCK_TABLE) == SHARED[LOCK_TABLE]
    assert actions_on(preview, roles["preview_key"]) == STATE_KEY_USE
    assert actions_on(preview, roles["prod_key"]) == set()
    assert actions_on(prod, roles["prod_key"]) >= STATE_KEY_USE
    # prod administers the previews' key (DescribeKey among that), never uses it.
    assert not actions_on(prod, roles["preview_key"]) & (STATE_KEY_USE - {"kms:DescribeKey"})


@pytest.mark.parametrize(
    ("role", "key", "allowed"),
    [
        ("preview", f"previews/preview-pr-7/api/{'a' * 64}.zip", True),
        ("preview", "previews/preview-pr-7/claims/pages-branch-pr-7.json", True),
        ("preview", f"prod/api/{'a' * 64}.zip", False),
        ("preview", "previews/preview/site/x.tar.gz", False),
        ("preview", "x.zip", False),
        ("prod", f"prod/site/{'b' * 64}.tar.gz", True),
        ("prod", f"previews/preview-pr-7/api/{'a' * 64}.zip", False),
    ],
)
def test_artifacts_are_written_under_the_roles_own_prefix(roles, role, key, allowed):
    """A build publishes and reads under its stack's prefix only (`names.artifact_prefix`): a PR's
    role can neither overwrite nor read prod's bundle, and lists nothing but its own prefix."""
    policy = roles[role]["policy"]
    expected = {"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"} if allowed else set()
    assert actions_on(policy, f"{ARTIFACTS_BUCKET}/{key}") == expected
    [listing] = [s for s in policy["Statement"] if s.get("Sid") == "ArtifactsList"]
    [(operator, patterns)] = listing["Condition"].items()
    assert operator == "StringLike" and list(patterns) == ["s3:prefix"]
    assert any(arn_matches(p, key) for p in patterns["s3:prefix"]) is allowed


def test_preview_acts_on_its_own_pr_resources(roles):
    preview = roles["preview"]["policy"]
    assert "lambda:UpdateFunctionCode" in actions_on(preview, f"{LAMBDA}:webstack-api-preview-pr-7")
    assert "s3:PutObject" in actions_on(preview, f"{STATE}/stacks/webstack/preview-pr-7.json")
    assert "s3:DeleteObject" in actions_on(preview, f"{STATE}/locks/organization/webstack/preview-pr-7/x.json")
    assert "iam:PassRole" in actions_on(preview, f"{IAM}:role/webstack-api-preview-pr-7-exec")


def test_only_prod_invokes_and_only_its_published_versions(roles):
    """The pre-traffic check (steps.promote) and the canary: Invoke on prod's versions, and the
    alias moves (routing config included) with GetAlias/UpdateAlias; nothing more, nobody else."""
    prod, preview = roles["prod"]["policy"], roles["preview"]["policy"]
    assert {"lambda:InvokeFunction", "lambda:GetAlias", "lambda:UpdateAlias"} <= actions_on(prod, f"{LAMBDA}:webstack-api-prod:7")
    assert "lambda:InvokeFunction" not in actions_on(prod, f"{LAMBDA}:webstack-api-prod")
    for arn in (f"{LAMBDA}:webstack-api-preview-pr-7", f"{LAMBDA}:webstack-api-preview-pr-7:$LATEST", f"{LAMBDA}:other:1"):
        assert "lambda:InvokeFunction" not in actions_on(prod, arn), arn
    for arn in (f"{LAMBDA}:webstack-api-prod:7", f"{LAMBDA}:webstack-api-preview-pr-7", f"{LAMBDA}:webstack-api-preview-pr-7:$LATEST"):
        assert not any(a.startswith("lambda:Invoke") for a in actions_on(preview, arn)), arn
    granting = [s for s in prod["Statement"] if "lambda:InvokeFunction" in as_list(s["Action"])]
    assert [as_list(s["Action"]) for s in granting] == [["lambda:InvokeFunction"]]


def test_pass_role_only_for_execution_roles_and_only_to_lambda(roles):
    for role in ("cleanup", "sweeper"):
        assert not [s for s in roles[role]["policy"]["Statement"] if "iam:PassRole" in as_list(s["Action"])]
    for role in ("prod", "preview"):
        passes = [s for s in roles[role]["policy"]["Statement"] if "iam:PassRole" in as_list(s["Action"])]
        lambda_pass = [
            s for s in passes if s["Condition"]["StringEquals"]["iam:PassedToService"] == "lambda.amazonaws.com"
        ]
        assert [as_list(s["Resource"]) for s in lambda_pass] == [
            [f"{IAM}:role/webstack-api-{'prod' if role == 'prod' else 'preview-pr-*'}-exec"]
        ]
        others = [s for s in passes if s not in lambda_pass]
        # prod also hands CloudTrail its log-delivery role, that one role only.
        expected = [[f"{IAM}:role/webstack-audit-cloudwatch"]] if role == "prod" else []
        assert [as_list(s["Resource"]) for s in others] == expected
        assert not arn_matches(as_list(lambda_pass[0]["Resource"])[0], f"{IAM}:role/webstack-deploy-prod")


def test_execution_roles_can_only_get_the_logs_policy(roles):
    for role in ("prod", "preview"):
        [attach] = [s for s in roles[role]["policy"]["Statement"] if "iam:AttachRolePolicy" in as_list(s["Action"])]
        assert attach["Condition"] == {"ArnEquals": {"iam:PolicyARN": aws_policies.BASIC_EXECUTION_POLICY}}
    for role in ("cleanup", "sweeper"):
        assert not [s for s in roles[role]["policy"]["Statement"] if "iam:AttachRolePolicy" in as_list(s["Action"])]
        [detach] = [s for s in roles[role]["policy"]["Statement"] if "iam:DetachRolePolicy" in as_list(s["Action"])]
        assert detach["Condition"] == {"ArnEquals": {"iam:PolicyARN": aws_policies.BASIC_EXECUTION_POLICY}}


def test_prod_cannot_delete_what_is_retained(roles):
    prod = {a for s in roles["prod"]["policy"]["Statement"] for a in as_list(s["Action"])}
    assert not prod & {
        "s3:DeleteBucket",
        "dynamodb:DeleteTable",
        "cloudtrail:DeleteTrail",
        "cloudtrail:StopLogging",
        "kms:ScheduleKeyDeletion",
        "kms:DisableKey",
        "logs:DeleteLogGroup",
    }


def test_prod_manages_its_own_foundation(roles):
    prod = roles["prod"]["policy"]
    assert "iam:PutRolePolicy" in actions_on(prod, f"{IAM}:role/webstack-deploy-prod")
    assert "iam:GetOpenIDConnectProvider" in actions_on(prod, f"{IAM}:oidc-provider/{HOST}")
    trail = f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/webstack-audit"
    assert "cloudtrail:GetTrailStatus" in actions_on(prod, trail)
    assert "s3:PutBucketPolicy" in actions_on(prod, TRAIL_BUCKET)
    assert "s3:GetBucketPublicAccessBlock" in actions_on(prod, STATE_BUCKET)
    assert "dynamodb:DescribeContinuousBackups" in actions_on(
        prod, f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/webstack-pulumi-locks"
    )
    log_group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/cloudtrail/webstack-audit"
    assert "logs:PutMetricFilter" in actions_on(prod, log_group)
    assert "lambda:PublishVersion" in actions_on(prod, f"{LAMBDA}:webstack-api-prod")
    [keys] = [s for s in prod["Statement"] if s.get("Sid") == "FoundationKeys"]
    assert keys["Condition"] == {"StringEquals": {"aws:ResourceTag/project": "webstack"}}


def test_the_iam_change_alarm_ignores_exactly_the_deploy_roles(recorded):
    [pattern] = iam_policy_change_patterns(["webstack-deploy-prod", "webstack-deploy-preview"])
    assert "sessionIssuer.userName NOT EXISTS" in pattern  # root and IAM users are not the pipeline
    assert pattern.count("!=") == 2
    # The program's alarm: the four GitHub roles (the teardown roles detach and delete roles too).
    # CloudWatch refuses a pattern over 1024 characters: the events are split over filters that
    # count into the alarm's one metric, and together name each event once.
    filters = [r for r in recorded("prod").of_type("aws:cloudwatch/logMetricFilter:LogMetricFilter") if "iam" in r.name]
    assert len(filters) > 1
    events = []
    for metric_filter in filters:
        pattern = metric_filter.inputs["pattern"]
        assert len(pattern) <= MAX_FILTER_PATTERN, len(pattern)
        assert all(f'!= "webstack-deploy-{role}"' in pattern for role in ROLES), pattern
        assert metric_filter.inputs["metricTransformation"]["name"] == "IamPolicyChangeOutsidePipeline"
        events += re.findall(r'\$\.eventName = "(\w+)"', pattern)
    assert sorted(events) == sorted(IAM_POLICY_EVENTS)
    with pytest.raises(ValueError):
        iam_policy_change_patterns([])
    with pytest.raises(ValueError, match="over 1024"):
        iam_policy_change_patterns(["webstack-deploy-" + "x" * 200 + str(n) for n in range(4)])


# The roles' grants, checked against every ARN the program really declares: a physical name that
# drifts between a resource and the policy written for it shows up here, not as AccessDenied at
# deploy time. A stack's resources are acted on by its own role and by no other; what the two
# roles share on purpose (SHARED) is the only exception.
def _declared_arns(recording) -> list[str]:
    return sorted(
        {
            r.outputs["arn"]
            for r in recording.resources.values()
            if r.type.startswith("aws:") and isinstance(r.outputs, dict) and r.outputs.get("arn")
        }
    )


@pytest.mark.parametrize(
    ("stack", "owner", "others"),
    [("prod", "prod", PR_SIDE), ("preview-pr-7", "preview", ("prod",))],
)
def test_every_declared_arn_is_covered_by_its_stacks_role_and_no_other(roles, recorded, stack, owner, others):
    arns = _declared_arns(recorded(stack))
    assert len(arns) >= (12 if stack == "prod" else 2)
    # The table: leases by key (test above), its key through DynamoDB only; the artifacts bucket:
    # each role lists and writes its own stacks' prefix only (test_artifacts_are_written_under_the_
    # roles_own_prefix) under its key, used through S3 only (test_the_artifacts_key_...); the previews'
    # key is declared (and administered) by prod and used by the preview and cleanup roles.
    shared = {STATE_BUCKET, LOCK_TABLE, ARTIFACTS_BUCKET, roles["lease_key"], roles["preview_key"], roles["artifacts_key"]}
    for arn in arns:
        assert actions_on(roles[owner]["policy"], arn), f"the {owner} role cannot act on {arn}"
        for other in others:
            if arn not in shared:
                assert actions_on(roles[other]["policy"], arn) == set(), f"the {other} role can act on {arn}"
    if stack == "preview-pr-7":
        # What a preview declares, the teardown roles can remove.
        for role in ("cleanup", "sweeper"):
            removable = {arn for arn in arns if any(a.split(":", 1)[1].startswith("Delete") for a in actions_on(roles[role]["policy"], arn))}
            assert removable == set(arns) - shared, (role, set(arns) - shared - removable)


@pytest.mark.parametrize(
    ("role", "key", "allowed"),
    [
        ("sweeper", "webstack/preview-pr-7", True),
        ("sweeper", "webstack/prod", False),
        ("cleanup", "webstack/preview-pr-7", True),
        ("cleanup", "webstack/prod", False),
        ("preview", "webstack/preview-pr-7", True),
        ("preview", "webstack/preview-pr-1234567", True),
        ("preview", "webstack/prod", False),
        ("preview", "webstack/preview", False),  # the template, run by hand
        ("preview", "other/preview-pr-7", False),
        ("prod", "webstack/prod", True),
        ("prod", "webstack/preview-pr-7", False),
        ("prod", "webstack/prod-2", False),
    ],
)
def test_each_role_holds_only_its_own_stacks_leases(roles, role, key, allowed):
    # Exactly the item actions workflow.lease uses, on that one table, for the role's own keys.
    assert lease_actions(roles[role]["policy"], key) == (LEASE if allowed else set())


def test_the_lease_key_is_the_one_workflow_lease_writes():
    from workflow.lease import lock_id

    assert lock_id("webstack", "preview-pr-7") == "webstack/preview-pr-7"
    assert lock_id("webstack", "prod") == "webstack/prod"
