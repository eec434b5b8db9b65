"""The API (phase 4): the Lambda bundle, the function, and how requests reach it.

prod publishes a version on every code or configuration change, proves it before any traffic
reaches it (the pre-traffic check invokes that version's `/health`: `steps.promote check`), and
only then moves the alias `stable` to it (or to `pinnedVersion`, the rollback switch, which skips
the check: that version has served already), serves its function URL on the alias and verifies the
alias afterwards (old versions are pruned after the final checks, `pipeline.checks`). A preview
runs its own function on `$LATEST`: nothing is published, its `/health` is checked through its URL
before the site deploys, and `pulumi destroy` removes the function and everything under it.

The function URL has no IAM auth (`NONE`) on purpose: the API verifies bearer JWTs against the
JWKS itself, `/health` is public, and CORS admits only the stack's own site.

The function's code is the zip the build published to the artifacts bucket (`steps.artifacts`):
`s3Bucket`/`s3Key`/`s3ObjectVersion` from the build's record, never the build Command's `archive`
or a file on the runner, so a later run on another machine (a config change, a refresh first)
updates the function without the build's files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
from pulumi_command import local

from components.artifacts_bucket import PublishTarget
from components.build import Build
from components.commands import PROJECT_DIR, deploy_step, step_command
from core.names import ALIAS_NAME, API_BUNDLE_DIR as BUNDLE_DIR
from core.versions import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME
from steps.artifacts import artifact_of

# esbuild writes dist/index.js (CommonJS) or dist/index.mjs (ESM); Lambda's Node runtime finds
# either for `index`. The archive keeps paths relative to the build's directory.
HANDLER = f"{BUNDLE_DIR}/index.handler"


@dataclass(frozen=True, kw_only=True)
class BundleArgs:
    """What the API's build bundles (settings.AppShape's api* keys)."""

    api_dir: str
    """The API's package, relative to the app workspace."""
    entry: str
    """Relative to api_dir."""
    format: str
    external: Sequence[str] = ()
    extra_files: Sequence[str] = ()


@dataclass(frozen=True, kw_only=True)
class LambdaApiArgs:
    function_name: str
    role_arn: pulumi.Input[str]
    app_dir: str
    """The app workspace, relative to the project directory."""
    bundle: BundleArgs
    sources_hash: str
    """Content hash of the API's and shared-schemas' sources and the lockfile."""
    artifacts: PublishTarget
    """Where the build publishes the zip the function runs."""
    publish: bool
    pinned_version: str
    canary_percent: int
    """prod: the weight a new version gets first (0 = none)."""
    canary_seconds: int
    region: str
    memory_mb: int
    timeout_seconds: int
    reserved_concurrency: int
    """At most this many executions at once: the API's share of database connections is
    reserved_concurrency x DB_POOL_SIZE (settings check the budget)."""
    site_origin: str
    environment: dict[str, pulumi.Input[str]]
    """What the handler reads: JWKS_URL, JWT_ISSUER, JWT_AUDIENCE, DB_SCHEMA, DATABASE_URL (secret,
    the runtime URL), DB_POOL_SIZE."""
    after: Sequence[pulumi.Resource]
    """What must be live before the function changes: the migrated database."""
    build_after: Sequence[pulumi.Resource]
    """What the bundle needs on the runner: the installed workspace."""
    app_environment: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """The app's own settings and secrets (`apiEnvironment`, `apiSecretEnvironment`); the
    pipeline's `environment` wins over them (settings refuse a clash anyway)."""
    secret_names: Sequence[str] = ()
    """Which of the function's variables are secrets (DATABASE_URL, the app's secret ones): the
    steps that quote what the function says read their values from it and mask them."""
    health_path: str = "/health"
    """The app's health route, which the pre-traffic check and the canary call (`apiHealthPath`)."""
    health_version: bool = True
    """Whether that route reports APP_VERSION; False: a 200 is all the checks ask (`apiHealthVersion`)."""


class LambdaApi(pulumi.ComponentResource):
    build: local.Command
    """Bundles the handler and publishes its zip; its stdout is the record of where it is."""
    app_version: pulumi.Output[str]
    """The bundle's sha256 (the build record's `sha256`): the function's APP_VERSION."""
    function: aws.lambda_.Function
    """The API function."""
    url: aws.lambda_.FunctionUrl
    """Public HTTPS endpoint (on `stable` in prod, `$LATEST` in previews)."""
    alias: aws.lambda_.Alias | None
    """prod only: `stable`."""
    live: list[pulumi.Resource]
    """What proves the API is serving the new code: the frontend deploys after these."""
    pre_traffic_check: local.Command | None
    """Proves the new code answers before traffic reaches it (None when pinned)."""
    live_version: pulumi.Output[str]
    """What serves now: `stable`'s version in prod; in previews `$LATEST`'s update stamp, which
    changes with every deploy (it has no version number)."""

    def __init__(self, name: str, args: LambdaApiArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:index:LambdaApi", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.build = self._create_build(name, args, child)
        record = self.build.stdout.apply(artifact_of)
        self.app_version = record["sha256"]
        self.function = aws.lambda_.Function(
            f"{name}-function",
            name=args.function_name,
            role=args.role_arn,
            runtime=LAMBDA_RUNTIME,
            handler=HANDLER,
            architectures=[LAMBDA_ARCHITECTURE],
            s3_bucket=record["bucket"],
            s3_key=record["key"],
            s3_object_version=record["version"],
            memory_size=args.memory_mb,
            timeout=args.timeout_seconds,
            reserved_concurrent_executions=args.reserved_concurrency,
            publish=args.publish,
            environment=aws.lambda_.FunctionEnvironmentArgs(
                variables={
                    **args.app_environment,
                    **args.environment,
                    "APP_VERSION": self.app_version,
                    "ALLOWED_ORIGIN": args.site_origin,
                    "NODE_OPTIONS": "--enable-source-maps",
                }
            ),
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=list(args.after))),
        )

        qualifier: pulumi.Input[str] | None = None
        self.alias = None
        self.pre_traffic_check = None
        if args.publish:
            alias_opts = child
            if not args.pinned_version:
                self.pre_traffic_check = self._create_version_check(name, args, child)
                gate = self.pre_traffic_check
                if args.canary_percent:
                    gate = self._create_canary(name, args, gate, child)
                # No data flows from the check (or the canary) to the alias: it is the gate `stable` waits behind.
                alias_opts = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[gate]))
            self.alias = aws.lambda_.Alias(
                f"{name}-alias",
                name=ALIAS_NAME,
                function_name=self.function.name,
                function_version=args.pinned_version or self.function.version,
                opts=alias_opts,
            )
            qualifier = self.alias.name
        self.url = aws.lambda_.FunctionUrl(
            f"{name}-url",
            function_name=self.function.name,
            qualifier=qualifier,
            authorization_type="NONE",
            cors=aws.lambda_.FunctionUrlCorsArgs(
                allow_origins=[args.site_origin],
                allow_methods=["GET", "POST"],
                allow_headers=["authorization", "content-type"],
                max_age=300,
            ),
            opts=child,
        )
        # A public function URL needs both grants since AWS's 2025 change; each is limited to
        # calls that arrive through the URL.
        url_permission = aws.lambda_.Permission(
            f"{name}-url-invoke",
            function=self.function.name,
            qualifier=qualifier,
            action="lambda:InvokeFunctionUrl",
            principal="*",
            function_url_auth_type="NONE",
            opts=child,
        )
        invoke_permission = aws.lambda_.Permission(
            f"{name}-url-invoke-function",
            function=self.function.name,
            qualifier=qualifier,
            action="lambda:InvokeFunction",
            principal="*",
            invoked_via_function_url=True,
            opts=child,
        )
        self.live = [self.url, url_permission, invoke_permission]
        if self.alias is not None:
            self.live.append(self._create_verify_alias(name, args, self.alias, child))
            self.live_version = self.alias.function_version
        else:
            self.live_version = self.function.last_modified
            self.pre_traffic_check = self._create_url_check(name, args, self.live, child)
            self.live.append(self.pre_traffic_check)
        self.register_outputs(
            {"url": self.url.function_url, "functionName": self.function.name, "liveVersion": self.live_version}
        )

    def _create_build(self, name: str, args: LambdaApiArgs, child: pulumi.ResourceOptions) -> local.Command:
        api_dir = f"{args.app_dir}/{args.bundle.api_dir}"
        # The build runs inside the API's directory so that the archive holds `dist/...` at its
        # root; relative paths keep the inputs identical on every machine. Lists travel as one
        # newline-separated variable each (no value is ever part of the command text).
        return Build(
            f"{name}-build",
            create=step_command(
                "build_lambda",
                '--app-dir "$APP_DIR"',
                '--entry "$ENTRY"',
                '--out "$OUT_DIR"',
                '--format "$BUNDLE_FORMAT"',
                '--external "$EXTERNAL_MODULES"',
                '--extra-files "$EXTRA_FILES"',
                *PublishTarget.FLAGS,
            ),
            environment={
                "APP_DIR": os.path.relpath(args.app_dir, api_dir),
                "ENTRY": args.bundle.entry,
                "OUT_DIR": BUNDLE_DIR,
                "BUNDLE_FORMAT": args.bundle.format,
                "EXTERNAL_MODULES": "\n".join(args.bundle.external),
                "EXTRA_FILES": "\n".join(args.bundle.extra_files),
                "PYTHONPATH": os.path.relpath(PROJECT_DIR, api_dir),
                **args.artifacts.environment(),
            },
            triggers=[args.sources_hash],
            directory=api_dir,
            after=args.build_after,
            opts=child,
        ).command

    def _create_version_check(self, name: str, args: LambdaApiArgs, child: pulumi.ResourceOptions) -> local.Command:
        """Invoke the just-published version's /health before `stable` moves (critical)."""
        return deploy_step(
            f"{name}-pre-traffic-check",
            create=step_command(
                "promote",
                "check",
                '--function "$FUNCTION_NAME"',
                '--qualifier "$FUNCTION_VERSION"',
                *_health_flags(args),
                '--mask-variables "$MASKED_VARIABLES"',
            ),
            environment={
                "FUNCTION_NAME": self.function.name,
                "FUNCTION_VERSION": self.function.version,
                "APP_VERSION": self.app_version,
                "HEALTH_PATH": args.health_path,
                "AWS_REGION": args.region,
                "MASKED_VARIABLES": ",".join(args.secret_names),
            },
            opts=child,
        )

    def _create_canary(
        self, name: str, args: LambdaApiArgs, check: local.Command, child: pulumi.ResourceOptions
    ) -> local.Command:
        """Route `canary_percent` of `stable` to the checked version, watch it, then shift all of
        it or roll back to 0% (critical). The alias resource then only confirms where it points."""
        return deploy_step(
            f"{name}-canary",
            create=step_command(
                "promote",
                "canary",
                '--function "$FUNCTION_NAME"',
                '--alias "$ALIAS_NAME"',
                '--version "$FUNCTION_VERSION"',
                '--weight "$CANARY_PERCENT"',
                '--seconds "$CANARY_SECONDS"',
                '--health-path "$HEALTH_PATH"',
                '--mask-variables "$MASKED_VARIABLES"',
            ),
            environment={
                "FUNCTION_NAME": self.function.name,
                "ALIAS_NAME": ALIAS_NAME,
                "FUNCTION_VERSION": self.function.version,
                "CANARY_PERCENT": str(args.canary_percent),
                "CANARY_SECONDS": str(args.canary_seconds),
                "HEALTH_PATH": args.health_path,
                "AWS_REGION": args.region,
                "MASKED_VARIABLES": ",".join(args.secret_names),
            },
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[check])),
        )

    def _create_url_check(
        self, name: str, args: LambdaApiArgs, serving: list[pulumi.Resource], child: pulumi.ResourceOptions
    ) -> local.Command:
        """A preview's `$LATEST` answers /health through its URL before the site deploys (critical):
        a PR's role may not Invoke, and the URL is what the reviewer's browser calls."""
        return deploy_step(
            f"{name}-pre-traffic-check",
            create=step_command(
                "promote",
                "check",
                '--url "$API_URL"',
                *_health_flags(args),
                '--mask-function "$FUNCTION_NAME"',
                '--mask-variables "$MASKED_VARIABLES"',
            ),
            environment={
                "API_URL": self.url.function_url,
                "APP_VERSION": self.app_version,
                "HEALTH_PATH": args.health_path,
                # $LATEST has no number: its update stamp re-runs the check after every deploy.
                "DEPLOYED": self.function.last_modified,
                "FUNCTION_NAME": self.function.name,
                "AWS_REGION": args.region,
                "MASKED_VARIABLES": ",".join(args.secret_names),
            },
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=list(serving))),
        )

    def _create_verify_alias(
        self, name: str, args: LambdaApiArgs, alias: aws.lambda_.Alias, child: pulumi.ResourceOptions
    ) -> local.Command:
        """Verify that `stable` routes to the version it should (critical)."""
        return deploy_step(
            f"{name}-verify-alias",
            create=step_command(
                "lambda_versions",
                "verify-alias",
                '--function "$FUNCTION_NAME"',
                '--alias "$ALIAS_NAME"',
                '--version "$FUNCTION_VERSION"',
            ),
            environment={
                "FUNCTION_NAME": self.function.name,
                "ALIAS_NAME": alias.name,
                "FUNCTION_VERSION": alias.function_version,
                "AWS_REGION": args.region,
            },
            opts=child,
        )


def _health_flags(args: LambdaApiArgs) -> list[str]:
    """The pre-traffic check's route, and the version it must report unless the app reports none.
    APP_VERSION stays in the check's environment either way: a new build re-runs the check."""
    flags = ['--health-path "$HEALTH_PATH"']
    if args.health_version:
        flags.insert(0, '--expect-version "$APP_VERSION"')
    return flags
