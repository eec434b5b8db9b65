"""The real `moto_server` on a loopback port, and an AWS environment that points boto3 at it.

    from tests.support.moto import aws_env, moto_server  # fixtures

    def test_x(aws_env):            # AWS_ENDPOINT_URL, dummy credentials, region; moto reset
        boto3.client("lambda").create_function(...)
        subprocess.run([sys.executable, "-m", "steps...."], env=os.environ.copy())

`moto_server` (session scope) starts `python -m sandbox.moto_server` (moto_server plus the route
the Lambda runtime reads code from) in its own process group, waits until it answers, yields its
URL and stops the whole group afterwards.
`aws_env` (function scope) resets moto's state, clears every AWS variable of the outer
environment (profiles, real keys) and sets dummy credentials, so nothing can reach real AWS.

moto enforces no IAM and lets an aliased version be deleted (docs/facts.md): tests assert those rules
themselves. Lambda `invoke` needs Docker in moto: sandbox/moto_server.py forwards it to a
registered sandbox.lambda_runtime (start one to invoke; without one, Invoke answers 502).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
import requests

from sandbox.moto_server import spawn, terminate

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
ACCESS_KEY_ID = "testing"
# Distinct from words in normal output: the steps mask AWS_SECRET_ACCESS_KEY's value everywhere.
SECRET_ACCESS_KEY = "moto-dummy-secret-7c1e"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a running moto_server on 127.0.0.1 (the sandbox's: AWS-managed IAM policies
    loaded, each Lambda version's code readable by the local Lambda runtime)."""
    log_path = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with log_path.open("wb") as log:
        try:
            proc, url = spawn(_free_port(), log)
        except RuntimeError as error:
            pytest.fail(f"{error}: {log_path.read_text()[-2000:]}")
    try:
        yield url
    finally:
        terminate(proc)


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


@pytest.fixture
def boto_kwargs(moto_server: str) -> dict[str, str]:
    """A reset moto and the boto3 keyword arguments that reach it (no process environment used)."""
    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    env = aws_environment(moto_server)
    return {
        "endpoint_url": moto_server,
        "region_name": REGION,
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
    }


ARTIFACTS_BUCKET = f"webstack-artifacts-{ACCOUNT_ID}"
"""The artifacts bucket as prod's foundation names it (`core.names.foundation_names`)."""


def ensure_artifacts_bucket(endpoint: str) -> str:
    """The versioned artifacts bucket the builds publish to, in the moto at `endpoint` (made if
    missing; moto's state is otherwise left alone); its name."""
    import boto3

    env = aws_environment(endpoint)
    s3 = boto3.client(
        "s3", endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )  # fmt: skip
    if ARTIFACTS_BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=ARTIFACTS_BUCKET)
    s3.put_bucket_versioning(Bucket=ARTIFACTS_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return ARTIFACTS_BUCKET


@pytest.fixture
def artifacts_bucket(aws_env: str) -> str:
    """A reset moto holding the versioned artifacts bucket the builds publish to; its name."""
    return ensure_artifacts_bucket(aws_env)
