"""The stack's settings: one typed, validated `Settings` built from the stack's config.

Stacks are `prod`, `preview` (the template) and `preview-pr-<N>`. A PR stack has no config file of
its own: it runs on `Pulumi.preview.yaml` and derives every name from N, so two PRs never share a
schema, a function, a Pages branch or a host. Every problem is collected and reported at once,
before any resource is declared.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from typing import Any, Literal

import pulumi
import yaml

from components import names
from components.names import PR_NUMBER, PR_STACK, SAFE_STACK_NAME  # noqa: F401 - re-exported for tools and workflows
from steps.database import connection_problem, dsn_problem, runtime_connection_warning, schema_name_problem

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROJECT_FILE = PROJECT_ROOT / "Pulumi.yaml"

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Patterns are matched whole (`fullmatch`): a `$` would also accept a trailing newline.
ACCOUNT_ID = re.compile(r"[0-9]{12}")
REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
HOST_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
GITHUB_ENVIRONMENT = re.compile(r"[A-Za-z0-9_.-]{1,255}")

# Secrets never live in stack files; each comes from `pulumi config set --secret` or, failing
# that, from the CI job's environment (which is also where the deploy steps read them).
# `databaseUrl` is the direct connection (migrations, schema, deploy records); `runtimeDatabaseUrl`
# is what the API function connects with, usually the transaction pooler.
SECRET_ENVIRONMENT = {"databaseUrl": "DATABASE_URL", "runtimeDatabaseUrl": "RUNTIME_DATABASE_URL"}

StackKind = Literal["prod", "preview", "pr"]


class SettingsError(pulumi.RunError):
    # A RunError: the Python host prints its message alone, not a traceback of the program.

    """Every problem with the stack's settings, each with what to do about it."""

    def __init__(self, stack: str, problems: list[str]):
        self.stack = stack
        self.problems = problems
        listing = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"stack {stack!r} cannot be deployed; fix these settings first:\n{listing}")


@dataclass(frozen=True, kw_only=True)
class ConfigKey:
    name: str
    type: str
    default: Any = None
    secret: bool = False

    @property
    def required(self) -> bool:
        return self.default is None and not self.secret


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
    approve_data_loss: str
    """The one data-losing change prod may apply (its digest), or empty."""
    dns_resolvers: tuple[str, ...]
    api_reserved_concurrency: int
    api_pool_size: int
    api_function_count: int
    database_connection_limit: int
    database_url: pulumi.Input[str]
    """The direct connection: migrations, schema create/drop, deploy records."""
    runtime_database_url: pulumi.Input[str]
    """What the API function connects with (the transaction pooler, or `database_url`)."""
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
    def github_subject(self) -> str:
        return self.github_subject_prefix or f"repo:{self.github_repository}"

    @property
    def app_path(self) -> Path:
        return PROJECT_ROOT / self.app_dir


def declared_keys(project_file: Path = PROJECT_FILE) -> dict[str, ConfigKey]:
    """The config keys Pulumi.yaml declares for this project, by their short name."""
    document = yaml.safe_load(project_file.read_text())
    project = document["name"]
    keys = {}
    for full_name, declaration in (document.get("config") or {}).items():
        namespace, _, short = full_name.partition(":")
        if namespace != project:
            continue
        keys[short] = ConfigKey(
            name=short,
            type=declaration["type"],
            default=declaration.get("default"),
            # Not `secret: true` in Pulumi.yaml: the CLI demands a value for such a key, so one that
            # may come from the CI environment alone could not be declared (see Pulumi.yaml).
            secret=short in SECRET_ENVIRONMENT,
        )
    return keys


def stack_file_values(stack: str, project: str, root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """Plain (non-secure) values of `Pulumi.<stack>.yaml` in the project's namespace."""
    return config_file_values(root / f"Pulumi.{stack}.yaml", project)


def config_file_values(path: Path, project: str) -> dict[str, Any]:
    """Plain (non-secure) values of a stack config file (`--config-file`) in the project's namespace."""
    if not path.exists():
        return {}
    config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    prefix = f"{project}:"
    return {
        key[len(prefix):]: value
        for key, value in config.items()
        if key.startswith(prefix) and not (isinstance(value, dict) and "secure" in value)
    }


def stack_setting(stack: str, key: str, root: Path = PROJECT_ROOT) -> Any:
    """A plain setting of `stack` as the program reads it, from the files alone (no engine).

    For the workflows and tools that need one before `pulumi` runs (the app directory for caches):
    the stack's file (a PR stack: Pulumi.preview.yaml), else the default Pulumi.yaml declares.
    """
    document = yaml.safe_load((root / "Pulumi.yaml").read_text())
    project = document["name"]
    values = stack_file_values("preview" if PR_STACK.fullmatch(stack) else stack, project, root)
    if key in values:
        return values[key]
    return declared_keys(root / "Pulumi.yaml")[key].default


def stack_kind(stack: str, problems: list[str]) -> tuple[StackKind | None, int | None]:
    if stack in ("prod", "preview"):
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
            if isinstance(value, bool):
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
        problems.append(f"`{key.name}` must be {key.type}, got {value!r}: fix it with `pulumi config set {key.name} ...`")
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
    for label_key in ("siteSubdomain", "pagesProject"):
        label = values.get(label_key)
        if label and not HOST_LABEL.fullmatch(label):
            problems.append(f"`{label_key}` {label!r} is not a lower-case DNS label (a-z, 0-9, '-')")
    for positive in (
        "lambdaMemoryMb", "lambdaTimeoutSeconds", "keepLambdaVersions", "migrationTimeoutSeconds",
        "apiReservedConcurrency", "apiPoolSize", "apiFunctionCount", "databaseConnectionLimit", "canarySeconds",
    ):  # fmt: skip
        if values.get(positive) is not None and values[positive] < 1:
            problems.append(f"`{positive}` must be at least 1, got {values[positive]}")
    canary = values.get("canaryPercent")
    if canary is not None and not 0 <= canary <= 99:
        problems.append(f"`canaryPercent` must be from 0 (off) to 99, got {canary}")
    elif canary and kind != "prod":
        problems.append("`canaryPercent`: only prod runs a canary (previews have no alias); set it to 0")
    approval = str(values.get("approveDataLoss") or "")
    if approval and (kind != "prod" or not names.DATA_LOSS_DIGEST.fullmatch(approval)):
        problems.append(
            f"`approveDataLoss` {approval[:40]!r}: only prod approves data loss (previews always apply it), and only "
            "with the 16-hex-digit digest its refused migration printed; clear it with `pulumi config set approveDataLoss ''`"
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
    problem = connection_budget_problem(values)
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


def parse_settings(
    *,
    project: str,
    stack: str,
    values: Mapping[str, Any],
    secrets: Mapping[str, pulumi.Input[str] | None],
    keys: Mapping[str, ConfigKey],
    root: Path = PROJECT_ROOT,
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
            where = "Pulumi.preview.yaml" if kind == "pr" else f"Pulumi.{stack}.yaml"
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

    database_url = secrets.get("databaseUrl")
    if database_url is None or database_url == "":
        problems.append(
            "missing secret `databaseUrl`: export DATABASE_URL in the CI job's environment "
            "or run `pulumi config set --secret databaseUrl postgres://...`"
        )
    elif isinstance(database_url, str) and (problem := connection_problem(database_url)):
        problems.append(f"`databaseUrl` (DATABASE_URL): {problem}")

    warnings: list[str] = []
    runtime_url = secrets.get("runtimeDatabaseUrl")
    if runtime_url is None or runtime_url == "":
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

    if problems or kind is None:  # a bad stack name is among the problems
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
        approve_data_loss=resolved["approveDataLoss"],
        dns_resolvers=resolved["dnsResolvers"],
        api_reserved_concurrency=resolved["apiReservedConcurrency"],
        api_pool_size=resolved["apiPoolSize"],
        api_function_count=resolved["apiFunctionCount"],
        database_connection_limit=resolved["databaseConnectionLimit"],
        database_url=database_url,
        runtime_database_url=runtime_url,
        warnings=tuple(warnings),
    )


def load_settings() -> Settings:
    """Reads the running stack's config (a PR stack: Pulumi.preview.yaml under its own) and validates it."""
    project = pulumi.get_project()
    stack = pulumi.get_stack()
    keys = declared_keys()
    config = pulumi.Config(project)

    values: dict[str, Any] = {}
    if PR_STACK.fullmatch(stack):
        values.update(stack_file_values("preview", project))
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
    settings = parse_settings(project=project, stack=stack, values=values, secrets=secrets, keys=keys)
    for warning in settings.warnings:
        pulumi.log.warn(warning)
    return settings
