"""The final checks: DNS propagation of the site's host, then the site's and the API's health.

They run last and re-run whenever what they check was redeployed. The DNS check stops a prod
deploy when it fails; a preview's only warns (its DNS may lag while the PR is still usable
through the branch alias). An app without a site (`webDir` empty) has only the API's check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_command import local

from components.commands import deploy_step, step_command


@dataclass(frozen=True, kw_only=True)
class ChecksArgs:
    host: str
    cname_target: str
    resolvers: Sequence[str]
    dns_critical: bool
    site_url: str
    site_deployment: pulumi.Input[str] | None
    """The site's deployment (its id re-runs the checks); None: the app has no site, nothing to check."""
    api_health_url: pulumi.Input[str]
    api_version: pulumi.Input[str]
    timeout_seconds: int
    after: Sequence[pulumi.Resource]
    """Everything that was deployed: the checks come last."""


class Checks(pulumi.ComponentResource):
    dns: local.Command | None
    """Waits until the resolvers answer the site's CNAME (None: no site)."""
    site_health: local.Command | None
    """The site answers 200 through its public host (None: no site)."""
    api_health: local.Command
    """The API's health route (`apiHealthPath`) answers 200 through its public URL."""

    def __init__(self, name: str, args: ChecksArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:index:Checks", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        after = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=list(args.after)))
        timeout = str(args.timeout_seconds)

        health = step_command("health", '--url "$HEALTH_URL"', "--expect-status 200", '--timeout "$CHECK_TIMEOUT"')
        self.dns = self.site_health = None
        if args.site_deployment is not None:
            self.dns, self.site_health = self._create_site_checks(name, args, health, child)
        self.api_health = deploy_step(
            f"{name}-api-health",
            create=health,
            environment={"HEALTH_URL": args.api_health_url, "API_VERSION": args.api_version, "CHECK_TIMEOUT": timeout},
            opts=after,
        )
        self.register_outputs({})

    def _create_site_checks(
        self, name: str, args: ChecksArgs, health: str, child: pulumi.ResourceOptions
    ) -> tuple[local.Command, local.Command]:
        """The site's host resolves to its Pages target, then the site answers 200 there."""
        timeout = str(args.timeout_seconds)
        dns_flags = [
            '--name "$DNS_NAME"',
            "--type CNAME",
            '--expect "$DNS_EXPECT"',
            '--resolver "$DNS_RESOLVERS"',
            '--timeout "$CHECK_TIMEOUT"',
        ]
        if not args.dns_critical:
            dns_flags.append("--non-critical")
        dns = deploy_step(
            f"{name}-dns",
            create=step_command("dns_wait", *dns_flags),
            environment={
                "DNS_NAME": args.host,
                "DNS_EXPECT": args.cname_target,
                "DNS_RESOLVERS": ",".join(args.resolvers),
                "CHECK_TIMEOUT": timeout,
            },
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=list(args.after))),
        )
        site_health = deploy_step(
            f"{name}-site-health",
            create=health,
            # The deployment id re-runs the check after every deploy, and only then.
            environment={"HEALTH_URL": args.site_url, "DEPLOYMENT": args.site_deployment, "CHECK_TIMEOUT": timeout},
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[*args.after, dns])),
        )
        return dns, site_health
