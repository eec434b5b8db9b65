"""The local sandbox: deploy a stack with the real `pulumi up` into a local cloud, and serve it.

    python -m sandbox up [--stack preview-pr-1] [--base-port 8600]
    python -m sandbox status
    python -m sandbox down

`up` builds the engine when needed, starts the local cloud once (PostgreSQL, moto, the Cloudflare
stand-in, DNS, the Lambda runtime, a JWT issuer, an alert webhook; `sandbox.cloud`), creates the
stack on a file backend under `.sandbox/`, and runs exactly what CI runs: `pulumi up --yes
--policy-pack policy`, showing progress phase by phase. It prints the site URL, the API URL and a
demo bearer token. Running it again is a no-op deploy. `down` runs the real `pulumi destroy`,
removes the stack, stops every service and removes `.sandbox/`.

The default stack is a PR stack (`preview-pr-1`): it is what teams run most, every phase of it is
real (its own schema, function, Pages branch, DNS record, checks), and `pulumi destroy` removes
all of it, so the sandbox leaves nothing behind. `--stack prod` deploys prod's foundation too; its
stateful resources are protected, so `down` then says what to unprotect.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shutil
import signal
import subprocess  # runs the policy pack's pip and pack_config with list argv  # nosec B404
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from core.names import SAFE_STACK_NAME

REPO = Path(__file__).resolve().parents[1]
# Where the sandbox keeps its services' data, state and settings (tests use their own).
ROOT = Path(os.environ.get("WEBSTACK_SANDBOX_DIR") or REPO / ".sandbox").resolve()
DEFAULT_STACK = "preview-pr-1"
DEFAULT_BASE_PORT = 8600
POLICY_VENV = REPO / "policy" / "venv"


class SandboxError(Exception):
    """One line for the person: what went wrong and what to do."""


def say(message: str) -> None:
    print(message, flush=True)


@contextlib.contextmanager
def exclusive(root: Path) -> Iterator[None]:
    """One sandbox command at a time: a second `up` says who holds it instead of racing it."""
    root.mkdir(parents=True, exist_ok=True)
    lock_path = root / "sandbox.lock"
    with lock_path.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise SandboxError(
                f"another sandbox command is running ({holder}): wait for it to finish, then run this again"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}: {' '.join(sys.argv[1:])[:80]}")
        lock.flush()
        try:
            yield
        finally:
            lock.seek(0)
            lock.truncate()


def ensure_policy_venv() -> None:
    """The policy pack runs in a virtualenv of its own (PulumiPolicy.yaml: `virtualenv: venv`)."""
    python = POLICY_VENV / "bin" / "python"
    probe = [str(python), "-c", "import pulumi_policy"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:  # noqa: S603  # nosec B603
        return
    say("sandbox: installing the policy pack's virtualenv (policy/venv) ...")
    subprocess.run([sys.executable, "-m", "venv", str(POLICY_VENV)], check=True)  # noqa: S603  # nosec B603
    install = [str(python), "-m", "pip", "install", "--quiet", "-r", str(REPO / "policy" / "requirements.txt")]
    if subprocess.run(install).returncode != 0:  # noqa: S603  # nosec B603
        raise SandboxError("could not install policy/requirements.txt into policy/venv: see pip's output above")


def pack_config(stack_name: str, config_file: Path, out: Path) -> None:
    argv = [
        sys.executable, "-m", "policy.pack_config", "--stack", stack_name, "--repository", "sandbox/webstack",
        "--config-file", str(config_file), "--output", str(out),
    ]  # fmt: skip
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)  # noqa: S603  # nosec B603
    if result.returncode != 0:
        raise SandboxError(f"the policy pack's config could not be written: {result.stderr.strip()[:300]}")


def up(stack_name: str, base_port: int) -> int:
    from sandbox.cloud import ensure_running
    from sandbox.demo_data import DEMO_SUBJECT, seed
    from sandbox.engine import EngineBuildError, ensure_engine
    from sandbox.progress import Progress, phases_by_name, read_config_values
    from sandbox.stack import PAGES_PROJECT, LocalStack, StackError

    started = time.monotonic()
    with exclusive(ROOT):
        say("sandbox: 1/4 the Pulumi engine (built from Go modules on first use; minutes the first time)")
        try:
            ensure_engine()
        except EngineBuildError as error:
            raise SandboxError(f"the engine could not be built: {error}") from None
        ensure_policy_venv()
        say("sandbox: 2/4 the local cloud")
        endpoints = ensure_running(ROOT, base_port=base_port)
        stack = LocalStack(root=ROOT, name=stack_name, endpoints=endpoints)
        say(f"sandbox: 3/4 stack {stack_name} (file backend {stack.backend})")
        stack.init()
        policy_config = ROOT / f"policy-{stack_name}.json"
        pack_config(stack_name, stack.config_file, policy_config)
        say(f"sandbox: 4/4 pulumi up --policy-pack policy ({stack_name})")
        progress = Progress(phases_by_name(stack_name, read_config_values(stack.config_file)), say=say)
        try:
            stack.pulumi(
                "up", "--yes", "--skip-preview", "--policy-pack", "policy", "--policy-pack-config", str(policy_config),
                on_line=progress.line,
            )  # fmt: skip
        except StackError as error:
            say("\n".join(progress.errors[-10:]) or str(error))
            raise SandboxError(
                f"pulumi up of {stack_name} failed (above); the local cloud keeps running: fix and run "
                "`python -m sandbox up` again, or `python -m sandbox down`"
            ) from None
        say(progress.table())
        outputs = stack.outputs()
        seed(stack.database_url, str(outputs["dbSchema"]), DEMO_SUBJECT)
        token = endpoints.token(DEMO_SUBJECT)
    say(f"\nsandbox: {stack_name} is up in {time.monotonic() - started:.0f}s (real engine, real steps, local cloud)")
    say(f"  site:  {outputs.get('siteUrl')}#token={token}")
    say(f"  api:   {outputs.get('apiUrl')}   (GET health, or projects with the token)")
    say(f"  token: {token}   (a demo token of the local issuer, valid for an hour)")
    say(f"  try:   curl -H 'Authorization: Bearer <token>' {outputs.get('apiUrl')}projects")
    say(f"  Pages project {PAGES_PROJECT}, branch {stack.branch}; `python -m sandbox status`, `python -m sandbox down`")
    return 0


def status() -> int:
    from sandbox.cloud import read_endpoints
    from sandbox.stack import LocalStack

    endpoints = read_endpoints(ROOT)
    if endpoints is None:
        say("sandbox: not running (`python -m sandbox up` starts it)")
        return 0
    say(f"sandbox: local cloud running (pid {endpoints.pid}), state in {ROOT}")
    for label, value in (
        ("PostgreSQL", endpoints.database_url.rsplit("@", 1)[-1]),
        ("AWS (moto)", endpoints.aws),
        ("Cloudflare API", endpoints.cloudflare_api),
        ("DNS", endpoints.dns),
        ("Lambda runtime", endpoints.lambda_base),
        ("JWKS", endpoints.jwks_url),
        ("alert webhook", endpoints.webhook),
    ):
        say(f"  {label:<15} {value}")
    for config_file in sorted(ROOT.glob("Pulumi.*.yaml")):
        name = config_file.name.removeprefix("Pulumi.").removesuffix(".yaml")
        outputs = LocalStack(root=ROOT, name=name, endpoints=endpoints).outputs()
        say(f"  stack {name}: " + (", ".join(f"{k}={v}" for k, v in sorted(outputs.items())) or "no outputs"))
    return 0


def down() -> int:
    from sandbox.cloud import read_endpoints, stop
    from sandbox.stack import LocalStack, StackError

    if not ROOT.exists():
        say("sandbox: nothing to remove")
        return 0
    with exclusive(ROOT):
        endpoints = read_endpoints(ROOT)
        if endpoints is not None:
            for config_file in sorted(ROOT.glob("Pulumi.*.yaml")):
                name = config_file.name.removeprefix("Pulumi.").removesuffix(".yaml")
                stack = LocalStack(root=ROOT, name=name, endpoints=endpoints)
                say(f"sandbox: pulumi destroy {name}")
                try:
                    stack.pulumi("destroy", "--yes", on_line=lambda line: None)
                    stack.pulumi("stack", "rm", "--yes", name)
                except StackError as error:
                    raise SandboxError(
                        f"{error}\nthe local cloud keeps running so nothing is lost: fix the above (a protected "
                        "resource: `pulumi state unprotect`) and run `python -m sandbox down` again"
                    ) from None
        say("sandbox: stopping the local cloud")
        stop(ROOT)
    shutil.rmtree(ROOT, ignore_errors=True)
    say("sandbox: down; nothing left behind")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up", help="deploy a stack into the local cloud (starts it once)")
    up_parser.add_argument("--stack", default=DEFAULT_STACK, help=f"prod, preview or preview-pr-<N> (default {DEFAULT_STACK})")
    up_parser.add_argument(
        "--base-port", type=int, default=DEFAULT_BASE_PORT, help="first of the fixed loopback ports (0: any free ones)"
    )
    sub.add_parser("status", help="what runs where, and the stacks' outputs")
    sub.add_parser("down", help="pulumi destroy, stop every service, remove .sandbox/")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            if not SAFE_STACK_NAME.fullmatch(args.stack):
                parser.error(f"--stack {args.stack[:80]!r} is not prod, preview or preview-pr-<N>")
            if args.base_port != 0 and not 1024 <= args.base_port <= 65500:
                parser.error("--base-port must be between 1024 and 65500 (or 0: any free ports)")
            return up(args.stack, args.base_port)
        if args.command == "status":
            return status()
        return down()
    except KeyboardInterrupt:
        say(
            "\nsandbox: interrupted; pulumi was asked to stop cleanly. Run `python -m sandbox up` to finish "
            "the deploy, or `python -m sandbox down` to remove everything"
        )
        return 130
    except Exception as error:  # noqa: BLE001 - every failure is one line for the person
        from sandbox.cloud import CloudError
        from sandbox.stack import StackError

        if isinstance(error, (SandboxError, CloudError, StackError)):
            say(f"sandbox: {error}")
            return 1
        raise


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    sys.exit(main())
