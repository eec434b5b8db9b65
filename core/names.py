"""Every physical name an outside system sees, defined once.

The resources are created with these names and the deploy roles' policies are written against
them, so the two can never drift apart (a drift would be an AccessDenied at deploy time). A name
is derived from the project and the stack, so two stacks never collide.
"""

from __future__ import annotations

import re

PROD_STACK = "prod"
# The template every PR stack runs on (Pulumi.preview.yaml); deployed by hand, if ever.
PREVIEW_STACK = "preview"
# The IAM pattern every PR stack's name matches; the preview role is scoped to it.
PR_STACKS = "preview-pr-*"
# A pull request's number as a stack name, a schema name and PostgreSQL's naming rule carry it
# (workflow/preview_database.py writes it into SQL: `pr_schema_pattern`).
PR_NUMBER_PATTERN = "[1-9][0-9]{0,6}"
# Stack names, matched whole (`fullmatch`: a `$` would also accept a trailing newline). PR_STACK
# takes any suffix so that a bad number gets its own message; SAFE_STACK_NAME is what is valid.
PR_STACK = re.compile(r"preview-pr-(?P<number>.*)")
PR_NUMBER = re.compile(PR_NUMBER_PATTERN)
SAFE_STACK_NAME = re.compile(f"{PROD_STACK}|{PREVIEW_STACK}|preview-pr-{PR_NUMBER_PATTERN}")
# Any name the Pulumi CLI takes for a stack (alphanumerics, '-', '_', '.'; at most 100): a tool that
# lists every settings problem (a bad PR number among them) takes these, and no control character.
STACK_NAME_CHARACTERS = re.compile(r"[A-Za-z0-9_.-]{1,100}")
# A PR stack's schema (`pr_schema`), the only kind a step may drop.
PR_SCHEMA = re.compile(f"[a-z_][a-z0-9_]*_pr_{PR_NUMBER_PATTERN}")
# A data-loss digest as steps.migrate prints it when it refuses; `approveDataLoss` holds one.
DATA_LOSS_DIGEST_LENGTH = 16
DATA_LOSS_DIGEST = re.compile(f"[0-9a-f]{{{DATA_LOSS_DIGEST_LENGTH}}}")
# The DIY backend's prefix inside the state bucket (`pulumi login s3://BUCKET/<prefix>`).
STATE_PREFIX = "pulumi"
# The lock table's hash key: one item per stack's lease (workflow/lease.py, `lease_key`).
LEASE_KEY_ATTRIBUTE = "LockID"
# prod's alias: what its function URL serves and what a deploy moves once the new version passed.
ALIAS_NAME = "stable"
# The Pages project's production branch: prod deploys there; every other branch is a preview.
PAGES_PRODUCTION_BRANCH = "main"
# Where the API's bundle is built, in `apiDir` (zipped and published by steps.build_lambda).
API_BUNDLE_DIR = "dist"
# The roles GitHub's OIDC token assumes, `<project>-deploy-<role>` (`deploy_role_name`): prod's
# deploy, the previews' deploy, and the two that only remove previews (the sweeper on main, cleanup
# in a closed PR's context).
DEPLOY_ROLES = ("prod", "preview", "sweeper", "cleanup")
# The roles that only remove previews: no create or update (the pack's teardown-roles-remove-only).
TEARDOWN_ROLES = ("sweeper", "cleanup")
DEPLOY_ROLE_NAME = re.compile(rf"(?P<project>.+)-deploy-(?P<role>{'|'.join(DEPLOY_ROLES)})")
# Where the PR stacks' build outputs live in the artifacts bucket (`artifact_prefix`): one
# top-level prefix, so that one lifecycle rule expires them and one IAM pattern scopes the
# preview role to them.
PREVIEW_ARTIFACTS = "previews"
# A stack's prefix in the artifacts bucket, matched whole (`artifact_prefix` makes them).
ARTIFACT_PREFIX = re.compile(rf"{PROD_STACK}|{PREVIEW_STACK}|{PREVIEW_ARTIFACTS}/preview-pr-{PR_NUMBER_PATTERN}")
# An S3 bucket name (lower case, digits, '.', '-'; 3-63), matched whole.
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def pages_branch(stack: str) -> str:
    """The Pages branch a stack deploys to: `main` (prod, the production branch), `preview`, `pr-<N>`."""
    match = PR_STACK.fullmatch(stack)
    if match:
        return f"pr-{match['number']}"
    return PAGES_PRODUCTION_BRANCH if stack == PROD_STACK else stack


def artifact_prefix(stack: str) -> str:
    """The key prefix of a stack's build outputs in the artifacts bucket: `prod`, or
    `previews/<stack>` for a PR stack (`stack` may be a pattern such as PR_STACKS)."""
    return f"{PREVIEW_ARTIFACTS}/{stack}" if PR_STACK.fullmatch(stack) else stack


def pr_schema(base_schema: str, pr_number: int) -> str:
    """The schema of PR stack N on the shared database."""
    return f"{base_schema}_pr_{pr_number}"


def pr_schema_pattern(base_schema: str) -> str:
    """Every PR schema of `base_schema`, as a PostgreSQL regular expression (the base is a plain
    identifier: no character in it means anything to a regular expression)."""
    return f"^{base_schema}_pr_{PR_NUMBER_PATTERN}$"


def function_name(project: str, stack: str) -> str:
    """The API function of a stack (`stack` may be a pattern such as PR_STACKS)."""
    return f"{project}-api-{stack}"


def execution_role_name(project: str, stack: str) -> str:
    """The API function's execution role."""
    return f"{function_name(project, stack)}-exec"


def deploy_role_name(project: str, role: str) -> str:
    """The role GitHub's OIDC token assumes: one of DEPLOY_ROLES."""
    if role not in DEPLOY_ROLES:
        raise ValueError(f"unknown deploy role {role!r}")
    return f"{project}-deploy-{role}"


def deploy_role_of(role_name: str) -> str:
    """Which deploy role a role name is (one of DEPLOY_ROLES), or "" for any other role."""
    match = DEPLOY_ROLE_NAME.fullmatch(role_name)
    return match["role"] if match else ""


def lease_key(project: str, stack: str) -> str:
    """The lock table item (hash key `LockID`) of a stack's lease (workflow/lease.py); `stack` may be
    a pattern such as PR_STACKS, which the preview role's `dynamodb:LeadingKeys` condition uses."""
    return f"{project}/{stack}"


def foundation_names(project: str, account_id: str) -> dict[str, str]:
    """The account-level resources prod owns (StateBackend, AuditTrail, GithubOidc).

    Bucket names are global: the account id keeps two accounts from colliding.
    """
    return {
        "state_bucket": f"{project}-pulumi-state-{account_id}",
        "artifacts_bucket": f"{project}-artifacts-{account_id}",
        "trail_bucket": f"{project}-audit-{account_id}",
        "lock_table": f"{project}-pulumi-locks",
        "trail": f"{project}-audit",
        "trail_log_group": f"/aws/cloudtrail/{project}-audit",
        "trail_logs_role": f"{project}-audit-cloudwatch",
        "alert_topic": f"{project}-alerts",
        "alarm_prefix": f"{project}-audit-",
        # One key per trust boundary (core/iam.py KEY_USERS): prod's secrets provider and state
        # objects; the previews'; the lock table's, used by every deploy role through DynamoDB only;
        # the artifacts bucket's, used by the building roles through S3 only.
        "state_key_alias": f"alias/{project}-pulumi-state",
        "preview_state_key_alias": f"alias/{project}-pulumi-preview",
        "lease_key_alias": f"alias/{project}-pulumi-leases",
        "artifacts_key_alias": f"alias/{project}-artifacts",
    }


def state_backend_url(bucket: str, region: str, key_arn: str) -> str:
    """The `pulumi login` URL that writes every object (state, history, backups, locks) under `key_arn`.

    gocloud.dev's s3blob (v0.46, the CLI's DIY backend) takes `ssetype` and `kmskeyid` from the URL
    and sends them on every write and copy; S3's bucket policy can then match the key's ARN
    (`s3:x-amz-server-side-encryption-aws-kms-key-id`), which S3 compares as the ARN the request names.
    """
    return f"s3://{bucket}/{STATE_PREFIX}?region={region}&ssetype=aws:kms&kmskeyid={key_arn}"


def secrets_provider_url(alias: str, region: str) -> str:
    """A stack's `awskms://` secrets provider for a key alias (`alias/...`)."""
    return f"awskms://{alias}?region={region}"
