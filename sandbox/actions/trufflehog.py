"""Stand-in of trufflesecurity/trufflehog v3.96.0 (6f3c981e7b77f235fd2702dd74af25fc4b72bf11): the
action, and the `ghcr.io/trufflesecurity/trufflehog` image it and security.yml run with `docker
run`. trufflehog v3 is not served by the Go module proxy, so the scanner is gitleaks (bin/gitleaks,
github.com/zricethezav/gitleaks/v8, built by sandbox/engine.py) over the same commits, its findings
written in trufflehog's shapes:

- the action (upstream action.yml): the commit range from the event as upstream computes it
  (push: `before`..`after`, none when the push has no commits, all of history for a new branch;
  pull_request: base..head sha; schedule and workflow_dispatch: all of history; `base`/`head`
  inputs win, equal ones fail) and then the image, with `--fail --no-update --github-actions` and
  `extra_args`;
- the image's `git file://PATH` command (`--since-commit`, `--branch`, `--results`, `--json`,
  `--github-actions`, `--fail`): `--json` prints one JSON object per finding as trufflehog's
  JSONPrinter (pkg/output/json.go: SourceMetadata.Data.Git {commit, file, email, repository,
  timestamp, line}, SourceType 16, DetectorType/DetectorName, DecoderName PLAIN, Verified, Raw,
  RawV2, Redacted, ExtraData); `--github-actions` prints trufflehog's annotation per finding
  (pkg/output/github_actions.go: `::warning file=F,line=L,endLine=L::Found verified X result 🐷🔑`,
  deduplicated), never the secret; `--fail` exits 183 when anything was found.

Verification: trufflehog calls a detector's service with the secret it found and marks the
result verified only when that authenticated (Cloudflare's /user/tokens/verify, AWS's
GetCallerIdentity, ...). The services here are the local cloud's, so that is where the stand-in
verifies: a Cloudflare API token against the local Cloudflare API's /user/tokens/verify
(CLOUDFLARE_API_BASE_URL), an AWS access key id against the local cloud's IAM (a key of one of
its users, AWS_ENDPOINT_URL). A finding of any other detector cannot be verified here and is
reported `unknown` (Verified false, with a VerificationError), as trufflehog reports a
verification it could not complete. gitleaks rules with no trufflehog detector (its
`generic-api-key`) are left out: trufflehog has no such detector. So a test fixture that looks
like a key is an unverified finding (the gate fails, nobody is quarantined), and the local cloud's
own token leaked into a commit is verified and quarantines, as a live token would on GitHub.

The runner's `docker` (sandbox/actions/bin/docker) runs this for that image and refuses every
other one: the runner has no Docker daemon (act's host mode).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess  # gitleaks and git with list argv  # nosec B404
import sys
import tempfile
from pathlib import Path
from typing import Any

from sandbox.actions.toolkit import ActionFailed, get_input, info, runner_setting

IMAGE = "ghcr.io/trufflesecurity/trufflehog"
FOUND_EXIT = 183
SOURCE_TYPE_GIT = 16
ZERO = "0" * 40
# gitleaks rule id -> trufflehog's detector (name, DetectorType number in proto/detector_type.proto).
DETECTORS: dict[str, tuple[str, int]] = {
    "aws-access-token": ("AWS", 2),
    "github-pat": ("Github", 8),
    "github-fine-grained-pat": ("Github", 8),
    "github-oauth": ("Github", 8),
    "github-app-token": ("Github", 8),
    "github-refresh-token": ("Github", 8),
    "slack-bot-token": ("Slack", 13),
    "slack-user-token": ("Slack", 13),
    "slack-webhook-url": ("SlackWebhook", 13),
    "private-key": ("PrivateKey", 15),
    "stripe-access-token": ("Stripe", 16),
    "npm-access-token": ("NpmToken", 49),
    "cloudflare-api-key": ("CloudflareApiToken", 100),
    "openai-api-key": ("OpenAI", 201),
}


def verify(detector: str, secret: str) -> tuple[bool, str]:
    """(verified, verification error) of a finding, against the local cloud's services."""
    import requests  # noqa: PLC0415 - only a scan with findings needs it

    try:
        if detector == "CloudflareApiToken" and os.environ.get("CLOUDFLARE_API_BASE_URL"):
            answer = requests.get(f"{os.environ['CLOUDFLARE_API_BASE_URL'].rstrip('/')}/user/tokens/verify",
                                  headers={"Authorization": f"Bearer {secret}"}, timeout=10)  # fmt: skip
            if answer.status_code == 200 and (answer.json().get("result") or {}).get("status") == "active":
                return True, ""
            return False, "" if answer.status_code in (400, 401, 403) else f"HTTP {answer.status_code}"
        if detector == "AWS" and os.environ.get("AWS_ENDPOINT_URL"):
            import boto3  # noqa: PLC0415
            from botocore.exceptions import ClientError  # noqa: PLC0415

            iam = boto3.client("iam", region_name="us-east-1", aws_access_key_id="trufflehog-verifier",
                               aws_secret_access_key="trufflehog-verifier")  # nosec B106 # fmt: skip
            try:
                iam.get_access_key_last_used(AccessKeyId=secret)
                return True, ""
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchEntity", "NotFoundException", "404"):
                    return False, ""
                raise
    except Exception as exc:  # noqa: BLE001 - any failure to ask is an unknown result, as in trufflehog
        return False, f"verification failed: {type(exc).__name__}"
    return False, "no service to verify against here"


def _redacted(secret: str) -> str:
    return secret[:4] + "*" * max(0, len(secret) - 4) if len(secret) > 8 else "*" * len(secret)


def scan(repo: Path, since_commit: str, branch: str) -> list[dict[str, Any]]:
    """gitleaks over the commits of `branch` not in `since_commit` (all history without one)."""
    gitleaks = Path(runner_setting("WEBSTACK_ENGINE_BIN")) / "gitleaks"
    if branch and since_commit:
        log_opts = f"{since_commit}..{branch}"
    elif branch:
        log_opts = branch
    else:
        log_opts = "--all"
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp, "report.json")
        done = subprocess.run(  # noqa: S603  # nosec
            [str(gitleaks), "git", str(repo), "--log-opts", log_opts, "--report-format", "json",
             "--report-path", str(report), "--exit-code", "0", "--no-banner", "--log-level", "error"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0 or not report.exists():
            raise RuntimeError(f"gitleaks exited {done.returncode}: {done.stderr.strip()[-300:]}")
        findings = json.loads(report.read_text() or "[]")
    remote = subprocess.run(["git", "-C", str(repo), "remote", "get-url", "origin"],  # noqa: S603,S607  # nosec
                            capture_output=True, text=True, check=False).stdout.strip()  # fmt: skip
    results = []
    for finding in findings:
        if str(finding.get("RuleID") or "") not in DETECTORS:
            continue  # trufflehog has no detector for it
        name, number = DETECTORS[str(finding["RuleID"])]
        secret = str(finding.get("Secret") or "")
        verified, verification_error = verify(name, secret)
        results.append(
            {
                "SourceMetadata": {"Data": {"Git": {
                    "commit": finding.get("Commit", ""),
                    "file": finding.get("File", ""),
                    "email": f"{finding.get('Author', '')} <{finding.get('Email', '')}>",
                    "repository": remote,
                    "timestamp": finding.get("Date", ""),
                    "line": int(finding.get("StartLine") or 0),
                }}},  # fmt: skip
                "SourceID": 1,
                "SourceType": SOURCE_TYPE_GIT,
                "SourceName": "trufflehog - git",
                "DetectorType": number,
                "DetectorName": name,
                "DetectorDescription": str(finding.get("Description") or ""),
                "DecoderName": "PLAIN",
                "Verified": verified,
                **({"VerificationError": verification_error} if verification_error else {}),
                "VerificationFromCache": False,
                "Raw": secret,
                "RawV2": str(finding.get("Match") or secret),
                "Redacted": _redacted(secret),
                "ExtraData": {"gitleaks_rule": str(finding.get("RuleID") or "")},
                "StructuredData": None,
            }
        )
    return results


def _kind(result: dict[str, Any]) -> str:
    if result["Verified"]:
        return "verified"
    return "unknown" if result.get("VerificationError") else "unverified"


def _annotation(result: dict[str, Any]) -> str:
    git = result["SourceMetadata"]["Data"]["Git"]
    status = "verified" if result["Verified"] else "unverified"
    return (f"::warning file={git['file']},line={git['line']},endLine={git['line']}::"
            f"Found {status} {result['DetectorName']} result 🐷🔑")  # fmt: skip


def cli(argv: list[str]) -> int:
    """`trufflehog git file://PATH [flags]`, as the image runs it."""
    parser = argparse.ArgumentParser(prog="trufflehog")
    parser.add_argument("source", choices=["git"])
    parser.add_argument("uri")
    parser.add_argument("--since-commit", default="")
    parser.add_argument("--branch", default="")
    parser.add_argument("--results", default="verified,unverified,unknown")
    parser.add_argument("--json", "-j", action="store_true")
    parser.add_argument("--github-actions", action="store_true")
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--no-update", action="store_true")
    parser.add_argument("--only-verified", action="store_true")
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"trufflehog (local stand-in): flags not supported here: {' '.join(unknown)}", file=sys.stderr)
        return 1
    if not args.uri.startswith("file://"):
        print("trufflehog (local stand-in): only file:// repositories", file=sys.stderr)
        return 1
    kinds = {k.strip() for k in args.results.split(",") if k.strip()}
    if args.only_verified:
        kinds = {"verified"}
    print("🐷🔑🐷  TruffleHog. Unearth your secrets. 🐷🔑🐷  (local stand-in: gitleaks, verified against the local cloud)", file=sys.stderr)
    try:
        results = scan(Path(args.uri.removeprefix("file://")), args.since_commit.strip("'\""), args.branch.strip("'\""))
    except RuntimeError as exc:
        print(f"trufflehog (local stand-in): {exc}", file=sys.stderr)
        return 1
    results = [r for r in results if _kind(r) in kinds]
    seen: set[str] = set()
    for result in results:
        if args.json:
            print(json.dumps(result, ensure_ascii=False), flush=True)
        else:
            line = _annotation(result)
            key = hashlib.sha256(line.encode()).hexdigest()
            if key not in seen:
                seen.add(key)
                print(line, flush=True)
    print(f"finished scanning: {len(results)} result(s)", file=sys.stderr)
    return FOUND_EXIT if args.fail and results else 0


def docker(argv: list[str]) -> int:
    """The runner's `docker`: `docker run [--rm] [-v SRC:DST] [-w DIR] IMAGE:TAG ARGS...` for the
    trufflehog image only, DST paths in ARGS mapped back to SRC."""
    if not argv or argv[0] != "run":
        print("docker: this runner has no Docker daemon (act host mode); only `docker run` of the trufflehog image is stood in", file=sys.stderr)
        return 125
    args = argv[1:]
    mounts: list[tuple[str, str]] = []
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag in ("--rm", "-i", "-t", "-it"):
            continue
        if flag in ("-v", "--volume", "-w", "--workdir") and args:
            value = args.pop(0)
            if flag in ("-v", "--volume"):
                source, _, target = value.partition(":")
                mounts.append((str(Path(source).resolve()), target.rstrip("/") or "/"))
            continue
        print(f"docker (local stand-in): unsupported flag {flag}", file=sys.stderr)
        return 125
    if not args or not re.fullmatch(rf"{re.escape(IMAGE)}(:[\w.-]+)?", args[0]):
        print(f"docker: no Docker daemon on this runner; only {IMAGE} is stood in, not {args[0] if args else '(no image)'}", file=sys.stderr)
        return 125
    mapped = []
    for arg in args[1:]:
        for source, target in mounts:
            if arg.startswith(f"file://{target}"):
                arg = f"file://{source}{arg.removeprefix(f'file://{target}')}"
        mapped.append(arg)
    return cli(mapped)


def action() -> None:
    """The action's run step (upstream action.yml), without jq and docker."""
    event_name = os.environ.get("GITHUB_EVENT_NAME", "")
    try:
        event = json.loads(Path(os.environ.get("GITHUB_EVENT_PATH", "")).read_text())
    except (OSError, ValueError):
        event = {}
    path = Path(os.environ.get("GITHUB_WORKSPACE", ".")) / (get_input("path") or "./")
    base, head = get_input("base"), get_input("head")

    def rev(value: str) -> str:
        done = subprocess.run(["git", "-C", str(path), "rev-parse", value], capture_output=True, text=True, check=False)  # noqa: S603,S607  # nosec
        return done.stdout.strip() if done.returncode == 0 else ""

    if base or head:
        if (rev(base) if base else "") == (rev(head) if head else ""):
            raise ActionFailed("BASE and HEAD commits are the same. TruffleHog won't scan anything. Please see documentation "
                               "(https://github.com/trufflesecurity/trufflehog#octocat-trufflehog-github-action).")  # fmt: skip
    elif event_name == "push":
        if not event.get("commits"):
            info("No commits to scan")
            return
        head = str(event.get("after") or "")
        base = "" if event.get("before") == ZERO else str(event.get("before") or "")
    elif event_name in ("workflow_dispatch", "schedule"):
        base = head = ""
    elif event_name == "pull_request":
        base = str(((event.get("pull_request") or {}).get("base") or {}).get("sha") or "")
        head = str(((event.get("pull_request") or {}).get("head") or {}).get("sha") or "")
    extra = get_input("extra_args").split()
    code = cli(["git", f"file://{path.resolve()}", "--since-commit", base, "--branch", head, "--fail", "--no-update",
                "--github-actions", *extra])  # fmt: skip
    if code != 0:
        sys.exit(code)


STAGES = {("trufflehog", "main"): action}

if __name__ == "__main__":
    if sys.argv[1:2] == ["docker"]:
        sys.exit(docker(sys.argv[2:]))
    sys.exit(cli(sys.argv[1:]))
