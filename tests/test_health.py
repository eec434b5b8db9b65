"""steps.health: fault injection against a loopback server (STEPS_RETRY_SCALE=0.01 in steps_env)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from steps import health
from tests.support.http_stub import Reply, StubServer, http_stub  # noqa: F401 - fixture
from tests.support.steps_env import steps_env  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("steps_env")

REPO = Path(__file__).resolve().parents[1]


def test_succeeds_on_the_third_attempt(http_stub: StubServer, capsys) -> None:
    http_stub.script(Reply(503), Reply(503), Reply(200, body="up"))
    assert health.main(["--url", http_stub.url + "/healthz", "--timeout", "10"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["status"] == 200 and result["url"] == http_stub.url + "/healthz"
    assert [r.path for r in http_stub.requests] == ["/healthz"] * 3
    assert "health: attempt 1 of" in err and "answered 503, expected 200; next wait" in err


def test_always_503_fails_after_the_deadline(http_stub: StubServer, capsys) -> None:
    http_stub.script(Reply(503))
    started = time.monotonic()
    assert health.main(["--url", http_stub.url, "--timeout", "1"]) == 1
    elapsed = time.monotonic() - started
    assert 0.5 < elapsed < 15  # generous: a loaded machine is slow; no retry goes past the deadline by much
    assert len(http_stub.requests) >= 3
    out, err = capsys.readouterr()
    assert out == ""
    assert err.rstrip().splitlines()[-1].startswith(
        f"FAILED health: GET {http_stub.url} answered 503, expected 200 — it did not become healthy in time"
    )


def test_401_fails_at_once(http_stub: StubServer, capsys) -> None:
    http_stub.script(Reply(401), Reply(200))
    assert health.main(["--url", http_stub.url, "--timeout", "10"]) == 1
    assert len(http_stub.requests) == 1
    assert "FAILED health: GET" in capsys.readouterr().err


def test_retry_after_is_respected(http_stub: StubServer) -> None:
    http_stub.script(Reply(429, headers={"Retry-After": "20"}), Reply(200))
    assert health.main(["--url", http_stub.url, "--timeout", "10"]) == 0
    # Backoff alone waits ~0.01-0.02s here; Retry-After 20s at scale 0.01 is 0.2s.
    assert http_stub.gaps()[0] >= 0.19


def test_expected_redirect_is_not_followed(http_stub: StubServer, capsys) -> None:
    http_stub.route("GET", "/old", Reply(301, headers={"Location": "/new"}))
    assert health.main(["--url", http_stub.url + "/old", "--expect-status", "301"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == 301
    assert [r.path for r in http_stub.requests] == ["/old"]


def test_connection_refused_is_retried_until_the_deadline(capsys) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert health.main(["--url", f"http://127.0.0.1:{port}/", "--timeout", "0.5"]) == 1
    err = capsys.readouterr().err
    assert "attempt 2 of" in err and "ConnectionError" in err


def test_runs_as_a_real_process(steps_env, http_stub: StubServer) -> None:
    http_stub.script(Reply(502), Reply(204))
    proc = subprocess.run(
        [sys.executable, "-m", "steps.health", "--url", http_stub.url, "--expect-status", "204", "--timeout", "10"],
        cwd=REPO,
        env=steps_env.child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == 204
    assert len(http_stub.requests) == 2
