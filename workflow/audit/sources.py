"""Where the audit report's facts come from, one function a source (workflow.audit).

- `deploys`: `webstack_audit.deploys` (workflow/deploy_record.py), DATABASE_URL;
- `ddl`: `webstack_audit.ddl_events` and whether its triggers are on (workflow/ddl_audit.py);
- `github`: the repository's workflow runs (REST, the job's token), the failed ones' jobs and steps,
  and the pull requests of preview stacks; GITHUB_API_URL, GITHUB_REPOSITORY, GH_TOKEN;
- `cloudtrail`: CloudTrail `LookupEvents` for the IAM, Lambda, S3 and CloudTrail write events
  (boto3's credential chain; `AWS_ENDPOINT_URL_CLOUDTRAIL` points it at a stand-in);
- `cloudflare`: the account's audit log (Audit Logs v2, `/accounts/:id/logs/audit`: it names the
  API token of each change, which v1's `/audit_logs` does not); CLOUDFLARE_API_TOKEN,
  CLOUDFLARE_ACCOUNT_ID, CLOUDFLARE_API_BASE_URL;
- `stacks`: the backend's stacks (`pulumi stack ls --json`, saved by the workflow to a file);
- `drift`: what `python -m workflow.drift` found (its JSON file).

Each returns plain JSON-able data or raises; `collect` turns a raise into `{"status": "missing"}`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from core.database import AUDIT_REPORT_APPLICATION
from steps.console import shown
from steps.database import connect
from workflow.github_api import DEFAULT_API, GitHub

CLOUDTRAIL_SOURCES = ("iam.amazonaws.com", "lambda.amazonaws.com", "s3.amazonaws.com", "cloudtrail.amazonaws.com")
GITHUB_PAGES = 10
CLOUDFLARE_PAGES = 20
TIMEOUT_SECONDS = 30


class SourceMissing(RuntimeError):
    """A source that is not configured or cannot be read: the report says so and goes on."""


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime

    def iso(self, which: str) -> str:
        return getattr(self, which).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso(value: Any) -> Any:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(value, datetime) else value


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if value is None or isinstance(value, (bool, int, float, str, dict, list)):
        return value
    return str(value)


def _rows(cur) -> list[dict[str, Any]]:
    names = [c.name for c in cur.description]
    return [{k: _plain(v) for k, v in zip(names, row, strict=True)} for row in cur.fetchall()]


def _connect(env: Mapping[str, str]):
    import psycopg

    url = env.get("DATABASE_URL", "").strip()
    if not url:
        raise SourceMissing("DATABASE_URL is not set")
    try:
        return connect(url, application_name=AUDIT_REPORT_APPLICATION)
    except psycopg.OperationalError as exc:
        raise SourceMissing(f"cannot connect to the database ({type(exc).__name__})") from None


def deploys(window: Window, env: Mapping[str, str]) -> list[dict[str, Any]]:
    with _connect(env) as conn:
        exists = conn.execute("SELECT to_regclass('webstack_audit.deploys') IS NOT NULL").fetchone()[0]
        if not exists:
            return []
        cur = conn.execute(
            "SELECT recorded_at, stack, outcome, actor, commit_sha, ref, run_id, run_attempt, run_url,"
            " function_name, stable_version, api_url, site_url FROM webstack_audit.deploys"
            " WHERE recorded_at >= %s AND recorded_at < %s ORDER BY recorded_at",
            (window.since, window.until),
        )
        return _rows(cur)


def ddl(window: Window, env: Mapping[str, str]) -> dict[str, Any]:
    from workflow.ddl_audit import trigger_states

    with _connect(env) as conn:
        triggers = trigger_states(conn)
        events: list[dict[str, Any]] = []
        if conn.execute("SELECT to_regclass('webstack_audit.ddl_events') IS NOT NULL").fetchone()[0]:
            cur = conn.execute(
                "SELECT occurred_at, event, command_tag, object_type, object_identity, session_user_name,"
                " application_name, host(client_addr) AS client_addr, in_migration FROM webstack_audit.ddl_events"
                " WHERE occurred_at >= %s AND occurred_at < %s ORDER BY id",
                (window.since, window.until),
            )
            events = _rows(cur)
    return {"triggers": triggers, "events": events}


def _github(env: Mapping[str, str]) -> GitHub:
    token = env.get("GH_TOKEN") or env.get("GITHUB_TOKEN")
    repo = env.get("GITHUB_REPOSITORY")
    if not token or not repo:
        raise SourceMissing("GH_TOKEN and GITHUB_REPOSITORY must be set")
    return GitHub(repo, token, env.get("GITHUB_API_URL") or DEFAULT_API)


def _run_summary(run: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(run.get("id")),
        "workflow": Path(str(run.get("path") or "")).stem or str(run.get("name")),
        "event": run.get("event"),
        "branch": run.get("head_branch"),
        "sha": run.get("head_sha"),
        "actor": (run.get("actor") or {}).get("login"),
        "conclusion": run.get("conclusion"),
        "status": run.get("status"),
        "started": run.get("run_started_at") or run.get("created_at"),
        "ended": run.get("updated_at"),
        "url": run.get("html_url"),
        "prs": [p.get("number") for p in run.get("pull_requests") or [] if p.get("number")],
    }


FAILED = ("failure", "timed_out", "startup_failure")


def github(window: Window, env: Mapping[str, str], *, record_run_ids: Iterable[str] = (), prs: Iterable[int] = ()) -> dict[str, Any]:
    """The runs created in the window; why each failed one failed; runs named by deploy records
    that are not in the window's list (looked up one by one: 404 means no such run); the state of
    each PR that has a preview stack (`prs`) or a run in the window."""
    gh = _github(env)
    runs: list[dict[str, Any]] = []
    for page in range(1, GITHUB_PAGES + 1):
        answer = gh.json("GET", "/actions/runs", params={"created": f">={window.iso('since')}", "per_page": 100, "page": page})
        batch = answer.get("workflow_runs") or []
        runs += [_run_summary(r) for r in batch if (r.get("created_at") or "") < window.iso("until")]
        if len(batch) < 100:
            break
    for run in runs:
        if run["conclusion"] in FAILED:
            jobs = gh.json("GET", f"/actions/runs/{run['id']}/jobs").get("jobs") or []
            run["failed"] = [
                {"job": j.get("name"), "steps": [s.get("name") for s in j.get("steps") or [] if s.get("conclusion") == "failure"]}
                for j in jobs if j.get("conclusion") in FAILED
            ]  # fmt: skip
    known = {r["id"] for r in runs}
    looked_up: dict[str, Any] = {}
    for run_id in sorted(set(record_run_ids) - known):
        response = gh.request("GET", f"/actions/runs/{run_id}", expect=(200, 404))
        looked_up[run_id] = _run_summary(response.json()) if response.status_code == 200 else None
    pulls: dict[str, Any] = {}
    for number in sorted(set(prs) | {n for r in runs for n in r["prs"]}):
        response = gh.request("GET", f"/pulls/{number}", expect=(200, 404))
        body = response.json() if response.status_code == 200 else {}
        pulls[str(number)] = {"state": body.get("state", "missing"), "closed_at": body.get("closed_at")}
    return {"runs": runs, "looked_up": looked_up, "pulls": pulls}


def _identity(record: Mapping[str, Any]) -> tuple[str, str]:
    """(the role or user ARN that acted, the identity type) from a CloudTrail record."""
    identity = record.get("userIdentity") or {}
    issuer = ((identity.get("sessionContext") or {}).get("sessionIssuer") or {}).get("arn")
    return str(issuer or identity.get("arn") or identity.get("invokedBy") or "unknown"), str(identity.get("type") or "")


def cloudtrail(window: Window, env: Mapping[str, str]) -> list[dict[str, Any]]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    if not (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")):
        raise SourceMissing("AWS_REGION is not set")
    client = boto3.client("cloudtrail", region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"))
    events: list[dict[str, Any]] = []
    try:
        for source in CLOUDTRAIL_SOURCES:
            # One attribute per lookup (an AWS limit): by source, then write events only.
            pages = client.get_paginator("lookup_events").paginate(
                LookupAttributes=[{"AttributeKey": "EventSource", "AttributeValue": source}],
                StartTime=window.since,
                EndTime=window.until,
            )
            for page in pages:
                for event in page.get("Events", []):
                    if event.get("ReadOnly") == "true":
                        continue
                    record = json.loads(event.get("CloudTrailEvent") or "{}")
                    actor, kind = _identity(record)
                    events.append(
                        {
                            "time": iso(event["EventTime"]),
                            "source": event.get("EventSource"),
                            "name": event.get("EventName"),
                            "actor": actor,
                            "identity_type": kind,
                            "username": event.get("Username"),
                            "resources": [r.get("ResourceName") for r in event.get("Resources") or []],
                        }
                    )
    except (BotoCoreError, ClientError) as exc:
        raise SourceMissing(f"CloudTrail LookupEvents failed: {shown(str(exc), 200, quote=False)}") from None
    return sorted(events, key=lambda e: e["time"])


def cloudflare(window: Window, env: Mapping[str, str]) -> list[dict[str, Any]]:
    token, account = env.get("CLOUDFLARE_API_TOKEN"), env.get("CLOUDFLARE_ACCOUNT_ID")
    if not token or not account:
        raise SourceMissing("CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID must be set")
    base = (env.get("CLOUDFLARE_API_BASE_URL") or "https://api.cloudflare.com/client/v4").rstrip("/")
    entries: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(CLOUDFLARE_PAGES):
        params = {"since": window.iso("since"), "before": window.iso("until"), "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        try:
            response = requests.get(
                f"{base}/accounts/{account}/logs/audit", params=params,
                headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT_SECONDS,
            )  # fmt: skip
        except requests.RequestException as exc:
            raise SourceMissing(f"Cloudflare audit log: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise SourceMissing(f"Cloudflare audit log: HTTP {response.status_code}")
        body = response.json()
        for entry in body.get("result") or []:
            actor, action, resource = entry.get("actor") or {}, entry.get("action") or {}, entry.get("resource") or {}
            entries.append(
                {
                    "time": action.get("time"),
                    "action": action.get("type"),
                    "result": action.get("result"),
                    "description": action.get("description"),
                    "product": resource.get("product"),
                    "resource_type": resource.get("type"),
                    "resource": resource.get("id"),
                    "token_id": actor.get("token_id") or "",
                    "actor": actor.get("email") or actor.get("id"),
                    "context": actor.get("context"),
                }
            )
        cursor = (body.get("result_info") or {}).get("cursor") or ""
        if not cursor:
            break
    return entries


def _json_file(path: str | None, what: str, flag: str) -> Any:
    if not path:
        raise SourceMissing(f"no {what} given ({flag})")
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SourceMissing(f"the {what} cannot be read ({type(exc).__name__})") from None


def stacks(path: str | None) -> list[dict[str, Any]]:
    listed = _json_file(path, "stack list", "--stacks, from `pulumi stack ls --json`")
    if not isinstance(listed, list):
        raise SourceMissing("the stack list is not a JSON list")
    return [{"name": str(s.get("name", "")).rsplit("/", 1)[-1], "last_update": s.get("lastUpdate")} for s in listed if isinstance(s, dict)]


def drift(path: str | None) -> dict[str, Any]:
    found = _json_file(path, "drift check", "--drift, from `python -m workflow.drift`")
    if not isinstance(found, dict) or "drifted" not in found:
        raise SourceMissing("the drift check is not workflow.drift's JSON")
    return found


def collect(name: str, fetch: Callable[[], Any]) -> dict[str, Any]:
    """One source's data, or why it is missing. Any failure of one source is the report's to show,
    never the run's end (the other sources still count)."""
    try:
        return {"status": "ok", "data": fetch()}
    except SourceMissing as exc:
        return {"status": "missing", "why": str(exc)}
    except Exception as exc:  # noqa: BLE001 - an unreachable source is non-critical by design
        return {"status": "missing", "why": f"{name}: {type(exc).__name__}: {shown(str(exc), 200, quote=False)}"}


def now() -> datetime:
    return datetime.now(UTC)


def environment() -> Mapping[str, str]:
    return os.environ
