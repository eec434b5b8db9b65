"""One KMS key per trust boundary (issue 27 §2), evaluated from the program's own grants.

Prod's `pulumi config set --secret` values are ciphertext under the data key its stack file names
(`secretsprovider:` in Pulumi.prod.yaml, wrapped by that alias's key), and prod's state objects are
SSE-KMS objects under the same key. A role reads either only if AWS lets it `kms:Decrypt` (or
re-encrypt, grant itself, rewrite the key's policy) with that key. AWS decides that, for a role of
the key's own account, from two documents: the key's policy and the role's policies. An explicit
Deny in either wins; otherwise the key's policy must allow the role, or allow the account (its
root), which hands the decision to the role's policies. (AWS KMS Developer Guide, "Key policies":
"Allows access to the AWS account and enables IAM policies"; "Policy evaluation logic".)

Every document here is the one the program declares for prod, as the recording mock evaluates it:
the key found through the alias the stack file names, the key's `policy`, and every inline policy
of every deploy role. Each half of the boundary is checked on its own, the other half widened to
allow everything, so that neither relies on the other.
"""

from __future__ import annotations

import copy
import json
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from core.iam import PR_SIDE_ROLES
from core.names import DEPLOY_ROLES, deploy_role_name, foundation_names, secrets_provider_url
from core.stack_files import PROJECT_ROOT, stack_config_file
from policy.rules import arn_matches
from tests.support.iam_evaluation import condition_holds, statements
from tests.support.iam_evaluation import kms_allows as _kms_allows

PROJECT, ACCOUNT, REGION = "webstack", "123456789012", "us-east-1"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"


def kms_allows(
    key_policy: dict, identity_policies: list[dict], role_arn: str, action: str, key_arn: str, via: str | None, **context
) -> bool:
    return _kms_allows(key_policy, identity_policies, role_arn, action, key_arn, via, account=ACCOUNT, encryption_context=context)

# What leads from a key's ciphertext to its plaintext: decrypting it, re-encrypting it under a key
# the caller can use, granting oneself either, or rewriting the key's policy to allow it.
TO_PLAINTEXT = ("kms:Decrypt", "kms:ReEncryptFrom", "kms:CreateGrant", "kms:PutKeyPolicy")
# A key is used directly (the CLI's awskms:// secrets provider) or by a service on the caller's
# behalf (S3 reading an SSE-KMS state object, DynamoDB the lock table).
THROUGH = (None, f"s3.{REGION}.amazonaws.com", f"dynamodb.{REGION}.amazonaws.com")
ALLOW_EVERYTHING = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
DEFAULT_KEY_POLICY = {  # AWS's default key policy: the account, hence IAM, decides
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}],
}


# --- the program's documents --------------------------------------------------------------------


def secrets_provider_of(stack: str) -> str:
    return yaml.safe_load(stack_config_file(stack).read_text())["secretsprovider"]


def key_of_provider(recording, provider: str):
    """The key resource an `awskms://alias/...` secrets provider names, through the program's alias."""
    url = urlsplit(provider)
    assert url.scheme == "awskms" and parse_qs(url.query)["region"] == [REGION], provider
    alias = f"{url.netloc}{url.path}"
    [declared] = [a for a in recording.of_type("aws:kms/alias:Alias") if a.inputs["name"] == alias]
    [key] = [k for k in recording.of_type("aws:kms/key:Key") if k.outputs["keyId"] == declared.inputs["targetKeyId"]]
    return key


def role_policies(recording, role: str) -> list[dict]:
    """Every inline policy the program attaches to the role; any managed one would stop the test."""
    role_resource = recording.by_name(f"github-{role}-role")
    names = {role_resource.inputs.get("name"), role_resource.outputs.get("name"), role_resource.outputs.get("id")}
    attached = [r for r in recording.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") if r.inputs["role"] in names]
    assert not attached, f"managed policies on the {role} role are not evaluated here: {attached}"
    inline = [json.loads(r.inputs["policy"]) for r in recording.of_type("aws:iam/rolePolicy:RolePolicy") if r.inputs["role"] in names]
    assert inline, f"the {role} role has no policy of its own in the program"
    return inline + [json.loads(p["policy"]) for p in role_resource.inputs.get("inlinePolicies") or [] if p.get("policy")]


def role_arn(role: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{deploy_role_name(PROJECT, role)}"


@pytest.fixture(scope="module")
def program(recorded):
    prod = recorded("prod")
    keys = {stack: key_of_provider(prod, secrets_provider_of(stack)) for stack in ("prod", "preview")}
    return {
        "keys": {stack: (key.outputs["arn"], json.loads(key.inputs["policy"])) for stack, key in keys.items()},
        "roles": {role: role_policies(prod, role) for role in DEPLOY_ROLES},
    }


def reaches_plaintext(key_policy: dict, identity_policies: list[dict], role: str, key_arn: str) -> list[str]:
    return [
        f"{action} via {via or 'the caller'}"
        for action in TO_PLAINTEXT
        for via in THROUGH
        if kms_allows(key_policy, identity_policies, role_arn(role), action, key_arn, via)
    ]


# --- the stack files name the boundaries' keys -----------------------------------------------------


@pytest.mark.parametrize(("stack", "alias"), [("prod", "state_key_alias"), ("preview", "preview_state_key_alias")])
def test_each_stack_file_names_its_boundarys_key(stack, alias):
    # Pulumi.preview.yaml is every PR stack's `--config-file`, so its provider is each new PR stack's.
    account = yaml.safe_load(stack_config_file(stack).read_text())["config"][f"{PROJECT}:awsAccountId"]
    assert secrets_provider_of(stack) == secrets_provider_url(foundation_names(PROJECT, str(account))[alias], REGION)


def test_the_stack_files_name_two_different_keys_that_the_program_declares(program):
    (prod_arn, _), (preview_arn, _) = program["keys"]["prod"], program["keys"]["preview"]
    assert prod_arn != preview_arn
    assert PROJECT_ROOT.joinpath("Pulumi.preview.yaml") == stack_config_file("preview-pr-7")


# --- prod's ciphertext is out of a pull request's reach ------------------------------------------


@pytest.mark.parametrize("role", PR_SIDE_ROLES)
def test_a_pull_request_role_cannot_reach_prods_plaintext_as_declared(program, role):
    key_arn, key_policy = program["keys"]["prod"]
    assert reaches_plaintext(key_policy, program["roles"][role], role, key_arn) == []


@pytest.mark.parametrize("role", PR_SIDE_ROLES)
def test_prods_key_policy_alone_shuts_a_pull_request_role_out(program, role):
    """Whatever an IAM policy someone attaches to the role says."""
    key_arn, key_policy = program["keys"]["prod"]
    assert reaches_plaintext(key_policy, [ALLOW_EVERYTHING], role, key_arn) == []


@pytest.mark.parametrize("role", PR_SIDE_ROLES)
def test_the_roles_own_policy_alone_shuts_it_out_of_prods_key(program, role):
    """Even under AWS's default key policy, which lets IAM decide."""
    key_arn, _ = program["keys"]["prod"]
    assert reaches_plaintext(DEFAULT_KEY_POLICY, program["roles"][role], role, key_arn) == []


def test_each_side_reaches_its_own_plaintext_and_prod_not_the_previews(program):
    # The evaluator says yes where the program means yes: otherwise the tests above prove nothing.
    prod_arn, prod_policy = program["keys"]["prod"]
    preview_arn, preview_policy = program["keys"]["preview"]
    assert "kms:Decrypt via the caller" in reaches_plaintext(prod_policy, program["roles"]["prod"], "prod", prod_arn)
    assert "kms:Decrypt via the caller" in reaches_plaintext(preview_policy, program["roles"]["preview"], "preview", preview_arn)
    assert "kms:Decrypt via the caller" in reaches_plaintext(preview_policy, program["roles"]["cleanup"], "cleanup", preview_arn)
    # prod administers the previews' key and never uses it.
    prod_on_previews = reaches_plaintext(preview_policy, program["roles"]["prod"], "prod", preview_arn)
    assert not [r for r in prod_on_previews if not r.startswith("kms:PutKeyPolicy")], prod_on_previews
    assert reaches_plaintext(preview_policy, program["roles"]["sweeper"], "sweeper", preview_arn) == []


def _widened_role(policies: list[dict], key_arn: str) -> list[dict]:
    """The role's policies with an Allow of the key added and every Deny of it removed."""
    widened = copy.deepcopy(policies)
    for document in widened:
        document["Statement"] = [s for s in statements(document) if s["Effect"] != "Deny"]
    widened.append({"Statement": [{"Effect": "Allow", "Action": list(TO_PLAINTEXT), "Resource": key_arn}]})
    return widened


def _widened_key_policy(policy: dict, role: str) -> dict:
    """The key policy with every Deny that names the role left out."""
    widened = copy.deepcopy(policy)
    widened["Statement"] = [s for s in statements(policy) if not (s["Effect"] == "Deny" and role_arn(role) in json.dumps(s))]
    return widened


@pytest.mark.parametrize("role", PR_SIDE_ROLES)
def test_the_check_fails_once_both_halves_are_widened(program, role):
    """Each half widened alone still holds (the tests above); both widened, the role decrypts prod's
    ciphertext, and the evaluation says so."""
    key_arn, key_policy = program["keys"]["prod"]
    roles = program["roles"][role]
    assert reaches_plaintext(_widened_key_policy(key_policy, role), roles, role, key_arn) == []
    assert reaches_plaintext(key_policy, _widened_role(roles, key_arn), role, key_arn) == []
    assert "kms:Decrypt via the caller" in reaches_plaintext(
        _widened_key_policy(key_policy, role), _widened_role(roles, key_arn), role, key_arn
    )


# --- every object a role writes is under a key that role may use --------------------------------
# A bucket's objects are under its default key unless its policy requires a named one for a prefix
# (the state bucket: the previews' objects under the previews' key). S3 asks KMS on the writer's
# behalf (`kms:ViaService` s3, the bucket's ARN as encryption context under an S3 Bucket Key), and
# the same for a reader; moto enforces no IAM, so this is where a key the role cannot use shows.

SSE_CONFIG = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
KMS_KEY_ID = "s3:x-amz-server-side-encryption-aws-kms-key-id"
S3 = f"s3.{REGION}.amazonaws.com"


def _list(value) -> list:
    return [value] if isinstance(value, (str, dict)) else list(value or [])


def bucket_keys(recording) -> dict[str, tuple[str, dict]]:
    """Each bucket's ARN -> (its default key's ARN, its bucket policy)."""
    found = {}
    for config in recording.of_type(SSE_CONFIG):
        name = config.inputs["bucket"].removesuffix("-id")  # the mocks' id of `<component>-bucket`
        bucket = recording.by_name(name)
        [rule] = config.inputs["rules"]
        [policy] = [p for p in recording.of_type("aws:s3/bucketPolicy:BucketPolicy") if p.inputs["bucket"] == config.inputs["bucket"]]
        found[bucket.outputs["arn"]] = (rule["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"], json.loads(policy.inputs["policy"]))
    return found


def key_of_object(bucket_policy: dict, default_key: str, object_arn: str) -> str:
    """The key an object written at `object_arn` is under: the one the bucket policy requires there, if any."""
    for statement in statements(bucket_policy):
        if statement["Effect"] != "Deny" or "s3:PutObject" not in _list(statement.get("Action")):
            continue
        required = statement.get("Condition", {}).get("ArnNotEquals", {}).get(KMS_KEY_ID)
        if required and any(arn_matches(p, object_arn) for p in _list(statement.get("Resource"))):
            return required
    return default_key


def writes_under_an_unusable_key(recording, buckets: dict[str, tuple[str, dict]]) -> list[str]:
    """Every (role, object it may write) whose key that role may not use to write or read it back."""
    key_policies = {k.outputs["arn"]: json.loads(k.inputs["policy"]) for k in recording.of_type("aws:kms/key:Key")}
    problems = []
    for role in DEPLOY_ROLES:
        policies = role_policies(recording, role)
        for statement in (s for document in policies for s in statements(document)):
            if statement["Effect"] != "Allow" or "s3:PutObject" not in _list(statement.get("Action")):
                continue
            for pattern in _list(statement.get("Resource")):
                bucket_arn = pattern.split("/", 1)[0]
                default_key, bucket_policy = buckets[bucket_arn]
                example = pattern.replace("*", "x")
                key = key_of_object(bucket_policy, default_key, example)
                for action in ("kms:GenerateDataKey", "kms:Decrypt"):
                    context = {"aws:s3:arn": bucket_arn}
                    if not kms_allows(key_policies[key], policies, role_arn(role), action, key, S3, **context):
                        problems.append(f"{role}: {action} on {key} for {example}")
    return problems


def test_every_object_a_role_writes_is_under_a_key_it_may_use(recorded):
    prod = recorded("prod")
    buckets = bucket_keys(prod)
    assert len(buckets) == 3  # state, artifacts, audit
    assert writes_under_an_unusable_key(prod, buckets) == []


def test_the_check_fails_when_the_artifacts_bucket_is_under_prods_state_key(recorded):
    """The mistake this test is for: one key for prod's state and both sides' builds."""
    prod = recorded("prod")
    buckets = bucket_keys(prod)
    artifacts = prod.by_name("artifacts-storage-bucket").outputs["arn"]
    buckets[artifacts] = (prod.by_name("state-key").outputs["arn"], buckets[artifacts][1])
    problems = writes_under_an_unusable_key(prod, buckets)
    assert problems and {p.split(":")[0] for p in problems} == {"preview"}, problems


def test_the_artifacts_key_is_only_usable_through_s3_for_the_roles_own_objects(program, recorded):
    prod = recorded("prod")
    key = prod.by_name("artifacts-key")
    key_arn, key_policy = key.outputs["arn"], json.loads(key.inputs["policy"])
    bucket = prod.by_name("artifacts-storage-bucket").outputs["arn"]
    for role in DEPLOY_ROLES:
        policies = program["roles"][role]
        through_s3 = kms_allows(key_policy, policies, role_arn(role), "kms:Decrypt", key_arn, S3, **{"aws:s3:arn": bucket})
        assert through_s3 is (role in ("prod", "preview")), role
        # Directly (the CLI, an SDK) or through another service: no role, whatever its policy says.
        for via in (None, f"dynamodb.{REGION}.amazonaws.com"):
            assert not kms_allows(key_policy, [ALLOW_EVERYTHING], role_arn(role), "kms:Decrypt", key_arn, via), (role, via)


def test_the_evaluator_follows_iam_on_absent_keys_and_unknown_operators():
    assert condition_holds({"StringNotEquals": {"kms:ViaService": "x"}}, {}) is True
    assert condition_holds({"StringEquals": {"kms:ViaService": "x"}}, {}) is False
    with pytest.raises(AssertionError, match="not evaluated"):
        condition_holds({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {})
