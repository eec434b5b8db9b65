"""Install the app's npm workspace once: `npm ci`, skipped when node_modules matches the lockfile.

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
  E404, a failing install script) fails at once.
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
from pathlib import Path

from steps.args import StepParser, local_path, positive_seconds
from steps.runtime import PermanentError, TransientError, directory_lock, log, retry_call, run_step, run_tool, shown

LOCKFILE = "package-lock.json"
MARKER = ".webstack-install.json"
DEFAULT_TIMEOUT = 900.0

# npm 11 prints `npm error code ECONNRESET`, `npm error code E503`, `npm error network ...`.
_TRANSIENT_NPM = re.compile(
    r"\b(?:ECONNRESET|ETIMEDOUT|ESOCKETTIMEDOUT|EAI_AGAIN|ECONNREFUSED|EPIPE|ENETUNREACH|"
    r"EHOSTUNREACH|E429|E5\d\d)\b|npm (?:error|ERR!) network\b"
)


def npm_failure_is_transient(output: str) -> bool:
    """Whether a failed `npm ci`'s output shows a network or registry-side (429/5xx) problem."""
    return bool(_TRANSIENT_NPM.search(output))


def _last_lines(output: str, n: int = 5) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return " | ".join(lines[-n:]) or "(no output)"


def _node_version() -> str:
    try:
        out = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise PermanentError(f"node is not runnable: {exc}", hint="install Node.js 20 and put it on PATH") from exc
    return out.stdout.strip()


def install_fingerprint(app_dir: Path) -> dict[str, str]:
    """What node_modules must have been installed from: lockfile hash, Node version, platform."""
    lockfile = app_dir / LOCKFILE
    try:
        digest = hashlib.sha256(lockfile.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise PermanentError(
            f"{shown(lockfile, quote=False)} does not exist",
            hint="commit package-lock.json (npm install once, locally) and point --app-dir at the workspace root",
        ) from None
    return {
        "lockfile_sha256": digest,
        "node": _node_version(),
        "platform": f"{sys.platform}-{platform.machine()}",
    }


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


def _npm_ci(app_dir: Path, timeout: float) -> None:
    result = run_tool(
        ["npm", "ci", "--no-audit", "--no-fund"],
        cwd=app_dir,
        env={"npm_config_update_notifier": "false"},
        timeout=timeout,
        what="npm ci",
    )
    if result.ok:
        return
    summary = f"npm ci in {shown(app_dir, quote=False)} exited {result.returncode}: {_last_lines(result.output)}"
    if npm_failure_is_transient(result.output):
        raise TransientError(summary, hint="the npm registry or the network kept failing; re-run the deploy")
    raise PermanentError(
        summary,
        hint="fix the cause above (package.json and package-lock.json out of sync: run npm install "
        "locally and commit the lockfile; a failing install script: see its output)",
    )


def ensure_installed(
    app_dir: Path | str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    attempts: int = 3,
) -> bool:
    """Make node_modules match the lockfile; True if `npm ci` ran, False if it was up to date."""
    app_dir = Path(app_dir)
    if not (app_dir / "package.json").is_file():
        raise PermanentError(
            f"{shown(app_dir, quote=False)} has no package.json", hint="pass the npm workspace root as --app-dir"
        )
    fingerprint = install_fingerprint(app_dir)
    with directory_lock(app_dir, "install"):
        if _matches(read_marker(app_dir), fingerprint):
            log(f"install: node_modules in {app_dir} matches the lockfile; npm ci skipped")
            return False
        started = time.monotonic()
        retry_call(lambda: _npm_ci(app_dir, timeout), what="npm ci", attempts=attempts, deadline=timeout * attempts)
        if not (app_dir / "node_modules").is_dir():
            raise PermanentError(f"npm ci exited 0 but {app_dir}/node_modules does not exist")
        _write_marker(app_dir, fingerprint)
        log(f"install: npm ci in {app_dir} done in {time.monotonic() - started:.1f}s")
        return True


def install(app_dir: Path, timeout: float) -> dict:
    started = time.monotonic()
    installed = ensure_installed(app_dir, timeout=timeout)
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # ensure_installed retries npm ci itself: one attempt here so the retries do not multiply.
    return run_step("install", critical=True, body=lambda: install(args.app_dir, args.timeout), attempts=1)


if __name__ == "__main__":
    sys.exit(main())
