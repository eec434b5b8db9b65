"""The site (phase 5): the Next.js static export and its Cloudflare Pages deployment.

The build starts as soon as the API's URL exists (it bakes it in) and re-runs only when the web or
shared-schemas sources, the lockfile or a baked-in value change; it publishes the export to the
artifacts bucket and prints the record. The deploy waits for the API to be live and deploys that
record's export: the local copy when it is intact, else the published one (a deploy that re-runs
on a new runner never needs the build's files, and never deploys an empty or stale directory).

Under upstream's rules (only `triggers` replaces; create-before-delete), for previews:
- a replaced deploy (a new export) deletes the one deployment its create printed, after the new
  one is live;
- a deploy re-run in place (its environment or command changed) deletes the deployment its
  previous run recorded (`update`: `--delete-previous`);
- destroying a PR stack deletes every deployment of its branch (the branch cleanup), and only
  then: the cleanup claims the branch when it is created, and a replaced cleanup, whose delete
  runs after its successor claimed, deletes nothing.
prod keeps its old deployments: they are Pages' instant rollback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_command import local

from components.artifacts_bucket import PublishTarget
from components.build import Build
from components.commands import deploy_step, step_command


@dataclass(frozen=True, kw_only=True)
class PagesSiteArgs:
    project_name: str
    account_id: str
    branch: str
    app_dir: str
    web_dir: str
    """The site's package, relative to app_dir."""
    out_dir: str
    deploy_timeout_seconds: int
    """How long one wrangler deploy may take (`pagesDeployTimeoutSeconds`)."""
    sources_hash: str
    """Content hash of the web and shared-schemas sources and the lockfile."""
    artifacts: PublishTarget
    """Where the build publishes the export (and the branch cleanup keeps its claim)."""
    public_environment: dict[str, pulumi.Input[str]]
    """The values baked into the site (`siteOutputs`: the API URL among them), by variable name;
    the build checks that each one is in the export."""
    build_environment: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    """What the build reads at build time only (`siteEnvironment`), not checked in the export."""
    export_dir: str = "out"
    """Where the site's build writes its export, relative to web_dir (`siteOutDir`)."""
    delete_replaced_deployments: bool
    clean_branch_on_destroy: bool
    build_after: Sequence[pulumi.Resource]
    """What the build needs on the runner: the installed workspace."""
    after: Sequence[pulumi.Resource]
    """What must be live before the site changes: the API."""


class PagesSite(pulumi.ComponentResource):
    build: local.Command
    """`next build` into `out_dir`; prints the export's content hash."""
    deploy: local.Command
    """`wrangler pages deploy` of the build's export; prints `{"id": ..., "url": ...}`."""

    def __init__(self, name: str, args: PagesSiteArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:index:PagesSite", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        pages = {"PAGES_PROJECT": args.project_name, "PAGES_BRANCH": args.branch}

        self.build = Build(
            f"{name}-build",
            create=step_command(
                "build_site",
                '--app-dir "$APP_DIR"',
                '--web-dir "$WEB_DIR"',
                '--export-dir "$EXPORT_DIR"',
                '--out "$OUT_DIR"',
                '--baked "$BAKED"',
                *PublishTarget.FLAGS,
            ),
            environment={
                **args.build_environment,
                "APP_DIR": args.app_dir,
                "WEB_DIR": args.web_dir,
                "EXPORT_DIR": args.export_dir,
                "OUT_DIR": args.out_dir,
                "BAKED": ",".join(sorted(args.public_environment)),
                **args.public_environment,
                **args.artifacts.environment(),
            },
            triggers=[args.sources_hash, *args.public_environment.values(), *args.build_environment.values()],
            after=args.build_after,
            opts=child,
        ).command
        deploy_flags = [
            '--project "$PAGES_PROJECT"',
            '--branch "$PAGES_BRANCH"',
            '--dir "$SITE_DIR"',
            '--artifact "$SITE_ARTIFACT"',
            '--app-dir "$APP_DIR"',
            '--timeout "$DEPLOY_TIMEOUT"',
        ]
        self.deploy = deploy_step(
            f"{name}-deploy",
            create=step_command("pages", "deploy", *deploy_flags),
            # Re-run in place (another environment or command): the previous deployment goes too.
            update=step_command("pages", "deploy", *deploy_flags, "--delete-previous") if args.delete_replaced_deployments else None,
            delete=(
                step_command("pages", "delete", '--project "$PAGES_PROJECT"', "--deployment-from-stdout")
                if args.delete_replaced_deployments
                else None
            ),
            # wrangler is the app workspace's own (node_modules/.bin), so the deploy names the workspace.
            environment={
                **pages,
                "SITE_DIR": args.out_dir,
                "SITE_ARTIFACT": self.build.stdout,
                "DEPLOY_TIMEOUT": str(args.deploy_timeout_seconds),
                "APP_DIR": args.app_dir,
                "CLOUDFLARE_ACCOUNT_ID": args.account_id,
                "AWS_REGION": args.artifacts.region,
            },
            triggers=[self.build.stdout],
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=list(args.after))),
        )
        if args.clean_branch_on_destroy:
            # Claims the branch on create; on destroy, every deployment of this branch goes,
            # including ones a failed run left behind without recording them. A replaced cleanup
            # finds its successor's claim and deletes nothing.
            claim = [
                '--project "$PAGES_PROJECT"',
                '--branch "$PAGES_BRANCH"',
                *PublishTarget.FLAGS,
            ]
            deploy_step(
                f"{name}-branch-cleanup",
                create=step_command("pages", "claim-branch", *claim),
                delete=step_command("pages", "delete-branch", *claim, "--claimed"),
                environment={**pages, "CLOUDFLARE_ACCOUNT_ID": args.account_id, **args.artifacts.environment()},
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=list(args.after))),
            )
        self.register_outputs({"deployment": self.deploy.stdout})
