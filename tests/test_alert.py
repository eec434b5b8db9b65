"""steps.alert against a real loopback webhook receiver, and under a simulated GitHub Actions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from steps.alert import send_alert
from steps.runtime import PermanentError, run_step
from tests.support.http_stub import Reply, StubServer, webhook  # noqa: F401 - fixture
from tests.support.steps_env import steps_env  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("steps_env")

REPO = Path(__file__).resolve().parents[1]
HOOK_PATH = "/services/T000/B000/hooksecret0123"


@pytest.fixture
def hook_url(webhook: StubServer, monkeypatch) -> str:
    url = webhook.url + HOOK_PATH
    monkeypatch.setenv("ALERT_WEBHOOK_URL", url)
    return url


def test_payload_is_slack_shaped(webhook: StubServer, hook_url, monkeypatch) -> None:
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/web")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    assert send_alert("critical", "Deploy step migrate failed", "drizzle-kit push: relation exists") is True
    [request] = webhook.requests
    assert request.method == "POST" and request.path == HOOK_PATH
    assert request.headers["content-type"] == "application/json"
    payload = request.json
    assert payload["text"] == (
        "[CRITICAL] Deploy step migrate failed\ndrizzle-kit push: relation exists\n"
        "https://github.com/acme/web/actions/runs/42"
    )
    [attachment] = payload["attachments"]
    assert attachment["title"] == "Deploy step migrate failed"
    assert attachment["text"] == "drizzle-kit push: relation exists"
    assert attachment["color"] == "#d00000"
    assert attachment["title_link"] == "https://github.com/acme/web/actions/runs/42"


def test_secrets_in_an_alert_are_masked(webhook: StubServer, hook_url, monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:pw-5ecret-41@db:5432/app")
    send_alert("warning", "x", "could not connect to postgresql://app:pw-5ecret-41@db:5432/app")
    [request] = webhook.requests
    assert b"pw-5ecret-41" not in request.body
    assert request.json["attachments"][0]["color"] == "#e8a317"


def test_webhook_is_retried_until_it_answers(webhook: StubServer, hook_url) -> None:
    webhook.script(Reply(500), Reply(503), Reply(200, body="ok"))
    assert send_alert("critical", "t", "b") is True
    assert len(webhook.requests) == 3


def test_a_dead_webhook_is_reported_not_raised(webhook: StubServer, hook_url, capsys) -> None:
    webhook.script(Reply(500))
    assert send_alert("critical", "t", "b") is False
    assert len(webhook.requests) == 3  # its own short retry, then it gives up
    err = capsys.readouterr().err
    assert "alert could not be delivered to ALERT_WEBHOOK_URL" in err
    assert "hooksecret0123" not in err


def test_a_rejected_webhook_is_not_retried(webhook: StubServer, hook_url) -> None:
    webhook.script(Reply(404, body="no_service"))
    assert send_alert("critical", "t", "b") is False
    assert len(webhook.requests) == 1


def test_failing_webhook_leaves_the_steps_own_failure_visible(webhook: StubServer, hook_url, capsys) -> None:
    webhook.script(Reply(500))

    def body() -> None:
        raise PermanentError("migration 0007 failed", hint="fix the migration and re-run")

    assert run_step("migrate", critical=True, body=body) == 1
    err = capsys.readouterr().err.rstrip().splitlines()
    assert any("alert could not be delivered" in line for line in err)
    assert err[-1] == "FAILED migrate: migration 0007 failed — fix the migration and re-run"
    assert len(webhook.requests) == 3


def test_unreachable_webhook_leaves_the_steps_own_failure_visible(monkeypatch, capsys) -> None:
    monkeypatch.setenv("ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hook")  # discard port: refused

    def body() -> None:
        raise PermanentError("boom")

    assert run_step("pages", critical=True, body=body) == 1
    assert capsys.readouterr().err.rstrip().splitlines()[-1].startswith("FAILED pages: boom")


def test_nothing_configured_is_a_quiet_success(capsys) -> None:
    assert send_alert("warning", "t", "b") is True
    assert "::" not in capsys.readouterr().err


def test_github_actions_annotation_and_summary(tmp_path, monkeypatch, capsys) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("# Deploy\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert send_alert("critical", "Step: migrate, failed", "line 1\nline 2 100%") is True
    assert send_alert("warning", "Step prune skipped", "later") is True
    out, err = capsys.readouterr()
    assert out == ""
    assert "::error title=Step%3A migrate%2C failed::line 1%0Aline 2 100%25" in err.splitlines()
    assert "::warning title=Step prune skipped::later" in err.splitlines()
    text = summary.read_text()
    assert text.startswith("# Deploy\n")  # appended, not overwritten
    assert "### CRITICAL: Step: migrate, failed" in text and "line 2 100%" in text
    assert "### WARNING: Step prune skipped" in text


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "steps.alert", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_posts_and_exits_0(steps_env, webhook: StubServer, hook_url) -> None:
    proc = _cli("--severity", "warning", "--title", "T", "--body", "B", env=steps_env.child_env())
    assert proc.returncode == 0, proc.stderr
    assert webhook.requests[0].json["text"] == "[WARNING] T\nB"


def test_cli_exits_1_when_the_alert_cannot_be_delivered(steps_env, webhook: StubServer, hook_url) -> None:
    webhook.script(Reply(403))
    proc = _cli("--severity", "critical", "--title", "T", "--body", "B", env=steps_env.child_env())
    assert proc.returncode == 1
    assert "could not be delivered" in proc.stderr


def test_cli_rejects_an_unknown_severity(steps_env) -> None:
    proc = _cli("--severity", "info", "--title", "T", "--body", "B", env=steps_env.child_env())
    assert proc.returncode == 2
