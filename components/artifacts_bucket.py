"""The artifacts bucket (account foundation, prod only): where every stack's builds publish.

The API bundle's zip and the site's export are published here by content hash, under the stack's
own prefix (`names.artifact_prefix`: `prod/`, `previews/preview-pr-<N>/`), by the builds
themselves (`steps.artifacts`); the function's code and the Pages deploy read only those records.
So no deploy needs a file an earlier run left on another runner, nor a Command's `archive`
(which upstream's refresh empties: docs/facts.md, pulumi_command). It is a `SecureBucket` (versioned:
a record pins an object version; SSE-KMS; public access blocked; owner-enforced; TLS only) under
a key of its own (the `artifacts` trust boundary, core/iam.py KEY_USERS): prod's role and the
previews' both write here, and neither state key may serve both sides. The roles use this key only
through S3, and S3 only for the prefix each may read (components/aws_policies.py _artifact_access).

What expires: the PR stacks' objects (claims included) 30 days after they were written, every
noncurrent version 30 days after it was replaced, unfinished multipart uploads after 7 days. A
preview's function keeps its code (Lambda copies it); a preview site redeployed later on another
runner without a rebuild then fails with one line saying to rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.boundary_key import boundary_key
from components.secure_bucket import SecureBucket, SecureBucketArgs
from core.names import PREVIEW_ARTIFACTS, foundation_names

PREVIEW_DAYS = 30
NONCURRENT_DAYS = 30
UNFINISHED_UPLOAD_DAYS = 7


@dataclass(frozen=True, kw_only=True)
class ArtifactsBucketArgs:
    project: str
    account_id: str
    region: str

    @property
    def bucket_name(self) -> str:
        """`names.foundation_names(...)["artifacts_bucket"]`: every stack derives it the same way."""
        return foundation_names(self.project, self.account_id)["artifacts_bucket"]


class ArtifactsBucket(pulumi.ComponentResource):
    bucket: aws.s3.Bucket
    """The bucket; the deploy roles read and write only their own stacks' prefixes in it."""
    key: aws.kms.Key
    """Its default encryption key (the `artifacts` trust boundary)."""

    def __init__(self, name: str, args: ArtifactsBucketArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:index:ArtifactsBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.key, _ = boundary_key(
            f"{name}-key",
            project=args.project,
            account_id=args.account_id,
            region=args.region,
            boundary="artifacts",
            description=f"{args.project} build artifacts",
            alias=foundation_names(args.project, args.account_id)["artifacts_key_alias"],
            opts=child,
        )
        self.bucket = SecureBucket(
            f"{name}-storage", SecureBucketArgs(bucket_name=args.bucket_name, kms_key_arn=self.key.arn), opts=child
        ).bucket
        rule = aws.s3.BucketLifecycleConfigurationRuleArgs
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=self.bucket.id,
            rules=[
                rule(
                    id="previews-expire",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=f"{PREVIEW_ARTIFACTS}/"),
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=PREVIEW_DAYS),
                ),
                rule(
                    id="replaced-versions-expire",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=NONCURRENT_DAYS
                    ),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=UNFINISHED_UPLOAD_DAYS
                    ),
                ),
            ],
            opts=child,
        )
        self.register_outputs({"bucket": self.bucket.bucket})


@dataclass(frozen=True, kw_only=True)
class PublishTarget:
    """Where a stack's builds publish (`steps.artifacts`): what their Commands are given."""

    bucket: pulumi.Input[str]
    """The artifacts bucket (prod: the foundation's output, so its first build waits for it)."""
    prefix: str
    """The stack's own prefix (`names.artifact_prefix`)."""
    region: str

    FLAGS = ('--artifacts-bucket "$ARTIFACTS_BUCKET"', '--artifacts-prefix "$ARTIFACTS_PREFIX"')
    """The build steps' flags, naming the variables of `environment`."""

    def environment(self) -> dict[str, pulumi.Input[str]]:
        return {"ARTIFACTS_BUCKET": self.bucket, "ARTIFACTS_PREFIX": self.prefix, "AWS_REGION": self.region}
