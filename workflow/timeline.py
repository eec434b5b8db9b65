"""The run's timeline from the engine's own record: `pulumi up --event-log FILE` (deploy.yml, preview.yml).

    python -m workflow.timeline --events events.jsonl --stack prod [--logs] [--json timeline.json] [--summary FILE]

Every engine step (a resource the run created, updated, replaced or deleted: each deploy step's
Command among them) with its start and end (the event timestamps), its outcome (`ok`, `failed`,
or `skipped` when a non-critical step gave up) and its retries (the `attempt k of n failed ...;
next wait` lines its step logged), grouped by phase (the `webstack:index:Phase` it sits under).

- the Markdown (appended to --summary, default GITHUB_STEP_SUMMARY) is a mermaid `gantt` chart, one
  section per phase in PHASES order and one bar per step (failed steps `crit`), plus a table of each
  phase's duration;
- `--logs` prints each step's log (its diagnostics) in a collapsible `::group::` section;
- `--json` writes `{"stack", "steps": [...], "phases": {phase: seconds}}` for the PR comment.

An absent or empty event log (`up` did not start) gives an empty timeline, not an error: the job's
other steps report why `up` did not run.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.names import SAFE_STACK_NAME
from core.phases import PHASE_TYPE, PHASES
from steps.args import StepParser, local_path, matching
from steps.console import mask
from workflow.summary import write_summary

# How steps.retry logs a failed attempt that will be retried (`...; next wait 2.0s`).
RETRY = re.compile(r"attempt \d+ of \d+ failed: .*; next wait ")
OTHER_PHASE = "other"
# Characters mermaid's gantt grammar gives a meaning to inside a task line.
_TASK_UNSAFE = re.compile(r"[:;#\n\r]")


@dataclass
class Step:
    urn: str
    name: str
    type: str
    op: str
    phase: str
    start: int
    end: int | None = None
    outcome: str = "running"
    retries: int = 0
    log: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> int | None:
        return None if self.end is None else self.end - self.start


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a killed run
    return events


def _meta_state(meta: Mapping[str, Any]) -> Mapping[str, Any]:
    return meta.get("new") or meta.get("old") or {}


def phase_of(urn: str, parents: Mapping[str, str], types: Mapping[str, str]) -> str:
    seen = set()
    while urn and urn not in seen:
        seen.add(urn)
        if types.get(urn) == PHASE_TYPE:
            return urn.rsplit("::", 1)[-1]
        urn = parents.get(urn, "")
    return OTHER_PHASE


def timeline(events: Iterable[Mapping[str, Any]]) -> list[Step]:
    """The run's steps in the order they started."""
    parents: dict[str, str] = {}
    types: dict[str, str] = {}
    steps: dict[str, Step] = {}
    logs: dict[str, list[str]] = {}
    for event in events:
        when = int(event.get("timestamp") or 0)
        if pre := event.get("resourcePreEvent"):
            meta = pre.get("metadata") or {}
            urn, state = meta.get("urn", ""), _meta_state(meta)
            types[urn] = meta.get("type", "")
            if state.get("parent"):
                parents[urn] = state["parent"]
            # The stack and the providers are the engine's own bookkeeping, not steps of the deploy.
            engine_own = str(meta.get("type", "")).startswith("pulumi:")
            if meta.get("op") not in ("same", "read", "refresh") and state.get("custom") and not engine_own and urn not in steps:
                steps[urn] = Step(urn, urn.rsplit("::", 1)[-1], meta.get("type", ""), meta.get("op", ""), "", when)
        elif out := event.get("resOutputsEvent"):
            urn = (out.get("metadata") or {}).get("urn", "")
            if urn in steps and steps[urn].end is None:
                steps[urn].end, steps[urn].outcome = when, "ok"
        elif failed := event.get("resOpFailedEvent"):
            urn = (failed.get("metadata") or {}).get("urn", "")
            if urn in steps:
                steps[urn].end, steps[urn].outcome = when, "failed"
        elif diag := event.get("diagnosticEvent"):
            if diag.get("urn") and diag.get("severity") != "debug":
                logs.setdefault(diag["urn"], []).extend(line for line in str(diag.get("message", "")).splitlines() if line.strip())
    for urn, step in steps.items():
        step.phase = phase_of(urn, parents, types)
        step.log = logs.get(urn, [])
        step.retries = sum(1 for line in step.log if RETRY.search(line))
        if step.outcome == "ok" and any(line.startswith("SKIPPED ") for line in step.log):
            step.outcome = "skipped"
    return sorted(steps.values(), key=lambda s: (s.start, s.urn))


def phase_seconds(steps: Sequence[Step]) -> dict[str, int]:
    """Each phase's wall time: from its first step's start to its last step's end."""
    found: dict[str, int] = {}
    for phase in (*PHASES, OTHER_PHASE):
        mine = [s for s in steps if s.phase == phase]
        if mine:
            end = max((s.end if s.end is not None else s.start) for s in mine)
            found[phase] = end - min(s.start for s in mine)
    return found


def _task_name(step: Step) -> str:
    return _TASK_UNSAFE.sub(" ", f"{step.name} ({step.op})").strip()


def gantt(stack: str, steps: Sequence[Step]) -> str:
    """A mermaid gantt chart: one section a phase (in the phases' order), one bar a step."""
    lines = ["gantt", f"    title {stack}: the run, step by step", "    dateFormat X", "    axisFormat %M:%S"]
    index = 0
    for phase in (*PHASES, OTHER_PHASE):
        mine = [s for s in steps if s.phase == phase]
        if not mine:
            continue
        lines.append(f"    section {phase}")
        for step in mine:
            index += 1
            end = step.end if step.end is not None else step.start
            # A bar needs a length: a step that took under a second still gets one.
            end = max(end, step.start + 1)
            tags = {"failed": "crit, ", "running": "active, "}.get(step.outcome, "done, ")
            lines.append(f"    {_task_name(step)} :{tags}s{index}, {step.start}, {end}")
    return "\n".join(lines)


def markdown(stack: str, steps: Sequence[Step]) -> str:
    if not steps:
        return f"### Run timeline: `{stack}`\n\nNo step ran (the engine recorded no change).\n"
    phases = phase_seconds(steps)
    retried = [s for s in steps if s.retries]
    failed = [s for s in steps if s.outcome in ("failed", "skipped")]
    parts = [f"### Run timeline: `{stack}`", "", "```mermaid", gantt(stack, steps), "```", "",
             "| phase | duration (s) | steps |", "|---|---|---|"]  # fmt: skip
    parts += [f"| {phase} | {seconds} | {sum(1 for s in steps if s.phase == phase)} |" for phase, seconds in phases.items()]
    if retried or failed:
        parts += ["", "| step | phase | outcome | retries | duration (s) |", "|---|---|---|---|---|"]
        parts += [f"| {s.name} | {s.phase} | {s.outcome} | {s.retries} | {s.seconds} |" for s in (*failed, *[r for r in retried if r not in failed])]
    return "\n".join(parts) + "\n"


def print_logs(steps: Sequence[Step]) -> None:
    """One collapsible section a step, in the order they started."""
    for step in steps:
        took = "" if step.seconds is None else f", {step.seconds} s"
        retries = f", {step.retries} retries" if step.retries else ""
        print(f"::group::{step.phase} / {step.name} ({step.op}, {step.outcome}{took}{retries})")
        for line in step.log:
            # A step's own `::` lines stay text inside the group (an annotation was already shown).
            print(mask(line.replace("::", ": :") if line.startswith("::") else line))
        print("::endgroup::")


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    parser = StepParser(prog="python -m workflow.timeline", description=__doc__.splitlines()[0])
    parser.add_argument("--events", required=True, type=local_path, help="`pulumi up --event-log` file")
    parser.add_argument("--stack", required=True, type=matching(SAFE_STACK_NAME, "a stack name"))
    parser.add_argument("--logs", action="store_true", help="print each step's log in a ::group:: section")
    parser.add_argument("--json", type=local_path, help="write the steps and phase durations as JSON")
    parser.add_argument("--summary", type=local_path, help="append the Markdown here (default GITHUB_STEP_SUMMARY)")
    args = parser.parse_args(argv)
    steps = timeline(read_events(args.events))
    if args.logs:
        print_logs(steps)
    text = markdown(args.stack, steps)
    write_summary(text, args.summary, env)
    if args.json:
        record = {
            "stack": args.stack,
            "recorded_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "steps": [{k: v for k, v in asdict(s).items() if k != "log"} for s in steps],
            "phases": phase_seconds(steps),
        }
        args.json.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
