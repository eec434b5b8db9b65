"""The local cloud's KMS answers DescribeKey as AWS would under the program's key policies.

moto 5.2 refuses DescribeKey on a key whose policy has any Deny of `kms:*` on `*`, whoever asks
(moto/kms/policy_validator.py); the keys of one trust boundary each (issue 27) carry exactly such a
Deny, conditioned on the other side's roles. sandbox/moto_server.py applies a Deny where its
condition holds for the caller. These run against `python -m sandbox.moto_server` with the
program's own policies: the administrator (the sandbox's caller) describes every key, an assumed
PR-side role is refused prod's, and an unconditioned Deny still refuses everyone (moto's behaviour,
and AWS's).
"""

from __future__ import annotations

import json

import boto3
import botocore.exceptions
import pytest

from components import aws_policies
from core.names import deploy_role_name
from tests.support.moto import ACCOUNT_ID, REGION, boto_kwargs, moto_server  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow
PROJECT = "webstack"
TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}, "Action": "sts:AssumeRole"}]}


def _key(kms, boundary: str) -> str:
    policy = aws_policies.state_key_policy(account_id=ACCOUNT_ID, region=REGION, project=PROJECT, boundary=boundary)
    return kms.create_key(Policy=json.dumps(policy))["KeyMetadata"]["KeyId"]


def _as_role(boto_kwargs: dict[str, str], role: str):
    iam = boto3.client("iam", **boto_kwargs)
    name = deploy_role_name(PROJECT, role)
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    credentials = boto3.client("sts", **boto_kwargs).assume_role(RoleArn=arn, RoleSessionName="test")["Credentials"]
    return boto3.client(
        "kms",
        endpoint_url=boto_kwargs["endpoint_url"],
        region_name=REGION,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def _refused(kms, key_id: str) -> bool:
    try:
        kms.describe_key(KeyId=key_id)
    except botocore.exceptions.ClientError as error:
        assert error.response["Error"]["Code"] == "AccessDeniedException"
        return True
    return False


def test_the_administrator_describes_every_boundarys_key(boto_kwargs):
    kms = boto3.client("kms", **boto_kwargs)
    for boundary in ("prod", "preview", "leases", "artifacts"):
        key_id = _key(kms, boundary)
        assert not _refused(kms, key_id), boundary
        kms.create_alias(AliasName=f"alias/{boundary}-test", TargetKeyId=key_id)  # what failed under stock moto


def test_a_pull_request_role_is_refused_prods_key_and_not_its_own(boto_kwargs):
    kms = boto3.client("kms", **boto_kwargs)
    prod_key, preview_key = _key(kms, "prod"), _key(kms, "preview")
    as_preview = _as_role(boto_kwargs, "preview")
    assert _refused(as_preview, prod_key)
    assert not _refused(as_preview, preview_key)


def test_an_unconditioned_deny_refuses_everyone(boto_kwargs):
    kms = boto3.client("kms", **boto_kwargs)
    policy = {"Version": "2012-10-17", "Statement": [
        aws_policies.account_administers(ACCOUNT_ID),
        {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"},
    ]}  # fmt: skip
    key_id = kms.create_key(Policy=json.dumps(policy))["KeyMetadata"]["KeyId"]
    assert _refused(kms, key_id)
