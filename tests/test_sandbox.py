"""The local sandbox end to end: `python -m sandbox up/status/down` as a person runs them, a real
browser on the deployed site, and the faults a person meets (a taken port, a service that will not
start, a second `up`, Ctrl-C).

Every outcome is checked on the services: moto (boto3), the Cloudflare stand-in's API, the
PostgreSQL catalog, the processes, and the page as headless Chromium (Debian's) renders it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import psycopg
import pytest
import requests

from core.phases import PHASES
from sandbox.cloud import Endpoints, read_endpoints

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parents[1]
STACK = "preview-pr-901"  # its own .build/ and names: never the developer's sandbox stack
ARTIFACTS = REPO / ".build" / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def sandbox(root: Path, *args: str, timeout: float = 900, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args],
        cwd=REPO,
        env={**os.environ, "WEBSTACK_SANDBOX_DIR": str(root), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _gone(pid: int, within: float = 30) -> bool:
    deadline = time.monotonic() + within
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _alive(pid)


def _processes_under(root: Path) -> list[str]:
    """Command lines of live processes that name the sandbox's directory (services, pulumi)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(root) in cmdline and _alive(int(proc.name)):
            found.append(cmdline)
    return found


def render(url: str) -> str:
    """The page's DOM after its scripts ran (the API call included), as headless Chromium sees it."""
    assert CHROMIUM, "Debian's chromium is not installed (.ci/run installs it)"
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def screenshot(url: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
         "--window-size=1000,800", f"--screenshot={path}", url],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("sandbox")
    yield directory
    sandbox(directory, "down", timeout=600)  # idempotent; the tests below also check it


@pytest.fixture(scope="module")
def deployed(root: Path) -> dict[str, object]:
    result = sandbox(root, "up", "--stack", STACK, "--base-port", "0")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    endpoints = read_endpoints(root)
    assert endpoints is not None
    token = re.search(r"^  token: (\S+)", result.stdout, re.MULTILINE)
    site = re.search(r"^  site:  (http://\S+?)#token=", result.stdout, re.MULTILINE)
    api = re.search(r"^  api:   (http://\S+)", result.stdout, re.MULTILINE)
    assert token and site and api, result.stdout[-3000:]
    return {"out": result.stdout, "endpoints": endpoints, "token": token[1], "site": site[1], "api": api[1]}


def test_up_deploys_every_phase_and_prints_where_it_serves(deployed) -> None:
    out = str(deployed["out"])
    for phase in PHASES:
        assert re.search(rf"^  {phase}\s+[1-9]\d*\s+[\d.]+s$", out, re.MULTILINE), f"{phase} made no change:\n{out[-3000:]}"
    endpoints: Endpoints = deployed["endpoints"]  # type: ignore[assignment]
    aws = boto3.client("lambda", endpoint_url=endpoints.aws, region_name="us-east-1",
                       aws_access_key_id="x", aws_secret_access_key="x")  # fmt: skip
    assert aws.get_function(FunctionName=f"webstack-api-{STACK}")["Configuration"]["Handler"] == "dist/index.handler"
    with psycopg.connect(endpoints.database_url.rsplit("/", 1)[0] + "/app") as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'app_pr_901'")}
    assert {"users", "projects"} <= tables
    deployments = requests.get(
        f"{endpoints.cloudflare_api}/accounts/{endpoints.cloudflare_account}/pages/projects/webstack-site/deployments",
        headers={"Authorization": f"Bearer {endpoints.cloudflare_token}"}, timeout=10,
    ).json()["result"]  # fmt: skip
    assert any(d["deployment_trigger"]["metadata"]["branch"] == "pr-901" for d in deployments)
    # The deployed function is served: /health through the URL the stack exported.
    health = requests.get(f"{deployed['api']}health", timeout=30)
    assert health.status_code == 200 and health.json()["schema"] == "app_pr_901"


def test_the_page_shows_rows_from_postgresql_through_the_api(deployed) -> None:
    url = f"{deployed['site']}#token={deployed['token']}"
    dom = render(url)
    rows = re.findall(r'<tr class="project"><td>([^<]+)</td><td>([^<]+)</td>', dom)
    assert ("Website relaunch", "active") in rows and len(rows) == 3, dom[-2000:]
    assert "API status: ok" in dom
    screenshot(url, ARTIFACTS / "sandbox-site.png")
    assert (ARTIFACTS / "sandbox-site.png").stat().st_size > 10_000


def test_the_page_reports_an_error_for_a_wrong_token(deployed) -> None:
    forged = str(deployed["token"])[:-8] + "AAAAAAAA"  # same header and claims, a broken signature
    dom = render(f"{deployed['site']}#token={forged}")
    assert re.search(r'id="projects" class="err">Could not load your projects: .*401', dom), dom[-2000:]
    assert 'class="project"' not in dom


def test_a_second_up_changes_nothing_and_starts_no_second_cloud(root: Path, deployed) -> None:
    pid = deployed["endpoints"].pid  # type: ignore[attr-defined]
    result = sandbox(root, "up", "--stack", STACK, "--base-port", "0")
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"^  frontend\s+0\s+-$", result.stdout, re.MULTILINE), result.stdout[-3000:]
    assert "step " not in result.stdout  # no Command ran
    again = read_endpoints(root)
    assert again is not None and again.pid == pid


def test_status_names_the_services_and_the_stacks_outputs(root: Path, deployed) -> None:
    result = sandbox(root, "status")
    assert result.returncode == 0
    assert "local cloud running" in result.stdout and f"stack {STACK}:" in result.stdout
    assert str(deployed["site"]) in result.stdout


def test_a_second_command_while_one_runs_is_refused(root: Path, deployed) -> None:
    import fcntl

    with (root / "sandbox.lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write("pid 4242: up")
        lock.flush()
        result = sandbox(root, "up", "--stack", STACK, "--base-port", "0", timeout=120)
    assert result.returncode == 1
    assert result.stdout.strip().splitlines()[-1].startswith("sandbox: another sandbox command is running")


FOREIGN_STACK = "preview-pr-903"
FOREIGN_APP = REPO / "tests" / "fixtures" / "apps" / "pnpm-monorepo"


@pytest.fixture(scope="module")
def foreign(root: Path, deployed) -> subprocess.CompletedProcess[str]:
    """`up --app --config`: an app that is not examples/app, on its first up, in the same local cloud."""
    return sandbox(root, "up", "--stack", FOREIGN_STACK, "--base-port", "0", "--app", str(FOREIGN_APP),
                   "--config", str(FOREIGN_APP / "stack-config.yaml"))  # fmt: skip


def test_up_app_deploys_a_foreign_app_on_its_first_up_and_prints_its_urls(foreign, deployed) -> None:
    out = foreign.stdout
    assert foreign.returncode == 0, out[-4000:] + foreign.stderr[-2000:]
    assert "Traceback" not in out + foreign.stderr  # it used to end seeding the example's users table
    assert f"app {FOREIGN_APP}" in out
    site = re.search(r"^  site:  (http://\S+)$", out, re.MULTILINE)
    api = re.search(r"^  api:   (http://\S+)", out, re.MULTILINE)
    assert site and api, out[-3000:]
    assert "#token=" not in site[1] and "projects" not in out.split("is up in", 1)[1]  # the example's demo is not offered
    page = requests.get(site[1], timeout=30)
    assert page.status_code == 200 and api[1].rstrip("/") in page.text
    health = requests.get(api[1] + "health", timeout=30)
    assert health.status_code == 200 and health.json()["schema"] == "app_pr_903"
    endpoints: Endpoints = deployed["endpoints"]  # type: ignore[assignment]
    with psycopg.connect(endpoints.database_url.rsplit("/", 1)[0] + "/app") as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'app_pr_903'")}
    assert tables == {"accounts", "invoices"}  # the app's own tables, no demo rows of another app's


def test_a_second_up_keeps_the_app_it_was_given(root: Path, foreign) -> None:
    again = sandbox(root, "up", "--stack", FOREIGN_STACK, "--base-port", "0")
    assert again.returncode == 0, again.stdout[-3000:]
    assert f"app {FOREIGN_APP}" in again.stdout
    assert re.search(r"^  backend\s+0\s+-$", again.stdout, re.MULTILINE), again.stdout[-3000:]


def test_down_resumes_past_protected_resources_and_stacks_already_removed(root: Path, deployed, foreign) -> None:
    from sandbox.stack import LocalStack

    endpoints: Endpoints = deployed["endpoints"]  # type: ignore[assignment]
    stack = LocalStack(root=root, name=FOREIGN_STACK, endpoints=endpoints)
    urns = [r["urn"] for r in json.loads(stack.pulumi("stack", "export").stdout)["deployment"]["resources"]
            if r["type"] == "aws:lambda/function:Function"]  # fmt: skip
    stack.pulumi("state", "protect", urns[0], "--yes", "--stack", FOREIGN_STACK)
    # A config file of a stack the backend no longer has (a `down` interrupted after `stack rm`).
    (root / "Pulumi.preview-pr-999.yaml").write_text("config: {}\n")
    (REPO / ".build" / FOREIGN_STACK).mkdir(parents=True, exist_ok=True)
    result = sandbox(root, "down", timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert f"sandbox: {FOREIGN_STACK}: destroyed (its protected resources unprotected first)" in result.stdout
    assert "preview-pr-999" not in result.stdout
    assert not (REPO / ".build" / FOREIGN_STACK).exists() and not (REPO / ".build" / STACK).exists()


def test_down_destroys_the_stack_stops_everything_and_leaves_nothing(root: Path, deployed) -> None:
    endpoints: Endpoints = deployed["endpoints"]  # type: ignore[assignment]
    result = sandbox(root, "down", timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert _gone(endpoints.pid)
    assert not root.exists()
    assert _processes_under(root) == []
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{endpoints.aws}/moto-api/", timeout=5)
    assert sandbox(root, "down").returncode == 0  # idempotent


# --- faults: each one line, and nothing left running --------------------------------------------


def _free_base() -> int:
    """A base port whose whole block of sandbox ports is free right now."""
    from sandbox.cloud import MAX_SITES, SITES

    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if not 1024 <= base <= 65000:
            continue
        try:
            for port in range(base, base + SITES + MAX_SITES):
                with socket.socket() as check:
                    check.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free block of ports")


def test_a_taken_port_is_named_and_nothing_starts(tmp_path: Path) -> None:
    base = _free_base()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 2))  # the Cloudflare stand-in's
        taken.listen()
        result = sandbox(tmp_path, "up", "--stack", STACK, "--base-port", str(base), timeout=600)
    assert result.returncode == 1
    assert f"port {base + 2} (for cloudflare) is taken" in result.stdout.strip().splitlines()[-1]
    assert read_endpoints(tmp_path) is None and _processes_under(tmp_path) == []


def test_a_service_that_fails_to_start_is_named_and_nothing_is_left(tmp_path: Path) -> None:
    # PostgreSQL binaries that cannot start a cluster (a broken install): PG_BINDIR picks them.
    broken = tmp_path / "broken-pg"
    broken.mkdir()
    for tool in ("initdb", "pg_ctl", "postgres"):
        (broken / tool).write_text("#!/bin/sh\necho 'could not create the cluster: disk full' >&2\nexit 1\n")
        (broken / tool).chmod(0o755)
    root = tmp_path / "sandbox"
    result = sandbox(root, "up", "--stack", STACK, "--base-port", "0", env={"PG_BINDIR": str(broken)}, timeout=600)
    assert result.returncode == 1
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("sandbox: the local cloud did not start:") and "initdb failed" in last, last
    assert read_endpoints(root) is None and _processes_under(root) == []


def test_ctrl_c_during_up_stops_cleanly_and_up_then_finishes(tmp_path: Path) -> None:
    env = {**os.environ, "WEBSTACK_SANDBOX_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "up", "--stack", "preview-pr-902", "--base-port", "0"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if "started" in line and "[" in line:  # the deploy is under way
            break
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends: the whole foreground group
    rest, _ = proc.communicate(timeout=300)
    output = "".join(lines) + rest
    assert proc.returncode == 130, output[-3000:]
    assert "interrupted" in output
    assert not [p for p in _processes_under(tmp_path) if "pulumi" in p and "sandbox.cloud" not in p]
    try:
        again = sandbox(tmp_path, "up", "--stack", "preview-pr-902", "--base-port", "0")
        assert again.returncode == 0, again.stdout[-3000:]
    finally:
        assert sandbox(tmp_path, "down", timeout=600).returncode == 0


def test_ports_are_free_again_at_once_after_down(tmp_path: Path) -> None:
    # Connections the services closed first leave TIME-WAIT sockets on their ports for about a
    # minute; the next start on the same ports must not take them for another program.
    from sandbox.cloud import ensure_running, stop

    base = _free_base()
    endpoints = ensure_running(tmp_path / "a", base_port=base)
    for url in (endpoints.control + "/status", endpoints.aws + "/moto-api/", endpoints.jwks_url, endpoints.cloudflare_api + "/zones"):
        requests.get(url, timeout=10, headers={"Connection": "close"})
    stop(tmp_path / "a")
    started = time.monotonic()
    try:
        again = ensure_running(tmp_path / "b", base_port=base)
        assert again.control == endpoints.control and time.monotonic() - started < 60
    finally:
        stop(tmp_path / "b")


def test_a_run_that_fails_validating_stack_config_leaves_no_language_host(tmp_path: Path) -> None:
    from sandbox.cloud import Endpoints as CloudEndpoints
    from sandbox.engine import BIN_DIR, engine_env
    from sandbox.stack import LocalStack, session_members

    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text(
        f"name: lh\nruntime:\n  name: python\n  options:\n    virtualenv: {REPO / '.venv'}\n"
        "config:\n  lh:needed:\n    type: string\n"
    )
    (project / "__main__.py").write_text("import pulumi\n")
    env = {**engine_env(tmp_path / "state", "lh-passphrase", venv=REPO / ".venv"), "PATH": f"{BIN_DIR}:{os.environ['PATH']}"}
    (tmp_path / "state").mkdir()
    subprocess.run([str(BIN_DIR / "pulumi"), "stack", "init", "dev", "--non-interactive"], cwd=project, env=env,
                   capture_output=True, check=True, timeout=120)  # fmt: skip
    # The CLI alone, in a session of its own: it fails and leaves its language host running.
    raw = subprocess.Popen([str(BIN_DIR / "pulumi"), "preview", "--non-interactive"], cwd=project, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    output, _ = raw.communicate(timeout=300)
    assert "validating stack config" in output
    left = session_members(raw.pid)
    try:
        assert any("pulumi-language-python" in Path(f"/proc/{pid}/cmdline").read_text() for pid in left), (
            "pulumi no longer leaves its language host behind: drop sandbox.stack.end_session"
        )
    finally:
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    # The sandbox's runner stops what its run left in the session (its --config-file: the stack's own).
    shutil.copy(project / "Pulumi.dev.yaml", tmp_path / "Pulumi.dev.yaml")
    nowhere = CloudEndpoints(**{f: "" for f in ("control", "database_url", "aws", "cloudflare_api", "cloudflare_token",
                                             "cloudflare_account", "zone_id", "zone_name", "dns", "lambda_base",
                                             "jwks_url", "jwt_issuer", "jwt_audience", "webhook", "alerts")}, pid=0)  # fmt: skip
    stack = LocalStack(root=tmp_path, name="dev", endpoints=nowhere, project_dir=project, passphrase="lh-passphrase")
    before = set(_language_hosts())
    result = stack.pulumi("preview", check=False)
    assert "validating stack config" in result.stdout
    assert set(_language_hosts()) - before == set()


def _language_hosts() -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if str(REPO / "bin" / "pulumi-language-python").encode() in (proc / "cmdline").read_bytes() and _alive(int(proc.name)):
                    found.append(int(proc.name))
    return found
