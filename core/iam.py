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
