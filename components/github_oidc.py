"""GitHub Actions' OIDC identity provider and the roles it may assume (prod only).

- prod: the deploy on `main`, trusted by prod's GitHub environment's jobs (limited to `main`, the
  only place prod's secrets are), or `main`'s jobs when none is configured;
- preview: a PR's deploy, trusted by the preview environment's jobs (or every pull_request job);
- cleanup: `pulumi destroy` of a closed PR's stack (cleanup.yml), in the same environment as the
  preview jobs, so the same subject: it can do only a part of what the preview role can;
- sweeper: the scheduled teardown of closed PRs' previews on `main` (sweeper.yml), trusted by the
  sweeper's own environment only, never by `main`'s subject; it deletes preview resources by name
  and nothing else (`aws_policies.sweeper_policy`). Without `githubSweeperEnvironment` there is no
  sweeper role.

Every trust pins the audience and matches its subject exactly.
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
    return json.dumps(aws_policies.ROLE_POLICIES[role](scope))


class GithubOidc(pulumi.ComponentResource):
    provider: aws.iam.OpenIdConnectProvider
    """token.actions.githubusercontent.com, audience sts.amazonaws.com."""
    prod_role: aws.iam.Role
    """Assumed by the deploy workflow on `main` (in prod's environment)."""
    preview_role: aws.iam.Role
    """Assumed by the preview workflow of pull requests."""
    cleanup_role: aws.iam.Role
    """Assumed by the cleanup workflow of a closed pull request: removes, never creates."""
    sweeper_role: aws.iam.Role | None
    """Assumed by the sweeper on `main`, in its own environment: removes previews by name."""

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
        self.prod_role = self._create_role(name, args, "prod", args.prod_environment, child)
        self.preview_role = self._create_role(name, args, "preview", args.preview_environment, child)
        self.cleanup_role = self._create_role(name, args, "cleanup", args.preview_environment, child)
        self.sweeper_role = (
            self._create_role(name, args, "sweeper", args.sweeper_environment, child) if args.sweeper_environment else None
        )
        self.register_outputs(
            {
                "prodRoleArn": self.prod_role.arn,
                "previewRoleArn": self.preview_role.arn,
                "cleanupRoleArn": self.cleanup_role.arn,
                "sweeperRoleArn": self.sweeper_role.arn if self.sweeper_role else None,
            }
        )

    def _create_role(
        self, name: str, args: GithubOidcArgs, role: str, environment: str, child: pulumi.ResourceOptions
    ) -> aws.iam.Role:
        subjects = aws_policies.github_subjects(args.subject_prefix, role, environment)
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
            # The name (the role's id, too): the policy pack tells the roles apart by it.
            role=deploy_role.name,
            policy=pulumi.Output.from_input(args.deploy_scope).apply(lambda scope: _role_policy(scope, role)),
            opts=child,
        )
        return deploy_role
