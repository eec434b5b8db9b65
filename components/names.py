"""Every physical name an outside system sees, defined once.

The resources are created with these names and the deploy roles' policies are written against
them, so the two can never drift apart (a drift would be an AccessDenied at deploy time). A name
is derived from the project and the stack, so two stacks never collide.
"""

from __future__ import annotations

PROD_STACK = "prod"
# The pattern every PR stack's name matches; the preview role is scoped to it.
PR_STACKS = "preview-pr-*"
PR_STACK_PREFIX = "preview-pr-"
# The DIY backend's prefix inside the state bucket (`pulumi login s3://BUCKET/<prefix>`).
STATE_PREFIX = "pulumi"


def function_name(project: str, stack: str) -> str:
    """The API function of a stack (`stack` may be a pattern such as PR_STACKS)."""
    return f"{project}-api-{stack}"


def execution_role_name(project: str, stack: str) -> str:
    """The API function's execution role."""
    return f"{function_name(project, stack)}-exec"


def deploy_role_name(project: str, role: str) -> str:
    """The role GitHub's OIDC token assumes: `prod` or `preview`."""
    return f"{project}-deploy-{role}"


def foundation_names(project: str, account_id: str) -> dict[str, str]:
    """The account-level resources prod owns (StateBackend, AuditTrail, GithubOidc).

    Bucket names are global: the account id keeps two accounts from colliding.
    """
    return {
        "state_bucket": f"{project}-pulumi-state-{account_id}",
        "trail_bucket": f"{project}-audit-{account_id}",
        "lock_table": f"{project}-pulumi-locks",
        "trail": f"{project}-audit",
        "trail_log_group": f"/aws/cloudtrail/{project}-audit",
        "trail_logs_role": f"{project}-audit-cloudwatch",
        "alert_topic": f"{project}-alerts",
        "alarm_prefix": f"{project}-audit-",
        "state_key_alias": f"alias/{project}-pulumi-state",
    }
