"""The real `moto_server` on a loopback port, and an AWS environment that points boto3 at it.

    from tests.support.moto import aws_env, moto_server  # fixtures

    def test_x(aws_env):            # AWS_ENDPOINT_URL, dummy credentials, region; moto reset
        boto3.client("lambda").create_function(...)
        subprocess.run([sys.executable, "-m", "steps...."], env=os.environ.copy())

`moto_server` (session scope) starts `.venv/bin/moto_server -H 127.0.0.1 -p PORT` in its own
process group, waits until it answers, yields its URL and stops the whole group afterwards.
`aws_env` (function scope) resets moto's state, clears every AWS variable of the outer
environment (profiles, real keys) and sets dummy credentials, so nothing can reach real AWS.

moto enforces no IAM and lets an aliased version be deleted (FACTS.md): tests assert those rules
themselves. Lambda `invoke` needs Docker: never invoke.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
ACCESS_KEY_ID = "testing"
# Distinct from words in normal output: the steps mask AWS_SECRET_ACCESS_KEY's value everywhere.
SECRET_ACCESS_KEY = "moto-dummy-secret-7c1e"
STARTUP_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _moto_server_bin() -> str:
    candidate = Path(sys.executable).with_name("moto_server")
    if not candidate.exists():
        pytest.fail(f"{candidate} not found: install moto[server] into the virtualenv")
    return str(candidate)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a running moto_server on 127.0.0.1."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto_server.log"
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [_moto_server_bin(), "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"moto_server exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                requests.get(f"{url}/moto-api/", timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not answer on {url} within {STARTUP_TIMEOUT:.0f}s")
                time.sleep(0.1)
        yield url
    finally:
        _stop(proc)


def aws_environment(endpoint: str) -> dict[str, str]:
    """The variables that point boto3 (and a step run as a child process) at `endpoint`."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        # No ~/.aws files of whoever runs the tests.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def point_aws_at(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """Replace every AWS_* variable of the environment with the ones for `endpoint`."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in aws_environment(endpoint).items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def aws_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh moto (state reset) with the environment pointing at it; returns the endpoint."""
    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    point_aws_at(monkeypatch, moto_server)
    return moto_server
