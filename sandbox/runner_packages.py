"""What the local runner's jobs install from: a wheelhouse and an npm cache, so runs are offline.

    python -m sandbox.runner_packages build      # .ci/setup; seconds when nothing changed

On GitHub a job's `pip install -r requirements.txt` reaches PyPI and its `npm ci` the npm
registry. The local runner (sandbox/workflow_runner.py) depends on neither, so CI does not, and
the local Cloudflare edge need not be an open proxy (sandbox/pages_edge.py refuses every host
outside its zone). `.ci/setup` builds both here once, while it is online; the runner then gives
every job, through the runner machine's environment (the workflow files stay what GitHub runs):

- `PIP_NO_INDEX=1` and `PIP_FIND_LINKS=<wheelhouse>`: every `pip install` of the workflows
  resolves from wheels of the repository's requirement files (`REQUIREMENT_FILES`), built with
  `pip wheel` (so an sdist is a wheel already);
- `npm_config_offline=true` and a `~/.npm` seeded from the npm cache: the lockfile of each stack's
  app (`npm ci --ignore-scripts` in a copy of its package.json files, which fetches what `npm ci`
  fetches) and the pipeline's own wrangler and esbuild (`steps.package_manager prefetch`). The
  seed hard-links the cache's content (cacache never rewrites a content file) and copies its
  index (npm appends to it), so nothing a job does reaches the next run but through the cache
  stand-in, as on GitHub. `~/.npm` is npm's default, the directory setup-node caches.

Each is an entry of `${XDG_CACHE_HOME:-~/.cache}/webstack-runner/` named by the sha256 of what it
is made from, built in a temporary directory and renamed into place (whole or not at all); a setup
with nothing changed finds it and runs neither pip nor npm. Entries of other commits are left for
the clones that use them.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess  # pip and npm with list argv  # nosec B404
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from core.stack_files import PROJECT_ROOT, stack_setting
from core.versions import ESBUILD_VERSION, WRANGLER_VERSION
from sandbox.engine import locked_file

REPO = PROJECT_ROOT
# Every requirement file a workflow installs from (requirements-dev.txt includes requirements.txt;
# security.yml's SAST job takes bandit and zizmor from it).
REQUIREMENT_FILES = ("requirements.txt", "requirements-dev.txt", "policy/requirements.txt")
# The stacks whose app a workflow installs (a PR stack's settings are Pulumi.preview.yaml's).
APP_STACKS = ("prod", "preview")
NPM_MANIFESTS = ("package.json", "package-lock.json", "npm-shrinkwrap.json", ".npmrc")


class RunnerPackagesError(RuntimeError):
    """A package store is missing or could not be built; the message says what to run."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "webstack-runner"


def _digest(parts: list[tuple[str, bytes]]) -> str:
    digest = hashlib.sha256()
    for name, data in parts:
        digest.update(f"\0{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:32]


def app_dirs(root: Path = REPO) -> list[Path]:
    return sorted({root / str(stack_setting(stack, "appDir", root)).rstrip("/") for stack in APP_STACKS})


def _npm_manifests(app: Path) -> list[Path]:
    """The files `npm ci` reads: the lockfile and every package.json of the workspace (node_modules
    and dot directories, build outputs among them, are not walked)."""
    found = []
    for directory, subdirs, files in os.walk(app):
        subdirs[:] = sorted(d for d in subdirs if d != "node_modules" and not d.startswith("."))
        found += [Path(directory) / name for name in sorted(files) if name in NPM_MANIFESTS]
    return sorted(found)


def wheelhouse_dir(root: Path = REPO) -> Path:
    parts = [(name, (root / name).read_bytes()) for name in REQUIREMENT_FILES]
    parts.append(("python", f"{sys.implementation.cache_tag}-{platform.machine()}".encode()))
    return cache_root() / f"wheelhouse-{_digest(parts)}"


def npm_cache_dir(root: Path = REPO) -> Path:
    parts = [(str(p.relative_to(root)), p.read_bytes()) for app in app_dirs(root) for p in _npm_manifests(app)]
    parts.append(("tools", f"wrangler@{WRANGLER_VERSION} esbuild@{ESBUILD_VERSION}".encode()))
    return cache_root() / f"npm-{_digest(parts)}"


def _run(argv: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(argv, cwd=cwd, env={**os.environ, **(env or {})}, check=False)  # noqa: S603  # nosec B603
    if done.returncode != 0:
        raise RunnerPackagesError(f"`{' '.join(argv)}` (in {cwd}) exited with {done.returncode}; its output is above")


def _ensure(entry: Path, build: Callable[[Path], None], what: str) -> Path:
    entry.parent.mkdir(parents=True, exist_ok=True)
    # One build per entry: clones set up together wait for it instead of building it twice.
    with locked_file(entry.parent / f".{entry.name}.lock"):
        if entry.is_dir():
            print(f"runner packages: {what} up to date ({entry})", flush=True)
            return entry
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=entry.parent))
        try:
            build(tmp)
            os.replace(tmp, entry)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    print(f"runner packages: {what} built ({entry})", flush=True)
    return entry


def build_wheelhouse(root: Path = REPO) -> Path:
    def build(out: Path) -> None:
        requirements = [a for name in REQUIREMENT_FILES for a in ("-r", str(root / name))]
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--wheel-dir", str(out), *requirements], cwd=root)

    return _ensure(wheelhouse_dir(root), build, "wheelhouse")


def build_npm_cache(root: Path = REPO) -> Path:
    def build(out: Path) -> None:
        cache = out / "npm"
        with tempfile.TemporaryDirectory(prefix="runner-npm-") as scratch:
            env = {"npm_config_cache": str(cache), "npm_config_update_notifier": "false"}
            for app in app_dirs(root):
                copy = Path(scratch) / app.relative_to(root)
                for manifest in _npm_manifests(app):
                    (copy / manifest.relative_to(app)).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(manifest, copy / manifest.relative_to(app))
                _run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=copy, env=env)
            _run([sys.executable, "-m", "steps.package_manager", "prefetch"], cwd=root,
                 env={**env, "WEBSTACK_TOOLS_DIR": str(Path(scratch) / "tools")})  # fmt: skip

    return _ensure(npm_cache_dir(root), build, "npm cache")


def seed_npm_cache(home: Path, root: Path = REPO) -> Path:
    """`home/.npm` made from the npm cache: content hard-linked, everything else copied."""
    source = npm_cache_dir(root) / "npm"
    if not source.is_dir():
        raise RunnerPackagesError(f"the runner's npm cache {source.parent} is missing: run bash .ci/setup")
    target = home / ".npm"

    def link_or_copy(src: str, dst: str) -> None:
        if f"{os.sep}content-v2{os.sep}" in src:
            try:
                os.link(src, dst)
                return
            except OSError:  # another filesystem
                pass
        shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link_or_copy, dirs_exist_ok=True)
    return target


def job_environment(home: Path, root: Path = REPO) -> dict[str, str]:
    """What the runner machine's environment holds so every job installs offline; seeds home/.npm."""
    wheelhouse = wheelhouse_dir(root)
    if not wheelhouse.is_dir():
        raise RunnerPackagesError(f"the runner's wheelhouse {wheelhouse} is missing: run bash .ci/setup")
    seed_npm_cache(home, root)
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse), "npm_config_offline": "true"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.runner_packages", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["build"])
    parser.parse_args(argv)
    try:
        build_wheelhouse()
        build_npm_cache()
    except RunnerPackagesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
