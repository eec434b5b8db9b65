"""Phase-by-phase progress of a `pulumi up`, read from the CLI's own output.

The CLI prints one line per resource step (`+  command:local:Command api-build creating (0s)`,
`... created (1.2s)`) without saying which phase a resource belongs to; the phase comes from the
program itself: its offline recording (tools.offline) names each resource's `Phase` ancestor.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from core.phases import PHASES

_STEP = re.compile(
    r"^\s*(?:[+~\-]+|\+-)\s+(?P<type>[\w:/.\-]+)\s+(?P<name>[\w.\-]+)\s+"
    r"(?P<state>creating|created|updating|updated|deleting|deleted|replacing|replaced|reading|read|refreshing|refreshed)"
    r"(?:\s+(?:replacement|original))?(?:\s+\((?P<seconds>[\d.]+)s\))?"
)
_DONE = {"created", "updated", "deleted", "replaced", "read", "refreshed"}
# Lines of the CLI nobody needs while watching a deploy.
_NOISE = ("warning: using pulumi-resource-",)


def phases_by_name(stack: str, config_values: Mapping[str, object]) -> dict[str, str]:
    """resource name -> phase, from the program evaluated offline with the stack's settings."""
    from tools.offline import committed_values, config_for, run_program

    config = config_for(stack, {**committed_values(stack), **config_values})
    config["webstack:databaseUrl"] = "postgres://offline:offline@127.0.0.1:5432/offline"  # names only
    recording = run_program(stack, config, secret_keys=("webstack:databaseUrl",))
    found: dict[str, str] = {}
    for resource in recording.resources.values():
        phase = recording.phase_of(resource.urn)
        if phase and resource.custom:
            found[resource.name] = phase
    return found


class PhasesOnDemand(Mapping[str, str]):
    """`phases_by_name(stack, config_values)`, evaluated the first time a resource's step needs it.

    The offline evaluation runs the whole program (seconds, most of a no-op `sandbox up` beyond its
    `pulumi up`: bench/noop_up.py); a no-op deploy prints no resource step and never needs it. It
    now runs while `pulumi up` runs the same program: a program that fails offline fails there too,
    and the CLI's own error says so; the progress then goes on without phases, never stopping the
    loop that reads the CLI's output (which would leave the CLI running).
    """

    def __init__(self, stack: str, config_values: Mapping[str, object]):
        self._stack = stack
        self._config_values = dict(config_values)

    @cached_property
    def _found(self) -> dict[str, str]:
        try:
            return phases_by_name(self._stack, self._config_values)
        except Exception:  # noqa: BLE001 - the deploy reports the program's errors itself (above)
            return {}

    def __getitem__(self, name: str) -> str:
        return self._found[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._found)

    def __len__(self) -> int:
        return len(self._found)


@dataclass
class PhaseClock:
    first_start: float | None = None
    last_end: float | None = None
    changes: int = 0


@dataclass
class Progress:
    """Feed it the CLI's lines; it prints what finished, by phase, and a table at the end."""

    phases: Mapping[str, str]
    say: Callable[[str], None] = print
    started: float = field(default_factory=time.monotonic)
    clocks: dict[str, PhaseClock] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def line(self, text: str) -> None:
        if any(noise in text for noise in _NOISE):
            return
        if "error:" in text or text.lstrip().startswith(("FAILED ", "SKIPPED ")):
            if text not in self.errors:
                self.errors.append(text)
        match = _STEP.match(text)
        if match is None:
            return
        name, state = match["name"], match["state"]
        now = time.monotonic() - self.started  # before the phases, which may be evaluated now
        phase = self.phases.get(name)
        if phase is None:
            return
        clock = self.clocks.setdefault(phase, PhaseClock())
        if clock.first_start is None:
            clock.first_start = now
            self.say(f"  [{now:6.1f}s] {phase}: started")
        if state in _DONE:
            clock.last_end = now
            clock.changes += 1
            took = f" ({match['seconds']}s)" if match["seconds"] else ""
            self.say(f"  [{now:6.1f}s] {phase:<15} {name} {state}{took}")

    def table(self) -> str:
        rows = [f"  {'phase':<15} {'changes':>7} {'took':>8}"]
        for phase in PHASES:
            clock = self.clocks.get(phase)
            if clock is None or clock.first_start is None:
                rows.append(f"  {phase:<15} {0:>7} {'-':>8}")
                continue
            took = (clock.last_end or clock.first_start) - clock.first_start
            rows.append(f"  {phase:<15} {clock.changes:>7} {took:>7.1f}s")
        return "\n".join(rows)


def read_config_values(config_file: Path) -> dict[str, object]:
    """The plain settings a `--config-file` holds (secrets stay encrypted and are not needed)."""
    from core.stack_files import config_file_values

    return config_file_values(config_file, "webstack")


def step_warnings(event_log: Path) -> list[str]:
    """What the run warned about, from its `--event-log`: each step's `warning: ...` lines (a Command's
    stderr reaches the engine as ephemeral diagnostics the CLI's text display does not keep) and the
    program's own warnings, each once, prefixed with the resource's name."""
    found: list[str] = []
    try:
        lines = event_log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return found
    for line in lines:
        try:
            event = json.loads(line).get("diagnosticEvent")
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        message = str(event.get("message", "")).strip()
        # The engine's own warnings come without the "warning: " prefix a step writes (seen in a real event log).
        if not (message.startswith("warning: ") or event.get("severity") == "warning") or any(
            n in "warning: " + message.removeprefix("warning: ") for n in _NOISE
        ):
            continue
        name = str(event.get("urn", "")).rsplit("::", 1)[-1] or "program"
        text = f"{name}: {message.removeprefix('warning: ')}"
        if text not in found:
            found.append(text)
    return found
