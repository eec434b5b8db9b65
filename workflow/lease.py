"""A DynamoDB lease around a command (`pulumi up`, `pulumi destroy`), one per project and stack.

    python -m workflow.lease run --stack S [--wait-seconds W] -- pulumi up --yes --stack S ...
    python -m workflow.lease status --stack S
    python -m workflow.lease break --stack S --yes-break-the-lease [--reason TEXT]

Pulumi's DIY backend locks a stack with an object and fails a second `up` at once; a killed run
leaves that lock behind (docs/facts.md). This lease, in the table `foundation_names(...)["lock_table"]`
(hash key `LockID` = `<project>/<stack>`), is taken before and released after the command:

- **Acquire**: a conditional `PutItem` (`attribute_not_exists(LockID)`) recording the holder: run
  id and URL, actor, commit, host, pid, the command, when it was taken, its `Version` and expiry.
- **Heartbeat**: every `--heartbeat-seconds` the holder renews with a conditional `UpdateItem` on
  its current `Version`, which each renewal replaces. A renewal that finds another version (taken
  over, or deleted) stops the command at once; renewals that keep failing stop it once half the
  lease has passed since the last good one (SIGTERM to its process group, SIGKILL after
  `--kill-grace-seconds`, both well inside the lease). The command never runs without the lease.
- **Release**: a conditional `DeleteItem` on the current version, after the command has exited:
  on success, failure, SIGTERM and SIGINT (forwarded to the command, which is waited for first;
  the heartbeat goes on meanwhile).
- **Waiting**: a second caller polls, printing a line naming the holder, for at most
  `--wait-seconds`; then it fails (exit 75) naming the holder.
- **Takeover**: a holder is dead when the waiter has seen the *same* `Version` for a whole lease
  (`LeaseSeconds`, measured on the waiter's own monotonic clock, so no two hosts' clocks are
  compared). The waiter then takes the lease with a conditional `PutItem` on that version (one of
  several waiters wins), runs `pulumi cancel --yes --stack S` (Pulumi's stale lock), sends a
  warning alert naming the dead run, and runs its command. Pulumi's lock is only cancelled by a
  caller that holds the lease, and a live holder's command has been stopped before its lease can
  look expired, so a live run's lock is never broken.

`status` prints the lease (JSON on stdout); `break` deletes it whatever its state, only with
`--yes-break-the-lease`, and sends a warning alert; it does not touch Pulumi's lock.

Environment: LEASE_TABLE (default: the project's lock table), LEASE_PROJECT (default: the name in
Pulumi.yaml), LEASE_SECONDS, LEASE_HEARTBEAT_SECONDS, LEASE_WAIT_SECONDS, LEASE_POLL_SECONDS
(defaults for the flags), PULUMI (the CLI for `cancel`, default `pulumi`); the holder is described
from GITHUB_RUN_ID, GITHUB_RUN_ATTEMPT, GITHUB_ACTOR, GITHUB_SHA, GITHUB_REPOSITORY,
GITHUB_SERVER_URL. AWS credentials and region as boto3 reads them (AWS_ENDPOINT_URL in tests).

Exit codes of `run`: the command's own (128+N when it died of signal N; 128+N also when this
wrapper was stopped by signal N), 75 when the wait ran out, 76 when the lease was lost under the
command, 1 on any other lease error, 2 on bad arguments.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess  # runs the wrapped command and `pulumi cancel` with list argv  # nosec B404
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import BotoCoreError, ClientError

from core.names import LEASE_KEY_ATTRIBUTE, SAFE_STACK_NAME, foundation_names, lease_key
from steps.alert import send_alert
from steps.args import StepParser, matching, positive_seconds
from steps.console import log, shown, warn

ROOT = Path(__file__).resolve().parents[1]
KEY = LEASE_KEY_ATTRIBUTE
EXIT_WAIT_EXPIRED = 75
EXIT_LEASE_LOST = 76
DEFAULT_LEASE_SECONDS = 120.0
DEFAULT_WAIT_SECONDS = 1800.0
COMMAND_LIMIT = 300
HOLDER_FIELDS = ("RunId", "RunUrl", "Actor", "Commit", "Host", "Pid", "Command", "AcquiredAt")


class LeaseError(RuntimeError):
    """A lease operation failed; the message says which and why."""


class LeaseLost(LeaseError):
    """The lease is no longer ours: taken over or deleted."""


class WaitExpired(LeaseError):
    """The lease stayed held by someone else for the whole wait."""


def project_name(root: Path = ROOT) -> str:
    return str(yaml.safe_load((root / "Pulumi.yaml").read_text(encoding="utf-8"))["name"])


def lock_id(project: str, stack: str) -> str:
    """The item's key. The preview role's policy matches it by prefix (`<project>/preview-pr-*`)."""
    return lease_key(project, stack)


def default_table(project: str) -> str:
    # The lock table's name depends on the project only (not on the account).
    return foundation_names(project, "-")["lock_table"]


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def holder_from_env(command: Sequence[str], env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Who takes the lease: this run (GitHub's variables when present), this host and process."""
    env = os.environ if env is None else env
    run_id = env.get("GITHUB_RUN_ID", "")
    if run_id and env.get("GITHUB_RUN_ATTEMPT"):
        run_id = f"{run_id}/{env['GITHUB_RUN_ATTEMPT']}"
    run_url = ""
    if env.get("GITHUB_REPOSITORY") and env.get("GITHUB_RUN_ID"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        run_url = f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    return {
        "RunId": run_id or "local",
        "RunUrl": run_url,
        "Actor": env.get("GITHUB_ACTOR", "") or env.get("USER", "") or "unknown",
        "Commit": env.get("GITHUB_SHA", "") or "unknown",
        "Host": socket.gethostname(),
        "Pid": str(os.getpid()),
        "Command": shown(" ".join(command), COMMAND_LIMIT, quote=False),
    }


def describe_holder(item: Mapping[str, Any]) -> str:
    """One line naming a lease's holder (for progress lines, errors and alerts)."""
    parts = [f"run {item.get('RunId', '?')}"]
    for label, name in (("by", "Actor"), ("commit", "Commit"), ("on", "Host"), ("since", "AcquiredAt")):
        if item.get(name):
            parts.append(f"{label} {item[name]}")
    if item.get("RunUrl"):
        parts.append(f"({item['RunUrl']})")
    return shown(" ".join(str(p) for p in parts), 400, quote=False)


def _plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item (low-level client shape) as plain values."""
    out: dict[str, Any] = {}
    for name, value in item.items():
        if "S" in value:
            out[name] = value["S"]
        elif "N" in value:
            number = float(value["N"])
            out[name] = int(number) if number.is_integer() else number
    return out


def _is_conditional_failure(exc: BaseException) -> bool:
    response = getattr(exc, "response", None) or {}
    return (response.get("Error") or {}).get("Code") == "ConditionalCheckFailedException"


@dataclass
class LeaseTable:
    """The lease operations on one table (low-level boto3 client, short timeouts)."""

    table: str
    client: Any = None
    request_timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.client is None:
            import boto3
            from botocore.config import Config

            self.client = boto3.client(
                "dynamodb",
                config=Config(
                    connect_timeout=self.request_timeout,
                    read_timeout=self.request_timeout,
                    retries={"max_attempts": 2, "mode": "standard"},
                ),
            )

    def get(self, key: str) -> dict[str, Any] | None:
        response = self.client.get_item(TableName=self.table, Key={KEY: {"S": key}}, ConsistentRead=True)
        item = response.get("Item")
        return _plain(item) if item else None

    def _item(self, key: str, version: str, lease_seconds: float, holder: Mapping[str, str], extra: Mapping[str, str]) -> dict:
        now = time.time()
        item = {
            KEY: {"S": key},
            "Version": {"S": version},
            "LeaseSeconds": {"N": repr(float(lease_seconds))},
            "ExpiresAt": {"N": str(int(now + lease_seconds))},
            "AcquiredAt": {"S": _now_iso()},
            "RenewedAt": {"S": _now_iso()},
        }
        for name, value in {**holder, **extra}.items():
            if value:
                item[name] = {"S": str(value)}
        return item

    def put_new(self, key: str, version: str, lease_seconds: float, holder: Mapping[str, str]) -> bool:
        """Take a free lease; False when someone holds it."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item=self._item(key, version, lease_seconds, holder, {}),
                ConditionExpression="attribute_not_exists(#k)",
                ExpressionAttributeNames={"#k": KEY},
            )
        except Exception as exc:
            if _is_conditional_failure(exc):
                return False
            raise
        return True

    def take_over(self, key: str, old_version: str, version: str, lease_seconds: float, holder: Mapping[str, str], dead: str) -> bool:
        """Replace the lease whose version is `old_version`; False when it changed meanwhile."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item=self._item(key, version, lease_seconds, holder, {"TakenOverFrom": dead}),
                ConditionExpression="#v = :old",
                ExpressionAttributeNames={"#v": "Version"},
                ExpressionAttributeValues={":old": {"S": old_version}},
            )
        except Exception as exc:
            if _is_conditional_failure(exc):
                return False
            raise
        return True

    def renew(self, key: str, version: str, new_version: str, lease_seconds: float) -> None:
        """Move our lease to `new_version`; LeaseLost when it is not ours any more."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={KEY: {"S": key}},
                UpdateExpression="SET #v = :new, ExpiresAt = :exp, RenewedAt = :at",
                ConditionExpression="#v = :old",
                ExpressionAttributeNames={"#v": "Version"},
                ExpressionAttributeValues={
                    ":new": {"S": new_version},
                    ":old": {"S": version},
                    ":exp": {"N": str(int(time.time() + lease_seconds))},
                    ":at": {"S": _now_iso()},
                },
            )
        except Exception as exc:
            if _is_conditional_failure(exc):
                raise LeaseLost(f"the lease {key} was taken over or deleted") from exc
            raise

    def release(self, key: str, version: str) -> bool:
        """Delete our lease; False when it was not ours any more."""
        try:
            self.client.delete_item(
                TableName=self.table,
                Key={KEY: {"S": key}},
                ConditionExpression="#v = :v",
                ExpressionAttributeNames={"#v": "Version"},
                ExpressionAttributeValues={":v": {"S": version}},
            )
        except Exception as exc:
            if _is_conditional_failure(exc):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.delete_item(TableName=self.table, Key={KEY: {"S": key}})


@dataclass
class Timing:
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    heartbeat_seconds: float | None = None  # default: a quarter of the lease
    wait_seconds: float = DEFAULT_WAIT_SECONDS
    poll_seconds: float | None = None  # default: a tenth of the lease, 1..10 s
    kill_grace_seconds: float | None = None  # default: a fifth of the lease

    def __post_init__(self) -> None:
        lease = self.lease_seconds
        if self.heartbeat_seconds is None:
            self.heartbeat_seconds = lease / 4
        if self.poll_seconds is None:
            self.poll_seconds = min(10.0, max(1.0, lease / 10))
        if self.kill_grace_seconds is None:
            self.kill_grace_seconds = lease / 5
        if self.heartbeat_seconds >= lease / 2:
            raise LeaseError(f"the heartbeat ({self.heartbeat_seconds:g}s) must be under half the lease ({lease:g}s)")
        if self.kill_grace_seconds > lease / 4:
            raise LeaseError(f"the kill grace ({self.kill_grace_seconds:g}s) must be at most a quarter of the lease ({lease:g}s)")


@dataclass
class Lease:
    """Our hold on one key, until `release`."""

    table: LeaseTable
    key: str
    version: str
    timing: Timing
    last_renewed: float = field(default_factory=time.monotonic)  # monotonic, taken before the request
    lost: str = ""

    def renew(self) -> None:
        started = time.monotonic()
        new_version = uuid.uuid4().hex
        self.table.renew(self.key, self.version, new_version, self.timing.lease_seconds)
        self.version = new_version
        self.last_renewed = started

    def release(self) -> None:
        if self.lost:
            return
        try:
            if self.table.release(self.key, self.version):
                log(f"lease: released {self.key}")
            else:
                warn(f"lease: {self.key} was no longer ours when released (taken over or broken)")
        except Exception as exc:  # noqa: BLE001 - the command's result matters more
            warn(f"lease: could not release {self.key} ({exc}); it expires in {self.timing.lease_seconds:g}s")


def run_cancel(pulumi: str, stack: str, env: Mapping[str, str] | None = None) -> None:
    """`pulumi cancel` for a stack whose lease holder died (a missing stack is nothing to cancel)."""
    argv = [pulumi, "cancel", "--yes", "--non-interactive", "--stack", stack]
    log(f"lease: clearing Pulumi's lock of the dead run: {' '.join(argv)}")
    try:
        proc = subprocess.run(  # noqa: S603 - list argv  # nosec B603
            argv, capture_output=True, text=True, timeout=300, env=dict(os.environ if env is None else env),
            stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LeaseError(f"`pulumi cancel --stack {stack}` could not run: {exc}") from exc
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode == 0:
        log(f"lease: pulumi cancel: {shown(output, 300, quote=False)}")
        return
    if "no stack named" in output:
        log(f"lease: {stack} does not exist: no Pulumi lock to clear")
        return
    raise LeaseError(f"`pulumi cancel --stack {stack}` exited with {proc.returncode}: {shown(output, 500, quote=False)}")


def acquire(
    table: LeaseTable,
    key: str,
    stack: str,
    holder: Mapping[str, str],
    timing: Timing,
    *,
    on_takeover: Callable[[dict[str, Any]], None],
    sleep: Callable[[float], None] = time.sleep,
) -> Lease:
    """Take the lease, waiting for a live holder and taking over from a dead one."""
    started = time.monotonic()
    seen_version, seen_since = None, 0.0
    last_note = -1e9
    while True:
        version = uuid.uuid4().hex
        before = time.monotonic()
        if table.put_new(key, version, timing.lease_seconds, holder):
            log(f"lease: acquired {key} for {timing.lease_seconds:g}s")
            return Lease(table, key, version, timing, last_renewed=before)
        current = table.get(key)
        now = time.monotonic()
        if current is None:
            continue  # released between the two calls: try again at once
        if current.get("Version") != seen_version:
            seen_version, seen_since = current.get("Version"), now
        # Dead: the same version for a whole lease of its own, on this clock.
        its_lease = float(current.get("LeaseSeconds") or timing.lease_seconds)
        if now - seen_since >= its_lease:
            if table.take_over(key, str(seen_version), version, timing.lease_seconds, holder, describe_holder(current)):
                lease = Lease(table, key, version, timing, last_renewed=before)
                log(f"lease: took over {key} from a dead holder: {describe_holder(current)}")
                try:
                    on_takeover(current)
                except BaseException:
                    lease.release()
                    raise
                return lease
            continue  # another waiter took it first, or the holder came back: look again
        waited = now - started
        if waited >= timing.wait_seconds:
            raise WaitExpired(
                f"lease {key} is still held after waiting {waited:.0f}s, by {describe_holder(current)}; "
                f"if that run is dead its lease expires on its own (at most {its_lease:g}s without a heartbeat), "
                f"see `python -m workflow.lease status --stack {stack}`"
            )
        if now - last_note >= max(timing.poll_seconds, 15.0) or last_note < 0:
            log(
                f"lease: {key} is held by {describe_holder(current)}; waiting "
                f"({waited:.0f}s of at most {timing.wait_seconds:g}s)"
            )
            last_note = now
        sleep(min(timing.poll_seconds, max(0.05, timing.wait_seconds - waited)))


class Supervisor:
    """Runs the command under the lease: heartbeat, signals, stop on a lost lease."""

    def __init__(self, lease: Lease, command: Sequence[str]):
        self.lease = lease
        self.command = list(command)
        self.proc: subprocess.Popen[bytes] | None = None
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.stopping_for = ""  # why we stop the command (lost lease)
        self.signalled = 0  # the signal this wrapper got

    def _group_signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    def _stop_command(self, why: str) -> None:
        with self.lock:
            if self.stopping_for:
                return
            self.stopping_for = why
        warn(f"lease: {why}; stopping the command (it must not run without the lease)")
        self._group_signal(signal.SIGTERM)
        grace = self.lease.timing.kill_grace_seconds
        killer = threading.Timer(grace, self._group_signal, args=(signal.SIGKILL,))
        killer.daemon = True
        killer.start()

    def _heartbeat(self) -> None:
        timing = self.lease.timing
        while not self.stop.wait(timing.heartbeat_seconds):
            try:
                self.lease.renew()
            except LeaseLost as exc:
                self.lease.lost = str(exc)
                self._stop_command(str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - a failed renewal is retried until the deadline
                since = time.monotonic() - self.lease.last_renewed
                warn(f"lease: renewal of {self.lease.key} failed ({exc}); last renewed {since:.0f}s ago")
                if since >= timing.lease_seconds / 2:
                    self._stop_command(f"the lease {self.lease.key} could not be renewed for {since:.0f}s")
                    return

    def _on_signal(self, signum: int, _frame: Any) -> None:
        # Forward to the command and wait for it: the lease is released only after it exited.
        self.signalled = self.signalled or signum
        self._group_signal(signum)

    def run(self) -> int:
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        beat = threading.Thread(target=self._heartbeat, name="lease-heartbeat", daemon=True)
        try:
            try:
                # Its own process group: a stop reaches everything it started.
                self.proc = subprocess.Popen(self.command, start_new_session=True)  # noqa: S603  # nosec B603
            except OSError as exc:
                raise LeaseError(f"could not start {shown(self.command[0])}: {exc}") from exc
            beat.start()
            while True:
                try:
                    code = self.proc.wait()
                    break
                except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for clarity
                    continue
        finally:
            self.stop.set()
            if beat.is_alive():
                beat.join(timeout=self.lease.timing.lease_seconds)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        if code < 0:
            code = 128 - code
        if self.stopping_for:
            log(f"lease: the command was stopped (exit {code}): {self.stopping_for}")
            return EXIT_LEASE_LOST
        if self.signalled:
            return 128 + self.signalled
        return code


def _takeover_actions(stack: str, key: str, pulumi: str) -> Callable[[dict[str, Any]], None]:
    def act(dead: dict[str, Any]) -> None:
        if pulumi:
            run_cancel(pulumi, stack)
            cleared = f"Its Pulumi lock was cleared with `pulumi cancel --stack {stack}`"
        else:
            cleared = "Its Pulumi lock was left to the new run (run without the Pulumi CLI: --pulumi '')"
        send_alert(
            "warning",
            f"lease of {key} taken over from a dead run",
            f"The run holding the lease of {stack} stopped renewing it for a whole lease "
            f"({dead.get('LeaseSeconds', '?')}s) and is taken to be dead: {describe_holder(dead)}. "
            f"{cleared} and a new run continues. "
            "Check that run's log: what it changed before it died may need a `pulumi refresh`.",
        )

    return act


def _env_seconds(name: str, default: float | None) -> float | None:
    value = os.environ.get(name)
    return positive_seconds(value) if value else default


def build_parser() -> StepParser:
    parser = StepParser(prog="python -m workflow.lease", description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=os.environ.get("LEASE_TABLE"), help="the lock table (default: the project's)")
    parser.add_argument("--project", default=os.environ.get("LEASE_PROJECT"), help="default: the name in Pulumi.yaml")
    sub = parser.add_subparsers(dest="action", required=True)
    stack_arg = {"type": matching(SAFE_STACK_NAME, "stack name"), "required": True}

    run = sub.add_parser("run", help="run a command under the stack's lease")
    run.add_argument("--stack", **stack_arg)
    run.add_argument("--lease-seconds", type=positive_seconds, default=None)
    run.add_argument("--heartbeat-seconds", type=positive_seconds, default=None)
    run.add_argument("--wait-seconds", type=positive_seconds, default=None)
    run.add_argument("--poll-seconds", type=positive_seconds, default=None)
    run.add_argument("--kill-grace-seconds", type=positive_seconds, default=None)
    run.add_argument(
        "--pulumi",
        default=os.environ.get("PULUMI", "pulumi"),
        help="the CLI that runs `cancel` after a takeover; '' for a command that never runs Pulumi (the "
        "sweeper's teardown removes the stack's objects, its lock among them, without the CLI)",
    )
    run.add_argument("command", nargs="+", help="the command, after `--`")

    status = sub.add_parser("status", help="print the stack's lease (JSON)")
    status.add_argument("--stack", **stack_arg)

    brk = sub.add_parser("break", help="delete the stack's lease whoever holds it (alerts)")
    brk.add_argument("--stack", **stack_arg)
    brk.add_argument("--yes-break-the-lease", action="store_true", help="required: the holder may be alive")
    brk.add_argument("--reason", default="", help="said in the alert")
    return parser


def main(argv: list[str] | None = None, *, table_client: Any = None) -> int:
    args = build_parser().parse_args(argv)
    project = args.project or project_name()
    key = lock_id(project, args.stack)
    try:
        table = LeaseTable(args.table or default_table(project), client=table_client)
        if args.action == "status":
            item = table.get(key)
            print(json.dumps({"key": key, "held": item is not None, "lease": item}, indent=2, sort_keys=True))
            if item:
                log(f"lease: {key} is held by {describe_holder(item)}; expires at {item.get('ExpiresAt')} (epoch) unless renewed")
            else:
                log(f"lease: {key} is free")
            return 0
        if args.action == "break":
            if not args.yes_break_the_lease:
                print("lease break: refused without --yes-break-the-lease (the holder may be alive)", file=sys.stderr)
                return 2
            item = table.get(key)
            if item is None:
                log(f"lease: {key} is free: nothing to break")
                return 0
            table.delete(key)
            who = os.environ.get("GITHUB_ACTOR") or os.environ.get("USER") or "unknown"
            send_alert(
                "warning",
                f"lease of {key} broken by hand",
                f"{who} broke the lease of {args.stack} held by {describe_holder(item)}"
                + (f". Reason: {shown(args.reason, 300, quote=False)}" if args.reason else "")
                + ". If that run is still alive its heartbeat now fails and stops it.",
            )
            log(f"lease: broke {key} (was held by {describe_holder(item)})")
            return 0
        command = list(args.command)
        if command and command[0] == "--":
            command = command[1:]
        timing = Timing(
            lease_seconds=args.lease_seconds or _env_seconds("LEASE_SECONDS", DEFAULT_LEASE_SECONDS),
            heartbeat_seconds=args.heartbeat_seconds or _env_seconds("LEASE_HEARTBEAT_SECONDS", None),
            wait_seconds=args.wait_seconds or _env_seconds("LEASE_WAIT_SECONDS", DEFAULT_WAIT_SECONDS),
            poll_seconds=args.poll_seconds or _env_seconds("LEASE_POLL_SECONDS", None),
            kill_grace_seconds=args.kill_grace_seconds,
        )
        lease = acquire(
            table, key, args.stack, holder_from_env(command), timing,
            on_takeover=_takeover_actions(args.stack, key, args.pulumi),
        )  # fmt: skip
        try:
            code = Supervisor(lease, command).run()
        finally:
            lease.release()
        return code
    except WaitExpired as exc:
        print(f"lease: {exc}", file=sys.stderr, flush=True)
        return EXIT_WAIT_EXPIRED
    except LeaseError as exc:
        print(f"lease: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("lease: interrupted while waiting", file=sys.stderr, flush=True)
        return 130
    except (BotoCoreError, ClientError) as exc:
        # No region, no credentials, an unreachable endpoint, AccessDenied on the table: one line.
        print(
            f"lease: the lock table cannot be used ({type(exc).__name__}: {shown(str(exc), 300, quote=False)}); "
            "check the job's AWS credentials and region (AWS_REGION) and the deploy role's lease grant",
            file=sys.stderr,
            flush=True,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
