"""The Pulumi state backend of the account (prod only): one KMS key per trust boundary, the S3 state
bucket, the DynamoDB lock table.

The bucket holds every stack's state (`pulumi login s3://...`). Each trust boundary has its own key
(core/iam.py KEY_USERS): prod's state objects and prod's secrets provider are under `key`, which no
role a pull request can assume may use (its policy denies them, and their own policies deny it);
the previews' state objects and secrets provider are under `preview_key`; the lock table is under
`lease_key`, which every deploy role uses only through DynamoDB. Each side logs in with a backend URL
that names its key (`prod_backend_url`, `preview_backend_url`), and the bucket policy refuses an
object under the other side's key. Losing any of them loses every stack, so the stateful ones are
protected and retained.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import aws_policies
from components.boundary_key import boundary_key
from components.secure_bucket import SecureBucket, SecureBucketArgs
from core.names import LEASE_KEY_ATTRIBUTE, foundation_names, secrets_provider_url, state_backend_url


@dataclass(frozen=True, kw_only=True)
class StateBackendArgs:
    project: str
    account_id: str
    region: str


class StateBackend(pulumi.ComponentResource):
    key: aws.kms.Key
    """prod's key: prod's state objects and its secrets provider (`awskms://alias/<project>-pulumi-state`)."""
    key_alias: aws.kms.Alias
    """`alias/<project>-pulumi-state`, the name prod's secrets provider URL uses."""
    preview_key: aws.kms.Key
    """The previews' key: their state objects and their secrets provider."""
    preview_key_alias: aws.kms.Alias
    """`alias/<project>-pulumi-preview`, the name the previews' secrets provider URL uses."""
    lease_key: aws.kms.Key
    """The lock table's key, which every deploy role uses through DynamoDB only."""
    bucket: aws.s3.Bucket
    """The state bucket."""
    lock_table: aws.dynamodb.Table
    """Lease table for the pipeline's own locks (Pulumi's DIY backend locks with objects, docs/facts.md)."""
    prod_backend_url: pulumi.Output[str]
    """What prod logs in with: every object it writes under `key`."""
    preview_backend_url: pulumi.Output[str]
    """What the preview jobs log in with: every object they write under `preview_key`."""
    prod_secrets_provider: pulumi.Output[str]
    """prod's `awskms://` secrets provider (Pulumi.prod.yaml's `secretsprovider`)."""
    preview_secrets_provider: pulumi.Output[str]
    """The previews' `awskms://` secrets provider (Pulumi.preview.yaml's `secretsprovider`)."""

    def __init__(self, name: str, args: StateBackendArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:index:StateBackend", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        physical = foundation_names(args.project, args.account_id)

        # `state-key` is the key every stack used before there was one per boundary: it stays prod's
        # (prod's secrets provider and objects keep working), and its policy now shuts the previews out.
        keys = dict(project=args.project, account_id=args.account_id, region=args.region, opts=child)
        self.key, self.key_alias = boundary_key(
            f"{name}-key",
            boundary="prod",
            description=f"{args.project} prod's Pulumi state and secrets",
            alias=physical["state_key_alias"],
            **keys,
        )
        self.preview_key, self.preview_key_alias = boundary_key(
            f"{name}-preview-key",
            boundary="preview",
            description=f"{args.project} previews' Pulumi state and secrets",
            alias=physical["preview_state_key_alias"],
            **keys,
        )
        self.lease_key, _ = boundary_key(
            f"{name}-lease-key",
            boundary="leases",
            description=f"{args.project} stack leases",
            alias=physical["lease_key_alias"],
            **keys,
        )

        project = args.project
        self.bucket = SecureBucket(
            f"{name}-storage",
            SecureBucketArgs(
                bucket_name=physical["state_bucket"],
                # What nobody names a key for (the template's stack, run by hand) is prod's.
                kms_key_arn=self.key.arn,
                grants=lambda bucket_arn, prod_key, preview_key: aws_policies.state_bucket_key_rules(
                    bucket_arn, project=project, prod_key_arn=prod_key, preview_key_arn=preview_key
                ),
                grant_inputs=[self.key.arn, self.preview_key.arn],
            ),
            opts=child,
        ).bucket
        self.lock_table = aws.dynamodb.Table(
            f"{name}-locks",
            name=physical["lock_table"],
            billing_mode="PAY_PER_REQUEST",
            hash_key=LEASE_KEY_ATTRIBUTE,
            attributes=[aws.dynamodb.TableAttributeArgs(name=LEASE_KEY_ATTRIBUTE, type="S")],
            point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
            server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(enabled=True, kms_key_arn=self.lease_key.arn),
            deletion_protection_enabled=True,
            opts=child,
        )
        self.prod_backend_url = pulumi.Output.all(self.bucket.bucket, self.key.arn).apply(
            lambda values: state_backend_url(values[0], args.region, values[1])
        )
        self.preview_backend_url = pulumi.Output.all(self.bucket.bucket, self.preview_key.arn).apply(
            lambda values: state_backend_url(values[0], args.region, values[1])
        )
        self.prod_secrets_provider = self.key_alias.name.apply(lambda alias: secrets_provider_url(alias, args.region))
        self.preview_secrets_provider = self.preview_key_alias.name.apply(lambda alias: secrets_provider_url(alias, args.region))
        self.register_outputs(
            {
                "bucket": self.bucket.bucket,
                "keyAlias": self.key_alias.name,
                "previewKeyAlias": self.preview_key_alias.name,
                "lockTable": self.lock_table.name,
            }
        )
