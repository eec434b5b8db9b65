"""Deploy step: bundle the Lambda API with esbuild (critical).

`python -m steps.build_lambda --app-dir DIR --entry FILE --out DIR`

Paths are relative to the working directory (the program runs this in the API's directory, so
that the Command's `archive_paths=["dist/**"]` puts `index.js` at the archive's root). Makes sure
the workspace is installed (`steps.install`), clears `--out`, and bundles `--entry` with the
workspace's own esbuild into `<out>/index.js` (+ `index.js.map`): node20, CommonJS, minified,
`pg-native` left out. The same sources give the same bytes: esbuild writes no timestamps and the
source map's paths are relative to the out directory, which stays at the same place in the app.
That is what lets an unchanged push publish no new Lambda version.

Prints the sha256 of `index.js` (64 hex digits) on stdout: the program passes it to the function
as `APP_VERSION`.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
from pathlib import Path

from steps.args import StepParser, local_path
from steps.runtime import PermanentError, log, run_step, run_tool, shown

BUNDLE = "index.js"
# esbuild takes well under a second for this app; the limit only catches a hung process.
ESBUILD_TIMEOUT = 300.0


def esbuild_argv(esbuild: Path, entry: Path, out_dir: Path) -> list[str]:
    """The esbuild command line (the app's README documents the same flags)."""
    return [
        str(esbuild),
        str(entry),
        "--bundle",
        "--platform=node",
        "--target=node20",
        "--format=cjs",
        "--minify",
        "--sourcemap",
        # pg's optional native binding: never installed, and `pg` falls back to pure JS.
        "--external:pg-native",
        "--log-level=warning",
        f"--outfile={out_dir / BUNDLE}",
    ]


def _inside(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def clear_out_dir(out_dir: Path, *, keep: list[Path]) -> None:
    """Empty `out_dir` (a stale file would end up in the archive), refusing a directory that holds
    one of `keep` (the app, the entry, the working directory): a wrong `--out` must not delete
    sources."""
    target = out_dir.resolve()
    for path in keep:
        if _inside(path.resolve(), target):
            raise PermanentError(
                f"refusing to clear --out {shown(out_dir, quote=False)}: it contains {shown(path, quote=False)}",
                hint="point --out at a build directory of its own (the program uses dist)",
            )
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(app_dir: Path, entry: Path, out_dir: Path) -> str:
    """Install if needed, bundle, check the result; return the bundle's sha256."""
    if not (app_dir / "package.json").is_file():
        raise PermanentError(
            f"--app-dir {shown(app_dir, quote=False)} is not an npm workspace (no package.json) seen from {Path.cwd()}",
            hint="pass the app's workspace root, relative to the working directory",
        )
    if not entry.is_file():
        raise PermanentError(f"--entry {shown(entry, quote=False)} does not exist (seen from {Path.cwd()})",
                             hint="pass the handler's source file, relative to the working directory")

    # Imported here: steps.install is its own step and the build only needs its entry point.
    from steps.install import ensure_installed

    ensure_installed(app_dir)
    esbuild = (app_dir / "node_modules" / ".bin" / "esbuild").resolve()
    if not esbuild.is_file():
        raise PermanentError(
            f"{shown(esbuild, quote=False)} is missing after installing {shown(app_dir, quote=False)}",
            hint="the workspace must list esbuild in its devDependencies (pinned in the lockfile)",
        )

    clear_out_dir(out_dir, keep=[app_dir / "package.json", entry, Path.cwd()])
    started = time.monotonic()
    result = run_tool(esbuild_argv(esbuild, entry, out_dir), cwd=".", timeout=ESBUILD_TIMEOUT, what="esbuild")
    elapsed = time.monotonic() - started
    bundle = out_dir / BUNDLE
    if not result.ok:
        raise PermanentError(
            f"esbuild exited with {result.returncode} bundling {shown(entry, quote=False)}",
            hint="fix the build error shown above (run `npm run build -w @app/api` locally) and push again",
        )
    if not bundle.is_file() or bundle.stat().st_size == 0 or not (out_dir / f"{BUNDLE}.map").is_file():
        raise PermanentError(f"esbuild exited 0 but {shown(bundle, quote=False)} (or its source map) is missing or empty")
    digest = sha256_file(bundle)
    log(f"bundle {shown(bundle, quote=False)}: {bundle.stat().st_size} bytes in {elapsed:.2f}s, sha256 {digest}")
    return digest


def main(argv: list[str] | None = None) -> int:
    parser = StepParser(prog="python -m steps.build_lambda", description=__doc__.splitlines()[0])
    parser.add_argument("--app-dir", required=True, type=local_path, help="npm workspace root")
    parser.add_argument("--entry", required=True, type=local_path, help="handler source file")
    parser.add_argument("--out", required=True, type=local_path, help="output directory (cleared first)")
    args = parser.parse_args(argv)
    return run_step("build_lambda", critical=True, body=lambda: build(args.app_dir, args.entry, args.out))


if __name__ == "__main__":
    sys.exit(main())
