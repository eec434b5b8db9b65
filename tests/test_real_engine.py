"""The real-engine tier: the real Pulumi CLI (`bin/pulumi`) deploys the program into the local cloud.

One local cloud (sandbox.cloud) per module; the stacks live on one file backend under the module's
tmp dir and are reused in order, each test naming what it needs from the ones before it:

    01  prod: `stack init`, `up` with the policy pack; every phase runs, in order
    02  prod: a second `up` and `preview --expect-no-changes` change nothing, run no Command
    03  prod: a web-only change re-runs exactly the site build, its deploy and the site check
    03b prod: SIGINT to `pulumi` during the migration, then during the site build (upstream's
        Cancel kills the running command): the services stay consistent, the next `up` completes
    03c prod on a fresh runner (no build output, no node_modules): `up` with nothing changed,
        after `refresh` a memory-only change of the function, and a change that re-runs only the
        Pages deploy; each completes from the published builds and serves the right code
    04  preview-pr-7 and preview-pr-8 (`stack select --create`) side by side
    04b preview-pr-9: a fixture app unlike examples/app (tests/fixtures/apps/esm-api) deploys from its
        stack config alone, then is destroyed
    04d preview-pr-7: `up --replace` of the schema, the Pages deploy and the branch cleanup, then an
        update of each (their environment changed): nothing live removed, nothing leaked
    05  preview-pr-7: destroy, destroy again, `stack rm`, then the cleanup workflow's absent path
    07a prod: a migration that needs data loss stops the run, alerts; the fix completes
    07b prod: a bundle that throws on load fails its pre-traffic check: `stable` stays on the old
        version (which still serves), the alert quotes the error and log, nothing later runs; the
        fix deploys with a request loop through the function URL that sees no failure
    06  prod: rollback with `pinnedVersion` (no build), and back to the newest
    06c prod: with a 10% canary, a version failing one /health in five is rolled back to 0% with an
        alert; a good one reaches 100%
    08  preview-pr-8: `up` killed with SIGKILL leaves a lock; `pulumi cancel` and a re-run succeed;
        the interrupted create stays pending until `refresh --clear-pending-creates`, which changes nothing
    09  no secret value anywhere under the backend (state, backups, history, the engine's home)
    10  a throwaway copy of the project whose buckets are unprotected fails the policy pack

Every outcome is checked on the services themselves: the PostgreSQL catalog (psycopg), moto
(boto3), the Cloudflare stand-in's HTTP API, the deployed API and sites over HTTP, the alert
webhook's log and the files under the backend. The engine's own record (its `--json` event
stream and `stack export`) is used for what only it knows: which resource it ran, and when.

The app is a copy of examples/app per stack family (prod, the PRs) so the tests can change it.
Its node_modules is examples/app's, hard-linked (a symlink does not do: Turbopack resolves `next`
only inside the workspace root, and fails the site build), install marker included, so
`steps.install` skips `npm ci` (the marker is checked before anything runs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
import requests
import yaml
from botocore.exceptions import ClientError

from components.build import BUILD_TYPE
from core.phases import PHASE_TYPE
from sandbox.cloud import Endpoints, ensure_running, stop
from sandbox.engine import BIN_DIR
from sandbox.stack import PAGES_PROJECT, REPO, LocalStack

POLICY_PACK = REPO / "policy"

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(not (BIN_DIR / "pulumi").exists(), reason="bin/pulumi not built (python -m sandbox.engine build)"),
    pytest.mark.skipif(
        not (POLICY_PACK / "venv").exists(),
        reason="policy/venv missing (python3 -m venv policy/venv && policy/venv/bin/pip install -r policy/requirements.txt)",
    ),
]

EXAMPLE_APP = REPO / "examples" / "app"
# Build outputs and installed dependencies stay behind when the app is copied (source_hash ignores them too).
APP_COPY_IGNORE = shutil.ignore_patterns(
    "node_modules", ".next", "out", "dist", ".turbo", ".wrangler", "*.tsbuildinfo", "next-env.d.ts", "drizzle"
)
CMD = "command:local:Command::"
SITE_CHANGE = {f"{CMD}site-build", f"{CMD}site-deploy", f"{CMD}checks-site-health"}
BUILD_COMMANDS = {f"{CMD}app-install", f"{CMD}api-build", f"{CMD}site-build"}
# Which phases a phase waits for (docs/design.md): builds are exempt, they start when their inputs exist.
PHASE_WAITS = {
    "database": ("infrastructure", "dependencies"),
    "backend": ("database",),
    "frontend": ("backend",),
    "checks": ("frontend",),
}
APP_TABLES = {"users", "projects", "project_members"}

# Sentinel secrets: trust auth accepts any password, the webhook receiver any path.
SENTINEL_PASSWORD = "pw" + secrets.token_hex(12)
SENTINEL_HOOK = "hook" + secrets.token_hex(12)


# --- the engine's record of a run ------------------------------------------------------------------


def resource_key(urn: str) -> str:
    """`type::name` of a URN (its own type, not its parents'); "" for no URN."""
    if urn.count("::") < 3:
        return ""
    _, _, types, name = urn.split("::", 3)
    return f"{types.split('$')[-1]}::{name}"


@dataclass
class Run:
    """One `pulumi up/preview --json`: its exit code, output, preview document and engine events."""

    args: tuple[str, ...]
    code: int
    output: str
    events: list[dict[str, Any]]
    document: dict[str, Any] | None

    @classmethod
    def parse(cls, args: tuple[str, ...], code: int, output: str) -> Run:
        events, prefix = [], []
        for line in output.splitlines():
            if line.startswith('{"sequence"'):
                events.append(json.loads(line))
            elif not events:
                prefix.append(line)
        document = None
        text = "\n".join(prefix).strip()
        if text.startswith("{"):
            try:
                document = json.loads(text)
            except ValueError:
                document = None
        return cls(args, code, output, events, document)

    def tail(self, lines: int = 40) -> str:
        errors = [
            e["diagnosticEvent"]["message"].strip()
            for e in self.events
            if "diagnosticEvent" in e and e["diagnosticEvent"].get("severity") == "error"
        ]
        text = "\n".join(errors[-lines:]) or "\n".join(self.output.strip().splitlines()[-lines:])
        return f"pulumi {' '.join(self.args[:1])} exited {self.code}:\n{text}"

    def of(self, kind: str) -> Iterator[tuple[int, dict[str, Any]]]:
        for event in self.events:
            if kind in event:
                yield event["sequence"], event[kind]

    def ops(self) -> dict[str, set[str]]:
        """key -> every step op the engine started for it, `same` left out."""
        found: dict[str, set[str]] = {}
        for _, pre in self.of("resourcePreEvent"):
            meta = pre["metadata"]
            if meta["op"] != "same":
                found.setdefault(resource_key(meta["urn"]), set()).add(meta["op"])
        return found

    def started(self) -> dict[str, int]:
        """URN -> sequence number of the engine's first non-`same` step for it."""
        found: dict[str, int] = {}
        for seq, pre in self.of("resourcePreEvent"):
            meta = pre["metadata"]
            if meta["op"] != "same":
                found.setdefault(meta["urn"], seq)
        return found

    def finished(self) -> dict[str, int]:
        """URN -> sequence number of the engine's last completed step for it."""
        return {out["metadata"]["urn"]: seq for seq, out in self.of("resOutputsEvent")}

    def failed(self) -> set[str]:
        return {resource_key(f["metadata"]["urn"]) for _, f in self.of("resOpFailedEvent")}

    def messages(self, key: str | None = None) -> list[str]:
        """What the Commands printed (their steps' log lines), optionally of one resource."""
        return [
            d["message"].strip()
            for _, d in self.of("diagnosticEvent")
            if d.get("severity") != "debug" and (key is None or resource_key(d.get("urn") or "") == key)
        ]

    def step_starts(self) -> list[str]:
        return [m for m in self.messages() if re.fullmatch(r"step \S+( \S+)?: start \((non-)?critical\)", m)]

    def summary(self) -> dict[str, Any]:
        summaries = [s for _, s in self.of("summaryEvent")]
        assert summaries, self.tail()
        return summaries[-1]

    def policy_packs(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for _, s in self.of("policyAnalyzeSummaryEvent"):
            found.setdefault(s["policyPackName"], set()).update(s.get("passed") or [])
        return found


# --- the services ----------------------------------------------------------------------------------


def with_sentinels(e: Endpoints) -> Endpoints:
    """The endpoints with a sentinel database password and webhook path (both still work)."""
    database = re.sub(r"^(postgres(?:ql)?://[^:/@]+:)[^@]*@", lambda m: f"{m[1]}{SENTINEL_PASSWORD}@", e.database_url)
    webhook = re.sub(r"^(https?://[^/]+)/.*$", lambda m: f"{m[1]}/hooks/{SENTINEL_HOOK}", e.webhook)
    assert SENTINEL_PASSWORD in database and SENTINEL_HOOK in webhook, (e.database_url, e.webhook)
    return dataclasses.replace(e, database_url=database, webhook=webhook)


def parse_time(value: Any) -> datetime:
    """An aware UTC datetime from moto's, the stand-in's or PostgreSQL's timestamps."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    text = str(value).replace("Z", "+00:00")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)  # moto: nanoseconds
    text = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", text)  # +0000
    return datetime.fromisoformat(text).astimezone(UTC)


@dataclass
class Cloud:
    e: Endpoints
    app_database_url: str

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.e.aws,
            region_name="us-east-1",
            aws_access_key_id="sandbox",
            aws_secret_access_key="sandbox-secret-key",
        )

    # PostgreSQL
    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.app_database_url, autocommit=True, connect_timeout=10) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def schemas(self) -> set[str]:
        return {row[0] for row in self.sql("SELECT nspname FROM pg_namespace")}

    def tables(self, schema: str) -> set[str]:
        rows = self.sql("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))
        return {row[0] for row in rows}

    def columns(self, schema: str, table: str) -> set[str]:
        rows = self.sql(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            (schema, table),
        )
        return {row[0] for row in rows}

    def install_ddl_log(self) -> None:
        """An event trigger that records every DDL command with the database's own clock."""
        self.sql(
            "CREATE TABLE IF NOT EXISTS public.engine_test_ddl ("
            " at timestamptz NOT NULL DEFAULT clock_timestamp(), tag text, schema_name text, identity text)"
        )
        self.sql(
            "CREATE OR REPLACE FUNCTION public.engine_test_log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$"
            " DECLARE r record; BEGIN"
            " FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP"
            "  INSERT INTO public.engine_test_ddl (tag, schema_name, identity)"
            "  VALUES (r.command_tag, r.schema_name, r.object_identity);"
            " END LOOP; END $$"
        )
        if not self.sql("SELECT 1 FROM pg_event_trigger WHERE evtname = 'engine_test_ddl'"):
            self.sql("CREATE EVENT TRIGGER engine_test_ddl ON ddl_command_end EXECUTE FUNCTION public.engine_test_log_ddl()")

    def ddl(self) -> list[tuple[datetime, str, str | None, str | None]]:
        return [
            (parse_time(at), tag, schema, identity)
            for at, tag, schema, identity in self.sql(
                "SELECT at, tag, schema_name, identity FROM public.engine_test_ddl ORDER BY at"
            )
        ]

    # moto
    def function(self, name: str, qualifier: str | None = None) -> dict[str, Any] | None:
        kwargs = {"Qualifier": qualifier} if qualifier else {}
        try:
            return self.client("lambda").get_function_configuration(FunctionName=name, **kwargs)
        except ClientError as err:
            if err.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise

    def versions(self, name: str) -> list[str]:
        pages = self.client("lambda").get_paginator("list_versions_by_function").paginate(FunctionName=name)
        return [v["Version"] for page in pages for v in page["Versions"]]

    def alias(self, name: str, alias: str = "stable") -> str:
        return self.client("lambda").get_alias(FunctionName=name, Name=alias)["FunctionVersion"]

    def role_exists(self, name: str) -> bool:
        try:
            self.client("iam").get_role(RoleName=name)
        except ClientError as err:
            if err.response["Error"]["Code"] == "NoSuchEntity":
                return False
            raise
        return True

    # the Cloudflare stand-in
    def _cf(self, path: str, **params: Any) -> Any:
        response = requests.get(
            f"{self.e.cloudflare_api}{path}",
            headers={"Authorization": f"Bearer {self.e.cloudflare_token}"},
            params=params,
            timeout=10,
        )
        response.raise_for_status()
        return response.json()

    def deployments(self, branch: str | None = None) -> dict[str, dict[str, Any]]:
        """id -> deployment, every page of the project's list, optionally one branch's."""
        found: dict[str, dict[str, Any]] = {}
        page = 1
        while True:
            body = self._cf(
                f"/accounts/{self.e.cloudflare_account}/pages/projects/{PAGES_PROJECT}/deployments",
                page=page,
                per_page=25,
            )
            for d in body["result"]:
                if branch is None or d["deployment_trigger"]["metadata"]["branch"] == branch:
                    found[d["id"]] = d
            if page >= body["result_info"]["total_pages"]:
                return found
            page += 1

    def dns_records(self, name: str) -> list[dict[str, Any]]:
        return list(self._cf(f"/zones/{self.e.zone_id}/dns_records", name=name)["result"])

    # the alert webhook
    def alerts(self) -> list[dict[str, Any]]:
        path = Path(self.e.alerts)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- the module's world: one cloud, its stacks, the app copies ----------------------------------------


@dataclass
class World:
    root: Path
    e: Endpoints
    cloud: Cloud
    apps: dict[str, Path]
    stacks: dict[str, LocalStack] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    facts: dict[str, Any] = field(default_factory=dict)
    runs: int = 0

    def stack(self, name: str) -> LocalStack:
        if name not in self.stacks:
            self.stacks[name] = LocalStack(root=self.root, name=name, endpoints=self.e)
        return self.stacks[name]

    def need(self, *steps: str) -> None:
        missing = [step for step in steps if step not in self.done]
        if missing:
            pytest.skip(f"precondition not met: {', '.join(missing)} did not complete")

    def policy_config(self, s: LocalStack) -> Path:
        """The pack's config for the stack, written as the workflows write it."""
        out = s.root / f"policy-{s.name}.json"
        subprocess.run(
            [sys.executable, "-m", "policy.pack_config", "--stack", s.name, "--repository", "sandbox/webstack",
             "--config-file", str(s.config_file), "--output", str(out)],
            cwd=REPO, check=True, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        return out

    def run(
        self, s: LocalStack, command: str, *args: str, policy: bool = True, check: bool = True, as_json: bool = True
    ) -> Run:
        """`pulumi <command> --json ARGS` (up: --yes) for a stack, with the pack as the workflows run it."""
        argv = [command]
        if command in ("up", "destroy"):
            argv.append("--yes")
        if as_json and command in ("up", "preview", "destroy"):
            argv.append("--json")
        if command in ("up", "preview"):
            if policy:
                argv += ["--policy-pack", str(POLICY_PACK), "--policy-pack-config", str(self.policy_config(s))]
        argv += args
        result = s.pulumi(*argv, check=False)
        self.runs += 1
        log = self.root / "logs" / f"{self.runs:02d}-{s.name}-{command}.log"
        log.parent.mkdir(exist_ok=True)
        log.write_text(result.stdout)
        run = Run.parse(tuple(argv), result.returncode, result.stdout)
        if check:
            assert run.code == 0, f"{run.tail()}\n(full output: {log})"
        return run

    def export(self, s: LocalStack) -> list[dict[str, Any]]:
        """The stack's resources as the backend stores them (`pulumi stack export`)."""
        path = s.root / f"export-{s.name}.json"
        s.pulumi("stack", "export", "--file", str(path))
        return list(json.loads(path.read_text())["deployment"].get("resources") or [])


def copy_app(destination: Path) -> Path:
    """examples/app without build outputs, with its node_modules (whose marker `steps.install` accepts)
    hard-linked: Turbopack refuses a node_modules that resolves outside the workspace root."""
    from steps.install import install_fingerprint, read_marker

    shutil.copytree(EXAMPLE_APP, destination, ignore=APP_COPY_IGNORE, symlinks=True)
    source, target = EXAMPLE_APP / "node_modules", destination / "node_modules"
    linked = subprocess.run(["cp", "-al", str(source), str(target)], capture_output=True, text=True)
    if linked.returncode != 0:  # another filesystem: copy (relative symlinks stay inside the copy)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, symlinks=True)
    # Tools' caches (wrangler's) are written in place: never into examples/app's files.
    shutil.rmtree(target / ".cache", ignore_errors=True)
    marker, wanted = read_marker(destination), install_fingerprint(destination)
    assert marker is not None and all(marker.get(k) == v for k, v in wanted.items()), (
        f"steps.install would run npm ci in the copy: marker {marker} vs {wanted}"
    )
    return destination


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not in {path} exactly once"
    path.write_text(text.replace(old, new))


def get(url: str) -> requests.Response:
    return requests.get(url, timeout=15)


def _proc_start(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _processes() -> dict[int, int]:
    """pid -> ppid of every live process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                table[int(entry.name)] = int(fields[1])
    return table


def ours(root: Path, *roots: int) -> set[tuple[int, str]]:
    """(pid, start time) of the processes under `roots` and of every one naming `root` in its command
    line or environment (pulumi and everything it starts carry the backend's URL)."""
    marker = str(root).encode()
    table = _processes()
    found = set()
    for pid in table:
        for name in ("cmdline", "environ"):
            try:
                if marker in Path(f"/proc/{pid}/{name}").read_bytes():
                    found.add(pid)
                    break
            except OSError:
                continue
    frontier = [pid for pid in roots if pid in table]
    while frontier:
        pid = frontier.pop()
        found.add(pid)
        frontier += [child for child, parent in table.items() if parent == pid and child not in found]
    found.discard(os.getpid())
    return {(pid, start) for pid in found if (start := _proc_start(pid)) is not None}


def still_running(processes: Iterable[tuple[int, str]], within: float = 20) -> list[str]:
    deadline = time.monotonic() + within
    while True:
        alive = [(pid, start) for pid, start in processes if _proc_start(pid) == start and pid in _processes()]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    left = []
    for pid, _ in alive:
        with contextlib.suppress(OSError):
            left.append(f"{pid}: " + Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200])
    return left


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from steps.install import ensure_installed

    ensure_installed(EXAMPLE_APP)  # no-op when node_modules matches the lockfile (.ci/run installs it)
    root = tmp_path_factory.mktemp("real-engine").resolve()
    endpoints = ensure_running(root)
    try:
        e = with_sentinels(endpoints)
        app_database = re.sub(r"/[^/]*$", "/app", e.database_url)
        apps = {family: copy_app(root / "apps" / family) for family in ("prod", "pr")}
        yield World(root=root, e=e, cloud=Cloud(e, app_database), apps=apps)
    finally:
        processes = ours(root, endpoints.pid)
        assert (endpoints.pid, _proc_start(endpoints.pid)) in processes, "the process check sees no daemon"
        stop(root)
        left = still_running(processes)
        assert not left, "processes left behind after stop():\n" + "\n".join(left)


# --- 01 ---------------------------------------------------------------------------------------------


def test_01_prod_first_up_runs_every_phase_in_order(world: World) -> None:
    w, c = world, world.cloud
    s = w.stack("prod")
    s.init(appDir=str(w.apps["prod"]))  # `pulumi stack init prod` on the file backend, then the settings
    assert "encryptionsalt" not in (REPO / "Pulumi.prod.yaml").read_text(), "stack init wrote into the repository"
    c.install_ddl_log()
    assert not c.ddl()

    run = w.run(s, "up")

    assert run.summary()["result"] == "succeeded"
    assert "stateful-protected" in run.policy_packs().get("webstack-security", set()), "the policy pack did not run"
    assert (s.backend / ".pulumi" / "stacks" / "webstack" / "prod.json").exists()
    outputs = s.outputs()

    # Every phase ran, in order: no live change of a phase starts before everything of the phases it
    # waits for has finished (the engine's own sequence numbers; builds may overlap).
    resources = w.export(s)
    by_urn = {r["urn"]: r for r in resources}

    def ancestor(urn: str, type_: str) -> str | None:
        parent = by_urn[urn].get("parent")
        while parent:
            if by_urn[parent]["type"] == type_:
                return parent
            parent = by_urn[parent].get("parent")
        return None

    started, finished = run.started(), run.finished()
    phase_of: dict[str, list[tuple[str, bool]]] = {}
    for r in resources:
        phase = ancestor(r["urn"], PHASE_TYPE) if r.get("custom") else None
        if phase:
            phase_of.setdefault(phase.rsplit("::", 1)[1], []).append((r["urn"], ancestor(r["urn"], BUILD_TYPE) is not None))
    assert set(phase_of) == {"infrastructure", "dependencies", "database", "backend", "frontend", "checks"}, set(phase_of)
    for later, earlier in PHASE_WAITS.items():
        live = [urn for urn, build in phase_of[later] if not build]
        before = [urn for phase in earlier for urn, _ in phase_of[phase]]
        assert live and all(urn in started for urn in live) and all(urn in finished for urn in before)
        last_done = max(before, key=lambda urn: finished[urn])
        first = min(live, key=lambda urn: started[urn])
        assert started[first] > finished[last_done], (
            f"{resource_key(first)} ({later}) started at #{started[first]} before "
            f"{resource_key(last_done)} ({'/'.join(earlier)}) finished at #{finished[last_done]}"
        )

    # What each phase made, on the services. Infrastructure: the DNS record (and prod's foundation).
    [record] = c.dns_records(f"www.{w.e.zone_name}")
    assert (record["type"], record["content"]) == ("CNAME", f"{PAGES_PROJECT}.pages.dev")
    bucket = outputs["stateBucket"]
    assert c.client("s3").get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    # Database: the schema and the app's tables.
    assert outputs["dbSchema"] == "app" and APP_TABLES <= c.tables("app")
    # Backend: the function, version 1, `stable` on it, its URL answering with the deployed code.
    function = outputs["functionName"]
    assert function == "webstack-api-prod"
    latest = c.function(function)
    assert latest is not None and c.versions(function) == ["$LATEST", "1"]
    assert c.alias(function) == outputs["stableVersion"] == "1"
    assert c.client("lambda").get_function_url_config(FunctionName=function, Qualifier="stable")["AuthType"] == "NONE"
    health = get(outputs["apiUrl"] + "health")
    assert health.status_code == 200 and health.json()["version"] == latest["Environment"]["Variables"]["APP_VERSION"]
    # Frontend: one production deployment on `main`, served with the API's URL baked in.
    main = c.deployments("main")
    assert [d["environment"] for d in main.values()] == ["production"]
    site = get(outputs["siteUrl"])
    assert site.status_code == 200 and outputs["apiUrl"] in site.text

    # The same order on the services' own clocks: DNS record (infrastructure) < CREATE SCHEMA <
    # the migration's last DDL (database) < the function's LastModified (backend).
    ddl = c.ddl()
    created = [at for at, tag, _, identity in ddl if tag == "CREATE SCHEMA" and identity == "app"]
    migration = [at for at, tag, schema, _ in ddl if schema == "app" and tag != "CREATE SCHEMA"]
    assert created and migration, ddl
    dns_at, function_at = parse_time(record["created_on"]), parse_time(latest["LastModified"])
    assert dns_at < created[0] <= max(migration) < function_at, (dns_at, created[0], max(migration), function_at)

    w.facts["prod_outputs"] = outputs
    w.done.add("prod")


# --- 02 ---------------------------------------------------------------------------------------------


def prod_snapshot(w: World) -> dict[str, Any]:
    c, function = w.cloud, "webstack-api-prod"
    return {
        "versions": c.versions(function),
        "stable": c.alias(function),
        "last_modified": c.function(function)["LastModified"],
        "deployments": sorted(c.deployments("main")),
        "ddl": len([row for row in c.ddl() if "app" in (row[2], row[3])]),  # DDL on prod's schema
        "alerts": len(c.alerts()),
    }


def test_02_second_up_and_preview_change_nothing(world: World) -> None:
    w = world
    w.need("prod")
    s = w.stack("prod")
    before = prod_snapshot(w)

    run = w.run(s, "up")
    assert run.ops() == {}, run.ops()
    assert run.step_starts() == []
    assert set(run.summary()["resourceChanges"]) == {"same"}

    preview = w.run(s, "preview", "--expect-no-changes")
    assert not [step for step in (preview.document or {}).get("steps", []) if step["op"] != "same"]
    assert prod_snapshot(w) == before

    # The operations page's rebuild-on-purpose command (`pulumi up --replace URN`) names real resources.
    readme = (REPO / "docs" / "operations.md").read_text()
    full = re.findall(r"pulumi up --replace '(urn:pulumi:S::[^']+)'", readme)
    tails = re.findall(r"`\.\.\.([^`]+::[\w-]+)`", readme.split("pulumi up --replace", 1)[-1][:600])
    urns = {r["urn"] for r in w.export(s)}
    assert full and tails, "docs/operations.md's recovery commands moved"
    for urn in full:
        assert urn.replace("urn:pulumi:S::", "urn:pulumi:prod::") in urns, urn
    for tail in tails:
        assert any(u.endswith(tail) for u in urns), tail


# --- 03 ---------------------------------------------------------------------------------------------


def test_03_web_only_change_redeploys_only_the_site(world: World) -> None:
    w = world
    w.need("prod")
    s = w.stack("prod")
    before = prod_snapshot(w)
    marker = "web-change-" + secrets.token_hex(4)
    edit(w.apps["prod"] / "apps" / "web" / "app" / "page.tsx", "<h1>Example app</h1>", f"<h1>Example app {marker}</h1>")

    preview = w.run(s, "preview")
    assert preview.document is not None, preview.tail()
    planned: dict[str, set[str]] = {}
    for step in preview.document["steps"]:
        if step["op"] != "same":
            planned.setdefault(resource_key(step["urn"]), set()).add(step["op"])
    assert set(planned) == SITE_CHANGE, planned
    assert set().union(*planned.values()) <= {"update", "replace", "create-replacement", "delete-replaced"}, planned

    run = w.run(s, "up")
    assert set(run.ops()) == SITE_CHANGE, run.ops()
    assert sorted(run.step_starts()) == [
        "step build_site: start (critical)", "step health: start (critical)", "step pages-deploy: start (critical)",
    ], run.step_starts()

    after = prod_snapshot(w)
    new = set(after["deployments"]) - set(before["deployments"])
    assert len(new) == 1 and set(before["deployments"]) <= set(after["deployments"])
    assert {k: after[k] for k in ("versions", "stable", "last_modified", "ddl", "alerts")} == {
        k: before[k] for k in ("versions", "stable", "last_modified", "ddl", "alerts")
    }
    assert marker in get(w.facts["prod_outputs"]["siteUrl"]).text
    [deployed] = new
    assert deployed in "".join(run.messages(f"{CMD}site-deploy"))
    w.done.add("web")


# --- 03b --------------------------------------------------------------------------------------------


def interrupted_up(w: World, s: LocalStack, key: str, message: str) -> tuple[Run, set[tuple[int, str]]]:
    """`pulumi up` that gets SIGINT (to the pulumi process only, as a cancelled CI job's first
    signal) once the Command `key` logged `message`. Returns the run and the processes it left."""
    baseline = ours(s.backend)
    argv = s.argv("up", "--yes", "--json", "--policy-pack", str(POLICY_PACK), "--policy-pack-config", str(w.policy_config(s)))
    proc = subprocess.Popen(  # noqa: S603 - list argv
        argv, cwd=s.project_dir, env=s.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    lines, sent = [], False
    deadline = time.monotonic() + 900
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            lines.append(line)
            if not sent and line.startswith('{"sequence"') and '"diagnosticEvent"' in line:
                event = json.loads(line)["diagnosticEvent"]
                if resource_key(event.get("urn") or "") == key and message in event["message"]:
                    time.sleep(1.0)  # inside the step
                    proc.send_signal(signal.SIGINT)
                    sent = True
            if time.monotonic() > deadline:
                break
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert sent, f"{key} never logged {message!r}:\n" + "".join(lines[-20:])
    left = still_running(ours(s.backend) - baseline)
    return Run.parse(("up",), proc.returncode, "".join(lines)), left


def test_03b_sigint_during_the_migration_and_the_site_build_leaves_the_services_consistent(world: World) -> None:
    """Upstream's first Ctrl-C makes the engine Cancel the providers, and the command provider kills
    the running command (its shell: the step itself runs to its end, its result not recorded). The
    interrupted run fails; nothing is left half-done or running; the next `up` completes."""
    w, c = world, world.cloud
    w.need("prod", "web")
    s = w.stack("prod")
    outputs = w.facts["prod_outputs"]
    served = get(outputs["siteUrl"]).text

    # During the migration: a new nullable column (no data loss), so the push has work to do.
    define = w.apps["prod"] / "packages" / "shared-schemas" / "src" / "define.ts"
    subject = "      subject: varchar('subject', { length: 255 }).notNull(),\n"
    edit(define, subject, subject + "      sigint_probe: varchar('sigint_probe', { length: 20 }),\n")
    run, left = interrupted_up(w, s, f"{CMD}database-migrate", "step migrate: start")
    assert run.code != 0 and not left, (run.tail(), left)
    assert "signal: killed" in run.output, run.tail()
    # Consistent: the push either applied whole or not at all (the killed shell's step ran to its
    # end), the app's tables are all there, prod still serves what it served.
    assert APP_TABLES <= c.tables("app")
    assert get(outputs["apiUrl"] + "health").status_code == 200 and get(outputs["siteUrl"]).text == served
    again = w.run(s, "up")
    assert again.summary()["result"] == "succeeded" and f"{CMD}database-migrate" in again.ops()
    assert "sigint_probe" in c.columns("app", "users")
    health = get(outputs["apiUrl"] + "health")
    assert health.status_code == 200 and health.json()["version"] == c.function("webstack-api-prod", "stable")["Environment"]["Variables"]["APP_VERSION"]

    # During the site build: the deploy never ran, the live site is the previous one, whole.
    served = get(outputs["siteUrl"]).text
    marker = "sigint-site-" + secrets.token_hex(4)
    edit(w.apps["prod"] / "apps" / "web" / "app" / "page.tsx", "<h1>Example app", f"<h1>{marker} Example app")
    deployments = sorted(c.deployments("main"))
    run, left = interrupted_up(w, s, f"{CMD}site-build", "step build_site: start")
    assert run.code != 0 and not left, (run.tail(), left)
    assert sorted(c.deployments("main")) == deployments and get(outputs["siteUrl"]).text == served
    again = w.run(s, "up")
    assert again.summary()["result"] == "succeeded" and f"{CMD}site-deploy" in again.ops()
    assert marker in get(outputs["siteUrl"]).text
    w.done.add("interrupted")


# --- 03c --------------------------------------------------------------------------------------------


def test_03c_a_fresh_runner_deploys_from_the_published_builds(world: World) -> None:
    """A new CI runner has the checkout and nothing else: no build output, no node_modules. Nothing
    of a later `up` may need them (the function's code and the site come from the artifacts bucket,
    by the records the builds printed), and `refresh` (which empties a Command's archive upstream)
    changes nothing of that."""
    w, c = world, world.cloud
    w.need("prod", "web")
    s = w.stack("prod")
    outputs = w.facts["prod_outputs"]
    function = "webstack-api-prod"
    app = w.apps["prod"]
    code = c.function(function, "stable")
    version = code["Environment"]["Variables"]["APP_VERSION"]
    site = get(outputs["siteUrl"]).text

    def fresh_runner() -> None:
        for path in (REPO / ".build" / "prod", app / "node_modules", app / "apps" / "api" / "dist", app / "apps" / "web" / "out",
                     app / "apps" / "web" / ".next"):  # fmt: skip
            shutil.rmtree(path, ignore_errors=True)

    def serves_the_same_code() -> None:
        health = get(outputs["apiUrl"] + "health")
        assert health.status_code == 200 and health.json()["version"] == version
        assert get(outputs["siteUrl"]).text == site

    fresh_runner()
    try:
        # (a) Nothing changed: nothing runs; the drift check's `preview --refresh` sees no change.
        run = w.run(s, "up")
        assert run.ops() == {} and run.step_starts() == [], run.ops()
        assert w.run(s, "preview", "--refresh", "--expect-no-changes").code == 0
        serves_the_same_code()

        # (b) After a refresh, a configuration change of the function alone: it is updated (a new
        # version, checked, then `stable`) without a build, its code the published zip.
        s.pulumi("refresh", "--yes")
        s.pulumi("config", "set", "webstack:lambdaMemoryMb", "384")
        run = w.run(s, "up")
        assert f"{CMD}api-build" not in run.ops() and f"{CMD}site-build" not in run.ops(), run.ops()
        assert not [m for m in run.step_starts() if m.split(":")[0] in ("step build_lambda", "step build_site", "step install")]
        stable = c.function(function, "stable")
        assert stable["MemorySize"] == 384 and stable["Version"] != code["Version"]
        assert stable["CodeSha256"] == code["CodeSha256"]
        serves_the_same_code()
        fresh_runner()

        # (c) A change only the Pages deploy reads: it re-runs on a runner without the export,
        # fetches the build's record from the artifacts bucket, and deploys exactly that.
        before = sorted(c.deployments("main"))
        s.pulumi("config", "set", "webstack:pagesDeployTimeoutSeconds", "601")
        run = w.run(s, "up")
        assert set(run.ops()) == {f"{CMD}site-deploy", f"{CMD}checks-site-health"}, run.ops()
        assert any("fetching the build's export from s3://" in m for m in run.messages(f"{CMD}site-deploy"))
        assert len(set(c.deployments("main")) - set(before)) == 1
        serves_the_same_code()
        assert not (REPO / ".build" / "prod" / "site").exists()
    finally:
        # Later tests build again: the workspace as before (hard links, the install marker kept).
        if not (app / "node_modules").exists():
            subprocess.run(["cp", "-al", str(EXAMPLE_APP / "node_modules"), str(app / "node_modules")], check=True)
            shutil.rmtree(app / "node_modules" / ".cache", ignore_errors=True)
    w.done.add("fresh-runner")


# --- 04 ---------------------------------------------------------------------------------------------


def select_create(s: LocalStack) -> None:
    """`pulumi stack select --create NAME` as the preview workflow runs it. The CLI writes the new
    stack's file (its salt) beside Pulumi.yaml: it runs on a scratch copy of Pulumi.yaml (-C), and the
    file moves under the sandbox, as LocalStack.init does for `stack init`."""
    scratch = s.root / f"select-{s.name}"
    scratch.mkdir(parents=True, exist_ok=True)
    shutil.copy(s.project_dir / "Pulumi.yaml", scratch / "Pulumi.yaml")
    s.pulumi("stack", "select", "--create", s.name, "--secrets-provider", "passphrase", "--cwd", str(scratch))
    written = scratch / f"Pulumi.{s.name}.yaml"
    if written.exists():
        shutil.move(str(written), s.config_file)
    shutil.rmtree(scratch)


def test_04_two_pr_stacks_side_by_side(world: World) -> None:
    w, c = world, world.cloud
    w.need("prod")
    prod_before = prod_snapshot(w)
    outputs = {}
    for n in (7, 8):
        s = w.stack(f"preview-pr-{n}")
        select_create(s)
        assert (s.backend / ".pulumi" / "stacks" / "webstack" / f"{s.name}.json").exists()
        s.init(appDir=str(w.apps["pr"]))
        w.run(s, "up")
        outputs[n] = s.outputs()
        assert not (REPO / f"Pulumi.{s.name}.yaml").exists(), "the stack's file was written into the repository"

    for n in (7, 8):
        schema, function, branch = f"app_pr_{n}", f"webstack-api-preview-pr-{n}", f"pr-{n}"
        assert outputs[n]["dbSchema"] == schema and outputs[n]["functionName"] == function
        assert APP_TABLES <= c.tables(schema)
        config = c.function(function)
        assert config is not None and config["Environment"]["Variables"]["DB_SCHEMA"] == schema
        assert c.versions(function) == ["$LATEST"]  # previews publish nothing
        deployments = c.deployments(branch)
        assert len(deployments) == 1 and {d["environment"] for d in deployments.values()} == {"preview"}
        [record] = c.dns_records(f"{branch}.www.{w.e.zone_name}")
        assert record["content"] == f"{branch}.{PAGES_PROJECT}.pages.dev"  # the branch alias
        health = get(outputs[n]["apiUrl"] + "health")
        assert health.status_code == 200 and health.json()["schema"] == schema
        site = get(outputs[n]["siteUrl"])
        assert site.status_code == 200 and f"preview-pr-{n}" in site.text and outputs[n]["apiUrl"] in site.text
    assert outputs[7]["siteUrl"] != outputs[8]["siteUrl"]
    assert prod_snapshot(w) == prod_before, "a PR stack touched prod"
    w.facts["pr_outputs"] = outputs
    w.done.update({"preview-pr-7", "preview-pr-8"})


# --- 04b --------------------------------------------------------------------------------------------


def test_04b_a_fixture_app_deploys_by_stack_config_alone(world: World) -> None:
    """tests/fixtures/apps/esm-api (an npm ESM API with an external module, an extra file and its own
    plain and secret settings) deploys with `pulumi up` from its stack-config.yaml and one secret,
    no source edit; then it is destroyed."""
    w, c = world, world.cloud
    w.need("prod")
    fixture = REPO / "tests" / "fixtures" / "apps" / "esm-api"
    app = w.root / "apps" / "esm-api"
    if not app.exists():
        subprocess.run(["cp", "-a", str(fixture), str(app)], check=True)
    config = yaml.safe_load((fixture / "stack-config.yaml").read_text())["config"]
    shape = {key.split(":", 1)[1]: value for key, value in config.items() if key != "webstack:appDir"}
    signing_key = "fixture-signing-" + secrets.token_hex(8)
    s = w.stack("preview-pr-9")
    select_create(s)
    s.init(appDir=str(app), **shape)
    s.pulumi("config", "set", "--secret", "webstack:apiSecretEnvironment", json.dumps({"SHOP_SIGNING_KEY": signing_key}))

    w.run(s, "up")

    outputs = s.outputs()
    assert "products" in c.tables("app_pr_9")
    assert get(outputs["apiUrl"] + "health").json()["schema"] == "app_pr_9"
    # Served by the function itself: the extra file, the external module's own data file, both settings.
    assert get(outputs["apiUrl"]).json() == {
        "prices": {"basic": 5, "pro": 20}, "zones": ["Europe/Paris", "Asia/Tokyo"], "greeting": "hello", "signed": True,
    }  # fmt: skip
    site = get(outputs["siteUrl"])
    assert site.status_code == 200 and f'href="{outputs["apiUrl"].rstrip("/")}/products"' in site.text
    exported = s.root / "export-preview-pr-9.json"
    s.pulumi("stack", "export", "--file", str(exported))
    assert signing_key not in exported.read_text(), "the app's secret is in the state in plain text"

    s.pulumi("destroy", "--yes")
    s.pulumi("stack", "rm", "--yes", s.name)
    assert c.tables("app_pr_9") == set() and c.function("webstack-api-preview-pr-9") is None


@pytest.mark.parametrize(("app", "pr"), [("pnpm-monorepo", 10), ("yarn-classic", 11)])
def test_04c_the_pnpm_and_yarn_fixtures_deploy_by_stack_config_alone(world: World, app: str, pr: int) -> None:
    """The other two fixture apps of tests/fixtures/apps (a pnpm workspace with other paths, a yarn 1
    workspace) deploy with `pulumi up` from their stack-config.yaml alone, then are destroyed."""
    from tests.test_bring_your_own_app import EXPECTED

    w, c = world, world.cloud
    w.need("prod")
    fixture = REPO / "tests" / "fixtures" / "apps" / app
    copy = w.root / "apps" / app
    if not copy.exists():
        subprocess.run(["cp", "-a", str(fixture), str(copy)], check=True)
    config = yaml.safe_load((fixture / "stack-config.yaml").read_text())["config"]
    shape = {key.split(":", 1)[1]: value for key, value in config.items() if key != "webstack:appDir"}
    s = w.stack(f"preview-pr-{pr}")
    select_create(s)
    s.init(appDir=str(copy), **shape)

    w.run(s, "up")

    outputs = s.outputs()
    schema = f"app_pr_{pr}"
    assert c.tables(schema) == set(EXPECTED[app]["tables"])
    health = get(outputs["apiUrl"].rstrip("/") + "/health").json()
    assert health["status"] == "ok" and health["schema"] == schema
    site = get(outputs["siteUrl"])
    assert site.status_code == 200 and outputs["apiUrl"].rstrip("/") in site.text

    s.pulumi("destroy", "--yes")
    s.pulumi("stack", "rm", "--yes", s.name)
    assert c.tables(schema) == set() and c.function(f"webstack-api-preview-pr-{pr}") is None


# --- 04d --------------------------------------------------------------------------------------------


def urn_of(w: World, s: LocalStack, name: str) -> str:
    [urn] = [r["urn"] for r in w.export(s) if r["urn"].endswith(f"::{name}")]
    return urn


def test_04d_the_commands_with_a_delete_are_safe_under_replacement_and_update(world: World) -> None:
    """Upstream replaces create-before-delete and re-runs a changed Command in place. Replacing the
    schema, the Pages deploy and the branch cleanup (`pulumi up --replace`), then changing each one's
    environment, removes nothing live and leaves nothing behind (05 then destroys the stack and
    finds nothing left)."""
    w, c = world, world.cloud
    w.need("preview-pr-7")
    s = w.stack("preview-pr-7")
    site_url = w.facts["pr_outputs"][7]["siteUrl"]
    c.sql("CREATE TABLE app_pr_7.engine_test_keep (id int); INSERT INTO app_pr_7.engine_test_keep VALUES (7)")

    def live() -> dict[str, Any]:
        comment = c.sql("SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = 'app_pr_7'")
        return {
            "rows": c.sql("SELECT id FROM app_pr_7.engine_test_keep"),
            "tables": c.tables("app_pr_7"),
            "owner": comment[0][0] if comment else None,
            "deployments": sorted(c.deployments("pr-7")),
            "site": get(site_url).status_code,
        }

    before = live()
    assert before["rows"] == [(7,)] and before["owner"] and len(before["deployments"]) == 1 and before["site"] == 200
    replaced = ["database-schema", "site-deploy", "site-branch-cleanup"]
    args = [arg for name in replaced for arg in ("--replace", urn_of(w, s, name))]
    run = w.run(s, "up", *args)
    for name in replaced:
        assert {"create-replacement", "delete-replaced"} <= run.ops()[f"{CMD}{name}"], run.ops()
    after = live()
    assert after["rows"] == [(7,)] and after["tables"] == before["tables"], "the replaced schema Command dropped the schema"
    assert after["owner"] != before["owner"]  # claimed by the new Command
    assert after["site"] == 200 and len(after["deployments"]) == 1 and after["deployments"] != before["deployments"]

    # An update of each: another environment (the program as a change would leave it).
    project = copy_project(w.root / "project-changed-commands")
    edit(project / "components" / "database.py", 'environment={"DB_SCHEMA": args.schema},', 'environment={"DB_SCHEMA": args.schema, "REVISION": "2"},')
    edit(project / "components" / "pages_site.py", '"DEPLOY_TIMEOUT": str(args.deploy_timeout_seconds),', '"DEPLOY_TIMEOUT": str(args.deploy_timeout_seconds), "REVISION": "2",')
    edit(project / "components" / "pages_site.py", 'environment={**pages, "CLOUDFLARE_ACCOUNT_ID": args.account_id, **args.artifacts.environment()},',
         'environment={**pages, "CLOUDFLARE_ACCOUNT_ID": args.account_id, **args.artifacts.environment(), "REVISION": "2"},')  # fmt: skip
    changed = LocalStack(root=s.root, name=s.name, endpoints=w.e, project_dir=project)
    run = w.run(changed, "up")
    for name in replaced:
        assert run.ops()[f"{CMD}{name}"] == {"update"}, run.ops()
    updated = live()
    assert updated["rows"] == [(7,)] and updated["owner"] == after["owner"]
    assert updated["site"] == 200 and len(updated["deployments"]) == 1 and updated["deployments"] != after["deployments"]
    w.done.add("commands-safe")


# --- 05 ---------------------------------------------------------------------------------------------


def pr_snapshot(w: World, n: int) -> dict[str, Any]:
    c = w.cloud
    function = c.function(f"webstack-api-preview-pr-{n}")
    return {
        "tables": c.tables(f"app_pr_{n}"),
        "function": function and function["LastModified"],
        "deployments": sorted(c.deployments(f"pr-{n}")),
        "dns": [r["id"] for r in c.dns_records(f"pr-{n}.www.{w.e.zone_name}")],
    }


def cleanup_like_the_workflow(s: LocalStack) -> str:
    """What .github/workflows/cleanup.yml runs for a closed PR: `stack select` (an absent stack is
    success, recognised by the message it greps for), then `destroy` and `stack rm`."""
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "cleanup.yml").read_text())
    script = next(step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "pulumi destroy" in step.get("run", ""))
    absent = re.search(r'grep -q "([^"]+)"', script)
    assert absent and "pulumi stack select" in script and "pulumi stack rm --yes" in script, script
    selected = s.pulumi("stack", "select", s.name, check=False)
    if selected.returncode != 0:
        assert absent[1] in selected.stdout, f"the workflow would fail: {selected.stdout}"
        return "absent"
    s.pulumi("destroy", "--yes")
    s.pulumi("stack", "rm", "--yes", s.name)
    return "removed"


def test_05_destroy_and_remove_pr7_leaves_the_others(world: World) -> None:
    w, c = world, world.cloud
    w.need("prod", "preview-pr-7", "preview-pr-8")
    s = w.stack("preview-pr-7")
    pr8, prod = pr_snapshot(w, 8), prod_snapshot(w)
    assert pr_snapshot(w, 7)["tables"] and c.role_exists("webstack-api-preview-pr-7-exec")

    run = w.run(s, "destroy")
    assert run.code == 0
    gone = pr_snapshot(w, 7)
    assert "app_pr_7" not in c.schemas(), "the PR's schema is still there"
    assert gone == {"tables": set(), "function": None, "deployments": [], "dns": []}, gone
    assert not c.role_exists("webstack-api-preview-pr-7-exec")

    assert {op for ops in run.ops().values() for op in ops} == {"delete"}

    # A second destroy (the stack still exists) succeeds and has nothing left to do.
    again = w.run(s, "destroy")
    assert again.code == 0 and again.ops() == {} and again.step_starts() == [], again.ops()

    s.pulumi("stack", "rm", "--yes", s.name)
    assert not list((s.backend / ".pulumi" / "stacks").rglob("preview-pr-7.json"))
    # Then the cleanup workflow for the same PR (a re-delivered `closed` event): absent is success.
    assert cleanup_like_the_workflow(s) == "absent"

    assert pr_snapshot(w, 8) == pr8 and prod_snapshot(w) == prod
    assert get(w.facts["pr_outputs"][8]["apiUrl"] + "health").status_code == 200
    w.done.add("destroyed")


# --- 07 ---------------------------------------------------------------------------------------------


def later_phases_ran(w: World, s: LocalStack, run: Run, phases: Iterable[str]) -> list[str]:
    """Non-build resources of `phases` the engine started in `run`."""
    resources = w.export(s)
    by_urn = {r["urn"]: r for r in resources}
    started = run.started()
    found = []
    for urn in started:
        chain, parent = [], (by_urn.get(urn) or {}).get("parent")
        while parent:
            chain.append(parent)
            parent = by_urn[parent].get("parent")
        phase = next((p.rsplit("::", 1)[1] for p in chain if by_urn[p]["type"] == PHASE_TYPE), None)
        build = any(by_urn[p]["type"] == BUILD_TYPE for p in chain)
        if phase in phases and not build:
            found.append(resource_key(urn))
    return found


def new_alerts(w: World, before: int) -> list[str]:
    alerts = w.cloud.alerts()[before:]
    assert all(a["path"] == f"/hooks/{SENTINEL_HOOK}" for a in alerts), alerts
    return [json.dumps(a["body"]) for a in alerts]


def test_07a_failing_migration_stops_prod_and_alerts(world: World) -> None:
    w, c = world, world.cloud
    w.need("prod")
    s = w.stack("prod")
    define = w.apps["prod"] / "packages" / "shared-schemas" / "src" / "define.ts"
    c.sql("INSERT INTO app.users (subject, email) VALUES ('engine-test-user', 'user@example.com')")
    # A NOT NULL column without a default on a table with rows: drizzle-kit would truncate the table.
    subject = "      subject: varchar('subject', { length: 255 }).notNull(),\n"
    edit(define, subject, subject + "      nickname: varchar('nickname', { length: 40 }).notNull(),\n")
    before = prod_snapshot(w)

    run = w.run(s, "up", check=False)

    assert run.code != 0 and run.failed() == {f"{CMD}database-migrate"}, run.tail()
    assert later_phases_ran(w, s, run, ("backend", "frontend", "checks")) == []
    assert "nickname" not in c.columns("app", "users")
    assert c.sql("SELECT count(*) FROM app.users WHERE subject = 'engine-test-user'") == [(1,)], "prod data was lost"
    after = prod_snapshot(w)
    assert {k: after[k] for k in ("versions", "stable", "last_modified", "deployments")} == {
        k: before[k] for k in ("versions", "stable", "last_modified", "deployments")
    }
    alerts = new_alerts(w, before["alerts"])
    assert len(alerts) == 1 and "migrate" in alerts[0] and "would lose data" in alerts[0] and "nickname" in alerts[0], alerts
    # What it tells the person to do exists: any setting it names is one Pulumi.yaml declares.
    declared = {key.split(":", 1)[1] for key in yaml.safe_load((REPO / "Pulumi.yaml").read_text())["config"]}
    assert set(re.findall(r"the (\w+) setting", alerts[0])) <= declared, alerts[0]

    # The fix: a default, so no row is lost. The re-run migrates and completes.
    edit(define, "varchar('nickname', { length: 40 }).notNull(),", "varchar('nickname', { length: 40 }).notNull().default(''),")
    fixed = w.run(s, "up")
    assert f"{CMD}database-migrate" in fixed.ops() and fixed.summary()["result"] == "succeeded"
    assert "nickname" in c.columns("app", "users")
    assert c.sql("SELECT nickname FROM app.users WHERE subject = 'engine-test-user'") == [("",)]
    assert len(c.alerts()) == before["alerts"] + 1
    w.done.add("migration")


class RequestLoop:
    """GETs a URL over and over in a thread (what users do during a deploy) and keeps every answer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[tuple[int, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                try:
                    response = session.get(self.url, timeout=15)
                    version = response.json().get("version") if response.status_code == 200 else None
                    self.answers.append((response.status_code, version))
                except (requests.RequestException, ValueError) as exc:
                    self.answers.append((0, type(exc).__name__))
                time.sleep(0.05)

    def __enter__(self) -> RequestLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def test_07b_a_bundle_that_throws_on_load_never_gets_traffic(world: World) -> None:
    w, c = world, world.cloud
    w.need("prod")
    s = w.stack("prod")
    function = "webstack-api-prod"
    handler = w.apps["prod"] / "apps" / "api" / "src" / "handler.ts"
    anchor = "type Result = APIGatewayProxyStructuredResultV2;\n"
    # A setting's name mistyped: the bundle throws while it loads, before any route runs.
    edit(handler, anchor, anchor + "if (!process.env.JWKS_URI) throw new Error('JWKS_URI is not set');\n")
    before = prod_snapshot(w)
    good = before["stable"]
    good_app_version = get(w.facts["prod_outputs"]["apiUrl"] + "health").json()["version"]

    run = w.run(s, "up", check=False)

    assert run.code != 0 and run.failed() == {f"{CMD}api-pre-traffic-check"}, run.tail()
    # Nothing after the check ran: not the alias, not the site, not the final checks.
    assert "aws:lambda/alias:Alias::api-alias" not in run.ops()
    assert later_phases_ran(w, s, run, ("frontend", "checks")) == []
    after = prod_snapshot(w)
    broken = after["versions"][-1]
    assert len(after["versions"]) == len(before["versions"]) + 1 and broken != good  # published, never promoted
    assert c.alias(function) == good == after["stable"], "stable moved to a version that failed its check"
    routing = c.client("lambda").get_alias(FunctionName=function, Name="stable").get("RoutingConfig") or {}
    assert not routing.get("AdditionalVersionWeights"), routing
    assert after["deployments"] == before["deployments"]
    # The old version still serves, over HTTP through the function URL.
    health = get(w.facts["prod_outputs"]["apiUrl"] + "health")
    assert health.status_code == 200 and health.json()["version"] == good_app_version
    # The alert quotes the function's error and the start of its log, and no secret.
    alerts = new_alerts(w, before["alerts"])
    assert len(alerts) == 1 and f"version {broken} of {function} failed its pre-traffic check" in alerts[0], alerts
    assert "JWKS_URI is not set" in alerts[0] and "Log: " in alerts[0] and "alias was not moved" in alerts[0]
    assert SENTINEL_PASSWORD not in alerts[0] and SENTINEL_HOOK not in alerts[0]
    w.facts["good_version"], w.facts["broken_version"] = good, broken

    # The fix (a setting that exists) deploys normally, and users see no failed request while
    # `stable` moves: a request loop runs through the function URL for the whole deploy.
    edit(handler, "process.env.JWKS_URI) throw new Error('JWKS_URI is not set')", "process.env.JWKS_URL) throw new Error('JWKS_URL is not set')")
    with RequestLoop(w.facts["prod_outputs"]["apiUrl"] + "health") as loop:
        fixed = w.run(s, "up")
        time.sleep(1.0)  # a few answers from the new version
    assert {f"{CMD}api-pre-traffic-check", f"{CMD}checks-api-health", f"{CMD}api-prune-versions"} <= set(fixed.ops())
    final = prod_snapshot(w)
    assert final["stable"] == final["versions"][-1] not in (good, broken)
    new_app_version = c.function(function, final["stable"])["Environment"]["Variables"]["APP_VERSION"]
    failures = [a for a in loop.answers if a[0] != 200]
    assert not failures, f"{len(failures)} of {len(loop.answers)} requests failed during the deploy: {failures[:5]}"
    served = [version for _, version in loop.answers]
    assert len(served) > 20 and served[0] == good_app_version and served[-1] == new_app_version != good_app_version
    # Once moved, never back: the switch is one step from old to new.
    first_new = served.index(new_app_version)
    assert set(served[first_new:]) == {new_app_version}, served
    assert len(c.alerts()) == before["alerts"] + 1
    w.done.add("health")


# --- 06 ---------------------------------------------------------------------------------------------


def test_06_rollback_with_pinned_version_runs_no_build(world: World) -> None:
    w, c = world, world.cloud
    w.need("prod", "health")
    s = w.stack("prod")
    function = "webstack-api-prod"
    older = w.facts["good_version"]
    before = prod_snapshot(w)
    assert before["stable"] != older
    bundle = w.apps["prod"] / "apps" / "api" / "dist" / "index.js"
    site_out = REPO / ".build" / "prod" / "site"
    stamps = (bundle.stat().st_mtime_ns, site_out.stat().st_mtime_ns)

    s.pulumi("config", "set", "webstack:pinnedVersion", older)  # with --config-file: the sandbox's stack file
    assert str(yaml.safe_load(s.config_file.read_text())["config"]["webstack:pinnedVersion"]) == older
    run = w.run(s, "up")

    assert not BUILD_COMMANDS & set(run.ops()), run.ops()
    assert not [m for m in run.step_starts() if "build" in m or "install" in m], run.step_starts()
    assert (bundle.stat().st_mtime_ns, site_out.stat().st_mtime_ns) == stamps
    after = prod_snapshot(w)
    assert after["stable"] == older and s.outputs()["stableVersion"] == older
    assert after["versions"] == before["versions"] and after["deployments"] == before["deployments"]
    expected = c.function(function, older)["Environment"]["Variables"]["APP_VERSION"]
    health = get(w.facts["prod_outputs"]["apiUrl"] + "health")
    assert health.status_code == 200 and health.json()["version"] == expected

    # `pinnedVersion ''` returns `stable` to the newest, still without a build.
    s.pulumi("config", "set", "webstack:pinnedVersion", "")
    back = w.run(s, "up")
    assert not BUILD_COMMANDS & set(back.ops()), back.ops()
    assert c.alias(function) == before["stable"] == c.versions(function)[-1]
    w.done.add("rollback")


def test_06c_canary_rolls_back_a_flaky_version_and_promotes_a_good_one(world: World) -> None:
    w, c = world, world.cloud
    w.need("prod", "rollback")
    s = w.stack("prod")
    function = "webstack-api-prod"
    handler = w.apps["prod"] / "apps" / "api" / "src" / "handler.ts"
    s.pulumi("config", "set", "webstack:canaryPercent", "10")
    s.pulumi("config", "set", "webstack:canarySeconds", "4")
    path_line = "  const path = (event.rawPath || '/').replace(/\\/+$/, '') || '/';\n"
    flaky = "  if (path === '/health' && ++healthCalls % 5 === 0) throw new Error('every fifth health check fails');\n"
    edit(handler, "type Result = APIGatewayProxyStructuredResultV2;\n", "type Result = APIGatewayProxyStructuredResultV2;\nlet healthCalls = 0;\n")
    edit(handler, path_line, path_line + flaky)
    before = prod_snapshot(w)

    run = w.run(s, "up", check=False)

    # The check (its first request) passes; under the canary one request in five fails: rolled back.
    assert run.code != 0 and run.failed() == {f"{CMD}api-canary"}, run.tail()
    assert f"{CMD}api-pre-traffic-check" in run.ops() and "aws:lambda/alias:Alias::api-alias" not in run.ops()
    after = prod_snapshot(w)
    flaky_version = after["versions"][-1]
    alias = c.client("lambda").get_alias(FunctionName=function, Name="stable")
    assert alias["FunctionVersion"] == before["stable"] != flaky_version
    assert not (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights"), "the canary left a weight behind"
    alerts = new_alerts(w, before["alerts"])
    assert len(alerts) == 1 and f"canary of version {flaky_version} of {function} failed" in alerts[0], alerts
    assert "rolled back to 0%" in alerts[0] and "every fifth health check fails" in alerts[0]
    assert later_phases_ran(w, s, run, ("frontend", "checks")) == []

    # A version that fails nothing reaches 100%.
    edit(handler, flaky, "")
    good = w.run(s, "up")
    assert f"{CMD}api-canary" in good.ops()
    final = prod_snapshot(w)
    alias = c.client("lambda").get_alias(FunctionName=function, Name="stable")
    assert alias["FunctionVersion"] == final["versions"][-1] not in (before["stable"], flaky_version)
    assert not (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights")
    [canary] = [r for r in w.export(s) if r["urn"].endswith("command:local:Command::api-canary")]
    outcome = json.loads(canary["outputs"]["stdout"])
    assert outcome["outcome"] == "promoted" and outcome["errors"] == 0 and outcome["requests"] > 0, outcome
    # Leave prod as the later tests expect it: no canary declared (else 11's drift check of an
    # untouched prod would see the canary Command the next up would delete).
    s.pulumi("config", "rm", "webstack:canaryPercent")
    s.pulumi("config", "rm", "webstack:canarySeconds")
    back = w.run(s, "up")
    assert back.ops().get(f"{CMD}api-canary") == {"delete"}, back.ops()
    w.done.add("canary")


# --- 08 ---------------------------------------------------------------------------------------------


def locks(s: LocalStack) -> list[Path]:
    return [p for p in (s.backend / ".pulumi" / "locks").rglob("*.json") if s.name in p.parts]


def pending_operations(s: LocalStack) -> list[dict[str, Any]]:
    state = json.loads((s.backend / ".pulumi" / "stacks" / "webstack" / f"{s.name}.json").read_text())
    return list(state["checkpoint"]["latest"].get("pending_operations") or [])


def test_08_killed_up_leaves_a_lock_that_cancel_clears(world: World) -> None:
    w = world
    w.need("preview-pr-8")
    s = w.stack("preview-pr-8")
    marker = "after-kill-" + secrets.token_hex(4)
    edit(w.apps["pr"] / "apps" / "web" / "app" / "page.tsx", "<h1>Example app</h1>", f"<h1>Example app {marker}</h1>")
    assert not locks(s)
    before = pr_snapshot(w, 8)

    argv = s.argv("up", "--yes", "--json", "--policy-pack", str(POLICY_PACK), "--policy-pack-config", str(w.policy_config(s)))
    proc = subprocess.Popen(  # noqa: S603 - list argv
        argv, cwd=s.project_dir, env=s.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    seen, started_step = [], False
    deadline = time.monotonic() + 600
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith('{"sequence"') and '"diagnosticEvent"' in line:
                event = json.loads(line)["diagnosticEvent"]
                if resource_key(event.get("urn") or "") == f"{CMD}site-build" and "step build_site: start" in event["message"]:
                    started_step = True
                    time.sleep(1.0)  # inside the step: next build is running
                    break
            if time.monotonic() > deadline:
                break
    finally:
        with_env = ours(s.backend, proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # what a runner does to a cancelled job's process tree
        proc.wait(timeout=30)
        # Tools a step started in a process group of their own (drizzle-kit, next) outlive the
        # group kill: end every process this run started (they carry the backend's URL).
        for pid, start in with_env:
            if _proc_start(pid) == start:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        assert not still_running(with_env)
    assert started_step, "the site build never started:\n" + "".join(seen[-20:])

    held = locks(s)
    assert len(held) == 1, held
    blocked = w.run(s, "up", check=False)
    assert blocked.code != 0 and "locked" in blocked.output, blocked.tail()
    assert locks(s) == held

    s.pulumi("cancel", "--yes")
    assert not locks(s)
    rerun = w.run(s, "up")
    assert rerun.summary()["result"] == "succeeded" and f"{CMD}site-build" in rerun.ops()
    assert not locks(s)
    # The interrupted create stays recorded (every later run warns about it) until a refresh clears it.
    assert [resource_key(op["resource"]["urn"]) for op in pending_operations(s)] == [f"{CMD}site-build"]
    s.pulumi("refresh", "--yes", "--clear-pending-creates")
    assert pending_operations(s) == []
    assert w.run(s, "preview", "--expect-no-changes").code == 0
    after = pr_snapshot(w, 8)
    assert len(after["deployments"]) == 1 and after["deployments"] != before["deployments"]
    assert marker in get(w.facts["pr_outputs"][8]["siteUrl"]).text
    w.done.add("killed")


# --- 09 ---------------------------------------------------------------------------------------------


def test_09_no_secret_in_plain_text_under_the_backend(world: World) -> None:
    w, c = world, world.cloud
    w.need("prod", "preview-pr-8")
    s = w.stack("prod")
    sentinels = {
        "database password": SENTINEL_PASSWORD,
        "webhook path": SENTINEL_HOOK,
        "webhook URL": w.e.webhook,
        "Cloudflare token": w.e.cloudflare_token,
        "secrets passphrase": s.passphrase,
    }
    # The values were in use: the function runs with the password, alerts went to the path, and the
    # stand-in accepts only that token (every deploy above used it).
    assert SENTINEL_PASSWORD in c.function("webstack-api-prod")["Environment"]["Variables"]["DATABASE_URL"]
    assert any(a["path"] == f"/hooks/{SENTINEL_HOOK}" for a in c.alerts())
    # prod takes its database URL from the environment, as the deploy job does; the PR stack holds its
    # own as a config secret: encrypted in its file, never in plain text in either.
    assert "secure:" in w.stack("preview-pr-8").config_file.read_text()
    for stack in (s, w.stack("preview-pr-8")):
        assert SENTINEL_PASSWORD not in stack.config_file.read_text(), stack.name

    files = [p for p in s.backend.rglob("*") if p.is_file() and not p.is_symlink()]
    names = [str(p.relative_to(s.backend)) for p in files]
    assert any(".bak" in n for n in names) and any("history" in n for n in names), names
    found, readable = [], 0
    for path in files:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data += gzip.decompress(data)
        readable += b"webstack-api-prod" in data  # the scan sees the state's contents
        for what, value in sentinels.items():
            if value.encode() in data:
                found.append(f"{what} in {path.relative_to(s.backend)}")
    assert readable >= 3, f"the state's contents were not found in {names}"
    assert not found, found
    w.done.add("secrets")


# --- 10 ---------------------------------------------------------------------------------------------


def copy_project(destination: Path) -> Path:
    """The project as committed plus the working tree's edits, without environments and outputs."""
    top = {".venv", ".git", ".build", ".sandbox", "bin", ".pytest_cache"}
    anywhere = {"node_modules", "__pycache__", "venv", ".next", "out", "dist", ".wrangler"}

    def ignore(directory: str, names: list[str]) -> set[str]:
        return {n for n in names if n in anywhere or (Path(directory) == REPO and n in top)}

    shutil.copytree(REPO, destination, ignore=ignore, symlinks=True)
    (destination / ".venv").symlink_to(REPO / ".venv", target_is_directory=True)
    return destination


def test_10_policy_pack_refuses_an_unprotected_state_bucket(world: World) -> None:
    w = world
    project = copy_project(w.root / "project-unprotected")
    edit(
        project / "components" / "protection.py",
        "    if type_ in STATEFUL_TYPES:\n        return True",
        "    if type_ in STATEFUL_TYPES and type_ != \"aws:s3/bucket:Bucket\":\n        return True",
    )
    # A stack of its own on a backend of its own: only a preview runs, nothing is deployed.
    root = w.root / "policy-case"
    control = LocalStack(root=root, name="prod", endpoints=w.e)
    control.init()
    broken = LocalStack(root=root, name="prod", endpoints=w.e, project_dir=project)

    # Not --json: `preview --json` reports a policy failure as "preview failed" and leaves the
    # violations out; the text output names them.
    passed = w.run(control, "preview", check=False, as_json=False)
    assert passed.code == 0, passed.tail()
    failed = w.run(broken, "preview", check=False, as_json=False)

    assert failed.code != 0
    mandatory = re.findall(r"\[mandatory\]\s+(\S+)\s+\(([^)]*)\)", failed.output)
    assert {rule for rule, _ in mandatory} == {"stateful-protected"}, failed.tail()
    assert {what for _, what in mandatory} == {
        "aws:s3:Bucket: state-storage-bucket", "aws:s3:Bucket: audit-storage-bucket", "aws:s3:Bucket: artifacts-storage-bucket"
    }, mandatory


# --- 11 ---------------------------------------------------------------------------------------------


def drift_check(w: World, s: LocalStack, out: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    """`python -m workflow.drift` as audit.yml runs it, with the engine and the stack's settings."""
    proc = subprocess.run(
        [sys.executable, "-m", "workflow.drift", "--stack", s.name, "--output", str(out), "--alert",
         "--", "--config-file", str(s.config_file)],
        cwd=REPO, env={**s.env(), "ALERT_WEBHOOK_URL": w.e.webhook}, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    return proc, json.loads(out.read_text()) if out.exists() else None


def test_11_out_of_band_change_is_reported_as_drift_and_alerted(world: World) -> None:
    w, c = world, world.cloud
    w.need("prod")
    s = w.stack("prod")
    function = c.function("webstack-api-prod")
    assert function is not None

    # The pipeline's own state: nothing drifted, no alert.
    before = len(c.alerts())
    proc, clean = drift_check(w, s, s.root / "drift-clean.json")
    assert proc.returncode == 0 and clean is not None, proc.stderr[-3000:]
    assert clean["drifted"] is False and clean["resources"] == clean["following"] == [], clean
    assert len(c.alerts()) == before

    # Someone changes the function's memory by hand, in moto.
    c.client("lambda").update_function_configuration(FunctionName="webstack-api-prod", MemorySize=function["MemorySize"] * 2)
    try:
        proc, found = drift_check(w, s, s.root / "drift.json")
        assert proc.returncode == 0 and found is not None, proc.stderr[-3000:]
        assert found["drifted"] is True
        drifted = {(r["type"], r["op"]): r["properties"] for r in found["resources"]}
        assert drifted == {("aws:lambda/function:Function", "update"): ["memorySize"]}, found
        # What only follows from it (the new version the alias would move to) is not drift of its own.
        assert {r["type"] for r in found["following"]} <= {"aws:lambda/alias:Alias", "command:local:Command"}, found
        alerts = new_alerts(w, before)
        assert len(alerts) == 1 and "drift in prod" in alerts[0] and "memorySize" in alerts[0], alerts
        # The preview's refresh wrote nothing: the state still holds the declared memory.
        [state] = [r for r in w.export(s) if r["type"] == "aws:lambda/function:Function"]
        assert state["outputs"]["memorySize"] == function["MemorySize"]
    finally:
        c.client("lambda").update_function_configuration(FunctionName="webstack-api-prod", MemorySize=function["MemorySize"])


# --- 12 ---------------------------------------------------------------------------------------------


def test_12_the_first_prod_up_renders_as_a_timeline_by_phase(world: World) -> None:
    from core.phases import PHASES
    from tests.support.gantt import TASK, gantt_problems

    w = world
    w.need("prod")
    s = w.stack("prod")
    # The engine's event stream of test 01's `up --json`: the same events `up --event-log` writes.
    [first] = sorted((w.root / "logs").glob("*-prod-up.log"))[:1]
    events = w.root / "prod-up-events.jsonl"
    events.write_text("".join(line for line in first.read_text().splitlines(keepends=True) if line.startswith('{"sequence"')))
    summary, record = w.root / "timeline.md", w.root / "timeline.json"
    proc = subprocess.run(
        [sys.executable, "-m", "workflow.timeline", "--events", str(events), "--stack", "prod", "--logs",
         "--json", str(record), "--summary", str(summary)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    chart = summary.read_text().split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert gantt_problems(chart) == []
    assert re.findall(r"^    section (\S+)$", chart, re.M) == list(PHASES)
    # One bar a resource that up created (read from the events here, not by the timeline's code),
    # every deploy step's Command among them; the stack, providers and components are none.
    created: dict[str, str] = {}
    for line in events.read_text().splitlines():
        meta = (json.loads(line).get("resourcePreEvent") or {}).get("metadata") or {}
        if meta.get("op") == "create" and (meta.get("new") or {}).get("custom") and not meta["type"].startswith("pulumi:"):
            created[meta["urn"].rsplit("::", 1)[1]] = meta["type"]
    bars = [m["name"].removesuffix(" (create)") for line in chart.splitlines() if (m := TASK.fullmatch(line))]
    assert sorted(bars) == sorted(created), set(bars) ^ set(created)
    assert {"database-migrate", "api-build", "site-deploy"} <= {n for n, t in created.items() if t == "command:local:Command"}
    steps = json.loads(record.read_text())["steps"]
    assert {s_["outcome"] for s_ in steps} == {"ok"} and all(s_["end"] >= s_["start"] for s_ in steps)
    assert list(json.loads(record.read_text())["phases"]) == list(PHASES)
    # Each step's log in its own group: the migration's lines sit in the database phase's group.
    groups = re.findall(r"^::group::(\S+) / (\S+) ", proc.stdout, re.M)
    assert proc.stdout.count("::endgroup::") == len(groups) == len(steps)
    migrate = proc.stdout.split("::group::database / database-migrate", 1)[1].split("::endgroup::", 1)[0]
    assert "step migrate: start (critical)" in migrate and "step migrate: ok" in migrate
