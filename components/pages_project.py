"""The Cloudflare Pages project (prod only). Previews deploy branches `pr-<N>` into it.

Deployments are made by the pipeline (`wrangler pages deploy`), not by a Git integration, so the
project has no source and no build config. Deleting it would take the site and every preview down
with it: it is protected.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components import cloudflare
from core.names import PAGES_PRODUCTION_BRANCH


@dataclass(frozen=True, kw_only=True)
class PagesProjectArgs:
    account_id: str
    project_name: str


class PagesProject(pulumi.ComponentResource):
    project: cloudflare.PagesProject
    """Production branch `main`; every other branch is a preview."""

    def __init__(self, name: str, args: PagesProjectArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:index:PagesProject", name, None, opts)
        self.project = cloudflare.PagesProject(
            f"{name}-project",
            account_id=args.account_id,
            name=args.project_name,
            production_branch=PAGES_PRODUCTION_BRANCH,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"subdomain": self.project.subdomain})
