"""The Pulumi state backend of the account (prod only): KMS key, S3 state bucket, DynamoDB lock table.

The bucket holds every stack's state (`pulumi login s3://...`), encrypted with the key that is also
the stacks' secrets provider (`awskms://alias/...`). Losing any of them loses every stack, so the
stateful ones are protected and retained.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

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
    """Lease table for the pipeline's own locks (Pulumi's DIY backend locks with objects, FACTS.md)."""

    def __init__(self, name: str, args: StateBackendArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:index:StateBackend", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        stateful = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(protect=True, retain_on_delete=True))

        self.key = aws.kms.Key(
            f"{name}-key",
            description=f"{args.project} Pulumi state and secrets",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            opts=stateful,
        )
        self.key_alias = aws.kms.Alias(
            f"{name}-key-alias",
            name=f"alias/{args.project}-pulumi-state",
            target_key_id=self.key.key_id,
            opts=child,
        )
        # Bucket names are global: the account id keeps two accounts from colliding.
        self.bucket = SecureBucket(
            f"{name}-storage",
            SecureBucketArgs(bucket_name=f"{args.project}-pulumi-state-{args.account_id}", kms_key_arn=self.key.arn),
            opts=child,
        ).bucket
        self.lock_table = aws.dynamodb.Table(
            f"{name}-locks",
            name=f"{args.project}-pulumi-locks",
            billing_mode="PAY_PER_REQUEST",
            hash_key="LockID",
            attributes=[aws.dynamodb.TableAttributeArgs(name="LockID", type="S")],
            point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
            server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(enabled=True, kms_key_arn=self.key.arn),
            deletion_protection_enabled=True,
            opts=stateful,
        )
        self.register_outputs(
            {"bucket": self.bucket.bucket, "keyAlias": self.key_alias.name, "lockTable": self.lock_table.name}
        )
