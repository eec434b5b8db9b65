"""Which `preview-pr-<N>` stacks belong to closed pull requests (sweeper.yml).

`find` lists the stacks of the backend the CLI is logged in to (`pulumi stack ls --json`), asks
the GitHub API for each PR's state with the workflow token, writes the closed PR numbers as the
step output `prs` (a JSON list for the destroy matrix) and a table to the step summary.
`check --pr N` asks again right before a destroy (the PR may have been reopened) and writes
`closed=true|false`. Destroying is left to the workflow, where the commands are visible.

Environment: GH_TOKEN (or GITHUB_TOKEN), GITHUB_API_URL (default https://api.github.com),
GITHUB_OUTPUT, GITHUB_STEP_SUMMARY.
"""

from __future__ import annotations

import json
import os
import subprocess  # runs the pulumi CLI with fixed arguments  # nosec B404
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from core.names import PR_NUMBER, PR_STACK, SAFE_STACK_NAME
from steps.args import StepParser, matching
from workflow.github_api import DEFAULT_API, REPOSITORY, GitHub, GitHubError


class SweepError(GitHubError):
    pass


def preview_prs(stack_ls_json: str) -> list[int]:
    """PR numbers of the `preview-pr-<N>` stacks in `pulumi stack ls --json` output."""
    try:
        stacks = json.loads(stack_ls_json)
    except json.JSONDecodeError as exc:
        raise SweepError(f"`pulumi stack ls --json` printed no JSON: {exc}") from exc
    if not isinstance(stacks, list):
        raise SweepError("`pulumi stack ls --json` did not print a list")
    prs = set()
    for stack in stacks:
        name = stack.get("name") if isinstance(stack, Mapping) else None
        if not isinstance(name, str):
            continue
        # DIY backends may print `organization/webstack/preview-pr-7`.
        short = name.rsplit("/", 1)[-1]
        match = PR_STACK.fullmatch(short)
        if match and SAFE_STACK_NAME.fullmatch(short):
            prs.add(int(match["number"]))
    return sorted(prs)


def classify(prs: Iterable[int], pr_state: Callable[[int], str]) -> dict[int, str]:
    return {pr: pr_state(pr) for pr in prs}


def summary(states: Mapping[int, str]) -> str:
    if not states:
        return "### Preview sweeper\n\nNo `preview-pr-*` stacks in the backend.\n"
    action = {"closed": "destroy", "open": "keep", "missing": "keep (no such PR; check by hand)"}
    rows = [
        "### Preview sweeper",
        "",
        "| stack | PR state | action |",
        "|---|---|---|",
    ]
    rows += [f"| `preview-pr-{pr}` | {state} | {action[state]} |" for pr, state in sorted(states.items())]
    return "\n".join(rows) + "\n"


def _append(path: str | None, text: str) -> None:
    if path:
        with Path(path).open("a", encoding="utf-8") as fh:
            fh.write(text)


def _pulumi_stack_ls() -> str:
    result = subprocess.run(  # fixed argv, the CLI from PATH  # nosec B603 B607
        ["pulumi", "stack", "ls", "--json"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SweepError(f"`pulumi stack ls --json` failed: {result.stderr.strip()}")
    return result.stdout


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    stack_ls: Callable[[], str] = _pulumi_stack_ls,
) -> int:
    env = os.environ if environ is None else environ
    parser = StepParser(prog="python -m workflow.sweep_previews", description=__doc__)
    repo = matching(REPOSITORY, "a repository (owner/name)")
    sub = parser.add_subparsers(dest="command", required=True)
    find = sub.add_parser("find", help="closed PRs whose preview stack still exists")
    find.add_argument("--repo", required=True, type=repo, help="owner/name")
    check = sub.add_parser("check", help="is this PR still closed?")
    check.add_argument("--repo", required=True, type=repo, help="owner/name")
    check.add_argument("--pr", type=matching(PR_NUMBER, "a pull request number"), required=True)
    args = parser.parse_args(argv)

    token = env.get("GH_TOKEN") or env.get("GITHUB_TOKEN")
    if not token:
        print("sweep_previews: set GH_TOKEN to the workflow token.", file=sys.stderr)
        return 2
    github = GitHub(args.repo, token, env.get("GITHUB_API_URL") or DEFAULT_API)
    try:
        if args.command == "find":
            states = classify(preview_prs(stack_ls()), github.pr_state)
            closed = [pr for pr, state in sorted(states.items()) if state == "closed"]
            report = summary(states)
            print(report)
            _append(env.get("GITHUB_STEP_SUMMARY"), report)
            _append(env.get("GITHUB_OUTPUT"), f"prs={json.dumps(closed)}\n")
        else:
            state = github.pr_state(int(args.pr))
            print(f"PR #{args.pr} is {state}.")
            _append(env.get("GITHUB_OUTPUT"), f"closed={'true' if state == 'closed' else 'false'}\n")
            if state != "closed":
                _append(env.get("GITHUB_STEP_SUMMARY"), f"Kept `preview-pr-{args.pr}`: PR is {state}.\n")
    except GitHubError as exc:
        print(f"sweep_previews: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
