"""workflow.plan_report on preview documents in the shape `pulumi preview --json` prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.preview_documents import preview_document
from workflow import plan_report

ROOT = Path(__file__).resolve().parents[1]


def plan_of(recorded, stack: str, ops: dict[str, str], **reasons: list[str]) -> plan_report.Plan:
    return plan_report.analyse(preview_document(recorded(stack), ops, reasons), stack)


def test_lambda_replace_is_listed_with_type_reason_and_phase(recorded) -> None:
    plan = plan_of(recorded, "prod", {"api-function": "replace", "api-alias": "update"})

    assert plan.deletes == ()
    (change,) = plan.replaces
    assert change.name == "api-function"
    assert change.type == "aws:lambda/function:Function"
    assert change.reasons == ("name (update-replace)",)
    assert not change.stateful
    # Read from the preview's parent links: LambdaApi -> Phase `backend`.
    assert change.phase == "backend"
    assert plan.summary["replace"] == 1 and plan.summary["update"] == 1


def test_dns_record_delete_is_listed(recorded) -> None:
    plan = plan_of(recorded, "preview-pr-7", {"site-domain-record": "delete"})

    (change,) = plan.deletes
    assert change.type == "cloudflare:index/dnsRecord:DnsRecord"
    assert change.reasons == ("removed from the program",)
    assert not change.stateful
    assert change.phase == "infrastructure"


def test_no_changes(recorded) -> None:
    plan = plan_of(recorded, "preview-pr-12", {})

    assert plan.changes == ()
    lines = plan_report.log_lines(plan, annotations=True)
    unchanged = len(recorded("preview-pr-12").resources)
    assert lines[0] == f"Plan for preview-pr-12: 0 to create, 0 to update, 0 to replace, 0 to delete; {unchanged} unchanged"
    assert "nothing destructive" in lines[1]
    assert not any(line.startswith("::warning") for line in lines)
    md = plan_report.markdown(plan)
    assert "No deletes or replaces." in md
    assert "classDef destructive" not in md


def test_stateful_changes_are_marked_by_type_structure_and_protection(recorded) -> None:
    plan = plan_of(
        recorded,
        "prod",
        {"database-schema": "delete", "state-storage-bucket": "replace", "state-key-alias": "delete", "site-deploy": "delete"},
        **{"state-storage-bucket": ["bucket"]},
    )

    by_name = {c.name: c for c in plan.changes}
    # The schema Command is stateful by structure (under the Database component), not by name.
    assert by_name["database-schema"].stateful and by_name["database-schema"].phase == "database"
    assert by_name["state-storage-bucket"].action == "replace"
    assert by_name["state-storage-bucket"].reasons == ("bucket (update-replace)",)
    assert by_name["state-storage-bucket"].protected and by_name["state-storage-bucket"].retained
    assert by_name["state-key-alias"].stateful and by_name["state-key-alias"].phase == "infrastructure"
    assert not by_name["site-deploy"].stateful and by_name["site-deploy"].phase == "frontend"


def test_every_protected_resource_of_prod_is_stateful_for_the_report(recorded) -> None:
    # One list: what the program protects, the report marks stateful from type and structure alone.
    prod = recorded("prod")
    protected = {r.name for r in prod.resources.values() if r.protect}
    assert protected
    for resource in prod.resources.values():
        parent_types, type_, _ = plan_report.parse_urn(resource.urn)
        if resource.name in protected:
            assert plan_report.is_stateful(type_, parent_types), resource.name


def test_every_resource_of_every_stack_has_a_phase(recorded) -> None:
    for stack in ("prod", "preview-pr-7"):
        recording = recorded(stack)
        plan = plan_of(recorded, stack, {r.name: "delete" for r in recording.resources.values() if r.custom and not r.type.startswith("pulumi:")})
        for change in plan.changes:
            assert change.phase == recording.phase_of(change.urn), change.name
            assert change.phase in plan_report.PHASES, change.name


@pytest.mark.parametrize(
    ("urn", "stateful"),
    [
        ("urn:pulumi:prod::webstack::webstack:index:SecureBucket$aws:s3/bucket:Bucket::x", True),
        ("urn:pulumi:prod::webstack::aws:s3/bucketV2:BucketV2::x", True),
        ("urn:pulumi:prod::webstack::webstack:index:StateBackend$aws:kms/alias:Alias::x", True),
        ("urn:pulumi:prod::webstack::webstack:index:Database$command:local:Command::anything", True),
        # Named like a schema step, but not under the Database component: not stateful.
        ("urn:pulumi:prod::webstack::webstack:index:PagesSite$command:local:Command::db-schema", False),
        ("urn:pulumi:prod::webstack::webstack:index:SecureBucket$aws:s3/bucketVersioning:BucketVersioning::x", False),
    ],
)
def test_stateful_by_type_or_structure(urn: str, stateful: bool) -> None:
    parent_types, type_, _ = plan_report.parse_urn(urn)
    assert plan_report.is_stateful(type_, parent_types) is stateful


def test_urn_gives_parent_types_type_and_name() -> None:
    urn = "urn:pulumi:prod::webstack::webstack:index:Database$command:local:Command::database-schema"
    assert plan_report.parse_urn(urn) == (("webstack:index:Database",), "command:local:Command", "database-schema")
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
    assert change.type == "aws:dynamodb/table:Table" and change.stateful and change.phase is None


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


def test_markdown_has_table_and_phase_diagram_in_order(recorded) -> None:
    md = plan_report.markdown(plan_of(recorded, "prod", {"api-function": "replace"}))

    assert "| replace | `api-function` | `aws:lambda/function:Function` | name (update-replace) | no |" in md
    assert "```mermaid" in md
    order = [md.index(f"{p}[{p.capitalize()}]") for p in plan_report.PHASES]
    assert order == sorted(order)
    assert "class backend destructive" in md


def test_cli_writes_log_and_step_summary_and_continues(recorded, tmp_path: Path) -> None:
    document = preview_document(
        recorded("prod"), {"database-schema": "delete", "state-storage-bucket": "replace"}, {"state-storage-bucket": ["bucket"]}
    )
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(document), encoding="utf-8")
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_ACTIONS": "true"}

    result = subprocess.run(
        [sys.executable, "-m", "workflow.plan_report", str(plan_file), "--stack", "prod"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "REPLACE  state-storage-bucket (aws:s3/bucket:Bucket)" in result.stdout
    assert "::warning title=Stateful delete::delete of database-schema (command:local:Command)" in result.stdout
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("earlier step\n")  # appended, not overwritten
    assert "### Plan report: `prod`" in text and "```mermaid" in text


def test_cli_rejects_a_file_that_is_not_a_preview(tmp_path: Path) -> None:
    bad = tmp_path / "plan.json"
    bad.write_text("error: no stack named 'prod' found\n", encoding="utf-8")

    assert plan_report.main([str(bad)], environ={}) == 2
    bad.write_text(json.dumps({"steps": {"op": "delete"}}), encoding="utf-8")
    assert plan_report.main([str(bad)], environ={}) == 2


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"steps": ' + "[" * 100_000 + "]" * 100_000 + "}", "nests lists or objects deeper than 100 levels"),
        ('{"steps": [], "changeSummary": {"delete": "many"}}', "`changeSummary` holds a count that is not a whole number"),
        (b'{"steps": [\xff]}', "is not UTF-8"),
    ],
    ids=["deeply-nested", "count-not-a-number", "not-utf8"],
)
def test_a_plan_that_cannot_be_read_is_one_line(tmp_path: Path, content, expected) -> None:
    bad = tmp_path / "plan.json"
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    proc = subprocess.run([sys.executable, "-m", "workflow.plan_report", str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1 and expected in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("module", ["workflow.plan_report", "workflow.pr_comment", "tools.plan"])
def test_a_stack_name_with_a_newline_is_one_line(tmp_path: Path, module: str) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text("{}")
    argv = {"workflow.plan_report": [str(plan)], "workflow.pr_comment": ["--plan", str(plan), "--outputs", str(plan)], "tools.plan": []}
    proc = subprocess.run([sys.executable, "-m", module, "--stack", "prod\n::error::planted", *argv[module]],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    what = "letters, digits, '-', '_', '.'" if module == "tools.plan" else "prod, preview or preview-pr-<N>"
    assert proc.stderr.splitlines() == [
        f"python -m {module}: error: argument --stack: is not a stack name ({what}): 'prod\\n::error::planted'"
    ]
    assert proc.stdout == ""
