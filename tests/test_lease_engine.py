"""The lease with the real engine: a `pulumi up` holder killed with SIGKILL leaves both its lease
and Pulumi's lock; the next `workflow.lease run` takes the lease over, runs the real
`pulumi cancel` and its own `up` completes.

A tiny program of its own (a stack output, and a sleep while the engine holds the stack's lock)
against a file backend (`sandbox.engine.engine_env`), the lease table on moto_server.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from sandbox.engine import BIN_DIR, engine_env
from tests.support.moto import aws_env, moto_server  # noqa: F401
from workflow import lease

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("steps_env")]

ROOT = Path(__file__).resolve().parents[1]
PULUMI = BIN_DIR / "pulumi"
PROGRAM = """\
import os, time
import pulumi
time.sleep(float(os.environ.get("HOLD_SECONDS", "0")))
pulumi.export("mark", os.environ.get("MARK", ""))
"""


def _with_marker(marker: str) -> list[int]:
    """Every process whose environment carries `marker` (all a run started, wherever its group)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if marker.encode() in (proc / "environ").read_bytes():
                pids.append(int(proc.name))
    return pids


@pytest.fixture
def project(tmp_path: Path, aws_env: str) -> tuple[Path, dict[str, str]]:  # noqa: F811
    if not PULUMI.exists():
        pytest.fail("bin/pulumi is missing: python -m sandbox.engine build")
    boto3.client("dynamodb").create_table(
        TableName=lease.default_table("webstack"),
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
    )
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "Pulumi.yaml").write_text("name: leasetest\nruntime:\n  name: python\n")
    (proj / "__main__.py").write_text(PROGRAM)
    env = engine_env(tmp_path / "state", "lease-test-passphrase", venv=ROOT / ".venv", base=os.environ)
    env["PYTHONPATH"] = str(ROOT)
    subprocess.run([str(PULUMI), "stack", "init", "prod", "--non-interactive"], cwd=proj, env=env, check=True, capture_output=True)
    return proj, env


def pulumi_locks(proj: Path, env: dict[str, str]) -> list[Path]:
    state = Path(env["PULUMI_BACKEND_URL"].removeprefix("file://"))
    return sorted((state / ".pulumi" / "locks").rglob("*.json")) if (state / ".pulumi" / "locks").exists() else []


def leased_up(proj: Path, env: dict[str, str], *, marker: str, hold: float, mark: str, wait: float = 120) -> subprocess.Popen[str]:
    argv = [
        sys.executable, "-m", "workflow.lease", "run", "--stack", "prod", "--lease-seconds", "4",
        "--poll-seconds", "0.5", "--wait-seconds", str(wait), "--pulumi", str(PULUMI),
        "--", str(PULUMI), "up", "--yes", "--stack", "prod", "--non-interactive",
    ]  # fmt: skip
    child = {**env, "LEASE_TEST_MARKER": marker, "HOLD_SECONDS": str(hold), "MARK": mark, "GITHUB_RUN_ID": mark}
    return subprocess.Popen(  # noqa: S603
        argv, cwd=proj, env=child, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip


def test_a_killed_up_is_taken_over_with_a_real_pulumi_cancel(project: tuple[Path, dict[str, str]]) -> None:
    proj, env = project
    marker = "lease-dead-" + secrets.token_hex(4)
    holder = leased_up(proj, env, marker=marker, hold=600, mark="dead-run")
    try:
        deadline = time.monotonic() + 180
        while not pulumi_locks(proj, env):
            assert holder.poll() is None, holder.communicate()[0]
            assert time.monotonic() < deadline, "the engine never took its lock"
            time.sleep(0.2)
        time.sleep(0.5)  # inside the update: the program is sleeping
    finally:
        for pid in _with_marker(marker):  # the wrapper, pulumi, the language host, the program
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        holder.wait(timeout=30)
    assert not _with_marker(marker)
    held = pulumi_locks(proj, env)
    assert len(held) == 1
    assert lease.LeaseTable(lease.default_table("webstack")).get("webstack/prod")["RunId"] == "dead-run"

    # Without the lease, the next up fails at once on Pulumi's stale lock.
    blocked = subprocess.run(
        [str(PULUMI), "up", "--yes", "--stack", "prod", "--non-interactive"], cwd=proj, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert blocked.returncode != 0 and "locked" in blocked.stdout + blocked.stderr
    assert pulumi_locks(proj, env) == held

    # Under the lease: waits out the dead holder's lease, takes over, cancels, completes.
    nxt = leased_up(proj, env, marker="lease-next-" + secrets.token_hex(4), hold=0, mark="next-run")
    out, _ = nxt.communicate(timeout=600)
    assert nxt.returncode == 0, out
    assert "took over webstack/prod from a dead holder: run dead-run" in out
    assert "has been canceled" in out  # the real `pulumi cancel`
    assert "alert (warning): lease of webstack/prod taken over from a dead run" in out
    assert pulumi_locks(proj, env) == []
    assert lease.LeaseTable(lease.default_table("webstack")).get("webstack/prod") is None
    output = subprocess.run(
        [str(PULUMI), "stack", "output", "mark", "--stack", "prod", "--non-interactive"], cwd=proj, env=env,
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert output.stdout.strip() == "next-run"
