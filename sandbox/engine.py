"""Builds the sandbox's Pulumi engine, and the workflow runner's tools, from Go modules into `bin/`.

    python -m sandbox.engine build [--only engine|runner]

Three binaries, each from its own tool module under `sandbox/engine/` (`go.mod` + `go.sum`
committed, so `go build` works from an empty module cache with `-mod=readonly`):

- `bin/pulumi`: the real CLI, main package `github.com/pulumi/pulumi/pkg/v3/cmd/pulumi`
  (`sandbox/engine/cli`). The module proxy this project reaches does not serve pkg/v3 v3.272.0, so
  the CLI is the nearest release it serves, `PULUMI_CLI_VERSION`; it runs the pinned Python SDK
  (requirements.txt) unchanged.
- `bin/pulumi-language-python` (+ upstream's `pulumi-language-python-exec` from the sdk/v3 module,
  beside it): upstream's host module is not served, so `sandbox/engine/python` is a small host
  of ours with upstream's contract (see its main.go).
- `bin/pulumi-resource-command`: the command provider's module is not served either, so
  `sandbox/engine/command` is a stand-in serving `command:local:Command` (see its main.go).

Beside it, the tools the workflows run under (`RUNNER_TOOLS`, sandbox/workflow_runner.py), each the
upstream module built unchanged at the version its tool module's go.mod requires:

- `bin/act`: nektos/act (`sandbox/engine/act`), the GitHub Actions runner;
- `bin/gitleaks`: the secret scanner behind the trufflehog stand-in (`sandbox/engine/gitleaks`;
  trufflehog v3 itself is not served by the module proxy).

A binary is rebuilt only when its stamp changes: the sha256 of its module's go.mod, go.sum and Go
sources plus the build parameters below. A second run finds `bin/.<name>.stamp` and runs no `go`
at all; a fresh clone copies the binaries from the cache outside the repo
(`$WEBSTACK_ENGINE_CACHE`, else `${XDG_CACHE_HOME:-~/.cache}/webstack-engine/<name>-<stamp>/`).
Go's own caches (GOMODCACHE, GOCACHE) make a rebuild after a go.sum change incremental.

`engine_env(backend_dir, passphrase)` is the environment to run that CLI offline against a file
backend.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess  # go build with list argv, no shell  # nosec B404
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

# The CLI and the sdk/v3 the two small binaries build against (all three go.mod files require it),
# and the pulumi-command release the command provider reports.
from core.versions import PULUMI_CLI_VERSION, PULUMI_COMMAND_VERSION

REPO = Path(__file__).resolve().parent.parent
ENGINE_DIR = REPO / "sandbox" / "engine"
BIN_DIR = REPO / "bin"

SDK_MODULE = "github.com/pulumi/pulumi/sdk/v3"
EXECUTOR = "pulumi-language-python-exec"

# Part of every stamp: a change here rebuilds everything.
GO_BUILD_FLAGS = ("-trimpath", "-buildvcs=false")
GO_ENV = {"CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"}


@dataclass(frozen=True)
class Binary:
    name: str
    module: str  # directory under sandbox/engine
    package: str  # what `go build` builds, from that directory
    ldflags: str
    executor: bool = False  # also install upstream's pulumi-language-python-exec beside it

    @property
    def module_dir(self) -> Path:
        return ENGINE_DIR / self.module


class EngineBuildError(RuntimeError):
    """A build step failed; the message names the command."""


def required_version(module_dir: Path, module: str) -> str:
    """The version (`v1.2.3`) the tool module's go.mod requires of `module`: the one place it is pinned."""
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)} (v\S+)", (module_dir / "go.mod").read_text(), re.M)
    if match is None:
        raise EngineBuildError(f"{module_dir / 'go.mod'} requires no {module}")
    return match.group(1)


ACT_MODULE = "github.com/nektos/act"
GITLEAKS_MODULE = "github.com/zricethezav/gitleaks/v8"

BINARIES = (
    Binary(
        "pulumi",
        "cli",
        "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi",
        f"-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v{PULUMI_CLI_VERSION}",
    ),
    Binary("pulumi-language-python", "python", ".", f"-s -w -X main.version={PULUMI_CLI_VERSION}", executor=True),
    Binary("pulumi-resource-command", "command", ".", f"-s -w -X main.version={PULUMI_COMMAND_VERSION}"),
)

# The workflow runner's tools (not the engine: `python -m sandbox up` needs none of them). Their
# version strings are what the binaries report (`act --version`, `gitleaks version`).
RUNNER_TOOLS = (
    Binary(
        "act",
        "act",
        ACT_MODULE,
        f"-s -w -X main.version={required_version(ENGINE_DIR / 'act', ACT_MODULE).removeprefix('v')}",
    ),
    Binary(
        "gitleaks",
        "gitleaks",
        GITLEAKS_MODULE,
        f"-s -w -X {GITLEAKS_MODULE}/version.Version={required_version(ENGINE_DIR / 'gitleaks', GITLEAKS_MODULE)}",
    ),
)


def stamp(binary: Binary) -> str:
    """The sha256 of what the binary is built from: its module's files and the build parameters."""
    digest = hashlib.sha256()
    params = {
        "name": binary.name,
        "package": binary.package,
        "ldflags": binary.ldflags,
        "flags": GO_BUILD_FLAGS,
        "env": GO_ENV,
        "executor": binary.executor,
    }
    digest.update(json.dumps(params, sort_keys=True).encode())
    sources = ["go.mod", "go.sum", *sorted(p.name for p in binary.module_dir.glob("*.go"))]
    for name in sources:
        path = binary.module_dir / name
        digest.update(f"\0{name}\0".encode())
        digest.update(path.read_bytes() if path.exists() else b"<missing>")
    return digest.hexdigest()


def cache_root() -> Path:
    if explicit := os.environ.get("WEBSTACK_ENGINE_CACHE"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "webstack-engine"


def _files(binary: Binary) -> list[str]:
    return [binary.name, EXECUTOR] if binary.executor else [binary.name]


def _stamp_file(bin_dir: Path, binary: Binary) -> Path:
    return bin_dir / f".{binary.name}.stamp"


def _up_to_date(bin_dir: Path, binary: Binary, key: str) -> bool:
    stamp_file = _stamp_file(bin_dir, binary)
    if not stamp_file.exists() or stamp_file.read_text().strip() != key:
        return False
    return all((bin_dir / f).is_file() for f in _files(binary))


def _say(message: str) -> None:
    print(f"engine: {message}", flush=True)


def _run(argv: list[str], *, cwd: Path, capture: bool = False) -> str:
    env = {**os.environ, **GO_ENV}
    try:
        done = subprocess.run(  # fixed argv, no shell  # nosec B603
            argv, cwd=cwd, env=env, check=False, text=True, stdout=subprocess.PIPE if capture else None
        )
    except OSError as err:
        raise EngineBuildError(f"`{shlex.join(argv)}` (in {cwd}) could not start: {err}") from err
    if done.returncode != 0:
        raise EngineBuildError(
            f"`{shlex.join(argv)}` (in {cwd.relative_to(REPO) if cwd.is_relative_to(REPO) else cwd}) "
            f"exited with {done.returncode}; its output is above"
        )
    return done.stdout or ""


def _build_into(binary: Binary, out_dir: Path) -> None:
    """Runs `go build` for the binary into out_dir (and copies the executor for the Python host)."""
    go = shutil.which("go")
    if go is None:
        raise EngineBuildError("`go` is not on PATH: install Go 1.26 (the engine is built from Go modules)")
    argv = [go, "build", *GO_BUILD_FLAGS, "-ldflags", binary.ldflags, "-o", str(out_dir / binary.name), binary.package]
    _run(argv, cwd=binary.module_dir)
    if binary.executor:
        sdk_dir = _run([go, "list", "-m", "-f", "{{.Dir}}", SDK_MODULE], cwd=binary.module_dir, capture=True).strip()
        source = Path(sdk_dir) / "python" / "cmd" / EXECUTOR
        if not source.is_file():
            raise EngineBuildError(f"{SDK_MODULE} in the module cache has no python/cmd/{EXECUTOR} ({source})")
        shutil.copyfile(source, out_dir / EXECUTOR)  # the module cache is read-only: a copy, made executable
    for name in _files(binary):
        (out_dir / name).chmod(0o755)


def _install(cache_dir: Path, bin_dir: Path, binary: Binary, key: str) -> None:
    """Copies the cached files into bin/, each replaced atomically, then stamps.

    Copies, not hard links: a binary rebuilt in place in bin/ must not rewrite the cache entry.
    """
    for name in _files(binary):
        tmp = bin_dir / f".{name}.tmp"
        tmp.unlink(missing_ok=True)
        shutil.copy2(cache_dir / name, tmp)
        os.replace(tmp, bin_dir / name)
    _stamp_file(bin_dir, binary).write_text(key + "\n")


def _ensure_one(binary: Binary, bin_dir: Path, cache: Path) -> None:
    key = stamp(binary)
    if _up_to_date(bin_dir, binary, key):
        _say(f"{binary.name}: up to date ({key[:12]})")
        return
    cache_dir = cache / f"{binary.name}-{key[:32]}"
    cache.mkdir(parents=True, exist_ok=True)
    # One build per cache entry: clones set up at the same time wait for it instead of each
    # compiling the same binary (minutes of both cores each).
    with locked_file(cache / f".{binary.name}-{key[:32]}.lock"):
        if all((cache_dir / f).is_file() for f in _files(binary)):
            _install(cache_dir, bin_dir, binary, key)
            _say(f"{binary.name}: reused from {cache_dir}")
            return
        _build_entry(binary, bin_dir, cache, cache_dir, key)


def _build_entry(binary: Binary, bin_dir: Path, cache: Path, cache_dir: Path, key: str) -> None:
    what = binary.package if binary.package != "." else f"sandbox/engine/{binary.module}"
    _say(f"{binary.name}: building {what} (a first build takes minutes)")
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=f".{binary.name}-", dir=cache))
    try:
        _build_into(binary, tmp)
        if cache_dir.exists():  # an entry left incomplete by hand
            shutil.rmtree(cache_dir)
        os.replace(tmp, cache_dir)  # the cache entry appears whole or not at all
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _install(cache_dir, bin_dir, binary, key)
    size = (bin_dir / binary.name).stat().st_size / 2**20
    _say(f"{binary.name}: built in {time.monotonic() - started:.1f}s ({size:.0f} MiB)")


@contextlib.contextmanager
def locked_file(path: Path) -> Iterator[None]:
    """An exclusive lock held on `path` (created if missing), for one build of a cache entry at a time."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One build at a time per bin/ (two test sessions, say): the second waits, then finds it done."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def ensure_engine(bin_dir: Path | None = None, cache: Path | None = None, *, binaries: tuple[Binary, ...] | None = None) -> Path:
    """Builds (or reuses) the engine's binaries (or `binaries`) into bin_dir (bin/) and returns it;
    raises EngineBuildError."""
    bin_dir = bin_dir if bin_dir is not None else BIN_DIR
    bin_dir.mkdir(parents=True, exist_ok=True)
    cache = cache if cache is not None else cache_root()
    with _locked(bin_dir):
        for binary in BINARIES if binaries is None else binaries:
            _ensure_one(binary, bin_dir, cache)
    return bin_dir


def ensure_runner_tools(bin_dir: Path | None = None, cache: Path | None = None) -> Path:
    """bin/act and bin/gitleaks, under the engine's cache rule; raises EngineBuildError."""
    return ensure_engine(bin_dir, cache, binaries=RUNNER_TOOLS)


def engine_env(
    backend_dir: Path,
    passphrase: str,
    *,
    venv: Path | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment to run bin/pulumi offline against a file backend in backend_dir.

    bin/ comes first on PATH (the CLI finds the language host beside itself and the command provider
    on PATH), then venv/bin when given (what `local.Command` runs as `python`). PULUMI_HOME (plugins,
    credentials, workspace settings) lives inside backend_dir, so nothing is read from or written to
    the user's ~/.pulumi.
    """
    env = dict(os.environ if base is None else base)
    for inherited in ("PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_ACCESS_TOKEN", "PULUMI_DEBUG_LANGUAGES"):
        env.pop(inherited, None)
    path = [str(BIN_DIR)]
    if venv is not None:
        path.append(str(venv / "bin"))
        env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = os.pathsep.join([*path, env.get("PATH", os.defpath)])
    env.update(
        PULUMI_SKIP_UPDATE_CHECK="true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
        PULUMI_BACKEND_URL=Path(backend_dir).resolve().as_uri(),
        PULUMI_CONFIG_PASSPHRASE=passphrase,
        PULUMI_HOME=str(Path(backend_dir).resolve() / ".pulumi-home"),
    )
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.engine", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build"], help="build (or reuse) bin/pulumi and its plugins")
    parser.add_argument(
        "--only",
        choices=["engine", "runner"],
        help="only the engine (pulumi and its plugins) or only the workflow runner's tools (act, gitleaks)",
    )
    args = parser.parse_args(argv)
    chosen = {"engine": BINARIES, "runner": RUNNER_TOOLS}.get(args.only, BINARIES + RUNNER_TOOLS)
    started = time.monotonic()
    try:
        bin_dir = ensure_engine(binaries=chosen)
    except EngineBuildError as err:
        print(f"engine: FAILED: {err}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("engine: interrupted", file=sys.stderr, flush=True)
        return 130
    _say(f"ready in {bin_dir} ({time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
