"""Deploy step: the site's static export, with the stack's outputs baked in (critical).

`python -m steps.build_site --app-dir DIR --out DIR [--web-dir apps/web] [--export-dir out] [--baked VAR,VAR] [--timeout SECONDS]
    --artifacts-bucket BUCKET --artifacts-prefix PREFIX [--artifacts-kms-key KEY]`

Makes sure the workspace is installed (`steps.install`), then runs the site package's own `build`
script with the workspace's package manager (`npm run build` in `--web-dir`; pnpm/yarn alike) —
for Next.js `next build` with `output: 'export'` into `<web-dir>/out/`, for Vite `vite build` into
`<web-dir>/dist/` (`--export-dir`, the stack's `siteOutDir`) — with its environment,
`NEXT_TELEMETRY_DISABLED=1` and `NEXT_BUILD_ID` (default `static`: the same inputs give the same
bytes). The export must hold `index.html`, and the value of every variable `--baked` names (the
stack's `siteOutputs`) must appear in it: a value that is missing was not baked in, and the site
would call the wrong API. Other variables (the stack's `siteEnvironment`, read at build time only)
are the app's business and are not checked.

The export replaces `--out` (a path relative to the working directory, e.g. `.build/<stack>/site`):
it is copied into a temporary directory beside it and renamed into place, so a failed or
interrupted build never leaves a half-copied site for the deploy to upload.

The export is then published to the artifacts bucket as a deterministic tarball under its content
hash (`steps.artifacts`), and the step prints the record on stdout, one JSON line: `sha256` (the
exported tree's hash, `core.source_hash.output_hash`: relative names and bytes), `bucket`, `key`, `version`,
`object_sha256`. It is the deploy Command's trigger (an unchanged site is not deployed again) and
what the deploy deploys: the local `--out` when it is exactly that tree, else the published copy,
so a deploy that re-runs on another runner never needs this one's files.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from core.source_hash import output_hash
from steps import artifacts, package_manager, tool_output
from steps.args import StepParser, artifact_prefix, bucket_name, local_path, positive_seconds
from steps.runtime import PermanentError, directory_lock, log, run_step, run_tool, shown

DEFAULT_WEB_DIR = "apps/web"
EXPORT_DIR = "out"
# next build takes 10-20 s here; the limit only catches a hung build.
DEFAULT_TIMEOUT = 900.0
VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TEXT_SUFFIXES = (".html", ".js", ".mjs", ".txt", ".json", ".rsc", ".css")
_SOURCE_SUFFIXES = (".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".vue", ".svelte", ".astro")
_NOT_SOURCES = frozenset({"node_modules", "out", ".next", "dist", ".turbo", ".git"})


def relative_dir(text: str) -> Path:
    """`--export-dir`: a directory inside the site's package (no absolute path, no '..')."""
    path = local_path(text)
    if path.is_absolute() or ".." in path.parts or str(path) in ("", "."):
        raise argparse.ArgumentTypeError(f"must be a directory inside the site's package: {shown(text)}")
    return path


def baked_names(text: str) -> list[str]:
    """`--baked`: variable names, comma- or newline-separated (empty: none)."""
    names = [name.strip() for name in re.split(r"[,\n]", text) if name.strip()]
    bad = [name for name in names if not VARIABLE.fullmatch(name)]
    if bad:
        raise argparse.ArgumentTypeError(f"is not a list of variable names: {shown(bad[0])}")
    return names


def baked_environment(env: Mapping[str, str], names: Sequence[str]) -> dict[str, str]:
    """The values the pipeline bakes in, each of which must be set (empty counts as unset)."""
    unset = [name for name in names if not env.get(name)]
    if unset:
        raise PermanentError(
            f"{', '.join(unset)} {'is' if len(unset) == 1 else 'are'} not set, yet --baked names it",
            hint="the program passes every `siteOutputs` variable; run the step with each one in its environment",
        )
    return {name: env[name] for name in names}


def files_reading(web_dir: Path, variable: str, export_dir: str = EXPORT_DIR) -> list[str]:
    """The site's source files that mention `variable`, relative to `web_dir` (not in the export)."""
    found = []
    skipped = _NOT_SOURCES | {export_dir}
    for directory, subdirectories, files in os.walk(web_dir):
        subdirectories[:] = sorted(d for d in subdirectories if d not in skipped)
        for name in sorted(files):
            path = Path(directory) / name
            if name.endswith(_SOURCE_SUFFIXES) and variable in path.read_text(encoding="utf-8", errors="replace"):
                found.append(path.relative_to(web_dir).as_posix())
    return found


def absence_problem(web_dir: Path, variable: str, export_dir: str = EXPORT_DIR) -> str:
    """What to do about a baked value that is not in the export: the file that should read it."""
    readers = files_reading(web_dir, variable, export_dir)
    if readers:
        return (
            f"{variable} is read in {', '.join(readers[:3])} but its value is not in the export: read it at build "
            f"time as the literal process.env.{variable} (import.meta.env.{variable} with Vite; the bundler inlines "
            "only that form), in code that ends up in a page; a variable the build only uses (not shipped as it is) "
            "belongs in `siteEnvironment`, which is not checked"
        )
    return (
        f"no file under {web_dir} reads {variable}: read process.env.{variable} where the site needs it (e.g. its API "
        "client module), or drop it from the stack's `siteOutputs`"
    )


def files_of(root: Path) -> list[Path]:
    """Every file under `root`, sorted by relative POSIX name."""
    return sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix())


def _forms(value: str) -> set[str]:
    # Next writes a value raw into JS string literals, HTML-escaped into the page and
    # JSON-escaped into the RSC payload.
    return {value, html.escape(value, quote=True), json.dumps(value)[1:-1]}


def missing_values(export: Path, public: Mapping[str, str]) -> list[str]:
    """The names of the baked variables whose value is nowhere in the export."""
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


def build_and_publish(args: argparse.Namespace) -> dict[str, str]:
    """`build`, then publish the export; the record the step prints."""
    digest = build(args)
    out = Path(args.out)
    published = artifacts.publish(
        artifacts.deterministic_tarball(out, files_of(out)),
        sha256=digest,
        bucket=args.artifacts_bucket,
        prefix=args.artifacts_prefix,
        kind="site",
        suffix=".tar.gz",
        kms_key=args.artifacts_kms_key,
    )
    return published.line()


def build(args: argparse.Namespace) -> str:
    # Imported here: steps.install is another step's module and only the build needs it.
    from steps.install import ensure_installed

    app_dir = Path(args.app_dir)
    if not (app_dir / "package.json").is_file():
        raise PermanentError(
            f"--app-dir {shown(app_dir, quote=False)} has no package.json",
            hint="set `appDir` to the workspace root (the directory with the lockfile), relative to Pulumi.yaml",
        )
    web_dir = app_dir / args.web_dir
    if not (web_dir / "package.json").is_file():
        raise PermanentError(
            f"--web-dir {shown(args.web_dir, quote=False)} has no package.json in {shown(app_dir, quote=False)}",
            hint="set `webDir` (this step's --web-dir) to the site's package, relative to `appDir`",
        )
    baked = baked_environment(os.environ, args.baked)
    manager = package_manager.resolve(app_dir)
    ensure_installed(app_dir)
    env = {"NEXT_TELEMETRY_DISABLED": "1", "NEXT_BUILD_ID": os.environ.get("NEXT_BUILD_ID") or "static", "CI": "true"}
    log("build_site: baking in " + (", ".join(f"{k}={shown(v, quote=False)}" for k, v in baked.items()) or "nothing checked"))
    export = web_dir / args.export_dir
    # Builds of one app share .next/ and out/: one at a time.
    with directory_lock(web_dir, "build_site"):
        started = time.monotonic()
        argv = package_manager.run_argv(manager, "build")
        result = run_tool(argv, cwd=web_dir, env=env, timeout=args.timeout, what="site build")
        if not result.ok:
            where = shown(web_dir, quote=False)
            raise PermanentError(
                f"the build script of {where} exited {result.returncode}: {tool_output.summary(result.output, manager=manager.name)}",
                hint=f"fix that in the site's code (it fails the same way locally: cd {where} && {manager.name} run build)",
            )
        log(f"build_site: the build took {time.monotonic() - started:.1f}s")
        if not (export / "index.html").is_file():
            raise PermanentError(
                f"the build exited 0 but {export}/index.html does not exist",
                hint=f"the site's build script must write a static export to <webDir>/{args.export_dir}: set `siteOutDir` "
                "to where it writes (Vite: dist, or its build.outDir; Next.js: out, with output: 'export' in next.config)",
            )
        missing = missing_values(export, baked)
        if missing:
            raise PermanentError(
                f"the export in {export} does not contain the value of {', '.join(missing)}; "
                + "; ".join(absence_problem(web_dir, name, str(args.export_dir)) for name in missing)
            )
        out = Path(args.out)
        replace_dir(export, out)
    digest = output_hash(out)
    log(f"build_site: {len(files_of(out))} files in {out}, sha256 {digest}")
    return digest


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = StepParser(prog="python -m steps.build_site", description=__doc__.splitlines()[0])
    parser.add_argument("--app-dir", required=True, type=local_path, help="the npm workspace root (examples/app)")
    parser.add_argument("--out", required=True, type=local_path, help="where the export goes (replaced)")
    parser.add_argument("--web-dir", default=DEFAULT_WEB_DIR, type=local_path, help="the site's package, relative to --app-dir")
    parser.add_argument("--export-dir", default=EXPORT_DIR, type=relative_dir, help="where the build writes the export, relative to --web-dir")
    parser.add_argument(
        "--baked", type=baked_names, default=[], help="variables whose values must be in the export (comma-separated)"
    )
    parser.add_argument("--timeout", type=positive_seconds, default=DEFAULT_TIMEOUT, help="seconds next build may take")
    parser.add_argument("--artifacts-bucket", required=True, type=bucket_name, help="where the export is published")
    parser.add_argument("--artifacts-prefix", required=True, type=artifact_prefix, help="the stack's prefix in it")
    parser.add_argument("--artifacts-kms-key", default="", help="the KMS key that encrypts it (default: the bucket's)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # A failed build is a code problem, not a passing one: no retries (PermanentError), except
    # what ensure_installed retries inside.
    return run_step("build_site", critical=True, body=lambda: build_and_publish(args), attempts=2)


if __name__ == "__main__":
    sys.exit(main())
