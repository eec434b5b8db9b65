"""The security invariants of the webstack program as pure functions, and their CrossGuard policies.

Each rule is a function of one resource (`Resource`: type token, camelCase properties as the
engine sends them, URN, name, `protect`) or, for what spans resources, of all of them; it returns
the violation messages. `policies()` wraps every rule in a `ResourceValidationPolicy` or
`StackValidationPolicy`, all MANDATORY; `__main__.py` builds the pack from them (constructing a
`PolicyPack` starts its gRPC server and blocks, so nothing here does).

This module runs in the pack's own virtualenv, without the program. What it shares with the
program is read, not imported: the facts come from the `core` package (pure data, loaded by
path), the named wildcard exceptions and the OIDC facts among them.

Pack config (`--policy-pack-config FILE`, written by `python -m policy.pack_config` in the
workflows): the repository the deploy roles may trust (`deploy-role-subjects.repository`, with
GitHub's immutable ids when known) and the stack's own site (`function-url-intended.siteOrigin`).
Without them those rules refuse: the pack cannot tell this repository or this site from any other.

What a pure function can know about secrets: CrossGuard hands policies secret values in plain
text with no mark (pulumi-policy issues 163, 241), so "is this input a Pulumi secret" is not
decidable here. The rule therefore looks where a secret never belongs at all: resource tags
(AWS stores and shows them in plain text whatever Pulumi thinks) and Command inputs (the steps
read secrets from the CI environment; a Command input would be written to state and re-run on
every rotation). A value there is a violation when its key looks like a secret's name or the
value looks like a credential (a known token shape, a DSN with a password, or a long random token).

No rule raises on malformed input (a string `Principal`, a `Condition` that is not an object, ...):
it reports what it cannot accept. A rule that still fails reports a violation naming itself, never
a traceback; only the SDK's "unknown during preview" passes through, as the SDK expects.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import math
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError


def _load_core() -> ModuleType:
    """The repository's `core` package, by path: the facts the program also reads (the pack runs in
    its own virtualenv, where the program is not importable, and must not import it)."""
    root = Path(__file__).resolve().parents[1] / "core"
    loaded = sys.modules.get("core")
    if loaded is not None:
        if Path(getattr(loaded, "__file__", "") or "").resolve().parent != root:
            raise ImportError(f"the policy pack reads its facts from {root}, but another `core` is already loaded: {loaded!r}")
        return loaded
    spec = importlib.util.spec_from_file_location("core", root / "__init__.py", submodule_search_locations=[str(root)])
    if spec is None or spec.loader is None or not (root / "__init__.py").is_file():
        raise ImportError(f"the policy pack reads its facts from {root}, which is missing")
    module = importlib.util.module_from_spec(spec)
    sys.modules["core"] = module
    spec.loader.exec_module(module)
    return module


_load_core()
from core import stateful as _STATEFUL  # noqa: E402 - after the package is loaded by path

# Resources whose loss loses data or takes everything down: `protect` must be set.
STATEFUL_TYPES: frozenset[str] = frozenset(_STATEFUL.STATEFUL_TYPES)
# In prod, every Command of this component (the schema and its migration) is stateful by structure.
DATABASE_COMPONENT: str = _STATEFUL.DATABASE_COMPONENT

from core.iam import (  # noqa: E402
    ALLOWED_MANAGED_POLICIES,
    DENIED_BY_OUTSIDERS,
    DEPLOY_BRANCH_SUBJECT,
    GITHUB_OIDC_HOST,
    KEY_BOUNDARY_TAG,
    KEY_USERS,
    KEY_USE_ACTIONS,
    PR_SIDE_ROLES,
    PULL_REQUEST_SUBJECT,
    STS_AUDIENCE,
    THROUGH_SERVICE_ONLY,
    WILDCARD_EXCEPTIONS,
)
from core import names  # noqa: E402
from core.names import ALIAS_NAME as PROD_ALIAS, PROD_STACK  # noqa: E402

# Key policies: `"Resource": "*"` means "this key" (the only form AWS accepts), `kms:*` for the
# account root is AWS's default statement that keeps a key administrable through IAM, and
# `kms:GenerateDataKey*` is the form AWS documents for CloudTrail and CloudWatch on a key.
KEY_POLICY_EXCEPTIONS = {
    "Resource:*": "in a key policy `*` means the key the policy is attached to",
    "kms:*": "granted to the account root only: AWS's default that keeps the key manageable via IAM",
    "kms:GenerateDataKey*": "the data-key generators, as AWS documents them for CloudTrail and CloudWatch key policies",
}
ACCOUNT_ROOT = re.compile(r"arn:aws[a-z-]*:iam::[0-9]{12}:root")  # fullmatch: `$` accepts a trailing newline
AWS_MANAGED_POLICY = re.compile(r"^arn:aws[a-z-]*:iam::aws:policy/")

COMMAND_TYPES = {"command:local:Command", "command:remote:Command"}
# A prod Command running the schema step is stateful even outside the Database component.
SCHEMA_STEP = re.compile(r"\bsteps\.schema\b")

SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL|DATABASE_URL|\bDSN\b|WEBHOOK)",
    re.IGNORECASE,
)
SECRET_VALUES = (
    re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]+:[^\s@/]+@"),  # scheme://user:password@host
    # libpq keyword form (`host=db user=app password=...`), PGPASSWORD=..., ?password=...; not a
    # reference to a variable (`password=$DB_PASSWORD`).
    re.compile(r"(?i)(password|passwd|pwd)\s*=\s*['\"]?(?![$'\"\s])[^\s'\";&]+"),
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"),  # GitHub tokens
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),  # Slack tokens
    re.compile(r"hooks\.slack\.com/services/"),  # Slack incoming webhook
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
)
# A long run of token characters mixing upper case, lower case and digits with high entropy:
# API tokens, secret keys, JWTs. Hex digests, UUIDs, account ids and host names do not qualify.
RANDOM_TOKEN = re.compile(r"[A-Za-z0-9+/_=.~-]{20,}")
RANDOM_TOKEN_BITS_PER_CHAR = 4.0

# A site origin: https, or plain http on this machine only (the local sandbox serves each site on
# loopback; the program's settings accept the same, components/settings.py LOOPBACK_HOSTS).
ORIGIN = re.compile(
    r"https://[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?|http://(127\.0\.0\.1|localhost)(:[0-9]{1,5})?"
)


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

    @property
    def parent_types(self) -> tuple[str, ...]:
        """The types of the resource's ancestors, outermost first, as its URN spells them:
        `urn:pulumi:S::P::webstack:index:Phase$webstack:index:Database$command:local:Command::N`."""
        parts = self.urn.split("::")
        if len(parts) < 4:
            return ()
        return tuple(parts[2].split("$")[:-1])


@dataclass(frozen=True)
class PackConfig:
    """What the pack needs to know about the repository and the stack (the pack config).

    `repository` is `owner/name` (`${{ github.repository }}`); with `repository_id` and
    `repository_owner_id` GitHub's immutable subject form `repo:owner@ID/name@ID:` is accepted too.
    `site_origin` is the stack's own site (`https://host`), the one origin a public URL may admit.
    """

    repository: str = ""
    repository_id: str = ""
    repository_owner_id: str = ""
    site_origin: str = ""
    prod_environments: tuple[str, ...] = ()
    preview_environments: tuple[str, ...] = ()
    sweeper_environments: tuple[str, ...] = ("preview-sweeper",)
    account_id: str = ""
    """The stack's AWS account: the only one a policy may name."""

    @classmethod
    def of(cls, config: Mapping[str, Any] | None) -> PackConfig:
        config = config if isinstance(config, Mapping) else {}
        default = cls()

        def text(key: str) -> str:
            value = config.get(key)
            return value.strip() if isinstance(value, str) else ""

        def names(key: str, fallback: tuple[str, ...]) -> tuple[str, ...]:
            value = config.get(key)
            if value is None:
                return fallback
            return tuple(str(v) for v in _list(value) if isinstance(v, (str, int)))

        return cls(
            repository=text("repository"),
            repository_id=text("repositoryId"),
            repository_owner_id=text("repositoryOwnerId"),
            site_origin=text("siteOrigin").rstrip("/"),
            prod_environments=names("prodEnvironments", default.prod_environments),
            preview_environments=names("previewEnvironments", default.preview_environments),
            sweeper_environments=names("sweeperEnvironments", default.sweeper_environments),
            account_id=text("accountId"),
        )


# --- small helpers -------------------------------------------------------------------------------


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return [value]
    return list(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _strings(value: Any) -> list[str]:
    return [str(v) for v in _list(value)]


UNPARSABLE = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Sid": "<unparsable>"}]}


def _document(value: Any) -> Mapping[str, Any] | None:
    """A policy document from a property: a JSON string (the usual input) or an object.

    A string that is not a JSON object reads as "allow everything", so every rule refuses it.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return UNPARSABLE
        return parsed if isinstance(parsed, Mapping) else UNPARSABLE
    return value if isinstance(value, Mapping) else UNPARSABLE


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


def _principals(principal: Any, kind: str) -> list[str]:
    """The principals of one kind (`AWS`, `Service`, `Federated`, ...); `"*"` is every AWS principal."""
    if principal == "*":
        return ["*"] if kind == "AWS" else []
    return _strings(_mapping(principal).get(kind))


def _is_public_principal(principal: Any) -> bool:
    return "*" in _principals(principal, "AWS")


def _wildcard(text: str) -> bool:
    return "*" in text or "?" in text


def arn_matches(pattern: str, arn: str) -> bool:
    """IAM's ARN matching: `*` any run of characters, `?` one character, case-sensitive."""
    return fnmatch.fnmatchcase(arn, pattern)


# --- S3 -----------------------------------------------------------------------------------------

BUCKET_TYPES = {"aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"}
VERSIONING_TYPES = {"aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2"}
ENCRYPTION_TYPES = {
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
}
PUBLIC_ACCESS_BLOCK_TYPES = {"aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"}
BUCKET_POLICY_TYPES = {"aws:s3/bucketPolicy:BucketPolicy"}
PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
KMS_ALGORITHMS = ("aws:kms", "aws:kms:dsse")
S3_PARTITIONS = ("aws", "aws-cn", "aws-us-gov")


def s3_public_access_blocked(r: Resource) -> list[str]:
    if r.type not in PUBLIC_ACCESS_BLOCK_TYPES:
        return []
    off = [flag for flag in PUBLIC_ACCESS_FLAGS if r.props.get(flag) is not True]
    return [f"public access is not fully blocked: {', '.join(off)} must be true"] if off else []


def s3_versioning_enabled(r: Resource) -> list[str]:
    if r.type not in VERSIONING_TYPES:
        return []
    status = _mapping(r.props.get("versioningConfiguration")).get("status")
    return [] if status == "Enabled" else [f"bucket versioning is {status!r}, must be 'Enabled'"]


def s3_kms_encrypted(r: Resource) -> list[str]:
    if r.type not in ENCRYPTION_TYPES:
        return []
    rules = _list(r.props.get("rules"))
    if not rules:
        return ["no server-side encryption rule"]
    problems = []
    for rule in rules:
        default = _mapping(_mapping(rule).get("applyServerSideEncryptionByDefault"))
        if default.get("sseAlgorithm") not in KMS_ALGORITHMS:
            problems.append(f"sseAlgorithm is {default.get('sseAlgorithm')!r}, must be one of {KMS_ALGORITHMS}")
        elif not default.get("kmsMasterKeyId"):
            problems.append("SSE-KMS without a kmsMasterKeyId (a customer-managed key is required)")
    return problems


def _covers(patterns: list[str], arn: str) -> bool:
    return any(arn_matches(pattern, arn) for pattern in patterns)


def _denies_plain_http(statement: Mapping[str, Any], bucket: str) -> bool:
    """A Deny of s3:* to everyone without TLS, on `bucket` itself and on every object in it."""
    if statement.get("Effect") != "Deny" or not _is_public_principal(statement.get("Principal")):
        return False
    if not {"s3:*", "*"} & set(_strings(statement.get("Action"))):
        return False
    secure = _mapping(_mapping(statement.get("Condition")).get("Bool")).get("aws:SecureTransport")
    if not _falsy_string(secure):
        return False
    resources = _strings(statement.get("Resource"))
    return any(
        _covers(resources, f"arn:{partition}:s3:::{bucket}") and _covers(resources, f"arn:{partition}:s3:::{bucket}/any/key")
        for partition in S3_PARTITIONS
    )


def s3_tls_only(r: Resource) -> list[str]:
    if r.type not in BUCKET_POLICY_TYPES:
        return []
    bucket = r.props.get("bucket")
    if not isinstance(bucket, str) or not bucket:
        return ["the bucket policy names no bucket, so it cannot be checked for TLS-only access"]
    if any(_denies_plain_http(s, bucket) for s in _statements(_document(r.props.get("policy")))):
        return []
    return [
        f"the bucket policy does not deny non-TLS access to {bucket}: add a Deny of s3:* to Principal * on "
        f"arn:aws:s3:::{bucket} and arn:aws:s3:::{bucket}/* when aws:SecureTransport is false"
    ]


BUCKET_GUARDS = (
    (VERSIONING_TYPES, "versioning"),
    (ENCRYPTION_TYPES, "SSE-KMS"),
    (PUBLIC_ACCESS_BLOCK_TYPES, "a public access block"),
    (BUCKET_POLICY_TYPES, "a TLS-only bucket policy"),
)


def _bucket_name(bucket: Resource) -> str:
    name = bucket.props.get("bucket")
    return name if isinstance(name, str) else ""


def _points_at(sub: Resource, bucket: Resource) -> bool:
    """A sub-resource names its bucket by name (real outputs), id, or is wired from it (recorded)."""
    target = sub.props.get("bucket")
    names = {v for v in (bucket.props.get("bucket"), bucket.props.get("id")) if isinstance(v, str) and v}
    return (isinstance(target, str) and target in names) or bucket.urn in _strings(sub.property_dependencies.get("bucket"))


def _guards(resources: Sequence[Resource], bucket: Resource, kinds: set[str]) -> list[Resource]:
    return [r for r in resources if r.type in kinds and _points_at(r, bucket)]


def s3_buckets_guarded(resources: Sequence[Resource]) -> list[tuple[str, str]]:
    """Every bucket (either bucket type) has versioning, SSE-KMS, a public access block and a
    bucket policy that denies plain HTTP on that very bucket.

    The per-resource rules check each of those; this one checks that none is missing.
    """
    violations = []
    for bucket in (r for r in resources if r.type in BUCKET_TYPES):
        missing = [what for kinds, what in BUCKET_GUARDS if not _guards(resources, bucket, kinds)]
        name = _bucket_name(bucket)
        if "a TLS-only bucket policy" not in missing and name:
            policies = _guards(resources, bucket, BUCKET_POLICY_TYPES)
            if not any(
                _denies_plain_http(s, name) for p in policies for s in _statements(_document(p.props.get("policy")))
            ):
                missing.append(f"bucket policy that denies non-TLS access to {name} itself")
        if missing:
            violations.append((bucket.urn, f"bucket {bucket.name} has no {', no '.join(missing)}"))
    return violations


# --- KMS, DynamoDB, CloudTrail ------------------------------------------------------------------


def kms_key_rotation(r: Resource) -> list[str]:
    if r.type != "aws:kms/key:Key":
        return []
    specs = {str(r.props.get(key)) for key in ("keySpec", "customerMasterKeySpec") if r.props.get(key)}
    specs -= {"SYMMETRIC_DEFAULT"}
    if specs:
        return [f"{', '.join(sorted(specs))} keys cannot rotate: only SYMMETRIC_DEFAULT keys are allowed"]
    return [] if r.props.get("enableKeyRotation") is True else ["key rotation is off: set enableKeyRotation"]


def dynamodb_pitr_and_sse(r: Resource) -> list[str]:
    if r.type != "aws:dynamodb/table:Table":
        return []
    problems = []
    if _mapping(r.props.get("pointInTimeRecovery")).get("enabled") is not True:
        problems.append("point-in-time recovery is off")
    sse = _mapping(r.props.get("serverSideEncryption"))
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


# --- role trust ---------------------------------------------------------------------------------

TRUST_ACTIONS = {
    "sts:AssumeRole",
    "sts:AssumeRoleWithWebIdentity",
    "sts:AssumeRoleWithSAML",
    "sts:TagSession",
    "sts:SetSourceIdentity",
    "sts:SetContext",
}


def _trust_document(r: Resource) -> Mapping[str, Any] | None:
    return _document(r.props.get("assumeRolePolicy")) if r.type == "aws:iam/role:Role" else None


def iam_trust_restricted(r: Resource) -> list[str]:
    """Who may assume a role: named principals only. Never everyone (`*`, `{"AWS": "*"}`), never a
    wildcard principal, never `NotPrincipal`, and no federation but GitHub's OIDC provider."""
    document = _trust_document(r)
    if document is None:
        return []
    if document is UNPARSABLE:
        return ["the trust policy is not a JSON policy document"]
    problems = []
    for label, statement in _allows(document):
        if "NotPrincipal" in statement:
            problems.append(f"{label}: Allow with NotPrincipal lets everyone else assume the role")
            continue
        principal = statement.get("Principal")
        if principal != "*" and not isinstance(principal, Mapping):
            problems.append(f"{label}: Principal {principal!r} is not `*` or an object naming principals")
            continue
        if _is_public_principal(principal):
            problems.append(f"{label}: every AWS principal (*) may assume the role")
        for kind, values in _mapping(principal).items():
            for value in _strings(values):
                if value != "*" and _wildcard(value):
                    problems.append(f"{label}: the {kind} principal {value!r} has a wildcard")
        for federated in _principals(principal, "Federated"):
            if not federated.endswith(f":oidc-provider/{GITHUB_OIDC_HOST}"):
                problems.append(f"{label}: federation from {federated!r}; only GitHub's OIDC provider may federate")
        for action in _strings(statement.get("Action")):
            if action not in TRUST_ACTIONS:
                problems.append(f"{label}: the trust grants {action!r}; a trust policy grants only sts:AssumeRole* actions")
    return problems


# --- GitHub OIDC trust --------------------------------------------------------------------------


def _github_statements(r: Resource) -> list[Mapping[str, Any]]:
    return [
        s
        for s in _statements(_trust_document(r))
        if any(GITHUB_OIDC_HOST in p for p in _principals(s.get("Principal"), "Federated"))
    ]


def _subjects(statement: Mapping[str, Any]) -> list[str]:
    equals = _mapping(_mapping(statement.get("Condition")).get("StringEquals"))
    return _strings(equals.get(f"{GITHUB_OIDC_HOST}:sub"))


def oidc_trust_pinned(r: Resource) -> list[str]:
    """A role GitHub may assume pins the audience and matches exact subjects."""
    problems = []
    for index, statement in enumerate(_github_statements(r)):
        label = _label(statement, index)
        if statement.get("Effect") != "Allow":
            continue
        condition = _mapping(statement.get("Condition"))
        equals = _mapping(condition.get("StringEquals"))
        if _strings(equals.get(f"{GITHUB_OIDC_HOST}:aud")) != [STS_AUDIENCE]:
            problems.append(f"{label}: the audience must be exactly {STS_AUDIENCE}")
        subjects = _subjects(statement)
        if not subjects:
            problems.append(f"{label}: no exact `sub` condition (StringEquals)")
        for subject in subjects:
            if _wildcard(subject):
                problems.append(f"{label}: subject {subject!r} has a wildcard")
        for operator, conditions in condition.items():
            if operator != "StringEquals" and any(f"{GITHUB_OIDC_HOST}:sub" in str(k) for k in _mapping(conditions)):
                problems.append(f"{label}: `sub` is matched with {operator}, only StringEquals is exact")
    return problems


def _subject_prefixes(config: PackConfig) -> list[str]:
    """`repo:owner/name:` and, with GitHub's ids, the immutable `repo:owner@ID/name@ID:`."""
    if not config.repository:
        return []
    prefixes = [f"repo:{config.repository}:"]
    owner, _, name = config.repository.partition("/")
    if config.repository_id and config.repository_owner_id and name:
        prefixes.append(f"repo:{owner}@{config.repository_owner_id}/{name}@{config.repository_id}:")
    return prefixes


def _allowed_suffixes(role: str, config: PackConfig) -> set[str]:
    if role == "prod":
        return {DEPLOY_BRANCH_SUBJECT, *(f"environment:{e}" for e in config.prod_environments)}
    if role == "sweeper":
        # A scheduled job on main: only its own environment tells it from any other job on main.
        return {f"environment:{e}" for e in config.sweeper_environments}
    return {PULL_REQUEST_SUBJECT, *(f"environment:{e}" for e in config.preview_environments)}


def deploy_role_subjects(r: Resource, config: PackConfig = PackConfig()) -> list[str]:
    """The prod role trusts only `main` (or its environment) of this repository; the preview and
    cleanup roles only this repository's pull requests (or the preview environment); the sweeper
    role only the sweeper's environment. Any other role GitHub may assume is a violation."""
    statements = _github_statements(r)
    if not statements:
        return []
    role_name = str(r.props.get("name") or "")
    role = names.deploy_role_of(role_name)
    if not role:
        return [f"role {role_name or r.name!r} trusts GitHub but is none of the deploy roles ({', '.join(names.DEPLOY_ROLES)})"]
    prefixes = _subject_prefixes(config)
    if not prefixes:
        return [
            "the pack config names no repository (deploy-role-subjects.repository): pass "
            "`--policy-pack-config` from `python -m policy.pack_config`, or any repository's "
            f"{'main' if role == 'prod' else 'pull requests'} would pass as this one's"
        ]
    allowed = sorted(prefix + suffix for prefix in prefixes for suffix in _allowed_suffixes(role, config))
    if not allowed:
        return [f"the pack config names no environment the {role} role may trust (deploy-role-subjects.{role}Environments)"]
    problems = []
    for statement in statements:
        for subject in _subjects(statement):
            if subject not in allowed:
                problems.append(f"the {role} role must not trust {subject!r} (allowed: {', '.join(allowed)})")
    return problems


# --- IAM permission documents -------------------------------------------------------------------

IDENTITY_POLICY_INPUTS = {
    "aws:iam/rolePolicy:RolePolicy": "policy",
    "aws:iam/policy:Policy": "policy",
    "aws:iam/userPolicy:UserPolicy": "policy",
    "aws:iam/groupPolicy:GroupPolicy": "policy",
}
RESOURCE_POLICY_INPUTS = {
    "aws:s3/bucketPolicy:BucketPolicy": "policy",
    "aws:s3/bucket:Bucket": "policy",
    "aws:s3/bucketV2:BucketV2": "policy",
    "aws:sns/topic:Topic": "policy",
    "aws:sns/topicPolicy:TopicPolicy": "policy",
    "aws:sqs/queuePolicy:QueuePolicy": "policy",
    "aws:cloudwatch/logResourcePolicy:LogResourcePolicy": "policyDocument",
    "aws:secretsmanager/secretPolicy:SecretPolicy": "policy",
}
KEY_POLICY_INPUTS = {
    "aws:kms/key:Key": "policy",
    "aws:kms/keyPolicy:KeyPolicy": "policy",
}


def _policy_documents(r: Resource) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(kind, document) of every permission policy the resource carries (not trust policies)."""
    if r.type in IDENTITY_POLICY_INPUTS:
        document = _document(r.props.get(IDENTITY_POLICY_INPUTS[r.type]))
        if document is not None:
            yield "identity", document
    if r.type == "aws:iam/role:Role":
        for inline in _list(r.props.get("inlinePolicies")):
            document = _document(_mapping(inline).get("policy"))
            if document is not None:
                yield "identity", document
    if r.type in KEY_POLICY_INPUTS:
        document = _document(r.props.get(KEY_POLICY_INPUTS[r.type]))
        if document is not None:
            yield "key", document
    if r.type in RESOURCE_POLICY_INPUTS:
        document = _document(r.props.get(RESOURCE_POLICY_INPUTS[r.type]))
        if document is not None:
            yield "resource", document


KEY_POLICY_ACTION_WILDCARDS = {"kms:GenerateDataKey*"}


def _root_only(principal: Any) -> bool:
    if not isinstance(principal, Mapping) or set(principal) != {"AWS"}:
        return False
    return all(ACCOUNT_ROOT.fullmatch(p) for p in _strings(principal["AWS"]))


def _tag_scoped(statement: Mapping[str, Any]) -> bool:
    """The statement only matches resources carrying a given tag (StringEquals aws:ResourceTag/...)."""
    equals = _mapping(_mapping(statement.get("Condition")).get("StringEquals"))
    return any(str(key).startswith("aws:ResourceTag/") for key in equals)


# Services whose ARNs start with the resource's own name (no type prefix): sns topics, sqs queues,
# s3 buckets. Everywhere else the first segment after the account is the resource type.
NAME_FIRST_SERVICES = {"s3", "sns", "sqs"}


def _broad_resource(resource: str, statement: Mapping[str, Any]) -> str:
    """Why an ARN pattern reaches further than one named resource (or a named prefix), or ''."""
    if not resource.startswith("arn:"):
        return ""  # not an ARN: AWS refuses the document
    _, partition, service, region, account, rest = (resource.split(":", 5) + [""] * 5)[:6]
    if any(_wildcard(p) for p in (partition, service, region, account)):
        return "a wildcard in its partition, service, region or account"
    if service in NAME_FIRST_SERVICES:
        name = re.split(r"[/:]", rest, maxsplit=1)[0]
        return "" if name and not _wildcard(name[0]) else f"every {service} resource"
    kind, separator, name = _split_type(rest)
    if _wildcard(kind):
        return "a wildcard resource type"
    if separator and (not name or _wildcard(name[0])):
        if _tag_scoped(statement):
            return ""  # every `kind` carrying the statement's tag: a scope AWS enforces
        return f"every {kind} ({kind}{separator}{name})"
    return ""


def _split_type(rest: str) -> tuple[str, str, str]:
    match = re.match(r"^([^/:]*)([/:])(.*)$", rest)
    return (match.group(1), match.group(2), match.group(3)) if match else (rest, "", "")


def _wildcard_action(action: str) -> bool:
    return _wildcard(action)


def iam_no_wildcards(r: Resource) -> list[str]:
    """No wildcard in a granted action (`*`, `s3:*`, `iam:Pass*`, `s3:Get*`), no `*` resource, no
    ARN pattern that reaches every resource of a type (`arn:*`, `...:role/*`), except the named
    exceptions; resource policies never grant to everyone."""
    problems = []
    for kind, document in _policy_documents(r):
        for label, statement in _allows(document):  # denies may be as broad as they like
            actions = _strings(statement.get("Action"))
            resources = _strings(statement.get("Resource"))
            if "NotAction" in statement or "NotResource" in statement:
                problems.append(f"{label}: Allow with NotAction/NotResource grants everything else")
            if kind != "identity" and "NotPrincipal" in statement:
                problems.append(f"{label}: Allow with NotPrincipal grants everyone else")
            for action in filter(_wildcard_action, actions):
                if kind == "key" and action == "kms:*" and _root_only(statement.get("Principal")):
                    continue  # KEY_POLICY_EXCEPTIONS["kms:*"]
                if kind == "key" and action in KEY_POLICY_ACTION_WILDCARDS:
                    continue  # KEY_POLICY_EXCEPTIONS["kms:GenerateDataKey*"]
                problems.append(f"{label}: grants the wildcard action {action!r}")
            if kind != "identity" and _is_public_principal(statement.get("Principal")):
                problems.append(f"{label}: grants to every principal (*)")
            if "*" in resources:
                if kind == "key":
                    continue  # KEY_POLICY_EXCEPTIONS["Resource:*"]
                unexplained = sorted(set(actions) - set(WILDCARD_EXCEPTIONS))
                if kind != "identity" or unexplained:
                    problems.append(
                        f"{label}: grants {', '.join(unexplained or actions)} on Resource '*' "
                        "(only the named exceptions may: " + ", ".join(sorted(WILDCARD_EXCEPTIONS)) + ")"
                    )
            for resource in resources:
                if resource == "*":
                    continue
                why = _broad_resource(resource, statement)
                if why:
                    problems.append(f"{label}: the resource {resource!r} reaches {why}; name the resource or a named prefix")
    return problems


MANAGED_POLICY_INPUTS = {
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "policyArn",
    "aws:iam/userPolicyAttachment:UserPolicyAttachment": "policyArn",
    "aws:iam/groupPolicyAttachment:GroupPolicyAttachment": "policyArn",
    "aws:iam/policyAttachment:PolicyAttachment": "policyArn",
    "aws:iam/role:Role": "managedPolicyArns",
    "aws:iam/rolePolicyAttachmentsExclusive:RolePolicyAttachmentsExclusive": "policyArns",
    "aws:iam/userPolicyAttachmentsExclusive:UserPolicyAttachmentsExclusive": "policyArns",
    "aws:iam/groupPolicyAttachmentsExclusive:GroupPolicyAttachmentsExclusive": "policyArns",
}


def iam_managed_policies(r: Resource) -> list[str]:
    """AWS-managed policies grant what AWS decides (AdministratorAccess, `*FullAccess`, ...), out
    of this pack's sight: only the named ones may be attached. Customer-managed policies are
    declared as `aws:iam/policy:Policy`, whose documents the wildcard rule reads."""
    if r.type not in MANAGED_POLICY_INPUTS:
        return []
    problems = []
    for arn in _strings(r.props.get(MANAGED_POLICY_INPUTS[r.type])):
        if AWS_MANAGED_POLICY.match(arn) and arn not in ALLOWED_MANAGED_POLICIES:
            name = arn.rsplit("/", 1)[-1]
            problems.append(
                f"the AWS-managed policy {name} ({arn}) is not allowed: only "
                + ", ".join(sorted(a.rsplit("/", 1)[-1] for a in ALLOWED_MANAGED_POLICIES))
                + " may be attached"
            )
    return problems


# --- the roles that only remove previews -------------------------------------------------------

# Verbs that read or remove. Everything else (Create, Put, Update, Attach, Pass, Tag, Publish,
# Invoke, ...) makes or changes something, which a teardown role never needs.
REMOVE_OR_READ = re.compile(r"[a-z0-9-]+:(Delete|Detach|Remove|Get|List|Describe)[A-Za-z]*")
# Writes a teardown needs all the same, and why; per role.
TEARDOWN_WRITES = {
    "dynamodb:PutItem": "takes the stack's lease (workflow.lease)",
    "dynamodb:UpdateItem": "renews the stack's lease",
    "sts:GetCallerIdentity": "the AWS provider's own check of its credentials",
}
CLEANUP_ONLY = {
    "s3:PutObject": "`pulumi destroy` writes the stack's state (and its lock) after each step",
    "kms:Encrypt": "the previews' state key: the secrets in the state it destroys",
    "kms:Decrypt": "the previews' state key: the secrets in the state it destroys",
    "kms:GenerateDataKey": "the previews' state key: the state objects it writes",
    "kms:DescribeKey": "the previews' state key",
}
# Read actions a teardown role still must not hold.
TEARDOWN_NEVER = {
    "sweeper": {
        "s3:getobject": "the sweeper never reads a state: a PR may have written it",
        "s3:getobjectversion": "the sweeper never reads a state: a PR may have written it",
    },
    "cleanup": {},
}


def _role_of_policy(r: Resource) -> str:
    """The deploy role a permission resource belongs to ('' when none or unknown)."""
    if r.type == "aws:iam/role:Role":
        return names.deploy_role_of(str(r.props.get("name") or ""))
    return names.deploy_role_of(str(r.props.get("role") or ""))


def _is_service_endpoint(via: object, service: str) -> bool:
    """`via` is `service`'s endpoint in some region (the form of `kms:ViaService`)."""
    return re.fullmatch(rf"{re.escape(service)}\.[a-z0-9-]+\.amazonaws\.com", str(via)) is not None


def _only_through(statement: Mapping[str, Any], service: str) -> bool:
    """A statement usable only through `service` (`kms:ViaService` <service>.*), for its data."""
    equals = _mapping(_mapping(statement.get("Condition")).get("StringEquals"))
    via = _strings(equals.get("kms:ViaService"))
    return bool(via) and all(_is_service_endpoint(v, service) for v in via)


def teardown_roles_remove_only(r: Resource) -> list[str]:
    """The sweeper and cleanup roles remove previews and never make or change anything: their
    identity policies allow only reading and removing (Delete, Detach, Remove, Get, List, Describe),
    the stack lease's item writes and the provider's identity check; cleanup also writes the state
    it destroys with the previews' key; the sweeper reads no state object and uses a key only
    through DynamoDB (the lease). No managed policy is attached to them."""
    role = _role_of_policy(r)
    if role not in names.TEARDOWN_ROLES:
        return []
    if r.type in MANAGED_POLICY_INPUTS and _strings(r.props.get(MANAGED_POLICY_INPUTS[r.type])):
        return [f"the {role} role gets no attached policy: its inline policy is all it may do"]
    problems = []
    for kind, document in _policy_documents(r):
        if kind != "identity":
            continue
        for label, statement in _allows(document):
            for action in _strings(statement.get("Action")):
                never = TEARDOWN_NEVER[role].get(action.lower())
                if never:
                    problems.append(f"{label}: the {role} role must not hold {action}: {never}")
                elif action.startswith("kms:"):
                    if role == "cleanup" and action in CLEANUP_ONLY:
                        continue
                    if role == "sweeper" and action in ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey") and _only_through(statement, THROUGH_SERVICE_ONLY["leases"]):
                        continue
                    problems.append(
                        f"{label}: the {role} role may use a key only "
                        + ("for the previews' state" if role == "cleanup" else "through DynamoDB (kms:ViaService), for the lease")
                        + f", not {action}"
                    )
                elif REMOVE_OR_READ.fullmatch(action) and not _wildcard(action):
                    continue
                elif action in TEARDOWN_WRITES or (role == "cleanup" and action in CLEANUP_ONLY):
                    continue
                else:
                    problems.append(f"{label}: the {role} role only removes previews; {action} makes or changes something")
    return problems


# --- one KMS key per trust boundary --------------------------------------------------------------


def _action_covers(granted: str, action: str) -> bool:
    """IAM's action matching, case-insensitive: `kms:*` covers `kms:Decrypt`, `kms:GenerateDataKey*`
    covers `kms:GenerateDataKey`; an action of the form `x*` is covered only by a pattern of it."""
    return fnmatch.fnmatchcase(action.lower().rstrip("*"), granted.lower()) or granted.lower() == action.lower()


def _uses_a_key(actions: list[str]) -> list[str]:
    return [a for a in actions if any(_action_covers(a, use) or _action_covers(use, a) for use in KEY_USE_ACTIONS)]


def _principal_roles(statement: Mapping[str, Any]) -> set[str]:
    """The deploy roles a key policy statement's `aws:PrincipalArn` condition names."""
    found = set()
    for operator in ("ArnEquals", "ArnLike", "StringEquals", "StringLike"):
        for arn in _strings(_mapping(_mapping(statement.get("Condition")).get(operator)).get("aws:PrincipalArn")):
            role = names.deploy_role_of(arn.rsplit(":role/", 1)[-1]) if ":role/" in arn else ""
            if role:
                found.add(role)
    return found


def _denies(statements: list[Mapping[str, Any]], role: str, actions: Sequence[str], *, unless_service: str = "") -> bool:
    """A Deny of `actions` to `role` (by `aws:PrincipalArn`), with no other condition than
    `kms:ViaService` not `unless_service` when one is given."""
    for statement in statements:
        if statement.get("Effect") != "Deny" or role not in _principal_roles(statement):
            continue
        denied = _strings(statement.get("Action"))
        if not all(any(_action_covers(d, a) for d in denied) for a in actions):
            continue
        others = {op for op in _mapping(statement.get("Condition")) if op not in ("ArnEquals", "ArnLike")}
        via = _mapping(_mapping(statement.get("Condition")).get("StringNotEquals")).get("kms:ViaService")
        if unless_service and others == {"StringNotEquals"} and _is_service_endpoint(via, unless_service):
            return True
        if not unless_service and not others:
            return True
    return False


def _boundary_of(r: Resource) -> str:
    tags = {**_mapping(r.props.get("tagsAll")), **_mapping(r.props.get("tags"))}
    return str(tags.get(KEY_BOUNDARY_TAG) or "")


def kms_key_boundary(r: Resource) -> list[str]:
    """Every key names the trust boundary it serves (tag `trust-boundary`), and its own policy holds
    it there: every deploy role that is not a user of that boundary's key is denied (the roles of
    the pull requests' side everything, prod's role every use) whatever an IAM policy grants, and a
    key used through one service only (DynamoDB, S3) denies its users any other use (core/iam.py
    KEY_USERS, THROUGH_SERVICE_ONLY)."""
    if r.type != "aws:kms/key:Key":
        return []
    boundary = _boundary_of(r)
    if boundary not in KEY_USERS:
        return [
            f"a key names the trust boundary it serves: tag {KEY_BOUNDARY_TAG} = one of {', '.join(KEY_USERS)}, "
            f"got {boundary!r}"
        ]
    document = _document(r.props.get("policy"))
    if document is None:
        return [f"the {boundary} key needs a policy of its own: the default lets any role an IAM policy names use it"]
    statements = _statements(document)
    problems = []
    for role in names.DEPLOY_ROLES:
        if role in KEY_USERS[boundary]:
            continue
        required = ["kms:*"] if role in PR_SIDE_ROLES else list(KEY_USE_ACTIONS)
        if not _denies(statements, role, required):
            problems.append(
                f"the {boundary} key's policy must deny the {role} role "
                + ("everything (kms:*)" if role in PR_SIDE_ROLES else f"every use ({', '.join(KEY_USE_ACTIONS)})")
                + " by aws:PrincipalArn: it is not a user of this trust boundary's key"
            )
    service = THROUGH_SERVICE_ONLY.get(boundary)
    if service:
        for role in KEY_USERS[boundary]:
            if not _denies(statements, role, list(KEY_USE_ACTIONS), unless_service=service):
                problems.append(
                    f"the {boundary} key's policy must deny the {role} role every use except through {service} (kms:ViaService)"
                )
    return problems


def kms_use_within_boundary(resources: Sequence[Resource]) -> list[tuple[str, str]]:
    """Each deploy role's own policy uses only the keys of its trust boundary (through one service
    only where the boundary says so) and denies the use of the other side's keys that hold data. Needs the keys'
    ARNs: during a preview of new keys they are unknown, and the rule is left to the `up`."""
    keys = {str(r.props.get("arn")): _boundary_of(r) for r in resources if r.type == "aws:kms/key:Key" and isinstance(r.props.get("arn"), str)}
    if not keys:
        return []
    violations = []
    for r in resources:
        role = _role_of_policy(r)
        if not role:
            continue
        for kind, document in _policy_documents(r):
            if kind != "identity":
                continue
            denied_keys: set[str] = set()
            for index, statement in enumerate(_statements(document)):
                label = _label(statement, index)
                actions = _strings(statement.get("Action"))
                reached = {arn: b for arn, b in keys.items() if any(arn_matches(p, arn) for p in _strings(statement.get("Resource")))}
                if statement.get("Effect") == "Deny":
                    if all(any(_action_covers(a, use) for a in actions) for use in KEY_USE_ACTIONS):
                        denied_keys |= set(reached)
                    continue
                if statement.get("Effect") != "Allow" or not _uses_a_key(actions):
                    continue
                for arn, boundary in reached.items():
                    if role not in KEY_USERS.get(boundary, ()):
                        violations.append((r.urn, f"{label}: the {role} role may not use the {boundary or 'untagged'} key {arn}"))
                    elif boundary in THROUGH_SERVICE_ONLY and not _only_through(statement, THROUGH_SERVICE_ONLY[boundary]):
                        violations.append(
                            (r.urn, f"{label}: the {role} role may use the {boundary} key only through {THROUGH_SERVICE_ONLY[boundary]}")
                        )
            for arn, boundary in keys.items():
                if boundary in DENIED_BY_OUTSIDERS and role not in KEY_USERS[boundary] and arn not in denied_keys:
                    violations.append(
                        (r.urn, f"the {role} role's policy must deny the use of the {boundary} key {arn} (its other side of the trust boundary)")
                    )
    return violations


# --- DynamoDB items: only under a key condition -----------------------------------------------

# Actions that read or write table items. The lock table holds every stack's lease: a deploy role
# may reach only its own stacks' items, which IAM enforces with `dynamodb:LeadingKeys`.
DYNAMODB_ITEM_ACTIONS = frozenset(
    a.lower()
    for a in (
        "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
        "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:Query", "dynamodb:Scan",
        "dynamodb:ConditionCheckItem", "dynamodb:PartiQLSelect", "dynamodb:PartiQLInsert",
        "dynamodb:PartiQLUpdate", "dynamodb:PartiQLDelete", "dynamodb:*", "*",
    )
)  # fmt: skip


def _keyed_by_leading_keys(statement: Mapping[str, Any]) -> bool:
    """A `ForAllValues:` condition on `dynamodb:LeadingKeys`, and `Null` false for it: without the
    Null test, a request that names no key would pass `ForAllValues` vacuously."""
    condition = _mapping(statement.get("Condition"))
    keyed = any(
        operator.startswith("ForAllValues:") and "dynamodb:LeadingKeys" in _mapping(values)
        for operator, values in condition.items()
    )
    null = _mapping(condition.get("Null")).get("dynamodb:LeadingKeys")
    return keyed and str(null).lower() == "false"


def dynamodb_items_by_key(r: Resource) -> list[str]:
    problems = []
    for kind, document in _policy_documents(r):
        if kind != "identity":
            continue
        for label, statement in _allows(document):
            granted = sorted({a for a in _strings(statement.get("Action")) if a.lower() in DYNAMODB_ITEM_ACTIONS})
            if granted and not _keyed_by_leading_keys(statement):
                problems.append(
                    f"{label} grants DynamoDB item access ({', '.join(granted)}) without a "
                    "ForAllValues condition on dynamodb:LeadingKeys (and Null=false): a role may reach only "
                    "its own stacks' lease items"
                )
    return problems


# --- Lambda Invoke for the pre-traffic check ----------------------------------------------------

LAMBDA_INVOKE_ACTIONS = frozenset({"lambda:invokefunction", "lambda:invoke*", "lambda:*", "*"})
# arn:aws:lambda:REGION:ACCOUNT:function:NAME:QUALIFIER
_LAMBDA_FUNCTION_ARN = re.compile(r"arn:aws[a-z-]*:lambda:[^:]+:[^:]+:function:(?P<name>[^:]+)(?::(?P<qualifier>.+))?")


def _identity_grants(r: Resource, actions: set[str]) -> Iterator[tuple[str, str]]:
    """(statement label, resource) of every identity-policy Allow that grants one of `actions`."""
    for kind, document in _policy_documents(r):
        if kind != "identity":
            continue
        for label, statement in _allows(document):
            if {a.lower() for a in _strings(statement.get("Action"))} & actions:
                for resource in _strings(statement.get("Resource")):
                    yield label, resource


def lambda_invoke_scoped(r: Resource) -> list[str]:
    """Invoke is granted by an identity policy only for prod's pre-traffic check: on qualified ARNs
    (versions) of one prod function, named without a wildcard. A PR's role never invokes (its
    check goes through the preview's public URL), and nobody invokes an unqualified function."""
    problems = []
    for label, resource in _identity_grants(r, LAMBDA_INVOKE_ACTIONS):
        match = _LAMBDA_FUNCTION_ARN.fullmatch(resource)
        if resource == "*" or match is None:
            problems.append(f"{label} grants lambda:InvokeFunction on {resource!r}, not on a function's versions")
        elif _wildcard(match["name"]) or not match["name"].endswith(f"-{PROD_STACK}"):
            problems.append(
                f"{label} grants lambda:InvokeFunction on {resource!r}: only prod's "
                "function may be invoked (its pre-traffic check), named exactly"
            )
        elif not match["qualifier"]:
            problems.append(
                f"{label} grants lambda:InvokeFunction on the unqualified {resource!r}: "
                "only published versions (`:*` or `:N`) are invoked"
            )
    return problems


# --- Lambda function URLs -----------------------------------------------------------------------


def function_url_intended(r: Resource, config: PackConfig = PackConfig()) -> list[str]:
    """Documented choice: a function URL without IAM auth (`NONE`) is allowed because the API checks
    JWTs itself and `/health` is public, but only with CORS admitting exactly the stack's own site
    (`siteOrigin` in the pack config; never `*`, never another origin), and in prod only on the
    alias `stable`. Public invoke permissions exist only for that URL."""
    if r.type == "aws:lambda/functionUrl:FunctionUrl":
        if r.props.get("authorizationType") != "NONE":
            return []
        problems = []
        cors = _mapping(r.props.get("cors"))
        origins = _strings(cors.get("allowOrigins"))
        if len(origins) != 1 or not ORIGIN.fullmatch(origins[0]):
            problems.append(
                f"a public URL must admit exactly one https site origin (http only on loopback) in CORS, got {origins}"
            )
        elif not config.site_origin:
            problems.append(
                "the pack config names no site origin (function-url-intended.siteOrigin): pass "
                "`--policy-pack-config` from `python -m policy.pack_config`, or any origin would pass as the site"
            )
        elif origins[0] != config.site_origin:
            problems.append(f"a public URL must admit only the stack's site {config.site_origin} in CORS, got {origins[0]}")
        if _truthy(cors.get("allowCredentials")):
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


def lambda_concurrency_bounded(r: Resource) -> list[str]:
    """A function's executions, and so the database connections they hold, are bounded: reserved
    concurrency of at least 1 (unset or -1 is the account's whole pool; 0 throttles every call),
    and a function given a DATABASE_URL also gets DB_POOL_SIZE, a whole number of at least 1.
    The budget itself (functions x concurrency x pool size) is checked by the settings."""
    if r.type != "aws:lambda/function:Function":
        return []
    problems = []
    reserved = r.props.get("reservedConcurrentExecutions")
    if isinstance(reserved, bool) or not isinstance(reserved, (int, float)) or reserved < 1:
        problems.append(
            f"reservedConcurrentExecutions must be at least 1 (`apiReservedConcurrency`), got {reserved!r}: "
            "unbounded executions run the database out of connections"
        )
    variables = _mapping(_mapping(r.props.get("environment")).get("variables"))
    if "DATABASE_URL" in variables:
        size = str(variables.get("DB_POOL_SIZE", ""))
        if not (size.isdigit() and int(size) >= 1):
            problems.append(f"a function with DATABASE_URL needs DB_POOL_SIZE >= 1 (`apiPoolSize`), got {size[:20]!r}")
    return problems


# --- build outputs -------------------------------------------------------------------------------

# S3 actions that write or remove objects (or what decides who may read them).
S3_OBJECT_WRITES = {
    "s3:putobject", "s3:deleteobject", "s3:deleteobjectversion", "s3:putobjectacl", "s3:putobjectversionacl",
    "s3:putobjecttagging", "s3:restoreobject", "s3:putobjectretention", "s3:putobjectlegalhold",
}  # fmt: skip
_S3_OBJECT_ARN = re.compile(r"arn:aws[a-z-]*:s3:::(?P<bucket>[^/]+)/(?P<key>.*)")
# An image pinned by digest cannot change under the function.
_IMAGE_DIGEST = re.compile(r".+@sha256:[0-9a-f]{64}")


def lambda_code_pinned(r: Resource) -> list[str]:
    """A function's code is an object someone can fetch from anywhere and that cannot change under
    it: an S3 object with its version pinned (what the builds publish: steps.artifacts), or an image
    by digest. Never a local archive or file (`code`, `filename`): a later run on another runner (a
    config change, a replacement, a refresh first, which empties a Command's `archive` upstream)
    would need files only the build's runner had."""
    if r.type != "aws:lambda/function:Function":
        return []
    props = r.props
    if props.get("code") is not None or props.get("filename"):
        return [
            "the function's code is a local archive or file (`code`/`filename`): a deploy on another runner cannot "
            "read it; publish the bundle (steps.artifacts) and give the function s3Bucket/s3Key/s3ObjectVersion"
        ]
    if props.get("imageUri"):
        return [] if _IMAGE_DIGEST.fullmatch(str(props["imageUri"])) else ["an image function must name its image by digest (@sha256:...)"]
    missing = [key for key in ("s3Bucket", "s3Key", "s3ObjectVersion") if not props.get(key)]
    if missing:
        return [f"the function's code must be a pinned S3 object: {', '.join(missing)} not set"]
    return []


def s3_object_writes_scoped(r: Resource) -> list[str]:
    """An identity policy writes S3 objects under a named key prefix only (a stack's state, a
    stack's artifacts), never anywhere in a bucket: one stack's role then cannot overwrite what
    another stack deploys or restores."""
    problems = []
    for label, resource in _identity_grants(r, S3_OBJECT_WRITES):
        match = _S3_OBJECT_ARN.fullmatch(resource)
        prefix = match["key"].split("/", 1)[0] if match else ""
        if resource == "*" or match is None or not prefix or _wildcard(prefix):
            problems.append(f"{label} writes objects on {resource!r}: name a key prefix (a stack's own), not a whole bucket")
    return problems


# --- protection and secrets ---------------------------------------------------------------------


def stateful_protected(r: Resource) -> list[str]:
    """Every resource of core/stateful.py's STATEFUL_TYPES is protected; in prod, so is every
    Command of the Database component (recognised by the URN's parent types, not by its text)."""
    if r.type in STATEFUL_TYPES and not r.protect:
        return [f"{r.type} holds state nobody can recreate: set protect=True (and retain_on_delete)"]
    if r.type in COMMAND_TYPES and r.stack == PROD_STACK and not r.protect:
        if DATABASE_COMPONENT in r.parent_types:
            return [f"prod's database Commands ({DATABASE_COMPONENT}) must be protected: {r.name} is not"]
        if any(SCHEMA_STEP.search(str(r.props.get(name) or "")) for name in ("create", "update", "delete")):
            return [f"prod's database schema Command {r.name} must be protected"]
    return []


def _random_token(text: str) -> str:
    """A long, high-entropy run mixing upper case, lower case and digits, or ''."""
    for token in RANDOM_TOKEN.findall(text):
        if re.fullmatch(r"[0-9a-fA-F.-]+", token):
            continue  # digests, UUIDs, account and resource ids
        if min(len(re.findall(c, token)) for c in ("[a-z]", "[A-Z]", "[0-9]")) < 2:
            continue
        counts = Counter(token)
        bits = -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())
        if bits >= RANDOM_TOKEN_BITS_PER_CHAR:
            return token
    return ""


def _value_findings(where: str, value: Any) -> list[str]:
    """A credential in a value of any shape (strings inside lists and objects too)."""
    if isinstance(value, Mapping):
        return [m for k, v in value.items() for m in _value_findings(f"{where}.{k}", v)]
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):  # lists, and the SDK's list proxies
        return [m for i, v in enumerate(value) for m in _value_findings(f"{where}[{i}]", v)]
    if not isinstance(value, str) or not value:
        return []
    if any(pattern.search(value) for pattern in SECRET_VALUES):
        return [f"{where} carries a credential in plain text"]
    if _random_token(value):
        return [f"{where} carries a long random token (a key or password?) in plain text"]
    return []


def _named_findings(what: str, values: Any) -> list[str]:
    problems = []
    for key, value in _mapping(values).items():
        if value is None or value == "":
            continue
        if SECRET_NAME.search(str(key)):
            problems.append(f"{what} {str(key)!r} is named like a secret: secrets never go into {what}s")
        else:
            problems += _value_findings(f"{what} {str(key)!r}", value)
    return problems


def no_plaintext_secrets(r: Resource) -> list[str]:
    problems = _named_findings("tag", r.props.get("tags"))
    if r.type in COMMAND_TYPES:
        problems += _named_findings("Command environment variable", r.props.get("environment"))
        for name, value in r.props.items():
            if name != "environment":
                problems += _value_findings(f"Command {name}", value)
    return problems


# --- the allow-list: what the program may declare ------------------------------------------------
#
# The rules above refuse shapes known to be dangerous; a shape nobody thought of passes them. These
# refuse everything the program does not declare: a type outside DECLARABLE_TYPES (for the kind of
# stack at hand), a provider setting outside PROVIDER_SETTINGS, a role that is none of the program's
# kinds or trusts anyone but that kind's principal, an attached policy that is not one of
# ALLOWED_MANAGED_POLICIES, a resource policy naming a principal its type does not allow, and a
# wildcard in a preview role's ARN anywhere but `preview-pr-*`. Growing the program means growing
# these tables.

FOUNDATION = frozenset({PROD_STACK})
EVERY_STACK = frozenset({PROD_STACK, names.PREVIEW_STACK, "pr"})
# Every type the program declares, and the kinds of stack that may declare it: prod owns the account
# foundation; previews own a function, its execution role and URL, a DNS record, a Pages domain and
# their Commands. Resource-policy types it does not declare (SQS, Secrets Manager, ECR, DynamoDB
# resource policies, Lambda layer permissions, KMS grants, external and replica keys, ...) are
# refused by not being here.
DECLARABLE_TYPES: dict[str, frozenset[str]] = {
    # What holds state (core/stateful.py) is the account foundation's, all prod's; the program
    # declares each of those types but the V2 bucket.
    **{type_: FOUNDATION for type_ in STATEFUL_TYPES if not type_.endswith("V2")},
    "aws:cloudwatch/logMetricFilter:LogMetricFilter": FOUNDATION,
    "aws:cloudwatch/metricAlarm:MetricAlarm": FOUNDATION,
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": FOUNDATION,
    "aws:iam/role:Role": EVERY_STACK,
    "aws:iam/rolePolicy:RolePolicy": FOUNDATION,
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": EVERY_STACK,
    "aws:lambda/alias:Alias": FOUNDATION,
    "aws:lambda/function:Function": EVERY_STACK,
    "aws:lambda/functionUrl:FunctionUrl": EVERY_STACK,
    "aws:lambda/permission:Permission": EVERY_STACK,
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": FOUNDATION,
    # The artifacts bucket's lifecycle (issue 26, branch `fidelity`): allowed ahead of its landing.
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": FOUNDATION,
    "aws:s3/bucketPolicy:BucketPolicy": FOUNDATION,
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": FOUNDATION,
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": FOUNDATION,
    "aws:s3/bucketVersioning:BucketVersioning": FOUNDATION,
    "aws:sns/topic:Topic": FOUNDATION,
    "aws:sns/topicSubscription:TopicSubscription": FOUNDATION,
    "cloudflare:index/dnsRecord:DnsRecord": EVERY_STACK,
    "cloudflare:index/pagesDomain:PagesDomain": EVERY_STACK,
    "command:local:Command": EVERY_STACK,
}
# What each provider the program configures may be told. Anything else (assumeRole, access keys,
# a profile, endpoints, a proxy, a CA bundle, skipping the metadata checks, ...) changes whose
# credentials it uses or where its calls go.
PROVIDER_SETTINGS: dict[str, frozenset[str]] = {
    "pulumi:providers:aws": frozenset({"region", "defaultTags", "skipCredentialsValidation", "skipRegionValidation", "version"}),
    "pulumi:providers:cloudflare": frozenset({"version"}),
    "pulumi:providers:command": frozenset({"version"}),
}
# Provider settings that must keep the program's value.
PROVIDER_VALUES = {("pulumi:providers:aws", "skipCredentialsValidation"): ("false", False)}
ROOT_STACK_TYPE = "pulumi:pulumi:Stack"


def _stack_kind(stack: str) -> str:
    """prod, preview (the template) or pr; '' for a name that is none of them."""
    if stack in (PROD_STACK, names.PREVIEW_STACK):
        return stack
    match = names.PR_STACK.fullmatch(stack)
    return "pr" if match and names.PR_NUMBER.fullmatch(match["number"]) else ""


def _project(r: Resource) -> str:
    parts = r.urn.split("::")
    return parts[1] if len(parts) > 1 else ""


def declared_types(r: Resource) -> list[str]:
    """Only the types the program declares, each in the stacks that may declare it; providers with
    the program's settings only."""
    kind = _stack_kind(r.stack)
    if not kind:
        return [f"stack {r.stack!r} is none of prod, preview or preview-pr-<N>"]
    if r.type == ROOT_STACK_TYPE or (_project(r) and r.type.startswith(f"{_project(r)}:index:")):
        return []  # the stack itself and the program's components, which hold nothing themselves
    if r.type in PROVIDER_SETTINGS:
        extra = sorted(k for k in r.props if k not in PROVIDER_SETTINGS[r.type] and not k.startswith("__"))
        problems = [f"the {r.type} provider may not be given {', '.join(extra)}: the program sets none of them"] if extra else []
        for (type_, key), allowed in PROVIDER_VALUES.items():
            if r.type == type_ and key in r.props and r.props[key] not in allowed:
                problems.append(f"the {r.type} provider's {key} must stay {allowed[0]}, got {r.props[key]!r}")
        return problems
    stacks = DECLARABLE_TYPES.get(r.type)
    if stacks is None:
        return [f"the program declares no {r.type}: this pack allows only the types it declares (DECLARABLE_TYPES)"]
    if kind not in stacks:
        return [f"{r.type} belongs to the account foundation, which only prod declares; a {kind} stack may not"]
    return []


# Who may be named in each kind of policy document, per resource type. Allow statements only: a Deny
# names whom it refuses. `{account}` is the stack's account (pack config), `{region}` any region.
GITHUB_FEDERATION = rf"arn:aws:iam::{{account}}:oidc-provider/{re.escape(GITHUB_OIDC_HOST)}"
ALLOWED_PRINCIPALS: dict[str, dict[str, tuple[str, ...]]] = {
    "aws:s3/bucketPolicy:BucketPolicy": {"Service": ("cloudtrail.amazonaws.com",)},
    "aws:kms/key:Key": {
        "AWS": (r"arn:aws:iam::{account}:root", r"arn:aws:iam::{account}:role/{deploy_role}"),
        "Service": ("cloudtrail.amazonaws.com", r"logs\.[a-z0-9-]+\.amazonaws\.com", "cloudwatch.amazonaws.com"),
    },
    "aws:sns/topic:Topic": {"Service": ("cloudwatch.amazonaws.com",)},
}
# A role's kind from its name, and the one principal that kind is assumed by (trust policies).
ROLE_TRUST: dict[str, tuple[str, str, str]] = {
    # kind: (principal kind, principal pattern, action)
    "deploy": ("Federated", GITHUB_FEDERATION, "sts:AssumeRoleWithWebIdentity"),
    "execution": ("Service", re.escape("lambda.amazonaws.com"), "sts:AssumeRole"),
    "trail-logs": ("Service", re.escape("cloudtrail.amazonaws.com"), "sts:AssumeRole"),
}


def _role_kind(role_name: str, r: Resource) -> str:
    """deploy, execution (the stack's own function's) or trail-logs (prod's), or ''."""
    project = _project(r)
    if names.deploy_role_of(role_name) and r.stack == PROD_STACK:
        return "deploy"
    if project and role_name == names.execution_role_name(project, r.stack):
        return "execution"
    if project and r.stack == PROD_STACK and role_name == names.foundation_names(project, "0")["trail_logs_role"]:
        return "trail-logs"
    return ""


# Any project's deploy role name, as core.names spells them (its named groups made plain).
DEPLOY_ROLE = "(?:" + re.sub(r"\(\?P<\w+>", "(?:", names.DEPLOY_ROLE_NAME.pattern) + ")"
NO_ACCOUNT = (
    "the pack config names no AWS account (accountId): pass `--policy-pack-config` from "
    "`python -m policy.pack_config`, or a principal of any account would pass as this one's"
)


def _account_pattern(pattern: str, config: PackConfig) -> re.Pattern[str]:
    account = re.escape(config.account_id) if config.account_id else "[0-9]{12}"
    return re.compile(pattern.replace("{account}", account).replace("{deploy_role}", DEPLOY_ROLE))


def _allows(document: Mapping[str, Any] | None) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(label, statement) of each Allow statement of `document`."""
    for index, statement in enumerate(_statements(document)):
        if statement.get("Effect") == "Allow":
            yield _label(statement, index), statement


def _principal_problems(label: str, principal: Any, allowed: Mapping[str, Sequence[str]], config: PackConfig) -> list[str]:
    if principal == "*" or not isinstance(principal, Mapping):
        return [f"{label}: names every principal ({principal!r}); allowed: {_allowed_text(allowed)}"]
    problems = []
    for kind, values in principal.items():
        patterns = [_account_pattern(p, config) for p in allowed.get(str(kind), ())]
        for value in _strings(values):
            if not any(p.fullmatch(value) for p in patterns):
                problems.append(f"{label}: the {kind} principal {value!r} is not one this type allows ({_allowed_text(allowed)})")
    return problems


def _allowed_text(allowed: Mapping[str, Sequence[str]]) -> str:
    return "; ".join(f"{kind}: {', '.join(p.replace(chr(92), '') for p in patterns)}" for kind, patterns in allowed.items()) or "none"


def role_shapes(r: Resource, config: PackConfig = PackConfig()) -> list[str]:
    """A role is one of the program's kinds (the deploy roles, in prod; the stack's own function's
    execution role; prod's CloudTrail-to-logs role), trusted by exactly that kind's principal (the
    account's GitHub OIDC provider; Lambda; CloudTrail) for that kind's action, and carries no
    policy by ARN. Another role, an account, a bare account id or `Service: *` in a trust, is refused."""
    if r.type != "aws:iam/role:Role":
        return []
    if not config.account_id:
        return [NO_ACCOUNT]
    role_name = str(r.props.get("name") or "")
    kind = _role_kind(role_name, r)
    if not kind:
        return [
            f"role {role_name or r.name!r} is none of the program's roles (in prod the deploy roles and the trail's; "
            f"in every stack its own function's execution role {names.execution_role_name(_project(r), r.stack)!r})"
        ]
    problems = []
    if _strings(r.props.get("managedPolicyArns")):
        problems.append(f"the {kind} role carries managedPolicyArns: the program attaches policies by their own resources only")
    if _list(r.props.get("inlinePolicies")) and kind != "trail-logs":
        problems.append(f"the {kind} role carries inline policies: its policy is a RolePolicy of its own (prod) or none")
    document = _trust_document(r)
    if document is None or document is UNPARSABLE:
        return [*problems, "the trust policy is missing or not a JSON policy document"]
    principal_kind, pattern, action = ROLE_TRUST[kind]
    allowed = {principal_kind: (pattern,)}
    for label, statement in _allows(document):
        if "NotPrincipal" in statement or "NotAction" in statement:
            problems.append(f"{label}: NotPrincipal/NotAction widen the trust beyond the {kind} role's principal")
            continue
        problems += _principal_problems(label, statement.get("Principal"), allowed, config)
        actions = _strings(statement.get("Action"))
        if actions != [action]:
            problems.append(f"{label}: the {kind} role is assumed with {action} only, got {actions}")
    return problems


def attached_policies(r: Resource) -> list[str]:
    """A policy is attached only to the stack's own execution role, and only one of
    ALLOWED_MANAGED_POLICIES, by its exact ARN: never another ARN (an account's existing admin
    policy attached by ARN passes for a customer-managed one), never to a deploy role."""
    if r.type != "aws:iam/rolePolicyAttachment:RolePolicyAttachment":
        return []
    problems = []
    arn = r.props.get("policyArn")
    if arn not in ALLOWED_MANAGED_POLICIES:
        problems.append(f"the policy {arn!r} may not be attached: only {', '.join(sorted(ALLOWED_MANAGED_POLICIES))}")
    role = str(r.props.get("role") or "")
    if _role_kind(role.rsplit("/", 1)[-1], r) != "execution":
        problems.append(f"a policy may be attached only to this stack's execution role, not {role!r}")
    return problems


def resource_policy_principals(r: Resource, config: PackConfig = PackConfig()) -> list[str]:
    """Each resource policy of a type the program declares names only the principals that type
    allows (ALLOWED_PRINCIPALS) in its Allow statements; a type whose policy the program never sets
    (an S3 bucket's own `policy`, ...) carries none. A Lambda permission goes to everyone only through
    the function URL (function-url-intended), never to an account, a role or a service."""
    if r.type == "aws:lambda/permission:Permission":
        principal = r.props.get("principal")
        return [] if principal == "*" else [f"a Lambda permission for {principal!r}: the program grants only its public URL ('*')"]
    problems = []
    for kind, document in _policy_documents(r):
        if kind == "identity":
            continue
        if not config.account_id:
            return [NO_ACCOUNT]
        allowed = ALLOWED_PRINCIPALS.get(r.type)
        if allowed is None:
            problems.append(f"{r.type} carries a {kind} policy, which the program never sets on it")
            continue
        for label, statement in _allows(document):
            if "NotPrincipal" in statement:
                problems.append(f"{label}: an Allow with NotPrincipal grants everyone else")
                continue
            problems += _principal_problems(label, statement.get("Principal"), allowed, config)
    return problems


# A wildcard in a preview-side role's ARN is the PR stacks' own pattern (`preview-pr-*`), or one
# trailing `*` after it (a function's versions `:*`, a state file's backups `.json*`, a stack's
# objects `/*`). Any shorter prefix (`webstack-api-p*`, `webstack-*`, `...-preview*`) also matches
# prod's or the template's names: a wildcard across the trust boundary.
PREVIEW_SIDE_ROLES = frozenset({"preview"}) | frozenset(getattr(names, "TEARDOWN_ROLES", ()))


def _preview_reach(resource: str) -> str:
    """Why a preview-side ARN pattern reaches beyond the PR stacks' own names, or ''."""
    if resource == "*" or not _wildcard(resource):
        return ""  # `*` alone: the named exceptions of iam-no-wildcards
    if "?" in resource:
        return "a `?` wildcard"
    fixed = resource.replace(names.PR_STACKS, "preview-pr-N")
    if "preview-pr-N" not in fixed:
        return "a wildcard in a name that is not the PR stacks' pattern (preview-pr-*)"
    if "*" in fixed.removesuffix("*"):
        return "a wildcard outside the PR stacks' pattern (preview-pr-*)"
    return ""


def preview_role_reach(r: Resource) -> list[str]:
    """The preview-side roles' grants name the PR stacks' resources by the PR stacks' own pattern
    (`<...>preview-pr-*<...>`): a prefix that would also match prod's or the template's names acts
    as a wildcard across the trust boundary."""
    if r.type != "aws:iam/rolePolicy:RolePolicy":
        return []
    role = names.deploy_role_of(str(r.props.get("role") or "").rsplit("/", 1)[-1])
    if role not in PREVIEW_SIDE_ROLES:
        return []
    problems = []
    for _, document in _policy_documents(r):
        for label, statement in _allows(document):
            for resource in _strings(statement.get("Resource")):
                why = _preview_reach(resource)
                if why:
                    problems.append(f"{label}: the {role} role's {resource!r} has {why}")
    return problems


# --- the pack -----------------------------------------------------------------------------------

ResourceRule = Callable[..., list[str]]

RESOURCE_RULES: dict[str, tuple[str, ResourceRule]] = {
    "s3-public-access-blocked": ("S3 public access blocks set all four flags.", s3_public_access_blocked),
    "s3-versioning-enabled": ("S3 bucket versioning is Enabled.", s3_versioning_enabled),
    "s3-kms-encrypted": ("S3 default encryption is SSE-KMS with a customer-managed key.", s3_kms_encrypted),
    "s3-tls-only": ("S3 bucket policies deny every request without TLS to their own bucket.", s3_tls_only),
    "kms-key-rotation": ("KMS keys rotate yearly.", kms_key_rotation),
    "dynamodb-pitr-and-sse": ("DynamoDB tables have PITR and SSE with a customer-managed key.", dynamodb_pitr_and_sse),
    "cloudtrail-secure": ("CloudTrail is multi-region, validated and KMS-encrypted.", cloudtrail_secure),
    "iam-trust-restricted": (
        "Roles are assumable by named principals only: never `*`, a wildcard, NotPrincipal, or a "
        "federation other than GitHub's OIDC provider.",
        iam_trust_restricted,
    ),
    "oidc-trust-pinned": ("GitHub OIDC trust pins aud=sts.amazonaws.com and exact subjects.", oidc_trust_pinned),
    "deploy-role-subjects": (
        "The prod role trusts only this repository's main (or its environment); the preview and cleanup "
        "roles only its pull requests (or the preview environment); the sweeper role only its own environment.",
        deploy_role_subjects,
    ),
    "iam-no-wildcards": (
        "No IAM grant of wildcard actions (full or partial), `*` resources or whole-type ARN patterns "
        "outside the named exceptions; no resource policy grants to everyone.",
        iam_no_wildcards,
    ),
    "iam-managed-policies": ("No AWS-managed policy but the named ones is attached to a role.", iam_managed_policies),
    "kms-key-boundary": (
        "Every KMS key names its trust boundary, and its policy denies every deploy role that is not a user of it.",
        kms_key_boundary,
    ),
    "teardown-roles-remove-only": (
        "The sweeper and cleanup roles only read and remove: no create, update, pass or attach; the sweeper "
        "reads no state object and uses a key only through DynamoDB.",
        teardown_roles_remove_only,
    ),
    "dynamodb-items-by-key": (
        "DynamoDB item actions are granted only for the role's own keys (dynamodb:LeadingKeys).",
        dynamodb_items_by_key,
    ),
    "lambda-invoke-scoped": (
        "lambda:InvokeFunction only on qualified ARNs (versions) of prod's function, for its pre-traffic check.",
        lambda_invoke_scoped,
    ),
    "function-url-intended": (
        "Public function URLs only on prod's alias `stable`, CORS exactly the stack's own site.",
        function_url_intended,
    ),
    "lambda-concurrency-bounded": (
        "Functions have a reserved concurrency of at least 1, and a pool size with a DATABASE_URL.",
        lambda_concurrency_bounded,
    ),
    "lambda-code-pinned": (
        "Functions run a pinned S3 object (or an image by digest), never a local archive a later runner lacks.",
        lambda_code_pinned,
    ),
    "s3-object-writes-scoped": ("S3 object writes are granted under a named key prefix, never a whole bucket.", s3_object_writes_scoped),
    "stateful-protected": ("Stateful resources (core/stateful.py) and prod's database Commands are protected.", stateful_protected),
    "no-plaintext-secrets": ("No secret in a tag or a Command input.", no_plaintext_secrets),
    "declared-types": (
        "Only the types the program declares (DECLARABLE_TYPES), each in the stacks that may declare it; "
        "providers with the program's settings only.",
        declared_types,
    ),
    "role-shapes": (
        "Every role is one of the program's kinds, trusted by that kind's principal only, with no policy by ARN.",
        role_shapes,
    ),
    "attached-policies": (
        "Only the named managed policies, by exact ARN, attached to the stack's own execution role.",
        attached_policies,
    ),
    "resource-policy-principals": (
        "Resource policies name only the principals their type allows; Lambda permissions go to the public URL only.",
        resource_policy_principals,
    ),
    "preview-role-reach": (
        "The preview-side roles name PR stacks' resources by the PR stacks' own pattern, never a broader prefix.",
        preview_role_reach,
    ),
}
STACK_RULES: dict[str, tuple[str, Callable[[Sequence[Resource]], list[tuple[str, str]]]]] = {
    "kms-use-within-boundary": (
        "Each deploy role's policy uses only its trust boundary's keys and denies the other side's keys that hold data.",
        kms_use_within_boundary,
    ),
    "s3-buckets-guarded": (
        "Every S3 bucket has versioning, SSE-KMS, a public access block and a TLS-only policy for itself.",
        s3_buckets_guarded,
    ),
}

# The rules that read pack config, and the config each accepts (`--policy-pack-config`).
CONFIG_SCHEMAS: dict[str, PolicyConfigSchema] = {
    "deploy-role-subjects": PolicyConfigSchema(
        properties={
            "repository": {"type": "string", "default": ""},
            "repositoryId": {"type": "string", "default": ""},
            "repositoryOwnerId": {"type": "string", "default": ""},
            "prodEnvironments": {"type": "array", "items": {"type": "string"}, "default": []},
            "previewEnvironments": {"type": "array", "items": {"type": "string"}, "default": []},
            "sweeperEnvironments": {"type": "array", "items": {"type": "string"}, "default": ["preview-sweeper"]},
        }
    ),
    "function-url-intended": PolicyConfigSchema(properties={"siteOrigin": {"type": "string", "default": ""}}),
    "role-shapes": PolicyConfigSchema(properties={"accountId": {"type": "string", "default": ""}}),
    "resource-policy-principals": PolicyConfigSchema(properties={"accountId": {"type": "string", "default": ""}}),
}
_CONFIGURED = {deploy_role_subjects, function_url_intended, role_shapes, resource_policy_principals}


def _run(name: str, rule: ResourceRule, resource: Resource, config: PackConfig) -> list[str]:
    """One rule on one resource. A rule that fails on input it did not foresee reports that, naming
    itself, instead of a traceback; a value unknown during preview is left to the SDK (advisory)."""
    try:
        return rule(resource, config) if rule in _CONFIGURED else rule(resource)
    except UnknownValueError:
        raise
    except Exception as error:  # noqa: BLE001 - every failure becomes a violation, never a crash
        return [f"{name} could not read this resource ({type(error).__name__}: {error}); it is refused until it can"]


def check_resource(resource: Resource, config: PackConfig = PackConfig()) -> dict[str, list[str]]:
    """Every resource rule's violations for one resource, by rule name (empty rules left out)."""
    found = {}
    for name, (_, rule) in RESOURCE_RULES.items():
        messages = _run(name, rule, resource, config)
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
        for message in _run(name, rule, _from_args(args), PackConfig.of(args.get_config())):
            report_violation(message)

    validate.__name__ = f"validate_{name.replace('-', '_')}"
    return validate


def _stack_validator(name: str, rule: Callable[[Sequence[Resource]], list[tuple[str, str]]]) -> Callable[..., None]:
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
        try:
            violations = rule(resources)
        except UnknownValueError:
            raise
        except Exception as error:  # noqa: BLE001 - a violation naming the rule, never a crash
            violations = [("", f"{name} could not read the stack ({type(error).__name__}: {error})")]
        for urn, message in violations:
            report_violation(message, urn or None)

    return validate


def policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    """Every rule as a MANDATORY CrossGuard policy."""
    built: list[ResourceValidationPolicy | StackValidationPolicy] = [
        ResourceValidationPolicy(
            name=name,
            description=description,
            validate=_resource_validator(name, rule),
            enforcement_level=EnforcementLevel.MANDATORY,
            config_schema=CONFIG_SCHEMAS.get(name),
        )
        for name, (description, rule) in RESOURCE_RULES.items()
    ]
    built += [
        StackValidationPolicy(
            name=name,
            description=description,
            validate=_stack_validator(name, rule),
            enforcement_level=EnforcementLevel.MANDATORY,
        )
        for name, (description, rule) in STACK_RULES.items()
    ]
    return built


__all__ = [
    "CONFIG_SCHEMAS",
    "RESOURCE_RULES",
    "STACK_RULES",
    "PackConfig",
    "Resource",
    "arn_matches",
    "check_resource",
    "check_stack",
    "policies",
]
