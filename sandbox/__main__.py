"""The local sandbox: deploy a stack with the real `pulumi up` into a local cloud, and serve it.

    python -m sandbox up [--stack preview-pr-1] [--base-port 8600] [--app PATH [--config FILE]]
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
stateful resources are protected; `down` unprotects them (nothing in the sandbox is kept).

`--app PATH` deploys another app (its workspace root) instead of examples/app, and `--config FILE`
takes its shape from a stack file (`config:` with `webstack:` keys, as `webstack init` writes them,
or the fixtures' stack-config.yaml); the stack keeps that app for the next `up` until another
`--app` is given. Demo rows are written only for examples/app. The sandbox prints what the steps
warned about and, for an API that answers 5xx, the function's own lines from the local cloud's log.

`down` resumes: a stack already removed is skipped, protected resources are unprotected, a stack
whose destroy still fails is removed anyway (its resources live in the local cloud, which `down`
stops and deletes), and each stack's build directory `.build/<stack>` goes with it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess  # runs the policy pack's pip and pack_config with list argv  # nosec B404
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from core.names import SAFE_STACK_NAME

REPO = Path(__file__).resolve().parents[1]
# Where the sandbox keeps its services' data, state and settings (tests use their own).
ROOT = Path(os.environ.get("WEBSTACK_SANDBOX_DIR") or REPO / ".sandbox").resolve()
DEFAULT_STACK = "preview-pr-1"
DEFAULT_BASE_PORT = 8600
POLICY_VENV = REPO / "policy" / "venv"
EXAMPLE_APP = REPO / "examples" / "app"
PROJECT = "webstack"
# Keys an app's stack file may not set in the sandbox: they are the local cloud's (LocalStack.settings).
CLOUD_KEYS = frozenset({
    "awsRegion", "awsAccountId", "githubRepository", "domain", "cloudflareAccountId", "cloudflareZoneId",
    "pagesProject", "siteSubdomain", "jwksUrl", "jwtIssuer", "jwtAudience", "dnsResolvers", "siteUrl",
})  # fmt: skip
# How many of the function's own log lines a 5xx is shown with.
LOG_LINES_SHOWN = 8


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


def app_choice_file(stack_name: str) -> Path:
    return ROOT / f"app-{stack_name}.json"


def app_overrides(app: Path, config: Path | None) -> dict[str, object]:
    """The settings that point a stack at `app`: its directory, and the app-shape keys of `config`."""
    if not (app / "package.json").is_file():
        raise SandboxError(f"--app {str(app)[:200]} has no package.json: give the app's workspace root (where its lockfile is)")
    values: dict[str, object] = {}
    if config is not None:
        try:
            document = yaml.safe_load(config.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise SandboxError(f"--config {str(config)[:200]} cannot be read as YAML: {str(error)[:200]}") from None
        entries = document.get("config") if isinstance(document, dict) else None
        if not isinstance(entries, dict):
            raise SandboxError(f"--config {str(config)[:200]} has no `config:` mapping (a stack file: config: {{webstack:apiDir: ...}})")
        for key, value in entries.items():
            namespace, _, name = str(key).rpartition(":")
            if namespace not in ("", PROJECT):
                continue  # another provider's key (aws:region): the sandbox sets its own
            if isinstance(value, dict) and "secure" in value:
                raise SandboxError(
                    f"--config sets `{name}` as a secret of another stack (encrypted for it): after `up`, set it in the "
                    f"sandbox with `pulumi config set --secret {name} ...` (see docs/sandbox.md), and leave it out of the file"
                )
            if name in CLOUD_KEYS:
                continue  # the local cloud's own endpoints win
            values[name] = value
    values["appDir"] = str(app)
    return values


def remembered_overrides(stack_name: str, app: Path | None, config: Path | None) -> dict[str, object]:
    """The app a stack deploys: the one `--app` names now (remembered), else the one it was given last."""
    choice = app_choice_file(stack_name)
    if app is None:
        if config is not None:
            raise SandboxError("--config goes with --app (the app whose shape it describes)")
        try:
            return dict(json.loads(choice.read_text()))
        except (OSError, ValueError):
            return {}
    overrides = app_overrides(app.resolve(), config.resolve() if config else None)
    ROOT.mkdir(parents=True, exist_ok=True)
    choice.write_text(json.dumps(overrides, indent=2))
    return overrides


def is_example(overrides: dict[str, object]) -> bool:
    app = overrides.get("appDir")
    return app is None or (REPO / str(app)).resolve() == EXAMPLE_APP.resolve()


def function_log(root: Path, function: str, since: int) -> list[str]:
    """The function's own lines in the local cloud's log since byte `since`: what it printed, its
    errors and the requests it answered with 5xx (where a function URL's 502 comes from)."""
    path = root / "cloud.log"
    try:
        with path.open("rb") as log:
            log.seek(since)
            text = log.read().decode("utf-8", "replace")
    except OSError:
        return []
    mine = []
    for line in text.splitlines():
        said = line.split(" ", 2)[-1] if line[:4].isdigit() else line
        if f"[{function}:" in said or (f"function={function} " in said and ("error" in said or " status=5" in said)):
            mine.append(said)
    return mine[-LOG_LINES_SHOWN:]


def log_size(root: Path) -> int:
    try:
        return (root / "cloud.log").stat().st_size
    except OSError:
        return 0


def show_server_errors(root: Path, api_url: str, health_path: str, function: str, since: int) -> None:
    """GET the API's health route once; on a 5xx, say so with the function's own log lines."""
    import requests

    try:
        answer = requests.get(api_url.rstrip("/") + health_path, timeout=30)
    except requests.RequestException as error:
        say(f"  the API did not answer {health_path}: {type(error).__name__}")
        return
    if answer.status_code < 500:
        return
    say(f"  the API answers {health_path} with {answer.status_code}; the local cloud's log of {function}:")
    for line in function_log(root, function, since) or ["(it logged nothing: the request did not reach the handler)"]:
        say(f"    {line[:300]}")


def up(stack_name: str, base_port: int, app: Path | None = None, config: Path | None = None) -> int:
    from sandbox.cloud import ensure_running
    from sandbox.demo_data import DEMO_SUBJECT, seed
    from sandbox.engine import EngineBuildError, ensure_engine
    from sandbox.progress import PhasesOnDemand, Progress, read_config_values, step_warnings
    from sandbox.stack import PAGES_PROJECT, LocalStack, StackError

    started = time.monotonic()
    with exclusive(ROOT):
        overrides = remembered_overrides(stack_name, app, config)
        say("sandbox: 1/4 the Pulumi engine (built from Go modules on first use; minutes the first time)")
        try:
            ensure_engine()
        except EngineBuildError as error:
            raise SandboxError(f"the engine could not be built: {error}") from None
        ensure_policy_venv()
        say("sandbox: 2/4 the local cloud")
        endpoints = ensure_running(ROOT, base_port=base_port)
        stack = LocalStack(root=ROOT, name=stack_name, endpoints=endpoints)
        say(f"sandbox: 3/4 stack {stack_name} (file backend {stack.backend})" + (
            "" if is_example(overrides) else f", app {overrides['appDir']}"))
        stack.init(**overrides)
        policy_config = ROOT / f"policy-{stack_name}.json"
        pack_config(stack_name, stack.config_file, policy_config)
        say(f"sandbox: 4/4 pulumi up --policy-pack policy ({stack_name})")
        values = read_config_values(stack.config_file)
        progress = Progress(PhasesOnDemand(stack_name, values), say=say)
        function = f"{PROJECT}-api-{stack_name}"
        since = log_size(ROOT)
        events = ROOT / f"events-{stack_name}.jsonl"
        events.unlink(missing_ok=True)
        # --event-log exists only with PULUMI_DEBUG_COMMANDS (as in the workflows).
        stack.extra_env["PULUMI_DEBUG_COMMANDS"] = "true"
        try:
            stack.pulumi(
                "up", "--yes", "--skip-preview", "--policy-pack", "policy", "--policy-pack-config", str(policy_config),
                "--event-log", str(events), on_line=progress.line,
            )  # fmt: skip
        except StackError as error:
            say("\n".join(progress.errors[-10:]) or str(error))
            say_warnings(step_warnings(events))
            lines = function_log(ROOT, function, since)
            if lines:
                say(f"the local cloud's log of {function}:")
                for line in lines:
                    say(f"  {line[:300]}")
            raise SandboxError(
                f"pulumi up of {stack_name} failed (above); the local cloud keeps running: fix and run "
                "`python -m sandbox up` again, or `python -m sandbox down`"
            ) from None
        say(progress.table())
        say_warnings(step_warnings(events))
        outputs = stack.outputs()
        example = is_example(overrides)
        if example:
            seed(stack.database_url, str(outputs["dbSchema"]), DEMO_SUBJECT)
        token = endpoints.token(DEMO_SUBJECT)
        health_path = str(values.get("apiHealthPath") or "/health")
        if outputs.get("apiUrl"):
            show_server_errors(ROOT, str(outputs["apiUrl"]), health_path, function, since)
    say(f"\nsandbox: {stack_name} is up in {time.monotonic() - started:.0f}s (real engine, real steps, local cloud)")
    if outputs.get("siteUrl"):
        say(f"  site:  {outputs['siteUrl']}" + (f"#token={token}" if example else ""))
    say(f"  api:   {outputs.get('apiUrl')}   (GET {health_path.lstrip('/')}" + (", or projects with the token)" if example else ")"))
    say(f"  token: {token}   (a bearer token of the local issuer, valid for an hour)")
    if example:
        say(f"  try:   curl -H 'Authorization: Bearer <token>' {outputs.get('apiUrl')}projects")
    where = f"Pages project {PAGES_PROJECT}, branch {stack.branch}; " if outputs.get("siteUrl") else ""
    say(f"  {where}`python -m sandbox status`, `python -m sandbox down`")
    return 0


def say_warnings(warnings: list[str]) -> None:
    if warnings:
        say("the steps warned:")
        for warning in warnings:
            say(f"  {warning}")


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


def stacks_in(stack: object) -> list[str]:
    """The stacks the sandbox's backend holds (not the config files: a removed stack's may remain)."""
    listed = stack.pulumi("stack", "ls", "--json", check=False)  # type: ignore[attr-defined]
    try:
        start = listed.stdout.index("[")
        return sorted(str(entry["name"]) for entry in json.loads(listed.stdout[start:]))
    except (ValueError, KeyError, TypeError):
        return []


def destroy_stack(stack: object) -> str:
    """Destroy one sandbox stack and remove it, whatever it takes; what happened, in one line."""
    from sandbox.stack import StackError

    name = stack.name  # type: ignore[attr-defined]
    run = stack.pulumi  # type: ignore[attr-defined]
    first = run("destroy", "--yes", check=False, on_line=lambda line: None)
    outcome = "destroyed"
    if first.returncode != 0:
        # prod protects its stateful resources; nothing in the sandbox is worth keeping.
        run("state", "unprotect", "--all", "--yes", check=False)
        again = run("destroy", "--yes", check=False, on_line=lambda line: None)
        if again.returncode != 0:
            tail = [line for line in again.stdout.strip().splitlines() if "error" in line.lower()][-1:] or ["(no error line)"]
            outcome = f"destroy failed ({tail[0].strip()[:200]}); removed anyway, its resources go with the local cloud"
        else:
            outcome = "destroyed (its protected resources unprotected first)"
    try:
        run("stack", "rm", "--yes", "--force", name)
    except StackError as error:
        return f"{outcome}; `stack rm` failed: {str(error).splitlines()[0][:200]}"
    (ROOT / f"Pulumi.{name}.yaml").unlink(missing_ok=True)
    app_choice_file(name).unlink(missing_ok=True)
    shutil.rmtree(REPO / ".build" / name, ignore_errors=True)
    return outcome


def down() -> int:
    from sandbox.cloud import read_endpoints, stop
    from sandbox.stack import LocalStack

    if not ROOT.exists():
        say("sandbox: nothing to remove")
        return 0
    with exclusive(ROOT):
        endpoints = read_endpoints(ROOT)
        if endpoints is not None:
            listing = LocalStack(root=ROOT, name="-", endpoints=endpoints)
            for name in stacks_in(listing):
                say(f"sandbox: pulumi destroy {name}")
                outcome = destroy_stack(LocalStack(root=ROOT, name=name, endpoints=endpoints))
                say(f"sandbox: {name}: {outcome}")
        # A stack whose cloud is gone cannot be destroyed; its build directory still goes.
        for config_file in ROOT.glob("Pulumi.*.yaml"):
            shutil.rmtree(REPO / ".build" / config_file.name.removeprefix("Pulumi.").removesuffix(".yaml"), ignore_errors=True)
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
    up_parser.add_argument("--app", type=Path, help="another app's workspace root to deploy instead of examples/app (remembered)")
    up_parser.add_argument("--config", type=Path, help="with --app: a stack file whose webstack: keys describe the app's shape")
    sub.add_parser("status", help="what runs where, and the stacks' outputs")
    sub.add_parser("down", help="pulumi destroy, stop every service, remove .sandbox/")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            if not SAFE_STACK_NAME.fullmatch(args.stack):
                parser.error(f"--stack {args.stack[:80]!r} is not prod, preview or preview-pr-<N>")
            if args.base_port != 0 and not 1024 <= args.base_port <= 65500:
                parser.error("--base-port must be between 1024 and 65500 (or 0: any free ports)")
            return up(args.stack, args.base_port, args.app, args.config)
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
