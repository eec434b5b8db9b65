"""Bad input and unmaskable secrets: every step refuses them with one clear line, before it does
anything, and echoes at most a bounded prefix of what it was given.

Each step runs as the real process its Command starts. "Nothing was done" is checked where it can
be seen: no request reached the stub server, no query the DNS stub, no tool ran.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from steps.console import mask
from steps.lambda_versions import role_of
from tests.support.dns_stub import DnsStub, dns_stub  # noqa: F401 - fixture
from tests.support.http_stub import Reply, StubServer

pytestmark = pytest.mark.usefixtures("steps_env")

REPO = Path(__file__).resolve().parents[1]
MARKER = "S3ntinel"
HUGE = "a" * 100_000


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(*argv: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m <argv>` as a Command runs it, with the test's environment plus `env`."""
    return subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_bad_argument(proc: subprocess.CompletedProcess[str], prog: str, *expected: str) -> str:
    """Exit 2 like argparse, exactly one line on stderr, nothing on stdout, no traceback."""
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    [line] = lines
    assert line.startswith(f"python -m {prog}: error: "), line
    assert "Traceback" not in line
    for text in expected:
        assert text in line, line
    return line


def failed_lines(proc: subprocess.CompletedProcess[str], step: str) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith(f"FAILED {step}:")]


# --- 5. masking gaps: a password with an unencoded '@' or '/' --------------------------------


def ambiguous_dsns(port: int) -> list[str]:
    # Every piece of each password carries the marker: finding the marker finds any piece.
    return [
        # libpq: password "…A", host "…B", database "…C@127.0.0.1…"; Python: password "…A", host "…B".
        f"postgres://postgres:{MARKER}A@{MARKER}B/{MARKER}C@127.0.0.1:{port}/postgres",
        # libpq and Python: host "postgres", port "…A" (no password at all).
        f"postgres://postgres:{MARKER}A/{MARKER}B@127.0.0.1:{port}/postgres",
        # libpq: password "…A", host "…B@127.0.0.1"; Python: password "…A@…B".
        f"postgres://postgres:{MARKER}A@{MARKER}B@127.0.0.1:{port}/postgres",
    ]


@pytest.mark.parametrize("index", range(3), ids=["at-and-slash", "slash", "two-ats"])
def test_a_password_with_an_unencoded_at_or_slash_leaks_no_piece(index: int, webhook: StubServer) -> None:
    dsn = ambiguous_dsns(_closed_port())[index]
    proc = run(
        "steps.schema", "create", "--schema", "app_preview_pr_7",
        env={"DATABASE_URL": dsn, "ALERT_WEBHOOK_URL": webhook.url + "/hook-path-0123"},
    )
    alerts = [request.body.decode() for request in webhook.requests]
    kept = proc.stdout + proc.stderr + "".join(alerts)
    assert MARKER not in kept, kept[-3000:]
    assert proc.returncode == 1
    [line] = failed_lines(proc, "schema")
    assert "DATABASE_URL has an unencoded '@', '/', '?' or '#'" in line and "percent-encode" in line
    assert "Traceback" not in proc.stderr and "attempt" not in proc.stderr  # refused before any connection
    [alert] = alerts
    assert "percent-encode" in json.loads(alert)["text"]


def test_every_plausible_split_of_a_password_is_masked(monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", ambiguous_dsns(5432)[0])
    text = f"raw {MARKER}A@{MARKER}B/{MARKER}C; libpq and Python {MARKER}A, with the @: {MARKER}A@{MARKER}B/{MARKER}C"
    assert MARKER not in mask(text)
    # libpq's own parse of a keyword DSN: its password alone is masked too.
    monkeypatch.setenv("DATABASE_URL", f"host=db.internal port=5432 user=app password={MARKER}Kw-0123")
    assert mask(f"auth with {MARKER}Kw-0123 failed") == "auth with *** failed"


# --- 5. masking gaps: short secrets, and stdout never masked by substring ---------------------


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CLOUDFLARE_API_TOKEN", "t", "CLOUDFLARE_API_TOKEN is too short to be masked safely (1 character): use a real token"),
        ("AWS_SESSION_TOKEN", "e5", "AWS_SESSION_TOKEN is too short to be masked safely (2 characters): use a real token"),
        (
            "DATABASE_URL",
            "postgres://app:pw@db.internal:5432/app",
            "the password in DATABASE_URL is too short to be masked safely (2 characters): use a password of at least 8",
        ),
    ],
)
def test_a_secret_too_short_to_mask_is_refused_before_anything_runs(
    name: str, value: str, message: str, http_stub: StubServer, webhook: StubServer
) -> None:
    http_stub.script(Reply(200, body="up"))
    proc = run(
        "steps.health", "--url", http_stub.url + "/healthz", "--timeout", "5",
        env={name: value, "ALERT_WEBHOOK_URL": webhook.url + "/hook-path-0123"},
    )
    # Once, a one-letter token made this exit 0 with every 't' of its JSON result masked.
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    [line] = failed_lines(proc, "health")
    assert line.startswith(f"FAILED health: {message} — ")  # unmangled: the message itself is not masked
    assert "Traceback" not in proc.stderr
    assert http_stub.requests == []  # nothing was done
    [alert] = webhook.requests
    assert message in alert.json["text"]


def test_the_alert_cli_sends_nothing_while_a_secret_cannot_be_masked(webhook: StubServer) -> None:
    proc = run(
        "steps.alert", "--severity", "critical", "--title", "t", "--body", "b",
        env={"CLOUDFLARE_API_TOKEN": "t", "ALERT_WEBHOOK_URL": webhook.url + "/hook-path-0123"},
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "alert not sent: CLOUDFLARE_API_TOKEN is too short to be masked safely (1 character): use a real token"
    ]
    assert webhook.requests == []


def test_a_non_critical_step_skips_on_a_short_secret_and_its_json_stays_intact(steps_env) -> None:
    proc = run("steps.lambda_versions", "prune", "--function", "api", "--keep", "1", env={"CLOUDFLARE_API_TOKEN": "t"})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["skipped"] is True and result["step"] == "lambda_versions prune"
    assert "CLOUDFLARE_API_TOKEN is too short" in result["reason"]
    [skip] = [json.loads(line) for line in steps_env.skip_log.read_text().splitlines()]
    assert skip["step"] == "lambda_versions prune"


def test_a_result_is_printed_as_it_is_never_masked_by_substring(http_stub: StubServer) -> None:
    # A secret that occurs in the JSON text but in none of its strings ('"status"' is the
    # quoted key): substring masking turned the line into invalid JSON for the next Command.
    http_stub.script(Reply(200, body="up"))
    proc = run("steps.health", "--url", http_stub.url, "--timeout", "5", env={"CLOUDFLARE_API_TOKEN": '"status"'})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == 200


# --- 6. bad input: URLs, DNS names, resolvers, DSNs -------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["notaurl", "file:///etc/passwd", "http://[::1", "ftp://127.0.0.1:PORT/", "http://127.0.0.1:99999/", "http:///x",
     "http://127.0.0.1:PORT/\n"],
)
def test_health_refuses_a_url_that_is_not_http(url: str, http_stub: StubServer) -> None:
    http_stub.script(Reply(200))
    port = http_stub.url.rsplit(":", 1)[1]
    proc = run("steps.health", "--url", url.replace("PORT", port), "--timeout", "5")
    assert_bad_argument(proc, "steps.health", "argument --url:")
    assert http_stub.requests == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--name", "a" * 70 + ".example.test"], "argument --name: is not a valid DNS name"),
        (["--name", "a..example.test"], "argument --name: is not a valid DNS name"),
        (["--name", "site.example.test", "--resolver", "notanip"], "argument --resolver: 'notanip': not an IP address"),
        (["--name", "site.example.test", "--resolver", "127.0.0.1:70000"], "argument --resolver:"),
        (["--name", "site.example.test", "--type", "BOGUS"], "unknown record type 'BOGUS'"),
    ],
)
def test_dns_wait_refuses_bad_names_and_resolvers(args: list[str], expected: str, dns_stub: DnsStub) -> None:  # noqa: F811
    if "--resolver" not in args:
        args = [*args, "--resolver", dns_stub.address]
    proc = run("steps.dns_wait", *args, "--expect", "pages.example.test", "--timeout", "5")
    assert_bad_argument(proc, "steps.dns_wait", expected)
    assert dns_stub.queries == []


@pytest.mark.parametrize(
    "dsn",
    ["host=127.0.0.1 port=abc dbname=x user=u password=not-a-real-password",
     "postgres://u:not-a-real-password@127.0.0.1:99999/x"],
)
@pytest.mark.parametrize("step", ["schema", "migrate"])
def test_a_malformed_dsn_is_refused_before_connecting(step: str, dsn: str) -> None:
    argv = (
        ["steps.schema", "create", "--schema", "app"]
        if step == "schema"
        else ["steps.migrate", "--app-dir", "examples/app", "--schema", "app", "--timeout", "5"]
    )
    proc = run(*argv, env={"DATABASE_URL": dsn})
    assert proc.returncode == 1, proc.stderr
    [line] = failed_lines(proc, step)
    assert "DATABASE_URL has a port that is not a number from 1 to 65535" in line
    assert "Traceback" not in proc.stderr and "OperationalError" not in proc.stderr
    assert "not retrying (permanent)" in proc.stderr and "attempt 2 of" not in proc.stderr
    assert "running" not in proc.stderr  # no tool ran: no npm ci, no schema manifest, no push
    assert "not-a-real-password" not in proc.stderr + proc.stdout


# --- 6. bad input: timeouts ---------------------------------------------------------------------

# Each step's command line; the last item is the flag, given as `--flag=VALUE` (so `-inf` is a value).
TIMEOUT_STEPS = {
    "health": ["steps.health", "--url", "URL", "--timeout"],
    "dns_wait": ["steps.dns_wait", "--name", "a.example.test", "--expect", "b.example.test", "--resolver", "DNS", "--timeout"],
    "migrate": ["steps.migrate", "--app-dir", "examples/app", "--schema", "app", "--timeout"],
    "install": ["steps.install", "--app-dir", "APP", "--timeout"],
    "build_site": ["steps.build_site", "--app-dir", "APP", "--out", "APP/out", "--timeout"],
    "pages-deploy": ["steps.pages", "deploy", "--project", "p", "--branch", "pr-7", "--dir", "APP", "--app-dir", "APP", "--timeout"],
    "pages-confirm": ["steps.pages", "deploy", "--project", "p", "--branch", "pr-7", "--dir", "APP", "--app-dir", "APP", "--confirm-timeout"],
}


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "0", "1e9", "soon"])
@pytest.mark.parametrize("step", sorted(TIMEOUT_STEPS))
def test_a_timeout_that_never_ends_is_refused(step: str, value: str, http_stub: StubServer, dns_stub: DnsStub, tmp_path: Path) -> None:  # noqa: F811
    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text("{}")
    replace = {"URL": http_stub.url, "DNS": dns_stub.address, "APP": str(app), "APP/out": str(app / "out")}
    *argv, flag = [replace.get(a, a) for a in TIMEOUT_STEPS[step]]
    proc = run(*argv, f"{flag}={value}", env={"DATABASE_URL": "postgres://u:not-a-real-password@127.0.0.1:1/x"})
    prog = argv[0] + (" deploy" if argv[0] == "steps.pages" else "")
    assert_bad_argument(proc, prog, f"argument {flag}: must be")
    assert http_stub.requests == [] and dns_stub.queries == []
    assert list(app.iterdir()) == [app / "package.json"]


# --- 6. bad input: trailing newlines -----------------------------------------------------------


def test_an_arn_with_a_trailing_newline_names_no_role() -> None:
    assert role_of("arn:aws:sts::123456789012:assumed-role/deploy/GitHubActions") == "arn:aws:iam::123456789012:role/deploy"
    assert role_of("arn:aws:sts::123456789012:assumed-role/deploy/GitHubActions\n") is None
    assert role_of("arn:aws:iam::123456789012:role/deploy\n") is None


@pytest.mark.parametrize(
    ("argv", "prog", "expected"),
    [
        (["steps.pages", "delete-branch", "--project", "webstack-site", "--branch", "pr-7\n"], "steps.pages delete-branch", "--branch"),
        (["steps.pages", "delete-branch", "--project", "webstack-site\n", "--branch", "pr-7"], "steps.pages delete-branch", "--project"),
        (["steps.pages", "delete", "--project", "webstack-site", "--deployment", "../../../tokens"], "steps.pages delete", "--deployment"),
        (["steps.pages", "delete-branch", "--project", "webstack-site", "--branch=--help"], "steps.pages delete-branch", "--branch"),
        (["steps.lambda_versions", "verify-alias", "--function", "api", "--alias", "stable\n", "--version", "3"],
         "steps.lambda_versions verify-alias", "--alias"),
        (["workflow.deploy_record", "--stack", "preview-pr-7\n"], "workflow.deploy_record", "--stack"),
        (["workflow.sweep_previews", "check", "--repo", "org/repo/../x", "--pr", "7"], "workflow.sweep_previews check", "--repo"),
    ],
    ids=["branch-newline", "project-newline", "deployment-path", "branch-option", "alias-newline", "stack-newline", "repo-path"],
)
def test_names_are_matched_whole(argv: list[str], prog: str, expected: str, http_stub: StubServer) -> None:
    http_stub.script(Reply(200, body="{}"))
    env = {
        "CLOUDFLARE_API_BASE_URL": http_stub.url + "/client/v4",
        "CLOUDFLARE_API_TOKEN": "cf-token-0123456789",
        "CLOUDFLARE_ACCOUNT_ID": "0" * 32,
        "AWS_ENDPOINT_URL": http_stub.url,
        "GH_TOKEN": "gh-token-0123456789",
        "GITHUB_API_URL": http_stub.url,
    }
    proc = run(*argv, env=env)
    assert_bad_argument(proc, prog, f"argument {expected}")
    assert http_stub.requests == []


# --- 6. bad input: bounded echo ----------------------------------------------------------------

ECHO_RUNS = {
    "health-url": (["steps.health", "--url", "http://127.0.0.1:1/" + HUGE, "--timeout", "1"], {}),
    "pages-project": (["steps.pages", "delete-branch", "--project", HUGE, "--branch", "pr-7"], {}),
    "lambda-function": (["steps.lambda_versions", "prune", "--function", HUGE, "--keep", "1"], {}),
    "install-app-dir": (["steps.install", "--app-dir", HUGE], {}),
    "build-lambda-entry": (["steps.build_lambda", "--app-dir", "examples/app", "--entry", HUGE, "--out", "OUT"], {}),
    "schema-name": (["steps.schema", "create", "--schema", HUGE], {"DATABASE_URL": "postgres://u:not-a-real-password@127.0.0.1:1/x"}),
    "build-site-web-dir": (["steps.build_site", "--app-dir", "examples/app", "--out", "OUT", "--web-dir", HUGE], {}),
    "build-site-baked": (["steps.build_site", "--app-dir", "examples/app", "--out", "OUT", "--baked", "A,-" + HUGE], {}),
    "dns-expect": (
        ["steps.dns_wait", "--name", "site.example.test", "--expect", HUGE, "--resolver", "DNS", "--timeout", "1", "--non-critical"],
        {},
    ),
    "alert-body": (["steps.alert", "--severity", "warning", "--title", HUGE, "--body", HUGE], {}),
}


@pytest.mark.parametrize("case", sorted(ECHO_RUNS))
def test_echoed_input_is_a_bounded_prefix(case: str, webhook: StubServer, dns_stub: DnsStub, tmp_path: Path) -> None:  # noqa: F811
    argv, env = ECHO_RUNS[case]
    argv = [{"OUT": str(tmp_path / "out"), "DNS": dns_stub.address}.get(a, a) for a in argv]
    proc = run(*argv, env={**env, "ALERT_WEBHOOK_URL": webhook.url + "/hook-path-0123"})
    printed = proc.stdout + proc.stderr
    assert "Traceback" not in printed
    longest = max(printed.splitlines(), key=len)
    assert len(longest) < 1000, f"a line of {len(longest)} characters: {longest[:300]}"
    for request in webhook.requests:
        assert len(request.body) < 10_000, f"an alert of {len(request.body)} bytes"
    assert "…" in printed  # the cut is marked
