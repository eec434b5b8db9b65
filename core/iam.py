"""The IAM facts the program writes into its policies and the policy pack checks them against.

One table each: the program grants exactly these (components/aws_policies.py), the pack refuses
anything else (policy/rules.py).
"""

# GitHub Actions' OIDC issuer, and the audience AWS's STS expects (docs/facts.md, "GitHub OIDC trust").
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
GITHUB_OIDC_URL = f"https://{GITHUB_OIDC_HOST}"
STS_AUDIENCE = "sts.amazonaws.com"
# What follows `repo:OWNER/REPO:` in the `sub` of a job that names no environment: a push to the
# branch prod deploys from, and any pull_request event (docs/facts.md, "GitHub OIDC trust").
DEPLOY_BRANCH = "main"
DEPLOY_BRANCH_SUBJECT = f"ref:refs/heads/{DEPLOY_BRANCH}"
PULL_REQUEST_SUBJECT = "pull_request"

# AWS-managed: CloudWatch Logs for the function's own log group. The only policy a deploy role
# may attach to an execution role, so a preview cannot give its function (and so itself) more.
BASIC_EXECUTION_POLICY = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
# The only AWS-managed policies a role may carry, and why.
ALLOWED_MANAGED_POLICIES = {
    BASIC_EXECUTION_POLICY: "the API function's own log group and streams: CloudWatch Logs writes only",
}

# Actions granted on Resource "*" and why: nothing narrower exists for them. "No resource-level
# permissions" is the Service Authorization Reference's empty resource-type column (also in
# parliament's bundled iam_definition.json): a statement naming an ARN for them grants nothing.
WILDCARD_EXCEPTIONS = {
    "kms:CreateKey": "a key's ARN is assigned by AWS at creation; CreateKey has no resource to name",
    "kms:ListAliases": "a list action without resource-level permissions",
    "cloudtrail:DescribeTrails": "a list action without resource-level permissions",
    "cloudtrail:LookupEvents": "no resource-level permissions (Service Authorization Reference, AWS CloudTrail); the audit report reads the event history with it",
    "sts:GetCallerIdentity": "takes no resource (the provider calls it to learn the account)",
    "logs:DescribeLogGroups": "no resource-level permissions (Service Authorization Reference, CloudWatch Logs)",
    "sns:GetSubscriptionAttributes": "no resource-level permissions (Service Authorization Reference, Amazon SNS)",
    "sns:SetSubscriptionAttributes": "no resource-level permissions (Service Authorization Reference, Amazon SNS)",
    "sns:Unsubscribe": "no resource-level permissions (Service Authorization Reference, Amazon SNS)",
}


# Every KMS key names the trust boundary it serves (a tag the pack reads), and each boundary's key
# is used by these deploy roles only (core/names.py DEPLOY_ROLES): prod's state and secrets by the
# prod role; the previews' by the roles a pull request's jobs assume; the lock table's by every role
# that holds a lease, and only through DynamoDB; the artifacts bucket's by the roles that build
# (prod and the previews), only through S3, where each role's own bucket prefix is what it reaches
# (an object's key is decrypted only for a caller S3 lets read it). The audit trail's key is no
# deploy role's.
KEY_BOUNDARY_TAG = "trust-boundary"
KEY_USERS = {
    "prod": ("prod",),
    "preview": ("preview", "cleanup"),
    "leases": ("prod", "preview", "sweeper", "cleanup"),
    "artifacts": ("prod", "preview"),
    "audit": (),
}
# The boundaries whose key its users may use only through one service (`kms:ViaService`
# <service>.<region>.amazonaws.com), never directly.
THROUGH_SERVICE_ONLY = {"leases": "dynamodb", "artifacts": "s3"}
# The boundaries whose key a deploy role that is not its user also denies itself in its own policy
# (the key's policy denies it too): the state keys and the artifacts key, the ones that hold data.
DENIED_BY_OUTSIDERS = ("prod", "preview", "artifacts")
# What using a key means (not administering it): the actions a key policy and a role's policy deny
# across a boundary. prod's role administers every key (PutKeyPolicy, rotation, tags), so a deny of
# `kms:*` would lock it out of the previews' key; a role of the pull requests' side administers
# none, so the keys deny it everything.
KEY_USE_ACTIONS = (
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:GenerateDataKey*",
    "kms:ReEncrypt*",
    "kms:CreateGrant",
)
# The roles a pull request's jobs assume, or that act on what a pull request wrote.
PR_SIDE_ROLES = ("preview", "cleanup", "sweeper")
