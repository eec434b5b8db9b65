"""The offline plan: what `pulumi up` would declare for a stack, without cloud credentials or the CLI.

    python -m tools.plan --stack preview-pr-7

Runs the real `__main__.py` under Pulumi's mocks with the stack's config, then prints the phases
with their resources, the phase graph as mermaid, the order check and the stack outputs (ARNs and
URLs are fabricated by the mocks). Bad settings print every problem and exit 2.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterable

from tools.offline import Recording, RecordedResource, committed_values, config_for, run_program
from components.build import BUILD_TYPE
from core.names import STACK_NAME_CHARACTERS
from core.phases import PHASES
from steps.args import StepParser, matching
from components.settings import SECRET_ENVIRONMENT, SettingsError

OFFLINE_PLACEHOLDERS = {
    "databaseUrl": "postgres://offline-plan:placeholder@localhost:5432/offline",
    "runtimeDatabaseUrl": "postgres://offline-plan:placeholder@localhost:6543/offline",
}


def _deployed(recording: Recording, phase: str) -> list[RecordedResource]:
    return [
        r
        for r in recording.resources.values()
        if r.custom and not r.type.startswith("pulumi:providers:") and recording.phase_of(r.urn) == phase
    ]


def is_build(recording: Recording, resource: RecordedResource) -> bool:
    """A build is marked by structure: its parent is a `Build` component."""
    parent = recording.resources.get(resource.parent)
    return parent is not None and parent.type == BUILD_TYPE


def phase_order_violations(recording: Recording) -> list[str]:
    """Where the recorded graph breaks the phase order (core.phases.PHASES); empty when it holds.

    Every step of a phase that changes a live system must wait (directly or through others) for
    every live step of all earlier phases. A build changes nothing outside the runner: it is no
    gate, and it may wait for a live change only through the data it reads (an input's
    dependency), never through an explicit `depends_on`, so that builds overlap earlier phases.
    """
    violations = []
    gates: list[RecordedResource] = []
    for phase in PHASES:
        members = _deployed(recording, phase)
        for resource in members:
            if is_build(recording, resource):
                continue
            missing = sorted(gate.name for gate in gates if gate.urn not in recording.ancestors(resource.urn))
            if missing:
                violations.append(f"{phase}: {resource.name} does not wait for {', '.join(missing)}")
        gates.extend(r for r in members if not is_build(recording, r))

    for resource in recording.resources.values():
        if not is_build(recording, resource):
            continue
        through_data = set().union(*resource.property_dependencies.values())
        explicit = [recording.resources[urn] for urn in resource.dependencies - through_data if urn in recording.resources]
        live = sorted(r.name for r in explicit if r.custom and not is_build(recording, r))
        if live:
            violations.append(f"{resource.name} is a build but waits for live changes: {', '.join(live)}")
    return violations


def phase_edges(recording: Recording) -> set[tuple[str, str]]:
    """(earlier phase, later phase) for every recorded dependency that crosses phases."""
    edges = set()
    for resource in recording.resources.values():
        phase = recording.phase_of(resource.urn)
        for dependency in resource.dependencies:
            dependency_phase = recording.phase_of(dependency)
            if phase and dependency_phase and dependency_phase != phase:
                edges.add((dependency_phase, phase))
    return edges


def mermaid(recording: Recording) -> str:
    lines = ["graph TD"]
    present = [phase for phase in PHASES if _deployed(recording, phase)]
    for index, phase in enumerate(present, start=1):
        names = ", ".join(sorted(r.name for r in _deployed(recording, phase)))
        lines.append(f'    {phase}["{index}. {phase}<br/><small>{names}</small>"]')
    for before, after in sorted(phase_edges(recording), key=lambda e: (PHASES.index(e[0]), PHASES.index(e[1]))):
        lines.append(f"    {before} --> {after}")
    return "\n".join(lines)


def _describe(resource: RecordedResource) -> str:
    facts = []
    if resource.type == "command:local:Command":
        for key in ("create", "delete"):
            if resource.inputs.get(key):
                facts.append(f"{key}: {resource.inputs[key]}")
    if resource.protect:
        facts.append("protected")
    if resource.secret_inputs:
        facts.append(f"secret inputs: {', '.join(sorted(resource.secret_inputs))}")
    detail = f"\n        {'; '.join(facts)}" if facts else ""
    return f"    - {resource.name} ({resource.type}){detail}"


def render(recording: Recording, notes: Iterable[str] = ()) -> str:
    out = [f"Offline plan for stack {recording.stack!r} (Pulumi mocks; no cloud was contacted)"]
    out.extend(f"note: {note}" for note in notes)
    for index, phase in enumerate(PHASES, start=1):
        members = sorted(_deployed(recording, phase), key=lambda r: r.name)
        out.append(f"\n{index}. {phase} ({len(members)} resources)")
        out.extend(_describe(r) for r in members)
    out.append("\nPhase graph (mermaid):\n```mermaid\n" + mermaid(recording) + "\n```")
    violations = phase_order_violations(recording)
    out.append("\nPhase order: " + ("holds" if not violations else "BROKEN\n  " + "\n  ".join(violations)))
    out.append("\nStack outputs:")
    out.extend(f"    {key}: {value}" for key, value in sorted(recording.exports.items()))
    return "\n".join(out)


def plan(stack: str) -> tuple[Recording, list[str]]:
    """Evaluates the program for `stack` as `pulumi up` would, with offline stand-ins for secrets."""
    notes = []
    config = config_for(stack, committed_values(stack))
    secret_keys = []
    for key, variable in SECRET_ENVIRONMENT.items():
        if not os.environ.get(variable):
            config[f"webstack:{key}"] = OFFLINE_PLACEHOLDERS[key]
            secret_keys.append(f"webstack:{key}")
            notes.append(f"{variable} is not set: planning with a placeholder for secret `{key}`")
    return run_program(stack, config, secret_keys=tuple(secret_keys)), notes


def main(argv: list[str] | None = None) -> int:
    parser = StepParser(prog="python -m tools.plan", description=__doc__.splitlines()[0])
    parser.add_argument(
        # Characters only: the settings then name what is wrong with a name (a PR number, say).
        "--stack", required=True, type=matching(STACK_NAME_CHARACTERS, "a stack name (letters, digits, '-', '_', '.')"),
        help="prod, preview or preview-pr-<N>",
    )
    parser.add_argument("--mermaid", action="store_true", help="print only the phase graph")
    options = parser.parse_args(argv)
    # A short-lived process that loads the providers' large modules and frees almost nothing:
    # the cyclic collector would only rescan them again and again (bench/plan_speed.py measures it).
    gc.disable()
    try:
        recording, notes = plan(options.stack)
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    print(mermaid(recording) if options.mermaid else render(recording, notes))
    return 1 if phase_order_violations(recording) else 0


if __name__ == "__main__":
    sys.exit(main())
