"""Which package manager an app uses, and the command lines that belong to it (npm, pnpm, yarn 1).

The lockfile decides: `package-lock.json` is npm's, `pnpm-lock.yaml` pnpm's, `yarn.lock` yarn's. A
workspace installed with another tool than its lockfile's is a different install (pnpm's
`workspace:` specifiers do not even parse under npm), so the tool is the lockfile's, in the version
the root package.json's `packageManager` field names (else a pinned default).

npm comes with Node. pnpm and yarn (and wrangler and esbuild for an app that does not carry its
own: `steps.pages`, `steps.build_lambda`) come from the npm registry, installed once per version into a tools directory
outside the checkout (`$WEBSTACK_TOOLS_DIR`, default
`${XDG_CACHE_HOME:-~/.cache}/webstack-tools/<name>-<version>`), with `npm install`: no corepack,
no global install. `.ci/setup` fills it for the test fixtures, so tests run offline.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from core.versions import ESBUILD_VERSION, PACKAGE_MANAGER_VERSIONS, WRANGLER_VERSION
from steps import tool_output
from steps.runtime import PermanentError, directory_lock, log, run_tool, shown

LOCKFILES = {"npm": "package-lock.json", "pnpm": "pnpm-lock.yaml", "yarn": "yarn.lock"}
_VERSION = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?")
TOOL_INSTALL_TIMEOUT = 300.0


@dataclass(frozen=True)
class PackageManager:
    name: str
    """npm | pnpm | yarn"""
    version: str | None
    """None for npm: Node's own."""

    @property
    def lockfile(self) -> str:
        return LOCKFILES[self.name]

    @property
    def label(self) -> str:
        return {"npm": "npm ci", "pnpm": "pnpm install", "yarn": "yarn install"}[self.name]


def detect_name(app_dir: Path) -> str:
    """The package manager whose lockfile the workspace root holds; one line if none or several."""
    found = [name for name, lockfile in LOCKFILES.items() if (Path(app_dir) / lockfile).is_file()]
    if len(found) == 1:
        return found[0]
    if not found:
        raise PermanentError(
            f"{shown(app_dir, quote=False)} has no lockfile ({', '.join(LOCKFILES.values())})",
            hint="commit the lockfile your package manager wrote and point `appDir` at the workspace root",
        )
    raise PermanentError(
        f"{shown(app_dir, quote=False)} has several lockfiles ({', '.join(LOCKFILES[n] for n in found)})",
        hint="delete the lockfiles your team does not use (the steps pick the manager by its lockfile)",
    )


def manager_problem(app_dir: Path, configured: str) -> str | None:
    """Why `configured` (the `packageManager` setting; empty = detect) cannot install `app_dir`.

    Several lockfiles are refused even when `packageManager` names one: every step that needs
    node_modules detects the manager from the lockfile again (`steps.install.ensure_installed`)."""
    if configured and configured not in LOCKFILES:
        return f"`packageManager` {configured[:40]!r} is not one of npm, pnpm, yarn (or empty: detect from the lockfile)"
    if configured and not (Path(app_dir) / LOCKFILES[configured]).is_file():
        return f"`packageManager` is {configured} but {app_dir}/{LOCKFILES[configured]} does not exist: commit it"
    try:
        detect_name(app_dir)
    except PermanentError as exc:
        return f"{exc} ({exc.hint})"
    return None


def declared_version(app_dir: Path, name: str) -> str | None:
    """The version the root package.json's `packageManager` field pins for `name`, if it does."""
    try:
        field = json.loads((Path(app_dir) / "package.json").read_text(encoding="utf-8")).get("packageManager")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(field, str) or not field.startswith(f"{name}@"):
        return None
    version = field[len(name) + 1 :].split("+", 1)[0]
    if not _VERSION.fullmatch(version):
        raise PermanentError(
            f"package.json packageManager {shown(field)} has no exact version",
            hint=f"pin it, e.g. \"packageManager\": \"{name}@{PACKAGE_MANAGER_VERSIONS.get(name, 'X.Y.Z')}\"",
        )
    return version


def resolve(app_dir: Path, configured: str = "") -> PackageManager:
    name = configured or detect_name(app_dir)
    if name == "npm":
        return PackageManager("npm", None)
    version = declared_version(app_dir, name) or PACKAGE_MANAGER_VERSIONS[name]
    if name == "yarn" and not version.startswith("1."):
        raise PermanentError(
            f"yarn {version} (berry) is installed through corepack, which this pipeline does not use",
            hint="use yarn 1 (\"packageManager\": \"yarn@1.22.22\"), pnpm or npm",
        )
    return PackageManager(name, version)


def tools_dir() -> Path:
    configured = os.environ.get("WEBSTACK_TOOLS_DIR")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "webstack-tools"


def npm_tool(name: str, version: str) -> str:
    """The command `name` of the npm package `name@version`, from the tools directory (installed there
    with `npm install` on first use; held under a lock, so parallel steps install it once)."""
    if not _VERSION.fullmatch(version):
        raise PermanentError(f"{name} version {shown(version)} is not an exact version", hint="pin it, e.g. 1.2.3")
    prefix = tools_dir() / f"{name}-{version}"
    binary = prefix / "node_modules" / ".bin" / name
    if binary.is_file():
        return str(binary)
    prefix.mkdir(parents=True, exist_ok=True)
    with directory_lock(prefix, "tool install"):
        if binary.is_file():
            return str(binary)
        log(f"tools: installing {name}@{version} into {prefix}")
        result = run_tool(
            ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--no-save", f"{name}@{version}"],
            cwd=prefix,
            env={"npm_config_update_notifier": "false"},
            timeout=TOOL_INSTALL_TIMEOUT,
            what=f"npm install {name}",
        )
    if not result.ok or not binary.is_file():
        raise PermanentError(
            f"could not install {name}@{version} from the npm registry into {prefix} (exit {result.returncode}): "
            + tool_output.summary(result.output, manager="npm"),
            hint="check the network to the npm registry, or pre-install it there (bash .ci/setup)",
        )
    return str(binary)


def executable(manager: PackageManager) -> str:
    """The manager's command: `npm`, or pnpm/yarn from the tools directory (installed on first use)."""
    if manager.version is None:
        return "npm"
    return npm_tool(manager.name, manager.version)


def install_argv(manager: PackageManager) -> list[str]:
    """The frozen install: the lockfile is used as it is, never rewritten."""
    tool = executable(manager)
    if manager.name == "npm":
        return [tool, "ci", "--no-audit", "--no-fund"]
    if manager.name == "pnpm":
        return [tool, "install", "--frozen-lockfile", "--reporter=append-only"]
    return [tool, "install", "--frozen-lockfile", "--non-interactive", "--no-progress"]


def run_argv(manager: PackageManager, script: str) -> list[str]:
    """Runs a package.json script of the package in the working directory."""
    return [executable(manager), "run", script]


def main(argv: list[str] | None = None) -> int:
    """`python -m steps.package_manager prefetch`: install the pipeline's own wrangler and esbuild into
    the tools directory ahead of time (.ci/setup: the tests then deploy offline)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m steps.package_manager", description=main.__doc__.splitlines()[0])
    parser.add_argument("action", choices=["prefetch"])
    parser.parse_args(argv)
    try:
        for name, version in (("wrangler", WRANGLER_VERSION), ("esbuild", ESBUILD_VERSION)):
            print(npm_tool(name, version))
    except PermanentError as exc:
        print(f"FAILED prefetch: {exc} — {exc.hint}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
