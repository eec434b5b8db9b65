"""The site's host name: a Pages custom domain and its DNS record (every stack).

Prod serves `<sub>.<domain>` from the production deployment; a preview serves
`<branch>.<sub>.<domain>` from its branch alias `<branch>.<project>.pages.dev`.
The record is DNS-only (not proxied) so the propagation check can see the exact CNAME target;
Pages issues the certificate for a custom domain itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components import cloudflare


@dataclass(frozen=True, kw_only=True)
class SiteDomainArgs:
    account_id: str
    zone_id: str
    project_name: pulumi.Input[str]
    host: str
    target: str
    """The `*.pages.dev` name the CNAME points at."""


class SiteDomain(pulumi.ComponentResource):
    domain: cloudflare.PagesDomain
    """The host attached to the Pages project."""
    record: cloudflare.DnsRecord
    """CNAME host -> target."""

    def __init__(self, name: str, args: SiteDomainArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:index:SiteDomain", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.domain = cloudflare.PagesDomain(
            f"{name}-pages-domain",
            account_id=args.account_id,
            project_name=args.project_name,
            name=args.host,
            opts=child,
        )
        self.record = cloudflare.DnsRecord(
            f"{name}-record",
            zone_id=args.zone_id,
            name=args.host,
            type="CNAME",
            content=args.target,
            proxied=False,
            ttl=300,
            comment="managed by the webstack Pulumi program",
            opts=child,
        )
        self.register_outputs({"host": args.host, "target": args.target})
