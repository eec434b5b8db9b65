"""The runtime every deploy step uses: run a step, retry it, run tools, fail or skip clearly.

A step is a module `steps/<name>.py` run as `python -m steps.<name>` with cwd = repo root::

    def main(argv: list[str] | None = None) -> int:
        args = parse(argv)
        return run_step("migrate", critical=True, body=lambda: migrate(args))

    if __name__ == "__main__":
        sys.exit(main())

`run_step(name, critical=..., body=...)` calls `body()` and returns the process exit code:

- before anything else, the secrets of the environment must be maskable (`secret_problems`: none
  shorter than 8 characters, no DSN password with an unencoded `@`/`/`); otherwise the step fails
  (or skips) at once with one line naming the variable, and the body never runs.
- success: the body's return value, if not None, is printed to stdout (the Command's output
  other resources read): a `str` as it is (e.g. a content hash), anything else as one JSON line;
  exit 0. It is printed as it is, never masked by substring (that would corrupt it): a result
  that contains a secret's value is refused instead, and the step fails.
- a transient error (`is_transient`) retries the *whole body* with backoff (`attempts`,
  `deadline`, see `retry_call`); a body that retries finer-grained calls itself with
  `retry_call` should pass `attempts=1` so the retries do not multiply.
- `PermanentError` (or any other non-transient error) fails at once, without retries.
- after the last attempt, a **critical** step sends a critical alert (`steps.alert`), prints
  `FAILED <name>: <what> — <what to do>` and exits 1; a **non-critical** step sends a warning,
  appends a JSON line to the skip log, prints `SKIPPED <name>: ...`, writes
  `{"skipped": true, ...}` on stdout and exits 0.

Errors carry their "what to do" in `hint=` (`TransientError(msg, hint=...)`,
`PermanentError(msg, hint=...)`); a generic one is used otherwise.

`run_tool(argv, cwd=..., timeout=..., what=...)` runs an external tool (npm, drizzle-kit,
wrangler): stdin is /dev/null, stdout+stderr are streamed masked to our stderr line by line, the
child runs in its own process group which is killed whole (SIGTERM, then SIGKILL) on timeout —
`ToolTimeout` is raised — and after the child exits (no orphan survives it). The full output is
returned in `ToolResult` for checking; a non-zero exit is *not* raised: the step decides, because
some tools exit 0 on failure and must be checked by their output anyway.

Errors (from `steps.retry`): raise `TransientError(msg, retry_after=..., hint=...)` for what may
pass, `PermanentError(msg, hint=...)` for what will not; library errors are classified by
`is_transient` (requests/HTTP status, Cloudflare error codes, botocore ClientError codes, psycopg
OperationalError, TimeoutError, ConnectionError). `check_response(resp, what=...)` turns a
`requests` response (Cloudflare envelope included) into the right error. `retry_call(fn, what=...)`
retries one call inside a body.

Logging: `log`, `warn` and `mask` (from `steps.console`) — logs go to stderr, every printed line
is masked. A step never prints `::add-mask::` lines: they would land in state (steps.console).
User input is echoed through `shown` (a bounded, one-line prefix); error lines are bounded too.

Environment read:
    STEPS_SECRET_ENV   extra secret variable names (comma list) to mask
    STEPS_RETRY_SCALE  factor on every retry wait (tests use ~0.01)
    STEPS_SKIP_LOG     where non-critical skips are recorded (default .build/skipped-steps.jsonl)
    GITHUB_ACTIONS, GITHUB_STEP_SUMMARY, ALERT_WEBHOOK_URL  (see steps.alert)
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import signal
import subprocess  # run_tool runs the deploy tools with list argv, no shell  # nosec B404
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from steps import alert
from steps.console import (
    SECRET_ENV_NAMES,
    emit,
    fit_result,
    log,
    mask,
    secret_in,
    secret_names,
    secret_problems,
    shown,
    warn,
)
from steps.retry import (
    PermanentError,
    TransientError,
    check_response,
    describe,
    is_transient,
    parse_retry_after,
    retry_call,
)

__all__ = [
    "SECRET_ENV_NAMES",
    "PermanentError",
    "MissingTool",
    "ToolResult",
    "ToolTimeout",
    "TransientError",
    "check_response",
    "describe",
    "directory_lock",
    "is_transient",
    "log",
    "mask",
    "parse_retry_after",
    "retry_call",
    "run_step",
    "run_tool",
    "secret_names",
    "shown",
    "skip_log_path",
    "warn",
]

DEFAULT_SKIP_LOG = ".build/skipped-steps.jsonl"


class ToolTimeout(TransientError):
    """A tool ran past its timeout and its process group was killed. Transient: a hung npm or
    a lock wait may pass; raise PermanentError from the step if a retry cannot help."""

    def __init__(self, message: str, *, output: str = ""):
        super().__init__(message)
        self.output = output


class MissingTool(PermanentError):
    """The tool's executable does not exist (or is not executable): installing it is the fix."""

    def __init__(self, message: str, *, tool: str, hint: str | None = None):
        super().__init__(message, hint=hint or f"install {tool} (is it in the lockfile, and did the install step run?)")
        self.tool = tool


@dataclass(frozen=True)
class ToolResult:
    """Exit code and combined stdout+stderr (unmasked: check it, never print it raw)."""

    returncode: int
    output: str
    stopped_at: str | None = None
    """The output line at which `stop_when` had the tool killed, if it did."""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _kill_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the child's process group, then SIGKILL whatever is left after `grace` seconds."""
    pgid = proc.pid  # start_new_session made the child the leader of its own group
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + grace
    while time.monotonic() < end:
        # Reap our own child so its zombie does not keep the group "alive" for the probe.
        proc.poll()
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@contextmanager
def directory_lock(directory: Path, what: str) -> Iterator[None]:
    """Holds an exclusive flock on `directory` itself while the block runs.

    For steps that Pulumi may run in parallel on one checkout (two builds both installing the
    workspace, say): the second waits, and says so. Locking the directory leaves no lock file
    behind, and the kernel releases the lock if the process dies.
    """
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"{what}: another process holds {directory}; waiting for it")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def run_tool(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    timeout: float,
    what: str,
    kill_grace: float = 5.0,
    stop_when: Callable[[str], bool] | None = None,
) -> ToolResult:
    """Run `argv` in `cwd` with os.environ plus `env`; stream masked output; kill on timeout.

    Raises ToolTimeout (with `.output`) when `timeout` seconds pass; returns ToolResult otherwise.
    `stop_when(line)` returning True for an output line kills the tool's group at once (a prompt
    that nobody will answer); the result then has `stopped_at` = that line.
    A tool that does not exist fails with MissingTool (one line, no traceback).
    """
    child_env = {**os.environ, **(env or {})}
    log(f"{what}: running {' '.join(shown(a, 200, quote=False) for a in argv)} (timeout {timeout:.0f}s)")
    try:
        proc = subprocess.Popen(  # argv is a list from the step, never a shell string  # nosec B603
            list(argv),
            cwd=cwd,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except (FileNotFoundError, PermissionError) as exc:
        raise MissingTool(
            f"{what}: {shown(argv[0], 200, quote=False)} cannot be run ({exc.strerror})", tool=str(argv[0])
        ) from None
    lines: list[str] = []
    stream = proc.stdout
    stopped: list[str] = []

    def pump() -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            lines.append(line)
            emit(mask(f"  | {line.rstrip()}", child_env))
            if stop_when is not None and not stopped and stop_when(line):
                stopped.append(line.strip())
                # The main thread's wait returns once the group is gone.
                _kill_group(proc, kill_grace)

    reader = threading.Thread(target=pump, name=f"run_tool:{what}", daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        # Also after a normal exit: a tool's leftover children would hold our pipe open and
        # outlive the step (esbuild's service, a stray node), so the whole group goes.
        _kill_group(proc, kill_grace)
        proc.wait()
        reader.join(timeout=kill_grace + 1)
        stream.close()
    output = "".join(lines)
    if timed_out:
        raise ToolTimeout(f"{what} timed out after {timeout:.0f}s and was killed", output=output)
    if stopped:
        log(f"{what}: stopped at {shown(stopped[0], 200, quote=False)}")
        return ToolResult(proc.returncode, output, stopped_at=stopped[0])
    log(f"{what}: exited with {proc.returncode}")
    return ToolResult(proc.returncode, output)


def skip_log_path() -> Path:
    """Where skipped non-critical steps are recorded: $STEPS_SKIP_LOG or .build/skipped-steps.jsonl."""
    return Path(os.environ.get("STEPS_SKIP_LOG") or DEFAULT_SKIP_LOG)


def _record_skip(name: str, reason: str) -> None:
    # `reason` is masked text already; the JSON line itself is never masked by substring.
    record = {
        "step": name,
        "skipped_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "reason": reason,
    }
    path = skip_log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as exc:
        warn(f"could not record the skip of {name} in {path}: {exc}")


def _hint(exc: BaseException) -> str:
    hint = getattr(exc, "hint", None)
    if hint:
        return hint
    if is_transient(exc):
        return "still failing after retrying; check the service's status and re-run the deploy"
    if isinstance(exc, PermanentError):
        return "retrying will not help; fix what it names and re-run the deploy"
    return "unexpected error (traceback above); fix the step or its input and re-run the deploy"


def _alert_safely(severity: str, title: str, body: str, *, masked: bool = True) -> None:
    # The alert is a courtesy: whatever goes wrong in it must not replace the step's own failure.
    try:
        alert.send_alert(severity, title, body, masked=masked)
    except Exception as exc:  # noqa: BLE001 - any alert failure is reported and swallowed
        warn(f"alert could not be sent: {describe(exc)}")


class SecretInResult(PermanentError):
    """A step's result would print a secret's value on stdout (stored in the stack's state)."""


def _result_text(name: str, result: object) -> str | None:
    """The step's stdout: a string as it is (a hash), anything else as one JSON line.

    Checked structurally, never rewritten: every string of the result (keys included, as JSON
    would carry them) is searched for a secret's value; one found fails the step.
    """
    if result is None:
        return None
    text = result if isinstance(result, str) else fit_result(result)
    strings: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, str):
            strings.append(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(key)
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(result if isinstance(result, str) else json.loads(text))
    for value in strings:
        secret = secret_in(value)
        if secret:
            raise SecretInResult(
                f"the result of step {name} contains the value of {secret}; it was not printed",
                hint="a step's stdout is stored in the stack's state and must never carry a secret: fix the step",
            )
    return text


def _print_result(text: str | None) -> None:
    if text is not None:
        emit(text, sys.stdout)


def _give_up(name: str, critical: bool, what: str, todo: str, *, title: str | None = None, masked: bool = True) -> int:
    """After the last attempt: alert and exit 1 (critical), or warn, record the skip and exit 0.

    `masked=False` only for messages built from variable names and numbers (see `secret_problems`):
    masking cannot be trusted then, it would mangle the message.
    """
    say = log if masked else emit
    if critical:
        _alert_safely("critical", title or f"Deploy step {name} failed", f"{what}\nWhat to do: {todo}", masked=masked)
        say(f"FAILED {name}: {what} — {todo}")
        return 1
    if masked:
        what = mask(what)
    _record_skip(name, what)
    _alert_safely(
        "warning",
        f"Deploy step {name} skipped",
        f"{what}\nThe deploy went on without it. What to do: {todo}",
        masked=masked,
    )
    say(f"SKIPPED {name}: {what} — {todo} (non-critical; recorded in {skip_log_path()})")
    _print_result(fit_result({"skipped": True, "step": name, "reason": what}))
    return 0


def run_step(
    name: str,
    *,
    critical: bool,
    body: Callable[[], object],
    attempts: int = 5,
    deadline: float = 300.0,
    initial_wait: float = 1.0,
    max_wait: float = 30.0,
) -> int:
    """Run one step's `body` with retries; return the exit code (see the module docstring)."""
    unsafe = secret_problems()
    if unsafe:
        return _give_up(
            name,
            critical,
            "; ".join(unsafe),
            "fix the secret in the CI job's environment (nothing was done)",
            masked=False,
        )
    log(f"step {name}: start ({'critical' if critical else 'non-critical'})")
    try:
        result = retry_call(
            body,
            what=name,
            attempts=attempts,
            deadline=deadline,
            initial_wait=initial_wait,
            max_wait=max_wait,
        )
        text = _result_text(name, result)
    except Exception as exc:  # noqa: BLE001 - a step turns every failure into an exit code
        if not isinstance(exc, (TransientError, PermanentError)) and not is_transient(exc):
            # A bug: its traceback, each line bounded (an exception may quote a whole input).
            for line in traceback.format_exc().rstrip().splitlines():
                log(shown(line, 500, quote=False))
        # An error may name its own alert ("migration timed out: manual intervention").
        return _give_up(name, critical, describe(exc), _hint(exc), title=getattr(exc, "alert_title", None))
    log(f"step {name}: ok")
    _print_result(text)
    return 0
