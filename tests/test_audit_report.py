"""workflow.audit: the report from every source, and each anomaly shown to fire on a planted event
and to stay silent on the pipeline's own.

The sources are real or speak the real wire protocol: PostgreSQL (deploy records, and the DDL log
of the real event trigger), a GitHub REST stand-in (sandbox/github_api.py), a CloudTrail
LookupEvents stand-in (sandbox/cloudtrail_api.py; moto does not implement LookupEvents) read by
boto3's own client, and the Cloudflare API stand-in, whose audit log records the writes made
through its HTTP API with the token that made them. The report runs as the workflow runs it (a
process) and alerts through a webhook receiver.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from sandbox.cloudflare_api import ACCOUNT, ZONE, CloudflareStub
from sandbox.cloudtrail_api import CloudTrailStub
from sandbox.github_api import GitHubStub
from tests.support.http_stub import StubServer, webhook  # noqa: F401 - fixture
from tests.support.postgres import Database, pg_database, postgres  # noqa: F401 - fixtures
from tests.support.steps_env import REPO, result_of, run_step, steps_env  # noqa: F401 - fixture
from workflow.audit import anomalies
from workflow.audit.__main__ import main
from workflow.deploy_record import append

pytestmark = pytest.mark.usefixtures("steps_env")

PROD_ROLE = "arn:aws:iam::123456789012:role/webstack-deploy-prod"
PREVIEW_ROLE = "arn:aws:iam::123456789012:role/webstack-deploy-preview"
PIPELINE_TOKEN = "cf-pipeline-token-0123456789"
SHA = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
KINDS = (
    "aws-change",
    "cloudflare-change",
    "ddl-outside-migration",
    "ddl-mark-outside-deploy",
    "deploy-without-record",
    "record-without-run",
    "preview-left-behind",
    "drift",
)


@dataclass
class World:
    db: Database
    github: GitHubStub
    cloudtrail: CloudTrailStub
    cloudflare: CloudflareStub
    hook: StubServer
    tmp: Path
    drift: dict

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.db.url,
            "GH_TOKEN": self.github.token,
            "GITHUB_REPOSITORY": self.github.repo,
            "GITHUB_API_URL": self.github.url,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",  # noqa: S105 - the stand-in checks no signature
            "AWS_ENDPOINT_URL_CLOUDTRAIL": self.cloudtrail.url,
            "CLOUDFLARE_API_TOKEN": PIPELINE_TOKEN,
            "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
            "CLOUDFLARE_API_BASE_URL": self.cloudflare.api_base,
            "AUDIT_DEPLOY_ROLE_ARNS": f"{PROD_ROLE},{PREVIEW_ROLE}",
            "AUDIT_PIPELINE_TOKEN_IDS": "stub-token-id",
            "ALERT_WEBHOOK_URL": self.hook.url + "/hook",
        }

    def record(self, run_id: str) -> None:
        env = {"GITHUB_ACTOR": "octocat", "GITHUB_SHA": SHA, "GITHUB_RUN_ID": run_id,
               "GITHUB_REPOSITORY": self.github.repo, "GITHUB_REF": "refs/heads/main"}  # fmt: skip
        append(self.db.url, {**_record(env), "stable_version": "7", "function_name": "webstack-api-prod"})

    def dns(self, token: str, name: str) -> None:
        response = requests.post(
            f"{self.cloudflare.api_base}/zones/{ZONE}/dns_records",
            json={"type": "CNAME", "name": name, "content": "webstack-site.pages.dev", "ttl": 1, "proxied": True},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text

    def report(self, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict, str]:
        stacks, drift = self.tmp / "stacks.json", self.tmp / "drift.json"
        drift.write_text(json.dumps(self.drift))
        out_json, out_md = self.tmp / "audit.json", self.tmp / "audit.md"
        out_md.unlink(missing_ok=True)
        proc = subprocess.run(
            [sys.executable, "-m", "workflow.audit", "report", "--since", "1d", "--json", str(out_json),
             "--markdown", str(out_md), "--stacks", str(stacks), "--drift", str(drift), "--alert", *extra],
            cwd=REPO, env=self.env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc, json.loads(out_json.read_text()), out_md.read_text()


def _record(env: dict[str, str]) -> dict:
    from workflow.deploy_record import build_record

    return build_record("prod", "success", {"functionName": "webstack-api-prod", "stableVersion": "7"}, env)


@pytest.fixture
def world(pg_database: Database, webhook: StubServer, tmp_path: Path) -> Iterator[World]:  # noqa: F811
    """A week of the pipeline's own work, every source holding it; nothing out of line."""
    with GitHubStub() as github, CloudTrailStub() as cloudtrail, CloudflareStub(project=None, token=PIPELINE_TOKEN) as cloudflare:
        w = World(pg_database, github, cloudtrail, cloudflare, webhook, tmp_path,
                  {"stack": "prod", "checked_at": "2026-11-30T00:00:00Z", "drifted": False, "resources": []})  # fmt: skip
        began = datetime.now(UTC) - timedelta(seconds=60)
        result_of(run_step("workflow.ddl_audit", "install", url=pg_database.url))
        result_of(run_step("steps.schema", "create", "--schema", "app", url=pg_database.url))
        # A prod deploy: its run (during which the schema step ran), its record, its AWS and
        # Cloudflare changes by the pipeline's identities.
        deploy = github.add_run("deploy", sha=SHA, started=began, minutes=(datetime.now(UTC) - began).total_seconds() / 60)
        w.record(str(deploy["id"]))
        cloudtrail.record("UpdateFunctionCode20150331v2", "lambda.amazonaws.com", role_arn=PROD_ROLE,
                          resources=[("AWS::Lambda::Function", "webstack-api-prod")])  # fmt: skip
        cloudtrail.record("PutRolePolicy", "iam.amazonaws.com", role_arn=PROD_ROLE)
        cloudtrail.record("GetFunction", "lambda.amazonaws.com", user="mallory", read_only=True)
        w.dns(PIPELINE_TOKEN, "app")
        # A preview opened, failed once, cleaned up; another still open with its stack.
        github.add_run("preview", event="pull_request", branch="feature-7", pr=7)
        github.add_run("cleanup", event="pull_request", branch="feature-7", pr=7)
        github.add_pr(7, state="closed", closed=datetime.now(UTC) - timedelta(days=3))
        github.add_run("preview", event="pull_request", branch="feature-8", pr=8, conclusion="failure",
                       failed_step=("preview", "pulumi up"))  # fmt: skip
        github.add_pr(8)
        cloudtrail.record("CreateFunction20150331", "lambda.amazonaws.com", role_arn=PREVIEW_ROLE)
        (tmp_path / "stacks.json").write_text(json.dumps([{"name": "prod"}, {"name": "organization/webstack/preview-pr-8"}]))
        yield w


def plant(w: World, kind: str) -> tuple[str, ...]:
    """Plants one anomaly of `kind`; returns what the report must be run with to see it."""
    if kind == "aws-change":
        w.cloudtrail.record("PutBucketPolicy", "s3.amazonaws.com", user="mallory", resources=[("AWS::S3::Bucket", "webstack-state")])
    elif kind == "cloudflare-change":
        w.cloudflare.add_token("someones-dashboard-token-0123", "tok-someone")
        w.dns("someones-dashboard-token-0123", "www")
    elif kind == "ddl-outside-migration":
        with w.db.connect(application_name="psql") as conn:
            conn.execute("CREATE TABLE app.shadow (id int)")
    elif kind == "ddl-mark-outside-deploy":
        # A mark copied by hand after the deploy run ended and its clock slack. Rather than wait that
        # out, the clock moves: the DDL log's time of the forged statement is put past the slack,
        # and the report looks that far ahead (`--until`).
        later = anomalies.RUN_WINDOW_SLACK + timedelta(seconds=2)
        with w.db.connect(application_name="webstack-migrate:app:by-hand") as conn:
            conn.execute("CREATE TABLE app.forged (id int)")
        with w.db.connect() as conn:
            moved = conn.execute(
                "UPDATE webstack_audit.ddl_events SET occurred_at = occurred_at + %s WHERE object_identity = 'app.forged'",
                (later,),
            ).rowcount
        assert moved == 1
        return ("--until", (datetime.now(UTC) + later + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    elif kind == "deploy-without-record":
        w.github.add_run("deploy", sha="f" * 40)
    elif kind == "record-without-run":
        w.record("424242")
    elif kind == "preview-left-behind":
        w.github.add_pr(5, state="closed", closed=datetime.now(UTC) - timedelta(days=2))
        stacks = json.loads((w.tmp / "stacks.json").read_text())
        (w.tmp / "stacks.json").write_text(json.dumps([*stacks, {"name": "preview-pr-5"}]))
    elif kind == "drift":
        w.drift = {"stack": "prod", "checked_at": "2026-11-30T00:00:00Z", "drifted": True, "resources": [
            {"urn": "urn:pulumi:prod::webstack::aws:lambda/function:Function::api-function", "type": "aws:lambda/function:Function",
             "name": "api-function", "properties": ["memorySize"]}]}  # fmt: skip
    return ()


def alerts(hook: StubServer) -> list[str]:
    return [r.json["attachments"][0]["title"] for r in hook.requests if r.json]


@pytest.mark.slow
def test_the_pipelines_own_work_raises_nothing_and_the_report_says_what_happened(world: World):
    proc, report, md = world.report()
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"anomalies": 0, "missing": [], "undelivered_alerts": 0}
    assert report["anomalies"] == [] and alerts(world.hook) == []
    assert all(s["status"] == "ok" for s in report["sources"].values())
    # Every prod deploy: who, commit, outcome, versions, duration.
    [deploy] = report["prod_deploys"]
    seconds = deploy["seconds"]
    assert (deploy["who"], deploy["commit"], deploy["outcome"], deploy["stable_version"]) == ("octocat", SHA, "success", "7")
    assert 60 <= seconds < 600, seconds
    assert f"| octocat | {SHA[:12]} | success | webstack-api-prod | 7 | {seconds} |" in md
    # Previews opened, cleaned up, still there; the failed run and why.
    assert "| #7 | 1 | success | success | gone | closed |" in md
    assert "| #8 | 1 | failure | — | exists | open |" in md
    assert "Left behind (PR closed over a day ago): none." in md
    [failed] = report["failed_runs"]
    assert failed["why"] == "preview: pulumi up" and "| preview | feature-8 |" in md
    # The DDL the pipeline made is counted as the migrations'; the write events are in the JSON.
    assert report["ddl"]["outside"] == 0 and report["ddl"]["in_migrations"] >= 1
    assert "**0 anomalies**; every source answered." in md and "None found in the sources that answered." in md
    assert sorted(e["name"] for e in report["data"]["cloudtrail"]) == ["CreateFunction20150331", "PutRolePolicy", "UpdateFunctionCode20150331v2"]
    assert [e["token_id"] for e in report["data"]["cloudflare"]] == ["stub-token-id"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_each_anomaly_fires_on_a_planted_event(world: World, kind: str):
    _, report, md = world.report(*plant(world, kind))
    assert [a["kind"] for a in report["anomalies"]] == [kind], report["anomalies"]
    assert alerts(world.hook) == [f"audit: {kind}"]
    assert f"| {kind} |" in md and "**1 anomaly**" in md


def test_unreachable_sources_are_reported_missing_and_the_run_still_succeeds(tmp_path: Path, monkeypatch, capsys):
    summary = tmp_path / "summary.md"
    env = {"DATABASE_URL": "postgres://u:p@127.0.0.1:1/db", "GITHUB_STEP_SUMMARY": str(summary)}
    assert main(["report", "--since", "7d", "--json", str(tmp_path / "a.json")], env=env) == 0
    report = json.loads((tmp_path / "a.json").read_text())
    assert {name: s["status"] for name, s in report["sources"].items()} == dict.fromkeys(
        ("deploys", "ddl", "stacks", "github", "cloudtrail", "cloudflare", "drift"), "missing")
    assert report["sources"]["github"]["why"] == "GH_TOKEN and GITHUB_REPOSITORY must be set"
    md = summary.read_text()
    assert "**7 source(s) missing**" in md and "_Not known: Deploy records (webstack_audit.deploys) missing._" in md
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["anomalies"] == 0


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["report", "--since", "forever"], "must be a duration like 7d or 36h"),
        (["report", "--since", "120d"], "at most 90 days"),
        (["report", "--since", "2026-11-30T00:00:00Z", "--until", "2026-11-29T00:00:00Z"], "--since must be before --until"),
    ],
)
def test_bad_periods_are_one_line(argv: list[str], expected: str, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv, env={})
    err = capsys.readouterr().err
    assert exited.value.code == 2 and expected in err and len(err.strip().splitlines()) == 1


def test_a_deploy_role_or_service_is_not_an_anomaly_but_anyone_else_is():
    events = [
        {"time": "t", "source": "iam.amazonaws.com", "name": "PutRolePolicy", "actor": PROD_ROLE, "identity_type": "AssumedRole"},
        {"time": "t", "source": "lambda.amazonaws.com", "name": "UpdateFunctionConfiguration20150331v2",
         "actor": "arn:aws:iam::123456789012:role/admin", "identity_type": "AssumedRole"},
        {"time": "t", "source": "s3.amazonaws.com", "name": "PutBucketLifecycle", "actor": "s3.amazonaws.com", "identity_type": "AWSService"},
    ]  # fmt: skip
    found = anomalies.aws_changes(events, [PROD_ROLE])
    assert [a["summary"] for a in found] == [
        "UpdateFunctionConfiguration20150331v2 (lambda.amazonaws.com) by arn:aws:iam::123456789012:role/admin, not a deploy role"
    ]
    # With no deploy role configured, the pipeline's own change is one too (nothing is trusted by default).
    assert len(anomalies.aws_changes(events, [])) == 2


def test_a_dashboard_change_has_no_token_and_is_an_anomaly():
    entry = {"time": "t", "action": "update", "product": "dns_records", "resource": "r1", "token_id": "", "context": "dash", "actor": "a@example.com"}
    [found] = anomalies.cloudflare_changes([entry], ["stub-token-id"])
    assert "by dash session (a@example.com)" in found["summary"]
    assert anomalies.cloudflare_changes([{**entry, "action": "view"}], ["stub-token-id"]) == []


def test_no_secret_reaches_the_report_or_the_log(tmp_path: Path):
    """Every source failing with sentinel credentials: nothing of them in the output, the JSON or the Markdown."""
    marker = "S3ntinelAudit"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "AWS_", "CLOUDFLARE_"))},
        "DATABASE_URL": f"postgres://u:Pw-{marker}-x@127.0.0.1:1/db",
        "GH_TOKEN": f"ghs_{marker}0123456789",
        "GITHUB_REPOSITORY": "org/repo",
        "GITHUB_API_URL": "http://127.0.0.1:1",
        "CLOUDFLARE_API_TOKEN": f"cf-{marker}-token",
        "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
        "CLOUDFLARE_API_BASE_URL": "http://127.0.0.1:1/client/v4",
        "ALERT_WEBHOOK_URL": f"http://127.0.0.1:1/hooks/{marker}",
        "STEPS_RETRY_SCALE": "0.01",
    }
    out_json, out_md = tmp_path / "a.json", tmp_path / "a.md"
    proc = subprocess.run(
        [sys.executable, "-m", "workflow.audit", "report", "--since", "1d", "--json", str(out_json), "--markdown", str(out_md), "--alert"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(out_json.read_text())["sources"]["github"]["status"] == "missing"
    for where, text in (("stdout", proc.stdout), ("stderr", proc.stderr), ("json", out_json.read_text()), ("markdown", out_md.read_text())):
        assert marker not in text, where
