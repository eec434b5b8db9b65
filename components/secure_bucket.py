"""A private S3 bucket: versioned, SSE-KMS, public access blocked, owner-enforced, TLS only.

Both buckets of the account foundation (Pulumi state, CloudTrail logs) are this, with a bucket
policy that always denies plain-HTTP access and may grant a service more.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components import aws_policies


@dataclass(frozen=True, kw_only=True)
class SecureBucketArgs:
    bucket_name: str
    """Fixed physical name: outside systems (`pulumi login`, CloudTrail) address it."""
    kms_key_arn: pulumi.Input[str]
    grants: Callable[..., list[dict]] = aws_policies.no_grants
    """Extra policy statements as a pure function of the bucket's ARN (and of `grant_inputs`)."""
    grant_inputs: Sequence[pulumi.Input[str]] = field(default_factory=tuple)
    """Further arguments of `grants`, resolved first (the ARNs of other resources)."""


class SecureBucket(pulumi.ComponentResource):
    bucket: aws.s3.Bucket
    """The bucket; protected and retained, since it holds data nobody can recreate."""

    def __init__(self, name: str, args: SecureBucketArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:index:SecureBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket=args.bucket_name,
            opts=child,
        )
        aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=self.bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=self.bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="aws:kms", kms_master_key_id=args.kms_key_arn
                    ),
                    bucket_key_enabled=True,
                )
            ],
            opts=child,
        )
        public_access_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=self.bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )
        grants = args.grants
        aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=self.bucket.id,
            policy=pulumi.Output.all(self.bucket.arn, *args.grant_inputs).apply(
                lambda values: json.dumps(aws_policies.bucket_policy(values[0], grants(*values)))
            ),
            # S3 rejects a bucket policy while the public access block is being written.
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[public_access_block])),
        )
        self.register_outputs({"bucket": self.bucket.bucket, "arn": self.bucket.arn})
