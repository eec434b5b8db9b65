"""Every IAM document the program declares, for every stack, linted offline by parliament
(duo-labs' IAM linter, with its bundled copy of AWS's Service Authorization Reference).

A finding means AWS would refuse the document, or silently grant less (or more) than it says:
an action granted on a resource type it does not take, a condition key the action never carries.
The only findings accepted are the allow-list below, each with the reason it is not a defect.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from parliament import analyze_policy_string

STACKS = ["prod", "preview", "preview-pr-7"]

KEY_TYPES = {"aws:kms/key:Key", "aws:kms/keyPolicy:KeyPolicy"}
RESOURCE_POLICY_TYPES = {"aws:s3/bucketPolicy:BucketPolicy", "aws:sns/topicPolicy:TopicPolicy", "aws:sns/topic:Topic"}


@dataclass(frozen=True)
class Document:
    stack: str
    resource: str
    kind: str  # trust | identity | key | resource
    text: str


@dataclass(frozen=True)
class Finding:
    document: Document
    issue: str
    detail: str

    def __str__(self) -> str:
        return f"{self.document.stack}/{self.document.resource} ({self.document.kind}): {self.issue} {self.detail}"


# (issue, document kind, text the finding's detail contains) -> why it is not a defect.
ALLOWED = {
    ("MALFORMED", "trust", "neither Resource nor NotResource"): (
        "a trust policy names no Resource: the role it is attached to is the resource"
    ),
    ("UNKNOWN_FEDERATION_SOURCE", "trust", ":oidc-provider/token.actions.githubusercontent.com"): (
        "parliament knows no GitHub Actions OIDC provider; the trust itself is checked by the policy pack"
    ),
    ("RESOURCE_STAR", "key", ""): "in a key policy `Resource: *` means the key itself, the only form AWS accepts",
    ("RESOURCE_POLICY_PRIVILEGE_ESCALATION", "identity", "s3:PutBucketPolicy"): (
        "the prod deploy role manages the state and audit buckets' policies, so it needs PutBucketPolicy on "
        "them; S3 has no condition key that limits what a bucket policy may grant"
    ),
    ("RESOURCE_POLICY_PRIVILEGE_ESCALATION", "identity", "s3:PutLifecycleConfiguration"): (
        "the prod deploy role writes the artifacts bucket's lifecycle (previews' outputs and replaced versions "
        "expire), which can expire objects it may not delete: what may expire is the program's own rule "
        "(components/artifacts_bucket.py), and every deploy reads a pinned version or fails with one line"
    ),
}


def _kind(resource_type: str, key: str) -> str:
    if key == "assumeRolePolicy":
        return "trust"
    if resource_type in KEY_TYPES:
        return "key"
    if resource_type in RESOURCE_POLICY_TYPES:
        return "resource"
    return "identity"


def _documents_in(value, key: str = "") -> Iterator[tuple[str, str]]:
    """(input key, JSON text) of every policy document anywhere in a resource's inputs."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return
        if isinstance(parsed, dict) and "Statement" in parsed:
            yield key, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _documents_in(v, k if not key else key)
    elif isinstance(value, list):
        for v in value:
            yield from _documents_in(v, key)


def documents(recording) -> list[Document]:
    found = []
    for resource in recording.resources.values():
        for key, text in _documents_in(resource.inputs):
            found.append(Document(recording.stack, resource.name, _kind(resource.type, key), text))
    return found


def lint(document: Document) -> list[Finding]:
    policy = analyze_policy_string(document.text, include_community_auditors=False)
    return [Finding(document, f.issue, json.dumps(f.detail, default=str)) for f in policy.findings]


def allowed_by(finding: Finding) -> tuple[str, str, str] | None:
    for entry in ALLOWED:
        issue, kind, detail = entry
        if finding.issue == issue and finding.document.kind == kind and detail in finding.detail:
            return entry
    return None


@pytest.fixture(scope="module")
def findings(recorded) -> dict[str, list[Finding]]:
    return {stack: [f for d in documents(recorded(stack)) for f in lint(d)] for stack in STACKS}


def test_every_stack_declares_documents_to_lint(recorded):
    kinds = {stack: {d.kind for d in documents(recorded(stack))} for stack in STACKS}
    assert kinds["prod"] == {"trust", "identity", "key", "resource"}
    assert {"trust"} <= kinds["preview-pr-7"]


@pytest.mark.parametrize("stack", STACKS)
def test_no_finding_beyond_the_allow_list(findings, stack):
    assert [str(f) for f in findings[stack] if allowed_by(f) is None] == []


def test_every_allow_list_entry_is_still_needed(findings):
    used = {allowed_by(f) for stack in STACKS for f in findings[stack]}
    assert set(ALLOWED) - used == set()


@pytest.mark.parametrize(
    ("statement", "issue"),
    [
        # What the prod role had: an alias change granted on the alias only (AWS also checks the key).
        ({"Action": "kms:CreateAlias", "Resource": "arn:aws:kms:us-east-1:123456789012:alias/x"}, "RESOURCE_MISMATCH"),
        # A list action without resource-level permissions, granted on an ARN.
        ({"Action": "logs:DescribeLogGroups", "Resource": "arn:aws:logs:us-east-1:123456789012:log-group:*"},
         "RESOURCE_MISMATCH"),
        ({"Action": "sns:Unsubscribe", "Resource": "arn:aws:sns:us-east-1:123456789012:t:*"}, "RESOURCE_MISMATCH"),
        # The audit report's CloudTrail read: the event history has no ARN to grant it on.
        ({"Action": "cloudtrail:LookupEvents", "Resource": "arn:aws:cloudtrail:us-east-1:123456789012:trail/webstack-audit"},
         "RESOURCE_MISMATCH"),
        # A condition key the action never carries: the grant never applies.
        ({"Action": "kms:DescribeKey", "Resource": "*",
          "Condition": {"StringEquals": {"kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:us-east-1:1:log-group:g"}}},
         "UNKNOWN_CONDITION_FOR_ACTION"),
    ],
)
def test_the_linter_catches_what_the_program_used_to_declare(statement, issue):
    text = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", **statement}]})
    found = lint(Document("test", "x", "identity", text))
    assert issue in {f.issue for f in found}
    assert all(allowed_by(f) is None for f in found if f.issue == issue)
