"""The account's audit trail (prod only): a multi-region CloudTrail trail with log-file validation,
encrypted with its own KMS key into its own secure bucket.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import aws_policies
from components.secure_bucket import SecureBucket, SecureBucketArgs


@dataclass(frozen=True, kw_only=True)
class AuditTrailArgs:
    project: str
    account_id: str
    region: str


class AuditTrail(pulumi.ComponentResource):
    key: aws.kms.Key
    """Encrypts the trail's log files; only this trail may use it."""
    bucket: aws.s3.Bucket
    """Where the trail writes."""
    trail: aws.cloudtrail.Trail
    """Every region's management events, digest files for validation."""

    def __init__(self, name: str, args: AuditTrailArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:index:AuditTrail", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        stateful = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(protect=True, retain_on_delete=True))

        trail_name = f"{args.project}-audit"
        # The trail's ARN is known from its name, so the key and bucket policies can name it
        # before it exists (CloudTrail checks both when the trail is created).
        trail_arn = aws_policies.trail_arn(args.region, args.account_id, trail_name)
        self.key = aws.kms.Key(
            f"{name}-key",
            description=f"{args.project} CloudTrail logs",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=json.dumps(aws_policies.trail_key_policy(account_id=args.account_id, trail=trail_arn)),
            opts=stateful,
        )
        storage = SecureBucket(
            f"{name}-storage",
            SecureBucketArgs(
                bucket_name=f"{args.project}-audit-{args.account_id}",
                kms_key_arn=self.key.arn,
                grants=functools.partial(
                    aws_policies.cloudtrail_bucket_grants, trail=trail_arn, account_id=args.account_id
                ),
            ),
            opts=child,
        )
        self.bucket = storage.bucket
        self.trail = aws.cloudtrail.Trail(
            f"{name}-trail",
            name=trail_name,
            s3_bucket_name=self.bucket.bucket,
            kms_key_id=self.key.arn,
            is_multi_region_trail=True,
            include_global_service_events=True,
            enable_log_file_validation=True,
            # CloudTrail validates the bucket policy on creation.
            opts=pulumi.ResourceOptions.merge(stateful, pulumi.ResourceOptions(depends_on=[storage])),
        )
        self.register_outputs({"trailArn": self.trail.arn, "bucket": self.bucket.bucket})
