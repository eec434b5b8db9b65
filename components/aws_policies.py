"""IAM, KMS and bucket policy documents as pure functions of names and ARNs.

Kept apart from the resources so that tests and the policy pack can read the exact documents
without Pulumi. Wildcards appear only where AWS needs them, and each such place says why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.iam import (
    BASIC_EXECUTION_POLICY,
    DENIED_BY_OUTSIDERS,
    DEPLOY_BRANCH_SUBJECT,
    GITHUB_OIDC_HOST,
    KEY_USERS,
    KEY_USE_ACTIONS,
    PR_SIDE_ROLES,
    PULL_REQUEST_SUBJECT,
    STS_AUDIENCE,
    THROUGH_SERVICE_ONLY,
    WILDCARD_EXCEPTIONS,
)
from core.names import (
    DEPLOY_ROLES,
    PR_STACKS,
    PROD_STACK,
    STATE_PREFIX,
    artifact_prefix,
    deploy_role_name,
    execution_role_name,
    foundation_names,
    function_name,
    lease_key,
)


def _document(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def no_grants(bucket_arn: str) -> list[dict]:
    return []


def bucket_policy(bucket_arn: str, grants: list[dict]) -> dict:
    """Denies every request that does not use TLS, then adds `grants`."""
    deny_plain_http = {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    return _document(deny_plain_http, *grants)


def trail_arn(region: str, account_id: str, trail_name: str) -> str:
    return f"arn:aws:cloudtrail:{region}:{account_id}:trail/{trail_name}"


def cloudtrail_bucket_grants(bucket_arn: str, *, trail: str, account_id: str) -> list[dict]:
    """What CloudTrail needs on its log bucket, limited to this account's trail (confused-deputy guard)."""
    from_this_trail = {"StringEquals": {"aws:SourceArn": trail}}
    return [
        {
            "Sid": "CloudTrailAclCheck",
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": "s3:GetBucketAcl",
            "Resource": bucket_arn,
            "Condition": from_this_trail,
        },
        {
            "Sid": "CloudTrailWrite",
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": f"{bucket_arn}/AWSLogs/{account_id}/*",
            "Condition": {"StringEquals": {**from_this_trail["StringEquals"], "s3:x-amz-acl": "bucket-owner-full-control"}},
        },
    ]


def account_administers(account_id: str) -> dict:
    """AWS's default key policy statement: the account administers the key, so IAM policies may
    grant its use (what a key's own Deny statements then hold to its trust boundary)."""
    return {
        "Sid": "AccountAdministers",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }


def trail_key_policy(*, account_id: str, region: str, project: str, trail: str, log_group: str) -> dict:
    """The audit key: the account administers it; CloudTrail (this trail), CloudWatch Logs (this log
    group) and CloudWatch alarms (publishing to the encrypted alert topic) use it, nothing else.

    A key policy's `Resource` is always "*" (it means "this key") and the account-root `kms:*`
    statement is AWS's default that keeps the key manageable through IAM: both are required forms
    (the policy pack names them: `policy/rules.py`, KEY_POLICY_EXCEPTIONS).
    """
    return _document(
        account_administers(account_id),
        {
            "Sid": "CloudTrailEncrypts",
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": ["kms:GenerateDataKey*", "kms:DescribeKey"],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceArn": trail}},
        },
        {
            "Sid": "CloudWatchLogsEncrypts",
            "Effect": "Allow",
            "Principal": {"Service": f"logs.{region}.amazonaws.com"},
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncryptFrom",
                "kms:ReEncryptTo",
                "kms:GenerateDataKey",
                "kms:GenerateDataKeyWithoutPlaintext",
            ],
            "Resource": "*",
            # The encryption context is a string key (Service Authorization Reference, AWS KMS:
            # kms:EncryptionContext:${EncryptionContextKey} is String), compared exactly. No
            # kms:DescribeKey here: DescribeKey carries no encryption context, so under this
            # condition it was never granted (parliament: UNKNOWN_CONDITION_FOR_ACTION).
            "Condition": {"StringEquals": {"kms:EncryptionContext:aws:logs:arn": log_group}},
        },
        {
            # An alarm publishing to an SSE-KMS topic needs its own grant on a customer key
            # (the AWS-managed alias/aws/sns key does not admit CloudWatch).
            "Sid": "CloudWatchAlarmsPublish",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        },
        # No deploy role uses the audit trail's key (core/iam.py KEY_USERS["audit"]).
        *boundary_denies(account_id=account_id, region=region, project=project, boundary="audit"),
    )


def log_group_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:aws:logs:{region}:{account_id}:log-group:{name}"


def topic_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:aws:sns:{region}:{account_id}:{name}"


def trail_logs_trust_policy(trail: str) -> dict:
    """CloudTrail may assume the role that writes to CloudWatch Logs, for this trail only."""
    return _document(
        {
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceArn": trail}},
        }
    )


def trail_logs_policy(*, log_group: str, account_id: str) -> dict:
    """What CloudTrail needs to deliver into its log group: its own streams in that group."""
    return _document(
        {
            "Sid": "TrailWritesItsStreams",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"{log_group}:log-stream:{account_id}_CloudTrail_*",
        }
    )


def lambda_trust_policy() -> dict:
    return _document(
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    )


def github_subjects(prefix: str, role: str, environment: str = "") -> list[str]:
    """Exact OIDC subjects a deploy role trusts: its jobs' own, one subject.

    A job that names a GitHub `environment:` carries that environment's subject instead of its
    branch's or event's, so a role whose jobs run in `environment` trusts that subject only —
    prod: `main`'s jobs without one; preview and cleanup: every pull_request job without one. The
    sweeper runs on `main` on a schedule: without an environment of its own its subject would be
    `main`'s, so it has no fallback.
    """
    if role not in DEPLOY_ROLES:
        raise ValueError(f"unknown deploy role {role!r}")
    if environment:
        return [f"{prefix}:environment:{environment}"]
    if role == "sweeper":
        raise ValueError("the sweeper role needs a GitHub environment of its own (githubSweeperEnvironment)")
    return [f"{prefix}:{DEPLOY_BRANCH_SUBJECT}" if role == "prod" else f"{prefix}:{PULL_REQUEST_SUBJECT}"]


def github_trust_policy(provider_arn: str, subjects: list[str]) -> dict:
    """Web-identity trust for GitHub Actions: audience pinned, subjects matched exactly (no wildcards)."""
    if any("*" in subject or "?" in subject for subject in subjects):
        raise ValueError(f"OIDC subjects must be exact, got {subjects}")
    return _document(
        {
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE,
                    f"{GITHUB_OIDC_HOST}:sub": subjects,
                }
            },
        }
    )


@dataclass(frozen=True, kw_only=True)
class DeployScope:
    """What a deploy role's policy is written against."""

    project: str
    account_id: str
    region: str
    state_bucket_arn: str
    state_key_arn: str
    """prod's state objects and secrets provider (the `prod` boundary of core/iam.py KEY_USERS)."""
    preview_key_arn: str
    """The previews' state objects and secrets provider."""
    lease_key_arn: str
    """The lock table's key."""
    artifacts_key_arn: str
    """The artifacts bucket's key."""

    def key_of(self, boundary: str) -> str:
        return {
            "prod": self.state_key_arn,
            "preview": self.preview_key_arn,
            "leases": self.lease_key_arn,
            "artifacts": self.artifacts_key_arn,
        }[boundary]


def role_arn(account_id: str, project: str, role: str) -> str:
    return f"arn:aws:iam::{account_id}:role/{deploy_role_name(project, role)}"


def state_objects(scope: DeployScope, stacks: str) -> list[str]:
    """The DIY backend's objects of `stacks` (a stack name or a `prefix*` pattern).

    Project-scoped layout, as the CLI writes it (pkg/backend/diy: store.go, lock.go, stack_tags.go;
    checked against bin/pulumi's own backend in tests/test_verified_destroy.py):
    stacks/<project>/<stack>.json(.bak|.gz), the stack's tags beside it (<stack>.pulumi-tags),
    history/<project>/<stack>/, backups/<project>/<stack>/, and only the locks under the stack's
    fully qualified name, locks/organization/<project>/<stack>/ (workflow.state_store lists them by
    the same prefixes).
    """
    return state_object_patterns(scope.state_bucket_arn, scope.project, stacks)


def state_object_patterns(bucket_arn: str, project: str, stacks: str) -> list[str]:
    root = f"{bucket_arn}/{STATE_PREFIX}/.pulumi"
    return [
        f"{root}/stacks/{project}/{stacks}.json*",
        f"{root}/stacks/{project}/{stacks}.pulumi-tags",
        f"{root}/locks/organization/{project}/{stacks}/*",
        f"{root}/history/{project}/{stacks}/*",
        f"{root}/backups/{project}/{stacks}/*",
    ]


def _state_access(scope: DeployScope, stacks: str, boundary: str) -> list[dict]:
    """Read and write the DIY backend's objects of `stacks`, and use the boundary's state key (its
    objects are written under it, and it is their stacks' `awskms://` secrets provider)."""
    bucket = scope.state_bucket_arn
    return [
        {
            "Sid": "StateList",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetBucketLocation", "s3:GetBucketVersioning"],
            "Resource": bucket,
        },
        {
            "Sid": "StateMeta",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": f"{bucket}/{META_OBJECT}",
        },
        {
            "Sid": "StateObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": state_objects(scope, stacks),
        },
        {
            # SSE-KMS objects and the `awskms://` secrets provider.
            "Sid": "StateKey",
            "Effect": "Allow",
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
            "Resource": scope.key_of(boundary),
        },
    ]


def _no_key_of_another_boundary(scope: DeployScope, role: str) -> dict:
    """The role's own half of the boundary: an explicit Deny of using every key it is not a user of
    (the keys' policies deny it too, `state_key_policy`), so no later Allow can grant one."""
    others = [scope.key_of(b) for b in DENIED_BY_OUTSIDERS if role not in KEY_USERS[b]]
    return {"Sid": "NoKeyOfAnotherTrustBoundary", "Effect": "Deny", "Action": list(KEY_USE_ACTIONS), "Resource": others}


def _through_service(boundary: str, region: str) -> dict:
    """The condition of a key used only through its boundary's service (core/iam.py THROUGH_SERVICE_ONLY)."""
    return {"kms:ViaService": f"{THROUGH_SERVICE_ONLY[boundary]}.{region}.amazonaws.com"}


def boundary_denies(*, account_id: str, region: str, project: str, boundary: str) -> list[dict]:
    """A key policy's half of the trust boundary (core/iam.py KEY_USERS): every deploy role that is
    not a user of this boundary's key is denied its use whatever an IAM policy says (the roles of the
    pull requests' side everything: they administer no key; prod's role the use only: it administers
    every key), and the users of a key for one service only (DynamoDB, S3) are denied any other use. `aws:PrincipalArn`
    is the role's ARN for its sessions, and unlike a named principal it may name a role that does not
    exist yet."""
    roles = lambda names: [role_arn(account_id, project, r) for r in names]  # noqa: E731
    statements = []
    outsiders = [r for r in DEPLOY_ROLES if r not in KEY_USERS[boundary]]
    pr_side = [r for r in outsiders if r in PR_SIDE_ROLES]
    if pr_side:
        statements.append(
            {
                "Sid": "NoPullRequestRoleOfAnotherTrustBoundary",
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": "kms:*",
                "Resource": "*",
                "Condition": {"ArnEquals": {"aws:PrincipalArn": roles(pr_side)}},
            }
        )
    if "prod" in outsiders:
        statements.append(
            {
                # prod's role administers the key (rotation, its policy), never uses it.
                "Sid": "NoUseByProdsRole",
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": list(KEY_USE_ACTIONS),
                "Resource": "*",
                "Condition": {"ArnEquals": {"aws:PrincipalArn": roles(["prod"])}},
            }
        )
    if boundary in THROUGH_SERVICE_ONLY:
        statements.append(
            {
                "Sid": "OnlyThroughItsService",
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": list(KEY_USE_ACTIONS),
                "Resource": "*",
                "Condition": {
                    "ArnEquals": {"aws:PrincipalArn": roles(KEY_USERS[boundary])},
                    "StringNotEquals": _through_service(boundary, region),
                },
            }
        )
    return statements


def state_key_policy(*, account_id: str, region: str, project: str, boundary: str) -> dict:
    """A state key's policy: the account administers it (AWS's default, which lets IAM policies
    grant its use), and `boundary_denies` holds it to its trust boundary."""
    return _document(
        account_administers(account_id),
        *boundary_denies(account_id=account_id, region=region, project=project, boundary=boundary),
    )


META_OBJECT = f"{STATE_PREFIX}/.pulumi/meta.yaml"


def state_bucket_key_rules(bucket_arn: str, *, project: str, prod_key_arn: str, preview_key_arn: str) -> list[dict]:
    """The state bucket's half of the boundary: each prefix's objects under its boundary's key.

    A preview's objects (its checkpoint, history, backups, locks) only under the previews' key, so
    the preview jobs can read back what they wrote; the previews' key nowhere else, so nothing of
    prod's is ever readable with it; prod's objects only under prod's key. `meta.yaml`, which every
    `pulumi login` reads and holds only the layout version, under S3's own key (SSE-S3), so both
    sides can read it without either key. Both backend URLs name their key (`state_backend_url`).
    """
    previews = state_object_patterns(bucket_arn, project, PR_STACKS)
    key_id = "s3:x-amz-server-side-encryption-aws-kms-key-id"
    return [
        {
            "Sid": "PreviewObjectsUnderThePreviewKey",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": previews,
            "Condition": {"ArnNotEquals": {key_id: preview_key_arn}},
        },
        {
            "Sid": "ThePreviewKeyForPreviewObjectsOnly",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "NotResource": previews,
            "Condition": {"ArnEquals": {key_id: preview_key_arn}},
        },
        {
            "Sid": "ProdObjectsUnderTheProdKey",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": state_object_patterns(bucket_arn, project, PROD_STACK),
            "Condition": {"ArnNotEquals": {key_id: prod_key_arn}},
        },
        {
            "Sid": "MetaUnderSSES3",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": f"{bucket_arn}/{META_OBJECT}",
            "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "AES256"}},
        },
    ]


def _lambda_access(scope: DeployScope, stacks: str) -> list[dict]:
    """The API functions of `stacks`, their execution roles, and passing those roles to Lambda only."""
    functions = f"arn:aws:lambda:{scope.region}:{scope.account_id}:function:{function_name(scope.project, stacks)}"
    roles = f"arn:aws:iam::{scope.account_id}:role/{execution_role_name(scope.project, stacks)}"
    return [
        {
            "Sid": "ApiFunctions",
            "Effect": "Allow",
            "Action": [
                "lambda:CreateFunction",
                "lambda:DeleteFunction",
                "lambda:GetFunction",
                "lambda:GetFunctionConfiguration",
                "lambda:UpdateFunctionCode",
                "lambda:UpdateFunctionConfiguration",
                "lambda:PublishVersion",
                "lambda:ListVersionsByFunction",
                "lambda:CreateAlias",
                "lambda:UpdateAlias",
                "lambda:DeleteAlias",
                "lambda:GetAlias",
                "lambda:ListAliases",
                "lambda:CreateFunctionUrlConfig",
                "lambda:UpdateFunctionUrlConfig",
                "lambda:DeleteFunctionUrlConfig",
                "lambda:GetFunctionUrlConfig",
                "lambda:AddPermission",
                "lambda:RemovePermission",
                "lambda:GetPolicy",
                "lambda:TagResource",
                "lambda:UntagResource",
                "lambda:ListTags",
                "lambda:GetFunctionCodeSigningConfig",
            ],
            # `:*` covers versions and aliases (qualified ARNs).
            "Resource": [functions, f"{functions}:*"],
        },
        {
            "Sid": "ExecutionRoles",
            "Effect": "Allow",
            "Action": [
                "iam:CreateRole",
                "iam:DeleteRole",
                "iam:GetRole",
                "iam:TagRole",
                "iam:UntagRole",
                "iam:UpdateAssumeRolePolicy",
                "iam:ListAttachedRolePolicies",
                "iam:ListRolePolicies",
                "iam:ListInstanceProfilesForRole",
            ],
            "Resource": roles,
        },
        {
            "Sid": "ExecutionRolesGetLogsOnly",
            "Effect": "Allow",
            "Action": ["iam:AttachRolePolicy", "iam:DetachRolePolicy"],
            "Resource": roles,
            "Condition": {"ArnEquals": {"iam:PolicyARN": BASIC_EXECUTION_POLICY}},
        },
        {
            "Sid": "PassExecutionRoleToLambdaOnly",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": roles,
            "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
        },
    ]


def _pre_traffic_invoke(scope: DeployScope) -> dict:
    """prod's pre-traffic check (steps.promote) invokes a published version before `stable` moves
    to it: Invoke on qualified ARNs only (`:N`; IAM cannot tell a version from an alias), never the
    unqualified function, and only prod's. The canary moves `stable`'s routing config with the
    UpdateAlias/GetAlias that ApiFunctions already grants."""
    function = f"arn:aws:lambda:{scope.region}:{scope.account_id}:function:{function_name(scope.project, PROD_STACK)}"
    return {"Sid": "PreTrafficCheck", "Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": f"{function}:*"}


def _identity(*, wildcard_actions: list[str]) -> dict:
    return {
        "Sid": "NoResourceLevelPermissions",
        "Effect": "Allow",
        "Action": sorted(wildcard_actions),
        "Resource": "*",
    }


# What `python -m workflow.lease` does on the lock table: take, renew, read, release an item.
LEASE_ACTIONS = ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]


def lock_table_arn(scope: DeployScope) -> str:
    name = foundation_names(scope.project, scope.account_id)["lock_table"]
    return f"arn:aws:dynamodb:{scope.region}:{scope.account_id}:table/{name}"


def _lease_access(scope: DeployScope, stacks: str) -> dict:
    """The item actions of the lease on the lock table, for the items of `stacks` only.

    `dynamodb:LeadingKeys` is the request's hash key (`LockID`): a role can hold, renew, read and
    release only its own stacks' leases (the preview role: `<project>/preview-pr-*`), never prod's.
    `ForAllValues` is true for an empty set, so the `Null` test requires the key to be present.
    """
    operator = "ForAllValues:StringLike" if "*" in stacks else "ForAllValues:StringEquals"
    return {
        "Sid": "StackLease",
        "Effect": "Allow",
        "Action": LEASE_ACTIONS,
        "Resource": lock_table_arn(scope),
        "Condition": {
            operator: {"dynamodb:LeadingKeys": [lease_key(scope.project, stacks)]},
            "Null": {"dynamodb:LeadingKeys": "false"},
        },
    }


def artifacts_bucket_arn(scope: DeployScope) -> str:
    return f"arn:aws:s3:::{foundation_names(scope.project, scope.account_id)['artifacts_bucket']}"


def _artifact_access(scope: DeployScope, stacks: str) -> list[dict]:
    """Publish and read the builds' outputs (and the branch cleanup's claims) under the prefix of
    `stacks` only (`names.artifact_prefix`); no delete: versions pin what a deploy reads, and the
    bucket's lifecycle expires old ones. Listing is limited to that prefix: it is what tells a
    missing key (404) from a refused one (steps.artifacts asks it). The objects are under the
    artifacts key, which the role uses only as S3 does for this bucket: S3 decrypts an object only
    for a caller it lets read it, so the prefix above is also the key's reach."""
    bucket = artifacts_bucket_arn(scope)
    prefix = artifact_prefix(stacks)
    return [
        {
            "Sid": "ArtifactsList",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket,
            "Condition": {"StringLike": {"s3:prefix": [f"{prefix}/*"]}},
        },
        {
            # The function's code is read with the caller's rights (S3 key and object version).
            "Sid": "ArtifactsObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
            "Resource": f"{bucket}/{prefix}/*",
        },
        {
            # S3's encryption context is the bucket's ARN under an S3 Bucket Key (the bucket's
            # setting, components/secure_bucket.py), the object's ARN without one (Amazon S3 User
            # Guide, "Using server-side encryption with AWS KMS keys": Encryption context).
            "Sid": "ArtifactsKeyThroughS3",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": scope.artifacts_key_arn,
            "Condition": {
                "StringEquals": _through_service("artifacts", scope.region),
                "StringLike": {"kms:EncryptionContext:aws:s3:arn": [bucket, f"{bucket}/{prefix}/*"]},
            },
        },
    ]


def _artifacts_bucket_admin(scope: DeployScope) -> dict:
    """prod owns the artifacts bucket (account foundation): what the provider reads and writes for
    it and its sub-resources, lifecycle included; no DeleteBucket (it is retained)."""
    return {
        "Sid": "FoundationArtifactsBucket",
        "Effect": "Allow",
        "Action": [*_BUCKET_ACTIONS, "s3:PutLifecycleConfiguration"],
        "Resource": artifacts_bucket_arn(scope),
    }


def preview_deploy_policy(scope: DeployScope) -> dict:
    """A PR's deploy role: its own state objects, PR functions and their execution roles only.

    Nothing of `prod` matches: not its state objects, function, alias, execution role, the
    foundation's buckets, keys, table, trail or roles (tests/test_deploy_roles.py proves it).
    """
    return _document(
        *_state_access(scope, PR_STACKS, "preview"),
        *_lambda_access(scope, PR_STACKS),
        *_artifact_access(scope, PR_STACKS),
        _lease_access(scope, PR_STACKS),
        _lease_table_key(scope),
        _identity(wildcard_actions=["sts:GetCallerIdentity"]),
        _no_key_of_another_boundary(scope, "preview"),
    )


def _lease_table_key(scope: DeployScope) -> dict:
    """The lock table's key, only as DynamoDB uses it for that table's items: a role that holds a
    lease reaches the table's data through DynamoDB, and can decrypt nothing else with the key
    (DynamoDB's encryption context names the table; KMS Developer Guide, "How Amazon DynamoDB uses
    AWS KMS")."""
    table = foundation_names(scope.project, scope.account_id)["lock_table"]
    return {
        "Sid": "LeaseTableKeyThroughDynamoDB",
        "Effect": "Allow",
        "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
        "Resource": scope.lease_key_arn,
        "Condition": {
            "StringEquals": {
                **_through_service("leases", scope.region),
                "kms:EncryptionContext:aws:dynamodb:tableName": table,
            }
        },
    }


def _execution_role_removal(scope: DeployScope) -> list[dict]:
    roles = f"arn:aws:iam::{scope.account_id}:role/{execution_role_name(scope.project, PR_STACKS)}"
    return [
        {
            "Sid": "PreviewExecutionRoleRemoval",
            "Effect": "Allow",
            "Action": [
                "iam:DeleteRole",
                "iam:GetRole",
                "iam:ListAttachedRolePolicies",
                "iam:ListInstanceProfilesForRole",
                "iam:ListRolePolicies",
            ],
            "Resource": roles,
        },
        {
            "Sid": "PreviewExecutionRoleDetachLogsOnly",
            "Effect": "Allow",
            "Action": "iam:DetachRolePolicy",
            "Resource": roles,
            "Condition": {"ArnEquals": {"iam:PolicyARN": BASIC_EXECUTION_POLICY}},
        },
    ]


def state_listing_prefixes(scope: DeployScope) -> list[str]:
    """What the sweeper may list in the state bucket (`s3:prefix`): the stacks' names (the checkpoint
    objects of every stack, opened by nobody) and the previews' own directories."""
    root = f"{STATE_PREFIX}/.pulumi"
    return [
        f"{root}/stacks/{scope.project}/*",
        f"{root}/history/{scope.project}/{PR_STACKS}",
        f"{root}/backups/{scope.project}/{PR_STACKS}",
        f"{root}/locks/organization/{scope.project}/{PR_STACKS}",
    ]


def sweeper_policy(scope: DeployScope) -> dict:
    """The sweeper's role (scheduled, on `main`): remove closed PRs' previews by name, nothing else.

    workflow.teardown_preview reads no state and runs no Pulumi: it lists the state bucket under the
    previews' prefixes, deletes their objects (no s3:GetObject, so no state is ever read, and no
    KMS key: deleting an SSE-KMS object needs none), deletes the preview functions (their URL,
    permissions and versions go with them) and execution roles, and holds the stack's lease. No
    create, update, pass or attach action; the lease's key only through DynamoDB.
    """
    functions = f"arn:aws:lambda:{scope.region}:{scope.account_id}:function:{function_name(scope.project, PR_STACKS)}"
    return _document(
        {
            "Sid": "StateListing",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": scope.state_bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": state_listing_prefixes(scope)}},
        },
        {
            "Sid": "PreviewStateRemoval",
            "Effect": "Allow",
            "Action": "s3:DeleteObject",
            "Resource": state_objects(scope, PR_STACKS),
        },
        {
            "Sid": "PreviewFunctionRemoval",
            "Effect": "Allow",
            "Action": ["lambda:DeleteFunction", "lambda:GetFunction"],
            "Resource": functions,
        },
        *_execution_role_removal(scope),
        _lease_access(scope, PR_STACKS),
        _lease_table_key(scope),
        _no_key_of_another_boundary(scope, "sweeper"),
    )


def cleanup_policy(scope: DeployScope) -> dict:
    """cleanup.yml's role: `pulumi destroy` and `stack rm` of a closed PR's own stack, nothing more.

    What the engine and the AWS provider do on destroy: read and write the stack's state objects
    (the backend writes the state after each step, and a lock), decrypt its secrets with the state
    key, call sts:GetCallerIdentity when the provider is configured, and delete the preview's
    function URL, permissions, function, policy attachment and execution role (the provider's
    Delete reads the function's policy and the role's attachments and profiles as it goes). No
    create, update, pass or attach action.
    """
    functions = f"arn:aws:lambda:{scope.region}:{scope.account_id}:function:{function_name(scope.project, PR_STACKS)}"
    return _document(
        *_state_access(scope, PR_STACKS, "preview"),
        {
            "Sid": "PreviewFunctionRemoval",
            "Effect": "Allow",
            "Action": [
                "lambda:DeleteFunction",
                "lambda:DeleteFunctionUrlConfig",
                "lambda:GetFunction",
                "lambda:GetFunctionConfiguration",
                "lambda:GetFunctionUrlConfig",
                "lambda:GetPolicy",
                "lambda:RemovePermission",
            ],
            "Resource": [functions, f"{functions}:*"],
        },
        *_execution_role_removal(scope),
        _lease_access(scope, PR_STACKS),
        _lease_table_key(scope),
        _identity(wildcard_actions=["sts:GetCallerIdentity"]),
        _no_key_of_another_boundary(scope, "cleanup"),
    )


# What the AWS provider reads on refresh/update of an `aws.s3.Bucket` and its sub-resources, and
# writes for the sub-resources the program declares. No DeleteBucket: the buckets are retained.
_BUCKET_ACTIONS = [
    "s3:CreateBucket",
    "s3:ListBucket",
    "s3:GetBucketLocation",
    "s3:GetBucketAcl",
    "s3:GetBucketCORS",
    "s3:GetBucketWebsite",
    "s3:GetBucketVersioning",
    "s3:GetAccelerateConfiguration",
    "s3:GetBucketRequestPayment",
    "s3:GetBucketLogging",
    "s3:GetLifecycleConfiguration",
    "s3:GetReplicationConfiguration",
    "s3:GetEncryptionConfiguration",
    "s3:GetBucketObjectLockConfiguration",
    "s3:GetBucketTagging",
    "s3:GetBucketPolicy",
    "s3:GetBucketOwnershipControls",
    "s3:GetBucketPublicAccessBlock",
    "s3:PutBucketTagging",
    "s3:PutBucketVersioning",
    "s3:PutEncryptionConfiguration",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketOwnershipControls",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
]


def prod_deploy_policy(scope: DeployScope) -> dict:
    """The prod deploy role: every stack's state, every API function, and the foundation prod owns.

    Written action by action for the resource types the program declares (create, the reads the
    AWS provider makes on refresh, update); no delete where the resource is protected and
    retained. Keys are matched by the project tag the provider's default tags put on them, since a
    new key's ARN is not known before it exists. "*" resources only for `WILDCARD_EXCEPTIONS`.
    """
    account, region, project = scope.account_id, scope.region, scope.project
    names = foundation_names(project, account)
    trail = trail_arn(region, account, names["trail"])
    log_group = log_group_arn(region, account, names["trail_log_group"])
    iam = f"arn:aws:iam::{account}"
    foundation_roles = [
        *(f"{iam}:role/{deploy_role_name(project, role)}" for role in DEPLOY_ROLES),
        f"{iam}:role/{names['trail_logs_role']}",
    ]
    # prod's own stack only: the PR stacks' state and functions are the preview role's, so that a
    # deploy from main never needs, and never has, the power to change a preview.
    return _document(
        *_state_access(scope, PROD_STACK, "prod"),
        *_lambda_access(scope, PROD_STACK),
        *_artifact_access(scope, PROD_STACK),
        _artifacts_bucket_admin(scope),
        _pre_traffic_invoke(scope),
        _lease_access(scope, PROD_STACK),
        _lease_table_key(scope),
        {
            # Putting the lock table under its key: DynamoDB checks the key and grants itself its
            # use on the caller's behalf (CreateTable/UpdateTable with a customer managed key).
            "Sid": "LeaseTableKeyForTheTable",
            "Effect": "Allow",
            "Action": ["kms:CreateGrant", "kms:DescribeKey"],
            "Resource": scope.lease_key_arn,
            "Condition": {"StringEquals": _through_service("leases", region)},
        },
        _no_key_of_another_boundary(scope, "prod"),
        {
            "Sid": "FoundationBuckets",
            "Effect": "Allow",
            "Action": _BUCKET_ACTIONS,
            "Resource": [f"arn:aws:s3:::{names['state_bucket']}", f"arn:aws:s3:::{names['trail_bucket']}"],
        },
        {
            "Sid": "FoundationLockTable",
            "Effect": "Allow",
            "Action": [
                "dynamodb:CreateTable",
                "dynamodb:DescribeTable",
                "dynamodb:UpdateTable",
                "dynamodb:DescribeContinuousBackups",
                "dynamodb:UpdateContinuousBackups",
                "dynamodb:DescribeTimeToLive",
                "dynamodb:ListTagsOfResource",
                "dynamodb:TagResource",
                "dynamodb:UntagResource",
            ],
            "Resource": f"arn:aws:dynamodb:{region}:{account}:table/{names['lock_table']}",
        },
        {
            "Sid": "FoundationIdentityProvider",
            "Effect": "Allow",
            "Action": [
                "iam:CreateOpenIDConnectProvider",
                "iam:GetOpenIDConnectProvider",
                "iam:UpdateOpenIDConnectProviderThumbprint",
                "iam:AddClientIDToOpenIDConnectProvider",
                "iam:RemoveClientIDFromOpenIDConnectProvider",
                "iam:TagOpenIDConnectProvider",
                "iam:UntagOpenIDConnectProvider",
            ],
            "Resource": f"{iam}:oidc-provider/{GITHUB_OIDC_HOST}",
        },
        {
            "Sid": "FoundationRoles",
            "Effect": "Allow",
            "Action": [
                "iam:CreateRole",
                "iam:GetRole",
                "iam:UpdateRole",
                "iam:UpdateAssumeRolePolicy",
                "iam:TagRole",
                "iam:UntagRole",
                "iam:PutRolePolicy",
                "iam:GetRolePolicy",
                "iam:DeleteRolePolicy",
                "iam:ListRolePolicies",
                "iam:ListAttachedRolePolicies",
                "iam:ListInstanceProfilesForRole",
            ],
            "Resource": foundation_roles,
        },
        {
            "Sid": "PassTrailLogsRoleToCloudTrailOnly",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": f"{iam}:role/{names['trail_logs_role']}",
            "Condition": {"StringEquals": {"iam:PassedToService": "cloudtrail.amazonaws.com"}},
        },
        {
            # CloudTrail read (status, selectors, tags) and the updates the program makes. No
            # DeleteTrail or StopLogging: the trail is protected and retained.
            "Sid": "FoundationTrail",
            "Effect": "Allow",
            "Action": [
                "cloudtrail:CreateTrail",
                "cloudtrail:UpdateTrail",
                "cloudtrail:StartLogging",
                "cloudtrail:GetTrail",
                "cloudtrail:GetTrailStatus",
                "cloudtrail:GetEventSelectors",
                "cloudtrail:GetInsightSelectors",
                "cloudtrail:ListTags",
                "cloudtrail:AddTags",
                "cloudtrail:RemoveTags",
            ],
            "Resource": trail,
        },
        {
            "Sid": "FoundationTrailLogs",
            "Effect": "Allow",
            "Action": [
                "logs:CreateLogGroup",
                "logs:PutRetentionPolicy",
                "logs:AssociateKmsKey",
                "logs:ListTagsForResource",
                "logs:ListTagsLogGroup",
                "logs:TagResource",
                "logs:UntagResource",
                "logs:TagLogGroup",
                "logs:PutMetricFilter",
                "logs:DeleteMetricFilter",
                "logs:DescribeMetricFilters",
            ],
            # logs:DescribeLogGroups takes no resource: it is granted on "*" (WILDCARD_EXCEPTIONS).
            "Resource": [log_group, f"{log_group}:*"],
        },
        {
            "Sid": "FoundationAlarms",
            "Effect": "Allow",
            "Action": [
                "cloudwatch:PutMetricAlarm",
                "cloudwatch:DescribeAlarms",
                "cloudwatch:DeleteAlarms",
                "cloudwatch:ListTagsForResource",
                "cloudwatch:TagResource",
                "cloudwatch:UntagResource",
            ],
            "Resource": f"arn:aws:cloudwatch:{region}:{account}:alarm:{names['alarm_prefix']}*",
        },
        {
            "Sid": "FoundationAlertTopic",
            "Effect": "Allow",
            "Action": [
                "sns:CreateTopic",
                "sns:DeleteTopic",
                "sns:GetTopicAttributes",
                "sns:SetTopicAttributes",
                "sns:ListTagsForResource",
                "sns:TagResource",
                "sns:UntagResource",
                "sns:Subscribe",
                "sns:ListSubscriptionsByTopic",
            ],
            # The subscription actions (Unsubscribe, Get/SetSubscriptionAttributes) take no resource:
            # they are granted on "*" (WILDCARD_EXCEPTIONS); a subscription ARN here matched nothing.
            "Resource": f"arn:aws:sns:{region}:{account}:{names['alert_topic']}",
        },
        {
            # Keys get their ARN at creation: they are matched by the project tag the provider's
            # default tags set on them. No ScheduleKeyDeletion: every key is retained.
            "Sid": "FoundationKeys",
            "Effect": "Allow",
            "Action": [
                "kms:DescribeKey",
                "kms:GetKeyPolicy",
                "kms:GetKeyRotationStatus",
                "kms:EnableKeyRotation",
                "kms:PutKeyPolicy",
                "kms:UpdateKeyDescription",
                "kms:ListResourceTags",
                "kms:TagResource",
                "kms:UntagResource",
            ],
            "Resource": f"arn:aws:kms:{region}:{account}:key/*",
            "Condition": {"StringEquals": {"aws:ResourceTag/project": project}},
        },
        {
            # AWS authorizes an alias change on the alias and on its target key, both (Service
            # Authorization Reference, AWS KMS: CreateAlias/UpdateAlias/DeleteAlias need `alias*`
            # and `key*`). The aliases are the boundaries' keys', so the keys are named, not matched.
            "Sid": "FoundationKeyAliases",
            "Effect": "Allow",
            "Action": ["kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias"],
            "Resource": [
                *(f"arn:aws:kms:{region}:{account}:{names[alias]}" for alias in BOUNDARY_KEY_ALIASES.values()),
                *(scope.key_of(boundary) for boundary in BOUNDARY_KEY_ALIASES),
            ],
        },
        _identity(wildcard_actions=list(WILDCARD_EXCEPTIONS)),
    )


# Each deploy-side trust boundary's key, by its alias's name in `foundation_names`.
BOUNDARY_KEY_ALIASES = {
    "prod": "state_key_alias",
    "preview": "preview_state_key_alias",
    "leases": "lease_key_alias",
    "artifacts": "artifacts_key_alias",
}


# Each role's permission policy, by DEPLOY_ROLES name.
ROLE_POLICIES: dict[str, Callable[[DeployScope], dict]] = {
    "prod": lambda scope: prod_deploy_policy(scope),
    "preview": lambda scope: preview_deploy_policy(scope),
    "sweeper": lambda scope: sweeper_policy(scope),
    "cleanup": lambda scope: cleanup_policy(scope),
}
