"""Stand-in of actions/setup-node v4.4.0 (49933ea5288caeca8642d1e84afbd3f7d6820020): the Node the
workflow asks for, from this machine, or a failure, as upstream fails on a version it cannot
find. Nothing is downloaded.

Mirrors upstream's src/distributions/base-distribution.ts (the version spec as a semver range:
`20` is `20.x`) against the `node` on the runner's PATH, whose directory goes first on PATH
(`node-version` output); a version the machine lacks fails with upstream's message.
`cache: npm` is src/cache-restore.ts: the npm cache directory (`npm config get cache`) restored
under `node-cache-<platform>-<arch>-npm-<hash of cache-dependency-path>`, no restore key, and
saved in the post step (src/cache-save.ts) unless the primary key was hit. A
cache-dependency-path that matches no file fails, as upstream does.
"""

from __future__ import annotations

import re
import shutil
import subprocess  # node and npm with list argv  # nosec B404
from pathlib import Path

from sandbox.actions import cache
from sandbox.actions.toolkit import ActionFailed, add_path, get_input, hash_files, info, set_output, workspace


def _satisfies(spec: str, version: str) -> bool:
    """The semver forms workflows use: `20`, `20.x`, `20.1`, `20.1.0`, `>=20` (a bare major is `20.x`)."""
    spec = spec.strip().removeprefix("v")
    parts = [int(p) for p in re.findall(r"\d+", version)]
    if spec.startswith(">="):
        wanted = [int(p) for p in re.findall(r"\d+", spec)]
        return parts >= wanted
    wanted_text = [p for p in spec.split(".") if p not in ("x", "*", "")]
    return all(p.isdigit() for p in wanted_text) and parts[: len(wanted_text)] == [int(p) for p in wanted_text]


def setup() -> None:
    spec = get_input("node-version")
    if not spec and get_input("node-version-file"):
        spec = (workspace() / get_input("node-version-file")).read_text().strip().lstrip("v").splitlines()[0]
    node = shutil.which("node")
    if spec:
        version = ""
        if node:
            done = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)  # noqa: S603  # nosec
            version = done.stdout.strip().removeprefix("v")
        if not version or not _satisfies(spec, version):
            raise ActionFailed(
                f"Unable to find Node version '{spec}' for platform linux and architecture x64."
                f" (this machine has: {version or 'no node'}; the local stand-in downloads nothing)"
            )
        add_path(Path(node).resolve().parent)
        info(f"Found in cache @ {Path(node).resolve().parent}")
        set_output("node-version", f"v{version}")
    manager = get_input("cache")
    if manager == "npm":
        _restore_npm_cache()
    elif manager:
        raise ActionFailed(f"Caching for '{manager}' is not supported by the local stand-in")


def _restore_npm_cache() -> None:
    patterns = [p.strip() for p in (get_input("cache-dependency-path") or "package-lock.json").split("\n") if p.strip()]
    digest = hash_files(patterns, workspace())
    if not digest:
        raise ActionFailed(
            "Some specified paths were not resolved, unable to cache dependencies."
            if get_input("cache-dependency-path")
            else "Dependencies lock file is not found in the workspace. Supported file patterns: package-lock.json,npm-shrinkwrap.json,yarn.lock"
        )
    npm = shutil.which("npm") or "npm"
    done = subprocess.run([npm, "config", "get", "cache"], capture_output=True, text=True, check=False, cwd=workspace())  # noqa: S603  # nosec
    if done.returncode != 0 or not done.stdout.strip():
        raise ActionFailed(f"Could not get npm cache folder path: {done.stderr.strip()[-300:]}")
    cache.restore_tool_cache(f"node-cache-linux-x64-npm-{digest}", [], [done.stdout.strip()])


def post() -> None:
    if get_input("cache"):
        cache.save_tool_cache()


STAGES = {("setup-node", "main"): setup, ("setup-node", "post"): post}
