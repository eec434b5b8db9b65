"""The contracts that forced source edits are the pipeline's business now (issue 28 §2), step by step.

- The API bundle uses the app's esbuild only when the app declares one; else the pipeline's own.
- `apiExternal` finds a module installed for any package of the workspace (pnpm links a dependency
  only into the packages that declare it) and ships its installed optional dependencies (the
  native part of @node-rs/argon2), warning that the native part is not Lambda's CPU.
- The site's export directory is a setting (`--export-dir`: Vite's `build.outDir`), and only the
  variables the stack bakes in are checked in the export.
- The pre-traffic check takes the app's health route and may skip the version (an app that reports
  none).

Real esbuild, pnpm, node and Vite on the fixture apps under tests/fixtures/apps (installed by
.ci/setup).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from components.settings import PROJECT_ROOT
from core.versions import ESBUILD_VERSION
from steps.build_lambda import declares, native_problem
from steps.promote import CheckFailed, health_event, judge_invoke
from tests.support.lambda_bundle import handle
from tests.support.moto import ARTIFACTS_BUCKET, artifacts_bucket, aws_env, moto_server  # noqa: F401 - fixtures
from tests.support.steps_env import steps_env  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("steps_env")

FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "apps"
# The builds publish what they built to the artifacts bucket (a moto one here).
PUBLISH = ("--artifacts-bucket", ARTIFACTS_BUCKET, "--artifacts-prefix", "previews/preview-pr-3")


def step(module: str, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"steps.{module}", *args],
        cwd=cwd, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **env}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def call(bundle: Path, path: str, **environment: str) -> dict:
    """The bundle's handler called under node with a function-URL event for GET `path`."""
    return handle(bundle, path, environment)


@pytest.mark.slow
def test_an_app_without_esbuild_is_bundled_with_the_pipelines_own(tmp_path: Path, artifacts_bucket: str):
    api = FIXTURES / "no-database" / "api"
    assert not declares(FIXTURES / "no-database", "esbuild") and not (FIXTURES / "no-database/node_modules/.bin/esbuild").exists()
    built = step("build_lambda", "--app-dir", "..", "--entry", "src/handler.ts", "--out", str(tmp_path / "dist"), *PUBLISH, cwd=api)
    assert built.returncode == 0, built.stderr
    assert f"declares no esbuild; using the pipeline's esbuild {ESBUILD_VERSION}" in built.stderr
    answer = call(tmp_path / "dist" / "index.js", "/healthz", APP_VERSION="v1")
    assert answer["statusCode"] == 200 and json.loads(answer["body"]) == {"ok": True, "version": "v1"}


def test_an_esbuild_a_dependency_brought_is_not_the_apps(tmp_path: Path):
    # drizzle-kit 0.22 depends on esbuild 0.19: node_modules/.bin/esbuild exists, the app never chose it.
    (tmp_path / "package.json").write_text(json.dumps({"name": "a", "devDependencies": {"drizzle-kit": "0.22.8"}}))
    assert not declares(tmp_path, "esbuild")
    (tmp_path / "package.json").write_text(json.dumps({"name": "a", "devDependencies": {"esbuild": "0.27.3"}}))
    assert declares(tmp_path, "esbuild")


@pytest.mark.slow
def test_an_external_module_of_a_workspace_package_ships_with_its_native_part(tmp_path: Path, artifacts_bucket: str):
    app = FIXTURES / "external-native"
    api = app / "services" / "api"
    # pnpm linked @node-rs/argon2 for packages/passwords only: node would not find it from the API.
    assert not (api / "node_modules" / "@node-rs").exists() and not (app / "node_modules" / "@node-rs").exists()
    assert (app / "packages/passwords/node_modules/@node-rs/argon2/package.json").is_file()
    out = tmp_path / "dist"
    built = step("build_lambda", "--app-dir", "../..", "--entry", "src/main.ts", "--out", str(out),
                 "--external", "@node-rs/argon2", *PUBLISH, cwd=api)  # fmt: skip
    assert built.returncode == 0, built.stderr
    shipped = sorted(p.name for p in (out / "node_modules" / "@node-rs").iterdir())
    native = [name for name in shipped if name != "argon2"]
    assert "argon2" in shipped and native, shipped  # the optional, per-platform package came along
    assert f"@node-rs/{native[0]} is native code for" in built.stderr and "but the function runs on arm64" in built.stderr
    # What Lambda extracts (dist/ alone) hashes and verifies with the native addon.
    answer = call(out / "index.js", "/")
    assert json.loads(answer["body"]) == {"argon2": True}


def test_native_code_for_another_cpu_is_named(tmp_path: Path):
    (tmp_path / "package.json").write_text(json.dumps({"name": "x-linux-x64-gnu", "cpu": ["x64"], "os": ["linux"]}))
    assert native_problem(tmp_path, "x-linux-x64-gnu") == "x-linux-x64-gnu is native code for x64"
    (tmp_path / "package.json").write_text(json.dumps({"name": "x-linux-arm64-gnu", "cpu": ["arm64"]}))
    assert native_problem(tmp_path, "x-linux-arm64-gnu") is None


@pytest.mark.slow
def test_a_vite_site_exports_into_its_own_directory_and_build_time_variables_are_not_checked(tmp_path: Path, artifacts_bucket: str):
    app = FIXTURES / "vite-site"
    env = {"VITE_API_URL": "https://api.example.test/", "SITE_STACK": "preview-pr-3"}
    out = tmp_path / "site"
    built = step("build_site", "--app-dir", str(app), "--web-dir", "web", "--export-dir", "build", "--out", str(out),
                 "--baked", "VITE_API_URL", *PUBLISH, cwd=PROJECT_ROOT, **env)  # fmt: skip
    assert built.returncode == 0, built.stderr
    script = "".join(p.read_text() for p in (out / "assets").glob("*.js"))
    assert "https://api.example.test/" in script and "PREVIEW-PR-3" in script
    # The same variable checked as baked fails: its value as given is nowhere in the export.
    checked = step("build_site", "--app-dir", str(app), "--web-dir", "web", "--export-dir", "build", "--out", str(out),
                   "--baked", "VITE_API_URL,SITE_STACK", *PUBLISH, cwd=PROJECT_ROOT, **env)  # fmt: skip
    assert checked.returncode == 1
    assert "does not contain the value of SITE_STACK; SITE_STACK is read in vite.config.js" in checked.stderr
    assert "belongs in `siteEnvironment`" in checked.stderr
    # Without the setting, the step looks where Next.js writes and says which key to set.
    default = step("build_site", "--app-dir", str(app), "--web-dir", "web", "--out", str(out), "--baked", "VITE_API_URL",
                   *PUBLISH, cwd=PROJECT_ROOT, **env)  # fmt: skip
    assert default.returncode == 1 and "web/out/index.html does not exist" in default.stderr
    assert "set `siteOutDir`" in default.stderr


def test_the_export_directory_stays_inside_the_site():
    for bad in ("../elsewhere", "/tmp/x", "."):
        result = step("build_site", "--app-dir", ".", "--out", "x", "--export-dir", bad, cwd=PROJECT_ROOT)
        assert result.returncode == 2 and "--export-dir" in result.stderr and "inside the site's package" in result.stderr


def test_the_pre_traffic_check_asks_the_apps_health_route_and_may_skip_the_version():
    event = health_event("r", now=1.0, path="/status")
    assert event["rawPath"] == "/status" and event["requestContext"]["http"]["path"] == "/status"
    answer = {"ExecutedVersion": "7", "Payload": json.dumps({"statusCode": 200, "body": json.dumps({"up": True})}).encode()}
    assert judge_invoke("api", "7", None, answer, "/status")["status"] == 200
    with pytest.raises(CheckFailed, match="reports no version on /status, expected v9.*`apiHealthVersion` false"):
        judge_invoke("api", "7", "v9", answer, "/status")
    broken = {"ExecutedVersion": "7", "Payload": json.dumps({"statusCode": 404, "body": "not found"}).encode()}
    with pytest.raises(CheckFailed, match="answered GET /status with status 404"):
        judge_invoke("api", "7", None, broken, "/status")


def test_a_health_path_must_be_a_path():
    result = step("promote", "check", "--url", "http://127.0.0.1:1/", "--health-path", "status", cwd=PROJECT_ROOT)
    assert result.returncode == 2 and "--health-path" in result.stderr and "a URL path starting with /" in result.stderr
