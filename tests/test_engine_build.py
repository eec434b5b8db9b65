"""The engine build (sandbox/engine.py): stamps, the cache outside the clone, and the binaries it makes.

The first test builds bin/ when needed (minutes on a cold machine, seconds with Go's caches warm);
the rest reuse it. A deploy through the built engine checks that the CLI, the Python language host
and the command provider work together offline, on a file backend.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess  # runs the built CLI with list argv  # nosec B404
import sys
from pathlib import Path

import pytest

from sandbox import engine

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def bin_dir() -> Path:
    try:
        return engine.ensure_engine()
    except engine.EngineBuildError as err:
        pytest.fail(f"engine build failed: {err}")


def _no_go(*args, **kwargs):
    raise AssertionError(f"go was invoked: {args}")


def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in sorted(directory.iterdir())}


def test_second_build_runs_no_go_and_changes_nothing(bin_dir: Path, monkeypatch) -> None:
    before = _snapshot(bin_dir)
    monkeypatch.setattr(engine, "_run", _no_go)
    monkeypatch.setattr(engine.subprocess, "run", _no_go)

    assert engine.ensure_engine() == bin_dir
    assert _snapshot(bin_dir) == before


def test_fresh_clone_takes_the_binaries_from_the_cache_without_go(bin_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(engine, "_run", _no_go)
    clone_bin = tmp_path / "bin"

    engine.ensure_engine(clone_bin)

    for binary in engine.BINARIES:
        for name in [binary.name, *([engine.EXECUTOR] if binary.executor else [])]:
            assert (clone_bin / name).read_bytes() == (bin_dir / name).read_bytes()
            assert os.access(clone_bin / name, os.X_OK)
        assert (clone_bin / f".{binary.name}.stamp").read_text().strip() == engine.stamp(binary)


def test_stamp_follows_go_sum_and_sources_not_unrelated_files(tmp_path: Path, monkeypatch) -> None:
    shutil.copytree(engine.ENGINE_DIR, tmp_path / "engine")
    monkeypatch.setattr(engine, "ENGINE_DIR", tmp_path / "engine")
    command = next(b for b in engine.BINARIES if b.name == "pulumi-resource-command")
    original = engine.stamp(command)

    (tmp_path / "engine" / "command" / "README").write_text("not a build input\n")
    assert engine.stamp(command) == original

    go_sum = tmp_path / "engine" / "command" / "go.sum"
    go_sum.write_text(go_sum.read_text() + "example.com/m v1.0.0 h1:AAAA=\n")
    changed = engine.stamp(command)
    assert changed != original

    main_go = tmp_path / "engine" / "command" / "main.go"
    main_go.write_text(main_go.read_text() + "\n// touched\n")
    assert engine.stamp(command) not in (original, changed)


def test_a_failing_build_prints_one_line_naming_the_command(tmp_path: Path, monkeypatch, capsys) -> None:
    shutil.copytree(engine.ENGINE_DIR / "command", tmp_path / "engine" / "command")
    (tmp_path / "engine" / "command" / "broken.go").write_text("package main\n\nfunc broken() { undefined() }\n")
    monkeypatch.setattr(engine, "ENGINE_DIR", tmp_path / "engine")
    monkeypatch.setattr(engine, "BIN_DIR", tmp_path / "bin")
    monkeypatch.setattr(engine, "BINARIES", tuple(b for b in engine.BINARIES if b.name == "pulumi-resource-command"))
    monkeypatch.setenv("WEBSTACK_ENGINE_CACHE", str(tmp_path / "cache"))

    assert engine.main(["build"]) == 1

    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("engine:")]
    assert len(err_lines) == 1
    assert re.match(r"engine: FAILED: `\S*go build .*-o \S+/pulumi-resource-command \.` .* exited with 1", err_lines[0])
    assert not (tmp_path / "bin" / "pulumi-resource-command").exists()
    assert not list((tmp_path / "cache").glob("pulumi-resource-command-*"))


def test_cli_reports_the_pinned_version(bin_dir: Path) -> None:
    out = subprocess.run(  # nosec B603
        [str(bin_dir / "pulumi"), "version"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"},
    )
    assert out.stdout.strip() == f"v{engine.PULUMI_CLI_VERSION}"
    version = re.escape(engine.PULUMI_CLI_VERSION)
    cli_go_mod = (engine.ENGINE_DIR / "cli" / "go.mod").read_text()
    assert re.search(rf"^\s*github\.com/pulumi/pulumi/pkg/v3 v{version}( // indirect)?$", cli_go_mod, re.M)
    for module in ("cli", "python", "command"):
        go_mod = (engine.ENGINE_DIR / module / "go.mod").read_text()
        assert re.search(rf"^\s*github\.com/pulumi/pulumi/sdk/v3 v{version}( // indirect)?$", go_mod, re.M), module


def test_plugins_report_their_versions(bin_dir: Path, tmp_path: Path) -> None:
    env = engine.engine_env(tmp_path / "state", "pw")
    out = subprocess.run(  # nosec B603
        [str(bin_dir / "pulumi"), "plugin", "ls", "--json"], capture_output=True, text=True, check=True, env=env
    )
    assert json.loads(out.stdout or "[]") == []  # nothing installed in PULUMI_HOME: all come from bin/
    assert engine.engine_env(tmp_path / "state", "pw")["PATH"].split(os.pathsep)[0] == str(bin_dir)


PROGRAM = """\
import pulumi
from pulumi_command import local

cfg = pulumi.Config()
first = local.Command(
    "first",
    create="echo created-$GREETING; echo to-stderr >&2",
    delete="echo deleted-$GREETING > deleted.txt",
    environment={"GREETING": cfg.get("greeting") or "hi"},
    triggers=[cfg.get("trigger") or "1"],
    dir=".",
)
second = local.Command(
    "second",
    create="mkdir -p out/sub && echo a > out/a.txt && echo b > out/sub/b.js && echo made",
    environment={"FROM_FIRST": first.stdout},
    archive_paths=["out/**", "!out/a.txt"],
    dir=".",
)
# An output is secret only when an input of the same name is (pulumi-command): stdout needs saying.
secret = local.Command(
    "secret",
    create="echo $TOKEN",
    environment={"TOKEN": cfg.require_secret("token")},
    dir=".",
    opts=pulumi.ResourceOptions(additional_secret_outputs=["stdout"]),
)
pulumi.export("first", first.stdout)
pulumi.export("first_stderr", first.stderr)
pulumi.export("archive", second.archive.apply(lambda a: sorted(a.assets) if a else None))
pulumi.export("secret", secret.stdout)
"""


def _pulumi(bin_dir: Path, project: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(  # nosec B603
        [str(bin_dir / "pulumi"), *args, "--non-interactive"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, f"pulumi {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_up_update_replace_and_destroy_a_python_program(bin_dir: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text(
        f"name: engine-check\nruntime:\n  name: python\n  options:\n    toolchain: pip\n    virtualenv: {sys.prefix}\n"
    )
    (project / "__main__.py").write_text(PROGRAM)
    env = engine.engine_env(tmp_path / "state", "test-passphrase", venv=Path(sys.prefix))
    (tmp_path / "state").mkdir()

    _pulumi(bin_dir, project, env, "stack", "init", "dev")
    _pulumi(bin_dir, project, env, "config", "set", "--secret", "token", "s3cret")
    preview = _pulumi(bin_dir, project, env, "preview")
    assert "+ 4 to create" in preview
    assert not (project / "out").exists()  # nothing runs during preview

    _pulumi(bin_dir, project, env, "up", "--yes")
    outputs = json.loads(_pulumi(bin_dir, project, env, "stack", "output", "--json", "--show-secrets"))
    assert outputs == {
        "first": "created-hi",
        "first_stderr": "to-stderr",
        "archive": ["out/sub/b.js"],
        "secret": "s3cret",
    }
    state = _pulumi(bin_dir, project, env, "stack", "export")
    assert "s3cret" not in state  # stdout named in additional_secret_outputs is stored encrypted

    _pulumi(bin_dir, project, env, "config", "set", "greeting", "hello")
    assert "2 updated" in _pulumi(bin_dir, project, env, "up", "--yes")  # first, and second reading its stdout
    _pulumi(bin_dir, project, env, "config", "set", "trigger", "2")
    assert "1 replaced" in _pulumi(bin_dir, project, env, "up", "--yes")
    # The replaced original ran its delete with the environment stored at its last up.
    assert (project / "deleted.txt").read_text() == "deleted-hello\n"

    (project / "deleted.txt").unlink()
    _pulumi(bin_dir, project, env, "destroy", "--yes")
    assert (project / "deleted.txt").read_text() == "deleted-hello\n"
    assert json.loads(_pulumi(bin_dir, project, env, "stack", "output", "--json")) == {}


def test_runner_tools_are_the_modules_their_go_mod_pins() -> None:
    """act and gitleaks are built like the engine (cached by stamp) and report the versions their
    tool modules require: the one place each is pinned."""
    bin_dir = engine.ensure_runner_tools()
    act = subprocess.run([str(bin_dir / "act"), "--version"], capture_output=True, text=True, check=True)  # nosec B603
    act_version = engine.required_version(engine.ENGINE_DIR / "act", engine.ACT_MODULE)
    assert act.stdout.strip() == f"act version {act_version.removeprefix('v')}"
    gitleaks = subprocess.run([str(bin_dir / "gitleaks"), "version"], capture_output=True, text=True, check=True)  # nosec B603
    assert gitleaks.stdout.strip() == engine.required_version(engine.ENGINE_DIR / "gitleaks", engine.GITLEAKS_MODULE)
    for tool in engine.RUNNER_TOOLS:
        assert (bin_dir / f".{tool.name}.stamp").read_text().strip() == engine.stamp(tool)


def test_concurrent_clones_build_one_cache_entry_once(tmp_path: Path, monkeypatch) -> None:
    """Two clones setting up at once: the second waits on the entry's lock and reuses it."""
    import threading
    import time

    shutil.copytree(engine.ENGINE_DIR / "command", tmp_path / "engine" / "command")
    monkeypatch.setattr(engine, "ENGINE_DIR", tmp_path / "engine")
    command = next(b for b in engine.BINARIES if b.name == "pulumi-resource-command")
    builds = []

    def fake_build(binary, out_dir):
        builds.append(binary.name)
        time.sleep(0.5)  # a build takes a while: without the lock the second clone would start one too
        (out_dir / binary.name).write_bytes(b"#!/bin/sh\n")
        (out_dir / binary.name).chmod(0o755)

    monkeypatch.setattr(engine, "_build_into", fake_build)
    cache = tmp_path / "cache"
    threads = [
        threading.Thread(target=engine.ensure_engine, args=(tmp_path / f"clone{i}",), kwargs={"cache": cache, "binaries": (command,)})
        for i in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert builds == ["pulumi-resource-command"]
    assert all((tmp_path / f"clone{i}" / "pulumi-resource-command").exists() for i in range(2))
