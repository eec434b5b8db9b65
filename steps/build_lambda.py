"""Deploy step: bundle the Lambda API with esbuild (critical).

`python -m steps.build_lambda --app-dir DIR --entry FILE --out DIR [--format cjs|esm]
    [--external "MODULE\nMODULE"] [--extra-files "GLOB\nGLOB"]
    --artifacts-bucket BUCKET --artifacts-prefix PREFIX [--artifacts-kms-key KEY]`

Paths are relative to the working directory (the program runs this in the API's directory, so
that the Command's `archive_paths=["dist/**"]` puts the bundle at the archive's root). Makes sure
the workspace is installed (`steps.install`), clears `--out`, and bundles `--entry` with the
workspace's own esbuild (else the pipeline's, `core.versions.ESBUILD_VERSION`) into `<out>/index.js` (CommonJS) or `<out>/index.mjs` (ESM, with a
`require` for the CommonJS packages it bundles), + source map: the Lambda runtime's Node, minified, `pg-native` and
every `--external` module left out. External modules are copied with their dependencies (and the
optional ones installed: native parts) into `<out>/node_modules` (the bundle `require`s them at
run time), found where node finds them from the API's package, else where the workspace installed
them for another of its packages; `--extra-files` globs must match
files (the Command's `archive_paths` ships them at their own paths beside `<out>`). The same sources give the same bytes: esbuild writes no
timestamps and the source map's paths are relative to the out directory.

Then it checks what it built, the way Lambda will use it: an esbuild warning that predicts a broken
bundle (`import.meta` in CommonJS, say) fails the build with esbuild's own text, and the bundle is
loaded under node from a copy of what Lambda gets (`<out>` and the extra files, nothing else),
where `handler` must be an exported function.

Then it zips exactly what Lambda extracts (deterministically: the same files give the same bytes)
and publishes the zip to the artifacts bucket under its content hash (`steps.artifacts`), and
prints the record on stdout, one JSON line: `sha256` (the hash of exactly what Lambda extracts,
`core.source_hash.output_hash`: the function's `APP_VERSION` and the next Command's trigger),
`bucket`, `key`, `version` (the pinned object version) and `object_sha256` (the zip's). The
function takes its code from that record, so no later deploy needs this runner's `dist/`.
"""

from __future__ import annotations

import argparse
import glob
import json
import re
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.source_hash import output_hash
from core.versions import ESBUILD_TARGET, ESBUILD_VERSION, LAMBDA_ARCHITECTURE
from steps import artifacts, tool_output
from steps.args import StepParser, artifact_prefix, bucket_name, local_path
from steps.package_manager import npm_tool
from steps.runtime import PermanentError, log, run_step, run_tool, shown, warn

BUNDLES = {"cjs": "index.js", "esm": "index.mjs"}
BUNDLE = BUNDLES["cjs"]
# esbuild takes well under a second for this app; the limit only catches a hung process.
ESBUILD_TIMEOUT = 300.0
LOAD_TIMEOUT = 60.0
# An ESM bundle of CommonJS packages (pg, jose's cjs build) calls `require` for Node's builtins.
ESM_BANNER = "import{createRequire as __webstackCreateRequire}from'module';const require=__webstackCreateRequire(import.meta.url);"
# esbuild warnings whose bundle throws or misbehaves at run time; every other warning is logged.
BREAKING_WARNINGS = frozenset(
    {"empty-import-meta", "commonjs-variable-in-esm", "require-resolve-not-external", "unsupported-dynamic-import",
     "unsupported-require-call", "import-is-undefined", "call-import-namespace"}
)
_WARNING = re.compile(r"\[WARNING\] (?P<text>.*?) \[(?P<id>[a-z-]+)\]\s*$")
_MODULE = re.compile(r"(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*")


def esbuild_argv(
    esbuild: Path, entry: Path, out_dir: Path, *, format: str = "cjs", external: Sequence[str] = ()
) -> list[str]:
    """The esbuild command line."""
    argv = [
        str(esbuild),
        str(entry),
        "--bundle",
        "--platform=node",
        f"--target={ESBUILD_TARGET}",
        f"--format={format}",
        "--minify",
        "--sourcemap",
        # pg's optional native binding: never installed, and `pg` falls back to pure JS.
        "--external:pg-native",
        *(f"--external:{module}" for module in external),
        "--log-level=warning",
        f"--outfile={out_dir / BUNDLES[format]}",
    ]
    if format == "esm":
        argv.append(f"--banner:js={ESM_BANNER}")
    return argv


def local_command(entry: Path, format: str, external: Sequence[str]) -> str:
    """How to run the same bundle by hand, for the hints: the app's own entry, not a script name."""
    flags = " ".join(f"--external:{m}" for m in ("pg-native", *external))
    return f"npx esbuild {entry} --bundle --platform=node --target={ESBUILD_TARGET} --format={format} {flags} --outfile=/tmp/bundle.js"


def breaking_warnings(output: str) -> list[str]:
    """esbuild's own text of each warning that predicts a broken bundle, with its location line."""
    lines = output.splitlines()
    found = []
    for index, line in enumerate(lines):
        match = _WARNING.search(line)
        if match and match["id"] in BREAKING_WARNINGS:
            where = next((text.strip() for text in lines[index + 1 : index + 4] if re.search(r":\d+:\d+:", text)), "")
            found.append(f"{match['text']} [{match['id']}]" + (f" at {where.rstrip(':')}" if where else ""))
    return found


def list_lines(text: str) -> list[str]:
    """A newline-separated list flag (the program passes lists this way); blank lines dropped."""
    return [item.strip() for item in text.splitlines() if item.strip()]


def module_list(text: str) -> list[str]:
    modules = list_lines(text)
    bad = [m for m in modules if not _MODULE.fullmatch(m)]
    if bad:
        raise argparse.ArgumentTypeError(f"is not a list of npm package names: {shown(bad[0])}")
    return modules


def glob_list(text: str) -> list[str]:
    patterns = list_lines(text)
    bad = [p for p in patterns if p.startswith("/") or ".." in Path(p).parts]
    if bad:
        raise argparse.ArgumentTypeError(f"must be globs relative to the API's directory: {shown(bad[0])}")
    return patterns


def package_dir(module: str, start: Path, app_dir: Path) -> Path | None:
    """Where node would find `module` from `start`: the nearest node_modules up to the workspace root."""
    directory, root = start.resolve(), app_dir.resolve()
    while True:
        candidate = directory / "node_modules" / module
        if (candidate / "package.json").is_file():
            return candidate.resolve()
        if directory == root or directory.parent == directory:
            return None
        directory = directory.parent


def workspace_packages(app_dir: Path) -> list[Path]:
    """The workspace's own packages (directories with a package.json outside node_modules), nearest first."""
    found = []
    for directory, subdirectories, files in os.walk(app_dir):
        subdirectories[:] = sorted(d for d in subdirectories if d != "node_modules" and not d.startswith("."))
        if "package.json" in files:
            found.append(Path(directory))
    return sorted(found, key=lambda path: (len(path.parts), str(path)))


def installed_anywhere(module: str, app_dir: Path) -> list[Path]:
    """Where `module` is installed for some workspace package: pnpm links a package only into the
    node_modules of the packages that declare it (a dependency of a workspace dependency is not
    under the API's), and keeps every package hoisted in node_modules/.pnpm/node_modules."""
    places = [package / "node_modules" / module for package in workspace_packages(app_dir)]
    places.append(app_dir / "node_modules" / ".pnpm" / "node_modules" / module)
    return list(dict.fromkeys(place.resolve() for place in places if (place / "package.json").is_file()))


def _version_of(package: Path) -> str:
    try:
        return str(json.loads((package / "package.json").read_text(encoding="utf-8")).get("version", "?"))
    except (OSError, ValueError):
        return "?"


def locate_external(module: str, start: Path, app_dir: Path) -> Path | None:
    """`module` as node finds it from `start`, else as some workspace package has it installed."""
    found = package_dir(module, start, app_dir)
    if found is not None:
        return found
    anywhere = installed_anywhere(module, app_dir)
    versions = sorted({_version_of(place) for place in anywhere})
    if len(versions) > 1:
        warn(f"build_lambda: {module} is installed in several versions ({', '.join(versions)}); shipping "
             f"{_version_of(anywhere[0])} from {anywhere[0]}")  # fmt: skip
    return anywhere[0] if anywhere else None


def native_problem(package: Path, name: str) -> str | None:
    """Why `package`'s native code will not load on the function (another CPU), if it will not."""
    try:
        manifest = json.loads((package / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    cpus = manifest.get("cpu") or []
    wanted = {"arm64": ("arm64",), "x86_64": ("x64",)}[LAMBDA_ARCHITECTURE]
    if isinstance(cpus, list) and cpus and not any(cpu in wanted for cpu in cpus):
        return f"{name} is native code for {'/'.join(map(str, cpus))}"
    if not cpus and any(package.rglob("*.node")) and os.uname().machine not in ("aarch64", "arm64"):
        return f"{name} holds .node binaries built for this machine ({os.uname().machine})"
    return None


def copy_external(modules: Sequence[str], api_dir: Path, app_dir: Path, out_dir: Path) -> list[str]:
    """Copy each external module with its dependencies and the optional dependencies that are
    installed (native parts: `@node-rs/argon2-linux-x64-gnu`), resolved the way node would (symlinks
    of pnpm followed), into `<out>/node_modules`; returns what was copied."""
    copied: dict[str, Path] = {}
    # (module, where node looks for it from, how it was asked for: "external" | "dependency" | "optional")
    pending = [(module, api_dir, "external") for module in modules]
    native: list[str] = []
    while pending:
        module, start, kind = pending.pop()
        if module in copied:
            continue
        source = locate_external(module, start, app_dir) if kind == "external" else package_dir(module, start, app_dir)
        if source is None and kind == "optional":
            continue  # not for this platform: the package manager skipped it
        if source is None:
            raise PermanentError(
                f"external module {module} is not installed for {shown(start, quote=False)} nor for any package of "
                f"the workspace {shown(app_dir, quote=False)}",
                hint="add it to the API package's dependencies (and the lockfile), or drop it from `apiExternal`",
            )
        copied[module] = source
        shutil.copytree(source, out_dir / "node_modules" / module, symlinks=False, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("node_modules"))
        if problem := native_problem(source, module):
            native.append(problem)
        manifest = json.loads((source / "package.json").read_text(encoding="utf-8"))
        pending += [(dependency, source, "dependency") for dependency in (manifest.get("dependencies") or {})]
        pending += [(dependency, source, "optional") for dependency in (manifest.get("optionalDependencies") or {})]
    if native:
        warn(
            f"build_lambda: {'; '.join(native)}, but the function runs on {LAMBDA_ARCHITECTURE} Linux: it loads here (and "
            f"in the local sandbox) but not on Lambda. Build on an {LAMBDA_ARCHITECTURE} runner, or install the "
            f"{LAMBDA_ARCHITECTURE} package too (npm install --cpu=arm64 --os=linux)"
        )
    return sorted(copied)


def extra_files_of(patterns: Sequence[str], out_dir: Path) -> list[str]:
    """The files each glob (relative to the working directory, the API's) names; the Command's
    `archive_paths` ships them at these paths beside `dist/`, so code that reads
    `new URL('../data/x.json', import.meta.url)` from `src/` finds them from `dist/` too. A glob
    that matches nothing is an error."""
    found: list[str] = []
    target = out_dir.resolve()
    for pattern in patterns:
        matches = sorted(p for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
        matches = [p for p in matches if target not in Path(p).resolve().parents]
        if not matches:
            raise PermanentError(
                f"extra file pattern {shown(pattern)} matches no file in {Path.cwd()}",
                hint="`apiExtraFiles` globs are relative to `apiDir`; fix the pattern or add the file",
            )
        found += [m for m in matches if m not in found]
    return found


def task_root(out_dir: Path, extras: Sequence[str], into: Path) -> Path:
    """What Lambda extracts: `<out>/...` and the extra files at their relative paths, nothing else
    of the API's directory (a file the code reads from outside them is missing there too)."""
    relative = Path(os.path.relpath(out_dir, Path.cwd()))
    if relative.parts and relative.parts[0] == "..":
        relative = Path(out_dir.name)
    shutil.copytree(out_dir, into / relative, symlinks=False)
    for extra in extras:
        (into / extra).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(extra, into / extra)
    return into / relative


LOADER = """
const path = require('node:path');
const { pathToFileURL } = require('node:url');
const file = path.resolve(process.argv[1]);
const say = (answer) => { process.stdout.write('\\n' + JSON.stringify(answer) + '\\n'); process.exit(0); };
const failed = (error) => say({
  error: String((error && error.stack) || error).split('\\n').slice(0, 2).join(' '),
  name: (error && error.name) || '', code: (error && error.code) || '',
});
let load;
try {
  load = file.endsWith('.mjs') ? import(pathToFileURL(file).href) : Promise.resolve(require(file));
} catch (error) {
  load = Promise.reject(error);
}
load.then((mod) => {
  const handler = mod.handler ?? (mod.default && mod.default.handler);
  say({ type: typeof handler, exports: Object.keys(mod).slice(0, 20) });
}, failed);
"""
# Load failures that the bundle itself causes, whatever settings the function gets: a module left
# out or not shipped, CommonJS/ESM mixed up, code node cannot parse.
_BUILD_CAUSED = re.compile(
    r"ERR_MODULE_NOT_FOUND|MODULE_NOT_FOUND|ERR_REQUIRE_ESM|Dynamic require of|require is not defined|"
    r"Cannot use import statement|exports is not defined|module is not defined|ENOENT"
)


def check_loads(bundle: Path, entry: Path) -> None:
    """Load the bundle as Lambda's node runtime will, and require `handler` to be a function.

    It loads without the function's settings (they are the stack's, some secret): a module that
    throws at load because a setting is missing is only a warning here, and the pre-traffic check
    runs it with the real ones. What the bundle causes itself fails the build.
    """
    result = run_tool(["node", "-e", LOADER, str(bundle.resolve())], cwd=bundle.parent, env={"NODE_OPTIONS": ""},
                      timeout=LOAD_TIMEOUT, what="load bundle")
    lines = [line for line in result.output.splitlines() if line.startswith("{")]
    try:
        answer = json.loads(lines[-1]) if lines else {}
    except ValueError:
        answer = {}
    if "error" in answer or not result.ok:
        cause = shown(answer.get("error") or f"node exited {result.returncode}", 300, quote=False)
        if answer.get("name") == "SyntaxError" or _BUILD_CAUSED.search(f"{answer.get('code', '')} {cause}") or not answer:
            raise PermanentError(
                f"the bundle built from {shown(entry, quote=False)} throws when it loads: {cause}",
                hint="the function would fail the same way on Lambda, which gets only the bundle directory and `apiExtraFiles`: "
                "ship the file (`apiExtraFiles`) or the module (`apiExternal` copies it with its dependencies), or set "
                "`apiFormat` to match the code (esm for top-level await / import.meta)",
            )
        warn(
            f"build_lambda: the bundle built from {shown(entry, quote=False)} throws when it loads without the function's "
            f"settings: {cause}; if it needs a setting at load, the pre-traffic check runs it with the real ones"
        )
        return
    if answer.get("type") != "function":
        raise PermanentError(
            f"the bundle built from {shown(entry, quote=False)} exports no handler function (handler is {answer.get('type')}; "
            f"exports: {', '.join(answer.get('exports') or []) or 'none'})",
            hint="export the Lambda handler as `export const handler = async (event) => ...` from `apiEntry`",
        )


def declares(package_dir: Path, name: str) -> bool:
    """Whether the package.json in `package_dir` lists `name` among its (dev) dependencies."""
    try:
        manifest = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return any(isinstance(manifest.get(key), dict) and name in manifest[key] for key in ("dependencies", "devDependencies"))


def esbuild_for(app_dir: Path, api_dir: Path) -> Path:
    """The esbuild the app declares (its root's or its API package's, from node_modules/.bin), else the
    pipeline's (ESBUILD_VERSION, from the npm registry into the tools directory): an app need not
    carry a bundler for our sake, and one that a dependency happens to bring (drizzle-kit 0.22's
    esbuild 0.19) is not the app's choice."""
    if declares(app_dir, "esbuild") or declares(api_dir, "esbuild"):
        for directory in (api_dir, app_dir):
            own = directory / "node_modules" / ".bin" / "esbuild"
            if own.is_file():
                return own.resolve()
        raise PermanentError(
            f"the workspace {shown(app_dir, quote=False)} declares esbuild, but node_modules/.bin/esbuild is missing after "
            "the install",
            hint="check that the lockfile installs esbuild (its platform package too), or drop it: the pipeline brings its own",
        )
    log(f"build_lambda: {shown(app_dir, quote=False)} declares no esbuild; using the pipeline's esbuild {ESBUILD_VERSION}")
    return Path(npm_tool("esbuild", ESBUILD_VERSION))


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


@dataclass(frozen=True, kw_only=True)
class Bundle:
    """What a build made: the bundle's digest and the zip of what Lambda extracts."""

    sha256: str
    zipped: bytes


@dataclass(frozen=True, kw_only=True)
class Destination:
    """Where the zip goes: the artifacts bucket, the stack's prefix, the key that encrypts it."""

    bucket: str
    prefix: str
    kms_key: str = ""


def build_and_publish(app_dir: Path, entry: Path, out_dir: Path, destination: Destination, **options: Any) -> dict[str, str]:
    """`build`, then publish its zip; the record the step prints."""
    bundle = build(app_dir, entry, out_dir, **options)
    published = artifacts.publish(
        bundle.zipped,
        sha256=bundle.sha256,
        bucket=destination.bucket,
        prefix=destination.prefix,
        kind="api",
        suffix=".zip",
        kms_key=destination.kms_key,
    )
    return published.line()


def build(
    app_dir: Path,
    entry: Path,
    out_dir: Path,
    *,
    format: str = "cjs",
    external: Sequence[str] = (),
    extra_files: Sequence[str] = (),
) -> Bundle:
    """Install if needed, bundle, check the result; the hash of what Lambda extracts and its zip."""
    if not (app_dir / "package.json").is_file():
        raise PermanentError(
            f"--app-dir {shown(app_dir, quote=False)} is not an npm workspace (no package.json) seen from {Path.cwd()}",
            hint="pass the app's workspace root, relative to the working directory",
        )
    if not entry.is_file():
        raise PermanentError(f"--entry {shown(entry, quote=False)} does not exist (seen from {Path.cwd()})",
                             hint="set `apiEntry` (relative to `apiDir`) to the file that exports the handler")

    # Imported here: steps.install is its own step and the build only needs its entry point.
    from steps.install import ensure_installed

    ensure_installed(app_dir)
    esbuild = esbuild_for(app_dir, Path.cwd())

    clear_out_dir(out_dir, keep=[app_dir / "package.json", entry, Path.cwd()])
    started = time.monotonic()
    argv = esbuild_argv(esbuild, entry, out_dir, format=format, external=external)
    result = run_tool(argv, cwd=".", timeout=ESBUILD_TIMEOUT, what="esbuild")
    elapsed = time.monotonic() - started
    bundle = out_dir / BUNDLES[format]
    again = f"it fails the same way locally: {local_command(entry, format, external)}"
    if not result.ok:
        raise PermanentError(
            f"esbuild exited with {result.returncode} bundling {shown(entry, quote=False)}: {tool_output.summary(result.output)}",
            hint=f"fix that in the API's code ({again}) and push again",
        )
    broken = breaking_warnings(result.output)
    if broken:
        raise PermanentError(
            f"esbuild warns that the {format} bundle of {shown(entry, quote=False)} will break: {'; '.join(broken)}",
            hint=f"set `apiFormat` to esm for top-level await / import.meta, or change the code ({again})",
        )
    if not bundle.is_file() or bundle.stat().st_size == 0 or not (out_dir / f"{bundle.name}.map").is_file():
        raise PermanentError(f"esbuild exited 0 but {shown(bundle, quote=False)} (or its source map) is missing or empty")
    shipped = copy_external(external, Path.cwd(), app_dir, out_dir) if external else []
    extras = extra_files_of(extra_files, out_dir) if extra_files else []
    with tempfile.TemporaryDirectory(prefix="lambda-task-") as staging:
        root = Path(staging)
        shipped_out = task_root(out_dir, extras, root)
        check_loads(shipped_out / bundle.name, entry)
        digest = output_hash(root)
        if shipped or extras:
            log(f"shipped with the bundle: modules {', '.join(shipped) or 'none'}; files {', '.join(extras) or 'none'}")
        # Zipped from the copy the load check used: exactly what Lambda extracts.
        zipped = artifacts.deterministic_zip(root, sorted(p for p in root.rglob("*") if p.is_file()))
    log(f"bundle {shown(bundle, quote=False)}: {bundle.stat().st_size} bytes in {elapsed:.2f}s, sha256 {digest}")
    return Bundle(sha256=digest, zipped=zipped)


def main(argv: list[str] | None = None) -> int:
    parser = StepParser(prog="python -m steps.build_lambda", description=__doc__.splitlines()[0])
    parser.add_argument("--app-dir", required=True, type=local_path, help="npm workspace root")
    parser.add_argument("--entry", required=True, type=local_path, help="handler source file")
    parser.add_argument("--out", required=True, type=local_path, help="output directory (cleared first)")
    parser.add_argument("--format", choices=sorted(BUNDLES), default="cjs", help="bundle format")
    parser.add_argument("--external", type=module_list, default=[], help="modules left out of the bundle, one a line")
    parser.add_argument("--extra-files", type=glob_list, default=[], help="globs of files shipped next to it, one a line")
    parser.add_argument("--artifacts-bucket", required=True, type=bucket_name, help="where the zip is published")
    parser.add_argument("--artifacts-prefix", required=True, type=artifact_prefix, help="the stack's prefix in it")
    parser.add_argument("--artifacts-kms-key", default="", help="the KMS key that encrypts it (default: the bucket's)")
    args = parser.parse_args(argv)
    destination = Destination(bucket=args.artifacts_bucket, prefix=args.artifacts_prefix, kms_key=args.artifacts_kms_key)
    return run_step(
        "build_lambda",
        critical=True,
        body=lambda: build_and_publish(
            args.app_dir,
            args.entry,
            args.out,
            destination,
            format=args.format,
            external=args.external,
            extra_files=args.extra_files,
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
