"""The API function's execution role (every stack): Lambda may assume it and write its logs, no more."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import aws_policies
from core.iam import BASIC_EXECUTION_POLICY


@dataclass(frozen=True, kw_only=True)
class LambdaRoleArgs:
    role_name: str
    """Fixed name `<function>-exec`: the deploy roles may pass only roles named that way."""


class LambdaRole(pulumi.ComponentResource):
    role: aws.iam.Role
    """The execution role."""

    def __init__(self, name: str, args: LambdaRoleArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:index:LambdaRole", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.role = aws.iam.Role(
            f"{name}-role",
            name=args.role_name,
            assume_role_policy=json.dumps(aws_policies.lambda_trust_policy()),
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-logs",
            role=self.role.name,
            policy_arn=BASIC_EXECUTION_POLICY,
            opts=child,
        )
        self.register_outputs({"arn": self.role.arn})
