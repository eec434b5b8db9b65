"""No deploy step prints a secret, in any form, on success or failure, in or out of GitHub Actions.

A Command's stdout and stderr are stored in the stack's state, so what a step prints is as good as
written to state. Every secret below carries the marker `S3ntinel` inside its secret part (the
password, the token, the webhook's path), so a whole value, a password alone, a decoded password or
a webhook path all show up as the marker. Each step runs as the real process the Command starts.
"""

from __future__ import annotations

import ast
import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dns_stub import DnsStub, dns_stub  # noqa: F401 - fixture
from tests.support.http_stub import Reply, StubServer
from tests.support.postgres import PostgresServer, postgres  # noqa: F401 - fixture

# Slow tier: each case starts a step in a subprocess (about 2 s each, 40 cases).
pytestmark = [pytest.mark.usefixtures("steps_env"), pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
MARKER = "S3ntinel"


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def secrets_for(db_port: int, hook_url: str) -> dict[str, str]:
    return {
        # `@` and `/` percent-encoded: the form a DSN must take (a decoded part is masked too).
        "DATABASE_URL": f"postgres://postgres:Pw-{MARKER}%40x%2Fy@127.0.0.1:{db_port}/postgres",
        "CLOUDFLARE_API_TOKEN": f"cf-{MARKER}-token-0123456789abcdef",
        "ALERT_WEBHOOK_URL": f"{hook_url}/services/T0000/B0000/Hook{MARKER}Path99",
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": f"aws{MARKER}SecretKey0123456789abcdefghij",
        "AWS_SESSION_TOKEN": f"aws{MARKER}SessionToken0123456789",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


@pytest.fixture
def hook() -> Iterator[StubServer]:
    with StubServer() as server:
        server.script(Reply(200, body="ok"))
        yield server


def run_step(argv: list[str], env: dict[str, str], tmp: Path, *, github: bool) -> tuple[int, str]:
    """Run `python -m steps.<...>` as a Command would; everything it wrote that could be kept."""
    summary = tmp / "summary.md"
    extra = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)} if github else {}
    proc = subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=REPO,
        env={**env, **extra},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    kept = proc.stdout + proc.stderr + (summary.read_text() if summary.exists() else "")
    return proc.returncode, kept


def assert_no_secret(kept: str, secrets: dict[str, str]) -> None:
    assert MARKER not in kept, f"a secret or part of one was printed:\n{kept[-3000:]}"
    for name, value in secrets.items():
        if MARKER in value:
            assert value not in kept, name


# Each step as its Command runs it, with inputs that make it fail without any service. Which steps
# there are is not kept here: test_every_step_is_run_here finds them in steps/ and in the Commands
# the program declares, and fails naming any this table does not run.
PUBLISH = ["--artifacts-bucket", "webstack-artifacts-123456789012", "--artifacts-prefix", "previews/preview-pr-7"]
# A build's record (steps.artifacts) whose object is nowhere: fetching it fails.
RECORD = json.dumps(
    {"sha256": "a" * 64, "bucket": "webstack-artifacts-123456789012", "key": "previews/preview-pr-7/site/" + "b" * 64 + ".tar.gz",
     "version": "v1", "object_sha256": "b" * 64}
)  # fmt: skip
FAILURES = {
    "install": ["steps.install", "--app-dir", "does/not/exist"],
    "schema": ["steps.schema", "create", "--schema", "app_preview_pr_7"],
    "migrate": ["steps.migrate", "--app-dir", "does/not/exist", "--schema", "app_preview_pr_7", "--timeout", "5"],
    "build_lambda": ["steps.build_lambda", "--app-dir", "does/not/exist", "--entry", "x.ts", "--out", "OUT", *PUBLISH],
    "build_site": ["steps.build_site", "--app-dir", "does/not/exist", "--out", "OUT", *PUBLISH],
    "artifacts-fetch": ["steps.artifacts", "fetch", "--artifact", RECORD, "--out", "OUT"],
    "verify-alias": ["steps.lambda_versions", "verify-alias", "--function", "f", "--alias", "stable", "--version", "1"],
    "prune": ["steps.lambda_versions", "prune", "--function", "f", "--keep", "1"],
    "promote-check": ["steps.promote", "check", "--function", "f", "--qualifier", "1", "--expect-version", "abc"],
    "promote-check-url": ["steps.promote", "check", "--url", "URL", "--expect-version", "abc", "--timeout", "1"],
    "pages-deploy": [
        "steps.pages", "deploy", "--project", "p", "--branch", "pr-7", "--dir", "OUT", "--artifact", RECORD, "--app-dir", "examples/app",
    ],
    "pages-claim-branch": ["steps.pages", "claim-branch", "--project", "p", "--branch", "pr-7", *PUBLISH],
    "pages-delete-branch": ["steps.pages", "delete-branch", "--project", "p", "--branch", "pr-7", "--claimed", *PUBLISH],
    "dns_wait": ["steps.dns_wait", "--name", "a.example.test", "--expect", "b.example.test", "--resolver", "RESOLVER", "--timeout", "1"],
    "health": ["steps.health", "--url", "URL", "--timeout", "1"],
    "alert": ["steps.alert", "--severity", "critical", "--title", "t", "--body", "b"],
}


# Programs in steps/ that no Command runs and that read no secret.
NOT_DEPLOY_STEPS = {"package_manager": "`prefetch` is .ci/setup's: it installs the pipeline's wrangler into the tools directory"}
STEP_MODULE = re.compile(r"\bpython -m steps\.(\w+)")


def step_programs() -> set[str]:
    """Every module of steps/ that runs as a program (`if __name__ == "__main__":` at its top level)."""
    found = set()
    for path in sorted((REPO / "steps").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.If) and "__name__" in ast.unparse(node.test) and "__main__" in ast.unparse(node.test):
                found.add(path.stem)
    return found


def test_every_step_is_run_here(recorded) -> None:
    run_here = {argv[0].removeprefix("steps.") for argv in FAILURES.values()}
    declared = set()
    for stack in ("prod", "preview-pr-7"):
        for resource in recorded(stack).resources.values():
            for key in ("create", "update", "delete"):
                declared |= set(STEP_MODULE.findall(str(resource.inputs.get(key) or "")))
    assert declared, "the recording names no step: the discovery looks in the wrong place"
    programs = step_programs()
    assert declared <= programs, f"Commands run {sorted(declared - programs)}, which are not programs in steps/"
    missing = sorted((programs | declared) - run_here - set(NOT_DEPLOY_STEPS))
    assert missing == [], f"steps {missing} are not run with sentinel secrets: add a failing invocation of each to FAILURES"
    assert set(NOT_DEPLOY_STEPS) <= programs - declared, "a step listed as no Command's is run by one (or gone): drop it"


@pytest.mark.parametrize("github", [True, False], ids=["github-actions", "local"])
@pytest.mark.parametrize("step", sorted(FAILURES))
def test_a_failing_step_prints_no_secret(step: str, github: bool, steps_env, tmp_path: Path) -> None:
    closed = _closed_port()
    secrets = secrets_for(closed, f"http://127.0.0.1:{closed}")
    env = steps_env.child_env(
        **secrets,
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{closed}",
        CLOUDFLARE_API_BASE_URL=f"http://127.0.0.1:{closed}/client/v4",
        CLOUDFLARE_ACCOUNT_ID="0" * 32,
    )
    argv = [
        {"OUT": str(tmp_path / "out"), "RESOLVER": f"127.0.0.1:{closed}", "URL": f"http://127.0.0.1:{closed}/"}.get(a, a)
        for a in FAILURES[step]
    ]
    code, kept = run_step(argv, env, tmp_path, github=github)
    # Critical steps fail; non-critical ones skip with exit 0; the alert CLI reports delivery.
    assert code != 0 or step in {"prune", "pages-delete-branch"}, kept
    assert "Traceback" not in kept or step in {"prune", "pages-delete-branch", "verify-alias"}
    assert_no_secret(kept, secrets)


@pytest.mark.parametrize("step", sorted(FAILURES))
def test_a_dsn_whose_password_parsers_split_differently_leaks_no_piece(step: str, steps_env, tmp_path: Path, hook: StubServer) -> None:
    # An unencoded '@' and '/' in the password: libpq takes "…A" for the password and "…B" for the
    # host, Python's urlsplit something else again; each piece carries the marker.
    closed = _closed_port()
    secrets = {
        **secrets_for(closed, hook.url),
        "DATABASE_URL": f"postgres://postgres:Pw{MARKER}A@{MARKER}B/{MARKER}C@127.0.0.1:{closed}/postgres",
    }
    env = steps_env.child_env(**secrets, AWS_ENDPOINT_URL=f"http://127.0.0.1:{closed}", CLOUDFLARE_ACCOUNT_ID="0" * 32)
    argv = [
        {"OUT": str(tmp_path / "out"), "RESOLVER": f"127.0.0.1:{closed}", "URL": f"http://127.0.0.1:{closed}/"}.get(a, a)
        for a in FAILURES[step]
    ]
    code, kept = run_step(argv, env, tmp_path, github=False)
    alerts = "".join(request.body.decode() for request in hook.requests)
    assert code != 0 or step in {"prune", "pages-delete-branch"}, kept
    assert "percent-encode" in kept  # refused at start, whichever step it is
    assert_no_secret(kept + alerts, secrets)


@pytest.mark.parametrize("github", [True, False], ids=["github-actions", "local"])
def test_succeeding_steps_print_no_secret(github: bool, steps_env, tmp_path: Path, hook: StubServer, dns_stub: DnsStub) -> None:  # noqa: F811
    secrets = secrets_for(_closed_port(), hook.url)
    env = steps_env.child_env(**secrets)
    dns_stub.set("site.example.test", "CNAME", "pages.example.test")
    runs = {
        "health": ["steps.health", "--url", hook.url + "/healthz", "--timeout", "10"],
        "alert": ["steps.alert", "--severity", "warning", "--title", "t", "--body", "b"],
        "dns_wait": [
            "steps.dns_wait", "--name", "site.example.test", "--expect", "pages.example.test",
            "--resolver", dns_stub.address, "--timeout", "10",
        ],
    }
    for name, argv in runs.items():
        code, kept = run_step(argv, env, tmp_path, github=github)
        assert code == 0, f"{name}: {kept}"
        assert_no_secret(kept, secrets)
    # The alert reached the webhook, whose path is the secret: it was used, just never printed.
    assert hook.requests_to("/services/T0000/B0000/Hook" + MARKER + "Path99")


@pytest.mark.slow
@pytest.mark.parametrize("github", [True, False], ids=["github-actions", "local"])
def test_schema_create_and_drop_on_real_postgres_print_no_secret(github: bool, steps_env, tmp_path: Path, postgres: PostgresServer) -> None:  # noqa: F811
    # Trust auth accepts any password, so the sentinel DSN really connects.
    secrets = secrets_for(postgres.port, "http://127.0.0.1:9")
    env = steps_env.child_env(**secrets)
    for action in ("create", "drop"):
        code, kept = run_step(["steps.schema", action, "--schema", "app_preview_pr_7"], env, tmp_path, github=github)
        assert code == 0, kept
        assert_no_secret(kept, secrets)
