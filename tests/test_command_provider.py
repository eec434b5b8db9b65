"""Conformance of the sandbox's engine parts with upstream, through the real CLI.

Each test states a behaviour of upstream's command provider (pulumi-command v1.2.1 on
pulumi-go-provider v1.3.0) or Python language host (github:pulumi/pulumi
sdk/python/cmd/pulumi-language-python) and checks it the way it would be checked against
upstream: only through `pulumi` commands, the state (`stack export`) and the files a program
writes, never through the stand-in's own code. The same tests would pass with upstream's plugins
on PATH instead of bin/'s.

- refresh empties a Command's archive (Read returns the stored state; the engine elides asset
  contents in what it sends Read): pulumi-command#537, pulumi#18926, pulumi#20661;
- an output is secret only when an input of the same name is, or `additional_secret_outputs`;
- an update runs `update` (else `create`) with the previous stdout; a trigger change replaces,
  create-before-delete;
- `customTimeouts` and the engine's Cancel (the first SIGINT to `pulumi`) kill the running
  command: its later commands never run;
- a single output line of 64 KiB or more hangs the Command (the log scanner stops reading);
- the Python host runs a policy pack as `python -u -m pulumi.policy ARGS <pack>` from the pack's
  directory with the stack's config, and interrupts a program with SIGINT, then SIGKILL 5 s later.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess  # runs the built CLI with list argv  # nosec B404
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sandbox import engine
from sandbox.process_tree import descendants, kill_tree

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(not (engine.BIN_DIR / "pulumi").exists(), reason="bin/pulumi not built (python -m sandbox.engine build)"),
]

REPO = Path(__file__).resolve().parents[1]
POLICY_VENV = REPO / "policy" / "venv"


class Project:
    """A throwaway Python program on a file backend, run by bin/pulumi."""

    def __init__(self, root: Path, program: str, stack: str = "dev"):
        self.dir = root / "project"
        self.dir.mkdir(parents=True)
        (self.dir / "Pulumi.yaml").write_text(
            f"name: conformance\nruntime:\n  name: python\n  options:\n    toolchain: pip\n    virtualenv: {sys.prefix}\n"
        )
        (self.dir / "__main__.py").write_text(textwrap.dedent(program))
        (root / "state").mkdir()
        self.env = engine.engine_env(root / "state", "conformance-passphrase", venv=Path(sys.prefix))
        self.stack = stack
        self.pulumi("stack", "init", stack)

    def argv(self, *args: str) -> list[str]:
        return [str(engine.BIN_DIR / "pulumi"), *args, "--non-interactive"]

    def pulumi(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(self.argv(*args), cwd=self.dir, env=self.env, capture_output=True, text=True, timeout=timeout)  # nosec B603
        if check:
            assert done.returncode == 0, f"pulumi {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    def start(self, *args: str) -> subprocess.Popen[str]:
        """`pulumi ARGS` in a process group of its own (so a test can end it and everything it started)."""
        return subprocess.Popen(  # nosec B603
            self.argv(*args), cwd=self.dir, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )  # fmt: skip

    def resources(self) -> dict[str, dict]:
        exported = json.loads(self.pulumi("stack", "export").stdout)
        return {r["urn"].rsplit("::", 1)[1]: r for r in exported["deployment"]["resources"]}

    def config(self, key: str, value: str, *, secret: bool = False) -> None:
        self.pulumi("config", "set", *(["--secret"] if secret else []), key, value)


def wait_for(path: Path, within: float) -> None:
    deadline = time.monotonic() + within
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear within {within}s"
        time.sleep(0.1)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def finish(proc: subprocess.Popen[str], within: float) -> str:
    try:
        out, _ = proc.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        out, _ = proc.communicate()
        pytest.fail(f"pulumi did not finish within {within}s:\n{out[-3000:]}")
    return out


LIFECYCLE = """\
import pulumi
from pulumi_command import local

cfg = pulumi.Config()
step = local.Command(
    "step",
    create="echo created-$ROUND; echo \\"create $ROUND prev=$PULUMI_COMMAND_STDOUT\\" >> ../log.txt",
    update="echo updated-$ROUND; echo \\"update $ROUND prev=$PULUMI_COMMAND_STDOUT\\" >> ../log.txt",
    delete="echo \\"delete $ROUND prev=$PULUMI_COMMAND_STDOUT\\" >> ../log.txt",
    environment={"ROUND": cfg.get("round") or "1"},
    triggers=[cfg.get("trigger") or "a"],
    dir=".",
)
build = local.Command(
    "build",
    create="mkdir -p out && echo bundle-$ROUND > out/index.js && echo built",
    environment={"ROUND": cfg.get("round") or "1"},
    archive_paths=["out/**"],
    dir=".",
)
token = cfg.require_secret("token")
plain = local.Command("plain", create="echo token=$TOKEN", environment={"TOKEN": token}, dir=".")
hidden = local.Command(
    "hidden", create="echo token=$TOKEN", environment={"TOKEN": token}, dir=".",
    opts=pulumi.ResourceOptions(additional_secret_outputs=["stdout"]),
)
pulumi.export("archive", build.archive.apply(lambda a: sorted(a.assets) if a is not None and a.assets else []))
"""


def test_command_lifecycle_secrets_and_refresh_as_upstream(tmp_path: Path) -> None:
    p = Project(tmp_path, LIFECYCLE)
    p.config("token", "tok-5ea1f00d", secret=True)
    p.pulumi("up", "--yes")
    log = tmp_path / "log.txt"
    assert log.read_text().splitlines() == ["create 1 prev="]
    state = p.resources()

    # An output is secret only when an input of the same name is (none is called stdout): the
    # secret environment leaves `plain`'s stdout in plain text; additional_secret_outputs hides it.
    assert state["plain"]["outputs"]["stdout"] == "token=tok-5ea1f00d"
    assert state["hidden"]["outputs"]["stdout"].get("4dabf18193072939515e22adb298388d") == "1b47061264138c4ac30d75fd1eb44270"
    assert "tok-5ea1f00d" not in json.dumps(state["hidden"]["outputs"]["stdout"])

    # Another environment: `update` runs, with the previous stdout. Another trigger: a replacement,
    # the new one created before the old one's delete runs.
    p.config("round", "2")
    p.pulumi("up", "--yes")
    p.config("trigger", "b")
    p.pulumi("up", "--yes")
    assert log.read_text().splitlines() == [
        "create 1 prev=",
        "update 2 prev=created-1",
        "create 2 prev=",
        "delete 2 prev=updated-2",
    ]

    # Refresh: the archive comes back without its files (upstream's bug, kept).
    assert json.loads(p.pulumi("stack", "output", "archive", "--json").stdout) == ["out/index.js"]
    archive = p.resources()["build"]["outputs"]["archive"]
    assert "out/index.js" in json.dumps(archive)
    p.pulumi("refresh", "--yes")
    refreshed = p.resources()["build"]["outputs"]["archive"]
    assert refreshed.get("hash") == archive.get("hash") and not refreshed.get("assets") and "out/index.js" not in json.dumps(refreshed)
    # What the next run reads from it, the build itself unchanged: no file (a function given this
    # archive would get an empty zip; the program therefore never deploys a Command's archive).
    p.pulumi("up", "--yes")
    assert json.loads(p.pulumi("stack", "output", "archive", "--json").stdout) == []


SLOW_STEPS = """\
import pulumi
from pulumi_command import local

local.Command(
    "timed",
    create="touch ../timed-started; sleep 3; touch ../timed-finished",
    dir=".",
    opts=pulumi.ResourceOptions(custom_timeouts=pulumi.CustomTimeouts(create="1s")),
)
"""

CANCELLED = """\
import pulumi
from pulumi_command import local

local.Command("slow", create="touch ../slow-started; sleep 4; touch ../slow-finished", dir=".")
"""


@pytest.mark.parametrize("how", ["custom-timeout", "first-ctrl-c"])
def test_a_timeout_or_the_first_ctrl_c_kills_the_running_command(tmp_path: Path, how: str) -> None:
    """go-provider middleware/cancel: the operation's context ends at its customTimeouts entry or on
    the engine's Cancel, and exec.CommandContext SIGKILLs the command (`/bin/sh`): what it would run
    next never runs. The run fails, and the resource is not recorded."""
    p = Project(tmp_path, SLOW_STEPS if how == "custom-timeout" else CANCELLED)
    name = "timed" if how == "custom-timeout" else "slow"
    proc = p.start("up", "--yes")
    if how == "first-ctrl-c":
        wait_for(tmp_path / "slow-started", within=120)
        proc.send_signal(signal.SIGINT)  # to pulumi alone, as a job's cancellation does
    out = finish(proc, within=120)
    assert proc.returncode != 0, out
    assert "signal: killed" in out, out[-3000:]
    time.sleep(5)  # what the killed shell would have run after its sleep
    assert (tmp_path / f"{name}-started").exists() and not (tmp_path / f"{name}-finished").exists()
    assert name not in p.resources()


LONG_LINE = """\
import pulumi
from pulumi_command import local

cfg = pulumi.Config()
local.Command(
    "long",
    create="python3 -c \\"print('x' * 70000)\\"; touch ../long-finished",
    logging=cfg.get("logging") or None,
    dir=".",
)
"""


def test_a_single_output_line_of_64_kib_hangs_the_command(tmp_path: Path) -> None:
    """util.LogOutput reads the command's output with bufio.Scanner's default 64 KiB limit: one
    longer line stops it, nobody reads the logging pipe any more, and the provider's copy of the
    output blocks for good: the Command never completes, even after its process is done. With
    logging off the same command completes. (steps.console keeps every step's lines far below.)"""
    p = Project(tmp_path, LONG_LINE)
    proc = p.start("up", "--yes")
    try:
        proc.wait(timeout=25)
    except subprocess.TimeoutExpired:
        pass
    hung = proc.poll() is None
    below = [_cmdline(pid) for pid in descendants(proc.pid)]  # the provider's process group is its own
    kill_tree(proc.pid)
    proc.communicate()
    assert hung, "pulumi up finished although the command printed a 70000-byte line"
    assert any("pulumi-resource-command" in line for line in below), f"the hung provider was not below pulumi: {below}"
    assert (tmp_path / "long-finished").exists()  # the process went on; the provider never returned
    assert "long" not in p.resources()

    p.pulumi("cancel", "--yes", check=False)  # the killed run's lock
    p.config("logging", "none")
    done = p.pulumi("up", "--yes", timeout=120)
    assert (tmp_path / "long-finished").exists(), done.stdout[-2000:]
    assert len(p.resources()["long"]["outputs"]["stdout"]) == 70000


POLICY_PROGRAM = """\
import pulumi
pulumi.export("answer", 42)
"""

POLICY_PACK = """\
import json, os, sys
from pathlib import Path
from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationPolicy

Path(os.environ["CONFORMANCE_OUT"]).write_text(json.dumps({
    "cwd": os.getcwd(), "orig_argv": sys.orig_argv, "stack": os.environ.get("PULUMI_STACK"),
    "project": os.environ.get("PULUMI_PROJECT"), "config": json.loads(os.environ.get("PULUMI_CONFIG") or "{}"),
    "dry_run": os.environ.get("PULUMI_DRY_RUN"), "unbuffered": sys.stdout.write_through,
}))
PolicyPack(name="conformance", enforcement_level=EnforcementLevel.MANDATORY, policies=[
    ResourceValidationPolicy(name="nothing", description="passes", validate=lambda args, report: None),
])
"""


@pytest.mark.skipif(not POLICY_VENV.exists(), reason="policy/venv missing")
def test_a_policy_pack_runs_as_pulumi_policy_from_its_directory_with_the_stacks_config(tmp_path: Path) -> None:
    p = Project(tmp_path, POLICY_PROGRAM)
    p.config("greeting", "hello")
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "PulumiPolicy.yaml").write_text(f"runtime:\n  name: python\n  options:\n    virtualenv: {POLICY_VENV}\n")
    (pack / "__main__.py").write_text(POLICY_PACK)
    out = tmp_path / "pack-saw.json"
    p.env["CONFORMANCE_OUT"] = str(out)
    p.pulumi("preview", "--policy-pack", str(pack))
    saw = json.loads(out.read_text())
    assert Path(saw["cwd"]) == pack
    assert saw["orig_argv"][1:4] == ["-u", "-m", "pulumi.policy"] and saw["orig_argv"][-1] == str(pack)
    assert saw["unbuffered"] is True
    assert (saw["stack"], saw["project"], saw["dry_run"]) == ("dev", "conformance", "true")
    assert saw["config"].get("conformance:greeting") == "hello"


STUBBORN = """\
import os, signal, time
from pathlib import Path

out = Path(os.environ["CONFORMANCE_DIR"])
signal.signal(signal.SIGINT, lambda *_: (out / "got-sigint").write_text(""))
(out / "program-pid").write_text(str(os.getpid()))
for _ in range(600):
    time.sleep(0.1)
(out / "program-finished").write_text("")
"""


def test_an_interrupted_run_sends_the_program_sigint_then_kills_it_after_5_s(tmp_path: Path) -> None:
    """Upstream's Run (sdk/python/cmd/pulumi-language-python/main.go): the program's context ends
    with the request (or on the Cancel RPC, which the engine does not send); then cmd.Cancel sends
    SIGINT and cmd.WaitDelay (5 s) ends in SIGKILL. The request ends when `pulumi` goes away: here
    it is killed outright, as a CI runner kills a job."""
    p = Project(tmp_path, STUBBORN)
    p.env["CONFORMANCE_DIR"] = str(tmp_path)
    proc = p.start("preview")
    try:
        wait_for(tmp_path / "program-pid", within=120)
        pid = int((tmp_path / "program-pid").read_text())
        interrupted = time.monotonic()
        proc.kill()  # pulumi alone; the host and the program live on until the host acts
        wait_for(tmp_path / "got-sigint", within=10)
        while _alive(pid):
            assert time.monotonic() - interrupted < 20, "the program was not killed after its grace"
            time.sleep(0.1)
        ended = time.monotonic() - interrupted
        assert 4.5 <= ended < 15, ended  # the 5 s grace, then SIGKILL
        assert not (tmp_path / "program-finished").exists()
    finally:
        kill_tree(proc.pid)
        proc.communicate()


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
