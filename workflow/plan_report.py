"""Plan report: the destructive changes in a `pulumi preview --json` document.

The seed's "destructive changes -> log details & auto continue": every delete and replace is
listed with its resource name, type and reason, stateful ones are marked, the list goes to the
log (as GitHub warning annotations for stateful ones) and to `$GITHUB_STEP_SUMMARY` together with
the phase diagram, and the step exits 0 so the deploy goes on. Protection against losing
data lives in the program (`protect`/`retain_on_delete`), not here: a protected resource makes
`pulumi up` itself refuse the delete, and the report says so.

No network and no steps runtime. What is stateful and what the phases are come from the program's
own definitions (`core.stateful`, `core.phases`); a resource's phase is read from its
parents in the preview itself: every resource sits under the `Phase` component of its phase.

Usage: python -m workflow.plan_report PLAN_JSON [--stack NAME] [--summary PATH]
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.names import SAFE_STACK_NAME
from core.phases import PHASE_TYPE, PHASES
from steps.args import StepParser, matching
from core.stateful import DATABASE_COMPONENT, STATEFUL_TYPES
from steps.console import shown
from workflow import json_input

# Every op that tears a resource down and builds it again. `pulumi preview --json` normally shows
# only `replace`; the others appear with `--show-replacement-steps` and are folded into it.
REPLACE_OPS = frozenset(
    {
        "replace",
        "create-replacement",
        "delete-replaced",
        "read-replacement",
        "import-replacement",
        "discard-replaced",
    }
)
DELETE_OPS = frozenset({"delete"})


class PlanError(ValueError):
    """The file is not a `pulumi preview --json` document."""


@dataclass(frozen=True, kw_only=True)
class Change:
    """One delete or replace in the plan."""

    action: str  # "delete" or "replace"
    urn: str
    name: str
    type: str
    reasons: tuple[str, ...]
    stateful: bool
    protected: bool
    retained: bool
    phase: str | None
    """The phase whose `Phase` component the resource sits under (None for the stack, providers)."""


@dataclass(frozen=True, kw_only=True)
class Plan:
    stack: str | None
    changes: tuple[Change, ...]
    summary: Mapping[str, int]

    @property
    def deletes(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action == "delete")

    @property
    def replaces(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action == "replace")

    @property
    def stateful(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.stateful)


def parse_urn(urn: str) -> tuple[tuple[str, ...], str, str]:
    """`urn:pulumi:STACK::PROJECT::[PARENT$...]TYPE::NAME` -> (parent types, TYPE, NAME)."""
    parts = urn.split("::", 3)
    if len(parts) != 4 or not parts[0].startswith("urn:pulumi:"):
        raise PlanError(f"not a Pulumi URN: {urn[:200]!r}")
    *parent_types, type_ = parts[2].split("$")
    return tuple(parent_types), type_, parts[3]


def is_stateful(type_: str, parent_types: Sequence[str]) -> bool:
    """A stateful type, or a Command of the database component (whose delete drops a schema)."""
    return type_ in STATEFUL_TYPES or DATABASE_COMPONENT in parent_types


def phase_of(urn: str, parents: Mapping[str, str]) -> str | None:
    """The name of the `Phase` component above `urn`, following the preview's parent links."""
    seen: set[str] = set()
    current: str | None = parents.get(urn)
    while current and current not in seen:
        seen.add(current)
        _, type_, name = parse_urn(current)
        if type_ == PHASE_TYPE:
            return name
        current = parents.get(current)
    return None


def _reasons(step: Mapping[str, object], action: str) -> tuple[str, ...]:
    detailed = step.get("detailedDiff") or {}
    if not isinstance(detailed, Mapping):
        detailed = {}
    if action == "delete":
        return ("removed from the program",)
    replace_keys = list(step.get("replaceReasons") or [])
    if not replace_keys:
        replace_keys = [
            key
            for key, diff in detailed.items()
            if isinstance(diff, Mapping) and str(diff.get("kind", "")).endswith("-replace")
        ]
    if not replace_keys:
        replace_keys = list(step.get("diffReasons") or [])
    reasons = []
    for key in replace_keys:
        diff = detailed.get(key)
        kind = diff.get("kind") if isinstance(diff, Mapping) else None
        reasons.append(f"{key} ({kind})" if kind else str(key))
    return tuple(reasons) or ("replacement requested (no property diff reported)",)


def _parent(step: Mapping[str, object]) -> str | None:
    for key in ("newState", "oldState"):
        state = step.get(key)
        if isinstance(state, Mapping) and isinstance(state.get("parent"), str) and state["parent"]:
            return state["parent"]
    return None


def _change(step: Mapping[str, object], parents: Mapping[str, str]) -> Change | None:
    op = step.get("op")
    if op in DELETE_OPS:
        action = "delete"
    elif op in REPLACE_OPS:
        action = "replace"
    else:
        return None
    urn = step.get("urn")
    if not isinstance(urn, str):
        raise PlanError(f"a {op} step has no urn")
    old = step.get("oldState") or {}
    new = step.get("newState") or {}
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        raise PlanError(f"{urn}: oldState/newState are not objects")
    parent_types, urn_type, name = parse_urn(urn)
    type_ = str(old.get("type") or new.get("type") or urn_type)
    protected = bool(old.get("protect"))
    return Change(
        action=action,
        urn=urn,
        name=name,
        type=type_,
        reasons=_reasons(step, action),
        stateful=protected or is_stateful(type_, parent_types),
        protected=protected,
        retained=bool(old.get("retainOnDelete") or new.get("retainOnDelete")),
        phase=phase_of(urn, parents),
    )


def analyse(document: Mapping[str, object], stack: str | None = None) -> Plan:
    """Collect the deletes and replaces of a preview document, one entry per resource."""
    steps = document.get("steps")
    if steps is None:
        steps = []
    if not isinstance(steps, list):
        raise PlanError("`steps` is not a list")
    if not all(isinstance(step, Mapping) for step in steps):
        raise PlanError("a step is not an object")
    parents = {
        step["urn"]: parent
        for step in steps
        if isinstance(step.get("urn"), str) and (parent := _parent(step)) is not None
    }
    changes: dict[str, Change] = {}
    for step in steps:
        change = _change(step, parents)
        if change is None:
            continue
        # The replacement ops of one resource fold into one entry; the `replace` step itself
        # carries the reasons, so it wins over `create-replacement`/`delete-replaced`.
        if change.urn not in changes or step.get("op") == "replace":
            changes[change.urn] = change
    summary = document.get("changeSummary") or {}
    if not isinstance(summary, Mapping):
        raise PlanError("`changeSummary` is not an object")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in summary.values()):
        raise PlanError("`changeSummary` holds a count that is not a whole number")
    return Plan(
        stack=stack,
        changes=tuple(changes.values()),
        summary={str(k): v for k, v in summary.items()},
    )


def load(path: Path, stack: str | None = None) -> Plan:
    try:
        document = json_input.read(path, shown(str(path)))
    except json_input.JsonInputError as exc:
        raise PlanError(str(exc)) from None
    if not isinstance(document, Mapping):
        raise PlanError(f"{path}: not a JSON object")
    return analyse(document, stack)


def _flags(change: Change, *, stateful_word: bool = True) -> str:
    flags = []
    if change.stateful and stateful_word:
        flags.append("STATEFUL")
    if change.protected:
        flags.append("protected: up will refuse")
    if change.retained:
        flags.append("retain_on_delete: kept in the cloud")
    return ", ".join(flags)


def summary_line(plan: Plan) -> str:
    counts = plan.summary
    parts = [
        f"{counts.get(op, 0)} to {verb}"
        for op, verb in (
            ("create", "create"),
            ("update", "update"),
            ("replace", "replace"),
            ("delete", "delete"),
        )
    ]
    return ", ".join(parts) + f"; {counts.get('same', 0)} unchanged"


def log_lines(plan: Plan, *, annotations: bool) -> list[str]:
    """Plain log lines; stateful changes also as `::warning::` annotations on GitHub."""
    title = f"Plan for {plan.stack}" if plan.stack else "Plan"
    lines = [f"{title}: {summary_line(plan)}"]
    if not plan.changes:
        lines.append("No deletes or replaces: nothing destructive in this plan.")
        return lines
    lines.append(
        f"Destructive changes: {len(plan.deletes)} delete(s), {len(plan.replaces)} replace(s)"
        f" ({len(plan.stateful)} stateful). Logged and continuing."
    )
    for change in plan.changes:
        flags = _flags(change)
        line = (
            f"  {change.action.upper():8} {change.name} ({change.type})"
            f" reason: {'; '.join(change.reasons)}" + (f" [{flags}]" if flags else "")
        )
        lines.append(line)
        if annotations and change.stateful:
            lines.append(
                f"::warning title=Stateful {change.action}::{change.action} of {change.name}"
                f" ({change.type}): {'; '.join(change.reasons)}"
            )
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _stateful_cell(change: Change) -> str:
    if not change.stateful:
        return "no"
    extra = _flags(change, stateful_word=False)
    return f"**yes** ({_cell(extra)})" if extra else "**yes**"


def changes_table(plan: Plan) -> str:
    if not plan.changes:
        return "No deletes or replaces."
    rows = [
        "| action | resource | type | reason | stateful |",
        "|---|---|---|---|---|",
    ]
    for c in plan.changes:
        rows.append(
            f"| {c.action} | `{_cell(c.name)}` | `{c.type}` | {_cell('; '.join(c.reasons))}"
            f" | {_stateful_cell(c)} |"
        )
    return "\n".join(rows)


def phase_diagram(plan: Plan) -> str:
    """The phases as mermaid; phases with destructive changes are highlighted."""
    touched = {c.phase for c in plan.changes if c.phase}
    lines = ["```mermaid", "flowchart LR"]
    for a, b in zip(PHASES, PHASES[1:], strict=False):
        lines.append(f"    {a}[{a.capitalize()}] --> {b}[{b.capitalize()}]")
    if touched:
        lines.append("    classDef destructive fill:#fde2e1,stroke:#c0392b")
        lines.append(f"    class {','.join(p for p in PHASES if p in touched)} destructive")
    lines.append("```")
    return "\n".join(lines)


def markdown(plan: Plan) -> str:
    title = f"Plan report: `{plan.stack}`" if plan.stack else "Plan report"
    verdict = (
        "Destructive changes are logged below; the deploy continues."
        if plan.changes
        else "Nothing is deleted or replaced."
    )
    return "\n\n".join(
        [
            f"### {title}",
            f"{summary_line(plan)}. {verdict}",
            changes_table(plan),
            "#### Phases",
            phase_diagram(plan),
        ]
    ) + "\n"


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    parser = StepParser(prog="python -m workflow.plan_report", description=__doc__)
    parser.add_argument("plan", type=Path, help="output of `pulumi preview --json`")
    parser.add_argument(
        "--stack", type=matching(SAFE_STACK_NAME, "a stack name (prod, preview or preview-pr-<N>)"), help="stack name for the headings"
    )
    parser.add_argument(
        "--summary",
        type=Path,
        default=Path(env["GITHUB_STEP_SUMMARY"]) if env.get("GITHUB_STEP_SUMMARY") else None,
        help="markdown file to append to (default: $GITHUB_STEP_SUMMARY)",
    )
    args = parser.parse_args(argv)
    try:
        plan = load(args.plan, args.stack)
    except PlanError as exc:
        print(f"plan_report: {exc}. Did `pulumi preview --json` fail? Read its log.", file=sys.stderr)
        return 2
    _print(log_lines(plan, annotations=env.get("GITHUB_ACTIONS") == "true"))
    if args.summary is not None:
        with args.summary.open("a", encoding="utf-8") as fh:
            fh.write(markdown(plan))
    return 0


def _print(lines: Iterable[str]) -> None:
    for line in lines:
        print(line)


if __name__ == "__main__":
    sys.exit(main())
