"""`pulumi-resource-aws` stand-in (reports version 7.51.1), backed by moto_server through boto3.

Run by the engine as an ambient plugin (`sandbox/bin/pulumi-resource-aws` on PATH). It creates,
updates, reads and deletes real resources in moto; the outputs the program reads (`arn`, `version`,
`qualifiedArn`, `invokeArn`, `functionUrl`, `lastModified`, `keyId`, `bucket`, `name`, ...) come
from moto's answers.

Pointing it at moto (required: without an endpoint it refuses to run, so it can never reach AWS;
start moto_server with `MOTO_IAM_LOAD_MANAGED_POLICIES=true`, or attaching an AWS-managed policy
such as AWSLambdaBasicExecutionRole fails with NoSuchEntity):
  * env `AWS_ENDPOINT_URL` (all services) or `AWS_ENDPOINT_URL_<SERVICE>` (boto3's own variables),
  * or the provider's config `endpoints: [{lambda: URL, iam: URL, ...}]` (wins over env), the
    shape of the real provider's `endpoints` (also `cloudwatchlogs`/`logs`, `cloudwatch`, `kms`,
    `s3`, `dynamodb`, `cloudtrail`, `sns`, `sts`).
  Region: config `region`, else `AWS_REGION`/`AWS_DEFAULT_REGION`; a resource's own `region`
  input wins. Credentials: config `accessKey`/`secretKey`/`token`, else the usual AWS variables,
  else moto's dummy ones. `defaultTags: {tags: {...}}` is merged into every taggable resource
  (`tagsAll`, and the tags sent to moto). `skipCredentialsValidation`, `skipRegionValidation`,
  `s3UsePathStyle` are accepted (S3 always uses path-style addressing on moto).
  `WEBSTACK_LAMBDA_URL_BASE` (e.g. `http://127.0.0.1:9000`): when set, a FunctionUrl's
  `functionUrl` is `{base}/{quote(functionName)}/{quote(qualifier or "$LATEST")}/`, each segment
  percent-encoded with `urllib.parse.quote(s, safe="")`, e.g.
  `http://127.0.0.1:9000/webstack-api-pr-7/%24LATEST/` or `.../webstack-api-prod/stable/`
  (whoever serves it unquotes the segments); otherwise moto's URL with AWS's trailing `/`.

Covered types (all kept in moto; none lives only in the stand-in):
  aws:s3/bucket:Bucket, BucketVersioning, BucketServerSideEncryptionConfiguration,
  BucketPublicAccessBlock, BucketOwnershipControls, BucketPolicy, BucketLifecycleConfiguration;
  aws:kms/key:Key, Alias;
  aws:dynamodb/table:Table; aws:iam/role:Role, RolePolicy, RolePolicyAttachment,
  OpenIdConnectProvider; aws:lambda/function:Function, Alias, FunctionUrl, Permission;
  aws:cloudtrail/trail:Trail; aws:cloudwatch/logGroup:LogGroup, LogMetricFilter, MetricAlarm;
  aws:sns/topic:Topic, TopicSubscription.
  Functions: aws:index/getCallerIdentity:getCallerIdentity, aws:index/getRegion:getRegion,
  aws:index/getPartition:getPartition.

Replace-on-change properties, as in the real provider (`REPLACE_ON_CHANGE` below is the source;
a test keeps this table equal to it). Every type also replaces on its own `region`; a
Permission has no update at all.
  aws:s3/bucket:Bucket: bucket, bucketPrefix, objectLockEnabled
  aws:s3/bucketVersioning:BucketVersioning: bucket, expectedBucketOwner
  aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration: bucket, expectedBucketOwner
  aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock: bucket
  aws:s3/bucketOwnershipControls:BucketOwnershipControls: bucket
  aws:s3/bucketPolicy:BucketPolicy: bucket
  aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration: bucket, expectedBucketOwner
  aws:kms/key:Key: customKeyStoreId, customerMasterKeySpec, keySpec, keyUsage, multiRegion, xksKeyId
  aws:kms/alias:Alias: name, namePrefix
  aws:dynamodb/table:Table: hashKey, name, rangeKey
  aws:iam/role:Role: name, namePrefix, path
  aws:iam/rolePolicy:RolePolicy: name, namePrefix, role
  aws:iam/rolePolicyAttachment:RolePolicyAttachment: policyArn, role
  aws:iam/openIdConnectProvider:OpenIdConnectProvider: url
  aws:lambda/function:Function: name, packageType
  aws:lambda/alias:Alias: functionName, name
  aws:lambda/functionUrl:FunctionUrl: functionName, qualifier
  aws:lambda/permission:Permission: action, eventSourceToken, function, functionUrlAuthType, invokedViaFunctionUrl, principal, principalOrgId, qualifier, sourceAccount, sourceArn, statementId, statementIdPrefix
  aws:cloudtrail/trail:Trail: name
  aws:cloudwatch/logGroup:LogGroup: logGroupClass, name, namePrefix
  aws:cloudwatch/logMetricFilter:LogMetricFilter: logGroupName, name
  aws:cloudwatch/metricAlarm:MetricAlarm: name
  aws:sns/topic:Topic: fifoTopic, name, namePrefix
  aws:sns/topicSubscription:TopicSubscription: endpoint, protocol, topicArn

Behaviour worth knowing:
  * Function `code` is an Archive (a Command's `archive` is an asset map of files relative to the
    project directory, the plugin's working directory); it is zipped deterministically and sent as
    `ZipFile`. The zip's base64 SHA-256 is `sourceCodeHash`/`codeSha256`. The engine sends Diff the
    archive without contents, so Check adds the new zip's hash as input `sourceCodeHash` and Diff
    reports `code` changed when it differs from the deployed one: a rebuilt file at the same path
    is a code change.
  * `publish=True` publishes a version on create and on every code or configuration change
    (`version` = moto's version number, `qualifiedArn` = `arn:version`); without it `version` is
    `$LATEST`. moto does not move `$LATEST`'s LastModified on updates: the stand-in then stamps
    `lastModified` with the update time itself, as AWS would.
  * Read (refresh) reads moto for every type where moto keeps the value: a Function's memory,
    timeout, environment, role, handler, runtime, architectures and version changed out of band
    show up; a resource moto no longer has is reported gone.
  * `tagsAll` is computed at create/update: a change of the provider's `defaultTags` alone reaches
    a resource at its next update (the real provider would diff it at once).
  * Delete treats "not found" as done. A KMS key is scheduled for deletion (its
    `deletionWindowInDays`); a bucket is only deleted when empty unless `forceDestroy`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import sys
import tarfile
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import boto3
import botocore.config
import botocore.exceptions
import pulumi
from pulumi.provider.experimental.property_value import PropertyValue

from core import aws_limits
from sandbox.providers.base import (
    UNKNOWN,
    Ctx,
    NotFound,
    ProviderError,
    ResourceType,
    StandInProvider,
    as_int,
    compact,
    config_value,
    is_unknown,
    same_value,
    serve,
)

VERSION = "7.51.1"

REPLACE_ON_CHANGE: dict[str, frozenset[str]] = {
    "aws:s3/bucket:Bucket": frozenset({"bucket", "bucketPrefix", "objectLockEnabled"}),
    "aws:s3/bucketVersioning:BucketVersioning": frozenset({"bucket", "expectedBucketOwner"}),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": frozenset(
        {"bucket", "expectedBucketOwner"}
    ),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": frozenset({"bucket"}),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": frozenset({"bucket"}),
    "aws:s3/bucketPolicy:BucketPolicy": frozenset({"bucket"}),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": frozenset({"bucket", "expectedBucketOwner"}),
    "aws:kms/key:Key": frozenset(
        {"keyUsage", "customerMasterKeySpec", "keySpec", "multiRegion", "customKeyStoreId", "xksKeyId"}
    ),
    "aws:kms/alias:Alias": frozenset({"name", "namePrefix"}),
    "aws:dynamodb/table:Table": frozenset({"name", "hashKey", "rangeKey"}),
    "aws:iam/role:Role": frozenset({"name", "namePrefix", "path"}),
    "aws:iam/rolePolicy:RolePolicy": frozenset({"name", "namePrefix", "role"}),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": frozenset({"role", "policyArn"}),
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": frozenset({"url"}),
    "aws:lambda/function:Function": frozenset({"name", "packageType"}),
    "aws:lambda/alias:Alias": frozenset({"name", "functionName"}),
    "aws:lambda/functionUrl:FunctionUrl": frozenset({"functionName", "qualifier"}),
    "aws:lambda/permission:Permission": frozenset(
        {
            "action", "function", "principal", "qualifier", "statementId", "statementIdPrefix",
            "sourceArn", "sourceAccount", "eventSourceToken", "principalOrgId",
            "functionUrlAuthType", "invokedViaFunctionUrl",
        }
    ),  # fmt: skip
    "aws:cloudtrail/trail:Trail": frozenset({"name"}),
    "aws:cloudwatch/logGroup:LogGroup": frozenset({"name", "namePrefix", "logGroupClass"}),
    "aws:cloudwatch/logMetricFilter:LogMetricFilter": frozenset({"name", "logGroupName"}),
    "aws:cloudwatch/metricAlarm:MetricAlarm": frozenset({"name"}),
    "aws:sns/topic:Topic": frozenset({"name", "namePrefix", "fifoTopic"}),
    "aws:sns/topicSubscription:TopicSubscription": frozenset({"topicArn", "protocol", "endpoint"}),
}
"""Type token -> the properties whose change replaces the resource (plus `region` for all)."""

# The provider's `endpoints` keys (aliases included) per boto3 service, and boto3's env suffix.
SERVICES = {
    "lambda": (("lambda",), "LAMBDA"),
    "iam": (("iam",), "IAM"),
    "s3": (("s3",), "S3"),
    "kms": (("kms",), "KMS"),
    "dynamodb": (("dynamodb",), "DYNAMODB"),
    "cloudtrail": (("cloudtrail",), "CLOUDTRAIL"),
    "logs": (("cloudwatchlogs", "cloudwatchlog", "logs"), "CLOUDWATCH_LOGS"),
    "cloudwatch": (("cloudwatch",), "CLOUDWATCH"),
    "sns": (("sns",), "SNS"),
    "sts": (("sts",), "STS"),
}

NOT_FOUND_CODES = {
    "ResourceNotFoundException", "NoSuchEntity", "NoSuchBucket", "NotFoundException", "NotFound",
    "NoSuchBucketPolicy", "ServerSideEncryptionConfigurationNotFoundError", "NoSuchPublicAccessBlockConfiguration",
    "OwnershipControlsNotFoundError", "TrailNotFoundException", "ResourceNotFound", "NoSuchKey",
}  # fmt: skip


def aws_error(exc: botocore.exceptions.ClientError) -> tuple[str, str]:
    error = exc.response.get("Error", {})
    return str(error.get("Code", "")), str(error.get("Message", "")) or str(exc)


def gone(exc: BaseException) -> bool:
    """Whether an AWS error means "that does not exist (any more)"."""
    if isinstance(exc, NotFound):
        return True
    if not isinstance(exc, botocore.exceptions.ClientError):
        return False
    code, message = aws_error(exc)
    if code in NOT_FOUND_CODES:
        return True
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status == 404 or "does not exist" in message.lower() or "not found" in message.lower()


def ignoring_gone(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except botocore.exceptions.ClientError as exc:
        if gone(exc):
            return None
        raise


def now_stamp() -> str:
    """A Lambda LastModified stamp in moto's format (sorts with moto's own)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


# code archives ------------------------------------------------------------------------------------

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _asset_bytes(asset: pulumi.Asset) -> bytes:
    if isinstance(asset, pulumi.StringAsset):
        return asset.text.encode()
    if isinstance(asset, pulumi.FileAsset):
        return Path(asset.path).read_bytes()
    if isinstance(asset, pulumi.RemoteAsset):
        uri = asset.uri
        if not uri.startswith("file://"):
            raise ProviderError(f"remote asset {uri}: only file:// URIs can be read without a network")
        with urllib.request.urlopen(uri) as response:  # noqa: S310 - file:// only  # nosec B310
            return response.read()
    raise ProviderError(f"unsupported asset {asset!r}")


def _archive_files(archive: pulumi.Archive, prefix: str = "") -> dict[str, bytes]:
    """name -> content of every file in an archive (asset maps nest)."""
    files: dict[str, bytes] = {}
    if isinstance(archive, pulumi.AssetArchive):
        for name, item in archive.assets.items():
            if isinstance(item, pulumi.Archive):
                files.update(_archive_files(item, f"{prefix}{name}/"))
            else:
                files[f"{prefix}{name}"] = _asset_bytes(item)
        return files
    if isinstance(archive, pulumi.FileArchive):
        path = Path(archive.path)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file():
                    files[f"{prefix}{child.relative_to(path).as_posix()}"] = child.read_bytes()
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                for info in z.infolist():
                    if not info.is_dir():
                        files[f"{prefix}{info.filename}"] = z.read(info)
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as t:
                for member in t.getmembers():
                    if member.isfile():
                        extracted = t.extractfile(member)
                        files[f"{prefix}{member.name}"] = extracted.read() if extracted else b""
        else:
            raise ProviderError(f"archive {path}: not a directory, zip or tar file")
        return files
    if isinstance(archive, pulumi.RemoteArchive):
        raise ProviderError(f"remote archive {archive.uri}: not supported by the stand-in (no network)")
    raise ProviderError(f"unsupported archive {archive!r}")


def zip_archive(archive: Any) -> bytes:
    """A deterministic zip of a Pulumi archive: sorted entries, fixed timestamps, mode 0644."""
    if not isinstance(archive, pulumi.Archive):
        raise ProviderError(f"code must be an archive, got {type(archive).__name__}")
    try:
        files = _archive_files(archive)
    except OSError as exc:
        raise ProviderError(f"reading the code archive: {exc}") from exc
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, files[name])
    return buffer.getvalue()


def code_hash(zipped: bytes) -> str:
    """What AWS reports as CodeSha256 for that zip."""
    return base64.b64encode(hashlib.sha256(zipped).digest()).decode()


# the provider ---------------------------------------------------------------------------------------


class AwsProvider(StandInProvider):
    package = "aws"
    version = VERSION

    def __init__(self) -> None:
        super().__init__(
            types(),
            invokes={
                "aws:index/getCallerIdentity:getCallerIdentity": self._caller_identity,
                "aws:index/getRegion:getRegion": self._region,
                "aws:index/getPartition:getPartition": lambda args: {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"},
            },
        )
        self.region: str | None = None
        self.endpoints: dict[str, str] = {}
        self.credentials: dict[str, str] = {}
        self.default_tags: dict[str, str] = {}
        self._clients: dict[tuple[str, str], Any] = {}
        self._account: str | None = None

    def configure_from(self, args: Mapping[str, PropertyValue], variables: Mapping[str, str]) -> None:
        def get(key: str) -> Any:
            return config_value(args, variables, "aws", key)

        self.region = get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        self.endpoints = {}
        for block in get("endpoints") or []:
            for key, url in (block or {}).items():
                if url:
                    self.endpoints[key.lower()] = url
        self.credentials = compact(
            aws_access_key_id=get("accessKey"), aws_secret_access_key=get("secretKey"), aws_session_token=get("token")
        )
        tags = (get("defaultTags") or {}).get("tags") or {}
        self.default_tags = {str(k): str(v) for k, v in tags.items()}
        self._clients.clear()
        self._account = None

    # clients ------------------------------------------------------------------------------------
    def endpoint(self, service: str) -> str | None:
        keys, suffix = SERVICES[service]
        for key in keys:
            if key in self.endpoints:
                return self.endpoints[key]
        return os.environ.get(f"AWS_ENDPOINT_URL_{suffix}") or os.environ.get("AWS_ENDPOINT_URL")

    def client(self, service: str, region: str | None = None) -> Any:
        region = region or self.region
        if not region:
            raise ProviderError("aws stand-in: no region (set the provider's `region` config or AWS_REGION)")
        key = (service, region)
        if key not in self._clients:
            endpoint = self.endpoint(service)
            if not endpoint:
                raise ProviderError(
                    f"aws stand-in: no endpoint for {service}: set AWS_ENDPOINT_URL (moto_server) "
                    "or the provider's `endpoints` config; it never talks to real AWS"
                )
            credentials = self.credentials or {
                "aws_access_key_id": os.environ.get("AWS_ACCESS_KEY_ID") or "testing",
                "aws_secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY") or "testing",
            }
            config = botocore.config.Config(
                retries={"max_attempts": 3, "mode": "standard"},
                s3={"addressing_style": "path"},
                connect_timeout=10,
                read_timeout=60,
            )
            self._clients[key] = boto3.session.Session().client(
                service, region_name=region, endpoint_url=endpoint, config=config, **credentials
            )
        return self._clients[key]

    def account_id(self) -> str:
        if self._account is None:
            self._account = self.client("sts").get_caller_identity()["Account"]
        return self._account

    def tags_all(self, inputs: Mapping[str, Any]) -> dict[str, str]:
        return {**self.default_tags, **(inputs.get("tags") or {})}

    def describe_error(self, exc: Exception) -> str | None:
        if isinstance(exc, botocore.exceptions.ClientError):
            code, message = aws_error(exc)
            return f"{code}: {message}"
        if isinstance(exc, botocore.exceptions.BotoCoreError):
            return str(exc)
        return None

    # functions ---------------------------------------------------------------------------------
    def _caller_identity(self, args: dict[str, Any]) -> dict[str, Any]:
        identity = self.client("sts").get_caller_identity()
        return {"accountId": identity["Account"], "arn": identity["Arn"], "userId": identity["UserId"], "id": identity["Account"]}

    def _region(self, args: dict[str, Any]) -> dict[str, Any]:
        region = args.get("region") or args.get("name") or self.region
        return {"name": region, "region": region, "id": region, "endpoint": f"ec2.{region}.amazonaws.com", "description": region}


class AwsType(ResourceType):
    """An AWS type: replace-on-change from REPLACE_ON_CHANGE (+ region), errors as one line."""

    service: ClassVar[str]
    taggable: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "pulumi_type" in cls.__dict__:
            cls.replace_on_change = REPLACE_ON_CHANGE.get(cls.pulumi_type, frozenset()) | {"region"}
            if cls.taggable:
                cls.computed = cls.computed | {"tagsAll"}

    def api(self, ctx: Ctx, inputs: Mapping[str, Any] | None = None, service: str | None = None) -> Any:
        region = (inputs or {}).get("region")
        return ctx.provider.client(service or self.service, region)

    def region(self, ctx: Ctx, inputs: Mapping[str, Any]) -> str:
        return inputs.get("region") or ctx.provider.region

    def tags(self, ctx: Ctx, inputs: Mapping[str, Any]) -> dict[str, str]:
        return ctx.provider.tags_all(inputs)


# S3 -------------------------------------------------------------------------------------------------


class Bucket(AwsType):
    pulumi_type = "aws:s3/bucket:Bucket"
    service = "s3"
    taggable = True
    autoname = "bucket"
    autoname_max = 63
    computed = frozenset({"arn", "bucketDomainName", "bucketRegionalDomainName", "hostedZoneId", "id"})
    defaults = {"forceDestroy": False}

    def create(self, ctx: Ctx, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        s3 = self.api(ctx, inputs)
        name = inputs["bucket"]
        region = self.region(ctx, inputs)
        extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        if inputs.get("objectLockEnabled"):
            extra["ObjectLockEnabledForBucket"] = True
        s3.create_bucket(Bucket=name, **extra)
        self._tag(s3, name, self.tags(ctx, inputs))
        return name, self._computed(ctx, inputs)

    def _computed(self, ctx: Ctx, inputs: dict[str, Any]) -> dict[str, Any]:
        name, region = inputs["bucket"], self.region(ctx, inputs)
        return {
            "arn": f"arn:aws:s3:::{name}",
            "bucketDomainName": f"{name}.s3.amazonaws.com",
            "bucketRegionalDomainName": f"{name}.s3.{region}.amazonaws.com",
            "hostedZoneId": "Z3AQBSTGFYJSTF",
            "tagsAll": self.tags(ctx, inputs),
        }

    @staticmethod
    def _tag(s3: Any, name: str, tags: dict[str, str]) -> None:
        if tags:
            s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]})
        else:
            ignoring_gone(s3.delete_bucket_tagging, Bucket=name)

    def update(self, ctx: Ctx, rid: str, olds: dict[str, Any], news: dict[str, Any], changed: set[str]) -> dict[str, Any]:
        if "tags" in changed:
            self._tag(self.api(ctx, news), rid, self.tags(ctx, news))
        return self._computed(ctx, news)

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        s3 = self.api(ctx, state)
        try:
            s3.head_bucket(Bucket=rid)
        except botocore.exceptions.ClientError as exc:
            if gone(exc):
                return None
            raise
        try:
            tag_set = s3.get_bucket_tagging(Bucket=rid)["TagSet"]
        except botocore.exceptions.ClientError:
            tag_set = []
        return {**state, "bucket": rid, "tagsAll": {t["Key"]: t["Value"] for t in tag_set}}

    def delete(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> None:
        s3 = self.api(ctx, state)
        try:
            if state.get("forceDestroy"):
                for page in s3.get_paginator("list_object_versions").paginate(Bucket=rid):
                    doomed = [
                        {"Key": v["Key"], "VersionId": v["VersionId"]}
                        for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
                    ]
                    if doomed:
                        s3.delete_objects(Bucket=rid, Delete={"Objects": doomed, "Quiet": True})
            s3.delete_bucket(Bucket=rid)
        except botocore.exceptions.ClientError as exc:
            if gone(exc):
                return
            code, message = aws_error(exc)
            if code == "BucketNotEmpty":
                raise ProviderError(f"deleting bucket {rid}: not empty (set forceDestroy to empty it first)") from exc
            raise


class _BucketSubresource(AwsType):
    """A bucket setting whose id is the bucket's name; Delete removes the setting."""

    service = "s3"
    required: ClassVar[tuple[str, ...]] = ("bucket",)
    computed = frozenset({"id"})

    def put(self, s3: Any, bucket: str, inputs: dict[str, Any]) -> None:
        raise NotImplementedError

    def remove(self, s3: Any, bucket: str, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def create(self, ctx: Ctx, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.put(self.api(ctx, inputs), inputs["bucket"], inputs)
        return inputs["bucket"], {}

    def update(self, ctx: Ctx, rid: str, olds: dict[str, Any], news: dict[str, Any], changed: set[str]) -> dict[str, Any]:
        self.put(self.api(ctx, news), news["bucket"], news)
        return {}

    def delete(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> None:
        try:
            self.remove(self.api(ctx, state), state.get("bucket") or rid, state)
        except botocore.exceptions.ClientError as exc:
            if not gone(exc):
                raise

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        try:
            current = self.get(self.api(ctx, state), state.get("bucket") or rid)
        except botocore.exceptions.ClientError as exc:
            if gone(exc):
                return None
            raise
        return None if current is None else {**state, **current}

    def get(self, s3: Any, bucket: str) -> dict[str, Any] | None:
        return {}


class BucketVersioning(_BucketSubresource):
    pulumi_type = "aws:s3/bucketVersioning:BucketVersioning"
    required = ("bucket", "versioningConfiguration")

    def put(self, s3: Any, bucket: str, inputs: dict[str, Any]) -> None:
        config = inputs["versioningConfiguration"]
        s3.put_bucket_versioning(
            Bucket=bucket,
            VersioningConfiguration=compact(Status=config.get("status"), MFADelete=config.get("mfaDelete")),
        )

    def remove(self, s3: Any, bucket: str, state: dict[str, Any]) -> None:
        # Versioning cannot be turned off, only suspended (what the real provider does on delete).
        if (state.get("versioningConfiguration") or {}).get("status") == "Enabled":
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})

    def get(self, s3: Any, bucket: str) -> dict[str, Any] | None:
        answer = s3.get_bucket_versioning(Bucket=bucket)
        status = answer.get("Status")
        if not status:
            return None
        return {"versioningConfiguration": compact(status=status, mfaDelete=answer.get("MFADelete"))}


class BucketServerSideEncryptionConfiguration(_BucketSubresource):
    pulumi_type = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    required = ("bucket", "rules")

    def put(self, s3: Any, bucket: str, inputs: dict[str, Any]) -> None:
        rules = []
        for rule in inputs["rules"]:
            default = rule.get("applyServerSideEncryptionByDefault") or {}
            rules.append(
                compact(
                    ApplyServerSideEncryptionByDefault=compact(
                        SSEAlgorithm=default.get("sseAlgorithm"), KMSMasterKeyID=default.get("kmsMasterKeyId")
                    )
                    or None,
                    BucketKeyEnabled=rule.get("bucketKeyEnabled"),
                )
            )
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": rules})

    def remove(self, s3: Any, bucket: str, state: dict[str, Any]) -> None:
        s3.delete_bucket_encryption(Bucket=bucket)

    def get(self, s3: Any, bucket: str) -> dict[str, Any] | None:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        return {
            "rules": [
                compact(
                    applyServerSideEncryptionByDefault=compact(
                        sseAlgorithm=r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm"),
                        kmsMasterKeyId=r.get("ApplyServerSideEncryptionByDefault", {}).get("KMSMasterKeyID"),
                    ),
                    bucketKeyEnabled=r.get("BucketKeyEnabled"),
                )
                for r in rules
            ]
        }


class BucketPublicAccessBlock(_BucketSubresource):
    pulumi_type = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
    FIELDS = {
        "blockPublicAcls": "BlockPublicAcls",
        "blockPublicPolicy": "BlockPublicPolicy",
        "ignorePublicAcls": "IgnorePublicAcls",
        "restrictPublicBuckets": "RestrictPublicBuckets",
    }
    defaults = dict.fromkeys(FIELDS, False)

    def put(self, s3: Any, bucket: str, inputs: dict[str, Any]) -> None:
        config = {api: bool(inputs.get(key)) for key, api in self.FIELDS.items()}
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=config)

    def remove(self, s3: Any, bucket: str, state: dict[str, Any]) -> None:
        s3.delete_public_access_block(Bucket=bucket)

    def get(self, s3: Any, bucket: str) -> dict[str, Any] | None:
        config = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        return {key: bool(config.get(api)) for key, api in self.FIELDS.items()}


class BucketOwnershipControls(_BucketSubresource):
    pulumi_type = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
    required = ("bucket", "rule")

    def put(self, s3: Any, bucket: str, inputs: dict[str, Any]) -> None:
        s3.put_bucket_ownership_controls(
            Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": inputs["rule"]["objectOwnership"]}]}
        )

    def remove(self, s3: Any, bucket: str, state: dict[str, Any]) -> None:
        s3.delete_bucket_ownership_controls(Bucket=bucket)

    def get(self, s3: Any, bucket: str) -> dict[str, Any] | None:
        rules = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
        return {"rule": {"objectOwnership": rules[0]["ObjectOwnership"]}} if rules else None


class BucketPolicy(_BucketSubresource):
    pulumi_type = "aws:s3/bucketPolicy:BucketPolicy"
    required = ("bucket", "policy")

    def put(self, s3: Any, bucket: str, inputs: dict[str, Any]) -> None:
        policy = inputs["policy"]
        s3.put_bucket_policy(Bucket=bucket, Policy=policy if isinstance(policy, str) else json.dumps(policy))

    def remove(self, s3: Any, bucket: str, state: dict[str, Any]) -> None:
        s3.delete_bucket_policy(Bucket=bucket)

    def get(self, s3: Any, bucket: str) -> dict[str, Any] | None:
        return {"policy": s3.get_bucket_policy(Bucket=bucket)["Policy"]}

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        current = super().read(ctx, rid, state)
        # Same document, other spelling: keep the program's text so refresh shows no change.
        if current is not None and same_value(current.get("policy"), state.get("policy")):
            current["policy"] = state.get("policy")
        return current


class BucketLifecycleConfiguration(_BucketSubresource):
    pulumi_type = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
    required = ("bucket", "rules")
    # The program's spelling <-> S3's, for the rule fields the program uses.
    RULE_FIELDS = {
        "id": "ID", "status": "Status", "filter": "Filter", "prefix": "Prefix", "expiration": "Expiration",
        "noncurrentVersionExpiration": "NoncurrentVersionExpiration",
        "abortIncompleteMultipartUpload": "AbortIncompleteMultipartUpload", "days": "Days", "date": "Date",
        "noncurrentDays": "NoncurrentDays", "newerNoncurrentVersions": "NewerNoncurrentVersions",
        "daysAfterInitiation": "DaysAfterInitiation", "expiredObjectDeleteMarker": "ExpiredObjectDeleteMarker",
        "objectSizeGreaterThan": "ObjectSizeGreaterThan", "objectSizeLessThan": "ObjectSizeLessThan",
    }  # fmt: skip

    @classmethod
    def _to_s3(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {cls.RULE_FIELDS.get(k, k): cls._to_s3(v) for k, v in value.items() if v is not None}
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    @classmethod
    def _from_s3(cls, value: Any) -> Any:
        back = {v: k for k, v in cls.RULE_FIELDS.items()}
        if isinstance(value, dict):
            return {back.get(k, k): cls._from_s3(v) for k, v in value.items()}
        return value

    def put(self, s3: Any, bucket: str, inputs: dict[str, Any]) -> None:
        rules = [self._to_s3(rule) for rule in inputs["rules"]]
        for rule in rules:
            rule.setdefault("Filter", {"Prefix": ""})
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})

    def remove(self, s3: Any, bucket: str, state: dict[str, Any]) -> None:
        s3.delete_bucket_lifecycle(Bucket=bucket)

    def get(self, s3: Any, bucket: str) -> dict[str, Any] | None:
        try:
            rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        except botocore.exceptions.ClientError as exc:
            if aws_error(exc)[0] == "NoSuchLifecycleConfiguration":
                return None
            raise
        return {"rules": [self._from_s3(rule) for rule in rules]}

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        current = super().read(ctx, rid, state)
        # S3 answers with its defaults filled in: the same rules, kept in the program's spelling.
        if current is not None and _rules_match(state.get("rules") or [], current.get("rules") or []):
            current["rules"] = state.get("rules")
        return current


def _rules_match(declared: list[dict[str, Any]], held: list[dict[str, Any]]) -> bool:
    """Whether every declared rule's fields are what S3 holds (S3 may add defaults of its own)."""

    def within(want: Any, have: Any) -> bool:
        if isinstance(want, dict):
            return isinstance(have, dict) and all(within(v, have.get(k)) for k, v in want.items() if v is not None)
        return same_value(want, have)

    return len(declared) == len(held) and all(within(want, have) for want, have in zip(declared, held, strict=True))


# KMS --------------------------------------------------------------------------------------------------


class KmsKey(AwsType):
    pulumi_type = "aws:kms/key:Key"
    service = "kms"
    taggable = True
    computed = frozenset({"arn", "keyId", "id"})
    filled_in = frozenset({"policy"})
    defaults = {"keyUsage": "ENCRYPT_DECRYPT", "customerMasterKeySpec": "SYMMETRIC_DEFAULT", "isEnabled": True}

    def create(self, ctx: Ctx, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        kms = self.api(ctx, inputs)
        tags = self.tags(ctx, inputs)
        meta = kms.create_key(
            **compact(
                Description=inputs.get("description"),
                KeyUsage=inputs.get("keyUsage"),
                KeySpec=inputs.get("keySpec") or inputs.get("customerMasterKeySpec"),
                Policy=inputs.get("policy"),
                MultiRegion=inputs.get("multiRegion"),
                Tags=[{"TagKey": k, "TagValue": v} for k, v in tags.items()] or None,
            )
        )["KeyMetadata"]
        key_id = meta["KeyId"]
        if inputs.get("enableKeyRotation"):
            kms.enable_key_rotation(KeyId=key_id)
        if inputs.get("isEnabled") is False:
            kms.disable_key(KeyId=key_id)
        return key_id, {"arn": meta["Arn"], "keyId": key_id, "tagsAll": tags, **self._policy(kms, key_id, inputs)}

    @staticmethod
    def _policy(kms: Any, key_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
        if inputs.get("policy"):
            return {}
        return {"policy": kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]}

    def update(self, ctx: Ctx, rid: str, olds: dict[str, Any], news: dict[str, Any], changed: set[str]) -> dict[str, Any]:
        kms = self.api(ctx, news)
        if "description" in changed:
            kms.update_key_description(KeyId=rid, Description=news.get("description") or "")
        if "policy" in changed and news.get("policy"):
            kms.put_key_policy(KeyId=rid, PolicyName="default", Policy=news["policy"])
        if "enableKeyRotation" in changed:
            (kms.enable_key_rotation if news.get("enableKeyRotation") else kms.disable_key_rotation)(KeyId=rid)
        if "isEnabled" in changed:
            (kms.enable_key if news.get("isEnabled", True) else kms.disable_key)(KeyId=rid)
        tags = self.tags(ctx, news)
        if "tags" in changed:
            old_keys = set(self.tags(ctx, olds)) - set(tags)
            if old_keys:
                kms.untag_resource(KeyId=rid, TagKeys=sorted(old_keys))
            if tags:
                kms.tag_resource(KeyId=rid, Tags=[{"TagKey": k, "TagValue": v} for k, v in tags.items()])
        return {"arn": olds.get("arn"), "keyId": rid, "tagsAll": tags, **self._policy(kms, rid, news)}

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        kms = self.api(ctx, state)
        try:
            meta = kms.describe_key(KeyId=rid)["KeyMetadata"]
        except botocore.exceptions.ClientError as exc:
            if gone(exc):
                return None
            raise
        if meta.get("KeyState") in ("PendingDeletion", "PendingReplicaDeletion"):
            return None
        rotation = kms.get_key_rotation_status(KeyId=rid).get("KeyRotationEnabled", False)
        policy = kms.get_key_policy(KeyId=rid, PolicyName="default")["Policy"]
        return {
            **state,
            "arn": meta["Arn"],
            "keyId": rid,
            "description": meta.get("Description", ""),
            "isEnabled": meta.get("Enabled", True),
            "enableKeyRotation": rotation,
            "policy": state.get("policy") if same_value(policy, state.get("policy")) else policy,
        }

    def delete(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> None:
        kms = self.api(ctx, state)
        try:
            meta = kms.describe_key(KeyId=rid)["KeyMetadata"]
            if meta.get("KeyState") in ("PendingDeletion", "PendingReplicaDeletion"):
                return
            kms.schedule_key_deletion(KeyId=rid, PendingWindowInDays=int(state.get("deletionWindowInDays") or 30))
        except botocore.exceptions.ClientError as exc:
            if not gone(exc):
                raise


class KmsAlias(AwsType):
    pulumi_type = "aws:kms/alias:Alias"
    service = "kms"
    computed = frozenset({"arn", "targetKeyArn", "id"})
    required = ("targetKeyId",)
    autoname = "name"

    def check(self, news: dict[str, Any]) -> list[Any]:
        from pulumi.provider.experimental.provider import CheckFailure

        name = news.get("name")
        if name and not str(name).startswith("alias/"):
            return [CheckFailure("name", f"'{name}' must start with 'alias/'")]
        return []

    def _computed(self, ctx: Ctx, inputs: dict[str, Any]) -> dict[str, Any]:
        kms = self.api(ctx, inputs)
        key = kms.describe_key(KeyId=inputs["targetKeyId"])["KeyMetadata"]
        region = self.region(ctx, inputs)
        return {"arn": f"arn:aws:kms:{region}:{ctx.provider.account_id()}:{inputs['name']}", "targetKeyArn": key["Arn"]}

    def create(self, ctx: Ctx, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.api(ctx, inputs).create_alias(AliasName=inputs["name"], TargetKeyId=inputs["targetKeyId"])
        return inputs["name"], self._computed(ctx, inputs)

    def update(self, ctx: Ctx, rid: str, olds: dict[str, Any], news: dict[str, Any], changed: set[str]) -> dict[str, Any]:
        self.api(ctx, news).update_alias(AliasName=rid, TargetKeyId=news["targetKeyId"])
        return self._computed(ctx, news)

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        for page in self.api(ctx, state).get_paginator("list_aliases").paginate():
            for alias in page["Aliases"]:
                if alias["AliasName"] == rid:
                    target = alias.get("TargetKeyId")
                    keep = target in (state.get("targetKeyId"), str(state.get("targetKeyArn", "")).rsplit("/", 1)[-1])
                    return {**state, "targetKeyId": state.get("targetKeyId") if keep else target}
        return None

    def delete(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> None:
        ignoring_gone(self.api(ctx, state).delete_alias, AliasName=rid)


# DynamoDB ---------------------------------------------------------------------------------------------


class DynamoTable(AwsType):
    pulumi_type = "aws:dynamodb/table:Table"
    service = "dynamodb"
    taggable = True
    required = ("attributes",)
    autoname = "name"
    autoname_max = 255
    computed = frozenset({"arn", "streamArn", "streamLabel", "id"})
    defaults = {"billingMode": "PROVISIONED"}

    def check(self, news: dict[str, Any]) -> list[Any]:
        from pulumi.provider.experimental.provider import CheckFailure

        if not news.get("hashKey"):
            return [CheckFailure("hashKey", "missing required property 'hashKey'")]
        return []

    def create(self, ctx: Ctx, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ddb = self.api(ctx, inputs)
        name = inputs["name"]
        keys = [{"AttributeName": inputs["hashKey"], "KeyType": "HASH"}]
        if inputs.get("rangeKey"):
            keys.append({"AttributeName": inputs["rangeKey"], "KeyType": "RANGE"})
        billing = inputs.get("billingMode") or "PROVISIONED"
        sse = inputs.get("serverSideEncryption") or {}
        tags = self.tags(ctx, inputs)
        answer = ddb.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": a["name"], "AttributeType": a["type"]} for a in inputs["attributes"]],
            KeySchema=keys,
            BillingMode=billing,
            **compact(
                ProvisionedThroughput={
                    "ReadCapacityUnits": as_int(inputs.get("readCapacity")) or 1,
                    "WriteCapacityUnits": as_int(inputs.get("writeCapacity")) or 1,
                }
                if billing == "PROVISIONED"
                else None,
                SSESpecification=compact(
                    Enabled=True, SSEType="KMS", KMSMasterKeyId=sse.get("kmsKeyArn")
                )
                if sse.get("enabled")
                else None,
                DeletionProtectionEnabled=inputs.get("deletionProtectionEnabled"),
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()] or None,
            ),
        )["TableDescription"]
        self._settings(ddb, name, inputs)
        return name, {"arn": answer["TableArn"], "tagsAll": tags, **self._stream(answer)}

    @staticmethod
    def _stream(description: dict[str, Any]) -> dict[str, Any]:
        return compact(streamArn=description.get("LatestStreamArn"), streamLabel=description.get("LatestStreamLabel"))

    @staticmethod
    def _settings(ddb: Any, name: str, inputs: dict[str, Any]) -> None:
        pitr = (inputs.get("pointInTimeRecovery") or {}).get("enabled")
        if pitr is not None:
            ddb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": bool(pitr)}
            )
        ttl = inputs.get("ttl") or {}
        if ttl.get("enabled") and ttl.get("attributeName"):
            ddb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["attributeName"]}
            )

    def update(self, ctx: Ctx, rid: str, olds: dict[str, Any], news: dict[str, Any], changed: set[str]) -> dict[str, Any]:
        ddb = self.api(ctx, news)
        changes: dict[str, Any] = {}
        if "billingMode" in changed:
            changes["BillingMode"] = news["billingMode"]
        if "deletionProtectionEnabled" in changed:
            changes["DeletionProtectionEnabled"] = bool(news.get("deletionProtectionEnabled"))
        if "attributes" in changed:
            changes["AttributeDefinitions"] = [
                {"AttributeName": a["name"], "AttributeType": a["type"]} for a in news["attributes"]
            ]
        if "serverSideEncryption" in changed:
            sse = news.get("serverSideEncryption") or {}
            changes["SSESpecification"] = compact(
                Enabled=bool(sse.get("enabled")), SSEType="KMS" if sse.get("enabled") else None, KMSMasterKeyId=sse.get("kmsKeyArn")
            )
        if changes:
            ddb.update_table(TableName=rid, **changes)
        if changed & {"pointInTimeRecovery", "ttl"}:
            self._settings(ddb, rid, news)
        tags = self.tags(ctx, news)
        if "tags" in changed:
            arn = olds["arn"]
            stale = sorted(set(self.tags(ctx, olds)) - set(tags))
            if stale:
                ddb.untag_resource(ResourceArn=arn, TagKeys=stale)
            if tags:
                ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
        return {"arn": olds.get("arn"), "tagsAll": tags, **self._stream(ddb.describe_table(TableName=rid)["Table"])}

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        ddb = self.api(ctx, state)
        try:
            table = ddb.describe_table(TableName=rid)["Table"]
        except botocore.exceptions.ClientError as exc:
            if gone(exc):
                return None
            raise
        billing = (table.get("BillingModeSummary") or {}).get("BillingMode") or state.get("billingMode")
        pitr = ddb.describe_continuous_backups(TableName=rid)["ContinuousBackupsDescription"]
        pitr_on = (pitr.get("PointInTimeRecoveryDescription") or {}).get("PointInTimeRecoveryStatus") == "ENABLED"
        current = {
            **state,
            "arn": table["TableArn"],
            "billingMode": billing,
            "deletionProtectionEnabled": bool(table.get("DeletionProtectionEnabled")),
            "attributes": [{"name": a["AttributeName"], "type": a["AttributeType"]} for a in table["AttributeDefinitions"]],
        }
        if state.get("pointInTimeRecovery") is not None or pitr_on:
            current["pointInTimeRecovery"] = {**(state.get("pointInTimeRecovery") or {}), "enabled": pitr_on}
        return current

    def delete(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> None:
        try:
            self.api(ctx, state).delete_table(TableName=rid)
        except botocore.exceptions.ClientError as exc:
            if gone(exc):
                return
            raise


# IAM ---------------------------------------------------------------------------------------------------


def _policy_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class IamRole(AwsType):
    pulumi_type = "aws:iam/role:Role"
    service = "iam"
    taggable = True
    required = ("assumeRolePolicy",)
    autoname = "name"
    computed = frozenset({"arn", "uniqueId", "createDate", "id"})
    defaults = {"path": "/", "maxSessionDuration": 3600, "forceDetachPolicies": False}

    def create(self, ctx: Ctx, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        iam = self.api(ctx, inputs)
        name = inputs["name"]
        tags = self.tags(ctx, inputs)
        role = iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=_policy_text(inputs["assumeRolePolicy"]),
            **compact(
                Path=inputs.get("path"),
                Description=inputs.get("description"),
                MaxSessionDuration=as_int(inputs.get("maxSessionDuration")),
                PermissionsBoundary=inputs.get("permissionsBoundary"),
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()] or None,
            ),
        )["Role"]
        try:
            self._inline(iam, name, [], inputs.get("inlinePolicies") or [])
            for arn in inputs.get("managedPolicyArns") or []:
                iam.attach_role_policy(RoleName=name, PolicyArn=arn)
        except Exception:
            # Not in state when create fails: leave nothing behind.
            self._detach_everything(iam, name)
            ignoring_gone(iam.delete_role, RoleName=name)
            raise
        return name, {
            "arn": role["Arn"],
            "uniqueId": role["RoleId"],
            "createDate": role["CreateDate"].isoformat(),
            "tagsAll": tags,
        }

    @staticmethod
    def _inline(iam: Any, role: str, old: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
        wanted = {p["name"]: p["policy"] for p in new if p.get("name")}
        for policy in old:
            if policy.get("name") and policy["name"] not in wanted:
                ignoring_gone(iam.delete_role_policy, RoleName=role, PolicyName=policy["name"])
        for name, document in wanted.items():
            iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=_policy_text(document))

    def update(self, ctx: Ctx, rid: str, olds: dict[str, Any], news: dict[str, Any], changed: set[str]) -> dict[str, Any]:
        iam = self.api(ctx, news)
        if "assumeRolePolicy" in changed:
            iam.update_assume_role_policy(RoleName=rid, PolicyDocument=_policy_text(news["assumeRolePolicy"]))
        if changed & {"description", "maxSessionDuration"}:
            iam.update_role(
                RoleName=rid,
                **compact(Description=news.get("description"), MaxSessionDuration=as_int(news.get("maxSessionDuration"))),
            )
        if "inlinePolicies" in changed:
            self._inline(iam, rid, olds.get("inlinePolicies") or [], news.get("inlinePolicies") or [])
        if "managedPolicyArns" in changed:
            old, new = set(olds.get("managedPolicyArns") or []), set(news.get("managedPolicyArns") or [])
            for arn in old - new:
                ignoring_gone(iam.detach_role_policy, RoleName=rid, PolicyArn=arn)
            for arn in new - old:
                iam.attach_role_policy(RoleName=rid, PolicyArn=arn)
        if "permissionsBoundary" in changed:
            if news.get("permissionsBoundary"):
                iam.put_role_permissions_boundary(RoleName=rid, PermissionsBoundary=news["permissionsBoundary"])
            else:
                ignoring_gone(iam.delete_role_permissions_boundary, RoleName=rid)
        tags = self.tags(ctx, news)
        if "tags" in changed:
            stale = sorted(set(self.tags(ctx, olds)) - set(tags))
            if stale:
                iam.untag_role(RoleName=rid, TagKeys=stale)
            if tags:
                iam.tag_role(RoleName=rid, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
        return {k: olds.get(k) for k in ("arn", "uniqueId", "createDate")} | {"tagsAll": tags}

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        iam = self.api(ctx, state)
        try:
            role = iam.get_role(RoleName=rid)["Role"]
        except botocore.exceptions.ClientError as exc:
            if gone(exc):
                return None
            raise
        trust = role.get("AssumeRolePolicyDocument")
        if isinstance(trust, str):
            trust = json.loads(urllib.parse.unquote(trust))
        current = {
            **state,
            "name": role["RoleName"],
            "arn": role["Arn"],
            "path": role.get("Path", "/"),
            "maxSessionDuration": role.get("MaxSessionDuration", 3600),
            "assumeRolePolicy": state.get("assumeRolePolicy")
            if same_value(trust, state.get("assumeRolePolicy"))
            else json.dumps(trust),
        }
        if state.get("inlinePolicies") is not None:
            names = iam.list_role_policies(RoleName=rid)["PolicyNames"]
            olds = {p.get("name"): p for p in state.get("inlinePolicies") or []}
            policies = []
            for name in names:
                document = iam.get_role_policy(RoleName=rid, PolicyName=name)["PolicyDocument"]
                old = olds.get(name)
                keep = old is not None and same_value(document, old.get("policy"))
                policies.append({"name": name, "policy": old["policy"] if keep else _policy_text(document)})
            current["inlinePolicies"] = policies
        return current

    @staticmethod
    def _detach_everything(iam: Any, name: str) -> None:
        for policy in iam.list_role_policies(RoleName=name).get("PolicyNames", []):
            ignoring_gone(iam.delete_role_policy, RoleName=name, PolicyName=policy)
        for policy in iam.list_attached_role_policies(RoleName=name).get("AttachedPolicies", []):
            ignoring_gone(iam.detach_role_policy, RoleName=name, PolicyArn=policy["PolicyArn"])
        for profile in iam.list_instance_profiles_for_role(RoleName=name).get("InstanceProfiles", []):
            ignoring_gone(iam.remove_role_from_instance_profile, InstanceProfileName=profile["InstanceProfileName"], RoleName=name)

    def delete(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> None:
        iam = self.api(ctx, state)
        try:
            # The real provider deletes the role's inline policies (and, with forceDetachPolicies,
            # its attachments); AWS refuses to delete a role that still has any.
            for policy in iam.list_role_policies(RoleName=rid).get("PolicyNames", []):
                ignoring_gone(iam.delete_role_policy, RoleName=rid, PolicyName=policy)
            if state.get("forceDetachPolicies") or state.get("managedPolicyArns"):
                self._detach_everything(iam, rid)
            iam.delete_role(RoleName=rid)
        except botocore.exceptions.ClientError as exc:
            if not gone(exc):
                raise


class IamRolePolicy(AwsType):
    pulumi_type = "aws:iam/rolePolicy:RolePolicy"
    service = "iam"
    required = ("role", "policy")
    autoname = "name"
    autoname_max = 128
    computed = frozenset({"id"})

    def create(self, ctx: Ctx, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.api(ctx, inputs).put_role_policy(
            RoleName=inputs["role"], PolicyName=inputs["name"], PolicyDocument=_policy_text(inputs["policy"])
        )
        return f"{inputs['role']}:{inputs['name']}", {}

    def update(self, ctx: Ctx, rid: str, olds: dict[str, Any], news: dict[str, Any], changed: set[str]) -> dict[str, Any]:
        self.create(ctx, news)
        return {}

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        role, _, name = rid.partition(":")
        try:
            document = self.api(ctx, state).get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        except botocore.exceptions.ClientError as exc:
            if gone(exc):
                return None
            raise
        keep = same_value(document, state.get("policy"))
        return {**state, "role": role, "name": name, "policy": state.get("policy") if keep else _policy_text(document)}

    def delete(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> None:
        role, _, name = rid.partition(":")
        ignoring_gone(self.api(ctx, state).delete_role_policy, RoleName=role, PolicyName=name)


class IamRolePolicyAttachment(AwsType):
    pulumi_type = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
    service = "iam"
    required = ("role", "policyArn")
    computed = frozenset({"id"})

    def create(self, ctx: Ctx, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        try:
            self.api(ctx, inputs).attach_role_policy(RoleName=inputs["role"], PolicyArn=inputs["policyArn"])
        except botocore.exceptions.ClientError as exc:
            code, message = aws_error(exc)
            if code == "NoSuchEntity" and inputs["policyArn"].startswith("arn:aws:iam::aws:policy/"):
                raise ProviderError(
                    f"{code}: {message} (moto_server knows AWS-managed policies only when started with "
                    "MOTO_IAM_LOAD_MANAGED_POLICIES=true)"
                ) from exc
            raise
        return f"{inputs['role']}/{inputs['policyArn']}", {}

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        try:
            pages = self.api(ctx, state).get_paginator("list_attached_role_policies").paginate(RoleName=state["role"])
            attached = {p["PolicyArn"] for page in pages for p in page.get("AttachedPolicies", [])}
        except botocore.exceptions.ClientError as exc:
            if gone(exc):
                return None
            raise
        return state if state["policyArn"] in attached else None

    def delete(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> None:
        ignoring_gone(self.api(ctx, state).detach_role_policy, RoleName=state["role"], PolicyArn=state["policyArn"])


class IamOidcProvider(AwsType):
    pulumi_type = "aws:iam/openIdConnectProvider:OpenIdConnectProvider"
    service = "iam"
    taggable = True
    required = ("url", "clientIdLists")
    computed = frozenset({"arn", "id"})

    def create(self, ctx: Ctx, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        tags = self.tags(ctx, inputs)
        arn = self.api(ctx, inputs).create_open_id_connect_provider(
            Url=inputs["url"],
            ClientIDList=list(inputs["clientIdLists"]),
            # AWS ignores thumbprints for well-known issuers; moto wants the list.
            ThumbprintList=list(inputs.get("thumbprintLists") or []),
            **compact(Tags=[{"Key": k, "Value": v} for k, v in tags.items()] or None),
        )["OpenIDConnectProviderArn"]
        return arn, {"arn": arn, "tagsAll": tags}

    def update(self, ctx: Ctx, rid: str, olds: dict[str, Any], news: dict[str, Any], changed: set[str]) -> dict[str, Any]:
        iam = self.api(ctx, news)
        if "clientIdLists" in changed:
            old, new = set(olds.get("clientIdLists") or []), set(news.get("clientIdLists") or [])
            for client in new - old:
                iam.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=rid, ClientID=client)
            for client in old - new:
                iam.remove_client_id_from_open_id_connect_provider(OpenIDConnectProviderArn=rid, ClientID=client)
        if "thumbprintLists" in changed:
            iam.update_open_id_connect_provider_thumbprint(
                OpenIDConnectProviderArn=rid, ThumbprintList=list(news.get("thumbprintLists") or [])
            )
        return {"arn": rid, "tagsAll": self.tags(ctx, news)}

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        try:
            answer = self.api(ctx, state).get_open_id_connect_provider(OpenIDConnectProviderArn=rid)
        except botocore.exceptions.ClientError as exc:
            if gone(exc):
                return None
            raise
        clients = answer.get("ClientIDList", [])
        keep = sorted(clients) == sorted(state.get("clientIdLists") or [])
        return {**state, "arn": rid, "clientIdLists": state.get("clientIdLists") if keep else clients}

    def delete(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> None:
        ignoring_gone(self.api(ctx, state).delete_open_id_connect_provider, OpenIDConnectProviderArn=rid)


# Lambda ------------------------------------------------------------------------------------------------

FUNCTION_CONFIG = ("role", "handler", "runtime", "memorySize", "timeout", "environment", "description", "layers")
"""Inputs UpdateFunctionConfiguration changes (a change publishes a version when `publish`)."""
FUNCTION_CODE = ("code", "s3Bucket", "s3Key", "s3ObjectVersion", "imageUri", "architectures")
"""Inputs UpdateFunctionCode changes."""


def _function_config(inputs: dict[str, Any]) -> dict[str, Any]:
    environment = inputs.get("environment") or {}
    return compact(
        Role=inputs.get("role"),
        Handler=inputs.get("handler"),
        Runtime=inputs.get("runtime"),
        MemorySize=as_int(inputs.get("memorySize")),
        Timeout=as_int(inputs.get("timeout")),
        Description=inputs.get("description"),
        Layers=inputs.get("layers"),
        Environment={"Variables": dict(environment.get("variables") or {})},
    )


def _function_code(inputs: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The Code argument (ZipFile/S3/Image) and, for an archive, its hash."""
    if inputs.get("code") is not None:
        zipped = zip_archive(inputs["code"])
        return {"ZipFile": zipped}, code_hash(zipped)
    if inputs.get("s3Bucket"):
        return compact(S3Bucket=inputs["s3Bucket"], S3Key=inputs.get("s3Key"), S3ObjectVersion=inputs.get("s3ObjectVersion")), None
    if inputs.get("imageUri"):
        return {"ImageUri": inputs["imageUri"]}, None
    raise ProviderError("one of code, s3Bucket or imageUri must be set")


def _set_concurrency(lam: Any, name: str, reserved: Any) -> None:
    """`reservedConcurrentExecutions`: -1 (the provider's default) = unreserved."""
    count = as_int(reserved)
    if count is None or count < 0:
        ignoring_gone(lam.delete_function_concurrency, FunctionName=name)
    else:
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=count)


def unqualified(arn: str) -> str:
    """A function ARN without a `:version` / `:alias` suffix."""
    return arn.rsplit(":", 1)[0] if arn.count(":") >= 7 else arn


class LambdaFunction(AwsType):
    pulumi_type = "aws:lambda/function:Function"
    service = "lambda"
    taggable = True
    required = ("role",)
    autoname = "name"
    computed = frozenset(
        {
            "arn", "invokeArn", "qualifiedArn", "qualifiedInvokeArn", "version", "lastModified",
            "sourceCodeHash", "codeSha256", "sourceCodeSize", "responseStreamingInvokeArn", "id",
        }
    )  # fmt: skip
    defaults = {
        "memorySize": 128, "timeout": 3, "publish": False, "packageType": "Zip", "architectures": ["x86_64"],
        "reservedConcurrentExecutions": -1,
    }  # fmt: skip

    def check(self, news: dict[str, Any]) -> list[Any]:
        """The schema's ranges, with terraform-provider-aws' message (internal/service/lambda/
        function.go: memory_size validation.IntBetween(128, 10240), timeout IntBetween(1, 900))."""
        from pulumi.provider.experimental.provider import CheckFailure

        failures = []
        for key, tf_name, (low, high) in (
            ("memorySize", "memory_size", aws_limits.LAMBDA_MEMORY_MB),
            ("timeout", "timeout", aws_limits.LAMBDA_TIMEOUT_SECONDS),
        ):
            value = news.get(key)
            if isinstance(value, (int, float)) and not low <= value <= high:
                failures.append(CheckFailure(key, f"expected {tf_name} to be in the range ({low} - {high}), got {int(value)}"))
        return failures

    def derived_inputs(self, news: dict[str, Any]) -> dict[str, Any]:
        # Check is the only call that sees the archive's contents (Diff gets it elided): hash it here.
        code = news.get("code")
        if isinstance(code, pulumi.Archive):
            try:
                return {"sourceCodeHash": code_hash(zip_archive(code))}
            except ProviderError:
                pass  # not built here (yet): Diff sees no hash and calls it a change; Create says why
        return {}

    def same(self, key: str, old: Any, new: Any, olds: dict[str, Any], news: dict[str, Any]) -> bool:
        if key == "code":
            if is_unknown(new) or (new is None) != (old is None):
                return False
            return new is None or news.get("sourceCodeHash") == olds.get("sourceCodeHash")
        return super().same(key, old, new, olds, news)

    def _arns(self, ctx: Ctx, arn: str, version: str, region: str) -> dict[str, Any]:
        invoke = f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{{}}/invocations"
        qualified = f"{arn}:{version}"
        return {
            "arn": arn,
            "invokeArn": invoke.format(arn),
            "qualifiedArn": qualified,
            "qualifiedInvokeArn": invoke.format(qualified),
            "responseStreamingInvokeArn": invoke.replace("2015-03-31", "2021-11-15").format(arn).replace(
                "/invocations", "/response-streaming-invocations"
            ),
            "version": version,
        }

    def create(self, ctx: Ctx, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        lam = self.api(ctx, inputs)
        code, _ = _function_code(inputs)
        tags = self.tags(ctx, inputs)
        name = inputs["name"]
        answer = self._retrying(
            lam.create_function,
            FunctionName=name,
            Code=code,
            Publish=bool(inputs.get("publish")),
            PackageType=inputs.get("packageType") or "Zip",
            **compact(Architectures=inputs.get("architectures"), Tags=tags or None),
            **_function_config(inputs),
        )
        version = answer["Version"] if inputs.get("publish") else "$LATEST"
        reserved = as_int(inputs.get("reservedConcurrentExecutions"))
        if reserved is not None and reserved >= 0:
            _set_concurrency(lam, name, reserved)
        return name, {
            **self._arns(ctx, unqualified(answer["FunctionArn"]), version, self.region(ctx, inputs)),
            "lastModified": answer["LastModified"],
            "sourceCodeHash": answer["CodeSha256"],
            "codeSha256": answer["CodeSha256"],
            "sourceCodeSize": answer.get("CodeSize", 0),
            "tagsAll": tags,
        }

    @staticmethod
    def _retrying(call: Any, **kwargs: Any) -> Any:
        """Lambda answers ResourceConflictException while a previous update is in progress."""
        for attempt in range(10):
            try:
                return call(**kwargs)
            except botocore.exceptions.ClientError as exc:
                code, _ = aws_error(exc)
                if code not in ("ResourceConflictException", "TooManyRequestsException") or attempt == 9:
                    raise
                time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def update(self, ctx: Ctx, rid: str, olds: dict[str, Any], news: dict[str, Any], changed: set[str]) -> dict[str, Any]:
        lam = self.api(ctx, news)
        computed = {k: olds.get(k) for k in self.computed if k in olds}
        touched = False
        if changed & set(FUNCTION_CODE):
            code, _ = _function_code(news)
            answer = self._retrying(
                lam.update_function_code, FunctionName=rid, **code, **compact(Architectures=news.get("architectures"))
            )
            computed.update(sourceCodeHash=answer["CodeSha256"], codeSha256=answer["CodeSha256"], sourceCodeSize=answer.get("CodeSize", 0))
            touched = True
        if changed & set(FUNCTION_CONFIG):
            self._retrying(lam.update_function_configuration, FunctionName=rid, **_function_config(news))
            touched = True
        if touched:
            stamp = lam.get_function_configuration(FunctionName=rid)["LastModified"]
            # moto keeps $LATEST's first stamp; AWS moves it on every update.
            computed["lastModified"] = stamp if stamp > str(olds.get("lastModified") or "") else now_stamp()
        if "reservedConcurrentExecutions" in changed:
            # A function setting of its own (PutFunctionConcurrency): no new version.
            _set_concurrency(lam, rid, news.get("reservedConcurrentExecutions"))
        arn = olds.get("arn") or lam.get_function_configuration(FunctionName=rid)["FunctionArn"]
        if news.get("publish") and (touched or "publish" in changed):
            version = self._retrying(lam.publish_version, FunctionName=rid)["Version"]
        elif news.get("publish"):
            version = olds.get("version") or "$LATEST"
        else:
            version = "$LATEST"
        computed.update(self._arns(ctx, arn, version, self.region(ctx, news)))
        tags = self.tags(ctx, news)
        if "tags" in changed:
            stale = sorted(set(self.tags(ctx, olds)) - set(tags))
            if stale:
                lam.untag_resource(Resource=arn, TagKeys=stale)
            if tags:
                lam.tag_resource(Resource=arn, Tags=tags)
        computed["tagsAll"] = tags
        return computed

    def preview_update(self, olds: dict[str, Any], news: dict[str, Any], changed: set[str]) -> dict[str, Any]:
        # terraform-provider-aws updateComputedAttributesOnPublish: last_modified is new-computed on
        # a code change only (a configuration change moves it too, but preview shows the old one);
        # version and qualified_arn on any change when publishing.
        computed = super().preview_update(olds, news, changed)
        touched = bool(changed & (set(FUNCTION_CODE) | set(FUNCTION_CONFIG)))
        if changed & set(FUNCTION_CODE):
            computed["lastModified"] = UNKNOWN
        if changed & set(FUNCTION_CODE):
            computed.update(sourceCodeHash=UNKNOWN, codeSha256=UNKNOWN, sourceCodeSize=UNKNOWN)
        if news.get("publish") and (touched or "publish" in changed):
            computed.update(version=UNKNOWN, qualifiedArn=UNKNOWN, qualifiedInvokeArn=UNKNOWN)
        elif not news.get("publish") and olds.get("arn"):
            computed.update(version="$LATEST", qualifiedArn=f"{olds['arn']}:$LATEST")
        return computed

    def preview_create(self, inputs: dict[str, Any]) -> dict[str, Any]:
        computed = super().preview_create(inputs)
        if not inputs.get("publish"):
            computed["version"] = "$LATEST"
        return computed

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        lam = self.api(ctx, state)
        try:
            config = lam.get_function_configuration(FunctionName=rid)
        except botocore.exceptions.ClientError as exc:
            if gone(exc):
                return None
            raise
        variables = (config.get("Environment") or {}).get("Variables")
        reserved = lam.get_function_concurrency(FunctionName=rid).get("ReservedConcurrentExecutions")
        current = {
            **state,
            "name": config["FunctionName"],
            "role": config.get("Role"),
            "handler": config.get("Handler"),
            "runtime": config.get("Runtime"),
            "memorySize": config.get("MemorySize"),
            "timeout": config.get("Timeout"),
            "reservedConcurrentExecutions": -1 if reserved is None else reserved,
            "architectures": config.get("Architectures") or state.get("architectures"),
            "environment": {"variables": variables} if variables else None,
            "sourceCodeHash": config.get("CodeSha256"),
            "codeSha256": config.get("CodeSha256"),
            "sourceCodeSize": config.get("CodeSize"),
            # moto never moves $LATEST's stamp: keep the later of the two.
            "lastModified": max(str(config.get("LastModified", "")), str(state.get("lastModified") or "")),
        }
        if "description" in state or config.get("Description"):
            current["description"] = config.get("Description", "")
        arn = unqualified(config["FunctionArn"])
        version = "$LATEST"
        if state.get("publish"):
            versions = [
                v["Version"]
                for page in lam.get_paginator("list_versions_by_function").paginate(FunctionName=rid)
                for v in page["Versions"]
                if v["Version"] != "$LATEST"
            ]
            version = max(versions, key=int) if versions else "$LATEST"
        current.update(self._arns(ctx, arn, version, self.region(ctx, state)))
        return current

    def delete(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> None:
        ignoring_gone(self._retrying, self.api(ctx, state).delete_function, FunctionName=rid)


class LambdaAlias(AwsType):
    pulumi_type = "aws:lambda/alias:Alias"
    service = "lambda"
    required = ("functionName", "functionVersion")
    autoname = "name"
    computed = frozenset({"arn", "invokeArn", "id"})

    def _computed(self, ctx: Ctx, inputs: dict[str, Any], arn: str) -> dict[str, Any]:
        region = self.region(ctx, inputs)
        return {"arn": arn, "invokeArn": f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations"}

    @staticmethod
    def _routing(inputs: dict[str, Any]) -> dict[str, Any] | None:
        routing = inputs.get("routingConfig") or {}
        weights = routing.get("additionalVersionWeights")
        return {"AdditionalVersionWeights": {k: float(v) for k, v in weights.items()}} if weights else None

    def create(self, ctx: Ctx, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        answer = LambdaFunction._retrying(
            self.api(ctx, inputs).create_alias,
            FunctionName=inputs["functionName"],
            Name=inputs["name"],
            FunctionVersion=inputs["functionVersion"],
            **compact(Description=inputs.get("description"), RoutingConfig=self._routing(inputs)),
        )
        return answer["AliasArn"], self._computed(ctx, inputs, answer["AliasArn"])

    def update(self, ctx: Ctx, rid: str, olds: dict[str, Any], news: dict[str, Any], changed: set[str]) -> dict[str, Any]:
        answer = LambdaFunction._retrying(
            self.api(ctx, news).update_alias,
            FunctionName=news["functionName"],
            Name=news["name"],
            FunctionVersion=news["functionVersion"],
            Description=news.get("description") or "",
            RoutingConfig=self._routing(news) or {"AdditionalVersionWeights": {}},
        )
        return self._computed(ctx, news, answer["AliasArn"])

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        try:
            alias = self.api(ctx, state).get_alias(FunctionName=state["functionName"], Name=state["name"])
        except botocore.exceptions.ClientError as exc:
            if gone(exc):
                return None
            raise
        current = {**state, "functionVersion": alias["FunctionVersion"]}
        if alias.get("Description") or state.get("description") is not None:
            current["description"] = alias.get("Description", "")
        return current

    def delete(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> None:
        ignoring_gone(self.api(ctx, state).delete_alias, FunctionName=state["functionName"], Name=state["name"])


def function_url(base: str | None, moto_url: str, function_name: str, qualifier: str | None) -> str:
    """The `functionUrl` output: under WEBSTACK_LAMBDA_URL_BASE when set, else moto's (with AWS's `/`)."""
    if base:
        segments = [urllib.parse.quote(function_name, safe=""), urllib.parse.quote(qualifier or "$LATEST", safe="")]
        return f"{base.rstrip('/')}/{'/'.join(segments)}/"
    return moto_url if moto_url.endswith("/") else moto_url + "/"


class LambdaFunctionUrl(AwsType):
    pulumi_type = "aws:lambda/functionUrl:FunctionUrl"
    service = "lambda"
    required = ("functionName", "authorizationType")
    computed = frozenset({"functionArn", "functionUrl", "urlId", "id"})
    defaults = {"invokeMode": "BUFFERED"}

    @staticmethod
    def _cors(inputs: dict[str, Any]) -> dict[str, Any] | None:
        cors = inputs.get("cors")
        if not cors:
            return None
        return compact(
            AllowCredentials=cors.get("allowCredentials"),
            AllowHeaders=cors.get("allowHeaders"),
            AllowMethods=cors.get("allowMethods"),
            AllowOrigins=cors.get("allowOrigins"),
            ExposeHeaders=cors.get("exposeHeaders"),
            MaxAge=as_int(cors.get("maxAge")),
        )

    @staticmethod
    def _id(inputs: dict[str, Any]) -> str:
        qualifier = inputs.get("qualifier")
        return f"{inputs['functionName']}/{qualifier}" if qualifier else inputs["functionName"]

    def _computed(self, inputs: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
        moto_url = answer["FunctionUrl"]
        url = function_url(os.environ.get("WEBSTACK_LAMBDA_URL_BASE"), moto_url, inputs["functionName"], inputs.get("qualifier"))
        return {
            "functionArn": answer["FunctionArn"],
            "functionUrl": url,
            "urlId": urllib.parse.urlsplit(moto_url).hostname.split(".")[0],
        }

    def create(self, ctx: Ctx, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        answer = self.api(ctx, inputs).create_function_url_config(
            FunctionName=inputs["functionName"],
            AuthType=inputs["authorizationType"],
            **compact(Qualifier=inputs.get("qualifier"), Cors=self._cors(inputs), InvokeMode=inputs.get("invokeMode")),
        )
        return self._id(inputs), self._computed(inputs, answer)

    def update(self, ctx: Ctx, rid: str, olds: dict[str, Any], news: dict[str, Any], changed: set[str]) -> dict[str, Any]:
        answer = self.api(ctx, news).update_function_url_config(
            FunctionName=news["functionName"],
            AuthType=news["authorizationType"],
            Cors=self._cors(news) or {},
            **compact(Qualifier=news.get("qualifier"), InvokeMode=news.get("invokeMode")),
        )
        return self._computed(news, answer)

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        try:
            answer = self.api(ctx, state).get_function_url_config(
                FunctionName=state["functionName"], **compact(Qualifier=state.get("qualifier"))
            )
        except botocore.exceptions.ClientError as exc:
            if gone(exc):
                return None
            raise
        return {**state, "authorizationType": answer.get("AuthType"), **self._computed(state, answer)}

    def delete(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> None:
        ignoring_gone(
            self.api(ctx, state).delete_function_url_config,
            FunctionName=state["functionName"],
            **compact(Qualifier=state.get("qualifier")),
        )


class LambdaPermission(AwsType):
    pulumi_type = "aws:lambda/permission:Permission"
    service = "lambda"
    required = ("action", "function", "principal")
    autoname = "statementId"
    autoname_max = 100
    computed = frozenset({"id"})

    def create(self, ctx: Ctx, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        LambdaFunction._retrying(
            self.api(ctx, inputs).add_permission,
            FunctionName=inputs["function"],
            StatementId=inputs["statementId"],
            Action=inputs["action"],
            Principal=inputs["principal"],
            **compact(
                Qualifier=inputs.get("qualifier"),
                SourceArn=inputs.get("sourceArn"),
                SourceAccount=inputs.get("sourceAccount"),
                EventSourceToken=inputs.get("eventSourceToken"),
                PrincipalOrgID=inputs.get("principalOrgId"),
                FunctionUrlAuthType=inputs.get("functionUrlAuthType"),
                InvokedViaFunctionUrl=inputs.get("invokedViaFunctionUrl"),
            ),
        )
        return inputs["statementId"], {}

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        try:
            policy = self.api(ctx, state).get_policy(
                FunctionName=state["function"], **compact(Qualifier=state.get("qualifier"))
            )["Policy"]
        except botocore.exceptions.ClientError as exc:
            if gone(exc):
                return None
            raise
        statements = json.loads(policy).get("Statement", [])
        return state if any(s.get("Sid") == rid for s in statements) else None

    def delete(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> None:
        ignoring_gone(
            self.api(ctx, state).remove_permission,
            FunctionName=state["function"],
            StatementId=rid,
            **compact(Qualifier=state.get("qualifier")),
        )


# CloudTrail, CloudWatch, SNS --------------------------------------------------------------------------


class CloudTrail(AwsType):
    pulumi_type = "aws:cloudtrail/trail:Trail"
    service = "cloudtrail"
    taggable = True
    required = ("s3BucketName",)
    autoname = "name"
    computed = frozenset({"arn", "homeRegion", "snsTopicArn", "id"})
    defaults = {"enableLogging": True, "includeGlobalServiceEvents": True, "isMultiRegionTrail": False}

    @staticmethod
    def _settings(inputs: dict[str, Any]) -> dict[str, Any]:
        return compact(
            S3BucketName=inputs.get("s3BucketName"),
            S3KeyPrefix=inputs.get("s3KeyPrefix"),
            SnsTopicName=inputs.get("snsTopicName"),
            IncludeGlobalServiceEvents=inputs.get("includeGlobalServiceEvents"),
            IsMultiRegionTrail=inputs.get("isMultiRegionTrail"),
            EnableLogFileValidation=inputs.get("enableLogFileValidation"),
            CloudWatchLogsLogGroupArn=inputs.get("cloudWatchLogsGroupArn"),
            CloudWatchLogsRoleArn=inputs.get("cloudWatchLogsRoleArn"),
            KmsKeyId=inputs.get("kmsKeyId"),
            IsOrganizationTrail=inputs.get("isOrganizationTrail"),
        )

    def create(self, ctx: Ctx, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        trail_api = self.api(ctx, inputs)
        tags = self.tags(ctx, inputs)
        trail = trail_api.create_trail(
            Name=inputs["name"],
            **self._settings(inputs),
            **compact(TagsList=[{"Key": k, "Value": v} for k, v in tags.items()] or None),
        )
        if inputs.get("enableLogging", True):
            trail_api.start_logging(Name=inputs["name"])
        return inputs["name"], {
            "arn": trail["TrailARN"],
            "homeRegion": self.region(ctx, inputs),
            "tagsAll": tags,
            **compact(snsTopicArn=trail.get("SnsTopicARN")),
        }

    def update(self, ctx: Ctx, rid: str, olds: dict[str, Any], news: dict[str, Any], changed: set[str]) -> dict[str, Any]:
        trail_api = self.api(ctx, news)
        settings = self._settings(news)
        if changed - {"enableLogging", "tags"}:
            trail = trail_api.update_trail(Name=rid, **settings)
        else:
            trail = {"TrailARN": olds.get("arn")}
        if "enableLogging" in changed:
            (trail_api.start_logging if news.get("enableLogging", True) else trail_api.stop_logging)(Name=rid)
        return {
            "arn": trail["TrailARN"],
            "homeRegion": self.region(ctx, news),
            "tagsAll": self.tags(ctx, news),
            **compact(snsTopicArn=trail.get("SnsTopicARN")),
        }

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        trail_api = self.api(ctx, state)
        trails = trail_api.describe_trails(trailNameList=[rid]).get("trailList", [])
        if not trails:
            return None
        trail = trails[0]
        status = trail_api.get_trail_status(Name=rid)
        return {
            **state,
            "arn": trail["TrailARN"],
            "s3BucketName": trail.get("S3BucketName"),
            "includeGlobalServiceEvents": trail.get("IncludeGlobalServiceEvents"),
            "isMultiRegionTrail": trail.get("IsMultiRegionTrail"),
            "enableLogFileValidation": trail.get("LogFileValidationEnabled", state.get("enableLogFileValidation")),
            "enableLogging": bool(status.get("IsLogging")),
        }

    def delete(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> None:
        ignoring_gone(self.api(ctx, state).delete_trail, Name=rid)


class LogGroup(AwsType):
    pulumi_type = "aws:cloudwatch/logGroup:LogGroup"
    service = "logs"
    taggable = True
    autoname = "name"
    autoname_max = 512
    computed = frozenset({"arn", "id"})
    defaults = {"retentionInDays": 0, "skipDestroy": False}

    def create(self, ctx: Ctx, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        logs = self.api(ctx, inputs)
        tags = self.tags(ctx, inputs)
        logs.create_log_group(
            logGroupName=inputs["name"],
            **compact(kmsKeyId=inputs.get("kmsKeyId"), tags=tags or None, logGroupClass=inputs.get("logGroupClass")),
        )
        if inputs.get("retentionInDays"):
            logs.put_retention_policy(logGroupName=inputs["name"], retentionInDays=int(inputs["retentionInDays"]))
        return inputs["name"], {"arn": self._arn(ctx, inputs), "tagsAll": tags}

    def _arn(self, ctx: Ctx, inputs: dict[str, Any]) -> str:
        return f"arn:aws:logs:{self.region(ctx, inputs)}:{ctx.provider.account_id()}:log-group:{inputs['name']}"

    def update(self, ctx: Ctx, rid: str, olds: dict[str, Any], news: dict[str, Any], changed: set[str]) -> dict[str, Any]:
        logs = self.api(ctx, news)
        if "retentionInDays" in changed:
            if news.get("retentionInDays"):
                logs.put_retention_policy(logGroupName=rid, retentionInDays=int(news["retentionInDays"]))
            else:
                logs.delete_retention_policy(logGroupName=rid)
        if "kmsKeyId" in changed:
            if news.get("kmsKeyId"):
                logs.associate_kms_key(logGroupName=rid, kmsKeyId=news["kmsKeyId"])
            else:
                logs.disassociate_kms_key(logGroupName=rid)
        return {"arn": self._arn(ctx, news), "tagsAll": self.tags(ctx, news)}

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        groups = self.api(ctx, state).describe_log_groups(logGroupNamePrefix=rid).get("logGroups", [])
        for group in groups:
            if group["logGroupName"] == rid:
                return {**state, "retentionInDays": group.get("retentionInDays", 0), **compact(kmsKeyId=group.get("kmsKeyId"))}
        return None

    def delete(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> None:
        if state.get("skipDestroy"):
            return
        ignoring_gone(self.api(ctx, state).delete_log_group, logGroupName=rid)


class LogMetricFilter(AwsType):
    pulumi_type = "aws:cloudwatch/logMetricFilter:LogMetricFilter"
    service = "logs"
    required = ("logGroupName", "pattern", "metricTransformation")
    autoname = "name"
    computed = frozenset({"id"})

    def _put(self, ctx: Ctx, inputs: dict[str, Any]) -> None:
        m = inputs["metricTransformation"]
        transformation = compact(
            metricName=m["name"],
            metricNamespace=m["namespace"],
            metricValue=m["value"],
            defaultValue=float(m["defaultValue"]) if m.get("defaultValue") not in (None, "") else None,
            unit=m.get("unit"),
            dimensions=m.get("dimensions") or None,
        )
        self.api(ctx, inputs).put_metric_filter(
            logGroupName=inputs["logGroupName"],
            filterName=inputs["name"],
            filterPattern=inputs["pattern"],
            metricTransformations=[transformation],
        )

    def create(self, ctx: Ctx, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self._put(ctx, inputs)
        return inputs["name"], {}

    def update(self, ctx: Ctx, rid: str, olds: dict[str, Any], news: dict[str, Any], changed: set[str]) -> dict[str, Any]:
        self._put(ctx, news)
        return {}

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        answer = ignoring_gone(
            self.api(ctx, state).describe_metric_filters, logGroupName=state["logGroupName"], filterNamePrefix=rid
        )
        for item in (answer or {}).get("metricFilters", []):
            if item["filterName"] == rid:
                return {**state, "pattern": item.get("filterPattern", state.get("pattern"))}
        return None

    def delete(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> None:
        ignoring_gone(self.api(ctx, state).delete_metric_filter, logGroupName=state["logGroupName"], filterName=rid)


class MetricAlarm(AwsType):
    pulumi_type = "aws:cloudwatch/metricAlarm:MetricAlarm"
    service = "cloudwatch"
    taggable = True
    required = ("comparisonOperator", "evaluationPeriods")
    autoname = "name"
    autoname_max = 255
    computed = frozenset({"arn", "id"})
    defaults = {"actionsEnabled": True, "treatMissingData": "missing"}

    def _put(self, ctx: Ctx, inputs: dict[str, Any]) -> None:
        tags = self.tags(ctx, inputs)
        self.api(ctx, inputs).put_metric_alarm(
            AlarmName=inputs["name"],
            ComparisonOperator=inputs["comparisonOperator"],
            EvaluationPeriods=int(inputs["evaluationPeriods"]),
            **compact(
                AlarmDescription=inputs.get("alarmDescription"),
                ActionsEnabled=inputs.get("actionsEnabled"),
                AlarmActions=inputs.get("alarmActions"),
                OKActions=inputs.get("okActions"),
                InsufficientDataActions=inputs.get("insufficientDataActions"),
                MetricName=inputs.get("metricName"),
                Namespace=inputs.get("namespace"),
                Statistic=inputs.get("statistic"),
                Period=as_int(inputs.get("period")),
                Threshold=inputs.get("threshold"),
                TreatMissingData=inputs.get("treatMissingData"),
                DatapointsToAlarm=as_int(inputs.get("datapointsToAlarm")),
                Unit=inputs.get("unit"),
                Dimensions=[{"Name": k, "Value": v} for k, v in (inputs.get("dimensions") or {}).items()] or None,
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()] or None,
            ),
        )

    def _computed(self, ctx: Ctx, inputs: dict[str, Any]) -> dict[str, Any]:
        arn = f"arn:aws:cloudwatch:{self.region(ctx, inputs)}:{ctx.provider.account_id()}:alarm:{inputs['name']}"
        return {"arn": arn, "tagsAll": self.tags(ctx, inputs)}

    def create(self, ctx: Ctx, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self._put(ctx, inputs)
        return inputs["name"], self._computed(ctx, inputs)

    def update(self, ctx: Ctx, rid: str, olds: dict[str, Any], news: dict[str, Any], changed: set[str]) -> dict[str, Any]:
        self._put(ctx, news)
        return self._computed(ctx, news)

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        alarms = self.api(ctx, state).describe_alarms(AlarmNames=[rid]).get("MetricAlarms", [])
        if not alarms:
            return None
        alarm = alarms[0]
        return {
            **state,
            "threshold": alarm.get("Threshold", state.get("threshold")),
            "evaluationPeriods": alarm.get("EvaluationPeriods", state.get("evaluationPeriods")),
            "alarmActions": alarm.get("AlarmActions", state.get("alarmActions")),
        }

    def delete(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> None:
        ignoring_gone(self.api(ctx, state).delete_alarms, AlarmNames=[rid])


class SnsTopic(AwsType):
    pulumi_type = "aws:sns/topic:Topic"
    service = "sns"
    taggable = True
    autoname = "name"
    autoname_max = 256
    computed = frozenset({"arn", "owner", "id"})
    ATTRIBUTES = {"kmsMasterKeyId": "KmsMasterKeyId", "displayName": "DisplayName", "policy": "Policy", "deliveryPolicy": "DeliveryPolicy"}

    def create(self, ctx: Ctx, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        sns = self.api(ctx, inputs)
        attributes = {api: str(inputs[key]) for key, api in self.ATTRIBUTES.items() if inputs.get(key)}
        if inputs.get("fifoTopic"):
            attributes["FifoTopic"] = "true"
        tags = self.tags(ctx, inputs)
        arn = sns.create_topic(
            Name=inputs["name"],
            **compact(Attributes=attributes or None, Tags=[{"Key": k, "Value": v} for k, v in tags.items()] or None),
        )["TopicArn"]
        return arn, {"arn": arn, "owner": arn.split(":")[4], "tagsAll": tags}

    def update(self, ctx: Ctx, rid: str, olds: dict[str, Any], news: dict[str, Any], changed: set[str]) -> dict[str, Any]:
        sns = self.api(ctx, news)
        for key, api in self.ATTRIBUTES.items():
            if key in changed:
                sns.set_topic_attributes(TopicArn=rid, AttributeName=api, AttributeValue=str(news.get(key) or ""))
        return {"arn": rid, "owner": rid.split(":")[4], "tagsAll": self.tags(ctx, news)}

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        try:
            attributes = self.api(ctx, state).get_topic_attributes(TopicArn=rid)["Attributes"]
        except botocore.exceptions.ClientError as exc:
            if gone(exc):
                return None
            raise
        current = dict(state)
        for key, api in (("kmsMasterKeyId", "KmsMasterKeyId"), ("displayName", "DisplayName")):
            if attributes.get(api) or state.get(key):
                current[key] = attributes.get(api) or None
        return current

    def delete(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> None:
        ignoring_gone(self.api(ctx, state).delete_topic, TopicArn=rid)


class SnsTopicSubscription(AwsType):
    pulumi_type = "aws:sns/topicSubscription:TopicSubscription"
    service = "sns"
    required = ("topicArn", "protocol", "endpoint")
    computed = frozenset({"arn", "ownerId", "pendingConfirmation", "confirmationWasAuthenticated", "id"})

    def create(self, ctx: Ctx, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        sns = self.api(ctx, inputs)
        attributes = compact(
            FilterPolicy=inputs.get("filterPolicy"),
            RawMessageDelivery=str(inputs["rawMessageDelivery"]).lower() if inputs.get("rawMessageDelivery") is not None else None,
        )
        arn = sns.subscribe(
            TopicArn=inputs["topicArn"],
            Protocol=inputs["protocol"],
            Endpoint=inputs["endpoint"],
            ReturnSubscriptionArn=True,
            **compact(Attributes=attributes or None),
        )["SubscriptionArn"]
        return arn, self._computed(sns, arn, inputs)

    @staticmethod
    def _computed(sns: Any, arn: str, inputs: dict[str, Any]) -> dict[str, Any]:
        try:
            attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
        except botocore.exceptions.ClientError:
            attributes = {}
        return {
            "arn": arn,
            "ownerId": attributes.get("Owner", arn.split(":")[4] if arn.count(":") >= 5 else ""),
            "pendingConfirmation": attributes.get("PendingConfirmation", "false") == "true",
            "confirmationWasAuthenticated": attributes.get("ConfirmationWasAuthenticated", "false") == "true",
        }

    def update(self, ctx: Ctx, rid: str, olds: dict[str, Any], news: dict[str, Any], changed: set[str]) -> dict[str, Any]:
        sns = self.api(ctx, news)
        if "filterPolicy" in changed:
            sns.set_subscription_attributes(SubscriptionArn=rid, AttributeName="FilterPolicy", AttributeValue=news.get("filterPolicy") or "")
        if "rawMessageDelivery" in changed:
            sns.set_subscription_attributes(
                SubscriptionArn=rid, AttributeName="RawMessageDelivery", AttributeValue=str(bool(news.get("rawMessageDelivery"))).lower()
            )
        return self._computed(sns, rid, news)

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        try:
            self.api(ctx, state).get_subscription_attributes(SubscriptionArn=rid)
        except botocore.exceptions.ClientError as exc:
            if gone(exc):
                return None
            raise
        return state

    def delete(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> None:
        ignoring_gone(self.api(ctx, state).unsubscribe, SubscriptionArn=rid)


def types() -> list[AwsType]:
    """One handler per covered type token."""
    found: list[type[AwsType]] = []
    pending = list(AwsType.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "pulumi_type" in cls.__dict__:
            found.append(cls)
    return [cls() for cls in sorted(found, key=lambda c: c.pulumi_type)]


def main() -> None:
    serve(AwsProvider())


if __name__ == "__main__":
    main()
    sys.exit(0)
