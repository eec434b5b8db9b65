"""IAM, KMS and bucket policy documents as pure functions of names and ARNs.

Kept apart from the resources so that tests and the policy pack can read the exact documents
without Pulumi. Wildcards appear only where AWS needs them, and each such place says why.
"""

from __future__ import annotations

from dataclasses import dataclass

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
STS_AUDIENCE = "sts.amazonaws.com"
# `pulumi login s3://<state bucket>/pulumi`: every stack's objects live under this prefix.
STATE_PREFIX = "pulumi"


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


def trail_key_policy(*, account_id: str, trail: str) -> dict:
    """The trail's KMS key: the account administers it, CloudTrail encrypts with it for this trail only.

    A key policy's `Resource` is always "*" (it means "this key"): AWS requires that form.
    """
    return _document(
        {
            "Sid": "AccountAdministers",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": "CloudTrailEncrypts",
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": ["kms:GenerateDataKey*", "kms:DescribeKey"],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceArn": trail}},
        },
    )


def lambda_trust_policy() -> dict:
    return _document(
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    )


def github_subjects(prefix: str, role: str, environment: str = "") -> list[str]:
    """Exact OIDC subjects a deploy role trusts.

    prod: `main` (and its GitHub environment, if one is configured); preview: every pull-request
    event (and the sweeper's environment, whose scheduled jobs destroy closed PRs' stacks).
    """
    if role == "prod":
        subjects = [f"{prefix}:ref:refs/heads/main"]
    elif role == "preview":
        subjects = [f"{prefix}:pull_request"]
    else:
        raise ValueError(f"unknown deploy role {role!r}")
    if environment:
        subjects.append(f"{prefix}:environment:{environment}")
    return subjects


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


def _state_access(scope: DeployScope, stacks: str) -> list[dict]:
    """Read and write the DIY backend's objects of `stacks` (a stack name or a `prefix*` pattern)."""
    bucket = scope.state_bucket_arn
    root = f"{bucket}/{STATE_PREFIX}/.pulumi"
    # The DIY backend's project-scoped layout (organization is always `organization` there):
    # stacks/organization/<project>/<stack>.json(.bak|.gz) and a folder per stack for the rest.
    scoped = f"organization/{scope.project}"
    stack_objects = [f"{root}/stacks/{scoped}/{stacks}.json*"] + [
        f"{root}/{area}/{scoped}/{stacks}/*" for area in ("locks", "history", "backups")
    ]
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
            "Resource": f"{root}/meta.yaml",
        },
        {
            "Sid": "StateObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": stack_objects,
        },
        {
            "Sid": "StateKey",
            "Effect": "Allow",
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
            "Resource": scope.state_key_arn,
        },
    ]


def _lambda_access(scope: DeployScope, function_pattern: str, role_pattern: str) -> list[dict]:
    functions = f"arn:aws:lambda:{scope.region}:{scope.account_id}:function:{function_pattern}"
    roles = f"arn:aws:iam::{scope.account_id}:role/{role_pattern}"
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
                "iam:AttachRolePolicy",
                "iam:DetachRolePolicy",
                "iam:ListAttachedRolePolicies",
                "iam:ListRolePolicies",
                "iam:ListInstanceProfilesForRole",
            ],
            "Resource": roles,
        },
        {
            "Sid": "PassExecutionRoleToLambdaOnly",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": roles,
            "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
        },
    ]


def preview_deploy_policy(scope: DeployScope) -> dict:
    """A PR's deploy role: its own state objects, preview functions and their execution roles only."""
    previews = f"{scope.project}-api-preview*"
    return _document(
        *_state_access(scope, "preview-pr-*"),
        *_lambda_access(scope, previews, f"{previews}-exec"),
    )


def prod_deploy_policy(scope: DeployScope) -> dict:
    """The prod deploy role: every stack's state (prod owns the foundation) and the project's resources.

    Creating a KMS key or a CloudTrail trail cannot be scoped to an ARN that does not exist yet:
    those few actions use "*" and are named in `WILDCARD_EXCEPTIONS`.
    """
    account, region, project = scope.account_id, scope.region, scope.project
    return _document(
        *_state_access(scope, "*"),
        *_lambda_access(scope, f"{project}-api-*", f"{project}-*"),
        {
            "Sid": "Foundation",
            "Effect": "Allow",
            "Action": [
                "s3:*",
            ],
            "Resource": [
                f"arn:aws:s3:::{project}-*",
                f"arn:aws:s3:::{project}-*/*",
            ],
        },
        {
            "Sid": "FoundationTables",
            "Effect": "Allow",
            "Action": ["dynamodb:*"],
            "Resource": f"arn:aws:dynamodb:{region}:{account}:table/{project}-*",
        },
        {
            "Sid": "FoundationIdentity",
            "Effect": "Allow",
            "Action": [
                "iam:CreateOpenIDConnectProvider",
                "iam:DeleteOpenIDConnectProvider",
                "iam:GetOpenIDConnectProvider",
                "iam:UpdateOpenIDConnectProviderThumbprint",
                "iam:AddClientIDToOpenIDConnectProvider",
                "iam:RemoveClientIDFromOpenIDConnectProvider",
                "iam:TagOpenIDConnectProvider",
                "iam:PutRolePolicy",
                "iam:GetRolePolicy",
                "iam:DeleteRolePolicy",
            ],
            "Resource": [
                f"arn:aws:iam::{account}:oidc-provider/{GITHUB_OIDC_HOST}",
                f"arn:aws:iam::{account}:role/{project}-*",
            ],
        },
        {
            "Sid": "FoundationTrail",
            "Effect": "Allow",
            "Action": ["cloudtrail:*"],
            "Resource": f"arn:aws:cloudtrail:{region}:{account}:trail/{project}-*",
        },
        {
            "Sid": "FoundationKeys",
            "Effect": "Allow",
            "Action": [
                "kms:DescribeKey",
                "kms:GetKeyPolicy",
                "kms:GetKeyRotationStatus",
                "kms:EnableKeyRotation",
                "kms:PutKeyPolicy",
                "kms:ListResourceTags",
                "kms:TagResource",
                "kms:ScheduleKeyDeletion",
                "kms:CreateAlias",
                "kms:UpdateAlias",
                "kms:DeleteAlias",
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:GenerateDataKey",
            ],
            "Resource": [
                f"arn:aws:kms:{region}:{account}:key/*",
                f"arn:aws:kms:{region}:{account}:alias/{project}-*",
            ],
        },
        {
            "Sid": "CreateBeforeArnExists",
            "Effect": "Allow",
            "Action": sorted(WILDCARD_EXCEPTIONS),
            "Resource": "*",
        },
    )


WILDCARD_EXCEPTIONS = {
    # A key's ARN is chosen by AWS at creation; there is nothing narrower to name.
    "kms:CreateKey": "key ARN is assigned by AWS at creation",
    "kms:ListAliases": "list actions have no resource-level permissions",
    "cloudtrail:DescribeTrails": "list actions have no resource-level permissions",
    "sts:GetCallerIdentity": "takes no resource",
}
