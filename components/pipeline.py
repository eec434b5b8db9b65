"""The whole deployment, phase by phase, composed in one place.

`deploy()` walks `core.phases.PHASES` in order: for each it creates the `Phase` component and calls
the function of that name here (marked `@phase`), which declares the phase's resources under it and
returns what it made. A function gets a `Run`: the settings, the sources' hashes, what the earlier
phases made (by phase name) and `after`, every earlier phase. Every step that changes a live system
waits for `after` (`depends_on` where no data flows), so adding a phase is its entry in PHASES and
its function here, and the phases after it wait for it without being touched. Builds change
nothing outside the runner: they wait only for their inputs and overlap the earlier phases.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pulumi
import pulumi_aws as aws
from pulumi_command import local

from components import aws_policies, protection
from components.artifacts_bucket import ArtifactsBucket, ArtifactsBucketArgs, PublishTarget
from components.audit_trail import AuditTrail, AuditTrailArgs
from components.checks import Checks, ChecksArgs
from components.build import Build
from components.commands import deploy_step, step_command
from components.database import Database, DatabaseArgs
from components.github_oidc import GithubOidc, GithubOidcArgs
from components.lambda_api import BundleArgs, LambdaApi, LambdaApiArgs
from components.lambda_role import LambdaRole, LambdaRoleArgs
from components.pages_project import PagesProject, PagesProjectArgs
from components.pages_site import PagesSite, PagesSiteArgs
from components.phase import Phase
from components.settings import PROJECT_ROOT, Settings
from components.site_domain import SiteDomain, SiteDomainArgs
from components.state_backend import StateBackend, StateBackendArgs
from core import names
from core.phases import PHASES
from core.source_hash import combine, tree_hash
from steps import package_manager

CHECK_TIMEOUT_SECONDS = 300
# Every lockfile a workspace may hold (steps.package_manager), and the workspace files the
# package managers read.
LOCKFILES = ("package.json", *package_manager.LOCKFILES.values(), "pnpm-workspace.yaml", ".npmrc")
# Read by every TypeScript build and by drizzle-kit through the packages' `extends`.
WORKSPACE_CONFIG = (*LOCKFILES, "tsconfig.base.json", "tsconfig.json")


@dataclass(frozen=True, kw_only=True)
class AppSources:
    """Content hashes of what each step reads: the app's parts and the step program itself."""

    lockfile: str
    schema: str
    api: str
    web: str

    @classmethod
    def of(cls, settings: Settings) -> AppSources:
        root = settings.app_path
        app = settings.app
        # An app without a database (or a site) has no such part: "" would hash the whole app.
        schema = [app.schema_package] if app.has_database else []
        # Only the workspace files this app has: another manager's absent lockfile changes nothing.
        lockfiles = [name for name in LOCKFILES if (root / name).exists()]
        workspace = [name for name in WORKSPACE_CONFIG if (root / name).exists()]
        # A changed build program (other esbuild flags, say) must rebuild like changed sources.
        api_builder = tree_hash(PROJECT_ROOT, "steps/build_lambda.py")
        site_builder = tree_hash(PROJECT_ROOT, "steps/build_site.py")
        return cls(
            lockfile=tree_hash(root, *lockfiles),
            schema=tree_hash(root, *schema, *workspace),
            api=combine(tree_hash(root, app.api_dir, *schema, *workspace), api_builder),
            web=combine(tree_hash(root, *([app.web_dir] if app.has_site else []), *schema, *workspace), site_builder),
        )


Made = TypeVar("Made")


@dataclass(frozen=True, kw_only=True)
class Run:
    """What a phase function gets."""

    settings: Settings
    sources: AppSources
    made: Mapping[str, Any]
    """What each earlier phase's function returned, by phase name."""
    after: Sequence[Phase]
    """Every earlier phase: what this phase's live steps wait for."""
    opts: pulumi.ResourceOptions
    """Children of this phase's `Phase` component (and the stack's AWS provider through it)."""

    def of(self, phase: str, kind: type[Made]) -> Made:
        """What the earlier phase `phase` made, checked to be a `kind`."""
        made = self.made.get(phase)
        if not isinstance(made, kind):
            raise TypeError(f"phase {phase!r} made {type(made).__name__}, not the {kind.__name__} a later phase reads")
        return made

    def maybe(self, phase: str, kind: type[Made]) -> Made | None:
        """What an optional earlier phase made, or None when it made nothing (an app without a
        database or a site: its phase exists, empty, so the order holds)."""
        return None if self.made.get(phase) is None else self.of(phase, kind)


PHASE_FUNCTIONS: dict[str, Callable[[Run], Any]] = {}


def phase(function: Callable[[Run], Made]) -> Callable[[Run], Made]:
    """Marks the function of the phase of the same name (core.phases.PHASES)."""
    if function.__name__ not in PHASES:
        raise ValueError(f"{function.__name__} is marked @phase but is not in core.phases.PHASES ({', '.join(PHASES)})")
    PHASE_FUNCTIONS[function.__name__] = function
    return function


@dataclass(frozen=True, kw_only=True)
class Infrastructure:
    lambda_role: LambdaRole
    foundation: Foundation | None
    artifacts: PublishTarget
    """Where this stack's builds publish what they made."""


@dataclass(frozen=True, kw_only=True)
class Foundation:
    state: StateBackend
    oidc: GithubOidc
    trail: AuditTrail
    pages: PagesProject | None
    """None: the app has no site."""
    artifacts: ArtifactsBucket


@dataclass(frozen=True, kw_only=True)
class Outputs:
    api_url: pulumi.Output[str]
    site_url: str | None
    """None: the app has no site."""
    pages_branch: str | None
    db_schema: str | None
    """None: the app has no database."""
    function_name: pulumi.Output[str]
    stable_version: pulumi.Output[str] | None
    foundation: Foundation | None


@phase
def infrastructure(run: Run) -> Infrastructure:
    settings, child = run.settings, run.opts
    foundation = _foundation(settings, child) if settings.is_prod else None

    lambda_role = LambdaRole("api-role", LambdaRoleArgs(role_name=names.execution_role_name(settings.project, settings.stack)), opts=child)
    if settings.app.has_site:
        SiteDomain(
            "site-domain",
            SiteDomainArgs(
                account_id=settings.cloudflare_account_id,
                zone_id=settings.cloudflare_zone_id,
                project_name=foundation.pages.project.name if foundation and foundation.pages else settings.pages_project,
                host=settings.site_host,
                target=settings.pages_target,
            ),
            opts=child,
        )
    # prod's builds wait for the bucket its own foundation creates; the PR stacks' find it by name.
    bucket = foundation.artifacts.bucket.bucket if foundation else settings.artifacts_bucket
    artifacts = PublishTarget(bucket=bucket, prefix=settings.artifact_prefix, region=settings.aws_region)
    return Infrastructure(lambda_role=lambda_role, foundation=foundation, artifacts=artifacts)


def _foundation(settings: Settings, child: pulumi.ResourceOptions) -> Foundation:
    """The account-level resources only prod owns."""
    state = StateBackend(
        "state",
        StateBackendArgs(project=settings.project, account_id=settings.aws_account_id, region=settings.aws_region),
        opts=child,
    )
    artifacts = ArtifactsBucket(
        "artifacts",
        ArtifactsBucketArgs(project=settings.project, account_id=settings.aws_account_id, region=settings.aws_region),
        opts=child,
    )
    # Cross-cutting grant: which state bucket and keys the deploy roles may use is wired here.
    deploy_scope = pulumi.Output.all(
        state.bucket.arn, state.key.arn, state.preview_key.arn, state.lease_key.arn, artifacts.key.arn
    ).apply(
        lambda arns: aws_policies.DeployScope(
            project=settings.project,
            account_id=settings.aws_account_id,
            region=settings.aws_region,
            state_bucket_arn=arns[0],
            state_key_arn=arns[1],
            preview_key_arn=arns[2],
            lease_key_arn=arns[3],
            artifacts_key_arn=arns[4],
        )
    )
    oidc = GithubOidc(
        "github",
        GithubOidcArgs(
            project=settings.project,
            subject_prefix=settings.github_subject,
            prod_environment=settings.github_prod_environment,
            preview_environment=settings.github_preview_environment,
            sweeper_environment=settings.github_sweeper_environment,
            deploy_scope=deploy_scope,
        ),
        opts=child,
    )
    trail = AuditTrail(
        "audit",
        AuditTrailArgs(
            project=settings.project,
            account_id=settings.aws_account_id,
            region=settings.aws_region,
            # IAM changes these roles make are the pipeline's own; any other caller is alarmed.
            pipeline_roles=[names.deploy_role_name(settings.project, role) for role in names.DEPLOY_ROLES],
            alert_email=settings.alert_email,
        ),
        opts=child,
    )
    pages = None
    if settings.app.has_site:
        pages = PagesProject(
            "pages",
            PagesProjectArgs(account_id=settings.cloudflare_account_id, project_name=settings.pages_project),
            opts=child,
        )
    return Foundation(state=state, oidc=oidc, trail=trail, pages=pages, artifacts=artifacts)


@phase
def dependencies(run: Run) -> Build:
    settings = run.settings
    return Build(
        "app-install",
        create=step_command("install", '--app-dir "$APP_DIR"', '--package-manager "$PACKAGE_MANAGER"'),
        environment={"APP_DIR": settings.app_dir, "PACKAGE_MANAGER": settings.app.package_manager},
        triggers=[run.sources.lockfile],
        opts=run.opts,
    )


@phase
def database(run: Run) -> local.Command | None:
    """The stack's schema and the migration into it; nothing for an app without a database."""
    settings = run.settings
    if not settings.app.has_database:
        return None
    db = Database(
        "database",
        DatabaseArgs(schema=settings.db_schema, drop_on_destroy=settings.is_pr, after=run.after),
        opts=run.opts,
    )
    migrate_flags = [
        '--app-dir "$APP_DIR"',
        '--schema "$DB_SCHEMA"',
        '--timeout "$MIGRATION_TIMEOUT"',
        '--schema-dir "$SCHEMA_DIR"',
        '--drizzle-config "$DRIZZLE_CONFIG"',
    ]
    environment = {
        "DB_SCHEMA": settings.db_schema,
        "APP_DIR": settings.app_dir,
        "MIGRATION_TIMEOUT": str(settings.migration_timeout_seconds),
        "SCHEMA_DIR": settings.app.schema_package,
        "DRIZZLE_CONFIG": settings.app.drizzle_config,
    }
    # Previews apply data-losing changes; prod only the one change a person approved by its digest.
    if not settings.is_prod:
        migrate_flags.append("--allow-data-loss")
    elif settings.approve_data_loss:
        migrate_flags.append('--approve-data-loss "$APPROVE_DATA_LOSS"')
        environment["APPROVE_DATA_LOSS"] = settings.approve_data_loss
    return deploy_step(
        "database-migrate",
        create=step_command("migrate", *migrate_flags),
        environment=environment,
        triggers=[run.sources.schema],
        opts=pulumi.ResourceOptions.merge(run.opts, pulumi.ResourceOptions(depends_on=[db])),
    )


@phase
def backend(run: Run) -> LambdaApi:
    settings = run.settings
    return LambdaApi(
        "api",
        LambdaApiArgs(
            function_name=settings.function_name,
            role_arn=run.of("infrastructure", Infrastructure).lambda_role.role.arn,
            app_dir=settings.app_dir,
            bundle=BundleArgs(
                api_dir=settings.app.api_dir,
                entry=settings.app.api_entry,
                format=settings.app.api_format,
                external=settings.app.api_external,
                extra_files=settings.app.api_extra_files,
            ),
            sources_hash=run.sources.api,
            artifacts=run.of("infrastructure", Infrastructure).artifacts,
            publish=settings.is_prod,
            pinned_version=settings.pinned_version,
            canary_percent=settings.canary_percent,
            canary_seconds=settings.canary_seconds,
            region=settings.aws_region,
            memory_mb=settings.lambda_memory_mb,
            timeout_seconds=settings.lambda_timeout_seconds,
            reserved_concurrency=settings.api_reserved_concurrency,
            site_origin=settings.site_url.rstrip("/"),
            environment=function_environment(settings),
            app_environment={**settings.app.api_environment, **settings.app.api_secret_environment},
            secret_names=[*(["DATABASE_URL"] if settings.app.has_database else []), *settings.app.api_secret_environment],
            health_path=settings.app.health_path,
            health_version=settings.app.health_version,
            after=run.after,
            build_after=[run.of("dependencies", Build)],
        ),
        opts=run.opts,
    )


def function_environment(settings: Settings) -> dict[str, pulumi.Input[str]]:
    """What the pipeline gives the function: the token settings, and its database unless it has none."""
    environment: dict[str, pulumi.Input[str]] = {
        "JWKS_URL": settings.jwks_url,
        "JWT_ISSUER": settings.jwt_issuer,
        "JWT_AUDIENCE": settings.jwt_audience,
    }
    if settings.app.has_database and settings.runtime_database_url is not None:
        environment.update({
            "DB_SCHEMA": settings.db_schema,
            # The runtime URL (usually the transaction pooler), never the migrations' direct one.
            "DATABASE_URL": settings.runtime_database_url,
            "DB_POOL_SIZE": str(settings.api_pool_size),
        })  # fmt: skip
    return environment


@phase
def frontend(run: Run) -> PagesSite | None:
    """The site's build and Pages deploy; nothing for an app without a site."""
    settings = run.settings
    if not settings.app.has_site:
        return None
    api = run.of("backend", LambdaApi)
    return PagesSite(
        "site",
        PagesSiteArgs(
            project_name=settings.pages_project,
            account_id=settings.cloudflare_account_id,
            branch=settings.pages_branch,
            app_dir=settings.app_dir,
            web_dir=settings.app.web_dir,
            out_dir=f".build/{settings.stack}/site",
            deploy_timeout_seconds=settings.pages_deploy_timeout_seconds,
            sources_hash=run.sources.web,
            artifacts=run.of("infrastructure", Infrastructure).artifacts,
            public_environment=site_environment(settings, api.url.function_url),
            build_environment=site_build_environment(settings, api.url.function_url),
            export_dir=settings.app.site_out_dir,
            delete_replaced_deployments=not settings.is_prod,
            clean_branch_on_destroy=settings.is_pr,
            build_after=[run.of("dependencies", Build)],
            after=run.after,
        ),
        opts=run.opts,
    )


def site_outputs(settings: Settings, api_url: pulumi.Output[str]) -> dict[str, pulumi.Input[str]]:
    """The values a site may be given, by the name config uses (settings.SITE_OUTPUTS)."""
    return {
        "apiUrl": api_url,
        "apiBaseUrl": api_url.apply(without_trailing_slash),
        "siteUrl": settings.site_url,
        "stack": settings.stack,
        "dbSchema": settings.db_schema or "",
    }


def site_environment(settings: Settings, api_url: pulumi.Output[str]) -> dict[str, pulumi.Input[str]]:
    """What `siteOutputs` asks the site build to bake in, by variable name."""
    outputs = site_outputs(settings, api_url)
    return {variable: outputs[output] for variable, output in settings.app.site_outputs}


def site_build_environment(settings: Settings, api_url: pulumi.Output[str]) -> dict[str, pulumi.Input[str]]:
    """What `siteEnvironment` gives the site build to read at build time (not checked in the export)."""
    outputs = site_outputs(settings, api_url)
    return {variable: outputs[value] if is_output else value for variable, value, is_output in settings.app.site_environment}


def without_trailing_slash(url: str) -> str:
    return url.rstrip("/")


@phase
def checks(run: Run) -> Checks:
    settings = run.settings
    api, site = run.of("backend", LambdaApi), run.maybe("frontend", PagesSite)
    final = Checks(
        "checks",
        ChecksArgs(
            host=settings.site_host,
            cname_target=settings.pages_target,
            resolvers=settings.dns_resolvers,
            dns_critical=settings.is_prod,
            site_url=settings.site_url,
            site_deployment=site.deploy.stdout if site else None,
            api_health_url=pulumi.Output.concat(api.url.function_url.apply(without_trailing_slash), settings.app.health_path),
            api_version=api.live_version,
            timeout_seconds=CHECK_TIMEOUT_SECONDS,
            after=run.after,
        ),
        opts=run.opts,
    )
    if api.alias is not None:
        # Old versions go only once the new one has answered its health check: until then they
        # are what a rollback (`pinnedVersion`) points at. Best-effort, so nothing waits for it.
        deploy_step(
            "api-prune-versions",
            create=step_command("lambda_versions", "prune", '--function "$FUNCTION_NAME"', '--keep "$KEEP_VERSIONS"'),
            environment={
                "FUNCTION_NAME": api.function.name,
                "KEEP_VERSIONS": str(settings.keep_lambda_versions),
                # Re-runs after each publish: a new version is what makes an old one prunable.
                "PUBLISHED_VERSION": api.function.version,
                "AWS_REGION": settings.aws_region,
            },
            opts=pulumi.ResourceOptions.merge(run.opts, pulumi.ResourceOptions(depends_on=[final.api_health])),
        )
    return final


def deploy(settings: Settings) -> Outputs:
    """Declares every resource of the stack, phase by phase."""
    protection.register(prod=settings.is_prod)
    sources = AppSources.of(settings)
    # One explicit provider: a PR stack has no config file, so the region cannot come from `aws:region`.
    provider = aws.Provider(
        "aws",
        region=settings.aws_region,
        default_tags=aws.ProviderDefaultTagsArgs(
            tags={"project": settings.project, "stack": settings.stack, "managed-by": "pulumi"}
        ),
    )
    opts = pulumi.ResourceOptions(providers=[provider])

    unwritten = [name for name in PHASES if name not in PHASE_FUNCTIONS]
    if unwritten:
        # A RunError: the Python host prints the message alone, not a traceback of the program.
        raise pulumi.RunError(f"core.phases.PHASES names {', '.join(unwritten)}, with no @phase function in components/pipeline.py")
    made: dict[str, Any] = {}
    earlier: list[Phase] = []
    for name in PHASES:
        component = Phase(name, opts)
        run = Run(settings=settings, sources=sources, made=dict(made), after=tuple(earlier), opts=pulumi.ResourceOptions(parent=component))
        made[name] = PHASE_FUNCTIONS[name](run)
        earlier.append(component)

    infra, api = made["infrastructure"], made["backend"]
    return Outputs(
        api_url=api.url.function_url,
        site_url=settings.site_url if settings.app.has_site else None,
        pages_branch=settings.pages_branch if settings.app.has_site else None,
        db_schema=settings.db_schema if settings.app.has_database else None,
        function_name=api.function.name,
        stable_version=api.alias.function_version if api.alias else None,
        foundation=infra.foundation,
    )
