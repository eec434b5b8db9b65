"""Re-run matrix: what `pulumi up` would re-run after each kind of change.

    python bench/rerun_matrix.py [--stack prod]

Evaluates the real program under the recording mocks on a copy of `examples/app`, twice on the
unchanged tree, then once after each change (the web app, the API, shared-schemas, the lockfile,
a stack config value). A Command re-runs when any of its inputs or triggers differ from the
baseline (pulumi-command: an input change re-runs `create`, a trigger change replaces it); other
resources are listed when their inputs differ (an update). The mocks fabricate what steps print
from their inputs, so a rebuilt bundle propagates as a new hash into the function, its version,
the alias and the checks, as it would for real.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.offline import Recording, committed_values, config_for, run_program  # noqa: E402
from core.stack_files import PROJECT_ROOT  # noqa: E402

IGNORED = shutil.ignore_patterns("node_modules", ".next", "out", "dist", ".turbo")
TARGETS = {
    "unchanged tree": set(),
    "web app": {"site-build", "site-deploy", "checks-site-health"},
    "shared-schemas": {
        "database-migrate",
        "api-build",
        "site-build",
        "api-function",
        "site-deploy",
        "checks-site-health",
        "checks-api-health",
    },
}


def append_line(relative: str, line: str) -> Callable[[Path], None]:
    def change(app: Path) -> None:
        path = app / relative
        path.write_text(path.read_text() + line + "\n")

    return change


CHANGES: dict[str, Callable[[Path], None] | dict[str, str]] = {
    "web app": append_line("apps/web/app/page.tsx", "// bench: a web-only change"),
    "API": append_line("apps/api/src/handler.ts", "// bench: an API-only change"),
    "shared-schemas": append_line("packages/shared-schemas/src/types.ts", "// bench: a shared-schemas change"),
    "lockfile": append_line("package-lock.json", ""),
    "config value (lambdaMemoryMb)": {"lambdaMemoryMb": "1024"},
}


def evaluate(stack: str, app: Path, overrides: dict[str, str] | None = None) -> tuple[Recording, float]:
    values = {**committed_values(stack), "appDir": str(app), **(overrides or {})}
    config = config_for(stack, values)
    config["webstack:databaseUrl"] = "postgres://bench:bench@localhost:5432/bench"
    started = time.perf_counter()
    recording = run_program(stack, config, secret_keys=("webstack:databaseUrl",))
    return recording, time.perf_counter() - started


def changed(baseline: Recording, after: Recording) -> tuple[list[str], list[str]]:
    """(Commands that would re-run, other resources that would update) between two evaluations."""
    commands, updates = [], []
    for urn, resource in after.resources.items():
        before = baseline.resources.get(urn)
        if before is not None and before.inputs == resource.inputs:
            continue
        if resource.type == "command:local:Command":
            commands.append(resource.name)
        elif resource.custom:
            updates.append(resource.name)
    return sorted(commands), sorted(updates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="prod")
    options = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="rerun-matrix-") as scratch:
        pristine, app = Path(scratch) / "pristine", Path(scratch) / "app"
        shutil.copytree(PROJECT_ROOT / "examples" / "app", pristine, ignore=IGNORED)

        def fresh_app() -> Path:
            # Every evaluation sees the app at the same path: the path is part of the inputs.
            shutil.rmtree(app, ignore_errors=True)
            shutil.copytree(pristine, app)
            return app

        baseline, seconds = evaluate(options.stack, fresh_app())
        again, _ = evaluate(options.stack, fresh_app())
        rows = [("unchanged tree", *changed(baseline, again))]
        for label, change in CHANGES.items():
            if isinstance(change, dict):
                recording, _ = evaluate(options.stack, fresh_app(), change)
            else:
                change(fresh_app())
                recording, _ = evaluate(options.stack, app)
            rows.append((label, *changed(baseline, recording)))

    print(f"Re-run matrix for stack {options.stack!r} (first evaluation under mocks, imports included: {seconds:.2f} s)\n")
    print("| change | Commands `pulumi up` re-runs | other resources updated | target met |")
    print("|---|---|---|---|")
    misses = 0
    for label, commands, updates in rows:
        target = TARGETS.get(label)
        if target is None:
            verdict = "—"
        else:
            actual = set(commands) | set(updates)
            met = actual == target | _follow_on(label, actual)
            verdict = "yes" if met else f"NO (expected {sorted(target)})"
            misses += not met
        print(f"| {label} | {len(commands)}: {', '.join(commands) or '—'} | {', '.join(updates) or '—'} | {verdict} |")
    return 1 if misses else 0


def _follow_on(label: str, actual: set[str]) -> set[str]:
    """In prod a new function version also moves the alias, which is verified and pruned after."""
    if label == "shared-schemas":
        return actual & {"api-alias", "api-verify-alias", "api-prune-versions"}
    return set()


if __name__ == "__main__":
    sys.exit(main())
