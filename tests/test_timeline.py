"""workflow.timeline: the run's steps from the engine's event log, as a mermaid gantt chart grouped by
phase, phase durations, and each step's log in a ::group:: section. The real engine's own event
stream is read in tests/test_real_engine.py (12); here the pure parts, with the gantt chart held
to mermaid's gantt grammar by `gantt_problems` (mermaid is not installed here, and its parser
expects a browser DOM)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core.phases import PHASE_TYPE, PHASES
from steps.retry import TransientError, retry_call
from tests.support.gantt import TASK, gantt_problems
from workflow.timeline import RETRY, gantt, main, phase_seconds, timeline

ROOT = "urn:pulumi:prod::webstack::"
T0 = 1_764_460_800


def phase_urn(phase: str) -> str:
    return f"{ROOT}{PHASE_TYPE}::{phase}"


def pre(seq: int, urn: str, type_: str, op: str, parent: str | None, *, custom: bool = True) -> dict:
    state = {"urn": urn, "type": type_, "custom": custom, **({"parent": parent} if parent else {})}
    return {"sequence": seq, "timestamp": T0 + seq, "resourcePreEvent": {"metadata": {"op": op, "urn": urn, "type": type_, "new": state}}}


def done(seq: int, urn: str, *, failed: bool = False) -> dict:
    key = "resOpFailedEvent" if failed else "resOutputsEvent"
    return {"sequence": seq, "timestamp": T0 + seq, key: {"metadata": {"urn": urn}}}


def diag(seq: int, urn: str, message: str) -> dict:
    return {"sequence": seq, "timestamp": T0 + seq, "diagnosticEvent": {"urn": urn, "message": message + "\n", "severity": "info"}}


CMD = "command:local:Command"
MIGRATE = f"{ROOT}{PHASE_TYPE}${CMD}::db-migrate"
SITE = f"{ROOT}{PHASE_TYPE}${CMD}::site-deploy"
ROLE = f"{ROOT}{PHASE_TYPE}$aws:iam/role:Role::api-role"


def a_run(retry_line: str) -> list[dict]:
    return [
        pre(0, phase_urn("infrastructure"), PHASE_TYPE, "same", None, custom=False),
        pre(1, phase_urn("database"), PHASE_TYPE, "same", None, custom=False),
        pre(2, phase_urn("frontend"), PHASE_TYPE, "same", None, custom=False),
        pre(3, ROLE, "aws:iam/role:Role", "update", phase_urn("infrastructure")),
        done(5, ROLE),
        pre(6, MIGRATE, CMD, "create", phase_urn("database")),
        diag(7, MIGRATE, "step migrate: start (critical)"),
        diag(8, MIGRATE, retry_line),
        diag(20, MIGRATE, "step migrate: ok"),
        done(26, MIGRATE),
        pre(27, SITE, CMD, "update", phase_urn("frontend")),
        diag(28, SITE, "FAILED pages: wrangler could not reach the API — retry later"),
        done(40, SITE, failed=True),
        pre(41, f"{ROOT}aws:s3/bucket:Bucket::unchanged", "aws:s3/bucket:Bucket", "same", None),
        # The engine's own: the stack and a default provider are no steps of the deploy.
        pre(42, f"{ROOT}pulumi:pulumi:Stack::webstack-prod", "pulumi:pulumi:Stack", "create", None),
        pre(43, f"{ROOT}pulumi:providers:aws::default", "pulumi:providers:aws", "create", None),
    ]


def real_retry_line(capsys) -> str:
    """What steps.retry itself logs before a retry."""
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise TransientError("HTTP 503")
        return "ok"

    assert retry_call(flaky, what="drizzle-kit push", attempts=3, initial_wait=0.01, max_wait=0.01) == "ok"
    [line] = [line for line in capsys.readouterr().err.splitlines() if "attempt" in line]
    assert RETRY.search(line), line
    return line


def test_steps_have_phase_times_outcome_and_retries(capsys):
    steps = timeline(a_run(real_retry_line(capsys)))
    got = [(s.name, s.phase, s.op, s.start - T0, s.end - T0, s.outcome, s.retries) for s in steps]
    assert got == [
        ("api-role", "infrastructure", "update", 3, 5, "ok", 0),
        ("db-migrate", "database", "create", 6, 26, "ok", 1),
        ("site-deploy", "frontend", "update", 27, 40, "failed", 0),
    ]
    assert phase_seconds(steps) == {"infrastructure": 2, "database": 20, "frontend": 13}


def test_the_gantt_chart_has_one_section_a_phase_in_order_and_one_bar_a_step(capsys):
    steps = timeline(a_run(real_retry_line(capsys)))
    chart = gantt("prod", steps)
    assert gantt_problems(chart) == []
    sections = re.findall(r"^    section (\S+)$", chart, re.M)
    assert sections == [p for p in PHASES if p in {"infrastructure", "database", "frontend"}]
    bars = [TASK.fullmatch(line) for line in chart.splitlines() if TASK.fullmatch(line)]
    assert [(b["name"], b["tags"]) for b in bars] == [("api-role (update)", "done, "), ("db-migrate (create)", "done, "), ("site-deploy (update)", "crit, ")]


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ("    db-migrate: x (create) :done, s2, 1, 2", "no gantt statement"),
        ("    section database\n    a :done, s1, 5, 3", "ends before it starts"),
        ("    a :done, s1, 1, 2", "before any section"),
    ],
)
def test_the_grammar_check_catches_a_broken_chart(broken: str, expected: str):
    chart = "gantt\n    dateFormat X\n" + broken
    assert any(expected in p for p in gantt_problems(chart)), gantt_problems(chart)


def test_a_name_mermaid_would_misread_is_made_safe():
    steps = timeline([pre(1, f"{ROOT}{CMD}::a:b#c;d", CMD, "create", None), done(2, f"{ROOT}{CMD}::a:b#c;d")])
    assert gantt_problems(gantt("prod", steps)) == []
    assert steps[0].phase == "other"


def test_markdown_logs_and_json(tmp_path: Path, capsys):
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(e) for e in a_run(real_retry_line(capsys))) + "\n{\"cut short")
    summary, out = tmp_path / "summary.md", tmp_path / "timeline.json"
    assert main(["--events", str(events), "--stack", "prod", "--logs", "--json", str(out), "--summary", str(summary)], env={}) == 0
    printed = capsys.readouterr().out
    assert printed.count("::group::") == printed.count("::endgroup::") == 3
    assert "::group::database / db-migrate (create, ok, 20 s, 1 retries)\nstep migrate: start (critical)\n" in printed
    md = summary.read_text()
    assert "```mermaid\ngantt\n" in md and "| database | 20 | 1 |" in md
    assert "| site-deploy | frontend | failed | 0 | 13 |" in md and "| db-migrate | database | ok | 1 | 20 |" in md
    record = json.loads(out.read_text())
    assert record["phases"] == {"infrastructure": 2, "database": 20, "frontend": 13}
    assert [s["outcome"] for s in record["steps"]] == ["ok", "ok", "failed"]


def test_no_event_log_is_an_empty_timeline(tmp_path: Path, capsys):
    assert main(["--events", str(tmp_path / "absent.jsonl"), "--stack", "preview-pr-7"], env={}) == 0
    assert "No step ran" in capsys.readouterr().out


def test_the_pr_comment_shows_each_phases_duration(tmp_path: Path, capsys):
    from workflow import pr_comment

    events, record = tmp_path / "events.jsonl", tmp_path / "timeline.json"
    events.write_text("\n".join(json.dumps(e) for e in a_run(real_retry_line(capsys))))
    assert main(["--events", str(events), "--stack", "preview-pr-7", "--json", str(record), "--summary", str(tmp_path / "s.md")], env={}) == 0
    common = ["--stack", "preview-pr-7", "--plan", str(tmp_path / "no-plan.json"), "--outputs", str(tmp_path / "no.json"), "--outcome", "failure"]
    assert pr_comment.main([*common, "--timeline", str(record)], environ={}) == 0
    assert "**Phases:** infrastructure 2 s · database 20 s · frontend 13 s." in capsys.readouterr().out
    # No timeline (up never started): no phase line, the comment still renders.
    assert pr_comment.main([*common, "--timeline", str(tmp_path / "absent.json")], environ={}) == 0
    assert "**Phases:**" not in capsys.readouterr().out
