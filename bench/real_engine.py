"""Real `pulumi up` times: a PR stack and prod, each first, no-op, and after a web-only change.

    python bench/real_engine.py [--keep]

Starts a local cloud of its own in a temp dir (sandbox.cloud), copies examples/app there (its
node_modules hard-linked, so no `npm ci`; build outputs left behind), and times `pulumi up --yes`
exactly as the workflows run it (the policy pack on) with the real CLI (bin/pulumi) for
`prod` and `preview-pr-41`. The wall time of each run is printed with what the engine changed.
Figures only: nothing is asserted. The cloud and the temp dir are removed at the end unless
`--keep`. Run from the repository with its virtualenv (`.venv/bin/python bench/real_engine.py`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.cloud import ensure_running, stop  # noqa: E402
from sandbox.engine import BIN_DIR  # noqa: E402
from sandbox.stack import LocalStack  # noqa: E402

APP = ROOT / "examples" / "app"
IGNORED = shutil.ignore_patterns("node_modules", ".next", "out", "dist", ".turbo", ".wrangler", "next-env.d.ts")
# prod first, as in the real world: it creates the Pages project the PR stacks deploy into (a PR
# stack first would make the sandbox create it, and prod's own create would then meet a 409).
STACKS = ("prod", "preview-pr-41")


def copy_app(destination: Path) -> Path:
    shutil.copytree(APP, destination, ignore=IGNORED, symlinks=True)
    # Hard links: Turbopack resolves `next` only inside the workspace root (a symlink fails).
    if subprocess.run(["cp", "-al", str(APP / "node_modules"), str(destination / "node_modules")]).returncode:
        shutil.copytree(APP / "node_modules", destination / "node_modules", symlinks=True)
    shutil.rmtree(destination / "node_modules" / ".cache", ignore_errors=True)
    return destination


def up(stack: LocalStack) -> tuple[float, str]:
    policy = stack.root / f"policy-{stack.name}.json"
    subprocess.run(
        [sys.executable, "-m", "policy.pack_config", "--stack", stack.name, "--repository", "sandbox/webstack",
         "--config-file", str(stack.config_file), "--output", str(policy)],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    started = time.perf_counter()
    result = stack.pulumi("up", "--yes", "--json", "--policy-pack", str(ROOT / "policy"), "--policy-pack-config", str(policy))
    seconds = time.perf_counter() - started
    changes: dict[str, int] = {}
    for line in result.stdout.splitlines():
        if line.startswith('{"sequence"') and '"summaryEvent"' in line:
            changes = json.loads(line)["summaryEvent"]["resourceChanges"]
    shown = ", ".join(f"{op} {n}" for op, n in sorted(changes.items(), key=lambda kv: kv[0] == "same"))
    return seconds, shown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the cloud running and its temp dir in place")
    args = parser.parse_args()
    if not (BIN_DIR / "pulumi").exists():
        raise SystemExit("bin/pulumi is missing: python -m sandbox.engine build")
    from steps.install import ensure_installed

    ensure_installed(APP)
    root = Path(tempfile.mkdtemp(prefix="webstack-bench-"))
    rows: list[tuple[str, str, float, str]] = []
    try:
        started = time.perf_counter()
        endpoints = ensure_running(root)
        print(f"local cloud up in {time.perf_counter() - started:.1f}s ({root})", file=sys.stderr)
        for name in STACKS:
            app = copy_app(root / "apps" / name)
            stack = LocalStack(root=root, name=name, endpoints=endpoints)
            stack.init(appDir=str(app))
            for run in ("first", "no-op", "web change"):
                if run == "web change":
                    page = app / "apps" / "web" / "app" / "page.tsx"
                    page.write_text(page.read_text().replace("<h1>Example app</h1>", "<h1>Example app (bench)</h1>"))
                seconds, changes = up(stack)
                rows.append((name, run, seconds, changes))
                print(f"{name:<14} {run:<11} {seconds:6.1f}s", file=sys.stderr)
    finally:
        if not args.keep:
            stop(root)
            shutil.rmtree(root, ignore_errors=True)

    print(f"\n{'stack':<14} {'pulumi up':<11} {'seconds':>8}  engine changes")
    for name, run, seconds, changes in rows:
        print(f"{name:<14} {run:<11} {seconds:8.1f}  {changes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
