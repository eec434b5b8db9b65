"""The security quarantine: a verified secret freezes deploys until a person closes one issue.

    python -m workflow.quarantine open --findings FILE    (security.yml, the `quarantine` job)
    python -m workflow.quarantine check                   (before every `pulumi up`)

`open` reads trufflehog's `--json` output (one finding per line; a JSON list of them is read too)
and keeps the verified findings. For those it opens one GitHub issue labelled `security-quarantine`
or, when one is open already, comments on it; then it sends a critical alert (the pipeline's alert
webhook, `steps.alert.send_alert`) and writes a job-summary entry. Each names the detector, the
file, the line and the commit, never the secret: of a finding only `DetectorName`, `Verified` and
`SourceMetadata` (commit, file, line) are read; `Raw`, `RawV2`, `Redacted` and `ExtraData` never
are. Exit 0: no verified finding; 1: quarantined (the run fails, like the scan that found it), or
the issue could not be written (the alert is sent either way).

`check` lists the open issues with that label. Exit 0: none; 1: quarantined, with one message
naming the issue and what a person does (rotate, purge or accept the history, close the issue);
3: GitHub could not be asked, so the deploy is refused all the same (a gate that cannot tell
does not open).

Environment: GITHUB_REPOSITORY, GITHUB_TOKEN (or GH_TOKEN), GITHUB_API_URL (default
https://api.github.com), GITHUB_STEP_SUMMARY, GITHUB_SERVER_URL and GITHUB_RUN_ID (the run link),
ALERT_WEBHOOK_URL (`open`). Bad input: one line, exit 2.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from steps.alert import send_alert
from steps.args import StepParser, http_url, local_path
from steps.console import mask, shown
from workflow import json_input
from workflow.github_api import DEFAULT_API, REPOSITORY, GitHub, GitHubError

LABEL = "security-quarantine"
LABEL_COLOR = "b60205"
LABEL_DESCRIPTION = "A verified secret was found: deploys are refused until this issue is closed"
MARKER = "<!-- webstack-security-quarantine -->"
TITLE = "Security quarantine: a verified secret is in the repository"
# Findings listed in one issue body, comment or alert; the rest are counted.
LIST_LIMIT = 20
MAX_FINDINGS_BYTES = 50 * 1024 * 1024
COMMIT = re.compile(r"[0-9a-f]{7,64}")

WHAT_TO_DO = (
    "1. **Rotate the credential** at its service: revoke the leaked one, issue a new one, and put the "
    "new one where the pipeline reads it (a GitHub environment secret, never the repository).\n"
    "2. **Purge or accept the history**: rewrite the commits that hold it (`git filter-repo`, then a "
    "force-push and GitHub Support for cached views), or, once the credential is revoked, accept "
    "that the dead value stays in history.\n"
    "3. **Close this issue.** Closing it is the record that a person cleared the quarantine: "
    "`deploy` and `preview` run `pulumi up` again once no issue labelled "
    f"`{LABEL}` is open."
)


class QuarantineError(RuntimeError):
    """Input that cannot be read (exit 2)."""


@dataclass(frozen=True)
class Finding:
    detector: str
    file: str
    commit: str
    line: int | None
    verified: bool

    def row(self) -> str:
        line = str(self.line) if self.line is not None else "?"
        return f"| {self.detector} | `{self.file}` | {line} | `{self.commit}` |"

    def text(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{self.detector} in {where} at commit {self.commit[:12]}"


def _clean(value: object, limit: int = 200) -> str:
    """A name from the scan as it may appear in Markdown: one line, bounded, no backticks or pipes."""
    text = shown(value if isinstance(value, str) else "", limit, quote=False)
    return text.replace("`", "'").replace("|", "\\|") or "?"


def _finding(record: object, where: str) -> Finding:
    if not isinstance(record, Mapping):
        raise QuarantineError(f"{where}: a finding is a JSON object, not {type(record).__name__}")
    # Only these fields are read: the secret is in Raw/RawV2 (and parts of it in Redacted and
    # ExtraData), which nothing here touches.
    detector, verified, metadata = record.get("DetectorName"), record.get("Verified"), record.get("SourceMetadata")
    if not isinstance(detector, str) or not isinstance(verified, bool):
        raise QuarantineError(f"{where}: not a trufflehog finding (DetectorName and Verified are missing)")
    data = metadata.get("Data") if isinstance(metadata, Mapping) else None
    # {"Data": {"Git": {...}}} for git scans; Github, Filesystem, ... for the other sources.
    source = next(iter(data.values()), None) if isinstance(data, Mapping) and data else None
    if not isinstance(source, Mapping):
        source = {}
    commit = source.get("commit")
    line = source.get("line")
    return Finding(
        detector=_clean(detector, 60),
        file=_clean(source.get("file") or source.get("path") or "?"),
        commit=commit if isinstance(commit, str) and COMMIT.fullmatch(commit) else "?",
        line=line if isinstance(line, int) and not isinstance(line, bool) and line >= 0 else None,
        verified=verified,
    )


def parse_findings(text: str) -> list[Finding]:
    """Findings of trufflehog's `--json` output (JSON lines), or of a JSON list of them."""
    stripped = text.strip()
    try:
        if stripped.startswith("["):
            records = json_input.loads(stripped, "the findings")
            return [_finding(r, f"finding {i}") for i, r in enumerate(records, 1)]
        findings = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                findings.append(_finding(json_input.loads(line, f"line {number} of the findings"), f"line {number}"))
        return findings
    except json_input.JsonInputError as exc:
        raise QuarantineError(str(exc)) from None


def read_findings(path: Path) -> list[Finding]:
    try:
        text = json_input.read_text(path, f"the findings {shown(str(path))}", max_bytes=MAX_FINDINGS_BYTES)
    except json_input.JsonInputError as exc:
        raise QuarantineError(str(exc)) from None
    return parse_findings(text)


def verified(findings: Iterable[Finding]) -> list[Finding]:
    return list(dict.fromkeys(f for f in findings if f.verified))


def findings_table(findings: Sequence[Finding]) -> str:
    rows = ["| detector | file | line | commit |", "|---|---|---|---|"]
    rows += [f.row() for f in findings[:LIST_LIMIT]]
    if len(findings) > LIST_LIMIT:
        rows.append(f"| … and {len(findings) - LIST_LIMIT} more | | | |")
    return "\n".join(rows)


def run_link(env: Mapping[str, str]) -> str | None:
    if env.get("GITHUB_REPOSITORY") and env.get("GITHUB_RUN_ID"):
        server = env.get("GITHUB_SERVER_URL") or "https://github.com"
        return f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    return None


def issue_body(findings: Sequence[Finding], link: str | None) -> str:
    parts = [
        MARKER,
        "The secret scan found a credential that **verified against its service**: it is live and "
        "it is in this repository's history. Until this issue is closed, `deploy` and `preview` "
        "refuse to run `pulumi up`; cleanup and destroys still run.",
        findings_table(findings),
        "The secret itself is not shown here, in the alert or in the run summary.",
        "## What to do\n\n" + WHAT_TO_DO,
    ]
    if link:
        parts.append(f"Found by [this run]({link}).")
    return "\n\n".join(parts) + "\n"


def comment_body(findings: Sequence[Finding], link: str | None) -> str:
    found = f"[A later scan]({link})" if link else "A later scan"
    return f"{MARKER}\n\n{found} found more verified secrets:\n\n{findings_table(findings)}\n"


@dataclass(frozen=True)
class Issue:
    number: int
    title: str
    url: str


def open_issues(github: GitHub) -> list[Issue]:
    """The open issues labelled LABEL, oldest first (pull requests, which the endpoint also lists, left out)."""
    # Every page: the endpoint lists pull requests too, so the issue may come after 100 of them.
    items = github.listing("/issues", params={"state": "open", "labels": LABEL, "sort": "created", "direction": "asc"})
    issues = []
    for item in items:
        if not isinstance(item, Mapping) or "pull_request" in item or not isinstance(item.get("number"), int):
            continue
        issues.append(Issue(item["number"], shown(item.get("title") or "", 120, quote=False), str(item.get("html_url") or "")))
    return issues


def ensure_label(github: GitHub) -> None:
    """Create the label once (422: it exists). An issue created with an unknown label may lose it."""
    github.request(
        "POST",
        "/labels",
        body={"name": LABEL, "color": LABEL_COLOR, "description": LABEL_DESCRIPTION},
        expect=(201, 422),
    )


def quarantine(github: GitHub, findings: Sequence[Finding], link: str | None) -> tuple[Issue, bool]:
    """Comment on the open quarantine issue, or open one. Returns (issue, created)."""
    existing = open_issues(github)
    if existing:
        issue = existing[0]
        github.request("POST", f"/issues/{issue.number}/comments", body={"body": comment_body(findings, link)}, expect=(201,))
        return issue, False
    ensure_label(github)
    created = github.json(
        "POST", "/issues", body={"title": TITLE, "body": issue_body(findings, link), "labels": [LABEL]}, expect=(201,)
    )
    if not isinstance(created, Mapping) or not isinstance(created.get("number"), int):
        raise GitHubError("GitHub API: POST /issues: the answer names no issue")
    labels = [label.get("name") if isinstance(label, Mapping) else label for label in created.get("labels") or []]
    issue = Issue(created["number"], TITLE, str(created.get("html_url") or ""))
    if LABEL not in labels:
        raise GitHubError(f"issue #{issue.number} was created without the label {LABEL!r}: the gates cannot see it; add it by hand")
    return issue, True


def refusal(issues: Sequence[Issue]) -> str:
    named = ", ".join(f"#{i.number} ({i.url or i.title})" for i in issues)
    return (
        f"Deploys are quarantined: a verified secret was found (issue {named}, label {LABEL}). "
        "pulumi up is refused until a person: 1. rotates the credential; 2. purges or accepts the "
        "history; 3. closes the issue. Cleanup and destroy still run."
    )


def _append(path: str | None, text: str) -> None:
    if not path:
        return
    try:
        with Path(path).open("a", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        print(f"quarantine: could not write the job summary: {exc.strerror or type(exc).__name__}", file=sys.stderr)


def _github(env: Mapping[str, str]) -> GitHub:
    repo = env.get("GITHUB_REPOSITORY", "")
    if not REPOSITORY.fullmatch(repo):
        raise QuarantineError(f"GITHUB_REPOSITORY must be owner/name, not {shown(repo)}")
    token = env.get("GITHUB_TOKEN") or env.get("GH_TOKEN")
    if not token:
        raise QuarantineError("set GITHUB_TOKEN to the workflow token")
    api = env.get("GITHUB_API_URL") or DEFAULT_API
    try:
        http_url(api)
    except Exception:  # noqa: BLE001 - argparse's type error: one line, below
        raise QuarantineError(f"GITHUB_API_URL is not an http(s) URL: {shown(api)}") from None
    return GitHub(repo, token, api)


def do_open(findings_path: Path, env: Mapping[str, str]) -> int:
    github = _github(env)
    found = verified(read_findings(findings_path))
    if not found:
        print("quarantine: no verified finding; nothing to quarantine.")
        return 0
    link = run_link(env)
    listing = "\n".join(f"- {f.text()}" for f in found[:LIST_LIMIT])
    if len(found) > LIST_LIMIT:
        listing += f"\n- … and {len(found) - LIST_LIMIT} more"
    issue: Issue | None = None
    problem = None
    try:
        issue, created = quarantine(github, found, link)
        where = f"issue #{issue.number} {'opened' if created else 'updated'}" + (f": {issue.url}" if issue.url else "")
    except GitHubError as exc:
        problem = str(exc)
        where = f"the quarantine issue could NOT be written ({problem}): open one labelled {LABEL} by hand"
    delivered = send_alert(
        "critical",
        f"Verified secret in {github.repo}: deploys quarantined",
        f"{len(found)} verified finding(s); the secret itself is not shown.\n{listing}\n{where}.\n"
        "Rotate the credential, purge or accept the history, then close the issue.",
    )
    _append(
        env.get("GITHUB_STEP_SUMMARY"),
        f"### Security quarantine\n\n{len(found)} verified secret finding(s): {mask(where)}.\n\n"
        f"{findings_table(found)}\n\n{WHAT_TO_DO}\n\n",
    )
    print(mask(f"quarantine: {len(found)} verified finding(s); {where}."), file=sys.stderr)
    if not delivered:
        print("quarantine: the alert could not be delivered (see above).", file=sys.stderr)
    return 1


def do_check(env: Mapping[str, str]) -> int:
    github = _github(env)
    try:
        issues = open_issues(github)
    except GitHubError as exc:
        print(
            f"quarantine: cannot tell whether deploys are quarantined ({exc}); refusing to deploy. Re-run once GitHub answers.",
            file=sys.stderr,
        )
        return 3
    if not issues:
        print(f"quarantine: no open {LABEL} issue; deploys may run.")
        return 0
    message = refusal(issues)
    print(f"::error title=Deploys are quarantined::{message}", file=sys.stderr)
    _append(env.get("GITHUB_STEP_SUMMARY"), f"### Deploy refused: security quarantine\n\n{message}\n\n{WHAT_TO_DO}\n\n")
    return 1


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    parser = StepParser(prog="python -m workflow.quarantine", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    opener = sub.add_parser("open", help="quarantine on verified findings (trufflehog --json output)")
    opener.add_argument("--findings", required=True, type=local_path, help="trufflehog --json output")
    sub.add_parser("check", help="exit 1 while a quarantine issue is open")
    args = parser.parse_args(argv)
    try:
        if args.command == "open":
            return do_open(args.findings, env)
        return do_check(env)
    except QuarantineError as exc:
        print(mask(f"quarantine: {exc}"), file=sys.stderr)
        return 2
    except GitHubError as exc:
        print(mask(f"quarantine: {exc}"), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
