"""A PR stack's settings come from the template, through the real CLI (engine tier).

Every `pulumi` command of a `preview-pr-<N>` stack takes the template as its config file
(`--config-file Pulumi.preview.yaml`: the workflows, the sandbox, the README). The engine then
resolves the settings as Pulumi always does: the config file's value, else the default Pulumi.yaml
declares. These tests run the real CLI and the real language host with a program that loads the
real settings and writes what it got:

- every key the project declares, set in the template to a value other than its default, reaches
  the program (the keys only prod may set are refused by name, which shows they reached it too);
  the old way (the program reading the template itself, then the engine's defaults over it) lost
  every key that has a default;
- without `--config-file` (what the preview workflow ran before) the CLI stops before the program,
  naming the required keys;
- a misspelled key in a stack file stops the program, naming the key;
- list keys are set the ways the CLI accepts (`--path 'key[0]'`), and a JSON string is refused by
  the CLI's own type check, as the docs say.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.settings import declared_keys, stack_config_file
from core.names import PREVIEW_STACK
from sandbox.engine import BIN_DIR, engine_env

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(not (BIN_DIR / "pulumi").exists(), reason="bin/pulumi not built (python -m sandbox.engine build)"),
]

REPO = Path(__file__).resolve().parents[1]
STACK = "preview-pr-7"
PASSPHRASE = "stack-config-test"

# A value other than the default for every key the project declares, and how the program's
# Settings show it. The app-shape values are a fixture app's, so the settings' file checks pass.
APP = "tests/fixtures/apps/esm-api"
TEMPLATE: dict[str, tuple[Any, Any]] = {
    # key: (value in the template, what the program must see: a Settings attribute path -> value)
    "awsRegion": ("eu-west-1", ("aws_region", "eu-west-1")),
    "awsAccountId": ("210987654321", ("aws_account_id", "210987654321")),
    "githubRepository": ("acme/shop", ("github_repository", "acme/shop")),
    "githubSubjectPrefix": ("repo:acme@11/shop@22", ("github_subject_prefix", "repo:acme@11/shop@22")),
    "githubProdEnvironment": ("prod-env", ("github_prod_environment", "prod-env")),
    "githubPreviewEnvironment": ("pr-env", ("github_preview_environment", "pr-env")),
    "githubSweeperEnvironment": ("sweep-env", ("github_sweeper_environment", "sweep-env")),
    "alertEmail": ("ops@acme.test", ("alert_email", "ops@acme.test")),
    "domain": ("acme.test", ("domain", "acme.test")),
    "cloudflareAccountId": ("a" * 32, ("cloudflare_account_id", "a" * 32)),
    "cloudflareZoneId": ("b" * 32, ("cloudflare_zone_id", "b" * 32)),
    "pagesProject": ("shop-site", ("pages_project", "shop-site")),
    "siteSubdomain": ("shop", ("site_subdomain", "shop")),
    "dbSchema": ("shop", ("db_schema", "shop_pr_7")),
    "jwksUrl": ("https://id.acme.test/jwks", ("jwks_url", "https://id.acme.test/jwks")),
    "jwtIssuer": ("https://id.acme.test/", ("jwt_issuer", "https://id.acme.test/")),
    "jwtAudience": ("shop-api", ("jwt_audience", "shop-api")),
    "appDir": (APP, ("app_dir", APP)),
    "packageManager": ("npm", ("app.package_manager", "npm")),
    "schemaPackage": ("db", ("app.schema_package", "db")),
    "drizzleConfig": ("./drizzle.config.ts", ("app.drizzle_config", "./drizzle.config.ts")),
    "apiDir": ("api", ("app.api_dir", "api")),
    "apiEntry": ("src/lambda.ts", ("app.api_entry", "src/lambda.ts")),
    "apiFormat": ("esm", ("app.api_format", "esm")),
    "apiExternal": (["@shop/tzdata"], ("app.api_external", ["@shop/tzdata"])),
    "apiExtraFiles": (["data/*.json"], ("app.api_extra_files", ["data/*.json"])),
    "apiEnvironment": (["SHOP_GREETING=hello"], ("app.api_environment", {"SHOP_GREETING": "hello"})),
    "webDir": ("web", ("app.web_dir", "web")),
    "siteOutputs": (["SHOP_API_BASE=apiBaseUrl"], ("app.site_outputs", [["SHOP_API_BASE", "apiBaseUrl"]])),
    "siteOutDir": ("dist", ("app.site_out_dir", "dist")),
    "siteEnvironment": (["SHOP_MODE=preview"], ("app.site_environment", [["SHOP_MODE", "preview", False]])),
    "apiHealthPath": ("/healthz", ("app.health_path", "/healthz")),
    "apiHealthVersion": (False, ("app.health_version", False)),
    "pagesDeployTimeoutSeconds": (300, ("pages_deploy_timeout_seconds", 300)),
    "siteUrl": ("https://pr-7.shop.acme.test/", ("site_url_override", "https://pr-7.shop.acme.test/")),
    "lambdaMemoryMb": (1024, ("lambda_memory_mb", 1024)),
    "lambdaTimeoutSeconds": (29, ("lambda_timeout_seconds", 29)),
    "keepLambdaVersions": (3, ("keep_lambda_versions", 3)),
    "canarySeconds": (120, ("canary_seconds", 120)),
    "migrationTimeoutSeconds": (77, ("migration_timeout_seconds", 77)),
    "dnsResolvers": (["127.0.0.1:5353"], ("dns_resolvers", ["127.0.0.1:5353"])),
    "apiReservedConcurrency": (3, ("api_reserved_concurrency", 3)),
    "apiPoolSize": (2, ("api_pool_size", 2)),
    "apiFunctionCount": (10, ("api_function_count", 10)),
    "databaseConnectionLimit": (60, ("database_connection_limit", 60)),
}
# Keys only prod may set: in the template they are refused, by name.
PROD_ONLY = {"pinnedVersion": "7", "canaryPercent": 10, "approveDataLoss": "0123456789abcdef"}
# Secrets: never plain values in a stack file (tested with the settings, tests/test_settings.py).
SECRETS = {"databaseUrl", "runtimeDatabaseUrl", "apiSecretEnvironment"}

PROGRAM = textwrap.dedent(
    '''
    """Loads the real settings and writes their plain values to $SETTINGS_OUT."""
    import dataclasses, json, os
    import pulumi
    from components.settings import load_settings

    def plain(value):
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, pulumi.Output):
            return None
        return value

    settings = plain(load_settings())
    with open(os.environ["SETTINGS_OUT"], "w") as out:
        json.dump(settings, out)
    '''
)


class Project:
    """A copy of the project whose program only loads the settings, on a file backend."""

    def __init__(self, tmp_path: Path):
        self.root = tmp_path / "project"
        self.root.mkdir()
        spec = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
        spec["runtime"]["options"]["virtualenv"] = str(REPO / ".venv")
        (self.root / "Pulumi.yaml").write_text(yaml.safe_dump(spec))
        (self.root / "__main__.py").write_text(PROGRAM)
        for name in ("components", "steps"):
            (self.root / name).symlink_to(REPO / name)
        backend = tmp_path / "backend"
        backend.mkdir()
        self.out = tmp_path / "settings.json"
        self.env = engine_env(backend, PASSPHRASE, venv=REPO / ".venv")
        self.env.update(SETTINGS_OUT=str(self.out), PYTHONPATH=str(REPO))
        self.env.pop("DATABASE_URL", None)

    def pulumi(self, *args: str, database_url: str | None = "postgres://u:p4ssw0rd-x@127.0.0.1:5432/app") -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if database_url:
            env["DATABASE_URL"] = database_url
        return subprocess.run(
            [str(BIN_DIR / "pulumi"), *args, "--non-interactive"],
            cwd=self.root, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    def template(self, values: dict[str, Any]) -> Path:
        path = stack_config_file(STACK, self.root)
        path.write_text(yaml.safe_dump({"config": {f"webstack:{key}": value for key, value in values.items()}}))
        return path

    def create(self) -> None:
        """`pulumi stack select --create` as the preview workflow runs it (it writes the stack's own
        Pulumi.<stack>.yaml with its secrets provider; nothing else is in it)."""
        result = self.pulumi("stack", "select", "--create", STACK, "--secrets-provider", "passphrase")
        assert result.returncode == 0, result.stdout + result.stderr

    def preview(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.pulumi("preview", "--stack", STACK, *extra)


def settings_value(settings: dict[str, Any], path: str) -> Any:
    value: Any = settings
    for part in path.split("."):
        value = value[part]
    return value


def test_the_table_covers_every_declared_key():
    keys = set(declared_keys())
    assert set(TEMPLATE) | set(PROD_ONLY) | SECRETS == keys
    defaults = {name: key.default for name, key in declared_keys().items()}
    same = [key for key, (value, _) in TEMPLATE.items() if value == defaults[key]]
    assert not same, f"these test values equal the default, so they prove nothing: {same}"


def test_every_template_key_reaches_the_program(tmp_path: Path):
    project = Project(tmp_path)
    template = project.template({key: value for key, (value, _) in TEMPLATE.items()})
    assert template.name == f"Pulumi.{PREVIEW_STACK}.yaml"
    project.create()

    result = project.preview("--config-file", template.name)
    assert result.returncode == 0, result.stdout + result.stderr
    settings = json.loads(project.out.read_text())
    wrong = {
        key: (settings_value(settings, path), expected)
        for key, (_, (path, expected)) in TEMPLATE.items()
        if settings_value(settings, path) != expected
    }
    assert not wrong, f"template values the program did not get (got, expected): {wrong}"


@pytest.mark.parametrize("key", sorted(PROD_ONLY))
def test_prod_only_keys_in_the_template_are_refused_by_name(tmp_path: Path, key: str):
    project = Project(tmp_path)
    template = project.template({**{k: v for k, (v, _) in TEMPLATE.items()}, key: PROD_ONLY[key]})
    project.create()
    result = project.preview("--config-file", template.name)
    assert result.returncode != 0
    assert f"`{key}`" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_without_the_template_the_cli_stops_before_the_program(tmp_path: Path):
    """What preview.yml ran before: `pulumi preview --stack preview-pr-N` with no config file."""
    project = Project(tmp_path)
    project.template({key: value for key, (value, _) in TEMPLATE.items()})
    project.create()
    result = project.preview()
    assert result.returncode != 0
    assert "missing configuration values" in result.stdout + result.stderr
    assert "webstack:awsRegion" in result.stdout + result.stderr
    assert not project.out.exists(), "the program ran"


def test_a_misspelled_key_is_refused_by_name(tmp_path: Path):
    project = Project(tmp_path)
    values: dict[str, Any] = {key: value for key, (value, _) in TEMPLATE.items()}
    values["lambdaMemoryMB"] = 2048  # the key is lambdaMemoryMb
    template = project.template(values)
    project.create()
    result = project.preview("--config-file", template.name)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "`lambdaMemoryMB` is not a setting of this program" in output
    assert "Traceback" not in output
    assert not project.out.exists()


def test_list_keys_take_the_path_form_and_refuse_a_json_string(tmp_path: Path):
    """docs: `pulumi config set --path 'siteOutputs[0]' VAR=output`; a JSON text is a string to the
    CLI, which refuses it for a key declared as an array."""
    project = Project(tmp_path)
    template = project.template({key: value for key, (value, _) in TEMPLATE.items() if key != "siteOutputs"})
    project.create()
    config = ("--stack", STACK, "--config-file", template.name)
    result = project.pulumi("config", "set", "--path", "webstack:siteOutputs[0]", "SHOP_STACK=stack", *config)
    assert result.returncode == 0, result.stdout + result.stderr
    result = project.preview("--config-file", template.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(project.out.read_text())["app"]["site_outputs"] == [["SHOP_STACK", "stack"]]

    project.out.unlink()
    result = project.pulumi("config", "set", "webstack:siteOutputs", "[]", *config)
    assert result.returncode == 0, result.stdout + result.stderr  # stored as text ...
    result = project.preview("--config-file", template.name)
    assert result.returncode != 0  # ... and refused by the CLI's check of the declared type
    assert "siteOutputs" in result.stdout + result.stderr
    assert not project.out.exists()
