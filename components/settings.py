"""The stack's settings: one typed, validated `Settings` built from the stack's config.

Stacks are `prod`, `preview` (the template) and `preview-pr-<N>`. A PR stack has no config file of
its own: every `pulumi` command of a PR stack takes the template as its config file
(`--config-file Pulumi.preview.yaml`, `stack_config_file`), so the engine resolves its settings as
for any stack (the stack's config file, then the defaults Pulumi.yaml declares), and the program
derives every name from N, so two PRs never share a schema, a function, a Pages branch or a host.
Every problem is collected and reported at once, before any resource is declared.

The stack files as plain files (Pulumi.yaml's declarations, a stack's config file) are read by
core/stack_files.py, without the SDK: this module reads Pulumi's config on top of them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from typing import Any, Literal

import pulumi
import yaml
from pulumi.runtime.config import CONFIG, get_config, get_config_env, is_config_secret

from core import aws_limits, names
from core.names import PR_NUMBER, PR_STACK, SAFE_STACK_NAME  # noqa: F401 - re-exported for tools and workflows
from core.stack_files import (  # noqa: F401 - re-exported: the program's settings are read on top of the files
    PROJECT_FILE,
    PROJECT_ROOT,
    SECRET_ENVIRONMENT,
    SECRET_ENVIRONMENT_KEY,
    SECRET_KEYS,
    ConfigKey,
    config_file_values,
    declared_keys,
    stack_config_file,
    stack_file_values,
    stack_setting,
)
from steps.args import ENV_NAME, HEALTH_PATH_SHAPE, MAX_SECONDS
from steps.console import shown
from steps.database import connection_problem, dsn_problem, runtime_connection_warning, schema_name_problem
from steps.package_manager import manager_problem

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Patterns are matched whole (`fullmatch`): a `$` would also accept a trailing newline.
ACCOUNT_ID = re.compile(r"[0-9]{12}")
REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
HOST_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
GITHUB_ENVIRONMENT = re.compile(r"[A-Za-z0-9_.-]{1,255}")
# A zone name: lower-case DNS labels, at least two, at most 253 characters.
DOMAIN = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]")

StackKind = Literal["prod", "preview", "pr"]

# What the pipeline itself gives the function (pipeline.backend, LambdaApi) and what Lambda reserves.
PIPELINE_ENVIRONMENT = frozenset(
    {
        "JWKS_URL", "JWT_ISSUER", "JWT_AUDIENCE", "DB_SCHEMA", "DATABASE_URL", "DB_POOL_SIZE", "APP_VERSION",
        "ALLOWED_ORIGIN", "NODE_OPTIONS",
    }  # fmt: skip
)
LAMBDA_RESERVED = re.compile(r"(AWS_|LAMBDA_|_).*|TZ|_HANDLER")
MODULE_NAME = re.compile(r"(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*(/[A-Za-z0-9._-]+)*")
# The values the pipeline can bake into the site (`siteOutputs`), each by the name config uses.
SITE_OUTPUTS = ("apiUrl", "apiBaseUrl", "siteUrl", "stack", "dbSchema")
# The site build's own variables (PagesSite, steps.build_site): a site output must not replace one.
SITE_BUILD_ENVIRONMENT = frozenset(
    {"APP_DIR", "WEB_DIR", "EXPORT_DIR", "OUT_DIR", "BAKED", "PATH", "PYTHONPATH", "NODE_OPTIONS", "CI", "HOME", "NEXT_BUILD_ID"}
)
API_FORMATS = ("cjs", "esm")


@dataclass(frozen=True, kw_only=True)
class AppShape:
    """Where the app's parts are and how they are built (docs/bring-your-own-app.md)."""

    package_manager: str
    """npm | pnpm | yarn, or "" to detect from the lockfile."""
    schema_package: str
    drizzle_config: str
    """Relative to schema_package."""
    api_dir: str
    api_entry: str
    """Relative to api_dir."""
    api_format: str
    api_external: tuple[str, ...]
    api_extra_files: tuple[str, ...]
    web_dir: str
    api_environment: Mapping[str, str]
    api_secret_environment: Mapping[str, pulumi.Input[str]]
    """Values are secret Outputs."""
    site_outputs: tuple[tuple[str, str], ...]
    """(variable, output name) pairs, output names from SITE_OUTPUTS."""
    site_out_dir: str = "out"
    """Where the site's build writes its export, relative to web_dir."""
    site_environment: tuple[tuple[str, str, bool], ...] = ()
    """(variable, value, is_output) for the build only: an output's name when is_output."""
    health_path: str = "/health"
    health_version: bool = True
    """Whether the health route reports APP_VERSION (the pre-traffic check then proves the build)."""

    @property
    def has_database(self) -> bool:
        """`schemaPackage` empty: no schema, no migration, no DATABASE_URL for the function."""
        return bool(self.schema_package)

    @property
    def has_site(self) -> bool:
        """`webDir` empty: no site build, Pages deploy, DNS record or site check."""
        return bool(self.web_dir)


class SettingsError(pulumi.RunError):
    # A RunError: the Python host prints its message alone, not a traceback of the program.

    """Every problem with the stack's settings, each with what to do about it."""

    def __init__(self, stack: str, problems: list[str]):
        self.stack = stack
        self.problems = problems
        listing = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"stack {stack!r} cannot be deployed; fix these settings first:\n{listing}")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """What the program needs to know about the stack, derived names included."""

    project: str
    stack: str
    kind: StackKind
    pr_number: int | None
    aws_region: str
    aws_account_id: str
    github_repository: str
    github_subject_prefix: str
    github_prod_environment: str
    github_preview_environment: str
    github_sweeper_environment: str
    alert_email: str
    domain: str
    cloudflare_account_id: str
    cloudflare_zone_id: str
    pages_project: str
    site_subdomain: str
    db_schema: str
    jwks_url: str
    jwt_issuer: str
    jwt_audience: str
    app_dir: str
    site_url_override: str
    lambda_memory_mb: int
    lambda_timeout_seconds: int
    keep_lambda_versions: int
    pinned_version: str
    canary_percent: int
    """0 = no canary: `stable` moves wholly once the pre-traffic check passed."""
    canary_seconds: int
    migration_timeout_seconds: int
    pages_deploy_timeout_seconds: int
    approve_data_loss: str
    """The one data-losing change prod may apply (its digest), or empty."""
    dns_resolvers: tuple[str, ...]
    api_reserved_concurrency: int
    api_pool_size: int
    api_function_count: int
    database_connection_limit: int
    database_url: pulumi.Input[str] | None
    """The direct connection: migrations, schema create/drop, deploy records (None: no database)."""
    runtime_database_url: pulumi.Input[str] | None
    """What the API function connects with (the transaction pooler, or `database_url`)."""
    app: AppShape
    warnings: tuple[str, ...] = ()
    """What deploys but should be changed (logged by `load_settings`)."""

    @property
    def is_prod(self) -> bool:
        return self.kind == "prod"

    @property
    def is_pr(self) -> bool:
        return self.kind == "pr"

    @property
    def pages_branch(self) -> str:
        return names.pages_branch(self.stack)

    @property
    def site_host(self) -> str:
        if self.is_prod:
            return f"{self.site_subdomain}.{self.domain}"
        return f"{self.pages_branch}.{self.site_subdomain}.{self.domain}"

    @property
    def site_url(self) -> str:
        """Where the site is served: its host over https, unless `siteUrl` says otherwise."""
        return self.site_url_override or f"https://{self.site_host}/"

    @property
    def pages_target(self) -> str:
        """The `*.pages.dev` name the site's CNAME points at (a branch alias for previews)."""
        if self.is_prod:
            return f"{self.pages_project}.pages.dev"
        return f"{self.pages_branch}.{self.pages_project}.pages.dev"

    @property
    def function_name(self) -> str:
        return names.function_name(self.project, self.stack)

    @property
    def artifacts_bucket(self) -> str:
        """Where the builds publish what they made (account foundation: prod creates it)."""
        return names.foundation_names(self.project, self.aws_account_id)["artifacts_bucket"]

    @property
    def artifact_prefix(self) -> str:
        """This stack's prefix in the artifacts bucket."""
        return names.artifact_prefix(self.stack)

    @property
    def github_subject(self) -> str:
        return self.github_subject_prefix or f"repo:{self.github_repository}"

    @property
    def app_path(self) -> Path:
        return PROJECT_ROOT / self.app_dir


def stack_kind(stack: str, problems: list[str]) -> tuple[StackKind | None, int | None]:
    if stack in (names.PROD_STACK, names.PREVIEW_STACK):
        return stack, None
    match = PR_STACK.fullmatch(stack)
    if match is None:
        problems.append(
            f"stack name {stack!r} is not one of `prod`, `preview` or `preview-pr-<N>`: "
            "select one of those (`pulumi stack select preview-pr-42 --create`)"
        )
        return None, None
    number = match["number"]
    if not PR_NUMBER.fullmatch(number):
        problems.append(
            f"stack {stack!r}: PR number {number!r} is not a positive whole number: "
            "name PR stacks `preview-pr-<N>` with the pull request's number, e.g. `preview-pr-42`"
        )
        return None, None
    return "pr", int(number)


def _coerce(key: ConfigKey, value: Any, problems: list[str]) -> Any:
    """Config arrives as strings from the CLI and as YAML values from files; accept both."""
    try:
        if key.type == "integer":
            # A whole number: YAML's 2.5, .inf and .nan are floats, and int() would turn 2.5 into 2
            # in silence and raise OverflowError (a traceback) for .inf.
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise ValueError(value)
            return int(value)
        if key.type == "boolean":
            if isinstance(value, bool):
                return value
            return {"true": True, "false": False}[str(value).lower()]
        if key.type == "array":
            if isinstance(value, str):
                value = yaml.safe_load(value)
            if not isinstance(value, list):
                raise ValueError(value)
            return tuple(str(item) for item in value)
        return str(value)
    except (ValueError, KeyError, yaml.YAMLError):
        kind = "a whole number" if key.type == "integer" else key.type
        problems.append(f"`{key.name}` must be {kind}, got {shown(value, 100)}: fix it with `pulumi config set {key.name} ...`")
        return None


def _secure_url(url: str) -> bool:
    """https anywhere; plain http only to this machine, where nothing crosses a network."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS


def _check(settings_values: dict[str, Any], kind: StackKind, problems: list[str]) -> None:
    """Rules that span keys or need a value's shape, each naming the key and the fix."""
    values = settings_values
    if values.get("awsAccountId") and not ACCOUNT_ID.fullmatch(values["awsAccountId"]):
        problems.append(f"`awsAccountId` {values['awsAccountId']!r} is not a 12-digit AWS account id")
    if kind == "prod" and values.get("githubRepository") and not REPOSITORY.fullmatch(values["githubRepository"]):
        problems.append(f"`githubRepository` {values['githubRepository']!r} is not `owner/name`")
    prefix = values.get("githubSubjectPrefix") or ""
    if prefix and ("*" in prefix or not prefix.startswith("repo:")):
        problems.append(f"`githubSubjectPrefix` {prefix!r} must start with `repo:` and contain no `*`")
    for key in ("githubProdEnvironment", "githubPreviewEnvironment", "githubSweeperEnvironment"):
        environment = values.get(key) or ""
        if environment and not GITHUB_ENVIRONMENT.fullmatch(environment):
            problems.append(
                f"`{key}` {environment[:100]!r} is not a GitHub environment name this program trusts "
                "(letters, digits, '.', '_', '-'; it becomes an exact OIDC subject)"
            )
    envs = [values.get(k) for k in ("githubProdEnvironment", "githubPreviewEnvironment", "githubSweeperEnvironment")]
    if values.get("githubProdEnvironment") and envs.count(values["githubProdEnvironment"]) > 1:
        problems.append("`githubProdEnvironment` must be an environment of its own: the previews' roles must not share it")
    email = values.get("alertEmail") or ""
    if email and not EMAIL.fullmatch(email):
        problems.append(f"`alertEmail` {email!r} is not an e-mail address (or leave it empty)")
    domain = values.get("domain")
    if domain and not DOMAIN.fullmatch(domain):
        problems.append(
            f"`domain` {shown(domain, 100)} is not a lower-case DNS zone name (labels of a-z, 0-9, '-' joined by '.', e.g. example.com)"
        )
    for label_key in ("siteSubdomain", "pagesProject"):
        label = values.get(label_key)
        if label and not HOST_LABEL.fullmatch(label):
            problems.append(f"`{label_key}` {label!r} is not a lower-case DNS label (a-z, 0-9, '-')")
    for positive in (
        "keepLambdaVersions", "migrationTimeoutSeconds", "pagesDeployTimeoutSeconds",
        "apiReservedConcurrency", "apiPoolSize", "apiFunctionCount", "databaseConnectionLimit", "canarySeconds",
    ):  # fmt: skip
        if values.get(positive) is not None and values[positive] < 1:
            problems.append(f"`{positive}` must be at least 1, got {values[positive]}")
    # No deploy step waits longer than a day (steps.args, the bound of every --timeout): a bigger
    # value is a typo, or a way to hang a job until GitHub cancels it.
    for seconds in ("migrationTimeoutSeconds", "canarySeconds", "pagesDeployTimeoutSeconds"):
        if values.get(seconds) is not None and values[seconds] > MAX_SECONDS:
            problems.append(f"`{seconds}` must be at most {MAX_SECONDS:.0f} seconds (a day), got {values[seconds]}")
    # What the AWS provider itself refuses at preview (its schema's ranges): said here first, in
    # the settings' words, with every other problem.
    for key, (low, high), unit in (
        ("lambdaMemoryMb", aws_limits.LAMBDA_MEMORY_MB, "MB"),
        ("lambdaTimeoutSeconds", aws_limits.LAMBDA_TIMEOUT_SECONDS, "seconds"),
    ):
        if values.get(key) is not None and not low <= values[key] <= high:
            problems.append(f"`{key}` must be from {low} to {high} {unit} (Lambda's limits), got {values[key]}")
    canary = values.get("canaryPercent")
    if canary is not None and not 0 <= canary <= 99:
        problems.append(f"`canaryPercent` must be from 0 (off) to 99, got {canary}")
    elif canary and kind != "prod":
        problems.append("`canaryPercent`: only prod runs a canary (previews have no alias); set it to 0")
    approval = str(values.get("approveDataLoss") or "")
    if approval and (kind != "prod" or not names.DATA_LOSS_DIGEST.fullmatch(approval)):
        problems.append(
            f"`approveDataLoss` {approval[:40]!r}: only prod approves data loss (previews always apply it), and only "
            f"with the {names.DATA_LOSS_DIGEST_LENGTH}-hex-digit digest its refused migration printed; clear it with `pulumi config set approveDataLoss ''`"
        )
    pinned = values.get("pinnedVersion") or ""
    if pinned and (kind != "prod" or not pinned.isdigit()):
        problems.append(
            f"`pinnedVersion` {pinned!r}: only prod can pin, and only to a published version number; "
            "clear it with `pulumi config set pinnedVersion ''`"
        )
    for url_key in ("jwksUrl", "jwtIssuer", "siteUrl"):
        if values.get(url_key) and not _secure_url(str(values[url_key])):
            problems.append(
                f"`{url_key}` must be an https:// URL (http:// only on loopback, for the local sandbox), "
                f"got {str(values[url_key])[:200]!r}"
            )
    site_url = str(values.get("siteUrl") or "")
    if site_url and not site_url.endswith("/"):
        problems.append(f"`siteUrl` must end with '/', got {site_url[:200]!r}")
    # An app without a database holds no connections.
    problem = connection_budget_problem(values) if values.get("schemaPackage") != "" else None
    if problem:
        problems.append(problem)


BUDGET_KEYS = ("apiFunctionCount", "apiReservedConcurrency", "apiPoolSize")


def connection_budget_problem(values: Mapping[str, Any]) -> str | None:
    """Why the API's worst case (functions x concurrency x pool size) does not fit the
    connection limit, in one line naming each number, or None (also when a number is missing or
    below 1: that is reported on its own)."""
    numbers = [values.get(key) for key in (*BUDGET_KEYS, "databaseConnectionLimit")]
    if any(not isinstance(n, int) or n < 1 for n in numbers):
        return None
    functions, concurrency, pool, limit = numbers
    worst = functions * concurrency * pool
    if worst <= limit:
        return None
    return (
        f"connection budget exceeded: {functions} functions (`apiFunctionCount`) x {concurrency} "
        f"concurrent executions (`apiReservedConcurrency`) x {pool} pool connections (`apiPoolSize`) "
        f"= {worst} connections at worst, over the limit of {limit} (`databaseConnectionLimit`): "
        "lower one of the first three or raise the limit"
    )


def _inside_relative(path: str) -> bool:
    parts = Path(path).parts
    return bool(path) and not Path(path).is_absolute() and ".." not in parts


def _site_environment(items: tuple[str, ...], baked: set[str], problems: list[str]) -> list[tuple[str, str, bool]]:
    """`siteEnvironment`: NAME=value (plain), or NAME={output} for one of SITE_OUTPUTS."""
    found = []
    for variable, value in _pairs("siteEnvironment", items, problems):
        if variable in SITE_BUILD_ENVIRONMENT:
            problems.append(f"`siteEnvironment` variable {variable} is one the site build sets itself: name it otherwise")
        if variable in baked:
            problems.append(f"{variable} is in both `siteOutputs` and `siteEnvironment`: keep it in one")
        is_output = value.startswith("{") and value.endswith("}")
        if is_output and value[1:-1] not in SITE_OUTPUTS:
            problems.append(f"`siteEnvironment` {variable}={value[:40]!r}: the output must be one of {', '.join(SITE_OUTPUTS)}")
        found.append((variable, value[1:-1] if is_output else value, is_output))
    return found


def _pairs(key: str, items: tuple[str, ...], problems: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not ENV_NAME.fullmatch(name):
            problems.append(f"`{key}` item {item[:60]!r} is not NAME=value (NAME: letters, digits, _)")
            continue
        pairs.append((name, value))
    return pairs


def _environment_name_problem(key: str, name: str) -> str | None:
    if name in PIPELINE_ENVIRONMENT:
        return f"`{key}` sets {name}, which the pipeline sets itself: drop it (or use another name)"
    if LAMBDA_RESERVED.fullmatch(name):
        return f"`{key}` sets {name}, a name AWS Lambda reserves: use another name"
    return None


def secret_environment(raw: str | None, is_secret: bool, problems: list[str]) -> dict[str, str]:
    """`apiSecretEnvironment`'s JSON object, checked; never echoes a value."""
    if raw is None or raw == "":
        return {}
    if not is_secret:
        problems.append(
            "`apiSecretEnvironment` is plain config: secrets are set only with "
            "`pulumi config set --secret apiSecretEnvironment '{\"NAME\": \"value\"}'` (then rotate the exposed values)"
        )
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
        problems.append(
            "`apiSecretEnvironment` must be a JSON object of strings, {\"NAME\": \"value\"}: "
            "set it again with `pulumi config set --secret apiSecretEnvironment ...`"
        )
        return {}
    environment = {}
    for name, value in parsed.items():
        if not ENV_NAME.fullmatch(name):
            problems.append(f"`apiSecretEnvironment` name {name[:60]!r} is not a variable name (letters, digits, _)")
        elif problem := _environment_name_problem("apiSecretEnvironment", name):
            problems.append(problem)
        else:
            environment[name] = value
    return environment


def parse_app_shape(
    resolved: Mapping[str, Any], app_root: Path | None, secret_env: Mapping[str, str], problems: list[str]
) -> AppShape | None:
    """The app-shape keys, each checked against the app's files when `app_root` exists."""
    shape_keys = ("schemaPackage", "drizzleConfig", "apiDir", "apiEntry", "webDir", "apiFormat", "packageManager")
    if any(resolved.get(key) is None for key in shape_keys):
        return None
    has_database, has_site = resolved["schemaPackage"] != "", resolved["webDir"] != ""
    paths = ["apiDir", "apiEntry"]
    paths += ["schemaPackage", "drizzleConfig"] if has_database else []
    paths += ["webDir", "siteOutDir"] if has_site else []
    for key in paths:
        # "." is the app's root (an API or schema package at the top); only the export must be a directory of its own.
        if not _inside_relative(str(resolved.get(key, ""))) or (key == "siteOutDir" and resolved.get(key) == "."):
            problems.append(f"`{key}` {str(resolved.get(key))[:100]!r} must be a relative path inside the app (no '..')")
            return None
    health_path = str(resolved.get("apiHealthPath") or "/health")
    if not HEALTH_PATH_SHAPE.fullmatch(health_path):
        problems.append(f"`apiHealthPath` {health_path[:100]!r} must be a URL path starting with / (no query), e.g. /healthz")
    if resolved["apiFormat"] not in API_FORMATS:
        problems.append(f"`apiFormat` must be cjs or esm, got {resolved['apiFormat'][:20]!r}")
    external = resolved.get("apiExternal") or ()
    for module in external:
        if not MODULE_NAME.fullmatch(module):
            problems.append(f"`apiExternal` {module[:60]!r} is not an npm module name")
    extra_files = resolved.get("apiExtraFiles") or ()
    for pattern in extra_files:
        if not _inside_relative(pattern):
            problems.append(f"`apiExtraFiles` {pattern[:100]!r} must be a relative glob inside `apiDir` (no '..')")
    plain_env = dict(_pairs("apiEnvironment", resolved.get("apiEnvironment") or (), problems))
    for name in plain_env:
        if problem := _environment_name_problem("apiEnvironment", name):
            problems.append(problem)
    for name in sorted(set(plain_env) & set(secret_env)):
        problems.append(f"{name} is in both `apiEnvironment` and `apiSecretEnvironment`: keep it in one")
    site_outputs = []
    for variable, output in _pairs("siteOutputs", resolved.get("siteOutputs") or (), problems):
        if variable in SITE_BUILD_ENVIRONMENT:
            problems.append(f"`siteOutputs` variable {variable} is one the site build sets itself: name it otherwise")
        if output not in SITE_OUTPUTS:
            problems.append(f"`siteOutputs` {variable}={output[:40]!r}: the output must be one of {', '.join(SITE_OUTPUTS)}")
        site_outputs.append((variable, output))
    site_environment = _site_environment(resolved.get("siteEnvironment") or (), {v for v, _ in site_outputs}, problems)

    if app_root is not None and app_root.is_dir():
        files = {"apiEntry": (f"{resolved['apiDir']}/{resolved['apiEntry']}", "`apiDir`/`apiEntry`")}
        if has_database:
            files["drizzleConfig"] = (
                f"{resolved['schemaPackage']}/{resolved['drizzleConfig']}", "`schemaPackage`/`drizzleConfig` (empty: no database)"
            )
        if has_site:
            files["webDir"] = (f"{resolved['webDir']}/package.json", "`webDir` (empty: no site)")
        for relative, keys in files.values():
            if not (app_root / relative).is_file():
                problems.append(f"{app_root / relative} does not exist: set {keys} (relative to `appDir`) to the app's own")
        if problem := manager_problem(app_root, resolved["packageManager"]):
            problems.append(problem)
    return AppShape(
        package_manager=resolved["packageManager"],
        schema_package=resolved["schemaPackage"],
        drizzle_config=resolved["drizzleConfig"],
        api_dir=resolved["apiDir"],
        api_entry=resolved["apiEntry"],
        api_format=resolved["apiFormat"],
        api_external=tuple(external),
        api_extra_files=tuple(extra_files),
        web_dir=resolved["webDir"],
        api_environment=plain_env,
        api_secret_environment={name: pulumi.Output.secret(value) for name, value in secret_env.items()},
        # An app without a site bakes nothing (the default siteOutputs are examples/app's).
        site_outputs=tuple(site_outputs) if has_site else (),
        site_out_dir=str(resolved.get("siteOutDir") or "out"),
        site_environment=tuple(site_environment) if has_site else (),
        health_path=health_path,
        health_version=bool(resolved.get("apiHealthVersion", True)),
    )


def parse_settings(
    *,
    project: str,
    stack: str,
    values: Mapping[str, Any],
    secrets: Mapping[str, pulumi.Input[str] | None],
    keys: Mapping[str, ConfigKey],
    root: Path = PROJECT_ROOT,
    secret_environment_raw: str | None = None,
    secret_environment_is_secret: bool = True,
) -> Settings:
    """Validates raw config values and derives the stack's names; raises SettingsError listing every problem.

    `secrets` maps secret keys (e.g. `databaseUrl`) to their value, a plain string when it came
    from the environment (checked here, then wrapped as a secret) or an Output from config.
    """
    problems: list[str] = []
    kind, pr_number = stack_kind(stack, problems)

    resolved: dict[str, Any] = {}
    for key in keys.values():
        if key.secret:
            continue
        raw = values.get(key.name, key.default)
        if raw is None or (key.required and raw == ""):
            # Never a file named after a bad stack name (a newline in it would break the line).
            where = stack_config_file(stack).name if kind else "the stack's config file"
            problems.append(f"missing `{key.name}`: set it in {where} (`pulumi config set {key.name} VALUE`)")
            continue
        resolved[key.name] = _coerce(key, raw, problems)

    _check(resolved, kind or "preview", problems)

    base_schema = resolved.get("dbSchema")
    schema = names.pr_schema(base_schema, pr_number) if kind == "pr" and base_schema else base_schema
    problem = schema_name_problem(schema) if schema is not None else None
    if problem:
        problems.append(f"{problem}; set `dbSchema` so that it is, short enough for the `_pr_<N>` suffix")

    app_dir = resolved.get("appDir")
    if app_dir is not None and not (root / app_dir / "package.json").is_file():
        problems.append(
            f"app directory {str(root / app_dir)!r} has no package.json: set `appDir` to the app's npm "
            "workspace (default examples/app) relative to Pulumi.yaml"
        )

    secret_env = secret_environment(secret_environment_raw, secret_environment_is_secret, problems)
    app = parse_app_shape(resolved, root / app_dir if app_dir is not None else None, secret_env, problems)

    database_url = secrets.get("databaseUrl")
    if app is not None and not app.has_database:
        database_url = None  # no database: no URL is needed, nor passed on
    elif database_url is None or database_url == "":
        problems.append(
            "missing secret `databaseUrl`: export DATABASE_URL in the CI job's environment "
            "or run `pulumi config set --secret databaseUrl postgres://...`"
        )
    elif isinstance(database_url, str) and (problem := connection_problem(database_url)):
        problems.append(f"`databaseUrl` (DATABASE_URL): {problem}")

    warnings: list[str] = []
    runtime_url = secrets.get("runtimeDatabaseUrl")
    if database_url is None:
        runtime_url = None
    elif runtime_url is None or runtime_url == "":
        runtime_url = database_url
        warnings.append(
            "no runtime database URL: the API connects with `databaseUrl`, a direct connection; set "
            "RUNTIME_DATABASE_URL (or `pulumi config set --secret runtimeDatabaseUrl ...`) to the transaction pooler"
        )
    elif isinstance(runtime_url, str):
        if problem := dsn_problem(runtime_url):
            problems.append(f"`runtimeDatabaseUrl` (RUNTIME_DATABASE_URL): {problem}")
        elif warning := runtime_connection_warning(runtime_url):
            warnings.append(warning)

    if problems or kind is None or app is None:  # a bad stack name is among the problems
        raise SettingsError(stack, problems)

    if isinstance(database_url, str):
        database_url = pulumi.Output.secret(database_url)
    if isinstance(runtime_url, str):
        runtime_url = pulumi.Output.secret(runtime_url)
    return Settings(
        project=project,
        stack=stack,
        kind=kind,
        pr_number=pr_number,
        aws_region=resolved["awsRegion"],
        aws_account_id=resolved["awsAccountId"],
        github_repository=resolved["githubRepository"],
        github_subject_prefix=resolved["githubSubjectPrefix"],
        github_prod_environment=resolved["githubProdEnvironment"],
        github_preview_environment=resolved["githubPreviewEnvironment"],
        github_sweeper_environment=resolved["githubSweeperEnvironment"],
        alert_email=resolved["alertEmail"],
        domain=resolved["domain"],
        cloudflare_account_id=resolved["cloudflareAccountId"],
        cloudflare_zone_id=resolved["cloudflareZoneId"],
        pages_project=resolved["pagesProject"],
        site_subdomain=resolved["siteSubdomain"],
        db_schema=schema,
        jwks_url=resolved["jwksUrl"],
        jwt_issuer=resolved["jwtIssuer"],
        jwt_audience=resolved["jwtAudience"],
        app_dir=app_dir,
        site_url_override=resolved["siteUrl"],
        lambda_memory_mb=resolved["lambdaMemoryMb"],
        lambda_timeout_seconds=resolved["lambdaTimeoutSeconds"],
        keep_lambda_versions=resolved["keepLambdaVersions"],
        pinned_version=resolved["pinnedVersion"],
        canary_percent=resolved["canaryPercent"],
        canary_seconds=resolved["canarySeconds"],
        migration_timeout_seconds=resolved["migrationTimeoutSeconds"],
        pages_deploy_timeout_seconds=resolved["pagesDeployTimeoutSeconds"],
        approve_data_loss=resolved["approveDataLoss"],
        dns_resolvers=resolved["dnsResolvers"],
        api_reserved_concurrency=resolved["apiReservedConcurrency"],
        api_pool_size=resolved["apiPoolSize"],
        api_function_count=resolved["apiFunctionCount"],
        database_connection_limit=resolved["databaseConnectionLimit"],
        database_url=database_url,
        runtime_database_url=runtime_url,
        app=app,
        warnings=tuple(warnings),
    )


def undeclared_keys(config_keys: Iterable[str], project: str, keys: Mapping[str, ConfigKey]) -> list[str]:
    """The keys of the project's namespace that Pulumi.yaml does not declare: a typo that would
    otherwise be ignored while the default silently applies."""
    prefix = f"{project}:"
    return sorted(
        key.removeprefix(prefix) for key in config_keys if key.startswith(prefix) and key.removeprefix(prefix) not in keys
    )


def load_settings() -> Settings:
    """Reads the running stack's config (what the engine resolved from its config file and the
    declared defaults) and validates it."""
    project = pulumi.get_project()
    stack = pulumi.get_stack()
    keys = declared_keys()
    config = pulumi.Config(project)

    unknown = undeclared_keys({**get_config_env(), **CONFIG.get()}, project, keys)
    if unknown:
        raise SettingsError(stack, [
            f"`{key[:60]}` is not a setting of this program (Pulumi.yaml declares none by that name): "
            f"fix the name in {stack_config_file(stack).name}, or remove it"
            for key in unknown
        ])  # fmt: skip

    values: dict[str, Any] = {}
    for key in keys.values():
        if key.secret:
            continue
        if key.type == "array":
            value = config.get_object(key.name)
        else:
            value = config.get(key.name)
        if value is not None:
            values[key.name] = value

    secrets: dict[str, pulumi.Input[str] | None] = {}
    for name, variable in SECRET_ENVIRONMENT.items():
        # The raw value, not `config.get_secret`: Pulumi.yaml declares these with the default ""
        # (see there), which `get_secret` would wrap in a truthy Output and so hide the CI
        # environment's value. A plain string is checked like one from the environment, then
        # wrapped as a secret by parse_settings.
        configured = pulumi.runtime.get_config(f"{project}:{name}")
        if configured and not pulumi.runtime.is_config_secret(f"{project}:{name}"):
            raise SettingsError(stack, [
                f"`{name}` is in the stack's config as plain text: set it with `pulumi config set --secret {name} ...` "
                "(and rotate that credential: the stack file holds it)"
            ])  # fmt: skip
        secrets[name] = configured or os.environ.get(variable)
    # Read as text to check its shape and names here, with every other problem; the values are
    # wrapped as secrets at once and never printed.
    secret_env_key = f"{project}:{SECRET_ENVIRONMENT_KEY}"
    settings = parse_settings(
        project=project,
        stack=stack,
        values=values,
        secrets=secrets,
        keys=keys,
        secret_environment_raw=get_config(secret_env_key),
        secret_environment_is_secret=is_config_secret(secret_env_key),
    )
    for warning in settings.warnings:
        pulumi.log.warn(warning)
    return settings
