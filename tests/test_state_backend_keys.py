"""The previews' backend URL on the real CLI: every object a PR stack's `up` and `destroy` write
(checkpoint, backup, history, lock, tags) lands under the previews' key, and the state bucket's policy
as the program declares it takes each of those writes, and would refuse them under prod's key or
with no key named.

bin/pulumi logs in to an S3 bucket on moto_server with `core.names.state_backend_url` (gocloud's
s3blob sends `ssetype`/`kmskeyid` on every write and copy); moto records each object's SSE key,
which the test reads back with HeadObject. The policy is evaluated here (tests/support/iam_evaluation.py)
for each write the CLI really made, and for the same writes under another key or none; the local
cloud's own enforcement of it is tests/test_sts_web_identity.py's.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import boto3
import pytest

from components import aws_policies
from core.names import STATE_PREFIX, foundation_names, state_backend_url
from sandbox.engine import BIN_DIR, engine_env
from tests.support.iam_evaluation import statement_applies, statements
from tests.support.moto import ACCOUNT_ID, REGION, aws_env, aws_environment, moto_server  # noqa: F401

pytestmark = pytest.mark.engine

ROOT = Path(__file__).resolve().parents[1]
PULUMI = BIN_DIR / "pulumi"
PROJECT, STACK = "webstack", "preview-pr-7"
PROGRAM = 'import pulumi\npulumi.export("token", pulumi.Output.secret("preview-only"))\n'
KEY_ID = "s3:x-amz-server-side-encryption-aws-kms-key-id"


def _denied(policy: dict, key: str, bucket_arn: str, headers: dict[str, str]) -> list[str]:
    """The Deny statements of the bucket policy that refuse a PutObject of `key` with `headers`."""
    context = {"aws:SecureTransport": "true", **headers}
    return [
        s.get("Sid", "?")
        for s in statements(policy)
        if s["Effect"] == "Deny" and statement_applies(s, "*", "s3:PutObject", f"{bucket_arn}/{key}", context)
    ]


def test_a_preview_writes_every_object_under_the_previews_key(tmp_path: Path, aws_env: str):  # noqa: F811
    if not PULUMI.exists():
        pytest.fail("bin/pulumi is missing: python -m sandbox.engine build")
    s3, kms = boto3.client("s3"), boto3.client("kms")
    bucket = foundation_names(PROJECT, ACCOUNT_ID)["state_bucket"]
    bucket_arn = f"arn:aws:s3:::{bucket}"
    s3.create_bucket(Bucket=bucket)
    prod_key, preview_key = (kms.create_key(Description=d)["KeyMetadata"]["Arn"] for d in ("prod", "previews"))
    # What the bootstrap (docs/operations.md) puts first: meta.yaml under SSE-S3.
    s3.put_object(Bucket=bucket, Key=aws_policies.META_OBJECT, Body=b"version: 1\n", ServerSideEncryption="AES256")

    project = tmp_path / "checkout"
    project.mkdir()
    (project / "Pulumi.yaml").write_text(f"name: {PROJECT}\nruntime:\n  name: python\n")
    (project / "__main__.py").write_text(PROGRAM)
    env = engine_env(tmp_path / "home", "backend-keys-passphrase", venv=ROOT / ".venv", base=os.environ)
    env.update(aws_environment(aws_env))
    # moto answers on a loopback host: path-style addressing (the endpoint comes from AWS_ENDPOINT_URL).
    env["PULUMI_BACKEND_URL"] = state_backend_url(bucket, REGION, preview_key) + "&use_path_style=true"

    def pulumi(*args: str) -> None:
        result = subprocess.run([str(PULUMI), *args, "--non-interactive"], cwd=project, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr

    pulumi("stack", "init", STACK, "--secrets-provider", "passphrase")
    pulumi("stack", "tag", "set", "owner", "pr-7", "--stack", STACK)
    pulumi("up", "--yes", "--stack", STACK)
    pulumi("up", "--yes", "--stack", STACK, "--refresh")  # a second checkpoint: its backup and history
    pulumi("destroy", "--yes", "--stack", STACK)

    written = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]} - {aws_policies.META_OBJECT}
    kinds = {key.split("/.pulumi/", 1)[1].split("/", 1)[0] for key in written}
    assert {"stacks", "history", "backups"} <= kinds, written
    encryption = {key: s3.head_object(Bucket=bucket, Key=key) for key in written}
    assert {k: (h.get("ServerSideEncryption"), h.get("SSEKMSKeyId")) for k, h in encryption.items()} == {
        k: ("aws:kms", preview_key) for k in written
    }
    assert s3.head_object(Bucket=bucket, Key=aws_policies.META_OBJECT)["ServerSideEncryption"] == "AES256"

    # The program's bucket policy, for the keys the CLI really wrote.
    policy = aws_policies.bucket_policy(
        bucket_arn,
        aws_policies.state_bucket_key_rules(bucket_arn, project=PROJECT, prod_key_arn=prod_key, preview_key_arn=preview_key),
    )
    sse = {"s3:x-amz-server-side-encryption": "aws:kms"}
    for key in sorted(written):
        assert _denied(policy, key, bucket_arn, {**sse, KEY_ID: preview_key}) == [], key
        assert _denied(policy, key, bucket_arn, {**sse, KEY_ID: prod_key}) == ["PreviewObjectsUnderThePreviewKey"], key
        assert _denied(policy, key, bucket_arn, {}) == ["PreviewObjectsUnderThePreviewKey"], key
    # The previews' key nowhere else: not on prod's objects, not on meta.yaml.
    for key in (f"{STATE_PREFIX}/.pulumi/stacks/{PROJECT}/prod.json", aws_policies.META_OBJECT):
        assert "ThePreviewKeyForPreviewObjectsOnly" in _denied(policy, key, bucket_arn, {**sse, KEY_ID: preview_key}), key
