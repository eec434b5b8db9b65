"""The preview comment of a pull request: the stack's URLs and the plan summary.

preview.yml renders the body here and posts it from a job that holds no cloud credentials. The
body's first line is a marker naming the workflow's comment; the posting script edits the
comment that starts with it, so later pushes update one comment instead of adding another.

Usage: python -m workflow.pr_comment --stack S --plan PLAN_JSON --outputs OUTPUTS_JSON
           --outcome success|failure|... [--sha SHA] [--run-url URL] [--timeline TIMELINE_JSON]
           [--github-output PATH]
(--timeline: `python -m workflow.timeline --json`; the comment shows each phase's duration.)
Writes the body to stdout and, as the step output `body`, to $GITHUB_OUTPUT.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from core.names import SAFE_STACK_NAME
from steps.args import StepParser, matching
from workflow import plan_report

MARKER = "<!-- webstack-preview -->"

# Stack outputs shown in the comment, in this order.
OUTPUT_ROWS = (
    ("siteUrl", "Site"),
    ("apiUrl", "API"),
    ("pagesBranch", "Pages branch"),
    ("dbSchema", "Database schema"),
    ("functionName", "Lambda function"),
)


def _value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    if text.startswith(("https://", "http://")):
        return text
    return f"`{text}`"


def render(
    *,
    stack: str,
    outcome: str,
    outputs: Mapping[str, object] | None,
    plan: plan_report.Plan | None,
    plan_error: str | None = None,
    sha: str | None = None,
    run_url: str | None = None,
    phases: Mapping[str, object] | None = None,
) -> str:
    ok = outcome == "success"
    status = "deployed" if ok else f"not deployed (`pulumi up`: {outcome or 'did not run'})"
    head = f"### Preview `{stack}`: {status}"
    if sha:
        head += f" at {sha[:12]}"
    parts = [MARKER, head]
    if ok and outputs:
        rows = ["| | |", "|---|---|"]
        rows += [f"| {label} | {_value(outputs[key])} |" for key, label in OUTPUT_ROWS if key in outputs]
        parts.append("\n".join(rows))
    elif ok:
        parts.append("The stack has no outputs.")
    if plan is not None:
        parts.append(f"**Plan:** {plan_report.summary_line(plan)}.")
        if plan.changes:
            parts.append(
                "<details><summary>Deletes and replaces "
                f"({len(plan.changes)}, {len(plan.stateful)} stateful)</summary>\n\n"
                f"{plan_report.changes_table(plan)}\n\n</details>"
            )
    else:
        parts.append(f"**Plan:** not available ({plan_error or 'no preview'}).")
    if phases:
        parts.append("**Phases:** " + " · ".join(f"{name} {seconds} s" for name, seconds in phases.items()) + ".")
    if run_url:
        parts.append(f"[Workflow run]({run_url})")
    return "\n\n".join(parts) + "\n"


def _read_outputs(path: Path) -> Mapping[str, object] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, Mapping) else None


def write_output(path: Path, name: str, value: str) -> None:
    """Append a multi-line step output with a delimiter that cannot occur in the value."""
    delimiter = f"EOF_{secrets.token_hex(16)}"
    with path.open("a", encoding="utf-8") as fh:
        fh.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    parser = StepParser(prog="python -m workflow.pr_comment", description=__doc__)
    parser.add_argument("--stack", required=True, type=matching(SAFE_STACK_NAME, "a stack name (prod, preview or preview-pr-<N>)"))
    parser.add_argument("--plan", type=Path, required=True)
    parser.add_argument("--outputs", type=Path, required=True)
    parser.add_argument("--outcome", default="")
    parser.add_argument("--sha")
    parser.add_argument("--run-url")
    parser.add_argument("--timeline", type=Path, help="`python -m workflow.timeline --json` output")
    parser.add_argument(
        "--github-output",
        type=Path,
        default=Path(env["GITHUB_OUTPUT"]) if env.get("GITHUB_OUTPUT") else None,
    )
    args = parser.parse_args(argv)

    plan: plan_report.Plan | None = None
    plan_error = None
    try:
        plan = plan_report.load(args.plan, args.stack)
    except plan_report.PlanError as exc:
        plan_error = str(exc)
    body = render(
        stack=args.stack,
        outcome=args.outcome,
        outputs=_read_outputs(args.outputs),
        plan=plan,
        plan_error=plan_error,
        sha=args.sha,
        run_url=args.run_url,
        phases=(_read_outputs(args.timeline) or {}).get("phases") if args.timeline else None,
    )
    print(body)
    if args.github_output is not None:
        write_output(args.github_output, "body", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
