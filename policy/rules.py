"""The security invariants of the webstack program as pure functions, and their CrossGuard policies.

Each rule is a function of one resource (`Resource`: type token, camelCase properties as the
engine sends them, URN, name, `protect`) or, for what spans resources, of all of them; it returns
the violation messages. `policies()` wraps every rule in a `ResourceValidationPolicy` or
`StackValidationPolicy`, all MANDATORY; `__main__.py` builds the pack from them (constructing a
`PolicyPack` starts its gRPC server and blocks, so nothing here does).

This module is self-contained (the pack may run in its own virtualenv, without the program): the
named wildcard exceptions are repeated here and tests/test_deploy_roles.py checks that they agree
with components/aws_policies.py.

What a pure function can know about secrets: CrossGuard hands policies secret values in plain
text with no mark (pulumi-policy issues 163, 241), so "is this input a Pulumi secret" is not
decidable here. The rule therefore looks where a secret never belongs at all: resource tags
(AWS stores and shows them in plain text whatever Pulumi thinks) and Command inputs (the steps
read secrets from the CI environment; a Command input would be written to state and re-run on
every rotation). A value there is a violation when its key looks like a secret's name or the
value looks like a credential.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
STS_AUDIENCE = "sts.amazonaws.com"
PROD_STACK = "prod"
PROD_ALIAS = "stable"

# Identity-policy actions that may be granted on Resource "*", and why (nothing narrower exists).
# Must equal components.aws_policies.WILDCARD_EXCEPTIONS (tests/test_deploy_roles.py).
WILDCARD_RESOURCE_ACTIONS = {
    "kms:CreateKey": "a key's ARN is assigned by AWS at creation; CreateKey has no resource to name",
    "kms:ListAliases": "a list action without resource-level permissions",
    "cloudtrail:DescribeTrails": "a list action without resource-level permissions",
    "sts:GetCallerIdentity": "takes no resource (the provider calls it to learn the account)",
}
# Key policies: `"Resource": "*"` means "this key" (the only form AWS accepts), and `kms:*` for
# the account root is AWS's default statement that keeps a key administrable through IAM.
KEY_POLICY_EXCEPTIONS = {
    "Resource:*": "in a key policy `*` means the key the policy is attached to",
    "kms:*": "granted to the account root only: AWS's default that keeps the key manageable via IAM",
}
ACCOUNT_ROOT = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:root$")

# Resources whose loss loses data or takes everything down: `protect` must be set.
STATEFUL_TYPES = {
    "aws:s3/bucket:Bucket",
    "aws:kms/key:Key",
    "aws:dynamodb/table:Table",
    "aws:cloudtrail/trail:Trail",
    "aws:cloudwatch/logGroup:LogGroup",
    "cloudflare:index/pagesProject:PagesProject",
}
# prod's schema is made by a Command; its replacement would drop nothing, but a plan that
# replaces it is a plan nobody reviewed.
PROD_SCHEMA_COMMAND = "python -m steps.schema create"
COMMAND_TYPES = {"command:local:Command", "command:remote:Command"}
COMMAND_TEXT_INPUTS = ("create", "update", "delete", "stdin")

SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL|DATABASE_URL|\bDSN\b|WEBHOOK)",
    re.IGNORECASE,
)
SECRET_VALUES = (
    re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]+:[^\s@/]+@"),  # scheme://user:password@host
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"),  # GitHub tokens
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),  # Slack tokens
    re.compile(r"hooks\.slack\.com/services/"),  # Slack incoming webhook
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
)

ORIGIN = re.compile(r"^https://[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$")


@dataclass(frozen=True)
class Resource:
    """What a rule sees of one resource, as CrossGuard reports it."""

    type: str
    props: Mapping[str, Any]
    urn: str = ""
    name: str = ""
    protect: bool = False
    property_dependencies: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Input name -> URNs it came from (stack validation only)."""

    @property
    def stack(self) -> str:
        """`urn:pulumi:<stack>::<project>::<type>::<name>`."""
        parts = self.urn.split("::")
        return parts[0].removeprefix("urn:pulumi:") if parts and parts[0].startswith("urn:pulumi:") else ""


@dataclass(frozen=True)
class PackConfig:
    """GitHub environments the deploy roles may trust besides their fixed subjects."""

    prod_environments: tuple[str, ...] = ()
    preview_environments: tuple[str, ...] = ("preview-sweeper",)

    @classmethod
    def of(cls, config: Mapping[str, Any] | None) -> PackConfig:
        config = config or {}
        default = cls()
        return cls(
            prod_environments=tuple(config.get("prodEnvironments", default.prod_environments)),
            preview_environments=tuple(config.get("previewEnvironments", default.preview_environments)),
        )


# --- small helpers -------------------------------------------------------------------------------


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        return [value]
    return list(value)


def _document(value: Any) -> Mapping[str, Any] | None:
    """A policy document from a property: a JSON string (the usual input) or an object."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Sid": "<unparsable>"}]}
        return parsed if isinstance(parsed, Mapping) else None
    return value if isinstance(value, Mapping) else None


def _statements(document: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    if document is None:
        return []
    return [s for s in _list(document.get("Statement")) if isinstance(s, Mapping)]


def _label(statement: Mapping[str, Any], index: int) -> str:
    return f"statement {statement.get('Sid') or index}"


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _falsy_string(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.lower() == "false")


def _is_public_principal(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        return "*" in _list(principal.get("AWS"))
    return False


def arn_matches(pattern: str, arn: str) -> bool:
    """IAM's ARN matching: `*` any run of characters, `?` one character, case-sensitive."""
    return fnmatch.fnmatchcase(arn, pattern)


# --- S3 -----------------------------------------------------------------------------------------

PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
KMS_ALGORITHMS = ("aws:kms", "aws:kms:dsse")


def s3_public_access_blocked(r: Resource) -> list[str]:
    if r.type != "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock":
        return []
    off = [flag for flag in PUBLIC_ACCESS_FLAGS if r.props.get(flag) is not True]
    return [f"public access is not fully blocked: {', '.join(off)} must be true"] if off else []


def s3_versioning_enabled(r: Resource) -> list[str]:
    if r.type != "aws:s3/bucketVersioning:BucketVersioning":
        return []
    status = (r.props.get("versioningConfiguration") or {}).get("status")
    return [] if status == "Enabled" else [f"bucket versioning is {status!r}, must be 'Enabled'"]


def s3_kms_encrypted(r: Resource) -> list[str]:
    if r.type != "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration":
        return []
    rules = _list(r.props.get("rules"))
    if not rules:
        return ["no server-side encryption rule"]
    problems = []
    for rule in rules:
        default = (rule or {}).get("applyServerSideEncryptionByDefault") or {}
        if default.get("sseAlgorithm") not in KMS_ALGORITHMS:
            problems.append(f"sseAlgorithm is {default.get('sseAlgorithm')!r}, must be one of {KMS_ALGORITHMS}")
        elif not default.get("kmsMasterKeyId"):
            problems.append("SSE-KMS without a kmsMasterKeyId (a customer-managed key is required)")
    return problems


def _denies_plain_http(statement: Mapping[str, Any]) -> bool:
    if statement.get("Effect") != "Deny" or not _is_public_principal(statement.get("Principal")):
        return False
    if not {"s3:*", "*"} & set(_list(statement.get("Action"))):
        return False
    secure = ((statement.get("Condition") or {}).get("Bool") or {}).get("aws:SecureTransport")
    if not _falsy_string(secure):
        return False
    resources = [str(x) for x in _list(statement.get("Resource"))]
    return any(x.endswith("/*") for x in resources) and any(not x.endswith("/*") for x in resources)


def s3_tls_only(r: Resource) -> list[str]:
    if r.type != "aws:s3/bucketPolicy:BucketPolicy":
        return []
    if any(_denies_plain_http(s) for s in _statements(_document(r.props.get("policy")))):
        return []
    return [
        "the bucket policy does not deny non-TLS access: add a Deny of s3:* to Principal * on the bucket "
        "and bucket/* when aws:SecureTransport is false"
    ]


BUCKET_GUARDS = {
    "aws:s3/bucketVersioning:BucketVersioning": "versioning",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": "SSE-KMS",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": "a public access block",
    "aws:s3/bucketPolicy:BucketPolicy": "a TLS-only bucket policy",
}


def _points_at(sub: Resource, bucket: Resource) -> bool:
    """A sub-resource names its bucket by name (real outputs), id, or is wired from it (recorded)."""
    target = sub.props.get("bucket")
    names = {bucket.props.get("bucket"), bucket.props.get("id")} - {None, ""}
    return target in names or bucket.urn in (sub.property_dependencies.get("bucket") or ())


def s3_buckets_guarded(resources: Sequence[Resource]) -> list[tuple[str, str]]:
    """Every bucket has versioning, SSE-KMS, a public access block and a TLS-only policy.

    The per-resource rules check each of those; this one checks that none is missing.
    """
    violations = []
    for bucket in (r for r in resources if r.type == "aws:s3/bucket:Bucket"):
        missing = [
            what
            for kind, what in BUCKET_GUARDS.items()
            if not any(r.type == kind and _points_at(r, bucket) for r in resources)
        ]
        if missing:
            violations.append((bucket.urn, f"bucket {bucket.name} has no {', no '.join(missing)}"))
    return violations


# --- KMS, DynamoDB, CloudTrail ------------------------------------------------------------------


def kms_key_rotation(r: Resource) -> list[str]:
    if r.type != "aws:kms/key:Key":
        return []
    specs = {r.props.get("keySpec"), r.props.get("customerMasterKeySpec")} - {None, "", "SYMMETRIC_DEFAULT"}
    if specs:
        return [f"{', '.join(sorted(specs))} keys cannot rotate: only SYMMETRIC_DEFAULT keys are allowed"]
    return [] if r.props.get("enableKeyRotation") is True else ["key rotation is off: set enableKeyRotation"]


def dynamodb_pitr_and_sse(r: Resource) -> list[str]:
    if r.type != "aws:dynamodb/table:Table":
        return []
    problems = []
    if (r.props.get("pointInTimeRecovery") or {}).get("enabled") is not True:
        problems.append("point-in-time recovery is off")
    sse = r.props.get("serverSideEncryption") or {}
    if sse.get("enabled") is not True or not sse.get("kmsKeyArn"):
        problems.append("server-side encryption with a customer-managed KMS key (kmsKeyArn) is off")
    return problems


def cloudtrail_secure(r: Resource) -> list[str]:
    if r.type != "aws:cloudtrail/trail:Trail":
        return []
    problems = []
    if r.props.get("isMultiRegionTrail") is not True:
        problems.append("the trail is not multi-region")
    if r.props.get("enableLogFileValidation") is not True:
        problems.append("log-file validation is off")
    if not r.props.get("kmsKeyId"):
        problems.append("the trail's logs are not KMS-encrypted (kmsKeyId)")
    if r.props.get("includeGlobalServiceEvents") is False:
        problems.append("global service events (IAM, STS) are excluded")
    return problems


# --- GitHub OIDC trust --------------------------------------------------------------------------


def _github_statements(r: Resource) -> list[Mapping[str, Any]]:
    if r.type != "aws:iam/role:Role":
        return []
    return [
        s
        for s in _statements(_document(r.props.get("assumeRolePolicy")))
        if any(GITHUB_OIDC_HOST in str(p) for p in _list((s.get("Principal") or {}).get("Federated")))
    ]


def _subjects(statement: Mapping[str, Any]) -> list[str]:
    equals = (statement.get("Condition") or {}).get("StringEquals") or {}
    return [str(s) for s in _list(equals.get(f"{GITHUB_OIDC_HOST}:sub"))]


def oidc_trust_pinned(r: Resource) -> list[str]:
    """A role GitHub may assume pins the audience and matches exact subjects."""
    problems = []
    for index, statement in enumerate(_github_statements(r)):
        label = _label(statement, index)
        if statement.get("Effect") != "Allow":
            continue
        condition = statement.get("Condition") or {}
        equals = condition.get("StringEquals") or {}
        if _list(equals.get(f"{GITHUB_OIDC_HOST}:aud")) != [STS_AUDIENCE]:
            problems.append(f"{label}: the audience must be exactly {STS_AUDIENCE}")
        subjects = _subjects(statement)
        if not subjects:
            problems.append(f"{label}: no exact `sub` condition (StringEquals)")
        for subject in subjects:
            if "*" in subject or "?" in subject:
                problems.append(f"{label}: subject {subject!r} has a wildcard")
        for operator, conditions in condition.items():
            if operator != "StringEquals" and any(f"{GITHUB_OIDC_HOST}:sub" in k for k in conditions or {}):
                problems.append(f"{label}: `sub` is matched with {operator}, only StringEquals is exact")
    return problems


def _allowed_suffixes(role: str, config: PackConfig) -> set[str]:
    if role == "prod":
        return {":ref:refs/heads/main", *(f":environment:{e}" for e in config.prod_environments)}
    return {":pull_request", *(f":environment:{e}" for e in config.preview_environments)}


def deploy_role_subjects(r: Resource, config: PackConfig = PackConfig()) -> list[str]:
    """The prod role trusts only `main` (or its environment); the preview role only pull requests
    (and the sweeper's environment). Any other role GitHub may assume is a violation."""
    statements = _github_statements(r)
    if not statements:
        return []
    role_name = str(r.props.get("name") or "")
    role = "prod" if role_name.endswith("-deploy-prod") else "preview" if role_name.endswith("-deploy-preview") else ""
    if not role:
        return [f"role {role_name or r.name!r} trusts GitHub but is neither the prod nor the preview deploy role"]
    allowed = _allowed_suffixes(role, config)
    problems = []
    for statement in statements:
        for subject in _subjects(statement):
            if not any(subject.endswith(suffix) and subject.startswith("repo:") for suffix in allowed):
                problems.append(f"the {role} role must not trust {subject!r} (allowed: *{', *'.join(sorted(allowed))})")
    return problems


# --- IAM wildcards ------------------------------------------------------------------------------

IDENTITY_POLICY_INPUTS = {
    "aws:iam/rolePolicy:RolePolicy": "policy",
    "aws:iam/policy:Policy": "policy",
    "aws:iam/userPolicy:UserPolicy": "policy",
    "aws:iam/groupPolicy:GroupPolicy": "policy",
}
RESOURCE_POLICY_INPUTS = {
    "aws:s3/bucketPolicy:BucketPolicy": "policy",
    "aws:sns/topic:Topic": "policy",
    "aws:sns/topicPolicy:TopicPolicy": "policy",
    "aws:sqs/queuePolicy:QueuePolicy": "policy",
}


def _policy_documents(r: Resource) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(kind, document) of every permission policy the resource carries."""
    if r.type in IDENTITY_POLICY_INPUTS:
        document = _document(r.props.get(IDENTITY_POLICY_INPUTS[r.type]))
        if document is not None:
            yield "identity", document
    if r.type == "aws:iam/role:Role":
        for inline in _list(r.props.get("inlinePolicies")):
            document = _document((inline or {}).get("policy"))
            if document is not None:
                yield "identity", document
    if r.type == "aws:kms/key:Key":
        document = _document(r.props.get("policy"))
        if document is not None:
            yield "key", document
    if r.type in RESOURCE_POLICY_INPUTS:
        document = _document(r.props.get(RESOURCE_POLICY_INPUTS[r.type]))
        if document is not None:
            yield "resource", document


def _wildcard_action(action: str) -> bool:
    return action == "*" or action.endswith(":*")


def _root_only(principal: Any) -> bool:
    if not isinstance(principal, Mapping) or set(principal) != {"AWS"}:
        return False
    return all(ACCOUNT_ROOT.match(str(p)) for p in _list(principal["AWS"]))


def iam_no_wildcards(r: Resource) -> list[str]:
    """No grant of `*`/`service:*` actions or of `*` resources, except the named exceptions."""
    problems = []
    for kind, document in _policy_documents(r):
        for index, statement in enumerate(_statements(document)):
            if statement.get("Effect") != "Allow":
                continue  # denies may be as broad as they like
            label = _label(statement, index)
            actions = [str(a) for a in _list(statement.get("Action"))]
            resources = [str(x) for x in _list(statement.get("Resource"))]
            if "NotAction" in statement or "NotResource" in statement:
                problems.append(f"{label}: Allow with NotAction/NotResource grants everything else")
            for action in filter(_wildcard_action, actions):
                if kind == "key" and action == "kms:*" and _root_only(statement.get("Principal")):
                    continue  # KEY_POLICY_EXCEPTIONS["kms:*"]
                problems.append(f"{label}: grants the wildcard action {action!r}")
            if kind != "identity" and _is_public_principal(statement.get("Principal")):
                problems.append(f"{label}: grants to every principal (*)")
            if "*" in resources:
                if kind == "key":
                    continue  # KEY_POLICY_EXCEPTIONS["Resource:*"]
                unexplained = sorted(set(actions) - set(WILDCARD_RESOURCE_ACTIONS))
                if kind != "identity" or unexplained:
                    problems.append(
                        f"{label}: grants {', '.join(unexplained or actions)} on Resource '*' "
                        "(only the named exceptions may: " + ", ".join(sorted(WILDCARD_RESOURCE_ACTIONS)) + ")"
                    )
    return problems


# --- Lambda function URLs -----------------------------------------------------------------------


def function_url_intended(r: Resource) -> list[str]:
    """Documented choice: a function URL without IAM auth (`NONE`) is allowed because the API checks
    JWTs itself and `/health` is public, but only with CORS admitting exactly one https origin (the
    stack's site, never `*`), and in prod only on the alias `stable`. Public invoke permissions
    exist only for that URL."""
    if r.type == "aws:lambda/functionUrl:FunctionUrl":
        if r.props.get("authorizationType") != "NONE":
            return []
        problems = []
        origins = [str(o) for o in _list((r.props.get("cors") or {}).get("allowOrigins"))]
        if len(origins) != 1 or not ORIGIN.match(origins[0]):
            problems.append(f"a public URL must admit exactly one https site origin in CORS, got {origins}")
        if _truthy((r.props.get("cors") or {}).get("allowCredentials")):
            problems.append("a public URL must not allow credentials in CORS")
        if r.stack == PROD_STACK and r.props.get("qualifier") != PROD_ALIAS:
            problems.append(f"prod's public URL must serve the alias {PROD_ALIAS!r}, got {r.props.get('qualifier')!r}")
        return problems
    if r.type == "aws:lambda/permission:Permission" and r.props.get("principal") == "*":
        action = r.props.get("action")
        via_url = (action == "lambda:InvokeFunctionUrl" and r.props.get("functionUrlAuthType") == "NONE") or (
            action == "lambda:InvokeFunction" and r.props.get("invokedViaFunctionUrl") is True
        )
        problems = [] if via_url else [f"{action} is granted to everyone, not only through the function URL"]
        if r.stack == PROD_STACK and r.props.get("qualifier") != PROD_ALIAS:
            problems.append(f"prod's public permission must be on the alias {PROD_ALIAS!r}")
        return problems
    return []


# --- protection and secrets ---------------------------------------------------------------------


def stateful_protected(r: Resource) -> list[str]:
    if r.type in STATEFUL_TYPES and not r.protect:
        return [f"{r.type} holds state nobody can recreate: set protect=True (and retain_on_delete)"]
    if (
        r.type in COMMAND_TYPES
        and r.stack == PROD_STACK
        and str(r.props.get("create") or "").startswith(PROD_SCHEMA_COMMAND)
        and not r.protect
    ):
        return ["prod's database schema Command must be protected"]
    return []


def _secret_findings(where: str, key: str, value: Any) -> list[str]:
    if value is None or value == "":
        return []
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if key and SECRET_NAME.search(key):
        return [f"{where} {key!r} is named like a secret: secrets never go into {where.split()[0]}s"]
    if any(pattern.search(text) for pattern in SECRET_VALUES):
        return [f"{where} {key or '(value)'!r} carries a credential in plain text"]
    return []


def no_plaintext_secrets(r: Resource) -> list[str]:
    problems = []
    tags = r.props.get("tags")
    if isinstance(tags, Mapping):
        for key, value in tags.items():
            problems += _secret_findings("tag", str(key), value)
    if r.type in COMMAND_TYPES:
        environment = r.props.get("environment")
        if isinstance(environment, Mapping):
            for key, value in environment.items():
                problems += _secret_findings("Command environment variable", str(key), value)
        for name in COMMAND_TEXT_INPUTS:
            problems += _secret_findings(f"Command {name}", "", r.props.get(name))
        for trigger in _list(r.props.get("triggers")):
            problems += _secret_findings("Command trigger", "", trigger)
    return problems


# --- the pack -----------------------------------------------------------------------------------

ResourceRule = Callable[[Resource], list[str]]

RESOURCE_RULES: dict[str, tuple[str, ResourceRule]] = {
    "s3-public-access-blocked": ("S3 public access blocks set all four flags.", s3_public_access_blocked),
    "s3-versioning-enabled": ("S3 bucket versioning is Enabled.", s3_versioning_enabled),
    "s3-kms-encrypted": ("S3 default encryption is SSE-KMS with a customer-managed key.", s3_kms_encrypted),
    "s3-tls-only": ("S3 bucket policies deny every request without TLS.", s3_tls_only),
    "kms-key-rotation": ("KMS keys rotate yearly.", kms_key_rotation),
    "dynamodb-pitr-and-sse": ("DynamoDB tables have PITR and SSE with a customer-managed key.", dynamodb_pitr_and_sse),
    "cloudtrail-secure": ("CloudTrail is multi-region, validated and KMS-encrypted.", cloudtrail_secure),
    "oidc-trust-pinned": ("GitHub OIDC trust pins aud=sts.amazonaws.com and exact subjects.", oidc_trust_pinned),
    "deploy-role-subjects": (
        "The prod role trusts only main (or its environment); the preview role only pull requests "
        "(and the sweeper's environment).",
        deploy_role_subjects,
    ),
    "iam-no-wildcards": ("No IAM grant of * actions or * resources outside the named exceptions.", iam_no_wildcards),
    "function-url-intended": (
        "Public function URLs only on prod's alias `stable`, CORS exactly the site's origin.",
        function_url_intended,
    ),
    "stateful-protected": ("Stateful resources are protected.", stateful_protected),
    "no-plaintext-secrets": ("No secret in a tag or a Command input.", no_plaintext_secrets),
}
STACK_RULES: dict[str, tuple[str, Callable[[Sequence[Resource]], list[tuple[str, str]]]]] = {
    "s3-buckets-guarded": (
        "Every S3 bucket has versioning, SSE-KMS, a public access block and a TLS-only policy.",
        s3_buckets_guarded,
    ),
}

DEPLOY_ROLE_CONFIG = PolicyConfigSchema(
    properties={
        "prodEnvironments": {"type": "array", "items": {"type": "string"}, "default": []},
        "previewEnvironments": {"type": "array", "items": {"type": "string"}, "default": ["preview-sweeper"]},
    }
)


def check_resource(resource: Resource, config: PackConfig = PackConfig()) -> dict[str, list[str]]:
    """Every resource rule's violations for one resource, by rule name (empty rules left out)."""
    found = {}
    for name, (_, rule) in RESOURCE_RULES.items():
        messages = deploy_role_subjects(resource, config) if rule is deploy_role_subjects else rule(resource)
        if messages:
            found[name] = messages
    return found


def check_stack(resources: Sequence[Resource], config: PackConfig = PackConfig()) -> dict[str, list[tuple[str, str]]]:
    """Every violation of the whole stack: (urn, message) by rule name."""
    found: dict[str, list[tuple[str, str]]] = {}
    for resource in resources:
        for name, messages in check_resource(resource, config).items():
            found.setdefault(name, []).extend((resource.urn, m) for m in messages)
    for name, (_, rule) in STACK_RULES.items():
        violations = rule(resources)
        if violations:
            found.setdefault(name, []).extend(violations)
    return found


def _from_args(args: ResourceValidationArgs) -> Resource:
    return Resource(
        type=args.resource_type,
        props=args.props,
        urn=args.urn,
        name=args.name,
        protect=bool(getattr(args.opts, "protect", False)),
    )


def _resource_validator(name: str, rule: ResourceRule) -> Callable[[ResourceValidationArgs, Any], None]:
    def validate(args: ResourceValidationArgs, report_violation: Any) -> None:
        resource = _from_args(args)
        if rule is deploy_role_subjects:
            messages = deploy_role_subjects(resource, PackConfig.of(args.get_config()))
        else:
            messages = rule(resource)
        for message in messages:
            report_violation(message)

    validate.__name__ = f"validate_{name.replace('-', '_')}"
    return validate


def _stack_validator(rule: Callable[[Sequence[Resource]], list[tuple[str, str]]]) -> Callable[..., None]:
    def validate(args: StackValidationArgs, report_violation: Any) -> None:
        resources = [
            Resource(
                type=r.resource_type,
                props=r.props,
                urn=r.urn,
                name=r.name,
                protect=bool(getattr(r.opts, "protect", False)),
                property_dependencies={k: [d.urn for d in v] for k, v in (r.property_dependencies or {}).items()},
            )
            for r in args.resources
        ]
        for urn, message in rule(resources):
            report_violation(message, urn)

    return validate


def policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    """Every rule as a MANDATORY CrossGuard policy."""
    built: list[ResourceValidationPolicy | StackValidationPolicy] = [
        ResourceValidationPolicy(
            name=name,
            description=description,
            validate=_resource_validator(name, rule),
            enforcement_level=EnforcementLevel.MANDATORY,
            config_schema=DEPLOY_ROLE_CONFIG if rule is deploy_role_subjects else None,
        )
        for name, (description, rule) in RESOURCE_RULES.items()
    ]
    built += [
        StackValidationPolicy(
            name=name,
            description=description,
            validate=_stack_validator(rule),
            enforcement_level=EnforcementLevel.MANDATORY,
        )
        for name, (description, rule) in STACK_RULES.items()
    ]
    return built


__all__ = [
    "RESOURCE_RULES",
    "STACK_RULES",
    "PackConfig",
    "Resource",
    "arn_matches",
    "check_resource",
    "check_stack",
    "policies",
]
