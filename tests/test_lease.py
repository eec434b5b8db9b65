"""The DynamoDB lease (`python -m workflow.lease`) as real processes against moto_server.

Each test runs the wrapper as the workflows do, around small Python commands that append
`<name> start` / `<name> end` to a shared log, with leases of a few seconds. Nothing asserts a tight
upper bound on wall-clock time; every wait below is a generous deadline for something to happen.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest

from tests.support.moto import aws_env, moto_server  # noqa: F401
from workflow import lease

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("steps_env")]

ROOT = Path(__file__).resolve().parents[1]
TABLE = lease.default_table("webstack")
PROD_KEY = "webstack/prod"

# The wrapped command: log start, sleep, log end (its pid goes to <log>.<name>.pid).
COMMAND = (
    "import os, sys, time\n"
    "log, name, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])\n"
    "open(f'{log}.{name}.pid', 'w').write(str(os.getpid()))\n"
    "def note(what):\n"
    "    with open(log, 'a') as f: f.write(f'{name} {what}\\n')\n"
    "note('start')\n"
    "time.sleep(seconds)\n"
    "note('end')\n"
)


@pytest.fixture
def table(aws_env: str) -> str:  # noqa: F811
    boto3.client("dynamodb").create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
    )
    return TABLE


@pytest.fixture
def fake_pulumi(tmp_path: Path) -> Path:
    """A `pulumi` that records its arguments (the takeover's `pulumi cancel`)."""
    script = tmp_path / "pulumi"
    script.write_text(f"#!{sys.executable}\nimport sys\nopen({str(tmp_path / 'pulumi-calls')!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n")
    script.chmod(0o755)
    return script


def calls(fake: Path) -> list[str]:
    path = fake.parent / "pulumi-calls"
    return path.read_text().splitlines() if path.exists() else []


class Runs:
    def __init__(self, tmp: Path, fake: Path):
        self.tmp, self.fake, self.log = tmp, fake, tmp / "log"
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, name: str, seconds: float, *, stack: str = "prod", flags: tuple[str, ...] = (), **env: str) -> subprocess.Popen[str]:
        argv = [
            sys.executable, "-m", "workflow.lease", "run", "--stack", stack, "--pulumi", str(self.fake),
            "--lease-seconds", "3", "--poll-seconds", "0.2", *flags,
            "--", sys.executable, "-c", COMMAND, str(self.log), name, str(seconds),
        ]  # fmt: skip
        child_env = {**os.environ, "GITHUB_RUN_ID": f"run-{name}", "GITHUB_ACTOR": f"actor-{name}", "GITHUB_SHA": f"sha-{name}", **env}
        proc = subprocess.Popen(  # noqa: S603
            argv, cwd=ROOT, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def pid(self, name: str) -> int:
        return int((self.tmp / f"log.{name}.pid").read_text())

    def until(self, what: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not what():
            assert time.monotonic() < deadline, f"timed out; log: {self.lines()}"
            time.sleep(0.05)

    def finish(self, proc: subprocess.Popen[str], timeout: float = 90) -> tuple[int, str]:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out + err


@pytest.fixture
def runs(tmp_path: Path, fake_pulumi: Path) -> Iterator[Runs]:
    r = Runs(tmp_path, fake_pulumi)
    yield r
    for proc in r.procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for pidfile in tmp_path.glob("log.*.pid"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


def item(key: str = PROD_KEY) -> dict | None:
    return lease.LeaseTable(TABLE).get(key)


def test_two_concurrent_holders_run_one_after_the_other(table: str, runs: Runs) -> None:
    a = runs.start("a", 2)
    b = runs.start("b", 2)
    (code_a, out_a), (code_b, out_b) = runs.finish(a), runs.finish(b)
    assert (code_a, code_b) == (0, 0), out_a + out_b
    first, second = runs.lines()[0].split()[0], runs.lines()[2].split()[0]
    assert {first, second} == {"a", "b"}
    assert runs.lines() == [f"{first} start", f"{first} end", f"{second} start", f"{second} end"]
    waiter = out_b if second == "b" else out_a
    assert f"is held by run run-{first} by actor-{first} commit sha-{first}" in waiter
    assert "took over" not in out_a + out_b and calls(runs.fake) == []
    assert item() is None  # released


def test_a_killed_holder_is_waited_for_then_taken_over(table: str, runs: Runs, tmp_path: Path) -> None:
    holder = runs.start("dead", 600, flags=("--lease-seconds", "6"))
    runs.until(lambda: runs.lines() == ["dead start"])
    os.killpg(holder.pid, signal.SIGKILL)  # the wrapper: no release, no heartbeat
    os.kill(runs.pid("dead"), signal.SIGKILL)  # and its command (a group of its own)
    holder.wait()
    assert item()["RunId"] == "run-dead"

    # Before expiry: waits, and gives up naming the holder; Pulumi's lock is left alone.
    early = runs.start("early", 0, flags=("--wait-seconds", "1.5"))
    code, out = runs.finish(early)
    assert code == lease.EXIT_WAIT_EXPIRED, out
    assert "still held" in out and "run run-dead by actor-dead commit sha-dead" in out
    assert calls(runs.fake) == [] and "early start" not in runs.lines()

    # After expiry: takes over, cancels Pulumi's lock, alerts, runs, releases.
    summary = tmp_path / "summary.md"
    late = runs.start("late", 0, flags=("--wait-seconds", "60"), GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary))
    code, out = runs.finish(late)
    assert code == 0, out
    assert calls(runs.fake) == ["cancel --yes --non-interactive --stack prod"]
    assert "took over webstack/prod from a dead holder" in out
    assert "alert (warning): lease of webstack/prod taken over from a dead run" in out
    assert "run run-dead by actor-dead" in summary.read_text()
    assert runs.lines() == ["dead start", "late start", "late end"]
    assert item() is None


def test_the_heartbeat_keeps_a_long_run_alive(table: str, runs: Runs) -> None:
    long = runs.start("long", 7, flags=("--lease-seconds", "2", "--heartbeat-seconds", "0.3"))
    runs.until(lambda: runs.lines() == ["long start"])
    first = item()["Version"]
    other = runs.start("other", 0, flags=("--lease-seconds", "2", "--wait-seconds", "60"))
    # Renewed (polled, not slept for): the holder's 7 s outlast the 2 s lease many times over, and
    # the waiter must still not take over (below).
    runs.until(lambda: item()["Version"] != first)
    code_long, out_long = runs.finish(long)
    code_other, out_other = runs.finish(other)
    assert (code_long, code_other) == (0, 0), out_long + out_other
    assert runs.lines() == ["long start", "long end", "other start", "other end"]
    assert "took over" not in out_other and calls(runs.fake) == []


@pytest.mark.parametrize("how", ["deleted", "taken"])
def test_a_lost_lease_stops_the_command(table: str, runs: Runs, how: str) -> None:
    proc = runs.start("holder", 120, flags=("--heartbeat-seconds", "0.3"))
    runs.until(lambda: runs.lines() == ["holder start"])
    client = boto3.client("dynamodb")
    if how == "deleted":
        client.delete_item(TableName=TABLE, Key={"LockID": {"S": PROD_KEY}})
    else:
        client.put_item(TableName=TABLE, Item={"LockID": {"S": PROD_KEY}, "Version": {"S": "someone-else"}, "RunId": {"S": "thief"}})
    code, out = runs.finish(proc)
    assert code == lease.EXIT_LEASE_LOST, out
    assert "stopping the command" in out
    assert runs.lines() == ["holder start"]  # never reached its end
    with pytest.raises(ProcessLookupError):
        os.kill(runs.pid("holder"), 0)
    if how == "taken":
        assert item()["RunId"] == "thief"  # not released: it is not ours
    else:
        assert item() is None


def test_a_preview_key_and_the_prod_key_do_not_block_each_other(table: str, runs: Runs) -> None:
    prod = runs.start("prod", 3)
    runs.until(lambda: "prod start" in runs.lines())
    pr = runs.start("pr", 0, stack="preview-pr-7", flags=("--wait-seconds", "60"))
    code, out = runs.finish(pr)
    assert code == 0, out
    assert runs.lines()[:3] == ["prod start", "pr start", "pr end"]  # while prod still ran
    assert item()["RunId"] == "run-prod" and "is held" not in out
    assert runs.finish(prod)[0] == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_command_then_releases(table: str, runs: Runs, sig: int) -> None:
    proc = runs.start("x", 120)
    runs.until(lambda: runs.lines() == ["x start"] and item() is not None)
    os.kill(proc.pid, sig)
    code, out = runs.finish(proc)
    assert code == 128 + sig, out
    assert item() is None and "released webstack/prod" in out


def test_a_failing_command_releases_and_keeps_its_code(table: str, runs: Runs) -> None:
    proc = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "workflow.lease", "run", "--stack", "prod", "--", sys.executable, "-c", "raise SystemExit(7)"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 7, proc.stderr
    assert item() is None


def test_status_and_break(table: str, runs: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    proc = runs.start("held", 120, flags=("--heartbeat-seconds", "0.3"))
    runs.until(lambda: runs.lines() == ["held start"])
    assert lease.main(["status", "--stack", "prod"]) == 0
    assert '"RunId": "run-held"' in capsys.readouterr().out

    assert lease.main(["break", "--stack", "prod"]) == 2  # refused without the flag
    assert item()["RunId"] == "run-held"
    capsys.readouterr()
    assert lease.main(["break", "--stack", "prod", "--yes-break-the-lease", "--reason", "test"]) == 0
    err = capsys.readouterr().err
    assert "alert (warning): lease of webstack/prod broken by hand" in err
    # The holder's next renewal finds it gone and stops its command.
    code, out = runs.finish(proc)
    assert code == lease.EXIT_LEASE_LOST and runs.lines() == ["held start"], out


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        lease.main(["run", "--stack", "prod; rm -rf /", "--", "true"])
    assert exit_.value.code == 2
    with pytest.raises(lease.LeaseError, match="heartbeat"):
        lease.Timing(lease_seconds=2, heartbeat_seconds=1.5)
