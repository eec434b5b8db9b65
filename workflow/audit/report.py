"""The audit report's two forms (workflow.audit): Markdown for the job summary, JSON for the artifact.

`build(...)` assembles one dict from the collected sources and the anomalies: every prod deploy (who,
commit, outcome, versions, duration), the previews opened, cleaned up and left behind, the failed
runs and why, the anomalies, and which sources were missing. `markdown(report)` renders it.
Everything is masked before it is written (a source's error text may quote what it was given).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from core.names import PROD_STACK
from workflow.audit.anomalies import DEPLOY_WORKFLOW, data, pr_of

SOURCE_TITLES = {
    "deploys": "Deploy records (webstack_audit.deploys)",
    "ddl": "Database DDL log (webstack_audit.ddl_events)",
    "github": "GitHub Actions runs",
    "cloudtrail": "AWS CloudTrail",
    "cloudflare": "Cloudflare audit log",
    "stacks": "Pulumi stacks",
    "drift": "Drift check of prod",
}


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def duration(run: Mapping[str, Any] | None) -> float | None:
    if not run:
        return None
    start, end = _time(run.get("started")), _time(run.get("ended"))
    return round((end - start).total_seconds()) if start and end else None


def prod_deploys(records: Sequence[Mapping[str, Any]], github: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    runs = {r["id"]: r for r in (github or {}).get("runs") or []}
    runs.update({k: v for k, v in ((github or {}).get("looked_up") or {}).items() if v})
    rows = []
    for record in records:
        if record.get("stack") != PROD_STACK:
            continue
        run = runs.get(str(record.get("run_id")))
        rows.append(
            {
                "when": record.get("recorded_at"),
                "who": record.get("actor"),
                "commit": record.get("commit_sha"),
                "outcome": record.get("outcome"),
                "function": record.get("function_name"),
                "stable_version": record.get("stable_version"),
                "seconds": duration(run),
                "run": record.get("run_url") or (run or {}).get("url"),
            }
        )
    return rows


def previews(github: Mapping[str, Any] | None, stacks: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    by_pr: dict[int, dict[str, Any]] = {}

    def entry(number: int) -> dict[str, Any]:
        return by_pr.setdefault(number, {"pr": number, "deploys": 0, "last_outcome": None, "cleaned_up": None, "stack": None})

    for run in sorted((github or {}).get("runs") or [], key=lambda r: r.get("started") or ""):
        for number in run.get("prs") or []:
            if run["workflow"] == "preview":
                entry(number)["deploys"] += 1
                entry(number)["last_outcome"] = run.get("conclusion")
            elif run["workflow"] == "cleanup":
                entry(number)["cleaned_up"] = run.get("conclusion")
    if stacks is not None:
        alive = {n for s in stacks if (n := pr_of(str(s.get("name")))) is not None}
        for number in alive:
            entry(number)
        for number, row in by_pr.items():
            row["stack"] = "exists" if number in alive else "gone"
    for number, row in by_pr.items():
        row["pr_state"] = (((github or {}).get("pulls") or {}).get(str(number)) or {}).get("state")
    return [by_pr[n] for n in sorted(by_pr)]


def failed_runs(github: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    return [
        {
            "workflow": run["workflow"],
            "branch": run.get("branch"),
            "when": run.get("started"),
            "who": run.get("actor"),
            "conclusion": run.get("conclusion"),
            "why": "; ".join(f"{f['job']}: {', '.join(f['steps']) or '(no step)'}" for f in run.get("failed") or []) or "(no failed job listed)",
            "url": run.get("url"),
        }
        for run in (github or {}).get("runs") or []
        if run.get("failed") is not None
    ]


def build(window: Mapping[str, str], sources: Mapping[str, Mapping[str, Any]], anomalies: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    github, records = data(sources, "github"), data(sources, "deploys")
    ddl = data(sources, "ddl")
    return {
        "window": dict(window),
        "sources": {name: {k: v for k, v in source.items() if k != "data"} for name, source in sources.items()},
        "anomalies": list(anomalies),
        "prod_deploys": prod_deploys(records or [], github) if records is not None else None,
        "previews": previews(github, data(sources, "stacks")) if github is not None else None,
        "failed_runs": failed_runs(github) if github is not None else None,
        "deploy_runs": len([r for r in (github or {}).get("runs") or [] if r["workflow"] == DEPLOY_WORKFLOW]),
        "ddl": None if ddl is None else {
            "triggers": ddl["triggers"],
            "in_migrations": sum(1 for e in ddl["events"] if e.get("in_migration")),
            "outside": sum(1 for e in ddl["events"] if not e.get("in_migration")),
        },
        "drift": data(sources, "drift"),
        "data": {name: source.get("data") for name, source in sources.items() if source.get("status") == "ok"},
    }


def _cell(value: Any) -> str:
    text = "—" if value is None or value == "" else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
        *("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows),
    ]


def _missing(report: Mapping[str, Any], *names: str) -> str:
    gone = [SOURCE_TITLES[n] for n in names if report["sources"].get(n, {}).get("status") != "ok"]
    return f"_Not known: {', '.join(gone)} missing._" if gone else ""


def _section(report: Mapping[str, Any], title: str, rows: Sequence[Any] | None, source: str, empty: str,
             headers: Sequence[str], cells: Callable[[Any], Sequence[Any]]) -> list[str]:
    """A section's table; says so when there is nothing, or when its source is missing."""
    lines = ["", f"### {title}", ""]
    if rows is None:
        return [*lines, _missing(report, source)]
    return [*lines, *_table(headers, [cells(row) for row in rows])] if rows else [*lines, empty]


def markdown(report: Mapping[str, Any]) -> str:
    w = report["window"]
    lines = [f"## Audit report {w['since']} to {w['until']}", ""]
    missing = {n: s for n, s in report["sources"].items() if s["status"] != "ok"}
    anomalies = report["anomalies"]
    lines.append(
        f"**{len(anomalies)} anomal{'y' if len(anomalies) == 1 else 'ies'}**"
        + (f"; **{len(missing)} source(s) missing**: {', '.join(SOURCE_TITLES.get(n, n) for n in missing)}" if missing else "; every source answered")
        + "."
    )
    lines += ["", "### Sources", ""]
    lines += _table(["source", "status", "note"], [
        [SOURCE_TITLES.get(name, name), "ok" if s["status"] == "ok" else "**missing**", s.get("why", "")]
        for name, s in report["sources"].items()
    ])  # fmt: skip

    lines += ["", "### Anomalies", ""]
    if anomalies:
        lines += _table(["severity", "kind", "when", "what", "detail"],
                        [[a["severity"], a["kind"], a["when"], a["summary"], a["detail"]] for a in anomalies])  # fmt: skip
    else:
        lines.append("None found in the sources that answered.")

    deploys = report["prod_deploys"]
    lines += _section(report, "Prod deploys", deploys, "deploys", "No prod deploy in this period.",
                      ["when", "who", "commit", "outcome", "function", "stable version", "duration (s)", "run"],
                      lambda d: [d["when"], d["who"], str(d["commit"])[:12], d["outcome"], d["function"],
                                 d["stable_version"], d["seconds"], d["run"]])  # fmt: skip
    if deploys is not None and report["sources"].get("github", {}).get("status") != "ok":
        lines += ["", _missing(report, "github") + " (durations and the run check)"]

    previews_ = report["previews"]
    lines += _section(report, "Previews", previews_, "github", "No preview activity in this period.",
                      ["PR", "preview deploys", "last outcome", "cleanup", "stack", "PR state"],
                      lambda p: [f"#{p['pr']}", p["deploys"], p["last_outcome"], p["cleaned_up"], p["stack"], p["pr_state"]])  # fmt: skip
    if previews_:
        left = [a["summary"].split()[1] for a in anomalies if a["kind"] == "preview-left-behind"]
        lines += ["", f"Left behind (PR closed over a day ago): {', '.join(left) or 'none'}."]

    lines += _section(report, "Failed runs", report["failed_runs"], "github", "No failed run in this period.",
                      ["workflow", "branch", "when", "who", "conclusion", "why (job: failed steps)", "run"],
                      lambda f: [f["workflow"], f["branch"], f["when"], f["who"], f["conclusion"], f["why"], f["url"]])  # fmt: skip

    lines += ["", "### Database DDL", ""]
    ddl = report["ddl"]
    if ddl is None:
        lines.append(_missing(report, "ddl"))
    else:
        states = ", ".join(f"{n} {s}" for n, s in sorted(ddl["triggers"].items()))
        lines.append(f"{ddl['in_migrations']} statement(s) by migrations, {ddl['outside']} outside them; triggers: {states}.")

    lines += ["", "### Drift", ""]
    drift = report["drift"]
    if drift is None:
        lines.append(_missing(report, "drift"))
    elif drift.get("drifted"):
        lines += _table(["resource", "type", "properties"],
                        [[r["name"], r["type"], ", ".join(r.get("properties") or []) or "(replaced or gone)"] for r in drift["resources"]])  # fmt: skip
    else:
        lines.append(f"prod matches the code (checked {drift.get('checked_at')}).")
    return "\n".join(lines) + "\n"
