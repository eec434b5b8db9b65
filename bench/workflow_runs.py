"""The times users feel: the workflows' own runs, under act, against a local cloud of their own.

    python bench/workflow_runs.py [--keep]

Sets up the world of the workflow scenarios (sandbox/scenarios.py: a local cloud, the GitHub
stand-in, this working tree as the repository, prod bootstrapped), lets the first push make prod
live, then times:

- a push to healthy prod (deploy.yml: the security gate's jobs and the deploy), once with the
  runner's cache emptied (cold: pip, npm and the build outputs downloaded or made again) and once
  with the cache the cold run left (warm);
- a pull request opened until its comment is posted (preview.yml, both jobs);
- the pull request closed until nothing of it is left (cleanup.yml, then the services checked).

Each line gives the run's wall time, its slowest steps, and beside it the floor the run cannot go
under: the time of its `pulumi up`/`destroy` step alone (what the engine itself takes). Figures
only: nothing is asserted. Everything is removed at the end unless `--keep`. Run from the
repository with its virtualenv (`.venv/bin/python bench/workflow_runs.py`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.names import function_name  # noqa: E402
from sandbox.scenarios import PROJECT, World  # noqa: E402
from sandbox.workflow_runner import RunRecord  # noqa: E402

PR = 41
FLOOR_STEPS = ("pulumi up", "Destroy and remove the PR stack")


def step_seconds(record: RunRecord) -> list[tuple[float, str, str]]:
    """(seconds, job, step) of every Main step, from act's log of the run."""
    found = []
    for line in record.log_file.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("stage") == "Main" and "executionTime" in entry and entry.get("stepResult"):
            found.append((entry["executionTime"] / 1e9, str(entry.get("jobID")), str(entry.get("step"))[:48].replace("\n", " ")))
    return found


def report(label: str, record: RunRecord, seconds: float | None = None) -> None:
    steps = step_seconds(record)
    floor = sum(s for s, _, name in steps if name in FLOOR_STEPS)
    slowest = ", ".join(f"{name} {s:.0f}s" for s, _, name in sorted(steps, reverse=True)[:4])
    total = record.seconds if seconds is None else seconds
    print(f"{label:<34} {total:7.1f}s  ({record.conclusion}; engine floor {floor:.1f}s; slowest: {slowest})", flush=True)


def web_change(world: World, text: str) -> dict[str, str]:
    page = sorted((world.repository.work / "examples/app/apps/web").rglob("page.tsx"))[0]
    return {str(page.relative_to(world.repository.work)): page.read_text() + f"\n// {text}\n"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the world's directory (its cloud is stopped)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-workflows-"))
    try:
        with World.create(root) as world:
            started = time.perf_counter()
            world.bootstrap_prod()
            print(f"{'bootstrap of prod (operator, once)':<34} {time.perf_counter() - started:7.1f}s", flush=True)
            report("first push (prod made live)", world.push_main("First deploy", web_change(world, "first")))
            world.create_preview_login()
            world.runner.empty_cache()
            report("push to healthy prod, cold cache", world.push_main("Cold", web_change(world, "cold")))
            report("push to healthy prod, warm cache", world.push_main("Warm", web_change(world, "warm")))

            started = time.perf_counter()
            opened = world.open_pr(PR, f"feature-{PR}", "A feature", web_change(world, f"pr {PR}"))
            world.wait_for("the PR comment", lambda: bool(world.github.comments(PR)), timeout=60)
            report("PR opened -> comment posted", opened, time.perf_counter() - started)

            started = time.perf_counter()
            closed = world.close_pr(PR)
            stack = f"preview-pr-{PR}"
            functions = [f["FunctionName"] for f in world.aws("lambda").list_functions()["Functions"]]
            left = [k for k in world.backend_objects() if f"/{stack}." in k] + [f for f in functions if f == function_name(PROJECT, stack)]
            report("PR closed -> nothing left" + (" (LEFT: " + ", ".join(left) + ")" if left else ""), closed,
                   time.perf_counter() - started)  # fmt: skip
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
