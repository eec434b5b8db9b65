"""The local cloud: every service a stack deploys into, on loopback, run by one daemon process.

    python -m sandbox.cloud serve --dir .sandbox [--base-port 8600]    # the daemon (foreground)
    endpoints = ensure_running(Path(".sandbox"))                       # start it once, or find it
    stop(Path(".sandbox"))                                             # stop it and remove its data

What runs, each the real thing where one can run here:
- PostgreSQL (real `postgres`, a throwaway cluster under `<dir>/postgres`);
- `moto_server` for AWS (the stand-in `aws` provider and the steps both talk to it);
- the Cloudflare API stand-in (`sandbox.cloudflare_api`), which wrangler deploys to;
- a DNS server answering from the stand-in's DNS records (what the program's DnsRecord wrote);
- the Lambda runtime serving each deployed function's code from moto under `node`;
- a JWT issuer with a JWKS endpoint, which the deployed API verifies tokens against;
- an alert webhook receiver that appends every alert to `<dir>/alerts.jsonl`;
- one Pages site server per (project, branch), made on request, serving what wrangler uploaded.

The daemon writes `<dir>/cloud.json` (the endpoints) once everything answers, and removes it when
it stops. Its control endpoint (status, sites, tokens, shutdown) answers only this machine's
commands, not a web page the person happens to have open: every request must carry the token the
daemon wrote to `<dir>/control.token` (mode 0600, as is `cloud.json`), name the endpoint's own
loopback address as its `Host` (a DNS-rebound name does not), carry no `Origin` (a browser sends
one with every cross-site POST and fetch) and send a body, if any, as `application/json` (a form
or a `text/plain` POST is what a page can send without asking). See `control_gate`. Ports are fixed from `--base-port` (stable URLs for a person) or all free ones
(`--base-port 0`, for tests); a taken port stops the start with one line naming it.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import json
import os
import secrets
import signal
import socket
import subprocess  # the daemon runs moto_server and itself with fixed argv, no shell  # nosec B404
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from sandbox.http_server import Reply, Request, StubServer

ACCOUNT_ID = "123456789012"  # moto's default account
REGION = "us-east-1"
CLOUDFLARE_ACCOUNT = "0123456789abcdef0123456789abcdef"
ZONE_ID = "5a0dbe5a0dbe5a0dbe5a0dbe5a0dbe5a"
ZONE_NAME = "sandbox.test"
JWT_AUDIENCE = "webstack-sandbox-api"
REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0
POSTGRES_POINTER = "postgres.path"  # where the running cluster's temp dir is, for a stop after a crash
CONTROL_TOKEN = "control.token"  # the control endpoint's bearer token, mode 0600

# Offsets from --base-port; sites take the ports from SITES upwards, one per branch.
OFFSETS = {"postgres": 0, "moto": 1, "cloudflare": 2, "dns": 3, "lambda": 4, "jwt": 5, "webhook": 6, "control": 7}
SITES, MAX_SITES = 10, 20


class CloudError(Exception):
    """The local cloud could not start or be reached; the message says what to do."""


@dataclass
class Endpoints:
    """Where each service of a running local cloud answers (`<dir>/cloud.json`)."""

    pid: int
    control: str
    database_url: str
    aws: str
    cloudflare_api: str
    cloudflare_token: str
    cloudflare_account: str
    zone_id: str
    zone_name: str
    dns: str
    lambda_base: str
    jwks_url: str
    jwt_issuer: str
    jwt_audience: str
    webhook: str
    alerts: str
    sites: dict[str, str] = field(default_factory=dict)
    control_token: str = field(default="", repr=False)
    """Read from CONTROL_TOKEN, never written into cloud.json."""

    @property
    def control_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.control_token}"}

    def published(self) -> dict[str, Any]:
        """What cloud.json holds: everything but the control token."""
        return {k: v for k, v in asdict(self).items() if k != "control_token"}

    def site(self, project: str, branch: str) -> str:
        """The URL a branch's site is served at (the daemon makes its server on first request)."""
        response = requests.post(
            f"{self.control}/sites", json={"project": project, "branch": branch}, headers=self.control_headers, timeout=10
        )
        if response.status_code != 200:
            raise CloudError(f"the local cloud could not serve site {project}/{branch}: {response.text[:200]}")
        return str(response.json()["url"])

    def token(self, subject: str = "sandbox-user") -> str:
        """A bearer token the deployed API accepts, minted by the local issuer."""
        response = requests.post(f"{self.control}/token", json={"sub": subject}, headers=self.control_headers, timeout=10)
        response.raise_for_status()
        return str(response.json()["token"])


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by this user only (0600 from its first byte)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def control_gate(handler: Callable[[Request], Reply], *, token: str, port: int) -> Callable[[Request], Reply]:
    """`handler`, answering only requests from this machine's own commands (module docstring).

    A web page can make the browser send a request to 127.0.0.1 (a form, an image, `fetch` with
    `mode: no-cors`), or rebind a name of its own to 127.0.0.1 so that the browser takes it for the
    page's own origin; it cannot read the token file, nor send a request without an `Origin` or
    with its own host's name out of the `Host` header.
    """
    hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
    expected = f"Bearer {token}".encode()

    def gate(request: Request) -> Reply:
        host = request.headers.get("host", "")
        if host not in hosts:
            return Reply(403, json={"error": f"Host {host[:100]!r} is not this endpoint's loopback address"})
        if "origin" in request.headers:
            return Reply(403, json={"error": "a request with an Origin (from a web page) is not taken"})
        if not hmac.compare_digest(request.headers.get("authorization", "").encode(), expected):
            return Reply(401, json={"error": f"no or a wrong token: send `Authorization: Bearer` with the token in {CONTROL_TOKEN}"})
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.body and content_type != "application/json":
            return Reply(415, json={"error": "the body must be application/json"})
        try:
            return handler(request)
        except ValueError:  # a body that is not JSON
            return Reply(400, json={"error": "the body is not JSON"})

    return gate


def port_for(base: int, name: str) -> int:
    return base + OFFSETS[name] if base else 0


def _check_free(port: int, what: str) -> None:
    """A port another program listens on stops the start; one with only TIME-WAIT connections left
    (a `down` a minute ago) does not: SO_REUSEADDR, as every service here binds with, lets them be."""
    if not port:
        return
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise CloudError(
                f"port {port} (for {what}) is taken by another program: stop it, or start the sandbox on "
                "other ports with --base-port N"
            ) from None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(check: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    raise CloudError(f"{what} did not answer within {timeout:.0f}s")


# --- the daemon -------------------------------------------------------------------------------


class Daemon:
    """Starts every service in order, stops them in reverse; each start is checked by a request."""

    def __init__(self, root: Path, base_port: int):
        self.root = root
        self.base_port = base_port
        self._stops: list[Callable[[], None]] = []
        self._sites: dict[tuple[str, str], Any] = {}
        self._sites_lock = threading.Lock()
        self.stopped = threading.Event()

    def start(self) -> Endpoints:
        from sandbox.cloudflare_api import CloudflareStub
        from sandbox.dns_server import DnsServer
        from sandbox.jwt_issuer import JwtIssuer
        from sandbox.lambda_runtime import LambdaRuntime
        from sandbox.postgres import start_postgres

        for name in OFFSETS:
            _check_free(port_for(self.base_port, name), name)
        self.root.mkdir(parents=True, exist_ok=True)

        log("PostgreSQL")
        _stop_leftover_postgres(self.root)
        # The cluster lives in a temp dir of its own: as root it runs as an unprivileged user, who
        # may not be able to reach a directory under the sandbox's (a private tmp dir, a home).
        postgres = start_postgres(port=port_for(self.base_port, "postgres") or None)
        (self.root / POSTGRES_POINTER).write_text(str(postgres.root))
        self._stops.append(postgres.stop)

        log("moto_server (AWS)")
        aws = self._start_moto(port_for(self.base_port, "moto") or _free_port())

        log("Cloudflare API stand-in")
        token = secrets.token_urlsafe(30)  # 40 characters of [A-Za-z0-9_-], as Cloudflare's API tokens are
        cloudflare = CloudflareStub(
            project=None, token=token, zones={ZONE_ID: ZONE_NAME}, port=port_for(self.base_port, "cloudflare")
        )
        cloudflare.__enter__()
        self._stops.append(lambda: cloudflare.__exit__(None, None, None))
        self.cloudflare = cloudflare

        log("DNS server")
        dns = DnsServer(self._dns_lookup, port=port_for(self.base_port, "dns")).start()
        self._stops.append(dns.stop)

        log("Lambda runtime")
        runtime = LambdaRuntime(aws_endpoint=aws, region=REGION, port=port_for(self.base_port, "lambda"))
        lambda_base = runtime.start()
        self._stops.append(runtime.stop)

        log("JWT issuer")
        issuer = JwtIssuer(port=port_for(self.base_port, "jwt"), audience=JWT_AUDIENCE)
        issuer.start()
        self._stops.append(issuer.stop)
        self.issuer = issuer

        log("alert webhook")
        alerts = self.root / "alerts.jsonl"
        webhook = StubServer(port=port_for(self.base_port, "webhook"))
        webhook.script(lambda request: _record_alert(alerts, request))
        webhook.__enter__()
        self._stops.append(lambda: webhook.__exit__(None, None, None))

        control_token = secrets.token_urlsafe(32)
        write_private(self.root / CONTROL_TOKEN, control_token + "\n")
        control = StubServer(port=port_for(self.base_port, "control"))
        control.script(lambda request: Reply(503, json={"error": "starting"}))
        control.__enter__()
        self._stops.append(lambda: control.__exit__(None, None, None))
        control.script(control_gate(self._control, token=control_token, port=int(control.url.rsplit(":", 1)[1])))

        return Endpoints(
            pid=os.getpid(),
            control=control.url,
            database_url=postgres.url("postgres"),
            aws=aws,
            cloudflare_api=cloudflare.api_base,
            cloudflare_token=token,
            cloudflare_account=CLOUDFLARE_ACCOUNT,
            zone_id=ZONE_ID,
            zone_name=ZONE_NAME,
            dns=dns.address,
            lambda_base=lambda_base.rstrip("/"),
            jwks_url=issuer.jwks_url,
            jwt_issuer=issuer.issuer,
            jwt_audience=JWT_AUDIENCE,
            webhook=webhook.url + "/hooks/sandbox",
            alerts=str(alerts),
            control_token=control_token,
        )

    def _start_moto(self, port: int) -> str:
        from sandbox.moto_server import spawn, terminate

        proc, url = spawn(port, (self.root / "moto.log").open("ab"), repo=REPO)
        self._stops.append(lambda: terminate(proc))
        return url

    def _dns_lookup(self, name: str) -> tuple[str, str] | None:
        for record in self.cloudflare.dns_records(name):
            if record["type"] in ("CNAME", "A", "TXT"):
                return record["type"], str(record["content"]).rstrip(".")
        if name.endswith(".pages.dev"):
            return "A", "127.0.0.1"  # every Pages alias is served on this machine
        return None

    def _control(self, request: Request) -> Reply:
        if request.method == "GET" and request.path == "/status":
            return Reply(200, json={"ok": True, "pid": os.getpid()})
        body = request.json if request.body else {}
        if not isinstance(body, dict):
            return Reply(400, json={"error": "the body must be a JSON object"})
        if request.method == "POST" and request.path == "/sites":
            return Reply(200, json={"url": self._site(str(body.get("project")), str(body.get("branch")))})
        if request.method == "POST" and request.path == "/token":
            subject = str(body.get("sub") or "sandbox-user")
            return Reply(200, json={"token": self.issuer.token(sub=subject)})
        if request.method == "POST" and request.path == "/shutdown":
            self.stopped.set()
            return Reply(200, json={"stopping": True})
        return Reply(404, json={"error": f"no route {request.method} {request.path}"})

    def _site(self, project: str, branch: str) -> str:
        from sandbox.pages_sites import PagesSite

        with self._sites_lock:
            key = (project, branch)
            if key not in self._sites:
                index = len(self._sites)
                if self.base_port and index >= MAX_SITES:
                    raise CloudError(f"at most {MAX_SITES} sites at once")
                port = self.base_port + SITES + index if self.base_port else 0
                site = PagesSite(self.cloudflare, project, branch, port=port).start()
                self._stops.append(site.stop)
                self._sites[key] = site
            return self._sites[key].url

    def stop(self) -> None:
        while self._stops:
            with contextlib.suppress(Exception):
                self._stops.pop()()


def _record_alert(path: Path, request: Request) -> Reply:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"path": request.path, "body": request.json}) + "\n")
    return Reply(200, body="ok")


def _stop_leftover_postgres(root: Path) -> None:
    """A daemon killed with SIGKILL leaves its cluster running: stop it and remove it."""
    from sandbox.postgres import find_bindir

    pointer = root / POSTGRES_POINTER
    try:
        data_root = Path(pointer.read_text().strip())
    except OSError:
        return
    pid_file = data_root / "data" / "postmaster.pid"
    if pid_file.exists():
        run_as = ("runuser", "-u", "pgtest", "--") if os.geteuid() == 0 else ()
        with contextlib.suppress(Exception):
            subprocess.run(  # noqa: S603 - fixed argv  # nosec B603
                [*run_as, str(find_bindir() / "pg_ctl"), "-D", str(data_root / "data"), "stop", "-m", "immediate", "-w"],
                capture_output=True, timeout=30, stdin=subprocess.DEVNULL,
            )  # fmt: skip
    if data_root.exists() and data_root.name.startswith("pgtest-"):
        import shutil

        shutil.rmtree(data_root, ignore_errors=True)
    pointer.unlink(missing_ok=True)


def log(message: str) -> None:
    print(f"local cloud: {message}", file=sys.stderr, flush=True)


def serve(root: Path, base_port: int) -> int:
    """The daemon's main: start, publish the endpoints, wait for a stop, stop."""
    daemon = Daemon(root, base_port)
    state = root / "cloud.json"
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: daemon.stopped.set())
    try:
        endpoints = daemon.start()
    except Exception as exc:  # noqa: BLE001 - every start failure becomes one line and a clean stop
        daemon.stop()
        message = str(exc) if isinstance(exc, CloudError) else f"{type(exc).__name__}: {exc}"
        (root / "cloud.error").write_text(message + "\n")
        log(f"FAILED: {message}")
        return 1
    temporary = state.with_suffix(".tmp")
    write_private(temporary, json.dumps(endpoints.published(), indent=2))
    temporary.replace(state)
    log(f"ready ({state})")
    try:
        daemon.stopped.wait()
    finally:
        log("stopping")
        state.unlink(missing_ok=True)
        (root / CONTROL_TOKEN).unlink(missing_ok=True)
        daemon.stop()
        _stop_leftover_postgres(root)
    return 0


# --- the client -------------------------------------------------------------------------------


def read_endpoints(root: Path) -> Endpoints | None:
    """The endpoints of the cloud running for `root`, or None when none answers."""
    state = root / "cloud.json"
    try:
        endpoints = Endpoints(**json.loads(state.read_text()))
        endpoints.control_token = (root / CONTROL_TOKEN).read_text().strip()
    except (OSError, ValueError, TypeError):
        return None
    try:
        os.kill(endpoints.pid, 0)
        if requests.get(f"{endpoints.control}/status", headers=endpoints.control_headers, timeout=3).ok:
            return endpoints
    except (OSError, requests.RequestException):
        pass
    return None


def ensure_running(root: Path, *, base_port: int = 0, timeout: float = START_TIMEOUT) -> Endpoints:
    """The running cloud for `root`; starts the daemon first when none runs (never a second one)."""
    running = read_endpoints(root)
    if running is not None:
        return running
    root.mkdir(parents=True, exist_ok=True)
    (root / "cloud.json").unlink(missing_ok=True)
    (root / "cloud.error").unlink(missing_ok=True)
    log_file = (root / "cloud.log").open("ab")
    repo = REPO
    proc = subprocess.Popen(  # noqa: S603 - fixed argv  # nosec B603
        [sys.executable, "-m", "sandbox.cloud", "serve", "--dir", str(root), "--base-port", str(base_port)],
        cwd=repo,
        stdout=log_file,
        stderr=log_file,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # outlives the command that started it; one group to stop
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        endpoints = read_endpoints(root)
        if endpoints is not None:
            return endpoints
        if proc.poll() is not None:
            error = root / "cloud.error"
            reason = error.read_text().strip() if error.exists() else _tail(root / "cloud.log")
            raise CloudError(f"the local cloud did not start: {reason}")
        time.sleep(0.2)
    _kill_group(proc.pid)
    raise CloudError(f"the local cloud did not start within {timeout:.0f}s; its log: {root / 'cloud.log'}")


def stop(root: Path) -> bool:
    """Stop the cloud of `root` (idempotent); True if one was running."""
    state = root / "cloud.json"
    try:
        pid = int(json.loads(state.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        _stop_leftover_postgres(root)
        return False
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        _kill_group(pid)
    state.unlink(missing_ok=True)
    _stop_leftover_postgres(root)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _kill_group(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "no log"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.cloud", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="run the daemon in the foreground")
    run.add_argument("--dir", type=Path, required=True)
    run.add_argument("--base-port", type=int, default=0)
    args = parser.parse_args(argv)
    return serve(args.dir.resolve(), args.base_port)


if __name__ == "__main__":
    sys.exit(main())
