"""workflow.plan_report on preview documents in the shape `pulumi preview --json` prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workflow import plan_report

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "preview"


def load(name: str, stack: str = "prod") -> plan_report.Plan:
    return plan_report.load(FIXTURES / name, stack)


def test_lambda_replace_is_listed_with_type_and_replace_reason() -> None:
    plan = load("lambda_replace.json")

    assert plan.deletes == ()
    (change,) = plan.replaces
    assert change.name == "api-function"
    assert change.type == "aws:lambda/function:Function"
    # replaceReasons win over diffReasons: `code` alone would only update the function.
    assert change.reasons == ("name (update-replace)",)
    assert not change.stateful
    assert change.phase == "backend"


def test_update_and_same_steps_are_not_destructive() -> None:
    plan = load("lambda_replace.json")

    assert [c.name for c in plan.changes] == ["api-function"]
    assert plan.summary == {"replace": 1, "same": 27, "update": 1}


def test_dns_record_delete_is_listed() -> None:
    plan = load("dns_delete.json")

    (change,) = plan.deletes
    assert change.name == "site-www"
    assert change.type == "cloudflare:index/dnsRecord:DnsRecord"
    assert change.reasons == ("removed from the program",)
    assert not change.stateful
    assert change.phase == "infrastructure"


def test_no_changes() -> None:
    plan = load("no_changes.json", "preview-pr-12")

    assert plan.changes == ()
    lines = plan_report.log_lines(plan, annotations=True)
    assert lines[0] == "Plan for preview-pr-12: 0 to create, 0 to update, 0 to replace, 0 to delete; 19 unchanged"
    assert "nothing destructive" in lines[1]
    assert not any(line.startswith("::warning") for line in lines)
    md = plan_report.markdown(plan)
    assert "No deletes or replaces." in md
    assert "classDef destructive" not in md


def test_stateful_marks_schema_command_protected_resources_and_folds_replacement_steps() -> None:
    plan = load("stateful_deletes.json")

    by_name = {c.name: c for c in plan.changes}
    assert set(by_name) == {"db-schema", "state-bucket", "audit-logs"}
    assert by_name["db-schema"].stateful and by_name["db-schema"].phase == "database"
    # delete-replaced and replace of the bucket are one entry, with the replace step's reason.
    assert by_name["state-bucket"].action == "replace"
    assert by_name["state-bucket"].reasons == ("bucket (update-replace)",)
    assert by_name["state-bucket"].protected and by_name["state-bucket"].retained
    # A log group is not a stateful type, but `protect: true` in the old state marks it.
    assert by_name["audit-logs"].stateful and by_name["audit-logs"].protected


@pytest.mark.parametrize(
    ("type_", "name", "stateful"),
    [
        ("aws:s3/bucket:Bucket", "x", True),
        ("aws:dynamodb/table:Table", "x", True),
        ("aws:kms/key:Key", "x", True),
        ("aws:cloudtrail/trail:Trail", "x", True),
        ("command:local:Command", "db-schema", True),
        ("command:local:Command", "db-migrate", True),
        ("command:local:Command", "site-build", False),
        ("command:local:Command", "schema-reader", False),
        ("aws:s3/bucketVersioning:BucketVersioning", "x", False),
        ("aws:lambda/function:Function", "db-schema", False),
    ],
)
def test_stateful_types(type_: str, name: str, stateful: bool) -> None:
    assert plan_report.is_stateful_type(type_, name) is stateful


def test_urn_type_is_the_last_segment_of_a_parented_type() -> None:
    urn = "urn:pulumi:prod::webstack::webstack:index:Database$command:local:Command::db-schema"
    assert plan_report.parse_urn(urn) == ("command:local:Command", "db-schema")
    with pytest.raises(plan_report.PlanError):
        plan_report.parse_urn("arn:aws:s3:::bucket")


def test_type_falls_back_to_the_urn_when_states_are_missing() -> None:
    doc = {
        "steps": [
            {
                "op": "delete",
                "urn": "urn:pulumi:prod::webstack::webstack:index:StateBackend$aws:dynamodb/table:Table::locks",
            }
        ]
    }
    (change,) = plan_report.analyse(doc).changes
    assert change.type == "aws:dynamodb/table:Table" and change.stateful


def test_replace_reason_from_detailed_diff_when_replace_reasons_are_absent() -> None:
    doc = {
        "steps": [
            {
                "op": "replace",
                "urn": "urn:pulumi:prod::webstack::aws:kms/key:Key::state-key",
                "diffReasons": ["description", "customerMasterKeySpec"],
                "detailedDiff": {
                    "description": {"kind": "update", "inputDiff": True},
                    "customerMasterKeySpec": {"kind": "update-replace", "inputDiff": True},
                },
            }
        ]
    }
    (change,) = plan_report.analyse(doc).changes
    assert change.reasons == ("customerMasterKeySpec (update-replace)",)


def test_markdown_has_table_and_phase_diagram_in_order() -> None:
    md = plan_report.markdown(load("lambda_replace.json"))

    assert "| replace | `api-function` | `aws:lambda/function:Function` | name (update-replace) | no |" in md
    assert "```mermaid" in md
    order = [md.index(f"{p}[{p.capitalize()}]") for p in plan_report.PHASES]
    assert order == sorted(order)
    assert "class backend destructive" in md


def test_cli_writes_log_and_step_summary_and_continues(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_ACTIONS": "true"}

    result = subprocess.run(
        [sys.executable, "-m", "workflow.plan_report", str(FIXTURES / "stateful_deletes.json"), "--stack", "prod"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "REPLACE  state-bucket (aws:s3/bucket:Bucket)" in result.stdout
    assert "::warning title=Stateful delete::delete of db-schema (command:local:Command)" in result.stdout
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("earlier step\n")  # appended, not overwritten
    assert "### Plan report: `prod`" in text and "```mermaid" in text


def test_cli_rejects_a_file_that_is_not_a_preview(tmp_path: Path) -> None:
    bad = tmp_path / "plan.json"
    bad.write_text("error: no stack named 'prod' found\n", encoding="utf-8")

    assert plan_report.main([str(bad)], environ={}) == 2
    bad.write_text(json.dumps({"steps": {"op": "delete"}}), encoding="utf-8")
    assert plan_report.main([str(bad)], environ={}) == 2
