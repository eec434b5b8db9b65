"""steps.build_site: the real `next build` of examples/app/apps/web with stack outputs baked in."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from components.pipeline import AppSources
from core.source_hash import output_hash
from steps.build_site import missing_values, replace_dir
from tests.support.moto import ARTIFACTS_BUCKET, artifacts_bucket, aws_env, moto_server  # noqa: F401 - fixtures
from tests.support.steps_env import steps_env  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("steps_env")

REPO = Path(__file__).resolve().parents[1]
APP = "examples/app"
API_URL = "https://k3x7q2bz9d4m.lambda-url.us-east-1.on.aws/"


BAKED = "NEXT_PUBLIC_API_URL,NEXT_PUBLIC_STACK"
PREFIX = "previews/preview-pr-7"
PUBLISH = ("--artifacts-bucket", ARTIFACTS_BUCKET, "--artifacts-prefix", PREFIX)


def build_site(out: Path, *flags: str, baked: str = BAKED, **env: str) -> subprocess.CompletedProcess[str]:
    child = {k: v for k, v in os.environ.items() if not k.startswith("NEXT_PUBLIC_")}
    return subprocess.run(
        [sys.executable, "-m", "steps.build_site", "--app-dir", APP, "--out", str(out), "--baked", baked, *PUBLISH, *flags],
        cwd=REPO,
        env={**child, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def contents(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_next_build_bakes_the_outputs_in_and_is_reproducible(tmp_path, artifacts_bucket):
    out = tmp_path / ".build/preview-pr-7/site"
    timings = []
    results = []
    for _ in range(2):
        started = time.monotonic()
        results.append(build_site(out, NEXT_PUBLIC_API_URL=API_URL, NEXT_PUBLIC_STACK="preview-pr-7"))
        timings.append(time.monotonic() - started)
        assert results[-1].returncode == 0, results[-1].stderr
        if len(results) == 1:
            first = contents(out)
    digest = results[0].stdout
    # One JSON line: the deploy's trigger and what it deploys (the export, published by hash).
    record = json.loads(digest)
    assert digest.endswith("}\n") and digest.count("\n") == 1
    assert record["sha256"] == output_hash(out)
    assert record["bucket"] == ARTIFACTS_BUCKET and record["key"] == f"{PREFIX}/site/{record['object_sha256']}.tar.gz"
    import boto3

    published = boto3.client("s3").get_object(Bucket=ARTIFACTS_BUCKET, Key=record["key"], VersionId=record["version"])
    with tarfile.open(fileobj=io.BytesIO(published["Body"].read()), mode="r:gz") as tarball:
        shipped = {m.name: tarball.extractfile(m).read() for m in tarball.getmembers()}
    assert shipped == contents(out)
    html = (out / "index.html").read_text()
    assert API_URL in html and "preview-pr-7" in html
    scripts = "".join(p.read_text() for p in out.rglob("*.js"))
    assert API_URL in scripts  # inlined into the client bundle that calls the API
    # Same inputs, same bytes: the deploy Command is not replaced by a rebuild.
    assert results[1].stdout == digest
    assert contents(out) == first
    assert not [p for p in out.parent.iterdir() if p.name != "site"]  # no staging dirs left
    print(f"next build: {timings[0]:.1f}s, then {timings[1]:.1f}s")

    other = "https://zz99other000.lambda-url.us-east-1.on.aws/"
    changed = build_site(out, NEXT_PUBLIC_API_URL=other, NEXT_PUBLIC_STACK="preview-pr-7")
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout != digest
    text = (out / "index.html").read_text()
    assert other in text and API_URL not in text


def test_every_baked_variable_is_required_before_anything_builds(tmp_path):
    for env, why in (
        ({}, "NEXT_PUBLIC_API_URL, NEXT_PUBLIC_STACK are not set"),
        ({"NEXT_PUBLIC_API_URL": API_URL}, "NEXT_PUBLIC_STACK is not set"),
    ):
        started = time.monotonic()
        result = build_site(tmp_path / "site", **env)
        assert result.returncode == 1
        assert why in result.stderr and "site build: running" not in result.stderr
        assert time.monotonic() - started < 10
        assert not (tmp_path / "site").exists()


def test_a_wrong_web_dir_names_the_setting(tmp_path):
    result = build_site(tmp_path / "site", "--web-dir", "apps/website", NEXT_PUBLIC_API_URL=API_URL, NEXT_PUBLIC_STACK="x")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()
    assert any("--web-dir apps/website has no package.json" in line and "set `webDir`" in line for line in last), result.stderr
    assert "--app-dir" not in result.stderr.split("--web-dir apps/website")[1].split("\n")[0]


def test_an_absent_value_names_the_variable_and_the_file_that_should_read_it(tmp_path):
    from steps.build_site import absence_problem

    web = tmp_path / "web"
    (web / "src").mkdir(parents=True)
    (web / "node_modules").mkdir()
    (web / "src/api.ts").write_text("export const base = process.env.VITE_API_URL;\n")
    (web / "node_modules/x.js").write_text("process.env.VITE_OTHER")
    read = absence_problem(web, "VITE_API_URL")
    assert "VITE_API_URL is read in src/api.ts" in read and "literal process.env.VITE_API_URL" in read
    unread = absence_problem(web, "VITE_OTHER")
    assert f"no file under {web} reads VITE_OTHER" in unread and "`siteOutputs`" in unread


def test_missing_values_finds_values_not_baked_in(tmp_path):
    (tmp_path / "_next").mkdir()
    (tmp_path / "index.html").write_text("<dd>a&amp;b</dd>")
    (tmp_path / "_next/x.js").write_text('e="https://api/"')
    public = {"NEXT_PUBLIC_API_URL": "https://api/", "NEXT_PUBLIC_A": "a&b", "NEXT_PUBLIC_STACK": "prod"}
    assert missing_values(tmp_path, public) == ["NEXT_PUBLIC_STACK"]


def test_replace_dir_swaps_the_whole_tree(tmp_path):
    new = tmp_path / "new"
    new.mkdir()
    (new / "index.html").write_text("new")
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.html").write_text("old")
    replace_dir(new, out)
    assert contents(out) == {"index.html": b"new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "out"]


def test_the_build_trigger_covers_web_schemas_and_lockfile_only(tmp_path):
    app = tmp_path / "app"
    for part in ("apps/web/app", "apps/api/src", "packages/shared-schemas/src"):
        (app / part).mkdir(parents=True)
    for name in ("package.json", "package-lock.json", "apps/web/app/page.tsx", "apps/api/src/handler.ts",
                 "packages/shared-schemas/src/types.ts"):
        (app / name).write_text("v1")

    def web() -> str:
        shape = SimpleNamespace(
            schema_package="packages/shared-schemas", api_dir="apps/api", web_dir="apps/web", has_database=True, has_site=True
        )
        return AppSources.of(SimpleNamespace(app_path=app, app=shape)).web

    before = web()
    (app / "apps/api/src/handler.ts").write_text("v2")
    (app / "apps/web/out").mkdir()
    (app / "apps/web/out/index.html").write_text("a build output")
    assert web() == before
    for name in ("apps/web/app/page.tsx", "packages/shared-schemas/src/types.ts", "package-lock.json"):
        (app / name).write_text("v2")
        assert web() != before, name
        before = web()
