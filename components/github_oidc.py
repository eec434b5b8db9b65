"""GitHub Actions' OIDC identity provider and the two deploy roles it may assume (prod only).

The prod role trusts the jobs of prod's GitHub environment (limited to `main`, the only place
prod's secrets are), or `main`'s jobs when none is configured; the preview role the jobs of the
preview environment (or every pull_request job without one) and the preview sweeper's
environment. Both pin the audience and match subjects exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import aws_policies
from core import names
from core.iam import GITHUB_OIDC_URL, STS_AUDIENCE


@dataclass(frozen=True, kw_only=True)
class GithubOidcArgs:
    project: str
    subject_prefix: str
    """`repo:OWNER/REPO`, or GitHub's immutable form `repo:OWNER@<id>/REPO@<id>`."""
    prod_environment: str
    preview_environment: str
    sweeper_environment: str
    deploy_scope: pulumi.Input[aws_policies.DeployScope]


def _role_policy(scope: aws_policies.DeployScope, role: str) -> str:
    document = aws_policies.prod_deploy_policy(scope) if role == "prod" else aws_policies.preview_deploy_policy(scope)
    return json.dumps(document)


class GithubOidc(pulumi.ComponentResource):
    provider: aws.iam.OpenIdConnectProvider
    """token.actions.githubusercontent.com, audience sts.amazonaws.com."""
    prod_role: aws.iam.Role
    """Assumed by the deploy workflow on `main` (in prod's environment)."""
    preview_role: aws.iam.Role
    """Assumed by the preview and cleanup workflows of pull requests, and by the sweeper."""

    def __init__(self, name: str, args: GithubOidcArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:index:GithubOidc", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        # AWS ignores thumbprints for GitHub's issuer; the client id list is what matters.
        self.provider = aws.iam.OpenIdConnectProvider(
            f"{name}-provider",
            url=GITHUB_OIDC_URL,
            client_id_lists=[STS_AUDIENCE],
            opts=child,
        )
        self.prod_role = self._create_role(name, args, "prod", child)
        self.preview_role = self._create_role(name, args, "preview", child)
        self.register_outputs({"prodRoleArn": self.prod_role.arn, "previewRoleArn": self.preview_role.arn})

    def _create_role(
        self, name: str, args: GithubOidcArgs, role: str, child: pulumi.ResourceOptions
    ) -> aws.iam.Role:
        if role == "prod":
            subjects = aws_policies.github_subjects(args.subject_prefix, role, args.prod_environment)
        else:
            subjects = aws_policies.github_subjects(
                args.subject_prefix, role, args.preview_environment, also=[args.sweeper_environment]
            )
        deploy_role = aws.iam.Role(
            f"{name}-{role}-role",
            # Fixed name: the workflows name it in `role-to-assume`.
            name=names.deploy_role_name(args.project, role),
            assume_role_policy=self.provider.arn.apply(
                lambda arn: json.dumps(aws_policies.github_trust_policy(arn, subjects))
            ),
            max_session_duration=3600,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-{role}-policy",
            role=deploy_role.id,
            policy=pulumi.Output.from_input(args.deploy_scope).apply(lambda scope: _role_policy(scope, role)),
            opts=child,
        )
        return deploy_role
