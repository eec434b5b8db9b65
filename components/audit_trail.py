"""The account's audit trail (prod only) and the alarms on it.

A multi-region CloudTrail trail with log-file validation, encrypted with its own KMS key into its
own secure bucket, and also delivered to a CloudWatch Logs group (KMS, a year's retention) where
metric filters count what should never happen unnoticed: a console login without MFA, and an IAM
policy change made by anyone but the pipeline's deploy roles. Each of the two has an alarm that
publishes to an SSE-KMS SNS topic; the topic mails `alertEmail` (SNS e-mail subscriptions need
nothing running on our side and are confirmed once by the recipient; Slack-style webhooks cannot
answer SNS's subscription handshake, so they are not used here).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import aws_policies
from core.iam import KEY_BOUNDARY_TAG
from core.names import foundation_names
from components.secure_bucket import SecureBucket, SecureBucketArgs

METRIC_NAMESPACE = "webstack/Audit"
LOG_RETENTION_DAYS = 365
ALARM_PERIOD_SECONDS = 300
# PutMetricFilter refuses a longer `filterPattern` (CloudWatch Logs API reference; moto checks it too).
MAX_FILTER_PATTERN = 1024

# CIS AWS Foundations 3.4 / Security Hub CloudWatch.4: the IAM calls that change a policy.
IAM_POLICY_EVENTS = (
    "DeleteGroupPolicy",
    "DeleteRolePolicy",
    "DeleteUserPolicy",
    "PutGroupPolicy",
    "PutRolePolicy",
    "PutUserPolicy",
    "CreatePolicy",
    "DeletePolicy",
    "CreatePolicyVersion",
    "DeletePolicyVersion",
    "SetDefaultPolicyVersion",
    "AttachRolePolicy",
    "DetachRolePolicy",
    "AttachUserPolicy",
    "DetachUserPolicy",
    "AttachGroupPolicy",
    "DetachGroupPolicy",
    "UpdateAssumeRolePolicy",
)
ISSUER = "$.userIdentity.sessionContext.sessionIssuer.userName"


def console_login_without_mfa_pattern() -> str:
    """CIS 3.2 / Security Hub CloudWatch.2: a successful IAM-user console login without MFA."""
    return (
        '{ ($.eventName = "ConsoleLogin") && ($.additionalEventData.MFAUsed != "Yes") && '
        '($.userIdentity.type = "IAMUser") && ($.responseElements.ConsoleLogin = "Success") }'
    )


def iam_policy_change_patterns(pipeline_roles: Sequence[str]) -> tuple[str, ...]:
    """An IAM policy change whose caller is not one of the pipeline's deploy roles, as filter
    patterns that together match exactly those events (each publishes to the same metric).

    Root and IAM users carry no `sessionContext`: a missing issuer counts as "not the pipeline"
    (`NOT EXISTS`), since a `!=` on a missing field would not match and hide exactly those.
    CloudWatch refuses a pattern over `MAX_FILTER_PATTERN` characters (PutMetricFilter's
    `filterPattern`); with four deploy roles one pattern over every event is longer, so the events
    are split over as few patterns as fit.
    """
    if not pipeline_roles or any('"' in role or not role for role in pipeline_roles):
        raise ValueError(f"pipeline role names must be non-empty and unquoted, got {pipeline_roles!r}")
    not_pipeline = " && ".join(f'({ISSUER} != "{role}")' for role in pipeline_roles)

    def pattern(events: Sequence[str]) -> str:
        names = " || ".join(f'($.eventName = "{event}")' for event in events)
        return f'{{ ($.eventSource = "iam.amazonaws.com") && ({names}) && (({ISSUER} NOT EXISTS) || ({not_pipeline})) }}'

    chunks: list[list[str]] = [[]]
    for event in IAM_POLICY_EVENTS:
        if chunks[-1] and len(pattern([*chunks[-1], event])) > MAX_FILTER_PATTERN:
            chunks.append([])
        chunks[-1].append(event)
    patterns = tuple(pattern(chunk) for chunk in chunks)
    if any(len(p) > MAX_FILTER_PATTERN for p in patterns):
        raise ValueError(f"the deploy roles' names make a filter pattern over {MAX_FILTER_PATTERN} characters: {pipeline_roles!r}")
    return patterns


def trail_log_group_arn(region: str, account_id: str, name: str) -> str:
    """CloudTrail wants the log group's ARN with the `:*` suffix the provider's `arn` lacks."""
    return f"{aws_policies.log_group_arn(region, account_id, name)}:*"


@dataclass(frozen=True, kw_only=True)
class AuditTrailArgs:
    project: str
    account_id: str
    region: str
    pipeline_roles: Sequence[str]
    """Names of the deploy roles whose IAM changes are the pipeline's own (not alarmed)."""
    alert_email: str
    """Where the alarms are mailed; empty = the topic has no subscriber (alarms show in the console)."""


@dataclass(frozen=True)
class _Anomaly:
    key: str
    metric: str
    description: str
    patterns: tuple[str, ...]
    """One filter each, all counting into `metric` (the alarm's)."""


class AuditTrail(pulumi.ComponentResource):
    key: aws.kms.Key
    """Encrypts the trail's log files, its log group and the alert topic; nothing else may use it."""
    bucket: aws.s3.Bucket
    """Where the trail writes."""
    trail: aws.cloudtrail.Trail
    """Every region's management events, digest files for validation, copied to the log group."""
    log_group: aws.cloudwatch.LogGroup
    """The trail's events in CloudWatch Logs, for the metric filters."""
    alert_topic: aws.sns.Topic
    """Where the anomaly alarms publish."""

    def __init__(self, name: str, args: AuditTrailArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:index:AuditTrail", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        names = foundation_names(args.project, args.account_id)

        # The trail's and the log group's ARNs are known from their names, so the key, bucket and
        # role policies can name them before they exist (CloudTrail checks them on creation).
        trail_arn = aws_policies.trail_arn(args.region, args.account_id, names["trail"])
        log_group_arn = aws_policies.log_group_arn(args.region, args.account_id, names["trail_log_group"])
        self.key = aws.kms.Key(
            f"{name}-key",
            description=f"{args.project} CloudTrail logs and audit alerts",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=json.dumps(
                aws_policies.trail_key_policy(
                    account_id=args.account_id,
                    region=args.region,
                    project=args.project,
                    trail=trail_arn,
                    log_group=log_group_arn,
                )
            ),
            tags={KEY_BOUNDARY_TAG: "audit"},
            opts=child,
        )
        storage = SecureBucket(
            f"{name}-storage",
            SecureBucketArgs(
                bucket_name=names["trail_bucket"],
                kms_key_arn=self.key.arn,
                grants=functools.partial(
                    aws_policies.cloudtrail_bucket_grants, trail=trail_arn, account_id=args.account_id
                ),
            ),
            opts=child,
        )
        self.bucket = storage.bucket
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-log-group",
            name=names["trail_log_group"],
            retention_in_days=LOG_RETENTION_DAYS,
            kms_key_id=self.key.arn,
            opts=child,
        )
        logs_role = self._create_logs_role(name, args, names, trail_arn, log_group_arn, child)
        self.trail = aws.cloudtrail.Trail(
            f"{name}-trail",
            name=names["trail"],
            s3_bucket_name=self.bucket.bucket,
            kms_key_id=self.key.arn,
            is_multi_region_trail=True,
            include_global_service_events=True,
            enable_log_file_validation=True,
            cloud_watch_logs_group_arn=self.log_group.name.apply(
                functools.partial(trail_log_group_arn, args.region, args.account_id)
            ),
            cloud_watch_logs_role_arn=logs_role.arn,
            # CloudTrail validates the bucket policy and the role's permissions on creation.
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[storage, logs_role])),
        )
        self.alert_topic = self._create_alarms(name, args, names, child)
        self.register_outputs(
            {
                "trailArn": self.trail.arn,
                "bucket": self.bucket.bucket,
                "logGroup": self.log_group.name,
                "alertTopicArn": self.alert_topic.arn,
            }
        )

    def _create_logs_role(
        self,
        name: str,
        args: AuditTrailArgs,
        names: dict[str, str],
        trail_arn: str,
        log_group_arn: str,
        child: pulumi.ResourceOptions,
    ) -> aws.iam.Role:
        """The role CloudTrail assumes to write into the log group (its policy inline, so the
        trail waits for both through the role)."""
        return aws.iam.Role(
            f"{name}-logs-role",
            # Fixed name: the prod deploy role may pass exactly this role to CloudTrail.
            name=names["trail_logs_role"],
            assume_role_policy=json.dumps(aws_policies.trail_logs_trust_policy(trail_arn)),
            inline_policies=[
                aws.iam.RoleInlinePolicyArgs(
                    name="deliver-to-log-group",
                    policy=json.dumps(
                        aws_policies.trail_logs_policy(log_group=log_group_arn, account_id=args.account_id)
                    ),
                )
            ],
            opts=child,
        )

    def _create_alarms(
        self, name: str, args: AuditTrailArgs, names: dict[str, str], child: pulumi.ResourceOptions
    ) -> aws.sns.Topic:
        topic = aws.sns.Topic(
            f"{name}-alerts",
            name=names["alert_topic"],
            kms_master_key_id=self.key.arn,
            opts=child,
        )
        # The ARN from the name: it is what the alarms and the deploy role's policy name.
        topic_arn = topic.name.apply(functools.partial(aws_policies.topic_arn, args.region, args.account_id))
        if args.alert_email:
            aws.sns.TopicSubscription(
                f"{name}-alerts-email",
                topic=topic_arn,
                protocol="email",
                endpoint=args.alert_email,
                opts=child,
            )
        anomalies = (
            _Anomaly(
                key="console-login-without-mfa",
                metric="ConsoleLoginWithoutMfa",
                description="A console login succeeded without MFA.",
                patterns=(console_login_without_mfa_pattern(),),
            ),
            _Anomaly(
                key="iam-policy-change",
                metric="IamPolicyChangeOutsidePipeline",
                description="An IAM policy was changed by someone other than the deploy pipeline.",
                patterns=iam_policy_change_patterns(args.pipeline_roles),
            ),
        )
        for anomaly in anomalies:
            # The first filter keeps the unsplit one's names (an existing stack updates it in place).
            metric_filters = [
                aws.cloudwatch.LogMetricFilter(
                    f"{name}-{anomaly.key}" + (f"-{index + 1}" if index else ""),
                    name=anomaly.metric + (f"-{index + 1}" if index else ""),
                    log_group_name=self.log_group.name,
                    pattern=pattern,
                    metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
                        name=anomaly.metric, namespace=METRIC_NAMESPACE, value="1", default_value="0"
                    ),
                    opts=child,
                )
                for index, pattern in enumerate(anomaly.patterns)
            ]
            aws.cloudwatch.MetricAlarm(
                f"{name}-{anomaly.key}-alarm",
                name=f"{names['alarm_prefix']}{anomaly.key}",
                alarm_description=anomaly.description,
                namespace=METRIC_NAMESPACE,
                metric_name=anomaly.metric,
                statistic="Sum",
                period=ALARM_PERIOD_SECONDS,
                evaluation_periods=1,
                threshold=1,
                comparison_operator="GreaterThanOrEqualToThreshold",
                treat_missing_data="notBreaching",
                alarm_actions=[topic_arn],
                # The metric exists once its filter does.
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=metric_filters)),
            )
        return topic
