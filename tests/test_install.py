"""steps.install: `npm ci` once per lockfile, serialized between parallel callers.

Slow tests run the real npm on a tiny workspace (two workspace packages, no registry
dependency: nothing is downloaded) written into tmp_path.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from steps.install import MARKER, ensure_installed, explain_npm_failure, npm_failure_is_transient, read_marker
from steps.runtime import PermanentError
from tests.support.steps_env import steps_env  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("steps_env")

REPO = Path(__file__).resolve().parents[1]

PACKAGE_JSON = {"name": "tiny", "version": "1.0.0", "private": True, "workspaces": ["packages/*"]}
LOCKFILE = {
    "name": "tiny",
    "version": "1.0.0",
    "lockfileVersion": 3,
    "requires": True,
    "packages": {
        "": {"name": "tiny", "version": "1.0.0", "workspaces": ["packages/*"]},
        "node_modules/@tiny/a": {"resolved": "packages/a", "link": True},
        "node_modules/@tiny/b": {"resolved": "packages/b", "link": True},
        "packages/a": {"name": "@tiny/a", "version": "1.0.0"},
        "packages/b": {"name": "@tiny/b", "version": "1.0.0", "dependencies": {"@tiny/a": "1.0.0"}},
    },
}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    (app / "packages" / "a").mkdir(parents=True)
    (app / "packages" / "b").mkdir(parents=True)
    (app / "package.json").write_text(json.dumps(PACKAGE_JSON))
    (app / "package-lock.json").write_text(json.dumps(LOCKFILE, indent=2) + "\n")
    (app / "packages" / "a" / "package.json").write_text(json.dumps({"name": "@tiny/a", "version": "1.0.0"}))
    (app / "packages" / "b" / "package.json").write_text(
        json.dumps({"name": "@tiny/b", "version": "1.0.0", "dependencies": {"@tiny/a": "1.0.0"}})
    )
    return app


def run_install(app: Path, *args: str, **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "steps.install", "--app-dir", str(app), *args],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        **popen,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, dict | None, str]:
    out, err = proc.communicate(timeout=300)
    result = json.loads(out.strip().splitlines()[-1]) if proc.returncode == 0 else None
    return proc.returncode, result, err


# Lines npm 11 prints for network and registry failures (and for failures that are not).
@pytest.mark.parametrize(
    ("output", "transient"),
    [
        ("npm error code ECONNRESET\nnpm error network aborted\n", True),
        ("npm error code ETIMEDOUT\nnpm error errno ETIMEDOUT\n", True),
        ("npm error code EAI_AGAIN\nnpm error syscall getaddrinfo\n", True),
        ("npm error code E503\nnpm error 503 Service Unavailable - GET https://registry.npmjs.org/x\n", True),
        ("npm error code E429\nnpm error 429 Too Many Requests\n", True),
        ("npm ERR! network request to https://registry.npmjs.org/x failed\n", True),
        ("npm error code E404\nnpm error 404 Not Found - GET https://registry.npmjs.org/nope\n", False),
        ("npm error code EUSAGE\nnpm error `npm ci` can only install packages when your package.json and "
         "package-lock.json are in sync.\n", False),
        ("npm error code ELIFECYCLE\nnpm error command failed\n", False),
        ("npm error code E401\nnpm error Unable to authenticate\n", False),
    ],
)
def test_npm_failure_classification(output, transient):
    assert npm_failure_is_transient(output) is transient


def test_missing_lockfile_is_permanent(workspace: Path):
    (workspace / "package-lock.json").unlink()
    with pytest.raises(PermanentError, match="has no lockfile \\(package-lock.json, pnpm-lock.yaml, yarn.lock\\)"):
        ensure_installed(workspace)


def test_missing_app_dir_fails_the_step(tmp_path: Path):
    proc = run_install(tmp_path / "nope")
    code, _, err = finish(proc)
    assert code == 1 and "FAILED install:" in err and "has no package.json" in err


@pytest.mark.slow
def test_installs_once_per_lockfile(workspace: Path):
    assert ensure_installed(workspace) is True
    assert (workspace / "node_modules" / "@tiny" / "b").resolve() == (workspace / "packages" / "b").resolve()
    marker = read_marker(workspace)
    assert marker and len(marker["lockfile_sha256"]) == 64 and marker["node"].startswith("v")
    assert ensure_installed(workspace) is False  # the skip path

    code, result, err = finish(run_install(workspace))
    assert code == 0 and result["installed"] is False and "npm ci skipped" in err

    # A changed lockfile installs again (npm ci removes node_modules, marker included).
    lock = json.loads((workspace / "package-lock.json").read_text())
    lock["packages"][""]["description"] = "changed"
    (workspace / "package-lock.json").write_text(json.dumps(lock, indent=2) + "\n")
    code, result, err = finish(run_install(workspace))
    assert code == 0 and result["installed"] is True and "npm ci: running" in err
    assert read_marker(workspace)["lockfile_sha256"] == result["lockfile_sha256"] != marker["lockfile_sha256"]


@pytest.mark.slow
def test_failed_npm_ci_leaves_no_marker_and_is_not_retried(workspace: Path):
    # package.json out of sync with the lockfile: npm ci refuses (EUSAGE), a permanent failure.
    package = json.loads((workspace / "package.json").read_text())
    package["dependencies"] = {"left-pad": "1.3.0"}
    (workspace / "package.json").write_text(json.dumps(package))
    code, _, err = finish(run_install(workspace))
    assert code == 1
    assert "FAILED install: npm ci in" in err and "in sync" in err
    assert err.count("npm ci: running") == 1
    assert not (workspace / "node_modules" / MARKER).exists()


@pytest.mark.slow
def test_a_second_caller_waits_for_the_first(workspace: Path):
    # Hold the lock the way a running install does; a second caller must wait, then install once.
    fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY)
    lines: list[str] = []
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        proc = run_install(workspace)
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
        reader.start()
        # Until it says it waits (polled, not a fixed sleep): it must not finish or install meanwhile.
        deadline = time.monotonic() + 120
        while not any("waiting for it" in line for line in lines):
            assert proc.poll() is None, "the install finished while another process held the lock:\n" + "".join(lines)
            assert time.monotonic() < deadline, "the install never said it waits for the lock"
            time.sleep(0.05)
        assert proc.poll() is None and not (workspace / "node_modules").exists()
    finally:
        os.close(fd)
    out = proc.stdout.read()
    assert proc.wait(timeout=300) == 0
    reader.join(timeout=60)
    assert json.loads(out.strip().splitlines()[-1])["installed"] is True, "".join(lines)


@pytest.mark.slow
def test_parallel_callers_run_npm_ci_once(workspace: Path):
    procs = [run_install(workspace) for _ in range(3)]
    outcomes = [finish(p) for p in procs]
    assert [code for code, _, _ in outcomes] == [0, 0, 0]
    assert sorted(result["installed"] for _, result, _ in outcomes) == [False, False, True]
    assert sum(err.count("npm ci: running") for _, _, err in outcomes) == 1


def _tarball(tmp: Path) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    data = json.dumps({"name": "tinydep", "version": "1.0.0"}).encode()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("package/package.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.slow
def test_registry_5xx_is_retried(workspace: Path, tmp_path: Path):
    import base64
    import hashlib

    from tests.support.http_stub import Reply, StubServer

    tgz = _tarball(tmp_path)
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()
    path = "/tinydep/-/tinydep-1.0.0.tgz"
    with StubServer() as registry:
        registry.route("GET", path, Reply(503, body="unavailable"), Reply(200, body=tgz, headers={"Content-Type": "application/octet-stream"}))
        package = json.loads((workspace / "package.json").read_text())
        package["dependencies"] = {"tinydep": "1.0.0"}
        (workspace / "package.json").write_text(json.dumps(package))
        lock = json.loads((workspace / "package-lock.json").read_text())
        lock["packages"][""]["dependencies"] = {"tinydep": "1.0.0"}
        lock["packages"]["node_modules/tinydep"] = {"version": "1.0.0", "resolved": registry.url + path, "integrity": integrity}
        (workspace / "package-lock.json").write_text(json.dumps(lock, indent=2) + "\n")
        env = {
            **os.environ,
            "npm_config_cache": str(tmp_path / "npm-cache"),  # nothing cached: npm must fetch
            "npm_config_fetch_retries": "0",  # npm's own retries would hide ours
            "npm_config_registry": registry.url + "/",
        }
        code, result, err = finish(run_install(workspace, env=env))
        assert [r.path for r in registry.requests] == [path, path]
    assert code == 0, err
    assert result["installed"] is True
    assert "npm ci: attempt 1 of 3 failed" in err and "E503" in err
    assert json.loads((workspace / "node_modules" / "tinydep" / "package.json").read_text())["name"] == "tinydep"


# --- the cause of a failed install, not npm's closing lines ---------------------------------------

# npm 11.19 `npm ci`, package.json gained fx-extra (peer fx-host ^2) after the lockfile was made.
ERESOLVE = """npm error code ERESOLVE
npm error ERESOLVE unable to resolve dependency tree
npm error
npm error While resolving: s@0.0.0
npm error Found: fx-host@1.0.0
npm error node_modules/fx-host
npm error   fx-host@"file:vendor/fx-host-1.0.0.tgz" from the root project
npm error
npm error Could not resolve dependency:
npm error peer fx-host@"^2.0.0" from fx-extra@1.0.0
npm error node_modules/fx-extra
npm error   fx-extra@"file:vendor/fx-plugin-1.0.0.tgz" from the root project
npm error
npm error Fix the upstream dependency conflict, or retry this command with --force or --legacy-peer-deps to accept an incorrect (and potentially broken) dependency resolution.
npm error
npm error
npm error For a full report see:
npm error /root/.npm/_logs/2026-11-30T01_27_45_778Z-eresolve-report.txt
npm error A complete log of this run can be found in: /root/.npm/_logs/2026-11-30T01_27_45_778Z-debug-0.log
"""


def test_eresolve_names_the_peer_conflict_and_its_fix():
    failure = explain_npm_failure(ERESOLVE)
    assert failure.cause == "ERESOLVE: fx-extra@1.0.0 requires peer fx-host@^2.0.0, but fx-host@1.0.0 is in the tree"
    assert "a fx-host that satisfies ^2.0.0, or a version of fx-extra whose peer range accepts fx-host@1.0.0" in failure.hint
    assert "legacy-peer-deps=true in the workspace root's .npmrc" in failure.hint and "npm ci" in failure.hint
    assert "_logs" not in failure.cause + failure.hint


def test_other_npm_failures_keep_their_own_message():
    failure = explain_npm_failure(
        "npm error code E404\nnpm error 404 Not Found - GET https://registry.npmjs.org/nope - Not found\n"
        "npm error A complete log of this run can be found in: /root/.npm/_logs/x-debug-0.log\n"
    )
    assert failure.cause == "E404: 404 Not Found - GET https://registry.npmjs.org/nope - Not found"
    assert "legacy-peer-deps" not in failure.hint


def _pack(source: Path, name: str, version: str, **fields: object) -> str:
    package = source / name
    package.mkdir(parents=True)
    (package / "package.json").write_text(json.dumps({"name": name, "version": version, **fields}))
    subprocess.run(["npm", "pack", "--silent", "--pack-destination", str(source)], cwd=package, check=True,
                   capture_output=True, timeout=120)
    return f"file:vendor/{name}-{version}.tgz"


@pytest.fixture
def peer_conflict_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict]:
    """An app whose lockfile predates a dependency with a peer conflict: local tarballs, no registry."""
    # Offline: npm must never reach for the registry (it would, to re-resolve a conflict).
    monkeypatch.setenv("npm_config_offline", "true")
    app = tmp_path / "app"
    vendor = app / "vendor"
    vendor.mkdir(parents=True)
    host = _pack(vendor, "fx-host", "1.0.0")
    plugin = _pack(vendor, "fx-plugin", "1.0.0", peerDependencies={"fx-host": "^2.0.0"})
    package = {"name": "peer-app", "version": "0.0.0", "private": True, "dependencies": {"fx-host": host}}
    (app / "package.json").write_text(json.dumps(package))
    subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=app, check=True, capture_output=True, timeout=120)
    package["dependencies"]["fx-plugin"] = plugin
    (app / "package.json").write_text(json.dumps(package))
    return app, package


@pytest.mark.slow
def test_npm_ci_eresolve_is_the_failure_line(peer_conflict_app):
    app, _ = peer_conflict_app
    code, _, err = finish(run_install(app))
    assert code == 1
    line = next(line for line in err.splitlines() if line.startswith("FAILED install:"))
    assert "ERESOLVE: fx-plugin@1.0.0 requires peer fx-host@^2.0.0, but fx-host@1.0.0 is in the tree" in line
    assert "For a full report" not in line and "_logs" not in line
    assert "legacy-peer-deps=true in the workspace root's .npmrc" in line
    assert "run npm install locally and commit the lockfile" not in line
    assert err.count("npm ci: running") == 1


@pytest.mark.slow
def test_legacy_peer_deps_lockfile_is_named_and_the_npmrc_fix_works(peer_conflict_app):
    app, _ = peer_conflict_app
    # What the old hint led to: npm install --legacy-peer-deps, lockfile committed, npm ci in CI.
    subprocess.run(["npm", "install", "--legacy-peer-deps", "--no-audit", "--no-fund"], cwd=app, check=True,
                   capture_output=True, timeout=120)
    shutil.rmtree(app / "node_modules")
    code, _, err = finish(run_install(app))
    assert code == 1
    line = next(line for line in err.splitlines() if line.startswith("FAILED install:"))
    assert "the lockfile holds a peer conflict (fx-plugin@1.0.0 requires peer fx-host@^2.0.0, but fx-host@1.0.0" in line
    assert "that npm ci does not accept" in line
    # The hint's second way, taken: the setting in .npmrc, which npm ci reads too.
    (app / ".npmrc").write_text("legacy-peer-deps=true\n")
    code, result, err = finish(run_install(app))
    assert code == 0 and result["installed"] is True, err[-2000:]
    assert (app / "node_modules" / "fx-plugin" / "package.json").is_file()


def test_the_package_manager_is_the_lockfiles(tmp_path: Path):
    from steps.package_manager import install_argv, manager_problem, resolve

    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text('{"name": "x", "packageManager": "pnpm@9.15.9+sha512.abc"}')
    assert "has no lockfile" in manager_problem(app, "")
    (app / "pnpm-lock.yaml").write_text("lockfileVersion: '9.0'\n")
    assert manager_problem(app, "") is None and manager_problem(app, "pnpm") is None
    assert resolve(app) == resolve(app, "pnpm") and resolve(app).version == "9.15.9"
    assert "`packageManager` is npm but" in manager_problem(app, "npm")
    assert "not one of npm, pnpm, yarn" in manager_problem(app, "bun")
    (app / "package-lock.json").write_text("{}")
    for configured in ("", "pnpm"):  # several lockfiles: refused even when one is named
        assert "has several lockfiles (package-lock.json, pnpm-lock.yaml)" in manager_problem(app, configured)
    assert install_argv(resolve(app, "npm")) == ["npm", "ci", "--no-audit", "--no-fund"]
    (app / "package.json").write_text('{"name": "x", "packageManager": "yarn@4.1.0"}')
    with pytest.raises(PermanentError, match="yarn 4.1.0 \\(berry\\) is installed through corepack"):
        resolve(app, "yarn")
