"""Bring your own app: fixture apps unlike examples/app deploy by stack config alone.

Each fixture under tests/fixtures/apps holds an app and the stack config that adapts the pipeline
to it (`stack-config.yaml`); no source file of an app was edited for the pipeline. The program is
evaluated for a PR stack with that config (the recording mocks of tools.offline), and the Commands
it declares (install, migrate, API build, site build, Pages deploy) are run as the command provider
runs them: their own command text, directory and environment, against real PostgreSQL,
npm/pnpm/yarn, drizzle-kit, esbuild, node and wrangler (to the Cloudflare API stand-in). Outcomes
are read on the catalog, the bundle (loaded and called under node), the export and the stand-in's
deployment. `.ci/setup` installs the fixtures' dependencies (pnpm and yarn from the npm registry
into the tools directory) and the pipeline's wrangler; the tests run offline.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from components.settings import PROJECT_ROOT, config_file_values
from sandbox.cloudflare_api import ACCOUNT, TOKEN, CloudflareStub, cloudflare  # noqa: F401 - fixture
from tests.support.moto import ARTIFACTS_BUCKET, artifacts_bucket, aws_env, moto_server  # noqa: F401 - fixtures
from tests.support.postgres import Database, pg_database, postgres  # noqa: F401 - fixtures
from tests.support.lambda_bundle import handle
from tests.support.steps_env import steps_env  # noqa: F401 - fixture
from tools.offline import Recording, committed_values, config_for, run_program
from core.phases import PHASE_TYPE
from tools.plan import phase_order_violations

pytestmark = pytest.mark.usefixtures("steps_env")

FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "apps"
STACK = "preview-pr-7"
PUBLISH = ("--artifacts-bucket", ARTIFACTS_BUCKET, "--artifacts-prefix", "previews/preview-pr-7")
SIGNING_KEY = "fixture-signing-key-9c1e"  # a secret value: may appear only as a secret input


def fixture_config(app: str) -> dict:
    return config_file_values(FIXTURES / app / "stack-config.yaml", "webstack")


def record_fixture(app: str, database_url: str = "postgres://u:pw@127.0.0.1:1/x", **overrides) -> Recording:
    values = {**committed_values(STACK), **fixture_config(app), **overrides}
    config = config_for(STACK, values)
    config["webstack:databaseUrl"] = database_url
    secret_keys = ["webstack:databaseUrl"]
    if app == "esm-api":
        config["webstack:apiSecretEnvironment"] = json.dumps({"SHOP_SIGNING_KEY": SIGNING_KEY})
        secret_keys.append("webstack:apiSecretEnvironment")
    return run_program(STACK, config, secret_keys=tuple(secret_keys))


def run_command(recording: Recording, name: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """The Command `name` as the command provider runs it: `sh -c create` in `dir` with `environment`."""
    inputs = recording.by_name(name).inputs
    env = {**os.environ, **{k: str(v) for k, v in inputs["environment"].items()}, **extra_env}
    env["PATH"] = f"{PROJECT_ROOT / '.venv' / 'bin'}:{env['PATH']}"
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    return subprocess.run(
        ["/bin/sh", "-c", inputs["create"]],
        cwd=PROJECT_ROOT / inputs["dir"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def task_root(record: dict, into: Path) -> Path:
    """What the function's code is (the zip the build published, by the record it printed), and
    nothing else of the app: Lambda extracts that, so the handler is called from there."""
    import boto3

    data = boto3.client("s3").get_object(Bucket=record["bucket"], Key=record["key"], VersionId=record["version"])["Body"].read()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(into)
    return into


def invoke(bundle_dir: Path, environment: dict, path: str) -> dict:
    """The built handler's JSON body for GET `path`, called under node with the function's environment."""
    bundle = next(p for p in (bundle_dir / "index.mjs", bundle_dir / "index.js") if p.is_file())
    return json.loads(handle(bundle, path, environment)["body"])


def catalog(db: Database, schema: str) -> dict[str, list[str]]:
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = %s"
            " ORDER BY table_name, ordinal_position",
            (schema,),
        ).fetchall()
    tables: dict[str, list[str]] = {}
    for table, column in rows:
        tables.setdefault(table, []).append(column)
    return tables


def function_environment(recording: Recording) -> tuple[dict, set[str]]:
    function = recording.by_name("api-function")
    variables = function.inputs["environment"]["variables"]
    secret = {path for path in function.secret_inputs}
    return variables, secret


EXPECTED = {
    "pnpm-monorepo": {
        "tables": {"accounts": ["id", "email", "created_at"], "invoices": ["id", "account_id", "cents", "state", "memo"]},
        "body": {"table": "invoices", "region": "eu-west-1"},
        "site": lambda api: f'data-api="{api.rstrip("/")}"',
    },
    "esm-api": {
        "tables": {"products": ["id", "title", "active"]},
        "body": {
            "prices": {"basic": 5, "pro": 20},
            "zones": ["Europe/Paris", "Asia/Tokyo"],
            "greeting": "hello",
            "signed": True,
        },
        "site": lambda api: f'href="{api.rstrip("/")}/products"',
    },
    "yarn-classic": {
        "tables": {"notes": ["id", "body", "at"]},
        "body": {"table": "notes"},
        "site": lambda api: f'window.API = "{api}"',
    },
    # The gaps of issue 28 §2, one fixture each.
    "no-database": {
        "tables": None,
        "health": ("/healthz", {"ok": True}),
        "body": lambda body: body["database"] == "none" and body["quote"] in ("Ship small.", "Measure twice.", "Leave nothing behind."),
        "site": lambda api: f'data-quotes="{api}"',
    },
    "no-site": {
        "tables": {"entries": ["id", "account", "cents"]},
        "health": ("/status", {"up": True}),
        "body": {"table": "entries", "schema": "app_preview_pr_7"},
        "site": None,
    },
    "old-drizzle": {
        "tables": {"pages": ["id", "title", "mood", "written"]},
        "body": {"table": "pages"},
        "site": lambda api: f'window.NOTES_API = "{api}"',
    },
    "vite-site": {
        "tables": {"items": ["id", "name", "stock"]},
        "body": {"table": "items"},
        "site": lambda api: '<script type="module" crossorigin src="/assets/',
        "script": lambda api: (api, "PREVIEW-PR-7"),
    },
    "external-native": {
        "tables": None,
        "body": {"argon2": True},
        "site": lambda api: f'action="{api}login"',
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("app", sorted(EXPECTED))
def test_a_fixture_app_deploys_through_the_real_steps_by_config_alone(
    app: str, pg_database: Database, cloudflare: CloudflareStub, artifacts_bucket: str, tmp_path: Path  # noqa: F811
):
    expected = EXPECTED[app]
    recording = record_fixture(app, database_url=pg_database.url)
    names = {r.name for r in recording.resources.values()}

    installed = run_command(recording, "app-install")
    assert installed.returncode == 0, installed.stderr

    schema = f"app_{STACK.replace('-', '_')}"
    if expected["tables"] is None:
        assert not {"database-migrate", "database-schema"} & names  # no database: no schema, no migration
    else:
        schema = recording.by_name("database-migrate").inputs["environment"]["DB_SCHEMA"]
        with pg_database.connect() as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        migrated = run_command(recording, "database-migrate", DATABASE_URL=pg_database.url)
        assert migrated.returncode == 0, migrated.stderr
        assert json.loads(migrated.stdout)["outcome"] == "applied"
        assert catalog(pg_database, schema) == expected["tables"]
        again = run_command(recording, "database-migrate", DATABASE_URL=pg_database.url)
        assert again.returncode == 0 and json.loads(again.stdout)["outcome"] == "no_changes", again.stderr

    assert recording.by_name("api-build").inputs["environment"]["ARTIFACTS_BUCKET"] == artifacts_bucket
    built = run_command(recording, "api-build")
    assert built.returncode == 0, built.stderr
    record = json.loads(built.stdout)
    variables, secret_inputs = function_environment(recording)
    environment = {k: v for k, v in variables.items() if isinstance(v, str)}
    environment.update({"APP_VERSION": record["sha256"]})
    if expected["tables"] is not None:
        environment["DB_SCHEMA"] = schema
    else:
        assert not {"DATABASE_URL", "DB_SCHEMA", "DB_POOL_SIZE"} & set(variables)
    if app == "esm-api":
        # The secret reaches the function, and only inside its secret environment input.
        assert "environment" in secret_inputs and environment["SHOP_SIGNING_KEY"] == SIGNING_KEY
    root = task_root(record, tmp_path / "task")
    health_path, health_body = expected.get("health", ("/health", {"status": "ok"}))
    health = invoke(root / "dist", environment, health_path)
    assert {k: health[k] for k in health_body} == health_body, health
    body = invoke(root / "dist", environment, "/")
    assert expected["body"](body) if callable(expected["body"]) else body == expected["body"], body

    if expected["site"] is None:
        assert not {"site-build", "site-deploy", "site-domain", "checks-site-health", "checks-dns"} & names
        return
    site = run_command(recording, "site-build")
    assert site.returncode == 0, site.stderr
    site_inputs = recording.by_name("site-build").inputs["environment"]
    out = PROJECT_ROOT / site_inputs["OUT_DIR"]
    api_url = recording.by_name("api-url").outputs.get("functionUrl") or next(
        v for k, v in site_inputs.items() if k.endswith(("API_ORIGIN", "API_BASE"))
    )
    assert expected["site"](api_url) in (out / "index.html").read_text()
    if "script" in expected:
        script = "".join(path.read_text() for path in out.rglob("*.js"))
        assert all(value in script for value in expected["script"](api_url)), script[:500]

    # The Pages deploy, through the Cloudflare API stand-in: neither fixture carries wrangler, so
    # the step uses the pipeline's own (the tools directory, filled by .ci/setup).
    assert not (FIXTURES / app / "node_modules/.bin/wrangler").exists()
    deployed = run_command(
        recording, "site-deploy", CLOUDFLARE_API_BASE_URL=cloudflare.api_base, CLOUDFLARE_API_TOKEN=TOKEN,
        CLOUDFLARE_ACCOUNT_ID=ACCOUNT, SITE_ARTIFACT=site.stdout.strip(),
    )
    assert deployed.returncode == 0, deployed.stderr
    assert "has no wrangler of its own; using wrangler 4.86.0" in deployed.stderr
    [deployment] = cloudflare.deployments.values()
    assert deployment.branch == "pr-7" and json.loads(deployed.stdout)["id"] == deployment.id
    assert cloudflare.assets[deployment.manifest["/index.html"]] == (out / "index.html").read_bytes()


def test_the_fixtures_config_is_all_they_need():
    for app in EXPECTED:
        recording = record_fixture(app)
        assert phase_order_violations(recording) == [], app
        build = recording.by_name("api-build").inputs
        assert build["dir"] == f"tests/fixtures/apps/{app}/{fixture_config(app)['apiDir']}"
        assert "--format" in build["create"] and build["environment"]["ENTRY"] == fixture_config(app)["apiEntry"]
        if EXPECTED[app]["site"] is None:
            continue
        site = recording.by_name("site-build").inputs["environment"]
        assert site["WEB_DIR"] == fixture_config(app)["webDir"]
        assert sorted(site["BAKED"].split(",")) == sorted(item.split("=")[0] for item in fixture_config(app)["siteOutputs"])
    variables, secret_inputs = function_environment(record_fixture("esm-api"))
    assert variables["SHOP_GREETING"] == "hello"
    assert SIGNING_KEY not in json.dumps({k: v for k, v in variables.items() if k != "SHOP_SIGNING_KEY"})


def test_the_preview_check_is_told_the_apps_own_secrets():
    # A preview's check quotes the body its function answers: it masks the app's secret too.
    check = record_fixture("esm-api").by_name("api-pre-traffic-check").inputs
    assert '--mask-function "$FUNCTION_NAME"' in check["create"] and '--mask-variables "$MASKED_VARIABLES"' in check["create"]
    assert check["environment"]["MASKED_VARIABLES"].split(",") == ["DATABASE_URL", "SHOP_SIGNING_KEY"]
    assert SIGNING_KEY not in json.dumps(check, default=str)


def test_a_secret_environment_in_plain_config_is_refused():
    values = {**committed_values(STACK), **fixture_config("esm-api")}
    config = config_for(STACK, values)
    config["webstack:databaseUrl"] = "postgres://u:pw@127.0.0.1:1/x"
    config["webstack:apiSecretEnvironment"] = json.dumps({"SHOP_SIGNING_KEY": SIGNING_KEY})
    with pytest.raises(Exception) as error:  # noqa: PT011 - the program's own SettingsError, through the engine mock
        run_program(STACK, config, secret_keys=("webstack:databaseUrl",))
    assert "`apiSecretEnvironment` is plain config" in str(error.value)
    assert SIGNING_KEY not in str(error.value)


@pytest.mark.parametrize(
    "line",
    [
        f"  webstack:apiSecretEnvironment: '{{\"SHOP_SIGNING_KEY\": \"{SIGNING_KEY}\"}}'\n",
        f"  webstack:apiSecretEnvironment:\n    SHOP_SIGNING_KEY: {SIGNING_KEY}\n",
    ],
    ids=["json-text", "yaml-mapping"],
)
def test_the_offline_plan_refuses_a_plain_secret_environment_in_the_template(tmp_path, line):
    # The template every PR stack runs on (as --config-file), with the secret committed in plain text.
    shutil.copy(PROJECT_ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / "Pulumi.preview.yaml").write_text((PROJECT_ROOT / "Pulumi.preview.yaml").read_text() + line)
    config = config_for(STACK, committed_values(STACK, tmp_path))
    config["webstack:databaseUrl"] = "postgres://u:pw@127.0.0.1:1/x"
    with pytest.raises(Exception) as error:  # noqa: PT011 - the program's own SettingsError, through the engine mock
        run_program(STACK, config, secret_keys=("webstack:databaseUrl",))
    assert "`apiSecretEnvironment` is plain config" in str(error.value)
    assert SIGNING_KEY not in str(error.value)


@pytest.mark.slow
def test_plain_pg_tables_in_public_name_the_one_edit_before_anything_is_pushed(tmp_path: Path):
    from steps.drizzle_tables import read_tables
    from steps.runtime import PermanentError

    package = tmp_path / "db"
    package.mkdir()
    (package / "node_modules").symlink_to(FIXTURES / "esm-api" / "node_modules", target_is_directory=True)
    (package / "drizzle.config.ts").write_text("export default { dialect: 'postgresql', schema: './tables.ts' };\n")
    (package / "tables.ts").write_text(
        "import { pgTable, serial, text } from 'drizzle-orm/pg-core';\n"
        "export const users = pgTable('users', { id: serial('id').primaryKey(), name: text('name') });\n"
    )
    with pytest.raises(PermanentError) as error:
        read_tables(package, Path("drizzle.config.ts"), "app_preview_pr_7")
    text = str(error.value)
    assert "declares table(s) users in schema public, not in the stack's schema app_preview_pr_7" in text
    assert "pgSchema(process.env.DB_SCHEMA!)" in text and "REFERENCES \"public\"" in text

    # The same tables in the stack's pgSchema are read as drizzle-kit reads them.
    (package / "tables.ts").write_text(
        "import { pgSchema, serial, text } from 'drizzle-orm/pg-core';\n"
        "export const app = pgSchema(process.env.DB_SCHEMA!);\n"
        "export const users = app.table('users', { id: serial('id').primaryKey(), name: text('name') });\n"
    )
    tables = read_tables(package, Path("drizzle.config.ts"), "app_preview_pr_7")["tables"]
    assert [(t["name"], t["schema"], [c["name"] for c in t["columns"]]) for t in tables] == [
        ("users", "app_preview_pr_7", ["id", "name"])
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("source", "fmt", "said"),
    [
        ("export const handler = async () => import.meta.url;\n", "cjs", "[empty-import-meta]"),
        ("export const handler = 42;\n", "cjs", "exports no handler function (handler is number"),
        ("import x from 'pg-native';\nexport const handler = async () => x;\n", "esm",
         "throws when it loads: Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'pg-native'"),
    ],
    ids=["import-meta-in-cjs", "no-handler", "module-not-shipped"],
)
def test_build_lambda_refuses_a_bundle_that_would_break_on_lambda(tmp_path: Path, source: str, fmt: str, said: str):
    api = FIXTURES / "esm-api" / "api"
    entry = tmp_path / "entry.ts"
    entry.write_text(source)
    result = subprocess.run(
        [str(PROJECT_ROOT / ".venv/bin/python"), "-m", "steps.build_lambda", "--app-dir", "..", "--entry", str(entry),
         "--out", str(tmp_path / "dist"), "--format", fmt, *PUBLISH],
        cwd=api, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1 and result.stdout == ""
    failed = next(line for line in result.stderr.splitlines() if line.startswith("FAILED build_lambda"))
    assert said in failed, result.stderr
    assert "npm run build -w @app/api" not in result.stderr


@pytest.mark.slow
def test_a_bundle_that_needs_a_setting_at_load_is_only_a_warning(tmp_path: Path, artifacts_bucket: str):
    # The build has none of the function's settings (some are secret); the pre-traffic check
    # runs the bundle with the real ones, so a throw at load is not the build's to judge.
    entry = tmp_path / "entry.ts"
    entry.write_text("if (!process.env.SHOP_SIGNING_KEY) throw new Error('SHOP_SIGNING_KEY is not set');\n"
                     "export const handler = async () => 1;\n")
    result = subprocess.run(
        [str(PROJECT_ROOT / ".venv/bin/python"), "-m", "steps.build_lambda", "--app-dir", "..", "--entry", str(entry),
         "--out", str(tmp_path / "dist"), "--format", "esm", *PUBLISH],
        cwd=FIXTURES / "esm-api" / "api", env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "throws when it loads without the function's settings: Error: SHOP_SIGNING_KEY is not set" in result.stderr


@pytest.mark.slow
def test_a_file_the_code_reads_but_the_function_does_not_ship_fails_the_build(tmp_path: Path):
    # The ESM fixture without `apiExtraFiles`: data/prices.json sits beside src/ in the checkout but
    # not in what Lambda extracts, so the bundle fails at load there; the build says so.
    result = subprocess.run(
        [str(PROJECT_ROOT / ".venv/bin/python"), "-m", "steps.build_lambda", "--app-dir", "..", "--entry", "src/lambda.ts",
         "--out", str(tmp_path / "dist"), "--format", "esm", "--external", "@shop/tzdata", *PUBLISH],
        cwd=FIXTURES / "esm-api" / "api", env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1
    failed = next(line for line in result.stderr.splitlines() if line.startswith("FAILED build_lambda"))
    assert "throws when it loads" in failed and "ENOENT" in failed and "data/prices.json" in failed, failed
    assert "`apiExtraFiles`" in failed


# --- phases are optional: an app without a database, or without a site (issue 28 §2) -------------


def record_without_database_url(app: str, stack: str = STACK) -> Recording:
    return run_program(stack, config_for(stack, {**committed_values(stack), **fixture_config(app)}))


def children_of(recording: Recording, phase: str) -> list[str]:
    return sorted(r.name for r in recording.resources.values() if recording.phase_of(r.urn) == phase and r.type != PHASE_TYPE)


def test_an_app_without_a_database_declares_none_and_needs_no_database_url():
    recording = record_without_database_url("no-database")  # no databaseUrl at all: not needed
    assert children_of(recording, "database") == []  # the phase is there, empty: the order holds
    assert any(r.type == PHASE_TYPE and r.name == "database" for r in recording.resources.values())
    assert phase_order_violations(recording) == []
    variables = recording.by_name("api-function").inputs["environment"]["variables"]
    assert not {"DATABASE_URL", "DB_SCHEMA", "DB_POOL_SIZE"} & set(variables)
    assert "dbSchema" not in recording.exports and "siteUrl" in recording.exports
    check = recording.by_name("api-pre-traffic-check").inputs
    assert check["environment"]["MASKED_VARIABLES"] == "" and check["environment"]["HEALTH_PATH"] == "/healthz"
    assert recording.by_name("checks-api-health").inputs["environment"]["HEALTH_URL"].endswith(".on.aws/healthz")


def test_an_app_without_a_site_declares_no_site_dns_or_site_check():
    recording = record_fixture("no-site")
    assert children_of(recording, "frontend") == []
    assert phase_order_violations(recording) == []
    names = {r.name for r in recording.resources.values()}
    assert not {"site-domain", "checks-dns", "checks-site-health"} & names and "checks-api-health" in names
    assert not any(r.type.startswith("cloudflare:") for r in recording.resources.values())
    assert "siteUrl" not in recording.exports and "pagesBranch" not in recording.exports and "dbSchema" in recording.exports
    # Its health route reports no version: the check asks only for a 200 there.
    check = recording.by_name("api-pre-traffic-check").inputs
    assert "--expect-version" not in check["create"] and '--health-path "$HEALTH_PATH"' in check["create"]
    assert check["environment"]["HEALTH_PATH"] == "/status" and check["environment"]["APP_VERSION"]


def test_prod_without_a_site_owns_no_pages_project():
    values = {**committed_values("prod"), **fixture_config("no-site")}
    config = config_for("prod", values)
    config["webstack:databaseUrl"] = "postgres://u:pw@127.0.0.1:1/x"
    recording = run_program("prod", config, secret_keys=("webstack:databaseUrl",))
    assert not any(r.type.startswith("cloudflare:") for r in recording.resources.values())
    assert phase_order_violations(recording) == []
    with_site = run_program("prod", {**config, **config_for("prod", fixture_config("pnpm-monorepo"))},
                            secret_keys=("webstack:databaseUrl",))  # fmt: skip
    assert any(r.type == "cloudflare:index/pagesProject:PagesProject" for r in with_site.resources.values())


def test_site_environment_reaches_the_build_unchecked_and_the_export_dir_is_the_apps():
    site = record_fixture("vite-site").by_name("site-build").inputs
    assert site["environment"]["SITE_STACK"] == STACK and site["environment"]["EXPORT_DIR"] == "build"
    assert site["environment"]["BAKED"] == "VITE_API_URL"  # only siteOutputs are checked in the export
    assert '--export-dir "$EXPORT_DIR"' in site["create"]


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        ({"siteEnvironment": ["SITE_STACK={stacks}"]}, "`siteEnvironment` SITE_STACK='{stacks}': the output must be one of"),
        ({"siteEnvironment": ["VITE_API_URL=x"]}, "VITE_API_URL is in both `siteOutputs` and `siteEnvironment`"),
        ({"siteEnvironment": ["OUT_DIR=x"]}, "`siteEnvironment` variable OUT_DIR is one the site build sets itself"),
        ({"siteOutDir": "../dist"}, "`siteOutDir` '../dist' must be a relative path inside the app"),
        ({"siteOutDir": "."}, "`siteOutDir` '.' must be a relative path inside the app"),
        ({"apiHealthPath": "healthz"}, "`apiHealthPath` 'healthz' must be a URL path starting with /"),
        ({"schemaPackage": "nowhere"}, "nowhere/drizzle.config.ts does not exist: set `schemaPackage`/`drizzleConfig` (empty: no database)"),
    ],
)
def test_the_new_keys_refuse_bad_values_by_name(overrides: dict, said: str):
    with pytest.raises(Exception) as error:  # noqa: PT011 - the program's own SettingsError, through the engine mock
        record_fixture("vite-site", **overrides)
    assert said in str(error.value)
