"""Which `preview-pr-<N>` stacks belong to closed pull requests (sweeper.yml), and the stack list (audit.yml).

`find` lists the stacks of the backend `PULUMI_BACKEND_URL` names by the names of their checkpoint
objects (`workflow.state_store`: no checkpoint is opened, so no Pulumi CLI, no `s3:GetObject` and no
KMS key are needed, and `pulumi stack ls`, which reads prod's checkpoint too, is not), asks the
GitHub API for each PR's state with the workflow token, writes the closed PR numbers as the step
output `prs` (a JSON list for the teardown matrix) and a table to the step summary.
`check --pr N` asks again right before a teardown (the PR may have been reopened) and writes
`closed=true|false`. `list --output FILE` writes every stack as `pulumi stack ls --json` would
(`name`, `lastUpdate`: when its checkpoint was last written), for the audit report. Removing is
`workflow.teardown_preview`'s.

Environment: PULUMI_BACKEND_URL, GH_TOKEN (or GITHUB_TOKEN), GITHUB_API_URL (default
https://api.github.com), GITHUB_OUTPUT, GITHUB_STEP_SUMMARY; AWS credentials as boto3 reads them.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from core.names import PR_NUMBER, PR_STACK, SAFE_STACK_NAME
from steps.args import StepParser, local_path, matching
from steps.retry import PermanentError, describe, retry_call
from workflow.github_api import DEFAULT_API, REPOSITORY, GitHub, GitHubError
from workflow.lease import project_name
from workflow.state_store import StoredStack, open_store, stacks


class SweepError(GitHubError):
    pass


def preview_prs(names: Iterable[str]) -> list[int]:
    """PR numbers of the `preview-pr-<N>` stacks among `names` (anything else is left out)."""
    prs = set()
    for name in names:
        # A listing may qualify names (`organization/webstack/preview-pr-7`).
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


def stored_stacks(env: Mapping[str, str]) -> list[StoredStack]:
    """The backend's stacks (PULUMI_BACKEND_URL), listed with transient errors retried."""
    store = open_store(env.get("PULUMI_BACKEND_URL", ""))
    return retry_call(lambda: stacks(store, project_name()), what="list the backend's stacks", attempts=5, deadline=120.0)


def stack_ls_document(listed: Iterable[StoredStack]) -> list[dict[str, str]]:
    """The stacks in `pulumi stack ls --json`'s shape, as far as a listing knows them."""
    return [{"name": s.name, "lastUpdate": s.last_modified} for s in listed]


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    listing: Callable[[Mapping[str, str]], list[StoredStack]] = stored_stacks,
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
    listed = sub.add_parser("list", help="every stack of the backend, as `pulumi stack ls --json` prints them")
    listed.add_argument("--output", required=True, type=local_path, help="where the JSON list goes")
    args = parser.parse_args(argv)

    if args.command == "list":
        try:
            document = stack_ls_document(listing(env))
        except (PermanentError, OSError) as exc:
            print(f"sweep_previews: {describe(exc)}", file=sys.stderr)
            return 1
        except Exception as exc:  # noqa: BLE001 - boto3's errors, after the retries: one line
            print(f"sweep_previews: cannot list the backend's stacks: {describe(exc)}", file=sys.stderr)
            return 1
        Path(args.output).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"{len(document)} stacks listed into {args.output}")
        return 0

    token = env.get("GH_TOKEN") or env.get("GITHUB_TOKEN")
    if not token:
        print("sweep_previews: set GH_TOKEN to the workflow token.", file=sys.stderr)
        return 2
    github = GitHub(args.repo, token, env.get("GITHUB_API_URL") or DEFAULT_API)
    try:
        if args.command == "find":
            try:
                names = [s.name for s in listing(env)]
            except Exception as exc:  # noqa: BLE001 - a StoreError or boto3's, after the retries: one line
                raise SweepError(f"cannot list the backend's stacks: {describe(exc)}") from None
            states = classify(preview_prs(names), github.pr_state)
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
