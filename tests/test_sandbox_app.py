"""The sandbox takes your app (issue 28 §4): the parts that need no deploy.

- `--app PATH --config FILE` turns an app's stack file into the stack's settings (the local cloud's
  keys stay the sandbox's; a secret of another stack is refused by name);
- what the steps warned about is read from the run's event log, the function's own lines from the
  local cloud's log;
- a port with only TIME-WAIT connections left (a `down` a minute ago) is free; a listening one is not;
- what a `pulumi` run leaves in its session is stopped (pulumi 3.274.1 leaves its language host
  running after "validating stack config": tests/test_sandbox.py shows it on the real CLI).

The end-to-end `up --app` / `down` runs are in tests/test_sandbox.py (engine tier).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sandbox.__main__ as cli
from sandbox.cloud import CloudError, _check_free
from sandbox.progress import step_warnings
from sandbox.stack import end_session, session_members

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "apps" / "no-site"


def test_an_apps_stack_file_becomes_the_stacks_settings(tmp_path: Path):
    overrides = cli.app_overrides(FIXTURE, FIXTURE / "stack-config.yaml")
    assert overrides["appDir"] == str(FIXTURE)
    assert overrides["apiHealthPath"] == "/status" and overrides["apiHealthVersion"] is False and overrides["webDir"] == ""
    config = tmp_path / "stack.yaml"
    config.write_text("config:\n  webstack:apiDir: api\n  webstack:domain: example.com\n  aws:region: eu-west-1\n")
    assert cli.app_overrides(FIXTURE, config) == {"apiDir": "api", "appDir": str(FIXTURE)}  # the cloud's keys win
    config.write_text("config:\n  webstack:apiSecretEnvironment:\n    secure: v1:abc\n")
    with pytest.raises(cli.SandboxError, match="sets `apiSecretEnvironment` as a secret of another stack"):
        cli.app_overrides(FIXTURE, config)
    config.write_text("- not a stack file\n")
    with pytest.raises(cli.SandboxError, match="has no `config:` mapping"):
        cli.app_overrides(FIXTURE, config)
    with pytest.raises(cli.SandboxError, match="has no package.json"):
        cli.app_overrides(tmp_path, None)


def test_the_app_is_remembered_per_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(cli, "ROOT", tmp_path)
    assert cli.remembered_overrides("preview-pr-5", None, None) == {}
    chosen = cli.remembered_overrides("preview-pr-5", FIXTURE, FIXTURE / "stack-config.yaml")
    assert cli.remembered_overrides("preview-pr-5", None, None) == chosen
    assert cli.remembered_overrides("preview-pr-6", None, None) == {}
    assert not cli.is_example(chosen) and cli.is_example({}) and cli.is_example({"appDir": "examples/app"})
    with pytest.raises(cli.SandboxError, match="--config goes with --app"):
        cli.remembered_overrides("preview-pr-5", None, FIXTURE / "stack-config.yaml")


def test_step_warnings_come_from_the_event_log(tmp_path: Path):
    urn = "urn:pulumi:preview-pr-1::webstack::webstack:index:Build$command:local:Command::api-build"
    events = [
        {"diagnosticEvent": {"urn": urn, "message": "step build_lambda: start (critical)\n", "severity": "info", "ephemeral": True}},
        {"diagnosticEvent": {"urn": urn, "message": "warning: build_lambda: x is native code for x64\n", "severity": "info"}},
        {"diagnosticEvent": {"urn": urn, "message": "warning: build_lambda: x is native code for x64\n", "severity": "info"}},
        {"diagnosticEvent": {"message": "warning: using pulumi-resource-aws from $PATH at /x\n", "severity": "warning"}},
        # As the real event log has the engine's own warnings: no prefix.
        {"diagnosticEvent": {"message": "using pulumi-resource-command from $PATH at /x\n", "severity": "warning"}},
        {"diagnosticEvent": {"message": "warning: no runtime database URL: ...\n", "severity": "warning"}},
        {"resourcePreEvent": {}},
    ]
    log = tmp_path / "events.jsonl"
    log.write_text("\n".join(json.dumps(e) for e in events) + "\nnot json\n")
    assert step_warnings(log) == ["api-build: build_lambda: x is native code for x64", "program: no runtime database URL: ..."]
    assert step_warnings(tmp_path / "missing.jsonl") == []


def test_a_5xx_is_shown_with_the_functions_own_log_lines(tmp_path: Path):
    before = "2026-12-07 10:00:00,000 url function=webstack-api-preview-pr-1 qualifier=$LATEST version=$LATEST status=200 ms=3 GET /health\n"
    (tmp_path / "cloud.log").write_text(before)
    since = cli.log_size(tmp_path)
    with (tmp_path / "cloud.log").open("a") as log:
        log.write(
            "2026-12-07 10:00:01,000 [webstack-api-preview-pr-1:$LATEST] Error: Cannot find module '@node-rs/argon2-linux-x64-gnu'\n"
            "2026-12-07 10:00:01,001 error function=webstack-api-preview-pr-1 version=$LATEST: the handler could not load\n"
            "2026-12-07 10:00:01,002 url function=webstack-api-preview-pr-1 qualifier=$LATEST version=$LATEST status=502 ms=40 GET /\n"
            "2026-12-07 10:00:01,003 url function=webstack-api-preview-pr-2 qualifier=$LATEST version=$LATEST status=502 ms=40 GET /\n"
            "2026-12-07 10:00:01,004 url function=webstack-api-preview-pr-1 qualifier=$LATEST version=$LATEST status=200 ms=4 GET /\n"
        )
    assert cli.function_log(tmp_path, "webstack-api-preview-pr-1", since) == [
        "[webstack-api-preview-pr-1:$LATEST] Error: Cannot find module '@node-rs/argon2-linux-x64-gnu'",
        "error function=webstack-api-preview-pr-1 version=$LATEST: the handler could not load",
        "url function=webstack-api-preview-pr-1 qualifier=$LATEST version=$LATEST status=502 ms=40 GET /",
    ]


def _time_wait_port() -> int:
    """A loopback port whose server closed a connection first: only a TIME-WAIT socket is left on it."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the side that closes first keeps the TIME-WAIT
    time.sleep(0.1)
    client.close()
    server.close()
    return port


def test_a_port_left_in_time_wait_is_free_and_a_listening_one_is_not():
    port = _time_wait_port()
    with socket.socket() as plain:  # what the check did before: refused for a minute after `down`
        with pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))
    _check_free(port, "moto")
    with socket.socket() as listening:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        with pytest.raises(CloudError, match=f"port {listening.getsockname()[1]} \\(for moto\\) is taken"):
            _check_free(listening.getsockname()[1], "moto")


def test_what_a_run_left_in_its_session_is_stopped():
    # A leader that starts a child in a process group of its own (as pulumi starts its plugins) and exits.
    script = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], process_group=0)\n"
        "print(child.pid, flush=True)\n"
    )
    leader = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True)
    child = int(leader.stdout.readline())
    leader.wait()
    assert os.getpgid(child) == child and child in session_members(leader.pid)
    assert end_session(leader.pid) == [child]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and child in session_members(leader.pid):
        time.sleep(0.1)
    assert session_members(leader.pid) == []
