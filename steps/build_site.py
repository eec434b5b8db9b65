"""Deploy step: the Next.js static export of the site, with the stack's outputs baked in (critical).

`python -m steps.build_site --app-dir DIR --out DIR [--workspace @app/web] [--timeout SECONDS]`

Makes sure the workspace is installed (`steps.install`), then runs `npm run build -w @app/web`
(`next build`, static export to `apps/web/out/`) with every `NEXT_PUBLIC_*` variable of its
environment, `NEXT_TELEMETRY_DISABLED=1` and `NEXT_BUILD_ID` (default `static`: the same inputs
give the same bytes). The export must hold `index.html`, and every `NEXT_PUBLIC_*` value must
appear in it: a value that is missing was not baked in, and the site would call the wrong API.
`NEXT_PUBLIC_API_URL` is required and must end with `/` (the app's README).

The export replaces `--out` (a path relative to the working directory, e.g. `.build/<stack>/site`):
it is copied into a temporary directory beside it and renamed into place, so a failed or
interrupted build never leaves a half-copied site for the deploy to upload.

Prints the sha256 of the exported tree (relative names and bytes, in sorted order) as 64 hex
digits: the deploy Command's trigger, so an unchanged site is not deployed again.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from components.source_hash import files_hash
from steps.args import StepParser, local_path, positive_seconds
from steps.runtime import PermanentError, directory_lock, log, run_step, run_tool, shown

DEFAULT_WORKSPACE = "@app/web"
DEFAULT_WEB_DIR = "apps/web"
# next build takes 10-20 s here; the limit only catches a hung build.
DEFAULT_TIMEOUT = 900.0
PUBLIC_PREFIX = "NEXT_PUBLIC_"
REQUIRED = ("NEXT_PUBLIC_API_URL",)
_TEXT_SUFFIXES = (".html", ".js", ".txt", ".json", ".rsc")


def public_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The `NEXT_PUBLIC_*` variables Next inlines into the export."""
    return {k: v for k, v in sorted(env.items()) if k.startswith(PUBLIC_PREFIX)}


def check_public_environment(public: Mapping[str, str]) -> None:
    problems = [f"{name} is not set" for name in REQUIRED if not public.get(name)]
    api_url = public.get("NEXT_PUBLIC_API_URL", "")
    if api_url and not api_url.endswith("/"):
        problems.append(f"NEXT_PUBLIC_API_URL must end with '/' (got {shown(api_url)})")
    if problems:
        raise PermanentError("; ".join(problems), hint="pass the API's URL (ending with /) from the stack's outputs")


def files_of(root: Path) -> list[Path]:
    """Every file under `root`, sorted by relative POSIX name."""
    return sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix())


def tree_sha256(root: Path) -> str:
    """sha256 over the relative names and bytes of every file under `root` (sorted)."""
    return files_hash(root, files_of(root))


def _forms(value: str) -> set[str]:
    # Next writes a value raw into JS string literals, HTML-escaped into the page and
    # JSON-escaped into the RSC payload.
    return {value, html.escape(value, quote=True), json.dumps(value)[1:-1]}


def missing_values(export: Path, public: Mapping[str, str]) -> list[str]:
    """The names of the `NEXT_PUBLIC_*` variables whose value is nowhere in the export."""
    wanted = {name: _forms(value) for name, value in public.items() if value}
    for path in files_of(export):
        if not wanted:
            break
        if not path.name.endswith(_TEXT_SUFFIXES):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        wanted = {name: forms for name, forms in wanted.items() if not any(f in text for f in forms)}
    return sorted(wanted)


def replace_dir(source: Path, out: Path) -> None:
    """Copy `source` to `out`, replacing it: copy beside it, then swap by rename."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.rename(out, old / out.name)
            os.rename(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def build(args: argparse.Namespace) -> str:
    # Imported here: steps.install is another step's module and only the build needs it.
    from steps.install import ensure_installed

    app_dir = Path(args.app_dir)
    web_dir = app_dir / args.web_dir
    if not (web_dir / "package.json").is_file():
        raise PermanentError(
            f"{shown(web_dir, quote=False)} has no package.json", hint="pass the npm workspace root as --app-dir"
        )
    public = public_environment(os.environ)
    check_public_environment(public)
    ensure_installed(app_dir)
    env = {"NEXT_TELEMETRY_DISABLED": "1", "NEXT_BUILD_ID": os.environ.get("NEXT_BUILD_ID") or "static", "CI": "true"}
    log("build_site: baking in " + ", ".join(f"{k}={shown(v, quote=False)}" for k, v in public.items()))
    export = web_dir / "out"
    # Builds of one app share .next/ and out/: one at a time.
    with directory_lock(web_dir, "build_site"):
        started = time.monotonic()
        result = run_tool(
            ["npm", "run", "build", "-w", args.workspace],
            cwd=app_dir,
            env=env,
            timeout=args.timeout,
            what="next build",
        )
        if not result.ok:
            tail = " | ".join([line.strip() for line in result.output.splitlines() if line.strip()][-5:])
            workspace = shown(args.workspace, quote=False)
            raise PermanentError(
                f"next build of {workspace} exited {result.returncode}: {tail}",
                hint=f"fix the build error above (it fails the same way locally: npm run build -w {workspace})",
            )
        log(f"build_site: next build took {time.monotonic() - started:.1f}s")
        if not (export / "index.html").is_file():
            raise PermanentError(
                f"next build exited 0 but {export}/index.html does not exist",
                hint="the app must keep output: 'export' in next.config.mjs",
            )
        missing = missing_values(export, public)
        if missing:
            raise PermanentError(
                f"the export in {export} does not contain the value of {', '.join(missing)}",
                hint="the app must read these variables at build time (process.env.NEXT_PUBLIC_...)",
            )
        out = Path(args.out)
        replace_dir(export, out)
    digest = tree_sha256(out)
    log(f"build_site: {len(files_of(out))} files in {out}, sha256 {digest}")
    return digest


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = StepParser(prog="python -m steps.build_site", description=__doc__.splitlines()[0])
    parser.add_argument("--app-dir", required=True, type=local_path, help="the npm workspace root (examples/app)")
    parser.add_argument("--out", required=True, type=local_path, help="where the export goes (replaced)")
    parser.add_argument("--workspace", default=DEFAULT_WORKSPACE, help="the site's npm workspace name")
    parser.add_argument("--web-dir", default=DEFAULT_WEB_DIR, type=local_path, help="the site's directory in the app")
    parser.add_argument("--timeout", type=positive_seconds, default=DEFAULT_TIMEOUT, help="seconds next build may take")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # A failed build is a code problem, not a passing one: no retries (PermanentError), except
    # what ensure_installed retries inside.
    return run_step("build_site", critical=True, body=lambda: build(args), attempts=2)


if __name__ == "__main__":
    sys.exit(main())
