"""Where a no-op `pulumi up` of prod goes, against an empty program's, and what `sandbox up` adds.

    .venv/bin/python bench/noop_up.py [--rounds 3] [--keep]

One local cloud in a temp dir (the sandbox's own, `WEBSTACK_SANDBOX_DIR`), in it:
- prod, deployed once by `python -m sandbox up --stack prod` (not timed);
- the floor: a Python program that is `import pulumi` and nothing else, on the same CLI, language
  host and virtualenv, in the same file backend.
Then, `--rounds` times, interleaved (the order flips each round, so a busy moment hits both):
- `pulumi up --yes --policy-pack policy` of prod, no-op, as the deploy workflow runs it (a preview,
  then the update: the program runs twice), and `pulumi up --yes` of the floor;
- `python -m sandbox up --stack prod` (no-op) and, right after, the very `pulumi up` command it runs
  (`sandbox.stack.LocalStack.argv`, same flags and environment), so the sandbox's own cost is the
  difference.
Every `pulumi up` runs with the engine's tracing (`--otel-traces file://...`), and the prod runs'
traces are broken down: the language host's About, each policy pack start (Analyzer
GetPluginInfo), the program from its Run to its first RPC (its module: imports, settings, every
declaration; the SDK sends nothing before the module returns), the engine registering what it
declared (its first RPC to SignalAndWaitForShutdown: the providers' starts, Check, Diff and the
pack's Analyze inside), its exit, each provider's start (newPlugin), and the sums of
Check/Diff and Analyze/Remediate calls. Medians are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess  # runs pulumi and the sandbox with list argv  # nosec B404
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.cloud import read_endpoints, stop  # noqa: E402
from sandbox.engine import BIN_DIR  # noqa: E402
from sandbox.stack import LocalStack  # noqa: E402

PROD = "prod"
FLOOR = "floor"
FLOOR_PROGRAM = "import pulumi\n"


def floor_project(directory: Path) -> Path:
    """The empty program: `import pulumi`, on the repository's own virtualenv."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Pulumi.yaml").write_text(
        "name: floor\nruntime:\n  name: python\n  options:\n    toolchain: pip\n"
        f"    virtualenv: {ROOT / '.venv'}\n"
    )
    (directory / "__main__.py").write_text(FLOOR_PROGRAM)
    return directory


def timed(argv: list[str], *, cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)  # noqa: S603  # nosec B603
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} ... exited {result.returncode}:\n{(result.stdout + result.stderr)[-3000:]}")
    return seconds, result.stdout


def changes(stdout: str) -> str:
    """What the engine changed, from the display's `Resources:` summary (a no-op: `N unchanged`)."""
    summary = stdout[stdout.rfind("Resources:"):].splitlines()[1:] if "Resources:" in stdout else []
    shown = []
    for line in summary:
        if not line.strip() or line.startswith("Duration"):
            break
        shown.append(line.strip())
    return ", ".join(shown) or "?"


# --- the trace ------------------------------------------------------------------------------------

def spans(path: Path) -> list[tuple[float, float, str, str, dict[str, str]]]:
    """(start, end, service, name, string attributes) of every span in an OTLP JSON-lines file, in seconds."""
    found = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        for resource in json.loads(line).get("resourceSpans", []):
            service = next(
                (a["value"].get("stringValue", "") for a in resource.get("resource", {}).get("attributes", []) if a["key"] == "service.name"), "?"
            )  # fmt: skip
            for scope in resource.get("scopeSpans", []):
                for span in scope.get("spans", []):
                    attributes = {a["key"]: a["value"].get("stringValue", "") for a in span.get("attributes", []) if "stringValue" in a["value"]}
                    found.append((int(span["startTimeUnixNano"]) / 1e9, int(span["endTimeUnixNano"]) / 1e9, service, span["name"], attributes))
    found.sort()
    return found


def breakdown(path: Path) -> dict[str, float]:
    """Seconds per part of one `pulumi up`, from its trace (summed over its preview and its update)."""
    every = spans(path)
    cli = [s for s in every if s[2] == "pulumi-cli"]
    parts: dict[str, float] = defaultdict(float)
    parts["pulumi (whole run)"] = max(e for _, e, *_ in every) - min(s for s, *_ in every)

    def total(name: str) -> float:
        return sum(e - s for s, e, _, n, _ in cli if n == name)

    parts["language host About"] = total("pulumirpc.LanguageRuntime/About")
    parts["policy pack start (GetPluginInfo)"] = total("pulumirpc.Analyzer/GetPluginInfo")
    registers = [s for s in cli if s[3] == "pulumirpc.ResourceMonitor/RegisterResource"]
    shutdowns = [s for s in cli if s[3] == "pulumirpc.ResourceMonitor/SignalAndWaitForShutdown"]
    for run_start, run_end, *_ in (s for s in cli if s[3] == "pulumirpc.LanguageRuntime/Run"):
        inside = [r for r in registers if run_start <= r[0] <= run_end]
        done = [d for d in shutdowns if run_start <= d[0] <= run_end]
        first = min((r[0] for r in inside), default=run_end)
        last = max((d[1] for d in done), default=run_end)
        # The program's module runs synchronously: its imports, settings and every resource
        # declaration happen before the SDK's first RPC (the stack's own registration) goes out.
        parts["program: its module (imports, settings, declarations)"] += first - run_start
        parts["engine: registering (providers, Check/Diff, the pack)"] += last - first
        parts["program: exit after shutdown"] += run_end - last
    for start, end, _, name, attributes in cli:
        if name == "newPlugin" and attributes.get("kind") == "resource":
            parts[f"  provider start: {attributes.get('prefix', '?').split(' ')[0]}"] += end - start
    parts["  provider Check+Diff calls (sum)"] = total("pulumirpc.ResourceProvider/Check") + total("pulumirpc.ResourceProvider/Diff")
    parts["  pack Analyze+Remediate calls (sum)"] = total("pulumirpc.Analyzer/Analyze") + total("pulumirpc.Analyzer/Remediate")
    parts["runs of the program"] = float(sum(1 for s in cli if s[3] == "pulumirpc.LanguageRuntime/Run"))
    return dict(parts)


# --- the runs -------------------------------------------------------------------------------------

def sandbox_env(root: Path) -> dict[str, str]:
    env = dict(os.environ, WEBSTACK_SANDBOX_DIR=str(root), PYTHONUNBUFFERED="1")
    env.pop("PULUMI_DEBUG_COMMANDS", None)
    return env


def sandbox_up(root: Path) -> float:
    seconds, _ = timed([sys.executable, "-m", "sandbox", "up", "--stack", PROD, "--base-port", "0"], cwd=ROOT, env=sandbox_env(root))
    return seconds


def pulumi_up(stack: LocalStack, *args: str, trace: Path | None = None) -> tuple[float, str]:
    argv = stack.argv("up", "--yes", *args) + ([f"--otel-traces=file://{trace}"] if trace else [])
    env = stack.env()
    if "--event-log" in args:
        env["PULUMI_DEBUG_COMMANDS"] = "true"  # as the sandbox runs it
    return timed(argv, cwd=stack.project_dir, env=env)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="leave the cloud running and the temp dir in place")
    options = parser.parse_args(argv)
    if not (BIN_DIR / "pulumi").exists():
        raise SystemExit("bin/pulumi is missing: python -m sandbox.engine build")

    work = Path(tempfile.mkdtemp(prefix="webstack-noop-"))
    root = work / "sandbox"
    traces = work / "traces"
    traces.mkdir()
    rows: dict[str, list[float]] = defaultdict(list)
    parts: dict[str, list[float]] = defaultdict(list)
    try:
        seconds = sandbox_up(root)
        print(f"sandbox up --stack prod (first deploy, not counted): {seconds:.1f}s", file=sys.stderr)
        endpoints = read_endpoints(root)
        assert endpoints is not None  # nosec B101 - sandbox up just started it
        prod = LocalStack(root=root, name=PROD, endpoints=endpoints)
        floor = LocalStack(root=root, name=FLOOR, endpoints=endpoints, project_dir=floor_project(work / "floor"))
        floor._create()  # noqa: SLF001 - a stack of the empty program beside prod's, same backend
        pulumi_up(floor)
        policy_config = root / f"policy-{PROD}.json"
        workflow_args = ("--policy-pack", str(ROOT / "policy"), "--policy-pack-config", str(policy_config))
        sandbox_args = (
            "--skip-preview", "--policy-pack", "policy", "--policy-pack-config", str(policy_config),
            "--event-log", str(work / "events.jsonl"),
        )  # fmt: skip

        for round_number in range(options.rounds):
            runs = [
                ("floor: pulumi up (import pulumi)", lambda n=round_number: pulumi_up(floor, trace=traces / f"floor-{n}.json")),
                ("prod: pulumi up --policy-pack (no-op)", lambda n=round_number: pulumi_up(prod, *workflow_args, trace=traces / f"prod-{n}.json")),
                ("prod: sandbox up (no-op)", lambda: (sandbox_up(root), "")),
                ("prod: the sandbox's own pulumi up", lambda: pulumi_up(prod, *sandbox_args)),
            ]
            if round_number % 2:
                runs = [runs[1], runs[0], runs[3], runs[2]]
            for label, run in runs:
                seconds, stdout = run()
                rows[label].append(seconds)
                shown = f" ({changes(stdout)})" if "--policy-pack (no-op)" in label else ""
                print(f"round {round_number + 1}: {label:<40} {seconds:6.1f}s{shown}", file=sys.stderr)
            for name, value in breakdown(traces / f"prod-{round_number}.json").items():
                parts[name].append(value)
            for name, value in breakdown(traces / f"floor-{round_number}.json").items():
                parts[f"floor/{name}"].append(value)
    finally:
        if not options.keep:
            stop(root)
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept: {work}", file=sys.stderr)

    print(f"\nNo-op `pulumi up`, median of {options.rounds} interleaved rounds (seconds)")
    for label, values in rows.items():
        print(f"  {label:<56} {median(values):6.1f}   ({', '.join(f'{v:.1f}' for v in values)})")
    floor_s = median(rows["floor: pulumi up (import pulumi)"])
    prod_s = median(rows["prod: pulumi up --policy-pack (no-op)"])
    sandbox_s = median(rows["prod: sandbox up (no-op)"])
    own_s = median(rows["prod: the sandbox's own pulumi up"])
    print(f"  prod / floor: {prod_s / floor_s:.2f}x (goal <= 2x)")
    print(f"  sandbox up / its own pulumi up: {sandbox_s / own_s:.2f}x (goal <= 1.5x); the sandbox adds {sandbox_s - own_s:.1f}s")
    print("\nWhere prod's no-op `pulumi up --policy-pack` goes (from its trace; median; preview and update summed)")
    for name, values in parts.items():
        if not name.startswith("floor/"):
            floor_values = parts.get(f"floor/{name}", [])
            floor_shown = f"   floor {median(floor_values):5.2f}" if floor_values else ""
            print(f"  {name:<56} {median(values):6.2f}{floor_shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
