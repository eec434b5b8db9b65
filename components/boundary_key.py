"""A KMS key that serves one trust boundary (core/iam.py KEY_USERS), and its alias.

The key is tagged with its boundary (the policy pack reads the tag: kms-key-boundary) and its own
policy holds it there (`aws_policies.state_key_policy`): the roles that are not its users are
denied, and where the boundary's key is used through one service only, its users are denied any
other use.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from components import aws_policies
from core.iam import KEY_BOUNDARY_TAG


def boundary_key(
    name: str,
    *,
    project: str,
    account_id: str,
    region: str,
    boundary: str,
    description: str,
    alias: str,
    opts: pulumi.ResourceOptions,
) -> tuple[aws.kms.Key, aws.kms.Alias]:
    key = aws.kms.Key(
        name,
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=json.dumps(
            aws_policies.state_key_policy(account_id=account_id, region=region, project=project, boundary=boundary)
        ),
        tags={KEY_BOUNDARY_TAG: boundary},
        opts=opts,
    )
    return key, aws.kms.Alias(f"{name}-alias", name=alias, target_key_id=key.key_id, opts=opts)
