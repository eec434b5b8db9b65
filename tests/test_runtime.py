"""The steps runtime: classification, retry against a loopback server, run_step, run_tool, masking."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import botocore.exceptions
import psycopg
import psycopg.errors
import pytest
import requests

from steps.runtime import (
    MissingTool,
    PermanentError,
    ToolTimeout,
    TransientError,
    check_response,
    is_transient,
    mask,
    parse_retry_after,
    retry_call,
    run_step,
    run_tool,
)
from tests.support.http_stub import Reply, StubServer, http_stub, webhook  # noqa: F401 - fixtures
from tests.support.steps_env import steps_env  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("steps_env")

REPO = Path(__file__).resolve().parents[1]


def _response(status: int, body: object = None, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode() if body is not None else b""
    response.headers.update(headers or {})
    response.url = "https://api.example.test/x"
    return response


def _http_error(status: int, body: object = None) -> requests.HTTPError:
    return requests.HTTPError(f"{status}", response=_response(status, body))


def _client_error(code: str, status: int) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "UpdateAlias",
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (a reaped-late zombie has already died)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _gone(pid: int, within: float = 10.0) -> bool:
    """True once `pid` has died; a SIGKILLed process takes a moment to go on a loaded machine."""
    deadline = time.monotonic() + within
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# classification --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_http_transient_statuses(status: int) -> None:
    assert is_transient(_http_error(status))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_http_permanent_statuses(status: int) -> None:
    assert not is_transient(_http_error(status))


@pytest.mark.parametrize("code", [10000, 10046, 8000000])
def test_cloudflare_transient_codes_win_over_a_4xx_status(code: int) -> None:
    body = {"success": False, "errors": [{"code": code, "message": "try later"}], "result": None}
    assert is_transient(_http_error(403, body))
    with pytest.raises(TransientError):
        check_response(_response(400, body), what="pages deploy")


def test_cloudflare_other_codes_are_permanent() -> None:
    body = {"success": False, "errors": [{"code": 8000007, "message": "Project not found"}]}
    assert not is_transient(_http_error(404, body))
    with pytest.raises(PermanentError, match="8000007 Project not found"):
        check_response(_response(404, body), what="pages project")


def test_check_response_treats_success_false_with_200_as_failure() -> None:
    body = {"success": False, "errors": [{"code": 10000, "message": "auth"}]}
    with pytest.raises(TransientError):
        check_response(_response(200, body), what="x")
    ok = _response(200, {"success": True, "result": {}})
    assert check_response(ok, what="x") is ok


def test_check_response_carries_retry_after() -> None:
    with pytest.raises(TransientError) as info:
        check_response(_response(429, headers={"Retry-After": "7"}), what="x")
    assert info.value.retry_after == 7.0


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ResourceConflictException", 409),
        ("TooManyRequestsException", 429),
        ("ThrottlingException", 400),
        ("Throttling", 400),
        ("ServiceUnavailable", 503),
        ("SomethingNew", 500),
    ],
)
def test_aws_transient_codes(code: str, status: int) -> None:
    assert is_transient(_client_error(code, status))


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("AccessDeniedException", 403),
        ("AccessDenied", 403),
        ("ValidationException", 400),
        ("ResourceNotFoundException", 404),
    ],
)
def test_aws_permanent_codes(code: str, status: int) -> None:
    assert not is_transient(_client_error(code, status))


def test_aws_endpoint_connection_error_is_transient() -> None:
    assert is_transient(botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))


def test_psycopg_connection_refused_is_transient() -> None:
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(f"postgresql://u:p@127.0.0.1:{_closed_port()}/db", connect_timeout=2)
    assert is_transient(info.value)


def test_psycopg_bad_password_is_permanent() -> None:
    assert not is_transient(psycopg.errors.InvalidPassword("password authentication failed"))


@pytest.mark.parametrize("exc", [TimeoutError(), ConnectionResetError(), requests.ConnectTimeout()])
def test_builtin_network_errors_are_transient(exc: Exception) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [ValueError("bad"), KeyError("k"), PermanentError("no")])
def test_unknown_and_permanent_errors_are_not_retried(exc: Exception) -> None:
    assert not is_transient(exc)


def test_parse_retry_after() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = 1_700_000_000.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now=now) == pytest.approx(30.0)


# retry_call against a loopback server ------------------------------------------------------------


def _get(url: str):
    def call() -> int:
        response = requests.get(url, timeout=2)
        response.raise_for_status()
        return response.status_code

    return call


def test_retry_succeeds_on_the_third_attempt(http_stub: StubServer, capsys) -> None:
    http_stub.script(Reply(503), Reply(503), Reply(200))
    assert retry_call(_get(http_stub.url), what="probe", initial_wait=0.01) == 200
    assert len(http_stub.requests) == 3
    err = capsys.readouterr().err
    assert "probe: attempt 1 of 5 failed: HTTPError: 503" in err
    assert "attempt 2 of 5 failed" in err and "next wait" in err
    assert "attempt 3" not in err


def test_retry_gives_up_after_the_attempts(http_stub: StubServer, capsys) -> None:
    http_stub.script(Reply(503))
    with pytest.raises(requests.HTTPError):
        retry_call(_get(http_stub.url), what="probe", attempts=3, initial_wait=0.01)
    assert len(http_stub.requests) == 3
    assert "attempt 3 of 3 failed" in capsys.readouterr().err


def test_retry_stops_at_the_deadline(http_stub: StubServer, capsys) -> None:
    http_stub.script(Reply(503))
    started = time.monotonic()
    with pytest.raises(requests.HTTPError):
        retry_call(_get(http_stub.url), what="probe", attempts=1000, deadline=0.5, initial_wait=1.0)
    elapsed = time.monotonic() - started
    # Generous upper bound: a loaded CI machine is slow, but 1000 attempts would take far longer.
    assert 0.2 < elapsed < 10
    assert 3 <= len(http_stub.requests) < 1000
    assert "would pass the 0.50s deadline" in capsys.readouterr().err


def test_permanent_status_fails_at_once(http_stub: StubServer, capsys) -> None:
    http_stub.script(Reply(401), Reply(200))
    with pytest.raises(requests.HTTPError):
        retry_call(_get(http_stub.url), what="probe", initial_wait=0.01)
    assert len(http_stub.requests) == 1
    assert "not retrying (permanent)" in capsys.readouterr().err


def test_retry_after_is_honoured(http_stub: StubServer, monkeypatch, capsys) -> None:
    monkeypatch.setenv("STEPS_RETRY_SCALE", "0.1")
    http_stub.script(Reply(503, headers={"Retry-After": "3"}), Reply(200))
    assert retry_call(_get(http_stub.url), what="probe", initial_wait=0.01) == 200
    # Backoff alone would wait ~0.002s; Retry-After 3s scaled by 0.1 is 0.3s.
    assert http_stub.gaps()[0] >= 0.29
    assert "next wait 0.30s" in capsys.readouterr().err


def test_backoff_grows_and_is_capped(http_stub: StubServer, monkeypatch, capsys) -> None:
    monkeypatch.setenv("STEPS_RETRY_SCALE", "1")
    http_stub.script(Reply(503))
    with pytest.raises(requests.HTTPError):
        retry_call(_get(http_stub.url), what="probe", attempts=5, initial_wait=0.05, max_wait=0.15)
    # The waits it chose (its log), not the wall clock between requests, which a loaded machine
    # stretches: 0.05..0.10, 0.10..0.15, then capped at 0.15.
    waits = [float(w) for w in re.findall(r"next wait ([0-9.]+)s", capsys.readouterr().err)]
    assert len(waits) == 4 and len(http_stub.requests) == 5
    assert 0.05 <= waits[0] <= 0.10 and 0.10 <= waits[1] <= 0.15
    assert waits[2:] == [0.15, 0.15]
    # And it did wait them (a lower bound holds on any machine).
    assert all(gap >= wait - 0.005 for gap, wait in zip(http_stub.gaps(), waits))  # waits are logged rounded


# run_step ------------------------------------------------------------------------------------


def test_run_step_success_prints_the_result_on_stdout(capsys) -> None:
    assert run_step("demo", critical=True, body=lambda: {"id": "abc"}) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"id": "abc"}
    assert "step demo: ok" in err


def test_run_step_prints_a_string_result_as_it_is(capsys) -> None:
    # A build prints its content hash; the Command's stdout must be exactly that, not a JSON string.
    assert run_step("demo", critical=True, body=lambda: "ab" * 32) == 0
    assert capsys.readouterr().out == "ab" * 32 + "\n"


def test_critical_failure_alerts_and_exits_1(webhook: StubServer, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ALERT_WEBHOOK_URL", webhook.url + "/hook")
    calls = []

    def body() -> None:
        calls.append(1)
        raise PermanentError("schema app_pr_7 is protected", hint="drop it by hand if you mean it")

    assert run_step("schema", critical=True, body=body) == 1
    out, err = capsys.readouterr()
    assert calls == [1]
    assert out == ""
    assert err.rstrip().splitlines()[-1] == (
        "FAILED schema: schema app_pr_7 is protected — drop it by hand if you mean it"
    )
    [alert] = webhook.requests
    assert alert.json["text"].startswith("[CRITICAL] Deploy step schema failed")


def test_critical_transient_failure_retries_the_body_then_fails(capsys) -> None:
    calls = []

    def body() -> None:
        calls.append(1)
        raise TransientError("lambda update in progress")

    assert run_step("alias", critical=True, body=body, attempts=3, initial_wait=0.01) == 1
    assert len(calls) == 3
    assert "FAILED alias: lambda update in progress — still failing after retrying" in capsys.readouterr().err


def test_non_critical_failure_is_skipped_and_recorded(steps_env, webhook, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ALERT_WEBHOOK_URL", webhook.url + "/hook")

    def body() -> None:
        raise TransientError("Cloudflare 10000")

    assert run_step("prune", critical=False, body=body, attempts=2, initial_wait=0.01) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"skipped": True, "step": "prune", "reason": "Cloudflare 10000"}
    assert "SKIPPED prune: Cloudflare 10000" in err
    assert "FAILED" not in err
    [record] = [json.loads(line) for line in steps_env.skip_log.read_text().splitlines()]
    assert record["step"] == "prune" and record["reason"] == "Cloudflare 10000"
    [alert] = webhook.requests
    assert alert.json["text"].startswith("[WARNING] Deploy step prune skipped")


def test_unexpected_error_is_not_retried_and_shows_its_traceback(capsys) -> None:
    calls = []

    def body() -> None:
        calls.append(1)
        raise KeyError("missing")

    assert run_step("bug", critical=True, body=body) == 1
    err = capsys.readouterr().err
    assert calls == [1]
    assert "Traceback" in err
    assert "FAILED bug: KeyError: 'missing'" in err


def test_step_exits_as_a_real_process(steps_env) -> None:
    code = (
        "import sys\n"
        "from steps.runtime import run_step, PermanentError\n"
        "def body():\n    raise PermanentError('nope')\n"
        "sys.exit(run_step(sys.argv[1], critical=sys.argv[2] == 'yes', body=body))\n"
    )
    critical = subprocess.run(
        [sys.executable, "-c", code, "demo", "yes"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert critical.returncode == 1
    assert "FAILED demo: nope" in critical.stderr
    optional = subprocess.run(
        [sys.executable, "-c", code, "demo", "no"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert optional.returncode == 0
    assert json.loads(optional.stdout)["skipped"] is True
    assert "SKIPPED demo: nope" in optional.stderr


# run_tool ------------------------------------------------------------------------------------


def test_run_tool_streams_and_returns_output(tmp_path, capsys) -> None:
    result = run_tool(
        ["sh", "-c", "echo out; echo err >&2; exit 3"], cwd=tmp_path, timeout=10, what="demo"
    )
    assert result.returncode == 3 and not result.ok
    assert "out\n" in result.output and "err\n" in result.output
    err = capsys.readouterr().err
    assert "  | out" in err and "  | err" in err and "demo: exited with 3" in err


def test_run_tool_stdin_is_not_a_tty_and_is_empty(tmp_path) -> None:
    # `cat` would block forever on an inherited terminal or pipe.
    result = run_tool(
        ["sh", "-c", "cat; test -t 0 && echo tty || echo notty"], cwd=tmp_path, timeout=10, what="stdin"
    )
    assert result.output.strip() == "notty"


def test_run_tool_passes_env_on_top_of_os_environ(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FROM_PARENT", "p")
    result = run_tool(
        ["sh", "-c", 'echo "$FROM_PARENT $EXTRA"'], cwd=tmp_path, env={"EXTRA": "e"}, timeout=10, what="env"
    )
    assert result.output.strip() == "p e"


def test_run_tool_stops_at_a_line_it_is_told_to(tmp_path) -> None:
    # A prompt nobody answers: the tool would sleep out its timeout, its group is killed at once.
    started = time.monotonic()
    result = run_tool(
        ["sh", "-c", "echo working; echo 'Proceed?'; sleep 100 & echo $!; wait"],
        cwd=tmp_path,
        timeout=60,
        what="asks",
        stop_when=lambda line: line.strip() == "Proceed?",
    )
    assert result.stopped_at == "Proceed?"
    assert time.monotonic() - started < 30
    assert "working" in result.output and not result.ok
    for pid in _pids(result.output.split("Proceed?")[1]):
        assert _gone(pid)
    # Without a matching line it runs to its end as always.
    done = run_tool(["sh", "-c", "echo fine"], cwd=tmp_path, timeout=10, what="fine", stop_when=lambda line: "?" in line)
    assert done.ok and done.stopped_at is None


def test_run_tool_missing_executable_is_one_permanent_error(tmp_path) -> None:
    with pytest.raises(MissingTool) as info:
        run_tool([str(tmp_path / "node_modules/.bin/nope")], cwd=tmp_path, timeout=10, what="nope")
    assert "cannot be run (No such file or directory)" in str(info.value)
    assert isinstance(info.value, PermanentError) and not is_transient(info.value)
    assert info.value.hint.startswith("install ")


def _pids(output: str) -> list[int]:
    return [int(p) for p in output.split()]


def test_timeout_kills_the_child_and_its_children(tmp_path) -> None:
    started = time.monotonic()
    with pytest.raises(ToolTimeout) as info:
        run_tool(
            ["sh", "-c", "sleep 100 & echo $$ $!; sleep 100"], cwd=tmp_path, timeout=0.5, what="hang"
        )
    child, grandchild = _pids(info.value.output)
    assert time.monotonic() - started < 5
    assert _gone(child)
    assert _gone(grandchild)
    assert is_transient(info.value)


def test_timeout_kills_with_sigkill_when_sigterm_is_ignored(tmp_path) -> None:
    # An ignored SIGTERM is inherited by the background sleep too.
    with pytest.raises(ToolTimeout) as info:
        run_tool(
            ["sh", "-c", "trap '' TERM; sleep 100 & echo $$ $!; wait"],
            cwd=tmp_path,
            timeout=0.5,
            what="stubborn",
            kill_grace=0.3,
        )
    child, grandchild = _pids(info.value.output)
    assert _gone(child)
    assert _gone(grandchild)


def test_no_orphan_survives_a_tool_that_exits(tmp_path) -> None:
    started = time.monotonic()
    result = run_tool(["sh", "-c", "sleep 100 & echo $!"], cwd=tmp_path, timeout=10, what="leaky")
    assert result.returncode == 0
    assert time.monotonic() - started < 5
    [orphan] = _pids(result.output)
    assert _gone(orphan)


# masking -------------------------------------------------------------------------------------

DSN = "postgresql://app:s3cr3t-pw-9f@db.internal:5432/app"
TOKEN = "cf-token-7d1c2b9e"


def test_secret_printed_by_a_child_appears_only_masked(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DATABASE_URL", DSN)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    result = run_tool(
        ["sh", "-c", 'echo "url=$DATABASE_URL"; echo "token=$CLOUDFLARE_API_TOKEN" >&2; echo pw=s3cr3t-pw-9f'],
        cwd=tmp_path,
        timeout=10,
        what="leak",
    )
    err = capsys.readouterr().err
    assert TOKEN in result.output  # the caller may check it ...
    assert "s3cr3t-pw-9f" not in err and TOKEN not in err  # ... but it is never printed
    assert "token=***" in err and "pw=***" in err and "url=***" in err


def test_secrets_named_in_steps_secret_env_and_passed_to_the_child_are_masked(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("STEPS_SECRET_ENV", "NPM_TOKEN, OTHER")
    run_tool(["sh", "-c", "echo $NPM_TOKEN"], cwd=tmp_path, env={"NPM_TOKEN": "npm_abcdef123"}, timeout=10, what="npm")
    err = capsys.readouterr().err
    assert "npm_abcdef123" not in err and "  | ***" in err


def test_mask_hides_the_password_of_any_dsn() -> None:
    assert mask("connect postgresql://u:pw123@h:5432/db failed") == "connect postgresql://u:***@h:5432/db failed"
    assert mask("see https://example.com/a:b@c") == "see https://example.com/a:b@c"


def test_mask_hides_a_webhook_path_printed_without_its_host(monkeypatch) -> None:
    monkeypatch.setenv("ALERT_WEBHOOK_URL", "https://hooks.example.test/services/T0/B0/XYZsecret")
    assert "XYZsecret" not in mask("Max retries exceeded with url: /services/T0/B0/XYZsecret (Caused by ...)")


def test_a_step_under_github_actions_registers_no_mask(monkeypatch, capsys) -> None:
    # `::add-mask::<secret>` on a Command's stderr would store the secret in state.
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    assert run_step("demo", critical=True, body=lambda: None) == 0
    out, err = capsys.readouterr()
    assert "::add-mask::" not in err and TOKEN not in err + out
    assert out == ""


def test_the_workflow_registers_every_secret_and_its_parts() -> None:
    from workflow.masks import mask_commands

    env = {
        "DATABASE_URL": "postgres://u:p%40ss-word-1@db:5432/app",
        "ALERT_WEBHOOK_URL": "https://hooks.example.test/services/T0/B0/XYZsecretpath",
        "CLOUDFLARE_API_TOKEN": TOKEN,
    }
    lines = mask_commands(env)
    for part in (env["DATABASE_URL"], "p%40ss-word-1", "p@ss-word-1", "/services/T0/B0/XYZsecretpath", TOKEN):
        assert f"::add-mask::{part}" in lines


def test_a_step_process_never_prints_a_secret(steps_env) -> None:
    code = (
        "import sys\n"
        "from steps.runtime import run_step, run_tool\n"
        "def body():\n"
        "    r = run_tool(['sh', '-c', 'echo $DATABASE_URL'], cwd='.', timeout=10, what='echo')\n"
        "    return {'seen': r.output.strip()}\n"
        "sys.exit(run_step('leak', critical=True, body=body))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=steps_env.child_env(DATABASE_URL=DSN),
        capture_output=True,
        text=True,
        timeout=60,
    )
    # A result is never rewritten by masking (that corrupts what the next Command parses): one
    # that carries a secret is refused, and the step fails saying so.
    assert proc.returncode == 1, proc.stderr
    assert "s3cr3t-pw-9f" not in proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert "FAILED leak: the result of step leak contains the value of DATABASE_URL; it was not printed" in proc.stderr
    assert os.environ.get("DATABASE_URL") is None
