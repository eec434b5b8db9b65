"""What the audit report alerts on (workflow.audit): pure functions of the collected sources.

Each anomaly is `{"kind", "severity", "when", "summary", "detail"}`. A source that is missing yields
no anomaly of its kind (the report lists the source as missing instead): silence there is not a
clean bill.

- `aws-change`: an IAM, Lambda, S3 or CloudTrail write by anyone but the deploy roles (the role a
  session was assumed from; AWS services acting on their own are not changes by a person);
- `cloudflare-change`: a Pages or DNS write by any API token but the pipeline's (or from the
  dashboard, which has no token);
- `ddl-outside-migration`: DDL on the app's schema from a connection the pipeline did not mark;
  `ddl-mark-outside-deploy`: DDL marked as the pipeline's while no `deploy` run on main was running
  (anyone may set an application_name: a migration run by hand, or a forged mark);
  `ddl-audit-off`: the event triggers are missing or disabled, so the DDL log itself is incomplete;
- `deploy-without-record`: a successful prod deploy run (`deploy`, push to main) with no deploy record;
  `record-without-run`: a prod deploy record whose run GitHub does not know as a `deploy` run on main;
- `preview-left-behind`: a `preview-pr-<N>` stack whose PR has been closed for more than a day;
- `drift`: prod's resources no longer match the code (`workflow.drift`), one per resource.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from core.iam import DEPLOY_BRANCH
from core.names import PR_NUMBER, PR_STACK, PROD_STACK

DEPLOY_WORKFLOW = "deploy"
LEFT_BEHIND_AFTER = timedelta(days=1)
# Clock skew between GitHub's run times and the database's, at whole seconds.
RUN_WINDOW_SLACK = timedelta(seconds=5)
PAGES_AND_DNS = ("pages", "dns")
WRITE_ACTIONS = ("create", "update", "delete", "edit", "add", "remove", "rotate", "modify")

Anomaly = dict[str, Any]


def anomaly(kind: str, severity: str, when: Any, summary: str, detail: str = "") -> Anomaly:
    return {"kind": kind, "severity": severity, "when": when, "summary": summary, "detail": detail}


def pr_of(stack: str) -> int | None:
    """The PR number of a `preview-pr-<N>` stack name, or None."""
    match = PR_STACK.fullmatch(stack)
    return int(match["number"]) if match and PR_NUMBER.fullmatch(match["number"]) else None


def data(sources: Mapping[str, Mapping[str, Any]], name: str) -> Any:
    source = sources.get(name) or {}
    return source.get("data") if source.get("status") == "ok" else None


def aws_changes(events: Iterable[Mapping[str, Any]], deploy_roles: Iterable[str]) -> list[Anomaly]:
    allowed = {r for r in deploy_roles if r}
    found = []
    for event in events:
        if event["actor"] in allowed or event.get("identity_type") == "AWSService":
            continue
        found.append(
            anomaly(
                "aws-change", "critical", event["time"],
                f"{event['name']} ({event['source']}) by {event['actor']}, not a deploy role",
                ", ".join(r for r in event.get("resources") or [] if r),
            )
        )  # fmt: skip
    return found


def _is_pages_or_dns(entry: Mapping[str, Any]) -> bool:
    where = f"{entry.get('product') or ''} {entry.get('resource_type') or ''}".lower()
    return any(word in where for word in PAGES_AND_DNS)


def cloudflare_changes(entries: Iterable[Mapping[str, Any]], pipeline_tokens: Iterable[str]) -> list[Anomaly]:
    allowed = {t for t in pipeline_tokens if t}
    found = []
    for entry in entries:
        action = str(entry.get("action") or "").lower()
        if not _is_pages_or_dns(entry) or not any(word in action for word in WRITE_ACTIONS):
            continue
        if entry.get("token_id") and entry["token_id"] in allowed:
            continue
        who = f"token {entry['token_id']}" if entry.get("token_id") else f"{entry.get('context') or 'unknown'} session"
        found.append(
            anomaly(
                "cloudflare-change", "critical", entry.get("time"),
                f"{entry.get('product')} {action} of {entry.get('resource')} by {who} ({entry.get('actor')}), not the pipeline's token",
                str(entry.get("description") or ""),
            )
        )  # fmt: skip
    return found


def ddl_changes(ddl: Mapping[str, Any]) -> list[Anomaly]:
    found = []
    off = {name: state for name, state in (ddl.get("triggers") or {}).items() if state != "enabled"}
    if off:
        found.append(
            anomaly(
                "ddl-audit-off", "critical", None,
                "the DDL audit triggers are not all enabled: " + ", ".join(f"{n} {s}" for n, s in sorted(off.items())),
                "run `python -m workflow.ddl_audit install` as a superuser",
            )
        )  # fmt: skip
    for event in ddl.get("events") or []:
        if event.get("in_migration"):
            continue
        found.append(
            anomaly(
                "ddl-outside-migration", "critical", event.get("occurred_at"),
                f"{event.get('command_tag')} {event.get('object_identity')} by {event.get('session_user_name')} "
                f"outside a migration (application_name {event.get('application_name')!r})",
                f"from {event.get('client_addr') or 'local socket'}",
            )
        )  # fmt: skip
    return found


def _time(value: str) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def marked_ddl_outside_runs(ddl: Mapping[str, Any], github: Mapping[str, Any]) -> list[Anomaly]:
    runs = [*(github.get("runs") or []), *((github.get("looked_up") or {}).values())]
    windows = [
        (_time(r["started"]) - RUN_WINDOW_SLACK, _time(r["ended"]) + RUN_WINDOW_SLACK)
        for r in runs if _prod_deploy_run(r) and r.get("started") and r.get("ended")
    ]  # fmt: skip
    found = []
    for event in ddl.get("events") or []:
        if not event.get("in_migration") or not event.get("occurred_at"):
            continue
        when = _time(event["occurred_at"])
        if not any(start <= when <= end for start, end in windows):
            found.append(
                anomaly(
                    "ddl-mark-outside-deploy", "critical", event["occurred_at"],
                    f"{event.get('command_tag')} {event.get('object_identity')} by {event.get('session_user_name')} is marked "
                    f"as the pipeline's ({event.get('application_name')!r}) but no deploy run was running",
                    "a migration run by hand, or a copied mark",
                )
            )  # fmt: skip
    return found


def _prod_deploy_run(run: Mapping[str, Any] | None) -> bool:
    return bool(run) and run.get("workflow") == DEPLOY_WORKFLOW and run.get("branch") == DEPLOY_BRANCH and run.get("event") == "push"


def deploy_records(records: Iterable[Mapping[str, Any]], github: Mapping[str, Any]) -> list[Anomaly]:
    prod = [r for r in records if r.get("stack") == PROD_STACK]
    runs = {r["id"]: r for r in github.get("runs") or []}
    runs.update({k: v for k, v in (github.get("looked_up") or {}).items() if v})
    recorded = {str(r.get("run_id")) for r in prod}
    found = []
    for run in github.get("runs") or []:
        if _prod_deploy_run(run) and run.get("conclusion") == "success" and run["id"] not in recorded:
            found.append(
                anomaly("deploy-without-record", "critical", run.get("started"),
                        f"prod deploy run {run['id']} ({run.get('sha', '')[:12]}) succeeded without a deploy record",
                        str(run.get("url") or ""))
            )  # fmt: skip
    for record in prod:
        run = runs.get(str(record.get("run_id")))
        if not _prod_deploy_run(run):
            why = "no such workflow run" if run is None else f"run {run['id']} is `{run.get('workflow')}` on {run.get('branch')}"
            found.append(
                anomaly("record-without-run", "critical", record.get("recorded_at"),
                        f"deploy record of {str(record.get('commit_sha'))[:12]} by {record.get('actor')} names run "
                        f"{record.get('run_id')}: {why}")
            )  # fmt: skip
    return found


def previews_left_behind(stacks: Iterable[Mapping[str, Any]], pulls: Mapping[str, Mapping[str, Any]], now: datetime) -> list[Anomaly]:
    found = []
    for stack in stacks:
        number = pr_of(str(stack.get("name")))
        if number is None:
            continue
        pull = pulls.get(str(number)) or {}
        closed = pull.get("closed_at")
        if pull.get("state") == "closed" and closed and now - datetime.fromisoformat(closed.replace("Z", "+00:00")) > LEFT_BEHIND_AFTER:
            found.append(
                anomaly("preview-left-behind", "warning", closed,
                        f"stack {stack['name']} still exists; PR #{number} was closed at {closed}",
                        "the sweeper destroys it; if it keeps failing, run `cleanup` by hand")
            )  # fmt: skip
    return found


def drifted(drift: Mapping[str, Any]) -> list[Anomaly]:
    return [
        anomaly("drift", "warning", drift.get("checked_at"),
                f"prod's {resource['type']} {resource['name']} drifted: {', '.join(resource.get('properties') or ['(replaced or gone)'])}",
                resource.get("urn", ""))
        for resource in drift.get("resources") or []
    ]  # fmt: skip


def find(sources: Mapping[str, Mapping[str, Any]], *, deploy_roles: Iterable[str], pipeline_tokens: Iterable[str], now: datetime) -> list[Anomaly]:
    found: list[Anomaly] = []
    if (events := data(sources, "cloudtrail")) is not None:
        found += aws_changes(events, deploy_roles)
    if (entries := data(sources, "cloudflare")) is not None:
        found += cloudflare_changes(entries, pipeline_tokens)
    if (ddl := data(sources, "ddl")) is not None:
        found += ddl_changes(ddl)
    records, github = data(sources, "deploys"), data(sources, "github")
    if records is not None and github is not None:
        found += deploy_records(records, github)
    if ddl is not None and github is not None:
        found += marked_ddl_outside_runs(ddl, github)
    stacks = data(sources, "stacks")
    if stacks is not None and github is not None:
        found += previews_left_behind(stacks, github.get("pulls") or {}, now)
    if (drift := data(sources, "drift")) is not None:
        found += drifted(drift)
    return found
