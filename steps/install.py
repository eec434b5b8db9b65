"""Install the app's workspace once: `npm ci` (or the frozen install of pnpm / yarn 1, whichever the
lockfile belongs to: `steps.package_manager`), skipped when node_modules matches the lockfile.

CLI (phase 2, `app-install`): `python -m steps.install --app-dir DIR [--timeout SECONDS]`
prints `{"installed": bool, "app_dir": ..., "lockfile_sha256": ..., "seconds": ...}`.

Library: `ensure_installed(app_dir) -> bool` (True if it ran `npm ci`). Every step that needs
node_modules calls it first: on a fresh CI runner the install Command does not re-run while the
lockfile is unchanged (its trigger), yet a build or migration may, and finds no node_modules.

- The marker `node_modules/.webstack-install.json` holds the hash of the lockfile (plus Node's
  version and the platform: native packages such as esbuild, sharp and workerd are installed per
  platform). It is written only after `npm ci` succeeded; `npm ci` removes node_modules first, so
  a half-finished install never leaves a matching marker behind.
- Callers are serialized with an `fcntl` lock on the app directory itself (not on a file in
  node_modules, which `npm ci` deletes, and no lock file left in the checkout): the lambda and site
  builds run in parallel under Pulumi and must not run two `npm ci` in one tree. The second caller
  waits, then finds the marker.
- Transient npm failures (ECONNRESET, ETIMEDOUT, EAI_AGAIN, registry 429/5xx, a hung run killed at
  the timeout) are retried with backoff; anything else (lockfile out of sync with package.json,
  E404, a failing install script) fails at once. The failure line carries npm's stated cause
  (`explain_npm_failure`: an ERESOLVE peer conflict by name and versions, the lockfile entries out
  of sync), not npm's closing lines, and the hint fits that case.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from steps import package_manager, tool_output
from steps.package_manager import PackageManager
from steps.args import StepParser, local_path, positive_seconds
from steps.runtime import PermanentError, TransientError, directory_lock, log, retry_call, run_step, run_tool, shown

MARKER = ".webstack-install.json"
DEFAULT_TIMEOUT = 900.0

# npm 11 prints `npm error code ECONNRESET`, `npm error code E503`, `npm error network ...`; pnpm
# ` ERR_PNPM_FETCH_503  GET ...`; yarn 1 `Request failed "503 Service Unavailable"`.
_TRANSIENT_NPM = re.compile(
    r"\b(?:ECONNRESET|ETIMEDOUT|ESOCKETTIMEDOUT|EAI_AGAIN|ECONNREFUSED|EPIPE|ENETUNREACH|"
    r"EHOSTUNREACH|E429|E5\d\d|ERR_PNPM_FETCH_(?:429|5\d\d))\b|npm (?:error|ERR!) network\b|"
    r"Request failed \\?\"(?:429|5\d\d)"
)


def npm_failure_is_transient(output: str) -> bool:
    """Whether a failed `npm ci`'s output shows a network or registry-side (429/5xx) problem."""
    return bool(_TRANSIENT_NPM.search(output))


_NPM_MESSAGE = re.compile(r"npm (?P<level>error|ERR!|warn|WARN) ?(?P<text>.*)")
_NPM_CODE = re.compile(r"code (?P<code>E[A-Z0-9]+)")
_NPM_WANTS = re.compile(r"(?P<kind>peer |peerOptional )?(?P<name>\S+?)@\"(?P<range>[^\"]*)\" from (?P<by>.+)")
# npm's closing lines, which name no cause: where its logs are, and its usage text.
_NPM_NOISE = re.compile(r"A complete log of this run|For a full report see|/_logs/|^Clean install a project")


@dataclass(frozen=True)
class NpmFailure:
    cause: str
    hint: str


def _npm_messages(output: str, levels: tuple[str, ...]) -> list[str]:
    found = []
    for line in output.splitlines():
        m = _NPM_MESSAGE.fullmatch(line.strip())
        if m and m.group("level").lower() in levels:
            found.append(m.group("text").strip())
    return found


@dataclass(frozen=True)
class PeerConflict:
    text: str
    """`<package> requires peer <name>@<range>, but <name>@<version> is in the tree`"""
    fix: str
    """Which versions to align, in this case's names."""


def peer_conflict(lines: list[str]) -> PeerConflict | None:
    """The conflict of npm's ERESOLVE block (its `Found:` and `Could not resolve dependency:` lines)."""
    start = next((i for i, line in enumerate(lines) if line.startswith("ERESOLVE")), None)
    if start is None:
        return None
    block = lines[start:]
    found = next((line.split(":", 1)[1].strip() for line in block if line.startswith("Found:")), None)
    after = next(
        (i for i, line in enumerate(block) if line.startswith(("Could not resolve dependency:", "Conflicting peer dependency:"))),
        None,
    )
    wants = next((m for line in block[after:] if (m := _NPM_WANTS.fullmatch(line))), None) if after is not None else None
    if not wants:
        return PeerConflict(f"a dependency conflict (npm: {block[0]}{', found ' + found if found else ''})", "align the versions npm names")
    name, wanted, by = wants.group("name"), wants.group("range"), wants.group("by")
    peer = "peer " if wants.group("kind") else ""
    have = found or "another version"
    return PeerConflict(
        f"{by} requires {peer}{name}@{wanted}, but {have} is in the tree",
        f"align the versions: a {name} that satisfies {wanted}, or a version of {by.rsplit('@', 1)[0]} whose peer range accepts {have}",
    )


def explain_npm_failure(output: str) -> NpmFailure:
    """The cause npm states (not its closing lines) and what actually fixes that case."""
    errors = _npm_messages(output, ("error", "err!"))
    code = next((m.group("code") for line in errors if (m := _NPM_CODE.fullmatch(line))), None)
    said = [line for line in errors if line and not _NPM_CODE.fullmatch(line) and not _NPM_NOISE.search(line)]
    verify = "commit package-lock.json and check it with `npm ci` in a clean checkout before pushing"

    def peer_fix(conflict: PeerConflict) -> str:
        return (
            f"{conflict.fix}; run npm install, {verify}. Only if you accept the mismatch: put legacy-peer-deps=true "
            "in the workspace root's .npmrc (npm ci reads it too; a bare `npm install --legacy-peer-deps` writes a "
            "lockfile that npm ci rejects), run npm install, commit both"
        )

    conflict = peer_conflict(errors) if code == "ERESOLVE" else None
    if conflict:
        return NpmFailure(f"ERESOLVE: {conflict.text}", peer_fix(conflict))
    overridden = peer_conflict(_npm_messages(output, ("warn",)))
    if code == "EUSAGE" and any("in sync" in line for line in said):
        details = [line for line in said if line.startswith(("Missing:", "Invalid:"))]
        return NpmFailure(
            "package.json and package-lock.json are out of sync" + (f" ({'; '.join(details[:3])})" if details else ""),
            f"run npm install in the workspace root with npm 11 (as CI), {verify}; if npm install fails with ERESOLVE, "
            "that peer conflict is the thing to fix",
        )
    first = " | ".join(said[:2]) or tool_output.summary(output, manager="npm")
    cause = f"{code or 'npm error'}: {first}"
    if overridden:
        # npm ci re-resolves a lockfile whose peers do not fit (made with --legacy-peer-deps or
        # --force) and then fails on something else: the conflict is the cause.
        return NpmFailure(
            f"the lockfile holds a peer conflict ({overridden.text}) that npm ci does not accept; then {cause}",
            peer_fix(overridden),
        )
    return NpmFailure(cause, "fix that cause (a failing install script names its package), then re-run the deploy")


# What fixes the failures pnpm and yarn name by their own words.
_LOCKFILE_OUT_OF_SYNC = {
    "pnpm": ("ERR_PNPM_OUTDATED_LOCKFILE", "run pnpm install in the workspace root (as CI, the version of the root "
             "packageManager field) and commit pnpm-lock.yaml"),
    "yarn": ("Your lockfile needs to be updated", "run yarn install in the workspace root (yarn 1) and commit yarn.lock"),
}


def explain_install_failure(manager: str, output: str) -> NpmFailure:
    """The cause a failed frozen install states, in the package manager's own words, and its fix."""
    missing = tool_output.missing_from_registry(output)
    if missing:
        package, registry = missing
        return NpmFailure(
            f"the package {package} is not in the registry {registry} (or this job may not fetch it): "
            + tool_output.summary(output, manager=manager),
            f"fix the name or version of {package} in package.json and the lockfile; for a private package, give the "
            "deploy job the registry (and its token) in the workspace's .npmrc",
        )
    if manager == "npm":
        return explain_npm_failure(output)
    cause = tool_output.summary(output, manager=manager)
    marker, fix = _LOCKFILE_OUT_OF_SYNC[manager]
    if marker in output:
        return NpmFailure(cause, fix)
    return NpmFailure(cause, "fix that cause (a failing install script names its package), then re-run the deploy")


def _node_version() -> str:
    try:
        out = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise PermanentError(f"node is not runnable: {exc}", hint="install Node.js 20 and put it on PATH") from exc
    return out.stdout.strip()


def install_fingerprint(app_dir: Path, manager: PackageManager | None = None) -> dict[str, str]:
    """What node_modules must have been installed from: lockfile hash, Node version, platform."""
    manager = manager or package_manager.resolve(app_dir)
    lockfile = app_dir / manager.lockfile
    try:
        digest = hashlib.sha256(lockfile.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise PermanentError(
            f"{shown(lockfile, quote=False)} does not exist",
            hint=f"commit {manager.lockfile} and point --app-dir at the workspace root",
        ) from None
    fingerprint = {
        "lockfile_sha256": digest,
        "node": _node_version(),
        "platform": f"{sys.platform}-{platform.machine()}",
    }
    if manager.version is not None:
        # npm is Node's own (in "node"); an npm install's marker stays as it was before pnpm/yarn.
        fingerprint["package_manager"] = f"{manager.name}@{manager.version}"
    return fingerprint


def read_marker(app_dir: Path) -> dict | None:
    try:
        return json.loads((app_dir / "node_modules" / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_marker(app_dir: Path, fingerprint: dict[str, str]) -> None:
    path = app_dir / "node_modules" / MARKER
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(fingerprint, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _matches(marker: dict | None, fingerprint: dict[str, str]) -> bool:
    return marker is not None and all(marker.get(k) == v for k, v in fingerprint.items())


def _npm_ci(app_dir: Path, timeout: float, manager: PackageManager) -> None:
    result = run_tool(
        package_manager.install_argv(manager),
        cwd=app_dir,
        # CI=true: pnpm and yarn never prompt (pnpm asks before removing a foreign node_modules).
        env={"npm_config_update_notifier": "false", "CI": "true"},
        timeout=timeout,
        what=manager.label,
    )
    if result.ok:
        return
    failure = explain_install_failure(manager.name, result.output)
    summary = f"{manager.label} in {shown(app_dir, quote=False)} exited {result.returncode}: {failure.cause}"
    if npm_failure_is_transient(result.output):
        raise TransientError(summary, hint="the npm registry or the network kept failing; re-run the deploy")
    raise PermanentError(summary, hint=failure.hint)


def ensure_installed(
    app_dir: Path | str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    attempts: int = 3,
    manager_name: str = "",
) -> bool:
    """Make node_modules match the lockfile; True if `npm ci` ran, False if it was up to date."""
    app_dir = Path(app_dir)
    if not (app_dir / "package.json").is_file():
        raise PermanentError(
            f"{shown(app_dir, quote=False)} has no package.json", hint="pass the npm workspace root as --app-dir"
        )
    manager = package_manager.resolve(app_dir, manager_name)
    fingerprint = install_fingerprint(app_dir, manager)
    with directory_lock(app_dir, "install"):
        if _matches(read_marker(app_dir), fingerprint):
            log(f"install: node_modules in {app_dir} matches the lockfile; {manager.label} skipped")
            return False
        started = time.monotonic()
        retry_call(
            lambda: _npm_ci(app_dir, timeout, manager), what=manager.label, attempts=attempts, deadline=timeout * attempts
        )
        if not (app_dir / "node_modules").is_dir():
            raise PermanentError(f"{manager.label} exited 0 but {app_dir}/node_modules does not exist")
        _write_marker(app_dir, fingerprint)
        log(f"install: {manager.label} in {app_dir} done in {time.monotonic() - started:.1f}s")
        return True


def install(app_dir: Path, timeout: float, manager_name: str = "") -> dict:
    started = time.monotonic()
    if manager_name and (problem := package_manager.manager_problem(app_dir, manager_name)):
        raise PermanentError(problem)
    installed = ensure_installed(app_dir, timeout=timeout, manager_name=manager_name)
    marker = read_marker(app_dir) or {}
    return {
        "installed": installed,
        "app_dir": str(app_dir),
        "lockfile_sha256": marker.get("lockfile_sha256"),
        "seconds": round(time.monotonic() - started, 2),
    }


def parse(argv: list[str] | None = None):
    parser = StepParser(prog="python -m steps.install", description=__doc__.splitlines()[0])
    parser.add_argument("--app-dir", required=True, type=local_path, help="npm workspace root (holds package-lock.json)")
    parser.add_argument("--timeout", type=positive_seconds, default=DEFAULT_TIMEOUT, help="seconds per npm ci attempt")
    parser.add_argument(
        "--package-manager", choices=["", *package_manager.LOCKFILES], default="", help="npm, pnpm or yarn; empty: the lockfile's"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # ensure_installed retries npm ci itself: one attempt here so the retries do not multiply.
    return run_step("install", critical=True, body=lambda: install(args.app_dir, args.timeout, args.package_manager), attempts=1)


if __name__ == "__main__":
    sys.exit(main())
