"""workflow.deploy_record: one row per `pulumi up` in webstack_audit.deploys, against real PostgreSQL.

The step runs as the workflows run it: a real process reading `pulumi stack output --json` on stdin,
GitHub's environment variables and DATABASE_URL. Non-critical: an unreachable database is a skip
with a warning, never a failed deploy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workflow.deploy_record import COLUMNS, build_record
from tests.support.http_stub import webhook  # noqa: F401 - fixture
from tests.support.postgres import Database, pg_database, postgres  # noqa: F401 - fixtures
from tests.support.steps_env import steps_env  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("steps_env")

REPO = Path(__file__).resolve().parents[1]
CLOSED_PORT_URL = "postgres://u:not-a-real-password@127.0.0.1:1/x"
PROD_OUTPUTS = {
    "apiUrl": "https://abc.lambda-url.us-east-1.on.aws/",
    "siteUrl": "https://app.example.com/",
    "functionName": "webstack-api-prod",
    "stableVersion": "42",
    "pagesBranch": "main",
    "secretsProvider": "[secret]",
}
GITHUB = {
    "GITHUB_ACTOR": "octocat",
    "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
    "GITHUB_REF": "refs/heads/main",
    "GITHUB_REPOSITORY": "org/repo",
    "GITHUB_RUN_ID": "9001",
    "GITHUB_RUN_ATTEMPT": "1",
    "GITHUB_SERVER_URL": "https://github.com",
}


def run_record(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workflow.deploy_record", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def rows(database: Database) -> list[dict]:
    with database.connect() as conn:
        cursor = conn.execute("SELECT * FROM webstack_audit.deploys ORDER BY id")
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_the_record_takes_who_what_and_where_from_the_run():
    record = build_record("prod", "success", PROD_OUTPUTS, GITHUB)
    assert set(record) == set(COLUMNS)
    assert (record["actor"], record["commit_sha"], record["stack"]) == ("octocat", GITHUB["GITHUB_SHA"], "prod")
    assert record["run_url"] == "https://github.com/org/repo/actions/runs/9001"
    assert (record["api_url"], record["site_url"], record["stable_version"]) == (
        PROD_OUTPUTS["apiUrl"],
        PROD_OUTPUTS["siteUrl"],
        "42",
    )
    assert build_record("preview-pr-7", "failure", {}, GITHUB)["stable_version"] is None


def test_outside_github_actions_it_refuses_without_connecting(webhook):
    proc = run_record("--stack", "prod", stdin=json.dumps(PROD_OUTPUTS), env={"DATABASE_URL": CLOSED_PORT_URL})
    assert proc.returncode == 0  # non-critical
    assert "SKIPPED deploy-record: GITHUB_ACTOR, GITHUB_SHA, GITHUB_RUN_ID not set" in proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["skipped"] is True


@pytest.mark.slow
def test_each_up_appends_one_row_and_a_retried_attempt_does_not_double_count(pg_database):
    env = {**GITHUB, "DATABASE_URL": pg_database.url}
    first = run_record("--stack", "prod", "--outcome", "success", stdin=json.dumps(PROD_OUTPUTS), env=env)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout.strip().splitlines()[-1])
    assert result["inserted"] is True and result["table"] == "webstack_audit.deploys"

    again = run_record("--stack", "prod", stdin=json.dumps(PROD_OUTPUTS), env=env)  # same run attempt
    assert json.loads(again.stdout.strip().splitlines()[-1])["inserted"] is False

    pr = {**env, "GITHUB_RUN_ID": "9002", "GITHUB_REF": "refs/pull/7/merge"}
    head = "f" * 40  # a PR deploys its head commit, not GitHub's merge commit
    assert run_record("--stack", "preview-pr-7", "--outcome", "failure", "--sha", head, stdin="", env=pr).returncode == 0

    [prod, preview] = rows(pg_database)
    assert prod["stack"] == "prod" and prod["outcome"] == "success" and prod["actor"] == "octocat"
    assert prod["commit_sha"] == GITHUB["GITHUB_SHA"] and prod["stable_version"] == "42"
    assert prod["api_url"] == PROD_OUTPUTS["apiUrl"] and prod["site_url"] == PROD_OUTPUTS["siteUrl"]
    assert prod["outputs"] == PROD_OUTPUTS and prod["recorded_at"] is not None
    assert preview["stack"] == "preview-pr-7" and preview["outcome"] == "failure" and preview["outputs"] == {}
    assert preview["commit_sha"] == head


@pytest.mark.slow
def test_outputs_from_a_file_and_a_missing_file(pg_database, tmp_path):
    env = {**GITHUB, "DATABASE_URL": pg_database.url}
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(PROD_OUTPUTS))
    assert run_record("--stack", "prod", "--outputs", str(outputs), env=env).returncode == 0
    retry = {**env, "GITHUB_RUN_ATTEMPT": "2"}
    assert run_record("--stack", "prod", "--outputs", str(tmp_path / "absent.json"), env=retry).returncode == 0
    assert [(r["run_attempt"], r["function_name"]) for r in rows(pg_database)] == [(1, "webstack-api-prod"), (2, None)]


@pytest.mark.slow
def test_concurrent_first_records_create_the_table_once(pg_database):
    env = {**GITHUB, "DATABASE_URL": pg_database.url}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "workflow.deploy_record", "--stack", f"preview-pr-{n}"],
            cwd=REPO,
            env={**os.environ, **env, "GITHUB_RUN_ID": str(100 + n)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(1, 6)
    ]
    for proc in procs:
        _, stderr = proc.communicate("{}", timeout=120)
        assert proc.returncode == 0 and "SKIPPED" not in stderr, stderr
    assert sorted(r["stack"] for r in rows(pg_database)) == [f"preview-pr-{n}" for n in range(1, 6)]


def test_an_unreachable_database_is_a_warning_not_a_failed_deploy(webhook, steps_env):
    env = {**GITHUB, "DATABASE_URL": CLOSED_PORT_URL, "ALERT_WEBHOOK_URL": webhook.url}
    proc = run_record("--stack", "prod", stdin=json.dumps(PROD_OUTPUTS), env=env)
    assert proc.returncode == 0
    assert "SKIPPED deploy-record" in proc.stderr
    assert "not-a-real-password" not in proc.stderr + proc.stdout
    assert webhook.requests[-1].json["text"].startswith("[WARNING] Deploy step deploy-record skipped")
    assert json.loads(steps_env.skip_log.read_text().splitlines()[-1])["step"] == "deploy-record"
