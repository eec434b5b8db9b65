"""`python -m workflow.audit report`: collect, find anomalies, alert, write the report (audit.yml).

    python -m workflow.audit report --since 7d [--until 2026-11-30T00:00:00Z]
        [--json audit-report.json] [--markdown FILE] [--stacks stacks.json] [--drift drift.json] [--alert]

The period is `--since` (a duration such as `7d` or `36h`, or a UTC timestamp) up to `--until`
(default now). The Markdown goes to `--markdown`, or is appended to GITHUB_STEP_SUMMARY, or printed;
the JSON to `--json`. `--alert` sends each anomaly through the alert webhook (steps.alert:
ALERT_WEBHOOK_URL, and annotations in GitHub Actions). Who the pipeline is: AUDIT_DEPLOY_ROLE_ARNS
(the deploy roles, comma-separated) and AUDIT_PIPELINE_TOKEN_IDS (the Cloudflare API token ids of
the pipeline, as `/user/tokens/verify` shows them). Sources: workflow/audit/sources.py.

Exits 0 whatever the sources and anomalies (a missing source is shown in the report, an anomaly is
an alert); 2 on bad arguments, with one line.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from core.names import PROD_STACK
from steps.alert import send_alert
from steps.args import StepParser, local_path
from steps.console import log, mask, shown
from workflow.audit import anomalies as found
from workflow.audit import report as render
from workflow.audit import sources
from workflow.audit.sources import Window, collect
from workflow.summary import write_summary

DURATION = re.compile(r"(?P<count>[1-9][0-9]{0,3})(?P<unit>[dh])")
MAX_PERIOD = timedelta(days=90)  # CloudTrail's event history and Cloudflare's audit log keep no more
MAX_ALERTS = 25


def period(text: str) -> timedelta | datetime:
    if match := DURATION.fullmatch(text):
        count = int(match["count"])
        return timedelta(days=count) if match["unit"] == "d" else timedelta(hours=count)
    return timestamp(text)


def timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a duration like 7d or 36h, or a timestamp like 2026-11-23T00:00:00Z, not {shown(text)}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def window_of(since: timedelta | datetime, until: datetime | None, now: datetime) -> Window:
    # Whole seconds (the sources compare timestamps at that precision), rounded up: an event in
    # the second the report starts is in it.
    end = until or (now.replace(microsecond=0) + timedelta(seconds=1 if now.microsecond else 0))
    start = end - since if isinstance(since, timedelta) else since
    if start >= end:
        raise ValueError("--since must be before --until")
    if end - start > MAX_PERIOD:
        raise ValueError(f"the period may be at most {MAX_PERIOD.days} days (the sources keep no more)")
    return Window(start.astimezone(UTC), end.astimezone(UTC))


def listed(env: Mapping[str, str], name: str) -> list[str]:
    return [part.strip() for part in env.get(name, "").split(",") if part.strip()]


def gather(window: Window, env: Mapping[str, str], stacks_file: str | None, drift_file: str | None) -> dict:
    collected = {
        "deploys": collect("deploys", lambda: sources.deploys(window, env)),
        "ddl": collect("ddl", lambda: sources.ddl(window, env)),
        "stacks": collect("stacks", lambda: sources.stacks(stacks_file)),
    }
    run_ids = [str(r["run_id"]) for r in collected["deploys"].get("data") or [] if r.get("stack") == PROD_STACK]
    prs = [n for s in collected["stacks"].get("data") or [] if (n := found.pr_of(s["name"])) is not None]
    collected["github"] = collect("github", lambda: sources.github(window, env, record_run_ids=run_ids, prs=prs))
    collected["cloudtrail"] = collect("cloudtrail", lambda: sources.cloudtrail(window, env))
    collected["cloudflare"] = collect("cloudflare", lambda: sources.cloudflare(window, env))
    collected["drift"] = collect("drift", lambda: sources.drift(drift_file))
    return collected


def alert(anomalies: list[dict]) -> int:
    """One alert per anomaly (at most MAX_ALERTS, then one that says how many more); how many failed."""
    failed = 0
    for item in anomalies[:MAX_ALERTS]:
        body = item["summary"] + (f"\n{item['detail']}" if item["detail"] else "")
        failed += not send_alert(item["severity"], f"audit: {item['kind']}", body)
    if len(anomalies) > MAX_ALERTS:
        failed += not send_alert("critical", "audit: more anomalies", f"{len(anomalies) - MAX_ALERTS} more: see the audit report")
    return failed


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None, now: datetime | None = None) -> int:
    env = sources.environment() if env is None else env
    parser = StepParser(prog="python -m workflow.audit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("report", help="collect, find anomalies, write the report")
    cmd.add_argument("--since", required=True, type=period, help="7d, 36h, or a UTC timestamp")
    cmd.add_argument("--until", type=timestamp, help="a UTC timestamp (default now)")
    cmd.add_argument("--json", type=local_path, help="where the JSON report goes")
    cmd.add_argument("--markdown", type=local_path, help="where the Markdown goes (default: the job summary)")
    cmd.add_argument("--stacks", help="`pulumi stack ls --json` output")
    cmd.add_argument("--drift", help="`python -m workflow.drift` output")
    cmd.add_argument("--alert", action="store_true", help="send each anomaly through the alert webhook")
    args = parser.parse_args(argv)
    try:
        window = window_of(args.since, args.until, now or sources.now())
    except ValueError as exc:
        parser.error(str(exc))

    collected = gather(window, env, args.stacks, args.drift)
    anomalies = found.find(
        collected,
        deploy_roles=listed(env, "AUDIT_DEPLOY_ROLE_ARNS"),
        pipeline_tokens=listed(env, "AUDIT_PIPELINE_TOKEN_IDS"),
        now=window.until,
    )
    report = render.build({"since": window.iso("since"), "until": window.iso("until")}, collected, anomalies)
    text = render.markdown(report)
    if args.json:
        args.json.write_text(mask(json.dumps(report, indent=2, default=str)) + "\n", encoding="utf-8")
    write_summary(text, args.markdown, env)
    missing = sorted(name for name, s in collected.items() if s["status"] != "ok")
    for name in missing:
        log(f"audit: source {name} missing: {collected[name]['why']}")
    undelivered = alert(anomalies) if args.alert else 0
    print(json.dumps({"anomalies": len(anomalies), "missing": missing, "undelivered_alerts": undelivered}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
