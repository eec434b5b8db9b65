"""Offline plan speed: wall time of `python -m tools.plan --stack S` against the import floor.

    python bench/plan_speed.py [--stack prod] [--runs 7]

The floor is a process that only imports pulumi, pulumi_aws, pulumi_cloudflare and
pulumi_command — what any program of this shape pays before declaring a single resource. Both are
run alternately as fresh processes (so a busy moment hits both alike); the medians and their ratio
are printed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMPORTS = "import pulumi, pulumi_aws, pulumi_cloudflare, pulumi_command"
FLOOR = [sys.executable, "-c", IMPORTS]
# The plan turns the cyclic GC off, which speeds its imports too: the same floor without GC, for honesty.
FLOOR_WITHOUT_GC = [sys.executable, "-c", f"import gc; gc.disable(); {IMPORTS}"]


def wall_time(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="prod")
    parser.add_argument("--runs", type=int, default=7)
    options = parser.parse_args(argv)
    plan = [sys.executable, "-m", "tools.plan", "--stack", options.stack]

    wall_time(FLOOR), wall_time(plan)  # warm the page cache and the bytecode cache
    floors, bare_floors, plans = [], [], []
    for _ in range(options.runs):
        floors.append(wall_time(FLOOR))
        bare_floors.append(wall_time(FLOOR_WITHOUT_GC))
        plans.append(wall_time(plan))
    floor, bare_floor, planned = statistics.median(floors), statistics.median(bare_floors), statistics.median(plans)
    print(f"Offline plan speed, stack {options.stack!r}, median of {options.runs} fresh processes each")
    print(f"  import floor (pulumi + pulumi_aws + pulumi_cloudflare + pulumi_command): {floor:.2f} s")
    print(f"  python -m tools.plan --stack {options.stack}: {planned:.2f} s")
    print(f"  the same imports with the cyclic GC off, as the plan runs: {bare_floor:.2f} s")
    print(f"  ratio: {planned / floor:.2f}x (target <= 1.5x); against the GC-off floor: {planned / bare_floor:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
