"""The Pulumi state backend of the account (prod only): KMS key, S3 state bucket, DynamoDB lock table.

The bucket holds every stack's state (`pulumi login s3://...`), encrypted with the key that is also
the stacks' secrets provider (`awskms://alias/...`). Losing any of them loses every stack, so the
stateful ones are protected and retained.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from core.names import LEASE_KEY_ATTRIBUTE, foundation_names
from components.secure_bucket import SecureBucket, SecureBucketArgs


@dataclass(frozen=True, kw_only=True)
class StateBackendArgs:
    project: str
    account_id: str


class StateBackend(pulumi.ComponentResource):
    key: aws.kms.Key
    """Encrypts the state objects and is the stacks' secrets provider."""
    key_alias: aws.kms.Alias
    """`alias/<project>-pulumi-state`, the name the secrets provider URL uses."""
    bucket: aws.s3.Bucket
    """The state bucket."""
    lock_table: aws.dynamodb.Table
    """Lease table for the pipeline's own locks (Pulumi's DIY backend locks with objects, docs/facts.md)."""

    def __init__(self, name: str, args: StateBackendArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:index:StateBackend", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        physical = foundation_names(args.project, args.account_id)

        self.key = aws.kms.Key(
            f"{name}-key",
            description=f"{args.project} Pulumi state and secrets",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            opts=child,
        )
        self.key_alias = aws.kms.Alias(
            f"{name}-key-alias",
            name=physical["state_key_alias"],
            target_key_id=self.key.key_id,
            opts=child,
        )
        self.bucket = SecureBucket(
            f"{name}-storage",
            SecureBucketArgs(bucket_name=physical["state_bucket"], kms_key_arn=self.key.arn),
            opts=child,
        ).bucket
        self.lock_table = aws.dynamodb.Table(
            f"{name}-locks",
            name=physical["lock_table"],
            billing_mode="PAY_PER_REQUEST",
            hash_key=LEASE_KEY_ATTRIBUTE,
            attributes=[aws.dynamodb.TableAttributeArgs(name=LEASE_KEY_ATTRIBUTE, type="S")],
            point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
            server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(enabled=True, kms_key_arn=self.key.arn),
            deletion_protection_enabled=True,
            opts=child,
        )
        self.register_outputs(
            {"bucket": self.bucket.bucket, "keyAlias": self.key_alias.name, "lockTable": self.lock_table.name}
        )
