"""Has prod drifted from the code? `pulumi preview --refresh --expect-no-changes` says (audit.yml).

    python -m workflow.lease run --stack prod -- python -m workflow.drift --stack prod --output drift.json [--alert] [-- PULUMI_ARGS]

The preview first refreshes the state from the cloud (reads every resource), then compares it with
what the program declares: whatever someone changed out-of-band (a function's memory set by hand,
a record edited in the dashboard) shows as a step that would change it back. Each such resource is
listed with the properties that differ (`detailedDiff`, or the provider's `diffReasons`). Nothing
is written: a preview's refresh does not save the state. Run under the stack's lease, so a deploy
is never compared half-way.

Writes `{"stack", "checked_at", "drifted", "resources": [{"urn", "type", "name", "op", "properties"}],
"following"}` (`following`: what would change only because a drifted resource does, e.g. the alias
of a function whose update publishes a new version)
to --output (the audit report's `--drift`) and prints a one-line summary. Drift is a finding, not a
failure: exit 0, and with --alert one warning alert per drifted resource (steps.alert). When the
preview itself fails (no plan), exit 1 with one line and no file: the report then lists the drift
check as missing. The commit must be the one last deployed (main after its deploy), or an
undeployed change of the code would show as drift.
"""

from __future__ import annotations

import json
import subprocess  # runs the pulumi CLI with a list argv  # nosec B404
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.names import SAFE_STACK_NAME
from steps.alert import send_alert
from steps.args import StepParser, local_path, matching
from steps.console import log, shown

UNCHANGED = ("same", "read", "refresh", "discard")
# How the engine's JSON shows a value it will only know after the update (an output of a resource
# that is itself about to change).
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
PREVIEW_TIMEOUT = 1800


class DriftError(RuntimeError):
    pass


def plan_of(output: str) -> dict[str, Any]:
    """The JSON document of `pulumi preview --json` (engine events, if any, come after it)."""
    text = output.strip()
    start = text.find("{")
    if start < 0:
        raise DriftError("`pulumi preview --json` printed no plan")
    try:
        document, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as exc:
        raise DriftError(f"`pulumi preview --json` printed no JSON plan ({exc.msg})") from None
    if not isinstance(document, dict):
        raise DriftError("`pulumi preview --json` printed no JSON object")
    return document


def type_of(urn: str) -> str:
    """The resource type of a URN (`...::<parent type>$<type>::<name>`)."""
    parts = urn.split("::")
    return parts[-2].rsplit("$", 1)[-1] if len(parts) >= 3 else ""


def unknown(value: Any) -> bool:
    """Whether a value is (or holds) one the engine cannot know before an update runs."""
    if isinstance(value, Mapping):
        return any(unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(unknown(v) for v in value)
    return value == UNKNOWN


def changes(plan: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(drifted, following): every step that would change a resource, with the properties that
    differ. A step whose differing inputs are all unknown (a new function version the alias and the
    prune step would follow) is a consequence of another resource's drift, not drift of its own."""
    drifted, following = [], []
    for step in plan.get("steps") or []:
        op = step.get("op")
        if op in UNCHANGED:
            continue
        urn = str(step.get("urn") or "")
        state = step.get("newState") or step.get("oldState") or {}
        properties = sorted((step.get("detailedDiff") or {}).keys()) or sorted(
            set(step.get("diffReasons") or []) | set(step.get("replaceReasons") or [])
        )
        inputs = (step.get("newState") or {}).get("inputs") or {}
        top = {p.split(".", 1)[0].split("[", 1)[0] for p in properties}
        found = following if op == "update" and top and all(unknown(inputs.get(p)) for p in top) else drifted
        found.append(
            {
                "urn": urn,
                "type": state.get("type") or type_of(urn),
                "name": urn.rsplit("::", 1)[-1],
                "op": op,
                "properties": properties,
            }
        )
    return drifted, following


def check(stack: str, pulumi_args: Sequence[str] = ()) -> dict[str, Any]:
    argv = ["pulumi", "preview", "--refresh", "--expect-no-changes", "--json", "--non-interactive", "--stack", stack, *pulumi_args]
    log(f"drift: {' '.join(argv[:4])} --stack {stack}")
    try:
        result = subprocess.run(  # list argv, the CLI from PATH  # nosec B603 B607
            argv, capture_output=True, text=True, timeout=PREVIEW_TIMEOUT, stdin=subprocess.DEVNULL, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DriftError(f"`pulumi preview` could not run: {type(exc).__name__}") from None
    try:
        plan = plan_of(result.stdout)
    except DriftError as exc:
        last = next((line for line in reversed(result.stderr.splitlines()) if line.strip()), "(no output)")
        raise DriftError(f"{exc}; exit {result.returncode}; last line: {shown(last, 300, quote=False)}") from None
    resources, following = changes(plan)
    if result.returncode != 0 and not resources:
        # --expect-no-changes failed the preview for a reason the plan does not show.
        errors = [d.get("message", "") for d in plan.get("diagnostics") or [] if d.get("severity") == "error"]
        raise DriftError(f"`pulumi preview` failed (exit {result.returncode}): {shown(' '.join(errors) or 'see its log', 300, quote=False)}")
    return {
        "stack": stack,
        "checked_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "drifted": bool(resources),
        "resources": resources,
        "following": following,
    }


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    pulumi_args: list[str] = []
    if "--" in args_list:
        at = args_list.index("--")
        args_list, pulumi_args = args_list[:at], args_list[at + 1 :]
    parser = StepParser(prog="python -m workflow.drift", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, type=matching(SAFE_STACK_NAME, "a stack name"))
    parser.add_argument("--output", required=True, type=local_path, help="where the JSON result goes")
    parser.add_argument("--alert", action="store_true", help="one warning alert per drifted resource")
    args = parser.parse_args(args_list)
    try:
        result = check(args.stack, pulumi_args)
    except DriftError as exc:
        print(f"drift: FAILED: {exc}", file=sys.stderr)
        return 1
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for resource in result["resources"]:
        line = f"{resource['type']} {resource['name']}: {', '.join(resource['properties']) or resource['op']}"
        log(f"drift: {line}")
        if args.alert:
            send_alert("warning", f"drift in {args.stack}", f"{line}\n{resource['urn']}")
    print(json.dumps({"stack": args.stack, "drifted": result["drifted"], "resources": len(result["resources"])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
