"""steps.build_lambda: the real esbuild bundle of examples/app, as the program's build Command runs it.

Same sources -> the same bytes (so an unchanged push publishes no new Lambda version); one changed
source line -> another hash; stdout is the record of the published zip, whose `sha256` is the hash
of exactly what Lambda extracts (the function's APP_VERSION); the bundle runs under plain `node`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import boto3

import pytest

from core.source_hash import files_hash
from steps.build_lambda import clear_out_dir, esbuild_argv
from steps.runtime import PermanentError
from tests.support.lambda_bundle import API, APP, ENTRY, PREFIX, build
from tests.support.moto import ARTIFACTS_BUCKET, aws_environment, moto_server  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("steps_env")

DIST = APP / API / "dist"
MARKER = APP / "node_modules" / ".webstack-install.json"


def _copy_app(target: Path) -> Path:
    """The app's sources at another path, sharing the installed node_modules through a symlink."""
    shutil.copytree(APP, target, ignore=shutil.ignore_patterns("node_modules", "dist", ".next", "out"), symlinks=True)
    (target / "node_modules").symlink_to(APP / "node_modules", target_is_directory=True)
    return target


# ----------------------------------------------------------------------------------- unit


def test_esbuild_flags():
    argv = esbuild_argv(Path("/x/esbuild"), Path("src/handler.ts"), Path("dist"))
    assert argv[:2] == ["/x/esbuild", "src/handler.ts"]
    for flag in ("--bundle", "--platform=node", "--target=node20", "--format=cjs", "--minify", "--sourcemap",
                 "--external:pg-native", "--outfile=dist/index.js"):
        assert flag in argv


def test_clear_out_dir_empties_it_and_refuses_source_directories(tmp_path):
    out = tmp_path / "app" / "dist"
    (out / "old").mkdir(parents=True)
    (out / "old" / "stale.js").write_text("x")
    entry = tmp_path / "app" / "src" / "handler.ts"
    entry.parent.mkdir()
    entry.write_text("export {}")

    clear_out_dir(out, keep=[entry])
    assert out.is_dir() and list(out.iterdir()) == []

    for wrong in (tmp_path / "app", tmp_path / "app" / "src", tmp_path):
        with pytest.raises(PermanentError, match="refusing to clear --out"):
            clear_out_dir(wrong, keep=[entry])
    assert entry.exists()


# ------------------------------------------------------------------------------ real build


@pytest.fixture(scope="module")
def first_build(moto_server):
    """The real build in examples/app (installs the workspace first if its marker is stale)."""
    DIST.mkdir(parents=True, exist_ok=True)
    (DIST / "stale-from-an-old-build.js").write_text("old")
    result = build(aws=moto_server)
    assert result.returncode == 0, result.stderr
    return result, (DIST / "index.js").read_bytes(), (DIST / "index.js.map").read_bytes()


@pytest.mark.slow
def test_same_sources_give_the_same_bytes(first_build, moto_server):
    result, bundle, source_map = first_build
    assert sorted(p.name for p in DIST.iterdir()) == ["index.js", "index.js.map"]  # cleared first

    again = build(aws=moto_server)

    assert again.returncode == 0, again.stderr
    assert (DIST / "index.js").read_bytes() == bundle
    assert (DIST / "index.js.map").read_bytes() == source_map
    assert again.stdout == result.stdout


def _shipped_hash(dist: Path) -> str:
    """The hash of what Lambda extracts from the archive (`dist/**`: the bundle and its map), taken
    here from the files by their archive names: one format for every APP_VERSION."""
    files = sorted(p for p in dist.rglob("*") if p.is_file())
    return files_hash(dist.parent, files)


def record(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.stdout.count("\n") == 1, f"stdout is {result.stdout!r}"  # one line
    return json.loads(result.stdout)


@pytest.mark.slow
def test_stdout_is_the_record_of_the_published_zip(first_build, moto_server):
    """What the function's code is: the zip of exactly what Lambda extracts, in the artifacts
    bucket under its content hash and the stack's prefix, the object version pinned."""
    result, bundle, source_map = first_build
    published = record(result)
    assert published["sha256"] == _shipped_hash(DIST)  # APP_VERSION
    assert published["key"] == f"{PREFIX}/api/{published['object_sha256']}.zip"
    env = aws_environment(moto_server)
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name=env["AWS_REGION"],
                      aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
    data = s3.get_object(Bucket=ARTIFACTS_BUCKET, Key=published["key"], VersionId=published["version"])["Body"].read()
    assert hashlib.sha256(data).hexdigest() == published["object_sha256"]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert {i.filename: archive.read(i) for i in archive.infolist()} == {
            "dist/index.js": bundle, "dist/index.js.map": source_map
        }


@pytest.mark.slow
def test_bundle_is_self_contained_minified_cjs_with_source_map(first_build):
    _, bundle, source_map = first_build
    text = bundle.decode()
    assert text.rstrip().endswith("//# sourceMappingURL=index.js.map")
    assert len(text.splitlines()) < 50  # minified
    # No machine-specific path may end up in the bundle or its map.
    assert str(APP) not in text and str(APP).encode() not in source_map
    sources = json.loads(source_map)["sources"]
    assert "../src/handler.ts" in sources
    assert not [s for s in sources if s.startswith("/")]
    # Bundled, not required at run time (only Node built-ins and the optional pg-native stay).
    required = set(re.findall(r'require\("([^"]+)"\)', text))
    builtins = json.loads(subprocess.run(
        ["node", "-p", "JSON.stringify(require('module').builtinModules)"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout)
    assert "crypto" in required  # the regex does see the bundle's requires
    assert {m.removeprefix("node:") for m in required} - set(builtins) == {"pg-native"}


@pytest.mark.slow
def test_changed_source_line_changes_the_hash(first_build, tmp_path, moto_server):
    result, _, _ = first_build
    assert MARKER.exists(), "the real build should have left the install marker the copy relies on"
    copy = _copy_app(tmp_path / "app")

    same = build(copy, aws=moto_server)
    assert same.returncode == 0, same.stderr
    assert "npm ci skipped" in same.stderr
    # Another checkout path, the same sources: the same bundle (no absolute path in it). Not the
    # same hash here: the copy's node_modules is a link to the original, which esbuild resolves,
    # so its source map names the dependencies by another relative path (a real checkout has its
    # own node_modules and the same map).
    assert (copy / API / "dist" / "index.js").read_bytes() == (DIST / "index.js").read_bytes()
    assert record(same)["sha256"] == _shipped_hash(copy / API / "dist")

    handler = copy / API / ENTRY
    source = handler.read_text()
    assert "cooldownDuration: 30_000" in source
    handler.write_text(source.replace("cooldownDuration: 30_000", "cooldownDuration: 31_000"))

    changed = build(copy, aws=moto_server)
    assert changed.returncode == 0, changed.stderr
    assert record(changed)["sha256"] != record(same)["sha256"]
    assert record(changed)["key"] != record(same)["key"]
    assert record(changed)["sha256"] == _shipped_hash(copy / API / "dist")


@pytest.mark.slow
def test_a_syntax_error_fails_the_step_clearly(first_build, tmp_path, moto_server):
    copy = _copy_app(tmp_path / "app")
    handler = copy / API / ENTRY
    handler.write_text(handler.read_text() + "\nexport const broken = ;\n")

    result = build(copy, aws=moto_server)

    assert result.returncode == 1
    assert result.stdout == ""
    failed = [line for line in result.stderr.splitlines() if line.startswith("FAILED build_lambda")]
    assert failed and "esbuild exited with 1" in failed[0], result.stderr


@pytest.mark.slow
def test_bundle_runs_under_plain_node(first_build):
    event = {"rawPath": "/health", "headers": {}, "requestContext": {"http": {"method": "GET"}}}
    script = (
        "const {handler} = require(process.argv[1]);"
        "handler(JSON.parse(process.argv[2])).then(r => process.stdout.write(JSON.stringify(r)));"
    )
    result = subprocess.run(
        ["node", "-e", script, str(DIST / "index.js"), json.dumps(event)],
        env={**os.environ, "APP_VERSION": "abc123", "DB_SCHEMA": "app", "NODE_OPTIONS": "--enable-source-maps"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"status": "ok", "version": "abc123", "schema": "app"}
